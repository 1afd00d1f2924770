/* files.c: uploaded files' bytes as plain files under <data>/files/
 * (files.h).
 *
 * Invariant: a name directly under the root is a whole file, fsynced, whose
 * directory entry is fsynced too; partial bytes only ever exist under tmp/.
 * Why files and not RocksDB values: a 20 MiB value would pass through the
 * WAL, the 64 MiB memtable and every compaction that touches it, and a
 * deleted one lingers until compaction; a file is written once, read with
 * one read and gone with one unlink (docs/design.md, "Files"). */
#include "storage/files.h"
#include "common/alloc.h"
#include "common/fileio.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP "tmp"

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > OSSE_FSTORE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return false;
    return true;
}

static int sys_err(osse_err_t *err, int e, const char *what, const char *path)
{
    return osse_err_set(err, e == ENOSPC || e == EDQUOT ? OSSE_ENOSPC : OSSE_EIO, "%s %s: %s", what,
                        path, strerror(e));
}

static int fsync_dir(const char *dir, osse_err_t *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sys_err(err, errno, "open", dir);
    int rc = fsync(fd) == 0 ? 0 : sys_err(err, errno, "fsync", dir);
    close(fd);
    return rc;
}

int osse_fstore_open(const char *data_dir, char **root, osse_err_t *err)
{
    size_t n = strlen(data_dir) + sizeof "/files/" TMP;
    char *r = osse_malloc(n), *t = osse_malloc(n);
    snprintf(r, n, "%s/files", data_dir);
    snprintf(t, n, "%s/files/" TMP, data_dir);
    int rc = 0;
    if ((mkdir(r, 0700) != 0 && errno != EEXIST) || (mkdir(t, 0700) != 0 && errno != EEXIST)) {
        rc = sys_err(err, errno, "mkdir", t);
        goto out;
    }
    /* What a crash left half written is no one's. */
    DIR *d = opendir(t);
    if (!d) {
        rc = sys_err(err, errno, "opendir", t);
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            (void)unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
out:
    free(t);
    if (rc) {
        free(r);
        return rc;
    }
    *root = r;
    return 0;
}

struct osse_fstore_w_s {
    int fd;
    char *root, *tmp, *dst;
};

static void writer_free(osse_fstore_w_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->root);
    free(w->tmp);
    free(w->dst);
    free(w);
}

int osse_fstore_begin(const char *root, const char *id, osse_fstore_w_t **out, osse_err_t *err)
{
    if (!id_ok(id))
        return osse_err_set(err, OSSE_EINVAL, "invalid file id");
    size_t cap = strlen(root) + OSSE_FSTORE_ID_MAX + sizeof "/" TMP "/";
    osse_fstore_w_t *w = osse_calloc(1, sizeof *w);
    w->root = osse_strdup(root);
    w->tmp = osse_malloc(cap);
    w->dst = osse_malloc(cap);
    snprintf(w->tmp, cap, "%s/" TMP "/%s", root, id);
    snprintf(w->dst, cap, "%s/%s", root, id);
    int rc = 0;
    if (access(w->dst, F_OK) == 0)
        rc = osse_err_set(err, OSSE_EEXISTS, "file %s exists", id);
    else if ((w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        rc = sys_err(err, errno, "open", w->tmp);
    if (rc) {
        w->fd = -1;
        writer_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int osse_fstore_put(osse_fstore_w_t *w, const void *p, size_t n, osse_err_t *err)
{
    return osse_write_full(w->fd, p, n) ? sys_err(err, errno, "write", w->tmp) : 0;
}

void osse_fstore_abort(osse_fstore_w_t *w)
{
    if (!w)
        return;
    (void)unlink(w->tmp);
    writer_free(w);
}

int osse_fstore_commit(osse_fstore_w_t *w, osse_err_t *err)
{
    int rc = 0;
    if (fsync(w->fd) != 0) {
        rc = sys_err(err, errno, "fsync", w->tmp);
    } else {
        int cl = close(w->fd);
        w->fd = -1;
        if (cl != 0)
            rc = sys_err(err, errno, "close", w->tmp);
        else if (rename(w->tmp, w->dst) != 0)
            rc = sys_err(err, errno, "rename", w->tmp);
        else if ((rc = fsync_dir(w->root, err)) != 0)
            (void)unlink(w->dst);
    }
    if (rc)
        (void)unlink(w->tmp);
    writer_free(w);
    return rc;
}

int osse_fstore_write(const char *root, const char *id, const void *p, size_t n, osse_err_t *err)
{
    osse_fstore_w_t *w;
    int rc = osse_fstore_begin(root, id, &w, err);
    if (rc)
        return rc;
    if ((rc = osse_fstore_put(w, p, n, err))) {
        osse_fstore_abort(w);
        return rc;
    }
    return osse_fstore_commit(w, err);
}

struct osse_fstore_r_s {
    int fd;
    char *path;
};

void osse_fstore_close_read(osse_fstore_r_t *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->path);
    free(r);
}

int osse_fstore_open_read(const char *root, const char *id, size_t max, osse_fstore_r_t **out,
                          size_t *size, osse_err_t *err)
{
    if (!id_ok(id))
        return osse_err_set(err, OSSE_ENOTFOUND, "no such file");
    size_t cap = strlen(root) + OSSE_FSTORE_ID_MAX + 2;
    osse_fstore_r_t *r = osse_calloc(1, sizeof *r);
    r->path = osse_malloc(cap);
    snprintf(r->path, cap, "%s/%s", root, id);
    int rc = 0;
    struct stat st;
    if ((r->fd = open(r->path, O_RDONLY | O_CLOEXEC)) < 0)
        rc = errno == ENOENT ? osse_err_set(err, OSSE_ENOTFOUND, "no such file")
                             : sys_err(err, errno, "open", r->path);
    else if (fstat(r->fd, &st) != 0)
        rc = sys_err(err, errno, "fstat", r->path);
    else if (st.st_size < 0 || (size_t)st.st_size > max)
        rc = osse_err_set(err, OSSE_ECORRUPT, "file %s is larger than any upload", id);
    if (rc) {
        osse_fstore_close_read(r);
        return rc;
    }
    *size = (size_t)st.st_size;
    *out = r;
    return 0;
}

int osse_fstore_get(osse_fstore_r_t *r, void *p, size_t n, size_t *got, osse_err_t *err)
{
    ssize_t k = osse_read_full(r->fd, p, n);
    if (k < 0)
        return sys_err(err, errno, "read", r->path);
    *got = (size_t)k;
    return 0;
}

int osse_fstore_read(const char *root, const char *id, size_t max, void **out, size_t *len,
                     osse_err_t *err)
{
    osse_fstore_r_t *r;
    size_t n, got = 0;
    int rc = osse_fstore_open_read(root, id, max, &r, &n, err);
    if (rc)
        return rc;
    char *buf = osse_malloc(n + 1);
    if (!(rc = osse_fstore_get(r, buf, n, &got, err)) && got != n)
        rc = osse_err_set(err, OSSE_ECORRUPT, "file %s shrank while read", id);
    osse_fstore_close_read(r);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int osse_fstore_remove(const char *root, const char *id, osse_err_t *err)
{
    if (!id_ok(id))
        return 0;
    size_t cap = strlen(root) + OSSE_FSTORE_ID_MAX + 2;
    char *path = osse_malloc(cap);
    snprintf(path, cap, "%s/%s", root, id);
    int rc = 0;
    if (unlink(path) != 0 && errno != ENOENT)
        rc = sys_err(err, errno, "unlink", path);
    else
        rc = fsync_dir(root, err);
    free(path);
    return rc;
}

int osse_fstore_each(const char *root, osse_fstore_each_cb cb, void *ud, osse_err_t *err)
{
    DIR *d = opendir(root);
    if (!d)
        return sys_err(err, errno, "opendir", root);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strcmp(de->d_name, TMP) == 0 || !id_ok(de->d_name))
            continue;
        if (cb(ud, de->d_name))
            break;
    }
    closedir(d);
    return 0;
}
