/* time.c: RFC 3339 formatting and parsing, civil-date arithmetic. */
#include "common/time.h"
#include "common/err.h"

#include <string.h>
#include <time.h>

int64_t osse_time_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t osse_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void osse_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int64_t floordiv(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

/* v's last n decimal digits, zero-padded, into out[0..n). */
static void put_digits(char *out, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

char *osse_time_fmt(int64_t ms, char *out)
{
    int64_t days = floordiv(ms, 86400000);
    /* Not ms - days * 86400000: within a day of INT64_MIN the product
     * overflows (UBSan saw it in test_time). */
    int64_t rem = ms % 86400000;
    if (rem < 0)
        rem += 86400000;
    int64_t y;
    unsigned m, d;
    osse_civil_from_days(days, &y, &m, &d);
    /* Years beyond 9999 are not times osse shows; clamping keeps the
     * output within OSSE_TIME_LEN whatever the input. */
    if (y < 0)
        y = 0;
    if (y > 9999)
        y = 9999;
    /* The digits by hand, not by snprintf ("%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
     * which this matches byte for byte): every event and log line has a
     * time, and snprintf was 3 % of the loop's CPU per submission. Every
     * field is below its width's power of ten, so widths never grow. */
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    put_digits(out + 5, m, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(rem / 3600000), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(rem / 60000 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(rem / 1000 % 60), 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(rem % 1000), 3);
    out[23] = 'Z';
    out[24] = '\0';
    return out;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

int osse_date_parse(const char *s, int64_t *days)
{
    int y, m, d;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &m) ||
        digits(s + 8, 2, &d))
        return OSSE_EPARSE;
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return OSSE_EPARSE;
    *days = osse_days_from_civil(y, (unsigned)m, (unsigned)d);
    return 0;
}

int osse_time_parse(const char *s, int64_t *ms)
{
    char date[11];
    int hh, mi, ss, frac = 0;
    if (strlen(s) < 20 || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
        return OSSE_EPARSE;
    memcpy(date, s, 10);
    date[10] = '\0';
    int64_t days;
    if (osse_date_parse(date, &days))
        return OSSE_EPARSE;
    const char *p = s + 11;
    if (digits(p, 2, &hh) || p[2] != ':' || digits(p + 3, 2, &mi) || p[5] != ':' ||
        digits(p + 6, 2, &ss) || hh > 23 || mi > 59 || ss > 60)
        return OSSE_EPARSE;
    p += 8;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac = frac * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0)
            return OSSE_EPARSE;
        for (; n < 3; n++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return OSSE_EPARSE;
        off = (oh * 60 + om) * 60000LL * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return OSSE_EPARSE;
    }
    if (*p)
        return OSSE_EPARSE;
    *ms = days * 86400000LL + hh * 3600000LL + mi * 60000LL + (ss > 59 ? 59 : ss) * 1000LL + frac -
          off;
    return 0;
}
