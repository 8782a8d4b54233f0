/* Unit tests for the app spec's codec (shared/app_spec.c): the spec group of unit_config
 * (test_config.c has the runner). */
#include "config_fixture.h"

#include <string.h>

#include "alloc.h"
#include "buf.h"

/* --- the app spec's codec (app_spec.h) ------------------------------------------------------ */

static json_t *spec_json(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &jerr); /* NULs as msgpack may carry them */
    if (j == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    return j;
}

static void spec_keys_follow_the_table(void **state)
{
    (void)state;
    nano_app_spec s;
    nano_app_spec_init(&s);
    json_t *j = nano_app_spec_to_json(&s);
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        assert_non_null(nano_app_spec_keys[i]);
        assert_string_equal(key, nano_app_spec_keys[i]);
        i++;
    }
    assert_null(nano_app_spec_keys[i]);
    json_decref(j);
    nano_app_spec_fini(&s);
}

static void spec_round_trips_through_json(void **state)
{
    (void)state;
    json_t *in = spec_json("{\"hostnames\": [\"API.test.\", \"*.b.test\"], \"path_prefix\": "
                           "\"/v1\", \"default\": true, \"node_compat\": true, \"required_env\": "
                           "[\"DB_URL\"], \"limits\": {\"cpu_ms\": 20, \"wall_time\": 1.5}, "
                           "\"egress\": {\"allow\": [\"10.0.0.0/8\"]}}");
    nano_app_spec a, b;
    nano_app_spec_init(&a);
    nano_app_spec_init(&b);
    nano_error err;
    assert_int_equal(nano_app_spec_read_json(in, 0, &a, "", NULL, 0, &err), 0);
    assert_string_equal(a.hostnames[0], "api.test"); /* normalized */
    assert_int_equal(a.limits.wall_ms, 1500);
    assert_int_equal(a.limits.memory_mb, nano_limits_defaults().memory_mb); /* kept */
    json_t *out = nano_app_spec_to_json(&a);
    assert_int_equal(nano_app_spec_read_json(out, 0, &b, "", NULL, 0, &err), 0);
    assert_true(nano_app_spec_equal(&a, &b));
    json_t *again = nano_app_spec_to_json(&b);
    assert_true(json_equal(out, again));
    /* A copy is equal and independent; a change is seen. */
    nano_app_spec c;
    nano_app_spec_copy(&c, &a);
    assert_true(nano_app_spec_equal(&a, &c));
    c.node_compat = false;
    assert_false(nano_app_spec_equal(&a, &c));
    /* Carrying the spec by its keys: only those, as they are. */
    json_t *carrier = json_pack("{s:s}", "app", "x");
    json_object_set_new(out, "state", json_string("active"));
    nano_app_spec_json_copy(carrier, out);
    assert_null(json_object_get(carrier, "state"));
    size_t n_keys = 0;
    while (nano_app_spec_keys[n_keys] != NULL)
        n_keys++;
    assert_int_equal(json_object_size(carrier), 1 + n_keys);
    json_decref(carrier);
    nano_app_spec_fini(&c);
    json_decref(again);
    json_decref(out);
    json_decref(in);
    nano_app_spec_fini(&a);
    nano_app_spec_fini(&b);
}

/* Reads spec_text onto a valid spec; must fail with code and field, the message holding needle,
 * and leave the spec as it was. */
static void spec_fails(const char *spec_text, unsigned flags, int code, const char *field,
                       const char *needle)
{
    json_t *base = spec_json("{\"hostnames\": [\"a.test\"], \"limits\": {\"cpu_ms\": 7}}");
    nano_app_spec s;
    nano_app_spec_init(&s);
    nano_error err;
    assert_int_equal(nano_app_spec_read_json(base, 0, &s, "", NULL, 0, &err), 0);
    json_t *bad = spec_json(spec_text);
    char got_field[96] = "?";
    int rc = nano_app_spec_read_json(bad, flags, &s, "where: ", got_field, sizeof got_field, &err);
    if (rc != code || strcmp(got_field, field) != 0 || strstr(err.message, needle) == NULL)
        fail_msg("%s: got %d field '%s' message '%s'; expected %d field '%s' with '%s'", spec_text,
                 rc, got_field, err.message, code, field, needle);
    assert_true(strncmp(err.message, "where: ", 7) == 0);
    /* All or nothing: the spec is as before. */
    assert_int_equal(s.n_hostnames, 1);
    assert_string_equal(s.hostnames[0], "a.test");
    assert_int_equal(s.limits.cpu_ms, 7);
    assert_null(s.egress);
    json_decref(bad);
    json_decref(base);
    nano_app_spec_fini(&s);
}

static void spec_errors_name_the_field_and_change_nothing(void **state)
{
    (void)state;
    spec_fails("{\"hostnames\": \"a.test\"}", 0, NANO_EINVAL, "hostnames", "must be an array");
    spec_fails("{\"hostnames\": [\"b.test\", 7]}", 0, NANO_EINVAL, "hostnames[1]",
               "must be a string, not a number");
    spec_fails("{\"hostnames\": [\"b.test\", \"bad host\"]}", 0, NANO_EINVAL, "hostnames[1]",
               "\"bad host\" is not a valid hostname");
    spec_fails("{\"hostnames\": [\"b.test\", \"B.test.\"]}", 0, NANO_EINVAL, "hostnames[1]",
               "hostname b.test is listed twice");
    spec_fails("{\"hostnames\": [\"b\\u0000c.test\"]}", 0, NANO_EINVAL, "hostnames[0]",
               "is not a valid hostname");
    spec_fails("{\"hostnames\": []}", 0, NANO_EINVAL, "hostnames", "at least one hostname");
    spec_fails("{\"hostname\": \"b.test\", \"hostnames\": [\"c.test\"]}",
               NANO_APP_SPEC_HOSTNAME_ALIAS, NANO_EINVAL, "hostname", "not both");
    spec_fails("{\"path_prefix\": \"/a/\"}", 0, NANO_EINVAL, "path_prefix",
               "not a valid path prefix");
    spec_fails("{\"path_prefix\": 1}", 0, NANO_EINVAL, "path_prefix", "a string or null");
    spec_fails("{\"default\": \"yes\"}", 0, NANO_EINVAL, "default", "true or false");
    spec_fails("{\"node_compat\": null}", 0, NANO_EINVAL, "node_compat", "true or false");
    spec_fails("{\"required_env\": [\"OK\", \"1X\"]}", 0, NANO_EINVAL, "required_env[1]",
               "invalid env name");
    spec_fails("{\"required_env\": [\"OK\", \"OK\"]}", 0, NANO_EINVAL, "required_env[1]",
               "OK is listed twice");
    spec_fails("{\"limits\": {\"cpu_ms\": 0}}", 0, NANO_ERANGE, "limits.cpu_ms",
               "where: limits.cpu_ms: 0 is out of range");
    spec_fails("{\"limits\": {\"cpus\": 1}}", 0, NANO_EINVAL, "limits.cpus", "unknown key");
    spec_fails("{\"egress\": {\"allow\": [\"10.0.0.0/33\"]}}", 0, NANO_EINVAL, "egress",
               "where: egress.allow[0]");
    /* Counts: more hostnames than an app may have. */
    nano_buf many = NANO_BUF_INIT;
    nano_buf_append_str(&many, "{\"hostnames\": [");
    for (int i = 0; i <= NANO_APP_SPEC_MAX_HOSTNAMES; i++)
        nano_buf_appendf(&many, "%s\"h%d.test\"", i ? ", " : "", i);
    nano_buf_append_str(&many, "]}");
    spec_fails(nano_buf_cstr(&many), 0, NANO_ETOOBIG, "hostnames", "at most 100 hostnames");
    nano_buf_fini(&many);
}

static void spec_null_clears_and_absent_keeps(void **state)
{
    (void)state;
    nano_app_spec s;
    nano_app_spec_init(&s);
    nano_error err;
    json_t *first = spec_json("{\"default\": true, \"path_prefix\": \"/x\", \"egress\": "
                              "{\"deny\": [\"10.0.0.1\"]}}");
    assert_int_equal(nano_app_spec_read_json(first, 0, &s, "", NULL, 0, &err), 0);
    assert_non_null(s.egress);
    json_t *second = spec_json("{\"path_prefix\": null, \"egress\": null}");
    assert_int_equal(nano_app_spec_read_json(second, 0, &s, "", NULL, 0, &err), 0);
    assert_null(s.path_prefix);
    assert_null(s.egress);
    assert_true(s.is_default); /* absent: kept */
    /* Without the alias flag, "hostname" is not read (the carrier refuses it as unknown). */
    json_t *alias = spec_json("{\"hostname\": \"a.test\", \"default\": false}");
    assert_int_equal(nano_app_spec_read_json(alias, 0, &s, "", NULL, 0, &err), NANO_EINVAL);
    assert_int_equal(
        nano_app_spec_read_json(alias, NANO_APP_SPEC_HOSTNAME_ALIAS, &s, "", NULL, 0, &err), 0);
    assert_string_equal(s.hostnames[0], "a.test");
    json_decref(first);
    json_decref(second);
    json_decref(alias);
    nano_app_spec_fini(&s);
}

static const struct CMUnitTest spec_tests[] = {
    cmocka_unit_test(spec_keys_follow_the_table),
    cmocka_unit_test(spec_round_trips_through_json),
    cmocka_unit_test(spec_errors_name_the_field_and_change_nothing),
    cmocka_unit_test(spec_null_clears_and_absent_keeps),
};

const unit_group unit_config_spec = UNIT_GROUP("spec", spec_tests);
