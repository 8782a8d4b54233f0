/* Unit tests for nano-dp's HTTP server library (nano_http, no V8): the HTTP/1.1 request
 * parser with NANO's limits (fed raw bytes, no sockets), and the server's connections driven
 * over loopback by a libuv client on the same loop, with requests answered from C. */
#define _GNU_SOURCE /* memmem */
#include "unit.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "http1.h"
#include "server_int.h"

/* --- http1 ------------------------------------------------------------------------------- */

typedef struct feeder {
    dp_http1 p;
    nano_buf body;
    int heads, dones;
} feeder;

static int on_body(void *ud, const char *data, size_t len)
{
    feeder *f = ud;
    nano_buf_append(&f->body, data, len);
    return 0;
}

static void feeder_init(feeder *f, size_t max_head, uint64_t max_body)
{
    memset(f, 0, sizeof *f);
    dp_http1_limits limits = {.max_head = max_head, .max_body = max_body};
    dp_http1_init(&f->p, &limits, on_body, f);
}

static void feeder_fini(feeder *f)
{
    dp_http1_fini(&f->p);
    nano_buf_fini(&f->body);
}

/* feed_until: feeds text (in pieces of `step` bytes, 0 = all at once) and returns the first
 * event other than NEED_MORE, or NEED_MORE when all was consumed. *used: bytes consumed. */
static dp_http1_event feed_until(feeder *f, const char *text, size_t len, size_t step, size_t *used)
{
    size_t off = 0;
    /* Always feed at least once: after a head, a bodyless message completes on an empty feed. */
    do {
        size_t n = step ? (len - off < step ? len - off : step) : len - off;
        size_t consumed = 0;
        dp_http1_event ev = dp_http1_feed(&f->p, text + off, n, &consumed);
        off += consumed;
        if (ev != DP_HTTP1_NEED_MORE) {
            *used = off;
            return ev;
        }
    } while (off < len);
    *used = off;
    return DP_HTTP1_NEED_MORE;
}

static bool str_is(nano_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static void http1_simple_get(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    const char *req = "GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n";
    size_t used;
    assert_int_equal(feed_until(&f, req, strlen(req), 0, &used), DP_HTTP1_HEAD);
    const dp_http1_head *h = dp_http1_current(&f.p);
    assert_true(str_is(h->method, "GET"));
    assert_true(str_is(h->target, "/a?b=1"));
    assert_true(str_is(h->host, "x.test"));
    assert_int_equal(h->n_headers, 3);
    assert_true(str_is(h->headers[2].name, "x-multi"));
    assert_true(str_is(h->headers[2].value, "2"));
    assert_true(h->keep_alive);
    assert_false(h->has_body);
    assert_int_equal(feed_until(&f, req + used, strlen(req) - used, 0, &used), DP_HTTP1_DONE);
    feeder_fini(&f);
}

/* The fast path (plain GET/HEAD with the whole head in one read) takes the common request,
 * and leaves anything llhttp acts on, or that it is unsure of, to llhttp. fuzz_http1 checks
 * that both tell the same; this checks which one ran (a fast path that never runs would pass
 * every other test). */
static void http1_fast_path_takes_plain_requests_only(void **state)
{
    (void)state;
    struct {
        const char *req;
        bool fast;
    } cases[] = {
        {"GET /a?b=1&c=%20 HTTP/1.1\r\nHost: x.test\r\nAccept: */*\r\nX-E:\r\n\r\n", true},
        {"HEAD / HTTP/1.1\r\nhost:  h  \r\n\r\n", true},
        {"GET / HTTP/1.0\r\nHost: x\r\n\r\n", false},                      /* 1.0 */
        {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", false},                     /* method */
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false}, /* Connection */
        {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false}, /* framing */
        {"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false},
        {"GET /#f HTTP/1.1\r\nHost: x\r\n\r\n", false},             /* target byte */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: \xe9\r\n\r\n", false},    /* obs-text */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", false}, /* folded */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        feeder f;
        feeder_init(&f, 8192, 1024);
        size_t used;
        const char *req = cases[i].req;
        dp_http1_event ev = feed_until(&f, req, strlen(req), 0, &used);
        if (ev == DP_HTTP1_HEAD) {
            /* Only the fast path has its DONE waiting before the next feed. */
            if (f.p.fast_done_pending != cases[i].fast)
                fail_msg("case %zu (%s): fast path %s", i, req,
                         cases[i].fast ? "not taken" : "taken");
            assert_int_equal(used, strlen(req));
            assert_int_equal(feed_until(&f, req + used, 0, 0, &used), DP_HTTP1_DONE);
        } else {
            assert_false(cases[i].fast);
        }
        feeder_fini(&f);
    }
    /* The fast path's head is the same as llhttp's. */
    const char *req = cases[0].req;
    feeder a, b;
    feeder_init(&a, 8192, 1024);
    feeder_init(&b, 8192, 1024);
    b.p.no_fast_path = true;
    size_t used_a, used_b;
    assert_int_equal(feed_until(&a, req, strlen(req), 0, &used_a), DP_HTTP1_HEAD);
    assert_int_equal(feed_until(&b, req, strlen(req), 0, &used_b), DP_HTTP1_HEAD);
    assert_int_equal(used_a, used_b);
    const dp_http1_head *ha = dp_http1_current(&a.p), *hb = dp_http1_current(&b.p);
    assert_int_equal(ha->n_headers, 3);
    assert_int_equal(ha->n_headers, hb->n_headers);
    assert_true(str_is(ha->target, "/a?b=1&c=%20") && str_is(hb->target, "/a?b=1&c=%20"));
    assert_true(str_is(ha->host, "x.test") && str_is(hb->host, "x.test"));
    for (size_t i = 0; i < ha->n_headers; i++) {
        assert_true(
            ha->headers[i].name.len == hb->headers[i].name.len &&
            memcmp(ha->headers[i].name.ptr, hb->headers[i].name.ptr, ha->headers[i].name.len) == 0);
        assert_true(ha->headers[i].value.len == hb->headers[i].value.len &&
                    memcmp(ha->headers[i].value.ptr, hb->headers[i].value.ptr,
                           ha->headers[i].value.len) == 0);
    }
    assert_int_equal(ha->keep_alive, hb->keep_alive);
    feeder_fini(&a);
    feeder_fini(&b);
}

static void http1_byte_at_a_time(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    const char *req = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Type:  text/plain  \r\n"
                      "Content-Length: 5\r\n\r\nhello";
    size_t len = strlen(req), off = 0, used;
    assert_int_equal(feed_until(&f, req, len, 1, &used), DP_HTTP1_HEAD);
    off += used;
    const dp_http1_head *h = dp_http1_current(&f.p);
    assert_true(str_is(h->headers[1].name, "Content-Type"));
    assert_true(str_is(h->headers[1].value, "text/plain")); /* OWS trimmed */
    assert_int_equal(h->content_length, 5);
    assert_int_equal(feed_until(&f, req + off, len - off, 1, &used), DP_HTTP1_DONE);
    assert_int_equal(f.body.len, 5);
    assert_memory_equal(f.body.data, "hello", 5);
    feeder_fini(&f);
}

static void http1_chunked_body(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    const char *req = "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n";
    size_t len = strlen(req), off = 0, used;
    assert_int_equal(feed_until(&f, req, len, 7, &used), DP_HTTP1_HEAD);
    off += used;
    assert_true(dp_http1_current(&f.p)->has_body);
    assert_int_equal(dp_http1_current(&f.p)->content_length, -1);
    assert_int_equal(feed_until(&f, req + off, len - off, 7, &used), DP_HTTP1_DONE);
    assert_int_equal(f.body.len, 7);
    assert_memory_equal(f.body.data, "abcdefg", 7);
    feeder_fini(&f);
}

static void http1_pipelined(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    const char *req = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t len = strlen(req), off = 0, used;
    const char *want[] = {"/1", "/2"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(feed_until(&f, req + off, len - off, 0, &used), DP_HTTP1_HEAD);
        off += used;
        assert_true(str_is(dp_http1_current(&f.p)->target, want[i]));
        if (off < len || i == 1) {
            dp_http1_event ev = feed_until(&f, req + off, len - off, 0, &used);
            off += used;
            assert_int_equal(ev, DP_HTTP1_DONE);
        }
    }
    assert_int_equal(off, len);
    feeder_fini(&f);
}

static void expect_error(const char *req, size_t max_head, uint64_t max_body, int status)
{
    feeder f;
    feeder_init(&f, max_head, max_body);
    size_t used;
    dp_http1_event ev = feed_until(&f, req, strlen(req), 0, &used);
    if (ev == DP_HTTP1_HEAD)
        ev = feed_until(&f, req + used, strlen(req) - used, 0, &used);
    assert_int_equal(ev, DP_HTTP1_ERROR);
    assert_int_equal(dp_http1_error_status(&f.p), status);
    assert_non_null(dp_http1_error_reason(&f.p));
    feeder_fini(&f);
}

static void http1_errors(void **state)
{
    (void)state;
    expect_error("GARBAGE\r\n\r\n", 8192, 1024, 400);
    expect_error("GET / HTTP/1.1\r\n\r\n", 8192, 1024, 400); /* no Host on 1.1 */
    expect_error("GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n", 8192, 1024, 400);
    expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                 8192, 1024, 400);
    expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000\r\n\r\n", 8192, 1024, 413);
}

/* A length beyond what the head's signed content_length holds is refused, whatever the body
 * limit, instead of turning negative ("no length"). */
static void http1_content_length_beyond_int64_is_refused(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775808\r\n\r\n", 8192,
                 UINT64_MAX, 413);
    /* The largest it holds still passes. */
    feeder f;
    feeder_init(&f, 8192, UINT64_MAX);
    const char *req = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9223372036854775807\r\n\r\n";
    size_t used;
    assert_int_equal(feed_until(&f, req, strlen(req), 0, &used), DP_HTTP1_HEAD);
    assert_true(dp_http1_current(&f.p)->content_length == INT64_MAX);
    feeder_fini(&f);
}

static void http1_chunked_over_limit(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 8);
    const char *req = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n";
    size_t used, off;
    assert_int_equal(feed_until(&f, req, strlen(req), 0, &used), DP_HTTP1_HEAD);
    off = used;
    assert_int_equal(feed_until(&f, req + off, strlen(req) - off, 0, &used), DP_HTTP1_ERROR);
    assert_int_equal(dp_http1_error_status(&f.p), 413);
    feeder_fini(&f);
}

static void http1_head_too_large(void **state)
{
    (void)state;
    char req[4096];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
    memset(req + n, 'a', 2000);
    strcpy(req + n + 2000, "\r\n\r\n");
    expect_error(req, 1024, 1024, 431);
}

static void http1_http10_and_connection_close(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    size_t used;
    const char *r10 = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(feed_until(&f, r10, strlen(r10), 0, &used), DP_HTTP1_HEAD);
    assert_false(dp_http1_current(&f.p)->keep_alive);
    feeder_fini(&f);

    feeder_init(&f, 8192, 1024);
    const char *close = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    assert_int_equal(feed_until(&f, close, strlen(close), 0, &used), DP_HTTP1_HEAD);
    assert_false(dp_http1_current(&f.p)->keep_alive);
    feeder_fini(&f);
}

static void http1_head_method_and_expect(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    size_t used;
    const char *r = "HEAD /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n";
    assert_int_equal(feed_until(&f, r, strlen(r), 0, &used), DP_HTTP1_HEAD);
    assert_true(dp_http1_current(&f.p)->is_head_method);
    assert_true(dp_http1_current(&f.p)->expect_continue);
    feeder_fini(&f);
}

static void http1_finish_mid_message(void **state)
{
    (void)state;
    feeder f;
    feeder_init(&f, 8192, 1024);
    size_t used;
    const char *r = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc";
    assert_int_equal(feed_until(&f, r, strlen(r), 0, &used), DP_HTTP1_HEAD);
    assert_int_equal(feed_until(&f, r + used, strlen(r) - used, 0, &used), DP_HTTP1_NEED_MORE);
    assert_true(dp_http1_in_message(&f.p));
    assert_int_equal(dp_http1_finish(&f.p), DP_HTTP1_ERROR);
    feeder_fini(&f);

    feeder_init(&f, 8192, 1024);
    assert_int_equal(dp_http1_finish(&f.p), DP_HTTP1_NEED_MORE); /* clean close */
    feeder_fini(&f);

    /* EOF right after a complete message (the parser paused at its end) is a clean close too,
     * not "closed in the middle of a request". */
    feeder_init(&f, 8192, 1024);
    const char *g = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_int_equal(feed_until(&f, g, strlen(g), 0, &used), DP_HTTP1_HEAD);
    assert_int_equal(feed_until(&f, g + used, strlen(g) - used, 0, &used), DP_HTTP1_DONE);
    assert_false(dp_http1_in_message(&f.p));
    assert_int_equal(dp_http1_finish(&f.p), DP_HTTP1_NEED_MORE);
    feeder_fini(&f);
}

/* --- conn: a real server on a loop, a client on the same loop ----------------------------- */

#define ANSWER_BYTES (256 * 1024)
#define HUGE_BODY (((uint64_t)1 << 32) + 5) /* one past what uv_buf_init's unsigned carries */

typedef struct conn_fixture {
    uv_loop_t loop;
    dp_server *srv;
    uv_tcp_t client;
    uv_connect_t connect_req;
    uv_write_t write_req;
    bool is_connected;
    bool is_client_open;
    int read_status;   /* 0 while the client may read; then UV_EOF or an error */
    uint64_t received; /* bytes the client read */
    nano_buf kept;     /* the first 64 KiB of them */
    char tail[256];    /* the last bytes, tail_len of them */
    size_t tail_len;
    int n_dispatched, n_ended, n_failed;
    uint64_t read_budget; /* > 0: stop reading once received reaches it */
    char *read_buf;
    uint64_t started_ms, ended_ms;  /* loop times: first dispatch, last request end */
    int n_refusals, refusal_status; /* seen by fx_refusal */
    dp_refusal refusal_kind;
    bool is_server_closed; /* dp_server_close's callback ran */
} conn_fixture;

static const char answer_bytes[ANSWER_BYTES];

static void fx_dispatch(void *ud, dp_request *req)
{
    conn_fixture *f = ud;
    if (f->n_dispatched++ == 0)
        f->started_ms = uv_now(&f->loop);
    nano_str path = dp_request_path(req);
    if (nano_str_eq(path, NANO_STR("/answer"))) {
        assert_int_equal(dp_response_start(req, 200, (nano_str){NULL, 0}, NULL, 0, ANSWER_BYTES),
                         0);
        dp_response_write(req, answer_bytes, ANSWER_BYTES);
        dp_response_end(req);
    } else if (nano_str_eq(path, NANO_STR("/stream"))) {
        /* A streamed answer that is never ended: 16 MiB, more than the kernel's buffers on
         * loopback hold, then the app waits for room. */
        assert_int_equal(dp_response_start(req, 200, (nano_str){NULL, 0}, NULL, 0, -1), 0);
        for (int i = 0; i < 64; i++)
            dp_response_write(req, answer_bytes, ANSWER_BYTES);
        dp_response_flush(req);
    } else if (nano_str_eq(path, NANO_STR("/refuse"))) {
        /* Refused from the head, as nanocp answers a client without a token. */
        dp_request_refuse_body(req);
        assert_int_equal(dp_response_start(req, 401, (nano_str){NULL, 0}, NULL, 0, 6), 0);
        dp_response_write(req, "denied", 6);
        dp_response_end(req);
    } else if (nano_str_eq(path, NANO_STR("/upload"))) {
        /* Waits for the body (the test's client never sends all of it). */
    } else if (nano_str_eq(path, NANO_STR("/huge"))) {
        /* A body of HUGE_BODY bytes, as dp_response_write would leave it when the kernel takes
         * none at once, but without copying 4 GiB: the output buffer grows by reserving,
         * which maps pages lazily; only the first and last page are written, so the rest
         * reads as zeros and costs no memory, here or in the kernel's copy. */
        assert_int_equal(
            dp_response_start(req, 200, (nano_str){NULL, 0}, NULL, 0, (int64_t)HUGE_BODY), 0);
        dp_conn *c = req->conn;
        char *body = nano_buf_reserve(&c->out, HUGE_BODY);
        memcpy(body, "BEGIN4GB", 8);
        memcpy(body + HUGE_BODY - 8, "4GB--END", 8);
        c->out.len += HUGE_BODY;
        req->length_left = 0;
        req->bytes_out = HUGE_BODY;
        dp_response_end(req);
    } else {
        assert_int_equal(dp_response_start(req, 200, (nano_str){NULL, 0}, NULL, 0, 4), 0);
        dp_response_write(req, "next", 4);
        dp_response_end(req);
    }
}

static void fx_request_end(void *ud, dp_request *req, bool failed)
{
    conn_fixture *f = ud;
    (void)req;
    f->n_ended++;
    f->n_failed += failed;
    f->ended_ms = uv_now(&f->loop);
}

static void fx_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_fixture *f = h->data;
    (void)suggested;
    buf->base = f->read_buf;
    buf->len = 1024 * 1024;
}

static void fx_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn_fixture *f = s->data;
    if (n < 0) {
        f->read_status = (int)n;
        uv_read_stop(s);
        return;
    }
    size_t len = (size_t)n;
    f->received += len;
    if (f->read_budget > 0 && f->received >= f->read_budget)
        uv_read_stop(s);
    if (f->kept.len < 64 * 1024)
        nano_buf_append(&f->kept, buf->base, len < 64 * 1024 ? len : 64 * 1024);
    /* Slide the last sizeof tail bytes. */
    if (len >= sizeof f->tail) {
        memcpy(f->tail, buf->base + len - sizeof f->tail, sizeof f->tail);
        f->tail_len = sizeof f->tail;
    } else {
        size_t keep = f->tail_len + len > sizeof f->tail ? sizeof f->tail - len : f->tail_len;
        memmove(f->tail, f->tail + f->tail_len - keep, keep);
        memcpy(f->tail + keep, buf->base, len);
        f->tail_len = keep + len;
    }
}

static void fx_connected(uv_connect_t *r, int status)
{
    conn_fixture *f = r->data;
    assert_int_equal(status, 0);
    f->is_connected = true;
}

static void fx_written(uv_write_t *w, int status)
{
    (void)w;
    assert_int_equal(status, 0);
}

static void fx_init(conn_fixture *f, uint64_t write_timeout_ms)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    dp_server_options so = {
        .host = "127.0.0.1",
        .limits = {.max_head = 8192, .max_body = 1024},
        .head_timeout_ms = 10000,
        .idle_timeout_ms = 10000,
        .write_timeout_ms = write_timeout_ms,
        .quiet = true,
        .dispatch = fx_dispatch,
        .on_request_end = fx_request_end,
        .ud = f,
    };
    f->srv = dp_server_new(&f->loop, &so);
    nano_error err = {0};
    assert_int_equal(dp_server_listen(f->srv, &err), 0);
    f->read_buf = nano_xmalloc(1024 * 1024);
    uv_tcp_init(&f->loop, &f->client);
    f->client.data = f;
    f->is_client_open = true;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", dp_server_bound_port(f->srv), &addr);
    f->connect_req.data = f;
    assert_int_equal(
        uv_tcp_connect(&f->connect_req, &f->client, (const struct sockaddr *)&addr, fx_connected),
        0);
}

static void fx_stop_timer(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until done(f) or ms pass; returns done(f). */
static bool fx_run(conn_fixture *f, bool (*done)(conn_fixture *), uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, fx_stop_timer, ms, 0);
    uint64_t end = uv_now(&f->loop) + ms;
    bool ok = false;
    while (!(ok = done != NULL && done(f)) && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return ok;
}

static bool fx_is_connected(conn_fixture *f)
{
    return f->is_connected && f->srv->n_conns == 1;
}

static void fx_send(conn_fixture *f, const char *text, size_t len)
{
    assert_true(fx_run(f, fx_is_connected, 5000));
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)len);
    assert_int_equal(uv_write(&f->write_req, (uv_stream_t *)&f->client, &b, 1, fx_written), 0);
}

static void fx_start_reading(conn_fixture *f)
{
    assert_int_equal(uv_read_start((uv_stream_t *)&f->client, fx_alloc, fx_read), 0);
}

static void fx_server_closed(void *arg)
{
    conn_fixture *f = arg;
    f->is_server_closed = true;
}

static void fx_fini(conn_fixture *f)
{
    if (f->is_client_open)
        uv_close((uv_handle_t *)&f->client, NULL);
    dp_server_close(f->srv, fx_server_closed, f);
    assert_false(f->is_server_closed); /* never from inside the call */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->is_server_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed */
    nano_buf_fini(&f->kept);
    nano_free(f->read_buf);
}

/* The server's side of the client's connection. */
static dp_conn *fx_conn(conn_fixture *f)
{
    assert_int_equal(f->srv->n_conns, 1);
    return f->srv->conns;
}

/* Enough that the kernel's buffers (the client's receive buffer, the server's send buffer,
 * a few MiB on loopback) cannot hold half of the answers. */
#define N_PIPELINED 128

/* Whether the client has read n answers to GET /answer (or more bytes). */
static bool fx_read_answers(conn_fixture *f, int n)
{
    if (f->kept.len == 0)
        return false; /* memmem(NULL, 0, ...) is undefined */
    const char *end = memmem(f->kept.data, f->kept.len, "\r\n\r\n", 4);
    if (end == NULL)
        return false;
    uint64_t one = (uint64_t)(end + 4 - f->kept.data) + ANSWER_BYTES;
    return f->received >= (uint64_t)n * one;
}

static bool fx_all_answers_read(conn_fixture *f)
{
    return fx_read_answers(f, N_PIPELINED);
}

/* A client that pipelines requests and reads nothing gets no more of them parsed once the
 * answers waiting for it pass the high-water mark; when it reads, the rest follow in order. */
static void conn_pipelined_requests_wait_while_answers_are_unsent(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 0);
    nano_buf reqs = NANO_BUF_INIT;
    for (int i = 0; i < N_PIPELINED; i++)
        nano_buf_append_str(&reqs, "GET /answer HTTP/1.1\r\nHost: t\r\n\r\n");
    fx_send(&f, reqs.data, reqs.len);
    fx_run(&f, NULL, 300); /* the server does what it will; the client reads nothing */
    dp_conn *c = fx_conn(&f);
    print_message("     non-reader: %d of %d requests taken, %zu bytes unsent\n", f.n_dispatched,
                  N_PIPELINED, dp_conn__unsent(c));
    assert_true(f.n_dispatched >= 1);
    assert_true(f.n_dispatched < N_PIPELINED / 2);
    /* At most one answer beyond the mark waits in the server. */
    assert_true(dp_conn__unsent(c) < DP_OUTPUT_HIGH_WATER_MARK + ANSWER_BYTES);
    assert_true(c->is_output_paused);
    assert_false(c->is_reading);

    fx_start_reading(&f);
    assert_true(fx_run(&f, fx_all_answers_read, 20000));
    assert_int_equal(f.n_dispatched, N_PIPELINED);
    assert_int_equal(f.n_ended, N_PIPELINED);
    assert_int_equal(f.n_failed, 0);
    assert_false(fx_conn(&f)->is_output_paused);
    /* Every answer whole, none inside another: the bytes are exactly N heads and bodies. */
    const char *end = memmem(f.kept.data, f.kept.len, "\r\n\r\n", 4);
    size_t head = (size_t)(end + 4 - f.kept.data);
    assert_true(f.received == (uint64_t)N_PIPELINED * (head + ANSWER_BYTES));
    nano_buf_fini(&reqs);
    fx_fini(&f);
}

static bool fx_request_failed(conn_fixture *f)
{
    return f->n_failed > 0 && f->srv->n_conns == 0;
}

/* A client that takes none of a streamed answer is reset after the write timeout, and its
 * request ends as failed (the runtime would cancel the stream). */
static void conn_write_timeout_resets_a_client_that_reads_nothing(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 200);
    const char *req = "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n";
    fx_send(&f, req, strlen(req));
    assert_true(fx_run(&f, fx_request_failed, 5000));
    uint64_t took = f.ended_ms - f.started_ms;
    print_message("     write timeout 200 ms: connection reset after %llu ms\n",
                  (unsigned long long)took);
    assert_true(took >= 200);
    assert_true(took < 200 * 3 / 2 + 100);
    assert_int_equal(f.n_ended, 1);
    /* Reset, not closed in order: an orderly close would leave the unsent megabytes in the
     * kernel, sent to a client that takes nothing; a reset leaves the client's side closed
     * (TCP_CLOSE; with a FIN it would still be established, the FIN behind those bytes). */
    fx_run(&f, NULL, 50);
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)&f.client, &fd), 0);
    struct tcp_info ti;
    socklen_t ti_len = sizeof ti;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &ti_len), 0);
    assert_int_equal(ti.tcpi_state, TCP_CLOSE);
    fx_fini(&f);
}

static bool fx_closed(conn_fixture *f)
{
    return f->read_status != 0;
}

/* A client that sends part of a body and stops gets a 408 after the idle timeout, and its
 * request ends as failed, instead of holding the connection for ever. */
static void conn_stalled_upload_gets_408(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 0);
    f.srv->opts.idle_timeout_ms = 200;
    const char *req = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n0123456789";
    fx_send(&f, req, strlen(req));
    fx_start_reading(&f);
    assert_true(fx_run(&f, fx_closed, 5000));
    uint64_t took = f.ended_ms - f.started_ms;
    print_message("     stalled upload: 408 after %llu ms (idle timeout 200 ms)\n",
                  (unsigned long long)took);
    assert_int_equal(f.read_status, UV_EOF);
    assert_true(f.kept.len > 12 && memcmp(f.kept.data, "HTTP/1.1 408", 12) == 0);
    assert_int_equal(f.n_dispatched, 1);
    assert_int_equal(f.n_failed, 1);
    assert_true(took >= 200 && took < 1000);
    fx_fini(&f);
}

/* The on_refusal option: told of each refusal, it writes the answer's headers and body, and
 * the server frames them (length, close, date). */
static bool fx_refusal(void *ud, int status, dp_refusal kind, const char *reason, nano_buf *headers,
                       nano_buf *body)
{
    conn_fixture *f = ud;
    (void)reason;
    f->n_refusals++;
    f->refusal_status = status;
    f->refusal_kind = kind;
    if (headers == NULL)
        return false;
    nano_buf_append_str(headers, "content-type: application/json\r\n");
    nano_buf_appendf(body, "{\"refused\":\"%s\"}", dp_refusal_name(kind));
    return true;
}

static void conn_refusal_answer_is_the_options(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 0);
    f.srv->opts.on_refusal = fx_refusal;
    const char *req = "GET / HTTP/1.1\r\n\r\n"; /* no Host */
    fx_send(&f, req, strlen(req));
    fx_start_reading(&f);
    assert_true(fx_run(&f, fx_closed, 5000));
    nano_buf_append(&f.kept, "", 1);
    static const char want[] = "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                               "content-length: 18\r\nconnection: close\r\ndate: ";
    assert_memory_equal(f.kept.data, want, sizeof want - 1);
    const char *body = strstr(f.kept.data, "\r\n\r\n");
    assert_non_null(body);
    assert_string_equal(body + 4, "{\"refused\":\"host\"}");
    assert_int_equal(f.n_refusals, 1);
    assert_int_equal(f.refusal_status, 400);
    assert_int_equal(f.refusal_kind, DP_REFUSED_HOST);
    assert_int_equal(f.n_dispatched, 0);
    fx_fini(&f);
}

/* dp_request_refuse_body: the answer goes out at once, without the 100 Continue the client
 * asked for, says connection: close, and the connection closes without reading the body. */
static void conn_refused_body_is_not_read(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 0);
    const char *req = "PUT /refuse HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                      "Content-Length: 1000\r\n\r\n";
    fx_send(&f, req, strlen(req));
    fx_start_reading(&f);
    assert_true(fx_run(&f, fx_closed, 5000));
    nano_buf_append(&f.kept, "", 1);
    assert_int_equal(f.read_status, UV_EOF);
    assert_true(strncmp(f.kept.data, "HTTP/1.1 401 Unauthorized\r\n", 27) == 0);
    assert_non_null(strstr(f.kept.data, "\r\nconnection: close\r\n"));
    assert_null(strstr(f.kept.data, "100 Continue"));
    assert_int_equal(f.n_dispatched, 1);
    assert_int_equal(f.n_ended, 1);
    assert_int_equal(f.n_failed, 0); /* the answer was written whole */
    fx_fini(&f);
}

typedef struct second_client {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    int read_status;
    bool is_connected;
} second_client;

static void second_connected(uv_connect_t *r, int status)
{
    second_client *c = r->data;
    c->is_connected = status == 0;
}

static void second_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char b[4096];
    (void)h, (void)suggested;
    *buf = uv_buf_init(b, sizeof b);
}

static void second_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    second_client *c = s->data;
    (void)buf;
    if (n < 0)
        c->read_status = (int)n;
}

static bool fx_is_answered(conn_fixture *f)
{
    return f->tail_len >= 4 && memcmp(f->tail + f->tail_len - 4, "next", 4) == 0;
}

static second_client *g_second;

static bool fx_second_closed(conn_fixture *f)
{
    (void)f;
    return g_second->read_status != 0;
}

/* max_conns: a connection beyond the cap is closed at once; the others are still served. */
static void conn_beyond_max_conns_is_closed(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 0);
    f.srv->opts.max_conns = 1;
    assert_true(fx_run(&f, fx_is_connected, 5000));
    second_client c = {0};
    g_second = &c;
    uv_tcp_init(&f.loop, &c.tcp);
    c.tcp.data = &c;
    c.connect_req.data = &c;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", dp_server_bound_port(f.srv), &addr);
    assert_int_equal(
        uv_tcp_connect(&c.connect_req, &c.tcp, (const struct sockaddr *)&addr, second_connected),
        0);
    assert_int_equal(uv_read_start((uv_stream_t *)&c.tcp, second_alloc, second_read), 0);
    assert_true(fx_run(&f, fx_second_closed, 5000));
    assert_true(c.read_status == UV_EOF || c.read_status == UV_ECONNRESET);
    assert_int_equal(f.srv->n_conns, 1);
    uv_close((uv_handle_t *)&c.tcp, NULL);
    const char *req = "GET /next HTTP/1.1\r\nHost: t\r\n\r\n";
    fx_send(&f, req, strlen(req));
    fx_start_reading(&f);
    assert_true(fx_run(&f, fx_is_answered, 5000));
    fx_fini(&f);
}

/* A client that reads steadily, slower than the server writes, keeps its connection however
 * long the transfer takes beyond the write timeout. */
#define N_SLOW 32

static bool fx_got_slow_answers(conn_fixture *f)
{
    return fx_read_answers(f, N_SLOW) || f->read_status != 0 || f->srv->n_conns == 0;
}

static void conn_slow_reader_is_not_timed_out(void **state)
{
    (void)state;
    conn_fixture f;
    fx_init(&f, 100);
    nano_buf reqs = NANO_BUF_INIT;
    for (int i = 0; i < N_SLOW; i++)
        nano_buf_append_str(&reqs, "GET /answer HTTP/1.1\r\nHost: t\r\n\r\n");
    fx_send(&f, reqs.data, reqs.len);
    /* 512 KiB every 40 ms, 12.5 MiB/s: 8 MiB of answers take over 500 ms, five timeouts. */
    uint64_t t0 = uv_now(&f.loop);
    while (!fx_got_slow_answers(&f) && uv_now(&f.loop) - t0 < 20000) {
        f.read_budget = f.received + 512 * 1024;
        fx_start_reading(&f);
        fx_run(&f, NULL, 40);
        uv_read_stop((uv_stream_t *)&f.client);
    }
    uint64_t took = uv_now(&f.loop) - t0;
    print_message("     slow reader: %d answers (%llu bytes) in %llu ms, write timeout 100 ms\n",
                  f.n_ended, (unsigned long long)f.received, (unsigned long long)took);
    assert_int_equal(f.read_status, 0);
    assert_int_equal(f.srv->n_conns, 1);
    assert_int_equal(f.n_ended, N_SLOW);
    assert_int_equal(f.n_failed, 0);
    assert_true(fx_read_answers(&f, N_SLOW));
    assert_true(took > 300);
    nano_buf_fini(&reqs);
    fx_fini(&f);
}

static bool fx_huge_read(conn_fixture *f)
{
    return f->read_status != 0 ||
           (f->tail_len >= 4 && memcmp(f->tail + f->tail_len - 4, "next", 4) == 0 &&
            f->received > HUGE_BODY);
}

/* A body of 2^32 + 5 bytes leaves whole, and the next pipelined answer after it: lengths are
 * size_t from the response to the socket (a uv_buf_init cast once sent 5 of them). */
static void conn_4gib_body_is_sent_whole(void **state)
{
    (void)state;
#ifdef __SANITIZE_ADDRESS__
    /* What this checks is length arithmetic, which the conn group's smaller writes cover
     * for memory errors; 4 GiB under the sanitizer's checks was never timed on CI. */
    skip();
#endif
    conn_fixture f;
    fx_init(&f, 0);
    const char *reqs = "GET /huge HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n";
    fx_send(&f, reqs, strlen(reqs));
    fx_start_reading(&f);
    uint64_t t0 = uv_hrtime();
    assert_true(fx_run(&f, fx_huge_read, 120000));
    print_message("     4 GiB + 5 body: %llu bytes read in %.1f s\n",
                  (unsigned long long)f.received, (double)(uv_hrtime() - t0) / 1e9);
    assert_int_equal(f.read_status, 0);
    const char *end = memmem(f.kept.data, f.kept.len, "\r\n\r\n", 4);
    assert_non_null(end);
    size_t head = (size_t)(end + 4 - f.kept.data);
    assert_non_null(memmem(f.kept.data, head, "content-length: 4294967301\r\n", 28));
    assert_memory_equal(end + 4, "BEGIN4GB", 8);
    /* The tail: the body's last bytes, then the whole second answer. */
    const char *mark = memmem(f.tail, f.tail_len, "4GB--END", 8);
    assert_non_null(mark);
    uint64_t mark_end = f.received - f.tail_len + (uint64_t)(mark - f.tail) + 8;
    assert_true(mark_end == head + HUGE_BODY);
    assert_memory_equal(mark + 8, "HTTP/1.1 200 OK\r\n", 17);
    assert_int_equal(f.n_dispatched, 2);
    fx_fini(&f);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest http1[] = {
        cmocka_unit_test(http1_simple_get),
        cmocka_unit_test(http1_byte_at_a_time),
        cmocka_unit_test(http1_fast_path_takes_plain_requests_only),
        cmocka_unit_test(http1_chunked_body),
        cmocka_unit_test(http1_pipelined),
        cmocka_unit_test(http1_errors),
        cmocka_unit_test(http1_chunked_over_limit),
        cmocka_unit_test(http1_head_too_large),
        cmocka_unit_test(http1_http10_and_connection_close),
        cmocka_unit_test(http1_head_method_and_expect),
        cmocka_unit_test(http1_finish_mid_message),
        cmocka_unit_test(http1_content_length_beyond_int64_is_refused),
    };
    static const struct CMUnitTest conn[] = {
        cmocka_unit_test(conn_pipelined_requests_wait_while_answers_are_unsent),
        cmocka_unit_test(conn_write_timeout_resets_a_client_that_reads_nothing),
        cmocka_unit_test(conn_slow_reader_is_not_timed_out),
        cmocka_unit_test(conn_stalled_upload_gets_408),
        cmocka_unit_test(conn_refusal_answer_is_the_options),
        cmocka_unit_test(conn_refused_body_is_not_read),
        cmocka_unit_test(conn_beyond_max_conns_is_closed),
    };
    /* Apart, with a longer ctest timeout: 4 GiB cross loopback (15-25 s on 2 busy cores). */
    static const struct CMUnitTest conn_4gib[] = {
        cmocka_unit_test(conn_4gib_body_is_sent_whole),
    };
    const unit_group groups[] = {
        UNIT_GROUP("http1", http1),
        UNIT_GROUP("conn", conn),
        UNIT_GROUP("conn_4gib", conn_4gib),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
