/* receiver.h: a tiny HTTP/1.1 receiver on 127.0.0.1:0 for the fetch and
 * hooks tests, playing an agency on the test's own loop.
 *
 * It answers each request with the next status of a script (the last one
 * repeats; 0 means never answer and keep the connection open), after an
 * optional delay, with "Connection: close". It keeps every request it saw
 * (head and body) and counts how many were being answered at once, which is
 * what a per-receiver concurrency cap limits. Parsing is the least that curl's
 * requests need: the head up to CRLFCRLF and a Content-Length body. */
#ifndef OSSE_TESTS_RECEIVER_H
#define OSSE_TESTS_RECEIVER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#define RCV_MAX_REQS 256

typedef struct rcv_req_s {
    char *head; /* request line and headers, NUL-terminated */
    char *body;
    size_t body_len;
    uint64_t at_ms; /* uv_hrtime in ms when complete */
} rcv_req_t;

typedef struct rcv_conn_s rcv_conn_t;

typedef struct rcv_s {
    uv_loop_t *loop;
    uv_tcp_t srv;
    int port;
    int statuses[16]; /* the script; 0 = stay silent */
    int nstatuses;
    unsigned delay_ms;      /* before each answer */
    const char *resp_body;  /* NULL = "ok" */
    const char *resp_extra; /* extra header lines, each ending in \r\n */
    rcv_req_t reqs[RCV_MAX_REQS];
    int nreqs;
    int cur, maxcur; /* requests being answered now, and the most at once */
    int nconns;
    rcv_conn_t *conns;
    bool closed;
} rcv_t;

struct rcv_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    rcv_t *r;
    char *buf;
    size_t len, cap;
    char *out;
    bool counted; /* contributes to r->cur */
    bool done;    /* request complete: ignore further bytes */
    bool closing;
    int handles;
    rcv_conn_t *next, *prev;
};

static void rcv__conn_closed(uv_handle_t *h)
{
    rcv_conn_t *c = h->data;
    if (--c->handles == 0) {
        free(c->buf);
        free(c->out);
        free(c);
    }
}

static void rcv__conn_close(rcv_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    rcv_t *r = c->r;
    if (c->counted) {
        c->counted = false;
        r->cur--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        r->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->tcp, rcv__conn_closed);
    uv_close((uv_handle_t *)&c->timer, rcv__conn_closed);
}

static void rcv__written(uv_write_t *w, int status)
{
    rcv__conn_close(w->data);
}

static void rcv__answer(rcv_conn_t *c, int status)
{
    rcv_t *r = c->r;
    const char *body = r->resp_body ? r->resp_body : "ok";
    size_t n = strlen(body) + 256 + (r->resp_extra ? strlen(r->resp_extra) : 0);
    c->out = malloc(n);
    int k =
        snprintf(c->out, n, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n%s",
                 status, strlen(body), r->resp_extra ? r->resp_extra : "", body);
    uv_buf_t b = uv_buf_init(c->out, (unsigned)k);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, rcv__written) != 0)
        rcv__conn_close(c);
}

static void rcv__delayed(uv_timer_t *t)
{
    rcv_conn_t *c = t->data;
    rcv__answer(c, (int)(intptr_t)c->wr.data);
}

static void rcv__alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    rcv_conn_t *c = h->data;
    if (c->cap - c->len < 4096) {
        c->cap = c->cap * 2 + 8192;
        c->buf = realloc(c->buf, c->cap);
    }
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len - 1));
}

static size_t rcv__content_length(const char *head)
{
    for (const char *p = head; (p = strchr(p, '\n')); p++) {
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
            return (size_t)strtoul(p + 16, NULL, 10);
    }
    return 0;
}

static void rcv__read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    rcv_conn_t *c = s->data;
    rcv_t *r = c->r;
    if (n < 0) {
        rcv__conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->buf[c->len] = 0;
    if (c->done)
        return;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end)
        return;
    size_t hlen = (size_t)(end - c->buf) + 4;
    size_t blen = rcv__content_length(c->buf);
    if (c->len < hlen + blen)
        return;
    c->done = true;
    if (r->nreqs < RCV_MAX_REQS) {
        rcv_req_t *q = &r->reqs[r->nreqs];
        q->head = strndup(c->buf, hlen);
        q->body = strndup(c->buf + hlen, blen);
        q->body_len = blen;
        q->at_ms = uv_hrtime() / 1000000u;
    }
    int i = r->nreqs++;
    int st = r->nstatuses ? r->statuses[i < r->nstatuses ? i : r->nstatuses - 1] : 200;
    c->counted = true;
    if (++r->cur > r->maxcur)
        r->maxcur = r->cur;
    if (st == 0)
        return; /* silent: hold the connection until the client gives up */
    if (r->delay_ms) {
        c->wr.data = (void *)(intptr_t)st;
        uv_timer_start(&c->timer, rcv__delayed, r->delay_ms, 0);
    } else {
        rcv__answer(c, st);
    }
}

static void rcv__accept(uv_stream_t *srv, int status)
{
    rcv_t *r = srv->data;
    if (status < 0)
        return;
    rcv_conn_t *c = calloc(1, sizeof *c);
    c->r = r;
    uv_tcp_init(r->loop, &c->tcp);
    uv_timer_init(r->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = r->conns;
    if (r->conns)
        r->conns->prev = c;
    r->conns = c;
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) != 0) {
        rcv__conn_close(c);
        return;
    }
    r->nconns++;
    uv_read_start((uv_stream_t *)&c->tcp, rcv__alloc, rcv__read);
}

/* Starts r listening on 127.0.0.1 with an ephemeral port (r->port). */
static int rcv_start(rcv_t *r, uv_loop_t *loop)
{
    memset(r, 0, sizeof *r);
    r->loop = loop;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &r->srv);
    r->srv.data = r;
    if (uv_tcp_bind(&r->srv, (const struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&r->srv, 128, rcv__accept) != 0)
        return -1;
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&r->srv, (struct sockaddr *)&got, &len);
    r->port = ntohs(got.sin_port);
    return 0;
}

static void rcv_set(rcv_t *r, int n, const int *statuses)
{
    r->nstatuses = n;
    for (int i = 0; i < n && i < 16; i++)
        r->statuses[i] = statuses[i];
}

/* Writes "http://127.0.0.1:<port><path>" into out. */
static void rcv_url(const rcv_t *r, const char *path, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d%s", r->port, path);
}

/* Stops listening and drops every connection; run the loop afterwards. */
static void rcv_stop(rcv_t *r)
{
    if (r->closed)
        return;
    r->closed = true;
    uv_close((uv_handle_t *)&r->srv, NULL);
    while (r->conns)
        rcv__conn_close(r->conns);
    for (int i = 0; i < r->nreqs && i < RCV_MAX_REQS; i++) {
        free(r->reqs[i].head);
        free(r->reqs[i].body);
    }
}

/* Copies the value of header name in head into out ("" if absent). */
static bool rcv_header(const char *head, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    out[0] = 0;
    for (const char *p = head; (p = strchr(p, '\n')); p++) {
        if (strncasecmp(p + 1, name, nl) == 0 && p[1 + nl] == ':') {
            const char *v = p + 2 + nl;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= n)
                k = n - 1;
            memcpy(out, v, k);
            out[k] = 0;
            return true;
        }
    }
    return false;
}

/* ---- loop helpers ---------------------------------------------------------- */

static void rcv__tick(uv_timer_t *t) {}

/* Runs loop until pred(ud) holds or ms pass; returns pred's last value. */
static bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *ud, unsigned ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, rcv__tick, 5, 5);
    uint64_t end = uv_hrtime() / 1000000u + ms;
    bool ok;
    while (!(ok = pred(ud)) && uv_hrtime() / 1000000u < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool rcv__never(void *ud)
{
    return false;
}

/* Runs loop for ms. */
static void run_for(uv_loop_t *loop, unsigned ms)
{
    run_until(loop, rcv__never, NULL, ms);
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

#endif
