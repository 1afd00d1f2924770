/* test_json.c: osse_json_write gives the bytes jansson's json_dumps gives,
 * for chosen edge cases and for random trees, with and without sorted keys,
 * and refuses what jansson refuses to dump. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/err.h"
#include "common/json.h"
#include "tests/test.h"

static int mismatches;

static void same(const json_t *j, size_t flags)
{
    char *want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | flags);
    size_t n = 0;
    char *got = osse_json_dumps(j, flags, &n);
    if (!want || !got || strcmp(want, got) != 0 || n != strlen(got)) {
        if (mismatches++ < 5)
            fprintf(stderr, "  jansson %s\n  osse    %s\n", want ? want : "(null)",
                    got ? got : "(null)");
    }
    free(want);
    free(got);
}

static void test_cases(void)
{
    static const double reals[] = {0.0,  -0.0,        1.5,   100.0, 1e21, 1e22,
                                   1e-7, 5e-324,      1e300, -2.5,  0.1,  DBL_MAX,
                                   42.5, 123456789.0, 1e16,  1e17,  3e-5, -1e-300};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++) {
        json_t *r = json_real(reals[i]);
        same(r, 0);
        json_decref(r);
    }
    static const json_int_t ints[] = {0, 1, -1, 9, 10, -10, INT64_MAX, INT64_MIN, 1000000007};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        json_t *v = json_integer(ints[i]);
        same(v, 0);
        json_decref(v);
    }
    json_t *s =
        json_stringn("a\"b\\c/\b\f\n\r\t\x01\x1f\x7f \xc3\xbc\xe0\xb8\x81\xf0\x9f\x98\x80", 30);
    CHECK(s != NULL);
    same(s, 0);
    json_decref(s);
    json_t *nul = json_stringn("a\0b", 3);
    same(nul, 0);
    json_decref(nul);
    json_t *o = json_pack("{s:{}, s:[], s:n, s:b, s:b, s:[i,{s:s}], s:s}", "z", "a", "n", "t", 1,
                          "f", 0, "arr", 1, "k", "v", "", "empty key");
    same(o, 0);
    same(o, JSON_SORT_KEYS);
    json_decref(o);
    /* Keys that share a prefix sort shorter first; bytes compare unsigned. */
    json_t *k = json_object();
    json_object_set_new(k, "ab", json_integer(1));
    json_object_set_new(k, "a", json_integer(2));
    json_object_set_new(k, "\xc3\xbc", json_integer(3));
    json_object_set_new(k, "B", json_integer(4));
    same(k, JSON_SORT_KEYS);
    same(k, 0);
    json_decref(k);
    CHECK_EQ_INT(mismatches, 0);
}

/* What jansson will not dump, neither does osse. */
static void test_refusals(void)
{
    json_t *bad = json_stringn_nocheck("\xff\xfe", 2);
    CHECK(json_dumps(bad, JSON_ENCODE_ANY) == NULL);
    CHECK(osse_json_dumps(bad, 0, NULL) == NULL);
    osse_buf_t b;
    osse_buf_init(&b, 0);
    CHECK_EQ_INT(osse_buf_append(&b, "x", 1), 0);
    json_t *arr = json_pack("[i,o]", 1, bad);
    CHECK_EQ_INT(osse_json_write(&b, arr, 0), OSSE_EINVAL);
    CHECK(b.len == 1 && strcmp(b.ptr, "x") == 0); /* left as it was */
    json_decref(arr);
    json_t *deep = json_array();
    for (int i = 0; i < 3000; i++) {
        json_t *up = json_array();
        json_array_append_new(up, deep);
        deep = up;
    }
    CHECK_EQ_INT(osse_json_write(&b, deep, 0), OSSE_EINVAL);
    json_decref(deep);
    osse_buf_close(&b);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static json_t *random_string(void)
{
    static const char *const parts[] = {"a", "Z",        "\"",           "\\",
                                        "/", "\n",       "\x01",         "\x1f",
                                        " ", "\xc3\xbc", "\xe0\xb8\x81", "\xf0\x9f\x98\x80",
                                        "0"};
    char buf[64] = "";
    size_t n = next() % 8;
    for (size_t i = 0; i < n; i++)
        strcat(buf, parts[next() % (sizeof parts / sizeof *parts)]);
    return json_string(buf);
}

static json_t *random_value(int depth)
{
    switch (next() % (depth > 4 ? 6 : 8)) {
    case 0: return json_null();
    case 1: return json_boolean(next() & 1);
    case 2: return json_integer((json_int_t)next() >> (next() % 64));
    case 3: {
        double d;
        do {
            uint64_t bits = next();
            memcpy(&d, &bits, sizeof d);
        } while (!isfinite(d));
        return json_real(next() % 3 ? d : (double)(int64_t)(next() % 100000) / 8);
    }
    case 4:
    case 5: return random_string();
    case 6: {
        json_t *a = json_array();
        for (size_t i = next() % 5; i > 0; i--)
            json_array_append_new(a, random_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (size_t i = next() % 6; i > 0; i--) {
            json_t *k = random_string();
            json_object_set_new(o, json_string_value(k), random_value(depth + 1));
            json_decref(k);
        }
        return o;
    }
    }
}

static void test_random(void)
{
    for (int i = 0; i < 20000; i++) {
        json_t *v = random_value(0);
        same(v, 0);
        same(v, JSON_SORT_KEYS);
        json_decref(v);
    }
    CHECK_EQ_INT(mismatches, 0);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_cases);
    RUN(test_refusals);
    RUN(test_random);
    return TEST_EXIT();
}
