/* server.h: the HTTP API of SPEC §3-§6 and §10 over osse's HTTP server, and
 * the pages of §13. */
#ifndef OSSE_API_SERVER_H
#define OSSE_API_SERVER_H

#include <stdbool.h>
#include <uv.h>

#include "api/http.h"
#include "api/ui.h"
#include "engine/engine.h"

typedef struct osse_server_s osse_server_t;

/* Starts serving eng on host:port (0 = any), and the pages of ui under
 * /ui/ (borrowed: it must outlive the server; NULL: none). upload_timeout_ms:
 * how long an upload's body may take to arrive (0: http.h's default). Loop
 * thread. */
int osse_server_open(uv_loop_t *loop, osse_engine_t *eng, const osse_ui_t *ui, const char *host,
                     int port, bool test_clock, unsigned upload_timeout_ms, osse_server_t **out,
                     osse_err_t *err);
int osse_server_port(const osse_server_t *s);

/* The origins whose pages may call this server from a browser (CORS,
 * osse_http_cors; `osse serve --cors-origin`). Returns 0 or OSSE_EINVAL
 * (detail in err). Call before the loop runs. */
int osse_server_cors(osse_server_t *s, const char *const *origins, size_t n, osse_err_t *err);

/* JSON bodies nest at most this deep (SPEC §11); checked by a scan of the
 * raw bytes before jansson parses them. */
#define OSSE_JSON_MAX_DEPTH 32
/* True when the JSON text p nests arrays/objects deeper than the limit. Any
 * bytes (strings and escapes are skipped; no validation). */
bool osse_server_too_deep(const void *p, size_t len);
/* The route table, read-only (tests compare it with api/openapi.json):
 * method, pattern (segments; ":x" stands for one segment), the roles
 * allowed as bits (1u << osse_role_t; 0 = public, no token), and whether the
 * route exists only with --test-clock. Strings are static. Any thread. */
typedef struct osse_route_info_s {
    const char *method;
    const char *pattern;
    unsigned roles;
    bool test_only;
} osse_route_info_t;
size_t osse_server_route_count(void);
/* Row i, i < osse_server_route_count(). */
osse_route_info_t osse_server_route(size_t i);

/* Stops accepting and closes connections; run the loop for close callbacks. */
void osse_server_close(osse_server_t *s);

#endif
