/* files.h: the stored bytes of uploaded files, one file each under
 * <data>/files/ beside the log (what the bytes are, ciphertext since
 * SPEC §8, is the engine's: engine/files.c).
 *
 * A file is written whole to <root>/tmp/<id>, fsynced, renamed to
 * <root>/<id>, and the folder fsynced: a name under <root> always holds
 * every byte it will ever hold, and a crash leaves at most a temporary file
 * (removed by osse_fstore_open) or a whole file no record names (removed by
 * the engine at start). Ids are the engine's ([a-z0-9-], checked here too).
 *
 * A file may also be written and read in pieces (a writer, a reader), so
 * that a caller that transforms the bytes chunk by chunk never holds a
 * second whole copy of them.
 *
 * Threading: osse_fstore_open runs at start, before the loop serves;
 * write, read and remove (and writers and readers) block on the disk and
 * are for the libuv pool,
 * never the loop thread. None touches shared state: any thread may call
 * them at once for different ids. */
#ifndef OSSE_STORAGE_FILES_H
#define OSSE_STORAGE_FILES_H

#include <stddef.h>

#include "common/err.h"

/* The longest id the store takes. */
#define OSSE_FSTORE_ID_MAX 64

/* Makes <data_dir>/files and its tmp/ (mode 0700) and empties tmp/.
 * *root gets "<data_dir>/files" (free()). Returns 0 or OSSE_EIO. */
int osse_fstore_open(const char *data_dir, char **root, osse_err_t *err);

/* Stores n bytes as id, durably (above). Returns 0, OSSE_EINVAL (a bad id),
 * OSSE_EEXISTS, OSSE_ENOSPC or OSSE_EIO; on an error nothing is left. */
int osse_fstore_write(const char *root, const char *id, const void *p, size_t n, osse_err_t *err);

/* The same in pieces: begin makes <root>/tmp/<id> (OSSE_EINVAL, OSSE_EEXISTS
 * as write); put appends n bytes; commit fsyncs, renames and fsyncs the
 * folder, abort removes the temporary file. commit and abort free w (also
 * when commit fails: nothing is then left). Returns 0, OSSE_ENOSPC or
 * OSSE_EIO (put leaves w to abort). */
typedef struct osse_fstore_w_s osse_fstore_w_t;
int osse_fstore_begin(const char *root, const char *id, osse_fstore_w_t **out, osse_err_t *err);
int osse_fstore_put(osse_fstore_w_t *w, const void *p, size_t n, osse_err_t *err);
int osse_fstore_commit(osse_fstore_w_t *w, osse_err_t *err);
void osse_fstore_abort(osse_fstore_w_t *w); /* NULL-safe */

/* Opens id to read it in pieces; *size its length (at most max, else
 * OSSE_ECORRUPT). get reads up to n bytes into p: *got < n only at the end.
 * Returns 0, OSSE_ENOTFOUND, OSSE_ECORRUPT, OSSE_EIO. */
typedef struct osse_fstore_r_s osse_fstore_r_t;
int osse_fstore_open_read(const char *root, const char *id, size_t max, osse_fstore_r_t **out,
                          size_t *size, osse_err_t *err);
int osse_fstore_get(osse_fstore_r_t *r, void *p, size_t n, size_t *got, osse_err_t *err);
void osse_fstore_close_read(osse_fstore_r_t *r); /* NULL-safe */

/* Reads id whole into *out (malloc'd, free()) and *len; at most max bytes
 * (a longer file is OSSE_ECORRUPT). Returns 0, OSSE_ENOTFOUND, OSSE_EIO. */
int osse_fstore_read(const char *root, const char *id, size_t max, void **out, size_t *len,
                     osse_err_t *err);

/* Removes id and fsyncs the folder. A missing id is not an error. */
int osse_fstore_remove(const char *root, const char *id, osse_err_t *err);

/* Calls cb with each stored id (tmp/ excluded); cb returns nonzero to stop. */
typedef int (*osse_fstore_each_cb)(void *ud, const char *id);
int osse_fstore_each(const char *root, osse_fstore_each_cb cb, void *ud, osse_err_t *err);

#endif
