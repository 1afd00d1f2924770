/* fetch.c: libcurl's multi interface on the libuv loop.
 *
 * curl tells us which sockets to watch (on_socket: one uv_poll_t each, found
 * again through curl_multi_assign) and when to wake it (on_timer_set: one
 * uv_timer_t); libuv's events go back through curl_multi_socket_action, and
 * finished transfers come out of curl_multi_info_read. The model is curl's
 * own multi-uv.c example.
 *
 * Invariants: a call is in exactly one place: queued on its host, in the
 * curl multi handle (f->active list), or on f->failed (waiting for the defer
 * timer to report a start failure), and it leaves through finish(), which
 * runs its callback once. A host is on the waiting list exactly when it has
 * queued calls and fewer than max_per_host in flight; pump() starts calls
 * from that list round-robin while the global cap allows, so one busy host
 * cannot starve the others. Queueing is ours rather than curl's
 * CURLMOPT_MAX_HOST_CONNECTIONS because curl's per-call timeout would then
 * count time spent waiting in its queue. */
#include "net/fetch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/map.h"
#include "net/addr.h"

typedef struct call_s call_t;
typedef struct host_s host_t;
typedef struct sock_s sock_t;

struct call_s {
    osse_fetch_t *f;
    host_t *host;
    CURL *easy;
    struct curl_slist *hdrs;
    osse_buf_t resp;
    bool too_big;
    osse_fetch_cb cb;
    void *ud;
    uint64_t posted_ns;
    call_t *next, *prev; /* host queue (next only), f->active or f->failed */
    char errbuf[CURL_ERROR_SIZE];
    char refused[128]; /* OSSE_FETCH_PUBLIC_ONLY: the address not connected to */
};

struct host_s {
    char *key;
    unsigned active;
    call_t *qhead, *qtail;
    host_t *wnext;
    bool waiting;
};

struct sock_s {
    uv_poll_t poll;
    osse_fetch_t *f;
    curl_socket_t fd;
    sock_t *next, *prev;
};

struct osse_fetch_s {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    uv_timer_t defer; /* reports start failures outside osse_fetch_post */
    osse_fetch_opts_t o;
    osse_map_t hosts; /* key -> host_t */
    host_t *whead, *wtail;
    call_t *active, *failed;
    sock_t *socks;
    unsigned nactive, nqueued;
    bool closing;
    int open_handles; /* uv handles not yet closed; f is freed at 0 */
};

static uv_once_t curl_once = UV_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- lists ---------------------------------------------------------------- */

static void list_push(call_t **head, call_t *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head)
        (*head)->prev = c;
    *head = c;
}

static void list_unlink(call_t **head, call_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void waiting_push(osse_fetch_t *f, host_t *h)
{
    h->waiting = true;
    h->wnext = NULL;
    if (f->wtail)
        f->wtail->wnext = h;
    else
        f->whead = h;
    f->wtail = h;
}

static host_t *waiting_pop(osse_fetch_t *f)
{
    host_t *h = f->whead;
    if (!h)
        return NULL;
    f->whead = h->wnext;
    if (!f->whead)
        f->wtail = NULL;
    h->wnext = NULL;
    h->waiting = false;
    return h;
}

static void host_release(osse_fetch_t *f, host_t *h)
{
    if (h->active || h->qhead || h->waiting)
        return;
    osse_map_del(&f->hosts, h->key);
    free(h->key);
    free(h);
}

/* ---- handles ---------------------------------------------------------------- */

static void maybe_free(osse_fetch_t *f)
{
    if (f->open_handles == 0)
        free(f);
}

static void on_handle_closed(uv_handle_t *h)
{
    osse_fetch_t *f = h->data;
    f->open_handles--;
    maybe_free(f);
}

static void on_sock_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    osse_fetch_t *f = s->f;
    free(s);
    f->open_handles--;
    if (f->closing)
        maybe_free(f);
}

static void sock_close(sock_t *s)
{
    osse_fetch_t *f = s->f;
    if (s->prev)
        s->prev->next = s->next;
    else
        f->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* ---- finishing -------------------------------------------------------------- */

static void call_free(call_t *c)
{
    if (c->easy)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    osse_buf_close(&c->resp);
    free(c);
}

static void pump(osse_fetch_t *f);

/* Reports c's outcome and frees it. c must already be out of every list and,
 * if it was started, out of the multi handle. */
static void finish(call_t *c, int code, const char *error)
{
    osse_fetch_result_t r = {0};
    r.code = code;
    r.error = code ? error : NULL;
    r.body = c->resp.ptr ? c->resp.ptr : "";
    r.body_len = c->resp.len;
    r.elapsed_ms = (int64_t)((uv_hrtime() - c->posted_ns) / 1000000u);
    if (code == 0) {
        long st = 0;
        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &st);
        r.status_code = (int)st;
    }
    c->cb(c->ud, &r);
    call_free(c);
}

static void finish_curl(call_t *c, CURLcode rc)
{
    osse_fetch_t *f = c->f;
    host_t *h = c->host;
    char msg[CURL_ERROR_SIZE + 64];
    int code = 0;
    if (rc == CURLE_OK) {
        code = 0;
    } else if (c->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        code = OSSE_ETOOBIG;
        snprintf(msg, sizeof msg, "response body over %zu bytes", f->o.max_body);
    } else if (c->refused[0]) {
        code = OSSE_EFORBIDDEN;
        snprintf(msg, sizeof msg, "%s", c->refused);
    } else {
        code = OSSE_EIO;
        snprintf(msg, sizeof msg, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    }
    h->active--;
    f->nactive--;
    if (h->qhead && !h->waiting)
        waiting_push(f, h);
    finish(c, code, msg);
    host_release(f, h);
}

static void check_done(osse_fetch_t *f)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid after remove_handle */
        char *priv = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
        call_t *c = (call_t *)priv;
        curl_multi_remove_handle(f->multi, e);
        list_unlink(&f->active, c);
        finish_curl(c, rc);
    }
    if (!f->closing)
        pump(f);
}

/* ---- curl <-> libuv --------------------------------------------------------- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = p->data;
    osse_fetch_t *f = s->f;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    /* s may be closed by curl inside this call: read nothing from it after. */
    curl_multi_socket_action(f->multi, s->fd, flags, &running);
    check_done(f);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    osse_fetch_t *f = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(f->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = osse_calloc(1, sizeof *s);
        if (uv_poll_init_socket(f->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->f = f;
        s->fd = fd;
        s->poll.data = s;
        s->next = f->socks;
        if (f->socks)
            f->socks->prev = s;
        f->socks = s;
        f->open_handles++;
        curl_multi_assign(f->multi, fd, s);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    osse_fetch_t *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

static int on_timer_set(CURLM *m, long timeout_ms, void *userp)
{
    osse_fetch_t *f = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_defer(uv_timer_t *t)
{
    osse_fetch_t *f = t->data;
    call_t *c;
    while ((c = f->failed)) {
        host_t *h = c->host;
        list_unlink(&f->failed, c);
        h->active--;
        f->nactive--;
        if (h->qhead && !h->waiting)
            waiting_push(f, h);
        finish(c, OSSE_EIO, "could not start the transfer");
        host_release(f, h);
    }
    pump(f);
}

/* ---- queueing --------------------------------------------------------------- */

static void start(osse_fetch_t *f, call_t *c)
{
    c->host->active++;
    f->nactive++;
    if (curl_multi_add_handle(f->multi, c->easy) != CURLM_OK) {
        /* Only on exhaustion; reported from the defer timer so that a callback
         * never runs inside osse_fetch_post. */
        list_push(&f->failed, c);
        uv_timer_start(&f->defer, on_defer, 0, 0);
        return;
    }
    list_push(&f->active, c);
}

static void pump(osse_fetch_t *f)
{
    host_t *h;
    while (f->nactive < f->o.max_total && (h = waiting_pop(f))) {
        call_t *c = h->qhead;
        h->qhead = c->next;
        if (!h->qhead)
            h->qtail = NULL;
        c->next = NULL;
        f->nqueued--;
        start(f, c);
        if (h->qhead && h->active < f->o.max_per_host)
            waiting_push(f, h);
    }
}

/* ---- public ----------------------------------------------------------------- */

int osse_fetch_open(uv_loop_t *loop, const osse_fetch_opts_t *opts, osse_fetch_t **out,
                    osse_err_t *err)
{
    *out = NULL;
    uv_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return osse_err_set(err, OSSE_EIO, "curl_global_init: %s",
                            curl_easy_strerror(curl_init_rc));
    osse_fetch_t *f = osse_calloc(1, sizeof *f);
    f->loop = loop;
    if (opts)
        f->o = *opts;
    if (!f->o.max_total)
        f->o.max_total = 256;
    if (!f->o.max_per_host)
        f->o.max_per_host = 4;
    if (!f->o.connect_timeout_ms)
        f->o.connect_timeout_ms = 5000;
    if (!f->o.max_body)
        f->o.max_body = 1u << 20;
    osse_map_init(&f->hosts);
    f->multi = curl_multi_init();
    if (!f->multi) {
        osse_map_close(&f->hosts);
        free(f);
        return osse_err_set(err, OSSE_EIO, "curl_multi_init failed");
    }
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    uv_timer_init(loop, &f->timer);
    uv_timer_init(loop, &f->defer);
    f->timer.data = f->defer.data = f;
    f->open_handles = 2;
    *out = f;
    return 0;
}

void osse_fetch_close(osse_fetch_t *f)
{
    if (!f)
        return;
    f->closing = true;
    call_t *c;
    while ((c = f->active)) {
        list_unlink(&f->active, c);
        curl_multi_remove_handle(f->multi, c->easy);
        c->host->active--;
        f->nactive--;
        finish(c, OSSE_ECLOSED, "cancelled: fetcher closed");
    }
    while ((c = f->failed)) {
        list_unlink(&f->failed, c);
        c->host->active--;
        f->nactive--;
        finish(c, OSSE_ECLOSED, "cancelled: fetcher closed");
    }
    host_t *h;
    while ((h = waiting_pop(f)))
        ;
    const char *k;
    void *v;
    for (size_t i = 0; osse_map_next(&f->hosts, &i, &k, &v);) {
        h = v;
        while ((c = h->qhead)) {
            h->qhead = c->next;
            f->nqueued--;
            finish(c, OSSE_ECLOSED, "cancelled: fetcher closed");
        }
        free(h->key);
        free(h);
    }
    osse_map_close(&f->hosts);
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    while (f->socks)
        sock_close(f->socks);
    uv_timer_stop(&f->timer);
    uv_timer_stop(&f->defer);
    uv_close((uv_handle_t *)&f->timer, on_handle_closed);
    uv_close((uv_handle_t *)&f->defer, on_handle_closed);
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    call_t *c = ud;
    if (osse_buf_append(&c->resp, p, size * n) != 0) {
        c->too_big = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return size * n;
}

/* Checks url is http(s) with a host and writes "scheme://host:port" to key. */
static int host_key(const char *url, char **key, osse_err_t *err)
{
    int rc = 0;
    char *scheme = NULL, *host = NULL, *port = NULL;
    CURLU *u = curl_url();
    if (!u)
        return osse_err_set(err, OSSE_ENOMEM, "fetch: out of memory");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        /* The URL is not quoted: its path or query may hold a secret, and
         * this message reaches events and the server's log. */
        rc = osse_err_set(err, OSSE_EINVAL, "not a valid URL");
        goto out;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        rc = osse_err_set(err, OSSE_EINVAL, "only http and https URLs are allowed");
        goto out;
    }
    size_t n = strlen(scheme) + strlen(host) + strlen(port) + 5;
    *key = osse_malloc(n);
    snprintf(*key, n, "%s://%s:%s", scheme, host, port);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* OSSE_FETCH_PUBLIC_ONLY: every address curl is about to connect to is
 * judged here, after its own resolution, so a name that resolved to a
 * public address when its URL was set and to a private one now is still
 * refused (SPEC §7). */
static curl_socket_t open_public(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    call_t *c = ud;
    const char *kind = osse_addr_kind(&a->addr);
    if (purpose != CURLSOCKTYPE_IPCXN || kind) {
        char ip[INET6_ADDRSTRLEN] = "?";
        if (a->family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&a->addr)->sin_addr, ip, sizeof ip);
        else if (a->family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a->addr)->sin6_addr, ip, sizeof ip);
        snprintf(c->refused, sizeof c->refused, "not connected: %s is a%s %s address", ip,
                 kind && kind[0] == 'u' ? "n" : "", kind ? kind : "non-IP");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static int submit(osse_fetch_t *f, bool post, const char *url, const char *const *headers,
                  const void *body, size_t len, unsigned timeout_ms, unsigned flags,
                  osse_fetch_cb cb, void *ud, osse_err_t *err)
{
    int rc = 0;
    char *key = NULL;
    call_t *c = NULL;
    if (f->closing)
        return osse_err_set(err, OSSE_ECLOSED, "fetch: closing");
    if ((rc = host_key(url, &key, err)) != 0)
        goto out;
    c = osse_calloc(1, sizeof *c);
    if (!(c->easy = curl_easy_init())) {
        rc = osse_err_set(err, OSSE_ENOMEM, "fetch: out of memory");
        goto out;
    }
    c->f = f;
    c->cb = cb;
    c->ud = ud;
    c->posted_ns = uv_hrtime();
    osse_buf_init(&c->resp, f->o.max_body);
    for (const char *const *h = headers; h && *h; h++) {
        struct curl_slist *l = curl_slist_append(c->hdrs, *h);
        if (!l) {
            rc = osse_err_set(err, OSSE_ENOMEM, "fetch: out of memory");
            goto out;
        }
        c->hdrs = l;
    }
    if (post) {
        /* No "Expect: 100-continue" round trip for bodies over 1 KiB. */
        struct curl_slist *l = curl_slist_append(c->hdrs, "Expect:");
        if (!l) {
            rc = osse_err_set(err, OSSE_ENOMEM, "fetch: out of memory");
            goto out;
        }
        c->hdrs = l;
    }
    CURL *e = c->easy;
    CURLcode cc = CURLE_OK;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PRIVATE, (char *)c);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* Cancelling a call still resolving its host name must not join the
     * resolver thread on the loop thread (curl 7.88 would wait for it). */
    SET(CURLOPT_QUICK_EXIT, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, ""); /* never a proxy from the environment */
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)f->o.connect_timeout_ms);
    SET(CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 10000));
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->o.max_body);
    SET(CURLOPT_USERAGENT, "osse");
    if (flags & OSSE_FETCH_PUBLIC_ONLY) {
        SET(CURLOPT_OPENSOCKETFUNCTION, open_public);
        SET(CURLOPT_OPENSOCKETDATA, c);
    }
    if (c->hdrs)
        SET(CURLOPT_HTTPHEADER, c->hdrs);
    if (post) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        SET(CURLOPT_COPYPOSTFIELDS, len ? (const char *)body : "");
    } else {
        SET(CURLOPT_HTTPGET, 1L);
    }
#undef SET
    if (cc != CURLE_OK) {
        rc = osse_err_set(err, cc == CURLE_OUT_OF_MEMORY ? OSSE_ENOMEM : OSSE_EINVAL,
                          "curl_easy_setopt: %s", curl_easy_strerror(cc));
        goto out;
    }
    host_t *h = osse_map_get(&f->hosts, key);
    if (!h) {
        h = osse_calloc(1, sizeof *h);
        if (!h || osse_map_put(&f->hosts, key, h) != 0) {
            free(h);
            rc = osse_err_set(err, OSSE_ENOMEM, "fetch: out of memory");
            goto out;
        }
        h->key = key;
        key = NULL;
    }
    c->host = h;
    if (h->qtail)
        h->qtail->next = c;
    else
        h->qhead = c;
    h->qtail = c;
    f->nqueued++;
    if (!h->waiting && h->active < f->o.max_per_host)
        waiting_push(f, h);
    c = NULL;
    pump(f);
out:
    if (c)
        call_free(c);
    free(key);
    return rc;
}

int osse_fetch_post(osse_fetch_t *f, const char *url, const char *const *headers, const void *body,
                    size_t len, unsigned timeout_ms, osse_fetch_cb cb, void *ud, osse_err_t *err)
{
    OSSE_PRE(f && url && cb && (body || len == 0));
    return submit(f, true, url, headers, body, len, timeout_ms, 0, cb, ud, err);
}

int osse_fetch_post_flags(osse_fetch_t *f, const char *url, const char *const *headers,
                          const void *body, size_t len, unsigned timeout_ms, unsigned flags,
                          osse_fetch_cb cb, void *ud, osse_err_t *err)
{
    OSSE_PRE(f && url && cb && (body || len == 0));
    return submit(f, true, url, headers, body, len, timeout_ms, flags, cb, ud, err);
}

int osse_fetch_get(osse_fetch_t *f, const char *url, const char *const *headers,
                   unsigned timeout_ms, osse_fetch_cb cb, void *ud, osse_err_t *err)
{
    OSSE_PRE(f && url && cb);
    return submit(f, false, url, headers, NULL, 0, timeout_ms, 0, cb, ud, err);
}

unsigned osse_fetch_active(const osse_fetch_t *f)
{
    return f->nactive;
}

unsigned osse_fetch_queued(const osse_fetch_t *f)
{
    return f->nqueued;
}
