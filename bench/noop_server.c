/* noop_server.c: osse's HTTP stack answering every request with 200 {}.
 *
 * The baseline for benches: the same server, parser and write path as osse,
 * with no routing, engine or storage behind it, so that a bench of the real
 * server can be read against what the HTTP layer alone costs.
 *
 * Usage: noop_server [port]   (default 0 = any free port; prints the port). */
#include "api/http.h"

#include <stdio.h>
#include <stdlib.h>

static void on_request(osse_http_req_t *req, void *ud)
{
    osse_http_respond(req, 200, "application/json", NULL, "{}", 2);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
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
