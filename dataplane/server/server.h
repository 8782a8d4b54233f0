/* server.h: the HTTP/1.1 front door of nano-dp: a listener on one libuv loop, its connections,
 * and graceful drain (DESIGN.md §8). Requests go to one app's runtime isolate (routing among
 * many apps arrives with the config model).
 * All functions: loop thread only. */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "error.h"
#include "http1.h"

struct rt_isolate;
typedef struct dp_server dp_server;

typedef struct dp_server_options {
    const char *host;         /* listen address, e.g. "127.0.0.1" or "::1" */
    int port;                 /* 0 = ephemeral */
    dp_http1_limits limits;   /* request head and body sizes */
    uint64_t head_timeout_ms; /* a request head must arrive within this */
    uint64_t idle_timeout_ms; /* keep-alive connections idle this long are closed */
} dp_server_options;

typedef void (*dp_server_drained_cb)(dp_server *srv, void *ud);

/* dp_server_new: a server on loop that runs requests on app (borrowed; must outlive the
 * server). Returns owned; nothing listens until dp_server_listen. */
dp_server *dp_server_new(uv_loop_t *loop, const dp_server_options *opts, struct rt_isolate *app);

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
size_t dp_server_n_requests(const dp_server *srv);  /* alive, including waitUntil work */
size_t dp_server_n_active_conns(const dp_server *srv); /* with a request in flight */

/* dp_server_close: closes all handles; the server is freed once they are closed (run the
 * loop). Connections still open are aborted. */
void dp_server_close(dp_server *srv);

#endif
