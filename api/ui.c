/* ui.c: the pages under /ui/, read once at start (see ui.h).
 *
 * Invariant: a request is answered only from the table filled here, by a
 * name compared whole; the disk is read once, before the loop runs, so the
 * loop thread never waits on it, and the table holds at most
 * OSSE_UI_MAX_FILES * OSSE_UI_MAX_FILE bytes (64 MiB; the tree's own pages
 * are some tens of KiB). A changed page shows after a restart. */
#include "api/ui.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/fileio.h"

typedef struct {
    char name[64];
    char *bytes;
    size_t len;
    const char *ctype;
} ui_file_t;

struct osse_ui_s {
    ui_file_t files[OSSE_UI_MAX_FILES];
    size_t n;
};

/* The only extensions served, and their types. */
static const struct {
    const char *ext;
    const char *ctype;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
};

/* The type of a file name [a-z0-9_-]+ "." ext, or NULL for a name that is
 * not one of a page. */
static const char *name_type(const char *name)
{
    const char *dot = strchr(name, '.');
    if (!dot || dot == name || (size_t)(dot - name) >= sizeof((ui_file_t *)0)->name - 8)
        return NULL;
    for (const char *p = name; p < dot; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return NULL;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(dot + 1, types[i].ext) == 0)
            return types[i].ctype;
    return NULL;
}

/* Reads one file of the folder; 1 when it is no regular file (left out). */
static int read_one(int dfd, const char *name, ui_file_t *f, osse_err_t *err)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ELOOP ? 1 : osse_err_set(err, OSSE_EIO, "%s: %s", name, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        rc = 1;
        goto out;
    }
    if (st.st_size > (off_t)OSSE_UI_MAX_FILE) {
        rc = osse_err_set(err, OSSE_ETOOBIG, "%s: larger than %u bytes", name, OSSE_UI_MAX_FILE);
        goto out;
    }
    f->bytes = osse_malloc((size_t)st.st_size + 1);
    ssize_t got = osse_read_full(fd, f->bytes, (size_t)st.st_size + 1);
    if (got < 0 || got > st.st_size) {
        rc = osse_err_set(err, OSSE_EIO, "%s: %s", name,
                          got < 0 ? strerror(errno) : "changed while it was read");
        free(f->bytes);
        f->bytes = NULL;
        goto out;
    }
    f->len = (size_t)got;
    memcpy(f->name, name, strlen(name) + 1); /* name_type bounds its length */
out:
    close(fd);
    return rc;
}

int osse_ui_open(const char *dir, osse_ui_t **out, osse_err_t *err)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return osse_err_set(err, OSSE_EIO, "%s: %s", dir, strerror(errno));
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return osse_err_set(err, OSSE_EIO, "%s: %s", dir, strerror(errno));
    }
    osse_ui_t *ui = osse_calloc(1, sizeof *ui);
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *ctype = name_type(e->d_name);
        if (!ctype)
            continue;
        if (ui->n == OSSE_UI_MAX_FILES) {
            rc = osse_err_set(err, OSSE_ETOOBIG, "%s: more than %d pages and assets", dir,
                              OSSE_UI_MAX_FILES);
            break;
        }
        ui_file_t *f = &ui->files[ui->n];
        int r = read_one(dirfd(d), e->d_name, f, err);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == 0) {
            f->ctype = ctype;
            ui->n++;
        }
    }
    closedir(d);
    if (rc) {
        osse_ui_close(ui);
        return rc;
    }
    *out = ui;
    return 0;
}

static const ui_file_t *lookup(const osse_ui_t *ui, const char *name)
{
    for (size_t i = 0; ui && i < ui->n; i++)
        if (strcmp(ui->files[i].name, name) == 0)
            return &ui->files[i];
    return NULL;
}

const char *osse_ui_find(const osse_ui_t *ui, char *const *segs, int n, size_t *len,
                         const char **ctype)
{
    char name[80];
    if (n == 0) {
        snprintf(name, sizeof name, "index.html");
    } else if (n == 1 && strchr(segs[0], '.')) {
        /* An asset, by its whole name; a page only by its clean one. */
        const char *t = name_type(segs[0]);
        if (!t || strncmp(t, "text/html", 9) == 0)
            return NULL;
        snprintf(name, sizeof name, "%s", segs[0]);
    } else if (n == 1 ||
               (n == 2 && (strcmp(segs[0], "services") == 0 || strcmp(segs[0], "registry") == 0))) {
        /* Only names a page could have: no '/', no '.', nothing long. */
        if (strlen(segs[0]) > 40)
            return NULL;
        snprintf(name, sizeof name, "%s.html", segs[0]);
        if (!name_type(name))
            return NULL;
    } else {
        return NULL;
    }
    const ui_file_t *f = lookup(ui, name);
    if (!f)
        return NULL;
    *len = f->len;
    *ctype = f->ctype;
    return f->bytes;
}

size_t osse_ui_count(const osse_ui_t *ui)
{
    return ui ? ui->n : 0;
}

void osse_ui_close(osse_ui_t *ui)
{
    if (!ui)
        return;
    for (size_t i = 0; i < ui->n; i++)
        free(ui->files[i].bytes);
    free(ui);
}
