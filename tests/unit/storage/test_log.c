/* test_log.c: the event log on a real RocksDB in a temporary folder: group
 * commit callbacks in order with the durable seq, reopen and scan back, the
 * side records, and a clean loop close. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "storage/event.h"
#include "storage/log.h"
#include "tests/test.h"

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static char tmpl[64];

static const char *mkdir_tmp(void)
{
    strcpy(tmpl, "/tmp/osse-test-log-XXXXXX");
    return mkdtemp(tmpl);
}

/* ---- commit ordering ---- */

#define NBATCH 300

typedef struct ctx_s {
    osse_log_t *log;
    int next_expected; /* index of the batch whose callback should come next */
    int bad_order;
    int bad_durable;
    uint64_t want_durable[NBATCH];
    int chained; /* a callback that commits another batch */
} ctx_t;

typedef struct cb_arg_s {
    ctx_t *ctx;
    int idx;
} cb_arg_t;

static cb_arg_t args[NBATCH + 1];

static void on_commit(void *ud, int status)
{
    cb_arg_t *a = ud;
    ctx_t *c = a->ctx;
    if (status != 0 || a->idx != c->next_expected)
        c->bad_order++;
    if (a->idx < NBATCH && osse_log_durable_seq(c->log) != c->want_durable[a->idx])
        c->bad_durable++;
    c->next_expected++;
}

static void make_event_bytes(uint64_t seq, const char *stream, uint32_t ver, osse_buf_t *b)
{
    osse_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.seq = seq;
    ev.stream = (char *)stream;
    ev.version = ver;
    ev.type = OSSE_EV_StepOpened;
    ev.at = 1764554400000 + (int64_t)seq;
    ev.actor_kind = "system";
    ev.actor_id = "";
    ev.data = json_pack("{s:I, s:s}", "n", (json_int_t)seq, "step", "review");
    osse_buf_init(b, 0);
    int rc = osse_event_encode(&ev, b);
    CHECK_EQ_INT(rc, 0);
    json_decref(ev.data);
}

static int count_scan(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    uint64_t *expect = ud;
    osse_event_t ev;
    if (seq != *expect)
        return -100;
    if (osse_event_decode(bytes, len, &ev, NULL) != 0)
        return -101;
    int bad = ev.seq != seq;
    osse_event_clear(&ev);
    if (bad)
        return -102;
    (*expect)++;
    return 0;
}

static int stop_at(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    int *n = ud;
    return ++*n == 3 ? 42 : 0;
}

typedef struct kvs_s {
    int n;
    char keys[8][32];
} kvs_t;

static int kv_collect(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    kvs_t *k = ud;
    if (k->n < 8 && klen < 32) {
        memcpy(k->keys[k->n], key, klen);
        k->keys[k->n][klen] = '\0';
    }
    k->n++;
    return 0;
}

static void test_commit_and_reopen(void)
{
    const char *dir = mkdir_tmp();
    CHECK(dir != NULL);
    osse_err_t err;
    osse_log_t *log = NULL;
    uv_loop_t loop;
    ctx_t *c = calloc(1, sizeof *c);
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_last_seq(log), 0);
    CHECK_EQ_INT(osse_log_durable_seq(log), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    c->log = log;

    /* Commit NBATCH batches back to back from the loop thread: 1-3 events each
     * (every 10th batch is empty, with only side records), so the writer
     * merges many of them into one synced write. */
    uint64_t seq = 0;
    for (int i = 0; i < NBATCH; i++) {
        osse_batch_t *b = osse_batch_new();
        int nev = i % 10 == 0 ? 0 : 1 + i % 3;
        for (int e = 0; e < nev; e++) {
            osse_buf_t eb;
            char stream[32];
            snprintf(stream, sizeof stream, "request/%d", i);
            make_event_bytes(seq + 1, stream, (uint32_t)e + 1, &eb);
            CHECK_EQ_INT(osse_batch_event(b, log, seq + 1, stream, (uint32_t)e + 1, eb.ptr, eb.len),
                         0);
            seq++;
            osse_buf_close(&eb);
        }
        char key[32], val[32];
        snprintf(key, sizeof key, "idem/%04d", i);
        snprintf(val, sizeof val, "v%d", i);
        CHECK_EQ_INT(osse_batch_put(b, key, strlen(key), val, strlen(val)), 0);
        CHECK_EQ_INT(osse_batch_count(b), nev);
        CHECK_EQ_INT(osse_log_last_seq(log), seq);
        c->want_durable[i] = seq;
        args[i].ctx = c;
        args[i].idx = i;
        osse_log_commit(log, b, on_commit, &args[i]);
    }
    /* Nothing is durable before the loop has run the completions. */
    CHECK_EQ_INT(osse_log_durable_seq(log), 0);
    while (c->next_expected < NBATCH)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(c->next_expected, NBATCH);
    CHECK_EQ_INT(c->bad_order, 0);
    CHECK_EQ_INT(c->bad_durable, 0);
    CHECK_EQ_INT(osse_log_durable_seq(log), seq);
    /* Group commit merged them: far fewer synced writes than batches. */
    uint64_t syncs = osse_log_sync_count(log);
    fprintf(stderr, "  %d batches in %llu synced writes\n", NBATCH, (unsigned long long)syncs);
    CHECK(syncs >= 1 && syncs < NBATCH);

    /* Deletes, and a batch left pending when stop is called: stop must wait
     * for it and run its callback. */
    osse_batch_t *b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_delete(b, "idem/0001", 9), 0);
    CHECK_EQ_INT(osse_batch_delete(b, "idem/0002", 9), 0);
    args[NBATCH].ctx = c;
    args[NBATCH].idx = NBATCH;
    osse_log_commit(log, b, on_commit, &args[NBATCH]);
    osse_log_stop(log);
    CHECK_EQ_INT(c->next_expected, NBATCH + 1);
    osse_log_stop(log); /* a second stop is a no-op */
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_log_close(log);

    /* Reopen: the last seq is found, everything scans back in order. */
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_last_seq(log), seq);
    CHECK_EQ_INT(osse_log_durable_seq(log), seq);
    uint64_t expect = 1;
    CHECK_EQ_INT(osse_log_scan(log, 1, count_scan, &expect, &err), 0);
    CHECK_EQ_INT(expect, seq + 1);
    expect = seq - 4;
    CHECK_EQ_INT(osse_log_scan(log, seq - 4, count_scan, &expect, &err), 0);
    CHECK_EQ_INT(expect, seq + 1);
    expect = seq + 1;
    CHECK_EQ_INT(osse_log_scan(log, seq + 1, count_scan, &expect, &err), 0);
    CHECK_EQ_INT(expect, seq + 1);
    int stops = 0;
    CHECK_EQ_INT(osse_log_scan(log, 0, stop_at, &stops, &err), 42);
    CHECK_EQ_INT(stops, 3);

    /* Point reads. */
    void *v = NULL;
    size_t vlen = 0;
    CHECK_EQ_INT(osse_log_get(log, 5, &v, &vlen, &err), 0);
    osse_event_t ev;
    CHECK_EQ_INT(osse_event_decode(v, vlen, &ev, &err), 0);
    CHECK_EQ_INT(ev.seq, 5);
    CHECK_EQ_INT(ev.type, OSSE_EV_StepOpened);
    osse_event_clear(&ev);
    free(v);
    CHECK_EQ_INT(osse_log_get(log, seq + 1, &v, &vlen, &err), OSSE_ENOTFOUND);
    CHECK(v == NULL);

    /* Side records: the two deleted ones are gone, the rest are there. */
    CHECK_EQ_INT(osse_log_kv_get(log, "idem/0003", 9, &v, &vlen, &err), 0);
    CHECK(vlen == 2 && memcmp(v, "v3", 2) == 0);
    free(v);
    CHECK_EQ_INT(osse_log_kv_get(log, "idem/0001", 9, &v, &vlen, &err), OSSE_ENOTFOUND);
    kvs_t kv = {0};
    CHECK_EQ_INT(osse_log_kv_scan(log, "idem/000", 8, kv_collect, &kv, &err), 0);
    CHECK_EQ_INT(kv.n, 8); /* 0000..0009 less 0001 and 0002 */
    CHECK_EQ_STR(kv.keys[0], "idem/0000");
    CHECK_EQ_STR(kv.keys[1], "idem/0003");
    kv.n = 0;
    CHECK_EQ_INT(osse_log_kv_scan(log, "", 0, kv_collect, &kv, &err), 0);
    CHECK_EQ_INT(kv.n, NBATCH - 2);
    kv.n = 0;
    CHECK_EQ_INT(osse_log_kv_scan(log, "nope", 4, kv_collect, &kv, &err), 0);
    CHECK_EQ_INT(kv.n, 0);
    osse_log_close(log);

    /* A second start/stop on the reopened log continues the seq. */
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    b = osse_batch_new();
    osse_buf_t eb;
    make_event_bytes(seq + 1, "request/x", 1, &eb);
    CHECK_EQ_INT(osse_batch_event(b, log, seq + 1, "request/x", 1, eb.ptr, eb.len), 0);
    osse_buf_close(&eb);
    c->next_expected = NBATCH;
    c->want_durable[NBATCH - 1] = 0;
    args[NBATCH].idx = NBATCH;
    osse_log_commit(log, b, on_commit, &args[NBATCH]);
    while (c->next_expected == NBATCH)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_EQ_INT(osse_log_durable_seq(log), seq + 1);
    osse_log_stop(log);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_log_close(log);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_last_seq(log), seq + 1);
    osse_log_close(log);

    free(c);
    rm_rf(dir);
}

/* A callback that commits another batch: stop must drain the chain. */
typedef struct chain_s {
    osse_log_t *log;
    int left;
    int ran;
} chain_t;

static void on_chain(void *ud, int status)
{
    chain_t *ch = ud;
    ch->ran++;
    if (ch->left-- > 0) {
        osse_batch_t *b = osse_batch_new();
        osse_batch_put(b, "chain", 5, &ch->ran, sizeof ch->ran);
        osse_log_commit(ch->log, b, on_chain, ch);
    }
}

static void test_stop_drains_chain(void)
{
    const char *dir = mkdir_tmp();
    osse_err_t err;
    osse_log_t *log;
    uv_loop_t loop;
    chain_t ch = {0};
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    ch.log = log;
    ch.left = 5;
    osse_log_commit(log, osse_batch_new(), on_chain, &ch); /* an empty batch too */
    osse_log_stop(log);
    CHECK_EQ_INT(ch.ran, 6);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    void *v;
    size_t vlen;
    CHECK_EQ_INT(osse_log_kv_get(log, "chain", 5, &v, &vlen, &err), 0);
    CHECK(vlen == sizeof(int) && *(int *)v == 5);
    free(v);
    osse_log_close(log);
    osse_log_close(NULL);
    osse_log_stop(NULL);
    osse_batch_free(NULL);
    rm_rf(dir);
}

static void test_open_error(void)
{
    osse_err_t err;
    osse_log_t *log = (osse_log_t *)1;
    CHECK_EQ_INT(osse_log_open("/proc/osse-no-such/db", &log, &err), OSSE_EIO);
    CHECK(log == NULL);
    CHECK(strstr(err.msg, "rocksdb") != NULL);

    /* A second open of the same folder fails on RocksDB's lock. */
    const char *dir = mkdir_tmp();
    osse_log_t *a;
    CHECK_EQ_INT(osse_log_open(dir, &a, &err), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), OSSE_EIO);
    osse_log_close(a);
    rm_rf(dir);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_commit_and_reopen);
    RUN(test_stop_drains_chain);
    RUN(test_open_error);
    return TEST_EXIT();
}
