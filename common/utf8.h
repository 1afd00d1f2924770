/* utf8.h: strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF),
 * for every text osse takes from outside before another library sees it,
 * and the Unicode White_Space set (C2SP key names and origins exclude it). */
#ifndef OSSE_COMMON_UTF8_H
#define OSSE_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool osse_utf8_valid(const void *s, size_t n);

/* Decodes the one code point that starts s (n >= 1 bytes available): returns
 * its length in bytes (1..4) and sets *cp, or 0 if the bytes there are not
 * a well-formed sequence (RFC 3629: an overlong form, a surrogate, above
 * U+10FFFF, a lone continuation byte, or cut short). */
size_t osse_utf8_decode(const void *s, size_t n, uint32_t *cp);

/* Whether cp has the Unicode White_Space property (PropList.txt, stable
 * since Unicode 6.3): U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680,
 * U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. */
bool osse_unicode_space(uint32_t cp);

#endif
