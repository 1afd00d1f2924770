/* merkle.c: the RFC 6962 tree over the log: appending with a frontier,
 * proofs from stored perfect-subtree hashes, RFC 9162 verification.
 *
 * Invariant: every range the RFC 6962 recursion (MTH, PATH, SUBPROOF) visits
 * starts at a multiple of a power of two at least as large as its length, so
 * its hash is the right fold of the perfect, aligned subtrees of its binary
 * decomposition, each one stored record. Along one proof, only the first
 * right-hand sibling can be imperfect (after it the recursion is inside a
 * perfect subtree), so a proof costs O(log n) reads.
 */
#include "storage/merkle.h"
#include "common/buf.h"
#include "common/alloc.h"

/* The tree hashes with OpenSSL's libcrypto, not libsodium: libsodium's
 * SHA-256 is portable C, libcrypto's uses the CPU's SHA extensions, 7x
 * faster per leaf here (0.27 vs 1.94 us for 257 bytes), and leaf hashing
 * was 11% of the server's CPU on the append path (bench/README.md, Audit).
 * The low-level SHA256_* calls are deprecated in OpenSSL 3 in favour of EVP,
 * whose per-call algorithm lookup costs more than a leaf; they allocate
 * nothing and are thread-safe on a stack context. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Not SHA256(): in OpenSSL 3 that one-shot goes through EVP_Q_digest, which
 * fetches the algorithm on every call, about half the cost of a node hash
 * (bench/README.md, Issue 13). */
static void sha256(const void *p, size_t len, uint8_t out[OSSE_MERKLE_HASH])
{
    SHA256_CTX st;
    SHA256_Init(&st);
    if (len)
        SHA256_Update(&st, p, len);
    SHA256_Final(out, &st);
}

void osse_merkle_leaf_hash(const void *bytes, size_t len, uint8_t out[OSSE_MERKLE_HASH])
{
    SHA256_CTX st;
    static const uint8_t zero = 0x00;
    SHA256_Init(&st);
    SHA256_Update(&st, &zero, 1);
    if (len)
        SHA256_Update(&st, bytes, len);
    SHA256_Final(out, &st);
}

_Static_assert(sizeof(SHA256_CTX) <= sizeof(((osse_merkle_sha256_t *)0)->state),
               "osse_merkle_sha256_t holds a SHA256_CTX");

void osse_merkle_sha256_init(osse_merkle_sha256_t *h)
{
    SHA256_Init((SHA256_CTX *)h->state);
}

void osse_merkle_sha256_update(osse_merkle_sha256_t *h, const void *p, size_t len)
{
    if (len)
        SHA256_Update((SHA256_CTX *)h->state, p, len);
}

void osse_merkle_sha256_final(osse_merkle_sha256_t *h, uint8_t out[OSSE_MERKLE_HASH])
{
    SHA256_Final(out, (SHA256_CTX *)h->state);
}

void osse_merkle_node_hash(const uint8_t left[OSSE_MERKLE_HASH],
                           const uint8_t right[OSSE_MERKLE_HASH], uint8_t out[OSSE_MERKLE_HASH])
{
    uint8_t in[1 + 2 * OSSE_MERKLE_HASH];
    in[0] = 0x01;
    memcpy(in + 1, left, OSSE_MERKLE_HASH);
    memcpy(in + 1 + OSSE_MERKLE_HASH, right, OSSE_MERKLE_HASH);
    sha256(in, sizeof in, out);
}

void osse_merkle_key(unsigned level, uint64_t index, uint8_t key[10])
{
    key[0] = 'm';
    key[1] = (uint8_t)level;
    osse_be_put(key + 2, index, 8);
}

void osse_merkle_init(osse_merkle_t *m)
{
    memset(m, 0, sizeof *m);
}

int osse_merkle_set_frontier(osse_merkle_t *m, uint64_t size, const uint8_t (*hashes)[32], size_t n)
{
    if ((size_t)__builtin_popcountll(size) != n)
        return OSSE_EINVAL;
    osse_merkle_init(m);
    m->size = size;
    size_t j = 0;
    for (int l = 63; l >= 0; l--)
        if (size >> l & 1)
            memcpy(m->frontier[l], hashes[j++], OSSE_MERKLE_HASH);
    return 0;
}

size_t osse_merkle_get_frontier(const osse_merkle_t *m, uint8_t (*hashes)[32])
{
    size_t j = 0;
    for (int l = 63; l >= 0; l--)
        if (m->size >> l & 1)
            memcpy(hashes[j++], m->frontier[l], OSSE_MERKLE_HASH);
    return j;
}

int osse_merkle_load(osse_merkle_t *m, const osse_merkle_store_t *store, uint64_t size,
                     osse_err_t *err)
{
    osse_merkle_t t;
    osse_merkle_init(&t);
    t.size = size;
    for (unsigned l = 0; l < 64; l++) {
        if (!(size >> l & 1))
            continue;
        /* The subtree of level l ends where the bits below l begin. */
        int rc = store->get(store->ud, l, (size >> l) - 1, t.frontier[l], err);
        if (rc)
            return rc;
    }
    *m = t;
    return 0;
}

int osse_merkle_push(osse_merkle_t *m, const void *bytes, size_t len, osse_merkle_put_fn put,
                     void *ud)
{
    uint8_t h[OSSE_MERKLE_HASH];
    osse_merkle_leaf_hash(bytes, len, h);
    return osse_merkle_push_hash(m, h, put, ud);
}

int osse_merkle_push_hash(osse_merkle_t *m, const uint8_t leaf_hash[OSSE_MERKLE_HASH],
                          osse_merkle_put_fn put, void *ud)
{
    uint8_t h[OSSE_MERKLE_HASH];
    uint64_t n = m->size;
    int rc;
    memcpy(h, leaf_hash, OSSE_MERKLE_HASH);
    if (put && (rc = put(ud, 0, n, h)))
        return rc;
    unsigned level = 0;
    /* Each set low bit of n is a perfect subtree of the same height that the
     * new leaf's subtree completes into one twice as high (a carry). */
    while (level < 63 && (n >> level & 1)) {
        osse_merkle_node_hash(m->frontier[level], h, h);
        level++;
        if (put && (rc = put(ud, level, ((n + 1) >> level) - 1, h)))
            return rc;
    }
    memcpy(m->frontier[level], h, OSSE_MERKLE_HASH);
    m->size = n + 1;
    return 0;
}

static int batch_put(void *ud, unsigned level, uint64_t index, const uint8_t hash[OSSE_MERKLE_HASH])
{
    uint8_t key[10];
    if (level < OSSE_MERKLE_STORED_LEVEL)
        return 0;
    osse_merkle_key(level, index, key);
    return osse_batch_put(ud, key, sizeof key, hash, OSSE_MERKLE_HASH);
}

int osse_merkle_append(osse_merkle_t *m, osse_batch_t *b, const void *bytes, size_t len)
{
    return osse_merkle_push(m, bytes, len, batch_put, b);
}

uint64_t osse_merkle_size(const osse_merkle_t *m)
{
    return m->size;
}

void osse_merkle_root_now(const osse_merkle_t *m, uint8_t out[OSSE_MERKLE_HASH])
{
    if (m->size == 0) {
        sha256("", 0, out);
        return;
    }
    uint8_t acc[OSSE_MERKLE_HASH];
    int have = 0;
    for (unsigned l = 0; l < 64; l++) {
        if (!(m->size >> l & 1))
            continue;
        if (!have) {
            memcpy(acc, m->frontier[l], OSSE_MERKLE_HASH);
            have = 1;
        } else {
            osse_merkle_node_hash(m->frontier[l], acc, acc);
        }
    }
    memcpy(out, acc, OSSE_MERKLE_HASH);
}

/* ---- Stored hashes ---- */

/* MTH(D[start : start+len]) with start aligned as the file comment says. */
static int subtree_hash(const osse_merkle_store_t *s, uint64_t start, uint64_t len,
                        uint8_t out[OSSE_MERKLE_HASH], osse_err_t *err)
{
    uint8_t pieces[64][OSSE_MERKLE_HASH];
    int np = 0, rc;
    OSSE_PRE(len > 0);
    uint64_t off = start;
    for (int l = 63; l >= 0; l--) {
        if (!(len >> l & 1))
            continue;
        if ((rc = s->get(s->ud, (unsigned)l, off >> l, pieces[np], err)))
            return rc;
        np++;
        off += (uint64_t)1 << l;
    }
    memcpy(out, pieces[np - 1], OSSE_MERKLE_HASH);
    for (int i = np - 2; i >= 0; i--)
        osse_merkle_node_hash(pieces[i], out, out);
    return 0;
}

static uint64_t split_point(uint64_t n) /* the largest power of two < n, n > 1 */
{
    return (uint64_t)1 << (63 - __builtin_clzll(n - 1));
}

static void reverse(uint8_t (*h)[32], size_t n)
{
    uint8_t t[OSSE_MERKLE_HASH];
    for (size_t i = 0; i < n / 2; i++) {
        memcpy(t, h[i], OSSE_MERKLE_HASH);
        memcpy(h[i], h[n - 1 - i], OSSE_MERKLE_HASH);
        memcpy(h[n - 1 - i], t, OSSE_MERKLE_HASH);
    }
}

int osse_merkle_store_root(const osse_merkle_store_t *s, uint64_t size,
                           uint8_t out[OSSE_MERKLE_HASH], osse_err_t *err)
{
    if (size == 0) {
        sha256("", 0, out);
        return 0;
    }
    return subtree_hash(s, 0, size, out, err);
}

int osse_merkle_store_inclusion(const osse_merkle_store_t *s, uint64_t leaf_index, uint64_t size,
                                uint8_t (*hashes)[32], size_t *n, osse_err_t *err)
{
    *n = 0;
    if (leaf_index >= size)
        return osse_err_set(err, OSSE_EINVAL, "leaf index %llu is not below tree size %llu",
                            (unsigned long long)leaf_index, (unsigned long long)size);
    uint64_t start = 0, len = size, m = leaf_index;
    size_t k = 0;
    int rc;
    /* Walk from the root down, collecting siblings; PATH lists them from the
     * leaf up, so reverse at the end. */
    while (len > 1) {
        uint64_t sp = split_point(len);
        if (m < sp) {
            if ((rc = subtree_hash(s, start + sp, len - sp, hashes[k], err)))
                return rc;
            len = sp;
        } else {
            if ((rc = subtree_hash(s, start, sp, hashes[k], err)))
                return rc;
            start += sp;
            m -= sp;
            len -= sp;
        }
        k++;
    }
    reverse(hashes, k);
    *n = k;
    return 0;
}

int osse_merkle_store_consistency(const osse_merkle_store_t *s, uint64_t from, uint64_t to,
                                  uint8_t (*hashes)[32], size_t *n, osse_err_t *err)
{
    *n = 0;
    if (from == 0 || from > to)
        return osse_err_set(err, OSSE_EINVAL, "no consistency proof from size %llu to %llu",
                            (unsigned long long)from, (unsigned long long)to);
    uint64_t start = 0, len = to, m = from;
    int b = 1, rc;
    size_t k = 0;
    /* SUBPROOF unrolled: each level contributes its sibling after the
     * deeper levels' output, so collect top-down and reverse at the end. */
    for (;;) {
        if (m == len) {
            if (!b) {
                if ((rc = subtree_hash(s, start, len, hashes[k], err)))
                    return rc;
                k++;
            }
            break;
        }
        uint64_t sp = split_point(len);
        if (m <= sp) {
            if ((rc = subtree_hash(s, start + sp, len - sp, hashes[k], err)))
                return rc;
            len = sp;
        } else {
            if ((rc = subtree_hash(s, start, sp, hashes[k], err)))
                return rc;
            start += sp;
            m -= sp;
            len -= sp;
            b = 0;
        }
        k++;
    }
    reverse(hashes, k);
    *n = k;
    return 0;
}

/* ---- Log-backed store ---- */

/* A subtree below OSSE_MERKLE_STORED_LEVEL, hashed from its events (at most
 * 2^(level) reads). */
static int log_low(osse_log_t *log, unsigned level, uint64_t index, uint8_t out[OSSE_MERKLE_HASH],
                   osse_err_t *err)
{
    if (level == 0) {
        void *bytes = NULL;
        size_t len = 0;
        int rc = osse_log_get(log, index + 1, &bytes, &len, err);
        if (rc == OSSE_ENOTFOUND)
            return osse_err_set(err, OSSE_ENOTFOUND, "event %llu is missing",
                                (unsigned long long)index + 1);
        if (rc)
            return rc;
        osse_merkle_leaf_hash(bytes, len, out);
        free(bytes);
        return 0;
    }
    uint8_t l[OSSE_MERKLE_HASH], r[OSSE_MERKLE_HASH];
    int rc = log_low(log, level - 1, 2 * index, l, err);
    if (!rc)
        rc = log_low(log, level - 1, 2 * index + 1, r, err);
    if (!rc)
        osse_merkle_node_hash(l, r, out);
    return rc;
}

static int log_get(void *ud, unsigned level, uint64_t index, uint8_t out[OSSE_MERKLE_HASH],
                   osse_err_t *err)
{
    uint8_t key[10];
    void *val = NULL;
    size_t vlen = 0;
    if (level < OSSE_MERKLE_STORED_LEVEL)
        return log_low(ud, level, index, out, err);
    osse_merkle_key(level, index, key);
    int rc = osse_log_kv_get(ud, key, sizeof key, &val, &vlen, err);
    if (rc == OSSE_ENOTFOUND)
        return osse_err_set(err, OSSE_ENOTFOUND, "tree hash (level %u, index %llu) is missing",
                            level, (unsigned long long)index);
    if (rc)
        return rc;
    if (vlen != OSSE_MERKLE_HASH) {
        free(val);
        return osse_err_set(err, OSSE_ECORRUPT, "tree hash (level %u, index %llu) has %zu bytes",
                            level, (unsigned long long)index, vlen);
    }
    memcpy(out, val, OSSE_MERKLE_HASH);
    free(val);
    return 0;
}

osse_merkle_store_t osse_merkle_log_store(osse_log_t *log)
{
    osse_merkle_store_t st = {log_get, log};
    return st;
}

int osse_merkle_open(osse_log_t *log, osse_merkle_t **out, osse_err_t *err)
{
    *out = NULL;
    osse_merkle_t *m = osse_malloc(sizeof *m);
    osse_merkle_store_t st = {log_get, log};
    int rc = osse_merkle_load(m, &st, osse_log_last_seq(log), err);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void osse_merkle_close(osse_merkle_t *m)
{
    free(m);
}

static int check_size(osse_log_t *log, uint64_t size, osse_err_t *err)
{
    if (size > osse_log_last_seq(log))
        return osse_err_set(err, OSSE_EINVAL, "tree size %llu is beyond the log (%llu events)",
                            (unsigned long long)size, (unsigned long long)osse_log_last_seq(log));
    return 0;
}

int osse_merkle_root(osse_log_t *log, uint64_t size, uint8_t out[OSSE_MERKLE_HASH], osse_err_t *err)
{
    osse_merkle_store_t st = {log_get, log};
    int rc = check_size(log, size, err);
    return rc ? rc : osse_merkle_store_root(&st, size, out, err);
}

int osse_merkle_inclusion(osse_log_t *log, uint64_t leaf_index, uint64_t size,
                          uint8_t (*hashes)[32], size_t *n, osse_err_t *err)
{
    osse_merkle_store_t st = {log_get, log};
    *n = 0;
    int rc = check_size(log, size, err);
    return rc ? rc : osse_merkle_store_inclusion(&st, leaf_index, size, hashes, n, err);
}

int osse_merkle_consistency(osse_log_t *log, uint64_t from, uint64_t to, uint8_t (*hashes)[32],
                            size_t *n, osse_err_t *err)
{
    osse_merkle_store_t st = {log_get, log};
    *n = 0;
    int rc = check_size(log, to, err);
    return rc ? rc : osse_merkle_store_consistency(&st, from, to, hashes, n, err);
}

int osse_merkle_leaf(osse_log_t *log, uint64_t leaf_index, uint8_t out[OSSE_MERKLE_HASH],
                     osse_err_t *err)
{
    return log_get(log, 0, leaf_index, out, err);
}

/* ---- Verification ---- */

static int bad(osse_err_t *err, const char *what)
{
    return osse_err_set(err, OSSE_ECORRUPT, "%s", what);
}

int osse_merkle_verify_inclusion(uint64_t leaf_index, uint64_t size,
                                 const uint8_t leaf_hash[OSSE_MERKLE_HASH],
                                 const uint8_t root[OSSE_MERKLE_HASH], const uint8_t (*hashes)[32],
                                 size_t n, osse_err_t *err)
{
    if (leaf_index >= size)
        return bad(err, "inclusion proof: leaf index is not below the tree size");
    uint64_t fn = leaf_index, sn = size - 1;
    uint8_t r[OSSE_MERKLE_HASH];
    memcpy(r, leaf_hash, OSSE_MERKLE_HASH);
    for (size_t i = 0; i < n; i++) {
        if (sn == 0)
            return bad(err, "inclusion proof: too many hashes");
        if ((fn & 1) || fn == sn) {
            osse_merkle_node_hash(hashes[i], r, r);
            if (!(fn & 1))
                while (!((fn & 1) || fn == 0)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            osse_merkle_node_hash(r, hashes[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0)
        return bad(err, "inclusion proof: too few hashes");
    if (sodium_memcmp(r, root, OSSE_MERKLE_HASH) != 0)
        return bad(err, "inclusion proof: the computed root differs");
    return 0;
}

int osse_merkle_verify_consistency(uint64_t from, uint64_t to,
                                   const uint8_t from_root[OSSE_MERKLE_HASH],
                                   const uint8_t to_root[OSSE_MERKLE_HASH],
                                   const uint8_t (*hashes)[32], size_t n, osse_err_t *err)
{
    if (from == 0 || from > to)
        return bad(err, "consistency proof: sizes out of order");
    if (from == to) {
        if (n != 0)
            return bad(err, "consistency proof: must be empty for equal sizes");
        if (sodium_memcmp(from_root, to_root, OSSE_MERKLE_HASH) != 0)
            return bad(err, "consistency proof: equal sizes with different roots");
        return 0;
    }
    if (n == 0)
        return bad(err, "consistency proof: empty");
    /* RFC 9162 §2.1.4.2: a power-of-two old tree is itself a node of the new
     * one, so its root starts the path. */
    int pre = (from & (from - 1)) == 0;
    size_t total = n + (size_t)pre;
#define PATH(i) (pre ? ((i) == 0 ? from_root : hashes[(i)-1]) : hashes[(i)])
    uint64_t fn = from - 1, sn = to - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[OSSE_MERKLE_HASH], sr[OSSE_MERKLE_HASH];
    memcpy(fr, PATH(0), OSSE_MERKLE_HASH);
    memcpy(sr, PATH(0), OSSE_MERKLE_HASH);
    for (size_t i = 1; i < total; i++) {
        const uint8_t *c = PATH(i);
        if (sn == 0)
            return bad(err, "consistency proof: too many hashes");
        if ((fn & 1) || fn == sn) {
            osse_merkle_node_hash(c, fr, fr);
            osse_merkle_node_hash(c, sr, sr);
            if (!(fn & 1))
                while (!((fn & 1) || fn == 0)) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            osse_merkle_node_hash(sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
#undef PATH
    if (sn != 0)
        return bad(err, "consistency proof: too few hashes");
    if (sodium_memcmp(fr, from_root, OSSE_MERKLE_HASH) != 0)
        return bad(err, "consistency proof: the old root differs");
    if (sodium_memcmp(sr, to_root, OSSE_MERKLE_HASH) != 0)
        return bad(err, "consistency proof: the new root differs");
    return 0;
}
