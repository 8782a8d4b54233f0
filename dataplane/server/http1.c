#include "http1.h"

#include <string.h>

#include "alloc.h"
#include "parse.h"

enum { CB_NONE, CB_URL, CB_FIELD, CB_VALUE };
enum { PAUSE_NONE, PAUSE_HEAD, PAUSE_DONE };

/* Per header line, bytes not seen by the data callbacks: ": " and CRLF. */
#define HEADER_LINE_OVERHEAD 4

#define P(parser) ((dp_http1 *)(parser)->data)

static int fail(dp_http1 *p, int status, dp_refusal kind, const char *reason)
{
    p->error_status = status;
    p->error_kind = kind;
    p->error_reason = reason;
    return -1;
}

static int count_head(dp_http1 *p, size_t n)
{
    p->head_size += n;
    if (p->head_size > p->limits.max_head)
        return fail(p, 431, DP_REFUSED_HEAD_TOO_LARGE, "request head too large");
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
static bool is_tchar(unsigned char c)
{
    /* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" /
     * "|" / "~" / DIGIT / ALPHA: one bit per byte value. */
    static const uint32_t tchar[8] = {0x00000000, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff};
    return (tchar[c >> 5] >> (c & 31)) & 1u;
}

static bool is_token(nano_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar((unsigned char)s.ptr[i]))
            return false;
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
        h->headers[i].value = trim_ows((nano_str){p->head_bytes.data + s->value_off, s->value_len});
        if (!is_token(h->headers[i].name))
            return fail(p, 400, DP_REFUSED_MALFORMED, "invalid header name");
        if (nano_str_ieq(h->headers[i].name, NANO_STR("host"))) {
            if (h->host.ptr != NULL) /* RFC 9112 §3.2: more than one Host is a 400 */
                return fail(p, 400, DP_REFUSED_HOST, "more than one Host header");
            h->host = h->headers[i].value;
            if (h->host.ptr == NULL) /* an empty value: still seen, as one Host */
                h->host.ptr = p->head_bytes.data + s->value_off;
        } else if (nano_str_ieq(h->headers[i].name, NANO_STR("expect")))
            h->expect_continue = nano_str_ieq(h->headers[i].value, NANO_STR("100-continue"));
        else if (nano_str_ieq(h->headers[i].name, NANO_STR("transfer-encoding")) &&
                 !nano_str_ieq(h->headers[i].value, NANO_STR("chunked")))
            /* RFC 9112 §6.1: a coding the server does not understand is a 501 (and "xchunked"
             * read as no body would let a smuggled request through). */
            return fail(p, 501, DP_REFUSED_CODING, "unsupported transfer coding");
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
    /* llhttp's length is a uint64_t; ours is signed (-1: none): beyond INT64_MAX is no body
     * we would take anyway. */
    if (has_length && parser->content_length > (uint64_t)INT64_MAX)
        return fail(p, 413, DP_REFUSED_BODY_TOO_LARGE, "request body too large");
    h->content_length = has_length ? (int64_t)parser->content_length : -1;
    h->has_body = chunked || (has_length && parser->content_length > 0);
    if (h->target.len == 0)
        return fail(p, 400, DP_REFUSED_TARGET, "empty request target");
    if (!(h->version_major == 1 && (h->version_minor == 0 || h->version_minor == 1)))
        return fail(p, 505, DP_REFUSED_VERSION, "only HTTP/1.0 and HTTP/1.1");
    if (h->target.ptr[0] == '*' && h->target.len == 1)
        return fail(p, 400, DP_REFUSED_TARGET, "the asterisk-form target is not served");
    /* Absolute-form (RFC 9112 §3.2.2): the target's authority is the request's host, for
     * routing and request.url alike. */
    static const nano_str schemes[] = {NANO_STR("http://"), NANO_STR("https://")};
    for (size_t k = 0; k < 2; k++) {
        nano_str sch = schemes[k];
        if (h->target.len < sch.len || !nano_str_ieq((nano_str){h->target.ptr, sch.len}, sch))
            continue;
        size_t a = sch.len, e = a;
        while (e < h->target.len && h->target.ptr[e] != '/' && h->target.ptr[e] != '?' &&
               h->target.ptr[e] != '#')
            e++;
        nano_str authority = {h->target.ptr + a, e - a};
        if (!nano_http_host_valid(authority.ptr, authority.len))
            return fail(p, 400, DP_REFUSED_HOST, "invalid authority in the request target");
        h->host = authority;
    }
    /* RFC 9112 §3.2: a 1.1 request without Host is a 400; so is an invalid one. */
    if (h->version_major == 1 && h->version_minor >= 1 && h->host.len == 0)
        return fail(p, 400, DP_REFUSED_HOST, "missing Host header");
    if (h->host.len > 0 && !nano_http_host_valid(h->host.ptr, h->host.len))
        return fail(p, 400, DP_REFUSED_HOST, "invalid Host header");
    if (has_length && parser->content_length > p->limits.max_body)
        return fail(p, 413, DP_REFUSED_BODY_TOO_LARGE, "request body too large");
    p->head_ready = true;
    p->pause = PAUSE_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *parser, const char *at, size_t len)
{
    dp_http1 *p = P(parser);
    p->body_size += len;
    if (p->body_size > p->limits.max_body)
        return fail(p, 413, DP_REFUSED_BODY_TOO_LARGE, "request body too large");
    if (p->on_body != NULL && p->on_body(p->ud, at, len) != 0)
        return fail(p, 400, DP_REFUSED_MALFORMED, "request body rejected");
    return 0;
}

/* Chunk extensions (";name=value" after a chunk size) mean nothing to us, but llhttp reads
 * them to the line's end: unbounded, 1.5 GB of them made one request (the class of Node's
 * CVE-2024-22019). Each chunk's are bounded, and all of them count as body bytes. */
#define DP_HTTP1_CHUNK_EXT_MAX 4096

static int on_chunk_header(llhttp_t *parser)
{
    P(parser)->chunk_ext_bytes = 0;
    return 0;
}

static int on_chunk_extension(llhttp_t *parser, const char *at, size_t len)
{
    dp_http1 *p = P(parser);
    (void)at;
    p->chunk_ext_bytes += len;
    p->body_size += len;
    if (p->chunk_ext_bytes > DP_HTTP1_CHUNK_EXT_MAX)
        return fail(p, 400, DP_REFUSED_CHUNK_EXT, "chunk extensions too long");
    if (p->body_size > p->limits.max_body)
        return fail(p, 413, DP_REFUSED_BODY_TOO_LARGE, "request body too large");
    return 0;
}

static int on_message_complete(llhttp_t *parser)
{
    dp_http1 *p = P(parser);
    /* After a message that ends the connection, or upgrades it, llhttp takes no more
     * requests: nor may the fast path. */
    p->fast_ok = llhttp_should_keep_alive(parser) != 0 && !parser->upgrade;
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
    p->settings.on_chunk_header = on_chunk_header;
    p->settings.on_chunk_extension_name = on_chunk_extension;
    p->settings.on_chunk_extension_value = on_chunk_extension;
    p->settings.on_message_complete = on_message_complete;
    llhttp_init(&p->parser, HTTP_REQUEST, &p->settings);
    p->parser.data = p;
    p->fast_ok = true;
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

/* Request-target bytes the fast path takes (RFC 3986 pchar, '/', '?'): a strict subset of
 * what llhttp accepts. One bit per byte value. */
static bool is_target_char(unsigned char c)
{
    static const uint32_t ok[8] = {0x00000000, 0xaffffff2, 0x87ffffff, 0x47fffffe};
    return (ok[c >> 5] >> (c & 31)) & 1u;
}

/* Header value bytes the fast path takes: VCHAR, SP, HTAB (no obs-text, no controls). */
static bool is_value_char(unsigned char c)
{
    return (c >= 0x20 && c < 0x7f) || c == '\t';
}

static int fast_header_kind(nano_str name)
{
    /* Headers llhttp gives meaning to (framing, connection handling, upgrades), and Expect:
     * a request with any of them goes through llhttp. By length first: most names match
     * none of the lengths. */
    const char *special;
    switch (name.len) {
    case 4: return nano_str_ieq(name, NANO_STR("host")) ? 2 : 0;
    case 6: special = "expect"; break;
    case 7: special = "upgrade"; break;
    case 10: special = "connection"; break;
    case 14: special = "content-length"; break;
    case 16: special = "proxy-connection"; break;
    case 17: special = "transfer-encoding"; break;
    default: return 0;
    }
    return nano_str_ieq(name, nano_str_c(special)) ? 1 : 0;
}

/* The end of the head in data: the offset just past the first CRLF CRLF, or 0. */
static size_t head_end(const char *data, size_t len)
{
    const char *p = data, *end = data + len;
    while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (end - p < 4)
            return 0;
        if (p[1] == '\n' && p[2] == '\r' && p[3] == '\n')
            return (size_t)(p - data) + 4;
        p++;
    }
    return 0;
}

/* The common request, without llhttp: "GET" or "HEAD", one space, an origin-form target of
 * plain characters, " HTTP/1.1", CRLF; header lines "name:value" (token names, VCHAR/SP/HTAB
 * values) with CRLF; a Host; the empty line; all of it in data; no body and none of the
 * headers llhttp acts on. Fills p->head as on_headers_complete would and returns true;
 * anything else (or anything unsure) returns false, untouched, for llhttp to parse. This
 * path only accepts what llhttp accepts, with the same result: tests/fuzz/fuzz_http1 runs
 * both on every input and compares. About a tenth of a small request's instructions. */
static bool fast_head(dp_http1 *p, const char *data, size_t len, size_t *consumed)
{
    if (len < 18 || (data[0] != 'G' && data[0] != 'H'))
        return false;
    size_t head_len = head_end(data, len);
    if (head_len == 0 || head_len > p->limits.max_head)
        return false;
    bool is_head;
    size_t i;
    if (memcmp(data, "GET /", 5) == 0) {
        is_head = false;
        i = 4;
    } else if (memcmp(data, "HEAD /", 6) == 0) {
        is_head = true;
        i = 5;
    } else {
        return false;
    }
    size_t target_off = i;
    while (i < head_len && is_target_char((unsigned char)data[i]))
        i++;
    size_t target_len = i - target_off;
    if (i + 11 > head_len || memcmp(data + i, " HTTP/1.1\r\n", 11) != 0)
        return false;
    i += 11;

    /* Header lines; views go into head_bytes, a copy of the head (data is a read buffer
     * the next connection reuses). */
    size_t n = 0;
    size_t host = SIZE_MAX;
    while (!(data[i] == '\r' && data[i + 1] == '\n')) {
        size_t name_off = i;
        while (i < head_len && is_tchar((unsigned char)data[i]))
            i++;
        if (i == name_off || data[i] != ':')
            return false;
        size_t name_len = i - name_off;
        size_t value_off = ++i;
        while (i < head_len && is_value_char((unsigned char)data[i]))
            i++;
        if (i + 1 >= head_len || data[i] != '\r' || data[i + 1] != '\n')
            return false;
        int kind = fast_header_kind((nano_str){data + name_off, name_len});
        if (kind == 1)
            return false;
        if (n == p->cap_spans) {
            p->cap_spans = p->cap_spans ? p->cap_spans * 2 : 16;
            p->spans = nano_xrealloc(p->spans, p->cap_spans * sizeof *p->spans);
        }
        p->spans[n] = (struct head_span){name_off, name_len, value_off, i - value_off};
        if (kind == 2) {
            nano_str v = trim_ows((nano_str){data + value_off, i - value_off});
            if (host != SIZE_MAX || !nano_http_host_valid(v.ptr, v.len))
                return false; /* two Hosts, or not a valid one: llhttp's path answers 400 */
            host = n;
        }
        n++;
        i += 2;
    }
    if (host == SIZE_MAX)
        return false; /* no Host, or the last one empty: llhttp's path answers the 400 */

    nano_buf_reset(&p->head_bytes);
    nano_buf_append(&p->head_bytes, data, head_len);
    const char *b = p->head_bytes.data;
    if (n > p->cap_headers || p->head.headers == NULL) {
        p->cap_headers = n > 16 ? n : 16;
        p->head.headers = nano_xrealloc(p->head.headers, p->cap_headers * sizeof *p->head.headers);
    }
    dp_header *keep = p->head.headers;
    memset(&p->head, 0, sizeof p->head);
    dp_http1_head *h = &p->head;
    h->headers = keep;
    for (size_t k = 0; k < n; k++) {
        h->headers[k].name = (nano_str){b + p->spans[k].name_off, p->spans[k].name_len};
        h->headers[k].value =
            trim_ows((nano_str){b + p->spans[k].value_off, p->spans[k].value_len});
    }
    h->n_headers = n;
    h->host = h->headers[host].value;
    h->method = nano_str_c(llhttp_method_name(is_head ? HTTP_HEAD : HTTP_GET));
    h->target = (nano_str){b + target_off, target_len};
    h->version_major = 1;
    h->version_minor = 1;
    h->keep_alive = true;
    h->content_length = -1;
    h->is_head_method = is_head;
    p->n_spans = 0;
    p->head_size = head_len;
    p->body_size = 0;
    p->last_cb = CB_NONE;
    p->in_message = true;
    p->head_ready = true;
    p->fast_done_pending = true;
    *consumed = head_len;
    return true;
}

dp_http1_event dp_http1_feed(dp_http1 *p, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (p->error_status != 0)
        return DP_HTTP1_ERROR;
    if (p->fast_done_pending) {
        /* The fast path's message has no body: it is complete (llhttp says so on the next
         * feed too, consuming nothing). */
        p->fast_done_pending = false;
        p->in_message = false;
        return DP_HTTP1_DONE;
    }
    if (!p->in_message && p->fast_ok && !p->no_fast_path && fast_head(p, data, len, consumed))
        return DP_HTTP1_HEAD;
    p->pause = PAUSE_NONE;
    llhttp_errno_t e = llhttp_execute(&p->parser, data, len);
    switch (e) {
    case HPE_OK: *consumed = len; return DP_HTTP1_NEED_MORE;
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
            p->error_kind = DP_REFUSED_MALFORMED;
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
        p->error_kind = DP_REFUSED_CUT_SHORT;
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

dp_refusal dp_http1_error_kind(const dp_http1 *p)
{
    return p->error_kind;
}

const char *dp_refusal_name(dp_refusal r)
{
    static const char *const names[DP_REFUSED_COUNT] = {
        [DP_REFUSED_MALFORMED] = "malformed",
        [DP_REFUSED_CUT_SHORT] = "cut_short",
        [DP_REFUSED_HOST] = "host",
        [DP_REFUSED_TARGET] = "target",
        [DP_REFUSED_CHUNK_EXT] = "chunk_extensions",
        [DP_REFUSED_HEAD_TOO_LARGE] = "head_too_large",
        [DP_REFUSED_BODY_TOO_LARGE] = "body_too_large",
        [DP_REFUSED_CODING] = "transfer_coding",
        [DP_REFUSED_VERSION] = "version",
        [DP_REFUSED_HEAD_TIMEOUT] = "head_timeout",
        [DP_REFUSED_BODY_IDLE] = "body_idle",
        [DP_REFUSED_BODY_SLOW] = "body_too_slow",
    };
    return (unsigned)r < DP_REFUSED_COUNT ? names[r] : "other";
}

const char *dp_http1_error_reason(const dp_http1 *p)
{
    return p->error_reason ? p->error_reason : "malformed request";
}
