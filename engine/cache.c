/* cache.c: ended requests leave memory, and come back from disk when a call
 * names one (issue 13, docs/design.md "Closed requests on disk").
 *
 * Open work stays in memory: a request that has not ended is never let go.
 * An ended one is in e->lru.first's list, least recently used first
 * (osse__request moves the one it finds to the end). Past e->cache_max of
 * them, the least recently used leave memory once nothing pins them and
 * their last record is durable (osse__cache_trim, after each commit): the
 * maps forget them and their slots are emptied (apply.c). Pins are what
 * still holds an ended request: a due entry in the expiries' heap, a
 * linkage call that was under way, a webhook delivery of its events.
 *
 * A call that names a request (api/server.c's route table says by what:
 * id, tracking code, licence number, payment transaction) first asks
 * osse_readback_want for each name; what is not in memory is read on the pool
 * (the request a tracking code names by the event at the seq it permutes,
 * engine/trackcode.h; that of another name by its lookup entry nam/ kind
 * name 0x00 id; then the record req/<id>, and its key by its location:
 * storage/log.h),
 * decoded on the loop and joined to memory, and the call goes on as if it
 * had been there. So a call never sees a request
 * missing that is on disk, and the loop never reads the disk.
 *
 * No read brings back an older record than the latest: a request leaves
 * memory only once every commit that wrote it was durable before the
 * oldest read in flight began (e->rb_first's floor), so what any read
 * in flight finds on disk for it is its last record. And a record read for
 * a request that is in memory by the time the read ends is dropped: the
 * one in memory is the same or newer. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "engine/keys.h"
#include "common/log.h"

typedef struct {
    char kind;
    char *name;
    char *id;  /* the request's id: the name, or found by the lookup */
    void *rec; /* its record as read, or NULL: none */
    size_t reclen;
    bool key;   /* its key was read, into keys at its place */
    int pay;    /* a payment's name: its remembered answer's status + 1, or 0 (payment.c) */
    void *frec; /* a file's name: its record file/<name> as read (the request: taken_by) */
    size_t freclen;
    bool fkey; /* the file's key was read, into keys after the requests' */
    /* A tracking code of OSSE_CODE_CHARS: the seq it permutes (trackcode.h),
     * turned back on the loop, so the code's key stays in the engine; 0
     * when it permutes none. */
    uint64_t seq;
} want_t;

struct osse_readback_s {
    osse_log_t *log;
    osse_keystore_t *ks; /* NULL: an engine without keys */
    uint8_t *keys;       /* n keys, sodium_malloc'd; NULL until read */
    osse_engine_t *e;    /* NULL once ended */
    want_t *v;
    size_t n, c;
    uint64_t floor; /* e->commits_done when it began */
    struct osse_readback_s *prev, *next;
    int rc;
    osse_err_t err;
};

void osse__pin(osse_engine_t *e, const char *id, int delta)
{
    osse_request_t *r = id ? osse_map_get(&e->requests, id) : NULL;
    if (r)
        osse__pins(e, r, delta);
}

/* --- leaving memory --- */

void osse__cache_trim(osse_engine_t *e)
{
    if (e->lru.n <= e->cache_max)
        return;
    uint64_t floor = e->rb_first ? e->rb_first->floor : e->commits_done;
    /* Each one looked at once: one held is moved to the most recently
     * used end, so that the next trims do not walk over it again. */
    for (size_t look = e->lru.n; look && e->lru.n > e->cache_max && e->lru.first; look--) {
        osse_request_t *r = e->lru.first;
        OSSE_PRE(!r->pins);
        if (r->dirty || r->commit > floor) {
            osse__rlist_remove(&e->lru, r);
            osse__rlist_add(&e->lru, r);
            continue;
        }
        osse__apply_evict(e, r);
        osse__request_free(r);
    }
}

int osse__cache_metrics(const osse_engine_t *e, osse_buf_t *out)
{
    return osse_buf_printf(
        out,
        "# HELP osse_cache_requests_in_memory Requests in memory: those not ended, and the ended "
        "ones of the cache.\n# TYPE osse_cache_requests_in_memory gauge\n"
        "osse_cache_requests_in_memory %zu\n"
        "# HELP osse_cache_ended_in_memory Ended requests in memory (--request-cache bounds them, "
        "but for the pinned).\n# TYPE osse_cache_ended_in_memory gauge\n"
        "osse_cache_ended_in_memory %zu\n"
        "# HELP osse_cache_ended_pinned Ended requests that something holds in memory (an expiry "
        "in the heap's window, a webhook delivery, a linkage call).\n"
        "# TYPE osse_cache_ended_pinned gauge\nosse_cache_ended_pinned %zu\n"
        "# HELP osse_cache_evicted_total Ended requests that left memory.\n"
        "# TYPE osse_cache_evicted_total counter\nosse_cache_evicted_total %llu\n"
        "# HELP osse_cache_read_back_total Ended requests read back from disk.\n"
        "# TYPE osse_cache_read_back_total counter\nosse_cache_read_back_total %llu\n",
        e->open.n + e->lru.n + e->npinned, e->lru.n + e->npinned, e->npinned,
        (unsigned long long)e->evictions, (unsigned long long)e->read_back);
}

/* --- reading back --- */

osse_readback_t *osse__readback_new(osse_engine_t *e)
{
    osse_readback_t *f = osse_calloc(1, sizeof *f);
    f->log = e->log;
    f->ks = e->keystore;
    f->e = e;
    f->floor = e->commits_done;
    f->prev = e->rb_last;
    if (e->rb_last)
        e->rb_last->next = f;
    else
        e->rb_first = f;
    e->rb_last = f;
    return f;
}

static void unlink_rb(osse_readback_t *f)
{
    osse_engine_t *e = f->e;
    if (!e)
        return;
    if (f->prev)
        f->prev->next = f->next;
    else
        e->rb_first = f->next;
    if (f->next)
        f->next->prev = f->prev;
    else
        e->rb_last = f->prev;
    f->e = NULL;
}

void osse__readback_add(osse_readback_t *f, char kind, const char *name)
{
    OSSE_VEC_RESERVE(f->v, f->c, f->n + 1);
    f->v[f->n++] = (want_t){.kind = kind, .name = osse_strdup(name)};
}

/* Whether the request name names is in memory. */
static bool resident(osse_engine_t *e, osse_name_kind_t kind, const char *name)
{
    switch (kind) {
    case OSSE_NAME_ID: return osse__request(e, name) != NULL;
    case OSSE_NAME_CODE: return osse_map_get(&e->codes, name) != NULL;
    case OSSE_NAME_LICENCE: return osse_map_get(&e->licnums, name) != NULL;
    /* A payment's request and its remembered answer: the answers of the
     * requests in memory are read on demand (payment.c). */
    case OSSE_NAME_PAYMENT:
        return osse_map_get(&e->payments, name) && osse_map_get(&e->pay_answers, name);
    /* The caller asks for a file only when it is not in memory (files.c:
     * the files of open work are). */
    case OSSE_NAME_FILE: return false;
    }
    return false;
}

void osse_readback_want(osse_engine_t *e, osse_readback_t **f, osse_name_kind_t kind,
                        const char *name)
{
    /* A code is looked up upper-cased (trackcode.h), in memory as on disk. */
    char code[OSSE__CODE_SIZE];
    if (kind == OSSE_NAME_CODE && name && !osse_trackcode_key(name, code, sizeof code))
        return; /* too long to be one: the call answers 404 */
    if (kind == OSSE_NAME_CODE && name)
        name = code;
    if (!name || !*name || resident(e, kind, name))
        return;
    /* With no request out of memory only a payment's answer, or the record
     * of a file an ended request took, is on disk. */
    if (!e->some_evicted && kind != OSSE_NAME_PAYMENT && kind != OSSE_NAME_FILE)
        return;
    if (!*f)
        *f = osse__readback_new(e);
    osse__readback_add(*f, (char)kind, name);
    uint64_t seq;
    if (kind == OSSE_NAME_CODE && osse_trackcode_of_seq(name) && e->code_bits &&
        osse_trackcode_seq(e->code_key, e->code_bits, name, &seq) == 0)
        (*f)->v[(*f)->n - 1].seq = seq;
}

/* The first lookup entry of a name: its id is the key's tail. */
static int found_id(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    want_t *w = ud;
    const char *k = key;
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_NAME) + 1 + strlen(w->name) + 1;
    if (klen > pl)
        w->id = osse_strndup(k + pl, klen - pl);
    return 1; /* the first is enough */
}

/* The keys of the requests read, by their locations: one read of the
 * key store for them all. */
static void read_keys(osse_readback_t *f)
{
    const char **ids = osse_malloc(2 * f->n * sizeof *ids);
    bool *found = osse_calloc(2 * f->n, sizeof *found);
    size_t n = 0;
    /* The requests' keys, then the files'. */
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].rec)
            ids[n++] = f->v[i].id;
    for (size_t i = 0; i < f->n; i++)
        if (f->v[i].frec)
            ids[n++] = f->v[i].name;
    if (n && !(f->keys = sodium_malloc(n * OSSE_KEY_BYTES)))
        f->rc = osse_err_set(&f->err, OSSE_ENOMEM, "no memory for keys");
    else if (n)
        f->rc = osse_log_keys_read(f->log, f->ks, ids, n, f->keys, found, &f->err);
    size_t k = 0;
    for (size_t i = 0; !f->rc && i < f->n; i++)
        if (f->v[i].rec)
            f->v[i].key = found[k++];
    for (size_t i = 0; !f->rc && i < f->n; i++)
        if (f->v[i].frec)
            f->v[i].fkey = found[k++];
    free(found);
    free(ids);
}

/* A file's record (file/<name>) and the request that took it into w->id.
 * Returns 0 or the read's error. Pool. */
static int file_get(osse_log_t *log, want_t *w, osse_err_t *err)
{
    char key[OSSE_KEY_LEN(OSSE_KEY_UPLOAD) + 80];
    int kl = snprintf(key, sizeof key, OSSE_KEY_UPLOAD "%s", w->name);
    if (kl <= 0 || (size_t)kl >= sizeof key)
        return 0; /* longer than any id: none */
    int rc = osse_log_kv_get(log, key, (size_t)kl, &w->frec, &w->freclen, err);
    if (rc)
        return rc == OSSE_ENOTFOUND ? 0 : rc;
    json_t *o = json_loadb(w->frec, w->freclen, 0, NULL);
    const char *by = json_string_value(json_object_get(o, "taken_by"));
    if (by)
        w->id = osse_strdup(by);
    else {
        free(w->frec); /* not taken: not read back (files.c) */
        w->frec = NULL;
    }
    json_decref(o);
    return 0;
}

/* A tracking code of OSSE_CODE_CHARS characters names the request whose
 * first seq it permutes (trackcode.h; w->seq): the request of the event at
 * that seq, when that event is a RequestSubmitted of this code, into w->id.
 * Returns 0 (also for a code of no request) or the read's error. Pool. */
static int code_get(osse_readback_t *f, want_t *w)
{
    if (!w->seq)
        return 0;
    void *bytes = NULL;
    size_t len = 0;
    int rc = osse_log_get(f->log, w->seq, &bytes, &len, &f->err);
    if (rc)
        return rc == OSSE_ENOTFOUND ? 0 : rc;
    osse_event_t ev;
    rc = osse_event_decode(bytes, len, &ev, &f->err);
    free(bytes);
    if (rc)
        return rc;
    const char *id = osse__stream_id(ev.stream, OSSE_SK_REQUEST),
               *code = ev.submitted ? ev.submitted->tracking_code
                                    : osse__jstr(ev.data, "tracking_code");
    if (ev.type == OSSE_EV_RequestSubmitted && id && code && strcmp(code, w->name) == 0)
        w->id = osse_strdup(id);
    osse_event_clear(&ev);
    return 0;
}

/* A payment's first answer (payanswer/<key>, payment.c): its status + 1
 * into *st, 0 when none is remembered. Returns 0 or OSSE_EIO. Pool. */
static int pay_answer_get(osse_log_t *log, const char *key, int *st, osse_err_t *err)
{
    char k[OSSE__PAY_ANSWER_KEY_MAX];
    size_t kl = osse__pay_answer_key(key, k);
    void *val = NULL;
    size_t vlen = 0;
    char v[32];
    osse_rstatus_t s;
    *st = 0;
    if (!kl)
        return 0; /* longer than any key written: none */
    int rc = osse_log_kv_get(log, k, kl, &val, &vlen, err);
    if (!rc && osse__record_text(val, vlen, v, sizeof v) && osse__rstatus_parse(v, &s) == 0)
        *st = (int)s + 1;
    free(val);
    return rc == OSSE_ENOTFOUND ? 0 : rc;
}

void osse_readback_run(osse_readback_t *f)
{
    for (size_t i = 0; i < f->n && !f->rc; i++) {
        want_t *w = &f->v[i];
        if (w->kind == OSSE_NAME_PAYMENT &&
            (f->rc = pay_answer_get(f->log, w->name, &w->pay, &f->err)))
            break;
        if (w->kind == OSSE_NAME_ID) {
            w->id = osse_strdup(w->name);
        } else if (w->kind == OSSE_NAME_FILE) {
            if ((f->rc = file_get(f->log, w, &f->err)))
                break;
        } else if (w->kind == OSSE_NAME_CODE && osse_trackcode_of_seq(w->name)) {
            if ((f->rc = code_get(f, w)))
                break;
        } else {
            uint8_t pre[OSSE__IX_KEY_MAX];
            size_t pl = osse__ix_name_key(w->kind, w->name, NULL, pre);
            if (!pl)
                continue; /* longer than any name written: none */
            int rc = osse_log_kv_scan(f->log, pre, pl, found_id, w, &f->err);
            if (rc < 0) {
                f->rc = rc;
                break;
            }
        }
        if (!w->id)
            continue;
        int rc = osse__record_get_ended(f->log, w->id, &w->rec, &w->reclen, &f->err);
        if (rc == OSSE_ENOTFOUND) {
            w->rec = NULL;
            continue;
        }
        if (rc)
            f->rc = rc;
    }
    if (!f->rc && f->ks && f->n)
        read_keys(f);
}

/* A payment's answer read joins memory with its request (apply.c drops it
 * when the request leaves): one whose request is not in memory is not
 * kept. */
static void pay_join(osse_engine_t *e, const want_t *w)
{
    if (w->kind == OSSE_NAME_PAYMENT && w->pay && osse_map_get(&e->payments, w->name))
        osse_map_put(&e->pay_answers, w->name, (void *)(uintptr_t)w->pay);
}

int osse__readback_join(osse_engine_t *e, osse_readback_t *f, osse_err_t *err)
{
    unlink_rb(f);
    /* Reads alone (no commit trims after them) hold no more than the cache
     * and what one loop iteration read back: the trim waits for the end of
     * the iteration (commit.c), when the calls that asked have used what
     * they named. */
    e->trim_wanted = true;
    if (f->rc) {
        osse_err_set(err, f->rc, "%s", f->err.msg);
        return f->rc;
    }
    size_t nrec = 0;
    for (size_t i = 0; i < f->n; i++)
        nrec += f->v[i].rec != NULL;
    for (size_t i = 0, k = 0, fk = nrec; i < f->n; i++) {
        want_t *w = &f->v[i];
        const uint8_t *key = w->rec && w->key ? f->keys + OSSE_KEY_BYTES * k : NULL;
        k += w->rec != NULL;
        /* A file joins with its request (which the record read brings,
         * below): files.c keeps it while the request is in memory. */
        if (w->frec && e->file_join)
            e->file_join(e, w->name, w->frec, w->freclen,
                         w->fkey ? f->keys + OSSE_KEY_BYTES * fk : NULL);
        fk += w->frec != NULL;
        if (!w->rec || osse_map_get(&e->requests, w->id)) {
            pay_join(e, w);
            continue;
        }
        osse_request_t *r = NULL;
        int rc = osse__record_read(e, w->id, strlen(w->id), w->rec, w->reclen, &r, err);
        if (rc)
            return rc;
        if (!osse__rstatus_final(r->status)) {
            /* Open work never leaves memory: a record of an open request
             * not in memory is not one this engine wrote. */
            osse__request_free(r);
            return osse_err_set(err, OSSE_ECORRUPT, "the record of %s is open, not in memory",
                                w->id);
        }
        osse__apply_rejoin(e, r);
        /* An erased request's key may be read before its removal's end:
         * nothing opens its values any more. */
        if (key && !r->erased_at && osse__pii_key_set(e, r->id, key))
            return osse_err_set(err, OSSE_ENOMEM, "no memory for a key");
        e->read_back++;
        pay_join(e, w);
    }
    return 0;
}

int osse_readback_end(osse_engine_t *e, osse_readback_t *f, osse_fail_t *fail)
{
    osse_err_t err = {0};
    int rc = osse__readback_join(e, f, &err);
    osse_readback_free(f);
    if (rc) {
        osse_logf(OSSE_LEVEL_ERROR, "request not read back", "error=\"%s\"", err.msg);
        return osse__fail(fail, OSSE_EIO, "internal", "a request cannot be read from disk");
    }
    return 0;
}

void osse_readback_free(osse_readback_t *f)
{
    if (!f)
        return;
    unlink_rb(f);
    for (size_t i = 0; i < f->n; i++) {
        free(f->v[i].name);
        free(f->v[i].id);
        free(f->v[i].rec);
        free(f->v[i].frec);
    }
    free(f->v);
    sodium_free(f->keys); /* wipes */
    free(f);
}
