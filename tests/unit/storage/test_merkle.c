/* test_merkle.c: the RFC 6962 tree against a literal recomputation of the
 * RFC's definitions (MTH, PATH, PROOF): every (index, size) and every
 * (from, to) up to 300 leaves over an in-memory store, sampled pairs up to
 * 100k leaves, tampered proofs rejected, and a real RocksDB log whose tree
 * survives a reopen. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "storage/event.h"
#include "storage/log.h"
#include "storage/merkle.h"
#include "tests/test.h"

typedef uint8_t hash_t[32];

/* ---- An in-memory store: one array per level. ---- */

typedef struct mem_s {
    uint64_t cap;
    hash_t *lv[64];
    uint64_t count[64]; /* entries written per level (in order) */
} mem_t;

static void mem_init(mem_t *m, uint64_t cap)
{
    memset(m, 0, sizeof *m);
    m->cap = cap;
    for (int l = 0; l < 64 && (cap >> l); l++)
        m->lv[l] = calloc((cap >> l) + 1, sizeof(hash_t));
}

static void mem_free(mem_t *m)
{
    for (int l = 0; l < 64; l++)
        free(m->lv[l]);
}

static int mem_put(void *ud, unsigned level, uint64_t index, const uint8_t h[32])
{
    mem_t *m = ud;
    if (!m->lv[level] || index != m->count[level])
        return OSSE_EINVAL; /* hashes of a level come in index order */
    memcpy(m->lv[level][index], h, 32);
    m->count[level]++;
    return 0;
}

static int mem_get(void *ud, unsigned level, uint64_t index, uint8_t out[32], osse_err_t *err)
{
    mem_t *m = ud;
    if (level >= 64 || !m->lv[level] || index >= m->count[level])
        return osse_err_set(err, OSSE_ENOTFOUND, "missing %u/%llu", level,
                            (unsigned long long)index);
    memcpy(out, m->lv[level][index], 32);
    return 0;
}

/* ---- The reference: RFC 6962 §2.1 read literally, over leaf hashes. ---- */

static hash_t *leaves; /* leaf hashes */
static hash_t *memo;   /* memo[start * MEMO_W + len] when start,len < MEMO_W */
static uint8_t *memo_ok;
#define MEMO_W 301

static uint64_t k_of(uint64_t n)
{
    uint64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static void mth(uint64_t start, uint64_t n, uint8_t out[32])
{
    int memoable = memo && start < MEMO_W && n < MEMO_W;
    if (memoable && memo_ok[start * MEMO_W + n]) {
        memcpy(out, memo[start * MEMO_W + n], 32);
        return;
    }
    if (n == 0) {
        crypto_hash_sha256(out, (const unsigned char *)"", 0);
    } else if (n == 1) {
        memcpy(out, leaves[start], 32);
    } else {
        uint64_t k = k_of(n);
        uint8_t l[32], r[32];
        mth(start, k, l);
        mth(start + k, n - k, r);
        osse_merkle_node_hash(l, r, out);
    }
    if (memoable) {
        memcpy(memo[start * MEMO_W + n], out, 32);
        memo_ok[start * MEMO_W + n] = 1;
    }
}

static void ref_path(uint64_t m, uint64_t start, uint64_t n, hash_t *out, size_t *k)
{
    if (n <= 1)
        return;
    uint64_t kk = k_of(n);
    if (m < kk) {
        ref_path(m, start, kk, out, k);
        mth(start + kk, n - kk, out[(*k)++]);
    } else {
        ref_path(m - kk, start + kk, n - kk, out, k);
        mth(start, kk, out[(*k)++]);
    }
}

static void ref_subproof(uint64_t m, uint64_t start, uint64_t n, int b, hash_t *out, size_t *k)
{
    if (m == n) {
        if (!b)
            mth(start, n, out[(*k)++]);
        return;
    }
    uint64_t kk = k_of(n);
    if (m <= kk) {
        ref_subproof(m, start, kk, b, out, k);
        mth(start + kk, n - kk, out[(*k)++]);
    } else {
        ref_subproof(m - kk, start + kk, n - kk, 0, out, k);
        mth(start, kk, out[(*k)++]);
    }
}

static void make_leaves(uint64_t n, mem_t *store, osse_merkle_t *tree)
{
    leaves = calloc(n, sizeof(hash_t));
    mem_init(store, n);
    osse_merkle_init(tree);
    for (uint64_t i = 0; i < n; i++) {
        char bytes[32];
        int len = snprintf(bytes, sizeof bytes, "leaf %llu", (unsigned long long)i);
        osse_merkle_leaf_hash(bytes, (size_t)len, leaves[i]);
        CHECK_EQ_INT(osse_merkle_push(tree, bytes, (size_t)len, mem_put, store), 0);
    }
}

/* ---- Known answers ---- */

static void test_known_hashes(void)
{
    uint8_t h[32], e[32];
    /* The empty tree and the empty leaf (RFC 6962, CT's test vectors). */
    osse_merkle_t m;
    osse_merkle_init(&m);
    osse_merkle_root_now(&m, h);
    sodium_hex2bin(e, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 64,
                   NULL, NULL, NULL);
    CHECK(memcmp(h, e, 32) == 0);
    osse_merkle_leaf_hash("", 0, h);
    sodium_hex2bin(e, 32, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", 64,
                   NULL, NULL, NULL);
    CHECK(memcmp(h, e, 32) == 0);
    /* Level and index in the key, big-endian. */
    uint8_t key[10];
    osse_merkle_key(3, 0x0102030405060708ULL, key);
    CHECK(memcmp(key, "m\x03\x01\x02\x03\x04\x05\x06\x07\x08", 10) == 0);
}

/* ---- Every pair up to 300 ---- */

#define SMALL 300

static void test_all_pairs_small(void)
{
    mem_t store;
    osse_merkle_t tree;
    make_leaves(SMALL, &store, &tree);
    memo = calloc((size_t)MEMO_W * MEMO_W, sizeof(hash_t));
    memo_ok = calloc((size_t)MEMO_W * MEMO_W, 1);
    osse_merkle_store_t st = {mem_get, &store};
    hash_t roots[SMALL + 1];
    int bad_root = 0, bad_incl = 0, bad_cons = 0, bad_verify = 0;

    /* Roots of every size, from the store and from a frontier loaded at that
     * size (what reopening a log does). */
    for (uint64_t n = 0; n <= SMALL; n++) {
        uint8_t r[32], f[32];
        mth(0, n, roots[n]);
        CHECK_EQ_INT(osse_merkle_store_root(&st, n, r, NULL), 0);
        osse_merkle_t t2;
        CHECK_EQ_INT(osse_merkle_load(&t2, &st, n, NULL), 0);
        osse_merkle_root_now(&t2, f);
        bad_root += memcmp(r, roots[n], 32) != 0 || memcmp(f, roots[n], 32) != 0;
    }
    uint8_t now[32];
    osse_merkle_root_now(&tree, now);
    CHECK(memcmp(now, roots[SMALL], 32) == 0);
    CHECK_EQ_INT(osse_merkle_size(&tree), SMALL);

    hash_t got[OSSE_MERKLE_MAX_PROOF], want[OSSE_MERKLE_MAX_PROOF];
    for (uint64_t n = 1; n <= SMALL; n++) {
        for (uint64_t i = 0; i < n; i++) {
            size_t gn = 0, wn = 0;
            CHECK_EQ_INT(osse_merkle_store_inclusion(&st, i, n, got, &gn, NULL), 0);
            ref_path(i, 0, n, want, &wn);
            bad_incl += gn != wn || memcmp(got, want, gn * 32) != 0;
            bad_verify += osse_merkle_verify_inclusion(i, n, leaves[i], roots[n],
                                                       (const uint8_t(*)[32])got, gn, NULL) != 0;
        }
        for (uint64_t m = 1; m <= n; m++) {
            size_t gn = 0, wn = 0;
            CHECK_EQ_INT(osse_merkle_store_consistency(&st, m, n, got, &gn, NULL), 0);
            if (m < n)
                ref_subproof(m, 0, n, 1, want, &wn);
            bad_cons += gn != wn || memcmp(got, want, gn * 32) != 0;
            bad_verify += osse_merkle_verify_consistency(m, n, roots[m], roots[n],
                                                         (const uint8_t(*)[32])got, gn, NULL) != 0;
        }
    }
    CHECK_EQ_INT(bad_root, 0);
    CHECK_EQ_INT(bad_incl, 0);
    CHECK_EQ_INT(bad_cons, 0);
    CHECK_EQ_INT(bad_verify, 0);

    /* Sizes out of range. */
    size_t gn;
    CHECK_EQ_INT(osse_merkle_store_inclusion(&st, 5, 5, got, &gn, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(osse_merkle_store_consistency(&st, 0, 5, got, &gn, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(osse_merkle_store_consistency(&st, 6, 5, got, &gn, NULL), OSSE_EINVAL);
    uint8_t r[32];
    CHECK_EQ_INT(osse_merkle_store_root(&st, SMALL + 1, r, NULL), OSSE_ENOTFOUND);

    free(memo);
    free(memo_ok);
    memo = NULL;
    memo_ok = NULL;
    free(leaves);
    mem_free(&store);
}

/* ---- Tampered proofs ---- */

static void test_tampered(void)
{
    mem_t store;
    osse_merkle_t tree;
    make_leaves(100, &store, &tree);
    osse_merkle_store_t st = {mem_get, &store};
    hash_t p[OSSE_MERKLE_MAX_PROOF];
    uint8_t r37[32], r77[32], r100[32];
    size_t n;
    osse_merkle_store_root(&st, 37, r37, NULL);
    osse_merkle_store_root(&st, 77, r77, NULL);
    osse_merkle_store_root(&st, 100, r100, NULL);
    int accepted = 0;

    CHECK_EQ_INT(osse_merkle_store_inclusion(&st, 20, 77, p, &n, NULL), 0);
    const uint8_t(*cp)[32] = (const uint8_t(*)[32])p;
    CHECK_EQ_INT(osse_merkle_verify_inclusion(20, 77, leaves[20], r77, cp, n, NULL), 0);
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            p[i][i % 32] ^= (uint8_t)(1 << bit);
            accepted += osse_merkle_verify_inclusion(20, 77, leaves[20], r77, cp, n, NULL) == 0;
            p[i][i % 32] ^= (uint8_t)(1 << bit);
        }
    accepted += osse_merkle_verify_inclusion(21, 77, leaves[20], r77, cp, n, NULL) == 0;
    /* A proof binds the shape of the tree, not its exact size (leaf 20 has the
     * same path in sizes 77 and 78, as the consistency proof from 37 to 100
     * and to 128 share theirs: the signed head binds the size); a different
     * shape fails. */
    accepted += osse_merkle_verify_inclusion(20, 64, leaves[20], r77, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_inclusion(20, 129, leaves[20], r77, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_inclusion(20, 77, leaves[21], r77, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_inclusion(20, 77, leaves[20], r100, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_inclusion(20, 77, leaves[20], r77, cp, n - 1, NULL) == 0;
    accepted += osse_merkle_verify_inclusion(20, 77, leaves[20], r77, cp, n + 1, NULL) == 0;
    accepted += osse_merkle_verify_inclusion(77, 77, leaves[20], r77, cp, n, NULL) == 0;

    CHECK_EQ_INT(osse_merkle_store_consistency(&st, 37, 100, p, &n, NULL), 0);
    CHECK_EQ_INT(osse_merkle_verify_consistency(37, 100, r37, r100, cp, n, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        p[i][5] ^= 0x20;
        accepted += osse_merkle_verify_consistency(37, 100, r37, r100, cp, n, NULL) == 0;
        p[i][5] ^= 0x20;
    }
    accepted += osse_merkle_verify_consistency(37, 100, r77, r100, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 100, r37, r77, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_consistency(38, 100, r37, r100, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 129, r37, r100, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 64, r37, r100, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 100, r37, r100, cp, n - 1, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 100, r37, r100, cp, n + 1, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 100, r37, r100, cp, 0, NULL) == 0;
    accepted += osse_merkle_verify_consistency(100, 37, r100, r37, cp, n, NULL) == 0;
    accepted += osse_merkle_verify_consistency(0, 37, r100, r37, cp, 0, NULL) == 0;
    accepted += osse_merkle_verify_consistency(37, 37, r37, r100, cp, 0, NULL) == 0;
    CHECK_EQ_INT(osse_merkle_verify_consistency(37, 37, r37, r37, cp, 0, NULL), 0);
    CHECK_EQ_INT(accepted, 0);
    free(leaves);
    mem_free(&store);
}

/* ---- Sampled pairs far beyond ---- */

static void test_sampled_large(void)
{
    const uint64_t N = 100000;
    mem_t store;
    osse_merkle_t tree;
    make_leaves(N, &store, &tree);
    osse_merkle_store_t st = {mem_get, &store};
    uint64_t sizes[] = {1,     2,     3,     1023,  1024,  1025,  4095,
                        31337, 65535, 65536, 65537, 77777, 99999, 100000};
    enum { NS = sizeof sizes / sizeof sizes[0] };
    hash_t roots[NS];
    int bad = 0;
    uint32_t rnd = 12345;
    for (int i = 0; i < NS; i++) {
        uint8_t r[32];
        mth(0, sizes[i], roots[i]);
        CHECK_EQ_INT(osse_merkle_store_root(&st, sizes[i], r, NULL), 0);
        bad += memcmp(r, roots[i], 32) != 0;
    }
    uint8_t now[32];
    osse_merkle_root_now(&tree, now);
    bad += memcmp(now, roots[NS - 1], 32) != 0;
    hash_t p[OSSE_MERKLE_MAX_PROOF];
    size_t n;
    for (int i = 0; i < NS; i++) {
        for (int s = 0; s < 40; s++) {
            rnd = rnd * 1103515245u + 12345u;
            uint64_t idx = s == 0 ? 0 : s == 1 ? sizes[i] - 1 : (rnd >> 4) % sizes[i];
            CHECK_EQ_INT(osse_merkle_store_inclusion(&st, idx, sizes[i], p, &n, NULL), 0);
            bad += osse_merkle_verify_inclusion(idx, sizes[i], leaves[idx], roots[i],
                                                (const uint8_t(*)[32])p, n, NULL) != 0;
        }
        for (int j = i; j < NS; j++) {
            CHECK_EQ_INT(osse_merkle_store_consistency(&st, sizes[i], sizes[j], p, &n, NULL), 0);
            bad += osse_merkle_verify_consistency(sizes[i], sizes[j], roots[i], roots[j],
                                                  (const uint8_t(*)[32])p, n, NULL) != 0;
            if (i != j) /* and the wrong way round is refused */
                bad += osse_merkle_verify_consistency(sizes[i], sizes[j], roots[j], roots[i],
                                                      (const uint8_t(*)[32])p, n, NULL) == 0;
        }
    }
    CHECK_EQ_INT(bad, 0);

    /* Frontier round trip, as an export header carries it. */
    hash_t fr[64];
    size_t nf = osse_merkle_get_frontier(&tree, fr);
    CHECK_EQ_INT(nf, __builtin_popcountll(N));
    osse_merkle_t t2;
    CHECK_EQ_INT(osse_merkle_set_frontier(&t2, N, (const uint8_t(*)[32])fr, nf), 0);
    osse_merkle_root_now(&t2, now);
    CHECK(memcmp(now, roots[NS - 1], 32) == 0);
    CHECK_EQ_INT(osse_merkle_set_frontier(&t2, N, (const uint8_t(*)[32])fr, nf - 1), OSSE_EINVAL);
    free(leaves);
    mem_free(&store);
}

/* ---- A real log ---- */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void on_done(void *ud, int status)
{
    (*(int *)ud)++;
}

static void encode(uint64_t seq, osse_buf_t *b)
{
    osse_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.seq = seq;
    ev.stream = "request/r1";
    ev.version = (uint32_t)seq;
    ev.type = OSSE_EV_StepOpened;
    ev.at = 1764554400000 + (int64_t)seq;
    ev.actor_kind = "system";
    ev.actor_id = "";
    ev.data = json_pack("{s:I}", "n", (json_int_t)seq);
    osse_buf_init(b, 0);
    CHECK_EQ_INT(osse_event_encode(&ev, b), 0);
    json_decref(ev.data);
}

/* What the callbacks of a log that keeps the tree saw. */
typedef struct {
    osse_log_t *log;
    int done;
    uint64_t want; /* the last seq of the batches committed so far */
    uint64_t size; /* the durable tree's size in the last callback */
    uint8_t root[32];
    int short_trees; /* callbacks whose tree lacked their batch's events */
} tree_seen_t;

static void on_tree_done(void *ud, int status)
{
    tree_seen_t *t = ud;
    CHECK_EQ_INT(status, 0);
    t->done++;
    CHECK(osse_log_tree_durable(t->log, &t->size, t->root));
    /* The batches complete in order: by this one's callback, the tree holds
     * at least the events of as many batches. */
    t->short_trees += t->size < osse_log_durable_seq(t->log);
}

/* Appends `count` events in batches of 1..7, with the tree's hashes: added
 * here with osse_merkle_append, or, with seen, by the log's writer
 * (osse_log_set_tree, given m before this). */
static void append_events(osse_log_t *log, osse_merkle_t *m, uint64_t count, tree_seen_t *seen)
{
    uv_loop_t loop;
    osse_err_t err;
    int done = 0, sent = 0;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    uint64_t left = count;
    while (left) {
        osse_batch_t *b = osse_batch_new();
        for (uint64_t i = 0; i < 1 + left % 7 && left; i++, left--) {
            uint64_t seq = osse_log_last_seq(log) + 1;
            osse_buf_t eb;
            encode(seq, &eb);
            CHECK_EQ_INT(osse_batch_event(b, log, seq, "request/r1", (uint32_t)seq, eb.ptr, eb.len),
                         0);
            if (!seen)
                CHECK_EQ_INT(osse_merkle_append(m, b, eb.ptr, eb.len), 0);
            osse_buf_close(&eb);
        }
        if (seen)
            osse_log_commit(log, b, on_tree_done, seen);
        else
            osse_log_commit(log, b, on_done, &done);
        sent++;
    }
    osse_log_stop(log);
    CHECK_EQ_INT(seen ? seen->done : done, sent);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

/* Hashes of levels 2 and 3 as an osse before issue 13's eleventh session
 * stored them, but wrong (all 0xAB): they must not be read. */
static void put_old_low_levels(osse_log_t *log, uint64_t size)
{
    uv_loop_t loop;
    osse_err_t err;
    int done = 0;
    uint8_t key[10], junk[32];
    memset(junk, 0xAB, sizeof junk);
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    osse_batch_t *b = osse_batch_new();
    for (unsigned level = 2; level < 4; level++)
        for (uint64_t i = 0; i < size >> level; i++) {
            osse_merkle_key(level, i, key);
            CHECK_EQ_INT(osse_batch_put(b, key, sizeof key, junk, sizeof junk), 0);
        }
    osse_log_commit(log, b, on_done, &done);
    osse_log_stop(log);
    CHECK_EQ_INT(done, 1);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

static int count_level(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    unsigned *by_level = ud;
    if (klen == 10)
        by_level[((const uint8_t *)key)[1] & 63]++;
    return 0;
}

static int collect_leaf(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    osse_merkle_leaf_hash(bytes, len, leaves[seq - 1]);
    return 0;
}

static void test_real_log(void)
{
    char dir[] = "/tmp/osse-test-merkle-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    osse_err_t err;
    osse_log_t *log = NULL;
    osse_merkle_t *m = NULL;
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_merkle_open(log, &m, &err), 0);
    CHECK_EQ_INT(osse_merkle_size(m), 0);
    append_events(log, m, 150, NULL);
    uint8_t before[32];
    osse_merkle_root_now(m, before);
    osse_merkle_close(m);
    osse_log_close(log);

    /* Reopen: the frontier comes back from stored hashes; append more. */
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    CHECK_EQ_INT(osse_merkle_open(log, &m, &err), 0);
    CHECK_EQ_INT(osse_merkle_size(m), 150);
    uint8_t after[32];
    osse_merkle_root_now(m, after);
    CHECK(memcmp(before, after, 32) == 0);
    /* These by the log's writer thread, which keeps the tree. */
    tree_seen_t seen = {.log = log};
    uint64_t size0;
    CHECK(!osse_log_tree_durable(log, &size0, after));
    osse_log_set_tree(log, m);
    CHECK(osse_log_tree_durable(log, &size0, after));
    CHECK_EQ_INT(size0, 150);
    CHECK(memcmp(before, after, 32) == 0);
    append_events(log, m, 107, &seen);
    CHECK_EQ_INT(osse_merkle_size(m), 257);
    CHECK_EQ_INT(seen.size, 257);
    CHECK_EQ_INT(seen.short_trees, 0);

    /* Stored: one hash for each whole subtree of level 4 and up (257 leaves:
     * 16 + 8 + 4 + 2 + 1), none below. */
    unsigned by_level[64] = {0};
    CHECK_EQ_INT(osse_log_kv_scan(log, "m", 1, count_level, by_level, &err), 0);
    for (unsigned level = 0; level < 64; level++) {
        uint64_t want = level < OSSE_MERKLE_STORED_LEVEL ? 0 : (uint64_t)257 >> level;
        CHECK_EQ_INT(by_level[level], want);
    }
    /* A folder an older osse wrote holds levels 2 and 3 too: unread. */
    put_old_low_levels(log, 257);

    /* Every root, leaf and proof against the recomputation from the events. */
    leaves = calloc(257, sizeof(hash_t));
    CHECK_EQ_INT(osse_log_scan(log, 1, collect_leaf, NULL, &err), 0);
    int bad = 0;
    hash_t p[OSSE_MERKLE_MAX_PROOF];
    size_t n;
    uint8_t r[32], want[32], lh[32];
    mth(0, 257, want);
    osse_merkle_root_now(m, r);
    CHECK(memcmp(r, want, 32) == 0);
    CHECK(memcmp(seen.root, want, 32) == 0);
    for (uint64_t size = 1; size <= 257; size += 8) {
        mth(0, size, want);
        CHECK_EQ_INT(osse_merkle_root(log, size, r, &err), 0);
        bad += memcmp(r, want, 32) != 0;
        for (uint64_t i = 0; i < size; i += 5) {
            CHECK_EQ_INT(osse_merkle_inclusion(log, i, size, p, &n, &err), 0);
            CHECK_EQ_INT(osse_merkle_leaf(log, i, lh, &err), 0);
            bad += memcmp(lh, leaves[i], 32) != 0;
            bad += osse_merkle_verify_inclusion(i, size, lh, want, (const uint8_t(*)[32])p, n,
                                                NULL) != 0;
        }
        uint8_t big[32];
        mth(0, 257, big);
        CHECK_EQ_INT(osse_merkle_consistency(log, size, 257, p, &n, &err), 0);
        bad += osse_merkle_verify_consistency(size, 257, want, big, (const uint8_t(*)[32])p, n,
                                              NULL) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(osse_merkle_root(log, 258, r, &err), OSSE_EINVAL);
    CHECK_EQ_INT(osse_merkle_consistency(log, 3, 258, p, &n, &err), OSSE_EINVAL);
    free(leaves);
    osse_merkle_close(m);
    osse_log_close(log);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    osse_alloc_setup_json();
    if (sodium_init() < 0)
        return 1;
    RUN(test_known_hashes);
    RUN(test_all_pairs_small);
    RUN(test_tampered);
    RUN(test_sampled_large);
    RUN(test_real_log);
    return TEST_EXIT();
}
