/* notify.c: outbound webhooks to agencies and portal subscriptions (SPEC §7).
 *
 * Every event emitted live passes through applied(), a reactor (commit.c)
 * from osse__notify_open on. An event that concerns an agency's task (StepOpened of
 * a task, TaskEscalated, InfoProvided, SlaWarned, SlaBreached) and an agency
 * with a webhook_url, or a request event some subscription lists, makes a
 * delivery: a side record dlv/<id> with everything needed to send it again
 * (URL, secret, body, attempts, next_at), written in the SAME batch as the
 * event. Only once that batch is durable is the delivery handed to the hooks
 * module (net/hooks.c), which signs, sends and retries it. Its outcome is
 * an event in the stream delivery/<request id> (NotificationDelivered or
 * NotificationFailed) written in one batch with the deletion of the side
 * record; each retry rewrites the record's attempts and next_at. While the
 * disk is below its free-space reserve, retries are not rewritten and
 * outcomes wait in memory until space returns (resumed).
 *
 * Invariant: a dlv/ side record exists exactly while a delivery is
 * pending, so at start every one of them is handed back to the hooks module
 * and deliveries carry on across restarts (at least once: a receiver
 * deduplicates on Osse-Delivery). Nothing here runs while the log is
 * replayed (osse__emit is never called then), so a replay never sends.
 *
 * Subscriptions are event-sourced (SubscriptionUpdated and
 * SubscriptionDeleted in the stream subscription/<id>); their secrets, like
 * agencies', are side records and never enter the log. Deleting one ends
 * every delivery still pending for it as NotificationFailed in the batch of
 * the deletion (records deleted with it), so the invariant above holds and
 * every delivery has an outcome in the log. */
#include "engine/internal.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "net/addr.h"
#include "net/hooks.h"

#define MAX_SUB_EVENTS 64

/* A delivery whose side record is in a batch not yet durable. */
typedef struct wait_s {
    struct wait_s *prev, *next;
    osse_notify_t *n;
    json_t *rec;
    bool dropped; /* its subscription was deleted: never handed over */
} wait_t;

/* An outcome that came while the disk was low, to be written when space
 * returns. Its record stays until then: if the process stops first, the
 * delivery is made again at the next start (at least once). */
typedef struct later_s {
    struct later_s *next;
    char *id, *stream;
    osse_event_type_t type;
    json_t *data;
} later_t;

struct osse_notify_s {
    osse_engine_t *e;
    osse_hooks_t *hooks;
    wait_t *waiting; /* doubly linked; freed at osse__notify_free */
    size_t nwaiting;
    later_t *later, **later_tail; /* FIFO */
    bool closed;
};

/* --- side records and hand-over --- */

static void put_record(osse_engine_t *e, const json_t *rec)
{
    char key[160];
    int kl = snprintf(key, sizeof key, OSSE_KEY_DLV "%s", osse__jstr(rec, "id"));
    char *txt = json_dumps(rec, JSON_COMPACT);
    osse__batch_need(e);
    if (!txt || osse_batch_put(e->batch, key, (size_t)kl, txt, strlen(txt)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    free(txt);
}

static void delete_record(osse_engine_t *e, const char *id)
{
    char key[160];
    int kl = snprintf(key, sizeof key, OSSE_KEY_DLV "%s", id);
    osse__batch_need(e);
    if (osse_batch_delete(e->batch, key, (size_t)kl))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

/* The delivery a record describes (pointers borrowed from rec); -1 when the
 * record cannot be read. */
static int rec_delivery(const json_t *rec, osse_hooks_delivery_t *d)
{
    const char *id, *receiver, *url, *secret, *body;
    json_int_t attempts, next_at;
    if (json_unpack((json_t *)rec, "{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "id", &id, "receiver",
                    &receiver, "url", &url, "secret", &secret, "body", &body, "attempts", &attempts,
                    "next_at", &next_at))
        return -1;
    *d = (osse_hooks_delivery_t){
        .id = id,
        .receiver = receiver,
        .url = url,
        .secret = (const unsigned char *)secret,
        .secret_len = strlen(secret),
        .body = body,
        .body_len = strlen(body),
        .attempts = (uint32_t)attempts,
        .next_at = next_at,
    };
    return 0;
}

/* A delivery pins its request in memory from its making to its outcome
 * (cache.c): the outcome is an event of the request's delivery stream. */
static void unpin(osse_engine_t *e, const json_t *rec)
{
    const char *rid = osse__jstr(rec, "request");
    if (rid)
        osse__pin(e, rid, -1);
}

/* Hands a record to the hooks module. A record that cannot be read is left
 * alone (it stays on disk for an operator to see) and reported. */
static void enqueue_rec(osse_notify_t *n, const json_t *rec)
{
    osse_hooks_delivery_t d;
    if (rec_delivery(rec, &d)) {
        osse_logf(OSSE_LEVEL_WARN, "delivery record unreadable", "action=skipped");
        unpin(n->e, rec);
        return;
    }
    /* A subscription's URL is checked again on every connection: the name
     * that resolved to a public address at PUT may not any more (SPEC §7). */
    d.public_only = !n->e->allow_private_urls &&
                    strncmp(d.receiver, OSSE_RECEIVER_SUB, OSSE_KEY_LEN(OSSE_RECEIVER_SUB)) == 0;
    osse_err_t err = {0};
    int rc = osse_hooks_enqueue(n->hooks, &d, &err);
    if (rc && rc != OSSE_EEXISTS && rc != OSSE_ECLOSED)
        osse_logf(OSSE_LEVEL_WARN, "delivery not queued", "delivery=%s error=%s", d.id, err.msg);
    if (rc)
        unpin(n->e, rec);
}

static void wait_unlink(wait_t *w)
{
    osse_notify_t *n = w->n;
    if (w->prev)
        w->prev->next = w->next;
    else
        n->waiting = w->next;
    if (w->next)
        w->next->prev = w->prev;
    n->nwaiting--;
    json_decref(w->rec);
    free(w);
}

static void on_durable(void *ud, int status)
{
    wait_t *w = ud;
    /* status: the delivery's record is not durable; it is never sent. */
    if (!status && !w->n->closed && !w->dropped)
        enqueue_rec(w->n, w->rec);
    else if (!w->dropped) /* a dropped one had its outcome */
        unpin(w->n->e, w->rec);
    wait_unlink(w);
}

/* Creates one delivery of body (stolen; its "id" is set here) for the event
 * just emitted: side record in the current batch, hand-over once durable. */
static void create(osse_engine_t *e, const char *receiver, const char *url, const char *secret,
                   const char *request_id, const char *type, const osse_event_t *ev, json_t *rest)
{
    osse_notify_t *n = e->notify;
    char id[48];
    osse__random_id(id, 16, "d-");
    /* Key order as in SPEC §7: id, type, at, then the rest. */
    json_t *body =
        json_pack("{s:s,s:s,s:o}", "id", id, "type", type, "at", osse__time_json(ev->at));
    json_object_update(body, rest);
    json_decref(rest);
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I}", "id", id, "receiver", receiver,
                            "url", url, "secret", secret, "body", txt ? txt : "", "request",
                            request_id, "type", type, "attempts", 0, "next_at", (json_int_t)0);
    free(txt);
    if (!rec)
        osse__panic(__FILE__, __LINE__, "out of memory");
    put_record(e, rec);
    osse__pin(e, request_id, 1);
    wait_t *w = osse_calloc(1, sizeof *w);
    w->n = n;
    w->rec = rec;
    w->next = n->waiting;
    if (n->waiting)
        n->waiting->prev = w;
    n->waiting = w;
    n->nwaiting++;
    osse_engine_hold(e, on_durable, w);
}

/* What a delivery says about its request: the same keys for every receiver,
 * no form data. */
static json_t *request_summary(const osse_request_t *r)
{
    return json_pack("{s:s,s:s,s:i,s:s,s:i,s:o}", "id", r->id, "workflow", r->wfe->id,
                     "workflow_version", r->wf_version, "status", osse__rstatus_name(r->status),
                     "version", (int)r->version, "submitted_at", osse__time_json(r->submitted_at));
}

/* The task as the agency's inbox shows it, and whose it is now. */
static json_t *task_summary(const osse_request_t *r, size_t i)
{
    json_t *t = osse__task_entry(r, i);
    json_object_set_new(t, "agency",
                        r->steps[i].agency ? json_string(r->steps[i].agency) : json_null());
    return t;
}

static bool sub_wants(const osse_sub_t *s, osse_event_type_t type)
{
    for (size_t i = 0; i < s->nevents; i++)
        if (s->events[i] == type)
            return true;
    return false;
}

static void applied(osse_engine_t *e, const osse_event_t *ev)
{
    osse_notify_t *n = e->notify;
    const char *rid = n && !n->closed ? osse__stream_id(ev->stream, OSSE_SK_REQUEST) : NULL;
    if (!rid)
        return;
    osse_request_t *r = osse__request(e, rid);
    if (!r)
        return;
    char receiver[200];
    if (osse_event_type_has(ev->type, OSSE_EVF_AGENCY)) {
        const char *step = osse_event_step(ev);
        int i = step ? osse_wf_step_index(r->wf, step) : -1;
        const osse_agency_t *a = NULL;
        if (i >= 0 && r->wf->steps[i].kind == OSSE_STEP_KIND_TASK && r->steps[i].agency)
            a = osse_map_get(&e->agencies, r->steps[i].agency);
        if (a && a->webhook_url && a->secret[0]) {
            snprintf(receiver, sizeof receiver, OSSE_RECEIVER_AGENCY "%s", a->id);
            create(e, receiver, a->webhook_url, a->secret, r->id, osse_event_type_name(ev->type),
                   ev,
                   json_pack("{s:o,s:o}", "task", task_summary(r, (size_t)i), "request",
                             request_summary(r)));
        }
    }
    if (e->subs.len == 0)
        return;
    const char *k;
    void *v;
    for (size_t it = 0; osse_map_next(&e->subs, &it, &k, &v);) {
        osse_sub_t *s = v;
        if (!s->secret[0] || !sub_wants(s, ev->type))
            continue;
        const osse_principal_t *owner = osse_map_get(&e->principals, s->owner);
        if (!owner || owner->revoked)
            continue;
        /* A portal hears of the requests it submitted; the platform of all. */
        if (owner->role != OSSE_ROLE_PLATFORM && !(r->portal && strcmp(r->portal, owner->id) == 0))
            continue;
        /* Never a personal value, not even sealed (SPEC §8): each one
         * reads "[withheld]", so the body keeps the event's shape. */
        json_t *data = osse_event_data(ev);
        json_t *evj = json_pack("{s:I,s:s,s:o,s:o}", "seq", (json_int_t)ev->seq, "type",
                                osse_event_type_name(ev->type), "at", osse__time_json(ev->at),
                                "data", osse__pii_withhold(data));
        json_decref(data);
        snprintf(receiver, sizeof receiver, OSSE_RECEIVER_SUB "%s", s->id);
        create(e, receiver, s->url, s->secret, r->id, osse_event_type_name(ev->type), ev,
               json_pack("{s:o,s:o}", "request", request_summary(r), "event", evj));
    }
}

/* --- outcomes --- */

/* The request and type a delivery's body names. */
static int body_ids(const osse_hooks_delivery_t *d, char *rid, size_t rn, char *type, size_t tn)
{
    json_t *b = json_loadb(d->body, d->body_len, 0, NULL);
    const char *t = osse__jstr(b, "type"), *r = osse__jstr(json_object_get(b, "request"), "id");
    int rc = t && r ? 0 : -1;
    if (!rc) {
        snprintf(rid, rn, "%s", r);
        snprintf(type, tn, "%s", t);
    }
    json_decref(b);
    return rc;
}

static void outcome(osse_notify_t *n, const osse_hooks_delivery_t *d, osse_event_type_t ev_type,
                    json_t *data)
{
    osse_engine_t *e = n->e;
    char rid[128], type[64], stream[160];
    if (body_ids(d, rid, sizeof rid, type, sizeof type)) {
        json_decref(data);
        delete_record(e, d->id);
        return;
    }
    json_object_set_new(data, "type", json_string(type));
    osse__stream(stream, sizeof stream, OSSE_SK_DELIVERY, rid);
    if (osse__storage_low(e)) {
        later_t *l = osse_calloc(1, sizeof *l);
        l->id = osse_strdup(d->id);
        l->stream = osse_strdup(stream);
        l->type = ev_type;
        l->data = data;
        *n->later_tail = l;
        n->later_tail = &l->next;
        return;
    }
    osse__emit(e, stream, ev_type, NULL, data);
    delete_record(e, d->id);
    osse__pin(e, rid, -1);
}

static void later_free(later_t *l)
{
    json_decref(l->data);
    free(l->id);
    free(l->stream);
    free(l);
}

static void resumed(osse_engine_t *e)
{
    osse_notify_t *n = e->notify;
    if (!n || n->closed)
        return;
    while (n->later && !osse__storage_low(e)) {
        later_t *l = n->later;
        if (!(n->later = l->next))
            n->later_tail = &n->later;
        osse__emit(e, l->stream, l->type, NULL, json_incref(l->data));
        delete_record(e, l->id);
        osse__pin(e, osse__stream_id(l->stream, OSSE_SK_DELIVERY), -1);
        later_free(l);
    }
}

/* A failed attempt, for the server's log: the URL only as scheme://host:port
 * (its path or query may hold a secret), never the body. next_at 0: no retry
 * (the delivery is given up). */
static void log_attempt(const osse_hooks_delivery_t *d, uint32_t attempt, const char *error,
                        int64_t next_at)
{
    char rid[128] = "", type[64] = "", origin[300], next[OSSE_TIME_LEN];
    body_ids(d, rid, sizeof rid, type, sizeof type);
    osse_logf(next_at ? OSSE_LEVEL_WARN : OSSE_LEVEL_ERROR, "webhook attempt failed",
              "delivery=%s receiver=%s request=%s type=%s url=%s attempt=%u error=%s next_retry=%s",
              d->id, d->receiver, rid, type, osse_logf_url_origin(d->url, origin, sizeof origin),
              attempt, error ? error : "unknown", next_at ? osse_time_fmt(next_at, next) : "none");
}

static void on_delivered(void *ud, const osse_hooks_delivery_t *d, uint32_t attempts, int status)
{
    outcome(ud, d, OSSE_EV_NotificationDelivered,
            json_pack("{s:s,s:s,s:i,s:i}", "delivery", d->id, "receiver", d->receiver, "attempts",
                      (int)attempts, "status", status));
}

static void on_failed(void *ud, const osse_hooks_delivery_t *d, uint32_t attempts,
                      const char *last_error)
{
    log_attempt(d, attempts, last_error, 0);
    outcome(ud, d, OSSE_EV_NotificationFailed,
            json_pack("{s:s,s:s,s:i,s:s}", "delivery", d->id, "receiver", d->receiver, "attempts",
                      (int)attempts, "error", last_error ? last_error : "unknown"));
}

/* A delivery whose subscription was deleted ends as given up. */
static void on_dropped(void *ud, const osse_hooks_delivery_t *d)
{
    on_failed(ud, d, d->attempts, "the subscription was deleted");
}

/* Every delivery still pending for receiver ends now, in the current batch:
 * those handed to the hooks module and those whose record is not durable
 * yet. */
static void drop_receiver(osse_engine_t *e, const char *receiver)
{
    osse_notify_t *n = e->notify;
    if (!n || n->closed)
        return;
    for (wait_t *w = n->waiting; w; w = w->next) {
        osse_hooks_delivery_t d;
        if (w->dropped || rec_delivery(w->rec, &d) || strcmp(d.receiver, receiver) != 0)
            continue;
        w->dropped = true;
        on_dropped(n, &d);
    }
    if (osse_hooks_cancel_receiver(n->hooks, receiver, on_dropped, n))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

static void on_progress(void *ud, const osse_hooks_delivery_t *d, const char *error)
{
    osse_notify_t *n = ud;
    log_attempt(d, d->attempts, error, d->next_at);
    /* On a nearly full disk the new count is not written: a restart then
     * retries from the count on disk, which only makes more attempts. */
    if (osse__storage_low(n->e))
        return;
    char rid[128], type[64];
    if (body_ids(d, rid, sizeof rid, type, sizeof type))
        return;
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s%,s:s%,s:s,s:s,s:i,s:I}", "id", d->id, "receiver",
                            d->receiver, "url", d->url, "secret", (const char *)d->secret,
                            d->secret_len, "body", d->body, d->body_len, "request", rid, "type",
                            type, "attempts", (int)d->attempts, "next_at", (json_int_t)d->next_at);
    if (!rec)
        osse__panic(__FILE__, __LINE__, "out of memory");
    put_record(n->e, rec);
    json_decref(rec);
}

/* An agency's deliveries are signed with its secret of now, and for 24
 * hours after a rotation with the one before too (SPEC §3); a
 * subscription's never changes. */
static size_t sign_keys(void *ud, const osse_hooks_delivery_t *d, osse_hooks_key_t *out)
{
    osse_notify_t *n = ud;
    size_t pl = OSSE_KEY_LEN(OSSE_RECEIVER_AGENCY);
    if (strncmp(d->receiver, OSSE_RECEIVER_AGENCY, pl) != 0)
        return 0;
    const osse_agency_t *a = osse_map_get(&n->e->agencies, d->receiver + pl);
    if (!a || !a->secret[0])
        return 0;
    size_t k = 0;
    out[k++] = (osse_hooks_key_t){(const unsigned char *)a->secret, strlen(a->secret)};
    if (a->old_secret[0] && osse_engine_now(n->e) < a->old_until)
        out[k++] = (osse_hooks_key_t){(const unsigned char *)a->old_secret, strlen(a->old_secret)};
    return k;
}

/* --- life cycle --- */

static int load_dlv(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)key;
    (void)klen;
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    const char *rid = osse__jstr(rec, "request");
    if (rid)
        osse__pin(((osse_notify_t *)ud)->e, rid, 1);
    if (rec)
        enqueue_rec(ud, rec);
    json_decref(rec);
    return 0;
}

static int load_sub_secret(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    osse_engine_t *e = ud;
    char id[128];
    osse_sub_t *s;
    if (osse__record_id(key, klen, OSSE_KEY_LEN(OSSE_KEY_SUB_SECRET), id, sizeof id) &&
        (s = osse_map_get(&e->subs, id)))
        osse__record_text(val, vlen, s->secret, sizeof s->secret);
    return 0;
}

static const osse_reactor_t reactor = {.applied = applied, .resumed = resumed};

int osse__notify_open(osse_engine_t *e, const osse_engine_opts_t *opts, osse_err_t *err)
{
    osse_notify_t *n = osse_calloc(1, sizeof *n);
    n->e = e;
    n->later_tail = &n->later;
    osse_hooks_opts_t ho = {0};
    ho.sched.base_ms = opts->hook_retry_base_ms;
    ho.sched.min_span_ms = opts->hook_retry_span_ms;
    osse_hooks_cbs_t cbs = {.ud = n,
                            .on_delivered = on_delivered,
                            .on_failed = on_failed,
                            .on_progress = on_progress,
                            .keys = sign_keys};
    int rc = osse_hooks_open(e->loop, &ho, &cbs, &n->hooks, err);
    if (rc) {
        free(n);
        return rc;
    }
    e->notify = n;
    osse__react(e, &reactor);
    osse_log_kv_scan(e->log, OSSE_KEY_SUB_SECRET, strlen(OSSE_KEY_SUB_SECRET), load_sub_secret, e,
                     NULL);
    /* Deliveries pending when the last process stopped carry on. */
    osse_log_kv_scan(e->log, OSSE_KEY_DLV, strlen(OSSE_KEY_DLV), load_dlv, n, NULL);
    return 0;
}

void osse__notify_stop(osse_engine_t *e)
{
    osse_notify_t *n = e->notify;
    if (!n || n->closed)
        return;
    n->closed = true;
    osse_hooks_close(n->hooks);
    n->hooks = NULL;
}

void osse__notify_free(osse_engine_t *e)
{
    osse_notify_t *n = e->notify;
    if (n) {
        osse__notify_stop(e);
        while (n->waiting)
            wait_unlink(n->waiting);
        while (n->later) {
            later_t *l = n->later;
            n->later = l->next;
            later_free(l);
        }
        free(n);
        e->notify = NULL;
    }
}

void osse__notify_metrics(osse_engine_t *e, osse_buf_t *out)
{
    osse_notify_t *n = e->notify;
    size_t pending = 0;
    unsigned inflight = 0;
    if (n && !n->closed) {
        pending = osse_hooks_pending(n->hooks) + n->nwaiting;
        inflight = osse_hooks_inflight(n->hooks);
    }
    osse_buf_printf(out,
                    "# HELP osse_hook_deliveries_pending Webhook deliveries not yet delivered "
                    "or given up.\n# TYPE osse_hook_deliveries_pending gauge\n"
                    "osse_hook_deliveries_pending %zu\n"
                    "# HELP osse_hook_attempts_in_flight Webhook attempts waiting for an "
                    "answer.\n# TYPE osse_hook_attempts_in_flight gauge\n"
                    "osse_hook_attempts_in_flight %u\n",
                    pending, inflight);
}

/* --- subscriptions --- */

/* The answer to PUT holds the secret; every read holds the owner instead. */
static json_t *sub_json(osse_engine_t *e, const osse_sub_t *s, bool secret)
{
    char stream[160];
    osse__stream(stream, sizeof stream, OSSE_SK_SUBSCRIPTION, s->id);
    json_t *ev = json_array();
    for (size_t i = 0; i < s->nevents; i++)
        json_array_append_new(ev, json_string(osse_event_type_name(s->events[i])));
    return json_pack("{s:s,s:s,s:o,s:s,s:i}", "id", s->id, "url", s->url, "events", ev,
                     secret ? "secret" : "owner", secret ? s->secret : s->owner, "version",
                     (int)(uintptr_t)osse_map_get(&e->versions, stream));
}

/* What is wrong with a subscription's URL as written (SPEC §7), or NULL;
 * its addresses are osse_sub_url_resolve's. */
static const char *url_rule(const osse_engine_t *e, const char *url)
{
    osse_url_parts_t u;
    if (!url || strlen(url) > 2000 || osse_url_split(url, &u))
        return e->allow_private_urls ? "must be an http or https URL of at most 2000 bytes"
                                     : "must be an https URL of at most 2000 bytes";
    if (!u.https && !e->allow_private_urls)
        return "must be https: (http: only on a server run with --allow-private-urls)";
    if (u.userinfo)
        return "must not hold user information (user:password@)";
    return NULL;
}

typedef struct {
    osse_sub_url_cb cb;
    void *ud;
} url_wait_t;

static void url_resolved(void *ud, int rc, const char *msg)
{
    url_wait_t *w = ud;
    osse_fail_t f = {0};
    /* A name that does not resolve (yet) is taken: it reaches nothing now,
     * and every connection made to it later is checked again. */
    if (rc == OSSE_ENOTFOUND)
        rc = 0;
    if (rc == OSSE_ECLOSED) {
        osse__fail(&f, OSSE_ECLOSED, "unavailable", "the server is stopping");
    } else if (rc) {
        osse__detail(&f, "url",
                     "must not resolve to a loopback, private or link-local address "
                     "(unless the server runs with --allow-private-urls): %s",
                     msg);
        rc = osse__fail(&f, OSSE_EINVAL, "invalid_request", "the subscription's URL is refused: %s",
                        msg);
    }
    w->cb(w->ud, rc, &f);
    osse_fail_clear(&f);
    free(w);
}

int osse_sub_url_resolve(osse_engine_t *e, const char *url, osse_sub_url_cb cb, void *ud)
{
    osse_url_parts_t u;
    if (e->allow_private_urls || !url || url_rule(e, url) || osse_url_split(url, &u))
        return 1;
    url_wait_t *w = osse_calloc(1, sizeof *w);
    w->cb = cb;
    w->ud = ud;
    if (osse_addr_resolve(e->loop, u.host, u.port, url_resolved, w)) {
        free(w);
        return 1;
    }
    return 0;
}

/* Whether p may read and end s: its owner and the platform. */
static bool sub_mine(const osse_principal_t *p, const osse_sub_t *s)
{
    return p->role == OSSE_ROLE_PLATFORM || strcmp(s->owner, p->id) == 0;
}

static int find_sub(osse_engine_t *e, const osse_principal_t *p, const char *id, osse_sub_t **out,
                    osse_fail_t *f)
{
    osse_sub_t *s = osse_map_get(&e->subs, id);
    if (!s)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no subscription %s", id);
    /* The id is visibly taken (a PUT says so too), nothing more. */
    if (!sub_mine(p, s))
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "subscription %s belongs to another principal", id);
    *out = s;
    return 0;
}

int osse_q_subscription(osse_engine_t *e, const osse_principal_t *p, const char *id, json_t **out,
                        osse_fail_t *f)
{
    osse_sub_t *s = NULL;
    int rc = find_sub(e, p, id, &s, f);
    if (rc)
        return rc;
    *out = sub_json(e, s, false);
    return 0;
}

/* The platform and the auditor see every subscription, a portal its own. */
static json_t *sub_entry(osse_engine_t *e, const osse_principal_t *p, void *v)
{
    const osse_sub_t *s = v;
    if (p->role != OSSE_ROLE_AUDITOR && !sub_mine(p, s))
        return NULL;
    return sub_json(e, s, false);
}

int osse_q_subscriptions(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                         json_t **out, osse_fail_t *f)
{
    return osse__id_page(e, p, &e->subs, params, "subscriptions", sub_entry, out, f);
}

int osse_cmd_delete_subscription(osse_engine_t *e, const osse_principal_t *p, const char *id,
                                 json_t **out, osse_fail_t *f)
{
    osse_sub_t *s = NULL;
    int rc = find_sub(e, p, id, &s, f);
    if (rc)
        return rc;
    char stream[160], receiver[200], key[160];
    osse__stream(stream, sizeof stream, OSSE_SK_SUBSCRIPTION, id);
    snprintf(receiver, sizeof receiver, OSSE_RECEIVER_SUB "%s", id);
    osse__emit(e, stream, OSSE_EV_SubscriptionDeleted, p, json_pack("{s:s}", "id", id));
    /* Its secret goes with it: a new subscription of this id gets a new one. */
    int kl = snprintf(key, sizeof key, OSSE_KEY_SUB_SECRET "%s", id);
    osse__batch_need(e);
    if (osse_batch_delete(e->batch, key, (size_t)kl))
        osse__panic(__FILE__, __LINE__, "out of memory");
    drop_receiver(e, receiver);
    *out = json_pack("{s:s,s:b}", "id", id, "deleted", 1);
    return 0;
}

int osse_cmd_put_subscription(osse_engine_t *e, const osse_principal_t *p, const char *id,
                              json_t *body, json_t **out, int *status, osse_fail_t *f)
{
    if (!osse__id_ok(id))
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "bad subscription id");
    osse_sub_t *s = osse_map_get(&e->subs, id);
    /* Only its owner (or the platform) may change a subscription: another
     * portal learns that the id is taken, nothing more. */
    if (s && !sub_mine(p, s))
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "subscription %s belongs to another principal", id);
    if (!json_is_object(body))
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the body must be a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "url") != 0 && strcmp(k, "events") != 0)
            osse__detail(f, k, "unknown field");
    }
    const char *url = osse__jstr(body, "url"), *why = url_rule(e, url);
    if (!why && strlen(url) != json_string_length(json_object_get(body, "url")))
        why = "must not hold a NUL byte";
    if (why)
        osse__detail(f, "url", "%s", why);
    json_t *events = json_object_get(body, "events");
    size_t i;
    if (!json_is_array(events) || json_array_size(events) == 0 ||
        json_array_size(events) > MAX_SUB_EVENTS) {
        osse__detail(f, "events", "must be a list of 1 to %d event types", MAX_SUB_EVENTS);
    } else {
        json_array_foreach(events, i, v)
        {
            char path[32];
            snprintf(path, sizeof path, "events[%zu]", i);
            osse_event_type_t t;
            if (!json_is_string(v) ||
                osse_event_type_parse(json_string_value(v), json_string_length(v), &t) ||
                !osse_event_type_has(t, OSSE_EVF_SUBSCRIBABLE))
                osse__detail(f, path, "not a request event type");
            for (size_t j = 0; j < i; j++)
                if (json_equal(v, json_array_get(events, j)))
                    osse__detail(f, path, "listed twice");
        }
    }
    if (f->details)
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the subscription is invalid");
    *status = s ? 200 : 201;
    bool same = s && strcmp(s->url, url) == 0 && s->nevents == json_array_size(events);
    for (i = 0; same && i < s->nevents; i++)
        same = strcmp(osse_event_type_name(s->events[i]),
                      json_string_value(json_array_get(events, i))) == 0;
    if (!same) {
        char stream[160];
        osse__stream(stream, sizeof stream, OSSE_SK_SUBSCRIPTION, id);
        osse__emit(e, stream, OSSE_EV_SubscriptionUpdated, p,
                   json_pack("{s:s,s:s,s:O,s:s}", "id", id, "url", url, "events", events, "owner",
                             s ? s->owner : p->id));
        s = osse_map_get(&e->subs, id);
    }
    if (!s->secret[0]) {
        /* Created once, kept on update, never in the log. */
        unsigned char raw[32];
        osse__random_bytes(raw, sizeof raw);
        sodium_bin2base64(s->secret, sizeof s->secret, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof raw);
        char key[160];
        int kl = snprintf(key, sizeof key, OSSE_KEY_SUB_SECRET "%s", id);
        osse__batch_need(e);
        if (osse_batch_put(e->batch, key, (size_t)kl, s->secret, strlen(s->secret)))
            osse__panic(__FILE__, __LINE__, "out of memory");
    }
    *out = sub_json(e, s, true);
    return 0;
}
