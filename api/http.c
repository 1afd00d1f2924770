/* http.c: the HTTP/1.1 server behind http.h (libuv TCP + llhttp 8.1).
 *
 * Each connection owns an llhttp parser, a FIFO of requests (oldest first)
 * and one timer. The parser pauses in on_message_complete so that pipelined
 * requests are handed to the handler one at a time, in order; each complete
 * request becomes one heap block (hreq_t + a copy of its target, the
 * headers of interest and the body). Every answer's head gets the CORS lines
 * its request's Origin calls for (osse_http_cors), so that no answer, the
 * parser's own errors included, can forget them. Answers may come in any order but are
 * written strictly from the FIFO head: an unanswered request blocks the ones
 * behind it. Answers made while a read is being parsed are coalesced into one
 * uv_write.
 *
 * Invariants:
 *  - A request stays in the FIFO until its answer is handed to uv_write; it
 *    is then owned by that write and freed in its callback.
 *  - When a connection closes, unanswered requests are detached (conn NULL)
 *    and freed by their osse_http_respond* call; nothing else points at them.
 *  - Once stop_parse is set (error, Connection: close, EOF) no new request is
 *    parsed; the connection finishes when its FIFO and writes are drained.
 *  - Read data is only borrowed during the read callback (one 64 KiB buffer
 *    per server): bytes the parser must not see yet (pipeline full) are copied
 *    into a per-connection stash, so idle connections cost no read buffer.
 *
 * Why: pausing llhttp at message completion is its documented way to process
 * pipelined messages one by one, and keeping answers in a FIFO is the simplest
 * way to let the engine answer after a durable commit without reordering. */
#include "api/http.h"
#include "common/alloc.h"

#include <ctype.h>
#include <jansson.h>
#include <llhttp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define READ_BUF_SIZE 65536
#define LISTEN_BACKLOG 4096
#define WRITE_HIGH_WATER (1u << 20) /* stop reading while this much is unsent */
#define LINGER_MS 1000              /* read-and-discard after a closing answer */
#define MAX_BATCH 32                /* answers per uv_write */

/* Headers the server copies out; every other header is only counted.
 * `page`: a page's script may set it, so a CORS preflight allows it. */
enum { H_AUTH, H_CTYPE, H_ACCEPT, H_IDEM, H_EXPECT, H_FILENAME, H_ORIGIN, H_COUNT };
static const struct {
    const char *name;
    size_t len;
    bool page;
} hdr_names[H_COUNT] = {
    {"authorization", 13, true},   {"content-type", 12, true}, {"accept", 6, true},
    {"idempotency-key", 15, true}, {"expect", 6, false},       {"osse-filename", 13, true},
    {"origin", 6, false},
};
#define HDR_NAME_MAX 16

/* What the connection timer currently measures. */
enum { T_NONE, T_HEADER, T_BODY, T_IDLE, T_LINGER };

typedef struct conn_s conn_t;

typedef struct hreq_s {
    osse_http_req_t pub;
    conn_t *conn;        /* NULL once the connection is gone */
    struct hreq_s *next; /* FIFO, then write batch */
    uv_write_t wreq;     /* used when this request ends a write batch */
    char *out;           /* response head, or head + body */
    size_t out_len;
    char *body; /* owned body (respond_take), sent after out */
    size_t body_len;
    unsigned answered : 1, keep : 1, head_only : 1;
    /* An upload's request: counted in the server's uploads while its
     * connection lives; its bytes are `owned` (the connection's buffer,
     * moved), not copied after the struct. */
    unsigned upload : 1;
    char *owned;
    /* A streamed answer (osse_http_respond_stream): stays at the FIFO head
     * until fill says it is done; one slice in flight at a time. */
    unsigned streaming : 1, stream_busy : 1, head_sent : 1, stream_wait : 1;
    /* Its Origin on the CORS list: 1 + the index, or 0. */
    unsigned cors_pick : 6;
    osse_http_fill_cb fill;
    void (*fill_close)(void *ud);
    void *fill_ud;
    /* the request's bytes follow the struct */
} hreq_t;

struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shut;
    llhttp_t parser;
    osse_http_server_t *srv;
    conn_t *prev, *next;
    hreq_t *head, *tail; /* requests not yet handed to uv_write */
    unsigned nfifo;
    unsigned inflight; /* uv_write batches not yet called back */
    /* The request being parsed: target, interesting header values, body. */
    osse_buf_t acc;
    size_t url_len;
    size_t hdr_bytes;
    size_t body_off;
    size_t hoff[H_COUNT], hlen[H_COUNT];
    size_t val_start;
    int cur_hdr;
    size_t name_len;
    char name[HDR_NAME_MAX];
    int keep;
    hreq_t *ready; /* set by on_message_complete, dispatched by conn_feed */
    /* An error our callbacks raised (413, 431, 500); 0 = llhttp's own. */
    int err_status;
    const char *err_code, *err_msg;
    char *stash; /* unparsed bytes held back while the pipeline is full */
    size_t stash_len;
    int tmode;
    int nclosed;
    unsigned reading : 1, in_feed : 1, stop_parse : 1, closing : 1, finishing : 1, eof : 1,
        lingering : 1, req_started : 1;
    unsigned upload : 1; /* the body being read is an upload's (counted) */
};

struct osse_http_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    osse_http_limits_t lim;
    osse_http_handler_cb cb;
    void *ud;
    int port;
    unsigned nconns;
    unsigned uploads;  /* upload bodies being read or waiting for their answer */
    unsigned nhandles; /* listener + connections and rejected sockets not yet freed */
    int closing;
    conn_t *conns;
    /* CORS (osse_http_cors): the origins, and the header values made once */
    char *cors[OSSE_HTTP_CORS_MAX];
    size_t ncors;
    char *cors_expose;
    char cors_allow_headers[128];
    llhttp_settings_t settings;
    char rbuf[READ_BUF_SIZE];
};

static void conn_settle(conn_t *c);
static void conn_close(conn_t *c);
static void conn_feed(conn_t *c, const char *p, size_t n);

void osse_http_limits_default(osse_http_limits_t *l)
{
    l->max_body = 1u << 20;
    l->upload_path = NULL;
    l->max_upload = 20u << 20;
    l->max_uploads = 8;
    l->upload_timeout_ms = 120000;
    l->max_header = 16u << 10;
    l->header_timeout_ms = 5000;
    l->idle_timeout_ms = 60000;
    l->max_conns = 10000;
    l->max_pipeline = 32;
}

int osse_http_port(const osse_http_server_t *s)
{
    return s->port;
}

/* ---- responses ---------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return "Unknown";
    }
}

static char *put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

static char *put_uint(char *d, size_t v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *d++ = tmp[--i];
    return d;
}

/* The CORS lines of an answer (osse_http_cors): none without a list;
 * `Vary: Origin` on every answer with one, as an answer differs by Origin
 * and a cache must not hand one origin's to another; the rest only when
 * the request's Origin is on the list (pick: 1 + its index). */
#define CORS_ORIGIN_MAX 200
#define CORS_EXPOSE_MAX 256
#define CORS_LINES_MAX (CORS_ORIGIN_MAX + CORS_EXPOSE_MAX + 96)

static void cors_lines(const osse_http_server_t *s, unsigned pick, char *out)
{
    out[0] = '\0';
    if (!s->ncors)
        return;
    if (pick)
        snprintf(out, CORS_LINES_MAX,
                 "Access-Control-Allow-Origin: %s\r\nAccess-Control-Expose-Headers: %s\r\n"
                 "Vary: Origin\r\n",
                 s->cors[pick - 1], s->cors_expose);
    else
        snprintf(out, CORS_LINES_MAX, "Vary: Origin\r\n");
}

/* 1 + the index of origin on the list, or 0. Exact bytes: browsers send
 * the serialization osse_http_origin_check asks for. */
static unsigned cors_match(const osse_http_server_t *s, const char *origin, size_t len)
{
    for (size_t i = 0; len && i < s->ncors; i++)
        if (strlen(s->cors[i]) == len && memcmp(s->cors[i], origin, len) == 0)
            return (unsigned)i + 1;
    return 0;
}

/* Builds the head of an answer into a fresh block with `extra` spare bytes
 * after it (for the body of osse_http_respond); cors: cors_lines' text.
 * Returns NULL on OOM. */
static char *build_head(int status, const char *ct, const char *extra_headers, const char *cors,
                        size_t body_len, int keep, size_t spare, size_t *head_len)
{
    const char *reason = reason_phrase(status);
    size_t rlen = strlen(reason);
    size_t ctlen = ct ? strlen(ct) : 0;
    size_t xlen = extra_headers ? strlen(extra_headers) : 0;
    size_t clen = strlen(cors);
    /* RFC 9110: no Content-Length (and no body) on 1xx, 204 and 304. */
    int no_len = status < 200 || status == 204 || status == 304;
    size_t max =
        9 + 3 + 1 + rlen + 2 + (ct ? 14 + ctlen + 2 : 0) + 16 + 20 + 2 + xlen + clen + 24 + 2;
    char *b = osse_malloc(max + spare);
    char *d = b;
    d = put(d, "HTTP/1.1 ", 9);
    *d++ = (char)('0' + status / 100 % 10);
    *d++ = (char)('0' + status / 10 % 10);
    *d++ = (char)('0' + status % 10);
    *d++ = ' ';
    d = put(d, reason, rlen);
    d = put(d, "\r\n", 2);
    if (ct) {
        d = put(d, "Content-Type: ", 14);
        d = put(d, ct, ctlen);
        d = put(d, "\r\n", 2);
    }
    if (!no_len && body_len == SIZE_MAX) {
        d = put(d, "Transfer-Encoding: chunked\r\n", 28);
    } else if (!no_len) {
        d = put(d, "Content-Length: ", 16);
        d = put_uint(d, body_len);
        d = put(d, "\r\n", 2);
    }
    if (xlen)
        d = put(d, extra_headers, xlen);
    if (clen)
        d = put(d, cors, clen);
    if (keep)
        d = put(d, "Connection: keep-alive\r\n\r\n", 26);
    else
        d = put(d, "Connection: close\r\n\r\n", 21);
    *head_len = (size_t)(d - b);
    return b;
}

static void hreq_free(hreq_t *r)
{
    if (r->fill_close)
        r->fill_close(r->fill_ud);
    if (r->upload && r->conn)
        r->conn->srv->uploads--;
    free(r->owned);
    free(r->out);
    free(r->body);
    free(r);
}

/* Stores the answer to r (a request of server s) in r. body is copied
 * unless `take` (then owned by r). */
static int hreq_answer(const osse_http_server_t *s, hreq_t *r, int status, const char *ct,
                       const char *extra, const void *body, size_t len, int take)
{
    int no_body = status < 200 || status == 204 || status == 304;
    size_t head_len;
    char cors[CORS_LINES_MAX];
    cors_lines(s, r->cors_pick, cors);
    char *out = build_head(status, ct, extra, cors, len, r->keep, take ? 0 : len, &head_len);
    if (!out) {
        if (take)
            free((void *)body);
        return OSSE_ENOMEM;
    }
    r->out = out;
    r->out_len = head_len;
    if (r->head_only || no_body) {
        if (take)
            free((void *)body);
    } else if (take) {
        r->body = (char *)body;
        r->body_len = len;
    } else if (len) {
        memcpy(out + head_len, body, len);
        r->out_len += len;
    }
    r->answered = 1;
    return 0;
}

static void respond_common(osse_http_req_t *req, int status, const char *ct, const char *extra,
                           const void *body, size_t len, int take)
{
    OSSE_PRE(req != NULL);
    OSSE_PRE(status >= 100 && status <= 999);
    hreq_t *r = (hreq_t *)req;
    OSSE_PRE(!r->answered);
    conn_t *c = r->conn;
    if (!c) {
        /* The connection is gone: the answer has nowhere to go. */
        if (take)
            free((void *)body);
        hreq_free(r);
        return;
    }
    if (hreq_answer(c->srv, r, status, ct, extra, body, len, take) != 0) {
        /* Out of memory: the connection cannot keep its order any more. */
        r->answered = 1;
        conn_close(c);
        return;
    }
    if (!c->in_feed)
        conn_settle(c);
}

void osse_http_respond(osse_http_req_t *req, int status, const char *content_type,
                       const char *extra_headers, const void *body, size_t len)
{
    respond_common(req, status, content_type, extra_headers, body, len, 0);
}

void osse_http_respond_take(osse_http_req_t *req, int status, const char *content_type,
                            const char *extra_headers, char *body, size_t len)
{
    respond_common(req, status, content_type, extra_headers, body, len, 1);
}

void osse_http_respond_preflight(osse_http_req_t *req, const char *methods)
{
    OSSE_PRE(req != NULL && methods != NULL);
    OSSE_PRE(req->cors == OSSE_HTTP_CORS_ALLOWED);
    hreq_t *r = (hreq_t *)req;
    char extra[512];
    const char *allow_headers = r->conn ? r->conn->srv->cors_allow_headers : "";
    snprintf(extra, sizeof extra,
             "Access-Control-Allow-Methods: %s\r\nAccess-Control-Allow-Headers: %s\r\n"
             "Access-Control-Max-Age: %d\r\n",
             methods, allow_headers, OSSE_HTTP_CORS_MAX_AGE);
    respond_common(req, 204, NULL, extra, NULL, 0, 0);
}

void osse_http_respond_stream(osse_http_req_t *req, int status, const char *content_type,
                              const char *extra_headers, osse_http_fill_cb fill,
                              void (*close)(void *ud), void *ud)
{
    OSSE_PRE(req != NULL && fill != NULL);
    hreq_t *r = (hreq_t *)req;
    OSSE_PRE(!r->answered);
    r->fill_close = close;
    r->fill_ud = ud;
    conn_t *c = r->conn;
    if (!c) {
        hreq_free(r);
        return;
    }
    size_t head_len;
    char cors[CORS_LINES_MAX];
    cors_lines(c->srv, r->cors_pick, cors);
    r->out = build_head(status, content_type, extra_headers, cors, SIZE_MAX, r->keep, 0, &head_len);
    r->out_len = head_len;
    r->fill = fill;
    /* A HEAD request gets the head only: an answer of no slices. */
    r->streaming = !r->head_only;
    r->answered = 1;
    if (!c->in_feed)
        conn_settle(c);
}

void osse_http_stream_resume(osse_http_req_t *req)
{
    hreq_t *r = (hreq_t *)req;
    OSSE_PRE(r->stream_wait);
    r->stream_wait = 0;
    if (r->conn)
        conn_settle(r->conn);
}

/* Copies s, replacing bytes that are not plain ASCII when s is not valid
 * UTF-8, so that an error message never makes the error body fail. */
static json_t *json_string_safe(const char *s)
{
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = osse_strdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    j = json_string(copy);
    free(copy);
    return j;
}

int osse_http_error_body(osse_buf_t *out, const char *code, const char *message,
                         const char *details_json)
{
    int rc = OSSE_ENOMEM;
    json_t *details = NULL, *obj = NULL, *err = NULL;
    char *text = NULL;
    if (details_json) {
        details = json_loads(details_json, JSON_DECODE_ANY, NULL);
        if (details && !json_is_array(details)) {
            json_decref(details);
            details = NULL;
        }
    }
    if (!details && !(details = json_array()))
        goto out;
    err = json_object();
    obj = json_object();
    if (!err || !obj)
        goto out;
    if (json_object_set_new(err, "code", json_string_safe(code ? code : "error")) ||
        json_object_set_new(err, "message", json_string_safe(message ? message : "")) ||
        json_object_set(err, "details", details) || json_object_set(obj, "error", err))
        goto out;
    text = json_dumps(obj, JSON_COMPACT);
    if (!text)
        goto out;
    rc = osse_buf_puts(out, text);
out:
    free(text);
    json_decref(details);
    json_decref(err);
    json_decref(obj);
    return rc;
}

/* ---- connection timer --------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void timer_set(conn_t *c, int mode, unsigned ms)
{
    c->tmode = mode;
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void timer_clear(conn_t *c)
{
    if (c->tmode != T_NONE) {
        c->tmode = T_NONE;
        uv_timer_stop(&c->timer);
    }
}

/* ---- the FIFO and writing ----------------------------------------------- */

static void fifo_push(conn_t *c, hreq_t *r)
{
    r->conn = c;
    r->next = NULL;
    if (c->tail)
        c->tail->next = r;
    else
        c->head = r;
    c->tail = r;
    c->nfifo++;
}

static void on_write(uv_write_t *w, int status)
{
    conn_t *c = w->handle->data;
    hreq_t *r = w->data;
    while (r) {
        hreq_t *next = r->next;
        hreq_free(r); /* may free w itself: not used after this loop */
        r = next;
    }
    c->inflight--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_settle(c);
}

typedef struct stream_write_s {
    uv_write_t w;
    osse_buf_t b;
} stream_write_t;

static void on_stream_write(uv_write_t *w, int status)
{
    conn_t *c = w->handle->data;
    stream_write_t *sw = (stream_write_t *)w;
    osse_buf_close(&sw->b);
    free(sw);
    c->inflight--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->head && c->head->streaming)
        c->head->stream_busy = 0;
    conn_settle(c);
}

/* The streamed answer at the FIFO head: its next slice (its head first), as
 * one chunk, once the slice before is written, so a slow reader holds one
 * slice and never the whole answer. Returns true when it is still streaming
 * (nothing behind it may go yet). */
static bool stream_step(conn_t *c)
{
    hreq_t *r = c->head;
    if (r->stream_busy || r->stream_wait)
        return true;
    stream_write_t *sw = osse_calloc(1, sizeof *sw);
    osse_buf_init(&sw->b, 0);
    if (!r->head_sent)
        osse_buf_append(&sw->b, r->out, r->out_len);
    r->head_sent = 1;
    osse_buf_t data;
    osse_buf_init(&data, 0);
    int more = r->fill(r->fill_ud, &data);
    if (more == OSSE_HTTP_FILL_WAIT) {
        r->stream_wait = 1;
        if (!data.len && !sw->b.len) {
            osse_buf_close(&data);
            osse_buf_close(&sw->b);
            free(sw);
            return true;
        }
    }
    if (data.len) {
        char hex[24];
        int n = snprintf(hex, sizeof hex, "%zx\r\n", data.len);
        osse_buf_append(&sw->b, hex, (size_t)n);
        osse_buf_append(&sw->b, data.ptr, data.len);
        osse_buf_append(&sw->b, "\r\n", 2);
    }
    osse_buf_close(&data);
    if (more <= 0) {
        /* The end (or a failure half-way: the peer sees a truncated
         * chunked body, never a complete-looking one). */
        if (more == 0)
            osse_buf_append(&sw->b, "0\r\n\r\n", 5);
        else
            c->stop_parse = 1;
        c->head = r->next;
        c->nfifo--;
        if (!c->head)
            c->tail = NULL;
        hreq_free(r);
        r = NULL;
    } else {
        r->stream_busy = 1;
    }
    uv_buf_t buf = uv_buf_init((char *)sw->b.ptr, (unsigned)sw->b.len);
    if (uv_write(&sw->w, (uv_stream_t *)&c->tcp, &buf, 1, on_stream_write) < 0) {
        osse_buf_close(&sw->b);
        free(sw);
        conn_close(c);
        return true;
    }
    c->inflight++;
    return r != NULL;
}

/* Hands every answered request at the FIFO head to uv_write, in order. */
static void conn_flush(conn_t *c)
{
    while (!c->closing && c->head && c->head->answered) {
        if (c->head->streaming) {
            if (stream_step(c))
                return;
            continue;
        }
        uv_buf_t bufs[MAX_BATCH * 2];
        unsigned n = 0, k = 0;
        hreq_t *first = c->head, *last = NULL;
        while (c->head && c->head->answered && !c->head->streaming && k < MAX_BATCH) {
            hreq_t *r = c->head;
            c->head = r->next;
            c->nfifo--;
            bufs[n++] = uv_buf_init(r->out, (unsigned)r->out_len);
            if (r->body_len)
                bufs[n++] = uv_buf_init(r->body, (unsigned)r->body_len);
            last = r;
            k++;
        }
        if (!c->head)
            c->tail = NULL;
        last->next = NULL;
        last->wreq.data = first;
        int rc = uv_write(&last->wreq, (uv_stream_t *)&c->tcp, bufs, n, on_write);
        if (rc < 0) {
            for (hreq_t *r = first; r;) {
                hreq_t *next = r->next;
                hreq_free(r);
                r = next;
            }
            conn_close(c);
            return;
        }
        c->inflight++;
    }
}

/* Queues a server-made error answer (after any earlier answers) and stops
 * parsing: the connection closes once it is written. */
static void conn_fail_with(conn_t *c, int status, const char *code, const char *msg)
{
    c->stop_parse = 1;
    timer_clear(c);
    hreq_t *r = osse_calloc(1, sizeof *r);
    osse_buf_t b;
    osse_buf_init(&b, 0);
    if (osse_http_error_body(&b, code, msg, NULL) != 0) {
        osse_buf_close(&b);
        free(r);
        conn_close(c);
        return;
    }
    size_t len;
    char *body = osse_buf_take(&b, &len);
    r->keep = 0;
    /* The request's Origin, when its header was read whole: a page on a
     * listed origin reads this error too (a 413 for a file too large). */
    if (c->hlen[H_ORIGIN])
        r->cors_pick = cors_match(c->srv, c->acc.ptr + c->hoff[H_ORIGIN], c->hlen[H_ORIGIN]);
    if (hreq_answer(c->srv, r, status, "application/json", NULL, body, len, 1) != 0) {
        free(r);
        conn_close(c);
        return;
    }
    fifo_push(c, r);
}

/* ---- reading and closing ------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    /* One buffer per server: read callbacks run one at a time and every byte
     * is copied out (or stashed) before the callback returns. */
    *buf = uv_buf_init(c->srv->rbuf, READ_BUF_SIZE);
}

static void server_free(osse_http_server_t *s)
{
    for (size_t i = 0; i < s->ncors; i++)
        free(s->cors[i]);
    free(s->cors_expose);
    free(s);
}

static void maybe_free_server(osse_http_server_t *s)
{
    if (s->closing && s->nhandles == 0)
        server_free(s);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (++c->nclosed < 2)
        return;
    osse_http_server_t *s = c->srv;
    free(c);
    s->nhandles--;
    maybe_free_server(s);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    osse_http_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    for (hreq_t *r = c->head; r;) {
        hreq_t *next = r->next;
        if (r->answered) {
            hreq_free(r);
        } else {
            /* Freed by its osse_http_respond* call; an upload's slot is given
             * back now, as the server may be gone by then. */
            if (r->upload)
                s->uploads--;
            r->upload = 0;
            r->conn = NULL;
        }
        r = next;
    }
    if (c->upload)
        s->uploads--;
    c->upload = 0;
    c->head = c->tail = NULL;
    c->nfifo = 0;
    if (c->ready) {
        hreq_free(c->ready);
        c->ready = NULL;
    }
    free(c->stash);
    c->stash = NULL;
    osse_buf_close(&c->acc);
    /* Pending writes and the shutdown are called back (cancelled) first. */
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->handle->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    /* Lingering close: read and drop what the client still sends, so that an
     * unread request body does not turn our close into a reset that could
     * destroy the answer before the client reads it. */
    c->lingering = 1;
    timer_set(c, T_LINGER, LINGER_MS);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
    else
        c->reading = 1;
}

/* Everything has been answered and written and no more will be parsed. */
static void conn_finish(conn_t *c)
{
    c->finishing = 1;
    timer_clear(c);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    if (c->eof || uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

/* Starts or stops reading as the limits say, feeding stashed bytes first. */
static void conn_check_read(conn_t *c)
{
    osse_http_server_t *s = c->srv;
    int want = !c->stop_parse && c->nfifo < s->lim.max_pipeline &&
               uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_HIGH_WATER;
    if (want && c->stash) {
        char *st = c->stash;
        size_t len = c->stash_len;
        c->stash = NULL;
        c->stash_len = 0;
        conn_feed(c, st, len); /* settles the connection again at its end */
        free(st);
        return;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
            conn_close(c);
            return;
        }
        c->reading = 1;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* Brings the connection to a consistent state after anything happened:
 * writes what can be written, finishes or (re)starts reading, and arms the
 * idle timer when nothing is pending. */
static void conn_settle(conn_t *c)
{
    if (c->closing || c->in_feed || c->finishing)
        return;
    conn_flush(c);
    if (c->closing)
        return;
    if (c->stop_parse) {
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (!c->head && !c->inflight)
            conn_finish(c);
        return;
    }
    conn_check_read(c);
    if (c->closing || c->finishing || c->stop_parse)
        return;
    if (c->tmode == T_NONE && !c->head)
        timer_set(c, T_IDLE, c->srv->lim.idle_timeout_ms);
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing)
        return;
    int mode = c->tmode;
    c->tmode = T_NONE;
    if (mode == T_HEADER && c->req_started && !c->head && !c->inflight && !c->stop_parse) {
        conn_fail_with(c, 408, "request_timeout", "request headers not received in time");
        conn_settle(c);
        return;
    }
    if (mode == T_BODY && c->upload && !c->head && !c->inflight && !c->stop_parse) {
        conn_fail_with(c, 408, "request_timeout", "the upload's body did not arrive in time");
        conn_settle(c);
        return;
    }
    conn_close(c);
}

/* Parses n bytes, dispatching each complete request as the parser pauses. */
static void conn_feed(conn_t *c, const char *p, size_t n)
{
    osse_http_server_t *s = c->srv;
    c->in_feed = 1;
    while (n > 0 && !c->closing && !c->stop_parse) {
        if (c->nfifo >= s->lim.max_pipeline) {
            conn_flush(c);
            if (c->closing)
                break;
            if (c->nfifo >= s->lim.max_pipeline) {
                c->stash = osse_malloc(n);
                memcpy(c->stash, p, n);
                c->stash_len = n;
                break;
            }
        }
        llhttp_errno_t e = llhttp_execute(&c->parser, p, n);
        if (e == HPE_OK)
            break;
        if (e == HPE_PAUSED) {
            size_t used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
            p += used;
            n -= used;
            llhttp_resume(&c->parser);
            hreq_t *r = c->ready;
            c->ready = NULL;
            if (r) {
                fifo_push(c, r);
                if (!r->keep)
                    c->stop_parse = 1;
                s->cb(&r->pub, s->ud);
            }
            continue;
        }
        if (e == HPE_PAUSED_UPGRADE) {
            /* The upgrade request was dispatched (and marked as the last). */
            c->stop_parse = 1;
            break;
        }
        if (c->err_status)
            conn_fail_with(c, c->err_status, c->err_code, c->err_msg);
        else {
            const char *why = llhttp_get_error_reason(&c->parser);
            conn_fail_with(c, 400, "bad_request", why ? why : llhttp_errno_name(e));
        }
        break;
    }
    c->in_feed = 0;
    conn_settle(c);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    if (c->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering) {
            conn_close(c);
            return;
        }
        /* The client will send no more: answer what it asked, then close. */
        c->eof = 1;
        c->stop_parse = 1;
        timer_clear(c);
        conn_settle(c);
        return;
    }
    if (nread == 0 || c->lingering)
        return;
    /* An upload's body has one deadline in all; other bodies may go on as
     * long as bytes keep coming. */
    if (c->tmode == T_BODY && !c->upload)
        timer_set(c, T_BODY, c->srv->lim.idle_timeout_ms);
    conn_feed(c, buf->base, (size_t)nread);
}

/* ---- llhttp callbacks --------------------------------------------------- */

static int fail_cb(conn_t *c, int status, const char *code, const char *msg)
{
    c->err_status = status;
    c->err_code = code;
    c->err_msg = msg;
    llhttp_set_error_reason(&c->parser, msg);
    return HPE_USER;
}

static int header_bytes(conn_t *c, size_t n)
{
    c->hdr_bytes += n;
    if (c->hdr_bytes > c->srv->lim.max_header)
        return fail_cb(c, 431, "headers_too_large", "request headers are too large");
    return 0;
}

static int acc_append(conn_t *c, const char *at, size_t n)
{
    if (osse_buf_append(&c->acc, at, n) != 0)
        return fail_cb(c, 500, "internal", "out of memory");
    return 0;
}

static int cb_message_begin(llhttp_t *p)
{
    conn_t *c = p->data;
    /* Drop a large body's buffer rather than keep it for the connection's life. */
    if (c->acc.cap > READ_BUF_SIZE)
        osse_buf_close(&c->acc);
    osse_buf_reset(&c->acc);
    c->url_len = c->hdr_bytes = c->body_off = 0;
    memset(c->hoff, 0, sizeof c->hoff);
    memset(c->hlen, 0, sizeof c->hlen);
    c->cur_hdr = -1;
    c->name_len = 0;
    c->req_started = 1;
    timer_set(c, T_HEADER, c->srv->lim.header_timeout_ms);
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    int rc = header_bytes(c, n);
    if (rc)
        return rc;
    c->url_len += n;
    return acc_append(c, at, n);
}

static int cb_header_field(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    int rc = header_bytes(c, n);
    if (rc)
        return rc;
    if (c->name_len + n <= HDR_NAME_MAX)
        memcpy(c->name + c->name_len, at, n);
    c->name_len += n;
    return 0;
}

static int cb_header_field_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->cur_hdr = -1;
    for (int i = 0; i < H_COUNT && c->name_len <= HDR_NAME_MAX; i++)
        if (c->name_len == hdr_names[i].len &&
            strncasecmp(c->name, hdr_names[i].name, c->name_len) == 0)
            c->cur_hdr = i;
    c->name_len = 0;
    c->val_start = c->acc.len;
    return header_bytes(c, 4); /* ": " and CRLF, so empty headers count too */
}

static int cb_header_value(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    int rc = header_bytes(c, n);
    if (rc)
        return rc;
    return c->cur_hdr >= 0 ? acc_append(c, at, n) : 0;
}

static int cb_header_value_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    if (c->cur_hdr < 0)
        return 0;
    size_t end = c->acc.len;
    while (end > c->val_start && (c->acc.ptr[end - 1] == ' ' || c->acc.ptr[end - 1] == '\t'))
        end--;
    /* A repeated header: the last one wins. */
    c->hoff[c->cur_hdr] = c->val_start;
    c->hlen[c->cur_hdr] = end - c->val_start;
    c->cur_hdr = -1;
    return 0;
}

static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void on_continue_written(uv_write_t *w, int status)
{
    free(w);
}

static int cb_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    osse_http_server_t *s = c->srv;
    c->keep = llhttp_should_keep_alive(p) && !llhttp_get_upgrade(p);
    c->body_off = c->acc.len;
    int has_len = (p->flags & F_CONTENT_LENGTH) != 0;
    const char *up = s->lim.upload_path;
    const char *q = memchr(c->acc.ptr, '?', c->url_len);
    size_t plen = q ? (size_t)(q - c->acc.ptr) : c->url_len;
    bool upload =
        up && p->method == HTTP_POST && plen == strlen(up) && memcmp(c->acc.ptr, up, plen) == 0;
    if (has_len && p->content_length > (upload ? s->lim.max_upload : s->lim.max_body)) {
        fail_cb(c, 413, "payload_too_large",
                upload ? "the file is too large" : "request body is too large");
        return -1;
    }
    int has_body = (has_len && p->content_length > 0) || (p->flags & F_CHUNKED);
    if (!has_body) {
        timer_clear(c);
        return 0;
    }
    if (upload) {
        if (s->uploads >= s->lim.max_uploads) {
            fail_cb(c, 503, "too_many_uploads",
                    "too many uploads in flight: try again in a few seconds");
            return -1;
        }
        s->uploads++;
        c->upload = 1;
        /* The whole body in one allocation, not a doubling series. */
        if (has_len && osse_buf_reserve(&c->acc, (size_t)p->content_length + 1) != 0) {
            fail_cb(c, 500, "internal", "out of memory");
            return -1;
        }
    }
    timer_set(c, T_BODY, upload ? s->lim.upload_timeout_ms : s->lim.idle_timeout_ms);
    /* Answer "Expect: 100-continue" only when no earlier answer is still due,
     * as the interim answer must not overtake them; a client that gets none
     * sends its body after its own short wait anyway. */
    if (c->hlen[H_EXPECT] == 12 && !c->head &&
        strncasecmp(c->acc.ptr + c->hoff[H_EXPECT], "100-continue", 12) == 0) {
        uv_write_t *w = osse_malloc(sizeof *w);
        uv_buf_t b = uv_buf_init((char *)continue_100, sizeof continue_100 - 1);
        if (w && uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_continue_written) < 0)
            free(w);
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t n)
{
    conn_t *c = p->data;
    if (c->acc.len - c->body_off + n > (c->upload ? c->srv->lim.max_upload : c->srv->lim.max_body))
        return fail_cb(c, 413, "payload_too_large",
                       c->upload ? "the file is too large" : "request body is too large");
    return acc_append(c, at, n);
}

static osse_slice_t slice_at(const char *d, size_t off, size_t len)
{
    osse_slice_t s = {len ? d + off : "", len};
    return s;
}

static int cb_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    size_t n = c->acc.len;
    hreq_t *r;
    char *d;
    if (c->upload) {
        /* An upload's bytes move from the connection to the request: held
         * once, never copied (http.h). */
        r = osse_calloc(1, sizeof *r);
        size_t len;
        d = r->owned = osse_buf_take(&c->acc, &len);
        r->upload = 1;
        c->upload = 0;
    } else {
        r = osse_malloc(sizeof *r + n + 1);
        memset(r, 0, sizeof *r);
        d = (char *)(r + 1);
        if (n)
            memcpy(d, c->acc.ptr, n);
        d[n] = '\0';
    }
    r->pub.method = llhttp_method_name((llhttp_method_t)p->method);
    const char *q = memchr(d, '?', c->url_len);
    if (q) {
        r->pub.path = slice_at(d, 0, (size_t)(q - d));
        r->pub.query = slice_at(d, (size_t)(q - d) + 1, c->url_len - (size_t)(q - d) - 1);
    } else {
        r->pub.path = slice_at(d, 0, c->url_len);
        r->pub.query = slice_at(d, 0, 0);
    }
    r->pub.authorization = slice_at(d, c->hoff[H_AUTH], c->hlen[H_AUTH]);
    r->pub.content_type = slice_at(d, c->hoff[H_CTYPE], c->hlen[H_CTYPE]);
    r->pub.accept = slice_at(d, c->hoff[H_ACCEPT], c->hlen[H_ACCEPT]);
    r->pub.idempotency_key = slice_at(d, c->hoff[H_IDEM], c->hlen[H_IDEM]);
    r->pub.filename = slice_at(d, c->hoff[H_FILENAME], c->hlen[H_FILENAME]);
    r->pub.origin = slice_at(d, c->hoff[H_ORIGIN], c->hlen[H_ORIGIN]);
    r->pub.body = slice_at(d, c->body_off, n - c->body_off);
    if (c->srv->ncors && r->pub.origin.len) {
        r->cors_pick = cors_match(c->srv, r->pub.origin.ptr, r->pub.origin.len);
        r->pub.cors = r->cors_pick ? OSSE_HTTP_CORS_ALLOWED : OSSE_HTTP_CORS_OTHER;
    }
    /* Nothing of this request's headers is read again (an error before the
     * next one's begins must not take its values): the acc may be gone. */
    memset(c->hlen, 0, sizeof c->hlen);
    r->keep = c->keep;
    r->head_only = p->method == HTTP_HEAD;
    c->ready = r;
    timer_clear(c);
    return HPE_PAUSED; /* conn_feed dispatches it and resumes */
}

/* ---- accepting ---------------------------------------------------------- */

static void on_rejected_closed(uv_handle_t *h)
{
    osse_http_server_t *s = h->data;
    free(h);
    s->nhandles--;
    maybe_free_server(s);
}

static void on_connection(uv_stream_t *ls, int status)
{
    osse_http_server_t *s = ls->data;
    if (status < 0 || s->closing)
        return;
    if (s->nconns >= s->lim.max_conns) {
        /* Over the cap: take the socket off the backlog and drop it. */
        uv_tcp_t *t = osse_malloc(sizeof *t);
        if (uv_tcp_init(s->loop, t) < 0) {
            free(t);
            return;
        }
        t->data = s;
        s->nhandles++;
        (void)uv_accept(ls, (uv_stream_t *)t);
        uv_close((uv_handle_t *)t, on_rejected_closed);
        return;
    }
    conn_t *c = osse_calloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    osse_buf_init(&c->acc, 0);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    s->nhandles++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    timer_set(c, T_HEADER, s->lim.header_timeout_ms);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
}

int osse_http_open(uv_loop_t *loop, const char *host, int port, const osse_http_limits_t *limits,
                   osse_http_handler_cb cb, void *ud, osse_http_server_t **out, osse_err_t *err)
{
    OSSE_PRE(loop && host && cb && out);
    int rc;
    struct sockaddr_storage addr;
    /* libuv writes with write(2): a client that resets its connection would
     * otherwise kill the process with SIGPIPE instead of failing the write. */
    signal(SIGPIPE, SIG_IGN);
    osse_http_server_t *s = osse_calloc(1, sizeof *s);
    s->loop = loop;
    s->cb = cb;
    s->ud = ud;
    osse_http_limits_default(&s->lim);
    if (limits) {
        /* Zero fields keep their defaults. */
#define KEEP_DEFAULT_IF_ZERO(f)                                                                    \
    if (limits->f)                                                                                 \
        s->lim.f = limits->f;
        KEEP_DEFAULT_IF_ZERO(max_body)
        KEEP_DEFAULT_IF_ZERO(max_header)
        KEEP_DEFAULT_IF_ZERO(header_timeout_ms)
        KEEP_DEFAULT_IF_ZERO(idle_timeout_ms)
        KEEP_DEFAULT_IF_ZERO(max_conns)
        KEEP_DEFAULT_IF_ZERO(max_pipeline)
        KEEP_DEFAULT_IF_ZERO(max_upload)
        KEEP_DEFAULT_IF_ZERO(max_uploads)
        KEEP_DEFAULT_IF_ZERO(upload_timeout_ms)
#undef KEEP_DEFAULT_IF_ZERO
        s->lim.upload_path = limits->upload_path;
    }
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = cb_message_begin;
    s->settings.on_url = cb_url;
    s->settings.on_header_field = cb_header_field;
    s->settings.on_header_field_complete = cb_header_field_complete;
    s->settings.on_header_value = cb_header_value;
    s->settings.on_header_value_complete = cb_header_value_complete;
    s->settings.on_headers_complete = cb_headers_complete;
    s->settings.on_body = cb_body;
    s->settings.on_message_complete = cb_message_complete;

    if (strchr(host, ':'))
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
    if (rc < 0) {
        free(s);
        return osse_err_set(err, OSSE_EINVAL, "bad listen address %s: %s", host, uv_strerror(rc));
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->nhandles = 1;
    /* libuv sets SO_REUSEADDR on bind. */
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection)) < 0) {
        osse_err_set(err, OSSE_EIO, "listen on %s:%d: %s", host, port, uv_strerror(rc));
        osse_http_close(s);
        return OSSE_EIO;
    }
    int alen = sizeof addr;
    if ((rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &alen)) < 0) {
        osse_err_set(err, OSSE_EIO, "getsockname: %s", uv_strerror(rc));
        osse_http_close(s);
        return OSSE_EIO;
    }
    s->port = addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&addr)->sin_port);
    *out = s;
    return 0;
}

int osse_http_origin_check(const char *o, osse_err_t *err)
{
    const char *host;
    bool https;
    if (strlen(o) > CORS_ORIGIN_MAX)
        return osse_err_set(err, OSSE_EINVAL, "an origin is at most %d bytes", CORS_ORIGIN_MAX);
    if (strncmp(o, "https://", 8) == 0) {
        host = o + 8;
        https = true;
    } else if (strncmp(o, "http://", 7) == 0) {
        host = o + 7;
        https = false;
    } else {
        return osse_err_set(err, OSSE_EINVAL,
                            "\"%s\" is not an origin: it starts with https:// or http:// "
                            "(\"*\" and \"null\" are never allowed)",
                            o);
    }
    const char *p = host;
    if (*p == '[') {
        /* An IPv6 literal, as a browser writes it. */
        for (p++; *p && *p != ']'; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                break;
        if (*p != ']' || p == host + 1)
            return osse_err_set(err, OSSE_EINVAL, "\"%s\": a bad IPv6 address", o);
        p++;
    } else {
        for (; *p && *p != ':' && *p != '/'; p++)
            if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-' ||
                  *p == '.'))
                return osse_err_set(err, OSSE_EINVAL,
                                    "\"%s\" is not an origin as a browser sends it: the host "
                                    "is lower-case letters, digits, '-' and '.' (an "
                                    "internationalized name in its xn-- form), no user",
                                    o);
        if (p == host)
            return osse_err_set(err, OSSE_EINVAL, "\"%s\" has no host", o);
    }
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (!isdigit((unsigned char)p[1]) || *end || port < 1 || port > 65535)
            return osse_err_set(err, OSSE_EINVAL,
                                "\"%s\": after the host comes nothing or :PORT (1-65535), no "
                                "path and no '/' at the end",
                                o);
        if (p[1] == '0' || port == (https ? 443 : 80))
            return osse_err_set(err, OSSE_EINVAL,
                                "\"%s\": a browser never sends this port (write it without "
                                "leading zeros, and the scheme's default not at all)",
                                o);
    } else if (*p) {
        return osse_err_set(err, OSSE_EINVAL,
                            "\"%s\": after the host comes nothing or :PORT, no path and no "
                            "'/' at the end",
                            o);
    }
    return 0;
}

int osse_http_cors(osse_http_server_t *s, const char *const *origins, size_t n, const char *expose,
                   osse_err_t *err)
{
    OSSE_PRE(s && (origins || !n) && expose);
    if (n > OSSE_HTTP_CORS_MAX)
        return osse_err_set(err, OSSE_EINVAL, "at most %d CORS origins", OSSE_HTTP_CORS_MAX);
    if (strlen(expose) > CORS_EXPOSE_MAX)
        return osse_err_set(err, OSSE_EINVAL, "the exposed headers are too long");
    for (size_t i = 0; i < n; i++) {
        int rc = osse_http_origin_check(origins[i], err);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < s->ncors; i++)
        free(s->cors[i]);
    free(s->cors_expose);
    for (size_t i = 0; i < n; i++)
        s->cors[i] = osse_strdup(origins[i]);
    s->ncors = n;
    s->cors_expose = osse_strdup(expose);
    /* The request headers a page may set, from the one table above. */
    size_t len = 0;
    s->cors_allow_headers[0] = '\0';
    for (int i = 0; i < H_COUNT; i++)
        if (hdr_names[i].page)
            len += (size_t)snprintf(s->cors_allow_headers + len, sizeof s->cors_allow_headers - len,
                                    "%s%s", len ? ", " : "", hdr_names[i].name);
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    osse_http_server_t *s = h->data;
    s->nhandles--;
    maybe_free_server(s);
}

void osse_http_close(osse_http_server_t *s)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    while (s->conns)
        conn_close(s->conns);
}
