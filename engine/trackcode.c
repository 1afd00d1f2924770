/* trackcode.c: tracking codes, unique by construction (see trackcode.h). */
#include "engine/trackcode.h"

#include <ctype.h>
#include <sodium.h>
#include <string.h>

#define ROUNDS 8
#define RADIX 32

static const char ALPHA[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/* The round function: SipHash-2-4 of the round and the half, cut to h bits. */
static uint32_t round_f(const uint8_t key[OSSE_CODE_KEY_BYTES], unsigned i, uint32_t half,
                        unsigned h)
{
    uint8_t in[5] = {(uint8_t)i, (uint8_t)half, (uint8_t)(half >> 8), (uint8_t)(half >> 16),
                     (uint8_t)(half >> 24)};
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, in, sizeof in, key);
    uint32_t v;
    memcpy(&v, out, sizeof v);
    return v & ((1u << h) - 1);
}

static int digit(char c)
{
    const char *p = c ? strchr(ALPHA, c) : NULL;
    return p ? (int)(p - ALPHA) : -1;
}

/* Luhn mod 32 over digits d[0..n), the rightmost doubled first: the sum
 * with the check character appended is 0 mod 32 when check is the answer.
 * from_check: d includes its check character (validation). */
static unsigned luhn_sum(const int *d, size_t n, bool from_check)
{
    unsigned sum = 0, factor = from_check ? 1 : 2;
    for (size_t k = n; k-- > 0;) {
        unsigned a = factor * (unsigned)d[k];
        sum += a / RADIX + a % RADIX;
        factor = factor == 2 ? 1 : 2;
    }
    return sum % RADIX;
}

int osse_trackcode(const uint8_t key[OSSE_CODE_KEY_BYTES], unsigned bits, uint64_t n, char *out)
{
    if (bits < 2 || bits > OSSE_CODE_BITS || bits % 2 || n >> bits)
        return -1;
    unsigned h = bits / 2;
    uint32_t mask = (1u << h) - 1, l = (uint32_t)(n >> h) & mask, r = (uint32_t)n & mask;
    for (unsigned i = 0; i < ROUNDS; i++) {
        uint32_t t = l ^ round_f(key, i, r, h);
        l = r;
        r = t;
    }
    uint64_t v = (uint64_t)l << h | r;
    int d[OSSE_CODE_CHARS - 1];
    for (size_t k = OSSE_CODE_CHARS - 1; k-- > 0;) {
        d[k] = (int)(v % RADIX);
        v /= RADIX;
    }
    for (size_t k = 0; k < OSSE_CODE_CHARS - 1; k++)
        out[k] = ALPHA[d[k]];
    out[OSSE_CODE_CHARS - 1] = ALPHA[(RADIX - luhn_sum(d, OSSE_CODE_CHARS - 1, false)) % RADIX];
    out[OSSE_CODE_CHARS] = '\0';
    return 0;
}

int osse_trackcode_seq(const uint8_t key[OSSE_CODE_KEY_BYTES], unsigned bits, const char *code,
                       uint64_t *n)
{
    if (bits < 2 || bits > OSSE_CODE_BITS || bits % 2 || !osse_trackcode_ok(code))
        return -1;
    uint64_t v = 0;
    for (size_t k = 0; k < OSSE_CODE_CHARS - 1; k++)
        v = v * RADIX + (uint64_t)digit(code[k]);
    if (v >> bits)
        return -1;
    /* The rounds backwards: each took (l, r) to (r, l ^ f(r)). */
    unsigned h = bits / 2;
    uint32_t mask = (1u << h) - 1, l = (uint32_t)(v >> h) & mask, r = (uint32_t)v & mask;
    for (unsigned i = ROUNDS; i-- > 0;) {
        uint32_t t = r ^ round_f(key, i, l, h);
        r = l;
        l = t;
    }
    *n = (uint64_t)l << h | r;
    return 0;
}

bool osse_trackcode_key(const char *code, char *out, size_t n)
{
    size_t len = strlen(code);
    if (len >= n)
        return false;
    for (size_t i = 0; i <= len; i++)
        out[i] = (char)toupper((unsigned char)code[i]);
    return true;
}

bool osse_trackcode_ok(const char *code)
{
    int d[OSSE_CODE_CHARS];
    if (strlen(code) != OSSE_CODE_CHARS)
        return false;
    for (size_t k = 0; k < OSSE_CODE_CHARS; k++)
        if ((d[k] = digit(code[k])) < 0)
            return false;
    return luhn_sum(d, OSSE_CODE_CHARS, true) == 0;
}
