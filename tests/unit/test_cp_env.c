/* Unit tests for nanocp's env and secrets ops, and what the config log and the audit log
 * record of changes: the env and logs groups of unit_cp (test_cp.c has the runner), each
 * test on a fresh data dir (cp_fixture.c). */
#include "cp_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "alloc.h"
#include "buf.h"
#include "store.h"

/* --- env ------------------------------------------------------------------------------------ */

static void env_patch_get_and_secrets(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    json_t *env = fx_call(f, "env.patch",
                          "{\"name\": \"api\", \"vars\": {\"HOST\": \"h\","
                          " \"FLAGS\": {\"beta\": true}, \"N\": 3}}");
    json_t *vars = json_object_get(env, "vars");
    assert_string_equal(json_string_value(json_object_get(vars, "HOST")), "h");
    assert_true(json_is_true(json_object_get(json_object_get(vars, "FLAGS"), "beta")));
    assert_int_equal(json_integer_value(json_object_get(vars, "N")), 3);
    assert_int_equal(json_array_size(json_object_get(env, "secrets")), 0);
    json_decref(env);
    json_t *s = fx_call(f, "secrets.put",
                        "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"t\"}");
    assert_string_equal(json_string_value(json_object_get(s, "name")), "TOKEN");
    assert_true(json_is_string(json_object_get(s, "updated_at")));
    assert_int_equal(json_object_size(s), 2);
    json_decref(s);
    int64_t seq = fx_config_seq(f);
    env = fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"N\": null, \"GONE\": null}}");
    assert_null(json_object_get(json_object_get(env, "vars"), "N"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(env, "secrets"), 0)),
                        "TOKEN");
    json_decref(env);
    assert_int_equal(fx_config_seq(f), seq + 1); /* N deleted; GONE was absent: nothing */
    json_t *list = fx_call(f, "secrets.list", "{\"name\": \"api\"}");
    json_t *one = json_array_get(json_object_get(list, "secrets"), 0);
    assert_string_equal(json_string_value(json_object_get(one, "name")), "TOKEN");
    assert_true(json_is_string(json_object_get(one, "updated_at")));
    assert_null(json_object_get(one, "value"));
    json_decref(list);
    json_t *del = fx_call(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"TOKEN\"}");
    assert_int_equal(json_object_size(del), 0);
    json_decref(del);
    list = fx_call(f, "secrets.list", "{\"name\": \"api\"}");
    assert_int_equal(json_array_size(json_object_get(list, "secrets")), 0);
    json_decref(list);
    fx_call_fails(f, "env.get", "{\"name\": \"nope\"}", 404, "app_not_found", "name", NULL);
}

static void env_replace_makes_vars_exactly_the_given_ones(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    json_decref(fx_call(f, "env.patch",
                        "{\"name\": \"api\", \"vars\": {\"KEEP\": \"k\","
                        " \"GONE\": 1, \"CHANGED\": \"old\"}}"));
    json_decref(
        fx_call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"t\"}"));
    int64_t seq = fx_config_seq(f);
    json_t *env = fx_call(f, "env.replace",
                          "{\"name\": \"api\", \"vars\": {\"KEEP\": \"k\","
                          " \"CHANGED\": \"new\", \"ADDED\": [1]}}");
    json_t *vars = json_object_get(env, "vars");
    assert_int_equal(json_object_size(vars), 3);
    assert_null(json_object_get(vars, "GONE"));
    assert_string_equal(json_string_value(json_object_get(vars, "CHANGED")), "new");
    assert_string_equal(json_string_value(json_array_get(json_object_get(env, "secrets"), 0)),
                        "TOKEN");
    json_decref(env);
    /* GONE deleted, CHANGED and ADDED put; KEEP unchanged: no entry. Secrets untouched. */
    assert_int_equal(fx_config_seq(f), seq + 3);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq, 10, &log), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")),
                        "env.del");
    json_decref(log);

    /* With secrets: they become exactly those too; a name moves from secret to var. */
    env = fx_call(f, "env.replace",
                  "{\"name\": \"api\", \"vars\": {\"TOKEN\": \"plain\"},"
                  " \"secrets\": {\"KEY\": \"s\"}}");
    assert_int_equal(json_object_size(json_object_get(env, "vars")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(env, "vars"), "TOKEN")),
                        "plain");
    assert_int_equal(json_array_size(json_object_get(env, "secrets")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(env, "secrets"), 0)),
                        "KEY");
    json_decref(env);

    /* Refused whole, nothing changed: */
    seq = fx_config_seq(f);
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"KEY\": 1}}", 409,
                  "name_conflict", "vars.KEY", "is a secret"); /* a secret, secrets not given */
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"A\": null}}", 400,
                  "invalid_field", "vars.A", "leave it out");
    fx_call_fails(f, "env.replace",
                  "{\"name\": \"api\", \"vars\": {\"A\": 1}, \"secrets\": {\"A\": \"x\"}}", 400,
                  "name_conflict", "vars.A", NULL);
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"secrets\": {\"S\": 5}}",
                  400, "invalid_field", "secrets.S", NULL);
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"1X\": 1}}", 400,
                  "invalid_field", "vars.1X", NULL);
    fx_call_fails(f, "env.replace", "{\"name\": \"api\"}", 400, "invalid_field", "vars", NULL);
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"extra\": 1}", 400,
                  "bad_request", "extra", NULL);
    nano_buf big = NANO_BUF_INIT;
    nano_buf_append_str(&big, "{\"name\": \"api\", \"vars\": {");
    for (int i = 0; i < 129; i++)
        nano_buf_appendf(&big, "%s\"V%03d\": %d", i ? ", " : "", i, i);
    nano_buf_append_str(&big, "}}");
    /* + KEY */
    fx_call_fails(f, "env.replace", nano_buf_cstr(&big), 413, "too_large", "vars", "130");
    nano_buf_fini(&big);
    assert_int_equal(fx_config_seq(f), seq);

    /* A deployed app's required names must stay. */
    json_decref(fx_call(f, "apps.update", "{\"name\": \"api\", \"required_env\": [\"KEY\"]}"));
    json_decref(fx_call(f, "apps.deploy",
                        "{\"name\": \"api\", \"main\": \"a.js\", "
                        "\"modules\": {\"a.js\": \"export default {}\"}}"));
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"secrets\": {}}", 409,
                  "required_env_missing", "required_env", "KEY");
    json_decref(fx_call(f, "env.replace", "{\"name\": \"api\", \"vars\": {}}")); /* KEY kept */
}

/* Runs op with args (taken); must fail 400 invalid_field naming field. */
static void call_fails_args(fx *f, const char *op, json_t *args, const char *field,
                            const char *needle)
{
    json_t *result = NULL;
    cp_error err = {0};
    int64_t seq = fx_config_seq(f);
    int rc = cp_service_call(f->svc, &FX_ADMIN, op, args, &result, &err);
    json_decref(args);
    if (rc == 0) {
        json_decref(result);
        fail_msg("%s succeeded; expected invalid_field %s", op, field);
    }
    if (err.status != 400 || strcmp(err.code, "invalid_field") != 0 ||
        strcmp(err.field, field) != 0)
        fail_msg("%s: got %d %s field '%s' (%s); expected 400 invalid_field '%s'", op, err.status,
                 err.code, err.field, err.message, field);
    if (needle != NULL && strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_int_equal(fx_config_seq(f), seq); /* nothing stored, nothing to distribute */
}

static void strings_with_a_nul_or_bad_utf8_are_refused_at_every_op(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    /* A secret value with a NUL: before, accepted, and every snapshot failed after it. */
    call_fails_args(
        f, "secrets.put",
        json_pack("{s:s, s:s, s:s#}", "name", "api", "key", "K", "value", "abcd\0efgh", (int)9),
        "value", "NUL");
    /* A hostname cut at a NUL would have been stored as "a.test". */
    call_fails_args(
        f, "apps.create",
        json_pack("{s:s, s:[s#]}", "name", "evil", "hostnames", "a.test\0.evil", (int)11),
        "hostnames[0]", "NUL");
    /* Deep inside a JSON var, and as a key. */
    json_t *vars = json_object();
    json_object_set_new(vars, "FLAGS", json_pack("{s:[s#]}", "list", "x\0y", (int)3));
    call_fails_args(f, "env.patch", json_pack("{s:s, s:o}", "name", "api", "vars", vars),
                    "vars.FLAGS.list[0]", "NUL");
    vars = json_object();
    json_object_setn_new_nocheck(vars, "A\0B", 3, json_string("v"));
    call_fails_args(f, "env.replace", json_pack("{s:s, s:o}", "name", "api", "vars", vars),
                    "vars.(key)", NULL);
    /* Not UTF-8 (as the binary admin API could send it). */
    call_fails_args(f, "env.patch",
                    json_pack("{s:s, s:{s:o}}", "name", "api", "vars", "V",
                              json_stringn_nocheck("\xff\xfe", 2)),
                    "vars.V", "UTF-8");
    /* An empty secret, which nanoctl already refused. */
    fx_call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K\", \"value\": \"\"}", 400,
                  "invalid_field", "value", "empty");
    fx_call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"secrets\": {\"K\": \"\"}}",
                  400, "invalid_field", "secrets.K", "non-empty");
    /* A NUL inside a module's source is legal JS and is not refused here. */
    json_t *deploy = json_pack("{s:s, s:s, s:{s:s#}}", "name", "api", "main", "a.js", "modules",
                               "a.js", "export default {}; // \0", (int)23);
    json_t *result = NULL;
    cp_error err = {0};
    int rc = cp_service_call(f->svc, &FX_ADMIN, "apps.deploy", deploy, &result, &err);
    json_decref(deploy);
    if (rc != 0)
        assert_string_not_equal(err.field, "modules.a.js");
    json_decref(result);
}

/* --- the config log and the audit log ------------------------------------------------------- */

static void logs_seq_counts_changes_not_reads(void **state)
{
    fx *f = *state;
    assert_int_equal(fx_config_seq(f), 0);
    fx_create_app(f, "api", "api.test");
    assert_int_equal(fx_config_seq(f), 1);
    json_decref(fx_call(f, "apps.list", NULL));
    json_decref(fx_call(f, "env.get", "{\"name\": \"api\"}"));
    assert_int_equal(fx_config_seq(f), 1);
    json_decref(fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": 1, \"B\": \"2\"}}"));
    assert_int_equal(fx_config_seq(f), 3);
    json_decref(fx_call(f, "apps.deploy",
                        "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"1\"}}"));
    assert_int_equal(fx_config_seq(f), 5);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), 0, 100, &log), 0);
    const char *ops[] = {"app.put", "env.put", "env.put", "code.put", "app.put"};
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(log, i);
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(e, "op")), ops[i]);
        assert_string_equal(json_string_value(json_object_get(e, "app")), "api");
    }
    json_t *put = json_object_get(json_array_get(log, 4), "payload");
    assert_int_equal(json_integer_value(json_object_get(put, "version")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(put, "hostnames"), 0)),
                        "api.test");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(put, "limits"), "cpu_ms")),
                     50);
    json_t *code = json_object_get(json_array_get(log, 3), "payload");
    assert_string_equal(json_string_value(json_object_get(code, "main")), "a.js");
    assert_null(json_object_get(code, "source")); /* bytes stay in blobs, fetched by hash */
    json_t *ev = json_object_get(json_array_get(log, 2), "payload");
    assert_string_equal(json_string_value(json_object_get(ev, "name")), "B");
    assert_string_equal(json_string_value(json_object_get(ev, "value")), "2");
    json_decref(log);
}

static void logs_failing_change_appends_nothing(void **state)
{
    fx *f = *state;
    fx_sqlite_only("fails the change with an SQLite trigger");
    fx_create_app(f, "api", "api.test");
    size_t audits = fx_audit_count(f);
    /* A fault after the change itself is written: the config-log append fails. */
    fx_sql(f, "CREATE TRIGGER fail_log BEFORE INSERT ON config_log"
              " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    fx_call_fails(f, "apps.create", "{\"name\": \"www\", \"hostnames\": [\"www.test\"]}", 500,
                  "internal", "", "database error while appending to the config log");
    fx_call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": 1}}", 500, "internal", "",
                  NULL);
    fx_sql(f, "DROP TRIGGER fail_log");
    fx_call_fails(f, "apps.get", "{\"name\": \"www\"}", 404, "app_not_found", "name", NULL);
    json_t *env = fx_call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_object_size(json_object_get(env, "vars")), 0);
    json_decref(env);
    assert_int_equal(fx_config_seq(f), 1);
    assert_int_equal(fx_audit_count(f), audits);
    /* The audit append failing undoes the change and its delta too. */
    fx_sql(f, "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log"
              " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    fx_call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K\", \"value\": \"v\"}", 500,
                  "internal", "", "audit log");
    fx_sql(f, "DROP TRIGGER fail_audit");
    assert_int_equal(fx_config_seq(f), 1);
    json_t *list = fx_call(f, "secrets.list", "{\"name\": \"api\"}");
    assert_int_equal(json_array_size(json_object_get(list, "secrets")), 0);
    json_decref(list);
    /* And the service works on afterwards. */
    fx_create_app(f, "www", "www.test");
    assert_int_equal(fx_config_seq(f), 2);
}

static void logs_audit_names_never_values(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    json_decref(
        fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"HOST\": \"VAR-VALUE-81\"}}"));
    json_decref(fx_call(f, "secrets.put",
                        "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"SECRET-VALUE-82\"}"));
    json_decref(fx_call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"HOST\": null}}"));
    json_decref(fx_call(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"TOKEN\"}"));
    json_t *a = fx_call(f, "audit.list", NULL);
    json_t *entries = json_object_get(a, "entries");
    assert_int_equal(json_array_size(entries), 5);
    json_t *newest = json_array_get(entries, 0);
    assert_string_equal(json_string_value(json_object_get(newest, "op")), "secrets.delete");
    assert_string_equal(json_string_value(json_object_get(newest, "actor")), "admin");
    assert_string_equal(json_string_value(json_object_get(newest, "via")), "test");
    assert_string_equal(json_string_value(json_object_get(newest, "app")), "api");
    json_t *put = json_array_get(entries, 3);
    assert_string_equal(json_string_value(json_object_get(put, "op")), "env.patch");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(put, "detail"), "set"), 0)),
                        "HOST");
    char *dump = json_dumps(a, 0);
    assert_non_null(strstr(dump, "TOKEN"));
    assert_null(strstr(dump, "VAR-VALUE-81"));
    assert_null(strstr(dump, "SECRET-VALUE-82"));
    free(dump);
    /* Paging: before_id and limit. */
    int64_t second = json_integer_value(json_object_get(json_array_get(entries, 1), "id"));
    json_decref(a);
    char args[64];
    snprintf(args, sizeof args, "{\"before_id\": %lld, \"limit\": 2}", (long long)second);
    a = fx_call(f, "audit.list", args);
    entries = json_object_get(a, "entries");
    assert_int_equal(json_array_size(entries), 2);
    assert_true(json_integer_value(json_object_get(json_array_get(entries, 0), "id")) < second);
    json_decref(a);
}

static void logs_secret_delta_is_sealed(void **state)
{
    fx *f = *state;
    fx_create_app(f, "api", "api.test");
    json_decref(fx_call(f, "secrets.put",
                        "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"in-the-log-93\"}"));
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), 1, 10, &log), 0);
    json_t *p = json_object_get(json_array_get(log, 0), "payload");
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")),
                        "secret.put");
    char *dump = json_dumps(p, 0);
    assert_null(strstr(dump, "in-the-log-93"));
    free(dump);
    /* It opens with the master key, bound to the app and name, like the stored one. */
    char keypath[200];
    snprintf(keypath, sizeof keypath, "%s/master.key", f->data);
    size_t klen;
    char *hex = fx_read_all(keypath, &klen);
    hex[64] = '\0';
    cp_master_key k;
    fx_key_of(hex, &k);
    nano_free(hex);
    cp_sealed s = {0};
    unsigned char buf[256];
    int n = EVP_DecodeBlock(buf,
                            (const unsigned char *)json_string_value(json_object_get(p, "nonce")),
                            (int)json_string_length(json_object_get(p, "nonce")));
    assert_true(n >= CP_NONCE_BYTES);
    memcpy(s.nonce, buf, CP_NONCE_BYTES);
    n = EVP_DecodeBlock(buf, (const unsigned char *)json_string_value(json_object_get(p, "tag")),
                        (int)json_string_length(json_object_get(p, "tag")));
    memcpy(s.tag, buf, CP_TAG_BYTES);
    const char *ct = json_string_value(json_object_get(p, "ciphertext"));
    n = EVP_DecodeBlock(buf, (const unsigned char *)ct, (int)strlen(ct));
    s.len = strlen("in-the-log-93"); /* base64 decoding pads to whole blocks */
    s.ciphertext = buf;
    snprintf(s.key_id, sizeof s.key_id, "%s", json_string_value(json_object_get(p, "key_id")));
    assert_string_equal(s.key_id, k.id);
    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(cp_secret_open(&k, "api", "TOKEN", &s, &plain, &len), 0);
    assert_string_equal(plain, "in-the-log-93");
    nano_free(plain);
    json_decref(log);
    /* The stored row is the same sealed value. */
    json_t *app = NULL;
    cp_store *st = cp_service_store(f->svc);
    assert_int_equal(cp_store_app_get(st, "api", &app), 0);
    cp_sealed row = {0};
    assert_int_equal(
        cp_store_secret_get(st, json_integer_value(json_object_get(app, "id")), "TOKEN", &row), 0);
    assert_memory_equal(row.nonce, s.nonce, CP_NONCE_BYTES);
    cp_sealed_fini(&row);
    json_decref(app);
}

static const struct CMUnitTest env_tests[] = {
    FX_TEST(env_patch_get_and_secrets),
    FX_TEST(env_replace_makes_vars_exactly_the_given_ones),
    FX_TEST(strings_with_a_nul_or_bad_utf8_are_refused_at_every_op),
};

static const struct CMUnitTest logs_tests[] = {
    FX_TEST(logs_seq_counts_changes_not_reads),
    FX_TEST(logs_failing_change_appends_nothing),
    FX_TEST(logs_audit_names_never_values),
    FX_TEST(logs_secret_delta_is_sealed),
};

const unit_group unit_cp_env = UNIT_GROUP("env", env_tests);
const unit_group unit_cp_logs = UNIT_GROUP("logs", logs_tests);
