/* map.c: string-keyed open-addressing hash map (FNV-1a). */
#include "common/map.h"
#include "common/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tomb_;
#define TOMB (&tomb_)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

void osse_map_init(osse_map_t *m)
{
    memset(m, 0, sizeof *m);
}

void osse_map_close(osse_map_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static osse_map_entry_t *find_hashed(const osse_map_t *m, const char *key, uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    /* The stored hash spares most probes the key's cache line and a strcmp. */
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        osse_map_entry_t *e = &m->slots[i];
        if (!e->key)
            return NULL;
        if (e->hash == h && e->key != TOMB && strcmp(e->key, key) == 0)
            return e;
    }
}

static osse_map_entry_t *find(const osse_map_t *m, const char *key)
{
    return find_hashed(m, key, hash(key));
}

void *osse_map_get(const osse_map_t *m, const char *key)
{
    osse_map_entry_t *e = find(m, key);
    return e ? e->val : NULL;
}

static void grow(osse_map_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    while (m->len * 10 >= ncap * 7)
        ncap *= 2;
    osse_map_entry_t *ns = osse_calloc(ncap, sizeof *ns);
    for (size_t i = 0; i < m->cap; i++) {
        osse_map_entry_t *e = &m->slots[i];
        if (!e->key || e->key == TOMB)
            continue;
        size_t j = e->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *e;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->len;
}

int osse_map_put(osse_map_t *m, const char *key, void *val)
{
    uint64_t h = hash(key);
    osse_map_entry_t *e = find_hashed(m, key, h);
    if (e) {
        e->val = val;
        return 0;
    }
    if ((m->used + 1) * 10 >= m->cap * 7)
        grow(m);
    char *k = osse_strdup(key);
    size_t mask = m->cap - 1;
    size_t i = h & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (!m->slots[i].key)
        m->used++;
    m->slots[i].key = k;
    m->slots[i].val = val;
    m->slots[i].hash = h;
    m->len++;
    return 0;
}

void *osse_map_del(osse_map_t *m, const char *key)
{
    osse_map_entry_t *e = find(m, key);
    if (!e)
        return NULL;
    void *v = e->val;
    free(e->key);
    e->key = TOMB;
    e->val = NULL;
    m->len--;
    return v;
}

int osse_map_next(const osse_map_t *m, size_t *it, const char **key, void **val)
{
    while (*it < m->cap) {
        osse_map_entry_t *e = &m->slots[(*it)++];
        if (e->key && e->key != TOMB) {
            if (key)
                *key = e->key;
            if (val)
                *val = e->val;
            return 1;
        }
    }
    return 0;
}
