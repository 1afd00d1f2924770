/* fetch.h: outbound HTTP calls (webhooks, lookups) on the libuv loop.
 *
 * libcurl's multi interface is driven by the caller's loop: one uv_poll_t per
 * socket curl asks about and one uv_timer_t for curl's timeout, fed to
 * curl_multi_socket_action. No thread per call and nothing blocks the loop
 * (curl resolves names on its own resolver threads). Every call ends in
 * exactly one callback, on the loop thread, after the call returned.
 *
 * Limits: at most `max_per_host` calls in flight per receiver (scheme, host and
 * port) and `max_total` in all; calls beyond either wait in FIFO order and
 * their timeout starts only when they are started. Only http and https, no
 * redirects (a 3xx is an answer like any other), no proxy from the
 * environment, a connect timeout and a total timeout per call, and a cap on
 * the response body. */
#ifndef OSSE_NET_FETCH_H
#define OSSE_NET_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/err.h"

typedef struct osse_fetch_s osse_fetch_t;

typedef struct osse_fetch_opts_s {
    unsigned max_total;          /* calls in flight in all; 0 = 256 */
    unsigned max_per_host;       /* calls in flight per scheme://host:port; 0 = 4 */
    unsigned connect_timeout_ms; /* 0 = 5000 */
    size_t max_body;             /* response body cap in bytes; 0 = 1 MiB */
} osse_fetch_opts_t;

typedef struct osse_fetch_result_s {
    int code;          /* 0 when an HTTP answer came (any status); OSSE_EIO transport error or
                          timeout; OSSE_ETOOBIG body over the cap; OSSE_ECLOSED cancelled;
                          OSSE_EFORBIDDEN an address OSSE_FETCH_PUBLIC_ONLY refused */
    int status_code;   /* the HTTP status, 0 unless code == 0 */
    const char *error; /* NULL when code == 0, else a message (borrowed for the callback) */
    const char *body;  /* response body, NUL-terminated; borrowed for the callback */
    size_t body_len;
    int64_t elapsed_ms; /* from osse_fetch_post/get to the callback, queueing included */
} osse_fetch_result_t;

/* Called once per call on the loop thread. r and its strings are borrowed and
 * valid only during the call. The callback may start new calls; it must not
 * call osse_fetch_close. */
typedef void (*osse_fetch_cb)(void *ud, const osse_fetch_result_t *r);

/* Creates a fetcher on loop (opts may be NULL for defaults). Returns 0,
 * OSSE_ENOMEM or OSSE_EIO (libcurl or libuv refused). Loop thread only. */
int osse_fetch_open(uv_loop_t *loop, const osse_fetch_opts_t *opts, osse_fetch_t **out,
                    osse_err_t *err);

/* Cancels every call in flight or queued (each callback runs now, inside this
 * call, with code OSSE_ECLOSED), frees the curl handles and starts closing the
 * uv handles: run the loop afterwards so that their close callbacks free the
 * rest. NULL is a no-op. Loop thread only, never from a fetch callback. */
void osse_fetch_close(osse_fetch_t *f);

/* POSTs len bytes of body (copied) to url. headers is NULL or a
 * NULL-terminated array of "Name: value" strings (copied). timeout_ms bounds
 * the whole call once started (0 = 10000). cb(ud, result) runs later on the
 * loop thread, never inside this call. Returns 0, OSSE_EINVAL (not an
 * http/https URL), OSSE_ECLOSED (closing) or OSSE_ENOMEM; on error cb is
 * never called. Loop thread only. */
int osse_fetch_post(osse_fetch_t *f, const char *url, const char *const *headers, const void *body,
                    size_t len, unsigned timeout_ms, osse_fetch_cb cb, void *ud, osse_err_t *err);

/* As osse_fetch_post, with flags: OSSE_FETCH_PUBLIC_ONLY refuses to
 * connect to an address net/addr.h does not call public (result code
 * OSSE_EFORBIDDEN, the error naming it), checked on the address itself
 * after resolution. */
#define OSSE_FETCH_PUBLIC_ONLY 1u
int osse_fetch_post_flags(osse_fetch_t *f, const char *url, const char *const *headers,
                          const void *body, size_t len, unsigned timeout_ms, unsigned flags,
                          osse_fetch_cb cb, void *ud, osse_err_t *err);

/* As osse_fetch_post, with a GET and no body (linkage lookups). */
int osse_fetch_get(osse_fetch_t *f, const char *url, const char *const *headers,
                   unsigned timeout_ms, osse_fetch_cb cb, void *ud, osse_err_t *err);

/* Calls in flight and waiting, for metrics and tests. */
unsigned osse_fetch_active(const osse_fetch_t *f);
unsigned osse_fetch_queued(const osse_fetch_t *f);

#endif
