/* test_log_fault.c: the log's fault switch (osse_log_fault, tests only) and
 * what a failed write does: that batch's callback and every later one's get
 * OSSE_EIO, in order, the durable seq stops at the last good batch, and
 * nothing after the failure is written. A write fault leaves nothing of its
 * batch; an fsync fault leaves the batch handed to RocksDB unsynced (found
 * at the next open, never reported durable). A failed write among batches
 * committed without waiting leaves every batch before it durable and
 * nothing of it or after it (a syncer thread tried once failed the groups
 * written before it, and they were found at the next open). */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/log.h"
#include "tests/test.h"

#define NBATCH 5
#define FAULT_AT 3 /* the third synced write fails */
#define NPIPE 4000 /* test_write_fault_among_commits: at most so many */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

typedef struct {
    int status[NPIPE];
    int order[NPIPE];
    int ncalled, nfailed;
} seen_t;

typedef struct {
    seen_t *seen;
    int idx;
} arg_t;

static void on_commit(void *ud, int status)
{
    arg_t *a = ud;
    a->seen->status[a->idx] = status;
    a->seen->order[a->seen->ncalled++] = a->idx;
    a->seen->nfailed += status != 0;
}

static int count_cb(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    uint64_t *last = ud;
    CHECK_EQ_INT(seq, *last + 1);
    *last = seq;
    return 0;
}

/* A log in a fresh folder of dir's template, with the fault set, started
 * on loop; NULL when the folder cannot be made. */
static osse_log_t *start_faulty(char *tmpl, osse_log_fault_t kind, uint64_t nth, uv_loop_t *loop)
{
    osse_log_t *log = NULL;
    osse_err_t err = {0};
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (!dir)
        return NULL;
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    osse_log_fault(log, kind, nth);
    CHECK_EQ_INT(uv_loop_init(loop), 0);
    CHECK_EQ_INT(osse_log_start(log, loop, &err), 0);
    return log;
}

/* Stops and closes log, opens its folder again and returns the last seq
 * found there (every seq from 1 on, in order), then removes the folder. */
static uint64_t stop_and_reread(osse_log_t *log, uv_loop_t *loop, const char *dir)
{
    osse_err_t err = {0};
    uint64_t last = 0;
    osse_log_stop(log);
    CHECK_EQ_INT(uv_run(loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(loop), 0);
    osse_log_close(log);
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_log_scan(log, 1, count_cb, &last, &err), 0);
    CHECK_EQ_INT(osse_log_last_seq(log), last);
    osse_log_close(log);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return last;
}

/* Batch i holds event i+1 (one byte), except batch 3: empty (no write of its
 * own; it still gets the failure, in order). Each batch is committed once
 * the one before is durable or failed, so that each is its own write. */
static void run(osse_log_fault_t kind)
{
    char dir[] = "/tmp/osse-test-log-fault-XXXXXX";
    uv_loop_t loop;
    seen_t seen = {0};
    arg_t args[NBATCH];
    osse_log_t *log = start_faulty(dir, kind, FAULT_AT, &loop);
    if (!log)
        return;
    uint64_t seq = 0;
    for (int i = 0; i < NBATCH; i++) {
        osse_batch_t *b = osse_batch_new();
        if (i != 3) {
            seq++;
            CHECK_EQ_INT(osse_batch_event(b, log, seq, "s", (uint32_t)seq, "x", 1), 0);
            CHECK_EQ_INT(osse_batch_put(b, "k", 1, "v", 1), 0);
        }
        args[i] = (arg_t){&seen, i};
        osse_log_commit(log, b, on_commit, &args[i]);
        while (seen.ncalled <= i)
            uv_run(&loop, UV_RUN_ONCE);
    }
    CHECK_EQ_INT(seen.ncalled, NBATCH);
    for (int i = 0; i < NBATCH; i++) {
        CHECK_EQ_INT(seen.order[i], i);
        CHECK_EQ_INT(seen.status[i], i < FAULT_AT - 1 ? 0 : OSSE_EIO);
    }
    CHECK_EQ_INT(osse_log_durable_seq(log), FAULT_AT - 1);
    CHECK_EQ_INT(osse_log_sync_count(log), FAULT_AT - 1);
    /* What is there at the next open: the good batches, the failed one only
     * after an fsync fault, and nothing later. */
    CHECK_EQ_INT(stop_and_reread(log, &loop, dir),
                 kind == OSSE_LOG_FAULT_FSYNC ? FAULT_AT : FAULT_AT - 1);
}

static void test_write_fault(void)
{
    run(OSSE_LOG_FAULT_WRITE);
}

static void test_fsync_fault(void)
{
    run(OSSE_LOG_FAULT_FSYNC);
}

/* Batches committed without waiting for each other: a failed write must
 * not take the groups written before it down with it, and nothing of it or
 * of a later one may be there. The pauses only shape the groups (several
 * writes, of a few batches each); whatever the timing, what is reported
 * durable must be exactly what is found. */
static void test_write_fault_among_commits(void)
{
    static seen_t seen;
    static arg_t args[NPIPE];
    for (int round = 0; round < 8; round++) {
        char dir[] = "/tmp/osse-test-log-fault-XXXXXX";
        uv_loop_t loop;
        memset(&seen, 0, sizeof seen);
        osse_log_t *log = start_faulty(dir, OSSE_LOG_FAULT_WRITE, 4 + (uint64_t)round, &loop);
        if (!log)
            return;
        int n = 0;
        while (n < NPIPE && !seen.nfailed) {
            osse_batch_t *b = osse_batch_new();
            CHECK_EQ_INT(osse_batch_event(b, log, (uint64_t)n + 1, "s", (uint32_t)n + 1, "x", 1),
                         0);
            args[n] = (arg_t){&seen, n};
            osse_log_commit(log, b, on_commit, &args[n]);
            n++;
            nanosleep(&(struct timespec){0, 150 * 1000}, NULL);
            uv_run(&loop, UV_RUN_NOWAIT);
        }
        while (seen.ncalled < n)
            uv_run(&loop, UV_RUN_ONCE);
        for (int i = 0; i < n; i++)
            CHECK_EQ_INT(seen.order[i], i);
        int good = 0;
        while (good < n && seen.status[good] == 0)
            good++;
        for (int i = good; i < n; i++)
            CHECK_EQ_INT(seen.status[i], OSSE_EIO);
        CHECK(good < n); /* the fault came */
        CHECK_EQ_INT(osse_log_durable_seq(log), good);
        /* All that was reported durable is there, and no more. */
        CHECK_EQ_INT(stop_and_reread(log, &loop, dir), good);
    }
}

int main(void)
{
    RUN(test_write_fault);
    RUN(test_fsync_fault);
    RUN(test_write_fault_among_commits);
    return TEST_EXIT();
}
