/* Unit tests for nanocp's service ops on apps: create, update and remove, the validation of
 * every field, and deployments. The apps, validation and deploy groups of unit_cp
 * (test_cp.c has the runner), each test on a fresh data dir (cp_fixture.c). */
#include "cp_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "sha256.h"
#include "store.h"

/* --- apps ----------------------------------------------------------------------------------- */

static void apps_create_get_list(void **state)
{
    fx *f = *state;
    json_t *app = fx_call(f, "apps.create",
                          "{\"name\": \"api\","
                          " \"hostnames\": [\"API.Example.com.\", \"*.api.test\"],"
                          " \"path_prefix\": \"/v1\", \"node_compat\": true,"
                          " \"required_env\": [\"DB_URL\"],"
                          " \"limits\": {\"cpu_ms\": 100, \"drain_timeout\": \"10s\"}}");
    assert_string_equal(json_string_value(json_object_get(app, "name")), "api");
    json_t *hosts = json_object_get(app, "hostnames");
    assert_int_equal(json_array_size(hosts), 2);
    assert_string_equal(json_string_value(json_array_get(hosts, 0)), "api.example.com");
    assert_string_equal(json_string_value(json_array_get(hosts, 1)), "*.api.test");
    assert_string_equal(json_string_value(json_object_get(app, "path_prefix")), "/v1");
    assert_true(json_is_false(json_object_get(app, "default")));
    assert_true(json_is_true(json_object_get(app, "node_compat")));
    assert_string_equal(json_string_value(json_object_get(app, "state")), "active");
    assert_int_equal(json_integer_value(json_object_get(app, "active_version")), 0);
    json_t *lim = json_object_get(app, "limits");
    assert_int_equal(json_integer_value(json_object_get(lim, "cpu_ms")), 100);
    assert_string_equal(json_string_value(json_object_get(lim, "drain_timeout")), "10s");
    assert_int_equal(json_integer_value(json_object_get(lim, "memory_mb")), 128); /* default */
    assert_int_equal(json_object_size(lim), 9);
    assert_string_equal(json_string_value(json_array_get(json_object_get(app, "required_env"), 0)),
                        "DB_URL");
    const char *at = json_string_value(json_object_get(app, "created_at"));
    assert_int_equal(strlen(at), 24); /* 2024-05-01T12:00:00.123Z */
    assert_int_equal(at[23], 'Z');
    assert_null(json_object_get(app, "id"));
    json_decref(app);

    json_t *got = fx_call(f, "apps.get", "{\"name\": \"api\"}");
    assert_true(json_is_null(json_object_get(got, "deployment")));
    assert_int_equal(json_array_size(json_object_get(got, "nodes")), 0);
    json_decref(got);

    fx_create_app(f, "www", "www.test");
    json_t *list = fx_call(f, "apps.list", NULL);
    json_t *apps = json_object_get(list, "apps");
    assert_int_equal(json_array_size(apps), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 0), "name")), "api");
    assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 1), "name")), "www");
    json_decref(list);

    json_decref(fx_call(f, "apps.create", "{\"name\": \"fallback\", \"default\": true}"));
    fx_call_fails(f, "apps.create", "{\"name\": \"fb2\", \"default\": true}", 409, "default_taken",
                  "default", "app fallback is already the default app");
    fx_call_fails(f, "apps.get", "{\"name\": \"nope\"}", 404, "app_not_found", "name",
                  "app nope does not exist");
}

static void apps_egress_create_update_and_log(void **state)
{
    fx *f = *state;
    /* a bad entry: 400 naming it, and nothing stored or logged */
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"api\", \"hostnames\": [\"api.test\"], \"egress\": "
                  "{\"allow\": [\"10.0.0.0/8\", \"a.com\", \"10.0.0.0/33\"]}}",
                  400, "invalid_field", "egress",
                  "egress.allow[2]: \"10.0.0.0/33\" is not an address, CIDR or hostname");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"api\", \"hostnames\": [\"api.test\"], \"egress\": [1]}", 400,
                  "invalid_field", "egress", "egress: must be an object");
    assert_int_equal(fx_config_seq(f), 0);

    json_t *app = fx_call(f, "apps.create",
                          "{\"name\": \"api\", \"hostnames\": [\"api.test\"], \"egress\": "
                          "{\"deny\": [\"*.internal:5432\"], \"allow\": [\"169.254.169.254\"]}}");
    char *text = json_dumps(json_object_get(app, "egress"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"allow\":[\"169.254.169.254\"],\"deny\":[\"*.internal:5432\"]}");
    free(text);
    json_decref(app);
    fx_create_app(f, "web", "web.test"); /* none set: null */
    app = fx_call(f, "apps.get", "{\"name\": \"web\"}");
    assert_true(json_is_null(json_object_get(app, "egress")));
    json_decref(app);

    /* an update that fails leaves the policy as it was; one without egress keeps it */
    int64_t seq = fx_config_seq(f);
    fx_call_fails(f, "apps.update", "{\"name\": \"api\", \"egress\": {\"deny\": [\"::1/129\"]}}",
                  400, "invalid_field", "egress", "egress.deny[0]");
    assert_int_equal(fx_config_seq(f), seq);
    app = fx_call(f, "apps.update", "{\"name\": \"api\", \"limits\": {\"cpu_ms\": 70}}");
    assert_non_null(json_object_get(json_object_get(app, "egress"), "allow"));
    json_decref(app);

    /* the app.put on the config log carries it, as the wire op checks it */
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq, 10, &log), 0);
    json_t *put = json_object_get(json_array_get(log, 0), "payload");
    assert_non_null(json_object_get(json_object_get(put, "egress"), "deny"));
    json_decref(log);

    /* null removes it */
    app = fx_call(f, "apps.update", "{\"name\": \"api\", \"egress\": null}");
    assert_true(json_is_null(json_object_get(app, "egress")));
    json_decref(app);
}

static void apps_duplicate_and_hostname_taken(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    fx_call_fails(f, "apps.create", "{\"name\": \"api\", \"hostnames\": [\"other.test\"]}", 409,
                  "app_exists", "name", "app api already exists");
    fx_call_fails(f, "apps.create", "{\"name\": \"b\", \"hostnames\": [\"x.test\", \"API.test.\"]}",
                  409, "hostname_taken", "hostnames[1]",
                  "hostname api.test is already claimed by app api");
    /* The same hostname under another path prefix is another route. */
    json_decref(
        fx_call(f, "apps.create",
                "{\"name\": \"b\", \"hostnames\": [\"api.test\"], \"path_prefix\": \"/b\"}"));
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"c\", \"hostnames\": [\"api.test\"], \"path_prefix\": \"/b\"}", 409,
                  "hostname_taken", "hostnames[0]",
                  "with path_prefix /b is already claimed by app b");
    /* An update is checked the same way, but an app never conflicts with itself. */
    fx_call_fails(f, "apps.update", "{\"name\": \"b\", \"path_prefix\": null}", 409,
                  "hostname_taken", "hostnames[0]", "claimed by app api");
    json_t *app = fx_call(f, "apps.update",
                          "{\"name\": \"b\", \"hostnames\": [\"api.test\", \"b.test\"],"
                          " \"limits\": {\"memory_mb\": 256}}");
    assert_int_equal(json_array_size(json_object_get(app, "hostnames")), 2);
    assert_string_equal(json_string_value(json_object_get(app, "path_prefix")), "/b");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(app, "limits"), "memory_mb")), 256);
    json_decref(app);
    fx_call_fails(f, "apps.update", "{\"name\": \"zzz\", \"node_compat\": true}", 404,
                  "app_not_found", "name", NULL);
}

static void apps_remove_without_nodes_is_immediate(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    json_decref(fx_call(f, "apps.deploy",
                        "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"1\"}}"));
    json_decref(fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K\", \"value\": \"v\"}"));
    int64_t seq = fx_config_seq(f);
    json_t *r = fx_call(f, "apps.remove", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "removed");
    json_decref(r);
    fx_call_fails(f, "apps.get", "{\"name\": \"api\"}", 404, "app_not_found", "name", NULL);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq, 10, &log), 0);
    assert_int_equal(json_array_size(log), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")),
                        "app.drain");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(log, 0), "payload"), "timeout_ms")),
                     30000);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 1), "op")),
                        "app.remove");
    json_decref(log);
    /* Its code went with it; the name and hostname are free again. */
    char *data = NULL;
    size_t len = 0;
    char sha[65];
    nano_sha256_hex("1", 1, sha);
    assert_int_equal(cp_store_blob_get(cp_service_store(f->svc), sha, &data, &len), NANO_ENOTFOUND);
    fx_create_app(f, "api", "api.test");
    json_t *env = fx_call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_array_size(json_object_get(env, "secrets")), 0);
    json_decref(env);
}

static void apps_remove_with_nodes_drains(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    cp_store *st = cp_service_store(f->svc); /* two nodes, as their status reports make them */
    assert_int_equal(cp_store_node_report(st, "edge-1", 0,
                                          "{\"api\": {\"state\": \"active\", \"version\": 0}}",
                                          "2024-01-01T00:00:00.000Z"),
                     0);
    assert_int_equal(cp_store_node_report(st, "edge-2", 0, "{}", "2024-01-01T00:00:00.000Z"), 0);
    json_t *got = fx_call(f, "apps.get", "{\"name\": \"api\"}");
    json_t *nodes = json_object_get(got, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "node")),
                        "edge-1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "state")),
                        "active");
    json_decref(got);
    json_t *list = fx_call(f, "nodes.list", NULL);
    assert_int_equal(json_array_size(json_object_get(list, "nodes")), 2);
    json_decref(list);

    json_t *d = fx_call(f, "apps.drain", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "active");
    assert_int_equal(json_array_size(json_object_get(d, "nodes")), 0);
    json_decref(d);

    json_t *r = fx_call(f, "apps.remove", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "draining");
    json_decref(r);
    d = fx_call(f, "apps.drain", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "draining");
    nodes = json_object_get(d, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 1), "state")),
                        "draining");
    assert_int_equal(json_integer_value(json_object_get(d, "timeout_ms")), 30000);
    json_decref(d);
    /* A draining app takes no more changes; removing it again is the same answer. */
    fx_call_fails(f, "apps.deploy",
                  "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"\"}}", 409,
                  "app_draining", "name", "app api is being removed");
    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": 1}}", 409, "app_draining",
                  "name", NULL);
    int64_t seq = fx_config_seq(f);
    r = fx_call(f, "apps.remove", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "draining");
    json_decref(r);
    assert_int_equal(fx_config_seq(f), seq);
}

/* --- validation ----------------------------------------------------------------------------- */

static void validation_fields_are_named(void **state)
{
    fx *f = *state;
    fx_call_fails(f, "apps.create", "{\"name\": \"Bad_Name\", \"hostnames\": [\"a.test\"]}", 400,
                  "invalid_field", "name", "\"Bad_Name\" is not a valid app name");
    fx_call_fails(f, "apps.create", "{\"hostnames\": [\"a.test\"]}", 400, "invalid_field", "name",
                  "name is required");
    fx_call_fails(f, "apps.create", "{\"name\": 5}", 400, "invalid_field", "name",
                  "name must be a string, not a number");
    fx_call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": [\"ok.test\", \"bad host\"]}",
                  400, "invalid_field", "hostnames[1]", "\"bad host\" is not a valid hostname");
    fx_call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": [\"x.test\", \"X.test\"]}",
                  400, "invalid_field", "hostnames[1]", "listed twice");
    fx_call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": \"a.test\"}", 400,
                  "invalid_field", "hostnames", "must be an array");
    fx_call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": []}", 400, "invalid_field",
                  "hostnames", "at least one hostname");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": {\"cpu_ms\": 0}}",
                  400, "invalid_field", "limits.cpu_ms",
                  "limits.cpu_ms: 0 is out of range (1 .. 60000)");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"],"
                  " \"limits\": {\"wall_time\": \"x\"}}",
                  400, "invalid_field", "limits.wall_time", "is not a duration");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": {\"cpus\": 1}}", 400,
                  "invalid_field", "limits.cpus", "unknown key");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": [1]}", 400,
                  "invalid_field", "limits", "must be an object");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"path_prefix\": \"/a/\"}", 400,
                  "invalid_field", "path_prefix", "not a valid path prefix");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"],"
                  " \"required_env\": [\"OK\", \"1X\"]}",
                  400, "invalid_field", "required_env[1]", "invalid env name");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"default\": 1}", 400,
                  "invalid_field", "default", "true or false");
    fx_call_fails(f, "apps.create",
                  "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"hostname\": 1}", 400,
                  "bad_request", "hostname", "unknown field \"hostname\"");
    fx_call_fails(f, "apps.nope", "{}", 400, "bad_request", "op", "unknown op \"apps.nope\"");
    fx_call_fails(f, "version", "{\"x\": 1}", 400, "bad_request", "x", NULL);
    fx_call_fails(f, "audit.list", "{\"limit\": 0}", 400, "invalid_field", "limit", NULL);
    /* Args that are not an object. */
    json_t *result = NULL;
    cp_error err = {0};
    json_t *arr = json_array();
    assert_int_equal(cp_service_call(f->svc, &FX_ADMIN, "apps.list", arr, &result, &err),
                     NANO_EINVAL);
    assert_string_equal(err.code, "bad_request");
    json_decref(arr);
    assert_int_equal(cp_service_call(f->svc, NULL, NULL, NULL, &result, &err), NANO_EINVAL);
    assert_null(result);
    /* None of these created anything or logged anything. */
    assert_int_equal(fx_config_seq(f), 0);
    assert_int_equal(fx_audit_count(f), 0);
}

static void validation_env_limits(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    char *big = nano_xmalloc(NANO_ENV_MAX_VALUE + 100);
    memset(big, 'v', NANO_ENV_MAX_VALUE + 1);
    big[NANO_ENV_MAX_VALUE + 1] = '\0';
    char *args = nano_xmalloc(NANO_ENV_MAX_VALUE + 200);
    sprintf(args, "{\"name\": \"api\", \"vars\": {\"OK\": 1, \"BIG\": \"%s\"}}", big);
    fx_call_fails(f, "env.patch", args, 413, "too_large", "vars.BIG",
                  "vars.BIG: value is 5121 bytes; the limit is 5120");
    sprintf(args, "{\"name\": \"api\", \"key\": \"S\", \"value\": \"%s\"}", big);
    fx_call_fails(f, "secrets.put", args, 413, "too_large", "value", "the limit is 5120");
    /* Nesting beyond NANO_MSG_VAR_MAX_DEPTH (32) is refused; 32 levels are fine. */
    char deep[256] = "{\"name\": \"api\", \"vars\": {\"DEEP\": ";
    size_t at = strlen(deep);
    for (int i = 0; i < 33; i++)
        deep[at++] = '[';
    for (int i = 0; i < 33; i++)
        deep[at++] = ']';
    strcpy(deep + at, "}}");
    fx_call_fails(f, "env.patch", deep, 400, "invalid_field", "vars.DEEP",
                  "nested 33 levels deep; the limit is 32");
    memmove(deep + at - 33, deep + at - 32, strlen(deep + at - 32) + 1); /* one ']' less */
    memmove(deep + at - 66, deep + at - 65, strlen(deep + at - 65) + 1); /* one '[' less */
    json_decref(fx_call(f, "env.patch", deep));
    json_decref(fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"DEEP\": null}}"));
    big[NANO_ENV_MAX_VALUE] = '\0'; /* exactly the limit is fine */
    sprintf(args, "{\"name\": \"api\", \"vars\": {\"BIG\": \"%s\"}}", big);
    json_decref(fx_call(f, "env.patch", args));
    nano_free(big);
    nano_free(args);
    /* The failed patch above set nothing, not even its valid OK entry. */
    json_t *env = fx_call(f, "env.get", "{\"name\": \"api\"}");
    assert_null(json_object_get(json_object_get(env, "vars"), "OK"));
    json_decref(env);

    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"1BAD\": 1}}", 400,
                  "invalid_field", "vars.1BAD", "invalid env name");
    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": [1]}", 400, "invalid_field",
                  "vars", NULL);
    fx_call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"a-b\", \"value\": \"x\"}", 400,
                  "invalid_field", "key", "invalid env name");
    fx_call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"A\", \"value\": 5}", 400,
                  "invalid_field", "value", "must be a string");
    fx_call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"BIG\", \"value\": \"x\"}", 409,
                  "name_conflict", "key", "BIG is a var of app api");
    json_decref(
        fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"S1\", \"value\": \"x\"}"));
    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"S1\": \"x\"}}", 409,
                  "name_conflict", "vars.S1", "S1 is a secret of app api");
    fx_call_fails(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"NOPE\"}", 404,
                  "secret_not_found", "key", "app api has no secret NOPE");

    /* 128 entries (vars + secrets) fit; the 129th is refused, as a var or as a secret. */
    json_t *vars = json_object();
    for (int i = 0; i < NANO_ENV_MAX_ENTRIES - 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "V%03d", i);
        json_object_set_new(vars, name, json_integer(i));
    }
    json_t *a = json_pack("{s:s, s:o}", "name", "api", "vars", vars);
    char *text = json_dumps(a, 0);
    json_decref(fx_call(f, "env.patch", text));
    free(text);
    json_decref(a);
    env = fx_call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_object_size(json_object_get(env, "vars")) +
                         json_array_size(json_object_get(env, "secrets")),
                     NANO_ENV_MAX_ENTRIES);
    json_decref(env);
    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"ONE_MORE\": 1}}", 413,
                  "too_large", "vars.ONE_MORE",
                  "would have 129 vars and secrets; the limit is 128");
    fx_call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"ONE_MORE\", \"value\": \"x\"}",
                  413, "too_large", "key", "more than 128");
    /* Replacing one, or replacing and deleting in one patch, is fine at the limit. */
    json_decref(fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"V000\": \"new\"}}"));
    json_decref(
        fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"NEW\": 1, \"V001\": null}}"));
    fx_call_fails(f, "env.patch",
                  "{\"name\": \"api\", \"vars\": {\"N2\": 1, \"N3\": 1, \"V002\": null}}", 413,
                  "too_large", "vars.N2", "would have 129");
    json_decref(
        fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"S1\", \"value\": \"y\"}"));
}

/* --- deployments ---------------------------------------------------------------------------- */

static void deploy_versions_hashes_and_rollback(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    static const char src[] = "export default { fetch() { return new Response('v1') } }";
    char args[512];
    snprintf(args, sizeof args,
             "{\"name\": \"api\", \"main\": \"index.js\", \"modules\": "
             "{\"index.js\": \"%s\"}}",
             src);
    json_t *d1 = fx_call(f, "apps.deploy", args);
    char sha[65];
    nano_sha256_hex(src, strlen(src), sha);
    assert_int_equal(json_integer_value(json_object_get(d1, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(d1, "sha256")), sha);
    assert_string_equal(json_string_value(json_object_get(d1, "main")), "index.js");
    assert_true(json_is_true(json_object_get(d1, "active")));
    json_t *m = json_array_get(json_object_get(d1, "modules"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "index.js");
    assert_int_equal(json_integer_value(json_object_get(m, "size")), strlen(src));
    assert_string_equal(json_string_value(json_object_get(m, "sha256")), sha);
    json_decref(d1);
    /* The bytes are stored by hash. */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(cp_store_blob_get(cp_service_store(f->svc), sha, &data, &len), 0);
    assert_int_equal(len, strlen(src));
    assert_memory_equal(data, src, len);
    nano_free(data);

    json_t *d2 = fx_call(f, "apps.deploy",
                         "{\"name\": \"api\", \"main\": \"main.js\", \"modules\": {\"main.js\": "
                         "\"import x from './lib/x.js'\", \"lib/x.js\": \"export default 1\"}}");
    assert_int_equal(json_integer_value(json_object_get(d2, "version")), 2);
    /* Multi-module: sha256 over "NAME\0SHA\n" per module in name order. */
    char sa[65], sb[65], manifest[300], want[65];
    nano_sha256_hex("export default 1", 16, sa);
    nano_sha256_hex("import x from './lib/x.js'", 26, sb);
    int n = snprintf(manifest, sizeof manifest, "lib/x.js%c%s\nmain.js%c%s\n", 0, sa, 0, sb);
    nano_sha256_hex(manifest, (size_t)n, want);
    assert_string_equal(json_string_value(json_object_get(d2, "sha256")), want);
    assert_int_equal(json_array_size(json_object_get(d2, "modules")), 2);
    json_decref(d2);

    json_t *list = fx_call(f, "deployments.list", "{\"name\": \"api\"}");
    json_t *deps = json_object_get(list, "deployments");
    assert_int_equal(json_array_size(deps), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(deps, 0), "version")), 2);
    assert_true(json_is_true(json_object_get(json_array_get(deps, 0), "active")));
    assert_true(json_is_false(json_object_get(json_array_get(deps, 1), "active")));
    json_decref(list);

    int64_t seq = fx_config_seq(f);
    json_t *rb = fx_call(f, "apps.rollback", "{\"name\": \"api\", \"version\": 1}");
    assert_int_equal(json_integer_value(json_object_get(rb, "version")), 1);
    assert_true(json_is_true(json_object_get(rb, "active")));
    json_decref(rb);
    assert_int_equal(fx_config_seq(f), seq + 2); /* code.put + app.put */
    json_t *app = fx_call(f, "apps.get", "{\"name\": \"api\"}");
    assert_int_equal(json_integer_value(json_object_get(app, "active_version")), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(app, "deployment"), "version")), 1);
    json_decref(app);
    /* Rolling back to the active version changes nothing. */
    json_decref(fx_call(f, "apps.rollback", "{\"name\": \"api\", \"version\": 1}"));
    assert_int_equal(fx_config_seq(f), seq + 2);
    fx_call_fails(f, "apps.rollback", "{\"name\": \"api\", \"version\": 7}", 404,
                  "version_not_found", "version", "app api has no version 7");
    fx_call_fails(f, "apps.rollback", "{\"name\": \"api\", \"version\": \"1\"}", 400,
                  "invalid_field", "version", NULL);
    /* A new deploy after a rollback still counts up. */
    json_t *d3 = fx_call(f, "apps.deploy",
                         "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"3\"}}");
    assert_int_equal(json_integer_value(json_object_get(d3, "version")), 3);
    json_decref(d3);
}

static void deploy_bad_bundles(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    fx_call_fails(f, "apps.deploy",
                  "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"b.js\": \"\"}}", 400,
                  "invalid_field", "main", "main \"a.js\" is not one of the modules");
    fx_call_fails(f, "apps.deploy",
                  "{\"name\": \"api\", \"main\": \"a.js\","
                  " \"modules\": {\"a.js\": \"\", \"../x.js\": \"\"}}",
                  400, "invalid_field", "modules[\"../x.js\"]", "not a valid module name");
    fx_call_fails(f, "apps.deploy",
                  "{\"name\": \"api\", \"main\": \"/a.js\", \"modules\": {\"a.js\": \"\"}}", 400,
                  "invalid_field", "main", NULL);
    fx_call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {}}", 400,
                  "invalid_field", "modules", NULL);
    fx_call_fails(f, "apps.deploy",
                  "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": 1}}", 400,
                  "invalid_field", "modules[\"a.js\"]", "must be a string");
    fx_call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\"}", 400, "invalid_field",
                  "modules", "modules is required");
    fx_call_fails(f, "apps.deploy",
                  "{\"name\": \"nope\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"\"}}", 404,
                  "app_not_found", "name", NULL);
    /* Larger than 32 MiB in all. */
    size_t big = NANO_CODE_MAX_BYTES / 2 + 1;
    char *src = nano_xmalloc(big + 1);
    memset(src, 'x', big);
    src[big] = '\0';
    json_t *a = json_pack("{s:s, s:s, s:{s:s, s:s}}", "name", "api", "main", "a.js", "modules",
                          "a.js", src, "b.js", src);
    nano_free(src);
    json_t *result = NULL;
    cp_error err = {0};
    assert_int_equal(cp_service_call(f->svc, &FX_ADMIN, "apps.deploy", a, &result, &err),
                     NANO_ETOOBIG);
    assert_string_equal(err.code, "too_large");
    assert_int_equal(err.status, 413);
    json_decref(a);
    assert_int_equal(fx_config_seq(f), 1); /* only the create */
}

static void deploy_required_env_is_enforced(void **state)
{
    fx *f = *state;
    json_decref(fx_call(f, "apps.create",
                        "{\"name\": \"api\", \"hostnames\": [\"api.test\"],"
                        " \"required_env\": [\"DB_URL\", \"TOKEN\"]}"));
    static const char deploy[] =
        "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"x\"}}";
    fx_call_fails(f, "apps.deploy", deploy, 409, "required_env_missing", "required_env",
                  "app api: required env missing: DB_URL, TOKEN");
    /* Before the first deploy, env changes are free (the deploy checks). */
    json_decref(fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"DB_URL\": \"pg://\"}}"));
    fx_call_fails(f, "apps.deploy", deploy, 409, "required_env_missing", "required_env",
                  "required env missing: TOKEN");
    json_decref(
        fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"t\"}"));
    json_decref(fx_call(f, "apps.deploy", deploy));
    /* Deployed: a change that would leave one missing is refused, and nothing of it stays. */
    int64_t seq = fx_config_seq(f);
    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"X\": 1, \"DB_URL\": null}}",
                  409, "required_env_missing", "required_env", "required env missing: DB_URL");
    fx_call_fails(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"TOKEN\"}", 409,
                  "required_env_missing", "required_env", "required env missing: TOKEN");
    fx_call_fails(f, "apps.update", "{\"name\": \"api\", \"required_env\": [\"DB_URL\", \"MORE\"]}",
                  409, "required_env_missing", "required_env", "required env missing: MORE");
    assert_int_equal(fx_config_seq(f), seq);
    json_t *env = fx_call(f, "env.get", "{\"name\": \"api\"}");
    assert_null(json_object_get(json_object_get(env, "vars"), "X"));
    assert_non_null(json_object_get(json_object_get(env, "vars"), "DB_URL"));
    json_decref(env);
    /* Dropping the requirement first makes the deletion fine. */
    json_decref(fx_call(f, "apps.update", "{\"name\": \"api\", \"required_env\": [\"TOKEN\"]}"));
    json_decref(fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"DB_URL\": null}}"));
}

static const struct CMUnitTest apps_tests[] = {
    FX_TEST(apps_create_get_list),
    FX_TEST(apps_egress_create_update_and_log),
    FX_TEST(apps_duplicate_and_hostname_taken),
    FX_TEST(apps_remove_without_nodes_is_immediate),
    FX_TEST(apps_remove_with_nodes_drains),
};

static const struct CMUnitTest validation_tests[] = {
    FX_TEST(validation_fields_are_named),
    FX_TEST(validation_env_limits),
};

static const struct CMUnitTest deploy_tests[] = {
    FX_TEST(deploy_versions_hashes_and_rollback),
    FX_TEST(deploy_bad_bundles),
    FX_TEST(deploy_required_env_is_enforced),
};

const unit_group unit_cp_apps = UNIT_GROUP("apps", apps_tests);
const unit_group unit_cp_validation = UNIT_GROUP("validation", validation_tests);
const unit_group unit_cp_deploy = UNIT_GROUP("deploy", deploy_tests);
