/* test_files.c: the file store (storage/files.h): a write is read back
 * whole, an id is never written twice, ids that would leave the folder are
 * refused, a crash's temporary files are gone at the next open, listing
 * skips tmp/, a removed file is gone and removing it again is no error, a
 * file larger than the caller's bound is refused; a file written in pieces
 * reads back in pieces, an aborted one leaves nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "storage/files.h"
#include "tests/test.h"

static char dir[] = "/tmp/osse-test-files-XXXXXX";

static int count(void *ud, const char *id)
{
    (void)id;
    (*(int *)ud)++;
    return 0;
}

static void round_trip(void)
{
    char *root = NULL;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_fstore_open(dir, &root, &err), 0);
    CHECK_EQ_INT(osse_fstore_write(root, "f-1", "hello", 5, &err), 0);
    CHECK_EQ_INT(osse_fstore_write(root, "f-1", "again", 5, &err), OSSE_EEXISTS);
    CHECK_EQ_INT(osse_fstore_write(root, "../log", "x", 1, &err), OSSE_EINVAL);
    CHECK_EQ_INT(osse_fstore_write(root, "", "x", 1, &err), OSSE_EINVAL);
    void *p = NULL;
    size_t n = 0;
    CHECK_EQ_INT(osse_fstore_read(root, "f-1", 100, &p, &n, &err), 0);
    CHECK_EQ_INT(n, 5);
    CHECK(memcmp(p, "hello", 5) == 0);
    free(p);
    CHECK_EQ_INT(osse_fstore_read(root, "f-1", 4, &p, &n, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(osse_fstore_read(root, "f-2", 100, &p, &n, &err), OSSE_ENOTFOUND);
    CHECK_EQ_INT(osse_fstore_read(root, "../x", 100, &p, &n, &err), OSSE_ENOTFOUND);
    CHECK_EQ_INT(osse_fstore_write(root, "f-0", "", 0, &err), 0);
    CHECK_EQ_INT(osse_fstore_read(root, "f-0", 100, &p, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    free(p);

    /* A half-written file under tmp/ (a crash) is gone at the next open. */
    char path[512];
    snprintf(path, sizeof path, "%s/tmp/f-9", root);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("half", f);
    fclose(f);
    int k = 0;
    CHECK_EQ_INT(osse_fstore_each(root, count, &k, &err), 0);
    CHECK_EQ_INT(k, 2);
    free(root);
    CHECK_EQ_INT(osse_fstore_open(dir, &root, &err), 0);
    CHECK(access(path, F_OK) != 0);

    CHECK_EQ_INT(osse_fstore_remove(root, "f-1", &err), 0);
    CHECK_EQ_INT(osse_fstore_remove(root, "f-1", &err), 0);
    CHECK_EQ_INT(osse_fstore_remove(root, "f-0", &err), 0);
    k = 0;
    CHECK_EQ_INT(osse_fstore_each(root, count, &k, &err), 0);
    CHECK_EQ_INT(k, 0);
    snprintf(path, sizeof path, "%s/tmp", root);
    rmdir(path);
    rmdir(root);
    free(root);
}

static void pieces(void)
{
    char *root = NULL;
    osse_err_t err = {0};
    CHECK_EQ_INT(osse_fstore_open(dir, &root, &err), 0);
    osse_fstore_w_t *w = NULL;
    CHECK_EQ_INT(osse_fstore_begin(root, "f-p", &w, &err), 0);
    CHECK_EQ_INT(osse_fstore_put(w, "hello ", 6, &err), 0);
    CHECK_EQ_INT(osse_fstore_put(w, "world", 5, &err), 0);
    CHECK_EQ_INT(osse_fstore_commit(w, &err), 0);
    CHECK_EQ_INT(osse_fstore_begin(root, "f-p", &w, &err), OSSE_EEXISTS);
    CHECK_EQ_INT(osse_fstore_begin(root, "../p", &w, &err), OSSE_EINVAL);
    osse_fstore_r_t *r = NULL;
    size_t size = 0, got = 0;
    char buf[16];
    CHECK_EQ_INT(osse_fstore_open_read(root, "f-p", 10, &r, &size, &err), OSSE_ECORRUPT);
    CHECK_EQ_INT(osse_fstore_open_read(root, "f-q", 100, &r, &size, &err), OSSE_ENOTFOUND);
    CHECK_EQ_INT(osse_fstore_open_read(root, "f-p", 100, &r, &size, &err), 0);
    CHECK_EQ_INT(size, 11);
    CHECK_EQ_INT(osse_fstore_get(r, buf, 6, &got, &err), 0);
    CHECK(got == 6 && memcmp(buf, "hello ", 6) == 0);
    CHECK_EQ_INT(osse_fstore_get(r, buf, sizeof buf, &got, &err), 0);
    CHECK(got == 5 && memcmp(buf, "world", 5) == 0);
    osse_fstore_close_read(r);
    /* Aborted: no file, nothing under tmp/. */
    CHECK_EQ_INT(osse_fstore_begin(root, "f-a", &w, &err), 0);
    CHECK_EQ_INT(osse_fstore_put(w, "x", 1, &err), 0);
    osse_fstore_abort(w);
    int k = 0;
    CHECK_EQ_INT(osse_fstore_each(root, count, &k, &err), 0);
    CHECK_EQ_INT(k, 1);
    char path[512];
    snprintf(path, sizeof path, "%s/tmp/f-a", root);
    CHECK(access(path, F_OK) != 0);
    CHECK_EQ_INT(osse_fstore_remove(root, "f-p", &err), 0);
    snprintf(path, sizeof path, "%s/tmp", root);
    rmdir(path);
    rmdir(root);
    free(root);
}

int main(void)
{
    osse_alloc_setup_json();
    if (!mkdtemp(dir))
        return 1;
    RUN(round_trip);
    RUN(pieces);
    rmdir(dir);
    return TEST_EXIT();
}
