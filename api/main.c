/* main.c: the osse command line: serve, validate, replay, export, verify,
 * version, help (the text of every command and flag is the table of
 * api/help.c).
 *
 * `osse serve` opens the engine (replaying the log), applies the folder given
 * with --workflows (its _setup.yaml first: calendars and agencies; then every
 * definition, published only when it differs from the latest version), waits
 * until all of that is durable, and only then listens and prints
 * "osse: listening on HOST:PORT" on stdout. SIGTERM and SIGINT stop it
 * cleanly. Everything serve writes to stderr is logfmt (common/log.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/help.h"
#include "api/server.h"
#include "common/alloc.h"
#include "common/log.h"
#include "common/problems.h"
#include "common/time.h"
#include "engine/engine.h"
#include "engine/partition.h"
#include "storage/checkpoint.h"
#include "storage/export.h"
#include "workflows/workflow.h"

#ifndef OSSE_VERSION
#error "OSSE_VERSION comes from project() in CMakeLists.txt"
#endif
#define MAX_FILE (4u << 20)

/* A command line that cannot be run: the command's help (or the list of
 * commands) on stderr, exit 2. */
static int usage(const char *cmd)
{
    osse_help_print(stderr, osse_help_known(cmd) ? cmd : NULL);
    return 2;
}

static char *read_file(const char *path, size_t *len, osse_err_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        osse_err_set(err, OSSE_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = osse_malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    fclose(f);
    if (!buf || n > MAX_FILE) {
        free(buf);
        osse_err_set(err, OSSE_ETOOBIG, "%s: larger than %u bytes", path, MAX_FILE);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---- _setup.yaml: calendars and agencies -------------------------------- */

/* What to do with each entry of a _setup.yaml: apply it (serve) or only
 * check it (validate). Returns 0 or fills f. */
typedef int (*setup_entry_fn)(void *ud, bool calendar, const char *id, json_t *body,
                              osse_fail_t *f);

/* Walks a parsed _setup.yaml ({calendars: {id: body}, agencies: {id: body}}),
 * handing each entry to fn and appending every problem, its own and each
 * entry's failure, to problems as {"path","message"} (paths such as
 * "agencies.dbd.webhook_url"). The one reading of the setup format for
 * `serve --workflows` and `validate`. */
static void walk_setup(json_t *tree, setup_entry_fn fn, void *ud, json_t *problems)
{
    static const char *const sections[] = {"calendars", "agencies"};
    const char *key;
    json_t *v;
    json_object_foreach(tree, key, v)
    {
        if (strcmp(key, "calendars") && strcmp(key, "agencies")) {
            char path[300];
            snprintf(path, sizeof path, "%.200s", key);
            osse_problems_add(problems, path, "unknown key (a setup has calendars and agencies)");
        }
    }
    for (size_t k = 0; k < 2; k++) {
        json_t *section = json_object_get(tree, sections[k]);
        if (!section || json_is_null(section))
            continue;
        if (!json_is_object(section)) {
            osse_problems_add(problems, sections[k], "must be a mapping of ids to bodies");
            continue;
        }
        const char *id;
        json_object_foreach(section, id, v)
        {
            osse_fail_t f = {0};
            char base[300];
            snprintf(base, sizeof base, "%s.%.200s", sections[k], id);
            if (fn(ud, k == 0, id, v, &f) == 0)
                continue;
            if (!json_array_size(f.details))
                osse_problems_add(problems, base, "%s", f.message);
            size_t i;
            json_t *d;
            json_array_foreach(f.details, i, d)
            {
                const char *dp = json_string_value(json_object_get(d, "path"));
                char path[600];
                snprintf(path, sizeof path, "%s%s%s", base, dp && *dp ? "." : "", dp ? dp : "");
                osse_problems_add(problems, path, "%s",
                                  json_string_value(json_object_get(d, "message")));
            }
            osse_fail_clear(&f);
        }
    }
}

static int put_entry(void *ud, bool calendar, const char *id, json_t *body, osse_fail_t *f)
{
    json_t *out = NULL;
    int status;
    int rc = calendar ? osse_cmd_put_calendar(ud, NULL, id, body, &out, &status, f)
                      : osse_cmd_put_agency(ud, NULL, id, body, &out, &status, f);
    json_decref(out);
    return rc;
}

/* A setup file or definition that serve refused: one line for it, one per
 * detail. */
static void print_fail(const char *what, osse_fail_t *f)
{
    osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s error=%s", what, f->message);
    for (size_t i = 0; f->details && i < json_array_size(f->details); i++) {
        json_t *d = json_array_get(f->details, i);
        osse_logf(OSSE_LEVEL_ERROR, "problem", "file=%s path=%s error=%s", what,
                  json_string_value(json_object_get(d, "path")),
                  json_string_value(json_object_get(d, "message")));
    }
    osse_fail_clear(f);
}

static int apply_setup(osse_engine_t *eng, const char *path)
{
    osse_err_t err = {0};
    size_t len;
    char *text = read_file(path, &len, &err);
    json_t *tree = NULL;
    if (!text || osse_wf_parse_text(text, len, &tree, &err)) {
        osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s error=%s", path, err.msg);
        free(text);
        return -1;
    }
    free(text);
    json_t *problems = json_array();
    walk_setup(tree, put_entry, eng, problems);
    size_t i;
    json_t *d;
    json_array_foreach(problems, i, d)
    {
        osse_logf(OSSE_LEVEL_ERROR, "problem", "file=%s path=%s error=%s", path,
                  json_string_value(json_object_get(d, "path")),
                  json_string_value(json_object_get(d, "message")));
    }
    int rc = json_array_size(problems) ? -1 : 0;
    json_decref(problems);
    json_decref(tree);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* The files of a folder that `serve --workflows` publishes and `validate`
 * checks: *.yaml, *.yml and *.json, but for names that begin with '_' (the
 * setup, or anything set aside) or '.'. */
static int definition_file(const struct dirent *d)
{
    const char *name = d->d_name;
    return name[0] != '_' && name[0] != '.' &&
           (ends_with(name, ".yaml") || ends_with(name, ".yml") || ends_with(name, ".json"));
}

static bool file_exists(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f)
        fclose(f);
    return f != NULL;
}

static int load_workflows(osse_engine_t *eng, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/_setup.yaml", dir);
    if (file_exists(path) && apply_setup(eng, path))
        return -1;
    struct dirent **names;
    int n = scandir(dir, &names, definition_file, by_name);
    if (n < 0) {
        osse_logf(OSSE_LEVEL_ERROR, "cannot read the workflows", "dir=%s error=%s", dir,
                  strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        osse_err_t err = {0};
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        char *text = read_file(path, &len, &err);
        json_t *tree = NULL, *out = NULL;
        osse_publish_prep_t *prep = NULL;
        osse_fail_t f = {0};
        int status = 0;
        /* Before listening: the pool's half of a publish runs here. */
        if (!text || osse_wf_parse_text(text, len, &tree, &err)) {
            osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s error=%s", path, err.msg);
            rc = -1;
        } else if (osse_cmd_publish_prepare(json_incref(tree), &prep)) {
            osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s error=out of memory", path);
            rc = -1;
        } else if (osse_cmd_publish_workflow(eng, NULL, prep, OSSE_PUBLISH_LOAD, &out, &status,
                                             &f)) {
            print_fail(path, &f);
            rc = -1;
        } else {
            const char *id = json_string_value(json_object_get(out, "id"));
            long long v = json_integer_value(json_object_get(out, "version"));
            long long same = json_integer_value(json_object_get(out, "same_as"));
            if (status == 201 || same == v)
                osse_logf(OSSE_LEVEL_INFO, "workflow loaded",
                          "file=%s workflow=%s version=%lld changed=%s", path, id, v,
                          status == 201 ? "true" : "false");
            else
                /* A newer version came through the API: a restart must not
                 * revert it (SPEC §2). */
                osse_logf(OSSE_LEVEL_INFO, "workflow kept: a later version came through the API",
                          "file=%s workflow=%s version=%lld file_is_version=%lld", path, id, v,
                          same);
            size_t k;
            json_t *w;
            json_array_foreach(json_object_get(out, "warnings"), k, w)
            {
                osse_logf(OSSE_LEVEL_WARN, "rule warning", "file=%s path=%s warning=%s", path,
                          json_string_value(json_object_get(w, "path")),
                          json_string_value(json_object_get(w, "message")));
            }
        }
        json_decref(out);
        json_decref(tree);
        osse_publish_prep_free(prep);
        free(text);
    }
    free(names);
    return rc;
}

/* ---- osse validate ------------------------------------------------------- */

/* A _setup.yaml as osse_wf_check's lookup: an id counts as known when the
 * setup names it (a broken entry is reported on its own, not again at every
 * reference to it). */
static bool setup_has(const json_t *setup, const char *section, const char *id)
{
    json_t *s = json_object_get(setup, section);
    return json_is_object(s) && json_object_get(s, id) != NULL;
}

static bool setup_agency(void *ud, const char *id)
{
    return setup_has(ud, "agencies", id);
}

static bool setup_calendar(void *ud, const char *id)
{
    return setup_has(ud, "calendars", id);
}

static int check_entry(void *ud, bool calendar, const char *id, json_t *body, osse_fail_t *f)
{
    return calendar ? osse_check_calendar(id, body, f) : osse_check_agency(id, body, f);
}

typedef struct validate_s {
    bool json;
    const char *setup_opt; /* --setup FILE */
    json_t *files;         /* the report, one entry per file */
    size_t bad, nwarnings;
} validate_t;

static json_int_t at_of(const json_t *d, const char *k)
{
    return json_integer_value(json_object_get(d, k));
}

/* By place in the file; equal places keep the checker's order. */
static int by_place(const void *a, const void *b)
{
    json_t *const *x = a, *const *y = b;
    json_int_t d = at_of(*x, "line") - at_of(*y, "line");
    if (!d)
        d = at_of(*x, "column") - at_of(*y, "column");
    if (!d)
        d = at_of(*x, "#") - at_of(*y, "#");
    return d < 0 ? -1 : d > 0;
}

/* Where each line of a text starts, found once per file: placing a
 * thousand problems in a one-line 1 MiB file must not scan it a thousand
 * times. */
typedef struct {
    const char *text;
    size_t *start; /* start[l-1]: offset of line l; start[n]: the text's length + 1 */
    size_t n;
} lines_t;

static void lines_init(lines_t *ls, const char *text)
{
    *ls = (lines_t){.text = text};
    if (!text)
        return;
    size_t len = strlen(text), n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    ls->start = osse_malloc((n + 1) * sizeof *ls->start);
    ls->start[0] = 0;
    for (size_t i = 0, l = 1; i < len; i++)
        if (text[i] == '\n')
            ls->start[l++] = i + 1;
    ls->start[n] = len + 1;
    ls->n = n;
}

/* A rule's problem says where in the rule ("column N: ..."); when the rule is
 * a one-line scalar at (line, col) of the text, the file column of that spot,
 * so that an editor's cursor lands on it. Else col. */
static int rule_column(const lines_t *ls, int line, int col, const char *msg)
{
    int inner, used = 0;
    if (!ls->start || sscanf(msg, "column %d: %n", &inner, &used) < 1 || !used || inner < 1 ||
        line < 1 || (size_t)line > ls->n || col < 1)
        return col;
    const char *p = ls->text + ls->start[line - 1];
    size_t len = ls->start[line] - 1 - ls->start[line - 1], at = (size_t)col - 1;
    if (at >= len)
        return col;
    size_t content; /* where the rule's first character is */
    if (p[at] == '"' || p[at] == '\'') {
        content = at + 1; /* a quoted scalar, its mark on the quote */
    } else if (at > 0 && (p[at - 1] == '"' || p[at - 1] == '\'')) {
        content = at; /* in flow style (JSON) libfyaml marks the first character inside */
    } else {
        while (at < len && (p[at] == ' ' || p[at] == '\t')) /* a block scalar's line */
            at++;
        if (at >= len || p[at] == '|' || p[at] == '>')
            return col; /* a block scalar: the rule starts on the next line */
        content = at;
    }
    if (len - content < (size_t)inner)
        return col; /* the rule goes on over lines */
    return (int)content + inner;
}

/* Gives each {"path","message"} of items its place in the text, as
 * "line"/"column", and puts them in file order (an author reads top down). */
static void place(json_t *items, const json_t *positions, const char *text)
{
    size_t i, n = json_array_size(items);
    json_t *d, **sorted = osse_calloc(n, sizeof *sorted);
    lines_t ls;
    lines_init(&ls, n ? text : NULL);
    json_array_foreach(items, i, d)
    {
        int line, col;
        osse_wf_position(positions, json_string_value(json_object_get(d, "path")), &line, &col);
        col = rule_column(&ls, line, col, json_string_value(json_object_get(d, "message")));
        json_object_set_new(d, "line", json_integer(line));
        json_object_set_new(d, "column", json_integer(col));
        json_object_set_new(d, "#", json_integer((json_int_t)i));
        sorted[i] = json_incref(d);
    }
    qsort(sorted, n, sizeof *sorted, by_place);
    json_array_clear(items);
    for (i = 0; i < n; i++) {
        json_object_del(sorted[i], "#");
        json_array_append_new(items, sorted[i]);
    }
    free(ls.start);
    free(sorted);
}

/* Checks one file (text already read, or NULL with the reason in err): a
 * definition, or the setup when setup_kind. setup is the parsed setup the
 * references are checked against, or NULL. */
static void validate_text(validate_t *vd, const char *name, const char *text, size_t len,
                          osse_err_t *err, bool setup_kind, json_t *setup)
{
    json_t *tree = NULL, *pos = NULL, *problems = json_array(), *warnings = json_array();
    json_t *entry =
        json_pack("{s:s,s:s,s:n}", "file", name, "kind", setup_kind ? "setup" : "workflow", "id");
    if (!text || osse_wf_parse_text_pos(text, len, &tree, &pos, err)) {
        /* "line L, column C: what" (osse_wf_parse_text's contract), or a
         * reading error. */
        int line = 1, col = 1, used = 0;
        if (sscanf(err->msg, "line %d, column %d: %n", &line, &col, &used) < 2 || !used)
            used = 0;
        json_array_append_new(problems, json_pack("{s:s,s:s,s:i,s:i}", "path", "", "message",
                                                  err->msg + used, "line", line, "column", col));
    } else if (setup_kind) {
        walk_setup(tree, check_entry, NULL, problems);
    } else {
        osse_wf_t *wf = NULL;
        const osse_wf_refs_t refs = {setup_agency, setup_calendar, NULL, setup};
        osse_wf_check(tree, setup ? &refs : NULL, &wf, problems, warnings);
        osse_wf_free(wf);
        const char *id = json_string_value(json_object_get(tree, "id"));
        if (id)
            json_object_set_new(entry, "id", json_string(id));
    }
    if (pos) {
        place(problems, pos, text);
        place(warnings, pos, text);
    }
    if (!setup_kind)
        json_object_set_new(entry, "references_checked", json_boolean(setup != NULL));
    json_object_set_new(entry, "ok", json_boolean(json_array_size(problems) == 0));
    json_object_set_new(entry, "problems", problems);
    json_object_set_new(entry, "warnings", warnings);
    vd->bad += json_array_size(problems) > 0;
    vd->nwarnings += json_array_size(warnings);
    json_array_append_new(vd->files, entry);
    json_decref(pos);
    json_decref(tree);
}

static void validate_file(validate_t *vd, const char *path, bool setup_kind, json_t *setup)
{
    osse_err_t err = {0};
    size_t len = 0;
    char *text = read_file(path, &len, &err);
    validate_text(vd, path, text, len, &err, setup_kind, setup);
    free(text);
}

/* Reads and checks the setup at path (also reported as a file); returns its
 * tree for the references, or NULL when it cannot be read or parsed. */
static json_t *load_setup(validate_t *vd, const char *path)
{
    validate_file(vd, path, true, NULL);
    osse_err_t err = {0};
    size_t len;
    json_t *tree = NULL;
    char *text = read_file(path, &len, &err);
    if (text && osse_wf_parse_text(text, len, &tree, &err))
        tree = NULL;
    free(text);
    if (!json_is_object(tree)) {
        json_decref(tree);
        return NULL;
    }
    return tree;
}

static void no_setup_note(const char *what)
{
    fprintf(stderr,
            "osse: note: no _setup.yaml beside %s: agency and calendar references are not "
            "checked (the server checks them)\n",
            what);
}

/* One operand: a file, a folder or "-". Returns 0, or 2 when it does not
 * exist or cannot be listed. */
static int validate_operand(validate_t *vd, const char *arg, json_t *setup_opt)
{
    char setup_path[4096];
    json_t *setup = NULL;
    int rc = 0;
    if (strcmp(arg, "-") == 0) {
        char *buf = osse_malloc(MAX_FILE + 1);
        size_t n = buf ? fread(buf, 1, MAX_FILE + 1, stdin) : 0;
        osse_err_t err = {0};
        if (!buf || n > MAX_FILE)
            osse_err_set(&err, OSSE_ETOOBIG, "larger than %u bytes", MAX_FILE);
        if (!vd->setup_opt)
            no_setup_note("standard input (give one with --setup FILE)");
        validate_text(vd, "<stdin>", err.code ? NULL : buf, n, &err, false, setup_opt);
        free(buf);
        return 0;
    }
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "osse: %s: %s\n", arg, strerror(errno));
        return 2;
    }
    bool dir = S_ISDIR(st.st_mode);
    const char *slash = strrchr(arg, '/');
    const char *base = slash ? slash + 1 : arg;
    if (!dir && strcmp(base, "_setup.yaml") == 0) {
        if (!vd->setup_opt)
            json_decref(load_setup(vd, arg));
        return 0;
    }
    if (dir)
        snprintf(setup_path, sizeof setup_path, "%s/_setup.yaml", arg);
    else
        snprintf(setup_path, sizeof setup_path, "%.*s_setup.yaml", (int)(base - arg), arg);
    if (setup_opt)
        setup = json_incref(setup_opt);
    else if (file_exists(setup_path))
        setup = load_setup(vd, setup_path);
    else
        no_setup_note(arg);
    if (!dir) {
        validate_file(vd, arg, false, setup);
        goto out;
    }
    struct dirent **names;
    int n = scandir(arg, &names, definition_file, by_name);
    if (n < 0) {
        fprintf(stderr, "osse: %s: %s\n", arg, strerror(errno));
        rc = 2;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s%s%s", arg, ends_with(arg, "/") ? "" : "/",
                 names[i]->d_name);
        validate_file(vd, path, false, setup);
        free(names[i]);
    }
    free(names);
out:
    json_decref(setup);
    return rc;
}

static void print_items(const char *file, const json_t *items, const char *kind)
{
    size_t i;
    json_t *d;
    json_array_foreach(items, i, d)
    {
        const char *path = json_string_value(json_object_get(d, "path"));
        bool has_path = path && *path;
        printf("%s:%lld:%lld: %s%s%s%s\n", file,
               (long long)json_integer_value(json_object_get(d, "line")),
               (long long)json_integer_value(json_object_get(d, "column")), kind,
               has_path ? path : "", has_path ? ": " : "",
               json_string_value(json_object_get(d, "message")));
    }
}

/* osse validate [--json] [--setup FILE] FILE|DIR|- ...: the checks of
 * POST /v1/workflows (osse_wf_check), offline, with references checked
 * against the _setup.yaml beside the files. Exit 0: every file is fine
 * (warnings allowed); 1: a file has a problem; 2: usage. */
static int cmd_validate(int argc, char **argv)
{
    validate_t vd = {0};
    int nops = 0, rc = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            vd.json = true;
        else if (strcmp(argv[i], "--setup") == 0 && i + 1 < argc)
            vd.setup_opt = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1])
            return usage("validate");
        else
            nops++;
    }
    if (nops == 0)
        return usage("validate");
    if (vd.setup_opt && !file_exists(vd.setup_opt)) {
        fprintf(stderr, "osse: --setup %s: %s\n", vd.setup_opt, strerror(errno));
        return 2;
    }
    vd.files = json_array();
    json_t *setup = vd.setup_opt ? load_setup(&vd, vd.setup_opt) : NULL;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--setup") == 0)
            i++;
        else if (strcmp(argv[i], "--json") != 0)
            rc = validate_operand(&vd, argv[i], setup);
    }
    json_decref(setup);
    if (rc == 0 && json_array_size(vd.files) == 0) {
        fprintf(stderr, "osse: no *.yaml, *.yml or *.json definition to check\n");
        rc = 2;
    }
    if (rc) {
        json_decref(vd.files);
        return rc;
    }
    if (vd.json) {
        json_t *doc = json_pack("{s:b,s:O}", "ok", vd.bad == 0, "files", vd.files);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(doc);
    } else {
        size_t i;
        json_t *f;
        json_array_foreach(vd.files, i, f)
        {
            const char *file = json_string_value(json_object_get(f, "file"));
            print_items(file, json_object_get(f, "problems"), "");
            print_items(file, json_object_get(f, "warnings"), "warning: ");
        }
        fprintf(stderr, "osse: %zu file(s) checked, %zu with problems, %zu warning(s)\n",
                json_array_size(vd.files), vd.bad, vd.nwarnings);
    }
    json_decref(vd.files);
    return vd.bad ? 1 : 0;
}

static osse_server_t *server;
static osse_engine_t *engine;
static uv_signal_t sigterm, sigint;
static bool signals_on, engine_stopping;
static int serve_failed; /* the status of a failed log write */

static void walk_cb(uv_handle_t *h, void *arg)
{
    osse_logf(OSSE_LEVEL_WARN, "open handle", "type=%s active=%d ref=%d closing=%d",
              uv_handle_type_name(h->type), uv_is_active(h), uv_has_ref(h), uv_is_closing(h));
}

static void signals_close(void)
{
    if (!signals_on)
        return;
    signals_on = false;
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    osse_logf(OSSE_LEVEL_INFO, "stopping", "signal=%s",
              signum == SIGTERM  ? "SIGTERM"
              : signum == SIGINT ? "SIGINT"
                                 : "?");
    signals_close();
    osse_server_close(server);
    server = NULL;
    engine_stopping = true;
    osse_engine_stop(engine);
    if (getenv("OSSE_DEBUG_HANDLES"))
        uv_walk(h->loop, walk_cb, NULL);
}

/* A write of the log failed (docs/design.md, "A failed write"): no answer
 * held for that batch or a later one may go out. So the server stops
 * accepting and closes every connection now, before the engine frees the
 * held answers unsent; the loop returns and cmd_serve stops the engine and
 * exits 1. Called from within the log's completion, or during open. */
static void on_fail(void *ud, int status)
{
    uv_loop_t *loop = ud;
    serve_failed = status;
    osse_logf(OSSE_LEVEL_ERROR, "stopping", "reason=log_write_failed error=%s",
              osse_strerror(status));
    signals_close();
    osse_server_close(server);
    server = NULL;
    uv_stop(loop);
}

static void on_ready(void *ud, int status)
{
    *(int *)ud = status ? -1 : 1;
}

static int cmd_serve(int argc, char **argv)
{
    const char *data = NULL, *listen = "127.0.0.1:8080", *wfdir = NULL, *origin = NULL;
    const char *key_store = NULL, *master_key = NULL, *ui_dir = NULL;
    bool test_clock = false, without_tree = false, allow_private = false;
    int64_t clock_start = 0;
    osse_level_t level = OSSE_LEVEL_INFO;
    long long hook_base = 0, hook_span = 0;
    unsigned upload_timeout = 0;
    unsigned long long min_free = 0, fault_at = 0;
    unsigned long fault_alloc = 0;
    int key_reserve = 0;
    size_t due_window = 0, request_cache = 0;
    bool rebuild_views = false, check_views = false;
    osse_log_fault_t fault = OSSE_LOG_FAULT_NONE;
    osse_log_compression_t compression = OSSE_LOG_COMPRESSION_LZ4;
    unsigned part_first = 0, part_last = OSSE_PARTITIONS - 1;
    const char *cors[OSSE_HTTP_CORS_MAX];
    size_t ncors = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--workflows") == 0 && i + 1 < argc)
            wfdir = argv[++i];
        else if (strcmp(argv[i], "--origin") == 0 && i + 1 < argc)
            origin = argv[++i];
        else if (strcmp(argv[i], "--cors-origin") == 0 && i + 1 < argc) {
            osse_err_t cerr = {0};
            if (osse_http_origin_check(argv[++i], &cerr)) {
                fprintf(stderr, "osse: --cors-origin: %s\n", cerr.msg);
                return usage("serve");
            }
            if (ncors == OSSE_HTTP_CORS_MAX) {
                fprintf(stderr, "osse: --cors-origin: at most %d origins\n", OSSE_HTTP_CORS_MAX);
                return usage("serve");
            }
            cors[ncors++] = argv[i];
        } else if (strcmp(argv[i], "--key-store") == 0 && i + 1 < argc)
            key_store = argv[++i];
        else if (strcmp(argv[i], "--master-key") == 0 && i + 1 < argc)
            master_key = argv[++i];
        else if (strcmp(argv[i], "--ui-dir") == 0 && i + 1 < argc)
            ui_dir = argv[++i];
        else if (strcmp(argv[i], "--test-clock") == 0)
            test_clock = true;
        else if (strncmp(argv[i], "--test-clock=", 13) == 0) {
            test_clock = true;
            if (osse_time_parse(argv[i] + 13, &clock_start)) {
                fprintf(stderr, "osse: --test-clock=TIME wants an RFC 3339 time such as "
                                "2030-01-07T09:00:00+07:00\n");
                return usage("serve");
            }
        } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
            if (osse_logf_parse_level(argv[++i], &level)) {
                fprintf(stderr, "osse: --log-level wants debug, info, warn or error\n");
                return usage("serve");
            }
        } else if (strcmp(argv[i], "--bench-without-tree") == 0)
            without_tree = true;
        else if (strcmp(argv[i], "--rebuild-views") == 0)
            rebuild_views = true;
        else if (strcmp(argv[i], "--check-views") == 0)
            check_views = true;
        else if (strcmp(argv[i], "--allow-private-urls") == 0)
            allow_private = true;
        else if (strcmp(argv[i], "--hook-retry-base-ms") == 0 && i + 1 < argc)
            hook_base = atoll(argv[++i]); /* hidden, for tests: the first retry delay */
        else if (strcmp(argv[i], "--upload-timeout-ms") == 0 && i + 1 < argc)
            upload_timeout = (unsigned)atol(argv[++i]); /* hidden, for tests */
        else if (strcmp(argv[i], "--hook-retry-span-ms") == 0 && i + 1 < argc)
            hook_span = atoll(argv[++i]); /* hidden, for tests: when retries give up */
        else if ((strcmp(argv[i], "--fault-write") == 0 || strcmp(argv[i], "--fault-fsync") == 0) &&
                 i + 1 < argc) {
            /* hidden, for tests: the Nth synced write of the log fails */
            fault = argv[i][8] == 'w' ? OSSE_LOG_FAULT_WRITE : OSSE_LOG_FAULT_FSYNC;
            char *fend;
            const char *v = argv[++i];
            fault_at = strtoull(v, &fend, 10);
            if (!*v || *fend || v[0] == '-' || fault_at == 0) {
                fprintf(stderr, "osse: %s wants a write number above 0\n", argv[i - 1]);
                return usage("serve");
            }
        } else if (strcmp(argv[i], "--fault-alloc") == 0 && i + 1 < argc) {
            /* hidden, for tests: the Nth allocation once listening dies */
            char *aend;
            const char *v = argv[++i];
            fault_alloc = strtoul(v, &aend, 10);
            if (!*v || *aend || v[0] == '-' || fault_alloc == 0) {
                fprintf(stderr, "osse: --fault-alloc wants an allocation number above 0\n");
                return usage("serve");
            }
        } else if (strcmp(argv[i], "--min-free-bytes") == 0 && i + 1 < argc) {
            char *mend;
            const char *v = argv[++i];
            min_free = strtoull(v, &mend, 10);
            if (!*v || *mend || v[0] == '-' || min_free == 0) {
                fprintf(stderr, "osse: --min-free-bytes wants a number of bytes above 0\n");
                return usage("serve");
            }
        } else if (strcmp(argv[i], "--key-reserve") == 0 && i + 1 < argc) {
            /* hidden, for tests: request keys made ahead (0: none) */
            char *rend;
            const char *v = argv[++i];
            long n = strtol(v, &rend, 10);
            if (!*v || *rend || n < 0 || n > 1 << 20) {
                fprintf(stderr, "osse: --key-reserve wants a number of keys from 0 to %d\n",
                        1 << 20);
                return usage("serve");
            }
            key_reserve = n ? (int)n : -1;
        } else if (strcmp(argv[i], "--due-window") == 0 && i + 1 < argc) {
            /* hidden, for tests: expiries read from their index at a time */
            char *rend;
            const char *v = argv[++i];
            long n = strtol(v, &rend, 10);
            if (!*v || *rend || n < 1 || n > 1 << 20) {
                fprintf(stderr, "osse: --due-window wants a number from 1 to %d\n", 1 << 20);
                return usage("serve");
            }
            due_window = (size_t)n;
        } else if (strcmp(argv[i], "--request-cache") == 0 && i + 1 < argc) {
            /* ended requests kept in memory (engine/cache.c) */
            char *rend;
            const char *v = argv[++i];
            long long n = strtoll(v, &rend, 10);
            if (!*v || *rend || n < 0 || n > 1LL << 40) {
                fprintf(stderr, "osse: --request-cache wants a number from 0 to %lld\n", 1LL << 40);
                return usage("serve");
            }
            request_cache = n ? (size_t)n : OSSE_REQUEST_CACHE_NONE;
        } else if (strcmp(argv[i], "--partitions") == 0 && i + 1 < argc) {
            /* the partitions new request ids are minted in (a future cluster's node) */
            if (osse_partitions_parse(argv[++i], &part_first, &part_last)) {
                fprintf(stderr,
                        "osse: --partitions wants a range A-B of partitions, 0 <= A <= B <= %d "
                        "(got \"%s\")\n",
                        OSSE_PARTITIONS - 1, argv[i]);
                return usage("serve");
            }
        } else if (strcmp(argv[i], "--log-compression") == 0 && i + 1 < argc) {
            /* hidden, for tests: the log's tables uncompressed (test_markers) */
            if (osse_log_compression_parse(argv[++i], &compression)) {
                fprintf(stderr, "osse: --log-compression wants lz4 or none\n");
                return usage("serve");
            }
        } else
            return usage("serve");
    }
    if (!data)
        return usage("serve");
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || (size_t)(colon - listen) >= sizeof host || *end || port < 0 || port > 65535) {
        fprintf(stderr, "osse: --listen wants HOST:PORT\n");
        return usage("serve");
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    osse_err_t err = {0};
    if (origin && osse_origin_check(origin, strlen(origin), &err)) {
        fprintf(stderr, "osse: --origin: %s (C2SP: UTF-8, no spaces, no '+', no controls)\n",
                err.msg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    osse_logf_set_level(level);

    uv_loop_t *loop = uv_default_loop();
    osse_engine_opts_t opts = {.data_dir = data,
                               .origin = origin,
                               .key_store = key_store,
                               .master_key = master_key,
                               .test_clock = test_clock,
                               .test_clock_start = clock_start,
                               .bench_without_tree = without_tree,
                               .allow_private_urls = allow_private,
                               .hook_retry_base_ms = hook_base,
                               .hook_retry_span_ms = hook_span,
                               .min_free_bytes = min_free,
                               .key_reserve = key_reserve,
                               .due_window = due_window,
                               .request_cache = request_cache,
                               .rebuild_views = rebuild_views,
                               .check_views = check_views,
                               .log_compression = compression,
                               .partition_first = part_first,
                               .partition_count = part_last - part_first + 1,
                               .fault = fault,
                               .fault_at = fault_at,
                               .on_fail = on_fail,
                               .on_fail_ud = loop};
    osse_logf(OSSE_LEVEL_INFO, "starting", "version=%s data=%s test_clock=%s", OSSE_VERSION, data,
              test_clock ? "true" : "false");
    if (part_last - part_first + 1 < OSSE_PARTITIONS)
        osse_logf(OSSE_LEVEL_INFO, "partitions", "first=%u last=%u", part_first, part_last);
    if (osse_engine_open(&opts, loop, &engine, &err)) {
        osse_logf(OSSE_LEVEL_ERROR, "cannot start", "data=%s error=%s", data, err.msg);
        return 1;
    }
    if (wfdir && load_workflows(engine, wfdir)) {
        osse_engine_stop(engine);
        uv_run(loop, UV_RUN_DEFAULT);
        osse_engine_close(engine);
        return 1;
    }
    int ready = 0;
    osse_engine_hold(engine, on_ready, &ready);
    while (!ready)
        uv_run(loop, UV_RUN_ONCE);
    if (ready < 0) {
        osse_logf(OSSE_LEVEL_ERROR, "cannot start", "data=%s error=%s", data,
                  "the log cannot be written");
        osse_engine_stop(engine);
        uv_run(loop, UV_RUN_DEFAULT);
        osse_engine_close(engine);
        return 1;
    }
    /* The pages, read whole before the loop serves anything (api/ui.h). A
     * folder named with --ui-dir must be there; the built-in one (the
     * source tree's ui/, or the package's /usr/share/osse/ui) may be
     * missing: then /ui/ answers 404. */
    osse_ui_t *ui = NULL;
    if (osse_ui_open(ui_dir ? ui_dir : OSSE_UI_DIR, &ui, &err)) {
        if (ui_dir) {
            osse_logf(OSSE_LEVEL_ERROR, "cannot start", "ui_dir=%s error=%s", ui_dir, err.msg);
            osse_engine_stop(engine);
            uv_run(loop, UV_RUN_DEFAULT);
            osse_engine_close(engine);
            return 1;
        }
        osse_logf(OSSE_LEVEL_WARN, "no pages", "ui_dir=%s error=%s", OSSE_UI_DIR, err.msg);
        err = (osse_err_t){0};
    }
    if (osse_server_open(loop, engine, ui, host, (int)port, test_clock, upload_timeout, &server,
                         &err)) {
        osse_logf(OSSE_LEVEL_ERROR, "cannot start", "listen=%s error=%s", listen, err.msg);
        osse_engine_stop(engine);
        uv_run(loop, UV_RUN_DEFAULT);
        osse_engine_close(engine);
        osse_ui_close(ui);
        return 1;
    }
    if (ncors && osse_server_cors(server, cors, ncors, &err)) {
        /* Each was checked with the flags above. */
        osse_logf(OSSE_LEVEL_ERROR, "cannot start", "error=%s", err.msg);
        osse_server_close(server);
        server = NULL;
        osse_engine_stop(engine);
        uv_run(loop, UV_RUN_DEFAULT);
        osse_engine_close(engine);
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    signals_on = true;
    osse_log_t *log = osse_engine_log(engine);
    osse_logf(OSSE_LEVEL_INFO, "listening",
              "addr=%s:%d data=%s admin_token=%s/admin.token events=%llu log_level=%s pages=%zu",
              host, osse_server_port(server), data, data,
              (unsigned long long)osse_log_durable_seq(log), osse_logf_level_name(level),
              osse_ui_count(ui));
    /* Tests and scripts wait for this exact line, on stdout. */
    printf("osse: listening on %s:%d\n", host, osse_server_port(server));
    fflush(stdout);
    /* --fault-alloc counts from here: the start's own allocations (replay,
     * definitions) are behind, and no call is read before uv_run. */
    if (fault_alloc)
        osse_alloc_fail_after(fault_alloc);
    uv_run(loop, UV_RUN_DEFAULT);
    if (serve_failed) {
        /* on_fail made the loop return; the engine stops here, outside the
         * log's completion. Nothing after the failed write is written. */
        if (!engine_stopping)
            osse_engine_stop(engine);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    osse_logf(serve_failed ? OSSE_LEVEL_ERROR : OSSE_LEVEL_INFO, "stopped", "events=%llu exit=%d",
              (unsigned long long)osse_log_durable_seq(log), serve_failed ? 1 : 0);
    osse_engine_close(engine);
    osse_ui_close(ui);
    uv_loop_close(loop);
    return serve_failed ? 1 : 0;
}

/* An auditor's key: a C2SP verifier key or bare base64 public key, given
 * as is or as the path of a file holding it. */
static int load_key(const char *arg, osse_verifier_t *v, osse_err_t *err)
{
    size_t len;
    char *text = NULL;
    FILE *f = fopen(arg, "rb");
    if (f) {
        fclose(f);
        if (!(text = read_file(arg, &len, err)))
            return err->code;
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
            text[--len] = '\0';
    }
    int rc = osse_verifier_parse(v, text ? text : arg, text ? len : strlen(arg), err);
    free(text);
    return rc;
}

static void print_bad(const char *what, const osse_export_info_t *in, const osse_err_t *err, int rc)
{
    fprintf(stderr, "osse: %s FAILED at byte %llu", what, (unsigned long long)in->offset);
    if (in->bad_seq)
        fprintf(stderr, ", event seq %llu", (unsigned long long)in->bad_seq);
    if (in->bad_head)
        fprintf(stderr, ", head of size %llu", (unsigned long long)in->bad_head);
    fprintf(stderr, ": %s\n", err->msg[0] ? err->msg : osse_strerror(rc));
}

/* osse verify FILE --key KEY: every leaf, every head's signature and the
 * consistency between heads, offline; names the first bad event or head. */
static int cmd_verify(int argc, char **argv)
{
    const char *file = NULL, *key = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else
            return usage("verify");
    }
    if (!file || !key)
        return usage("verify");
    osse_err_t err = {0};
    osse_verifier_t v;
    if (load_key(key, &v, &err)) {
        fprintf(stderr, "osse: --key: %s\n", err.msg);
        return 2;
    }
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "osse: %s: %s\n", file, strerror(errno));
        return 1;
    }
    osse_export_info_t in = {0};
    int rc = osse_export_verify_file(f, &v, NULL, NULL, &in, &err);
    fclose(f);
    if (rc) {
        print_bad("verify", &in, &err, rc);
        return 1;
    }
    char root[65];
    for (int i = 0; i < 32; i++)
        snprintf(root + 2 * i, 3, "%02x", in.last_root[i]);
    printf("ok: %s, events %llu..%llu, %llu signed head(s), tree size %llu, root %s\n", in.origin,
           (unsigned long long)in.first_seq, (unsigned long long)(in.first_seq + in.count - 1),
           (unsigned long long)in.heads, (unsigned long long)in.last_size, root);
    return 0;
}

/* osse export --data DIR [--from SEQ] [--to SEQ]: the log (or a range) with
 * its signed heads, to stdout. Runs beside a live server (read-only open). */
static int cmd_export(int argc, char **argv)
{
    const char *data = NULL;
    unsigned long long from = 0, to = 0;
    for (int i = 2; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            data = argv[++i];
        } else if ((strcmp(argv[i], "--from") == 0 || strcmp(argv[i], "--to") == 0) &&
                   i + 1 < argc) {
            unsigned long long *dst = argv[i][2] == 'f' ? &from : &to;
            *dst = strtoull(argv[++i], &end, 10);
            if (!argv[i][0] || *end || argv[i][0] == '-' || *dst == 0)
                return usage("export");
        } else {
            return usage("export");
        }
    }
    if (!data)
        return usage("export");
    osse_err_t err = {0};
    osse_log_t *log = NULL;
    osse_signer_t *signer = NULL;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/log", data);
    int rc = osse_log_open_readonly(dir, &log, &err);
    if (!rc)
        rc = osse_signer_open(data, NULL, &signer, &err);
    if (!rc) {
        uint64_t last = osse_log_last_seq(log);
        rc = osse_export_write(log, signer, from ? from : 1, to ? to : last, stdout, &err);
    }
    if (!rc && fflush(stdout) != 0)
        rc = osse_err_set(&err, OSSE_EIO, "cannot write the export: %s", strerror(errno));
    osse_signer_close(signer);
    osse_log_close(log);
    if (rc) {
        fprintf(stderr, "osse: export failed: %s\n", err.msg[0] ? err.msg : osse_strerror(rc));
        return 1;
    }
    return 0;
}

typedef struct replay_s {
    osse_engine_t *eng;
    bool recheck, from_start;
    size_t diffs;
    osse_err_t err;
} replay_t;

static int replay_one(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    replay_t *rp = ud;
    if (seq == 1)
        rp->from_start = true;
    if (!rp->from_start)
        return osse_err_set(&rp->err, OSSE_EINVAL,
                            "the log given starts at seq %llu: views need every event from seq 1",
                            (unsigned long long)seq);
    /* A rule is rechecked against the state it ran in: before its event. */
    if (rp->recheck)
        rp->diffs += osse_engine_recheck_event(rp->eng, seq, bytes, len, stdout);
    return osse_engine_replay_event(rp->eng, seq, bytes, len, &rp->err);
}

/* osse replay: rebuilds every view from the log alone and prints, as its last
 * line, the digest that GET /v1/admin/digest gives for the same log. */
static int cmd_replay(int argc, char **argv)
{
    const char *data = NULL, *file = NULL, *key = NULL;
    replay_t rp = {0};
    osse_records_check_t rec = {0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (strcmp(argv[i], "--recheck") == 0)
            rp.recheck = true;
        else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else
            return usage("replay");
    }
    if (!!data == !!file || (key && !file))
        return usage("replay");
    osse_verifier_t v;
    if (key && load_key(key, &v, &rp.err)) {
        fprintf(stderr, "osse: --key: %s\n", rp.err.msg);
        return 2;
    }
    if (osse_engine_open_replay(&rp.eng)) {
        fprintf(stderr, "osse: cannot start\n");
        return 1;
    }
    int rc;
    if (data) {
        char dir[4096];
        osse_log_t *log = NULL;
        snprintf(dir, sizeof dir, "%s/log", data);
        rc = osse_log_open_readonly(dir, &log, &rp.err);
        /* --recheck prints as it goes, before each event: one thread.
         * Otherwise a second thread reads and decodes (engine/replay.c). */
        if (!rc && rp.recheck)
            rc = osse_log_scan(log, 1, replay_one, &rp, &rp.err);
        else if (!rc)
            rc = osse_engine_replay_log(rp.eng, log, &rp.err);
        /* The stored request records against the requests rebuilt here. */
        if (!rc && !(rc = osse_engine_records_check(rp.eng, log, &rec, &rp.err))) {
            printf("records %llu equal, %llu missing, %llu different, %llu extra\n",
                   (unsigned long long)rec.equal, (unsigned long long)rec.missing,
                   (unsigned long long)rec.differ, (unsigned long long)rec.extra);
            if (rec.missing)
                printf("records: the first missing is %s's (a data folder written before "
                       "records keeps them missing until the request changes)\n",
                       rec.first_missing);
            if (rec.differ)
                printf("records: the first different is %s's\n", rec.first_differ);
            printf("indexes %llu equal, %llu missing, %llu different, %llu extra\n",
                   (unsigned long long)rec.ix_equal, (unsigned long long)rec.ix_missing,
                   (unsigned long long)rec.ix_different, (unsigned long long)rec.ix_extra);
            if (rec.ix_missing || rec.ix_different)
                printf("indexes: the first wrong is %s\n", rec.ix_first);
            printf("snapshot %s\n", rec.snapshot ? rec.snapshot : "missing");
        }
        osse_log_close(log);
    } else {
        /* The export is verified as it is read; the views count only if the
         * whole file verifies (its last head is checked after the events). */
        FILE *f = fopen(file, "rb");
        osse_export_info_t in = {0};
        if (!f) {
            rc = osse_err_set(&rp.err, OSSE_EIO, "%s: %s", file, strerror(errno));
        } else {
            if (!key)
                fprintf(stderr, "osse: no --key: the export is checked against its own "
                                "public key only\n");
            if (rp.recheck)
                rc = osse_export_verify_file(f, key ? &v : NULL, replay_one, &rp, &in, &rp.err);
            else
                rc = osse_engine_replay_export(rp.eng, f, key ? &v : NULL, &in, &rp.err);
            fclose(f);
            if (rc) {
                print_bad("replay", &in, &rp.err, rc);
                osse_engine_close(rp.eng);
                return 1;
            }
        }
    }
    if (rc) {
        fprintf(stderr, "osse: replay failed: %s\n",
                rp.err.msg[0] ? rp.err.msg : osse_strerror(rc));
        osse_engine_close(rp.eng);
        return 1;
    }
    char hex[65];
    uint64_t size;
    osse_engine_digest(rp.eng, hex, &size);
    if (rp.recheck && osse_engine_recheck_sealed(rp.eng))
        printf("recheck: %zu rule(s) not checkable: they read personal values, sealed under "
               "keys a replay does not have\n",
               osse_engine_recheck_sealed(rp.eng));
    if (rp.recheck && osse_engine_recheck_skipped(rp.eng))
        printf("recheck: %zu rule(s) skipped: their requests' personal data was erased\n",
               osse_engine_recheck_skipped(rp.eng));
    if (rp.recheck)
        printf("recheck: %zu difference(s)\n", rp.diffs);
    printf("events %llu\n%s\n", (unsigned long long)size, hex);
    osse_engine_close(rp.eng);
    return rp.diffs || rec.differ || rec.extra || rec.ix_different || rec.ix_extra ||
                   (rec.snapshot && strcmp(rec.snapshot, "different") == 0)
               ? 1
               : 0;
}

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* osse citizen-id [ID]: a valid Thai citizen id for trying osse out (13
 * digits, the last the check digit of SPEC §2), or whether ID is one. */
static int cmd_citizen_id(int argc, char **argv)
{
    if (argc > 3)
        return usage("citizen-id");
    if (argc == 3) {
        bool ok = osse_citizen_id_valid(argv[2]);
        printf("%s: %s\n", argv[2], ok ? "valid" : "not a valid Thai citizen id");
        return ok ? 0 : 1;
    }
    char id[14];
    id[0] = (char)('1' + randombytes_uniform(8)); /* the person's category, 1 to 8 */
    unsigned sum = (unsigned)(id[0] - '0') * 13;
    for (int i = 1; i < 12; i++) {
        id[i] = (char)('0' + randombytes_uniform(10));
        sum += (unsigned)(id[i] - '0') * (unsigned)(13 - i);
    }
    id[12] = (char)('0' + (11 - sum % 11) % 10);
    id[13] = '\0';
    printf("%s\n", id);
    return 0;
}

/* osse token --data DIR: with the server stopped, a new platform principal
 * (a PrincipalCreated event in the log, like any other) whose token replaces
 * <data>/admin.token: the way back in after the last platform token is lost. */
static int cmd_token(int argc, char **argv)
{
    if (argc != 4 || strcmp(argv[2], "--data") != 0)
        return usage("token");
    uv_loop_t *loop = uv_default_loop();
    osse_err_t err = {0};
    osse_engine_opts_t opts = {.data_dir = argv[3], .offline = true};
    osse_engine_t *eng = NULL;
    if (osse_engine_open(&opts, loop, &eng, &err)) {
        fprintf(stderr, "osse: %s\n", err.msg);
        return 1;
    }
    char id[40], path[4200];
    int rc = osse_engine_mint_platform(eng, id, path, sizeof path, &err);
    osse_engine_stop(eng);
    uv_run(loop, UV_RUN_DEFAULT);
    osse_engine_close(eng);
    uv_loop_close(loop);
    if (rc) {
        fprintf(stderr, "osse: %s\n", err.msg);
        return 1;
    }
    printf("osse: new platform principal %s; its token is in %s (mode 0600)\n", id, path);
    return 0;
}

int main(int argc, char **argv)
{
    osse_alloc_setup_json();
    if (argc < 2)
        return usage(NULL);
    /* osse help [CMD], osse --help, osse CMD --help: on stdout, exit 0; osse
     * help --man: the man page, which the build makes osse.1 of. */
    if (strcmp(argv[1], "help") == 0 && argc == 3 && strcmp(argv[2], "--man") == 0) {
        osse_help_man(stdout, OSSE_VERSION);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (strcmp(argv[1], "help") == 0 || is_help(argv[1])) {
        if (argc > 3 || (argc == 3 && !osse_help_known(argv[2])))
            return usage(NULL);
        osse_help_print(stdout, argc == 3 ? argv[2] : NULL);
        return 0;
    }
    for (int i = 2; i < argc && osse_help_known(argv[1]); i++)
        if (is_help(argv[i])) {
            osse_help_print(stdout, argv[1]);
            return 0;
        }
    if (sodium_init() < 0) {
        fprintf(stderr, "osse: libsodium cannot start\n");
        return 1;
    }
    if (strcmp(argv[1], "serve") == 0)
        return cmd_serve(argc, argv);
    if (strcmp(argv[1], "validate") == 0)
        return cmd_validate(argc, argv);
    if (strcmp(argv[1], "replay") == 0)
        return cmd_replay(argc, argv);
    if (strcmp(argv[1], "export") == 0)
        return cmd_export(argc, argv);
    if (strcmp(argv[1], "verify") == 0)
        return cmd_verify(argc, argv);
    if (strcmp(argv[1], "citizen-id") == 0)
        return cmd_citizen_id(argc, argv);
    if (strcmp(argv[1], "token") == 0)
        return cmd_token(argc, argv);
    if (strcmp(argv[1], "version") == 0) {
        if (argc != 2)
            return usage("version");
        printf("osse %s\n", OSSE_VERSION);
        return 0;
    }
    return usage(NULL);
}
