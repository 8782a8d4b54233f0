/* test_cp_migrate.c: the migrate group of unit_cp: a whole store from SQLite to etcd and back
 * (store_dump.c, migrate.c: `nanocp migrate --from --to`), in a real etcd the runner starts
 * (etcd_fixture.h; each test skipped, saying so, without an etcd binary). The source is the
 * fixture's SQLite store, populated through the service. */
#include "cp_fixture.h"
#include "etcd_fixture.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "migrate.h"
#include "sha256.h"
#include "store.h"

/* Apps (one default, one with two deployments and the first active again), env, secrets,
 * two nodes, an app removed while they run it (a drain with per-node rows), a token; every
 * change in the config and audit logs. */
static void populate(fx *f)
{
    cp_store *st = cp_service_store(f->svc);
    json_decref(fx_call(f, "apps.create",
                        "{\"name\": \"api\", \"hostnames\": [\"api.test\", \"www.api.test\"], "
                        "\"path_prefix\": \"/v1\", \"limits\": {\"cpu_ms\": 70}}"));
    json_decref(fx_call(f, "apps.create", "{\"name\": \"fallback\", \"default\": true}"));
    fx_create_app(f, "gone", "gone.test");
    json_decref(fx_call(f, "apps.deploy",
                        "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"1\", "
                        "\"lib/b.js\": \"export const b = 2\"}}"));
    json_decref(
        fx_call(f, "apps.deploy",
                "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"22\"}}"));
    json_decref(fx_call(f, "apps.rollback", "{\"name\": \"api\", \"version\": 1}"));
    json_decref(fx_call(f, "env.patch",
                        "{\"name\": \"api\", \"vars\": {\"MODE\": \"prod\", \"N\": 3, "
                        "\"DEEP\": {\"a\": [1, 2]}}}"));
    json_decref(
        fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"s\"}"));
    json_decref(
        fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K2\", \"value\": \"t\"}"));
    assert_int_equal(cp_store_node_report(st, "edge-1", 3, "{\"gone\": {\"state\": \"active\"}}",
                                          "2024-01-01T00:00:00.000Z"),
                     0);
    assert_int_equal(cp_store_node_report(st, "edge-2", 2, "{}", "2024-01-01T00:00:01.000Z"), 0);
    json_t *r = fx_call(f, "apps.remove", "{\"name\": \"gone\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "draining");
    json_decref(r);
    assert_int_equal(cp_store_token_put(st, "ci",
                                        "0123456789abcdef0123456789abcdef0123456789abcd"
                                        "ef0123456789abcdef"),
                     0);
}

/* What the service answers for the populated store. */
static json_t *reads(fx *f)
{
    json_t *all = json_object();
    json_object_set_new(all, "api", fx_call(f, "apps.get", "{\"name\": \"api\"}"));
    json_object_set_new(all, "fallback", fx_call(f, "apps.get", "{\"name\": \"fallback\"}"));
    json_object_set_new(all, "env", fx_call(f, "env.get", "{\"name\": \"api\"}"));
    json_object_set_new(all, "secrets", fx_call(f, "secrets.list", "{\"name\": \"api\"}"));
    json_object_set_new(all, "deployments", fx_call(f, "deployments.list", "{\"name\": \"api\"}"));
    json_object_set_new(all, "audit", fx_call(f, "audit.list", NULL));
    json_object_set_new(all, "drain", fx_call(f, "apps.drain", "{\"name\": \"gone\"}"));
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), 0, 1000, &log), 0);
    json_object_set_new(all, "log", log);
    return all;
}

static json_t *dump_of(const char *path_or_url)
{
    cp_store *st = NULL;
    nano_error err = {0};
    if (cp_store_open(path_or_url, false, &st, &err) != 0)
        fail_msg("open %s: %s", path_or_url, err.message);
    json_t *d = NULL;
    assert_int_equal(cp_store_dump(st, &d), 0);
    cp_store_free(st);
    return d;
}

static void assert_json_equal(json_t *a, json_t *b)
{
    if (!json_equal(a, b)) {
        char *x = json_dumps(a, JSON_SORT_KEYS), *y = json_dumps(b, JSON_SORT_KEYS);
        fail_msg("differ:\n%s\n%s", x, y);
    }
}

static void migrate_round_trip_sqlite_etcd_sqlite(void **state)
{
    fx *f = *state;
    char url[160], sqlite[256], back[256];
    etcd_fx_fresh_url(url, sizeof url, "m");
    populate(f);
    json_t *before = reads(f), *d1 = NULL;
    assert_int_equal(cp_store_dump(cp_service_store(f->svc), &d1), 0);
    json_t *t = json_object_get(d1, "tables");
    assert_int_equal(json_array_size(json_object_get(t, "apps")), 3); /* gone: draining */
    assert_int_equal(json_array_size(json_object_get(t, "deployments")), 2);
    assert_int_equal(json_array_size(json_object_get(t, "deployment_modules")), 3);
    assert_int_equal(json_array_size(json_object_get(t, "blobs")), 3);
    assert_int_equal(json_array_size(json_object_get(t, "secrets")), 2);
    assert_int_equal(json_array_size(json_object_get(t, "nodes")), 2);
    assert_int_equal(json_array_size(json_object_get(t, "drain_nodes")), 2);
    assert_true(json_array_size(json_object_get(t, "config_log")) >= 8);
    assert_true(json_array_size(json_object_get(t, "api_tokens")) >= 2);
    int64_t seq = fx_config_seq(f);
    cp_service_free(f->svc); /* a copy of a store in use is tested by the e2e test */
    f->svc = NULL;

    snprintf(sqlite, sizeof sqlite, "sqlite:%s", f->db);
    assert_int_equal(cp_migrate_run(sqlite, url, NULL), 0);
    json_t *d2 = dump_of(url);
    assert_json_equal(d1, d2);
    snprintf(back, sizeof back, "sqlite:%s/back.db", f->root);
    assert_int_equal(cp_migrate_run(url, back, NULL), 0);
    json_t *d3 = dump_of(back + 7);
    assert_json_equal(d1, d3);

    /* the service on the etcd store answers as it did on SQLite, the seq goes on */
    snprintf(f->store_url, sizeof f->store_url, "%s", url);
    fx_open_svc(f);
    json_t *after = reads(f);
    assert_json_equal(before, after);
    assert_int_equal(fx_config_seq(f), seq);
    /* ids go on after the copied ones (api 1, fallback 2, gone 3) */
    fx_create_app(f, "new", "new.test");
    json_t *app = NULL;
    assert_int_equal(cp_store_app_get(cp_service_store(f->svc), "new", &app), 0);
    assert_int_equal(json_integer_value(json_object_get(app, "id")), 4);
    assert_int_equal(fx_config_seq(f), seq + 1);
    json_decref(app);
    json_decref(before);
    json_decref(after);
    json_decref(d1);
    json_decref(d2);
    json_decref(d3);
}

static void migrate_refuses_what_it_cannot_do(void **state)
{
    fx *f = *state;
    char url[160], sqlite[256], other[256], dead[128];
    etcd_fx_fresh_url(url, sizeof url, "m");
    populate(f);
    snprintf(sqlite, sizeof sqlite, "sqlite:%s", f->db);
    assert_int_equal(cp_migrate_run(sqlite, url, NULL), 0);
    json_t *d1 = dump_of(url);
    /* a destination that is not empty: refused, nothing written */
    assert_int_equal(cp_migrate_run(sqlite, url, NULL), 1);
    json_t *d2 = dump_of(url);
    assert_json_equal(d1, d2);
    assert_int_equal(cp_migrate_run(url, sqlite, NULL), 1); /* the populated source */
    snprintf(other, sizeof other, "sqlite:%s/other.db", f->root);
    assert_int_equal(cp_migrate_run(url, other, NULL), 0);
    assert_int_equal(cp_migrate_run(url, other, NULL), 1);
    json_t *d3 = dump_of(other + 7);
    assert_json_equal(d1, d3);
    /* the same store on both sides, bad arguments, nothing there, unreachable etcd */
    assert_int_equal(cp_migrate_run(sqlite, sqlite, NULL), 2);
    assert_int_equal(cp_migrate_run(url, url, NULL), 2);
    assert_int_equal(cp_migrate_run("mysql://x", url, NULL), 2);
    assert_int_equal(cp_migrate_run(sqlite, "sqlite:", NULL), 2);
    snprintf(other, sizeof other, "sqlite:%s/none.db", f->root);
    assert_int_equal(cp_migrate_run(other, url, NULL), 1);
    snprintf(dead, sizeof dead, "etcd://127.0.0.1:%d/x", etcd_fx_free_port());
    assert_int_equal(cp_migrate_run(sqlite, dead, NULL), 1);
    json_decref(d1);
    json_decref(d2);
    json_decref(d3);
}

static void migrate_interrupted_etcd_load_is_marked(void **state)
{
    fx *f = *state;
    char url[160];
    etcd_fx_fresh_url(url, sizeof url, "m");
    populate(f);
    json_t *d = NULL;
    assert_int_equal(cp_store_dump(cp_service_store(f->svc), &d), 0);
    /* a load that stops half-way (a blob that is not base64, after the others) */
    json_t *blobs = json_object_get(json_object_get(d, "tables"), "blobs");
    json_array_append_new(
        blobs, json_pack("{s:s, s:i, s:s}", "sha256", "ff", "size", 1, "data", "!not base64!"));
    cp_store *st = NULL;
    nano_error err = {0};
    assert_int_equal(cp_store_open(url, true, &st, &err), 0);
    assert_int_not_equal(cp_store_load(st, d, &err), 0);
    assert_non_null(strstr(err.message, "marked incomplete"));
    cp_store_free(st);
    /* nanocp refuses such a store, saying what to do */
    err = (nano_error){0};
    assert_int_not_equal(cp_store_open(url, true, &st, &err), 0);
    assert_string_equal(err.id, "store_incomplete");
    assert_non_null(strstr(err.message, "etcdctl del --prefix"));
    json_decref(d);
}

/* Code above etcd's request size (chunks, one per transaction) with every byte value, and more
 * keys than one etcd transaction takes (log and audit entries): several batches, same dump. */
static void migrate_big_store_goes_in_batches(void **state)
{
    fx *f = *state;
    char url[160], sqlite[256], back[256];
    etcd_fx_fresh_url(url, sizeof url, "m");
    fx_create_app(f, "big", "big.test");
    cp_store *st = cp_service_store(f->svc);
    json_t *app = NULL;
    assert_int_equal(cp_store_app_get(st, "big", &app), 0);
    int64_t id = json_integer_value(json_object_get(app, "id"));
    json_decref(app);
    size_t len = (size_t)2600 << 10; /* 6 chunks, above 1.5 MiB */
    char *raw = nano_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        raw[i] = (char)(i * 7 % 256);
    cp_module m = {.name = "index.js", .data = raw, .len = len};
    nano_sha256_hex(raw, len, m.sha256);
    int64_t dep = 0, ver = 0;
    assert_int_equal(cp_store_begin(st), 0);
    assert_int_equal(
        cp_store_deployment_insert(st, id, m.sha256, "index.js", &m, 1, "t", &dep, &ver), 0);
    for (int i = 0; i < 300; i++) {
        json_t *payload = json_pack("{s:i}", "i", i);
        assert_int_equal(cp_store_log_append(st, "env.put", "big", payload, NULL), 0);
        assert_int_equal(cp_store_audit_append(st, "t", "test", "env.set", "big", payload), 0);
        json_decref(payload);
    }
    assert_int_equal(cp_store_commit(st), 0);
    json_t *d1 = NULL;
    assert_int_equal(cp_store_dump(st, &d1), 0);
    cp_service_free(f->svc);
    f->svc = NULL;

    snprintf(sqlite, sizeof sqlite, "sqlite:%s", f->db);
    assert_int_equal(cp_migrate_run(sqlite, url, NULL), 0);
    snprintf(back, sizeof back, "sqlite:%s/back.db", f->root);
    assert_int_equal(cp_migrate_run(url, back, NULL), 0);
    json_t *d2 = dump_of(back + 7);
    assert_json_equal(d1, d2);
    /* the code reads back whole from etcd */
    assert_int_equal(cp_store_open(url, false, &st, NULL), 0);
    char *data = NULL;
    size_t got = 0;
    assert_int_equal(cp_store_blob_get(st, m.sha256, &data, &got), 0);
    assert_int_equal(got, len);
    assert_memory_equal(data, raw, len);
    int64_t seq = 0;
    assert_int_equal(cp_store_log_seq(st, &seq), 0);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(st, seq - 150, 1000, &log), 0);
    assert_int_equal(json_array_size(log), 150);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(log, 0), "seq")), seq - 149);
    json_decref(log);
    cp_store_free(st);
    nano_free(data);
    nano_free(raw);
    json_decref(d1);
    json_decref(d2);
}

static const struct CMUnitTest migrate_tests[] = {
    FX_TEST(migrate_round_trip_sqlite_etcd_sqlite),
    FX_TEST(migrate_refuses_what_it_cannot_do),
    FX_TEST(migrate_interrupted_etcd_load_is_marked),
    FX_TEST(migrate_big_store_goes_in_batches),
};

const unit_group unit_cp_migrate = UNIT_GROUP("migrate", migrate_tests);
