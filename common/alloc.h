/* alloc.h: osse's one allocator. Allocation failure dies (as Redis and h2o do).
 *
 * Every allocation osse makes itself goes through these functions, and none of
 * them returns NULL: when the heap refuses, one line
 *
 *   level=error msg="out of memory" bytes=N
 *
 * goes to the log (common/log.h, which never allocates) and the process
 * aborts (SIGABRT). A server that cannot allocate cannot answer, and a check
 * after every allocation is a path nobody tests; the log and the projections
 * are rebuilt from RocksDB at the next start. Sizes that come from outside
 * (bodies, declared lengths, files) are still checked before allocating: they
 * get an error, never this death.
 *
 * The memory is the C library's: free() it. jansson allocates through
 * osse_json_alloc (osse_alloc_setup_json, once at the start of each program)
 * so that its failures die the same way. */
#ifndef OSSE_COMMON_ALLOC_H
#define OSSE_COMMON_ALLOC_H

#include <stddef.h>

void *osse_malloc(size_t n) __attribute__((malloc, returns_nonnull));
/* Zeroed; n * size overflowing dies as a failure would. */
void *osse_calloc(size_t n, size_t size) __attribute__((malloc, returns_nonnull));
void *osse_realloc(void *p, size_t n) __attribute__((returns_nonnull));
/* realloc to n * size elements; an overflowing product dies. */
void *osse_reallocarray(void *p, size_t n, size_t size) __attribute__((returns_nonnull));
char *osse_strdup(const char *s) __attribute__((malloc, returns_nonnull));
/* The first n bytes of s (fewer at a NUL), NUL-terminated. */
char *osse_strndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));

/* Growable arrays: returns p grown (realloc) so that it holds at least need
 * elements of elem bytes, and updates *cap. Capacity doubles (from 8), so n
 * pushes cost O(n); a capacity or byte count that would overflow size_t
 * dies. Nothing is done when need <= *cap. Elements past the old capacity are
 * not initialised. */
void *osse_vec_grow(void *p, size_t *cap, size_t need, size_t elem)
    __attribute__((warn_unused_result));

/* OSSE_VEC_RESERVE(a, cap, need): a (T *) holds at least need elements;
 * cap is a size_t lvalue. OSSE_VEC_PUSH(a, n, cap, v): a[n++] = v. */
#define OSSE_VEC_RESERVE(a, cap, need) ((a) = osse_vec_grow((a), &(cap), (need), sizeof *(a)))
#define OSSE_VEC_PUSH(a, n, cap, v)                                                                \
    do {                                                                                           \
        OSSE_VEC_RESERVE(a, cap, (size_t)(n) + 1);                                                 \
        (a)[(n)++] = (v);                                                                          \
    } while (0)

/* Points jansson's allocator at osse's (json_set_alloc_funcs): its failures
 * then die with the same line. Call once, before any json_* call, at the
 * start of main (osse, each test and fuzz driver that uses jansson).
 * jansson's allocations are not counted by osse_alloc_fail_after. */
void osse_alloc_setup_json(void);

/* Fault injection, for death tests only: the n-th allocation through this
 * allocator from now on (n >= 1; 0 turns it off) fails as if the heap had
 * refused it, so the process logs the line and dies by SIGABRT. A test
 * forks, sets this in the child and checks the child's signal and stderr
 * in the parent; `osse serve --fault-alloc N` sets it once listening. Any
 * thread (the count is atomic). */
void osse_alloc_fail_after(unsigned long n);

#endif
