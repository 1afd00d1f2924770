/* views.c: the read side: tracking views, lists, inboxes (the statistics are stats.c).
 *
 * Everything here reads the projections and builds JSON; nothing changes
 * state. Pagination cursors are opaque strings that encode the sort key of
 * the last item shown, so a page never repeats or skips an item that was
 * already there when the first page was read. */
#define _GNU_SOURCE /* memmem */
#include "engine/internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/time.h"

#define DEFAULT_LIMIT 50
#define MAX_LIMIT 500

static const char *param(const json_t *params, const char *k)
{
    return json_string_value(json_object_get(params, k));
}

static int limit_param(const json_t *params, size_t dflt, size_t *out, osse_fail_t *f)
{
    const char *s = param(params, "limit");
    *out = dflt;
    if (!s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end || v < 1 || v > MAX_LIMIT) {
        osse__detail(f, "limit", "must be an integer from 1 to %d", MAX_LIMIT);
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "limit is invalid");
    }
    *out = (size_t)v;
    return 0;
}

/* An agency has a task in a request once one of its steps has opened: a
 * step still pending (or skipped) was never given to it. */
static bool has_task(const osse_request_t *r, const char *agency)
{
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if (r->steps[i].opened_at && r->steps[i].agency && strcmp(r->steps[i].agency, agency) == 0)
            return true;
    return false;
}

/* The fee (SPEC §4): {"amount","paid","reference","qr"} of the request's
 * payment step (a definition has at most one) once it is due; else null. */
json_t *osse__fee_json(const osse_request_t *r)
{
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        if (r->wf->steps[i].kind != OSSE_STEP_KIND_PAYMENT || s->amount_satang < 0)
            continue;
        char m[32];
        snprintf(m, sizeof m, "%" PRId64 ".%02" PRId64, s->amount_satang / 100,
                 s->amount_satang % 100);
        return json_pack("{s:s,s:b,s:s?,s:s?}", "amount", m, "paid", s->paid, "reference",
                         s->reference, "qr", s->qr);
    }
    return json_null();
}

bool osse__can_read(const osse_principal_t *p, const osse_request_t *r)
{
    switch (p->role) {
    case OSSE_ROLE_PLATFORM:
    case OSSE_ROLE_AUDITOR: return true;
    case OSSE_ROLE_PORTAL: return r->portal && strcmp(r->portal, p->id) == 0;
    case OSSE_ROLE_AGENCY: return has_task(r, p->agency);
    default: return false;
    }
}

static json_t *step_view(const osse_request_t *r, size_t i, bool public_view)
{
    const osse_wf_step_t *s = &r->wf->steps[i];
    const osse_step_t *st = &r->steps[i];
    json_t *o = json_pack("{s:s,s:s,s:s?,s:s,s:o,s:o,s:o,s:s}", "name", s->name, "kind",
                          osse_wf_step_kind_name(s->kind), "agency", st->agency, "state",
                          osse__sstate_name(st->state), "opened_at", osse__time_json(st->opened_at),
                          "due_at", osse__time_json(st->due_at), "decided_at",
                          osse__time_json(st->decided_at), "sla", st->sla_state);
    json_object_set_new(o, "outcome", st->outcome ? json_string(st->outcome) : json_null());
    if (!public_view)
        json_object_set_new(o, "reason", osse__pii_text_json(st->reason));
    return o;
}

json_t *osse__request_view(osse_engine_t *e, const osse_request_t *r, bool public_view)
{
    json_t *steps = json_array(), *tl = json_array();
    for (size_t i = 0; i < r->wf->nsteps; i++)
        json_array_append_new(steps, step_view(r, i, public_view));
    for (size_t i = 0; i < r->ntimeline; i++)
        json_array_append_new(tl,
                              json_pack("{s:o,s:s,s:s}", "at", osse__time_json(r->timeline[i].at),
                                        "type", r->timeline[i].type, "text", r->timeline[i].text));
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:i,s:o,s:s}", "id", r->id, "workflow", r->wfe->id,
                          "workflow_version", r->wf_version, "status",
                          osse__rstatus_name(r->status), "version", (int)r->version, "submitted_at",
                          osse__time_json(r->submitted_at), "tracking_code", r->tracking_code);
    /* Reasons are shown only to those who may read the request: a
     * person's reason is free text that may name someone (SPEC §4, §8). */
    if (public_view) {
        json_object_del(o, "id");
    } else {
        json_object_set_new(o, "reason", osse__pii_text_json(r->reason));
        json_object_set(o, "form", osse__form(r));
        /* Only once erased, so that the views of other requests, and the
         * digest of a log without erasures, stay as they were. */
        if (r->erased_at)
            json_object_set_new(o, "erased_at", osse__time_json(r->erased_at));
    }
    json_object_set_new(o, "steps", steps);
    json_object_set_new(o, "fee", osse__fee_json(r));
    json_object_set_new(o, "licence",
                        r->licence
                            ? json_pack("{s:O,s:s,s:O,s:O,s:O}", "number",
                                        json_object_get(r->licence, "number"), "status",
                                        osse__licence_status(r), "valid_from",
                                        json_object_get(r->licence, "valid_from"), "valid_until",
                                        json_object_get(r->licence, "valid_until"), "jws",
                                        json_object_get(r->licence, "jws"))
                            : json_null());
    json_object_set_new(o, "timeline", tl);
    return o;
}

/* A sealed value of r as its reader sees it (new reference): opened under
 * the first of paths (NULL-terminated) it opens under, "[encrypted]" if
 * none; "[withheld]" when the reader may not see it in plain. */
static json_t *shown(osse_engine_t *e, const osse_request_t *r, bool plain, const json_t *v,
                     const char *const *paths)
{
    if (!osse__pii_sealed(v))
        return json_incref((json_t *)v);
    if (!plain)
        return json_string(OSSE_PII_WITHHELD);
    json_t *out;
    for (size_t i = 0; paths[i]; i++)
        if (osse__pii_try_open(e, r->id, paths[i], v, &out) == 0)
            return out;
    return json_string(OSSE_PII_ENCRYPTED);
}

char *osse_engine_render_answer(osse_engine_t *e, const osse_principal_t *p, const char *body,
                                size_t len, size_t *outlen)
{
    if (!body || !memmem(body, len, "\"enc\"", 5))
        return NULL;
    json_t *o = json_loadb(body, len, 0, NULL);
    const char *rid = osse__jstr(o, "id");
    osse_request_t *r = rid ? osse__request(e, rid) : NULL;
    json_t *form = json_object_get(o, "form"), *steps = json_object_get(o, "steps");
    char *out = NULL;
    if (r && r->erased_at && json_is_object(form)) {
        /* An answer remembered before the erasure (a repeated submission):
         * its values read "[erased]" for every reader, as the view does. */
        json_t *x = osse__pii_erased(o);
        out = json_dumps(x, JSON_COMPACT);
        *outlen = out ? strlen(out) : 0;
        json_decref(x);
    } else if (r && json_is_object(form)) {
        bool plain = p && p->role != OSSE_ROLE_AUDITOR && osse__can_read(p, r);
        json_t *f = json_object();
        const char *k;
        json_t *v;
        char path[160];
        const char *one[] = {path, NULL};
        json_object_foreach(form, k, v)
        {
            if (json_is_object(v) && !osse__pii_sealed(v)) {
                /* A pii file field: only its name sealed, as form.<k>.name. */
                json_t *x, *fo = json_object();
                const char *m;
                json_object_foreach(v, m, x)
                {
                    snprintf(path, sizeof path, "form.%s.%s", k, m);
                    json_object_set_new(fo, m, shown(e, r, plain, x, one));
                }
                json_object_set_new(f, k, fo);
                continue;
            }
            snprintf(path, sizeof path, "form.%s", k);
            json_object_set_new(f, k, shown(e, r, plain, v, one));
        }
        json_object_set_new(o, "form", f);
        /* Reasons: a step's was sealed as steps.<name>.reason; the
         * request's as "reason" (a withdrawal) or as the rejecting step's. */
        size_t i, n = json_array_size(steps);
        char **paths = osse_calloc(n + 2, sizeof *paths);
        paths[0] = osse_strdup("reason");
        json_array_foreach(steps, i, v)
        {
            const char *name = osse__jstr(v, "name");
            snprintf(path, sizeof path, "steps.%s.reason", name ? name : "");
            paths[i + 1] = osse_strdup(path);
            json_t *why = json_object_get(v, "reason");
            if (why)
                json_object_set_new(v, "reason", shown(e, r, plain, why, one));
        }
        json_t *why = json_object_get(o, "reason");
        if (why)
            json_object_set_new(o, "reason", shown(e, r, plain, why, (const char *const *)paths));
        for (i = 0; i <= n; i++)
            free(paths[i]);
        free(paths);
        out = json_dumps(o, JSON_COMPACT);
        *outlen = out ? strlen(out) : 0;
    } else if (!r && rid && osse__pii_sealed(json_object_get(o, "name")) &&
               json_object_get(o, "sha256")) {
        /* An upload's answer (engine/files.c), its name sealed under the
         * file's key: only its uploader is ever answered it. */
        json_object_set_new(o, "name",
                            osse__pii_open(e, rid, "file.name", json_object_get(o, "name")));
        out = json_dumps(o, JSON_COMPACT);
        *outlen = out ? strlen(out) : 0;
    }
    json_decref(o);
    return out;
}

int osse__find_request(osse_engine_t *e, const osse_principal_t *p, const char *id,
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

int osse_q_request(osse_engine_t *e, const osse_principal_t *p, const char *id, bool public_view,
                   json_t **out, osse_fail_t *f)
{
    osse_request_t *r = NULL;
    int rc = osse__find_request(e, p, id, &r, f);
    if (!rc)
        *out = osse__request_view(e, r, public_view);
    return rc;
}

int osse_q_track(osse_engine_t *e, const char *code, json_t **out, osse_fail_t *f)
{
    char key[OSSE__CODE_SIZE];
    osse_request_t *r =
        osse_trackcode_key(code, key, sizeof key) ? osse_map_get(&e->codes, key) : NULL;
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no request with this tracking code");
    *out = osse__request_view(e, r, true);
    return 0;
}

int osse_q_request_seqs(osse_engine_t *e, const osse_principal_t *p, const char *id,
                        uint64_t **seqs, size_t *n, osse_fail_t *f)
{
    osse_request_t *r = osse__request(e, id);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no request %s", id);
    if (!osse__can_read(p, r))
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "this request is not yours to see");
    uint64_t durable = osse_log_durable_seq(e->log);
    *seqs = osse_malloc((r->nseqs ? r->nseqs : 1) * sizeof **seqs);
    *n = 0;
    for (size_t i = 0; i < r->nseqs; i++)
        if (r->seqs[i] <= durable)
            (*seqs)[(*n)++] = r->seqs[i];
    return 0;
}

/* The request list's filters, for its scan's test on the pool. */
typedef struct {
    char *portal; /* a portal sees only its own */
    char *workflow, *agency;
    bool has_status, has_breached, breached;
    osse_rstatus_t status;
} list_q_t;

static void list_drop(osse_scan_t *s)
{
    list_q_t *q = s->q;
    free(q->portal);
    free(q->workflow);
    free(q->agency);
    free(q);
}

static bool list_match(const list_q_t *q, const osse__list_entry_t *l)
{
    if (q->portal && (!l->portal || strcmp(l->portal, q->portal) != 0))
        return false;
    if ((q->workflow && strcmp(l->workflow, q->workflow) != 0) ||
        (q->has_status && l->status != q->status) ||
        (q->has_breached && l->breached != q->breached))
        return false;
    if (!q->agency)
        return true;
    for (size_t i = 0; i < l->nagencies; i++)
        if (strcmp(l->agencies[i], q->agency) == 0)
            return true;
    return false;
}

/* Pool thread. An entry that does not decode is kept, and finish fails. */
static bool list_keep(const osse_scan_t *s, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    (void)key, (void)klen;
    osse__list_entry_t l;
    if (osse__ix_list_decode(val, vlen, &l))
        return true;
    bool m = list_match(s->q, &l);
    osse__ix_list_clear(&l);
    return m;
}

static int list_finish(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f)
{
    (void)e;
    size_t limit = s->want - 1;
    json_t *arr = json_array();
    uint64_t last = 0;
    for (size_t i = 0; i < s->nrows && i < limit; i++) {
        osse__list_entry_t l;
        if (s->rows[i].klen != OSSE_KEY_LEN(OSSE_KEY_LIST) + 8 ||
            osse__ix_list_decode(s->rows[i].val, s->rows[i].vlen, &l)) {
            json_decref(arr);
            return osse__fail(f, OSSE_EIO, "internal", "a damaged entry of the request list");
        }
        last = ~osse_be_get(s->rows[i].key + OSSE_KEY_LEN(OSSE_KEY_LIST), 8);
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:i,s:s,s:i,s:o,s:s}", "id", l.id, "workflow", l.workflow,
                           "workflow_version", l.workflow_version, "status",
                           osse__rstatus_name(l.status), "version", (int)l.version, "submitted_at",
                           osse__time_json(l.submitted_at), "tracking_code", l.tracking_code));
        osse__ix_list_clear(&l);
    }
    /* Only promise a next page when one more match exists. */
    char next[32];
    snprintf(next, sizeof next, "%llu", (unsigned long long)last);
    *out = json_pack("{s:o,s:o}", "requests", arr, "next_cursor",
                     s->nrows > limit ? json_string(next) : json_null());
    return 0;
}

int osse_q_requests(osse_engine_t *e, const osse_principal_t *p, json_t *params, osse_scan_t **out,
                    osse_fail_t *f)
{
    static const char *const allowed[] = {"workflow", "status", "agency", "breached",
                                          "limit",    "cursor", NULL};
    size_t limit;
    int rc = osse__check_params(params, allowed, f);
    if (rc || (rc = limit_param(params, DEFAULT_LIMIT, &limit, f)))
        return rc;
    const char *wf = param(params, "workflow"), *st = param(params, "status"),
               *ag = param(params, "agency"), *br = param(params, "breached"),
               *cur = param(params, "cursor");
    osse_rstatus_t status = 0;
    if (st && osse__rstatus_parse(st, &status)) {
        osse__detail(f, "status", "unknown status");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "status is invalid");
    }
    if (br && strcmp(br, "true") && strcmp(br, "false")) {
        osse__detail(f, "breached", "must be true or false");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "breached is invalid");
    }
    /* The cursor is the first seq of the last request shown: the next page
     * begins with the one submitted before it. */
    uint64_t before = UINT64_MAX; /* its key sorts before every entry's */
    if (cur) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(cur, &end, 10);
        if (*cur < '1' || *cur > '9' || *end || errno) {
            osse__detail(f, "cursor", "is not a cursor this server gave");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "cursor is invalid");
        }
        before = v;
    }
    uint8_t start[OSSE__IX_KEY_MAX];
    size_t slen = osse__ix_list_key(before, start);
    if (cur)
        start[slen++] = 0; /* after the cursor's own entry */
    uint8_t stop[OSSE__IX_KEY_MAX];
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_LIST);
    memcpy(stop, OSSE_KEY_LIST, pl);
    stop[pl - 1]++; /* "lst0": past every entry */
    osse_scan_t *s = osse__scan_new(e, start, slen, stop, pl, limit + 1);
    list_q_t *q = osse_calloc(1, sizeof *q);
    q->portal = p->role == OSSE_ROLE_PORTAL ? osse_strdup(p->id ? p->id : "") : NULL;
    q->workflow = wf ? osse_strdup(wf) : NULL;
    q->agency = ag ? osse_strdup(ag) : NULL;
    q->has_status = st != NULL;
    q->status = status;
    q->has_breached = br != NULL;
    q->breached = br && strcmp(br, "true") == 0;
    s->q = q;
    s->keep = list_keep;
    s->finish = list_finish;
    s->drop = list_drop;
    *out = s;
    return 0;
}

static json_t *task_json(const char *request_id, const char *step, const char *workflow,
                         osse_sstate_t state, int64_t opened_at, int64_t due_at, const char *sla,
                         uint32_t version)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:i}", "request_id", request_id, "step", step,
                     "workflow", workflow, "state", osse__sstate_name(state), "opened_at",
                     osse__time_json(opened_at), "due_at", osse__time_json(due_at), "sla", sla,
                     "version", (int)version);
}

/* `version` is the request's: any version from the one the agency read up
 * to this one is a fresh expected_version for this step, as long as nothing
 * changed the step or the form since (request.c). */
json_t *osse__task_entry(const osse_request_t *r, size_t i)
{
    const osse_step_t *s = &r->steps[i];
    return task_json(r->id, r->wf->steps[i].name, r->wfe->id, s->state, s->opened_at, s->due_at,
                     s->sla_state, r->version);
}

static int cmp_task(const osse__task_key_t *x, const osse__task_key_t *y)
{
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    if (x->k2 != y->k2)
        return x->k2 < y->k2 ? -1 : 1;
    if (x->seq0 != y->seq0)
        return x->seq0 < y->seq0 ? -1 : 1;
    return (int)x->step - (int)y->step;
}

/* A live task found in memory: its place and where it is. */
typedef struct {
    osse__task_key_t k;
    uint32_t req;
} live_t;

static int cmp_live(const void *a, const void *b)
{
    return cmp_task(&((const live_t *)a)->k, &((const live_t *)b)->k);
}

/* An inbox's query: the tasks that may still be live are read from memory
 * in finish (on the loop, after the scan), the ended ones from the index
 * tsk/<agency>/ on the pool. */
typedef struct {
    char *agency;
    bool all, live, has_cur, by_due;
    osse_sstate_t state;
    osse__task_key_t after;
    size_t limit, plen; /* plen: the scanned keys' prefix */
} inbox_q_t;

static void inbox_drop(osse_scan_t *s)
{
    inbox_q_t *q = s->q;
    free(q->agency);
    free(q);
}

/* Pool thread. An entry that does not decode is kept, and finish fails. */
static bool inbox_keep(const osse_scan_t *s, const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    (void)key, (void)klen;
    const inbox_q_t *q = s->q;
    if (q->all)
        return true;
    osse__inbox_entry_t t;
    if (osse__ix_inbox_decode(val, vlen, &t))
        return true;
    bool m = t.state == q->state;
    osse__ix_inbox_clear(&t);
    return m;
}

/* Open and waiting tasks are among the agency's active ones (those that
 * have ended or moved away are dropped here, in place). */
static live_t *inbox_live(osse_engine_t *e, const inbox_q_t *q, size_t *n)
{
    osse_agency_t *a = osse_map_get(&e->agencies, q->agency);
    *n = 0;
    if (!a || !q->live)
        return NULL;
    live_t *v = osse_malloc((a->nactive ? a->nactive : 1) * sizeof *v);
    for (size_t i = 0; i < a->nactive;) {
        const osse_request_t *r = osse__slot(e, a->active[i].req);
        size_t step = a->active[i].step;
        const osse_step_t *s = r ? &r->steps[step] : NULL;
        if (!s || !s->agency || strcmp(s->agency, q->agency) != 0 || osse__sstate_final(s->state)) {
            a->active[i] = a->active[--a->nactive]; /* the last one is looked at next */
            continue;
        }
        i++;
        if (!q->all && s->state != q->state)
            continue;
        osse__task_key_t due, opened;
        osse__task_keys(s, r->seqs[0], step, &due, &opened);
        live_t l = {q->by_due ? due : opened, r->index};
        if (q->has_cur && cmp_task(&l.k, &q->after) <= 0)
            continue;
        v[(*n)++] = l;
    }
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_live);
    return v;
}

static int inbox_finish(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f)
{
    inbox_q_t *q = s->q;
    size_t nlive;
    live_t *live = inbox_live(e, q, &nlive);
    json_t *arr = json_array();
    osse__task_key_t last = {0};
    size_t i = 0, j = 0; /* live, disk */
    int rc = 0;
    while (!rc && json_array_size(arr) < q->limit && (i < nlive || j < s->nrows)) {
        osse__task_key_t dk;
        osse__inbox_entry_t t;
        if (j < s->nrows &&
            (osse__ix_inbox_key_get(s->rows[j].key, s->rows[j].klen, q->plen, &dk) ||
             osse__ix_inbox_decode(s->rows[j].val, s->rows[j].vlen, &t))) {
            rc = osse__fail(f, OSSE_EIO, "internal", "a damaged entry of an inbox");
            break;
        }
        if (j < s->nrows && (i >= nlive || cmp_task(&dk, &live[i].k) < 0)) {
            json_array_append_new(arr, task_json(t.request_id, t.step, t.workflow, t.state,
                                                 t.opened_at, t.due_at, t.sla, t.version));
            osse__ix_inbox_clear(&t);
            last = dk;
            j++;
        } else {
            if (j < s->nrows)
                osse__ix_inbox_clear(&t);
            /* Ended and gone from memory since the query began: what the
             * scan read is the page (a rare race, not an error). */
            const osse_request_t *r = osse__slot(e, live[i].req);
            if (r)
                json_array_append_new(arr, osse__task_entry(r, live[i].k.step));
            last = live[i].k;
            i++;
        }
    }
    /* Only promise a next page when one more exists. */
    json_t *next = json_null();
    if (!rc && nlive + s->nrows > q->limit) {
        char c[96];
        snprintf(c, sizeof c, "%lld.%lld.%llu.%u", (long long)last.k1, (long long)last.k2,
                 (unsigned long long)last.seq0, (unsigned)last.step);
        next = json_string(c);
    }
    free(live);
    if (rc) {
        json_decref(arr);
        json_decref(next);
        return rc;
    }
    *out = json_pack("{s:o,s:o}", "tasks", arr, "next_cursor", next);
    return 0;
}

int osse_q_inbox(osse_engine_t *e, const osse_principal_t *p, const char *agency, json_t *params,
                 osse_scan_t **out, osse_fail_t *f)
{
    static const char *const allowed[] = {"state", "sort", "limit", "cursor", NULL};
    osse_agency_t *a = osse_map_get(&e->agencies, agency);
    if (!a)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no agency %s", agency);
    if (p->role == OSSE_ROLE_AGENCY && strcmp(p->agency, agency) != 0)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "another agency's inbox");
    size_t limit;
    int rc = osse__check_params(params, allowed, f);
    if (rc || (rc = limit_param(params, DEFAULT_LIMIT, &limit, f)))
        return rc;
    const char *st = param(params, "state"), *sort = param(params, "sort"),
               *cur = param(params, "cursor");
    osse_sstate_t state = OSSE_SS_OPEN;
    bool all = st && strcmp(st, "all") == 0;
    if (st && !all && osse__sstate_parse(st, &state)) {
        osse__detail(f, "state", "unknown step state");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "state is invalid");
    }
    bool by_due = !sort || strcmp(sort, "due") == 0;
    if (sort && !by_due && strcmp(sort, "opened") != 0) {
        osse__detail(f, "sort", "must be due or opened");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "sort is invalid");
    }
    osse__task_key_t after = {0};
    if (cur) {
        unsigned step;
        unsigned long long seq0;
        long long k1, k2;
        if (sscanf(cur, "%lld.%lld.%llu.%u", &k1, &k2, &seq0, &step) != 4) {
            osse__detail(f, "cursor", "is not a cursor this server gave");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "cursor is invalid");
        }
        after = (osse__task_key_t){k1, k2, seq0, (uint16_t)step};
    }
    bool live = all || state == OSSE_SS_OPEN || state == OSSE_SS_WAITING_APPLICANT;
    /* The ended tasks are on disk: every state but the live ones, and all. */
    bool disk = all || !live;
    uint8_t start[OSSE__IX_KEY_MAX], stop[OSSE__IX_KEY_MAX];
    size_t plen = osse__ix_inbox_prefix(agency, by_due ? 'd' : 'o', start), slen = plen;
    memcpy(stop, start, plen);
    stop[plen - 1]++; /* past every entry of this order */
    if (cur) {
        slen = osse__ix_inbox_key(agency, by_due ? 'd' : 'o', &after, start);
        start[slen++] = 0; /* after the cursor's own entry */
    }
    /* A live state reads nothing from disk: an empty range. */
    osse_scan_t *s =
        osse__scan_new(e, disk ? start : stop, disk ? slen : plen, stop, plen, limit + 1);
    inbox_q_t *q = osse_calloc(1, sizeof *q);
    q->agency = osse_strdup(agency);
    q->all = all;
    q->live = live;
    q->has_cur = cur != NULL;
    q->by_due = by_due;
    q->state = state;
    q->after = after;
    q->limit = limit;
    q->plen = plen;
    s->q = q;
    s->keep = inbox_keep;
    s->finish = inbox_finish;
    s->drop = inbox_drop;
    *out = s;
    return 0;
}

/* The catalog lists are short (definitions, agencies, principals): a page
 * holds them all unless a smaller limit is asked for. */
int osse__id_page(osse_engine_t *e, const osse_principal_t *p, const osse_map_t *m,
                  const json_t *params, const char *key, osse__entry_fn entry, json_t **out,
                  osse_fail_t *f)
{
    static const char *const allowed[] = {"limit", "cursor", NULL};
    size_t limit, n;
    int rc = osse__check_params(params, allowed, f);
    if (rc || (rc = limit_param(params, MAX_LIMIT, &limit, f)))
        return rc;
    const char *cur = param(params, "cursor");
    const char **keys = osse__sorted_keys(m, &n);
    json_t *arr = json_array(), *next = json_null();
    const char *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (cur && strcmp(keys[i], cur) <= 0)
            continue;
        json_t *o = entry(e, p, osse_map_get(m, keys[i]));
        if (!o)
            continue;
        if (json_array_size(arr) == limit) {
            /* One more is visible: the page ends at the last one shown. */
            json_decref(o);
            json_decref(next);
            next = json_string(last);
            break;
        }
        json_array_append_new(arr, o);
        last = keys[i];
    }
    free(keys);
    *out = json_pack("{s:o,s:o}", key, arr, "next_cursor", next);
    return 0;
}

static json_t *workflow_json(const osse_wfent_t *w, int version)
{
    const osse_wf_t *wf = w->versions[version - 1];
    return json_pack("{s:s,s:i,s:s?,s:O}", "id", w->id, "version", version, "title", wf->title,
                     "definition", wf->definition);
}

static json_t *workflow_entry(osse_engine_t *e, const osse_principal_t *p, void *v)
{
    (void)e;
    (void)p;
    const osse_wfent_t *w = v;
    return workflow_json(w, (int)w->nversions);
}

int osse_q_workflows(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                     json_t **out, osse_fail_t *f)
{
    return osse__id_page(e, p, &e->workflows, params, "workflows", workflow_entry, out, f);
}

int osse_q_workflow(osse_engine_t *e, const osse_principal_t *p, const char *id, int version,
                    json_t **out, osse_fail_t *f)
{
    osse_wfent_t *w = osse_map_get(&e->workflows, id);
    if (!w)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no workflow %s", id);
    if (version == 0)
        version = (int)w->nversions;
    if (version < 1 || version > (int)w->nversions)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "workflow %s has no version %d", id,
                          version);
    *out = workflow_json(w, version);
    return 0;
}

static int cmp_task_row(const void *a, const void *b)
{
    const osse_task_row_t *x = *(osse_task_row_t *const *)a, *y = *(osse_task_row_t *const *)b;
    int c = strcmp(x->agency, y->agency);
    return c ? c : strcmp(x->workflow, y->workflow);
}

/* The views' part of GET /metrics, from the counts apply.c keeps (no
 * request is read): requests by status, open tasks and breaches by agency
 * and workflow (by agency, then workflow), the last seq. */
void osse__views_metrics(osse_engine_t *e, osse_buf_t *out)
{
    osse_buf_puts(out, "# HELP osse_requests Requests by status.\n# TYPE osse_requests gauge\n");
    for (int s = 0; s < OSSE_RS__COUNT; s++)
        osse_buf_printf(out, "osse_requests{status=\"%s\"} %zu\n", osse__rstatus_name(s),
                        e->by_status[s]);
    size_t n = 0;
    osse_task_row_t **rows = osse_malloc((e->task_rows.len ? e->task_rows.len : 1) * sizeof *rows);
    const char *k;
    void *v;
    for (size_t it = 0; osse_map_next(&e->task_rows, &it, &k, &v);)
        rows[n++] = v;
    qsort(rows, n, sizeof *rows, cmp_task_row);
    osse_buf_puts(out, "# HELP osse_open_tasks Open tasks by agency and workflow.\n"
                       "# TYPE osse_open_tasks gauge\n");
    for (size_t i = 0; i < n; i++)
        osse_buf_printf(out, "osse_open_tasks{agency=\"%s\",workflow=\"%s\"} %lld\n",
                        rows[i]->agency, rows[i]->workflow, (long long)rows[i]->open);
    osse_buf_puts(out, "# HELP osse_sla_breaches SLA breaches by agency and workflow.\n"
                       "# TYPE osse_sla_breaches gauge\n");
    for (size_t i = 0; i < n; i++)
        osse_buf_printf(out, "osse_sla_breaches{agency=\"%s\",workflow=\"%s\"} %lld\n",
                        rows[i]->agency, rows[i]->workflow, (long long)rows[i]->breaches);
    free(rows);
    osse_buf_printf(out,
                    "# HELP osse_log_seq The last event seq.\n# TYPE osse_log_seq gauge\n"
                    "osse_log_seq %llu\n",
                    (unsigned long long)osse_log_last_seq(e->log));
}

static json_t *calendar_entry(osse_engine_t *e, const osse_principal_t *p, void *v)
{
    (void)p;
    const osse_calendar_ent_t *c = v;
    char stream[128];
    osse__stream(stream, sizeof stream, OSSE_SK_CALENDAR, c->id);
    json_t *o = json_pack("{s:s,s:I}", "id", c->id, "version",
                          (json_int_t)(uintptr_t)osse_map_get(&e->versions, stream));
    json_object_update(o, c->body);
    return o;
}

int osse_q_calendar(osse_engine_t *e, const char *id, json_t **out, osse_fail_t *f)
{
    osse_calendar_ent_t *c = osse_map_get(&e->calendars, id);
    if (!c)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no calendar %s", id);
    *out = calendar_entry(e, NULL, c);
    return 0;
}

int osse_q_calendars(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                     json_t **out, osse_fail_t *f)
{
    return osse__id_page(e, p, &e->calendars, params, "calendars", calendar_entry, out, f);
}
