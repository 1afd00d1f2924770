/* test_pii_text.c: what sealing encrypts and how it writes the ciphertext,
 * each written by hand in pii.c, must be the bytes of the library calls
 * they replaced: osse__pii_text against json_dumpb(JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY) for strings (plain, Thai, empty, with
 * escapes, too long for the buffer, bytes that are not UTF-8), numbers and
 * objects, at buffer sizes around each text's length; osse__pii_base64
 * against sodium_bin2base64 (original variant) for every length 0-300. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "engine/internal.h"
#include "tests/test.h"

static int bad;

static void same_text(json_t *v)
{
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    size_t full = json_dumpb(v, NULL, 0, flags);
    for (size_t cap = 0; cap <= full + 2; cap++) {
        char a[600], b[600];
        size_t na = osse__pii_text(v, a, cap), nb = json_dumpb(v, b, cap, flags);
        if (na != nb || (na <= cap && memcmp(a, b, na) != 0)) {
            if (bad++ < 5)
                fprintf(stderr, "cap %zu: %zu != %zu\n", cap, na, nb);
        }
    }
    json_decref(v);
}

static void test_text(void)
{
    bad = 0;
    char longer[520];
    memset(longer, 'n', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    same_text(json_string("Somchai Bench 42"));
    same_text(json_string("1101700230708"));
    same_text(json_string(""));
    same_text(json_string("\xe0\xb8\xaa\xe0\xb8\xa1\xe0\xb8\x8a\xe0\xb8\xb2\xe0\xb8\xa2"));
    same_text(json_string("say \"hi\""));
    same_text(json_string("back\\slash"));
    same_text(json_string("line\nbreak\t\x01"));
    same_text(json_string("a/b\x7f"));
    same_text(json_string(longer));
    same_text(json_stringn_nocheck("\xff\xfe", 2)); /* json_dumpb fails: 0 from both */
    same_text(json_integer(-42));
    same_text(json_real(0.1));
    same_text(json_true());
    same_text(json_null());
    same_text(json_pack("{s:s,s:i,s:[s]}", "z", "last", "a", 1, "m", "x"));
    CHECK_EQ_INT(bad, 0);
}

static void test_base64(void)
{
    bad = 0;
    unsigned char in[300];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 151 + 7);
    for (size_t n = 0; n <= sizeof in; n++) {
        char a[512], b[512];
        size_t len = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        memset(a, 'x', sizeof a);
        memset(b, 'x', sizeof b);
        osse__pii_base64(a, in, n);
        sodium_bin2base64(b, len, in, n, sodium_base64_VARIANT_ORIGINAL);
        if (memcmp(a, b, sizeof a) != 0 && bad++ < 3)
            fprintf(stderr, "n=%zu: %s != %s\n", n, a, b);
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    RUN(test_text);
    RUN(test_base64);
    return TEST_EXIT();
}
