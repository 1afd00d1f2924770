/* wf_internal.h: what workflow.c and yaml.c share inside the workflows
 * module (not part of its interface). */
#ifndef OSSE_WORKFLOWS_WF_INTERNAL_H
#define OSSE_WORKFLOWS_WF_INTERNAL_H

#include <stddef.h>

#define OSSE__WF_PATH_CAP 512

/* Appends ".key" (or "key" at the root) to a path, cutting very long keys
 * at a UTF-8 boundary so that paths stay readable and bounded. The parser's
 * positions and the compiler's problems spell paths with these two. */
void osse__wf_path_key(char *out, size_t cap, const char *base, const char *key);
/* Appends "[i]". */
void osse__wf_path_index(char *out, size_t cap, const char *base, size_t i);

#endif
