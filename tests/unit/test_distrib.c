/* Unit tests for nanocp's distribution layer (controlplane/distrib.c) without sockets: config-log
 * entries -> OPs, snapshots against a fresh service, every data-plane request through
 * cp_distrib_handle (hostile bytes included), node status and drains to their end. Each test
 * gets a fresh data dir, a service and a cp_distrib on its own loop (closed and checked with
 * uv_loop_close at the end). */
#define _GNU_SOURCE
#include "unit.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>
#include <uv.h>

#include "alloc.h"
#include "distrib.h"
#include "log.h"
#include "msg.h"
#include "service.h"
#include "snapshot.h"
#include "store.h"

typedef struct fx {
    char root[64];
    char data[128];
    cp_service *svc;
    uv_loop_t loop;
    cp_distrib *d;
    char token[80];
} fx;

static const cp_actor ADMIN = {"admin", "test"};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    fx *f = nano_xcalloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/nano-distrib-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    unsetenv("NANO_MASTER_KEY");
    nano_log_min_level = NANO_LOG_ERROR;
    cp_service_options o = {.data_dir = f->data};
    cp_error err = {0};
    if (cp_service_open(&o, &f->svc, &err) != 0)
        fail_msg("cp_service_open: %s", err.message);
    uv_loop_init(&f->loop);
    cp_distrib_options dopt = {0}; /* no sockets */
    nano_error nerr = {0};
    if (cp_distrib_start(&f->loop, f->svc, &dopt, &f->d, &nerr) != 0)
        fail_msg("cp_distrib_start: %s", nerr.message);
    char path[256];
    snprintf(path, sizeof path, "%s/node.token", f->data);
    FILE *t = fopen(path, "r");
    assert_non_null(t);
    assert_non_null(fgets(f->token, sizeof f->token, t));
    fclose(t);
    f->token[strcspn(f->token, "\n")] = '\0';
    assert_int_equal(strlen(f->token), 64);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    cp_distrib_close(f->d, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed */
    cp_service_free(f->svc);
    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    nano_free(f);
    return 0;
}

static json_t *call(fx *f, const char *op, const char *args_json)
{
    json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
    if (args_json != NULL && args == NULL)
        fail_msg("bad test JSON: %s", args_json);
    json_t *result = NULL;
    cp_error err = {0};
    if (cp_service_call(f->svc, &ADMIN, op, args, &result, &err) != 0)
        fail_msg("%s: %s (%s)", op, err.message, err.code);
    json_decref(args);
    return result;
}

static void call0(fx *f, const char *op, const char *args_json)
{
    json_decref(call(f, op, args_json));
}

static void sql(fx *f, const char *text)
{
    char path[200];
    snprintf(path, sizeof path, "%s/nanocp.db", f->data);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql: %s", msg);
    sqlite3_close(db);
}

/* Sends raw bytes; returns the decoded reply to a request of type (owned in *out). */
static void raw(fx *f, nano_msg_type type, const void *data, size_t len, nano_msg *out)
{
    nano_buf reply = NANO_BUF_INIT;
    cp_distrib_handle(f->d, data, len, &reply);
    nano_error err = {0};
    if (nano_msg_decode_reply(type, reply.data, reply.len, out, &err) != 0)
        fail_msg("reply does not decode: %s", err.message);
    nano_buf_fini(&reply);
}

/* A request from node with token; fields as JSON text (NULL: none). */
static void req(fx *f, nano_msg_type type, const char *node, const char *token,
                const char *fields_json, nano_msg *out)
{
    json_t *fields = fields_json ? json_loads(fields_json, 0, NULL) : NULL;
    if (fields_json != NULL && fields == NULL)
        fail_msg("bad test JSON: %s", fields_json);
    nano_buf b = NANO_BUF_INIT;
    nano_error err = {0};
    if (nano_msg_encode_request(type, node, token, fields, &b, &err) != 0)
        fail_msg("encode %s: %s", nano_msg_type_name(type), err.message);
    json_decref(fields);
    raw(f, type, b.data, b.len, out);
    nano_buf_fini(&b);
}

static void req_ok(fx *f, nano_msg_type type, const char *node, const char *fields_json,
                   nano_msg *out)
{
    req(f, type, node, f->token, fields_json, out);
    if (!out->ok)
        fail_msg("%s refused: %s %s", nano_msg_type_name(type), out->error_code,
                 out->error_message);
}

static void req_fails(fx *f, nano_msg_type type, const char *node, const char *token,
                      const char *fields_json, const char *code)
{
    nano_msg m;
    req(f, type, node, token, fields_json, &m);
    assert_false(m.ok);
    assert_string_equal(m.error_code, code);
    nano_msg_fini(&m);
}

static int64_t config_seq(fx *f)
{
    json_t *v = call(f, "version", NULL);
    int64_t seq = json_integer_value(json_object_get(v, "config_seq"));
    json_decref(v);
    return seq;
}

static void make_api(fx *f)
{
    call0(f, "apps.create",
          "{\"name\": \"api\", \"hostnames\": [\"api.test\"],"
          " \"limits\": {\"drain_timeout\": \"5s\"}}");
    call0(f, "apps.deploy",
          "{\"name\": \"api\", \"main\": \"index.js\", \"modules\":"
          " {\"index.js\": \"import './lib/u.js'\", \"lib/u.js\": \"//u\"}}");
    call0(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": \"1\", \"J\": {\"x\": [1]}}}");
    call0(f, "secrets.put", "{\"name\": \"api\", \"key\": \"DB\", \"value\": \"pw-\\u00e9\"}");
}

/* --- ops -------------------------------------------------------------------------------------- */

static void ops_every_log_entry_becomes_a_valid_op(void **state)
{
    fx *f = *state;
    make_api(f);
    call0(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": null}}");
    call0(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"DB\"}");
    call0(f, "apps.create",
          "{\"name\": \"tmp\", \"default\": true, \"egress\": "
          "{\"allow\": [\"169.254.169.254\"]}}");
    call0(f, "apps.remove", "{\"name\": \"tmp\"}"); /* no node: drain + remove at once */
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), 0, 1000, &log), 0);
    assert_true(json_array_size(log) >= 10);
    json_t *ops = json_array();
    const char *seen[16];
    size_t n_seen = 0, i;
    json_t *e;
    json_array_foreach(log, i, e) {
        json_t *op = NULL;
        nano_error err = {0};
        if (cp_distrib_op_from_log(e, &op, &err) != 0)
            fail_msg("entry %zu: %s", i, err.message);
        assert_int_equal(json_integer_value(json_object_get(op, "seq")),
                         json_integer_value(json_object_get(e, "seq")));
        const char *kind = json_string_value(json_object_get(op, "op"));
        bool is_new = true;
        for (size_t k = 0; k < n_seen; k++)
            is_new = is_new && strcmp(seen[k], kind) != 0;
        if (is_new && n_seen < 16)
            seen[n_seen++] = kind;
        if (strcmp(kind, "secret.put") == 0) {
            /* the sealed value stays in the log: the wire has names only */
            assert_non_null(json_object_get(json_object_get(e, "payload"), "ciphertext"));
            assert_int_equal(json_object_size(op), 4); /* seq, op, app, name */
            assert_null(json_object_get(op, "ciphertext"));
        }
        json_array_append_new(ops, op);
    }
    assert_int_equal(n_seen, 8); /* every op kind of msg.h */
    nano_buf b = NANO_BUF_INIT;
    nano_error err = {0};
    assert_int_equal(nano_msg_encode_delta(ops, &b, &err), 0);
    nano_msg m;
    assert_int_equal(nano_msg_decode_pub(b.data, b.len, &m, &err), 0);
    assert_int_equal(m.first, 1);
    assert_int_equal((int64_t)m.seq, config_seq(f));
    nano_msg_fini(&m);
    nano_buf_fini(&b);
    json_decref(ops);
    json_decref(log);
}

static void ops_bad_entries_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"seq\": 1, \"op\": \"app.explode\", \"app\": \"a\", \"payload\": {\"app\": \"a\"}}",
        "{\"seq\": 2, \"op\": \"env.put\", \"app\": \"a\", \"payload\": {\"app\": \"a\"}}",
        "{\"seq\": 3, \"op\": \"env.put\", \"app\": \"a\", \"payload\": {\"app\": \"a\","
        " \"name\": \"1BAD\", \"value\": 1}}",
        "{\"seq\": 4, \"op\": \"app.remove\", \"app\": \"A B\", \"payload\": {\"app\": \"A B\"}}",
        "{\"seq\": \"5\", \"op\": \"app.remove\", \"payload\": {\"app\": \"a\"}}",
        "{\"seq\": 6, \"op\": \"app.remove\", \"payload\": null}",
        "{\"seq\": 7, \"op\": \"app.put\", \"app\": \"a\", \"payload\": {\"app\": \"a\","
        " \"hostnames\": [], \"path_prefix\": null, \"default\": true, \"node_compat\": false,"
        " \"required_env\": [], \"limits\": {}, \"state\": \"active\", \"version\": 0,"
        " \"sha256\": null, \"egress\": {\"deny\": [\"10.0.0.0/33\"]}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *e = json_loads(bad[i], 0, NULL);
        assert_non_null(e);
        json_t *op = NULL;
        nano_error err = {0};
        if (cp_distrib_op_from_log(e, &op, &err) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_null(op);
        assert_true(err.message[0] != '\0');
        json_decref(e);
    }
    /* an app.put logged before migration 0002 has no egress: still a valid op, without one */
    json_t *e = json_loads("{\"seq\": 7, \"op\": \"app.put\", \"app\": \"a\", \"payload\": "
                           "{\"app\": \"a\", \"hostnames\": [], \"path_prefix\": null, "
                           "\"default\": true, \"node_compat\": false, \"required_env\": [], "
                           "\"limits\": {}, \"state\": \"active\", \"version\": 0, "
                           "\"sha256\": null}}",
                           0, NULL);
    json_t *op = NULL;
    nano_error err = {0};
    assert_int_equal(cp_distrib_op_from_log(e, &op, &err), 0);
    assert_null(json_object_get(op, "egress"));
    json_decref(op);
    json_decref(e);
}

/* --- snapshot -------------------------------------------------------------------------------- */

static void snapshot_holds_everything_as_of_its_seq(void **state)
{
    fx *f = *state;
    make_api(f);
    call0(f, "apps.create",
          "{\"name\": \"bare\", \"hostnames\": [\"bare.test\"],"
          " \"egress\": {\"deny\": [\"10.0.0.0/8\"]}}");
    json_t *snap = NULL;
    nano_error err = {0};
    assert_int_equal(cp_distrib_snapshot(f->svc, &snap, &err), 0);
    assert_int_equal(json_integer_value(json_object_get(snap, "seq")), config_seq(f));
    json_t *apps = json_object_get(snap, "apps");
    assert_int_equal(json_array_size(apps), 2);
    json_t *api = json_array_get(apps, 0), *bare = json_array_get(apps, 1);
    assert_string_equal(json_string_value(json_object_get(api, "app")), "api");
    assert_int_equal(json_integer_value(json_object_get(api, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(api, "main")), "index.js");
    assert_int_equal(json_array_size(json_object_get(api, "modules")), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(api, "secrets"), "DB")),
                        "pw-\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(json_object_get(api, "vars"), "A")), "1");
    assert_true(json_is_object(json_object_get(json_object_get(api, "vars"), "J")));
    assert_true(json_is_null(json_object_get(bare, "main")));
    assert_true(json_is_null(json_object_get(bare, "sha256")));
    assert_int_equal(json_array_size(json_object_get(bare, "modules")), 0);
    assert_null(json_object_get(api, "drain_timeout_ms"));
    assert_true(json_is_null(json_object_get(api, "egress")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(bare, "egress"), "deny"), 0)),
                        "10.0.0.0/8");
    /* what the data plane's decoder will accept */
    nano_buf b = NANO_BUF_INIT;
    assert_int_equal(nano_msg_encode_reply(NANO_MSG_SNAPSHOT, snap, &b, &err), 0);
    nano_msg m;
    assert_int_equal(nano_msg_decode_reply(NANO_MSG_SNAPSHOT, b.data, b.len, &m, &err), 0);
    nano_msg_fini(&m);
    nano_buf_fini(&b);
    json_decref(snap);

    /* a draining app carries its drain timeout */
    sql(f, "INSERT INTO nodes (name, first_seen, last_seen) VALUES ('n1', 'x', 'y')");
    call0(f, "apps.remove", "{\"name\": \"api\"}");
    assert_int_equal(cp_distrib_snapshot(f->svc, &snap, &err), 0);
    api = json_array_get(json_object_get(snap, "apps"), 0);
    assert_string_equal(json_string_value(json_object_get(api, "state")), "draining");
    assert_int_equal(json_integer_value(json_object_get(api, "drain_timeout_ms")), 5000);
    assert_int_equal(nano_msg_check_snapapp(api, &err), 0);
    json_decref(snap);
}

/* A value the wire refuses, stored by an older nanocp or by hand (here an env name with a
 * space and a control byte), withholds that app alone: the others still go, the
 * whole reply encodes and decodes, and apps.get says why. */
static void snapshot_withholds_only_the_app_it_cannot_send(void **state)
{
    fx *f = *state;
    make_api(f);
    call0(f, "apps.create", "{\"name\": \"bare\", \"hostnames\": [\"bare.test\"]}");
    sql(f, "INSERT INTO env_vars (app_id, name, value, updated_at) SELECT id, 'BAD NAME\x01',"
           " '\"x\"', 'now' FROM apps WHERE name = 'api'");
    json_t *snap = NULL;
    nano_error err = {0};
    size_t withheld = 0;
    assert_int_equal(cp_snapshot_build(f->svc, &snap, &withheld, &err), 0);
    assert_int_equal(withheld, 1);
    json_t *apps = json_object_get(snap, "apps");
    assert_int_equal(json_array_size(apps), 2);
    json_t *api = json_array_get(apps, 0), *bare = json_array_get(apps, 1);
    assert_string_equal(json_string_value(json_object_get(api, "app")), "api");
    char why[512];
    assert_non_null(json_string_value(json_object_get(api, "withheld")));
    snprintf(why, sizeof why, "%s", json_string_value(json_object_get(api, "withheld")));
    assert_non_null(strstr(why, "BAD NAME?")); /* the control byte is not sent on */
    assert_int_equal(json_object_size(api), 2);
    assert_string_equal(json_string_value(json_object_get(bare, "app")), "bare");
    assert_null(json_object_get(bare, "withheld"));
    nano_buf b = NANO_BUF_INIT;
    assert_int_equal(nano_msg_encode_reply(NANO_MSG_SNAPSHOT, snap, &b, &err), 0);
    nano_msg m;
    assert_int_equal(nano_msg_decode_reply(NANO_MSG_SNAPSHOT, b.data, b.len, &m, &err), 0);
    nano_msg_fini(&m);
    nano_buf_fini(&b);
    json_decref(snap);

    json_t *got = call(f, "apps.get", "{\"name\": \"api\"}");
    json_t *dist = json_object_get(got, "distribution");
    assert_string_equal(json_string_value(json_object_get(dist, "state")), "withheld");
    assert_string_equal(json_string_value(json_object_get(dist, "error")), why);
    json_decref(got);
    got = call(f, "apps.get", "{\"name\": \"bare\"}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(got, "distribution"), "state")), "ok");
    json_decref(got);

    /* fixed by hand: sent again */
    sql(f, "DELETE FROM env_vars WHERE name LIKE 'BAD NAME%'");
    assert_int_equal(cp_snapshot_build(f->svc, &snap, &withheld, &err), 0);
    assert_int_equal(withheld, 0);
    assert_null(json_object_get(json_array_get(json_object_get(snap, "apps"), 0), "withheld"));
    json_decref(snap);
}

/* --- requests -------------------------------------------------------------------------------- */

static void requests_hello_status_code_secrets(void **state)
{
    fx *f = *state;
    make_api(f);
    nano_msg m;
    req_ok(f, NANO_MSG_HELLO, "edge-1",
           "{\"version\": \"0.1.0\", \"addr\": \"10.0.0.1:8080\", \"capabilities\": []}", &m);
    assert_int_equal((int64_t)m.seq, 0); /* what heartbeats say: published so far */
    nano_msg_fini(&m);
    cp_distrib_publish(f->d);
    req_ok(f, NANO_MSG_HELLO, "edge-1",
           "{\"version\": \"0.1.0\", \"addr\": \"10.0.0.1:8080\", \"capabilities\": []}", &m);
    assert_int_equal((int64_t)m.seq, config_seq(f));
    assert_int_equal(json_integer_value(json_object_get(m.body, "heartbeat_ms")), 1000);
    nano_msg_fini(&m);
    json_t *nodes = call(f, "nodes.list", NULL);
    json_t *n = json_array_get(json_object_get(nodes, "nodes"), 0);
    assert_string_equal(json_string_value(json_object_get(n, "addr")), "10.0.0.1:8080");
    assert_string_equal(json_string_value(json_object_get(n, "version")), "0.1.0");
    assert_false(json_is_true(json_object_get(n, "current")));
    json_decref(nodes);

    char fields[256];
    snprintf(fields, sizeof fields,
             "{\"applied_seq\": %lld, \"apps\": {\"api\": {\"state\": \"active\","
             " \"in_flight\": 3, \"version\": 1}}}",
             (long long)config_seq(f));
    req_ok(f, NANO_MSG_STATUS, "edge-1", fields, &m);
    assert_int_equal((int64_t)m.seq, config_seq(f));
    nano_msg_fini(&m);
    cp_distrib_flush(f->d); /* the heartbeat tick writes reports */
    nodes = call(f, "nodes.list", NULL);
    n = json_array_get(json_object_get(nodes, "nodes"), 0);
    assert_true(json_is_true(json_object_get(n, "current")));
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(n, "apps"), "api"), "in_flight")),
                     3);
    json_decref(nodes);

    json_t *dep = call(f, "deployments.list", "{\"name\": \"api\"}");
    json_t *mod = json_array_get(
        json_object_get(json_array_get(json_object_get(dep, "deployments"), 0), "modules"), 0);
    snprintf(fields, sizeof fields, "{\"sha256\": \"%s\"}",
             json_string_value(json_object_get(mod, "sha256")));
    req_ok(f, NANO_MSG_CODE_GET, "edge-1", fields, &m);
    assert_string_equal(json_string_value(json_object_get(m.body, "data")),
                        strcmp(json_string_value(json_object_get(mod, "name")), "index.js") == 0
                            ? "import './lib/u.js'"
                            : "//u");
    nano_msg_fini(&m);
    /* code.batch: both modules of the deployment in one reply; an unknown sha256 and a
     * repeated one are left out. */
    json_t *mods = json_object_get(json_array_get(json_object_get(dep, "deployments"), 0),
                                   "modules");
    const char *sha0 = json_string_value(json_object_get(json_array_get(mods, 0), "sha256"));
    const char *sha1 = json_string_value(json_object_get(json_array_get(mods, 1), "sha256"));
    char batch[400];
    snprintf(batch, sizeof batch,
             "{\"sha256s\": [\"%s\", \"%s\", \"%s\", "
             "\"1111111111111111111111111111111111111111111111111111111111111111\"]}",
             sha0, sha1, sha0);
    req_ok(f, NANO_MSG_CODE_BATCH, "edge-1", batch, &m);
    json_t *got = json_object_get(m.body, "modules");
    assert_int_equal(json_object_size(got), 2);
    assert_non_null(json_object_get(got, sha0));
    assert_non_null(json_object_get(got, sha1));
    const char *u = json_string_value(json_object_get(got, sha0));
    assert_true(strcmp(u, "import './lib/u.js'") == 0 || strcmp(u, "//u") == 0);
    nano_msg_fini(&m);
    json_decref(dep);
    req_fails(f, NANO_MSG_CODE_GET, "edge-1", f->token,
              "{\"sha256\": \"0000000000000000000000000000000000000000000000000000000000000000\"}",
              "not_found");

    req_ok(f, NANO_MSG_SECRETS_GET, "edge-1", "{\"app\": \"api\"}", &m);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(m.body, "secrets"), "DB")),
        "pw-\xc3\xa9");
    nano_msg_fini(&m);
    req_fails(f, NANO_MSG_SECRETS_GET, "edge-1", f->token, "{\"app\": \"ghost\"}", "app_not_found");
}

static void requests_wrong_token_is_unauthorized(void **state)
{
    fx *f = *state;
    char wrong[80];
    snprintf(wrong, sizeof wrong, "%s", f->token);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    req_fails(f, NANO_MSG_HELLO, "edge-1", wrong,
              "{\"version\": \"1\", \"addr\": \"x\", \"capabilities\": []}", "unauthorized");
    req_fails(f, NANO_MSG_SNAPSHOT, "edge-1", "", NULL, "unauthorized");
    req_fails(f, NANO_MSG_SECRETS_GET, "edge-1", "admin", "{\"app\": \"api\"}", "unauthorized");
    json_t *nodes = call(f, "nodes.list", NULL);
    assert_int_equal(json_array_size(json_object_get(nodes, "nodes")), 0);
    json_decref(nodes);
}

static void requests_garbage_and_truncations_get_bad_request(void **state)
{
    fx *f = *state;
    static const unsigned char junk[][8] = {
        {0xc1}, {0x93, 1, 2, 3}, {0xdf, 0xff, 0xff, 0xff}, {0x81, 0xa1, 'v', 0x02}, {0x00}};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        nano_msg m;
        raw(f, NANO_MSG_HELLO, junk[i], sizeof junk[i], &m);
        assert_false(m.ok);
        assert_string_equal(m.error_code, "bad_request");
        nano_msg_fini(&m);
    }
    nano_msg m;
    raw(f, NANO_MSG_HELLO, "", 0, &m);
    assert_false(m.ok);
    nano_msg_fini(&m);
    /* every prefix of a valid request, and every single-byte flip of it */
    json_t *fields = json_pack("{s:I, s:{s:{s:s, s:i, s:i}}}", "applied_seq", (json_int_t)0, "apps",
                               "api", "state", "active", "in_flight", 0, "version", 0);
    nano_buf b = NANO_BUF_INIT;
    nano_error err = {0};
    assert_int_equal(nano_msg_encode_request(NANO_MSG_STATUS, "edge-1", f->token, fields, &b, &err),
                     0);
    json_decref(fields);
    for (size_t len = 0; len < b.len; len++) {
        raw(f, NANO_MSG_STATUS, b.data, len, &m);
        assert_false(m.ok);
        assert_string_equal(m.error_code, "bad_request");
        nano_msg_fini(&m);
    }
    unsigned char *copy = nano_xmalloc(b.len);
    for (size_t i = 0; i < b.len; i++) {
        memcpy(copy, b.data, b.len);
        copy[i] ^= 0x5a;
        raw(f, NANO_MSG_STATUS, copy, b.len, &m); /* any answer, never a crash */
        nano_msg_fini(&m);
    }
    nano_free(copy);
    nano_buf_fini(&b);
    /* nothing half-applied: no status was recorded from the broken ones unless valid */
    cp_distrib_flush(f->d);
}

/* --- drains ------------------------------------------------------------------------------------ */

static void hello(fx *f, const char *node)
{
    nano_msg m;
    req_ok(f, NANO_MSG_HELLO, node, "{\"version\": \"t\", \"addr\": \"a\", \"capabilities\": []}",
           &m);
    nano_msg_fini(&m);
}

static const char *app_state(fx *f, const char *app)
{
    json_t *apps = call(f, "apps.list", NULL);
    static char state[32];
    snprintf(state, sizeof state, "absent");
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(apps, "apps"), i, a) {
        if (strcmp(json_string_value(json_object_get(a, "name")), app) == 0)
            snprintf(state, sizeof state, "%s", json_string_value(json_object_get(a, "state")));
    }
    json_decref(apps);
    return state;
}

static json_t *log_entry(fx *f, int64_t seq)
{
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq - 1, 1, &log), 0);
    json_t *e = json_incref(json_array_get(log, 0));
    json_decref(log);
    return e;
}

static void drains_end_when_every_node_acked(void **state)
{
    fx *f = *state;
    make_api(f);
    hello(f, "n1");
    hello(f, "n2");
    call0(f, "apps.remove", "{\"name\": \"api\"}");
    cp_distrib_publish(f->d);
    int64_t seq = config_seq(f);
    assert_int_equal(cp_distrib_published(f->d), seq);
    nano_msg m;
    req_ok(f, NANO_MSG_DRAIN_ACK, "n1",
           "{\"app\": \"api\", \"result\": \"drained\", \"in_flight\": 0}", &m);
    nano_msg_fini(&m);
    assert_string_equal(app_state(f, "api"), "draining");
    json_t *d = call(f, "apps.drain", "{\"name\": \"api\"}");
    json_t *nodes = json_object_get(d, "nodes");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "state")),
                        "drained");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 1), "state")),
                        "draining");
    json_decref(d);
    /* an ack for an app with no drain, or a repeated one, changes nothing */
    req_ok(f, NANO_MSG_DRAIN_ACK, "n1",
           "{\"app\": \"api\", \"result\": \"drained\", \"in_flight\": 0}", &m);
    nano_msg_fini(&m);
    req_ok(f, NANO_MSG_DRAIN_ACK, "n1",
           "{\"app\": \"other\", \"result\": \"drained\", \"in_flight\": 0}", &m);
    nano_msg_fini(&m);
    assert_int_equal(config_seq(f), seq);
    /* the last one: the app goes and app.remove is published */
    req_ok(f, NANO_MSG_DRAIN_ACK, "n2",
           "{\"app\": \"api\", \"result\": \"timed_out\", \"in_flight\": 2}", &m);
    nano_msg_fini(&m);
    assert_string_equal(app_state(f, "api"), "absent");
    assert_int_equal(config_seq(f), seq + 1);
    assert_int_equal(cp_distrib_published(f->d), seq + 1);
    json_t *e = log_entry(f, seq + 1);
    assert_string_equal(json_string_value(json_object_get(e, "op")), "app.remove");
    json_decref(e);
    json_t *audit = call(f, "audit.list", "{\"limit\": 1}");
    json_t *a = json_array_get(json_object_get(audit, "entries"), 0);
    assert_string_equal(json_string_value(json_object_get(a, "via")), "drain");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a, "detail"), "timed_out")),
                     1);
    json_decref(audit);
}

static void drains_time_out_nodes_that_never_ack(void **state)
{
    fx *f = *state;
    make_api(f);
    hello(f, "n1");
    hello(f, "down");
    call0(f, "apps.remove", "{\"name\": \"api\"}");
    nano_msg m;
    req_ok(f, NANO_MSG_DRAIN_ACK, "n1",
           "{\"app\": \"api\", \"result\": \"drained\", \"in_flight\": 0}", &m);
    nano_msg_fini(&m);
    cp_distrib_flush(f->d); /* timeout 5 s + grace not passed yet */
    assert_string_equal(app_state(f, "api"), "draining");
    /* as if the drain had started 8 s ago (timeout 5 s + grace 2 s) */
    sql(f, "UPDATE drains SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-8 seconds')");
    int64_t seq = config_seq(f);
    cp_distrib_flush(f->d);
    assert_string_equal(app_state(f, "api"), "absent");
    assert_int_equal(config_seq(f), seq + 1);
    assert_int_equal(cp_distrib_published(f->d), seq + 1);
}

static void drains_a_status_without_the_app_counts_as_ack(void **state)
{
    fx *f = *state;
    make_api(f);
    hello(f, "n1");
    call0(f, "apps.remove", "{\"name\": \"api\"}");
    int64_t seq = config_seq(f);
    nano_msg m;
    /* behind the app.drain: not an ack, whatever it lists */
    req_ok(f, NANO_MSG_STATUS, "n1", "{\"applied_seq\": 1, \"apps\": {}}", &m);
    nano_msg_fini(&m);
    cp_distrib_flush(f->d);
    assert_string_equal(app_state(f, "api"), "draining");
    /* past it and still draining: not an ack */
    char fields[200];
    snprintf(fields, sizeof fields,
             "{\"applied_seq\": %lld, \"apps\": {\"api\": {\"state\": \"draining\","
             " \"in_flight\": 4, \"version\": 1}}}",
             (long long)seq);
    req_ok(f, NANO_MSG_STATUS, "n1", fields, &m);
    nano_msg_fini(&m);
    cp_distrib_flush(f->d);
    assert_string_equal(app_state(f, "api"), "draining");
    json_t *d = call(f, "apps.drain", "{\"name\": \"api\"}");
    assert_int_equal(json_integer_value(json_object_get(
                         json_array_get(json_object_get(d, "nodes"), 0), "in_flight")),
                     4);
    json_decref(d);
    /* past it and the app gone from its report: acked, and the drain ends */
    snprintf(fields, sizeof fields, "{\"applied_seq\": %lld, \"apps\": {}}", (long long)seq);
    req_ok(f, NANO_MSG_STATUS, "n1", fields, &m);
    nano_msg_fini(&m);
    cp_distrib_flush(f->d);
    assert_string_equal(app_state(f, "api"), "absent");
    assert_int_equal(cp_distrib_published(f->d), seq + 1);
}

static void drains_removing_a_node_gone_for_good_ends_them(void **state)
{
    fx *f = *state;
    make_api(f);
    hello(f, "n1");
    hello(f, "gone");
    call0(f, "apps.remove", "{\"name\": \"api\"}");
    nano_msg m;
    req_ok(f, NANO_MSG_DRAIN_ACK, "n1",
           "{\"app\": \"api\", \"result\": \"drained\", \"in_flight\": 0}", &m);
    nano_msg_fini(&m);
    assert_string_equal(app_state(f, "api"), "draining"); /* waits for "gone" */
    int64_t seq = config_seq(f);
    json_t *r = call(f, "nodes.remove", "{\"name\": \"gone\"}");
    assert_string_equal(json_string_value(json_object_get(r, "name")), "gone");
    assert_true(json_is_true(json_object_get(r, "drains_ended")));
    json_decref(r);
    cp_distrib_publish(f->d); /* what nanocp's admin front ends do after every change */
    assert_string_equal(app_state(f, "api"), "absent");
    assert_int_equal(config_seq(f), seq + 1);
    assert_int_equal(cp_distrib_published(f->d), seq + 1);
    json_t *nodes = call(f, "nodes.list", NULL);
    assert_int_equal(json_array_size(json_object_get(nodes, "nodes")), 1);
    json_decref(nodes);
    /* an unknown node, and a name that is not a node name */
    static const struct {
        const char *args, *code;
        int status;
    } bad[] = {{"{\"name\": \"gone\"}", "node_not_found", 404},
               {"{\"name\": \"no spaces\"}", "invalid_field", 400},
               {"{}", "bad_request", 400}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *args = json_loads(bad[i].args, 0, NULL), *res = NULL;
        cp_error err = {0};
        cp_actor actor = {"admin", "test"};
        assert_int_not_equal(cp_service_call(f->svc, &actor, "nodes.remove", args, &res, &err), 0);
        if (strcmp(err.code, bad[i].code) != 0 && strcmp(bad[i].code, "bad_request") != 0)
            fail_msg("%s: got %s (%s)", bad[i].args, err.code, err.message);
        assert_int_equal(err.status, bad[i].status);
        json_decref(args);
    }
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    static const struct CMUnitTest ops_tests[] = {
        T(ops_every_log_entry_becomes_a_valid_op),
        T(ops_bad_entries_are_refused),
    };
    static const struct CMUnitTest snapshot_tests[] = {
        T(snapshot_holds_everything_as_of_its_seq),
        T(snapshot_withholds_only_the_app_it_cannot_send),
    };
    static const struct CMUnitTest requests_tests[] = {
        T(requests_hello_status_code_secrets),
        T(requests_wrong_token_is_unauthorized),
        T(requests_garbage_and_truncations_get_bad_request),
    };
    static const struct CMUnitTest drains_tests[] = {
        T(drains_end_when_every_node_acked),
        T(drains_time_out_nodes_that_never_ack),
        T(drains_a_status_without_the_app_counts_as_ack),
        T(drains_removing_a_node_gone_for_good_ends_them),
    };
#undef T
    const unit_group groups[] = {
        UNIT_GROUP("ops", ops_tests),
        UNIT_GROUP("snapshot", snapshot_tests),
        UNIT_GROUP("requests", requests_tests),
        UNIT_GROUP("drains", drains_tests),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
