/* utf8.c: strict UTF-8 decoding (RFC 3629, Unicode table 3-7) and the
 * White_Space property.
 *
 * Invariant: a sequence is accepted only in its shortest form and only for
 * scalar values, so two different byte strings never decode to the same
 * text (an origin cannot be spelled two ways). */
#include "common/utf8.h"

#include <string.h>

size_t osse_utf8_decode(const void *p, size_t n, uint32_t *cp)
{
    const uint8_t *s = p;
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    /* The lead byte gives the length and the range of the second byte that
     * excludes overlong forms (E0, F0), surrogates (ED) and values above
     * U+10FFFF (F4); C0, C1 and F5..FF never start a sequence. */
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    v = v << 6 | (s[1] & 0x3F);
    for (size_t k = 2; k < len; k++) {
        if (s[k] < 0x80 || s[k] > 0xBF)
            return 0;
        v = v << 6 | (s[k] & 0x3F);
    }
    *cp = v;
    return len;
}

bool osse_utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;
    while (i < n) {
        /* Eight ASCII bytes at a time: the common case of keys and values. */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i == n)
            break;
        if (s[i] < 0x80) { /* the common case, without a call */
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = osse_utf8_decode(s + i, n - i, &cp);
        if (!len)
            return false;
        i += len;
    }
    return true;
}

bool osse_unicode_space(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}
