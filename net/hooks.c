/* hooks.c: webhook deliveries: signing, per-receiver limits, retries.
 *
 * A delivery (dl_t) is in exactly one place: the retry heap (waiting for its
 * next_at), its receiver's ready FIFO (due, but the receiver has
 * per_receiver attempts in flight), or in flight in the fetcher. One
 * uv_timer is armed for the heap's top. When an attempt ends, the receiver's
 * freed slot goes to the head of its own FIFO, so receivers never wait on one
 * another. A cancelled delivery leaves the id map at once and is freed
 * lazily when it next surfaces (heap top, FIFO head or its attempt's end).
 *
 * Why: one timer and a heap scale to many pending retries without a handle
 * each; a FIFO per receiver keeps order per agency and isolates dead ones. */
#include "net/hooks.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/alloc.h"
#include "common/map.h"
#include "common/time.h"

typedef struct recv_s recv_t;
typedef struct dl_s dl_t;

struct dl_s {
    osse_hooks_delivery_t d; /* its pointers point at the copies below */
    char *id, *receiver, *url, *body;
    unsigned char *secret; /* sodium_malloc */
    osse_hooks_t *h;
    recv_t *r;
    uint64_t seq; /* FIFO among equal next_at */
    dl_t *rnext;  /* in r's ready FIFO */
    bool cancelled;
};

struct recv_s {
    char *key;
    unsigned inflight;
    dl_t *head, *tail; /* due, waiting for a slot */
    size_t held;       /* deliveries referring to this receiver */
};

struct osse_hooks_s {
    uv_loop_t *loop;
    osse_fetch_t *fetch;
    uv_timer_t timer;
    osse_hooks_opts_t o;
    osse_hooks_cbs_t cbs;
    uint32_t max_attempts;
    osse_map_t recvs; /* key -> recv_t */
    osse_map_t ids;   /* delivery id -> dl_t, not cancelled */
    dl_t **heap;
    size_t nheap, capheap;
    uint64_t seq;
    unsigned inflight;
    bool closing;
};

/* ---- pure pieces -------------------------------------------------------------- */

osse_hooks_sched_t osse_hooks_sched_defaults(const osse_hooks_sched_t *s)
{
    osse_hooks_sched_t r = {0};
    if (s)
        r = *s;
    if (r.base_ms <= 0)
        r.base_ms = 1000;
    if (r.cap_ms <= 0)
        r.cap_ms = 3600 * 1000;
    if (r.min_span_ms <= 0)
        r.min_span_ms = 24 * 3600 * 1000;
    return r;
}

int64_t osse_hooks_retry_delay(const osse_hooks_sched_t *s, uint32_t attempts, uint32_t rnd)
{
    OSSE_PRE(attempts >= 1 && s->base_ms > 0 && s->cap_ms > 0);
    double d = (double)s->base_ms;
    for (uint32_t i = 1; i < attempts && d < (double)s->cap_ms * 2; i++)
        d *= 2;
    /* Jitter in [0.8, 1.2): retries of deliveries that failed together (a
     * receiver back from an outage) spread out instead of arriving at once. */
    d *= 0.8 + 0.4 * ((double)rnd / 4294967296.0);
    if (d > (double)s->cap_ms)
        d = (double)s->cap_ms;
    int64_t ms = (int64_t)d;
    return ms < 1 ? 1 : ms;
}

uint32_t osse_hooks_max_attempts(const osse_hooks_sched_t *s)
{
    int64_t span = 0;
    uint32_t n = 1;
    /* The smallest possible spread is with rnd == 0 at every step. */
    while (span < s->min_span_ms && n < 1000000) {
        span += osse_hooks_retry_delay(s, n, 0);
        n++;
    }
    return n;
}

void osse_hooks_sign(const unsigned char *secret, size_t secret_len, int64_t t, const char *body,
                     size_t body_len, char out[OSSE_HOOKS_SIG_LEN])
{
    char ts[32];
    int tn = snprintf(ts, sizeof ts, "%lld", (long long)t);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)tn);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, OSSE_HOOKS_SIG_LEN, "t=%s,v1=%s", ts, hex);
}

/* ---- heap of next_at ---------------------------------------------------------- */

static bool before(const dl_t *a, const dl_t *b)
{
    return a->d.next_at < b->d.next_at || (a->d.next_at == b->d.next_at && a->seq < b->seq);
}

static void heap_push(osse_hooks_t *h, dl_t *x)
{
    OSSE_VEC_RESERVE(h->heap, h->capheap, h->nheap + 1);
    size_t i = h->nheap++;
    h->heap[i] = x;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(h->heap[i], h->heap[p]))
            break;
        dl_t *t = h->heap[i];
        h->heap[i] = h->heap[p];
        h->heap[p] = t;
        i = p;
    }
}

static dl_t *heap_pop(osse_hooks_t *h)
{
    dl_t *top = h->heap[0];
    h->heap[0] = h->heap[--h->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->nheap && before(h->heap[l], h->heap[m]))
            m = l;
        if (r < h->nheap && before(h->heap[r], h->heap[m]))
            m = r;
        if (m == i)
            break;
        dl_t *t = h->heap[i];
        h->heap[i] = h->heap[m];
        h->heap[m] = t;
        i = m;
    }
    return top;
}

/* ---- deliveries ---------------------------------------------------------------- */

/* Drops one reference to r (a delivery, or an attempt's end still using it). */
static void recv_unref(osse_hooks_t *h, recv_t *r)
{
    if (--r->held == 0) {
        osse_map_del(&h->recvs, r->key);
        free(r->key);
        free(r);
    }
}

static void dl_free(osse_hooks_t *h, dl_t *x)
{
    recv_t *r = x->r;
    if (!x->cancelled)
        osse_map_del(&h->ids, x->id);
    if (x->secret)
        sodium_free(x->secret);
    free(x->id);
    free(x->receiver);
    free(x->url);
    free(x->body);
    free(x);
    if (r)
        recv_unref(h, r);
}

/* Takes a finished delivery out of the id map before its outcome is
 * reported, so that the callback may enqueue a delivery with the same id. */
static void unlist(osse_hooks_t *h, dl_t *x)
{
    osse_map_del(&h->ids, x->id);
    x->cancelled = true;
}

static void on_timer(uv_timer_t *t);

static void arm(osse_hooks_t *h)
{
    if (h->closing)
        return;
    if (h->nheap == 0) {
        uv_timer_stop(&h->timer);
        return;
    }
    int64_t wait = h->heap[0]->d.next_at - osse_time_real_ms();
    uv_timer_start(&h->timer, on_timer, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void on_done(void *ud, const osse_fetch_result_t *res);

/* Makes one attempt at x, whose receiver has a free slot. */
static void attempt(osse_hooks_t *h, dl_t *x)
{
    char sig[OSSE_HOOKS_SIG_LEN];
    char sig_h[OSSE_HOOKS_SIG_LEN * OSSE_HOOKS_MAX_KEYS + 32], id_h[512];
    osse_hooks_key_t keys[OSSE_HOOKS_MAX_KEYS];
    size_t nkeys = h->cbs.keys ? h->cbs.keys(h->cbs.ud, &x->d, keys) : 0;
    if (nkeys == 0 || nkeys > OSSE_HOOKS_MAX_KEYS) {
        keys[0] = (osse_hooks_key_t){x->secret, x->d.secret_len};
        nkeys = 1;
    }
    /* One t, one v1= per key ("t=..,v1=<new>,v1=<old>"): a receiver that
     * holds either secret finds its own. */
    int64_t t = osse_time_real_ms() / 1000;
    size_t sl = (size_t)snprintf(sig_h, sizeof sig_h, "Osse-Signature: ");
    for (size_t i = 0; i < nkeys; i++) {
        osse_hooks_sign(keys[i].ptr, keys[i].len, t, x->body, x->d.body_len, sig);
        const char *part = i == 0 ? sig : strchr(sig, ',');
        sl += (size_t)snprintf(sig_h + sl, sizeof sig_h - sl, "%s", part ? part : "");
    }
    sodium_memzero(keys, sizeof keys);
    snprintf(id_h, sizeof id_h, "Osse-Delivery: %s", x->id);
    const char *hdrs[] = {"Content-Type: application/json", id_h, sig_h, NULL};
    osse_err_t err = {0};
    x->d.attempts++;
    x->r->inflight++;
    h->inflight++;
    int rc = osse_fetch_post_flags(h->fetch, x->url, hdrs, x->body, x->d.body_len, h->o.timeout_ms,
                                   x->d.public_only ? OSSE_FETCH_PUBLIC_ONLY : 0, on_done, x, &err);
    if (rc != 0) {
        /* Not even startable (a bad URL): no retry can help. */
        osse_fetch_result_t res = {.code = rc, .error = err.msg[0] ? err.msg : osse_strerror(rc)};
        on_done(x, &res);
    }
}

/* x is due: attempt it now or queue it behind its receiver's attempts in flight. */
static void ready(osse_hooks_t *h, dl_t *x)
{
    recv_t *r = x->r;
    if (r->inflight < h->o.per_receiver && !r->head) {
        attempt(h, x);
        return;
    }
    x->rnext = NULL;
    if (r->tail)
        r->tail->rnext = x;
    else
        r->head = x;
    r->tail = x;
}

/* Gives r's free slots to its waiting deliveries, in order. */
static void drain(osse_hooks_t *h, recv_t *r)
{
    while (r->head && r->inflight < h->o.per_receiver) {
        dl_t *x = r->head;
        r->head = x->rnext;
        if (!r->head)
            r->tail = NULL;
        x->rnext = NULL;
        if (x->cancelled) {
            dl_free(h, x);
            continue;
        }
        attempt(h, x);
    }
}

static void on_done(void *ud, const osse_fetch_result_t *res)
{
    dl_t *x = ud;
    recv_t *r = x->r;
    osse_hooks_t *h = x->h;
    r->inflight--;
    h->inflight--;
    if (h->closing) {
        /* The caller's record stays pending for the next start. */
        dl_free(h, x);
        return;
    }
    r->held++; /* r stays alive for drain() below even if x was its last */
    if (x->cancelled) {
        dl_free(h, x);
    } else if (res->code == 0 && res->status_code >= 200 && res->status_code < 300) {
        unlist(h, x);
        h->cbs.on_delivered(h->cbs.ud, &x->d, x->d.attempts, res->status_code);
        dl_free(h, x);
    } else {
        char msg[600];
        if (res->code == 0)
            snprintf(msg, sizeof msg, "HTTP %d", res->status_code);
        else
            snprintf(msg, sizeof msg, "%s", res->error ? res->error : osse_strerror(res->code));
        if (res->code == OSSE_EINVAL || x->d.attempts >= h->max_attempts) {
            unlist(h, x);
            h->cbs.on_failed(h->cbs.ud, &x->d, x->d.attempts, msg);
            dl_free(h, x);
        } else {
            x->d.next_at = osse_time_real_ms() +
                           osse_hooks_retry_delay(&h->o.sched, x->d.attempts, randombytes_random());
            if (h->cbs.on_progress)
                h->cbs.on_progress(h->cbs.ud, &x->d, msg);
            if (x->cancelled)
                dl_free(h, x);
            else
                heap_push(h, x);
        }
    }
    drain(h, r);
    recv_unref(h, r);
    arm(h);
}

static void on_timer(uv_timer_t *t)
{
    osse_hooks_t *h = t->data;
    int64_t now = osse_time_real_ms();
    while (h->nheap && h->heap[0]->d.next_at <= now) {
        dl_t *x = heap_pop(h);
        if (x->cancelled)
            dl_free(h, x);
        else
            ready(h, x);
    }
    arm(h);
}

/* ---- public ------------------------------------------------------------------ */

static recv_t *recv_get(osse_hooks_t *h, const char *key)
{
    recv_t *r = osse_map_get(&h->recvs, key);
    if (r)
        return r;
    r = osse_calloc(1, sizeof *r);
    r->key = osse_strdup(key);
    osse_map_put(&h->recvs, key, r);
    return r;
}

int osse_hooks_open(uv_loop_t *loop, const osse_hooks_opts_t *opts, const osse_hooks_cbs_t *cbs,
                    osse_hooks_t **out, osse_err_t *err)
{
    OSSE_PRE(cbs && cbs->on_delivered && cbs->on_failed);
    *out = NULL;
    if (sodium_init() < 0)
        return osse_err_set(err, OSSE_EIO, "sodium_init failed");
    osse_hooks_t *h = osse_calloc(1, sizeof *h);
    if (opts)
        h->o = *opts;
    h->o.sched = osse_hooks_sched_defaults(&h->o.sched);
    if (!h->o.per_receiver)
        h->o.per_receiver = 4;
    if (!h->o.timeout_ms)
        h->o.timeout_ms = 10000;
    /* Receivers are agencies, not hosts: two agencies on one host must not
     * share four slots, so the fetcher's per-host cap is only a backstop. */
    if (!h->o.fetch.max_total)
        h->o.fetch.max_total = 1024;
    if (!h->o.fetch.max_per_host)
        h->o.fetch.max_per_host = 64;
    h->cbs = *cbs;
    h->loop = loop;
    h->max_attempts = osse_hooks_max_attempts(&h->o.sched);
    int rc = osse_fetch_open(loop, &h->o.fetch, &h->fetch, err);
    if (rc != 0) {
        free(h);
        return rc;
    }
    osse_map_init(&h->recvs);
    osse_map_init(&h->ids);
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    *out = h;
    return 0;
}

static void on_closed(uv_handle_t *t)
{
    free(t->data);
}

void osse_hooks_close(osse_hooks_t *h)
{
    if (!h)
        return;
    h->closing = true;
    /* Attempts in flight end now, in on_done, which frees them silently. */
    osse_fetch_close(h->fetch);
    h->fetch = NULL;
    for (size_t i = 0; i < h->nheap; i++)
        dl_free(h, h->heap[i]);
    free(h->heap);
    h->heap = NULL;
    h->nheap = 0;
    const char *k;
    void *v;
    /* Freeing a receiver's last delivery frees the receiver and edits the
     * map, so collect the FIFOs first. */
    dl_t *all = NULL;
    for (size_t i = 0; osse_map_next(&h->recvs, &i, &k, &v);) {
        recv_t *r = v;
        dl_t *x = r->head;
        r->head = r->tail = NULL;
        while (x) {
            dl_t *n = x->rnext;
            x->rnext = all;
            all = x;
            x = n;
        }
    }
    while (all) {
        dl_t *n = all->rnext;
        dl_free(h, all);
        all = n;
    }
    osse_map_close(&h->recvs);
    osse_map_close(&h->ids);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_closed);
}

int osse_hooks_enqueue(osse_hooks_t *h, const osse_hooks_delivery_t *d, osse_err_t *err)
{
    if (h->closing)
        return osse_err_set(err, OSSE_ECLOSED, "hooks: closing");
    if (!d->id || !d->receiver || !d->url || (!d->body && d->body_len) ||
        (!d->secret && d->secret_len))
        return osse_err_set(err, OSSE_EINVAL, "hooks: delivery lacks id, receiver or url");
    if (osse_map_get(&h->ids, d->id))
        return osse_err_set(err, OSSE_EEXISTS, "hooks: delivery %.100s already pending", d->id);
    int rc = 0;
    dl_t *x = osse_calloc(1, sizeof *x);
    x->h = h;
    x->cancelled = true; /* not in the id map yet: dl_free must not remove it */
    x->id = osse_strdup(d->id);
    x->receiver = osse_strdup(d->receiver);
    x->url = osse_strdup(d->url);
    x->body = osse_malloc(d->body_len + 1);
    x->secret = sodium_malloc(d->secret_len ? d->secret_len : 1);
    if (!x->secret) {
        rc = osse_err_set(err, OSSE_ENOMEM, "hooks: out of memory");
        goto out;
    }
    if (d->body_len)
        memcpy(x->body, d->body, d->body_len);
    x->body[d->body_len] = 0;
    if (d->secret_len)
        memcpy(x->secret, d->secret, d->secret_len);
    x->d = *d;
    x->d.id = x->id;
    x->d.receiver = x->receiver;
    x->d.url = x->url;
    x->d.body = x->body;
    x->d.secret = x->secret;
    x->seq = h->seq++;
    if (!(x->r = recv_get(h, d->receiver))) {
        rc = osse_err_set(err, OSSE_ENOMEM, "hooks: out of memory");
        goto out;
    }
    x->r->held++;
    if (osse_map_put(&h->ids, x->id, x) != 0) {
        rc = osse_err_set(err, OSSE_ENOMEM, "hooks: out of memory");
        goto out;
    }
    x->cancelled = false;
    heap_push(h, x);
    /* Even a due delivery goes through the timer, so that its callbacks
     * never run inside this call. */
    arm(h);
    x = NULL;
out:
    if (x)
        dl_free(h, x);
    return rc;
}

int osse_hooks_cancel(osse_hooks_t *h, const char *id)
{
    dl_t *x = osse_map_del(&h->ids, id);
    if (!x)
        return OSSE_ENOTFOUND;
    x->cancelled = true;
    return 0;
}

int osse_hooks_cancel_receiver(osse_hooks_t *h, const char *receiver,
                               void (*each)(void *ud, const osse_hooks_delivery_t *d), void *ud)
{
    recv_t *r = osse_map_get(&h->recvs, receiver);
    if (!r || h->closing)
        return 0;
    /* Collected first: cancelling edits the id map being walked. */
    dl_t **mine = osse_malloc(r->held * sizeof *mine);
    size_t n = 0;
    void *v;
    for (size_t it = 0; osse_map_next(&h->ids, &it, NULL, &v);)
        if (((dl_t *)v)->r == r && n < r->held)
            mine[n++] = v;
    for (size_t i = 0; i < n; i++) {
        each(ud, &mine[i]->d);
        osse_hooks_cancel(h, mine[i]->id);
    }
    free(mine);
    return 0;
}

size_t osse_hooks_pending(const osse_hooks_t *h)
{
    return h->ids.len;
}

unsigned osse_hooks_inflight(const osse_hooks_t *h)
{
    return h->inflight;
}
