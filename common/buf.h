/* buf.h: growable byte buffers with a hard cap, and borrowed slices.
 *
 * Every buffer fed from outside has a maximum size (as curl's dynbuf): an
 * append past `max` fails with OSSE_ETOOBIG and leaves the buffer unchanged.
 * Allocation failure dies (common/alloc.h): OSSE_ETOOBIG is the only error. */
#ifndef OSSE_COMMON_BUF_H
#define OSSE_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct osse_slice_s {
    const char *ptr;
    size_t len;
} osse_slice_t;

typedef struct osse_buf_s {
    char *ptr; /* always NUL-terminated after a successful append */
    size_t len;
    size_t cap;
    size_t max; /* 0 = no cap */
} osse_buf_t;

void osse_buf_init(osse_buf_t *b, size_t max);
void osse_buf_close(osse_buf_t *b);
void osse_buf_reset(osse_buf_t *b);
int osse_buf_append(osse_buf_t *b, const void *p, size_t n);
int osse_buf_puts(osse_buf_t *b, const char *s);
int osse_buf_printf(osse_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for n more bytes (and the NUL) in one allocation of exactly
 * that size, so that appends up to it do not move the bytes: OSSE_ETOOBIG
 * past max. */
int osse_buf_reserve(osse_buf_t *b, size_t n);
/* Hands the heap block to the caller (free()), leaving b empty. */
char *osse_buf_take(osse_buf_t *b, size_t *len);

/* Big-endian integers of n bytes (1..8) in stored keys and formats: the
 * log's seqs, the tree's indexes, the heads, the export. */
static inline void osse_be_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static inline uint64_t osse_be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A signed 64-bit number as 8 big-endian bytes that sort as the numbers
 * do (the sign bit flipped): times in the keys of the indexes on disk. */
static inline void osse_be_put_signed(uint8_t *p, int64_t v)
{
    osse_be_put(p, (uint64_t)v ^ UINT64_C(0x8000000000000000), 8);
}

static inline int64_t osse_be_get_signed(const uint8_t *p)
{
    return (int64_t)(osse_be_get(p, 8) ^ UINT64_C(0x8000000000000000));
}

#endif
