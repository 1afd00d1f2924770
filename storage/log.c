/* log.c: the event log on RocksDB, with group commit through one writer thread.
 *
 * Invariant: batches reach RocksDB, and their callbacks run, in exactly the
 * order osse_log_commit was called. The loop thread owns `last_seq`,
 * `durable_seq` and `inflight`; the writer thread owns the RocksDB write
 * batch; the two queues (`pending`: committed, not yet written; `done`:
 * written and synced, callback not yet run) are guarded by `mu`.
 *
 * Why this way: an fsync costs about as much for one event as for a
 * thousand, so the writer takes every batch queued since its last write and
 * applies them all with one synced WriteBatch (group commit). The loop never
 * waits on the disk: completions come back through a uv_async_t. A failed
 * write is final: the writer marks that batch and every later one failed,
 * writes nothing more, and the callbacks say so (see log.h for why it
 * cannot be retried).
 *
 * A batch records its operations in its own flat buffer (not a
 * rocksdb_writebatch_t) so that the writer can fold many batches into one
 * RocksDB write batch it reuses between writes.
 *
 * Free space is sampled by the writer thread, never the loop: before each
 * write (a burst that eats the reserve is seen at the next write, not a timer
 * tick later) and once a second while idle (space freed, or taken by another
 * process, with no writes going on). The result is published in atomics
 * that the loop reads without a lock; a change also wakes the loop through
 * the completion async handle, which runs the space callback. */
#include "storage/log.h"

#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "storage/keystore.h"

enum { OP_PUT = 'P', OP_DEL = 'D' };

/* The default reserve's floor: RocksDB writes on its own after osse stops
 * writing (a flush of the memtable, whose write_buffer_size is 64 MiB below;
 * at the next open the WAL's flush and a new MANIFEST), and that must find
 * room. */
#define RESERVE_FLOOR (64ull << 20)
#define SPACE_IDLE_NS (1000ull * 1000 * 1000) /* idle sampling period */
/* Below this, opening for writing is refused: RocksDB's open writes (a new
 * WAL, the MANIFEST, the WAL's flush), and on a filesystem with nothing left
 * it fails with an I/O error; this says why, once. A restart with a small
 * log opens with 64 KiB free. */
#define OPEN_FLOOR (64u << 10)
#define INFO_LOG_FATAL 4 /* rocksdb::InfoLogLevel::FATAL_LEVEL (no C constant) */
/* RocksDB's default number of levels; a per-level compression list shorter
 * than the levels gives its last entry to the rest. */
#define LOG_LEVELS 7

static uint64_t bytes_of(const struct statvfs *sv, fsblkcnt_t blocks)
{
    return (uint64_t)blocks * (sv->f_frsize ? sv->f_frsize : sv->f_bsize);
}

struct osse_batch_s {
    osse_buf_t ops; /* repeated: op u8, klen u32, key, [vlen u32, val] (host order) */
    /* Request keys to make durable before the write (osse_batch_key):
     * repeated id NUL, wrapped key (OSSE_WRAPPED_BYTES). */
    osse_keystore_t *ks;
    osse_buf_t keys;
    size_t nevents;
    uint64_t last_seq; /* highest event seq in the batch; 0 if none */
    int status;        /* set by the writer: 0 durable, else the write failed */
    osse_commit_cb cb;
    void *ud;
    struct osse_batch_s *next;
};

struct osse_log_s {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_filterpolicy_t *filter; /* owned by topts once set */
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts; /* point reads; RocksDB allows sharing across threads */

    /* Loop thread only. */
    uint64_t last_seq;
    uint64_t durable_seq;
    size_t inflight; /* committed batches whose callback has not run */
    uv_loop_t *loop;
    uv_async_t async;
    bool started;

    /* Shared, under mu. */
    uv_mutex_t mu;
    uv_cond_t work_cv; /* pending gained a batch, or quit */
    uv_cond_t done_cv; /* done gained batches (for osse_log_stop) */
    osse_batch_t *pending_head, *pending_tail;
    osse_batch_t *done_head, *done_tail;
    bool quit;
    uint64_t syncs; /* synced writes made */

    uv_thread_t thread;
    rocksdb_writebatch_t *wb; /* writer thread only */
    int failed;               /* writer thread only: a write failed, nothing more is written */
    uint64_t writes;          /* writer thread only: synced writes tried */

    /* The test fault (osse_log_fault): set before start, read by the writer. */
    osse_log_fault_t fault;
    uint64_t fault_at;
    rocksdb_writeoptions_t *wopts_nosync; /* OSSE_LOG_FAULT_FSYNC's unsynced write */

    /* Free space: set before start; then written by the writer thread only
     * and read from anywhere. */
    char *dir;
    uint64_t min_free; /* asked for; 0 = the default */
    osse_space_cb space_cb;
    void *space_ud;
    atomic_bool low, space_changed;
    _Atomic uint64_t space_free, reserve;
};

/* ------------------------------------------------------------- key helpers */

static void be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void event_key(uint8_t key[9], uint64_t seq)
{
    key[0] = 'E';
    be64_put(key + 1, seq);
}

/* Takes ownership of a RocksDB error string, translating it once. */
static int rdb_err(osse_err_t *err, char *errptr, const char *what)
{
    osse_err_set(err, OSSE_EIO, "rocksdb %s: %s", what, errptr ? errptr : "unknown error");
    rocksdb_free(errptr);
    return OSSE_EIO;
}

/* ------------------------------------------------------------- open/close */

/* Seeks to the last 'E' key: the highest seq stored. */
static int find_last_seq(osse_log_t *log, uint64_t *out, osse_err_t *err)
{
    uint8_t last[9];
    memset(last, 0xff, sizeof last);
    last[0] = 'E';
    rocksdb_iterator_t *it = rocksdb_create_iterator(log->db, log->ropts);
    char *e = NULL;
    int rc = 0;
    *out = 0;
    rocksdb_iter_seek_for_prev(it, (const char *)last, sizeof last);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen == 9 && k[0] == 'E')
            *out = be64_get(k + 1);
    }
    rocksdb_iter_get_error(it, &e);
    if (e)
        rc = rdb_err(err, e, "seek");
    rocksdb_iter_destroy(it);
    return rc;
}

static int log_open(const char *dir, bool readonly, osse_log_compression_t compression,
                    osse_log_t **out, osse_err_t *err);

int osse_log_compression_parse(const char *s, osse_log_compression_t *out)
{
    if (strcmp(s, "lz4") == 0)
        *out = OSSE_LOG_COMPRESSION_LZ4;
    else if (strcmp(s, "none") == 0)
        *out = OSSE_LOG_COMPRESSION_NONE;
    else
        return -1;
    return 0;
}

int osse_log_open(const char *dir, osse_log_t **out, osse_err_t *err)
{
    return log_open(dir, false, OSSE_LOG_COMPRESSION_LZ4, out, err);
}

int osse_log_open_with(const char *dir, osse_log_compression_t compression, osse_log_t **out,
                       osse_err_t *err)
{
    return log_open(dir, false, compression, out, err);
}

int osse_log_open_readonly(const char *dir, osse_log_t **out, osse_err_t *err)
{
    return log_open(dir, true, OSSE_LOG_COMPRESSION_LZ4, out, err);
}

static int log_open(const char *dir, bool readonly, osse_log_compression_t compression,
                    osse_log_t **out, osse_err_t *err)
{
    char *e = NULL;
    int rc = 0;
    struct statvfs sv;
    *out = NULL;
    /* A folder not made yet is left to RocksDB. */
    if (!readonly && statvfs(dir, &sv) == 0 && bytes_of(&sv, sv.f_bavail) < OPEN_FLOOR)
        return osse_err_set(err, OSSE_ENOSPC,
                            "the filesystem of %s is full (%llu bytes free): RocksDB cannot open "
                            "its log for writing; free some space",
                            dir, (unsigned long long)bytes_of(&sv, sv.f_bavail));
    osse_log_t *log = osse_calloc(1, sizeof *log);

    log->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(log->opts, 1);
    /* A larger memtable means fewer, larger flushes under a steady append load. */
    rocksdb_options_set_write_buffer_size(log->opts, 64u << 20);
    rocksdb_options_set_max_background_jobs(log->opts, 2);
    /* One choice for the whole database: the default compression, one for
     * each level (a per-level list overrides the default) and the
     * bottommost level's (which overrides both when set). */
    int ctype =
        compression == OSSE_LOG_COMPRESSION_NONE ? rocksdb_no_compression : rocksdb_lz4_compression;
    int per_level[LOG_LEVELS];
    for (size_t i = 0; i < LOG_LEVELS; i++)
        per_level[i] = ctype;
    rocksdb_options_set_compression(log->opts, ctype);
    rocksdb_options_set_compression_per_level(log->opts, per_level, LOG_LEVELS);
    rocksdb_options_set_bottommost_compression(log->opts, ctype);
    /* RocksDB's own LOG file is on the log's filesystem, and Debian's
     * librocksdb aborts on the line after one that failed there (an
     * assertion in WritableFileWriter once it has seen ENOSPC): on a full
     * disk, the lines RocksDB logs about the failed write itself did it.
     * Only fatal lines are written now (the LOG stays empty; the options are
     * in RocksDB's OPTIONS file); osse's own log says what failed. See
     * design.md, "A disk with nothing left". */
    rocksdb_options_set_info_log_level(log->opts, INFO_LOG_FATAL);
    log->topts = rocksdb_block_based_options_create();
    /* Point reads of side records ('K') mostly miss (idempotency checks): a
     * bloom filter keeps a miss from touching data blocks. */
    log->filter = rocksdb_filterpolicy_create_bloom_full(10);
    rocksdb_block_based_options_set_filter_policy(log->topts, log->filter);
    rocksdb_options_set_block_based_table_factory(log->opts, log->topts);

    log->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(log->wopts, 1);
    log->ropts = rocksdb_readoptions_create();

    log->db = readonly ? rocksdb_open_for_read_only(log->opts, dir, 0, &e)
                       : rocksdb_open(log->opts, dir, &e);
    if (e) {
        /* RocksDB holds an fcntl lock on dir/LOCK while a database is open
         * for writing; its message for a lock held elsewhere is the only
         * sign of it, so it is recognised here, once. */
        if (!readonly && strstr(e, "lock file") && strstr(e, "LOCK")) {
            rc = osse_err_set(err, OSSE_EBUSY,
                              "%s is in use by another process (RocksDB lock held)", dir);
            rocksdb_free(e);
        } else {
            rc = rdb_err(err, e, "open");
        }
        goto out;
    }
    if ((rc = find_last_seq(log, &log->last_seq, err)))
        goto out;
    log->durable_seq = log->last_seq;
    log->dir = osse_strdup(dir);
    if (uv_mutex_init(&log->mu) || uv_cond_init(&log->work_cv) || uv_cond_init(&log->done_cv)) {
        /* Practically unreachable on Linux; treat as a resource failure. */
        OSSE_UNREACHABLE();
    }
out:
    if (rc) {
        if (log->db)
            rocksdb_close(log->db);
        rocksdb_readoptions_destroy(log->ropts);
        rocksdb_writeoptions_destroy(log->wopts);
        rocksdb_options_destroy(log->opts);
        rocksdb_block_based_options_destroy(log->topts);
        free(log->dir);
        free(log);
        return rc;
    }
    *out = log;
    return 0;
}

void osse_log_close(osse_log_t *log)
{
    if (!log)
        return;
    OSSE_PRE(!log->started);
    rocksdb_close(log->db);
    rocksdb_readoptions_destroy(log->ropts);
    rocksdb_writeoptions_destroy(log->wopts);
    if (log->wopts_nosync)
        rocksdb_writeoptions_destroy(log->wopts_nosync);
    rocksdb_options_destroy(log->opts);
    /* The table options own the filter policy. */
    rocksdb_block_based_options_destroy(log->topts);
    uv_cond_destroy(&log->done_cv);
    uv_cond_destroy(&log->work_cv);
    uv_mutex_destroy(&log->mu);
    free(log->dir);
    free(log);
}

uint64_t osse_log_last_seq(const osse_log_t *log)
{
    return log->last_seq;
}

uint64_t osse_log_durable_seq(const osse_log_t *log)
{
    return log->durable_seq;
}

uint64_t osse_log_sync_count(osse_log_t *log)
{
    uv_mutex_lock(&log->mu);
    uint64_t n = log->syncs;
    uv_mutex_unlock(&log->mu);
    return n;
}

/* ------------------------------------------------------------- free space */

void osse_log_set_reserve(osse_log_t *log, uint64_t min_free)
{
    OSSE_PRE(!log->started);
    log->min_free = min_free;
}

void osse_log_on_space(osse_log_t *log, osse_space_cb cb, void *ud)
{
    OSSE_PRE(!log->started);
    log->space_cb = cb;
    log->space_ud = ud;
}

bool osse_log_space_low(const osse_log_t *log)
{
    return atomic_load_explicit(&log->low, memory_order_relaxed);
}

uint64_t osse_log_space_free(const osse_log_t *log)
{
    return atomic_load_explicit(&log->space_free, memory_order_relaxed);
}

uint64_t osse_log_space_reserve(const osse_log_t *log)
{
    return atomic_load_explicit(&log->reserve, memory_order_relaxed);
}

/* Samples the free space of the log's filesystem and moves the low flag:
 * low below the reserve, normal again only at the reserve plus a quarter, so
 * that writes near the edge do not flap between refused and accepted.
 * Returns true when the flag changed. statvfs of a local filesystem answers
 * from the superblock in memory: a system call, no I/O. Writer thread (and
 * osse_log_start before the thread exists). */
static bool space_sample(osse_log_t *log)
{
    struct statvfs sv;
    if (statvfs(log->dir, &sv) != 0)
        return false; /* a failed sample says nothing: keep the last state */
    uint64_t avail = bytes_of(&sv, sv.f_bavail), total = bytes_of(&sv, sv.f_blocks);
    uint64_t reserve = log->min_free;
    if (!reserve) {
        reserve = total / 50 > RESERVE_FLOOR ? total / 50 : RESERVE_FLOOR;
        /* On a small filesystem the floor would leave no room to write. */
        if (reserve > total / 4)
            reserve = total / 4;
    }
    atomic_store_explicit(&log->space_free, avail, memory_order_relaxed);
    atomic_store_explicit(&log->reserve, reserve, memory_order_relaxed);
    bool was = atomic_load_explicit(&log->low, memory_order_relaxed);
    bool low = was ? avail < reserve + reserve / 4 : avail < reserve;
    if (low == was)
        return false;
    atomic_store_explicit(&log->low, low, memory_order_relaxed);
    return true;
}

static void space_note(const osse_log_t *log)
{
    bool low = osse_log_space_low(log);
    osse_logf(low ? OSSE_LEVEL_WARN : OSSE_LEVEL_INFO,
              low ? "disk nearly full: writes refused" : "disk space back: writes resume",
              "free_bytes=%llu reserve_bytes=%llu dir=%s",
              (unsigned long long)osse_log_space_free(log),
              (unsigned long long)osse_log_space_reserve(log), log->dir);
}

/* Samples, and on a change tells the loop. Writer thread. */
static void space_check(osse_log_t *log)
{
    if (!space_sample(log))
        return;
    space_note(log);
    atomic_store(&log->space_changed, true);
    uv_async_send(&log->async);
}

/* ------------------------------------------------------------- batches */

osse_batch_t *osse_batch_new(void)
{
    osse_batch_t *b = osse_calloc(1, sizeof *b);
    if (b) {
        osse_buf_init(&b->ops, 0);
        osse_buf_init(&b->keys, 0);
    }
    return b;
}

void osse_batch_free(osse_batch_t *b)
{
    if (!b)
        return;
    osse_buf_close(&b->ops);
    osse_buf_close(&b->keys);
    free(b);
}

size_t osse_batch_count(const osse_batch_t *b)
{
    return b->nevents;
}

/* Appends one operation; on failure the buffer is left as it was. */
static int batch_op(osse_batch_t *b, uint8_t op, const void *k1, size_t k1len, const void *k2,
                    size_t k2len, const void *val, size_t vlen)
{
    size_t start = b->ops.len;
    uint32_t klen = (uint32_t)(k1len + k2len), vl = (uint32_t)vlen;
    int rc;
    if (k1len + k2len > UINT32_MAX || vlen > UINT32_MAX)
        return OSSE_ETOOBIG;
    if ((rc = osse_buf_append(&b->ops, &op, 1)) || (rc = osse_buf_append(&b->ops, &klen, 4)) ||
        (rc = osse_buf_append(&b->ops, k1, k1len)) ||
        (k2len && (rc = osse_buf_append(&b->ops, k2, k2len))))
        goto out;
    if (op == OP_PUT &&
        ((rc = osse_buf_append(&b->ops, &vl, 4)) || (rc = osse_buf_append(&b->ops, val, vlen))))
        goto out;
out:
    if (rc)
        b->ops.len = start;
    return rc;
}

int osse_batch_event(osse_batch_t *b, osse_log_t *log, uint64_t seq, const char *stream,
                     uint32_t version, const void *bytes, size_t len)
{
    OSSE_PRE(seq == log->last_seq + 1);
    (void)stream;
    (void)version;
    uint8_t ekey[9];
    event_key(ekey, seq);
    int rc = batch_op(b, OP_PUT, ekey, sizeof ekey, NULL, 0, bytes, len);
    if (rc)
        return rc == OSSE_ETOOBIG ? OSSE_ENOMEM : rc;
    b->nevents++;
    b->last_seq = seq;
    log->last_seq = seq;
    return 0;
}

int osse_batch_put(osse_batch_t *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    int rc = batch_op(b, OP_PUT, "K", 1, key, klen, val, vlen);
    return rc == OSSE_ETOOBIG ? OSSE_ENOMEM : rc;
}

int osse_batch_delete(osse_batch_t *b, const void *key, size_t klen)
{
    int rc = batch_op(b, OP_DEL, "K", 1, key, klen, NULL, 0);
    return rc == OSSE_ETOOBIG ? OSSE_ENOMEM : rc;
}

int osse_batch_key(osse_batch_t *b, osse_keystore_t *ks, const char *id, const uint8_t *wrapped)
{
    OSSE_PRE(!b->ks || b->ks == ks);
    size_t start = b->keys.len;
    int rc;
    if ((rc = osse_buf_append(&b->keys, id, strlen(id) + 1)) ||
        (rc = osse_buf_append(&b->keys, wrapped, OSSE_WRAPPED_BYTES))) {
        b->keys.len = start;
        return rc;
    }
    b->ks = ks;
    return 0;
}

/* Appends the request keys of every batch from head on to the key store,
 * all with one write and one fdatasync (osse_keystore_append): before the
 * synced write that holds their first events. Returns 0 or OSSE_EIO,
 * logged. Writer thread. */
static int write_keys(osse_batch_t *head)
{
    osse_keystore_t *ks = NULL;
    osse_err_t err = {0};
    osse_keyrec_t *recs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (osse_batch_t *b = head; b; b = b->next) {
        const char *p = b->keys.ptr, *end = b->keys.ptr + b->keys.len;
        if (p < end && ks && b->ks != ks) {
            /* Not the one store of the others (never so in osse). */
            if ((rc = osse_keystore_append(ks, recs, n, &err)))
                goto fail;
            n = 0;
        }
        while (p < end) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                recs = osse_realloc(recs, cap * sizeof *recs);
            }
            recs[n].id = p;
            p += strlen(p) + 1;
            recs[n++].wrapped = (const uint8_t *)p;
            p += OSSE_WRAPPED_BYTES;
            ks = b->ks;
        }
    }
    if (n && (rc = osse_keystore_append(ks, recs, n, &err)))
        goto fail;
    free(recs);
    return 0;
fail:
    free(recs);
    osse_logf(OSSE_LEVEL_ERROR, "key store write failed", "error=%s", err.msg);
    return OSSE_EIO;
}

/* Replays a batch's recorded operations into the writer's RocksDB batch. The
 * bytes were written by batch_op in this process, so they are trusted. */
static void batch_apply(const osse_batch_t *b, rocksdb_writebatch_t *wb)
{
    const char *p = b->ops.ptr, *end = b->ops.ptr + b->ops.len;
    while (p < end) {
        uint8_t op = (uint8_t)*p++;
        uint32_t klen, vlen;
        memcpy(&klen, p, 4);
        p += 4;
        const char *key = p;
        p += klen;
        if (op == OP_PUT) {
            memcpy(&vlen, p, 4);
            p += 4;
            rocksdb_writebatch_put(wb, key, klen, p, vlen);
            p += vlen;
        } else {
            rocksdb_writebatch_delete(wb, key, klen);
        }
    }
}

/* ------------------------------------------------------------- writer */

void osse_log_fault(osse_log_t *log, osse_log_fault_t kind, uint64_t nth)
{
    OSSE_PRE(!log->started);
    log->fault = nth ? kind : OSSE_LOG_FAULT_NONE;
    log->fault_at = nth;
    if (log->fault == OSSE_LOG_FAULT_FSYNC && !log->wopts_nosync)
        log->wopts_nosync = rocksdb_writeoptions_create(); /* sync off by default */
}

/* One synced write of wb, or the test fault in its place. Returns 0 or
 * OSSE_EIO, with the failure logged. Writer thread. */
static int write_synced(osse_log_t *log)
{
    char *e = NULL;
    uint64_t nth = ++log->writes;
    if (log->fault != OSSE_LOG_FAULT_NONE && nth == log->fault_at) {
        bool fsync = log->fault == OSSE_LOG_FAULT_FSYNC;
        /* As a failed fsync leaves it: the bytes handed to the kernel,
         * maybe on disk later, never known durable. */
        if (fsync)
            rocksdb_write(log->db, log->wopts_nosync, log->wb, &e);
        osse_logf(OSSE_LEVEL_ERROR, "rocksdb write failed", "error=%s write=%llu fault=%s",
                  e       ? e
                  : fsync ? "injected fsync failure"
                          : "injected write failure",
                  (unsigned long long)nth, fsync ? "fsync" : "write");
        rocksdb_free(e);
        return OSSE_EIO;
    }
    rocksdb_write(log->db, log->wopts, log->wb, &e);
    if (e) {
        osse_logf(OSSE_LEVEL_ERROR, "rocksdb write failed", "error=%s write=%llu", e,
                  (unsigned long long)nth);
        rocksdb_free(e);
        return OSSE_EIO;
    }
    return 0;
}

static void writer_main(void *arg)
{
    osse_log_t *log = arg;
    for (;;) {
        uv_mutex_lock(&log->mu);
        while (!log->pending_head && !log->quit) {
            if (uv_cond_timedwait(&log->work_cv, &log->mu, SPACE_IDLE_NS) == UV_ETIMEDOUT) {
                uv_mutex_unlock(&log->mu);
                space_check(log);
                uv_mutex_lock(&log->mu);
            }
        }
        osse_batch_t *head = log->pending_head, *tail = log->pending_tail;
        log->pending_head = log->pending_tail = NULL;
        uv_mutex_unlock(&log->mu);
        if (!head)
            break; /* quit, and nothing left to write */

        bool any = false, keys = false;
        rocksdb_writebatch_clear(log->wb);
        for (osse_batch_t *b = head; b; b = b->next) {
            keys = keys || b->keys.len;
            if (b->ops.len) {
                batch_apply(b, log->wb);
                any = true;
            }
        }
        int status = log->failed;
        any = any || keys;
        if (any && !status) {
            /* The batches are written whatever the sample says: the loop
             * has applied their events already. The reserve is the room for
             * them; the sample makes the loop refuse what comes next. */
            space_check(log);
            /* A failed write is not retried, nor is anything after it
             * written (see log.h): the callbacks say so and the owner stops.
             * Keys first: no event is ever durable before its key. */
            status = log->failed = keys ? write_keys(head) : 0;
            if (!status)
                status = log->failed = write_synced(log);
        }
        for (osse_batch_t *b = head; b; b = b->next)
            b->status = status;

        uv_mutex_lock(&log->mu);
        if (any && !status)
            log->syncs++;
        if (log->done_tail)
            log->done_tail->next = head;
        else
            log->done_head = head;
        log->done_tail = tail;
        uv_cond_signal(&log->done_cv);
        uv_mutex_unlock(&log->mu);
        uv_async_send(&log->async);
    }
}

/* Runs the callbacks of every durable batch, in commit order. Loop thread. */
static void run_done(osse_log_t *log)
{
    uv_mutex_lock(&log->mu);
    osse_batch_t *b = log->done_head;
    log->done_head = log->done_tail = NULL;
    uv_mutex_unlock(&log->mu);
    while (b) {
        osse_batch_t *next = b->next;
        if (!b->status && b->last_seq > log->durable_seq)
            log->durable_seq = b->last_seq;
        log->inflight--;
        if (b->cb)
            b->cb(b->ud, b->status);
        osse_batch_free(b);
        b = next;
    }
}

static void on_async(uv_async_t *h)
{
    osse_log_t *log = h->data;
    run_done(log);
    if (atomic_exchange(&log->space_changed, false) && log->space_cb)
        log->space_cb(log->space_ud, osse_log_space_low(log));
}

int osse_log_start(osse_log_t *log, uv_loop_t *loop, osse_err_t *err)
{
    int rc;
    OSSE_PRE(!log->started);
    log->loop = loop;
    log->quit = false;
    log->wb = rocksdb_writebatch_create();
    if ((rc = uv_async_init(loop, &log->async, on_async))) {
        rocksdb_writebatch_destroy(log->wb);
        log->wb = NULL;
        return osse_err_set(err, OSSE_EIO, "log: uv_async_init: %s", uv_strerror(rc));
    }
    log->async.data = log;
    if (space_sample(log))
        space_note(log); /* started below the reserve */
    if ((rc = uv_thread_create(&log->thread, writer_main, log))) {
        uv_close((uv_handle_t *)&log->async, NULL);
        rocksdb_writebatch_destroy(log->wb);
        log->wb = NULL;
        return osse_err_set(err, OSSE_EIO, "log: writer thread: %s", uv_strerror(rc));
    }
    log->started = true;
    return 0;
}

void osse_log_commit(osse_log_t *log, osse_batch_t *b, osse_commit_cb cb, void *ud)
{
    OSSE_PRE(log->started);
    b->cb = cb;
    b->ud = ud;
    b->next = NULL;
    log->inflight++;
    uv_mutex_lock(&log->mu);
    if (log->pending_tail)
        log->pending_tail->next = b;
    else
        log->pending_head = b;
    log->pending_tail = b;
    uv_cond_signal(&log->work_cv);
    uv_mutex_unlock(&log->mu);
}

void osse_log_stop(osse_log_t *log)
{
    if (!log || !log->started)
        return;
    /* Callbacks may commit more batches, so drain until nothing is in flight. */
    while (log->inflight > 0) {
        uv_mutex_lock(&log->mu);
        while (!log->done_head)
            uv_cond_wait(&log->done_cv, &log->mu);
        uv_mutex_unlock(&log->mu);
        run_done(log);
    }
    uv_mutex_lock(&log->mu);
    log->quit = true;
    uv_cond_signal(&log->work_cv);
    uv_mutex_unlock(&log->mu);
    uv_thread_join(&log->thread);
    rocksdb_writebatch_destroy(log->wb);
    log->wb = NULL;
    uv_close((uv_handle_t *)&log->async, NULL);
    log->started = false;
}

/* ------------------------------------------------------------- reads */

int osse_log_scan(osse_log_t *log, uint64_t from, osse_log_scan_cb cb, void *ud, osse_err_t *err)
{
    uint8_t start[9], upper[1] = {'F'};
    char *e = NULL;
    int rc = 0;
    event_key(start, from);
    /* The upper bound lets RocksDB stop at the end of the 'E' range without
     * reading into the side records. */
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)upper, sizeof upper);
    /* One pass in order over the whole range (a replay, an export): large
     * reads ahead, and blocks read once need not push others out of the
     * cache (issue 13). */
    rocksdb_readoptions_set_readahead_size(ro, 2u << 20);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator(log->db, ro);
    for (rocksdb_iter_seek(it, (const char *)start, sizeof start); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen != 9 || k[0] != 'E')
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = cb(ud, be64_get(k + 1), v, vlen)))
            goto out;
    }
    rocksdb_iter_get_error(it, &e);
    if (e)
        rc = rdb_err(err, e, "scan");
out:
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return rc;
}

/* Point read of a full key; *val is malloc'd. */
static int get_raw(osse_log_t *log, const void *key, size_t klen, void **val, size_t *vlen,
                   osse_err_t *err)
{
    char *e = NULL;
    size_t n = 0;
    *val = NULL;
    *vlen = 0;
    char *v = rocksdb_get(log->db, log->ropts, key, klen, &n, &e);
    if (e)
        return rdb_err(err, e, "get");
    if (!v)
        return osse_err_set(err, OSSE_ENOTFOUND, "not found");
    /* rocksdb_get's buffer is malloc'd by the library; copy so that callers
     * can free() it whatever allocator RocksDB was built with. */
    void *copy = osse_malloc(n ? n : 1);
    memcpy(copy, v, n);
    rocksdb_free(v);
    *val = copy;
    *vlen = n;
    return 0;
}

int osse_log_get(osse_log_t *log, uint64_t seq, void **bytes, size_t *len, osse_err_t *err)
{
    uint8_t key[9];
    event_key(key, seq);
    return get_raw(log, key, sizeof key, bytes, len, err);
}

int osse_log_kv_get(osse_log_t *log, const void *key, size_t klen, void **val, size_t *vlen,
                    osse_err_t *err)
{
    uint8_t small[128];
    uint8_t *k = klen + 1 <= sizeof small ? small : osse_malloc(klen + 1);
    int rc;
    k[0] = 'K';
    if (klen)
        memcpy(k + 1, key, klen);
    rc = get_raw(log, k, klen + 1, val, vlen, err);
    if (k != small)
        free(k);
    return rc;
}

int osse_log_kv_scan(osse_log_t *log, const void *prefix, size_t plen, osse_kv_scan_cb cb, void *ud,
                     osse_err_t *err)
{
    char *e = NULL;
    int rc = 0;
    uint8_t *p = osse_malloc(plen + 1);
    p[0] = 'K';
    if (plen)
        memcpy(p + 1, prefix, plen);
    rocksdb_iterator_t *it = rocksdb_create_iterator(log->db, log->ropts);
    for (rocksdb_iter_seek(it, (const char *)p, plen + 1); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen + 1 || memcmp(k, p, plen + 1) != 0)
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = cb(ud, k + 1, klen - 1, v, vlen)))
            goto out;
    }
    rocksdb_iter_get_error(it, &e);
    if (e)
        rc = rdb_err(err, e, "kv scan");
out:
    rocksdb_iter_destroy(it);
    free(p);
    return rc;
}
