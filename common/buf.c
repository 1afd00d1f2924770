/* buf.c: growable, capped byte buffers. */
#include "common/buf.h"
#include "common/alloc.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void osse_buf_init(osse_buf_t *b, size_t max)
{
    b->ptr = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void osse_buf_close(osse_buf_t *b)
{
    if (!b)
        return;
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

void osse_buf_reset(osse_buf_t *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

static int reserve(osse_buf_t *b, size_t n)
{
    /* Room already (the common case of a reused buffer): no call out. */
    if (n < b->cap - b->len && !b->max)
        return 0;
    if (b->max && b->len + n > b->max)
        return OSSE_ETOOBIG;
    if (n > SIZE_MAX - b->len - 1)
        return OSSE_ETOOBIG;
    size_t need = b->len + n + 1;
    /* At least 64 bytes at first: most buffers hold a short line. */
    b->ptr = osse_vec_grow(b->ptr, &b->cap, need < 64 ? 64 : need, 1);
    return 0;
}

int osse_buf_reserve(osse_buf_t *b, size_t n)
{
    if ((b->max && b->len + n > b->max) || n > SIZE_MAX - b->len - 1)
        return OSSE_ETOOBIG;
    size_t need = b->len + n + 1;
    if (b->cap < need) {
        b->ptr = osse_realloc(b->ptr, need);
        b->cap = need;
    }
    return 0;
}

int osse_buf_append(osse_buf_t *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

int osse_buf_puts(osse_buf_t *b, const char *s)
{
    return osse_buf_append(b, s, strlen(s));
}

int osse_buf_printf(osse_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return OSSE_EINVAL;
    int rc = reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *osse_buf_take(osse_buf_t *b, size_t *len)
{
    char *p = b->ptr;
    if (len)
        *len = b->len;
    b->ptr = NULL;
    b->len = b->cap = 0;
    return p;
}
