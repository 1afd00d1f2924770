/* server.c: the HTTP API: routes, authentication, bodies, idempotency.
 *
 * One table lists every route with its method, the roles allowed (none =
 * public) and its handler; the order of checks is the same for all: route
 * (404/405; a CORS preflight is answered here, from the table, for every
 * route: no row of its own), token (401/403), Idempotency-Key, a nearly full disk for a
 * state-changing route (503), body (400), then the engine's own checks
 * (422/404/403/409). Every answer, reads included, is held until every event
 * emitted before it is durable (osse_engine_hold): a client never
 * sees state that a crash could take back. Reads of stored events (a
 * request's events, the log) run on the libuv pool, never the loop thread;
 * so do the parse and the check of a published definition, one at a time,
 * and the hash of an upload's body for its Idempotency-Key. The pages under
 * /ui/ come from memory, read at start (api/ui.c). */
#include "api/server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/ui.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/hist.h"
#include "api/docs.h"
#include "common/log.h"
#include "workflows/workflow.h"

#define MAX_SEGS 8
#define ROLE(x) (1u << OSSE_ROLE_##x)
#define ANY_ROLE (ROLE(PLATFORM) | ROLE(PORTAL) | ROLE(AGENCY) | ROLE(AUDITOR) | ROLE(PAYMENT))
#define PUBLIC 0u

struct osse_server_s {
    uv_loop_t *loop;
    osse_engine_t *eng;
    osse_http_server_t *http;
    const osse_ui_t *ui; /* the pages (borrowed), NULL for none */
    bool test_clock;
    osse_hist_t latency; /* from a complete request to its answer */
    /* Calls on the libuv pool: their done callbacks still read the server,
     * so a server closed meanwhile is freed by the last of them. */
    size_t working;
    bool closed;
    /* Publishes go to the pool one at a time, in the order they came, so
     * that two versions sent one after the other are applied in that order
     * (a pipelined client's second one must not become the older). */
    struct call_s *pub_head, *pub_tail;
    bool pub_busy;
};

/* One request being handled. */
#define BODY_MSG_MAX sizeof((osse_err_t *)0)->msg

typedef struct call_s {
    osse_server_t *srv;
    osse_http_req_t *req;
    const osse_principal_t *p;
    char *seg[MAX_SEGS];
    int nseg;
    json_t *query;
    json_t *body;
    osse_idem_state_t idem; /* armed: the answer is remembered (Idempotency-Key) */
    /* the answer */
    int status;
    char *out;
    size_t outlen;
    const char *ctype;
    const char *extra;
    char allow[160]; /* this call's own 405 Allow header: answers are sent later */
    /* pool work */
    uv_work_t work;
    uint64_t *seqs; /* a request's events: these nseqs; the log (limit set): nseqs after `after` */
    size_t nseqs;
    uint64_t after, limit, next;
    bool consistency; /* proofs: after..next is from..to, else seq..size */
    int work_rc;
    /* a definition published: prepared on the pool, or why its body failed */
    osse_publish_prep_t *prep;
    struct call_s *pub_next; /* the next publish waiting for the pool */
    int body_status;         /* 0, or 400/422 with body_code and body_msg */
    const char *body_code;
    /* Made (BODY_MSG_MAX bytes) only by a publish on the pool: inline, it
     * made every call too big for malloc's per-thread cache. */
    char *body_msg;
    uint64_t t0;
    const char *route; /* the matched pattern, for the log; NULL before a match */
    const struct route_s *rt;
    /* An upload's body hashed on the pool for its Idempotency-Key */
    char body_hash[65];
    /* files: an upload being stored, a file being read, its ETag header */
    osse_file_up_t *up;
    osse_file_get_t *fget;
    char file_hdr[160];
    osse_scan_t *scan;   /* a read of the indexes on disk, on the pool */
    osse_readback_t *rb; /* the requests the call names, read back from disk first */
} call_t;

/* glibc's per-thread cache takes blocks of up to 1032 bytes; a call is made
 * and freed per request. */
_Static_assert(sizeof(call_t) <= 1024, "a call_t fits malloc's tcache");

typedef void (*handler_fn)(call_t *c);

/* What a route takes as a body (SPEC §11): a body of another media type is
 * 415 before anything reads it. */
typedef enum {
    BODY_NONE,       /* no body is read (GET, DELETE): none is checked */
    BODY_JSON,       /* application/json, parsed before the handler */
    BODY_DEFINITION, /* application/json or a YAML type; the handler parses it */
    BODY_RAW,        /* any type, the bytes as they are (POST /v1/files) */
} body_kind_t;

typedef struct route_s {
    const char *method;
    const char *pattern; /* segments; ":x" matches one segment */
    unsigned roles;
    handler_fn fn;
    body_kind_t body;
    bool test_only;
    /* What the body must hold, said when it is empty (422); NULL: an empty
     * body stands for {} (every key optional, or no body at all). */
    const char *wants;
} route_t;

/* --- answers --- */

#define STOPPING                                                                                   \
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"the server is stopping\","                 \
    "\"details\":[]}}"

#define STORAGE_FAILED                                                                             \
    "{\"error\":{\"code\":\"storage_failed\",\"message\":\"the log cannot be written: "            \
    "the server is stopping; the outcome of this call is unknown\",\"details\":[]}}"

static void call_free(call_t *c)
{
    for (int i = 0; i < c->nseg; i++)
        free(c->seg[i]);
    json_decref(c->query);
    json_decref(c->body);
    free(c->body_msg);
    free(c->out);
    free(c->seqs);
    osse_publish_prep_free(c->prep);
    osse_file_upload_free(c->up);
    osse_file_get_free(c->fget);
    osse_scan_free(c->scan);
    osse_readback_free(c->rb);
    free(c);
}

static void on_durable(void *ud, int status)
{
    call_t *c = ud;
    if (status) {
        /* The log failed (docs/design.md, "A failed write"): this answer may
         * stand on events that are not durable, so it never goes out. The
         * server is closed by then (api/main.c), so the HTTP layer only
         * frees the request; were it open, the client would get a 503. */
        osse_http_respond(c->req, 503, "application/json", NULL, STORAGE_FAILED,
                          strlen(STORAGE_FAILED));
        call_free(c);
        return;
    }
    double secs = (double)(uv_hrtime() - c->t0) / 1e9;
    osse_hist_observe(&c->srv->latency, secs);
    /* One line per call: reads at debug. Never the path's raw text, the
     * query, the body or the token. */
    bool read = strcmp(c->req->method, "GET") == 0 || strcmp(c->req->method, "HEAD") == 0;
    osse_logf(c->status >= 500 ? OSSE_LEVEL_ERROR
              : read           ? OSSE_LEVEL_DEBUG
                               : OSSE_LEVEL_INFO,
              "call", "method=%s route=%s status=%d latency_ms=%.3f principal=%s", c->req->method,
              c->route ? c->route : "-", c->status, secs * 1e3, c->p ? c->p->id : "-");
    osse_http_respond_take(c->req, c->status, c->ctype, c->extra, c->out, c->outlen);
    c->out = NULL;
    call_free(c);
}

/* Holds the answer until it is durable, then sends it. */
static void finish(call_t *c, int status, char *body, size_t len, const char *ctype)
{
    c->status = status;
    c->out = body;
    c->outlen = len;
    c->ctype = ctype ? ctype : "application/json";
    osse_engine_idem_remember(c->srv->eng, &c->idem, status, body);
    /* Remembered as stored; sent as this caller may read it (SPEC §8). */
    size_t rlen = 0;
    char *shown = ctype ? NULL : osse_engine_render_answer(c->srv->eng, c->p, body, len, &rlen);
    if (shown) {
        free(c->out);
        c->out = shown;
        c->outlen = rlen;
    }
    osse_engine_hold(c->srv->eng, on_durable, c);
}

/* json_dumps grows its text from 16 bytes by doubling and then copies it;
 * an answer is mostly short: one dump into the stack, one copy. */
#define ANSWER_STACK 2048

static void reply_error(call_t *c, int status, const char *code, const char *message,
                        json_t *details);

static void reply_json(call_t *c, int status, json_t *o)
{
    char stack[ANSWER_STACK];
    size_t n = json_dumpb(o, stack, sizeof stack, JSON_COMPACT);
    if (!n) { /* a tree jansson cannot write (a bug): said, not sent empty */
        json_decref(o);
        reply_error(c, 500, "internal", "the answer has no JSON text", NULL);
        return;
    }
    char *s = osse_malloc(n + 1);
    if (n <= sizeof stack)
        memcpy(s, stack, n);
    else
        n = json_dumpb(o, s, n, JSON_COMPACT);
    s[n] = '\0';
    json_decref(o);
    finish(c, status, s, n, NULL);
}

static void reply_error(call_t *c, int status, const char *code, const char *message,
                        json_t *details)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:o}}", "error", "code", code, "message", message, "details",
                          details ? json_incref(details) : json_array());
    reply_json(c, status, o);
}

static void reply_fail(call_t *c, osse_fail_t *f)
{
    int status = f->rc == OSSE_EINVAL       ? 422
                 : f->rc == OSSE_ENOTFOUND  ? 404
                 : f->rc == OSSE_ECONFLICT  ? 409
                 : f->rc == OSSE_EFORBIDDEN ? 403
                 : f->rc == OSSE_EPARSE     ? 400
                 : f->rc == OSSE_ENOSPC     ? 503
                 : f->rc == OSSE_ETOOBIG    ? 413
                 : f->rc == OSSE_EGONE      ? 410
                                            : 500;
    /* A full disk is an operator's to fix: minutes, not milliseconds. */
    if (status == 503)
        c->extra = "Retry-After: 10\r\n";
    reply_error(c, status, f->code ? f->code : "internal", f->message, f->details);
    osse_fail_clear(f);
}

/* An engine call's outcome: rc 0 with out, or the failure. */
static void reply(call_t *c, int rc, int status, json_t *out, osse_fail_t *f)
{
    if (rc)
        reply_fail(c, f);
    else
        reply_json(c, status, out);
}

/* --- parsing helpers --- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes [p, p+n) into a new string; NULL when malformed or it
 * would hold a NUL byte. */
static char *pct_decode(const char *p, size_t n, bool plus_space)
{
    char *o = osse_malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            if (i + 2 >= n) {
                free(o);
                return NULL;
            }
            int h = hexval((unsigned char)p[i + 1]), l = hexval((unsigned char)p[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(o);
                return NULL;
            }
            o[k++] = (char)(h * 16 + l);
            i += 2;
        } else if (plus_space && p[i] == '+') {
            o[k++] = ' ';
        } else {
            o[k++] = p[i];
        }
    }
    o[k] = '\0';
    return o;
}

static int split_path(call_t *c)
{
    osse_slice_t path = c->req->path;
    if (path.len == 0 || path.ptr[0] != '/')
        return -1;
    size_t i = 1;
    while (i <= path.len) {
        size_t j = i;
        while (j < path.len && path.ptr[j] != '/')
            j++;
        if (j == i && j == path.len && c->nseg > 0)
            break; /* a trailing slash */
        if (c->nseg == MAX_SEGS)
            return -1;
        char *s = pct_decode(path.ptr + i, j - i, false);
        if (!s)
            return -1;
        c->seg[c->nseg++] = s;
        i = j + 1;
    }
    return 0;
}

static json_t *parse_query(osse_slice_t q)
{
    json_t *o = json_object();
    size_t i = 0;
    while (i < q.len) {
        size_t j = i;
        while (j < q.len && q.ptr[j] != '&')
            j++;
        size_t eq = i;
        while (eq < j && q.ptr[eq] != '=')
            eq++;
        if (j > i) {
            char *k = pct_decode(q.ptr + i, eq - i, true);
            char *v = eq < j ? pct_decode(q.ptr + eq + 1, j - eq - 1, true) : osse_strdup("");
            /* A key or value that is not UTF-8 is dropped. */
            if (k && v)
                json_object_set_new(o, k, json_string(v));
            free(k);
            free(v);
        }
        i = j + 1;
    }
    return o;
}

/* jansson accepts 2048 levels; osse's own limit is checked before parsing. */
bool osse_server_too_deep(const void *p, size_t len)
{
    const char *s = p;
    int depth = 0;
    bool str = false, esc = false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (str) {
            if (esc)
                esc = false;
            else if (ch == '\\')
                esc = true;
            else if (ch == '"')
                str = false;
        } else if (ch == '"') {
            str = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > OSSE_JSON_MAX_DEPTH)
                return true;
        } else if (ch == '}' || ch == ']') {
            depth--;
        }
    }
    return false;
}

/* A body of nothing but white space is no body. */
static bool blank(osse_slice_t b)
{
    size_t i = 0;
    while (i < b.len && isspace((unsigned char)b.ptr[i]))
        i++;
    return i == b.len;
}

/* The media type of a Content-Type value, without its parameters
 * ("; charset=utf-8") and the white space around it. */
static osse_slice_t media_type(osse_slice_t ct)
{
    size_t a = 0, b = 0;
    while (b < ct.len && ct.ptr[b] != ';')
        b++;
    while (a < b && (ct.ptr[a] == ' ' || ct.ptr[a] == '\t'))
        a++;
    while (b > a && (ct.ptr[b - 1] == ' ' || ct.ptr[b - 1] == '\t'))
        b--;
    return (osse_slice_t){ct.ptr + a, b - a};
}

static bool media_is(osse_slice_t m, const char *name)
{
    return m.len == strlen(name) && strncasecmp(m.ptr, name, m.len) == 0;
}

/* Whether the request's body is of a type the route takes. An empty body
 * (or only white space) needs no type: routes whose keys are all optional
 * read it as {}, the others answer that it is empty. Type names are
 * case-insensitive (RFC 9110 8.3.1); a missing Content-Type is no type. */
static bool body_type_ok(body_kind_t kind, const osse_http_req_t *req)
{
    if (blank(req->body) || kind == BODY_RAW)
        return true;
    osse_slice_t m = media_type(req->content_type);
    if (media_is(m, "application/json"))
        return true;
    return kind == BODY_DEFINITION &&
           (media_is(m, "application/yaml") || media_is(m, "application/x-yaml") ||
            media_is(m, "text/yaml"));
}

/* Parses a JSON body into *out (an object; {} for a blank body), or says
 * why not: *status 400 or 422, a code and msg. Touches nothing shared, so
 * that it may run on the pool. */
static int load_json_body(osse_slice_t b, json_t **out, int *status, const char **code, char *msg,
                          size_t cap)
{
    *out = NULL;
    if (blank(b)) {
        *out = json_object();
        return 0;
    }
    if (osse_server_too_deep(b.ptr, b.len)) {
        *status = 400;
        *code = "invalid_json";
        snprintf(msg, cap, "the body nests deeper than %d levels", OSSE_JSON_MAX_DEPTH);
        return -1;
    }
    json_error_t jerr;
    *out = json_loadb(b.ptr, b.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out) {
        *status = 400;
        *code = "invalid_json";
        snprintf(msg, cap, "line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return -1;
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        *status = 422;
        *code = "invalid_request";
        snprintf(msg, cap, "the body must be a JSON object");
        return -1;
    }
    return 0;
}

static int parse_json_body(call_t *c)
{
    int status;
    const char *code;
    char msg[300];
    if (load_json_body(c->req->body, &c->body, &status, &code, msg, sizeof msg) == 0)
        return 0;
    reply_error(c, status, code, msg, NULL);
    return -1;
}

/* --- the libuv pool --- */

/* Every call sent to the pool goes through these two: a server closed while
 * calls are there (SIGTERM) stays allocated until the last comes back, and
 * such a call only frees itself: its connection is gone and the engine is
 * stopping, so nothing more may be decided. */
static void queue_work(call_t *c, uv_work_cb work, uv_after_work_cb done)
{
    c->work.data = c;
    c->srv->working++;
    int rc = uv_queue_work(c->srv->loop, &c->work, work, done);
    OSSE_PRE(rc == 0); /* only fails for a NULL callback */
    (void)rc;
}

/* True when the call was discarded: the server closed meanwhile. */
static bool work_back(call_t *c)
{
    osse_server_t *srv = c->srv;
    srv->working--;
    if (!srv->closed)
        return false;
    osse_http_respond(c->req, 503, "application/json", NULL, STOPPING, strlen(STOPPING));
    call_free(c);
    if (srv->working == 0)
        free(srv);
    return true;
}

/* --- handlers --- */

static void h_health(call_t *c)
{
    reply_json(c, 200, json_pack("{s:s}", "status", "ok"));
}

static void h_metrics(call_t *c)
{
    char *s;
    size_t n;
    osse_q_metrics(c->srv->eng, &s, &n);
    osse_buf_t b = {.ptr = s, .len = n, .cap = n + 1, .max = 0};
    osse_hist_render(&c->srv->latency, &b, "osse_http_request_seconds",
                     "Time from a complete HTTP request to its answer, durability included.");
    s = osse_buf_take(&b, &n);
    finish(c, 200, s, n, "text/plain; version=0.0.4");
}

/* A definition is parsed, checked and compiled on the pool: 185 KB of the
 * largest allowed one, or 1 MiB refused, held the loop for 20 to 120 ms.
 * The engine's half there (osse_cmd_publish_prepare) reads no projection;
 * the references, the versions and the event are the loop's, in
 * publish_done. */
static void publish_work(uv_work_t *w)
{
    call_t *c = w->data;
    osse_err_t err = {0};
    json_t *tree = NULL;
    c->body_msg = osse_malloc(BODY_MSG_MAX);
    c->body_msg[0] = '\0';
    /* The route's body check let only JSON and the YAML types through. */
    if (media_is(media_type(c->req->content_type), "application/json")) {
        if (load_json_body(c->req->body, &tree, &c->body_status, &c->body_code, c->body_msg,
                           BODY_MSG_MAX))
            return;
    } else if (osse_wf_parse_text(c->req->body.ptr, c->req->body.len, &tree, &err)) {
        c->body_status = 400;
        c->body_code = "invalid_yaml";
        snprintf(c->body_msg, BODY_MSG_MAX, "%s", err.msg);
        return;
    }
    c->work_rc = osse_cmd_publish_prepare(tree, &c->prep);
}

/* The answer of a known Idempotency-Key (replayed, or the mismatch), or
 * false for a new one. body: the remembered answer (taken). */
static bool idem_answered(call_t *c, int rc, int status, char *body)
{
    if (rc == OSSE_IDEM_REPLAY) {
        c->extra = "Idempotent-Replayed: true\r\n";
        finish(c, status, body, strlen(body), NULL);
        return true;
    }
    if (rc == OSSE_IDEM_MISMATCH) {
        reply_error(c, 422, "idempotency_mismatch",
                    "this Idempotency-Key was used with another body", NULL);
        return true;
    }
    return false;
}

/* For a call decided after its arrival (after the pool, a name lookup):
 * answers it, and returns true, when its principal was revoked meanwhile
 * (401, as if it had been before) or a call with the same Idempotency-Key
 * was answered meanwhile (replayed or the mismatch). */
static bool answered_meanwhile(call_t *c)
{
    if (c->p->revoked) {
        c->extra = "WWW-Authenticate: Bearer\r\n";
        reply_error(c, 401, "unauthorized", "a valid bearer token is required", NULL);
        return true;
    }
    int ist = 0;
    char *ibody = NULL;
    int known = osse_engine_idem_recheck(c->srv->eng, &c->idem, &ist, &ibody);
    return idem_answered(c, known, ist, ibody);
}

static void publish_done(uv_work_t *w, int status)
{
    call_t *c = w->data;
    if (work_back(c))
        return;
    if (status || c->work_rc) {
        reply_error(c, 500, "internal", "out of memory", NULL);
        return;
    }
    if (c->body_status) {
        reply_error(c, c->body_status, c->body_code, c->body_msg, NULL);
        return;
    }
    if (answered_meanwhile(c))
        return;
    osse_fail_t f = {0};
    json_t *out = NULL;
    int st = 201;
    int rc = osse_cmd_publish_workflow(c->srv->eng, c->p, c->prep, OSSE_PUBLISH_API, &out, &st, &f);
    reply(c, rc, st, out, &f);
}

static void publish_back(uv_work_t *w, int status);

static void publish_next(osse_server_t *srv)
{
    call_t *c = srv->pub_head;
    srv->pub_busy = c != NULL;
    if (!c)
        return;
    srv->pub_head = c->pub_next;
    if (!srv->pub_head)
        srv->pub_tail = NULL;
    queue_work(c, publish_work, publish_back);
}

static void publish_back(uv_work_t *w, int status)
{
    call_t *c = w->data;
    osse_server_t *srv = c->srv;
    bool closed = srv->closed;
    publish_done(w, status); /* may free c, and srv when closed */
    if (!closed)
        publish_next(srv);
}

static void h_publish(call_t *c)
{
    osse_server_t *srv = c->srv;
    if (srv->pub_tail)
        srv->pub_tail->pub_next = c;
    else
        srv->pub_head = c;
    srv->pub_tail = c;
    if (!srv->pub_busy)
        publish_next(srv);
}

static int version_of(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return (*s && !*end && v > 0 && v < 1000000) ? (int)v : -1;
}

static void h_workflow(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int v = c->nseg == 5 ? version_of(c->seg[4]) : 0;
    if (v < 0) {
        reply_error(c, 404, "not_found", "no such version", NULL);
        return;
    }
    int rc = osse_q_workflow(c->srv->eng, c->p, c->seg[2], v, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_put_calendar(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int status = 200;
    int rc = osse_cmd_put_calendar(c->srv->eng, c->p, c->seg[2], c->body, &out, &status, &f);
    reply(c, rc, status, out, &f);
}

static void h_get_calendar(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_q_calendar(c->srv->eng, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_put_agency(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int status = 200;
    int rc = osse_cmd_put_agency(c->srv->eng, c->p, c->seg[2], c->body, &out, &status, &f);
    reply(c, rc, status, out, &f);
}

static void put_subscription(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int status = 200;
    int rc = osse_cmd_put_subscription(c->srv->eng, c->p, c->seg[2], c->body, &out, &status, &f);
    reply(c, rc, status, out, &f);
}

/* The URL's host was resolved on the pool (SPEC §7: no private address);
 * meanwhile its principal may have been revoked, or a call with the same
 * Idempotency-Key answered. */
static void sub_url_back(void *ud, int rc, osse_fail_t *f)
{
    call_t *c = ud;
    if (work_back(c))
        return;
    if (rc) {
        reply_fail(c, f);
        return;
    }
    if (answered_meanwhile(c))
        return;
    put_subscription(c);
}

static void h_put_subscription(call_t *c)
{
    const char *url = json_string_value(json_object_get(c->body, "url"));
    c->srv->working++;
    if (osse_sub_url_resolve(c->srv->eng, url, sub_url_back, c) == 0)
        return;
    c->srv->working--;
    put_subscription(c);
}

static void h_get_agency(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_q_agency(c->srv->eng, c->p, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_rotate_secret(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_rotate_agency_secret(c->srv->eng, c->p, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_create_principal(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_create_principal(c->srv->eng, c->p, c->body, &out, &f);
    if (!rc && c->idem.armed) {
        /* Tokens are kept only as hashes (SPEC §1): the remembered answer, a
         * side record, says "token": null, and a repeat answers that. */
        json_t *kept = json_deep_copy(out);
        json_object_set_new(kept, "token", json_null());
        char *txt = json_dumps(kept, JSON_COMPACT);
        json_decref(kept);
        if (!txt)
            osse__panic(__FILE__, __LINE__, "out of memory");
        osse_engine_idem_remember(c->srv->eng, &c->idem, 201, txt);
        free(txt);
        c->idem.armed = false;
    }
    reply(c, rc, 201, out, &f);
}

/* The catalog lists: one shape, one paging (engine/views.c). */
typedef int (*list_fn)(osse_engine_t *e, const osse_principal_t *p, const json_t *params,
                       json_t **out, osse_fail_t *f);

static void reply_list(call_t *c, list_fn fn)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = fn(c->srv->eng, c->p, c->query, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_workflows(call_t *c)
{
    reply_list(c, osse_q_workflows);
}

static void h_calendars(call_t *c)
{
    reply_list(c, osse_q_calendars);
}

static void h_agencies(call_t *c)
{
    reply_list(c, osse_q_agencies);
}

/* GET /v1/principals/me: who the token is (any role), so that a page a
 * person signs in to with a token alone (the inbox, SPEC §13) knows whose
 * it is; an agency's names its agency (null for other roles). Never the
 * token or its hash. */
static void h_me(call_t *c)
{
    const osse_principal_t *p = c->p;
    reply_json(c, 200,
               json_pack("{s:s, s:s, s:s?, s:s?}", "id", p->id, "role", osse_role_name(p->role),
                         "name", p->name, "agency",
                         p->role == OSSE_ROLE_AGENCY ? p->agency : NULL));
}

static void h_principals(call_t *c)
{
    reply_list(c, osse_q_principals);
}

static void h_subscriptions(call_t *c)
{
    reply_list(c, osse_q_subscriptions);
}

static void h_get_subscription(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_q_subscription(c->srv->eng, c->p, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_delete_subscription(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_delete_subscription(c->srv->eng, c->p, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_revoke(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_revoke_principal(c->srv->eng, c->p, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_submit(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_submit(c->srv->eng, c->p, c->body, &out, &f);
    reply(c, rc, 201, out, &f);
}

static void h_request(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_q_request(c->srv->eng, c->p, c->seg[2], false, &out, &f);
    reply(c, rc, 200, out, &f);
}

/* A read of the indexes on disk: the query's scan runs on the pool, and
 * its answer is made back on the loop (engine.h, osse_scan_t). */
static void scan_work(uv_work_t *w)
{
    osse_scan_run(((call_t *)w->data)->scan);
}

static void scan_done(uv_work_t *w, int status)
{
    call_t *c = w->data;
    if (work_back(c))
        return;
    osse_scan_t *s = c->scan;
    c->scan = NULL;
    if (status) {
        osse_scan_free(s);
        reply_error(c, 500, "internal", "the read was cancelled", NULL);
        return;
    }
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_scan_finish(c->srv->eng, s, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void scan_or_fail(call_t *c, int rc, osse_fail_t *f)
{
    if (rc)
        reply(c, rc, 200, NULL, f);
    else
        queue_work(c, scan_work, scan_done);
}

static void h_requests(call_t *c)
{
    osse_fail_t f = {0};
    int rc = osse_q_requests(c->srv->eng, c->p, c->query, &c->scan, &f);
    scan_or_fail(c, rc, &f);
}

static void h_info(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_info(c->srv->eng, c->p, c->seg[2], c->body, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_withdraw(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_withdraw(c->srv->eng, c->p, c->seg[2], c->body, &out, &f);
    reply(c, rc, 200, out, &f);
}

/* The erasure is answered once its event is durable and the key store has
 * let the key go (engine/erasure.c): like a call on the pool, it counts in
 * srv->working meanwhile. */
static void erase_back(void *ud, int status, json_t *answer)
{
    call_t *c = ud;
    if (work_back(c)) {
        json_decref(answer);
        return;
    }
    if (status)
        reply_error(c, 500, "erasure_incomplete",
                    "the erasure is recorded but the key store could not let the key go; the "
                    "next start finishes it",
                    NULL);
    else
        reply_json(c, 200, answer);
}

static void h_erase(call_t *c)
{
    osse_fail_t f = {0};
    c->srv->working++;
    int rc = osse_cmd_erase(c->srv->eng, c->p, c->seg[2], c->body, erase_back, c, &f);
    if (rc) {
        c->srv->working--;
        reply_fail(c, &f);
    }
}

static void h_decide(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_decide(c->srv->eng, c->p, c->seg[2], c->seg[3], c->body, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_inbox(call_t *c)
{
    osse_fail_t f = {0};
    int rc = osse_q_inbox(c->srv->eng, c->p, c->seg[2], c->query, &c->scan, &f);
    scan_or_fail(c, rc, &f);
}

static void h_track(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_q_track(c->srv->eng, c->seg[2], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_services(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = c->nseg == 4 ? osse_q_service(c->srv->eng, c->seg[3], &out, &f)
                          : osse_q_services(c->srv->eng, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_stats(call_t *c)
{
    osse_fail_t f = {0};
    int rc = osse_q_stats(c->srv->eng, c->query, &c->scan, &f);
    scan_or_fail(c, rc, &f);
}

static void h_digest(call_t *c)
{
    char hex[65];
    uint64_t size;
    if (osse_engine_digest(c->srv->eng, hex, &size)) {
        reply_error(c, 500, "internal", "out of memory", NULL);
        return;
    }
    reply_json(c, 200, json_pack("{s:s,s:I}", "digest", hex, "size", (json_int_t)size));
}

static void h_payments(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_pay(c->srv->eng, c->p, c->seg[2], c->body, &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_clock(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_test_clock(c->srv->eng, c->p, c->body, &out, &c->scan, &f);
    if (rc || !c->scan)
        reply(c, rc, 200, out, &f);
    else
        queue_work(c, scan_work, scan_done);
}

/* Stored events are read on the pool (the engine reads and hashes them);
 * the answer is built there too. */
static void events_work(uv_work_t *w)
{
    call_t *c = w->data;
    bool with_leaf = c->limit != 0;
    json_t *arr = NULL;
    osse_err_t err = {0};
    c->work_rc = osse_engine_read_events(c->srv->eng, with_leaf ? NULL : c->seqs, c->after,
                                         c->nseqs, with_leaf, &arr, &err);
    if (c->work_rc)
        return;
    json_t *out = json_pack("{s:o}", "events", arr);
    if (with_leaf)
        json_object_set_new(out, "next", c->next ? json_integer((json_int_t)c->next) : json_null());
    c->out = json_dumps(out, JSON_COMPACT);
    c->outlen = strlen(c->out);
    json_decref(out);
}

static void events_done(uv_work_t *w, int status)
{
    call_t *c = w->data;
    if (work_back(c))
        return;
    if (status || c->work_rc) {
        reply_error(c, 500, "internal", "the log cannot be read", NULL);
        return;
    }
    char *s = c->out;
    c->out = NULL;
    finish(c, 200, s, c->outlen, NULL);
}

static void h_events(call_t *c)
{
    osse_fail_t f = {0};
    if (osse_q_request_seqs(c->srv->eng, c->p, c->seg[2], &c->seqs, &c->nseqs, &f)) {
        reply_fail(c, &f);
        return;
    }
    queue_work(c, events_work, events_done);
}

static int u64_param(json_t *q, const char *k, uint64_t dflt, uint64_t *out)
{
    const char *s = json_string_value(json_object_get(q, k));
    *out = dflt;
    if (!s)
        return 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static void h_log(call_t *c)
{
    uint64_t after, limit;
    const char *k;
    json_t *v;
    json_object_foreach(c->query, k, v)
    {
        if (strcmp(k, "after") && strcmp(k, "limit")) {
            reply_error(c, 422, "invalid_request", "unknown query parameter", NULL);
            return;
        }
    }
    if (u64_param(c->query, "after", 0, &after) || u64_param(c->query, "limit", 1000, &limit) ||
        limit < 1 || limit > 10000) {
        reply_error(c, 422, "invalid_request", "after must be a seq and limit 1..10000", NULL);
        return;
    }
    osse_engine_log_page(c->srv->eng, after, limit, &c->after, &c->nseqs, &c->next);
    c->limit = limit;
    queue_work(c, events_work, events_done);
}

/* --- audit (SPEC §6) --- */

static bool wants_text(osse_slice_t accept)
{
    bool text = false, json = false;
    for (size_t i = 0; i + 10 <= accept.len; i++) {
        if (strncasecmp(accept.ptr + i, "text/plain", 10) == 0)
            text = true;
        if (i + 16 <= accept.len && strncasecmp(accept.ptr + i, "application/json", 16) == 0)
            json = true;
    }
    return text && !json;
}

static void h_checkpoint(call_t *c)
{
    osse_head_t h;
    if (osse_engine_checkpoint(c->srv->eng, &h)) {
        reply_error(c, 404, "not_found", "no signed head yet", NULL);
        return;
    }
    if (wants_text(c->req->accept)) {
        osse_buf_t b = {0};
        if (osse_head_note(&h, &b)) {
            osse_buf_close(&b);
            reply_error(c, 500, "internal", "out of memory", NULL);
            return;
        }
        finish(c, 200, (char *)b.ptr, b.len, "text/plain; charset=utf-8");
        return;
    }
    reply_json(c, 200, osse_head_to_json(&h));
}

static void h_public_key(call_t *c)
{
    const osse_verifier_t *v = osse_engine_verifier(c->srv->eng);
    json_t *o = v ? osse_audit_public_key(v) : NULL;
    if (!o) {
        reply_error(c, 500, "internal", "no signing key", NULL);
        return;
    }
    reply_json(c, 200, o);
}

static void proof_work(uv_work_t *w)
{
    call_t *c = w->data;
    osse_log_t *log = osse_engine_log(c->srv->eng);
    json_t *out = NULL;
    osse_err_t err = {0};
    c->work_rc = c->consistency ? osse_audit_consistency(log, c->after, c->next, &out, &err)
                                : osse_audit_inclusion(log, c->after, c->next, &out, &err);
    if (!c->work_rc) {
        c->out = json_dumps(out, JSON_COMPACT);
        c->outlen = c->out ? strlen(c->out) : 0;
        c->work_rc = c->out ? 0 : OSSE_ENOMEM;
    }
    json_decref(out);
}

/* Reads the two sizes of a proof (a and b, b defaulting to the durable size
 * when optional) and queues it; 1 <= a <= b <= durable. */
static void h_proof(call_t *c, const char *ka, const char *kb, bool b_optional)
{
    uint64_t durable = osse_engine_durable_size(c->srv->eng);
    uint64_t a, b;
    const char *k;
    json_t *v;
    json_object_foreach(c->query, k, v)
    {
        if (strcmp(k, ka) && strcmp(k, kb)) {
            reply_error(c, 422, "invalid_request", "unknown query parameter", NULL);
            return;
        }
    }
    char msg[200];
    if (!json_object_get(c->query, ka) || (!b_optional && !json_object_get(c->query, kb)) ||
        u64_param(c->query, ka, 0, &a) || u64_param(c->query, kb, durable, &b) || a < 1 || a > b ||
        b > durable) {
        snprintf(msg, sizeof msg, "need 1 <= %s <= %s <= %llu (the durable log size)", ka, kb,
                 (unsigned long long)durable);
        reply_error(c, 422, "invalid_request", msg, NULL);
        return;
    }
    c->after = a;
    c->next = b;
    queue_work(c, proof_work, events_done);
}

static void h_inclusion(call_t *c)
{
    h_proof(c, "seq", "size", true);
}

static void h_consistency(call_t *c)
{
    c->consistency = true;
    h_proof(c, "from", "to", false);
}

/* --- the public registry (engine/registry.c) --- */

static void h_licences(call_t *c)
{
    osse_fail_t f = {0};
    int rc = osse_q_licences(c->srv->eng, c->query, &c->scan, &f);
    scan_or_fail(c, rc, &f);
}

static void h_licence(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_q_licence(c->srv->eng, c->seg[3], &out, &f);
    reply(c, rc, 200, out, &f);
}

static void h_revoke_licence(call_t *c)
{
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_cmd_revoke_licence(c->srv->eng, c->p, c->seg[2], c->body, &out, &f);
    reply(c, rc, 200, out, &f);
}

/* The export: each page of the registry is read on the pool (osse_csv_read)
 * while the answer waits (OSSE_HTTP_FILL_WAIT), then rendered on the loop.
 * The stream's state outlives its answer while a read is out: the client
 * gone (csv_close), the read's return frees it. A read does not count in
 * srv->working: it touches neither the call nor the server, and the loop
 * runs until it is back before the engine closes. */
typedef struct csv_call_s {
    call_t *c; /* until the answer streams */
    osse_csv_t *csv;
    osse_http_req_t *req;
    uv_loop_t *loop;
    uv_work_t work;
    bool reading, closed, failed;
} csv_call_t;

static void csv_free(csv_call_t *cc)
{
    osse_csv_close(cc->csv);
    free(cc);
}

static void csv_read_work(uv_work_t *w)
{
    osse_csv_read(((csv_call_t *)w->data)->csv);
}

static void csv_read_back(uv_work_t *w, int status)
{
    csv_call_t *cc = w->data;
    cc->reading = false;
    if (cc->closed) {
        csv_free(cc);
        return;
    }
    cc->failed = status != 0;
    osse_http_stream_resume(cc->req);
}

static int csv_fill(void *ud, osse_buf_t *out)
{
    csv_call_t *cc = ud;
    if (cc->failed)
        return -1;
    int more = osse_csv_next(cc->csv, out);
    if (more != 2)
        return more;
    cc->reading = true;
    cc->work.data = cc;
    int rc = uv_queue_work(cc->loop, &cc->work, csv_read_work, csv_read_back);
    OSSE_PRE(rc == 0); /* only fails for a NULL callback */
    (void)rc;
    return OSSE_HTTP_FILL_WAIT;
}

static void csv_close(void *ud)
{
    csv_call_t *cc = ud;
    cc->closed = true;
    if (!cc->reading)
        csv_free(cc);
}

/* The export streams once everything emitted before it is durable, as every
 * answer waits (osse_engine_hold). */
static void csv_durable(void *ud, int status)
{
    csv_call_t *cc = ud;
    call_t *c = cc->c;
    if (status) {
        csv_free(cc);
        on_durable(c, status);
        return;
    }
    c->status = 200;
    osse_logf(OSSE_LEVEL_DEBUG, "call", "method=%s route=%s status=200 streamed=true",
              c->req->method, c->route);
    cc->c = NULL;
    cc->req = c->req;
    cc->loop = c->srv->loop;
    osse_http_respond_stream(c->req, 200, "text/csv; charset=utf-8", NULL, csv_fill, csv_close, cc);
    call_free(c);
}

static void h_licences_csv(call_t *c)
{
    osse_fail_t f = {0};
    osse_csv_t *csv = NULL;
    if (osse_q_licences_csv(c->srv->eng, c->query, &csv, &f)) {
        reply_fail(c, &f);
        return;
    }
    csv_call_t *cc = osse_calloc(1, sizeof *cc);
    cc->c = c;
    cc->csv = csv;
    osse_engine_hold(c->srv->eng, csv_durable, cc);
}

/* POST /v1/files: the bytes are hashed, sealed and written on the pool with
 * the file's key (they stay in the HTTP request meanwhile), then recorded;
 * the 201 waits for the record's batch (finish). */
static void upload_work(uv_work_t *w)
{
    call_t *c = w->data;
    osse_file_upload_store(c->up);
}

static void upload_done(uv_work_t *w, int status)
{
    (void)status;
    call_t *c = w->data;
    if (work_back(c))
        return;
    /* The same Idempotency-Key's upload was recorded first: this one's
     * copy goes, and the first's answer is replayed (the reply may free
     * c, so the upload is taken out of it first). */
    osse_file_up_t *up = c->up;
    c->up = NULL;
    osse_engine_t *eng = c->srv->eng;
    if (answered_meanwhile(c)) {
        osse_file_upload_discard(eng, up);
        osse_file_upload_free(up);
        return;
    }
    c->up = up;
    osse_fail_t f = {0};
    json_t *out = NULL;
    int rc = osse_file_upload_end(c->srv->eng, c->up, &out, &f);
    reply(c, rc, 201, out, &f);
}

static void h_upload(call_t *c)
{
    if (media_type(c->req->content_type).len == 0) {
        reply_error(c, 415, "unsupported_media_type",
                    "an upload needs its Content-Type, such as application/pdf", NULL);
        return;
    }
    osse_fail_t f = {0};
    if (osse_file_upload_begin(c->srv->eng, c->p, c->req->content_type, c->req->filename,
                               c->req->body, &c->up, &f)) {
        reply_fail(c, &f);
        return;
    }
    if (c->body_hash[0]) /* the same bytes' SHA-256: not hashed twice */
        osse_file_upload_hashed(c->up, c->body_hash);
    queue_work(c, upload_work, upload_done);
}

static void file_work(uv_work_t *w)
{
    call_t *c = w->data;
    osse_file_get_load(c->fget);
}

static void file_done(uv_work_t *w, int status)
{
    (void)status;
    call_t *c = w->data;
    if (work_back(c))
        return;
    osse_fail_t f = {0};
    char *bytes;
    size_t len;
    if (osse_file_get_result(c->fget, &bytes, &len, &f)) {
        reply_fail(c, &f);
        return;
    }
    /* The stored type is never sniffed into another (an uploaded HTML file
     * is not a page of this origin). */
    snprintf(c->file_hdr, sizeof c->file_hdr,
             "ETag: \"%s\"\r\nX-Content-Type-Options: nosniff\r\nCache-Control: private\r\n",
             osse_file_get_sha256(c->fget));
    c->extra = c->file_hdr;
    finish(c, 200, bytes, len, osse_file_get_type(c->fget));
}

static void h_file(call_t *c)
{
    osse_fail_t f = {0};
    if (osse_q_file(c->srv->eng, c->p, c->seg[2], &c->fget, &f)) {
        reply_fail(c, &f);
        return;
    }
    queue_work(c, file_work, file_done);
}

/* --- the pages under /ui/ (api/ui.c; docs/design.md, "Pages") --- */

/* Every page and asset, and their 404s: scripts, styles, fonts, images and
 * calls only from this origin, nothing inline, no framing; no Referer (a
 * page's address may hold a token in its fragment, and the tracking code in
 * its query); never sniffed; revalidated each time (the files have no
 * version in their names, and a new osse must show its own pages at once). */
#define UI_HEADERS                                                                                 \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "connect-src 'self'; img-src 'self' data:; font-src 'self'; base-uri 'none'; "                 \
    "form-action 'self'; frame-ancestors 'none'\r\n"                                               \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Cache-Control: no-cache\r\n"

static void h_ui(call_t *c)
{
    size_t len = 0;
    const char *ctype = NULL;
    const char *bytes = osse_ui_find(c->srv->ui, c->seg + 1, c->nseg - 1, &len, &ctype);
    c->extra = UI_HEADERS;
    if (!bytes) {
        reply_error(c, 404, "not_found",
                    c->srv->ui ? "no such page" : "this server has no pages (--ui-dir)", NULL);
        return;
    }
    char *copy = osse_malloc(len + 1);
    memcpy(copy, bytes, len);
    copy[len] = '\0';
    finish(c, 200, copy, len, ctype);
}

/* GET /v1/openapi.json, GET /v1/schema/workflow.json: documents embedded
 * at build time (api/docs.h), so serving them reads no disk. */
static void reply_doc(call_t *c, const unsigned char *doc, size_t len)
{
    char *out = osse_malloc(len + 1);
    memcpy(out, doc, len);
    out[len] = '\0';
    finish(c, 200, out, len, "application/json");
}

static void h_openapi(call_t *c)
{
    reply_doc(c, osse_doc_openapi, osse_doc_openapi_len);
}

static void h_workflow_schema(call_t *c)
{
    reply_doc(c, osse_doc_workflow_schema, osse_doc_workflow_schema_len);
}

static const route_t routes[] = {
    {"GET", "/healthz", PUBLIC, h_health, BODY_NONE, false, NULL},
    {"GET", "/metrics", PUBLIC, h_metrics, BODY_NONE, false, NULL},
    {"GET", "/v1/openapi.json", PUBLIC, h_openapi, BODY_NONE, false, NULL},
    {"GET", "/v1/schema/workflow.json", PUBLIC, h_workflow_schema, BODY_NONE, false, NULL},
    {"POST", "/v1/workflows", ROLE(PLATFORM), h_publish, BODY_DEFINITION, false,
     "a workflow definition (YAML or JSON) with id, title and steps"},
    {"GET", "/v1/workflows", ROLE(PLATFORM) | ROLE(AUDITOR), h_workflows, BODY_NONE, false, NULL},
    {"GET", "/v1/workflows/:id", ANY_ROLE, h_workflow, BODY_NONE, false, NULL},
    {"GET", "/v1/workflows/:id/versions/:n", ANY_ROLE, h_workflow, BODY_NONE, false, NULL},
    {"PUT", "/v1/calendars/:id", ROLE(PLATFORM), h_put_calendar, BODY_JSON, false,
     "a JSON object with utc_offset, workdays and hours (holidays optional)"},
    {"GET", "/v1/calendars", ROLE(PLATFORM) | ROLE(AUDITOR), h_calendars, BODY_NONE, false, NULL},
    {"GET", "/v1/calendars/:id", ANY_ROLE, h_get_calendar, BODY_NONE, false, NULL},
    {"PUT", "/v1/agencies/:id", ROLE(PLATFORM), h_put_agency, BODY_JSON, false,
     "a JSON object with name (webhook_url, lookup_url and biller_id optional)"},
    {"GET", "/v1/agencies", ROLE(PLATFORM) | ROLE(AUDITOR), h_agencies, BODY_NONE, false, NULL},
    {"GET", "/v1/agencies/:id", ROLE(PLATFORM) | ROLE(AGENCY), h_get_agency, BODY_NONE, false,
     NULL},
    {"POST", "/v1/agencies/:id/secret", ROLE(PLATFORM), h_rotate_secret, BODY_NONE, false, NULL},
    {"GET", "/v1/agencies/:id/tasks", ROLE(PLATFORM) | ROLE(AGENCY), h_inbox, BODY_NONE, false,
     NULL},
    {"POST", "/v1/principals", ROLE(PLATFORM), h_create_principal, BODY_JSON, false,
     "a JSON object with role (agency for the agency role; name optional)"},
    {"GET", "/v1/principals", ROLE(PLATFORM) | ROLE(AUDITOR), h_principals, BODY_NONE, false, NULL},
    {"GET", "/v1/principals/me", ANY_ROLE, h_me, BODY_NONE, false, NULL},
    {"DELETE", "/v1/principals/:id", ROLE(PLATFORM), h_revoke, BODY_NONE, false, NULL},
    {"POST", "/v1/requests", ROLE(PORTAL) | ROLE(PLATFORM), h_submit, BODY_JSON, false,
     "a JSON object with workflow and form"},
    {"GET", "/v1/requests", ROLE(PLATFORM) | ROLE(AUDITOR) | ROLE(PORTAL), h_requests, BODY_NONE,
     false, NULL},
    {"GET", "/v1/requests/:id", ROLE(PLATFORM) | ROLE(AUDITOR) | ROLE(PORTAL) | ROLE(AGENCY),
     h_request, BODY_NONE, false, NULL},
    {"GET", "/v1/requests/:id/events", ROLE(PLATFORM) | ROLE(AUDITOR) | ROLE(PORTAL) | ROLE(AGENCY),
     h_events, BODY_NONE, false, NULL},
    {"POST", "/v1/requests/:id/info", ROLE(PORTAL), h_info, BODY_JSON, false,
     "a JSON object with step (form, message and expected_version optional)"},
    {"POST", "/v1/requests/:id/withdraw", ROLE(PORTAL), h_withdraw, BODY_JSON, false, NULL},
    {"DELETE", "/v1/requests/:id/personal-data", ROLE(PLATFORM), h_erase, BODY_JSON, false,
     "a JSON object with reason"},
    {"POST", "/v1/requests/:id/payments", ROLE(PAYMENT), h_payments, BODY_JSON, false,
     "a JSON object with step, amount, reference and transaction"},
    {"POST", "/v1/tasks/:rid/:step/decision", ROLE(AGENCY), h_decide, BODY_JSON, false,
     "a JSON object with outcome (reason and expected_version optional)"},
    {"PUT", "/v1/subscriptions/:id", ROLE(PORTAL) | ROLE(PLATFORM), h_put_subscription, BODY_JSON,
     false, "a JSON object with url and events"},
    {"GET", "/v1/subscriptions", ROLE(PLATFORM) | ROLE(AUDITOR) | ROLE(PORTAL), h_subscriptions,
     BODY_NONE, false, NULL},
    {"GET", "/v1/subscriptions/:id", ROLE(PLATFORM) | ROLE(PORTAL), h_get_subscription, BODY_NONE,
     false, NULL},
    {"DELETE", "/v1/subscriptions/:id", ROLE(PLATFORM) | ROLE(PORTAL), h_delete_subscription,
     BODY_NONE, false, NULL},
    {"POST", "/v1/files", ROLE(PORTAL) | ROLE(PLATFORM), h_upload, BODY_RAW, false, NULL},
    {"GET", "/v1/files/:id", ROLE(PLATFORM) | ROLE(AUDITOR) | ROLE(PORTAL) | ROLE(AGENCY), h_file,
     BODY_NONE, false, NULL},
    {"GET", "/v1/track/:code", PUBLIC, h_track, BODY_NONE, false, NULL},
    {"GET", "/v1/public/services", PUBLIC, h_services, BODY_NONE, false, NULL},
    {"GET", "/v1/public/services/:id", PUBLIC, h_services, BODY_NONE, false, NULL},
    {"GET", "/v1/log", ROLE(PLATFORM) | ROLE(AUDITOR), h_log, BODY_NONE, false, NULL},
    {"GET", "/v1/log/checkpoint", PUBLIC, h_checkpoint, BODY_NONE, false, NULL},
    {"GET", "/v1/log/public-key", PUBLIC, h_public_key, BODY_NONE, false, NULL},
    {"GET", "/v1/log/proof/inclusion", ROLE(PLATFORM) | ROLE(AUDITOR), h_inclusion, BODY_NONE,
     false, NULL},
    {"GET", "/v1/log/proof/consistency", PUBLIC, h_consistency, BODY_NONE, false, NULL},
    {"POST", "/v1/licences/:number/revoke", ROLE(PLATFORM) | ROLE(AGENCY), h_revoke_licence,
     BODY_JSON, false, "a JSON object with reason"},
    {"GET", "/v1/public/licences", PUBLIC, h_licences, BODY_NONE, false, NULL},
    {"GET", "/v1/public/licences.csv", PUBLIC, h_licences_csv, BODY_NONE, false, NULL},
    {"GET", "/v1/public/licences/:number", PUBLIC, h_licence, BODY_NONE, false, NULL},
    {"GET", "/v1/stats", ROLE(PLATFORM) | ROLE(AUDITOR), h_stats, BODY_NONE, false, NULL},
    {"GET", "/v1/admin/digest", ROLE(PLATFORM) | ROLE(AUDITOR), h_digest, BODY_NONE, false, NULL},
    {"POST", "/v1/test/clock", ROLE(PLATFORM), h_clock, BODY_JSON, true,
     "a JSON object with advance or now"},
    {"GET", "/ui", PUBLIC, h_ui, BODY_NONE, false, NULL},
    {"GET", "/ui/:page", PUBLIC, h_ui, BODY_NONE, false, NULL},
    {"GET", "/ui/services/:id", PUBLIC, h_ui, BODY_NONE, false, NULL},
    {"GET", "/ui/registry/:number", PUBLIC, h_ui, BODY_NONE, false, NULL},
};

size_t osse_server_route_count(void)
{
    return sizeof routes / sizeof *routes;
}

osse_route_info_t osse_server_route(size_t i)
{
    OSSE_PRE(i < sizeof routes / sizeof *routes);
    const route_t *r = &routes[i];
    return (osse_route_info_t){r->method, r->pattern, r->roles, r->test_only};
}

/* "this route needs the platform or auditor role; this token has the agency
 * role": a 403 that says what would have been allowed. */
static void role_refusal(unsigned roles, osse_role_t have, char *out, size_t n)
{
    int total = 0, k = 0;
    for (int r = 0; r < OSSE_ROLE__COUNT; r++)
        total += (roles >> r) & 1u;
    size_t len = (size_t)snprintf(out, n, "this route needs the ");
    for (int r = 0; r < OSSE_ROLE__COUNT && len < n; r++) {
        if (!((roles >> r) & 1u))
            continue;
        k++;
        const char *sep = k == 1 ? "" : k == total ? " or " : ", ";
        len += (size_t)snprintf(out + len, n - len, "%s%s", sep, osse_role_name(r));
    }
    if (len < n)
        snprintf(out + len, n - len, " role; this token has the %s role", osse_role_name(have));
}

static bool match(const route_t *r, call_t *c)
{
    const char *p = r->pattern + 1;
    int i = 0;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (i >= c->nseg)
            return false;
        if (p[0] != ':' && (strlen(c->seg[i]) != n || strncmp(c->seg[i], p, n) != 0))
            return false;
        if (p[0] == ':' && c->seg[i][0] == '\0')
            return false;
        i++;
        p += n + (q ? 1 : 0);
    }
    return i == c->nseg;
}

/* How many segments a pattern has: a path of another count matches none of
 * it, so the route table's walk skips it without a match (which was 2 % of
 * the loop per call). Counted once, as match walks them. */
static int pattern_segs(const char *pattern)
{
    int n = 0;
    for (const char *p = pattern + 1; *p; n++) {
        const char *q = strchr(p, '/');
        p += q ? (size_t)(q - p) + 1 : strlen(p);
    }
    return n;
}

static int route_segs(size_t i)
{
    static int segs[sizeof routes / sizeof *routes];
    static bool counted; /* loop thread only */
    if (!counted) {
        for (size_t k = 0; k < sizeof routes / sizeof *routes; k++)
            segs[k] = pattern_segs(routes[k].pattern);
        counted = true;
    }
    return segs[i];
}

static void dispatch(call_t *c);

/* A CORS preflight (OPTIONS with an Origin, once --cors-origin lists some):
 * from a listed origin, on a path of the table, 204 with the methods that
 * path has (allow); from another origin, 403 whatever the path. Neither
 * reads a token: a browser never sends one with a preflight. False for a
 * listed origin on an unknown path, which goes on to its 404. */
static bool preflight(call_t *c, bool path_known, const char *allow)
{
    if (c->req->cors == OSSE_HTTP_CORS_OTHER) {
        reply_error(c, 403, "origin_not_allowed",
                    "this Origin is not one osse serve --cors-origin lists: a page there may "
                    "not call this server",
                    NULL);
        return true;
    }
    if (!path_known)
        return false;
    osse_logf(OSSE_LEVEL_DEBUG, "call", "method=OPTIONS route=- status=204 preflight=true");
    osse_http_respond_preflight(c->req, allow);
    call_free(c);
    return true;
}

/* The Idempotency-Key of a state-changing call, with the body's hash made
 * already (body_hash) or not (NULL): true when it was answered (a replay,
 * the mismatch, a key too long). */
static bool idem_known(call_t *c, const char *body_hash)
{
    osse_http_req_t *req = c->req;
    int status;
    char *body;
    osse_fail_t f = {0};
    int rc = body_hash ? osse_engine_idem_begin_hashed(c->srv->eng, c->p->id, req->method,
                                                       req->path, req->idempotency_key, body_hash,
                                                       &c->idem, &status, &body, &f)
                       : osse_engine_idem_begin(c->srv->eng, c->p->id, req->method, req->path,
                                                req->idempotency_key, req->body, &c->idem, &status,
                                                &body, &f);
    if (rc < 0) {
        reply_fail(c, &f);
        return true;
    }
    return idem_answered(c, rc, status, body);
}

static void idem_hash_work(uv_work_t *w)
{
    call_t *c = w->data;
    osse_engine_idem_body_hash(c->req->body, c->body_hash);
}

/* Back from the pool: the key as any call's, then on as any call. */
static void idem_hash_done(uv_work_t *w, int status)
{
    (void)status;
    call_t *c = w->data;
    if (work_back(c) || answered_meanwhile(c) || idem_known(c, c->body_hash))
        return;
    dispatch(c);
}

static void handle(osse_http_req_t *req, void *ud)
{
    osse_server_t *srv = ud;
    call_t *c = osse_calloc(1, sizeof *c);
    c->srv = srv;
    c->req = req;
    c->t0 = uv_hrtime();
    if (split_path(c)) {
        reply_error(c, 404, "not_found", "no such route", NULL);
        return;
    }
    const route_t *route = NULL;
    bool path_known = false;
    char allow[128] = "";
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (route_segs(i) != c->nseg || (routes[i].test_only && !srv->test_clock) ||
            !match(&routes[i], c))
            continue;
        path_known = true;
        if (strcmp(routes[i].method, req->method) == 0)
            route = &routes[i];
        else
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s",
                     allow[0] ? ", " : "", routes[i].method);
    }
    c->route = route ? route->pattern : NULL;
    if (strcmp(req->method, "OPTIONS") == 0 && req->cors != OSSE_HTTP_CORS_NONE &&
        preflight(c, path_known, allow))
        return;
    if (!route) {
        if (path_known) {
            /* The answer may wait behind a write (osse_engine_hold), so the
             * header lives in the call, never in storage shared by calls. */
            snprintf(c->allow, sizeof c->allow, "Allow: %s\r\n", allow);
            c->extra = c->allow;
            reply_error(c, 405, "method_not_allowed", "this route does not take this method", NULL);
        } else {
            reply_error(c, 404, "not_found", "no such route", NULL);
        }
        return;
    }
    if (route->roles != PUBLIC) {
        osse_slice_t a = req->authorization;
        if (a.len < 8 || strncasecmp(a.ptr, "Bearer ", 7) != 0 ||
            !(c->p = osse_engine_auth(srv->eng, a.ptr + 7, a.len - 7))) {
            c->extra = "WWW-Authenticate: Bearer\r\n";
            reply_error(c, 401, "unauthorized", "a valid bearer token is required", NULL);
            return;
        }
        if (!(route->roles & (1u << c->p->role))) {
            char msg[200];
            role_refusal(route->roles, c->p->role, msg, sizeof msg);
            reply_error(c, 403, "forbidden", msg, NULL);
            return;
        }
    }
    if (route->body != BODY_NONE && !body_type_ok(route->body, req)) {
        reply_error(c, 415, "unsupported_media_type",
                    route->body == BODY_JSON
                        ? "this route takes application/json"
                        : "this route takes application/json, application/yaml, "
                          "application/x-yaml or text/yaml",
                    NULL);
        return;
    }
    c->query = parse_query(req->query);
    c->rt = route;
    bool changes = strcmp(req->method, "GET") != 0;
    if (changes && req->idempotency_key.len && route->body == BODY_RAW) {
        /* Up to 20 MiB of SHA-256: the pool's, not the loop's. */
        queue_work(c, idem_hash_work, idem_hash_done);
        return;
    }
    if (changes && req->idempotency_key.len && idem_known(c, NULL))
        return;
    dispatch(c);
}

/* The requests a route's call names, by what (engine.h, osse_name_kind_t)
 * and in which path segment: an ended request out of memory is read back
 * from disk before the handler runs (engine/cache.c). A payment also names
 * the request that recorded its transaction, if any (the body's). */
static const struct {
    handler_fn fn;
    osse_name_kind_t kind;
    int seg;
} route_names[] = {
    {h_request, OSSE_NAME_ID, 2},
    {h_events, OSSE_NAME_ID, 2},
    {h_info, OSSE_NAME_ID, 2},
    {h_withdraw, OSSE_NAME_ID, 2},
    {h_erase, OSSE_NAME_ID, 2},
    {h_payments, OSSE_NAME_ID, 2},
    {h_decide, OSSE_NAME_ID, 2},
    {h_track, OSSE_NAME_CODE, 2},
    {h_revoke_licence, OSSE_NAME_LICENCE, 2},
    {h_licence, OSSE_NAME_LICENCE, 3},
    {h_file, OSSE_NAME_FILE, 2}, /* and the request that took it */
};

static void readback_work(uv_work_t *w)
{
    osse_readback_run(((call_t *)w->data)->rb);
}

static void readback_done(uv_work_t *w, int status)
{
    call_t *c = w->data;
    if (work_back(c))
        return;
    osse_readback_t *rb = c->rb;
    c->rb = NULL;
    if (status) {
        osse_readback_free(rb);
        reply_error(c, 500, "internal", "the read was cancelled", NULL);
        return;
    }
    osse_fail_t f = {0};
    if (osse_readback_end(c->srv->eng, rb, &f)) {
        reply_fail(c, &f);
        return;
    }
    if (c->p && answered_meanwhile(c))
        return;
    c->rt->fn(c);
}

/* True when the call waits for its requests to be read back. */
static bool read_back(call_t *c)
{
    osse_engine_t *eng = c->srv->eng;
    for (size_t i = 0; i < sizeof route_names / sizeof *route_names; i++) {
        if (route_names[i].fn != c->rt->fn || route_names[i].seg >= c->nseg)
            continue;
        const char *name = c->seg[route_names[i].seg];
        if (route_names[i].kind == OSSE_NAME_FILE)
            osse_readback_want_file(eng, &c->rb, name);
        else
            osse_readback_want(eng, &c->rb, route_names[i].kind, name);
        const char *tx = c->rt->fn == h_payments && c->p
                             ? json_string_value(json_object_get(c->body, "transaction"))
                             : NULL;
        if (tx && strlen(tx) <= 128) {
            char key[320];
            snprintf(key, sizeof key, "%s\n%s", c->p->id, tx);
            osse_readback_want(eng, &c->rb, OSSE_NAME_PAYMENT, key);
        }
    }
    /* A form's files: one an ended request took is on disk. */
    if ((c->rt->fn == h_submit || c->rt->fn == h_info) && c->body)
        osse_readback_want_form_files(eng, &c->rb, json_object_get(c->body, "form"));
    if (!c->rb)
        return false;
    queue_work(c, readback_work, readback_done);
    return true;
}

/* After the Idempotency-Key: the disk, the body, the handler. */
static void dispatch(call_t *c)
{
    osse_server_t *srv = c->srv;
    osse_http_req_t *req = c->req;
    const route_t *route = c->rt;
    bool changes = strcmp(req->method, "GET") != 0;
    /* The one gate of every state-changing route on a nearly full disk:
     * before the handler, so that nothing is emitted (an emitted event is
     * applied at once and cannot be refused after). A remembered answer
     * above writes nothing and still goes out; reads go on. */
    osse_fail_t low = {0};
    if (changes && osse_engine_writable(srv->eng, &low)) {
        reply_fail(c, &low);
        return;
    }
    if (route->wants && blank(req->body)) {
        char msg[200];
        snprintf(msg, sizeof msg, "the body is empty: this route wants %s", route->wants);
        reply_error(c, 422, "invalid_request", msg, NULL);
        return;
    }
    if (route->body == BODY_JSON && parse_json_body(c))
        return;
    if (read_back(c))
        return;
    route->fn(c);
}

int osse_server_open(uv_loop_t *loop, osse_engine_t *eng, const osse_ui_t *ui, const char *host,
                     int port, bool test_clock, unsigned upload_timeout_ms, osse_server_t **out,
                     osse_err_t *err)
{
    osse_server_t *s = osse_calloc(1, sizeof *s);
    s->loop = loop;
    s->eng = eng;
    s->ui = ui;
    s->test_clock = test_clock;
    osse_http_limits_t lim;
    osse_http_limits_default(&lim);
    lim.upload_path = "/v1/files"; /* POST: up to 20 MiB (SPEC §4, §11) */
    if (upload_timeout_ms)
        lim.upload_timeout_ms = upload_timeout_ms;
    int rc = osse_http_open(loop, host, port, &lim, handle, s, &s->http, err);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Every header an answer of this file may carry that a page on another
 * origin needs to read (Content-Type and Content-Length it always may). */
#define EXPOSED_HEADERS "Allow, ETag, Idempotent-Replayed, Retry-After, WWW-Authenticate"

int osse_server_cors(osse_server_t *s, const char *const *origins, size_t n, osse_err_t *err)
{
    return osse_http_cors(s->http, origins, n, EXPOSED_HEADERS, err);
}

int osse_server_port(const osse_server_t *s)
{
    return osse_http_port(s->http);
}

void osse_server_close(osse_server_t *s)
{
    if (!s)
        return;
    /* Publishes not yet on the pool end here; the one there, on its return. */
    while (s->pub_head) {
        call_t *c = s->pub_head;
        s->pub_head = c->pub_next;
        osse_http_respond(c->req, 503, "application/json", NULL, STOPPING, strlen(STOPPING));
        call_free(c);
    }
    s->pub_tail = NULL;
    osse_http_close(s->http);
    s->http = NULL;
    s->closed = true;
    if (s->working == 0)
        free(s);
}
