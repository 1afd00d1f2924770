/* test_log.c: the event log on a real RocksDB in a temporary folder: group
 * commit callbacks in order with the durable seq, reopen and scan back, the
 * side records and their range reads, the bytes RocksDB holds, and a clean
 * loop close. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <rocksdb/c.h>
#include <stdbool.h>
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

/* Commits one batch and runs the loop until its callback. */
typedef struct one_s {
    int status, ran;
} one_t;

static void on_one(void *ud, int status)
{
    one_t *o = ud;
    o->status = status;
    o->ran++;
}

static void commit_one(osse_log_t *log, uv_loop_t *loop, osse_batch_t *b)
{
    one_t o = {0};
    osse_log_commit(log, b, on_one, &o);
    while (!o.ran)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_EQ_INT(o.status, 0);
}

typedef struct range_s {
    int n;
    char keys[16][16];
    size_t lens[16];
    int stop_after; /* 0: never */
} range_t;

static int range_collect(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    range_t *r = ud;
    (void)val;
    (void)vlen;
    if (r->n < 16 && klen <= 16) {
        memcpy(r->keys[r->n], key, klen);
        r->lens[r->n] = klen;
    }
    r->n++;
    return r->stop_after && r->n == r->stop_after ? 7 : 0;
}

static bool range_key(const range_t *r, int i, const char *key, size_t klen)
{
    return i < r->n && r->lens[i] == klen && memcmp(r->keys[i], key, klen) == 0;
}

/* osse_log_kv_range: from a start key, below an optional end, at most a
 * limit, in the order of the keys' bytes (a key before its extensions, 0xff
 * after everything printable), never into the events, and reading what a
 * durable write has just written. */
static void test_kv_range(void)
{
    const char *dir = mkdir_tmp();
    osse_err_t err;
    osse_log_t *log;
    uv_loop_t loop;
    range_t r = {0};
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    osse_batch_t *b = osse_batch_new();
    osse_buf_t eb;
    make_event_bytes(1, "request/x", 1, &eb);
    CHECK_EQ_INT(osse_batch_event(b, log, 1, "request/x", 1, eb.ptr, eb.len), 0);
    osse_buf_close(&eb);
    /* Put in no order; one deleted in the same batch, one in the next. */
    static const char *keys[] = {"v/c", "v/a", "w/a", "v/b", "v/ba", "v/gone", "v/later"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK_EQ_INT(osse_batch_put(b, keys[i], strlen(keys[i]), "x", 1), 0);
    CHECK_EQ_INT(osse_batch_put(b, "v/b\0", 4, "z", 1), 0);
    CHECK_EQ_INT(osse_batch_put(b, "v/\xff", 3, "f", 1), 0);
    CHECK_EQ_INT(osse_batch_delete(b, "v/gone", 6), 0);
    commit_one(log, &loop, b);

    /* Read right after the callback: the write is there. */
    CHECK_EQ_INT(osse_log_kv_range(log, "v/", 2, "v0", 2, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 7);
    CHECK(range_key(&r, 0, "v/a", 3));
    CHECK(range_key(&r, 1, "v/b", 3));
    CHECK(range_key(&r, 2, "v/b\0", 4));
    CHECK(range_key(&r, 3, "v/ba", 4));
    CHECK(range_key(&r, 4, "v/c", 3));
    CHECK(range_key(&r, 5, "v/later", 7));
    CHECK(range_key(&r, 6, "v/\xff", 3));

    /* A cursor: resume after "v/b" (the last key seen, a 0 byte added). */
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "v/b\0", 4, "v0", 2, 2, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK(range_key(&r, 0, "v/b\0", 4));
    CHECK(range_key(&r, 1, "v/ba", 4));
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "v/ba\0", 5, "v0", 2, 2, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK(range_key(&r, 0, "v/c", 3));
    CHECK(range_key(&r, 1, "v/later", 7));

    /* The end is exclusive; no end runs to the last side record and never
     * into the events (whose keys sort before the side records'). */
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "v/b", 3, "v/c", 3, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 3);
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "v/later", 7, NULL, 0, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK(range_key(&r, 2, "w/a", 3));
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "", 0, NULL, 0, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 8);
    CHECK(range_key(&r, 0, "v/a", 3));
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "x", 1, NULL, 0, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 0);
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "v/c", 3, "v/c", 3, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 0);

    /* The callback stops it, and its value comes back. */
    r = (range_t){.stop_after = 2};
    CHECK_EQ_INT(osse_log_kv_range(log, "", 0, NULL, 0, 0, range_collect, &r, &err), 7);
    CHECK_EQ_INT(r.n, 2);

    /* A delete in a later batch is seen by the next read. */
    b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_delete(b, "v/later", 7), 0);
    commit_one(log, &loop, b);
    r = (range_t){0};
    CHECK_EQ_INT(osse_log_kv_range(log, "v/c", 3, "v0", 2, 0, range_collect, &r, &err), 0);
    CHECK_EQ_INT(r.n, 2);
    CHECK(range_key(&r, 1, "v/\xff", 3));

    osse_log_stop(log);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_log_close(log);
    rm_rf(dir);
}

/* The bytes on disk: what the log writes is RocksDB's 'E' be64(seq) ->
 * event bytes and 'K' key -> value, nothing else (data folders written
 * before the backend table are read as they are). */
static void test_layout(void)
{
    const char *dir = mkdir_tmp();
    osse_err_t err;
    osse_log_t *log;
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    osse_batch_t *b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_event(b, log, 1, "request/x", 1, "one", 3), 0);
    CHECK_EQ_INT(osse_batch_put(b, "idem", 4, "val", 3), 0);
    CHECK_EQ_INT(osse_batch_put(b, "gone", 4, "val", 3), 0);
    /* The side records of a write go in key order (rocks.c), and the ops of
     * one key keep theirs: the last one stands. */
    CHECK_EQ_INT(osse_batch_put(b, "redo", 4, "one", 3), 0);
    CHECK_EQ_INT(osse_batch_delete(b, "redo", 4), 0);
    CHECK_EQ_INT(osse_batch_put(b, "redo", 4, "two", 3), 0);
    CHECK_EQ_INT(osse_batch_put(b, "drop", 4, "one", 3), 0);
    CHECK_EQ_INT(osse_batch_delete(b, "drop", 4), 0);
    commit_one(log, &loop, b);
    b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_event(b, log, 2, "request/x", 2, "", 0), 0);
    CHECK_EQ_INT(osse_batch_event(b, log, 3, NULL, 0, "three", 5), 0);
    CHECK_EQ_INT(osse_batch_delete(b, "gone", 4), 0);
    CHECK_EQ_INT(osse_batch_put(b, "redo", 4, "three", 5), 0);
    commit_one(log, &loop, b);
    osse_log_stop(log);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_log_close(log);

    static const struct {
        const char *k;
        size_t klen;
        const char *v;
        size_t vlen;
    } want[] = {
        {"E\0\0\0\0\0\0\0\1", 9, "one", 3},
        {"E\0\0\0\0\0\0\0\2", 9, "", 0},
        {"E\0\0\0\0\0\0\0\3", 9, "three", 5},
        {"Kidem", 5, "val", 3},
        {"Kredo", 5, "three", 5},
    };
    rocksdb_options_t *o = rocksdb_options_create();
    char *e = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only(o, dir, 0, &e);
    CHECK(e == NULL);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it), n++) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen), *v = rocksdb_iter_value(it, &vlen);
        CHECK(n < sizeof want / sizeof *want);
        if (n >= sizeof want / sizeof *want)
            break;
        CHECK(klen == want[n].klen && memcmp(k, want[n].k, klen) == 0);
        CHECK(vlen == want[n].vlen && memcmp(v, want[n].v, vlen) == 0);
    }
    CHECK_EQ_INT(n, sizeof want / sizeof *want);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    rm_rf(dir);
}

/* ---- pending key records (log.h) ---- */

typedef struct {
    char got[8][48];
    int n;
} pend_t;

static int pend_one(void *ud, const char *name, const char *id)
{
    pend_t *p = ud;
    if (p->n < 8)
        snprintf(p->got[p->n++], sizeof p->got[0], "%s:%s", name, id);
    return 0;
}

static void on_done(void *ud, int status)
{
    *(int *)ud = status + 1;
}

static void commit_wait(osse_log_t *log, uv_loop_t *loop, osse_batch_t *b)
{
    int done = 0;
    osse_log_commit(log, b, on_done, &done);
    while (!done)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_EQ_INT(done, 1);
}

/* One record per write of keys, listing them, named by the first; a
 * record of the versions before (empty value) lists its name; a batch
 * deletes a record by its name; a value that does not split into ids is
 * an error, not ids. */
static void test_pending_records(void)
{
    const char *dir = mkdir_tmp();
    osse_log_t *log = NULL;
    osse_err_t err = {0};
    uv_loop_t loop;
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    const char *ids[] = {"r-a", "r-b", "r-c"};
    CHECK_EQ_INT(osse_log_keys_pending(log, ids, 3, &err), 0);
    osse_batch_t *b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_put(b, OSSE_LOG_KEY_PENDING "r-old", 9, "", 0), 0);
    commit_wait(log, &loop, b);

    pend_t p = {0};
    CHECK_EQ_INT(osse_log_keys_pending_scan(log, pend_one, &p, &err), 0);
    CHECK_EQ_INT(p.n, 4);
    CHECK_EQ_STR(p.got[0], "r-a:r-a");
    CHECK_EQ_STR(p.got[1], "r-a:r-b");
    CHECK_EQ_STR(p.got[2], "r-a:r-c");
    CHECK_EQ_STR(p.got[3], "r-old:r-old");

    b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_keys_pending_done(b, "r-a"), 0);
    commit_wait(log, &loop, b);
    memset(&p, 0, sizeof p);
    CHECK_EQ_INT(osse_log_keys_pending_scan(log, pend_one, &p, &err), 0);
    CHECK_EQ_INT(p.n, 1);
    CHECK_EQ_STR(p.got[0], "r-old:r-old");

    b = osse_batch_new();
    CHECK_EQ_INT(osse_batch_put(b, OSSE_LOG_KEY_PENDING "r-bad", 9, "r-x", 3), 0);
    commit_wait(log, &loop, b);
    memset(&p, 0, sizeof p);
    CHECK_EQ_INT(osse_log_keys_pending_scan(log, pend_one, &p, &err), OSSE_EIO);
    osse_log_stop(log);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_log_close(log);
    rm_rf(dir);
}

/* A batch whose callback ran is reused by osse_log_batch_new, empty: what
 * it held before is not written again, and a batch grown past
 * OSSE_LOG_SPARE_BYTES is not kept. */
static void test_batches_reused(void)
{
    const char *dir = mkdir_tmp();
    osse_err_t err;
    osse_log_t *log;
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    osse_batch_t *a = osse_log_batch_new(log);
    CHECK_EQ_INT(osse_batch_put(a, "x/1", 3, "a", 1), 0);
    osse_buf_t eb;
    make_event_bytes(1, "request/r", 1, &eb);
    CHECK_EQ_INT(osse_batch_event(a, log, 1, "request/r", 1, eb.ptr, eb.len), 0);
    osse_buf_close(&eb);
    commit_wait(log, &loop, a);
    /* x/1 changes in a batch of its own... */
    osse_batch_t *b = osse_batch_new();
    CHECK(b != a);
    CHECK_EQ_INT(osse_batch_put(b, "x/1", 3, "b", 1), 0);
    commit_wait(log, &loop, b);
    /* ...then the first batch comes back empty, and b after it. */
    osse_batch_t *r = osse_log_batch_new(log);
    CHECK(r == b || r == a);
    CHECK_EQ_INT(osse_batch_count(r), 0);
    osse_batch_t *r2 = osse_log_batch_new(log);
    CHECK(r2 != r && (r2 == a || r2 == b));
    CHECK_EQ_INT(osse_batch_put(r2, "x/2", 3, "c", 1), 0);
    commit_wait(log, &loop, r2);
    osse_batch_free(r);
    /* A batch grown past the bound is freed, not kept. */
    osse_batch_t *big = osse_log_batch_new(log);
    CHECK(big == r2);
    char *huge = calloc(1, OSSE_LOG_SPARE_BYTES + 1);
    CHECK_EQ_INT(osse_batch_put(big, "x/3", 3, huge, OSSE_LOG_SPARE_BYTES + 1), 0);
    free(huge);
    commit_wait(log, &loop, big);
    osse_batch_t *fresh = osse_log_batch_new(log);
    CHECK_EQ_INT(osse_batch_count(fresh), 0);
    osse_batch_free(fresh);
    osse_log_stop(log);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    void *v;
    size_t vlen;
    CHECK_EQ_INT(osse_log_kv_get(log, "x/1", 3, &v, &vlen, &err), 0);
    CHECK(vlen == 1 && *(char *)v == 'b'); /* not put again by the reused batch */
    free(v);
    CHECK_EQ_INT(osse_log_kv_get(log, "x/2", 3, &v, &vlen, &err), 0);
    CHECK(vlen == 1 && *(char *)v == 'c');
    free(v);
    CHECK_EQ_INT(osse_log_last_seq(log), 1);
    osse_log_close(log);
    rm_rf(dir);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_commit_and_reopen);
    RUN(test_stop_drains_chain);
    RUN(test_batches_reused);
    RUN(test_open_error);
    RUN(test_kv_range);
    RUN(test_layout);
    RUN(test_pending_records);
    return TEST_EXIT();
}
