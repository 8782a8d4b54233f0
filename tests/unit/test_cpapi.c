/* Unit tests for nanocp's admin front ends (controlplane/api_http.c, api_rpc.c) and nanoctl's
 * argument handling (cli/).
 *
 * The front ends run on a real libuv loop in a second thread, bound to 127.0.0.1 on an
 * ephemeral port, and are driven over real sockets (raw HTTP/1.1 bytes; NNG REQ sockets).
 * Behind them is a recording cp_call_cb that returns canned results: these tests check the
 * adapters (routing, parsing, limits, tokens, envelopes), not the service. End-to-end tests
 * against the real nanocp live in tests/e2e/. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "admin_msg.h"
#include "api.h"
#include "api_http.h"
#include "api_rpc.h"
#include "buf.h"
#include "ctl.h"
#include "log.h"
#include "mpjson.h"
#include "nng_link.h"

#define TOKEN "t0ken-for-tests"

/* --- the recording service ----------------------------------------------------------------- */

typedef struct fake {
    pthread_mutex_t mu;
    int n_calls;
    char op[64];
    json_t *args;  /* deep copy of the last call's args */
    char who[64];
    char via[16];
    /* canned answer for the next calls: an error when err.code is set, else result (or an
     * echo {"op", "args"} when result is NULL) */
    json_t *result;
    cp_error err;
} fake;

static fake svc = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fake_reset(void)
{
    pthread_mutex_lock(&svc.mu);
    svc.n_calls = 0;
    svc.op[0] = '\0';
    json_decref(svc.args);
    svc.args = NULL;
    json_decref(svc.result);
    svc.result = NULL;
    memset(&svc.err, 0, sizeof svc.err);
    pthread_mutex_unlock(&svc.mu);
}

static int fake_call(void *ud, const cp_actor *actor, const char *op, json_t *args,
                     json_t **result, cp_error *err)
{
    (void)ud;
    pthread_mutex_lock(&svc.mu);
    svc.n_calls++;
    snprintf(svc.op, sizeof svc.op, "%s", op);
    json_decref(svc.args);
    svc.args = json_deep_copy(args);
    snprintf(svc.who, sizeof svc.who, "%s", actor->who);
    snprintf(svc.via, sizeof svc.via, "%s", actor->via);
    int rc = 0;
    if (svc.err.code[0]) {
        *err = svc.err;
        rc = NANO_EINVAL;
    } else if (svc.result) {
        *result = json_deep_copy(svc.result);
    } else {
        *result = json_pack("{s:s, s:O}", "op", op, "args", args);
    }
    pthread_mutex_unlock(&svc.mu);
    return rc;
}

static bool fake_check(void *ud, const char *token, const char **who)
{
    (void)ud;
    if (strcmp(token, TOKEN) != 0)
        return false;
    *who = "admin";
    return true;
}

/* --- a loop thread running one front end --------------------------------------------------- */

typedef struct server {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    cp_http *http;
    cp_rpc *rpc;
    int port;
    int n_closed;
} server;

static void on_closed(void *arg)
{
    server *s = arg;
    s->n_closed++;
}

static void on_stop(uv_async_t *a)
{
    server *s = a->data;
    if (s->http)
        cp_http_close(s->http, on_closed, s);
    if (s->rpc)
        cp_rpc_close(s->rpc, on_closed, s);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *arg)
{
    server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* The server lives on the heap: after a failed assertion its thread keeps running, and must
 * not be left pointing into a returned stack frame. */
static server *server_start_with(bool is_rpc, const cp_http_limits *limits)
{
    server *s = calloc(1, sizeof *s);
    fake_reset();
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->stop, on_stop), 0);
    s->stop.data = s;
    nano_error err = {0};
    if (is_rpc) {
        int rc = cp_rpc_start(&s->loop, "tcp://127.0.0.1:0", NULL, fake_call, fake_check, NULL,
                              &s->rpc, &err);
        if (rc != 0)
            fail_msg("cp_rpc_start: %s", err.message);
        s->port = cp_rpc_port(s->rpc);
    } else {
        int rc = cp_http_start(&s->loop, "127.0.0.1:0", fake_call, fake_check, NULL, limits,
                               &s->http, &err);
        if (rc != 0)
            fail_msg("cp_http_start: %s", err.message);
        s->port = cp_http_port(s->http);
    }
    assert_true(s->port > 0);
    assert_int_equal(pthread_create(&s->thread, NULL, run_loop, s), 0);
    return s;
}

/* max_body 0: the default. */
static server *server_start(bool is_rpc, size_t max_body)
{
    cp_http_limits limits = CP_HTTP_LIMITS_DEFAULT;
    if (max_body != 0)
        limits.max_body = max_body;
    return server_start_with(is_rpc, &limits);
}

/* Closing must release every handle: uv_loop_close() fails on a leaked one. */
static void server_stop(server *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_int_equal(s->n_closed, 1);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    free(s);
    fake_reset();
}

/* --- a blocking HTTP client ---------------------------------------------------------------- */

static int http_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0}; /* every wait is bounded */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the server may close early (413, 401): the response says why */
        p += n;
        len -= (size_t)n;
    }
}

typedef struct response {
    int status;
    char headers[4096];
    char *body; /* NUL-terminated */
    size_t body_len;
    json_t *json; /* body parsed, when it is JSON */
} response;

static void response_free(response *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Reads from fd into a per-connection buffer until one whole response is there. */
typedef struct reader {
    int fd;
    nano_buf in;
} reader;

static bool read_more(reader *rd)
{
    char tmp[65536];
    ssize_t n = recv(rd->fd, tmp, sizeof tmp, 0);
    if (n <= 0)
        return false;
    nano_buf_append(&rd->in, tmp, (size_t)n);
    return true;
}

static bool read_response(reader *rd, response *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    while ((end = rd->in.len ? memmem(rd->in.data, rd->in.len, "\r\n\r\n", 4) : NULL) == NULL)
        if (!read_more(rd))
            return false;
    size_t head_len = (size_t)(end - rd->in.data) + 4;
    assert_true(head_len < sizeof r->headers);
    memcpy(r->headers, rd->in.data, head_len);
    r->headers[head_len] = '\0';
    assert_int_equal(sscanf(r->headers, "HTTP/1.1 %d", &r->status), 1);
    size_t clen = 0;
    const char *cl = strcasestr(r->headers, "\r\nContent-Length:");
    if (cl)
        clen = strtoul(cl + 17, NULL, 10);
    while (rd->in.len < head_len + clen)
        if (!read_more(rd))
            return false;
    r->body = malloc(clen + 1);
    memcpy(r->body, rd->in.data + head_len, clen);
    r->body[clen] = '\0';
    r->body_len = clen;
    nano_buf_consume(&rd->in, head_len + clen);
    if (strcasestr(r->headers, "Content-Type: application/json")) {
        json_error_t jerr;
        r->json = json_loadb(r->body, clen, 0, &jerr);
        if (!r->json)
            fail_msg("response body is not JSON: %s", r->body);
    }
    return true;
}

/* One request on a fresh connection. */
static response http(int port, const char *method, const char *path, const char *token,
                     const char *content_type, const char *body, size_t body_len)
{
    int fd = http_connect(port);
    nano_buf req = NANO_BUF_INIT;
    nano_buf_appendf(&req, "%s %s HTTP/1.1\r\nHost: cp\r\n", method, path);
    if (token)
        nano_buf_appendf(&req, "Authorization: Bearer %s\r\n", token);
    if (content_type)
        nano_buf_appendf(&req, "Content-Type: %s\r\n", content_type);
    if (body)
        nano_buf_appendf(&req, "Content-Length: %zu\r\n", body_len);
    nano_buf_append_str(&req, "\r\n");
    if (body)
        nano_buf_append(&req, body, body_len);
    send_all(fd, req.data, req.len);
    nano_buf_fini(&req);
    reader rd = {fd, NANO_BUF_INIT};
    response r;
    if (!read_response(&rd, &r))
        fail_msg("no response to %s %s", method, path);
    nano_buf_fini(&rd.in);
    close(fd);
    return r;
}

static response get(int port, const char *path)
{
    return http(port, "GET", path, TOKEN, NULL, NULL, 0);
}

static response send_json(int port, const char *method, const char *path, const char *body)
{
    return http(port, method, path, TOKEN, "application/json", body, strlen(body));
}

static const char *err_code(const response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static const char *err_message(const response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
}

static const char *err_field(const response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
}

/* What the service saw last, copied under the lock: assertions run outside it, so that a
 * failing one (a longjmp) never leaves the lock held for the next test. */
typedef struct seen {
    char op[64];
    char who[64];
    char via[16];
    json_t *args;
} seen;

static seen last_call(void)
{
    seen w;
    pthread_mutex_lock(&svc.mu);
    memcpy(w.op, svc.op, sizeof w.op);
    memcpy(w.who, svc.who, sizeof w.who);
    memcpy(w.via, svc.via, sizeof w.via);
    w.args = json_deep_copy(svc.args);
    pthread_mutex_unlock(&svc.mu);
    return w;
}

/* The last op the service saw, and its args. */
static void assert_call(const char *op, const char *args_json)
{
    seen w = last_call();
    assert_string_equal(w.op, op);
    json_error_t jerr;
    json_t *want = json_loads(args_json, 0, &jerr);
    if (!want)
        fail_msg("bad expectation %s", args_json);
    if (!json_equal(want, w.args)) {
        char *got = json_dumps(w.args, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("op %s: args %s, expected %s", op, got, args_json);
    }
    json_decref(want);
    json_decref(w.args);
}

static int n_calls(void)
{
    pthread_mutex_lock(&svc.mu);
    int n = svc.n_calls;
    pthread_mutex_unlock(&svc.mu);
    return n;
}

/* --- addr --------------------------------------------------------------------------------- */

static void addr_forms(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    nano_error err;
    assert_int_equal(cp_api_parse_addr("127.0.0.1:7070", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7070);
    assert_int_equal(cp_api_parse_addr("[::1]:0", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(cp_api_parse_addr("localhost:80", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(cp_api_parse_addr("127.0.0.1", &ss, &err), NANO_EINVAL);
    assert_non_null(strstr(err.message, "HOST:PORT"));
    assert_int_equal(cp_api_parse_addr("127.0.0.1:99999", &ss, &err), NANO_EINVAL);
    assert_int_equal(cp_api_parse_addr("example.com:80", &ss, &err), NANO_EINVAL);
    assert_int_equal(cp_api_parse_addr("[::1:80", &ss, &err), NANO_EINVAL);
    assert_int_equal(cp_api_parse_addr("", &ss, &err), NANO_EINVAL);
}

/* --- http ---------------------------------------------------------------------------------- */

static void http_healthz_needs_no_token_and_the_rest_does(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    response r = http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
    response_free(&r);

    r = http(s->port, "GET", "/v1/apps", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(err_code(&r), "unauthorized");
    assert_non_null(strcasestr(r.headers, "WWW-Authenticate: Bearer"));
    response_free(&r);
    r = http(s->port, "GET", "/v1/apps", "wrong", NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(err_message(&r), "invalid token");
    response_free(&r);
    r = http(s->port, "GET", "/metrics", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    response_free(&r);
    /* Host: exactly one, valid (RFC 9112 §3.2), as at the data plane's front. */
    static const char *const bad_hosts[] = {
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a.test:80/admin?\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        int hfd = http_connect(s->port);
        send_all(hfd, bad_hosts[i], strlen(bad_hosts[i]));
        reader hr = {hfd, NANO_BUF_INIT};
        assert_true(read_response(&hr, &r));
        if (r.status != 400)
            fail_msg("%s: status %d, expected 400", bad_hosts[i], r.status);
        response_free(&r);
        nano_buf_fini(&hr.in);
        close(hfd);
    }
    /* Basic auth is not a bearer token */
    int fd = http_connect(s->port);
    const char basic[] = "GET /v1/nodes HTTP/1.1\r\nHost: cp\r\nAuthorization: Basic " TOKEN "\r\n\r\n";
    send_all(fd, basic, sizeof basic - 1);
    reader rd = {fd, NANO_BUF_INIT};
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 401);
    response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);
    assert_int_equal(n_calls(), 0);

    r = http(s->port, "GET", "/v1/apps", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_call("apps.list", "{}");
    seen w = last_call();
    json_decref(w.args);
    assert_string_equal(w.who, "admin");
    assert_string_equal(w.via, "http");
    assert_string_equal(json_string_value(json_object_get(r.json, "op")), "apps.list");
    response_free(&r);
    /* scheme is case-insensitive (RFC 6750 / RFC 9110 §11.1) */
    fd = http_connect(s->port);
    const char lower[] = "GET /v1/version HTTP/1.1\r\nHost: cp\r\nauthorization: bearer " TOKEN "\r\n\r\n";
    send_all(fd, lower, sizeof lower - 1);
    rd = (reader){fd, NANO_BUF_INIT};
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);
    server_stop(s);
}

static void http_routes_map_to_ops(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    response r;

    r = send_json(s->port, "POST", "/v1/apps",
                  "{\"name\":\"api\",\"hostnames\":[\"api.example.com\"],\"limits\":{\"cpu_ms\":5}}");
    assert_int_equal(r.status, 201);
    assert_call("apps.create",
                "{\"name\":\"api\",\"hostnames\":[\"api.example.com\"],\"limits\":{\"cpu_ms\":5}}");
    response_free(&r);

    r = get(s->port, "/v1/apps/api");
    assert_int_equal(r.status, 200);
    assert_call("apps.get", "{\"name\":\"api\"}");
    response_free(&r);

    r = send_json(s->port, "PATCH", "/v1/apps/api", "{\"default\":true}");
    assert_int_equal(r.status, 200);
    assert_call("apps.update", "{\"name\":\"api\",\"default\":true}");
    response_free(&r);

    r = http(s->port, "DELETE", "/v1/apps/api", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 202);
    assert_call("apps.remove", "{\"name\":\"api\"}");
    response_free(&r);

    r = get(s->port, "/v1/apps/api/drain");
    assert_int_equal(r.status, 200);
    assert_call("apps.drain", "{\"name\":\"api\"}");
    response_free(&r);

    const char src[] = "export default { fetch() { return new Response('hi') } }\n";
    r = http(s->port, "PUT", "/v1/apps/api/code", TOKEN, "application/javascript", src,
             sizeof src - 1);
    assert_int_equal(r.status, 201);
    json_t *want = json_pack("{s:s, s:s, s:{s:s}}", "name", "api", "main", "index.js", "modules",
                             "index.js", src);
    char *want_text = json_dumps(want, JSON_COMPACT);
    assert_call("apps.deploy", want_text);
    free(want_text);
    json_decref(want);
    response_free(&r);
    /* no content type at all: still module bytes */
    r = http(s->port, "PUT", "/v1/apps/api/code", TOKEN, NULL, "x", 1);
    assert_int_equal(r.status, 201);
    assert_call("apps.deploy",
                "{\"name\":\"api\",\"main\":\"index.js\",\"modules\":{\"index.js\":\"x\"}}");
    response_free(&r);
    const char bundle[] = "{\"main\":\"a.js\",\"modules\":{\"a.js\":\"import './b.js'\",\"b.js\":\"\"}}";
    r = http(s->port, "PUT", "/v1/apps/api/code", TOKEN, "application/json; charset=utf-8",
             bundle, sizeof bundle - 1);
    assert_int_equal(r.status, 201);
    assert_call("apps.deploy", "{\"name\":\"api\",\"main\":\"a.js\","
                               "\"modules\":{\"a.js\":\"import './b.js'\",\"b.js\":\"\"}}");
    response_free(&r);

    r = get(s->port, "/v1/apps/api/deployments");
    assert_call("deployments.list", "{\"name\":\"api\"}");
    response_free(&r);
    r = send_json(s->port, "POST", "/v1/apps/api/rollback", "{\"version\":2}");
    assert_int_equal(r.status, 200);
    assert_call("apps.rollback", "{\"name\":\"api\",\"version\":2}");
    response_free(&r);
    r = get(s->port, "/v1/apps/api/env");
    assert_call("env.get", "{\"name\":\"api\"}");
    response_free(&r);
    r = send_json(s->port, "PATCH", "/v1/apps/api/env", "{\"KEY\":\"v\",\"N\":{\"a\":1},\"OLD\":null}");
    assert_int_equal(r.status, 200);
    assert_call("env.patch",
                "{\"name\":\"api\",\"vars\":{\"KEY\":\"v\",\"N\":{\"a\":1},\"OLD\":null}}");
    response_free(&r);
    r = get(s->port, "/v1/apps/api/secrets");
    assert_call("secrets.list", "{\"name\":\"api\"}");
    response_free(&r);
    r = http(s->port, "PUT", "/v1/apps/api/secrets/API_KEY", TOKEN, "text/plain", "s3cr3t\n", 7);
    assert_int_equal(r.status, 200);
    assert_call("secrets.put", "{\"name\":\"api\",\"key\":\"API_KEY\",\"value\":\"s3cr3t\\n\"}");
    response_free(&r);
    r = http(s->port, "DELETE", "/v1/apps/api/secrets/API_KEY", TOKEN, NULL, NULL, 0);
    assert_call("secrets.delete", "{\"name\":\"api\",\"key\":\"API_KEY\"}");
    response_free(&r);
    r = get(s->port, "/v1/nodes");
    assert_call("nodes.list", "{}");
    response_free(&r);
    r = get(s->port, "/v1/audit?limit=5&before_id=10");
    assert_call("audit.list", "{\"limit\":5,\"before_id\":10}");
    response_free(&r);
    r = get(s->port, "/v1/audit");
    assert_call("audit.list", "{}");
    response_free(&r);
    r = get(s->port, "/v1/audit?limit=-1");
    assert_int_equal(r.status, 400);
    assert_string_equal(err_field(&r), "limit");
    response_free(&r);
    r = get(s->port, "/v1/version");
    assert_call("version", "{}");
    response_free(&r);
    server_stop(s);
}

static void http_bad_input_gets_structured_400(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    response r = send_json(s->port, "POST", "/v1/apps", "{\"name\": \"api\",\n  \"hostnames\": [}");
    assert_int_equal(r.status, 400);
    assert_string_equal(err_code(&r), "bad_request");
    assert_non_null(strstr(err_message(&r), "line 2, column"));
    assert_non_null(strstr(err_message(&r), "position"));
    response_free(&r);
    r = send_json(s->port, "POST", "/v1/apps", "[1]");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(err_message(&r), "JSON object"));
    response_free(&r);
    r = send_json(s->port, "POST", "/v1/apps", "{\"a\":1,\"a\":2}");
    assert_int_equal(r.status, 400);
    response_free(&r);
    r = http(s->port, "PATCH", "/v1/apps/api", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    response_free(&r);
    r = send_json(s->port, "PATCH", "/v1/apps/api", "{\"name\":\"other\"}");
    assert_int_equal(r.status, 400);
    assert_string_equal(err_field(&r), "name");
    response_free(&r);
    r = http(s->port, "PUT", "/v1/apps/api/code", TOKEN, "application/octet-stream", "\xff\xfe", 2);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(err_message(&r), "UTF-8"));
    response_free(&r);
    assert_int_equal(n_calls(), 0);

    /* percent-decoded path segments, validated by length */
    r = get(s->port, "/v1/apps/my%2Dapp");
    assert_int_equal(r.status, 200);
    assert_call("apps.get", "{\"name\":\"my-app\"}");
    response_free(&r);
    r = get(s->port, "/v1/apps/%zz");
    assert_int_equal(r.status, 400);
    assert_string_equal(err_code(&r), "invalid_field");
    assert_string_equal(err_field(&r), "name");
    response_free(&r);
    r = get(s->port, "/v1/apps/a%00b");
    assert_int_equal(r.status, 400);
    response_free(&r);
    r = http(s->port, "DELETE", "/v1/apps/api/secrets/%ff", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(err_field(&r), "key");
    response_free(&r);
    char path[400] = "/v1/apps/";
    memset(path + 9, 'a', 256);
    path[9 + 256] = '\0';
    r = get(s->port, path);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(err_message(&r), "255"));
    response_free(&r);

    /* 404 and 405 (with Allow) */
    r = get(s->port, "/v1/nothing");
    assert_int_equal(r.status, 404);
    assert_string_equal(err_code(&r), "not_found");
    response_free(&r);
    r = get(s->port, "/v1/apps/");
    assert_int_equal(r.status, 404);
    response_free(&r);
    r = http(s->port, "PUT", "/v1/apps", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers, "Allow: GET, POST\r\n"));
    response_free(&r);
    r = http(s->port, "POST", "/v1/apps/x/secrets/K", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers, "Allow: PUT, DELETE\r\n"));
    response_free(&r);
    assert_int_equal(n_calls(), 1); /* only the good GET reached the service */
    server_stop(s);
}

static void http_service_errors_keep_status_code_and_field(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    pthread_mutex_lock(&svc.mu);
    svc.err = (cp_error){"app_not_found", "app ghost does not exist", "name", 404};
    pthread_mutex_unlock(&svc.mu);
    response r = get(s->port, "/v1/apps/ghost");
    assert_int_equal(r.status, 404);
    assert_string_equal(err_code(&r), "app_not_found");
    assert_string_equal(err_message(&r), "app ghost does not exist");
    assert_string_equal(err_field(&r), "name");
    response_free(&r);
    pthread_mutex_lock(&svc.mu);
    svc.err = (cp_error){"hostname_taken", "taken", "hostnames[1]", 409};
    pthread_mutex_unlock(&svc.mu);
    r = send_json(s->port, "POST", "/v1/apps", "{\"name\":\"b\"}");
    assert_int_equal(r.status, 409);
    assert_string_equal(err_field(&r), "hostnames[1]");
    response_free(&r);
    pthread_mutex_lock(&svc.mu);
    memset(&svc.err, 0, sizeof svc.err);
    svc.result = json_pack("{s:[{s:s}]}", "apps", "name", "api");
    pthread_mutex_unlock(&svc.mu);
    r = get(s->port, "/v1/apps");
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(r.json, "apps"), 0),
                                          "name")),
        "api");
    response_free(&r);

    r = get(s->port, "/metrics");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "nanocp_http_requests_total{route=\"/v1/apps/{name}\","
                                   "method=\"GET\",status=\"404\"} 1\n"));
    assert_non_null(strstr(r.body, "nanocp_http_requests_total{route=\"/v1/apps\","
                                   "method=\"POST\",status=\"409\"} 1\n"));
    assert_non_null(strstr(r.body, "nanocp_http_requests_total{route=\"/v1/apps\","
                                   "method=\"GET\",status=\"200\"} 1\n"));
    assert_non_null(strstr(r.body, "nanocp_http_errors_total{code=\"app_not_found\"} 1\n"));
    assert_non_null(strstr(r.body, "nanocp_http_connections 1\n"));
    response_free(&r);
    server_stop(s);
}

static void http_keep_alive_and_pipelining(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    int fd = http_connect(s->port);
    reader rd = {fd, NANO_BUF_INIT};
    response r;
    const char one[] = "GET /v1/version HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        send_all(fd, one, sizeof one - 1);
        assert_true(read_response(&rd, &r));
        assert_int_equal(r.status, 200);
        assert_null(strcasestr(r.headers, "Connection: close"));
        response_free(&r);
    }
    /* three requests in one write, answered in order: a JSON POST, a 404, a secret PUT */
    const char piped[] =
        "POST /v1/apps/a/rollback HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n"
        "Content-Length: 13\r\n\r\n{\"version\":1}"
        "GET /nope HTTP/1.1\r\nHost: cp\r\n\r\n"
        "PUT /v1/apps/a/secrets/K HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    send_all(fd, piped, sizeof piped - 1);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "op")), "apps.rollback");
    response_free(&r);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 404);
    response_free(&r);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    assert_call("secrets.put", "{\"name\":\"a\",\"key\":\"K\",\"value\":\"abcde\"}");
    response_free(&r);
    /* Connection: close is honoured */
    const char last[] = "GET /healthz HTTP/1.1\r\nHost: cp\r\nConnection: close\r\n\r\n";
    send_all(fd, last, sizeof last - 1);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    response_free(&r);
    assert_false(read_more(&rd)); /* EOF */
    nano_buf_fini(&rd.in);
    close(fd);
    server_stop(s);
}

static void http_expect_continue(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    int fd = http_connect(s->port);
    reader rd = {fd, NANO_BUF_INIT};
    const char head[] = "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n"
                        "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n";
    send_all(fd, head, sizeof head - 1);
    while (!memmem(rd.in.data ? rd.in.data : "", rd.in.len, "\r\n\r\n", 4))
        assert_true(read_more(&rd));
    assert_int_equal(strncmp(rd.in.data, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
    nano_buf_consume(&rd.in, 25);
    send_all(fd, "x=1;", 4);
    response r;
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 201);
    response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);

    /* Without a token: 401 at once, no 100, and the unread body closes the connection. */
    fd = http_connect(s->port);
    rd = (reader){fd, NANO_BUF_INIT};
    const char noauth[] = "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nContent-Length: 50000000\r\n"
                          "Expect: 100-continue\r\n\r\n";
    send_all(fd, noauth, sizeof noauth - 1);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 401);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    response_free(&r);
    assert_false(read_more(&rd));
    nano_buf_fini(&rd.in);
    close(fd);
    assert_int_equal(n_calls(), 1);
    server_stop(s);
}

static void http_limits_answer_and_close(void **state)
{
    (void)state;
    server *s = server_start(false, 1000); /* code uploads up to 1000 bytes */
    response r;
    reader rd;

    /* a head beyond 64 KiB: 431 */
    int fd = http_connect(s->port);
    rd = (reader){fd, NANO_BUF_INIT};
    nano_buf big = NANO_BUF_INIT;
    nano_buf_append_str(&big, "GET /v1/apps HTTP/1.1\r\nHost: cp\r\n");
    for (int i = 0; i < 800; i++)
        nano_buf_appendf(&big, "X-Filler-%d: %0100d\r\n", i, 0);
    nano_buf_append_str(&big, "\r\n");
    send_all(fd, big.data, big.len);
    nano_buf_fini(&big);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 431);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);

    /* declared bodies over the limits: 413 before reading them */
    r = http(s->port, "PUT", "/v1/apps/a/code", TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 201); /* empty upload reaches the service, which judges it */
    response_free(&r);
    char *body = calloc(1, 2 * 1024 * 1024);
    memset(body, ' ', 2 * 1024 * 1024);
    r = http(s->port, "PUT", "/v1/apps/a/code", TOKEN, "text/javascript", body, 1001);
    assert_int_equal(r.status, 413);
    assert_string_equal(err_code(&r), "too_large");
    response_free(&r);
    r = http(s->port, "PUT", "/v1/apps/a/code", TOKEN, "text/javascript", body, 1000);
    assert_int_equal(r.status, 201);
    response_free(&r);
    r = http(s->port, "PATCH", "/v1/apps/a/env", TOKEN, "application/json", body,
             CP_HTTP_MAX_JSON_BODY + 1);
    assert_int_equal(r.status, 413);
    response_free(&r);
    free(body);

    /* a chunked body that grows past the limit */
    fd = http_connect(s->port);
    rd = (reader){fd, NANO_BUF_INIT};
    nano_buf ch = NANO_BUF_INIT;
    nano_buf_append_str(&ch, "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN
                             "\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        nano_buf_append_str(&ch, "190\r\n"); /* 400 bytes */
        char chunk[400];
        memset(chunk, 'a', sizeof chunk);
        nano_buf_append(&ch, chunk, sizeof chunk);
        nano_buf_append_str(&ch, "\r\n");
    }
    nano_buf_append_str(&ch, "0\r\n\r\n");
    send_all(fd, ch.data, ch.len);
    nano_buf_fini(&ch);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 413);
    response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);

    /* malformed HTTP: 400 and closed; the next connection is still served */
    fd = http_connect(s->port);
    rd = (reader){fd, NANO_BUF_INIT};
    const char junk[] = "HELLO THERE\r\n\r\n";
    send_all(fd, junk, sizeof junk - 1);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(err_message(&r), "malformed HTTP"));
    response_free(&r);
    assert_false(read_more(&rd));
    nano_buf_fini(&rd.in);
    close(fd);
    fd = http_connect(s->port);
    rd = (reader){fd, NANO_BUF_INIT};
    const char cl_te[] = "POST /v1/apps HTTP/1.1\r\nHost: cp\r\nContent-Length: 3\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    send_all(fd, cl_te, sizeof cl_te - 1); /* request smuggling shape: refused */
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 400);
    response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);
    r = http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    response_free(&r);

    r = get(s->port, "/metrics");
    assert_non_null(strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"head_too_large\"} 1\n"));
    assert_non_null(strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"body_too_large\"} 3\n"));
    assert_non_null(strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"malformed\"} 2\n"));
    assert_non_null(strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"timeout\"} 0\n"));
    /* The server's refusals reach no route: both 400s count as route and method "other". */
    assert_non_null(strstr(r.body, "{route=\"other\",method=\"other\",status=\"400\"} 2\n"));
    assert_non_null(strstr(r.body, "nanocp_http_errors_total{code=\"too_large\"} 4\n"));
    response_free(&r);

    /* another HTTP version: 505 with its reason phrase (it went out as "505 Unknown"), closed */
    fd = http_connect(s->port);
    rd = (reader){fd, NANO_BUF_INIT};
    const char v2[] = "GET /v1/apps HTTP/2.0\r\nHost: cp\r\n\r\n";
    send_all(fd, v2, sizeof v2 - 1);
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 505);
    assert_true(strncmp(r.headers, "HTTP/1.1 505 HTTP Version Not Supported\r\n", 41) == 0);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    response_free(&r);
    assert_false(read_more(&rd));
    nano_buf_fini(&rd.in);
    close(fd);
    server_stop(s);
}

/* A client that closes with requests in flight, and a server closed with connections open:
 * every handle is released (server_stop checks uv_loop_close). */
static void http_close_with_open_connections(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    int idle = http_connect(s->port);
    int half = http_connect(s->port);
    const char part[] = "POST /v1/apps HTTP/1.1\r\nHost: cp\r\nContent-Length: 100\r\n\r\n{\"na";
    send_all(half, part, sizeof part - 1);
    int gone = http_connect(s->port);
    const char q[] = "GET /v1/version HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n\r\n";
    send_all(gone, q, sizeof q - 1);
    close(gone);
    response r = get(s->port, "/healthz"); /* the server is still fine */
    assert_int_equal(r.status, 200);
    response_free(&r);
    server_stop(s);
    char b;
    assert_true(recv(idle, &b, 1, 0) <= 0);
    close(idle);
    close(half);
}

/* One GET /healthz on fd, kept alive: whether it was answered 200. */
static bool healthz(int fd)
{
    static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: cp\r\n\r\n";
    send_all(fd, hz, sizeof hz - 1);
    reader rd = {fd, NANO_BUF_INIT};
    response r;
    bool ok = read_response(&rd, &r) && r.status == 200 && rd.in.len == 0;
    if (r.body)
        response_free(&r);
    nano_buf_fini(&rd.in);
    return ok;
}

/* CP_HTTP_MAX_CONNS connections are served; one more is closed at once (before: 512 such
 * clients could not lock operators out for longer than they keep their connections). */
static void http_connections_beyond_the_cap_are_closed(void **state)
{
    (void)state;
    /* both ends of every connection live in this process */
    rlim_t need = 2 * (CP_HTTP_MAX_CONNS + 2) + 100;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < need) {
        if (rl.rlim_max < need)
            skip();
        rl.rlim_cur = need;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    server *s = server_start(false, 0);
    static int fds[CP_HTTP_MAX_CONNS];
    for (int i = 0; i < CP_HTTP_MAX_CONNS; i++) {
        fds[i] = http_connect(s->port);
        if (!healthz(fds[i]))
            fail_msg("connection %d was not served", i + 1);
    }
    int extra = http_connect(s->port); /* the kernel accepts it; the server closes it */
    char b;
    assert_true(recv(extra, &b, 1, 0) <= 0);
    close(extra);
    /* One goes; a new one is served once the server has seen it go. */
    close(fds[0]);
    bool served = false;
    for (int i = 0; i < 200 && !served; i++) {
        int fd = http_connect(s->port);
        served = healthz(fd);
        if (served)
            fds[0] = fd;
        else
            close(fd), usleep(10 * 1000);
    }
    assert_true(served);
    const char m[] = "GET /metrics HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n\r\n";
    send_all(fds[1], m, sizeof m - 1);
    reader rd = {fds[1], NANO_BUF_INIT};
    response r;
    assert_true(read_response(&rd, &r));
    assert_non_null(strstr(r.body, "nanocp_http_connections 512\n"));
    response_free(&r);
    nano_buf_fini(&rd.in);
    for (int i = 0; i < CP_HTTP_MAX_CONNS; i++)
        close(fds[i]);
    server_stop(s);
}

/* A burst of pipelined requests in one write, with and without bodies, answers and errors
 * mixed: every one answered, in order. */
static void http_pipelined_burst_is_answered_in_order(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    enum { N = 240 };
    nano_buf burst = NANO_BUF_INIT;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0:
            nano_buf_appendf(&burst, "GET /v1/apps/app-%d HTTP/1.1\r\nHost: cp\r\n"
                                     "Authorization: Bearer " TOKEN "\r\n\r\n", i);
            break;
        case 1:
            nano_buf_appendf(&burst, "PATCH /v1/apps/app-%d/env HTTP/1.1\r\nHost: cp\r\n"
                                     "Authorization: Bearer " TOKEN "\r\nContent-Length: %d\r\n\r\n"
                                     "{\"N\":%d}", i, i < 10 ? 7 : i < 100 ? 8 : 9, i);
            break;
        case 2:
            nano_buf_appendf(&burst, "PUT /v1/apps/app-%d/secrets/S HTTP/1.1\r\nHost: cp\r\n"
                                     "Authorization: Bearer " TOKEN "\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n"
                                     "3\r\n%03d\r\n0\r\n\r\n", i, i);
            break;
        default:
            nano_buf_appendf(&burst, "GET /nope/%d HTTP/1.1\r\nHost: cp\r\n\r\n", i);
            break;
        }
    }
    int fd = http_connect(s->port);
    send_all(fd, burst.data, burst.len);
    nano_buf_fini(&burst);
    reader rd = {fd, NANO_BUF_INIT};
    for (int i = 0; i < N; i++) {
        response r;
        if (!read_response(&rd, &r))
            fail_msg("answer %d of %d missing", i + 1, N);
        char name[32];
        snprintf(name, sizeof name, "app-%d", i);
        json_t *args = json_object_get(r.json, "args");
        if (i % 4 == 3) {
            assert_int_equal(r.status, 404);
        } else {
            assert_int_equal(r.status, 200);
            assert_string_equal(json_string_value(json_object_get(args, "name")), name);
        }
        if (i % 4 == 1)
            assert_int_equal(json_integer_value(json_object_get(json_object_get(args, "vars"),
                                                                "N")), i);
        if (i % 4 == 2) {
            char value[8];
            snprintf(value, sizeof value, "%03d", i);
            assert_string_equal(json_string_value(json_object_get(args, "value")), value);
        }
        response_free(&r);
    }
    assert_int_equal(rd.in.len, 0);
    assert_int_equal(n_calls(), N / 4 * 3);
    nano_buf_fini(&rd.in);
    close(fd);
    server_stop(s);
}

/* A client without a token announcing a 60 MiB upload gets its 401 at once, having sent only
 * the head and a little of the body, and the connection closes: nothing waits for, or reads,
 * the rest. */
static void http_unauthenticated_upload_is_refused_unread(void **state)
{
    (void)state;
    server *s = server_start(false, 0); /* uploads up to 64 MiB */
    int fd = http_connect(s->port);
    nano_buf req = NANO_BUF_INIT;
    nano_buf_appendf(&req, "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nContent-Length: %d\r\n\r\n",
                     60 * 1024 * 1024);
    memset(nano_buf_reserve(&req, 64 * 1024), 'x', 64 * 1024);
    req.len += 64 * 1024;
    send_all(fd, req.data, req.len);
    nano_buf_fini(&req);
    reader rd = {fd, NANO_BUF_INIT};
    response r;
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 401);
    assert_string_equal(err_code(&r), "unauthorized");
    assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
    response_free(&r);
    assert_false(read_more(&rd)); /* closed */
    nano_buf_fini(&rd.in);
    close(fd);
    assert_int_equal(n_calls(), 0);
    server_stop(s);
}

/* PUT .../secrets/KEY: the body as is, however it is framed; above 1 MiB 413 and closed. */
static void http_secret_put_takes_the_body_as_sent(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    enum { LEN = 200 * 1000 };
    char *value = malloc(LEN + 1);
    for (int i = 0; i < LEN; i++)
        value[i] = (char)('a' + i % 26);
    value[LEN] = '\0';
    /* chunked, 1000 bytes a chunk: the value grows in many steps */
    nano_buf req = NANO_BUF_INIT;
    nano_buf_append_str(&req, "PUT /v1/apps/api/secrets/BIG HTTP/1.1\r\nHost: cp\r\n"
                              "Authorization: Bearer " TOKEN "\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < LEN; i += 1000) {
        nano_buf_append_str(&req, "3e8\r\n");
        nano_buf_append(&req, value + i, 1000);
        nano_buf_append_str(&req, "\r\n");
    }
    nano_buf_append_str(&req, "0\r\n\r\n");
    int fd = http_connect(s->port);
    send_all(fd, req.data, req.len);
    nano_buf_fini(&req);
    reader rd = {fd, NANO_BUF_INIT};
    response r;
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    response_free(&r);
    seen w = last_call();
    assert_string_equal(w.op, "secrets.put");
    assert_string_equal(json_string_value(json_object_get(w.args, "key")), "BIG");
    bool is_same = strcmp(json_string_value(json_object_get(w.args, "value")), value) == 0;
    json_decref(w.args);
    assert_true(is_same);
    free(value);
    nano_buf_fini(&rd.in);
    close(fd);

    r = http(s->port, "PUT", "/v1/apps/api/secrets/K", TOKEN, "text/plain", "a\r\nb \n", 6);
    assert_int_equal(r.status, 200);
    assert_call("secrets.put", "{\"name\":\"api\",\"key\":\"K\",\"value\":\"a\\r\\nb \\n\"}");
    response_free(&r);
    r = http(s->port, "PUT", "/v1/apps/api/secrets/K", TOKEN, NULL, "\xc3\x28", 2);
    assert_int_equal(r.status, 400);
    assert_string_equal(err_field(&r), "value");
    response_free(&r);
    char *big = calloc(1, CP_HTTP_MAX_JSON_BODY + 1);
    r = http(s->port, "PUT", "/v1/apps/api/secrets/K", TOKEN, NULL, big, CP_HTTP_MAX_JSON_BODY + 1);
    assert_int_equal(r.status, 413);
    assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
    response_free(&r);
    free(big);
    assert_int_equal(n_calls(), 2);
    server_stop(s);
}

/* What the HTTP layer refuses before any route is answered as every error of the API is:
 * JSON {"error": {code, message, field}}, no-store, and the connection closes. */
static void http_protocol_refusals_are_json(void **state)
{
    (void)state;
    cp_http_limits limits = CP_HTTP_LIMITS_DEFAULT;
    limits.request_grace_ms = 300;
    server *s = server_start_with(false, &limits);
    static const struct {
        const char *raw;
        int status;
        const char *code, *message;
    } cases[] = {
        {"HELLO THERE\r\n\r\n", 400, "bad_request", "malformed HTTP request"},
        {"GET /healthz HTTP/1.1\r\n\r\n", 400, "bad_request", "Host"},
        {"GET * HTTP/1.1\r\nHost: cp\r\n\r\n", 400, "bad_request", "asterisk"},
        {"GET /healthz HTTP/2.0\r\nHost: cp\r\n\r\n", 505, "bad_request", "HTTP/1.0"},
        {"POST /v1/apps HTTP/1.1\r\nHost: cp\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         "not_implemented", "coding"},
        {"PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nContent-Length: 99999999999\r\n\r\n", 413,
         "too_large", "too large"},
        {"GET /v1/apps HTTP/1.1\r\nHost: cp\r\nX-Slow: ", 408, "timeout", "in time"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = http_connect(s->port);
        send_all(fd, cases[i].raw, strlen(cases[i].raw));
        reader rd = {fd, NANO_BUF_INIT};
        response r;
        if (!read_response(&rd, &r))
            fail_msg("no answer to %s", cases[i].raw);
        if (r.status != cases[i].status || !r.json || strcmp(err_code(&r), cases[i].code) != 0 ||
            !strstr(err_message(&r), cases[i].message))
            fail_msg("%s: %d %s", cases[i].raw, r.status, r.body);
        assert_string_equal(err_field(&r), "");
        assert_non_null(strcasestr(r.headers, "\r\nCache-Control: no-store\r\n"));
        assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
        response_free(&r);
        assert_false(read_more(&rd));
        nano_buf_fini(&rd.in);
        close(fd);
    }
    response r = get(s->port, "/metrics");
    static const char *const want[] = {
        "{reason=\"malformed\"} 2\n", "{reason=\"host\"} 1\n", "{reason=\"version\"} 1\n",
        "{reason=\"transfer_coding\"} 1\n", "{reason=\"body_too_large\"} 1\n",
        "{reason=\"timeout\"} 1\n", "{route=\"other\",method=\"other\",status=\"400\"} 3\n",
        "nanocp_http_errors_total{code=\"bad_request\"} 4\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("no %s in\n%s", want[i], r.body);
    response_free(&r);
    server_stop(s);
}

/* Closing the server while a body is still arriving: that request is answered 503 without
 * running its op, its connection closes, and every handle is released. */
static void http_close_during_an_upload(void **state)
{
    (void)state;
    server *s = server_start(false, 0);
    int fd = http_connect(s->port);
    const char part[] = "POST /v1/apps HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " TOKEN "\r\n"
                        "Content-Length: 1000\r\n\r\n{\"name\": \"api\"";
    send_all(fd, part, sizeof part - 1);
    /* answered after the loop read the upload's bytes, sent before this connection opened */
    response r = http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    response_free(&r);
    uint64_t t0 = uv_hrtime();
    server_stop(s); /* every handle closed */
    reader rd = {fd, NANO_BUF_INIT};
    assert_true(read_response(&rd, &r));
    assert_int_equal(r.status, 503);
    assert_string_equal(err_code(&r), "shutting_down");
    assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
    response_free(&r);
    assert_false(read_more(&rd));
    assert_int_equal(n_calls(), 0);
    assert_true(uv_hrtime() - t0 < 3000ull * 1000 * 1000); /* within the 2 s bound */
    nano_buf_fini(&rd.in);
    close(fd);
}

/* --- rpc ----------------------------------------------------------------------------------- */

static nng_socket rpc_dial(int port)
{
    nng_socket sock;
    nano_error err;
    assert_int_equal(nano_nng_req_open(&sock, 5000, NANO_ADMIN_MAX_BYTES, &err), 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    assert_int_equal(nano_nng_dial(sock, url, NULL, &err), 0);
    return sock;
}

/* One raw exchange; returns the decoded reply. */
static nano_admin_reply rpc_raw(nng_socket sock, const void *req, size_t len)
{
    nng_msg *m = NULL;
    nano_error err;
    if (nano_nng_req_call(sock, "the rpc server", req, len, &m, &err) != 0)
        fail_msg("%s", err.message);
    nano_admin_reply rep;
    if (nano_admin_reply_decode(nng_msg_body(m), nng_msg_len(m), &rep, &err) != 0)
        fail_msg("reply: %s", err.message);
    nng_msg_free(m);
    return rep;
}

static nano_admin_reply rpc_call(nng_socket sock, const char *op, const char *token,
                                 json_t *args)
{
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    assert_int_equal(nano_admin_request_encode(op, token, args, &b, &err), 0);
    nano_admin_reply rep = rpc_raw(sock, b.data, b.len);
    nano_buf_fini(&b);
    return rep;
}

static void rpc_round_trip_and_tokens(void **state)
{
    (void)state;
    server *s = server_start(true, 0);
    nng_socket sock = rpc_dial(s->port);

    json_t *args = json_pack("{s:s, s:[s,s], s:{s:i, s:f}, s:b, s:n}", "name", "api",
                             "hostnames", "a.example.com", "*.example.net", "limits", "cpu_ms",
                             70, "ratio", 0.5, "default", 1, "path_prefix");
    nano_admin_reply rep = rpc_call(sock, "apps.create", TOKEN, args);
    assert_true(rep.ok);
    assert_true(json_equal(json_object_get(rep.result, "args"), args)); /* echo */
    seen w = last_call();
    bool is_same = json_equal(w.args, args);
    json_decref(w.args);
    assert_string_equal(w.op, "apps.create");
    assert_true(is_same);
    assert_string_equal(w.who, "admin");
    assert_string_equal(w.via, "rpc");
    nano_admin_reply_fini(&rep);
    json_decref(args);

    rep = rpc_call(sock, "apps.list", NULL, NULL);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "unauthorized");
    assert_string_equal(rep.message, "missing token");
    rep = rpc_call(sock, "apps.list", "nope", NULL);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "unauthorized");
    assert_string_equal(rep.message, "invalid token");
    assert_int_equal(n_calls(), 1);

    pthread_mutex_lock(&svc.mu);
    svc.err = (cp_error){"app_not_found", "app ghost does not exist", "name", 404};
    pthread_mutex_unlock(&svc.mu);
    args = json_pack("{s:s}", "name", "ghost");
    rep = rpc_call(sock, "apps.get", TOKEN, args);
    json_decref(args);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "app_not_found");
    assert_string_equal(rep.message, "app ghost does not exist");
    assert_string_equal(rep.field, "name");
    nng_close(sock);
    server_stop(s);
}

static void rpc_malformed_requests_get_error_replies(void **state)
{
    (void)state;
    server *s = server_start(true, 0);
    nng_socket sock = rpc_dial(s->port);
    /* unknown version */
    json_t *env = json_pack("{s:i, s:s, s:s}", "v", 2, "op", "version", "token", TOKEN);
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    assert_int_equal(nano_mpjson_encode(env, NULL, &b, &err), 0);
    json_decref(env);
    nano_admin_reply rep = rpc_raw(sock, b.data, b.len);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "unsupported_version");
    /* garbage, truncated, empty */
    const unsigned char junk[] = {0xc1, 0xff, 0x00};
    rep = rpc_raw(sock, junk, sizeof junk);
    assert_string_equal(rep.code, "bad_request");
    rep = rpc_raw(sock, b.data, b.len - 1);
    assert_string_equal(rep.code, "bad_request");
    assert_non_null(strstr(rep.message, "truncated"));
    rep = rpc_raw(sock, "", 0);
    assert_string_equal(rep.code, "bad_request");
    nano_buf_fini(&b);
    assert_int_equal(n_calls(), 0);
    /* the server still answers good requests */
    rep = rpc_call(sock, "version", TOKEN, NULL);
    assert_true(rep.ok);
    nano_admin_reply_fini(&rep);
    nng_close(sock);
    server_stop(s);
}

typedef struct rpc_worker {
    int port;
    int id;
    int n_ok;
} rpc_worker;

static void *rpc_worker_run(void *arg)
{
    rpc_worker *w = arg;
    nng_socket sock = rpc_dial(w->port);
    for (int i = 0; i < 25; i++) {
        char name[32];
        snprintf(name, sizeof name, "app-%d-%d", w->id, i);
        json_t *args = json_pack("{s:s}", "name", name);
        nano_admin_reply rep = rpc_call(sock, "apps.get", TOKEN, args);
        /* each reply belongs to its own request */
        if (rep.ok && json_equal(json_object_get(rep.result, "args"), args))
            w->n_ok++;
        nano_admin_reply_fini(&rep);
        json_decref(args);
    }
    nng_close(sock);
    return NULL;
}

static void rpc_concurrent_clients(void **state)
{
    (void)state;
    server *s = server_start(true, 0);
    rpc_worker w[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        w[i] = (rpc_worker){s->port, i, 0};
        pthread_create(&t[i], NULL, rpc_worker_run, &w[i]);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].n_ok, 25);
    }
    assert_int_equal(n_calls(), 150);
    server_stop(s);
}

static void rpc_listen_errors_are_reported(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    cp_rpc *rpc = NULL;
    nano_error err;
    assert_int_not_equal(
        cp_rpc_start(&loop, "bogus://x", NULL, fake_call, fake_check, NULL, &rpc, &err), 0);
    assert_non_null(strstr(err.message, "bogus://x"));
    assert_null(rpc);
    cp_http *h = NULL;
    assert_int_not_equal(
        cp_http_start(&loop, "127.0.0.1", fake_call, fake_check, NULL, NULL, &h, &err), 0);
    /* the same port twice */
    assert_int_equal(cp_http_start(&loop, "127.0.0.1:0", fake_call, fake_check, NULL, NULL, &h,
                                   &err),
                     0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cp_http_port(h));
    cp_http *h2 = NULL;
    assert_int_not_equal(
        cp_http_start(&loop, addr, fake_call, fake_check, NULL, NULL, &h2, &err), 0);
    assert_non_null(strstr(err.message, "address already in use"));
    cp_http_close(h, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* --- ctl: nanoctl's argument handling, against a recording call function ---------------------
 * ctl_run is nanoctl's main minus the process: options and the command are parsed, and each
 * op goes through ctx->call, here a recorder that answers from the same fake service. */

typedef struct ctl_run_result {
    int rc;
    char out[8192];
    char err[2048];
} ctl_run_result;

static int ctl_fake_call(void *ud, const char *op, json_t *args, json_t **result,
                         ctl_remote_error *rerr)
{
    (void)ud;
    cp_actor actor = {"admin", "cli"};
    cp_error err;
    memset(&err, 0, sizeof err);
    json_t *res = NULL;
    int rc = fake_call(NULL, &actor, op, args, &res, &err);
    if (rc != 0) {
        snprintf(rerr->code, sizeof rerr->code, "%s", err.code);
        snprintf(rerr->message, sizeof rerr->message, "%s", err.message);
        snprintf(rerr->field, sizeof rerr->field, "%s", err.field);
        return CTL_EREMOTE;
    }
    *result = res;
    return 0;
}

static ctl_run_result run_ctl(const char *stdin_text, int argc, const char **argv)
{
    ctl_run_result r;
    memset(&r, 0, sizeof r);
    FILE *out = fmemopen(r.out, sizeof r.out - 1, "w");
    FILE *err = fmemopen(r.err, sizeof r.err - 1, "w");
    FILE *in = stdin_text ? fmemopen((void *)stdin_text, strlen(stdin_text), "r") : NULL;
    ctl_io io = {out, err, in, ctl_fake_call, NULL};
    r.rc = ctl_run(argc, (char **)argv, &io);
    fclose(out);
    fclose(err);
    if (in)
        fclose(in);
    return r;
}

#define RUN(stdin_text, ...)                                                                 \
    ({                                                                                       \
        const char *argv_[] = {"nanoctl", __VA_ARGS__};                                      \
        run_ctl(stdin_text, (int)(sizeof argv_ / sizeof argv_[0]), argv_);                   \
    })

static void ctl_usage_errors_exit_2(void **state)
{
    (void)state;
    fake_reset();
    ctl_run_result r = RUN(NULL, "--token", "x");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "nanoctl: "));
    r = RUN(NULL, "--token", "x", "frobnicate");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "nanoctl: frobnicate: unknown command"));
    r = RUN(NULL, "--token", "x", "apps", "create");
    assert_int_equal(r.rc, 2);
    r = RUN(NULL, "--token", "x", "apps", "create", "api", "--cpu-ms", "lots");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "--cpu-ms"));
    r = RUN(NULL, "--token", "x", "env", "set", "api", "NOEQUALS");
    assert_int_equal(r.rc, 2);
    r = RUN(NULL, "--token", "x", "rollback", "api", "v3");
    assert_int_equal(r.rc, 2);
    r = RUN(NULL, "--bogus-flag", "apps", "list");
    assert_int_equal(r.rc, 2);
    r = RUN(NULL, "--token", "x", "--timeout", "soon", "apps", "list");
    assert_int_equal(r.rc, 2);
    assert_int_equal(n_calls(), 0);
    /* every error is one line */
    r = RUN(NULL, "--token", "x", "apps", "deploy", "api", "/nonexistent/x.js");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "/nonexistent/x.js"));
    assert_int_equal(strchr(r.err, '\n') - r.err, (long)strlen(r.err) - 1);
    r = RUN(NULL, "--help");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "apps"));
    r = RUN(NULL, "apps", "--help");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "create NAME"));
    r = RUN(NULL, "secret", "set", "--help");
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "stdin"));
}

static void ctl_commands_build_args(void **state)
{
    (void)state;
    fake_reset();
    ctl_run_result r = RUN(NULL, "--token", "x", "apps", "create", "api", "--host",
                           "api.example.com", "--host", "*.example.net", "--path", "/v1",
                           "--cpu-ms", "20", "--memory-mb", "64", "--drain-timeout", "5s",
                           "--require", "DB_URL", "--node-compat");
    if (r.rc != 0)
        fail_msg("rc %d: %s", r.rc, r.err);
    assert_call("apps.create",
                "{\"name\":\"api\",\"hostnames\":[\"api.example.com\",\"*.example.net\"],"
                "\"path_prefix\":\"/v1\",\"node_compat\":true,\"required_env\":[\"DB_URL\"],"
                "\"limits\":{\"cpu_ms\":20,\"memory_mb\":64,\"drain_timeout\":\"5s\"}}");
    r = RUN(NULL, "--token", "x", "apps", "create", "fallback", "--default");
    assert_int_equal(r.rc, 0);
    assert_call("apps.create", "{\"name\":\"fallback\",\"hostnames\":[],\"default\":true}");
    r = RUN(NULL, "--token", "x", "apps", "update", "api", "--egress-allow",
            "10.0.0.0/8, db.internal:5432", "--egress-deny=[::1]:8080", "--egress-allow",
            "169.254.169.254");
    assert_int_equal(r.rc, 0);
    assert_call("apps.update", "{\"name\":\"api\",\"egress\":{\"allow\":[\"10.0.0.0/8\","
                "\"db.internal:5432\",\"169.254.169.254\"],\"deny\":[\"[::1]:8080\"]}}");
    r = RUN(NULL, "--token", "x", "apps", "update", "api", "--no-egress");
    assert_int_equal(r.rc, 0);
    assert_call("apps.update", "{\"name\":\"api\",\"egress\":null}");
    int before = n_calls();
    r = RUN(NULL, "--token", "x", "apps", "create", "db", "--host", "db.test", "--egress-deny",
            "10.0.0.0/33");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "--egress-deny: \"10.0.0.0/33\" is not an address, CIDR or "
                                  "hostname"));
    r = RUN(NULL, "--token", "x", "apps", "update", "api", "--no-egress", "--egress-deny",
            "1.2.3.4");
    assert_int_equal(r.rc, 2);
    assert_int_equal(n_calls(), before);
    r = RUN(NULL, "--token", "x", "apps", "rm", "api");
    assert_int_equal(r.rc, 0);
    assert_call("apps.remove", "{\"name\":\"api\"}");
    r = RUN(NULL, "--token", "x", "env", "set", "api", "A=1", "B=x=y");
    assert_int_equal(r.rc, 0);
    assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"A\":\"1\",\"B\":\"x=y\"}}");
    r = RUN(NULL, "--token", "x", "env", "set", "api", "--json", "N=42", "F={\"beta\":true}");
    assert_int_equal(r.rc, 0);
    assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"N\":42,\"F\":{\"beta\":true}}}");
    r = RUN(NULL, "--token", "x", "env", "set", "api", "--json", "N={bad");
    assert_int_equal(r.rc, 2);
    r = RUN(NULL, "--token", "x", "env", "unset", "api", "A", "B");
    assert_int_equal(r.rc, 0);
    assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"A\":null,\"B\":null}}");
    r = RUN("hunter2\n", "--token", "x", "secret", "set", "api", "DB_PASS");
    assert_int_equal(r.rc, 0);
    assert_call("secrets.put", "{\"name\":\"api\",\"key\":\"DB_PASS\",\"value\":\"hunter2\"}");
    assert_null(strstr(r.out, "hunter2"));
    r = RUN("two\nlines\n\n", "--token", "x", "secret", "set", "api", "K");
    assert_call("secrets.put", "{\"name\":\"api\",\"key\":\"K\",\"value\":\"two\\nlines\\n\"}");
    r = RUN(NULL, "--token", "x", "secret", "rm", "api", "K");
    assert_call("secrets.delete", "{\"name\":\"api\",\"key\":\"K\"}");
    r = RUN(NULL, "--token", "x", "rollback", "api", "3");
    assert_int_equal(r.rc, 0);
    assert_call("apps.rollback", "{\"name\":\"api\",\"version\":3}");
    r = RUN(NULL, "--token", "x", "audit", "--limit", "10");
    assert_call("audit.list", "{\"limit\":10}");
    r = RUN(NULL, "--token", "x", "deployments", "api");
    assert_call("deployments.list", "{\"name\":\"api\"}");
    r = RUN(NULL, "--token", "x", "nodes");
    assert_call("nodes.list", "{}");

    /* --json prints the raw result; a service error is exit 1, bad input exit 2 */
    r = RUN(NULL, "--token", "x", "--json", "version");
    assert_int_equal(r.rc, 0);
    json_error_t jerr;
    json_t *printed = json_loads(r.out, 0, &jerr);
    assert_non_null(printed);
    assert_string_equal(json_string_value(json_object_get(printed, "op")), "version");
    json_decref(printed);
    pthread_mutex_lock(&svc.mu);
    svc.err = (cp_error){"app_not_found", "app ghost does not exist", "name", 404};
    pthread_mutex_unlock(&svc.mu);
    r = RUN(NULL, "--token", "x", "apps", "status", "ghost");
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err, "nanoctl: apps status ghost: app ghost does not exist "
                               "(app_not_found; field name)\n");
    pthread_mutex_lock(&svc.mu);
    svc.err = (cp_error){"invalid_field", "hostname 'a b' is not valid", "hostnames[0]", 400};
    pthread_mutex_unlock(&svc.mu);
    r = RUN(NULL, "--token", "x", "apps", "create", "x", "--host", "a b");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "hostnames[0]"));
    fake_reset();
}

static void ctl_env_import_reads_dotenv(void **state)
{
    (void)state;
    fake_reset();
    char path[] = "/tmp/nano-ctl-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "# comment\nexport A=1\nB=\"two words\"\nC='lit $X'\n";
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    ctl_run_result r = RUN(NULL, "--token", "x", "env", "import", "api", path);
    unlink(path);
    if (r.rc != 0)
        fail_msg("rc %d: %s", r.rc, r.err);
    assert_call("env.patch",
                "{\"name\":\"api\",\"vars\":{\"A\":\"1\",\"B\":\"two words\",\"C\":\"lit $X\"}}");
    snprintf(path, sizeof path, "/tmp/nano-ctl-test-XXXXXX");
    fd = mkstemp(path);
    const char bad[] = "A=1\nB=\"unterminated\n";
    assert_int_equal(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
    close(fd);
    r = RUN(NULL, "--token", "x", "env", "import", "api", path);
    unlink(path);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, path));
    fake_reset();

    /* Several files, a later one wins; --replace makes it one env.replace. */
    char p1[] = "/tmp/nano-ctl-test-XXXXXX", p2[] = "/tmp/nano-ctl-test-XXXXXX";
    fd = mkstemp(p1);
    const char base[] = "A=1\nB=base\n";
    assert_int_equal(write(fd, base, sizeof base - 1), (ssize_t)(sizeof base - 1));
    close(fd);
    fd = mkstemp(p2);
    const char prod[] = "B=prod\nC=3\n";
    assert_int_equal(write(fd, prod, sizeof prod - 1), (ssize_t)(sizeof prod - 1));
    close(fd);
    r = RUN(NULL, "--token", "x", "env", "import", "api", p1, p2, "--replace");
    if (r.rc != 0)
        fail_msg("rc %d: %s", r.rc, r.err);
    assert_call("env.replace", "{\"name\":\"api\",\"vars\":{\"A\":\"1\",\"B\":\"prod\",\"C\":\"3\"}}");
    fake_reset();
    r = RUN(NULL, "--token", "x", "env", "import", "api", p2, p1);
    if (r.rc != 0)
        fail_msg("rc %d: %s", r.rc, r.err);
    assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"B\":\"base\",\"C\":\"3\",\"A\":\"1\"}}");
    unlink(p1);
    unlink(p2);
    fake_reset();
}

static void ctl_connection_config_precedence(void **state)
{
    (void)state;
    char dir[] = "/tmp/nano-ctl-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cfg[256], tokf[256];
    snprintf(cfg, sizeof cfg, "%s/nanoctl.json", dir);
    snprintf(tokf, sizeof tokf, "%s/admin.token", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"cp\": \"tcp://10.0.0.1:7071\", \"token\": \"from-file\"}");
    fclose(f);
    f = fopen(tokf, "w");
    fprintf(f, "from-token-file\n");
    fclose(f);

    ctl_conn c;
    nano_error err;
    const char *env_none[] = {NULL};
    (void)env_none;
    /* defaults */
    assert_int_equal(ctl_conn_resolve(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &c, &err), 0);
    assert_string_equal(c.url, "tcp://127.0.0.1:7071");
    assert_null(c.token);
    ctl_conn_fini(&c);
    /* config file, then env over it, then flags over env */
    assert_int_equal(ctl_conn_resolve(NULL, NULL, NULL, cfg, NULL, NULL, NULL, NULL, &c, &err), 0);
    assert_string_equal(c.url, "tcp://10.0.0.1:7071");
    assert_string_equal(c.token, "from-file");
    ctl_conn_fini(&c);
    assert_int_equal(ctl_conn_resolve(NULL, NULL, NULL, cfg, "tcp://env:1", "env-token", NULL, NULL, &c,
                                      &err),
                     0);
    assert_string_equal(c.url, "tcp://env:1");
    assert_string_equal(c.token, "env-token");
    ctl_conn_fini(&c);
    assert_int_equal(ctl_conn_resolve("tcp://flag:2", NULL, tokf, cfg, "tcp://env:1",
                                      "env-token", NULL, NULL, &c, &err),
                     0);
    assert_string_equal(c.url, "tcp://flag:2");
    assert_string_equal(c.token, "from-token-file"); /* newline stripped */
    ctl_conn_fini(&c);
    assert_int_equal(ctl_conn_resolve(NULL, "flag-token", tokf, cfg, NULL, NULL, NULL, NULL, &c, &err), 0);
    assert_string_equal(c.token, "flag-token");
    ctl_conn_fini(&c);
    /* errors name the file */
    assert_int_equal(ctl_conn_resolve(NULL, NULL, "/nonexistent/tok", NULL, NULL, NULL, NULL, NULL, &c, &err),
                     NANO_ENOENT);
    assert_non_null(strstr(err.message, "/nonexistent/tok"));
    f = fopen(cfg, "w");
    fprintf(f, "{\"cp\": 5}");
    fclose(f);
    assert_int_not_equal(ctl_conn_resolve(NULL, NULL, NULL, cfg, NULL, NULL, NULL, NULL, &c, &err), 0);
    assert_non_null(strstr(err.message, "nanoctl.json"));
    unlink(cfg);
    unlink(tokf);
    rmdir(dir);
}

/* nanoctl's real client against the real RPC front end (the fake service behind it). */
static void ctl_client_over_rpc(void **state)
{
    (void)state;
    server *s = server_start(true, 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", s->port);
    ctl_client *cl = NULL;
    nano_error err;
    assert_int_equal(ctl_client_open(url, TOKEN, 5000, &cl, &err), 0);
    json_t *args = json_pack("{s:s}", "name", "api");
    json_t *res = NULL;
    ctl_remote_error rerr;
    assert_int_equal(ctl_client_call(cl, "apps.get", args, &res, &rerr), 0);
    assert_true(json_equal(json_object_get(res, "args"), args));
    json_decref(res);
    ctl_client_close(cl);
    /* a wrong token: the server's unauthorized error, with a hint */
    assert_int_equal(ctl_client_open(url, "wrong", 5000, &cl, &err), 0);
    assert_int_equal(ctl_client_call(cl, "apps.get", args, &res, &rerr), CTL_EREMOTE);
    assert_string_equal(rerr.code, "unauthorized");
    ctl_client_close(cl);
    json_decref(args);
    server_stop(s);
    /* nothing listening: a clear local error */
    assert_int_not_equal(ctl_client_open(url, TOKEN, 1000, &cl, &err), 0);
    assert_non_null(strstr(err.message, url));
}

int main(int argc, char **argv)
{
    nano_log_min_level = NANO_LOG_WARN;
    static const struct CMUnitTest addr[] = {
        cmocka_unit_test(addr_forms),
    };
    static const struct CMUnitTest http_tests[] = {
        cmocka_unit_test(http_healthz_needs_no_token_and_the_rest_does),
        cmocka_unit_test(http_routes_map_to_ops),
        cmocka_unit_test(http_bad_input_gets_structured_400),
        cmocka_unit_test(http_service_errors_keep_status_code_and_field),
        cmocka_unit_test(http_keep_alive_and_pipelining),
        cmocka_unit_test(http_expect_continue),
        cmocka_unit_test(http_limits_answer_and_close),
        cmocka_unit_test(http_close_with_open_connections),
        cmocka_unit_test(http_connections_beyond_the_cap_are_closed),
        cmocka_unit_test(http_pipelined_burst_is_answered_in_order),
        cmocka_unit_test(http_unauthenticated_upload_is_refused_unread),
        cmocka_unit_test(http_secret_put_takes_the_body_as_sent),
        cmocka_unit_test(http_protocol_refusals_are_json),
        cmocka_unit_test(http_close_during_an_upload),
    };
    static const struct CMUnitTest rpc[] = {
        cmocka_unit_test(rpc_round_trip_and_tokens),
        cmocka_unit_test(rpc_malformed_requests_get_error_replies),
        cmocka_unit_test(rpc_concurrent_clients),
        cmocka_unit_test(rpc_listen_errors_are_reported),
    };
    static const struct CMUnitTest ctl[] = {
        cmocka_unit_test(ctl_usage_errors_exit_2),
        cmocka_unit_test(ctl_commands_build_args),
        cmocka_unit_test(ctl_env_import_reads_dotenv),
        cmocka_unit_test(ctl_connection_config_precedence),
        cmocka_unit_test(ctl_client_over_rpc),
    };
    const unit_group groups[] = {
        UNIT_GROUP("addr", addr),
        UNIT_GROUP("http", http_tests),
        UNIT_GROUP("rpc", rpc),
        UNIT_GROUP("ctl", ctl),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
