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
 *   <id>.key        nonce || seal(request key), AD = the id (72 bytes, 0600)
 *
 * Why one file per key: erasure (SPEC §8) must destroy a key for real. A
 * deleted RocksDB value lives on in older SST files and the WAL until a
 * compaction that nothing forces; an unlinked file whose directory is then
 * fsynced is gone from the filesystem's namespace at once, and its 72 bytes
 * are never copied elsewhere by osse. (Blocks the filesystem itself keeps,
 * or a copy-on-write snapshot, are the operator's: docs/design.md.)
 *
 * Durability: osse_keystore_write fsyncs the file, osse_keystore_sync the
 * folder; the log's writer thread does both before the synced write of the
 * batch that holds the key's first event (osse_batch_key, log.h), so a key
 * is always durable before any event sealed with it, and the loop thread
 * never waits on the disk. */
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

/* Whether id can name a key (1..OSSE_KEY_ID_MAX of [A-Za-z0-9_-]). */
bool osse_keystore_id_ok(const char *id);

/* A fresh random key for id and its wrapped form. Any thread. Returns 0 or
 * OSSE_EINVAL (an id that cannot name a key). */
int osse_keystore_new_key(osse_keystore_t *ks, const char *id, uint8_t key[OSSE_KEY_BYTES],
                          uint8_t wrapped[OSSE_WRAPPED_BYTES]);

/* Writes id's wrapped key to its file and fsyncs the file (not the folder:
 * osse_keystore_sync, once for many). Blocks on the disk: the log's writer
 * thread or the pool only. Returns 0 or OSSE_EIO (err says why). */
int osse_keystore_write(osse_keystore_t *ks, const char *id,
                        const uint8_t wrapped[OSSE_WRAPPED_BYTES], osse_err_t *err);
/* fsyncs the folder, so that files written or removed stay so. */
int osse_keystore_sync(osse_keystore_t *ks, osse_err_t *err);

/* Calls cb for every key in the store, unwrapped (key is borrowed and wiped
 * after cb returns), until cb returns non-zero (returned). Leftover
 * temporary files are removed. Returns 0, OSSE_ECORRUPT (a key file that
 * does not open with the master key and its id), OSSE_EIO. Before the loop
 * runs. */
typedef int (*osse_keystore_cb)(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES]);
int osse_keystore_load(osse_keystore_t *ks, osse_keystore_cb cb, void *ud, osse_err_t *err);

/* Destroys id's key: unlinks its file and fsyncs the folder. Blocks on the
 * disk. Returns 0 (also when there was none) or OSSE_EIO. */
int osse_keystore_remove(osse_keystore_t *ks, const char *id, osse_err_t *err);

#endif
