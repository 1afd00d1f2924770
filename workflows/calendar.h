/* calendar.h: working-time calendars (SPEC §3) and working-time arithmetic.
 *
 * A calendar is a fixed UTC offset, a set of weekdays, one daily opening
 * window [open, close) in local time, and a list of local holiday dates.
 * Working time is the union of the windows of every workday that is not a
 * holiday; a holiday on a non-workday changes nothing.
 *
 * Instants are int64 ms since the Unix epoch, UTC (common/time.h). All
 * arithmetic is done in ms, so a deadline computed from a start that is not
 * on a whole minute keeps its sub-minute part; the minute functions are thin
 * wrappers. "N working days" is N * osse_calendar_day_minutes() working
 * minutes and "N working hours" is N * 60 (SPEC §2).
 *
 * The one rule everything follows: osse_calendar_add_ms(c, s, n) is the
 * EARLIEST instant T such that exactly n working ms lie in [s, T). From it:
 *   - a start outside working time begins counting at the next working
 *     instant (a task opened on Saturday counts from Monday's opening);
 *   - a count that uses up the last working ms of a day ends at that day's
 *     closing time, never at the next opening (SPEC §2: "falls due at 16:30");
 *   - n == 0 gives s itself, whatever s is (zero time has elapsed at s);
 *   - osse_calendar_between_ms(c, s, osse_calendar_add_ms(c, s, n)) == n.
 *
 * Cost: O(log H + holidays inside the span) with H holidays; whole weeks are
 * skipped arithmetically, so adding 10,000 working days is as cheap as one.
 *
 * Range: instants are clamped to [-OSSE_CALENDAR_LIMIT_MS,
 * OSSE_CALENDAR_LIMIT_MS] (about ±142,000 years); a result past the limit,
 * or a calendar with no working time at all (possible only for a hand-built
 * struct: parsing refuses one), is reported as INT64_MAX ("never"). */
#ifndef OSSE_WORKFLOWS_CALENDAR_H
#define OSSE_WORKFLOWS_CALENDAR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define OSSE_CALENDAR_LIMIT_MS ((int64_t)1 << 52)
#define OSSE_CALENDAR_MAX_HOLIDAYS 100000

typedef struct osse_calendar_s {
    int32_t utc_offset_min;      /* fixed offset, e.g. +420 for +07:00, -570 for -09:30 */
    uint8_t workdays;            /* bit 0 = monday .. bit 6 = sunday */
    int32_t open_min, close_min; /* minutes after local midnight, 0 <= open < close <= 1440 */
    int64_t *holidays;           /* sorted, unique local dates as days since 1970-01-01; malloc'd */
    size_t nholidays;
} osse_calendar_t;

/* Parses a SPEC §3 calendar body:
 *   {"utc_offset":"+07:00","workdays":["mon",...,"fri"],"hours":["08:30","16:30"],
 *    "holidays":["2026-12-07",...]}
 * utc_offset ("+HH:MM", "-HH:MM" or "Z", |offset| <= 23:59), workdays (a
 * non-empty array of distinct "mon".."sun") and hours (two "HH:MM" with open
 * < close; close may be "24:00") are required; holidays (dates "YYYY-MM-DD",
 * at most OSSE_CALENDAR_MAX_HOLIDAYS) is optional and may be unordered or
 * repeat a date: it is stored sorted and unique.
 *
 * Returns 0 and fills *out (release with osse_calendar_close), or
 * OSSE_EINVAL after appending every problem found (unknown keys, missing
 * keys, bad values) to details (a JSON array, may be NULL) as
 * {"path":"hours[1]","message":"..."}, or OSSE_ENOMEM. On error *out holds
 * nothing (closing it is harmless). Any thread. */
int osse_calendar_from_json(const json_t *body, osse_calendar_t *out, json_t *details);

/* The canonical JSON form of c, in the shape from_json reads (offset as
 * "+HH:MM", workdays monday first, holidays sorted). A new reference, or
 * NULL when out of memory. Any thread. */
json_t *osse_calendar_to_json(const osse_calendar_t *c);

/* Frees c's holidays and zeroes it. NULL-safe. */
void osse_calendar_close(osse_calendar_t *c);

/* Working minutes in one working day (close - open). */
int64_t osse_calendar_day_minutes(const osse_calendar_t *c);

/* True when the instant t lies in working time: a non-holiday workday, and
 * open <= local time of day < close. */
int osse_calendar_is_working(const osse_calendar_t *c, int64_t t_ms);

/* The earliest instant T such that exactly ms working milliseconds lie in
 * [start_ms, T) (see the rule above). ms <= 0 gives start_ms. Returns
 * INT64_MAX when T is past OSSE_CALENDAR_LIMIT_MS or c has no working time.
 * Pure; any thread. */
int64_t osse_calendar_add_ms(const osse_calendar_t *c, int64_t start_ms, int64_t ms);

/* Working milliseconds in [a_ms, b_ms); 0 when b_ms <= a_ms. Pure; any
 * thread. */
int64_t osse_calendar_between_ms(const osse_calendar_t *c, int64_t a_ms, int64_t b_ms);

/* osse_calendar_add_ms with minutes (saturating to INT64_MAX on overflow). */
int64_t osse_calendar_add(const osse_calendar_t *c, int64_t start_ms, int64_t minutes);

/* Whole working minutes in [a_ms, b_ms), rounded down. */
int64_t osse_calendar_between(const osse_calendar_t *c, int64_t a_ms, int64_t b_ms);

#endif
