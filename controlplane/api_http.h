/* api_http.h: nanocp's HTTP+JSON admin API (docs/admin-api.md).
 *
 * The admin routes on nano_http's HTTP/1.1 server (dataplane/server/server.h), which does the
 * connection work: parsing, keep-alive and pipelining, the head and body limits and timeouts,
 * 100-continue, drain. This module maps each /v1/... route to one service op, checks
 * `Authorization: Bearer TOKEN` with the token-check callback (only /healthz is public),
 * reads the body (JSON at most 1 MiB, code uploads at most max_body), and answers
 * application/json: the op's result, or {"error": {"code", "message", "field"}} with the
 * status the op's cp_error carries; the server's own refusals (400, 408, 413, 431, 501, 505)
 * have the same JSON form. It also serves GET /metrics (Prometheus text: requests by route
 * template, method and status; errors by code; protocol errors by reason; open connections).
 *
 * A thin adapter that holds no state of its own beyond requests in progress and counters.
 * Every function here, and every callback it makes, runs on the loop's thread. */
#ifndef CP_API_HTTP_H
#define CP_API_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "api.h"

#define CP_HTTP_MAX_HEAD (64u * 1024)
#define CP_HTTP_MAX_JSON_BODY (1u * 1024 * 1024)
#define CP_HTTP_DEFAULT_MAX_BODY (64u * 1024 * 1024)
#define CP_HTTP_MAX_CONNS 512
#define CP_HTTP_IDLE_MS 60000 /* a connection with no bytes for this long is closed */
#define CP_HTTP_REQUEST_GRACE_MS 30000
#define CP_HTTP_BODY_MIN_RATE 500

typedef struct cp_http cp_http;

/* cp_http_limits: how much and how slowly a client may send (nanocp's --http-request-timeout
 * and --http-body-min-rate). A request's head must be in within request_grace_ms of its
 * first byte; its body within request_grace_ms of the head's end plus 1 s per body_min_rate
 * bytes received (0: no rate rule; a body is then bounded by the idle timeout between bytes).
 * Else 408, and the connection closes. */
typedef struct cp_http_limits {
    size_t max_body;           /* a PUT .../code upload */
    uint64_t request_grace_ms; /* above 0 */
    uint64_t body_min_rate;    /* bytes/s */
} cp_http_limits;

#define CP_HTTP_LIMITS_DEFAULT                                                                     \
    {                                                                                              \
        CP_HTTP_DEFAULT_MAX_BODY, CP_HTTP_REQUEST_GRACE_MS, CP_HTTP_BODY_MIN_RATE                  \
    }

/* cp_http_start: listens on addr ("127.0.0.1:7070", "[::1]:0"; see cp_api_parse_addr) on
 * loop and serves the admin API, calling call and check with ud (borrowed; must outlive the
 * server). limits (borrowed for the call; NULL: CP_HTTP_LIMITS_DEFAULT) bound requests. At
 * most CP_HTTP_MAX_CONNS connections are open; one beyond is closed at once. Returns 0 and
 * *out (owned; release with cp_http_close), or a negative code with err filled (bad address,
 * bind or listen failure, e.g. "... address already in use"; the loop must then run once
 * more to release what was opened). No callback runs before it returns. Loop thread. */
int cp_http_start(uv_loop_t *loop, const char *addr, cp_call_cb call, cp_token_check_cb check,
                  void *ud, const cp_http_limits *limits, cp_http **out, nano_error *err);

/* cp_http_port: the TCP port the server is bound to (the chosen one when addr had port 0). */
int cp_http_port(const cp_http *http);

/* cp_http_use_tls: from now on, connections speak HTTPS only (TLS 1.2+), with the PEM
 * certificate chain cert and its key, and client certificates signed by ca required when ca
 * is not NULL (nanocp's --admin-tls-*). Call it right after cp_http_start, before the loop
 * runs, so that no plaintext connection is ever taken; call it again to reload the files
 * (SIGHUP): connections already open keep the old certificate. Returns 0, or NANO_EINVAL
 * with err naming the file and why (the server is unchanged). */
int cp_http_use_tls(cp_http *http, const char *cert, const char *key, const char *ca,
                    nano_error *err);

/* cp_http_close: stops listening and closes every connection: idle ones at once, ones with an
 * answer still being written once it is written; a request whose body is still arriving is
 * answered 503 shutting_down without running its op. After 2 s whatever is left is cut.
 * Ops run synchronously on the loop thread, so no op is cut. Asynchronous: done (may be NULL)
 * runs with arg from the loop once every handle is closed and http is freed; never from
 * inside this call. NULL-safe. Loop thread. */
void cp_http_close(cp_http *http, cp_api_closed_cb done, void *arg);

#endif
