/* expiry.c: licences expire at their valid_until (SPEC §2: LicenceExpired,
 * not for a revoked licence).
 *
 * A small min-heap of (valid_until, request index) beside timers.c's SLA
 * heap, kept apart so that the SLA deadlines' kinds stay theirs; timers.c
 * fires both in due order (it hears LicenceIssued and adds the licence here,
 * and rebuilds this heap from the projection at start, so what fell due
 * while the process was down fires once). An entry is checked when it
 * reaches the top: a licence revoked (or already expired) meanwhile is
 * dropped. A million licences hold 16 MB of heap and no handle. */
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
    return a->at < b->at || (a->at == b->at && a->req < b->req);
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

/* Whether entry t is still a valid licence's expiry. */
static bool lexp_current(osse_engine_t *e, const lexp_t *t)
{
    if (t->req >= e->nreqs)
        return false;
    const osse_request_t *r = e->reqs[t->req];
    return r->licence && !r->licence_revoked_at && !r->licence_expired_at && until_of(r) == t->at;
}

void osse__licence_expiry_add(osse_engine_t *e, const osse_request_t *r)
{
    int64_t at = r->licence && !r->licence_revoked_at && !r->licence_expired_at ? until_of(r) : 0;
    if (at)
        lexp_push(e, (lexp_t){at, r->index});
}

void osse__licence_expiry_rebuild(osse_engine_t *e)
{
    e->nlexp = 0;
    for (size_t i = 0; i < e->nlics; i++)
        osse__licence_expiry_add(e, e->lics[i]);
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
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_LicenceExpired, NULL,
               json_pack("{s:O,s:o}", "number", json_object_get(r->licence, "number"),
                         "valid_until", osse__time_json(t.at)));
}
