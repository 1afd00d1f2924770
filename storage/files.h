/* files.h: the bytes of uploaded files, one plain file each under
 * <data>/files/ beside the log.
 *
 * A file is written whole to <root>/tmp/<id>, fsynced, renamed to
 * <root>/<id>, and the folder fsynced: a name under <root> always holds
 * every byte it will ever hold, and a crash leaves at most a temporary file
 * (removed by osse_fstore_open) or a whole file no record names (removed by
 * the engine at start). Ids are the engine's ([a-z0-9-], checked here too).
 *
 * Threading: osse_fstore_open runs at start, before the loop serves;
 * write, read and remove block on the disk and are for the libuv pool,
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
