/* commands.c: what each command checks and which events it emits.
 *
 * Every command validates its whole input against the current projections
 * first and returns a failure with nothing changed; only then does it emit
 * events (osse__emit applies each at once). The request lifecycle lives in
 * advance(): after any change it opens every step whose `after` steps are
 * finished, skips those whose `when` is false, and completes the request when
 * every step is approved, done or skipped. */
#include "engine/internal.h"

#include <ctype.h>
#include <math.h>
#include <regex.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "workflows/calendar.h"
#include "workflows/expr.h"

#define MAX_REASON 4096
/* More fields than any e-form has: it bounds the work and the error list. */
#define OSSE_MAX_FORM_FIELDS 256

/* --- catalog --- */

/* The catalog as osse_wf_check looks it up. */
static bool has_agency(void *ud, const char *id)
{
    return osse_map_get(&((osse_engine_t *)ud)->agencies, id) != NULL;
}

static bool has_calendar(void *ud, const char *id)
{
    return osse_map_get(&((osse_engine_t *)ud)->calendars, id) != NULL;
}

/* Every version of every other workflow counts: the licences an old version
 * issued still carry its numbers. */
static const char *number_taken(void *ud, const char *wf_id, const char *fixed)
{
    osse_engine_t *e = ud;
    size_t it = 0;
    const char *id;
    void *v;
    while (osse_map_next(&e->workflows, &it, &id, &v)) {
        const osse_wfent_t *w = v;
        if (strcmp(w->id, wf_id) == 0)
            continue;
        for (size_t k = 0; k < w->nversions; k++) {
            const osse_wf_t *wf = w->versions[k];
            for (size_t i = 0; i < wf->nsteps; i++) {
                char other[300];
                if (wf->steps[i].kind != OSSE_STEP_KIND_ISSUE)
                    continue;
                osse_wf_number_fixed(wf->steps[i].number, other, sizeof other);
                if (strcmp(other, fixed) == 0)
                    return w->id;
            }
        }
    }
    return NULL;
}

int osse_cmd_publish_workflow(osse_engine_t *e, const osse_principal_t *p, json_t *tree,
                              osse_publish_mode_t mode, json_t **out, int *status,
                              osse_fail_t *f)
{
    json_t *details = json_array(), *warnings = json_array();
    osse_wf_t *wf = NULL;
    const osse_wf_refs_t refs = {has_agency, has_calendar, number_taken, e};
    int rc = osse_wf_check(tree, &refs, &wf, details, warnings);
    if (rc) {
        json_decref(warnings);
        if (rc == OSSE_ENOMEM)
            osse__panic(__FILE__, __LINE__, "out of memory");
        f->details = details;
        return osse__fail(f, OSSE_EINVAL, "invalid_definition",
                          "the definition has %zu problem(s)", json_array_size(details));
    }
    json_decref(details);
    /* Identity is the parsed tree: comments, key order and YAML or JSON do
     * not count (SPEC §2), so versions are compared in their canonical JSON,
     * as applying WorkflowPublished stores them. */
    osse_wfent_t *w = osse_map_get(&e->workflows, wf->id);
    char *text = json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS);
    size_t same = 0; /* the version with this content, 0 for none */
    for (size_t k = w ? w->nversions : 0; k > 0 && !same; k--) {
        if (strcmp(w->texts[k - 1], text) == 0)
            same = k;
        if (mode == OSSE_PUBLISH_API)
            break; /* through the API only the latest counts: a revert is a new version */
    }
    free(text);
    int version = same ? (int)w->nversions : w ? (int)w->nversions + 1 : 1;
    *out = json_pack("{s:s,s:i}", "id", wf->id, "version", version);
    if (mode == OSSE_PUBLISH_LOAD && same)
        json_object_set_new(*out, "same_as", json_integer((json_int_t)same));
    if (json_array_size(warnings))
        json_object_set(*out, "warnings", warnings);
    json_decref(warnings);
    *status = same ? 200 : 201;
    if (!same) {
        char stream[128];
        osse__stream(stream, sizeof stream, OSSE_SK_WORKFLOW, wf->id);
        osse__emit(e, stream, OSSE_EV_WorkflowPublished, p,
                   json_pack("{s:s,s:i,s:O}", "id", wf->id, "version", version, "definition",
                             tree));
    }
    osse_wf_free(wf);
    return 0;
}

/* The checks of a PUT /v1/calendars/{id}; on success cal holds the calendar
 * (the caller closes it). */
static int calendar_body(const char *id, const json_t *body, osse_calendar_t *cal, osse_fail_t *f)
{
    if (!osse__id_ok(id))
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "bad calendar id");
    json_t *details = json_array();
    if (osse_calendar_from_json(body, cal, details)) {
        f->details = details;
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the calendar is invalid");
    }
    json_decref(details);
    return 0;
}

int osse_check_calendar(const char *id, const json_t *body, osse_fail_t *f)
{
    osse_calendar_t cal;
    int rc = calendar_body(id, body, &cal, f);
    if (rc == 0)
        osse_calendar_close(&cal);
    return rc;
}

int osse_cmd_put_calendar(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t *body,
                          json_t **out, int *status, osse_fail_t *f)
{
    osse_calendar_t cal;
    int rc = calendar_body(id, body, &cal, f);
    if (rc)
        return rc;
    /* The log keeps the canonical form, so that equal calendars are equal. */
    json_t *canon = osse_calendar_to_json(&cal);
    osse_calendar_ent_t *c = osse_map_get(&e->calendars, id);
    *status = c ? 200 : 201;
    char stream[128];
    osse__stream(stream, sizeof stream, OSSE_SK_CALENDAR, id);
    if (!c || !json_equal(c->body, canon)) {
        /* Every open working-time deadline on this calendar moves: what is
         * left of it under the old calendar is counted again from now under
         * the new one (minutes already used stay used). Computed before the
         * calendar's own event replaces the old calendar. */
        json_t *moves = json_array();
        int64_t now = osse_engine_now(e);
        for (size_t k = 0; c && k < e->nreqs; k++) {
            osse_request_t *r = e->reqs[k];
            if (osse__rstatus_final(r->status) || !r->wf->calendar ||
                strcmp(r->wf->calendar, id) != 0)
                continue;
            for (size_t i = 0; i < r->wf->nsteps; i++) {
                const osse_step_t *st = &r->steps[i];
                if (st->state != OSSE_SS_OPEN || !st->due_at || !osse__sla_working(&r->wf->steps[i]) ||
                    strcmp(st->sla_state, "breached") == 0)
                    continue;
                int64_t due = osse_calendar_add_ms(
                    &cal, now, osse_calendar_between_ms(&c->cal, now, st->due_at));
                int64_t warn =
                    st->warn_at ? osse_calendar_add_ms(
                                      &cal, now, osse_calendar_between_ms(&c->cal, now, st->warn_at))
                                : 0;
                if (due == INT64_MAX || warn == INT64_MAX || (due == st->due_at && warn == st->warn_at))
                    continue;
                json_array_append_new(
                    moves, json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:o}", "request", r->id, "step",
                                     r->wf->steps[i].name, "calendar", id, "old_due_at",
                                     osse__time_json(st->due_at), "due_at", osse__time_json(due),
                                     "old_warn_at", osse__time_json(st->warn_at), "warn_at",
                                     osse__time_json(warn)));
            }
        }
        osse__emit(e, stream, OSSE_EV_CalendarUpdated, p,
                   json_pack("{s:s,s:O}", "id", id, "calendar", canon));
        size_t k;
        json_t *mv;
        json_array_foreach(moves, k, mv)
        {
            char rs[96];
            osse__stream(rs, sizeof rs, OSSE_SK_REQUEST,
                         json_string_value(json_object_get(mv, "request")));
            json_t *data = json_deep_copy(mv);
            json_object_del(data, "request");
            osse__emit(e, rs, OSSE_EV_SlaRescheduled, NULL, data);
        }
        json_decref(moves);
    }
    osse_calendar_close(&cal);
    *out = json_pack("{s:s}", "id", id);
    json_object_update(*out, canon);
    json_decref(canon);
    return 0;
}

static json_t *agency_json(const osse_agency_t *a, bool secret)
{
    json_t *o = json_pack("{s:s,s:s?,s:s?,s:s?}", "id", a->id, "name", a->name, "webhook_url",
                          a->webhook_url, "lookup_url", a->lookup_url);
    if (secret)
        json_object_set_new(o, "webhook_secret", json_string(a->secret));
    return o;
}

/* The checks of a PUT /v1/agencies/{id}; on success the body's strings
 * (borrowed from body). */
static int agency_body(const char *id, const json_t *body, const char **name, const char **wh,
                       const char **lu, osse_fail_t *f)
{
    static const char *const keys[] = {"name", "webhook_url", "lookup_url", NULL};
    if (!osse__id_ok(id))
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "bad agency id");
    int rc = osse__check_keys(body, keys, f);
    if (rc)
        return rc;
    if ((rc = osse__opt_string(body, "name", 500, name, f)) ||
        (rc = osse__opt_string(body, "webhook_url", 2000, wh, f)) ||
        (rc = osse__opt_string(body, "lookup_url", 2000, lu, f)))
        return rc;
    if (!*name || !**name)
        osse__detail(f, "name", "is required");
    if (*wh && !osse__url_ok(*wh))
        osse__detail(f, "webhook_url", "must be an http or https URL");
    if (*lu && !osse__url_ok(*lu))
        osse__detail(f, "lookup_url", "must be an http or https URL");
    if (f->details)
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the agency is invalid");
    return 0;
}

int osse_check_agency(const char *id, const json_t *body, osse_fail_t *f)
{
    const char *name, *wh, *lu;
    return agency_body(id, body, &name, &wh, &lu, f);
}

int osse_cmd_put_agency(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t *body,
                        json_t **out, int *status, osse_fail_t *f)
{
    const char *name, *wh, *lu;
    int rc = agency_body(id, body, &name, &wh, &lu, f);
    if (rc)
        return rc;
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    *status = a ? 200 : 201;
    char stream[128];
    osse__stream(stream, sizeof stream, OSSE_SK_AGENCY, id);
    bool same = a && a->name && strcmp(a->name, name) == 0 &&
                !!a->webhook_url == !!wh && (!wh || strcmp(wh, a->webhook_url) == 0) &&
                !!a->lookup_url == !!lu && (!lu || strcmp(lu, a->lookup_url) == 0);
    if (!same)
        osse__emit(e, stream, OSSE_EV_AgencyUpdated, p,
                   json_pack("{s:s,s:s,s:s?,s:s?}", "id", id, "name", name, "webhook_url", wh,
                             "lookup_url", lu));
    a = osse_map_get(&e->agencies, id);
    if (!a->secret[0]) {
        /* The secret never enters the log: it is a side record written in
         * the same batch as the agency's first event. */
        osse__random_id(a->secret, 32, "");
        char key[160];
        int kl = snprintf(key, sizeof key, OSSE_KEY_AGENCY_SECRET "%s", id);
        osse__batch_need(e);
        if (osse_batch_put(e->batch, key, (size_t)kl, a->secret, 64))
            osse__panic(__FILE__, __LINE__, "out of memory");
    }
    *out = agency_json(a, true);
    return 0;
}

int osse_q_agency(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t **out,
                  osse_fail_t *f)
{
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    if (!a)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no agency %s", id);
    if (p->role == OSSE_ROLE_AGENCY && strcmp(p->agency, id) != 0)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "another agency");
    *out = agency_json(a, p->role == OSSE_ROLE_PLATFORM);
    return 0;
}

/* A list never holds a secret (SPEC §3). */
static json_t *agency_entry(osse_engine_t *e, const osse_principal_t *p, void *v)
{
    (void)e;
    (void)p;
    return agency_json(v, false);
}

int osse_q_agencies(osse_engine_t *e, const osse_principal_t *p, const json_t *params, json_t **out,
                    osse_fail_t *f)
{
    return osse__id_page(e, p, &e->agencies, params, "agencies", agency_entry, out, f);
}

/* Never the token hash: it stays in the log only. */
static json_t *principal_json(const osse_principal_t *p)
{
    return json_pack("{s:s,s:s,s:s?,s:s?,s:b,s:o}", "id", p->id, "role", osse_role_name(p->role),
                     "agency", p->agency, "name", p->name, "revoked", p->revoked, "created_at",
                     osse__time_json(p->created_at));
}

int osse_cmd_create_principal(osse_engine_t *e, const osse_principal_t *p, json_t *body,
                              json_t **out, osse_fail_t *f)
{
    static const char *const keys[] = {"role", "agency", "name", NULL};
    int rc = osse__check_keys(body, keys, f);
    if (rc)
        return rc;
    const char *role, *agency, *name;
    if ((rc = osse__opt_string(body, "role", 32, &role, f)) ||
        (rc = osse__opt_string(body, "agency", 64, &agency, f)) ||
        (rc = osse__opt_string(body, "name", 500, &name, f)))
        return rc;
    osse_role_t r;
    if (!role || osse_role_parse(role, &r))
        osse__detail(f, "role", "must be platform, portal, agency, auditor or payment");
    else if (r == OSSE_ROLE_AGENCY && (!agency || !osse_map_get(&e->agencies, agency)))
        osse__detail(f, "agency", agency ? "unknown agency" : "is required for the agency role");
    else if (r != OSSE_ROLE_AGENCY && agency)
        osse__detail(f, "agency", "only for the agency role");
    if (f->details)
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the principal is invalid");
    char token[OSSE_TOKEN_LEN], id[40], h[65], stream[64];
    osse__new_token(token, h);
    osse__random_id(id, 8, "p-");
    osse__stream(stream, sizeof stream, OSSE_SK_PRINCIPAL, id);
    osse__emit(e, stream, OSSE_EV_PrincipalCreated, p,
               json_pack("{s:s,s:s,s:s?,s:s?,s:s}", "id", id, "role", role, "agency", agency,
                         "name", name, "token_hash", h));
    *out = principal_json(osse_map_get(&e->principals, id));
    json_object_set_new(*out, "token", json_string(token));
    sodium_memzero(token, sizeof token);
    return 0;
}

int osse_cmd_revoke_principal(osse_engine_t *e, const osse_principal_t *p, const char *id,
                              json_t **out, osse_fail_t *f)
{
    osse_principal_t *t = osse_map_get(&e->principals, id);
    if (!t)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no principal %s", id);
    if (!t->revoked && t->role == OSSE_ROLE_PLATFORM) {
        /* Without a platform principal no one could make principals or
         * publish again: the last one stays (SPEC §10). */
        size_t live = 0, it = 0;
        void *v;
        while (osse_map_next(&e->principals, &it, NULL, &v))
            live += ((osse_principal_t *)v)->role == OSSE_ROLE_PLATFORM &&
                    !((osse_principal_t *)v)->revoked;
        if (live == 1)
            return osse__fail(f, OSSE_ECONFLICT, "conflict",
                              "%s is the last platform principal: revoking it would lock the "
                              "platform out; create another platform principal first (or, with "
                              "the server stopped, run osse token --data DIR)",
                              id);
    }
    if (!t->revoked) {
        char stream[64];
        osse__stream(stream, sizeof stream, OSSE_SK_PRINCIPAL, id);
        osse__emit(e, stream, OSSE_EV_PrincipalRevoked, p, json_pack("{s:s}", "id", id));
    }
    *out = principal_json(t);
    return 0;
}

static json_t *principal_entry(osse_engine_t *e, const osse_principal_t *p, void *v)
{
    (void)e;
    (void)p;
    return principal_json(v);
}

int osse_q_principals(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                      json_t **out, osse_fail_t *f)
{
    return osse__id_page(e, p, &e->principals, params, "principals", principal_entry, out, f);
}

/* --- the request lifecycle --- */

static void stream_of(const osse_request_t *r, char *out, size_t n)
{
    osse__stream(out, n, OSSE_SK_REQUEST, r->id);
}

/* A fee as a decimal string "520.00" from satang. */
static void money(int64_t satang, char out[32])
{
    snprintf(out, 32, "%lld.%02lld", (long long)(satang / 100), (long long)(satang % 100));
}

/* Fills {yyyy} and {seq:n} of a licence number template. */
static void licence_number(const char *tpl, int64_t at, uint64_t seq, char *out, size_t n)
{
    size_t o = 0;
    char tm[OSSE_TIME_LEN];
    osse_time_fmt(at, tm);
    for (const char *c = tpl; *c && o + 1 < n;) {
        if (strncmp(c, "{yyyy}", 6) == 0) {
            o += (size_t)snprintf(out + o, n - o, "%.4s", tm);
            c += 6;
        } else if (strncmp(c, "{seq:", 5) == 0 && isdigit((unsigned char)c[5]) && c[6] == '}') {
            o += (size_t)snprintf(out + o, n - o, "%0*llu", c[5] - '0', (unsigned long long)seq);
            c += 7;
        } else {
            out[o++] = *c++;
        }
        if (o >= n)
            o = n - 1;
    }
    out[o] = '\0';
}

static void step_data(json_t *rec, const char *step)
{
    json_object_set_new(rec, "step", json_string(step));
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
    if (s->when && !osse__run_condition(r, s->when, &rec)) {
        step_data(rec, s->name);
        osse__emit(e, stream, OSSE_EV_StepSkipped, NULL, rec);
        return true;
    }
    if (s->when)
        json_decref(rec);
    int64_t due, warn;
    osse__sla_times(e, r, i, now, osse__sla_total(e, r, i, now), &due, &warn);
    osse__emit(e, stream, OSSE_EV_StepOpened, actor,
               json_pack("{s:s,s:s,s:s?,s:o,s:o}", "step", s->name, "kind",
                         osse_wf_step_kind_name(s->kind), "agency", s->agency, "due_at",
                         osse__time_json(due), "warn_at", osse__time_json(warn)));
    if (s->kind == OSSE_STEP_KIND_TASK && s->auto_approve) {
        if (osse__run_condition(r, s->auto_approve, &rec)) {
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
        json_t *v = s->amount ? osse__run_rule(r, s->amount, &rec) : NULL;
        double thb = json_is_number(v) ? json_number_value(v) : -1;
        json_decref(v);
        if (!(thb >= 0 && thb < 1e12)) {
            if (!s->amount)
                rec = json_object();
            step_data(rec, s->name);
            if (!json_object_get(rec, "error"))
                json_object_set_new(rec, "error",
                                    json_string("the amount is not a number from 0 to 10^12"));
            osse__emit(e, stream, OSSE_EV_StepFailed, NULL, rec);
            osse__emit(e, stream, OSSE_EV_RequestRejected, NULL,
                       json_pack("{s:s,s:s}", "step", s->name, "reason",
                                 "the fee cannot be computed"));
            return false;
        }
        int64_t satang = (int64_t)llround(thb * 100);
        char m[32];
        money(satang, m);
        json_object_set_new(rec, "amount", json_string(m));
        json_object_set_new(rec, "amount_satang", json_integer((json_int_t)satang));
        step_data(rec, s->name);
        osse__emit(e, stream, OSSE_EV_PaymentDue, NULL, rec);
    } else if (s->kind == OSSE_STEP_KIND_ISSUE) {
        char number[128];
        r->wfe->licence_seq++;
        licence_number(s->number ? s->number : OSSE_WF_DEFAULT_NUMBER, now, r->wfe->licence_seq,
                       number, sizeof number);
        json_t *pub = json_object();
        for (size_t k = 0; k < s->npublic_fields; k++) {
            json_t *v = json_object_get(r->form, s->public_fields[k]);
            if (v)
                json_object_set(pub, s->public_fields[k], v);
        }
        int64_t until =
            s->valid_for.kind == OSSE_DUR_WALL ? osse_duration_add_wall(&s->valid_for, now) : 0;
        osse__emit(e, stream, OSSE_EV_LicenceIssued, actor,
                   json_pack("{s:s,s:s,s:o,s:o,s:o}", "step", s->name, "number", number,
                             "valid_from", osse__time_json(now), "valid_until",
                             osse__time_json(until), "public_fields", pub));
    } else if (s->kind == OSSE_STEP_KIND_LINKAGE) {
        return osse__linkage_begin(e, r, i);
    }
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
            if (!open_step(e, r, i, actor))
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
    char id[40], code[16], stream[96];
    do
        osse__random_id(id, 10, "r-");
    while (osse__request(e, id));
    /* Tracking codes: 10 characters from an alphabet without look-alikes. */
    static const char alpha[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    do {
        unsigned char raw[10];
        osse__random_bytes(raw, sizeof raw);
        for (int k = 0; k < 10; k++)
            code[k] = alpha[raw[k] % (sizeof alpha - 1)]; /* 32 divides 256: no bias */
        code[10] = '\0';
    } while (osse_map_get(&e->codes, code));
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, id);
    osse__emit(e, stream, OSSE_EV_RequestSubmitted, p,
               json_pack("{s:s,s:s,s:i,s:s,s:s,s:O}", "id", id, "workflow", w->id,
                         "workflow_version", (int)w->nversions, "tracking_code", code, "portal",
                         p->id, "form", form));
    osse_request_t *r = osse__request(e, id);
    osse__advance(e, r, NULL);
    *out = json_pack("{s:s,s:s,s:s,s:i,s:i}", "id", r->id, "tracking_code", r->tracking_code,
                     "status", osse__rstatus_name(r->status), "version", (int)r->version,
                     "workflow_version", r->wf_version);
    return 0;
}

static int find_request(osse_engine_t *e, const osse_principal_t *p, const char *id,
                        osse_request_t **out, osse_fail_t *f)
{
    osse_request_t *r = osse__request(e, id);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no request %s", id);
    if (!osse__can_read(p, r))
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "this request is not yours to see");
    *out = r;
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
    int rc = find_request(e, p, request_id, &r, f);
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
    if (!outcome || (strcmp(outcome, "approve") && strcmp(outcome, "reject") &&
                     strcmp(outcome, "return"))) {
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
    json_t *data = json_pack("{s:s,s:s,s:s,s:s?}", "step", step, "agency", p->agency, "outcome",
                             outcome, "reason", reason);
    if (strcmp(outcome, "return") == 0 && st->due_at) {
        /* The SLA clock stops: what is left of it is recorded, in the SLA's
         * own kind of time, and resumes when the applicant answers. */
        int64_t now = osse_engine_now(e);
        json_object_set_new(data, "sla_remaining_ms",
                            json_integer(osse__sla_between(e, r, (size_t)i, now, st->due_at)));
        if (st->warn_at)
            json_object_set_new(
                data, "warn_remaining_ms",
                json_integer(osse__sla_between(e, r, (size_t)i, now, st->warn_at)));
    }
    osse__emit(e, stream, OSSE_EV_TaskDecided, p, data);
    if (strcmp(outcome, "approve") == 0)
        osse__advance(e, r, NULL);
    else if (strcmp(outcome, "reject") == 0)
        osse__emit(e, stream, OSSE_EV_RequestRejected, NULL,
                   json_pack("{s:s,s:s?}", "step", step, "reason", reason));
    *out = osse__request_view(e, r, false);
    return 0;
}

static int own_request(osse_engine_t *e, const osse_principal_t *p, const char *id,
                       osse_request_t **out, osse_fail_t *f)
{
    int rc = find_request(e, p, id, out, f);
    if (rc)
        return rc;
    if (p->role != OSSE_ROLE_PORTAL || !(*out)->portal || strcmp((*out)->portal, p->id) != 0)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "only the portal that submitted a request may do this");
    return 0;
}

int osse_cmd_info(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                  json_t *body, json_t **out, osse_fail_t *f)
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
    if (form) {
        json_t *details = json_array();
        if (osse_wf_check_form(r->wf, form, true, details)) {
            f->details = details;
            return osse__fail(f, OSSE_EINVAL, "invalid_form", "the form has %zu error(s)",
                              json_array_size(details));
        }
        json_decref(details);
    }
    if ((rc = check_expected_version(body, r, i, f)))
        return rc;
    if (r->steps[i].state != OSSE_SS_WAITING_APPLICANT)
        return osse__fail(f, OSSE_ECONFLICT, "conflict",
                          "step %s is %s, not waiting for the applicant", step,
                          osse__sstate_name(r->steps[i].state));
    char stream[96];
    stream_of(r, stream, sizeof stream);
    json_t *data =
        json_pack("{s:s,s:O?,s:s?}", "step", step, "form", form, "message", message);
    const osse_step_t *st = &r->steps[i];
    if (st->remaining_ms >= 0) {
        int64_t now = osse_engine_now(e);
        json_object_set_new(data, "due_at",
                            osse__time_json(osse__sla_add(e, r, (size_t)i, now, st->remaining_ms)));
        json_object_set_new(data, "warn_at",
                            st->warn_remaining_ms > 0
                                ? osse__time_json(
                                      osse__sla_add(e, r, (size_t)i, now, st->warn_remaining_ms))
                                : json_null());
    }
    osse__emit(e, stream, OSSE_EV_InfoProvided, p, data);
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
    osse__emit(e, stream, OSSE_EV_RequestWithdrawn, p, json_pack("{s:s?}", "reason", reason));
    *out = osse__request_view(e, r, false);
    return 0;
}

int osse_cmd_test_clock(osse_engine_t *e, const osse_principal_t *p, json_t *body, json_t **out,
                        osse_fail_t *f)
{
    static const char *const keys[] = {"advance", "now", NULL};
    int rc = osse__check_keys(body, keys, f);
    if (rc)
        return rc;
    const char *adv = osse__jstr(body, "advance"), *now = osse__jstr(body, "now");
    int64_t to = e->clock;
    if (adv && !now) {
        osse_duration_t d;
        if (osse_duration_parse(adv, &d) || d.kind != OSSE_DUR_WALL) {
            osse__detail(f, "advance", "must be an ISO 8601 duration such as PT26H");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "advance is invalid");
        }
        to = osse_duration_add_wall(&d, e->clock);
    } else if (now && !adv) {
        if (osse_time_parse(now, &to)) {
            osse__detail(f, "now", "must be an RFC 3339 time");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "now is invalid");
        }
    } else {
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "give exactly one of advance, now");
    }
    if (to < e->clock) {
        char t[OSSE_TIME_LEN];
        return osse__fail(f, OSSE_ECONFLICT, "clock_backwards",
                          "the clock does not go back: it stands at %s",
                          osse_time_fmt(e->clock, t));
    }
    osse__timers_fire(e, to, true);
    e->clock = to;
    osse__test_clock_store(e);
    *out = json_pack("{s:o}", "now", osse__time_json(e->clock));
    return 0;
}
