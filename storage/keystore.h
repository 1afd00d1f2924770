/* keystore.h: the request keys, kept apart from the log (SPEC §8).
 *
 * Each request has its own random 256-bit key. The key store holds it only
 * wrapped by the master key: XChaCha20-Poly1305 (IETF, libsodium) with a
 * fresh nonce and the request id as associated data, so that a wrapped key
 * cannot be passed off as another request's. The master key (32 raw random
 * bytes) is read from its own file at open and never written anywhere else.
 *
 * Layout of the key store's folder (default <data>/keys, 0700):
 *   keystore        nonce || seal("osse key store 1"), AD "osse/keystore":
 *                   made with the store; a master key that does not open it
 *                   is the wrong one, and the server refuses to start
 *   <n>.seg         segment n (1, 2, ...; 0600): records
 *                   id_len (1) || id || nonce || seal(request key) || tag,
 *                   AD = the id (id_len + 1 + 72 bytes), appended only;
 *                   a removed record's place is a filler of its length,
 *                   0xFF || length (1) || zeros
 *
 * Where a key is (osse_keyloc_t): its segment and byte offset. A removal
 * writes a filler in the record's place, so the other records never move
 * and a location, once made, stays true until its key is removed. The log
 * keeps each key's location (storage/log.h, kix/), so a start reads the
 * keys of what it needs and not the whole store (osse_keystore_read), and
 * the store itself keeps nothing per key in memory.
 *
 * Why segments: the log's writer thread makes the keys of a whole group of
 * batches durable at once (osse_keystore_append): one write and one
 * fdatasync of the current segment, not a file and an fsync per key (that
 * cost durable submissions nine tenths of their rate). A segment holds up to
 * OSSE_KEYSEG_RECORDS keys or OSSE_KEYSEG_BYTES; the next one costs one more
 * fsync, of the folder.
 *
 * Why not RocksDB: erasure (SPEC §8) must destroy a key for real. A
 * deleted RocksDB value lives on in older SST files and the WAL until a
 * compaction that nothing forces. osse_keystore_remove rewrites the key's
 * segment with a filler in its record's place into a temporary file, fsyncs it, renames it
 * over the segment and fsyncs the folder: the old segment's inode, the only
 * copy of the wrapped key osse ever wrote, is then gone from the
 * filesystem's namespace. (Blocks the filesystem itself keeps, or a
 * copy-on-write snapshot, are the operator's: docs/design.md.)
 *
 * Crashes: a segment is appended with one write, so a crash before its
 * fdatasync may leave a short last record, or zeros where the filesystem
 * had not yet written the data: osse_keystore_load cuts such a tail off (the
 * file is truncated to its last whole record). Those keys were never
 * durable, so no event was sealed with them. Any other record that does not
 * open with the master key and its id is OSSE_ECORRUPT. A rewrite that did
 * not finish leaves <n>.seg.tmp, removed at load; the segment then still
 * holds the key, and the removal is to be done again (keys without events
 * are found again at the next start).
 *
 * The first key store kept one file per key (<id>.key, 72 bytes): load
 * moves such files into a segment (appended, then unlinked).
 *
 * Durability: osse_keystore_append returns once the keys are durable; the
 * log's writer thread calls it before the synced write of the batches that
 * hold the keys' first events (osse_batch_key, log.h), so a key is always
 * durable before any event sealed with it, and the loop thread never waits
 * on the disk. */
#ifndef OSSE_STORAGE_KEYSTORE_H
#define OSSE_STORAGE_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define OSSE_KEY_BYTES 32
/* nonce (24) || key (32) || tag (16) */
#define OSSE_WRAPPED_BYTES 72
/* The longest id a key may be filed under ([A-Za-z0-9_-]). */
#define OSSE_KEY_ID_MAX 64

typedef struct osse_keystore_s osse_keystore_t;

/* Opens the key store in dir with the master key in master_path.
 * create: the data folder is new, so a missing master key file is made
 * (32 random bytes, 0600, never replacing one) and a missing store too.
 * Otherwise both must exist. Returns 0; OSSE_ENOTFOUND when the store or
 * the master key is missing (err says which); OSSE_EFORBIDDEN when the
 * master key is not the one the store was made with; OSSE_ECORRUPT for a
 * master key file that is not 32 bytes; OSSE_EIO. Before the loop runs. */
int osse_keystore_open(const char *dir, const char *master_path, bool create, osse_keystore_t **out,
                       osse_err_t *err);
void osse_keystore_close(osse_keystore_t *ks); /* NULL-safe; wipes the master key */

/* A key of n bytes (16 to 64) derived from the master key for another use
 * than wrapping (libsodium's crypto_kdf, context ctx: 8 characters, and
 * number id): the same for as long as the store has its master key. Any
 * thread. */
void osse_keystore_derive(const osse_keystore_t *ks, const char *ctx, uint64_t id, uint8_t *out,
                          size_t n);

/* Whether id can name a key (1..OSSE_KEY_ID_MAX of [A-Za-z0-9_-]). */
bool osse_keystore_id_ok(const char *id);

/* A fresh random key for id and its wrapped form. Any thread. Returns 0 or
 * OSSE_EINVAL (an id that cannot name a key). */
int osse_keystore_new_key(osse_keystore_t *ks, const char *id, uint8_t key[OSSE_KEY_BYTES],
                          uint8_t wrapped[OSSE_WRAPPED_BYTES]);

/* The same for n ids at once: keys gets n * OSSE_KEY_BYTES fresh random
 * bytes, wrapped[i] the wrapped form of key i under ids[i]. Any thread.
 * Returns 0 or OSSE_EINVAL (an id that cannot name a key; nothing made). */
int osse_keystore_new_keys(osse_keystore_t *ks, const char *const *ids, size_t n, uint8_t *keys,
                           uint8_t (*wrapped)[OSSE_WRAPPED_BYTES]);

/* A segment is rolled over once it holds this many keys or bytes. */
#define OSSE_KEYSEG_RECORDS 4096
#define OSSE_KEYSEG_BYTES (1u << 20)

/* One key to append: id (osse_keystore_id_ok) and its wrapped form. */
typedef struct {
    const char *id;
    const uint8_t *wrapped; /* OSSE_WRAPPED_BYTES */
} osse_keyrec_t;

/* Where a key's record is: segment seg (>= 1), at byte off. Stored as
 * OSSE_KEYLOC_BYTES: be32 seg || be32 off. */
typedef struct {
    uint32_t seg, off;
} osse_keyloc_t;
#define OSSE_KEYLOC_BYTES 8
void osse_keyloc_put(osse_keyloc_t loc, uint8_t out[OSSE_KEYLOC_BYTES]);
/* false for bytes that are not a location (length, segment 0). */
bool osse_keyloc_get(const void *in, size_t n, osse_keyloc_t *loc);

/* A key to read or remove: its id and where it is. */
typedef struct {
    const char *id;
    osse_keyloc_t loc;
} osse_keyref_t;

/* Appends n keys to the current segment with one write and makes them
 * durable with one fdatasync (and an fsync of the folder when a new
 * segment was begun); locs (NULL: not wanted) gets where each one is. All
 * or none: on failure the segment is cut back to where it was. recs are
 * borrowed. Blocks on the disk: the log's writer thread or the pool only;
 * safe against remove and read on other threads. Returns 0, OSSE_EINVAL
 * (an id that cannot name a key; nothing written) or OSSE_EIO (err says
 * why). */
int osse_keystore_append(osse_keystore_t *ks, const osse_keyrec_t *recs, size_t n,
                         osse_keyloc_t *locs, osse_err_t *err);

/* Calls cb for every key in the store, unwrapped (key is borrowed and wiped
 * after cb returns), with where it is, until cb returns non-zero
 * (returned). A torn tail is cut off (above); leftover temporary files are
 * removed. Call once, before the first append, or osse_keystore_load_tail
 * instead. Returns 0, OSSE_ECORRUPT (a record that does not open with the
 * master key and its id), OSSE_EIO. Before the loop runs. */
typedef int (*osse_keystore_cb)(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES],
                                osse_keyloc_t loc);
int osse_keystore_load(osse_keystore_t *ks, osse_keystore_cb cb, void *ud, osse_err_t *err);
/* The same for the last segment only (the one a crash may have left a
 * torn tail in, and the one appended to next): a start that reads the
 * keys it needs by location (osse_keystore_read). The first key store's
 * one file per key are not looked for: a folder that may have them is
 * read whole once (osse_keystore_load). */
int osse_keystore_load_tail(osse_keystore_t *ks, osse_keystore_cb cb, void *ud, osse_err_t *err);

/* Reads the n keys of refs, unwrapped, into keys (n * OSSE_KEY_BYTES, the
 * caller's sodium_malloc'd memory); found[i] says whether key i was there:
 * false when its segment, or a record of its id at its offset, is not
 * (removed). One open per segment. Any thread, safe against append and
 * remove. Returns 0, OSSE_ECORRUPT (a record of the id that does not open
 * with the master key) or OSSE_EIO. */
int osse_keystore_read(osse_keystore_t *ks, const osse_keyref_t *refs, size_t n, uint8_t *keys,
                       bool *found, osse_err_t *err);

/* Destroys the n keys of refs: rewrites each segment that holds any of
 * them with fillers in their places (above), then fsyncs the folder. A
 * segment left with fillers only goes, unless it is the current one. A ref
 * whose record is not there (removed before) is no error. Blocks on the
 * disk; any thread. Returns 0, OSSE_ECORRUPT or OSSE_EIO. */
int osse_keystore_remove(osse_keystore_t *ks, const osse_keyref_t *refs, size_t n, osse_err_t *err);

#endif
