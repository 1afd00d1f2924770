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
#include "common/log.h"
#include "common/time.h"
#include "engine/engine.h"
#include "storage/checkpoint.h"
#include "storage/export.h"
#include "workflows/workflow.h"

#define OSSE_VERSION "0.1.0"
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
    char *buf = malloc(MAX_FILE + 1);
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

static void print_json(FILE *out, json_t *o)
{
    json_dumpf(o, out, JSON_INDENT(2));
    fputc('\n', out);
    json_decref(o);
}

/* osse validate FILE: the same checks and error shape as POST /v1/workflows,
 * but for references to agencies and calendars. */
static int cmd_validate(int argc, char **argv)
{
    if (argc != 3)
        return usage("validate");
    osse_err_t err = {0};
    size_t len;
    char *text = read_file(argv[2], &len, &err);
    if (!text) {
        fprintf(stderr, "osse: %s\n", err.msg);
        return 2;
    }
    json_t *tree = NULL, *details = json_array();
    osse_wf_t *wf = NULL;
    int rc = 0;
    if (osse_wf_parse_text(text, len, &tree, &err)) {
        print_json(stdout, json_pack("{s:{s:s,s:s,s:[]}}", "error", "code", "invalid_yaml",
                                     "message", err.msg, "details"));
        rc = 1;
    } else if (osse_wf_compile(tree, &wf, details)) {
        char msg[96];
        snprintf(msg, sizeof msg, "the definition has %zu problem(s)", json_array_size(details));
        print_json(stdout, json_pack("{s:{s:s,s:s,s:O}}", "error", "code", "invalid_definition",
                                     "message", msg, "details", details));
        rc = 1;
    } else {
        print_json(stdout, json_pack("{s:b,s:s,s:i}", "ok", 1, "id", wf->id, "steps",
                                     (int)wf->nsteps));
    }
    osse_wf_free(wf);
    json_decref(tree);
    json_decref(details);
    free(text);
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
    int rc = 0;
    if (!text || osse_wf_parse_text(text, len, &tree, &err)) {
        osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s error=%s", path, err.msg);
        free(text);
        return -1;
    }
    free(text);
    const char *id;
    json_t *v;
    json_object_foreach(tree, id, v)
    {
        if (strcmp(id, "calendars") && strcmp(id, "agencies")) {
            osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s key=%s error=%s", path, id,
                      "unknown key (calendars, agencies)");
            rc = -1;
        }
    }
    json_object_foreach(json_object_get(tree, "calendars"), id, v)
    {
        osse_fail_t f = {0};
        json_t *out = NULL;
        int status;
        if (osse_cmd_put_calendar(eng, NULL, id, v, &out, &status, &f)) {
            print_fail(path, &f);
            rc = -1;
        }
        json_decref(out);
    }
    json_object_foreach(json_object_get(tree, "agencies"), id, v)
    {
        osse_fail_t f = {0};
        json_t *out = NULL;
        int status;
        if (osse_cmd_put_agency(eng, NULL, id, v, &out, &status, &f)) {
            print_fail(path, &f);
            rc = -1;
        }
        json_decref(out);
    }
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

static int load_workflows(osse_engine_t *eng, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/_setup.yaml", dir);
    FILE *probe = fopen(path, "r");
    if (probe) {
        fclose(probe);
        if (apply_setup(eng, path))
            return -1;
    }
    struct dirent **names;
    int n = scandir(dir, &names, NULL, by_name);
    if (n < 0) {
        osse_logf(OSSE_LEVEL_ERROR, "cannot read the workflows", "dir=%s error=%s", dir,
                  strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (name[0] != '_' && name[0] != '.' &&
            (ends_with(name, ".yaml") || ends_with(name, ".yml") || ends_with(name, ".json"))) {
            osse_err_t err = {0};
            size_t len;
            snprintf(path, sizeof path, "%s/%s", dir, name);
            char *text = read_file(path, &len, &err);
            json_t *tree = NULL, *out = NULL;
            osse_fail_t f = {0};
            if (!text || osse_wf_parse_text(text, len, &tree, &err)) {
                osse_logf(OSSE_LEVEL_ERROR, "refused", "file=%s error=%s", path, err.msg);
                rc = -1;
            } else if (osse_cmd_publish_workflow(eng, NULL, tree, true, &out, &f)) {
                print_fail(path, &f);
                rc = -1;
            } else {
                osse_logf(OSSE_LEVEL_INFO, "workflow loaded",
                          "file=%s workflow=%s version=%lld changed=%s", path,
                          json_string_value(json_object_get(out, "id")),
                          (long long)json_integer_value(json_object_get(out, "version")),
                          json_object_get(out, "changed") ? "false" : "true");
            }
            json_decref(out);
            json_decref(tree);
            free(text);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static osse_server_t *server;
static osse_engine_t *engine;
static uv_signal_t sigterm, sigint;

static void walk_cb(uv_handle_t *h, void *arg)
{
    osse_logf(OSSE_LEVEL_WARN, "open handle", "type=%s active=%d ref=%d closing=%d",
              uv_handle_type_name(h->type), uv_is_active(h), uv_has_ref(h), uv_is_closing(h));
}

static void on_signal(uv_signal_t *h, int signum)
{
    osse_logf(OSSE_LEVEL_INFO, "stopping", "signal=%s",
              signum == SIGTERM ? "SIGTERM" : signum == SIGINT ? "SIGINT" : "?");
    uv_signal_stop(&sigterm);
    uv_signal_stop(&sigint);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    osse_server_close(server);
    server = NULL;
    osse_engine_stop(engine);
    if (getenv("OSSE_DEBUG_HANDLES"))
        uv_walk(h->loop, walk_cb, NULL);
}

static void on_ready(void *ud)
{
    *(int *)ud = 1;
}

static int cmd_serve(int argc, char **argv)
{
    const char *data = NULL, *listen = "127.0.0.1:8080", *wfdir = NULL, *origin = NULL;
    bool test_clock = false, without_tree = false;
    int64_t clock_start = 0;
    osse_level_t level = OSSE_LEVEL_INFO;
    long long hook_base = 0, hook_span = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            data = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--workflows") == 0 && i + 1 < argc)
            wfdir = argv[++i];
        else if (strcmp(argv[i], "--origin") == 0 && i + 1 < argc)
            origin = argv[++i];
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
        else if (strcmp(argv[i], "--hook-retry-base-ms") == 0 && i + 1 < argc)
            hook_base = atoll(argv[++i]); /* hidden, for tests: the first retry delay */
        else if (strcmp(argv[i], "--hook-retry-span-ms") == 0 && i + 1 < argc)
            hook_span = atoll(argv[++i]); /* hidden, for tests: when retries give up */
        else
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
                               .test_clock = test_clock,
                               .test_clock_start = clock_start,
                               .bench_without_tree = without_tree,
                               .hook_retry_base_ms = hook_base,
                               .hook_retry_span_ms = hook_span};
    osse_logf(OSSE_LEVEL_INFO, "starting", "version=%s data=%s test_clock=%s", OSSE_VERSION,
              data, test_clock ? "true" : "false");
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
    if (osse_server_open(loop, engine, host, (int)port, test_clock, &server, &err)) {
        osse_logf(OSSE_LEVEL_ERROR, "cannot start", "listen=%s error=%s", listen, err.msg);
        osse_engine_stop(engine);
        uv_run(loop, UV_RUN_DEFAULT);
        osse_engine_close(engine);
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    osse_log_t *log = osse_engine_log(engine);
    osse_logf(OSSE_LEVEL_INFO, "listening",
              "addr=%s:%d data=%s admin_token=%s/admin.token events=%llu log_level=%s", host,
              osse_server_port(server), data, data, (unsigned long long)osse_log_durable_seq(log),
              osse_logf_level_name(level));
    /* Tests and scripts wait for this exact line, on stdout. */
    printf("osse: listening on %s:%d\n", host, osse_server_port(server));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    osse_logf(OSSE_LEVEL_INFO, "stopped", "events=%llu",
              (unsigned long long)osse_log_durable_seq(log));
    osse_engine_close(engine);
    uv_loop_close(loop);
    return 0;
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

static void print_bad(const char *what, const osse_export_info_t *in, const osse_err_t *err,
                      int rc)
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
        if (!rc)
            rc = osse_log_scan(log, 1, replay_one, &rp, &rp.err);
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
            rc = osse_export_verify_file(f, key ? &v : NULL, replay_one, &rp, &in, &rp.err);
            fclose(f);
            if (rc) {
                print_bad("replay", &in, &rp.err, rc);
                osse_engine_close(rp.eng);
                return 1;
            }
        }
    }
    if (rc) {
        fprintf(stderr, "osse: replay failed: %s\n", rp.err.msg[0] ? rp.err.msg : osse_strerror(rc));
        osse_engine_close(rp.eng);
        return 1;
    }
    char hex[65];
    uint64_t size;
    osse_engine_digest(rp.eng, hex, &size);
    if (rp.recheck)
        printf("recheck: %zu difference(s)\n", rp.diffs);
    printf("events %llu\n%s\n", (unsigned long long)size, hex);
    osse_engine_close(rp.eng);
    return rp.diffs ? 1 : 0;
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
    if (argc < 2)
        return usage(NULL);
    /* osse help [CMD], osse --help, osse CMD --help: on stdout, exit 0. */
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
