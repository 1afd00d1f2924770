/* linkage.c: the lookup calls of linkage steps (SPEC §2 `linkage`).
 *
 * When a linkage step opens, osse evaluates its `input` expressions against
 * the request (form, data, request), POSTs them as one JSON object to the
 * agency's lookup_url, and records what came back: LinkageCompleted with the
 * answer (and the verdict of `require`, when there is one) or, after the last
 * attempt, LinkageFailed. Both go through osse__emit like any other event, in
 * the batch of the loop iteration in which the answer arrived, so they are
 * durable before anything that depends on them is answered.
 *
 * Invariant: the answer is only ever read from the event. Applying
 * LinkageCompleted (apply.c) puts it in the request's `data`, so a replay of
 * the log, at start or in `osse replay`, never calls out: this module runs
 * only in serving mode (osse__linkage_start after the replay at start).
 *
 * Why no record of a call in flight: a lookup asks, it changes nothing; after
 * a crash every linkage step that is still open is simply called again from
 * its first attempt. An answer that arrives after its request ended, or after
 * its step stopped being open, is dropped. So is one that arrives while the
 * disk is below its free-space reserve: the call is parked and made again
 * when space returns (resumed).
 *
 * Attempts: 1 + the step's `retries`, each bounded by the step's `timeout`
 * (default 10 s); after the n-th failed attempt the next one waits
 * 500 ms * 2^(n-1), at most 30 s (real time, also under the test clock). */
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "net/fetch.h"
#include "net/hooks.h"
#include "workflows/expr.h"

#define DEFAULT_TIMEOUT_MS 10000
#define MAX_TIMEOUT_MS 3600000
#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000

typedef struct call_s {
    struct call_s *prev, *next;
    struct osse_linkage_s *l;
    osse_request_t *r; /* pinned in memory while the call lasts (cache.c) */
    size_t step;
    uint32_t attempts, max_attempts;
    unsigned timeout_ms;
    char *url, *body;
    size_t body_len;
    char error[300]; /* the last attempt's failure */
    bool parked;     /* its answer came while the disk was low: asked again later */
    uv_timer_t backoff;
} call_t;

struct osse_linkage_s {
    osse_engine_t *e;
    osse_fetch_t *fetch;
    call_t *calls; /* every call in flight or waiting for its next attempt */
    bool stopped;
};

static void on_closed(uv_handle_t *h)
{
    call_t *c = h->data;
    free(c->url);
    free(c->body);
    free(c);
}

/* Forgets c (its attempt, if any, has ended or been cancelled). */
static void call_free(call_t *c)
{
    osse__pins(c->l->e, c->r, -1);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->l->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->backoff, on_closed);
}

static void stream_of(const osse_request_t *r, char *out, size_t n)
{
    osse__stream(out, n, OSSE_SK_REQUEST, r->id);
}

/* Records the failure of step i and ends the request (SPEC §2: a failed
 * step rejects the request and cancels every unfinished step). */
static void fail_step(osse_engine_t *e, osse_request_t *r, size_t i, uint32_t attempts,
                      const char *error, const char *input)
{
    const char *name = r->wf->steps[i].name;
    char stream[96], reason[160];
    /* An input's error may quote the value it was computed from (personal
     * data): the log names the input only. */
    if (input)
        osse_logf(OSSE_LEVEL_ERROR, "lookup failed", "request=%s step=%s attempts=%u input=%s",
                  r->id, name, attempts, input);
    else
        osse_logf(OSSE_LEVEL_ERROR, "lookup failed", "request=%s step=%s attempts=%u error=%s",
                  r->id, name, attempts, error);
    stream_of(r, stream, sizeof stream);
    json_t *d = json_pack("{s:s,s:i,s:s}", "step", name, "attempts", (int)attempts, "error", error);
    if (input)
        json_object_set_new(d, "input", json_string(input));
    osse__emit(e, stream, OSSE_EV_LinkageFailed, NULL, d);
    snprintf(reason, sizeof reason, "the registry lookup of step %s failed", name);
    osse__emit(e, stream, OSSE_EV_RequestRejected, NULL,
               json_pack("{s:s,s:s}", "step", name, "reason", reason));
}

/* Whether an answer for c still matters. */
static bool still_wanted(const call_t *c)
{
    return !osse__rstatus_final(c->r->status) && c->r->steps[c->step].state == OSSE_SS_OPEN;
}

static bool attempt(call_t *c);

/* Records why the attempt just made failed (c->error, for LinkageFailed) and
 * logs it; retry_ms < 0: it was the last one. The URL is logged as its origin
 * only and the answer never (it would be personal data). */
static void attempt_failed(call_t *c, const char *why, int64_t retry_ms)
{
    char origin[300];
    snprintf(c->error, sizeof c->error, "attempt %u: %.200s", c->attempts, why);
    osse_logf(retry_ms < 0 ? OSSE_LEVEL_ERROR : OSSE_LEVEL_WARN, "lookup attempt failed",
              "request=%s step=%s url=%s attempt=%u of=%u error=%s next_retry_ms=%lld", c->r->id,
              c->r->wf->steps[c->step].name, osse_logf_url_origin(c->url, origin, sizeof origin),
              c->attempts, c->max_attempts, why, (long long)retry_ms);
}

/* A 2xx with a JSON object: the answer is recorded with the verdict of
 * `require`, evaluated on the request's values with this answer in
 * data.<step> (exactly what the projection holds once the event applies). */
static void complete(call_t *c, json_t *answer)
{
    osse_engine_t *e = c->l->e;
    osse_request_t *r = c->r;
    const osse_wf_step_t *s = &r->wf->steps[c->step];
    json_t *rec = NULL;
    bool ok = true;
    if (s->require) {
        json_t *root = osse__rule_root(e, r);
        json_t *data = json_copy(json_object_get(root, "data"));
        json_object_set(data, s->name, answer);
        json_object_set_new(root, "data", data);
        ok = osse__run_condition_on(root, s->require, &rec);
        json_decref(root);
        osse__pii_seal_inputs(e, r, rec);
    } else {
        rec = json_object();
    }
    json_object_set_new(rec, "step", json_string(s->name));
    /* The whole answer is personal (SPEC §8): sealed as data.<step>. */
    char path[160];
    snprintf(path, sizeof path, "data.%s", s->name);
    json_object_set_new(rec, "answer", osse__pii_seal(e, r->id, path, answer));
    json_object_set_new(rec, "attempts", json_integer(c->attempts));
    char stream[96];
    stream_of(r, stream, sizeof stream);
    bool failed = json_object_get(rec, "error") != NULL;
    osse__emit(e, stream, OSSE_EV_LinkageCompleted, NULL, rec);
    if (ok) {
        osse__advance(e, r, NULL);
    } else {
        char reason[200];
        snprintf(reason, sizeof reason, "the requirement of step %s %s", s->name,
                 failed ? "could not be evaluated" : "is not met");
        osse__emit(e, stream, OSSE_EV_RequestRejected, NULL,
                   json_pack("{s:s,s:s}", "step", s->name, "reason", reason));
    }
}

static void on_backoff(uv_timer_t *t)
{
    call_t *c = t->data;
    if (!still_wanted(c)) {
        call_free(c);
        return;
    }
    attempt(c);
}

static void on_answer(void *ud, const osse_fetch_result_t *res)
{
    call_t *c = ud;
    if (c->l->stopped)
        return; /* osse__linkage_stop frees every call */
    if (!still_wanted(c)) {
        call_free(c);
        return;
    }
    if (osse__storage_low(c->l->e)) {
        /* Recording the outcome would write; on a nearly full disk it
         * waits. A lookup changes nothing, so the answer is dropped and the
         * same attempt is made again when space returns. */
        c->attempts--;
        c->parked = true;
        return;
    }
    json_t *answer = NULL;
    char why[256];
    if (res->code) {
        snprintf(why, sizeof why, "%.200s", res->error ? res->error : osse_strerror(res->code));
    } else if (res->status_code < 200 || res->status_code > 299) {
        snprintf(why, sizeof why, "HTTP %d", res->status_code);
    } else {
        json_error_t jerr;
        answer = json_loadb(res->body, res->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(answer)) {
            snprintf(why, sizeof why, "HTTP %d, the answer is not a JSON object", res->status_code);
            json_decref(answer);
            answer = NULL;
        }
    }
    if (answer) {
        complete(c, answer);
        json_decref(answer);
        call_free(c);
        return;
    }
    if (c->attempts < c->max_attempts) {
        uint32_t n = c->attempts - 1;
        uint64_t delay = n >= 6 ? BACKOFF_CAP_MS : (uint64_t)BACKOFF_BASE_MS << n;
        if (delay > BACKOFF_CAP_MS)
            delay = BACKOFF_CAP_MS;
        attempt_failed(c, why, (int64_t)delay);
        uv_timer_start(&c->backoff, on_backoff, delay, 0);
        return;
    }
    attempt_failed(c, why, -1);
    fail_step(c->l->e, c->r, c->step, c->attempts, c->error, NULL);
    call_free(c);
}

/* Starts the next attempt of c. Returns false when it could not start: then
 * the step has failed, the request has ended and c is freed. */
static bool attempt(call_t *c)
{
    osse_engine_t *e = c->l->e;
    const osse_wf_step_t *s = &c->r->wf->steps[c->step];
    const osse_agency_t *a = osse_map_get(&e->agencies, c->r->steps[c->step].agency);
    char h_req[160], h_step[160], h_sig[40 + OSSE_HOOKS_SIG_LEN];
    const char *headers[5] = {"Content-Type: application/json", h_req, h_step, NULL, NULL};
    snprintf(h_req, sizeof h_req, "Osse-Request: %s", c->r->id);
    snprintf(h_step, sizeof h_step, "Osse-Step: %s", s->name);
    if (a && a->secret[0]) {
        char sig[OSSE_HOOKS_SIG_LEN];
        osse_hooks_sign((const unsigned char *)a->secret, strlen(a->secret),
                        osse_time_real_ms() / 1000, c->body, c->body_len, sig);
        snprintf(h_sig, sizeof h_sig, "Osse-Signature: %s", sig);
        headers[3] = h_sig;
    }
    c->attempts++;
    osse_err_t err = {0};
    int rc = osse_fetch_post(c->l->fetch, c->url, headers, c->body, c->body_len, c->timeout_ms,
                             on_answer, c, &err);
    if (rc == 0)
        return true;
    /* Refused before any call was made (a URL curl cannot use): retrying
     * would not help. */
    attempt_failed(c, err.msg[0] ? err.msg : osse_strerror(rc), -1);
    fail_step(e, c->r, c->step, c->attempts, c->error, NULL);
    call_free(c);
    return false;
}

static unsigned timeout_of(const osse_wf_step_t *s)
{
    if (s->timeout.kind != OSSE_DUR_WALL)
        return DEFAULT_TIMEOUT_MS;
    int64_t ms = osse_duration_add_wall(&s->timeout, 0);
    return ms < 1 ? 1 : ms > MAX_TIMEOUT_MS ? MAX_TIMEOUT_MS : (unsigned)ms;
}

/* Step i (a linkage step) has opened: starts its call, or, when it cannot be
 * made (no lookup_url, an input that fails), records LinkageFailed and
 * rejects the request at once. */
static void begin(osse_engine_t *e, osse_request_t *r, size_t i)
{
    struct osse_linkage_s *l = e->linkage;
    if (!l || l->stopped)
        return;
    const osse_wf_step_t *s = &r->wf->steps[i];
    const osse_agency_t *a =
        r->steps[i].agency ? osse_map_get(&e->agencies, r->steps[i].agency) : NULL;
    if (!a || !a->lookup_url) {
        char msg[200];
        snprintf(msg, sizeof msg, "the agency %s has no lookup_url",
                 r->steps[i].agency ? r->steps[i].agency : "(none)");
        fail_step(e, r, i, 0, msg, NULL);
        return;
    }
    /* The inputs, in the definition's order. */
    json_t *body = json_object(), *root = osse__rule_root(e, r);
    const char *k;
    json_t *v;
    json_object_foreach(s->input, k, v)
    {
        const char *text = json_string_value(v);
        osse_expr_t *x = NULL;
        osse_err_t err = {0};
        json_t *val = NULL;
        int col = 0;
        if (!text || osse_expr_parse(text, strlen(text), &x, &col, &err) ||
            osse_expr_eval(x, root, &val, NULL, &err)) {
            char msg[400];
            snprintf(msg, sizeof msg, "input %.64s: %.300s", k, err.msg[0] ? err.msg : "invalid");
            osse_expr_free(x);
            json_decref(body);
            json_decref(root);
            fail_step(e, r, i, 0, msg, k);
            return;
        }
        osse_expr_free(x);
        json_object_set_new(body, k, val);
    }
    json_decref(root);
    call_t *c = osse_calloc(1, sizeof *c);
    c->l = l;
    c->r = r;
    osse__pins(e, r, 1);
    c->step = i;
    c->max_attempts = 1 + (uint32_t)s->retries;
    c->timeout_ms = timeout_of(s);
    c->url = osse_strdup(a->lookup_url);
    c->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!c->body)
        osse__panic(__FILE__, __LINE__, "out of memory");
    c->body_len = strlen(c->body);
    uv_timer_init(e->loop, &c->backoff);
    c->backoff.data = c;
    c->next = l->calls;
    if (l->calls)
        l->calls->prev = c;
    l->calls = c;
    attempt(c);
}

/* A linkage step opened (advance(), request.c): its lookup begins. */
static void applied(osse_engine_t *e, const osse_event_t *ev)
{
    const char *rid = osse__stream_id(ev->stream, OSSE_SK_REQUEST);
    if (!rid || ev->type != OSSE_EV_StepOpened)
        return;
    osse_request_t *r = osse__request(e, rid);
    const char *name = osse_event_step(ev);
    int i = r && name ? osse_wf_step_index(r->wf, name) : -1;
    if (i >= 0 && r->wf->steps[i].kind == OSSE_STEP_KIND_LINKAGE)
        begin(e, r, (size_t)i);
}

/* Space came back: lookup answers that arrived while it was low are asked
 * again. */
static void resumed(osse_engine_t *e)
{
    struct osse_linkage_s *l = e->linkage;
    if (!l || l->stopped)
        return;
    /* attempt() may end and free its call: take the next one first. A call
     * begun meanwhile goes to the head of the list, behind this walk. */
    for (call_t *c = l->calls, *next; c; c = next) {
        next = c->next;
        if (!c->parked)
            continue;
        c->parked = false;
        if (still_wanted(c))
            attempt(c);
        else
            call_free(c);
    }
}

static const osse_reactor_t reactor = {.applied = applied, .resumed = resumed};

int osse__linkage_start(osse_engine_t *e)
{
    struct osse_linkage_s *l = osse_calloc(1, sizeof *l);
    l->e = e;
    osse_fetch_opts_t fo = {.max_total = 1024, .max_per_host = 64};
    int rc = osse_fetch_open(e->loop, &fo, &l->fetch, NULL);
    if (rc) {
        free(l);
        return rc;
    }
    e->linkage = l;
    osse__react(e, &reactor);
    /* Steps left open by the log: their call is made again (a crash or a
     * stop lost it), from the first attempt. */
    for (osse_request_t *r = e->open.first, *next; r; r = next) {
        next = r->open_next; /* begin makes no event, but the list is not begin's */
        for (size_t i = 0; r->wf && i < r->wf->nsteps && !osse__rstatus_final(r->status); i++)
            if (r->wf->steps[i].kind == OSSE_STEP_KIND_LINKAGE && r->steps[i].state == OSSE_SS_OPEN)
                begin(e, r, i);
    }
    return 0;
}

void osse__linkage_stop(osse_engine_t *e)
{
    struct osse_linkage_s *l = e->linkage;
    if (!l || l->stopped)
        return;
    l->stopped = true;
    osse_fetch_close(l->fetch); /* every call in flight ends now, unreported */
    l->fetch = NULL;
    while (l->calls)
        call_free(l->calls);
}

void osse__linkage_free(osse_engine_t *e)
{
    free(e->linkage);
    e->linkage = NULL;
}
