/* test_keystore.c: the key store in a temporary folder: a new store makes
 * its master key (0600) once; keys written are loaded back unwrapped; a
 * removed key is gone from the folder; another master key, a missing store
 * and a missing master key are refused; a key file moved to another id does
 * not open. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "storage/keystore.h"
#include "tests/test.h"

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

typedef struct {
    int n;
    char id[OSSE_KEY_ID_MAX + 1];
    uint8_t key[OSSE_KEY_BYTES];
} seen_t;

static int on_key(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES])
{
    seen_t *s = ud;
    s->n++;
    snprintf(s->id, sizeof s->id, "%s", id);
    memcpy(s->key, key, OSSE_KEY_BYTES);
    return 0;
}

static void test_round_trip(void)
{
    char tmpl[] = "/tmp/osse-test-keys-XXXXXX";
    const char *root = mkdtemp(tmpl);
    char dir[256], master[256], path[300], other[300];
    snprintf(dir, sizeof dir, "%s/keys", root);
    snprintf(master, sizeof master, "%s/master.key", root);
    osse_err_t err = {0};
    osse_keystore_t *ks = NULL;

    /* Not new: nothing is made. */
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), OSSE_ENOTFOUND);
    CHECK(access(master, F_OK) != 0);

    CHECK_EQ_INT(osse_keystore_open(dir, master, true, &ks, &err), 0);
    struct stat st;
    CHECK(stat(master, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32);

    uint8_t key[OSSE_KEY_BYTES], wrapped[OSSE_WRAPPED_BYTES];
    CHECK_EQ_INT(osse_keystore_new_key(ks, "r-0123", key, wrapped), 0);
    CHECK_EQ_INT(osse_keystore_new_key(ks, "../x", key, wrapped), OSSE_EINVAL);
    CHECK_EQ_INT(osse_keystore_new_key(ks, "r-0123", key, wrapped), 0);
    CHECK_EQ_INT(osse_keystore_write(ks, "r-0123", wrapped, &err), 0);
    CHECK_EQ_INT(osse_keystore_sync(ks, &err), 0);
    osse_keystore_close(ks);

    /* Reopened: the same key comes back. */
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), 0);
    seen_t s = {0};
    CHECK_EQ_INT(osse_keystore_load(ks, on_key, &s, &err), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.id, "r-0123");
    CHECK(memcmp(s.key, key, sizeof key) == 0);

    /* A wrapped key filed under another id does not open (the id is AD). */
    snprintf(path, sizeof path, "%s/r-0123.key", dir);
    snprintf(other, sizeof other, "%s/r-9999.key", dir);
    CHECK(link(path, other) == 0);
    CHECK_EQ_INT(osse_keystore_load(ks, on_key, &s, &err), OSSE_ECORRUPT);
    CHECK(strstr(err.msg, "r-9999") != NULL);
    unlink(other);

    CHECK_EQ_INT(osse_keystore_remove(ks, "r-0123", &err), 0);
    CHECK(access(path, F_OK) != 0);
    s.n = 0;
    CHECK_EQ_INT(osse_keystore_load(ks, on_key, &s, &err), 0);
    CHECK_EQ_INT(s.n, 0);
    osse_keystore_close(ks);

    /* Another master key is refused, and says so; a short one too. */
    FILE *f = fopen(master, "wb");
    uint8_t bad[32];
    randombytes_buf(bad, sizeof bad);
    fwrite(bad, 1, sizeof bad, f);
    fclose(f);
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), OSSE_EFORBIDDEN);
    CHECK(strstr(err.msg, "not the one") != NULL);
    CHECK(ks == NULL);
    f = fopen(master, "wb");
    fwrite(bad, 1, 7, f);
    fclose(f);
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), OSSE_ECORRUPT);
    unlink(master);
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), OSSE_ENOTFOUND);
    CHECK(strstr(err.msg, "master key") != NULL);
    osse_keystore_close(NULL);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    osse_alloc_setup_json();
    RUN(test_round_trip);
    return TEST_EXIT();
}
