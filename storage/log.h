/* log.h: the append-only event log, with group commit; on RocksDB, through
 * a backend's table of operations (storage/backend.h, rocks.c).
 *
 * Key invariant: events are stored under a global `seq` without gaps, and each
 * batch (all events and side records of one or more commands) is applied
 * atomically with one synced RocksDB write. A commit callback runs on the
 * loop thread only after its batch is fsynced; batches commit in the order
 * osse_log_commit was called.
 *
 * Why this way: the loop thread never waits on fsync. It hands batches to one
 * writer thread, which takes every batch queued since its last write and
 * writes them all with a single synced WriteBatch (group commit), so
 * throughput is bounded by bytes, not by fsyncs per second. A failed write is
 * final: its batch's callback, and that of every batch after it, gets a
 * non-zero status and nothing more is written (the loop has already applied
 * the batch's events to its in-memory projections, and, as PostgreSQL
 * learned, a failed fsync cannot be retried safely); the owner stops.
 *
 * Layout on RocksDB (one default column family; rocks.c):
 *   'E' be64(seq)                      -> event bytes (osse_event_encode)
 *   'K' key                            -> value         (side records: idempotency...)
 *
 * There is no stream index: which seqs belong to a stream is part of the
 * engine's projections (rebuilt by the replay at start), and a second key per
 * event would double the memtable inserts on the writer thread, the hottest
 * part of the append path.
 *
 * Free space: the writer thread samples the filesystem of the log
 * (statvfs) before each write and once a second when idle, and keeps a
 * "low" flag with hysteresis (low below the reserve, normal again at the
 * reserve plus a quarter). The loop reads the flag without blocking
 * (osse_log_space_low) and is told of each change (osse_log_on_space), so
 * the engine can refuse writes before RocksDB meets a full disk rather than
 * abort after it (docs/design.md, "A nearly full disk").
 */
#ifndef OSSE_STORAGE_LOG_H
#define OSSE_STORAGE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/keystore.h"

typedef struct osse_log_s osse_log_t;
typedef struct osse_batch_s osse_batch_t;

/* Opens (creating if missing) the RocksDB database in dir. Finds the last seq.
 * Returns 0, OSSE_EBUSY (another process has it open for writing: RocksDB's
 * lock is held), OSSE_ENOSPC (its filesystem has less than 64 KiB free,
 * where RocksDB's own open would abort) or OSSE_EIO (detail in err). Before
 * the loop runs. */
int osse_log_open(const char *dir, osse_log_t **out, osse_err_t *err);

/* How RocksDB compresses the log's tables, at every level (the bottommost
 * one included): LZ4 (the default) or none (tests only: `osse serve
 * --log-compression none`, hidden, so that a search of the data folder's
 * bytes sees every value as stored; tables written before keep theirs until
 * compacted). */
typedef enum {
    OSSE_LOG_COMPRESSION_LZ4 = 0,
    OSSE_LOG_COMPRESSION_NONE,
} osse_log_compression_t;

/* Parses "lz4" or "none"; 0, or -1 for anything else. */
int osse_log_compression_parse(const char *s, osse_log_compression_t *out);

/* osse_log_open with the tables' compression. */
int osse_log_open_with(const char *dir, osse_log_compression_t compression, osse_log_t **out,
                       osse_err_t *err);

/* Opens an existing log for reading only, even while a server has it open
 * (auditors' replay). Never start or commit on it. */
int osse_log_open_readonly(const char *dir, osse_log_t **out, osse_err_t *err);

/* The free-space reserve, in bytes, before osse_log_start: 0 (the default)
 * is max(64 MiB, 2 % of the filesystem), at most a quarter of it. */
void osse_log_set_reserve(osse_log_t *log, uint64_t min_free);

/* Called on the loop thread when the log's filesystem goes below the
 * reserve (low true) or back above it with the hysteresis (low false).
 * Before osse_log_start. */
typedef void (*osse_space_cb)(void *ud, bool low);
void osse_log_on_space(osse_log_t *log, osse_space_cb cb, void *ud);

/* Whether the filesystem was below the reserve at the last sample (false
 * before osse_log_start). Any thread; never blocks. */
bool osse_log_space_low(const osse_log_t *log);

/* The bytes available at the last sample, and the reserve in force (after
 * osse_log_start). Any thread. */
uint64_t osse_log_space_free(const osse_log_t *log);
uint64_t osse_log_space_reserve(const osse_log_t *log);

/* Tests only (tests/integration/test_faults.py): makes the nth synced write
 * since open (1 = the first) fail as RocksDB reports an I/O error.
 * OSSE_LOG_FAULT_WRITE fails it before anything reaches RocksDB;
 * OSSE_LOG_FAULT_FSYNC hands the batch to RocksDB without syncing it (the
 * bytes may reach the disk later, as after a real failed fsync) and then
 * reports the failure. Either way the batch's callback gets OSSE_EIO, as
 * for a real failure. Before osse_log_start. */
typedef enum { OSSE_LOG_FAULT_NONE, OSSE_LOG_FAULT_WRITE, OSSE_LOG_FAULT_FSYNC } osse_log_fault_t;
void osse_log_fault(osse_log_t *log, osse_log_fault_t kind, uint64_t nth);

/* Starts the writer thread and binds completions to loop; samples the free
 * space once first, so that osse_log_space_low is already true on a disk
 * below its reserve. Loop thread. */
int osse_log_start(osse_log_t *log, uv_loop_t *loop, osse_err_t *err);

/* Waits until every committed batch is durable and its callback has run,
 * stops the writer thread and closes the async handle (run the loop once more
 * for its close callback). Loop thread. NULL-safe. */
void osse_log_stop(osse_log_t *log);

/* Waits until every committed batch is durable and its callback has run
 * (callbacks may commit more: those too), blocking the loop: for a stop.
 * Loop thread; nothing to do before osse_log_start. */
void osse_log_drain(osse_log_t *log);

/* The Merkle tree of the log's events (storage/merkle.h), kept from now on
 * by the writer thread: before each synced write it appends the events of
 * the group to m in seq order and puts the subtree hashes they complete
 * (osse_merkle_append) into the same write, so an event and its tree
 * hashes are durable together, and the loop hashes nothing (the leaves
 * were 3.7 % of the loop thread's samples a submission: bench/README.md,
 * "the seventeenth session"). m is the tree of the log's last seq
 * (osse_merkle_open); the log borrows it until osse_log_stop, and nobody
 * else touches it meanwhile. Before osse_log_start. */
typedef struct osse_merkle_s osse_merkle_t;
void osse_log_set_tree(osse_log_t *log, osse_merkle_t *m);
/* The tree's size and root as of the last durable batch (at set_tree, the
 * tree given), in a commit callback or after one: the batches of one group
 * all give the tree after the group. false (nothing set) without a tree.
 * Loop thread. */
bool osse_log_tree_durable(const osse_log_t *log, uint64_t *size, uint8_t root[32]);

/* Closes the database and frees log. After osse_log_stop (or if never started).
 * NULL-safe. */
void osse_log_close(osse_log_t *log);

/* The last seq written (0 when empty) at open time plus every seq handed to
 * osse_batch_event since, i.e. the last seq assigned. Loop thread. */
uint64_t osse_log_last_seq(const osse_log_t *log);

/* The last seq known durable (fsynced). Loop thread. */
uint64_t osse_log_durable_seq(const osse_log_t *log);

/* The number of synced RocksDB writes made since open: with the number of
 * batches committed, it tells how well group commit merges (benches,
 * metrics). Loop thread. */
uint64_t osse_log_sync_count(osse_log_t *log);

/* --- Batches: built on the loop thread, handed over whole. --- */

osse_batch_t *osse_batch_new(void);
/* The same, reusing the buffers of a batch whose callback ran (at most
 * OSSE_LOG_SPARE_BATCHES kept, each under OSSE_LOG_SPARE_BYTES): for the
 * batches committed every loop iteration. Loop thread. */
#define OSSE_LOG_SPARE_BATCHES 4
#define OSSE_LOG_SPARE_BYTES (4u << 20)
osse_batch_t *osse_log_batch_new(osse_log_t *log);
void osse_batch_free(osse_batch_t *b); /* NULL-safe; only for a batch never committed */

/* Adds an event's stored bytes under seq (stream and version are the
 * caller's record of them, handed to the backend: RocksDB keys events by
 * seq only and keeps neither; stream may be NULL).
 * seq must be osse_log_last_seq()+1 at the time of the call (no gaps); the
 * log's last seq advances. Returns 0 or OSSE_ENOMEM. Loop thread. */
int osse_batch_event(osse_batch_t *b, osse_log_t *log, uint64_t seq, const char *stream,
                     uint32_t version, const void *bytes, size_t len);

/* Adds a side record ('K' prefix added by the log). Returns 0 or OSSE_ENOMEM. */
int osse_batch_put(osse_batch_t *b, const void *key, size_t klen, const void *val, size_t vlen);
int osse_batch_delete(osse_batch_t *b, const void *key, size_t klen);

/* Files id's wrapped key (OSSE_WRAPPED_BYTES, copied) in the key store ks
 * with the batch: the writer thread writes and fsyncs it before the batch's
 * synced write, so the key is durable before the events sealed with it; if
 * the key cannot be written, the batch fails as a failed write does. One key
 * store per log. Returns 0 or OSSE_ENOMEM. Loop thread. */
struct osse_keystore_s;
int osse_batch_key(osse_batch_t *b, struct osse_keystore_s *ks, const char *id,
                   const uint8_t *wrapped);

/* Pending keys: a request key is made durable before its first event
 * (above), so a crash between the two leaves a key without events. So
 * that a start can find those without reading every request, keys made
 * durable have a pending record OSSE_LOG_KEY_PENDING<name>, synced before
 * the keys: one per write of keys, not one per key. Its value lists the
 * ids (each followed by a NUL); its name is its first id (ids are unique,
 * so names are). The writer's, for the keys of one group's osse_batch_key,
 * is deleted by that group's own synced write; osse_log_keys_pending's,
 * for keys made ahead, by the batch that takes the last of its ids
 * (osse_batch_keys_pending_done, the caller's bookkeeping). So a record
 * that survives may list ids whose events are durable as well as ids
 * whose events never were: a start must tell them apart
 * (osse_log_keys_pending_scan). Records of the versions before (one per id,
 * named by it, empty value) read as a record listing that one id. */
#define OSSE_LOG_KEY_PENDING "kpd/"
/* A synced write of one pending record listing ids (named ids[0]). Any
 * thread; not after a failed write. Returns 0 or OSSE_EIO. */
int osse_log_keys_pending(osse_log_t *log, const char *const *ids, size_t n, osse_err_t *err);
/* b deletes the pending record named name (ids[0] of its write). Returns
 * 0 or OSSE_ENOMEM. */
int osse_batch_keys_pending_done(osse_batch_t *b, const char *name);
/* Calls cb(ud, name, id) for each id of each pending record (name: the
 * record's, for osse_batch_keys_pending_done), until cb returns non-zero
 * (which is returned). A record whose value does not split into ids is
 * OSSE_EIO. Returns 0, cb's value or OSSE_EIO. Synchronous: before the
 * loop runs or off it. */
typedef int (*osse_log_pending_cb)(void *ud, const char *name, const char *id);
int osse_log_keys_pending_scan(osse_log_t *log, osse_log_pending_cb cb, void *ud, osse_err_t *err);

/* Where each key is (storage/keystore.h, osse_keyloc_t): a side record
 * OSSE_LOG_KEY_WHERE<id>, OSSE_KEYLOC_BYTES. Written once the key is in
 * its segment: by the writer in the batch that holds the key's first
 * events (osse_batch_key), by osse_log_keys_append for keys made ahead, by
 * a start for keys that had none (a key store written before). Deleted
 * when the key is removed (osse_log_keys_remove). A start reads the keys
 * it needs by it, not the whole key store. */
#define OSSE_LOG_KEY_WHERE "kix/"
/* Set once every key of the store has its location record: until then a
 * start reads the whole key store and writes them (engine.c). */
#define OSSE_LOG_KEY_WHERE_DONE "kixdone"
/* Whether the record is there; its synced write. Any thread. */
bool osse_log_keys_where_ready(osse_log_t *log);
int osse_log_keys_where_done(osse_log_t *log, osse_err_t *err);
/* Tests: deletes every location record and the mark, as an osse before
 * them left a data folder. Before the writer runs. Returns 0 or OSSE_EIO. */
int osse_log_keys_where_forget(osse_log_t *log, osse_err_t *err);
/* osse_keystore_append, then a synced write of the keys' locations.
 * Blocks: the pool or a start. Returns 0 or OSSE_EIO (err says why). */
int osse_log_keys_append(osse_log_t *log, osse_keystore_t *ks, const osse_keyrec_t *recs, size_t n,
                         osse_err_t *err);
/* The same, with the ids' pending record (named ids[0]) in the synced write
 * of their locations: for keys that a crash between the append and that
 * write leaves in the last segment, where a start looks for them
 * (engine.c: the uploads' file keys). */
int osse_log_keys_append_pending(osse_log_t *log, osse_keystore_t *ks, const osse_keyrec_t *recs,
                                 size_t n, osse_err_t *err);
/* A synced write of the n locations of ids (or their deletion: locs NULL).
 * Any thread. Returns 0 or OSSE_EIO. */
int osse_log_keys_where_put(osse_log_t *log, const char *const *ids, const osse_keyloc_t *locs,
                            size_t n, osse_err_t *err);
/* Where id's key is: 0 (*loc set), OSSE_ENOTFOUND (no record: never made,
 * removed, or its location not written: a crash), or a read's error. Any
 * thread. */
int osse_log_key_where(osse_log_t *log, const char *id, osse_keyloc_t *loc, osse_err_t *err);
/* Reads the keys of the n ids (osse_log_key_where, osse_keystore_read)
 * into keys (n * OSSE_KEY_BYTES, sodium_malloc'd by the caller); found[i]
 * false for one that has none. Any thread. Returns 0 or the error. */
int osse_log_keys_read(osse_log_t *log, osse_keystore_t *ks, const char *const *ids, size_t n,
                       uint8_t *keys, bool *found, osse_err_t *err);
/* Removes the keys of the n ids (found by osse_log_key_where; those
 * without a location are not in the store, or the caller gives them as
 * refs) from the key store for good (osse_keystore_remove), then deletes
 * their location records. Blocks: the pool or a start. Returns 0 or the
 * error. */
int osse_log_keys_remove(osse_log_t *log, osse_keystore_t *ks, const char *const *ids, size_t n,
                         osse_err_t *err);

/* Number of events in b. */
size_t osse_batch_count(const osse_batch_t *b);

typedef void (*osse_commit_cb)(void *ud, int status);

/* Takes b and queues it for the writer. cb(ud, 0) runs on the loop thread
 * after the batch is fsynced. An empty batch still gets its callback in
 * order. Once a write has failed, that batch's callback and every later
 * one's get OSSE_EIO instead, and nothing more is written: the log is done
 * until it is opened again. Loop thread. */
void osse_log_commit(osse_log_t *log, osse_batch_t *b, osse_commit_cb cb, void *ud);

/* --- Reads: synchronous; safe from any thread (use the libuv pool from the
 * loop thread, never the loop thread itself, except before the loop runs). --- */

typedef int (*osse_log_scan_cb)(void *ud, uint64_t seq, const void *bytes, size_t len);

/* Calls cb for each event with seq >= from, in order, until cb returns
 * non-zero (which is returned) or the end. Returns 0, OSSE_EIO. */
int osse_log_scan(osse_log_t *log, uint64_t from, osse_log_scan_cb cb, void *ud, osse_err_t *err);

/* Reads one event. *bytes is malloc'd (free()). Returns 0, OSSE_ENOTFOUND, OSSE_EIO. */
int osse_log_get(osse_log_t *log, uint64_t seq, void **bytes, size_t *len, osse_err_t *err);

typedef int (*osse_kv_scan_cb)(void *ud, const void *key, size_t klen, const void *val,
                               size_t vlen);

/* Calls cb for each side record whose key starts with prefix (prefix given
 * without the 'K'); keys passed to cb are without the 'K' too. */
int osse_log_kv_scan(osse_log_t *log, const void *prefix, size_t plen, osse_kv_scan_cb cb, void *ud,
                     osse_err_t *err);

/* Calls cb for each side record whose key k (without the 'K') has
 * start <= k and, when end is not NULL, k < end, in the order of the keys'
 * bytes (memcmp, the shorter first on a tie), for at most limit of them (0:
 * no limit), until cb returns non-zero (which is returned). A cursored read
 * resumes with start = the last key seen and a 0 byte appended. Returns 0,
 * cb's value or OSSE_EIO. */
int osse_log_kv_range(osse_log_t *log, const void *start, size_t slen, const void *end, size_t elen,
                      size_t limit, osse_kv_scan_cb cb, void *ud, osse_err_t *err);

/* Reads one side record. *val is malloc'd. Returns 0, OSSE_ENOTFOUND, OSSE_EIO. */
int osse_log_kv_get(osse_log_t *log, const void *key, size_t klen, void **val, size_t *vlen,
                    osse_err_t *err);

#endif
