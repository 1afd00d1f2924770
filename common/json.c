/* json.c: JSON text to and from jansson trees. Writing: byte for byte as jansson 2.14's
 * json_dumps(JSON_COMPACT) writes it: strings with \" \\ \b \f \n \r \t and
 * \u00XX (upper-case hex) for the other control characters, everything
 * else as its UTF-8 bytes; integers in decimal; reals as "%.17g" with ".0"
 * added when that reads as an integer and the exponent's "+" and leading
 * zeros dropped; object keys in insertion order, or sorted as jansson
 * sorts them (bytes, then length). Reading: see osse_json_read. */
#include "common/json.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/utf8.h"

#include <errno.h>
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

/* --- reading ---
 *
 * A recursive descent over the bytes that builds the tree with jansson's
 * own constructors. It takes only what it is sure of: on anything else (an
 * error, a duplicate key, \u0000, a lone surrogate, a number out of range
 * or longer than NUM_MAX, nesting deeper than READ_DEPTH, no memory) it
 * gives up, and jansson parses the text instead, so that every error, and
 * its message, is jansson's. */

#define READ_DEPTH 64
#define NUM_MAX 64
#define STR_STACK 256

typedef struct {
    const char *p, *end;
    int depth;
} rd_t;

static json_t *rd_value(rd_t *r);

static void rd_space(rd_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *s, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 0;
}

/* The escapes of s[0..n) (checked whole by rd_string) into out, which has
 * room for n bytes: no escape grows. Returns the length, or -1. */
static long unescape(const char *s, size_t n, char *out)
{
    char *o = out;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            *o++ = s[i];
            continue;
        }
        char c = s[++i];
        switch (c) {
        case '"':
        case '\\':
        case '/': *o++ = c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (n - i < 5 || hex4(s + i + 1, &cp) || cp == 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
                return -1;
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (n - i < 7 || s[i + 1] != '\\' || s[i + 2] != 'u' || hex4(s + i + 3, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp < 0x80) {
                *o++ = (char)cp;
            } else if (cp < 0x800) {
                *o++ = (char)(0xC0 | cp >> 6);
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                *o++ = (char)(0xE0 | cp >> 12);
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            } else {
                *o++ = (char)(0xF0 | cp >> 18);
                *o++ = (char)(0x80 | (cp >> 12 & 0x3F));
                *o++ = (char)(0x80 | (cp >> 6 & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default: return -1;
        }
    }
    return o - out;
}

/* The string at r->p (its opening quote) as its bytes: calls put(ctx, s,
 * n) with them and returns what it returns, or -1. */
static int rd_string(rd_t *r, int (*put)(void *, const char *, size_t), void *ctx)
{
    const char *s = ++r->p;
    bool esc = false;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p++;
        if (c == '\\') {
            if (r->p == r->end)
                return -1;
            r->p++;
            esc = true;
        } else if (c < 0x20) {
            return -1;
        }
    }
    if (r->p == r->end)
        return -1;
    size_t n = (size_t)(r->p++ - s);
    if (!osse_utf8_valid(s, n))
        return -1;
    if (!esc)
        return put(ctx, s, n);
    char stack[STR_STACK], *b = n <= sizeof stack ? stack : malloc(n);
    if (!b)
        return -1;
    long m = unescape(s, n, b);
    int rc = m < 0 ? -1 : put(ctx, b, (size_t)m);
    if (b != stack)
        free(b);
    return rc;
}

static int put_str(void *ctx, const char *s, size_t n)
{
    return (*(json_t **)ctx = json_stringn_nocheck(s, n)) ? 0 : -1;
}

typedef struct {
    rd_t *r;
    json_t *obj;
} member_t;

/* A member of an object: the key is s[0..n), the value follows. */
static int put_member_rd(void *ctx, const char *s, size_t n)
{
    member_t *m = ctx;
    rd_t *r = m->r;
    rd_space(r);
    if (r->p == r->end || *r->p != ':')
        return -1;
    r->p++;
    rd_space(r);
    json_t *v = rd_value(r);
    size_t size = json_object_size(m->obj);
    if (!v || json_object_setn_new_nocheck(m->obj, s, n, v))
        return -1;
    return json_object_size(m->obj) == size + 1 ? 0 : -1; /* a duplicate: jansson's to judge */
}

static json_t *rd_number(rd_t *r)
{
    const char *s = r->p, *p = s, *e = r->end;
    bool real = false;
    if (p < e && *p == '-')
        p++;
    if (p < e && *p == '0') {
        p++;
        if (p < e && *p >= '0' && *p <= '9')
            return NULL;
    } else if (p < e && *p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    } else {
        return NULL;
    }
    if (p < e && *p == '.') {
        real = true;
        if (++p == e || *p < '0' || *p > '9')
            return NULL;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        real = true;
        if (++p < e && (*p == '+' || *p == '-'))
            p++;
        if (p == e || *p < '0' || *p > '9')
            return NULL;
        while (p < e && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - s);
    char text[NUM_MAX], *end;
    if (n >= sizeof text)
        return NULL;
    memcpy(text, s, n);
    text[n] = '\0';
    errno = 0;
    json_t *v;
    if (real) {
        /* As jansson: an underflow (ERANGE, a subnormal or zero) is taken. */
        double d = strtod(text, &end);
        v = (errno && isinf(d)) || end != text + n ? NULL : json_real(d);
    } else {
        long long i = strtoll(text, &end, 10);
        v = errno || end != text + n ? NULL : json_integer(i);
    }
    r->p = p;
    return v;
}

static bool rd_word(rd_t *r, const char *w, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return false;
    r->p += n;
    return true;
}

static json_t *rd_container(rd_t *r, bool object)
{
    char close = object ? '}' : ']';
    json_t *c = object ? json_object() : json_array();
    if (!c || ++r->depth > READ_DEPTH)
        goto fail;
    r->p++;
    rd_space(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return c;
    }
    for (;;) {
        if (object) {
            member_t m = {r, c};
            if (r->p == r->end || *r->p != '"' || rd_string(r, put_member_rd, &m))
                goto fail;
        } else {
            json_t *v = rd_value(r);
            if (!v || json_array_append_new(c, v))
                goto fail;
        }
        rd_space(r);
        if (r->p == r->end)
            goto fail;
        char ch = *r->p++;
        if (ch == close)
            break;
        if (ch != ',')
            goto fail;
        rd_space(r);
    }
    r->depth--;
    return c;
fail:
    json_decref(c);
    return NULL;
}

static json_t *rd_value(rd_t *r)
{
    if (r->p == r->end)
        return NULL;
    switch (*r->p) {
    case '{': return rd_container(r, true);
    case '[': return rd_container(r, false);
    case '"': {
        json_t *s = NULL;
        return rd_string(r, put_str, &s) ? NULL : s;
    }
    case 't': return rd_word(r, "true", 4) ? json_true() : NULL;
    case 'f': return rd_word(r, "false", 5) ? json_false() : NULL;
    case 'n': return rd_word(r, "null", 4) ? json_null() : NULL;
    default: return rd_number(r);
    }
}

json_t *osse_json_read(const char *text, size_t n, size_t flags)
{
    rd_t r = {text, text + n, 0};
    rd_space(&r);
    json_t *j = NULL;
    if (r.p < r.end && ((flags & JSON_DECODE_ANY) || *r.p == '{' || *r.p == '['))
        j = rd_value(&r);
    if (j) {
        rd_space(&r);
        if (r.p == r.end)
            return j;
        json_decref(j);
    }
    return NULL;
}

json_t *osse_json_loadb(const char *text, size_t n, size_t flags, json_error_t *err)
{
    json_t *j = osse_json_read(text, n, flags);
    return j ? j : json_loadb(text, n, flags, err);
}
