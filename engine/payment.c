/* payment.c: a payment gateway records a payment (SPEC §4, POST
 * /v1/requests/{id}/payments).
 *
 * The checks run in SPEC's order, every one against the projections before
 * anything is written: a transaction this payment principal has already
 * recorded answers as the first call did and writes nothing, whatever the
 * body (on another request: 409 transaction_reused); then the body's shape;
 * then 409 when the step is not open (not yet due, paid, expired); then 422
 * amount_mismatch / reference_mismatch. Only a call that passes them all
 * records PaymentReceived, so a refused call leaves its transaction id
 * unused. The index of transactions is a projection (apply.c), so it holds
 * across restarts and replays; the status the first call answered is a side
 * record written with its events (keys.h, payanswer/), so that a retry
 * answers it again after the request moved on. The file sits above request.c: it advances
 * the request the payment frees. */
#include "engine/internal.h"

#include <stdio.h>
#include <string.h>

/* ^[0-9]+\.[0-9]{2}$, by hand. */
static bool money_ok(const char *s)
{
    size_t n = strlen(s), k = 0;
    while (k < n && s[k] >= '0' && s[k] <= '9')
        k++;
    return k > 0 && n == k + 3 && s[k] == '.' && s[k + 1] >= '0' && s[k + 1] <= '9' &&
           s[k + 2] >= '0' && s[k + 2] <= '9';
}

/* A transaction id: 1 to OSSE_TRANSACTION_MAX bytes of printable ASCII. */
static bool transaction_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OSSE_TRANSACTION_MAX)
        return false;
    for (size_t k = 0; k < n; k++)
        if (s[k] < 0x21 || s[k] > 0x7e)
            return false;
    return true;
}

/* The answer: a payment gateway sees no form. status: the request's
 * status to tell (the one the first call answered, for a retry). */
static json_t *answer(const osse_request_t *r, osse_rstatus_t status)
{
    return json_pack("{s:s,s:s,s:o}", "id", r->id, "status", osse__rstatus_name(status), "fee",
                     osse__fee_json(r));
}

/* Remembers the status this first successful call answers, in the batch of
 * its events. */
static void remember(osse_engine_t *e, const char *key, osse_rstatus_t st)
{
    char rk[OSSE__PAY_ANSWER_KEY_MAX];
    size_t kl = osse__pay_answer_key(key, rk);
    OSSE_PRE(kl > 0); /* key is osse__payment_key's: it fits */
    const char *name = osse__rstatus_name(st);
    osse__batch_need(e);
    if (osse_batch_put(e->batch, rk, kl, name, strlen(name)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    osse_map_put(&e->pay_answers, key, (void *)(uintptr_t)(st + 1));
}

static int bad(osse_fail_t *f, const char *path, const char *msg)
{
    osse__detail(f, path, "%s", msg);
    return osse__fail(f, OSSE_EINVAL, "invalid_request", "%s %s", path, msg);
}

int osse_cmd_pay(osse_engine_t *e, const osse_principal_t *p, const char *request_id, json_t *body,
                 json_t **out, osse_fail_t *f)
{
    static const char *const keys[] = {"step", "amount", "reference", "transaction", NULL};
    if (p->role != OSSE_ROLE_PAYMENT)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "only a payment principal records payments");
    osse_request_t *r = osse__request(e, request_id);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no request %s", request_id);
    if (!json_is_object(body))
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the body must be a JSON object");
    json_t *txv = json_object_get(body, "transaction");
    if (!json_is_string(txv) || !transaction_ok(json_string_value(txv)))
        return bad(f, "transaction",
                   "must be the gateway's transaction id: 1 to 128 printable ASCII characters");
    const char *tx = json_string_value(txv);
    char key[OSSE_PAYMENT_KEY_MAX];
    osse__payment_key(p->id, tx, key, sizeof key);
    const osse_request_t *paid = osse_map_get(&e->payments, key);
    if (paid && paid != r)
        return osse__fail(f, OSSE_ECONFLICT, "transaction_reused",
                          "transaction %s was recorded for another request", tx);
    if (paid) {
        /* A payment recorded before the first answers were remembered
         * (none are older than this build) answers with the status now. */
        uintptr_t first = (uintptr_t)osse_map_get(&e->pay_answers, key);
        *out = answer(r, first ? (osse_rstatus_t)(first - 1) : r->status);
        return 0;
    }
    int rc = osse__check_keys(body, keys, f);
    if (rc)
        return rc;
    json_t *sv = json_object_get(body, "step"), *av = json_object_get(body, "amount"),
           *rv = json_object_get(body, "reference");
    if (!json_is_string(sv))
        return bad(f, "step", "must be the name of the payment step");
    if (!json_is_string(av) || !money_ok(json_string_value(av)) || json_string_length(av) > 20)
        return bad(f, "amount", "must be a decimal string such as \"520.00\"");
    if (!json_is_string(rv) || json_string_length(rv) > 64)
        return bad(f, "reference", "must be the reference of the fee's PaymentDue");
    const char *step = json_string_value(sv);
    int i = osse_wf_step_index(r->wf, step);
    if (i < 0 || r->wf->steps[i].kind != OSSE_STEP_KIND_PAYMENT)
        return bad(f, "step", i < 0 ? "is not a step of this request" : "is not a payment step");
    const osse_step_t *st = &r->steps[i];
    if (st->state != OSSE_SS_OPEN)
        return osse__fail(f, OSSE_ECONFLICT, "step_not_open", "step %s is %s, not open%s%s", step,
                          osse__sstate_name(st->state),
                          osse__rstatus_final(r->status) ? ": the request is " : "",
                          osse__rstatus_final(r->status) ? osse__rstatus_name(r->status) : "");
    /* The amount is compared in satang: "520.00" is 52000. */
    const char *amount = json_string_value(av);
    const char *dot = strchr(amount, '.');
    int64_t satang = 0;
    bool overflow = false;
    for (const char *c = amount; c < dot; c++) {
        if (satang > (INT64_MAX - 9) / 10 / 100)
            overflow = true;
        satang = satang * 10 + (*c - '0');
    }
    satang = satang * 100 + (dot[1] - '0') * 10 + (dot[2] - '0');
    if (overflow || satang != st->amount_satang) {
        osse__detail(f, "amount", "is not the fee that is due");
        return osse__fail(f, OSSE_EINVAL, "amount_mismatch", "the fee due is not %s", amount);
    }
    if (!st->reference || strcmp(st->reference, json_string_value(rv)) != 0) {
        osse__detail(f, "reference", "is not the reference of the fee that is due");
        return osse__fail(f, OSSE_EINVAL, "reference_mismatch", "the reference is not the fee's");
    }
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    char m[32];
    snprintf(m, sizeof m, "%lld.%02lld", (long long)(satang / 100), (long long)(satang % 100));
    osse__emit(e, stream, OSSE_EV_PaymentReceived, p,
               json_pack("{s:s,s:s,s:s,s:s}", "step", step, "amount", m, "reference", st->reference,
                         "transaction", tx));
    osse__advance(e, r, NULL);
    remember(e, key, r->status);
    *out = answer(r, r->status);
    return 0;
}
