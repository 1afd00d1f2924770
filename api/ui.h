/* ui.h: the pages under /ui/ (SPEC §13), read once from a folder at start.
 *
 * The folder's regular files whose names are [a-z0-9_-]+ and one of a fixed
 * set of extensions are read into memory by osse_ui_open, before the loop
 * runs; a request then only looks a name up in that table, so no request
 * reaches the disk, and no path a client sends (`..`, an absolute path, a
 * symlink) can name anything outside it. */
#ifndef OSSE_API_UI_H
#define OSSE_API_UI_H

#include <stddef.h>

#include "common/err.h"

typedef struct osse_ui_s osse_ui_t;

/* At most this many files, each at most OSSE_UI_MAX_FILE bytes. */
#define OSSE_UI_MAX_FILES 64
#define OSSE_UI_MAX_FILE (1u << 20)

/* Reads the pages of dir (subfolders, symlinks and other names are left
 * out). Errors: OSSE_EIO (dir cannot be read, or a file of it),
 * OSSE_ETOOBIG (a file or the count over the limits). Blocking: call before
 * the loop runs. The caller owns *out (osse_ui_close). */
int osse_ui_open(const char *dir, osse_ui_t **out, osse_err_t *err);

/* What /ui/<seg...> serves: segs are the path's segments after "ui" (n of
 * them, 0 for /ui/ itself). A page's clean name (track, services, ...) is its
 * .html file, /ui/services/<id> and /ui/registry/<number> are the pages that
 * read the rest of their address themselves; an asset is named whole
 * (common.js). Returns the bytes (borrowed, as long as ui) and sets *len and
 * *ctype, or NULL for no such page. ui may be NULL (no pages). Any thread. */
const char *osse_ui_find(const osse_ui_t *ui, char *const *segs, int n, size_t *len,
                         const char **ctype);

/* How many files were read, for the start's log line. */
size_t osse_ui_count(const osse_ui_t *ui);

void osse_ui_close(osse_ui_t *ui);

#endif
