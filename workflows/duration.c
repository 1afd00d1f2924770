/* duration.c: SLA durations (SPEC §2): ISO 8601 wall-clock time or working time.
 *
 * Accepted forms, nothing else:
 *   P[nY][nM][nW][nD][T[nH][nM][nS]]  non-negative integer parts, at least one
 *                                     part, not all zero, units in this order
 *   "N working day(s)" / "N working hour(s)"  N an integer >= 1, single spaces
 * Fractions, signs, lower case and "P1DT" (a T with nothing after it) are
 * refused: a definition that means something odd should fail at publish time,
 * not at the first breach. Each part is capped so that no sum can overflow. */
#include <stdlib.h>
#include <string.h>

#include "common/time.h"
#include "workflows/workflow.h"

#define PART_MAX 1000000LL /* ~ 11 days of seconds, 2700 years: far past any SLA */

/* Reads 1..7 digits at *p into *v; fails on no digits or a value over PART_MAX. */
static int read_num(const char **p, int64_t *v)
{
    const char *s = *p;
    int64_t x = 0;
    int n = 0;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (*s - '0');
        if (x > PART_MAX)
            return OSSE_EPARSE;
        s++, n++;
    }
    if (n == 0)
        return OSSE_EPARSE;
    *p = s;
    *v = x;
    return 0;
}

static int parse_iso(const char *s, osse_duration_t *d)
{
    static const char date_units[] = "YMWD", time_units[] = "HMS";
    const char *p = s + 1; /* past 'P' */
    int next = 0, parts = 0;
    bool any = false;
    while (*p && *p != 'T') {
        int64_t v;
        if (read_num(&p, &v))
            return OSSE_EPARSE;
        const char *u = strchr(date_units + next, *p);
        if (!*p || !u)
            return OSSE_EPARSE;
        switch (*u) {
        case 'Y': d->years = v; break;
        case 'M': d->months = v; break;
        case 'W': d->days += 7 * v; break;
        case 'D': d->days += v; break;
        }
        next = (int)(u - date_units) + 1;
        any |= v != 0;
        parts++;
        p++;
    }
    if (*p == 'T') {
        p++;
        next = 0;
        int tparts = 0;
        while (*p) {
            int64_t v;
            if (read_num(&p, &v))
                return OSSE_EPARSE;
            const char *u = strchr(time_units + next, *p);
            if (!*p || !u)
                return OSSE_EPARSE;
            int64_t unit_ms = *u == 'H' ? 3600000 : *u == 'M' ? 60000 : 1000;
            d->ms += v * unit_ms;
            next = (int)(u - time_units) + 1;
            any |= v != 0;
            tparts++;
            p++;
        }
        if (tparts == 0)
            return OSSE_EPARSE;
        parts += tparts;
    }
    if (parts == 0 || !any)
        return OSSE_EPARSE;
    d->kind = OSSE_DUR_WALL;
    return 0;
}

static int parse_working(const char *s, osse_duration_t *d)
{
    const char *p = s;
    int64_t n;
    if (read_num(&p, &n) || n < 1)
        return OSSE_EPARSE;
    static const struct {
        const char *text;
        osse_dur_kind_t kind;
    } units[] = {
        {" working day", OSSE_DUR_WORKING_DAYS},
        {" working days", OSSE_DUR_WORKING_DAYS},
        {" working hour", OSSE_DUR_WORKING_HOURS},
        {" working hours", OSSE_DUR_WORKING_HOURS},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].text) == 0) {
            d->kind = units[i].kind;
            d->count = n;
            return 0;
        }
    }
    return OSSE_EPARSE;
}

int osse_duration_parse(const char *s, osse_duration_t *out)
{
    osse_duration_t d = {.kind = OSSE_DUR_NONE};
    int rc = OSSE_EPARSE;
    if (!s || !*s)
        goto out;
    if (s[0] == 'P')
        rc = parse_iso(s, &d);
    else if (s[0] >= '0' && s[0] <= '9')
        rc = parse_working(s, &d);
out:
    if (rc == 0)
        *out = d;
    else
        *out = (osse_duration_t){.kind = OSSE_DUR_NONE};
    return rc;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

int64_t osse_duration_add_wall(const osse_duration_t *d, int64_t ms)
{
    const int64_t day_ms = 86400000;
    if (d->kind != OSSE_DUR_WALL)
        return ms;
    int64_t days = floor_div(ms, day_ms);
    int64_t tod = ms - days * day_ms;
    if (d->years || d->months) {
        int64_t y;
        unsigned m, dd;
        osse_civil_from_days(days, &y, &m, &dd);
        /* Months counted from year 0 so that the carry into years is one division. */
        int64_t mi = y * 12 + (m - 1) + d->years * 12 + d->months;
        y = floor_div(mi, 12);
        m = (unsigned)(mi - y * 12) + 1;
        unsigned last = days_in_month(y, m);
        if (dd > last)
            dd = last;
        days = osse_days_from_civil(y, m, dd);
    }
    days += d->days;
    return days * day_ms + tod + d->ms;
}
