/* fuzz_http1: nano-dp's HTTP/1.1 request parser (dataplane/server/http1.c), the first code
 * that sees a client's bytes. The input's first byte picks the chunk size the rest is fed in
 * (a request split anywhere across reads; 0xc0 and up: all at once, so whole heads reach the
 * fast path), the parser runs until it errors or every byte is used, with small limits so
 * the 413/431 paths run too. Invariants: consumed never exceeds what was fed; a head has a
 * method and a target; a failure has a 4xx status; the body bytes delivered never exceed
 * the body limit. And the parser with its fast path for common requests must tell exactly
 * what llhttp alone tells: the same events, heads, body bytes and errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "server/http1.h"

typedef struct run {
    uint64_t body;  /* bytes of the current message's body */
    nano_buf trace; /* events, heads and body bytes, as text, to compare two runs */
} run;

static int on_body(void *ud, const char *data, size_t len)
{
    run *r = ud;
    r->body += len;
    nano_buf_appendf(&r->trace, "body %zu:", len);
    nano_buf_append(&r->trace, data, len);
    nano_buf_append(&r->trace, "\n", 1);
    return 0;
}

static void trace_str(nano_buf *t, const char *what, nano_str s)
{
    nano_buf_appendf(t, " %s=%zu:", what, s.len);
    nano_buf_append(t, s.ptr, s.len);
}

static void trace_head(nano_buf *t, const dp_http1_head *h)
{
    nano_buf_appendf(t, "head v%u.%u ka=%d exp=%d body=%d cl=%lld headm=%d up=%d n=%zu",
                     h->version_major, h->version_minor, h->keep_alive, h->expect_continue,
                     h->has_body, (long long)h->content_length, h->is_head_method, h->is_upgrade,
                     h->n_headers);
    trace_str(t, "method", h->method);
    trace_str(t, "target", h->target);
    trace_str(t, "host", h->host);
    for (size_t i = 0; i < h->n_headers; i++) {
        trace_str(t, "name", h->headers[i].name);
        trace_str(t, "value", h->headers[i].value);
    }
    nano_buf_append(t, "\n", 1);
}

static void parse(const uint8_t *data, size_t size, size_t chunk, bool fast, run *r)
{
    dp_http1_limits lim = {.max_head = 2048, .max_body = 4096};
    dp_http1 p;
    dp_http1_init(&p, &lim, on_body, r);
    p.no_fast_path = !fast;
    size_t off = 0;
    int events = 0;
    bool after_head = false;
    /* As the server feeds: after a head, once more even with no bytes left (a message
     * without a body completes on that call). */
    while ((off < size || after_head) && events < 10000) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t consumed = 0;
        dp_http1_event ev = dp_http1_feed(&p, (const char *)data + off, n, &consumed);
        FUZZ_CHECK(consumed <= n);
        off += consumed;
        events++;
        after_head = ev == DP_HTTP1_HEAD;
        if (ev == DP_HTTP1_ERROR) {
            int status = dp_http1_error_status(&p);
            /* 4xx, or 501 (a transfer coding we do not take) and 505 (another version) */
            FUZZ_CHECK((status >= 400 && status < 500) || status == 501 || status == 505);
            FUZZ_CHECK(dp_http1_error_reason(&p) != NULL);
            nano_buf_appendf(&r->trace, "error %d\n", status);
            break;
        }
        if (ev == DP_HTTP1_HEAD) {
            const dp_http1_head *h = dp_http1_current(&p);
            FUZZ_CHECK(h != NULL && h->method.len > 0 && h->target.len > 0);
            for (size_t i = 0; i < h->n_headers; i++)
                FUZZ_CHECK(h->headers[i].name.len > 0);
            trace_head(&r->trace, h);
        }
        if (ev == DP_HTTP1_DONE) {
            r->body = 0;
            nano_buf_appendf(&r->trace, "done at %zu\n", off);
        }
        FUZZ_CHECK(r->body <= lim.max_body);
        if (ev == DP_HTTP1_NEED_MORE && consumed == 0 && n > 0)
            FUZZ_CHECK(0 && "NEED_MORE without consuming the bytes fed");
    }
    if (off == size)
        nano_buf_appendf(&r->trace, "finish %d\n", (int)dp_http1_finish(&p));
    dp_http1_fini(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = data[0] >= 0xc0 ? size : (size_t)(1 + data[0] % 64);
    data++;
    size--;
    run fast = {0, NANO_BUF_INIT}, slow = {0, NANO_BUF_INIT};
    parse(data, size, chunk, true, &fast);
    parse(data, size, chunk, false, &slow);
    if (fast.trace.len != slow.trace.len ||
        memcmp(fast.trace.data, slow.trace.data, fast.trace.len) != 0) {
        fprintf(stderr, "fuzz: the fast path and llhttp disagree\n--- fast\n%.*s--- llhttp\n%.*s",
                (int)fast.trace.len, fast.trace.data, (int)slow.trace.len, slow.trace.data);
        FUZZ_CHECK(0 && "fast path differs from llhttp");
    }
    nano_buf_fini(&fast.trace);
    nano_buf_fini(&slow.trace);
    return 0;
}

void fuzz_seeds(fuzz_add_fn add)
{
    static const char *const reqs[] = {
        "\x07GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
        "\x10POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        "GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        "\x03PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n",
        "\x20GET /up HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "\x01HEAD / HTTP/1.0\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
        " folded\r\n\r\n",
        "\x40POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 9999\r\n\r\nx",
        /* Whole heads at once (first byte 0xc0 and up): the fast path's kind, and near misses. */
        "\xc0GET /a/b?c=d&e=%20 HTTP/1.1\r\nHost: a.test\r\nAccept: */*\r\nX-Empty:\r\n"
        "User-Agent:  wrk \t\r\n\r\nHEAD /h HTTP/1.1\r\nhost: b\r\nHost: c\r\n\r\n"
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
        "\xc1GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x#frag HTTP/1.1\r\nHost: a\r\n\r\n"
        "GET / HTTP/1.0\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "\xc2GET / HTTP/1.1\r\nHost: a\r\nX-Bin: \x80\xff\r\n\r\nGET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "\xc3GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        add(reqs[i], strlen(reqs[i]));
}
