/* test_fileio.c: whole writes and reads through short counts: 1 MiB through
 * a pipe from another process (the pipe takes at most 64 KiB at a time) arrives
 * whole and in order; a read past the end returns what there was; a write
 * to a closed pipe fails with EPIPE; a read of a bad descriptor fails. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "common/fileio.h"
#include "tests/test.h"

#define BIG (1u << 20)

static void test_through_a_pipe(void)
{
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    char *out = malloc(BIG), *in = malloc(BIG + 16);
    for (size_t i = 0; i < BIG; i++)
        out[i] = (char)(i * 31 + 7);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        _exit(osse_write_full(fds[1], out, BIG) == 0 ? 0 : 1);
    }
    close(fds[1]);
    /* More asked than will come: the count read is the whole, at the end. */
    CHECK_EQ_INT(osse_read_full(fds[0], in, BIG + 16), BIG);
    int st = -1;
    CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(memcmp(in, out, BIG) == 0);
    CHECK_EQ_INT(osse_read_full(fds[0], in, 1), 0);
    close(fds[0]);
    free(out);
    free(in);
}

static void test_failures(void)
{
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    CHECK_EQ_INT(osse_write_full(fds[1], "x", 1), -1);
    CHECK_EQ_INT(errno, EPIPE);
    close(fds[1]);
    char c;
    CHECK_EQ_INT(osse_read_full(-1, &c, 1), -1);
    CHECK_EQ_INT(errno, EBADF);
}

int main(void)
{
    RUN(test_through_a_pipe);
    RUN(test_failures);
    return TEST_EXIT();
}
