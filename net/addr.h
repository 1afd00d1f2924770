/* addr.h: whether an outbound URL may be called from a public service:
 * its parts, and whether the addresses its host resolves to are public
 * (SPEC §7: a portal's subscription URL must not reach a loopback, private
 * or link-local address).
 *
 * The address rule is checked twice by its callers: when a URL is set
 * (osse_addr_resolve, off the loop thread) and again on every connection
 * made to it (osse_addr_kind on the address connected to, see net/fetch.h),
 * because a name may resolve elsewhere later. Loop thread unless said. */
#ifndef OSSE_NET_ADDR_H
#define OSSE_NET_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>
#include <uv.h>

#include "common/err.h"

/* NULL when sa is a public unicast address; otherwise what it is:
 * "loopback", "private", "link-local", "unspecified", "multicast" or
 * "broadcast" (IPv4-mapped IPv6 addresses as their IPv4 address; a family
 * other than AF_INET/AF_INET6 is "unspecified"). Any thread. */
const char *osse_addr_kind(const struct sockaddr *sa);

typedef struct osse_url_parts_s {
    bool https;
    bool userinfo;  /* user[:password]@ before the host */
    char host[256]; /* without the brackets of an IPv6 literal */
    char port[8];   /* as written, or 443 / 80 */
} osse_url_parts_t;

/* Splits an http: or https: URL. Returns 0, or OSSE_EINVAL (another
 * scheme, no host, a host or port too long or malformed). Any thread. */
int osse_url_split(const char *url, osse_url_parts_t *out);

/* rc 0: every address of the host is public; OSSE_EFORBIDDEN: one is not
 * (msg names it, e.g. "127.0.0.1 is a loopback address"); OSSE_ENOTFOUND:
 * the name does not resolve; OSSE_ECLOSED: the loop is closing. msg is
 * borrowed for the call. */
typedef void (*osse_addr_cb)(void *ud, int rc, const char *msg);

/* Resolves host:port on the libuv pool (uv_getaddrinfo) and calls cb on
 * the loop thread, never inside this call. Returns 0, or OSSE_ENOMEM /
 * OSSE_EIO when the resolution could not start (cb is then not called). */
int osse_addr_resolve(uv_loop_t *loop, const char *host, const char *port, osse_addr_cb cb,
                      void *ud);

#endif
