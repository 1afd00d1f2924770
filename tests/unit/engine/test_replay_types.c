/* test_replay_types.c: a log whose event type is damaged is refused where
 * it is replayed (SPEC §5: "a type not in it is a damaged log"): by
 * osse_engine_replay_event (`osse replay`) and by osse_engine_open (the
 * replay at start of `osse serve`), with OSSE_ECORRUPT and a message that
 * names the event's seq and the type as stored. A type stored in a stream
 * of another kind is refused the same way. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/alloc.h"
#include "engine/engine.h"
#include "storage/event.h"
#include "storage/log.h"
#include "tests/test.h"

#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The encoding of a valid event of type t, with its stored type name then
 * replaced by name (a msgpack fixstr): the bytes a damaged log holds. */
static void forge(uint64_t seq, const char *stream, uint32_t version, osse_event_type_t t,
                  json_t *data, const char *name, osse_buf_t *out)
{
    osse_event_t ev = {.seq = seq,
                       .stream = (char *)stream,
                       .version = version,
                       .type = t,
                       .at = 1764554400000,
                       .actor_kind = "system",
                       .actor_id = "osse",
                       .data = data};
    osse_buf_t b;
    osse_buf_init(&b, 0);
    osse_buf_init(out, 0);
    CHECK_EQ_INT(osse_event_encode(&ev, &b), 0);
    json_decref(data);
    const char *have = osse_event_type_name(t);
    size_t hl = strlen(have), nl = name ? strlen(name) : hl;
    for (size_t i = 0; i + 1 + hl <= b.len; i++)
        if ((uint8_t)b.ptr[i] == (0xa0 | hl) && memcmp(b.ptr + i + 1, have, hl) == 0) {
            uint8_t tag = (uint8_t)(0xa0 | nl);
            CHECK(osse_buf_append(out, b.ptr, i) == 0 && osse_buf_append(out, &tag, 1) == 0 &&
                  osse_buf_append(out, name ? name : have, nl) == 0 &&
                  osse_buf_append(out, b.ptr + i + 1 + hl, b.len - i - 1 - hl) == 0);
            break;
        }
    CHECK(out->len > 0);
    osse_buf_close(&b);
}

static void principal(osse_buf_t *out)
{
    forge(1, "principal/p-1", 1, OSSE_EV_PrincipalCreated,
          json_pack("{s:s,s:s,s:s,s:s}", "id", "p-1", "role", "platform", "name", "admin",
                    "token_hash", HASH),
          NULL, out);
}

static void expect_refused(const char *stream, osse_event_type_t t, const char *name,
                           const char *want1, const char *want2)
{
    osse_engine_t *e = NULL;
    osse_buf_t one, two;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_engine_open_replay(&e), 0);
    principal(&one);
    CHECK_EQ_INT(osse_engine_replay_event(e, 1, one.ptr, one.len, &err), 0);
    forge(2, stream, 1, t, json_pack("{s:s}", "step", "review"), name, &two);
    CHECK_EQ_INT(osse_engine_replay_event(e, 2, two.ptr, two.len, &err), OSSE_ECORRUPT);
    if (!strstr(err.msg, want1) || !strstr(err.msg, want2))
        fprintf(stderr, "  message: %s\n", err.msg);
    CHECK(strstr(err.msg, "event 2 ") != NULL);
    CHECK(strstr(err.msg, want1) != NULL);
    CHECK(strstr(err.msg, want2) != NULL);
    osse_buf_close(&one);
    osse_buf_close(&two);
    osse_engine_close(e);
}

/* `osse replay` (from a data folder or an export) feeds each event here. */
static void test_replay_event(void)
{
    expect_refused("request/r-1", OSSE_EV_StepOpened, "StepOpned", "unknown event type",
                   "\"StepOpned\"");
    expect_refused("request/r-1", OSSE_EV_StepOpened, "Event", "unknown event type", "\"Event\"");
    /* Known types, wrong streams. */
    expect_refused("request/r-1", OSSE_EV_StepOpened, "WorkflowPublished", "WorkflowPublished",
                   "request/r-1");
    expect_refused("principal/p-2", OSSE_EV_PrincipalRevoked, "StepOpened", "StepOpened",
                   "principal/p-2");
    expect_refused("delivery/r-1", OSSE_EV_NotificationDelivered, "RequestCompleted",
                   "RequestCompleted", "delivery/r-1");
}

static void on_commit(void *ud, int status)
{
    CHECK_EQ_INT(status, 0);
    *(int *)ud = 1;
}

/* Writes the two events straight into the RocksDB log of dir/log, as a
 * damaged disk or a hand-edited folder would hold them. */
static void write_log(const char *dir, const char *name)
{
    char db[512];
    snprintf(db, sizeof db, "%s/log", dir);
    osse_log_t *log = NULL;
    osse_err_t err = {0};
    uv_loop_t loop;
    CHECK_EQ_INT(osse_log_open(db, &log, &err), 0);
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    osse_batch_t *b = osse_batch_new();
    osse_buf_t one, two;
    principal(&one);
    forge(2, "principal/p-1", 2, OSSE_EV_PrincipalRevoked, json_pack("{s:s}", "id", "p-1"), name,
          &two);
    CHECK_EQ_INT(osse_batch_event(b, log, 1, "principal/p-1", 1, one.ptr, one.len), 0);
    CHECK_EQ_INT(osse_batch_event(b, log, 2, "principal/p-1", 2, two.ptr, two.len), 0);
    int done = 0;
    osse_log_commit(log, b, on_commit, &done);
    while (!done)
        uv_run(&loop, UV_RUN_ONCE);
    osse_log_stop(log);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_log_close(log);
    osse_buf_close(&one);
    osse_buf_close(&two);
}

static int open_folder(const char *dir, osse_err_t *err)
{
    uv_loop_t loop;
    osse_engine_t *e = NULL;
    osse_engine_opts_t opts = {.data_dir = dir, .test_clock = true, .offline = true};
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    int rc = osse_engine_open(&opts, &loop, &e, err);
    if (rc == 0) {
        osse_engine_stop(e);
        uv_run(&loop, UV_RUN_DEFAULT);
        osse_engine_close(e);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    return rc;
}

/* The replay at start: the server does not start on a damaged type. */
static void test_open(void)
{
    char tmpl[] = "/tmp/osse-replay-types-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (!dir)
        return;
    osse_err_t err = {0};
    write_log(dir, "PrincipalRevokd");
    CHECK_EQ_INT(open_folder(dir, &err), OSSE_ECORRUPT);
    if (!strstr(err.msg, "event 2 ") || !strstr(err.msg, "\"PrincipalRevokd\""))
        fprintf(stderr, "  message: %s\n", err.msg);
    CHECK(strstr(err.msg, "event 2 ") != NULL);
    CHECK(strstr(err.msg, "unknown event type \"PrincipalRevokd\"") != NULL);

    /* The same folder with the type spelled right opens. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/log", dir);
    CHECK_EQ_INT(system(cmd), 0);
    write_log(dir, "PrincipalRevoked");
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(open_folder(dir, &err), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_replay_event);
    RUN(test_open);
    return TEST_EXIT();
}
