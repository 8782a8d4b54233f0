/* fuzz_admin_http: nanocp's HTTP admin API (controlplane/api_http.c), the control plane's
 * front door: its bytes come from anyone who can reach the port, token or not. Each input is
 * one connection to a real server (cp_http_start on 127.0.0.1, on this thread's loop) with
 * a fake service behind it: the input's first byte picks the size of the chunks the rest is
 * sent in (each chunk read on its own loop turn; 0xc0 and up: all at once), then the client
 * half-closes and reads until the server closes. Every connection's server is closed after it,
 * so each input starts from the same state (the same metrics too).
 *
 * The fake service accepts one token and answers by the app name in the args: canned errors
 * (404, 409, 413, a failure without a status, an out-of-range status), a NULL result, or an
 * echo of the op and its args. Invariants:
 * - every call carries the "who" of the latest token check that passed, which no call used
 *   before (a request without the right token never reaches the service), and a check
 *   passes only for a token the input holds; the args are an object shaped for the op;
 * - what the server writes is a sequence of whole HTTP/1.1 responses: a documented status
 *   with its reason phrase, a Content-Length that matches the body, Cache-Control: no-store,
 *   nothing after one that says Connection: close (keep-alive only to an HTTP/1.0 request
 *   that asked for it); application/json bodies that parse
 *   (errors as {"error": {code, message, field}}), 401 with WWW-Authenticate, 405 with Allow;
 *   text/plain only for /metrics after a token check, in the exposition format; at least
 *   one response per call;
 * - the server closes the connection in bounded time after the client's half-close, and
 *   closing the server releases every handle (the loop has nothing alive).
 * No leak on any path (ASan build). */
#define _GNU_SOURCE /* memmem */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <uv.h>

#include "api_http.h"
#include "buf.h"
#include "fuzz.h"
#include "log.h"

#define TOKEN "fuzz-t0ken-5b1"
#define MAX_BODY 4096     /* for code uploads: small, so that 413 is reachable */
#define DEADLINE_MS 10000 /* per input; a normal one takes a millisecond */

typedef struct run {
    uv_tcp_t client;
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uv_timer_t deadline;
    cp_http *http;
    bool is_connected, is_eof, is_timed_out, is_server_closed;
    int connect_status;
    nano_buf in; /* every byte the server wrote */
    /* the fake service's view */
    unsigned n_checks_ok;
    char who[32];     /* the name the last passed check gave */
    bool is_who_used; /* by a call already */
    unsigned n_calls;
} run;

static uv_loop_t g_loop;
static bool g_is_init;
static run g;

/* --- the fake service ------------------------------------------------------------------------ */

static bool fake_check(void *ud, const char *token, const char **who)
{
    (void)ud;
    FUZZ_CHECK(token != NULL);
    if (strcmp(token, TOKEN) != 0)
        return false;
    g.n_checks_ok++;
    snprintf(g.who, sizeof g.who, "admin-%u", g.n_checks_ok);
    g.is_who_used = false;
    *who = g.who;
    return true;
}

static const struct {
    const char *op;
    bool has_name, has_key;
} g_ops[] = {
    {"apps.list", false, false},    {"apps.create", false, false},
    {"apps.get", true, false},      {"apps.update", true, false},
    {"apps.remove", true, false},   {"apps.drain", true, false},
    {"apps.deploy", true, false},   {"deployments.list", true, false},
    {"apps.rollback", true, false}, {"env.get", true, false},
    {"env.patch", true, false},     {"env.replace", true, false},
    {"secrets.list", true, false},  {"secrets.put", true, true},
    {"secrets.delete", true, true}, {"nodes.list", false, false},
    {"nodes.remove", true, false},  {"audit.list", false, false},
    {"version", false, false},
};

/* As the service fills its errors (cp_error_set lives in service.c, which this does not link). */
static int fake_error(cp_error *err, int status, const char *code, const char *field,
                      const char *message)
{
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", message);
    err->status = status;
    return NANO_EINVAL;
}

static int fake_call(void *ud, const cp_actor *actor, const char *op, json_t *args, json_t **result,
                     cp_error *err)
{
    (void)ud;
    g.n_calls++;
    /* The token check of this request passed, and no other call used it. */
    FUZZ_CHECK(actor != NULL && actor->who != NULL && strcmp(actor->via, "http") == 0);
    FUZZ_CHECK(g.who[0] != '\0' && !g.is_who_used && strcmp(actor->who, g.who) == 0);
    g.is_who_used = true;
    FUZZ_CHECK(json_is_object(args));
    size_t i = 0;
    while (i < sizeof g_ops / sizeof g_ops[0] && strcmp(g_ops[i].op, op) != 0)
        i++;
    FUZZ_CHECK(i < sizeof g_ops / sizeof g_ops[0]);
    json_t *name = json_object_get(args, "name");
    if (g_ops[i].has_name)
        FUZZ_CHECK(json_is_string(name) && json_string_length(name) > 0 &&
                   json_string_length(name) <= 255);
    if (g_ops[i].has_key)
        FUZZ_CHECK(json_is_string(json_object_get(args, "key")));
    if (strcmp(op, "secrets.put") == 0)
        FUZZ_CHECK(json_is_string(json_object_get(args, "value")));
    if (strcmp(op, "env.patch") == 0)
        FUZZ_CHECK(json_is_object(json_object_get(args, "vars")));

    const char *n = json_is_string(name) ? json_string_value(name) : "";
    if (strcmp(n, "missing") == 0)
        return fake_error(err, 404, "app_not_found", "name", "app missing does not exist");
    if (strcmp(n, "taken") == 0)
        return fake_error(err, 409, "app_exists", "name", "app taken already exists");
    if (strcmp(n, "huge") == 0)
        return fake_error(err, 413, "too_large", "modules", "the bundle is too large");
    if (strcmp(n, "boom") == 0)
        return NANO_EIO; /* err left empty: the adapter answers 500 internal */
    if (strcmp(n, "weird") == 0) {
        /* a status outside 4xx/5xx and a code with bytes no label or JSON string takes */
        snprintf(err->code, sizeof err->code, "we\"ird{\n\xff}");
        snprintf(err->message, sizeof err->message, "line\nbreak \xc3(");
        snprintf(err->field, sizeof err->field, "f\xff");
        err->status = 299;
        return NANO_EINVAL;
    }
    if (strcmp(n, "null") == 0)
        return 0; /* no result: the adapter answers {} */
    *result = json_pack("{s:s, s:O}", "op", op, "args", args);
    return 0;
}

/* --- the client -------------------------------------------------------------------------- */

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[65536];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n > 0)
        nano_buf_append(&g.in, buf->base, (size_t)n);
    if (n < 0) { /* UV_EOF: the server closed; also ECONNRESET when it left bytes unread */
        g.is_eof = true;
        uv_read_stop(s);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    (void)req;
    g.is_connected = true;
    g.connect_status = status;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* ENOTCONN and the like once the server has reset the connection */
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    g.is_timed_out = true;
}

static void on_server_closed(void *arg)
{
    (void)arg;
    g.is_server_closed = true;
}

/* Every input closes what it opened, so the loop closes clean. */
static void close_loop(void)
{
    FUZZ_CHECK(uv_loop_close(&g_loop) == 0);
}

static void init_once(void)
{
    if (g_is_init)
        return;
    g_is_init = true;
    signal(SIGPIPE, SIG_IGN);           /* a write to a connection the server has reset */
    nano_log_min_level = NANO_LOG_WARN; /* not a cp.http_listening line per input */
    if (uv_loop_init(&g_loop) != 0)
        abort();
    atexit(close_loop);
}

/* --- checking what the server wrote ----------------------------------------------------------- */

/* The statuses docs/admin-api.md gives (the routes' successes, the HTTP layer's errors, the
 * service's) with their RFC 9110 reason phrases. */
static const char *status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return NULL;
    }
}

/* One header's value (the first), or NULL; *count says how many times the name appears. */
static const char *header(const char *head, size_t head_len, const char *name, size_t *vlen,
                          int *count)
{
    const char *found = NULL;
    size_t nlen = strlen(name);
    *count = 0;
    const char *p = memchr(head, '\n', head_len) + 1; /* past the status line */
    const char *end = head + head_len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        FUZZ_CHECK(eol != NULL);
        if (eol == p)
            break; /* the blank line */
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        FUZZ_CHECK(colon != NULL && colon > p); /* "Name: value" */
        FUZZ_CHECK(colon + 1 < eol && colon[1] == ' ');
        if ((size_t)(colon - p) == nlen && strncasecmp(p, name, nlen) == 0) {
            if (found == NULL) {
                found = colon + 2;
                *vlen = (size_t)(eol - found);
            }
            (*count)++;
        }
        p = eol + 2;
    }
    return found;
}

static bool value_is(const char *v, size_t len, const char *want)
{
    return v != NULL && len == strlen(want) && memcmp(v, want, len) == 0;
}

/* Prometheus text: comment lines, and `name{label="value",...} N` or `name N`. */
static void check_metrics(const char *body, size_t len)
{
    FUZZ_CHECK(len > 0 && body[len - 1] == '\n');
    FUZZ_CHECK(strncmp(body, "# HELP nanocp_http_requests_total ", 34) == 0);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (*p != '#') {
            const char *q = p;
            while (q < eol && ((*q >= 'a' && *q <= 'z') || *q == '_'))
                q++;
            FUZZ_CHECK(q > p);
            if (*q == '{') {
                for (q++; *q != '}';) {
                    while ((*q >= 'a' && *q <= 'z') || *q == '_')
                        q++;
                    FUZZ_CHECK(q[0] == '=' && q[1] == '"');
                    for (q += 2; *q != '"'; q++)
                        FUZZ_CHECK(q < eol && *q != '\\');
                    q++;
                    if (*q == ',')
                        q++;
                    FUZZ_CHECK(q < eol);
                }
                q++;
            }
            FUZZ_CHECK(*q == ' ' && q + 1 < eol);
            for (q++; q < eol; q++)
                FUZZ_CHECK(*q >= '0' && *q <= '9');
        }
        p = eol + 1;
    }
}

static void check_error_body(json_t *v)
{
    json_t *e = json_object_get(v, "error");
    FUZZ_CHECK(json_is_object(v) && json_object_size(v) == 1 && json_is_object(e));
    FUZZ_CHECK(json_object_size(e) == 3);
    FUZZ_CHECK(json_is_string(json_object_get(e, "code")));
    FUZZ_CHECK(json_string_length(json_object_get(e, "code")) > 0);
    FUZZ_CHECK(json_is_string(json_object_get(e, "message")));
    FUZZ_CHECK(json_is_string(json_object_get(e, "field")));
}

/* The whole stream the server wrote. Returns the number of final responses. */
static unsigned check_responses(const char *data, size_t len, unsigned *n_metrics)
{
    size_t off = 0;
    unsigned n_final = 0;
    bool is_closed = false;
    *n_metrics = 0;
    while (off < len) {
        FUZZ_CHECK(!is_closed); /* nothing after "Connection: close" */
        const char *head = data + off;
        const char *blank = memmem(head, len - off, "\r\n\r\n", 4);
        FUZZ_CHECK(blank != NULL); /* a whole head */
        size_t head_len = (size_t)(blank - head) + 4;
        /* "HTTP/1.1 NNN Reason\r\n" */
        FUZZ_CHECK(head_len > 15 && memcmp(head, "HTTP/1.1 ", 9) == 0);
        for (int i = 9; i < 12; i++)
            FUZZ_CHECK(head[i] >= '0' && head[i] <= '9');
        int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
        const char *reason = status_reason(status);
        FUZZ_CHECK(reason != NULL);
        size_t reason_len = strlen(reason);
        FUZZ_CHECK(head[12] == ' ' && head_len > 13 + reason_len + 2);
        FUZZ_CHECK(memcmp(head + 13, reason, reason_len) == 0 &&
                   memcmp(head + 13 + reason_len, "\r\n", 2) == 0);
        off += head_len;
        if (status == 100) { /* interim: no headers, no body */
            FUZZ_CHECK(head_len == 25 && memcmp(head, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
            continue;
        }
        n_final++;
        size_t clen_len = 0, ct_len = 0, v_len = 0;
        int n_clen, n_ct, n;
        const char *clen = header(head, head_len, "Content-Length", &clen_len, &n_clen);
        FUZZ_CHECK(n_clen == 1 && clen_len > 0 && clen_len < 10);
        size_t body_len = 0;
        for (size_t i = 0; i < clen_len; i++) {
            FUZZ_CHECK(clen[i] >= '0' && clen[i] <= '9');
            body_len = body_len * 10 + (size_t)(clen[i] - '0');
        }
        FUZZ_CHECK(body_len <= len - off); /* the whole body arrived */
        const char *body = data + off;
        off += body_len;
        const char *cc = header(head, head_len, "Cache-Control", &v_len, &n);
        FUZZ_CHECK(n == 1 && value_is(cc, v_len, "no-store"));
        const char *conn = header(head, head_len, "Connection", &v_len, &n);
        if (conn != NULL) {
            /* keep-alive: to an HTTP/1.0 request that asked for it (RFC 9112 §9.3) */
            FUZZ_CHECK(n == 1 &&
                       (value_is(conn, v_len, "close") || value_is(conn, v_len, "keep-alive")));
            is_closed = value_is(conn, v_len, "close");
        }
        if (status == 401) {
            const char *wa = header(head, head_len, "WWW-Authenticate", &v_len, &n);
            FUZZ_CHECK(n == 1 && value_is(wa, v_len, "Bearer realm=\"nanocp\""));
        }
        if (status == 405) {
            const char *allow = header(head, head_len, "Allow", &v_len, &n);
            FUZZ_CHECK(n == 1 && v_len > 0);
            (void)allow;
        }
        const char *ct = header(head, head_len, "Content-Type", &ct_len, &n_ct);
        FUZZ_CHECK(n_ct == 1);
        if (value_is(ct, ct_len, "text/plain; version=0.0.4; charset=utf-8")) {
            FUZZ_CHECK(status == 200); /* only /metrics, only with the token */
            (*n_metrics)++;
            check_metrics(body, body_len);
            continue;
        }
        FUZZ_CHECK(value_is(ct, ct_len, "application/json"));
        FUZZ_CHECK(body_len > 0 && body[body_len - 1] == '\n');
        json_error_t jerr;
        json_t *v = json_loadb(body, body_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (v == NULL)
            fprintf(stderr, "fuzz: not JSON (%s): %.*s\n", jerr.text, (int)body_len, body);
        FUZZ_CHECK(v != NULL);
        if (status >= 400)
            check_error_body(v);
        json_decref(v);
    }
    return n_final;
}

/* --- one input ------------------------------------------------------------------------------- */

static void run_loop_until(const bool *flag)
{
    while (!*flag && !g.is_timed_out)
        uv_run(&g_loop, UV_RUN_ONCE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    init_once();
    size_t chunk = data[0] >= 0xc0 ? size : (size_t)(1 + data[0] % 64);
    data++;
    size--;
    memset(&g, 0, sizeof g);
    g.in = NANO_BUF_INIT;

    /* The port of the previous input's server: bind(2) with port 0 gets slower with every
     * connection left in TIME_WAIT (a millisecond after a few thousand), and libuv binds with
     * SO_REUSEADDR, so the same port is free again at once, unless another process took it. */
    static int port;
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    nano_error err;
    cp_http_limits limits = CP_HTTP_LIMITS_DEFAULT;
    limits.max_body = MAX_BODY;
    int rc = cp_http_start(&g_loop, addr, fake_call, fake_check, NULL, &limits, &g.http, &err);
    if (rc != 0 && port != 0) {
        uv_run(&g_loop, UV_RUN_DEFAULT); /* the failed listener's close */
        rc = cp_http_start(&g_loop, "127.0.0.1:0", fake_call, fake_check, NULL, &limits, &g.http,
                           &err);
    }
    if (rc != 0)
        fprintf(stderr, "fuzz: cp_http_start: %s\n", err.message);
    FUZZ_CHECK(rc == 0);
    port = cp_http_port(g.http);
    uv_timer_init(&g_loop, &g.deadline);
    uv_timer_start(&g.deadline, on_deadline, DEADLINE_MS, 0);
    uv_tcp_init(&g_loop, &g.client);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", cp_http_port(g.http), &sa);
    FUZZ_CHECK(uv_tcp_connect(&g.connect, &g.client, (const struct sockaddr *)&sa, on_connect) ==
               0);
    run_loop_until(&g.is_connected);
    FUZZ_CHECK(g.is_connected && g.connect_status == 0);
    uv_read_start((uv_stream_t *)&g.client, on_client_alloc, on_client_read);

    /* One chunk per loop turn, so the server reads them one by one. */
    size_t off = 0;
    while (off < size && !g.is_eof && !g.is_timed_out) {
        size_t n = size - off < chunk ? size - off : chunk;
        uv_buf_t b = uv_buf_init((char *)data + off, (unsigned)n);
        int w = uv_try_write((uv_stream_t *)&g.client, &b, 1);
        if (w > 0)
            off += (size_t)w;
        else if (w != UV_EAGAIN)
            break; /* the server reset the connection: what it wrote is still checked */
        uv_run(&g_loop, w > 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
    if (!g.is_eof)
        uv_shutdown(&g.shutdown, (uv_stream_t *)&g.client, on_shutdown);
    run_loop_until(&g.is_eof);
    if (g.is_timed_out)
        fprintf(stderr, "fuzz: the server did not close the connection within %d ms\n",
                DEADLINE_MS);
    FUZZ_CHECK(!g.is_timed_out);

    uv_close((uv_handle_t *)&g.client, NULL);
    uv_close((uv_handle_t *)&g.deadline, NULL);
    cp_http_close(g.http, on_server_closed, NULL);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    FUZZ_CHECK(g.is_server_closed && !uv_loop_alive(&g_loop));

    unsigned n_metrics = 0;
    unsigned n_final = check_responses(g.in.data, g.in.len, &n_metrics);
    FUZZ_CHECK(n_final >= g.n_calls); /* every call is answered */
    FUZZ_CHECK(g.n_calls + n_metrics <= g.n_checks_ok);
    /* a check passes only for the token, which the input must hold once per pass */
    unsigned n_tokens = 0;
    for (const uint8_t *p = data, *end = data + size;
         (p = memmem(p, (size_t)(end - p), TOKEN, strlen(TOKEN))) != NULL; p += strlen(TOKEN))
        n_tokens++;
    FUZZ_CHECK(g.n_checks_ok <= n_tokens);
    nano_buf_fini(&g.in);
    return 0;
}

/* --- seeds ------------------------------------------------------------------------------------ */

#define AUTH "Authorization: Bearer " TOKEN "\r\n"
#define H11 " HTTP/1.1\r\nHost: cp.test\r\n"

void fuzz_seeds(fuzz_add_fn add)
{
    static const char *const reqs[] = {
        "\xc0GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        /* keep-alive and pipelining: several routes in one stream */
        "\xc0GET /v1/apps" H11 AUTH "\r\n"
        "GET /v1/apps/api" H11 AUTH "\r\n"
        "GET /v1/apps/api/drain" H11 AUTH "\r\n"
        "GET /v1/apps/api/deployments" H11 AUTH "\r\n"
        "GET /v1/apps/api/env" H11 AUTH "\r\n"
        "GET /v1/apps/api/secrets" H11 AUTH "\r\n"
        "GET /v1/nodes" H11 AUTH "\r\n"
        "GET /v1/version" H11 AUTH "\r\n"
        "GET /metrics" H11 AUTH "\r\n",
        "\x10POST /v1/apps" H11 AUTH "Content-Type: application/json\r\nContent-Length: 77\r\n\r\n"
        "{\"name\":\"api\",\"hostnames\":[\"api.example.com\"],"
        "\"limits\":{\"cpu_ms\":50},\"x\":[1]}"
        "GET /metrics" H11 AUTH "Connection: close\r\n\r\n",
        "\x07PATCH /v1/apps/api" H11 AUTH "Transfer-Encoding: chunked\r\n\r\n"
        "6\r\n{\"defa\r\n10\r\nult\":true,\"x\":1}\r\n0\r\nTrailer: t\r\n\r\n"
        "DELETE /v1/apps/api" H11 AUTH "\r\n",
        "\x20PUT /v1/apps/api/code" H11 AUTH "Expect: 100-continue\r\nContent-Length: 52\r\n\r\n"
        "export default { fetch() { return new Response() } }"
        "PUT /v1/apps/api/code" H11 AUTH "Content-Type: application/json; charset=utf-8\r\n"
        "Content-Length: 53\r\n\r\n"
        "{\"name\":\"api\",\"main\":\"a.js\",\"modules\":{\"a.js\":\"x\"}}\r\n",
        "\x0bPUT /v1/apps/api/secrets/DB_PASS" H11 AUTH "Content-Length: 7\r\n\r\nhunter2"
        "DELETE /v1/apps/api/secrets/DB_PASS" H11 AUTH "\r\n"
        "PUT /v1/apps/api/secrets/BIN" H11 AUTH "Content-Length: 2\r\n\r\n\xff\xfe",
        "\xc1PATCH /v1/apps/api/env" H11 AUTH "Content-Length: 26\r\n\r\n"
        "{\"A\":\"1\",\"OLD\":null,\"N\":2}"
        "PUT /v1/apps/api/env" H11 AUTH "Content-Length: 36\r\n\r\n"
        "{\"vars\":{\"A\":1},\"secrets\":{\"S\":\"v\"}}"
        "POST /v1/apps/api/rollback" H11 AUTH "Content-Length: 13\r\n\r\n{\"version\":3}"
        "DELETE /v1/nodes/n1" H11 AUTH "\r\n",
        "\x05GET /v1/audit?limit=5&before_id=10" H11 AUTH "\r\n"
        "GET /v1/audit?limit=-1" H11 AUTH "\r\n"
        "GET /v1/audit?before_id=%31%32&limit=+7" H11 AUTH "\r\n",
        /* without the right token: 401, and a body announced is not read */
        "\xc0GET /v1/apps" H11 "\r\nGET /metrics" H11 "Authorization: Bearer wrong\r\n\r\n"
        "GET /v1/apps" H11 "authorization: bearer   " TOKEN "\r\n\r\n"
        "POST /v1/apps" H11 "Authorization: Basic " TOKEN "\r\nContent-Length: 10\r\n\r\n"
        "{\"a\":\"b\"}x",
        "\x30PUT /v1/apps/api/code" H11 "Expect: 100-continue\r\nContent-Length: 4000\r\n\r\nabc",
        /* routing: 404, 405, escapes, long and bad segments */
        "\xc0GET /nope" H11 AUTH "\r\nPOST /v1/version" H11 AUTH "\r\n"
        "GET /v1/apps/%61pi/env?x=1#f" H11 AUTH "\r\nGET /v1/apps/%zz" H11 AUTH "\r\n"
        "GET /v1/apps/%00" H11 AUTH "\r\nGET /v1/apps/%c3%28" H11 AUTH "\r\n"
        "GET /v1/apps//env" H11 AUTH "\r\nGET *" H11 AUTH "\r\n"
        "PUT /v1/apps/a/secrets/" H11 AUTH "\r\nGET /healthz?x" H11 "\r\n",
        /* the fake service's errors and empty result */
        "\xc0GET /v1/apps/missing" H11 AUTH "\r\nGET /v1/apps/taken" H11 AUTH "\r\n"
        "GET /v1/apps/huge" H11 AUTH "\r\nGET /v1/apps/boom" H11 AUTH "\r\n"
        "GET /v1/apps/weird" H11 AUTH "\r\nDELETE /v1/apps/null" H11 AUTH "\r\n"
        "GET /metrics" H11 AUTH "\r\n",
        /* bodies the adapter refuses */
        "\x09POST /v1/apps" H11 AUTH "Content-Length: 0\r\n\r\n"
        "POST /v1/apps" H11 AUTH "Content-Length: 3\r\n\r\n[1]"
        "POST /v1/apps" H11 AUTH "Content-Length: 13\r\n\r\n{\"a\":1,\"a\":2}"
        "PATCH /v1/apps/api" H11 AUTH "Content-Length: 13\r\n\r\n{\"name\":\"b\"}\n"
        "PUT /v1/apps/api/code" H11 AUTH "Content-Length: 3\r\n\r\n\xc3\x28x"
        "POST /v1/apps" H11 AUTH "Content-Length: 2000000\r\n\r\n{",
        /* malformed HTTP and protocol rules */
        "\xc0GET /v1/apps HTTP/1.1\r\n" AUTH "\r\n",
        "\xc0POST /v1/apps" H11 AUTH "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
        "\xc0GET /v1/apps" H11 AUTH AUTH "\r\n",
        "\xc0GET /v1/apps HTTP/2.0\r\nHost: a\r\n" AUTH "\r\n",
        "\xc0GET /v1/apps HTTP/1.0\r\n" AUTH "\r\nGET /v1/apps HTTP/1.0\r\n" AUTH
        "Connection: keep-alive\r\n\r\nGET /healthz HTTP/1.0\r\n\r\n",
        "\xc0GET /v1/apps" H11 AUTH "Connection: close\r\n\r\nGET /v1/apps" H11 AUTH "\r\n",
        "\x02GET /v1/apps HTTP/1.1\r\nHost: a b\r\n\r\n",
        "\xc0\x7f\x01garbage\r\n\r\n",
        "\x01GET /v1/apps" H11 "Host: again\r\n" AUTH "\r\n",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
        add(reqs[i], strlen(reqs[i]));
    /* A head past 64 KiB (431): header lines are counted with their ": " and CRLF. */
    nano_buf b = NANO_BUF_INIT;
    nano_buf_append_str(&b, "\xc0GET /v1/apps" H11);
    while (b.len < 60000)
        nano_buf_append_str(&b, "a:\r\n");
    nano_buf_append_str(&b, "\r\n");
    add(b.data, b.len);
    /* A chunked code upload one byte past MAX_BODY (413 from the body, not the head). */
    nano_buf_reset(&b);
    nano_buf_append_str(&b, "\x3fPUT /v1/apps/api/code" H11 AUTH
                            "Transfer-Encoding: chunked\r\n\r\n1001\r\n");
    for (int i = 0; i <= MAX_BODY; i++)
        nano_buf_append(&b, "a", 1);
    nano_buf_append_str(&b, "\r\n0\r\n\r\n");
    add(b.data, b.len);
    nano_buf_fini(&b);
}
