/* cpapi_fixture.c: the unit_cpapi runner's fixture (cpapi_fixture.h). */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "cpapi_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* --- the recording service ----------------------------------------------------------------- */

cpapi_fake cpapi_svc = {.mu = PTHREAD_MUTEX_INITIALIZER};

void cpapi_fake_reset(void)
{
    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.n_calls = 0;
    cpapi_svc.op[0] = '\0';
    json_decref(cpapi_svc.args);
    cpapi_svc.args = NULL;
    json_decref(cpapi_svc.result);
    cpapi_svc.result = NULL;
    memset(&cpapi_svc.err, 0, sizeof cpapi_svc.err);
    pthread_mutex_unlock(&cpapi_svc.mu);
}

int cpapi_fake_call(void *ud, const cp_actor *actor, const char *op, json_t *args, json_t **result,
                    cp_error *err)
{
    (void)ud;
    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.n_calls++;
    snprintf(cpapi_svc.op, sizeof cpapi_svc.op, "%s", op);
    json_decref(cpapi_svc.args);
    cpapi_svc.args = json_deep_copy(args);
    snprintf(cpapi_svc.who, sizeof cpapi_svc.who, "%s", actor->who);
    snprintf(cpapi_svc.via, sizeof cpapi_svc.via, "%s", actor->via);
    int rc = 0;
    if (cpapi_svc.err.code[0]) {
        *err = cpapi_svc.err;
        rc = NANO_EINVAL;
    } else if (cpapi_svc.result) {
        *result = json_deep_copy(cpapi_svc.result);
    } else {
        *result = json_pack("{s:s, s:O}", "op", op, "args", args);
    }
    pthread_mutex_unlock(&cpapi_svc.mu);
    return rc;
}

bool cpapi_fake_check(void *ud, const char *token, const char **who)
{
    (void)ud;
    if (strcmp(token, CPAPI_TOKEN) != 0)
        return false;
    *who = "admin";
    return true;
}

/* --- a loop thread running one front end --------------------------------------------------- */

static void on_closed(void *arg)
{
    cpapi_server *s = arg;
    s->n_closed++;
}

static void on_stop(uv_async_t *a)
{
    cpapi_server *s = a->data;
    if (s->http)
        cp_http_close(s->http, on_closed, s);
    if (s->rpc)
        cp_rpc_close(s->rpc, on_closed, s);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run_loop(void *arg)
{
    cpapi_server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

cpapi_server *cpapi_server_start_with(bool is_rpc, const cp_http_limits *limits)
{
    cpapi_server *s = calloc(1, sizeof *s);
    cpapi_fake_reset();
    assert_int_equal(uv_loop_init(&s->loop), 0);
    assert_int_equal(uv_async_init(&s->loop, &s->stop, on_stop), 0);
    s->stop.data = s;
    nano_error err = {0};
    if (is_rpc) {
        int rc = cp_rpc_start(&s->loop, "tcp://127.0.0.1:0", NULL, cpapi_fake_call,
                              cpapi_fake_check, NULL, &s->rpc, &err);
        if (rc != 0)
            fail_msg("cp_rpc_start: %s", err.message);
        s->port = cp_rpc_port(s->rpc);
    } else {
        int rc = cp_http_start(&s->loop, "127.0.0.1:0", cpapi_fake_call, cpapi_fake_check, NULL,
                               limits, &s->http, &err);
        if (rc != 0)
            fail_msg("cp_http_start: %s", err.message);
        s->port = cp_http_port(s->http);
    }
    assert_true(s->port > 0);
    assert_int_equal(pthread_create(&s->thread, NULL, run_loop, s), 0);
    return s;
}

cpapi_server *cpapi_server_start(bool is_rpc, size_t max_body)
{
    cp_http_limits limits = CP_HTTP_LIMITS_DEFAULT;
    if (max_body != 0)
        limits.max_body = max_body;
    return cpapi_server_start_with(is_rpc, &limits);
}

void cpapi_server_stop(cpapi_server *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_int_equal(s->n_closed, 1);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    free(s);
    cpapi_fake_reset();
}

/* --- a blocking HTTP client ---------------------------------------------------------------- */

int cpapi_http_connect(int port)
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

void cpapi_send_all(int fd, const void *data, size_t len)
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

void cpapi_response_free(cpapi_response *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

bool cpapi_read_more(cpapi_reader *rd)
{
    char tmp[65536];
    ssize_t n = recv(rd->fd, tmp, sizeof tmp, 0);
    if (n <= 0)
        return false;
    nano_buf_append(&rd->in, tmp, (size_t)n);
    return true;
}

bool cpapi_read_response(cpapi_reader *rd, cpapi_response *r)
{
    memset(r, 0, sizeof *r);
    char *end;
    while ((end = rd->in.len ? memmem(rd->in.data, rd->in.len, "\r\n\r\n", 4) : NULL) == NULL)
        if (!cpapi_read_more(rd))
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
        if (!cpapi_read_more(rd))
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

cpapi_response cpapi_http(int port, const char *method, const char *path, const char *token,
                          const char *content_type, const char *body, size_t body_len)
{
    int fd = cpapi_http_connect(port);
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
    cpapi_send_all(fd, req.data, req.len);
    nano_buf_fini(&req);
    cpapi_reader rd = {fd, NANO_BUF_INIT};
    cpapi_response r;
    if (!cpapi_read_response(&rd, &r))
        fail_msg("no response to %s %s", method, path);
    nano_buf_fini(&rd.in);
    close(fd);
    return r;
}

cpapi_response cpapi_get(int port, const char *path)
{
    return cpapi_http(port, "GET", path, CPAPI_TOKEN, NULL, NULL, 0);
}

cpapi_response cpapi_send_json(int port, const char *method, const char *path, const char *body)
{
    return cpapi_http(port, method, path, CPAPI_TOKEN, "application/json", body, strlen(body));
}

const char *cpapi_err_code(const cpapi_response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

const char *cpapi_err_message(const cpapi_response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
}

const char *cpapi_err_field(const cpapi_response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
}

cpapi_seen cpapi_last_call(void)
{
    cpapi_seen w;
    pthread_mutex_lock(&cpapi_svc.mu);
    memcpy(w.op, cpapi_svc.op, sizeof w.op);
    memcpy(w.who, cpapi_svc.who, sizeof w.who);
    memcpy(w.via, cpapi_svc.via, sizeof w.via);
    w.args = json_deep_copy(cpapi_svc.args);
    pthread_mutex_unlock(&cpapi_svc.mu);
    return w;
}

void cpapi_assert_call(const char *op, const char *args_json)
{
    cpapi_seen w = cpapi_last_call();
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

int cpapi_n_calls(void)
{
    pthread_mutex_lock(&cpapi_svc.mu);
    int n = cpapi_svc.n_calls;
    pthread_mutex_unlock(&cpapi_svc.mu);
    return n;
}
