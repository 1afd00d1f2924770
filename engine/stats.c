/* stats.c: the statistics, GET /v1/stats (SPEC §10).
 *
 * Counted per stint (internal.h): a stretch during which one agency held an
 * open task. So a breach stays with the agency that breached, also after an
 * escalation; a deemed or automatic approval is never a decision by a
 * person; and a task returned to the applicant is neither open nor overdue
 * until the applicant answers, nor is that time decision time (its SLA clock
 * stopped too). Decisions, approvals, escalations and breaches count in the
 * range [from, to) and in the bucket of their own time; `open` and `overdue`
 * are the tasks held at the range's last instant (at most now) and, in a
 * bucket, at the bucket's last instant. A bucket's open tasks are added as a
 * difference array, so the cost is one pass over the stints plus one over
 * the buckets.
 *
 * No request is walked: the stints that ended come from the stints index on
 * disk (index.c, sti/ by end time), read by a scan on the pool from the
 * first end time that can count in the range; the stints still held come
 * from memory, the agencies' `active` task lists (open work), when the scan
 * is finished on the loop. */
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"

static const char *param(const json_t *params, const char *k)
{
    return json_string_value(json_object_get(params, k));
}

#define DAY_MS 86400000LL
/* 1970-01-05, the epoch's first Monday: weeks start on Mondays, 00:00 UTC. */
#define MONDAY_MS (4 * DAY_MS)
#define MAX_BUCKETS 1000

enum {
    ST_OPEN,
    ST_OVERDUE,
    ST_PERSON,
    ST_WITHIN,
    ST_AUTO,
    ST_DEEMED,
    ST_ESCALATED,
    ST_BREACHES,
    ST__COUNT
};

typedef struct {
    char *agency, *workflow; /* owned */
} stat_row_t;

/* A decision time, in the whole range (bucket UINT32_MAX) or in a bucket. */
typedef struct {
    uint32_t row, bucket;
    int64_t ms;
} stat_time_t;

typedef struct {
    int64_t from, to; /* [from, to); to is INT64_MAX when not given */
    int64_t last;     /* the range's last instant: min(to - 1, now) */
    int64_t width, first;
    size_t nb;        /* buckets; 0 without bucket= */
    osse_map_t index; /* "agency workflow" -> row + 1 */
    stat_row_t *rows;
    size_t nrows, crows;
    int64_t *tot; /* [row][ST__COUNT] */
    int64_t *bkt; /* [row][nb + 1][ST__COUNT]; open/overdue as differences until summed */
    stat_time_t *times;
    size_t ntimes, ctimes;
} stats_t;

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

/* The index of the bucket holding t (negative before the first). */
static int64_t bucket_of(const stats_t *st, int64_t t)
{
    return floor_div(t - st->first, st->width);
}

static int64_t bucket_floor(int64_t t, int64_t width)
{
    int64_t origin = width == DAY_MS ? 0 : MONDAY_MS;
    return origin + floor_div(t - origin, width) * width;
}

static uint32_t stat_row(stats_t *st, const char *agency, const char *workflow)
{
    char key[160];
    snprintf(key, sizeof key, "%s %s", agency, workflow);
    uintptr_t have = (uintptr_t)osse_map_get(&st->index, key);
    if (have)
        return (uint32_t)(have - 1);
    size_t old = st->crows;
    OSSE_VEC_RESERVE(st->rows, st->crows, st->nrows + 1);
    if (st->crows != old) {
        /* tot and bkt are parallel to rows: crows rows each. */
        size_t per = (st->nb + 1) * ST__COUNT;
        st->tot = osse_reallocarray(st->tot, st->crows, ST__COUNT * sizeof *st->tot);
        st->bkt = st->nb ? osse_reallocarray(st->bkt, st->crows, per * sizeof *st->bkt) : NULL;
    }
    uint32_t row = (uint32_t)st->nrows++;
    st->rows[row] = (stat_row_t){osse_strdup(agency), osse_strdup(workflow)};
    memset(&st->tot[row * ST__COUNT], 0, ST__COUNT * sizeof *st->tot);
    if (st->nb)
        memset(&st->bkt[row * (st->nb + 1) * ST__COUNT], 0,
               (st->nb + 1) * ST__COUNT * sizeof *st->bkt);
    osse_map_put(&st->index, key, (void *)(uintptr_t)(row + 1));
    return row;
}

static int64_t *bkt_at(stats_t *st, uint32_t row, size_t b)
{
    return &st->bkt[(row * (st->nb + 1) + b) * ST__COUNT];
}

static bool in_range(const stats_t *st, int64_t t)
{
    return t && t >= st->from && t < st->to;
}

/* One more of `field` at time t (already in range). */
static void count_at(stats_t *st, uint32_t row, int field, int64_t t)
{
    st->tot[row * ST__COUNT + field]++;
    int64_t b = st->nb ? bucket_of(st, t) : -1;
    if (b >= 0 && (size_t)b < st->nb)
        bkt_at(st, row, (size_t)b)[field]++;
}

static void time_at(stats_t *st, uint32_t row, uint32_t bucket, int64_t ms)
{
    OSSE_VEC_RESERVE(st->times, st->ctimes, st->ntimes + 1);
    st->times[st->ntimes++] = (stat_time_t){row, bucket, ms};
}

/* A task held over [start, end) (end 0: still held) counts as `field` in
 * every bucket whose last instant (capped at st->last) falls in it. */
static void held_over(stats_t *st, uint32_t row, int field, int64_t start, int64_t end)
{
    if (!st->nb || start > st->last)
        return;
    int64_t lo = bucket_of(st, start), hi = (int64_t)st->nb - 1;
    if (lo < 0)
        lo = 0;
    if (end && end <= st->last)
        hi = bucket_of(st, end) - 1; /* that bucket's last instant is past end */
    if (hi < lo)
        return;
    bkt_at(st, row, (size_t)lo)[field]++;
    bkt_at(st, row, (size_t)hi + 1)[field]--;
}

static bool held_at(const osse_stint_t *t, int64_t at)
{
    return t->start <= at && (!t->end || t->end > at);
}

static void count_stint(stats_t *st, uint32_t row, const osse_stint_t *t)
{
    int64_t *tot = &st->tot[row * ST__COUNT];
    if (held_at(t, st->last)) {
        tot[ST_OPEN]++;
        if (t->overdue_from && t->overdue_from <= st->last)
            tot[ST_OVERDUE]++;
    }
    held_over(st, row, ST_OPEN, t->start, t->end);
    if (t->overdue_from)
        held_over(st, row, ST_OVERDUE, t->overdue_from, t->end);
    int field = t->how == OSSE_STINT_PERSON           ? ST_PERSON
                : t->how == OSSE_STINT_AUTO           ? ST_AUTO
                : t->how == OSSE_STINT_DEEMED_APPROVE ? ST_DEEMED
                : t->how == OSSE_STINT_ESCALATED      ? ST_ESCALATED
                                                      : -1;
    if (field >= 0 && in_range(st, t->end)) {
        count_at(st, row, field, t->end);
        if (field == ST_PERSON) {
            if (t->within_sla)
                count_at(st, row, ST_WITHIN, t->end);
            time_at(st, row, UINT32_MAX, t->work_ms);
            int64_t b = st->nb ? bucket_of(st, t->end) : -1;
            if (b >= 0 && (size_t)b < st->nb)
                time_at(st, row, (uint32_t)b, t->work_ms);
        }
    }
    if (in_range(st, t->breached_at))
        count_at(st, row, ST_BREACHES, t->breached_at);
}

static int cmp_time(const void *a, const void *b)
{
    const stat_time_t *x = a, *y = b;
    if (x->row != y->row)
        return x->row < y->row ? -1 : 1;
    if (x->bucket != y->bucket)
        return x->bucket < y->bucket ? -1 : 1;
    return x->ms < y->ms ? -1 : x->ms > y->ms;
}

/* Medians in hours, -1 where there is no decision: med[row * (nb + 1) + b],
 * b == nb for the whole range. */
static double *medians(stats_t *st)
{
    size_t per = st->nb + 1;
    double *med = osse_calloc(st->nrows * per, sizeof *med);
    for (size_t i = 0; i < st->nrows * per; i++)
        med[i] = -1;
    if (st->ntimes) /* qsort wants a non-null base, also for nothing */
        qsort(st->times, st->ntimes, sizeof *st->times, cmp_time);
    for (size_t i = 0; i < st->ntimes;) {
        size_t j = i;
        while (j < st->ntimes && st->times[j].row == st->times[i].row &&
               st->times[j].bucket == st->times[i].bucket)
            j++;
        /* The middle one, or the mean of the two middle ones. */
        size_t n = j - i;
        double m =
            n % 2 ? (double)st->times[i + n / 2].ms
                  : ((double)st->times[i + n / 2 - 1].ms + (double)st->times[i + n / 2].ms) / 2;
        size_t b = st->times[i].bucket == UINT32_MAX ? st->nb : st->times[i].bucket;
        med[st->times[i].row * per + b] = m / 3600000.0;
        i = j;
    }
    return med;
}

static json_t *row_json(const stat_row_t *row, const int64_t *c, double median)
{
    return json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:o}", "agency", row->agency, "workflow",
        row->workflow, "open", (json_int_t)c[ST_OPEN], "overdue", (json_int_t)c[ST_OVERDUE],
        "decided_by_person", (json_int_t)c[ST_PERSON], "decided_within_sla",
        (json_int_t)c[ST_WITHIN], "share_within_sla",
        c[ST_PERSON] ? json_real((double)c[ST_WITHIN] / (double)c[ST_PERSON]) : json_null(),
        "auto_approved", (json_int_t)c[ST_AUTO], "deemed_approved", (json_int_t)c[ST_DEEMED],
        "escalated_away", (json_int_t)c[ST_ESCALATED], "breaches", (json_int_t)c[ST_BREACHES],
        "median_decision_working_hours", median >= 0 ? json_real(median) : json_null());
}

/* Rows are shown by agency, then workflow. */
typedef struct {
    const stat_row_t *row;
    uint32_t i;
} row_ref_t;

static int cmp_row(const void *a, const void *b)
{
    const stat_row_t *x = ((const row_ref_t *)a)->row, *y = ((const row_ref_t *)b)->row;
    int c = strcmp(x->agency, y->agency);
    return c ? c : strcmp(x->workflow, y->workflow);
}

static bool any_nonzero(const int64_t *c)
{
    for (int k = 0; k < ST__COUNT; k++)
        if (c[k])
            return true;
    return false;
}

/* An instant parameter: RFC 3339, or a date (00:00 UTC). A `+` of an offset
 * that was not percent-encoded arrives as a space, and is read as `+`. */
static int time_param(const json_t *params, const char *k, int64_t *out, osse_fail_t *f)
{
    const char *s = param(params, k);
    char buf[64];
    int64_t days;
    if (!s)
        return 0;
    snprintf(buf, sizeof buf, "%s", s);
    char *sp = strlen(buf) > 19 ? strchr(buf + 19, ' ') : NULL;
    if (sp)
        *sp = '+';
    if (strlen(s) < sizeof buf && osse_time_parse(buf, out) == 0)
        return 0;
    if (osse_date_parse(s, &days) == 0) {
        *out = days * DAY_MS;
        return 0;
    }
    osse__detail(f, k, "must be an RFC 3339 time or a date (YYYY-MM-DD)");
    return osse__fail(f, OSSE_EINVAL, "invalid_request", "%s is invalid", k);
}

static void stats_close(stats_t *st)
{
    osse_map_close(&st->index);
    for (size_t i = 0; i < st->nrows; i++) {
        free(st->rows[i].agency);
        free(st->rows[i].workflow);
    }
    free(st->rows);
    free(st->tot);
    free(st->bkt);
    free(st->times);
}

/* What the scan needs of the query: the range and its buckets, checked and
 * set on the loop. */
typedef struct {
    int64_t from, to, last, width, first;
    size_t nb;
} stats_q_t;

/* Pool thread: a stint that began after the range's last instant counts in
 * nothing (nor does one of a request submitted after it). An entry that
 * does not decode is kept, and finish fails. */
static bool stats_keep(const osse_scan_t *s, const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    (void)key, (void)klen;
    const stats_q_t *q = s->q;
    osse__stint_entry_t t;
    if (osse__ix_stint_decode(val, vlen, &t))
        return true;
    bool keep = t.submitted_at <= q->last && t.t.start <= q->last;
    osse__ix_stint_clear(&t);
    return keep;
}

typedef struct {
    uint32_t req;
    uint16_t step;
} held_ref_t;

static int cmp_held(const void *a, const void *b)
{
    const held_ref_t *x = a, *y = b;
    if (x->req != y->req)
        return x->req < y->req ? -1 : 1;
    return (int)x->step - (int)y->step;
}

/* The stints still held, from memory: each is the last stint of a step not
 * ended, under the step's agency, whose `active` list holds the step (apply.c
 * adds it there when the stint begins; an inbox read drops it only once it
 * ended or moved). A step sits in the lists of every agency that held it
 * (an escalation) and a list keeps steps that ended until an inbox read: a
 * held stint is counted once, under its own agency. Read only. */
static void collect_held(osse_engine_t *e, stats_t *st)
{
    held_ref_t *refs = NULL;
    size_t n = 0, cap = 0;
    const char *k;
    void *v;
    for (size_t it = 0; osse_map_next(&e->agencies, &it, &k, &v);) {
        const osse_agency_t *a = v;
        for (size_t i = 0; i < a->nactive; i++) {
            const osse_taskref_t *ref = &a->active[i];
            const osse_request_t *r = osse__slot(e, ref->req);
            const osse_step_t *s = r ? &r->steps[ref->step] : NULL;
            if (!s || !s->nstints || s->stints[s->nstints - 1].how != OSSE_STINT_HELD ||
                !s->stints[s->nstints - 1].agency ||
                strcmp(s->stints[s->nstints - 1].agency, a->id) != 0)
                continue;
            OSSE_VEC_RESERVE(refs, cap, n + 1);
            refs[n++] = (held_ref_t){ref->req, ref->step};
        }
    }
    if (n > 1)
        qsort(refs, n, sizeof *refs, cmp_held);
    for (size_t i = 0; i < n; i++) {
        if (i && cmp_held(&refs[i - 1], &refs[i]) == 0)
            continue;
        const osse_request_t *r = osse__slot(e, refs[i].req);
        const osse_step_t *s = &r->steps[refs[i].step];
        const osse_stint_t *t = &s->stints[s->nstints - 1];
        if (r->submitted_at <= st->last && t->start <= st->last)
            count_stint(st, stat_row(st, t->agency, r->wfe->id), t);
    }
    free(refs);
}

static void stats_drop(osse_scan_t *s)
{
    free(s->q);
}

/* Loop thread: the ended stints the scan kept, the held ones from memory,
 * then the answer as it always was. */
static int stats_finish(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f)
{
    const stats_q_t *q = s->q;
    stats_t st = {.from = q->from,
                  .to = q->to,
                  .last = q->last,
                  .width = q->width,
                  .first = q->first,
                  .nb = q->nb};
    osse_map_init(&st.index);
    for (size_t i = 0; i < s->nrows; i++) {
        osse__stint_entry_t t;
        if (s->rows[i].klen != OSSE__IX_STINT_KEY_LEN ||
            osse__ix_stint_decode(s->rows[i].val, s->rows[i].vlen, &t)) {
            stats_close(&st);
            return osse__fail(f, OSSE_EIO, "internal", "a damaged entry of the stints index");
        }
        count_stint(&st, stat_row(&st, t.agency, t.workflow), &t.t);
        osse__ix_stint_clear(&t);
    }
    collect_held(e, &st);
    /* Every (agency, workflow) with a stint begun by the last instant has
     * its row, also one that counts nothing in the range (a stint that
     * ended before from): from the metrics' rows, one per pair. */
    const char *k;
    void *v;
    for (size_t it = 0; osse_map_next(&e->task_rows, &it, &k, &v);) {
        const osse_task_row_t *row = v;
        if (row->began && row->first_at <= st.last)
            stat_row(&st, row->agency, row->workflow);
    }
    double *med = medians(&st);
    size_t per = st.nb + 1;
    row_ref_t *order = osse_calloc(st.nrows ? st.nrows : 1, sizeof *order);
    for (uint32_t i = 0; i < st.nrows; i++)
        order[i] = (row_ref_t){&st.rows[i], i};
    if (st.nrows > 1)
        qsort(order, st.nrows, sizeof *order, cmp_row);
    json_t *rows = json_array();
    for (size_t i = 0; i < st.nrows; i++)
        json_array_append_new(rows, row_json(order[i].row, &st.tot[order[i].i * ST__COUNT],
                                             med[order[i].i * per + st.nb]));
    *out = json_pack("{s:o}", "rows", rows);
    if (st.width) {
        /* Open and overdue were added as differences: sum them up. */
        for (size_t i = 0; i < st.nrows; i++)
            for (size_t b = 1; b < st.nb; b++)
                for (int k = ST_OPEN; k <= ST_OVERDUE; k++)
                    bkt_at(&st, (uint32_t)i, b)[k] += bkt_at(&st, (uint32_t)i, b - 1)[k];
        json_t *buckets = json_array();
        for (size_t b = 0; b < st.nb; b++) {
            json_t *brows = json_array();
            for (size_t i = 0; i < st.nrows; i++) {
                const int64_t *c = bkt_at(&st, order[i].i, b);
                double m = med[order[i].i * per + b];
                if (any_nonzero(c) || m >= 0)
                    json_array_append_new(brows, row_json(order[i].row, c, m));
            }
            json_array_append_new(buckets,
                                  json_pack("{s:o,s:o}", "start",
                                            osse__time_json(st.first + (int64_t)b * st.width),
                                            "rows", brows));
        }
        json_object_set_new(*out, "buckets", buckets);
    }
    free(order);
    free(med);
    stats_close(&st);
    return 0;
}

int osse_q_stats(osse_engine_t *e, json_t *params, osse_scan_t **out, osse_fail_t *f)
{
    static const char *const allowed[] = {"from", "to", "bucket", NULL};
    stats_t st = {.from = 0, .to = INT64_MAX};
    int rc = osse__check_params(params, allowed, f);
    if (rc || (rc = time_param(params, "from", &st.from, f)) ||
        (rc = time_param(params, "to", &st.to, f)))
        return rc;
    const char *bucket = param(params, "bucket");
    if (bucket && strcmp(bucket, "week") && strcmp(bucket, "day")) {
        osse__detail(f, "bucket", "must be week or day");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "bucket is invalid");
    }
    if (st.to <= st.from) {
        osse__detail(f, "to", "must be after from");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the range is empty");
    }
    int64_t now = osse_engine_now(e);
    st.last = st.to - 1 < now ? st.to - 1 : now;
    if (bucket) {
        st.width = bucket[0] == 'w' ? 7 * DAY_MS : DAY_MS;
        /* Without from, buckets begin with the first request. */
        int64_t begin = param(params, "from") ? st.from
                        : e->any_request      ? e->first_submitted_at
                                              : st.last;
        st.first = bucket_floor(begin, st.width);
        int64_t n = begin <= st.last ? bucket_of(&st, st.last) + 1 : 0;
        if (n > MAX_BUCKETS) {
            osse__detail(f, "bucket", "more than %d buckets: narrow from and to", MAX_BUCKETS);
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "too many buckets");
        }
        st.nb = (size_t)n;
    }
    /* The ended stints that can count: a stint that ended at `end` counts
     * in count_stint only where end >= from (in_range of its decision, and
     * its breach, which came before its end) or end > last (held_at the
     * last instant, or held_over a bucket up to the last one). One that
     * ended before from and by last is in nothing: held_over ends it in the
     * bucket before the one holding end (bucket 0 at the latest, which
     * holds from), so hi < lo. So the scan starts at min(from, last + 1);
     * last + 1 only matters were now before a stint's end (a clock that
     * went back). */
    int64_t lo = st.from < st.last + 1 ? st.from : st.last + 1;
    uint8_t start[OSSE__IX_KEY_MAX], stop[OSSE__IX_KEY_MAX];
    size_t slen = osse__ix_stint_key(lo, 0, 0, 0, start);
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_STINT);
    memcpy(stop, OSSE_KEY_STINT, pl);
    stop[pl - 1]++; /* "sti0": past every entry */
    osse_scan_t *s = osse__scan_new(e, start, slen, stop, pl, 0);
    stats_q_t *q = osse_calloc(1, sizeof *q);
    *q = (stats_q_t){st.from, st.to, st.last, st.width, st.first, st.nb};
    s->q = q;
    s->keep = stats_keep;
    s->finish = stats_finish;
    s->drop = stats_drop;
    *out = s;
    return 0;
}
