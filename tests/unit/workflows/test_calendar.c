/* test_calendar.c: working-time calendars (SPEC §2 durations, §3 calendars).
 *
 * The main check is a property test: thousands of random calendars, starts
 * and durations, with osse_calendar_add_ms / osse_calendar_between_ms
 * compared against a deliberately naive reference that walks one minute at a
 * time and classifies each minute from the civil date (its own weekday
 * formula, a linear holiday scan). The reference shares no code with
 * calendar.c beyond common/time.h's civil-date conversion.
 *
 * OSSE_SEED=<n> replays a run; OSSE_CAL_ITERS=<n> changes the number of
 * random calendars (default 10000). */
#include "common/alloc.h"
#include "common/time.h"
#include "workflows/calendar.h"

#include "tests/test.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define MIN_MS INT64_C(60000)
#define DAY_MS INT64_C(86400000)

/* ---- a seeded PRNG (splitmix64) ---------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static bool chance(int percent)
{
    return rnd_in(0, 99) < percent;
}

/* ---- the reference ------------------------------------------------------ */

typedef struct ref_cal_s {
    int off_min;      /* UTC offset in minutes */
    bool day[7];      /* monday first */
    int open, close;  /* minutes after local midnight */
    int64_t hol[128]; /* local days since 1970-01-01, any order, repeats allowed */
    int nhol;
    /* A one-day memo: the reference would be too slow under ASan otherwise. */
    int64_t memo_day;
    bool memo_working, memo_valid;
} ref_cal_t;

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* Sakamoto's day of week for a civil date; 0 = sunday. */
static int sakamoto(int64_t y, unsigned m, unsigned d)
{
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3)
        y -= 1;
    int64_t w = (y + floordiv(y, 4) - floordiv(y, 100) + floordiv(y, 400) + t[m - 1] + d) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

static bool ref_working_day(ref_cal_t *r, int64_t day)
{
    if (r->memo_valid && r->memo_day == day)
        return r->memo_working;
    int64_t y;
    unsigned m, d;
    osse_civil_from_days(day, &y, &m, &d);
    int monday0 = (sakamoto(y, m, d) + 6) % 7;
    bool w = r->day[monday0];
    for (int i = 0; i < r->nhol; i++)
        if (r->hol[i] == day)
            w = false;
    r->memo_day = day;
    r->memo_working = w;
    r->memo_valid = true;
    return w;
}

/* Is the UTC minute [m*60000, (m+1)*60000) working time? Offsets are whole
 * minutes, so a UTC minute is exactly one local minute. */
static bool ref_working_minute(ref_cal_t *r, int64_t m)
{
    int64_t lm = m + r->off_min;
    int64_t day = floordiv(lm, 1440), mod = lm - day * 1440;
    return mod >= r->open && mod < r->close && ref_working_day(r, day);
}

#define REF_MAX_STEPS 2000000

/* Earliest T with exactly n working ms in [start, T): walk minute by minute. */
static int64_t ref_add(ref_cal_t *r, int64_t start, int64_t n)
{
    int64_t t = start;
    if (n == 0)
        return t;
    for (long steps = 0; steps < REF_MAX_STEPS; steps++) {
        int64_t m = floordiv(t, MIN_MS), end = (m + 1) * MIN_MS;
        if (ref_working_minute(r, m)) {
            if (n <= end - t)
                return t + n;
            n -= end - t;
        }
        t = end;
    }
    return INT64_MIN; /* the test keeps spans far below this */
}

static int64_t ref_between(ref_cal_t *r, int64_t a, int64_t b)
{
    int64_t sum = 0;
    for (int64_t t = a; t < b;) {
        int64_t m = floordiv(t, MIN_MS), end = (m + 1) * MIN_MS;
        if (end > b)
            end = b;
        if (ref_working_minute(r, m))
            sum += end - t;
        t = end;
    }
    return sum;
}

/* ---- building calendars through the public parser ----------------------- */

static const char *const names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

static json_t *ref_to_json(const ref_cal_t *r)
{
    char off[32], open[32], close[32], date[32];
    int a = r->off_min < 0 ? -r->off_min : r->off_min;
    snprintf(off, sizeof off, "%c%02d:%02d", r->off_min < 0 ? '-' : '+', a / 60, a % 60);
    snprintf(open, sizeof open, "%02d:%02d", r->open / 60, r->open % 60);
    snprintf(close, sizeof close, "%02d:%02d", r->close / 60, r->close % 60);
    json_t *days = json_array(), *hols = json_array();
    for (int i = 0; i < 7; i++)
        if (r->day[i])
            json_array_append_new(days, json_string(names[i]));
    for (int i = 0; i < r->nhol; i++) {
        int64_t y;
        unsigned m, d;
        osse_civil_from_days(r->hol[i], &y, &m, &d);
        snprintf(date, sizeof date, "%04d-%02u-%02u", (int)y, m, d);
        json_array_append_new(hols, json_string(date));
    }
    return json_pack("{s:s,s:o,s:[ss],s:o}", "utc_offset", off, "workdays", days, "hours", open,
                     close, "holidays", hols);
}

/* Parses r into c; a failure is a test failure. */
static bool build(const ref_cal_t *r, osse_calendar_t *c)
{
    json_t *body = ref_to_json(r), *details = json_array();
    int rc = osse_calendar_from_json(body, c, details);
    if (rc != 0) {
        char *s = json_dumps(details, 0);
        fprintf(stderr, "parse failed: %s\n", s);
        free(s);
    }
    CHECK_EQ_INT(rc, 0);
    json_decref(body);
    json_decref(details);
    return rc == 0;
}

static const char *fmt(int64_t t, char *out)
{
    if (t < -OSSE_CALENDAR_LIMIT_MS || t > OSSE_CALENDAR_LIMIT_MS)
        return "(out of range)";
    return osse_time_fmt(t, out);
}

static void dump(const char *what, const ref_cal_t *r, int64_t start, int64_t n, int64_t got,
                 int64_t want)
{
    char a[OSSE_TIME_LEN], g[OSSE_TIME_LEN], w[OSSE_TIME_LEN];
    json_t *j = ref_to_json(r);
    char *s = json_dumps(j, JSON_COMPACT);
    fprintf(stderr,
            "%s mismatch: calendar %s\n  start %s (%" PRId64 ") arg %" PRId64 "\n  got %" PRId64
            " (%s) want %" PRId64 " (%s)\n",
            what, s, fmt(start, a), start, n, got, fmt(got, g), want, fmt(want, w));
    free(s);
    json_decref(j);
}

static const int offsets[] = {420, 345, -210, -570, 0, 840, -720, 570, -1439, 1439, 330, 60};

static void random_calendar(ref_cal_t *r, int64_t base_day)
{
    memset(r, 0, sizeof *r);
    r->off_min = chance(60) ? offsets[rnd_in(0, 11)] : (int)rnd_in(-1439, 1439);
    int shape = (int)rnd_in(0, 5);
    for (int i = 0; i < 7; i++)
        r->day[i] = shape == 0   ? i < 5             /* mon-fri */
                    : shape == 1 ? i < 6             /* mon-sat */
                    : shape == 2 ? (i < 4 || i == 6) /* sun-thu */
                    : shape == 3 ? false             /* set below */
                                 : chance(50);
    if (shape == 3) { /* a single random workday */
        memset(r->day, 0, sizeof r->day);
        r->day[rnd_in(0, 6)] = true;
    }
    bool any = false;
    for (int i = 0; i < 7; i++)
        any |= r->day[i];
    if (!any)
        r->day[rnd_in(0, 6)] = true;

    int hshape = (int)rnd_in(0, 5);
    if (hshape == 0) {
        r->open = 510, r->close = 990; /* 08:30-16:30 */
    } else if (hshape == 1) {
        r->open = 0, r->close = 1440;
    } else if (hshape == 2) {
        r->open = (int)rnd_in(0, 1439), r->close = r->open + 1; /* one minute a day */
    } else {
        r->open = (int)rnd_in(0, 1439);
        r->close = (int)rnd_in(r->open + 1, 1440);
    }

    /* Holidays around the start: single days, runs, repeats, in any order. */
    int singles = (int)rnd_in(0, 8), runs = (int)rnd_in(0, 3);
    for (int i = 0; i < singles && r->nhol < 128; i++)
        r->hol[r->nhol++] = base_day + rnd_in(-10, 60);
    for (int i = 0; i < runs; i++) {
        int64_t from = base_day + rnd_in(-3, 40), len = rnd_in(2, 16);
        for (int64_t d = from; d < from + len && r->nhol < 128; d++)
            r->hol[r->nhol++] = d;
    }
    if (chance(25) && r->nhol < 128)
        r->hol[r->nhol++] = base_day; /* the start day itself */
    if (chance(10) && r->nhol > 0 && r->nhol < 128)
        r->hol[r->nhol++] = r->hol[0]; /* a repeat */
}

static int64_t working_days_per_week(const ref_cal_t *r)
{
    int n = 0;
    for (int i = 0; i < 7; i++)
        n += r->day[i];
    return n;
}

static int64_t random_start(const ref_cal_t *r, int64_t base_day)
{
    int64_t tod;
    switch (rnd_in(0, 7)) {
    case 0: tod = r->open * MIN_MS; break;
    case 1: tod = r->close * MIN_MS; break;
    case 2: tod = (r->open - 1) * MIN_MS; break;
    case 3: tod = (r->close - 1) * MIN_MS; break;
    case 4: tod = 0; break;
    case 5:
        tod = rnd_in(0, DAY_MS - 1); /* any ms, sub-minute parts included */
        break;
    default: tod = rnd_in(0, 1439) * MIN_MS; break;
    }
    return base_day * DAY_MS + tod - r->off_min * MIN_MS;
}

static int64_t random_duration(const ref_cal_t *r)
{
    int64_t per_day = r->close - r->open, per_week = per_day * working_days_per_week(r);
    int64_t m;
    switch (rnd_in(0, 6)) {
    case 0: m = 0; break;
    case 1:
        m = rnd_in(1, 3) * per_day; /* whole working days */
        break;
    case 2:
        m = rnd_in(1, 16) * 60; /* working hours */
        break;
    case 3: m = rnd_in(1, 5); break;
    default:
        m = rnd_in(0, 3 * per_week); /* up to three working weeks */
        break;
    }
    /* The reference walks every minute: keep spans to about three weeks. */
    if (m > 3 * per_week)
        m = rnd_in(0, 3 * per_week);
    int64_t ms = m * MIN_MS;
    if (chance(10))
        ms += rnd_in(-MIN_MS + 1, MIN_MS - 1);
    return ms < 0 ? 0 : ms;
}

static int mismatches;

static void check_one(ref_cal_t *r, const osse_calendar_t *c, int64_t start, int64_t n)
{
    int64_t want = ref_add(r, start, n), got = osse_calendar_add_ms(c, start, n);
    CHECK(want != INT64_MIN);
    if (got != want || want == INT64_MIN) {
        CHECK_EQ_INT(got, want);
        if (mismatches++ < 5)
            dump("add_ms", r, start, n, got, want);
    }
    int64_t back = osse_calendar_between_ms(c, start, got);
    if (back != n) {
        CHECK_EQ_INT(back, n);
        if (mismatches++ < 5)
            dump("between(add)", r, start, n, back, n);
    }
    if (n % MIN_MS == 0)
        CHECK_EQ_INT(osse_calendar_add(c, start, n / MIN_MS), got);

    /* between over a random span, which may be empty or reversed. */
    int64_t end = start + rnd_in(-DAY_MS, 21 * DAY_MS) + (chance(50) ? 0 : rnd_in(0, MIN_MS));
    int64_t bw = ref_between(r, start, end), bg = osse_calendar_between_ms(c, start, end);
    if (bg != bw) {
        CHECK_EQ_INT(bg, bw);
        if (mismatches++ < 5)
            dump("between_ms", r, start, end, bg, bw);
    }
    CHECK_EQ_INT(osse_calendar_between(c, start, end), bw / MIN_MS);

    bool wk = ref_working_minute(r, floordiv(start, MIN_MS));
    CHECK_EQ_INT(osse_calendar_is_working(c, start), wk);
}

static void test_property(void)
{
    const char *it = getenv("OSSE_CAL_ITERS");
    long iters = it ? strtol(it, NULL, 10) : 10000, cases = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < iters && mismatches < 20; i++) {
        /* Mostly near today, some far back or ahead, a fifth in late December. */
        int64_t y = chance(70) ? rnd_in(2024, 2030) : rnd_in(1901, 2199);
        unsigned m = chance(20) ? 12 : (unsigned)rnd_in(1, 12);
        unsigned d = m == 12 && chance(70) ? (unsigned)rnd_in(20, 31) : (unsigned)rnd_in(1, 28);
        int64_t base = osse_days_from_civil(y, m, d);
        ref_cal_t r;
        osse_calendar_t c;
        random_calendar(&r, base);
        if (!build(&r, &c))
            continue;
        for (int k = 0; k < 3; k++) {
            int64_t start = random_start(&r, base + (k ? rnd_in(-2, 9) : 0));
            int64_t n = random_duration(&r);
            check_one(&r, &c, start, n);
            cases++;

            /* A holiday on the day the count ends: the deadline must move on. */
            int64_t end = osse_calendar_add_ms(&c, start, n);
            if (n > 0 && r.nhol < 128 && chance(30)) {
                ref_cal_t r2 = r;
                r2.memo_valid = false;
                r2.hol[r2.nhol++] = floordiv(end - 1 + r.off_min * MIN_MS, DAY_MS);
                osse_calendar_t c2;
                if (build(&r2, &c2)) {
                    check_one(&r2, &c2, start, n);
                    cases++;
                    osse_calendar_close(&c2);
                }
            }
        }
        osse_calendar_close(&c);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "property: %ld calendars, %ld cases, %.2f s\n", iters, cases,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

/* ---- fixed examples ------------------------------------------------------ */

static int64_t at(const char *rfc3339)
{
    int64_t ms = 0;
    CHECK_EQ_INT(osse_time_parse(rfc3339, &ms), 0);
    return ms;
}

static bool parse_str(const char *text, osse_calendar_t *c, json_t **details_out)
{
    json_error_t je;
    json_t *body = json_loads(text, 0, &je);
    CHECK(body != NULL);
    json_t *details = json_array();
    int rc = osse_calendar_from_json(body, c, details);
    json_decref(body);
    if (details_out)
        *details_out = details;
    else
        json_decref(details);
    return rc == 0;
}

#define TH_GOV                                                                                     \
    "{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\",\"tue\",\"wed\",\"thu\",\"fri\"],"           \
    "\"hours\":[\"08:30\",\"16:30\"],\"holidays\":[\"2026-12-07\",\"2026-12-10\",\"2026-12-31\"]}"

static void check_time(int64_t got, const char *want)
{
    char g[OSSE_TIME_LEN], w[OSSE_TIME_LEN];
    CHECK_EQ_STR(osse_time_fmt(got, g), osse_time_fmt(at(want), w));
}

static void test_examples(void)
{
    osse_calendar_t c;
    CHECK(parse_str(TH_GOV, &c, NULL));
    CHECK_EQ_INT(osse_calendar_day_minutes(&c), 480);

    /* Friday 16:00 + 1 working hour = Monday 09:00. */
    check_time(osse_calendar_add(&c, at("2026-11-27T16:00:00+07:00"), 60),
               "2026-11-30T09:00:00+07:00");
    CHECK_EQ_INT(
        osse_calendar_between(&c, at("2026-11-27T16:00:00+07:00"), at("2026-11-30T09:00:00+07:00")),
        60);
    /* Opened on Saturday: counting starts Monday 08:30. */
    check_time(osse_calendar_add(&c, at("2026-11-28T10:00:00+07:00"), 1),
               "2026-11-30T08:31:00+07:00");
    CHECK_EQ_INT(
        osse_calendar_between(&c, at("2026-11-28T10:00:00+07:00"), at("2026-11-30T08:30:00+07:00")),
        0);
    /* 1 working day from Monday 08:30 falls due Monday 16:30, not Tuesday 08:30. */
    check_time(osse_calendar_add(&c, at("2026-11-30T08:30:00+07:00"), 480),
               "2026-11-30T16:30:00+07:00");
    /* ... and from Saturday, Monday 16:30 too. */
    check_time(osse_calendar_add(&c, at("2026-11-28T10:00:00+07:00"), 480),
               "2026-11-30T16:30:00+07:00");
    /* Opened at closing time: the next day's opening starts the count. */
    check_time(osse_calendar_add(&c, at("2026-11-30T16:30:00+07:00"), 480),
               "2026-12-01T16:30:00+07:00");
    /* Thursday 2026-12-10 is a holiday in the middle. */
    check_time(osse_calendar_add(&c, at("2026-12-09T10:00:00+07:00"), 2 * 480),
               "2026-12-14T10:00:00+07:00");
    /* The Monday holiday 2026-12-07: Friday 16:00 + 1 hour = Tuesday 09:00. */
    check_time(osse_calendar_add(&c, at("2026-12-04T16:00:00+07:00"), 60),
               "2026-12-08T09:00:00+07:00");
    /* Across the year end, past the 31 December holiday. */
    check_time(osse_calendar_add(&c, at("2026-12-30T12:00:00+07:00"), 480),
               "2027-01-01T12:00:00+07:00");
    /* Zero: the start itself, inside working time or not. */
    CHECK_EQ_INT(osse_calendar_add(&c, at("2026-11-28T10:00:00+07:00"), 0),
                 at("2026-11-28T10:00:00+07:00"));
    /* 15 working days (SPEC example) from Monday 2026-11-30 09:00: two holidays in between. */
    check_time(osse_calendar_add(&c, at("2026-11-30T09:00:00+07:00"), 15 * 480),
               "2026-12-23T09:00:00+07:00");
    CHECK(osse_calendar_is_working(&c, at("2026-11-30T08:30:00+07:00")));
    CHECK(!osse_calendar_is_working(&c, at("2026-11-30T16:30:00+07:00")));
    CHECK(!osse_calendar_is_working(&c, at("2026-12-07T10:00:00+07:00")));
    /* Sub-minute starts keep their milliseconds. */
    CHECK_EQ_INT(osse_calendar_add_ms(&c, at("2026-11-30T09:00:00.250+07:00"), 1000),
                 at("2026-11-30T09:00:01.250+07:00"));
    CHECK_EQ_INT(osse_calendar_between_ms(&c, at("2026-11-30T16:29:59.900+07:00"),
                                          at("2026-12-01T08:30:00.100+07:00")),
                 200);
    osse_calendar_close(&c);

    /* A negative, non-whole-hour offset with a six-day week. */
    CHECK(parse_str("{\"utc_offset\":\"-03:30\",\"workdays\":[\"mon\",\"tue\",\"wed\",\"thu\","
                    "\"fri\",\"sat\"],\"hours\":[\"09:00\",\"13:00\"]}",
                    &c, NULL));
    check_time(osse_calendar_add(&c, at("2026-12-05T12:00:00-03:30"), 120),
               "2026-12-07T10:00:00-03:30");
    osse_calendar_close(&c);
}

static void test_long_spans(void)
{
    /* Fifteen holidays a year for sixty years, some on weekends. */
    osse_calendar_t c;
    CHECK(parse_str("{\"utc_offset\":\"+05:45\",\"workdays\":[\"mon\",\"tue\",\"wed\",\"thu\","
                    "\"fri\"],\"hours\":[\"08:30\",\"16:30\"]}",
                    &c, NULL));
    size_t n = 0;
    c.holidays = malloc(60 * 15 * sizeof *c.holidays);
    for (int y = 2026; y < 2086; y++)
        for (int k = 0; k < 15; k++) /* sorted: the 3rd..14th of each month, then 20-22 Dec */
            c.holidays[n++] = k < 12 ? osse_days_from_civil(y, (unsigned)k + 1, (unsigned)k + 3)
                                     : osse_days_from_civil(y, 12, (unsigned)k + 8);
    c.nholidays = n;

    int64_t start = at("2026-01-05T08:30:00+05:45");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t end = 0;
    for (int i = 0; i < 1000; i++)
        end = osse_calendar_add(&c, start, 10000 * INT64_C(480));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "long spans: 1000 x (10,000 working days) in %.4f s\n", secs);
    CHECK(secs < 2.0);
    CHECK_EQ_INT(osse_calendar_between(&c, start, end), 10000 * INT64_C(480));

    /* An independent day walk: the 10,000th working day ends at its 16:30. */
    ref_cal_t r = {.off_min = 345, .day = {1, 1, 1, 1, 1, 0, 0}, .open = 510, .close = 990};
    int64_t day = osse_days_from_civil(2026, 1, 5), count = 0;
    for (;; day++) {
        int64_t y;
        unsigned m, d;
        osse_civil_from_days(day, &y, &m, &d);
        bool hol = false;
        for (size_t i = 0; i < c.nholidays; i++)
            hol |= c.holidays[i] == day;
        if (r.day[(sakamoto(y, m, d) + 6) % 7] && !hol && ++count == 10000)
            break;
    }
    CHECK_EQ_INT(end, day * DAY_MS + 990 * MIN_MS - 345 * MIN_MS);

    /* Far beyond the limit: "never", not an overflow. */
    CHECK_EQ_INT(osse_calendar_add(&c, start, INT64_MAX), INT64_MAX);
    CHECK_EQ_INT(osse_calendar_add_ms(&c, start, INT64_MAX), INT64_MAX);
    CHECK_EQ_INT(osse_calendar_add_ms(&c, OSSE_CALENDAR_LIMIT_MS, 1), INT64_MAX);
    CHECK(osse_calendar_between_ms(&c, INT64_MIN, INT64_MAX) > 0);
    osse_calendar_close(&c);

    /* No working time at all (only a hand-built struct can say so): never. */
    osse_calendar_t none = {.utc_offset_min = 0, .workdays = 0, .open_min = 510, .close_min = 990};
    CHECK_EQ_INT(osse_calendar_add(&none, start, 1), INT64_MAX);
    CHECK_EQ_INT(osse_calendar_add(&none, start, 0), start);
    CHECK_EQ_INT(osse_calendar_between(&none, start, start + 7 * DAY_MS), 0);
    osse_calendar_close(&none);
    osse_calendar_close(NULL);
}

/* ---- parsing ------------------------------------------------------------- */

static void test_parse_good(void)
{
    osse_calendar_t c;
    CHECK(parse_str(TH_GOV, &c, NULL));
    CHECK_EQ_INT(c.utc_offset_min, 420);
    CHECK_EQ_INT(c.workdays, 0x1f);
    CHECK_EQ_INT(c.open_min, 510);
    CHECK_EQ_INT(c.close_min, 990);
    CHECK_EQ_INT(c.nholidays, 3);
    json_t *j = osse_calendar_to_json(&c);
    char *s = json_dumps(j, JSON_COMPACT);
    CHECK_EQ_STR(s, "{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\",\"tue\",\"wed\",\"thu\","
                    "\"fri\"],\"hours\":[\"08:30\",\"16:30\"],\"holidays\":[\"2026-12-07\","
                    "\"2026-12-10\",\"2026-12-31\"]}");
    free(s);
    json_decref(j);
    osse_calendar_close(&c);

    /* Canonical form: "Z", days out of order, repeated unordered holidays, "24:00". */
    CHECK(parse_str("{\"holidays\":[\"2027-01-01\",\"2026-12-31\",\"2027-01-01\"],"
                    "\"hours\":[\"00:00\",\"24:00\"],\"workdays\":[\"sun\",\"mon\"],"
                    "\"utc_offset\":\"Z\"}",
                    &c, NULL));
    CHECK_EQ_INT(c.nholidays, 2);
    CHECK_EQ_INT(osse_calendar_day_minutes(&c), 1440);
    j = osse_calendar_to_json(&c);
    s = json_dumps(j, JSON_COMPACT);
    CHECK_EQ_STR(s, "{\"utc_offset\":\"+00:00\",\"workdays\":[\"mon\",\"sun\"],\"hours\":"
                    "[\"00:00\",\"24:00\"],\"holidays\":[\"2026-12-31\",\"2027-01-01\"]}");
    /* The canonical form parses back to the same calendar. */
    osse_calendar_t c2;
    CHECK(parse_str(s, &c2, NULL));
    CHECK_EQ_INT(c2.workdays, c.workdays);
    CHECK_EQ_INT(c2.close_min, 1440);
    CHECK_EQ_INT(c2.nholidays, 2);
    osse_calendar_close(&c2);
    free(s);
    json_decref(j);
    osse_calendar_close(&c);

    /* Negative offsets and no holidays key. */
    CHECK(parse_str("{\"utc_offset\":\"-09:30\",\"workdays\":[\"sat\"],\"hours\":[\"10:00\","
                    "\"10:01\"]}",
                    &c, NULL));
    CHECK_EQ_INT(c.utc_offset_min, -570);
    CHECK_EQ_INT(c.workdays, 0x20);
    CHECK_EQ_INT(c.nholidays, 0);
    j = osse_calendar_to_json(&c);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "utc_offset")), "-09:30");
    json_decref(j);
    osse_calendar_close(&c);
}

/* Parses text, expects OSSE_EINVAL and exactly the given paths, in order. */
static void expect_bad(const char *text, int npaths, const char *const *paths)
{
    osse_calendar_t c;
    json_t *details;
    memset(&c, 0xab, sizeof c);
    CHECK(!parse_str(text, &c, &details));
    CHECK(c.holidays == NULL && c.nholidays == 0);
    if ((int)json_array_size(details) != npaths) {
        char *s = json_dumps(details, 0);
        fprintf(stderr, "for %s\n  details %s\n", text, s);
        free(s);
        CHECK_EQ_INT(json_array_size(details), npaths);
    }
    for (int i = 0; i < npaths && i < (int)json_array_size(details); i++) {
        json_t *d = json_array_get(details, (size_t)i);
        CHECK_EQ_STR(json_string_value(json_object_get(d, "path")), paths[i]);
        CHECK(json_string_length(json_object_get(d, "message")) > 0);
    }
    json_decref(details);
}

#define BAD(text, ...)                                                                             \
    do {                                                                                           \
        static const char *const p_[] = {__VA_ARGS__};                                             \
        expect_bad(text, (int)(sizeof p_ / sizeof *p_), p_);                                       \
    } while (0)

static void test_parse_bad(void)
{
    BAD("[]", "");
    BAD("{}", "utc_offset", "workdays", "hours");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"16:30\"],"
        "\"timezone\":\"Asia/Bangkok\"}",
        "timezone");
    BAD("{\"utc_offset\":\"+7:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"16:30\"]}",
        "utc_offset");
    BAD("{\"utc_offset\":\"+24:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"16:30\"]}",
        "utc_offset");
    BAD("{\"utc_offset\":420,\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"16:30\"]}",
        "utc_offset");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":\"mon\",\"hours\":[\"08:30\",\"16:30\"]}",
        "workdays");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[],\"hours\":[\"08:30\",\"16:30\"]}", "workdays");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\",\"funday\",\"mon\",1],"
        "\"hours\":[\"08:30\",\"16:30\"]}",
        "workdays[1]", "workdays[2]", "workdays[3]");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\"]}", "hours");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"8:30\",\"25:00\"]}",
        "hours[0]", "hours[1]");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"16:30\",\"08:30\"]}",
        "hours[1]");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"08:30\"]}",
        "hours[1]");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"24:00\",\"24:00\"]}",
        "hours[0]");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"16:30\"],"
        "\"holidays\":[\"2026-12-07\",\"2026-02-30\",\"07/12/2026\",null]}",
        "holidays[1]", "holidays[2]", "holidays[3]");
    BAD("{\"utc_offset\":\"+07:00\",\"workdays\":[\"mon\"],\"hours\":[\"08:30\",\"16:30\"],"
        "\"holidays\":\"2026-12-07\"}",
        "holidays");
    /* Every problem at once, not only the first. */
    BAD("{\"utc_offset\":\"GMT+7\",\"workdays\":[\"xyz\"],\"extra\":1,"
        "\"holidays\":[\"2026-13-01\"]}",
        "utc_offset", "workdays[0]", "extra", "holidays[0]", "hours");

    /* A NULL details array is allowed. */
    json_t *body = json_loads("{}", 0, NULL);
    osse_calendar_t c;
    CHECK_EQ_INT(osse_calendar_from_json(body, &c, NULL), OSSE_EINVAL);
    json_decref(body);
}

int main(void)
{
    osse_alloc_setup_json();
    const char *env = getenv("OSSE_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "seed %" PRIu64 " (OSSE_SEED=%" PRIu64 " replays it)\n", seed, seed);
    rng_state = seed;
    RUN(test_parse_good);
    RUN(test_parse_bad);
    RUN(test_examples);
    RUN(test_long_spans);
    RUN(test_property);
    return TEST_EXIT();
}
