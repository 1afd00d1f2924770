/* licence.c: what makes a licence: its number, its signed document, its
 * status and its expiry (SPEC §2 "Issue steps", §9).
 *
 * The number's counter lives in the projection (osse_wfent_t), counted by
 * apply.c from each LicenceIssued, so that a restart (or kill -9) continues
 * where the log stands: numbers have no gaps and are never reused, because
 * the counter is the number of licences the log holds for that (workflow,
 * year), and request.c reads the next one and emits it in the same step.
 * A template with a year counts per (workflow, year of issue), the year in
 * the workflow calendar's utc_offset (UTC without a calendar); one without a
 * year counts per workflow.
 *
 * The document and its JWS are made once, when the licence is issued, and
 * kept in LicenceIssued: a replay never signs, and the signature a phone
 * checks offline is the one the log holds. The payload is the document as
 * compact JSON with its keys in SPEC's order (jansson keeps insertion order),
 * so the event's `document` is exactly the decoded payload.
 *
 * Pure: it calls nothing in engine/ but util, so that apply.c (the counter)
 * and views.c (the status) may use it; the expiries, which emit, are
 * expiry.c's. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/time.h"

int64_t osse__licence_year(osse_engine_t *e, const osse_wf_t *wf, int64_t at)
{
    int64_t off_ms = 0;
    const osse_calendar_ent_t *c = wf->calendar ? osse_map_get(&e->calendars, wf->calendar) : NULL;
    if (c)
        off_ms = (int64_t)c->cal.utc_offset_min * 60000;
    int64_t local = at + off_ms;
    int64_t days = local >= 0 ? local / 86400000 : -((-local + 86399999) / 86400000);
    int64_t y;
    unsigned m, d;
    osse_civil_from_days(days, &y, &m, &d);
    return y;
}

static bool has_year(const char *tpl)
{
    return strstr(tpl, "{yyyy}") || strstr(tpl, "{bbbb}");
}

uint64_t osse__licence_seq(osse_wfent_t *w, const char *tpl, int64_t year, bool advance)
{
    if (!has_year(tpl))
        return advance ? ++w->licence_seq : w->licence_seq + 1;
    for (size_t i = 0; i < w->nlicence_years; i++)
        if (w->licence_years[i].year == year)
            return advance ? ++w->licence_years[i].seq : w->licence_years[i].seq + 1;
    if (!advance)
        return 1;
    w->licence_years =
        osse_reallocarray(w->licence_years, w->nlicence_years + 1, sizeof *w->licence_years);
    w->licence_years[w->nlicence_years++] = (osse_lyear_t){year, 1};
    return 1;
}

void osse__licence_number(const char *tpl, int64_t year, uint64_t seq, char *out, size_t n)
{
    size_t o = 0;
    for (const char *c = tpl; *c && o + 1 < n;) {
        if (strncmp(c, "{yyyy}", 6) == 0 || strncmp(c, "{bbbb}", 6) == 0) {
            o += (size_t)snprintf(out + o, n - o, "%04lld",
                                  (long long)(c[1] == 'b' ? year + 543 : year));
            c += 6;
        } else if (strncmp(c, "{seq:", 5) == 0 && c[5] >= '1' && c[5] <= '9' && c[6] == '}') {
            o += (size_t)snprintf(out + o, n - o, "%0*llu", c[5] - '0', (unsigned long long)seq);
            c += 7;
        } else {
            out[o++] = *c++;
        }
        if (o >= n)
            o = n - 1;
    }
    out[o] = '\0';
}

/* base64url without padding (RFC 7515 2) of n bytes, appended to b. */
static void b64url(osse_buf_t *b, const void *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = osse_malloc(cap);
    sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    osse_buf_puts(b, s);
    free(s);
}

void osse__licence_sign(osse_engine_t *e, const osse_request_t *r, const char *number, int64_t from,
                        int64_t until, json_t *fields, json_t **doc, json_t **jws)
{
    const osse_verifier_t *v = e->signer ? osse_signer_verifier(e->signer) : NULL;
    /* The keys in SPEC §2's order: the payload's bytes follow it. */
    json_t *d = json_object();
    json_object_set_new(d, "number", json_string(number));
    json_object_set_new(d, "workflow", json_string(r->wfe->id));
    json_object_set_new(d, "title", r->wf->title ? json_string(r->wf->title) : json_null());
    json_object_set_new(d, "issued_at", osse__time_json(from));
    json_object_set_new(d, "valid_from", osse__time_json(from));
    json_object_set_new(d, "valid_until", osse__time_json(until));
    json_object_set(d, "fields", fields);
    json_object_set_new(d, "issuer", v ? json_string(v->name) : json_null());
    *doc = d;
    *jws = json_null();
    if (!v)
        return;
    char kid[9];
    osse_key_id_hex(v->key_id, kid);
    char header[64];
    snprintf(header, sizeof header, "{\"alg\":\"EdDSA\",\"kid\":\"%s\"}", kid);
    char *payload = json_dumps(d, JSON_COMPACT);
    osse_buf_t b = {0};
    b64url(&b, header, strlen(header));
    osse_buf_puts(&b, ".");
    b64url(&b, payload, strlen(payload));
    free(payload);
    uint8_t sig[64];
    if (osse_signer_sign_jws(e->signer, (const char *)b.ptr, b.len, sig) == 0) {
        osse_buf_puts(&b, ".");
        b64url(&b, sig, sizeof sig);
        json_decref(*jws);
        *jws = json_stringn((const char *)b.ptr, b.len);
    }
    osse_buf_close(&b);
}

const char *osse__licence_status(const osse_request_t *r)
{
    return r->licence_revoked_at ? "revoked" : r->licence_expired_at ? "expired" : "valid";
}

json_t *osse__licence_entry(const osse_request_t *r, bool full)
{
    const json_t *l = r->licence;
    json_t *doc = json_object_get(l, "document");
    json_t *title = json_object_get(doc, "title");
    json_t *o = json_object();
    json_object_set(o, "number", json_object_get(l, "number"));
    json_object_set_new(o, "workflow", json_string(r->wfe->id));
    if (title)
        json_object_set(o, "title", title);
    else
        json_object_set_new(o, "title", r->wf->title ? json_string(r->wf->title) : json_null());
    json_object_set_new(o, "status", json_string(osse__licence_status(r)));
    json_object_set(o, "valid_from", json_object_get(l, "valid_from"));
    json_object_set(o, "valid_until", json_object_get(l, "valid_until"));
    json_t *f = json_object_get(l, "public_fields");
    json_object_set_new(o, "fields", f ? json_incref(f) : json_object());
    json_object_set_new(o, "revoked_at", osse__time_json(r->licence_revoked_at));
    json_object_set_new(o, "reason",
                        r->licence_reason ? json_string(r->licence_reason) : json_null());
    if (full) {
        json_object_set_new(o, "document", doc ? json_incref(doc) : json_null());
        json_t *j = json_object_get(l, "jws");
        json_object_set_new(o, "jws", j ? json_incref(j) : json_null());
    }
    return o;
}
