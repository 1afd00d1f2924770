/* bench_log.c: the baseline for event append throughput on this machine.
 *
 *   bench_log DIR [seconds] [submissions_per_batch...]
 *
 * Phase 1 writes synced RocksDB WriteBatches straight through the C API from
 * one writer thread, for each batch size (default 1 16 64 256 submissions per
 * synced write). A "submission" is what one POST /v1/requests stores: a
 * RequestSubmitted event with a ~10-field form, three StepOpened events,
 * their stream index entries and an idempotency record. Phase 2 pushes the
 * same submissions through osse_log_commit from a libuv loop, keeping many
 * commits in flight so group commit merges them, which is what the engine
 * will see. Each phase runs `seconds` (default 3) in a fresh folder under DIR,
 * removed afterwards.
 *
 * Why: the first numbers say what the disk allows (synced writes per second,
 * and how batching amortizes them); the second says how close osse's log gets
 * to that ceiling. A bench, never part of the test run. */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <uv.h>

#include "storage/event.h"
#include "storage/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, char *e)
{
    fprintf(stderr, "bench_log: %s: %s\n", what, e ? e : "failed");
    exit(1);
}

/* ---- realistic events ---- */

typedef struct sub_s {
    osse_buf_t ev[4]; /* encoded: RequestSubmitted, 3 x StepOpened */
    char stream[64];  /* request/<n> */
    char idem[64];    /* idempotency key */
} sub_t;

/* Encodes submission n, whose first event gets seq. */
static void make_submission(uint64_t n, uint64_t seq, sub_t *s)
{
    osse_event_t ev;
    char rid[32];
    snprintf(rid, sizeof rid, "RST-2026-%06llu", (unsigned long long)(n % 1000000));
    snprintf(s->stream, sizeof s->stream, "request/%016llx", (unsigned long long)n);
    snprintf(s->idem, sizeof s->idem, "idem/biz-portal/%016llx", (unsigned long long)n * 7919);
    memset(&ev, 0, sizeof ev);
    ev.stream = s->stream;
    ev.at = 1764554400000 + (int64_t)n;
    ev.actor_kind = "portal";
    ev.actor_id = "biz-portal";
    for (int i = 0; i < 4; i++) {
        ev.seq = seq + (uint64_t)i;
        ev.version = (uint32_t)i + 1;
        if (i == 0) {
            ev.type = OSSE_EV_RequestSubmitted;
            ev.data = json_pack(
                "{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:b, s:s, s:[s,s]}}",
                "workflow", "restaurant-license", "workflow_version", "3", "number", rid, "form",
                "applicant_name", "Somchai Jaidee", "business_name", "Krua Thai Kitchen", "tax_id",
                "0105561234567", "address", "99/1 Sukhumvit Road, Khlong Toei, Bangkok", "phone",
                "+66812345678", "seats", (json_int_t)48, "area_sqm", 120.5, "serves_alcohol", 0,
                "opening_date", "2026-12-01", "documents", "doc-1", "doc-2");
        } else {
            static const char *steps[] = {"health-inspection", "fire-safety", "zoning-review"};
            ev.type = OSSE_EV_StepOpened;
            ev.data = json_pack("{s:s, s:s, s:s}", "step", steps[i - 1], "agency",
                                i == 1   ? "health"
                                : i == 2 ? "fire"
                                         : "district",
                                "due", "2026-12-15T17:00:00.000Z");
        }
        osse_buf_init(&s->ev[i], 0);
        if (!ev.data || osse_event_encode(&ev, &s->ev[i]) != 0)
            die("encode", NULL);
        json_decref(ev.data);
    }
}

static void free_submission(sub_t *s)
{
    for (int i = 0; i < 4; i++)
        osse_buf_close(&s->ev[i]);
}

static void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* Adds a submission to a RocksDB batch with the log's key layout. */
static void raw_add(rocksdb_writebatch_t *wb, const sub_t *s, uint64_t seq)
{
    for (int i = 0; i < 4; i++) {
        uint8_t ek[9], sk[80], sv[8];
        size_t sl = strlen(s->stream);
        ek[0] = 'E';
        be64_put(ek + 1, seq + (uint64_t)i);
        rocksdb_writebatch_put(wb, (char *)ek, sizeof ek, s->ev[i].ptr, s->ev[i].len);
        sk[0] = 'S';
        memcpy(sk + 1, s->stream, sl + 1);
        sk[sl + 2] = sk[sl + 3] = sk[sl + 4] = 0;
        sk[sl + 5] = (uint8_t)(i + 1);
        be64_put(sv, seq + (uint64_t)i);
        rocksdb_writebatch_put(wb, (char *)sk, sl + 6, (char *)sv, sizeof sv);
    }
    char ik[80];
    int il = snprintf(ik, sizeof ik, "K%s", s->idem);
    rocksdb_writebatch_put(wb, ik, (size_t)il, s->stream, strlen(s->stream));
}

/* ---- latencies ---- */

typedef struct lat_s {
    double *v;
    size_t n, cap;
} lat_t;

static void lat_add(lat_t *l, double x)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v)
            die("realloc", NULL);
    }
    l->v[l->n++] = x;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double lat_pct(lat_t *l, double p)
{
    if (!l->n)
        return 0;
    qsort(l->v, l->n, sizeof *l->v, cmp_d);
    size_t i = (size_t)(p * (double)(l->n - 1));
    return l->v[i];
}

/* ---- phase 1: raw synced RocksDB writes ---- */

static rocksdb_options_t *bench_options(void)
{
    /* The same options as storage/log.c, so that the two phases compare. */
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_write_buffer_size(o, 64u << 20);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    return o;
}

static void bench_raw(const char *dir, double seconds, int per_batch)
{
    char path[4096];
    char *e = NULL;
    snprintf(path, sizeof path, "%s/raw-%d", dir, per_batch);
    rocksdb_options_t *o = bench_options();
    rocksdb_t *db = rocksdb_open(o, path, &e);
    if (e)
        die("open", e);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    lat_t lat = {0};
    uint64_t n = 0, seq = 1, batches = 0, bytes = 0;
    double t0 = now_s(), t;
    do {
        rocksdb_writebatch_clear(wb);
        for (int i = 0; i < per_batch; i++) {
            sub_t s;
            make_submission(n, seq, &s);
            raw_add(wb, &s, seq);
            for (int k = 0; k < 4; k++)
                bytes += s.ev[k].len;
            free_submission(&s);
            n++;
            seq += 4;
        }
        double w0 = now_s();
        rocksdb_write(db, wo, wb, &e);
        t = now_s();
        if (e)
            die("write", e);
        lat_add(&lat, (t - w0) * 1e6);
        batches++;
    } while (t - t0 < seconds);
    double el = t - t0;
    printf(
        "rocksdb_synced_batch submissions_per_batch=%d batches_per_s=%.0f submissions_per_s=%.0f "
        "events_per_s=%.0f event_bytes_avg=%.0f fsync_p50_us=%.0f fsync_p99_us=%.0f\n",
        per_batch, (double)batches / el, (double)n / el, (double)n * 4 / el,
        (double)bytes / (double)(n * 4), lat_pct(&lat, 0.5), lat_pct(&lat, 0.99));
    fflush(stdout);
    free(lat.v);
    rocksdb_writebatch_destroy(wb);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    rm_rf(path);
}

/* ---- phase 2: through osse_log_commit ---- */

#define WINDOW 1024 /* submissions in flight, as many concurrent HTTP requests */

typedef struct gc_s {
    osse_log_t *log;
    uint64_t next_n;
    uint64_t done;
    double t_end;
    int in_flight;
    lat_t lat;
} gc_t;

typedef struct slot_s {
    gc_t *gc;
    double t_commit;
} slot_t;

static void submit(gc_t *g, slot_t *slot);

static void on_commit(void *ud, int status)
{
    slot_t *slot = ud;
    gc_t *g = slot->gc;
    double t = now_s();
    lat_add(&g->lat, (t - slot->t_commit) * 1e6);
    g->done++;
    g->in_flight--;
    if (t < g->t_end)
        submit(g, slot);
}

static void submit(gc_t *g, slot_t *slot)
{
    sub_t s;
    uint64_t seq = osse_log_last_seq(g->log) + 1;
    osse_batch_t *b = osse_batch_new();
    if (!b)
        die("batch", NULL);
    make_submission(g->next_n++, seq, &s);
    for (int i = 0; i < 4; i++)
        if (osse_batch_event(b, g->log, seq + (uint64_t)i, s.stream, (uint32_t)i + 1, s.ev[i].ptr,
                             s.ev[i].len))
            die("batch_event", NULL);
    if (osse_batch_put(b, s.idem, strlen(s.idem), s.stream, strlen(s.stream)))
        die("batch_put", NULL);
    free_submission(&s);
    slot->t_commit = now_s();
    g->in_flight++;
    osse_log_commit(g->log, b, on_commit, slot);
}

static void bench_group_commit(const char *dir, double seconds)
{
    char path[4096];
    osse_err_t err;
    uv_loop_t loop;
    gc_t g;
    static slot_t slots[WINDOW];
    snprintf(path, sizeof path, "%s/log", dir);
    memset(&g, 0, sizeof g);
    if (uv_loop_init(&loop))
        die("uv_loop_init", NULL);
    if (osse_log_open(path, &g.log, &err) || osse_log_start(g.log, &loop, &err))
        die("osse_log", err.msg);
    double t0 = now_s();
    g.t_end = t0 + seconds;
    for (int i = 0; i < WINDOW; i++) {
        slots[i].gc = &g;
        submit(&g, &slots[i]);
    }
    while (g.in_flight > 0)
        uv_run(&loop, UV_RUN_ONCE);
    double el = now_s() - t0;
    uint64_t syncs = osse_log_sync_count(g.log);
    osse_log_stop(g.log);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    printf("osse_log_group_commit window=%d submissions_per_s=%.0f events_per_s=%.0f "
           "submissions_per_write_avg=%.1f commit_p50_us=%.0f commit_p99_us=%.0f\n",
           WINDOW, (double)g.done / el, (double)g.done * 4 / el,
           syncs ? (double)g.done / (double)syncs : 0.0, lat_pct(&g.lat, 0.5),
           lat_pct(&g.lat, 0.99));
    fflush(stdout);
    free(g.lat.v);
    osse_log_close(g.log);
    rm_rf(path);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_log DIR [seconds] [submissions_per_batch...]\n");
        return 2;
    }
    const char *dir = argv[1];
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    if (seconds <= 0)
        seconds = 3.0;
    mkdir(dir, 0755); /* RocksDB creates only the last level of a path */
    static const int defaults[] = {1, 16, 64, 256};
    if (argc > 3) {
        for (int i = 3; i < argc; i++)
            bench_raw(dir, seconds, atoi(argv[i]) > 0 ? atoi(argv[i]) : 1);
    } else {
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            bench_raw(dir, seconds, defaults[i]);
    }
    bench_group_commit(dir, seconds);
    return 0;
}
