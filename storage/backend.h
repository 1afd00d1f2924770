/* backend.h: what the log's group-commit machinery (log.c) needs from the
 * store underneath it, as one table of operations.
 *
 * log.c owns everything that is not the store: batches built on the loop
 * thread, the single writer thread that merges every queued batch into one
 * durable write (group commit), the order of callbacks, the finality of a
 * failed write, the free-space sampling and the test faults. It reaches the
 * store only through an osse_backend_ops_t, so a second store (PostgreSQL,
 * docs/design.md "A second log backend") is a second table, and engine/,
 * which sees only log.h, does not change. RocksDB's is osse_backend_rocks
 * (rocks.c).
 *
 * Key invariant (what every backend guarantees):
 * - write applies all the ops of a group, across events and side records,
 *   atomically: after a crash either all of them are there or none; with
 *   sync they are durable (on stable storage) before write returns 0;
 * - events are stored under their seq, which the machinery hands out
 *   without gaps, in order, across groups; last_seq at open is the highest
 *   seq stored (0 when empty);
 * - a read that starts after a write returned sees that write (reads run on
 *   other threads, concurrently with the writer);
 * - side records are ordered by their key's bytes (memcmp, then the shorter
 *   first), which is the order of kv_scan and kv_range.
 * A failed write may have applied nothing or (after a failed sync) all of
 * the group: the machinery never writes again after one (log.h says why).
 *
 * Threads: open, close and last_seq before the writer runs or after it
 * stops; write on the writer thread only, one at a time; the reads from
 * any thread, concurrently with each other and with write. */
#ifndef OSSE_STORAGE_BACKEND_H
#define OSSE_STORAGE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/log.h"

/* One operation of a group, as the backend sees it. Pointers borrow the
 * group's bytes until write returns. */
typedef enum {
    OSSE_BOP_EVENT = 'E', /* seq, version, stream, val: an event's stored bytes */
    OSSE_BOP_PUT = 'P',   /* key, val: a side record (key without any prefix) */
    OSSE_BOP_DEL = 'D',   /* key: a side record removed */
} osse_bop_kind_t;

typedef struct osse_bop_s {
    osse_bop_kind_t kind;
    uint64_t seq;
    uint32_t version;
    const char *stream; /* not NUL-terminated */
    size_t stream_len;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} osse_bop_t;

/* A group: the ops buffers of the batches one write merges, in commit
 * order. Each buffer holds ops encoded by log.c (host byte order, fields
 * copied with memcpy, so unaligned):
 *   EVENT 'E' seq u64, version u32, stream_len u32, vlen u32, stream, val
 *   PUT   'P' klen u32, vlen u32, key, val
 *   DEL   'D' klen u32, key
 * Written by this process a moment ago, so trusted: not checked again. */
typedef struct osse_bgroup_s {
    const osse_slice_t *parts;
    size_t nparts;
} osse_bgroup_t;

typedef struct osse_bgroup_iter_s {
    const osse_bgroup_t *g;
    size_t part;
    const char *p, *end;
} osse_bgroup_iter_t;

static inline void osse_bgroup_iter_init(osse_bgroup_iter_t *it, const osse_bgroup_t *g)
{
    it->g = g;
    it->part = 0;
    it->p = it->end = NULL;
}

/* The next op of the group in order into *op; false at the end. */
static inline bool osse_bgroup_next(osse_bgroup_iter_t *it, osse_bop_t *op)
{
    while (it->p == it->end) {
        if (it->part == it->g->nparts)
            return false;
        it->p = it->g->parts[it->part].ptr;
        it->end = it->p + it->g->parts[it->part].len;
        it->part++;
    }
    const char *p = it->p;
    uint32_t a, b, c;
    op->kind = (osse_bop_kind_t)(uint8_t)*p++;
    if (op->kind == OSSE_BOP_EVENT) {
        memcpy(&op->seq, p, 8);
        memcpy(&op->version, p + 8, 4);
        memcpy(&a, p + 12, 4);
        memcpy(&b, p + 16, 4);
        p += 20;
        op->stream = p;
        op->stream_len = a;
        op->val = p + a;
        op->vlen = b;
        op->key = NULL;
        op->klen = 0;
        p += (size_t)a + b;
    } else if (op->kind == OSSE_BOP_PUT) {
        memcpy(&a, p, 4);
        memcpy(&c, p + 4, 4);
        p += 8;
        op->key = p;
        op->klen = a;
        op->val = p + a;
        op->vlen = c;
        p += (size_t)a + c;
    } else {
        memcpy(&a, p, 4);
        p += 4;
        op->key = p;
        op->klen = a;
        op->val = NULL;
        op->vlen = 0;
        p += a;
    }
    it->p = p;
    return true;
}

/* How a backend is opened. */
typedef struct osse_backend_config_s {
    bool readonly; /* never written; may be opened while a writer has it */
    osse_log_compression_t compression;
} osse_backend_config_t;

typedef struct osse_backend_ops_s {
    const char *name; /* in log lines: "<name> write failed" */

    /* Opens (creating if missing, unless readonly) the store at where (a
     * folder for RocksDB). Returns 0, OSSE_EBUSY (another writer has it),
     * OSSE_ENOSPC (no room to open for writing) or OSSE_EIO. */
    int (*open)(const char *where, const osse_backend_config_t *cfg, void **out, osse_err_t *err);
    void (*close)(void *be); /* NULL-safe */
    /* The highest event seq stored, 0 when none. Returns 0 or OSSE_EIO. */
    int (*last_seq)(void *be, uint64_t *out, osse_err_t *err);
    /* Applies every op of g atomically; with sync, durably before it
     * returns 0 (without: handed to the store, durability unknown, only
     * for OSSE_LOG_FAULT_FSYNC). Returns 0 or OSSE_EIO with the store's
     * own words in err->msg. Writer thread. */
    int (*write)(void *be, const osse_bgroup_t *g, bool sync, osse_err_t *err);

    /* The reads of log.h, with its contracts: events with seq >= from in
     * seq order; one event; one side record; the side records whose key
     * starts with prefix, and those with start <= key < end (end NULL: no
     * bound), at most limit of them (0: no limit), in key order. A cb's
     * non-zero return stops the read and is returned. */
    int (*scan)(void *be, uint64_t from, osse_log_scan_cb cb, void *ud, osse_err_t *err);
    int (*get)(void *be, uint64_t seq, void **bytes, size_t *len, osse_err_t *err);
    int (*kv_get)(void *be, const void *key, size_t klen, void **val, size_t *vlen,
                  osse_err_t *err);
    int (*kv_scan)(void *be, const void *prefix, size_t plen, osse_kv_scan_cb cb, void *ud,
                   osse_err_t *err);
    int (*kv_range)(void *be, const void *start, size_t slen, const void *end, size_t elen,
                    size_t limit, osse_kv_scan_cb cb, void *ud, osse_err_t *err);
} osse_backend_ops_t;

/* RocksDB (rocks.c): the layout of log.h. */
extern const osse_backend_ops_t osse_backend_rocks;

#endif
