/* alloc.c: the dying allocator (see alloc.h) and the growable-array helper.
 *
 * Fault injection is one atomic counter checked only while armed: the cost
 * when off is one relaxed load per allocation. */
#include "common/alloc.h"
#include "common/log.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong fail_at;   /* 0 = off; else the count that fails */
static atomic_ulong fail_seen; /* allocations since osse_alloc_fail_after */

void osse_alloc_fail_after(unsigned long n)
{
    atomic_store(&fail_seen, 0);
    atomic_store(&fail_at, n);
}

static __attribute__((noreturn)) void die(size_t n)
{
    osse_logf(OSSE_LEVEL_ERROR, "out of memory", "bytes=%zu", n);
    abort();
}

/* True when fault injection says this allocation fails. */
static int injected(void)
{
    unsigned long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    return at && atomic_fetch_add(&fail_seen, 1) + 1 == at;
}

void *osse_malloc(size_t n)
{
    void *p = injected() ? NULL : malloc(n ? n : 1);
    if (!p)
        die(n);
    return p;
}

void *osse_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        die(SIZE_MAX);
    void *p = injected() ? NULL : calloc(n ? n : 1, size ? size : 1);
    if (!p)
        die(n * size);
    return p;
}

void *osse_realloc(void *p, size_t n)
{
    /* realloc(p, 0) may free p and return NULL: never ask for 0 bytes. */
    void *q = injected() ? NULL : realloc(p, n ? n : 1);
    if (!q)
        die(n);
    return q;
}

void *osse_reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        die(SIZE_MAX);
    return osse_realloc(p, n * size);
}

char *osse_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(osse_malloc(n), s, n);
}

char *osse_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = osse_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void *osse_vec_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            die(SIZE_MAX);
        nc *= 2;
    }
    p = osse_reallocarray(p, nc, elem);
    *cap = nc;
    return p;
}

static void *json_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die(n);
    return p;
}

void osse_alloc_setup_json(void)
{
    json_set_alloc_funcs(json_alloc, free);
}
