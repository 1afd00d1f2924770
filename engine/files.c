/* files.c: uploaded files (SPEC §4 POST /v1/files, GET /v1/files/{id}, the
 * `file` field type of §2).
 *
 * An upload is not an event (SPEC §5 lists none): its bytes go to
 * storage/files.h on the libuv pool (written whole, fsynced, renamed,
 * folder fsynced), and only then is its metadata recorded as the side
 * record file/<id> in the current batch; the 201 is held until that batch
 * is durable. So a record never names bytes that are not on disk, and bytes
 * no record names (a crash between the two) are removed at start.
 *
 * A submission (request.c) resolves each `file` field's id here: it must be
 * known, the submitter's own upload, within the field's max_size and
 * content_types, and held by no other request; the form then records its
 * {"id","sha256","size","content_type","name"}, and the side record is
 * rewritten with taken_by in the same batch as the event. Files no request
 * took are forgotten 24 hours (engine clock) after their upload: at once for
 * every reader, and swept (record deleted and key dropped, then once that
 * is durable the key removed from the key store and the bytes unlinked on
 * the pool) at start, every few minutes, and after each move of the test
 * clock. A pii file field's form value has its name sealed under the
 * request's key (pii.c); the rest stays plain.
 *
 * Encryption (SPEC §8): every file has its own random 256-bit key, filed
 * in the key store under the file's id (wrapped like a request's key) and
 * kept in e->keys. On disk the bytes are a libsodium secretstream
 * (XChaCha20-Poly1305): its 24-byte header, then one sealed chunk per
 * CHUNK bytes of plaintext (the last tagged FINAL), each with the file id
 * as associated data, so a file's ciphertext does not pass for another's
 * and a cut, reordered or extended file does not open. Chunks let the pool
 * seal from the request's body into the file, and open from the file into
 * the answer, without a second whole copy of 20 MiB (docs/design.md,
 * "Files"). The record's name is sealed under the same key (path
 * "file.name"); id, sha256 (of the plaintext), size and type stay plain.
 * The key is durable (fdatasync on the pool) before the record is written,
 * so before the 201. A record whose key is gone (its request's personal
 * data was erased) answers 410; a key whose record is gone is removed at
 * start (engine.c); the sweep removes a swept file's key with its bytes.
 *
 * Files on disk (issue 13, docs/design.md "Files on disk"): memory holds the
 * files of open work only: those no request took yet and those taken by a
 * request in memory. fop/<id> marks the ones a start keeps (untaken, or
 * taken by a request not ended), so that a start reads those, not every
 * record. A file an ended request took leaves memory with that request
 * (at the next sweep) and comes back with it when a call names the file
 * (cache.c, OSSE_NAME_FILE). An upload is pending (storage/log.h) from
 * before its key until its record's batch: a crash in between leaves an id
 * a start finds there and removes with its key and bytes, so no start
 * reads the folder of files.
 *
 * Test hook: with --test-clock only, OSSE_TEST_CRASH_BEFORE_FILE_RECORD=1
 * makes the pool _exit(137) once an upload's bytes are durable, before its
 * record is written, and OSSE_TEST_FILES_UNINDEXED=1 makes a start read
 * every record as the first start of this version does (files/2 ignored)
 * (tests/integration/test_files.py).
 *
 * Threading: everything runs on the loop thread except the functions named
 * "pool" below, which touch only their own job and the key store (its own
 * mutex). */
#include "common/alloc.h"
#include "common/log.h"
#include "common/utf8.h"
#include "engine/internal.h"
#include "storage/files.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_TTL_MS (24 * 3600 * 1000LL)
#define SWEEP_EVERY_MS (5 * 60 * 1000)
#define NAME_MAX_BYTES 255
#define CTYPE_MAX 127
#define UPLOAD_MAX (20u << 20)
/* Plaintext bytes per sealed chunk of a stored file. */
#define CHUNK (64u << 10)
#define SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
/* The path the record's name is sealed under (with the file id). */
#define NAME_PATH "file.name"
#define CRASH_HOOK "OSSE_TEST_CRASH_BEFORE_FILE_RECORD"
#define UNINDEXED_HOOK "OSSE_TEST_FILES_UNINDEXED"

typedef struct osse_file_s {
    char id[OSSE_FSTORE_ID_MAX + 1];
    char sha256[65];
    uint64_t size;
    char *ctype;
    json_t *name; /* sealed under the file's key ({"enc"}); NULL: none given */
    char *uploader;
    int64_t at;
    char *taken_by; /* request id, or NULL */
    char *field;    /* the form field that holds it */
    bool plain;     /* its record is from before its bytes were sealed: removed at start */
} osse_file_t;

struct osse_files_s {
    char *root;
    osse_map_t map; /* id -> osse_file_t */
    uv_timer_t sweep;
    bool timer_on;
    /* The start: the first of this version (files/2 not there yet: the
     * kept files' fop/ entries and the marker to write), and the fop/
     * entries it found without a record (to delete). */
    bool indexing;
    uint64_t load_ns; /* the start's read of the records */
    char **stale;
    size_t nstale, cstale;
};

struct osse_file_up_s {
    char id[OSSE_FSTORE_ID_MAX + 1];
    char *root, *ctype, *name, *uploader;
    osse_keystore_t *ks;
    osse_log_t *log; /* the key's location written (storage/log.h) */
    uint8_t *key;    /* OSSE_KEY_BYTES, sodium_malloc'd: made on the pool */
    uint8_t wrapped[OSSE_WRAPPED_BYTES];
    osse_slice_t bytes; /* borrowed from the HTTP request */
    char sha256[65];
    bool hashed; /* sha256 was given (osse_file_upload_hashed) */
    bool crash;  /* the test hook (above) */
    int rc;
    osse_err_t err;
};

struct osse_file_get_s {
    char id[OSSE_FSTORE_ID_MAX + 1];
    char *root, *ctype;
    uint8_t *key; /* a copy (sodium_malloc'd): the loop may drop e->keys' */
    char sha256[65];
    uint64_t size;
    void *bytes;
    size_t len;
    int rc;
    osse_err_t err;
};

/* --- the bytes sealed and opened (SPEC §8): pool --- */

/* The stored length of n plaintext bytes (n > 0). */
static uint64_t sealed_size(uint64_t n)
{
    return SS_HEADER + n + SS_ABYTES * ((n + CHUNK - 1) / CHUNK);
}

/* u's bytes sealed chunk by chunk into the store as u->id, hashing the
 * plaintext on the way unless it was hashed already. */
static int bytes_in(osse_file_up_t *u)
{
    osse_fstore_w_t *w;
    int rc = osse_fstore_begin(u->root, u->id, &w, &u->err);
    if (rc)
        return rc;
    crypto_secretstream_xchacha20poly1305_state st;
    crypto_hash_sha256_state hs;
    unsigned char hdr[SS_HEADER], *out = osse_malloc(CHUNK + SS_ABYTES);
    const unsigned char *p = (const unsigned char *)u->bytes.ptr,
                        *ad = (const unsigned char *)u->id;
    size_t left = u->bytes.len, adlen = strlen(u->id);
    crypto_hash_sha256_init(&hs);
    crypto_secretstream_xchacha20poly1305_init_push(&st, hdr, u->key);
    rc = osse_fstore_put(w, hdr, sizeof hdr, &u->err);
    while (!rc && left) {
        size_t n = left < CHUNK ? left : CHUNK;
        left -= n;
        if (!u->hashed)
            crypto_hash_sha256_update(&hs, p, n);
        crypto_secretstream_xchacha20poly1305_push(
            &st, out, NULL, p, n, ad, adlen,
            left ? crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
                 : crypto_secretstream_xchacha20poly1305_TAG_FINAL);
        p += n;
        rc = osse_fstore_put(w, out, n + SS_ABYTES, &u->err);
    }
    sodium_memzero(&st, sizeof st);
    free(out);
    if (rc) {
        osse_fstore_abort(w);
        return rc;
    }
    if (!u->hashed) {
        unsigned char h[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_final(&hs, h);
        sodium_bin2hex(u->sha256, sizeof u->sha256, h, sizeof h);
    }
    return osse_fstore_commit(w, &u->err);
}

/* g's stored file opened chunk by chunk into g->bytes (g->size bytes),
 * checked against its sha256: never bytes other than the ones
 * acknowledged. */
static int bytes_out(osse_file_get_t *g)
{
    osse_fstore_r_t *r;
    size_t stored, got = 0;
    int rc = osse_fstore_open_read(g->root, g->id, (size_t)sealed_size(UPLOAD_MAX), &r, &stored,
                                   &g->err);
    if (rc)
        return rc;
    if (g->size == 0 || stored != sealed_size(g->size)) {
        osse_fstore_close_read(r);
        return osse_err_set(&g->err, OSSE_ECORRUPT, "file %s has %zu bytes, not %llu", g->id,
                            stored, (unsigned long long)sealed_size(g->size));
    }
    crypto_secretstream_xchacha20poly1305_state st;
    crypto_hash_sha256_state hs;
    unsigned char hdr[SS_HEADER], *in = osse_malloc(CHUNK + SS_ABYTES), *out = osse_malloc(g->size);
    const unsigned char *ad = (const unsigned char *)g->id;
    size_t off = 0, adlen = strlen(g->id);
    crypto_hash_sha256_init(&hs);
    rc = osse_fstore_get(r, hdr, sizeof hdr, &got, &g->err);
    if (!rc && (got != sizeof hdr ||
                crypto_secretstream_xchacha20poly1305_init_pull(&st, hdr, g->key) != 0))
        rc = OSSE_ECORRUPT;
    while (!rc && off < g->size) {
        size_t n = g->size - off < CHUNK ? g->size - off : CHUNK;
        unsigned char tag = 0;
        rc = osse_fstore_get(r, in, n + SS_ABYTES, &got, &g->err);
        /* The last chunk, and only it, is FINAL: the file is whole. */
        if (!rc &&
            (got != n + SS_ABYTES ||
             crypto_secretstream_xchacha20poly1305_pull(&st, out + off, NULL, &tag, in, got, ad,
                                                        adlen) != 0 ||
             (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) != (off + n == g->size)))
            rc = OSSE_ECORRUPT;
        if (!rc)
            crypto_hash_sha256_update(&hs, out + off, n);
        off += n;
    }
    sodium_memzero(&st, sizeof st);
    osse_fstore_close_read(r);
    free(in);
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256_final(&hs, h);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    if (!rc && strcmp(hex, g->sha256) != 0)
        rc = OSSE_ECORRUPT;
    if (rc) {
        free(out);
        if (rc == OSSE_ECORRUPT)
            osse_err_set(&g->err, rc, "file %s does not open under its key or match its sha256",
                         g->id);
        return rc;
    }
    g->bytes = out;
    g->len = g->size;
    return 0;
}

/* --- records --- */

static void file_free(osse_file_t *f)
{
    if (!f)
        return;
    free(f->ctype);
    json_decref(f->name);
    free(f->uploader);
    free(f->taken_by);
    free(f->field);
    free(f);
}

static bool expired(const osse_engine_t *e, const osse_file_t *f)
{
    return !f->taken_by && f->at + FILE_TTL_MS <= osse_engine_now(e);
}

/* fop/<id> put (or deleted) in the current batch: whether a start keeps
 * file id in memory. */
static void live_put(osse_engine_t *e, const char *id, bool put)
{
    char key[OSSE_KEY_LEN(OSSE_KEY_FILE_LIVE) + OSSE_FSTORE_ID_MAX + 1];
    int kl = snprintf(key, sizeof key, OSSE_KEY_FILE_LIVE "%s", id);
    OSSE_PRE(kl > 0 && (size_t)kl < sizeof key);
    osse__batch_need(e);
    if (put ? osse_batch_put(e->batch, key, (size_t)kl, "", 0)
            : osse_batch_delete(e->batch, key, (size_t)kl))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

/* "key": true marks a record whose bytes and name are sealed under the
 * key filed under its id (a record without it was written before, and is
 * removed at start: docs/privacy.md). */
static void put_record(osse_engine_t *e, const osse_file_t *f)
{
    json_t *o = json_pack("{s:s,s:I,s:s,s:O?,s:s,s:I,s:s?,s:s?,s:b}", "sha256", f->sha256, "size",
                          (json_int_t)f->size, "content_type", f->ctype, "name", f->name,
                          "uploader", f->uploader, "at", (json_int_t)f->at, "taken_by", f->taken_by,
                          "field", f->field, "key", 1);
    char *txt = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char key[OSSE_KEY_LEN(OSSE_KEY_UPLOAD) + OSSE_FSTORE_ID_MAX + 1];
    int kl = snprintf(key, sizeof key, OSSE_KEY_UPLOAD "%s", f->id);
    osse__batch_need(e);
    if (!txt || osse_batch_put(e->batch, key, (size_t)kl, txt, strlen(txt)))
        osse__panic(__FILE__, __LINE__, "out of memory");
    free(txt);
    /* Written untaken or taken by a request not ended: a start keeps it. */
    live_put(e, f->id, true);
}

/* What a form records of f, its name in plain ("[encrypted]" without
 * its key). */
static json_t *meta_json(const osse_engine_t *e, const osse_file_t *f)
{
    return json_pack("{s:s,s:s,s:I,s:s,s:o}", "id", f->id, "sha256", f->sha256, "size",
                     (json_int_t)f->size, "content_type", f->ctype, "name",
                     f->name ? osse__pii_open(e, f->id, NAME_PATH, f->name) : json_null());
}

/* The record of file id (its value val) into memory; one that does not
 * parse is left out, as it always was. */
static void record_in(osse_engine_t *e, const char *id, size_t idlen, const void *val, size_t vlen)
{
    json_t *o = json_loadb(val, vlen, 0, NULL);
    const char *sha, *ct, *up;
    json_int_t size, at;
    /* name is sealed or null; taken_by and field are strings or null. */
    json_t *name = json_object_get(o, "name");
    const char *tb = osse__jstr(o, "taken_by"), *field = osse__jstr(o, "field");
    if (o &&
        json_unpack(o, "{s:s,s:I,s:s,s:s,s:I}", "sha256", &sha, "size", &size, "content_type", &ct,
                    "uploader", &up, "at", &at) == 0 &&
        strlen(sha) == 64) {
        osse_file_t *f = osse_calloc(1, sizeof *f);
        memcpy(f->id, id, idlen);
        memcpy(f->sha256, sha, 65);
        f->size = (uint64_t)size;
        f->ctype = osse_strdup(ct);
        f->name = osse__pii_sealed(name) ? json_incref(name) : NULL;
        f->plain = !json_is_true(json_object_get(o, "key")) || json_is_string(name);
        f->uploader = osse_strdup(up);
        f->at = at;
        f->taken_by = tb ? osse_strdup(tb) : NULL;
        f->field = field ? osse_strdup(field) : NULL;
        file_free(osse_map_del(&e->files->map, f->id));
        osse_map_put(&e->files->map, f->id, f);
    }
    json_decref(o);
}

static int load_record(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_UPLOAD);
    if (klen > pl && klen - pl <= OSSE_FSTORE_ID_MAX)
        record_in(ud, (const char *)key + pl, klen - pl, val, vlen);
    return 0;
}

/* file/<id> of id into *rec (free()). Returns 0, OSSE_ENOTFOUND or the
 * read's error. Any thread. */
static int record_get(osse_log_t *log, const char *id, void **rec, size_t *len)
{
    char key[OSSE_KEY_LEN(OSSE_KEY_UPLOAD) + OSSE_FSTORE_ID_MAX + 1];
    int kl = snprintf(key, sizeof key, OSSE_KEY_UPLOAD "%s", id);
    *rec = NULL;
    *len = 0;
    if (kl <= 0 || (size_t)kl >= sizeof key)
        return OSSE_ENOTFOUND;
    return osse_log_kv_get(log, key, (size_t)kl, rec, len, NULL);
}

/* A fop/ entry: its file's record read (a start, which may block). */
static int load_live(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    osse_engine_t *e = ud;
    struct osse_files_s *fs = e->files;
    size_t pl = OSSE_KEY_LEN(OSSE_KEY_FILE_LIVE);
    char id[OSSE_FSTORE_ID_MAX + 1];
    if (klen <= pl || klen - pl > OSSE_FSTORE_ID_MAX)
        return 0;
    memcpy(id, (const char *)key + pl, klen - pl);
    id[klen - pl] = '\0';
    void *rec;
    size_t len;
    int rc = record_get(e->log, id, &rec, &len);
    if (rc == OSSE_ENOTFOUND)
        OSSE_VEC_PUSH(fs->stale, fs->nstale, fs->cstale, osse_strdup(id));
    else if (!rc)
        record_in(e, id, klen - pl, rec, len);
    free(rec);
    return rc == OSSE_ENOTFOUND ? 0 : rc;
}

/* A record read back with the request that took it (cache.c): kept while
 * that request is in memory (files_release). An untaken one is not: it was
 * swept meanwhile, or the read raced its upload's record. */
static void join_record(osse_engine_t *e, const char *id, const void *rec, size_t len,
                        const uint8_t *key)
{
    size_t n = strlen(id);
    if (!e->files || n > OSSE_FSTORE_ID_MAX || osse_map_get(&e->files->map, id))
        return;
    record_in(e, id, n, rec, len);
    osse_file_t *f = osse_map_get(&e->files->map, id);
    if (f && (!f->taken_by || f->plain)) {
        file_free(osse_map_del(&e->files->map, id));
        return;
    }
    if (f && key && !osse__pii_key(e, id) && osse__pii_key_set(e, id, key))
        osse__panic(__FILE__, __LINE__, "out of memory");
}

/* --- the sweep --- */

typedef struct {
    uv_loop_t *loop;
    osse_keystore_t *ks;
    osse_log_t *log;
    char *root;
    char **ids;
    size_t n;
    uv_work_t work;
} unlink_job_t;

static void unlink_work(uv_work_t *w)
{
    unlink_job_t *j = w->data;
    /* The keys first: without its key a file's bytes are noise. What a
     * crash leaves (keys or bytes without a record) goes at the next start. */
    osse_err_t kerr = {0};
    if (osse_log_keys_remove(j->log, j->ks, (const char *const *)j->ids, j->n, &kerr))
        osse_logf(OSSE_LEVEL_WARN, "file keys not removed", "count=%zu error=%s", j->n, kerr.msg);
    for (size_t i = 0; i < j->n; i++) {
        osse_err_t err = {0};
        if (osse_fstore_remove(j->root, j->ids[i], &err))
            osse_logf(OSSE_LEVEL_WARN, "file not removed", "file=%s error=%s", j->ids[i], err.msg);
    }
}

static unlink_job_t *unlink_job_new(osse_engine_t *e)
{
    unlink_job_t *j = osse_calloc(1, sizeof *j);
    j->root = osse_strdup(e->files->root);
    j->loop = e->loop;
    j->ks = e->keystore;
    j->log = e->log;
    j->work.data = j;
    return j;
}

static void unlink_job_free(unlink_job_t *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->ids[i]);
    free(j->ids);
    free(j->root);
    free(j);
}

static void unlink_done(uv_work_t *w, int status)
{
    (void)status;
    unlink_job_free(w->data);
}

/* The records' deletion is durable: the keys and bytes may go. Had the
 * process stopped first, the start would remove them as no one's. */
static void unlink_durable(void *ud, int status)
{
    unlink_job_t *j = ud;
    if (status || uv_queue_work(j->loop, &j->work, unlink_work, unlink_done) != 0)
        unlink_job_free(j);
}

/* The files taken by requests that left memory (cache.c) leave it too:
 * their records and keys are read back with them. A file is in memory
 * only while it is not taken, or its request is. */
static void files_release(osse_engine_t *e)
{
    struct osse_files_s *fs = e->files;
    char **ids = NULL;
    size_t n = 0, cap = 0, it = 0;
    const char *k;
    void *v;
    while (osse_map_next(&fs->map, &it, &k, &v)) {
        const osse_file_t *f = v;
        if (f->taken_by && !f->plain && !osse_map_get(&e->requests, f->taken_by))
            OSSE_VEC_PUSH(ids, n, cap, osse_strdup(k));
    }
    for (size_t i = 0; i < n; i++) {
        file_free(osse_map_del(&fs->map, ids[i]));
        osse__pii_key_drop(e, ids[i]);
        free(ids[i]);
    }
    free(ids);
}

void osse__files_sweep(osse_engine_t *e)
{
    struct osse_files_s *fs = e->files;
    if (!fs)
        return;
    files_release(e);
    if (osse__storage_low(e))
        return;
    unlink_job_t *j = NULL;
    size_t it = 0, cap = 0;
    const char *k;
    void *v;
    while (osse_map_next(&fs->map, &it, &k, &v)) {
        osse_file_t *f = v;
        if (!expired(e, f))
            continue;
        if (!j)
            j = unlink_job_new(e);
        OSSE_VEC_PUSH(j->ids, j->n, cap, osse_strdup(f->id));
    }
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++) {
        char key[OSSE_KEY_LEN(OSSE_KEY_UPLOAD) + OSSE_FSTORE_ID_MAX + 1];
        int kl = snprintf(key, sizeof key, OSSE_KEY_UPLOAD "%s", j->ids[i]);
        osse__batch_need(e);
        if (osse_batch_delete(e->batch, key, (size_t)kl))
            osse__panic(__FILE__, __LINE__, "out of memory");
        live_put(e, j->ids[i], false);
        file_free(osse_map_del(&fs->map, j->ids[i]));
        osse__files_forget_key(e, j->ids[i]);
    }
    osse_logf(OSSE_LEVEL_INFO, "files expired", "count=%zu", j->n);
    osse_engine_hold(e, unlink_durable, j);
}

static void on_sweep(uv_timer_t *t)
{
    osse__files_sweep(t->data);
}

typedef struct {
    osse_engine_t *e;
    size_t removed;
} orphan_t;

static int orphan(void *ud, const char *id)
{
    orphan_t *o = ud;
    if (osse_map_get(&o->e->files->map, id) || osse__files_on_disk(o->e, id))
        return 0;
    osse_err_t err = {0};
    if (osse_fstore_remove(o->e->files->root, id, &err) == 0)
        o->removed++;
    return 0;
}

bool osse__files_on_disk(osse_engine_t *e, const char *id)
{
    void *rec;
    size_t len;
    int rc = record_get(e->log, id, &rec, &len);
    free(rec);
    return rc != OSSE_ENOTFOUND; /* an error keeps it */
}

void osse__files_orphan(osse_engine_t *e, const char *id)
{
    osse_err_t err = {0};
    /* An erased file's key is stale too, but its record stays (410). */
    if (!e->files || osse__files_known(e, id) || osse__files_on_disk(e, id))
        return;
    if (osse_fstore_remove(e->files->root, id, &err))
        osse_logf(OSSE_LEVEL_WARN, "file not removed", "file=%s error=%s", id, err.msg);
}

/* Whether a start keeps f: not taken, or taken by a request in memory that
 * has not ended (a record from before sealing is kept to be dropped). */
static bool kept(const osse_engine_t *e, const osse_file_t *f)
{
    const osse_request_t *r = f->taken_by ? osse_map_get(&e->requests, f->taken_by) : NULL;
    return f->plain || !f->taken_by || (r && !osse__rstatus_final(r->status));
}

int osse__files_load(osse_engine_t *e, osse_err_t *err)
{
    struct osse_files_s *fs = osse_calloc(1, sizeof *fs);
    osse_map_init(&fs->map);
    e->files = fs;
    e->file_join = join_record;
    uint64_t t0 = uv_hrtime();
    int rc = osse_fstore_open(e->data_dir, &fs->root, err);
    if (rc)
        return rc;
    void *v = NULL;
    size_t vl = 0;
    rc = osse_log_kv_get(e->log, OSSE_KEY_FILES_INDEXED, OSSE_KEY_LEN(OSSE_KEY_FILES_INDEXED), &v,
                         &vl, err);
    free(v);
    if (rc && rc != OSSE_ENOTFOUND)
        return rc;
    const char *hook = getenv(UNINDEXED_HOOK);
    if (!rc && e->test_clock && hook && strcmp(hook, "1") == 0)
        rc = OSSE_ENOTFOUND;
    if (!rc) {
        /* What open work needs, however many files the history holds. */
        rc = osse_log_kv_scan(e->log, OSSE_KEY_FILE_LIVE, OSSE_KEY_LEN(OSSE_KEY_FILE_LIVE),
                              load_live, e, err);
        fs->load_ns = uv_hrtime() - t0;
        if (rc)
            return osse_err_set(err, OSSE_EIO, "the file records cannot be read");
        return 0;
    }
    /* The first start of this version: every record read once, the ones
     * kept indexed (files_start). */
    fs->indexing = true;
    osse_log_kv_scan(e->log, OSSE_KEY_UPLOAD, OSSE_KEY_LEN(OSSE_KEY_UPLOAD), load_record, e, NULL);
    char **gone = NULL;
    size_t n = 0, cap = 0, it = 0;
    const char *k;
    while (osse_map_next(&fs->map, &it, &k, &v))
        if (!kept(e, v))
            OSSE_VEC_PUSH(gone, n, cap, osse_strdup(k));
    for (size_t i = 0; i < n; i++) {
        file_free(osse_map_del(&fs->map, gone[i]));
        free(gone[i]);
    }
    free(gone);
    fs->load_ns = uv_hrtime() - t0;
    return 0;
}

void osse_readback_want_file(osse_engine_t *e, osse_readback_t **rb, const char *id)
{
    const osse_file_t *f = e->files && id && strlen(id) <= OSSE_FSTORE_ID_MAX
                               ? osse_map_get(&e->files->map, id)
                               : NULL;
    if (f)
        osse_readback_want(e, rb, OSSE_NAME_ID, f->taken_by); /* NULL: nothing to read */
    else if (e->files && id && osse_keystore_id_ok(id))
        osse_readback_want(e, rb, OSSE_NAME_FILE, id);
}

void osse_readback_want_form_files(osse_engine_t *e, osse_readback_t **rb, const json_t *form)
{
    const char *k;
    json_t *v;
    /* Any string could be a file field's: the workflow is not known yet.
     * Only ids a file could have are read (an upload's are "f-" hex). */
    json_object_foreach((json_t *)form, k, v)
    {
        const char *id = json_string_value(v);
        if (id && strncmp(id, "f-", 2) == 0 && strlen(id) <= OSSE_FSTORE_ID_MAX &&
            !osse__files_known(e, id))
            osse_readback_want_file(e, rb, id);
    }
}

void osse__files_each(const osse_engine_t *e, void (*cb)(void *ud, const char *id), void *ud)
{
    const char *k;
    void *v;
    for (size_t it = 0; e->files && osse_map_next(&e->files->map, &it, &k, &v);)
        cb(ud, k);
}

bool osse__files_known(const osse_engine_t *e, const char *id)
{
    return e->files && osse_map_get(&e->files->map, id) != NULL;
}

/* Whether f is held by a pii field of an erased request. */
static bool erased_holder(osse_engine_t *e, const osse_file_t *f)
{
    const osse_request_t *h = f->taken_by ? osse__request(e, f->taken_by) : NULL;
    return h && h->erased_at && f->field && osse__pii_field(h->wf, f->field);
}

bool osse__files_erased(osse_engine_t *e, const char *id)
{
    const osse_file_t *f = e->files ? osse_map_get(&e->files->map, id) : NULL;
    return f && erased_holder(e, f);
}

void osse__files_forget_key(osse_engine_t *e, const char *file_id)
{
    osse__pii_key_drop(e, file_id);
}

/* Records written before files were sealed (no key of theirs; a plain
 * name) are not served: each goes with its bytes (docs/privacy.md). */
static void drop_plain(osse_engine_t *e)
{
    struct osse_files_s *fs = e->files;
    char **ids = NULL;
    size_t n = 0, cap = 0, it = 0;
    const char *k;
    void *v;
    while (osse_map_next(&fs->map, &it, &k, &v))
        if (((osse_file_t *)v)->plain)
            OSSE_VEC_PUSH(ids, n, cap, osse_strdup(k));
    for (size_t i = 0; i < n; i++) {
        char key[OSSE_KEY_LEN(OSSE_KEY_UPLOAD) + OSSE_FSTORE_ID_MAX + 1];
        int kl = snprintf(key, sizeof key, OSSE_KEY_UPLOAD "%s", ids[i]);
        osse__batch_need(e);
        if (osse_batch_delete(e->batch, key, (size_t)kl))
            osse__panic(__FILE__, __LINE__, "out of memory");
        file_free(osse_map_del(&fs->map, ids[i]));
        osse__files_forget_key(e, ids[i]);
        osse_err_t err = {0};
        (void)osse_fstore_remove(fs->root, ids[i], &err);
        free(ids[i]);
    }
    free(ids);
    if (n)
        osse_logf(OSSE_LEVEL_WARN, "unsealed files removed", "count=%zu", n);
}

/* The event that ends a request: its files are no longer what a start
 * keeps (their records stay; they leave memory with the request). */
static void applied(osse_engine_t *e, const osse_event_t *ev)
{
    if (ev->type != OSSE_EV_RequestCompleted && ev->type != OSSE_EV_RequestRejected &&
        ev->type != OSSE_EV_RequestWithdrawn)
        return;
    const char *rid = osse__stream_id(ev->stream, OSSE_SK_REQUEST);
    const osse_request_t *r = rid ? osse_map_get(&e->requests, rid) : NULL;
    if (!r || !osse__rstatus_final(r->status))
        return;
    for (size_t i = 0; i < r->wf->nfields; i++) {
        const osse_wf_field_t *fd = &r->wf->fields[i];
        if (fd->type != OSSE_FIELD_FILE)
            continue;
        const char *id = osse__jstr(json_object_get(osse__form(r), fd->name), "id");
        const osse_file_t *f = id ? osse_map_get(&e->files->map, id) : NULL;
        if (f && f->taken_by && strcmp(f->taken_by, r->id) == 0)
            live_put(e, id, false);
    }
}

static const osse_reactor_t reactor = {.applied = applied};

int osse__files_start(osse_engine_t *e, osse_err_t *err)
{
    int rc;
    if (!e->files && (rc = osse__files_load(e, err)))
        return rc;
    struct osse_files_s *fs = e->files;
    drop_plain(e);
    for (size_t i = 0; i < fs->nstale; i++) {
        live_put(e, fs->stale[i], false);
        free(fs->stale[i]);
    }
    free(fs->stale);
    fs->stale = NULL;
    fs->nstale = fs->cstale = 0;
    if (fs->indexing) {
        /* Before serving (as the replay): bytes an older osse's crash left
         * without their record are no one's. From now on an upload is
         * pending until its record is durable, and a start removes what a
         * crash left by its key (engine.c), without reading the folder. */
        orphan_t o = {e, 0};
        osse_fstore_each(fs->root, orphan, &o, NULL);
        if (o.removed)
            osse_logf(OSSE_LEVEL_INFO, "unrecorded files removed", "count=%zu", o.removed);
        const char *k;
        size_t it = 0;
        while (osse_map_next(&fs->map, &it, &k, NULL))
            live_put(e, k, true);
        osse__batch_need(e);
        if (osse_batch_put(e->batch, OSSE_KEY_FILES_INDEXED, OSSE_KEY_LEN(OSSE_KEY_FILES_INDEXED),
                           "", 0))
            osse__panic(__FILE__, __LINE__, "out of memory");
        osse_logf(OSSE_LEVEL_INFO, "files indexed", "kept=%zu", fs->map.len);
        fs->indexing = false;
    }
    osse_logf(OSSE_LEVEL_INFO, "files read", "files=%zu load_ms=%.1f", fs->map.len,
              (double)fs->load_ns / 1e6);
    osse__react(e, &reactor);
    osse__files_sweep(e);
    if (uv_timer_init(e->loop, &fs->sweep) == 0) {
        fs->sweep.data = e;
        fs->timer_on = true;
        uv_unref((uv_handle_t *)&fs->sweep);
        if (!e->test_clock)
            uv_timer_start(&fs->sweep, on_sweep, SWEEP_EVERY_MS, SWEEP_EVERY_MS);
    }
    return 0;
}

void osse__files_stop(osse_engine_t *e)
{
    struct osse_files_s *fs = e->files;
    if (!fs || !fs->timer_on)
        return;
    fs->timer_on = false;
    uv_timer_stop(&fs->sweep);
    uv_close((uv_handle_t *)&fs->sweep, NULL);
}

void osse__files_close(osse_engine_t *e)
{
    struct osse_files_s *fs = e->files;
    if (!fs)
        return;
    size_t it = 0;
    const char *k;
    void *v;
    while (osse_map_next(&fs->map, &it, &k, &v))
        file_free(v);
    osse_map_close(&fs->map);
    free(fs->root);
    free(fs);
    e->files = NULL;
}

/* --- uploads --- */

/* "Application/PDF; charset=x" -> "application/pdf"; false when it is no
 * type/subtype of RFC 9110 token characters. */
static bool media_type(osse_slice_t in, char *out, size_t cap)
{
    size_t n = 0, i = 0;
    while (i < in.len && (in.ptr[i] == ' ' || in.ptr[i] == '\t'))
        i++;
    int slashes = 0;
    for (; i < in.len && in.ptr[i] != ';' && in.ptr[i] != ' ' && in.ptr[i] != '\t'; i++) {
        char ch = in.ptr[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        bool tok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("!#$&^_.+-", ch);
        if (ch == '/')
            slashes++;
        else if (!tok || ch == '\0')
            return false;
        if (n + 1 >= cap)
            return false;
        out[n++] = ch;
    }
    out[n] = '\0';
    const char *slash = strchr(out, '/');
    return slashes == 1 && slash != out && slash[1] != '\0';
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Osse-Filename: percent-encoded UTF-8, no control characters, no '/'. */
static bool file_name(osse_slice_t in, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < in.len; i++) {
        unsigned char ch = (unsigned char)in.ptr[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return false; /* the header itself is ASCII without spaces */
        if (ch == '%') {
            int hi = i + 2 < in.len ? hexval(in.ptr[i + 1]) : -1;
            int lo = i + 2 < in.len ? hexval(in.ptr[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            ch = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f || ch == '/' || n + 1 >= cap)
            return false;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return n > 0 && osse_utf8_valid(out, n);
}

int osse_file_upload_begin(osse_engine_t *e, const osse_principal_t *p, osse_slice_t ctype,
                           osse_slice_t name, osse_slice_t bytes, osse_file_up_t **out,
                           osse_fail_t *f)
{
    char ct[CTYPE_MAX + 1], nm[NAME_MAX_BYTES + 1];
    if (!e->files || !e->keystore)
        return osse__fail(f, OSSE_EIO, "internal", "files are not available");
    if (ctype.len == 0 || !media_type(ctype, ct, sizeof ct))
        return osse__fail(f, OSSE_EPARSE, "invalid_content_type",
                          "an upload needs a Content-Type such as application/pdf");
    if (name.len && !file_name(name, nm, sizeof nm)) {
        osse__detail(f, "Osse-Filename",
                     "must be percent-encoded UTF-8 of at most %d bytes, without control "
                     "characters or '/'",
                     NAME_MAX_BYTES);
        return osse__fail(f, OSSE_EINVAL, "invalid_request", "Osse-Filename is invalid");
    }
    if (bytes.len == 0)
        return osse__fail(f, OSSE_EINVAL, "invalid_request",
                          "the body is empty: this route wants the file's bytes");
    if (bytes.len > UPLOAD_MAX)
        return osse__fail(f, OSSE_ETOOBIG, "payload_too_large", "the file is too large");
    uint8_t *key = sodium_malloc(OSSE_KEY_BYTES);
    if (!key)
        return osse__fail(f, OSSE_ENOMEM, "internal", "out of memory");
    osse_file_up_t *u = osse_calloc(1, sizeof *u);
    u->key = key;
    u->ks = e->keystore;
    u->log = e->log;
    /* An id no file and no key has: the key store files request keys too. */
    do
        osse__random_id(u->id, 12, "f-");
    while (osse_map_get(&e->files->map, u->id) || osse__pii_key(e, u->id));
    u->root = osse_strdup(e->files->root);
    u->ctype = osse_strdup(ct);
    u->name = name.len ? osse_strdup(nm) : NULL;
    u->uploader = osse_strdup(p->id);
    u->bytes = bytes;
    u->crash = e->test_clock && getenv(CRASH_HOOK) && strcmp(getenv(CRASH_HOOK), "1") == 0;
    *out = u;
    return 0;
}

void osse_file_upload_hashed(osse_file_up_t *u, const char sha256[65])
{
    memcpy(u->sha256, sha256, sizeof u->sha256);
    u->hashed = true;
}

void osse_file_upload_store(osse_file_up_t *u)
{
    u->rc = osse_keystore_new_key(u->ks, u->id, u->key, u->wrapped);
    if (u->rc)
        return;
    /* The key, pending, then the bytes: until the batch of its record
     * deletes the pending record, a crash leaves an id that a start finds
     * there (or, before the pending record, in the key store's last
     * segment) without a record, and removes with its key and bytes
     * (engine.c), so that no start reads the folder. The key is durable
     * before the record, so before the 201. */
    osse_keyrec_t rec = {u->id, u->wrapped};
    if ((u->rc = osse_log_keys_append_pending(u->log, u->ks, &rec, 1, &u->err)))
        return;
    u->rc = bytes_in(u);
    if (!u->rc && u->crash)
        _exit(137); /* the test hook: bytes and key durable, no record */
}

int osse_file_upload_end(osse_engine_t *e, osse_file_up_t *u, json_t **out, osse_fail_t *f)
{
    if (u->rc) {
        osse_logf(OSSE_LEVEL_ERROR, "file not stored", "file=%s error=%s", u->id, u->err.msg);
        if (u->rc == OSSE_ENOSPC)
            return osse__fail(f, OSSE_ENOSPC, "insufficient_storage",
                              "the disk is nearly full: the file was not stored");
        return osse__fail(f, OSSE_EIO, "internal", "the file could not be stored");
    }
    uint8_t *key = osse__pii_key_slot(e);
    if (!key || osse_map_put(&e->keys, u->id, key)) {
        /* Its key and bytes, without a record, go at the next start. */
        if (key)
            sodium_memzero(key, OSSE_KEY_BYTES);
        return osse__fail(f, OSSE_ENOMEM, "internal", "out of memory");
    }
    memcpy(key, u->key, OSSE_KEY_BYTES);
    osse_file_t *r = osse_calloc(1, sizeof *r);
    memcpy(r->id, u->id, sizeof r->id);
    memcpy(r->sha256, u->sha256, sizeof r->sha256);
    r->size = u->bytes.len;
    r->ctype = u->ctype;
    r->uploader = u->uploader;
    u->ctype = u->uploader = NULL;
    if (u->name) {
        json_t *plain = json_string(u->name);
        r->name = osse__pii_seal(e, r->id, NAME_PATH, plain);
        json_decref(plain);
    }
    r->at = osse_engine_now(e);
    osse_map_put(&e->files->map, r->id, r);
    put_record(e, r);
    if (osse_batch_keys_pending_done(e->batch, r->id))
        osse__panic(__FILE__, __LINE__, "out of memory");
    /* As stored: the name sealed. The answer is remembered so (an
     * Idempotency-Key) and opened for its uploader when sent (views.c). */
    *out = json_pack("{s:s,s:s,s:I,s:s,s:O?}", "id", r->id, "sha256", r->sha256, "size",
                     (json_int_t)r->size, "content_type", r->ctype, "name", r->name);
    return 0;
}

void osse_file_upload_discard(osse_engine_t *e, osse_file_up_t *u)
{
    if (u->rc || !e->files)
        return; /* nothing was stored */
    unlink_job_t *j = unlink_job_new(e);
    j->ids = osse_malloc(sizeof *j->ids);
    j->ids[j->n++] = osse_strdup(u->id);
    /* No record names it: its key and bytes may go now (or at the next
     * start, as no one's, should the process stop first). */
    unlink_durable(j, 0);
}

void osse_file_upload_free(osse_file_up_t *u)
{
    if (!u)
        return;
    free(u->root);
    free(u->ctype);
    free(u->name);
    free(u->uploader);
    sodium_free(u->key); /* wipes */
    free(u);
}

/* --- reading --- */

int osse_q_file(osse_engine_t *e, const osse_principal_t *p, const char *id, osse_file_get_t **out,
                osse_fail_t *f)
{
    osse_file_t *r =
        e->files && strlen(id) <= OSSE_FSTORE_ID_MAX ? osse_map_get(&e->files->map, id) : NULL;
    if (!r || expired(e, r))
        return osse__fail(f, OSSE_ENOTFOUND, "not_found", "no such file");
    bool ok = strcmp(r->uploader, p->id) == 0;
    if (!ok && r->taken_by) {
        const osse_request_t *q = osse__request(e, r->taken_by);
        ok = q && osse__can_read(p, q);
        /* An auditor checks the process, not the people (SPEC §8). */
        if (ok && p->role == OSSE_ROLE_AUDITOR && r->field) {
            bool pii = false;
            for (size_t i = 0; i < q->wf->nfields; i++)
                pii |= strcmp(q->wf->fields[i].name, r->field) == 0 && q->wf->fields[i].pii;
            if (pii)
                return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                                  "this file is personal data: an auditor may not read it");
        }
    }
    if (!ok)
        return osse__fail(f, OSSE_EFORBIDDEN, "forbidden",
                          "only its uploader and the readers of the request that holds it may "
                          "read this file");
    /* A pii field's file of an erased request is gone (SPEC §8,
     * erasure.c): its key went with the request's. */
    const uint8_t *key = osse__pii_key(e, r->id);
    if (!key || erased_holder(e, r))
        return osse__fail(f, OSSE_EGONE, "gone", "the file's personal data was erased");
    uint8_t *copy = sodium_malloc(OSSE_KEY_BYTES);
    if (!copy)
        return osse__fail(f, OSSE_ENOMEM, "internal", "out of memory");
    memcpy(copy, key, OSSE_KEY_BYTES);
    osse_file_get_t *g = osse_calloc(1, sizeof *g);
    g->key = copy;
    memcpy(g->id, r->id, sizeof g->id);
    memcpy(g->sha256, r->sha256, sizeof g->sha256);
    g->root = osse_strdup(e->files->root);
    g->ctype = osse_strdup(r->ctype);
    g->size = r->size;
    *out = g;
    return 0;
}

void osse_file_get_load(osse_file_get_t *g)
{
    g->rc = bytes_out(g);
}

int osse_file_get_result(osse_file_get_t *g, char **bytes, size_t *len, osse_fail_t *f)
{
    if (g->rc) {
        osse_logf(OSSE_LEVEL_ERROR, "file not read", "file=%s error=%s", g->id, g->err.msg);
        return osse__fail(f, OSSE_EIO, "internal", "the file cannot be read");
    }
    *bytes = g->bytes;
    *len = g->len;
    g->bytes = NULL;
    return 0;
}

const char *osse_file_get_type(const osse_file_get_t *g)
{
    return g->ctype;
}

const char *osse_file_get_sha256(const osse_file_get_t *g)
{
    return g->sha256;
}

void osse_file_get_free(osse_file_get_t *g)
{
    if (!g)
        return;
    free(g->bytes);
    sodium_free(g->key); /* wipes */
    free(g->root);
    free(g->ctype);
    free(g);
}

/* --- the `file` fields of a form --- */

int osse__files_resolve(osse_engine_t *e, const osse_principal_t *p, const osse_wf_t *wf,
                        json_t *form, const char *request_id, osse_fail_t *f)
{
    size_t bad = 0;
    bool taken = false;
    for (size_t i = 0; i < wf->nfields; i++) {
        const osse_wf_field_t *fd = &wf->fields[i];
        json_t *v = json_object_get(form, fd->name);
        if (fd->type != OSSE_FIELD_FILE || !json_is_string(v))
            continue;
        char path[96];
        snprintf(path, sizeof path, "form.%s", fd->name);
        const char *id = json_string_value(v);
        osse_file_t *r =
            e->files && strlen(id) <= OSSE_FSTORE_ID_MAX ? osse_map_get(&e->files->map, id) : NULL;
        /* The same file in two fields of one form would have two holders. */
        const char *twice = NULL;
        for (size_t k = 0; k < i && !twice; k++) {
            const char *other = osse__jstr(json_object_get(form, wf->fields[k].name), "id");
            if (wf->fields[k].type == OSSE_FIELD_FILE && other && strcmp(other, id) == 0)
                twice = wf->fields[k].name;
        }
        bool type_ok = r && fd->ncontent_types == 0;
        for (size_t k = 0; r && k < fd->ncontent_types && !type_ok; k++)
            type_ok = strcmp(fd->content_types[k], r->ctype) == 0;
        bad++;
        if (!r || expired(e, r) || strcmp(r->uploader, p->id) != 0) {
            osse__detail(f, path, "no such file among this principal's uploads");
        } else if (r->taken_by && (!request_id || strcmp(r->taken_by, request_id) != 0)) {
            taken = true;
            osse__detail(f, path, "the file is held by another request");
        } else if (twice) {
            taken = true;
            osse__detail(f, path, "the file is already given in field %s", twice);
        } else if (fd->max_size && r->size > (uint64_t)fd->max_size) {
            osse__detail(f, path, "the file has %llu bytes, more than max_size %lld",
                         (unsigned long long)r->size, (long long)fd->max_size);
        } else if (!type_ok) {
            osse__detail(f, path, "the file's type %s is not one of the field's content_types",
                         r->ctype);
        } else {
            bad--;
            json_object_set_new(form, fd->name, meta_json(e, r));
        }
    }
    if (!bad)
        return 0;
    return osse__fail(f, OSSE_EINVAL, taken ? "file_taken" : "invalid_form",
                      "the form has %zu file error(s)", bad);
}

void osse__files_take(osse_engine_t *e, const osse_wf_t *wf, const json_t *form,
                      const char *request_id)
{
    for (size_t i = 0; e->files && i < wf->nfields; i++) {
        const osse_wf_field_t *fd = &wf->fields[i];
        const char *id =
            fd->type == OSSE_FIELD_FILE ? osse__jstr(json_object_get(form, fd->name), "id") : NULL;
        osse_file_t *r = id ? osse_map_get(&e->files->map, id) : NULL;
        if (!r || r->taken_by)
            continue;
        r->taken_by = osse_strdup(request_id);
        r->field = osse_strdup(fd->name);
        put_record(e, r);
    }
}
