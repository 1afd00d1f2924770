/* err.h: osse's error codes and the fixed-size error detail.
 *
 * Fallible functions return 0 or a negative OSSE_E* code. Detail goes into an
 * optional caller-provided osse_err_t; filling it never allocates. */
#ifndef OSSE_COMMON_ERR_H
#define OSSE_COMMON_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define OSSE_ERRNO_MAP(X)                                                                          \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(INVAL, -2, "invalid argument")                                                               \
    X(NOTFOUND, -3, "not found")                                                                   \
    X(CONFLICT, -4, "conflict")                                                                    \
    X(IO, -5, "input/output error")                                                                \
    X(TOOBIG, -6, "too big")                                                                       \
    X(CORRUPT, -7, "corrupt data")                                                                 \
    X(FORBIDDEN, -8, "forbidden")                                                                  \
    X(PARSE, -9, "parse error")                                                                    \
    X(EXISTS, -10, "already exists")                                                               \
    X(CLOSED, -11, "closed")                                                                       \
    X(BUSY, -12, "in use by another process")                                                      \
    X(NOSPC, -13, "the disk is nearly full")                                                       \
    X(GONE, -14, "gone")

enum {
    OSSE_OK = 0,
#define X(name, val, msg) OSSE_E##name = (val),
    OSSE_ERRNO_MAP(X)
#undef X
};

typedef struct osse_err_s {
    int code;
    char msg[512];
} osse_err_t;

/* Returns a static string for an OSSE_E* code. */
const char *osse_strerror(int code);

/* Sets code and a printf-formatted message in err (which may be NULL) and
 * returns code, so that `return osse_err_set(err, OSSE_EINVAL, "...")` works. */
int osse_err_set(osse_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define OSSE_PRE(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            osse__panic(__FILE__, __LINE__, "precondition failed: " #cond);                        \
    } while (0)
#define OSSE_UNREACHABLE() osse__panic(__FILE__, __LINE__, "unreachable")

/* Prints and aborts: programmer errors and unrecoverable storage failures only. */
void osse__panic(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#endif
