/* nng_link.h: NANO's links over NNG: dialing and listening (tcp://, ipc://, tls+tcp:// with a
 * TLS config), and the client side of a request/reply link: a REQ socket whose waits are
 * bounded, and one exchange on it. nanoctl (the admin API), nano-dp's control-plane client and
 * fleetsim call with it; nanocp listens with it (nng_rep.h, and its PUB socket). What the
 * bytes mean (admin_msg.h, msg.h) stays with them. In nano_shared_nng, the part of shared/
 * that links NNG.
 *
 * Blocking: each call waits, at most the socket's timeouts (a blocking dial: the OS's connect
 * timeout). NNG sockets are thread-safe: nng_close from another thread ends a wait with
 * NNG_ECLOSED. A REQ socket carries one exchange at a time. */
#ifndef NANO_NNG_LINK_H
#define NANO_NNG_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"

typedef struct nano_nng_dial_options {
    nng_tls_config *tls;  /* borrowed, for tls+tcp:// URLs (NULL: none); must outlive the
                             socket */
    int reconnect_min_ms; /* backoff between reconnects, doubling up to the max (0: NNG's) */
    int reconnect_max_ms;
    bool is_background; /* return at once and keep dialing in the background; else wait
                             for the first connection, so a refused one fails here */
} nano_nng_dial_options;

/* nano_nng_dial: dials url from s (any protocol: REQ, SUB). o may be NULL: no TLS, NNG's
 * backoff, blocking. Returns 0, or NANO_EIO with err filled (id "connect_failed", "cannot
 * connect to URL: why"). */
int nano_nng_dial(nng_socket s, const char *url, const nano_nng_dial_options *o, nano_error *err);

/* nano_nng_listen: starts a listener of s on url ("tcp://127.0.0.1:0" picks a port). tls
 * (borrowed, may be NULL) is used for a tls+tcp:// URL and must outlive the socket. *port
 * (may be NULL) gets the bound TCP port, 0 for other transports. Returns 0, or NANO_EIO with
 * err filled (id "listen_failed", "URL: why", e.g. "tcp://127.0.0.1:7071: Address in use"). */
int nano_nng_listen(nng_socket s, const char *url, nng_tls_config *tls, int *port, nano_error *err);

/* nano_nng_req_open: a REQ socket (*out, returned owned: nng_close) whose sends and receives
 * each wait at most timeout_ms, which never resends a request (a resent admin change could
 * apply twice: a lost reply is a timeout instead), and which drops replies larger than
 * max_reply_bytes (the exchange then times out). Returns 0, or NANO_EIO with err filled
 * ("cannot open a socket: why"). */
int nano_nng_req_open(nng_socket *out, int timeout_ms, size_t max_reply_bytes, nano_error *err);

/* nano_nng_req_call: one exchange on the REQ socket s: sends req[0..len) (borrowed; copied)
 * and waits for the reply. url names the peer in messages. Returns 0 and *reply (returned
 * owned: nng_msg_free; its bytes are nng_msg_body and nng_msg_len), or, with err filled (id
 * "unreachable") and *reply untouched: -ETIMEDOUT when no reply came within the socket's
 * timeout ("no reply from URL within N ms"), NANO_EIO for any other failure ("URL: why"). */
int nano_nng_req_call(nng_socket s, const char *url, const void *req, size_t len, nng_msg **reply,
                      nano_error *err);

#endif
