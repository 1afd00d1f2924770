/* test_addr.c: the address classes a public service must not call, the
 * parts of a URL, and a resolution on the loop (localhost, from
 * /etc/hosts: no network). */
#include "net/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "tests/test.h"

static const char *kind_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        return "bad test address";
    const char *k = osse_addr_kind((const struct sockaddr *)&ss);
    return k ? k : "public";
}

static void test_kinds(void)
{
    static const char *const cases[][2] = {
        {"127.0.0.1", "loopback"},
        {"127.255.0.9", "loopback"},
        {"10.0.0.1", "private"},
        {"172.16.0.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.1", "public"},
        {"192.168.10.1", "private"},
        {"100.64.0.1", "private"},
        {"100.128.0.1", "public"},
        {"169.254.169.254", "link-local"},
        {"0.0.0.0", "unspecified"},
        {"224.0.0.1", "multicast"},
        {"255.255.255.255", "broadcast"},
        {"8.8.8.8", "public"},
        {"203.0.113.7", "public"},
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"fe80::1", "link-local"},
        {"fd12:3456::1", "private"},
        {"fc00::1", "private"},
        {"fec0::1", "private"},
        {"ff02::1", "multicast"},
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:10.1.2.3", "private"},
        {"::ffff:8.8.4.4", "public"},
        {"2001:4860:4860::8888", "public"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_EQ_STR(kind_of(cases[i][0]), cases[i][1]);
}

static void test_split(void)
{
    osse_url_parts_t u;
    CHECK_EQ_INT(osse_url_split("https://example.com/hook?x=1", &u), 0);
    CHECK(u.https && !u.userinfo);
    CHECK_EQ_STR(u.host, "example.com");
    CHECK_EQ_STR(u.port, "443");
    CHECK_EQ_INT(osse_url_split("http://a.b:8080", &u), 0);
    CHECK(!u.https);
    CHECK_EQ_STR(u.host, "a.b");
    CHECK_EQ_STR(u.port, "8080");
    CHECK_EQ_INT(osse_url_split("https://[fe80::1]:9/x", &u), 0);
    CHECK_EQ_STR(u.host, "fe80::1");
    CHECK_EQ_STR(u.port, "9");
    CHECK_EQ_INT(osse_url_split("https://u:p@h.example/x@y", &u), 0);
    CHECK(u.userinfo);
    CHECK_EQ_STR(u.host, "h.example");
    /* An '@' after the authority is the path's, not user information. */
    CHECK_EQ_INT(osse_url_split("https://h.example/a@b", &u), 0);
    CHECK(!u.userinfo);
    static const char *const bad[] = {"ftp://x/",       "https://",        "https:///x",
                                      "https://h:/x",   "https://h:99999", "https://h:8a",
                                      "https://[::1/x", "https://[::1]x",  "example.com"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(osse_url_split(bad[i], &u), OSSE_EINVAL);
}

typedef struct {
    int calls, rc;
    char msg[200];
} got_t;

static void on_resolved(void *ud, int rc, const char *msg)
{
    got_t *g = ud;
    g->calls++;
    g->rc = rc;
    snprintf(g->msg, sizeof g->msg, "%s", msg);
}

static void test_resolve(void)
{
    uv_loop_t loop;
    CHECK_EQ_INT(uv_loop_init(&loop), 0);
    got_t lo = {0}, pub = {0};
    CHECK_EQ_INT(osse_addr_resolve(&loop, "localhost", "443", on_resolved, &lo), 0);
    CHECK_EQ_INT(osse_addr_resolve(&loop, "203.0.113.7", "443", on_resolved, &pub), 0);
    CHECK_EQ_INT(lo.calls + pub.calls, 0); /* never inside the call */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ_INT(lo.calls, 1);
    CHECK_EQ_INT(lo.rc, OSSE_EFORBIDDEN);
    CHECK(strstr(lo.msg, "a loopback address") != NULL);
    CHECK_EQ_INT(pub.calls, 1);
    CHECK_EQ_INT(pub.rc, 0);
    CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

int main(void)
{
    RUN(test_kinds);
    RUN(test_split);
    RUN(test_resolve);
    return TEST_EXIT();
}
