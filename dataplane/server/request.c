/* request.c: the request context shared by the connection and the runtime, and the
 * response's wire format (RFC 9112 §4-7). */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "server_int.h"

static size_t total_head_size(const dp_http1_head *h, size_t url_len)
{
    size_t n = h->method.len + url_len + 2;
    for (size_t i = 0; i < h->n_headers; i++)
        n += h->headers[i].name.len + h->headers[i].value.len + 2;
    return n;
}

static nano_str copy_str(char **cursor, nano_str s)
{
    char *dst = *cursor;
    if (s.len)
        memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    *cursor += s.len + 1;
    return (nano_str){dst, s.len};
}

/* "host:8080" -> "host", "[::1]:8080" -> "[::1]" (routing ignores the port). */
static nano_str strip_port(nano_str host)
{
    for (size_t i = host.len; i > 0; i--) {
        char ch = host.ptr[i - 1];
        if (ch == ':')
            return (nano_str){host.ptr, i - 1};
        if (ch < '0' || ch > '9')
            break;
    }
    return host;
}

/* The path of an absolute URL, without query or fragment ("/" when it has none). */
static nano_str url_path(nano_str url)
{
    const char *p = url.ptr, *end = url.ptr + url.len;
    const char *scheme = memchr(p, ':', url.len);
    if (scheme != NULL && scheme + 2 < end && scheme[1] == '/' && scheme[2] == '/') {
        p = memchr(scheme + 3, '/', (size_t)(end - scheme - 3));
        if (p == NULL)
            return NANO_STR("/");
    }
    const char *stop = p;
    while (stop < end && *stop != '?' && *stop != '#')
        stop++;
    return (nano_str){p, (size_t)(stop - p)};
}

dp_request *dp_request__new(dp_conn *c, const dp_http1_head *head)
{
    /* The URL the app sees is absolute (Fetch: request's URL). The authority comes from Host;
     * an HTTP/1.0 request may lack it, then we name ourselves. An absolute-form target
     * (a proxy-style request) is used as it is. */
    nano_str host = head->host;
    char self[64];
    if (host.len == 0) {
        int n = snprintf(self, sizeof self, "localhost:%d", c->srv->bound_port);
        host = (nano_str){self, (size_t)n};
    }
    bool absolute = head->target.len > 0 && head->target.ptr[0] != '/';
    size_t url_len = absolute ? head->target.len : 7 + host.len + head->target.len;

    /* One block: the struct, the header array, then every string NUL-terminated. */
    size_t strings = total_head_size(head, url_len) + head->n_headers * 2 + head->host.len + 1;
    size_t hdr_bytes = head->n_headers * sizeof(dp_header);
    /* malloc and a memset of the struct alone: glibc's calloc skips the thread cache and
     * clears the whole block, a measurable part of a small request. */
    dp_request *req = nano_xmalloc(sizeof *req + hdr_bytes + strings);
    memset(req, 0, sizeof *req);
    req->headers = (dp_header *)(req + 1);
    char *cursor = (char *)req->headers + hdr_bytes;

    req->refs = 1; /* the connection's */
    req->id = ((uint64_t)c->srv->opts.worker_index << 48) | c->srv->next_request_id++;
    req->srv = c->srv;
    req->conn = c;
    req->method = copy_str(&cursor, head->method);
    char *url = cursor;
    if (absolute) {
        memcpy(url, head->target.ptr, head->target.len);
    } else {
        memcpy(url, "http://", 7);
        memcpy(url + 7, host.ptr, host.len);
        memcpy(url + 7 + host.len, head->target.ptr, head->target.len);
    }
    url[url_len] = '\0';
    req->url = (nano_str){url, url_len};
    cursor += url_len + 1;
    req->host = copy_str(&cursor, strip_port(head->host));
    req->path = url_path(req->url);
    req->start_ns = uv_hrtime();
    for (size_t i = 0; i < head->n_headers; i++) {
        req->headers[i].name = copy_str(&cursor, head->headers[i].name);
        req->headers[i].value = copy_str(&cursor, head->headers[i].value);
    }
    req->n_headers = head->n_headers;
    req->has_body = head->has_body;
    req->is_head_method = head->is_head_method;
    req->body_complete = !head->has_body;
    req->rt_slot = UINT32_MAX;
    req->length_left = -1;
    c->srv->n_requests++;
    return req;
}

nano_str dp_request_method(const dp_request *req)
{
    return req->method;
}
nano_str dp_request_url(const dp_request *req)
{
    return req->url;
}
size_t dp_request_n_headers(const dp_request *req)
{
    return req->n_headers;
}
const dp_header *dp_request_header(const dp_request *req, size_t i)
{
    return &req->headers[i];
}
bool dp_request_has_body(const dp_request *req)
{
    return req->has_body;
}
uint64_t dp_request_id(const dp_request *req)
{
    return req->id;
}
bool dp_request_connected(const dp_request *req)
{
    return req->conn != NULL;
}
nano_str dp_request_host(const dp_request *req)
{
    return req->host;
}
nano_str dp_request_path(const dp_request *req)
{
    return req->path;
}
uint64_t dp_request_start_ns(const dp_request *req)
{
    return req->start_ns;
}
int dp_request_status(const dp_request *req)
{
    return req->status;
}
uint64_t dp_request_bytes_out(const dp_request *req)
{
    return req->bytes_out;
}
void dp_request_set_listener(dp_request *req, const dp_request_listener *l, void *ud)
{
    req->listener = l;
    req->listener_ud = l != NULL ? ud : NULL;
}

void *dp_request_listener_ud(const dp_request *req)
{
    return req->listener_ud;
}
void dp_request_set_app(dp_request *req, void *app_ud)
{
    req->app_ud = app_ud;
}
void *dp_request_app(const dp_request *req)
{
    return req->app_ud;
}
void dp_request_set_max_body(dp_request *req, uint64_t max_body)
{
    req->max_body = max_body;
}
const nano_buf *dp_request_body(const dp_request *req)
{
    return &req->body;
}
bool dp_request_body_complete(const dp_request *req)
{
    return req->body_complete;
}
bool dp_request_body_failed(const dp_request *req)
{
    return req->body_failed;
}
void *dp_request_take_body(dp_request *req, size_t *len)
{
    void *data = req->body.data;
    *len = req->body.len;
    /* The taker (an ArrayBuffer) accounts for len bytes: give back the slack. */
    if (data != NULL && req->body.cap > req->body.len + 4096) {
        void *smaller = nano_realloc(data, req->body.len);
        if (smaller != NULL)
            data = smaller;
    }
    req->body = NANO_BUF_INIT;
    if (req->conn != NULL)
        dp_conn__body_taken(req->conn);
    return data;
}

void dp_request_body_collect(dp_request *req)
{
    req->is_body_collected = true;
    if (req->conn != NULL)
        dp_conn__body_taken(req->conn);
}

void dp_request_body_discard(dp_request *req)
{
    if (req->is_body_discarded)
        return;
    req->is_body_discarded = true;
    nano_buf_fini(&req->body);
    dp_request__body_end(req, true);
    if (req->conn != NULL)
        dp_conn__body_taken(req->conn);
}

void dp_request_refuse_body(dp_request *req)
{
    if (req->conn == NULL || req->status != 0)
        return;
    req->is_body_refused = true;
    dp_conn__refuse_body(req->conn);
}

void dp_request_set_rt_slot(dp_request *req, uint32_t slot)
{
    req->rt_slot = slot;
}
uint32_t dp_request_rt_slot(const dp_request *req)
{
    return req->rt_slot;
}
bool dp_response_started(const dp_request *req)
{
    return req->status != 0;
}

void dp_request_ref(dp_request *req)
{
    req->refs++;
}

void dp_request_unref(dp_request *req)
{
    if (req == NULL || --req->refs > 0)
        return;
    dp_server *srv = req->srv;
    nano_buf_fini(&req->body);
    nano_free(req);
    srv->n_requests--;
    dp_server__check_drained(srv);
}

void dp_request__detach(dp_request *req)
{
    req->conn = NULL;
    dp_request_unref(req);
}

void dp_request__body_append(dp_request *req, const char *data, size_t len)
{
    /* The parser enforced the server's body limit; an app may have a lower one. */
    req->body_received += len;
    if (req->max_body > 0 && req->body_received > req->max_body) {
        if (req->conn != NULL && req->status == 0)
            dp_response_error(req, 413);
        req->is_body_discarded = true;
        dp_request__body_end(req, true);
        nano_buf_fini(&req->body);
        return;
    }
    if (req->is_body_piped)
        dp_response_write(req, data, len); /* sent with the connection's next flush */
    else if (!req->is_body_discarded)
        nano_buf_append(&req->body, data, len);
}

void dp_response_pipe_body(dp_request *req)
{
    req->is_body_piped = true;
    if (req->body.len > 0) {
        dp_response_write(req, req->body.data, req->body.len);
        nano_buf_fini(&req->body);
    }
    if (req->body_complete) {
        if (req->body_failed && req->conn != NULL)
            dp_conn__response_failed(req->conn);
        else
            dp_response_end(req);
        return;
    }
    if (req->conn != NULL) {
        dp_conn__flush(req->conn);
        dp_conn__body_taken(req->conn);
    }
}

void dp_request__body_end(dp_request *req, bool failed)
{
    if (req->body_complete)
        return;
    req->body_complete = true;
    req->body_failed = failed;
    if (req->is_body_piped) {
        if (failed) {
            if (req->conn != NULL)
                dp_conn__response_failed(req->conn);
        } else {
            dp_response_end(req);
        }
        return;
    }
    if (req->listener != NULL)
        req->listener->body_event(req->listener_ud, req);
}

const char *dp_request__reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

/* What the server makes of an app's response header: framing headers are the server's own
 * (the app's say-so would desynchronize the message), a Date replaces the server's. */
enum { HEADER_PLAIN, HEADER_FRAMING, HEADER_DATE };

static int header_kind(nano_str name)
{
    switch (name.len) {
    case 4: return nano_str_ieq(name, NANO_STR("date")) ? HEADER_DATE : HEADER_PLAIN;
    case 10:
        return nano_str_ieq(name, NANO_STR("connection")) ||
                       nano_str_ieq(name, NANO_STR("keep-alive"))
                   ? HEADER_FRAMING
                   : HEADER_PLAIN;
    case 14: return nano_str_ieq(name, NANO_STR("content-length")) ? HEADER_FRAMING : HEADER_PLAIN;
    case 17:
        return nano_str_ieq(name, NANO_STR("transfer-encoding")) ? HEADER_FRAMING : HEADER_PLAIN;
    default: return HEADER_PLAIN;
    }
}

static bool has_bad_bytes(nano_str s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] == '\r' || s.ptr[i] == '\n' || s.ptr[i] == '\0')
            return true;
    return false;
}

/* The status line, after the checks every form of dp_response_start makes. */
static int head_begin(dp_request *req, int status, nano_str status_text)
{
    dp_conn *c = req->conn;
    if (req->status != 0 || c == NULL)
        return NANO_ESTATE;
    if (has_bad_bytes(status_text))
        return NANO_EINVAL;
    req->status = status;
    /* RFC 9110 §6.4.1: 1xx, 204 and 304 never carry content. */
    req->is_body_skipped = status < 200 || status == 204 || status == 304 || req->is_head_method;
    nano_buf *out = &c->out;
    if (status == 200 && status_text.len == 0) {
        nano_buf_append(out, "HTTP/1.1 200 OK\r\n", 17);
        return 0;
    }
    if (status_text.len == 0)
        status_text = nano_str_c(dp_request__reason_phrase(status));
    char *p = nano_buf_reserve(out, 16 + status_text.len);
    memcpy(p, "HTTP/1.1 ", 9);
    p[9] = (char)('0' + status / 100 % 10);
    p[10] = (char)('0' + status / 10 % 10);
    p[11] = (char)('0' + status % 10);
    p[12] = ' ';
    memcpy(p + 13, status_text.ptr, status_text.len);
    memcpy(p + 13 + status_text.len, "\r\n", 2);
    out->len += 15 + status_text.len;
    return 0;
}

/* The head after the app's header lines: Date unless the app gave one, the framing headers
 * and the blank line, written into one reservation. */
static void head_end(dp_request *req, bool has_date, int64_t content_length)
{
    dp_conn *c = req->conn;
    const dp_http1_head *head = dp_http1_current(&c->http);
    bool is_http10 = head->version_major == 1 && head->version_minor == 0;
    int status = req->status;
    bool no_content = status < 200 || status == 204 || status == 304;
    if (!req->is_body_skipped && content_length >= 0)
        req->length_left = content_length;
    /* date (37) + content-length (38) or transfer-encoding (28) + connection (24) + CRLF */
    char *start = nano_buf_reserve(&c->out, 128);
    char *p = start;
#define PUT(lit) (memcpy(p, (lit), sizeof(lit) - 1), p += sizeof(lit) - 1)
    if (!has_date) {
        PUT("date: ");
        memcpy(p, dp_server__date(c->srv), DP_DATE_LEN);
        p += DP_DATE_LEN;
        PUT("\r\n");
    }
    if (!no_content) {
        if (content_length >= 0) {
            PUT("content-length: ");
            char digits[20];
            size_t i = sizeof digits;
            uint64_t v = (uint64_t)content_length;
            do {
                digits[--i] = (char)('0' + v % 10);
                v /= 10;
            } while (v != 0);
            memcpy(p, digits + i, sizeof digits - i);
            p += sizeof digits - i;
            PUT("\r\n");
        } else if (is_http10) {
            req->is_close_delimited = true; /* HTTP/1.0 has no chunked encoding */
            c->close_after = true;
        } else if (!req->is_head_method) {
            req->is_chunked = true;
            PUT("transfer-encoding: chunked\r\n");
        }
    }
    if (c->close_after || c->srv->is_draining)
        PUT("connection: close\r\n");
    else if (is_http10)
        PUT("connection: keep-alive\r\n");
    PUT("\r\n");
#undef PUT
    c->out.len += (size_t)(p - start);
}

int dp_response_start(dp_request *req, int status, nano_str status_text, const dp_header *headers,
                      size_t n_headers, int64_t content_length)
{
    for (size_t i = 0; i < n_headers; i++)
        if (headers[i].name.len == 0 || has_bad_bytes(headers[i].name) ||
            has_bad_bytes(headers[i].value))
            return NANO_EINVAL;
    int rc = head_begin(req, status, status_text);
    if (rc != 0)
        return rc;
    nano_buf *out = &req->conn->out;
    bool has_date = false;
    for (size_t i = 0; i < n_headers; i++) {
        int kind = header_kind(headers[i].name);
        if (kind == HEADER_FRAMING)
            continue;
        has_date = has_date || kind == HEADER_DATE;
        nano_buf_append(out, headers[i].name.ptr, headers[i].name.len);
        nano_buf_append(out, ": ", 2);
        nano_buf_append(out, headers[i].value.ptr, headers[i].value.len);
        nano_buf_append(out, "\r\n", 2);
    }
    head_end(req, has_date, content_length);
    return 0;
}

/* Checks the header lines just written to out at [start, out->len): each "name: value\r\n"
 * with a non-empty name, no NUL and no CR or LF but the line ends. Framing headers are taken
 * out (the server frames the message itself). Returns false for a malformed block; sets
 * *has_date when a Date line is there. */
static bool settle_block(nano_buf *out, size_t start, bool *has_date)
{
    size_t i = start;
    while (i < out->len) {
        char *line = out->data + i;
        size_t left = out->len - i;
        char *cr = memchr(line, '\r', left);
        if (cr == NULL || (size_t)(cr - line) + 1 >= left || cr[1] != '\n')
            return false;
        size_t n = (size_t)(cr - line);
        char *colon = memchr(line, ':', n);
        if (colon == NULL || colon == line || memchr(line, '\n', n) != NULL ||
            memchr(line, '\0', n) != NULL)
            return false;
        int kind = header_kind((nano_str){line, (size_t)(colon - line)});
        if (kind == HEADER_FRAMING) {
            memmove(line, line + n + 2, left - n - 2);
            out->len -= n + 2;
            continue;
        }
        if (kind == HEADER_DATE)
            *has_date = true;
        i += n + 2;
    }
    return true;
}

int dp_response_start_block(dp_request *req, int status, nano_str status_text, size_t block_len,
                            void (*fill)(void *ud, char *dst), void *ud, int64_t content_length)
{
    dp_conn *c = req->conn;
    size_t mark = c != NULL ? c->out.len : 0;
    int rc = head_begin(req, status, status_text);
    if (rc != 0)
        return rc;
    nano_buf *out = &c->out;
    size_t start = out->len;
    if (block_len > 0) {
        fill(ud, nano_buf_reserve(out, block_len));
        out->len += block_len;
    }
    bool has_date = false;
    if (!settle_block(out, start, &has_date)) {
        out->len = mark;
        req->status = 0;
        req->is_body_skipped = false;
        return NANO_EINVAL;
    }
    head_end(req, has_date, content_length);
    return 0;
}

int dp_response_write(dp_request *req, const void *data, size_t len)
{
    dp_conn *c = req->conn;
    if (req->status == 0 || req->is_ended || c == NULL)
        return NANO_ESTATE;
    if (req->is_body_skipped || len == 0)
        return 0;
    if (req->length_left >= 0) {
        /* A body longer than its Content-Length: the excess would be read as the next
         * response; drop it (dp_response_end fails short bodies). */
        if ((uint64_t)req->length_left < len)
            len = (size_t)req->length_left;
        req->length_left -= (int64_t)len;
    }
    req->bytes_out += len;
    req->bytes_since_yield += len;
    /* uv_buf_t's len is a size_t; uv_buf_init's parameter is not (a 4 GiB body became 0
     * bytes under a header announcing 4 GiB). dp_conn__send cuts pieces libuv can carry. */
    if (req->is_chunked) {
        char size_line[24];
        int n = snprintf(size_line, sizeof size_line, "%zx\r\n", len);
        uv_buf_t bufs[3] = {{.base = size_line, .len = (size_t)n},
                            {.base = (char *)data, .len = len},
                            {.base = (char *)"\r\n", .len = 2}};
        dp_conn__send(c, bufs, 3);
    } else if (len > 0) {
        uv_buf_t buf = {.base = (char *)data, .len = len};
        dp_conn__send(c, &buf, 1);
    }
    return 0;
}

void dp_response_flush(dp_request *req)
{
    if (req->conn != NULL)
        dp_conn__flush(req->conn);
}

bool dp_response_writable(dp_request *req)
{
    dp_conn *c = req->conn;
    if (c == NULL)
        return true;
    if (c->out.len + c->write_bytes >= DP_RESPONSE_HIGH_WATER_MARK) {
        req->wants_writable = true;
        return false;
    }
    if (req->bytes_since_yield >= DP_RESPONSE_YIELD_BYTES) {
        /* A fast reader never backs the socket up, so a generated body would be produced in
         * one JS run: other connections would starve and the CPU limit would stop it. Go on
         * at the next loop turn instead. */
        req->wants_writable = true;
        req->is_yielding = true;
        dp_server__schedule(c->srv, c);
        return false;
    }
    return true;
}

bool dp_response_body_wanted(const dp_request *req)
{
    return !req->is_body_skipped;
}

int dp_response_end(dp_request *req)
{
    dp_conn *c = req->conn;
    if (req->status == 0 || req->is_ended)
        return NANO_ESTATE;
    req->is_ended = true;
    if (c == NULL)
        return NANO_ESTATE;
    if (req->length_left > 0) {
        /* Fewer bytes than the Content-Length promised: only closing tells the client. */
        NANO_DEBUG("conn.short_body", "request_id=%llx missing=%lld", (unsigned long long)req->id,
                   (long long)req->length_left);
        dp_conn__response_failed(c);
        return NANO_ESTATE;
    }
    if (req->is_chunked)
        nano_buf_append(&c->out, "0\r\n\r\n", 5);
    dp_conn__response_done(c);
    return 0;
}

void dp_response_error(dp_request *req, int status)
{
    if (req->conn == NULL || req->is_ended)
        return;
    if (req->status != 0) {
        dp_conn__response_failed(req->conn);
        return;
    }
    const char *text = dp_request__reason_phrase(status);
    static const dp_header type = {{"content-type", 12}, {"text/plain; charset=utf-8", 25}};
    if (dp_response_start(req, status, nano_str_c(text), &type, 1, (int64_t)strlen(text) + 1) ==
        0) {
        dp_response_write(req, text, strlen(text));
        dp_response_write(req, "\n", 1);
        dp_response_end(req);
    }
}
