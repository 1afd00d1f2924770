/* test_export.c: a real log of a few hundred events with signed heads is
 * exported and verified; then every kind of damage (a flipped byte in each
 * event, a deleted, duplicated or swapped event, truncation at many offsets,
 * garbage appended, a bad signature, lying lengths and counts, a forged leaf
 * hash, a changed head time, any single byte of a small export, an origin
 * that is not UTF-8 or holds a space, the old format) must be reported with
 * its position, never crash (ASan), and never pass. */
#define _GNU_SOURCE /* nftw, mkdtemp, open_memstream */
#include <ftw.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "storage/checkpoint.h"
#include "storage/event.h"
#include "storage/export.h"
#include "storage/log.h"
#include "storage/merkle.h"
#include "tests/test.h"

#define NEV 300
#define ORIGIN "example.org/log"
#define ORIGIN_AT 14 /* magic, version, origin length */

static char dir[64];
static osse_signer_t *signer;
static osse_log_t *log_;

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void on_done(void *ud, int status)
{
    (*(int *)ud)++;
}

/* A log of NEV events (batches of 1..5) with a head stored after every
 * batch that crosses a multiple of 40. */
static void build_log(void)
{
    strcpy(dir, "/tmp/osse-test-export-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    osse_err_t err;
    CHECK_EQ_INT(osse_signer_open(dir, ORIGIN, &signer, &err), 0);
    CHECK_EQ_INT(osse_log_open(dir, &log_, &err), 0);
    osse_merkle_t *m = NULL;
    CHECK_EQ_INT(osse_merkle_open(log_, &m, &err), 0);
    uv_loop_t loop;
    int done = 0, sent = 0;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log_, &loop, &err), 0);
    uint64_t seq = 0;
    while (seq < NEV) {
        osse_batch_t *b = osse_batch_new();
        uint64_t before = seq;
        for (int i = 0; i < 1 + (int)(seq % 5) && seq < NEV; i++) {
            seq++;
            osse_event_t ev;
            memset(&ev, 0, sizeof ev);
            char stream[32];
            snprintf(stream, sizeof stream, "request/%llu", (unsigned long long)(seq % 17));
            ev.seq = seq;
            ev.stream = stream;
            ev.version = (uint32_t)seq;
            ev.type = seq % 3 ? OSSE_EV_StepOpened : OSSE_EV_TaskDecided;
            ev.at = 1764554400000 + (int64_t)seq * 1000;
            ev.actor_kind = "agency";
            ev.actor_id = "agency/7";
            ev.data = json_pack("{s:I, s:s, s:[i,i]}", "n", (json_int_t)seq, "note",
                                "approved after review", "xs", 1, 2);
            osse_buf_t eb;
            osse_buf_init(&eb, 0);
            CHECK_EQ_INT(osse_event_encode(&ev, &eb), 0);
            json_decref(ev.data);
            CHECK_EQ_INT(osse_batch_event(b, log_, seq, stream, (uint32_t)seq, eb.ptr, eb.len), 0);
            CHECK_EQ_INT(osse_merkle_append(m, b, eb.ptr, eb.len), 0);
            osse_buf_close(&eb);
        }
        if (seq / 40 != before / 40) {
            osse_head_t h;
            uint8_t root[32];
            osse_merkle_root_now(m, root);
            CHECK_EQ_INT(osse_signer_sign_head(signer, seq, root, 1764554400000, &h), 0);
            CHECK_EQ_INT(osse_head_store(b, &h), 0);
        }
        osse_log_commit(log_, b, on_done, &done);
        sent++;
    }
    osse_log_stop(log_);
    CHECK_EQ_INT(done, sent);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    osse_merkle_close(m);
}

static uint8_t *export_range(uint64_t from, uint64_t to, size_t *len)
{
    char *p = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&p, &n);
    osse_err_t err;
    int rc = osse_export_write(log_, signer, from, to, f, &err);
    if (rc)
        fprintf(stderr, "export: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    fclose(f);
    *len = n;
    return (uint8_t *)p;
}

/* The layout of an export, walked without verifying (test-side parser). */
typedef struct layout_s {
    size_t count_at, heads_at, nheads;
    size_t ev_at[NEV + 1]; /* offset of each event record, then of the trailer */
    size_t nev;
    size_t final_at, sig_at; /* the trailer's final head and closing signature */
} layout_t;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Writes v as a width-byte big-endian field at p (a forger's edit). */
static void put_be(uint8_t *p, int width, uint64_t v)
{
    for (int b = 0; b < width; b++)
        p[b] = (uint8_t)(v >> (8 * (width - 1 - b)));
}

static void walk(const uint8_t *x, layout_t *l)
{
    size_t o = 8 + 4;
    size_t olen = be(x + o, 2);
    o += 2 + olen + 32 + 8;
    l->count_at = o;
    l->nev = be(x + o, 8);
    o += 8;
    o += 1 + 32 * x[o];
    l->nheads = be(x + o, 4);
    o += 4;
    l->heads_at = o;
    o += l->nheads * 112;
    for (size_t i = 0; i < l->nev; i++) {
        l->ev_at[i] = o;
        o += 4 + 32 + be(x + o, 4);
    }
    l->ev_at[l->nev] = o;
    l->final_at = o + 16;
    l->sig_at = l->final_at + 112;
}

static const osse_verifier_t *key(void)
{
    return osse_signer_verifier(signer);
}

static int count_cb(void *ud, uint64_t seq, const void *bytes, size_t len)
{
    uint64_t *next = ud;
    if (seq != *next)
        return -100;
    (*next)++;
    return 0;
}

static int verify(const uint8_t *x, size_t n, osse_export_info_t *info, osse_err_t *err)
{
    return osse_export_verify_buf(x, n, key(), NULL, NULL, info, err);
}

static void test_roundtrip(void)
{
    size_t n;
    uint8_t *x = export_range(0, 0, &n);
    osse_export_info_t info;
    osse_err_t err;
    uint64_t next = 1;
    int rc = osse_export_verify_buf(x, n, key(), count_cb, &next, &info, &err);
    if (rc)
        fprintf(stderr, "verify: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(next, NEV + 1);
    CHECK_EQ_INT(info.first_seq, 1);
    CHECK_EQ_INT(info.count, NEV);
    CHECK_EQ_INT(info.verified, NEV);
    CHECK_EQ_INT(info.last_size, NEV);
    CHECK(info.heads >= 8); /* the stored heads (every 40) and the last */
    uint8_t root[32];
    CHECK_EQ_INT(osse_merkle_root(log_, NEV, root, &err), 0);
    CHECK(memcmp(root, info.last_root, 32) == 0);
    CHECK_EQ_INT(info.offset, n);

    /* Through a stream, too; with the verifier key string and a bare key. */
    FILE *f = fmemopen(x, n, "rb");
    CHECK_EQ_INT(osse_export_verify_file(f, key(), NULL, NULL, &info, &err), 0);
    fclose(f);
    osse_buf_t vk;
    osse_buf_init(&vk, 0);
    osse_verifier_key(key(), &vk);
    osse_verifier_t v;
    CHECK_EQ_INT(osse_verifier_parse(&v, vk.ptr, vk.len, &err), 0);
    CHECK_EQ_INT(osse_export_verify_buf(x, n, &v, NULL, NULL, &info, &err), 0);
    osse_buf_close(&vk);
    CHECK_EQ_INT(osse_export_verify_buf(x, n, NULL, NULL, NULL, &info, &err), 0);

    /* Another key is refused. */
    uint8_t seed[32] = {1};
    osse_signer_t *other;
    CHECK_EQ_INT(osse_signer_from_seed(OSSE_DEFAULT_ORIGIN, seed, &other, NULL), 0);
    CHECK_EQ_INT(osse_export_verify_buf(x, n, osse_signer_verifier(other), NULL, NULL, &info, &err),
                 OSSE_ECORRUPT);
    osse_signer_close(other);

    /* Ranges: from 1, in the middle (with a frontier), a single event. */
    uint64_t ranges[][2] = {{1, 57}, {101, 250}, {64, 64}, {41, 300}, {299, 300}, {300, 300}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        size_t rn;
        uint8_t *r = export_range(ranges[i][0], ranges[i][1], &rn);
        next = ranges[i][0];
        rc = osse_export_verify_buf(r, rn, key(), count_cb, &next, &info, &err);
        if (rc)
            fprintf(stderr, "range %zu: %s\n", i, err.msg);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(next, ranges[i][1] + 1);
        CHECK_EQ_INT(info.last_size, ranges[i][1]);
        free(r);
    }
    FILE *nf = fopen("/dev/null", "w");
    CHECK_EQ_INT(osse_export_write(log_, signer, 5, 301, nf, &err), OSSE_EINVAL);
    CHECK_EQ_INT(osse_export_write(log_, signer, 6, 5, nf, &err), OSSE_EINVAL);
    fclose(nf);
    free(x);
}

static void test_event_damage(void)
{
    size_t n;
    uint8_t *x = export_range(0, 0, &n);
    layout_t l;
    walk(x, &l);
    CHECK_EQ_INT(l.nev, NEV);
    osse_export_info_t info;
    osse_err_t err;
    int wrong = 0;
    uint8_t *y = malloc(n + 4096);

    for (size_t i = 0; i < NEV; i++) {
        uint64_t seq = i + 1;
        size_t at = l.ev_at[i], len = l.ev_at[i + 1] - at;
        /* A flipped byte in the event's bytes, then in its leaf hash. */
        size_t offs[2] = {at + 36 + (len - 36) / 2, at + 4 + (i % 32)};
        for (int k = 0; k < 2; k++) {
            memcpy(y, x, n);
            y[offs[k]] ^= 0x10;
            int rc = verify(y, n, &info, &err);
            if (rc != OSSE_ECORRUPT || info.bad_seq != seq) {
                fprintf(stderr, "flip %d in seq %zu: rc %d bad_seq %llu: %s\n", k, i + 1, rc,
                        (unsigned long long)info.bad_seq, err.msg);
                wrong++;
            }
        }
        /* Deleted. */
        memcpy(y, x, at);
        memcpy(y + at, x + at + len, n - at - len);
        if (verify(y, n - len, &info, &err) != OSSE_ECORRUPT || info.bad_seq != seq) {
            fprintf(stderr, "delete seq %zu: bad_seq %llu: %s\n", i + 1,
                    (unsigned long long)info.bad_seq, err.msg);
            wrong++;
        }
        /* Duplicated: the copy is the first bad one. */
        memcpy(y, x, at + len);
        memcpy(y + at + len, x + at, n - at);
        if (verify(y, n + len, &info, &err) != OSSE_ECORRUPT || info.bad_seq != seq + 1) {
            if (!(seq == NEV && info.bad_seq == 0)) { /* after the last: "more events" */
                fprintf(stderr, "dup seq %zu: bad_seq %llu: %s\n", i + 1,
                        (unsigned long long)info.bad_seq, err.msg);
                wrong++;
            }
        }
        /* Swapped with the next. */
        if (i + 1 < NEV) {
            size_t len2 = l.ev_at[i + 2] - l.ev_at[i + 1];
            memcpy(y, x, n);
            memcpy(y + at, x + at + len, len2);
            memcpy(y + at + len2, x + at, len);
            if (verify(y, n, &info, &err) != OSSE_ECORRUPT || info.bad_seq != seq) {
                fprintf(stderr, "swap seq %zu: bad_seq %llu: %s\n", i + 1,
                        (unsigned long long)info.bad_seq, err.msg);
                wrong++;
            }
        }
    }
    CHECK_EQ_INT(wrong, 0);

    /* A forger who changes an event and its leaf hash together is caught by
     * the first signed head that covers it. */
    memcpy(y, x, n);
    size_t at = l.ev_at[99], len = l.ev_at[100] - at;
    uint8_t *str = memmem(y + at + 36, len - 36, "approved", 8);
    CHECK(str != NULL);
    if (str)
        *str = 'A'; /* "Approved": still a valid event */
    osse_merkle_leaf_hash(y + at + 36, len - 36, y + at + 4);
    int rc = verify(y, n, &info, &err);
    CHECK_EQ_INT(rc, OSSE_ECORRUPT);
    CHECK(info.bad_head >= 100 && info.bad_head < 140);
    CHECK_EQ_INT(info.bad_seq, 0);
    fprintf(stderr, "  forged leaf: %s\n", err.msg);
    free(y);
    free(x);
}

static void test_structure_damage(void)
{
    size_t n;
    uint8_t *x = export_range(101, 250, &n);
    layout_t l;
    walk(x, &l);
    osse_export_info_t info;
    osse_err_t err;
    uint8_t *y = malloc(n + 64);
    int wrong = 0;

    /* Truncation at every offset of the header, heads and first events, then
     * every 7th: an error at or before the cut, through the buffer and the
     * stream readers. */
    for (size_t cut = 0; cut < n; cut += cut < l.ev_at[3] ? 1 : 7) {
        int rc = verify(x, cut, &info, &err);
        if (rc != OSSE_ECORRUPT || info.offset > cut)
            wrong++;
        if (cut % 13 == 0) {
            FILE *f = fmemopen(x, cut ? cut : 1, "rb");
            rc = osse_export_verify_file(f, key(), NULL, NULL, &info, &err);
            fclose(f);
            if (rc != OSSE_ECORRUPT)
                wrong++;
        }
    }
    CHECK_EQ_INT(wrong, 0);

    /* Garbage appended: named at the original end. */
    memcpy(y, x, n);
    memcpy(y + n, "garbage!", 8);
    CHECK_EQ_INT(verify(y, n + 8, &info, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(info.offset, n);
    FILE *f = fmemopen(y, n + 1, "rb");
    CHECK_EQ_INT(osse_export_verify_file(f, key(), NULL, NULL, &info, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(info.offset, n);
    fclose(f);

    /* Every byte of the header and heads flipped: refused. */
    for (size_t i = 0; i < l.ev_at[0]; i++) {
        memcpy(y, x, n);
        y[i] ^= 0x01;
        if (verify(y, n, &info, &err) == 0) {
            fprintf(stderr, "flip at %zu accepted\n", i);
            wrong++;
        }
    }
    CHECK_EQ_INT(wrong, 0);

    /* A bad signature names its head. */
    memcpy(y, x, n);
    y[l.heads_at + 112 + 60] ^= 0x80;
    uint64_t size2 = be(x + l.heads_at + 112, 8);
    CHECK_EQ_INT(verify(y, n, &info, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(info.bad_head, size2);
    fprintf(stderr, "  bad signature: %s\n", err.msg);

    /* Lying lengths. */
    struct {
        size_t at;
        int width;
        uint64_t v;
    } lies[] = {
        {12, 2, 0},                      /* origin length 0 */
        {12, 2, 0xffff},                 /* origin length huge */
        {l.heads_at - 4, 4, 0xffffffff}, /* head count huge */
        {l.heads_at - 4, 4, 0},          /* no heads */
        {l.ev_at[0], 4, 0xffffffff},     /* event length huge */
        {l.ev_at[0], 4, 0x00ffffff},     /* event length below the max, past the end */
        {l.ev_at[5], 4, 0},              /* event length 0 */
        {l.ev_at[5], 4, be(x + l.ev_at[5], 4) + 1},
        {l.ev_at[5], 4, be(x + l.ev_at[5], 4) - 1},
        {l.final_at - 8, 8, n + 1}, /* total length */
        {l.final_at - 8, 8, n - 1},
        {l.final_at - 8, 8, 0xffffffffffffffffULL},
        {l.final_at, 8, be(x + l.final_at, 8) - 1}, /* final head's size */
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        memcpy(y, x, n);
        put_be(y + lies[i].at, lies[i].width, lies[i].v);
        int rc = verify(y, n, &info, &err);
        if (rc != OSSE_ECORRUPT) {
            fprintf(stderr, "lie %zu accepted\n", i);
            wrong++;
        }
        f = fmemopen(y, n, "rb");
        if (osse_export_verify_file(f, key(), NULL, NULL, &info, &err) != OSSE_ECORRUPT)
            wrong++;
        fclose(f);
    }
    CHECK_EQ_INT(wrong, 0);

    /* Random bytes and an empty input. */
    CHECK_EQ_INT(verify(NULL, 0, &info, &err), OSSE_ECORRUPT);
    for (int r = 0; r < 200; r++) {
        randombytes_buf(y, n);
        if (r % 2)
            memcpy(y, x, 8 + (size_t)r % 60); /* a plausible start */
        if (verify(y, n, &info, &err) != OSSE_ECORRUPT)
            wrong++;
    }
    CHECK_EQ_INT(wrong, 0);
    free(y);
    free(x);
}

/* Every byte is bound (SPEC §6): a head's time, which no head signature
 * covers, and then each single byte of a small export, flipped; every
 * truncation; one byte more. The closing signature names what it covers. */
static void test_every_byte_bound(void)
{
    size_t n;
    uint8_t *x = export_range(101, 250, &n);
    layout_t l;
    walk(x, &l);
    osse_export_info_t info;
    osse_err_t err;
    uint8_t *y = malloc(n + 1);
    CHECK(l.nheads >= 2);
    CHECK_EQ_INT(l.sig_at + 64, n);
    if (l.sig_at + 64 != n) { /* not this format: the offsets below would be outside */
        free(y);
        free(x);
        return;
    }

    /* A head's `at`, in the heads section and in the final head. */
    size_t ats[] = {l.heads_at + 8 + 7, l.heads_at + 112 + 8 + 3, l.final_at + 8 + 7};
    for (size_t i = 0; i < 3; i++) {
        memcpy(y, x, n);
        y[ats[i]] ^= 0x01;
        CHECK_EQ_INT(verify(y, n, &info, &err), OSSE_ECORRUPT);
        CHECK_EQ_INT(info.offset, l.sig_at);
        CHECK(strstr(err.msg, "closing signature") != NULL);
        FILE *f = fmemopen(y, n, "rb");
        CHECK_EQ_INT(osse_export_verify_file(f, key(), NULL, NULL, &info, &err), OSSE_ECORRUPT);
        fclose(f);
    }
    fprintf(stderr, "  head time changed: %s\n", err.msg);
    /* The closing signature itself, and one by another key over the same
     * bytes. */
    memcpy(y, x, n);
    y[n - 1] ^= 0x40;
    CHECK_EQ_INT(verify(y, n, &info, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(info.offset, l.sig_at);
    free(x);
    free(y);

    /* A small export: every byte, every cut, one more byte. */
    x = export_range(295, 300, &n);
    walk(x, &l);
    y = malloc(n + 1);
    int wrong = 0;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(y, x, n);
            y[i] ^= (uint8_t)(1u << bit);
            int rc = verify(y, n, &info, &err);
            if (rc != OSSE_ECORRUPT || info.offset > n) {
                fprintf(stderr, "flip of bit %d at %zu: rc %d offset %llu\n", bit, i, rc,
                        (unsigned long long)info.offset);
                wrong++;
            }
        }
    }
    for (size_t cut = 0; cut < n; cut++)
        if (verify(x, cut, &info, &err) != OSSE_ECORRUPT || info.offset > cut) {
            fprintf(stderr, "cut at %zu accepted or misplaced\n", cut);
            wrong++;
        }
    memcpy(y, x, n);
    y[n] = 0;
    if (verify(y, n + 1, &info, &err) != OSSE_ECORRUPT || info.offset != n)
        wrong++;
    CHECK(strstr(err.msg, "extra bytes") != NULL);
    CHECK_EQ_INT(wrong, 0);
    free(y);
    free(x);
}

/* Replaces the header's origin with o (any length), as a forger would. */
static uint8_t *with_origin(const uint8_t *x, size_t n, const char *o, size_t *out_n)
{
    size_t olen = be(x + 12, 2), nl = strlen(o);
    uint8_t *y = malloc(n - olen + nl);
    memcpy(y, x, 12);
    put_be(y + 12, 2, nl);
    memcpy(y + ORIGIN_AT, o, nl);
    memcpy(y + ORIGIN_AT + nl, x + ORIGIN_AT + olen, n - ORIGIN_AT - olen);
    *out_n = n - olen + nl;
    return y;
}

/* An origin that is not valid UTF-8 or holds a Unicode space is refused at
 * the header, where it stands, before any signature is tried. */
static void test_bad_origin(void)
{
    static const struct {
        const char *o;
        size_t bad; /* the offending byte's offset in o */
    } bad[] = {
        {"example.org/\xff", 12},           {"example.org/\x80log", 12},
        {"example.org/\xc0\xaf", 12},       {"example\xc2\xa0org/log", 7},
        {"example.org\xe3\x80\x80log", 11}, {"example.org/l\xed\xa0\x80", 13},
    };
    size_t n;
    uint8_t *x = export_range(295, 300, &n);
    osse_export_info_t info;
    osse_err_t err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t yn;
        uint8_t *y = with_origin(x, n, bad[i].o, &yn);
        /* Without a key the header's own key is used: only the origin rule
         * stands between this file and the heads. */
        int rc = osse_export_verify_buf(y, yn, NULL, NULL, NULL, &info, &err);
        CHECK_EQ_INT(rc, OSSE_ECORRUPT);
        char where[32];
        snprintf(where, sizeof where, "origin: byte %zu ", bad[i].bad);
        CHECK_EQ_INT(info.offset, ORIGIN_AT);
        CHECK(strstr(err.msg, where) != NULL);
        if (i == 0 || i == 3)
            fprintf(stderr, "  bad origin: %s\n", err.msg);
        free(y);
    }
    /* A valid UTF-8 origin gets past the header (and fails on the heads,
     * which were signed under another name). */
    size_t yn;
    uint8_t *y = with_origin(x, n, "ex\xc3\xa4mple.org/log", &yn);
    CHECK_EQ_INT(osse_export_verify_buf(y, yn, NULL, NULL, NULL, &info, &err), OSSE_ECORRUPT);
    CHECK(info.offset > ORIGIN_AT + 16);
    free(y);
    free(x);
}

/* Counts that the file cannot hold are refused where they stand, before
 * anything is read for them: through a buffer and a regular file. */
static void test_counts_fit(void)
{
    size_t n;
    uint8_t *x = export_range(101, 250, &n);
    layout_t l;
    walk(x, &l);
    uint8_t *y = malloc(n);
    osse_export_info_t info;
    osse_err_t err;
    struct {
        size_t at;
        int width;
        uint64_t v;
        const char *what;
    } lies[] = {
        {l.heads_at - 4, 4, n / 112 + 1, "head count"},
        {l.heads_at - 4, 4, l.nheads + (n - l.ev_at[0]) / 112, "head count"},
        {l.heads_at - 4, 4, 10000000, "head count"},
        {l.count_at, 8, n / 37 + 1, "event count"},
        {l.count_at, 8, 1ull << 60, "event count"},
    };
    char path[96];
    snprintf(path, sizeof path, "%s/lie.bin", dir);
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        memcpy(y, x, n);
        put_be(y + lies[i].at, lies[i].width, lies[i].v);
        CHECK_EQ_INT(verify(y, n, &info, &err), OSSE_ECORRUPT);
        CHECK_EQ_INT(info.offset, lies[i].at);
        CHECK(strstr(err.msg, lies[i].what) && strstr(err.msg, "does not fit"));
        FILE *f = fopen(path, "wb+");
        CHECK(f != NULL);
        if (!f)
            continue;
        fwrite(y, 1, n, f);
        rewind(f);
        CHECK_EQ_INT(osse_export_verify_file(f, key(), NULL, NULL, &info, &err), OSSE_ECORRUPT);
        CHECK_EQ_INT(info.offset, lies[i].at);
        fclose(f);
    }
    fprintf(stderr, "  %s\n", err.msg);
    remove(path);
    free(y);
    free(x);
}

/* A file of the old format (version 1: heads' times unsigned) is refused
 * with a message that says what to do. */
static void test_old_version(void)
{
    size_t n;
    uint8_t *x = export_range(295, 300, &n);
    osse_export_info_t info;
    osse_err_t err;
    x[11] = 1;
    CHECK_EQ_INT(verify(x, n, &info, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(info.offset, 8);
    CHECK(strstr(err.msg, "version 1") && strstr(err.msg, "export the log again"));
    fprintf(stderr, "  %s\n", err.msg);
    x[11] = 3;
    CHECK_EQ_INT(verify(x, n, &info, &err), OSSE_ECORRUPT);
    CHECK(strstr(err.msg, "unsupported format version 3") != NULL);
    free(x);
}

/* Writes seed files for the fuzz corpus when OSSE_WRITE_CORPUS names a folder:
 * a valid range with a frontier, one from seq 1, and damaged copies (cut,
 * a flipped event byte, a flipped head time caught only by the closing
 * signature, the old version), so that mutations start deep in the file. */
static void write_seed(const char *d, const char *name, const uint8_t *x, size_t n, size_t flip,
                       uint8_t mask)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.bin", d, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    for (size_t i = 0; i < n; i++)
        fputc(i == flip ? x[i] ^ mask : x[i], f);
    fclose(f);
}

static void write_corpus(void)
{
    const char *d = getenv("OSSE_WRITE_CORPUS");
    if (!d)
        return;
    size_t n, n1;
    uint8_t *x = export_range(295, 300, &n);
    uint8_t *x1 = export_range(1, 9, &n1);
    size_t n2;
    uint8_t *x2 = export_range(36, 50, &n2); /* a head inside the range */
    layout_t l;
    walk(x, &l);
    write_seed(d, "valid", x, n, 0, 0);
    write_seed(d, "from_one", x1, n1, 0, 0);
    write_seed(d, "heads", x2, n2, 0, 0);
    write_seed(d, "truncated", x, n / 2, 0, 0);
    write_seed(d, "flipped", x, n, l.ev_at[3] + 40, 1);
    write_seed(d, "head_time", x, n, l.final_at + 15, 1);
    write_seed(d, "version1", x, n, 11, 3);
    char path[512];
    snprintf(path, sizeof path, "%s/verifier_key.txt", d);
    FILE *f = fopen(path, "w");
    osse_buf_t vk;
    osse_buf_init(&vk, 0);
    osse_verifier_key(key(), &vk);
    if (f) {
        fprintf(f, "%s\n", vk.ptr);
        fclose(f);
    }
    osse_buf_close(&vk);
    free(x2);
    free(x1);
    free(x);
}

/* Verifies x as a regular file (its size known, as for a buffer) with
 * chunks of `chunk` bytes (0: the reader's own sizes). */
static int verify_tmpfile(const uint8_t *x, size_t n, size_t chunk, uint64_t *calls,
                          osse_export_info_t *info, osse_err_t *err)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK(fwrite(x, 1, n, f) == n);
    rewind(f);
    uint64_t next = 1;
    osse__export_chunk = chunk;
    int rc = osse_export_verify_file(f, key(), count_cb, &next, info, err);
    osse__export_chunk = 0;
    fclose(f);
    *calls = next - 1;
    return rc;
}

/* The stream reader (chunks, the hasher thread, its leaf hashes ahead, the
 * digest taken from a chunk's saved state) must give exactly what the
 * buffer reader gives: the same code, message, position, named event or
 * head, and the same events handed to the callback, for any chunk size,
 * on the intact export and on damaged ones. */
static void check_same(const uint8_t *x, size_t n, size_t chunk)
{
    osse_export_info_t ib, is;
    osse_err_t eb = {0}, es = {0};
    uint64_t next = 1, calls = 0;
    int rb = osse_export_verify_buf(x, n, key(), count_cb, &next, &ib, &eb);
    int rs = verify_tmpfile(x, n, chunk, &calls, &is, &es);
    CHECK_EQ_INT(rs, rb);
    if (rb)
        CHECK_EQ_STR(es.msg, eb.msg);
    CHECK(is.offset == ib.offset);
    CHECK(is.bad_seq == ib.bad_seq);
    CHECK(is.bad_head == ib.bad_head);
    CHECK(is.verified == ib.verified);
    CHECK(is.last_size == ib.last_size);
    CHECK(memcmp(is.last_root, ib.last_root, 32) == 0);
    CHECK(calls == next - 1);
}

static void test_stream_reader(void)
{
    size_t n;
    uint8_t *x = export_range(0, 0, &n);
    layout_t l;
    walk(x, &l);
    uint8_t *y = osse_malloc(n + 1);
    static const size_t chunks[] = {1, 2, 3, 5, 31, 36, 37, 64, 112, 113, 500, 4096, 0};
    srand(13);
    for (size_t ci = 0; ci < sizeof chunks / sizeof chunks[0]; ci++) {
        size_t c = chunks[ci];
        check_same(x, n, c);
        /* From chunks of a few dozen bytes up, the header fits in the chunks
         * the hasher reads ahead, and it computes every leaf hash ahead
         * (seen by waiting for each one). */
        uint64_t ahead = osse__export_ahead;
        osse__export_wait = 1;
        check_same(x, n, c);
        osse__export_wait = 0;
        if (c == 0 || c >= 64) {
            CHECK(osse__export_ahead - ahead == NEV);
        }
        /* A flipped byte anywhere: an event's length, leaf hash or bytes, a
         * head, the trailer, the closing signature. */
        /* Tiny chunks cost a thread handoff per chunk: fewer rounds. */
        int flips = c && c < 8    ? 3
                    : c && c < 64 ? 10
                                  : 40,
            cuts = c && c < 8    ? 2
                   : c && c < 64 ? 6
                                 : 20;
        for (int k = 0; k < flips; k++) {
            size_t at = k < 8 ? (k < 4 ? l.ev_at[NEV / 2] + (size_t)k * 13 : l.sig_at + (size_t)k)
                              : (size_t)rand() % n;
            memcpy(y, x, n);
            y[at] ^= (uint8_t)(1 + rand() % 255);
            check_same(y, n, c);
        }
        /* Cut short at random places, at an event's start, inside the
         * signature; and one byte too many. */
        for (int k = 0; k < cuts; k++) {
            size_t cut = k == 0 ? l.ev_at[7] : k == 1 ? l.sig_at + 10 : (size_t)rand() % n;
            check_same(x, cut, c);
        }
        memcpy(y, x, n);
        y[n] = 0;
        check_same(y, n + 1, c);
        /* Random chunk sizes on the intact file. */
        check_same(x, n, 1 + (size_t)rand() % 3000);
    }
    /* A range export (frontier in the header, a head at first - 1). */
    free(x);
    x = export_range(100, 250, &n);
    check_same(x, n, 7);
    check_same(x, n, 0);
    free(y);
    free(x);
}

int main(void)
{
    osse_alloc_setup_json();
    if (sodium_init() < 0)
        return 1;
    build_log();
    RUN(test_roundtrip);
    RUN(test_event_damage);
    RUN(test_structure_damage);
    RUN(test_every_byte_bound);
    RUN(test_bad_origin);
    RUN(test_counts_fit);
    RUN(test_old_version);
    RUN(test_stream_reader);
    write_corpus();
    osse_log_close(log_);
    osse_signer_close(signer);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_EXIT();
}
