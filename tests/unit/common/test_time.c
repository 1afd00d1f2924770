/* test_time.c: osse_time_fmt writes its digits by hand; it must match, byte
 * for byte, the snprintf it replaced (kept here as the reference) over every
 * day of years 0 to 9999, leap days and century years among them, at
 * instants across the day, over random instants of the whole int64 range
 * (negative ones clamp to year 0, far ones to 9999), and at the edges. The
 * parser reads back what the formatter writes. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/time.h"
#include "tests/test.h"

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* The formatter as it was before it wrote its own digits (its time of day
 * taken without the overflow it had within a day of INT64_MIN). */
static char *ref_fmt(int64_t ms, char *out)
{
    int64_t days = floordiv(ms, 86400000);
    int64_t rem = ms % 86400000 < 0 ? ms % 86400000 + 86400000 : ms % 86400000;
    int64_t y;
    unsigned m, d;
    osse_civil_from_days(days, &y, &m, &d);
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    snprintf(out, OSSE_TIME_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)y % 10000u,
             m % 100u, d % 100u, (unsigned)(rem / 3600000) % 100u, (unsigned)(rem / 60000 % 60),
             (unsigned)(rem / 1000 % 60), (unsigned)(rem % 1000));
    return out;
}

static int mismatches;

static void same(int64_t ms)
{
    char a[OSSE_TIME_LEN], b[OSSE_TIME_LEN];
    memset(a, 'x', sizeof a);
    char *r = osse_time_fmt(ms, a);
    ref_fmt(ms, b);
    if (r != a || strcmp(a, b) != 0) {
        if (mismatches++ < 5)
            fprintf(stderr, "ms=%lld: got \"%.24s\", want \"%s\"\n", (long long)ms, a, b);
    }
}

static void test_known(void)
{
    char t[OSSE_TIME_LEN];
    CHECK_EQ_STR(osse_time_fmt(0, t), "1970-01-01T00:00:00.000Z");
    CHECK_EQ_STR(osse_time_fmt(1796090400000LL, t), "2026-12-01T02:00:00.000Z");
    CHECK_EQ_STR(osse_time_fmt(-1, t), "1969-12-31T23:59:59.999Z");
    CHECK_EQ_STR(osse_time_fmt(951782400000LL, t), "2000-02-29T00:00:00.000Z");
    CHECK_EQ_STR(osse_time_fmt(253402300799999LL, t), "9999-12-31T23:59:59.999Z");
    /* Past year 9999 the year clamps (the rest of the date does not). */
    CHECK_EQ_STR(osse_time_fmt(253402300800000LL, t), "9999-01-01T00:00:00.000Z");
    /* The extremes: the year clamps; the time of day is the instant's own
     * (computed without overflow: at INT64_MIN it was undefined before). */
    CHECK_EQ_STR(osse_time_fmt(INT64_MAX, t), "9999-08-17T07:12:55.807Z");
    CHECK_EQ_STR(osse_time_fmt(INT64_MIN, t), "0000-05-16T16:47:04.192Z");
}

static void test_every_day(void)
{
    mismatches = 0;
    int64_t first = osse_days_from_civil(0, 1, 1), last = osse_days_from_civil(9999, 12, 31);
    /* Instants across a day: its start, its end, and odd ones between. */
    static const int64_t within[] = {0, 1, 999, 1000, 59999, 3599999, 43200123, 86399999};
    for (int64_t day = first - 3; day <= last + 3; day++)
        same(day * 86400000 + within[(uint64_t)day % 8]);
    for (int64_t day = -800; day <= 800; day++)
        for (size_t k = 0; k < sizeof within / sizeof within[0]; k++)
            same(day * 86400000 + within[k]);
    CHECK_EQ_INT(mismatches, 0);
}

static void test_random(void)
{
    mismatches = 0;
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 2000000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        int64_t v = (int64_t)x;
        same(v);
        same(v % 400000000000000LL); /* within a few thousand years of 1970 */
        same(v % 4000000000000LL);
    }
    static const int64_t edges[] = {INT64_MIN, INT64_MIN + 1, -86400000,     -86399999, -1000, 0,
                                    1,         86399999,      INT64_MAX - 1, INT64_MAX};
    for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++)
        same(edges[k]);
    CHECK_EQ_INT(mismatches, 0);
}

/* What the formatter writes, the parser reads back (years 0 to 9999). */
static void test_round_trip(void)
{
    int bad = 0;
    uint64_t x = 12345;
    int64_t lo = osse_days_from_civil(0, 1, 1) * 86400000,
            hi = (osse_days_from_civil(9999, 12, 31) + 1) * 86400000;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = lo + (int64_t)(x % (uint64_t)(hi - lo)), back = 0;
        char t[OSSE_TIME_LEN];
        if (osse_time_parse(osse_time_fmt(ms, t), &back) || back != ms)
            bad++;
    }
    CHECK_EQ_INT(bad, 0);
}

int main(void)
{
    RUN(test_known);
    RUN(test_every_day);
    RUN(test_random);
    RUN(test_round_trip);
    return TEST_EXIT();
}
