/* test_alloc.c: the dying allocator and the growable-array helper.
 *
 * The deaths are death tests: each runs in a forked child whose stderr goes
 * to a pipe, and the parent checks that the child died by SIGABRT after
 * writing exactly the "out of memory" line, and nothing died before its
 * turn (the fault switch makes the n-th allocation fail, not an earlier
 * one). */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/alloc.h"
#include "tests/test.h"

/* Runs fn in a child with stderr on a pipe; returns the child's wait status
 * and its stderr (NUL-terminated) in out[cap]. */
static int in_child(void (*fn)(void), char *out, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0)
        abort();
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t got;
    while (len + 1 < cap && (got = read(fd[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)got;
    out[len] = '\0';
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static int died_of_abort(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

/* The one line an allocation failure writes, with its byte count. */
static int has_oom_line(const char *err, const char *bytes)
{
    const char *l = strstr(err, "level=error msg=\"out of memory\" bytes=");
    if (!l)
        return 0;
    char want[64];
    snprintf(want, sizeof want, "bytes=%s\n", bytes);
    const char *b = strstr(l, "bytes=");
    return strncmp(b, want, strlen(want)) == 0 && !strstr(b + strlen(want), "out of memory");
}

static void vec_grows_and_keeps_contents(void)
{
    int *a = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 100000; i++)
        OSSE_VEC_PUSH(a, n, cap, i * 7);
    CHECK_EQ_INT(n, 100000);
    CHECK(cap >= n && cap < 2 * n);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        ok &= a[i] == (int)i * 7;
    CHECK(ok);
    /* Reserving what is there already does nothing. */
    int *before = a;
    size_t cap_before = cap;
    OSSE_VEC_RESERVE(a, cap, 10);
    CHECK(a == before && cap == cap_before);
    /* A reserve for more than double jumps straight there, contents kept. */
    OSSE_VEC_RESERVE(a, cap, 1000000);
    CHECK(cap >= 1000000);
    CHECK_EQ_INT(a[99999], 99999 * 7);
    free(a);
}

static void vec_from_empty(void)
{
    char *s = NULL;
    size_t cap = 0;
    s = osse_vec_grow(s, &cap, 1, 1);
    CHECK(s && cap >= 1);
    s[0] = 'x';
    free(s);
    /* need 0 on an empty array allocates nothing. */
    void *p = osse_vec_grow(NULL, &cap, 0, 8);
    CHECK(p == NULL);
}

static void strings(void)
{
    char *d = osse_strdup("sirket");
    CHECK_EQ_STR(d, "sirket");
    free(d);
    d = osse_strndup("sirket", 3);
    CHECK_EQ_STR(d, "sir");
    free(d);
    d = osse_strndup("ab", 10);
    CHECK_EQ_STR(d, "ab");
    free(d);
    d = osse_strdup("");
    CHECK_EQ_STR(d, "");
    free(d);
    unsigned char *z = osse_calloc(64, 4);
    int zero = 1;
    for (size_t i = 0; i < 256; i++)
        zero &= z[i] == 0;
    CHECK(zero);
    z = osse_reallocarray(z, 128, 4);
    CHECK(z[0] == 0);
    free(z);
    /* Zero bytes is a valid, freeable block, never NULL. */
    void *p = osse_malloc(0);
    CHECK(p != NULL);
    free(p);
}

static void child_vec_overflow(void)
{
    size_t cap = 0;
    free(osse_vec_grow(NULL, &cap, SIZE_MAX / 4, 16)); /* SIZE_MAX / 4 * 16 overflows */
}

static void child_calloc_overflow(void)
{
    free(osse_calloc(SIZE_MAX / 2, 3));
}

static void child_third_fails(void)
{
    osse_alloc_fail_after(3);
    free(osse_malloc(111));
    fputs("first\n", stderr);
    free(osse_strdup("second"));
    fputs("second\n", stderr);
    free(osse_malloc(333));
    fputs("survived\n", stderr);
}

static void child_realloc_fails(void)
{
    char *p = osse_malloc(16);
    osse_alloc_fail_after(1);
    free(osse_realloc(p, 4096));
}

static void child_off_again(void)
{
    osse_alloc_fail_after(5);
    osse_alloc_fail_after(0);
    for (int i = 0; i < 20; i++)
        free(osse_malloc(8));
    fputs("done\n", stderr);
}

static void deaths(void)
{
    char err[8192];
    int st = in_child(child_vec_overflow, err, sizeof err);
    CHECK(died_of_abort(st));
    CHECK(has_oom_line(err, "18446744073709551615"));

    st = in_child(child_calloc_overflow, err, sizeof err);
    CHECK(died_of_abort(st));
    CHECK(has_oom_line(err, "18446744073709551615"));

    st = in_child(child_third_fails, err, sizeof err);
    CHECK(died_of_abort(st));
    CHECK(strstr(err, "first\nsecond\n") != NULL);
    CHECK(has_oom_line(err, "333"));
    CHECK(strstr(err, "survived") == NULL);

    st = in_child(child_realloc_fails, err, sizeof err);
    CHECK(died_of_abort(st));
    CHECK(has_oom_line(err, "4096"));

    st = in_child(child_off_again, err, sizeof err);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ_STR(err, "done\n");
}

int main(void)
{
    RUN(vec_grows_and_keeps_contents);
    RUN(vec_from_empty);
    RUN(strings);
    RUN(deaths);
    return TEST_EXIT();
}
