/* client.c: libcurl's multi interface on a libuv loop (client.h).
 *
 * curl tells us which sockets to watch (on_socket) and when to wake it (on_timer_set); we
 * turn those into uv_poll handles and one uv_timer, and call curl_multi_socket_action when
 * they fire. curl's own callbacks (header, write, read, opensocket, prereq) only record what
 * happened on the transfer; the owner's hooks run afterwards, from `dispatch`, once curl has
 * returned, so a hook may call back into curl (take, send, free) without re-entering it.
 *
 * A pooled connection's socket keeps its uv_poll from its connect to its close (curl tells
 * us the close through CLOSESOCKETFUNCTION). When curl stops watching it (the transfer ended
 * or paused), the poll stays armed and is only stopped if an event does come: a kept-alive
 * connection is silent, so a request on a reused connection costs no epoll_ctl at all,
 * where stopping and re-creating the poll cost six system calls per request. */
#include "client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_int.h"

#include "alloc.h"
#include "egress.h"
#include "error.h"
#include "log.h"

static void xfer_release_memory(dp_xfer *x);

void dp_xfer__mark_ready(dp_xfer *x)
{
    dp_client *c = x->c;
    if (x->is_ready)
        return;
    x->is_ready = true;
    x->ready_round = c->round + (c->depth > 0 ? 1u : 0u);
    if (c->depth > 0)
        dp_client__kick(c);
    x->ready_next = NULL;
    x->ready_prev = c->ready_tail;
    if (c->ready_tail != NULL)
        c->ready_tail->ready_next = x;
    else
        c->ready_head = x;
    c->ready_tail = x;
}

static void unready(dp_xfer *x)
{
    dp_client *c = x->c;
    if (!x->is_ready)
        return;
    x->is_ready = false;
    if (x->ready_prev != NULL)
        x->ready_prev->ready_next = x->ready_next;
    else
        c->ready_head = x->ready_next;
    if (x->ready_next != NULL)
        x->ready_next->ready_prev = x->ready_prev;
    else
        c->ready_tail = x->ready_prev;
    x->ready_prev = x->ready_next = NULL;
}

const char *dp_xfer_error_name(dp_xfer_error e)
{
    static const char *const names[] = {"ok",        "dns",     "refused", "denied",
                                        "tls",       "timeout", "reset",   "protocol",
                                        "too_large", "body",    "other"};
    return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "other";
}

/* --- curl's view of sockets and time -> libuv ------------------------------------------- */

static void check_done(dp_client *c);
static void dispatch(dp_client *c);
static void on_kick(uv_idle_t *h);

void dp_client__handle_closed(dp_client *c)
{
    if (--c->n_handles == 0 && c->is_closing) {
        free(c->by_fd);
        free(c->ca_file);
        free(c->ca_dir);
        free(c);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    dp_client *c = h->data;
    if (h->type == UV_POLL) {
        sock_ctx *sc = h->data;
        c = sc->c;
        free(sc);
    }
    dp_client__handle_closed(c);
}

static void after_action(dp_client *c)
{
    check_done(c);
    dispatch(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    sock_ctx *sc = h->data;
    dp_client *c = sc->c;
    int flags = 0;
    int running = 0;

    if (sc->want == 0) {
        /* An event on a socket curl no longer watches (a pooled connection the server
         * closed, or data for a paused transfer): stop until curl wants it again. curl
         * finds a dead pooled connection itself before it reuses one. */
        uv_poll_stop(&sc->poll);
        sc->armed = 0;
        return;
    }
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & sc->want & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & sc->want & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    if (flags == 0)
        return;
    curl_multi_socket_action(c->multi, sc->fd, flags, &running);
    after_action(c);
}

static sock_ctx *sock_find(dp_client *c, curl_socket_t fd)
{
    return fd >= 0 && fd < c->by_fd_cap ? c->by_fd[fd] : NULL;
}

static sock_ctx *sock_open(dp_client *c, curl_socket_t fd)
{
    sock_ctx *sc;

    if (fd < 0)
        return NULL;
    if (fd >= c->by_fd_cap) {
        int cap = c->by_fd_cap > 0 ? c->by_fd_cap : 64;
        while (cap <= fd)
            cap *= 2;
        c->by_fd = nano_xrealloc(c->by_fd, (size_t)cap * sizeof(*c->by_fd));
        memset(c->by_fd + c->by_fd_cap, 0, (size_t)(cap - c->by_fd_cap) * sizeof(*c->by_fd));
        c->by_fd_cap = cap;
    }
    sc = nano_xcalloc(1, sizeof(*sc));
    if (uv_poll_init_socket(c->loop, &sc->poll, fd) != 0) {
        free(sc);
        return NULL;
    }
    sc->c = c;
    sc->fd = fd;
    sc->poll.data = sc;
    sc->next = c->socks;
    if (c->socks != NULL)
        c->socks->prev = sc;
    c->socks = sc;
    c->n_handles++;
    c->by_fd[fd] = sc;
    return sc;
}

/* Before the fd itself is closed: the fd number may be reused by the next socket. */
static void sock_close(dp_client *c, sock_ctx *sc)
{
    if (sc->prev != NULL)
        sc->prev->next = sc->next;
    else
        c->socks = sc->next;
    if (sc->next != NULL)
        sc->next->prev = sc->prev;
    if (sock_find(c, sc->fd) == sc)
        c->by_fd[sc->fd] = NULL;
    uv_close((uv_handle_t *)&sc->poll, on_handle_closed); /* stops it */
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    dp_client *c = userp;
    sock_ctx *sc = sock_find(c, fd);
    int events = 0;

    (void)easy;
    (void)socketp;
    if (what == CURL_POLL_REMOVE) {
        if (sc == NULL)
            return 0;
        if (sc->is_pooled) {
            sc->want = 0; /* left armed: see on_poll */
            return 0;
        }
        sock_close(c, sc); /* a socket of curl's own (its resolver's): curl closes it */
        return 0;
    }
    if (sc == NULL && (sc = sock_open(c, fd)) == NULL)
        return -1;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    sc->want = events;
    if (sc->armed != events) {
        uv_poll_start(&sc->poll, events, on_poll);
        sc->armed = events;
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    dp_client *c = t->data;
    int running = 0;

    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    after_action(c);
}

/* curl asks to be called back after timeout_ms (-1: never). Never call curl from here. */
static int on_timer_set(CURLM *multi, long timeout_ms, void *userp)
{
    dp_client *c = userp;

    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

int dp_client_new(uv_loop_t *loop, dp_client **out)
{
    dp_client *c = nano_xcalloc(1, sizeof(*c));
    /* TLS trusts the system CA store (Debian's bundle), unless the operator names other CAs
     * the way OpenSSL's own tools read them. */
    const char *ca_file = getenv("SSL_CERT_FILE");
    const char *ca_dir = getenv("SSL_CERT_DIR");
    c->ca_file = ca_file != NULL && ca_file[0] != '\0' ? nano_xstrdup(ca_file) : NULL;
    c->ca_dir = ca_dir != NULL && ca_dir[0] != '\0' ? nano_xstrdup(ca_dir) : NULL;
    /* Without any proxy variable, each transfer tells curl so: it would otherwise look them up
     * (five getenv calls and copies) on every request. */
    static const char *const proxy_vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                             "HTTPS_PROXY", "all_proxy",  "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxy_vars) / sizeof(proxy_vars[0]); i++) {
        const char *v = getenv(proxy_vars[i]);
        if (v != NULL && v[0] != '\0')
            c->uses_proxy_env = true;
    }
    /* The native transport is the default for what it carries; curl for everything when the
     * operator says so (docs/nano-dp.md, "Environment"). */
    const char *which = getenv("NANO_FETCH_CLIENT");
    c->is_curl_only = which != NULL && strcmp(which, "curl") == 0;
    c->loop = loop;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_idle_init(loop, &c->kick);
    c->kick.data = c;
    c->n_handles = 2;
    *out = c;
    return 0;
}

/* The multi handle, made with the first transfer: libcurl is loaded only then (curl_lib.h).
 * Returns 0, or an error with why filled (logged once per process). */
static int ensure_multi(dp_client *c, char *why, size_t why_len)
{
    if (c->multi != NULL)
        return 0;
    nano_error err = {0};
    int rc = dp_curl_load(&err);
    if (rc != 0) {
        static atomic_bool is_logged;
        if (!atomic_exchange(&is_logged, true))
            NANO_ERROR("client.curl_unavailable", "error_id=%s error=%s", err.id, err.message);
        snprintf(why, why_len, "%s", err.message);
        return rc;
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        snprintf(why, why_len, "out of memory");
        return NANO_ENOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* Connections kept open after their transfers, for reuse (curl's default is 4 per
     * transfer running, which a burst inflates). */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, 256L);
    return 0;
}

size_t dp_client_n_xfers(const dp_client *c)
{
    return c->n_xfers;
}

static void xfer_unlink_and_free(dp_xfer *x)
{
    xfer_release_memory(x);
    free(x);
}

void dp_client_close(dp_client *c)
{
    if (c == NULL)
        return;
    while (c->xfers != NULL) {
        dp_xfer *x = c->xfers;
        x->hooks = (dp_xfer_hooks){0};
        dp_xfer_free(x);
    }
    while (c->zombies != NULL) {
        dp_xfer *z = c->zombies;
        c->zombies = z->next;
        xfer_unlink_and_free(z);
    }
    /* cleanup closes the pool's connections; sockets it does not report back are closed
     * here (their fds are gone: the polls only need closing) */
    h1_pool_close(c);
    c->is_closing = true;
    while (c->n_spare > 0)
        curl_easy_cleanup(c->spare[--c->n_spare]);
    if (c->multi != NULL) /* else libcurl was never needed here */
        curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks != NULL)
        sock_close(c, c->socks);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->kick, on_handle_closed);
}

/* --- per-transfer callbacks (inside curl: record only) ---------------------------------- */

int dp_xfer__append_line(dp_xfer *x, const char *p, size_t n)
{
    if (x->lines_len + n + 2 > x->lines_cap) {
        size_t cap = x->lines_cap ? x->lines_cap * 2 : 1024;
        while (cap < x->lines_len + n + 2)
            cap *= 2;
        char *grown = nano_realloc(x->lines, cap);
        if (grown == NULL)
            return -1;
        x->lines = grown;
        x->lines_cap = cap;
    }
    memcpy(x->lines + x->lines_len, p, n);
    x->lines_len += n;
    x->lines[x->lines_len++] = '\0';
    return 0;
}

/* "HTTP/1.1 200 OK" (HTTP/2 and 3: "HTTP/2 200 "): the status and the reason. */
static int parse_status_line(dp_xfer *x, const char *p, size_t n)
{
    const char *sp = memchr(p, ' ', n);
    int status = 0;
    size_t i;

    if (sp == NULL)
        return -1;
    i = (size_t)(sp - p) + 1;
    for (int d = 0; d < 3; d++, i++) {
        if (i >= n || p[i] < '0' || p[i] > '9')
            return -1;
        status = status * 10 + (p[i] - '0');
    }
    while (i < n && p[i] == ' ')
        i++;
    dp_xfer__set_reason(x, p + i, n - i);
    x->status = status;
    return 0;
}

void dp_xfer__set_reason(dp_xfer *x, const char *p, size_t n)
{
    free(x->reason);
    x->reason = nano_xstrndup(p, n);
}

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    dp_xfer *x = ud;
    size_t n = size * nitems;
    size_t len = n;

    if (x->is_head_done)
        return n; /* trailers: not exposed */
    x->head_bytes += n;
    if (x->head_bytes > DP_XFER_MAX_HEAD) {
        x->is_head_too_large = true;
        return 0;
    }
    while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    if (len == 0) { /* the blank line: a head ended */
        if (x->status >= 100 && x->status < 200) {
            /* an interim response (100 Continue, 103 Early Hints): wait for the final one */
            x->lines_len = 0;
            x->status = 0;
            return n;
        }
        long version = 0;
        curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
        x->http_version = version == CURL_HTTP_VERSION_1_0   ? 10
                          : version == CURL_HTTP_VERSION_2_0 ? 20
                          : version == CURL_HTTP_VERSION_3   ? 30
                                                             : 11;
        x->is_head_done = true;
        x->ev_head = true;
        dp_xfer__mark_ready(x);
        return n;
    }
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0 && x->status == 0) {
        if (parse_status_line(x, p, len) != 0)
            return 0;
        return n;
    }
    if ((p[0] == ' ' || p[0] == '\t') && x->lines_len > 0) {
        /* obs-fold: continues the previous line */
        x->lines_len--; /* its NUL */
        while (len > 0 && (p[0] == ' ' || p[0] == '\t')) {
            p++;
            len--;
        }
        if (dp_xfer__append_line(x, " ", 1) != 0)
            return 0;
        x->lines_len--;
        return dp_xfer__append_line(x, p, len) == 0 ? n : 0;
    }
    if (memchr(p, ':', len) == NULL)
        return n; /* not a header line: ignored, as browsers do */
    return dp_xfer__append_line(x, p, len) == 0 ? n : 0;
}

static size_t on_write(char *p, size_t size, size_t nitems, void *ud)
{
    dp_xfer *x = ud;
    size_t n = size * nitems;

    if (n == 0)
        return 0;
    if (x->recv_len >= DP_XFER_RECV_HIGH) {
        x->is_recv_paused = true;
        return CURL_WRITEFUNC_PAUSE; /* curl keeps these bytes and offers them again */
    }
    return dp_xfer__recv_append(x, p, n) == 0 ? n : 0;
}

int dp_xfer__recv_append(dp_xfer *x, const char *p, size_t n)
{
    if (x->recv_len + n > x->recv_cap) {
        /* A small first piece (most responses) gets a buffer its size: a 16 KiB malloc
         * costs glibc a consolidation of its fast bins every time. */
        size_t cap = x->recv_cap ? x->recv_cap * 2 : (n < 16384 ? n : 16384);
        while (cap < x->recv_len + n)
            cap *= 2;
        char *grown = nano_realloc(x->recv, cap);
        if (grown == NULL)
            return -1;
        x->recv = grown;
        x->recv_cap = cap;
    }
    memcpy(x->recv + x->recv_len, p, n);
    x->recv_len += n;
    x->ev_data = true;
    dp_xfer__mark_ready(x);
    return 0;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    dp_xfer *x = ud;
    size_t room = size * nitems;
    size_t n = 0;

    while (n < room) {
        send_piece *pc = x->pieces;
        while (pc != NULL && pc->off == pc->len)
            pc = pc->next;
        if (pc == NULL)
            break;
        size_t k = pc->len - pc->off;
        if (k > room - n)
            k = room - n;
        memcpy(buf + n, pc->p + pc->off, k);
        pc->off += k;
        n += k;
        x->send_queued -= k;
        if (pc->off == pc->len && !x->is_rewindable)
            dp_xfer__piece_sent(x, pc);
    }
    if (n > 0)
        return n;
    if (x->is_send_ended)
        return x->is_send_ok ? 0 : CURL_READFUNC_ABORT;
    x->is_send_paused = true;
    x->ev_send = true;
    dp_xfer__mark_ready(x);
    return CURL_READFUNC_PAUSE;
}

/* pc, a queued piece, was sent: released from dispatch, after the transport returns
 * (a release may run the owner's code). */
void dp_xfer__piece_sent(dp_xfer *x, send_piece *pc)
{
    send_piece **at = &x->pieces;
    while (*at != pc)
        at = &(*at)->next;
    *at = pc->next;
    if (x->pieces_tail == &pc->next)
        x->pieces_tail = at;
    pc->next = x->sent;
    x->sent = pc;
    dp_xfer__mark_ready(x);
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    dp_xfer *x = ud;

    /* curl rewinds to resend a body on a fresh connection when a reused one died. */
    if (offset != 0 || origin != SEEK_SET || !x->is_rewindable)
        return CURL_SEEKFUNC_CANTSEEK;
    x->send_queued = 0;
    for (send_piece *pc = x->pieces; pc != NULL; pc = pc->next) {
        pc->off = 0;
        x->send_queued += pc->len;
    }
    return CURL_SEEKFUNC_OK;
}

bool dp_xfer__check_address(dp_xfer *x, const struct sockaddr *addr)
{
    if (x->hooks.check_address == NULL)
        return true;
    if (x->hooks.check_address(x->hooks.ud, x->host, addr, x->deny_reason, sizeof(x->deny_reason)))
        return true;
    x->is_denied = true;
    return false;
}

static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    dp_xfer *x = ud;
    curl_socket_t fd;
    sock_ctx *sc;

    (void)purpose;
    if (!dp_xfer__check_address(x, &a->addr))
        return CURL_SOCKET_BAD; /* curl tries the host's next address, if any */
    fd = socket(a->family, a->socktype, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    sc = sock_open(x->c, fd);
    if (sc == NULL) {
        close(fd);
        return CURL_SOCKET_BAD;
    }
    sc->is_pooled = true;
    return fd;
}

/* curl closes a socket on_open_socket made (its connection ends), with the client as ud:
 * the connection may outlive the transfer that opened it. */
static int on_close_socket(void *ud, curl_socket_t fd)
{
    dp_client *c = ud;
    sock_ctx *sc = sock_find(c, fd);

    if (sc != NULL)
        sock_close(c, sc);
    return close(fd);
}

/* Before each request goes out, on a new or a reused connection: a connection opened for
 * another app (one pool per thread) must pass this app's egress check too. */
static int on_prereq(void *ud, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    dp_xfer *x = ud;
    struct sockaddr_storage ss;

    (void)local_ip;
    (void)local_port;
    if (primary_port < 0 || nano_egress_sockaddr(primary_ip, (unsigned)primary_port, &ss) != 0)
        return CURL_PREREQFUNC_ABORT;
    return dp_xfer__check_address(x, (struct sockaddr *)&ss) ? CURL_PREREQFUNC_OK
                                                             : CURL_PREREQFUNC_ABORT;
}

/* --- completion and dispatch ------------------------------------------------------------ */

static dp_xfer_error classify(dp_xfer *x, CURLcode rc)
{
    if (x->is_denied)
        return DP_XFER_DENIED;
    if (x->is_head_too_large)
        return DP_XFER_TOO_LARGE;
    switch (rc) {
    case CURLE_OK: return DP_XFER_OK;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return DP_XFER_DNS;
    case CURLE_COULDNT_CONNECT: return DP_XFER_REFUSED;
    case CURLE_OPERATION_TIMEDOUT: return DP_XFER_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_SHUTDOWN_FAILED: return DP_XFER_TLS;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return DP_XFER_RESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING: return DP_XFER_PROTOCOL;
    case CURLE_READ_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_SEND_FAIL_REWIND:
        return x->is_send_ended && !x->is_send_ok ? DP_XFER_BODY : DP_XFER_OTHER;
    default: return DP_XFER_OTHER;
    }
}

static void check_done(dp_client *c)
{
    CURLMsg *msg;
    int left = 0;

    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        dp_xfer *x = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = msg->data.result;
        curl_multi_remove_handle(c->multi, x->easy);
        x->is_running = false;
        x->is_done = true;
        x->result = classify(x, rc);
        if (x->result == DP_XFER_DENIED)
            snprintf(x->detail, sizeof(x->detail), "%s", x->deny_reason);
        else if (x->result == DP_XFER_TOO_LARGE)
            snprintf(x->detail, sizeof(x->detail), "the response head is larger than %u bytes",
                     DP_XFER_MAX_HEAD);
        else if (x->result != DP_XFER_OK)
            snprintf(x->detail, sizeof(x->detail), "%s",
                     x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc));
        else if (!x->is_head_done) {
            x->result = DP_XFER_PROTOCOL;
            snprintf(x->detail, sizeof(x->detail), "the response had no head");
        }
        x->ev_done = true;
        dp_xfer__mark_ready(x);
    }
}

void dp_xfer__finish(dp_xfer *x, dp_xfer_error result, const char *detail)
{
    x->is_running = false;
    x->is_done = true;
    x->result = result;
    snprintf(x->detail, sizeof(x->detail), "%s", detail != NULL ? detail : "");
    x->ev_done = true;
    dp_xfer__mark_ready(x);
}

static void release_sent(dp_xfer *x)
{
    while (x->sent != NULL) {
        send_piece *pc = x->sent;
        x->sent = pc->next;
        if (pc->release != NULL)
            pc->release(pc->release_ud);
        free(pc);
    }
}

/* Runs the owners' hooks for what curl recorded, transfer by transfer from the ready list
 * (events a hook causes put their transfer back on it). A hook may free transfers (this one
 * or others): those leave the list and wait on c->zombies until the outermost dispatch ends. */
static void dispatch(dp_client *c)
{
    dp_xfer *x;

    if (c->depth == 0)
        c->round++;
    c->depth++;
    /* Transfers made ready during this round are appended after all made ready before it,
     * so the first one stamped for a later round ends this round. */
    while ((x = c->ready_head) != NULL && (int)(x->ready_round - c->round) <= 0) {
        unready(x);
        if (x->sent != NULL)
            release_sent(x);
        if (x->ev_head) {
            x->ev_head = false;
            if (x->hooks.on_head != NULL)
                x->hooks.on_head(x->hooks.ud);
            if (x->is_freed)
                continue;
        }
        if (x->ev_data) {
            x->ev_data = false;
            if (x->hooks.on_data != NULL)
                x->hooks.on_data(x->hooks.ud);
            if (x->is_freed)
                continue;
        }
        if (x->ev_send) {
            x->ev_send = false;
            if (x->hooks.on_send_ready != NULL)
                x->hooks.on_send_ready(x->hooks.ud);
            if (x->is_freed)
                continue;
        }
        if (x->ev_done) {
            x->ev_done = false;
            if (x->hooks.on_done != NULL)
                x->hooks.on_done(x->hooks.ud, x->result, x->detail);
        }
    }
    if (--c->depth == 0) {
        while (c->zombies != NULL) {
            dp_xfer *z = c->zombies;
            c->zombies = z->next;
            xfer_unlink_and_free(z);
        }
    }
}

void dp_client__dispatch(dp_client *c)
{
    dispatch(c);
}

void dp_client__kick(dp_client *c)
{
    uv_idle_start(&c->kick, on_kick);
}

/* --- transfers -------------------------------------------------------------------------- */

static bool has_header(const dp_xfer_spec *spec, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < spec->n_headers; i++)
        if (strncasecmp(spec->headers[i], name, n) == 0 && spec->headers[i][n] == ':')
            return true;
    return false;
}

static int add_header(dp_xfer *x, const char *line)
{
    struct curl_slist *l = curl_slist_append(x->headers, line);
    if (l == NULL)
        return NANO_ENOMEM;
    x->headers = l;
    return 0;
}

/* Header lines as curl wants them: "Name;" sends an empty value ("Name:" would remove it). */
static int add_headers(dp_xfer *x, const dp_xfer_spec *spec)
{
    int rc = 0;

    for (size_t i = 0; i < spec->n_headers && rc == 0; i++) {
        const char *line = spec->headers[i];
        const char *colon = strchr(line, ':');
        const char *v = colon ? colon + 1 : NULL;
        while (v != NULL && (*v == ' ' || *v == '\t'))
            v++;
        if (v != NULL && *v == '\0') {
            char *semi = nano_xstrndup(line, (size_t)(colon - line) + 1);
            semi[colon - line] = ';';
            rc = add_header(x, semi);
            free(semi);
        } else {
            rc = add_header(x, line);
        }
    }
    /* curl's own defaults that Fetch does not send */
    if (rc == 0)
        rc = add_header(x, "Expect:");
    if (rc == 0 && spec->body != DP_XFER_NO_BODY && !has_header(spec, "content-type"))
        rc = add_header(x, "Content-Type:");
    if (rc == 0 && spec->body == DP_XFER_BODY_STREAM)
        rc = add_header(x, "Transfer-Encoding: chunked");
    return rc;
}

/* x on curl: 0, or an error with why filled. */
static int curl_start(dp_xfer *x, const dp_xfer_spec *spec, char *why, size_t why_len)
{
    dp_client *c = x->c;
    int rc = ensure_multi(c, why, why_len);
    if (rc != 0)
        return rc;
    CURL *e;

    x->easy = e = c->n_spare > 0 ? c->spare[--c->n_spare] : curl_easy_init();
    if (e == NULL)
        return NANO_ENOMEM;
    rc = add_headers(x, spec);
    if (rc != 0)
        return rc;
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_CONTENT_DECODING, 0L); /* the body's reader decodes */
    /* Through an HTTPS proxy, its CONNECT answer is not the response's head. */
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 64L * 1024);
    /* No CURLOPT_PIPEWAIT: it makes a transfer wait for a connection to the same origin that
     * may multiplex, so one hanging HTTP/1.1 upstream would hold up every other fetch to it. */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    if (!c->uses_proxy_env) {
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    if (c->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    if (c->ca_dir != NULL)
        curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_dir);
    if (spec->total_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)spec->total_timeout_ms);
    if (spec->connect_timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)spec->connect_timeout_ms);
    if (curl_easy_setopt(e, CURLOPT_URL, spec->url) != CURLE_OK) {
        snprintf(why, why_len, "the URL is not one curl accepts");
        return NANO_EINVAL;
    }
    if (strcmp(spec->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (spec->body != DP_XFER_NO_BODY) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         spec->body == DP_XFER_BODY_SIZED ? (curl_off_t)spec->body_len
                                                          : (curl_off_t)-1);
        if (strcmp(spec->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
    } else if (strcmp(spec->method, "POST") == 0 || strcmp(spec->method, "PUT") == 0) {
        /* Fetch sends Content-Length: 0 for a POST or PUT without a body */
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
        if (strcmp(spec->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
        if (strcmp(spec->method, "GET") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, spec->method);
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        return NANO_ENOMEM;
    return 0;
}

int dp_xfer_start(dp_client *c, const dp_xfer_spec *spec, const dp_xfer_hooks *hooks, dp_xfer **out,
                  char *why, size_t why_len)
{
    dp_xfer *x = nano_xcalloc(1, sizeof(*x));
    int rc;

    x->c = c;
    x->hooks = *hooks;
    x->pieces_tail = &x->pieces;
    x->body_kind = spec->body;
    x->body_len = spec->body_len;
    x->host = nano_xstrdup(spec->host != NULL ? spec->host : "");
    /* Plain http: without a proxy goes over the native HTTP/1.1 transport (h1.c): curl's
     * per-transfer work was most of a small proxied request's cost. */
    x->is_running = true;
    rc = c->is_curl_only || c->uses_proxy_env ? 1 : h1_start(x, spec, why, why_len);
    if (rc == 1)
        rc = curl_start(x, spec, why, why_len);
    if (rc != 0) {
        xfer_release_memory(x);
        free(x);
        return rc;
    }
    x->next = c->xfers;
    if (c->xfers != NULL)
        c->xfers->prev = x;
    c->xfers = x;
    c->n_xfers++;
    *out = x;
    return 0;
}

static void xfer_release_memory(dp_xfer *x)
{
    if (x->h1 != NULL)
        h1_release(x);
    release_sent(x);
    while (x->pieces != NULL) {
        send_piece *pc = x->pieces;
        x->pieces = pc->next;
        if (pc->release != NULL)
            pc->release(pc->release_ud);
        free(pc);
    }
    if (x->easy != NULL) {
        /* Kept for the next transfer: a handle costs curl several allocations to set up. */
        dp_client *c = x->c;
        if (c->n_spare < (int)(sizeof(c->spare) / sizeof(c->spare[0])) && !c->is_closing) {
            curl_easy_reset(x->easy);
            c->spare[c->n_spare++] = x->easy;
        } else {
            curl_easy_cleanup(x->easy);
        }
    }
    x->easy = NULL;
    if (x->headers != NULL) /* else libcurl may not even be loaded */
        curl_slist_free_all(x->headers);
    x->headers = NULL;
    free(x->host);
    free(x->reason);
    free(x->lines);
    free(x->recv);
    x->host = x->reason = x->lines = x->recv = NULL;
}

void dp_xfer_free(dp_xfer *x)
{
    dp_client *c;

    if (x == NULL || x->is_freed)
        return;
    c = x->c;
    x->hooks = (dp_xfer_hooks){0};
    if (x->is_running) {
        /* A transfer cut short: its connection is closed rather than reused. */
        if (x->h1 != NULL)
            h1_stop(x);
        else
            curl_multi_remove_handle(c->multi, x->easy);
        x->is_running = false;
    }
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        c->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    c->n_xfers--;
    x->is_freed = true;
    unready(x);
    if (c->depth > 0) {
        x->next = c->zombies;
        c->zombies = x;
        return;
    }
    xfer_unlink_and_free(x);
}

int dp_xfer_status(const dp_xfer *x)
{
    return x->status;
}

const char *dp_xfer_reason(const dp_xfer *x)
{
    return x->reason != NULL ? x->reason : "";
}

const char *dp_xfer_head_lines(const dp_xfer *x, size_t *len)
{
    *len = x->lines_len;
    return x->lines;
}

bool dp_xfer_has_head(const dp_xfer *x)
{
    return x->is_head_done;
}

int dp_xfer_http_version(const dp_xfer *x)
{
    return x->http_version;
}

bool dp_xfer_is_done(const dp_xfer *x)
{
    return x->is_done;
}

dp_xfer_error dp_xfer_result(const dp_xfer *x)
{
    return x->result;
}

size_t dp_xfer_buffered(const dp_xfer *x)
{
    return x->recv_len;
}

static void on_kick(uv_idle_t *h)
{
    uv_idle_stop(h); /* started again by what dispatch records: runs after the next poll */
    dispatch(h->data);
}

/* The pause state curl should have now: each direction paused only while we hold it.
 * Unpausing may run curl's callbacks right away (held bytes delivered, the next piece of the
 * upload read); what they record is dispatched on the next loop turn, since the caller may
 * be inside a hook. */
static void update_pause(dp_xfer *x)
{
    int mask = (x->is_recv_paused ? CURLPAUSE_RECV : 0) | (x->is_send_paused ? CURLPAUSE_SEND : 0);
    if (!x->is_running)
        return;
    if (x->h1 != NULL) {
        h1_resume(x);
        return;
    }
    curl_easy_pause(x->easy, mask);
    if (x->is_ready)
        dp_client__kick(x->c);
}

void *dp_xfer_take(dp_xfer *x, size_t *len)
{
    void *p = x->recv;

    *len = x->recv_len;
    if (x->recv_len == 0) {
        *len = 0;
        return NULL;
    }
    x->recv = NULL;
    x->recv_len = x->recv_cap = 0;
    if (x->is_recv_paused) {
        x->is_recv_paused = false;
        update_pause(x); /* may deliver held bytes into a fresh buffer right away */
    }
    return p;
}

int dp_xfer_send(dp_xfer *x, const void *p, size_t len, void (*release)(void *), void *release_ud)
{
    send_piece *pc;

    if (x->is_send_ended)
        return NANO_EINVAL;
    pc = nano_xcalloc(1, sizeof(*pc));
    pc->p = p;
    pc->len = len;
    pc->release = release;
    pc->release_ud = release_ud;
    if (x->pieces == NULL && x->sent == NULL && x->send_queued == 0 &&
        x->body_kind == DP_XFER_BODY_SIZED && len == x->body_len)
        x->is_rewindable = true;
    *x->pieces_tail = pc;
    x->pieces_tail = &pc->next;
    x->send_queued += len;
    if (x->is_send_paused) {
        x->is_send_paused = false;
        update_pause(x);
    }
    return 0;
}

void dp_xfer_send_end(dp_xfer *x, bool ok)
{
    if (x->is_send_ended)
        return;
    x->is_send_ended = true;
    x->is_send_ok = ok;
    if (x->is_send_paused) {
        x->is_send_paused = false;
        update_pause(x);
    }
}

size_t dp_xfer_send_queued(const dp_xfer *x)
{
    return x->send_queued;
}
