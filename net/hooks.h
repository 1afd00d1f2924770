/* hooks.h: signed webhook deliveries with retries (SPEC §7).
 *
 * The hooks module knows nothing of requests or events: it is handed
 * deliveries (an id, a receiver key, a URL, a secret, a JSON body) and reports
 * what became of each through callbacks. Durability is the caller's: it
 * records a pending delivery in the same batch as the event that caused it,
 * records the new attempt count and next_at from on_progress, records the
 * outcome from on_delivered / on_failed, and after a restart hands every
 * still-pending delivery back with osse_hooks_enqueue. Delivery is therefore
 * at least once: a receiver deduplicates on the Osse-Delivery header.
 *
 * Fairness: at most `per_receiver` attempts per receiver are in flight (the
 * rest wait FIFO on that receiver only), every attempt has a timeout, and
 * retries wait in one min-heap of next_at under one uv_timer, so a slow or
 * dead receiver holds only its own slots. Scheduling uses the real clock,
 * also under osse's test clock (SPEC §10). */
#ifndef OSSE_NET_HOOKS_H
#define OSSE_NET_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"
#include "net/fetch.h"

typedef struct osse_hooks_s osse_hooks_t;

/* One delivery. In osse_hooks_enqueue every pointer is borrowed and copied;
 * in callbacks the struct is borrowed for the duration of the call. */
typedef struct osse_hooks_delivery_s {
    const char *id;              /* delivery id, sent as Osse-Delivery; unique among pending */
    const char *receiver;        /* agency id or subscription id: the unit of fairness */
    const char *url;             /* http or https */
    const unsigned char *secret; /* HMAC key bytes (the webhook_secret's UTF-8) */
    size_t secret_len;
    const char *body; /* JSON text, sent as is and signed */
    size_t body_len;
    uint32_t attempts; /* attempts made so far: 0 for a new delivery */
    int64_t next_at;   /* real ms since the epoch when the next attempt is due; 0 = now */
    bool public_only;  /* connect to public addresses only (OSSE_FETCH_PUBLIC_ONLY) */
} osse_hooks_delivery_t;

/* The retry schedule. After the n-th failed attempt (n >= 1) the next one
 * comes base_ms * 2^(n-1) later, times a jitter factor in [0.8, 1.2), capped
 * at cap_ms; the delivery fails after osse_hooks_max_attempts attempts, the
 * fewest whose smallest possible spread reaches min_span_ms. */
typedef struct osse_hooks_sched_s {
    int64_t base_ms;     /* 0 = 1000 */
    int64_t cap_ms;      /* 0 = 3600000 (one hour) */
    int64_t min_span_ms; /* 0 = 86400000 (one day) */
} osse_hooks_sched_t;

/* A key to sign with (borrowed). */
typedef struct osse_hooks_key_s {
    const unsigned char *ptr;
    size_t len;
} osse_hooks_key_t;

#define OSSE_HOOKS_MAX_KEYS 2

typedef struct osse_hooks_cbs_s {
    void *ud;
    /* A 2xx came back on attempt number `attempts`. */
    void (*on_delivered)(void *ud, const osse_hooks_delivery_t *d, uint32_t attempts, int status);
    /* The last attempt failed; no more will be made. */
    void (*on_failed)(void *ud, const osse_hooks_delivery_t *d, uint32_t attempts,
                      const char *last_error);
    /* An attempt failed and another is scheduled: d->attempts and d->next_at
     * hold the values to persist (may be NULL). */
    void (*on_progress)(void *ud, const osse_hooks_delivery_t *d, const char *error);
    /* Optional, asked before each attempt: the keys to sign it with, since a
     * receiver's secret may have changed after d was recorded. Fills up to
     * OSSE_HOOKS_MAX_KEYS (borrowed until the callback returns; the first is
     * the current one) and returns how many; 0 signs with d's own secret.
     * Osse-Signature then holds one v1= per key, in that order. */
    size_t (*keys)(void *ud, const osse_hooks_delivery_t *d, osse_hooks_key_t *out);
} osse_hooks_cbs_t;

typedef struct osse_hooks_opts_s {
    osse_hooks_sched_t sched;
    unsigned per_receiver;   /* attempts in flight per receiver; 0 = 4 */
    unsigned timeout_ms;     /* per attempt; 0 = 10000 */
    osse_fetch_opts_t fetch; /* zeros: max_total 1024, max_per_host 64, fetch's other defaults */
} osse_hooks_opts_t;

/* Opens a delivery queue on loop with its own fetcher. opts may be NULL; cbs
 * is copied and on_delivered and on_failed are required. Returns 0,
 * OSSE_ENOMEM or OSSE_EIO. Loop thread only. */
int osse_hooks_open(uv_loop_t *loop, const osse_hooks_opts_t *opts, const osse_hooks_cbs_t *cbs,
                    osse_hooks_t **out, osse_err_t *err);

/* Cancels attempts in flight and drops every pending delivery without any
 * callback (the caller's records stay pending and are re-enqueued at the next
 * start), then closes the handles: run the loop afterwards. NULL is a no-op.
 * Loop thread only, never from a hooks callback. */
void osse_hooks_close(osse_hooks_t *h);

/* Schedules d (copied; secret into sodium_malloc memory) for an attempt at
 * d->next_at (now if 0 or past). Callbacks for it come later, never inside
 * this call. Returns 0, OSSE_EEXISTS (a delivery with this id is pending),
 * OSSE_EINVAL (a field missing), OSSE_ECLOSED or OSSE_ENOMEM. Loop thread only;
 * callbacks may call it. */
int osse_hooks_enqueue(osse_hooks_t *h, const osse_hooks_delivery_t *d, osse_err_t *err);

/* Drops the pending delivery id without a callback (its receiver is gone).
 * An attempt in flight finishes but is not reported. Returns 0 or OSSE_ENOTFOUND. */
int osse_hooks_cancel(osse_hooks_t *h, const char *id);

/* Drops every pending delivery of receiver without a callback (the
 * receiver itself is gone), first handing each to each(ud, d) (d borrowed
 * for the call) so that the caller can record its end. An attempt in flight
 * finishes but is not reported. Returns 0 or OSSE_ENOMEM (nothing dropped).
 * each must not enqueue or cancel. Loop thread only, never from a hooks
 * callback. */
int osse_hooks_cancel_receiver(osse_hooks_t *h, const char *receiver,
                               void (*each)(void *ud, const osse_hooks_delivery_t *d), void *ud);

/* Deliveries held (waiting or in flight), and attempts in flight. */
size_t osse_hooks_pending(const osse_hooks_t *h);
unsigned osse_hooks_inflight(const osse_hooks_t *h);

/* ---- pure pieces, exposed for tests and for the caller ------------------- */

/* Fills zero fields of s with the defaults. */
osse_hooks_sched_t osse_hooks_sched_defaults(const osse_hooks_sched_t *s);

/* Milliseconds to wait after the attempts-th failed attempt (attempts >= 1),
 * with jitter drawn from rnd (any uint32). s must have no zero fields. */
int64_t osse_hooks_retry_delay(const osse_hooks_sched_t *s, uint32_t attempts, uint32_t rnd);

/* Attempts made before giving up under s (no zero fields). */
uint32_t osse_hooks_max_attempts(const osse_hooks_sched_t *s);

#define OSSE_HOOKS_SIG_LEN 128

/* Writes "t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" into out. */
void osse_hooks_sign(const unsigned char *secret, size_t secret_len, int64_t t, const char *body,
                     size_t body_len, char out[OSSE_HOOKS_SIG_LEN]);

#endif
