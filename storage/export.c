/* export.c: writing and verifying the audit export (format: export.h and
 * docs/audit.md).
 *
 * Invariant of the reader: a field is read only after the bytes it needs are
 * present (src_need), memory grows only with bytes actually read, every byte
 * read before the closing signature goes into the running SHA-256 that the
 * signature covers, and every failure records the offset and the first bad
 * event or head before returning. The reader stops at the first problem.
 *
 * Why this way (issue 13): a file is read in large chunks (no small read per
 * field, no copy unless a field straddles two chunks), each event is checked
 * without building it (osse_event_check), and the running SHA-256 of the
 * closing signature is computed on a second thread, chunk by chunk in file
 * order, while this one checks the events: the verifier's three costs were
 * small reads, building JSON per event, and hashing every byte twice.
 */
#include "storage/export.h"

/* The low-level SHA-256 calls, as merkle.c's leaf hash: see tree_push. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/time.h"
#include "storage/event.h"
#include "storage/merkle.h"

static const char MAGIC[8] = {'O', 'S', 'S', 'E', '-', 'L', 'O', 'G'};
static const char END[8] = {'O', 'S', 'S', 'E', '-', 'E', 'N', 'D'};
#define HEAD_REC (8 + 8 + 32 + 64)
#define EVENT_REC_MIN (4 + 32 + 1)
/* "OSSE-END", total length, the final head, the closing signature. */
#define TRAILER (8 + 8 + HEAD_REC + 64)

/* ---- Writer ---- */

typedef struct wr_s {
    FILE *out;
    uint64_t off;
    int failed;
    osse_merkle_sha256_t sha; /* of every byte written */
} wr_t;

static void wr(wr_t *w, const void *p, size_t n)
{
    if (!w->failed && n && fwrite(p, 1, n, w->out) != n)
        w->failed = 1;
    osse_merkle_sha256_update(&w->sha, p, n);
    w->off += n;
}

static void wr_be(wr_t *w, uint64_t v, int n)
{
    uint8_t b[8];
    osse_be_put(b, v, n);
    wr(w, b, (size_t)n);
}

static void wr_head(wr_t *w, const osse_head_t *h)
{
    wr_be(w, h->size, 8);
    wr_be(w, (uint64_t)h->at_ms, 8);
    wr(w, h->root, 32);
    wr(w, h->sig, 64);
}

typedef struct heads_s {
    osse_head_t *v;
    size_t n, cap;
    const char *origin;
} heads_t;

static int collect_head(void *ud, const osse_head_t *h)
{
    heads_t *hs = ud;
    if (strcmp(h->origin, hs->origin) != 0)
        return 0; /* signed under another name: this export's key cannot check it */
    OSSE_VEC_PUSH(hs->v, hs->n, hs->cap, *h);
    return 0;
}

typedef struct ev_ctx_s {
    wr_t *w;
    osse_log_t *log;
    uint64_t to;
    osse_err_t *err;
} ev_ctx_t;

enum { STOP_AT_TO = 1 };

static int write_event(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    ev_ctx_t *c = ud;
    if (seq > c->to)
        return STOP_AT_TO;
    if (len == 0 || len > OSSE_EXPORT_EVENT_MAX)
        return osse_err_set(c->err, OSSE_EINVAL, "event %" PRIu64 " has %zu bytes", seq, len);
    /* Leaf hashes are not stored (merkle.h): stored bytes damaged at rest
     * show as the first head whose root no longer matches, whose subtree
     * hashes above level 1 are stored and signed. */
    uint8_t lh[32];
    osse_merkle_leaf_hash(bytes, len, lh);
    wr_be(c->w, len, 4);
    wr(c->w, lh, 32);
    wr(c->w, bytes, len);
    return c->w->failed ? osse_err_set(c->err, OSSE_EIO, "write failed") : 0;
}

int osse_export_write(osse_log_t *log, const osse_signer_t *signer, uint64_t from, uint64_t to,
                      FILE *out, osse_err_t *err)
{
    uint64_t last = osse_log_last_seq(log);
    const osse_verifier_t *pub = osse_signer_verifier(signer);
    heads_t hs = {NULL, 0, 0, pub->name};
    int rc = 0;
    if (from == 0 && to == 0) {
        from = 1;
        to = last;
    }
    if (from == 0 || to < from || to > last)
        return osse_err_set(err, OSSE_EINVAL,
                            "range %" PRIu64 "..%" PRIu64 " is not inside the log (1..%" PRIu64 ")",
                            from, to, last);
    /* The frontier of the tree before the range. */
    osse_merkle_t before;
    osse_merkle_store_t st = osse_merkle_log_store(log);
    if ((rc = osse_merkle_load(&before, &st, from - 1, err)))
        goto out;
    uint8_t frontier[64][32];
    size_t nf = osse_merkle_get_frontier(&before, frontier);

    uint64_t lo = from > 1 ? from - 1 : 1;
    if ((rc = osse_head_scan(log, lo, to, collect_head, &hs, err)))
        goto out;
    /* The final head, of size `to`, goes in the trailer; the heads section
     * holds the ones before it. */
    osse_head_t final;
    if (hs.n > 0 && hs.v[hs.n - 1].size == to) {
        final = hs.v[--hs.n];
    } else {
        uint8_t root[32];
        if ((rc = osse_merkle_root(log, to, root, err)))
            goto out;
        if ((rc = osse_signer_sign_head(signer, to, root, osse_time_real_ms(), &final))) {
            rc = osse_err_set(err, rc, "out of memory");
            goto out;
        }
    }

    wr_t w = {out, 0, 0, {{0}}};
    osse_merkle_sha256_init(&w.sha);
    size_t olen = strlen(pub->name);
    wr(&w, MAGIC, 8);
    wr_be(&w, OSSE_EXPORT_VERSION, 4);
    wr_be(&w, olen, 2);
    wr(&w, pub->name, olen);
    wr(&w, pub->pk, 32);
    wr_be(&w, from, 8);
    wr_be(&w, to - from + 1, 8);
    wr_be(&w, nf, 1);
    for (size_t i = 0; i < nf; i++)
        wr(&w, frontier[i], 32);
    wr_be(&w, hs.n, 4);
    for (size_t i = 0; i < hs.n; i++)
        wr_head(&w, &hs.v[i]);
    ev_ctx_t c = {&w, log, to, err};
    rc = osse_log_scan(log, from, write_event, &c, err);
    if (rc == STOP_AT_TO)
        rc = 0;
    if (rc)
        goto out;
    wr(&w, END, 8);
    wr_be(&w, w.off + TRAILER - 8, 8);
    wr_head(&w, &final);
    /* The closing signature covers every byte before it, the heads' times
     * and the header included, which nothing else signs. */
    uint8_t digest[32], sig[64];
    osse_merkle_sha256_final(&w.sha, digest);
    osse_signer_sign_digest(signer, digest, sig);
    if (!w.failed && fwrite(sig, 1, 64, out) != 64)
        w.failed = 1;
    if (w.failed || fflush(out) != 0) {
        rc = osse_err_set(err, OSSE_EIO, "writing the export failed");
        goto out;
    }
out:
    free(hs.v);
    return rc;
}

/* ---- Reader ---- */

/* Stream mode (a FILE) reads in chunks, into a ring of SRC_CHUNKS slots:
 * chunk c (0, 1, ...: file order) lives in slot c % SRC_CHUNKS. This thread
 * reads in chunk `cur`, with the next one already read. A second thread,
 * the hasher, takes every chunk as soon as it is read and, in file order,
 * keeps the running SHA-256 state before it, hashes all of it, and walks the
 * events' framing from the offset this thread gave it, computing each
 * event's leaf hash ahead of this thread (res). This thread trusts none of
 * it: it parses and checks every field itself, and takes a leaf hash from
 * res only for the very record (offset and length) it parsed, else hashes
 * the bytes itself; a mismatch is hashed again here before it fails. The
 * closing signature's digest is the state before the chunk that holds the
 * signature's first byte plus that chunk's bytes before it. A slot is read
 * again only when both threads are done with its chunk. A chunk holds
 * min(SRC_CHUNK, max(SRC_CHUNK_MIN, bytes read so far)) bytes, so memory
 * stays within a small multiple of the bytes really present. If the thread
 * cannot start, this one hashes each chunk as it reads it. */
#define SRC_CHUNKS 4
#define SRC_CHUNK (1u << 20)
#define SRC_CHUNK_MIN (64u << 10)
#define SRC_RES 16384 /* leaf hashes the hasher may keep ahead */

size_t osse__export_chunk;
uint64_t osse__export_ahead;
int osse__export_wait;

typedef struct chunk_s {
    uint8_t *p;
    size_t cap, len;
    uint64_t start; /* file offset of p[0] */
    int rd_err;
    osse_merkle_sha256_t before; /* SHA-256 state before its first byte */
} chunk_t;

typedef struct leaf_res_s {
    _Atomic uint64_t tag; /* event index + 1, stored once the rest is written */
    uint64_t off;         /* the record's file offset */
    uint64_t len;
    uint8_t hash[32];
} leaf_res_t;

typedef struct src_s {
    const uint8_t *buf; /* whole input (buffer mode) */
    size_t len;
    FILE *f;      /* or a stream */
    uint8_t *tmp; /* stream mode: a field that straddles chunks */
    size_t tcap;
    uint64_t off;
    uint64_t total;           /* bytes in the input, when known (else UINT64_MAX) */
    osse_merkle_sha256_t sha; /* of every byte consumed (buffer) / read (stream) */
    osse_export_info_t *info;
    osse_err_t *err;
    /* Stream mode. */
    chunk_t ch[SRC_CHUNKS];
    uint64_t cur;     /* the chunk this thread reads in */
    uint64_t nread;   /* chunks read so far (under mu when the hasher runs) */
    size_t pos;       /* in chunk cur */
    uint64_t read_in; /* bytes read from f */
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t hasher;
    int hasher_on, quit; /* quit under mu */
    uint64_t hdone;      /* chunks the hasher finished (under mu) */
    int walk_set;        /* 0 not yet, 1 walk from walk_off, 2 no walk (under mu) */
    uint64_t walk_off, walk_count;
    leaf_res_t *res; /* nres of them; allocated with the walk */
    size_t nres;
    _Atomic uint64_t main_j;    /* events whose leaf this thread has checked */
    _Atomic uint64_t walk_past; /* events the walk has passed (UINT64_MAX: stopped) */
} src_t;

static int fail(src_t *s, uint64_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(src_t *s, uint64_t at, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->info->offset = at;
    return osse_err_set(s->err, OSSE_ECORRUPT, "offset %" PRIu64 ": %s", at, msg);
}

/* The hasher's walk over the events' framing, across chunks. */
typedef struct walk_s {
    int on;
    uint64_t off; /* file offset of the next byte the walk wants */
    uint64_t j, count;
    int phase; /* 0 length, 1 leaf hash, 2 bytes */
    uint8_t lenb[4];
    size_t got, left;
    uint64_t rec_off, len;
    int hashing;
    SHA256_CTX ctx;
} walk_t;

static void walk_chunk(src_t *s, walk_t *w, const chunk_t *k)
{
    static const uint8_t zero = 0x00;
    if (w->on && k->len == 0) { /* the end of the input */
        w->on = 0;
        atomic_store_explicit(&s->walk_past, UINT64_MAX, memory_order_release);
    }
    if (!w->on || w->off < k->start || w->off >= k->start + k->len)
        return;
    size_t i = (size_t)(w->off - k->start);
    while (i < k->len && w->j < w->count) {
        size_t n = k->len - i;
        if (w->phase == 0) {
            if (w->got == 0)
                w->rec_off = k->start + i;
            while (n && w->got < 4) {
                w->lenb[w->got++] = k->p[i++];
                n--;
            }
            if (w->got < 4)
                break;
            w->len = osse_be_get(w->lenb, 4);
            if (w->len == 0 || w->len > OSSE_EXPORT_EVENT_MAX) {
                w->on = 0; /* this thread will name it */
                atomic_store_explicit(&s->walk_past, UINT64_MAX, memory_order_release);
                return;
            }
            w->phase = 1;
            w->left = 32;
        } else if (w->phase == 1) {
            size_t t = n < w->left ? n : w->left;
            i += t;
            w->left -= t;
            if (w->left)
                break;
            w->phase = 2;
            w->left = (size_t)w->len;
            /* Hash it only if this thread is not past it and its result
             * slot is free (this thread is done with event j - nres). */
            uint64_t mj = atomic_load_explicit(&s->main_j, memory_order_acquire);
            w->hashing = w->j >= mj && w->j < mj + s->nres;
            if (w->hashing) {
                SHA256_Init(&w->ctx);
                SHA256_Update(&w->ctx, &zero, 1);
            }
        } else {
            size_t t = n < w->left ? n : w->left;
            if (w->hashing)
                SHA256_Update(&w->ctx, k->p + i, t);
            i += t;
            w->left -= t;
            if (w->left)
                break;
            if (w->hashing) {
                leaf_res_t *r = &s->res[w->j % s->nres];
                r->off = w->rec_off;
                r->len = w->len;
                SHA256_Final(r->hash, &w->ctx);
                atomic_store_explicit(&r->tag, w->j + 1, memory_order_release);
            }
            w->j++;
            atomic_store_explicit(&s->walk_past, w->j, memory_order_release);
            w->phase = 0;
            w->got = 0;
        }
    }
    w->off = k->start + i;
}

/* Reads chunk c (= nread) into its slot; the caller knows the slot is free
 * (this thread has left chunk c - SRC_CHUNKS, and the hasher is done with
 * it). Run by the hasher while it runs, else by this thread. */
static void chunk_fill(src_t *s, uint64_t c)
{
    chunk_t *k = &s->ch[c % SRC_CHUNKS];
    size_t want = s->read_in > SRC_CHUNK_MIN ? (size_t)s->read_in : SRC_CHUNK_MIN;
    if (want > SRC_CHUNK)
        want = SRC_CHUNK;
    if (osse__export_chunk)
        want = osse__export_chunk;
    if (k->cap < want) {
        k->p = osse_realloc(k->p, want);
        k->cap = want;
    }
    k->start = s->read_in;
    k->len = fread(k->p, 1, k->cap, s->f);
    k->rd_err = k->len < k->cap && ferror(s->f);
    s->read_in += k->len;
}

/* The hasher: reads up to two chunks ahead of the one it hashes, hashes
 * every chunk in order (keeping the state before each), and walks the
 * events once this thread said where they start. */
static void *hasher_main(void *ud)
{
    src_t *s = ud;
    walk_t w;
    memset(&w, 0, sizeof w);
    pthread_mutex_lock(&s->mu);
    for (uint64_t c = 0;; c++) {
        for (;;) {
            if (s->quit)
                goto out;
            uint64_t r = s->nread;
            if (r <= c + 2 && (r < SRC_CHUNKS || s->cur > r - SRC_CHUNKS)) {
                pthread_mutex_unlock(&s->mu);
                chunk_fill(s, r);
                pthread_mutex_lock(&s->mu);
                s->nread = r + 1;
                pthread_cond_broadcast(&s->cv);
                continue;
            }
            if (r > c && s->walk_set)
                break;
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (c == 0 && s->walk_set == 1) {
            w.on = 1;
            w.off = s->walk_off;
            w.count = s->walk_count;
        } else if (c == 0) {
            atomic_store_explicit(&s->walk_past, UINT64_MAX, memory_order_release);
        }
        pthread_mutex_unlock(&s->mu);
        chunk_t *k = &s->ch[c % SRC_CHUNKS];
        /* The walk first: this thread waits for nothing but its leaves. */
        walk_chunk(s, &w, k);
        k->before = s->sha;
        osse_merkle_sha256_update(&s->sha, k->p, k->len);
        pthread_mutex_lock(&s->mu);
        s->hdone = c + 1;
        pthread_cond_broadcast(&s->cv);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Tells the hasher where the events start (walk 1) or that it will not be
 * told (walk 2); it hashes nothing before it knows. */
static void src_walk(src_t *s, int walk, uint64_t off, uint64_t count)
{
    if (!s->hasher_on)
        return;
    pthread_mutex_lock(&s->mu);
    if (!s->walk_set) {
        /* Results for as many events as are declared, up to SRC_RES. */
        if (walk == 1) {
            s->nres = count < SRC_RES ? (size_t)count : SRC_RES;
            s->res = osse_calloc(s->nres, sizeof *s->res);
        }
        s->walk_set = walk;
        s->walk_off = off;
        s->walk_count = count;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/* Waits until the hasher has finished chunk `until - 1` (0: nothing), then
 * stops it; this thread reads what is left. */
static void src_hasher_stop(src_t *s, uint64_t until)
{
    if (!s->hasher_on)
        return;
    pthread_mutex_lock(&s->mu);
    if (!s->walk_set)
        s->walk_set = 2;
    pthread_cond_broadcast(&s->cv);
    while (s->hdone < until)
        pthread_cond_wait(&s->cv, &s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->hasher, NULL);
    s->hasher_on = 0;
}

/* Moves to the next chunk (the first one at the start), once it is read.
 * Returns 0 or OSSE_EIO (read error; at: where it shows). */
static int src_next_chunk(src_t *s, uint64_t at)
{
    int first = !s->started;
    if (first) {
        s->started = 1;
        s->hasher_on = pthread_create(&s->hasher, NULL, hasher_main, s) == 0;
    }
    if (s->hasher_on) {
        pthread_mutex_lock(&s->mu);
        if (!first)
            s->cur++;
        pthread_cond_broadcast(&s->cv);
        while (s->nread <= s->cur) {
            /* The hasher reads at most two chunks past the one it hashes
             * next, and hashes only once it knows about the walk: if the
             * header spans more chunks than that, it walks nothing. */
            if (!s->walk_set && s->nread > s->hdone + 2)
                s->walk_set = 2;
            pthread_cond_broadcast(&s->cv);
            pthread_cond_wait(&s->cv, &s->mu);
        }
        pthread_mutex_unlock(&s->mu);
    } else {
        if (!first)
            s->cur++;
        if (s->nread == s->cur) {
            chunk_t *k = &s->ch[s->cur % SRC_CHUNKS];
            chunk_fill(s, s->cur);
            k->before = s->sha;
            osse_merkle_sha256_update(&s->sha, k->p, k->len);
            s->nread = s->cur + 1;
        }
    }
    s->pos = 0;
    if (s->ch[s->cur % SRC_CHUNKS].rd_err)
        return osse_err_set(s->err, OSSE_EIO, "read error at offset %" PRIu64, at);
    return 0;
}

/* Makes the next n bytes available at *p and consumes them, without hashing
 * them (in stream mode the hasher hashes what is read). *p points into a
 * chunk when the field lies in one, else into tmp, which grows by doubling
 * only as bytes arrive, so a lying length costs at most twice the bytes that
 * are really there. Valid until the next src_raw. */
static int src_raw(src_t *s, size_t n, const uint8_t **p, const char *what)
{
    if (s->buf) {
        if (n > s->len - s->off)
            return fail(s, s->len, "truncated: %s needs %zu bytes, %zu left", what, n,
                        (size_t)(s->len - s->off));
        *p = s->buf + s->off;
        s->off += n;
        return 0;
    }
    int rc;
    chunk_t *c = &s->ch[s->cur % SRC_CHUNKS];
    if (!s->started || (s->pos == c->len && c->len)) {
        if ((rc = src_next_chunk(s, s->off)))
            return rc;
        c = &s->ch[s->cur % SRC_CHUNKS];
    }
    if (n <= c->len - s->pos) {
        *p = c->p + s->pos;
        s->pos += n;
        s->off += n;
        return 0;
    }
    size_t have = 0;
    for (;;) {
        size_t take = c->len - s->pos;
        if (take > n - have)
            take = n - have;
        if (have + take > s->tcap) {
            size_t nc = s->tcap ? s->tcap : 4096;
            while (nc < have + take)
                nc *= 2;
            if (nc > n)
                nc = n;
            s->tmp = osse_realloc(s->tmp, nc);
            s->tcap = nc;
        }
        if (take) /* tmp may not exist yet */
            memcpy(s->tmp + have, c->p + s->pos, take);
        have += take;
        s->pos += take;
        if (have == n)
            break;
        if (c->len == 0) /* end of input */
            return fail(s, s->off + have, "truncated: %s needs %zu bytes, %zu left", what, n, have);
        if ((rc = src_next_chunk(s, s->off + have)))
            return rc;
        c = &s->ch[s->cur % SRC_CHUNKS];
    }
    *p = s->tmp;
    s->off += n;
    return 0;
}

/* src_raw for every field the closing signature covers (all but itself). */
static int src_need(src_t *s, size_t n, const uint8_t **p, const char *what)
{
    int rc = src_raw(s, n, p, what);
    if (!rc && s->buf)
        osse_merkle_sha256_update(&s->sha, *p, n);
    return rc;
}

/* The SHA-256 of every byte consumed so far (called once, before the
 * closing signature is read; the hasher stops). */
static void src_digest(src_t *s, uint8_t out[32])
{
    if (s->buf) {
        osse_merkle_sha256_final(&s->sha, out);
        return;
    }
    src_hasher_stop(s, s->cur + 1);
    const chunk_t *k = &s->ch[s->cur % SRC_CHUNKS];
    osse_merkle_sha256_t h = k->before;
    osse_merkle_sha256_update(&h, k->p, s->pos);
    osse_merkle_sha256_final(&h, out);
}

/* The leaf hash of the record at `at` (len bytes at p): the hasher's when it
 * computed it for this very record, else hashed here. Sets *ahead to say
 * which. */
static void src_leaf(src_t *s, uint64_t j, uint64_t at, const uint8_t *p, size_t len,
                     uint8_t out[32], int *ahead)
{
    *ahead = 0;
    if (s->res) {
        leaf_res_t *r = &s->res[j % s->nres];
        /* Tests: wait for the hasher, to see that its leaves are used. */
        while (osse__export_wait && s->hasher_on &&
               atomic_load_explicit(&r->tag, memory_order_acquire) != j + 1 &&
               atomic_load_explicit(&s->walk_past, memory_order_acquire) <= j)
            sched_yield();
        if (atomic_load_explicit(&r->tag, memory_order_acquire) == j + 1 && r->off == at &&
            r->len == len) {
            memcpy(out, r->hash, 32);
            *ahead = 1;
            osse__export_ahead++;
            return;
        }
    }
    osse_merkle_leaf_hash(p, len, out);
}

/* This thread is done with event j's leaf (the hasher may reuse its slot). */
static void src_leaf_done(src_t *s, uint64_t j)
{
    if (s->res)
        atomic_store_explicit(&s->main_j, j + 1, memory_order_release);
}

static int src_at_end(src_t *s)
{
    if (s->buf)
        return s->off == s->len;
    if (s->started) {
        if (s->pos < s->ch[s->cur % SRC_CHUNKS].len)
            return 0;
        if (s->nread > s->cur + 1)
            return s->ch[(s->cur + 1) % SRC_CHUNKS].len == 0;
    }
    int c = fgetc(s->f);
    if (c == EOF)
        return 1;
    ungetc(c, s->f);
    return 0;
}

static int src_be(src_t *s, int n, uint64_t *v, const char *what)
{
    const uint8_t *p = NULL; /* set by src_raw on success; -O3 cannot tell */
    int rc = src_need(s, (size_t)n, &p, what);
    if (!rc)
        *v = osse_be_get(p, n);
    return rc;
}

/* When the input's size is known: whether count records of at least `each`
 * bytes, followed by at least `after` bytes, fit in what is left, so that a
 * lying count is named where it stands, before anything is read for it. */
static int src_fits(src_t *s, uint64_t at, uint64_t count, uint64_t each, uint64_t after,
                    const char *what)
{
    if (s->total == UINT64_MAX)
        return 0;
    uint64_t left = s->total - s->off;
    if (left >= after && count <= (left - after) / each)
        return 0;
    return fail(s, at,
                "%s %" PRIu64 " does not fit in the file: %" PRIu64 " bytes are left, "
                "and each one needs at least %" PRIu64,
                what, count, left, each);
}

/* osse_merkle_push_hash without a put, its node hashes on a stack SHA256_CTX:
 * merkle.c's node hash goes through SHA256(), which in OpenSSL 3 fetches the
 * algorithm (a locked lookup) on every call, and that was a tenth of the
 * verifier's time (bench/README.md, issue 13). Same tree, same bytes. */
static void tree_push(osse_merkle_t *m, const uint8_t leaf_hash[32])
{
    static const uint8_t one = 0x01;
    uint8_t h[32];
    uint64_t n = m->size;
    unsigned level = 0;
    memcpy(h, leaf_hash, 32);
    while (level < 63 && (n >> level & 1)) {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, &one, 1);
        SHA256_Update(&c, m->frontier[level], 32);
        SHA256_Update(&c, h, 32);
        SHA256_Final(h, &c);
        level++;
    }
    memcpy(m->frontier[level], h, 32);
    m->size = n + 1;
}

/* Reads one 112-byte head record of the export's origin into h. */
static int read_head(src_t *s, const osse_verifier_t *hv, osse_head_t *h)
{
    const uint8_t *p = NULL; /* set by src_raw on success; -O3 cannot tell */
    int rc = src_need(s, HEAD_REC, &p, "head");
    if (rc)
        return rc;
    memset(h, 0, sizeof *h);
    memcpy(h->origin, hv->name, sizeof h->origin);
    h->size = osse_be_get(p, 8);
    h->at_ms = (int64_t)osse_be_get(p + 8, 8);
    memcpy(h->root, p + 16, 32);
    memcpy(h->sig, p + 48, 64);
    memcpy(h->key_id, hv->key_id, 4);
    return 0;
}

static int check_head_sig(src_t *s, uint64_t at, const osse_verifier_t *key, const osse_head_t *h)
{
    osse_err_t e2;
    if (osse_head_verify(key, h, &e2) == 0)
        return 0;
    s->info->bad_head = h->size;
    return fail(s, at, "head of size %" PRIu64 ": bad signature", h->size);
}

static int verify(src_t *s, const osse_verifier_t *key, osse_export_event_cb cb, void *ud)
{
    osse_export_info_t *info = s->info;
    const uint8_t *p = NULL; /* set by src_raw on success; -O3 cannot tell */
    uint64_t v, at;
    osse_head_t *heads = NULL;
    size_t nh = 0, hcap = 0;
    int rc;

    /* Header. */
    if ((rc = src_need(s, 8, &p, "magic")))
        goto out;
    if (memcmp(p, MAGIC, 8) != 0) {
        rc = fail(s, 0, "not an osse export (bad magic)");
        goto out;
    }
    at = s->off;
    if ((rc = src_be(s, 4, &v, "version")))
        goto out;
    if (v == 1) {
        rc = fail(s, at,
                  "export format version 1 is no longer read (its heads' times and "
                  "header were not signed): export the log again with this osse (version %d)",
                  OSSE_EXPORT_VERSION);
        goto out;
    }
    if (v != OSSE_EXPORT_VERSION) {
        rc = fail(s, at, "unsupported format version %" PRIu64 " (this osse reads version %d)", v,
                  OSSE_EXPORT_VERSION);
        goto out;
    }
    at = s->off;
    if ((rc = src_be(s, 2, &v, "origin length")))
        goto out;
    if (v == 0 || v > OSSE_ORIGIN_MAX) {
        rc = fail(s, at, "origin length %" PRIu64 " out of range 1..%d", v, OSSE_ORIGIN_MAX);
        goto out;
    }
    at = s->off;
    if ((rc = src_need(s, (size_t)v, &p, "origin")))
        goto out;
    osse_err_t why;
    if (osse_origin_check((const char *)p, (size_t)v, &why) != 0) {
        rc = fail(s, at, "the header's %s", why.msg);
        goto out;
    }
    memcpy(info->origin, p, (size_t)v);
    info->origin[v] = '\0';
    at = s->off;
    if ((rc = src_need(s, 32, &p, "public key")))
        goto out;
    memcpy(info->public_key, p, 32);
    osse_verifier_t hv;
    osse_verifier_init(&hv, info->origin, info->public_key);
    if (key) {
        if (sodium_memcmp(key->pk, info->public_key, 32) != 0) {
            rc = fail(s, at, "the export is signed by another key than the one given");
            goto out;
        }
        if (key->name[0] && strcmp(key->name, info->origin) != 0) {
            rc = fail(s, at - v - 2, "origin \"%s\" is not the given key's name \"%s\"",
                      info->origin, key->name);
            goto out;
        }
    }
    const osse_verifier_t *k = key ? key : &hv;
    at = s->off;
    if ((rc = src_be(s, 8, &info->first_seq, "first seq")))
        goto out;
    if (info->first_seq == 0) {
        rc = fail(s, at, "first seq is 0 (seqs start at 1)");
        goto out;
    }
    at = s->off;
    if ((rc = src_be(s, 8, &info->count, "event count")))
        goto out;
    if (info->count == 0 || info->count > UINT64_MAX - info->first_seq) {
        rc = fail(s, at, "event count %" PRIu64 " out of range", info->count);
        goto out;
    }
    if ((rc = src_fits(s, at, info->count, EVENT_REC_MIN, 1 + 4 + TRAILER, "event count")))
        goto out;
    uint64_t last = info->first_seq + info->count - 1;
    at = s->off;
    if ((rc = src_be(s, 1, &v, "frontier count")))
        goto out;
    if (v != (uint64_t)__builtin_popcountll(info->first_seq - 1)) {
        rc = fail(s, at, "frontier has %" PRIu64 " hashes; a tree of %" PRIu64 " needs %d", v,
                  info->first_seq - 1, __builtin_popcountll(info->first_seq - 1));
        goto out;
    }
    uint8_t fr[64][32];
    for (uint64_t i = 0; i < v; i++) {
        if ((rc = src_need(s, 32, &p, "frontier hash")))
            goto out;
        memcpy(fr[i], p, 32);
    }
    osse_merkle_t tree;
    osse_merkle_set_frontier(&tree, info->first_seq - 1, (const uint8_t(*)[32])fr, (size_t)v);

    /* Heads before the final one: structure and signatures now; roots as
     * the events arrive. */
    at = s->off;
    if ((rc = src_be(s, 4, &v, "head count")))
        goto out;
    if (v > OSSE_EXPORT_HEADS_MAX) {
        rc = fail(s, at, "head count %" PRIu64 " out of range 0..%u", v, OSSE_EXPORT_HEADS_MAX);
        goto out;
    }
    /* The events were found to fit: info->count * EVENT_REC_MIN cannot overflow. */
    if ((rc = src_fits(s, at, v, HEAD_REC, info->count * EVENT_REC_MIN + TRAILER, "head count")))
        goto out;
    info->heads = v + 1;
    /* Where the events start if the heads are what they claim: the hasher
     * walks from there (this thread checks everything it takes). */
    src_walk(s, 1, s->off + v * HEAD_REC, info->count);
    uint64_t min_size = info->first_seq > 1 ? info->first_seq - 1 : 1;
    for (uint64_t i = 0; i + 1 < info->heads; i++) {
        at = s->off;
        OSSE_VEC_RESERVE(heads, hcap, nh + 1); /* grows with heads actually read */
        osse_head_t *h = &heads[nh];
        if ((rc = read_head(s, &hv, h)))
            goto out;
        nh++;
        uint64_t prev = nh > 1 ? heads[nh - 2].size : min_size - 1;
        if (h->size <= prev || h->size >= last) {
            info->bad_head = h->size;
            rc = fail(s, at,
                      "head of size %" PRIu64 " out of order or outside %" PRIu64 "..%" PRIu64
                      " (the final head, of size %" PRIu64 ", is in the trailer)",
                      h->size, prev + 1, last - 1, last);
            goto out;
        }
        if ((rc = check_head_sig(s, at, k, h)))
            goto out;
    }

    /* Events. */
    size_t hi = 0;
    uint64_t seg_start = info->first_seq; /* first seq since the last checked head */
    osse_head_t fh;
    for (;;) {
        /* Check every head whose size the tree has reached (also a head at
         * first-1, which authenticates the header's frontier). */
        while (hi < nh && heads[hi].size == tree.size) {
            uint8_t r[32];
            osse_merkle_root_now(&tree, r);
            if (sodium_memcmp(r, heads[hi].root, 32) != 0) {
                info->bad_head = heads[hi].size;
                if (tree.size < info->first_seq)
                    rc = fail(s, s->off,
                              "head of size %" PRIu64 ": root does not match the header's frontier",
                              heads[hi].size);
                else
                    rc = fail(s, s->off,
                              "head of size %" PRIu64
                              ": root does not match the events (a leaf hash between seq %" PRIu64
                              " and %" PRIu64 " was changed, or the frontier)",
                              heads[hi].size, seg_start, heads[hi].size);
                goto out;
            }
            info->last_size = heads[hi].size;
            memcpy(info->last_root, r, 32);
            seg_start = heads[hi].size + 1;
            hi++;
        }
        if (info->verified == info->count)
            break;
        uint64_t seq = info->first_seq + info->verified;
        at = s->off;
        if ((rc = src_be(s, 4, &v, "event length")))
            goto out;
        if (v == 0 || v > OSSE_EXPORT_EVENT_MAX) {
            info->bad_seq = seq;
            rc = fail(s, at, "event seq %" PRIu64 ": length %" PRIu64 " out of range 1..%u", seq, v,
                      OSSE_EXPORT_EVENT_MAX);
            goto out;
        }
        uint8_t lh[32], got[32];
        if ((rc = src_need(s, 32, &p, "leaf hash")))
            goto out;
        memcpy(lh, p, 32);
        if ((rc = src_need(s, (size_t)v, &p, "event bytes"))) {
            info->bad_seq = seq;
            goto out;
        }
        int ahead;
        src_leaf(s, info->verified, at, p, (size_t)v, got, &ahead);
        /* memcmp: hashes of public bytes, nothing secret to time. */
        if (memcmp(got, lh, 32) != 0 && ahead)
            osse_merkle_leaf_hash(p, (size_t)v, got); /* trust only our own "no" */
        src_leaf_done(s, info->verified);
        if (memcmp(got, lh, 32) != 0) {
            info->bad_seq = seq;
            rc = fail(s, at, "event seq %" PRIu64 ": its bytes do not hash to its leaf hash", seq);
            goto out;
        }
        osse_err_t e2;
        uint64_t evseq = 0;
        if (osse_event_check(p, (size_t)v, &evseq, &e2) != 0) {
            info->bad_seq = seq;
            rc = fail(s, at, "event seq %" PRIu64 " does not decode: %s", seq, e2.msg);
            goto out;
        }
        if (evseq != seq) {
            info->bad_seq = seq;
            rc = fail(s, at,
                      "expected event seq %" PRIu64 ", found seq %" PRIu64
                      " (missing, duplicated or reordered events)",
                      seq, evseq);
            goto out;
        }
        tree_push(&tree, lh);
        info->verified++;
        if (cb && (rc = cb(ud, seq, p, (size_t)v)))
            goto out;
    }

    /* Trailer: the declared length, the final head, the closing signature. */
    at = s->off;
    if ((rc = src_need(s, 8, &p, "trailer")))
        goto out;
    if (memcmp(p, END, 8) != 0) {
        rc =
            fail(s, at, "expected the trailer after event %" PRIu64 " (more events than declared?)",
                 last);
        goto out;
    }
    at = s->off;
    if ((rc = src_be(s, 8, &v, "total length")))
        goto out;
    uint64_t end = s->off + HEAD_REC + 64;
    if (v != end) {
        rc = fail(s, at,
                  "the trailer declares %" PRIu64 " bytes; a file that ends after it has %" PRIu64,
                  v, end);
        goto out;
    }
    at = s->off;
    if ((rc = read_head(s, &hv, &fh)))
        goto out;
    if (fh.size != last) {
        info->bad_head = fh.size;
        rc = fail(s, at, "the final head (size %" PRIu64 ") does not cover the last event %" PRIu64,
                  fh.size, last);
        goto out;
    }
    if ((rc = check_head_sig(s, at, k, &fh)))
        goto out;
    uint8_t r[32];
    osse_merkle_root_now(&tree, r);
    if (sodium_memcmp(r, fh.root, 32) != 0) {
        info->bad_head = fh.size;
        rc = fail(s, at,
                  "the final head (size %" PRIu64 "): root does not match the events (a "
                  "leaf hash between seq %" PRIu64 " and %" PRIu64 " was changed, or the frontier)",
                  fh.size, seg_start, fh.size);
        goto out;
    }
    info->last_size = fh.size;
    memcpy(info->last_root, r, 32);
    at = s->off;
    uint8_t digest[32];
    src_digest(s, digest);
    if ((rc = src_raw(s, 64, &p, "closing signature")))
        goto out;
    if (crypto_sign_verify_detached(p, digest, 32, k->pk) != 0) {
        rc = fail(s, at,
                  "the closing signature does not verify: bytes 0..%" PRIu64
                  " are not the ones the log's key signed (a byte no other check covers was "
                  "changed, such as a head's time)",
                  at - 1);
        goto out;
    }
    if (!src_at_end(s)) {
        rc = fail(s, s->off, "extra bytes after the closing signature");
        goto out;
    }
    info->offset = s->off;
    rc = 0;
out:
    free(heads);
    return rc;
}

static void src_init(src_t *s, osse_export_info_t *info, osse_err_t *err)
{
    memset(s, 0, sizeof *s);
    memset(info, 0, sizeof *info);
    s->total = UINT64_MAX;
    s->info = info;
    s->err = err;
    osse_merkle_sha256_init(&s->sha);
}

int osse_export_verify_buf(const void *buf, size_t len, const osse_verifier_t *key,
                           osse_export_event_cb cb, void *ud, osse_export_info_t *info,
                           osse_err_t *err)
{
    osse_export_info_t local;
    static const uint8_t empty[1];
    src_t s;
    src_init(&s, info ? info : &local, err);
    s.buf = buf ? buf : empty;
    s.len = len;
    s.total = len;
    return verify(&s, key, cb, ud);
}

int osse_export_verify_file(FILE *f, const osse_verifier_t *key, osse_export_event_cb cb, void *ud,
                            osse_export_info_t *info, osse_err_t *err)
{
    osse_export_info_t local;
    src_t s;
    struct stat st;
    src_init(&s, info ? info : &local, err);
    s.f = f;
    /* A regular file's size bounds every count up front; a pipe's is not
     * known, and only the growth by bytes read bounds memory. */
    int fd = fileno(f);
    off_t pos = fd >= 0 ? ftello(f) : -1;
    if (pos >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= pos)
        s.total = (uint64_t)(st.st_size - pos);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int rc = verify(&s, key, cb, ud);
    src_hasher_stop(&s, 0); /* on a failure, before the chunks go */
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    for (int i = 0; i < SRC_CHUNKS; i++)
        free(s.ch[i].p);
    free(s.res);
    free(s.tmp);
    return rc;
}
