/* load.c: a closed-loop HTTP/1.1 load generator on libuv, for osse's benches.
 *
 * Each of C keep-alive connections has at most one request in flight: it
 * sends a request, reads the whole answer (status line, Content-Length, or
 * until the server closes when there is none), records the latency, and sends
 * the next. With --threads N the connections are split over N threads, each
 * with its own loop; nothing is shared between them but atomic counters.
 *
 * Invariant: only answers that complete inside the measurement window
 * [start + warmup, start + warmup + seconds) are counted; a request still in
 * flight when the window closes is dropped, not counted as an error.
 * Latencies of 2xx answers go into a log-linear histogram (HdrHistogram's
 * idea: 64 sub-buckets per power of two, so under 1.6% relative error) with
 * nanosecond input, so memory does not grow with the run's length.
 *
 * Why closed-loop: the question the benches ask is "how many durable
 * submissions per second can the server acknowledge with C clients waiting",
 * which is exactly throughput at a fixed concurrency.
 *
 * A connection error (refused, reset, EOF mid-answer, a malformed answer)
 * counts one error, closes the connection and reconnects after 10 ms.
 *
 * With --requests N the run sends exactly N requests in all (no warm-up) and
 * ends when the last answer arrives or --seconds passes, whichever is first;
 * it then reports the real elapsed time. The SLA bench needs this to leave
 * an exact number of open requests behind. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#define HIST_SUB_BITS 6 /* 64 sub-buckets per power of two */
#define HIST_N 2048     /* covers up to 2^36 ns, about 68 s */
#define RESP_MAX (16u << 20)
#define HEADER_MAX (64u << 10)
#define RETRY_MS 10
#define MAX_REPORTED_ERRORS 5

typedef struct opts_s {
    const char *host;
    int port;
    unsigned conns;
    unsigned threads;
    double seconds;
    double warmup;
    const char *method;
    const char *path;
    const char *token;
    const char *content_type;
    const char *label;
    char *body;        /* the template, owned */
    uint64_t requests; /* 0: run for --seconds; else send exactly this many */
} opts_t;

typedef struct worker_s worker_t;

typedef struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t retry;
    uv_connect_t creq;
    uv_write_t wreq;
    worker_t *w;
    int tcp_open;  /* tcp initialised and its close callback not yet run */
    int in_flight; /* a request was sent and its answer is not complete */
    char *req;     /* the request being written */
    size_t req_len, req_cap;
    char *resp; /* bytes of the answer read so far */
    size_t resp_len, resp_cap;
    uint64_t sent_at;
    /* Parse state of the current answer. */
    int hdr_done;
    size_t hdr_len;
    long long content_length; /* -1: until the server closes */
    int status;
    int close_after;
    int done; /* --requests: the quota is spent; this connection sends no more */
} conn_t;

struct worker_s {
    uv_loop_t loop;
    uv_timer_t stop;
    uv_thread_t tid;
    conn_t *conns;
    size_t nconns;
    int stopping;
    size_t ndone;    /* connections with done set */
    uint64_t t_last; /* uv_hrtime() of the last completed answer */
    uint64_t ok, errors, non2xx;
    uint64_t hist[HIST_N];
};

static opts_t g_opt = {
    .host = "127.0.0.1",
    .port = 8080,
    .conns = 256,
    .threads = 1,
    .seconds = 10,
    .warmup = 1,
    .method = "POST",
    .path = "/v1/requests",
    .content_type = "application/json",
};
static struct sockaddr_storage g_addr;
/* The body template split at each "{n}": nseg segments, nseg - 1 counters. */
static char **g_seg;
static size_t *g_seglen;
static size_t g_nseg;
static char *g_head; /* request line and fixed headers, without Content-Length */
static size_t g_head_len;
static uint64_t g_counter;            /* atomic: the next {n} */
static uint64_t g_issued;             /* atomic: requests started, for --requests */
static int g_non2xx_printed;          /* atomic */
static int g_errors_printed;          /* atomic */
static uint64_t g_t_measure, g_t_end; /* uv_hrtime() nanoseconds */

static void conn_start(conn_t *c);
static void conn_send(conn_t *c);

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        die("out of memory");
    return q;
}

/* ---- histogram ---- */

static int hist_index(uint64_t v)
{
    if (v < (1u << (HIST_SUB_BITS + 1)))
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int e = msb - HIST_SUB_BITS;
    int idx = (e << HIST_SUB_BITS) + (int)(v >> e);
    return idx < HIST_N ? idx : HIST_N - 1;
}

/* The middle of bucket idx, the inverse of hist_index. */
static double hist_value(int idx)
{
    if (idx < (1 << (HIST_SUB_BITS + 1)))
        return idx;
    int e = (idx >> HIST_SUB_BITS) - 1;
    uint64_t sub = (uint64_t)(idx - (e << HIST_SUB_BITS));
    uint64_t lo = sub << e;
    return (double)lo + (double)((1ull << e) - 1) / 2.0;
}

static double hist_percentile(const uint64_t *h, uint64_t total, double p)
{
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)total + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (int i = 0; i < HIST_N; i++) {
        seen += h[i];
        if (seen >= rank)
            return hist_value(i);
    }
    return hist_value(HIST_N - 1);
}

/* ---- one connection ---- */

static int in_window(uint64_t now)
{
    return now >= g_t_measure && now < g_t_end;
}

static void on_retry(uv_timer_t *t)
{
    conn_start(t->data);
}

static void on_tcp_close(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->tcp_open = 0;
    c->in_flight = 0;
    /* A short pause, so that a refusing server is not hammered in a tight loop. */
    if (!c->w->stopping && !c->done)
        uv_timer_start(&c->retry, on_retry, RETRY_MS, 0);
}

/* Closes c without counting anything; it reconnects unless stopping. */
static void conn_close(conn_t *c)
{
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_tcp_close);
}

static void conn_fail(conn_t *c, const char *what, int status)
{
    worker_t *w = c->w;
    if (w->stopping || !c->tcp_open || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (in_window(uv_hrtime())) {
        w->errors++;
        if (__atomic_fetch_add(&g_errors_printed, 1, __ATOMIC_RELAXED) < MAX_REPORTED_ERRORS)
            fprintf(stderr, "load: connection error: %s: %s\n", what,
                    status ? uv_strerror(status) : "protocol");
    }
    conn_close(c);
}

static void on_retry_close(uv_handle_t *h)
{
    (void)h;
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    if (c->w->stopping || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (status < 0) {
        conn_fail(c, "connect", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    conn_send(c);
}

static void conn_start(conn_t *c)
{
    worker_t *w = c->w;
    int rc;
    if (w->stopping || c->tcp_open || c->done)
        return;
    if ((rc = uv_tcp_init(&w->loop, &c->tcp)) < 0)
        die("uv_tcp_init: %s", uv_strerror(rc));
    c->tcp.data = c;
    c->tcp_open = 1;
    c->creq.data = c;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&g_addr, on_connect);
    if (rc < 0)
        conn_fail(c, "connect", rc);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    if (c->resp_cap - c->resp_len < 16384) {
        size_t cap = c->resp_cap ? c->resp_cap * 2 : 65536;
        if (cap > RESP_MAX + 65536)
            cap = RESP_MAX + 65536;
        if (cap > c->resp_cap) {
            c->resp = xrealloc(c->resp, cap);
            c->resp_cap = cap;
        }
    }
    buf->base = c->resp + c->resp_len;
    buf->len = c->resp_cap - c->resp_len;
}

/* Finds the first header named name (case-insensitively) in the header block
 * [p, end) and returns its value (leading blanks skipped) or NULL. */
static const char *find_header(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 1;
    }
    return NULL;
}

/* Parses the status line and the headers once "\r\n\r\n" has arrived.
 * Returns 0, 1 when more bytes are needed, -1 on a malformed answer. */
static int parse_head(conn_t *c)
{
    const char *end = NULL;
    for (size_t i = 3; i < c->resp_len; i++) {
        if (c->resp[i] == '\n' && c->resp[i - 1] == '\r' && c->resp[i - 2] == '\n' &&
            c->resp[i - 3] == '\r') {
            end = c->resp + i + 1;
            break;
        }
    }
    if (end == NULL)
        return c->resp_len > HEADER_MAX ? -1 : 1;
    if (c->resp_len < 12 || memcmp(c->resp, "HTTP/1.", 7) != 0 || c->resp[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (c->resp[i] < '0' || c->resp[i] > '9')
            return -1;
        st = st * 10 + (c->resp[i] - '0');
    }
    c->status = st;
    c->hdr_len = (size_t)(end - c->resp);
    c->hdr_done = 1;
    /* HTTP/1.0 closes unless it says keep-alive; 1.1 keeps unless it says close. */
    c->close_after = c->resp[7] == '0';
    size_t vl;
    const char *line1 = memchr(c->resp, '\n', c->hdr_len) + 1;
    const char *v = find_header(line1, end, "Connection", &vl);
    if (v != NULL) {
        if (vl == 5 && strncasecmp(v, "close", 5) == 0)
            c->close_after = 1;
        else if (vl == 10 && strncasecmp(v, "keep-alive", 10) == 0)
            c->close_after = 0;
    }
    v = find_header(line1, end, "Transfer-Encoding", &vl);
    if (v != NULL)
        return -1; /* chunked answers are not supported by this bench */
    c->content_length = -1;
    v = find_header(line1, end, "Content-Length", &vl);
    if (v != NULL) {
        long long n = 0;
        if (vl == 0 || vl > 12)
            return -1;
        for (size_t i = 0; i < vl; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -1;
            n = n * 10 + (v[i] - '0');
        }
        c->content_length = n;
    } else if (st == 204 || st == 304 || (st >= 100 && st < 200) ||
               strcmp(g_opt.method, "HEAD") == 0) {
        c->content_length = 0;
    }
    if (c->content_length > (long long)RESP_MAX)
        return -1;
    return 0;
}

static void print_non2xx(const conn_t *c)
{
    if (__atomic_exchange_n(&g_non2xx_printed, 1, __ATOMIC_RELAXED))
        return;
    size_t blen = c->resp_len - c->hdr_len;
    if (blen > 2000)
        blen = 2000;
    fprintf(stderr, "load: first non-2xx answer: status %d body: %.*s\n", c->status, (int)blen,
            c->resp + c->hdr_len);
}

/* The answer is complete: count it and send the next request. */
static void conn_complete(conn_t *c)
{
    worker_t *w = c->w;
    uint64_t now = uv_hrtime();
    c->in_flight = 0;
    w->t_last = now;
    if (in_window(now)) {
        if (c->status >= 200 && c->status < 300) {
            w->ok++;
            w->hist[hist_index(now - c->sent_at)]++;
        } else {
            w->non2xx++;
            print_non2xx(c);
        }
    } else if (c->status < 200 || c->status >= 300) {
        print_non2xx(c); /* also during warm-up: it explains a failing run early */
    }
    if (c->close_after)
        conn_close(c);
    else
        conn_send(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    (void)buf;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && c->in_flight && c->hdr_done && c->content_length < 0) {
            c->close_after = 1;
            conn_complete(c); /* an answer delimited by the close */
            return;
        }
        if (nread == UV_EOF && !c->in_flight) {
            conn_close(c); /* the server closed an idle connection: not an error */
            return;
        }
        conn_fail(c, "read", (int)nread);
        return;
    }
    c->resp_len += (size_t)nread;
    if (!c->in_flight) {
        conn_fail(c, "bytes without a request", 0);
        return;
    }
    if (!c->hdr_done) {
        int rc = parse_head(c);
        if (rc < 0) {
            conn_fail(c, "malformed answer", 0);
            return;
        }
        if (rc > 0)
            return;
    }
    if (c->content_length < 0) {
        if (c->resp_len > RESP_MAX)
            conn_fail(c, "answer too big", 0);
        return;
    }
    size_t want = c->hdr_len + (size_t)c->content_length;
    if (c->resp_len < want)
        return;
    if (c->resp_len > want) {
        conn_fail(c, "bytes after the answer", 0);
        return;
    }
    conn_complete(c);
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    if (status < 0)
        conn_fail(c, "write", status);
}

static void req_append(conn_t *c, const char *p, size_t n)
{
    if (c->req_len + n > c->req_cap) {
        size_t cap = c->req_cap ? c->req_cap : 1024;
        while (cap < c->req_len + n)
            cap *= 2;
        c->req = xrealloc(c->req, cap);
        c->req_cap = cap;
    }
    memcpy(c->req + c->req_len, p, n);
    c->req_len += n;
}

static void on_stop(uv_timer_t *t);

static void conn_send(conn_t *c)
{
    char num[32], cl[64];
    int numlen = 0, rc;
    size_t blen = 0;
    if (c->done)
        return;
    if (g_opt.requests && __atomic_fetch_add(&g_issued, 1, __ATOMIC_RELAXED) >= g_opt.requests) {
        /* The quota is spent: this connection stays idle, and the worker stops
         * once all of its connections are. */
        worker_t *w = c->w;
        c->done = 1;
        if (++w->ndone == w->nconns && !w->stopping)
            uv_timer_start(&w->stop, on_stop, 0, 0);
        return;
    }
    if (g_nseg > 1) {
        uint64_t n = __atomic_fetch_add(&g_counter, 1, __ATOMIC_RELAXED);
        numlen = snprintf(num, sizeof num, "%llu", (unsigned long long)n);
    }
    for (size_t i = 0; i < g_nseg; i++)
        blen += g_seglen[i] + (i + 1 < g_nseg ? (size_t)numlen : 0);
    c->req_len = 0;
    req_append(c, g_head, g_head_len);
    int cll = snprintf(cl, sizeof cl, "Content-Length: %zu\r\n\r\n", blen);
    req_append(c, cl, (size_t)cll);
    for (size_t i = 0; i < g_nseg; i++) {
        req_append(c, g_seg[i], g_seglen[i]);
        if (i + 1 < g_nseg)
            req_append(c, num, (size_t)numlen);
    }
    c->resp_len = 0;
    c->hdr_done = 0;
    c->hdr_len = 0;
    c->status = 0;
    c->close_after = 0;
    c->in_flight = 1;
    if (!uv_is_active((uv_handle_t *)&c->tcp)) {
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        if (rc < 0) {
            conn_fail(c, "read start", rc);
            return;
        }
    }
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->req_len);
    c->wreq.data = c;
    c->sent_at = uv_hrtime();
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc < 0)
        conn_fail(c, "write", rc);
}

/* ---- one worker: a loop and its connections ---- */

static void on_stop(uv_timer_t *t)
{
    worker_t *w = t->data;
    w->stopping = 1;
    for (size_t i = 0; i < w->nconns; i++) {
        conn_t *c = &w->conns[i];
        conn_close(c);
        uv_close((uv_handle_t *)&c->retry, on_retry_close);
    }
    uv_close((uv_handle_t *)&w->stop, NULL);
}

static void worker_run(void *arg)
{
    worker_t *w = arg;
    int rc;
    uint64_t now = uv_hrtime();
    for (size_t i = 0; i < w->nconns; i++)
        conn_start(&w->conns[i]);
    w->stop.data = w;
    uv_timer_start(&w->stop, on_stop, now < g_t_end ? (g_t_end - now) / 1000000 + 1 : 0, 0);
    if ((rc = uv_run(&w->loop, UV_RUN_DEFAULT)) < 0)
        die("uv_run: %s", uv_strerror(rc));
}

static void worker_init(worker_t *w, size_t nconns)
{
    int rc;
    memset(w, 0, sizeof *w);
    if ((rc = uv_loop_init(&w->loop)) < 0)
        die("uv_loop_init: %s", uv_strerror(rc));
    uv_timer_init(&w->loop, &w->stop);
    w->nconns = nconns;
    w->conns = calloc(nconns ? nconns : 1, sizeof *w->conns);
    if (w->conns == NULL)
        die("out of memory");
    for (size_t i = 0; i < nconns; i++) {
        w->conns[i].w = w;
        uv_timer_init(&w->loop, &w->conns[i].retry);
        w->conns[i].retry.data = &w->conns[i];
    }
}

static void worker_close(worker_t *w)
{
    for (size_t i = 0; i < w->nconns; i++) {
        free(w->conns[i].req);
        free(w->conns[i].resp);
    }
    free(w->conns);
    uv_loop_close(&w->loop);
}

/* ---- setup ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *p = xrealloc(NULL, cap);
    size_t n;
    while ((n = fread(p + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len - 1 == 0)
            p = xrealloc(p, cap *= 2);
    }
    if (ferror(f))
        die("%s: read error", path);
    fclose(f);
    p[len] = 0;
    return p;
}

static void split_body(const char *body)
{
    const char *p = body;
    for (;;) {
        const char *q = strstr(p, "{n}");
        size_t n = q ? (size_t)(q - p) : strlen(p);
        g_seg = xrealloc(g_seg, (g_nseg + 1) * sizeof *g_seg);
        g_seglen = xrealloc(g_seglen, (g_nseg + 1) * sizeof *g_seglen);
        g_seg[g_nseg] = xrealloc(NULL, n + 1);
        memcpy(g_seg[g_nseg], p, n);
        g_seg[g_nseg][n] = 0;
        g_seglen[g_nseg] = n;
        g_nseg++;
        if (q == NULL)
            break;
        p = q + 3;
    }
}

static void build_head(void)
{
    size_t cap = 4096 + strlen(g_opt.method) + strlen(g_opt.path) + strlen(g_opt.host) +
                 strlen(g_opt.content_type) + (g_opt.token ? strlen(g_opt.token) : 0);
    g_head = xrealloc(NULL, cap);
    int n = snprintf(g_head, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: osse-load\r\n",
                     g_opt.method, g_opt.path, g_opt.host, g_opt.port);
    if (g_opt.token != NULL)
        n += snprintf(g_head + n, cap - (size_t)n, "Authorization: Bearer %s\r\n", g_opt.token);
    if (g_opt.body != NULL && g_opt.body[0] != 0)
        n += snprintf(g_head + n, cap - (size_t)n, "Content-Type: %s\r\n", g_opt.content_type);
    g_head_len = (size_t)n;
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", g_opt.port);
    int rc = getaddrinfo(g_opt.host, port, &hints, &res);
    if (rc != 0 || res == NULL)
        die("%s: %s", g_opt.host, gai_strerror(rc));
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
}

static void usage(void)
{
    fputs("usage: load [--host H] [--port P] [--conns C] [--threads N] [--seconds S]\n"
          "            [--warmup W] [--method M] [--path P] [--token T]\n"
          "            [--body '...' | --body-file F] [--content-type CT] [--label L]\n"
          "            [--requests N]\n"
          "The body may hold {n}: each request gets a fresh number there.\n"
          "--requests N: send exactly N requests (no warm-up), end after the last\n"
          "answer or after --seconds, and report the real elapsed seconds.\n",
          stderr);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            usage();
        if (i + 1 >= argc)
            die("%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--host") == 0)
            g_opt.host = v;
        else if (strcmp(a, "--port") == 0)
            g_opt.port = atoi(v);
        else if (strcmp(a, "--conns") == 0)
            g_opt.conns = (unsigned)atoi(v);
        else if (strcmp(a, "--threads") == 0)
            g_opt.threads = (unsigned)atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            g_opt.seconds = atof(v);
        else if (strcmp(a, "--warmup") == 0)
            g_opt.warmup = atof(v);
        else if (strcmp(a, "--method") == 0)
            g_opt.method = v;
        else if (strcmp(a, "--path") == 0)
            g_opt.path = v;
        else if (strcmp(a, "--token") == 0)
            g_opt.token = v;
        else if (strcmp(a, "--content-type") == 0)
            g_opt.content_type = v;
        else if (strcmp(a, "--label") == 0)
            g_opt.label = v;
        else if (strcmp(a, "--requests") == 0)
            g_opt.requests = strtoull(v, NULL, 10);
        else if (strcmp(a, "--body") == 0) {
            free(g_opt.body);
            g_opt.body = strdup(v);
        } else if (strcmp(a, "--body-file") == 0) {
            free(g_opt.body);
            g_opt.body = read_file(v);
        } else
            die("unknown option %s", a);
    }
    if (g_opt.port <= 0 || g_opt.port > 65535)
        die("bad --port");
    if (g_opt.conns < 1 || g_opt.threads < 1 || g_opt.seconds <= 0 || g_opt.warmup < 0)
        die("--conns, --threads and --seconds must be positive, --warmup not negative");
    if (g_opt.threads > g_opt.conns)
        g_opt.threads = g_opt.conns;
    if (g_opt.requests)
        g_opt.warmup = 0; /* every one of the N requests is measured */
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    resolve();
    split_body(g_opt.body ? g_opt.body : "");
    build_head();
    g_counter = 1;

    unsigned nt = g_opt.threads;
    worker_t *ws = calloc(nt, sizeof *ws);
    if (ws == NULL)
        die("out of memory");
    for (unsigned i = 0; i < nt; i++)
        worker_init(&ws[i], g_opt.conns / nt + (i < g_opt.conns % nt ? 1 : 0));

    uint64_t start = uv_hrtime();
    g_t_measure = start + (uint64_t)(g_opt.warmup * 1e9);
    g_t_end = g_t_measure + (uint64_t)(g_opt.seconds * 1e9);
    if (nt == 1) {
        worker_run(&ws[0]);
    } else {
        for (unsigned i = 0; i < nt; i++)
            if (uv_thread_create(&ws[i].tid, worker_run, &ws[i]) != 0)
                die("uv_thread_create failed");
        for (unsigned i = 0; i < nt; i++)
            uv_thread_join(&ws[i].tid);
    }

    uint64_t ok = 0, errors = 0, non2xx = 0, t_last = g_t_measure;
    static uint64_t hist[HIST_N];
    for (unsigned i = 0; i < nt; i++) {
        if (ws[i].t_last > t_last)
            t_last = ws[i].t_last;
        ok += ws[i].ok;
        errors += ws[i].errors;
        non2xx += ws[i].non2xx;
        for (int j = 0; j < HIST_N; j++)
            hist[j] += ws[i].hist[j];
        worker_close(&ws[i]);
    }
    free(ws);
    /* --requests: the run may end before --seconds; rates use the real time. */
    double secs = g_opt.seconds;
    if (g_opt.requests && t_last > g_t_measure && t_last < g_t_end)
        secs = (double)(t_last - g_t_measure) / 1e9;

    printf("load path=%s conns=%u seconds=%g ok=%llu errors=%llu non2xx=%llu rps=%.1f "
           "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f",
           g_opt.path, g_opt.conns, secs, (unsigned long long)ok, (unsigned long long)errors,
           (unsigned long long)non2xx, (double)ok / secs, hist_percentile(hist, ok, 0.50) / 1e6,
           hist_percentile(hist, ok, 0.99) / 1e6, hist_percentile(hist, ok, 0.999) / 1e6);
    if (g_opt.threads > 1)
        printf(" threads=%u", g_opt.threads);
    if (g_opt.requests)
        printf(" requests=%llu", (unsigned long long)g_opt.requests);
    if (g_opt.label != NULL)
        printf(" label=%s", g_opt.label);
    putchar('\n');

    for (size_t i = 0; i < g_nseg; i++)
        free(g_seg[i]);
    free(g_seg);
    free(g_seglen);
    free(g_head);
    free(g_opt.body);
    return 0;
}
