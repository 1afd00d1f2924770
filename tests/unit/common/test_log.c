/* test_log.c: the server's logfmt lines: exact shape, quoting and escaping
 * (every value parses back to the bytes given, random ones included), the
 * conversions, the line cap, levels, URL reduction, and one write per line on
 * stderr. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/test.h"

#define T0 1796090400000LL /* 2026-12-01T02:00:00.000Z */

static char line[OSSE_LOGF_LINE_MAX + 1];

static size_t fmt(osse_level_t lv, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));
static size_t fmt(osse_level_t lv, const char *msg, const char *fields, ...)
{
    va_list ap;
    va_start(ap, fields);
    size_t n = osse_logf_format(line, sizeof line, T0, lv, msg, fields, ap);
    va_end(ap);
    return n;
}

/* --- a logfmt reader, written from brandur.org/logfmt, not from log.c --- */

typedef struct pair_s {
    char key[64];
    char val[OSSE_LOGF_LINE_MAX];
    size_t len;
} pair_t;

static int hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parses one line (with its newline) into pairs; -1 when it is not logfmt. */
static int parse(const char *s, pair_t *pairs, int max)
{
    int n = 0;
    size_t len = strlen(s);
    if (len == 0 || s[len - 1] != '\n' || memchr(s, '\n', len - 1))
        return -1;
    const char *p = s, *end = s + len - 1;
    while (p < end) {
        if (*p != ' ' && p != s)
            return -1;
        if (p != s)
            p++;
        if (n == max)
            return -1;
        pair_t *q = &pairs[n++];
        size_t kl = 0;
        while (p < end && *p != '=' && *p != ' ' && *p != '"' && kl < sizeof q->key - 1)
            q->key[kl++] = *p++;
        q->key[kl] = '\0';
        q->len = 0;
        if (kl == 0)
            return -1;
        if (p == end || *p == ' ')
            continue;
        if (*p++ != '=')
            return -1;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p >= end)
                    return -1;
                char c = *p++;
                if (c == '"')
                    break;
                if ((unsigned char)c < ' ')
                    return -1;
                if (c != '\\') {
                    q->val[q->len++] = c;
                    continue;
                }
                c = p < end ? *p++ : 0;
                if (c == 'n')
                    q->val[q->len++] = '\n';
                else if (c == 'r')
                    q->val[q->len++] = '\r';
                else if (c == 't')
                    q->val[q->len++] = '\t';
                else if (c == '"' || c == '\\')
                    q->val[q->len++] = c;
                else if (c == 'u' && end - p >= 4 && p[0] == '0' && p[1] == '0' && hex(p[2]) >= 0 &&
                         hex(p[3]) >= 0) {
                    q->val[q->len++] = (char)(hex(p[2]) * 16 + hex(p[3]));
                    p += 4;
                } else if (c == 'x' && end - p >= 2 && hex(p[0]) >= 0 && hex(p[1]) >= 0) {
                    q->val[q->len++] = (char)(hex(p[0]) * 16 + hex(p[1]));
                    p += 2;
                } else {
                    return -1;
                }
            }
            if (p < end && *p != ' ')
                return -1;
        } else {
            while (p < end && *p != ' ') {
                if (*p == '"' || *p == '=' || (unsigned char)*p < ' ')
                    return -1;
                q->val[q->len++] = *p++;
            }
        }
    }
    return n;
}

static pair_t pairs[64];

static const pair_t *get(int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(pairs[i].key, key) == 0)
            return &pairs[i];
    return NULL;
}

static void test_shape(void)
{
    size_t n = fmt(OSSE_LEVEL_INFO, "listening", "addr=%s:%d", "127.0.0.1", 8080);
    CHECK_EQ_STR(line,
                 "ts=2026-12-01T02:00:00.000Z level=info msg=listening addr=127.0.0.1:8080\n");
    CHECK_EQ_INT(n, strlen(line));
    fmt(OSSE_LEVEL_WARN, "log replayed", "events=%llu replay_ms=%.1f ok=%s", 12ULL, 3.25, "true");
    CHECK_EQ_STR(line, "ts=2026-12-01T02:00:00.000Z level=warn msg=\"log replayed\" events=12 "
                       "replay_ms=3.2 ok=true\n");
    fmt(OSSE_LEVEL_ERROR, "x", NULL);
    CHECK_EQ_STR(line, "ts=2026-12-01T02:00:00.000Z level=error msg=x\n");
    const char *volatile none = NULL; /* a NULL %s is an empty value */
    fmt(OSSE_LEVEL_DEBUG, "x", "a=%s b=%s c=%d", none, "", -5);
    CHECK_EQ_STR(line, "ts=2026-12-01T02:00:00.000Z level=debug msg=x a=\"\" b=\"\" c=-5\n");
}

static void test_escaping(void)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"two words", "\"two words\""},
        {"a=b", "\"a=b\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"line\nbreak\r\ttab", "\"line\\nbreak\\r\\ttab\""},
        {"bell\x01\x7f", "\"bell\\u0001\\u007f\""},
        {"ร้านก๋วยเตี๋ยว", "ร้านก๋วยเตี๋ยว"},
        {"bad\xff\xc3", "\"bad\\xff\\xc3\""},
        {"ok\xc3\xa9 x", "\"ok\xc3\xa9 x\""},
        {"http://h:1/p?q=1", "\"http://h:1/p?q=1\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fmt(OSSE_LEVEL_INFO, "m", "v=%s", cases[i].in);
        char want[256];
        snprintf(want, sizeof want, "ts=2026-12-01T02:00:00.000Z level=info msg=m v=%s\n",
                 cases[i].out);
        CHECK_EQ_STR(line, want);
        int n = parse(line, pairs, 64);
        CHECK_EQ_INT(n, 4);
        const pair_t *v = get(n, "v");
        CHECK(v && v->len == strlen(cases[i].in) && memcmp(v->val, cases[i].in, v->len) == 0);
    }
    /* One value of text and conversions is escaped as a whole. */
    fmt(OSSE_LEVEL_INFO, "m", "addr=%s:%d", "a b", 1);
    CHECK(strstr(line, " addr=\"a b:1\"\n") != NULL);
    /* The message is a value like the others. */
    fmt(OSSE_LEVEL_INFO, "a \"quoted\" msg", NULL);
    CHECK(strstr(line, " msg=\"a \\\"quoted\\\" msg\"\n") != NULL);
}

/* Random bytes (no NUL: they come through %s) always parse back. */
static void test_random_round_trip(void)
{
    srand(7);
    char in[300];
    for (int round = 0; round < 5000; round++) {
        size_t n = (size_t)(rand() % 200);
        for (size_t i = 0; i < n; i++) {
            int r = rand() % 10;
            in[i] = r < 5 ? (char)(' ' + rand() % 95) : (char)(1 + rand() % 255);
        }
        in[n] = '\0';
        fmt(OSSE_LEVEL_INFO, in, "k=%s k2=%s", in, "x");
        int np = parse(line, pairs, 64);
        CHECK_EQ_INT(np, 5);
        const pair_t *m = get(np, "msg"), *k = get(np, "k"), *k2 = get(np, "k2");
        CHECK(m && m->len == n && memcmp(m->val, in, n) == 0);
        CHECK(k && k->len == n && memcmp(k->val, in, n) == 0);
        CHECK(k2 && k2->len == 1 && k2->val[0] == 'x');
        if (test__failures)
            return;
    }
}

static void test_conversions(void)
{
    fmt(OSSE_LEVEL_INFO, "m", "a=%u b=%lld c=%zu d=%x e=%5d f=%-3d| g=%.*s h=%%x i=%c j=%ld k=%.3f",
        4000000000u, -9000000000LL, (size_t)42, 255, 7, 8, 3, "abcdef", 'Z', 123456789L, 1.5);
    CHECK(strstr(line, " a=4000000000 b=-9000000000 c=42 d=ff e=\"    7\" f=\"8  |\" g=abc "
                       "h=%x i=Z j=123456789 k=1.500\n") != NULL);
    /* A bare key is kept as it is. */
    fmt(OSSE_LEVEL_INFO, "m", "flag n=%d", 1);
    CHECK(strstr(line, " msg=m flag n=1\n") != NULL);
}

/* The plain conversions give what snprintf gives, at the extremes of
 * their types too. */
static void test_plain_conversions(void)
{
    static const long long ll[] = {0,
                                   1,
                                   -1,
                                   9,
                                   10,
                                   -10,
                                   2147483647LL,
                                   -2147483647LL - 1,
                                   9223372036854775807LL,
                                   -9223372036854775807LL - 1};
    int bad = 0;
    for (size_t i = 0; i < sizeof ll / sizeof ll[0]; i++) {
        char want[256];
        long long x = ll[i];
        unsigned long long u = (unsigned long long)x;
        snprintf(want, sizeof want, " a=%d b=%i c=%ld d=%lld e=%zd f=%u g=%lu h=%llu i=%zu\n",
                 (int)x, (int)x, (long)x, x, (ssize_t)x, (unsigned)u, (unsigned long)u, u,
                 (size_t)u);
        fmt(OSSE_LEVEL_INFO, "m", "a=%d b=%i c=%ld d=%lld e=%zd f=%u g=%lu h=%llu i=%zu", (int)x,
            (int)x, (long)x, x, (ssize_t)x, (unsigned)u, (unsigned long)u, u, (size_t)u);
        if (!strstr(line, want) && bad++ < 3)
            fprintf(stderr, "got %s want %s", line, want);
    }
    CHECK_EQ_INT(bad, 0);
    /* Strings: empty, NULL (as ""), and glued to text and to each other. */
    const char *volatile none = NULL; /* hidden from the format check */
    fmt(OSSE_LEVEL_INFO, "m", "a=%s b=<%s> c=%s:%d%s", "", none, "host", 80, "/x");
    CHECK(strstr(line, " a=\"\" b=<> c=host:80/x\n") != NULL);
    /* A value cut at the value buffer keeps its first bytes, as before. */
    static char big[1500];
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    for (int pre = 0; pre < 4; pre++) {
        fmt(OSSE_LEVEL_INFO, "m", pre ? "a=%.*s%s%d" : "a=%.*s%s", pre, "zzzz", big, 5);
        int np = parse(line, pairs, 64);
        CHECK_EQ_INT(np, 4);
        CHECK(get(np, "a") && get(np, "a")->len == 1023);
    }
}

static void test_line_cap(void)
{
    static char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    size_t n = fmt(OSSE_LEVEL_INFO, "m", "a=%s b=%s c=%s d=%s e=%d", big, big, big, big, 1);
    CHECK(n <= OSSE_LOGF_LINE_MAX);
    CHECK_EQ_INT(n, strlen(line));
    CHECK(line[n - 1] == '\n');
    const char *tail = " truncated=true\n";
    CHECK(n > strlen(tail) && strcmp(line + n - strlen(tail), tail) == 0);
    int np = parse(line, pairs, 64);
    CHECK(np >= 4);
    CHECK(get(np, "c") != NULL && get(np, "d") == NULL && get(np, "e") == NULL);
    /* A value is cut at 1 KiB, still as one value. */
    fmt(OSSE_LEVEL_INFO, "m", "a=%s", big);
    np = parse(line, pairs, 64);
    CHECK_EQ_INT(np, 4);
    CHECK(get(np, "a") && get(np, "a")->len < 1100 && get(np, "a")->len > 1000);
    /* Quoting that doubles a value's size stays within the line too. */
    static char quotes[1000];
    memset(quotes, '"', sizeof quotes - 1);
    quotes[sizeof quotes - 1] = '\0';
    n = fmt(OSSE_LEVEL_INFO, "m", "a=%s b=%s c=%s", quotes, quotes, quotes);
    CHECK(n <= OSSE_LOGF_LINE_MAX);
    CHECK(parse(line, pairs, 64) > 0);
}

static void test_levels(void)
{
    osse_level_t lv;
    CHECK_EQ_INT(osse_logf_parse_level("debug", &lv), 0);
    CHECK_EQ_INT(lv, OSSE_LEVEL_DEBUG);
    CHECK_EQ_INT(osse_logf_parse_level("error", &lv), 0);
    CHECK_EQ_INT(lv, OSSE_LEVEL_ERROR);
    CHECK(osse_logf_parse_level("INFO", &lv) != 0);
    CHECK(osse_logf_parse_level("verbose", &lv) != 0);
    CHECK(osse_logf_parse_level("", &lv) != 0);
    CHECK_EQ_STR(osse_logf_level_name(OSSE_LEVEL_WARN), "warn");
    CHECK(osse_logf_enabled(OSSE_LEVEL_INFO) && !osse_logf_enabled(OSSE_LEVEL_DEBUG));
    osse_logf_set_level(OSSE_LEVEL_ERROR);
    CHECK(!osse_logf_enabled(OSSE_LEVEL_WARN) && osse_logf_enabled(OSSE_LEVEL_ERROR));
    osse_logf_set_level(OSSE_LEVEL_INFO);
}

static void test_url_origin(void)
{
    char o[128];
    CHECK_EQ_STR(osse_logf_url_origin("https://hooks.example.org/T0/B0/s3cret?k=v#f", o, sizeof o),
                 "https://hooks.example.org");
    CHECK_EQ_STR(osse_logf_url_origin("http://user:pw@127.0.0.1:9000/x", o, sizeof o),
                 "http://127.0.0.1:9000");
    CHECK_EQ_STR(osse_logf_url_origin("http://[::1]:80?token=abc", o, sizeof o), "http://[::1]:80");
    CHECK_EQ_STR(osse_logf_url_origin("http://a@b@host", o, sizeof o), "http://host");
    CHECK_EQ_STR(osse_logf_url_origin("not a url", o, sizeof o), "-");
    CHECK_EQ_STR(osse_logf_url_origin("://x", o, sizeof o), "-");
    CHECK_EQ_STR(osse_logf_url_origin(NULL, o, sizeof o), "-");
    CHECK_EQ_STR(osse_logf_url_origin("https://very-long-host.example", o, 12), "https://ver");
}

/* osse_logf writes each line with one write(2) to fd 2, and only at or above
 * the level. */
static void test_stderr(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    osse_logf(OSSE_LEVEL_INFO, "one", "n=%d", 1);
    osse_logf(OSSE_LEVEL_DEBUG, "hidden", "n=%d", 2);
    osse_logf(OSSE_LEVEL_ERROR, "two words", "n=%d", 3);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char got[1024];
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    CHECK(n > 0);
    got[n > 0 ? n : 0] = '\0';
    char *second = strchr(got, '\n');
    CHECK(second != NULL);
    if (!second)
        return;
    *second++ = '\0';
    CHECK(strncmp(got, "ts=", 3) == 0 && strstr(got, " level=info msg=one n=1") != NULL);
    CHECK(strstr(second, " level=error msg=\"two words\" n=3\n") != NULL);
    CHECK(strstr(second, "hidden") == NULL && strstr(got, "hidden") == NULL);
}

/* Lines held (osse_logf_hold) go out at the outermost release, in order; a
 * warning goes out at once, after what was held; more than a write's worth
 * held goes out whole lines at a time. */
static size_t drain(int fd, char *got, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, got + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    got[len] = '\0';
    return len;
}

static void test_hold(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0);
    int saved = dup(2);
    dup2(fds[1], 2);
    static char got[65536];
    osse_logf_hold();
    osse_logf_hold();
    osse_logf(OSSE_LEVEL_INFO, "a", "n=%d", 1);
    osse_logf(OSSE_LEVEL_INFO, "b", "n=%d", 2);
    osse_logf_release(); /* inner: still held */
    CHECK(drain(fds[0], got, sizeof got) == 0);
    osse_logf(OSSE_LEVEL_WARN, "c", "n=%d", 3);
    drain(fds[0], got, sizeof got);
    char *a = strstr(got, "msg=a n=1\n"), *b = strstr(got, "msg=b n=2\n"),
         *c = strstr(got, "msg=c n=3\n");
    CHECK(a && b && c && a < b && b < c);
    osse_logf(OSSE_LEVEL_INFO, "d", "n=%d", 4);
    CHECK(drain(fds[0], got, sizeof got) == 0);
    osse_logf_release();
    drain(fds[0], got, sizeof got);
    CHECK(strstr(got, "msg=d n=4\n") != NULL);
    /* 200 lines of about 70 bytes: several writes, every line whole. */
    osse_logf_hold();
    for (int i = 0; i < 200; i++)
        osse_logf(OSSE_LEVEL_INFO, "many", "i=%d", i);
    osse_logf_release();
    size_t len = drain(fds[0], got, sizeof got);
    int lines = 0, next = 0;
    for (char *p = got, *nl; p < got + len && (nl = strchr(p, '\n')); p = nl + 1, lines++) {
        char want[32];
        snprintf(want, sizeof want, " msg=many i=%d", next++);
        CHECK(strncmp(p, "ts=", 3) == 0 && strstr(p, want) != NULL && strstr(p, want) < nl);
    }
    CHECK(lines == 200);
    /* Not held: out at once. */
    osse_logf(OSSE_LEVEL_INFO, "e", "n=%d", 5);
    drain(fds[0], got, sizeof got);
    CHECK(strstr(got, "msg=e n=5\n") != NULL);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    close(fds[0]);
}

int main(void)
{
    RUN(test_shape);
    RUN(test_escaping);
    RUN(test_random_round_trip);
    RUN(test_conversions);
    RUN(test_plain_conversions);
    RUN(test_line_cap);
    RUN(test_levels);
    RUN(test_url_origin);
    RUN(test_stderr);
    RUN(test_hold);
    return TEST_EXIT();
}
