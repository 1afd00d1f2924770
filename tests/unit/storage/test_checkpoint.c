/* test_checkpoint.c: signed notes against the Go sumdb/note reference
 * vector (the PeterNeumann key), checkpoints signed and verified in their
 * exact C2SP text form and JSON, tampering refused, origins that are not
 * valid UTF-8 or hold a Unicode space refused wherever one is read, the key
 * file's mode, reuse and fixed name, and heads stored in a real log. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "storage/checkpoint.h"
#include "tests/test.h"

static const char VKEY[] = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
static const char SKEY_B64[] = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
static const char TEXT[] = "If you think cryptography is the answer to your problem,\n"
                           "then you don't know what your problem is.\n";
static const char SIGLINE[] = "\xe2\x80\x94 PeterNeumann "
                              "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
                              "qdngotpRZb6KE6RyyBwJnAM=\n";

static void test_reference_vector(void)
{
    uint8_t raw[33];
    size_t n = 0;
    CHECK_EQ_INT(sodium_base642bin(raw, 33, SKEY_B64, strlen(SKEY_B64), NULL, &n, NULL,
                                   sodium_base64_VARIANT_ORIGINAL),
                 0);
    CHECK_EQ_INT(n, 33);
    osse_signer_t *s = NULL;
    CHECK_EQ_INT(osse_signer_from_seed("PeterNeumann", raw + 1, &s, NULL), 0);

    /* Key id and verifier key derived exactly as the reference does. */
    osse_buf_t b;
    osse_buf_init(&b, 0);
    CHECK_EQ_INT(osse_verifier_key(osse_signer_verifier(s), &b), 0);
    CHECK_EQ_STR(b.ptr, VKEY);
    char hex[9];
    osse_key_id_hex(osse_signer_verifier(s)->key_id, hex);
    CHECK_EQ_STR(hex, "c74f20a3");

    /* Ed25519 is deterministic: the signed note is byte for byte the Go one. */
    osse_buf_reset(&b);
    CHECK_EQ_INT(osse_signer_sign_note(s, TEXT, strlen(TEXT), &b), 0);
    char want[512];
    snprintf(want, sizeof want, "%s\n%s", TEXT, SIGLINE);
    CHECK_EQ_STR(b.ptr, want);

    /* And the reference note opens with the parsed verifier key. */
    osse_verifier_t v;
    osse_err_t err;
    CHECK_EQ_INT(osse_verifier_parse(&v, VKEY, strlen(VKEY), &err), 0);
    size_t tl = 0;
    CHECK_EQ_INT(osse_note_open(&v, want, strlen(want), &tl, &err), 0);
    CHECK_EQ_INT(tl, strlen(TEXT));
    /* A changed byte of text, a changed signature, another key: refused. */
    char bad[512];
    strcpy(bad, want);
    bad[5] ^= 1;
    CHECK_EQ_INT(osse_note_open(&v, bad, strlen(bad), &tl, &err), OSSE_ECORRUPT);
    strcpy(bad, want);
    bad[strlen(bad) - 10] = bad[strlen(bad) - 10] == 'A' ? 'B' : 'A';
    CHECK(osse_note_open(&v, bad, strlen(bad), &tl, &err) != 0);

    /* Mangled verifier keys are refused (as the Go tests do). */
    char k[128];
    int accepted = 0;
    for (size_t i = 0; i < strlen(VKEY); i++) {
        strcpy(k, VKEY);
        k[i]++;
        accepted += osse_verifier_parse(&v, k, strlen(k), NULL) == 0;
        accepted += osse_verifier_parse(&v, VKEY, i, NULL) == 0;
    }
    CHECK_EQ_INT(accepted, 0);
    osse_buf_close(&b);
    osse_signer_close(s);
}

static void test_head_sign_verify(void)
{
    uint8_t seed[32], root[32];
    memset(seed, 7, 32);
    memset(root, 0xab, 32);
    osse_signer_t *s = NULL, *other = NULL;
    CHECK_EQ_INT(osse_signer_from_seed(OSSE_DEFAULT_ORIGIN, seed, &s, NULL), 0);
    seed[0] = 8;
    CHECK_EQ_INT(osse_signer_from_seed(OSSE_DEFAULT_ORIGIN, seed, &other, NULL), 0);
    osse_head_t h, h2;
    CHECK_EQ_INT(osse_signer_sign_head(s, 1234, root, 1764554400123, &h), 0);
    const osse_verifier_t *v = osse_signer_verifier(s);
    osse_err_t err;
    CHECK_EQ_INT(osse_head_verify(v, &h, &err), 0);
    CHECK_EQ_INT(osse_head_verify(osse_signer_verifier(other), &h, &err), OSSE_ECORRUPT);

    /* The text note: C2SP tlog-checkpoint, exactly. */
    osse_buf_t b, vk;
    osse_buf_init(&b, 0);
    osse_buf_init(&vk, 0);
    CHECK_EQ_INT(osse_head_note(&h, &b), 0);
    char rootb64[64];
    sodium_bin2base64(rootb64, sizeof rootb64, root, 32, sodium_base64_VARIANT_ORIGINAL);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "osse.local/log\n1234\n%s\n\n\xe2\x80\x94 osse.local/log ",
             rootb64);
    CHECK(strncmp(b.ptr, prefix, strlen(prefix)) == 0);
    CHECK(b.ptr[b.len - 1] == '\n');
    /* Parsed back through the verifier key string, as a witness would. */
    osse_verifier_t pv;
    CHECK_EQ_INT(osse_verifier_key(v, &vk), 0);
    CHECK_EQ_INT(osse_verifier_parse(&pv, vk.ptr, vk.len, &err), 0);
    CHECK_EQ_INT(osse_head_parse_note(&pv, b.ptr, b.len, &h2, &err), 0);
    CHECK_EQ_INT(h2.size, 1234);
    CHECK(memcmp(h2.root, root, 32) == 0 && memcmp(h2.sig, h.sig, 64) == 0);
    CHECK_EQ_STR(h2.origin, "osse.local/log");
    /* A bare base64 public key works too. */
    char pkb64[64];
    sodium_bin2base64(pkb64, sizeof pkb64, v->pk, 32, sodium_base64_VARIANT_ORIGINAL);
    CHECK_EQ_INT(osse_verifier_parse(&pv, pkb64, strlen(pkb64), &err), 0);
    CHECK_EQ_INT(osse_head_verify(&pv, &h, &err), 0);
    CHECK_EQ_INT(osse_head_parse_note(&pv, b.ptr, b.len, &h2, &err), 0);

    /* Tampering: every single-byte change of the note is refused. */
    int accepted = 0;
    for (size_t i = 0; i < b.len; i++) {
        b.ptr[i] ^= 0x04;
        accepted += osse_head_parse_note(v, b.ptr, b.len, &h2, NULL) == 0;
        b.ptr[i] ^= 0x04;
    }
    CHECK_EQ_INT(accepted, 0);
    h2 = h;
    h2.size++;
    CHECK_EQ_INT(osse_head_verify(v, &h2, NULL), OSSE_ECORRUPT);
    h2 = h;
    h2.root[3] ^= 1;
    CHECK_EQ_INT(osse_head_verify(v, &h2, NULL), OSSE_ECORRUPT);
    h2 = h;
    h2.at_ms++; /* informational: not signed */
    CHECK_EQ_INT(osse_head_verify(v, &h2, NULL), 0);

    /* JSON shape. */
    json_t *j = osse_head_to_json(&h);
    CHECK(j != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "origin")), "osse.local/log");
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "size")), 1234);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "root")),
                 "abababababababababababababababababababababababababababababababab");
    char kid[9];
    osse_key_id_hex(h.key_id, kid);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "key_id")), kid);
    CHECK_EQ_STR(json_string_value(json_object_get(j, "at")), "2025-12-01T02:00:00.123Z");
    CHECK_EQ_INT(strlen(json_string_value(json_object_get(j, "signature"))), 88);
    json_decref(j);

    /* Stored encoding round trip. */
    osse_buf_reset(&b);
    CHECK_EQ_INT(osse_head_encode(&h, &b), 0);
    CHECK_EQ_INT(osse_head_decode(b.ptr, b.len, &h2, NULL), 0);
    CHECK(memcmp(&h, &h2, sizeof h) == 0);
    CHECK_EQ_INT(osse_head_decode(b.ptr, 100, &h2, NULL), OSSE_ECORRUPT);

    /* Bad names. */
    osse_signer_t *x = NULL;
    CHECK_EQ_INT(osse_signer_from_seed("a b", seed, &x, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(osse_signer_from_seed("a+b", seed, &x, NULL), OSSE_EINVAL);
    CHECK_EQ_INT(osse_signer_from_seed("", seed, &x, NULL), OSSE_EINVAL);
    osse_buf_close(&b);
    osse_buf_close(&vk);
    osse_signer_close(s);
    osse_signer_close(other);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void on_done(void *ud, int status)
{
    (*(int *)ud)++;
}

typedef struct seen_s {
    int n;
    uint64_t sizes[16];
} seen_t;

static int on_head(void *ud, const osse_head_t *h)
{
    seen_t *s = ud;
    if (s->n < 16)
        s->sizes[s->n] = h->size;
    s->n++;
    return 0;
}

static void test_key_file_and_store(void)
{
    char dir[] = "/tmp/osse-test-ckpt-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/log.key", dir);
    osse_err_t err;
    osse_signer_t *s1 = NULL, *s2 = NULL;
    CHECK_EQ_INT(osse_signer_open(dir, NULL, &s1, &err), 0);
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    /* Reopened: the same key. */
    CHECK_EQ_INT(osse_signer_open(dir, NULL, &s2, &err), 0);
    CHECK(memcmp(osse_signer_verifier(s1)->pk, osse_signer_verifier(s2)->pk, 32) == 0);
    osse_signer_close(s2);
    /* A new key without a name is named after the host. */
    char host[256] = {0}, want[300];
    gethostname(host, sizeof host - 1);
    snprintf(want, sizeof want, "%s/log", host);
    CHECK_EQ_STR(osse_signer_verifier(s1)->name, want);
    /* The name is the key's for good: the same name again is fine, another
     * one is refused and the message names both. */
    CHECK_EQ_INT(osse_signer_open(dir, want, &s2, &err), 0);
    CHECK(memcmp(osse_signer_verifier(s1)->key_id, osse_signer_verifier(s2)->key_id, 4) == 0);
    osse_signer_close(s2);
    s2 = NULL;
    CHECK_EQ_INT(osse_signer_open(dir, "example.org/agency", &s2, &err), OSSE_ECONFLICT);
    CHECK(s2 == NULL);
    CHECK(strstr(err.msg, "\"example.org/agency\"") && strstr(err.msg, want));
    CHECK_EQ_INT(osse_signer_open(dir, "a b", &s2, &err), OSSE_EINVAL);
    /* A key made with a name keeps it when reopened without one. */
    char dir2[] = "/tmp/osse-test-ckpt2-XXXXXX";
    CHECK(mkdtemp(dir2) != NULL);
    CHECK_EQ_INT(osse_signer_open(dir2, "example.org/log", &s2, &err), 0);
    osse_signer_close(s2);
    CHECK_EQ_INT(osse_signer_open(dir2, NULL, &s2, &err), 0);
    CHECK_EQ_STR(osse_signer_verifier(s2)->name, "example.org/log");
    osse_signer_close(s2);
    /* A key file whose name is not a valid origin is refused. */
    char path2[128];
    snprintf(path2, sizeof path2, "%s/log.key", dir2);
    FILE *kf = fopen(path2, "r+");
    CHECK(kf != NULL);
    if (kf) {
        fseek(kf, 12 + 7, SEEK_SET); /* "PRIVATE+KEY+example" */
        fputc(0xff, kf);
        fclose(kf);
    }
    CHECK_EQ_INT(osse_signer_open(dir2, NULL, &s2, &err), OSSE_ECORRUPT);
    nftw(dir2, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    /* A key file others can read is refused. */
    chmod(path, 0644);
    CHECK_EQ_INT(osse_signer_open(dir, NULL, &s2, &err), OSSE_EFORBIDDEN);
    chmod(path, 0600);

    /* Heads as side records in a real log. */
    osse_log_t *log = NULL;
    CHECK_EQ_INT(osse_log_open(dir, &log, &err), 0);
    osse_head_t h;
    CHECK_EQ_INT(osse_head_load_latest(log, &h, &err), OSSE_ENOTFOUND);
    uv_loop_t loop;
    int done = 0;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    CHECK_EQ_INT(osse_log_start(log, &loop, &err), 0);
    uint8_t root[32] = {0};
    uint64_t sizes[] = {1, 5, 255, 256, 300, 70000};
    for (int i = 0; i < 6; i++) {
        osse_batch_t *b = osse_batch_new();
        root[0] = (uint8_t)i;
        CHECK_EQ_INT(osse_signer_sign_head(s1, sizes[i], root, 1000 + i, &h), 0);
        CHECK_EQ_INT(osse_head_store(b, &h), 0);
        osse_log_commit(log, b, on_done, &done);
    }
    osse_log_stop(log);
    CHECK_EQ_INT(done, 6);
    CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
    CHECK_EQ_INT(osse_head_load_latest(log, &h, &err), 0);
    CHECK_EQ_INT(h.size, 70000);
    CHECK_EQ_INT(osse_head_verify(osse_signer_verifier(s1), &h, &err), 0);
    seen_t seen = {0};
    CHECK_EQ_INT(osse_head_scan(log, 5, 300, on_head, &seen, &err), 0);
    CHECK_EQ_INT(seen.n, 4);
    CHECK_EQ_INT(seen.sizes[0], 5);
    CHECK_EQ_INT(seen.sizes[1], 255);
    CHECK_EQ_INT(seen.sizes[2], 256);
    CHECK_EQ_INT(seen.sizes[3], 300);
    osse_log_close(log);
    osse_signer_close(s1);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Origins C2SP would not take: not UTF-8 (0xff, a lone continuation byte,
 * overlong forms, a surrogate, cut short), Unicode spaces, '+', controls. */
static const char *const BAD_ORIGINS[] = {
    "\xff",
    "a\x80z",
    "a\xc0\xafz",
    "a\xe0\x80\xafz",
    "a\xed\xa0\x80z",
    "a\xf4\x90\x80\x80",
    "a\xc3",
    "a\xc2\xa0z",
    "a\xe3\x80\x80z",
    "a\xc2\x85z",
    "a\xe1\x9a\x80z",
    "a\xe2\x80\x80z",
    "a\xe2\x80\x8az",
    "a\xe2\x80\xa8z",
    "a\xe2\x80\xa9z",
    "a\xe2\x80\xafz",
    "a\xe2\x81\x9fz",
    "a b",
    "a\tb",
    "a+b",
    "a\x7f",
    "a\xc2\x9fz",
    "",
};
#define NBAD (sizeof BAD_ORIGINS / sizeof BAD_ORIGINS[0])

/* The verifier key "<name>+<id>+<key>" of pk under any name, valid or not. */
static void raw_vkey(const char *name, const uint8_t pk[32], char *out, size_t cap)
{
    uint8_t h[32], raw[33];
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const uint8_t *)name, strlen(name));
    crypto_hash_sha256_update(&st, (const uint8_t *)"\n\x01", 2);
    crypto_hash_sha256_update(&st, pk, 32);
    crypto_hash_sha256_final(&st, h);
    raw[0] = 0x01;
    memcpy(raw + 1, pk, 32);
    char hex[9], b64[64];
    sodium_bin2hex(hex, sizeof hex, h, 4);
    sodium_bin2base64(b64, sizeof b64, raw, 33, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, "%s+%s+%s", name, hex, b64);
}

static void test_origins(void)
{
    static const char *const good[] = {
        "example.org/log", "osse.local/log", "ex\xc3\xa4mple.org/log",
        "\xe4\xbe\x8b\xe3\x81\x88.jp/\xe3\x83\xad\xe3\x82\xb0", "\xf0\x9f\x93\x9c/log"};
    osse_err_t err;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ_INT(osse_origin_check(good[i], strlen(good[i]), &err), 0);
    char longest[257];
    memset(longest, 'a', 256);
    longest[256] = '\0';
    CHECK_EQ_INT(osse_origin_check(longest, 255, &err), 0);
    CHECK_EQ_INT(osse_origin_check(longest, 256, &err), OSSE_EINVAL);

    uint8_t seed[32], pk[32], sk[64], root[32];
    memset(seed, 9, 32);
    memset(root, 0x5a, 32);
    crypto_sign_seed_keypair(pk, sk, seed);
    char rootb64[64];
    sodium_bin2base64(rootb64, sizeof rootb64, root, 32, sodium_base64_VARIANT_ORIGINAL);
    int accepted = 0;
    for (size_t i = 0; i < NBAD; i++) {
        const char *o = BAD_ORIGINS[i];
        size_t n = strlen(o);
        if (osse_origin_check(o, n, &err) != OSSE_EINVAL) {
            fprintf(stderr, "origin %zu accepted\n", i);
            accepted++;
        }
        osse_signer_t *x = NULL;
        accepted += osse_signer_from_seed(o, seed, &x, NULL) == 0;
        osse_signer_close(x);
        if (n == 0)
            continue;
        /* As the name of a verifier key, with its right key id. */
        char vk[400];
        osse_verifier_t v;
        raw_vkey(o, pk, vk, sizeof vk);
        if (osse_verifier_parse(&v, vk, strlen(vk), &err) == 0) {
            fprintf(stderr, "verifier key %zu accepted\n", i);
            accepted++;
        }
        /* As a checkpoint's origin line and signature line, rightly signed. */
        char body[400], note[600], sigb64[128];
        snprintf(body, sizeof body, "%s\n7\n%s\n", o, rootb64);
        uint8_t blob[68];
        sodium_hex2bin(blob, 4, vk + n + 1, 8, NULL, NULL, NULL); /* the key id */
        crypto_sign_detached(blob + 4, NULL, (const uint8_t *)body, strlen(body), sk);
        sodium_bin2base64(sigb64, sizeof sigb64, blob, 68, sodium_base64_VARIANT_ORIGINAL);
        snprintf(note, sizeof note, "%s\n\xe2\x80\x94 %s %s\n", body, o, sigb64);
        osse_verifier_init(&v, "", pk);
        osse_head_t h;
        if (osse_head_parse_note(&v, note, strlen(note), &h, &err) == 0) {
            fprintf(stderr, "checkpoint %zu accepted\n", i);
            accepted++;
        }
        /* As a stored head's origin. */
        osse_buf_t b;
        osse_buf_init(&b, 0);
        memset(&h, 0, sizeof h);
        memcpy(h.origin, o, n);
        osse_head_encode(&h, &b);
        if (osse_head_decode(b.ptr, b.len, &h, &err) == 0) {
            fprintf(stderr, "stored head %zu accepted\n", i);
            accepted++;
        }
        osse_buf_close(&b);
    }
    CHECK_EQ_INT(accepted, 0);

    /* The error says where and why, without echoing the bytes. */
    CHECK_EQ_INT(osse_origin_check("ab\xc2\xa0", 4, &err), OSSE_EINVAL);
    CHECK(strstr(err.msg, "byte 2") && strstr(err.msg, "U+00A0"));
    CHECK_EQ_INT(osse_origin_check("a\xc0\xaf", 3, &err), OSSE_EINVAL);
    CHECK(strstr(err.msg, "byte 1") && strstr(err.msg, "UTF-8"));

    /* A note of 32 bytes or fewer is never signed: it could pass for an
     * export's closing signature (a signed digest). */
    osse_signer_t *s = NULL;
    osse_buf_t b;
    osse_buf_init(&b, 0);
    CHECK_EQ_INT(osse_signer_from_seed("example.org/log", seed, &s, NULL), 0);
    CHECK_EQ_INT(osse_signer_sign_note(s, "0123456789012345678901234567890\n", 32, &b),
                 OSSE_EINVAL);
    CHECK_EQ_INT(osse_signer_sign_note(s, "01234567890123456789012345678901\n", 33, &b), 0);
    osse_buf_close(&b);
    osse_signer_close(s);
}

/* RFC 8037 A.4: the Ed25519 JWS of the RFC's own key (A.1) over its
 * signing input is its signature, byte for byte; inputs that could be a
 * note or a digest are refused. */
static void test_jws_rfc8037(void)
{
    static const char D[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    static const char X[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    static const char INPUT[] = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    static const char SIG[] = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsP"
                              "t9g7sVvpAr_MuM0KAg";
    uint8_t seed[32], x[32], sig[64];
    size_t n = 0;
    CHECK_EQ_INT(sodium_base642bin(seed, 32, D, strlen(D), NULL, &n, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    CHECK_EQ_INT(n, 32);
    CHECK_EQ_INT(sodium_base642bin(x, 32, X, strlen(X), NULL, &n, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    osse_signer_t *s = NULL;
    CHECK_EQ_INT(osse_signer_from_seed("example.org/log", seed, &s, NULL), 0);
    CHECK(memcmp(osse_signer_verifier(s)->pk, x, 32) == 0);
    CHECK_EQ_INT(osse_signer_sign_jws(s, INPUT, strlen(INPUT), sig), 0);
    char b64[100];
    sodium_bin2base64(b64, sizeof b64, sig, 64, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK_EQ_STR(b64, SIG);
    CHECK_EQ_INT(osse_signer_sign_jws(s, "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZQ", 31, sig), OSSE_EINVAL);
    CHECK_EQ_INT(
        osse_signer_sign_jws(s, "example.org/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAA\n", 44, sig),
        OSSE_EINVAL);
    CHECK_EQ_INT(
        osse_signer_sign_jws(s, "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNp+=", 51, sig),
        OSSE_EINVAL);
    osse_signer_close(s);
}

int main(void)
{
    osse_alloc_setup_json();
    if (sodium_init() < 0)
        return 1;
    RUN(test_reference_vector);
    RUN(test_head_sign_verify);
    RUN(test_origins);
    RUN(test_jws_rfc8037);
    RUN(test_key_file_and_store);
    return TEST_EXIT();
}
