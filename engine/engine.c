/* engine.c: the top of engine/: opening, replay, stopping, closing.
 *
 * At open the whole log is replayed through osse__apply, which rebuilds every
 * projection; the log is the only source of truth, so the views agree with it
 * after any crash. Then the mechanisms start in order (commit.c, audit.c,
 * notify.c, timers.c, linkage.c); each that reacts to events adds itself to
 * commit.c's reactors, so that nothing below calls it. */
#include "engine/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/problems.h"
#include "common/time.h"

osse_log_t *osse_engine_log(osse_engine_t *e)
{
    return e->log;
}

const osse_principal_t *osse_engine_auth(osse_engine_t *e, const char *token, size_t len)
{
    char h[65];
    osse__sha256_hex(token, len, h);
    osse_principal_t *p = osse_map_get(&e->tokens, h);
    return p && !p->revoked ? p : NULL;
}

static int load_secret(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    osse_engine_t *e = ud;
    char id[128];
    osse_agency_t *a;
    if (osse__record_id(key, klen, OSSE_KEY_LEN(OSSE_KEY_AGENCY_SECRET), id, sizeof id) &&
        (a = osse_map_get(&e->agencies, id)))
        osse__record_text(val, vlen, a->secret, sizeof a->secret);
    return 0;
}

static int load_old_secret(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    osse_engine_t *e = ud;
    char id[128], v[96];
    if (!osse__record_id(key, klen, OSSE_KEY_LEN(OSSE_KEY_AGENCY_OLD_SECRET), id, sizeof id) ||
        !osse__record_text(val, vlen, v, sizeof v))
        return 0;
    char *end;
    long long until = strtoll(v, &end, 10);
    osse_agency_t *a = osse_map_get(&e->agencies, id);
    if (a && *end == ':' && strlen(end + 1) < sizeof a->old_secret) {
        snprintf(a->old_secret, sizeof a->old_secret, "%s", end + 1);
        a->old_until = until;
    }
    sodium_memzero(v, sizeof v);
    return 0;
}

/* --- open / replay --- */

static osse_engine_t *engine_new(void)
{
    osse_engine_t *e = osse_calloc(1, sizeof *e);
    e->cache_max = SIZE_MAX; /* every request in memory, unless serving */
    osse_map_init(&e->workflows);
    osse_map_init(&e->agencies);
    osse_map_init(&e->calendars);
    osse_map_init(&e->principals);
    osse_map_init(&e->tokens);
    osse_map_init(&e->requests);
    osse_map_init(&e->names);
    osse_map_init(&e->codes);
    osse_map_init(&e->task_rows);
    osse_map_init(&e->versions);
    osse_map_init(&e->idem);
    osse_map_init(&e->references);
    osse_map_init(&e->payments);
    osse_map_init(&e->pay_answers);
    osse_map_init(&e->subs);
    osse_map_init(&e->licnums);
    osse_map_init(&e->keys);
    osse_buf_init(&e->enc, 0);
    return e;
}

int osse_engine_open_replay(osse_engine_t **out)
{
    if (sodium_init() < 0)
        return OSSE_EIO;
    osse_engine_t *e = engine_new();
    e->replaying = true;
    *out = e;
    return 0;
}

int osse_engine_replay_decode(uint64_t seq, const void *bytes, size_t len, osse_event_t *ev,
                              osse_err_t *err)
{
    osse_err_t derr = {0}; /* not err itself: its message is formatted into err */
    int rc = osse_event_decode(bytes, len, ev, &derr);
    if (rc)
        return osse_err_set(err, OSSE_ECORRUPT, "event %llu is damaged: %s",
                            (unsigned long long)seq, derr.msg);
    return 0;
}

/* Applies one decoded event; ordered: it must be the next seq (a replay of
 * the log; the catalog's events at a start from the records are not). */
static int apply_decoded(osse_engine_t *e, uint64_t seq, const osse_event_t *ev, bool ordered,
                         osse_err_t *err)
{
    if (ev->seq != seq || (ordered && seq != e->applied + 1))
        return osse_err_set(err, OSSE_ECORRUPT, "event %llu is out of order (after %llu)",
                            (unsigned long long)seq, (unsigned long long)e->applied);
    osse_err_t aerr = {0};
    int rc = osse__apply(e, ev, &aerr);
    if (rc)
        osse_err_set(err, rc, "event %llu does not apply: %s", (unsigned long long)seq, aerr.msg);
    e->applied = seq;
    if (ev->at > e->last_at)
        e->last_at = ev->at;
    return rc;
}

int osse_engine_replay_decoded(osse_engine_t *e, uint64_t seq, const osse_event_t *ev,
                               osse_err_t *err)
{
    return apply_decoded(e, seq, ev, true, err);
}

/* Decodes and applies one stored event (ordered as apply_decoded's);
 * *catalog (if given) says whether it is of a catalog stream. */
static int apply_stored(osse_engine_t *e, uint64_t seq, const void *bytes, size_t len, bool ordered,
                        bool *catalog, osse_err_t *err)
{
    osse_event_t ev;
    int rc = osse_engine_replay_decode(seq, bytes, len, &ev, err);
    if (rc)
        return rc;
    osse_stream_kind_t kind = osse_event_type_kind(ev.type);
    if (catalog)
        *catalog = kind != OSSE_SK_REQUEST && kind != OSSE_SK_DELIVERY;
    rc = apply_decoded(e, seq, &ev, ordered, err);
    osse_event_clear(&ev);
    return rc;
}

int osse_engine_replay_event(osse_engine_t *e, uint64_t seq, const void *bytes, size_t len,
                             osse_err_t *err)
{
    return apply_stored(e, seq, bytes, len, true, NULL, err);
}

typedef struct {
    osse_engine_t *e;
    osse_err_t err;    /* why the replay stopped */
    uint64_t *catalog; /* the seqs of catalog events, for the migration to records */
    size_t ncatalog, ccatalog;
} replay_t;

static int replay_one(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    replay_t *rp = ud;
    bool catalog = false;
    int rc = apply_stored(rp->e, seq, bytes, len, true, &catalog, &rp->err);
    if (rc)
        osse_logf(OSSE_LEVEL_ERROR, "replay failed", "seq=%llu error=%s", (unsigned long long)seq,
                  rp->err.msg);
    else if (catalog)
        OSSE_VEC_PUSH(rp->catalog, rp->ncatalog, rp->ccatalog, seq);
    return rc;
}

/* A start from the records (docs/design.md, "Views on disk"): the catalog's
 * events, then every request's record; no request event is read. */
static int start_from_records(osse_engine_t *e, bool check, osse_err_t *err)
{
    uint64_t *cat = NULL;
    size_t n = 0;
    int rc = osse__catalog_seqs(e, &cat, &n, err);
    for (size_t i = 0; !rc && i < n; i++) {
        void *bytes = NULL;
        size_t len = 0;
        if (!(rc = osse_log_get(e->log, cat[i], &bytes, &len, err)))
            rc = apply_stored(e, cat[i], bytes, len, false, NULL, err);
        free(bytes);
    }
    free(cat);
    /* Only open work, and the counters from the marker's snapshot; or,
     * with --check-views, every record, and the counters they rebuild
     * against the snapshot (and the open list against opn/). */
    if (!rc && !check)
        rc = osse__records_load_open(e, err);
    else if (!rc)
        rc = osse__records_load(e, err);
    if (!rc && check)
        rc = osse__records_verify(e, err);
    e->views_on = !rc;
    /* The log's last event: where the clock of an offline start resumes. */
    uint64_t last = osse_log_last_seq(e->log);
    void *bytes = NULL;
    size_t len = 0;
    osse_event_t ev;
    if (!rc && last && !(rc = osse_log_get(e->log, last, &bytes, &len, err)) &&
        !(rc = osse_engine_replay_decode(last, bytes, len, &ev, err))) {
        if (ev.at > e->last_at)
            e->last_at = ev.at;
        osse_event_clear(&ev);
    }
    free(bytes);
    e->applied = last;
    return rc;
}

typedef struct {
    osse_engine_t *e;
    size_t n;
} clear_t;

static int clear_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    clear_t *c = ud;
    osse__batch_need(c->e);
    if (osse_batch_delete(c->e->batch, key, klen))
        return OSSE_ENOMEM;
    if (++c->n % 65536 == 0)
        osse__commit_flush(c->e);
    return 0;
}

/* Deletes every stored entry of every index (engine/index.c), in batches:
 * the migration's first step. */
static int ix_clear(osse_engine_t *e, osse_err_t *err)
{
    clear_t c = {e, 0};
    const char *prefix;
    for (size_t i = 0; (prefix = osse__ix_prefix(i)); i++) {
        int rc = osse_log_kv_scan(e->log, prefix, strlen(prefix), clear_one, &c, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* Requests per batch of the migration: some megabytes each. */
#define MIGRATE_CHUNK 4096

/* After a replay of the whole log of a folder without records: every
 * request's record and the catalog's cat/ keys, in batches, and the
 * OSSE_KEY_VIEWS marker last, so that it is durable only after every
 * record is (a crash before: the next start replays and migrates again).
 * After osse__commit_start: the batches go through the writer. */
static int records_migrate(osse_engine_t *e, const uint64_t *catalog, size_t ncatalog,
                           osse_err_t *err)
{
    /* Index entries an earlier life of the folder wrote (before a downgrade
     * and this upgrade) are not the ones these requests give. */
    int rc = ix_clear(e, err);
    if (rc)
        return rc;
    osse__batch_need(e);
    if (osse_batch_delete(e->batch, OSSE_KEY_VIEWS_1, OSSE_KEY_LEN(OSSE_KEY_VIEWS_1)) ||
        osse_batch_delete(e->batch, OSSE_KEY_VIEWS_2, OSSE_KEY_LEN(OSSE_KEY_VIEWS_2)) ||
        osse_batch_delete(e->batch, OSSE_KEY_VIEWS_3, OSSE_KEY_LEN(OSSE_KEY_VIEWS_3)) ||
        osse_batch_delete(e->batch, OSSE_KEY_VIEWS_4, OSSE_KEY_LEN(OSSE_KEY_VIEWS_4)) ||
        osse_batch_delete(e->batch, OSSE_KEY_VIEWS_5, OSSE_KEY_LEN(OSSE_KEY_VIEWS_5)))
        return osse_err_set(err, OSSE_ENOMEM, "out of memory");
    /* The open requests' records go under opn/ (keys.h): what a folder of
     * views/4 has there (their ids) goes, and their req/ keys with their
     * records (e->migrating). */
    if ((rc = osse_log_kv_scan(e->log, OSSE_KEY_OPEN, OSSE_KEY_LEN(OSSE_KEY_OPEN), clear_one,
                               &(clear_t){e, 0}, err)))
        return rc;
    e->migrating = true;
    for (size_t i = 0; i < ncatalog; i++)
        osse__catalog_event(e, catalog[i]);
    for (size_t i = 0; i < e->nreqs; i++) {
        osse_request_t *r = osse__slot(e, i);
        if (!r)
            continue;
        osse__batch_need(e);
        osse__record_touch(e, r);
        if ((i + 1) % MIGRATE_CHUNK)
            continue;
        osse__commit_flush(e);
        /* At most two chunks in flight, so that memory holds no more than
         * that of a large folder's records (the loop runs only for the
         * writer's answers: nothing listens yet). */
        while (!e->failed && e->commits_done + 1 < e->commits_sent)
            uv_run(e->loop, UV_RUN_ONCE);
    }
    e->views_on = true; /* the last batch carries the marker, and every one after it */
    osse__batch_need(e);
    osse__commit_flush(e);
    e->migrating = false;
    if (e->nrequests || ncatalog)
        osse_logf(OSSE_LEVEL_INFO, "records written", "requests=%zu catalog_events=%zu",
                  e->nrequests, ncatalog);
    return 0;
}

/* Writes token to <dir>/admin.token.tmp (0600) and fsyncs it. */
static int stage_token_file(const char *dir, const char *token, osse_err_t *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/admin.token.tmp", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return osse_err_set(err, OSSE_EIO, "%s: %s", tmp, strerror(errno));
    size_t n = strlen(token);
    int rc = 0;
    /* fchmod: a stale .tmp left by an older crash may have another mode. */
    if (fchmod(fd, 0600) != 0 || write(fd, token, n) != (ssize_t)n || write(fd, "\n", 1) != 1 ||
        fsync(fd) != 0)
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", tmp, strerror(errno));
    close(fd);
    return rc;
}

/* --- the test clock (SPEC §10) --- */

/* The test clock's position is a side record, so that it survives a restart
 * even when an advance fired nothing. It resumes at the latest of --test-clock
 * TIME, where it stood, and the last event's time (it never runs behind the
 * log); without TIME on a new folder it starts at the real time. */
static void test_clock_resume(osse_engine_t *e, int64_t start)
{
    void *val = NULL;
    size_t vlen = 0;
    int64_t stood = 0;
    if (osse_log_kv_get(e->log, OSSE_KEY_TESTCLOCK, OSSE_KEY_LEN(OSSE_KEY_TESTCLOCK), &val, &vlen,
                        NULL) == 0 &&
        vlen > 0 && vlen < 24) {
        char txt[24];
        memcpy(txt, val, vlen);
        txt[vlen] = '\0';
        stood = strtoll(txt, NULL, 10);
    }
    free(val);
    int64_t c = start ? start : stood ? stood : osse_time_real_ms();
    if (stood > c)
        c = stood;
    if (e->last_at > c)
        c = e->last_at;
    e->clock = c;
}

/* Renames admin.token.tmp over admin.token and makes the rename durable. */
static int publish_token_file(const char *dir, osse_err_t *err)
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof path, "%s/admin.token", dir);
    snprintf(tmp, sizeof tmp, "%s/admin.token.tmp", dir);
    if (rename(tmp, path) != 0)
        return osse_err_set(err, OSSE_EIO, "%s: %s", path, strerror(errno));
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static void on_minted(void *ud, int status)
{
    *(int *)ud = status ? status : 1;
}

/* A new platform principal named "admin" whose token ends in
 * <data>/admin.token. The token is staged in admin.token.tmp first, the
 * PrincipalCreated event is made durable (the loop runs until it is), and
 * only then does the file replace admin.token: a crash before the event
 * leaves no principal and the old admin.token untouched; a crash after it
 * leaves the working token in admin.token.tmp. */
static int mint_platform(osse_engine_t *e, char id[40], osse_err_t *err)
{
    char token[OSSE_TOKEN_LEN], h[65], stream[64];
    osse__new_token(token, h);
    int rc = stage_token_file(e->data_dir, token, err);
    sodium_memzero(token, sizeof token);
    if (rc)
        return rc;
    osse_logf(OSSE_LEVEL_INFO, "admin token written", "path=%s/admin.token", e->data_dir);
    osse__random_id(id, 8, "p-");
    osse__stream(stream, sizeof stream, OSSE_SK_PRINCIPAL, id);
    osse__emit(e, stream, OSSE_EV_PrincipalCreated, NULL,
               json_pack("{s:s,s:s,s:s,s:s}", "id", id, "role", "platform", "name", "admin",
                         "token_hash", h));
    int done = 0;
    osse_engine_hold(e, on_minted, &done);
    while (!done)
        uv_run(e->loop, UV_RUN_ONCE);
    if (done != 1) /* the event is not durable: admin.token stays as it was */
        return osse_err_set(err, done, "the new principal cannot be written to the log: %s",
                            osse_strerror(done));
    return publish_token_file(e->data_dir, err);
}

int osse_engine_mint_platform(osse_engine_t *e, char id[40], char *path, size_t pathlen,
                              osse_err_t *err)
{
    int rc = mint_platform(e, id, err);
    if (!rc)
        snprintf(path, pathlen, "%s/admin.token", e->data_dir);
    return rc;
}

/* The key store and the master key (SPEC §8). Both are made only with a
 * new data folder (a log without events): a log with events but no key
 * store was written before encryption existed, and is refused. */
static int keys_open(osse_engine_t *e, const osse_engine_opts_t *opts, osse_err_t *err)
{
    char ks[4096], mk[4096], check[4200];
    snprintf(ks, sizeof ks, "%s", opts->key_store ? opts->key_store : "");
    snprintf(mk, sizeof mk, "%s", opts->master_key ? opts->master_key : "");
    if (!opts->key_store)
        snprintf(ks, sizeof ks, "%s/keys", opts->data_dir);
    if (!opts->master_key)
        snprintf(mk, sizeof mk, "%s/master.key", opts->data_dir);
    uint64_t events = osse_log_last_seq(e->log);
    snprintf(check, sizeof check, "%s/keystore", ks);
    struct stat st;
    if (events > 0 && stat(check, &st) != 0 && errno == ENOENT)
        return osse_err_set(err, OSSE_ENOTFOUND,
                            "the data folder %s has a log (%llu event(s)) but no key store at %s: "
                            "give the --key-store DIR it was made with; a data folder written "
                            "before encryption existed cannot be served by this version (it "
                            "encrypts personal data): start a new data folder",
                            opts->data_dir, (unsigned long long)events, ks);
    return osse_keystore_open(ks, mk, events == 0, &e->keystore, err);
}

/* Under --test-clock, the tracking codes' domain in bits (even, 2 to 50;
 * trackcode.h), so that a test sees it used up. */
#define CODE_BITS_HOOK "OSSE_TEST_CODE_BITS"

/* The tracking codes' key: derived from the master key, so the same for
 * the data folder's life (a code made under another key could equal one
 * made under this). */
static void codes_open(osse_engine_t *e)
{
    osse_keystore_derive(e->keystore, "osse-trk", 1, e->code_key, sizeof e->code_key);
    const char *hook = e->test_clock ? getenv(CODE_BITS_HOOK) : NULL;
    long bits = hook ? strtol(hook, NULL, 10) : 0;
    e->code_bits =
        bits >= 2 && bits <= OSSE_CODE_BITS && bits % 2 == 0 ? (unsigned)bits : OSSE_CODE_BITS;
}

typedef struct {
    osse_engine_t *e;
    osse_keyref_t *stale; /* ids strdup'd; loc.seg 0: where unknown yet */
    size_t nstale, cstale;
    osse_map_t erase;   /* kdel/'s ids */
    osse_map_t pending; /* the ids of keys whose events may not be durable (storage/log.h) */
    osse_map_t records; /* the names of the pending records that list them */
    osse_map_t tail;    /* the last segment's ids -> (seg << 32 | off) */
    char **where_ids;   /* a whole read: the locations to write (storage/log.h) */
    osse_keyloc_t *where_locs;
    size_t nwhere, cwhere;
    bool write_where;
} keyload_t;

static void stale_add(keyload_t *kl, const char *id, osse_keyloc_t loc)
{
    OSSE_VEC_PUSH(kl->stale, kl->nstale, kl->cstale, ((osse_keyref_t){osse_strdup(id), loc}));
}

/* Whether an ended request of id is on disk (an open one is in memory at
 * every start). */
static bool request_on_disk(osse_engine_t *e, const char *id)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = osse__record_get_ended(e->log, id, &v, &vl, NULL);
    free(v);
    return rc != OSSE_ENOTFOUND; /* an error keeps the key */
}

/* Whether the key of id, in memory or not, is one no event or record will
 * ever need: its request's first event never became durable (a crash
 * between the key's fsync and the log's), or its file's record never
 * did, or its erasure stopped before the key store's rewrite. */
static bool key_stale(keyload_t *kl, const char *id, bool whole)
{
    osse_engine_t *e = kl->e;
    if (osse_map_get(&kl->erase, id) || osse__erasure_stale_key(e, id))
        return true;
    if (osse__request(e, id) || osse__files_known(e, id))
        return false;
    /* A file's key is stale without its record (files.c keeps in memory
     * only the files of open work: the others' records are on disk). */
    if (strncmp(id, "f-", 2) == 0)
        return !osse__files_on_disk(e, id);
    if (!osse_map_get(&kl->pending, id))
        /* Without a pending record its events are durable, but for a
         * start that replayed every event, which knows them all. */
        return whole && !e->some_evicted;
    /* A pending record lists every id of its write of keys until the
     * last is taken: one listed may be a request that ended and is on
     * disk only (storage/log.h). */
    return !request_on_disk(e, id);
}

/* A whole read of the key store (a data folder whose keys have no
 * locations yet, or --check-views): every key looked at. */
static int key_one(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES], osse_keyloc_t loc)
{
    keyload_t *kl = ud;
    if (key_stale(kl, id, true)) {
        stale_add(kl, id, loc);
        if (strncmp(id, "f-", 2) == 0)
            osse__files_orphan(kl->e, id);
        return 0;
    }
    if (kl->write_where) {
        OSSE_VEC_RESERVE(kl->where_ids, kl->cwhere, kl->nwhere + 1);
        kl->where_locs = osse_realloc(kl->where_locs, kl->cwhere * sizeof *kl->where_locs);
        kl->where_ids[kl->nwhere] = osse_strdup(id);
        kl->where_locs[kl->nwhere++] = loc;
    }
    /* Only what is in memory keeps its key there (cache.c reads the
     * others' with their records). */
    if (!osse__request(kl->e, id) && !osse__files_known(kl->e, id))
        return 0;
    return osse__pii_key_set(kl->e, id, key);
}

/* The last segment, in a start that reads keys by location: what a crash
 * may have left without a location record. */
static int tail_one(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES], osse_keyloc_t loc)
{
    (void)key;
    keyload_t *kl = ud;
    return osse_map_put(&kl->tail, id, (void *)(uintptr_t)((uint64_t)loc.seg << 32 | loc.off));
}

/* An id after its prefix into a map. */
static int id_into(osse_map_t *m, const void *key, size_t klen, size_t pl)
{
    char id[128];
    if (klen > pl && klen - pl < sizeof id) {
        memcpy(id, (const char *)key + pl, klen - pl);
        id[klen - pl] = '\0';
        osse_map_put(m, id, (void *)1);
    }
    return 0;
}

static int erase_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    return id_into(&((keyload_t *)ud)->erase, key, klen, OSSE_KEY_LEN(OSSE_KEY_KEY_ERASE));
}

static int pending_one(void *ud, const char *name, const char *id)
{
    keyload_t *kl = ud;
    osse_map_put(&kl->pending, id, (void *)1);
    osse_map_put(&kl->records, name, (void *)1);
    return 0;
}

static void unmark_free(osse_engine_t *e)
{
    for (size_t i = 0; i < e->nunmark; i++)
        free(e->unmark[i]);
    free(e->unmark);
    e->unmark = NULL;
    e->nunmark = e->cunmark = e->nunmark_erase = 0;
}

/* The ids whose keys a start by location reads: what is in memory. */
typedef struct {
    const char **ids;
    size_t n, c;
} idlist_t;

static void id_mark(void *ud, const char *id)
{
    osse_map_put(ud, id, (void *)1);
}

static void id_push(void *ud, const char *id)
{
    idlist_t *l = ud;
    OSSE_VEC_PUSH(l->ids, l->n, l->c, id);
}

/* A part of the keys a start reads (keys_read_all). */
typedef struct {
    osse_log_t *log;
    osse_keystore_t *ks;
    const char *const *ids;
    size_t n;
    uint8_t *keys;
    bool *found;
    int rc;
    osse_err_t err;
} keypart_t;

static void keypart_run(void *arg)
{
    keypart_t *p = arg;
    p->rc = osse_log_keys_read(p->log, p->ks, p->ids, p->n, p->keys, p->found, &p->err);
}

/* osse_log_keys_read of the n ids, in as many parts as there are cores (at
 * most 4), each on its own thread but the first: the point reads of the
 * keys' locations are most of a start's time for its keys. Before the loop
 * runs. */
static int keys_read_all(osse_engine_t *e, const char *const *ids, size_t n, uint8_t *keys,
                         bool *found, osse_err_t *err)
{
    enum { PARTS_MAX = 4, PART_MIN = 16 };
    keypart_t parts[PARTS_MAX];
    uv_thread_t tid[PARTS_MAX];
    bool started[PARTS_MAX] = {false};
    size_t np = uv_available_parallelism();
    np = np > PARTS_MAX ? PARTS_MAX : np ? np : 1;
    if (n / np < PART_MIN)
        np = n / PART_MIN ? n / PART_MIN : 1;
    for (size_t i = 0, from = 0; i < np; i++) {
        size_t to = i + 1 == np ? n : from + n / np;
        parts[i] = (keypart_t){
            e->log,       e->keystore, ids + from, to - from, keys + from * OSSE_KEY_BYTES,
            found + from, 0,           {0}};
        from = to;
    }
    for (size_t i = 1; i < np; i++)
        started[i] = uv_thread_create(&tid[i], keypart_run, &parts[i]) == 0;
    keypart_run(&parts[0]);
    for (size_t i = 1; i < np; i++) {
        if (started[i])
            uv_thread_join(&tid[i]);
        else
            keypart_run(&parts[i]); /* no thread: here */
    }
    for (size_t i = 0; i < np; i++)
        if (parts[i].rc) {
            osse_err_set(err, parts[i].rc, "%s", parts[i].err.msg);
            return parts[i].rc;
        }
    return 0;
}

/* A start by location: the candidates for removal (the erasures' intents,
 * the pending records, the last segment's file keys), then the keys of
 * what is in memory, read where they are. */
static int keys_by_location(osse_engine_t *e, keyload_t *kl, osse_err_t *err)
{
    int rc = osse_keystore_load_tail(e->keystore, tail_one, kl, err);
    const char *k;
    void *v;
    for (size_t it = 0; !rc && osse_map_next(&kl->tail, &it, &k, &v);)
        if (strncmp(k, "f-", 2) == 0 && key_stale(kl, k, false)) {
            stale_add(kl, k,
                      (osse_keyloc_t){(uint32_t)((uintptr_t)v >> 32), (uint32_t)(uintptr_t)v});
            osse__files_orphan(e, k);
        }
    /* The files held by erased requests' pii fields whose removal did not
     * finish (erasure.c) are among the files. */
    osse_map_t files;
    osse_map_init(&files);
    osse__files_each(e, id_mark, &files);
    osse_map_t *cands[] = {&kl->erase, &kl->pending, &files};
    for (size_t c = 0; !rc && c < 3; c++)
        for (size_t it = 0; !rc && osse_map_next(cands[c], &it, &k, NULL);) {
            if ((c >= 1 && osse_map_get(&kl->erase, k)) ||
                (c == 2 && osse_map_get(&kl->pending, k)))
                continue; /* a pass before had it */
            if (!key_stale(kl, k, false))
                continue;
            /* An upload a crash stopped before its record (files.c): its
             * bytes, if any, go with its key. */
            if (strncmp(k, "f-", 2) == 0)
                osse__files_orphan(e, k);
            osse_keyloc_t loc = {0, 0};
            int r = osse_log_key_where(e->log, k, &loc, err);
            uintptr_t t = (uintptr_t)osse_map_get(&kl->tail, k);
            if (r == OSSE_ENOTFOUND && t)
                loc = (osse_keyloc_t){(uint32_t)(t >> 32), (uint32_t)t};
            else if (r && r != OSSE_ENOTFOUND)
                rc = r;
            if (!rc && loc.seg)
                stale_add(kl, k, loc);
        }
    osse_map_close(&files);
    if (rc)
        return rc;
    /* The keys of what is in memory. */
    idlist_t l = {0};
    for (size_t it = 0; osse_map_next(&e->requests, &it, &k, NULL);)
        if (!key_stale(kl, k, false))
            id_push(&l, k);
    osse__files_each(e, id_push, &l);
    uint8_t *keys = l.n ? sodium_malloc(l.n * OSSE_KEY_BYTES) : NULL;
    bool *found = osse_calloc(l.n ? l.n : 1, sizeof *found);
    if (l.n && !keys)
        rc = osse_err_set(err, OSSE_ENOMEM, "no memory for keys");
    if (!rc && l.n)
        rc = keys_read_all(e, l.ids, l.n, keys, found, err);
    size_t missing = 0;
    for (size_t i = 0; !rc && i < l.n; i++) {
        if (!found[i])
            missing++;
        else if (!key_stale(kl, l.ids[i], false))
            rc = osse__pii_key_set(e, l.ids[i], keys + i * OSSE_KEY_BYTES);
    }
    if (missing)
        /* A file swept or erased whose record went before its key, or a
         * request written by an osse that kept no locations: its values
         * read as "[encrypted]". */
        osse_logf(OSSE_LEVEL_WARN, "keys not found", "count=%zu", missing);
    sodium_free(keys);
    free(found);
    free(l.ids);
    return rc;
}

/* With --test-clock only: OSSE_TEST_FORGET_KEY_LOCATIONS=1 deletes every
 * key's location before the start reads the keys, so that the start reads
 * the key store whole and writes them again, as the first start of this
 * version does on a data folder an older one wrote. */
#define FORGET_HOOK "OSSE_TEST_FORGET_KEY_LOCATIONS"

/* After the start's reads and the file records (osse__files_load): the
 * keys of what is in memory into e->keys (the others are read with their
 * requests, cache.c), keys of nothing removed (SPEC §8). A data folder
 * whose keys have no locations yet (an osse before them wrote it) is read
 * whole once and given them. Before the loop runs, so it may block. */
static int keys_load(osse_engine_t *e, bool whole, osse_err_t *err)
{
    keyload_t kl = {.e = e};
    osse_map_init(&kl.erase);
    osse_map_init(&kl.pending);
    osse_map_init(&kl.records);
    osse_map_init(&kl.tail);
    int rc = osse_log_kv_scan(e->log, OSSE_KEY_KEY_ERASE, OSSE_KEY_LEN(OSSE_KEY_KEY_ERASE),
                              erase_one, &kl, err);
    if (!rc)
        rc = osse_log_keys_pending_scan(e->log, pending_one, &kl, err);
    /* Tests: a data folder an osse before key locations wrote. */
    const char *forget = getenv(FORGET_HOOK);
    if (!rc && e->test_clock && forget && strcmp(forget, "1") == 0)
        rc = osse_log_keys_where_forget(e->log, err);
    bool located = osse_log_keys_where_ready(e->log);
    kl.write_where = !located;
    uint64_t t0 = uv_hrtime();
    if (!rc && (whole || !located))
        rc = osse_keystore_load(e->keystore, key_one, &kl, err);
    else if (!rc)
        rc = keys_by_location(e, &kl, err);
    if (!rc)
        osse_logf(OSSE_LEVEL_INFO, "keys read", "keys=%zu whole=%s load_ms=%.1f", e->keys.len,
                  whole || !located ? "yes" : "no", (double)(uv_hrtime() - t0) / 1e6);
    /* The locations a whole read found, then the mark that every key has
     * one: from the next start on, keys are read where they are. */
    for (size_t i = 0; !rc && i < kl.nwhere; i += 4096) {
        size_t n = kl.nwhere - i < 4096 ? kl.nwhere - i : 4096;
        rc = osse_log_keys_where_put(e->log, (const char *const *)kl.where_ids + i,
                                     kl.where_locs + i, n, err);
    }
    if (!rc && !located) {
        rc = osse_log_keys_where_done(e->log, err);
        if (!rc)
            osse_logf(OSSE_LEVEL_INFO, "key locations written", "keys=%zu", kl.nwhere);
    }
    /* One rewrite per segment that holds any of them. They are mostly the
     * reserve's unused keys of the last run (pii.c): at most its size, in
     * the last one or two segments. */
    if (!rc && kl.nstale) {
        t0 = uv_hrtime();
        rc = osse_keystore_remove(e->keystore, kl.stale, kl.nstale, err);
        const char **ids = osse_malloc(kl.nstale * sizeof *ids);
        for (size_t i = 0; i < kl.nstale; i++)
            ids[i] = kl.stale[i].id;
        if (!rc)
            rc = osse_log_keys_where_put(e->log, ids, NULL, kl.nstale, err);
        free(ids);
        if (!rc)
            osse_logf(OSSE_LEVEL_INFO, "keys without events removed", "keys=%zu remove_ms=%.1f",
                      kl.nstale, (double)(uv_hrtime() - t0) / 1e6);
    }
    /* The erasures finished and the pending records (their keys are gone,
     * or taken): deleted once the writer runs (unmark). */
    const char *k;
    for (size_t it = 0; !rc && osse_map_next(&kl.erase, &it, &k, NULL);)
        OSSE_VEC_PUSH(e->unmark, e->nunmark, e->cunmark, osse_strdup(k));
    e->nunmark_erase = e->nunmark;
    for (size_t it = 0; !rc && osse_map_next(&kl.records, &it, &k, NULL);)
        OSSE_VEC_PUSH(e->unmark, e->nunmark, e->cunmark, osse_strdup(k));
    osse_map_close(&kl.erase);
    osse_map_close(&kl.pending);
    osse_map_close(&kl.records);
    osse_map_close(&kl.tail);
    for (size_t i = 0; i < kl.nstale; i++)
        free((char *)kl.stale[i].id);
    free(kl.stale);
    for (size_t i = 0; i < kl.nwhere; i++)
        free(kl.where_ids[i]);
    free(kl.where_ids);
    free(kl.where_locs);
    return rc;
}

int osse_engine_open(const osse_engine_opts_t *opts, uv_loop_t *loop, osse_engine_t **out,
                     osse_err_t *err)
{
    if (sodium_init() < 0)
        return osse_err_set(err, OSSE_EIO, "libsodium cannot start");
    if (opts->partition_first >= OSSE_PARTITIONS ||
        opts->partition_count > OSSE_PARTITIONS - opts->partition_first)
        return osse_err_set(err, OSSE_EINVAL, "partitions %u+%u: not within 0-%d",
                            opts->partition_first, opts->partition_count, OSSE_PARTITIONS - 1);
    osse_engine_t *e = engine_new();
    replay_t rp = {.e = e};
    e->part_first = opts->partition_count ? opts->partition_first : 0;
    e->part_last = opts->partition_count ? opts->partition_first + opts->partition_count - 1
                                         : OSSE_PARTITIONS - 1;
    e->loop = loop;
    e->data_dir = osse_strdup(opts->data_dir);
    e->test_clock = opts->test_clock;
    e->allow_private_urls = opts->allow_private_urls;
    e->on_fail = opts->on_fail;
    e->on_fail_ud = opts->on_fail_ud;
    e->clock = opts->test_clock_start ? opts->test_clock_start : osse_time_real_ms();
    int rc;
    char dbdir[4096];
    snprintf(dbdir, sizeof dbdir, "%s/log", opts->data_dir);
    struct stat st;
    if (opts->offline && stat(dbdir, &st) != 0) {
        /* Maintenance never creates a data folder: a typo would otherwise
         * make an empty one and report success. */
        rc = osse_err_set(err, OSSE_ENOTFOUND,
                          "%s holds no osse log (start `osse serve --data %s` once: it makes "
                          "the first token)",
                          opts->data_dir, opts->data_dir);
        goto fail;
    }
    if (mkdir(opts->data_dir, 0700) != 0 && errno != EEXIST) {
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", opts->data_dir, strerror(errno));
        goto fail;
    }
    if ((rc = osse_log_open_with(dbdir, opts->log_compression, &e->log, err))) {
        if (rc == OSSE_EBUSY)
            osse_err_set(err, rc,
                         "the data folder %s is in use by another osse process (RocksDB lock "
                         "held); stop it first",
                         opts->data_dir);
        goto fail;
    }
    /* Maintenance (osse token) seals nothing and needs no keys. */
    if (!opts->offline && (rc = keys_open(e, opts, err)))
        goto fail;
    if (e->keystore)
        codes_open(e);
    e->replaying = true;
    uint64_t t0 = uv_hrtime();
    bool from_records = !opts->rebuild_views && osse__records_ready(e);
    if (from_records) {
        rc = start_from_records(e, opts->check_views, &rp.err);
        if (!rc)
            osse_logf(OSSE_LEVEL_INFO, "records read", "events=%llu requests=%zu load_ms=%.1f",
                      (unsigned long long)e->applied, e->nrequests,
                      (double)(uv_hrtime() - t0) / 1e6);
    } else {
        rc = osse_log_scan(e->log, 1, replay_one, &rp, err);
        if (!rc)
            osse_logf(OSSE_LEVEL_INFO, "log replayed", "events=%llu replay_ms=%.1f",
                      (unsigned long long)e->applied, (double)(uv_hrtime() - t0) / 1e6);
    }
    e->replaying = false;
    if (rc) {
        /* Say which event stopped the replay (its seq) and why. */
        if (rp.err.msg[0])
            osse_err_set(err, rc, "the log in %s cannot be replayed: %s", dbdir, rp.err.msg);
        else if (!err || !err->msg[0])
            osse_err_set(err, rc, "the log in %s cannot be replayed", dbdir);
        goto fail;
    }
    /* The file records first: their keys are kept. */
    if (e->keystore && ((rc = osse__files_load(e, err)) ||
                        (rc = keys_load(e, !from_records || opts->check_views, err))))
        goto fail;
    if (!opts->bench_without_tree && (rc = osse__audit_open(e, opts->origin, err)))
        goto fail;
    osse_log_kv_scan(e->log, OSSE_KEY_AGENCY_SECRET, OSSE_KEY_LEN(OSSE_KEY_AGENCY_SECRET),
                     load_secret, e, NULL);
    osse_log_kv_scan(e->log, OSSE_KEY_AGENCY_OLD_SECRET, OSSE_KEY_LEN(OSSE_KEY_AGENCY_OLD_SECRET),
                     load_old_secret, e, NULL);
    if ((rc = osse__commit_start(e, opts, err)))
        goto fail;
    /* What keys_load finished goes to the writer now (no loop runs yet to
     * flush it): the erasures' intents, the keys' pending records. */
    for (size_t i = 0; i < e->nunmark; i++) {
        osse__batch_need(e);
        if (i < e->nunmark_erase)
            osse__erasure_intent(e, e->unmark[i], false);
        else if (osse_batch_keys_pending_done(e->batch, e->unmark[i]))
            osse__panic(__FILE__, __LINE__, "out of memory");
    }
    unmark_free(e);
    if (e->batch)
        osse__commit_flush(e);
    if (!from_records && (rc = records_migrate(e, rp.catalog, rp.ncatalog, err)))
        goto fail;
    free(rp.catalog);
    rp.catalog = NULL;
    char first[40];
    if (e->principals.len == 0 && !opts->offline && (rc = mint_platform(e, first, err)))
        goto fail;
    osse__audit_started(e);
    if (opts->offline) {
        /* No deliveries, deadlines or lookups: those are the server's. Events
         * written offline are stamped with the real time, never before the
         * log's last event. */
        e->test_clock = true;
        e->clock = osse_time_real_ms() > e->last_at ? osse_time_real_ms() : e->last_at;
        *out = e;
        return 0;
    }
    if ((rc = osse__notify_open(e, opts, err)))
        goto fail;
    if (e->test_clock)
        test_clock_resume(e, opts->test_clock_start);
    if ((rc = osse__idem_start(e, err)))
        goto fail;
    e->due_window = opts->due_window ? opts->due_window : OSSE__DUE_WINDOW;
    /* Serving: ended requests leave memory past the cache (cache.c); a
     * replay or a maintenance engine keeps every one. */
    e->cache_max = opts->request_cache == OSSE_REQUEST_CACHE_NONE ? 0
                   : opts->request_cache                          ? opts->request_cache
                                                                  : OSSE_REQUEST_CACHE;
    if (osse__timers_start(e, from_records)) {
        rc = osse_err_set(err, OSSE_EIO, "cannot start the deadline timer");
        goto fail;
    }
    /* What fell due while the process was down fires now, once. */
    osse__timers_fire(e, osse_engine_now(e), e->test_clock);
    if (e->test_clock)
        osse__test_clock_store(e);
    if ((rc = osse__linkage_start(e))) {
        osse_err_set(err, rc, "cannot start the linkage lookups");
        goto fail;
    }
    if ((rc = osse__files_start(e, err)))
        goto fail;
    /* Serving now: request keys are made durable ahead, off the path of a
     * submission (pii.c). */
    size_t reserve = opts->key_reserve > 0 ? (size_t)opts->key_reserve : OSSE__KEY_RESERVE;
    osse__pii_reserve_start(e, opts->key_reserve < 0 ? 0 : reserve);
    /* The start read every record: the cache is trimmed at once. */
    osse__cache_trim(e);
    *out = e;
    return 0;
fail:
    unmark_free(e);
    free(rp.catalog);
    osse_engine_stop(e);
    osse_engine_close(e);
    return rc;
}

void osse_engine_stop(osse_engine_t *e)
{
    if (!e)
        return;
    osse__pii_reserve_stop(e);
    osse__notify_stop(e);
    osse__commit_flush(e);
    osse__audit_stop(e); /* signs the final head: a last batch */
    osse__commit_flush(e);
    osse__commit_stop(e);
    osse__timers_stop(e);
    osse__linkage_stop(e);
    osse__files_stop(e);
    osse_log_stop(e->log);
}

void osse_engine_close(osse_engine_t *e)
{
    if (!e)
        return;
    osse_log_close(e->log);
    osse__pii_keys_free(e);
    osse_keystore_close(e->keystore);
    sodium_memzero(e->code_key, sizeof e->code_key);
    osse__notify_free(e);
    osse__files_close(e);
    /* The list of requests not ended holds those whose status says so, and
     * only those (a check of apply.c's bookkeeping at every close). */
    size_t nopen = 0;
    for (const osse_request_t *r = e->open.first; r; r = r->open_next, nopen++)
        OSSE_PRE(!osse__rstatus_final(r->status));
    OSSE_PRE(nopen == e->open.n && nopen == e->by_status[OSSE_RS_IN_PROGRESS] +
                                                e->by_status[OSSE_RS_AWAITING_INFO] +
                                                e->by_status[OSSE_RS_AWAITING_PAYMENT]);
    /* Requests first: they borrow their workflow's steps. */
    for (size_t c = 0; c < e->nslots; c++) {
        for (size_t i = 0; e->slots[c] && i < OSSE__SLOT_CHUNK; i++)
            osse__request_free(e->slots[c]->at[i]); /* NULL-safe: an empty slot */
        free(e->slots[c]);
    }
    free(e->slots);
    e->last_request = NULL;
    size_t it = 0;
    void *v;
    while (osse_map_next(&e->workflows, &it, NULL, &v)) {
        osse_wfent_t *w = v;
        for (size_t i = 0; i < w->nversions; i++) {
            osse_wf_free(w->versions[i]);
            free(w->texts[i]);
        }
        free(w->versions);
        free(w->texts);
        free(w->licence_years);
        free(w->id);
        free(w);
    }
    it = 0;
    while (osse_map_next(&e->agencies, &it, NULL, &v)) {
        osse_agency_t *a = v;
        free(a->id);
        free(a->name);
        free(a->webhook_url);
        free(a->lookup_url);
        free(a->biller_id);
        free(a->active);
        sodium_memzero(a->secret, sizeof a->secret); /* a freed secret leaves no copy behind */
        free(a);
    }
    it = 0;
    while (osse_map_next(&e->calendars, &it, NULL, &v)) {
        osse_calendar_ent_t *c = v;
        free(c->id);
        json_decref(c->body);
        osse_calendar_close(&c->cal);
        free(c);
    }
    it = 0;
    while (osse_map_next(&e->principals, &it, NULL, &v)) {
        osse_principal_t *p = v;
        free(p->id);
        free(p->agency);
        free(p->name);
        free(p);
    }
    it = 0;
    while (osse_map_next(&e->subs, &it, NULL, &v))
        osse__sub_free(v);
    it = 0;
    while (osse_map_next(&e->idem, &it, NULL, &v)) {
        osse_idem_t *i = v;
        free(i->body);
        free(i);
    }
    free(e->idem_order);
    osse_map_close(&e->workflows);
    osse_map_close(&e->agencies);
    osse_map_close(&e->calendars);
    osse_map_close(&e->principals);
    osse_map_close(&e->tokens);
    osse_map_close(&e->requests);
    it = 0;
    while (osse_map_next(&e->names, &it, NULL, &v))
        json_decref(v);
    osse_map_close(&e->names);
    osse_map_close(&e->codes);
    const char *rk;
    void *rv;
    for (size_t it = 0; osse_map_next(&e->task_rows, &it, &rk, &rv);) {
        osse_task_row_t *row = rv;
        free(row->agency);
        free(row->workflow);
        free(row);
    }
    osse_map_close(&e->task_rows);
    osse_map_close(&e->versions);
    osse_map_close(&e->idem);
    osse_map_close(&e->references);
    osse_map_close(&e->payments);
    osse_map_close(&e->pay_answers);
    osse_map_close(&e->subs);
    osse_map_close(&e->licnums);
    free(e->lexp);
    free(e->due_pend);
    osse_batch_free(e->batch);
    free(e->dirty);
    osse_buf_close(&e->enc);
    osse_buf_close(&e->form_enc);
    osse__ix_free(e);
    free(e->holds);
    free(e->timers);
    free(e->inflight);
    osse__audit_close(e);
    osse__linkage_free(e);
    free(e->data_dir);
    free(e);
}

int osse_q_metrics(osse_engine_t *e, char **out, size_t *len)
{
    osse_buf_t b;
    osse_buf_init(&b, 0);
    osse__views_metrics(e, &b);
    if (osse__commit_metrics(e, &b)) {
        osse_buf_close(&b);
        return OSSE_ENOMEM;
    }
    osse__notify_metrics(e, &b);
    if (osse__pii_metrics(e, &b) || osse__cache_metrics(e, &b)) {
        osse_buf_close(&b);
        return OSSE_ENOMEM;
    }
    *out = osse_buf_take(&b, len);
    return 0;
}
