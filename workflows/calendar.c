/* calendar.c: parsing SPEC §3 calendars, and working-time arithmetic.
 *
 * Invariant: every computation happens in local ms (UTC + the fixed offset),
 * where a local day is exactly 86,400,000 ms and the working window of day d
 * is [d*DAY + open, d*DAY + close). The earliest-instant rule of calendar.h
 * then falls out of never stepping past the ms that uses the count up.
 *
 * Why this way: deadlines of thousands of requests are recomputed whenever a
 * calendar changes, and a "10,000 working days" SLA must not walk day by day.
 * Workdays are counted by whole weeks (popcount of the weekday mask) plus a
 * remainder of at most six days; holidays are a sorted array, found by binary
 * search and only walked inside the span at hand. */
#include "workflows/calendar.h"
#include "common/alloc.h"
#include "common/problems.h"
#include "common/time.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS INT64_C(86400000)
#define MIN_MS INT64_C(60000)
#define LIMIT_DAYS (OSSE_CALENDAR_LIMIT_MS / DAY_MS)

static const char *const day_names[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* ---- parsing ---------------------------------------------------------- */

typedef struct parse_ctx_s {
    json_t *details; /* may be NULL */
    int rc;          /* 0, OSSE_EINVAL or OSSE_ENOMEM (the worst seen) */
} parse_ctx_t;

static void problem(parse_ctx_t *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(parse_ctx_t *p, const char *path, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->rc == 0)
        p->rc = OSSE_EINVAL;
    /* Cut at 256 bytes, as calendar messages always were. */
    osse_problems_add(p->details, path, "%s", msg);
}

static int two_digits(const char *s, int *out)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return -1;
    *out = (s[0] - '0') * 10 + (s[1] - '0');
    return 0;
}

/* "HH:MM" with HH <= 23, MM <= 59, or "24:00" when allow_24. */
static int parse_hhmm(const char *s, bool allow_24, int32_t *min)
{
    int h, m;
    if (strlen(s) != 5 || s[2] != ':' || two_digits(s, &h) || two_digits(s + 3, &m) || m > 59)
        return -1;
    if (h > 23 && !(allow_24 && h == 24 && m == 0))
        return -1;
    *min = h * 60 + m;
    return 0;
}

static int parse_offset(const char *s, int32_t *min)
{
    if (strcmp(s, "Z") == 0) {
        *min = 0;
        return 0;
    }
    int32_t v;
    if ((s[0] != '+' && s[0] != '-') || parse_hhmm(s + 1, false, &v))
        return -1;
    *min = s[0] == '-' ? -v : v;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void parse_workdays(parse_ctx_t *p, json_t *v, osse_calendar_t *out)
{
    char path[64];
    if (!json_is_array(v)) {
        problem(p, "workdays", "must be an array of day names (\"mon\" .. \"sun\")");
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        snprintf(path, sizeof path, "workdays[%zu]", i);
        const char *s = json_string_value(e);
        int d = -1;
        for (int k = 0; s && k < 7; k++)
            if (strcmp(s, day_names[k]) == 0)
                d = k;
        if (d < 0)
            problem(p, path, "must be one of mon, tue, wed, thu, fri, sat, sun");
        else if (out->workdays & (1u << d))
            problem(p, path, "repeats \"%s\"", s);
        else
            out->workdays |= (uint8_t)(1u << d);
    }
    if (json_array_size(v) == 0)
        problem(p, "workdays", "must name at least one day");
}

static void parse_hours(parse_ctx_t *p, json_t *v, osse_calendar_t *out)
{
    if (!json_is_array(v) || json_array_size(v) != 2) {
        problem(p, "hours", "must be [\"HH:MM\", \"HH:MM\"]: opening and closing time");
        return;
    }
    const char *o = json_string_value(json_array_get(v, 0));
    const char *c = json_string_value(json_array_get(v, 1));
    bool ok = true;
    if (!o || parse_hhmm(o, false, &out->open_min)) {
        problem(p, "hours[0]", "must be a time \"HH:MM\" from 00:00 to 23:59");
        ok = false;
    }
    if (!c || parse_hhmm(c, true, &out->close_min)) {
        problem(p, "hours[1]", "must be a time \"HH:MM\" from 00:01 to 24:00");
        ok = false;
    }
    if (ok && out->open_min >= out->close_min)
        problem(p, "hours[1]", "closing time must be after opening time");
}

static void parse_holidays(parse_ctx_t *p, json_t *v, osse_calendar_t *out)
{
    char path[64];
    if (!json_is_array(v)) {
        problem(p, "holidays", "must be an array of dates \"YYYY-MM-DD\"");
        return;
    }
    size_t n = json_array_size(v);
    if (n > OSSE_CALENDAR_MAX_HOLIDAYS) {
        problem(p, "holidays", "must hold at most %d dates", OSSE_CALENDAR_MAX_HOLIDAYS);
        return;
    }
    if (n == 0)
        return;
    out->holidays = osse_calloc(n, sizeof *out->holidays);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        int64_t day;
        if (!s || osse_date_parse(s, &day)) {
            snprintf(path, sizeof path, "holidays[%zu]", i);
            problem(p, path, "must be a date \"YYYY-MM-DD\"");
            continue;
        }
        out->holidays[out->nholidays++] = day;
    }
    /* A repeated date is harmless, so it is folded rather than refused. */
    qsort(out->holidays, out->nholidays, sizeof *out->holidays, cmp_i64);
    size_t w = 0;
    for (size_t r = 0; r < out->nholidays; r++)
        if (w == 0 || out->holidays[w - 1] != out->holidays[r])
            out->holidays[w++] = out->holidays[r];
    out->nholidays = w;
}

int osse_calendar_from_json(const json_t *body, osse_calendar_t *out, json_t *details)
{
    parse_ctx_t p = {details, 0};
    memset(out, 0, sizeof *out);
    if (!json_is_object(body)) {
        problem(&p, "", "a calendar must be a JSON object");
        goto out;
    }
    /* jansson's iteration API takes a non-const pointer but only reads. */
    json_t *obj = (json_t *)body;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "utc_offset") == 0) {
            const char *s = json_string_value(v);
            if (!s || parse_offset(s, &out->utc_offset_min))
                problem(&p, "utc_offset", "must be \"+HH:MM\", \"-HH:MM\" or \"Z\"");
        } else if (strcmp(key, "workdays") == 0) {
            parse_workdays(&p, v, out);
        } else if (strcmp(key, "hours") == 0) {
            parse_hours(&p, v, out);
        } else if (strcmp(key, "holidays") == 0) {
            parse_holidays(&p, v, out);
        } else {
            problem(&p, key, "unknown key");
        }
    }
    static const char *const required[] = {"utc_offset", "workdays", "hours"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (!json_object_get(obj, required[i]))
            problem(&p, required[i], "is required");
out:
    if (p.rc != 0)
        osse_calendar_close(out);
    return p.rc;
}

json_t *osse_calendar_to_json(const osse_calendar_t *c)
{
    char off[8], open[8], close[8], date[16];
    int32_t a = c->utc_offset_min < 0 ? -c->utc_offset_min : c->utc_offset_min;
    snprintf(off, sizeof off, "%c%02d:%02d", c->utc_offset_min < 0 ? '-' : '+', (int)(a / 60 % 100),
             (int)(a % 60));
    snprintf(open, sizeof open, "%02d:%02d", (int)(c->open_min / 60 % 100),
             (int)(c->open_min % 60));
    snprintf(close, sizeof close, "%02d:%02d", (int)(c->close_min / 60 % 100),
             (int)(c->close_min % 60));
    json_t *days = json_array(), *hols = json_array();
    json_t *res = NULL;
    if (!days || !hols)
        goto out;
    for (int k = 0; k < 7; k++)
        if ((c->workdays >> k & 1) && json_array_append_new(days, json_string(day_names[k])))
            goto out;
    for (size_t i = 0; i < c->nholidays; i++) {
        int64_t y;
        unsigned m, d;
        osse_civil_from_days(c->holidays[i], &y, &m, &d);
        snprintf(date, sizeof date, "%04lld-%02u-%02u", (long long)y, m, d);
        if (json_array_append_new(hols, json_string(date)))
            goto out;
    }
    res = json_pack("{s:s,s:O,s:[ss],s:O}", "utc_offset", off, "workdays", days, "hours", open,
                    close, "holidays", hols);
out:
    json_decref(days);
    json_decref(hols);
    return res;
}

void osse_calendar_close(osse_calendar_t *c)
{
    if (!c)
        return;
    free(c->holidays);
    memset(c, 0, sizeof *c);
}

int64_t osse_calendar_day_minutes(const osse_calendar_t *c)
{
    return c->close_min > c->open_min ? (int64_t)c->close_min - c->open_min : 0;
}

/* ---- arithmetic --------------------------------------------------------- */

static int64_t fdiv(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static int64_t clamp_instant(int64_t t)
{
    return t < -OSSE_CALENDAR_LIMIT_MS  ? -OSSE_CALENDAR_LIMIT_MS
           : t > OSSE_CALENDAR_LIMIT_MS ? OSSE_CALENDAR_LIMIT_MS
                                        : t;
}

/* 1970-01-01 was a Thursday: day 0 has weekday 3 when monday is 0. */
static int weekday(int64_t day)
{
    return (int)(day + 3 - fdiv(day + 3, 7) * 7);
}

static bool is_workday(const osse_calendar_t *c, int64_t day)
{
    return c->workdays >> weekday(day) & 1;
}

/* Index of the first holiday >= day. */
static size_t lower_bound(const osse_calendar_t *c, int64_t day)
{
    size_t lo = 0, hi = c->nholidays;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->holidays[mid] < day)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool is_working_day(const osse_calendar_t *c, int64_t day)
{
    if (!is_workday(c, day))
        return false;
    size_t i = lower_bound(c, day);
    return !(i < c->nholidays && c->holidays[i] == day);
}

/* Holidays in [from, to] that fall on workdays (the only ones that matter). */
static int64_t workday_holidays(const osse_calendar_t *c, int64_t from, int64_t to)
{
    int64_t n = 0;
    for (size_t i = lower_bound(c, from); i < c->nholidays && c->holidays[i] <= to; i++)
        n += is_workday(c, c->holidays[i]);
    return n;
}

/* Workdays in [0, z) (negative for z < 0), holidays ignored. */
static int64_t workdays_before(const osse_calendar_t *c, int64_t z)
{
    int64_t q = fdiv(z, 7), r = z - q * 7, n = q * __builtin_popcount(c->workdays & 0x7f);
    for (int64_t i = 0; i < r; i++)
        n += c->workdays >> ((i + 3) % 7) & 1;
    return n;
}

/* The k-th workday strictly after day (k >= 1), holidays ignored. */
static int64_t nth_workday_after(const osse_calendar_t *c, int64_t day, int64_t k)
{
    int64_t per_week = __builtin_popcount(c->workdays & 0x7f);
    int64_t weeks = (k - 1) / per_week;
    day += weeks * 7;
    k -= weeks * per_week; /* now 1 <= k <= per_week: found within 7 days */
    while (k > 0) {
        day++;
        k -= is_workday(c, day);
    }
    return day;
}

/* Working ms of one working day inside the local time-of-day span [from, to). */
static int64_t clip(const osse_calendar_t *c, int64_t from, int64_t to)
{
    int64_t open = c->open_min * MIN_MS, close = c->close_min * MIN_MS;
    int64_t a = from > open ? from : open, b = to < close ? to : close;
    return b > a ? b - a : 0;
}

static bool has_working_time(const osse_calendar_t *c)
{
    return (c->workdays & 0x7f) && c->open_min >= 0 && c->open_min < c->close_min &&
           c->close_min <= 1440;
}

int osse_calendar_is_working(const osse_calendar_t *c, int64_t t_ms)
{
    if (!has_working_time(c))
        return 0;
    int64_t local = clamp_instant(t_ms) + c->utc_offset_min * MIN_MS;
    int64_t day = fdiv(local, DAY_MS), tod = local - day * DAY_MS;
    return is_working_day(c, day) && tod >= c->open_min * MIN_MS && tod < c->close_min * MIN_MS;
}

int64_t osse_calendar_between_ms(const osse_calendar_t *c, int64_t a_ms, int64_t b_ms)
{
    if (!has_working_time(c))
        return 0;
    a_ms = clamp_instant(a_ms);
    b_ms = clamp_instant(b_ms);
    if (b_ms <= a_ms)
        return 0;
    int64_t off = c->utc_offset_min * MIN_MS;
    int64_t la = a_ms + off, lb = b_ms + off;
    int64_t da = fdiv(la, DAY_MS), ta = la - da * DAY_MS;
    int64_t db = fdiv(lb, DAY_MS), tb = lb - db * DAY_MS;
    if (da == db)
        return is_working_day(c, da) ? clip(c, ta, tb) : 0;
    int64_t sum = is_working_day(c, da) ? clip(c, ta, DAY_MS) : 0;
    if (db > da + 1) {
        int64_t days = workdays_before(c, db) - workdays_before(c, da + 1) -
                       workday_holidays(c, da + 1, db - 1);
        sum += days * (c->close_min - c->open_min) * MIN_MS;
    }
    if (is_working_day(c, db))
        sum += clip(c, 0, tb);
    return sum;
}

int64_t osse_calendar_add_ms(const osse_calendar_t *c, int64_t start_ms, int64_t ms)
{
    if (ms <= 0)
        return start_ms;
    if (!has_working_time(c))
        return INT64_MAX;
    int64_t open = c->open_min * MIN_MS, close = c->close_min * MIN_MS, per_day = close - open;
    int64_t off = c->utc_offset_min * MIN_MS;
    int64_t local = clamp_instant(start_ms) + off;
    int64_t day = fdiv(local, DAY_MS), tod = local - day * DAY_MS;

    /* The rest of the start day, if it is working time. */
    if (tod < close && is_working_day(c, day)) {
        int64_t from = tod > open ? tod : open;
        if (ms <= close - from)
            return day * DAY_MS + from + ms - off;
        ms -= close - from;
    }
    /* Then k whole or partial working days; the last gets rem in (0, per_day],
     * so a count ending exactly on a day's last ms ends at its closing time. */
    int64_t k = (ms - 1) / per_day + 1, rem = ms - (k - 1) * per_day;
    /* Each week holds a workday, so k workdays reach at least k days ahead. */
    if (k > 2 * LIMIT_DAYS)
        return INT64_MAX;
    while (k > 0) {
        int64_t next = nth_workday_after(c, day, k);
        /* Holidays on workdays in (day, next] did not count: go on past them. */
        k = workday_holidays(c, day + 1, next);
        day = next;
        if (day > LIMIT_DAYS + 1)
            return INT64_MAX;
    }
    int64_t t = day * DAY_MS + open + rem - off;
    return t > OSSE_CALENDAR_LIMIT_MS ? INT64_MAX : t;
}

int64_t osse_calendar_add(const osse_calendar_t *c, int64_t start_ms, int64_t minutes)
{
    if (minutes > INT64_MAX / MIN_MS)
        return INT64_MAX;
    return osse_calendar_add_ms(c, start_ms, minutes * MIN_MS);
}

int64_t osse_calendar_between(const osse_calendar_t *c, int64_t a_ms, int64_t b_ms)
{
    return osse_calendar_between_ms(c, a_ms, b_ms) / MIN_MS;
}
