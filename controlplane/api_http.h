/* api_http.h: nanocp's HTTP+JSON admin API (docs/admin-api.md).
 *
 * An HTTP/1.1 server on a libuv loop (llhttp parses; keep-alive and pipelining; request head
 * at most 64 KiB; JSON bodies at most 1 MiB, code uploads at most max_body) that maps each
 * /v1/... route to one service op, checks `Authorization: Bearer TOKEN` with the token-check
 * callback (only /healthz is public), and answers application/json: the op's result, or
 * {"error": {"code", "message", "field"}} with the status the op's cp_error carries. It also
 * serves GET /metrics (Prometheus text: requests by route template, method and status; errors
 * by code).
 *
 * A thin adapter that holds no state of its own beyond connections and counters. Every
 * function here, and every callback it makes, runs on the loop's thread. */
#ifndef CP_API_HTTP_H
#define CP_API_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "api.h"

#define CP_HTTP_MAX_HEAD (64u * 1024)
#define CP_HTTP_MAX_JSON_BODY (1u * 1024 * 1024)
#define CP_HTTP_DEFAULT_MAX_BODY (64u * 1024 * 1024)
#define CP_HTTP_MAX_CONNS 512
#define CP_HTTP_IDLE_MS 60000 /* a connection with no bytes for this long is closed */
/* A request must be in within CP_HTTP_REQUEST_GRACE_MS of its first byte, plus 1 s per
 * CP_HTTP_BODY_MIN_RATE bytes of body received; else 408 and the connection closes. */
#define CP_HTTP_REQUEST_GRACE_MS 30000
#define CP_HTTP_BODY_MIN_RATE 500

typedef struct cp_http cp_http;

/* cp_http_start: listens on addr ("127.0.0.1:7070", "[::1]:0"; see cp_api_parse_addr) on
 * loop and serves the admin API, calling call and check with ud (borrowed; must outlive the
 * server). max_body bounds a PUT .../code upload (0: CP_HTTP_DEFAULT_MAX_BODY). Returns 0 and
 * *out (owned; release with cp_http_close), or a negative code with err filled (bad address,
 * bind or listen failure, e.g. "127.0.0.1:7070: address already in use"). No callback runs
 * before it returns. Loop thread. */
int cp_http_start(uv_loop_t *loop, const char *addr, cp_call_cb call, cp_token_check_cb check,
                  void *ud, size_t max_body, cp_http **out, nano_error *err);

/* cp_http_port: the TCP port the server is bound to (the chosen one when addr had port 0). */
int cp_http_port(const cp_http *http);

/* cp_http_set_request_timing: a request must be in within grace_ms of its first byte plus
 * 1 s per body_min_rate bytes of body received (0: no rate, the grace alone bounds the head
 * and the body never); else 408 and close. Defaults CP_HTTP_REQUEST_GRACE_MS and
 * CP_HTTP_BODY_MIN_RATE; nanocp's --http-request-timeout and --http-body-min-rate. Applies
 * to requests whose timer is armed from then on. Loop thread. */
void cp_http_set_request_timing(cp_http *http, uint64_t grace_ms, uint64_t body_min_rate);

/* cp_http_close: stops listening and closes every connection: idle ones at once, ones with an
 * answer still being written once it is written (at most 2 s later). Ops run synchronously on
 * the loop thread, so no op is cut. Asynchronous: done (may be NULL) runs with arg from the
 * loop once every handle is closed and http is freed; never from inside this call.
 * NULL-safe. Loop thread. */
void cp_http_close(cp_http *http, cp_api_closed_cb done, void *arg);

#endif
