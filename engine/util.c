/* util.c: what every file of the engine uses and that knows no mechanism:
 * errors (osse_fail_t), ids and tokens, random bytes, times as JSON, role
 * names, the checks of a catalog id, a URL and a command body's keys.
 *
 * It is the bottom of engine/: it calls nothing else in it, and every other
 * file may call it. */
#include "engine/internal.h"

#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/problems.h"
#include "common/time.h"

static const char *role_names[] = {
#define X(n, s) s,
    OSSE_ROLES(X)
#undef X
};

const char *osse_role_name(osse_role_t r)
{
    return (unsigned)r < OSSE_ROLE__COUNT ? role_names[r] : "?";
}

int osse_role_parse(const char *s, osse_role_t *out)
{
    for (int i = 0; i < OSSE_ROLE__COUNT; i++)
        if (strcmp(s, role_names[i]) == 0) {
            *out = (osse_role_t)i;
            return 0;
        }
    return OSSE_EINVAL;
}

void osse_fail_clear(osse_fail_t *f)
{
    if (!f)
        return;
    json_decref(f->details);
    memset(f, 0, sizeof *f);
}

int osse__fail(osse_fail_t *f, int rc, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    f->rc = rc;
    f->code = code;
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return rc;
}

void osse__detail(osse_fail_t *f, const char *path, const char *fmt, ...)
{
    va_list ap;
    if (!f->details)
        f->details = json_array();
    va_start(ap, fmt);
    osse_problems_addv(f->details, path, fmt, ap);
    va_end(ap);
}

json_t *osse__time_json(int64_t ms)
{
    char buf[OSSE_TIME_LEN];
    if (!ms)
        return json_null();
    return json_string(osse_time_fmt(ms, buf));
}

/* Random bytes for ids and tracking codes, drawn from the kernel 4 KiB at a
 * time: a getrandom call per id showed up in the submission profile. Loop
 * thread only. */
void osse__random_bytes(void *out, size_t n)
{
    static unsigned char pool[4096];
    static size_t pos = sizeof pool;
    unsigned char *o = out;
    while (n > 0) {
        if (pos == sizeof pool) {
            randombytes_buf(pool, sizeof pool);
            pos = 0;
        }
        size_t k = sizeof pool - pos < n ? sizeof pool - pos : n;
        memcpy(o, pool + pos, k);
        sodium_memzero(pool + pos, k);
        pos += k;
        o += k;
        n -= k;
    }
}

void osse__random_id(char *out, size_t nbytes, const char *prefix)
{
    unsigned char raw[32];
    size_t pl = strlen(prefix);
    OSSE_PRE(nbytes <= sizeof raw);
    osse__random_bytes(raw, nbytes);
    memcpy(out, prefix, pl);
    sodium_bin2hex(out + pl, nbytes * 2 + 1, raw, nbytes);
}

void osse__sha256_hex(const void *p, size_t n, char out[65])
{
    /* libcrypto's SHA-256 (the Merkle tree's, storage/merkle.h), not
     * libsodium's portable one: every authenticated call hashes its token. */
    uint8_t h[OSSE_MERKLE_HASH];
    osse_merkle_sha256_t st;
    osse_merkle_sha256_init(&st);
    osse_merkle_sha256_update(&st, p, n);
    osse_merkle_sha256_final(&st, h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

int64_t osse_engine_now(const osse_engine_t *e)
{
    return e->test_clock ? e->clock : osse_time_real_ms();
}

size_t osse__pay_answer_key(const char *key, char out[OSSE__PAY_ANSWER_KEY_MAX])
{
    /* Every key written is shorter than OSSE_PAYMENT_KEY_MAX
     * (osse__payment_key cuts it): a longer one has no record. */
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_PAY_ANSWER), kl = strnlen(key, OSSE_PAYMENT_KEY_MAX);
    if (kl == OSSE_PAYMENT_KEY_MAX)
        return 0;
    memcpy(out, OSSE_KEY_PAY_ANSWER, pl);
    memcpy(out + pl, key, kl);
    out[pl + kl] = '\0';
    return pl + kl;
}

json_t *osse__form(const osse_request_t *cr)
{
    /* A cache filled on first use: the request is the same request before
     * and after, so readers that hold it const may ask too (loop thread). */
    osse_request_t *r = (osse_request_t *)cr;
    if (!r->form && r->form_mp) {
        osse_err_t err = {0};
        osse_mp_rd_t rd = {r->form_mp, r->form_mp + r->form_mp_len, &err};
        if (osse_mp_get_json(&rd, &r->form) || !json_is_object(r->form))
            osse__panic(__FILE__, __LINE__, "the form of %s does not decode: %s", r->id, err.msg);
        free(r->form_mp);
        r->form_mp = NULL;
        r->form_mp_len = 0;
    }
    return r->form;
}

void osse__rlist_add(osse__rlist_t *l, osse_request_t *r)
{
    r->open_prev = l->last;
    r->open_next = NULL;
    if (l->last)
        l->last->open_next = r;
    else
        l->first = r;
    l->last = r;
    l->n++;
}

void osse__rlist_remove(osse__rlist_t *l, osse_request_t *r)
{
    if (r->open_prev)
        r->open_prev->open_next = r->open_next;
    else
        l->first = r->open_next;
    if (r->open_next)
        r->open_next->open_prev = r->open_prev;
    else
        l->last = r->open_prev;
    r->open_prev = r->open_next = NULL;
    l->n--;
}

void osse__pins(osse_engine_t *e, osse_request_t *r, int delta)
{
    OSSE_PRE(delta > 0 || r->pins > 0);
    uint32_t was = r->pins;
    r->pins = (uint32_t)((int64_t)r->pins + delta);
    /* An ended request is on the list only while nothing pins it, so that
     * the trims never walk over the pinned (cache.c). */
    if (osse__rstatus_final(r->status) && !was != !r->pins) {
        if (r->pins) {
            osse__rlist_remove(&e->lru, r);
            e->npinned++;
        } else {
            osse__rlist_add(&e->lru, r);
            e->npinned--;
        }
    }
}

osse_request_t *osse__request(osse_engine_t *e, const char *id)
{
    osse_request_t *r = e->last_request;
    if (r && strcmp(r->id, id) == 0)
        return r;
    if (!(r = osse_map_get(&e->requests, id)))
        return NULL;
    e->last_request = r;
    /* An ended request found is the most recently used (cache.c). */
    if (osse__rstatus_final(r->status) && !r->pins && r != e->lru.last) {
        osse__rlist_remove(&e->lru, r);
        osse__rlist_add(&e->lru, r);
    }
    return r;
}

void osse__new_token(char token[OSSE_TOKEN_LEN], char hash[65])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(token, "osse_", 5);
    sodium_bin2base64(token + 5, OSSE_TOKEN_LEN - 5, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    osse__sha256_hex(token, strlen(token), hash);
}

json_t *osse__jname(osse_engine_t *e, const char *s)
{
    if (!s)
        return NULL;
    json_t *v = osse_map_get(&e->names, s);
    if (!v) {
        /* Names come from definitions and the platform's records: a few
         * hundred at most, kept for the engine's life. */
        if (!(v = json_string(s)))
            return NULL;
        osse_map_put(&e->names, s, v);
    }
    return json_incref(v);
}

const char *osse__jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Every key of body must be in allowed (NULL-terminated). */
int osse__check_keys(const json_t *body, const char *const *allowed, osse_fail_t *f)
{
    const char *k;
    json_t *v;
    if (!json_is_object(body))
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the body must be a JSON object");
    json_object_foreach((json_t *)body, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok)
            osse__detail(f, k, "unknown field");
    }
    if (f->details)
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "the body has unknown fields");
    return 0;
}

int osse__opt_string(const json_t *body, const char *key, size_t max, const char **out,
                     osse_fail_t *f)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max) {
        osse__detail(f, key, "must be a string of at most %zu bytes", max);
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "%s is invalid", key);
    }
    *out = json_string_value(v);
    return 0;
}

bool osse__id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-' ||
              s[i] == '_'))
            return false;
    return true;
}

bool osse__url_ok(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **osse__sorted_keys(const osse_map_t *m, size_t *n)
{
    const char **keys = osse_malloc((m->len + 1) * sizeof *keys);
    size_t it = 0, k = 0;
    const char *key;
    while (osse_map_next(m, &it, &key, NULL))
        keys[k++] = key;
    qsort(keys, k, sizeof *keys, cmp_str);
    *n = k;
    return keys;
}

int osse__check_params(const json_t *params, const char *const *allowed, osse_fail_t *f)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)params, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0;
        if (!ok)
            osse__detail(f, k, "unknown query parameter");
    }
    return f->details ? osse__fail(f, OSSE_EINVAL, "invalid_request", "unknown query parameter")
                      : 0;
}

bool osse__record_id(const void *key, size_t klen, size_t pl, char *out, size_t n)
{
    return klen > pl && osse__record_text((const char *)key + pl, klen - pl, out, n);
}

bool osse__record_text(const void *val, size_t vlen, char *out, size_t n)
{
    if (vlen >= n)
        return false;
    memcpy(out, val, vlen);
    out[vlen] = '\0';
    return true;
}

size_t osse__ix_name_key(char kind, const char *name, const char *id, uint8_t *out)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_NAME), nl = strlen(name), il = id ? strlen(id) : 0;
    if (pl + 2 + nl + il > OSSE__IX_KEY_MAX)
        return 0;
    memcpy(out, OSSE_KEY_NAME, pl);
    out[pl] = (uint8_t)kind;
    memcpy(out + pl + 1, name, nl);
    out[pl + 1 + nl] = 0;
    if (il) /* memcpy from NULL (the prefix) is undefined, even of 0 bytes */
        memcpy(out + pl + 2 + nl, id, il);
    return pl + 2 + nl + il;
}
