/* fuzz_http.c: the HTTP request path of api/http.c, over a real socket.
 *
 * The front door faces the internet, so whatever bytes a client sends, the
 * server must answer or close, never crash, hang or keep a connection (or
 * memory) after the client has gone. One server runs for the whole process on
 * a private loop, on 127.0.0.1:0 with small limits so the 400/408/413/431
 * paths and the pipeline back-pressure are within the fuzzer's reach. Each
 * input is the byte stream of one client connection: written in full (as the
 * socket accepts it), then the write side is shut down, and everything the
 * server sends is read until it closes. Requests whose path starts with
 * "/defer" are answered later and in reverse order, as a handler waiting for
 * a durable commit would, to exercise in-order delivery of late answers.
 *
 * Invariants checked after each input: the client saw EOF within a bounded
 * time; everything it received starts with "HTTP/1.1 "; and, once the client
 * socket is closed, every server-side handle of that connection is closed
 * within a bound (else abort: a connection that outlives its client is a
 * leak an attacker can repeat). Hangs are impossible: a watchdog timer bounds
 * every loop run. */
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "api/http.h"

#define CLIENT_BUDGET_MS 1000 /* to get EOF from the server */
#define CLOSE_BUDGET_MS 3000  /* for the server to drop its side afterwards */
#define MAX_DEFERRED 256

static uv_loop_t loop;
static uv_timer_t watchdog;
static osse_http_server_t *srv;
static int port;
static size_t baseline_handles;
static bool timed_out;

static osse_http_req_t *deferred[MAX_DEFERRED];
static size_t ndeferred;

static void answer(osse_http_req_t *req)
{
    const char *extra = req->idempotency_key.len ? "X-Idem: seen\r\n" : NULL;
    osse_http_respond(req, 200, "application/octet-stream", extra, req->body.ptr, req->body.len);
}

static void on_request(osse_http_req_t *req, void *ud)
{
    if (req->path.len >= 6 && memcmp(req->path.ptr, "/defer", 6) == 0 && ndeferred < MAX_DEFERRED) {
        deferred[ndeferred++] = req;
        return;
    }
    answer(req);
}

static void answer_deferred(void)
{
    while (ndeferred)
        answer(deferred[--ndeferred]);
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (*(size_t *)arg)++;
}

static size_t handles(void)
{
    size_t n = 0;
    uv_walk(&loop, count_handle, &n);
    return n;
}

static void on_watchdog(uv_timer_t *t)
{
    timed_out = true;
}

static void init(void)
{
    osse_http_limits_t lim;
    osse_err_t err;
    osse_http_limits_default(&lim);
    lim.max_body = 4096;
    lim.max_header = 1024;
    lim.header_timeout_ms = 50;
    lim.idle_timeout_ms = 200;
    lim.max_conns = 16;
    lim.max_pipeline = 4;
    if (uv_loop_init(&loop) != 0)
        abort();
    if (uv_timer_init(&loop, &watchdog) != 0)
        abort();
    if (osse_http_open(&loop, "127.0.0.1", 0, &lim, on_request, NULL, &srv, &err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    port = osse_http_port(srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    baseline_handles = handles();
}

typedef struct client_s {
    uv_poll_t poll;
    int fd;
    const uint8_t *data;
    size_t size, off;
    bool wr_done, eof;
    size_t nread;
    char head[9];
} client_t;

static void client_update(client_t *c);

static void on_client(uv_poll_t *p, int status, int events)
{
    client_t *c = p->data;
    if (!c->wr_done) {
        while (c->off < c->size) {
            ssize_t n = send(c->fd, c->data + c->off, c->size - c->off, MSG_NOSIGNAL);
            if (n > 0) {
                c->off += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                break;
            c->off = c->size; /* reset or closed by the server: stop writing */
            break;
        }
        if (c->off == c->size) {
            shutdown(c->fd, SHUT_WR);
            c->wr_done = true;
        }
    }
    for (;;) {
        char buf[16384];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            for (ssize_t i = 0; i < n && c->nread < sizeof c->head; i++)
                c->head[c->nread++] = buf[i];
            if (c->nread < sizeof c->head)
                continue;
            c->nread = sizeof c->head; /* saturate: only the head is kept */
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        c->eof = true; /* EOF, or a reset */
        break;
    }
    client_update(c);
}

static void client_update(client_t *c)
{
    if (c->eof) {
        uv_poll_stop(&c->poll);
        return;
    }
    uv_poll_start(&c->poll, c->wr_done ? UV_READABLE : UV_READABLE | UV_WRITABLE, on_client);
}

/* Runs the loop until done() or the watchdog fires; answers deferred
 * requests after every turn, as a handler that commits first would. */
static bool run_until(bool (*done)(void *), void *arg, uint64_t budget_ms)
{
    timed_out = false;
    uv_timer_start(&watchdog, on_watchdog, budget_ms, 0);
    while (!done(arg) && !timed_out) {
        uv_run(&loop, UV_RUN_ONCE);
        answer_deferred();
    }
    uv_timer_stop(&watchdog);
    return done(arg);
}

static bool client_eof(void *arg)
{
    return ((client_t *)arg)->eof;
}

static bool server_idle(void *arg)
{
    return ndeferred == 0 && handles() == baseline_handles;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv)
        init();
    client_t c = {.data = data, .size = size};
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0)
        abort();
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c.fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        abort();
    if (uv_poll_init_socket(&loop, &c.poll, c.fd) != 0)
        abort();
    c.poll.data = &c;
    client_update(&c);
    /* The server may legitimately keep a slow input for its timeouts; what
     * matters is that nothing survives the client, checked below. */
    (void)run_until(client_eof, &c, CLIENT_BUDGET_MS);
    if (c.nread && memcmp(c.head, "HTTP/1.1 ", c.nread < 9 ? c.nread : 9) != 0) {
        fprintf(stderr, "fuzz_http: answer does not start with HTTP/1.1: %.9s\n", c.head);
        abort();
    }
    uv_poll_stop(&c.poll);
    uv_close((uv_handle_t *)&c.poll, NULL);
    close(c.fd);
    if (!run_until(server_idle, NULL, CLOSE_BUDGET_MS)) {
        fprintf(stderr, "fuzz_http: a server connection outlived its client by %d ms\n",
                CLOSE_BUDGET_MS);
        abort();
    }
    return 0;
}
