/* nng_tls.h: TLS configs for NANO's NNG links (tls+tcp:// URLs), built from PEM files named by
 * command-line flags, so that every binary checks them the same way and its messages name the
 * flag at fault. The server side: nanocp's data-plane channels (--dataplane-tls-*) and its
 * binary admin API (--admin-tls-*). The client side: nano-dp's control-plane link
 * (--control-plane-ca/-cert/-key) and nanoctl (--cacert, --cert, --key). In nano_shared_nng.
 *
 * Key material read from files is wiped from memory once NNG has taken it. */
#ifndef NANO_NNG_TLS_H
#define NANO_NNG_TLS_H

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "error.h"

/* The files of one side, and the flags that named them (for messages). A NULL file is not
 * given. */
typedef struct nano_tls_files {
    const char *cert, *cert_flag; /* PEM certificate (chain) */
    const char *key, *key_flag;   /* its PEM private key (unencrypted) */
    const char *ca, *ca_flag;     /* PEM CA certificate(s) to verify the peer with */
} nano_tls_files;

/* nano_tls_server_config: a server config with f->cert and f->key (both required), and,
 * when f->ca is given, client certificates required and verified against it. Returns 0 and
 * *out (returned owned: nng_tls_config_free), or NANO_EINVAL with err naming the flag and the
 * file ("--admin-tls-key /etc/nano/k.pem: not a PEM file (or larger than 1 MiB)"). */
int nano_tls_server_config(const nano_tls_files *f, nng_tls_config **out, nano_error *err);

/* nano_tls_client_config: a client config that verifies the server against f->ca (required)
 * under the name host (the certificate must name it), presenting f->cert/f->key when both are
 * given (one without the other is an error). Returns 0 and *out (owned), or NANO_EINVAL with
 * err naming the flag. */
int nano_tls_client_config(const nano_tls_files *f, const char *host, nng_tls_config **out,
                           nano_error *err);

/* nano_tls_url_host: the host of a tls+tcp://HOST:PORT or tcp://[V6]:PORT URL into out. Returns
 * 0, or NANO_EINVAL when url has no host:port or it does not fit. */
int nano_tls_url_host(const char *url, char *out, size_t cap);

#endif
