/* Unit tests for nanocp's admin HTTP front end (controlplane/api_http.c), the http group of
 * unit_cpapi (test_cpapi.c has the runner): routing, parsing, limits, tokens and closing,
 * over real sockets against the recording service of cpapi_fixture.c. */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "cpapi_fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- http ---------------------------------------------------------------------------------- */

static void http_healthz_needs_no_token_and_the_rest_does(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    cpapi_response r = cpapi_http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "ok");
    cpapi_response_free(&r);

    r = cpapi_http(s->port, "GET", "/v1/apps", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(cpapi_err_code(&r), "unauthorized");
    assert_non_null(strcasestr(r.headers, "WWW-Authenticate: Bearer"));
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "GET", "/v1/apps", "wrong", NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    assert_string_equal(cpapi_err_message(&r), "invalid token");
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "GET", "/metrics", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 401);
    cpapi_response_free(&r);
    /* Host: exactly one, valid (RFC 9112 §3.2), as at the data plane's front. */
    static const char *const bad_hosts[] = {
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a.test:80/admin?\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        int hfd = cpapi_http_connect(s->port);
        cpapi_send_all(hfd, bad_hosts[i], strlen(bad_hosts[i]));
        cpapi_reader hr = {hfd, NANO_BUF_INIT};
        assert_true(cpapi_read_response(&hr, &r));
        if (r.status != 400)
            fail_msg("%s: status %d, expected 400", bad_hosts[i], r.status);
        cpapi_response_free(&r);
        nano_buf_fini(&hr.in);
        close(hfd);
    }
    /* Basic auth is not a bearer token */
    int fd = cpapi_http_connect(s->port);
    const char basic[] = "GET /v1/nodes HTTP/1.1\r\nHost: cp\r\nAuthorization: Basic " CPAPI_TOKEN
                         "\r\n\r\n";
    cpapi_send_all(fd, basic, sizeof basic - 1);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 401);
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);
    assert_int_equal(cpapi_n_calls(), 0);

    r = cpapi_http(s->port, "GET", "/v1/apps", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    cpapi_assert_call("apps.list", "{}");
    cpapi_seen w = cpapi_last_call();
    json_decref(w.args);
    assert_string_equal(w.who, "admin");
    assert_string_equal(w.via, "http");
    assert_string_equal(json_string_value(json_object_get(r.json, "op")), "apps.list");
    cpapi_response_free(&r);
    /* scheme is case-insensitive (RFC 6750 / RFC 9110 §11.1) */
    fd = cpapi_http_connect(s->port);
    const char lower[] =
        "GET /v1/version HTTP/1.1\r\nHost: cp\r\nauthorization: bearer " CPAPI_TOKEN "\r\n\r\n";
    cpapi_send_all(fd, lower, sizeof lower - 1);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);
    cpapi_server_stop(s);
}

static void http_routes_map_to_ops(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    cpapi_response r;

    r = cpapi_send_json(
        s->port, "POST", "/v1/apps",
        "{\"name\":\"api\",\"hostnames\":[\"api.example.com\"],\"limits\":{\"cpu_ms\":5}}");
    assert_int_equal(r.status, 201);
    cpapi_assert_call(
        "apps.create",
        "{\"name\":\"api\",\"hostnames\":[\"api.example.com\"],\"limits\":{\"cpu_ms\":5}}");
    cpapi_response_free(&r);

    r = cpapi_get(s->port, "/v1/apps/api");
    assert_int_equal(r.status, 200);
    cpapi_assert_call("apps.get", "{\"name\":\"api\"}");
    cpapi_response_free(&r);

    r = cpapi_send_json(s->port, "PATCH", "/v1/apps/api", "{\"default\":true}");
    assert_int_equal(r.status, 200);
    cpapi_assert_call("apps.update", "{\"name\":\"api\",\"default\":true}");
    cpapi_response_free(&r);

    r = cpapi_http(s->port, "DELETE", "/v1/apps/api", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 202);
    cpapi_assert_call("apps.remove", "{\"name\":\"api\"}");
    cpapi_response_free(&r);

    r = cpapi_get(s->port, "/v1/apps/api/drain");
    assert_int_equal(r.status, 200);
    cpapi_assert_call("apps.drain", "{\"name\":\"api\"}");
    cpapi_response_free(&r);

    const char src[] = "export default { fetch() { return new Response('hi') } }\n";
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/code", CPAPI_TOKEN, "application/javascript", src,
                   sizeof src - 1);
    assert_int_equal(r.status, 201);
    json_t *want = json_pack("{s:s, s:s, s:{s:s}}", "name", "api", "main", "index.js", "modules",
                             "index.js", src);
    char *want_text = json_dumps(want, JSON_COMPACT);
    cpapi_assert_call("apps.deploy", want_text);
    free(want_text);
    json_decref(want);
    cpapi_response_free(&r);
    /* no content type at all: still module bytes */
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/code", CPAPI_TOKEN, NULL, "x", 1);
    assert_int_equal(r.status, 201);
    cpapi_assert_call("apps.deploy",
                      "{\"name\":\"api\",\"main\":\"index.js\",\"modules\":{\"index.js\":\"x\"}}");
    cpapi_response_free(&r);
    const char bundle[] =
        "{\"main\":\"a.js\",\"modules\":{\"a.js\":\"import './b.js'\",\"b.js\":\"\"}}";
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/code", CPAPI_TOKEN,
                   "application/json; charset=utf-8", bundle, sizeof bundle - 1);
    assert_int_equal(r.status, 201);
    cpapi_assert_call("apps.deploy", "{\"name\":\"api\",\"main\":\"a.js\","
                                     "\"modules\":{\"a.js\":\"import './b.js'\",\"b.js\":\"\"}}");
    cpapi_response_free(&r);

    r = cpapi_get(s->port, "/v1/apps/api/deployments");
    cpapi_assert_call("deployments.list", "{\"name\":\"api\"}");
    cpapi_response_free(&r);
    r = cpapi_send_json(s->port, "POST", "/v1/apps/api/rollback", "{\"version\":2}");
    assert_int_equal(r.status, 200);
    cpapi_assert_call("apps.rollback", "{\"name\":\"api\",\"version\":2}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/apps/api/env");
    cpapi_assert_call("env.get", "{\"name\":\"api\"}");
    cpapi_response_free(&r);
    r = cpapi_send_json(s->port, "PATCH", "/v1/apps/api/env",
                        "{\"KEY\":\"v\",\"N\":{\"a\":1},\"OLD\":null}");
    assert_int_equal(r.status, 200);
    cpapi_assert_call("env.patch",
                      "{\"name\":\"api\",\"vars\":{\"KEY\":\"v\",\"N\":{\"a\":1},\"OLD\":null}}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/apps/api/secrets");
    cpapi_assert_call("secrets.list", "{\"name\":\"api\"}");
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/secrets/API_KEY", CPAPI_TOKEN, "text/plain",
                   "s3cr3t\n", 7);
    assert_int_equal(r.status, 200);
    cpapi_assert_call("secrets.put",
                      "{\"name\":\"api\",\"key\":\"API_KEY\",\"value\":\"s3cr3t\\n\"}");
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "DELETE", "/v1/apps/api/secrets/API_KEY", CPAPI_TOKEN, NULL, NULL, 0);
    cpapi_assert_call("secrets.delete", "{\"name\":\"api\",\"key\":\"API_KEY\"}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/nodes");
    cpapi_assert_call("nodes.list", "{}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/audit?limit=5&before_id=10");
    cpapi_assert_call("audit.list", "{\"limit\":5,\"before_id\":10}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/audit");
    cpapi_assert_call("audit.list", "{}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/audit?limit=-1");
    assert_int_equal(r.status, 400);
    assert_string_equal(cpapi_err_field(&r), "limit");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/version");
    cpapi_assert_call("version", "{}");
    cpapi_response_free(&r);
    cpapi_server_stop(s);
}

static void http_bad_input_gets_structured_400(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    cpapi_response r = cpapi_send_json(s->port, "POST", "/v1/apps",
                                       "{\"name\": \"api\",\n  \"hostnames\": [}");
    assert_int_equal(r.status, 400);
    assert_string_equal(cpapi_err_code(&r), "bad_request");
    assert_non_null(strstr(cpapi_err_message(&r), "line 2, column"));
    assert_non_null(strstr(cpapi_err_message(&r), "position"));
    cpapi_response_free(&r);
    r = cpapi_send_json(s->port, "POST", "/v1/apps", "[1]");
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(cpapi_err_message(&r), "JSON object"));
    cpapi_response_free(&r);
    r = cpapi_send_json(s->port, "POST", "/v1/apps", "{\"a\":1,\"a\":2}");
    assert_int_equal(r.status, 400);
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PATCH", "/v1/apps/api", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    cpapi_response_free(&r);
    r = cpapi_send_json(s->port, "PATCH", "/v1/apps/api", "{\"name\":\"other\"}");
    assert_int_equal(r.status, 400);
    assert_string_equal(cpapi_err_field(&r), "name");
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/code", CPAPI_TOKEN, "application/octet-stream",
                   "\xff\xfe", 2);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(cpapi_err_message(&r), "UTF-8"));
    cpapi_response_free(&r);
    assert_int_equal(cpapi_n_calls(), 0);

    /* percent-decoded path segments, validated by length */
    r = cpapi_get(s->port, "/v1/apps/my%2Dapp");
    assert_int_equal(r.status, 200);
    cpapi_assert_call("apps.get", "{\"name\":\"my-app\"}");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/apps/%zz");
    assert_int_equal(r.status, 400);
    assert_string_equal(cpapi_err_code(&r), "invalid_field");
    assert_string_equal(cpapi_err_field(&r), "name");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/apps/a%00b");
    assert_int_equal(r.status, 400);
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "DELETE", "/v1/apps/api/secrets/%ff", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(cpapi_err_field(&r), "key");
    cpapi_response_free(&r);
    char path[400] = "/v1/apps/";
    memset(path + 9, 'a', 256);
    path[9 + 256] = '\0';
    r = cpapi_get(s->port, path);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(cpapi_err_message(&r), "255"));
    cpapi_response_free(&r);

    /* 404 and 405 (with Allow) */
    r = cpapi_get(s->port, "/v1/nothing");
    assert_int_equal(r.status, 404);
    assert_string_equal(cpapi_err_code(&r), "not_found");
    cpapi_response_free(&r);
    r = cpapi_get(s->port, "/v1/apps/");
    assert_int_equal(r.status, 404);
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PUT", "/v1/apps", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers, "Allow: GET, POST\r\n"));
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "POST", "/v1/apps/x/secrets/K", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.headers, "Allow: PUT, DELETE\r\n"));
    cpapi_response_free(&r);
    assert_int_equal(cpapi_n_calls(), 1); /* only the good GET reached the service */
    cpapi_server_stop(s);
}

static void http_service_errors_keep_status_code_and_field(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.err = (cp_error){"app_not_found", "app ghost does not exist", "name", 404};
    pthread_mutex_unlock(&cpapi_svc.mu);
    cpapi_response r = cpapi_get(s->port, "/v1/apps/ghost");
    assert_int_equal(r.status, 404);
    assert_string_equal(cpapi_err_code(&r), "app_not_found");
    assert_string_equal(cpapi_err_message(&r), "app ghost does not exist");
    assert_string_equal(cpapi_err_field(&r), "name");
    cpapi_response_free(&r);
    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.err = (cp_error){"hostname_taken", "taken", "hostnames[1]", 409};
    pthread_mutex_unlock(&cpapi_svc.mu);
    r = cpapi_send_json(s->port, "POST", "/v1/apps", "{\"name\":\"b\"}");
    assert_int_equal(r.status, 409);
    assert_string_equal(cpapi_err_field(&r), "hostnames[1]");
    cpapi_response_free(&r);
    pthread_mutex_lock(&cpapi_svc.mu);
    memset(&cpapi_svc.err, 0, sizeof cpapi_svc.err);
    cpapi_svc.result = json_pack("{s:[{s:s}]}", "apps", "name", "api");
    pthread_mutex_unlock(&cpapi_svc.mu);
    r = cpapi_get(s->port, "/v1/apps");
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r.json, "apps"), 0), "name")),
                        "api");
    cpapi_response_free(&r);

    r = cpapi_get(s->port, "/metrics");
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
    cpapi_response_free(&r);
    cpapi_server_stop(s);
}

static void http_keep_alive_and_pipelining(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    int fd = cpapi_http_connect(s->port);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    cpapi_response r;
    const char one[] = "GET /v1/version HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN
                       "\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        cpapi_send_all(fd, one, sizeof one - 1);
        assert_true(cpapi_read_response(&rd, &r));
        assert_int_equal(r.status, 200);
        assert_null(strcasestr(r.headers, "Connection: close"));
        cpapi_response_free(&r);
    }
    /* three requests in one write, answered in order: a JSON POST, a 404, a secret PUT */
    const char piped[] =
        "POST /v1/apps/a/rollback HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN "\r\n"
        "Content-Length: 13\r\n\r\n{\"version\":1}"
        "GET /nope HTTP/1.1\r\nHost: cp\r\n\r\n"
        "PUT /v1/apps/a/secrets/K HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN "\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    cpapi_send_all(fd, piped, sizeof piped - 1);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "op")), "apps.rollback");
    cpapi_response_free(&r);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 404);
    cpapi_response_free(&r);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    cpapi_assert_call("secrets.put", "{\"name\":\"a\",\"key\":\"K\",\"value\":\"abcde\"}");
    cpapi_response_free(&r);
    /* Connection: close is honoured */
    const char last[] = "GET /healthz HTTP/1.1\r\nHost: cp\r\nConnection: close\r\n\r\n";
    cpapi_send_all(fd, last, sizeof last - 1);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    cpapi_response_free(&r);
    assert_false(cpapi_read_more(&rd)); /* EOF */
    nano_buf_fini(&rd.in);
    close(fd);
    cpapi_server_stop(s);
}

static void http_expect_continue(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    int fd = cpapi_http_connect(s->port);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    const char head[] =
        "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN "\r\n"
        "Content-Length: 4\r\nExpect: 100-continue\r\n\r\n";
    cpapi_send_all(fd, head, sizeof head - 1);
    while (!memmem(rd.in.data ? rd.in.data : "", rd.in.len, "\r\n\r\n", 4))
        assert_true(cpapi_read_more(&rd));
    assert_int_equal(strncmp(rd.in.data, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
    nano_buf_consume(&rd.in, 25);
    cpapi_send_all(fd, "x=1;", 4);
    cpapi_response r;
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 201);
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);

    /* Without a token: 401 at once, no 100, and the unread body closes the connection. */
    fd = cpapi_http_connect(s->port);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    const char noauth[] = "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nContent-Length: 50000000\r\n"
                          "Expect: 100-continue\r\n\r\n";
    cpapi_send_all(fd, noauth, sizeof noauth - 1);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 401);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    cpapi_response_free(&r);
    assert_false(cpapi_read_more(&rd));
    nano_buf_fini(&rd.in);
    close(fd);
    assert_int_equal(cpapi_n_calls(), 1);
    cpapi_server_stop(s);
}

static void http_limits_answer_and_close(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 1000); /* code uploads up to 1000 bytes */
    cpapi_response r;
    cpapi_reader rd;

    /* a head beyond 64 KiB: 431 */
    int fd = cpapi_http_connect(s->port);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    nano_buf big = NANO_BUF_INIT;
    nano_buf_append_str(&big, "GET /v1/apps HTTP/1.1\r\nHost: cp\r\n");
    for (int i = 0; i < 800; i++)
        nano_buf_appendf(&big, "X-Filler-%d: %0100d\r\n", i, 0);
    nano_buf_append_str(&big, "\r\n");
    cpapi_send_all(fd, big.data, big.len);
    nano_buf_fini(&big);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 431);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);

    /* declared bodies over the limits: 413 before reading them */
    r = cpapi_http(s->port, "PUT", "/v1/apps/a/code", CPAPI_TOKEN, NULL, NULL, 0);
    assert_int_equal(r.status, 201); /* empty upload reaches the service, which judges it */
    cpapi_response_free(&r);
    char *body = calloc(1, 2 * 1024 * 1024);
    memset(body, ' ', 2 * 1024 * 1024);
    r = cpapi_http(s->port, "PUT", "/v1/apps/a/code", CPAPI_TOKEN, "text/javascript", body, 1001);
    assert_int_equal(r.status, 413);
    assert_string_equal(cpapi_err_code(&r), "too_large");
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PUT", "/v1/apps/a/code", CPAPI_TOKEN, "text/javascript", body, 1000);
    assert_int_equal(r.status, 201);
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PATCH", "/v1/apps/a/env", CPAPI_TOKEN, "application/json", body,
                   CP_HTTP_MAX_JSON_BODY + 1);
    assert_int_equal(r.status, 413);
    cpapi_response_free(&r);
    free(body);

    /* a chunked body that grows past the limit */
    fd = cpapi_http_connect(s->port);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    nano_buf ch = NANO_BUF_INIT;
    nano_buf_append_str(
        &ch, "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN
             "\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        nano_buf_append_str(&ch, "190\r\n"); /* 400 bytes */
        char chunk[400];
        memset(chunk, 'a', sizeof chunk);
        nano_buf_append(&ch, chunk, sizeof chunk);
        nano_buf_append_str(&ch, "\r\n");
    }
    nano_buf_append_str(&ch, "0\r\n\r\n");
    cpapi_send_all(fd, ch.data, ch.len);
    nano_buf_fini(&ch);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 413);
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);

    /* malformed HTTP: 400 and closed; the next connection is still served */
    fd = cpapi_http_connect(s->port);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    const char junk[] = "HELLO THERE\r\n\r\n";
    cpapi_send_all(fd, junk, sizeof junk - 1);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(cpapi_err_message(&r), "malformed HTTP"));
    cpapi_response_free(&r);
    assert_false(cpapi_read_more(&rd));
    nano_buf_fini(&rd.in);
    close(fd);
    fd = cpapi_http_connect(s->port);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    const char cl_te[] = "POST /v1/apps HTTP/1.1\r\nHost: cp\r\nContent-Length: 3\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    cpapi_send_all(fd, cl_te, sizeof cl_te - 1); /* request smuggling shape: refused */
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 400);
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    close(fd);
    r = cpapi_http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    cpapi_response_free(&r);

    r = cpapi_get(s->port, "/metrics");
    assert_non_null(
        strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"head_too_large\"} 1\n"));
    assert_non_null(
        strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"body_too_large\"} 3\n"));
    assert_non_null(strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"malformed\"} 2\n"));
    assert_non_null(strstr(r.body, "nanocp_http_protocol_errors_total{reason=\"timeout\"} 0\n"));
    /* The server's refusals reach no route: both 400s count as route and method "other". */
    assert_non_null(strstr(r.body, "{route=\"other\",method=\"other\",status=\"400\"} 2\n"));
    assert_non_null(strstr(r.body, "nanocp_http_errors_total{code=\"too_large\"} 4\n"));
    cpapi_response_free(&r);

    /* another HTTP version: 505 with its reason phrase (it went out as "505 Unknown"), closed */
    fd = cpapi_http_connect(s->port);
    rd = (cpapi_reader){fd, NANO_BUF_INIT};
    const char v2[] = "GET /v1/apps HTTP/2.0\r\nHost: cp\r\n\r\n";
    cpapi_send_all(fd, v2, sizeof v2 - 1);
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 505);
    assert_true(strncmp(r.headers, "HTTP/1.1 505 HTTP Version Not Supported\r\n", 41) == 0);
    assert_non_null(strcasestr(r.headers, "Connection: close"));
    cpapi_response_free(&r);
    assert_false(cpapi_read_more(&rd));
    nano_buf_fini(&rd.in);
    close(fd);
    cpapi_server_stop(s);
}

/* A client that closes with requests in flight, and a server closed with connections open:
 * every handle is released (cpapi_server_stop checks uv_loop_close). */
static void http_close_with_open_connections(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    int idle = cpapi_http_connect(s->port);
    int half = cpapi_http_connect(s->port);
    const char part[] = "POST /v1/apps HTTP/1.1\r\nHost: cp\r\nContent-Length: 100\r\n\r\n{\"na";
    cpapi_send_all(half, part, sizeof part - 1);
    int gone = cpapi_http_connect(s->port);
    const char q[] = "GET /v1/version HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN
                     "\r\n\r\n";
    cpapi_send_all(gone, q, sizeof q - 1);
    close(gone);
    cpapi_response r = cpapi_get(s->port, "/healthz"); /* the server is still fine */
    assert_int_equal(r.status, 200);
    cpapi_response_free(&r);
    cpapi_server_stop(s);
    char b;
    assert_true(recv(idle, &b, 1, 0) <= 0);
    close(idle);
    close(half);
}

/* One GET /healthz on fd, kept alive: whether it was answered 200. */
static bool healthz(int fd)
{
    static const char hz[] = "GET /healthz HTTP/1.1\r\nHost: cp\r\n\r\n";
    cpapi_send_all(fd, hz, sizeof hz - 1);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    cpapi_response r;
    bool ok = cpapi_read_response(&rd, &r) && r.status == 200 && rd.in.len == 0;
    if (r.body)
        cpapi_response_free(&r);
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
    cpapi_server *s = cpapi_server_start(false, 0);
    static int fds[CP_HTTP_MAX_CONNS];
    for (int i = 0; i < CP_HTTP_MAX_CONNS; i++) {
        fds[i] = cpapi_http_connect(s->port);
        if (!healthz(fds[i]))
            fail_msg("connection %d was not served", i + 1);
    }
    int extra = cpapi_http_connect(s->port); /* the kernel accepts it; the server closes it */
    char b;
    assert_true(recv(extra, &b, 1, 0) <= 0);
    close(extra);
    /* One goes; a new one is served once the server has seen it go. */
    close(fds[0]);
    bool served = false;
    for (int i = 0; i < 200 && !served; i++) {
        int fd = cpapi_http_connect(s->port);
        served = healthz(fd);
        if (served)
            fds[0] = fd;
        else
            close(fd), usleep(10 * 1000);
    }
    assert_true(served);
    const char m[] = "GET /metrics HTTP/1.1\r\nHost: cp\r\nAuthorization: Bearer " CPAPI_TOKEN
                     "\r\n\r\n";
    cpapi_send_all(fds[1], m, sizeof m - 1);
    cpapi_reader rd = {fds[1], NANO_BUF_INIT};
    cpapi_response r;
    assert_true(cpapi_read_response(&rd, &r));
    assert_non_null(strstr(r.body, "nanocp_http_connections 512\n"));
    cpapi_response_free(&r);
    nano_buf_fini(&rd.in);
    for (int i = 0; i < CP_HTTP_MAX_CONNS; i++)
        close(fds[i]);
    cpapi_server_stop(s);
}

/* A burst of pipelined requests in one write, with and without bodies, answers and errors
 * mixed: every one answered, in order. */
static void http_pipelined_burst_is_answered_in_order(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    enum { N = 240 };
    nano_buf burst = NANO_BUF_INIT;
    for (int i = 0; i < N; i++) {
        switch (i % 4) {
        case 0:
            nano_buf_appendf(&burst,
                             "GET /v1/apps/app-%d HTTP/1.1\r\nHost: cp\r\n"
                             "Authorization: Bearer " CPAPI_TOKEN "\r\n\r\n",
                             i);
            break;
        case 1:
            nano_buf_appendf(&burst,
                             "PATCH /v1/apps/app-%d/env HTTP/1.1\r\nHost: cp\r\n"
                             "Authorization: Bearer " CPAPI_TOKEN "\r\n"
                             "Content-Length: %d\r\n\r\n"
                             "{\"N\":%d}",
                             i,
                             i < 10    ? 7
                             : i < 100 ? 8
                                       : 9,
                             i);
            break;
        case 2:
            nano_buf_appendf(&burst,
                             "PUT /v1/apps/app-%d/secrets/S HTTP/1.1\r\nHost: cp\r\n"
                             "Authorization: Bearer " CPAPI_TOKEN "\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n"
                             "3\r\n%03d\r\n0\r\n\r\n",
                             i, i);
            break;
        default: nano_buf_appendf(&burst, "GET /nope/%d HTTP/1.1\r\nHost: cp\r\n\r\n", i); break;
        }
    }
    int fd = cpapi_http_connect(s->port);
    cpapi_send_all(fd, burst.data, burst.len);
    nano_buf_fini(&burst);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    for (int i = 0; i < N; i++) {
        cpapi_response r;
        if (!cpapi_read_response(&rd, &r))
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
            assert_int_equal(
                json_integer_value(json_object_get(json_object_get(args, "vars"), "N")), i);
        if (i % 4 == 2) {
            char value[8];
            snprintf(value, sizeof value, "%03d", i);
            assert_string_equal(json_string_value(json_object_get(args, "value")), value);
        }
        cpapi_response_free(&r);
    }
    assert_int_equal(rd.in.len, 0);
    assert_int_equal(cpapi_n_calls(), N / 4 * 3);
    nano_buf_fini(&rd.in);
    close(fd);
    cpapi_server_stop(s);
}

/* A client without a token announcing a 60 MiB upload gets its 401 at once, having sent only
 * the head and a little of the body, and the connection closes: nothing waits for, or reads,
 * the rest. */
static void http_unauthenticated_upload_is_refused_unread(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0); /* uploads up to 64 MiB */
    int fd = cpapi_http_connect(s->port);
    nano_buf req = NANO_BUF_INIT;
    nano_buf_appendf(&req, "PUT /v1/apps/a/code HTTP/1.1\r\nHost: cp\r\nContent-Length: %d\r\n\r\n",
                     60 * 1024 * 1024);
    memset(nano_buf_reserve(&req, 64 * 1024), 'x', 64 * 1024);
    req.len += 64 * 1024;
    cpapi_send_all(fd, req.data, req.len);
    nano_buf_fini(&req);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    cpapi_response r;
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 401);
    assert_string_equal(cpapi_err_code(&r), "unauthorized");
    assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
    cpapi_response_free(&r);
    assert_false(cpapi_read_more(&rd)); /* closed */
    nano_buf_fini(&rd.in);
    close(fd);
    assert_int_equal(cpapi_n_calls(), 0);
    cpapi_server_stop(s);
}

/* PUT .../secrets/KEY: the body as is, however it is framed; above 1 MiB 413 and closed. */
static void http_secret_put_takes_the_body_as_sent(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    enum { LEN = 200 * 1000 };
    char *value = malloc(LEN + 1);
    for (int i = 0; i < LEN; i++)
        value[i] = (char)('a' + i % 26);
    value[LEN] = '\0';
    /* chunked, 1000 bytes a chunk: the value grows in many steps */
    nano_buf req = NANO_BUF_INIT;
    nano_buf_append_str(&req, "PUT /v1/apps/api/secrets/BIG HTTP/1.1\r\nHost: cp\r\n"
                              "Authorization: Bearer " CPAPI_TOKEN "\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < LEN; i += 1000) {
        nano_buf_append_str(&req, "3e8\r\n");
        nano_buf_append(&req, value + i, 1000);
        nano_buf_append_str(&req, "\r\n");
    }
    nano_buf_append_str(&req, "0\r\n\r\n");
    int fd = cpapi_http_connect(s->port);
    cpapi_send_all(fd, req.data, req.len);
    nano_buf_fini(&req);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    cpapi_response r;
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 200);
    cpapi_response_free(&r);
    cpapi_seen w = cpapi_last_call();
    assert_string_equal(w.op, "secrets.put");
    assert_string_equal(json_string_value(json_object_get(w.args, "key")), "BIG");
    bool is_same = strcmp(json_string_value(json_object_get(w.args, "value")), value) == 0;
    json_decref(w.args);
    assert_true(is_same);
    free(value);
    nano_buf_fini(&rd.in);
    close(fd);

    r = cpapi_http(s->port, "PUT", "/v1/apps/api/secrets/K", CPAPI_TOKEN, "text/plain", "a\r\nb \n",
                   6);
    assert_int_equal(r.status, 200);
    cpapi_assert_call("secrets.put", "{\"name\":\"api\",\"key\":\"K\",\"value\":\"a\\r\\nb \\n\"}");
    cpapi_response_free(&r);
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/secrets/K", CPAPI_TOKEN, NULL, "\xc3\x28", 2);
    assert_int_equal(r.status, 400);
    assert_string_equal(cpapi_err_field(&r), "value");
    cpapi_response_free(&r);
    char *big = calloc(1, CP_HTTP_MAX_JSON_BODY + 1);
    r = cpapi_http(s->port, "PUT", "/v1/apps/api/secrets/K", CPAPI_TOKEN, NULL, big,
                   CP_HTTP_MAX_JSON_BODY + 1);
    assert_int_equal(r.status, 413);
    assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
    cpapi_response_free(&r);
    free(big);
    assert_int_equal(cpapi_n_calls(), 2);
    cpapi_server_stop(s);
}

/* What the HTTP layer refuses before any route is answered as every error of the API is:
 * JSON {"error": {code, message, field}}, no-store, and the connection closes. */
static void http_protocol_refusals_are_json(void **state)
{
    (void)state;
    cp_http_limits limits = CP_HTTP_LIMITS_DEFAULT;
    limits.request_grace_ms = 300;
    cpapi_server *s = cpapi_server_start_with(false, &limits);
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
        int fd = cpapi_http_connect(s->port);
        cpapi_send_all(fd, cases[i].raw, strlen(cases[i].raw));
        cpapi_reader rd = {fd, NANO_BUF_INIT};
        cpapi_response r;
        if (!cpapi_read_response(&rd, &r))
            fail_msg("no answer to %s", cases[i].raw);
        if (r.status != cases[i].status || !r.json ||
            strcmp(cpapi_err_code(&r), cases[i].code) != 0 ||
            !strstr(cpapi_err_message(&r), cases[i].message))
            fail_msg("%s: %d %s", cases[i].raw, r.status, r.body);
        assert_string_equal(cpapi_err_field(&r), "");
        assert_non_null(strcasestr(r.headers, "\r\nCache-Control: no-store\r\n"));
        assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
        cpapi_response_free(&r);
        assert_false(cpapi_read_more(&rd));
        nano_buf_fini(&rd.in);
        close(fd);
    }
    cpapi_response r = cpapi_get(s->port, "/metrics");
    static const char *const want[] = {
        "{reason=\"malformed\"} 2\n",
        "{reason=\"host\"} 1\n",
        "{reason=\"version\"} 1\n",
        "{reason=\"transfer_coding\"} 1\n",
        "{reason=\"body_too_large\"} 1\n",
        "{reason=\"timeout\"} 1\n",
        "{route=\"other\",method=\"other\",status=\"400\"} 3\n",
        "nanocp_http_errors_total{code=\"bad_request\"} 4\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r.body, want[i]))
            fail_msg("no %s in\n%s", want[i], r.body);
    cpapi_response_free(&r);
    cpapi_server_stop(s);
}

/* Closing the server while a body is still arriving: that request is answered 503 without
 * running its op, its connection closes, and every handle is released. */
static void http_close_during_an_upload(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(false, 0);
    int fd = cpapi_http_connect(s->port);
    const char part[] = "POST /v1/apps HTTP/1.1\r\nHost: cp\r\n"
                        "Authorization: Bearer " CPAPI_TOKEN "\r\n"
                        "Content-Length: 1000\r\n\r\n{\"name\": \"api\"";
    cpapi_send_all(fd, part, sizeof part - 1);
    /* answered after the loop read the upload's bytes, sent before this connection opened */
    cpapi_response r = cpapi_http(s->port, "GET", "/healthz", NULL, NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    cpapi_response_free(&r);
    uint64_t t0 = uv_hrtime();
    cpapi_server_stop(s); /* every handle closed */
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    assert_true(cpapi_read_response(&rd, &r));
    assert_int_equal(r.status, 503);
    assert_string_equal(cpapi_err_code(&r), "shutting_down");
    assert_non_null(strcasestr(r.headers, "\r\nConnection: close\r\n"));
    cpapi_response_free(&r);
    assert_false(cpapi_read_more(&rd));
    assert_int_equal(cpapi_n_calls(), 0);
    assert_true(uv_hrtime() - t0 < 3000ull * 1000 * 1000); /* within the 2 s bound */
    nano_buf_fini(&rd.in);
    close(fd);
}

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

const unit_group unit_cpapi_http = UNIT_GROUP("http", http_tests);
