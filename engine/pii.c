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
 * Tracking codes are not the reserve's: request.c makes a submission's
 * from its first seq (engine/trackcode.h), unique by construction. */
#include "engine/internal.h"

#include <limits.h>
#include <openssl/evp.h>
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
    /* libcrypto's base64, not libsodium's: the same text (standard
     * alphabet, padded), but sodium_bin2base64 runs in constant time, for
     * secrets, and a ciphertext is none: it was 1.6 % of the loop thread's
     * samples a submission (bench/README.md, "the seventeenth session"). */
    OSSE_PRE(clen <= INT_MAX / 2); /* a value of a body, far below */
    int bl = EVP_EncodeBlock((unsigned char *)b64, c, (int)clen);
    OSSE_PRE(bl >= 0 && (size_t)bl == blen - 1);
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

typedef struct osse_refill_s {
    uv_work_t work;
    osse_engine_t *e; /* refill_done only (loop thread) */
    osse_keystore_t *ks;
    osse_log_t *log; /* the keys' pending records and locations written (storage/log.h) */
    size_t n;
    char (*ids)[OSSE__RID_SIZE];
    unsigned part_first, part_last; /* the partitions the ids are minted in */
    uint8_t *keys;                  /* n keys, sodium_malloc'd */
    bool fail;                      /* tests (fail_next) */
    int rc;
    osse_err_t err;
} refill_t;

/* A refill's pending record (storage/log.h: its keys were synced after
 * it), shared by its entries in the reserve: deleted by the batch of the
 * submission that takes the last of them. One of its ids dropped (on a
 * request in memory at the take, no room at the join) keeps it: that id's key
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
    free(j);
}

/* Pool: n fresh ids, each in a partition of the node's (osse_request_id_mint,
 * with libsodium's randombytes_buf: osse__random_bytes' pool is the loop's),
 * their keys, and one append to the key store. */
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

static void refill_maybe(osse_engine_t *e);

/* After a failed refill: none before retry_at. */
static void refill_back_off(osse_engine_t *e)
{
    osse_key_reserve_t *kr = &e->reserve;
    kr->backoff = kr->backoff ? kr->backoff * 2 : RETRY_FIRST_MS;
    if (kr->backoff > RETRY_MAX_MS)
        kr->backoff = RETRY_MAX_MS;
    kr->retry_at = uv_now(e->loop) + kr->backoff;
}

/* Loop: the refill's keys are durable; they join the reserve. A failed
 * refill is told and tried again later; one that comes back after
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
            kr->recs[kr->n] = rec;
            rec->left++;
            memcpy(kr->ids[kr->n], j->ids[i], OSSE__RID_SIZE);
            memcpy(kr->keys + kr->n * OSSE_KEY_BYTES, j->keys + i * OSSE_KEY_BYTES, OSSE_KEY_BYTES);
            kr->n++;
        }
        if (!rec->left) /* none joined: the record stays for the next start */
            free(rec);
        else if (i < j->n)
            rec->dropped = true;
        kr->backoff = 0;
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
    j->part_first = e->part_first;
    j->part_last = e->part_last;
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
    if (!size)
        return;
    kr->keys = sodium_malloc(size * OSSE_KEY_BYTES);
    if (!kr->keys) /* no reserve: every submission files its key as before */
        return;
    kr->ids = osse_malloc(size * sizeof *kr->ids);
    kr->recs = osse_malloc(size * sizeof *kr->recs);
    kr->size = size;
    kr->on = true;
    /* The first fill is made here, before the loop runs (the start blocks
     * on the disk anyway, as keys_load's removals do): the first
     * submissions take from it, and no refill runs on the pool until half
     * of it is taken. */
    refill_t *j = refill_new(e);
    if (j) {
        refill_work(&j->work);
        refill_done(&j->work, 0);
    }
}

bool osse__pii_key_reserved(osse_engine_t *e, char *id, char *done)
{
    osse_key_reserve_t *kr = &e->reserve;
    bool got = false;
    done[0] = '\0';
    while (kr->n && !got) {
        const char *rid = kr->ids[kr->n - 1];
        uint8_t *src = kr->keys + (kr->n - 1) * OSSE_KEY_BYTES, *key = NULL;
        /* 70 random bits: an id a request in memory has is skipped, as the
         * loop's own mint does (request.c). */
        bool clash = osse__request(e, rid) != NULL;
        if (!clash && !(key = osse__pii_key_slot(e)))
            break; /* out of memory: the caller's own key_new says so */
        if (key) {
            memcpy(key, src, OSSE_KEY_BYTES);
            osse_map_put(&e->keys, rid, key);
            memcpy(id, rid, OSSE__RID_SIZE);
            got = true;
        }
        sodium_memzero(src, OSSE_KEY_BYTES);
        kpd_leave(kr->recs[kr->n - 1], key != NULL, done);
        kr->n--;
    }
    if (got) {
        kr->taken++;
    } else {
        kr->misses++;
    }
    refill_maybe(e);
    return got;
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
        "# TYPE osse_key_reserve_failures_total counter\nosse_key_reserve_failures_total %llu\n",
        kr->n, kr->size, (unsigned long long)kr->taken, (unsigned long long)kr->misses,
        (unsigned long long)kr->failures);
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
