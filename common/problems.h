/* problems.h: the one problem list: {"path","message"} objects in a JSON array.
 *
 * Every list of problems osse answers with (a 400's details, a definition's
 * problems and warnings, a calendar's, `osse validate`'s) is built here, so
 * each item has the same shape and the same cut: the message is at most
 * OSSE_PROBLEM_MESSAGE_MAX - 1 bytes. Messages quote user text that was cut
 * to fit, and a cut may fall inside a UTF-8 sequence, which JSON cannot hold:
 * such a message reads "invalid value" and such a path "?", so the problem is
 * still listed. Allocation failure dies (common/alloc.h). */
#ifndef OSSE_COMMON_PROBLEMS_H
#define OSSE_COMMON_PROBLEMS_H

#include <jansson.h>
#include <stdarg.h>

#define OSSE_PROBLEM_MESSAGE_MAX 512

/* Appends {"path": path, "message": the printf-formatted fmt} to list, a
 * JSON array; a NULL list takes nothing (callers that only count). */
void osse_problems_add(json_t *list, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void osse_problems_addv(json_t *list, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
