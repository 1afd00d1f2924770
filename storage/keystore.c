/* keystore.c: request keys wrapped by the master key, one file per key
 * (keystore.h says why). Key invariant: key material is held only in
 * sodium_malloc memory or on the stack, wiped after use, and no error
 * message names more than a path and an id. */
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

#include "common/alloc.h"

#define NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define CHECK_TEXT "osse key store 1"
#define CHECK_AD "osse/keystore"
#define CHECK_BYTES (NONCE + sizeof CHECK_TEXT - 1 + TAG)

struct osse_keystore_s {
    char *dir;
    uint8_t *master; /* sodium_malloc, OSSE_KEY_BYTES */
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
    const uint8_t *b = p;
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(fd, b + done, n - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    int rc = done == n && fsync(fd) == 0 ? 0 : OSSE_EIO;
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

static int seal(const uint8_t *master, const void *msg, size_t n, const char *ad, uint8_t *out)
{
    randombytes_buf(out, NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE, NULL, msg, n, (const uint8_t *)ad,
                                               strlen(ad), NULL, out, master);
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
    free(ks->dir);
    free(ks);
}

int osse_keystore_new_key(osse_keystore_t *ks, const char *id, uint8_t key[OSSE_KEY_BYTES],
                          uint8_t wrapped[OSSE_WRAPPED_BYTES])
{
    if (!osse_keystore_id_ok(id))
        return OSSE_EINVAL;
    randombytes_buf(key, OSSE_KEY_BYTES);
    return seal(ks->master, key, OSSE_KEY_BYTES, id, wrapped);
}

static void key_path(const osse_keystore_t *ks, const char *id, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.key", ks->dir, id);
}

int osse_keystore_write(osse_keystore_t *ks, const char *id,
                        const uint8_t wrapped[OSSE_WRAPPED_BYTES], osse_err_t *err)
{
    char path[4200];
    if (!osse_keystore_id_ok(id))
        return osse_err_set(err, OSSE_EINVAL, "a key cannot be filed under this id");
    key_path(ks, id, path, sizeof path);
    int rc = write_file(path, wrapped, OSSE_WRAPPED_BYTES, false);
    if (rc)
        osse_err_set(err, rc, "the key of %s cannot be written to %s: %s", id, ks->dir,
                     strerror(errno));
    return rc;
}

int osse_keystore_sync(osse_keystore_t *ks, osse_err_t *err)
{
    int rc = fsync_dir(ks->dir);
    if (rc)
        osse_err_set(err, rc, "the key store %s cannot be synced: %s", ks->dir, strerror(errno));
    return rc;
}

int osse_keystore_load(osse_keystore_t *ks, osse_keystore_cb cb, void *ud, osse_err_t *err)
{
    DIR *d = opendir(ks->dir);
    if (!d)
        return osse_err_set(err, OSSE_EIO, "the key store %s cannot be read", ks->dir);
    uint8_t *key = sodium_malloc(OSSE_KEY_BYTES);
    int rc = key ? 0 : OSSE_ENOMEM;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        char id[OSSE_KEY_ID_MAX + 1], path[4200];
        size_t n = strlen(de->d_name);
        if (n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0) {
            /* A write that did not finish: its event was never written. */
            snprintf(path, sizeof path, "%s/%s", ks->dir, de->d_name);
            unlink(path);
            continue;
        }
        if (n <= 4 || n - 4 > OSSE_KEY_ID_MAX || strcmp(de->d_name + n - 4, ".key") != 0)
            continue;
        memcpy(id, de->d_name, n - 4);
        id[n - 4] = '\0';
        if (!osse_keystore_id_ok(id))
            continue;
        uint8_t wrapped[OSSE_WRAPPED_BYTES + 1];
        size_t got = 0;
        key_path(ks, id, path, sizeof path);
        int r = read_small(path, wrapped, sizeof wrapped, &got);
        if (r == OSSE_ENOTFOUND)
            continue;
        if (r || got != OSSE_WRAPPED_BYTES || unseal(ks->master, wrapped, got, id, key)) {
            rc = osse_err_set(err, OSSE_ECORRUPT,
                              "the key of %s in %s does not open with the master key", id, ks->dir);
            break;
        }
        rc = cb(ud, id, key);
        sodium_memzero(key, OSSE_KEY_BYTES);
    }
    closedir(d);
    sodium_free(key);
    return rc;
}

int osse_keystore_remove(osse_keystore_t *ks, const char *id, osse_err_t *err)
{
    char path[4200];
    if (!osse_keystore_id_ok(id))
        return 0;
    key_path(ks, id, path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        return osse_err_set(err, OSSE_EIO, "the key of %s cannot be removed: %s", id,
                            strerror(errno));
    return osse_keystore_sync(ks, err);
}
