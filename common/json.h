/* json.h: JSON text from a jansson tree, as json_dumps writes it.
 *
 * Why not json_dumps: jansson 2.14 checks every object and array it dumps
 * for a cycle by formatting its address with snprintf into a hash table;
 * rendering the five-key answer of a submission took 3.7 % of the loop
 * thread's time in the submission profile (bench/README.md), more than
 * building the tree. This writes the same bytes (a unit test compares it
 * with jansson on random trees) straight into an osse_buf_t. Trees built by
 * osse have no cycles. */
#ifndef OSSE_COMMON_JSON_H
#define OSSE_COMMON_JSON_H

#include <jansson.h>
#include <stddef.h>

#include "common/buf.h"

/* Flags: jansson's JSON_SORT_KEYS is honoured; the text is always compact
 * (JSON_COMPACT) and any value may be the root (JSON_ENCODE_ANY). */

/* Appends j's text to out. Returns 0, OSSE_ENOMEM, or OSSE_EINVAL for what
 * jansson would not dump either: a string that is not UTF-8, a real that is
 * not finite; and nesting deeper than 2,048 (osse refuses bodies nested
 * far less deep). out is left as it was on error. */
int osse_json_write(osse_buf_t *out, const json_t *j, size_t flags);

/* The same as a fresh NUL-terminated string (free()), or NULL; *len (if
 * given) its length: for json_dumps(j, JSON_COMPACT | flags). */
char *osse_json_dumps(const json_t *j, size_t flags, size_t *len);

#endif
