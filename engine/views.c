/* views.c: the read side: tracking views, lists, inboxes, statistics.
 *
 * Everything here reads the projections and builds JSON; nothing changes
 * state. Pagination cursors are opaque strings that encode the sort key of
 * the last item shown, so a page never repeats or skips an item that was
 * already there when the first page was read. */
#include "engine/internal.h"

#include <ctype.h>
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

static int limit_param(const json_t *params, size_t *out, osse_fail_t *f)
{
    const char *s = param(params, "limit");
    *out = DEFAULT_LIMIT;
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

static int check_params(const json_t *params, const char *const *allowed, osse_fail_t *f)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok)
            osse__detail(f, k, "unknown query parameter");
    }
    return f->details ? osse__fail(f, OSSE_EINVAL, "invalid_request", "unknown query parameter")
                      : 0;
}

bool osse__can_read(const osse_principal_t *p, const osse_request_t *r)
{
    switch (p->role) {
    case OSSE_ROLE_PLATFORM:
    case OSSE_ROLE_AUDITOR:
        return true;
    case OSSE_ROLE_PORTAL:
        return r->portal && strcmp(r->portal, p->id) == 0;
    case OSSE_ROLE_AGENCY:
        return osse__has_task(r, p->agency);
    default:
        return false;
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
        json_object_set_new(o, "reason", st->reason ? json_string(st->reason) : json_null());
    return o;
}

json_t *osse__request_view(osse_engine_t *e, const osse_request_t *r, bool public_view)
{
    json_t *steps = json_array(), *tl = json_array();
    for (size_t i = 0; i < r->wf->nsteps; i++)
        json_array_append_new(steps, step_view(r, i, public_view));
    for (size_t i = 0; i < r->ntimeline; i++)
        json_array_append_new(tl, json_pack("{s:o,s:s,s:s}", "at",
                                            osse__time_json(r->timeline[i].at), "type",
                                            r->timeline[i].type, "text", r->timeline[i].text));
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:i,s:o,s:s}", "id", r->id, "workflow", r->wfe->id,
                          "workflow_version", r->wf_version, "status",
                          osse__rstatus_name(r->status), "version", (int)r->version,
                          "submitted_at", osse__time_json(r->submitted_at), "tracking_code",
                          r->tracking_code);
    /* Reasons are shown only to those who may read the request: a
     * person's reason is free text that may name someone (SPEC §4, §8). */
    if (public_view) {
        json_object_del(o, "id");
    } else {
        json_object_set_new(o, "reason", r->reason ? json_string(r->reason) : json_null());
        json_object_set(o, "form", r->form);
    }
    json_object_set_new(o, "steps", steps);
    int64_t due = 0;
    bool any = false, paid = true;
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if (r->wf->steps[i].kind == OSSE_STEP_KIND_PAYMENT && r->steps[i].amount_satang >= 0) {
            any = true;
            due += r->steps[i].amount_satang;
            paid = paid && r->steps[i].paid;
        }
    if (any) {
        char m[32];
        snprintf(m, sizeof m, "%" PRId64 ".%02" PRId64, due / 100, due % 100);
        json_object_set_new(o, "fee", json_pack("{s:s,s:b}", "amount", m, "paid", paid));
    } else {
        json_object_set_new(o, "fee", json_null());
    }
    json_object_set(o, "licence", r->licence ? r->licence : json_null());
    json_object_set_new(o, "timeline", tl);
    return o;
}

int osse_q_request(osse_engine_t *e, const osse_principal_t *p, const char *id, bool public_view,
                   json_t **out, osse_fail_t *f)
{
    osse_request_t *r = osse__request(e, id);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no request %s", id);
    if (!osse__can_read(p, r))
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "this request is not yours to see");
    *out = osse__request_view(e, r, public_view);
    return 0;
}

int osse_q_track(osse_engine_t *e, const char *code, json_t **out, osse_fail_t *f)
{
    /* Codes are made of upper-case letters and digits only (commands.c), so
     * matching without regard to case is matching the upper-cased code. */
    char key[sizeof ((osse_request_t *)0)->tracking_code];
    size_t n = strlen(code);
    osse_request_t *r = NULL;
    if (n < sizeof key) {
        for (size_t i = 0; i <= n; i++)
            key[i] = (char)toupper((unsigned char)code[i]);
        r = osse_map_get(&e->codes, key);
    }
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
    *seqs = malloc((r->nseqs ? r->nseqs : 1) * sizeof **seqs);
    *n = 0;
    for (size_t i = 0; i < r->nseqs; i++)
        if (r->seqs[i] <= durable)
            (*seqs)[(*n)++] = r->seqs[i];
    return 0;
}

static bool breached(const osse_request_t *r)
{
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if (strcmp(r->steps[i].sla_state, "breached") == 0)
            return true;
    return false;
}

/* An agency has a task in a request once one of its steps has opened: a
 * step still pending (or skipped) was never given to it. */
bool osse__has_task(const osse_request_t *r, const char *agency)
{
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if (r->steps[i].opened_at && r->steps[i].agency && strcmp(r->steps[i].agency, agency) == 0)
            return true;
    return false;
}

int osse_q_requests(osse_engine_t *e, const osse_principal_t *p, json_t *params, json_t **out,
                    osse_fail_t *f)
{
    static const char *const allowed[] = {"workflow", "status", "agency", "breached",
                                          "limit",    "cursor", NULL};
    size_t limit;
    int rc = check_params(params, allowed, f);
    if (rc || (rc = limit_param(params, &limit, f)))
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
    /* The cursor is the index of the next (older) request to look at. */
    size_t from = e->nreqs;
    if (cur) {
        char *end;
        unsigned long long v = strtoull(cur, &end, 10);
        if (*cur == '\0' || *end || v > e->nreqs) {
            osse__detail(f, "cursor", "is not a cursor this server gave");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "cursor is invalid");
        }
        from = (size_t)v;
    }
    json_t *arr = json_array();
    size_t i = from;
    while (i > 0 && json_array_size(arr) < limit) {
        const osse_request_t *r = e->reqs[--i];
        if (p->role == OSSE_ROLE_PORTAL && (!r->portal || strcmp(r->portal, p->id) != 0))
            continue;
        if ((wf && strcmp(r->wfe->id, wf) != 0) || (st && r->status != status) ||
            (ag && !osse__has_task(r, ag)) || (br && breached(r) != (strcmp(br, "true") == 0)))
            continue;
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:i,s:s,s:i,s:o,s:s}", "id", r->id, "workflow", r->wfe->id,
                           "workflow_version", r->wf_version, "status",
                           osse__rstatus_name(r->status), "version", (int)r->version,
                           "submitted_at", osse__time_json(r->submitted_at), "tracking_code",
                           r->tracking_code));
    }
    /* Only promise a next page when one more match exists. */
    bool more = false;
    for (size_t k = i; k > 0 && !more;) {
        const osse_request_t *r = e->reqs[--k];
        more = !(p->role == OSSE_ROLE_PORTAL && (!r->portal || strcmp(r->portal, p->id) != 0)) &&
               !((wf && strcmp(r->wfe->id, wf) != 0) || (st && r->status != status) ||
                 (ag && !osse__has_task(r, ag)) || (br && breached(r) != (strcmp(br, "true") == 0)));
    }
    char next[32];
    snprintf(next, sizeof next, "%zu", i);
    *out = json_pack("{s:o,s:o}", "requests", arr, "next_cursor",
                     more ? json_string(next) : json_null());
    return 0;
}

/* `version` is the request's: any version from the one the agency read up
 * to this one is a fresh expected_version for this step, as long as nothing
 * changed the step or the form since (commands.c). */
json_t *osse__task_entry(const osse_request_t *r, size_t i)
{
    const osse_step_t *s = &r->steps[i];
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:i}", "request_id", r->id, "step",
                     r->wf->steps[i].name, "workflow", r->wfe->id, "state",
                     osse__sstate_name(s->state), "opened_at", osse__time_json(s->opened_at),
                     "due_at", osse__time_json(s->due_at), "sla", s->sla_state, "version",
                     (int)r->version);
}

typedef struct {
    int64_t k1, k2; /* due (or INT64_MAX), opened */
    uint32_t req;
    uint16_t step;
} task_key_t;

static int cmp_task(const void *a, const void *b)
{
    const task_key_t *x = a, *y = b;
    if (x->k1 != y->k1)
        return x->k1 < y->k1 ? -1 : 1;
    if (x->k2 != y->k2)
        return x->k2 < y->k2 ? -1 : 1;
    if (x->req != y->req)
        return x->req < y->req ? -1 : 1;
    return (int)x->step - (int)y->step;
}

int osse_q_inbox(osse_engine_t *e, const osse_principal_t *p, const char *agency, json_t *params,
                 json_t **out, osse_fail_t *f)
{
    static const char *const allowed[] = {"state", "sort", "limit", "cursor", NULL};
    osse_agency_t *a = osse_map_get(&e->agencies, agency);
    if (!a)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no agency %s", agency);
    if (p->role == OSSE_ROLE_AGENCY && strcmp(p->agency, agency) != 0)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "another agency's inbox");
    size_t limit;
    int rc = check_params(params, allowed, f);
    if (rc || (rc = limit_param(params, &limit, f)))
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
    task_key_t after = {0};
    if (cur) {
        unsigned req, step;
        long long k1, k2;
        if (sscanf(cur, "%lld.%lld.%u.%u", &k1, &k2, &req, &step) != 4) {
            osse__detail(f, "cursor", "is not a cursor this server gave");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "cursor is invalid");
        }
        after = (task_key_t){k1, k2, req, (uint16_t)step};
    }
    task_key_t *keys = malloc((a->ntasks ? a->ntasks : 1) * sizeof *keys);
    size_t n = 0;
    for (size_t i = 0; i < a->ntasks; i++) {
        const osse_request_t *r = e->reqs[a->tasks[i].req];
        const osse_step_t *s = &r->steps[a->tasks[i].step];
        if (!s->agency || strcmp(s->agency, agency) != 0 || (!all && s->state != state))
            continue;
        task_key_t k = {by_due ? (s->due_at ? s->due_at : INT64_MAX) : s->opened_at,
                        by_due ? s->opened_at : 0, a->tasks[i].req, a->tasks[i].step};
        if (cur && cmp_task(&k, &after) <= 0)
            continue;
        keys[n++] = k;
    }
    qsort(keys, n, sizeof *keys, cmp_task);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < limit; i++)
        json_array_append_new(arr, osse__task_entry(e->reqs[keys[i].req], keys[i].step));
    json_t *next = json_null();
    if (n > limit) {
        char c[96];
        task_key_t *k = &keys[limit - 1];
        snprintf(c, sizeof c, "%lld.%lld.%u.%u", (long long)k->k1, (long long)k->k2, k->req,
                 k->step);
        next = json_string(c);
    }
    free(keys);
    *out = json_pack("{s:o,s:o}", "tasks", arr, "next_cursor", next);
    return 0;
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
    const osse_wf_t *wf = w->versions[version - 1];
    *out = json_pack("{s:s,s:i,s:s?,s:O}", "id", id, "version", version, "title", wf->title,
                     "definition", wf->definition);
    return 0;
}

/* --- statistics --- */

typedef struct {
    const char *agency, *workflow;
    int64_t open, decided, within, breaches;
    int64_t *times;
    size_t ntimes, ctimes;
} stat_row_t;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static stat_row_t *collect(osse_engine_t *e, size_t *nrows)
{
    stat_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < e->nreqs; i++) {
        const osse_request_t *r = e->reqs[i];
        for (size_t k = 0; k < r->wf->nsteps; k++) {
            const osse_step_t *s = &r->steps[k];
            if (r->wf->steps[k].kind != OSSE_STEP_KIND_TASK || !s->agency || !s->opened_at)
                continue;
            stat_row_t *row = NULL;
            for (size_t j = 0; j < n && !row; j++)
                if (strcmp(rows[j].agency, s->agency) == 0 &&
                    strcmp(rows[j].workflow, r->wfe->id) == 0)
                    row = &rows[j];
            if (!row) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    rows = realloc(rows, cap * sizeof *rows);
                }
                row = &rows[n++];
                memset(row, 0, sizeof *row);
                row->agency = s->agency;
                row->workflow = r->wfe->id;
            }
            if (s->state == OSSE_SS_OPEN || s->state == OSSE_SS_WAITING_APPLICANT)
                row->open++;
            if (strcmp(s->sla_state, "breached") == 0)
                row->breaches++;
            if ((s->state == OSSE_SS_APPROVED || s->state == OSSE_SS_REJECTED) && s->decided_at) {
                row->decided++;
                if (!s->due_at || s->decided_at <= s->due_at)
                    row->within++;
                if (row->ntimes == row->ctimes) {
                    row->ctimes = row->ctimes ? row->ctimes * 2 : 16;
                    row->times = realloc(row->times, row->ctimes * sizeof *row->times);
                }
                /* Decision time in working time on the workflow's calendar,
                 * wall-clock time when it has none. */
                osse_calendar_ent_t *c =
                    r->wf->calendar ? osse_map_get(&e->calendars, r->wf->calendar) : NULL;
                row->times[row->ntimes++] =
                    c ? osse_calendar_between_ms(&c->cal, s->opened_at, s->decided_at)
                      : s->decided_at - s->opened_at;
            }
        }
    }
    *nrows = n;
    return rows;
}

int osse_q_stats(osse_engine_t *e, json_t **out)
{
    size_t n;
    stat_row_t *rows = collect(e, &n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        stat_row_t *row = &rows[i];
        json_t *median = json_null();
        if (row->ntimes) {
            qsort(row->times, row->ntimes, sizeof *row->times, cmp_i64);
            median = json_real((double)row->times[row->ntimes / 2] / 3600000.0);
        }
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:I,s:I,s:I,s:o,s:o}", "agency", row->agency, "workflow",
                           row->workflow, "open_tasks", (json_int_t)row->open, "decided",
                           (json_int_t)row->decided, "sla_breaches", (json_int_t)row->breaches,
                           "median_decision_hours", median, "decided_within_sla",
                           row->decided ? json_real((double)row->within / (double)row->decided)
                                        : json_null()));
        free(row->times);
    }
    free(rows);
    *out = json_pack("{s:o}", "stats", arr);
    return 0;
}

int osse_q_metrics(osse_engine_t *e, char **out, size_t *len)
{
    osse_buf_t b;
    osse_buf_init(&b, 0);
    size_t counts[OSSE_RS__COUNT] = {0};
    for (size_t i = 0; i < e->nreqs; i++)
        counts[e->reqs[i]->status]++;
    osse_buf_puts(&b, "# HELP osse_requests Requests by status.\n# TYPE osse_requests gauge\n");
    for (int s = 0; s < OSSE_RS__COUNT; s++)
        osse_buf_printf(&b, "osse_requests{status=\"%s\"} %zu\n", osse__rstatus_name(s), counts[s]);
    size_t n;
    stat_row_t *rows = collect(e, &n);
    osse_buf_puts(&b, "# HELP osse_open_tasks Open tasks by agency and workflow.\n"
                      "# TYPE osse_open_tasks gauge\n");
    for (size_t i = 0; i < n; i++)
        osse_buf_printf(&b, "osse_open_tasks{agency=\"%s\",workflow=\"%s\"} %lld\n", rows[i].agency,
                        rows[i].workflow, (long long)rows[i].open);
    osse_buf_puts(&b, "# HELP osse_sla_breaches SLA breaches by agency and workflow.\n"
                      "# TYPE osse_sla_breaches gauge\n");
    for (size_t i = 0; i < n; i++) {
        osse_buf_printf(&b, "osse_sla_breaches{agency=\"%s\",workflow=\"%s\"} %lld\n",
                        rows[i].agency, rows[i].workflow, (long long)rows[i].breaches);
        free(rows[i].times);
    }
    free(rows);
    osse_buf_printf(&b, "# HELP osse_log_seq The last event seq.\n# TYPE osse_log_seq gauge\n"
                        "osse_log_seq %llu\n",
                    (unsigned long long)osse_log_last_seq(e->log));
    osse_engine_metrics(e, &b);
    *out = osse_buf_take(&b, len);
    return 0;
}

int osse_q_calendar(osse_engine_t *e, const char *id, json_t **out, osse_fail_t *f)
{
    osse_calendar_ent_t *c = osse_map_get(&e->calendars, id);
    if (!c)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no calendar %s", id);
    char stream[128];
    snprintf(stream, sizeof stream, "calendar/%s", id);
    *out = json_pack("{s:s,s:I}", "id", id, "version",
                     (json_int_t)(uintptr_t)osse_map_get(&e->versions, stream));
    json_object_update(*out, c->body);
    return 0;
}
