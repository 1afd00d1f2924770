/* record.c: a request's projection as stored bytes, and back (issue 13,
 * "Views on disk"; docs/design.md says where this goes).
 *
 * A request's record is the side record req/<id>: everything apply.c keeps
 * of it, in msgpack (storage/event.h's pieces, so the reader has the
 * events' checks). commit.c writes it in the same batch as the events that
 * changed the request, once per batch however many events did, so that a
 * crash can never leave a record that disagrees with the log. `osse replay
 * --data` rebuilds every request from the log alone, encodes it and
 * compares it with the stored record, byte for byte: the proof that the
 * records are right (osse_engine_records_check).
 *
 * Layout (a version, then fixed positions; absent values are nil):
 *   [1, id, tracking_code, workflow, workflow_version, status, version,
 *    submitted_at, portal, form, licence, licence_expired_at,
 *    licence_revoked_at, licence_reason, data, reason, form_changed_at,
 *    ended_at, erased_at, licence_seq, licence_year, licence_step,
 *    [step...], [[at, type, text]...], delivery_version, [seq delta...]]
 * The last two, the tail, say which events are the request's: the views'
 * digest hashes the record without them (so that a webhook delivery, whose
 * events are the request's too, does not change it).
 *   step = [state, changed_at, agency (nil: the definition's), opened_at,
 *           due_at, decided_at, warn_at, sla_state, escalated, remaining_ms,
 *           warn_remaining_ms, outcome, reason, amount_satang, paid,
 *           reference, qr, payer, transaction, overdue_next, overdue_left,
 *           notices, [stint...]]
 *   stint = [agency is the step's own (0/1), start, end, breached_at,
 *            overdue_from, work_ms, how, within_sla]
 * Not kept: the request's index (where it sits in memory) and the replay's
 * --recheck counter. */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "common/buf.h"
#include "common/log.h"

#define RECORD_VERSION 1
#define RECORD_FIELDS 26
#define STEP_FIELDS 23
#define STINT_FIELDS 8

static const char *const sla_states[] = {"ok", "warned", "breached"};

static int sla_index(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, sla_states[i]) == 0)
            return i;
    return 0;
}

static int put_stint(osse_buf_t *o, const osse_step_t *s, const osse_stint_t *t)
{
    int rc;
    bool own = s->agency_owned && t->agency == s->agency;
    (void)((rc = osse_mp_put_array(o, STINT_FIELDS)) || (rc = osse_mp_put_uint(o, own)) ||
           (rc = osse_mp_put_int(o, t->start)) || (rc = osse_mp_put_int(o, t->end)) ||
           (rc = osse_mp_put_int(o, t->breached_at)) ||
           (rc = osse_mp_put_int(o, t->overdue_from)) || (rc = osse_mp_put_int(o, t->work_ms)) ||
           (rc = osse_mp_put_uint(o, t->how)) || (rc = osse_mp_put_uint(o, t->within_sla)));
    return rc;
}

static int put_step(osse_buf_t *o, const osse_step_t *s)
{
    int rc;
    if ((rc = osse_mp_put_array(o, STEP_FIELDS)) || (rc = osse_mp_put_uint(o, s->state)) ||
        (rc = osse_mp_put_uint(o, s->changed_at)) ||
        (rc = osse_mp_put_str(o, s->agency_owned ? s->agency : NULL)) ||
        (rc = osse_mp_put_int(o, s->opened_at)) || (rc = osse_mp_put_int(o, s->due_at)) ||
        (rc = osse_mp_put_int(o, s->decided_at)) || (rc = osse_mp_put_int(o, s->warn_at)) ||
        (rc = osse_mp_put_uint(o, (uint64_t)sla_index(s->sla_state))) ||
        (rc = osse_mp_put_uint(o, s->escalated)) || (rc = osse_mp_put_int(o, s->remaining_ms)) ||
        (rc = osse_mp_put_int(o, s->warn_remaining_ms)) || (rc = osse_mp_put_str(o, s->outcome)) ||
        (rc = osse_mp_put_str(o, s->reason)) || (rc = osse_mp_put_int(o, s->amount_satang)) ||
        (rc = osse_mp_put_uint(o, s->paid)) || (rc = osse_mp_put_str(o, s->reference)) ||
        (rc = osse_mp_put_str(o, s->qr)) || (rc = osse_mp_put_str(o, s->payer)) ||
        (rc = osse_mp_put_str(o, s->transaction)) || (rc = osse_mp_put_int(o, s->overdue_next)) ||
        (rc = osse_mp_put_int(o, s->overdue_left)) || (rc = osse_mp_put_uint(o, s->notices)) ||
        (rc = osse_mp_put_array(o, s->nstints)))
        return rc;
    for (uint32_t k = 0; k < s->nstints; k++)
        if ((rc = put_stint(o, s, &s->stints[k])))
            return rc;
    return 0;
}

/* As osse__record_encode, and where the form's bytes are in o (form_at,
 * form_len) when they are wanted. */
static int record_encode(const osse_request_t *r, osse_buf_t *o, size_t *tail, size_t *form_at,
                         size_t *form_len)
{
    size_t start = o->len, fat = 0;
    int rc;
    if ((rc = osse_mp_put_array(o, RECORD_FIELDS)) || (rc = osse_mp_put_uint(o, RECORD_VERSION)) ||
        (rc = osse_mp_put_str(o, r->id)) || (rc = osse_mp_put_str(o, r->tracking_code)) ||
        (rc = osse_mp_put_str(o, r->wfe->id)) ||
        (rc = osse_mp_put_uint(o, (uint64_t)r->wf_version)) ||
        (rc = osse_mp_put_uint(o, r->status)) || (rc = osse_mp_put_uint(o, r->version)) ||
        (rc = osse_mp_put_int(o, r->submitted_at)) || (rc = osse_mp_put_str(o, r->portal)))
        goto out;
    fat = o->len;
    if ((rc = r->form ? osse_mp_put_json(o, r->form)
                      : osse_mp_put_raw(o, r->form_mp, r->form_mp_len)))
        goto out;
    if (form_at) {
        *form_at = fat;
        *form_len = o->len - fat;
    }
    if ((rc = osse_mp_put_json(o, r->licence)) ||
        (rc = osse_mp_put_int(o, r->licence_expired_at)) ||
        (rc = osse_mp_put_int(o, r->licence_revoked_at)) ||
        (rc = osse_mp_put_str(o, r->licence_reason)) || (rc = osse_mp_put_json(o, r->data)) ||
        (rc = osse_mp_put_str(o, r->reason)) || (rc = osse_mp_put_uint(o, r->form_changed_at)) ||
        (rc = osse_mp_put_int(o, r->ended_at)) || (rc = osse_mp_put_int(o, r->erased_at)) ||
        (rc = osse_mp_put_uint(o, r->licence_seq)) || (rc = osse_mp_put_int(o, r->licence_year)) ||
        (rc = osse_mp_put_uint(o, r->licence_step)) || (rc = osse_mp_put_array(o, r->wf->nsteps)))
        goto out;
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if ((rc = put_step(o, &r->steps[i])))
            goto out;
    if ((rc = osse_mp_put_array(o, r->ntimeline)))
        goto out;
    for (size_t i = 0; i < r->ntimeline; i++) {
        osse_event_type_t t;
        const char *ty = r->timeline[i].type;
        if (osse_event_type_parse(ty, strlen(ty), &t)) {
            rc = OSSE_EINVAL;
            goto out;
        }
        if ((rc = osse_mp_put_array(o, 3)) || (rc = osse_mp_put_int(o, r->timeline[i].at)) ||
            (rc = osse_mp_put_uint(o, t)) || (rc = osse_mp_put_str(o, r->timeline[i].text)))
            goto out;
    }
    if (tail)
        *tail = o->len - start;
    /* Seqs grow: each as the difference from the one before. */
    if ((rc = osse_mp_put_uint(o, r->delivery_version)) || (rc = osse_mp_put_array(o, r->nseqs)))
        goto out;
    for (size_t i = 0; i < r->nseqs; i++)
        if ((rc = osse_mp_put_uint(o, r->seqs[i] - (i ? r->seqs[i - 1] : 0))))
            goto out;
out:
    if (rc)
        o->len = start;
    return rc;
}

int osse__record_encode(const osse_request_t *r, osse_buf_t *o, size_t *tail)
{
    return record_encode(r, o, tail, NULL, NULL);
}

/* --- decoding: bytes from the store, checked as events are --- */

typedef struct {
    osse_mp_rd_t rd;
    osse_err_t *err;
} dec_t;

static int bad(dec_t *d, const char *what)
{
    return osse_err_set(d->err, OSSE_ECORRUPT, "request record: %s", what);
}

static int get_u(dec_t *d, uint64_t max, uint64_t *v)
{
    return osse_mp_get_uint(&d->rd, max, v);
}

static int get_i(dec_t *d, int64_t *v)
{
    return osse_mp_get_int(&d->rd, v);
}

/* The form: checked as the events' reader checks JSON, and kept as its
 * bytes until osse__form first asks (a map: fixmap, map 16 or map 32). */
static int get_form(dec_t *d, osse_request_t *r)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    int rc = osse_mp_skip_json(&d->rd, &p, &n);
    if (rc)
        return rc;
    if (!n || !((*p & 0xf0) == 0x80 || *p == 0xde || *p == 0xdf) || n > UINT32_MAX)
        return bad(d, "no form");
    r->form_mp = osse_malloc(n);
    memcpy(r->form_mp, p, n);
    r->form_mp_len = (uint32_t)n;
    return 0;
}

static int get_bool(dec_t *d, bool *v)
{
    uint64_t u = 0;
    int rc = get_u(d, 1, &u);
    *v = u != 0;
    return rc;
}

static int get_stint(dec_t *d, osse_step_t *s, const char *def_agency, osse_stint_t *t)
{
    uint64_t own = 0, how = 0;
    int rc;
    if ((rc = osse_mp_get_array(&d->rd, STINT_FIELDS, NULL)) || (rc = get_u(d, 1, &own)) ||
        (rc = get_i(d, &t->start)) || (rc = get_i(d, &t->end)) ||
        (rc = get_i(d, &t->breached_at)) || (rc = get_i(d, &t->overdue_from)) ||
        (rc = get_i(d, &t->work_ms)) || (rc = get_u(d, OSSE_STINT_CANCELLED, &how)) ||
        (rc = get_bool(d, &t->within_sla)))
        return rc;
    if (own && !s->agency_owned)
        return bad(d, "a stint names an escalation the step does not have");
    t->agency = own ? s->agency : def_agency;
    t->how = (osse_stint_end_t)how;
    return 0;
}

static int get_step(dec_t *d, const osse_wf_step_t *def, osse_step_t *s)
{
    uint64_t state = 0, changed = 0, sla = 0, notices = 0;
    size_t nstints = 0;
    char *agency = NULL;
    int rc;
    if ((rc = osse_mp_get_array(&d->rd, STEP_FIELDS, NULL)) ||
        (rc = get_u(d, OSSE_SS__COUNT - 1, &state)) || (rc = get_u(d, UINT32_MAX, &changed)) ||
        (rc = osse_mp_get_str(&d->rd, &agency)))
        return rc;
    s->agency = agency ? agency : def->agency;
    s->agency_owned = agency != NULL;
    s->state = (osse_sstate_t)state;
    s->changed_at = (uint32_t)changed;
    if ((rc = get_i(d, &s->opened_at)) || (rc = get_i(d, &s->due_at)) ||
        (rc = get_i(d, &s->decided_at)) || (rc = get_i(d, &s->warn_at)) ||
        (rc = get_u(d, 2, &sla)) || (rc = get_bool(d, &s->escalated)) ||
        (rc = get_i(d, &s->remaining_ms)) || (rc = get_i(d, &s->warn_remaining_ms)) ||
        (rc = osse_mp_get_str(&d->rd, &s->outcome)) || (rc = osse_mp_get_str(&d->rd, &s->reason)) ||
        (rc = get_i(d, &s->amount_satang)) || (rc = get_bool(d, &s->paid)) ||
        (rc = osse_mp_get_str(&d->rd, &s->reference)) || (rc = osse_mp_get_str(&d->rd, &s->qr)) ||
        (rc = osse_mp_get_str(&d->rd, &s->payer)) ||
        (rc = osse_mp_get_str(&d->rd, &s->transaction)) || (rc = get_i(d, &s->overdue_next)) ||
        (rc = get_i(d, &s->overdue_left)) || (rc = get_u(d, UINT32_MAX, &notices)) ||
        (rc = osse_mp_get_array(&d->rd, SIZE_MAX, &nstints)))
        return rc;
    s->sla_state = sla_states[sla];
    s->notices = (uint32_t)notices;
    if (nstints) {
        s->stints = osse_calloc(nstints, sizeof *s->stints);
        for (size_t k = 0; k < nstints; k++, s->nstints++)
            if ((rc = get_stint(d, s, def->agency, &s->stints[k])))
                return rc;
    }
    return 0;
}

static int get_timeline(dec_t *d, osse_request_t *r)
{
    size_t n = 0;
    int rc = osse_mp_get_array(&d->rd, SIZE_MAX, &n);
    if (rc || !n)
        return rc;
    r->timeline = osse_calloc(n, sizeof *r->timeline);
    r->ctimeline = n;
    for (size_t i = 0; i < n; i++, r->ntimeline++) {
        osse_tl_t *t = &r->timeline[i];
        uint64_t ty = 0;
        if ((rc = osse_mp_get_array(&d->rd, 3, NULL)) || (rc = get_i(d, &t->at)) ||
            (rc = get_u(d, OSSE_EV__COUNT - 1, &ty)) || (rc = osse_mp_get_str(&d->rd, &t->text)))
            return rc;
        if (!t->text)
            return bad(d, "a timeline entry without text");
        t->type = osse_event_type_name((osse_event_type_t)ty);
    }
    return 0;
}

static int get_seqs(dec_t *d, osse_request_t *r)
{
    size_t n = 0;
    uint64_t dver = 0;
    int rc = get_u(d, UINT32_MAX, &dver);
    r->delivery_version = (uint32_t)dver;
    if (!rc)
        rc = osse_mp_get_array(&d->rd, SIZE_MAX, &n);
    if (rc || !n)
        return rc;
    r->seqs = osse_calloc(n, sizeof *r->seqs);
    r->cseqs = n;
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t step = 0;
        if ((rc = get_u(d, UINT64_MAX - at, &step)))
            return rc;
        if (step == 0)
            return bad(d, "seqs out of order");
        r->seqs[r->nseqs++] = at += step;
    }
    return 0;
}

static int get_head(dec_t *d, osse_engine_t *e, osse_request_t *r)
{
    uint64_t ver = 0, wfv = 0, status = 0, version = 0, fca = 0, lstep = 0;
    char *code = NULL, *wid = NULL;
    int rc;
    if ((rc = osse_mp_get_array(&d->rd, RECORD_FIELDS, NULL)) || (rc = get_u(d, 255, &ver)))
        return rc;
    if (ver != RECORD_VERSION)
        return bad(d, "a version this osse does not know");
    if ((rc = osse_mp_get_str(&d->rd, &r->id)) || (rc = osse_mp_get_str(&d->rd, &code)))
        return rc;
    if (!r->id || !code || strlen(code) >= sizeof r->tracking_code)
        rc = bad(d, "no id or a bad tracking code");
    else
        memcpy(r->tracking_code, code, strlen(code) + 1);
    free(code);
    if (rc || (rc = osse_mp_get_str(&d->rd, &wid)))
        return rc;
    r->wfe = wid ? osse_map_get(&e->workflows, wid) : NULL;
    free(wid);
    if (!r->wfe)
        return bad(d, "a workflow this log does not have");
    if ((rc = get_u(d, r->wfe->nversions, &wfv)))
        return rc;
    if (wfv < 1)
        return bad(d, "workflow version 0");
    r->wf_version = (int)wfv;
    r->wf = r->wfe->versions[wfv - 1];
    if ((rc = get_u(d, OSSE_RS__COUNT - 1, &status)) || (rc = get_u(d, UINT32_MAX, &version)) ||
        (rc = get_i(d, &r->submitted_at)) || (rc = osse_mp_get_str(&d->rd, &r->portal)) ||
        (rc = get_form(d, r)) || (rc = osse_mp_get_json(&d->rd, &r->licence)) ||
        (rc = get_i(d, &r->licence_expired_at)) || (rc = get_i(d, &r->licence_revoked_at)) ||
        (rc = osse_mp_get_str(&d->rd, &r->licence_reason)) ||
        (rc = osse_mp_get_json(&d->rd, &r->data)) || (rc = osse_mp_get_str(&d->rd, &r->reason)) ||
        (rc = get_u(d, UINT32_MAX, &fca)) || (rc = get_i(d, &r->ended_at)) ||
        (rc = get_i(d, &r->erased_at)) || (rc = get_u(d, UINT64_MAX, &r->licence_seq)) ||
        (rc = get_i(d, &r->licence_year)) || (rc = get_u(d, UINT32_MAX, &lstep)))
        return rc;
    r->licence_step = (uint32_t)lstep;
    if (r->licence && (!r->licence_seq || lstep >= r->wf->nsteps))
        return bad(d, "a licence without its seq or step");
    r->status = (osse_rstatus_t)status;
    r->version = (uint32_t)version;
    r->form_changed_at = (uint32_t)fca;
    return 0;
}

int osse__record_decode(osse_engine_t *e, const void *bytes, size_t len, osse_request_t **out,
                        size_t *tail, osse_err_t *err)
{
    dec_t d = {{(const uint8_t *)bytes, (const uint8_t *)bytes + len, err}, err};
    osse_request_t *r = osse_calloc(1, sizeof *r);
    size_t nsteps = 0;
    int rc = get_head(&d, e, r);
    if (!rc && !(rc = osse_mp_get_array(&d.rd, SIZE_MAX, &nsteps)) && nsteps != r->wf->nsteps)
        rc = bad(&d, "not the definition's number of steps");
    if (!rc) {
        r->steps = osse_calloc(nsteps ? nsteps : 1, sizeof *r->steps);
        for (size_t i = 0; i < nsteps && !rc; i++)
            rc = get_step(&d, &r->wf->steps[i], &r->steps[i]);
    }
    if (!rc && !(rc = get_timeline(&d, r)) && tail)
        *tail = (size_t)(d.rd.p - (const uint8_t *)bytes);
    if (!rc && !(rc = get_seqs(&d, r)) && d.rd.p != d.rd.end)
        rc = bad(&d, "bytes after the record");
    if (rc) {
        osse__request_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void osse__request_free(osse_request_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->steps && r->wf && i < r->wf->nsteps; i++) {
        if (r->steps[i].agency_owned)
            free(r->steps[i].agency);
        free(r->steps[i].outcome);
        free(r->steps[i].reason);
        free(r->steps[i].stints);
        free(r->steps[i].reference);
        free(r->steps[i].qr);
        free(r->steps[i].payer);
        free(r->steps[i].transaction);
    }
    free(r->reason);
    free(r->licence_reason);
    for (size_t i = 0; i < r->ntimeline; i++)
        free(r->timeline[i].text);
    free(r->timeline);
    free(r->steps);
    free(r->seqs);
    free(r->id);
    free(r->portal);
    json_decref(r->form);
    free(r->form_mp);
    json_decref(r->licence);
    json_decref(r->data);
    free(r->ix);
    free(r);
}

/* --- the records' hashes: the requests' part of the digest --- */

static void sha256(const void *p, size_t n, uint8_t out[32])
{
    /* Fetched once: EVP_Q_digest would fetch the algorithm at every call. */
    static EVP_MD *md;
    if (!md && !(md = EVP_MD_fetch(NULL, "SHA256", NULL)))
        osse__panic(__FILE__, __LINE__, "no SHA-256 in libcrypto");
    if (!EVP_Digest(p, n, out, NULL, md, NULL))
        osse__panic(__FILE__, __LINE__, "SHA-256 failed");
}

/* sum += h (add) or sum -= h, mod 2^256, both little-endian. */
static void sum_step(uint8_t sum[32], const uint8_t h[32], bool add)
{
    unsigned carry = 0;
    for (int i = 0; i < 32; i++) {
        unsigned v = add ? (unsigned)sum[i] + h[i] + carry : (unsigned)sum[i] - h[i] - carry;
        sum[i] = (uint8_t)v;
        carry = add ? v >> 8 : (v >> 8) & 1;
    }
}

/* r's record is now these bytes (up to its tail): its hash in the sum
 * replaces the old. */
static void rehash(osse_engine_t *e, osse_request_t *r, const void *bytes, size_t len)
{
    sum_step(e->rec_sum, r->rec_hash, false);
    sha256(bytes, len, r->rec_hash);
    sum_step(e->rec_sum, r->rec_hash, true);
}

void osse__records_sum(osse_engine_t *e, uint8_t out[32])
{
    osse_buf_t enc = {0};
    bool all = !e->log;
    if (all && e->rec_sum_whole == e->applied + 1) {
        memcpy(out, e->rec_sum, 32); /* made by the records check since the last event */
        return;
    }
    for (size_t i = 0, n = all ? e->nreqs : e->ndirty; i < n; i++) {
        osse_request_t *r = osse__slot(e, all ? i : e->dirty[i]);
        if (!r)
            continue;
        osse_buf_reset(&enc);
        size_t tail = 0;
        if (osse__record_encode(r, &enc, &tail))
            osse__panic(__FILE__, __LINE__, "cannot encode request %s", r->id);
        rehash(e, r, enc.ptr, tail);
    }
    osse_buf_close(&enc);
    memcpy(out, e->rec_sum, 32);
}

/* --- writing with the batch, checking against a rebuild --- */

void osse__record_touch(osse_engine_t *e, osse_request_t *r)
{
    if (r->dirty)
        return;
    r->dirty = true;
    OSSE_VEC_RESERVE(e->dirty, e->cdirty, e->ndirty + 1);
    e->dirty[e->ndirty++] = r->index;
}

static int record_key(const char *id, char *key, size_t n)
{
    return snprintf(key, n, OSSE_KEY_REQUEST "%s", id);
}

int osse__record_get_ended(osse_log_t *log, const char *id, void **val, size_t *vlen,
                           osse_err_t *err)
{
    char key[OSSE_KEY_LEN(OSSE_KEY_REQUEST) + OSSE__IX_KEY_MAX + 1];
    int kl = record_key(id, key, sizeof key);
    *val = NULL;
    *vlen = 0;
    if (kl <= 0 || (size_t)kl >= sizeof key)
        return OSSE_ENOTFOUND; /* longer than any id minted: none */
    return osse_log_kv_get(log, key, (size_t)kl, val, vlen, err);
}

/* An open request's record key: opn/ be64(first seq). */
static size_t open_key(uint64_t seq0, char *key)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_OPEN);
    memcpy(key, OSSE_KEY_OPEN, pl);
    osse_be_put((uint8_t *)key + pl, seq0, 8);
    return pl + 8;
}

/* Where r's record is now: req/<id> once ended, opn/ while open. Returns
 * the key's length, or 0 when it does not fit n. */
static size_t where_key(const osse_request_t *r, char *key, size_t n)
{
    if (!osse__rstatus_final(r->status))
        return n >= OSSE_KEY_LEN(OSSE_KEY_OPEN) + 8 ? open_key(r->seqs[0], key) : 0;
    int kl = record_key(r->id, key, n);
    return kl > 0 && (size_t)kl < n ? (size_t)kl : 0;
}

/* --- the counters snapshot, with the views marker (docs/design.md, "The
 * counters snapshot") ---
 *
 * The marker's value: be64(the log's last seq), then
 *   [1, requests, digest sum (64 hex digits), any_request, first_submitted_at,
 *    [requests by status, in osse_rstatus_t's order],
 *    [[agency, workflow, open, breaches, began, first_at]...],
 *    [[workflow, licence_seq, [[year, seq]...]]...]]
 * what the start rebuilds today from every request (osse__apply_loaded),
 * so that a start reading only open work can have it; checked against the
 * rebuild at every start that reads every record (osse__records_verify).
 * The task rows in the map's order, the workflows only those with a
 * licence counted; O(rows + workflows) each batch. */

#define SNAPSHOT_VERSION 1
#define SNAPSHOT_FIELDS 8

static void hex32(const uint8_t b[32], char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[64] = '\0';
}

static bool has_counters(const osse_wfent_t *w)
{
    return w->licence_seq || w->nlicence_years;
}

static int snapshot_put(osse_engine_t *e, osse_buf_t *o)
{
    char sum[65];
    hex32(e->rec_sum, sum);
    int rc = osse_mp_put_array(o, SNAPSHOT_FIELDS) || osse_mp_put_uint(o, SNAPSHOT_VERSION) ||
             osse_mp_put_uint(o, e->nrequests) || osse_mp_put_str(o, sum) ||
             osse_mp_put_uint(o, e->any_request) || osse_mp_put_int(o, e->first_submitted_at) ||
             osse_mp_put_array(o, OSSE_RS__COUNT);
    for (int i = 0; !rc && i < OSSE_RS__COUNT; i++)
        rc = osse_mp_put_uint(o, e->by_status[i]);
    rc = rc || osse_mp_put_array(o, e->task_rows.len);
    void *v;
    for (size_t it = 0; !rc && osse_map_next(&e->task_rows, &it, NULL, &v);) {
        const osse_task_row_t *row = v;
        rc = osse_mp_put_array(o, 6) || osse_mp_put_str(o, row->agency) ||
             osse_mp_put_str(o, row->workflow) || osse_mp_put_int(o, row->open) ||
             osse_mp_put_int(o, row->breaches) || osse_mp_put_uint(o, row->began) ||
             osse_mp_put_int(o, row->first_at);
    }
    size_t nw = 0;
    for (size_t it = 0; osse_map_next(&e->workflows, &it, NULL, &v);)
        nw += has_counters(v);
    rc = rc || osse_mp_put_array(o, nw);
    for (size_t it = 0; !rc && osse_map_next(&e->workflows, &it, NULL, &v);) {
        const osse_wfent_t *w = v;
        if (!has_counters(w))
            continue;
        rc = osse_mp_put_array(o, 3) || osse_mp_put_str(o, w->id) ||
             osse_mp_put_uint(o, w->licence_seq) || osse_mp_put_array(o, w->nlicence_years);
        for (size_t k = 0; !rc && k < w->nlicence_years; k++)
            rc = osse_mp_put_array(o, 2) || osse_mp_put_int(o, w->licence_years[k].year) ||
                 osse_mp_put_uint(o, w->licence_years[k].seq);
    }
    return rc ? OSSE_ENOMEM : 0;
}

/* Once its record is written, a request keeps its form as the record's
 * bytes of it, not as the JSON tree its events built: an open request is
 * kept in memory for as long as it is open, and the tree of a sealed form
 * is several times its bytes (issue 13: the memory of open work, and the
 * loop's page faults as it grows). osse__form makes the tree again when a
 * reader asks, until the next record. */
static void form_to_bytes(osse_request_t *r, const char *p, size_t n)
{
    if (!r->form || !n || n > UINT32_MAX)
        return;
    r->form_mp = osse_malloc(n);
    memcpy(r->form_mp, p, n);
    r->form_mp_len = (uint32_t)n;
    json_decref(r->form);
    r->form = NULL;
}

int osse__records_put(osse_engine_t *e, osse_batch_t *b)
{
    char key[128];
    int rc = 0;
    for (size_t i = 0; i < e->ndirty; i++) {
        osse_request_t *r = osse__slot(e, e->dirty[i]);
        r->dirty = false;
        r->commit = e->commits_sent + 1; /* this batch's (commit.c counts it sent after) */
        size_t kl = where_key(r, key, sizeof key);
        bool open = !osse__rstatus_final(r->status);
        osse_buf_reset(&e->enc);
        size_t tail = 0, fat = 0, flen = 0;
        if (!rc && (!kl || record_encode(r, &e->enc, &tail, &fat, &flen) ||
                    osse_batch_put(b, key, kl, e->enc.ptr, e->enc.len) || osse__ix_write(e, r, b)))
            rc = OSSE_ENOMEM;
        else if (!rc) {
            rehash(e, r, e->enc.ptr, tail);
            form_to_bytes(r, e->enc.ptr + fat, flen);
        }
        /* The batch that ends it moves its record from opn/ to req/; a
         * migration's, from an older osse's req/ to opn/. */
        char old[128];
        int ol = !open && r->rec_open   ? (int)open_key(r->seqs[0], old)
                 : open && e->migrating ? record_key(r->id, old, sizeof old)
                                        : 0;
        if (!rc && ol > 0 && (size_t)ol < sizeof old && osse_batch_delete(b, old, (size_t)ol))
            rc = OSSE_ENOMEM;
        r->rec_open = open;
    }
    e->ndirty = 0;
    if (!rc && e->views_on) {
        uint8_t seq[8];
        osse_be_put(seq, osse_log_last_seq(e->log), 8);
        osse_buf_reset(&e->enc);
        if (osse_buf_append(&e->enc, seq, sizeof seq) || snapshot_put(e, &e->enc) ||
            osse_batch_put(b, OSSE_KEY_VIEWS, OSSE_KEY_LEN(OSSE_KEY_VIEWS), e->enc.ptr, e->enc.len))
            rc = OSSE_ENOMEM;
    }
    return rc;
}

/* Whether a record decodes into a request that encodes to the same bytes
 * (so that a request read back from its record is the one written). */
static bool decodes_back(osse_engine_t *e, const void *val, size_t vlen, osse_buf_t *again)
{
    osse_request_t *r = NULL;
    osse_err_t err = {0};
    if (osse__record_decode(e, val, vlen, &r, NULL, &err))
        return false;
    osse_buf_reset(again);
    bool same = !osse__record_encode(r, again, NULL) && again->len == vlen &&
                memcmp(again->ptr, val, vlen) == 0;
    osse__request_free(r);
    return same;
}

static int snapshot_check(osse_engine_t *e, osse_log_t *log, osse_records_check_t *out,
                          osse_err_t *err);

static int by_submission(const void *a, const void *b)
{
    uint64_t x = (*(osse_request_t *const *)a)->seqs[0], y = (*(osse_request_t *const *)b)->seqs[0];
    return x < y ? -1 : x > y;
}

/* The proof reads the stored records in one pass over req/ and opn/ (key
 * order), finding each one's rebuilt request by its key, not one point
 * read a request: at 1M events the point reads were most of `osse replay
 * --data`. Each request is encoded once, for the comparison and for its
 * hash in the digest's sum. */
typedef struct {
    osse_engine_t *e;
    osse_records_check_t *out;
    osse_buf_t enc, again;
    bool *seen;                 /* by request index */
    osse_request_t **open;      /* the open ones, by their first seq */
    size_t nopen, first_differ; /* the lowest index of a different one (nreqs: none) */
    bool opn;                   /* scanning opn/, not req/ */
} rcheck_t;

static osse_request_t *open_at(const rcheck_t *c, uint64_t seq0)
{
    size_t lo = 0, hi = c->nopen;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t s = c->open[mid]->seqs[0];
        if (s == seq0)
            return c->open[mid];
        if (s < seq0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* r's record as rebuilt, in c->enc, its hash in the sum. */
static int encode_rebuilt(rcheck_t *c, osse_request_t *r)
{
    size_t tail = 0;
    osse_buf_reset(&c->enc);
    if (osse__record_encode(r, &c->enc, &tail))
        return OSSE_ENOMEM;
    rehash(c->e, r, c->enc.ptr, tail);
    c->seen[r->index] = true;
    return 0;
}

static int check_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    rcheck_t *c = ud;
    osse_request_t *r = NULL;
    size_t pl = c->opn ? OSSE_KEY_LEN(OSSE_KEY_OPEN) : OSSE_KEY_LEN(OSSE_KEY_REQUEST);
    char id[OSSE__IX_KEY_MAX + 1], want[OSSE__IX_KEY_MAX + 16];
    if (c->opn && klen == pl + 8) {
        r = open_at(c, osse_be_get((const uint8_t *)key + pl, 8));
    } else if (!c->opn && klen - pl < sizeof id) {
        memcpy(id, (const char *)key + pl, klen - pl);
        id[klen - pl] = 0;
        r = osse_map_get(&c->e->requests, id);
    }
    /* At the key its request's record is at now, and the first there. */
    size_t wl = r ? where_key(r, want, sizeof want) : 0;
    if (!r || c->seen[r->index] || wl != klen || memcmp(want, key, klen) != 0) {
        c->out->extra++;
        return 0;
    }
    if (encode_rebuilt(c, r))
        return OSSE_ENOMEM;
    if (vlen == c->enc.len && memcmp(val, c->enc.ptr, vlen) == 0 &&
        decodes_back(c->e, val, vlen, &c->again)) {
        c->out->equal++;
    } else {
        c->out->differ++;
        if (r->index < c->first_differ)
            c->first_differ = r->index;
    }
    return 0;
}

int osse_engine_records_check(osse_engine_t *e, osse_log_t *log, osse_records_check_t *out,
                              osse_err_t *err)
{
    rcheck_t c = {.e = e, .out = out, .first_differ = e->nreqs};
    int rc = 0;
    memset(out, 0, sizeof *out);
    c.seen = osse_calloc(e->nreqs ? e->nreqs : 1, sizeof *c.seen);
    c.open = osse_malloc((e->nreqs ? e->nreqs : 1) * sizeof *c.open);
    for (size_t i = 0; i < e->nreqs; i++) {
        osse_request_t *r = osse__slot(e, i);
        if (r && !osse__rstatus_final(r->status))
            c.open[c.nopen++] = r;
    }
    qsort(c.open, c.nopen, sizeof *c.open, by_submission);
    rc =
        osse_log_kv_scan(log, OSSE_KEY_REQUEST, OSSE_KEY_LEN(OSSE_KEY_REQUEST), check_one, &c, err);
    c.opn = true;
    if (!rc)
        rc = osse_log_kv_scan(log, OSSE_KEY_OPEN, OSSE_KEY_LEN(OSSE_KEY_OPEN), check_one, &c, err);
    if (rc == OSSE_ENOMEM)
        osse_err_set(err, rc, "cannot encode a request's record");
    /* Those no stored record was found for (hashed for the sum all the same). */
    for (size_t i = 0; i < e->nreqs && !rc; i++) {
        osse_request_t *r = osse__slot(e, i);
        if (!r || c.seen[i])
            continue;
        if (encode_rebuilt(&c, r))
            rc = osse_err_set(err, OSSE_ENOMEM, "cannot encode request %s", r->id);
        else if (!out->missing++)
            snprintf(out->first_missing, sizeof out->first_missing, "%s", r->id);
    }
    if (!rc && out->differ)
        snprintf(out->first_differ, sizeof out->first_differ, "%s",
                 osse__slot(e, c.first_differ)->id);
    if (!rc)
        e->rec_sum_whole = e->applied + 1; /* every request hashed from its record as now */
    free(c.seen);
    free(c.open);
    osse_buf_close(&c.enc);
    osse_buf_close(&c.again);
    if (!rc)
        rc = osse__ix_check(e, log, out, err);
    return rc ? rc : snapshot_check(e, log, out, err);
}

/* --- start from the records (docs/design.md, "Views on disk") --- */

typedef struct {
    osse_engine_t *e;
    osse_request_t **v;
    size_t n, c;
    bool open; /* reading opn/, not req/ */
    osse_err_t *err;
} load_t;

int osse__record_read(osse_engine_t *e, const char *id, size_t idlen, const void *val, size_t vlen,
                      osse_request_t **out, osse_err_t *err)
{
    osse_request_t *r = NULL;
    osse_err_t derr = {0};
    size_t tail = 0;
    bool want_id = false;
    if (!id) {
        id = "an open request";
        idlen = strlen(id);
    } else {
        want_id = true;
    }
    if (osse__record_decode(e, val, vlen, &r, &tail, &derr))
        return osse_err_set(err, OSSE_ECORRUPT, "the record of %.*s: %s", (int)idlen, id, derr.msg);
    if ((want_id && (idlen != strlen(r->id) || memcmp(id, r->id, idlen) != 0)) || !r->nseqs) {
        osse__request_free(r);
        return osse_err_set(err, OSSE_ECORRUPT,
                            "the record of %.*s holds another request or no event", (int)idlen, id);
    }
    sha256(val, tail, r->rec_hash);
    r->ix_unknown = true; /* its index entries: before its first change (commit.c) */
    *out = r;
    return 0;
}

/* An opn/ record: its request, open and first submitted at the key's seq. */
static int read_open(osse_engine_t *e, const void *key, size_t klen, const void *val, size_t vlen,
                     osse_request_t **out, osse_err_t *err)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_OPEN);
    osse_request_t *r = NULL;
    if (klen != pl + 8)
        return osse_err_set(err, OSSE_ECORRUPT, "an opn/ key of the wrong length");
    uint64_t seq0 = osse_be_get((const uint8_t *)key + pl, 8);
    int rc = osse__record_read(e, NULL, 0, val, vlen, &r, err);
    if (!rc && (r->seqs[0] != seq0 || osse__rstatus_final(r->status))) {
        rc = osse_err_set(
            err, OSSE_ECORRUPT, "the opn/ record at seq %llu holds %s, %s and first at seq %llu",
            (unsigned long long)seq0, r->id, osse__rstatus_final(r->status) ? "ended" : "open",
            (unsigned long long)r->seqs[0]);
        osse__request_free(r);
        r = NULL;
    }
    if (r)
        r->rec_open = true;
    *out = r;
    return rc;
}

static int load_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    load_t *l = ud;
    osse_request_t *r = NULL;
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_REQUEST);
    int rc =
        l->open ? read_open(l->e, key, klen, val, vlen, &r, l->err)
                : osse__record_read(l->e, (const char *)key + pl, klen - pl, val, vlen, &r, l->err);
    if (rc)
        return rc;
    sum_step(l->e->rec_sum, r->rec_hash, true);
    OSSE_VEC_RESERVE(l->v, l->c, l->n + 1);
    l->v[l->n++] = r;
    return 0;
}

static int by_issue(const void *a, const void *b)
{
    uint64_t x = (*(osse_request_t *const *)a)->licence_seq,
             y = (*(osse_request_t *const *)b)->licence_seq;
    return x < y ? -1 : x > y;
}

int osse__records_load(osse_engine_t *e, osse_err_t *err)
{
    load_t l = {.e = e, .err = err};
    int rc = osse_log_kv_scan(e->log, OSSE_KEY_REQUEST, OSSE_KEY_LEN(OSSE_KEY_REQUEST), load_one,
                              &l, err);
    l.open = true;
    if (!rc)
        rc =
            osse_log_kv_scan(e->log, OSSE_KEY_OPEN, OSSE_KEY_LEN(OSSE_KEY_OPEN), load_one, &l, err);
    size_t i = 0, nlic = 0;
    if (!rc && l.n)
        qsort(l.v, l.n, sizeof *l.v, by_submission);
    for (; !rc && i < l.n; i++)
        if (!(rc = osse__apply_loaded(e, l.v[i], err)) && l.v[i]->licence)
            l.v[nlic++] = l.v[i]; /* the ones joined so far are e's: v reused */
    for (size_t k = i; k < l.n; k++)
        osse__request_free(l.v[k]); /* after an error: not joined */
    if (!rc && nlic) {
        qsort(l.v, nlic, sizeof *l.v, by_issue);
        for (size_t k = 0; k < nlic; k++)
            osse__apply_loaded_licence(e, l.v[k]);
    }
    free(l.v);
    return rc;
}

/* --- the start's check of the snapshot and of opn/ (osse__records_verify) --- */

typedef struct {
    osse_err_t *err;
    size_t wrong; /* fields that differ */
} verify_t;

/* One field differs: an ERROR line for each, err names the first. */
static void differs(verify_t *vf, const char *field, const char *stored, const char *rebuilt)
{
    osse_logf(OSSE_LEVEL_ERROR, "views snapshot differs", "field=%s stored=%s rebuilt=%s", field,
              stored, rebuilt);
    if (!vf->wrong++)
        osse_err_set(vf->err, OSSE_ECORRUPT,
                     "the counters snapshot of the views marker disagrees with the records read "
                     "(%s: stored %s, rebuilt %s): the views on disk are damaged; `osse serve "
                     "--rebuild-views` rebuilds them from the log",
                     field, stored, rebuilt);
}

static void differs_int(verify_t *vf, const char *field, int64_t stored, int64_t rebuilt)
{
    if (stored == rebuilt)
        return;
    char a[24], b[24];
    snprintf(a, sizeof a, "%lld", (long long)stored);
    snprintf(b, sizeof b, "%lld", (long long)rebuilt);
    differs(vf, field, a, b);
}

/* The stored task rows, each compared with the rebuilt one of its key;
 * seen: the keys met, so that one stored twice or one rebuilt but not
 * stored is found too. */
static int verify_rows(osse_engine_t *e, osse_mp_rd_t *rd, verify_t *vf)
{
    size_t n = 0;
    int rc = osse_mp_get_array(rd, SIZE_MAX, &n);
    osse_map_t seen;
    osse_map_init(&seen);
    for (size_t i = 0; !rc && i < n; i++) {
        char *agency = NULL, *workflow = NULL, key[256], field[320];
        int64_t open = 0, breaches = 0, first_at = 0;
        uint64_t began = 0;
        if (!(rc = osse_mp_get_array(rd, 6, NULL) || osse_mp_get_str(rd, &agency) ||
                   osse_mp_get_str(rd, &workflow) || osse_mp_get_int(rd, &open) ||
                   osse_mp_get_int(rd, &breaches) || osse_mp_get_uint(rd, 1, &began) ||
                   osse_mp_get_int(rd, &first_at) || !agency || !workflow)) {
            snprintf(key, sizeof key, "%s\n%s", agency, workflow);
            snprintf(field, sizeof field, "task_rows[%s/%s]", agency, workflow);
            const osse_task_row_t *row = osse_map_get(&e->task_rows, key);
            if (osse_map_get(&seen, key)) {
                differs(vf, field, "twice", "once");
            } else if (!row) {
                differs(vf, field, "a row", "none");
            } else {
                osse_map_put(&seen, key, (void *)row);
                size_t fl = strlen(field);
                snprintf(field + fl, sizeof field - fl, ".open");
                differs_int(vf, field, open, row->open);
                snprintf(field + fl, sizeof field - fl, ".breaches");
                differs_int(vf, field, breaches, row->breaches);
                snprintf(field + fl, sizeof field - fl, ".began");
                differs_int(vf, field, (int64_t)began, row->began);
                snprintf(field + fl, sizeof field - fl, ".first_at");
                differs_int(vf, field, first_at, row->first_at);
            }
        }
        free(agency);
        free(workflow);
    }
    const char *k;
    void *v;
    for (size_t it = 0; !rc && osse_map_next(&e->task_rows, &it, &k, &v);) {
        const osse_task_row_t *row = v;
        char field[320];
        snprintf(field, sizeof field, "task_rows[%s/%s]", row->agency, row->workflow);
        if (!osse_map_get(&seen, k))
            differs(vf, field, "none", "a row");
    }
    osse_map_close(&seen);
    return rc;
}

/* The stored licence counters, each compared with its workflow's; then
 * every workflow with a counter must have been stored. */
static int verify_licences(osse_engine_t *e, osse_mp_rd_t *rd, verify_t *vf)
{
    size_t n = 0;
    int rc = osse_mp_get_array(rd, SIZE_MAX, &n);
    osse_map_t seen;
    osse_map_init(&seen);
    for (size_t i = 0; !rc && i < n; i++) {
        char *wid = NULL, field[200];
        uint64_t seq = 0;
        size_t ny = 0;
        rc = osse_mp_get_array(rd, 3, NULL) || osse_mp_get_str(rd, &wid) ||
             osse_mp_get_uint(rd, UINT64_MAX, &seq) || osse_mp_get_array(rd, SIZE_MAX, &ny) || !wid;
        const osse_wfent_t *w = rc ? NULL : osse_map_get(&e->workflows, wid);
        snprintf(field, sizeof field, "licence_counters[%s]", wid ? wid : "");
        bool twice = !rc && osse_map_get(&seen, wid);
        if (twice)
            differs(vf, field, "twice", "once");
        else if (!rc && (!w || !has_counters(w)))
            differs(vf, field, "counters", "none");
        else if (!rc)
            osse_map_put(&seen, wid, (void *)w);
        bool check = !rc && !twice && w && has_counters(w);
        size_t fl = strlen(field);
        if (check) {
            snprintf(field + fl, sizeof field - fl, ".seq");
            differs_int(vf, field, (int64_t)seq, (int64_t)w->licence_seq);
            snprintf(field + fl, sizeof field - fl, ".years");
            differs_int(vf, field, (int64_t)ny, (int64_t)w->nlicence_years);
        }
        for (size_t k = 0; !rc && k < ny; k++) {
            int64_t year = 0;
            uint64_t ys = 0;
            rc = osse_mp_get_array(rd, 2, NULL) || osse_mp_get_int(rd, &year) ||
                 osse_mp_get_uint(rd, UINT64_MAX, &ys);
            if (rc || !check)
                continue;
            uint64_t got = 0;
            for (size_t j = 0; j < w->nlicence_years; j++)
                if (w->licence_years[j].year == year)
                    got = w->licence_years[j].seq;
            snprintf(field + fl, sizeof field - fl, "[%lld]", (long long)year);
            differs_int(vf, field, (int64_t)ys, (int64_t)got);
        }
        free(wid);
    }
    const char *k;
    void *v;
    for (size_t it = 0; !rc && osse_map_next(&e->workflows, &it, &k, &v);) {
        char field[200];
        snprintf(field, sizeof field, "licence_counters[%s]", k);
        if (has_counters(v) && !osse_map_get(&seen, k))
            differs(vf, field, "none", "counters");
    }
    osse_map_close(&seen);
    return rc;
}

static int verify_snapshot(osse_engine_t *e, const uint8_t *p, size_t len, verify_t *vf)
{
    osse_mp_rd_t rd = {.p = p, .end = p + len};
    uint64_t ver = 0, nreqs = 0, any = 0;
    int64_t first_at = 0;
    char *sum = NULL, rebuilt[65];
    size_t nst = 0;
    int rc = osse_mp_get_array(&rd, SNAPSHOT_FIELDS, NULL) || osse_mp_get_uint(&rd, 255, &ver);
    if (!rc && ver != SNAPSHOT_VERSION)
        return osse_err_set(vf->err, OSSE_ECORRUPT,
                            "the views marker's counters snapshot has version %llu, which this "
                            "osse does not know",
                            (unsigned long long)ver);
    rc = rc || osse_mp_get_uint(&rd, UINT64_MAX, &nreqs) || osse_mp_get_str(&rd, &sum) || !sum ||
         osse_mp_get_uint(&rd, 1, &any) || osse_mp_get_int(&rd, &first_at) ||
         osse_mp_get_array(&rd, OSSE_RS__COUNT, &nst);
    if (!rc) {
        differs_int(vf, "requests", (int64_t)nreqs, (int64_t)e->nrequests);
        hex32(e->rec_sum, rebuilt);
        if (strcmp(sum, rebuilt) != 0)
            differs(vf, "digest_sum", sum, rebuilt);
        differs_int(vf, "any_request", (int64_t)any, e->any_request);
        differs_int(vf, "first_submitted_at", first_at, e->first_submitted_at);
    }
    free(sum);
    for (int i = 0; !rc && i < OSSE_RS__COUNT; i++) {
        uint64_t c = 0;
        char field[64];
        snprintf(field, sizeof field, "by_status[%s]", osse__rstatus_name(i));
        if (!(rc = osse_mp_get_uint(&rd, UINT64_MAX, &c)))
            differs_int(vf, field, (int64_t)c, (int64_t)e->by_status[i]);
    }
    rc = rc || verify_rows(e, &rd, vf) || verify_licences(e, &rd, vf) || rd.p != rd.end;
    if (rc)
        return osse_err_set(vf->err, OSSE_ECORRUPT,
                            "the views marker's counters snapshot does not decode: `osse serve "
                            "--rebuild-views` rebuilds it from the log");
    return 0;
}

typedef struct {
    verify_t *vf;
    const osse_request_t *next; /* the open list's next request */
    size_t n;
} open_walk_t;

/* An opn/ record against the open list's next request: the same first
 * seq (the records themselves are the full read's, osse__records_load). */
static int open_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    open_walk_t *w = ud;
    (void)val;
    (void)vlen;
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_OPEN);
    const osse_request_t *r = w->next;
    char field[64], stored[32], rebuilt[32];
    snprintf(field, sizeof field, "open[%zu]", w->n++);
    if (klen != pl + 8) {
        differs(w->vf, field, "a key of the wrong length", r ? r->id : "the end");
        return 1;
    }
    uint64_t seq0 = osse_be_get((const uint8_t *)key + pl, 8);
    snprintf(stored, sizeof stored, "seq %llu", (unsigned long long)seq0);
    if (!r) {
        differs(w->vf, field, stored, "the end");
        return 1;
    }
    if (seq0 != r->seqs[0]) {
        snprintf(rebuilt, sizeof rebuilt, "seq %llu", (unsigned long long)r->seqs[0]);
        differs(w->vf, field, stored, rebuilt);
        return 1; /* the rest would differ too */
    }
    w->next = r->open_next;
    return 0;
}

/* --- the start that reads only open work --- */

/* The views marker's value, which must hold a snapshot after its seq. */
static int read_marker(osse_engine_t *e, void **val, size_t *vlen, osse_err_t *err)
{
    int rc = osse_log_kv_get(e->log, OSSE_KEY_VIEWS, OSSE_KEY_LEN(OSSE_KEY_VIEWS), val, vlen, err);
    if (!rc && *vlen <= 8)
        rc = osse_err_set(err, OSSE_ECORRUPT,
                          "the views marker holds no counters snapshot: `osse serve "
                          "--rebuild-views` rebuilds it from the log");
    return rc;
}

/* The counters of the snapshot (after the seq) into e: what a start that
 * read only the open requests' records could not rebuild. */
static int restore_snapshot(osse_engine_t *e, const uint8_t *p, size_t len)
{
    osse_mp_rd_t rd = {.p = p, .end = p + len};
    uint64_t ver = 0, nreqs = 0, any = 0;
    int64_t first_at = 0;
    char *sum = NULL;
    size_t nst = 0, nrows = 0, nw = 0;
    int rc = osse_mp_get_array(&rd, SNAPSHOT_FIELDS, NULL) || osse_mp_get_uint(&rd, 255, &ver) ||
             ver != SNAPSHOT_VERSION || osse_mp_get_uint(&rd, UINT64_MAX, &nreqs) ||
             osse_mp_get_str(&rd, &sum) || !sum || strlen(sum) != 64 ||
             osse_mp_get_uint(&rd, 1, &any) || osse_mp_get_int(&rd, &first_at) ||
             osse_mp_get_array(&rd, OSSE_RS__COUNT, &nst) || nst != OSSE_RS__COUNT;
    for (int i = 0; !rc && i < 32; i++) {
        unsigned v = 0;
        rc = sscanf(sum + 2 * i, "%2x", &v) != 1;
        e->rec_sum[i] = (uint8_t)v;
    }
    free(sum);
    for (int i = 0; !rc && i < OSSE_RS__COUNT; i++) {
        uint64_t c = 0;
        rc = osse_mp_get_uint(&rd, UINT64_MAX, &c);
        e->by_status[i] = (size_t)c;
    }
    if (!rc) {
        e->nrequests = (size_t)nreqs;
        e->any_request = any;
        e->first_submitted_at = first_at;
        rc = osse_mp_get_array(&rd, SIZE_MAX, &nrows);
    }
    /* The rows the open requests made are the snapshot's too: replaced. */
    for (size_t i = 0; !rc && i < nrows; i++) {
        char *agency = NULL, *workflow = NULL;
        int64_t open = 0, breaches = 0, at = 0;
        uint64_t began = 0;
        rc = osse_mp_get_array(&rd, 6, NULL) || osse_mp_get_str(&rd, &agency) || !agency ||
             osse_mp_get_str(&rd, &workflow) || !workflow || osse_mp_get_int(&rd, &open) ||
             osse_mp_get_int(&rd, &breaches) || osse_mp_get_uint(&rd, 1, &began) ||
             osse_mp_get_int(&rd, &at);
        if (!rc) {
            osse_task_row_t *row = osse__task_row(e, agency, workflow);
            row->open = open;
            row->breaches = breaches;
            row->began = began;
            row->first_at = at;
        }
        free(agency);
        free(workflow);
    }
    rc = rc || osse_mp_get_array(&rd, SIZE_MAX, &nw);
    for (size_t i = 0; !rc && i < nw; i++) {
        char *wid = NULL;
        uint64_t seq = 0;
        size_t ny = 0;
        rc = osse_mp_get_array(&rd, 3, NULL) || osse_mp_get_str(&rd, &wid) || !wid ||
             osse_mp_get_uint(&rd, UINT64_MAX, &seq) || osse_mp_get_array(&rd, SIZE_MAX, &ny);
        osse_wfent_t *w = rc ? NULL : osse_map_get(&e->workflows, wid);
        free(wid);
        rc = rc || !w;
        if (!rc) {
            w->licence_seq = seq;
            free(w->licence_years);
            w->licence_years = ny ? osse_calloc(ny, sizeof *w->licence_years) : NULL;
            w->nlicence_years = 0;
        }
        for (size_t k = 0; !rc && k < ny; k++) {
            int64_t year = 0;
            uint64_t ys = 0;
            rc = osse_mp_get_array(&rd, 2, NULL) || osse_mp_get_int(&rd, &year) ||
                 osse_mp_get_uint(&rd, UINT64_MAX, &ys);
            if (!rc)
                w->licence_years[w->nlicence_years++] = (osse_lyear_t){year, ys};
        }
    }
    return rc || rd.p != rd.end ? OSSE_ECORRUPT : 0;
}

typedef struct {
    osse_engine_t *e;
    osse_err_t *err;
} open_load_t;

/* An opn/ record: its request, read and joined as at a full start. */
static int load_open(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    open_load_t *l = ud;
    osse_request_t *r = NULL;
    int rc = read_open(l->e, key, klen, val, vlen, &r, l->err);
    if (!rc && (rc = osse__apply_loaded(l->e, r, l->err)))
        osse__request_free(r);
    return rc;
}

int osse__records_load_open(osse_engine_t *e, osse_err_t *err)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = read_marker(e, &val, &vlen, err);
    open_load_t l = {e, err};
    /* In the order of submission (opn/'s keys): the open list's. */
    if (!rc)
        rc = osse_log_kv_scan(e->log, OSSE_KEY_OPEN, OSSE_KEY_LEN(OSSE_KEY_OPEN), load_open, &l,
                              err);
    if (!rc && restore_snapshot(e, (const uint8_t *)val + 8, vlen - 8))
        rc = osse_err_set(err, OSSE_ECORRUPT,
                          "the views marker's counters snapshot does not decode: `osse serve "
                          "--rebuild-views` rebuilds it from the log");
    free(val);
    /* Every ended request is on disk, none in memory. */
    e->some_evicted = true;
    return rc;
}

/* osse replay --data: the stored snapshot against the counters the replay
 * rebuilt (what a start restores instead of reading every record). */
static int snapshot_check(osse_engine_t *e, osse_log_t *log, osse_records_check_t *out,
                          osse_err_t *err)
{
    void *val = NULL;
    size_t vlen = 0;
    osse_err_t derr = {0};
    verify_t vf = {.err = &derr};
    uint8_t sum[32];
    osse__records_sum(e, sum); /* a replay engine sums every request here */
    int rc = osse_log_kv_get(log, OSSE_KEY_VIEWS, OSSE_KEY_LEN(OSSE_KEY_VIEWS), &val, &vlen, err);
    if (rc == OSSE_ENOTFOUND || (!rc && vlen <= 8)) {
        out->snapshot = "missing";
        rc = 0;
    } else if (!rc) {
        out->snapshot = verify_snapshot(e, (const uint8_t *)val + 8, vlen - 8, &vf) || vf.wrong
                            ? "different"
                            : "equal";
    }
    free(val);
    return rc;
}

int osse__records_verify(osse_engine_t *e, osse_err_t *err)
{
    verify_t vf = {.err = err};
    void *val = NULL;
    size_t vlen = 0;
    int rc = read_marker(e, &val, &vlen, err);
    if (!rc)
        rc = verify_snapshot(e, (const uint8_t *)val + 8, vlen - 8, &vf);
    free(val);
    open_walk_t w = {.vf = &vf, .next = e->open.first};
    if (!rc && !vf.wrong) {
        rc =
            osse_log_kv_scan(e->log, OSSE_KEY_OPEN, OSSE_KEY_LEN(OSSE_KEY_OPEN), open_one, &w, err);
        rc = rc == 1 ? 0 : rc;
        if (!rc && !vf.wrong && w.next) {
            char field[64];
            snprintf(field, sizeof field, "open[%zu]", w.n);
            differs(&vf, field, "the end", w.next->id);
        }
    }
    return rc ? rc : vf.wrong ? OSSE_ECORRUPT : 0;
}

typedef struct {
    uint64_t *v;
    size_t n, c;
} seqs_t;

static int catalog_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    seqs_t *s = ud;
    (void)val;
    (void)vlen;
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_CATALOG);
    if (klen != pl + 8)
        return OSSE_ECORRUPT;
    uint64_t seq = osse_be_get((const uint8_t *)key + pl, 8);
    OSSE_VEC_RESERVE(s->v, s->c, s->n + 1);
    s->v[s->n++] = seq;
    return 0;
}

int osse__catalog_seqs(osse_engine_t *e, uint64_t **out, size_t *n, osse_err_t *err)
{
    seqs_t s = {0};
    int rc = osse_log_kv_scan(e->log, OSSE_KEY_CATALOG, OSSE_KEY_LEN(OSSE_KEY_CATALOG), catalog_one,
                              &s, err);
    if (rc == OSSE_ECORRUPT)
        osse_err_set(err, rc, "a catalog index key of the wrong length");
    if (rc) {
        free(s.v);
        return rc;
    }
    *out = s.v;
    *n = s.n;
    return 0;
}

bool osse__records_ready(osse_engine_t *e)
{
    void *val = NULL;
    size_t vlen = 0;
    uint64_t seq = 0;
    bool ok = osse_log_kv_get(e->log, OSSE_KEY_VIEWS, OSSE_KEY_LEN(OSSE_KEY_VIEWS), &val, &vlen,
                              NULL) == 0 &&
              vlen >= 8;
    if (ok)
        seq = osse_be_get(val, 8);
    free(val);
    return ok && seq == osse_log_last_seq(e->log);
}
