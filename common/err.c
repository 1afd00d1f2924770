/* err.c: the error table and fixed-buffer error detail. */
#include "common/err.h"

#include <stdio.h>

#include "common/log.h"
#include <stdlib.h>

const char *osse_strerror(int code)
{
    switch (code) {
    case OSSE_OK: return "ok";
#define X(name, val, msg)                                                                          \
    case OSSE_E##name: return msg;
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
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    osse_logf(OSSE_LEVEL_ERROR, "panic", "at=%s:%d error=%s", file, line, what);
    abort();
}
