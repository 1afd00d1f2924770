/* help.h: the command line's help text, from one table (api/help.c).
 *
 * Every command and every flag is one row of that table, so that `osse help`,
 * `osse help CMD`, the usage printed for a bad command line and the man page
 * osse(1) all come from the same text. */
#ifndef OSSE_API_HELP_H
#define OSSE_API_HELP_H

#include <stdbool.h>
#include <stdio.h>

/* One row: a command (flag NULL: its synopsis and one-line summary) or one
 * of its flags or operands (synopsis NULL). Rows of a command follow its
 * command row. */
typedef struct osse_help_row_s {
    const char *cmd;
    const char *synopsis;
    const char *flag;
    const char *text;
} osse_help_row_t;

/* The table, ended by a row whose cmd is NULL. */
extern const osse_help_row_t osse_help_rows[];

bool osse_help_known(const char *cmd);

/* cmd NULL: every command's synopsis; else the command's synopsis, summary
 * and flags (cmd must be known). */
void osse_help_print(FILE *out, const char *cmd);

/* The manual page osse(1) in roff (the man macros), from the same rows:
 * NAME, SYNOPSIS (every command's), DESCRIPTION, COMMANDS (each command's
 * synopsis, summary and flags), EXIT STATUS, SEE ALSO. version is printed
 * in the page's footer. Renders with `groff -man -ww` without a warning
 * (tests/integration/test_package.py). */
void osse_help_man(FILE *out, const char *version);

#endif
