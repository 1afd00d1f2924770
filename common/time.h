/* time.h: instants as int64 milliseconds since the Unix epoch, UTC.
 *
 * Every time osse shows is RFC 3339 UTC with milliseconds
 * ("2026-12-01T02:00:00.000Z"). Civil-date helpers use the proleptic
 * Gregorian calendar and never consult the process's time zone. */
#ifndef OSSE_COMMON_TIME_H
#define OSSE_COMMON_TIME_H

#include <stdbool.h>
#include <stdint.h>

#define OSSE_TIME_LEN 32 /* buffer size for osse_time_fmt */

/* Wall clock now, in ms. Any thread. */
int64_t osse_time_real_ms(void);

/* Formats ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[OSSE_TIME_LEN]; returns out. */
char *osse_time_fmt(int64_t ms, char *out);

/* Parses RFC 3339 ("2026-12-01T09:00:00+07:00", fraction optional, "Z" or
 * an offset). Returns 0 or OSSE_EPARSE. */
int osse_time_parse(const char *s, int64_t *ms);

/* Days since 1970-01-01 of a civil date, and back (Howard Hinnant's algorithms). */
int64_t osse_days_from_civil(int64_t y, unsigned m, unsigned d);
void osse_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);
/* Parses "YYYY-MM-DD", checking the day exists. Returns 0 or OSSE_EPARSE. */
int osse_date_parse(const char *s, int64_t *days);

#endif
