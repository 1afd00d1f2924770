/* test.h: a tiny unit-test harness. Each test file is one executable; a failed
 * CHECK prints its place and makes main return 1. */
#ifndef OSSE_TESTS_TEST_H
#define OSSE_TESTS_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test__failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            test__failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long test__a = (long long)(a), test__b = (long long)(b);                              \
        if (test__a != test__b) {                                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,  \
                    test__a, test__b);                                                             \
            test__failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *test__a = (a), *test__b = (b);                                                 \
        if (!test__a || !test__b || strcmp(test__a, test__b) != 0) {                               \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a,  \
                    #b, test__a ? test__a : "(null)", test__b ? test__b : "(null)");               \
            test__failures++;                                                                      \
        }                                                                                          \
    } while (0)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int test__before = test__failures;                                                         \
        fn();                                                                                      \
        fprintf(stderr, "%s %s\n", test__failures == test__before ? "ok  " : "FAIL", #fn);         \
    } while (0)

#define TEST_EXIT() (test__failures ? 1 : 0)

#endif
