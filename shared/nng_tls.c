/* nng_tls.c: TLS configs from PEM files (contract in nng_tls.h). */
#include "nng_tls.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "file.h"

#define PEM_MAX_BYTES (1u * 1024 * 1024)

/* A PEM file, NUL-terminated (returned owned). */
static int read_pem(const char *flag, const char *path, char **out, nano_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    nano_error e = {0};
    int rc = nano_read_file(path, PEM_MAX_BYTES - 1, &buf, &len, &e);
    if (rc != 0 && rc != NANO_ETOOBIG)
        return nano_error_set(err, NANO_EINVAL, "tls_config", "%s %s", flag, e.message);
    if (rc != 0 || len == 0 || strstr(buf, "-----BEGIN ") == NULL) {
        nano_free(buf);
        return nano_error_set(err, NANO_EINVAL, "tls_config",
                              "%s %s: not a PEM file (or larger than 1 MiB)", flag, path);
    }
    *out = buf;
    return 0;
}

static void wipe_free(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    nano_free(s);
}

/* f's own certificate and key into cfg (both files given). */
static int own_cert(nng_tls_config *cfg, const nano_tls_files *f, nano_error *err)
{
    char *cert = NULL, *key = NULL;
    int rc = read_pem(f->cert_flag, f->cert, &cert, err);
    if (rc == 0)
        rc = read_pem(f->key_flag, f->key, &key, err);
    int rv = rc == 0 ? nng_tls_config_own_cert(cfg, cert, key, NULL) : 0;
    if (rv != 0)
        rc = nano_error_set(err, NANO_EINVAL, "tls_config", "%s %s / %s %s: %s", f->cert_flag,
                            f->cert, f->key_flag, f->key, nng_strerror(rv));
    nano_free(cert);
    wipe_free(key);
    return rc;
}

/* f's CA into cfg, to verify the peer with. */
static int load_ca(nng_tls_config *cfg, const nano_tls_files *f, nano_error *err)
{
    char *ca = NULL;
    int rc = read_pem(f->ca_flag, f->ca, &ca, err);
    int rv = rc == 0 ? nng_tls_config_ca_chain(cfg, ca, NULL) : 0;
    if (rv != 0)
        rc = nano_error_set(err, NANO_EINVAL, "tls_config", "%s %s: %s", f->ca_flag, f->ca,
                            nng_strerror(rv));
    nano_free(ca);
    return rc;
}

int nano_tls_server_config(const nano_tls_files *f, nng_tls_config **out, nano_error *err)
{
    if (f->cert == NULL || f->key == NULL)
        return nano_error_set(err, NANO_EINVAL, "tls_config", "a tls+tcp:// URL needs %s and %s",
                              f->cert_flag, f->key_flag);
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "tls_config", "TLS config: %s", nng_strerror(rv));
    int rc = own_cert(cfg, f, err);
    if (rc == 0 && f->ca != NULL)
        rc = load_ca(cfg, f, err);
    /* With a CA, a client must present a certificate it signed; without, none is asked. */
    if (rc == 0 &&
        (rv = nng_tls_config_auth_mode(cfg, f->ca != NULL ? NNG_TLS_AUTH_MODE_REQUIRED
                                                          : NNG_TLS_AUTH_MODE_NONE)) != 0)
        rc = nano_error_set(err, NANO_EIO, "tls_config", "TLS auth mode: %s", nng_strerror(rv));
    if (rc != 0) {
        nng_tls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int nano_tls_client_config(const nano_tls_files *f, const char *host, nng_tls_config **out,
                           nano_error *err)
{
    if (f->ca == NULL)
        return nano_error_set(err, NANO_EINVAL, "tls_config",
                              "a tls+tcp:// URL needs %s FILE (the CA that signed the server's "
                              "certificate)",
                              f->ca_flag);
    if ((f->cert == NULL) != (f->key == NULL))
        return nano_error_set(err, NANO_EINVAL, "tls_config", "%s and %s go together", f->cert_flag,
                              f->key_flag);
    nng_tls_config *cfg = NULL;
    int rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "tls_config", "TLS config: %s", nng_strerror(rv));
    int rc = 0;
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
        (rv = nng_tls_config_server_name(cfg, host)) != 0)
        rc = nano_error_set(err, NANO_EIO, "tls_config", "TLS config: %s", nng_strerror(rv));
    if (rc == 0)
        rc = load_ca(cfg, f, err);
    if (rc == 0 && f->cert != NULL)
        rc = own_cert(cfg, f, err);
    if (rc != 0) {
        nng_tls_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int nano_tls_url_host(const char *url, char *out, size_t cap)
{
    const char *h = strstr(url, "://");
    if (h == NULL)
        return NANO_EINVAL;
    h += 3;
    const char *end;
    if (*h == '[') { /* [v6]:port */
        end = strchr(h, ']');
        if (end == NULL || end[1] != ':')
            return NANO_EINVAL;
        h++;
    } else {
        end = strrchr(h, ':');
        if (end == NULL)
            return NANO_EINVAL;
    }
    size_t n = (size_t)(end - h);
    if (n == 0 || n >= cap)
        return NANO_EINVAL;
    memcpy(out, h, n);
    out[n] = '\0';
    return 0;
}
