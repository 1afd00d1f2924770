/* test_engine_flow.c: the engine through its own C API on a temporary
 * folder, without HTTP (issue 10): every row of the state tables of
 * engine/state.c; a request's life (fan-out, fan-in, reject, return and
 * info, withdraw) by osse_cmd_* and osse_q_request, each answer waited for
 * with osse_engine_hold as the server does; and a failed log write
 * (osse_log_fault): that hold and every later one run with the status,
 * on_fail is told once, and a reopen finds what was durable; and the log of
 * a request replayed whole (the live digest) or damaged (OSSE_ECORRUPT); and
 * 70,000 request keys held at once (one sodium_malloc each ran out of the
 * kernel's memory mappings); and a file sealed under its own key, read back
 * after a reopen (its key kept), and 410 gone once its key is dropped
 * (osse__files_forget_key, as erasure does); and the reserve of request
 * keys (taken, refilled, a failed refill, a stop with a refill on the
 * pool). */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/time.h"
#include "engine/engine.h"
#include "engine/internal.h"
#include "storage/event.h"
#include "tests/test.h"

/* ---- the state tables, against SPEC §4's life of a step and a request ---- */

/* Every step transition SPEC §4 and engine.h describe, by name: a step
 * opens or is skipped or cancelled while pending; an open task is decided
 * (approved, rejected, returned), an open automatic step is done or fails,
 * and any unfinished step may be cancelled; a returned step reopens on
 * InfoProvided. */
static const char *const step_allowed[][2] = {
    {"pending", "open"},
    {"pending", "skipped"},
    {"pending", "cancelled"},
    {"open", "approved"},
    {"open", "rejected"},
    {"open", "waiting_applicant"},
    {"open", "done"},
    {"open", "failed"},
    {"open", "cancelled"},
    {"waiting_applicant", "open"},
    {"waiting_applicant", "cancelled"},
};

static const char *const step_names[] = {"pending",  "open",     "waiting_applicant",
                                         "approved", "rejected", "done",
                                         "skipped",  "failed",   "cancelled"};

static bool listed(const char *const (*rows)[2], size_t n, const char *a, const char *b)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i][0], a) == 0 && strcmp(rows[i][1], b) == 0)
            return true;
    return false;
}

static void test_step_table(void)
{
    size_t n = sizeof step_allowed / sizeof *step_allowed;
    CHECK_EQ_INT(sizeof step_names / sizeof *step_names, OSSE_SS__COUNT);
    for (int from = 0; from < OSSE_SS__COUNT; from++) {
        osse_sstate_t parsed;
        CHECK_EQ_INT(osse__sstate_parse(step_names[from], &parsed), 0);
        CHECK_EQ_INT(parsed, from);
        CHECK_EQ_STR(osse__sstate_name((osse_sstate_t)from), step_names[from]);
        bool any = false;
        for (int to = 0; to < OSSE_SS__COUNT; to++) {
            bool want = listed(step_allowed, n, step_names[from], step_names[to]);
            any |= want;
            if (osse__step_can((osse_sstate_t)from, (osse_sstate_t)to) != want)
                fprintf(stderr, "  step %s -> %s: want %s\n", step_names[from], step_names[to],
                        want ? "allowed" : "refused");
            CHECK(osse__step_can((osse_sstate_t)from, (osse_sstate_t)to) == want);
        }
        /* A state with no way out is final; done means it lets `after` go. */
        CHECK(osse__sstate_final((osse_sstate_t)from) == !any);
        bool done = from == OSSE_SS_APPROVED || from == OSSE_SS_DONE || from == OSSE_SS_SKIPPED;
        CHECK(osse__sstate_done((osse_sstate_t)from) == done);
    }
    /* Outside the table: refused, never read past it. */
    CHECK(!osse__step_can(OSSE_SS__COUNT, OSSE_SS_OPEN));
    CHECK(!osse__step_can((osse_sstate_t)-1, OSSE_SS_OPEN));
    osse_sstate_t s;
    CHECK_EQ_INT(osse__sstate_parse("opened", &s), OSSE_EINVAL);
    CHECK_EQ_STR(osse__sstate_name(OSSE_SS__COUNT), "?");
}

static const char *const request_names[] = {"in_progress", "awaiting_info", "awaiting_payment",
                                            "completed",   "rejected",      "withdrawn",
                                            "expired"};

/* A live request moves between its three open statuses and to any end; an
 * ended one never moves; staying put is always allowed (an event that does
 * not change the status). */
static void test_request_table(void)
{
    CHECK_EQ_INT(sizeof request_names / sizeof *request_names, OSSE_RS__COUNT);
    for (int from = 0; from < OSSE_RS__COUNT; from++) {
        osse_rstatus_t parsed;
        CHECK_EQ_INT(osse__rstatus_parse(request_names[from], &parsed), 0);
        CHECK_EQ_INT(parsed, from);
        CHECK_EQ_STR(osse__rstatus_name((osse_rstatus_t)from), request_names[from]);
        bool ended = from >= OSSE_RS_COMPLETED;
        CHECK(osse__rstatus_final((osse_rstatus_t)from) == ended);
        for (int to = 0; to < OSSE_RS__COUNT; to++) {
            bool want = from == to || !ended;
            if (osse__request_can((osse_rstatus_t)from, (osse_rstatus_t)to) != want)
                fprintf(stderr, "  request %s -> %s: want %s\n", request_names[from],
                        request_names[to], want ? "allowed" : "refused");
            CHECK(osse__request_can((osse_rstatus_t)from, (osse_rstatus_t)to) == want);
        }
    }
    CHECK(!osse__request_can(OSSE_RS__COUNT, OSSE_RS_COMPLETED));
    osse_rstatus_t r;
    CHECK_EQ_INT(osse__rstatus_parse("done", &r), OSSE_EINVAL);
}

/* ---- an engine on a temporary folder ---- */

typedef struct {
    char dir[64];
    uv_loop_t loop;
    osse_engine_t *e;
    const osse_principal_t *plat, *portal, *ag[3];
    char plat_tok[128], portal_tok[128]; /* to find them again after a reopen */
    int fails;                           /* on_fail calls */
    int fail_status;
    int key_reserve;      /* opts.key_reserve */
    size_t request_cache; /* opts.request_cache */
} world_t;

static const char *const AG[3] = {"ag-a", "ag-b", "ag-c"};

static void on_fail(void *ud, int status)
{
    world_t *w = ud;
    w->fails++;
    w->fail_status = status;
}

static void on_held(void *ud, int status)
{
    *(int *)ud = status ? status : 1;
}

/* Runs the loop until every event emitted so far is durable, as the server
 * holds an answer: 1, or the failed write's status. */
static int settle(world_t *w)
{
    int done = 0;
    osse_engine_hold(w->e, on_held, &done);
    while (!done)
        uv_run(&w->loop, UV_RUN_ONCE);
    return done;
}

static int open_engine(world_t *w, osse_log_fault_t fault, uint64_t at)
{
    osse_engine_opts_t opts = {.data_dir = w->dir,
                               .test_clock = true,
                               .fault = fault,
                               .fault_at = at,
                               .on_fail = on_fail,
                               .on_fail_ud = w,
                               .key_reserve = w->key_reserve,
                               .request_cache = w->request_cache};
    osse_err_t err = {0};
    w->fails = w->fail_status = 0;
    CHECK_EQ_INT(osse_time_parse("2030-01-07T09:00:00+07:00", &opts.test_clock_start), 0);
    CHECK_EQ_INT(uv_loop_init(&w->loop), 0);
    int rc = osse_engine_open(&opts, &w->loop, &w->e, &err);
    if (rc)
        fprintf(stderr, "  open: %s\n", err.msg);
    /* Principals are the engine's: those of a closed one are gone. */
    w->plat = w->portal = w->ag[0] = w->ag[1] = w->ag[2] = NULL;
    if (!rc && w->plat_tok[0]) {
        w->plat = osse_engine_auth(w->e, w->plat_tok, strlen(w->plat_tok));
        w->portal = osse_engine_auth(w->e, w->portal_tok, strlen(w->portal_tok));
        CHECK(w->plat && w->portal);
    }
    return rc;
}

static void close_engine(world_t *w)
{
    osse_engine_stop(w->e);
    CHECK_EQ_INT(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
    osse_engine_close(w->e);
    CHECK_EQ_INT(uv_loop_close(&w->loop), 0);
    w->e = NULL;
}

static const osse_principal_t *principal(world_t *w, const char *role, const char *agency,
                                         char *keep, size_t keeplen)
{
    json_t *out = NULL;
    osse_fail_t f = {0};
    json_t *body = json_pack("{s:s,s:s,s:s?}", "role", role, "name", role, "agency", agency);
    CHECK_EQ_INT(osse_cmd_create_principal(w->e, w->plat, body, &out, &f), 0);
    json_decref(body);
    const char *tok = json_string_value(json_object_get(out, "token"));
    const osse_principal_t *p = tok ? osse_engine_auth(w->e, tok, strlen(tok)) : NULL;
    CHECK(p != NULL);
    if (keep && tok)
        snprintf(keep, keeplen, "%s", tok);
    json_decref(out);
    osse_fail_clear(&f);
    return p;
}

/* intake (a) -> [review_b (b), review_c (c)] -> final (a): a fan-out and a
 * fan-in over three agencies. */
static json_t *definition(void)
{
    return json_pack("{s:s,s:s,s:{s:{s:s,s:b}},s:{s:{s:s,s:s},s:{s:s,s:s,s:[s]},"
                     "s:{s:s,s:s,s:[s]},s:{s:s,s:s,s:[s,s]}}}",
                     "id", "flow", "title", "Flow", "form", "name", "type", "string", "required", 1,
                     "steps", "intake", "kind", "task", "agency", AG[0], "review_b", "kind", "task",
                     "agency", AG[1], "after", "intake", "review_c", "kind", "task", "agency",
                     AG[2], "after", "intake", "final", "kind", "task", "agency", AG[0], "after",
                     "review_b", "review_c");
}

static bool setup(world_t *w, int key_reserve)
{
    memset(w, 0, sizeof *w);
    w->key_reserve = key_reserve;
    strcpy(w->dir, "/tmp/osse-engine-flow-XXXXXX");
    if (!mkdtemp(w->dir) || open_engine(w, OSSE_LOG_FAULT_NONE, 0))
        return false;
    CHECK_EQ_INT(settle(w), 1);
    char path[128], tok[128] = "";
    snprintf(path, sizeof path, "%s/admin.token", w->dir);
    FILE *fp = fopen(path, "r");
    CHECK(fp != NULL);
    if (fp) {
        if (!fgets(tok, sizeof tok, fp))
            tok[0] = '\0';
        fclose(fp);
    }
    tok[strcspn(tok, "\n")] = '\0';
    snprintf(w->plat_tok, sizeof w->plat_tok, "%s", tok);
    w->plat = osse_engine_auth(w->e, tok, strlen(tok));
    CHECK(w->plat != NULL);
    if (!w->plat)
        return false;
    for (int i = 0; i < 3; i++) {
        json_t *out = NULL, *body = json_pack("{s:s}", "name", AG[i]);
        int status = 0;
        osse_fail_t f = {0};
        CHECK_EQ_INT(osse_cmd_put_agency(w->e, w->plat, AG[i], body, &out, &status, &f), 0);
        CHECK_EQ_INT(status, 201);
        json_decref(body);
        json_decref(out);
        w->ag[i] = principal(w, "agency", AG[i], NULL, 0);
    }
    w->portal = principal(w, "portal", NULL, w->portal_tok, sizeof w->portal_tok);
    json_t *out = NULL;
    osse_publish_prep_t *prep = NULL;
    int status = 0;
    osse_fail_t f = {0};
    json_t *tree = definition();
    CHECK_EQ_INT(osse_cmd_publish_prepare(tree, &prep), 0);
    CHECK_EQ_INT(
        osse_cmd_publish_workflow(w->e, w->plat, prep, OSSE_PUBLISH_API, &out, &status, &f), 0);
    if (f.rc)
        fprintf(stderr, "  publish: %s\n", f.message);
    CHECK_EQ_INT(status, 201);
    /* Applied with the definition the prepare compiled, not compiled again
     * (that compiles a copy of the event's tree). */
    osse_wfent_t *we =
        osse_map_get(&w->e->workflows, json_string_value(json_object_get(out, "id")));
    CHECK(we && we->nversions == 1 && we->versions[0]->definition == tree);
    CHECK(!w->e->handover.wf && !w->e->handover.text);
    osse_fail_clear(&f);
    osse_publish_prep_free(prep);
    json_decref(out);
    CHECK_EQ_INT(settle(w), 1);
    return w->portal && w->ag[0] && w->ag[1] && w->ag[2];
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(world_t *w)
{
    if (w->e)
        close_engine(w);
    nftw(w->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs fn on a fresh world (setup's) with a reserve of key_reserve request
 * keys (0: the default), then removes its folder. */
static void in_world_reserve(void (*fn)(world_t *w), int key_reserve)
{
    world_t w;
    if (setup(&w, key_reserve))
        fn(&w);
    else
        CHECK(!"setup");
    teardown(&w);
}

static void in_world(void (*fn)(world_t *w))
{
    in_world_reserve(fn, 0);
}

/* A new request of workflow wf: its id (a new string), durable. */
static char *submit_to(world_t *w, const char *wf)
{
    json_t *out = NULL,
           *body = json_pack("{s:s,s:{s:s}}", "workflow", wf, "form", "name", "Somchai");
    osse_fail_t f = {0};
    CHECK_EQ_INT(osse_cmd_submit(w->e, w->portal, body, &out, &f), 0);
    json_decref(body);
    osse_fail_clear(&f);
    char *id = strdup(json_string_value(json_object_get(out, "id")) ?: "");
    json_decref(out);
    CHECK_EQ_INT(settle(w), 1);
    return id;
}

static char *submit(world_t *w)
{
    return submit_to(w, "flow");
}

static int decide(world_t *w, int agency, const char *rid, const char *step, const char *outcome)
{
    json_t *out = NULL, *body = json_pack("{s:s,s:s}", "outcome", outcome, "reason", "because");
    osse_fail_t f = {0};
    int rc = osse_cmd_decide(w->e, w->ag[agency], rid, step, body, &out, &f);
    json_decref(body);
    json_decref(out);
    osse_fail_clear(&f);
    if (!rc)
        CHECK_EQ_INT(settle(w), 1);
    return rc;
}

/* The request's status, and each step's state in definition order
 * ("intake=open review_b=pending ..."), as the tracking view says. */
static void view(world_t *w, const char *rid, char *status, size_t slen, char *steps, size_t stlen)
{
    json_t *out = NULL;
    osse_fail_t f = {0};
    status[0] = steps[0] = '\0';
    CHECK_EQ_INT(osse_q_request(w->e, w->plat, rid, false, &out, &f), 0);
    osse_fail_clear(&f);
    if (!out)
        return;
    snprintf(status, slen, "%s", json_string_value(json_object_get(out, "status")) ?: "?");
    size_t i, n = 0;
    json_t *s;
    json_array_foreach(json_object_get(out, "steps"), i, s)
    {
        n += (size_t)snprintf(steps + n, stlen - n, "%s%s=%s", i ? " " : "",
                              json_string_value(json_object_get(s, "name")),
                              json_string_value(json_object_get(s, "state")));
        if (n >= stlen)
            break;
    }
    json_decref(out);
}

#define EXPECT(w, rid, want_status, want_steps)                                                    \
    do {                                                                                           \
        char st_[32], steps_[256];                                                                 \
        view(w, rid, st_, sizeof st_, steps_, sizeof steps_);                                      \
        CHECK_EQ_STR(st_, want_status);                                                            \
        CHECK_EQ_STR(steps_, want_steps);                                                          \
    } while (0)

/* Fan-out: intake's approval opens both reviews; fan-in: final opens only
 * when both are approved; the last approval completes the request. */
static void fan_out_in(world_t *w)
{
    char *rid = submit(w);
    EXPECT(w, rid, "in_progress", "intake=open review_b=pending review_c=pending final=pending");
    /* A pending step is nobody's task yet (its agency is set when it
     * opens): b cannot decide its review; a's final step, pending too, is
     * a conflict for a (SPEC §4: the answer names its state). */
    CHECK_EQ_INT(decide(w, 1, rid, "review_b", "approve"), OSSE_EFORBIDDEN);
    CHECK_EQ_INT(decide(w, 0, rid, "final", "approve"), OSSE_ECONFLICT);
    CHECK_EQ_INT(decide(w, 0, rid, "intake", "approve"), 0);
    EXPECT(w, rid, "in_progress", "intake=approved review_b=open review_c=open final=pending");
    /* Only the step's own agency may decide it. */
    CHECK_EQ_INT(decide(w, 1, rid, "review_c", "approve"), OSSE_EFORBIDDEN);
    CHECK_EQ_INT(decide(w, 1, rid, "review_b", "approve"), 0);
    EXPECT(w, rid, "in_progress", "intake=approved review_b=approved review_c=open final=pending");
    CHECK_EQ_INT(decide(w, 0, rid, "final", "approve"), OSSE_ECONFLICT);
    CHECK_EQ_INT(decide(w, 2, rid, "review_c", "approve"), 0);
    EXPECT(w, rid, "in_progress", "intake=approved review_b=approved review_c=approved final=open");
    CHECK_EQ_INT(decide(w, 0, rid, "final", "approve"), 0);
    EXPECT(w, rid, "completed",
           "intake=approved review_b=approved review_c=approved final=approved");
    CHECK_EQ_INT(decide(w, 0, rid, "final", "approve"), OSSE_ECONFLICT);
    free(rid);
}

static void test_fan_out_in(void)
{
    in_world(fan_out_in);
}

/* A rejection ends the request and cancels every unfinished step. */
static void reject(world_t *w)
{
    char *rid = submit(w);
    CHECK_EQ_INT(decide(w, 0, rid, "intake", "approve"), 0);
    CHECK_EQ_INT(decide(w, 2, rid, "review_c", "reject"), 0);
    EXPECT(w, rid, "rejected",
           "intake=approved review_b=cancelled review_c=rejected final=cancelled");
    CHECK_EQ_INT(decide(w, 1, rid, "review_b", "approve"), OSSE_ECONFLICT);
    free(rid);
}

static void test_reject(void)
{
    in_world(reject);
}

/* return parks the task until the applicant's information reopens it;
 * information for a step not waiting is a conflict; a withdrawal ends it. */
static void return_info_withdraw(world_t *w)
{
    char *rid = submit(w);
    CHECK_EQ_INT(decide(w, 0, rid, "intake", "return"), 0);
    EXPECT(w, rid, "awaiting_info",
           "intake=waiting_applicant review_b=pending review_c=pending "
           "final=pending");
    CHECK_EQ_INT(decide(w, 0, rid, "intake", "approve"), OSSE_ECONFLICT);
    json_t *out = NULL, *body = json_pack("{s:s,s:s}", "step", "review_b", "message", "here");
    osse_fail_t f = {0};
    CHECK_EQ_INT(osse_cmd_info(w->e, w->portal, rid, body, &out, &f), OSSE_ECONFLICT);
    osse_fail_clear(&f);
    json_decref(body);
    body = json_pack("{s:s,s:s,s:{s:s}}", "step", "intake", "message", "here", "form", "name",
                     "Somchai J.");
    CHECK_EQ_INT(osse_cmd_info(w->e, w->portal, rid, body, &out, &f), 0);
    json_decref(body);
    json_decref(out);
    CHECK_EQ_INT(settle(w), 1);
    EXPECT(w, rid, "in_progress", "intake=open review_b=pending review_c=pending final=pending");
    CHECK_EQ_INT(decide(w, 0, rid, "intake", "approve"), 0);
    EXPECT(w, rid, "in_progress", "intake=approved review_b=open review_c=open final=pending");

    body = json_pack("{s:s}", "reason", "moved away");
    CHECK_EQ_INT(osse_cmd_withdraw(w->e, w->portal, rid, body, &out, &f), 0);
    json_decref(out);
    CHECK_EQ_INT(settle(w), 1);
    EXPECT(w, rid, "withdrawn",
           "intake=approved review_b=cancelled review_c=cancelled final=cancelled");
    CHECK_EQ_INT(osse_cmd_withdraw(w->e, w->portal, rid, body, &out, &f), OSSE_ECONFLICT);
    osse_fail_clear(&f);
    json_decref(body);
    CHECK_EQ_INT(decide(w, 1, rid, "review_b", "approve"), OSSE_ECONFLICT);
    free(rid);
}

static void test_return_info_withdraw(void)
{
    in_world(return_info_withdraw);
}

/* ---- a request's record (engine/record.c) ---- */

/* A record decodes into a request that encodes to the same bytes; a record
 * cut short anywhere, or with any one byte changed, either is refused
 * (OSSE_ECORRUPT, nothing kept) or decodes into a request that encodes
 * cleanly: stored bytes never crash the start (run under ASan/UBSan too). */
static void damaged_records(world_t *w)
{
    json_t *out = NULL,
           *body = json_pack("{s:s,s:{s:s}}", "workflow", "flow", "form", "name", "Somchai");
    osse_fail_t f = {0};
    CHECK_EQ_INT(osse_cmd_submit(w->e, w->portal, body, &out, &f), 0);
    json_decref(body);
    const osse_request_t *r = osse__request(w->e, json_string_value(json_object_get(out, "id")));
    json_decref(out);
    CHECK(r != NULL);
    if (!r)
        return;
    osse_buf_t rec = {0}, again = {0};
    size_t tail = 0, tail2 = 0;
    CHECK_EQ_INT(osse__record_encode(r, &rec, &tail), 0);
    CHECK(tail > 0 && tail < rec.len);
    osse_request_t *back = NULL;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse__record_decode(w->e, rec.ptr, rec.len, &back, &tail2, &err), 0);
    CHECK_EQ_INT((int)tail2, (int)tail);
    if (back) {
        /* Re-encoded with its form still as the record's bytes, then with
         * the form decoded (osse__form): the same record both times. */
        CHECK(back->form == NULL && back->form_mp != NULL);
        CHECK_EQ_INT(osse__record_encode(back, &again, NULL), 0);
        CHECK(again.len == rec.len && memcmp(again.ptr, rec.ptr, rec.len) == 0);
        CHECK(json_is_object(osse__form(back)) && back->form_mp == NULL);
        osse_buf_reset(&again);
        CHECK_EQ_INT(osse__record_encode(back, &again, NULL), 0);
        CHECK(again.len == rec.len && memcmp(again.ptr, rec.ptr, rec.len) == 0);
        osse__request_free(back);
    }
    int refused = 0, decoded = 0;
    for (size_t cut = 0; cut < rec.len; cut++) {
        back = NULL;
        if (osse__record_decode(w->e, rec.ptr, cut, &back, NULL, &err) == OSSE_ECORRUPT)
            refused++;
        CHECK(back == NULL);
    }
    CHECK_EQ_INT(refused, (int)rec.len); /* every cut is refused */
    for (size_t i = 0; i < rec.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            uint8_t *p = (uint8_t *)rec.ptr + i;
            *p ^= (uint8_t)(1u << bit);
            back = NULL;
            int rc = osse__record_decode(w->e, rec.ptr, rec.len, &back, NULL, &err);
            CHECK(rc == 0 || rc == OSSE_ECORRUPT);
            if (rc == 0) {
                osse_buf_reset(&again);
                CHECK_EQ_INT(osse__record_encode(back, &again, NULL), 0);
                /* What was checked at the read decodes (a panic if not). */
                CHECK(json_is_object(osse__form(back)));
                osse__request_free(back);
                decoded++;
            }
            *p ^= (uint8_t)(1u << bit);
        }
    }
    CHECK(decoded > 0); /* a changed digit of a time still decodes: that is not the point */
    osse_buf_close(&rec);
    osse_buf_close(&again);
}

static void test_damaged_records(void)
{
    in_world(damaged_records);
}

/* ---- a failed write ---- */

/* The folder of setup, reopened with a write fault a few writes on: the
 * submissions made before it are durable, the hold of the one it hits and
 * every later hold run with OSSE_EIO, on_fail is told once, and a reopen
 * without the fault has exactly the acknowledged requests. */
static void failed_write(world_t *w)
{
    close_engine(w);
    CHECK_EQ_INT(open_engine(w, OSSE_LOG_FAULT_WRITE, 4), 0);
    if (!w->e)
        return;
    char *acked[8] = {0}, *lost = NULL;
    int nacked = 0, held = 0;
    for (int i = 0; i < 8 && !lost; i++) {
        json_t *out = NULL,
               *body = json_pack("{s:s,s:{s:s}}", "workflow", "flow", "form", "name", "Somchai");
        osse_fail_t f = {0};
        CHECK_EQ_INT(osse_cmd_submit(w->e, w->portal, body, &out, &f), 0);
        json_decref(body);
        char *id = strdup(json_string_value(json_object_get(out, "id")) ?: "");
        json_decref(out);
        int rc = settle(w);
        if (rc == 1) {
            acked[nacked++] = id;
        } else {
            CHECK_EQ_INT(rc, OSSE_EIO);
            lost = id;
        }
    }
    CHECK(lost != NULL);
    CHECK(nacked >= 1); /* at most three writes at open and before the first submission */
    CHECK_EQ_INT(w->fails, 1);
    CHECK_EQ_INT(w->fail_status, OSSE_EIO);
    CHECK_EQ_INT(osse_engine_failed(w->e), OSSE_EIO);
    /* Any hold afterwards runs at once with the failure, never as durable. */
    osse_engine_hold(w->e, on_held, &held);
    CHECK_EQ_INT(held, OSSE_EIO);
    CHECK_EQ_INT(w->fails, 1);
    close_engine(w);

    CHECK_EQ_INT(open_engine(w, OSSE_LOG_FAULT_NONE, 0), 0);
    if (w->e) {
        CHECK_EQ_INT(settle(w), 1);
        for (int i = 0; i < nacked; i++)
            EXPECT(w, acked[i], "in_progress",
                   "intake=open review_b=pending review_c=pending final=pending");
        json_t *out = NULL;
        osse_fail_t f = {0};
        CHECK_EQ_INT(osse_q_request(w->e, w->plat, lost, false, &out, &f), OSSE_ENOTFOUND);
        osse_fail_clear(&f);
        json_decref(out);
        CHECK_EQ_INT(w->fails, 0);
    }
    for (int i = 0; i < nacked; i++)
        free(acked[i]);
    free(lost);
}

/* A stop with batches not yet durable (nothing here runs the loop after
 * the submissions): it waits for them (the log's writer keeps the tree),
 * then signs the tree of every event, so the head stored last is of the
 * whole log, and its root is the one the stored hashes give. */
static void stop_signs_all(world_t *w)
{
    for (int i = 0; i < 5; i++) {
        json_t *out = NULL,
               *body = json_pack("{s:s,s:{s:s}}", "workflow", "flow", "form", "name", "Somchai");
        osse_fail_t f = {0};
        CHECK_EQ_INT(osse_cmd_submit(w->e, w->portal, body, &out, &f), 0);
        json_decref(body);
        json_decref(out);
        osse_fail_clear(&f);
        osse__commit_flush(w->e); /* a batch of its own, in flight */
    }
    uint64_t size = osse_log_last_seq(w->e->log);
    CHECK(osse_log_durable_seq(w->e->log) < size);
    close_engine(w);

    char dbdir[160];
    snprintf(dbdir, sizeof dbdir, "%s/log", w->dir);
    osse_log_t *log = NULL;
    osse_merkle_t *m = NULL;
    osse_head_t h;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_log_open(dbdir, &log, &err), 0);
    CHECK_EQ_INT(osse_head_load_latest(log, &h, &err), 0);
    CHECK_EQ_INT(h.size, osse_log_last_seq(log));
    CHECK_EQ_INT(h.size, size);
    CHECK_EQ_INT(osse_merkle_open(log, &m, &err), 0);
    uint8_t kept[32];
    osse_merkle_root_now(m, kept);
    CHECK(memcmp(kept, h.root, 32) == 0);
    uint8_t stored[32];
    CHECK_EQ_INT(osse_merkle_root(log, h.size, stored, &err), 0);
    CHECK(memcmp(stored, h.root, 32) == 0);
    osse_merkle_close(m);
    osse_log_close(log);
}

static void test_stop_signs_all(void)
{
    in_world(stop_signs_all);
}

static void test_failed_write(void)
{
    in_world(failed_write);
}

/* ---- damaged logs: each kind refused with OSSE_ECORRUPT ---- */

typedef struct {
    void *bytes[64];
    size_t len[64];
    size_t n;
} events_t;

static int collect(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    events_t *ev = ud;
    if (ev->n == sizeof ev->bytes / sizeof *ev->bytes)
        return 1;
    ev->bytes[ev->n] = malloc(len);
    memcpy(ev->bytes[ev->n], bytes, len);
    ev->len[ev->n++] = len;
    return 0;
}

/* A replay engine fed events[0..n) as stored, then (bytes, len) as event
 * n+1: the last one's result (0 when bytes is NULL and all went well). */
static int replay(const events_t *ev, size_t n, const void *bytes, size_t len, osse_err_t *err)
{
    osse_engine_t *r = NULL;
    int rc = osse_engine_open_replay(&r);
    CHECK_EQ_INT(rc, 0);
    for (size_t i = 0; !rc && i < n; i++)
        rc = osse_engine_replay_event(r, i + 1, ev->bytes[i], ev->len[i], err);
    if (!rc && bytes)
        rc = osse_engine_replay_event(r, n + 1, bytes, len, err);
    osse_engine_close(r);
    return rc;
}

/* Event i of ev again, as event n+1 of its stream (seq and version right):
 * a command the state does not allow any more. */
static int replay_again(const events_t *ev, size_t i, osse_err_t *err)
{
    osse_event_t e;
    osse_buf_t b;
    osse_buf_init(&b, 0);
    CHECK_EQ_INT(osse_event_decode(ev->bytes[i], ev->len[i], &e, err), 0);
    uint32_t version = 0;
    for (size_t k = 0; k < ev->n; k++) {
        osse_event_t o;
        if (osse_event_decode(ev->bytes[k], ev->len[k], &o, NULL) == 0) {
            if (strcmp(o.stream, e.stream) == 0 && o.version > version)
                version = o.version;
            osse_event_clear(&o);
        }
    }
    e.seq = ev->n + 1;
    e.version = version + 1;
    CHECK_EQ_INT(osse_event_encode(&e, &b), 0);
    int rc = replay(ev, ev->n, b.ptr, b.len, err);
    osse_event_clear(&e);
    osse_buf_close(&b);
    return rc;
}

static size_t find_type(const events_t *ev, osse_event_type_t t)
{
    for (size_t k = 0; k < ev->n; k++) {
        osse_event_t o;
        bool hit = false;
        if (osse_event_decode(ev->bytes[k], ev->len[k], &o, NULL) == 0) {
            hit = o.type == t;
            osse_event_clear(&o);
        }
        if (hit)
            return k;
    }
    CHECK(!"event type not in the log");
    return 0;
}

/* The log of a short life (submitted, intake approved), replayed: whole it
 * rebuilds the live digest; cut, garbled, out of order, or with a command
 * that its state refuses, it is OSSE_ECORRUPT. */
static void replay_refuses(world_t *w)
{
    char *rid = submit(w);
    CHECK_EQ_INT(decide(w, 0, rid, "intake", "approve"), 0);
    free(rid);
    events_t ev = {0};
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_log_scan(osse_engine_log(w->e), 1, collect, &ev, &err), 0);
    CHECK(ev.n > 4 && ev.n < sizeof ev.bytes / sizeof *ev.bytes);

    /* Whole: the views a live engine holds. */
    char live[65], again[65];
    uint64_t lsize = 0, rsize = 0;
    osse_engine_t *r = NULL;
    CHECK_EQ_INT(osse_engine_digest(w->e, live, &lsize), 0);
    CHECK_EQ_INT(osse_engine_open_replay(&r), 0);
    for (size_t i = 0; i < ev.n; i++)
        CHECK_EQ_INT(osse_engine_replay_event(r, i + 1, ev.bytes[i], ev.len[i], &err), 0);
    CHECK_EQ_INT(osse_engine_digest(r, again, &rsize), 0);
    osse_engine_close(r);
    CHECK_EQ_STR(again, live);
    CHECK_EQ_INT(rsize, lsize);

    size_t last = ev.n - 1;
    /* Cut short. */
    CHECK_EQ_INT(replay(&ev, last, ev.bytes[last], ev.len[last] / 2, &err), OSSE_ECORRUPT);
    /* Not an event at all; and msgpack's 4 GiB map header (STYLE.md). */
    CHECK_EQ_INT(replay(&ev, last, "not msgpack", 11, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(replay(&ev, last, "\xdf\xff\xff\xff\xff", 5, &err), OSSE_ECORRUPT);
    /* A gap: event last+1 stored where event last belongs. */
    CHECK_EQ_INT(replay(&ev, last - 1, ev.bytes[last], ev.len[last], &err), OSSE_ECORRUPT);
    CHECK(strstr(err.msg, "out of order") != NULL);
    /* The same submission twice, the same decision twice. */
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(replay_again(&ev, find_type(&ev, OSSE_EV_RequestSubmitted), &err), OSSE_ECORRUPT);
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(replay_again(&ev, find_type(&ev, OSSE_EV_TaskDecided), &err), OSSE_ECORRUPT);
    CHECK(strstr(err.msg, "does not apply") != NULL);
    for (size_t i = 0; i < ev.n; i++)
        free(ev.bytes[i]);
}

static void test_replay_refuses(void)
{
    in_world(replay_refuses);
}

/* ---- the reactors (engine/commit.c): what hears of events ---- */

/* Publishes tree (taken), both halves on the loop. */
static void publish(world_t *w, json_t *tree)
{
    json_t *out = NULL;
    int status = 0;
    osse_fail_t f = {0};
    osse_publish_prep_t *prep = NULL;
    CHECK_EQ_INT(osse_cmd_publish_prepare(tree, &prep), 0);
    CHECK_EQ_INT(
        osse_cmd_publish_workflow(w->e, w->plat, prep, OSSE_PUBLISH_API, &out, &status, &f), 0);
    if (f.rc)
        fprintf(stderr, "  publish: %s\n", f.message);
    osse_fail_clear(&f);
    osse_publish_prep_free(prep);
    json_decref(out);
    CHECK_EQ_INT(settle(w), 1);
}

/* Nothing below them calls timers.c or linkage.c: a deadline is scheduled
 * because timers heard StepOpened (its SLA flag), and a lookup begins
 * because linkage heard StepOpened of a linkage step. A task with a 1-hour
 * SLA that is deemed approved on a breach completes when the test clock
 * passes it; a lookup that cannot be made (the agency has no lookup_url)
 * rejects its request at once, after the StepOpened that started it. The
 * live engine has its five reactors (audit, notify, timers, linkage,
 * files); a replay engine none (it sends, calls and schedules nothing). */
static void reactors(world_t *w)
{
    CHECK_EQ_INT(w->e->nreactors, 5);
    publish(w, json_pack("{s:s,s:s,s:{s:{s:s}},s:{s:{s:s,s:s,s:s,s:s}}}", "id", "silent", "title",
                         "Silent", "form", "name", "type", "string", "steps", "intake", "kind",
                         "task", "agency", AG[0], "sla", "PT1H", "on_breach", "approve"));
    publish(w, json_pack("{s:s,s:s,s:{s:{s:s}},s:{s:{s:s,s:s,s:{s:s}}}}", "id", "looked", "title",
                         "Looked", "form", "name", "type", "string", "steps", "who", "kind",
                         "linkage", "agency", AG[1], "input", "name", "form.name"));
    char *silent = submit_to(w, "silent"), *looked = submit_to(w, "looked");
    EXPECT(w, silent, "in_progress", "intake=open");
    EXPECT(w, looked, "rejected", "who=failed");

    json_t *out = NULL, *body = json_pack("{s:s}", "advance", "PT2H");
    osse_fail_t f = {0};
    osse_scan_t *scan = NULL;
    CHECK_EQ_INT(osse_cmd_test_clock(w->e, w->plat, body, &out, &scan, &f), 0);
    CHECK(scan == NULL); /* no expiry on disk: a replay-started engine holds them all */
    json_decref(body);
    json_decref(out);
    CHECK_EQ_INT(settle(w), 1);
    EXPECT(w, silent, "completed", "intake=approved");

    /* The looked-up request's log: opened, failed, rejected, in that order. */
    uint64_t *seqs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(osse_q_request_seqs(w->e, w->plat, looked, &seqs, &n, &f), 0);
    json_t *evs = NULL;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_engine_read_events(w->e, seqs, 0, n, false, &evs, &err), 0);
    char types[256] = "";
    size_t i, k = 0;
    json_t *ev;
    json_array_foreach(evs, i, ev) k += (size_t)snprintf(
        types + k, sizeof types - k, "%s ", json_string_value(json_object_get(ev, "type")));
    CHECK_EQ_STR(types, "RequestSubmitted StepOpened LinkageFailed RequestRejected ");
    json_decref(evs);
    free(seqs);

    /* A replay engine (osse replay, an audit) has none. */
    osse_engine_t *r = NULL;
    CHECK_EQ_INT(osse_engine_open_replay(&r), 0);
    CHECK_EQ_INT(r->nreactors, 0);
    osse_engine_close(r);
    free(silent);
    free(looked);
}

/* More request keys than one sodium_malloc each would allow (the kernel's
 * vm.max_map_count, 65530 mappings at three or four a key: the bench's
 * server answered "the request's key cannot be made" after some 12k
 * submissions, this process fails before 70k): each is made, kept and its
 * own. */
static void many_keys(world_t *w)
{
    enum { N = 70000 };
    for (int i = 0; i < N; i++) {
        char id[16];
        uint8_t wrapped[OSSE_WRAPPED_BYTES];
        snprintf(id, sizeof id, "r-k%05d", i);
        CHECK_EQ_INT(osse__pii_key_new(w->e, id, wrapped), 0);
    }
    const uint8_t *a = osse__pii_key(w->e, "r-k00000"), *b = osse__pii_key(w->e, "r-k69999");
    CHECK(a && b && a != b && memcmp(a, b, OSSE_KEY_BYTES) != 0);
    char *rid = submit(w); /* and a submission after them */
    CHECK(osse__pii_key(w->e, rid) != NULL);
    free(rid);
}

static void test_many_keys(void)
{
    in_world(many_keys);
}

/* An upload as the server runs it (store on this thread, not the pool). */
static char *upload(world_t *w, const char *bytes, size_t n)
{
    osse_file_up_t *u = NULL;
    osse_fail_t f = {0};
    json_t *out = NULL;
    osse_slice_t ct = {"application/pdf", 15}, name = {"plan.pdf", 8}, b = {bytes, n};
    CHECK_EQ_INT(osse_file_upload_begin(w->e, w->portal, ct, name, b, &u, &f), 0);
    osse_file_upload_store(u);
    CHECK_EQ_INT(osse_file_upload_end(w->e, u, &out, &f), 0);
    osse_file_upload_free(u);
    /* The answer holds the name as stored: sealed. */
    CHECK(osse__pii_sealed(json_object_get(out, "name")));
    char *id = strdup(json_string_value(json_object_get(out, "id")) ?: "");
    json_decref(out);
    osse_fail_clear(&f);
    CHECK_EQ_INT(settle(w), 1);
    return id;
}

/* q_file's outcome for the portal; on 0 the bytes read match want. */
static int read_file(world_t *w, const char *id, const char *want, size_t n, const char **code)
{
    osse_file_get_t *g = NULL;
    osse_fail_t f = {0};
    int rc = osse_q_file(w->e, w->portal, id, &g, &f);
    *code = f.code;
    if (!rc) {
        char *bytes = NULL;
        size_t len = 0;
        osse_file_get_load(g);
        CHECK_EQ_INT(osse_file_get_result(g, &bytes, &len, &f), 0);
        CHECK(len == n && bytes && memcmp(bytes, want, n) == 0);
        free(bytes);
    }
    osse_file_get_free(g);
    osse_fail_clear(&f);
    return rc;
}

static void file_keys(world_t *w)
{
    /* Three chunks and a bit: 64 KiB each. */
    size_t n = 3 * 65536 + 7;
    char *bytes = malloc(n);
    for (size_t i = 0; i < n; i++)
        bytes[i] = (char)(i * 31 + 7);
    char *id = upload(w, bytes, n);
    const char *code = NULL;
    CHECK_EQ_INT(read_file(w, id, bytes, n, &code), 0);
    CHECK(osse__pii_key(w->e, id) != NULL);
    /* A reopen keeps the file's key (a file's, not a stale one). */
    close_engine(w);
    CHECK_EQ_INT(open_engine(w, OSSE_LOG_FAULT_NONE, 0), 0);
    CHECK_EQ_INT(read_file(w, id, bytes, n, &code), 0);
    /* Its key dropped: the record stays, the file is gone. */
    osse__files_forget_key(w->e, id);
    CHECK(osse__pii_key(w->e, id) == NULL);
    CHECK_EQ_INT(read_file(w, id, bytes, n, &code), OSSE_EGONE);
    CHECK_EQ_STR(code ? code : "", "gone");
    free(id);
    free(bytes);
}

static void test_file_keys(void)
{
    in_world(file_keys);
}

static void test_reactors(void)
{
    in_world(reactors);
}

/* ---- the reserve of request keys (pii.c) ---- */

/* Runs the loop until no refill of the reserve is on the pool. */
static void refilled(world_t *w)
{
    for (int i = 0; i < 100000 && w->e->reserve.refill; i++)
        uv_run(&w->loop, UV_RUN_ONCE);
    CHECK(!w->e->reserve.refill);
}

/* A reserve of 8: a submission takes its top key (the key in e->keys, no
 * key in the batch); half taken, it is refilled; a failed refill leaves it
 * empty and submissions make their keys with their batch until the retry
 * time; an id a request already has is skipped; a stop with a refill on
 * the pool drops it, and the next start removes every key without events
 * while the requests keep theirs. */
static void key_reserve(world_t *w)
{
    osse_key_reserve_t *kr = &w->e->reserve;
    refilled(w);
    CHECK_EQ_INT(kr->size, 8);
    CHECK_EQ_INT(kr->n, 8);
    char top[OSSE__RID_SIZE];
    memcpy(top, kr->ids[7], sizeof top);
    CHECK_EQ_INT(strlen(top), 22);
    CHECK(strncmp(top, "r-", 2) == 0);
    char *first = submit(w);
    CHECK_EQ_STR(first, top);
    CHECK(osse__pii_key(w->e, first) != NULL);
    CHECK_EQ_INT(kr->n, 7);
    CHECK_EQ_INT(kr->taken, 1);
    CHECK_EQ_INT(kr->misses, 0);

    /* Down to half: a refill fills it up again. */
    for (int i = 0; i < 3; i++)
        free(submit(w));
    refilled(w);
    CHECK_EQ_INT(kr->n, 8);

    /* A failed refill: none again before retry_at; the submissions go on
     * with their keys in their batches, durable all the same. */
    kr->fail_next = true;
    for (int i = 0; i < 4; i++)
        free(submit(w));
    refilled(w);
    CHECK_EQ_INT(kr->failures, 1);
    CHECK_EQ_INT(kr->n, 4);
    CHECK(kr->retry_at > uv_now(&w->loop));
    CHECK_EQ_INT(kr->backoff, 1000);
    kr->retry_at = UINT64_MAX; /* a slow machine must not reach it meanwhile */
    char *missed[6];
    for (int i = 0; i < 6; i++) {
        missed[i] = submit(w);
        CHECK(!kr->refill);
        CHECK(osse__pii_key(w->e, missed[i]) != NULL);
    }
    CHECK_EQ_INT(kr->n, 0);
    CHECK_EQ_INT(kr->misses, 2);
    /* The retry time is past: the next submission misses and queues one. */
    kr->retry_at = 0;
    char *retried = submit(w);
    CHECK_EQ_INT(kr->misses, 3);
    refilled(w);
    CHECK_EQ_INT(kr->n, 8);
    CHECK_EQ_INT(kr->backoff, 0);

    /* An id a request already has is skipped (and its key wiped). */
    snprintf(kr->ids[7], sizeof kr->ids[7], "%s", first);
    char *next = submit(w);
    CHECK(strcmp(next, first) != 0);
    CHECK_EQ_INT(kr->n, 6);

    /* Keys taken but never used by a request, and a refill on the pool at
     * the stop: the next start removes all of them. */
    char taken[3][OSSE__RID_SIZE], done[OSSE__RID_SIZE];
    for (int i = 0; i < 3; i++)
        CHECK(osse__pii_key_reserved(w->e, taken[i], done));
    CHECK(kr->refill != NULL); /* at 3 of 8 */
    close_engine(w);
    CHECK_EQ_INT(open_engine(w, OSSE_LOG_FAULT_NONE, 0), 0);
    kr = &w->e->reserve;
    for (int i = 0; i < 3; i++)
        CHECK(osse__pii_key(w->e, taken[i]) == NULL);
    const char *kept[] = {first, retried, next, missed[0], missed[5]};
    for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
        CHECK(osse__pii_key(w->e, kept[i]) != NULL);
    CHECK_EQ_INT(w->e->keys.len, 16); /* the 16 requests', nothing else */
    refilled(w);
    CHECK_EQ_INT(kr->n, 8);
    free(first);
    free(retried);
    free(next);
    for (int i = 0; i < 6; i++)
        free(missed[i]);
}

static void test_key_reserve(void)
{
    in_world_reserve(key_reserve, 8);
}

/* A submission's tracking code is its first seq permuted
 * (engine/trackcode.h): with an id from the reserve or without one, the
 * code is osse_trackcode of the request's first seq under the engine's key,
 * its check character right, and no two alike. */
static void reserve_codes(world_t *w)
{
    osse_key_reserve_t *kr = &w->e->reserve;
    refilled(w);
    CHECK_EQ_INT(kr->n, 8);
    CHECK_EQ_INT(w->e->code_bits, OSSE_CODE_BITS);
    char *ids[12];
    uint64_t misses = 0;
    for (int i = 0; i < 12; i++) {
        if (i == 9) {
            refilled(w); /* none on the pool to join later */
            misses = kr->misses;
            kr->retry_at = UINT64_MAX; /* empty, and no refill to come */
            char id[OSSE__RID_SIZE], done[OSSE__RID_SIZE];
            while (kr->n)
                CHECK(osse__pii_key_reserved(w->e, id, done));
        }
        ids[i] = submit(w);
        const osse_request_t *r = osse__request(w->e, ids[i]);
        char want[OSSE__CODE_SIZE];
        CHECK_EQ_INT(osse_trackcode(w->e->code_key, w->e->code_bits, r->seqs[0], want), 0);
        CHECK_EQ_STR(r->tracking_code, want);
        CHECK(osse_trackcode_ok(r->tracking_code));
        for (int k = 0; k < i; k++)
            CHECK(strcmp(osse__request(w->e, ids[k])->tracking_code, r->tracking_code) != 0);
    }
    CHECK_EQ_INT(kr->misses, misses + 3); /* the last three made their own */
    for (int i = 0; i < 12; i++)
        free(ids[i]);
}

static void test_reserve_codes(void)
{
    in_world_reserve(reserve_codes, 8);
}

/* A refill's pending record (storage/log.h) is one, named by its first
 * id: the take of its last entry names it for the batch to delete, none
 * before; with one of its entries dropped (its id on a request in memory at
 * the take) none names it, so the next start still sees the dropped id's
 * key. */
static void reserve_records(world_t *w)
{
    osse_key_reserve_t *kr = &w->e->reserve;
    refilled(w);
    CHECK_EQ_INT(kr->n, 8);
    kr->retry_at = UINT64_MAX; /* no refill joins meanwhile */
    char first[OSSE__RID_SIZE], id[OSSE__RID_SIZE], done[OSSE__RID_SIZE];
    memcpy(first, kr->ids[0], sizeof first);
    for (int i = 0; i < 7; i++) {
        CHECK(osse__pii_key_reserved(w->e, id, done));
        CHECK_EQ_STR(done, "");
    }
    CHECK(osse__pii_key_reserved(w->e, id, done));
    CHECK_EQ_STR(id, first);
    CHECK_EQ_STR(done, first);

    /* Another fill, one of its entries clashing at the take. */
    kr->retry_at = 0;
    CHECK(!osse__pii_key_reserved(w->e, id, done)); /* empty: queues a refill */
    refilled(w);
    CHECK_EQ_INT(kr->n, 8);
    kr->retry_at = UINT64_MAX;
    char *rid = submit(w);
    size_t n0 = kr->n;
    snprintf(kr->ids[6], sizeof kr->ids[6], "%s", rid);
    while (kr->n) {
        CHECK(osse__pii_key_reserved(w->e, id, done) || !kr->n);
        CHECK_EQ_STR(done, "");
    }
    CHECK_EQ_INT(n0, 7);
    free(rid);
}

static void test_reserve_records(void)
{
    in_world_reserve(reserve_records, 8);
}

/* n requests submitted and withdrawn (ended), in two batches: their first
 * slot. */
static size_t ended_requests(world_t *w, size_t n)
{
    size_t first = w->e->nreqs;
    char **ids = calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        json_t *out = NULL,
               *body = json_pack("{s:s,s:{s:s}}", "workflow", "flow", "form", "name", "Somchai");
        osse_fail_t f = {0};
        CHECK_EQ_INT(osse_cmd_submit(w->e, w->portal, body, &out, &f), 0);
        ids[i] = strdup(json_string_value(json_object_get(out, "id")) ?: "");
        json_decref(body);
        json_decref(out);
        osse_fail_clear(&f);
    }
    CHECK_EQ_INT(settle(w), 1);
    for (size_t i = 0; i < n; i++) {
        json_t *out = NULL, *body = json_pack("{s:s}", "reason", "moved away");
        osse_fail_t f = {0};
        CHECK_EQ_INT(osse_cmd_withdraw(w->e, w->portal, ids[i], body, &out, &f), 0);
        json_decref(body);
        json_decref(out);
        osse_fail_clear(&f);
        free(ids[i]);
    }
    free(ids);
    CHECK_EQ_INT(settle(w), 1);
    return first;
}

/* docs/design.md "Slots": a chunk of slots whose requests all left memory
 * is freed once every slot of it was given, and no slot is given twice. */
static void slots(world_t *w)
{
    const size_t chunk = OSSE__SLOT_CHUNK;
    CHECK_EQ_INT(w->e->nreqs, 0);
    size_t first = ended_requests(w, chunk + 100);
    CHECK_EQ_INT(first, 0);
    /* Every one ended and durable: none stays (--request-cache 0). */
    CHECK_EQ_INT(w->e->lru.n + w->e->open.n, 0);
    CHECK(w->e->slots[0] == NULL);
    CHECK(w->e->slots[1] != NULL && w->e->slots[1]->live == 0); /* not all given yet */
    CHECK_EQ_INT(w->e->slots_freed, 1);
    CHECK(osse__slot(w->e, 0) == NULL && osse__slot(w->e, chunk) == NULL);
    /* One open request, then the second chunk filled and emptied around it. */
    char *open = submit(w);
    size_t at = w->e->nreqs - 1;
    CHECK_EQ_INT(at, chunk + 100);
    CHECK_EQ_INT(ended_requests(w, chunk), chunk + 101);
    CHECK(w->e->slots[1] != NULL && w->e->slots[1]->live == 1);
    CHECK(osse__slot(w->e, at) != NULL && strcmp(osse__slot(w->e, at)->id, open) == 0);
    CHECK_EQ_INT(w->e->slots_freed, 1);
    /* It ends: its chunk goes too. */
    json_t *out = NULL, *body = json_pack("{s:s}", "reason", "moved away");
    osse_fail_t f = {0};
    CHECK_EQ_INT(osse_cmd_withdraw(w->e, w->portal, open, body, &out, &f), 0);
    json_decref(body);
    json_decref(out);
    osse_fail_clear(&f);
    CHECK_EQ_INT(settle(w), 1);
    CHECK(w->e->slots[1] == NULL && w->e->slots[2] != NULL);
    CHECK_EQ_INT(w->e->slots_freed, 2);
    /* A reopen starts from the records: no request open, nothing held. */
    close_engine(w);
    CHECK_EQ_INT(open_engine(w, OSSE_LOG_FAULT_NONE, 0), 0);
    CHECK_EQ_INT(w->e->open.n, 0);
    free(open);
}

static void test_slots(void)
{
    world_t w;
    if (setup(&w, 0)) {
        close_engine(&w);
        w.request_cache = OSSE_REQUEST_CACHE_NONE;
        CHECK_EQ_INT(open_engine(&w, OSSE_LOG_FAULT_NONE, 0), 0);
        slots(&w);
    } else {
        CHECK(!"setup");
    }
    teardown(&w);
}

int main(void)
{
    RUN(test_step_table);
    RUN(test_request_table);
    RUN(test_fan_out_in);
    RUN(test_reject);
    RUN(test_return_info_withdraw);
    RUN(test_damaged_records);
    RUN(test_reactors);
    RUN(test_many_keys);
    RUN(test_file_keys);
    RUN(test_key_reserve);
    RUN(test_reserve_codes);
    RUN(test_reserve_records);
    RUN(test_slots);
    RUN(test_stop_signs_all);
    RUN(test_failed_write);
    RUN(test_replay_refuses);
    return TEST_EXIT();
}
