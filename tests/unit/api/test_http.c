/* test_http.c: the HTTP/1.1 server over real sockets.
 *
 * The server runs on the main thread's loop with small limits; one client
 * thread drives every scenario with blocking sockets and then asks the loop
 * (through a uv_async) to close the server. The handler echoes the request as
 * JSON; /defer answers after a 50 ms timer, to check that answers keep
 * request order and that a vanished client is harmless. ASan/LSan runs catch
 * use-after-free and leaks on the close paths. */
#define _GNU_SOURCE
#include "common/alloc.h"
#include "api/http.h"
#include "tests/test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static osse_http_server_t *srv, *srv1; /* srv1: max_conns = 1 */
static uv_async_t done_async;
static int port, port1;

/* ---- server side (loop thread) ------------------------------------------ */

static json_t *slice_json(osse_slice_t s)
{
    return json_stringn(s.ptr, s.len);
}

static void echo(osse_http_req_t *req)
{
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(req->method));
    json_object_set_new(o, "path", slice_json(req->path));
    json_object_set_new(o, "query", slice_json(req->query));
    json_object_set_new(o, "body", slice_json(req->body));
    json_object_set_new(o, "auth", slice_json(req->authorization));
    json_object_set_new(o, "ctype", slice_json(req->content_type));
    json_object_set_new(o, "accept", slice_json(req->accept));
    json_object_set_new(o, "idem", slice_json(req->idempotency_key));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (req->query.len >= 4 && memcmp(req->query.ptr, "take", 4) == 0)
        osse_http_respond_take(req, 200, "application/json", "X-Take: 1\r\n", text, strlen(text));
    else {
        osse_http_respond(req, 200, "application/json", "X-Echo: 1\r\n", text, strlen(text));
        free(text);
    }
}

static void on_defer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_defer(uv_timer_t *t)
{
    echo(t->data);
    uv_close((uv_handle_t *)t, on_defer_closed);
}

static void handler(osse_http_req_t *req, void *ud)
{
    if (req->path.len == 6 && memcmp(req->path.ptr, "/defer", 6) == 0) {
        uv_timer_t *t = malloc(sizeof *t);
        uv_timer_init(ud, t);
        t->data = req;
        uv_timer_start(t, on_defer, 50, 0);
        return;
    }
    echo(req);
}

static void on_done(uv_async_t *a)
{
    osse_http_close(srv);
    osse_http_close(srv1);
    uv_close((uv_handle_t *)a, NULL);
}

/* ---- client side --------------------------------------------------------- */

typedef struct {
    int fd;
    char buf[65536];
    size_t len;
} client_t;

typedef struct {
    int status;
    char head[4096];
    char body[8192];
    size_t body_len;
    int close;
    json_t *json;
} resp_t;

static int dial_port(client_t *c, int port)
{
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    struct timeval tv = {.tv_sec = 3};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return connect(c->fd, (struct sockaddr *)&a, sizeof a);
}

static int dial(client_t *c)
{
    return dial_port(c, port);
}

static void send_str(client_t *c, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t k = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        off += (size_t)k;
    }
}

static int fill(client_t *c)
{
    if (c->len == sizeof c->buf)
        return -1;
    ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (k <= 0)
        return -1;
    c->len += (size_t)k;
    return 0;
}

/* Reads one response; 0 or -1 (EOF, timeout, garbage). */
static int read_resp(client_t *c, resp_t *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end)
            break;
        if (fill(c) < 0)
            return -1;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    if (hlen >= sizeof r->head)
        return -1;
    memcpy(r->head, c->buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    size_t blen = cl ? strtoul(cl + 18, NULL, 10) : 0;
    r->close = strcasestr(r->head, "\r\nConnection: close") != NULL;
    if (blen >= sizeof r->body)
        return -1;
    while (c->len < hlen + blen)
        if (fill(c) < 0)
            return -1;
    memcpy(r->body, c->buf + hlen, blen);
    r->body[blen] = '\0';
    r->body_len = blen;
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    r->json = json_loadb(r->body, blen, 0, NULL);
    return 0;
}

static const char *jstr(resp_t *r, const char *key)
{
    json_t *v = json_object_get(r->json, key);
    return v ? json_string_value(v) : NULL;
}

static const char *jerr_code(resp_t *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static void resp_done(resp_t *r)
{
    json_decref(r->json);
    r->json = NULL;
}

/* True when the server closed the connection (EOF or reset). */
static int closed_by_server(client_t *c)
{
    char b[256];
    for (;;) {
        ssize_t k = recv(c->fd, b, sizeof b, 0);
        if (k == 0)
            return 1;
        if (k < 0)
            return errno == ECONNRESET;
    }
}

static void hangup(client_t *c)
{
    close(c->fd);
}

/* ---- scenarios ------------------------------------------------------------ */

static client_t cl;

static void test_simple_get(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer abc  \r\n"
                  "ACCEPT: application/json\r\nidempotency-key: k1\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(!r.close);
    CHECK(strstr(r.head, "Content-Type: application/json\r\n") != NULL);
    CHECK(strstr(r.head, "X-Echo: 1\r\n") != NULL);
    CHECK(strstr(r.head, "Connection: keep-alive\r\n") != NULL);
    CHECK_EQ_STR(jstr(&r, "method"), "GET");
    CHECK_EQ_STR(jstr(&r, "path"), "/a/b");
    CHECK_EQ_STR(jstr(&r, "query"), "x=1&y=2");
    CHECK_EQ_STR(jstr(&r, "auth"), "Bearer abc");
    CHECK_EQ_STR(jstr(&r, "accept"), "application/json");
    CHECK_EQ_STR(jstr(&r, "idem"), "k1");
    CHECK_EQ_STR(jstr(&r, "ctype"), "");
    CHECK_EQ_STR(jstr(&r, "body"), "");
    resp_done(&r);
    hangup(&cl);
}

static void test_keep_alive(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    for (int i = 0; i < 5; i++) {
        char req[128], q[16];
        snprintf(req, sizeof req, "GET /k?%s%d HTTP/1.1\r\nHost: t\r\n\r\n", i == 2 ? "take" : "",
                 i);
        snprintf(q, sizeof q, "%s%d", i == 2 ? "take" : "", i);
        send_str(&cl, req);
        CHECK_EQ_INT(read_resp(&cl, &r), 0);
        CHECK_EQ_INT(r.status, 200);
        CHECK_EQ_STR(jstr(&r, "query"), q);
        if (i == 2)
            CHECK(strstr(r.head, "X-Take: 1\r\n") != NULL);
        resp_done(&r);
    }
    hangup(&cl);
}

static void test_pipelining(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    /* The first is answered 50 ms later; the others at once, yet must wait. */
    send_str(&cl, "GET /defer?n=1 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /echo?n=2 HTTP/1.1\r\nHost: t\r\n\r\n"
                  "POST /echo?n=3 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_STR(jstr(&r, "query"), "n=1");
    resp_done(&r);
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_STR(jstr(&r, "query"), "n=2");
    resp_done(&r);
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_STR(jstr(&r, "query"), "n=3");
    CHECK_EQ_STR(jstr(&r, "body"), "abc");
    CHECK_EQ_STR(jstr(&r, "method"), "POST");
    resp_done(&r);
    hangup(&cl);
}

/* More pipelined requests than max_pipeline (2): reading pauses and resumes. */
static void test_pipeline_limit(void)
{
    resp_t r;
    char all[2048] = "";
    CHECK_EQ_INT(dial(&cl), 0);
    for (int i = 0; i < 8; i++) {
        char one[128];
        snprintf(one, sizeof one, "GET /%s?i=%d HTTP/1.1\r\nHost: t\r\n\r\n",
                 i % 3 == 0 ? "defer" : "echo", i);
        strcat(all, one);
    }
    send_str(&cl, all);
    for (int i = 0; i < 8; i++) {
        char q[16];
        snprintf(q, sizeof q, "i=%d", i);
        CHECK_EQ_INT(read_resp(&cl, &r), 0);
        CHECK_EQ_STR(jstr(&r, "query"), q);
        resp_done(&r);
    }
    hangup(&cl);
}

static void test_post_bodies(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  "Content-Length: 12\r\n\r\n{\"a\":\"b\\\"c\"}");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(jstr(&r, "body"), "{\"a\":\"b\\\"c\"}");
    CHECK_EQ_STR(jstr(&r, "ctype"), "application/json");
    resp_done(&r);
    /* Chunked, in two writes split inside a chunk. */
    send_str(&cl, "POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    usleep(20000);
    send_str(&cl, "lo\r\n6\r\n world\r\n0\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(jstr(&r, "body"), "hello world");
    resp_done(&r);
    /* Expect: 100-continue gets the interim answer before the body is sent. */
    send_str(&cl,
             "PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 100);
    resp_done(&r);
    send_str(&cl, "ok");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(jstr(&r, "body"), "ok");
    CHECK_EQ_STR(jstr(&r, "method"), "PUT");
    resp_done(&r);
    hangup(&cl);
}

/* HEAD gets the GET head (with its Content-Length) and no body. */
static void test_head(void)
{
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "HEAD /h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    while (fill(&cl) == 0)
        ;
    cl.buf[cl.len < sizeof cl.buf ? cl.len : sizeof cl.buf - 1] = '\0';
    CHECK(strncmp(cl.buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    CHECK(strstr(cl.buf, "Content-Length: ") != NULL);
    CHECK(cl.len >= 4 && memcmp(cl.buf + cl.len - 4, "\r\n\r\n", 4) == 0);
    hangup(&cl);
}

static void test_body_too_large(void)
{
    resp_t r;
    char big[1500];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 1499\r\n\r\n");
    send_str(&cl, big);
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 413);
    CHECK(r.close);
    CHECK_EQ_STR(jerr_code(&r), "payload_too_large");
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);

    /* Chunked: no length to check up front, cut when the limit is passed. */
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "POST /p HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5dc\r\n");
    send_str(&cl, big);
    send_str(&cl, "\r\n0\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 413);
    CHECK_EQ_STR(jerr_code(&r), "payload_too_large");
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);
}

static void test_headers_too_large(void)
{
    resp_t r;
    char big[2000];
    memset(big, 'h', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
    send_str(&cl, big);
    send_str(&cl, "\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 431);
    CHECK_EQ_STR(jerr_code(&r), "headers_too_large");
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);
}

static void test_garbage(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "\x01\x02 garbage \"here\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 400);
    CHECK(r.close);
    CHECK(strstr(r.head, "Content-Type: application/json\r\n") != NULL);
    CHECK_EQ_STR(jerr_code(&r), "bad_request");
    json_t *e = json_object_get(r.json, "error");
    CHECK(json_is_string(json_object_get(e, "message")));
    CHECK(json_is_array(json_object_get(e, "details")));
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);

    /* A good request, then a bad one: the good answer still comes first. */
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /defer?ok HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nBad Header\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_STR(jstr(&r, "query"), "ok");
    resp_done(&r);
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 400);
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);
}

static void test_connection_close(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
                  "GET /never HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.close);
    CHECK_EQ_STR(jstr(&r, "path"), "/x");
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);

    /* HTTP/1.0 closes unless it asks for keep-alive. */
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /old HTTP/1.0\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.close);
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);

    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /old1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK(!r.close);
    resp_done(&r);
    send_str(&cl, "GET /old2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_STR(jstr(&r, "path"), "/old2");
    resp_done(&r);
    hangup(&cl);
}

static void test_header_timeout(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /slow HTTP/1.1\r\nHost: t\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0); /* within the 3 s receive timeout */
    CHECK_EQ_INT(r.status, 408);
    CHECK(r.close);
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);

    /* A connection that never sends anything is closed silently. */
    CHECK_EQ_INT(dial(&cl), 0);
    CHECK(closed_by_server(&cl));
    hangup(&cl);
}

static void test_idle_timeout(void)
{
    resp_t r;
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    resp_done(&r);
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    CHECK(closed_by_server(&cl)); /* idle_timeout_ms = 400 */
    gettimeofday(&t1, NULL);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    CHECK(ms >= 300 && ms < 2000);
    hangup(&cl);
}

static void test_client_gone(void)
{
    /* Deferred requests whose client vanishes: answered into the void. */
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /defer?gone1 HTTP/1.1\r\nHost: t\r\n\r\nGET /defer?gone2 HTTP/1.1\r\n"
                  "Host: t\r\n\r\nGET /echo HTTP/1.1\r\nHost: t\r\n\r\n");
    usleep(10000);
    struct linger lg = {1, 0}; /* reset, the harshest way to leave */
    setsockopt(cl.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    hangup(&cl);
    CHECK_EQ_INT(dial(&cl), 0);
    send_str(&cl, "GET /defer?gone3 HTTP/1.1\r\nHost: t\r\n\r\n");
    shutdown(cl.fd, SHUT_WR); /* half close: the answer still arrives */
    resp_t r;
    CHECK_EQ_INT(read_resp(&cl, &r), 0);
    CHECK_EQ_STR(jstr(&r, "query"), "gone3");
    resp_done(&r);
    CHECK(closed_by_server(&cl));
    hangup(&cl);
    usleep(100000); /* let the deferred answers fire against closed connections */
}

/* Over max_conns a connection is accepted and closed at once. */
static void test_max_conns(void)
{
    client_t *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    resp_t r;
    CHECK_EQ_INT(dial_port(a, port1), 0);
    send_str(a, "GET /one HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ_INT(read_resp(a, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    resp_done(&r);
    CHECK_EQ_INT(dial_port(b, port1), 0);
    CHECK(closed_by_server(b));
    hangup(b);
    hangup(a);
    usleep(50000); /* let the server see the first one go */
    CHECK_EQ_INT(dial_port(b, port1), 0);
    send_str(b, "GET /two HTTP/1.1\r\nHost: t\r\n\r\n");
    CHECK_EQ_INT(read_resp(b, &r), 0);
    CHECK_EQ_INT(r.status, 200);
    resp_done(&r);
    hangup(b);
    free(a);
    free(b);
}

static void test_error_body(void)
{
    osse_buf_t b;
    osse_buf_init(&b, 0);
    CHECK_EQ_INT(osse_http_error_body(&b, "bad_request", "quote \" and \\ \n", NULL), 0);
    CHECK_EQ_STR(b.ptr, "{\"error\":{\"code\":\"bad_request\",\"message\":\"quote \\\" and \\\\ "
                        "\\n\",\"details\":[]}}");
    osse_buf_reset(&b);
    CHECK_EQ_INT(osse_http_error_body(&b, "x", "\xff bad utf8", "[{\"at\":1}]"), 0);
    json_t *j = json_loads(b.ptr, 0, NULL);
    CHECK(j != NULL);
    CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(j, "error"), "details")), 1);
    json_decref(j);
    osse_buf_close(&b);
}

static void *client_main(void *arg)
{
    RUN(test_error_body);
    RUN(test_simple_get);
    RUN(test_keep_alive);
    RUN(test_pipelining);
    RUN(test_pipeline_limit);
    RUN(test_post_bodies);
    RUN(test_head);
    RUN(test_body_too_large);
    RUN(test_headers_too_large);
    RUN(test_garbage);
    RUN(test_connection_close);
    RUN(test_header_timeout);
    RUN(test_idle_timeout);
    RUN(test_client_gone);
    RUN(test_max_conns);
    uv_async_send(&done_async);
    return NULL;
}

int main(void)
{
    osse_alloc_setup_json();
    uv_loop_t loop;
    uv_loop_init(&loop);
    osse_http_limits_t lim;
    osse_http_limits_default(&lim);
    lim.max_body = 1000;
    lim.max_header = 1024;
    lim.header_timeout_ms = 300;
    lim.idle_timeout_ms = 400;
    lim.max_pipeline = 2;
    osse_err_t err;
    int rc = osse_http_open(&loop, "127.0.0.1", 0, &lim, handler, &loop, &srv, &err);
    CHECK_EQ_INT(rc, 0);
    if (rc)
        return 1;
    port = osse_http_port(srv);
    lim.max_conns = 1;
    CHECK_EQ_INT(osse_http_open(&loop, "127.0.0.1", 0, &lim, handler, &loop, &srv1, &err), 0);
    port1 = osse_http_port(srv1);
    CHECK(port > 0);
    uv_async_init(&loop, &done_async, on_done);
    pthread_t th;
    pthread_create(&th, NULL, client_main, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return TEST_EXIT();
}
