/* log.c: the event log's group commit through one writer thread, over a
 * store reached only through its backend's table of operations (backend.h;
 * RocksDB's in rocks.c).
 *
 * Invariant: batches reach RocksDB, and their callbacks run, in exactly the
 * order osse_log_commit was called. The loop thread owns `last_seq`,
 * `durable_seq` and `inflight`; the writer thread owns the group it hands
 * the backend; the two queues (`pending`: committed, not yet written; `done`:
 * written and synced, callback not yet run) are guarded by `mu`.
 *
 * Why this way: an fsync costs about as much for one event as for a
 * thousand, so the writer takes every batch queued since its last write and
 * hands them all to the backend as one group, one atomic synced write
 * (group commit). The loop never
 * waits on the disk: completions come back through a uv_async_t. A failed
 * write is final: the writer marks that batch and every later one failed,
 * writes nothing more, and the callbacks say so (see log.h for why it
 * cannot be retried).
 *
 * A batch records its operations in its own flat buffer, encoded as
 * backend.h says, so that the writer can hand many batches to the backend
 * as one group without copying them.
 *
 * Free space is sampled by the writer thread, never the loop: before each
 * write (a burst that eats the reserve is seen at the next write, not a timer
 * tick later) and once a second while idle (space freed, or taken by another
 * process, with no writes going on). The result is published in atomics
 * that the loop reads without a lock; a change also wakes the loop through
 * the completion async handle, which runs the space callback. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "storage/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "storage/backend.h"
#include "storage/keystore.h"
#include "storage/merkle.h"

/* The default reserve's floor: RocksDB writes on its own after osse stops
 * writing (a flush of the memtable, whose write_buffer_size is 64 MiB below;
 * at the next open the WAL's flush and a new MANIFEST), and that must find
 * room. */
#define RESERVE_FLOOR (64ull << 20)
#define SPACE_IDLE_NS (1000ull * 1000 * 1000) /* idle sampling period */

static uint64_t bytes_of(const struct statvfs *sv, fsblkcnt_t blocks)
{
    return (uint64_t)blocks * (sv->f_frsize ? sv->f_frsize : sv->f_bsize);
}

struct osse_batch_s {
    osse_buf_t ops; /* ops as backend.h encodes them */
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
    const osse_backend_ops_t *ops;
    void *be; /* the backend's store */

    /* Loop thread only. */
    uint64_t last_seq;
    uint64_t durable_seq;
    size_t inflight; /* committed batches whose callback has not run */
    /* Batches whose callback ran, kept with their buffers for the next
     * osse_log_batch_new: a commit's batch grows to tens of kilobytes, and
     * growing a new one each loop iteration (realloc) and freeing it
     * (free consolidates the heap above 64 KB) took 5 % of the loop thread
     * in the submission profile (bench/README.md). */
    osse_batch_t *spare[OSSE_LOG_SPARE_BATCHES];
    size_t nspare;
    uv_loop_t *loop;
    uv_async_t async;
    bool started;

    /* Shared, under mu. */
    uv_mutex_t mu;
    /* Held around every write to the backend, whose write reuses its own
     * buffers: the writer thread's, and the pending records of keys made
     * ahead on the pool (osse_log_keys_pending). */
    uv_mutex_t wmu;
    uv_cond_t work_cv; /* pending gained a batch, or quit */
    uv_cond_t done_cv; /* done gained batches (for osse_log_stop) */
    osse_batch_t *pending_head, *pending_tail;
    osse_batch_t *done_head, *done_tail;
    bool quit;
    uint64_t syncs; /* synced writes made */

    uv_thread_t thread;
    /* Writer thread only: the group's parts (one per batch with ops), the
     * array reused between writes. */
    osse_slice_t *parts;
    size_t parts_cap;
    int failed;      /* a write failed, nothing more is written */
    uint64_t writes; /* synced writes tried */

    /* The Merkle tree (osse_log_set_tree), or NULL: appended to by the
     * writer thread, whose `tree_side` holds the hashes of the group being
     * written. tree_done_*: the tree after the last group written, under
     * mu; tree_durable_*: as of the last batches whose callbacks ran, loop
     * thread. */
    osse_merkle_t *tree;
    osse_batch_t *tree_side;
    uint64_t tree_done_size, tree_durable_size;
    uint8_t tree_done_root[OSSE_MERKLE_HASH], tree_durable_root[OSSE_MERKLE_HASH];

    /* The test fault (osse_log_fault): set before start, read by the writer. */
    osse_log_fault_t fault;
    uint64_t fault_at;

    /* Free space: set before start; then written by the writer thread only
     * and read from anywhere. */
    char *dir;
    uint64_t min_free; /* asked for; 0 = the default */
    osse_space_cb space_cb;
    void *space_ud;
    atomic_bool low, space_changed;
    _Atomic uint64_t space_free, reserve;
};

/* ------------------------------------------------------------- open/close */

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
    const osse_backend_config_t cfg = {.readonly = readonly, .compression = compression};
    osse_log_t *log = osse_calloc(1, sizeof *log);
    int rc;
    *out = NULL;
    log->ops = &osse_backend_rocks;
    if ((rc = log->ops->open(dir, &cfg, &log->be, err)))
        goto out;
    if ((rc = log->ops->last_seq(log->be, &log->last_seq, err)))
        goto out;
    log->durable_seq = log->last_seq;
    log->dir = osse_strdup(dir);
    if (uv_mutex_init(&log->mu) || uv_mutex_init(&log->wmu) || uv_cond_init(&log->work_cv) ||
        uv_cond_init(&log->done_cv)) {
        /* Practically unreachable on Linux; treat as a resource failure. */
        OSSE_UNREACHABLE();
    }
out:
    if (rc) {
        log->ops->close(log->be);
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
    log->ops->close(log->be);
    uv_cond_destroy(&log->done_cv);
    uv_cond_destroy(&log->work_cv);
    uv_mutex_destroy(&log->mu);
    uv_mutex_destroy(&log->wmu);
    for (size_t i = 0; i < log->nspare; i++)
        osse_batch_free(log->spare[i]);
    osse_batch_free(log->tree_side);
    free(log->parts);
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

osse_batch_t *osse_log_batch_new(osse_log_t *log)
{
    if (!log->nspare)
        return osse_batch_new();
    osse_batch_t *b = log->spare[--log->nspare];
    osse_buf_reset(&b->ops);
    osse_buf_reset(&b->keys);
    b->ks = NULL;
    b->nevents = 0;
    b->last_seq = 0;
    b->status = 0;
    b->cb = NULL;
    b->ud = NULL;
    b->next = NULL;
    return b;
}

/* b's callback ran: kept for the next osse_log_batch_new, unless enough
 * are, or its buffers grew past what is worth holding between commits. */
static void batch_done(osse_log_t *log, osse_batch_t *b)
{
    if (log->nspare < OSSE_LOG_SPARE_BATCHES && b->ops.cap <= OSSE_LOG_SPARE_BYTES &&
        b->keys.cap <= OSSE_LOG_SPARE_BYTES)
        log->spare[log->nspare++] = b;
    else
        osse_batch_free(b);
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

/* Appends one op as backend.h encodes it: a header (kind and its numbers,
 * hlen bytes), then a, then v. On failure the buffer is left as it was.
 * Returns 0 or OSSE_ENOMEM. */
static int batch_op(osse_batch_t *b, const void *head, size_t hlen, const void *a, size_t alen,
                    const void *v, size_t vlen)
{
    size_t start = b->ops.len;
    if (osse_buf_append(&b->ops, head, hlen) || (alen && osse_buf_append(&b->ops, a, alen)) ||
        (vlen && osse_buf_append(&b->ops, v, vlen))) {
        b->ops.len = start;
        return OSSE_ENOMEM;
    }
    return 0;
}

int osse_batch_event(osse_batch_t *b, osse_log_t *log, uint64_t seq, const char *stream,
                     uint32_t version, const void *bytes, size_t len)
{
    OSSE_PRE(seq == log->last_seq + 1);
    size_t slen = stream ? strlen(stream) : 0;
    if (slen > UINT32_MAX || len > UINT32_MAX)
        return OSSE_ENOMEM;
    uint8_t head[21];
    uint32_t sl = (uint32_t)slen, vl = (uint32_t)len;
    head[0] = OSSE_BOP_EVENT;
    memcpy(head + 1, &seq, 8);
    memcpy(head + 9, &version, 4);
    memcpy(head + 13, &sl, 4);
    memcpy(head + 17, &vl, 4);
    int rc = batch_op(b, head, sizeof head, stream, slen, bytes, len);
    if (rc)
        return rc;
    b->nevents++;
    b->last_seq = seq;
    log->last_seq = seq;
    return 0;
}

int osse_batch_put(osse_batch_t *b, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen > UINT32_MAX - 1 || vlen > UINT32_MAX)
        return OSSE_ENOMEM;
    uint8_t head[9];
    uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
    head[0] = OSSE_BOP_PUT;
    memcpy(head + 1, &kl, 4);
    memcpy(head + 5, &vl, 4);
    return batch_op(b, head, sizeof head, key, klen, val, vlen);
}

int osse_batch_delete(osse_batch_t *b, const void *key, size_t klen)
{
    if (klen > UINT32_MAX - 1)
        return OSSE_ENOMEM;
    uint8_t head[5];
    uint32_t kl = (uint32_t)klen;
    head[0] = OSSE_BOP_DEL;
    memcpy(head + 1, &kl, 4);
    return batch_op(b, head, sizeof head, key, klen, NULL, 0);
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

static size_t pending_key(const char *name, char *out, size_t n)
{
    int kl = snprintf(out, n, OSSE_LOG_KEY_PENDING "%s", name);
    return kl > 0 && (size_t)kl < n ? (size_t)kl : 0;
}

int osse_batch_keys_pending_done(osse_batch_t *b, const char *name)
{
    char key[OSSE_KEY_ID_MAX + 16];
    size_t kl = pending_key(name, key, sizeof key);
    return kl ? osse_batch_delete(b, key, kl) : OSSE_ENOMEM;
}

/* One synced write of b's side records, off the writer's queue (a pool
 * job, a start), unless rc (b could not be filled: out of memory, said
 * so in err); b is freed. Returns 0 or OSSE_EIO. */
static int write_side(osse_log_t *log, osse_batch_t *b, int rc, osse_err_t *err)
{
    osse_slice_t part = {b->ops.ptr, b->ops.len};
    osse_bgroup_t g = {&part, 1};
    if (rc) {
        rc = osse_err_set(err, OSSE_EIO, "out of memory");
    } else {
        uv_mutex_lock(&log->wmu);
        if (log->ops->write(log->be, &g, true, err))
            rc = OSSE_EIO;
        uv_mutex_unlock(&log->wmu);
    }
    osse_batch_free(b);
    return rc;
}

/* The pending record of the n ids (n > 0) into b. Returns 0 or OSSE_ENOMEM. */
static int pending_into(osse_batch_t *b, const char *const *ids, size_t n)
{
    osse_buf_t val;
    osse_buf_init(&val, 0);
    char key[OSSE_KEY_ID_MAX + 16];
    size_t kl = pending_key(ids[0], key, sizeof key);
    int rc = kl ? 0 : OSSE_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++)
        rc = osse_buf_append(&val, ids[i], strlen(ids[i]) + 1);
    if (!rc)
        rc = osse_batch_put(b, key, kl, val.ptr, val.len);
    osse_buf_close(&val);
    return rc;
}

int osse_log_keys_pending(osse_log_t *log, const char *const *ids, size_t n, osse_err_t *err)
{
    if (!n)
        return 0;
    osse_batch_t *b = osse_batch_new();
    return write_side(log, b, pending_into(b, ids, n), err);
}

typedef struct {
    osse_log_pending_cb cb;
    void *ud;
    osse_err_t *err;
} pending_scan_t;

static int pending_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    pending_scan_t *ps = ud;
    const size_t pl = sizeof OSSE_LOG_KEY_PENDING - 1;
    char name[OSSE_KEY_ID_MAX + 1];
    if (klen <= pl || klen - pl > OSSE_KEY_ID_MAX)
        return osse_err_set(ps->err, OSSE_EIO, "a pending key record has a bad name");
    memcpy(name, (const char *)key + pl, klen - pl);
    name[klen - pl] = '\0';
    if (!vlen) /* a record of the versions before: the one id is its name */
        return ps->cb(ps->ud, name, name);
    const char *p = val, *end = p + vlen;
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        if (!nul || nul == p || nul - p > OSSE_KEY_ID_MAX)
            return osse_err_set(ps->err, OSSE_EIO,
                                "the pending key record %s does not split "
                                "into ids",
                                name);
        int rc = ps->cb(ps->ud, name, p);
        if (rc)
            return rc;
        p = nul + 1;
    }
    return 0;
}

int osse_log_keys_pending_scan(osse_log_t *log, osse_log_pending_cb cb, void *ud, osse_err_t *err)
{
    pending_scan_t ps = {cb, ud, err};
    return log->ops->kv_scan(log->be, OSSE_LOG_KEY_PENDING, sizeof OSSE_LOG_KEY_PENDING - 1,
                             pending_one, &ps, err);
}

static size_t where_key(const char *id, char *out, size_t n)
{
    int kl = snprintf(out, n, OSSE_LOG_KEY_WHERE "%s", id);
    return kl > 0 && (size_t)kl < n ? (size_t)kl : 0;
}

/* The n locations of ids (or their deletion: locs NULL) into b. Returns 0
 * or OSSE_ENOMEM. */
static int where_into(osse_batch_t *b, const char *const *ids, const osse_keyloc_t *locs, size_t n)
{
    char key[OSSE_KEY_ID_MAX + 16];
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t kl = where_key(ids[i], key, sizeof key);
        uint8_t v[OSSE_KEYLOC_BYTES];
        if (locs)
            osse_keyloc_put(locs[i], v);
        rc = !kl || (locs ? osse_batch_put(b, key, kl, v, sizeof v) : osse_batch_delete(b, key, kl))
                 ? OSSE_ENOMEM
                 : 0;
    }
    return rc;
}

int osse_log_keys_where_put(osse_log_t *log, const char *const *ids, const osse_keyloc_t *locs,
                            size_t n, osse_err_t *err)
{
    if (!n)
        return 0;
    osse_batch_t *b = osse_batch_new();
    return write_side(log, b, where_into(b, ids, locs, n), err);
}

bool osse_log_keys_where_ready(osse_log_t *log)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = log->ops->kv_get(log->be, OSSE_LOG_KEY_WHERE_DONE, strlen(OSSE_LOG_KEY_WHERE_DONE), &v,
                              &vl, NULL);
    free(v);
    return rc == 0;
}

int osse_log_keys_where_done(osse_log_t *log, osse_err_t *err)
{
    osse_batch_t *b = osse_batch_new();
    int rc = osse_batch_put(b, OSSE_LOG_KEY_WHERE_DONE, strlen(OSSE_LOG_KEY_WHERE_DONE), "", 0);
    return write_side(log, b, rc, err);
}

static int forget_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    return osse_batch_delete(ud, key, klen);
}

int osse_log_keys_where_forget(osse_log_t *log, osse_err_t *err)
{
    OSSE_PRE(!log->started);
    osse_batch_t *b = osse_batch_new();
    int rc = log->ops->kv_scan(log->be, OSSE_LOG_KEY_WHERE, strlen(OSSE_LOG_KEY_WHERE), forget_one,
                               b, err);
    if (rc) {
        osse_batch_free(b);
        return rc;
    }
    rc = osse_batch_delete(b, OSSE_LOG_KEY_WHERE_DONE, strlen(OSSE_LOG_KEY_WHERE_DONE));
    return write_side(log, b, rc, err);
}

static int keys_append(osse_log_t *log, osse_keystore_t *ks, const osse_keyrec_t *recs, size_t n,
                       bool pending, osse_err_t *err)
{
    if (!n)
        return 0;
    osse_keyloc_t *locs = osse_malloc(n * sizeof *locs);
    const char **ids = osse_malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = recs[i].id;
    int rc = osse_keystore_append(ks, recs, n, locs, err);
    if (!rc) {
        osse_batch_t *b = osse_batch_new();
        int brc = where_into(b, ids, locs, n);
        if (!brc && pending)
            brc = pending_into(b, ids, n);
        rc = write_side(log, b, brc, err);
    }
    free(ids);
    free(locs);
    return rc;
}

int osse_log_keys_append(osse_log_t *log, osse_keystore_t *ks, const osse_keyrec_t *recs, size_t n,
                         osse_err_t *err)
{
    return keys_append(log, ks, recs, n, false, err);
}

int osse_log_keys_append_pending(osse_log_t *log, osse_keystore_t *ks, const osse_keyrec_t *recs,
                                 size_t n, osse_err_t *err)
{
    return keys_append(log, ks, recs, n, true, err);
}

int osse_log_key_where(osse_log_t *log, const char *id, osse_keyloc_t *loc, osse_err_t *err)
{
    char key[OSSE_KEY_ID_MAX + 16];
    size_t kl = where_key(id, key, sizeof key);
    if (!kl)
        return OSSE_ENOTFOUND;
    void *v = NULL;
    size_t vl = 0;
    int rc = log->ops->kv_get(log->be, key, kl, &v, &vl, err);
    if (!rc && !osse_keyloc_get(v, vl, loc))
        rc = osse_err_set(err, OSSE_ECORRUPT, "the location of %s's key is damaged", id);
    free(v);
    return rc;
}

/* refs (n, malloc'd by the caller) get ids and where their keys are;
 * one without a location record gets segment 0 (none). Returns 0 or the
 * first read's error. */
static int where_all(osse_log_t *log, const char *const *ids, size_t n, osse_keyref_t *refs,
                     osse_err_t *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        refs[i] = (osse_keyref_t){ids[i], {0, 0}};
        rc = osse_log_key_where(log, ids[i], &refs[i].loc, err);
        if (rc == OSSE_ENOTFOUND)
            rc = 0;
    }
    return rc;
}

int osse_log_keys_read(osse_log_t *log, osse_keystore_t *ks, const char *const *ids, size_t n,
                       uint8_t *keys, bool *found, osse_err_t *err)
{
    osse_keyref_t *refs = osse_malloc((n ? n : 1) * sizeof *refs);
    int rc = where_all(log, ids, n, refs, err);
    if (!rc)
        rc = osse_keystore_read(ks, refs, n, keys, found, err);
    free(refs);
    return rc;
}

int osse_log_keys_remove(osse_log_t *log, osse_keystore_t *ks, const char *const *ids, size_t n,
                         osse_err_t *err)
{
    osse_keyref_t *refs = osse_malloc((n ? n : 1) * sizeof *refs);
    int rc = where_all(log, ids, n, refs, err);
    if (!rc)
        rc = osse_keystore_remove(ks, refs, n, err);
    if (!rc)
        rc = osse_log_keys_where_put(log, ids, NULL, n, err);
    free(refs);
    return rc;
}

/* Appends the request keys of every batch from head on to the key store,
 * all with one write and one fdatasync (osse_keystore_append): before the
 * synced write that holds their first events, in which each batch puts
 * where its keys are (OSSE_LOG_KEY_WHERE). Returns 0 or OSSE_EIO, logged.
 * Writer thread. */
static int write_keys(osse_log_t *log, osse_batch_t *head)
{
    osse_keystore_t *ks = NULL;
    osse_err_t err = {0};
    osse_keyrec_t *recs = NULL;
    osse_keyloc_t *locs = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (osse_batch_t *b = head; b; b = b->next) {
        const char *p = b->keys.ptr, *end = b->keys.ptr + b->keys.len;
        OSSE_PRE(p == end || !ks || b->ks == ks); /* one key store per log */
        while (p < end) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                recs = osse_realloc(recs, cap * sizeof *recs);
                locs = osse_realloc(locs, cap * sizeof *locs);
            }
            recs[n].id = p;
            p += strlen(p) + 1;
            recs[n++].wrapped = (const uint8_t *)p;
            p += OSSE_WRAPPED_BYTES;
            ks = b->ks;
        }
    }
    if (n) {
        /* Their pending record first (the group's write deletes it:
         * writer_main). */
        const char **ids = osse_malloc(n * sizeof *ids);
        for (size_t i = 0; i < n; i++)
            ids[i] = recs[i].id;
        rc = osse_log_keys_pending(log, ids, n, &err);
        free(ids);
        if (rc || (rc = osse_keystore_append(ks, recs, n, locs, &err)))
            goto fail;
        /* Each batch says where its keys are, in the order they came. */
        size_t k = 0;
        char key[OSSE_KEY_ID_MAX + 16];
        for (osse_batch_t *b = head; b && !rc; b = b->next)
            for (const char *p = b->keys.ptr, *end = p + b->keys.len; p < end && !rc;
                 p += strlen(p) + 1 + OSSE_WRAPPED_BYTES) {
                uint8_t v[OSSE_KEYLOC_BYTES];
                size_t kl = where_key(p, key, sizeof key);
                osse_keyloc_put(locs[k++], v);
                if (!kl || osse_batch_put(b, key, kl, v, sizeof v))
                    rc = osse_err_set(&err, OSSE_EIO, "out of memory");
            }
        if (rc)
            goto fail;
    }
    free(recs);
    free(locs);
    return 0;
fail:
    free(recs);
    free(locs);
    osse_logf(OSSE_LEVEL_ERROR, "key store write failed", "error=%s", err.msg);
    return OSSE_EIO;
}

/* ------------------------------------------------------------- writer */

void osse_log_fault(osse_log_t *log, osse_log_fault_t kind, uint64_t nth)
{
    OSSE_PRE(!log->started);
    log->fault = nth ? kind : OSSE_LOG_FAULT_NONE;
    log->fault_at = nth;
}

void osse_log_set_tree(osse_log_t *log, osse_merkle_t *m)
{
    OSSE_PRE(!log->started && !log->tree && osse_merkle_size(m) == log->last_seq);
    log->tree = m;
    log->tree_side = osse_calloc(1, sizeof *log->tree_side);
    log->tree_done_size = log->tree_durable_size = osse_merkle_size(m);
    osse_merkle_root_now(m, log->tree_done_root);
    memcpy(log->tree_durable_root, log->tree_done_root, OSSE_MERKLE_HASH);
}

bool osse_log_tree_durable(const osse_log_t *log, uint64_t *size, uint8_t root[32])
{
    if (!log->tree)
        return false;
    *size = log->tree_durable_size;
    memcpy(root, log->tree_durable_root, OSSE_MERKLE_HASH);
    return true;
}

/* Appends the group's events to the tree, in order, and the hashes they
 * complete to tree_side, whose ops the write takes after the batches'.
 * Writer thread. */
static void tree_append(osse_log_t *log, const osse_batch_t *head)
{
    osse_buf_reset(&log->tree_side->ops);
    for (const osse_batch_t *b = head; b; b = b->next) {
        osse_slice_t part = {b->ops.ptr, b->ops.len};
        osse_bgroup_t g = {&part, 1};
        osse_bgroup_iter_t it;
        osse_bop_t op;
        osse_bgroup_iter_init(&it, &g);
        while (osse_bgroup_next(&it, &op)) {
            if (op.kind != OSSE_BOP_EVENT)
                continue;
            OSSE_PRE(op.seq == osse_merkle_size(log->tree) + 1);
            if (osse_merkle_append(log->tree, log->tree_side, op.val, op.vlen))
                osse__panic(__FILE__, __LINE__, "out of memory");
        }
    }
}

/* One synced write of the group, or the test fault in its place. Returns 0
 * or OSSE_EIO, with the failure logged as "<backend> write failed" and the
 * store's words. Writer thread. */
static int write_synced(osse_log_t *log, const osse_bgroup_t *g)
{
    osse_err_t err = {0};
    char msg[64];
    int rc;
    uint64_t nth = ++log->writes;
    if (log->fault != OSSE_LOG_FAULT_NONE && nth == log->fault_at) {
        bool fsync = log->fault == OSSE_LOG_FAULT_FSYNC;
        /* As a failed fsync leaves it: the bytes handed to the kernel,
         * maybe on disk later, never known durable. */
        uv_mutex_lock(&log->wmu);
        rc = fsync ? log->ops->write(log->be, g, false, &err) : 0;
        uv_mutex_unlock(&log->wmu);
        snprintf(msg, sizeof msg, "%s write failed", log->ops->name);
        osse_logf(OSSE_LEVEL_ERROR, msg, "error=%s write=%llu fault=%s",
                  rc      ? err.msg
                  : fsync ? "injected fsync failure"
                          : "injected write failure",
                  (unsigned long long)nth, fsync ? "fsync" : "write");
        return OSSE_EIO;
    }
    uv_mutex_lock(&log->wmu);
    rc = log->ops->write(log->be, g, true, &err);
    uv_mutex_unlock(&log->wmu);
    if (rc) {
        snprintf(msg, sizeof msg, "%s write failed", log->ops->name);
        osse_logf(OSSE_LEVEL_ERROR, msg, "error=%s write=%llu", err.msg, (unsigned long long)nth);
        return OSSE_EIO;
    }
    return 0;
}

/* The group's next part: buf's bytes, borrowed until the write returns. */
static void group_part(osse_log_t *log, osse_bgroup_t *g, const osse_buf_t *buf)
{
    if (g->nparts == log->parts_cap) {
        log->parts_cap = log->parts_cap ? log->parts_cap * 2 : 64;
        log->parts = osse_realloc(log->parts, log->parts_cap * sizeof *log->parts);
    }
    log->parts[g->nparts++] = (osse_slice_t){buf->ptr, buf->len};
}

static void writer_main(void *arg)
{
    osse_log_t *log = arg;
    /* Named for `top -H`, perf and bench/threads.sh (at most 15 bytes). */
    pthread_setname_np(pthread_self(), "osse-writer");
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
        osse_bgroup_t g = {NULL, 0};
        /* The group's pending record (write_keys, named by its first key)
         * goes with the group's own synced write (log.h). */
        const char *first_key = NULL;
        for (osse_batch_t *b = head; b; b = b->next) {
            keys = keys || b->keys.len;
            if (!first_key && b->keys.len)
                first_key = b->keys.ptr;
        }
        bool unmarked = first_key && osse_batch_keys_pending_done(tail, first_key);
        int status = log->failed ? log->failed : unmarked ? (log->failed = OSSE_EIO) : 0;
        /* Keys first: no event is ever durable before its key. And the
         * batches gain their keys' locations (write_keys) before their
         * bytes are taken below. */
        if (keys && !status)
            status = log->failed = write_keys(log, head);
        if (log->tree && !status)
            tree_append(log, head);
        for (osse_batch_t *b = head; b; b = b->next) {
            if (b->ops.len) {
                group_part(log, &g, &b->ops);
                any = true;
            }
        }
        if (log->tree && !status && log->tree_side->ops.len)
            group_part(log, &g, &log->tree_side->ops);
        g.parts = log->parts;
        any = any || keys;
        if (any && !status) {
            /* The batches are written whatever the sample says: the loop
             * has applied their events already. The reserve is the room for
             * them; the sample makes the loop refuse what comes next. */
            space_check(log);
            /* A failed write is not retried, nor is anything after it
             * written (see log.h): the callbacks say so and the owner stops. */
            status = log->failed = write_synced(log, &g);
        }
        for (osse_batch_t *b = head; b; b = b->next)
            b->status = status;
        uint8_t root[OSSE_MERKLE_HASH];
        if (log->tree && !status)
            osse_merkle_root_now(log->tree, root);

        uv_mutex_lock(&log->mu);
        if (any && !status)
            log->syncs++;
        if (log->tree && !status) {
            log->tree_done_size = osse_merkle_size(log->tree);
            memcpy(log->tree_done_root, root, OSSE_MERKLE_HASH);
        }
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

/* Runs the callbacks of every durable batch, in commit order. Loop thread.
 * They answer the calls each batch held: the answers' call lines go out
 * together, at the end (common/log.h, osse_logf_hold). */
static void run_done(osse_log_t *log)
{
    uv_mutex_lock(&log->mu);
    osse_batch_t *b = log->done_head;
    log->done_head = log->done_tail = NULL;
    /* The tree after the last group of these batches (published with
     * them). */
    log->tree_durable_size = log->tree_done_size;
    memcpy(log->tree_durable_root, log->tree_done_root, OSSE_MERKLE_HASH);
    uv_mutex_unlock(&log->mu);
    osse_logf_hold();
    while (b) {
        osse_batch_t *next = b->next;
        if (!b->status && b->last_seq > log->durable_seq)
            log->durable_seq = b->last_seq;
        log->inflight--;
        if (b->cb)
            b->cb(b->ud, b->status);
        batch_done(log, b);
        b = next;
    }
    osse_logf_release();
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
    if ((rc = uv_async_init(loop, &log->async, on_async)))
        return osse_err_set(err, OSSE_EIO, "log: uv_async_init: %s", uv_strerror(rc));
    log->async.data = log;
    if (space_sample(log))
        space_note(log); /* started below the reserve */
    if ((rc = uv_thread_create(&log->thread, writer_main, log))) {
        uv_close((uv_handle_t *)&log->async, NULL);
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

void osse_log_drain(osse_log_t *log)
{
    if (!log->started)
        return;
    /* Callbacks may commit more batches, so drain until nothing is in flight. */
    while (log->inflight > 0) {
        uv_mutex_lock(&log->mu);
        while (!log->done_head)
            uv_cond_wait(&log->done_cv, &log->mu);
        uv_mutex_unlock(&log->mu);
        run_done(log);
    }
}

void osse_log_stop(osse_log_t *log)
{
    if (!log || !log->started)
        return;
    osse_log_drain(log);
    uv_mutex_lock(&log->mu);
    log->quit = true;
    uv_cond_signal(&log->work_cv);
    uv_mutex_unlock(&log->mu);
    uv_thread_join(&log->thread);
    uv_close((uv_handle_t *)&log->async, NULL);
    log->started = false;
}

/* ------------------------------------------------------------- reads */

int osse_log_scan(osse_log_t *log, uint64_t from, osse_log_scan_cb cb, void *ud, osse_err_t *err)
{
    return log->ops->scan(log->be, from, cb, ud, err);
}

int osse_log_get(osse_log_t *log, uint64_t seq, void **bytes, size_t *len, osse_err_t *err)
{
    return log->ops->get(log->be, seq, bytes, len, err);
}

int osse_log_kv_get(osse_log_t *log, const void *key, size_t klen, void **val, size_t *vlen,
                    osse_err_t *err)
{
    return log->ops->kv_get(log->be, key, klen, val, vlen, err);
}

int osse_log_kv_scan(osse_log_t *log, const void *prefix, size_t plen, osse_kv_scan_cb cb, void *ud,
                     osse_err_t *err)
{
    return log->ops->kv_scan(log->be, prefix, plen, cb, ud, err);
}

int osse_log_kv_range(osse_log_t *log, const void *start, size_t slen, const void *end, size_t elen,
                      size_t limit, osse_kv_scan_cb cb, void *ud, osse_err_t *err)
{
    return log->ops->kv_range(log->be, start, slen, end, elen, limit, cb, ud, err);
}
