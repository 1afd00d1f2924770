/* checkpoint.c: the Ed25519 log key, C2SP signed notes and tree heads.
 *
 * Invariant: the secret key is only ever in sodium_malloc memory (guarded,
 * wiped on free) and in the 0600 key file; error messages never include it.
 * Parsing of notes and keys treats every byte as untrusted: fixed maximums,
 * strict base64, no allocation beyond the input's size.
 */
#define _GNU_SOURCE
#include "storage/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/alloc.h"
#include "common/time.h"
#include "common/utf8.h"

#define NOTE_MAX (64 * 1024)
#define KEYFILE_MAX 1024
static const char EM_DASH_SP[] = "\xe2\x80\x94 "; /* U+2014 then a space */

struct osse_signer_s {
    osse_verifier_t pub;
    unsigned char *sk; /* sodium_malloc'd, crypto_sign_SECRETKEYBYTES */
};

/* ---- Small helpers ---- */

int osse_origin_check(const char *name, size_t len, osse_err_t *err)
{
    if (len == 0 || len > OSSE_ORIGIN_MAX)
        return osse_err_set(err, OSSE_EINVAL, "origin: %zu bytes, not 1..%d", len, OSSE_ORIGIN_MAX);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = osse_utf8_decode(name + i, len - i, &cp);
        /* The name is never echoed: it may be bytes a terminal mangles. */
        if (!n)
            return osse_err_set(err, OSSE_EINVAL, "origin: byte %zu is not valid UTF-8", i);
        if (cp == '+')
            return osse_err_set(err, OSSE_EINVAL,
                                "origin: byte %zu is a '+' (it separates a key's fields)", i);
        if (osse_unicode_space(cp))
            return osse_err_set(err, OSSE_EINVAL, "origin: byte %zu is a space (U+%04X)", i,
                                (unsigned)cp);
        if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return osse_err_set(err, OSSE_EINVAL,
                                "origin: byte %zu is a control character (U+%04X)", i,
                                (unsigned)cp);
        i += n;
    }
    return 0;
}

static int name_ok(const char *name, size_t len)
{
    return osse_origin_check(name, len, NULL) == 0;
}

static void compute_key_id(const char *name, const uint8_t pk[32], uint8_t id[4])
{
    crypto_hash_sha256_state st;
    uint8_t h[32];
    static const uint8_t sep[2] = {0x0a, 0x01};
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)name, strlen(name));
    crypto_hash_sha256_update(&st, sep, 2);
    crypto_hash_sha256_update(&st, pk, 32);
    crypto_hash_sha256_final(&st, h);
    memcpy(id, h, 4);
}

void osse_key_id_hex(const uint8_t id[4], char out[9])
{
    sodium_bin2hex(out, 9, id, 4);
}

static int append_b64(osse_buf_t *out, const uint8_t *bin, size_t len)
{
    char tmp[256];
    if (sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL) > sizeof tmp)
        return OSSE_EINVAL;
    sodium_bin2base64(tmp, sizeof tmp, bin, len, sodium_base64_VARIANT_ORIGINAL);
    return osse_buf_puts(out, tmp);
}

/* Strict base64 (padding required, nothing ignored) of exactly want bytes. */
static int b64_exact(const char *s, size_t len, uint8_t *out, size_t want)
{
    size_t got = 0;
    const char *end = NULL;
    if (len != sodium_base64_ENCODED_LEN(want, sodium_base64_VARIANT_ORIGINAL) - 1)
        return -1;
    if (sodium_base642bin(out, want, s, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0)
        return -1;
    return got == want && end == s + len ? 0 : -1;
}

/* ---- Verifiers ---- */

int osse_verifier_init(osse_verifier_t *v, const char *name, const uint8_t pk[32])
{
    size_t n = strlen(name);
    if (n > OSSE_ORIGIN_MAX)
        return OSSE_EINVAL;
    memset(v, 0, sizeof *v);
    memcpy(v->name, name, n);
    memcpy(v->pk, pk, 32);
    compute_key_id(name, pk, v->key_id);
    return 0;
}

int osse_verifier_parse(osse_verifier_t *v, const char *key, size_t len, osse_err_t *err)
{
    uint8_t raw[33];
    while (len && (key[len - 1] == '\n' || key[len - 1] == '\r' || key[len - 1] == ' '))
        len--;
    if (len > 1024)
        return osse_err_set(err, OSSE_EPARSE, "key: too long");
    /* A bare base64 public key (32 bytes, or 33 with the 0x01 type); base64
     * has '+' too, so try it before splitting "name+id+key". */
    if (b64_exact(key, len, raw, 32) == 0)
        return osse_verifier_init(v, "", raw) ? OSSE_EPARSE : 0;
    if (b64_exact(key, len, raw, 33) == 0 && raw[0] == 0x01)
        return osse_verifier_init(v, "", raw + 1) ? OSSE_EPARSE : 0;
    const char *p1 = memchr(key, '+', len);
    if (!p1)
        return osse_err_set(err, OSSE_EPARSE, "key: not base64 of an Ed25519 public key");
    size_t nlen = (size_t)(p1 - key);
    const char *rest = p1 + 1;
    size_t rlen = len - nlen - 1;
    const char *p2 = memchr(rest, '+', rlen);
    osse_err_t why;
    if (osse_origin_check(key, nlen, &why) != 0)
        return osse_err_set(err, OSSE_EPARSE, "key: the name is not a valid %s", why.msg);
    if (!p2 || p2 - rest != 8)
        return osse_err_set(err, OSSE_EPARSE, "key: expected <name>+<8 hex>+<base64>");
    uint8_t id[4];
    size_t idlen = 0;
    const char *hend = NULL;
    if (sodium_hex2bin(id, 4, rest, 8, NULL, &idlen, &hend) != 0 || idlen != 4 || hend != rest + 8)
        return osse_err_set(err, OSSE_EPARSE, "key: bad key id hex");
    for (int i = 0; i < 8; i++)
        if (rest[i] >= 'A' && rest[i] <= 'F')
            return osse_err_set(err, OSSE_EPARSE, "key: key id must be lowercase hex");
    const char *b = p2 + 1;
    size_t blen = len - (size_t)(b - key);
    if (b64_exact(b, blen, raw, 33) != 0 || raw[0] != 0x01)
        return osse_err_set(err, OSSE_EPARSE, "key: not an Ed25519 (0x01) base64 key");
    char name[OSSE_ORIGIN_MAX + 1];
    memcpy(name, key, nlen);
    name[nlen] = '\0';
    osse_verifier_init(v, name, raw + 1);
    if (memcmp(v->key_id, id, 4) != 0)
        return osse_err_set(err, OSSE_EPARSE, "key: key id does not match the name and key");
    return 0;
}

int osse_verifier_key(const osse_verifier_t *v, osse_buf_t *out)
{
    char hex[9];
    uint8_t raw[33];
    raw[0] = 0x01;
    memcpy(raw + 1, v->pk, 32);
    osse_key_id_hex(v->key_id, hex);
    int rc = osse_buf_printf(out, "%s+%s+", v->name, hex);
    return rc ? rc : append_b64(out, raw, 33);
}

/* ---- The signer ---- */

static int signer_new(const char *name, const uint8_t seed[32], osse_signer_t **out,
                      osse_err_t *err)
{
    int rc;
    *out = NULL;
    if ((rc = osse_origin_check(name, strlen(name), err)))
        return rc;
    osse_signer_t *s = osse_calloc(1, sizeof *s);
    s->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (!s->sk) {
        free(s);
        return osse_err_set(err, OSSE_ENOMEM, "out of memory");
    }
    uint8_t pk[32];
    crypto_sign_seed_keypair(pk, s->sk, seed);
    osse_verifier_init(&s->pub, name, pk);
    *out = s;
    return 0;
}

int osse_signer_from_seed(const char *name, const uint8_t seed[32], osse_signer_t **out,
                          osse_err_t *err)
{
    return signer_new(name, seed, out, err);
}

void osse_signer_close(osse_signer_t *s)
{
    if (!s)
        return;
    sodium_free(s->sk);
    free(s);
}

const osse_verifier_t *osse_signer_verifier(const osse_signer_t *s)
{
    return &s->pub;
}

/* Reads "PRIVATE+KEY+<name>+<hex>+<base64(0x01||seed)>" into seed and the
 * stored name (the log's origin) into name. */
static int read_key_file(const char *path, unsigned char *seed, char name[OSSE_ORIGIN_MAX + 1],
                         osse_err_t *err)
{
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);
    char *text = sodium_malloc(KEYFILE_MAX + 1);
    unsigned char *raw = sodium_malloc(33);
    struct stat st;
    ssize_t n = 0;
    if (!text || !raw) {
        rc = osse_err_set(err, OSSE_ENOMEM, "out of memory");
        goto out;
    }
    if (fd < 0) {
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || (st.st_mode & 077)) {
        rc = osse_err_set(err, OSSE_EFORBIDDEN,
                          "%s: readable by group or others (mode %o): chmod 600 it", path,
                          (unsigned)(st.st_mode & 0777));
        goto out;
    }
    for (;;) {
        ssize_t r = read(fd, text + n, (size_t)(KEYFILE_MAX - n));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = osse_err_set(err, OSSE_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0 || (n += r) == KEYFILE_MAX)
            break;
    }
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
        n--;
    text[n] = '\0';
    /* The name has no '+', the key id is 8 hex digits, and the base64 after
     * them may itself contain '+'. */
    char *name_end = strncmp(text, "PRIVATE+KEY+", 12) == 0 ? strchr(text + 12, '+') : NULL;
    char *b64 = name_end && strlen(name_end) > 10 && name_end[9] == '+' ? name_end + 10 : NULL;
    if (!b64 || b64_exact(b64, strlen(b64), raw, 33) != 0 || raw[0] != 0x01) {
        rc = osse_err_set(err, OSSE_ECORRUPT, "%s: not an Ed25519 private key", path);
        goto out;
    }
    size_t nlen = (size_t)(name_end - (text + 12));
    if (!name_ok(text + 12, nlen)) {
        rc = osse_err_set(err, OSSE_ECORRUPT, "%s: the key's name is not a valid origin", path);
        goto out;
    }
    memcpy(name, text + 12, nlen);
    name[nlen] = '\0';
    memcpy(seed, raw + 1, 32);
out:
    if (fd >= 0)
        close(fd);
    sodium_free(text);
    sodium_free(raw);
    return rc;
}

static int write_key_file(const char *dir, const char *path, const osse_signer_t *s,
                          osse_err_t *err)
{
    char tmp[4096 + 8];
    int rc = 0, fd = -1;
    osse_buf_t line;
    uint8_t *raw = sodium_malloc(33);
    char *b64 = sodium_malloc(64);
    osse_buf_init(&line, 0);
    if (!raw || !b64) {
        rc = osse_err_set(err, OSSE_ENOMEM, "out of memory");
        goto out;
    }
    raw[0] = 0x01;
    crypto_sign_ed25519_sk_to_seed(raw + 1, s->sk);
    sodium_bin2base64(b64, 64, raw, 33, sodium_base64_VARIANT_ORIGINAL);
    char hex[9];
    osse_key_id_hex(s->pub.key_id, hex);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    /* The line is assembled piecewise with write() so that the secret never
     * passes through an ordinary heap buffer. */
    char head[OSSE_ORIGIN_MAX + 32];
    int hl = snprintf(head, sizeof head, "PRIVATE+KEY+%s+%s+", s->pub.name, hex);
    size_t bl = strlen(b64);
    if (write(fd, head, (size_t)hl) != hl || write(fd, b64, bl) != (ssize_t)bl ||
        write(fd, "\n", 1) != 1 || fsync(fd) != 0) {
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    osse_buf_close(&line);
    sodium_free(raw);
    sodium_free(b64);
    return rc;
}

/* "<host name>/log", or OSSE_DEFAULT_ORIGIN when the host name does not make
 * a valid origin: a name that says where the log lives, for a new key that
 * was given none. */
static void default_origin(char out[OSSE_ORIGIN_MAX + 1])
{
    char host[OSSE_ORIGIN_MAX + 1] = {0};
    if (gethostname(host, sizeof host - 1) == 0 && host[0] &&
        (size_t)snprintf(out, OSSE_ORIGIN_MAX + 1, "%s/log", host) <= OSSE_ORIGIN_MAX &&
        name_ok(out, strlen(out)))
        return;
    strcpy(out, OSSE_DEFAULT_ORIGIN);
}

int osse_signer_open(const char *dir, const char *name, osse_signer_t **out, osse_err_t *err)
{
    char path[4096], stored[OSSE_ORIGIN_MAX + 1];
    int rc;
    *out = NULL;
    if (name && (rc = osse_origin_check(name, strlen(name), err)))
        return rc;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, OSSE_KEY_FILE) >= sizeof path - 8)
        return osse_err_set(err, OSSE_EINVAL, "data folder path too long");
    unsigned char *seed = sodium_malloc(32);
    if (!seed)
        return osse_err_set(err, OSSE_ENOMEM, "out of memory");
    if (access(path, F_OK) == 0) {
        if ((rc = read_key_file(path, seed, stored, err)))
            goto out;
        /* Every head (and licence) already signed names the stored origin,
         * and verifiers hold the key under it: another name would start a
         * second log with the same key. */
        if (name && strcmp(name, stored) != 0) {
            rc = osse_err_set(err, OSSE_ECONFLICT,
                              "the origin asked for, \"%s\", is not \"%s\", the name of this "
                              "log's key (%s): a log's origin cannot change",
                              name, stored, path);
            goto out;
        }
        rc = signer_new(stored, seed, out, err);
        goto out;
    }
    if (!name) {
        default_origin(stored);
        name = stored;
    }
    randombytes_buf(seed, 32);
    if ((rc = signer_new(name, seed, out, err)))
        goto out;
    if ((rc = write_key_file(dir, path, *out, err))) {
        osse_signer_close(*out);
        *out = NULL;
    }
out:
    sodium_free(seed);
    return rc;
}

void osse_signer_sign_digest(const osse_signer_t *s, const uint8_t digest[32], uint8_t sig[64])
{
    crypto_sign_detached(sig, NULL, digest, 32, s->sk);
}

int osse_signer_sign_jws(const osse_signer_t *s, const char *input, size_t len, uint8_t sig[64])
{
    if (len <= 32)
        return OSSE_EINVAL;
    for (size_t i = 0; i < len; i++) {
        char c = input[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return OSSE_EINVAL;
    }
    crypto_sign_detached(sig, NULL, (const unsigned char *)input, len, s->sk);
    return 0;
}

int osse_signer_sign_note(const osse_signer_t *s, const char *text, size_t len, osse_buf_t *out)
{
    /* A text of 32 bytes could be an export's digest (osse_signer_sign_digest):
     * no note that short is signed, so that one signature never serves as
     * the other. */
    if (len <= 32 || text[len - 1] != '\n')
        return OSSE_EINVAL;
    uint8_t blob[68];
    memcpy(blob, s->pub.key_id, 4);
    crypto_sign_detached(blob + 4, NULL, (const unsigned char *)text, len, s->sk);
    int rc;
    if ((rc = osse_buf_append(out, text, len)) || (rc = osse_buf_puts(out, "\n")) ||
        (rc = osse_buf_puts(out, EM_DASH_SP)) || (rc = osse_buf_puts(out, s->pub.name)) ||
        (rc = osse_buf_puts(out, " ")) || (rc = append_b64(out, blob, sizeof blob)) ||
        (rc = osse_buf_puts(out, "\n")))
        return rc;
    return 0;
}

/* ---- Heads ---- */

int osse_head_body(const osse_head_t *h, osse_buf_t *out)
{
    int rc = osse_buf_printf(out, "%s\n%" PRIu64 "\n", h->origin, h->size);
    if (!rc)
        rc = append_b64(out, h->root, 32);
    return rc ? rc : osse_buf_puts(out, "\n");
}

int osse_signer_sign_head(const osse_signer_t *s, uint64_t size, const uint8_t root[32],
                          int64_t at_ms, osse_head_t *out)
{
    osse_buf_t body;
    memset(out, 0, sizeof *out);
    memcpy(out->origin, s->pub.name, sizeof out->origin);
    out->size = size;
    memcpy(out->root, root, 32);
    out->at_ms = at_ms;
    memcpy(out->key_id, s->pub.key_id, 4);
    osse_buf_init(&body, 0);
    int rc = osse_head_body(out, &body);
    if (!rc)
        crypto_sign_detached(out->sig, NULL, (const unsigned char *)body.ptr, body.len, s->sk);
    osse_buf_close(&body);
    return rc;
}

int osse_head_note(const osse_head_t *h, osse_buf_t *out)
{
    uint8_t blob[68];
    memcpy(blob, h->key_id, 4);
    memcpy(blob + 4, h->sig, 64);
    int rc;
    if ((rc = osse_head_body(h, out)) || (rc = osse_buf_puts(out, "\n")) ||
        (rc = osse_buf_puts(out, EM_DASH_SP)) || (rc = osse_buf_puts(out, h->origin)) ||
        (rc = osse_buf_puts(out, " ")) || (rc = append_b64(out, blob, sizeof blob)) ||
        (rc = osse_buf_puts(out, "\n")))
        return rc;
    return 0;
}

json_t *osse_head_to_json(const osse_head_t *h)
{
    char root[65], kid[9], sig[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
    char at[OSSE_TIME_LEN];
    sodium_bin2hex(root, sizeof root, h->root, 32);
    osse_key_id_hex(h->key_id, kid);
    sodium_bin2base64(sig, sizeof sig, h->sig, 64, sodium_base64_VARIANT_ORIGINAL);
    osse_time_fmt(h->at_ms, at);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "origin", h->origin, "size",
                     (json_int_t)h->size, "root", root, "signature", sig, "key_id", kid, "at", at);
}

int osse_head_verify(const osse_verifier_t *v, const osse_head_t *h, osse_err_t *err)
{
    if (v->name[0] && strcmp(v->name, h->origin) != 0)
        return osse_err_set(err, OSSE_ECORRUPT,
                            "head of size %" PRIu64 ": origin \"%s\" is not the key's name \"%s\"",
                            h->size, h->origin, v->name);
    if (!v->name[0]) {
        /* A bare public key has no name: the head's origin supplies it. */
        uint8_t id[4];
        compute_key_id(h->origin, v->pk, id);
        if (memcmp(id, h->key_id, 4) != 0)
            return osse_err_set(err, OSSE_ECORRUPT,
                                "head of size %" PRIu64 ": key id does not match the key", h->size);
    } else if (memcmp(v->key_id, h->key_id, 4) != 0) {
        return osse_err_set(err, OSSE_ECORRUPT,
                            "head of size %" PRIu64 ": signed by another key id", h->size);
    }
    osse_buf_t body;
    osse_buf_init(&body, 0);
    int rc = osse_head_body(h, &body);
    if (rc) {
        osse_buf_close(&body);
        return osse_err_set(err, rc, "out of memory");
    }
    int bad =
        crypto_sign_verify_detached(h->sig, (const unsigned char *)body.ptr, body.len, v->pk) != 0;
    osse_buf_close(&body);
    if (bad)
        return osse_err_set(err, OSSE_ECORRUPT, "head of size %" PRIu64 ": bad signature", h->size);
    return 0;
}

int osse_note_open(const osse_verifier_t *v, const char *note, size_t len, size_t *text_len,
                   osse_err_t *err)
{
    *text_len = 0;
    if (len > NOTE_MAX)
        return osse_err_set(err, OSSE_EPARSE, "note: longer than %d bytes", NOTE_MAX);
    if (memchr(note, '\0', len))
        return osse_err_set(err, OSSE_EPARSE, "note: contains a NUL byte");
    /* The signatures follow the last blank line. */
    size_t split = 0;
    int found = 0;
    for (size_t i = len; i >= 2; i--)
        if (note[i - 1] == '\n' && note[i - 2] == '\n') {
            split = i - 1; /* text = note[0..split), ends in '\n' */
            found = 1;
            break;
        }
    if (!found || split == 0 || len == 0 || note[len - 1] != '\n')
        return osse_err_set(err, OSSE_EPARSE, "note: no blank line before signatures");
    size_t pos = split + 1;
    size_t dash = sizeof EM_DASH_SP - 1;
    int any = 0;
    while (pos < len) {
        const char *line = note + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = (size_t)(nl - line);
        pos += ll + 1;
        if (ll < dash || memcmp(line, EM_DASH_SP, dash) != 0)
            return osse_err_set(err, OSSE_EPARSE, "note: malformed signature line");
        const char *name = line + dash;
        const char *sp = memchr(name, ' ', ll - dash);
        if (!sp)
            return osse_err_set(err, OSSE_EPARSE, "note: malformed signature line");
        size_t nlen = (size_t)(sp - name);
        const char *b = sp + 1;
        size_t blen = ll - dash - nlen - 1;
        if (!name_ok(name, nlen))
            return osse_err_set(err, OSSE_EPARSE, "note: bad key name in a signature line");
        if (v->name[0] && (nlen != strlen(v->name) || memcmp(name, v->name, nlen) != 0))
            continue;
        uint8_t blob[68];
        if (b64_exact(b, blen, blob, sizeof blob) != 0)
            continue; /* another algorithm's signature, or a different length */
        uint8_t id[4];
        if (v->name[0]) {
            memcpy(id, v->key_id, 4);
        } else {
            char nm[OSSE_ORIGIN_MAX + 1];
            memcpy(nm, name, nlen);
            nm[nlen] = '\0';
            compute_key_id(nm, v->pk, id);
        }
        if (memcmp(blob, id, 4) != 0)
            continue;
        any = 1;
        if (crypto_sign_verify_detached(blob + 4, (const unsigned char *)note, split, v->pk) == 0) {
            *text_len = split;
            return 0;
        }
    }
    return osse_err_set(err, OSSE_ECORRUPT,
                        any ? "note: the signature does not verify"
                            : "note: no signature by this key");
}

int osse_head_parse_note(const osse_verifier_t *v, const char *note, size_t len, osse_head_t *out,
                         osse_err_t *err)
{
    size_t tl;
    int rc = osse_note_open(v, note, len, &tl, err);
    if (rc)
        return rc;
    memset(out, 0, sizeof *out);
    const char *p = note, *end = note + tl;
    const char *l1 = memchr(p, '\n', (size_t)(end - p));
    if (!l1 || !name_ok(p, (size_t)(l1 - p)))
        return osse_err_set(err, OSSE_EPARSE, "checkpoint: bad origin line");
    memcpy(out->origin, p, (size_t)(l1 - p));
    p = l1 + 1;
    const char *l2 = memchr(p, '\n', (size_t)(end - p));
    if (!l2 || l2 == p || l2 - p > 20 || (*p == '0' && l2 - p > 1))
        return osse_err_set(err, OSSE_EPARSE, "checkpoint: bad size line");
    uint64_t size = 0;
    for (const char *q = p; q < l2; q++) {
        if (*q < '0' || *q > '9' || size > (UINT64_MAX - 9) / 10)
            return osse_err_set(err, OSSE_EPARSE, "checkpoint: bad size line");
        size = size * 10 + (uint64_t)(*q - '0');
    }
    out->size = size;
    p = l2 + 1;
    const char *l3 = memchr(p, '\n', (size_t)(end - p));
    if (!l3 || b64_exact(p, (size_t)(l3 - p), out->root, 32) != 0)
        return osse_err_set(err, OSSE_EPARSE, "checkpoint: bad root hash line");
    /* Signature blob of the matching line: recover key id and signature. */
    const char *sigs = note + tl + 1;
    size_t dash = sizeof EM_DASH_SP - 1;
    while (sigs < note + len) {
        const char *nl = memchr(sigs, '\n', (size_t)(note + len - sigs));
        const char *name = sigs + dash;
        const char *sp = memchr(name, ' ', (size_t)(nl - name));
        uint8_t blob[68];
        if (sp && (size_t)(sp - name) == strlen(out->origin) &&
            memcmp(name, out->origin, (size_t)(sp - name)) == 0 &&
            b64_exact(sp + 1, (size_t)(nl - sp - 1), blob, 68) == 0) {
            memcpy(out->key_id, blob, 4);
            memcpy(out->sig, blob + 4, 64);
            /* The copy must be the one that verified. */
            if (osse_head_verify(v, out, NULL) == 0)
                return 0;
        }
        sigs = nl + 1;
    }
    /* Signed with v under a name other than the origin, or with extension
     * lines: the note is valid, but it is not one of our heads. */
    return osse_err_set(err, OSSE_EPARSE,
                        "checkpoint: not signed by its origin's key over its plain body");
}

/* ---- Stored heads ---- */

int osse_head_encode(const osse_head_t *h, osse_buf_t *out)
{
    uint8_t fixed[8 + 8 + 32 + 4 + 64];
    osse_be_put(fixed, h->size, 8);
    osse_be_put(fixed + 8, (uint64_t)h->at_ms, 8);
    memcpy(fixed + 16, h->root, 32);
    memcpy(fixed + 48, h->key_id, 4);
    memcpy(fixed + 52, h->sig, 64);
    int rc = osse_buf_append(out, fixed, sizeof fixed);
    return rc ? rc : osse_buf_append(out, h->origin, strlen(h->origin));
}

int osse_head_decode(const void *p, size_t len, osse_head_t *out, osse_err_t *err)
{
    const uint8_t *b = p;
    if (len < 116 || len - 116 > OSSE_ORIGIN_MAX)
        return osse_err_set(err, OSSE_ECORRUPT, "stored head: %zu bytes", len);
    memset(out, 0, sizeof *out);
    out->size = osse_be_get(b, 8);
    out->at_ms = (int64_t)osse_be_get(b + 8, 8);
    memcpy(out->root, b + 16, 32);
    memcpy(out->key_id, b + 48, 4);
    memcpy(out->sig, b + 52, 64);
    memcpy(out->origin, b + 116, len - 116);
    if (!name_ok(out->origin, len - 116))
        return osse_err_set(err, OSSE_ECORRUPT, "stored head: its origin is not a valid origin");
    return 0;
}

int osse_head_store(osse_batch_t *b, const osse_head_t *h)
{
    osse_buf_t v;
    uint8_t key[9];
    key[0] = 'h';
    osse_be_put(key + 1, h->size, 8);
    osse_buf_init(&v, 0);
    int rc = osse_head_encode(h, &v);
    if (!rc)
        rc = osse_batch_put(b, key, sizeof key, v.ptr, v.len);
    if (!rc)
        rc = osse_batch_put(b, "c", 1, v.ptr, v.len);
    osse_buf_close(&v);
    return rc;
}

int osse_head_load_latest(osse_log_t *log, osse_head_t *out, osse_err_t *err)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = osse_log_kv_get(log, "c", 1, &val, &vlen, err);
    if (rc == OSSE_ENOTFOUND)
        return osse_err_set(err, OSSE_ENOTFOUND, "no signed head yet");
    if (rc)
        return rc;
    rc = osse_head_decode(val, vlen, out, err);
    free(val);
    return rc;
}

typedef struct scan_s {
    uint64_t min, max;
    osse_head_cb cb;
    void *ud;
    osse_err_t *err;
    int done;
} scan_t;

enum { SCAN_PAST_MAX = 1 };

static int scan_one(void *ud, const void *key, size_t klen, const void *val, size_t vlen)
{
    scan_t *s = ud;
    osse_head_t h;
    if (klen != 9)
        return 0; /* not ours */
    uint64_t size = osse_be_get((const uint8_t *)key + 1, 8);
    if (size < s->min)
        return 0;
    if (size > s->max) {
        s->done = 1; /* keys are big-endian: every later head is larger */
        return SCAN_PAST_MAX;
    }
    int rc = osse_head_decode(val, vlen, &h, s->err);
    if (rc)
        return rc;
    if (h.size != size)
        return osse_err_set(s->err, OSSE_ECORRUPT,
                            "stored head under size %" PRIu64 " says size %" PRIu64, size, h.size);
    return s->cb(s->ud, &h);
}

int osse_head_scan(osse_log_t *log, uint64_t min_size, uint64_t max_size, osse_head_cb cb, void *ud,
                   osse_err_t *err)
{
    scan_t s = {min_size, max_size, cb, ud, err, 0};
    int rc = osse_log_kv_scan(log, "h", 1, scan_one, &s, err);
    return s.done && rc == SCAN_PAST_MAX ? 0 : rc;
}
