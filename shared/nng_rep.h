/* nng_rep.h: an NNG REP server whose requests are answered on a libuv loop: nanocp's admin RPC
 * (controlplane/api_rpc.c) and its data-plane REP socket (controlplane/distrib.c). It owns the
 * socket, its contexts (each receives a request, waits for the loop, sends the reply, repeats)
 * and the uv_async that wakes the loop; the caller owns what the bytes mean. In
 * nano_shared_nng_uv, the part of shared/ that links NNG and libuv.
 *
 * Threads: NNG runs its aio callbacks on its own threads; they only move each received message
 * to a locked queue and wake the loop (uv_async_send). The handler runs on the loop thread,
 * which is the only one that touches the caller's state. Every function here must be called
 * on the loop's thread. */
#ifndef NANO_NNG_REP_H
#define NANO_NNG_REP_H

#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <uv.h>

#include "buf.h"
#include "error.h"

#define NANO_NNG_REP_MAX_CONTEXTS 64

typedef struct nano_nng_rep nano_nng_rep;

/* nano_nng_rep_handle_cb: answers one request: data[0..len) (borrowed until it returns) ->
 * the reply's bytes appended to reply. Every request gets a reply (a malformed one an error
 * reply: the client would otherwise wait out its timeout). Runs on the loop thread. */
typedef void (*nano_nng_rep_handle_cb)(void *ud, const void *data, size_t len, nano_buf *reply);

/* nano_nng_rep_closed_cb: nano_nng_rep_close finished: the handle is closed, the memory freed. */
typedef void (*nano_nng_rep_closed_cb)(void *arg);

typedef struct nano_nng_rep_options {
    const char *url;                /* "tcp://127.0.0.1:7071" (port 0 picks one), "ipc://PATH",
                                    "tls+tcp://HOST:PORT" (needs tls) */
    nng_tls_config *tls;            /* borrowed, for a tls+tcp:// URL; must outlive the server */
    size_t n_contexts;              /* requests received at once, 1 to NANO_NNG_REP_MAX_CONTEXTS;
                                    more wait in NNG */
    size_t max_request_bytes;       /* larger requests are dropped by NNG before they reach us */
    const char *reply_failed_event; /* the log event (warn) when a reply cannot be made into
                                       a message: "cp.rpc_reply_failed" (static; NULL:
                                       "nng.reply_failed") */
    nano_nng_rep_handle_cb handle;
    void *ud; /* borrowed, handle's first argument; must outlive the server */
} nano_nng_rep_options;

/* nano_nng_rep_start: listens on o->url with a REP socket and starts receiving. Returns 0 and
 * *out (owned; release with nano_nng_rep_close), or NANO_EIO with err filled (id
 * "listen_failed", "URL: why", e.g. "tcp://127.0.0.1:7071: Address in use") after releasing
 * everything (its handle closes on the loop's next turn). No handler runs before it returns.
 * o is read during the call only. */
int nano_nng_rep_start(uv_loop_t *loop, const nano_nng_rep_options *o, nano_nng_rep **out,
                       nano_error *err);

/* nano_nng_rep_port: the bound TCP port (useful with port 0), or 0 for other transports. */
int nano_nng_rep_port(const nano_nng_rep *r);

/* nano_nng_rep_close: closes the socket (requests not answered yet get no reply: their clients
 * time out) and waits for NNG's callbacks to finish, which is brief: after it returns, the
 * handler never runs again. Asynchronous like uv_close: done (may be NULL) runs with arg from
 * the loop once the async handle is closed and r is freed; never from inside this call.
 * NULL-safe; a second call does nothing. */
void nano_nng_rep_close(nano_nng_rep *r, nano_nng_rep_closed_cb done, void *arg);

#endif
