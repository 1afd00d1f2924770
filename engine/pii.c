/* pii.c: sealing and opening personal values (SPEC §8), at the bottom of
 * engine/.
 *
 * A personal value is stored as {"enc":"<base64 of nonce || ciphertext>"}:
 * XChaCha20-Poly1305 (IETF) of its compact JSON text under its request's
 * key, a fresh 24-byte nonce, and as associated data the request id, a NUL
 * and the value's path ("form.name", or for a recorded rule input the path
 * the rule read), so that a sealed value moved to another request or field
 * does not open. Events, the projections, remembered answers and the digest
 * hold values only so; they are opened when a reader who may see them is
 * served, or when a rule reads them.
 *
 * Keys: e->keys maps a request id to its key (in sodium_malloc'd chunks,
 * osse__pii_key_slot), loaded from
 * the key store at start; a replay engine (osse replay) has none, and every
 * personal value then reads as "[encrypted]".
 *
 * The reserve (e->reserve, internal.h): a submission's key must be durable
 * before its first event, not made at the submission. So keys are made
 * ahead, a refill at a time (fresh request ids, their keys, one
 * osse_keystore_append: one fdatasync for them all; the first at start,
 * the others on the libuv pool once half is taken), and each
 * submission takes one whose key is durable already: its batch carries no
 * key, and the log's writer does no fsync of the key store before the
 * group's synced write. With none at hand the submission files its key with
 * its batch as before, so nothing waits for the reserve. Keys left in the
 * reserve at a stop or a crash have no events: the next start removes
 * them (engine.c keys_load), through the refill's one pending record
 * (storage/log.h), which lists its ids until the batch of the submission
 * that takes its last one deletes it (kpd_t).
 *
 * Tracking codes come with the reserve's ids: ended requests leave memory
 * (cache.c), so e->codes no longer holds every code, and the loop does not
 * read the disk. A refill mints a code for each id on the pool and drops
 * one that a nam/ 'c' entry has (every request whose submission's batch
 * was durable before the refill began); its join on the loop drops one
 * that a request in memory, another entry, or a submission since the
 * refill began has (e->reserve.recent: those may leave memory before the
 * join), and the take checks once more. So a code taken from the reserve
 * is on no other request ever. A submission that finds the reserve empty
 * mints its code on the loop, checked in memory only
 * (osse_tracking_codes_unchecked_total). Codes are not secret and not in
 * the key store: one reserved and not taken is forgotten at a restart. */
#include "engine/internal.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
/* A sealed value longer than this is damaged: a form is at most 1 MiB. */
#define SEALED_MAX (2u << 20)

/* rid NUL path, into out (at most n bytes); the length used. */
static size_t make_ad(const char *rid, const char *path, unsigned char *out, size_t n)
{
    size_t a = strlen(rid), b = strlen(path);
    if (a + 1 + b > n)
        b = n - a - 1; /* paths are short; a cut one still binds the prefix */
    memcpy(out, rid, a);
    out[a] = '\0';
    memcpy(out + a + 1, path, b);
    return a + 1 + b;
}

bool osse__pii_sealed(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) == 1 &&
           json_is_string(json_object_get(v, "enc"));
}

const uint8_t *osse__pii_key(const osse_engine_t *e, const char *rid)
{
    return osse_map_get(&e->keys, rid);
}

/* 2048 keys: 64 KiB a chunk. */
#define OSSE__KEYS_PER_CHUNK 2048

uint8_t *osse__pii_key_slot(osse_engine_t *e)
{
    if (e->nkey_free)
        return e->key_free[--e->nkey_free];
    if (!e->nkey_chunks || e->key_used == OSSE__KEYS_PER_CHUNK) {
        uint8_t *c = sodium_malloc((size_t)OSSE__KEYS_PER_CHUNK * OSSE_KEY_BYTES);
        if (!c)
            return NULL;
        e->key_chunks = osse_realloc(e->key_chunks, (e->nkey_chunks + 1) * sizeof *e->key_chunks);
        e->key_chunks[e->nkey_chunks++] = c;
        e->key_used = 0;
    }
    return e->key_chunks[e->nkey_chunks - 1] + OSSE_KEY_BYTES * e->key_used++;
}

void osse__pii_key_release(osse_engine_t *e, uint8_t *key)
{
    sodium_memzero(key, OSSE_KEY_BYTES);
    OSSE_VEC_PUSH(e->key_free, e->nkey_free, e->ckey_free, key);
}

void osse__pii_key_drop(osse_engine_t *e, const char *id)
{
    uint8_t *key = osse_map_del(&e->keys, id);
    if (key)
        osse__pii_key_release(e, key);
}

int osse__pii_key_set(osse_engine_t *e, const char *id, const uint8_t key[OSSE_KEY_BYTES])
{
    uint8_t *k = osse_map_get(&e->keys, id);
    if (!k && !(k = osse__pii_key_slot(e)))
        return OSSE_ENOMEM;
    memcpy(k, key, OSSE_KEY_BYTES);
    int rc = osse_map_put(&e->keys, id, k);
    if (rc)
        osse__pii_key_release(e, k);
    return rc;
}

int osse__pii_key_new(osse_engine_t *e, const char *rid, uint8_t wrapped[OSSE_WRAPPED_BYTES])
{
    if (!e->keystore)
        return OSSE_EINVAL;
    uint8_t *key = osse__pii_key_slot(e);
    if (!key)
        return OSSE_ENOMEM;
    int rc = osse_keystore_new_key(e->keystore, rid, key, wrapped);
    if (!rc)
        rc = osse_map_put(&e->keys, rid, key);
    if (rc)
        osse__pii_key_release(e, key);
    return rc;
}

/* Values whose JSON text is at most this long (names, ids, numbers: nearly
 * all) are sealed in stack buffers; longer ones (a linkage answer) on the
 * heap. Sealing was a fifth of a submission's extra cost in its profile,
 * most of it in allocations and json_pack's checks of a base64 string. */
#define SEAL_STACK 512
#define B64 sodium_base64_VARIANT_ORIGINAL

json_t *osse__pii_seal(const osse_engine_t *e, const char *rid, const char *path, const json_t *v)
{
    const uint8_t *key = osse__pii_key(e, rid);
    OSSE_PRE(key); /* commands seal only for requests they made the key of */
    const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
    char tbuf[SEAL_STACK], *text = tbuf;
    size_t n = json_dumpb(v, tbuf, sizeof tbuf, flags);
    if (n > sizeof tbuf) {
        text = osse_malloc(n);
        n = json_dumpb(v, text, n, flags);
    }
    unsigned char cbuf[NONCE + SEAL_STACK + TAG], ad[256];
    char bbuf[sodium_base64_ENCODED_LEN(NONCE + SEAL_STACK + TAG, B64)];
    size_t clen = NONCE + n + TAG, blen = sodium_base64_ENCODED_LEN(clen, B64);
    unsigned char *c = clen <= sizeof cbuf ? cbuf : osse_malloc(clen);
    char *b64 = blen <= sizeof bbuf ? bbuf : osse_malloc(blen);
    size_t adlen = make_ad(rid, path, ad, sizeof ad);
    /* A random nonce from the loop's pool of kernel randomness (sealing
     * runs on the loop thread): 192 bits, so no two seals under one key
     * share one. */
    osse__random_bytes(c, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(c + NONCE, NULL, (const unsigned char *)text, n, ad,
                                               adlen, NULL, c, key);
    sodium_memzero(text, n);
    if (text != tbuf)
        free(text);
    sodium_bin2base64(b64, blen, c, clen, B64);
    if (c != cbuf)
        free(c);
    json_t *o = json_object();
    json_object_set_new_nocheck(o, "enc", json_stringn_nocheck(b64, blen - 1));
    if (b64 != bbuf)
        free(b64);
    return o;
}

int osse__pii_try_open(const osse_engine_t *e, const char *rid, const char *path,
                       const json_t *stored, json_t **out)
{
    *out = NULL;
    if (!osse__pii_sealed(stored))
        return OSSE_EINVAL;
    const uint8_t *key = osse__pii_key(e, rid);
    const char *b64 = json_string_value(json_object_get(stored, "enc"));
    size_t blen = strlen(b64), clen = 0;
    if (!key)
        return OSSE_ENOTFOUND;
    if (blen > SEALED_MAX)
        return OSSE_ECORRUPT;
    unsigned char *c = osse_malloc(blen + 1), ad[256];
    if (sodium_base642bin(c, blen + 1, b64, blen, NULL, &clen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
        clen >= NONCE + TAG) {
        size_t n = clen - NONCE - TAG, adlen = make_ad(rid, path, ad, sizeof ad);
        char *text = osse_malloc(n + 1);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)text, NULL, NULL, c + NONCE,
                                                       clen - NONCE, ad, adlen, c, key) == 0)
            *out = json_loadb(text, n, JSON_DECODE_ANY, NULL);
        sodium_memzero(text, n);
        free(text);
    }
    free(c);
    return *out ? 0 : OSSE_ECORRUPT;
}

json_t *osse__pii_open(const osse_engine_t *e, const char *rid, const char *path,
                       const json_t *stored)
{
    if (!osse__pii_sealed(stored))
        return json_incref((json_t *)stored);
    json_t *out;
    return osse__pii_try_open(e, rid, path, stored, &out) ? json_string(OSSE_PII_ENCRYPTED) : out;
}

/* The definition's field `name`, or NULL. */
static const osse_wf_field_t *field_of(const osse_wf_t *wf, const char *name)
{
    for (size_t i = 0; i < wf->nfields; i++)
        if (strcmp(wf->fields[i].name, name) == 0)
            return &wf->fields[i];
    return NULL;
}

bool osse__pii_field(const osse_wf_t *wf, const char *name)
{
    const osse_wf_field_t *fd = field_of(wf, name);
    return fd && fd->pii;
}

json_t *osse__pii_seal_form(const osse_engine_t *e, const osse_wf_t *wf, const char *rid,
                            json_t *form)
{
    char path[160];
    /* In place, field by field of the definition: a new object for the
     * form cost as much as sealing its values (the profile). */
    for (size_t i = 0; i < wf->nfields; i++) {
        const osse_wf_field_t *fd = &wf->fields[i];
        json_t *v = fd->pii ? json_object_get(form, fd->name) : NULL;
        if (!v)
            continue;
        if (fd->type == OSSE_FIELD_FILE && json_is_object(v)) {
            /* A file field's record: only its name is personal (SPEC §8). */
            json_t *name = json_object_get(v, "name");
            snprintf(path, sizeof path, "form.%s.name", fd->name);
            if (json_is_string(name))
                json_object_set_new(v, "name", osse__pii_seal(e, rid, path, name));
        } else {
            snprintf(path, sizeof path, "form.%s", fd->name);
            json_object_set_new(form, fd->name, osse__pii_seal(e, rid, path, v));
        }
    }
    return json_incref(form);
}

/* One stored value of a form, under path, as `how` reads it. */
static json_t *form_value(const osse_engine_t *e, const osse_request_t *r, const char *path,
                          const json_t *v, osse_read_t how)
{
    if (!osse__pii_sealed(v) || how == OSSE_READ_STORED)
        return json_incref((json_t *)v);
    if (how == OSSE_READ_PLAIN)
        return osse__pii_open(e, r->id, path, v);
    return json_string(OSSE_PII_WITHHELD);
}

json_t *osse__pii_form(const osse_engine_t *e, const osse_request_t *r, osse_read_t how)
{
    json_t *out = json_object();
    const char *k;
    json_t *v;
    char path[160];
    json_object_foreach(osse__form(r), k, v)
    {
        if (json_is_object(v) && !osse__pii_sealed(v) && how != OSSE_READ_STORED) {
            /* A pii file field: its members sealed one by one. */
            json_t *o = json_object();
            const char *m;
            json_t *x;
            json_object_foreach(v, m, x)
            {
                snprintf(path, sizeof path, "form.%s.%s", k, m);
                json_object_set_new(o, m, form_value(e, r, path, x, how));
            }
            json_object_set_new(out, k, o);
        } else {
            snprintf(path, sizeof path, "form.%s", k);
            json_object_set_new(out, k, form_value(e, r, path, v, how));
        }
    }
    return out;
}

void osse__pii_seal_inputs(const osse_engine_t *e, const osse_request_t *r, json_t *record)
{
    json_t *inputs = json_object_get(record, "inputs");
    const char *k;
    json_t *v;
    char name[160];
    json_object_foreach(inputs, k, v)
    {
        /* Every linkage answer is personal, so all of data.*; of the form,
         * "form.<field>" or deeper ("form.<field>.x", "form.<field>[0]") of
         * a pii field. */
        if (strncmp(k, "data.", 5) == 0 || strncmp(k, "data[", 5) == 0) {
            json_object_set_new(inputs, k, osse__pii_seal(e, r->id, k, v));
            continue;
        }
        if (strncmp(k, "form.", 5) != 0)
            continue;
        size_t n = strcspn(k + 5, ".[");
        if (n >= sizeof name)
            continue;
        memcpy(name, k + 5, n);
        name[n] = '\0';
        if (osse__pii_field(r->wf, name))
            json_object_set_new(inputs, k, osse__pii_seal(e, r->id, k, v));
    }
}

/* A deep copy of v with every sealed value replaced by the string word. */
static json_t *replace_sealed(const json_t *v, const char *word)
{
    if (osse__pii_sealed(v))
        return json_string(word);
    if (json_is_object(v)) {
        json_t *o = json_object();
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) json_object_set_new(o, k, replace_sealed(x, word));
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) json_array_append_new(a, replace_sealed(x, word));
        return a;
    }
    return json_incref((json_t *)v);
}

json_t *osse__pii_withhold(const json_t *v)
{
    return replace_sealed(v, OSSE_PII_WITHHELD);
}

json_t *osse__pii_erased(const json_t *v)
{
    return replace_sealed(v, OSSE_PII_ERASED);
}

bool osse__pii_any_sealed(const json_t *v)
{
    if (osse__pii_sealed(v))
        return true;
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v))
        json_object_foreach((json_t *)v, k, x) if (osse__pii_any_sealed(x)) return true;
    if (json_is_array(v))
        json_array_foreach(v, i, x) if (osse__pii_any_sealed(x)) return true;
    return false;
}

json_t *osse__pii_seal_text(const osse_engine_t *e, const char *rid, const char *path,
                            const char *text)
{
    if (!text)
        return NULL;
    json_t *v = json_string(text);
    if (!*text)
        return v; /* no words: nothing personal, and "no reason" stays visible */
    json_t *sealed = osse__pii_seal(e, rid, path, v);
    json_decref(v);
    return sealed;
}

char *osse__pii_stored_text(const json_t *v)
{
    if (json_is_string(v))
        return osse_strdup(json_string_value(v));
    if (!osse__pii_sealed(v))
        return NULL;
    const char *b64 = json_string_value(json_object_get(v, "enc"));
    size_t n = strlen(b64);
    char *out = osse_malloc(n + 2);
    out[0] = OSSE_PII_TEXT_MARK;
    memcpy(out + 1, b64, n + 1);
    return out;
}

json_t *osse__pii_text_json(const char *text)
{
    if (!text)
        return json_null();
    if (text[0] == OSSE_PII_TEXT_MARK)
        return json_pack("{s:s}", "enc", text + 1);
    return json_string(text);
}

/* --- the reserve of durable keys --- */

/* After a failed refill none is tried for 1 s, then 2, 4 ... up to 64 s:
 * a failing disk is told in the log, not hammered. */
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 64000
/* The random bytes behind a request id, and the 4 that pick its partition. */
#define RID_RAW (OSSE_RID_RANDOM + 4)
/* Draws of a tracking code for one reserved id before the refill drops the
 * id: with 2^50 codes the first is free but for a chance of (requests /
 * 2^50); only a test's shrunk code space runs out. */
#define CODE_TRIES 16
/* Under --test-clock, the number of a code's characters drawn at random
 * (1 to 10; the others are 'A'): 1 leaves 32 codes, so that a test sees
 * codes run out and collide. */
#define CODE_HOOK "OSSE_TEST_CODE_RANDOM_CHARS"

/* Tracking codes: 10 characters from an alphabet without look-alikes; 32
 * letters, so that a byte maps to one without bias (32 divides 256). */
static const char CODE_ALPHA[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

static void code_from(const unsigned char raw[OSSE__CODE_LEN], unsigned nrandom, char *code)
{
    for (unsigned k = 0; k < OSSE__CODE_LEN; k++)
        code[k] = k < nrandom ? CODE_ALPHA[raw[k] % (sizeof CODE_ALPHA - 1)] : 'A';
    code[OSSE__CODE_LEN] = '\0';
}

static unsigned code_random(const osse_engine_t *e)
{
    return e->reserve.code_random ? e->reserve.code_random : OSSE__CODE_LEN;
}

typedef struct osse_refill_s {
    uv_work_t work;
    osse_engine_t *e; /* refill_done only (loop thread) */
    osse_keystore_t *ks;
    osse_log_t *log; /* the nam/ entries read, the keys' pending records written (storage/log.h) */
    size_t n;        /* asked; after the work, those that got a code */
    char (*ids)[OSSE__RID_SIZE];
    char (*codes)[OSSE__CODE_SIZE];
    unsigned part_first, part_last; /* the partitions the ids are minted in */
    unsigned code_random;
    size_t nocode; /* ids dropped: no free code found */
    uint8_t *keys; /* n keys, sodium_malloc'd */
    bool fail;     /* tests (fail_next) */
    int rc;
    osse_err_t err;
} refill_t;

/* A refill's pending record (storage/log.h: its keys were synced after
 * it), shared by its entries in the reserve: deleted by the batch of the
 * submission that takes the last of them. One of its ids dropped (a clash
 * at the join or the take, no room at the join) keeps it: that id's key
 * has no events, and the next start removes it as it does the keys of
 * entries a stop or a crash left. */
typedef struct osse_kpd_s {
    char name[OSSE__RID_SIZE]; /* the record's: the refill's first id */
    size_t left;               /* its entries at hand */
    bool dropped;
} kpd_t;

/* One entry of rec's is no longer at hand (taken or dropped); rec freed
 * with its last. Whether the record may go (taken is its last, and none
 * was dropped): name copied to done. */
static void kpd_leave(kpd_t *rec, bool taken, char *done)
{
    rec->dropped = rec->dropped || !taken;
    if (--rec->left)
        return;
    if (!rec->dropped && done)
        memcpy(done, rec->name, OSSE__RID_SIZE);
    free(rec);
}

static void refill_free(refill_t *j)
{
    sodium_free(j->keys); /* wipes */
    free(j->ids);
    free(j->codes);
    free(j);
}

/* A code drawn in a round of refill_codes, and for which id. */
typedef struct {
    char code[OSSE__CODE_SIZE];
    size_t i;
    bool found;
} draw_t;

static int draw_cmp(const void *a, const void *b)
{
    return memcmp(a, b, OSSE__CODE_SIZE);
}

/* Pool: a tracking code for each of the n ids, on no request on disk (the
 * nam/ 'c' entries of that code: a request whose submission's batch was
 * durable before the refill was queued has one) and no other id of the
 * refill; the ids kept are moved to the front and n becomes their number.
 * An id for which CODE_TRIES draws find none is dropped (nocode). The
 * draws go in rounds, each checked against the disk with one read for all
 * (osse_log_kv_any: an iterator per code was most of a refill's cost),
 * and against each other sorted (a map of 1,024 codes cost half as much
 * as the read); nearly every code is free at the first. Returns 0 or the
 * read's error. */
static int refill_codes(refill_t *j)
{
    size_t n = j->n, left = n, nacc = 0, cap = n ? n : 1;
    bool *ok = osse_calloc(cap, sizeof *ok), *found = osse_malloc(cap * sizeof *found);
    draw_t *d = osse_malloc(cap * sizeof *d);
    char(*acc)[OSSE__CODE_SIZE] = osse_malloc(cap * sizeof *acc); /* kept, sorted */
    osse_slice_t *pre = osse_malloc(cap * sizeof *pre);
    uint8_t(*keys)[OSSE__IX_KEY_MAX] = osse_malloc(cap * sizeof *keys);
    int rc = 0;
    for (int t = 0; t < CODE_TRIES && left && !rc; t++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (ok[i])
                continue;
            unsigned char raw[OSSE__CODE_LEN];
            randombytes_buf(raw, sizeof raw);
            memset(d[m].code, 0, OSSE__CODE_SIZE);
            code_from(raw, j->code_random, d[m].code);
            d[m].i = i;
            /* The prefix of the code's entries: an empty id, not NULL
             * (util.c would memcpy from NULL, which UBSan refuses). */
            size_t pl = osse__ix_name_key(OSSE_NAME_CODE, d[m].code, "", keys[m]);
            pre[m] = (osse_slice_t){(const char *)keys[m], pl};
            m++;
        }
        if ((rc = osse_log_kv_any(j->log, pre, m, found, &j->err)))
            break;
        for (size_t k = 0; k < m; k++)
            d[k].found = found[k];
        qsort(d, m, sizeof *d, draw_cmp);
        size_t nacc0 = nacc;
        for (size_t k = 0; k < m; k++) {
            /* On disk, drawn twice in this round, or kept in one before. */
            if (d[k].found || (k && memcmp(d[k].code, d[k - 1].code, OSSE__CODE_SIZE) == 0) ||
                (nacc0 && bsearch(d[k].code, acc, nacc0, sizeof *acc, draw_cmp)))
                continue;
            ok[d[k].i] = true;
            memcpy(j->codes[d[k].i], d[k].code, OSSE__CODE_SIZE);
            memcpy(acc[nacc++], d[k].code, OSSE__CODE_SIZE);
            left--;
        }
        qsort(acc, nacc, sizeof *acc, draw_cmp);
    }
    size_t kept = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!ok[i])
            continue;
        if (kept != i) {
            memcpy(j->ids[kept], j->ids[i], OSSE__RID_SIZE);
            memcpy(j->codes[kept], j->codes[i], OSSE__CODE_SIZE);
        }
        kept++;
    }
    j->nocode = rc ? 0 : n - kept;
    free(ok);
    free(found);
    free(d);
    free(acc);
    free(pre);
    free(keys);
    j->n = rc ? 0 : kept;
    return rc;
}

/* Pool: n fresh ids, each in a partition of the node's (osse_request_id_mint,
 * with libsodium's randombytes_buf: osse__random_bytes' pool is the loop's),
 * a tracking code for each (refill_codes), the keys of those that got one,
 * and one append to the key store. */
static void refill_work(uv_work_t *w)
{
    refill_t *j = w->data;
    unsigned char *raw = osse_malloc(j->n * RID_RAW);
    randombytes_buf(raw, j->n * RID_RAW);
    for (size_t i = 0; i < j->n; i++) {
        const unsigned char *r = raw + i * RID_RAW;
        uint32_t pick;
        memcpy(&pick, r + OSSE_RID_RANDOM, sizeof pick);
        osse_request_id_mint(j->ids[i], osse_partition_pick(j->part_first, j->part_last, pick), r);
    }
    free(raw);
    /* The codes before the keys: an id that gets none has no key made. */
    if ((j->rc = refill_codes(j)) || !j->n)
        return;
    uint8_t(*wrapped)[OSSE_WRAPPED_BYTES] = osse_malloc(j->n * sizeof *wrapped);
    osse_keyrec_t *recs = osse_malloc(j->n * sizeof *recs);
    const char **ids = osse_malloc(j->n * sizeof *ids);
    for (size_t i = 0; i < j->n; i++) {
        ids[i] = j->ids[i];
        recs[i] = (osse_keyrec_t){j->ids[i], wrapped[i]};
    }
    j->rc = osse_keystore_new_keys(j->ks, ids, j->n, j->keys, wrapped);
    /* Their pending records before the keys: a start removes what no
     * event took (storage/log.h). */
    if (!j->rc && !j->fail)
        j->rc = osse_log_keys_pending(j->log, ids, j->n, &j->err);
    free(ids);
    if (!j->rc)
        j->rc = j->fail ? osse_err_set(&j->err, OSSE_EIO, "a refill made to fail (tests)")
                        : osse_log_keys_append(j->log, j->ks, recs, j->n, &j->err);
    free(recs);
    free(wrapped);
}

/* Whether a request in memory, an entry of the reserve or a submission
 * since the last refill began has code. */
static bool code_taken(const osse_engine_t *e, const char *code)
{
    const osse_key_reserve_t *kr = &e->reserve;
    return osse_map_get(&e->codes, code) || osse_map_get(&kr->held, code) ||
           osse_map_get(&kr->recent_codes, code);
}

/* Forgets the codes of recent submissions whose batches are durable, with
 * no refill on the pool: the next refill begins after them, so its read
 * sees their nam/ entries. One on the pool began before some of them. */
static void recent_prune(osse_engine_t *e)
{
    osse_key_reserve_t *kr = &e->reserve;
    if (kr->refill)
        return;
    while (kr->recent_head < kr->nrecent && kr->recent[kr->recent_head].commit <= e->commits_done)
        osse_map_del(&kr->recent_codes, kr->recent[kr->recent_head++].code);
    if (kr->recent_head == kr->nrecent) {
        kr->recent_head = kr->nrecent = 0;
    } else if (kr->recent_head > kr->nrecent / 2) {
        kr->nrecent -= kr->recent_head;
        memmove(kr->recent, kr->recent + kr->recent_head, kr->nrecent * sizeof *kr->recent);
        kr->recent_head = 0;
    }
}

/* A submission in the batch being filled took code. A request may leave
 * memory (cache.c) once that batch is durable, while a refill that read
 * the disk before it is still on the pool: the refill's codes are checked
 * against these at its join. Nothing to keep when no refill will come. */
static void recent_add(osse_engine_t *e, const char *code)
{
    osse_key_reserve_t *kr = &e->reserve;
    if (!kr->on)
        return;
    recent_prune(e);
    OSSE_VEC_RESERVE(kr->recent, kr->crecent, kr->nrecent + 1);
    osse_recent_code_t *c = &kr->recent[kr->nrecent++];
    memcpy(c->code, code, OSSE__CODE_SIZE);
    c->commit = e->commits_sent + 1; /* the batch being filled (commit.c counts it sent after) */
    osse_map_put(&kr->recent_codes, code, (void *)1);
}

static void refill_maybe(osse_engine_t *e);

/* After a failed refill, or one that found too few codes: none before
 * retry_at. */
static void refill_back_off(osse_engine_t *e)
{
    osse_key_reserve_t *kr = &e->reserve;
    kr->backoff = kr->backoff ? kr->backoff * 2 : RETRY_FIRST_MS;
    if (kr->backoff > RETRY_MAX_MS)
        kr->backoff = RETRY_MAX_MS;
    kr->retry_at = uv_now(e->loop) + kr->backoff;
}

/* Loop: the refill's keys are durable; they join the reserve, but for one
 * whose code a request in memory, another entry or a submission since the
 * refill began has (its key, without events, goes at the next start). A
 * failed refill is told and tried again later; one that comes back after
 * the stop, or was cancelled, is dropped. */
static void refill_done(uv_work_t *w, int status)
{
    refill_t *j = w->data;
    osse_engine_t *e = j->e;
    osse_key_reserve_t *kr = &e->reserve;
    kr->refill = NULL;
    if (status == 0 && j->rc) {
        kr->failures++;
        refill_back_off(e);
        osse_logf(OSSE_LEVEL_WARN, "request keys not reserved", "keys=%zu error=%s retry_ms=%llu",
                  j->n, j->err.msg, (unsigned long long)kr->backoff);
    } else if (status == 0 && kr->on) {
        /* Takes only lowered n since the refill was sized to fill up. */
        kpd_t *rec = osse_calloc(1, sizeof *rec);
        if (j->n)
            memcpy(rec->name, j->ids[0], OSSE__RID_SIZE);
        size_t i = 0;
        for (; i < j->n && kr->n < kr->size; i++) {
            if (code_taken(e, j->codes[i])) {
                kr->codes_clashed++;
                rec->dropped = true;
                continue;
            }
            kr->recs[kr->n] = rec;
            rec->left++;
            memcpy(kr->ids[kr->n], j->ids[i], OSSE__RID_SIZE);
            memcpy(kr->codes[kr->n], j->codes[i], OSSE__CODE_SIZE);
            memcpy(kr->keys + kr->n * OSSE_KEY_BYTES, j->keys + i * OSSE_KEY_BYTES, OSSE_KEY_BYTES);
            osse_map_put(&kr->held, kr->codes[kr->n], (void *)1);
            kr->n++;
        }
        if (!rec->left) /* none joined: the record stays for the next start */
            free(rec);
        else if (i < j->n)
            rec->dropped = true;
        if (j->nocode) {
            /* Codes ran out (a test's shrunk space): fewer entries, and
             * the next try waits, as after a failure. */
            refill_back_off(e);
            osse_logf(OSSE_LEVEL_WARN, "tracking codes not found", "ids=%zu retry_ms=%llu",
                      j->nocode, (unsigned long long)kr->backoff);
        } else {
            kr->backoff = 0;
        }
    }
    refill_free(j);
    refill_maybe(e);
}

/* A refill up to the size, or NULL when out of locked memory (the next
 * take tries again). */
static refill_t *refill_new(osse_engine_t *e)
{
    osse_key_reserve_t *kr = &e->reserve;
    refill_t *j = osse_calloc(1, sizeof *j);
    j->n = kr->size - kr->n;
    j->keys = sodium_malloc(j->n * OSSE_KEY_BYTES);
    if (!j->keys) {
        free(j);
        return NULL;
    }
    j->ids = osse_malloc(j->n * sizeof *j->ids);
    j->codes = osse_malloc(j->n * sizeof *j->codes);
    j->part_first = e->part_first;
    j->part_last = e->part_last;
    j->code_random = code_random(e);
    j->e = e;
    j->ks = e->keystore;
    j->log = e->log;
    j->fail = kr->fail_next;
    kr->fail_next = false;
    j->work.data = j;
    return j;
}

/* Queues a refill when the reserve is at or below half its size, none is
 * on the pool, no failure asks to wait, and the disk is not below its
 * free-space reserve (no submission is taken then anyway). */
static void refill_maybe(osse_engine_t *e)
{
    osse_key_reserve_t *kr = &e->reserve;
    if (!kr->on || kr->refill || kr->n > kr->size / 2 || uv_now(e->loop) < kr->retry_at ||
        osse_log_space_low(e->log))
        return;
    /* What is durable now the refill's read sees on disk. */
    recent_prune(e);
    refill_t *j = refill_new(e);
    if (j && uv_queue_work(e->loop, &j->work, refill_work, refill_done) == 0)
        kr->refill = j;
    else if (j)
        refill_free(j);
}

void osse__pii_reserve_start(osse_engine_t *e, size_t size)
{
    osse_key_reserve_t *kr = &e->reserve;
    OSSE_PRE(e->keystore && e->loop && !kr->keys);
    const char *hook = e->test_clock ? getenv(CODE_HOOK) : NULL;
    long k = hook ? strtol(hook, NULL, 10) : 0;
    kr->code_random = k >= 1 && k <= OSSE__CODE_LEN ? (unsigned)k : OSSE__CODE_LEN;
    if (!size)
        return;
    kr->keys = sodium_malloc(size * OSSE_KEY_BYTES);
    if (!kr->keys) /* no reserve: every submission files its key as before */
        return;
    kr->ids = osse_malloc(size * sizeof *kr->ids);
    kr->codes = osse_malloc(size * sizeof *kr->codes);
    kr->recs = osse_malloc(size * sizeof *kr->recs);
    kr->size = size;
    kr->on = true;
    /* The first fill is made here, before the loop runs (the start blocks
     * on the disk anyway, as keys_load's removals do): the first
     * submissions take from it, and no refill runs on the pool until half
     * of it is taken. Every request there is is on disk now, and its
     * nam/ entry with it. */
    refill_t *j = refill_new(e);
    if (j) {
        refill_work(&j->work);
        refill_done(&j->work, 0);
    }
}

bool osse__pii_key_reserved(osse_engine_t *e, char *id, char *code, char *done)
{
    osse_key_reserve_t *kr = &e->reserve;
    bool got = false;
    done[0] = '\0';
    while (kr->n && !got) {
        const char *rid = kr->ids[kr->n - 1], *rcode = kr->codes[kr->n - 1];
        uint8_t *src = kr->keys + (kr->n - 1) * OSSE_KEY_BYTES, *key = NULL;
        /* Checked again: the join checked the code against every request in
         * memory and the reserve's other codes, and every submission since
         * took another; a clash here is one the join could not see. */
        bool clash = osse__request(e, rid) || osse_map_get(&e->codes, rcode) ||
                     osse_map_get(&kr->recent_codes, rcode);
        if (!clash && !(key = osse__pii_key_slot(e)))
            break; /* out of memory: the caller's own key_new says so */
        if (key) {
            memcpy(key, src, OSSE_KEY_BYTES);
            osse_map_put(&e->keys, rid, key);
            memcpy(id, rid, OSSE__RID_SIZE);
            memcpy(code, rcode, OSSE__CODE_SIZE);
            got = true;
        } else {
            kr->codes_clashed++;
        }
        osse_map_del(&kr->held, rcode);
        sodium_memzero(src, OSSE_KEY_BYTES);
        kpd_leave(kr->recs[kr->n - 1], key != NULL, done);
        kr->n--;
    }
    if (got) {
        kr->taken++;
        recent_add(e, code);
    } else {
        kr->misses++;
    }
    refill_maybe(e);
    return got;
}

void osse__pii_code_mint(osse_engine_t *e, char *code)
{
    osse_key_reserve_t *kr = &e->reserve;
    /* Bounded for a test's shrunk code space, where all may be taken; with
     * 2^50 codes the first draw is free but for a chance of (requests in
     * memory / 2^50). */
    for (int t = 0; t < 1024; t++) {
        unsigned char raw[OSSE__CODE_LEN];
        osse__random_bytes(raw, sizeof raw);
        code_from(raw, code_random(e), code);
        if (!code_taken(e, code))
            break;
    }
    kr->codes_unchecked++;
    recent_add(e, code);
}

void osse__pii_reserve_stop(osse_engine_t *e)
{
    osse_key_reserve_t *kr = &e->reserve;
    /* Never started, or stopped already: uv_cancel once only. */
    if (!kr->on)
        return;
    kr->on = false;
    /* A refill not yet begun comes back UV_ECANCELED; one begun finishes
     * its append (the loop runs until it is back, as for every pool job). */
    if (kr->refill)
        uv_cancel((uv_req_t *)&kr->refill->work);
}

int osse__pii_metrics(const osse_engine_t *e, osse_buf_t *out)
{
    const osse_key_reserve_t *kr = &e->reserve;
    return osse_buf_printf(
        out,
        "# HELP osse_key_reserve_keys Request keys made durable ahead, not yet taken.\n"
        "# TYPE osse_key_reserve_keys gauge\nosse_key_reserve_keys %zu\n"
        "# HELP osse_key_reserve_size What a refill of the reserve fills up to.\n"
        "# TYPE osse_key_reserve_size gauge\nosse_key_reserve_size %zu\n"
        "# HELP osse_key_reserve_taken_total Submissions whose key came from the reserve.\n"
        "# TYPE osse_key_reserve_taken_total counter\nosse_key_reserve_taken_total %llu\n"
        "# HELP osse_key_reserve_misses_total Submissions whose key went with their batch "
        "(the reserve was empty).\n"
        "# TYPE osse_key_reserve_misses_total counter\nosse_key_reserve_misses_total %llu\n"
        "# HELP osse_key_reserve_failures_total Refills of the reserve that failed.\n"
        "# TYPE osse_key_reserve_failures_total counter\nosse_key_reserve_failures_total %llu\n"
        "# HELP osse_tracking_codes_unchecked_total Tracking codes minted on the loop, checked "
        "against the requests in memory only, not those on disk (the reserve was empty or "
        "off).\n"
        "# TYPE osse_tracking_codes_unchecked_total counter\n"
        "osse_tracking_codes_unchecked_total %llu\n"
        "# HELP osse_tracking_codes_clashed_total Reserved ids dropped at the loop's check: a "
        "request in memory, another entry or a recent submission had the code (or the id).\n"
        "# TYPE osse_tracking_codes_clashed_total counter\n"
        "osse_tracking_codes_clashed_total %llu\n",
        kr->n, kr->size, (unsigned long long)kr->taken, (unsigned long long)kr->misses,
        (unsigned long long)kr->failures, (unsigned long long)kr->codes_unchecked,
        (unsigned long long)kr->codes_clashed);
}

void osse__pii_keys_free(osse_engine_t *e)
{
    OSSE_PRE(!e->reserve.refill);
    sodium_free(e->reserve.keys); /* wipes; NULL-safe */
    /* The records of the entries left stay for the next start. */
    for (size_t i = 0; i < e->reserve.n; i++)
        kpd_leave(e->reserve.recs[i], false, NULL);
    free(e->reserve.recs);
    free(e->reserve.ids);
    free(e->reserve.codes);
    free(e->reserve.recent);
    osse_map_close(&e->reserve.held);
    osse_map_close(&e->reserve.recent_codes);
    memset(&e->reserve, 0, sizeof e->reserve);
    for (size_t i = 0; i < e->nkey_chunks; i++)
        sodium_free(e->key_chunks[i]); /* wipes */
    free(e->key_chunks);
    e->key_chunks = NULL;
    free(e->key_free);
    e->key_free = NULL;
    e->nkey_free = e->ckey_free = 0;
    e->nkey_chunks = e->key_used = 0;
    osse_map_close(&e->keys);
}
