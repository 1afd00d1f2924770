/* problems.c: appending {"path","message"} items (see problems.h). */
#include "common/problems.h"

#include <stdio.h>

void osse_problems_addv(json_t *list, const char *path, const char *fmt, va_list ap)
{
    if (!list)
        return;
    char msg[OSSE_PROBLEM_MESSAGE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* json_string refuses bytes that are not UTF-8 (a cut in the middle of a
     * character); with jansson on osse's allocator it is never NULL
     * otherwise. */
    json_t *m = json_string(msg);
    if (!m)
        m = json_string("invalid value");
    json_t *p = json_string(path);
    if (!p)
        p = json_string("?");
    json_t *o = json_object();
    json_object_set_new(o, "path", p);
    json_object_set_new(o, "message", m);
    json_array_append_new(list, o);
}

void osse_problems_add(json_t *list, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    osse_problems_addv(list, path, fmt, ap);
    va_end(ap);
}
