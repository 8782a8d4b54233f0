/* Unit tests for nanocp's admin RPC front end (controlplane/api_rpc.c) and nanoctl's
 * argument handling and client (cli/): the rpc and ctl groups of unit_cpapi (test_cpapi.c
 * has the runner), against the recording service of cpapi_fixture.c. */
#define _GNU_SOURCE /* fmemopen */
#include "cpapi_fixture.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <uv.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "admin_msg.h"
#include "ctl.h"
#include "mpjson.h"
#include "nng_link.h"

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

static nano_admin_reply rpc_call(nng_socket sock, const char *op, const char *token, json_t *args)
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
    cpapi_server *s = cpapi_server_start(true, 0);
    nng_socket sock = rpc_dial(s->port);

    json_t *args = json_pack("{s:s, s:[s,s], s:{s:i, s:f}, s:b, s:n}", "name", "api", "hostnames",
                             "a.example.com", "*.example.net", "limits", "cpu_ms", 70, "ratio", 0.5,
                             "default", 1, "path_prefix");
    nano_admin_reply rep = rpc_call(sock, "apps.create", CPAPI_TOKEN, args);
    assert_true(rep.ok);
    assert_true(json_equal(json_object_get(rep.result, "args"), args)); /* echo */
    cpapi_seen w = cpapi_last_call();
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
    assert_int_equal(cpapi_n_calls(), 1);

    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.err = (cp_error){"app_not_found", "app ghost does not exist", "name", 404};
    pthread_mutex_unlock(&cpapi_svc.mu);
    args = json_pack("{s:s}", "name", "ghost");
    rep = rpc_call(sock, "apps.get", CPAPI_TOKEN, args);
    json_decref(args);
    assert_false(rep.ok);
    assert_string_equal(rep.code, "app_not_found");
    assert_string_equal(rep.message, "app ghost does not exist");
    assert_string_equal(rep.field, "name");
    nng_close(sock);
    cpapi_server_stop(s);
}

static void rpc_malformed_requests_get_error_replies(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(true, 0);
    nng_socket sock = rpc_dial(s->port);
    /* unknown version */
    json_t *env = json_pack("{s:i, s:s, s:s}", "v", 2, "op", "version", "token", CPAPI_TOKEN);
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
    assert_int_equal(cpapi_n_calls(), 0);
    /* the server still answers good requests */
    rep = rpc_call(sock, "version", CPAPI_TOKEN, NULL);
    assert_true(rep.ok);
    nano_admin_reply_fini(&rep);
    nng_close(sock);
    cpapi_server_stop(s);
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
        nano_admin_reply rep = rpc_call(sock, "apps.get", CPAPI_TOKEN, args);
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
    cpapi_server *s = cpapi_server_start(true, 0);
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
    assert_int_equal(cpapi_n_calls(), 150);
    cpapi_server_stop(s);
}

static void rpc_listen_errors_are_reported(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    cp_rpc *rpc = NULL;
    nano_error err;
    assert_int_not_equal(
        cp_rpc_start(&loop, "bogus://x", NULL, cpapi_fake_call, cpapi_fake_check, NULL, &rpc, &err),
        0);
    assert_non_null(strstr(err.message, "bogus://x"));
    assert_null(rpc);
    cp_http *h = NULL;
    assert_int_not_equal(
        cp_http_start(&loop, "127.0.0.1", cpapi_fake_call, cpapi_fake_check, NULL, NULL, &h, &err),
        0);
    /* the same port twice */
    assert_int_equal(cp_http_start(&loop, "127.0.0.1:0", cpapi_fake_call, cpapi_fake_check, NULL,
                                   NULL, &h, &err),
                     0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cp_http_port(h));
    cp_http *h2 = NULL;
    assert_int_not_equal(
        cp_http_start(&loop, addr, cpapi_fake_call, cpapi_fake_check, NULL, NULL, &h2, &err), 0);
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
    int rc = cpapi_fake_call(NULL, &actor, op, args, &res, &err);
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

#define RUN(stdin_text, ...)                                                                       \
    ({                                                                                             \
        const char *argv_[] = {"nanoctl", __VA_ARGS__};                                            \
        run_ctl(stdin_text, (int)(sizeof argv_ / sizeof argv_[0]), argv_);                         \
    })

static void ctl_usage_errors_exit_2(void **state)
{
    (void)state;
    cpapi_fake_reset();
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
    assert_int_equal(cpapi_n_calls(), 0);
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
    cpapi_fake_reset();
    ctl_run_result r = RUN(NULL, "--token", "x", "apps", "create", "api", "--host",
                           "api.example.com", "--host", "*.example.net", "--path", "/v1",
                           "--cpu-ms", "20", "--memory-mb", "64", "--drain-timeout", "5s",
                           "--require", "DB_URL", "--node-compat");
    if (r.rc != 0)
        fail_msg("rc %d: %s", r.rc, r.err);
    cpapi_assert_call("apps.create",
                      "{\"name\":\"api\",\"hostnames\":[\"api.example.com\",\"*.example.net\"],"
                      "\"path_prefix\":\"/v1\",\"node_compat\":true,\"required_env\":[\"DB_URL\"],"
                      "\"limits\":{\"cpu_ms\":20,\"memory_mb\":64,\"drain_timeout\":\"5s\"}}");
    r = RUN(NULL, "--token", "x", "apps", "create", "fallback", "--default");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("apps.create", "{\"name\":\"fallback\",\"hostnames\":[],\"default\":true}");
    r = RUN(NULL, "--token", "x", "apps", "update", "api", "--egress-allow",
            "10.0.0.0/8, db.internal:5432", "--egress-deny=[::1]:8080", "--egress-allow",
            "169.254.169.254");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("apps.update",
                      "{\"name\":\"api\",\"egress\":{\"allow\":[\"10.0.0.0/8\","
                      "\"db.internal:5432\",\"169.254.169.254\"],\"deny\":[\"[::1]:8080\"]}}");
    r = RUN(NULL, "--token", "x", "apps", "update", "api", "--no-egress");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("apps.update", "{\"name\":\"api\",\"egress\":null}");
    int before = cpapi_n_calls();
    r = RUN(NULL, "--token", "x", "apps", "create", "db", "--host", "db.test", "--egress-deny",
            "10.0.0.0/33");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "--egress-deny: \"10.0.0.0/33\" is not an address, CIDR or "
                                  "hostname"));
    r = RUN(NULL, "--token", "x", "apps", "update", "api", "--no-egress", "--egress-deny",
            "1.2.3.4");
    assert_int_equal(r.rc, 2);
    assert_int_equal(cpapi_n_calls(), before);
    r = RUN(NULL, "--token", "x", "apps", "rm", "api");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("apps.remove", "{\"name\":\"api\"}");
    r = RUN(NULL, "--token", "x", "env", "set", "api", "A=1", "B=x=y");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"A\":\"1\",\"B\":\"x=y\"}}");
    r = RUN(NULL, "--token", "x", "env", "set", "api", "--json", "N=42", "F={\"beta\":true}");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"N\":42,\"F\":{\"beta\":true}}}");
    r = RUN(NULL, "--token", "x", "env", "set", "api", "--json", "N={bad");
    assert_int_equal(r.rc, 2);
    r = RUN(NULL, "--token", "x", "env", "unset", "api", "A", "B");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("env.patch", "{\"name\":\"api\",\"vars\":{\"A\":null,\"B\":null}}");
    r = RUN("hunter2\n", "--token", "x", "secret", "set", "api", "DB_PASS");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("secrets.put",
                      "{\"name\":\"api\",\"key\":\"DB_PASS\",\"value\":\"hunter2\"}");
    assert_null(strstr(r.out, "hunter2"));
    r = RUN("two\nlines\n\n", "--token", "x", "secret", "set", "api", "K");
    cpapi_assert_call("secrets.put",
                      "{\"name\":\"api\",\"key\":\"K\",\"value\":\"two\\nlines\\n\"}");
    r = RUN(NULL, "--token", "x", "secret", "rm", "api", "K");
    cpapi_assert_call("secrets.delete", "{\"name\":\"api\",\"key\":\"K\"}");
    r = RUN(NULL, "--token", "x", "rollback", "api", "3");
    assert_int_equal(r.rc, 0);
    cpapi_assert_call("apps.rollback", "{\"name\":\"api\",\"version\":3}");
    r = RUN(NULL, "--token", "x", "audit", "--limit", "10");
    cpapi_assert_call("audit.list", "{\"limit\":10}");
    r = RUN(NULL, "--token", "x", "deployments", "api");
    cpapi_assert_call("deployments.list", "{\"name\":\"api\"}");
    r = RUN(NULL, "--token", "x", "nodes");
    cpapi_assert_call("nodes.list", "{}");

    /* --json prints the raw result; a service error is exit 1, bad input exit 2 */
    r = RUN(NULL, "--token", "x", "--json", "version");
    assert_int_equal(r.rc, 0);
    json_error_t jerr;
    json_t *printed = json_loads(r.out, 0, &jerr);
    assert_non_null(printed);
    assert_string_equal(json_string_value(json_object_get(printed, "op")), "version");
    json_decref(printed);
    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.err = (cp_error){"app_not_found", "app ghost does not exist", "name", 404};
    pthread_mutex_unlock(&cpapi_svc.mu);
    r = RUN(NULL, "--token", "x", "apps", "status", "ghost");
    assert_int_equal(r.rc, 1);
    assert_string_equal(r.err, "nanoctl: apps status ghost: app ghost does not exist "
                               "(app_not_found; field name)\n");
    pthread_mutex_lock(&cpapi_svc.mu);
    cpapi_svc.err = (cp_error){"invalid_field", "hostname 'a b' is not valid", "hostnames[0]", 400};
    pthread_mutex_unlock(&cpapi_svc.mu);
    r = RUN(NULL, "--token", "x", "apps", "create", "x", "--host", "a b");
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "hostnames[0]"));
    cpapi_fake_reset();
}

static void ctl_env_import_reads_dotenv(void **state)
{
    (void)state;
    cpapi_fake_reset();
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
    cpapi_assert_call(
        "env.patch",
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
    cpapi_fake_reset();

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
    cpapi_assert_call("env.replace",
                      "{\"name\":\"api\",\"vars\":{\"A\":\"1\",\"B\":\"prod\",\"C\":\"3\"}}");
    cpapi_fake_reset();
    r = RUN(NULL, "--token", "x", "env", "import", "api", p2, p1);
    if (r.rc != 0)
        fail_msg("rc %d: %s", r.rc, r.err);
    cpapi_assert_call("env.patch",
                      "{\"name\":\"api\",\"vars\":{\"B\":\"base\",\"C\":\"3\",\"A\":\"1\"}}");
    unlink(p1);
    unlink(p2);
    cpapi_fake_reset();
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
    assert_int_equal(
        ctl_conn_resolve(NULL, NULL, NULL, cfg, "tcp://env:1", "env-token", NULL, NULL, &c, &err),
        0);
    assert_string_equal(c.url, "tcp://env:1");
    assert_string_equal(c.token, "env-token");
    ctl_conn_fini(&c);
    assert_int_equal(ctl_conn_resolve("tcp://flag:2", NULL, tokf, cfg, "tcp://env:1", "env-token",
                                      NULL, NULL, &c, &err),
                     0);
    assert_string_equal(c.url, "tcp://flag:2");
    assert_string_equal(c.token, "from-token-file"); /* newline stripped */
    ctl_conn_fini(&c);
    assert_int_equal(
        ctl_conn_resolve(NULL, "flag-token", tokf, cfg, NULL, NULL, NULL, NULL, &c, &err), 0);
    assert_string_equal(c.token, "flag-token");
    ctl_conn_fini(&c);
    /* errors name the file */
    assert_int_equal(
        ctl_conn_resolve(NULL, NULL, "/nonexistent/tok", NULL, NULL, NULL, NULL, NULL, &c, &err),
        NANO_ENOENT);
    assert_non_null(strstr(err.message, "/nonexistent/tok"));
    f = fopen(cfg, "w");
    fprintf(f, "{\"cp\": 5}");
    fclose(f);
    assert_int_not_equal(ctl_conn_resolve(NULL, NULL, NULL, cfg, NULL, NULL, NULL, NULL, &c, &err),
                         0);
    assert_non_null(strstr(err.message, "nanoctl.json"));
    unlink(cfg);
    unlink(tokf);
    rmdir(dir);
}

/* nanoctl's real client against the real RPC front end (the fake service behind it). */
static void ctl_client_over_rpc(void **state)
{
    (void)state;
    cpapi_server *s = cpapi_server_start(true, 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", s->port);
    ctl_client *cl = NULL;
    nano_error err;
    assert_int_equal(ctl_client_open(url, CPAPI_TOKEN, 5000, &cl, &err), 0);
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
    cpapi_server_stop(s);
    /* nothing listening: a clear local error */
    assert_int_not_equal(ctl_client_open(url, CPAPI_TOKEN, 1000, &cl, &err), 0);
    assert_non_null(strstr(err.message, url));
}

/* A nanocp that takes requests and never answers (stopped, or cut off mid-way): a REP socket
 * whose thread receives and drops. */
typedef struct black_hole {
    nng_socket sock;
    int port;
    int n_received;
    uv_thread_t thread;
} black_hole;

static void black_hole_run(void *arg)
{
    black_hole *b = arg;
    for (;;) {
        nng_msg *m = NULL;
        if (nng_recvmsg(b->sock, &m, 0) != 0)
            return; /* closed */
        __atomic_add_fetch(&b->n_received, 1, __ATOMIC_SEQ_CST);
        nng_msg_free(m);
    }
}

static void black_hole_start(black_hole *b)
{
    memset(b, 0, sizeof *b);
    assert_int_equal(nng_rep0_open(&b->sock), 0);
    nng_listener l;
    assert_int_equal(nng_listen(b->sock, "tcp://127.0.0.1:0", &l, 0), 0);
    nng_sockaddr sa;
    assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
    b->port = ntohs(sa.s_in.sa_port);
    assert_int_equal(uv_thread_create(&b->thread, black_hole_run, b), 0);
}

static void black_hole_stop(black_hole *b)
{
    nng_close(b->sock);
    uv_thread_join(&b->thread);
}

/* nanoctl over the network (io.call NULL: its own client), with --cp given as args[0]. */
static ctl_run_result run_ctl_net(const char *cp, const char *timeout, int argc, const char **argv)
{
    const char *full[16] = {"nanoctl", "--cp", cp, "--token", CPAPI_TOKEN, "--timeout", timeout};
    int n = 7;
    for (int i = 0; i < argc && n < 16; i++)
        full[n++] = argv[i];
    ctl_run_result r;
    memset(&r, 0, sizeof r);
    FILE *out = fmemopen(r.out, sizeof r.out - 1, "w");
    FILE *err = fmemopen(r.err, sizeof r.err - 1, "w");
    ctl_io io = {out, err, NULL, NULL, NULL};
    r.rc = ctl_run(n, (char **)full, &io);
    fclose(out);
    fclose(err);
    return r;
}

/* The service saw op last (its args copy freed before asserting). */
static void assert_last_op(const char *op)
{
    cpapi_seen w = cpapi_last_call();
    json_decref(w.args);
    assert_string_equal(w.op, op);
}

/* --cp URL,URL,...: an address nobody listens on is skipped whatever the op (nothing was
 * sent); one that took the request and never answered is left for the next only for an op
 * that may run twice, and a change is not sent twice. */
static void ctl_tries_the_next_nanocp_only_when_it_is_safe(void **state)
{
    (void)state;
    cpapi_fake_reset();
    cpapi_server *s = cpapi_server_start(true, 0);
    black_hole hole;
    black_hole_start(&hole);
    char dead[64], live[64], mute[64], list[256];
    snprintf(live, sizeof live, "tcp://127.0.0.1:%d", s->port);
    snprintf(mute, sizeof mute, "tcp://127.0.0.1:%d", hole.port);
    /* a port just closed: refused */
    nng_socket tmp;
    nng_listener l;
    nng_sockaddr sa;
    assert_int_equal(nng_rep0_open(&tmp), 0);
    assert_int_equal(nng_listen(tmp, "tcp://127.0.0.1:0", &l, 0), 0);
    assert_int_equal(nng_listener_get_addr(l, NNG_OPT_LOCADDR, &sa), 0);
    snprintf(dead, sizeof dead, "tcp://127.0.0.1:%d", ntohs(sa.s_in.sa_port));
    nng_close(tmp);

    const char *version[] = {"version"};
    snprintf(list, sizeof list, "%s,%s", dead, live);
    ctl_run_result r = run_ctl_net(list, "2s", 1, version);
    assert_int_equal(r.rc, CTL_EXIT_OK);
    assert_last_op("version");

    const char *create[] = {"apps", "create", "api", "--host", "api.test"};
    cpapi_fake_reset();
    r = run_ctl_net(list, "2s", 5, create);
    assert_int_equal(r.rc, CTL_EXIT_OK); /* refused: never sent, so the next one gets it */
    assert_last_op("apps.create");

    /* A mute replica first: a read goes on to the next... */
    snprintf(list, sizeof list, "%s,%s", mute, live);
    cpapi_fake_reset();
    r = run_ctl_net(list, "300ms", 1, version);
    assert_int_equal(r.rc, CTL_EXIT_OK);
    assert_int_equal(__atomic_load_n(&hole.n_received, __ATOMIC_SEQ_CST), 1);
    /* ...a change does not: it may have been made there */
    cpapi_fake_reset();
    r = run_ctl_net(list, "300ms", 5, create);
    assert_int_equal(r.rc, CTL_EXIT_FAIL);
    assert_non_null(strstr(r.err, "may or may not have been made"));
    pthread_mutex_lock(&cpapi_svc.mu);
    int n_calls = cpapi_svc.n_calls;
    pthread_mutex_unlock(&cpapi_svc.mu);
    assert_int_equal(n_calls, 0);
    assert_int_equal(__atomic_load_n(&hole.n_received, __ATOMIC_SEQ_CST), 2);

    /* None answers: one line with what each said. */
    snprintf(list, sizeof list, "%s,%s", dead, mute);
    r = run_ctl_net(list, "300ms", 1, version);
    assert_int_equal(r.rc, CTL_EXIT_FAIL);
    assert_non_null(strstr(r.err, "no nanocp answered"));
    assert_non_null(strstr(r.err, dead));
    assert_non_null(strstr(r.err, mute));
    assert_ptr_equal(strchr(r.err, '\n'), r.err + strlen(r.err) - 1); /* one line */

    /* A list that cannot work is a usage error. */
    snprintf(list, sizeof list, "%s,", live);
    r = run_ctl_net(list, "1s", 1, version);
    assert_int_equal(r.rc, CTL_EXIT_USAGE);
    assert_non_null(strstr(r.err, "none empty"));

    black_hole_stop(&hole);
    cpapi_server_stop(s);
}

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
    cmocka_unit_test(ctl_tries_the_next_nanocp_only_when_it_is_safe),
};

const unit_group unit_cpapi_rpc = UNIT_GROUP("rpc", rpc);
const unit_group unit_cpapi_ctl = UNIT_GROUP("ctl", ctl);
