/* merkle.h: the RFC 6962 Merkle tree over the event log (issue 4).
 *
 * Leaf i (0-based) is the exact stored bytes of event seq i+1. Leaf hash =
 * SHA-256(0x00 || bytes), node hash = SHA-256(0x01 || left || right), the
 * empty tree's hash = SHA-256(""). Tree of size n: RFC 6962 §2.1 MTH.
 *
 * Key invariant: for every perfect, aligned subtree of level >= 4
 * (OSSE_MERKLE_STORED_LEVEL) that lies
 * wholly inside the log (leaves [index*2^level, (index+1)*2^level)), its
 * hash is stored as the side record "m" level(1 byte) be64(index), in the
 * same atomic batch as the event that completes it. So any stored size's
 * root, and any inclusion or consistency proof for sizes <= the durable
 * size, needs only O(log n) reads of 32-byte records, plus at most a few
 * events for the subtrees of levels 0 to 3.
 *
 * Why this way: appending keeps the right-edge frontier (the roots of the
 * perfect subtrees that make up the current tree, one per set bit of the
 * size) in memory, so an append hashes the leaf plus one node per carry:
 * O(1) amortised, no reads. The frontier is rebuilt at open from popcount(n)
 * stored hashes.
 */
#ifndef OSSE_STORAGE_MERKLE_H
#define OSSE_STORAGE_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/log.h"

#define OSSE_MERKLE_HASH 32

/* Subtrees of fewer than 2^OSSE_MERKLE_STORED_LEVEL leaves are not stored:
 * a proof rehashes them from their events (the siblings of levels 0 to 3
 * on a path: at most 15 events, read on the pool). Storing every level
 * cost two side records per event, and memtable inserts are the append
 * path's main cost (bench/README.md, Audit); from level 2 up it was half a
 * record, from level 4 up it is an eighth (a submission's four events: two
 * memtable inserts -> one half, issue 13). A folder written with level 2
 * and 3 hashes stored keeps them, unread (they are the same hashes); an
 * older osse, which reads them, cannot make proofs over what this one
 * appended: no downgrade. */
#define OSSE_MERKLE_STORED_LEVEL 4
/* A proof for a tree of up to 2^64 leaves has at most 64 (inclusion) or
 * 65 (consistency) hashes; callers give arrays of this many. */
#define OSSE_MERKLE_MAX_PROOF 66

/* The in-memory right edge of a tree: frontier[l] is valid iff bit l of size
 * is set, and is the hash of the perfect subtree of 2^l leaves at that place.
 * Caller-owned (plain struct) so that a verifier can keep one on its stack. */
typedef struct osse_merkle_s {
    uint64_t size;
    uint8_t frontier[64][OSSE_MERKLE_HASH];
} osse_merkle_t;

/* Where stored hashes come from: get(ud, level, index, out) fills out with the
 * hash of the perfect subtree (level, index), or returns OSSE_ENOTFOUND /
 * OSSE_EIO (detail in err). The log-backed functions below use the side
 * records; tests and tools may provide their own. */
typedef struct osse_merkle_store_s {
    int (*get)(void *ud, unsigned level, uint64_t index, uint8_t out[OSSE_MERKLE_HASH],
               osse_err_t *err);
    void *ud;
} osse_merkle_store_t;

/* Where new perfect-subtree hashes go on append (NULL: nowhere, e.g. in a
 * verifier). Returns 0 or a negative OSSE_E* code. */
typedef int (*osse_merkle_put_fn)(void *ud, unsigned level, uint64_t index,
                                  const uint8_t hash[OSSE_MERKLE_HASH]);

/* --- Pure hashing helpers (any thread). --- */

void osse_merkle_leaf_hash(const void *bytes, size_t len, uint8_t out[OSSE_MERKLE_HASH]);
void osse_merkle_node_hash(const uint8_t left[OSSE_MERKLE_HASH],
                           const uint8_t right[OSSE_MERKLE_HASH], uint8_t out[OSSE_MERKLE_HASH]);

/* A running SHA-256 with the tree's (libcrypto's) code, for hashing a whole
 * export (its closing signature covers the SHA-256 of all its bytes).
 * Caller-owned, no allocation; the state is libcrypto's, kept opaque. */
typedef struct osse_merkle_sha256_s {
    _Alignas(16) unsigned char state[128];
} osse_merkle_sha256_t;
void osse_merkle_sha256_init(osse_merkle_sha256_t *h);
void osse_merkle_sha256_update(osse_merkle_sha256_t *h, const void *p, size_t len);
void osse_merkle_sha256_final(osse_merkle_sha256_t *h, uint8_t out[OSSE_MERKLE_HASH]);

/* The side-record key of a stored hash: "m" level be64(index); 10 bytes. */
void osse_merkle_key(unsigned level, uint64_t index, uint8_t key[10]);

/* --- The appending tree. --- */

/* Empties m (size 0). */
void osse_merkle_init(osse_merkle_t *m);

/* Sets m to the tree of `size` leaves whose frontier hashes are given in
 * `hashes`, highest level first (popcount(size) of them, as in an export
 * header). Returns 0 or OSSE_EINVAL if n != popcount(size). */
int osse_merkle_set_frontier(osse_merkle_t *m, uint64_t size, const uint8_t (*hashes)[32],
                             size_t n);

/* Writes the frontier of m into hashes, highest level first; returns how many
 * (popcount(size)). hashes must hold 64 entries. */
size_t osse_merkle_get_frontier(const osse_merkle_t *m, uint8_t (*hashes)[32]);

/* Loads the frontier of the tree of `size` leaves from store (popcount(size)
 * reads). Returns 0, OSSE_ENOTFOUND (a hash is missing: the store is not a
 * tree of that size; detail in err) or OSSE_EIO. */
int osse_merkle_load(osse_merkle_t *m, const osse_merkle_store_t *store, uint64_t size,
                     osse_err_t *err);

/* Allocates a tree and loads it for the log's current last seq. Call after
 * osse_log_open, before any osse_batch_event. Returns 0, OSSE_ENOMEM,
 * OSSE_ENOTFOUND (the log has events without stored tree hashes), OSSE_EIO. */
int osse_merkle_open(osse_log_t *log, osse_merkle_t **out, osse_err_t *err);
void osse_merkle_close(osse_merkle_t *m); /* NULL-safe */

/* Appends one leaf: hashes bytes, and calls put for the leaf hash (level 0)
 * and for each perfect subtree the leaf completes. Returns 0 or put's error
 * (m is then unchanged). Any thread that owns m. */
int osse_merkle_push(osse_merkle_t *m, const void *bytes, size_t len, osse_merkle_put_fn put,
                     void *ud);

/* The same with the leaf hash already computed (a verifier that checked it). */
int osse_merkle_push_hash(osse_merkle_t *m, const uint8_t leaf_hash[OSSE_MERKLE_HASH],
                          osse_merkle_put_fn put, void *ud);

/* osse_merkle_push into a log batch (the hashes of the stored levels become
 * side records of b), for the events of the log in seq order, by the thread
 * that owns m: the log's writer (osse_log_set_tree), or a test or bench
 * that writes its own log. Returns 0 or OSSE_ENOMEM. */
int osse_merkle_append(osse_merkle_t *m, osse_batch_t *b, const void *bytes, size_t len);

uint64_t osse_merkle_size(const osse_merkle_t *m);

/* The root of m's current tree, from the frontier (no reads). */
void osse_merkle_root_now(const osse_merkle_t *m, uint8_t out[OSSE_MERKLE_HASH]);

/* --- Reads from stored hashes: O(log n) reads each. With a log: any thread
 * except the loop thread (they read RocksDB), and sizes <= the durable size
 * (hashes of later sizes may not be written yet). --- */

/* MTH of the first `size` leaves. size 0 gives SHA-256(""). Returns 0,
 * OSSE_ENOTFOUND, OSSE_EIO. */
int osse_merkle_store_root(const osse_merkle_store_t *s, uint64_t size,
                           uint8_t out[OSSE_MERKLE_HASH], osse_err_t *err);

/* RFC 6962 §2.1.1 PATH(leaf_index, D[size]): *n hashes into hashes, leaf's
 * sibling first. Returns 0, OSSE_EINVAL (leaf_index >= size), OSSE_ENOTFOUND,
 * OSSE_EIO. */
int osse_merkle_store_inclusion(const osse_merkle_store_t *s, uint64_t leaf_index, uint64_t size,
                                uint8_t (*hashes)[32], size_t *n, osse_err_t *err);

/* RFC 6962 §2.1.2 PROOF(from, D[to]) (SUBPROOF with b = true): *n hashes.
 * from == to gives an empty proof. Returns 0, OSSE_EINVAL (from == 0 or
 * from > to), OSSE_ENOTFOUND, OSSE_EIO. */
int osse_merkle_store_consistency(const osse_merkle_store_t *s, uint64_t from, uint64_t to,
                                  uint8_t (*hashes)[32], size_t *n, osse_err_t *err);

/* A store reading a log's side records (valid while log is open). */
osse_merkle_store_t osse_merkle_log_store(osse_log_t *log);

/* The same over a log's side records. Sizes must also be <= the log's last
 * seq (else OSSE_EINVAL). */
int osse_merkle_root(osse_log_t *log, uint64_t size, uint8_t out[OSSE_MERKLE_HASH],
                     osse_err_t *err);
int osse_merkle_inclusion(osse_log_t *log, uint64_t leaf_index, uint64_t size,
                          uint8_t (*hashes)[32], size_t *n, osse_err_t *err);
int osse_merkle_consistency(osse_log_t *log, uint64_t from, uint64_t to, uint8_t (*hashes)[32],
                            size_t *n, osse_err_t *err);
/* The stored leaf hash of leaf_index (= seq - 1). 0, OSSE_ENOTFOUND, OSSE_EIO. */
int osse_merkle_leaf(osse_log_t *log, uint64_t leaf_index, uint8_t out[OSSE_MERKLE_HASH],
                     osse_err_t *err);

/* --- Verification (pure, any thread): RFC 9162 §2.1.3.2 and §2.1.4.2. --- */

/* 0 if `hashes` proves leaf_hash is leaf leaf_index of the tree of size
 * `size` with root `root`; OSSE_ECORRUPT (detail in err) otherwise. */
int osse_merkle_verify_inclusion(uint64_t leaf_index, uint64_t size,
                                 const uint8_t leaf_hash[OSSE_MERKLE_HASH],
                                 const uint8_t root[OSSE_MERKLE_HASH], const uint8_t (*hashes)[32],
                                 size_t n, osse_err_t *err);

/* 0 if `hashes` proves the tree of size `from` with root from_root is a prefix
 * of the tree of size `to` with root to_root; OSSE_ECORRUPT otherwise (also
 * for from == 0 or from > to). */
int osse_merkle_verify_consistency(uint64_t from, uint64_t to,
                                   const uint8_t from_root[OSSE_MERKLE_HASH],
                                   const uint8_t to_root[OSSE_MERKLE_HASH],
                                   const uint8_t (*hashes)[32], size_t n, osse_err_t *err);

#endif
