/* tls.h: TLS for the HTTP/1.1 server (OpenSSL 3 with memory BIOs over libuv): contexts made
 * from PEM files, and the per-connection layer conn.c runs its bytes through when the server
 * has a context (dp_server_options.tls_ctx). nanocp's HTTPS admin API uses it
 * (docs/nanocp.md#tls-for-the-admin-api); nano-dp serves plain HTTP (TLS is terminated in
 * front of it).
 *
 * The connection layer: ciphertext read from the socket goes in with dp_tls_feed, which hands
 * out the plaintext; response bytes are turned into ciphertext with dp_tls_seal just before
 * they are written, which also carries the handshake's own records. Loop thread only (a
 * context may be shared by several loops' servers: OpenSSL contexts are thread-safe). */
#ifndef DP_TLS_H
#define DP_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"

typedef struct ssl_ctx_st dp_tls_ctx; /* OpenSSL's SSL_CTX */
typedef struct dp_tls dp_tls;

/* dp_tls_ctx_new: a server context (TLS 1.2 and 1.3) with the certificate chain cert_file and
 * its key key_file (PEM; the key unencrypted), and, when ca_file is not NULL, client
 * certificates required and verified against it. flag names the option the files came from,
 * for messages ("--admin-tls"). Returns 0 and *out (one reference: dp_tls_ctx_unref), or
 * NANO_EINVAL with err naming the file and OpenSSL's reason. */
int dp_tls_ctx_new(const char *cert_file, const char *key_file, const char *ca_file,
                   const char *flag, dp_tls_ctx **out, nano_error *err);
dp_tls_ctx *dp_tls_ctx_ref(dp_tls_ctx *ctx); /* NULL-safe; returns ctx */
void dp_tls_ctx_unref(dp_tls_ctx *ctx);      /* NULL-safe */

/* dp_tls_new: a connection's TLS state (server side) under ctx (referenced). */
dp_tls *dp_tls_new(dp_tls_ctx *ctx);
void dp_tls_free(dp_tls *t); /* NULL-safe */

/* What dp_tls_feed found. */
typedef enum dp_tls_status {
    DP_TLS_OK,     /* all input taken; any plaintext delivered */
    DP_TLS_CLOSED, /* the peer sent close_notify: no more input will come */
    DP_TLS_ERROR,  /* a handshake or record failure: close the connection (reason filled) */
} dp_tls_status;

/* dp_tls_feed: takes data[0..len) from the socket and calls deliver(ud, text, n) for each
 * piece of plaintext it decrypts (scratch, cap bytes, is where pieces are written; deliver
 * may set *stop to end the loop, e.g. the connection closed). reason (at least 128 bytes)
 * says why on DP_TLS_ERROR. After it, records the handshake produced may wait to be sent:
 * dp_tls_wants_write. */
dp_tls_status dp_tls_feed(dp_tls *t, const char *data, size_t len, char *scratch, size_t cap,
                          void (*deliver)(void *ud, const char *text, size_t n, bool *stop),
                          void *ud, char *reason, size_t reason_cap);

/* dp_tls_wants_write: records are waiting to be sent (handshake, close_notify). */
bool dp_tls_wants_write(const dp_tls *t);

/* dp_tls_seal: replaces the plaintext in *buf with what goes on the wire: the records waiting
 * (first), then the plaintext encrypted. Returns 0, or -1 when it cannot be encrypted (the
 * handshake has not completed, or failed): close the connection. */
int dp_tls_seal(dp_tls *t, nano_buf *buf);

/* dp_tls_close_notify: queues a close_notify alert (once); send it with dp_tls_seal. */
void dp_tls_close_notify(dp_tls *t);

/* dp_tls_is_established: the handshake has completed. */
bool dp_tls_is_established(const dp_tls *t);

#endif
