/* keystore.c: request keys wrapped by the master key, in append-only
 * segment files (keystore.h says why and how). Key invariants: key material
 * is held only in sodium_malloc memory or on the stack, wiped after use, and
 * no error message names more than a path and an id; every segment on disk
 * is a run of whole records but for a torn tail after a crash, which load
 * cuts before anything is appended after it; a record never moves (a
 * removal leaves a filler of its length); ks->mu serializes appends (the
 * log's writer thread, the pool) and rewrites (removals); reads take no
 * lock (a rewrite renames a whole file over the old one). */
#define _GNU_SOURCE /* O_CLOEXEC, dirfd */
#include "storage/keystore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "common/alloc.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/map.h"

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CHECK_TEXT "osse key store 1"
#define CHECK_AD "osse/keystore"
#define CHECK_BYTES (NONCE + sizeof CHECK_TEXT - 1 + TAG)

/* A segment is at most OSSE_KEYSEG_BYTES and one group of keys past it:
 * anything far larger is not one of ours. */
#define SEG_READ_MAX (256u << 20)

struct osse_keystore_s {
    char *dir;
    uint8_t *master; /* sodium_malloc, OSSE_KEY_BYTES */
    uv_mutex_t mu;
    uint32_t cur;       /* the segment appended to; 0 = none yet */
    bool cur_ok;        /* cur was read whole by load (or made here) */
    int cur_fd;         /* cur opened O_APPEND; -1 until the first append */
    uint64_t cur_bytes; /* its size */
    size_t cur_records; /* and its records */
};

/* Reads the whole small file at path into buf (at most cap bytes); *n set.
 * Returns 0, OSSE_ENOTFOUND, OSSE_ETOOBIG (more than cap), OSSE_EIO. */
static int read_small(const char *path, uint8_t *buf, size_t cap, size_t *n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? OSSE_ENOTFOUND : OSSE_EIO;
    size_t got = 0;
    int rc = 0;
    for (;;) {
        uint8_t extra;
        ssize_t k = got < cap ? read(fd, buf + got, cap - got) : read(fd, &extra, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = OSSE_EIO;
            break;
        }
        if (k == 0)
            break;
        if (got >= cap) {
            rc = OSSE_ETOOBIG;
            break;
        }
        got += (size_t)k;
    }
    close(fd);
    *n = got;
    return rc;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return OSSE_EIO;
    int rc = fsync(fd) == 0 ? 0 : OSSE_EIO;
    close(fd);
    return rc;
}

/* Writes n bytes to path through a temporary file, fsynced, renamed in
 * place (never half a file under the final name); excl: refuse to replace
 * an existing file (OSSE_EEXISTS). The folder is not fsynced. */
static int write_file(const char *path, const void *p, size_t n, bool excl)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return OSSE_EIO;
    int rc = osse_write_full(fd, p, n) == 0 && fsync(fd) == 0 ? 0 : OSSE_EIO;
    close(fd);
    if (!rc && excl) {
        /* link(2) fails when the name exists: a master key is never
         * replaced by another start. */
        if (link(tmp, path) != 0)
            rc = errno == EEXIST ? OSSE_EEXISTS : OSSE_EIO;
        unlink(tmp);
    } else if (!rc && rename(tmp, path) != 0) {
        rc = OSSE_EIO;
    }
    if (rc)
        unlink(tmp);
    return rc;
}

/* out's first NONCE bytes are its nonce, already there. */
static void seal_at(const uint8_t *master, const void *msg, size_t n, const char *ad, uint8_t *out)
{
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE, NULL, msg, n, (const uint8_t *)ad,
                                               strlen(ad), NULL, out, master);
}

static int seal(const uint8_t *master, const void *msg, size_t n, const char *ad, uint8_t *out)
{
    randombytes_buf(out, NONCE);
    seal_at(master, msg, n, ad, out);
    return 0;
}

/* Opens nonce || ciphertext (n bytes) into out (n - NONCE - TAG bytes). */
static int unseal(const uint8_t *master, const uint8_t *in, size_t n, const char *ad, uint8_t *out)
{
    if (n < NONCE + TAG)
        return OSSE_ECORRUPT;
    return crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in + NONCE, n - NONCE,
                                                      (const uint8_t *)ad, strlen(ad), in,
                                                      master) == 0
               ? 0
               : OSSE_ECORRUPT;
}

bool osse_keystore_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > OSSE_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static int master_load(osse_keystore_t *ks, const char *path, bool create, osse_err_t *err)
{
    uint8_t buf[OSSE_KEY_BYTES];
    size_t n = 0;
    int rc = read_small(path, buf, sizeof buf, &n);
    if (rc == OSSE_ENOTFOUND && create) {
        randombytes_buf(buf, sizeof buf);
        rc = write_file(path, buf, sizeof buf, true);
        if (rc == OSSE_EEXISTS) /* made meanwhile: read that one */
            rc = read_small(path, buf, sizeof buf, &n);
        else if (!rc) {
            n = sizeof buf;
            char dir[4200];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            rc = fsync_dir(slash ? dir : ".");
        }
    }
    if (rc == OSSE_ENOTFOUND)
        rc = osse_err_set(err, rc,
                          "the master key %s is missing: it is made only when the data folder is "
                          "new (give the one this data folder was made with: --master-key FILE)",
                          path);
    else if (rc == OSSE_ETOOBIG || (!rc && n != sizeof buf))
        rc = osse_err_set(err, OSSE_ECORRUPT, "the master key %s is not 32 bytes", path);
    else if (rc)
        rc = osse_err_set(err, rc, "the master key %s cannot be read or made: %s", path,
                          strerror(errno));
    else
        memcpy(ks->master, buf, sizeof buf);
    sodium_memzero(buf, sizeof buf);
    return rc;
}

int osse_keystore_open(const char *dir, const char *master_path, bool create, osse_keystore_t **out,
                       osse_err_t *err)
{
    int rc;
    char path[4200];
    uint8_t check[CHECK_BYTES], text[sizeof CHECK_TEXT - 1];
    size_t n = 0;
    if (sodium_init() < 0)
        return osse_err_set(err, OSSE_EIO, "libsodium cannot start");
    osse_keystore_t *ks = osse_calloc(1, sizeof *ks);
    ks->dir = osse_strdup(dir);
    ks->cur_fd = -1;
    if (uv_mutex_init(&ks->mu) != 0) {
        free(ks->dir);
        free(ks);
        *out = NULL;
        return osse_err_set(err, OSSE_ENOMEM, "the key store's lock cannot be made");
    }
    ks->master = sodium_malloc(OSSE_KEY_BYTES);
    if (!ks->master) {
        rc = osse_err_set(err, OSSE_ENOMEM, "no memory for the master key");
        goto out;
    }
    snprintf(path, sizeof path, "%s/keystore", dir);
    rc = read_small(path, check, sizeof check, &n);
    if (rc == OSSE_ENOTFOUND && !create) {
        rc = osse_err_set(err, rc, "the key store %s is missing (no %s)", dir, path);
        goto out;
    }
    if (rc && rc != OSSE_ENOTFOUND) {
        rc = osse_err_set(err, OSSE_EIO, "the key store %s cannot be read", dir);
        goto out;
    }
    bool fresh = rc == OSSE_ENOTFOUND;
    if ((rc = master_load(ks, master_path, create, err)))
        goto out;
    if (fresh) {
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            rc = osse_err_set(err, OSSE_EIO, "the key store %s cannot be made: %s", dir,
                              strerror(errno));
            goto out;
        }
        seal(ks->master, CHECK_TEXT, sizeof CHECK_TEXT - 1, CHECK_AD, check);
        if ((rc = write_file(path, check, sizeof check, false)) || (rc = fsync_dir(dir))) {
            rc = osse_err_set(err, rc, "the key store %s cannot be written", dir);
            goto out;
        }
    } else if (n != sizeof check || unseal(ks->master, check, n, CHECK_AD, text) ||
               memcmp(text, CHECK_TEXT, sizeof text) != 0) {
        rc = osse_err_set(err, OSSE_EFORBIDDEN,
                          "the master key %s is not the one the key store %s was made with",
                          master_path, dir);
        goto out;
    }
out:
    if (rc) {
        osse_keystore_close(ks);
        ks = NULL;
    }
    *out = ks;
    return rc;
}

void osse_keystore_close(osse_keystore_t *ks)
{
    if (!ks)
        return;
    sodium_free(ks->master); /* wipes */
    if (ks->cur_fd >= 0)
        close(ks->cur_fd);
    uv_mutex_destroy(&ks->mu);
    free(ks->dir);
    free(ks);
}

void osse_keystore_derive(const osse_keystore_t *ks, const char *ctx, uint64_t id, uint8_t *out,
                          size_t n)
{
    OSSE_PRE(strlen(ctx) == crypto_kdf_CONTEXTBYTES && n >= crypto_kdf_BYTES_MIN &&
             n <= crypto_kdf_BYTES_MAX);
    _Static_assert(OSSE_KEY_BYTES == crypto_kdf_KEYBYTES, "the master key is a kdf key");
    crypto_kdf_derive_from_key(out, n, id, ctx, ks->master);
}

int osse_keystore_new_key(osse_keystore_t *ks, const char *id, uint8_t key[OSSE_KEY_BYTES],
                          uint8_t wrapped[OSSE_WRAPPED_BYTES])
{
    if (!osse_keystore_id_ok(id))
        return OSSE_EINVAL;
    randombytes_buf(key, OSSE_KEY_BYTES);
    return seal(ks->master, key, OSSE_KEY_BYTES, id, wrapped);
}

int osse_keystore_new_keys(osse_keystore_t *ks, const char *const *ids, size_t n, uint8_t *keys,
                           uint8_t (*wrapped)[OSSE_WRAPPED_BYTES])
{
    for (size_t i = 0; i < n; i++)
        if (!osse_keystore_id_ok(ids[i]))
            return OSSE_EINVAL;
    /* Two draws for all of them: one getrandom per key and one per nonce
     * were most of a refill's cost. */
    randombytes_buf(keys, n * OSSE_KEY_BYTES);
    uint8_t *nonces = osse_malloc(n * NONCE + 1);
    randombytes_buf(nonces, n * NONCE);
    for (size_t i = 0; i < n; i++) {
        memcpy(wrapped[i], nonces + i * NONCE, NONCE);
        seal_at(ks->master, keys + i * OSSE_KEY_BYTES, OSSE_KEY_BYTES, ids[i], wrapped[i]);
    }
    free(nonces);
    return 0;
}

static void seg_path(const osse_keystore_t *ks, uint32_t seg, const char *suffix, char *out,
                     size_t n)
{
    snprintf(out, n, "%s/%u.seg%s", ks->dir, (unsigned)seg, suffix);
}

/* Whether name is "<n>.seg" with n >= 1 (no leading zero); *seg set. */
static bool seg_name(const char *name, uint32_t *seg)
{
    uint64_t v = 0;
    size_t i = 0;
    if (name[0] < '1' || name[0] > '9')
        return false;
    for (; name[i] >= '0' && name[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(name[i] - '0');
        if (v > UINT32_MAX)
            return false;
    }
    if (strcmp(name + i, ".seg") != 0)
        return false;
    *seg = (uint32_t)v;
    return true;
}

/* A filler: FILLER_MARK || its length (1) || zeros, in a removed record's
 * place (as long: a record is at least 1 + 1 + 72 bytes, at most
 * 1 + OSSE_KEY_ID_MAX + 72). */
#define FILLER_MARK 0xFF
#define REC_MAX (1 + OSSE_KEY_ID_MAX + OSSE_WRAPPED_BYTES)

void osse_keyloc_put(osse_keyloc_t loc, uint8_t out[OSSE_KEYLOC_BYTES])
{
    for (int i = 0; i < 4; i++) {
        out[i] = (uint8_t)(loc.seg >> (24 - 8 * i));
        out[4 + i] = (uint8_t)(loc.off >> (24 - 8 * i));
    }
}

bool osse_keyloc_get(const void *in, size_t n, osse_keyloc_t *loc)
{
    const uint8_t *b = in;
    if (n != OSSE_KEYLOC_BYTES)
        return false;
    loc->seg = loc->off = 0;
    for (int i = 0; i < 4; i++) {
        loc->seg = loc->seg << 8 | b[i];
        loc->off = loc->off << 8 | b[4 + i];
    }
    return loc->seg != 0;
}

/* The record at off of a segment's bytes. Returns 1 (id, *wrapped and
 * *next set), 2 for a filler (*next set), 0 at the end, -1 for a torn tail
 * (a short last record, or zeros to the end: a write a crash cut), -2 for
 * bytes that are no record. */
static int rec_at(const uint8_t *b, size_t len, size_t off, char id[OSSE_KEY_ID_MAX + 1],
                  const uint8_t **wrapped, size_t *next)
{
    if (off == len)
        return 0;
    if (b[off] == FILLER_MARK) {
        if (len - off < 2)
            return -1;
        size_t fl = b[off + 1];
        if (fl < 2 + 1 + OSSE_WRAPPED_BYTES || fl > REC_MAX)
            return -2;
        if (len - off < fl)
            return -1;
        for (size_t i = off + 2; i < off + fl; i++)
            if (b[i])
                return -2;
        *next = off + fl;
        return 2;
    }
    size_t idn = b[off];
    if (idn == 0) {
        for (size_t i = off; i < len; i++)
            if (b[i])
                return -2;
        return -1;
    }
    if (idn > OSSE_KEY_ID_MAX)
        return -2;
    if (len - off < 1 + idn + OSSE_WRAPPED_BYTES)
        return -1;
    memcpy(id, b + off + 1, idn);
    id[idn] = '\0';
    if (!osse_keystore_id_ok(id))
        return -2;
    *wrapped = b + off + 1 + idn;
    *next = off + 1 + idn + OSSE_WRAPPED_BYTES;
    return 1;
}

/* Reads the whole segment at path into *out (malloc'd; *len set).
 * Returns 0, OSSE_ENOTFOUND, OSSE_ECORRUPT (far too large), OSSE_EIO. */
static int read_seg(const char *path, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? OSSE_ENOTFOUND : OSSE_EIO;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = OSSE_EIO;
        goto out;
    }
    if ((uint64_t)st.st_size > SEG_READ_MAX) {
        rc = OSSE_ECORRUPT;
        goto out;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = osse_malloc(n ? n : 1);
    if (osse_read_full(fd, b, n) != (ssize_t)n) {
        free(b);
        rc = OSSE_EIO;
        goto out;
    }
    *out = b;
    *len = n;
out:
    close(fd);
    return rc;
}

static int cmp_seg(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The segment numbers in the folder, ascending (*segs malloc'd); leftover
 * temporary files removed when clean. Returns 0 or OSSE_EIO. */
static int list_segs(osse_keystore_t *ks, bool clean, uint32_t **segs, size_t *n)
{
    *segs = NULL;
    *n = 0;
    DIR *d = opendir(ks->dir);
    if (!d)
        return OSSE_EIO;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        uint32_t seg;
        if (clean && len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
            /* A write or rewrite that did not finish: the file it was to
             * replace, if any, is whole. */
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", ks->dir, de->d_name);
            unlink(path);
        } else if (seg_name(de->d_name, &seg)) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                *segs = osse_realloc(*segs, cap * sizeof **segs);
            }
            (*segs)[(*n)++] = seg;
        }
    }
    closedir(d);
    if (*n)
        qsort(*segs, *n, sizeof **segs, cmp_seg);
    return 0;
}

/* Reads segment seg whole: every record opened, its id put in seen (when
 * not NULL) and handed to cb; a torn tail cut off the file. *bytes and
 * *records (fillers too): what stays. ks->mu held. */
static int load_seg(osse_keystore_t *ks, uint32_t seg, uint8_t *key, osse_keystore_cb cb, void *ud,
                    osse_map_t *seen, uint64_t *bytes, size_t *records, osse_err_t *err)
{
    char path[4200];
    uint8_t *b = NULL;
    size_t len = 0, off = 0, n = 0;
    seg_path(ks, seg, "", path, sizeof path);
    int rc = read_seg(path, &b, &len);
    if (rc == OSSE_ENOTFOUND) {
        rc = 0; /* removed meanwhile: not ours to mind */
        goto out;
    }
    if (rc) {
        rc = osse_err_set(err, rc, "the key segment %s cannot be read", path);
        goto out;
    }
    for (;;) {
        char id[OSSE_KEY_ID_MAX + 1];
        const uint8_t *wrapped = NULL;
        size_t next = 0;
        int r = rec_at(b, len, off, id, &wrapped, &next);
        if (r == 0)
            break;
        if (r == 2) {
            off = next;
            n++;
            continue;
        }
        if (r == -1) {
            /* Its keys were never durable, so nothing was sealed with
             * them; the next append must follow a whole record. */
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0)
                rc = osse_err_set(err, OSSE_EIO, "the torn tail of %s cannot be cut: %s", path,
                                  strerror(errno));
            if (fd >= 0)
                close(fd);
            if (!rc)
                osse_logf(OSSE_LEVEL_WARN, "key segment's torn tail cut",
                          "path=%s at=%zu bytes=%zu", path, off, len - off);
            break;
        }
        if (r < 0) {
            rc = osse_err_set(err, OSSE_ECORRUPT, "the key segment %s is damaged at byte %zu", path,
                              off);
            break;
        }
        if (unseal(ks->master, wrapped, OSSE_WRAPPED_BYTES, id, key)) {
            rc = osse_err_set(err, OSSE_ECORRUPT,
                              "the key of %s in %s (at byte %zu) does not open with the master key",
                              id, path, off);
            break;
        }
        if (seen)
            osse_map_put(seen, id, (void *)1);
        rc = cb(ud, id, key, (osse_keyloc_t){seg, (uint32_t)off});
        sodium_memzero(key, OSSE_KEY_BYTES);
        if (rc)
            break;
        off = next;
        n++;
    }
out:
    free(b);
    *bytes = off;
    *records = n;
    return rc;
}

static int load_key_files(osse_keystore_t *ks, uint8_t *key, osse_keystore_cb cb, void *ud,
                          const osse_map_t *seen, osse_err_t *err);

/* Whether the folder holds a file of the first key store (<id>.key). */
static bool has_key_files(const osse_keystore_t *ks)
{
    DIR *d = opendir(ks->dir);
    bool any = false;
    struct dirent *de;
    while (d && !any && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        any = len > 4 && strcmp(de->d_name + len - 4, ".key") == 0;
    }
    if (d)
        closedir(d);
    return any;
}

/* osse_keystore_load (every segment, and the first store's files) or
 * osse_keystore_load_tail (the last segment only). */
static int load(osse_keystore_t *ks, bool whole, osse_keystore_cb cb, void *ud, osse_err_t *err)
{
    uint32_t *segs = NULL;
    size_t nsegs = 0;
    uint8_t *key = sodium_malloc(OSSE_KEY_BYTES);
    if (!key)
        return osse_err_set(err, OSSE_ENOMEM, "no memory for a key");
    uv_mutex_lock(&ks->mu);
    /* Which ids the segments hold, only for the first store's files. */
    osse_map_t seen;
    bool files = whole && has_key_files(ks);
    osse_map_init(&seen);
    int rc = list_segs(ks, true, &segs, &nsegs);
    if (rc)
        rc = osse_err_set(err, rc, "the key store %s cannot be read", ks->dir);
    uint64_t bytes = 0;
    size_t records = 0;
    for (size_t i = whole || !nsegs ? 0 : nsegs - 1; !rc && i < nsegs; i++)
        rc = load_seg(ks, segs[i], key, cb, ud, files ? &seen : NULL, &bytes, &records, err);
    if (!rc) {
        if (ks->cur_fd >= 0)
            close(ks->cur_fd);
        ks->cur_fd = -1;
        ks->cur = nsegs ? segs[nsegs - 1] : 0;
        ks->cur_ok = nsegs > 0;
        ks->cur_bytes = bytes;
        ks->cur_records = records;
        if (files)
            rc = load_key_files(ks, key, cb, ud, &seen, err);
    }
    uv_mutex_unlock(&ks->mu);
    osse_map_close(&seen);
    free(segs);
    sodium_free(key);
    return rc;
}

int osse_keystore_load(osse_keystore_t *ks, osse_keystore_cb cb, void *ud, osse_err_t *err)
{
    return load(ks, true, cb, ud, err);
}

int osse_keystore_load_tail(osse_keystore_t *ks, osse_keystore_cb cb, void *ud, osse_err_t *err)
{
    return load(ks, false, cb, ud, err);
}

/* Makes segment cur the one to append to, beginning a new one when it is
 * full, missing or not read whole by load; *fresh: a new file, whose name
 * the folder's fsync must make durable. ks->mu held. */
static int seg_ready(osse_keystore_t *ks, bool *fresh, osse_err_t *err)
{
    char path[4200];
    *fresh = false;
    if (!ks->cur_ok) {
        /* No load yet (a tool, a test): never append after bytes not
         * checked, begin after the last segment. */
        uint32_t *segs = NULL;
        size_t n = 0;
        if (list_segs(ks, false, &segs, &n))
            return osse_err_set(err, OSSE_EIO, "the key store %s cannot be read", ks->dir);
        if (n && segs[n - 1] > ks->cur)
            ks->cur = segs[n - 1];
        free(segs);
    }
    bool full = ks->cur_records >= OSSE_KEYSEG_RECORDS || ks->cur_bytes >= OSSE_KEYSEG_BYTES;
    if (ks->cur_ok && !full && ks->cur_fd >= 0)
        return 0;
    if (ks->cur_ok && !full && ks->cur > 0) {
        seg_path(ks, ks->cur, "", path, sizeof path);
        ks->cur_fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (ks->cur_fd >= 0)
            return 0;
        if (errno != ENOENT)
            return osse_err_set(err, OSSE_EIO, "the key segment %s cannot be opened: %s", path,
                                strerror(errno));
    }
    if (ks->cur_fd >= 0)
        close(ks->cur_fd);
    ks->cur_fd = -1;
    if (ks->cur == UINT32_MAX)
        return osse_err_set(err, OSSE_EIO, "the key store %s has no segment number left", ks->dir);
    seg_path(ks, ks->cur + 1, "", path, sizeof path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return osse_err_set(err, OSSE_EIO, "the key segment %s cannot be made: %s", path,
                            strerror(errno));
    ks->cur++;
    ks->cur_fd = fd;
    ks->cur_ok = true;
    ks->cur_bytes = 0;
    ks->cur_records = 0;
    *fresh = true;
    return 0;
}

/* osse_keystore_append with ks->mu held. */
static int append_locked(osse_keystore_t *ks, const osse_keyrec_t *recs, size_t n,
                         osse_keyloc_t *locs, osse_err_t *err)
{
    if (n == 0)
        return 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!osse_keystore_id_ok(recs[i].id))
            return osse_err_set(err, OSSE_EINVAL, "a key cannot be filed under this id");
        total += 1 + strlen(recs[i].id) + OSSE_WRAPPED_BYTES;
    }
    uint8_t *buf = osse_malloc(total), *p = buf;
    for (size_t i = 0; i < n; i++) {
        size_t idn = strlen(recs[i].id);
        *p++ = (uint8_t)idn;
        memcpy(p, recs[i].id, idn);
        memcpy(p + idn, recs[i].wrapped, OSSE_WRAPPED_BYTES);
        p += idn + OSSE_WRAPPED_BYTES;
    }
    bool fresh = false;
    int rc = seg_ready(ks, &fresh, err);
    if (rc)
        goto out;
    if (osse_write_full(ks->cur_fd, buf, total) || fdatasync(ks->cur_fd) != 0) {
        rc = osse_err_set(err, OSSE_EIO, "%zu key(s) cannot be written to %s/%u.seg: %s", n,
                          ks->dir, (unsigned)ks->cur, strerror(errno));
        /* All or none: what did reach the file is cut off again (a crash
         * meanwhile leaves a torn tail, which load cuts). */
        if (ftruncate(ks->cur_fd, (off_t)ks->cur_bytes) != 0) {
            close(ks->cur_fd);
            ks->cur_fd = -1;
            ks->cur_ok = false;
        }
        goto out;
    }
    /* In the segment now, whatever the folder's fsync says: what follows
     * is appended after them. */
    for (size_t i = 0, off = (size_t)ks->cur_bytes; locs && i < n; i++) {
        locs[i] = (osse_keyloc_t){ks->cur, (uint32_t)off};
        off += 1 + strlen(recs[i].id) + OSSE_WRAPPED_BYTES;
    }
    ks->cur_bytes += total;
    ks->cur_records += n;
    if (fresh && (rc = fsync_dir(ks->dir)))
        rc = osse_err_set(err, rc, "the key store %s cannot be synced: %s", ks->dir,
                          strerror(errno));
out:
    free(buf);
    return rc;
}

int osse_keystore_append(osse_keystore_t *ks, const osse_keyrec_t *recs, size_t n,
                         osse_keyloc_t *locs, osse_err_t *err)
{
    uv_mutex_lock(&ks->mu);
    int rc = append_locked(ks, recs, n, locs, err);
    uv_mutex_unlock(&ks->mu);
    return rc;
}

/* The first key store kept one file per key, <id>.key (the wrapped key's
 * 72 bytes): each is loaded, moved into the current segment (one append),
 * and only then unlinked, the folder fsynced. A crash between the two
 * leaves both; the file is then only unlinked, since the segment has the
 * key (one copy to destroy, not two). ks->mu held. */
static int load_key_files(osse_keystore_t *ks, uint8_t *key, osse_keystore_cb cb, void *ud,
                          const osse_map_t *seen, osse_err_t *err)
{
    DIR *d = opendir(ks->dir);
    if (!d)
        return osse_err_set(err, OSSE_EIO, "the key store %s cannot be read", ks->dir);
    char(*ids)[OSSE_KEY_ID_MAX + 1] = NULL;
    uint8_t(*wrapped)[OSSE_WRAPPED_BYTES] = NULL;
    bool *moved = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len <= 4 || len - 4 > OSSE_KEY_ID_MAX || strcmp(de->d_name + len - 4, ".key") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            ids = osse_realloc(ids, cap * sizeof *ids);
            wrapped = osse_realloc(wrapped, cap * sizeof *wrapped);
            moved = osse_realloc(moved, cap * sizeof *moved);
        }
        memcpy(ids[n], de->d_name, len - 4);
        ids[n][len - 4] = '\0';
        if (!osse_keystore_id_ok(ids[n]))
            continue;
        moved[n] = osse_map_get(seen, ids[n]) != NULL;
        char path[4200];
        uint8_t buf[OSSE_WRAPPED_BYTES];
        size_t got = 0;
        snprintf(path, sizeof path, "%s/%s", ks->dir, de->d_name);
        int r = read_small(path, buf, sizeof buf, &got);
        if (r == OSSE_ENOTFOUND)
            continue;
        if (!moved[n]) {
            if (r || got != OSSE_WRAPPED_BYTES || unseal(ks->master, buf, got, ids[n], key)) {
                rc = osse_err_set(err, OSSE_ECORRUPT,
                                  "the key of %s in %s does not open with the master key", ids[n],
                                  ks->dir);
                break;
            }
            sodium_memzero(key, OSSE_KEY_BYTES);
            memcpy(wrapped[n], buf, sizeof buf);
        }
        n++;
    }
    closedir(d);
    osse_keyrec_t *recs = osse_malloc((n ? n : 1) * sizeof *recs);
    size_t nrecs = 0;
    for (size_t i = 0; i < n; i++)
        if (!moved[i])
            recs[nrecs++] = (osse_keyrec_t){ids[i], wrapped[i]};
    osse_keyloc_t *locs = osse_malloc((nrecs ? nrecs : 1) * sizeof *locs);
    if (!rc)
        rc = append_locked(ks, recs, nrecs, locs, err);
    /* Handed on where they are now (they opened above). */
    for (size_t i = 0; !rc && i < nrecs; i++) {
        unseal(ks->master, recs[i].wrapped, OSSE_WRAPPED_BYTES, recs[i].id, key);
        rc = cb(ud, recs[i].id, key, locs[i]);
        sodium_memzero(key, OSSE_KEY_BYTES);
    }
    free(locs);
    for (size_t i = 0; !rc && i < n; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.key", ks->dir, ids[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = osse_err_set(err, OSSE_EIO, "the key file %s cannot be removed: %s", path,
                              strerror(errno));
    }
    if (!rc && n && (rc = fsync_dir(ks->dir)))
        rc = osse_err_set(err, rc, "the key store %s cannot be synced", ks->dir);
    if (!rc && n)
        osse_logf(OSSE_LEVEL_INFO, "key files moved into segments", "files=%zu", n);
    free(recs);
    free(ids);
    free(wrapped);
    free(moved);
    return rc;
}

/* Rewrites segment seg with a filler in the place of each record whose id
 * is in gone: a temporary file, fsynced, renamed over the segment (or the
 * segment unlinked, when only fillers stay and it is not the current one).
 * The folder is not fsynced. ks->mu held. */
static int rewrite_seg(osse_keystore_t *ks, uint32_t seg, const osse_map_t *gone, osse_err_t *err)
{
    char path[4200], tmp[4200];
    uint8_t *b = NULL;
    size_t len = 0, off = 0, live = 0, changed = 0;
    int fd = -1;
    seg_path(ks, seg, "", path, sizeof path);
    seg_path(ks, seg, ".tmp", tmp, sizeof tmp);
    int rc = read_seg(path, &b, &len);
    if (rc == OSSE_ENOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc) {
        rc = osse_err_set(err, rc, "the key segment %s cannot be read", path);
        goto out;
    }
    for (;;) {
        char id[OSSE_KEY_ID_MAX + 1];
        const uint8_t *wrapped = NULL;
        size_t next = 0;
        int r = rec_at(b, len, off, id, &wrapped, &next);
        if (r == 0)
            break;
        if (r < 0) {
            rc = osse_err_set(err, OSSE_ECORRUPT, "the key segment %s is damaged at byte %zu", path,
                              off);
            goto out;
        }
        if (r == 1 && osse_map_get(gone, id)) {
            /* The same length, so that no other record moves. */
            b[off] = FILLER_MARK;
            b[off + 1] = (uint8_t)(next - off);
            sodium_memzero(b + off + 2, next - off - 2);
            changed++;
        } else if (r == 1) {
            live++;
        }
        off = next;
    }
    if (!changed)
        goto out; /* none of them here */
    if (!live && seg != ks->cur) {
        if (unlink(path) != 0 && errno != ENOENT)
            rc = osse_err_set(err, OSSE_EIO, "the key segment %s cannot be removed: %s", path,
                              strerror(errno));
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || osse_write_full(fd, b, len) || fsync(fd) != 0 ||
        rename(tmp, path) != 0) {
        rc = osse_err_set(err, OSSE_EIO, "the key segment %s cannot be rewritten: %s", path,
                          strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (seg == ks->cur && ks->cur_fd >= 0) {
        /* The open descriptor is the old file's: appends go to the new. */
        close(ks->cur_fd);
        ks->cur_fd = -1;
    }
out:
    if (fd >= 0)
        close(fd);
    if (b)
        sodium_memzero(b, len);
    free(b);
    return rc;
}

int osse_keystore_remove(osse_keystore_t *ks, const osse_keyref_t *refs, size_t n, osse_err_t *err)
{
    osse_map_t gone;
    uint32_t *segs = osse_malloc((n ? n : 1) * sizeof *segs);
    size_t nsegs = 0;
    int rc = 0;
    osse_map_init(&gone);
    for (size_t i = 0; i < n; i++) {
        if (!osse_keystore_id_ok(refs[i].id) || !refs[i].loc.seg)
            continue;
        osse_map_put(&gone, refs[i].id, (void *)1);
        bool seen = false;
        for (size_t j = 0; j < nsegs && !seen; j++)
            seen = segs[j] == refs[i].loc.seg;
        if (!seen)
            segs[nsegs++] = refs[i].loc.seg;
    }
    uv_mutex_lock(&ks->mu);
    for (size_t j = 0; !rc && j < nsegs; j++)
        rc = rewrite_seg(ks, segs[j], &gone, err);
    if (!rc && nsegs && (rc = fsync_dir(ks->dir)))
        rc = osse_err_set(err, rc, "the key store %s cannot be synced: %s", ks->dir,
                          strerror(errno));
    uv_mutex_unlock(&ks->mu);
    osse_map_close(&gone);
    free(segs);
    return rc;
}

static int cmp_ref(const void *a, const void *b)
{
    const osse_keyref_t *x = *(const osse_keyref_t *const *)a,
                        *y = *(const osse_keyref_t *const *)b;
    if (x->loc.seg != y->loc.seg)
        return x->loc.seg < y->loc.seg ? -1 : 1;
    return x->loc.off < y->loc.off ? -1 : x->loc.off > y->loc.off;
}

int osse_keystore_read(osse_keystore_t *ks, const osse_keyref_t *refs, size_t n, uint8_t *keys,
                       bool *found, osse_err_t *err)
{
    /* In the segments' order, one open each. */
    const osse_keyref_t **by = osse_malloc((n ? n : 1) * sizeof *by);
    for (size_t i = 0; i < n; i++) {
        by[i] = &refs[i];
        found[i] = false;
    }
    qsort(by, n, sizeof *by, cmp_ref);
    int rc = 0, fd = -1;
    uint32_t fd_seg = 0;
    uint8_t rec[REC_MAX];
    for (size_t k = 0; k < n && !rc; k++) {
        const osse_keyref_t *f = by[k];
        size_t i = (size_t)(f - refs), idn = strlen(f->id);
        if (!f->loc.seg || idn == 0 || idn > OSSE_KEY_ID_MAX)
            continue;
        if (fd_seg != f->loc.seg) {
            if (fd >= 0)
                close(fd);
            char path[4200];
            seg_path(ks, f->loc.seg, "", path, sizeof path);
            fd = open(path, O_RDONLY | O_CLOEXEC);
            fd_seg = f->loc.seg;
            if (fd < 0 && errno != ENOENT)
                rc = osse_err_set(err, OSSE_EIO, "the key segment %s cannot be opened: %s", path,
                                  strerror(errno));
        }
        if (fd < 0)
            continue; /* the segment went: its keys are removed */
        size_t want = 1 + idn + OSSE_WRAPPED_BYTES;
        ssize_t got = pread(fd, rec, want, (off_t)f->loc.off);
        if (got < 0) {
            rc = osse_err_set(err, OSSE_EIO, "the key segment %u.seg cannot be read: %s",
                              (unsigned)f->loc.seg, strerror(errno));
            break;
        }
        /* A filler, or another id: not there any more. */
        if ((size_t)got != want || rec[0] != idn || memcmp(rec + 1, f->id, idn) != 0)
            continue;
        if (unseal(ks->master, rec + 1 + idn, OSSE_WRAPPED_BYTES, f->id,
                   keys + i * OSSE_KEY_BYTES)) {
            rc = osse_err_set(err, OSSE_ECORRUPT,
                              "the key of %s in %u.seg (at byte %u) does not open with the master "
                              "key",
                              f->id, (unsigned)f->loc.seg, (unsigned)f->loc.off);
            break;
        }
        found[i] = true;
    }
    if (fd >= 0)
        close(fd);
    sodium_memzero(rec, sizeof rec);
    free(by);
    return rc;
}
