/* erasure.c: erasure of a request's personal data (SPEC §8), by the
 * platform (DELETE /v1/requests/{id}/personal-data) or by its workflow's
 * retention (expiry.c fires it).
 *
 * Crypto-shredding: the log keeps its ciphertext and keeps verifying; what
 * goes is the key. An erasure records PersonalDataErased {"fields",
 * "reason"} on the request's stream: fields are the sorted paths that held
 * a stored personal value in the request's current form and linkage
 * answers ("form.<name>", "form.<field>.<member>" for a value sealed inside
 * a field's value, as a pii file field's name is, "data.<step>"); the reason
 * is the platform's own statement (or "retention") and is stored plain: it
 * says why osse erased, not anything about the applicant. Applying it
 * (apply.c) drops the key from memory at once and turns every sealed value
 * of the projection into "[erased]". Once the event is durable, the wrapped
 * keys of the request and of the files its pii fields hold (filed under the
 * file's id) are removed from the key store on the libuv pool
 * (osse_log_keys_remove: the segment rewritten with fillers in their places, fsynced,
 * renamed, the folder fsynced); only then does the caller hear of it (the
 * route's 200). Had the process stopped between the two, the start removes
 * the keys of erased requests as stale (engine.c, osse__erasure_stale_key).
 *
 * Test hook: with --test-clock only, the environment variable
 * OSSE_TEST_CRASH_BEFORE_KEY_REMOVAL=1 makes the pool job _exit(137) just
 * before the key store's rewrite, so that a test can stop the process in
 * that window (tests/integration/test_erasure.py). Without the test clock it
 * is ignored. */
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* The erasure's reason: a statement, not an essay. */
#define ERASE_REASON_MAX 1000
#define CRASH_HOOK "OSSE_TEST_CRASH_BEFORE_KEY_REMOVAL"

/* Whoever waits for an erasure of the job (the route's call), with its
 * answer. */
typedef struct {
    osse_erase_cb done;
    void *ud;
    json_t *answer;
} waiter_t;

/* The key store's removals of the erasures emitted into one batch: one
 * rewrite per segment for all of them (retention may fire thousands at
 * once, after downtime or a move of the test clock). */
struct osse_erase_job_s {
    uv_work_t work;
    osse_engine_t *e;
    osse_keystore_t *ks; /* NULL: nothing to remove (an engine without keys) */
    osse_log_t *log;     /* where the keys are (storage/log.h) */
    uv_loop_t *loop;
    uint64_t mark; /* e->commits_sent when it was begun: its batch is the next */
    char **ids;    /* the requests' ids and their pii files' ids */
    size_t n, cap;
    waiter_t *waiters;
    size_t nwaiters, cwaiters;
    bool crash; /* the test hook */
    int rc;
    osse_err_t err;
};
typedef struct osse_erase_job_s job_t;

static int by_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The paths of r's stored personal values, sorted: a JSON array. */
static json_t *stored_fields(const osse_request_t *r)
{
    char **paths = NULL;
    size_t n = 0, cap = 0;
    char path[400];
    const char *k, *m;
    json_t *v, *x;
    json_object_foreach(osse__form(r), k, v)
    {
        if (osse__pii_sealed(v)) {
            snprintf(path, sizeof path, "form.%s", k);
            OSSE_VEC_PUSH(paths, n, cap, osse_strdup(path));
        } else if (json_is_object(v)) {
            json_object_foreach(v, m, x) if (osse__pii_sealed(x))
            {
                snprintf(path, sizeof path, "form.%s.%s", k, m);
                OSSE_VEC_PUSH(paths, n, cap, osse_strdup(path));
            }
        }
    }
    json_object_foreach(r->data, k, v) if (osse__pii_sealed(v))
    {
        snprintf(path, sizeof path, "data.%s", k);
        OSSE_VEC_PUSH(paths, n, cap, osse_strdup(path));
    }
    if (n)
        qsort(paths, n, sizeof *paths, by_text);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(paths[i]));
        free(paths[i]);
    }
    free(paths);
    return a;
}

/* r's id and the ids of the files r's pii file fields hold, into j: read
 * before the erasure, while a value sealed whole still opens. */
static void key_ids(osse_engine_t *e, const osse_request_t *r, job_t *j)
{
    OSSE_VEC_PUSH(j->ids, j->n, j->cap, osse_strdup(r->id));
    char path[400];
    for (size_t i = 0; i < r->wf->nfields; i++) {
        const osse_wf_field_t *fd = &r->wf->fields[i];
        json_t *v = json_object_get(osse__form(r), fd->name);
        if (fd->type != OSSE_FIELD_FILE || !fd->pii || !v)
            continue;
        json_t *open = NULL;
        snprintf(path, sizeof path, "form.%s", fd->name);
        if (osse__pii_sealed(v) && osse__pii_try_open(e, r->id, path, v, &open))
            continue;
        const char *id = osse__jstr(open ? open : v, "id");
        if (id && osse_keystore_id_ok(id)) {
            OSSE_VEC_PUSH(j->ids, j->n, j->cap, osse_strdup(id));
            osse__files_forget_key(e, id); /* 410 from now on */
        }
        json_decref(open);
    }
}

/* kdel/<id>, put with the erasure's batch or deleted after the rewrite. */
void osse__erasure_intent(osse_engine_t *e, const char *id, bool put)
{
    char key[OSSE_KEY_LEN(OSSE_KEY_KEY_ERASE) + 80];
    int kl = snprintf(key, sizeof key, OSSE_KEY_KEY_ERASE "%s", id);
    if (kl <= 0 || (size_t)kl >= sizeof key)
        return;
    osse__batch_need(e);
    if (put ? osse_batch_put(e->batch, key, (size_t)kl, "", 0)
            : osse_batch_delete(e->batch, key, (size_t)kl))
        osse__panic(__FILE__, __LINE__, "out of memory");
}
#define intent osse__erasure_intent

/* Pool. */
static void remove_work(uv_work_t *w)
{
    job_t *j = w->data;
    if (j->crash)
        _exit(137); /* the test hook: the events are durable, the keys still filed */
    j->rc = osse_log_keys_remove(j->log, j->ks, (const char *const *)j->ids, j->n, &j->err);
}

static void job_end(job_t *j, int status)
{
    if (status)
        osse_logf(OSSE_LEVEL_ERROR, "erasure incomplete",
                  "requests=%zu error=\"%s\" next=\"the keys are removed at the next start\"",
                  j->nwaiters, j->err.msg[0] ? j->err.msg : osse_strerror(status));
    else
        osse_logf(OSSE_LEVEL_INFO, "personal data erased", "requests=%zu keys=%zu", j->nwaiters,
                  j->n);
    for (size_t i = 0; i < j->nwaiters; i++) {
        waiter_t *w = &j->waiters[i];
        if (w->done) {
            w->done(w->ud, status, status ? NULL : w->answer);
            if (!status)
                w->answer = NULL;
        }
        json_decref(w->answer);
    }
    for (size_t i = 0; i < j->n; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->waiters);
    free(j);
}

static void remove_done(uv_work_t *w, int status)
{
    job_t *j = w->data;
    int rc = status ? OSSE_EIO : j->rc;
    for (size_t i = 0; !rc && i < j->n; i++)
        intent(j->e, j->ids[i], false);
    job_end(j, rc);
}

/* The batch of PersonalDataErased is durable: the keys may go. A failed
 * write never removes them (the events may be lost; the requests then keep
 * their keys). */
static void erased_durable(void *ud, int status)
{
    job_t *j = ud;
    if (j->e->erasing == j)
        j->e->erasing = NULL;
    if (status || !j->ks) {
        job_end(j, status);
        return;
    }
    j->work.data = j;
    if (uv_queue_work(j->loop, &j->work, remove_work, remove_done) != 0)
        job_end(j, OSSE_EIO);
}

void osse__erase(osse_engine_t *e, osse_request_t *r, const osse_principal_t *actor,
                 const char *reason, osse_erase_cb done, void *ud)
{
    OSSE_PRE(osse__rstatus_final(r->status) && !r->erased_at);
    /* The job of the batch being filled, or a new one. */
    job_t *j = e->erasing;
    bool fresh = !j || j->mark != e->commits_sent;
    if (fresh) {
        j = osse_calloc(1, sizeof *j);
        j->e = e;
        j->ks = e->keystore;
        j->log = e->log;
        j->loop = e->loop;
        j->mark = e->commits_sent;
        j->crash = e->test_clock && getenv(CRASH_HOOK) && strcmp(getenv(CRASH_HOOK), "1") == 0;
        e->erasing = j;
    }
    size_t from = j->n;
    key_ids(e, r, j);
    /* What a start finishes if the process stops before the rewrite: its
     * request may be on disk only by then (cache.c). */
    for (size_t i = from; i < j->n; i++)
        intent(e, j->ids[i], true);
    json_t *fields = stored_fields(r);
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_PersonalDataErased, actor,
               json_pack("{s:O,s:s}", "fields", fields, "reason", reason));
    json_t *answer =
        json_pack("{s:s,s:s,s:o,s:s,s:i}", "id", r->id, "status", osse__rstatus_name(r->status),
                  "fields", fields, "reason", reason, "version", (int)r->version);
    OSSE_VEC_PUSH(j->waiters, j->nwaiters, j->cwaiters, ((waiter_t){done, ud, answer}));
    if (fresh)
        osse_engine_hold(e, erased_durable, j); /* last: it may call back at once */
}

int osse_cmd_erase(osse_engine_t *e, const osse_principal_t *p, const char *request_id,
                   json_t *body, osse_erase_cb done, void *ud, osse_fail_t *f)
{
    static const char *const keys[] = {"reason", NULL};
    if (p->role != OSSE_ROLE_PLATFORM)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden", "only the platform erases");
    osse_request_t *r = osse__request(e, request_id);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no request %s", request_id);
    const char *reason = NULL;
    int rc = osse__check_keys(body, keys, f);
    if (rc || (rc = osse__opt_string(body, "reason", ERASE_REASON_MAX, &reason, f)))
        return rc;
    if (!reason || !*reason) {
        osse__detail(f, "reason", "required: why the personal data is erased (it is kept plain)");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "reason is required");
    }
    if (r->erased_at)
        return osse__fail(f, OSSE_ECONFLICT, "already_erased",
                          "the personal data of this request is erased already");
    if (!osse__rstatus_final(r->status))
        return osse__fail(f, OSSE_ECONFLICT, "not_ended",
                          "the request is %s: personal data is erased only after it ends",
                          osse__rstatus_name(r->status));
    osse__erase(e, r, p, reason, done, ud);
    return 0;
}

bool osse__erasure_stale_key(osse_engine_t *e, const char *id)
{
    const osse_request_t *r = osse__request(e, id);
    return (r && r->erased_at) || osse__files_erased(e, id);
}
