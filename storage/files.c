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

int osse_fstore_write(const char *root, const char *id, const void *p, size_t n, osse_err_t *err)
{
    if (!id_ok(id))
        return osse_err_set(err, OSSE_EINVAL, "invalid file id");
    size_t cap = strlen(root) + OSSE_FSTORE_ID_MAX + sizeof "/" TMP "/";
    char *tmp = osse_malloc(cap), *dst = osse_malloc(cap);
    snprintf(tmp, cap, "%s/" TMP "/%s", root, id);
    snprintf(dst, cap, "%s/%s", root, id);
    int rc = 0, fd = -1;
    bool made = false;
    if (access(dst, F_OK) == 0) {
        rc = osse_err_set(err, OSSE_EEXISTS, "file %s exists", id);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = sys_err(err, errno, "open", tmp);
        goto out;
    }
    made = true;
    if (osse_write_full(fd, p, n)) {
        rc = sys_err(err, errno, "write", tmp);
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = sys_err(err, errno, "fsync", tmp);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = sys_err(err, errno, "close", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, dst) != 0) {
        rc = sys_err(err, errno, "rename", tmp);
        goto out;
    }
    made = false;
    if ((rc = fsync_dir(root, err)) != 0) {
        (void)unlink(dst);
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    if (made)
        (void)unlink(tmp);
    free(tmp);
    free(dst);
    return rc;
}

int osse_fstore_read(const char *root, const char *id, size_t max, void **out, size_t *len,
                     osse_err_t *err)
{
    if (!id_ok(id))
        return osse_err_set(err, OSSE_ENOTFOUND, "no such file");
    size_t cap = strlen(root) + OSSE_FSTORE_ID_MAX + 2;
    char *path = osse_malloc(cap);
    snprintf(path, cap, "%s/%s", root, id);
    int rc = 0;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? osse_err_set(err, OSSE_ENOTFOUND, "no such file")
                             : sys_err(err, errno, "open", path);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = sys_err(err, errno, "fstat", path);
        goto out;
    }
    if (st.st_size < 0 || (size_t)st.st_size > max) {
        rc = osse_err_set(err, OSSE_ECORRUPT, "file %s is larger than any upload", id);
        goto out;
    }
    size_t n = (size_t)st.st_size;
    buf = osse_malloc(n + 1);
    ssize_t got = osse_read_full(fd, buf, n);
    if (got != (ssize_t)n) {
        rc = got < 0 ? sys_err(err, errno, "read", path)
                     : osse_err_set(err, OSSE_ECORRUPT, "file %s shrank while read", id);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    free(path);
    return rc;
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
