/* log.h: the server's own log: one logfmt line per event of note, on stderr.
 *
 *   ts=2026-12-01T02:00:00.000Z level=info msg=listening addr=127.0.0.1:8080
 *
 * (https://brandur.org/logfmt). `ts` is the real time, never osse's test
 * clock: the log tells an operator when something happened on the machine.
 * Every value is quoted and escaped when it needs it (empty, or holding a
 * space, a quote, `=`, a backslash, a control byte or bytes that are not
 * UTF-8), so that each line parses back into the same pairs. A line is at
 * most OSSE_LOGF_LINE_MAX bytes and goes out in ONE write(2): lines from
 * different threads never interleave (a pipe makes writes up to PIPE_BUF
 * atomic; a file opened O_APPEND appends each write whole). Nothing is
 * fsynced, and nothing is buffered beyond a hold (osse_logf_hold), so a call
 * costs one system call and may be made on the loop thread.
 *
 * What never goes in: personal data (SPEC §8), tokens, secrets, bodies, form
 * values, query strings, whole URLs (see osse_logf_url_origin). The callers
 * choose their fields with that in mind; this module only formats.
 *
 * The names are osse_logf*: osse_log_* is the event log of storage/. */
#ifndef OSSE_COMMON_LOG_H
#define OSSE_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OSSE_LEVELS(X)                                                                             \
    X(DEBUG, "debug")                                                                              \
    X(INFO, "info")                                                                                \
    X(WARN, "warn")                                                                                \
    X(ERROR, "error")

typedef enum {
#define X(n, s) OSSE_LEVEL_##n,
    OSSE_LEVELS(X)
#undef X
        OSSE_LEVEL__COUNT
} osse_level_t;

/* The longest line written, newline included (PIPE_BUF on Linux). */
#define OSSE_LOGF_LINE_MAX 4096

/* "debug", "info", "warn" or "error" to a level: 0 or OSSE_EINVAL. */
int osse_logf_parse_level(const char *s, osse_level_t *out);
const char *osse_logf_level_name(osse_level_t lv);

/* Lines below lv are dropped (default OSSE_LEVEL_INFO). Any thread; meant to
 * be set once at start. */
void osse_logf_set_level(osse_level_t lv);
bool osse_logf_enabled(osse_level_t lv);

/* Writes one line to stderr when lv is enabled:
 *   ts=<now> level=<lv> msg=<msg> <fields>
 * fields is a printf format of space-separated `key=value` pairs, where a
 * value is any mix of text and conversions ("addr=%s:%d"); each value is
 * rendered, then escaped as a whole. Keys are written as given (they are
 * literals). Supported conversions: d i u x X o c s p f e g and %%, with
 * flags, width, precision (also `*`) and the h hh l ll z j t length
 * modifiers; a NULL %s is an empty value. A line that would be longer than
 * OSSE_LOGF_LINE_MAX loses its last fields and ends with `truncated=true`.
 * Any thread. Never fails (a write that fails is dropped). */
void osse_logf(osse_level_t lv, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 3, 4)));

/* Between osse_logf_hold and osse_logf_release (nested: the outermost
 * release counts), this thread's info and debug lines are gathered and go
 * out together at the release, in writes of whole lines of at most
 * OSSE_LOGF_LINE_MAX bytes each; a warning or an error goes out at once,
 * after them. For one callback that answers many calls (the loop's
 * durable answers: one write(2) a call was a tenth of the loop's system
 * time, issue 13); never across a wait. One thread holds at a time: a hold
 * asked for while another thread's is on does nothing. */
void osse_logf_hold(void);
void osse_logf_release(void);

/* The line osse_logf would write at real time ms, into out[cap] (cap >= 64),
 * NUL-terminated, newline included. Returns its length. Pure: for tests. */
size_t osse_logf_format(char *out, size_t cap, int64_t ms, osse_level_t lv, const char *msg,
                        const char *fields, va_list ap);

/* A URL reduced to what a log may show: "scheme://host[:port]", without the
 * user info, path, query or fragment (any of which may carry a secret: a
 * capability URL keeps its token in the path). Text that is not
 * "scheme://..." gives "-". Writes into out[n] (n >= 2) and returns out. */
char *osse_logf_url_origin(const char *url, char *out, size_t n);

#endif
