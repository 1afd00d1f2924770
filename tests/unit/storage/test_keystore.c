/* test_keystore.c: the key store in a temporary folder: a new store makes
 * its master key (0600) once; keys appended are loaded back unwrapped, also
 * many of them across a segment's rollover; a torn tail (a short record, or
 * zeros) is cut and the keys before it load, while a damaged record in the
 * middle is refused; a removed key (one, or many across segments) is gone:
 * a reload finds all the others and not it, its wrapped bytes are in no
 * file of the folder, and no other record moved (a filler keeps its
 * place); keys are read back by where they are, and a removed one is not
 * found; the last segment alone loads; another master key, a missing store and a missing
 * master key are refused; a wrapped key filed under another id does not
 * open; the one-file-per-key folder of the first key store is moved into a
 * segment at load. */
#define _GNU_SOURCE /* nftw, mkdtemp, memmem */
#include <dirent.h>
#include <fcntl.h>
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
    osse_keyloc_t loc;
} seen_t;

static int on_key(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES], osse_keyloc_t loc)
{
    seen_t *s = ud;
    s->loc = loc;
    s->n++;
    snprintf(s->id, sizeof s->id, "%s", id);
    memcpy(s->key, key, OSSE_KEY_BYTES);
    return 0;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

/* Whether any file of dir holds the n bytes at p. */
static bool dir_holds(const char *dir, const void *p, size_t n)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        uint8_t *b = osse_malloc((size_t)st.st_size + 1);
        size_t got = fread(b, 1, (size_t)st.st_size, f);
        fclose(f);
        found = memmem(b, got, p, n) != NULL;
        free(b);
    }
    closedir(d);
    return found;
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

#define MANY 5000                              /* past one segment's OSSE_KEYSEG_RECORDS */
#define REC_BYTES (1 + 7 + OSSE_WRAPPED_BYTES) /* ids "r-00000" */

typedef struct {
    uint8_t key[MANY][OSSE_KEY_BYTES];
    uint8_t wrapped[MANY][OSSE_WRAPPED_BYTES];
    osse_keyloc_t loc[MANY]; /* as append said */
    int seen[MANY];
    int n, wrong;
} many_t;

static int on_many(void *ud, const char *id, const uint8_t key[OSSE_KEY_BYTES], osse_keyloc_t loc)
{
    many_t *m = ud;
    int i = atoi(id + 2);
    m->n++;
    if (i >= 0 && i < MANY && !m->loc[i].seg)
        m->loc[i] = loc; /* moved from a file of the first store */
    if (i < 0 || i >= MANY || memcmp(m->key[i], key, OSSE_KEY_BYTES) != 0 ||
        m->loc[i].seg != loc.seg || m->loc[i].off != loc.off)
        m->wrong++;
    else
        m->seen[i]++;
    return 0;
}

/* Removes the keys of ids (atoi of their tails index m). */
static int remove_ids(osse_keystore_t *ks, many_t *m, const char *const *ids, size_t n)
{
    osse_keyref_t refs[MANY];
    osse_err_t err = {0};
    for (size_t i = 0; i < n; i++)
        refs[i] = (osse_keyref_t){ids[i], m->loc[atoi(ids[i] + 2)]};
    return osse_keystore_remove(ks, refs, n, &err);
}

/* Reopens and loads: m->seen says which keys came back. */
static int reload(const char *dir, const char *master, osse_keystore_t **ks, many_t *m)
{
    osse_err_t err = {0};
    osse_keystore_close(*ks);
    *ks = NULL;
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, ks, &err), 0);
    memset(m->seen, 0, sizeof m->seen);
    m->n = m->wrong = 0;
    return osse_keystore_load(*ks, on_many, m, &err);
}

/* Appends keys [from, to) in groups of group, as the log's writer does. */
static void append_range(osse_keystore_t *ks, many_t *m, char ids[][16], int from, int to,
                         int group)
{
    osse_keyrec_t recs[512];
    osse_err_t err = {0};
    for (int i = from; i < to;) {
        int n = 0;
        for (; n < group && i < to; n++, i++) {
            snprintf(ids[i], 16, "r-%05d", i);
            CHECK_EQ_INT(osse_keystore_new_key(ks, ids[i], m->key[i], m->wrapped[i]), 0);
            recs[n] = (osse_keyrec_t){ids[i], m->wrapped[i]};
        }
        CHECK_EQ_INT(osse_keystore_append(ks, recs, (size_t)n, m->loc + i - n, &err), 0);
    }
}

/* n keys made at once (a refill of the reserve): each wrapped under its
 * own id, all different, and they load back; a bad id makes none. */
static void test_new_keys(void)
{
    char tmpl[] = "/tmp/osse-test-keys-XXXXXX";
    const char *root = mkdtemp(tmpl);
    char dir[256], master[256];
    snprintf(dir, sizeof dir, "%s/keys", root);
    snprintf(master, sizeof master, "%s/master.key", root);
    osse_err_t err = {0};
    osse_keystore_t *ks = NULL;
    many_t *m = osse_calloc(1, sizeof *m);
    CHECK_EQ_INT(osse_keystore_open(dir, master, true, &ks, &err), 0);
    CHECK_EQ_INT(osse_keystore_load(ks, on_many, m, &err), 0);
    enum { N = 40 };
    char idbuf[N][16];
    const char *ids[N];
    osse_keyrec_t recs[N];
    for (int i = 0; i < N; i++) {
        snprintf(idbuf[i], sizeof idbuf[i], "r-%05d", i);
        ids[i] = idbuf[i];
        recs[i] = (osse_keyrec_t){ids[i], m->wrapped[i]};
    }
    CHECK_EQ_INT(osse_keystore_new_keys(ks, ids, N, &m->key[0][0], m->wrapped), 0);
    for (int i = 1; i < N; i++) {
        CHECK(memcmp(m->key[i], m->key[i - 1], OSSE_KEY_BYTES) != 0);
        CHECK(memcmp(m->wrapped[i], m->wrapped[i - 1], 24) != 0); /* the nonces */
    }
    CHECK_EQ_INT(osse_keystore_append(ks, recs, N, m->loc, &err), 0);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, N);
    CHECK_EQ_INT(m->wrong, 0);
    const char *bad[2] = {"r-ok", "no/slash"};
    uint8_t keys[2][OSSE_KEY_BYTES], wrapped[2][OSSE_WRAPPED_BYTES];
    CHECK_EQ_INT(osse_keystore_new_keys(ks, bad, 2, &keys[0][0], wrapped), OSSE_EINVAL);
    osse_keystore_close(ks);
    free(m);
    nftw(root, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
}

static void test_segments(void)
{
    char tmpl[] = "/tmp/osse-test-keys-XXXXXX";
    const char *root = mkdtemp(tmpl);
    char dir[256], master[256], seg1[300], seg2[300];
    snprintf(dir, sizeof dir, "%s/keys", root);
    snprintf(master, sizeof master, "%s/master.key", root);
    snprintf(seg1, sizeof seg1, "%s/1.seg", dir);
    snprintf(seg2, sizeof seg2, "%s/2.seg", dir);
    osse_err_t err = {0};
    osse_keystore_t *ks = NULL;
    many_t *m = osse_calloc(1, sizeof *m);
    static char ids[MANY][16];
    CHECK_EQ_INT(osse_keystore_open(dir, master, true, &ks, &err), 0);
    CHECK_EQ_INT(osse_keystore_load(ks, on_many, m, &err), 0);
    CHECK_EQ_INT(m->n, 0);

    /* Many, in groups: all come back. */
    append_range(ks, m, ids, 0, 1000, 300);
    CHECK_EQ_INT(size_of(seg1), 1000 * REC_BYTES);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 1000);
    CHECK_EQ_INT(m->wrong, 0);

    /* A torn tail (a short last record) is cut off: the keys before it
     * load, the file ends at the last whole record, and appends follow. */
    CHECK(truncate(seg1, 1000 * REC_BYTES - 5) == 0);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 999);
    CHECK_EQ_INT(m->seen[999], 0);
    CHECK_EQ_INT(size_of(seg1), 999 * REC_BYTES);
    append_range(ks, m, ids, 999, 1000, 1);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 1000);
    CHECK_EQ_INT(m->wrong, 0);
    /* So are zeros (data a crash did not let the filesystem write). */
    CHECK(truncate(seg1, 1000 * REC_BYTES + 200) == 0);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 1000);
    CHECK_EQ_INT(size_of(seg1), 1000 * REC_BYTES);

    /* A damaged record in the middle is refused, not cut. */
    int fd = open(seg1, O_RDWR);
    uint8_t byte;
    off_t at = 500 * REC_BYTES + 40;
    CHECK(pread(fd, &byte, 1, at) == 1);
    byte ^= 0x55;
    CHECK(pwrite(fd, &byte, 1, at) == 1);
    CHECK_EQ_INT(reload(dir, master, &ks, m), OSSE_ECORRUPT);
    byte ^= 0x55;
    CHECK(pwrite(fd, &byte, 1, at) == 1);
    close(fd);
    CHECK_EQ_INT(size_of(seg1), 1000 * REC_BYTES);

    /* Remove one: the others load, it does not, and its wrapped bytes are
     * in no file of the folder. Appends after it go on (the current
     * segment was replaced under the open descriptor). */
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK(dir_holds(dir, m->wrapped[123], OSSE_WRAPPED_BYTES));
    const char *one[] = {ids[123]};
    CHECK_EQ_INT(remove_ids(ks, m, one, 1), 0);
    CHECK(!dir_holds(dir, m->wrapped[123], OSSE_WRAPPED_BYTES));
    CHECK_EQ_INT(remove_ids(ks, m, one, 1), 0); /* none: fine */
    osse_keyref_t nokey = {"r-nokey", {1, 0}};
    CHECK_EQ_INT(osse_keystore_remove(ks, &nokey, 1, &err), 0);
    append_range(ks, m, ids, 1000, 1010, 10);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 1009);
    CHECK_EQ_INT(m->wrong, 0); /* every other key where it was */
    CHECK_EQ_INT(m->seen[123], 0);
    CHECK_EQ_INT(m->seen[1009], 1);
    CHECK_EQ_INT(size_of(seg1), 1010 * REC_BYTES); /* the filler keeps its place */

    /* Read by where they are: the removed one is not found, nor one at a
     * place that holds another id. */
    osse_keyref_t refs[4] = {{ids[5], m->loc[5]},
                             {ids[123], m->loc[123]},
                             {ids[1009], m->loc[1009]},
                             {ids[6], m->loc[7]}};
    uint8_t *keys = sodium_malloc(4 * OSSE_KEY_BYTES);
    bool found[4];
    CHECK_EQ_INT(osse_keystore_read(ks, refs, 4, keys, found, &err), 0);
    CHECK(found[0] && !found[1] && found[2] && !found[3]);
    CHECK(memcmp(keys, m->key[5], OSSE_KEY_BYTES) == 0);
    CHECK(memcmp(keys + 2 * OSSE_KEY_BYTES, m->key[1009], OSSE_KEY_BYTES) == 0);
    sodium_free(keys);

    /* Rollover: past OSSE_KEYSEG_RECORDS the next group begins 2.seg. */
    append_range(ks, m, ids, 1010, MANY, 500);
    CHECK(size_of(seg2) > 0);
    CHECK(size_of(seg1) >= (off_t)OSSE_KEYSEG_RECORDS * REC_BYTES);
    struct stat st;
    CHECK(stat(seg2, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, MANY - 1);
    CHECK_EQ_INT(m->wrong, 0);
    /* The last segment alone: 2.seg's keys only. */
    {
        memset(m->seen, 0, sizeof m->seen);
        m->n = m->wrong = 0;
        osse_keystore_close(ks);
        CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), 0);
        CHECK_EQ_INT(osse_keystore_load_tail(ks, on_many, m, &err), 0);
        CHECK(m->n > 0 && m->n < MANY - OSSE_KEYSEG_RECORDS);
        CHECK_EQ_INT(m->wrong, 0);
        CHECK_EQ_INT(m->seen[0], 0);
        CHECK_EQ_INT(m->seen[MANY - 1], 1);
    }

    /* Removals across both segments (and one already gone). */
    const char *gone[] = {ids[7], ids[MANY - 1], ids[2000], ids[123], ids[MANY - 3]};
    CHECK_EQ_INT(remove_ids(ks, m, gone, 5), 0);
    for (int i = 0; i < 5; i++)
        CHECK(!dir_holds(dir, m->wrapped[atoi(gone[i] + 2)], OSSE_WRAPPED_BYTES));
    CHECK(dir_holds(dir, m->wrapped[8], OSSE_WRAPPED_BYTES));
    CHECK(dir_holds(dir, m->wrapped[MANY - 2], OSSE_WRAPPED_BYTES));
    append_range(ks, m, ids, MANY - 1, MANY, 1); /* the current one reopened */
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, MANY - 4);
    CHECK_EQ_INT(m->wrong, 0);
    CHECK_EQ_INT(m->seen[7] + m->seen[2000] + m->seen[123] + m->seen[MANY - 3], 0);
    CHECK_EQ_INT(m->seen[MANY - 1], 1);
    CHECK_EQ_INT(m->seen[MANY - 2], 1);

    /* Every key of a segment removed: the file goes too (not the current).
     * Groups of 500 from 1010 left 4509 keys in 1.seg, the rest in 2.seg. */
    static const char *all[MANY];
    size_t nall = 0;
    for (int i = 0; i < 4510; i++)
        if (m->seen[i])
            all[nall++] = ids[i];
    CHECK_EQ_INT(remove_ids(ks, m, all, nall), 0);
    CHECK(access(seg1, F_OK) != 0);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, MANY - 4510 - 1);
    CHECK_EQ_INT(m->wrong, 0);
    osse_keystore_close(ks);
    free(m);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A folder of the first key store (one <id>.key file per key): load finds
 * the keys, moves them into a segment and removes the files; a reload
 * finds each once, and a remove destroys the moved key. */
static void test_key_files_moved(void)
{
    char tmpl[] = "/tmp/osse-test-keys-XXXXXX";
    const char *root = mkdtemp(tmpl);
    char dir[256], master[256], path[300];
    snprintf(dir, sizeof dir, "%s/keys", root);
    snprintf(master, sizeof master, "%s/master.key", root);
    osse_err_t err = {0};
    osse_keystore_t *ks = NULL;
    many_t *m = osse_calloc(1, sizeof *m);
    static char ids[MANY][16];
    CHECK_EQ_INT(osse_keystore_open(dir, master, true, &ks, &err), 0);
    append_range(ks, m, ids, 0, 3, 3); /* in 1.seg */
    for (int i = 3; i < 6; i++) {
        snprintf(ids[i], 16, "r-%05d", i);
        CHECK_EQ_INT(osse_keystore_new_key(ks, ids[i], m->key[i], m->wrapped[i]), 0);
        snprintf(path, sizeof path, "%s/%s.key", dir, ids[i]);
        write_bytes(path, m->wrapped[i], OSSE_WRAPPED_BYTES);
    }
    /* r-00002 both in the segment and in a file (a crash after the move,
     * before the unlink): one copy stays. */
    snprintf(path, sizeof path, "%s/%s.key", dir, ids[2]);
    write_bytes(path, m->wrapped[2], OSSE_WRAPPED_BYTES);
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 6);
    CHECK_EQ_INT(m->wrong, 0);
    for (int i = 2; i < 6; i++) {
        snprintf(path, sizeof path, "%s/%s.key", dir, ids[i]);
        CHECK(access(path, F_OK) != 0);
    }
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 6);
    CHECK_EQ_INT(m->seen[2] + m->seen[4], 2);
    const char *gone[] = {ids[2], ids[4]};
    CHECK_EQ_INT(remove_ids(ks, m, gone, 2), 0);
    CHECK(!dir_holds(dir, m->wrapped[2], OSSE_WRAPPED_BYTES));
    CHECK(!dir_holds(dir, m->wrapped[4], OSSE_WRAPPED_BYTES));
    CHECK_EQ_INT(reload(dir, master, &ks, m), 0);
    CHECK_EQ_INT(m->n, 4);
    osse_keystore_close(ks);
    free(m);
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
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
    osse_keyrec_t rec = {"r-0123", wrapped};
    CHECK_EQ_INT(osse_keystore_append(ks, &rec, 1, NULL, &err), 0);
    osse_keystore_close(ks);

    /* Reopened: the same key comes back. */
    CHECK_EQ_INT(osse_keystore_open(dir, master, false, &ks, &err), 0);
    seen_t s = {0};
    CHECK_EQ_INT(osse_keystore_load(ks, on_key, &s, &err), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.id, "r-0123");
    CHECK(memcmp(s.key, key, sizeof key) == 0);
    snprintf(path, sizeof path, "%s/1.seg", dir);
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 1 + 6 + 72);
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);

    /* A wrapped key filed under another id does not open (the id is AD). */
    uint8_t forged[1 + 6 + OSSE_WRAPPED_BYTES] = {6, 'r', '-', '9', '9', '9', '9'};
    memcpy(forged + 7, wrapped, OSSE_WRAPPED_BYTES);
    snprintf(other, sizeof other, "%s/9.seg", dir);
    write_bytes(other, forged, sizeof forged);
    s.n = 0;
    CHECK_EQ_INT(osse_keystore_load(ks, on_key, &s, &err), OSSE_ECORRUPT);
    CHECK(strstr(err.msg, "r-9999") != NULL);
    unlink(other);

    CHECK_EQ_INT(osse_keystore_load(ks, on_key, &s, &err), 0);
    osse_keyref_t ref = {"r-0123", s.loc};
    CHECK_EQ_INT(osse_keystore_remove(ks, &ref, 1, &err), 0);
    CHECK(!dir_holds(dir, wrapped, sizeof wrapped));
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
    RUN(test_segments);
    RUN(test_new_keys);
    RUN(test_key_files_moved);
    return TEST_EXIT();
}
