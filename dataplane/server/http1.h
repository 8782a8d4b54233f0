/* http1.h: HTTP/1.1 request parsing for one connection, on llhttp, with NANO's limits.
 *
 * The parser owns a copy of the current request head (method, target, headers) and hands
 * body bytes to a callback as they arrive. dp_http1_feed() stops right after a head is
 * complete and right after a message is complete, so the caller acts on each outside the
 * parser (no re-entrancy into llhttp from JS). Socket-free, so unit tests drive it with bytes.
 * Owned by one connection; loop thread only. */
#ifndef DP_HTTP1_H
#define DP_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>

#include "buf.h"

typedef struct dp_header {
    nano_str name;  /* as received; compare case-insensitively */
    nano_str value; /* optional whitespace trimmed */
} dp_header;

typedef struct dp_http1_head {
    nano_str method;
    nano_str target; /* request-target as sent: "/path?query" or absolute-form */
    uint8_t version_major, version_minor;
    dp_header *headers;
    size_t n_headers;
    nano_str host;          /* value of the Host header, or empty */
    bool keep_alive;        /* per HTTP version and Connection header */
    bool expect_continue;   /* Expect: 100-continue */
    bool has_body;          /* Content-Length > 0 or chunked */
    int64_t content_length; /* -1 when not given (chunked or no body) */
    bool is_head_method;
    bool is_upgrade; /* Upgrade/CONNECT: answered, then the connection closes */
} dp_http1_head;

typedef enum dp_http1_event {
    DP_HTTP1_NEED_MORE = 0, /* every byte consumed; feed more */
    DP_HTTP1_HEAD,          /* a request head is complete: dp_http1_head() is valid */
    DP_HTTP1_DONE,          /* the message (head + body) is complete */
    DP_HTTP1_ERROR,         /* dp_http1_error_status() says which status to answer */
} dp_http1_event;

/* Why a request was refused before it reached an app: the reason label of /metrics'
 * nano_http_refused_total (dp_refusal_name). The parser's own are set with its errors; the
 * timeouts are the connection's (conn.c). */
typedef enum dp_refusal {
    DP_REFUSED_MALFORMED,      /* 400: framing the strict parser refuses */
    DP_REFUSED_CUT_SHORT,      /* 400: the peer closed in the middle of a request */
    DP_REFUSED_HOST,           /* 400: Host missing, repeated or invalid; bad authority */
    DP_REFUSED_TARGET,         /* 400: an empty or asterisk-form request target */
    DP_REFUSED_CHUNK_EXT,      /* 400: chunk extensions over 4 KiB on one line */
    DP_REFUSED_HEAD_TOO_LARGE, /* 431 */
    DP_REFUSED_BODY_TOO_LARGE, /* 413 */
    DP_REFUSED_CODING,         /* 501: a transfer coding other than chunked */
    DP_REFUSED_VERSION,        /* 505: not HTTP/1.0 or 1.1 */
    DP_REFUSED_HEAD_TIMEOUT,   /* 408: the head did not arrive within --head-timeout */
    DP_REFUSED_BODY_IDLE,      /* 408: no body byte for --idle-timeout */
    DP_REFUSED_BODY_SLOW,      /* 408: the body came slower than --body-min-rate */
    DP_REFUSED_COUNT
} dp_refusal;

/* dp_refusal_name: "malformed", "host", ... (a Prometheus label value). */
const char *dp_refusal_name(dp_refusal r);

typedef int (*dp_http1_body_cb)(void *ud, const char *data, size_t len);

typedef struct dp_http1_limits {
    size_t max_head;   /* request line + headers, bytes (431 beyond) */
    uint64_t max_body; /* decoded body bytes (413 beyond) */
} dp_http1_limits;

typedef struct dp_http1 {
    llhttp_t parser;
    llhttp_settings_t settings;
    dp_http1_limits limits;
    dp_http1_body_cb on_body;
    void *ud;
    nano_buf head_bytes; /* method, target, names, values, back to back */
    struct head_span {   /* offsets into head_bytes while the head grows */
        size_t name_off, name_len, value_off, value_len;
    } * spans;
    size_t n_spans, cap_spans;
    size_t cap_headers; /* of head.headers */
    size_t method_off, method_len, target_off, target_len;
    size_t head_size; /* bytes counted against max_head */
    uint64_t body_size;
    uint64_t chunk_ext_bytes; /* of the chunk-size line being read */
    int last_cb;              /* which data callback ran last: to join split names/values */
    int pause;                /* why llhttp paused: head complete or message complete */
    int error_status;         /* 400, 413, 431, 501, 505 once failed */
    dp_refusal error_kind;
    const char *error_reason;
    bool head_ready;
    bool in_message;
    bool fast_ok;           /* llhttp waits for a new message: the fast path may take it */
    bool fast_done_pending; /* a fast-path head was returned: its DONE comes next */
    bool no_fast_path;      /* tests: llhttp for everything */
    dp_http1_head head;
} dp_http1;

/* dp_http1_init: prepares p for a new connection. on_body (may be NULL) receives body bytes
 * of the current message, borrowed for the call; returning non-zero fails with 400. */
void dp_http1_init(dp_http1 *p, const dp_http1_limits *limits, dp_http1_body_cb on_body, void *ud);
void dp_http1_fini(dp_http1 *p);

/* dp_http1_feed: parses data[0..len) and returns at the first event. *consumed says how many
 * bytes were used; the caller feeds the rest again after handling the event. After
 * DP_HTTP1_HEAD, feed again even when no bytes are left (len 0): a message without a body
 * reports DP_HTTP1_DONE on that call. After
 * DP_HTTP1_DONE, the next feed starts the next pipelined request (the previous head is then
 * invalid). After DP_HTTP1_ERROR the parser is finished: answer and close. */
dp_http1_event dp_http1_feed(dp_http1 *p, const char *data, size_t len, size_t *consumed);

/* dp_http1_finish: the peer closed its side; returns DP_HTTP1_DONE if that ends a message
 * whose length is delimited by EOF, DP_HTTP1_ERROR if a message was cut short, else
 * DP_HTTP1_NEED_MORE (clean close between messages). */
dp_http1_event dp_http1_finish(dp_http1 *p);

/* dp_http1_head: the current request head, valid from DP_HTTP1_HEAD until the next feed
 * after DP_HTTP1_DONE. */
const dp_http1_head *dp_http1_current(const dp_http1 *p);

/* dp_http1_in_message: whether bytes of a request have arrived that are not yet complete. */
bool dp_http1_in_message(const dp_http1 *p);

/* dp_http1_error_status: 400/413/431/501/505 after DP_HTTP1_ERROR; dp_http1_error_reason:
 * why, in words; dp_http1_error_kind: why, as a metrics label. */
int dp_http1_error_status(const dp_http1 *p);
dp_refusal dp_http1_error_kind(const dp_http1 *p);
const char *dp_http1_error_reason(const dp_http1 *p);

#endif
