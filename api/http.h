/* http.h: osse's HTTP/1.1 server on libuv + llhttp.
 *
 * Keep-alive and pipelining: a connection parses requests as they arrive and
 * hands each complete one to the handler; the handler may answer at once or
 * later (after a durable commit), and answers go out in request order.
 * Limits from SPEC §11 are enforced here: malformed HTTP -> 400 and close,
 * a body over max_body -> 413 (possibly before it is read) and close,
 * headers over max_header -> 431 and close. Connections whose headers are
 * incomplete after header_timeout_ms, and keep-alive connections idle for
 * idle_timeout_ms, are closed. A connection with max_pipeline requests
 * waiting for answers stops being read until some are answered, so one client
 * cannot queue unbounded work. All error bodies are SPEC §11 JSON.
 *
 * Threading: everything here runs on the loop thread. */
#ifndef OSSE_API_HTTP_H
#define OSSE_API_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct osse_http_server_s osse_http_server_t;

typedef struct osse_http_limits_s {
    size_t max_body;            /* default 1 MiB */
    size_t max_header;          /* total header bytes, default 16 KiB */
    unsigned header_timeout_ms; /* default 5000 */
    unsigned idle_timeout_ms;   /* default 60000 */
    unsigned max_conns;         /* default 10000 */
    unsigned max_pipeline;      /* default 32 */
    /* One route may take large bodies (POST upload_path, exactly): up to
     * max_upload bytes each, at most max_uploads of them in flight over the
     * server (received, or waiting for their answer; 503 above), each to
     * arrive whole within upload_timeout_ms of its headers (408). Such a
     * body is held once, in its request. upload_path NULL: none. */
    const char *upload_path;
    size_t max_upload;          /* default 20 MiB */
    unsigned max_uploads;       /* default 8 */
    unsigned upload_timeout_ms; /* default 120000 */
} osse_http_limits_t;

/* What a request's Origin header is to the server's CORS list
 * (osse_http_cors). */
typedef enum {
    OSSE_HTTP_CORS_NONE,    /* no list, or no Origin header */
    OSSE_HTTP_CORS_ALLOWED, /* an Origin on the list: every answer says so */
    OSSE_HTTP_CORS_OTHER,   /* an Origin not on it (or this server's own pages') */
} osse_http_cors_t;

/* A complete request. All slices point into memory that stays valid until
 * the request is answered. */
typedef struct osse_http_req_s {
    const char *method;         /* "GET", "POST", ... NUL-terminated */
    osse_slice_t path;          /* the target up to '?', not percent-decoded */
    osse_slice_t query;         /* after '?', without it; len 0 when absent */
    osse_slice_t authorization; /* header values, len 0 when absent */
    osse_slice_t content_type;
    osse_slice_t accept;
    osse_slice_t idempotency_key;
    osse_slice_t filename; /* Osse-Filename, as sent */
    osse_slice_t origin;   /* Origin, as sent */
    osse_slice_t body;
    osse_http_cors_t cors;
    void *data; /* free for the handler */
} osse_http_req_t;

/* Called once per complete request. The handler must eventually call exactly
 * one of the osse_http_respond* functions for req, now or later, even when
 * the client has gone (the server then discards the answer and frees req). */
typedef void (*osse_http_handler_cb)(osse_http_req_t *req, void *ud);

/* Fills l with the defaults above. */
void osse_http_limits_default(osse_http_limits_t *l);

/* Binds host:port (port 0 = any free port) and starts accepting. limits may
 * be NULL for the defaults. Returns 0, OSSE_EIO (detail in err). Loop thread. */
int osse_http_open(uv_loop_t *loop, const char *host, int port, const osse_http_limits_t *limits,
                   osse_http_handler_cb cb, void *ud, osse_http_server_t **out, osse_err_t *err);

/* CORS (docs/design.md, "Browser portals on other origins"): at most
 * OSSE_HTTP_CORS_MAX origins, each as osse_http_origin_check wants it.
 * Once set, every answer (the server's own 400/408/413/431 too) carries
 * `Vary: Origin`, and an answer to a request whose Origin is one of them,
 * byte for byte, also `Access-Control-Allow-Origin: <it>` and
 * `Access-Control-Expose-Headers: <expose>` (the answer headers a page may
 * read). Never credentials: osse's tokens are bearer headers, not cookies.
 * Copies everything. Returns 0 or OSSE_EINVAL (detail in err). Call before
 * the loop runs. */
#define OSSE_HTTP_CORS_MAX 32
#define OSSE_HTTP_CORS_MAX_AGE 600 /* seconds a browser may keep a preflight's answer */
int osse_http_cors(osse_http_server_t *s, const char *const *origins, size_t n, const char *expose,
                   osse_err_t *err);

/* An origin as a browser sends it (RFC 6454 serialization): http:// or
 * https://, a lower-case host name or IP address literal, and a port only
 * when it is not the scheme's default; no path, no slash at the end, no
 * "*", no "null". Returns 0 or OSSE_EINVAL with why in err. Any thread. */
int osse_http_origin_check(const char *origin, osse_err_t *err);

/* The port actually bound. */
int osse_http_port(const osse_http_server_t *s);

/* Answers req with status, a Content-Type, and a body (copied).
 * extra_headers, if not NULL, is zero or more complete "Name: value\r\n"
 * lines. Loop thread. */
void osse_http_respond(osse_http_req_t *req, int status, const char *content_type,
                       const char *extra_headers, const void *body, size_t len);

/* As osse_http_respond, taking ownership of a malloc'd body. */
void osse_http_respond_take(osse_http_req_t *req, int status, const char *content_type,
                            const char *extra_headers, char *body, size_t len);

/* A streamed answer's source: appends the next slice of the body to out
 * (any size; a few tens of KiB keeps memory flat) and returns 1 while more
 * follow, 0 after the last, -1 on a failure (the answer is cut off and the
 * connection closed), or OSSE_HTTP_FILL_WAIT: what it appended is sent and
 * fill is not called again before osse_http_stream_resume (its next slice
 * is being made elsewhere, on the pool). Called on the loop thread each time
 * the slice before has been handed to the socket. */
typedef int (*osse_http_fill_cb)(void *ud, osse_buf_t *out);
#define OSSE_HTTP_FILL_WAIT 2

/* Answers a CORS preflight (req->cors is OSSE_HTTP_CORS_ALLOWED): 204 with
 * `Access-Control-Allow-Methods: <methods>`, `Access-Control-Allow-Headers`
 * (every request header the server reads that a page may set) and
 * `Access-Control-Max-Age`. Loop thread. */
void osse_http_respond_preflight(osse_http_req_t *req, const char *methods);

/* Answers req with a body in slices, Transfer-Encoding: chunked, pulled from
 * fill as the socket drains (write backpressure). close(ud), if not NULL, is
 * called exactly once when the answer is done or abandoned (the client
 * went). Loop thread. */
void osse_http_respond_stream(osse_http_req_t *req, int status, const char *content_type,
                              const char *extra_headers, osse_http_fill_cb fill,
                              void (*close)(void *ud), void *ud);
/* A streamed answer whose fill returned OSSE_HTTP_FILL_WAIT may go on: its
 * fill is called again once its last slice is on the socket. req must not
 * be closed yet (close(ud) not called). Loop thread. */
void osse_http_stream_resume(osse_http_req_t *req);

/* Stops accepting, closes every connection (answers still pending are
 * discarded when given) and frees the server once its handles are closed.
 * Run the loop afterwards for the close callbacks. NULL-safe. */
void osse_http_close(osse_http_server_t *s);

/* Writes a SPEC §11 error body {"error":{"code","message","details":[]}}
 * into out (details may be NULL for []). */
int osse_http_error_body(osse_buf_t *out, const char *code, const char *message,
                         const char *details_json);

#endif
