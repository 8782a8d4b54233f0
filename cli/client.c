/* client.c: where nanoctl connects (flags, env, config file) and the NNG REQ client. */
#include "ctl.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin_msg.h"
#include "alloc.h"
#include "buf.h"
#include "file.h"
#include "nng_link.h"
#include "nng_tls.h"

/* The first line of a token file, without its line end or surrounding blanks. */
static int read_token_file(const char *path, char **out, nano_error *err)
{
    char *text;
    size_t len;
    int rc = nano_read_file(path, 64 * 1024, &text, &len, err);
    if (rc != 0)
        return rc;
    char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, "\r\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0) {
        nano_free(text);
        return nano_error_set(err, NANO_EINVAL, "bad_token_file", "%s: no token in the file", path);
    }
    *out = nano_xstrndup(p, n);
    nano_free(text);
    return 0;
}

const char *ctl_config_default_path(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(buf, cap, "%s/nano/nanoctl.json", xdg);
    else if (home && home[0])
        snprintf(buf, cap, "%s/.config/nano/nanoctl.json", home);
    else
        return NULL;
    return buf;
}

static char *config_string(json_t *cfg, const char *key, const char *path, int *rc, nano_error *err)
{
    json_t *v = json_object_get(cfg, key);
    if (!v)
        return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0) {
        *rc = nano_error_set(err, NANO_EINVAL, "bad_config",
                             "%s: \"%s\" must be a non-empty "
                             "string",
                             path, key);
        return NULL;
    }
    return nano_xstrdup(json_string_value(v));
}

int ctl_conn_resolve(const char *flag_url, const char *flag_token, const char *flag_token_file,
                     const char *config_path, const char *env_url, const char *env_token,
                     const ctl_tls_flags *tls, const char *env_cacert, ctl_conn *out,
                     nano_error *err)
{
    char *cfg_url = NULL, *cfg_token = NULL, *cfg_token_file = NULL, *token = NULL;
    char *cfg_cacert = NULL, *cfg_cert = NULL, *cfg_key = NULL;
    ctl_tls_flags no_tls = {0};
    if (tls == NULL)
        tls = &no_tls;
    int rc = 0;
    if (config_path) {
        char *text;
        size_t len;
        if ((rc = nano_read_file(config_path, 1024 * 1024, &text, &len, err)) != 0)
            return rc;
        json_error_t jerr;
        json_t *cfg = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        nano_free(text);
        if (!json_is_object(cfg)) {
            if (cfg)
                rc = nano_error_set(err, NANO_EINVAL, "bad_config", "%s: expected a JSON object",
                                    config_path);
            else
                rc = nano_error_set(err, NANO_ESYNTAX, "bad_config", "%s:%d:%d: %s", config_path,
                                    jerr.line, jerr.column, jerr.text);
            json_decref(cfg);
            return rc;
        }
        const char *key;
        json_t *val;
        json_object_foreach(cfg, key, val) {
            static const char *const known[] = {"cp",   "token", "token_file", "cacert",
                                                "cert", "key",   NULL};
            bool is_known = false;
            for (size_t k = 0; known[k] != NULL && !is_known; k++)
                is_known = strcmp(key, known[k]) == 0;
            if (!is_known) {
                rc = nano_error_set(err, NANO_EINVAL, "bad_config",
                                    "%s: unknown key \"%s\" (known: cp, token, token_file, "
                                    "cacert, cert, key)",
                                    config_path, key);
                break;
            }
        }
        if (rc == 0)
            cfg_url = config_string(cfg, "cp", config_path, &rc, err);
        if (rc == 0)
            cfg_token = config_string(cfg, "token", config_path, &rc, err);
        if (rc == 0)
            cfg_token_file = config_string(cfg, "token_file", config_path, &rc, err);
        if (rc == 0)
            cfg_cacert = config_string(cfg, "cacert", config_path, &rc, err);
        if (rc == 0)
            cfg_cert = config_string(cfg, "cert", config_path, &rc, err);
        if (rc == 0)
            cfg_key = config_string(cfg, "key", config_path, &rc, err);
        json_decref(cfg);
        if (rc != 0)
            goto done;
    }
    if (flag_token && flag_token[0])
        token = nano_xstrdup(flag_token);
    else if (flag_token_file)
        rc = read_token_file(flag_token_file, &token, err);
    else if (env_token && env_token[0])
        token = nano_xstrdup(env_token);
    else if (cfg_token)
        token = nano_xstrdup(cfg_token);
    else if (cfg_token_file)
        rc = read_token_file(cfg_token_file, &token, err);
    if (rc != 0)
        goto done;
    const char *url = flag_url && flag_url[0] ? flag_url
                      : env_url && env_url[0] ? env_url
                      : cfg_url               ? cfg_url
                                              : CTL_DEFAULT_URL;
    out->url = nano_xstrdup(url);
    out->token = token;
    token = NULL;
    const char *cacert = tls->cacert                   ? tls->cacert
                         : env_cacert && env_cacert[0] ? env_cacert
                                                       : cfg_cacert;
    /* A client certificate and its key come as a pair, from one place. */
    const char *cert = tls->cert || tls->key ? tls->cert : cfg_cert;
    const char *key = tls->cert || tls->key ? tls->key : cfg_key;
    out->cacert = cacert ? nano_xstrdup(cacert) : NULL;
    out->cert = cert ? nano_xstrdup(cert) : NULL;
    out->key = key ? nano_xstrdup(key) : NULL;
done:
    nano_free(cfg_url);
    nano_free(cfg_token);
    nano_free(cfg_token_file);
    nano_free(cfg_cacert);
    nano_free(cfg_cert);
    nano_free(cfg_key);
    nano_free(token);
    return rc;
}

void ctl_conn_fini(ctl_conn *c)
{
    nano_free(c->url);
    nano_free(c->token);
    nano_free(c->cacert);
    nano_free(c->cert);
    nano_free(c->key);
    c->url = c->token = c->cacert = c->cert = c->key = NULL;
}

/* --- the client --------------------------------------------------------------------------- */

/* Set from NNG's thread once the REQ socket has a connection (NNG_PIPE_EV_ADD_POST). */
typedef struct pipe_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool is_up;
} pipe_wait;

struct ctl_client {
    nng_socket sock;
    nng_tls_config *tls; /* tls+tcp://; freed after the socket closes */
    char *url;
    char *token;
    pipe_wait pw;
};

static void on_pipe_added(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    (void)ev;
    pipe_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->is_up = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Whether the socket got a connection within ms. */
static bool wait_pipe(pipe_wait *w, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->is_up && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0)
        ;
    bool up = w->is_up;
    pthread_mutex_unlock(&w->mu);
    return up;
}

/* tcp_reachable: NNG's synchronous dial has no timeout of its own (an unroutable host waits
 * for the kernel's, minutes), and its asynchronous dial retries a refused connection forever
 * without reporting it. So a tcp:// URL is first probed with a non-blocking connect bounded
 * by the timeout, which also yields the OS's reason ("Connection refused"). */
static int tcp_reachable(const char *url, int timeout_ms, nano_error *err)
{
    const char *hp = strstr(url, "://");
    hp = hp ? hp + 3 : url;
    char host[256];
    const char *port;
    if (hp[0] == '[') {
        const char *end = strchr(hp, ']');
        if (!end || end[1] != ':' || (size_t)(end - hp - 1) >= sizeof host)
            return nano_error_set(err, NANO_EINVAL, "bad_url", "%s: expected tcp://HOST:PORT", url);
        memcpy(host, hp + 1, (size_t)(end - hp - 1));
        host[end - hp - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(hp, ':');
        if (!colon || (size_t)(colon - hp) >= sizeof host || colon == hp)
            return nano_error_set(err, NANO_EINVAL, "bad_url", "%s: expected tcp://HOST:PORT", url);
        memcpy(host, hp, (size_t)(colon - hp));
        host[colon - hp] = '\0';
        port = colon + 1;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return nano_error_set(err, NANO_EIO, "connect_failed", "cannot connect to %s: %s", url,
                              gai_strerror(g));
    int rc = NANO_EIO;
    const char *why = "no address";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int c = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (c != 0 && errno == EINPROGRESS) {
            struct pollfd pfd = {fd, POLLOUT, 0};
            int p = poll(&pfd, 1, timeout_ms);
            if (p == 0) {
                errno = ETIMEDOUT;
            } else if (p > 0) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
                errno = soerr;
                c = soerr == 0 ? 0 : -1;
            }
        }
        if (c == 0)
            rc = 0;
        else
            why = strerror(errno);
        close(fd);
        if (rc == 0)
            break;
    }
    freeaddrinfo(res);
    if (rc != 0)
        return nano_error_set(err, rc, "connect_failed", "cannot connect to %s: %s", url, why);
    return 0;
}

/* How long a tcp:// dial may take before nanoctl probes the address itself for the reason
 * (refused, unreachable): on loopback or a LAN the connection is up long before. */
#define CTL_PROBE_AFTER_MS 50

/* The TLS config for a tls+tcp:// URL (NULL otherwise; TLS files for another URL are an
 * error, not ignored). */
static int client_tls(const ctl_conn *c, bool is_tls, nng_tls_config **out, nano_error *err)
{
    *out = NULL;
    if (!is_tls) {
        if (c->cacert != NULL || c->cert != NULL || c->key != NULL)
            return nano_error_set(err, NANO_EINVAL, "bad_url",
                                  "--cacert, --cert and --key are for a tls+tcp:// URL, not %s",
                                  c->url);
        return 0;
    }
    char host[256];
    if (nano_tls_url_host(c->url, host, sizeof host) != 0)
        return nano_error_set(err, NANO_EINVAL, "bad_url", "%s: expected tls+tcp://HOST:PORT",
                              c->url);
    nano_tls_files f = {c->cert, "--cert", c->key, "--key", c->cacert, "--cacert"};
    return nano_tls_client_config(&f, host, out, err);
}

int ctl_conn_check_tls(const ctl_conn *c, nano_error *err)
{
    nng_tls_config *tls = NULL;
    int rc = client_tls(c, strncmp(c->url, "tls+tcp://", 10) == 0, &tls, err);
    if (tls != NULL)
        nng_tls_config_free(tls);
    return rc;
}

int ctl_conn_split_urls(const ctl_conn *c, char **out, size_t max, nano_error *err)
{
    size_t n = 0;
    int rc = 0;
    for (const char *p = c->url;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || n == max) {
            rc = nano_error_set(err, NANO_EINVAL, "bad_url",
                                "%.200s: 1 to %zu comma-separated addresses, none empty", c->url,
                                max);
            break;
        }
        out[n] = nano_xstrndup(p, len);
        ctl_conn one = *c;
        one.url = out[n++];
        if ((rc = ctl_conn_check_tls(&one, err)) != 0)
            break;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (rc == 0)
        return (int)n;
    for (size_t i = 0; i < n; i++)
        nano_free(out[i]);
    return rc;
}

int ctl_client_open(const char *url, const char *token, int timeout_ms, ctl_client **out,
                    nano_error *err)
{
    ctl_conn c = {.url = (char *)url, .token = (char *)token};
    return ctl_client_open_conn(&c, timeout_ms, out, err);
}

int ctl_client_open_conn(const ctl_conn *c, int timeout_ms, ctl_client **out, nano_error *err)
{
    const char *url = c->url, *token = c->token;
    bool is_tls = strncmp(url, "tls+tcp://", 10) == 0;
    bool is_tcp = is_tls || strncmp(url, "tcp://", 6) == 0 || strncmp(url, "tcp4://", 7) == 0 ||
                  strncmp(url, "tcp6://", 7) == 0;
    if (!is_tcp && strncmp(url, "ipc://", 6) != 0)
        return nano_error_set(err, NANO_EINVAL, "bad_url",
                              "%s: unsupported URL (use tcp://HOST:PORT, tls+tcp://HOST:PORT or "
                              "ipc://PATH)",
                              url);
    nng_tls_config *tls = NULL;
    int trc = client_tls(c, is_tls, &tls, err);
    if (trc != 0)
        return trc;
    ctl_client *cl = nano_xcalloc(1, sizeof *cl);
    cl->tls = tls;
    int rc = nano_nng_req_open(&cl->sock, timeout_ms, NANO_ADMIN_MAX_BYTES, err);
    if (rc != 0) {
        if (tls != NULL)
            nng_tls_config_free(tls);
        nano_free(cl);
        return rc;
    }
    pthread_mutex_init(&cl->pw.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->pw.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (is_tcp) {
        /* NNG's blocking dial has no timeout of its own (an unroutable host waits for the
         * kernel's, minutes) and its background dial retries a refused connection forever
         * without a word. So: dial in the background and, only if no connection is up
         * shortly, probe the address with a bounded connect for the OS's reason. (Probing
         * every time cost ~100 ms per command: nanocp's NNG listener is slow to take the next
         * connection after one that closes before its handshake.) */
        nng_pipe_notify(cl->sock, NNG_PIPE_EV_ADD_POST, on_pipe_added, &cl->pw);
        nano_nng_dial_options bg = {.tls = tls, .is_background = true};
        rc = nano_nng_dial(cl->sock, url, &bg, err);
        if (rc == 0 && !wait_pipe(&cl->pw, CTL_PROBE_AFTER_MS)) {
            rc = tcp_reachable(url, timeout_ms, err);
            if (rc == 0 && !wait_pipe(&cl->pw, timeout_ms))
                rc = nano_error_set(
                    err, NANO_EIO, "connect_failed",
                    is_tls ? "cannot connect to %s: no TLS and NNG handshake within %d ms (is "
                             "--cacert the CA that signed nanocp's certificate, does that name "
                             "the URL's host, and does nanocp ask for a client certificate "
                             "(--cert/--key)?)"
                           : "cannot connect to %s: no NNG handshake within %d ms",
                    url, timeout_ms);
        }
    } else {
        rc = nano_nng_dial(cl->sock, url, NULL, err);
    }
    if (rc != 0) {
        nng_pipe_notify(cl->sock, NNG_PIPE_EV_ADD_POST, NULL, NULL);
        nng_close(cl->sock);
        if (tls != NULL)
            nng_tls_config_free(tls);
        pthread_cond_destroy(&cl->pw.cv);
        pthread_mutex_destroy(&cl->pw.mu);
        nano_free(cl);
        return rc;
    }
    cl->url = nano_xstrdup(url);
    cl->token = token ? nano_xstrdup(token) : NULL;
    *out = cl;
    return 0;
}

int ctl_client_call(void *client, const char *op, json_t *args, json_t **result,
                    ctl_remote_error *rerr)
{
    ctl_client *cl = client;
    nano_buf req = NANO_BUF_INIT;
    nano_error err = {0};
    memset(rerr, 0, sizeof *rerr);
    int rc = nano_admin_request_encode(op, cl->token, args, &req, &err);
    if (rc != 0) {
        snprintf(rerr->message, sizeof rerr->message, "%s", err.message);
        nano_buf_fini(&req);
        return rc;
    }
    nng_msg *m = NULL;
    rc = nano_nng_req_call(cl->sock, cl->url, req.data, req.len, &m, &err);
    nano_buf_fini(&req);
    if (rc != 0) {
        snprintf(rerr->message, sizeof rerr->message, "%s", err.message);
        return NANO_EIO;
    }
    nano_admin_reply rep;
    rc = nano_admin_reply_decode(nng_msg_body(m), nng_msg_len(m), &rep, &err);
    nng_msg_free(m);
    if (rc != 0) {
        snprintf(rerr->message, sizeof rerr->message, "%.200s: %.300s", cl->url, err.message);
        return rc;
    }
    if (!rep.ok) {
        snprintf(rerr->code, sizeof rerr->code, "%s", rep.code);
        snprintf(rerr->message, sizeof rerr->message, "%s", rep.message);
        snprintf(rerr->field, sizeof rerr->field, "%s", rep.field);
        nano_admin_reply_fini(&rep);
        return CTL_EREMOTE;
    }
    *result = rep.result;
    rep.result = NULL;
    return 0;
}

void ctl_client_close(ctl_client *cl)
{
    if (!cl)
        return;
    nng_pipe_notify(cl->sock, NNG_PIPE_EV_ADD_POST, NULL, NULL);
    nng_close(cl->sock); /* no pipe callback runs after it */
    if (cl->tls != NULL)
        nng_tls_config_free(cl->tls);
    pthread_cond_destroy(&cl->pw.cv);
    pthread_mutex_destroy(&cl->pw.mu);
    nano_free(cl->url);
    nano_free(cl->token);
    nano_free(cl);
}
