/* test_hooks.c: webhook deliveries against receivers on the test's loop:
 * signatures recomputed independently, retries until a 2xx, giving up,
 * per-receiver caps, a silent receiver not delaying another, resuming a
 * persisted delivery, and the retry schedule as a pure function. */
#include "net/hooks.h"

#include <sodium.h>

#include "common/time.h"
#include "tests/test.h"
#include "tests/unit/net/receiver.h"

/* ---- an independent HMAC-SHA256 (RFC 2104 over libsodium's SHA-256) ---- */

static void hmac_hex(const unsigned char *key, size_t klen, const char *msg, size_t mlen,
                     char hex[65])
{
    unsigned char k[64] = {0}, ipad[64], opad[64], inner[32], mac[32];
    if (klen > 64)
        crypto_hash_sha256(k, key, klen);
    else
        memcpy(k, key, klen);
    for (int i = 0; i < 64; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, ipad, 64);
    crypto_hash_sha256_update(&st, (const unsigned char *)msg, mlen);
    crypto_hash_sha256_final(&st, inner);
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, opad, 64);
    crypto_hash_sha256_update(&st, inner, 32);
    crypto_hash_sha256_final(&st, mac);
    sodium_bin2hex(hex, 65, mac, 32);
}

/* Checks one received request as an agency would: headers, and a signature
 * over "<t>.<body>" with t close to now. */
static void check_signed(const rcv_req_t *q, const char *secret, const char *id, const char *body)
{
    char v[256], hex[65];
    CHECK(strncmp(q->head, "POST ", 5) == 0);
    CHECK(rcv_header(q->head, "Content-Type", v, sizeof v));
    CHECK_EQ_STR(v, "application/json");
    CHECK(rcv_header(q->head, "Osse-Delivery", v, sizeof v));
    CHECK_EQ_STR(v, id);
    CHECK_EQ_STR(q->body, body);
    CHECK(rcv_header(q->head, "Osse-Signature", v, sizeof v));
    long long t = 0;
    char v1[80] = {0};
    CHECK_EQ_INT(sscanf(v, "t=%lld,v1=%79s", &t, v1), 2);
    long long now = osse_time_real_ms() / 1000;
    CHECK(t <= now && t >= now - 5);
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%lld.%s", t, q->body);
    hmac_hex((const unsigned char *)secret, strlen(secret), msg, (size_t)n, hex);
    CHECK_EQ_STR(v1, hex);
}

/* ---- recording callbacks ------------------------------------------------- */

typedef struct outcome_s {
    char id[64];
    uint32_t attempts;
    int status;
    char error[256];
    uint64_t at_ms;
} outcome_t;

typedef struct rec_s {
    int ndelivered, nfailed, nprogress, ndropped;
    outcome_t delivered[64], failed[64], progress[64];
} rec_t;

static void on_delivered(void *ud, const osse_hooks_delivery_t *d, uint32_t attempts, int status)
{
    rec_t *r = ud;
    if (r->ndelivered < 64) {
        outcome_t *o = &r->delivered[r->ndelivered];
        snprintf(o->id, sizeof o->id, "%s", d->id);
        o->attempts = attempts;
        o->status = status;
        o->at_ms = now_ms();
    }
    r->ndelivered++;
}

static void on_failed(void *ud, const osse_hooks_delivery_t *d, uint32_t attempts, const char *e)
{
    rec_t *r = ud;
    if (r->nfailed < 64) {
        outcome_t *o = &r->failed[r->nfailed];
        snprintf(o->id, sizeof o->id, "%s", d->id);
        o->attempts = attempts;
        snprintf(o->error, sizeof o->error, "%s", e);
    }
    r->nfailed++;
}

static void on_progress(void *ud, const osse_hooks_delivery_t *d, const char *e)
{
    rec_t *r = ud;
    if (r->nprogress < 64) {
        outcome_t *o = &r->progress[r->nprogress];
        snprintf(o->id, sizeof o->id, "%s", d->id);
        o->attempts = d->attempts;
        o->at_ms = (uint64_t)d->next_at;
        snprintf(o->error, sizeof o->error, "%s", e);
    }
    r->nprogress++;
}

typedef struct until_s {
    rec_t *r;
    int n; /* delivered + failed */
} until_t;

static bool outcomes(void *ud)
{
    until_t *u = ud;
    return u->r->ndelivered + u->r->nfailed >= u->n;
}

static void wait_outcomes(uv_loop_t *loop, rec_t *r, int n, unsigned ms)
{
    until_t u = {r, n};
    run_until(loop, outcomes, &u, ms);
}

static osse_hooks_t *open_hooks(uv_loop_t *loop, rec_t *rec, const osse_hooks_opts_t *o)
{
    osse_hooks_cbs_t cbs = {rec, on_delivered, on_failed, on_progress, NULL};
    osse_hooks_t *h = NULL;
    osse_err_t err = {0};
    int rc = osse_hooks_open(loop, o, &cbs, &h, &err);
    CHECK_EQ_INT(rc, 0);
    return h;
}

static osse_hooks_delivery_t delivery(const char *id, const char *receiver, const char *url,
                                      const char *secret, const char *body)
{
    return (osse_hooks_delivery_t){.id = id,
                                   .receiver = receiver,
                                   .url = url,
                                   .secret = (const unsigned char *)secret,
                                   .secret_len = strlen(secret),
                                   .body = body,
                                   .body_len = strlen(body)};
}

static void teardown(uv_loop_t *loop, osse_hooks_t *h, rcv_t *a, rcv_t *b)
{
    osse_hooks_close(h);
    if (a)
        rcv_stop(a);
    if (b)
        rcv_stop(b);
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
}

/* ---- the pure pieces ------------------------------------------------------- */

static void test_hmac_reference(void)
{
    /* RFC 4231 test case 2, to trust the test's own HMAC. */
    char hex[65];
    const char *m = "what do ya want for nothing?";
    hmac_hex((const unsigned char *)"Jefe", 4, m, strlen(m), hex);
    CHECK_EQ_STR(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    char sig[OSSE_HOOKS_SIG_LEN];
    osse_hooks_sign((const unsigned char *)"s3cret", 6, 1764554400, "{\"a\":1}", 7, sig);
    hmac_hex((const unsigned char *)"s3cret", 6, "1764554400.{\"a\":1}", 18, hex);
    char want[OSSE_HOOKS_SIG_LEN];
    snprintf(want, sizeof want, "t=1764554400,v1=%s", hex);
    CHECK_EQ_STR(sig, want);
}

static void test_schedule(void)
{
    osse_hooks_sched_t s = osse_hooks_sched_defaults(NULL);
    CHECK_EQ_INT(s.base_ms, 1000);
    CHECK_EQ_INT(s.cap_ms, 3600000);
    CHECK_EQ_INT(s.min_span_ms, 86400000);
    uint32_t max = osse_hooks_max_attempts(&s);
    CHECK(max > 14 && max < 60);
    /* About one second first. */
    CHECK(osse_hooks_retry_delay(&s, 1, 0) >= 800);
    CHECK(osse_hooks_retry_delay(&s, 1, UINT32_MAX) < 1200);
    int64_t min_span = 0, max_span = 0;
    for (uint32_t n = 1; n < max; n++) {
        int64_t lo = osse_hooks_retry_delay(&s, n, 0);
        int64_t hi = osse_hooks_retry_delay(&s, n, UINT32_MAX);
        double d = 1000.0 * (double)(1ull << (n - 1 < 40 ? n - 1 : 40));
        /* Jitter within [0.8, 1.2) of the doubled delay, capped at an hour. */
        CHECK(lo <= hi);
        CHECK(hi <= 3600000);
        CHECK((double)lo >= (d * 0.8 < 3600000 ? d * 0.8 - 1 : 3600000));
        CHECK((double)hi <= d * 1.2);
        for (int k = 0; k < 50; k++) {
            int64_t x = osse_hooks_retry_delay(&s, n, randombytes_random());
            CHECK(x >= lo && x <= hi);
        }
        /* Monotone: the next wait is never shorter, whatever the jitter. */
        CHECK(osse_hooks_retry_delay(&s, n + 1, 0) >= hi);
        min_span += lo;
        max_span += hi;
    }
    CHECK_EQ_INT(osse_hooks_retry_delay(&s, max, 12345), 3600000);
    CHECK_EQ_INT(osse_hooks_retry_delay(&s, 1000, 0), 3600000);
    /* At least a day even with the shortest jitter, and not needlessly more
     * attempts than that. */
    CHECK(min_span >= 86400000);
    CHECK(min_span - osse_hooks_retry_delay(&s, max - 1, 0) < 86400000);
    CHECK(max_span < 2 * 86400000);
    /* The test knob shrinks everything alike. */
    osse_hooks_sched_t t = {.base_ms = 10, .cap_ms = 40, .min_span_ms = 100};
    CHECK_EQ_INT(osse_hooks_retry_delay(&t, 1, 0), 8);
    CHECK_EQ_INT(osse_hooks_retry_delay(&t, 9, 0), 40);
    uint32_t tm = osse_hooks_max_attempts(&t);
    int64_t span = 0;
    for (uint32_t n = 1; n < tm; n++)
        span += osse_hooks_retry_delay(&t, n, 0);
    CHECK(span >= 100);
}

/* ---- over HTTP ----------------------------------------------------------- */

static void test_signed_delivery(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    rec_t rec = {0};
    osse_hooks_t *h = open_hooks(&loop, &rec, NULL);
    char url[128];
    rcv_url(&r, "/hooks", url, sizeof url);
    const char *body = "{\"id\":\"d1\",\"type\":\"TaskOpened\",\"task\":{},\"request\":{}}";
    osse_hooks_delivery_t d = delivery("d1", "dbd", url, "whsec-abc", body);
    CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), OSSE_EEXISTS);
    CHECK_EQ_INT(rec.ndelivered, 0); /* never inside enqueue */
    CHECK_EQ_INT(osse_hooks_pending(h), 1);
    wait_outcomes(&loop, &rec, 1, 3000);
    CHECK_EQ_INT(rec.ndelivered, 1);
    CHECK_EQ_INT(rec.nfailed, 0);
    CHECK_EQ_INT(rec.nprogress, 0);
    CHECK_EQ_STR(rec.delivered[0].id, "d1");
    CHECK_EQ_INT(rec.delivered[0].attempts, 1);
    CHECK_EQ_INT(rec.delivered[0].status, 200);
    CHECK_EQ_INT(r.nreqs, 1);
    if (r.nreqs == 1)
        check_signed(&r.reqs[0], "whsec-abc", "d1", body);
    CHECK_EQ_INT(osse_hooks_pending(h), 0);
    teardown(&loop, h, &r, NULL);
}

static void test_retry_until_ok(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    rcv_set(&r, 3, (int[]){500, 500, 200});
    rec_t rec = {0};
    osse_hooks_opts_t o = {.sched = {.base_ms = 30, .cap_ms = 1000}};
    osse_hooks_t *h = open_hooks(&loop, &rec, &o);
    char url[128];
    rcv_url(&r, "/", url, sizeof url);
    osse_hooks_delivery_t d = delivery("d-retry", "dbd", url, "k", "{\"n\":1}");
    uint64_t t0 = now_ms();
    CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    wait_outcomes(&loop, &rec, 1, 5000);
    run_for(&loop, 150); /* nothing more may arrive */
    CHECK_EQ_INT(rec.ndelivered, 1);
    CHECK_EQ_INT(rec.nfailed, 0);
    CHECK_EQ_INT(rec.delivered[0].attempts, 3);
    CHECK_EQ_INT(rec.delivered[0].status, 200);
    CHECK_EQ_INT(r.nreqs, 3);
    for (int i = 0; i < r.nreqs && i < 3; i++)
        check_signed(&r.reqs[i], "k", "d-retry", "{\"n\":1}");
    /* Two failed attempts were reported for persisting, with growing waits. */
    CHECK_EQ_INT(rec.nprogress, 2);
    CHECK_EQ_INT(rec.progress[0].attempts, 1);
    CHECK_EQ_INT(rec.progress[1].attempts, 2);
    CHECK_EQ_STR(rec.progress[0].error, "HTTP 500");
    CHECK(rec.progress[1].at_ms > rec.progress[0].at_ms);
    if (r.nreqs == 3) {
        uint64_t g1 = r.reqs[1].at_ms - r.reqs[0].at_ms, g2 = r.reqs[2].at_ms - r.reqs[1].at_ms;
        CHECK(g1 >= 20 && g1 < 500); /* 30 ms +-20% */
        CHECK(g2 >= 45 && g2 < 500); /* 60 ms +-20% */
    }
    CHECK(now_ms() - t0 < 2000);
    teardown(&loop, h, &r, NULL);
}

static void test_give_up(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    rcv_set(&r, 1, (int[]){503});
    rec_t rec = {0};
    osse_hooks_opts_t o = {.sched = {.base_ms = 5, .cap_ms = 20, .min_span_ms = 60}};
    uint32_t max = osse_hooks_max_attempts(&o.sched);
    osse_hooks_t *h = open_hooks(&loop, &rec, &o);
    char url[128];
    rcv_url(&r, "/", url, sizeof url);
    osse_hooks_delivery_t d = delivery("d-dead", "dbd", url, "k", "{}");
    CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    /* A URL that can never work fails at once, without retries. */
    osse_hooks_delivery_t bad = delivery("d-ftp", "dbd", "ftp://127.0.0.1/", "k", "{}");
    CHECK_EQ_INT(osse_hooks_enqueue(h, &bad, NULL), 0);
    wait_outcomes(&loop, &rec, 2, 5000);
    run_for(&loop, 100);
    CHECK_EQ_INT(rec.ndelivered, 0);
    CHECK_EQ_INT(rec.nfailed, 2);
    for (int i = 0; i < rec.nfailed && i < 2; i++) {
        if (strcmp(rec.failed[i].id, "d-dead") == 0) {
            CHECK_EQ_INT(rec.failed[i].attempts, max);
            CHECK_EQ_STR(rec.failed[i].error, "HTTP 503");
        } else {
            CHECK_EQ_STR(rec.failed[i].id, "d-ftp");
            CHECK_EQ_INT(rec.failed[i].attempts, 1);
        }
    }
    CHECK_EQ_INT(r.nreqs, (int)max);
    CHECK_EQ_INT(rec.nprogress, (int)max - 1);
    CHECK_EQ_INT(osse_hooks_pending(h), 0);
    teardown(&loop, h, &r, NULL);
}

static void test_per_receiver_cap(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    r.delay_ms = 50;
    rec_t rec = {0};
    osse_hooks_t *h = open_hooks(&loop, &rec, NULL);
    char url[128];
    rcv_url(&r, "/", url, sizeof url);
    char ids[12][16];
    for (int i = 0; i < 12; i++) {
        snprintf(ids[i], sizeof ids[i], "c%d", i);
        osse_hooks_delivery_t d = delivery(ids[i], "dbd", url, "k", "{}");
        CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    }
    run_for(&loop, 20);
    CHECK_EQ_INT(osse_hooks_inflight(h), 4);
    wait_outcomes(&loop, &rec, 12, 5000);
    CHECK_EQ_INT(rec.ndelivered, 12);
    CHECK_EQ_INT(r.maxcur, 4);
    CHECK_EQ_INT(r.nreqs, 12);
    /* Per receiver, deliveries start in the order they were enqueued. */
    for (int i = 0; i < r.nreqs && i < 12; i++) {
        char v[32];
        rcv_header(r.reqs[i].head, "Osse-Delivery", v, sizeof v);
        int k = atoi(v + 1);
        CHECK(k >= i - 3 && k <= i + 3);
    }
    teardown(&loop, h, &r, NULL);
}

/* A receiver that accepts and never answers holds its own four slots and
 * nothing else: another receiver's deliveries go through promptly. Closing
 * with the silent attempts in flight is clean (ASan, uv_loop_close). */
static void test_slow_receiver_isolated(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t slow, fast;
    CHECK_EQ_INT(rcv_start(&slow, &loop), 0);
    CHECK_EQ_INT(rcv_start(&fast, &loop), 0);
    rcv_set(&slow, 1, (int[]){0});
    rec_t rec = {0};
    osse_hooks_opts_t o = {.timeout_ms = 1500, .sched = {.base_ms = 50}};
    osse_hooks_t *h = open_hooks(&loop, &rec, &o);
    char us[128], uf[128];
    rcv_url(&slow, "/", us, sizeof us);
    rcv_url(&fast, "/", uf, sizeof uf);
    /* Both agencies live on one host here, which is the hard case. */
    char ids[40][16];
    for (int i = 0; i < 10; i++) {
        snprintf(ids[i], sizeof ids[i], "s%d", i);
        osse_hooks_delivery_t d = delivery(ids[i], "slow-agency", us, "k", "{}");
        CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    }
    run_for(&loop, 100);
    CHECK_EQ_INT(slow.nreqs, 4);
    uint64_t t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        snprintf(ids[10 + i], sizeof ids[10 + i], "f%d", i);
        osse_hooks_delivery_t d = delivery(ids[10 + i], "fast-agency", uf, "k", "{}");
        CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    }
    wait_outcomes(&loop, &rec, 20, 3000);
    uint64_t took = now_ms() - t0;
    fprintf(stderr, "  20 deliveries to a fast receiver took %llu ms beside a silent one\n",
            (unsigned long long)took);
    CHECK_EQ_INT(rec.ndelivered, 20);
    CHECK(took < 200);
    CHECK_EQ_INT(rec.nfailed, 0);
    CHECK_EQ_INT(slow.maxcur, 4);
    CHECK_EQ_INT(fast.maxcur <= 4, 1);
    /* The silent receiver's attempts time out and are rescheduled. */
    run_for(&loop, 1700);
    CHECK(rec.nprogress >= 4);
    for (int i = 0; i < rec.nprogress && i < 4; i++)
        CHECK(strstr(rec.progress[i].error, "imeout") ||
              strstr(rec.progress[i].error, "timed out"));
    CHECK(slow.nreqs > 4);
    CHECK_EQ_INT(slow.maxcur, 4);
    CHECK_EQ_INT(osse_hooks_pending(h), 10);
    CHECK(osse_hooks_inflight(h) > 0);
    int nd = rec.ndelivered, nf = rec.nfailed;
    teardown(&loop, h, &slow, &fast);
    /* Closing reports nothing: the caller's records stay pending. */
    CHECK_EQ_INT(rec.ndelivered, nd);
    CHECK_EQ_INT(rec.nfailed, nf);
}

/* After a restart the caller re-enqueues what it persisted: the attempt count
 * and next_at carry on instead of starting over. Also cancel. */
static void test_resume_and_cancel(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    rec_t rec = {0};
    osse_hooks_t *h = open_hooks(&loop, &rec, NULL);
    char url[128];
    rcv_url(&r, "/", url, sizeof url);
    osse_hooks_delivery_t d = delivery("d-persisted", "dbd", url, "k", "{}");
    d.attempts = 5;
    d.next_at = osse_time_real_ms() + 150;
    uint64_t t0 = now_ms();
    CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    osse_hooks_delivery_t c = delivery("d-cancelled", "dbd", url, "k", "{}");
    c.next_at = osse_time_real_ms() + 50;
    CHECK_EQ_INT(osse_hooks_enqueue(h, &c, NULL), 0);
    CHECK_EQ_INT(osse_hooks_cancel(h, "d-cancelled"), 0);
    CHECK_EQ_INT(osse_hooks_cancel(h, "d-cancelled"), OSSE_ENOTFOUND);
    CHECK_EQ_INT(osse_hooks_pending(h), 1);
    /* The id is free again once cancelled. */
    CHECK_EQ_INT(osse_hooks_enqueue(h, &c, NULL), 0);
    CHECK_EQ_INT(osse_hooks_cancel(h, "d-cancelled"), 0);
    wait_outcomes(&loop, &rec, 1, 3000);
    run_for(&loop, 100);
    CHECK_EQ_INT(rec.ndelivered, 1);
    CHECK_EQ_STR(rec.delivered[0].id, "d-persisted");
    CHECK_EQ_INT(rec.delivered[0].attempts, 6);
    CHECK(rec.delivered[0].at_ms - t0 >= 140);
    CHECK_EQ_INT(r.nreqs, 1);
    CHECK_EQ_INT(osse_hooks_pending(h), 0);
    teardown(&loop, h, &r, NULL);
}

static void count_dropped(void *ud, const osse_hooks_delivery_t *d)
{
    rec_t *rec = ud;
    if (strcmp(d->receiver, "subscription:s1") == 0)
        rec->ndropped++;
}

/* A receiver that is gone: every one of its pending deliveries is handed to
 * the caller once and dropped; another receiver's go on. */
static void test_cancel_receiver(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    rcv_t r;
    CHECK_EQ_INT(rcv_start(&r, &loop), 0);
    rec_t rec = {0};
    osse_hooks_t *h = open_hooks(&loop, &rec, NULL);
    char url[128];
    rcv_url(&r, "/", url, sizeof url);
    const char *ids[] = {"d-1", "d-2", "d-3"};
    for (int i = 0; i < 3; i++) {
        osse_hooks_delivery_t d = delivery(ids[i], "subscription:s1", url, "k", "{}");
        d.next_at = osse_time_real_ms() + 100;
        CHECK_EQ_INT(osse_hooks_enqueue(h, &d, NULL), 0);
    }
    osse_hooks_delivery_t o = delivery("d-other", "subscription:s2", url, "k", "{}");
    o.next_at = osse_time_real_ms() + 100;
    CHECK_EQ_INT(osse_hooks_enqueue(h, &o, NULL), 0);
    CHECK_EQ_INT(osse_hooks_cancel_receiver(h, "subscription:s1", count_dropped, &rec), 0);
    CHECK_EQ_INT(rec.ndropped, 3);
    CHECK_EQ_INT(osse_hooks_pending(h), 1);
    CHECK_EQ_INT(osse_hooks_cancel_receiver(h, "subscription:none", count_dropped, &rec), 0);
    wait_outcomes(&loop, &rec, 1, 3000);
    run_for(&loop, 200);
    CHECK_EQ_INT(rec.ndelivered, 1);
    CHECK_EQ_STR(rec.delivered[0].id, "d-other");
    CHECK_EQ_INT(r.nreqs, 1);
    CHECK_EQ_INT(osse_hooks_pending(h), 0);
    teardown(&loop, h, &r, NULL);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    RUN(test_hmac_reference);
    RUN(test_schedule);
    RUN(test_signed_delivery);
    RUN(test_retry_until_ok);
    RUN(test_give_up);
    RUN(test_per_receiver_cap);
    RUN(test_slow_receiver_isolated);
    RUN(test_resume_and_cancel);
    RUN(test_cancel_receiver);
    return TEST_EXIT();
}
