#include "http1.h"

#include <string.h>

#include "alloc.h"

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };
enum { PAUSE_NONE, PAUSE_HEAD, PAUSE_DONE };

/* Per header line, bytes not seen by the data callbacks: ": " and CRLF. */
#define HEADER_LINE_OVERHEAD 4

#define P(parser) ((dp_http1 *)(parser)->data)

static int fail(dp_http1 *p, int status, const char *reason)
{
    p->error_status = status;
    p->error_reason = reason;
    return -1;
}

static int count_head(dp_http1 *p, size_t n)
{
    p->head_size += n;
    if (p->head_size > p->limits.max_head)
        return fail(p, 431, "request head too large");
    return 0;
}

static int on_message_begin(llhttp_t *parser)
{
    dp_http1 *p = P(parser);
    nano_buf_reset(&p->head_bytes);
    p->n_spans = 0;
    p->target_off = p->target_len = 0;
    p->head_size = 0;
    p->body_size = 0;
    p->last_cb = CB_NONE;
    p->head_ready = false;
    p->in_message = true;
    dp_header *keep = p->head.headers; /* reused across messages */
    memset(&p->head, 0, sizeof p->head);
    p->head.headers = keep;
    return 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t len)
{
    dp_http1 *p = P(parser);
    if (count_head(p, len) != 0)
        return -1;
    if (p->last_cb != CB_URL)
        p->target_off = p->head_bytes.len;
    nano_buf_append(&p->head_bytes, at, len);
    p->target_len += len;
    p->last_cb = CB_URL;
    return 0;
}

static int on_header_field(llhttp_t *parser, const char *at, size_t len)
{
    dp_http1 *p = P(parser);
    if (count_head(p, len + (p->last_cb != CB_FIELD ? HEADER_LINE_OVERHEAD : 0)) != 0)
        return -1;
    if (p->head_ready) /* trailer fields: counted, not kept */
        return 0;
    if (p->last_cb != CB_FIELD) {
        if (p->n_spans == p->cap_spans) {
            p->cap_spans = p->cap_spans ? p->cap_spans * 2 : 16;
            p->spans = nano_xrealloc(p->spans, p->cap_spans * sizeof *p->spans);
        }
        struct head_span *s = &p->spans[p->n_spans++];
        s->name_off = p->head_bytes.len;
        s->name_len = 0;
        s->value_off = 0;
        s->value_len = 0;
    }
    nano_buf_append(&p->head_bytes, at, len);
    p->spans[p->n_spans - 1].name_len += len;
    p->last_cb = CB_FIELD;
    return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len)
{
    dp_http1 *p = P(parser);
    if (count_head(p, len) != 0)
        return -1;
    if (p->head_ready)
        return 0;
    struct head_span *s = &p->spans[p->n_spans - 1];
    if (p->last_cb != CB_VALUE)
        s->value_off = p->head_bytes.len;
    nano_buf_append(&p->head_bytes, at, len);
    s->value_len += len;
    p->last_cb = CB_VALUE;
    return 0;
}

static nano_str trim_ows(nano_str v)
{
    while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++;
        v.len--;
    }
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

/* is_token: RFC 9110 §5.6.2 token (header names); llhttp lets some non-token bytes through,
 * e.g. a space inside a name, which proxies disagree on: a request-smuggling hazard. */
static bool is_token(nano_str s)
{
    /* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
     * "|" / "~" / DIGIT / ALPHA: one bit per byte value. */
    static const uint32_t tchar[8] = {0x00000000, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff};
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (!(tchar[c >> 5] & (1u << (c & 31))))
            return false;
    }
    return true;
}

static int on_headers_complete(llhttp_t *parser)
{
    dp_http1 *p = P(parser);
    dp_http1_head *h = &p->head;

    /* head_bytes stops growing here, so views into it stay valid for this message. */
    if (p->n_spans > p->cap_headers || h->headers == NULL) {
        p->cap_headers = p->n_spans > 16 ? p->n_spans : 16;
        h->headers = nano_xrealloc(h->headers, p->cap_headers * sizeof *h->headers);
    }
    for (size_t i = 0; i < p->n_spans; i++) {
        const struct head_span *s = &p->spans[i];
        h->headers[i].name = (nano_str){p->head_bytes.data + s->name_off, s->name_len};
        h->headers[i].value =
            trim_ows((nano_str){p->head_bytes.data + s->value_off, s->value_len});
        if (!is_token(h->headers[i].name))
            return fail(p, 400, "invalid header name");
        if (nano_str_ieq(h->headers[i].name, NANO_STR("host")))
            h->host = h->headers[i].value;
        else if (nano_str_ieq(h->headers[i].name, NANO_STR("expect")))
            h->expect_continue = nano_str_ieq(h->headers[i].value, NANO_STR("100-continue"));
    }
    h->n_headers = p->n_spans;
    h->method = nano_str_c(llhttp_method_name((llhttp_method_t)parser->method));
    h->target = (nano_str){p->head_bytes.data + p->target_off, p->target_len};
    h->version_major = parser->http_major;
    h->version_minor = parser->http_minor;
    h->keep_alive = llhttp_should_keep_alive(parser);
    h->is_head_method = parser->method == HTTP_HEAD;
    h->is_upgrade = parser->upgrade || parser->method == HTTP_CONNECT;
    bool chunked = (parser->flags & F_CHUNKED) != 0;
    bool has_length = (parser->flags & F_CONTENT_LENGTH) != 0;
    h->content_length = has_length ? (int64_t)parser->content_length : -1;
    h->has_body = chunked || (has_length && parser->content_length > 0);
    if (h->target.len == 0)
        return fail(p, 400, "empty request target");
    /* RFC 9112 §3.2: a 1.1 request without Host is a 400. */
    if (h->version_major == 1 && h->version_minor >= 1 && h->host.len == 0)
        return fail(p, 400, "missing Host header");
    if (has_length && parser->content_length > p->limits.max_body)
        return fail(p, 413, "request body too large");
    p->head_ready = true;
    p->pause = PAUSE_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *parser, const char *at, size_t len)
{
    dp_http1 *p = P(parser);
    p->body_size += len;
    if (p->body_size > p->limits.max_body)
        return fail(p, 413, "request body too large");
    if (p->on_body != NULL && p->on_body(p->ud, at, len) != 0)
        return fail(p, 400, "request body rejected");
    return 0;
}

static int on_message_complete(llhttp_t *parser)
{
    dp_http1 *p = P(parser);
    p->in_message = false;
    p->pause = PAUSE_DONE;
    return HPE_PAUSED;
}

void dp_http1_init(dp_http1 *p, const dp_http1_limits *limits, dp_http1_body_cb body_cb, void *ud)
{
    memset(p, 0, sizeof *p);
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = on_message_begin;
    p->settings.on_url = on_url;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->parser, HTTP_REQUEST, &p->settings);
    p->parser.data = p;
    p->limits = *limits;
    p->on_body = body_cb;
    p->ud = ud;
}

void dp_http1_fini(dp_http1 *p)
{
    nano_buf_fini(&p->head_bytes);
    nano_free(p->spans);
    nano_free(p->head.headers);
    p->spans = NULL;
    p->head.headers = NULL;
}

dp_http1_event dp_http1_feed(dp_http1 *p, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (p->error_status != 0)
        return DP_HTTP1_ERROR;
    p->pause = PAUSE_NONE;
    llhttp_errno_t e = llhttp_execute(&p->parser, data, len);
    switch (e) {
    case HPE_OK:
        *consumed = len;
        return DP_HTTP1_NEED_MORE;
    case HPE_PAUSED:
        *consumed = (size_t)(llhttp_get_error_pos(&p->parser) - data);
        llhttp_resume(&p->parser);
        return p->pause == PAUSE_HEAD ? DP_HTTP1_HEAD : DP_HTTP1_DONE;
    case HPE_PAUSED_UPGRADE:
        /* The upgraded protocol's bytes follow; we answer and close, never parse them. */
        *consumed = len;
        return DP_HTTP1_NEED_MORE;
    default:
        if (p->error_status == 0) {
            p->error_status = 400;
            p->error_reason = llhttp_get_error_reason(&p->parser);
        }
        return DP_HTTP1_ERROR;
    }
}

dp_http1_event dp_http1_finish(dp_http1 *p)
{
    if (p->error_status != 0)
        return DP_HTTP1_ERROR;
    /* Between messages the peer may close at any time (llhttp, resumed after the pause at
     * a message's end, would call that EOF an error). */
    if (!p->in_message)
        return DP_HTTP1_NEED_MORE;
    if (llhttp_finish(&p->parser) != HPE_OK) {
        p->error_status = 400;
        p->error_reason = "connection closed in the middle of a request";
        return DP_HTTP1_ERROR;
    }
    return DP_HTTP1_NEED_MORE;
}

const dp_http1_head *dp_http1_current(const dp_http1 *p)
{
    return &p->head;
}

bool dp_http1_in_message(const dp_http1 *p)
{
    return p->in_message;
}

int dp_http1_error_status(const dp_http1 *p)
{
    return p->error_status;
}

const char *dp_http1_error_reason(const dp_http1 *p)
{
    return p->error_reason ? p->error_reason : "malformed request";
}
