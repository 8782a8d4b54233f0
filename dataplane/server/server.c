#include <stdio.h>
#include <string.h>
#include <time.h>

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
    if (srv->is_draining && srv->drained_cb != NULL && srv->n_conns == 0 &&
        srv->n_requests == 0) {
        dp_server_drained_cb cb = srv->drained_cb;
        srv->drained_cb = NULL;
        cb(srv, srv->drained_ud);
    }
}

/* The server goes once it is closing and its own handles and every connection are gone:
 * libuv runs close callbacks in no order we can rely on, so either may finish last. */
static void maybe_free(dp_server *srv)
{
    if (srv->is_closing && srv->n_handles_open == 0 && srv->n_conns == 0)
        nano_free(srv);
}

static void on_handle_closed(uv_handle_t *h)
{
    dp_server *srv = h->data;
    srv->n_handles_open--;
    maybe_free(srv);
}

dp_server *dp_server_new(uv_loop_t *loop, const dp_server_options *opts, struct rt_isolate *app)
{
    dp_server *srv = nano_xcalloc(1, sizeof *srv);
    srv->loop = loop;
    srv->opts = *opts;
    srv->app = app;
    srv->next_request_id = 1;
    uv_idle_init(loop, &srv->resume_idle);
    srv->resume_idle.data = srv;
    srv->n_handles_open = 1;
    return srv;
}

int dp_server_listen(dp_server *srv, nano_error *err)
{
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(srv->opts.host, srv->opts.port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        rc = uv_ip6_addr(srv->opts.host, srv->opts.port, (struct sockaddr_in6 *)&addr);
    if (rc != 0)
        return nano_error_set(err, rc, "listen_address",
                              "cannot listen on '%s': not an IPv4 or IPv6 address",
                              srv->opts.host);
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->n_handles_open++;
    srv->is_listening = true;
    rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection);
    if (rc != 0)
        return nano_error_set(err, rc, "listen_failed", "cannot listen on %s:%d: %s",
                              srv->opts.host, srv->opts.port, uv_strerror(rc));

    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
    srv->bound_port = ntohs(bound.ss_family == AF_INET6
                                ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                : ((struct sockaddr_in *)&bound)->sin_port);
    bool is_v6 = strchr(srv->opts.host, ':') != NULL;
    char where[80];
    snprintf(where, sizeof where, "%s%s%s:%d", is_v6 ? "[" : "", srv->opts.host, is_v6 ? "]" : "",
             srv->bound_port);
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

void dp_server_close(dp_server *srv)
{
    srv->is_closing = true;
    srv->drained_cb = NULL;
    dp_server_abort_all(srv);
    if (srv->is_listening) {
        srv->is_listening = false;
        uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
    }
    uv_close((uv_handle_t *)&srv->resume_idle, on_handle_closed);
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
