/* tls.c: TLS contexts and the per-connection layer (contract in tls.h), on OpenSSL 3 with a
 * pair of memory BIOs per connection: libuv moves the ciphertext, OpenSSL never touches the
 * socket. */
#include "tls.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "alloc.h"

struct dp_tls {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer, written by dp_tls_feed */
    BIO *wbio; /* ciphertext for the peer, drained by dp_tls_seal */
    bool is_notified;
};

/* OpenSSL's reason for the last failure (its error queue), emptied. */
static void ssl_reason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(out, cap, "unknown TLS error");
    else
        ERR_error_string_n(e, out, cap);
    ERR_clear_error();
}

int dp_tls_ctx_new(const char *cert_file, const char *key_file, const char *ca_file,
                   const char *flag, dp_tls_ctx **out, nano_error *err)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_reason(why, sizeof why);
        return nano_error_set(err, NANO_EIO, "tls_config", "TLS context: %s", why);
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation lets a client make the server redo handshakes at will: refused. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    const char *step = NULL, *file = NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
        step = "-cert", file = cert_file;
    else if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1)
        step = "-key", file = key_file;
    else if (SSL_CTX_check_private_key(ctx) != 1)
        step = "-key", file = key_file;
    else if (ca_file != NULL) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names == NULL || SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            step = "-ca", file = ca_file;
            sk_X509_NAME_pop_free(names, X509_NAME_free);
        } else {
            SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        }
    }
    if (step != NULL) {
        ssl_reason(why, sizeof why);
        SSL_CTX_free(ctx);
        return nano_error_set(err, NANO_EINVAL, "tls_config", "%s%s %s: %s", flag, step, file, why);
    }
    *out = ctx;
    return 0;
}

dp_tls_ctx *dp_tls_ctx_ref(dp_tls_ctx *ctx)
{
    if (ctx != NULL)
        SSL_CTX_up_ref(ctx);
    return ctx;
}

void dp_tls_ctx_unref(dp_tls_ctx *ctx)
{
    SSL_CTX_free(ctx); /* NULL-safe; frees at the last reference */
}

dp_tls *dp_tls_new(dp_tls_ctx *ctx)
{
    dp_tls *t = nano_xcalloc(1, sizeof *t);
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        /* Only on out-of-memory, which the nano_x* allocators treat as fatal too. */
        fprintf(stderr, "nano: out of memory (TLS connection state)\n");
        abort();
    }
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns them from here */
    SSL_set_accept_state(t->ssl);
    return t;
}

void dp_tls_free(dp_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    nano_free(t);
}

dp_tls_status dp_tls_feed(dp_tls *t, const char *data, size_t len, char *scratch, size_t cap,
                          void (*deliver)(void *ud, const char *text, size_t n, bool *stop),
                          void *ud, char *reason, size_t reason_cap)
{
    while (len > 0) {
        int w = BIO_write(t->rbio, data, len > INT_MAX ? INT_MAX : (int)len);
        if (w <= 0) {
            snprintf(reason, reason_cap, "cannot buffer TLS input");
            return DP_TLS_ERROR;
        }
        data += w;
        len -= (size_t)w;
    }
    for (;;) {
        int n = SSL_read(t->ssl, scratch, cap > INT_MAX ? INT_MAX : (int)cap);
        if (n > 0) {
            bool stop = false;
            deliver(ud, scratch, (size_t)n, &stop);
            if (stop)
                return DP_TLS_OK;
            continue;
        }
        switch (SSL_get_error(t->ssl, n)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE: /* a memory BIO always takes output */ return DP_TLS_OK;
        case SSL_ERROR_ZERO_RETURN: return DP_TLS_CLOSED;
        default: ssl_reason(reason, reason_cap); return DP_TLS_ERROR;
        }
    }
}

bool dp_tls_wants_write(const dp_tls *t)
{
    return BIO_ctrl_pending(t->wbio) > 0;
}

int dp_tls_seal(dp_tls *t, nano_buf *buf)
{
    if (buf->len > 0) {
        if (!SSL_is_init_finished(t->ssl))
            return -1; /* no response goes out before the handshake is done */
        for (size_t off = 0; off < buf->len;) {
            size_t left = buf->len - off;
            int w = SSL_write(t->ssl, buf->data + off, left > INT_MAX ? INT_MAX : (int)left);
            if (w <= 0) {
                ERR_clear_error();
                return -1;
            }
            off += (size_t)w;
        }
    }
    nano_buf wire = NANO_BUF_INIT;
    size_t pending = BIO_ctrl_pending(t->wbio);
    if (pending > 0) {
        nano_buf_reserve(&wire, pending);
        int r = BIO_read(t->wbio, wire.data, pending > INT_MAX ? INT_MAX : (int)pending);
        if (r <= 0) {
            nano_buf_fini(&wire);
            return -1;
        }
        wire.len = (size_t)r;
    }
    nano_buf_fini(buf);
    *buf = wire;
    return 0;
}

void dp_tls_close_notify(dp_tls *t)
{
    if (t->is_notified || !SSL_is_init_finished(t->ssl))
        return;
    t->is_notified = true;
    if (SSL_shutdown(t->ssl) < 0)
        ERR_clear_error();
}

bool dp_tls_is_established(const dp_tls *t)
{
    return SSL_is_init_finished(t->ssl);
}
