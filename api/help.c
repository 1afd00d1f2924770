/* help.c: the one table of osse's commands and flags (see help.h).
 *
 * A new flag is a new row, next to its command's; nothing else prints help. */
#include "api/help.h"

#include <string.h>

/* clang-format off */
const osse_help_row_t osse_help_rows[] = {
    {"serve", "osse serve --data DIR [--listen HOST:PORT] [--workflows DIR] [--origin NAME] "
              "[--key-store DIR] [--master-key FILE] [--ui-dir DIR] [--test-clock[=TIME]] "
              "[--log-level LEVEL] [--allow-private-urls] [--rebuild-views]",
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
    {"serve", NULL, "--min-free-bytes N", "the free space to keep on the data folder's "
                                          "filesystem: below it writes answer 503 (default "
                                          "max(64 MiB, 2 % of it), at most a quarter)"},
    {"serve", NULL, "--rebuild-views", "replay the whole log at this start and write every "
                                       "request's record again (after an upgrade that changed "
                                       "how a view is built)"},
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

    {"validate", "osse validate FILE|DIR|- [--json]",
     NULL, "Check definitions offline with the checks of POST /v1/workflows; exit 1 if one fails."},
    {"validate", NULL, "FILE|DIR|-", "a definition (YAML or JSON), a folder of them, or - for "
                                     "stdin"},
    {"validate", NULL, "--json", "print the outcome as JSON, errors in the API's error shape"},

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

    {"help", "osse help [CMD]", NULL, "Print the commands, or one command's flags; so do "
                                      "--help and -h."},
    {"help", NULL, "CMD", "a command: serve, validate, replay, export, verify, token, citizen-id, "
                             "version"},

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
