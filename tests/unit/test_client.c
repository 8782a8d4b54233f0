/* test_client.c: dataplane/client (libcurl multi on a libuv loop) against a small blocking
 * HTTP server on 127.0.0.1 in a thread of this process: heads, bodies taken while the
 * transfer pauses, uploads in pieces, transfers freed from inside their own hooks, the
 * address check, refused ports, closing the client with transfers alive, and pooled
 * connections: reused, closed by the server while idle, or sent bytes nobody asked for. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "client/client.h"

/* --- the server: one thread, one connection at a time, GET /small, /big, /hang; POST /count */

#define BIG_BYTES (1u << 20)

typedef struct server {
    int fd;
    int port;
    pthread_t thread;
    int n_accepted; /* connections, read with __atomic */
} server;

static size_t read_head(int c, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t k = recv(c, buf + n, 1, 0);
        if (k <= 0)
            return 0;
        n++;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    buf[n] = '\0';
    return n;
}

static void write_all(int c, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t k = send(c, p, len, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        p += k;
        len -= (size_t)k;
    }
}

/* A chunked request body: its total length. */
static size_t read_chunked(int c)
{
    size_t total = 0;
    char line[64];
    for (;;) {
        size_t n = 0;
        while (n + 1 < sizeof line) {
            if (recv(c, line + n, 1, 0) <= 0)
                return total;
            if (line[n++] == '\n')
                break;
        }
        line[n] = '\0';
        size_t size = strtoul(line, NULL, 16);
        char skip[4096];
        size_t left = size + 2; /* data and CRLF */
        while (left > 0) {
            ssize_t k = recv(c, skip, left < sizeof skip ? left : sizeof skip, 0);
            if (k <= 0)
                return total;
            left -= (size_t)k;
        }
        if (size == 0)
            return total;
        total += size;
    }
}

static void *serve(void *arg)
{
    server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        __atomic_add_fetch(&s->n_accepted, 1, __ATOMIC_SEQ_CST);
        char head[8192];
        while (read_head(c, head, sizeof head) > 0) {
            char out[256];
            if (strncmp(head, "GET /small ", 11) == 0) {
                const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test:  v  \r\n"
                                "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello";
                write_all(c, r, strlen(r));
            } else if (strncmp(head, "GET /small-then-close ", 22) == 0) {
                /* kept alive as far as the client knows, then closed while idle */
                const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                write_all(c, r, strlen(r));
                usleep(20000);
                break;
            } else if (strncmp(head, "GET /small-then-junk ", 21) == 0) {
                /* bytes after the response, on a connection the client keeps */
                const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                write_all(c, r, strlen(r));
                usleep(20000);
                write_all(c, "JUNK", 4);
            } else if (strncmp(head, "GET /big ", 9) == 0) {
                int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %u\r\n\r\n",
                                 BIG_BYTES);
                write_all(c, out, (size_t)n);
                static char block[65536];
                memset(block, 'x', sizeof block);
                for (unsigned sent = 0; sent < BIG_BYTES; sent += sizeof block)
                    write_all(c, block, sizeof block);
            } else if (strncmp(head, "POST /count ", 12) == 0) {
                size_t total = read_chunked(c);
                char body[32];
                int bn = snprintf(body, sizeof body, "%zu", total);
                int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
                                 bn, body);
                write_all(c, out, (size_t)n);
            } else if (strncmp(head, "GET /small-then-drop ", 21) == 0) {
                /* kept alive, but the next request on it is read and dropped unanswered (a
                 * server closing an idle connection as the request arrives) */
                const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
                write_all(c, r, strlen(r));
                read_head(c, head, sizeof head);
                break;
            } else if (strncmp(head, "GET /big-head ", 14) == 0) {
                /* 300 KiB of header lines: over DP_XFER_MAX_HEAD */
                write_all(c, "HTTP/1.1 200 OK\r\n", 17);
                char line[1026];
                memset(line, 'v', sizeof line);
                memcpy(line, "X-Big: ", 7);
                memcpy(line + 1024, "\r\n", 2);
                for (int i = 0; i < 300; i++)
                    write_all(c, line, sizeof line);
                write_all(c, "Content-Length: 0\r\n\r\n", 21);
            } else if (strncmp(head, "GET /chunked ", 13) == 0) {
                /* chunked, with a trailer, after a 100 Continue nobody asked for */
                const char *r = "HTTP/1.1 100 Continue\r\n\r\n"
                                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n";
                write_all(c, r, strlen(r));
            } else if (strncmp(head, "GET /nul-header ", 16) == 0) {
                /* a NUL inside a header value: the head lines are NUL-separated */
                static const char r[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n";
                write_all(c, r, sizeof r - 1);
                break;
            } else if (strncmp(head, "GET /hang ", 10) == 0) {
                char b;
                while (recv(c, &b, 1, 0) > 0) /* until the client lets go */
                    ;
                break;
            } else {
                const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                write_all(c, r, strlen(r));
            }
        }
        close(c);
    }
}

static void server_start(server *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    s->n_accepted = 0;
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
}

/* --- a transfer's owner ------------------------------------------------------------- */

typedef struct owner {
    dp_xfer *x;
    bool take_on_data; /* take body bytes as they come */
    bool free_on_head; /* free the transfer from inside on_head */
    bool deny;         /* the address check refuses */
    int n_head, n_data, n_done, n_send;
    dp_xfer_error error;
    char detail[512];
    size_t got;
    size_t most_buffered;
    const char *piece; /* upload: the piece to send each time one is wanted */
    int pieces_left;
} owner;

static void take(owner *o)
{
    size_t len = 0;
    void *p = dp_xfer_take(o->x, &len);
    o->got += len;
    free(p);
}

static void on_head(void *ud)
{
    owner *o = ud;
    o->n_head++;
    if (o->free_on_head) {
        dp_xfer_free(o->x);
        o->x = NULL;
    }
}

static void on_data(void *ud)
{
    owner *o = ud;
    o->n_data++;
    if (dp_xfer_buffered(o->x) > o->most_buffered)
        o->most_buffered = dp_xfer_buffered(o->x);
    if (o->take_on_data)
        take(o);
}

static void on_send_ready(void *ud)
{
    owner *o = ud;
    o->n_send++;
    if (o->pieces_left-- > 0)
        assert_int_equal(dp_xfer_send(o->x, o->piece, strlen(o->piece), NULL, NULL), 0);
    else
        dp_xfer_send_end(o->x, true);
}

static void on_done(void *ud, dp_xfer_error error, const char *detail)
{
    owner *o = ud;
    o->n_done++;
    o->error = error;
    snprintf(o->detail, sizeof o->detail, "%s", detail);
}

static bool check_address(void *ud, const char *host, const struct sockaddr *addr, char *why,
                          size_t why_len)
{
    owner *o = ud;
    (void)host;
    (void)addr;
    if (!o->deny)
        return true;
    snprintf(why, why_len, "denied by the test");
    return false;
}

static uint64_t g_total_timeout_ms; /* for the next start */

static dp_xfer *start(dp_client *c, owner *o, const char *method, const char *url,
                      dp_xfer_body body)
{
    dp_xfer_hooks hooks = {on_head, on_data, on_send_ready, on_done, check_address, o};
    dp_xfer_spec spec = {.method = method,
                         .url = url,
                         .host = strstr(url, "//localhost") != NULL ? "localhost" : "127.0.0.1",
                         .body = body,
                         .connect_timeout_ms = 5000,
                         .total_timeout_ms = g_total_timeout_ms};
    char why[128];
    assert_int_equal(dp_xfer_start(c, &spec, &hooks, &o->x, why, sizeof why), 0);
    return o->x;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until done(o) or 10 s (a ticking timer wakes it, so a transfer that stalls
 * fails the test instead of hanging it). */
static void run_until(uv_loop_t *loop, owner *o, bool (*done)(owner *))
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 100, 100);
    uint64_t deadline = uv_hrtime() + 10000000000ull;
    while (!done(o) && uv_hrtime() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_true(done(o));
}

static bool is_done(owner *o)
{
    return o->n_done > 0;
}
static bool has_head(owner *o)
{
    return o->n_head > 0;
}

static void finish(uv_loop_t *loop, dp_client *c)
{
    dp_client_close(c);
    while (uv_run(loop, UV_RUN_NOWAIT) != 0)
        ;
    assert_int_equal(uv_loop_close(loop), 0);
}

/* A server, a loop and a client on it, for one test. */
typedef struct rig {
    server s;
    uv_loop_t loop;
    dp_client *c;
    char url[64];
} rig;

static void rig_start(rig *r)
{
    server_start(&r->s);
    uv_loop_init(&r->loop);
    assert_int_equal(dp_client_new(&r->loop, &r->c), 0);
}

static const char *rig_url(rig *r, const char *path)
{
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%d%s", r->s.port, path);
    return r->url;
}

static void rig_stop(rig *r)
{
    finish(&r->loop, r->c);
    server_stop(&r->s);
}

/* "Name:  v  " -> "Name: v" (the whitespace around a value is not part of it). */
static void normalize_line(const char *line, char *out, size_t cap)
{
    const char *colon = strchr(line, ':');
    assert_non_null(colon);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vlen = strlen(v);
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    snprintf(out, cap, "%.*s: %.*s", (int)(colon - line), line, (int)vlen, v);
}

/* --- tests ---------------------------------------------------------------------------- */

static void small_get_head_and_body(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    const char *url = rig_url(&r, "/small");
    owner o = {.take_on_data = true};
    start(r.c, &o, "GET", url, DP_XFER_NO_BODY);
    run_until(&r.loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_OK);
    assert_int_equal(dp_xfer_status(o.x), 200);
    assert_string_equal(dp_xfer_reason(o.x), "OK");
    size_t len;
    const char *lines = dp_xfer_head_lines(o.x, &len);
    /* "Name: value" lines as received (without CRLF), NUL-separated, in order, repeated names
     * kept apart; whitespace around a value is the reader's to trim */
    const char *want[] = {"Content-Length: 5", "X-Test: v", "Set-Cookie: a=1", "Set-Cookie: b=2"};
    size_t at = 0;
    for (size_t i = 0; i < 4; i++) {
        assert_true(at < len);
        char norm[64];
        normalize_line(lines + at, norm, sizeof norm);
        assert_string_equal(norm, want[i]);
        at += strlen(lines + at) + 1;
    }
    assert_int_equal(at, len);
    take(&o);
    assert_int_equal(o.got, 5);
    assert_int_equal(dp_client_n_xfers(r.c), 1);
    dp_xfer_free(o.x);
    assert_int_equal(dp_client_n_xfers(r.c), 0);
    rig_stop(&r);
}

static bool got_big(owner *o)
{
    return o->got == BIG_BYTES && o->n_done > 0;
}

/* Nobody takes the body for a while: the buffer stops near its mark (the transfer pauses),
 * then everything arrives as it is taken. */
static void a_body_nobody_takes_pauses_the_transfer(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    const char *url = rig_url(&r, "/big");
    owner o = {0};
    start(r.c, &o, "GET", url, DP_XFER_NO_BODY);
    run_until(&r.loop, &o, has_head);
    for (int i = 0; i < 50; i++) /* plenty of turns for 1 MiB to arrive if nothing paused it */
        uv_run(&r.loop, UV_RUN_NOWAIT), usleep(2000);
    assert_true(dp_xfer_buffered(o.x) >= DP_XFER_RECV_HIGH);
    assert_true(dp_xfer_buffered(o.x) <= DP_XFER_RECV_HIGH + 64 * 1024);
    assert_false(dp_xfer_is_done(o.x));
    o.take_on_data = true;
    take(&o);
    run_until(&r.loop, &o, got_big);
    assert_int_equal(o.error, DP_XFER_OK);
    assert_true(o.most_buffered <= DP_XFER_RECV_HIGH + 64 * 1024);
    dp_xfer_free(o.x);
    rig_stop(&r);
}

static void an_upload_in_pieces_is_sent_chunked(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    const char *url = rig_url(&r, "/count");
    owner o = {.piece = "0123456789", .pieces_left = 100};
    start(r.c, &o, "POST", url, DP_XFER_BODY_STREAM);
    run_until(&r.loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_OK);
    assert_int_equal(dp_xfer_status(o.x), 200);
    assert_int_equal(o.n_send, 101); /* each piece asked for, then the end */
    size_t len = 0;
    char *body = dp_xfer_take(o.x, &len);
    assert_true(body != NULL);
    assert_int_equal(len, 4);
    assert_memory_equal(body, "1000", 4);
    free(body);
    dp_xfer_free(o.x);
    rig_stop(&r);
}

/* A hook frees its own transfer (a fetch aborted from JS the head woke): no further hook,
 * nothing used after it is freed (ASan watches). */
static void a_transfer_freed_inside_its_hook(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    const char *url = rig_url(&r, "/big");
    owner o = {.free_on_head = true};
    start(r.c, &o, "GET", url, DP_XFER_NO_BODY);
    run_until(&r.loop, &o, has_head);
    for (int i = 0; i < 20; i++)
        uv_run(&r.loop, UV_RUN_NOWAIT), usleep(1000);
    assert_int_equal(o.n_head, 1);
    assert_int_equal(o.n_data + o.n_done, 0);
    assert_int_equal(dp_client_n_xfers(r.c), 0);
    /* the next transfer on the same client still works */
    owner o2 = {.take_on_data = true};
    start(r.c, &o2, "GET", rig_url(&r, "/small"), DP_XFER_NO_BODY);
    run_until(&r.loop, &o2, is_done);
    assert_int_equal(o2.error, DP_XFER_OK);
    dp_xfer_free(o2.x);
    rig_stop(&r);
}

static void refused_denied_and_closed_with_transfers_alive(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    /* a port nobody listens on: take one and close it */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(probe, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&a, &alen), 0);
    close(probe);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    owner refused = {0};
    start(r.c, &refused, "GET", url, DP_XFER_NO_BODY);
    run_until(&r.loop, &refused, is_done);
    assert_int_equal(refused.error, DP_XFER_REFUSED);
    assert_true(strlen(refused.detail) > 0);
    dp_xfer_free(refused.x);

    owner denied = {.deny = true};
    start(r.c, &denied, "GET", rig_url(&r, "/small"), DP_XFER_NO_BODY);
    /* not over inside dp_xfer_start: the owner learns the outcome from its hooks (fetch's
     * error message takes the detail from on_done) */
    assert_false(dp_xfer_is_done(denied.x));
    run_until(&r.loop, &denied, is_done);
    assert_int_equal(denied.error, DP_XFER_DENIED);
    assert_string_equal(denied.detail, "denied by the test");
    dp_xfer_free(denied.x);

    /* closing the client with a transfer waiting on a silent server, and one never freed */
    owner hang = {0};
    start(r.c, &hang, "GET", rig_url(&r, "/hang"), DP_XFER_NO_BODY);
    for (int i = 0; i < 20; i++)
        uv_run(&r.loop, UV_RUN_NOWAIT), usleep(1000);
    assert_int_equal(hang.n_head + hang.n_done, 0);
    assert_int_equal(dp_client_n_xfers(r.c), 1);
    rig_stop(&r); /* the client frees the transfer too; no hook runs */
    assert_int_equal(hang.n_done, 0);
}

static int accepted(rig *r)
{
    return __atomic_load_n(&r->s.n_accepted, __ATOMIC_SEQ_CST);
}

static void get_small(rig *r, const char *path)
{
    owner o = {.take_on_data = true};
    start(r->c, &o, "GET", rig_url(r, path), DP_XFER_NO_BODY);
    run_until(&r->loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_OK);
    assert_int_equal(dp_xfer_status(o.x), 200);
    take(&o);
    assert_int_equal(o.got, 5);
    dp_xfer_free(o.x);
}

/* Loop turns in 300 ms with nothing to do but a 100 ms tick: a socket left armed with
 * nobody reading it would make this thousands. */
static int idle_turns(uv_loop_t *loop)
{
    uv_timer_t tick;
    int turns = 0;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 100, 100);
    uint64_t end = uv_hrtime() + 300000000ull;
    while (uv_hrtime() < end) {
        uv_run(loop, UV_RUN_ONCE);
        turns++;
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return turns;
}

static void transfers_one_after_another_reuse_one_connection(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    for (int i = 0; i < 5; i++)
        get_small(&r, "/small");
    assert_int_equal(accepted(&r), 1);
    rig_stop(&r);
}

/* The server closes a kept-alive connection while it sits in the pool: the loop does not
 * spin on it, and the next transfer gets a new connection. */
static void a_pooled_connection_the_server_closes(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    get_small(&r, "/small-then-close");
    assert_true(idle_turns(&r.loop) < 20);
    get_small(&r, "/small");
    assert_int_equal(accepted(&r), 2);
    rig_stop(&r);
}

/* Bytes arrive on a pooled connection between requests (a broken upstream): the loop does
 * not spin on them. curl 7.88 still reuses that connection, so the next transfer fails with
 * a protocol error (never a response made of the stray bytes), curl drops the connection,
 * and the transfer after it gets a new one. */
static void bytes_on_an_idle_pooled_connection(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    get_small(&r, "/small-then-junk");
    assert_true(idle_turns(&r.loop) < 20);
    owner o = {.take_on_data = true};
    start(r.c, &o, "GET", rig_url(&r, "/small"), DP_XFER_NO_BODY);
    run_until(&r.loop, &o, is_done);
    if (o.error == DP_XFER_OK) { /* a curl that checks pooled connections for stray bytes */
        assert_int_equal(o.got, 5);
        assert_int_equal(accepted(&r), 2);
    } else {
        assert_int_equal(o.error, DP_XFER_PROTOCOL);
        assert_int_equal(o.got, 0);
    }
    dp_xfer_free(o.x);
    get_small(&r, "/small");
    assert_true(accepted(&r) == 2);
    rig_stop(&r);
}

/* The server drops the next request on a kept-alive connection unanswered: the transfer is
 * sent once more on a fresh connection and succeeds (nothing of a response had come). */
static void a_request_the_server_drops_on_a_reused_connection_goes_again(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    get_small(&r, "/small-then-drop");
    get_small(&r, "/small");
    assert_int_equal(accepted(&r), 2);
    rig_stop(&r);
}

static void a_response_head_over_256_kib_fails(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    owner o = {.take_on_data = true};
    start(r.c, &o, "GET", rig_url(&r, "/big-head"), DP_XFER_NO_BODY);
    run_until(&r.loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_TOO_LARGE);
    assert_int_equal(o.n_head, 0);
    dp_xfer_free(o.x);
    rig_stop(&r);
}

/* A 100 Continue skipped, a chunked body put together, its trailer not among the headers. */
static void an_interim_head_and_a_chunked_body(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    owner o = {.take_on_data = true};
    start(r.c, &o, "GET", rig_url(&r, "/chunked"), DP_XFER_NO_BODY);
    run_until(&r.loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_OK);
    assert_int_equal(dp_xfer_status(o.x), 200);
    assert_int_equal(o.n_head, 1);
    assert_int_equal(o.got, 7);
    size_t len;
    const char *lines = dp_xfer_head_lines(o.x, &len);
    assert_string_equal(lines, "Transfer-Encoding: chunked");
    assert_int_equal(len, strlen(lines) + 1);
    dp_xfer_free(o.x);
    rig_stop(&r);
}

/* A response head with a NUL byte in a header value is refused, never passed on split. */
static void a_nul_in_a_response_header_fails(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    owner o = {.take_on_data = true};
    start(r.c, &o, "GET", rig_url(&r, "/nul-header"), DP_XFER_NO_BODY);
    run_until(&r.loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_PROTOCOL);
    assert_int_equal(o.n_head, 0);
    dp_xfer_free(o.x);
    rig_stop(&r);
}

/* A host name resolves (localhost), and what the server never answers times out. */
static void a_host_name_and_a_response_that_never_comes(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/small", r.s.port);
    owner a = {.take_on_data = true};
    start(r.c, &a, "GET", url, DP_XFER_NO_BODY);
    run_until(&r.loop, &a, is_done);
    assert_int_equal(a.error, DP_XFER_OK);
    assert_int_equal(a.got, 5);
    dp_xfer_free(a.x);
    owner o = {.take_on_data = true};
    g_total_timeout_ms = 200;
    uint64_t t0 = uv_hrtime();
    start(r.c, &o, "GET", rig_url(&r, "/hang"), DP_XFER_NO_BODY);
    g_total_timeout_ms = 0;
    run_until(&r.loop, &o, is_done);
    assert_int_equal(o.error, DP_XFER_TIMEOUT);
    assert_true(uv_hrtime() - t0 < 5000000000ull);
    dp_xfer_free(o.x);
    rig_stop(&r);
}

/* Each test runs on both transports: the native HTTP/1.1 one (plain http:, the default) and
 * curl (what https: and proxies use; NANO_FETCH_CLIENT=curl makes it carry everything). */
static int on_native(void **state)
{
    (void)state;
    unsetenv("NANO_FETCH_CLIENT");
    return 0;
}

static int on_curl(void **state)
{
    (void)state;
    setenv("NANO_FETCH_CLIENT", "curl", 1);
    return 0;
}

/* clang-format off */
#define TRANSFER_TESTS(setup) \
    cmocka_unit_test_setup(small_get_head_and_body, setup), \
    cmocka_unit_test_setup(a_body_nobody_takes_pauses_the_transfer, setup), \
    cmocka_unit_test_setup(an_upload_in_pieces_is_sent_chunked, setup), \
    cmocka_unit_test_setup(a_transfer_freed_inside_its_hook, setup), \
    cmocka_unit_test_setup(refused_denied_and_closed_with_transfers_alive, setup), \
    cmocka_unit_test_setup(transfers_one_after_another_reuse_one_connection, setup), \
    cmocka_unit_test_setup(a_pooled_connection_the_server_closes, setup), \
    cmocka_unit_test_setup(bytes_on_an_idle_pooled_connection, setup), \
    cmocka_unit_test_setup(a_request_the_server_drops_on_a_reused_connection_goes_again, setup), \
    cmocka_unit_test_setup(a_response_head_over_256_kib_fails, setup), \
    cmocka_unit_test_setup(an_interim_head_and_a_chunked_body, setup), \
    cmocka_unit_test_setup(a_nul_in_a_response_header_fails, setup), \
    cmocka_unit_test_setup(a_host_name_and_a_response_that_never_comes, setup)
/* clang-format on */

int main(int argc, char **argv)
{
    const struct CMUnitTest transfers[] = {TRANSFER_TESTS(on_native)};
    const struct CMUnitTest transfers_curl[] = {TRANSFER_TESTS(on_curl)};
    const unit_group groups[] = {UNIT_GROUP("transfers", transfers),
                                 UNIT_GROUP("transfers_curl", transfers_curl)};
    return unit_main(argc, argv, groups, sizeof(groups) / sizeof(groups[0]));
}
