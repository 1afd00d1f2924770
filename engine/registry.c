/* registry.c: the public registry of licences (SPEC §9) and revocation (§4).
 *
 * Queries over the projection: e->lics holds every request that was issued
 * a licence, in issue order, and e->licnums each number's request, both
 * built by apply.c. Lists are newest first. A page scans at most SCAN_MAX
 * licences whatever the filters match, so that a search that matches little
 * costs the same as one that matches much; a page that stops there comes
 * back short, with a next_cursor. The cursor is the position (in issue
 * order) below which the next page starts: the registry only grows, so a
 * cursor stays good while licences are issued between pages.
 *
 * The CSV export is an iterator that renders a slice of rows at a time: the
 * HTTP layer pulls the next slice once the one before is on the socket, so a
 * registry of millions is served in constant memory (a slice and the
 * iterator's filters). It scans a snapshot of the registry's length taken
 * when it starts; statuses are read as they stand when each row is made. */
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_MAX 10000
#define MAX_LIMIT 500
#define DEFAULT_LIMIT 100
#define MAX_Q 100 /* characters */
#define MAX_REASON 4096
#define CSV_SLICE (64u << 10)

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

static bool matches(const filter_t *flt, const osse_request_t *r)
{
    if (flt->wf && r->wfe != flt->wf)
        return false;
    if (flt->status && strcmp(flt->status, osse__licence_status(r)) != 0)
        return false;
    if (!flt->q)
        return true;
    const char *number = osse__jstr(r->licence, "number");
    if (number && contains_ci(number, flt->q))
        return true;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(r->licence, "public_fields"), k, v)
    {
        if (json_is_string(v)) {
            if (contains_ci(json_string_value(v), flt->q))
                return true;
        } else {
            char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            bool hit = t && contains_ci(t, flt->q);
            free(t);
            if (hit)
                return true;
        }
    }
    return false;
}

int osse_q_licences(osse_engine_t *e, const json_t *params, json_t **out, osse_fail_t *f)
{
    static const char *const allowed[] = {"q", "workflow", "status", "limit", "cursor", NULL};
    filter_t flt = {0};
    int rc = parse_filter(e, params, allowed, &flt, f);
    if (rc)
        return rc;
    size_t limit = DEFAULT_LIMIT, from = e->nlics;
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
        unsigned long long v = strtoull(cs, &end, 10);
        if (*cs < '0' || *cs > '9' || *end || v > e->nlics) {
            free(flt.q);
            osse__detail(f, "cursor", "not a cursor this registry gave");
            return osse__fail(f, OSSE_EINVAL, "invalid_request", "cursor is invalid");
        }
        from = (size_t)v;
    }
    json_t *arr = json_array();
    size_t i = from, scanned = 0;
    while (i > 0 && json_array_size(arr) < limit && scanned < SCAN_MAX) {
        const osse_request_t *r = e->lics[--i];
        scanned++;
        if (matches(&flt, r))
            json_array_append_new(arr, osse__licence_entry(r, false));
    }
    free(flt.q);
    json_t *next = json_null();
    if (i > 0) {
        char c[24];
        snprintf(c, sizeof c, "%zu", i);
        next = json_string(c);
    }
    *out = json_pack("{s:o,s:o}", "licences", arr, "next_cursor", next);
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
    filter_t flt;
    size_t next;  /* rows come from e->lics[next - 1] down */
    bool header;  /* written */
    char **names; /* workflow=: the latest version's public fields; else NULL */
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

static void csv_row(osse_csv_t *c, osse_buf_t *b, const osse_request_t *r)
{
    json_t *o = osse__licence_entry(r, false);
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
    json_decref(o);
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
    c->flt = flt;
    c->next = e->nlics;
    if (flt.wf) {
        /* The columns of the latest version's public fields, in order. */
        const osse_wf_t *wf = flt.wf->versions[flt.wf->nversions - 1];
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
    /* A slice: rows until about CSV_SLICE bytes, or SCAN_MAX licences looked
     * at (a filter that matches little still yields to the loop). */
    size_t scanned = 0;
    while (c->next > 0 && out->len < CSV_SLICE && scanned < SCAN_MAX) {
        const osse_request_t *r = c->e->lics[--c->next];
        scanned++;
        if (matches(&c->flt, r))
            csv_row(c, out, r);
    }
    return c->next > 0 ? 1 : 0;
}

void osse_csv_close(osse_csv_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->names && i < c->nnames; i++)
        free(c->names[i]);
    free(c->names);
    free(c->flt.q);
    free(c);
}
