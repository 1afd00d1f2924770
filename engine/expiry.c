/* expiry.c: the wall-clock expiries of requests: licences expire at their
 * valid_until (SPEC §2: LicenceExpired, not for a revoked licence), and a
 * workflow's retention erases a request's personal data that long after
 * it ended (SPEC §8: erasure.c, reason "retention").
 *
 * A small min-heap of (time, request index, kind) beside timers.c's SLA
 * heap, kept apart so that the SLA deadlines' kinds stay theirs; timers.c
 * fires both in due order (it hears LicenceIssued and a request's final
 * event and adds them here, and rebuilds this heap from the projections at
 * start, so what fell due while the process was down fires once). An entry
 * is checked when it reaches the top: a licence revoked (or already expired)
 * meanwhile, a request erased meanwhile, is dropped. A million entries hold
 * 16 MB of heap and no handle.
 *
 * Retention is wall-clock time (osse_duration_add_wall: UTC days, calendar
 * months and years), never working time, counted from the `at` of the
 * request's final event. */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/time.h"

typedef struct osse_lexp_s lexp_t;

static int64_t until_of(const osse_request_t *r)
{
    int64_t t = 0;
    const char *s = osse__jstr(r->licence, "valid_until");
    return s && osse_time_parse(s, &t) == 0 ? t : 0;
}

static bool lexp_before(const lexp_t *a, const lexp_t *b)
{
    return a->at < b->at ||
           (a->at == b->at && (a->req < b->req || (a->req == b->req && a->kind < b->kind)));
}

static void lexp_push(osse_engine_t *e, lexp_t t)
{
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

/* When r's personal data is due for erasure by retention, or 0: none, not
 * ended, or erased already. */
static int64_t retention_due(const osse_request_t *r)
{
    if (!r->ended_at || r->erased_at || r->wf->retention.kind != OSSE_DUR_WALL)
        return 0;
    return osse_duration_add_wall(&r->wf->retention, r->ended_at);
}

/* Whether entry t is still due: a valid licence's expiry, or the erasure of
 * a request not yet erased. */
static bool lexp_current(osse_engine_t *e, const lexp_t *t)
{
    if (t->req >= e->nreqs)
        return false;
    const osse_request_t *r = e->reqs[t->req];
    if (t->kind == OSSE_EXPIRY_RETENTION)
        return retention_due(r) == t->at;
    return r->licence && !r->licence_revoked_at && !r->licence_expired_at && until_of(r) == t->at;
}

void osse__licence_expiry_add(osse_engine_t *e, const osse_request_t *r)
{
    int64_t at = r->licence && !r->licence_revoked_at && !r->licence_expired_at ? until_of(r) : 0;
    if (at)
        lexp_push(e, (lexp_t){at, r->index, OSSE_EXPIRY_LICENCE});
}

void osse__retention_add(osse_engine_t *e, const osse_request_t *r)
{
    int64_t at = retention_due(r);
    if (at)
        lexp_push(e, (lexp_t){at, r->index, OSSE_EXPIRY_RETENTION});
}

void osse__licence_expiry_rebuild(osse_engine_t *e)
{
    e->nlexp = 0;
    /* The heap's order is total (at, request, kind): the order of the
     * pushes does not matter. */
    for (size_t i = 0; i < e->nreqs; i++) {
        osse__licence_expiry_add(e, e->reqs[i]);
        osse__retention_add(e, e->reqs[i]);
    }
}

int64_t osse__licence_expiry_next(osse_engine_t *e)
{
    while (e->nlexp && !lexp_current(e, &e->lexp[0]))
        lexp_pop(e);
    return e->nlexp ? e->lexp[0].at : INT64_MAX;
}

void osse__licence_expiry_fire(osse_engine_t *e)
{
    if (osse__licence_expiry_next(e) == INT64_MAX)
        return;
    lexp_t t = lexp_pop(e);
    osse_request_t *r = e->reqs[t.req];
    if (t.kind == OSSE_EXPIRY_RETENTION) {
        /* The key store's rewrite follows on the pool (erasure.c). */
        osse__erase(e, r, NULL, "retention", NULL, NULL);
        return;
    }
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_LicenceExpired, NULL,
               json_pack("{s:O,s:o}", "number", json_object_get(r->licence, "number"),
                         "valid_until", osse__time_json(t.at)));
}
