/* json.c: the plain-body reader of json.h.
 *
 * Invariant: a non-NULL answer is exactly jansson 2.14's for the same bytes
 * with JSON_REJECT_DUPLICATES. So every rule below is jansson's own, or
 * stricter (then the body goes to jansson): the white space it skips
 * (space, tab, LF, CR), its UTF-8 check (utf.c: no overlong forms, no
 * surrogates, nothing past U+10FFFF), no control bytes in strings, no
 * leading zeros, a fraction and an exponent each with a digit, an integer
 * is a number without '.', 'e' or 'E', reals by strtod as jansson's
 * jsonp_strtod, and the object built as its parse_object builds it
 * (json_object_setn_new_nocheck, in the order of the text).
 *
 * Why: jansson reads a byte at a time through a stream with a callback per
 * byte and a growing buffer per token; parsing the body of a submission was
 * 12 % of the loop thread's CPU (bench/README.md, Issue 13). */
#include "api/json.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* As OSSE_JSON_MAX_DEPTH (api/server.h), which the caller checks first. */
#define PLAIN_MAX_DEPTH 32
/* Longer reals go to jansson (no body of osse's has one). */
#define REAL_MAX 64

typedef struct rd_s {
    const unsigned char *p, *end;
    int depth;
} rd_t;

static json_t *value(rd_t *r);

static void ws(rd_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* The length of the valid UTF-8 sequence at p (of a byte >= 0x80), or 0:
 * jansson's utf8_check_first and utf8_check_full. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned u = p[0];
    size_t n;
    uint32_t v;
    if (u >= 0xC2 && u <= 0xDF)
        n = 2, v = u & 0x1F;
    else if (u >= 0xE0 && u <= 0xEF)
        n = 3, v = u & 0x0F;
    else if (u >= 0xF0 && u <= 0xF4)
        n = 4, v = u & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
        (n == 4 && v < 0x10000))
        return 0;
    return n;
}

/* A string's bytes, after its opening quote; r->p ends after the closing one. */
static bool string_span(rd_t *r, const char **s, size_t *n)
{
    const unsigned char *start = r->p;
    while (r->p < r->end) {
        unsigned c = *r->p;
        if (c == '"') {
            *s = (const char *)start;
            *n = (size_t)(r->p - start);
            r->p++;
            return true;
        }
        if (c == '\\' || c < 0x20)
            return false;
        if (c < 0x80) {
            r->p++;
        } else {
            size_t k = utf8_seq(r->p, r->end);
            if (!k)
                return false;
            r->p += k;
        }
    }
    return false;
}

static bool is_digit(const unsigned char *p, const unsigned char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static json_t *number(rd_t *r)
{
    const unsigned char *start = r->p;
    bool neg = false;
    if (r->p < r->end && *r->p == '-')
        neg = true, r->p++;
    if (!is_digit(r->p, r->end))
        return NULL;
    const unsigned char *digits = r->p;
    if (*r->p == '0') {
        r->p++;
        if (is_digit(r->p, r->end))
            return NULL;
    } else {
        while (is_digit(r->p, r->end))
            r->p++;
    }
    bool real = false;
    if (r->p < r->end && *r->p == '.') {
        r->p++;
        if (!is_digit(r->p, r->end))
            return NULL;
        while (is_digit(r->p, r->end))
            r->p++;
        real = true;
    }
    if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
            r->p++;
        if (!is_digit(r->p, r->end))
            return NULL;
        while (is_digit(r->p, r->end))
            r->p++;
        real = true;
    }
    if (!real) {
        size_t nd = (size_t)(r->p - digits);
        if (nd > 18) /* beyond, jansson's strtoll may overflow: its error */
            return NULL;
        json_int_t v = 0;
        for (const unsigned char *q = digits; q < r->p; q++)
            v = v * 10 + (*q - '0');
        return json_integer(neg ? -v : v);
    }
    char text[REAL_MAX];
    size_t len = (size_t)(r->p - start);
    if (len >= sizeof text)
        return NULL;
    memcpy(text, start, len);
    text[len] = '\0';
    char *endp;
    double d = strtod(text, &endp);
    /* Not all of the text (another locale's decimal point), or an overflow
     * (jansson's "real number overflow"): jansson's to say. */
    if (endp != text + len || isinf(d))
        return NULL;
    return json_real(d);
}

static bool word(rd_t *r, const char *w, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0)
        return false;
    r->p += n;
    /* jansson reads a word as all the letters there are: "truex" is no true. */
    if (r->p < r->end && ((*r->p | 0x20) >= 'a' && (*r->p | 0x20) <= 'z'))
        return false;
    return true;
}

static json_t *object(rd_t *r)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return o;
    }
    for (;;) {
        const char *k;
        size_t kl;
        if (r->p >= r->end || *r->p != '"')
            goto fail;
        r->p++;
        if (!string_span(r, &k, &kl) || json_object_getn(o, k, kl))
            goto fail;
        ws(r);
        if (r->p >= r->end || *r->p != ':')
            goto fail;
        r->p++;
        json_t *v = value(r);
        if (!v || json_object_setn_new_nocheck(o, k, kl, v))
            goto fail;
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return o;
        }
        goto fail;
    }
fail:
    json_decref(o);
    return NULL;
}

static json_t *array(rd_t *r)
{
    json_t *a = json_array();
    if (!a)
        return NULL;
    ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return a;
    }
    for (;;) {
        json_t *v = value(r);
        if (!v || json_array_append_new(a, v))
            goto fail;
        ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return a;
        }
        goto fail;
    }
fail:
    json_decref(a);
    return NULL;
}

static json_t *value(rd_t *r)
{
    ws(r);
    if (r->p >= r->end)
        return NULL;
    json_t *v = NULL;
    switch (*r->p) {
    case '{':
    case '[':
        if (++r->depth > PLAIN_MAX_DEPTH)
            return NULL;
        r->p++;
        v = r->p[-1] == '{' ? object(r) : array(r);
        r->depth--;
        return v;
    case '"': {
        const char *s;
        size_t n;
        r->p++;
        return string_span(r, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    }
    case 't': return word(r, "true", 4) ? json_true() : NULL;
    case 'f': return word(r, "false", 5) ? json_false() : NULL;
    case 'n': return word(r, "null", 4) ? json_null() : NULL;
    default: return number(r);
    }
}

json_t *osse_json_load_plain(const char *p, size_t len)
{
    rd_t r = {.p = (const unsigned char *)p, .end = (const unsigned char *)p + len};
    ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return NULL;
    json_t *o = value(&r);
    ws(&r);
    if (o && r.p != r.end) {
        json_decref(o);
        o = NULL;
    }
    return o;
}
