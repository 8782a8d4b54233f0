/* server.h: the HTTP/1.1 front door of nano-dp (and of nanocp's admin API): a listener on one
 * libuv loop, its connections, and graceful drain (docs/nano-dp.md#shutdown). Each parsed
 * request head goes to a dispatch callback (a worker's router, the status port's handler,
 * nanocp's admin routes), which answers it natively or
 * hands it to whatever runs the app (the worker: an isolate, told of the request's events
 * through a dp_request_listener, request.h). This library knows nothing of the runtime.
 * All functions: loop thread only. */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "error.h"
#include "http1.h"
#include "tls.h"

struct dp_request;
typedef struct dp_server dp_server;

/* dp_dispatch_fn: a request head arrived; answer it (dp_response_*) now or later. The request
 * is borrowed: take a reference to keep it past the call.
 * dp_request_end_fn: the connection is done with the request: its response was written
 * (failed: or abandoned, the connection closing); for access logs and counters. */
typedef void (*dp_dispatch_fn)(void *ud, struct dp_request *req);
typedef void (*dp_request_end_fn)(void *ud, struct dp_request *req, bool failed);

/* dp_refusal_fn: the server refused a request itself, before or instead of dispatch (status
 * 400/408/413/431/501/505; kind and reason say why, as dp_server_refusals counts it). When an
 * answer can still be sent, headers and body are non-NULL: the function may append header
 * lines ("name: value\r\n" each; the server adds content-length, connection: close and date)
 * and the body, and return true to send them instead of the plain-text default (false: the
 * default). With NULL buffers (a response had started) it is told only. */
typedef bool (*dp_refusal_fn)(void *ud, int status, dp_refusal kind, const char *reason,
                              nano_buf *headers, nano_buf *body);

typedef struct dp_server_options {
    const char *host;         /* listen address, e.g. "127.0.0.1" or "::1" */
    int port;                 /* 0 = ephemeral */
    dp_http1_limits limits;   /* request head and body sizes */
    uint64_t head_timeout_ms; /* a request head must arrive within this */
    uint64_t idle_timeout_ms; /* keep-alive connections idle this long are closed */
    /* A request body must come at body_min_rate bytes/s on average after a grace of
     * body_timeout_ms (mod_reqtimeout's rule): the deadline is the body's start + the grace
     * + 1 s per body_min_rate bytes received; time while reading is held back for the app
     * does not count. 0 in either: no rate rule (the idle timeout still applies). */
    uint64_t body_timeout_ms;
    uint64_t body_min_rate;
    uint64_t write_timeout_ms; /* response bytes waiting this long with none taken by the
                                * client close the connection (0: DP_WRITE_TIMEOUT_MS) */
    int fd;                    /* > 0: an already bound socket to listen on (SO_REUSEPORT
                               * siblings made by dp_listen_socket); host/port then name it */
    uint32_t worker_index;     /* in request ids' high bits, so ids are process-unique */
    bool quiet;       /* no dp.listening line (workers' siblings; the status port logs its own) */
    size_t max_conns; /* > 0: a connection beyond this many open is closed at once
                               * (conn.too_many); 0: no cap */
    dp_tls_ctx *tls_ctx; /* not NULL: every connection speaks TLS (HTTPS) under this
                               * context (tls.h; the server takes a reference); no plaintext */
    dp_dispatch_fn dispatch;
    dp_request_end_fn on_request_end; /* may be NULL */
    dp_refusal_fn on_refusal;         /* may be NULL: plain-text answers */
    void *ud;                         /* for the three callbacks */
} dp_server_options;

/* dp_listen_socket: a TCP socket bound to host:port with SO_REUSEPORT (so each worker thread
 * can have its own, the kernel spreading connections among them); port 0 picks one, read it
 * back with *bound_port. Returns the fd, or a negative code with err filled. */
int dp_listen_socket(const char *host, int port, int *bound_port, nano_error *err);
/* dp_listen_socket_exclusive: the same without SO_REUSEPORT: fails with "address in use"
 * when anyone listens there (a probe before the shared sockets). */
int dp_listen_socket_exclusive(const char *host, int port, int *bound_port, nano_error *err);

/* The default write timeout: a client that has taken none of the bytes waiting for it for
 * this long is not reading (or is gone): its connection is reset and its request aborted. */
#define DP_WRITE_TIMEOUT_MS (30 * 1000)

/* dp_server_refusals: requests refused before they reached an app, by reason (http1.h
 * dp_refusal), counted over every server of the process since it started. Any thread. */
void dp_server_refusals(uint64_t out[DP_REFUSED_COUNT]);

typedef void (*dp_server_drained_cb)(dp_server *srv, void *ud);

/* dp_server_new: a server on loop handing requests to opts->dispatch. Returns owned; nothing
 * listens until dp_server_listen. */
dp_server *dp_server_new(uv_loop_t *loop, const dp_server_options *opts);

/* dp_server_listen: binds and listens; logs dp.listening with the bound address. Returns 0 or a
 * negative libuv/errno code with err filled. */
int dp_server_listen(dp_server *srv, nano_error *err);

/* dp_server_bound_port: the port actually bound (useful with port 0). */
int dp_server_bound_port(const dp_server *srv);

/* dp_server_drain: stop accepting, close idle keep-alive connections, let in-flight requests
 * finish with `Connection: close` and their waitUntil work settle. drained_cb runs (from a
 * later loop callback, never from inside this call) once no connection and no request
 * remain. */
void dp_server_drain(dp_server *srv, dp_server_drained_cb drained_cb, void *ud);

/* dp_server_abort_all: closes every connection now, abandoning in-flight responses. */
void dp_server_abort_all(dp_server *srv);

size_t dp_server_n_conns(const dp_server *srv);
size_t dp_server_n_requests(const dp_server *srv);     /* alive, including waitUntil work */
size_t dp_server_n_active_conns(const dp_server *srv); /* with a request in flight */

/* dp_server_set_tls_ctx: connections accepted from now on use ctx (a reference is taken; the
 * old context goes once its connections are gone): HTTPS turned on before the loop first
 * runs (no connection is accepted before), or certificates reloaded without a restart. */
void dp_server_set_tls_ctx(dp_server *srv, dp_tls_ctx *ctx);

/* dp_server_close: closes all handles; the server is freed once they are closed (run the
 * loop), and then done (may be NULL) runs with arg, never from inside this call. Connections
 * still open are aborted. */
typedef void (*dp_server_closed_cb)(void *arg);
void dp_server_close(dp_server *srv, dp_server_closed_cb done, void *arg);

#endif
