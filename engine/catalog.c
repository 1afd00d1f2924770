/* catalog.c: the commands of the catalog: workflow definitions, calendars,
 * agencies and principals (SPEC §3, §4), and the reads of agencies and
 * principals.
 *
 * Every command checks its whole input against the projections first and
 * returns a failure with nothing changed; only then does it emit events
 * (osse__emit applies each at once). */
#include "engine/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "engine/thaiqr.h"

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

struct osse_publish_prep_s {
    json_t *tree;
    osse_wf_checked_t *checked;
    char *text; /* canonical JSON, when the text half found no problem */
};

int osse_cmd_publish_prepare(json_t *tree, osse_publish_prep_t **out)
{
    osse_publish_prep_t *prep = osse_calloc(1, sizeof *prep);
    *out = NULL;
    if (!prep) {
        json_decref(tree);
        return OSSE_ENOMEM;
    }
    prep->tree = tree;
    if (osse_wf_check_text(tree, &prep->checked)) {
        osse_publish_prep_free(prep);
        return OSSE_ENOMEM;
    }
    /* Identity is the parsed tree: comments, key order and YAML or JSON do
     * not count (SPEC §2), so versions are compared in their canonical JSON,
     * as applying WorkflowPublished stores them. A definition with problems
     * is never compared. */
    if (osse_wf_checked_valid(prep->checked) &&
        !(prep->text = json_dumps(tree, JSON_COMPACT | JSON_SORT_KEYS))) {
        osse_publish_prep_free(prep);
        return OSSE_ENOMEM;
    }
    *out = prep;
    return 0;
}

void osse_publish_prep_free(osse_publish_prep_t *prep)
{
    if (!prep)
        return;
    osse_wf_checked_free(prep->checked);
    json_decref(prep->tree);
    free(prep->text);
    free(prep);
}

int osse_cmd_publish_workflow(osse_engine_t *e, const osse_principal_t *p,
                              osse_publish_prep_t *prep, osse_publish_mode_t mode, json_t **out,
                              int *status, osse_fail_t *f)
{
    json_t *details = json_array(), *warnings = json_array();
    osse_wf_t *wf = NULL;
    const osse_wf_refs_t refs = {has_agency, has_calendar, number_taken, e};
    int rc = osse_wf_check_refs(prep->checked, &refs, &wf, details, warnings);
    if (rc) {
        json_decref(warnings);
        if (rc == OSSE_ENOMEM)
            osse__panic(__FILE__, __LINE__, "out of memory");
        f->details = details;
        return osse__fail(f, OSSE_EINVAL, "invalid_definition", "the definition has %zu problem(s)",
                          json_array_size(details));
    }
    json_decref(details);
    osse_wfent_t *w = osse_map_get(&e->workflows, wf->id);
    size_t same = 0; /* the version with this content, 0 for none */
    for (size_t k = w ? w->nversions : 0; k > 0 && !same; k--) {
        if (strcmp(w->texts[k - 1], prep->text) == 0)
            same = k;
        if (mode == OSSE_PUBLISH_API)
            break; /* through the API only the latest counts: a revert is a new version */
    }
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
        json_t *data =
            json_pack("{s:s,s:i,s:O}", "id", wf->id, "version", version, "definition", prep->tree);
        /* Applying the event takes the compiled definition instead of
         * compiling it a second time on the loop. */
        e->handover.tree = prep->tree;
        e->handover.wf = wf;
        e->handover.text = prep->text;
        prep->text = NULL;
        wf = NULL;
        osse__emit(e, stream, OSSE_EV_WorkflowPublished, p, data);
        osse_wf_free(e->handover.wf);
        free(e->handover.text);
        e->handover.tree = NULL;
        e->handover.wf = NULL;
        e->handover.text = NULL;
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
        for (osse_request_t *r = c ? e->open.first : NULL; r; r = r->open_next) {
            if (!r->wf->calendar || strcmp(r->wf->calendar, id) != 0)
                continue;
            for (size_t i = 0; i < r->wf->nsteps; i++) {
                const osse_step_t *st = &r->steps[i];
                if (st->state != OSSE_SS_OPEN || !st->due_at ||
                    !osse__sla_working(&r->wf->steps[i]) || strcmp(st->sla_state, "breached") == 0)
                    continue;
                int64_t due = osse_calendar_add_ms(
                    &cal, now, osse_calendar_between_ms(&c->cal, now, st->due_at));
                int64_t warn =
                    st->warn_at
                        ? osse_calendar_add_ms(&cal, now,
                                               osse_calendar_between_ms(&c->cal, now, st->warn_at))
                        : 0;
                if (due == INT64_MAX || warn == INT64_MAX ||
                    (due == st->due_at && warn == st->warn_at))
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
    json_t *o = json_pack("{s:s,s:s?,s:s?,s:s?,s:s?}", "id", a->id, "name", a->name, "webhook_url",
                          a->webhook_url, "lookup_url", a->lookup_url, "biller_id", a->biller_id);
    if (secret)
        json_object_set_new(o, "webhook_secret", json_string(a->secret));
    return o;
}

/* The checks of a PUT /v1/agencies/{id}; on success the body's strings
 * (borrowed from body). */
static int agency_body(const char *id, const json_t *body, const char **name, const char **wh,
                       const char **lu, const char **biller, osse_fail_t *f)
{
    static const char *const keys[] = {"name", "webhook_url", "lookup_url", "biller_id", NULL};
    if (!osse__id_ok(id))
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "bad agency id");
    int rc = osse__check_keys(body, keys, f);
    if (rc)
        return rc;
    if ((rc = osse__opt_string(body, "name", 500, name, f)) ||
        (rc = osse__opt_string(body, "webhook_url", 2000, wh, f)) ||
        (rc = osse__opt_string(body, "lookup_url", 2000, lu, f)) ||
        (rc = osse__opt_string(body, "biller_id", 64, biller, f)))
        return rc;
    if (!*name || !**name)
        osse__detail(f, "name", "is required");
    if (*wh && !osse__url_ok(*wh))
        osse__detail(f, "webhook_url", "must be an http or https URL");
    if (*lu && !osse__url_ok(*lu))
        osse__detail(f, "lookup_url", "must be an http or https URL");
    if (*biller && !osse__biller_id_ok(*biller))
        osse__detail(f, "biller_id", "must be a PromptPay biller id of 15 digits");
    if (f->details)
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the agency is invalid");
    return 0;
}

int osse_check_agency(const char *id, const json_t *body, osse_fail_t *f)
{
    const char *name, *wh, *lu, *biller;
    return agency_body(id, body, &name, &wh, &lu, &biller, f);
}

int osse_cmd_put_agency(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t *body,
                        json_t **out, int *status, osse_fail_t *f)
{
    const char *name, *wh, *lu, *biller;
    int rc = agency_body(id, body, &name, &wh, &lu, &biller, f);
    if (rc)
        return rc;
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    *status = a ? 200 : 201;
    char stream[128];
    osse__stream(stream, sizeof stream, OSSE_SK_AGENCY, id);
    bool same = a && a->name && strcmp(a->name, name) == 0 && !!a->webhook_url == !!wh &&
                (!wh || strcmp(wh, a->webhook_url) == 0) && !!a->lookup_url == !!lu &&
                (!lu || strcmp(lu, a->lookup_url) == 0) && !!a->biller_id == !!biller &&
                (!biller || strcmp(biller, a->biller_id) == 0);
    if (!same)
        osse__emit(e, stream, OSSE_EV_AgencyUpdated, p,
                   json_pack("{s:s,s:s,s:s?,s:s?,s:s?}", "id", id, "name", name, "webhook_url", wh,
                             "lookup_url", lu, "biller_id", biller));
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

#define SECRET_OVERLAP_MS (24LL * 3600 * 1000)

int osse_cmd_rotate_agency_secret(osse_engine_t *e, const osse_principal_t *p, const char *id,
                                  json_t **out, osse_fail_t *f)
{
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    if (!a)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no agency %s", id);
    int64_t until = osse_engine_now(e) + SECRET_OVERLAP_MS;
    char stream[128], key[160], val[96];
    osse__stream(stream, sizeof stream, OSSE_SK_AGENCY, id);
    /* The event says that and until when, never which: both secrets are side
     * records in the event's batch. */
    osse__emit(e, stream, OSSE_EV_AgencySecretRotated, p,
               json_pack("{s:s,s:o}", "id", id, "previous_valid_until", osse__time_json(until)));
    memcpy(a->old_secret, a->secret, sizeof a->secret);
    a->old_until = until;
    osse__random_id(a->secret, 32, "");
    osse__batch_need(e);
    int kl = snprintf(key, sizeof key, OSSE_KEY_AGENCY_SECRET "%s", id);
    if (osse_batch_put(e->batch, key, (size_t)kl, a->secret, strlen(a->secret)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    kl = snprintf(key, sizeof key, OSSE_KEY_AGENCY_OLD_SECRET "%s", id);
    int vl = snprintf(val, sizeof val, "%lld:%s", (long long)until, a->old_secret);
    if (osse_batch_put(e->batch, key, (size_t)kl, val, (size_t)vl))
        osse__panic(__FILE__, __LINE__, "out of memory");
    sodium_memzero(val, sizeof val);
    *out = agency_json(a, true);
    json_object_set_new(*out, "previous_secret_valid_until", osse__time_json(until));
    return 0;
}

int osse_q_agency(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t **out,
                  osse_fail_t *f)
{
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    if (!a)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no agency %s", id);
    /* The answer holds the webhook secret (SPEC §3): the platform's and
     * that agency's own, no one else's. */
    if (p->role != OSSE_ROLE_PLATFORM &&
        !(p->role == OSSE_ROLE_AGENCY && p->agency && strcmp(p->agency, id) == 0))
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "agency %s is read only by the platform and by that agency", id);
    *out = agency_json(a, true);
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
