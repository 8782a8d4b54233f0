/* api_rpc.h: nanocp's binary admin API (docs/admin-api.md): msgpack envelopes
 * (shared/admin_msg.h) over an NNG REP socket, the transport nanoctl uses.
 *
 * Each request {v, op, token, args} is decoded (at most NANO_ADMIN_MAX_BYTES), its token
 * checked with the token-check callback, and op called through the cp_call_cb with args; the
 * reply is {v, ok: true, result} or {v, ok: false, error: {code, message, field}}. Malformed
 * requests, unknown versions and missing tokens get error replies, never silence.
 *
 * Threads: NNG runs its aio callbacks on its own threads; they only move each received message
 * to a locked queue and wake the loop (uv_async_send; shared/nng_rep.h). Decoding, the token
 * check, the op and the reply's encoding all run on the loop thread, which is the only one that
 * touches the service. Every function here must be called on the loop's thread. */
#ifndef CP_API_RPC_H
#define CP_API_RPC_H

#include <uv.h>

#include "api.h"
#include "nng_tls.h"

#define CP_RPC_CONTEXTS 8 /* requests received concurrently; more wait in NNG */

typedef struct cp_rpc cp_rpc;

/* cp_rpc_start: listens on url ("tcp://127.0.0.1:7071"; "tcp://127.0.0.1:0" picks a port;
 * "tls+tcp://HOST:PORT" with tls: nanocp's --admin-tls-cert/-key, and -ca to require client
 * certificates; tls may be NULL for other URLs) with a REP socket and serves the admin ops
 * through call and check with ud (borrowed; must outlive the server). Returns 0 and *out
 * (owned; release with cp_rpc_close), or a negative code with err filled (e.g.
 * "tcp://127.0.0.1:7071: Address in use", "--admin-tls-key F: not a PEM file ..."). No
 * callback runs before it returns. Loop thread. */
int cp_rpc_start(uv_loop_t *loop, const char *url, const nano_tls_files *tls, cp_call_cb call,
                 cp_token_check_cb check, void *ud, cp_rpc **out, nano_error *err);

/* cp_rpc_port: the bound TCP port (useful with port 0), or 0 for non-TCP transports. */
int cp_rpc_port(const cp_rpc *rpc);

/* cp_rpc_close: closes the socket (requests not yet answered get no reply; their clients time
 * out) and waits for NNG's callbacks to finish, which is brief. Asynchronous like uv_close:
 * done (may be NULL) runs with arg from the loop once the async handle is closed and rpc is
 * freed; never from inside this call. NULL-safe. Loop thread. */
void cp_rpc_close(cp_rpc *rpc, cp_api_closed_cb done, void *arg);

#endif
