/* apply.c: the projections: how each event changes the in-memory views.
 *
 * This is the only code that changes the projections, and it runs both when
 * an event is emitted and when the log is replayed at start; so the views
 * are, by construction, a function of the log. Nothing here reads a clock or
 * calls out: everything an event needs is in the event. A state change that
 * the tables of state.c do not allow is reported as a damaged log.
 *
 * Each event type has one small function, chosen by a switch over the enum
 * of storage/event_types.h. The switches name every type and have no
 * default, so a type added to the table does not compile (-Wswitch) until
 * it is given a function or said to be one that no view holds. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"

#define CORRUPT(...) osse_err_set(err, OSSE_ECORRUPT, __VA_ARGS__)
#define EVN(ev) osse_event_type_name((ev)->type)

static char *dupstr(const char *s)
{
    return s ? osse_strdup(s) : NULL;
}

static void tl_add(osse_request_t *r, int64_t at, const char *type, const char *text)
{
    OSSE_VEC_RESERVE(r->timeline, r->ctimeline, r->ntimeline + 1);
    r->timeline[r->ntimeline++] = (osse_tl_t){at, type, osse_strdup(text)};
}

/* A timeline entry of the event's own type. */
static void timeline(osse_request_t *r, const osse_event_t *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void timeline(osse_request_t *r, const osse_event_t *ev, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    tl_add(r, ev->at, osse_event_type_name(ev->type), text);
}

/* --- catalog streams --- */

static int workflow_published(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *id = osse__jstr(ev->data, "id");
    json_t *def = json_object_get(ev->data, "definition");
    json_int_t v = json_integer_value(json_object_get(ev->data, "version"));
    if (!id || !json_is_object(def))
        return CORRUPT("%s without id or definition", EVN(ev));
    osse_wfent_t *w = osse_map_get(&e->workflows, id);
    if (!w) {
        w = osse_calloc(1, sizeof *w);
        w->id = osse_strdup(id);
        osse_map_put(&e->workflows, id, w);
    }
    if (v != (json_int_t)w->nversions + 1)
        return CORRUPT("workflow %s version %lld out of order", id, (long long)v);
    osse_wf_t *wf = NULL;
    char *text = NULL;
    if (!e->replaying && e->handover.wf && e->handover.tree == def) {
        /* Published now: compiled and dumped on the pool from this tree,
         * which nobody changes (osse_cmd_publish_prepare's contract). */
        wf = e->handover.wf;
        text = e->handover.text;
        e->handover.wf = NULL;
        e->handover.text = NULL;
    } else {
        json_t *details = json_array();
        json_t *copy = json_deep_copy(def);
        int rc = osse_wf_compile(copy, &wf, details);
        json_decref(copy);
        json_decref(details);
        if (rc)
            return CORRUPT("workflow %s version %lld does not compile", id, (long long)v);
        text = json_dumps(def, JSON_COMPACT | JSON_SORT_KEYS);
    }
    w->versions = osse_reallocarray(w->versions, w->nversions + 1, sizeof *w->versions);
    w->texts = osse_reallocarray(w->texts, w->nversions + 1, sizeof *w->texts);
    w->versions[w->nversions] = wf;
    w->texts[w->nversions] = text;
    w->nversions++;
    return 0;
}

static int agency_updated(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *id = osse__jstr(ev->data, "id");
    if (!id)
        return CORRUPT("%s without id", EVN(ev));
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    if (!a) {
        a = osse_calloc(1, sizeof *a);
        a->id = osse_strdup(id);
        osse_map_put(&e->agencies, id, a);
    }
    free(a->name);
    free(a->webhook_url);
    free(a->lookup_url);
    free(a->biller_id);
    a->biller_id = dupstr(osse__jstr(ev->data, "biller_id"));
    a->name = dupstr(osse__jstr(ev->data, "name"));
    a->webhook_url = dupstr(osse__jstr(ev->data, "webhook_url"));
    a->lookup_url = dupstr(osse__jstr(ev->data, "lookup_url"));
    return 0;
}

static int calendar_updated(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *id = osse__jstr(ev->data, "id");
    json_t *cal = json_object_get(ev->data, "calendar");
    if (!id || !json_is_object(cal))
        return CORRUPT("%s without id or calendar", EVN(ev));
    osse_calendar_ent_t *c = osse_map_get(&e->calendars, id);
    if (!c) {
        c = osse_calloc(1, sizeof *c);
        c->id = osse_strdup(id);
        osse_map_put(&e->calendars, id, c);
    }
    osse_calendar_t parsed;
    if (osse_calendar_from_json(cal, &parsed, NULL))
        return CORRUPT("calendar %s does not parse", id);
    osse_calendar_close(&c->cal);
    c->cal = parsed;
    json_decref(c->body);
    c->body = json_incref(cal);
    return 0;
}

static int principal_revoked(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *id = osse__jstr(ev->data, "id");
    osse_principal_t *p = id ? osse_map_get(&e->principals, id) : NULL;
    if (!id)
        return CORRUPT("%s without id", EVN(ev));
    if (!p)
        return CORRUPT("%s of unknown %s", EVN(ev), id);
    p->revoked = true;
    return 0;
}

static int principal_created(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *id = osse__jstr(ev->data, "id");
    if (!id)
        return CORRUPT("%s without id", EVN(ev));
    const char *role = osse__jstr(ev->data, "role"), *hash = osse__jstr(ev->data, "token_hash");
    osse_principal_t *p = osse_calloc(1, sizeof *p);
    if (!role || !hash || strlen(hash) != 64 || osse_role_parse(role, &p->role) ||
        osse_map_get(&e->principals, id)) {
        free(p);
        return CORRUPT("bad %s %s", EVN(ev), id);
    }
    p->id = osse_strdup(id);
    p->agency = dupstr(osse__jstr(ev->data, "agency"));
    p->name = dupstr(osse__jstr(ev->data, "name"));
    memcpy(p->token_hash, hash, 65);
    p->created_at = ev->at;
    osse_map_put(&e->principals, id, p);
    osse_map_put(&e->tokens, hash, p);
    return 0;
}

/* --- request streams --- */

/* The reasons the engine gives itself, in words a portal can show the
 * applicant (SPEC §4). They name no step and quote no value: a registry's
 * answer or a form field may be personal. A person's reason (a decision's, a
 * withdrawal's) is shown as that person wrote it. The events keep their own,
 * more technical, wording for operators; the view derives its text from the
 * event's type and outcome only, so a replay gives the same words. */
static const char REASON_AUTO_APPROVED[] =
    "approved automatically: the application meets the conditions for automatic approval";
static const char REASON_DEEMED_APPROVED[] =
    "the agency did not decide within its SLA, so this step is deemed approved";
static const char REASON_DEEMED_REJECTED[] =
    "the agency did not decide within its SLA, so the application is deemed rejected";
static const char REASON_AGENCY_REJECTED[] = "the agency rejected the application";
static const char REASON_REJECTED[] = "the application could not proceed";
static const char REASON_CHECK_FAILED[] = "the registry check did not pass";
static const char REASON_CHECK_ERROR[] = "the registry check could not be completed";
static const char REASON_LOOKUP_FAILED[] = "the registry could not be consulted";
static const char REASON_FEE_FAILED[] = "the fee could not be computed";
static const char REASON_STEP_FAILED[] = "this step could not be completed";
static const char REASON_TASK_EXPIRED[] =
    "the agency did not decide within its SLA, so the request expired";
static const char REASON_FEE_EXPIRED[] = "the fee was not paid before its deadline";
static const char REASON_EXPIRED[] = "a deadline of the request passed";
static const char REASON_WITHDRAWN[] = "the applicant withdrew the request";

static void set_text(char **slot, const char *text)
{
    free(*slot);
    *slot = dupstr(text);
}

/* The first request applied or loaded (loaded in the order of submission). */
static void first_request(osse_engine_t *e, const osse_request_t *r)
{
    if (!e->any_request) {
        e->any_request = true;
        e->first_submitted_at = r->submitted_at;
    }
}

/* --- stints: which agency held a task when (statistics, SPEC §10) --- */

static osse_stint_t *stint_held(osse_step_t *s)
{
    osse_stint_t *t = s->nstints ? &s->stints[s->nstints - 1] : NULL;
    return t && t->how == OSSE_STINT_HELD ? t : NULL;
}

/* The metrics' row of an agency's tasks in a workflow. */
osse_task_row_t *osse__task_row(osse_engine_t *e, const char *agency, const char *workflow)
{
    /* "<agency>\n<workflow>" (catalog ids: 64 bytes at most each). */
    char key[256];
    size_t al = strlen(agency), wl = strlen(workflow);
    if (al + wl + 2 <= sizeof key) {
        memcpy(key, agency, al);
        key[al] = '\n';
        memcpy(key + al + 1, workflow, wl + 1);
    } else {
        snprintf(key, sizeof key, "%s\n%s", agency, workflow);
    }
    osse_task_row_t *row = osse_map_get(&e->task_rows, key);
    if (!row) {
        row = osse_calloc(1, sizeof *row);
        row->agency = osse_strdup(agency);
        row->workflow = osse_strdup(workflow);
        osse_map_put(&e->task_rows, key, row);
    }
    return row;
}

/* A stint of the row began at `at` (the statistics' rows). */
static void row_began(osse_task_row_t *row, const osse_request_t *r, int64_t at)
{
    if (at < r->submitted_at)
        at = r->submitted_at;
    if (!row->began || at < row->first_at) {
        row->first_at = at;
        row->began = true;
    }
}

/* After a return, the applicant's answer resumes the agency's stint: its
 * working time goes on from what it was, and a task past due stays so. */
static void stint_begin(osse_engine_t *e, const osse_request_t *r, osse_step_t *s, int64_t at)
{
    const osse_stint_t *prev = s->nstints ? &s->stints[s->nstints - 1] : NULL;
    osse_stint_t t = {.agency = s->agency, .start = at};
    if (prev && prev->how == OSSE_STINT_RETURNED) {
        t.work_ms = prev->work_ms;
        t.overdue_from = prev->overdue_from ? at : 0;
    }
    s->stints = osse_reallocarray(s->stints, s->nstints + 1u, sizeof *s->stints);
    s->stints[s->nstints++] = t;
    osse_task_row_t *row = osse__task_row(e, s->agency, r->wfe->id);
    row->open++;
    row_began(row, r, at);
}

static void stint_end(osse_engine_t *e, const osse_request_t *r, osse_step_t *s, int64_t at,
                      osse_stint_end_t how)
{
    osse_stint_t *t = stint_held(s);
    if (!t)
        return;
    osse__task_row(e, t->agency, r->wfe->id)->open--;
    t->end = at;
    t->how = how;
    /* Measured on the calendar in force when the event is applied, so that
     * a replay measures the same. */
    t->work_ms += osse__work_between(e, r, t->start, at);
    t->within_sla = how == OSSE_STINT_PERSON && strcmp(s->sla_state, "breached") != 0 &&
                    (!s->due_at || at <= s->due_at);
}

static void add_task(osse_engine_t *e, osse_request_t *r, size_t step, const char *agency)
{
    osse_agency_t *a = osse_map_get(&e->agencies, agency);
    if (!a)
        return;
    if (osse__sstate_final(r->steps[step].state))
        return; /* in the index on disk (index.c), not in memory */
    for (size_t i = a->nactive; i-- > 0 && a->active[i].req == r->index;)
        if (a->active[i].step == step)
            return;
    osse_taskref_t ref = {r->index, (uint16_t)step};
    OSSE_VEC_PUSH(a->active, a->nactive, a->cactive, ref);
}

/* Reads due_at and warn_at from an event into step i (timers.c schedules
 * them when it hears of the event). */
static int deadlines(osse_engine_t *e, osse_request_t *r, size_t i, const osse_event_t *ev,
                     osse_err_t *err)
{
    osse_step_t *s = &r->steps[i];
    if (ev->opened) {
        s->due_at = ev->opened->due_at;
        s->warn_at = ev->opened->warn_at;
    } else {
        const char *due = osse__jstr(ev->data, "due_at"), *warn = osse__jstr(ev->data, "warn_at");
        s->due_at = s->warn_at = 0;
        if ((due && osse_time_parse(due, &s->due_at)) ||
            (warn && osse_time_parse(warn, &s->warn_at)))
            return CORRUPT("bad due_at or warn_at in %s", osse_event_type_name(ev->type));
    }
    if (strcmp(s->sla_state, "ok") != 0)
        s->warn_at = 0;
    return 0;
}

/* Every change of a step's state goes through here, so this is also where
 * the step remembers the request version that changed it. */
static int set_step(osse_request_t *r, size_t i, osse_sstate_t to, osse_err_t *err)
{
    if (!osse__step_can(r->steps[i].state, to))
        return CORRUPT("step %s of %s cannot go from %s to %s", r->wf->steps[i].name, r->id,
                       osse__sstate_name(r->steps[i].state), osse__sstate_name(to));
    r->steps[i].state = to;
    r->steps[i].changed_at = r->version;
    return 0;
}

static int cancel_unfinished(osse_engine_t *e, osse_request_t *r, int64_t at, osse_err_t *err)
{
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        osse_step_t *s = &r->steps[i];
        if (osse__sstate_final(s->state))
            continue;
        int rc = set_step(r, i, OSSE_SS_CANCELLED, err);
        if (rc)
            return rc;
        s->decided_at = at;
        /* A returned step's outcome and reason no longer apply. */
        set_text(&s->outcome, NULL);
        set_text(&s->reason, NULL);
        stint_end(e, r, s, at, OSSE_STINT_CANCELLED);
    }
    return 0;
}

/* The step an ending event names, or -1. */
static int named_step(const osse_request_t *r, const osse_event_t *ev)
{
    const char *name = osse_event_step(ev);
    return name ? osse_wf_step_index(r->wf, name) : -1;
}

/* Why the request ends, as the applicant reads it. For an expiry the step
 * whose deadline passed gets the same words (it is cancelled with the rest,
 * so its reason is set after). */
static const char *ending_reason(const osse_request_t *r, osse_rstatus_t to, const char *why, int k)
{
    const osse_wf_step_t *ws = k >= 0 ? &r->wf->steps[k] : NULL;
    switch (to) {
    case OSSE_RS_WITHDRAWN: return why && *why ? why : REASON_WITHDRAWN;
    case OSSE_RS_EXPIRED:
        return !ws                                  ? REASON_EXPIRED
               : ws->kind == OSSE_STEP_KIND_PAYMENT ? REASON_FEE_EXPIRED
               : ws->kind == OSSE_STEP_KIND_TASK    ? REASON_TASK_EXPIRED
                                                    : REASON_EXPIRED;
    default:
        if (ws && r->steps[k].reason)
            return r->steps[k].reason;
        return ws && ws->kind == OSSE_STEP_KIND_TASK && r->steps[k].state == OSSE_SS_REJECTED
                   ? REASON_AGENCY_REJECTED
                   : REASON_REJECTED;
    }
}

/* The status of a request that has not ended follows from its steps. */
static osse_rstatus_t derived_status(const osse_request_t *r)
{
    bool payment = false;
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        if (r->steps[i].state == OSSE_SS_WAITING_APPLICANT)
            return OSSE_RS_AWAITING_INFO;
        if (r->steps[i].state == OSSE_SS_OPEN && r->wf->steps[i].kind == OSSE_STEP_KIND_PAYMENT)
            payment = true;
    }
    return payment ? OSSE_RS_AWAITING_PAYMENT : OSSE_RS_IN_PROGRESS;
}

/* The list of requests that have not ended: r joins it at its submission
 * (or when read from its record), and leaves it when it ends (a final
 * status is never left). */
static int set_status(osse_engine_t *e, osse_request_t *r, osse_rstatus_t to, osse_err_t *err)
{
    if (!osse__request_can(r->status, to))
        return CORRUPT("request %s cannot go from %s to %s", r->id, osse__rstatus_name(r->status),
                       osse__rstatus_name(to));
    bool ends = osse__rstatus_final(to) && !osse__rstatus_final(r->status);
    e->by_status[r->status]--;
    e->by_status[to]++;
    r->status = to;
    if (ends) {
        osse__rlist_remove(&e->open, r);
        if (!r->pins) /* a pinned one joins the list when the last pin goes */
            osse__rlist_add(&e->lru, r);
        else
            e->npinned++;
    }
    return 0;
}

/* What a request event's handler works on: the event, its request (already
 * at the event's version) and the step the event names (-1: none; a type
 * flagged OSSE_EVF_STEP always has one). */
typedef struct {
    osse_engine_t *e;
    const osse_event_t *ev;
    osse_request_t *r;
    int i;
    osse_err_t *err;
} rq_t;

#define STEP(q) (&(q)->r->steps[(q)->i])
#define NAME(q) ((q)->r->wf->steps[(q)->i].name)

/* A request that has not ended takes the status its steps give it. */
static int moved(rq_t *q)
{
    return set_status(q->e, q->r, derived_status(q->r), q->err);
}

/* Step q->i reaches the final state `to` at the event's time. */
static int finish_step(rq_t *q, osse_sstate_t to)
{
    int rc = set_step(q->r, (size_t)q->i, to, q->err);
    if (rc == 0)
        STEP(q)->decided_at = q->ev->at;
    return rc;
}

/* r takes the next slot (internal.h: a chunk more every 4,096). */
static void take_slot(osse_engine_t *e, osse_request_t *r)
{
    size_t i = e->nreqs, c = i >> OSSE__SLOT_BITS;
    OSSE_PRE(i < UINT32_MAX);
    if (c == e->nslots) {
        OSSE_VEC_RESERVE(e->slots, e->cslots, c + 1);
        e->slots[e->nslots++] = osse_calloc(1, sizeof **e->slots);
    }
    e->slots[c]->at[i & (OSSE__SLOT_CHUNK - 1)] = r;
    e->slots[c]->live++;
    r->index = (uint32_t)i;
    e->nreqs++;
}

/* r's slot is empty now; its chunk is freed once every slot of it was
 * given and none holds a request (so no slot of it is ever given again). */
static void leave_slot(osse_engine_t *e, const osse_request_t *r)
{
    size_t c = r->index >> OSSE__SLOT_BITS;
    osse__slots_t *s = e->slots[c];
    OSSE_PRE(s && s->at[r->index & (OSSE__SLOT_CHUNK - 1)] == r && s->live);
    s->at[r->index & (OSSE__SLOT_CHUNK - 1)] = NULL;
    if (--s->live == 0 && (c + 1) << OSSE__SLOT_BITS <= e->nreqs) {
        free(s);
        e->slots[c] = NULL;
        e->slots_freed++;
    }
}

static int submitted(osse_engine_t *e, const osse_event_t *ev, const char *id, osse_err_t *err)
{
    const osse_ev_submitted_t *f = ev->submitted;
    const char *wid = f ? f->workflow : osse__jstr(ev->data, "workflow"),
               *code = f ? f->tracking_code : osse__jstr(ev->data, "tracking_code"),
               *portal = f ? f->portal : osse__jstr(ev->data, "portal");
    json_int_t v = f ? (json_int_t)f->workflow_version
                     : json_integer_value(json_object_get(ev->data, "workflow_version"));
    json_t *form = f ? NULL : json_object_get(ev->data, "form");
    osse_wfent_t *w = wid ? osse_map_get(&e->workflows, wid) : NULL;
    if (ev->version != 1)
        return CORRUPT("%s at version %u", EVN(ev), ev->version);
    if (!w || v < 1 || v > (json_int_t)w->nversions || !code || strlen(code) >= 16 ||
        (!f && !json_is_object(form)) || (f && (!f->form_len || f->form_len > UINT32_MAX)) ||
        osse__request(e, id))
        return CORRUPT("bad %s for %s", EVN(ev), id);
    osse_request_t *r = osse_calloc(1, sizeof *r);
    r->id = osse_strdup(id);
    snprintf(r->tracking_code, sizeof r->tracking_code, "%s", code);
    r->wfe = w;
    r->wf_version = (int)v;
    r->wf = w->versions[v - 1];
    r->status = OSSE_RS_IN_PROGRESS;
    e->by_status[r->status]++;
    r->submitted_at = ev->at;
    r->portal = dupstr(portal);
    if (f) {
        /* The form's bytes, which the encoder and the decoder checked are
         * one object's (storage/event.h): the request keeps them as a
         * request read from its record does (osse__form builds the tree
         * when one is asked for). */
        r->form_mp = osse_malloc(f->form_len);
        memcpy(r->form_mp, f->form, f->form_len);
        r->form_mp_len = (uint32_t)f->form_len;
    } else {
        /* Shallow: the form's values are never changed in place
         * (InfoProvided replaces top-level values, an erasure the whole
         * form), so they are shared with the event's data, and a form of
         * sealed objects costs no deep copy (the profile of issue 12). */
        r->form = json_copy(form);
    }
    r->steps = osse_calloc(r->wf->nsteps ? r->wf->nsteps : 1, sizeof *r->steps);
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        r->steps[i].state = OSSE_SS_PENDING;
        r->steps[i].agency = r->wf->steps[i].agency;
        r->steps[i].sla_state = "ok";
        r->steps[i].amount_satang = -1;
        r->steps[i].remaining_ms = r->steps[i].warn_remaining_ms = -1;
        r->steps[i].overdue_left = -1;
    }
    first_request(e, r);
    take_slot(e, r);
    e->nrequests++;
    osse__rlist_add(&e->open, r);
    osse_map_put(&e->requests, id, r);
    osse_map_put(&e->codes, r->tracking_code, r);
    return 0;
}

static void licence_index(osse_engine_t *e, osse_request_t *r);

int osse__apply_loaded(osse_engine_t *e, osse_request_t *r, osse_err_t *err)
{
    char key[OSSE_PAYMENT_KEY_MAX];
    if (osse__request(e, r->id) || osse_map_get(&e->codes, r->tracking_code))
        return CORRUPT("request %s read twice", r->id);
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        if (s->reference && osse_map_get(&e->references, s->reference))
            return CORRUPT("reference %s of %s is not unique", s->reference, r->id);
        if (s->payer && s->transaction) {
            osse__payment_key(s->payer, s->transaction, key, sizeof key);
            if (osse_map_get(&e->payments, key))
                return CORRUPT("transaction %s of %s recorded twice", s->transaction, r->id);
        }
    }
    first_request(e, r);
    take_slot(e, r);
    e->nrequests++;
    osse_map_put(&e->requests, r->id, r);
    osse_map_put(&e->codes, r->tracking_code, r);
    e->by_status[r->status]++;
    if (!osse__rstatus_final(r->status))
        osse__rlist_add(&e->open, r);
    else
        osse__rlist_add(&e->lru, r);
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        /* Each agency that held the task was given it (step_opened,
         * task_escalated); the metrics count what each holds and breached. */
        for (uint32_t k = 0; k < s->nstints; k++) {
            const osse_stint_t *t = &s->stints[k];
            add_task(e, r, i, t->agency);
            osse_task_row_t *row = osse__task_row(e, t->agency, r->wfe->id);
            row->open += t->how == OSSE_STINT_HELD;
            row->breaches += t->breached_at != 0;
            row_began(row, r, t->start);
        }
        if (s->reference)
            osse_map_put(&e->references, s->reference, r);
        if (s->payer && s->transaction) {
            osse__payment_key(s->payer, s->transaction, key, sizeof key);
            osse_map_put(&e->payments, key, r);
        }
    }
    if (r->delivery_version) {
        char stream[128];
        osse__stream(stream, sizeof stream, OSSE_SK_DELIVERY, r->id);
        osse_map_put(&e->versions, stream, (void *)(uintptr_t)r->delivery_version);
    }
    return 0;
}

void osse__apply_loaded_licence(osse_engine_t *e, osse_request_t *r)
{
    licence_index(e, r);
}

/* The names of r (the maps of osse__apply_loaded but the counts), put or
 * deleted. */
static void names(osse_engine_t *e, osse_request_t *r, bool put)
{
    char key[OSSE_PAYMENT_KEY_MAX];
    if (put) {
        osse_map_put(&e->requests, r->id, r);
        osse_map_put(&e->codes, r->tracking_code, r);
    } else {
        osse_map_del(&e->requests, r->id);
        osse_map_del(&e->codes, r->tracking_code);
    }
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        if (s->reference) {
            if (put)
                osse_map_put(&e->references, s->reference, r);
            else if (osse_map_get(&e->references, s->reference) == r)
                osse_map_del(&e->references, s->reference);
        }
        if (s->payer && s->transaction) {
            osse__payment_key(s->payer, s->transaction, key, sizeof key);
            if (put) {
                osse_map_put(&e->payments, key, r);
            } else if (osse_map_get(&e->payments, key) == r) {
                osse_map_del(&e->payments, key);
                /* Read again with the request (cache.c). */
                osse_map_del(&e->pay_answers, key);
            }
        }
    }
    const char *number = r->licence ? osse__jstr(r->licence, "number") : NULL;
    if (number && put && !osse_map_get(&e->licnums, number))
        osse_map_put(&e->licnums, number, r);
    else if (number && !put && osse_map_get(&e->licnums, number) == r)
        osse_map_del(&e->licnums, number);
    if (r->delivery_version) {
        char stream[128];
        osse__stream(stream, sizeof stream, OSSE_SK_DELIVERY, r->id);
        if (put)
            osse_map_put(&e->versions, stream, (void *)(uintptr_t)r->delivery_version);
        else
            osse_map_del(&e->versions, stream);
    }
}

void osse__apply_rejoin(osse_engine_t *e, osse_request_t *r)
{
    OSSE_PRE(osse__rstatus_final(r->status) && !osse_map_get(&e->requests, r->id));
    take_slot(e, r);
    names(e, r, true);
    osse__rlist_add(&e->lru, r);
}

void osse__apply_evict(osse_engine_t *e, osse_request_t *r)
{
    OSSE_PRE(osse__rstatus_final(r->status) && !r->pins && !r->dirty);
    names(e, r, false);
    osse__rlist_remove(&e->lru, r);
    /* Its key is read again with its record (cache.c). */
    osse__pii_key_drop(e, r->id);
    leave_slot(e, r);
    if (e->last_request == r)
        e->last_request = NULL;
    e->some_evicted = true;
    e->evictions++;
}

/* --- one function per request event --- */

static int step_opened(rq_t *q)
{
    int rc = set_step(q->r, (size_t)q->i, OSSE_SS_OPEN, q->err);
    if (rc)
        return rc;
    osse_step_t *s = STEP(q);
    s->opened_at = q->ev->at;
    if (s->agency && q->r->wf->steps[q->i].kind == OSSE_STEP_KIND_TASK) {
        add_task(q->e, q->r, (size_t)q->i, s->agency);
        stint_begin(q->e, q->r, s, q->ev->at);
    }
    timeline(q->r, q->ev, "Step %s opened%s%s", NAME(q), s->agency ? " for " : "",
             s->agency ? s->agency : "");
    return moved(q);
}

static int step_skipped(rq_t *q)
{
    int rc = finish_step(q, OSSE_SS_SKIPPED);
    if (rc)
        return rc;
    timeline(q->r, q->ev, "Step %s skipped", NAME(q));
    return moved(q);
}

static int task_decided(rq_t *q)
{
    const osse_event_t *ev = q->ev;
    osse_err_t *err = q->err;
    const char *outcome = osse__jstr(ev->data, "outcome");
    osse_sstate_t to;
    int rc;
    if (!outcome)
        return CORRUPT("%s without outcome", EVN(ev));
    if (strcmp(outcome, "approve") == 0)
        to = OSSE_SS_APPROVED;
    else if (strcmp(outcome, "reject") == 0)
        to = OSSE_SS_REJECTED;
    else if (strcmp(outcome, "return") == 0)
        to = OSSE_SS_WAITING_APPLICANT;
    else
        return CORRUPT("%s with outcome %s", EVN(ev), outcome);
    if ((rc = set_step(q->r, (size_t)q->i, to, err)))
        return rc;
    osse_step_t *s = STEP(q);
    /* A deemed decision is the engine's, not a person's: its reason is
     * ours, and statistics do not count it as a decision by a person. */
    bool deemed = json_is_true(json_object_get(ev->data, "deemed"));
    set_text(&s->outcome, outcome);
    /* A person's reason is kept as stored (sealed: pii.c). */
    char *reason = osse__pii_stored_text(json_object_get(ev->data, "reason"));
    set_text(&s->reason, !deemed                  ? (reason && *reason ? reason : NULL)
                         : to == OSSE_SS_APPROVED ? REASON_DEEMED_APPROVED
                                                  : REASON_DEEMED_REJECTED);
    free(reason);
    if (to != OSSE_SS_WAITING_APPLICANT) {
        s->decided_at = ev->at;
        stint_end(q->e, q->r, s, ev->at,
                  !deemed                  ? OSSE_STINT_PERSON
                  : to == OSSE_SS_APPROVED ? OSSE_STINT_DEEMED_APPROVE
                                           : OSSE_STINT_DEEMED_REJECT);
    } else {
        stint_end(q->e, q->r, s, ev->at, OSSE_STINT_RETURNED);
        /* The clock stops: keep what was left of it. */
        json_t *rem = json_object_get(ev->data, "sla_remaining_ms");
        json_t *wrem = json_object_get(ev->data, "warn_remaining_ms");
        s->remaining_ms = json_is_integer(rem) ? json_integer_value(rem) : -1;
        s->warn_remaining_ms = json_is_integer(wrem) ? json_integer_value(wrem) : -1;
        s->due_at = s->warn_at = 0;
        /* Overdue notices pause with the clock: the time left until the
         * next one resumes with the applicant's answer. */
        if (s->overdue_next) {
            s->overdue_left = s->overdue_next > ev->at ? s->overdue_next - ev->at : 0;
            s->overdue_next = 0;
        }
    }
    /* Reasons stay out of the timeline, which the public tracking view
     * shows: they may hold personal data. */
    timeline(q->r, ev, "%s: %s", NAME(q),
             to == OSSE_SS_APPROVED   ? "approved"
             : to == OSSE_SS_REJECTED ? "rejected"
                                      : "returned to the applicant for more information");
    return moved(q);
}

static int sla_warned(rq_t *q)
{
    STEP(q)->sla_state = "warned";
    STEP(q)->warn_at = 0;
    timeline(q->r, q->ev, "%s: the deadline is near", NAME(q));
    return moved(q);
}

static int sla_breached(rq_t *q)
{
    STEP(q)->sla_state = "breached";
    STEP(q)->warn_at = 0;
    osse_stint_t *held = stint_held(STEP(q));
    if (held && !held->breached_at) {
        held->breached_at = held->overdue_from = q->ev->at;
        osse__task_row(q->e, held->agency, q->r->wfe->id)->breaches++;
    }
    /* Notices count from the breach of the SLA the task is under (SPEC §2). */
    const osse_duration_t *d = &q->r->wf->overdue_notice;
    int64_t due = 0;
    const char *due_s = osse__jstr(q->ev->data, "due_at");
    if (d->kind == OSSE_DUR_WALL && q->r->wf->steps[q->i].kind == OSSE_STEP_KIND_TASK &&
        STEP(q)->state == OSSE_SS_OPEN) {
        if (!due_s || osse_time_parse(due_s, &due))
            due = q->ev->at;
        STEP(q)->overdue_next = osse_duration_add_wall(d, due);
        STEP(q)->overdue_left = -1;
        STEP(q)->notices = 0;
    }
    timeline(q->r, q->ev, "%s: the deadline has passed", NAME(q));
    return moved(q);
}

/* Its deadlines are read by apply_request (OSSE_EVF_SLA). */
static int sla_rescheduled(rq_t *q)
{
    timeline(q->r, q->ev, "%s: the deadline moved with the calendar", NAME(q));
    return moved(q);
}

static int task_escalated(rq_t *q)
{
    osse_err_t *err = q->err;
    const char *to = osse__jstr(q->ev->data, "to");
    osse_step_t *s = STEP(q);
    if (!to || s->state != OSSE_SS_OPEN)
        return CORRUPT("bad %s", EVN(q->ev));
    if (s->escalated)
        return CORRUPT("step %s of %s escalated twice", NAME(q), q->r->id);
    stint_end(q->e, q->r, s, q->ev->at, OSSE_STINT_ESCALATED);
    /* The first stint keeps the definition's agency string: an agency is
     * owned by the step only after the one escalation it may have. */
    s->agency = osse_strdup(to);
    s->agency_owned = true;
    s->escalated = true;
    s->changed_at = q->r->version;
    stint_begin(q->e, q->r, s, q->ev->at);
    s->sla_state = "ok"; /* before its fresh deadlines are read */
    s->overdue_next = 0;
    s->overdue_left = -1;
    add_task(q->e, q->r, (size_t)q->i, s->agency);
    timeline(q->r, q->ev, "%s: escalated to %s", NAME(q), to);
    return moved(q);
}

static int task_auto_approved(rq_t *q)
{
    int rc = finish_step(q, OSSE_SS_APPROVED);
    if (rc)
        return rc;
    osse_step_t *s = STEP(q);
    set_text(&s->outcome, "approve");
    set_text(&s->reason, REASON_AUTO_APPROVED);
    stint_end(q->e, q->r, s, q->ev->at, OSSE_STINT_AUTO);
    timeline(q->r, q->ev, "%s: approved automatically by rule", NAME(q));
    return moved(q);
}

/* Changes no state: the rule counted as false. */
static int rule_failed(rq_t *q)
{
    timeline(q->r, q->ev, "%s: a rule could not be evaluated", NAME(q));
    return 0;
}

static int step_failed(rq_t *q)
{
    int rc = finish_step(q, OSSE_SS_FAILED);
    if (rc)
        return rc;
    set_text(&STEP(q)->reason, q->r->wf->steps[q->i].kind == OSSE_STEP_KIND_PAYMENT
                                   ? REASON_FEE_FAILED
                                   : REASON_STEP_FAILED);
    timeline(q->r, q->ev, "Step %s failed", NAME(q));
    return moved(q);
}

static int linkage_completed(rq_t *q)
{
    const json_t *d = q->ev->data;
    osse_err_t *err = q->err;
    int rc;
    json_t *answer = json_object_get(d, "answer");
    if (!answer || q->r->wf->steps[q->i].kind != OSSE_STEP_KIND_LINKAGE)
        return CORRUPT("bad %s", EVN(q->ev));
    if ((rc = finish_step(q, OSSE_SS_DONE)))
        return rc;
    /* A `require` that did not hold: the rejection that follows says why in
     * the step's words. */
    if (json_object_get(d, "rule") && !json_is_true(json_object_get(d, "result")))
        set_text(&STEP(q)->reason,
                 json_object_get(d, "error") ? REASON_CHECK_ERROR : REASON_CHECK_FAILED);
    if (!q->r->data)
        q->r->data = json_object();
    json_object_set_new(q->r->data, NAME(q), json_deep_copy(answer));
    timeline(q->r, q->ev, "%s: the registry answered", NAME(q));
    return moved(q);
}

static int linkage_failed(rq_t *q)
{
    int rc = finish_step(q, OSSE_SS_FAILED);
    if (rc)
        return rc;
    /* The lookup's own error (a status, a timeout) stays in the event. */
    set_text(&STEP(q)->reason, REASON_LOOKUP_FAILED);
    timeline(q->r, q->ev, "%s: the registry lookup failed", NAME(q));
    return moved(q);
}

/* Its deadlines (the SLA resumed) are read by apply_request. */
static int info_provided(rq_t *q)
{
    int rc = set_step(q->r, (size_t)q->i, OSSE_SS_OPEN, q->err);
    if (rc)
        return rc;
    json_t *form = json_object_get(q->ev->data, "form");
    if (json_is_object(form) && json_object_size(form)) {
        json_object_update(osse__form(q->r), form);
        q->r->form_changed_at = q->r->version;
    }
    osse_step_t *s = STEP(q);
    s->remaining_ms = s->warn_remaining_ms = -1;
    if (s->overdue_left >= 0) {
        s->overdue_next = q->ev->at + s->overdue_left;
        s->overdue_left = -1;
    }
    /* Open again: the return's outcome and reason no longer apply. */
    set_text(&s->outcome, NULL);
    set_text(&s->reason, NULL);
    if (q->r->wf->steps[q->i].kind == OSSE_STEP_KIND_TASK && s->agency)
        stint_begin(q->e, q->r, s, q->ev->at);
    timeline(q->r, q->ev, "The applicant provided information for %s", NAME(q));
    return moved(q);
}

/* The fee is due; its reference is the request's in the index of
 * references (unique in the log). Logs from before references have none.
 * Nothing is due for 0: the step is done at once (SPEC §2). */
static int payment_due(rq_t *q)
{
    osse_err_t *err = q->err;
    osse_step_t *s = STEP(q);
    json_t *sat = json_object_get(q->ev->data, "amount_satang");
    const char *ref = osse__jstr(q->ev->data, "reference"), *qr = osse__jstr(q->ev->data, "qr");
    if (!json_is_integer(sat) || json_integer_value(sat) < 0 ||
        q->r->wf->steps[q->i].kind != OSSE_STEP_KIND_PAYMENT || s->state != OSSE_SS_OPEN)
        return CORRUPT("bad %s", EVN(q->ev));
    if (ref && osse_map_get(&q->e->references, ref))
        return CORRUPT("%s: reference %s is not unique", EVN(q->ev), ref);
    s->amount_satang = json_integer_value(sat);
    set_text(&s->reference, ref);
    set_text(&s->qr, qr);
    if (ref)
        osse_map_put(&q->e->references, ref, q->r);
    timeline(q->r, q->ev, "A fee of %s THB is due", osse__jstr(q->ev->data, "amount"));
    if (s->amount_satang == 0) {
        int rc = finish_step(q, OSSE_SS_DONE);
        if (rc)
            return rc;
        s->paid = true;
    }
    return moved(q);
}

/* The key of the payments index: a transaction id is the payment
 * principal's own (SPEC §4). */
void osse__payment_key(const char *principal, const char *transaction, char *out, size_t n)
{
    snprintf(out, n, "%s\n%s", principal, transaction);
}

/* What the payment command checked, checked again: a log that says
 * otherwise is damaged. */
static int payment_received(rq_t *q)
{
    osse_err_t *err = q->err;
    osse_step_t *s = STEP(q);
    const char *tx = osse__jstr(q->ev->data, "transaction"),
               *ref = osse__jstr(q->ev->data, "reference");
    char key[OSSE_PAYMENT_KEY_MAX];
    if (!tx || !q->ev->actor_id || !q->ev->actor_kind || strcmp(q->ev->actor_kind, "payment") ||
        q->r->wf->steps[q->i].kind != OSSE_STEP_KIND_PAYMENT ||
        (s->reference && (!ref || strcmp(ref, s->reference) != 0)))
        return CORRUPT("bad %s", EVN(q->ev));
    osse__payment_key(q->ev->actor_id, tx, key, sizeof key);
    if (osse_map_get(&q->e->payments, key))
        return CORRUPT("%s: transaction %s recorded twice", EVN(q->ev), tx);
    int rc = finish_step(q, OSSE_SS_DONE);
    if (rc)
        return rc;
    s->paid = true;
    set_text(&s->payer, q->ev->actor_id);
    set_text(&s->transaction, tx);
    osse_map_put(&q->e->payments, key, q->r);
    timeline(q->r, q->ev, "The fee of %s THB was paid", osse__jstr(q->ev->data, "amount"));
    return moved(q);
}

/* One more notice of a task past its due time: the next counts from this
 * one's due instant, not from when it was written, so that notices owed
 * after a restart keep their period. */
static int overdue_notice(rq_t *q)
{
    osse_err_t *err = q->err;
    osse_step_t *s = STEP(q);
    const osse_duration_t *d = &q->r->wf->overdue_notice;
    json_t *n = json_object_get(q->ev->data, "notice");
    if (!json_is_integer(n) || d->kind != OSSE_DUR_WALL || !s->overdue_next ||
        s->state != OSSE_SS_OPEN)
        return CORRUPT("bad %s", EVN(q->ev));
    s->notices = (uint32_t)json_integer_value(n);
    s->overdue_next = osse_duration_add_wall(d, s->overdue_next);
    timeline(q->r, q->ev, "%s: still undecided past its due time (notice %u)", NAME(q), s->notices);
    return 0;
}

/* The registry's lookup by number and the number's counter (licence.c) of r's
 * licence: at LicenceIssued, and for a request read from its record in the
 * order of issue. */
static void licence_index(osse_engine_t *e, osse_request_t *r)
{
    const char *tpl = r->wf->steps[r->licence_step].number,
               *number = osse__jstr(r->licence, "number");
    osse__licence_seq(r->wfe, tpl ? tpl : OSSE_WF_DEFAULT_NUMBER, r->licence_year, true);
    /* A log written before numbers counted from the log may repeat one:
     * the registry's lookup by number then finds the first. */
    if (number && !osse_map_get(&e->licnums, number))
        osse_map_put(&e->licnums, number, r);
}

static int licence_issued(rq_t *q)
{
    int rc = finish_step(q, OSSE_SS_DONE);
    if (rc)
        return rc;
    const char *number = osse__jstr(q->ev->data, "number");
    int64_t from = 0;
    const char *vf = osse__jstr(q->ev->data, "valid_from");
    if (!number || !vf || osse_time_parse(vf, &from) || q->r->licence)
        return osse_err_set(q->err, OSSE_ECORRUPT, "%s without number or valid_from, or again",
                            EVN(q->ev));
    /* The counter request.c read the number from (licence.c). */
    q->r->licence = json_deep_copy(q->ev->data);
    json_object_del(q->r->licence, "step");
    q->r->licence_seq = q->ev->seq;
    q->r->licence_year = osse__licence_year(q->e, q->r->wf, from);
    q->r->licence_step = (uint32_t)q->i;
    licence_index(q->e, q->r);
    timeline(q->r, q->ev, "Licence %s issued", number);
    return moved(q);
}

/* LicenceExpired, LicenceRevoked: also after the request ended (a licence
 * outlives its request); a revoked licence stays revoked. */
static int licence_ended(rq_t *q)
{
    osse_request_t *r = q->r;
    const char *number = osse__jstr(q->ev->data, "number");
    if (!r->licence || !number || strcmp(number, osse__jstr(r->licence, "number")) != 0 ||
        r->licence_revoked_at || (q->ev->type == OSSE_EV_LicenceExpired && r->licence_expired_at))
        return osse_err_set(q->err, OSSE_ECORRUPT, "%s of no licence of request %s, or again",
                            EVN(q->ev), r->id);
    if (q->ev->type == OSSE_EV_LicenceExpired) {
        r->licence_expired_at = q->ev->at;
        timeline(r, q->ev, "Licence %s expired", number);
    } else {
        r->licence_revoked_at = q->ev->at;
        set_text(&r->licence_reason, osse__jstr(q->ev->data, "reason"));
        timeline(r, q->ev, "Licence %s revoked", number);
    }
    return 0;
}

static int request_completed(rq_t *q)
{
    osse_request_t *r = q->r;
    osse_err_t *err = q->err;
    for (size_t k = 0; k < r->wf->nsteps; k++)
        if (!osse__sstate_done(r->steps[k].state))
            return CORRUPT("request %s completed with step %s %s", r->id, r->wf->steps[k].name,
                           osse__sstate_name(r->steps[k].state));
    timeline(r, q->ev, "Request completed");
    return set_status(q->e, r, OSSE_RS_COMPLETED, err);
}

/* RequestRejected, RequestWithdrawn, RequestExpired: the request ends as
 * `to` and its unfinished steps are cancelled. */
static int request_ended(rq_t *q, osse_rstatus_t to)
{
    osse_request_t *r = q->r;
    int k = q->i, rc;
    /* The applicant's words, as stored (sealed: pii.c). */
    char *why = osse__pii_stored_text(json_object_get(q->ev->data, "reason"));
    set_text(&r->reason, ending_reason(r, to, why, k));
    free(why);
    if ((rc = cancel_unfinished(q->e, r, q->ev->at, q->err)))
        return rc;
    if (to == OSSE_RS_EXPIRED && k >= 0)
        set_text(&r->steps[k].reason, r->reason);
    timeline(r, q->ev, "Request %s", osse__rstatus_name(to));
    return set_status(q->e, r, to, q->err);
}

/* A text slot as kept (pii.c's mark and base64 when it was sealed): a
 * sealed one becomes "[erased]". */
static void erase_text(char **slot)
{
    if (*slot && (*slot)[0] == OSSE_PII_TEXT_MARK)
        set_text(slot, OSSE_PII_ERASED);
}

/* PersonalDataErased (SPEC §8, erasure.c): once, after the request ended.
 * The key goes at once (nothing opens the request's values any more, also
 * before the key store's rewrite is done), and every sealed value the
 * projection keeps (form, linkage answers, reasons) becomes "[erased]": the
 * views, the remembered answers made from now on and the digest then say
 * so for every reader, the same live and after a replay, which has no keys
 * and reads the same events. The events keep their ciphertext. */
static int personal_data_erased(rq_t *q)
{
    osse_request_t *r = q->r;
    osse_err_t *err = q->err;
    if (r->erased_at || !json_is_array(json_object_get(q->ev->data, "fields")) ||
        !osse__jstr(q->ev->data, "reason"))
        return CORRUPT("%s of request %s: again, or without fields and reason", EVN(q->ev), r->id);
    r->erased_at = q->ev->at;
    osse__pii_key_drop(q->e, r->id);
    json_t *form = osse__pii_erased(osse__form(r));
    json_decref(r->form);
    r->form = form;
    if (r->data) {
        json_t *data = osse__pii_erased(r->data);
        json_decref(r->data);
        r->data = data;
    }
    erase_text(&r->reason);
    for (size_t k = 0; k < r->wf->nsteps; k++)
        erase_text(&r->steps[k].reason);
    timeline(r, q->ev, "Personal data erased");
    return 0;
}

/* A request event: its request's version is checked and its seq counted,
 * then the function of its type changes the projection. */
static int apply_request(osse_engine_t *e, const osse_event_t *ev, const char *id, osse_err_t *err)
{
    int rc;
    if (ev->type == OSSE_EV_RequestSubmitted && (rc = submitted(e, ev, id, err)))
        return rc;
    osse_request_t *r = osse__request(e, id);
    if (!r)
        return CORRUPT("%s for unknown request %s", osse_event_type_name(ev->type), id);
    if (ev->version != r->version + 1)
        return CORRUPT("request %s version %u after %u", id, ev->version, r->version);
    r->version = ev->version;
    OSSE_VEC_RESERVE(r->seqs, r->cseqs, r->nseqs + 1);
    r->seqs[r->nseqs++] = ev->seq;
    if (ev->type == OSSE_EV_RequestSubmitted) {
        timeline(r, ev, "Request submitted (%s, version %d)", r->wfe->id, r->wf_version);
        return 0;
    }
    if (osse__rstatus_final(r->status) != (ev->type == OSSE_EV_PersonalDataErased) &&
        ev->type != OSSE_EV_LicenceExpired && ev->type != OSSE_EV_LicenceRevoked)
        return CORRUPT("%s %s request %s ended", osse_event_type_name(ev->type),
                       ev->type == OSSE_EV_PersonalDataErased ? "before" : "after", id);
    bool was_final = osse__rstatus_final(r->status);
    rq_t q = {e, ev, r, named_step(r, ev), err};
    if (q.i < 0 && osse_event_type_has(ev->type, OSSE_EVF_STEP))
        return CORRUPT("%s names an unknown step", EVN(ev));
    rc = 0;
    switch (ev->type) {
    case OSSE_EV_StepOpened: rc = step_opened(&q); break;
    case OSSE_EV_StepSkipped: rc = step_skipped(&q); break;
    case OSSE_EV_TaskAutoApproved: rc = task_auto_approved(&q); break;
    case OSSE_EV_TaskDecided: rc = task_decided(&q); break;
    case OSSE_EV_InfoProvided: rc = info_provided(&q); break;
    case OSSE_EV_SlaWarned: rc = sla_warned(&q); break;
    case OSSE_EV_SlaBreached: rc = sla_breached(&q); break;
    case OSSE_EV_SlaRescheduled: rc = sla_rescheduled(&q); break;
    case OSSE_EV_TaskEscalated: rc = task_escalated(&q); break;
    case OSSE_EV_LinkageCompleted: rc = linkage_completed(&q); break;
    case OSSE_EV_LinkageFailed: rc = linkage_failed(&q); break;
    case OSSE_EV_PaymentDue: rc = payment_due(&q); break;
    case OSSE_EV_PaymentReceived: rc = payment_received(&q); break;
    case OSSE_EV_SlaOverdueNotice: rc = overdue_notice(&q); break;
    case OSSE_EV_LicenceIssued: rc = licence_issued(&q); break;
    case OSSE_EV_RequestCompleted: rc = request_completed(&q); break;
    case OSSE_EV_RequestRejected: rc = request_ended(&q, OSSE_RS_REJECTED); break;
    case OSSE_EV_RequestWithdrawn: rc = request_ended(&q, OSSE_RS_WITHDRAWN); break;
    case OSSE_EV_RequestExpired: rc = request_ended(&q, OSSE_RS_EXPIRED); break;
    case OSSE_EV_StepFailed: rc = step_failed(&q); break;
    case OSSE_EV_RuleFailed: rc = rule_failed(&q); break;
    case OSSE_EV_LicenceExpired:
    case OSSE_EV_LicenceRevoked: rc = licence_ended(&q); break;
    case OSSE_EV_PersonalDataErased: rc = personal_data_erased(&q); break;
    /* osse__apply sends only request events here. */
    case OSSE_EV_RequestSubmitted:
    case OSSE_EV_WorkflowPublished:
    case OSSE_EV_CalendarUpdated:
    case OSSE_EV_AgencyUpdated:
    case OSSE_EV_PrincipalCreated:
    case OSSE_EV_PrincipalRevoked:
    case OSSE_EV_NotificationDelivered:
    case OSSE_EV_NotificationFailed:
    case OSSE_EV_SubscriptionUpdated:
    case OSSE_EV_SubscriptionDeleted:
    case OSSE_EV_AgencySecretRotated:
    case OSSE_EV__COUNT:
        return CORRUPT("%s is not a request event", osse_event_type_name(ev->type));
    }
    /* When it ended: retention counts from there (expiry.c). */
    if (!rc && !was_final && osse__rstatus_final(r->status))
        r->ended_at = ev->at;
    /* The handler has set the step's state, so its fresh deadlines are
     * scheduled for the state it is in now. */
    if (!rc && osse_event_type_has(ev->type, OSSE_EVF_SLA))
        rc = deadlines(e, r, (size_t)q.i, ev, err);
    return rc;
}

/* --- the other streams --- */
void osse__sub_free(osse_sub_t *s)
{
    free(s->events);
    free(s->id);
    free(s->url);
    free(s->owner);
    sodium_memzero(s->secret, sizeof s->secret);
    free(s);
}

static int subscription(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *id = osse__jstr(ev->data, "id"), *url = osse__jstr(ev->data, "url"),
               *owner = osse__jstr(ev->data, "owner");
    osse_sub_t *s = id ? osse_map_get(&e->subs, id) : NULL;
    if (ev->type == OSSE_EV_SubscriptionDeleted) {
        /* Gone from every view; a later SubscriptionUpdated of the same id
         * starts a new one. */
        if (!s)
            return osse_err_set(err, OSSE_ECORRUPT, "%s of unknown %s",
                                osse_event_type_name(ev->type), id ? id : "(no id)");
        osse_map_del(&e->subs, id);
        osse__sub_free(s);
        return 0;
    }
    json_t *events = json_object_get(ev->data, "events");
    if (!id || !url || !owner || !json_is_array(events))
        return osse_err_set(err, OSSE_ECORRUPT, "bad %s", osse_event_type_name(ev->type));
    if (!s) {
        s = osse_calloc(1, sizeof *s);
        s->id = osse_strdup(id);
        s->owner = osse_strdup(owner);
        osse_map_put(&e->subs, id, s);
    }
    size_t n = json_array_size(events), i;
    osse_event_type_t *types = osse_calloc(n, sizeof *types);
    json_t *t;
    /* PUT let only subscribable types in: anything else is damage. */
    json_array_foreach(events, i, t)
    {
        const char *ts = json_string_value(t);
        if (!ts || osse_event_type_parse(ts, strlen(ts), &types[i]) ||
            !osse_event_type_has(types[i], OSSE_EVF_SUBSCRIBABLE)) {
            free(types);
            return osse_err_set(err, OSSE_ECORRUPT, "%s %s lists %s",
                                osse_event_type_name(ev->type), id, ts ? ts : "a non-string");
        }
    }
    free(s->events);
    free(s->url);
    s->url = osse_strdup(url);
    s->nevents = n;
    s->events = types;
    return 0;
}

int osse__apply(osse_engine_t *e, const osse_event_t *ev, osse_err_t *err)
{
    const char *s = ev->stream;
    if (!json_is_object(ev->data) && !osse_event_has_fields(ev))
        return CORRUPT("event %llu has no data object", (unsigned long long)ev->seq);
    /* The decoder and the encoder made sure that the stream is of the
     * type's kind, "<kind>/<id>". */
    const char *id = strchr(s, '/') + 1;
    osse_stream_kind_t kind = osse_event_type_kind(ev->type);
    if (kind == OSSE_SK_REQUEST)
        return apply_request(e, ev, id, err);
    if (kind == OSSE_SK_DELIVERY) {
        osse_request_t *r = osse__request(e, id);
        if (r) {
            OSSE_VEC_RESERVE(r->seqs, r->cseqs, r->nseqs + 1);
            r->seqs[r->nseqs++] = ev->seq;
            r->delivery_version = ev->version;
        }
    }
    uint32_t have = (uint32_t)(uintptr_t)osse_map_get(&e->versions, s);
    if (ev->version != have + 1)
        return CORRUPT("stream %s version %u after %u", s, ev->version, have);
    osse_map_put(&e->versions, s, (void *)(uintptr_t)ev->version);
    switch (ev->type) {
    case OSSE_EV_WorkflowPublished: return workflow_published(e, ev, err);
    case OSSE_EV_CalendarUpdated: return calendar_updated(e, ev, err);
    case OSSE_EV_AgencyUpdated: return agency_updated(e, ev, err);
    case OSSE_EV_PrincipalCreated: return principal_created(e, ev, err);
    case OSSE_EV_PrincipalRevoked: return principal_revoked(e, ev, err);
    case OSSE_EV_SubscriptionUpdated:
    case OSSE_EV_SubscriptionDeleted: return subscription(e, ev, err);
    /* Kept in the log; no view holds them (yet). */
    case OSSE_EV_NotificationDelivered:
    case OSSE_EV_NotificationFailed:
    case OSSE_EV_AgencySecretRotated: return 0;
    /* Request events went to apply_request above. */
    case OSSE_EV_RequestSubmitted:
    case OSSE_EV_StepOpened:
    case OSSE_EV_StepSkipped:
    case OSSE_EV_TaskAutoApproved:
    case OSSE_EV_TaskDecided:
    case OSSE_EV_InfoProvided:
    case OSSE_EV_SlaWarned:
    case OSSE_EV_SlaBreached:
    case OSSE_EV_SlaRescheduled:
    case OSSE_EV_TaskEscalated:
    case OSSE_EV_LinkageCompleted:
    case OSSE_EV_LinkageFailed:
    case OSSE_EV_PaymentDue:
    case OSSE_EV_PaymentReceived:
    case OSSE_EV_LicenceIssued:
    case OSSE_EV_LicenceExpired:
    case OSSE_EV_LicenceRevoked:
    case OSSE_EV_SlaOverdueNotice:
    case OSSE_EV_RequestCompleted:
    case OSSE_EV_RequestRejected:
    case OSSE_EV_RequestWithdrawn:
    case OSSE_EV_RequestExpired:
    case OSSE_EV_PersonalDataErased:
    case OSSE_EV_StepFailed:
    case OSSE_EV_RuleFailed:
    case OSSE_EV__COUNT: break;
    }
    return CORRUPT("event %llu: %s in stream %s", (unsigned long long)ev->seq,
                   osse_event_type_name(ev->type), s);
}
