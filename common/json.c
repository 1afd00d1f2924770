/* json.c: JSON text from a jansson tree, byte for byte as jansson 2.14's
 * json_dumps(JSON_COMPACT) writes it: strings with \" \\ \b \f \n \r \t and
 * \u00XX (upper-case hex) for the other control characters, everything
 * else as its UTF-8 bytes; integers in decimal; reals as "%.17g" with ".0"
 * added when that reads as an integer and the exponent's "+" and leading
 * zeros dropped; object keys in insertion order, or sorted as jansson
 * sorts them (bytes, then length). */
#include "common/json.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 2048

static int put(osse_buf_t *o, const char *s, size_t n)
{
    return osse_buf_append(o, s, n) ? OSSE_ENOMEM : 0;
}

static int put_string(osse_buf_t *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!osse_utf8_valid(s, n))
        return OSSE_EINVAL;
    int rc = put(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        char esc[6] = {'\\', 0};
        size_t el = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        if (!(rc = put(o, s + run, i - run)))
            rc = put(o, esc, el);
        run = i + 1;
    }
    if (!rc)
        rc = put(o, s + run, n - run);
    return rc ? rc : put(o, "\"", 1);
}

static int put_integer(osse_buf_t *o, json_int_t v)
{
    char b[24], *p = b + sizeof b;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return put(o, p, (size_t)(b + sizeof b - p));
}

static int put_real(osse_buf_t *o, double d)
{
    char b[64];
    if (!isfinite(d))
        return OSSE_EINVAL;
    int n = snprintf(b, sizeof b - 3, "%.17g", d);
    if (n < 0 || (size_t)n >= sizeof b - 3)
        return OSSE_EINVAL;
    if (!strchr(b, '.') && !strchr(b, 'e')) {
        memcpy(b + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(b, 'e');
    if (e) {
        char *start = e + 1, *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(b + n + 1 - end));
            n -= (int)(end - start);
        }
    }
    return put(o, b, (size_t)n);
}

typedef struct {
    const char *k;
    size_t n;
    const json_t *v;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    int c = memcmp(x->k, y->k, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int put_value(osse_buf_t *o, const json_t *j, size_t flags, int depth);

static int put_member(osse_buf_t *o, bool first, const char *k, size_t n, const json_t *v,
                      size_t flags, int depth)
{
    int rc = first ? 0 : put(o, ",", 1);
    if (!rc && !(rc = put_string(o, k, n)) && !(rc = put(o, ":", 1)))
        rc = put_value(o, v, flags, depth + 1);
    return rc;
}

static int put_object(osse_buf_t *o, const json_t *j, size_t flags, int depth)
{
    const char *k;
    size_t n = 0, i = 0, size = json_object_size(j);
    json_t *v;
    int rc = put(o, "{", 1);
    if (rc || !size)
        return rc ? rc : put(o, "}", 1);
    if (!(flags & JSON_SORT_KEYS)) {
        json_object_keylen_foreach((json_t *)j, k, n, v)
        {
            if ((rc = put_member(o, i++ == 0, k, n, v, flags, depth)))
                return rc;
        }
        return put(o, "}", 1);
    }
    kv_t *kv = osse_reallocarray(NULL, size, sizeof *kv);
    json_object_keylen_foreach((json_t *)j, k, n, v) kv[i++] = (kv_t){k, n, v};
    qsort(kv, i, sizeof *kv, kv_cmp);
    for (size_t m = 0; !rc && m < i; m++)
        rc = put_member(o, m == 0, kv[m].k, kv[m].n, kv[m].v, flags, depth);
    free(kv);
    return rc ? rc : put(o, "}", 1);
}

static int put_value(osse_buf_t *o, const json_t *j, size_t flags, int depth)
{
    if (!j || depth > MAX_DEPTH)
        return OSSE_EINVAL;
    switch (json_typeof(j)) {
    case JSON_NULL: return put(o, "null", 4);
    case JSON_TRUE: return put(o, "true", 4);
    case JSON_FALSE: return put(o, "false", 5);
    case JSON_INTEGER: return put_integer(o, json_integer_value(j));
    case JSON_REAL: return put_real(o, json_real_value(j));
    case JSON_STRING: return put_string(o, json_string_value(j), json_string_length(j));
    case JSON_OBJECT: return put_object(o, j, flags, depth);
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        int rc = put(o, "[", 1);
        for (size_t i = 0; !rc && i < n; i++)
            if (!(rc = i ? put(o, ",", 1) : 0))
                rc = put_value(o, json_array_get(j, i), flags, depth + 1);
        return rc ? rc : put(o, "]", 1);
    }
    }
    return OSSE_EINVAL;
}

int osse_json_write(osse_buf_t *out, const json_t *j, size_t flags)
{
    size_t start = out->len;
    int rc = put_value(out, j, flags, 1);
    if (rc) {
        out->len = start;
        if (out->ptr)
            out->ptr[start] = '\0';
    }
    return rc;
}

char *osse_json_dumps(const json_t *j, size_t flags, size_t *len)
{
    osse_buf_t b;
    osse_buf_init(&b, 0);
    if (osse_json_write(&b, j, flags)) {
        osse_buf_close(&b);
        return NULL;
    }
    return osse_buf_take(&b, len);
}
