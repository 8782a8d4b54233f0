/* fuzz_http1: nano-dp's HTTP/1.1 request parser (dataplane/server/http1.c), the first code
 * that sees a client's bytes. The input's first byte picks the chunk size the rest is fed in
 * (a request split anywhere across reads), the parser runs until it errors or every byte is
 * used, with small limits so the 413/431 paths run too. Invariants: consumed never exceeds
 * what was fed; a head has a method and a target; a failure has a 4xx status; the body bytes
 * delivered never exceed the body limit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "server/http1.h"

static uint64_t g_body;

static int on_body(void *ud, const char *data, size_t len)
{
    (void)ud;
    (void)data;
    g_body += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t chunk = 1 + data[0] % 64;
    data++;
    size--;
    dp_http1_limits lim = {.max_head = 2048, .max_body = 4096};
    dp_http1 p;
    dp_http1_init(&p, &lim, on_body, NULL);
    g_body = 0;
    size_t off = 0;
    int events = 0;
    while (off < size && events < 10000) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t consumed = 0;
        dp_http1_event ev = dp_http1_feed(&p, (const char *)data + off, n, &consumed);
        FUZZ_CHECK(consumed <= n);
        off += consumed;
        events++;
        if (ev == DP_HTTP1_ERROR) {
            int status = dp_http1_error_status(&p);
            FUZZ_CHECK(status >= 400 && status < 500);
            FUZZ_CHECK(dp_http1_error_reason(&p) != NULL);
            break;
        }
        if (ev == DP_HTTP1_HEAD) {
            const dp_http1_head *h = dp_http1_current(&p);
            FUZZ_CHECK(h != NULL && h->method.len > 0 && h->target.len > 0);
            for (size_t i = 0; i < h->n_headers; i++)
                FUZZ_CHECK(h->headers[i].name.len > 0);
        }
        if (ev == DP_HTTP1_DONE)
            g_body = 0;
        FUZZ_CHECK(g_body <= lim.max_body);
        if (ev == DP_HTTP1_NEED_MORE && consumed == 0 && n > 0)
            FUZZ_CHECK(0 && "NEED_MORE without consuming the bytes fed");
    }
    if (off == size)
        (void)dp_http1_finish(&p);
    dp_http1_fini(&p);
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
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        add(reqs[i], strlen(reqs[i]));
}
