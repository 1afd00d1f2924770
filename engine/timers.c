/* timers.c: SLA deadlines: warnings, breaches and what a breach does.
 *
 * Every pending deadline is an entry in one min-heap ordered by time; one
 * uv_timer wakes the loop for the nearest (real clock), or POST
 * /v1/test/clock fires everything up to the new time (test clock). Entries
 * are never removed when a step moves on: an entry is checked against its
 * step when it reaches the top and dropped if the step is no longer open or
 * its deadline changed. Firing emits an event (SlaWarned, SlaBreached) that
 * changes the step, so a deadline fires once; after a restart the heap is
 * rebuilt from the projections, and what fell due while the process was down
 * fires at once. While the disk is below its free-space reserve nothing
 * fires; what fell due meanwhile fires when space returns.
 *
 * The third kind of entry is a task's next overdue notice (the definition's
 * overdue_notice, SPEC §2): apply.c keeps when it falls due (from the
 * breach, then from each notice's own due instant, paused while the task
 * waits for the applicant), so a restart rebuilds it from the projection
 * like a deadline, and the notices owed while the process was down fire one
 * per period, each scheduling the next.
 *
 * Why a heap and not a libuv timer per deadline: a million open requests
 * hold two million deadlines; a heap entry is 16 bytes and needs no handle. */
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"

static void arm(osse_engine_t *e);

static bool before(const osse_timer_t *a, const osse_timer_t *b)
{
    return a->at < b->at ||
           (a->at == b->at && (a->req < b->req || (a->req == b->req && a->kind < b->kind)));
}

static void sift_up(osse_timer_t *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&h[i], &h[p]))
            break;
        osse_timer_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static void sift_down(osse_timer_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && before(&h[l], &h[m]))
            m = l;
        if (r < n && before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        osse_timer_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void push(osse_engine_t *e, osse_timer_t t)
{
    OSSE_VEC_RESERVE(e->timers, e->ctimers, e->ntimers + 1);
    e->timers[e->ntimers] = t;
    sift_up(e->timers, e->ntimers++);
}

static osse_timer_t pop(osse_engine_t *e)
{
    osse_timer_t t = e->timers[0];
    e->timers[0] = e->timers[--e->ntimers];
    sift_down(e->timers, e->ntimers, 0);
    return t;
}

static void schedule(osse_engine_t *e, const osse_request_t *r, size_t step, int64_t at,
                     osse_timer_kind_t kind)
{
    bool was_top = e->ntimers == 0 || at < e->timers[0].at;
    push(e, (osse_timer_t){at, r->index, (uint16_t)step, (uint8_t)kind});
    if (was_top)
        arm(e);
}

/* The events after which a task may have a new next overdue notice. */
static bool moves_notice(osse_event_type_t t)
{
    return t == OSSE_EV_SlaBreached || t == OSSE_EV_SlaOverdueNotice || t == OSSE_EV_InfoProvided ||
           t == OSSE_EV_TaskEscalated;
}

/* An event that moves an SLA (OSSE_EVF_SLA) was applied: the step's fresh
 * deadlines, as apply.c read them from it, are scheduled; and after one
 * that moves its overdue notices, the next notice. */
static void applied(osse_engine_t *e, const osse_event_t *ev)
{
    const char *rid = osse__stream_id(ev->stream, OSSE_SK_REQUEST);
    if (rid && ev->type == OSSE_EV_LicenceIssued) {
        /* Its expiry (expiry.c), which this heap's wakeup also serves. */
        const osse_request_t *lr = osse__request(e, rid);
        if (lr) {
            osse__licence_expiry_add(e, lr);
            arm(e);
        }
        return;
    }
    if (rid && (ev->type == OSSE_EV_RequestCompleted || ev->type == OSSE_EV_RequestRejected ||
                ev->type == OSSE_EV_RequestWithdrawn || ev->type == OSSE_EV_RequestExpired)) {
        /* The request ended: its retention erasure, if its workflow has
         * one (expiry.c), on the same wakeup. */
        const osse_request_t *er = osse__request(e, rid);
        if (er) {
            osse__retention_add(e, er);
            arm(e);
        }
        return;
    }
    bool sla = osse_event_type_has(ev->type, OSSE_EVF_SLA);
    if (!rid || !(sla || moves_notice(ev->type)))
        return;
    osse_request_t *r = osse__request(e, rid);
    const char *name = osse_event_step(ev);
    int i = r && name ? osse_wf_step_index(r->wf, name) : -1;
    if (i < 0)
        return;
    const osse_step_t *s = &r->steps[i];
    if (sla && s->warn_at)
        schedule(e, r, (size_t)i, s->warn_at, OSSE_TIMER_WARN);
    if (sla && s->due_at)
        schedule(e, r, (size_t)i, s->due_at, OSSE_TIMER_BREACH);
    if (moves_notice(ev->type) && s->overdue_next && s->state == OSSE_SS_OPEN)
        schedule(e, r, (size_t)i, s->overdue_next, OSSE_TIMER_NOTICE);
}

static void rebuild(osse_engine_t *e)
{
    e->ntimers = 0;
    for (osse_request_t *r = e->open.first; r; r = r->open_next) {
        for (size_t i = 0; i < r->wf->nsteps; i++) {
            const osse_step_t *s = &r->steps[i];
            if (s->state != OSSE_SS_OPEN)
                continue;
            if (s->warn_at && strcmp(s->sla_state, "ok") == 0)
                push(e, (osse_timer_t){s->warn_at, r->index, (uint16_t)i, OSSE_TIMER_WARN});
            if (s->due_at && strcmp(s->sla_state, "breached") != 0)
                push(e, (osse_timer_t){s->due_at, r->index, (uint16_t)i, OSSE_TIMER_BREACH});
            if (s->overdue_next)
                push(e, (osse_timer_t){s->overdue_next, r->index, (uint16_t)i, OSSE_TIMER_NOTICE});
        }
    }
}

/* Whether entry t still describes its step's pending deadline. */
static bool current(osse_engine_t *e, const osse_timer_t *t)
{
    const osse_request_t *r = osse__slot(e, t->req);
    if (!r || osse__rstatus_final(r->status) || t->step >= r->wf->nsteps)
        return false;
    const osse_step_t *s = &r->steps[t->step];
    if (s->state != OSSE_SS_OPEN)
        return false;
    switch ((osse_timer_kind_t)t->kind) {
    case OSSE_TIMER_WARN: return s->warn_at == t->at && strcmp(s->sla_state, "ok") == 0;
    case OSSE_TIMER_BREACH: return s->due_at == t->at && strcmp(s->sla_state, "breached") != 0;
    case OSSE_TIMER_NOTICE: return s->overdue_next == t->at;
    }
    return false;
}

static void breach(osse_engine_t *e, osse_request_t *r, size_t i, int64_t at)
{
    const osse_wf_step_t *ws = &r->wf->steps[i];
    osse_step_t *s = &r->steps[i];
    osse_breach_t action = s->escalated ? OSSE_BREACH_NOTIFY : ws->on_breach;
    static const char *names[] = {[OSSE_BREACH_NOTIFY] = "notify",
                                  [OSSE_BREACH_APPROVE] = "approve",
                                  [OSSE_BREACH_REJECT] = "reject",
                                  [OSSE_BREACH_ESCALATE] = "escalate",
                                  [OSSE_BREACH_EXPIRE] = "expire"};
    char stream[96], due[OSSE_TIME_LEN];
    /* due_at is on osse's clock (the test clock under --test-clock); ts is real. */
    osse_logf(OSSE_LEVEL_WARN, "sla breached", "request=%s step=%s agency=%s due_at=%s action=%s",
              r->id, ws->name, s->agency, osse_time_fmt(at, due), names[action]);
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_SlaBreached, NULL,
               json_pack("{s:s,s:s?,s:o,s:s}", "step", ws->name, "agency", s->agency, "due_at",
                         osse__time_json(at), "action", names[action]));
    bool task = ws->kind == OSSE_STEP_KIND_TASK;
    switch (action) {
    case OSSE_BREACH_NOTIFY: break;
    case OSSE_BREACH_APPROVE:
        if (!task)
            break;
        osse__emit(e, stream, OSSE_EV_TaskDecided, NULL,
                   json_pack("{s:s,s:s?,s:s,s:b,s:s}", "step", ws->name, "agency", s->agency,
                             "outcome", "approve", "deemed", 1, "reason",
                             "deemed approved: no decision within the SLA"));
        osse__advance(e, r, NULL);
        break;
    case OSSE_BREACH_REJECT:
        if (task)
            osse__emit(e, stream, OSSE_EV_TaskDecided, NULL,
                       json_pack("{s:s,s:s?,s:s,s:b,s:s}", "step", ws->name, "agency", s->agency,
                                 "outcome", "reject", "deemed", 1, "reason",
                                 "rejected: no decision within the SLA"));
        osse__emit(
            e, stream, OSSE_EV_RequestRejected, NULL,
            json_pack("{s:s,s:s}", "step", ws->name, "reason", "no decision within the SLA"));
        break;
    case OSSE_BREACH_ESCALATE: {
        /* A fresh SLA, counted from the breach, for the agency escalated to. */
        int64_t due, warn;
        osse__sla_times(e, r, i, at, osse__sla_total(e, r, i, at), &due, &warn);
        osse__emit(e, stream, OSSE_EV_TaskEscalated, NULL,
                   json_pack("{s:s,s:s?,s:s,s:o,s:o}", "step", ws->name, "from", s->agency, "to",
                             ws->escalate_to, "due_at", osse__time_json(due), "warn_at",
                             osse__time_json(warn)));
        break;
    }
    case OSSE_BREACH_EXPIRE:
        osse__emit(
            e, stream, OSSE_EV_RequestExpired, NULL,
            json_pack("{s:s,s:s}", "step", ws->name, "reason", "the deadline of this step passed"));
        break;
    }
}

/* A task still undecided past its due time: SlaOverdueNotice (SPEC §2), which
 * apply.c answers by moving the next notice one period on. */
static void notice(osse_engine_t *e, osse_request_t *r, size_t i)
{
    const osse_step_t *s = &r->steps[i];
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_SlaOverdueNotice, NULL,
               json_pack("{s:s,s:s?,s:o,s:i}", "step", r->wf->steps[i].name, "agency", s->agency,
                         "due_at", osse__time_json(s->due_at), "notice", (int)s->notices + 1));
}

/* Under the real clock a wakeup fires at most this many deadlines, then lets
 * the loop serve others and commit them before it takes the next ones: a day's
 * worth falling due at once becomes many batches, not one huge one. */
#define FIRE_CHUNK 4096

void osse__timers_fire(osse_engine_t *e, int64_t upto, bool test_clock)
{
    size_t fired = 0;
    /* On a nearly full disk deadlines wait (their events would be written
     * with nothing to refuse them); the wakeup is left unarmed, and the
     * `resumed` reactor fires what fell due when space returns. */
    if (osse__storage_low(e))
        return;
    for (; test_clock || fired < FIRE_CHUNK; fired++) {
        /* Licence expiries and retention erasures (expiry.c) and SLA
         * deadlines, in due order. */
        int64_t lic = osse__licence_expiry_next(e);
        bool sla = e->ntimers && e->timers[0].at <= upto;
        if (lic <= upto && (!sla || lic < e->timers[0].at)) {
            if (!e->nlexp) {
                /* It must be read from disk first (expiry.c): the rest waits
                 * for it, in due order. */
                osse__licence_expiry_fire(e);
                break;
            }
            if (test_clock && lic > e->clock)
                e->clock = lic;
            osse__licence_expiry_fire(e);
            continue;
        }
        if (!sla)
            break;
        osse_timer_t t = pop(e);
        if (!current(e, &t))
            continue;
        /* Under the test clock every firing happens at its own due time, so
         * its events, and the steps it opens, are stamped with it. */
        if (test_clock && t.at > e->clock)
            e->clock = t.at;
        osse_request_t *r = osse__slot(e, t.req);
        if (t.kind == OSSE_TIMER_BREACH) {
            breach(e, r, t.step, t.at);
        } else if (t.kind == OSSE_TIMER_NOTICE) {
            notice(e, r, t.step);
        } else {
            char stream[96];
            osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
            osse__emit(e, stream, OSSE_EV_SlaWarned, NULL,
                       json_pack("{s:s,s:s?,s:o,s:o}", "step", r->wf->steps[t.step].name, "agency",
                                 r->steps[t.step].agency, "warn_at", osse__time_json(t.at),
                                 "due_at", osse__time_json(r->steps[t.step].due_at)));
        }
    }
    arm(e);
}

static void on_wake(uv_timer_t *h)
{
    osse_engine_t *e = h->data;
    osse__timers_fire(e, osse_engine_now(e), false);
}

static void arm(osse_engine_t *e)
{
    if (e->test_clock || !e->timers_ready)
        return;
    /* Drop stale entries at the top so that the wakeup is for a real one. */
    while (e->ntimers && !current(e, &e->timers[0]))
        pop(e);
    /* While the expiries' index is read further, its return fires them. */
    int64_t lic = e->due_reading ? INT64_MAX : osse__licence_expiry_next(e);
    if (!e->ntimers && lic == INT64_MAX) {
        uv_timer_stop(&e->wake);
        return;
    }
    int64_t next = e->ntimers && e->timers[0].at < lic ? e->timers[0].at : lic;
    int64_t delay = next - osse_engine_now(e);
    uv_timer_start(&e->wake, on_wake, delay > 0 ? (uint64_t)delay : 0, 0);
}

/* The expiries' index was read further (expiry.c): what waited fires. */
static void due_back(osse_engine_t *e)
{
    if (e->timers_ready)
        osse__timers_fire(e, osse_engine_now(e), e->test_clock);
}

/* What fell due while the disk was low fires now. */
static void resumed(osse_engine_t *e)
{
    osse__timers_fire(e, osse_engine_now(e), e->test_clock);
}

static const osse_reactor_t reactor = {.applied = applied, .resumed = resumed};

int osse__timers_start(osse_engine_t *e, bool from_disk)
{
    int rc = uv_timer_init(e->loop, &e->wake);
    if (rc)
        return OSSE_EIO;
    e->wake.data = e;
    uv_unref((uv_handle_t *)&e->wake);
    e->timers_ready = true;
    e->due_back = due_back;
    osse__react(e, &reactor);
    rebuild(e);
    return osse__licence_expiry_rebuild(e, from_disk) ? OSSE_EIO : 0;
}

void osse__timers_stop(osse_engine_t *e)
{
    if (!e->timers_ready)
        return;
    e->timers_ready = false;
    uv_timer_stop(&e->wake);
    uv_close((uv_handle_t *)&e->wake, NULL);
}

/* The move itself, once the heap holds every expiry due by `to`. */
static int clock_move(osse_engine_t *e, int64_t to, json_t **out, osse_fail_t *f)
{
    if (to < e->clock) {
        char t[OSSE_TIME_LEN];
        return osse__fail(f, OSSE_ECONFLICT, "clock_backwards",
                          "the clock does not go back: it stands at %s",
                          osse_time_fmt(e->clock, t));
    }
    osse__timers_fire(e, to, true);
    e->clock = to;
    osse__files_sweep(e);
    osse__test_clock_store(e);
    *out = json_pack("{s:o}", "now", osse__time_json(e->clock));
    return 0;
}

/* The expiries due by `to` were read from their index (on the pool): the
 * move goes on. A move that came first meanwhile may have passed `to`. */
static int clock_scanned(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f)
{
    return clock_move(e, osse__due_take(e, s), out, f);
}

int osse_cmd_test_clock(osse_engine_t *e, const osse_principal_t *p, json_t *body, json_t **out,
                        osse_scan_t **scan, osse_fail_t *f)
{
    (void)p;
    static const char *const keys[] = {"advance", "now", NULL};
    *scan = NULL;
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
    osse_scan_t *s = to >= e->clock ? osse__due_scan_upto(e, to) : NULL;
    if (s) {
        s->finish = clock_scanned;
        *scan = s;
        return 0;
    }
    return clock_move(e, to, out, f);
}
