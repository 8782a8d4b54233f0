/* api_http.c: the admin API's own part on nano_http's server (dataplane/server/), which does
 * every connection-level thing (parsing, limits, timeouts, keep-alive, pipelining,
 * 100-continue, drain): routing a request head, the token check, collecting the body,
 * building the op's args, the call, and the JSON answer; plus /healthz and /metrics. */
#include "api_http.h"

#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "mpjson.h"
#include "parse.h"
#include "request.h"
#include "server.h"

#define SEGMENT_MAX 255     /* a decoded {name} or {key} path segment, in bytes */
#define CLOSE_GRACE_MS 2000 /* cp_http_close: time for answers already queued to go out */

/* --- routes (docs/admin-api.md) -------------------------------------------------------------- */

typedef enum body_kind {
    BODY_NONE,  /* ignored if sent (at most CP_HTTP_MAX_JSON_BODY) */
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
    const char *method;
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
    {"/healthz", SPECIAL_HEALTHZ, {{"GET", NULL, BODY_NONE, 200}}},
    {"/metrics", SPECIAL_METRICS, {{"GET", NULL, BODY_NONE, 200}}},
    {"/v1/apps",
     SPECIAL_NONE,
     {{"GET", "apps.list", BODY_NONE, 200}, {"POST", "apps.create", BODY_JSON, 201}}},
    {"/v1/apps/{name}",
     SPECIAL_NONE,
     {{"GET", "apps.get", BODY_NONE, 200},
      {"PATCH", "apps.update", BODY_JSON, 200},
      {"DELETE", "apps.remove", BODY_NONE, 202}}},
    {"/v1/apps/{name}/drain", SPECIAL_NONE, {{"GET", "apps.drain", BODY_NONE, 200}}},
    {"/v1/apps/{name}/code", SPECIAL_NONE, {{"PUT", "apps.deploy", BODY_CODE, 201}}},
    {"/v1/apps/{name}/deployments", SPECIAL_NONE, {{"GET", "deployments.list", BODY_NONE, 200}}},
    {"/v1/apps/{name}/rollback", SPECIAL_NONE, {{"POST", "apps.rollback", BODY_JSON, 200}}},
    {"/v1/apps/{name}/env",
     SPECIAL_NONE,
     {{"GET", "env.get", BODY_NONE, 200},
      {"PATCH", "env.patch", BODY_JSON, 200},
      {"PUT", "env.replace", BODY_JSON, 200}}},
    {"/v1/apps/{name}/secrets", SPECIAL_NONE, {{"GET", "secrets.list", BODY_NONE, 200}}},
    {"/v1/apps/{name}/secrets/{key}",
     SPECIAL_NONE,
     {{"PUT", "secrets.put", BODY_VALUE, 200}, {"DELETE", "secrets.delete", BODY_NONE, 200}}},
    {"/v1/nodes", SPECIAL_NONE, {{"GET", "nodes.list", BODY_NONE, 200}}},
    {"/v1/nodes/{name}", SPECIAL_NONE, {{"DELETE", "nodes.remove", BODY_NONE, 200}}},
    {"/v1/audit", SPECIAL_NONE, {{"GET", "audit.list", BODY_NONE, 200}}},
    {"/v1/version", SPECIAL_NONE, {{"GET", "version", BODY_NONE, 200}}},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])
#define ROUTE_NONE ((int)N_ROUTES) /* metrics label "other" */

/* --- state ------------------------------------------------------------------------------------ */

typedef struct counter {
    int route;
    char method[24]; /* the parser knows ~40 method names; "other" before one was parsed */
    int status;
    uint64_t n;
} counter;

typedef struct error_counter {
    char code[48];
    uint64_t n;
} error_counter;

/* The reason label of nanocp_http_protocol_errors_total: a fixed set, so the series stay
 * bounded. The server's finer dp_refusal kinds map onto it (refusal_of). */
typedef enum refusal {
    REFUSED_MALFORMED,      /* 400: framing, a repeated header, a bad target, a head cut short */
    REFUSED_HOST,           /* 400: Host missing or invalid */
    REFUSED_VERSION,        /* 505 */
    REFUSED_CODING,         /* 501: a transfer coding other than chunked */
    REFUSED_HEAD_TOO_LARGE, /* 431 */
    REFUSED_BODY_TOO_LARGE, /* 413 */
    REFUSED_TIMEOUT,        /* 408: a head or body not received in time */
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

typedef struct exchange exchange;

struct cp_http {
    uv_loop_t *loop;
    dp_server *srv;
    cp_call_cb call;
    cp_token_check_cb check;
    void *ud;
    size_t max_body;
    exchange *waiting; /* requests whose body is still arriving, doubly linked */
    bool is_closing;
    uv_timer_t close_timer; /* cp_http_close's bound on the drain */
    int n_closing;          /* the server and close_timer, until both are closed */
    cp_api_closed_cb closed_cb;
    void *closed_arg;
    counter *counters;
    size_t n_counters, cap_counters;
    error_counter *errors;
    size_t n_errors, cap_errors;
    uint64_t n_refused[REFUSED_COUNT];
};

/* One request being answered: on the stack when it has no body, else on the heap (with a
 * reference to the request) until its body is in. */
struct exchange {
    cp_http *h;
    dp_request *req;
    exchange *prev, *next;
    int route;
    const endpoint *ep;
    char params[2][SEGMENT_MAX + 1]; /* {name}, {key} */
    char who[64];                    /* the token's name, for the audit log */
    nano_str content_type;           /* valid for the request's life */
    size_t limit;                    /* of the body */
    nano_buf body;
};

/* --- metrics ------------------------------------------------------------------------------ */

static void count_request(cp_http *h, int route_idx, nano_str method, int status)
{
    char m[sizeof((counter *)0)->method];
    snprintf(m, sizeof m, "%.*s", (int)method.len, method.ptr);
    for (size_t i = 0; i < h->n_counters; i++) {
        counter *k = &h->counters[i];
        if (k->route == route_idx && k->status == status && strcmp(k->method, m) == 0) {
            k->n++;
            return;
        }
    }
    if (h->n_counters == h->cap_counters) {
        h->cap_counters = h->cap_counters ? h->cap_counters * 2 : 32;
        h->counters = nano_xrealloc(h->counters, h->cap_counters * sizeof *h->counters);
    }
    counter *k = &h->counters[h->n_counters++];
    *k = (counter){.route = route_idx, .status = status, .n = 1};
    memcpy(k->method, m, sizeof m);
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
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '/' || ch == '{' || ch == '}' ||
                  ch == '.' || ch == '-';
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
        append_label(b, k->method);
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
                           "400/408/413/431/501/505 and closed for malformed, oversized or slow "
                           "requests, by reason.\n"
                           "# TYPE nanocp_http_protocol_errors_total counter\n");
    for (size_t i = 0; i < REFUSED_COUNT; i++)
        nano_buf_appendf(b, "nanocp_http_protocol_errors_total{reason=\"%s\"} %" PRIu64 "\n",
                         refusal_names[i], h->n_refused[i]);
    nano_buf_appendf(b,
                     "# HELP nanocp_http_connections Open admin HTTP connections.\n"
                     "# TYPE nanocp_http_connections gauge\n"
                     "nanocp_http_connections %zu\n",
                     dp_server_n_conns(h->srv));
}

/* --- answers ---------------------------------------------------------------------------------- */

/* respond: writes one response. With is_final the connection closes once it is written and
 * the rest of the request's body, if any, is not read (a client refused from the head need
 * not be read from: up to 64 MiB without a token otherwise). */
static void respond(exchange *x, int status, const char *content_type, const char *body,
                    size_t body_len, const dp_header *extra, bool is_final)
{
    dp_header headers[3] = {
        {NANO_STR("Content-Type"), nano_str_c(content_type)},
        {NANO_STR("Cache-Control"), NANO_STR("no-store")},
    };
    size_t n = 2;
    if (extra)
        headers[n++] = *extra;
    if (is_final)
        dp_request_refuse_body(x->req);
    if (dp_response_start(x->req, status, (nano_str){NULL, 0}, headers, n, (int64_t)body_len) ==
        0) {
        dp_response_write(x->req, body, body_len);
        dp_response_end(x->req);
    }
    nano_str method = dp_request_method(x->req);
    count_request(x->h, x->route, method, status);
    NANO_DEBUG("cp.http_request", "method=%.*s route=%s status=%d", (int)method.len, method.ptr,
               x->route == ROUTE_NONE ? "other" : routes[x->route].tmpl, status);
}

/* json_dump: v as one line of compact JSON and a newline, into out. */
static bool json_dump(json_t *v, nano_buf *out)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!text) /* only on OOM: jansson checked every value on the way in */
        return false;
    nano_buf_append_str(out, text);
    nano_buf_append(out, "\n", 1);
    free(text); /* jansson's allocator */
    return true;
}

static void respond_json(exchange *x, int status, json_t *body, const dp_header *extra,
                         bool is_final)
{
    nano_buf b = NANO_BUF_INIT;
    if (!json_dump(body, &b)) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\",\"field\":\"\"}}\n";
        respond(x, 500, "application/json", oom, sizeof oom - 1, NULL, true);
        return;
    }
    respond(x, status, "application/json", b.data, b.len, extra, is_final);
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

/* error_body: {"error": {"code", "message", "field"}}, counted by code. */
static json_t *error_body(cp_http *h, const char *code, const char *field, const char *message)
{
    count_error(h, code);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_text(code));
    json_object_set_new(e, "message", json_text(message));
    json_object_set_new(e, "field", json_text(field ? field : ""));
    json_t *body = json_object();
    json_object_set_new(body, "error", e);
    return body;
}

static void respond_error(exchange *x, int status, const char *code, const char *field,
                          const char *message, const dp_header *extra, bool is_final)
{
    if (status < 400 || status > 599)
        status = 500;
    json_t *body = error_body(x->h, code, field, message);
    respond_json(x, status, body, extra, is_final);
    json_decref(body);
}

static refusal refusal_of(dp_refusal kind)
{
    switch (kind) {
    case DP_REFUSED_HOST: return REFUSED_HOST;
    case DP_REFUSED_VERSION: return REFUSED_VERSION;
    case DP_REFUSED_CODING: return REFUSED_CODING;
    case DP_REFUSED_HEAD_TOO_LARGE: return REFUSED_HEAD_TOO_LARGE;
    case DP_REFUSED_BODY_TOO_LARGE: return REFUSED_BODY_TOO_LARGE;
    case DP_REFUSED_HEAD_TIMEOUT:
    case DP_REFUSED_BODY_IDLE:
    case DP_REFUSED_BODY_SLOW: return REFUSED_TIMEOUT;
    default: return REFUSED_MALFORMED; /* framing, cut short, target, chunk extensions */
    }
}

/* The server's own refusals (before a request reaches dispatch, or while its body arrives):
 * counted, and answered in JSON like every other error of the API. */
static bool on_refusal(void *ud, int status, dp_refusal kind, const char *reason, nano_buf *headers,
                       nano_buf *body)
{
    cp_http *h = ud;
    h->n_refused[refusal_of(kind)]++;
    if (headers == NULL)
        return false;
    const char *code = status == 408                    ? "timeout"
                       : status == 413 || status == 431 ? "too_large"
                       : status == 501                  ? "not_implemented"
                                                        : "bad_request";
    char message[200];
    snprintf(message, sizeof message, "%s%s",
             kind == DP_REFUSED_MALFORMED ? "malformed HTTP request: " : "", reason);
    count_request(h, ROUTE_NONE, NANO_STR("other"), status);
    json_t *v = error_body(h, code, "", message);
    bool ok = json_dump(v, body);
    json_decref(v);
    nano_buf_append_str(headers, "Content-Type: application/json\r\nCache-Control: no-store\r\n");
    return ok;
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

/* match: the path (percent-encoded, without the query) against a template; captures go to
 * params. Returns 1 on a match, 0 when the shape differs, -1 when a captured segment is
 * invalid (bad_param gets its name, err the reason). */
static int match(const char *tmpl, nano_str path, char params[2][SEGMENT_MAX + 1], char *bad_param,
                 size_t bad_cap, char *err, size_t err_cap)
{
    const char *t = tmpl, *p = path.ptr, *pend = path.ptr + path.len;
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

/* route_request: from the head alone, picks the endpoint, checks the token and the declared
 * body size; returns false after answering with an error. A request with a body then gets a
 * final answer: its body is not read. */
static bool route_request(exchange *x)
{
    cp_http *h = x->h;
    dp_request *req = x->req;
    bool has_body = dp_request_has_body(req);
    nano_str method = dp_request_method(req);
    nano_str path = dp_request_path(req);
    char why[320] = "";
    char bad_param[16] = "";

    /* A repeated Authorization or Content-Type is refused rather than guessed (the server
     * refuses a repeated Host or Content-Length itself). */
    nano_str authorization = {NULL, 0}, length = {NULL, 0};
    int n_auth = 0, n_type = 0;
    for (size_t i = 0; i < dp_request_n_headers(req); i++) {
        const dp_header *hd = dp_request_header(req, i);
        if (nano_str_ieq(hd->name, NANO_STR("authorization")) && n_auth++ == 0)
            authorization = hd->value;
        else if (nano_str_ieq(hd->name, NANO_STR("content-type")) && n_type++ == 0)
            x->content_type = hd->value;
        else if (nano_str_ieq(hd->name, NANO_STR("content-length")))
            length = hd->value; /* digits: the parser checked them */
    }
    if (n_auth > 1 || n_type > 1) {
        h->n_refused[REFUSED_MALFORMED]++;
        respond_error(x, 400, "bad_request", "", "a header that must appear once was repeated",
                      NULL, true);
        return false;
    }
    if (h->is_closing) {
        respond_error(x, 503, "shutting_down", "", "nanocp is shutting down", NULL, true);
        return false;
    }

    for (size_t i = 0; i < N_ROUTES && x->route == ROUTE_NONE; i++) {
        int m = match(routes[i].tmpl, path, x->params, bad_param, sizeof bad_param, why,
                      sizeof why);
        if (m == 0)
            continue;
        x->route = (int)i;
        if (m < 0) {
            respond_error(x, 400, "invalid_field", bad_param, why, NULL, has_body);
            return false;
        }
        for (size_t k = 0; k < 3 && routes[i].eps[k].ok_status != 0; k++)
            if (nano_str_eq(method, nano_str_c(routes[i].eps[k].method)))
                x->ep = &routes[i].eps[k];
        if (!x->ep) {
            char allow[64] = "";
            for (size_t k = 0; k < 3 && routes[i].eps[k].ok_status != 0; k++)
                snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", k ? ", " : "",
                         routes[i].eps[k].method);
            snprintf(why, sizeof why, "%.*s is not allowed on %s", (int)method.len, method.ptr,
                     routes[i].tmpl);
            dp_header hd = {NANO_STR("Allow"), nano_str_c(allow)};
            respond_error(x, 405, "method_not_allowed", "", why, &hd, has_body);
            return false;
        }
    }
    if (x->route == ROUTE_NONE) {
        snprintf(why, sizeof why, "no such route: %.*s", (int)(path.len < 200 ? path.len : 200),
                 path.ptr);
        respond_error(x, 404, "not_found", "", why, NULL, has_body);
        return false;
    }

    if (routes[x->route].special != SPECIAL_HEALTHZ) {
        /* RFC 6750 §2.1: "Bearer" (any case), one space, the token; the server trimmed the
         * value, which stays NUL-terminated. */
        const char *token = "";
        if (authorization.len >= 7 && strncasecmp(authorization.ptr, "Bearer ", 7) == 0) {
            token = authorization.ptr + 7;
            while (*token == ' ')
                token++;
        }
        const char *who = NULL;
        if (token[0] == '\0' || !h->check(h->ud, token, &who)) {
            static const dp_header challenge = {NANO_STR("WWW-Authenticate"),
                                                NANO_STR("Bearer realm=\"nanocp\"")};
            respond_error(x, 401, "unauthorized", "",
                          token[0] == '\0' ? "missing bearer token (Authorization: Bearer TOKEN)"
                                           : "invalid token",
                          &challenge, has_body);
            return false;
        }
        snprintf(x->who, sizeof x->who, "%s", who ? who : "");
    }

    x->limit = x->ep->body == BODY_CODE ? h->max_body : CP_HTTP_MAX_JSON_BODY;
    unsigned long long declared = length.len > 0 ? strtoull(length.ptr, NULL, 10) : 0;
    if (declared > x->limit) { /* before any of the body is read */
        h->n_refused[REFUSED_BODY_TOO_LARGE]++;
        snprintf(why, sizeof why, "request body is larger than %zu bytes", x->limit);
        respond_error(x, 413, "too_large", "", why, NULL, true);
        return false;
    }
    if (declared > 0)
        nano_buf_reserve(&x->body, (size_t)declared);
    return true;
}

/* --- the op ----------------------------------------------------------------------------- */

static bool is_json_content_type(nano_str ct)
{
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' && ct.ptr[n] != '\t')
        n++;
    return n == 16 && strncasecmp(ct.ptr, "application/json", 16) == 0;
}

/* parse_body_json: the body as a JSON object, or an error answer (returns NULL). */
static json_t *parse_body_json(exchange *x)
{
    if (x->body.len == 0) {
        respond_error(x, 400, "bad_request", "", "request body must be a JSON object", NULL, false);
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(x->body.data, x->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        char msg[400];
        snprintf(msg, sizeof msg, "invalid JSON at line %d, column %d (position %d): %s", jerr.line,
                 jerr.column, jerr.position, jerr.text);
        respond_error(x, 400, "bad_request", "", msg, NULL, false);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        respond_error(x, 400, "bad_request", "", "request body must be a JSON object", NULL, false);
        return NULL;
    }
    return v;
}

/* set_name: args.name = the URL's {name}; a different "name" in the body is an error. */
static bool set_name(exchange *x, json_t *args)
{
    json_t *given = json_object_get(args, "name");
    if (given && !(json_is_string(given) && strcmp(json_string_value(given), x->params[0]) == 0)) {
        respond_error(x, 400, "invalid_field", "name",
                      "\"name\" in the body differs from the app named in the URL", NULL, false);
        return false;
    }
    json_object_set_new(args, "name", json_string(x->params[0]));
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
static json_t *build_args(exchange *x)
{
    const endpoint *ep = x->ep;
    const char *tmpl = routes[x->route].tmpl;
    const char *body = x->body.len ? x->body.data : "";
    json_t *args = NULL;

    switch (ep->body) {
    case BODY_NONE: args = json_object(); break;
    case BODY_JSON: {
        json_t *obj = parse_body_json(x);
        if (!obj)
            return NULL;
        if (strcmp(ep->op, "env.patch") == 0) {
            args = json_object();
            json_object_set_new(args, "vars", obj);
        } else {
            args = obj;
        }
        break;
    }
    case BODY_CODE:
        if (is_json_content_type(x->content_type)) {
            if (!(args = parse_body_json(x)))
                return NULL;
            break;
        }
        if (!nano_utf8_valid(body, x->body.len)) {
            respond_error(x, 400, "bad_request", "modules", "module source is not valid UTF-8 text",
                          NULL, false);
            return NULL;
        }
        args = json_object();
        json_object_set_new(args, "main", json_string("index.js"));
        json_t *mods = json_object();
        json_object_set_new(mods, "index.js", json_stringn_nocheck(body, x->body.len));
        json_object_set_new(args, "modules", mods);
        break;
    case BODY_VALUE:
        if (!nano_utf8_valid(body, x->body.len)) {
            respond_error(x, 400, "bad_request", "value", "secret value is not valid UTF-8 text",
                          NULL, false);
            return NULL;
        }
        args = json_object();
        json_object_set_new(args, "value", json_stringn_nocheck(body, x->body.len));
        break;
    }
    if (strstr(tmpl, "{name}") && !set_name(x, args)) {
        json_decref(args);
        return NULL;
    }
    if (strstr(tmpl, "{key}"))
        json_object_set_new(args, "key", json_string(x->params[1]));
    if (strcmp(ep->op, "audit.list") == 0) {
        static const char *const keys[] = {"limit", "before_id"};
        for (size_t i = 0; i < 2; i++) {
            json_int_t v;
            int q = query_int(dp_request_url(x->req).ptr, keys[i], &v);
            if (q < 0) {
                char msg[96];
                snprintf(msg, sizeof msg, "query parameter %s must be a non-negative integer",
                         keys[i]);
                respond_error(x, 400, "invalid_field", keys[i], msg, NULL, false);
                json_decref(args);
                return NULL;
            }
            if (q > 0)
                json_object_set_new(args, keys[i], json_integer(v));
        }
    }
    return args;
}

/* handle: the whole request is in: answer it. */
static void handle(exchange *x)
{
    cp_http *h = x->h;
    const route *r = &routes[x->route];
    if (r->special == SPECIAL_HEALTHZ) {
        static const char ok[] = "{\"status\":\"ok\"}\n";
        respond(x, 200, "application/json", ok, sizeof ok - 1, NULL, false);
        return;
    }
    if (r->special == SPECIAL_METRICS) {
        nano_buf b = NANO_BUF_INIT;
        render_metrics(h, &b);
        respond(x, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len, NULL, false);
        nano_buf_fini(&b);
        return;
    }
    json_t *args = build_args(x);
    if (!args)
        return;
    cp_actor actor = {x->who, "http"};
    json_t *result = NULL;
    cp_error err;
    memset(&err, 0, sizeof err);
    int rc = h->call(h->ud, &actor, x->ep->op, args, &result, &err);
    json_decref(args);
    if (rc != 0) {
        respond_error(x, err.status ? err.status : 500, err.code[0] ? err.code : "internal",
                      err.field, err.message[0] ? err.message : "the operation failed", NULL,
                      false);
        return;
    }
    if (!result)
        result = json_object();
    respond_json(x, x->ep->ok_status, result, NULL, false);
    json_decref(result);
}

/* --- bodies ----------------------------------------------------------------------------------- */

/* A secret's bytes are wiped before their memory is freed or moved, so that the value does not
 * linger in the heap (the op has its own copy). */
static bool is_secret(const exchange *x)
{
    return x->ep != NULL && x->ep->body == BODY_VALUE;
}

static void wipe_free(void *p, size_t len, bool is_secret_value)
{
    if (p != NULL && is_secret_value)
        memset(p, 0, len);
    nano_free(p);
}

static void body_append(exchange *x, const char *data, size_t len)
{
    nano_buf *b = &x->body;
    if (is_secret(x) && b->cap - b->len < len + 1) {
        nano_buf grown = NANO_BUF_INIT;
        nano_buf_reserve(&grown, b->len + len);
        nano_buf_append(&grown, b->data, b->len);
        wipe_free(b->data, b->cap, true);
        *b = grown;
    }
    nano_buf_append(b, data, len);
}

static void exchange_free(exchange *x)
{
    cp_http *h = x->h;
    if (x->prev)
        x->prev->next = x->next;
    else
        h->waiting = x->next;
    if (x->next)
        x->next->prev = x->prev;
    dp_request_set_listener(x->req, NULL, NULL);
    wipe_free(x->body.data, x->body.cap, is_secret(x));
    dp_request_unref(x->req);
    nano_free(x);
}

/* The server's events for a request whose body we wait for. */
static void on_body_event(void *ud, dp_request *req)
{
    exchange *x = ud;
    if (dp_request_body_failed(req)) { /* the client went, or the server refused the rest */
        exchange_free(x);
        return;
    }
    size_t len;
    char *data = dp_request_take_body(req, &len);
    if (data != NULL && len > x->limit - x->body.len) {
        wipe_free(data, len, is_secret(x));
        x->h->n_refused[REFUSED_BODY_TOO_LARGE]++;
        char why[96];
        snprintf(why, sizeof why, "request body is larger than %zu bytes", x->limit);
        dp_request_set_listener(req, NULL, NULL);
        respond_error(x, 413, "too_large", "", why, NULL, true);
        exchange_free(x);
        return;
    }
    if (data != NULL) {
        body_append(x, data, len);
        wipe_free(data, len, is_secret(x));
    }
    if (!dp_request_body_complete(req))
        return;
    dp_request_set_listener(req, NULL, NULL);
    handle(x);
    exchange_free(x);
}

static void on_writable(void *ud, dp_request *req)
{
    (void)ud, (void)req; /* answers are written whole */
}

static void on_aborted(void *ud, dp_request *req)
{
    (void)req;
    exchange_free(ud);
}

static const dp_request_listener body_listener = {on_body_event, on_writable, on_aborted};

static void dispatch(void *ud, dp_request *req)
{
    exchange local = {.h = ud, .req = req, .route = ROUTE_NONE};
    if (!route_request(&local))
        return;
    if (!dp_request_has_body(req)) {
        handle(&local);
        return;
    }
    exchange *x = nano_xmalloc(sizeof *x);
    *x = local;
    x->next = x->h->waiting;
    if (x->next)
        x->next->prev = x;
    x->h->waiting = x;
    dp_request_ref(req);
    dp_request_set_listener(req, &body_listener, x);
    dp_request_body_collect(req);
}

/* --- public ------------------------------------------------------------------------------- */

int cp_http_start(uv_loop_t *loop, const char *addr, cp_call_cb call, cp_token_check_cb check,
                  void *ud, const cp_http_limits *limits, cp_http **out, nano_error *err)
{
    static const cp_http_limits defaults = CP_HTTP_LIMITS_DEFAULT;
    if (limits == NULL)
        limits = &defaults;
    struct sockaddr_storage ss;
    int rc = cp_api_parse_addr(addr, &ss, err);
    if (rc != 0)
        return rc;
    char host[64 + IF_NAMESIZE];
    int port;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a6, host, sizeof host);
        char zone[IF_NAMESIZE]; /* a link-local address keeps its interface ("fe80::1%eth0") */
        if (a6->sin6_scope_id != 0 && if_indextoname(a6->sin6_scope_id, zone) != NULL)
            snprintf(host + strlen(host), sizeof host - strlen(host), "%%%s", zone);
        port = ntohs(a6->sin6_port);
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    cp_http *h = nano_xcalloc(1, sizeof *h);
    h->loop = loop;
    h->call = call;
    h->check = check;
    h->ud = ud;
    h->max_body = limits->max_body;
    size_t largest = h->max_body > CP_HTTP_MAX_JSON_BODY ? h->max_body : CP_HTTP_MAX_JSON_BODY;
    dp_server_options so = {
        .host = host,
        .port = port,
        .limits = {.max_head = CP_HTTP_MAX_HEAD, .max_body = largest},
        /* The grace bounds the head, then the body before its rate applies (server.h). */
        .head_timeout_ms = limits->request_grace_ms,
        .idle_timeout_ms = CP_HTTP_IDLE_MS,
        .body_timeout_ms = limits->request_grace_ms,
        .body_min_rate = limits->body_min_rate,
        .quiet = true,
        .max_conns = CP_HTTP_MAX_CONNS,
        .dispatch = dispatch,
        .on_refusal = on_refusal,
        .ud = h,
    };
    h->srv = dp_server_new(loop, &so);
    rc = dp_server_listen(h->srv, err);
    if (rc != 0) {
        /* The handles must still be closed before the memory goes: the loop runs that. */
        dp_server_close(h->srv, nano_free, h);
        return rc;
    }
    NANO_INFO("cp.http_listening", "addr=%s port=%d max_body=%zu", addr, cp_http_port(h),
              h->max_body);
    *out = h;
    return 0;
}

int cp_http_port(const cp_http *http)
{
    return dp_server_bound_port(http->srv);
}

int cp_http_use_tls(cp_http *http, const char *cert, const char *key, const char *ca,
                    nano_error *err)
{
    dp_tls_ctx *ctx = NULL;
    int rc = dp_tls_ctx_new(cert, key, ca, "--admin-tls", &ctx, err);
    if (rc != 0)
        return rc;
    dp_server_set_tls_ctx(http->srv, ctx);
    dp_tls_ctx_unref(ctx); /* the server holds its own reference */
    NANO_INFO("cp.http_tls", "cert=%s client_certs=%s", cert, ca != NULL ? "required" : "no");
    return 0;
}

static void on_part_closed(void *arg)
{
    cp_http *h = arg;
    if (--h->n_closing > 0)
        return;
    cp_api_closed_cb done = h->closed_cb;
    void *done_arg = h->closed_arg;
    nano_free(h->counters);
    nano_free(h->errors);
    nano_free(h);
    if (done)
        done(done_arg);
}

static void on_timer_closed(uv_handle_t *handle)
{
    on_part_closed(handle->data);
}

static void on_drained(dp_server *srv, void *ud)
{
    cp_http *h = ud;
    h->n_closing = 2;
    dp_server_close(srv, on_part_closed, h);
    uv_close((uv_handle_t *)&h->close_timer, on_timer_closed);
}

static void on_close_grace(uv_timer_t *t)
{
    cp_http *h = t->data;
    dp_server_abort_all(h->srv); /* answers not out in CLOSE_GRACE_MS: given up */
}

void cp_http_close(cp_http *h, cp_api_closed_cb done, void *arg)
{
    if (!h || h->is_closing)
        return;
    h->is_closing = true;
    h->closed_cb = done;
    h->closed_arg = arg;
    /* Ops run synchronously on this thread, so none is in flight; a request whose body is
     * still arriving is not run now. */
    while (h->waiting) {
        exchange *x = h->waiting;
        dp_request_set_listener(x->req, NULL, NULL);
        respond_error(x, 503, "shutting_down", "", "nanocp is shutting down", NULL, true);
        exchange_free(x);
    }
    uv_timer_init(h->loop, &h->close_timer);
    h->close_timer.data = h;
    uv_timer_start(&h->close_timer, on_close_grace, CLOSE_GRACE_MS, 0);
    dp_server_drain(h->srv, on_drained, h);
}
