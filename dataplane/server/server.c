#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "server_int.h"

static void on_connection(uv_stream_t *listener, int status)
{
    dp_server *srv = container_of((uv_tcp_t *)listener, dp_server, listener);

    if (status < 0) {
        NANO_WARN("conn.accept_failed", "error=%s", uv_strerror(status));
        return;
    }
    if (srv->is_draining)
        return;
    dp_conn__accept(srv);
}

static void on_resume_idle(uv_idle_t *h)
{
    dp_server *srv = container_of(h, dp_server, resume_idle);

    /* Take the whole list first: resuming may queue connections again. */
    dp_conn *c = srv->resume_head;
    srv->resume_head = NULL;
    while (c != NULL) {
        dp_conn *next = c->resume_next;
        c->resume_next = NULL;
        c->is_resume_queued = false;
        dp_conn__resume(c);
        c = next;
    }
    if (srv->resume_head == NULL)
        uv_idle_stop(&srv->resume_idle);
    if (srv->is_draining && srv->drained_cb != NULL && srv->n_conns == 0 && srv->n_requests == 0) {
        dp_server_drained_cb cb = srv->drained_cb;
        srv->drained_cb = NULL;
        cb(srv, srv->drained_ud);
    }
}

/* The server goes once it is closing and its own handles and every connection are gone:
 * libuv runs close callbacks in no order we can rely on, so either may finish last. */
static void maybe_free(dp_server *srv)
{
    if (!srv->is_closing || srv->n_handles_open != 0 || srv->n_conns != 0)
        return;
    dp_server_closed_cb done = srv->closed_cb;
    void *arg = srv->closed_arg;
    dp_tls_ctx_unref(srv->opts.tls_ctx);
    nano_free(srv->tls_buf);
    nano_free(srv);
    if (done != NULL)
        done(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    dp_server *srv = h->data;
    srv->n_handles_open--;
    maybe_free(srv);
}

/* Writes every connection's queued output. Why at the end of the loop turn and not as each
 * response is made: a response written at once wakes the client, which on a fast client
 * means waking a sleeping thread (an interprocessor interrupt, costly in VMs) for nearly
 * every request; written together, one turn's responses find the client awake. */
static void flush_queued(dp_server *srv)
{
    dp_conn *c = srv->flush_head;
    srv->flush_head = NULL;
    while (c != NULL) {
        dp_conn *next = c->flush_next;
        c->flush_next = NULL;
        c->is_flush_queued = false;
        dp_conn__flush_now(c);
        c = next;
    }
}

static void on_flush_prepare(uv_prepare_t *h)
{
    flush_queued(container_of(h, dp_server, flush_prepare));
}

static void on_flush_check(uv_check_t *h)
{
    flush_queued(container_of(h, dp_server, flush_check));
}

void dp_server__flush_if_due(dp_server *srv, uint64_t now_ns)
{
    if (srv->flush_head != NULL && now_ns - srv->flush_since > DP_FLUSH_MAX_WAIT_NS)
        flush_queued(srv);
}

void dp_server__flush_soon(dp_server *srv, dp_conn *c)
{
    if (c->is_flush_queued)
        return;
    if (srv->flush_head == NULL)
        srv->flush_since = uv_hrtime();
    c->is_flush_queued = true;
    c->flush_next = srv->flush_head;
    srv->flush_head = c;
}

dp_server *dp_server_new(uv_loop_t *loop, const dp_server_options *opts)
{
    dp_server *srv = nano_xcalloc(1, sizeof *srv);
    srv->loop = loop;
    srv->opts = *opts;
    srv->opts.tls_ctx = dp_tls_ctx_ref(opts->tls_ctx);
    srv->next_request_id = 1;
    uv_idle_init(loop, &srv->resume_idle);
    srv->resume_idle.data = srv;
    /* Both ends of the poll phase: after it (I/O callbacks answered) and before the next
     * wait (timers and other callbacks answered). Neither keeps the loop alive. */
    uv_prepare_init(loop, &srv->flush_prepare);
    srv->flush_prepare.data = srv;
    uv_prepare_start(&srv->flush_prepare, on_flush_prepare);
    uv_unref((uv_handle_t *)&srv->flush_prepare);
    uv_check_init(loop, &srv->flush_check);
    srv->flush_check.data = srv;
    uv_check_start(&srv->flush_check, on_flush_check);
    uv_unref((uv_handle_t *)&srv->flush_check);
    srv->n_handles_open = 3;
    return srv;
}

static int parse_address(const char *host, int port, struct sockaddr_storage *addr, nano_error *err)
{
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)addr);
    if (rc != 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)addr);
    if (rc != 0)
        return nano_error_set(err, rc, "listen_address",
                              "cannot listen on '%s': not an IPv4 or IPv6 address", host);
    return 0;
}

static int port_of(const struct sockaddr_storage *a)
{
    return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
                                          : ((const struct sockaddr_in *)a)->sin_port);
}

static int bind_socket(const char *host, int port, bool reuseport, int *bound_port,
                       nano_error *err);

int dp_listen_socket(const char *host, int port, int *bound_port, nano_error *err)
{
    return bind_socket(host, port, true, bound_port, err);
}

int dp_listen_socket_exclusive(const char *host, int port, int *bound_port, nano_error *err)
{
    return bind_socket(host, port, false, bound_port, err);
}

static int bind_socket(const char *host, int port, bool reuseport, int *bound_port, nano_error *err)
{
    struct sockaddr_storage addr;
    int rc = parse_address(host, port, &addr, err);
    if (rc != 0)
        return rc;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return nano_error_set(err, -errno, "listen_failed", "cannot create a socket: %s",
                              strerror(errno));
    int one = 1;
    /* libuv 1.44 has no UV_TCP_REUSEPORT: set it here, then hand the fd to uv_tcp_open. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, (const struct sockaddr *)&addr,
             addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                        : sizeof(struct sockaddr_in)) != 0) {
        int e = errno;
        close(fd);
        return nano_error_set(err, -e, "listen_failed", "cannot listen on %s:%d: %s", host, port,
                              strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    getsockname(fd, (struct sockaddr *)&bound, &len);
    *bound_port = port_of(&bound);
    return fd;
}

int dp_server_listen(dp_server *srv, nano_error *err)
{
    int rc;
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->n_handles_open++;
    srv->is_listening = true;
    if (srv->opts.fd > 0) {
        rc = uv_tcp_open(&srv->listener, srv->opts.fd);
    } else {
        struct sockaddr_storage addr;
        if ((rc = parse_address(srv->opts.host, srv->opts.port, &addr, err)) != 0)
            return rc;
        rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc != 0)
        return nano_error_set(err, rc, "listen_failed", "cannot listen on %s:%d: %s",
                              srv->opts.host, srv->opts.port, uv_strerror(rc));

    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
    srv->bound_port = port_of(&bound);
    bool is_v6 = strchr(srv->opts.host, ':') != NULL;
    char where[80];
    snprintf(where, sizeof where, "%s%s%s:%d", is_v6 ? "[" : "", srv->opts.host, is_v6 ? "]" : "",
             srv->bound_port);
    if (!srv->opts.quiet)
        NANO_INFO("dp.listening", "addr=%s", where);
    return 0;
}

int dp_server_bound_port(const dp_server *srv)
{
    return srv->bound_port;
}

void dp_server__schedule(dp_server *srv, dp_conn *c)
{
    if (c->is_resume_queued)
        return;
    c->is_resume_queued = true;
    c->resume_next = srv->resume_head;
    srv->resume_head = c;
    uv_idle_start(&srv->resume_idle, on_resume_idle);
}

void dp_server__conn_gone(dp_server *srv, dp_conn *c)
{
    if (c->is_flush_queued) {
        for (dp_conn **pp = &srv->flush_head; *pp != NULL; pp = &(*pp)->flush_next) {
            if (*pp == c) {
                *pp = c->flush_next;
                break;
            }
        }
        c->is_flush_queued = false;
    }
    if (c->is_resume_queued) {
        for (dp_conn **pp = &srv->resume_head; *pp != NULL; pp = &(*pp)->resume_next) {
            if (*pp == c) {
                *pp = c->resume_next;
                break;
            }
        }
        c->is_resume_queued = false;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    if (srv->is_closing) {
        maybe_free(srv);
        return;
    }
    dp_server__check_drained(srv);
}

void dp_server__check_drained(dp_server *srv)
{
    if (!srv->is_draining || srv->drained_cb == NULL)
        return;
    if (srv->n_conns != 0 || srv->n_requests != 0)
        return;
    /* Report from the idle callback, a clean stack: we may be inside a close callback or
     * inside JS here. */
    uv_idle_start(&srv->resume_idle, on_resume_idle);
}

void dp_server_drain(dp_server *srv, dp_server_drained_cb drained_cb, void *ud)
{
    srv->is_draining = true;
    srv->drained_cb = drained_cb;
    srv->drained_ud = ud;
    if (srv->is_listening) {
        srv->is_listening = false;
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    }
    for (dp_conn *c = srv->conns, *next; c != NULL; c = next) {
        next = c->next;
        dp_conn__begin_drain(c);
    }
    /* Even when nothing is open, report through the loop, never from inside this call. */
    uv_idle_start(&srv->resume_idle, on_resume_idle);
}

void dp_server_abort_all(dp_server *srv)
{
    for (dp_conn *c = srv->conns, *next; c != NULL; c = next) {
        next = c->next;
        dp_conn__close(c);
    }
}

size_t dp_server_n_conns(const dp_server *srv)
{
    return srv->n_conns;
}

size_t dp_server_n_requests(const dp_server *srv)
{
    return srv->n_requests;
}

size_t dp_server_n_active_conns(const dp_server *srv)
{
    return srv->n_active;
}

void dp_server_set_tls_ctx(dp_server *srv, dp_tls_ctx *ctx)
{
    dp_tls_ctx *old = srv->opts.tls_ctx;
    srv->opts.tls_ctx = dp_tls_ctx_ref(ctx);
    dp_tls_ctx_unref(old); /* connections made under it hold their own references */
}

void dp_server_close(dp_server *srv, dp_server_closed_cb done, void *arg)
{
    srv->is_closing = true;
    srv->closed_cb = done;
    srv->closed_arg = arg;
    srv->drained_cb = NULL;
    dp_server_abort_all(srv);
    if (srv->is_listening) {
        srv->is_listening = false;
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    }
    uv_close((uv_handle_t *)&srv->resume_idle, on_handle_closed);
    uv_close((uv_handle_t *)&srv->flush_prepare, on_handle_closed);
    uv_close((uv_handle_t *)&srv->flush_check, on_handle_closed);
}

const char *dp_server__date(dp_server *srv)
{
    uint64_t now = uv_now(srv->loop) / 1000;
    if (now != srv->date_sec) {
        /* uv_now is monotonic; the Date header wants wall time. */
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        srv->date_sec = now;
    }
    return srv->date;
}

/* --- refusals ------------------------------------------------------------------------------ */

/* Process-wide: every worker's server and the status port count here; relaxed increments on
 * a path that is already an error's. */
static _Atomic uint64_t refusals[DP_REFUSED_COUNT];

void dp_server__count_refusal(dp_refusal kind)
{
    if ((unsigned)kind < DP_REFUSED_COUNT)
        atomic_fetch_add_explicit(&refusals[kind], 1, memory_order_relaxed);
}

void dp_server_refusals(uint64_t out[DP_REFUSED_COUNT])
{
    for (size_t i = 0; i < DP_REFUSED_COUNT; i++)
        out[i] = atomic_load_explicit(&refusals[i], memory_order_relaxed);
}
