/* map.h: a string-keyed hash map (open addressing, linear probing).
 *
 * Keys are copied; values are borrowed pointers owned by the caller. Used for
 * every in-memory index of the projections (requests by id, principals by
 * token hash, ...). Deletion uses tombstones; the table grows at 70% load. */
#ifndef OSSE_COMMON_MAP_H
#define OSSE_COMMON_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct osse_map_entry_s {
    char *key; /* NULL = empty; OSSE__MAP_TOMB = deleted */
    void *val;
    uint64_t hash; /* of key: a probe compares it before the key's bytes */
} osse_map_entry_t;

typedef struct osse_map_s {
    osse_map_entry_t *slots;
    size_t cap, len, used; /* used counts tombstones too */
} osse_map_t;

void osse_map_init(osse_map_t *m);
void osse_map_close(osse_map_t *m); /* frees keys, not values */
void *osse_map_get(const osse_map_t *m, const char *key);
/* Inserts or replaces. Returns 0 (allocation failure dies: common/alloc.h);
 * the int stays so that callers need not change. */
int osse_map_put(osse_map_t *m, const char *key, void *val);
/* Removes key; returns its value or NULL. */
void *osse_map_del(osse_map_t *m, const char *key);

/* Iteration: for (size_t i = 0; osse_map_next(m, &i, &k, &v);) */
int osse_map_next(const osse_map_t *m, size_t *it, const char **key, void **val);

#endif
