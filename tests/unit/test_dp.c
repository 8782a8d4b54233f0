/* Unit tests for the data plane's C side: the HTTP/1.1 request parser with NANO's limits
 * (fed raw bytes, no sockets) and nano-dp's command-line parsing. */
#include "unit.h"

#include <stdio.h>

#include "alloc.h"
#include "http1.h"
#include "options.h"

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
static dp_http1_event feed_until(feeder *f, const char *text, size_t len, size_t step,
                                 size_t *used)
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
        {"GET / HTTP/1.0\r\nHost: x\r\n\r\n", false},                       /* 1.0 */
        {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", false},                      /* method */
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},    /* Connection */
        {"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", false},    /* framing */
        {"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", false},
        {"GET /#f HTTP/1.1\r\nHost: x\r\n\r\n", false},                     /* target byte */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: \xe9\r\n\r\n", false},             /* obs-text */
        {"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", false},          /* folded */
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
                fail_msg("case %zu (%s): fast path %s", i, req, cases[i].fast ? "not taken" : "taken");
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
        assert_true(ha->headers[i].name.len == hb->headers[i].name.len &&
                    memcmp(ha->headers[i].name.ptr, hb->headers[i].name.ptr,
                           ha->headers[i].name.len) == 0);
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

/* --- options ------------------------------------------------------------------------------ */

static int parse(dp_options *o, nano_error *err, int argc, const char **argv)
{
    return dp_options_parse(o, argc, (char **)argv, err);
}

static void options_defaults(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {"nano-dp", "dir/worker.mjs"};
    assert_int_equal(parse(&o, &err, 2, argv), 0);
    assert_string_equal(o.app_path, "dir/worker.mjs");
    assert_string_equal(o.app_name, "worker");
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8787);
    assert_int_equal(o.drain_timeout_ms, 30000);
    assert_int_equal(o.max_head_size, 65536);
    dp_options_fini(&o);
}

static void options_all_flags(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {"nano-dp", "--port", "0", "--var", "A=1", "--var=B=2", "app.js",
                          "--env-file", "x.env", "--name", "api", "--drain-timeout", "1500ms",
                          "--max-body-size", "1MiB", "--log-level", "debug",
                          "--listen", "[::1]:9000"};
    assert_int_equal(parse(&o, &err, 19, argv), 0);
    assert_int_equal(o.n_vars, 2);
    assert_string_equal(o.vars[1], "B=2");
    assert_int_equal(o.n_env_files, 1);
    assert_string_equal(o.app_name, "api");
    assert_int_equal(o.drain_timeout_ms, 1500);
    assert_int_equal(o.max_body_size, 1 << 20);
    assert_int_equal(o.log_level, NANO_LOG_DEBUG);
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.port, 9000);
    dp_options_fini(&o);
}

static void expect_usage_error(int argc, const char **argv, const char *needle)
{
    dp_options o;
    nano_error err = {0};
    assert_int_equal(parse(&o, &err, argc, argv), NANO_EINVAL);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n')); /* one line */
    dp_options_fini(&o);
}

static void options_errors(void **state)
{
    (void)state;
    expect_usage_error(1, (const char *[]){"nano-dp"}, "missing APP.js");
    expect_usage_error(3, (const char *[]){"nano-dp", "a.js", "b.js"}, "unexpected argument");
    expect_usage_error(3, (const char *[]){"nano-dp", "a.js", "--bogus"}, "unknown option");
    expect_usage_error(3, (const char *[]){"nano-dp", "a.js", "--port"}, "needs a value");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--port", "99999"}, "not a port");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--drain-timeout", "301"},
                       "at most 300s");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--drain-timeout", "soon"},
                       "not a duration");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--max-head-size", "0"},
                       "not a size");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--listen", "nocolon"},
                       "HOST:PORT");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--log-level", "loud"},
                       "--log-level");
}

static void options_help_and_version(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    assert_int_equal(parse(&o, &err, 2, (const char *[]){"nano-dp", "--help"}), 0);
    assert_true(o.show_help);
    dp_options_fini(&o);
    assert_int_equal(parse(&o, &err, 2, (const char *[]){"nano-dp", "--version"}), 0);
    assert_true(o.show_version);
    dp_options_fini(&o);
    /* Every flag the parser knows is documented in --help. */
    const char *flags[] = {"--port", "--host", "--listen", "--var", "--env-file", "--name",
                           "--drain-timeout", "--max-head-size", "--max-body-size",
                           "--head-timeout", "--idle-timeout", "--log-level", "--version"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_non_null(strstr(dp_options_usage(DP_MODE_SERVE), flags[i]));
}

static void options_check_mode(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {"nano-dp", "check", "--json", "--cpu-limit", "1500", "--node-compat",
                          "--memory-limit=64", "--name", "api", "a.js", "b.js"};
    assert_int_equal(parse(&o, &err, 11, argv), 0);
    assert_int_equal(o.mode, DP_MODE_CHECK);
    assert_true(o.check_json);
    assert_true(o.node_compat);
    assert_int_equal(o.cpu_limit_ms, 1500);
    assert_int_equal(o.memory_limit_mb, 64);
    assert_string_equal(o.app_name, "api");
    assert_int_equal(o.n_files, 2);
    assert_string_equal(o.files[1], "b.js");
    dp_options_fini(&o);
    assert_int_equal(parse(&o, &err, 3, (const char *[]){"nano-dp", "check", "x/app.js"}), 0);
    assert_false(o.check_json);
    assert_string_equal(o.app_name, "app");
    dp_options_fini(&o);
    expect_usage_error(2, (const char *[]){"nano-dp", "check"}, "no files given");
    expect_usage_error(4, (const char *[]){"nano-dp", "check", "--port", "1"}, "unknown option");
    expect_usage_error(3, (const char *[]){"nano-dp", "check", "--cpu-limit"}, "needs a value");
    assert_non_null(strstr(dp_options_usage(DP_MODE_CHECK), "--cpu-limit"));
    assert_non_null(strstr(dp_options_usage(DP_MODE_SERVE), "nano-dp check"));
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
    };
    static const struct CMUnitTest options[] = {
        cmocka_unit_test(options_defaults),
        cmocka_unit_test(options_all_flags),
        cmocka_unit_test(options_errors),
        cmocka_unit_test(options_help_and_version),
        cmocka_unit_test(options_check_mode),
    };
    const unit_group groups[] = {
        UNIT_GROUP("http1", http1),
        UNIT_GROUP("options", options),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
