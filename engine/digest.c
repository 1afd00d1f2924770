/* digest.c: the digest of the views, and the recheck of recorded rules.
 *
 * The digest is what lets an auditor show that a replay of the log rebuilt
 * exactly the views the live server holds: SHA-256 over a canonical rendering
 * (JSON with sorted keys, entities in a fixed order) of the catalog
 * (subscriptions included), and of the requests: their number and the sum
 * (mod 2^256) of the SHA-256 of each request's record (engine/record.c),
 * the whole projection each view is rendered from. The sum is kept as the
 * records are written, so the digest reads no request. It covers personal
 * data as stored and never keys, secrets, token material or checkpoints,
 * so a replay without them gives the same digest. (A sum of hashes shows
 * that a replay rebuilt the same projections; it is not a commitment an
 * adversary cannot collide at scale: the Merkle tree is that.)
 *
 * The recheck re-runs each recorded rule on the inputs the event recorded,
 * with the rule text of the definition version the request ran under, and
 * reports any difference: a rule's result depends on nothing else. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "workflows/expr.h"

static void feed(crypto_hash_sha256_state *st, const char *tag, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(o);
    crypto_hash_sha256_update(st, (const unsigned char *)tag, strlen(tag));
    if (s)
        crypto_hash_sha256_update(st, (const unsigned char *)s, strlen(s));
    crypto_hash_sha256_update(st, (const unsigned char *)"\n", 1);
    free(s);
}

int osse_engine_digest(osse_engine_t *e, char hex[65], uint64_t *size)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    size_t n;
    const char **keys = osse__sorted_keys(&e->workflows, &n);
    for (size_t i = 0; i < n; i++) {
        osse_wfent_t *w = osse_map_get(&e->workflows, keys[i]);
        for (size_t v = 0; v < w->nversions; v++)
            feed(&st, "W ", json_pack("[s,i,O]", w->id, (int)v + 1, w->versions[v]->definition));
    }
    free(keys);
    keys = osse__sorted_keys(&e->calendars, &n);
    for (size_t i = 0; i < n; i++) {
        osse_calendar_ent_t *c = osse_map_get(&e->calendars, keys[i]);
        feed(&st, "C ", json_pack("[s,O]", c->id, c->body));
    }
    free(keys);
    keys = osse__sorted_keys(&e->agencies, &n);
    for (size_t i = 0; i < n; i++) {
        osse_agency_t *a = osse_map_get(&e->agencies, keys[i]);
        json_t *row = json_pack("[s,s?,s?,s?]", a->id, a->name, a->webhook_url, a->lookup_url);
        /* Only when set, so that a log without billers keeps its digest. */
        if (a->biller_id)
            json_array_append_new(row, json_string(a->biller_id));
        feed(&st, "A ", row);
    }
    free(keys);
    keys = osse__sorted_keys(&e->principals, &n);
    for (size_t i = 0; i < n; i++) {
        osse_principal_t *p = osse_map_get(&e->principals, keys[i]);
        feed(&st, "P ",
             json_pack("[s,s,s?,s?,b]", p->id, osse_role_name(p->role), p->agency, p->name,
                       p->revoked));
    }
    free(keys);
    keys = osse__sorted_keys(&e->subs, &n);
    for (size_t i = 0; i < n; i++) {
        osse_sub_t *s = osse_map_get(&e->subs, keys[i]);
        json_t *evs = json_array();
        for (size_t k = 0; k < s->nevents; k++)
            json_array_append_new(evs, json_string(osse_event_type_name(s->events[k])));
        feed(&st, "S ", json_pack("[s,s,o,s]", s->id, s->url, evs, s->owner));
    }
    free(keys);
    /* The requests: the sum of their records' hashes (record.c), kept as
     * the records are written, so no request is read here. */
    uint8_t sum[32];
    char sum_hex[65];
    osse__records_sum(e, sum);
    sodium_bin2hex(sum_hex, sizeof sum_hex, sum, sizeof sum);
    feed(&st, "R ", json_pack("[I,s]", (json_int_t)e->nrequests, sum_hex));
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    *size = e->applied;
    return 0;
}

/* The definition's text of the rule an event of type t records, or NULL;
 * *cond: the rule is a condition (when, auto_approve, require), whose
 * non-boolean result is recorded as an error. */
static const char *rule_of(const osse_wf_step_t *s, osse_event_type_t t, bool *cond)
{
    *cond = true;
    switch (t) {
    case OSSE_EV_TaskAutoApproved:
    case OSSE_EV_RuleFailed: return s->auto_approve;
    case OSSE_EV_StepSkipped: return s->when;
    case OSSE_EV_LinkageCompleted: return s->require;
    case OSSE_EV_PaymentDue:
    case OSSE_EV_StepFailed: *cond = false; return s->amount;
    default: *cond = false; return NULL;
    }
}

/* Rules that read sealed inputs, counted per request as the replay meets
 * them: whether the request is erased is known only at the end of the log. */
static size_t sealed_rules(const osse_engine_t *e, bool erased)
{
    size_t n = 0;
    for (size_t i = 0; i < e->nreqs; i++) {
        const osse_request_t *r = osse__slot(e, i);
        if (r && !r->erased_at == !erased)
            n += r->recheck_sealed;
    }
    return n;
}

size_t osse_engine_recheck_sealed(const osse_engine_t *e)
{
    return sealed_rules(e, false);
}

size_t osse_engine_recheck_skipped(const osse_engine_t *e)
{
    return sealed_rules(e, true);
}

size_t osse_engine_recheck_event(osse_engine_t *e, uint64_t seq, const void *bytes, size_t len,
                                 FILE *out)
{
    osse_event_t ev;
    osse_err_t err = {0};
    size_t diffs = 0;
    if (osse_event_decode(bytes, len, &ev, &err))
        return 0; /* the replay itself reports damaged events */
    const char *recorded = json_string_value(json_object_get(ev.data, "rule"));
    const char *step = json_string_value(json_object_get(ev.data, "step"));
    const char *rid = osse__stream_id(ev.stream, OSSE_SK_REQUEST);
    osse_request_t *r = rid ? osse__request(e, rid) : NULL;
    int i = r && step ? osse_wf_step_index(r->wf, step) : -1;
    if (!recorded || i < 0)
        goto out;
    if (osse__pii_any_sealed(json_object_get(ev.data, "inputs"))) {
        /* It read personal values, sealed under keys a replay does not
         * have (SPEC §6): not checkable, which is not a difference; skipped
         * when its request turns out erased (osse_engine_recheck_skipped). */
        r->recheck_sealed++;
        goto out;
    }
    bool cond;
    const char *text = rule_of(&r->wf->steps[i], ev.type, &cond);
    if (!text || strcmp(text, recorded) != 0) {
        fprintf(out, "seq %llu %s %s: the recorded rule \"%s\" is not the rule of %s version %d\n",
                (unsigned long long)seq, osse_event_type_name(ev.type), step, recorded, r->wfe->id,
                r->wf_version);
        diffs++;
        goto out;
    }
    osse_expr_t *x = NULL;
    json_t *root = NULL, *result = NULL;
    int col;
    if (osse_expr_parse(text, strlen(text), &x, &col, &err) ||
        osse_expr_root_from_inputs(json_object_get(ev.data, "inputs"), &root)) {
        fprintf(out, "seq %llu %s %s: the rule cannot be rerun: %s\n", (unsigned long long)seq,
                osse_event_type_name(ev.type), step, err.msg);
        diffs++;
    } else {
        int rc = osse_expr_eval(x, root, &result, NULL, &err);
        json_t *want = json_object_get(ev.data, "result");
        bool same = want ? rc == 0 && json_equal(want, result)
                         : rc != 0 || (cond && !json_is_boolean(result));
        if (!same) {
            char *got = rc ? NULL : json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
            char *had = want ? json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            fprintf(out, "seq %llu %s %s: recorded %s, rerun gives %s\n", (unsigned long long)seq,
                    osse_event_type_name(ev.type), step, had ? had : "an error",
                    got ? got : err.msg);
            free(got);
            free(had);
            diffs++;
        }
    }
    json_decref(result);
    json_decref(root);
    osse_expr_free(x);
out:
    osse_event_clear(&ev);
    return diffs;
}
