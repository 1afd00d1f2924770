/* test_fetch.c: the outbound HTTP client against a receiver on the same loop:
 * answers, transport errors, limits (body, timeout, per host, in all), no
 * redirects, and a clean close with calls in flight. */
#include "net/fetch.h"

#include "tests/test.h"
#include "tests/unit/net/receiver.h"

typedef struct got_s {
    int n;
    osse_fetch_result_t r[32];
    char body[32][256];
    char error[32][256];
    int order[32];
} got_t;

typedef struct tag_s {
    got_t *g;
    int i;
} tag_t;

static void on_result(void *ud, const osse_fetch_result_t *r)
{
    tag_t *t = ud;
    got_t *g = t->g;
    int k = g->n++;
    g->r[k] = *r;
    g->order[k] = t->i;
    snprintf(g->body[k], sizeof g->body[k], "%.*s", (int)r->body_len, r->body);
    snprintf(g->error[k], sizeof g->error[k], "%s", r->error ? r->error : "");
    g->r[k].body = g->body[k];
    g->r[k].error = r->error ? g->error[k] : NULL;
}

typedef struct want_s {
    got_t *g;
    int n;
} want_t;

static bool got_n(void *ud)
{
    want_t *w = ud;
    return w->g->n >= w->n;
}

static void wait_n(uv_loop_t *loop, got_t *g, int n, unsigned ms)
{
    want_t w = {g, n};
    run_until(loop, got_n, &w, ms);
}

/* Closes everything and checks that the loop closes: no handle left behind. */
static void teardown(uv_loop_t *loop, osse_fetch_t *f, rcv_t *a, rcv_t *b)
{
    osse_fetch_close(f);
    if (a)
        rcv_stop(a);
    if (b)
        rcv_stop(b);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
}

static void test_post_and_get(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    r.resp_body = "hello";
    osse_fetch_t *f;
    CHECK_EQ_INT(osse_fetch_open(&loop, NULL, &f, NULL), 0);
    char url[128];
    rcv_url(&r, "/hook", url, sizeof url);
    got_t g = {0};
    tag_t t0 = {&g, 0}, t1 = {&g, 1};
    const char *hdrs[] = {"X-Test: yes", "Content-Type: application/json", NULL};
    /* A body over 1 KiB: no "Expect: 100-continue" round trip is made. */
    char big[2000];
    memset(big, 'a', sizeof big);
    CHECK_EQ_INT(osse_fetch_post(f, url, hdrs, big, sizeof big, 2000, on_result, &t0, NULL), 0);
    CHECK_EQ_INT(g.n, 0); /* never inside the call */
    wait_n(&loop, &g, 1, 3000);
    CHECK_EQ_INT(osse_fetch_get(f, url, NULL, 2000, on_result, &t1, NULL), 0);
    wait_n(&loop, &g, 2, 3000);
    CHECK_EQ_INT(g.n, 2);
    CHECK_EQ_INT(g.r[0].code, 0);
    CHECK_EQ_INT(g.r[0].status_code, 200);
    CHECK_EQ_STR(g.r[0].body, "hello");
    CHECK(g.r[0].error == NULL);
    CHECK_EQ_INT(g.r[1].status_code, 200);
    CHECK_EQ_INT(r.nreqs, 2);
    if (r.nreqs == 2) {
        char v[64];
        CHECK(strncmp(r.reqs[0].head, "POST /hook HTTP/1.1\r\n", 21) == 0);
        CHECK(rcv_header(r.reqs[0].head, "X-Test", v, sizeof v));
        CHECK_EQ_STR(v, "yes");
        CHECK(!rcv_header(r.reqs[0].head, "Expect", v, sizeof v));
        CHECK_EQ_INT(r.reqs[0].body_len, sizeof big);
        CHECK(strncmp(r.reqs[1].head, "GET /hook HTTP/1.1\r\n", 20) == 0);
    }
    teardown(&loop, f, &r, NULL);
}

static void test_status_and_no_redirect(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    char url[128], loc[256];
    rcv_url(&r, "/", url, sizeof url);
    snprintf(loc, sizeof loc, "Location: http://127.0.0.1:%d/elsewhere\r\n", r.port);
    r.resp_extra = loc;
    rcv_set(&r, 2, (int[]){302, 500});
    osse_fetch_t *f;
    CHECK_EQ_INT(osse_fetch_open(&loop, NULL, &f, NULL), 0);
    got_t g = {0};
    tag_t t0 = {&g, 0}, t1 = {&g, 1};
    CHECK_EQ_INT(osse_fetch_post(f, url, NULL, "{}", 2, 2000, on_result, &t0, NULL), 0);
    wait_n(&loop, &g, 1, 3000);
    CHECK_EQ_INT(osse_fetch_post(f, url, NULL, "{}", 2, 2000, on_result, &t1, NULL), 0);
    wait_n(&loop, &g, 2, 3000);
    CHECK_EQ_INT(g.r[0].code, 0);
    CHECK_EQ_INT(g.r[0].status_code, 302); /* an answer, not followed */
    CHECK_EQ_INT(g.r[1].status_code, 500);
    CHECK_EQ_INT(r.nreqs, 2);
    teardown(&loop, f, &r, NULL);
}

static void test_bad_urls(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    osse_fetch_t *f;
    CHECK_EQ_INT(osse_fetch_open(&loop, NULL, &f, NULL), 0);
    got_t g = {0};
    tag_t t = {&g, 0};
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_fetch_post(f, "ftp://127.0.0.1/x", NULL, "", 0, 0, on_result, &t, &err),
                 OSSE_EINVAL);
    CHECK(strstr(err.msg, "http") != NULL);
    CHECK_EQ_INT(osse_fetch_get(f, "file:///etc/passwd", NULL, 0, on_result, &t, NULL),
                 OSSE_EINVAL);
    CHECK_EQ_INT(osse_fetch_get(f, "not a url", NULL, 0, on_result, &t, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(osse_fetch_get(f, "127.0.0.1:80/x", NULL, 0, on_result, &t, NULL), OSSE_EINVAL);
    run_for(&loop, 20);
    CHECK_EQ_INT(g.n, 0);
    teardown(&loop, f, NULL, NULL);
}

static void test_transport_errors(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A port nobody listens on: bind one, note it, close it. */
    rcv_t dead, silent, big;
    CHECK_EQ_INT(rcv_start(&dead, &loop), 0);
    rcv_stop(&dead);
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_EQ_INT(rcv_start(&silent, &loop), 0);
    rcv_set(&silent, 1, (int[]){0});
    CHECK_EQ_INT(rcv_start(&big, &loop), 0);
    char body[200];
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = 0;
    big.resp_body = body;
    osse_fetch_t *f;
    osse_fetch_opts_t o = {.max_body = 64};
    CHECK_EQ_INT(osse_fetch_open(&loop, &o, &f, NULL), 0);
    got_t g = {0};
    tag_t t0 = {&g, 0}, t1 = {&g, 1}, t2 = {&g, 2};
    char u0[128], u1[128], u2[128];
    rcv_url(&dead, "/", u0, sizeof u0);
    rcv_url(&silent, "/", u1, sizeof u1);
    rcv_url(&big, "/", u2, sizeof u2);
    uint64_t t = now_ms();
    CHECK_EQ_INT(osse_fetch_get(f, u0, NULL, 2000, on_result, &t0, NULL), 0);
    CHECK_EQ_INT(osse_fetch_post(f, u1, NULL, "{}", 2, 300, on_result, &t1, NULL), 0);
    CHECK_EQ_INT(osse_fetch_get(f, u2, NULL, 2000, on_result, &t2, NULL), 0);
    wait_n(&loop, &g, 3, 5000);
    CHECK_EQ_INT(g.n, 3);
    for (int k = 0; k < g.n; k++) {
        const osse_fetch_result_t *x = &g.r[k];
        CHECK_EQ_INT(x->status_code, 0);
        CHECK(x->error != NULL);
        switch (g.order[k]) {
        case 0: CHECK_EQ_INT(x->code, OSSE_EIO); break;
        case 1:
            CHECK_EQ_INT(x->code, OSSE_EIO);
            CHECK(x->elapsed_ms >= 250 && x->elapsed_ms < 2000);
            CHECK(strstr(x->error, "imeout") || strstr(x->error, "timed out"));
            break;
        case 2: CHECK_EQ_INT(x->code, OSSE_ETOOBIG); break;
        }
    }
    CHECK(now_ms() - t < 3000);
    teardown(&loop, f, &silent, &big);
}

static void test_per_host_and_global_caps(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t a, b;
    CHECK_EQ_INT(rcv_start(&a, &loop), 0);
    CHECK_EQ_INT(rcv_start(&b, &loop), 0);
    a.delay_ms = b.delay_ms = 60;
    osse_fetch_t *f;
    osse_fetch_opts_t o = {.max_per_host = 2, .max_total = 3};
    CHECK_EQ_INT(osse_fetch_open(&loop, &o, &f, NULL), 0);
    got_t g = {0};
    tag_t tags[12];
    char ua[128], ub[128];
    rcv_url(&a, "/", ua, sizeof ua);
    rcv_url(&b, "/", ub, sizeof ub);
    for (int i = 0; i < 12; i++) {
        tags[i] = (tag_t){&g, i};
        /* a gets 0..5 first, then b gets 6..11: b must still be served before
         * a's queue empties, since a may hold only 2 of the 3 slots. */
        CHECK_EQ_INT(
            osse_fetch_post(f, i < 6 ? ua : ub, NULL, "x", 1, 3000, on_result, &tags[i], NULL), 0);
    }
    CHECK_EQ_INT(osse_fetch_active(f), 3);
    CHECK_EQ_INT(osse_fetch_queued(f), 9);
    wait_n(&loop, &g, 12, 5000);
    CHECK_EQ_INT(g.n, 12);
    for (int k = 0; k < g.n; k++)
        CHECK_EQ_INT(g.r[k].status_code, 200);
    CHECK_EQ_INT(a.maxcur, 2);
    CHECK(b.maxcur >= 1 && b.maxcur <= 2);
    /* FIFO per host: a's calls finish in the order they were made, give or
     * take the two that run side by side. */
    int last_a = -1, first_b_pos = -1, last_a_pos = -1;
    for (int k = 0; k < g.n; k++) {
        int i = g.order[k];
        if (i < 6) {
            CHECK(i >= last_a - 1);
            if (i > last_a)
                last_a = i;
            last_a_pos = k;
        } else if (first_b_pos < 0) {
            first_b_pos = k;
        }
    }
    CHECK(first_b_pos < last_a_pos);
    CHECK_EQ_INT(osse_fetch_active(f), 0);
    CHECK_EQ_INT(osse_fetch_queued(f), 0);
    teardown(&loop, f, &a, &b);
}

/* Callbacks during close may try to start new calls: they are refused. */
static osse_fetch_t *close_f;
static int close_refused;

static void on_cancel(void *ud, const osse_fetch_result_t *r)
{
    on_result(ud, r);
    if (osse_fetch_get(close_f, "http://127.0.0.1:9/", NULL, 0, on_result, ud, NULL) ==
        OSSE_ECLOSED)
        close_refused++;
}

static void test_close_in_flight(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    rcv_set(&r, 1, (int[]){0});
    osse_fetch_t *f;
    osse_fetch_opts_t o = {.max_per_host = 2};
    CHECK_EQ_INT(osse_fetch_open(&loop, &o, &f, NULL), 0);
    close_f = f;
    got_t g = {0};
    tag_t tags[5];
    char url[128];
    rcv_url(&r, "/", url, sizeof url);
    for (int i = 0; i < 5; i++) {
        tags[i] = (tag_t){&g, i};
        CHECK_EQ_INT(osse_fetch_post(f, url, NULL, "x", 1, 10000, on_cancel, &tags[i], NULL), 0);
    }
    /* Two connected and silent, three queued. */
    run_for(&loop, 150);
    CHECK_EQ_INT(r.nreqs, 2);
    CHECK_EQ_INT(g.n, 0);
    osse_fetch_close(f);
    CHECK_EQ_INT(g.n, 5);
    CHECK_EQ_INT(close_refused, 5);
    for (int k = 0; k < g.n; k++) {
        CHECK_EQ_INT(g.r[k].code, OSSE_ECLOSED);
        CHECK_EQ_INT(g.r[k].status_code, 0);
    }
    rcv_stop(&r);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    RUN(test_post_and_get);
    RUN(test_status_and_no_redirect);
    RUN(test_bad_urls);
    RUN(test_transport_errors);
    RUN(test_per_host_and_global_caps);
    RUN(test_close_in_flight);
    return TEST_EXIT();
}
