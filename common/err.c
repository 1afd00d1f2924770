/* err.c: the error table and fixed-buffer error detail. */
#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>

const char *osse_strerror(int code)
{
    switch (code) {
    case OSSE_OK:
        return "ok";
#define X(name, val, msg)                                                                          \
    case OSSE_E##name:                                                                             \
        return msg;
        OSSE_ERRNO_MAP(X)
#undef X
    }
    return "unknown error";
}

int osse_err_set(osse_err_t *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

void osse__panic(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "osse: panic at %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}
