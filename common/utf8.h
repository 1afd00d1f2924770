/* utf8.h: strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF),
 * for every text osse takes from outside before another library sees it. */
#ifndef OSSE_COMMON_UTF8_H
#define OSSE_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool osse_utf8_valid(const void *s, size_t n);

#endif
