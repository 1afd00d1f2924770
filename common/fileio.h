/* fileio.h: whole reads and writes of a file descriptor, through EINTR and
 * short counts. Blocking: never on the loop thread. */
#ifndef OSSE_COMMON_FILEIO_H
#define OSSE_COMMON_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

/* Writes all n bytes of p to fd. Returns 0, or -1 with errno set (EIO for
 * a write that wrote nothing). */
int osse_write_full(int fd, const void *p, size_t n);

/* Reads into buf until n bytes or the end of the file. Returns the count
 * read (less than n only at the end), or -1 with errno set. */
ssize_t osse_read_full(int fd, void *buf, size_t n);

#endif
