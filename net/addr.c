/* addr.c: the parts of a URL, and the address classes a public service
 * must not call (SPEC §7).
 *
 * The classes are the IANA special-purpose ones that lead inside a host or
 * a closed network: loopback, RFC 1918 and RFC 6598 (shared) private space,
 * IPv6 unique-local and site-local, link-local, unspecified, multicast and
 * broadcast. An IPv4-mapped IPv6 address is judged as its IPv4 address,
 * so ::ffff:127.0.0.1 is loopback too. */
#include "net/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

static const char *v4_kind(uint32_t a)
{
    if ((a >> 24) == 127)
        return "loopback";
    if ((a >> 24) == 0)
        return "unspecified";
    if ((a >> 24) == 10 || (a >> 20) == (172u << 4 | 1) || (a >> 16) == (192u << 8 | 168) ||
        (a >> 22) == (100u << 2 | 1))
        return "private";
    if ((a >> 16) == (169u << 8 | 254))
        return "link-local";
    if ((a >> 28) == 0xe)
        return "multicast";
    if (a == 0xffffffffu)
        return "broadcast";
    return NULL;
}

const char *osse_addr_kind(const struct sockaddr *sa)
{
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        return v4_kind(ntohl(s4->sin_addr.s_addr));
    }
    if (!sa || sa->sa_family != AF_INET6)
        return "unspecified";
    const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char zero[15] = {0};
    if (memcmp(b, mapped, sizeof mapped) == 0)
        return v4_kind((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                       b[15]);
    if (memcmp(b, zero, sizeof zero) == 0)
        return b[15] == 1 ? "loopback" : "unspecified";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "link-local";
    if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0))
        return "private";
    if (b[0] == 0xff)
        return "multicast";
    return NULL;
}

int osse_url_split(const char *url, osse_url_parts_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncmp(url, "https://", 8) == 0) {
        out->https = true;
        p = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return OSSE_EINVAL;
    }
    size_t alen = strcspn(p, "/?#");
    const char *at = memchr(p, '@', alen);
    if (at) {
        out->userinfo = true;
        alen -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *end = p + alen, *hend, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', alen);
        if (!rb)
            return OSSE_EINVAL;
        p++;
        hend = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return OSSE_EINVAL;
            port = rb + 2;
        }
    } else {
        const char *colon = memchr(p, ':', alen);
        hend = colon ? colon : end;
        if (colon)
            port = colon + 1;
    }
    size_t hl = (size_t)(hend - p);
    if (hl == 0 || hl >= sizeof out->host)
        return OSSE_EINVAL;
    memcpy(out->host, p, hl);
    if (port) {
        size_t pl = (size_t)(end - port);
        if (pl == 0 || pl >= sizeof out->port || strspn(port, "0123456789") < pl)
            return OSSE_EINVAL;
        memcpy(out->port, port, pl);
        if (atoi(out->port) < 1 || atoi(out->port) > 65535)
            return OSSE_EINVAL;
    } else {
        snprintf(out->port, sizeof out->port, "%s", out->https ? "443" : "80");
    }
    return 0;
}

typedef struct {
    uv_getaddrinfo_t req;
    osse_addr_cb cb;
    void *ud;
} resolve_t;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *r = req->data;
    char msg[INET6_ADDRSTRLEN + 64] = "";
    int rc = 0;
    if (status == UV_ECANCELED) {
        rc = OSSE_ECLOSED;
        snprintf(msg, sizeof msg, "the server is stopping");
    } else if (status || !res) {
        rc = OSSE_ENOTFOUND;
        snprintf(msg, sizeof msg, "its host does not resolve (%s)", uv_strerror(status));
    }
    for (struct addrinfo *ai = res; !rc && ai; ai = ai->ai_next) {
        const char *kind = osse_addr_kind(ai->ai_addr);
        if (!kind)
            continue;
        char ip[INET6_ADDRSTRLEN] = "?";
        const void *a = ai->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            inet_ntop(ai->ai_family, a, ip, sizeof ip);
        rc = OSSE_EFORBIDDEN;
        snprintf(msg, sizeof msg, "its host resolves to %s, a%s %s address", ip,
                 kind[0] == 'u' ? "n" : "", kind);
    }
    if (res)
        uv_freeaddrinfo(res);
    r->cb(r->ud, rc, msg);
    free(r);
}

int osse_addr_resolve(uv_loop_t *loop, const char *host, const char *port, osse_addr_cb cb,
                      void *ud)
{
    resolve_t *r = osse_calloc(1, sizeof *r);
    r->cb = cb;
    r->ud = ud;
    r->req.data = r;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = uv_getaddrinfo(loop, &r->req, on_resolved, host, port, &hints);
    if (rc) {
        free(r);
        return rc == UV_ENOMEM ? OSSE_ENOMEM : OSSE_EIO;
    }
    return 0;
}
