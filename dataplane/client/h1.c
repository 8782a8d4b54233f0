/* h1.c: the native transport for plain http: URLs (client_int.h), HTTP/1.1 over libuv TCP
 * handles with llhttp parsing the responses.
 *
 * Why a second transport: a proxied small request spent most of its client-side time in
 * libcurl (URL parsing, its printf building the request head, the connection-cache search,
 * a poll() for the dead-connection check and one for readiness: ~70k instructions and two
 * system calls per request) where writing a head and parsing a response take a few thousand.
 * curl stays the transport for https:, for proxies and for anything this file declines, so
 * TLS, HTTP/2 and the operator's proxy variables keep their one implementation.
 *
 * What it keeps of curl's behaviour: one connection pool per client (per worker thread),
 * keyed by host and port, at most H1_MAX_IDLE idle connections, each closed after
 * H1_IDLE_MS unused or as soon as its server closes it or sends bytes nobody asked for;
 * a request that fails on a reused connection before any response byte arrived is sent once
 * more on a fresh connection when its body can be sent again; host names resolve through
 * getaddrinfo on libuv's pool (at most H1_DNS_RUNNING lookups process-wide: a slow resolver
 * never holds more of the pool that crypto.subtle shares; past that, curl's own resolver
 * carries the transfer) and stay cached H1_DNS_TTL_MS; the egress check runs on every
 * address before connecting and on a pooled connection's peer before it is reused.
 *
 * Flow control: response bytes go to the transfer's buffer as they are parsed; once it holds
 * DP_XFER_RECV_HIGH the socket is not read until the owner takes them (at most one read of
 * H1_READ bytes beyond). Upload pieces are written as they are queued, one write in flight
 * per piece; the owner is asked for more (on_send_ready) once every piece went out. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "client_int.h"

#include "alloc.h"
#include "buf.h"
#include "error.h"

#define H1_MAX_IDLE 256       /* pooled connections per client (curl's MAXCONNECTS here) */
#define H1_IDLE_MS 30000      /* a pooled connection unused this long is closed */
#define H1_DNS_TTL_MS 60000   /* curl's DNS cache timeout */
#define H1_DNS_CACHE 64       /* names cached per client */
#define H1_MAX_ADDRS 8        /* addresses kept per name */
#define H1_READ (64u * 1024u) /* bytes per socket read */

typedef struct h1_conn h1_conn;

typedef struct dns_entry {
    char *name;
    uint64_t expires; /* uv_now, ms */
    int n;
    struct sockaddr_storage a[H1_MAX_ADDRS];
} dns_entry;

struct h1_pool {
    h1_conn *idle_head, *idle_tail; /* oldest first */
    size_t n_idle;
    uv_timer_t sweep; /* closes connections idle too long */
    bool is_sweeping;
    dns_entry dns[H1_DNS_CACHE];
    int n_dns;
    char rbuf[H1_READ]; /* every connection's reads: parsed before the next one */
};

struct h1_conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    dp_client *c;
    char *key; /* "host:port" */
    struct sockaddr_storage peer;
    h1_xfer *hx; /* the transfer on it; NULL while pooled */
    llhttp_t parser;
    unsigned n_requests; /* sent on it so far */
    uint64_t idle_since;
    bool is_connected, is_reading, is_closed, is_idle;
    h1_conn *prev, *next; /* the idle list */
};

typedef struct dns_req {
    uv_getaddrinfo_t req;
    h1_xfer *hx; /* NULL once the transfer let go */
    dp_client *c;
} dns_req;

struct h1_xfer {
    dp_xfer *x;
    dp_client *c;
    uv_timer_t timer; /* connect and total deadlines; hx is freed by its close */
    char *key;        /* "host:port" */
    char *name;       /* the host to resolve (IPv6 without brackets) */
    unsigned port;
    char *head; /* the request head, kept for a resend */
    size_t head_len;
    bool is_chunked;  /* the body goes in chunks (its length is unknown) */
    bool is_head_req; /* HEAD: the response has no body whatever it says */
    bool is_connecting;
    bool is_retried;   /* sent once more on a fresh connection already */
    bool no_reuse;     /* the next connection is a new one */
    bool got_bytes;    /* a response byte came on the current connection */
    bool is_interim;   /* the head being parsed is a 1xx */
    bool is_complete;  /* the whole response was parsed */
    bool is_reusable;  /* ... and its connection may serve another request */
    bool is_send_done; /* every body byte (and the last chunk) was written */
    bool any_allowed;  /* the egress check allowed one of the addresses */
    bool is_head_too_large;
    bool is_starting;       /* inside h1_start: a failure waits for the next loop turn */
    dp_xfer_error deferred; /* that failure */
    char deferred_detail[320];
    size_t writes_pending;
    h1_conn *conn;
    dns_req *dns;
    struct sockaddr_storage addrs[H1_MAX_ADDRS];
    int n_addrs, next_addr;
    int last_error; /* libuv's, of the last connection attempt */
    uint64_t connect_timeout_ms, total_timeout_ms, started;
    size_t head_bytes;
    char *line; /* the header line being parsed, or the reason phrase */
    size_t line_len, line_cap;
};

typedef struct write_req {
    uv_write_t req;
    h1_conn *conn;
    send_piece *pc; /* the body piece written (NULL: head or framing) */
    char frame[24]; /* a chunk's size line */
} write_req;

static atomic_int g_dns_running;

static int dns_running_max(void)
{
    /* A quarter of libuv's pool (at least one thread): crypto.subtle's long jobs take at
     * most half, so short jobs always find a thread. Read on a cache miss only, from any
     * worker thread: computed each time rather than kept in a shared static. */
    const char *env = getenv("UV_THREADPOOL_SIZE");
    long n = env != NULL ? strtol(env, NULL, 10) : 0;
    if (n <= 0)
        n = 4;
    return n >= 8 ? (int)(n / 4) : 1;
}

static void conn_close(h1_conn *k);
static void conn_failed(h1_xfer *hx, dp_xfer_error e, const char *detail);
static void connect_next(h1_xfer *hx);
static void send_request(h1_xfer *hx);
static void pump_send(h1_xfer *hx);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static const llhttp_settings_t g_settings;

static void dispatch_if_ready(dp_client *c)
{
    if (c->ready_head != NULL)
        dp_client__dispatch(c);
}

/* --- the pool --------------------------------------------------------------------------- */

static h1_pool *pool_of(dp_client *c)
{
    if (c->h1 == NULL) {
        c->h1 = nano_xcalloc(1, sizeof(*c->h1));
        uv_timer_init(c->loop, &c->h1->sweep);
        c->h1->sweep.data = c;
        uv_unref((uv_handle_t *)&c->h1->sweep);
        c->n_handles++;
    }
    return c->h1;
}

static void idle_unlink(h1_pool *p, h1_conn *k)
{
    if (!k->is_idle)
        return;
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        p->idle_head = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    else
        p->idle_tail = k->prev;
    k->prev = k->next = NULL;
    k->is_idle = false;
    p->n_idle--;
}

static void on_sweep(uv_timer_t *t)
{
    dp_client *c = t->data;
    h1_pool *p = c->h1;
    uint64_t now = uv_now(c->loop);

    while (p->idle_head != NULL && now - p->idle_head->idle_since >= H1_IDLE_MS)
        conn_close(p->idle_head);
    if (p->idle_head == NULL) {
        uv_timer_stop(t);
        p->is_sweeping = false;
    }
}

static void pool_put(h1_conn *k)
{
    dp_client *c = k->c;
    h1_pool *p = c->h1;

    if (p->n_idle >= H1_MAX_IDLE)
        conn_close(p->idle_head);
    k->hx = NULL;
    k->idle_since = uv_now(c->loop);
    k->is_idle = true;
    k->next = NULL;
    k->prev = p->idle_tail;
    if (p->idle_tail != NULL)
        p->idle_tail->next = k;
    else
        p->idle_head = k;
    p->idle_tail = k;
    p->n_idle++;
    /* Read while idle: a close or stray bytes from the server end the connection at once. */
    if (!k->is_reading) {
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
        k->is_reading = true;
    }
    if (!p->is_sweeping) {
        uv_timer_start(&p->sweep, on_sweep, H1_IDLE_MS / 2, H1_IDLE_MS / 2);
        p->is_sweeping = true;
    }
}

/* The most recently used idle connection to hx's origin that hx's egress check allows. */
static h1_conn *pool_take(h1_xfer *hx)
{
    h1_pool *p = hx->x->c->h1;
    uint64_t now = uv_now(hx->x->c->loop);

    for (h1_conn *k = p->idle_tail; k != NULL;) {
        h1_conn *prev = k->prev;
        if (now - k->idle_since >= H1_IDLE_MS) {
            conn_close(k);
        } else if (strcmp(k->key, hx->key) == 0 &&
                   dp_xfer__check_address(hx->x, (struct sockaddr *)&k->peer)) {
            idle_unlink(p, k);
            return k;
        }
        k = prev;
    }
    return NULL;
}

static void on_conn_closed(uv_handle_t *h)
{
    h1_conn *k = h->data;
    dp_client *c = k->c;
    free(k->key);
    free(k);
    dp_client__handle_closed(c);
}

static void conn_close(h1_conn *k)
{
    if (k->is_closed)
        return;
    k->is_closed = true;
    if (k->c->h1 != NULL)
        idle_unlink(k->c->h1, k);
    if (k->hx != NULL && k->hx->conn == k)
        k->hx->conn = NULL;
    k->hx = NULL;
    uv_close((uv_handle_t *)&k->tcp, on_conn_closed); /* cancels a connect or writes */
}

static void on_sweep_closed(uv_handle_t *h)
{
    dp_client *c = h->data;
    free(c->h1);
    c->h1 = NULL;
    dp_client__handle_closed(c);
}

void h1_pool_close(dp_client *c)
{
    h1_pool *p = c->h1;
    if (p == NULL)
        return;
    while (p->idle_head != NULL)
        conn_close(p->idle_head);
    for (int i = 0; i < p->n_dns; i++)
        free(p->dns[i].name);
    p->n_dns = 0;
    uv_close((uv_handle_t *)&p->sweep, on_sweep_closed);
}

/* --- names ------------------------------------------------------------------------------ */

static dns_entry *dns_find(h1_pool *p, const char *name, uint64_t now)
{
    for (int i = 0; i < p->n_dns; i++)
        if (strcmp(p->dns[i].name, name) == 0)
            return now < p->dns[i].expires ? &p->dns[i] : NULL;
    return NULL;
}

static void dns_store(h1_pool *p, const char *name, const struct addrinfo *ai, uint64_t now)
{
    dns_entry *e = NULL;
    for (int i = 0; i < p->n_dns && e == NULL; i++)
        if (strcmp(p->dns[i].name, name) == 0)
            e = &p->dns[i];
    if (e == NULL && p->n_dns < H1_DNS_CACHE) {
        e = &p->dns[p->n_dns++];
        e->name = nano_xstrdup(name);
    }
    if (e == NULL) { /* full: the entry closest to expiry goes */
        e = &p->dns[0];
        for (int i = 1; i < p->n_dns; i++)
            if (p->dns[i].expires < e->expires)
                e = &p->dns[i];
        free(e->name);
        e->name = nano_xstrdup(name);
    }
    e->n = 0;
    for (; ai != NULL && e->n < H1_MAX_ADDRS; ai = ai->ai_next)
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(e->a[0]))
            memcpy(&e->a[e->n++], ai->ai_addr, ai->ai_addrlen);
    e->expires = now + H1_DNS_TTL_MS;
}

static void set_addrs(h1_xfer *hx, const struct sockaddr_storage *a, int n)
{
    hx->n_addrs = n;
    hx->next_addr = 0;
    for (int i = 0; i < n; i++) {
        hx->addrs[i] = a[i];
        if (a[i].ss_family == AF_INET)
            ((struct sockaddr_in *)&hx->addrs[i])->sin_port = htons((uint16_t)hx->port);
        else
            ((struct sockaddr_in6 *)&hx->addrs[i])->sin6_port = htons((uint16_t)hx->port);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    dns_req *d = req->data;
    h1_xfer *hx = d->hx;

    atomic_fetch_sub(&g_dns_running, 1);
    if (hx != NULL) {
        dp_client *c = hx->x->c;
        hx->dns = NULL;
        if (status == 0 && res != NULL) {
            dns_store(pool_of(c), hx->name, res, uv_now(c->loop));
            dns_entry *e = dns_find(c->h1, hx->name, uv_now(c->loop));
            set_addrs(hx, e->a, e->n);
        }
        if (hx->n_addrs > 0) {
            connect_next(hx);
        } else {
            char why[256];
            snprintf(why, sizeof why, "could not resolve host %s (%s)", hx->name,
                     status != 0 ? uv_strerror(status) : "no address");
            conn_failed(hx, DP_XFER_DNS, why);
        }
        dispatch_if_ready(c);
    }
    uv_freeaddrinfo(res);
    free(d);
}

/* --- the request ------------------------------------------------------------------------ */

/* "http://host[:port]/path?query#fragment" -> hx's key, name, port and the request target.
 * false: not one this transport takes (another scheme, user info, odd bytes). */
static bool parse_url(h1_xfer *hx, const char *url, const char **target, size_t *target_len,
                      const char **authority, size_t *authority_len)
{
    if (strncmp(url, "http://", 7) != 0)
        return false;
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    const char *host = a, *port_at = NULL;
    size_t hlen;

    if (alen == 0 || memchr(a, '@', alen) != NULL)
        return false;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (close == NULL)
            return false;
        host = a + 1;
        hlen = (size_t)(close - host);
        if (close + 1 < a + alen) {
            if (close[1] != ':')
                return false;
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        hlen = colon != NULL ? (size_t)(colon - a) : alen;
        port_at = colon != NULL ? colon + 1 : NULL;
    }
    unsigned port = 80;
    if (port_at != NULL && port_at < a + alen) {
        port = 0;
        for (const char *q = port_at; q < a + alen; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return false;
            port = port * 10 + (unsigned)(*q - '0');
        }
    }
    if (hlen == 0 || hlen > 253 || port == 0 || port > 65535)
        return false;
    const char *t = a + alen;
    size_t tlen = strcspn(t, "#");
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7f)
            return false;
    hx->name = nano_xstrndup(host, hlen);
    hx->port = port;
    size_t klen = hlen + 8;
    hx->key = nano_xmalloc(klen);
    snprintf(hx->key, klen, "%s:%u", hx->name, port);
    *target = t;
    *target_len = tlen;
    *authority = a;
    *authority_len = alen;
    return true;
}

static void build_head(h1_xfer *hx, const dp_xfer_spec *spec, const char *target, size_t tlen,
                       const char *authority, size_t alen)
{
    nano_buf b = NANO_BUF_INIT;

    nano_buf_append_str(&b, spec->method);
    nano_buf_append(&b, " ", 1);
    if (tlen == 0 || target[0] != '/')
        nano_buf_append(&b, "/", 1); /* "http://h" and "http://h?q" */
    nano_buf_append(&b, target, tlen);
    nano_buf_append(&b, " HTTP/1.1\r\nHost: ", 17);
    nano_buf_append(&b, authority, alen);
    nano_buf_append(&b, "\r\n", 2);
    for (size_t i = 0; i < spec->n_headers; i++) {
        nano_buf_append_str(&b, spec->headers[i]);
        nano_buf_append(&b, "\r\n", 2);
    }
    if (spec->body == DP_XFER_BODY_SIZED) {
        nano_buf_appendf(&b, "Content-Length: %llu\r\n", (unsigned long long)spec->body_len);
    } else if (spec->body == DP_XFER_BODY_STREAM) {
        nano_buf_append_str(&b, "Transfer-Encoding: chunked\r\n");
        hx->is_chunked = true;
    } else if (strcmp(spec->method, "POST") == 0 || strcmp(spec->method, "PUT") == 0) {
        /* Fetch says so for a POST or PUT without a body */
        nano_buf_append_str(&b, "Content-Length: 0\r\n");
    }
    nano_buf_append(&b, "\r\n", 2);
    hx->head = b.data;
    hx->head_len = b.len;
}

/* --- ends ------------------------------------------------------------------------------- */

/* The response ended (hx->is_complete): the connection goes back to the pool when it may
 * serve another request, and the transfer is done. */
static void complete(h1_xfer *hx)
{
    h1_conn *k = hx->conn;
    dp_xfer *x = hx->x;

    uv_timer_stop(&hx->timer);
    if (k != NULL) {
        hx->conn = NULL;
        /* A response that came before the whole upload went leaves the rest unsent: the
         * connection is out of step with HTTP's framing (and a write still in flight would
         * report to the next transfer on it). */
        bool sent_all = x->body_kind == DP_XFER_NO_BODY ||
                        (hx->is_send_done && hx->writes_pending == 0);
        if (hx->is_reusable && sent_all && !x->c->is_closing)
            pool_put(k);
        else
            conn_close(k);
    }
    dp_xfer__finish(x, DP_XFER_OK, NULL);
}

static void on_deferred_failure(uv_timer_t *t)
{
    h1_xfer *hx = t->data;
    dp_client *c = hx->c;
    dp_xfer__finish(hx->x, hx->deferred, hx->deferred_detail);
    dispatch_if_ready(c);
}

static void conn_failed(h1_xfer *hx, dp_xfer_error e, const char *detail)
{
    uv_timer_stop(&hx->timer);
    if (hx->conn != NULL)
        conn_close(hx->conn);
    hx->conn = NULL;
    hx->is_connecting = false;
    if (!hx->x->is_running)
        return;
    if (hx->is_starting) {
        /* A transfer never ends inside dp_xfer_start (nor does curl's): its owner reads
         * the outcome from the hooks, which run from the loop. */
        hx->deferred = e;
        snprintf(hx->deferred_detail, sizeof hx->deferred_detail, "%s", detail);
        uv_timer_start(&hx->timer, on_deferred_failure, 0, 0);
        return;
    }
    dp_xfer__finish(hx->x, e, detail);
}

/* Can the request go again on a fresh connection? Only when the one that failed was reused
 * (a server may close an idle connection as the request leaves), nothing of the response
 * came, and the body can be sent again. */
static bool can_retry(h1_xfer *hx)
{
    dp_xfer *x = hx->x;
    if (hx->is_retried || hx->got_bytes || hx->conn == NULL || hx->conn->n_requests < 2)
        return false;
    if (x->body_kind == DP_XFER_NO_BODY)
        return true;
    return x->is_rewindable && x->sent == NULL;
}

static void retry(h1_xfer *hx)
{
    dp_xfer *x = hx->x;

    conn_close(hx->conn);
    hx->conn = NULL;
    hx->is_retried = true;
    hx->no_reuse = true;
    hx->writes_pending = 0;
    hx->is_send_done = false;
    x->send_queued = 0;
    for (send_piece *pc = x->pieces; pc != NULL; pc = pc->next) {
        pc->off = 0;
        x->send_queued += pc->len;
    }
    hx->next_addr = 0;
    connect_next(hx);
}

static void on_timer(uv_timer_t *t)
{
    h1_xfer *hx = t->data;
    char why[160];
    if (hx->is_connecting)
        snprintf(why, sizeof why, "connecting to %s timed out after %llu ms", hx->key,
                 (unsigned long long)hx->connect_timeout_ms);
    else
        snprintf(why, sizeof why, "the transfer timed out after %llu ms",
                 (unsigned long long)hx->total_timeout_ms);
    dp_client *c = hx->x->c;
    conn_failed(hx, DP_XFER_TIMEOUT, why);
    dispatch_if_ready(c);
}

/* Arms the timer for the nearer of the connect and total deadlines. */
static void arm_timer(h1_xfer *hx)
{
    uint64_t now = uv_now(hx->x->c->loop), due = 0;
    if (hx->total_timeout_ms > 0)
        due = hx->started + hx->total_timeout_ms;
    if (hx->is_connecting && hx->connect_timeout_ms > 0) {
        uint64_t c = now + hx->connect_timeout_ms;
        if (due == 0 || c < due)
            due = c;
    }
    if (due == 0)
        uv_timer_stop(&hx->timer);
    else
        uv_timer_start(&hx->timer, on_timer, due > now ? due - now : 0, 0);
}

/* --- connections ------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    h1_conn *k = h->data;
    (void)suggested;
    *buf = uv_buf_init(k->c->h1->rbuf, H1_READ);
}

static void on_connect(uv_connect_t *req, int status)
{
    h1_conn *k = req->data;
    h1_xfer *hx = k->hx;

    if (k->is_closed || hx == NULL)
        return; /* closed meanwhile (the close ends it) */
    dp_client *c = hx->x->c;
    if (status < 0) {
        hx->last_error = status;
        hx->conn = NULL;
        conn_close(k);
        connect_next(hx);
    } else {
        k->is_connected = true;
        hx->is_connecting = false;
        arm_timer(hx);
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
        k->is_reading = true;
        send_request(hx);
    }
    dispatch_if_ready(c);
}

/* A new connection to hx's next allowed address; when none is left, the transfer fails. */
static void connect_next(h1_xfer *hx)
{
    dp_xfer *x = hx->x;
    dp_client *c = x->c;

    if (!hx->no_reuse) {
        h1_conn *k = pool_take(hx);
        if (k != NULL) {
            hx->conn = k;
            k->hx = hx;
            send_request(hx);
            return;
        }
    }
    while (hx->next_addr < hx->n_addrs) {
        struct sockaddr *a = (struct sockaddr *)&hx->addrs[hx->next_addr++];
        if (!dp_xfer__check_address(x, a))
            continue;
        hx->any_allowed = true;
        h1_conn *k = nano_xcalloc(1, sizeof(*k));
        k->c = c;
        k->key = nano_xstrdup(hx->key);
        memcpy(&k->peer, a,
               a->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
        uv_tcp_init(c->loop, &k->tcp);
        k->tcp.data = k;
        k->connect.data = k;
        c->n_handles++;
        uv_tcp_nodelay(&k->tcp, 1);
        uv_tcp_keepalive(&k->tcp, 1, 60);
        int rc = uv_tcp_connect(&k->connect, &k->tcp, a, on_connect);
        if (rc != 0) {
            hx->last_error = rc;
            conn_close(k);
            continue;
        }
        k->hx = hx;
        hx->conn = k;
        hx->got_bytes = false;
        hx->is_connecting = true;
        arm_timer(hx);
        return;
    }
    char why[320];
    if (!hx->any_allowed && x->deny_reason[0] != '\0') {
        conn_failed(hx, DP_XFER_DENIED, x->deny_reason);
        return;
    }
    snprintf(why, sizeof why, "could not connect to %s: %s", hx->key,
             hx->last_error != 0 ? uv_strerror(hx->last_error) : "no address");
    conn_failed(hx, DP_XFER_REFUSED, why);
}

/* --- writing ---------------------------------------------------------------------------- */

static void piece_written(h1_xfer *hx, send_piece *pc)
{
    dp_xfer *x = hx->x;
    if (pc == NULL)
        return;
    x->send_queued -= pc->len;
    if (!x->is_rewindable)
        dp_xfer__piece_sent(x, pc); /* pieces go, and are written, in order: pc is first */
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = req->data;
    h1_conn *k = w->conn;
    h1_xfer *hx = k->hx;

    if (k->is_closed || hx == NULL) {
        free(w);
        return;
    }
    dp_client *c = hx->x->c;
    hx->writes_pending--;
    if (status < 0) {
        free(w);
        if (can_retry(hx)) {
            retry(hx);
        } else {
            char why[160];
            snprintf(why, sizeof why, "sending the request failed: %s", uv_strerror(status));
            conn_failed(hx, DP_XFER_RESET, why);
        }
        dispatch_if_ready(c);
        return;
    }
    piece_written(hx, w->pc);
    free(w);
    pump_send(hx);
    dispatch_if_ready(c);
}

/* Writes bufs (what uv_try_write leaves of them through a write request); 0 or libuv's error.
 * *done: everything went at once (pc is written). */
static int write_bufs(h1_xfer *hx, uv_buf_t *bufs, unsigned n, send_piece *pc, const char *frame,
                      bool *done)
{
    h1_conn *k = hx->conn;
    size_t total = 0;

    *done = false;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    int wrote = uv_try_write((uv_stream_t *)&k->tcp, bufs, n);
    if (wrote == (int)total) {
        *done = true;
        return 0;
    }
    if (wrote < 0 && wrote != UV_EAGAIN)
        return wrote;
    size_t skip = wrote > 0 ? (size_t)wrote : 0;
    unsigned first = 0;
    while (first < n && skip >= bufs[first].len)
        skip -= bufs[first++].len;
    bufs[first].base += skip;
    bufs[first].len -= skip;
    write_req *w = nano_xcalloc(1, sizeof(*w));
    w->req.data = w;
    w->conn = k;
    w->pc = pc;
    if (frame != NULL) { /* the size line lives in the request until it is written */
        size_t flen = strlen(frame);
        memcpy(w->frame, frame, flen);
        for (unsigned i = first; i < n; i++)
            if (bufs[i].base >= frame && bufs[i].base < frame + flen)
                bufs[i].base = w->frame + (bufs[i].base - frame);
    }
    int rc = uv_write(&w->req, (uv_stream_t *)&k->tcp, bufs + first, n - first, on_written);
    if (rc != 0) {
        free(w);
        return rc;
    }
    hx->writes_pending++;
    return 0;
}

/* Writes every queued piece not written yet; at the body's end, the last chunk; with nothing
 * left to write and the body open, asks the owner for more. */
static void pump_send(h1_xfer *hx)
{
    dp_xfer *x = hx->x;
    h1_conn *k = hx->conn;

    if (k == NULL || !k->is_connected || x->body_kind == DP_XFER_NO_BODY || hx->is_send_done)
        return;
    for (;;) {
        send_piece *pc = x->pieces;
        while (pc != NULL && pc->off == pc->len)
            pc = pc->next;
        if (pc == NULL)
            break;
        char frame[24];
        uv_buf_t bufs[3];
        unsigned n = 0;
        if (hx->is_chunked) {
            if (pc->len == 0) { /* an empty piece would be the last chunk */
                pc->off = pc->len;
                piece_written(hx, pc);
                continue;
            }
            snprintf(frame, sizeof frame, "%zx\r\n", pc->len);
            bufs[n++] = uv_buf_init(frame, (unsigned)strlen(frame));
        }
        bufs[n++] = uv_buf_init((char *)pc->p, (unsigned)pc->len);
        if (hx->is_chunked)
            bufs[n++] = uv_buf_init("\r\n", 2);
        pc->off = pc->len;
        bool done;
        int rc = write_bufs(hx, bufs, n, pc, hx->is_chunked ? frame : NULL, &done);
        if (rc != 0) {
            char why[160];
            snprintf(why, sizeof why, "sending the request body failed: %s", uv_strerror(rc));
            conn_failed(hx, DP_XFER_RESET, why);
            return;
        }
        if (done)
            piece_written(hx, pc);
    }
    if (x->is_send_ended) {
        if (!x->is_send_ok) {
            conn_failed(hx, DP_XFER_BODY, "the request body's source failed");
            return;
        }
        if (hx->is_chunked) {
            uv_buf_t last = uv_buf_init("0\r\n\r\n", 5);
            bool done;
            int rc = write_bufs(hx, &last, 1, NULL, NULL, &done);
            if (rc != 0) {
                conn_failed(hx, DP_XFER_RESET, "sending the request body failed");
                return;
            }
        }
        hx->is_send_done = true;
    } else if (hx->writes_pending == 0 && !x->is_send_paused) {
        x->is_send_paused = true;
        x->ev_send = true;
        dp_xfer__mark_ready(x);
    }
}

/* The head, then whatever of the body is queued, on hx->conn (connected). */
static void send_request(h1_xfer *hx)
{
    dp_xfer *x = hx->x;
    h1_conn *k = hx->conn;

    llhttp_init(&k->parser, HTTP_RESPONSE, &g_settings);
    k->parser.data = k;
    k->n_requests++;
    hx->got_bytes = false;
    hx->head_bytes = 0;
    hx->line_len = 0;
    x->status = 0;
    x->lines_len = 0;
    uv_buf_t buf = uv_buf_init(hx->head, (unsigned)hx->head_len);
    bool done;
    int rc = write_bufs(hx, &buf, 1, NULL, NULL, &done);
    if (rc != 0) {
        if (can_retry(hx)) {
            retry(hx);
            return;
        }
        char why[160];
        snprintf(why, sizeof why, "sending the request failed: %s", uv_strerror(rc));
        conn_failed(hx, DP_XFER_RESET, why);
        return;
    }
    pump_send(hx);
}

/* --- reading ---------------------------------------------------------------------------- */

static h1_xfer *parser_xfer(llhttp_t *p)
{
    return ((h1_conn *)p->data)->hx;
}

static int line_add(h1_xfer *hx, const char *at, size_t n)
{
    hx->head_bytes += n;
    if (hx->head_bytes > DP_XFER_MAX_HEAD) {
        hx->is_head_too_large = true;
        return -1;
    }
    if (hx->line_len + n > hx->line_cap) {
        size_t cap = hx->line_cap ? hx->line_cap * 2 : 256;
        while (cap < hx->line_len + n)
            cap *= 2;
        char *grown = nano_realloc(hx->line, cap);
        if (grown == NULL)
            return -1;
        hx->line = grown;
        hx->line_cap = cap;
    }
    memcpy(hx->line + hx->line_len, at, n);
    hx->line_len += n;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
    return line_add(parser_xfer(p), at, n) == 0 ? 0 : HPE_USER;
}

static int on_status_complete(llhttp_t *p)
{
    h1_xfer *hx = parser_xfer(p);
    dp_xfer__set_reason(hx->x, hx->line, hx->line_len);
    hx->line_len = 0;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    h1_xfer *hx = parser_xfer(p);
    if (hx->x->is_head_done)
        return 0; /* trailers: not exposed */
    return line_add(hx, at, n) == 0 ? 0 : HPE_USER;
}

static int on_header_field_complete(llhttp_t *p)
{
    h1_xfer *hx = parser_xfer(p);
    if (hx->x->is_head_done)
        return 0;
    return line_add(hx, ": ", 2) == 0 ? 0 : HPE_USER;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    return on_header_field(p, at, n);
}

static int on_header_value_complete(llhttp_t *p)
{
    h1_xfer *hx = parser_xfer(p);
    if (hx->x->is_head_done)
        return 0;
    int rc = dp_xfer__append_line(hx->x, hx->line, hx->line_len);
    hx->line_len = 0;
    hx->head_bytes += 2; /* the CRLF */
    return rc == 0 ? 0 : HPE_USER;
}

static int on_headers_complete(llhttp_t *p)
{
    h1_xfer *hx = parser_xfer(p);
    dp_xfer *x = hx->x;
    int status = p->status_code;

    if (status >= 100 && status < 200 && status != 101) {
        /* an interim response (100 Continue, 103 Early Hints): wait for the final one */
        hx->is_interim = true;
        x->lines_len = 0;
        return 0;
    }
    x->status = status;
    x->http_version = p->http_major * 10 + p->http_minor;
    x->is_head_done = true;
    x->ev_head = true;
    dp_xfer__mark_ready(x);
    /* A small body of known length gets a buffer its size at once. */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0 &&
        p->content_length <= DP_XFER_RECV_HIGH && x->recv == NULL) {
        x->recv = nano_malloc(p->content_length);
        x->recv_cap = x->recv != NULL ? p->content_length : 0;
    }
    return hx->is_head_req ? 1 : 0; /* 1: no body follows */
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    h1_xfer *hx = parser_xfer(p);
    return dp_xfer__recv_append(hx->x, at, n) == 0 ? 0 : HPE_USER;
}

static int on_message_complete(llhttp_t *p)
{
    h1_xfer *hx = parser_xfer(p);
    if (hx->is_interim) {
        hx->is_interim = false;
        return 0; /* the final response follows */
    }
    hx->is_complete = true;
    hx->is_reusable = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED; /* anything after it is not ours */
}

/* Every worker thread's parsers share these (read only; llhttp_settings_init only zeroes). */
static const llhttp_settings_t g_settings = {
    .on_status = on_status,
    .on_status_complete = on_status_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Bytes (or the end) on a connection whose transfer waits for its response. */
static void on_response_bytes(h1_xfer *hx, const char *p, ssize_t nread)
{
    h1_conn *k = hx->conn;
    dp_xfer *x = hx->x;
    char why[200];

    if (hx->is_complete) { /* bytes or an end after the response */
        hx->is_reusable = false;
        return;
    }
    if (nread < 0) {
        if (can_retry(hx)) {
            retry(hx);
            return;
        }
        llhttp_errno_t fin = nread == UV_EOF && hx->got_bytes ? llhttp_finish(&k->parser) : HPE_OK;
        if ((fin == HPE_OK || fin == HPE_PAUSED) && hx->is_complete) {
            hx->is_reusable = false; /* a body the close delimited */
            complete(hx);
            return;
        }
        if (!hx->got_bytes)
            snprintf(why, sizeof why, "the server closed the connection without a response (%s)",
                     uv_strerror((int)nread));
        else
            snprintf(why, sizeof why, "the connection ended before the response did (%s)",
                     uv_strerror((int)nread));
        conn_failed(hx, DP_XFER_RESET, why);
        return;
    }
    hx->got_bytes = true;
    llhttp_errno_t e = llhttp_execute(&k->parser, p, (size_t)nread);
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        if (e == HPE_PAUSED_UPGRADE || llhttp_get_error_pos(&k->parser) != p + nread)
            hx->is_reusable = false; /* bytes past the response: the stream is out of step */
        hx->is_complete = true;
        complete(hx);
        return;
    }
    if (e == HPE_USER && hx->is_head_too_large) {
        snprintf(why, sizeof why, "the response head is larger than %u bytes", DP_XFER_MAX_HEAD);
        conn_failed(hx, DP_XFER_TOO_LARGE, why);
        return;
    }
    if (e != HPE_OK) {
        if (e == HPE_USER)
            snprintf(why, sizeof why, "out of memory for the response");
        else
            snprintf(why, sizeof why, "invalid HTTP response: %s",
                     llhttp_get_error_reason(&k->parser));
        conn_failed(hx, e == HPE_USER ? DP_XFER_OTHER : DP_XFER_PROTOCOL, why);
        return;
    }
    if (x->recv_len >= DP_XFER_RECV_HIGH && k->is_reading) {
        uv_read_stop((uv_stream_t *)&k->tcp); /* until the owner takes the body */
        k->is_reading = false;
        x->is_recv_paused = true;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    h1_conn *k = s->data;
    h1_xfer *hx = k->hx;

    if (nread == 0 || k->is_closed)
        return;
    if (hx == NULL) { /* pooled: the server closed it, or sent what nobody asked for */
        conn_close(k);
        return;
    }
    dp_client *c = hx->x->c;
    on_response_bytes(hx, buf->base, nread);
    dispatch_if_ready(c);
}

/* --- transfers (client_int.h) ----------------------------------------------------------- */

static void on_xfer_timer_closed(uv_handle_t *h)
{
    h1_xfer *hx = h->data;
    dp_client *c = hx->c;
    free(hx);
    dp_client__handle_closed(c);
}

int h1_start(dp_xfer *x, const dp_xfer_spec *spec, char *why, size_t why_len)
{
    dp_client *c = x->c;
    h1_xfer *hx = nano_xcalloc(1, sizeof(*hx));
    const char *target, *authority;
    size_t tlen, alen;
    struct sockaddr_storage lit[1];
    int n_lit = 0;

    (void)why;
    (void)why_len;
    hx->x = x;
    hx->c = c;
    if (!parse_url(hx, spec->url, &target, &tlen, &authority, &alen)) {
        free(hx->name);
        free(hx->key);
        free(hx);
        return 1;
    }
    memset(lit, 0, sizeof lit);
    if (inet_pton(AF_INET, hx->name, &((struct sockaddr_in *)&lit[0])->sin_addr) == 1) {
        lit[0].ss_family = AF_INET;
        n_lit = 1;
    } else if (inet_pton(AF_INET6, hx->name, &((struct sockaddr_in6 *)&lit[0])->sin6_addr) == 1) {
        lit[0].ss_family = AF_INET6;
        n_lit = 1;
    }
    h1_pool *p = pool_of(c);
    uint64_t now = uv_now(c->loop);
    dns_entry *cached = n_lit == 0 ? dns_find(p, hx->name, now) : NULL;
    if (n_lit == 0 && cached == NULL) {
        /* A lookup to run: only within this transport's share of libuv's pool. */
        if (atomic_fetch_add(&g_dns_running, 1) >= dns_running_max()) {
            atomic_fetch_sub(&g_dns_running, 1);
            free(hx->name);
            free(hx->key);
            free(hx);
            return 1;
        }
    }
    x->h1 = hx;
    uv_timer_init(c->loop, &hx->timer);
    hx->timer.data = hx;
    c->n_handles++;
    hx->is_head_req = strcmp(spec->method, "HEAD") == 0;
    hx->connect_timeout_ms = spec->connect_timeout_ms > 0 ? spec->connect_timeout_ms : 300000;
    hx->total_timeout_ms = spec->total_timeout_ms;
    hx->started = now;
    build_head(hx, spec, target, tlen, authority, alen);
    hx->is_starting = true;
    if (n_lit > 0 || cached != NULL) {
        set_addrs(hx, n_lit > 0 ? lit : cached->a, n_lit > 0 ? n_lit : cached->n);
        connect_next(hx);
    } else {
        dns_req *d = nano_xcalloc(1, sizeof(*d));
        d->hx = hx;
        d->req.data = d;
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
        hx->dns = d;
        hx->is_connecting = true;
        arm_timer(hx);
        int rc = uv_getaddrinfo(c->loop, &d->req, on_resolved, hx->name, NULL, &hints);
        if (rc != 0) {
            atomic_fetch_sub(&g_dns_running, 1);
            hx->dns = NULL;
            free(d);
            char msg[256];
            snprintf(msg, sizeof msg, "could not resolve host %s (%s)", hx->name, uv_strerror(rc));
            conn_failed(hx, DP_XFER_DNS, msg);
        }
    }
    hx->is_starting = false;
    return 0;
}

void h1_stop(dp_xfer *x)
{
    h1_xfer *hx = x->h1;
    uv_timer_stop(&hx->timer);
    if (hx->conn != NULL)
        conn_close(hx->conn); /* a response cut short: the connection is out of step */
    hx->conn = NULL;
}

void h1_resume(dp_xfer *x)
{
    h1_xfer *hx = x->h1;
    h1_conn *k = hx->conn;

    if (k != NULL && k->is_connected && !k->is_reading && x->recv_len < DP_XFER_RECV_HIGH) {
        uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
        k->is_reading = true;
        x->is_recv_paused = false;
    }
    pump_send(hx);
    if (x->is_ready)
        dp_client__kick(x->c);
}

void h1_release(dp_xfer *x)
{
    h1_xfer *hx = x->h1;

    x->h1 = NULL;
    hx->x = NULL;
    if (hx->conn != NULL)
        conn_close(hx->conn);
    if (hx->dns != NULL) {
        hx->dns->hx = NULL; /* its callback frees it */
        uv_cancel((uv_req_t *)&hx->dns->req);
    }
    free(hx->key);
    free(hx->name);
    free(hx->head);
    free(hx->line);
    hx->line = hx->head = hx->key = hx->name = NULL;
    uv_close((uv_handle_t *)&hx->timer, on_xfer_timer_closed);
}
