/* request.c: the life of a request, from submission to its end.
 *
 * A request is submitted (osse_cmd_submit), then advance() opens every step
 * whose `after` steps are finished, skips those whose `when` is false, runs
 * what a step does when it opens (an auto_approve rule, a fee, a licence),
 * and completes the request when every step is approved, done or skipped.
 * Agencies decide (osse_cmd_decide), applicants answer a return
 * (osse_cmd_info) or withdraw (osse_cmd_withdraw); each of these, and every
 * deadline (timers.c) and lookup answer (linkage.c) that moves a step, calls
 * advance() again.
 *
 * Every command checks its whole input against the projections first and
 * returns a failure with nothing changed; only then does it emit events
 * (osse__emit applies each at once). The states and the moves between them
 * are the tables of state.c; how each event changes the request is apply.c. */
#include "engine/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "engine/thaiqr.h"

#define MAX_REASON 4096
/* More fields than any e-form has: it bounds the work and the error list. */
#define OSSE_MAX_FORM_FIELDS 256

static void stream_of(const osse_request_t *r, char *out, size_t n)
{
    osse__stream(out, n, OSSE_SK_REQUEST, r->id);
}

/* A fee as a decimal string "520.00" from satang. */
static void money(int64_t satang, char out[32])
{
    snprintf(out, 32, "%lld.%02lld", (long long)(satang / 100), (long long)(satang % 100));
}

static void step_data(json_t *rec, const char *step)
{
    json_object_set_new(rec, "step", json_string(step));
}

/* PaymentDue's reference and qr (SPEC §2): a reference of 16 characters of
 * [A-Z0-9] (from an alphabet without look-alikes, 32 letters so that a byte
 * maps without bias) that no PaymentDue of a request in memory has (80
 * bits: docs/design.md says why the disk is not read), and the Thai QR
 * payload under the collecting agency's biller id, or null without one.
 * Nothing is due for an amount of 0: both are null. */
static void payment_code(osse_engine_t *e, const osse_wf_step_t *s, int64_t satang,
                         const char *amount, json_t *rec)
{
    if (satang == 0) {
        json_object_set_new(rec, "reference", json_null());
        json_object_set_new(rec, "qr", json_null());
        return;
    }
    static const char alpha[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    char ref[17];
    do {
        unsigned char raw[16];
        osse__random_bytes(raw, sizeof raw);
        for (int k = 0; k < 16; k++)
            ref[k] = alpha[raw[k] % (sizeof alpha - 1)];
        ref[16] = '\0';
    } while (osse_map_get(&e->references, ref));
    json_object_set_new(rec, "reference", json_string(ref));
    const osse_agency_t *a = s->agency ? osse_map_get(&e->agencies, s->agency) : NULL;
    char qr[OSSE_THAIQR_MAX];
    if (a && a->biller_id && osse__thaiqr(a->biller_id, ref, amount, qr) == 0)
        json_object_set_new(rec, "qr", json_string(qr));
    else
        json_object_set_new(rec, "qr", json_null());
}

/* Opens step i (or skips it when its `when` is false). Returns false when the
 * step failed and the request ended. */
static bool open_step(osse_engine_t *e, osse_request_t *r, size_t i, const osse_principal_t *actor)
{
    const osse_wf_step_t *s = &r->wf->steps[i];
    char stream[96];
    stream_of(r, stream, sizeof stream);
    int64_t now = osse_engine_now(e);
    json_t *rec;
    if (s->when && !osse__run_condition(e, r, s->when, &rec)) {
        step_data(rec, s->name);
        osse__emit(e, stream, OSSE_EV_StepSkipped, NULL, rec);
        return true;
    }
    if (s->when)
        json_decref(rec);
    int64_t due, warn;
    osse__sla_times(e, r, i, now, osse__sla_total(e, r, i, now), &due, &warn);
    /* As fields, not a JSON tree (docs/design.md "Events as fields"). */
    osse_ev_opened_t opened = {
        .step = s->name,
        .kind = osse_wf_step_kind_name(s->kind),
        .agency = s->agency,
        .due_at = due,
        .warn_at = warn,
    };
    osse__emit_opened(e, stream, actor, &opened);
    if (s->kind == OSSE_STEP_KIND_TASK && s->auto_approve) {
        if (osse__run_condition(e, r, s->auto_approve, &rec)) {
            step_data(rec, s->name);
            osse__emit(e, stream, OSSE_EV_TaskAutoApproved, NULL, rec);
        } else if (json_object_get(rec, "error")) {
            /* A rule that fails counts as false, and the failure is on the
             * record with the inputs it read (SPEC §2). */
            step_data(rec, s->name);
            json_object_set_new(rec, "kind", json_string("auto_approve"));
            osse__emit(e, stream, OSSE_EV_RuleFailed, NULL, rec);
        } else {
            json_decref(rec);
        }
    } else if (s->kind == OSSE_STEP_KIND_PAYMENT) {
        json_t *v = s->amount ? osse__run_rule(e, r, s->amount, &rec) : NULL;
        double thb = json_is_number(v) ? json_number_value(v) : -1;
        bool negative = json_is_number(v) && thb < 0;
        json_decref(v);
        if (!(thb >= 0 && thb < 1e12)) {
            if (!s->amount)
                rec = json_object();
            step_data(rec, s->name);
            if (!json_object_get(rec, "error"))
                json_object_set_new(
                    rec, "error",
                    json_string(negative ? "the amount is negative"
                                         : "the amount is not a number from 0 to 10^12"));
            osse__emit(e, stream, OSSE_EV_StepFailed, NULL, rec);
            osse__emit(
                e, stream, OSSE_EV_RequestRejected, NULL,
                json_pack("{s:s,s:s}", "step", s->name, "reason", "the fee cannot be computed"));
            return false;
        }
        int64_t satang = (int64_t)llround(thb * 100);
        char m[32];
        money(satang, m);
        json_object_set_new(rec, "amount", json_string(m));
        json_object_set_new(rec, "amount_satang", json_integer((json_int_t)satang));
        payment_code(e, s, satang, m, rec);
        step_data(rec, s->name);
        /* An amount of 0 is done as it is applied (SPEC §2). */
        osse__emit(e, stream, OSSE_EV_PaymentDue, NULL, rec);
    } else if (s->kind == OSSE_STEP_KIND_ISSUE) {
        /* The next number of the counter that apply.c advances when it
         * applies this LicenceIssued (licence.c). */
        const char *tpl = s->number ? s->number : OSSE_WF_DEFAULT_NUMBER;
        int64_t year = osse__licence_year(e, r->wf, now);
        char number[128];
        osse__licence_number(tpl, year, osse__licence_seq(r->wfe, tpl, year, false), number,
                             sizeof number);
        json_t *pub = json_object();
        for (size_t k = 0; k < s->npublic_fields; k++) {
            json_t *v = json_object_get(osse__form(r), s->public_fields[k]);
            if (v)
                json_object_set(pub, s->public_fields[k], v);
        }
        int64_t until =
            s->valid_for.kind == OSSE_DUR_WALL ? osse_duration_add_wall(&s->valid_for, now) : 0;
        json_t *doc, *jws;
        osse__licence_sign(e, r, number, now, until, pub, &doc, &jws);
        osse__emit(e, stream, OSSE_EV_LicenceIssued, actor,
                   json_pack("{s:s,s:s,s:o,s:o,s:o,s:o,s:o}", "step", s->name, "number", number,
                             "valid_from", osse__time_json(now), "valid_until",
                             osse__time_json(until), "public_fields", pub, "document", doc, "jws",
                             jws));
    }
    /* A linkage step's lookup is linkage.c's, which hears of StepOpened. */
    return true;
}

/* Opens, skips and completes until nothing more moves. */
void osse__advance(osse_engine_t *e, osse_request_t *r, const osse_principal_t *actor)
{
    bool moved = true;
    while (moved && !osse__rstatus_final(r->status)) {
        moved = false;
        for (size_t i = 0; i < r->wf->nsteps; i++) {
            if (r->steps[i].state != OSSE_SS_PENDING)
                continue;
            const osse_wf_step_t *s = &r->wf->steps[i];
            bool ready = true;
            for (size_t k = 0; k < s->nafter && ready; k++)
                ready = osse__sstate_done(r->steps[s->after[k]].state);
            if (!ready)
                continue;
            /* Opening a step may end the request (a fee that cannot be
             * computed, a lookup that cannot be made). */
            if (!open_step(e, r, i, actor) || osse__rstatus_final(r->status))
                return;
            moved = true;
        }
    }
    if (osse__rstatus_final(r->status))
        return;
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if (!osse__sstate_done(r->steps[i].state))
            return;
    char stream[96];
    stream_of(r, stream, sizeof stream);
    osse__emit(e, stream, OSSE_EV_RequestCompleted, NULL, json_object());
}

int osse_cmd_submit(osse_engine_t *e, const osse_principal_t *p, json_t *body, json_t **out,
                    osse_fail_t *f)
{
    static const char *const keys[] = {"workflow", "form", NULL};
    int rc = osse__check_keys(body, keys, f);
    if (rc)
        return rc;
    const char *wid = osse__jstr(body, "workflow");
    json_t *form = json_object_get(body, "form");
    osse_wfent_t *w = wid ? osse_map_get(&e->workflows, wid) : NULL;
    if (!w) {
        osse__detail(f, "workflow", wid ? "unknown workflow" : "is required");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "unknown workflow");
    }
    if (!json_is_object(form)) {
        osse__detail(f, "form", "must be an object");
        return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form is missing");
    }
    if (json_object_size(form) > OSSE_MAX_FORM_FIELDS) {
        osse__detail(f, "form", "has more than %d fields", OSSE_MAX_FORM_FIELDS);
        return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form has too many fields");
    }
    const osse_wf_t *wf = w->versions[w->nversions - 1];
    json_t *details = json_array();
    if (osse_wf_check_form(wf, form, false, details)) {
        f->details = details;
        return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form has %zu error(s)",
                          json_array_size(details));
    }
    json_decref(details);
    /* The body's own form, no copy (engine.h): resolving files and sealing
     * replace its top-level values in place (a file field is a string until
     * resolved), keys staying in their order, and the event takes it. */
    json_t *resolved = json_incref(form);
    if ((rc = osse__files_resolve(e, p, wf, resolved, NULL, f))) {
        json_decref(resolved);
        return rc;
    }
    /* The tracking code: the request's first seq, permuted
     * (engine/trackcode.h), so on no other request ever. */
    char id[40], code[OSSE__CODE_SIZE], stream[96];
    uint64_t seq0 = osse_log_last_seq(e->log) + 1;
    if (osse_trackcode(e->code_key, e->code_bits, seq0, code)) {
        json_decref(resolved);
        return osse__fail(f, OSSE_ENOSPC, "tracking_codes_exhausted",
                          "the tracking codes' %u bits are used up (seq %llu)", e->code_bits,
                          (unsigned long long)seq0);
    }
    /* The request's key is durable before its first event (SPEC §8): one
     * of the reserve's (pii.c) is already; else it goes with the batch of
     * that event, and the log's writer makes it durable first. */
    char done[OSSE__RID_SIZE];
    bool reserved = osse__pii_key_reserved(e, id, done);
    osse__batch_need(e);
    /* The last of its refill's ids: the refill's pending record goes with
     * this batch (storage/log.h). */
    if (reserved && done[0] && osse_batch_keys_pending_done(e->batch, done))
        return osse__fail(f, OSSE_ENOMEM, "internal", "out of memory");
    if (!reserved) {
        do {
            /* In a partition this node owns (engine/partition.h). */
            uint8_t raw[OSSE_RID_RANDOM + 4];
            uint32_t r;
            osse__random_bytes(raw, sizeof raw);
            memcpy(&r, raw + OSSE_RID_RANDOM, sizeof r);
            osse_request_id_mint(id, osse_partition_pick(e->part_first, e->part_last, r), raw);
        } while (osse__request(e, id));
    }
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, id);
    uint8_t wrapped[OSSE_WRAPPED_BYTES];
    if (!reserved && osse__pii_key_new(e, id, wrapped)) {
        json_decref(resolved);
        return osse__fail(f, OSSE_EIO, "internal", "the request's key cannot be made");
    }
    osse__batch_need(e);
    if (!reserved && osse_batch_key(e->batch, e->keystore, id, wrapped)) {
        json_decref(resolved);
        return osse__fail(f, OSSE_ENOMEM, "internal", "out of memory");
    }
    /* The sealed form goes into the event as its msgpack bytes, which the
     * request then keeps (apply.c): it is encoded once, and no copy of its
     * tree is made. */
    json_t *sealed = osse__pii_seal_form(e, wf, id, resolved);
    osse_buf_reset(&e->form_enc);
    if (osse_mp_put_json(&e->form_enc, sealed))
        osse__panic(__FILE__, __LINE__, "cannot encode the form of %s", id);
    json_decref(sealed);
    osse_ev_submitted_t sub = {
        .id = id,
        .workflow = w->id,
        .workflow_version = (uint32_t)w->nversions,
        .tracking_code = code,
        .portal = p->id,
        .form = (const uint8_t *)e->form_enc.ptr,
        .form_len = e->form_enc.len,
    };
    osse__emit_submitted(e, stream, p, &sub);
    osse__files_take(e, wf, resolved, id);
    json_decref(resolved);
    osse_request_t *r = osse__request(e, id);
    OSSE_PRE(r->seqs[0] == seq0);
    osse__advance(e, r, NULL);
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "id", json_string(r->id));
    json_object_set_new_nocheck(o, "tracking_code", json_string(r->tracking_code));
    json_object_set_new_nocheck(o, "status", osse__jname(e, osse__rstatus_name(r->status)));
    json_object_set_new_nocheck(o, "version", json_integer((int)r->version));
    json_object_set_new_nocheck(o, "workflow_version", json_integer(r->wf_version));
    *out = o;
    return 0;
}

/* expected_version (SPEC §4) is stale when an event after it changed what
 * the caller decides on: step i's state or agency, or the form. Another
 * agency deciding its own step in parallel, SLA warnings and breaches, and
 * deliveries leave it fresh. Without a step (a withdrawal) any step counts.
 * A version the request has not reached yet is stale too. */
static int check_expected_version(const json_t *body, const osse_request_t *r, int i,
                                  osse_fail_t *f)
{
    json_t *ev = json_object_get(body, "expected_version");
    if (!ev || json_is_null(ev))
        return 0;
    if (!json_is_integer(ev)) {
        osse__detail(f, "expected_version", "must be an integer");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "expected_version is invalid");
    }
    json_int_t v = json_integer_value(ev);
    if (v < 1 || v > (json_int_t)r->version)
        return osse__fail(f, OSSE_ECONFLICT, "conflict",
                          "the request is at version %u; it has no version %lld", r->version,
                          (long long)v);
    uint32_t changed = r->form_changed_at;
    const char *step = NULL;
    for (size_t k = 0; k < r->wf->nsteps; k++)
        if ((i < 0 || (size_t)i == k) && r->steps[k].changed_at > changed) {
            changed = r->steps[k].changed_at;
            step = r->wf->steps[k].name;
        }
    if ((json_int_t)changed > v)
        return osse__fail(f, OSSE_ECONFLICT, "conflict", "%s%s changed at version %u, after %lld",
                          step ? "step " : "the form", step ? step : "", changed, (long long)v);
    return 0;
}

int osse_cmd_decide(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                    const char *step, json_t *body, json_t **out, osse_fail_t *f)
{
    static const char *const keys[] = {"outcome", "reason", "expected_version", NULL};
    osse_request_t *r = NULL;
    int rc = osse__find_request(e, p, request_id, &r, f);
    if (rc)
        return rc;
    int i = osse_wf_step_index(r->wf, step);
    if (i < 0)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no step %s in request %s", step,
                          request_id);
    const osse_wf_step_t *s = &r->wf->steps[i];
    osse_step_t *st = &r->steps[i];
    if (s->kind != OSSE_STEP_KIND_TASK)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "step %s is not a task", step);
    if (p->role != OSSE_ROLE_AGENCY || !st->agency || strcmp(p->agency, st->agency) != 0)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "step %s belongs to %s", step,
                          st->agency ? st->agency : "no agency");
    if ((rc = osse__check_keys(body, keys, f)))
        return rc;
    const char *outcome = osse__jstr(body, "outcome"), *reason;
    if ((rc = osse__opt_string(body, "reason", MAX_REASON, &reason, f)))
        return rc;
    if (!outcome ||
        (strcmp(outcome, "approve") && strcmp(outcome, "reject") && strcmp(outcome, "return"))) {
        osse__detail(f, "outcome", "must be approve, reject or return");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "outcome is invalid");
    }
    if ((rc = check_expected_version(body, r, i, f)))
        return rc;
    if (st->state != OSSE_SS_OPEN)
        return osse__fail(f, OSSE_ECONFLICT, "conflict", "step %s is %s, not open", step,
                          osse__sstate_name(st->state));
    char stream[96];
    stream_of(r, stream, sizeof stream);
    /* A person's reason is personal (SPEC §8): sealed, as the step's
     * reason and, for a rejection, as the request's. */
    char path[160];
    snprintf(path, sizeof path, "steps.%s.reason", step);
    json_t *data = json_pack("{s:s,s:s,s:s,s:o?}", "step", step, "agency", p->agency, "outcome",
                             outcome, "reason", osse__pii_seal_text(e, r->id, path, reason));
    if (strcmp(outcome, "return") == 0 && st->due_at) {
        /* The SLA clock stops: what is left of it is recorded, in the SLA's
         * own kind of time, and resumes when the applicant answers. */
        int64_t now = osse_engine_now(e);
        json_object_set_new(data, "sla_remaining_ms",
                            json_integer(osse__sla_between(e, r, (size_t)i, now, st->due_at)));
        if (st->warn_at)
            json_object_set_new(data, "warn_remaining_ms",
                                json_integer(osse__sla_between(e, r, (size_t)i, now, st->warn_at)));
    }
    osse__emit(e, stream, OSSE_EV_TaskDecided, p, data);
    if (strcmp(outcome, "approve") == 0)
        osse__advance(e, r, NULL);
    else if (strcmp(outcome, "reject") == 0)
        osse__emit(e, stream, OSSE_EV_RequestRejected, NULL,
                   json_pack("{s:s,s:o?}", "step", step, "reason",
                             osse__pii_seal_text(e, r->id, "reason", reason)));
    *out = osse__request_view(e, r, false);
    return 0;
}

static int own_request(osse_engine_t *e, const osse_principal_t *p, const char *id,
                       osse_request_t **out, osse_fail_t *f)
{
    int rc = osse__find_request(e, p, id, out, f);
    if (rc)
        return rc;
    if (p->role != OSSE_ROLE_PORTAL || !(*out)->portal || strcmp((*out)->portal, p->id) != 0)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "only the portal that submitted a request may do this");
    return 0;
}

int osse_cmd_info(osse_engine_t *e, const osse_principal_t *p, const char *request_id, json_t *body,
                  json_t **out, osse_fail_t *f)
{
    static const char *const keys[] = {"step", "form", "message", "expected_version", NULL};
    osse_request_t *r = NULL;
    int rc = own_request(e, p, request_id, &r, f);
    if (rc || (rc = osse__check_keys(body, keys, f)))
        return rc;
    const char *step = osse__jstr(body, "step"), *message;
    if ((rc = osse__opt_string(body, "message", MAX_REASON, &message, f)))
        return rc;
    int i = step ? osse_wf_step_index(r->wf, step) : -1;
    if (i < 0) {
        osse__detail(f, "step", step ? "unknown step" : "is required");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "step is invalid");
    }
    json_t *form = json_object_get(body, "form");
    if (form && json_is_object(form) && json_object_size(form) > OSSE_MAX_FORM_FIELDS) {
        osse__detail(f, "form", "has more than %d fields", OSSE_MAX_FORM_FIELDS);
        return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form has too many fields");
    }
    if (form && !json_is_object(form)) {
        osse__detail(f, "form", "must be an object");
        return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form is invalid");
    }
    json_t *resolved = NULL;
    if (form) {
        json_t *details = json_array();
        if (osse_wf_check_form(r->wf, form, true, details)) {
            f->details = details;
            return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form has %zu error(s)",
                              json_array_size(details));
        }
        json_decref(details);
        resolved = json_deep_copy(form);
        if ((rc = osse__files_resolve(e, p, r->wf, resolved, r->id, f))) {
            json_decref(resolved);
            return rc;
        }
    }
    if ((rc = check_expected_version(body, r, i, f))) {
        json_decref(resolved);
        return rc;
    }
    if (r->steps[i].state != OSSE_SS_WAITING_APPLICANT) {
        json_decref(resolved);
        return osse__fail(f, OSSE_ECONFLICT, "conflict",
                          "step %s is %s, not waiting for the applicant", step,
                          osse__sstate_name(r->steps[i].state));
    }
    char stream[96], mpath[160];
    stream_of(r, stream, sizeof stream);
    snprintf(mpath, sizeof mpath, "steps.%s.message", step);
    json_t *data = json_pack("{s:s,s:o?,s:o?}", "step", step, "form",
                             resolved ? osse__pii_seal_form(e, r->wf, r->id, resolved) : NULL,
                             "message", osse__pii_seal_text(e, r->id, mpath, message));
    const osse_step_t *st = &r->steps[i];
    if (st->remaining_ms >= 0) {
        int64_t now = osse_engine_now(e);
        json_object_set_new(data, "due_at",
                            osse__time_json(osse__sla_add(e, r, (size_t)i, now, st->remaining_ms)));
        json_object_set_new(
            data, "warn_at",
            st->warn_remaining_ms > 0
                ? osse__time_json(osse__sla_add(e, r, (size_t)i, now, st->warn_remaining_ms))
                : json_null());
    }
    osse__emit(e, stream, OSSE_EV_InfoProvided, p, data);
    if (resolved)
        osse__files_take(e, r->wf, resolved, r->id);
    json_decref(resolved);
    *out = osse__request_view(e, r, false);
    return 0;
}

int osse_cmd_withdraw(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                      json_t *body, json_t **out, osse_fail_t *f)
{
    static const char *const keys[] = {"reason", "expected_version", NULL};
    osse_request_t *r = NULL;
    int rc = own_request(e, p, request_id, &r, f);
    if (rc || (rc = osse__check_keys(body, keys, f)))
        return rc;
    const char *reason;
    if ((rc = osse__opt_string(body, "reason", MAX_REASON, &reason, f)) ||
        (rc = check_expected_version(body, r, -1, f)))
        return rc;
    if (osse__rstatus_final(r->status))
        return osse__fail(f, OSSE_ECONFLICT, "conflict", "the request is already %s",
                          osse__rstatus_name(r->status));
    char stream[96];
    stream_of(r, stream, sizeof stream);
    osse__emit(e, stream, OSSE_EV_RequestWithdrawn, p,
               json_pack("{s:o?}", "reason", osse__pii_seal_text(e, r->id, "reason", reason)));
    *out = osse__request_view(e, r, false);
    return 0;
}
