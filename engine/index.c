/* index.c: the indexes on disk (issue 13, docs/design.md "Views on disk").
 *
 * A request shows in the global views (the request list today; the
 * inboxes' history, the registry and the statistics next) as entries of
 * indexes: side records under a prefix per index, whose keys sort in the
 * view's order and whose values hold what the view shows of the entry and
 * what its filters test. Each index is one producer in OSSE_INDEXES: a pure
 * function of the request's projection that adds the request's entries.
 *
 * They are written with the request's record, in the same batch as the
 * events that changed it (record.c calls osse__ix_write), as the
 * difference between the entries the producers give now and those written
 * last: a key no longer given is deleted, a new key or a changed value is
 * put, an unchanged one is not written again. What was written last is kept
 * with the request as its keys and a 64-bit hash of each value
 * (r->ix), sorted by key; a request read from its record at start gets it
 * from the producers, since the record is the projection that was written.
 *
 * Reads go through a scan (osse_scan_t): prepared on the loop by a query,
 * run on the libuv pool (osse_scan_run: one range of one index, filtered
 * there by the query's own test of each value, which reads nothing but the
 * value), and finished on the loop, where the query renders the rows it
 * kept. So a view reads only what the batches made durable, and the loop
 * never reads the disk.
 *
 * osse replay --data rebuilds every request from the log, gives it to the
 * producers and compares their entries with the stored ones, and counts
 * the stored entries no request gives (osse_engine_records_check). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "common/buf.h"
#include "common/time.h"

/* Each index: its key prefix and its producer. */
#define OSSE_INDEXES(X)                                                                            \
    X(OSSE_KEY_LIST, ix_list)                                                                      \
    X(OSSE_KEY_INBOX, ix_inbox)                                                                    \
    X(OSSE_KEY_DUE, ix_due)                                                                        \
    X(OSSE_KEY_LICENCE, ix_licence)                                                                \
    X(OSSE_KEY_STINT, ix_stints) X(OSSE_KEY_NAME, ix_names)

/* --- entries being given: a buffer of [u16 klen][key][u32 vlen][value] --- */

static void ix_add(osse__ix_t *x, const void *key, size_t klen, const void *val, size_t vlen)
{
    OSSE_PRE(klen <= OSSE__IX_KEY_MAX);
    uint8_t h[6];
    osse_be_put(h, klen, 2);
    osse_be_put(h + 2, vlen, 4);
    if (osse_buf_append(&x->buf, h, 2) || osse_buf_append(&x->buf, key, klen) ||
        osse_buf_append(&x->buf, h + 2, 4) || osse_buf_append(&x->buf, val, vlen))
        x->oom = true;
    x->n++;
}

/* --- the request list: lst/ be64(~first seq), newest first --- */

size_t osse__ix_list_key(uint64_t seq0, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_LIST);
    memcpy(out, OSSE_KEY_LIST, pl);
    osse_be_put(out + pl, ~seq0, 8);
    return pl + 8;
}

/* An agency has a task in a request once one of its steps has opened: a
 * step still pending (or skipped) was never given to it. */
static bool gave_task(const osse_request_t *r, size_t upto, const char *agency)
{
    for (size_t i = 0; i < upto; i++)
        if (r->steps[i].opened_at && r->steps[i].agency && strcmp(r->steps[i].agency, agency) == 0)
            return true;
    return false;
}

/* [id, workflow, workflow_version, status, version, submitted_at,
 *  tracking_code, portal, breached, [agency with a task...]] */
static void ix_list(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    (void)e;
    osse_buf_t *v = &x->val;
    osse_buf_reset(v);
    size_t nag = 0;
    bool breached = false;
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        breached |= strcmp(s->sla_state, "breached") == 0;
        nag += s->opened_at && s->agency && !gave_task(r, i, s->agency);
    }
    int rc = osse_mp_put_array(v, 10) || osse_mp_put_str(v, r->id) ||
             osse_mp_put_str(v, r->wfe->id) || osse_mp_put_uint(v, (uint64_t)r->wf_version) ||
             osse_mp_put_uint(v, r->status) || osse_mp_put_uint(v, r->version) ||
             osse_mp_put_int(v, r->submitted_at) || osse_mp_put_str(v, r->tracking_code) ||
             osse_mp_put_str(v, r->portal) || osse_mp_put_uint(v, breached) ||
             osse_mp_put_array(v, nag);
    for (size_t i = 0; !rc && i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        if (s->opened_at && s->agency && !gave_task(r, i, s->agency))
            rc = osse_mp_put_str(v, s->agency);
    }
    if (rc) {
        x->oom = true;
        return;
    }
    uint8_t key[OSSE__IX_KEY_MAX];
    ix_add(x, key, osse__ix_list_key(r->seqs[0], key), v->ptr, v->len);
}

int osse__ix_list_decode(const void *val, size_t vlen, osse__list_entry_t *out)
{
    osse_mp_rd_t rd = {.p = val, .end = (const uint8_t *)val + vlen};
    size_t n = 0;
    uint64_t wfv = 0, st = 0, ver = 0, br = 0;
    memset(out, 0, sizeof *out);
    int rc = osse_mp_get_array(&rd, 10, &n) || osse_mp_get_str(&rd, &out->id) ||
             osse_mp_get_str(&rd, &out->workflow) || osse_mp_get_uint(&rd, INT32_MAX, &wfv) ||
             osse_mp_get_uint(&rd, OSSE_RS__COUNT - 1, &st) ||
             osse_mp_get_uint(&rd, UINT32_MAX, &ver) || osse_mp_get_int(&rd, &out->submitted_at) ||
             osse_mp_get_str(&rd, &out->tracking_code) || osse_mp_get_str(&rd, &out->portal) ||
             osse_mp_get_uint(&rd, 1, &br) || osse_mp_get_array(&rd, SIZE_MAX, &out->nagencies);
    if (!rc && out->nagencies > OSSE_WF_MAX_STEPS)
        rc = OSSE_ECORRUPT;
    if (!rc && out->nagencies)
        out->agencies = osse_calloc(out->nagencies, sizeof *out->agencies);
    for (size_t i = 0; !rc && i < out->nagencies; i++)
        rc = osse_mp_get_str(&rd, &out->agencies[i]);
    if (!rc && (!out->id || !out->workflow || !out->tracking_code || rd.p != rd.end))
        rc = OSSE_ECORRUPT;
    if (rc) {
        osse__ix_list_clear(out);
        return OSSE_ECORRUPT;
    }
    out->workflow_version = (int)wfv;
    out->status = (osse_rstatus_t)st;
    out->version = (uint32_t)ver;
    out->breached = br;
    return 0;
}

void osse__ix_list_clear(osse__list_entry_t *l)
{
    free(l->id);
    free(l->workflow);
    free(l->tracking_code);
    free(l->portal);
    for (size_t i = 0; l->agencies && i < l->nagencies; i++)
        free(l->agencies[i]);
    free(l->agencies);
    memset(l, 0, sizeof *l);
}

/* --- the wall-clock expiries: due/ be64(at) kind id, soonest first --- */

int64_t osse__due_licence(const osse_request_t *r)
{
    int64_t t = 0;
    const char *s = r->licence && !r->licence_revoked_at && !r->licence_expired_at
                        ? osse__jstr(r->licence, "valid_until")
                        : NULL;
    return s && osse_time_parse(s, &t) == 0 ? t : 0;
}

int64_t osse__due_retention(const osse_request_t *r)
{
    if (!r->ended_at || r->erased_at || r->wf->retention.kind != OSSE_DUR_WALL)
        return 0;
    return osse_duration_add_wall(&r->wf->retention, r->ended_at);
}

size_t osse__ix_due_key(int64_t at, uint8_t kind, const char *id, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_DUE), il = strlen(id);
    OSSE_PRE(pl + 9 + il <= OSSE__IX_KEY_MAX);
    memcpy(out, OSSE_KEY_DUE, pl);
    osse_be_put_signed(out + pl, at);
    out[pl + 8] = kind;
    memcpy(out + pl + 9, id, il);
    return pl + 9 + il;
}

int osse__ix_due_decode(const void *key, size_t klen, int64_t *at, uint8_t *kind, char *id,
                        size_t idn)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_DUE);
    const uint8_t *k = key;
    if (klen <= pl + 9 || klen - pl - 9 >= idn || memcmp(k, OSSE_KEY_DUE, pl) != 0 ||
        (k[pl + 8] != OSSE_EXPIRY_LICENCE && k[pl + 8] != OSSE_EXPIRY_RETENTION))
        return OSSE_ECORRUPT;
    *at = osse_be_get_signed(k + pl);
    *kind = k[pl + 8];
    memcpy(id, k + pl + 9, klen - pl - 9);
    id[klen - pl - 9] = '\0';
    return 0;
}

/* A valid licence's expiry and a retention erasure to come: the keys say
 * all, the values are empty. */
static void ix_due(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    (void)e;
    uint8_t key[OSSE__IX_KEY_MAX];
    int64_t at = osse__due_licence(r);
    if (at)
        ix_add(x, key, osse__ix_due_key(at, OSSE_EXPIRY_LICENCE, r->id, key), "", 0);
    if ((at = osse__due_retention(r)))
        ix_add(x, key, osse__ix_due_key(at, OSSE_EXPIRY_RETENTION, r->id, key), "", 0);
}

/* --- the public registry: lic/ be64(~LicenceIssued's seq), newest first --- */

size_t osse__ix_licence_key(uint64_t licence_seq, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_LICENCE);
    memcpy(out, OSSE_KEY_LICENCE, pl);
    osse_be_put(out + pl, ~licence_seq, 8);
    return pl + 8;
}

/* A public field as q searches it: a string as it is, anything else as
 * compact JSON. NULL when it cannot be made. */
static char *field_text(const json_t *v)
{
    return json_is_string(v) ? osse_strdup(json_string_value(v))
                             : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* [status, workflow, [number, public field as text...], entry]: status 0
 * valid, 1 expired, 2 revoked; the entry is osse__licence_entry(r, false)
 * as the list shows it. Recorded state only (revoked_at, expired_at): no
 * clock. */
static void ix_licence(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    (void)e;
    if (!r->licence || !r->licence_seq)
        return;
    osse_buf_t *v = &x->val;
    osse_buf_reset(v);
    const char *st = osse__licence_status(r);
    unsigned status = strcmp(st, "revoked") == 0 ? 2 : strcmp(st, "expired") == 0 ? 1 : 0;
    const char *number = osse__jstr(r->licence, "number");
    const json_t *pub = json_object_get(r->licence, "public_fields");
    size_t nt = (number != NULL) + json_object_size(pub);
    json_t *entry = osse__licence_entry(r, false);
    int rc = !entry || osse_mp_put_array(v, 4) || osse_mp_put_uint(v, status) ||
             osse_mp_put_str(v, r->wfe->id) || osse_mp_put_array(v, nt) ||
             (number && osse_mp_put_str(v, number));
    const char *k;
    json_t *f;
    json_object_foreach((json_t *)pub, k, f)
    {
        char *t = rc ? NULL : field_text(f);
        rc = rc || !t || osse_mp_put_str(v, t);
        free(t);
    }
    rc = rc || osse_mp_put_json(v, entry);
    json_decref(entry);
    if (rc) {
        x->oom = true;
        return;
    }
    uint8_t key[OSSE__IX_KEY_MAX];
    ix_add(x, key, osse__ix_licence_key(r->licence_seq, key), v->ptr, v->len);
}

int osse__ix_licence_decode(const void *val, size_t vlen, bool entry, osse__licence_row_t *out)
{
    osse_mp_rd_t rd = {.p = val, .end = (const uint8_t *)val + vlen};
    uint64_t st = 0;
    memset(out, 0, sizeof *out);
    int rc = osse_mp_get_array(&rd, 4, NULL) || osse_mp_get_uint(&rd, 2, &st) ||
             osse_mp_get_str(&rd, &out->workflow) || osse_mp_get_array(&rd, SIZE_MAX, &out->ntexts);
    /* Each text is at least one byte: a count past the bytes left is damage. */
    if (!rc && out->ntexts > vlen)
        rc = OSSE_ECORRUPT;
    if (!rc && out->ntexts)
        out->texts = osse_calloc(out->ntexts, sizeof *out->texts);
    for (size_t i = 0; !rc && i < out->ntexts; i++)
        rc = osse_mp_get_str(&rd, &out->texts[i]) || !out->texts[i];
    if (!rc) {
        const uint8_t *j;
        size_t jlen;
        rc = entry ? osse_mp_get_json(&rd, &out->entry) || !json_is_object(out->entry)
                   : osse_mp_skip_json(&rd, &j, &jlen);
    }
    if (!rc && (!out->workflow || rd.p != rd.end))
        rc = OSSE_ECORRUPT;
    if (rc) {
        osse__ix_licence_clear(out);
        return OSSE_ECORRUPT;
    }
    out->status = (unsigned)st;
    return 0;
}

void osse__ix_licence_clear(osse__licence_row_t *l)
{
    free(l->workflow);
    for (size_t i = 0; l->texts && i < l->ntexts; i++)
        free(l->texts[i]);
    free(l->texts);
    json_decref(l->entry);
    memset(l, 0, sizeof *l);
}

/* --- the stints: sti/ be64(end) be64(first seq) be16(step) be32(place) ---
 *
 * The statistics (stats.c) read the stints that ended from here and those
 * still held from memory (open work). An ended stint does not change
 * afterwards (apply.c: a breach is recorded on the held stint only, the
 * working time and within_sla when it ends, and a resumption after a
 * return is a new stint), so an entry is written once; the producer runs
 * again on every change of its request anyway, and a changed value would
 * simply be written again. */

size_t osse__ix_stint_key(int64_t end, uint64_t seq0, uint16_t step, uint32_t place, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_STINT);
    memcpy(out, OSSE_KEY_STINT, pl);
    /* Times since 1970 (an ended stint's end is an event's `at`): sorts as
     * the numbers do; a time before is put at 0. */
    osse_be_put(out + pl, end > 0 ? (uint64_t)end : 0, 8);
    osse_be_put(out + pl + 8, seq0, 8);
    osse_be_put(out + pl + 16, step, 2);
    osse_be_put(out + pl + 18, place, 4);
    return pl + 22;
}

/* [agency, workflow, submitted_at, start, end, breached_at, overdue_from,
 *  work_ms, how, within_sla] */
static void ix_stints(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    (void)e;
    osse_buf_t *v = &x->val;
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        for (uint32_t j = 0; j < s->nstints; j++) {
            const osse_stint_t *t = &s->stints[j];
            if (!t->end)
                continue;
            osse_buf_reset(v);
            if (osse_mp_put_array(v, 10) || osse_mp_put_str(v, t->agency) ||
                osse_mp_put_str(v, r->wfe->id) || osse_mp_put_int(v, r->submitted_at) ||
                osse_mp_put_int(v, t->start) || osse_mp_put_int(v, t->end) ||
                osse_mp_put_int(v, t->breached_at) || osse_mp_put_int(v, t->overdue_from) ||
                osse_mp_put_int(v, t->work_ms) || osse_mp_put_uint(v, t->how) ||
                osse_mp_put_uint(v, t->within_sla)) {
                x->oom = true;
                return;
            }
            uint8_t key[OSSE__IX_KEY_MAX];
            ix_add(x, key, osse__ix_stint_key(t->end, r->seqs[0], (uint16_t)i, j, key), v->ptr,
                   v->len);
        }
    }
}

int osse__ix_stint_decode(const void *val, size_t vlen, osse__stint_entry_t *out)
{
    osse_mp_rd_t rd = {.p = val, .end = (const uint8_t *)val + vlen};
    uint64_t how = 0, within = 0;
    memset(out, 0, sizeof *out);
    osse_stint_t *t = &out->t;
    int rc = osse_mp_get_array(&rd, 10, NULL) || osse_mp_get_str(&rd, &out->agency) ||
             osse_mp_get_str(&rd, &out->workflow) || osse_mp_get_int(&rd, &out->submitted_at) ||
             osse_mp_get_int(&rd, &t->start) || osse_mp_get_int(&rd, &t->end) ||
             osse_mp_get_int(&rd, &t->breached_at) || osse_mp_get_int(&rd, &t->overdue_from) ||
             osse_mp_get_int(&rd, &t->work_ms) ||
             osse_mp_get_uint(&rd, OSSE_STINT_CANCELLED, &how) || osse_mp_get_uint(&rd, 1, &within);
    /* An entry is of an ended stint. */
    if (rc || !out->agency || !out->workflow || !t->end || how == OSSE_STINT_HELD ||
        rd.p != rd.end) {
        osse__ix_stint_clear(out);
        return OSSE_ECORRUPT;
    }
    t->agency = out->agency;
    t->how = (osse_stint_end_t)how;
    t->within_sla = within;
    return 0;
}

void osse__ix_stint_clear(osse__stint_entry_t *t)
{
    free(t->agency);
    free(t->workflow);
    memset(t, 0, sizeof *t);
}

/* --- the inboxes' history: tsk/<agency>/ {d|o} k1 k2 seq0 step --- */

size_t osse__ix_inbox_prefix(const char *agency, char sort, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_INBOX), al = strlen(agency);
    OSSE_PRE(pl + al + 2 + OSSE__IX_INBOX_TAIL <= OSSE__IX_KEY_MAX);
    memcpy(out, OSSE_KEY_INBOX, pl);
    memcpy(out + pl, agency, al);
    out[pl + al] = '/';
    out[pl + al + 1] = (uint8_t)sort;
    return pl + al + 2;
}

size_t osse__ix_inbox_key(const char *agency, char sort, const osse__task_key_t *k, uint8_t *out)
{
    size_t n = osse__ix_inbox_prefix(agency, sort, out);
    osse_be_put_signed(out + n, k->k1);
    osse_be_put_signed(out + n + 8, k->k2);
    osse_be_put(out + n + 16, k->seq0, 8);
    osse_be_put(out + n + 24, k->step, 2);
    return n + OSSE__IX_INBOX_TAIL;
}

int osse__ix_inbox_key_get(const void *key, size_t klen, size_t plen, osse__task_key_t *k)
{
    if (klen != plen + OSSE__IX_INBOX_TAIL)
        return OSSE_ECORRUPT;
    const uint8_t *p = (const uint8_t *)key + plen;
    k->k1 = osse_be_get_signed(p);
    k->k2 = osse_be_get_signed(p + 8);
    k->seq0 = osse_be_get(p + 16, 8);
    k->step = (uint16_t)osse_be_get(p + 24, 2);
    return 0;
}

void osse__task_keys(const osse_step_t *s, uint64_t seq0, size_t step, osse__task_key_t *due,
                     osse__task_key_t *opened)
{
    *due =
        (osse__task_key_t){s->due_at ? s->due_at : INT64_MAX, s->opened_at, seq0, (uint16_t)step};
    *opened = (osse__task_key_t){s->opened_at, 0, seq0, (uint16_t)step};
}

/* A task step in a final state, under the agency that holds it now (the
 * last of its stints: a step that never opened as a task has none). Two
 * entries, one per order of the inbox; the value is what the inbox shows:
 * [request_id, step, workflow, state, opened_at, due_at, sla, version]. */
static void ix_inbox(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    (void)e;
    osse_buf_t *v = &x->val;
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        /* An agency's id has at most 64 bytes (osse__id_ok): one longer is
         * no agency's, and would not fit a key. */
        if (!s->nstints || !s->agency || !osse__sstate_final(s->state) ||
            strlen(s->agency) >
                OSSE__IX_KEY_MAX - OSSE_KEY_LEN(OSSE_KEY_INBOX) - 2 - OSSE__IX_INBOX_TAIL)
            continue;
        osse_buf_reset(v);
        if (osse_mp_put_array(v, 8) || osse_mp_put_str(v, r->id) ||
            osse_mp_put_str(v, r->wf->steps[i].name) || osse_mp_put_str(v, r->wfe->id) ||
            osse_mp_put_uint(v, s->state) || osse_mp_put_int(v, s->opened_at) ||
            osse_mp_put_int(v, s->due_at) || osse_mp_put_str(v, s->sla_state) ||
            osse_mp_put_uint(v, r->version)) {
            x->oom = true;
            return;
        }
        osse__task_key_t due, opened;
        osse__task_keys(s, r->seqs[0], i, &due, &opened);
        uint8_t key[OSSE__IX_KEY_MAX];
        ix_add(x, key, osse__ix_inbox_key(s->agency, 'd', &due, key), v->ptr, v->len);
        ix_add(x, key, osse__ix_inbox_key(s->agency, 'o', &opened, key), v->ptr, v->len);
    }
}

int osse__ix_inbox_decode(const void *val, size_t vlen, osse__inbox_entry_t *out)
{
    osse_mp_rd_t rd = {.p = val, .end = (const uint8_t *)val + vlen};
    size_t n = 0;
    uint64_t st = 0, ver = 0;
    memset(out, 0, sizeof *out);
    int rc = osse_mp_get_array(&rd, 8, &n) || osse_mp_get_str(&rd, &out->request_id) ||
             osse_mp_get_str(&rd, &out->step) || osse_mp_get_str(&rd, &out->workflow) ||
             osse_mp_get_uint(&rd, OSSE_SS__COUNT - 1, &st) ||
             osse_mp_get_int(&rd, &out->opened_at) || osse_mp_get_int(&rd, &out->due_at) ||
             osse_mp_get_str(&rd, &out->sla) || osse_mp_get_uint(&rd, UINT32_MAX, &ver);
    if (!rc && (!out->request_id || !out->step || !out->workflow || !out->sla || rd.p != rd.end))
        rc = OSSE_ECORRUPT;
    if (rc) {
        osse__ix_inbox_clear(out);
        return OSSE_ECORRUPT;
    }
    out->state = (osse_sstate_t)st;
    out->version = (uint32_t)ver;
    return 0;
}

void osse__ix_inbox_clear(osse__inbox_entry_t *t)
{
    free(t->request_id);
    free(t->step);
    free(t->workflow);
    free(t->sla);
    memset(t, 0, sizeof *t);
}

/* --- the names of a request: nam/ kind name 0x00 id --- */

static void ix_name(osse__ix_t *x, char kind, const char *name, const char *id)
{
    uint8_t key[OSSE__IX_KEY_MAX];
    size_t kl = osse__ix_name_key(kind, name, id, key);
    if (kl)
        ix_add(x, key, kl, "", 0);
}

/* Its licence's number, the payments it recorded and a tracking code of
 * the 10 characters made before (trackcode.h: one of 11 names its request
 * by the seq it permutes, engine/cache.c): the keys say all (the id is
 * their tail, so that two requests of a log that repeats a licence number
 * each have their entry). */
static void ix_names(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    if (!osse_trackcode_of_seq(r->tracking_code))
        ix_name(x, OSSE_NAME_CODE, r->tracking_code, r->id);
    const char *number = r->licence ? osse__jstr(r->licence, "number") : NULL;
    if (number)
        ix_name(x, OSSE_NAME_LICENCE, number, r->id);
    for (size_t i = 0; i < r->wf->nsteps; i++) {
        const osse_step_t *s = &r->steps[i];
        if (s->payer && s->transaction) {
            char key[OSSE_PAYMENT_KEY_MAX];
            osse__payment_key(s->payer, s->transaction, key, sizeof key);
            ix_name(x, OSSE_NAME_PAYMENT, key, r->id);
        }
    }
    (void)e;
}

/* --- the producers together --- */

static const struct {
    const char *prefix;
    void (*give)(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x);
} indexes[] = {
#define X(prefix, fn) {prefix, fn},
    OSSE_INDEXES(X)
#undef X
};

const char *osse__ix_prefix(size_t i)
{
    return i < sizeof indexes / sizeof *indexes ? indexes[i].prefix : NULL;
}

/* One entry of a buffer of given entries, or of r->ix. */
typedef struct {
    const uint8_t *key, *val;
    size_t klen, vlen;
    uint64_t hash;
} ent_t;

static uint64_t value_hash(const void *val, size_t vlen)
{
    /* A fixed key: the hash tells a changed value from an unchanged one,
     * it is not a secret. */
    static const uint8_t k[crypto_shorthash_KEYBYTES] = "osse index hash";
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, val, vlen, k);
    return osse_be_get(h, 8);
}

static int cmp_ent(const void *a, const void *b)
{
    const ent_t *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The entry at p of a buffer of given entries (its key and value; no
 * hash); returns where the next starts. */
static const uint8_t *ent_read(const uint8_t *p, ent_t *v)
{
    v->klen = osse_be_get(p, 2);
    v->key = p + 2;
    v->vlen = osse_be_get(p + 2 + v->klen, 4);
    v->val = p + 6 + v->klen;
    return p + 6 + v->klen + v->vlen;
}

/* The entries of x, sorted by key, into *out (malloc'd, x->n of them). */
static ent_t *given(osse__ix_t *x)
{
    ent_t *v = osse_malloc((x->n ? x->n : 1) * sizeof *v);
    const uint8_t *p = (const uint8_t *)x->buf.ptr;
    for (size_t i = 0; i < x->n; i++) {
        p = ent_read(p, &v[i]);
        v[i].hash = value_hash(v[i].val, v[i].vlen);
    }
    if (x->n > 1)
        qsort(v, x->n, sizeof *v, cmp_ent);
    return v;
}

/* r->ix: [u8 klen][key][u64 hash]..., sorted by key. */
static void keep(osse_request_t *r, const ent_t *v, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += 1 + v[i].klen + 8;
    uint8_t *b = len ? osse_malloc(len) : NULL, *p = b;
    for (size_t i = 0; i < n; i++) {
        *p++ = (uint8_t)v[i].klen;
        memcpy(p, v[i].key, v[i].klen);
        p += v[i].klen;
        osse_be_put(p, v[i].hash, 8);
        p += 8;
    }
    free(r->ix);
    r->ix = b;
    r->ix_len = (uint32_t)len;
}

static void give_all(osse_engine_t *e, const osse_request_t *r, osse__ix_t *x)
{
    osse_buf_reset(&x->buf);
    x->n = 0;
    x->oom = false;
    for (size_t i = 0; i < sizeof indexes / sizeof *indexes; i++)
        indexes[i].give(e, r, x);
}

int osse__ix_write(osse_engine_t *e, osse_request_t *r, osse_batch_t *b)
{
    osse__ix_t *x = &e->ix;
    give_all(e, r, x);
    if (x->oom)
        return OSSE_ENOMEM;
    ent_t *v = given(x);
    /* A merge of the two sorted lists. */
    const uint8_t *o = r->ix, *end = r->ix + r->ix_len;
    size_t i = 0;
    int rc = 0;
    while (!rc && (o < end || i < x->n)) {
        ent_t old = {0};
        if (o < end) {
            old.klen = o[0];
            old.key = o + 1;
            old.hash = osse_be_get(o + 1 + old.klen, 8);
        }
        int c = o >= end ? 1 : i >= x->n ? -1 : cmp_ent(&old, &v[i]);
        if (c < 0) {
            rc = osse_batch_delete(b, old.key, old.klen);
            o += 1 + old.klen + 8;
        } else if (c > 0) {
            rc = osse_batch_put(b, v[i].key, v[i].klen, v[i].val, v[i].vlen);
            i++;
        } else {
            if (old.hash != v[i].hash)
                rc = osse_batch_put(b, v[i].key, v[i].klen, v[i].val, v[i].vlen);
            o += 1 + old.klen + 8;
            i++;
        }
    }
    if (!rc)
        keep(r, v, x->n);
    free(v);
    return rc ? OSSE_ENOMEM : 0;
}

int osse__ix_loaded(osse_engine_t *e, osse_request_t *r)
{
    osse__ix_t *x = &e->ix;
    r->ix_unknown = false;
    give_all(e, r, x);
    if (x->oom)
        return OSSE_ENOMEM;
    ent_t *v = given(x);
    keep(r, v, x->n);
    free(v);
    return 0;
}

void osse__ix_free(osse_engine_t *e)
{
    osse_buf_close(&e->ix.buf);
    osse_buf_close(&e->ix.val);
}

/* --- the proof: every request's entries against the stored ones ---
 *
 * One index at a time: the entries its producer gives for every request,
 * in one buffer, found by key through an open-addressing table, then the
 * stored entries under its prefix read in one pass (a scan, not a point
 * read an entry: at 1M events the point reads were the larger part of
 * `osse replay --data`). The first wrong entry named is that of the
 * lowest request index, as a pass over the requests in order would. */

typedef struct {
    ent_t ent;
    uint32_t req;
    bool seen;
} want_t;

typedef struct {
    want_t *v;
    size_t n;
    uint32_t *slot; /* an index into v, plus one; 0: empty */
    size_t mask;
    osse_records_check_t *out;
    size_t first; /* the lowest request index of a wrong entry (SIZE_MAX: none) */
    const char *first_how;
} wants_t;

static size_t key_slot(const wants_t *w, const void *key, size_t klen)
{
    static const uint8_t k[crypto_shorthash_KEYBYTES] = "osse index slot";
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, klen, k);
    return (size_t)osse_be_get(h, 8) & w->mask;
}

static void wrong(wants_t *w, uint32_t req, const char *how)
{
    if (req < w->first) {
        w->first = req;
        w->first_how = how;
    }
}

static int stored_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    wants_t *w = ud;
    for (size_t i = key_slot(w, key, klen); w->slot[i]; i = (i + 1) & w->mask) {
        want_t *x = &w->v[w->slot[i] - 1];
        if (x->ent.klen != klen || memcmp(x->ent.key, key, klen) != 0)
            continue;
        if (x->seen)
            break;
        x->seen = true;
        if (x->ent.vlen == vlen && memcmp(x->ent.val, val, vlen) == 0) {
            w->out->ix_equal++;
        } else {
            w->out->ix_different++;
            wrong(w, x->req, "different");
        }
        return 0;
    }
    w->out->ix_extra++;
    return 0;
}

int osse__ix_check(osse_engine_t *e, osse_log_t *log, osse_records_check_t *out, osse_err_t *err)
{
    osse__ix_t *x = &e->ix;
    wants_t w = {.out = out, .first = SIZE_MAX};
    int rc = 0;
    for (size_t k = 0; k < sizeof indexes / sizeof *indexes && !rc; k++) {
        osse_buf_reset(&x->buf);
        x->n = 0;
        x->oom = false;
        uint32_t *req = NULL;
        size_t creq = 0;
        for (size_t i = 0; i < e->nreqs && !x->oom; i++) {
            const osse_request_t *r = osse__slot(e, i);
            if (!r)
                continue;
            size_t n0 = x->n;
            indexes[k].give(e, r, x);
            OSSE_VEC_RESERVE(req, creq, x->n);
            for (size_t j = n0; j < x->n; j++)
                req[j] = (uint32_t)i;
        }
        if (x->oom) {
            free(req);
            return osse_err_set(err, OSSE_ENOMEM, "cannot give the %s entries", indexes[k].prefix);
        }
        w.n = x->n;
        w.v = osse_malloc((w.n ? w.n : 1) * sizeof *w.v);
        size_t cap = 16;
        while (cap < 2 * w.n)
            cap *= 2;
        w.mask = cap - 1;
        w.slot = osse_calloc(cap, sizeof *w.slot);
        const uint8_t *p = (const uint8_t *)x->buf.ptr;
        for (size_t i = 0; i < w.n; i++) {
            want_t *v = &w.v[i];
            p = ent_read(p, &v->ent);
            v->req = req[i];
            v->seen = false;
            size_t s = key_slot(&w, v->ent.key, v->ent.klen);
            while (w.slot[s])
                s = (s + 1) & w.mask;
            w.slot[s] = (uint32_t)(i + 1);
        }
        free(req);
        rc = osse_log_kv_scan(log, indexes[k].prefix, strlen(indexes[k].prefix), stored_one, &w,
                              err);
        for (size_t i = 0; i < w.n && !rc; i++)
            if (!w.v[i].seen) {
                out->ix_missing++;
                wrong(&w, w.v[i].req, "missing");
            }
        free(w.v);
        free(w.slot);
    }
    osse_buf_reset(&x->buf);
    x->n = 0;
    if (!rc && w.first != SIZE_MAX)
        snprintf(out->ix_first, sizeof out->ix_first, "%s (%s)", osse__slot(e, w.first)->id,
                 w.first_how);
    return rc;
}

/* --- scans: a range of an index, read on the pool --- */

osse_scan_t *osse__scan_new(osse_engine_t *e, const void *start, size_t slen, const void *stop,
                            size_t stoplen, size_t want)
{
    OSSE_PRE(slen <= sizeof((osse_scan_t *)0)->start && stoplen <= sizeof((osse_scan_t *)0)->stop);
    osse_scan_t *s = osse_calloc(1, sizeof *s);
    s->log = e->log;
    memcpy(s->start, start, slen);
    s->slen = slen;
    if (stop)
        memcpy(s->stop, stop, stoplen);
    s->stoplen = stoplen;
    s->has_stop = stop != NULL;
    s->want = want;
    return s;
}

static int scan_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    osse_scan_t *s = ud;
    bool enough = s->look && ++s->looked >= s->look;
    if (s->keep && !s->keep(s, key, klen, val, vlen))
        return enough ? 1 : 0;
    OSSE_VEC_RESERVE(s->rows, s->crows, s->nrows + 1);
    osse__row_t *row = &s->rows[s->nrows++];
    row->key = osse_malloc(klen ? klen : 1);
    memcpy(row->key, key, klen);
    row->klen = klen;
    row->val = osse_malloc(vlen ? vlen : 1);
    memcpy(row->val, val, vlen);
    row->vlen = vlen;
    return enough || (s->want && s->nrows >= s->want) ? 1 : 0;
}

void osse_scan_run(osse_scan_t *s)
{
    int rc = osse_log_kv_range(s->log, s->start, s->slen, s->has_stop ? s->stop : NULL, s->stoplen,
                               0, scan_one, s, &s->err);
    s->rc = rc == 1 ? 0 : rc;
    if (!s->rc && s->after)
        s->after(s);
}

int osse_scan_finish(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f)
{
    int rc = s->rc ? osse__fail(f, OSSE_EIO, "internal", "the index cannot be read: %s", s->err.msg)
                   : s->finish(e, s, out, f);
    osse_scan_free(s);
    return rc;
}

void osse_scan_free(osse_scan_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nrows; i++) {
        free(s->rows[i].key);
        free(s->rows[i].val);
    }
    free(s->rows);
    if (s->drop)
        s->drop(s);
    free(s);
}
