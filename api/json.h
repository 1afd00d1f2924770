/* json.h: a fast reader for the plain JSON request bodies of nearly every
 * call, ahead of jansson.
 *
 * osse_json_load_plain reads a body that is one JSON object of plain text:
 * strings without escapes, integers of at most 18 digits, reals, true,
 * false, null, arrays and objects at most OSSE_JSON_MAX_DEPTH deep. For
 * such a body it gives what json_loadb(p, len, JSON_REJECT_DUPLICATES)
 * would: the same values of the same types, keys in the same order. For
 * anything else (an escape, a long integer, a duplicate key, invalid UTF-8,
 * any error) it gives NULL, and the caller asks jansson, whose answer and
 * error messages stay the only ones: this reader never says a body is
 * wrong. Any thread (it keeps no state). */
#ifndef OSSE_API_JSON_H
#define OSSE_API_JSON_H

#include <jansson.h>
#include <stddef.h>

/* A new reference to the object p[0..len) holds, or NULL: see above. */
json_t *osse_json_load_plain(const char *p, size_t len);

#endif
