/* log.c: logfmt lines on stderr (see log.h).
 *
 * A line is built whole in a stack buffer and written with one write(2), so
 * that lines from the loop thread, the log's writer thread and the pool never
 * interleave, and nothing here allocates (a panic may log while the heap is
 * broken). Each value of the caller's format is rendered by a small printf of
 * its own, one conversion at a time (a va_list cannot be handed to vsnprintf
 * and used again), then escaped as a whole: "addr=%s:%d" is one value. */
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fileio.h"
#include "common/time.h"
#include "common/utf8.h"

#define VALUE_MAX 1024 /* one rendered value; longer ones are cut */
#define TRUNCATED " truncated=true"

static const char *const level_names[] = {
#define X(n, s) s,
    OSSE_LEVELS(X)
#undef X
};

static atomic_int min_level = OSSE_LEVEL_INFO;

int osse_logf_parse_level(const char *s, osse_level_t *out)
{
    for (int i = 0; s && i < OSSE_LEVEL__COUNT; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (osse_level_t)i;
            return 0;
        }
    return OSSE_EINVAL;
}

const char *osse_logf_level_name(osse_level_t lv)
{
    return (unsigned)lv < OSSE_LEVEL__COUNT ? level_names[lv] : "?";
}

void osse_logf_set_level(osse_level_t lv)
{
    atomic_store_explicit(&min_level, (int)lv, memory_order_relaxed);
}

bool osse_logf_enabled(osse_level_t lv)
{
    return (int)lv >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

/* --- the line --- */

typedef struct out_s {
    char *p;
    size_t len, cap; /* cap: what the fields may use */
    bool full;
} out_t;

static void put(out_t *o, const char *s, size_t n)
{
    if (o->full || n > o->cap - o->len) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static bool needs_quotes(const unsigned char *v, size_t n, bool utf8)
{
    if (n == 0 || !utf8)
        return true;
    for (size_t i = 0; i < n; i++)
        if (v[i] <= ' ' || v[i] == '"' || v[i] == '=' || v[i] == '\\' || v[i] == 0x7f)
            return true;
    return false;
}

/* A value as logfmt: bare when it can be, else quoted with \" \\ \n \r \t,
 * \u00XX for other control bytes and \xXX for bytes of invalid UTF-8. */
static void put_value(out_t *o, const char *s, size_t n)
{
    const unsigned char *v = (const unsigned char *)s;
    bool utf8 = osse_utf8_valid(v, n);
    if (!needs_quotes(v, n, utf8)) {
        put(o, s, n);
        return;
    }
    put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char esc[8];
        unsigned char ch = v[i];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            put(o, esc, 2);
        } else if (ch == '\n') {
            put(o, "\\n", 2);
        } else if (ch == '\r') {
            put(o, "\\r", 2);
        } else if (ch == '\t') {
            put(o, "\\t", 2);
        } else if (ch < ' ' || ch == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put(o, esc, 6);
        } else if (ch >= 0x80 && !utf8) {
            snprintf(esc, sizeof esc, "\\x%02x", ch);
            put(o, esc, 4);
        } else {
            put(o, (const char *)&v[i], 1);
        }
    }
    put(o, "\"", 1);
}

/* --- values: a printf of one conversion at a time --- */

typedef struct val_s {
    char p[VALUE_MAX];
    size_t len;
} val_t;

static void val_add(val_t *v, int n)
{
    if (n > 0)
        v->len += (size_t)n < sizeof v->p - v->len ? (size_t)n : sizeof v->p - 1 - v->len;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
/* Render the value with spec (one complete conversion, as "%-08.3lld")
 * into v at `at`; nstar is how many `*` spec holds (their ints came first). */
#define EMIT(val)                                                                                  \
    val_add(v, nstar == 0   ? snprintf(at, room, spec, val)                                        \
               : nstar == 1 ? snprintf(at, room, spec, st[0], val)                                 \
                            : snprintf(at, room, spec, st[0], st[1], val))
#define RENDER(type)                                                                               \
    do {                                                                                           \
        type a_ = va_arg(*ap, type);                                                               \
        EMIT(a_);                                                                                  \
    } while (0)
/* An integer conversion's argument type follows its length modifier. */
#define BY_LENGTH(plain, l, ll, z, j, t)                                                           \
    do {                                                                                           \
        switch (len) {                                                                             \
        case L_L: RENDER(l); break;                                                                \
        case L_LL: RENDER(ll); break;                                                              \
        case L_Z: RENDER(z); break;                                                                \
        case L_J: RENDER(j); break;                                                                \
        case L_T: RENDER(t); break;                                                                \
        default: RENDER(plain); break;                                                             \
        }                                                                                          \
    } while (0)

/* Renders the conversion at *pp (just after its '%'). Returns false for one
 * it does not know: the arguments after it cannot be found any more. */
static bool convert(val_t *v, const char **pp, va_list *ap)
{
    const char *p = *pp;
    char spec[32] = "%";
    size_t sl = 1;
    int st[2] = {0, 0}, nstar = 0;
    if (*p == '%') {
        *pp = p + 1;
        val_add(v, snprintf(v->p + v->len, sizeof v->p - v->len, "%%"));
        return true;
    }
    while (*p && strchr("-+ #0123456789.*", *p) && sl < 20) {
        if (*p == '*') {
            if (nstar == 2)
                return false;
            st[nstar++] = va_arg(*ap, int);
        }
        spec[sl++] = *p++;
    }
    enum { L_NONE, L_H, L_HH, L_L, L_LL, L_Z, L_J, L_T, L_BIG } len = L_NONE;
    size_t adv = 1;
    if (p[0] == 'h' && p[1] == 'h')
        len = L_HH, adv = 2;
    else if (p[0] == 'l' && p[1] == 'l')
        len = L_LL, adv = 2;
    else if (*p == 'h')
        len = L_H;
    else if (*p == 'l')
        len = L_L;
    else if (*p == 'z')
        len = L_Z;
    else if (*p == 'j')
        len = L_J;
    else if (*p == 't')
        len = L_T;
    else if (*p == 'L')
        len = L_BIG;
    for (size_t k = len == L_NONE ? 0 : adv; k > 0; k--)
        spec[sl++] = *p++;
    char conv = *p;
    if (!conv)
        return false;
    spec[sl++] = conv;
    spec[sl] = '\0';
    *pp = p + 1;
    char *at = v->p + v->len;
    size_t room = sizeof v->p - v->len;
    switch (conv) {
    case 'd':
    case 'i': BY_LENGTH(int, long, long long, ssize_t, intmax_t, ptrdiff_t); return true;
    case 'u':
    case 'x':
    case 'X':
    case 'o':
        BY_LENGTH(unsigned, unsigned long, unsigned long long, size_t, uintmax_t, size_t);
        return true;
    case 'c': RENDER(int); return true;
    case 'p': RENDER(void *); return true;
    case 'f':
    case 'e':
    case 'g':
    case 'E':
    case 'G':
        if (len == L_BIG)
            RENDER(long double);
        else
            RENDER(double);
        return true;
    case 's': {
        const char *str = va_arg(*ap, const char *);
        EMIT(str ? str : "");
        return true;
    }
    default: return false;
    }
}
#pragma GCC diagnostic pop

size_t osse_logf_format(char *out, size_t cap, int64_t ms, osse_level_t lv, const char *msg,
                        const char *fields, va_list ap0)
{
    char ts[OSSE_TIME_LEN];
    size_t reserve = sizeof TRUNCATED - 1 + 2; /* and the newline and NUL */
    out_t o = {.p = out, .cap = cap > reserve ? cap - reserve : 0};
    put(&o, "ts=", 3);
    osse_time_fmt(ms, ts);
    put(&o, ts, strlen(ts));
    put(&o, " level=", 7);
    put(&o, osse_logf_level_name(lv), strlen(osse_logf_level_name(lv)));
    put(&o, " msg=", 5);
    put_value(&o, msg ? msg : "", msg ? strlen(msg) : 0);
    bool truncated = o.full, bad = false;
    va_list ap;
    va_copy(ap, ap0);
    const char *p = fields ? fields : "";
    while (!truncated && !bad) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t mark = o.len;
        /* The key: up to '=' (a pair without one is a bare key). */
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        put(&o, " ", 1);
        put(&o, k, (size_t)(p - k));
        if (*p == '=') {
            p++;
            val_t v = {.len = 0};
            while (*p && *p != ' ' && !bad) {
                if (*p == '%') {
                    p++;
                    if (!convert(&v, &p, &ap)) {
                        val_add(&v, snprintf(v.p + v.len, sizeof v.p - v.len, "%%!"));
                        bad = true;
                    }
                } else if (v.len < sizeof v.p - 1) {
                    v.p[v.len++] = *p++;
                } else {
                    p++;
                }
            }
            put(&o, "=", 1);
            put_value(&o, v.p, v.len);
        }
        if (o.full) {
            o.len = mark;
            truncated = true;
        }
    }
    va_end(ap);
    o.cap += reserve;
    o.full = false;
    if (truncated)
        put(&o, TRUNCATED, sizeof TRUNCATED - 1);
    put(&o, "\n", 1);
    out[o.len < cap ? o.len : cap - 1] = '\0';
    return o.len;
}

/* The lines held (osse_logf_hold): one thread at a time has the buffer,
 * the one whose hold_depth is above 0; they go out in writes of at most
 * OSSE_LOGF_LINE_MAX bytes, each of whole lines, so that a write is still
 * one PIPE_BUF and never mixed with another thread's. */
static char held[OSSE_LOGF_LINE_MAX];
static size_t held_len;
static atomic_bool held_taken;
static _Thread_local int hold_depth;

static void held_flush(void)
{
    if (held_len)
        (void)osse_write_full(STDERR_FILENO, held, held_len);
    held_len = 0;
}

void osse_logf_hold(void)
{
    bool was = false;
    if (hold_depth)
        hold_depth++;
    else if (atomic_compare_exchange_strong(&held_taken, &was, true))
        hold_depth = 1;
}

void osse_logf_release(void)
{
    if (!hold_depth || --hold_depth)
        return;
    held_flush();
    atomic_store(&held_taken, false);
}

void osse_logf(osse_level_t lv, const char *msg, const char *fields, ...)
{
    if (!osse_logf_enabled(lv))
        return;
    char line[OSSE_LOGF_LINE_MAX + 1];
    va_list ap;
    va_start(ap, fields);
    size_t n = osse_logf_format(line, sizeof line, osse_time_real_ms(), lv, msg, fields, ap);
    va_end(ap);
    if (hold_depth && lv < OSSE_LEVEL_WARN) {
        if (held_len + n > sizeof held)
            held_flush();
        memcpy(held + held_len, line, n);
        held_len += n;
        return;
    }
    /* A warning or an error goes out at once, after what is held. */
    if (hold_depth)
        held_flush();
    /* One write: the line is whole or (on a write error) lost, never mixed
     * with another thread's. A short write to a pipe or file does not happen
     * below PIPE_BUF; osse_write_full goes on after EINTR. */
    (void)osse_write_full(STDERR_FILENO, line, n);
}

char *osse_logf_url_origin(const char *url, char *out, size_t n)
{
    const char *p = url ? url : "";
    size_t sl = 0;
    while (isalnum((unsigned char)p[sl]) || p[sl] == '+' || p[sl] == '-' || p[sl] == '.')
        sl++;
    if (sl == 0 || !isalpha((unsigned char)p[0]) || strncmp(p + sl, "://", 3) != 0) {
        snprintf(out, n, "-");
        return out;
    }
    const char *auth = p + sl + 3, *end = auth + strcspn(auth, "/?#");
    /* User info ("user:password@") is dropped: the last '@' ends it. */
    for (const char *q = auth; q < end; q++)
        if (*q == '@')
            auth = q + 1;
    snprintf(out, n, "%.*s://%.*s", (int)sl, p, (int)(end - auth), auth);
    return out;
}
