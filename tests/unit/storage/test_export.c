/* test_export.c: a real log of a few hundred events with signed heads is
 * exported and verified; then every kind of damage (a flipped byte in each
 * event, a deleted, duplicated or swapped event, truncation at many offsets,
 * garbage appended, a bad signature, lying lengths, a forged leaf hash) must
 * be reported with its position, never crash (ASan), and never pass. */
#define _GNU_SOURCE /* nftw, mkdtemp, open_memstream */
#include <ftw.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/checkpoint.h"
#include "storage/event.h"
#include "storage/export.h"
#include "storage/log.h"
#include "storage/merkle.h"
#include "tests/test.h"

#define NEV 300

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
    CHECK_EQ_INT(osse_signer_open(dir, NULL, &signer, &err), 0);
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
            ev.type = seq % 3 ? "StepOpened" : "TaskDecided";
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
    size_t heads_at, nheads;
    size_t ev_at[NEV + 1]; /* offset of each event record, then of the trailer */
    size_t nev;
} layout_t;

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void walk(const uint8_t *x, layout_t *l)
{
    size_t o = 8 + 4;
    size_t olen = be(x + o, 2);
    o += 2 + olen + 32 + 8;
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

    /* Every byte of the header and heads flipped: refused (the at_ms field
     * of a head is informational, not signed, so it is skipped). */
    for (size_t i = 0; i < l.ev_at[0]; i++) {
        if (i >= l.heads_at && (i - l.heads_at) % 112 >= 8 && (i - l.heads_at) % 112 < 16)
            continue;
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
        {n - 8, 8, n + 1},               /* total length */
        {n - 8, 8, 0xffffffffffffffffULL},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        memcpy(y, x, n);
        for (int b = 0; b < lies[i].width; b++)
            y[lies[i].at + b] = (uint8_t)(lies[i].v >> (8 * (lies[i].width - 1 - b)));
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

/* Writes seed files for the fuzz corpus when OSSE_WRITE_CORPUS names a folder. */
static void write_corpus(void)
{
    const char *d = getenv("OSSE_WRITE_CORPUS");
    if (!d)
        return;
    size_t n;
    uint8_t *x = export_range(295, 300, &n);
    char path[512];
    struct {
        const char *name;
        size_t cut;
        size_t flip;
    } seeds[] = {{"valid", 0, 0}, {"truncated", n / 2, 0}, {"flipped", 0, n - 40}};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s.bin", d, seeds[i].name);
        FILE *f = fopen(path, "wb");
        if (!f)
            continue;
        if (seeds[i].flip)
            x[seeds[i].flip] ^= 1;
        fwrite(x, 1, seeds[i].cut ? seeds[i].cut : n, f);
        if (seeds[i].flip)
            x[seeds[i].flip] ^= 1;
        fclose(f);
    }
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
    free(x);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    build_log();
    RUN(test_roundtrip);
    RUN(test_event_damage);
    RUN(test_structure_damage);
    write_corpus();
    osse_log_close(log_);
    osse_signer_close(signer);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return TEST_EXIT();
}
