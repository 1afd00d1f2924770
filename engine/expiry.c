/* expiry.c: the wall-clock expiries of requests: licences expire at their
 * valid_until (SPEC §2: LicenceExpired, not for a revoked licence), and a
 * workflow's retention erases a request's personal data that long after
 * it ended (SPEC §8: erasure.c, reason "retention").
 *
 * Each is an entry of the index due/ (keys.h; written by index.c with the
 * request's record, deleted once it no longer applies), soonest first. A
 * min-heap of (time, request index, kind) beside timers.c's SLA heap holds
 * the entries up to a horizon, read from the index a window at a time
 * (--due-window, 4096 by default): at start the first window (before the
 * loop runs), then the next one on the libuv pool when the clock reaches
 * the horizon (the firing waits for it, in due order), and for a test
 * clock move everything due by its new time before the move. So memory
 * holds a window, not every valid licence ever issued. An entry added live
 * (timers.c hears LicenceIssued and a request's final event) goes into the
 * heap when it is within the horizon; beyond it, it is on disk once its
 * batch is durable, and until then waits in a pending list that a read of
 * the index merges. An entry is checked when it reaches the top: a licence
 * revoked (or already expired) meanwhile, a request erased meanwhile, is
 * dropped. A start that replayed the log (no records yet, a migration)
 * fills the heap from every request instead.
 *
 * Retention is wall-clock time (osse_duration_add_wall: UTC days, calendar
 * months and years), never working time, counted from the `at` of the
 * request's final event. */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"

typedef struct osse_lexp_s lexp_t;

/* What a read of the index keeps: for a test clock move, where it reads up
 * to (the window reads use only rb). */
typedef struct {
    uint8_t horizon[OSSE__IX_KEY_MAX + 1];
    size_t hlen;
    uint64_t durable;
    int64_t to;
    osse_readback_t *rb; /* the rows' requests, read with them */
    osse_engine_t *e;
} upto_q_t;

static bool lexp_before(const lexp_t *a, const lexp_t *b)
{
    return a->at < b->at ||
           (a->at == b->at && (a->req < b->req || (a->req == b->req && a->kind < b->kind)));
}

/* An entry in the heap or the pending list pins its request in memory
 * (cache.c): it names it by slot. */
static void pin_slot(osse_engine_t *e, uint32_t req, int delta)
{
    osse_request_t *r = osse__slot(e, req);
    OSSE_PRE(r);
    osse__pins(e, r, delta);
}

static void lexp_push(osse_engine_t *e, lexp_t t)
{
    pin_slot(e, t.req, 1);
    OSSE_VEC_RESERVE(e->lexp, e->clexp, e->nlexp + 1);
    size_t i = e->nlexp++;
    e->lexp[i] = t;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!lexp_before(&e->lexp[i], &e->lexp[p]))
            break;
        lexp_t x = e->lexp[i];
        e->lexp[i] = e->lexp[p];
        e->lexp[p] = x;
        i = p;
    }
}

static lexp_t lexp_pop(osse_engine_t *e)
{
    lexp_t top = e->lexp[0];
    pin_slot(e, top.req, -1);
    e->lexp[0] = e->lexp[--e->nlexp];
    size_t i = 0, n = e->nlexp;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && lexp_before(&e->lexp[l], &e->lexp[m]))
            m = l;
        if (r < n && lexp_before(&e->lexp[r], &e->lexp[m]))
            m = r;
        if (m == i)
            break;
        lexp_t x = e->lexp[i];
        e->lexp[i] = e->lexp[m];
        e->lexp[m] = x;
        i = m;
    }
    return top;
}

/* Whether entry t is still due: a valid licence's expiry, or the erasure of
 * a request not yet erased. */
static bool lexp_current(osse_engine_t *e, const lexp_t *t)
{
    const osse_request_t *r = osse__slot(e, t->req);
    if (!r)
        return false;
    return (t->kind == OSSE_EXPIRY_RETENTION ? osse__due_retention(r) : osse__due_licence(r)) ==
           t->at;
}

/* --- the window: what of the due/ index the heap holds --- */

/* Whether the entry (at, kind, id) is beyond the horizon: stored, not held. */
static bool beyond(const osse_engine_t *e, int64_t at, uint8_t kind, const char *id)
{
    if (e->due_all)
        return false;
    uint8_t k[OSSE__IX_KEY_MAX];
    size_t n = osse__ix_due_key(at, kind, id, k), h = e->due_horizon_len;
    int c = memcmp(k, e->due_horizon, n < h ? n : h);
    return c > 0 || (c == 0 && n > h);
}

static int heap_order(const void *a, const void *b)
{
    return lexp_before(a, b) ? -1 : lexp_before(b, a) ? 1 : 0;
}

/* Entries in the order of the index's keys (at, kind, id). */
static const osse_engine_t *sort_e;
static int key_order(const void *a, const void *b)
{
    const lexp_t *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(osse__slot(sort_e, x->req)->id, osse__slot(sort_e, y->req)->id);
}

/* The heap holds at most twice the window: past that (a folder whose heap
 * began with every entry, or a clock that stood still while licences were
 * issued), it keeps the window's first entries, the horizon moves to the
 * last kept, and the others are the index's again (in the pending list
 * until their batch is durable): what the heap pins stays a window. */
static void shrink(osse_engine_t *e)
{
    if (e->nlexp <= 2 * e->due_window)
        return;
    sort_e = e;
    qsort(e->lexp, e->nlexp, sizeof *e->lexp, key_order); /* a sorted array is a heap */
    size_t keep = e->due_window;
    const lexp_t *last = &e->lexp[keep - 1];
    e->due_horizon_len =
        osse__ix_due_key(last->at, last->kind, osse__slot(e, last->req)->id, e->due_horizon);
    e->due_all = false;
    for (size_t i = keep; i < e->nlexp; i++) {
        const lexp_t *t = &e->lexp[i];
        const osse_request_t *r = osse__slot(e, t->req);
        uint64_t commit = r->dirty ? e->commits_sent + 1 : r->commit;
        if (commit > e->commits_done) {
            OSSE_VEC_RESERVE(e->due_pend, e->cdue_pend, e->ndue_pend + 1);
            e->due_pend[e->ndue_pend++] = (struct osse_due_pend_s){t->at, t->req, t->kind, commit};
        } else {
            pin_slot(e, t->req, -1);
        }
    }
    e->nlexp = keep;
    /* In the heap's own order: a sorted array is a heap. */
    qsort(e->lexp, e->nlexp, sizeof *e->lexp, heap_order);
}

static void due_add(osse_engine_t *e, const osse_request_t *r, int64_t at, uint8_t kind)
{
    if (!at)
        return;
    if (!beyond(e, at, kind, r->id)) {
        lexp_push(e, (lexp_t){at, r->index, kind});
        shrink(e);
        return;
    }
    /* On disk once this batch is: until then a read of the index would not
     * see it. Those durable are forgotten when no read is under way (one
     * that began before their batch was durable would miss them), so that
     * what the list pins stays near a window. */
    if (e->ndue_pend >= 2 * e->due_window && !e->due_reads) {
        size_t keep = 0;
        for (size_t i = 0; i < e->ndue_pend; i++) {
            if (e->due_pend[i].commit > e->commits_done)
                e->due_pend[keep++] = e->due_pend[i];
            else
                pin_slot(e, e->due_pend[i].req, -1);
        }
        e->ndue_pend = keep;
    }
    OSSE_VEC_RESERVE(e->due_pend, e->cdue_pend, e->ndue_pend + 1);
    e->due_pend[e->ndue_pend++] = (struct osse_due_pend_s){at, r->index, kind, e->commits_sent + 1};
    pin_slot(e, r->index, 1);
}

void osse__licence_expiry_add(osse_engine_t *e, const osse_request_t *r)
{
    due_add(e, r, osse__due_licence(r), OSSE_EXPIRY_LICENCE);
}

void osse__retention_add(osse_engine_t *e, const osse_request_t *r)
{
    due_add(e, r, osse__due_retention(r), OSSE_EXPIRY_RETENTION);
}

/* The rows of a read of the index (keys from just past the horizon, in
 * order): into the heap; the horizon moves to the last row, or past every
 * entry when the read reached the end (all: it was not cut by a limit).
 * durable: commits_done when the read began; an entry added beyond the old
 * horizon is pushed now if within the new one, and forgotten once the read
 * saw its batch durable. */
static void take_rows(osse_engine_t *e, osse_scan_t *s, const osse__row_t *rows, size_t n, bool all,
                      const uint8_t *horizon, size_t hlen, uint64_t durable)
{
    /* The requests of the rows that are not in memory, read with them. */
    osse_err_t err = {0};
    if (osse__readback_join(e, ((upto_q_t *)s->q)->rb, &err))
        osse_logf(OSSE_LEVEL_ERROR, "due requests not read back", "error=\"%s\"", err.msg);
    for (size_t i = 0; i < n; i++) {
        int64_t at;
        uint8_t kind;
        char id[OSSE__RID_SIZE + 64];
        if (osse__ix_due_decode(rows[i].key, rows[i].klen, &at, &kind, id, sizeof id)) {
            osse_logf(OSSE_LEVEL_WARN, "damaged due entry", "len=%zu", rows[i].klen);
            continue;
        }
        const osse_request_t *r = osse__request(e, id);
        if (r)
            lexp_push(e, (lexp_t){at, r->index, kind});
        else
            osse_logf(OSSE_LEVEL_ERROR, "due entry without its request", "request=%s", id);
    }
    if (all) {
        e->due_all = true;
    } else if (hlen) {
        memcpy(e->due_horizon, horizon, hlen);
        e->due_horizon_len = hlen;
    }
    size_t keep = 0;
    for (size_t i = 0; i < e->ndue_pend; i++) {
        struct osse_due_pend_s p = e->due_pend[i];
        const osse_request_t *r = osse__slot(e, p.req);
        if (!beyond(e, p.at, p.kind, r->id))
            lexp_push(e, (lexp_t){p.at, p.req, p.kind});
        else if (p.commit > durable) {
            e->due_pend[keep++] = p;
            continue;
        }
        pin_slot(e, p.req, -1);
    }
    e->ndue_pend = keep;
}

/* The start of a read past the horizon: its key, and a 0 byte after it. */
static size_t after_horizon(const osse_engine_t *e, uint8_t *out)
{
    size_t n = e->due_horizon_len;
    if (!n) {
        memcpy(out, OSSE_KEY_DUE, OSSE_KEY_LEN(OSSE_KEY_DUE));
        return OSSE_KEY_LEN(OSSE_KEY_DUE);
    }
    memcpy(out, e->due_horizon, n);
    out[n] = 0;
    return n + 1;
}

static size_t due_stop(uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_DUE);
    memcpy(out, OSSE_KEY_DUE, pl);
    out[pl - 1]++; /* "due0": past every entry */
    return pl;
}

/* Pool: the rows' requests, read with them (cache.c joins those not in
 * memory when the rows are taken). */
static void rows_requests(osse_scan_t *s)
{
    upto_q_t *q = s->q;
    char id[OSSE__IX_KEY_MAX];
    int64_t at;
    uint8_t kind;
    for (size_t i = 0; i < s->nrows; i++)
        if (osse__ix_due_decode(s->rows[i].key, s->rows[i].klen, &at, &kind, id, sizeof id) == 0)
            osse__readback_add(q->rb, OSSE_NAME_ID, id);
    osse_readback_run(q->rb);
}

static void due_drop(osse_scan_t *s)
{
    upto_q_t *q = s->q;
    q->e->due_reads--;
    osse_readback_free(q->rb);
    free(q);
}

static osse_scan_t *due_scan(osse_engine_t *e, const uint8_t *start, size_t sl, const uint8_t *stop,
                             size_t el, size_t want)
{
    osse_scan_t *s = osse__scan_new(e, start, sl, stop, el, want);
    upto_q_t *q = osse_calloc(1, sizeof *q);
    q->rb = osse__readback_new(e);
    q->e = e;
    e->due_reads++;
    s->q = q;
    s->after = rows_requests;
    s->drop = due_drop;
    return s;
}

/* A read of the next window of the index, past the horizon. */
static osse_scan_t *window_scan(osse_engine_t *e)
{
    uint8_t start[OSSE__IX_KEY_MAX + 1], stop[16];
    size_t sl = after_horizon(e, start), el = due_stop(stop);
    return due_scan(e, start, sl, stop, el, e->due_window);
}

/* Its rows into the heap: it reached the end unless it stopped at its
 * limit, and the horizon moves to its last row. */
static void take_window(osse_engine_t *e, osse_scan_t *s, uint64_t durable)
{
    const osse__row_t *last = s->nrows ? &s->rows[s->nrows - 1] : NULL;
    take_rows(e, s, s->rows, s->nrows, s->nrows < s->want, last ? last->key : NULL,
              last ? last->klen : 0, durable);
}

/* The next window, read on the pool when the real clock reached the
 * horizon. */
typedef struct {
    uv_work_t work;
    osse_engine_t *e;
    osse_scan_t *s;
    uint64_t durable;
} refill_t;

static void refill_work(uv_work_t *w)
{
    osse_scan_run(((refill_t *)w->data)->s);
}

static void refill_done(uv_work_t *w, int status)
{
    refill_t *j = w->data;
    osse_engine_t *e = j->e;
    osse_scan_t *s = j->s;
    e->due_reading = false;
    if (status || s->rc)
        osse_logf(OSSE_LEVEL_ERROR, "due index not read", "error=\"%s\"",
                  status ? "cancelled" : s->err.msg);
    else
        take_window(e, s, j->durable);
    osse_scan_free(s);
    free(j);
    /* The deadlines that waited for it (nothing when stopping). */
    if (e->due_back && !status)
        e->due_back(e);
}

static void refill(osse_engine_t *e)
{
    if (e->due_reading || e->due_all)
        return;
    refill_t *j = osse_calloc(1, sizeof *j);
    j->e = e;
    j->s = window_scan(e);
    j->durable = e->commits_done;
    j->work.data = j;
    e->due_reading = true;
    if (uv_queue_work(e->loop, &j->work, refill_work, refill_done) != 0) {
        e->due_reading = false;
        osse_scan_free(j->s);
        free(j);
    }
}

int osse__licence_expiry_rebuild(osse_engine_t *e, bool from_disk)
{
    while (e->nlexp)
        lexp_pop(e);
    for (size_t i = 0; i < e->ndue_pend; i++)
        pin_slot(e, e->due_pend[i].req, -1);
    e->ndue_pend = 0;
    e->due_horizon_len = 0;
    e->due_all = !from_disk;
    if (!e->due_window)
        e->due_window = OSSE__DUE_WINDOW;
    if (!from_disk) {
        for (size_t i = 0; i < e->nreqs; i++) {
            osse_request_t *r = osse__slot(e, i);
            if (!r)
                continue;
            osse__licence_expiry_add(e, r);
            osse__retention_add(e, r);
        }
        return 0;
    }
    /* The first window, read here: the loop does not run yet. */
    osse_scan_t *s = window_scan(e);
    osse_scan_run(s);
    int rc = s->rc;
    if (!rc)
        take_window(e, s, e->commits_done);
    osse_scan_free(s);
    return rc;
}

int64_t osse__licence_expiry_next(osse_engine_t *e)
{
    while (e->nlexp && !lexp_current(e, &e->lexp[0]))
        lexp_pop(e);
    if (e->nlexp)
        return e->lexp[0].at;
    if (e->due_all)
        return INT64_MAX;
    /* Nothing held: what is stored begins at the horizon's time (or
     * anywhere, before the first read). */
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_DUE);
    if (e->due_horizon_len < pl + 9)
        return INT64_MIN;
    int64_t at = osse_be_get_signed(e->due_horizon + pl);
    /* A test clock's horizon (kind 0xff) holds every entry of its instant. */
    return e->due_horizon[pl + 8] == 0xff ? at + 1 : at;
}

bool osse__licence_expiry_fire(osse_engine_t *e)
{
    if (osse__licence_expiry_next(e) == INT64_MAX)
        return true;
    if (!e->nlexp) {
        refill(e);
        return false;
    }
    lexp_t t = lexp_pop(e);
    osse_request_t *r = osse__slot(e, t.req);
    OSSE_PRE(r); /* an entry of the heap pins its request (expiry.c) */
    if (t.kind == OSSE_EXPIRY_RETENTION) {
        /* The key store's rewrite follows on the pool (erasure.c). */
        osse__erase(e, r, NULL, "retention", NULL, NULL);
        return true;
    }
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_LicenceExpired, NULL,
               json_pack("{s:O,s:o}", "number", json_object_get(r->licence, "number"),
                         "valid_until", osse__time_json(t.at)));
    return true;
}

/* --- the test clock: everything due by its new time, read at once --- */

osse_scan_t *osse__due_scan_upto(osse_engine_t *e, int64_t to)
{
    /* Nothing to read when the heap reaches `to` already. */
    if (!beyond(e, to, 0xff, ""))
        return NULL;
    uint8_t start[OSSE__IX_KEY_MAX + 1], stop[OSSE__IX_KEY_MAX];
    size_t sl = after_horizon(e, start);
    /* Every entry at or before `to`: below (to, kind 0xff). */
    size_t el = osse__ix_due_key(to, 0xff, "", stop);
    osse_scan_t *s = due_scan(e, start, sl, stop, el, 0);
    upto_q_t *q = s->q;
    memcpy(q->horizon, stop, el);
    q->hlen = el;
    q->durable = e->commits_done;
    q->to = to;
    return s;
}

int64_t osse__due_take(osse_engine_t *e, osse_scan_t *s)
{
    upto_q_t *q = s->q;
    /* The read stopped at `to`, not at a limit: the horizon is `to` unless
     * the heap reached further meanwhile (another move, a window read). */
    size_t h = e->due_horizon_len, n = q->hlen < h ? q->hlen : h;
    int c = memcmp(e->due_horizon, q->horizon, n);
    bool further = e->due_all || c > 0 || (c == 0 && h > q->hlen);
    take_rows(e, s, s->rows, s->nrows, false, further ? NULL : q->horizon, further ? 0 : q->hlen,
              q->durable);
    return q->to;
}
