/* commit.c: emitting events, group commit, held answers, idempotency.
 *
 * osse__emit gives an event its seq and stream version, encodes it into the
 * batch of the current loop iteration (the log's writer adds it to the
 * Merkle tree: storage/log.h osse_log_set_tree), applies it to the
 * projections (apply.c) and tells the reactors (timers, linkage, notify)
 * that it happened. A uv_check handle hands the batch to the log's
 * writer thread at the end of the iteration, so every command handled in one
 * iteration shares one synced write. Answers are held (osse_engine_hold)
 * until the batch they depend on is durable; a failed write releases every
 * hold with its status, never as durable. Remembered answers of idempotent
 * commands are side records in the same batch as the events they answer.
 *
 * Below it: apply.c, util.c, and storage/. Above it: everything that emits.
 * It calls nothing above it: the reactors (audit, notify, timers, linkage)
 * add themselves (osse__react) when they start. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/time.h"

#define IDEM_TTL_MS (24LL * 3600 * 1000)
/* Under --test-clock: remembered answers are written as an osse before the
 * ninth session wrote them (idem/<key hash>), for test_idempotency's start
 * that moves them. */
#define IDEM_OLD_HOOK "OSSE_TEST_IDEM_OLD_LAYOUT"

static void on_kick(uv_idle_t *h)
{
    (void)h;
}

/* A new batch also starts the idle handle, so that the loop does not sleep
 * in its poll phase before the check phase hands the batch to the log (events
 * emitted outside an I/O callback, from a timer or at start, need this). */
static void new_batch(osse_engine_t *e)
{
    if (!(e->batch = osse_log_batch_new(e->log)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    if (!e->replaying && uv_is_active((uv_handle_t *)&e->flush))
        uv_idle_start(&e->kick, on_kick);
}

void osse__batch_need(osse_engine_t *e)
{
    if (!e->batch)
        new_batch(e);
}

void osse__catalog_event(osse_engine_t *e, uint64_t seq)
{
    uint8_t key[OSSE_KEY_LEN(OSSE_KEY_CATALOG) + 8];
    memcpy(key, OSSE_KEY_CATALOG, OSSE_KEY_LEN(OSSE_KEY_CATALOG));
    osse_be_put(key + OSSE_KEY_LEN(OSSE_KEY_CATALOG), seq, 8);
    osse__batch_need(e);
    if (osse_batch_put(e->batch, key, sizeof key, "", 0))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

static uint32_t next_version(osse_engine_t *e, const char *stream)
{
    const char *rid = osse__stream_id(stream, OSSE_SK_REQUEST);
    if (rid) {
        osse_request_t *r = osse__request(e, rid);
        return r ? r->version + 1 : 1;
    }
    return (uint32_t)(uintptr_t)osse_map_get(&e->versions, stream) + 1;
}

/* What the start reads instead of the log (record.c): the record of the
 * request an event of a request or delivery stream changed, which goes
 * with the batch; the cat/ key of any other event. */
static void touch(osse_engine_t *e, const char *stream, uint64_t seq)
{
    const char *rid = osse__stream_id(stream, OSSE_SK_REQUEST);
    if (!rid)
        rid = osse__stream_id(stream, OSSE_SK_DELIVERY);
    osse_request_t *r = rid ? osse__request(e, rid) : NULL;
    if (r)
        osse__record_touch(e, r);
    else if (!rid)
        osse__catalog_event(e, seq);
}

/* A request read from its record is about to change: the index entries
 * stored for it are the ones its projection gives now (index.c). */
static void before_change(osse_engine_t *e, const char *stream)
{
    const char *rid = osse__stream_id(stream, OSSE_SK_REQUEST);
    if (!rid)
        rid = osse__stream_id(stream, OSSE_SK_DELIVERY);
    osse_request_t *r = rid ? osse__request(e, rid) : NULL;
    if (r && r->ix_unknown && osse__ix_loaded(e, r))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

static void emit(osse_engine_t *e, const char *stream, osse_event_type_t type,
                 const osse_principal_t *actor, json_t *data, const void *fields)
{
    osse_err_t err = {0};
    OSSE_PRE(!e->replaying);
    osse_event_t ev = {
        .seq = osse_log_last_seq(e->log) + 1,
        .stream = (char *)stream,
        .version = next_version(e, stream),
        .type = type,
        .at = osse_engine_now(e),
        .actor_kind = actor ? (char *)osse_role_name(actor->role) : "system",
        .actor_id = actor ? actor->id : "osse",
        .data = data,
    };
    osse_buf_reset(&e->enc);
    if ((fields && osse_event_set_fields(&ev, fields)) || osse_event_encode(&ev, &e->enc))
        osse__panic(__FILE__, __LINE__, "cannot encode event %s in %s", osse_event_type_name(type),
                    stream);
    if (!e->batch)
        new_batch(e);
    if (osse_batch_event(e->batch, e->log, ev.seq, stream, ev.version, e->enc.ptr, e->enc.len))
        osse__panic(__FILE__, __LINE__, "out of memory");
    before_change(e, stream);
    if (osse__apply(e, &ev, &err))
        osse__panic(__FILE__, __LINE__, "emitted %s does not apply: %s", osse_event_type_name(type),
                    err.msg);
    e->applied = ev.seq;
    touch(e, stream, ev.seq);
    for (size_t i = 0; i < e->nreactors; i++)
        if (e->reactors[i]->applied)
            e->reactors[i]->applied(e, &ev);
    json_decref(data);
}

void osse__emit(osse_engine_t *e, const char *stream, osse_event_type_t type,
                const osse_principal_t *actor, json_t *data)
{
    emit(e, stream, type, actor, data, NULL);
}

void osse__emit_opened(osse_engine_t *e, const char *stream, const osse_principal_t *actor,
                       const osse_ev_opened_t *opened)
{
    emit(e, stream, OSSE_EV_StepOpened, actor, NULL, opened);
}

void osse__emit_submitted(osse_engine_t *e, const char *stream, const osse_principal_t *actor,
                          const osse_ev_submitted_t *submitted)
{
    emit(e, stream, OSSE_EV_RequestSubmitted, actor, NULL, submitted);
}

static void release_holds(osse_engine_t *e)
{
    while (e->hhead < e->nholds && (e->failed || e->holds[e->hhead].commit <= e->commits_done)) {
        osse_hold_t h = e->holds[e->hhead++];
        h.cb(h.ud, e->failed);
    }
    if (e->hhead == e->nholds)
        e->hhead = e->nholds = 0;
}

int osse_engine_failed(const osse_engine_t *e)
{
    return e->failed;
}

/* A write failed: its batch's events are applied in the projections but not
 * durable, and a failed fsync cannot be retried (docs/design.md, "A failed
 * write"). So nothing held is released as durable any more: the owner is
 * told first (it stops answering), then every hold runs with the status so
 * that what it held is freed, unsent. Every later batch fails too. */
static void commit_failed(osse_engine_t *e, int status)
{
    if (!e->failed) {
        e->failed = status;
        osse_logf(OSSE_LEVEL_ERROR, "log write failed: stopping",
                  "error=%s durable_seq=%llu last_seq=%llu", osse_strerror(status),
                  (unsigned long long)osse_log_durable_seq(e->log),
                  (unsigned long long)osse_log_last_seq(e->log));
        if (e->on_fail)
            e->on_fail(e->on_fail_ud, status);
    }
    release_holds(e);
}

static void on_commit(void *ud, int status)
{
    osse_engine_t *e = ud;
    if (status || e->failed) {
        commit_failed(e, status ? status : e->failed);
        return;
    }
    if (e->hcommit < e->ncommit) {
        size_t i = e->hcommit++;
        osse_hist_observe(&e->append_latency, (double)(uv_hrtime() - e->inflight[i].t0) / 1e9);
        uint64_t size;
        uint8_t root[32];
        if (osse_log_tree_durable(e->log, &size, root))
            for (size_t k = 0; k < e->nreactors; k++)
                if (e->reactors[k]->durable)
                    e->reactors[k]->durable(e, size, root);
        if (e->hcommit == e->ncommit)
            e->hcommit = e->ncommit = 0;
    }
    e->commits_done++;
    release_holds(e);
    osse__cache_trim(e);
}

static void commit_current(osse_engine_t *e)
{
    osse_batch_t *b = e->batch;
    e->batch = NULL;
    if (osse__records_put(e, b))
        osse__panic(__FILE__, __LINE__, "out of memory");
    OSSE_VEC_RESERVE(e->inflight, e->ccommit, e->ncommit + 1);
    e->inflight[e->ncommit].t0 = uv_hrtime();
    e->ncommit++;
    e->commits_sent++;
    osse_log_commit(e->log, b, on_commit, e);
}

int osse__commit_metrics(osse_engine_t *e, osse_buf_t *out)
{
    if (osse_buf_printf(out,
                        "# HELP osse_disk_free_bytes Bytes free on the data folder's filesystem "
                        "at the last sample.\n# TYPE osse_disk_free_bytes gauge\n"
                        "osse_disk_free_bytes %llu\n"
                        "# HELP osse_disk_low 1 while below the free-space reserve (writes "
                        "refused).\n# TYPE osse_disk_low gauge\nosse_disk_low %d\n"
                        "# HELP osse_idempotency_answers Answers remembered for an "
                        "Idempotency-Key, in memory (those of the last 24 hours).\n"
                        "# TYPE osse_idempotency_answers gauge\nosse_idempotency_answers %zu\n"
                        "# HELP osse_payment_answers First answers of recorded payments in "
                        "memory (those of requests in memory, read on demand).\n"
                        "# TYPE osse_payment_answers gauge\nosse_payment_answers %zu\n",
                        (unsigned long long)osse_log_space_free(e->log), osse__storage_low(e),
                        e->idem.len, e->pay_answers.len))
        return OSSE_ENOMEM;
    return osse_hist_render(&e->append_latency, out, "osse_event_append_seconds",
                            "Time from handing a batch of events to the log to its fsync.");
}

static void on_check(uv_check_t *h)
{
    osse_engine_t *e = h->data;
    uv_idle_stop(&e->kick);
    if (e->batch)
        commit_current(e);
    if (e->trim_wanted) {
        e->trim_wanted = false;
        osse__cache_trim(e);
    }
}

bool osse__storage_low(const osse_engine_t *e)
{
    return e->log && osse_log_space_low(e->log);
}

int osse_engine_writable(osse_engine_t *e, osse_fail_t *f)
{
    if (!osse__storage_low(e))
        return 0;
    return osse__fail(f, OSSE_ENOSPC, "insufficient_storage",
                      "the disk of the data folder is nearly full (%llu bytes free, %llu kept in "
                      "reserve): changes are refused until space is freed; reads go on",
                      (unsigned long long)osse_log_space_free(e->log),
                      (unsigned long long)osse_log_space_reserve(e->log));
}

/* The log's writer thread saw the filesystem cross the reserve. Going low
 * needs nothing here (each writer checks the flag); coming back resumes what
 * waited: deadlines that fell due, lookup answers, delivery outcomes. */
static void on_space(void *ud, bool low)
{
    osse_engine_t *e = ud;
    if (low || e->replaying)
        return;
    for (size_t i = 0; i < e->nreactors; i++)
        if (e->reactors[i]->resumed)
            e->reactors[i]->resumed(e);
}

void osse_engine_hold(osse_engine_t *e, osse_hold_cb cb, void *ud)
{
    /* Every event and side record so far is in the current batch or in one
     * already handed to the log; batches complete in order. */
    uint64_t need = e->commits_sent + (e->batch ? 1 : 0);
    if (e->failed || (need <= e->commits_done && e->hhead == e->nholds)) {
        cb(ud, e->failed);
        return;
    }
    OSSE_VEC_PUSH(e->holds, e->nholds, e->chold, ((osse_hold_t){need, cb, ud}));
    if (need <= e->commits_done)
        release_holds(e);
}

static int idem_lookup(osse_engine_t *e, const char *key_hash, const char *body_hash, int *status,
                       char **body)
{
    osse_idem_t *it = osse_map_get(&e->idem, key_hash);
    if (!it || it->at + IDEM_TTL_MS < osse_engine_now(e))
        return 0;
    if (strcmp(it->body_hash, body_hash) != 0)
        return -1;
    *status = it->status;
    *body = osse_strdup(it->body);
    return 1;
}

/* idt/ be64(at) key_hash into out (IDEM_KEY_MAX bytes); its length. */
#define IDEM_KEY_MAX (OSSE_KEY_LEN(OSSE_KEY_IDEM_AT) + 8 + 65)
static size_t idem_key(int64_t at, const char *key_hash, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_IDEM_AT), hl = strlen(key_hash);
    memcpy(out, OSSE_KEY_IDEM_AT, pl);
    osse_be_put(out + pl, (uint64_t)(at < 0 ? 0 : at), 8);
    memcpy(out + pl + 8, key_hash, hl);
    return pl + 8 + hl;
}

static void idem_store(osse_engine_t *e, const char *key_hash, const char *body_hash, int status,
                       const char *body, int64_t at)
{
    osse_idem_t *it = osse_map_get(&e->idem, key_hash);
    if (!it) {
        it = osse_calloc(1, sizeof *it);
        osse_map_put(&e->idem, key_hash, it);
    } else {
        free(it->body);
    }
    snprintf(it->body_hash, sizeof it->body_hash, "%s", body_hash);
    it->status = status;
    it->body = osse_strdup(body);
    it->at = at;
    OSSE_VEC_RESERVE(e->idem_order, e->cidem, e->nidem + 1);
    osse_idem_when_t *w = &e->idem_order[e->nidem++];
    w->at = at;
    snprintf(w->key_hash, sizeof w->key_hash, "%s", key_hash);
}

/* The answers that expired leave memory, and their records are deleted
 * with the batch being filled (b), oldest first; one remembered again
 * since (a later at) stays. So memory and disk hold a day's answers, not
 * every one ever. */
static void idem_prune(osse_engine_t *e, osse_batch_t *b)
{
    int64_t now = osse_engine_now(e);
    while (e->idem_head < e->nidem && e->idem_order[e->idem_head].at + IDEM_TTL_MS < now) {
        const osse_idem_when_t *w = &e->idem_order[e->idem_head++];
        osse_idem_t *it = osse_map_get(&e->idem, w->key_hash);
        if (it && it->at == w->at) {
            osse_map_del(&e->idem, w->key_hash);
            free(it->body);
            free(it);
        }
        uint8_t key[IDEM_KEY_MAX];
        if (osse_batch_delete(b, key, idem_key(w->at, w->key_hash, key)))
            osse__panic(__FILE__, __LINE__, "out of memory");
    }
    if (e->idem_head == e->nidem) {
        e->idem_head = e->nidem = 0;
    } else if (e->idem_head > e->nidem / 2) {
        e->nidem -= e->idem_head;
        memmove(e->idem_order, e->idem_order + e->idem_head, e->nidem * sizeof *e->idem_order);
        e->idem_head = 0;
    }
}

void osse_engine_idem_body_hash(osse_slice_t body, char out[65])
{
    osse__sha256_hex(body.ptr, body.len, out);
}

int osse_engine_idem_begin(osse_engine_t *e, const char *principal, const char *method,
                           osse_slice_t path, osse_slice_t key, osse_slice_t body,
                           osse_idem_state_t *st, int *status, char **answer, osse_fail_t *f)
{
    char body_hash[65];
    osse_engine_idem_body_hash(body, body_hash);
    return osse_engine_idem_begin_hashed(e, principal, method, path, key, body_hash, st, status,
                                         answer, f);
}

int osse_engine_idem_begin_hashed(osse_engine_t *e, const char *principal, const char *method,
                                  osse_slice_t path, osse_slice_t key, const char body_hash[65],
                                  osse_idem_state_t *st, int *status, char **answer, osse_fail_t *f)
{
    memset(st, 0, sizeof *st);
    if (key.len > OSSE_IDEM_KEY_MAX)
        return osse__fail(f, OSSE_EINVAL, "invalid_request",
                          "Idempotency-Key is longer than %d bytes", OSSE_IDEM_KEY_MAX);
    /* NUL after each variable part, so that no two (principal, method, path,
     * key) run together into the same bytes. */
    crypto_hash_sha256_state hs;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&hs);
    crypto_hash_sha256_update(&hs, (const unsigned char *)principal, strlen(principal) + 1);
    crypto_hash_sha256_update(&hs, (const unsigned char *)method, strlen(method) + 1);
    crypto_hash_sha256_update(&hs, (const unsigned char *)path.ptr, path.len);
    crypto_hash_sha256_update(&hs, (const unsigned char *)"", 1);
    crypto_hash_sha256_update(&hs, (const unsigned char *)key.ptr, key.len);
    crypto_hash_sha256_final(&hs, h);
    sodium_bin2hex(st->key_hash, sizeof st->key_hash, h, sizeof h);
    memcpy(st->body_hash, body_hash, sizeof st->body_hash);
    int found = idem_lookup(e, st->key_hash, st->body_hash, status, answer);
    if (found == 1)
        return OSSE_IDEM_REPLAY;
    if (found < 0)
        return OSSE_IDEM_MISMATCH;
    st->armed = true;
    return OSSE_IDEM_NEW;
}

int osse_engine_idem_recheck(osse_engine_t *e, osse_idem_state_t *st, int *status, char **answer)
{
    if (!st->armed)
        return OSSE_IDEM_NEW;
    int found = idem_lookup(e, st->key_hash, st->body_hash, status, answer);
    if (found == 0)
        return OSSE_IDEM_NEW;
    st->armed = false;
    return found == 1 ? OSSE_IDEM_REPLAY : OSSE_IDEM_MISMATCH;
}

void osse_engine_idem_remember(osse_engine_t *e, const osse_idem_state_t *st, int status,
                               const char *body)
{
    if (!st->armed || status < 200 || status >= 300)
        return;
    const char *key_hash = st->key_hash, *body_hash = st->body_hash;
    int64_t now = osse_engine_now(e);
    idem_store(e, key_hash, body_hash, status, body, now);
    json_t *rec = json_pack("{s:s,s:i,s:I,s:s}", "b", body_hash, "s", status, "at", (json_int_t)now,
                            "r", body);
    char *txt = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    uint8_t key[IDEM_KEY_MAX];
    size_t kl = idem_key(now, key_hash, key);
    /* Tests: the layout of an older osse, for the start that moves it. */
    if (e->test_clock && getenv(IDEM_OLD_HOOK))
        kl = (size_t)snprintf((char *)key, sizeof key, OSSE_KEY_IDEM "%s", key_hash);
    if (!e->batch)
        new_batch(e);
    if (!txt || osse_batch_put(e->batch, key, kl, txt, strlen(txt)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    free(txt);
    idem_prune(e, e->batch);
}

typedef struct {
    osse_engine_t *e;
    size_t pl;   /* the prefix's length: idem/ or idt/ be64(at) */
    bool moving; /* idem/: an older osse's, moved to idt/ */
    size_t n;    /* answers kept */
    size_t gone; /* records deleted: expired, or moved */
} idem_load_t;

static int load_idem(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    idem_load_t *l = ud;
    osse_engine_t *e = l->e;
    char k[80];
    if (!osse__record_id(key, klen, l->pl, k, sizeof k))
        return 0;
    json_t *rec = json_loadb(val, vlen, 0, NULL);
    const char *b, *r;
    int s;
    json_int_t at;
    bool live = rec &&
                json_unpack(rec, "{s:s,s:i,s:I,s:s}", "b", &b, "s", &s, "at", &at, "r", &r) == 0 &&
                at + IDEM_TTL_MS >= osse_engine_now(e);
    if (live)
        idem_store(e, k, b, s, r, at);
    if (!live || l->moving)
        osse__batch_need(e);
    uint8_t nk[IDEM_KEY_MAX];
    if ((live && l->moving && osse_batch_put(e->batch, nk, idem_key(at, k, nk), val, vlen)) ||
        ((!live || l->moving) && osse_batch_delete(e->batch, key, klen)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    l->n += live;
    l->gone += !live || l->moving;
    json_decref(rec);
    return 0;
}

static int idem_cmp(const void *a, const void *b)
{
    const osse_idem_when_t *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

int osse__idem_start(osse_engine_t *e, osse_err_t *err)
{
    /* An older osse's first: they move to idt/ (after this start, the
     * scan of idem/ finds nothing). */
    idem_load_t l = {e, OSSE_KEY_LEN(OSSE_KEY_IDEM), true, 0, 0};
    int rc =
        osse_log_kv_scan(e->log, OSSE_KEY_IDEM, OSSE_KEY_LEN(OSSE_KEY_IDEM), load_idem, &l, err);
    size_t moved = l.n;
    /* Those of idt/: expired first (deleted), then the last day's. The
     * expired ones are only those that expired while no answer was
     * remembered (idem_prune deletes the others as it goes). */
    l.pl = OSSE_KEY_LEN(OSSE_KEY_IDEM_AT) + 8;
    l.moving = false;
    if (!rc)
        rc = osse_log_kv_scan(e->log, OSSE_KEY_IDEM_AT, OSSE_KEY_LEN(OSSE_KEY_IDEM_AT), load_idem,
                              &l, err);
    if (rc)
        return rc;
    /* The moved ones joined in the order of their hashes. */
    if (e->nidem > e->idem_head)
        qsort(e->idem_order + e->idem_head, e->nidem - e->idem_head, sizeof *e->idem_order,
              idem_cmp);
    osse_logf(OSSE_LEVEL_INFO, "idempotency answers read", "answers=%zu moved=%zu deleted=%zu", l.n,
              moved, l.gone - moved);
    return 0;
}

void osse__test_clock_store(osse_engine_t *e)
{
    char txt[24];
    int n = snprintf(txt, sizeof txt, "%lld", (long long)e->clock);
    osse__batch_need(e);
    if (osse_batch_put(e->batch, OSSE_KEY_TESTCLOCK, OSSE_KEY_LEN(OSSE_KEY_TESTCLOCK), txt,
                       (size_t)n))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

void osse__react(osse_engine_t *e, const osse_reactor_t *r)
{
    OSSE_PRE(e->nreactors < OSSE_MAX_REACTORS);
    e->reactors[e->nreactors++] = r;
}

int osse__commit_start(osse_engine_t *e, const osse_engine_opts_t *opts, osse_err_t *err)
{
    osse_log_set_reserve(e->log, opts->min_free_bytes);
    if (opts->fault != OSSE_LOG_FAULT_NONE)
        osse_log_fault(e->log, opts->fault, opts->fault_at);
    osse_log_on_space(e->log, on_space, e);
    int rc = osse_log_start(e->log, e->loop, err);
    if (rc)
        return rc;
    uv_check_init(e->loop, &e->flush);
    e->flush.data = e;
    uv_check_start(&e->flush, on_check);
    uv_unref((uv_handle_t *)&e->flush);
    uv_idle_init(e->loop, &e->kick);
    uv_unref((uv_handle_t *)&e->kick);
    return 0;
}

void osse__commit_flush(osse_engine_t *e)
{
    if (e->batch)
        commit_current(e);
}

void osse__commit_stop(osse_engine_t *e)
{
    e->nreactors = 0;
    if (!uv_is_active((uv_handle_t *)&e->flush))
        return;
    uv_check_stop(&e->flush);
    uv_close((uv_handle_t *)&e->flush, NULL);
    uv_idle_stop(&e->kick);
    uv_close((uv_handle_t *)&e->kick, NULL);
}
