/* registry.c: the public registry of licences (SPEC §9) and revocation (§4).
 *
 * The lists read the registry's index on disk (engine/index.c, lic/): one
 * entry per licence, keyed by its LicenceIssued's seq inverted, so newest
 * first, whose value holds the entry as listed and what the filters test;
 * a revocation or an expiry rewrites it with the request's record. The
 * parameters are checked on the loop; the scan runs on the libuv pool,
 * tests each entry there (lic_keep: nothing but the entry and the query's
 * copies of the filters) and the page is rendered back on the loop. A page
 * looks at most SCAN_MAX licences whatever the filters match, so that a
 * search that matches little costs the same as one that matches much; a
 * page that stops there comes back short, with a next_cursor. The cursor is
 * the seq of the licence the next page starts with: the registry only
 * grows, and newer licences sort before it, so a cursor stays good while
 * licences are issued between pages.
 *
 * The lookup by number and the revocation use e->licnums (apply.c), in
 * memory.
 *
 * The CSV export is an iterator that reads a page of CSV_PAGE rows at a
 * time from the index on the pool (osse_csv_read) and renders it in slices
 * on the loop: the HTTP layer pulls the next slice once the one before is on
 * the socket, so a registry of millions is served in constant memory (a page
 * and the iterator's filters). It covers the licences the log held when it
 * started (each page resumes at the first entry the page before did not
 * show); statuses are as the page read them. */
#include "engine/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX 10000
#define MAX_LIMIT 500
#define DEFAULT_LIMIT 100
#define MAX_Q 100 /* characters */
#define MAX_REASON 4096
#define CSV_SLICE (64u << 10)
#define CSV_PAGE 256 /* rows a read of the pool gives the export */

typedef struct filter_s {
    char *q; /* lowercased (ASCII) or NULL */
    const osse_wfent_t *wf;
    const char *status; /* static, or NULL */
} filter_t;

static const char *param(const json_t *params, const char *k)
{
    return json_string_value(json_object_get(params, k));
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static char *lower_dup(const char *s)
{
    char *o = osse_strdup(s);
    for (char *p = o; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return o;
}

/* Whether needle (lowercase) is in hay, ASCII letters compared without case. */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *h = hay; *h; h++) {
        size_t i = 0;
        while (i < n && h[i]) {
            char c = h[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != needle[i])
                break;
            i++;
        }
        if (i == n)
            return true;
    }
    return n == 0;
}

static int parse_filter(osse_engine_t *e, const json_t *params, const char *const *allowed,
                        filter_t *flt, osse_fail_t *f)
{
    int rc = osse__check_params(params, allowed, f);
    if (rc)
        return rc;
    const char *q = param(params, "q"), *wf = param(params, "workflow"),
               *st = param(params, "status");
    if (q && utf8_chars(q) > MAX_Q) {
        osse__detail(f, "q", "at most %d characters", MAX_Q);
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "q is too long");
    }
    if (st) {
        static const char *const sts[] = {"valid", "expired", "revoked"};
        for (size_t i = 0; i < 3 && !flt->status; i++)
            if (strcmp(st, sts[i]) == 0)
                flt->status = sts[i];
        if (!flt->status) {
            osse__detail(f, "status", "must be valid, expired or revoked");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "status is invalid");
        }
    }
    if (wf && !(flt->wf = osse_map_get(&e->workflows, wf))) {
        osse__detail(f, "workflow", "no such workflow");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "unknown workflow");
    }
    flt->q = q && *q ? lower_dup(q) : NULL;
    return 0;
}

/* The filters as the pool tests them (copies: nothing of the engine), and
 * one scan's counts. A scan keeps the matches up to limit among the first
 * SCAN_MAX entries it looks at, then one more entry whatever it is (the
 * probe): there the next page starts. */
typedef struct lic_q_s {
    char *q, *workflow; /* q lowercased, or NULL */
    int status;         /* 0 valid, 1 expired, 2 revoked, -1 any */
    size_t limit, seen, kept;
    bool probe;
} lic_q_t;

static void lic_q_set(lic_q_t *lq, filter_t *flt, size_t limit)
{
    static const char *const sts[] = {"valid", "expired", "revoked"};
    lq->q = flt->q;
    flt->q = NULL;
    lq->workflow = flt->wf ? osse_strdup(flt->wf->id) : NULL;
    lq->status = -1;
    for (int i = 0; i < 3 && flt->status; i++)
        if (strcmp(flt->status, sts[i]) == 0)
            lq->status = i;
    lq->limit = limit;
}

static void lic_q_clear(lic_q_t *lq)
{
    free(lq->q);
    free(lq->workflow);
}

static bool matches(const lic_q_t *lq, const osse__licence_row_t *l)
{
    if (lq->workflow && strcmp(l->workflow, lq->workflow) != 0)
        return false;
    if (lq->status >= 0 && (unsigned)lq->status != l->status)
        return false;
    if (!lq->q)
        return true;
    for (size_t i = 0; i < l->ntexts; i++)
        if (contains_ci(l->texts[i], lq->q))
            return true;
    return false;
}

/* Pool thread: reads its arguments and s->q only. An entry that does not
 * decode is kept, and the page fails when it is rendered. */
static bool lic_keep(const osse_scan_t *s, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    (void)key, (void)klen;
    lic_q_t *lq = s->q;
    if (lq->kept == lq->limit || lq->seen++ >= SCAN_MAX) {
        lq->probe = true;
        return true;
    }
    osse__licence_row_t l;
    if (osse__ix_licence_decode(val, vlen, false, &l)) {
        lq->kept++;
        return true;
    }
    bool m = matches(lq, &l);
    osse__ix_licence_clear(&l);
    lq->kept += m;
    return m;
}

/* A scan of the registry from start (inclusive, a key of lic/) to its end. */
static osse_scan_t *lic_scan(osse_engine_t *e, const uint8_t *start, size_t slen, lic_q_t *lq)
{
    uint8_t stop[OSSE__IX_KEY_MAX];
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_LICENCE);
    memcpy(stop, OSSE_KEY_LICENCE, pl);
    stop[pl - 1]++; /* "lic0": past every entry */
    lq->seen = lq->kept = 0;
    lq->probe = false;
    osse_scan_t *s = osse__scan_new(e, start, slen, stop, pl, lq->limit + 1);
    s->look = SCAN_MAX + 1;
    s->q = lq;
    s->keep = lic_keep;
    return s;
}

/* Row i of a scan of the registry: its entry and (if asked) its seq. */
static int lic_row(const osse_scan_t *s, size_t i, bool entry, osse__licence_row_t *l,
                   uint64_t *seq)
{
    const osse__row_t *row = &s->rows[i];
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_LICENCE);
    if (row->klen != pl + 8 || memcmp(row->key, OSSE_KEY_LICENCE, pl) != 0)
        return OSSE_ECORRUPT;
    if (seq)
        *seq = ~osse_be_get(row->key + pl, 8);
    return entry ? osse__ix_licence_decode(row->val, row->vlen, true, l) : 0;
}

static void lic_drop(osse_scan_t *s)
{
    lic_q_clear(s->q);
    free(s->q);
}

static int lic_finish(osse_engine_t *e, osse_scan_t *s, json_t **out, osse_fail_t *f)
{
    (void)e;
    const lic_q_t *lq = s->q;
    size_t shown = s->nrows - (lq->probe && s->nrows);
    json_t *arr = json_array();
    for (size_t i = 0; i < shown; i++) {
        osse__licence_row_t l;
        if (lic_row(s, i, true, &l, NULL)) {
            json_decref(arr);
            return osse__fail(f, OSSE_EIO, "internal", "a damaged entry of the registry");
        }
        json_array_append(arr, l.entry);
        osse__ix_licence_clear(&l);
    }
    /* The cursor is the probe's seq: the next page starts with it. */
    json_t *next = json_null();
    uint64_t seq = 0;
    if (lq->probe && s->nrows) {
        if (lic_row(s, s->nrows - 1, false, NULL, &seq)) {
            json_decref(arr);
            return osse__fail(f, OSSE_EIO, "internal", "a damaged entry of the registry");
        }
        char c[24];
        snprintf(c, sizeof c, "%llu", (unsigned long long)seq);
        next = json_string(c);
    }
    *out = json_pack("{s:o,s:o}", "licences", arr, "next_cursor", next);
    return 0;
}

int osse_q_licences(osse_engine_t *e, const json_t *params, osse_scan_t **out, osse_fail_t *f)
{
    static const char *const allowed[] = {"q", "workflow", "status", "limit", "cursor", NULL};
    filter_t flt = {0};
    int rc = parse_filter(e, params, allowed, &flt, f);
    if (rc)
        return rc;
    size_t limit = DEFAULT_LIMIT;
    /* Below every licence the log holds: the newest first. */
    uint64_t from = e->applied;
    const char *ls = param(params, "limit"), *cs = param(params, "cursor");
    char *end;
    if (ls) {
        long v = strtol(ls, &end, 10);
        if (*ls == '\0' || *end || v < 1 || v > MAX_LIMIT) {
            free(flt.q);
            osse__detail(f, "limit", "must be an integer from 1 to %d", MAX_LIMIT);
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "limit is invalid");
        }
        limit = (size_t)v;
    }
    if (cs) {
        /* A licence's seq, where a page stopped: at most the log's last. */
        errno = 0;
        unsigned long long v = strtoull(cs, &end, 10);
        if (*cs < '0' || *cs > '9' || *end || errno || v > e->applied) {
            free(flt.q);
            osse__detail(f, "cursor", "not a cursor this registry gave");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "cursor is invalid");
        }
        from = v;
    }
    lic_q_t *lq = osse_calloc(1, sizeof *lq);
    lic_q_set(lq, &flt, limit);
    uint8_t start[OSSE__IX_KEY_MAX];
    osse_scan_t *s = lic_scan(e, start, osse__ix_licence_key(from, start), lq);
    s->finish = lic_finish;
    s->drop = lic_drop;
    *out = s;
    return 0;
}

int osse_q_licence(osse_engine_t *e, const char *number, json_t **out, osse_fail_t *f)
{
    const osse_request_t *r = osse_map_get(&e->licnums, number);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no licence has this number");
    *out = osse__licence_entry(r, true);
    return 0;
}

/* The issue step of r's workflow version, or NULL. */
static const osse_wf_step_t *issue_step(const osse_request_t *r)
{
    for (size_t i = 0; i < r->wf->nsteps; i++)
        if (r->wf->steps[i].kind == OSSE_STEP_KIND_ISSUE)
            return &r->wf->steps[i];
    return NULL;
}

int osse_cmd_revoke_licence(osse_engine_t *e, const osse_principal_t *p, const char *number,
                            json_t *body, json_t **out, osse_fail_t *f)
{
    static const char *const keys[] = {"reason", NULL};
    int rc = osse__check_keys(body, keys, f);
    const char *reason = NULL;
    if (rc || (rc = osse__opt_string(body, "reason", MAX_REASON, &reason, f)))
        return rc;
    if (!reason || !*reason) {
        osse__detail(f, "reason", "required: why the licence is revoked (it is public)");
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "reason is required");
    }
    osse_request_t *r = osse_map_get(&e->licnums, number);
    if (!r)
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no licence has this number");
    const osse_wf_step_t *s = issue_step(r);
    bool issuer = p->role == OSSE_ROLE_AGENCY && s && s->agency && p->agency &&
                  strcmp(s->agency, p->agency) == 0;
    if (p->role != OSSE_ROLE_PLATFORM && !issuer)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "only the platform or the agency that issued this licence may revoke it");
    if (r->licence_revoked_at)
        return osse__fail(f, OSSE_ECONFLICT, "already_revoked", "the licence is already revoked");
    char stream[96];
    osse__stream(stream, sizeof stream, OSSE_SK_REQUEST, r->id);
    osse__emit(e, stream, OSSE_EV_LicenceRevoked, p,
               json_pack("{s:s,s:s}", "number", number, "reason", reason));
    *out = osse__licence_entry(r, false);
    return 0;
}

/* --- the CSV export --- */

struct osse_csv_s {
    osse_engine_t *e;
    lic_q_t lq;                   /* the filters, and the page's counts */
    uint8_t at[OSSE__IX_KEY_MAX]; /* where the next page starts (inclusive) */
    size_t atlen;
    osse_scan_t *page; /* the page read (rows in memory), or NULL */
    size_t pos;        /* its next row to render */
    bool header;       /* written */
    char **names;      /* workflow=: the latest version's public fields; else NULL */
    size_t nnames;
};
/* One RFC 4180 cell: quoted when it holds a quote, a comma or a line break;
 * a leading =, +, -, @, tab or carriage return gets a ' before it, so that a
 * spreadsheet never runs it as a formula. NULL is an empty cell. */
static void cell(osse_buf_t *b, const char *s, bool first)
{
    if (!first)
        osse_buf_append(b, ",", 1);
    if (!s)
        return;
    bool guard = *s == '=' || *s == '+' || *s == '-' || *s == '@' || *s == '\t' || *s == '\r';
    bool quote = strpbrk(s, "\",\r\n") != NULL;
    if (quote)
        osse_buf_append(b, "\"", 1);
    if (guard)
        osse_buf_append(b, "'", 1);
    for (const char *c = s; *c; c++) {
        if (*c == '"')
            osse_buf_append(b, "\"", 1);
        osse_buf_append(b, c, 1);
    }
    if (quote)
        osse_buf_append(b, "\"", 1);
}

static void json_cell(osse_buf_t *b, const json_t *v)
{
    if (!v || json_is_null(v)) {
        cell(b, NULL, false);
    } else if (json_is_string(v)) {
        cell(b, json_string_value(v), false);
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        cell(b, t, false);
        free(t);
    }
}

static void csv_row(osse_csv_t *c, osse_buf_t *b, const json_t *o)
{
    cell(b, osse__jstr(o, "number"), true);
    json_cell(b, json_object_get(o, "workflow"));
    json_cell(b, json_object_get(o, "title"));
    json_cell(b, json_object_get(o, "status"));
    json_cell(b, json_object_get(o, "valid_from"));
    json_cell(b, json_object_get(o, "valid_until"));
    json_cell(b, json_object_get(o, "revoked_at"));
    json_t *fields = json_object_get(o, "fields");
    if (c->names) {
        for (size_t i = 0; i < c->nnames; i++)
            json_cell(b, json_object_get(fields, c->names[i]));
    } else {
        json_cell(b, fields);
    }
    osse_buf_append(b, "\r\n", 2);
}

int osse_q_licences_csv(osse_engine_t *e, const json_t *params, osse_csv_t **out, osse_fail_t *f)
{
    static const char *const allowed[] = {"q", "workflow", "status", NULL};
    filter_t flt = {0};
    int rc = parse_filter(e, params, allowed, &flt, f);
    if (rc)
        return rc;
    osse_csv_t *c = osse_calloc(1, sizeof *c);
    c->e = e;
    const osse_wfent_t *wfe = flt.wf;
    lic_q_set(&c->lq, &flt, CSV_PAGE);
    /* The licences the log holds now: those issued later sort before. */
    c->atlen = osse__ix_licence_key(e->applied, c->at);
    if (wfe) {
        /* The columns of the latest version's public fields, in order. */
        const osse_wf_t *wf = wfe->versions[wfe->nversions - 1];
        for (size_t i = 0; i < wf->nsteps; i++)
            if (wf->steps[i].kind == OSSE_STEP_KIND_ISSUE) {
                c->nnames = wf->steps[i].npublic_fields;
                c->names = osse_calloc(c->nnames + 1, sizeof *c->names);
                for (size_t k = 0; k < c->nnames; k++)
                    c->names[k] = osse_strdup(wf->steps[i].public_fields[k]);
            }
        if (!c->names)
            c->names = osse_calloc(1, sizeof *c->names);
    }
    *out = c;
    return 0;
}

int osse_csv_next(osse_csv_t *c, osse_buf_t *out)
{
    if (!c->header) {
        c->header = true;
        osse_buf_puts(out, "number,workflow,title,status,valid_from,valid_until,revoked_at");
        if (c->names) {
            for (size_t i = 0; i < c->nnames; i++) {
                char h[300];
                snprintf(h, sizeof h, "field.%s", c->names[i]);
                cell(out, h, false);
            }
        } else {
            osse_buf_puts(out, ",fields");
        }
        osse_buf_append(out, "\r\n", 2);
    }
    if (!c->page) {
        c->page = lic_scan(c->e, c->at, c->atlen, &c->lq);
        return 2;
    }
    osse_scan_t *s = c->page;
    if (s->rc)
        return -1;
    size_t shown = s->nrows - (c->lq.probe && s->nrows);
    /* A slice: rows until about CSV_SLICE bytes. */
    while (c->pos < shown && out->len < CSV_SLICE) {
        osse__licence_row_t l;
        if (lic_row(s, c->pos++, true, &l, NULL))
            return -1;
        csv_row(c, out, l.entry);
        osse__ix_licence_clear(&l);
    }
    if (c->pos < shown)
        return 1;
    if (!c->lq.probe || !s->nrows)
        return 0;
    /* The next page starts at the probe. */
    const osse__row_t *probe = &s->rows[s->nrows - 1];
    if (probe->klen > sizeof c->at)
        return -1;
    memcpy(c->at, probe->key, probe->klen);
    c->atlen = probe->klen;
    osse_scan_free(s);
    c->pos = 0;
    c->page = lic_scan(c->e, c->at, c->atlen, &c->lq);
    return 2;
}

void osse_csv_read(osse_csv_t *c)
{
    osse_scan_run(c->page);
}

void osse_csv_close(osse_csv_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->names && i < c->nnames; i++)
        free(c->names[i]);
    free(c->names);
    lic_q_clear(&c->lq);
    osse_scan_free(c->page);
    free(c);
}
