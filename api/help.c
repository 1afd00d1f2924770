/* help.c: the one table of osse's commands and flags (see help.h), and the
 * two ways it is printed: the terminal's help (osse_help_print) and the
 * manual page osse(1) in roff (osse_help_man, which the build runs to make
 * osse.1).
 *
 * A new flag is a new row, next to its command's; nothing else prints help,
 * so the man page cannot miss a flag that --help shows. */
#include "api/help.h"

#include <stdint.h>
#include <string.h>

/* clang-format off */
const osse_help_row_t osse_help_rows[] = {
    {"serve", "osse serve --data DIR [--listen HOST:PORT] [--workflows DIR] [--origin NAME] "
              "[--key-store DIR] [--master-key FILE] [--ui-dir DIR] [--test-clock[=TIME]] "
              "[--log-level LEVEL] [--allow-private-urls] [--cors-origin ORIGIN]... "
              "[--rebuild-views] [--check-views] [--request-cache N]",
     NULL, "Run the HTTP API on a data folder; the views are read from it first (the log is "
           "replayed whole only at the first start of a folder without them)."},
    {"serve", NULL, "--data DIR", "the data folder (the log, admin.token, keys); made when missing"},
    {"serve", NULL, "--listen HOST:PORT", "where to listen (default 127.0.0.1:8080; port 0 picks "
                                          "a free one, printed on stdout)"},
    {"serve", NULL, "--workflows DIR", "apply DIR/_setup.yaml, then publish each definition of "
                                       "DIR that differs from its latest version"},
    {"serve", NULL, "--origin NAME", "the log's name in checkpoints and licences; at a later "
                                     "start it must match the key's name"},
    {"serve", NULL, "--key-store DIR", "the request keys, wrapped by the master key (default "
                                       "DATA/keys; keep it outside the data folder)"},
    {"serve", NULL, "--master-key FILE", "the master key, 32 bytes (default DATA/master.key, "
                                         "made 0600 only with a new data folder)"},
    {"serve", NULL, "--ui-dir DIR", "the pages served under /ui/, read once at start "
                                    "(default " OSSE_UI_DIR ")"},
    {"serve", NULL, "--test-clock[=TIME]", "a clock that stands still (at TIME, RFC 3339) and "
                                           "moves only by POST /v1/test/clock"},
    {"serve", NULL, "--log-level LEVEL", "the least level of the logfmt lines on stderr: debug, "
                                         "info (default), warn or error"},
    {"serve", NULL, "--allow-private-urls", "subscription URLs may be http: and reach "
                                            "loopback, private and link-local addresses "
                                            "(tests, closed networks)"},
    {"serve", NULL, "--cors-origin ORIGIN", "a browser page on ORIGIN (such as "
                                            "https://portal.example.go.th, exactly as the "
                                            "browser sends it) may call the API; repeat it for "
                                            "more (none by default)"},
    {"serve", NULL, "--min-free-bytes N", "the free space to keep on the data folder's "
                                          "filesystem: below it writes answer 503 (default "
                                          "max(64 MiB, 2 % of it), at most a quarter)"},
    {"serve", NULL, "--rebuild-views", "replay the whole log at this start and write every "
                                       "request's record again (after an upgrade that changed "
                                       "how a view is built)"},
    {"serve", NULL, "--check-views", "read every request's record at this start (not only the "
                                     "open ones) and check the counters they give against the "
                                     "stored snapshot; refuse to start on a difference"},
    {"serve", NULL, "--request-cache N", "the ended requests kept in memory, least recently "
                                         "used first (default 10000; 0 keeps none): older ones "
                                         "are read back from disk when named"},
    {"serve", NULL, "--partitions A-B", "mint new request ids only in partitions A to B of "
                                        "0-1023 (default all; a cluster's node)"},
    {"serve", NULL, "--hook-retry-base-ms N", "tests only: the first webhook retry delay"},
    {"serve", NULL, "--hook-retry-span-ms N", "tests only: how long webhook retries go on"},
    {"serve", NULL, "--fault-write N", "tests only: the Nth synced log write since start fails "
                                       "(nothing written): osse stops, exit 1"},
    {"serve", NULL, "--fault-fsync N", "tests only: the Nth synced log write since start is "
                                       "written unsynced and fails: osse stops, exit 1"},
    {"serve", NULL, "--fault-alloc N", "tests only: the Nth allocation since the listening line "
                                       "fails: osse dies (out of memory, SIGABRT)"},
    {"serve", NULL, "--bench-without-tree", "benchmarks only: no Merkle tree, no signed heads"},

    {"validate", "osse validate [--json] [--setup FILE] FILE|DIR|-",
     NULL, "Check definitions offline with the checks of POST /v1/workflows; exit 1 if one fails."},
    {"validate", NULL, "FILE|DIR|-", "a definition (YAML or JSON), a folder of them, or - for "
                                     "stdin"},
    {"validate", NULL, "--json", "print the outcome as JSON, errors in the API's error shape"},
    {"validate", NULL, "--setup FILE", "check agency and calendar references against FILE (and "
                                       "FILE itself) instead of the _setup.yaml beside them"},

    {"replay", "osse replay (--data DIR | FILE [--key KEY]) [--recheck]",
     NULL, "Rebuild every view from the log; the last line is GET /v1/admin/digest's digest."},
    {"replay", NULL, "--data DIR", "replay the log of a data folder (a live server may run on "
                                   "it)"},
    {"replay", NULL, "FILE", "replay an export of osse export, verified as it is read"},
    {"replay", NULL, "--key KEY", "the verifier key (or a file holding it) the export must be "
                                  "signed with"},
    {"replay", NULL, "--recheck", "re-run every recorded rule; print each difference, exit 1 "
                                  "if any"},

    {"export", "osse export --data DIR [--from SEQ] [--to SEQ] > FILE",
     NULL, "Write the log and its signed heads to stdout, for an auditor."},
    {"export", NULL, "--data DIR", "the data folder (a live server may run on it)"},
    {"export", NULL, "--from SEQ", "the first event (default 1)"},
    {"export", NULL, "--to SEQ", "the last event (default the last one)"},

    {"verify", "osse verify FILE --key KEY",
     NULL, "Check every leaf, head signature and head consistency of an export, offline."},
    {"verify", NULL, "FILE", "an export of osse export"},
    {"verify", NULL, "--key KEY", "the log's verifier key, or a file holding it"},

    {"token", "osse token --data DIR",
     NULL, "Make a new platform token (server stopped) and write it to DIR/admin.token."},
    {"token", NULL, "--data DIR", "the data folder"},

    {"citizen-id", "osse citizen-id [ID]",
     NULL, "Print a random valid Thai citizen id (for trying osse out), or check ID; exit 1 "
           "if it is not one."},
    {"citizen-id", NULL, "ID", "13 digits to check"},

    {"version", "osse version", NULL, "Print osse's version."},

    {"help", "osse help [CMD | --man]", NULL, "Print the commands, or one command's flags; so "
                                              "do --help and -h."},
    {"help", NULL, "CMD", "a command: serve, validate, replay, export, verify, token, citizen-id, "
                             "version"},
    {"help", NULL, "--man", "print this text as the manual page osse(1), in roff (the build "
                            "makes osse.1 with it)"},

    {NULL, NULL, NULL, NULL},
};
/* clang-format on */

bool osse_help_known(const char *cmd)
{
    for (const osse_help_row_t *r = osse_help_rows; cmd && r->cmd; r++)
        if (strcmp(r->cmd, cmd) == 0)
            return true;
    return false;
}

void osse_help_print(FILE *out, const char *cmd)
{
    const osse_help_row_t *r;
    if (!cmd) {
        fputs("usage:\n", out);
        for (r = osse_help_rows; r->cmd; r++)
            if (!r->flag)
                fprintf(out, "  %s\n", r->synopsis);
        fputs("\n`osse help CMD` lists the flags of one command.\n", out);
        return;
    }
    for (r = osse_help_rows; r->cmd; r++) {
        if (strcmp(r->cmd, cmd) != 0)
            continue;
        if (!r->flag)
            fprintf(out, "usage: %s\n\n%s\n\n", r->synopsis, r->text);
        else
            fprintf(out, "  %-24s %s\n", r->flag, r->text);
    }
}

/* ---- the manual page ---------------------------------------------------- */

/* The page's own prose, around the rows. */
static const char man_name[] = "one-stop-service workflow engine";
static const char *const man_description[] = {
    "osse runs one-stop-service workflows: a citizen or a business files one request on one "
    "e-form, the request travels to every agency whose approval it needs, each agency decides "
    "its task over HTTP, and every transition is an event in one append-only, signed log.",
    "osse serve runs the HTTP API on a data folder; the other commands check definitions, "
    "rebuild and compare views, export the log for an auditor and verify an export offline.",
};
static const char *const man_exit[] = {
    "0: done. 1: the command failed (a definition with a problem, an export that does not "
    "verify, a server that could not start or stopped on a failed write). 2: a usage error (an "
    "unknown command or flag, a missing value): the usage goes to standard error.",
};
static const char *const man_see_also[] = {
    "The README and docs/ (design.md, audit.md, privacy.md, SPEC.md) of osse's source, "
    "installed in /usr/share/doc/osse by the Debian package.",
};

/* Writes s as roff text: backslashes and hyphens escaped (a flag's '-' is
 * then a minus sign, which a reader can copy), a leading '.' or '\'' made
 * literal, and every non-ASCII character as \[uXXXX] (groff reads bytes,
 * not UTF-8, without preconv). */
static void roff(FILE *out, const char *s, bool line_start)
{
    const unsigned char *p = (const unsigned char *)s;
    if (line_start && (*p == '.' || *p == '\''))
        fputs("\\&", out);
    while (*p) {
        unsigned c = *p, n = 0;
        if (c < 0x80) {
            if (c == '\\')
                fputs("\\e", out);
            else if (c == '-')
                fputs("\\-", out);
            else if (c == '\n')
                fputs("\n.br\n", out);
            else
                fputc((int)c, out);
            p++;
            continue;
        }
        n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
        uint32_t cp = c & (0x3fu >> n);
        size_t i;
        for (i = 1; i <= n && (p[i] & 0xc0) == 0x80; i++)
            cp = cp << 6 | (p[i] & 0x3fu);
        if (n == 0 || i <= n) {
            fputc('?', out); /* not UTF-8: the table is ours, so this is a typo */
            p++;
            continue;
        }
        fprintf(out, "\\[u%04X]", (unsigned)cp);
        p += n + 1;
    }
}

static void roff_paragraphs(FILE *out, const char *const *paras, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fputs(".PP\n", out);
        roff(out, paras[i], true);
        fputc('\n', out);
    }
}

/* A synopsis: "osse CMD" bold, the rest roman. */
static void roff_synopsis(FILE *out, const osse_help_row_t *r)
{
    size_t n = strlen("osse ") + strlen(r->cmd);
    fprintf(out, "\\fBosse %s\\fR", r->cmd);
    roff(out, strncmp(r->synopsis, "osse ", 5) == 0 ? r->synopsis + n : r->synopsis, false);
    fputc('\n', out);
}

/* A flag's tag: the flag bold, its value italic ("--data DIR"); an operand
 * ("FILE|DIR|-") italic. */
static void roff_flag(FILE *out, const char *flag)
{
    const char *space = strchr(flag, ' ');
    char word[128];
    size_t n = space ? (size_t)(space - flag) : strlen(flag);
    if (n >= sizeof word)
        n = sizeof word - 1;
    memcpy(word, flag, n);
    word[n] = '\0';
    fputs(flag[0] == '-' ? "\\fB" : "\\fI", out);
    roff(out, word, true);
    fputs("\\fR", out);
    if (space) {
        fputs(" \\fI", out);
        roff(out, space + 1, false);
        fputs("\\fR", out);
    }
    fputc('\n', out);
}

#define N_OF(a) (sizeof(a) / sizeof(a)[0])

void osse_help_man(FILE *out, const char *version)
{
    const osse_help_row_t *r;
    fputs(".\\\" osse.1: made by `osse help --man` from the table of api/help.c; edit that.\n",
          out);
    fputs(".TH OSSE 1 \"\" \"osse ", out);
    roff(out, version, false);
    fputs("\" \"User Commands\"\n", out);
    /* Left-aligned, not hyphenated: flags must read as typed. */
    fputs(".ad l\n.nh\n.SH NAME\nosse \\- ", out);
    roff(out, man_name, false);
    fputs("\n.SH SYNOPSIS\n.in +5n\n", out);
    for (r = osse_help_rows; r->cmd; r++)
        if (!r->flag) {
            fputs(".ti -5n\n", out);
            roff_synopsis(out, r);
        }
    fputs(".in\n.SH DESCRIPTION\n", out);
    roff_paragraphs(out, man_description, N_OF(man_description));
    fputs(".SH COMMANDS\n", out);
    for (r = osse_help_rows; r->cmd; r++) {
        if (!r->flag) {
            fprintf(out, ".SS %s\n.PP\n", r->cmd);
            roff_synopsis(out, r);
            fputs(".PP\n", out);
            roff(out, r->text, true);
            fputc('\n', out);
            continue;
        }
        fputs(".TP\n", out);
        roff_flag(out, r->flag);
        roff(out, r->text, true);
        fputc('\n', out);
    }
    fputs(".SH \"EXIT STATUS\"\n", out);
    roff_paragraphs(out, man_exit, N_OF(man_exit));
    fputs(".SH \"SEE ALSO\"\n", out);
    roff_paragraphs(out, man_see_also, N_OF(man_see_also));
}
