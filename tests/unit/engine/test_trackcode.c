/* test_trackcode.c: tracking codes by construction (engine/trackcode.h).
 * The permutation is one to one over whole small domains (every even width
 * up to 20 bits) and over a run of 200,000 consecutive seqs at 50 bits; a
 * number outside the domain and a width the function does not take are
 * refused; the inverse gives each code's seq back, and nothing for what is
 * not a code of the domain; a code depends on the key, and consecutive
 * seqs' codes look unrelated; the check character tells every mistyped
 * character and every swap of neighbours but A and 9's (Luhn mod 32's one
 * blind pair). The keys
 * are fixed bytes, so every run checks the same codes. */
#include <stdlib.h>
#include <string.h>

#include "engine/trackcode.h"
#include "tests/test.h"

static const char ALPHA[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

static void key_of(uint8_t key[OSSE_CODE_KEY_BYTES], uint8_t base)
{
    for (int i = 0; i < OSSE_CODE_KEY_BYTES; i++)
        key[i] = (uint8_t)(base + i);
}

/* The number a code's first ten characters write. */
static uint64_t value_of(const char *code)
{
    uint64_t v = 0;
    for (int k = 0; k < OSSE_CODE_CHARS - 1; k++)
        v = v * 32 + (uint64_t)(strchr(ALPHA, code[k]) - ALPHA);
    return v;
}

static void permutes_small_domains(void)
{
    uint8_t key[OSSE_CODE_KEY_BYTES];
    key_of(key, 1);
    for (unsigned bits = 2; bits <= 20; bits += 2) {
        uint64_t size = 1ull << bits;
        unsigned char *seen = calloc(size, 1);
        char code[OSSE_CODE_CHARS + 1];
        for (uint64_t n = 0; n < size; n++) {
            CHECK_EQ_INT(osse_trackcode(key, bits, n, code), 0);
            CHECK_EQ_INT(strlen(code), OSSE_CODE_CHARS);
            CHECK(osse_trackcode_ok(code));
            uint64_t v = value_of(code), back = size;
            CHECK(v < size);
            CHECK_EQ_INT(osse_trackcode_seq(key, bits, code, &back), 0);
            CHECK(back == n); /* the inverse gives the seq back */
            if (v < size) {
                CHECK(!seen[v]);
                seen[v] = 1;
            }
        }
        free(seen);
        /* The first number past the domain is refused. */
        CHECK_EQ_INT(osse_trackcode(key, bits, size, code), -1);
        /* A code of a wider domain whose number is past this one's is
         * not one of its codes. */
        uint64_t n = 0, back = 0;
        while (osse_trackcode(key, bits + 2, n, code) == 0 && value_of(code) < size)
            n++;
        CHECK(value_of(code) >= size);
        CHECK_EQ_INT(osse_trackcode_seq(key, bits, code, &back), -1);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void distinct_at_full_width(void)
{
    enum { N = 200000 };
    uint8_t key[OSSE_CODE_KEY_BYTES], other[OSSE_CODE_KEY_BYTES];
    key_of(key, 1);
    key_of(other, 2);
    uint64_t *v = malloc(N * sizeof *v);
    char code[OSSE_CODE_CHARS + 1], again[OSSE_CODE_CHARS + 1], prev[OSSE_CODE_CHARS + 1] = "";
    unsigned long differ = 0, same_under_other = 0;
    for (uint64_t n = 1; n <= N; n++) {
        CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, n, code), 0);
        CHECK(osse_trackcode_ok(code));
        v[n - 1] = value_of(code);
        CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, n, again), 0);
        CHECK_EQ_STR(code, again); /* the same key, the same code */
        uint64_t back = 0, under_other = 0;
        CHECK_EQ_INT(osse_trackcode_seq(key, OSSE_CODE_BITS, code, &back), 0);
        CHECK(back == n);
        /* Under another key the code names another seq. */
        CHECK_EQ_INT(osse_trackcode_seq(other, OSSE_CODE_BITS, code, &under_other), 0);
        same_under_other += under_other == n;
        CHECK_EQ_INT(osse_trackcode(other, OSSE_CODE_BITS, n, again), 0);
        same_under_other += strcmp(code, again) == 0;
        if (prev[0])
            for (int k = 0; k < OSSE_CODE_CHARS - 1; k++)
                differ += code[k] != prev[k];
        memcpy(prev, code, sizeof prev);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    for (size_t i = 1; i < N; i++)
        CHECK(v[i] != v[i - 1]);
    CHECK(v[N - 1] < 1ull << OSSE_CODE_BITS);
    CHECK_EQ_INT(same_under_other, 0);
    /* Consecutive seqs: random codes differ in 9.69 of 10 characters on
     * average; a counter's would in about 1. */
    double mean = (double)differ / (N - 1);
    CHECK(mean > 9.5);
    free(v);
    /* The top of the domain, and past it. */
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, (1ull << OSSE_CODE_BITS) - 1, code), 0);
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, 1ull << OSSE_CODE_BITS, code), -1);
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, UINT64_MAX, code), -1);
    /* Widths it does not take. */
    CHECK_EQ_INT(osse_trackcode(key, 0, 0, code), -1);
    CHECK_EQ_INT(osse_trackcode(key, 11, 0, code), -1);
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS + 2, 0, code), -1);
}

static void check_character(void)
{
    uint8_t key[OSSE_CODE_KEY_BYTES];
    key_of(key, 7);
    unsigned long blind = 0;
    for (uint64_t n = 1; n <= 2000; n++) {
        char code[OSSE_CODE_CHARS + 1], bad[OSSE_CODE_CHARS + 1];
        CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, n, code), 0);
        for (int k = 0; k < OSSE_CODE_CHARS; k++) {
            for (const char *c = ALPHA; *c; c++) {
                if (*c == code[k])
                    continue;
                memcpy(bad, code, sizeof bad);
                bad[k] = *c;
                CHECK(!osse_trackcode_ok(bad));
            }
            if (k + 1 < OSSE_CODE_CHARS && code[k] != code[k + 1]) {
                memcpy(bad, code, sizeof bad);
                bad[k] = code[k + 1];
                bad[k + 1] = code[k];
                bool pair_a9 = (code[k] == 'A' && code[k + 1] == '9') ||
                               (code[k] == '9' && code[k + 1] == 'A');
                if (pair_a9)
                    blind += osse_trackcode_ok(bad);
                else
                    CHECK(!osse_trackcode_ok(bad));
            }
        }
        /* Lower case, another length, a look-alike: not codes. */
        memcpy(bad, code, sizeof bad);
        bad[0] = (char)(bad[0] | 0x20);
        CHECK(bad[0] == code[0] || !osse_trackcode_ok(bad));
        bad[0] = 'O';
        CHECK(!osse_trackcode_ok(bad));
        memcpy(bad, code, sizeof bad);
        bad[OSSE_CODE_CHARS - 1] = '\0';
        CHECK(!osse_trackcode_ok(bad));
    }
    /* What is not a code has no seq: a wrong check character, lower case,
     * another length, a width the function does not take. */
    char code[OSSE_CODE_CHARS + 1];
    uint64_t back = 7;
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, 42, code), 0);
    CHECK_EQ_INT(osse_trackcode_seq(key, OSSE_CODE_BITS, code, &back), 0);
    CHECK(back == 42);
    code[OSSE_CODE_CHARS - 1] = code[OSSE_CODE_CHARS - 1] == 'A' ? 'B' : 'A';
    back = 7;
    CHECK_EQ_INT(osse_trackcode_seq(key, OSSE_CODE_BITS, code, &back), -1);
    CHECK(back == 7); /* nothing written */
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, 42, code), 0);
    for (char *c = code; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c | 0x20 : *c);
    CHECK_EQ_INT(osse_trackcode_seq(key, OSSE_CODE_BITS, code, &back), -1);
    CHECK_EQ_INT(osse_trackcode_seq(key, OSSE_CODE_BITS, "ABCDEFGHJK", &back), -1);
    CHECK_EQ_INT(osse_trackcode(key, OSSE_CODE_BITS, 42, code), 0);
    CHECK_EQ_INT(osse_trackcode_seq(key, 11, code, &back), -1);
    CHECK_EQ_INT(osse_trackcode_seq(key, 0, code, &back), -1);
    CHECK(!osse_trackcode_ok(""));
    CHECK(!osse_trackcode_ok("ABCDEFGHJKLM"));
    (void)blind;
}

int main(void)
{
    RUN(permutes_small_domains);
    RUN(distinct_at_full_width);
    RUN(check_character);
    return TEST_EXIT();
}
