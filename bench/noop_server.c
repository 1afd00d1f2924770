/* noop_server.c: osse's HTTP stack answering every request with 200 {}.
 *
 * The baseline for benches: the same server, parser and write path as osse,
 * with no routing, engine or storage behind it, so that a bench of the real
 * server can be read against what the HTTP layer alone costs.
 *
 * With a second argument BYTES, a GET is answered instead with a streamed
 * body of exactly BYTES bytes (CSV-looking lines), through
 * osse_http_respond_stream in 64 KiB slices, as the registry's CSV export is:
 * the floor of that export on the same HTTP stack (registry.sh).
 *
 * Usage: noop_server [port [bytes]]   (port 0 = any free port; prints it). */
#include "api/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLICE (64u << 10)

static unsigned long long g_stream_bytes; /* 0: answer {} */

typedef struct stream_s {
    unsigned long long left;
} stream_t;

static int fill(void *ud, osse_buf_t *out)
{
    static char slice[SLICE];
    stream_t *s = ud;
    if (!slice[0]) {
        static const char row[] = "NOOP-2030-0000001,noop,Noop,valid,2030-01-07T02:00:00Z,,\r\n";
        for (size_t i = 0; i < SLICE; i++)
            slice[i] = row[i % (sizeof row - 1)];
    }
    size_t n = s->left < SLICE ? (size_t)s->left : SLICE;
    if (osse_buf_append(out, slice, n) != 0)
        return -1;
    s->left -= n;
    return s->left > 0 ? 1 : 0;
}

static void on_request(osse_http_req_t *req, void *ud)
{
    (void)ud;
    if (g_stream_bytes && strcmp(req->method, "GET") == 0) {
        stream_t *s = malloc(sizeof *s);
        if (!s) {
            osse_http_respond(req, 500, "application/json", NULL, "{}", 2);
            return;
        }
        s->left = g_stream_bytes;
        osse_http_respond_stream(req, 200, "text/csv; charset=utf-8", NULL, fill, free, s);
        return;
    }
    osse_http_respond(req, 200, "application/json", NULL, "{}", 2);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    g_stream_bytes = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    uv_loop_t *loop = uv_default_loop();
    osse_http_limits_t lim;
    osse_http_limits_default(&lim);
    lim.max_conns = 100000;
    lim.max_pipeline = 128;
    osse_http_server_t *srv;
    osse_err_t err;
    if (osse_http_open(loop, "127.0.0.1", port, &lim, on_request, NULL, &srv, &err) != 0) {
        fprintf(stderr, "noop_server: %s\n", err.msg);
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", osse_http_port(srv));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
