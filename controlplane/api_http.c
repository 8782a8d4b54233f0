#include "api_http.h"

#include <errno.h>
#include <inttypes.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "container.h"
#include "log.h"
#include "parse.h"
#include "mpjson.h"

/* Per header line, bytes the data callbacks do not see: ": " and CRLF. */
#define HEADER_LINE_OVERHEAD 4
#define READ_BUF_SIZE (64u * 1024)
#define SEGMENT_MAX 255 /* a decoded {name} or {key} path segment, in bytes */
/* A client that pipelines requests without reading the answers: stop reading once this much
 * is queued for it, read again when the queue has drained. */
#define WRITE_QUEUE_HIGH (4u * 1024 * 1024)

/* --- routes (docs/admin-api.md) -------------------------------------------------------------- */

typedef enum body_kind {
    BODY_NONE,  /* ignored if sent */
    BODY_JSON,  /* a JSON object, at most CP_HTTP_MAX_JSON_BODY */
    BODY_CODE,  /* module bytes, or an application/json bundle; at most max_body */
    BODY_VALUE, /* a secret's value, as is; at most CP_HTTP_MAX_JSON_BODY */
} body_kind;

typedef enum special {
    SPECIAL_NONE,
    SPECIAL_HEALTHZ,
    SPECIAL_METRICS,
} special;

typedef struct endpoint {
    int method; /* llhttp_method_t */
    const char *op;
    body_kind body;
    int ok_status;
} endpoint;

typedef struct route {
    const char *tmpl; /* segments; {name} and {key} capture one segment each */
    special special;
    endpoint eps[3];
} route;

static const route routes[] = {
    {"/healthz", SPECIAL_HEALTHZ, {{HTTP_GET, NULL, BODY_NONE, 200}}},
    {"/metrics", SPECIAL_METRICS, {{HTTP_GET, NULL, BODY_NONE, 200}}},
    {"/v1/apps",
     SPECIAL_NONE,
     {{HTTP_GET, "apps.list", BODY_NONE, 200}, {HTTP_POST, "apps.create", BODY_JSON, 201}}},
    {"/v1/apps/{name}",
     SPECIAL_NONE,
     {{HTTP_GET, "apps.get", BODY_NONE, 200},
      {HTTP_PATCH, "apps.update", BODY_JSON, 200},
      {HTTP_DELETE, "apps.remove", BODY_NONE, 202}}},
    {"/v1/apps/{name}/drain", SPECIAL_NONE, {{HTTP_GET, "apps.drain", BODY_NONE, 200}}},
    {"/v1/apps/{name}/code", SPECIAL_NONE, {{HTTP_PUT, "apps.deploy", BODY_CODE, 201}}},
    {"/v1/apps/{name}/deployments",
     SPECIAL_NONE,
     {{HTTP_GET, "deployments.list", BODY_NONE, 200}}},
    {"/v1/apps/{name}/rollback", SPECIAL_NONE, {{HTTP_POST, "apps.rollback", BODY_JSON, 200}}},
    {"/v1/apps/{name}/env",
     SPECIAL_NONE,
     {{HTTP_GET, "env.get", BODY_NONE, 200},
      {HTTP_PATCH, "env.patch", BODY_JSON, 200},
      {HTTP_PUT, "env.replace", BODY_JSON, 200}}},
    {"/v1/apps/{name}/secrets", SPECIAL_NONE, {{HTTP_GET, "secrets.list", BODY_NONE, 200}}},
    {"/v1/apps/{name}/secrets/{key}",
     SPECIAL_NONE,
     {{HTTP_PUT, "secrets.put", BODY_VALUE, 200},
      {HTTP_DELETE, "secrets.delete", BODY_NONE, 200}}},
    {"/v1/nodes", SPECIAL_NONE, {{HTTP_GET, "nodes.list", BODY_NONE, 200}}},
    {"/v1/nodes/{name}", SPECIAL_NONE, {{HTTP_DELETE, "nodes.remove", BODY_NONE, 200}}},
    {"/v1/audit", SPECIAL_NONE, {{HTTP_GET, "audit.list", BODY_NONE, 200}}},
    {"/v1/version", SPECIAL_NONE, {{HTTP_GET, "version", BODY_NONE, 200}}},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])
#define ROUTE_NONE ((int)N_ROUTES) /* metrics label "other" */

/* --- server and connection state ---------------------------------------------------------- */

typedef struct counter {
    int route;
    int method;
    int status;
    uint64_t n;
} counter;

typedef struct error_counter {
    char code[48];
    uint64_t n;
} error_counter;

typedef enum conn_state {
    CONN_OPEN,    /* reading requests */
    CONN_DRAINING, /* a final response is queued; close once written */
    CONN_CLOSING, /* handles closing; freed by the last close callback */
} conn_state;

typedef struct conn conn;

/* Why a connection was answered 4xx/5xx and closed at the protocol level: the reason label of
 * nanocp_http_protocol_errors_total (a fixed set, so the series stay bounded). */
typedef enum refusal {
    REFUSED_MALFORMED,      /* 400: framing the strict parser refuses, or a repeated header */
    REFUSED_HOST,           /* 400: Host missing or invalid */
    REFUSED_VERSION,        /* 505 */
    REFUSED_CODING,         /* 501: a transfer coding other than chunked */
    REFUSED_HEAD_TOO_LARGE, /* 431 */
    REFUSED_BODY_TOO_LARGE, /* 413 */
    REFUSED_TIMEOUT,        /* 408: a request not received in time (see arm_timer) */
    REFUSED_COUNT
} refusal;

static const char *const refusal_names[REFUSED_COUNT] = {
    [REFUSED_MALFORMED] = "malformed",
    [REFUSED_HOST] = "host",
    [REFUSED_VERSION] = "version",
    [REFUSED_CODING] = "transfer_coding",
    [REFUSED_HEAD_TOO_LARGE] = "head_too_large",
    [REFUSED_BODY_TOO_LARGE] = "body_too_large",
    [REFUSED_TIMEOUT] = "timeout",
};

struct cp_http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    cp_call_cb call;
    cp_token_check_cb check;
    void *ud;
    size_t max_body;
    int port;
    llhttp_settings_t settings;
    conn *conns; /* doubly linked */
    size_t n_conns;
    bool is_closing;
    bool is_listener_closed;
    cp_api_closed_cb closed_cb;
    void *closed_arg;
    counter *counters;
    size_t n_counters, cap_counters;
    error_counter *errors;
    size_t n_errors, cap_errors;
    uint64_t n_refused[REFUSED_COUNT];
    uint64_t request_grace_ms; /* cp_http_set_request_timing */
    uint64_t body_min_rate;
};

enum { CB_NONE, CB_FIELD, CB_VALUE };

struct conn {
    cp_http *srv;
    conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    int n_open_handles;
    conn_state state;
    llhttp_t parser;
    char *rbuf;
    size_t n_pending_writes;
    bool is_read_paused; /* by WRITE_QUEUE_HIGH */
    bool in_request;      /* a request's first byte came and its last has not */
    uint64_t req_started; /* loop time of that first byte (moved on by paused time) */
    uint64_t paused_at;   /* loop time is_read_paused was set */
    /* the request being parsed */
    nano_buf url;
    nano_buf field;
    nano_buf value;
    int last_cb;
    size_t head_size;
    char *authorization;
    char *content_type;
    char *host;
    bool is_expect_continue;
    bool is_head_done;
    bool is_last; /* no request follows this one: answer with Connection: close */
    bool is_method_known; /* parser.method is this request's (a metrics label) */
    nano_buf body;
    size_t body_limit;
    int route;
    const endpoint *ep;
    char params[2][SEGMENT_MAX + 1]; /* {name}, {key} */
    char who[64]; /* the token's name, for the audit log */
    /* an answer decided from the head (404, 405, 401, 400): sent once the body is read */
    int early_status;
    char early_code[48];
    char early_message[320];
    char early_field[32];
    char early_allow[96]; /* "Allow: ...\r\n" for a 405 */
};

typedef struct write_req {
    uv_write_t req;
    conn *c;
    nano_buf data;
} write_req;

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* --- metrics ------------------------------------------------------------------------------ */

static void count_request(cp_http *h, int route_idx, int method, int status)
{
    for (size_t i = 0; i < h->n_counters; i++) {
        counter *k = &h->counters[i];
        if (k->route == route_idx && k->method == method && k->status == status) {
            k->n++;
            return;
        }
    }
    if (h->n_counters == h->cap_counters) {
        h->cap_counters = h->cap_counters ? h->cap_counters * 2 : 32;
        h->counters = nano_xrealloc(h->counters, h->cap_counters * sizeof *h->counters);
    }
    h->counters[h->n_counters++] = (counter){route_idx, method, status, 1};
}

static void count_error(cp_http *h, const char *code)
{
    for (size_t i = 0; i < h->n_errors; i++) {
        if (strcmp(h->errors[i].code, code) == 0) {
            h->errors[i].n++;
            return;
        }
    }
    if (h->n_errors == h->cap_errors) {
        h->cap_errors = h->cap_errors ? h->cap_errors * 2 : 16;
        h->errors = nano_xrealloc(h->errors, h->cap_errors * sizeof *h->errors);
    }
    error_counter *e = &h->errors[h->n_errors++];
    snprintf(e->code, sizeof e->code, "%s", code);
    e->n = 1;
}

/* Label values are our own route templates, method names and error codes: [a-z_/{}.]. The
 * codes come from the service; anything outside that set is replaced, so the exposition
 * format stays valid whatever a code holds. */
static void append_label(nano_buf *b, const char *s)
{
    for (; *s; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '/' || ch == '{' || ch == '}' || ch == '.' || ch == '-';
        nano_buf_append(b, ok ? &ch : "_", 1);
    }
}

static void render_metrics(cp_http *h, nano_buf *b)
{
    nano_buf_append_str(b, "# HELP nanocp_http_requests_total Admin HTTP requests by route "
                           "template, method and status.\n"
                           "# TYPE nanocp_http_requests_total counter\n");
    for (size_t i = 0; i < h->n_counters; i++) {
        const counter *k = &h->counters[i];
        nano_buf_append_str(b, "nanocp_http_requests_total{route=\"");
        append_label(b, k->route == ROUTE_NONE ? "other" : routes[k->route].tmpl);
        nano_buf_append_str(b, "\",method=\"");
        append_label(b, k->method < 0 ? "other" : llhttp_method_name((llhttp_method_t)k->method));
        nano_buf_appendf(b, "\",status=\"%d\"} %" PRIu64 "\n", k->status, k->n);
    }
    nano_buf_append_str(b, "# HELP nanocp_http_errors_total Admin HTTP error answers by error "
                           "code.\n"
                           "# TYPE nanocp_http_errors_total counter\n");
    for (size_t i = 0; i < h->n_errors; i++) {
        nano_buf_append_str(b, "nanocp_http_errors_total{code=\"");
        append_label(b, h->errors[i].code);
        nano_buf_appendf(b, "\"} %" PRIu64 "\n", h->errors[i].n);
    }
    nano_buf_append_str(b, "# HELP nanocp_http_protocol_errors_total Connections answered "
                           "400/408/413/431/505 and closed for malformed, oversized or slow "
                           "requests, by reason.\n"
                           "# TYPE nanocp_http_protocol_errors_total counter\n");
    for (size_t i = 0; i < REFUSED_COUNT; i++)
        nano_buf_appendf(b, "nanocp_http_protocol_errors_total{reason=\"%s\"} %" PRIu64 "\n",
                         refusal_names[i], h->n_refused[i]);
    nano_buf_appendf(b,
                     "# HELP nanocp_http_connections Open admin HTTP connections.\n"
                     "# TYPE nanocp_http_connections gauge\n"
                     "nanocp_http_connections %zu\n",
                     h->n_conns);
}

/* --- connection lifecycle ------------------------------------------------------------------ */

static void server_maybe_done(cp_http *h)
{
    if (!h->is_closing || !h->is_listener_closed || h->n_conns > 0)
        return;
    cp_api_closed_cb cb = h->closed_cb;
    void *arg = h->closed_arg;
    nano_free(h->counters);
    nano_free(h->errors);
    nano_free(h);
    if (cb)
        cb(arg);
}

static void request_reset(conn *c)
{
    nano_buf_reset(&c->url);
    nano_buf_reset(&c->field);
    nano_buf_reset(&c->value);
    if (c->ep && c->ep->body == BODY_VALUE && c->body.data)
        memset(c->body.data, 0, c->body.cap); /* a secret's value: do not leave it in the heap */
    nano_buf_fini(&c->body); /* a 64 MiB upload is not kept for the next request */
    c->last_cb = CB_NONE;
    c->head_size = 0;
    nano_free(c->authorization);
    c->authorization = NULL;
    nano_free(c->content_type);
    c->content_type = NULL;
    nano_free(c->host);
    c->host = NULL;
    c->is_expect_continue = false;
    c->is_head_done = false;
    c->is_last = false;
    c->is_method_known = false;
    c->body_limit = CP_HTTP_MAX_JSON_BODY;
    c->route = ROUTE_NONE;
    c->ep = NULL;
    c->params[0][0] = c->params[1][0] = '\0';
    c->who[0] = '\0';
    c->early_status = 0;
    c->early_allow[0] = '\0';
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    conn *c = handle->data;
    if (--c->n_open_handles > 0)
        return;
    cp_http *h = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->n_conns--;
    request_reset(c);
    nano_buf_fini(&c->url);
    nano_buf_fini(&c->field);
    nano_buf_fini(&c->value);
    nano_free(c->rbuf);
    nano_free(c);
    server_maybe_done(h);
}

static void conn_close(conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void fail(conn *c, int status, refusal why, const char *code, const char *message);
static void on_timeout(uv_timer_t *t);

/* The loop time by which the request being read must be in: its first byte's time + the
 * grace + 1 s per body_min_rate body bytes received (a client trickling a head or a
 * body, never idle long enough for the idle timeout, would otherwise hold one of the 512
 * connections for ever: 512 of them would lock operators out). */
static uint64_t request_deadline(const conn *c)
{
    const cp_http *h = c->srv;
    /* Rate 0: the grace bounds the head; a body then has only the idle timeout. */
    uint64_t earned = h->body_min_rate > 0 ? c->body.len * 1000 / h->body_min_rate
                      : c->is_head_done   ? UINT64_MAX / 4
                                          : 0;
    return c->req_started + h->request_grace_ms + earned;
}

/* Between requests: the idle timeout. Inside one: the earlier of that and its deadline. */
static void arm_timer(conn *c)
{
    uint64_t now = uv_now(c->srv->loop), due = now + CP_HTTP_IDLE_MS;
    if (c->in_request && !c->is_read_paused && request_deadline(c) < due)
        due = request_deadline(c);
    uv_timer_start(&c->timer, on_timeout, due > now ? due - now : 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
    conn *c = container_of(t, conn, timer);
    if (c->state != CONN_OPEN)
        return conn_close(c);
    if (c->in_request && !c->is_read_paused) {
        fail(c, 408, REFUSED_TIMEOUT, "timeout", "request not received in time");
        return;
    }
    /* Idle between requests (or not reading while answers wait): close. */
    conn_close(c);
}

#define CLOSE_GRACE_MS 2000 /* cp_http_close: time for answers already queued to go out */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write_done(uv_write_t *req, int status)
{
    write_req *w = container_of(req, write_req, req);
    conn *c = w->c;
    nano_buf_fini(&w->data);
    nano_free(w);
    c->n_pending_writes--;
    if (status < 0 && c->state != CONN_CLOSING) {
        NANO_DEBUG("cp.http_write_failed", "error=%s", uv_strerror(status));
        conn_close(c);
        return;
    }
    if (c->state == CONN_DRAINING && c->n_pending_writes == 0)
        conn_close(c);
    else if (c->state == CONN_OPEN && c->is_read_paused &&
             uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_QUEUE_HIGH / 2) {
        c->is_read_paused = false;
        /* The time the client spent not reading its answers is not its request's. */
        c->req_started += uv_now(c->srv->loop) - c->paused_at;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* conn_send: queues data (taken) for writing. */
static void conn_send(conn *c, nano_buf *data)
{
    if (c->state == CONN_CLOSING) {
        nano_buf_fini(data);
        return;
    }
    write_req *w = nano_xcalloc(1, sizeof *w);
    w->c = c;
    w->data = *data;
    *data = NANO_BUF_INIT;
    uv_buf_t b = uv_buf_init(w->data.data, (unsigned)w->data.len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
    if (rc != 0) {
        nano_buf_fini(&w->data);
        nano_free(w);
        conn_close(c);
        return;
    }
    c->n_pending_writes++;
}

/* respond: writes one response. With is_final the connection closes once it is written and
 * no further request is read. */
static void respond(conn *c, int status, const char *content_type, const char *body,
                    size_t body_len, const char *extra_headers, bool is_final)
{
    cp_http *h = c->srv;
    nano_buf out = NANO_BUF_INIT;
    nano_buf_appendf(&out,
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "%s%s\r\n",
                     status, status_text(status), content_type, body_len,
                     extra_headers ? extra_headers : "",
                     is_final || c->is_last ? "Connection: close\r\n" : "");
    nano_buf_append(&out, body, body_len);
    conn_send(c, &out);
    int method = c->is_method_known ? (int)c->parser.method : -1; /* -1: not parsed */
    count_request(h, c->route, method, status);
    NANO_DEBUG("cp.http_request", "method=%s route=%s status=%d",
               method < 0 ? "other" : llhttp_method_name((llhttp_method_t)method),
               c->route == ROUTE_NONE ? "other" : routes[c->route].tmpl, status);
    if (is_final && c->state == CONN_OPEN) {
        c->state = CONN_DRAINING;
        uv_read_stop((uv_stream_t *)&c->tcp);
        if (c->n_pending_writes == 0)
            conn_close(c);
    }
}

static void respond_json(conn *c, int status, json_t *body, const char *extra_headers,
                         bool is_final)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!text) { /* only on OOM: jansson checked every value on the way in */
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}\n";
        respond(c, 500, "application/json", oom, sizeof oom - 1, NULL, true);
        return;
    }
    size_t len = strlen(text);
    nano_buf b = NANO_BUF_INIT;
    nano_buf_append(&b, text, len);
    nano_buf_append(&b, "\n", 1);
    free(text); /* jansson's allocator */
    respond(c, status, "application/json", b.data, b.len, extra_headers, is_final);
    nano_buf_fini(&b);
}

/* json_text: a JSON string of s; bytes that break UTF-8 become '?' (messages may quote
 * input). */
static json_t *json_text(const char *s)
{
    size_t len = strlen(s);
    if (nano_utf8_valid(s, len))
        return json_stringn(s, len);
    char *copy = nano_xstrdup(s);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)copy[i] >= 0x80)
            copy[i] = '?';
    json_t *j = json_string(copy);
    nano_free(copy);
    return j;
}

static void respond_error(conn *c, int status, const char *code, const char *field,
                          const char *message, const char *extra_headers, bool is_final)
{
    if (status < 400 || status > 599)
        status = 500;
    count_error(c->srv, code);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_text(code));
    json_object_set_new(e, "message", json_text(message));
    json_object_set_new(e, "field", json_text(field ? field : ""));
    json_t *body = json_object();
    json_object_set_new(body, "error", e);
    respond_json(c, status, body, extra_headers, is_final);
    json_decref(body);
}

/* A protocol-level failure: answer and close (the rest of the stream cannot be trusted). */
static void fail(conn *c, int status, refusal why, const char *code, const char *message)
{
    c->srv->n_refused[why]++;
    respond_error(c, status, code, "", message, NULL, true);
}

/* --- routing ------------------------------------------------------------------------------ */

/* percent_decode: RFC 3986 §2.1. With is_form, '+' is a space (query strings). Returns the
 * decoded length, or -1 (bad escape, a NUL, longer than cap-1, or not UTF-8). */
static long percent_decode(const char *s, size_t len, char *out, size_t cap, bool is_form)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = nano_hex_digit(s[i + 1]), lo = nano_hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (is_form && ch == '+') {
            ch = ' ';
        }
        if (ch == '\0' || n + 1 >= cap)
            return -1;
        out[n++] = ch;
    }
    out[n] = '\0';
    return nano_utf8_valid(out, n) ? (long)n : -1;
}

/* match: the path (before '?') against a template; captures go to params. Returns 1 on a
 * match, 0 when the shape differs, -1 when a captured segment is invalid (bad_param gets its
 * name, err the reason). */
static int match(const char *tmpl, const char *path, size_t path_len,
                 char params[2][SEGMENT_MAX + 1], char *bad_param, size_t bad_cap, char *err,
                 size_t err_cap)
{
    const char *t = tmpl, *p = path, *pend = path + path_len;
    int n_param = 0;
    while (*t && p < pend) {
        if (*t != '/' || *p != '/')
            return 0;
        t++;
        p++;
        const char *tseg_end = strchr(t, '/');
        size_t tlen = tseg_end ? (size_t)(tseg_end - t) : strlen(t);
        const char *pseg_end = memchr(p, '/', (size_t)(pend - p));
        size_t plen = pseg_end ? (size_t)(pseg_end - p) : (size_t)(pend - p);
        if (tlen > 2 && t[0] == '{') {
            if (plen == 0)
                return 0;
            long n = percent_decode(p, plen, params[n_param], SEGMENT_MAX + 1, false);
            if (n < 0) {
                snprintf(bad_param, bad_cap, "%.*s", (int)(tlen - 2), t + 1);
                snprintf(err, err_cap,
                         "path segment %.*s is not valid: a bad %%-escape, a NUL, invalid UTF-8, "
                         "or longer than %d bytes once decoded",
                         (int)(tlen - 2), t + 1, SEGMENT_MAX);
                return -1;
            }
            n_param++;
        } else if (tlen != plen || memcmp(t, p, tlen) != 0) {
            return 0;
        }
        t += tlen;
        p += plen;
    }
    return *t == '\0' && p == pend ? 1 : 0;
}

static void allow_header(const route *r, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "Allow: ");
    for (size_t i = 0; i < 3 && r->eps[i].ok_status != 0; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
                              llhttp_method_name((llhttp_method_t)r->eps[i].method));
    snprintf(buf + n, cap - n, "\r\n");
}

static void set_early(conn *c, int status, const char *code, const char *field,
                      const char *message)
{
    c->early_status = status;
    snprintf(c->early_code, sizeof c->early_code, "%s", code);
    snprintf(c->early_field, sizeof c->early_field, "%s", field);
    snprintf(c->early_message, sizeof c->early_message, "%s", message);
}

/* route_request: from the head alone, picks the endpoint, checks the token and sets the body
 * limit, or records the error answer. */
static void route_request(conn *c)
{
    cp_http *h = c->srv;
    const char *url = nano_buf_cstr(&c->url);
    size_t path_len = strcspn(url, "?#");
    int method = (int)c->parser.method;
    char why[320] = "";
    char bad_param[16] = "";

    if (url[0] != '/') {
        set_early(c, 400, "bad_request", "", "request target must be an absolute path");
        return;
    }
    for (size_t i = 0; i < N_ROUTES; i++) {
        int m = match(routes[i].tmpl, url, path_len, c->params, bad_param, sizeof bad_param, why,
                      sizeof why);
        if (m == 0)
            continue;
        c->route = (int)i;
        if (m < 0) {
            set_early(c, 400, "invalid_field", bad_param, why);
            return;
        }
        for (size_t k = 0; k < 3 && routes[i].eps[k].ok_status != 0; k++)
            if (routes[i].eps[k].method == method)
                c->ep = &routes[i].eps[k];
        if (!c->ep) {
            allow_header(&routes[i], c->early_allow, sizeof c->early_allow);
            snprintf(why, sizeof why, "%s is not allowed on %s",
                     llhttp_method_name((llhttp_method_t)method), routes[i].tmpl);
            set_early(c, 405, "method_not_allowed", "", why);
            return;
        }
        break;
    }
    if (c->route == ROUTE_NONE) {
        snprintf(why, sizeof why, "no such route: %.200s", url);
        set_early(c, 404, "not_found", "", why);
        return;
    }
    if (c->ep->body == BODY_CODE)
        c->body_limit = h->max_body;
    if (routes[c->route].special == SPECIAL_HEALTHZ)
        return;

    /* RFC 6750 §2.1: "Bearer" (any case), one space, the token. */
    const char *token = "";
    const char *a = c->authorization;
    if (a && strncasecmp(a, "Bearer ", 7) == 0) {
        token = a + 7;
        while (*token == ' ')
            token++;
    }
    const char *who = NULL;
    if (token[0] == '\0' || !h->check(h->ud, token, &who)) {
        set_early(c, 401, "unauthorized", "",
                  token[0] == '\0' ? "missing bearer token (Authorization: Bearer TOKEN)"
                                   : "invalid token");
        return;
    }
    snprintf(c->who, sizeof c->who, "%s", who ? who : "");
}

/* --- handling a complete request ---------------------------------------------------------- */

static bool is_json_content_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* parse_body_json: the body as a JSON object, or an error answer (returns NULL). */
static json_t *parse_body_json(conn *c)
{
    if (c->body.len == 0) {
        respond_error(c, 400, "bad_request", "", "request body must be a JSON object", NULL,
                      false);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(c->body.data, c->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        char msg[400];
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d (position %d): %s",
                 jerr.line, jerr.column, jerr.position, jerr.text);
        respond_error(c, 400, "bad_request", "", msg, NULL, false);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        respond_error(c, 400, "bad_request", "", "request body must be a JSON object", NULL,
                      false);
        return NULL;
    }
    return v;
}

/* set_name: args.name = the URL's {name}; a different "name" in the body is an error. */
static bool set_name(conn *c, json_t *args)
{
    json_t *given = json_object_get(args, "name");
    if (given && !(json_is_string(given) && strcmp(json_string_value(given), c->params[0]) == 0)) {
        respond_error(c, 400, "invalid_field", "name",
                      "\"name\" in the body differs from the app named in the URL", NULL, false);
        return false;
    }
    json_object_set_new(args, "name", json_string(c->params[0]));
    return true;
}

/* query_int: ?key=N for audit paging. Returns 1 found, 0 absent, -1 malformed. */
static int query_int(const char *url, const char *key, json_int_t *out)
{
    const char *q = strchr(url, '?');
    if (!q)
        return 0;
    size_t klen = strlen(key);
    for (const char *p = q + 1; *p;) {
        size_t n = strcspn(p, "&#");
        if (n > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            char val[32];
            if (percent_decode(p + klen + 1, n - klen - 1, val, sizeof val, true) <= 0)
                return -1;
            char *end;
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (*end != '\0' || errno != 0 || v < 0)
                return -1;
            *out = v;
            return 1;
        }
        if (p[n] != '&')
            break;
        p += n + 1;
    }
    return 0;
}

/* build_args: the op's args from the URL and body; NULL after answering with an error. */
static json_t *build_args(conn *c)
{
    const endpoint *ep = c->ep;
    bool has_name = strstr(routes[c->route].tmpl, "{name}") != NULL;
    json_t *args = NULL;

    switch (ep->body) {
    case BODY_NONE:
        args = json_object();
        break;
    case BODY_JSON: {
        json_t *body = parse_body_json(c);
        if (!body)
            return NULL;
        if (strcmp(ep->op, "env.patch") == 0) {
            args = json_object();
            json_object_set_new(args, "vars", body);
        } else {
            args = body;
        }
        break;
    }
    case BODY_CODE:
        if (is_json_content_type(c->content_type)) {
            args = parse_body_json(c);
            if (!args)
                return NULL;
        } else {
            if (!nano_utf8_valid(c->body.data, c->body.len)) {
                respond_error(c, 400, "bad_request", "modules",
                              "module source is not valid UTF-8 text", NULL, false);
                return NULL;
            }
            args = json_object();
            json_object_set_new(args, "main", json_string("index.js"));
            json_t *mods = json_object();
            json_object_set_new(mods, "index.js",
                                json_stringn_nocheck(c->body.len ? c->body.data : "",
                                                     c->body.len));
            json_object_set_new(args, "modules", mods);
        }
        break;
    case BODY_VALUE:
        if (!nano_utf8_valid(c->body.data, c->body.len)) {
            respond_error(c, 400, "bad_request", "value", "secret value is not valid UTF-8 text",
                          NULL, false);
            return NULL;
        }
        args = json_object();
        json_object_set_new(args, "value",
                            json_stringn_nocheck(c->body.len ? c->body.data : "", c->body.len));
        break;
    }
    if (has_name && !set_name(c, args)) {
        json_decref(args);
        return NULL;
    }
    if (strstr(routes[c->route].tmpl, "{key}"))
        json_object_set_new(args, "key", json_string(c->params[1]));
    if (strcmp(ep->op, "audit.list") == 0) {
        const char *url = nano_buf_cstr(&c->url);
        static const char *const keys[] = {"limit", "before_id"};
        for (size_t i = 0; i < 2; i++) {
            json_int_t v;
            int q = query_int(url, keys[i], &v);
            if (q < 0) {
                char msg[96];
                snprintf(msg, sizeof msg, "query parameter %s must be a non-negative integer",
                         keys[i]);
                respond_error(c, 400, "invalid_field", keys[i], msg, NULL, false);
                json_decref(args);
                return NULL;
            }
            if (q > 0)
                json_object_set_new(args, keys[i], json_integer(v));
        }
    }
    return args;
}

static void handle_request(conn *c)
{
    cp_http *h = c->srv;
    if (c->early_status != 0) {
        char extra[160] = "";
        if (c->early_status == 401)
            snprintf(extra, sizeof extra, "WWW-Authenticate: Bearer realm=\"nanocp\"\r\n");
        else if (c->early_allow[0])
            snprintf(extra, sizeof extra, "%s", c->early_allow);
        respond_error(c, c->early_status, c->early_code, c->early_field, c->early_message, extra,
                      false);
        return;
    }
    const route *r = &routes[c->route];
    if (r->special == SPECIAL_HEALTHZ) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        respond(c, 200, "application/json", ok, sizeof ok - 1, NULL, false);
        return;
    }
    if (r->special == SPECIAL_METRICS) {
        nano_buf b = NANO_BUF_INIT;
        render_metrics(h, &b);
        respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL, false);
        nano_buf_fini(&b);
        return;
    }
    json_t *args = build_args(c);
    if (!args)
        return;
    cp_actor actor = {c->who, "http"};
    json_t *result = NULL;
    cp_error err;
    memset(&err, 0, sizeof err);
    int rc = h->call(h->ud, &actor, c->ep->op, args, &result, &err);
    json_decref(args);
    if (rc != 0) {
        respond_error(c, err.status ? err.status : 500, err.code[0] ? err.code : "internal",
                      err.field, err.message[0] ? err.message : "the operation failed", NULL,
                      false);
        return;
    }
    if (!result)
        result = json_object();
    respond_json(c, c->ep->ok_status, result, NULL, false);
    json_decref(result);
}

/* --- llhttp callbacks --------------------------------------------------------------------- */

#define CONN(p) ((conn *)(p)->data)

static int count_head(conn *c, size_t n)
{
    c->head_size += n;
    if (c->head_size > CP_HTTP_MAX_HEAD) {
        fail(c, 431, REFUSED_HEAD_TOO_LARGE, "too_large",
             "request head is larger than 64 KiB");
        return -1;
    }
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    conn *c = CONN(p);
    request_reset(c);
    c->in_request = true;
    c->req_started = uv_now(c->srv->loop);
    return 0;
}

static int on_method_complete(llhttp_t *p)
{
    CONN(p)->is_method_known = true;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn *c = CONN(p);
    if (count_head(c, len) != 0)
        return -1;
    nano_buf_append(&c->url, at, len);
    return 0;
}

/* A header line is complete when the next field starts or the head ends. Only three headers
 * matter here; a repeated Authorization or Content-Type is refused rather than guessed. */
static int take_header(conn *c)
{
    if (c->last_cb != CB_VALUE)
        return 0;
    nano_str name = {c->field.data, c->field.len};
    const char *value = nano_buf_cstr(&c->value);
    char **slot = NULL;
    if (nano_str_ieq(name, NANO_STR("authorization")))
        slot = &c->authorization;
    else if (nano_str_ieq(name, NANO_STR("content-type")))
        slot = &c->content_type;
    else if (nano_str_ieq(name, NANO_STR("host"))) /* RFC 9112 §3.2: exactly one */
        slot = &c->host;
    else if (nano_str_ieq(name, NANO_STR("expect")))
        c->is_expect_continue = strcasecmp(value, "100-continue") == 0;
    else if (nano_str_ieq(name, NANO_STR("transfer-encoding")) &&
             strcasecmp(value, "chunked") != 0) {
        /* RFC 9112 §6.1: a coding the server does not implement is a 501, as on nano-dp. */
        fail(c, 501, REFUSED_CODING, "not_implemented", "unsupported transfer coding");
        return -1;
    }
    if (slot) {
        if (*slot) {
            fail(c, 400, REFUSED_MALFORMED, "bad_request",
                 "a header that must appear once was repeated");
            return -1;
        }
        /* llhttp hands values without leading spaces; trailing ones are trimmed here. */
        size_t n = c->value.len;
        while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
            n--;
        *slot = nano_xstrndup(value, n);
    }
    nano_buf_reset(&c->field);
    nano_buf_reset(&c->value);
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn *c = CONN(p);
    if (count_head(c, len + (c->last_cb != CB_FIELD ? HEADER_LINE_OVERHEAD : 0)) != 0)
        return -1;
    if (c->is_head_done) /* trailers: counted, ignored */
        return 0;
    if (take_header(c) != 0)
        return -1;
    nano_buf_append(&c->field, at, len);
    c->last_cb = CB_FIELD;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn *c = CONN(p);
    if (count_head(c, len) != 0)
        return -1;
    if (c->is_head_done)
        return 0;
    nano_buf_append(&c->value, at, len);
    c->last_cb = CB_VALUE;
    return 0;
}

static bool has_body(const llhttp_t *p)
{
    return (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
}

static int on_headers_complete(llhttp_t *p)
{
    conn *c = CONN(p);
    if (c->last_cb == CB_VALUE && take_header(c) != 0)
        return -1;
    c->is_head_done = true;
    /* RFC 9112 §3.2: HTTP/1.1 needs one valid Host; the admin API routes by path alone,
     * but takes the same Host values as the data plane (shared/parse.c). */
    if (p->http_major == 1 && p->http_minor >= 1 &&
        (c->host == NULL || !nano_http_host_valid(c->host, strlen(c->host)))) {
        fail(c, 400, REFUSED_HOST, "bad_request",
             c->host == NULL ? "missing Host header" : "invalid Host header");
        return HPE_PAUSED;
    }
    if (!(p->http_major == 1 && (p->http_minor == 0 || p->http_minor == 1))) {
        fail(c, 505, REFUSED_VERSION, "bad_request", "only HTTP/1.0 and HTTP/1.1");
        return HPE_PAUSED;
    }
    route_request(c);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->body_limit) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body is larger than %zu bytes", c->body_limit);
        fail(c, 413, REFUSED_BODY_TOO_LARGE, "too_large", msg);
        return HPE_PAUSED;
    }
    if (c->early_status != 0 && has_body(p)) {
        /* Answer now rather than read a body we will not use (up to 64 MiB from a client
         * without a token); the connection cannot be reused after an unread body. */
        c->is_last = true;
        handle_request(c);
        if (c->state == CONN_OPEN) {
            c->state = CONN_DRAINING;
            uv_read_stop((uv_stream_t *)&c->tcp);
            if (c->n_pending_writes == 0)
                conn_close(c);
        }
        return HPE_PAUSED;
    }
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0)
        nano_buf_reserve(&c->body, (size_t)p->content_length); /* checked against the limit */
    if (c->is_expect_continue && has_body(p)) { /* RFC 9110 §10.1.1 */
        nano_buf b = NANO_BUF_INIT;
        nano_buf_append_str(&b, "HTTP/1.1 100 Continue\r\n\r\n");
        conn_send(c, &b);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn *c = CONN(p);
    if (len > c->body_limit - c->body.len) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body is larger than %zu bytes", c->body_limit);
        fail(c, 413, REFUSED_BODY_TOO_LARGE, "too_large", msg);
        return -1;
    }
    nano_buf_append(&c->body, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn *c = CONN(p);
    c->in_request = false;
    c->is_last = llhttp_should_keep_alive(p) == 0;
    handle_request(c);
    if (c->is_last && c->state == CONN_OPEN) {
        c->state = CONN_DRAINING;
        uv_read_stop((uv_stream_t *)&c->tcp);
        if (c->n_pending_writes == 0)
            conn_close(c);
    }
    return c->state == CONN_OPEN ? 0 : HPE_PAUSED;
}

/* --- socket callbacks --------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    conn *c = handle->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    (void)buf;
    if (n < 0) { /* UV_EOF or a socket error */
        if (c->state == CONN_OPEN && n == UV_EOF && c->n_pending_writes > 0) {
            c->state = CONN_DRAINING; /* half-closed: let the answers go out */
            uv_read_stop(s);
        } else {
            conn_close(c);
        }
        return;
    }
    if (n == 0 || c->state != CONN_OPEN)
        return;
    llhttp_errno_t e = llhttp_execute(&c->parser, c->rbuf, (size_t)n);
    if (c->state == CONN_OPEN &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= WRITE_QUEUE_HIGH) {
        c->is_read_paused = true;
        c->paused_at = uv_now(c->srv->loop);
        uv_read_stop(s);
    }
    if (c->state == CONN_OPEN)
        arm_timer(c);
    if (e == HPE_OK || c->state != CONN_OPEN)
        return; /* done, or we already answered and are closing */
    char msg[200];
    snprintf(msg, sizeof msg, "malformed HTTP request: %s", llhttp_get_error_reason(&c->parser));
    fail(c, 400, REFUSED_MALFORMED, "bad_request", msg);
}

static void on_connection(uv_stream_t *listener, int status)
{
    cp_http *h = listener->data;
    if (status < 0) {
        NANO_WARN("cp.http_accept_failed", "error=%s", uv_strerror(status));
        return;
    }
    if (h->is_closing)
        return;
    conn *c = nano_xcalloc(1, sizeof *c);
    c->srv = h;
    c->rbuf = nano_xmalloc(READ_BUF_SIZE);
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->n_open_handles = 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->n_conns++;
    request_reset(c);
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc != 0) {
        NANO_WARN("cp.http_accept_failed", "error=%s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    if (h->n_conns > CP_HTTP_MAX_CONNS) {
        NANO_WARN("cp.http_too_many_connections", "open=%zu max=%d", h->n_conns - 1,
                  CP_HTTP_MAX_CONNS);
        conn_close(c);
        return;
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &h->settings);
    c->parser.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timeout, CP_HTTP_IDLE_MS, 0);
    rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0)
        conn_close(c);
}

/* --- public ------------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *handle)
{
    cp_http *h = handle->data;
    h->is_listener_closed = true;
    server_maybe_done(h);
}

/* A bind or listen error after uv_tcp_init: the handle must still be closed before the
 * memory goes, so the loop runs the close callback; the caller has its error already. */
static void on_failed_listener_closed(uv_handle_t *handle)
{
    nano_free(handle->data);
}

int cp_http_start(uv_loop_t *loop, const char *addr, cp_call_cb call, cp_token_check_cb check,
                  void *ud, size_t max_body, cp_http **out, nano_error *err)
{
    struct sockaddr_storage ss;
    int rc = cp_api_parse_addr(addr, &ss, err);
    if (rc != 0)
        return rc;
    cp_http *h = nano_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->call = call;
    h->check = check;
    h->ud = ud;
    h->max_body = max_body ? max_body : CP_HTTP_DEFAULT_MAX_BODY;
    h->request_grace_ms = CP_HTTP_REQUEST_GRACE_MS;
    h->body_min_rate = CP_HTTP_BODY_MIN_RATE;
    llhttp_settings_init(&h->settings);
    h->settings.on_message_begin = on_message_begin;
    h->settings.on_method_complete = on_method_complete;
    h->settings.on_url = on_url;
    h->settings.on_header_field = on_header_field;
    h->settings.on_header_value = on_header_value;
    h->settings.on_headers_complete = on_headers_complete;
    h->settings.on_body = on_body;
    h->settings.on_message_complete = on_message_complete;

    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 128, on_connection);
    if (rc != 0) {
        nano_error_set(err, rc, "listen_failed", "%s: %s", addr, uv_strerror(rc));
        uv_close((uv_handle_t *)&h->listener, on_failed_listener_closed);
        return rc;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    if (uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &blen) == 0)
        h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    NANO_INFO("cp.http_listening", "addr=%s port=%d max_body=%zu", addr, h->port, h->max_body);
    *out = h;
    return 0;
}

int cp_http_port(const cp_http *http)
{
    return http->port;
}

void cp_http_close(cp_http *h, cp_api_closed_cb done, void *arg)
{
    if (!h || h->is_closing)
        return;
    h->is_closing = true;
    h->closed_cb = done;
    h->closed_arg = arg;
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
    /* Ops run synchronously on this thread, so none is in flight here; their answers may
     * still be queued. Those connections close once written, or after a short grace. */
    for (conn *c = h->conns; c; c = c->next) {
        if (c->state == CONN_CLOSING)
            continue;
        if (c->n_pending_writes == 0) {
            conn_close(c);
            continue;
        }
        c->state = CONN_DRAINING;
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_timer_start(&c->timer, on_timeout, CLOSE_GRACE_MS, 0);
    }
}

void cp_http_set_request_timing(cp_http *http, uint64_t grace_ms, uint64_t body_min_rate)
{
    http->request_grace_ms = grace_ms;
    http->body_min_rate = body_min_rate;
}
