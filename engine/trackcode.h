/* trackcode.h: tracking codes, unique by construction.
 *
 * A request's tracking code (SPEC §4, GET /v1/track/{code}) is 11
 * characters of a 32-letter alphabet without look-alikes (A-Z and 2-9
 * without I, O, 0 and 1): ten that write a 50-bit number, most significant
 * first, and a check character (Luhn mod 32), so that a mistyped character
 * or a swap of two neighbours is told as such, not looked up.
 *
 * The number is a keyed permutation of the request's first seq (the seq of
 * its RequestSubmitted): a Feistel network of 8 rounds over two 25-bit
 * halves, whose round function is SipHash-2-4 (libsodium's
 * crypto_shorthash) under a key derived from the master key (engine.c). A
 * permutation is one to one and a seq is the first of one request only, so
 * no two requests ever have one code, with nothing read from the disk or
 * held in memory to make it so; under a key no outsider has, the codes of
 * consecutive requests look unrelated, and a code is no easier to guess than
 * a random one. 2^50 seqs are enough for 890 years at 40,000 events a
 * second.
 *
 * The codes made before (10 random characters, checked against the others)
 * cannot equal these: they are one character shorter.
 *
 * Under --test-clock the domain can be made smaller (bits < 50, the
 * leading characters then 'A'), so that a test sees it used up. */
#ifndef OSSE_ENGINE_TRACKCODE_H
#define OSSE_ENGINE_TRACKCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define OSSE_CODE_BITS 50      /* the domain's, at most */
#define OSSE_CODE_CHARS 11     /* ten for the number, one to check */
#define OSSE_CODE_KEY_BYTES 16 /* crypto_shorthash_KEYBYTES */

/* Writes the code of n into out (OSSE_CODE_CHARS characters and a NUL) and
 * returns 0; -1 when n is not below 2^bits (nothing written). bits is even,
 * 2 to OSSE_CODE_BITS. Any thread. */
int osse_trackcode(const uint8_t key[OSSE_CODE_KEY_BYTES], unsigned bits, uint64_t n, char *out);

/* The inverse: the n whose code under key and bits code is, into *n, and
 * 0; -1 when code is not OSSE_CODE_CHARS characters of the alphabet (upper
 * case) with the right check character, or writes a number not below
 * 2^bits. A code is turned back into the request's first seq this way, so
 * that nothing on disk need map codes to requests (engine/cache.c). Any
 * thread. */
int osse_trackcode_seq(const uint8_t key[OSSE_CODE_KEY_BYTES], unsigned bits, const char *code,
                       uint64_t *n);

/* Whether code is one of these (of OSSE_CODE_CHARS characters), which is
 * found by its seq, not by an index entry as one of the 10-character codes
 * made before (engine/index.c, engine/cache.c). Any thread. */
static inline bool osse_trackcode_of_seq(const char *code)
{
    return strlen(code) == OSSE_CODE_CHARS;
}

/* The form a code is looked up by: codes are matched without regard to
 * case (SPEC §4), and every code, also one of the 10-character codes made
 * before, is upper-case letters and digits. Writes code upper-cased into
 * out (n bytes) and returns true; false when it does not fit. Any thread. */
bool osse_trackcode_key(const char *code, char *out, size_t n);

/* Whether code is OSSE_CODE_CHARS characters of the alphabet (upper case)
 * whose check character is right. Any thread. */
bool osse_trackcode_ok(const char *code);

#endif
