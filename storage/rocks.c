/* rocks.c: the log's store on RocksDB (osse_backend_rocks, backend.h).
 *
 * Layout (one default column family), unchanged since the first release:
 *   'E' be64(seq) -> event bytes (osse_event_encode)
 *   'K' key       -> value       (side records: idempotency, heads...)
 * Big-endian seqs make RocksDB's bytewise order the seq order, so a scan
 * from a seq is one seek, and the last seq one seek_for_prev. Stream and
 * version are not stored: the engine's projections know them (log.h).
 *
 * Invariant: one group is one rocksdb_write of one WriteBatch, so it is
 * atomic across events and side records, and with sync on it is in the WAL
 * and fsynced before write returns. The WriteBatch is the writer thread's,
 * reused between writes.
 *
 * Why this way: RocksDB's WriteBatch is the unit of atomicity and of
 * durability that group commit wants, and its reads are safe from any
 * thread while a write goes on. */
#define _GNU_SOURCE /* qsort_r */
#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/buf.h"
#include "common/alloc.h"
#include "storage/backend.h"

/* Below this, opening for writing is refused: RocksDB's open writes (a new
 * WAL, the MANIFEST, the WAL's flush), and on a filesystem with nothing left
 * it fails with an I/O error; this says why, once. A restart with a small
 * log opens with 64 KiB free. */
#define OPEN_FLOOR (64u << 10)
#define INFO_LOG_FATAL 4 /* rocksdb::InfoLogLevel::FATAL_LEVEL (no C constant) */
/* RocksDB's default number of levels; a per-level compression list shorter
 * than the levels gives its last entry to the rest. */
#define LOG_LEVELS 7

typedef struct rocks_s {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_filterpolicy_t *filter; /* owned by topts once set */
    rocksdb_writeoptions_t *wopts, *wopts_nosync;
    rocksdb_readoptions_t *ropts; /* point reads; RocksDB allows sharing across threads */
    rocksdb_writebatch_t *wb;     /* writer thread only */
    struct side_op_s *side;       /* writer thread only: a group's side records, sorted */
    size_t cside;
} rocks_t;

/* A side record's op of a group, and where it stood in the group. */
typedef struct side_op_s {
    osse_bop_t op;
    size_t at;
} side_op_t;

/* By key, then by place in the group: the last put of a key stays last. */
static int cmp_side(const void *a, const void *b)
{
    const side_op_t *x = a, *y = b;
    size_t n = x->op.klen < y->op.klen ? x->op.klen : y->op.klen;
    int c = memcmp(x->op.key, y->op.key, n);
    if (c)
        return c;
    if (x->op.klen != y->op.klen)
        return x->op.klen < y->op.klen ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

static void event_key(uint8_t key[9], uint64_t seq)
{
    key[0] = 'E';
    osse_be_put(key + 1, seq, 8);
}

/* 'K' and key into small when it fits, else a malloc'd buffer (free it
 * when it is not small). */
static uint8_t *side_key(uint8_t *small, size_t cap, const void *key, size_t klen)
{
    uint8_t *k = klen + 1 <= cap ? small : osse_malloc(klen + 1);
    k[0] = 'K';
    if (klen)
        memcpy(k + 1, key, klen);
    return k;
}

static uint64_t bytes_of(const struct statvfs *sv, fsblkcnt_t blocks)
{
    return (uint64_t)blocks * (sv->f_frsize ? sv->f_frsize : sv->f_bsize);
}

/* Takes ownership of a RocksDB error string, translating it once. */
static int rdb_err(osse_err_t *err, char *errptr, const char *what)
{
    osse_err_set(err, OSSE_EIO, "rocksdb %s: %s", what, errptr ? errptr : "unknown error");
    rocksdb_free(errptr);
    return OSSE_EIO;
}

static void rocks_close(void *be)
{
    rocks_t *r = be;
    if (!r)
        return;
    if (r->db)
        rocksdb_close(r->db);
    if (r->wb)
        rocksdb_writebatch_destroy(r->wb);
    free(r->side);
    rocksdb_readoptions_destroy(r->ropts);
    rocksdb_writeoptions_destroy(r->wopts);
    rocksdb_writeoptions_destroy(r->wopts_nosync);
    rocksdb_options_destroy(r->opts);
    /* The table options own the filter policy. */
    rocksdb_block_based_options_destroy(r->topts);
    free(r);
}

static int rocks_open(const char *dir, const osse_backend_config_t *cfg, void **out,
                      osse_err_t *err)
{
    char *e = NULL;
    int rc = 0;
    struct statvfs sv;
    *out = NULL;
    /* A folder not made yet is left to RocksDB. */
    if (!cfg->readonly && statvfs(dir, &sv) == 0 && bytes_of(&sv, sv.f_bavail) < OPEN_FLOOR)
        return osse_err_set(err, OSSE_ENOSPC,
                            "the filesystem of %s is full (%llu bytes free): RocksDB cannot open "
                            "its log for writing; free some space",
                            dir, (unsigned long long)bytes_of(&sv, sv.f_bavail));
    rocks_t *r = osse_calloc(1, sizeof *r);

    r->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(r->opts, 1);
    /* A larger memtable means fewer, larger flushes under a steady append load. */
    rocksdb_options_set_write_buffer_size(r->opts, 64u << 20);
    rocksdb_options_set_max_background_jobs(r->opts, 2);
    /* One choice for the whole database: the default compression, one for
     * each level (a per-level list overrides the default) and the
     * bottommost level's (which overrides both when set). But for the
     * flushes: a memtable goes to level 0 as it is, so that its writing
     * costs no compression (LZ4 was 23 % of the flush thread's samples
     * under a steady append load, bench/README.md "the sixteenth
     * session"); the first compaction out of level 0 compresses it, and
     * the tables of level 0 are few and short-lived. */
    int ctype = cfg->compression == OSSE_LOG_COMPRESSION_NONE ? rocksdb_no_compression
                                                              : rocksdb_lz4_compression;
    int per_level[LOG_LEVELS];
    for (size_t i = 0; i < LOG_LEVELS; i++)
        per_level[i] = i == 0 ? rocksdb_no_compression : ctype;
    rocksdb_options_set_compression(r->opts, ctype);
    rocksdb_options_set_compression_per_level(r->opts, per_level, LOG_LEVELS);
    rocksdb_options_set_bottommost_compression(r->opts, ctype);
    /* RocksDB's own LOG file is on the log's filesystem, and Debian's
     * librocksdb aborts on the line after one that failed there (an
     * assertion in WritableFileWriter once it has seen ENOSPC): on a full
     * disk, the lines RocksDB logs about the failed write itself did it.
     * Only fatal lines are written now (the LOG stays empty; the options are
     * in RocksDB's OPTIONS file); osse's own log says what failed. See
     * design.md, "A disk with nothing left". */
    rocksdb_options_set_info_log_level(r->opts, INFO_LOG_FATAL);
    r->topts = rocksdb_block_based_options_create();
    /* Point reads of side records ('K') mostly miss (idempotency checks): a
     * bloom filter keeps a miss from touching data blocks. */
    r->filter = rocksdb_filterpolicy_create_bloom_full(10);
    rocksdb_block_based_options_set_filter_policy(r->topts, r->filter);
    rocksdb_options_set_block_based_table_factory(r->opts, r->topts);

    r->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(r->wopts, 1);
    r->wopts_nosync = rocksdb_writeoptions_create(); /* sync off by default */
    r->ropts = rocksdb_readoptions_create();

    r->db = cfg->readonly ? rocksdb_open_for_read_only(r->opts, dir, 0, &e)
                          : rocksdb_open(r->opts, dir, &e);
    if (e) {
        r->db = NULL;
        /* RocksDB holds an fcntl lock on dir/LOCK while a database is open
         * for writing; its message for a lock held elsewhere is the only
         * sign of it, so it is recognised here, once. */
        if (!cfg->readonly && strstr(e, "lock file") && strstr(e, "LOCK")) {
            rc = osse_err_set(err, OSSE_EBUSY,
                              "%s is in use by another process (RocksDB lock held)", dir);
            rocksdb_free(e);
        } else {
            rc = rdb_err(err, e, "open");
        }
        rocks_close(r);
        return rc;
    }
    if (!cfg->readonly)
        r->wb = rocksdb_writebatch_create();
    *out = r;
    return 0;
}

/* Seeks to the last 'E' key: the highest seq stored. */
static int rocks_last_seq(void *be, uint64_t *out, osse_err_t *err)
{
    rocks_t *r = be;
    uint8_t last[9];
    memset(last, 0xff, sizeof last);
    last[0] = 'E';
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, r->ropts);
    char *e = NULL;
    int rc = 0;
    *out = 0;
    rocksdb_iter_seek_for_prev(it, (const char *)last, sizeof last);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen == 9 && k[0] == 'E')
            *out = osse_be_get(k + 1, 8);
    }
    rocksdb_iter_get_error(it, &e);
    if (e)
        rc = rdb_err(err, e, "seek");
    rocksdb_iter_destroy(it);
    return rc;
}

static int rocks_write(void *be, const osse_bgroup_t *g, bool sync, osse_err_t *err)
{
    rocks_t *r = be;
    osse_bgroup_iter_t it;
    osse_bop_t op;
    uint8_t small[128];
    char *e = NULL;
    /* RocksDB counts every key comparison in a thread-local perf context
     * unless told not to (its default level counts): a tenth of this
     * thread's time in the profile of issue 13. The level is per thread,
     * and this is the writer thread's only way in. */
    rocksdb_set_perf_level(rocksdb_disable);
    rocksdb_writebatch_clear(r->wb);
    /* The events first, in seq order, then the side records sorted by key:
     * the memtable's skiplist inserts a key after the one it inserted last
     * without searching from the top, so a group written in key order costs
     * the writer thread less than one whose records (a request's, at a
     * random id) break the run of events. The batch is applied as one, so
     * the order inside it changes nothing else; puts and deletes of one key
     * keep their order. */
    size_t nside = 0;
    osse_bgroup_iter_init(&it, g);
    while (osse_bgroup_next(&it, &op)) {
        if (op.kind == OSSE_BOP_EVENT) {
            uint8_t ekey[9];
            event_key(ekey, op.seq);
            rocksdb_writebatch_put(r->wb, (const char *)ekey, sizeof ekey, op.val, op.vlen);
            continue;
        }
        OSSE_VEC_RESERVE(r->side, r->cside, nside + 1);
        r->side[nside] = (side_op_t){op, nside};
        nside++;
    }
    if (nside > 1)
        qsort(r->side, nside, sizeof *r->side, cmp_side);
    for (size_t i = 0; i < nside; i++) {
        const osse_bop_t *o = &r->side[i].op;
        uint8_t *k = side_key(small, sizeof small, o->key, o->klen);
        if (o->kind == OSSE_BOP_PUT)
            rocksdb_writebatch_put(r->wb, (const char *)k, o->klen + 1, o->val, o->vlen);
        else
            rocksdb_writebatch_delete(r->wb, (const char *)k, o->klen + 1);
        if (k != small)
            free(k);
    }
    rocksdb_write(r->db, sync ? r->wopts : r->wopts_nosync, r->wb, &e);
    if (e) {
        /* The store's own words: the machinery logs them as they are. */
        osse_err_set(err, OSSE_EIO, "%s", e);
        rocksdb_free(e);
        return OSSE_EIO;
    }
    return 0;
}

static int rocks_scan(void *be, uint64_t from, osse_log_scan_cb cb, void *ud, osse_err_t *err)
{
    rocks_t *r = be;
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
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, ro);
    for (rocksdb_iter_seek(it, (const char *)start, sizeof start); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &klen);
        if (klen != 9 || k[0] != 'E')
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = cb(ud, osse_be_get(k + 1, 8), v, vlen)))
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
static int get_raw(rocks_t *r, const void *key, size_t klen, void **val, size_t *vlen,
                   osse_err_t *err)
{
    char *e = NULL;
    size_t n = 0;
    *val = NULL;
    *vlen = 0;
    char *v = rocksdb_get(r->db, r->ropts, key, klen, &n, &e);
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

static int rocks_get(void *be, uint64_t seq, void **bytes, size_t *len, osse_err_t *err)
{
    uint8_t key[9];
    event_key(key, seq);
    return get_raw(be, key, sizeof key, bytes, len, err);
}

static int rocks_kv_get(void *be, const void *key, size_t klen, void **val, size_t *vlen,
                        osse_err_t *err)
{
    uint8_t small[128];
    uint8_t *k = side_key(small, sizeof small, key, klen);
    int rc = get_raw(be, k, klen + 1, val, vlen, err);
    if (k != small)
        free(k);
    return rc;
}

/* Side records from 'K'+start on, in key order, while they begin with
 * 'K' and the first plen bytes of start (plen 0: any side record), below
 * 'K'+end when end is given (an upper bound RocksDB stops at), at most
 * limit of them (0: no limit). */
static int kv_iterate(rocks_t *r, const void *start, size_t slen, size_t plen, const void *end,
                      size_t elen, size_t limit, osse_kv_scan_cb cb, void *ud, const char *what,
                      osse_err_t *err)
{
    char *e = NULL;
    int rc = 0;
    size_t n = 0;
    uint8_t *s = side_key(NULL, 0, start, slen), *u = NULL;
    rocksdb_readoptions_t *ro = r->ropts;
    if (end) {
        u = side_key(NULL, 0, end, elen);
        ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_iterate_upper_bound(ro, (const char *)u, elen + 1);
    }
    rocksdb_iterator_t *it = rocksdb_create_iterator(r->db, ro);
    for (rocksdb_iter_seek(it, (const char *)s, slen + 1); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen + 1 || memcmp(k, s, plen + 1) != 0)
            break;
        if (limit && n++ == limit)
            break;
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = cb(ud, k + 1, klen - 1, v, vlen)))
            goto out;
    }
    rocksdb_iter_get_error(it, &e);
    if (e)
        rc = rdb_err(err, e, what);
out:
    rocksdb_iter_destroy(it);
    if (ro != r->ropts)
        rocksdb_readoptions_destroy(ro);
    free(s);
    free(u);
    return rc;
}

static int rocks_kv_scan(void *be, const void *prefix, size_t plen, osse_kv_scan_cb cb, void *ud,
                         osse_err_t *err)
{
    return kv_iterate(be, prefix, plen, plen, NULL, 0, 0, cb, ud, "kv scan", err);
}

static int rocks_kv_range(void *be, const void *start, size_t slen, const void *end, size_t elen,
                          size_t limit, osse_kv_scan_cb cb, void *ud, osse_err_t *err)
{
    return kv_iterate(be, start, slen, 0, end, elen, limit, cb, ud, "kv range", err);
}

const osse_backend_ops_t osse_backend_rocks = {
    .name = "rocksdb",
    .open = rocks_open,
    .close = rocks_close,
    .last_seq = rocks_last_seq,
    .write = rocks_write,
    .scan = rocks_scan,
    .get = rocks_get,
    .kv_get = rocks_kv_get,
    .kv_scan = rocks_kv_scan,
    .kv_range = rocks_kv_range,
};
