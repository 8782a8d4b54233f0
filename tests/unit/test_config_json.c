/* Unit tests for shared/config's nano.json loader, from files in a temp dir: the json group
 * of unit_config (test_config.c has the runner). */
#define _GNU_SOURCE
#include "config_fixture.h"

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "env.h"

/* --- helpers -------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_dir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/nano-unit-cfgXXXXXX");
    assert_non_null(mkdtemp(buf));
}

static void write_file(const char *dir, const char *name, const char *content)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

/* Writes nano.json (and main.js, "abc") into dir and loads it. */
static int load(const char *dir, const char *json, nano_config **cfg, nano_error *err)
{
    char path[PATH_MAX];
    write_file(dir, "nano.json", json);
    write_file(dir, "main.js", "abc");
    snprintf(path, sizeof path, "%s/nano.json", dir);
    *cfg = NULL;
    memset(err, 0, sizeof *err);
    return nano_config_load_json(path, 7, cfg, err);
}

static nano_config *load_ok(const char *dir, const char *json)
{
    nano_config *cfg;
    nano_error err;
    if (load(dir, json, &cfg, &err) != 0)
        fail_msg("load: %s", err.message);
    return cfg;
}

/* Loading json must fail with a one-line message that contains "nano.json: " + needle. */
static void load_fails(const char *json, const char *needle)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    nano_config *cfg;
    nano_error err;
    int rc = load(dir, json, &cfg, &err);
    rm_tree(dir);
    if (rc == 0) {
        nano_config_unref(cfg);
        fail_msg("loaded; expected an error with: %s\n%s", needle, json);
    }
    assert_null(cfg);
    char want[600];
    snprintf(want, sizeof want, "nano.json%s%s", needle[0] == ':' ? "" : ": ", needle);
    if (strstr(err.message, want) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, want);
    assert_null(strchr(err.message, '\n'));
}

/* --- nano.json ------------------------------------------------------------------------------ */

static void json_full_example_loads(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, "db_pass", "from-file\n");
    setenv("NANO_UNIT_API_KEY", "from-env", 1);
    nano_config *cfg = load_ok(
        dir,
        "{ \"apps\": [\n"
        "  { \"name\": \"api\", \"hostname\": \"API.example.com\", \"path\": \"./main.js\",\n"
        "    \"path_prefix\": \"/v1\", \"node_compat\": true,\n"
        "    \"env\": { \"API_HOST\": \"https://api.example.com\", \"FLAGS\": { \"beta\": true },\n"
        "             \"N\": 42, \"L\": [1, \"x\"], \"NUL\": null, \"EMPTY\": \"\" },\n"
        "    \"secrets\": { \"API_KEY\": { \"fromEnv\": \"NANO_UNIT_API_KEY\" },\n"
        "                 \"DB_PASS\": { \"fromFile\": \"db_pass\" }, \"LIT\": \"s3cr3t\" },\n"
        "    \"required_env\": [\"API_KEY\", \"FLAGS\"],\n"
        "    \"limits\": { \"cpu_ms\": 100, \"memory_mb\": 256, \"wall_time\": \"1m\",\n"
        "                \"drain_timeout\": 1.5, \"max_concurrent\": 8, \"max_queued\": 16,\n"
        "                \"max_head\": \"16KiB\", \"max_body\": 1048576, \"subrequests\": 5 } },\n"
        "  { \"name\": \"fallback\", \"default\": true, \"hostnames\": [], \"path\": \"main.js\" },\n"
        "  { \"name\": \"www\", \"hostnames\": [\"www.example.com\", \"*.example.com\"],\n"
        "    \"path\": \"main.js\" }\n"
        "] }\n");
    unsetenv("NANO_UNIT_API_KEY");
    assert_int_equal(nano_config_version(cfg), 7);
    assert_int_equal(nano_config_n_apps(cfg), 3);
    const nano_app_config *api = nano_config_app(cfg, 0);
    assert_string_equal(api->spec.name, "api");
    assert_string_equal(api->spec.hostnames[0], "api.example.com");
    assert_string_equal(api->spec.path_prefix, "/v1");
    assert_true(api->spec.node_compat);
    assert_false(api->spec.is_default);
    assert_string_equal(api->code, "abc");
    assert_int_equal(api->code_len, 3);
    assert_string_equal(api->code_sha256, CFG_SHA256_ABC);
    char want[PATH_MAX], real[PATH_MAX];
    snprintf(want, sizeof want, "%s/main.js", dir);
    assert_non_null(realpath(want, real));
    assert_string_equal(api->main_path, real);

    const nano_env_entry *e = nano_env_find(&api->env, "API_HOST");
    assert_string_equal(e->value, "https://api.example.com");
    assert_false(e->is_json);
    assert_false(e->is_secret);
    e = nano_env_find(&api->env, "FLAGS");
    assert_string_equal(e->value, "{\"beta\":true}");
    assert_true(e->is_json);
    assert_string_equal(nano_env_find(&api->env, "N")->value, "42");
    assert_string_equal(nano_env_find(&api->env, "L")->value, "[1,\"x\"]");
    assert_string_equal(nano_env_find(&api->env, "NUL")->value, "null");
    assert_true(nano_env_find(&api->env, "NUL")->is_json);
    assert_int_equal(nano_env_find(&api->env, "EMPTY")->value_len, 0);
    e = nano_env_find(&api->env, "API_KEY");
    assert_string_equal(e->value, "from-env");
    assert_true(e->is_secret);
    assert_false(e->is_json);
    e = nano_env_find(&api->env, "DB_PASS");
    assert_string_equal(e->value, "from-file"); /* one trailing newline stripped */
    assert_true(e->is_secret);
    assert_string_equal(nano_env_find(&api->env, "LIT")->value, "s3cr3t");
    assert_int_equal(api->spec.n_required_env, 2);

    assert_int_equal(api->spec.limits.cpu_ms, 100);
    assert_int_equal(api->spec.limits.memory_mb, 256);
    assert_int_equal(api->spec.limits.wall_ms, 60000);
    assert_int_equal(api->spec.limits.drain_timeout_ms, 1500);
    assert_int_equal(api->spec.limits.max_concurrent, 8);
    assert_int_equal(api->spec.limits.max_queued, 16);
    assert_int_equal(api->spec.limits.max_head, 16384);
    assert_int_equal(api->spec.limits.max_body, 1048576);
    assert_int_equal(api->spec.limits.subrequests, 5);

    const nano_app_config *fb = nano_config_app(cfg, 1);
    assert_true(fb->spec.is_default);
    assert_int_equal(fb->spec.n_hostnames, 0);
    nano_limits defaults = nano_limits_defaults();
    assert_true(nano_limits_equal(&fb->spec.limits, &defaults));
    assert_int_equal(fb->env.n_entries, 0);

    assert_int_equal(cfg_route(cfg, "api.example.com", "/v1/x"), 0);
    assert_int_equal(cfg_route(cfg, "api.example.com", "/"), 2); /* falls to *.example.com */
    assert_int_equal(cfg_route(cfg, "www.example.com", "/"), 2);
    assert_int_equal(cfg_route(cfg, "nope.test", "/"), 1);
    nano_config_unref(cfg);
    rm_tree(dir);
}

static void json_secret_file_strips_one_newline_only(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, "two", "v\n\n");
    write_file(dir, "crlf", "w\r\n");
    write_file(dir, "none", "x");
    nano_config *cfg = load_ok(
        dir, "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"main.js\","
             " \"secrets\": {\"TWO\": {\"fromFile\": \"two\"}, \"CRLF\": {\"fromFile\": \"crlf\"},"
             " \"NONE\": {\"fromFile\": \"none\"}}}]}");
    const nano_env *env = &nano_config_app(cfg, 0)->env;
    assert_string_equal(nano_env_find(env, "TWO")->value, "v\n");
    assert_string_equal(nano_env_find(env, "CRLF")->value, "w");
    assert_string_equal(nano_env_find(env, "NONE")->value, "x");
    nano_config_unref(cfg);
    rm_tree(dir);
}

static void json_relative_file_name_and_paths(void **state)
{
    (void)state;
    char dir[64], cwd[PATH_MAX];
    make_dir(dir, sizeof dir);
    assert_non_null(getcwd(cwd, sizeof cwd));
    char sub[96];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(dir, "sub/app.js", "abc");
    write_file(
        dir, "nano.json",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"sub/app.js\"}]}");
    assert_int_equal(chdir(dir), 0);
    nano_config *cfg = NULL;
    nano_error err = {0};
    int rc = nano_config_load_json("nano.json", 1, &cfg, &err);
    assert_int_equal(chdir(cwd), 0);
    if (rc != 0)
        fail_msg("load: %s", err.message);
    char real[PATH_MAX], want[PATH_MAX];
    snprintf(want, sizeof want, "%s/sub/app.js", dir);
    assert_non_null(realpath(want, real));
    assert_string_equal(nano_config_app(cfg, 0)->main_path, real);
    assert_string_equal(nano_config_app(cfg, 0)->code_sha256, CFG_SHA256_ABC);
    nano_config_unref(cfg);

    /* Paths in messages read as written: no "././" from joining "." and "./x". */
    write_file(
        dir, "bad.json",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"./nope.js\"}]}");
    assert_int_equal(chdir(dir), 0);
    rc = nano_config_load_json("bad.json", 1, &cfg, &err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, NANO_ENOENT);
    assert_string_equal(err.message, "bad.json: apps[0].path: cannot read module nope.js: No such "
                                     "file or directory");
    char abs_json[256], want_msg[768];
    snprintf(abs_json, sizeof abs_json, "%s/bad.json", dir);
    assert_int_equal(nano_config_load_json(abs_json, 1, &cfg, &err), NANO_ENOENT);
    snprintf(want_msg, sizeof want_msg,
             "%s: apps[0].path: cannot read module %s/nope.js: No such file or directory", abs_json,
             dir);
    assert_string_equal(err.message, want_msg);

    assert_int_equal(chdir(dir), 0);
    rc = nano_config_load_json("missing.json", 1, &cfg, &err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, NANO_ENOENT);
    assert_string_equal(err.message, "missing.json: cannot read: No such file or directory");
    rm_tree(dir);
}

#define APP(extra)                                                                                 \
    "{\"apps\": [{\"name\": \"api\", \"hostname\": \"api.test\", \"path\": \"main.js\"" extra "}]}"

static void json_syntax_errors_give_line_and_column(void **state)
{
    (void)state;
    load_fails("{\"apps\": [\n  {\"name\": \"a\",,}\n]}", ":2:16: invalid JSON: ");
    load_fails("", ":1:0: invalid JSON: ");
    load_fails("[]", ": top level: must be an object: {\"apps\": [...]}, not an array");
    load_fails("{\"apps\": [], \"apps\": []}", ":1:19: invalid JSON: duplicate object key");
    load_fails("{\"apps\": []} x", ":1:14: invalid JSON: end of file expected");
}

static void json_unknown_keys_are_errors(void **state)
{
    (void)state;
    load_fails("{\"apps\": [], \"appz\": 1}", ": appz: unknown key; expected one of: apps");
    load_fails("{}", ": top level: \"apps\" is required");
    load_fails("{\"apps\": {}}", ": apps: must be an array, not an object");
    load_fails(APP(", \"hostnmae\": \"x\""),
               ": apps[0].hostnmae: unknown key; expected one of: "
               "name, hostname, path, env, secrets, env_files, hostnames, path_prefix,");
    load_fails(APP(", \"limits\": {\"cpu\": 1}"),
               ": apps[0].limits.cpu: unknown key; expected one of: cpu_ms, memory_mb,");
    load_fails(APP(", \"secrets\": {\"K\": {\"fromEnv\": \"X\", \"fromFiel\": \"y\"}}"),
               ": apps[0].secrets.K.fromFiel: unknown key; expected one of: fromEnv, fromFile");
    load_fails(APP(", \"env\": {}, \"a.b c\": 1"), ": apps[0][\"a.b c\"]: unknown key");
}

static void json_app_keys_checked(void **state)
{
    (void)state;
    load_fails("{\"apps\": [{\"hostname\": \"a.test\", \"path\": \"main.js\"}]}",
               ": apps[0]: \"name\" is required");
    load_fails("{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\"}]}",
               ": apps[0]: \"path\" is required");
    load_fails("{\"apps\": [{\"name\": \"Api\", \"hostname\": \"a.test\", \"path\": \"main.js\"}]}",
               ": apps[0].name: \"Api\" is not a valid app name");
    load_fails("{\"apps\": [{\"name\": \"a\", \"path\": \"main.js\"}]}",
               ": apps[0].hostnames: an app needs at least one hostname (\"hostname\" or "
               "\"hostnames\"), or \"default\": true");
    load_fails(APP(", \"hostnames\": [\"b.test\"]"),
               ": apps[0].hostname: use \"hostname\" or \"hostnames\", not both");
    load_fails("{\"apps\": [{\"name\": \"a\", \"hostnames\": [\"b.test\", \"bad_host\"], "
               "\"path\": \"main.js\"}]}",
               ": apps[0].hostnames[1]: \"bad_host\" is not a valid hostname");
    load_fails("{\"apps\": [{\"name\": \"a\", \"hostname\": 5, \"path\": \"main.js\"}]}",
               ": apps[0].hostname: must be a string, not a number");
    load_fails(APP(", \"path_prefix\": \"api\""),
               ": apps[0].path_prefix: \"api\" is not a valid path prefix");
    load_fails(APP(", \"default\": \"yes\""),
               ": apps[0].default: must be true or false, not a string");
    load_fails(APP(", \"node_compat\": 1"), ": apps[0].node_compat: must be true or false");
    load_fails("{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"nope.js\"}]}",
               ": apps[0].path: cannot read module ");
    load_fails("{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \".\"}]}",
               ": apps[0].path: cannot read module ");
    load_fails("{\"apps\": [5]}", ": apps[0]: must be an object, not a number");
}

static void json_conflicts_between_apps(void **state)
{
    (void)state;
    load_fails("{\"apps\": ["
               "{\"name\": \"a\", \"hostname\": \"x.test\", \"path\": \"main.js\"},"
               "{\"name\": \"a\", \"hostname\": \"y.test\", \"path\": \"main.js\"}]}",
               ": apps[1]: app a: another app already has this name");
    load_fails("{\"apps\": ["
               "{\"name\": \"a\", \"hostname\": \"x.test\", \"path\": \"main.js\"},"
               "{\"name\": \"b\", \"hostname\": \"X.test\", \"path\": \"main.js\"}]}",
               ": apps[1]: app b: hostname x.test (no path_prefix) is already claimed by app a");
    load_fails("{\"apps\": ["
               "{\"name\": \"a\", \"default\": true, \"path\": \"main.js\"},"
               "{\"name\": \"b\", \"default\": true, \"path\": \"main.js\"}]}",
               ": apps[1]: app b: app a is already the default app");
}

static void json_limits_overrides_and_bad_values(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    nano_config *cfg = load_ok(dir, APP(", \"limits\": {\"drain_timeout\": \"300s\", "
                                        "\"wall_time\": 2, \"max_body\": \"2g\", "
                                        "\"max_head\": 1024, \"memory_mb\": 16}"));
    const nano_limits *l = &nano_config_app(cfg, 0)->spec.limits;
    assert_int_equal(l->drain_timeout_ms, 300000);
    assert_int_equal(l->wall_ms, 2000);
    assert_int_equal(l->max_body, 2ull << 30);
    assert_int_equal(l->max_head, 1024);
    assert_int_equal(l->memory_mb, 16);
    assert_int_equal(l->cpu_ms, 50); /* untouched keys keep their defaults */
    nano_config_unref(cfg);
    rm_tree(dir);

    load_fails(APP(", \"limits\": {\"cpu_ms\": 0}"),
               ": apps[0].limits.cpu_ms: 0 is out of range (1 .. 60000)");
    load_fails(APP(", \"limits\": {\"cpu_ms\": 60001}"),
               ": apps[0].limits.cpu_ms: 60001 is out of range (1 .. 60000)");
    load_fails(APP(", \"limits\": {\"cpu_ms\": -5}"),
               ": apps[0].limits.cpu_ms: must be a whole number above 0");
    load_fails(APP(", \"limits\": {\"cpu_ms\": 1.5}"),
               ": apps[0].limits.cpu_ms: must be a whole number above 0");
    load_fails(APP(", \"limits\": {\"cpu_ms\": \"50\"}"),
               ": apps[0].limits.cpu_ms: must be a whole number above 0");
    load_fails(APP(", \"limits\": {\"memory_mb\": 8}"),
               ": apps[0].limits.memory_mb: 8 is out of range (16 .. 8192)");
    load_fails(APP(", \"limits\": {\"memory_mb\": 8193}"),
               ": apps[0].limits.memory_mb: 8193 is out of range (16 .. 8192)");
}

static void json_limits_bad_durations_and_sizes(void **state)
{
    (void)state;
    load_fails(APP(", \"limits\": {\"drain_timeout\": \"301s\"}"),
               ": apps[0].limits.drain_timeout: 301 s is out of range (1 ms .. 300 s)");
    load_fails(APP(", \"limits\": {\"drain_timeout\": 0}"),
               ": apps[0].limits.drain_timeout: 0 ms is out of range (1 ms .. 300 s)");
    load_fails(APP(", \"limits\": {\"wall_time\": \"soon\"}"),
               ": apps[0].limits.wall_time: \"soon\" is not a duration");
    load_fails(APP(", \"limits\": {\"wall_time\": true}"),
               ": apps[0].limits.wall_time: must be a number of seconds above 0");
    load_fails(APP(", \"limits\": {\"wall_time\": \"99999999999999999999h\"}"),
               ": apps[0].limits.wall_time: 18446744073709551615 ms is out of range");
    load_fails(APP(", \"limits\": {\"max_body\": \"10 MB\"}"),
               ": apps[0].limits.max_body: \"10 MB\" is not a size");
    load_fails(APP(", \"limits\": {\"max_head\": 512}"),
               ": apps[0].limits.max_head: 512 bytes is out of range (1 KiB .. 1 MiB)");
    load_fails(APP(", \"limits\": {\"max_head\": 1.5}"),
               ": apps[0].limits.max_head: must be a whole number of bytes above 0");
    load_fails(APP(", \"limits\": {\"max_queued\": 0}"),
               ": apps[0].limits.max_queued: 0 is out of range (1 .. 100000)");
    load_fails(APP(", \"limits\": 5"), ": apps[0].limits: must be an object, not a number");
}

/* The shared limits reader (nanocp's admin API uses it too): prefix, key at fault, no partial
 * writes, and nano_limits_to_json reads back to the same values. */
static void json_limits_object_reader_and_writer(void **state)
{
    (void)state;
    nano_limits l = nano_limits_defaults();
    nano_error err = {0};
    const char *key = "unset";
    json_t *obj = json_pack("{s:i, s:s, s:i}", "cpu_ms", 10, "wall_time", "soon", "max_body", 5);
    assert_int_equal(nano_limits_from_json(obj, &l, "limits.", &key, &err), NANO_EINVAL);
    assert_string_equal(key, "wall_time");
    assert_non_null(strstr(err.message, "limits.wall_time: \"soon\" is not a duration"));
    assert_int_equal(l.cpu_ms, 50); /* nothing written on error */
    json_decref(obj);

    obj = json_pack("{s:i}", "cpu_msx", 1);
    assert_int_equal(nano_limits_from_json(obj, &l, NULL, &key, &err), NANO_EINVAL);
    assert_string_equal(key, "cpu_msx");
    assert_string_equal(err.id, "config_unknown_key");
    assert_non_null(strstr(err.message, "cpu_msx: unknown key; expected one of: cpu_ms,"));
    json_decref(obj);

    obj = json_pack("{s:i}", "memory_mb", 9000);
    assert_int_equal(nano_limits_from_json(obj, &l, "x.limits.", &key, &err), NANO_ERANGE);
    assert_string_equal(key, "memory_mb");
    assert_string_equal(err.message, "x.limits.memory_mb: 9000 is out of range (16 .. 8192)");
    json_decref(obj);

    obj = json_integer(3);
    key = "unset";
    assert_int_equal(nano_limits_from_json(obj, &l, "limits.", &key, &err), NANO_EINVAL);
    assert_null(key);
    assert_string_equal(err.message, "limits: must be an object, not a number");
    json_decref(obj);

    obj = json_pack("{s:i, s:s, s:f, s:s}", "cpu_ms", 10, "drain_timeout", "1500ms", "wall_time",
                    2.5, "max_head", "2KiB");
    assert_int_equal(nano_limits_from_json(obj, &l, "limits.", &key, &err), 0);
    json_decref(obj);
    assert_int_equal(l.cpu_ms, 10);
    assert_int_equal(l.drain_timeout_ms, 1500);
    assert_int_equal(l.wall_ms, 2500);
    assert_int_equal(l.max_head, 2048);

    json_t *out = nano_limits_to_json(&l);
    assert_string_equal(json_string_value(json_object_get(out, "drain_timeout")), "1500ms");
    assert_string_equal(json_string_value(json_object_get(out, "wall_time")), "2500ms");
    assert_int_equal(json_integer_value(json_object_get(out, "max_head")), 2048);
    assert_int_equal(json_object_size(out), 9);
    nano_limits back = nano_limits_defaults();
    assert_int_equal(nano_limits_from_json(out, &back, NULL, NULL, &err), 0);
    assert_true(nano_limits_equal(&l, &back));
    json_decref(out);
    nano_limits d = nano_limits_defaults();
    out = nano_limits_to_json(&d);
    assert_string_equal(json_string_value(json_object_get(out, "wall_time")), "30s");
    json_decref(out);
}

static void json_env_values_and_limits(void **state)
{
    (void)state;
    char big[6100];
    char json[7000];
    memset(big, 'v', 6000);
    big[6000] = '\0';
    snprintf(json, sizeof json,
             "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"main.js\"},"
             "{\"name\": \"b\", \"hostname\": \"b.test\", \"path\": \"main.js\","
             " \"env\": {\"OK\": \"1\", \"TOKEN\": \"%s\"}}]}",
             big);
    load_fails(json, ": apps[1].env.TOKEN: value is 6000 bytes; the limit is 5120");
    /* A JSON value counts by its compact text: 5119 bytes of string plus two quotes. */
    memset(big, 'v', 5119);
    big[5119] = '\0';
    snprintf(json, sizeof json, APP(", \"env\": {\"J\": [\"%s\"]}"), big);
    load_fails(json, ": apps[0].env.J: value is 5123 bytes; the limit is 5120");
    load_fails(APP(", \"env\": {\"9X\": \"v\"}"), ": apps[0].env.9X: invalid env name");
    load_fails(APP(", \"env\": {\"A-B\": \"v\"}"), ": apps[0].env.A-B: invalid env name");
    load_fails(APP(", \"env\": []"), ": apps[0].env: must be an object, not an array");

    nano_buf many = NANO_BUF_INIT;
    nano_buf_append_str(&many, "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", "
                               "\"path\": \"main.js\", \"env\": {");
    for (int i = 0; i < 129; i++)
        nano_buf_appendf(&many, "%s\"V%d\": \"x\"", i ? ", " : "", i);
    nano_buf_append_str(&many, "}}]}");
    load_fails(nano_buf_cstr(&many), ": apps[0].env.V128: too many env entries");
    nano_buf_fini(&many);
}

static const char *env_value(const nano_config *cfg, const char *name)
{
    const nano_env_entry *e = nano_env_find(&nano_config_app(cfg, 0)->env, name);
    return e != NULL ? e->value : NULL;
}

static void json_env_files_layer_in_order_and_env_wins(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, ".env", "A=base\nB=base\nC=base\n");
    write_file(dir, ".env.production", "# prod\nexport B=prod\nC=prod\n");
    nano_config *cfg = load_ok(dir, APP(", \"env_files\": [\".env\", \".env.production\"],"
                                        " \"env\": {\"C\": \"json\"}"));
    assert_string_equal(env_value(cfg, "A"), "base");
    assert_string_equal(env_value(cfg, "B"), "prod");
    assert_string_equal(env_value(cfg, "C"), "json");
    /* Watched with the code's files. */
    const nano_app_config *app = nano_config_app(cfg, 0);
    bool listed = false;
    for (size_t i = 0; i < app->n_code_files; i++)
        listed = listed || strstr(app->code_files[i], ".env.production") != NULL;
    assert_true(listed);
    nano_config_unref(cfg);

    nano_error err;
    assert_int_not_equal(load(dir, APP(", \"env_files\": [\"missing.env\"]"), &cfg, &err), 0);
    assert_non_null(strstr(err.message, "missing.env"));
    write_file(dir, "bad.env", "A=1\nB=\"open\n");
    assert_int_not_equal(load(dir, APP(", \"env_files\": [\"bad.env\"]"), &cfg, &err), 0);
    assert_non_null(strstr(err.message, "bad.env:2"));
    char fifo[PATH_MAX];
    snprintf(fifo, sizeof fifo, "%s/fifo.env", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_not_equal(load(dir, APP(", \"env_files\": [\"fifo.env\"]"), &cfg, &err), 0);
    assert_non_null(strstr(err.message, "not a regular file"));
    /* A fromFile secret that is a FIFO: refused at once, not waited on. */
    assert_int_not_equal(
        load(dir, APP(", \"secrets\": {\"S\": {\"fromFile\": \"fifo.env\"}}"), &cfg, &err), 0);
    assert_non_null(strstr(err.message, "not a regular file"));
    assert_int_not_equal(load(dir, APP(", \"env_files\": \".env\""), &cfg, &err), 0);
    assert_int_not_equal(load(dir, APP(", \"env_files\": [\"\"]"), &cfg, &err), 0);
    unlink(fifo);
}

static void json_secrets_sources_and_errors(void **state)
{
    (void)state;
    unsetenv("NANO_UNIT_UNSET");
    load_fails(APP(", \"secrets\": {\"K\": {\"fromEnv\": \"NANO_UNIT_UNSET\"}}"),
               ": apps[0].secrets.K: fromEnv: the environment variable NANO_UNIT_UNSET is not set");
    load_fails(APP(", \"secrets\": {\"K\": {\"fromFile\": \"no/such/file\"}}"),
               ": apps[0].secrets.K: cannot read fromFile ");
    load_fails(
        APP(", \"secrets\": {\"K\": {}}"),
        ": apps[0].secrets.K: must be a string, {\"fromEnv\": NAME} or {\"fromFile\": PATH}");
    load_fails(APP(", \"secrets\": {\"K\": {\"fromEnv\": \"A\", \"fromFile\": \"b\"}}"),
               ": apps[0].secrets.K: use fromEnv or fromFile, not both");
    load_fails(APP(", \"secrets\": {\"K\": {\"fromEnv\": 1}}"),
               ": apps[0].secrets.K: fromEnv must be the name of an environment variable");
    load_fails(APP(", \"env\": {\"K\": \"v\"}, \"secrets\": {\"K\": \"s\"}"),
               ": apps[0].secrets.K: also set in \"env\"; a name is either a var or a secret");
    load_fails(APP(", \"secrets\": {\"K\": \"s\"}, \"env\": {\"K\": \"v\"}"),
               ": apps[0].secrets.K: also set in \"env\"");
    load_fails(APP(", \"secrets\": {\"bad name\": \"s\"}"),
               ": apps[0].secrets[\"bad name\"]: invalid env name");
}

/* The message must not contain the secret, nor a piece of it. */
static void secret_not_in_message(const char *json, const char *secret)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, "big", secret);
    nano_config *cfg;
    nano_error err;
    int rc = load(dir, json, &cfg, &err);
    rm_tree(dir);
    assert_int_not_equal(rc, 0);
    if (strstr(err.message, "TOPSECRET") != NULL || strstr(err.message, "s3cr") != NULL)
        fail_msg("the secret leaked: %s", err.message);
}

static void json_secret_values_never_in_messages(void **state)
{
    (void)state;
    char big[6000];
    memset(big, 'x', sizeof big);
    memcpy(big, "TOPSECRET", 9);
    big[sizeof big - 1] = '\0';
    char json[7000];
    snprintf(json, sizeof json, APP(", \"secrets\": {\"K\": \"%s\"}"), big);
    secret_not_in_message(json, "");
    secret_not_in_message(APP(", \"secrets\": {\"K\": {\"fromFile\": \"big\"}}"), big);
    secret_not_in_message(APP(", \"secrets\": {\"K\": \"s3cr\\qet\"}"), ""); /* bad escape */
    secret_not_in_message(APP(", \"secrets\": {\"K\": \"s3cr\tet\"}"), "");  /* control char */
    secret_not_in_message(APP(", \"secrets\": {\"K\": \"s3cret\" \"L\": 1}"), ""); /* no comma */
    secret_not_in_message(APP(", \"secrets\": {\"K\": \"s3cret\", \"K\": \"s3cr2\"}"), "");
    secret_not_in_message(APP(", \"secrets\": {\"K\": [\"s3cret\"]}"), "");
    secret_not_in_message(APP(", \"secrets\": {\"K\": 5, \"L\": \"s3cret\"}"), "");
}

static void json_required_env_lists_all_missing(void **state)
{
    (void)state;
    load_fails(APP(", \"env\": {\"HAVE\": \"1\"}, \"secrets\": {\"SECRET\": \"s\"},"
                   " \"required_env\": [\"DB_URL\", \"HAVE\", \"SECRET\", \"TOKEN\"]"),
               ": apps[0]: app api: required env missing: DB_URL, TOKEN");
    load_fails(APP(", \"required_env\": \"DB_URL\""),
               ": apps[0].required_env: must be an array of env names, not a string");
    load_fails(APP(", \"required_env\": [\"OK\", 3]"),
               ": apps[0].required_env[1]: must be an env name, not a number");
    load_fails(APP(", \"required_env\": [\"1X\"]"), ": apps[0].required_env[0]: invalid env name");
    char dir[64];
    make_dir(dir, sizeof dir);
    nano_config *cfg = load_ok(dir, APP(", \"env\": {\"A\": 1}, \"required_env\": [\"A\"]"));
    assert_string_equal(nano_config_app(cfg, 0)->spec.required_env[0], "A");
    nano_config_unref(cfg);
    rm_tree(dir);
}

static void json_egress_of_apps_and_node(void **state)
{
    (void)state;
    load_fails(APP(", \"egress\": {\"allow\": [\"10.0.0.0/8\", \"10.0.0.0/33\"]}"),
               ": apps[0].egress.allow[1]: \"10.0.0.0/33\" is not an address, CIDR or hostname");
    load_fails(APP(", \"egress\": [\"10.0.0.0/8\"]"), ": apps[0].egress: must be an object");
    load_fails(APP(", \"egress\": {\"block\": []}"),
               ": apps[0].egress: unknown key \"block\"; expected allow or deny");
    /* the top-level (node) policy is checked with the apps, so a bad reload is refused */
    load_fails("{\"egress\": {\"deny\": [\"nope/1\"]}, \"apps\": []}",
               ": egress.deny[0]: \"nope/1\" is not an address");

    char dir[64];
    make_dir(dir, sizeof dir);
    nano_config *cfg = load_ok(dir, "{\"egress\": {\"deny\": [\"10.9.0.0/16\"], \"allow\": "
                                    "[\"127.0.0.1:6379\"]}, \"apps\": [{\"name\": \"api\", "
                                    "\"hostname\": \"api.test\", \"path\": \"main.js\", "
                                    "\"egress\": {\"allow\": [\"169.254.169.254\"]}}, "
                                    "{\"name\": \"web\", \"hostname\": \"web.test\", "
                                    "\"path\": \"main.js\"}]}");
    const nano_app_config *api = nano_config_find(cfg, "api", NULL);
    assert_non_null(api->spec.egress);
    assert_null(nano_config_find(cfg, "web", NULL)->spec.egress);
    json_t *j = nano_egress_to_json(api->spec.egress);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, "{\"allow\":[\"169.254.169.254\"]}");
    free(text);
    json_decref(j);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/nano.json", dir);
    nano_egress *node = NULL;
    nano_error err;
    assert_int_equal(nano_config_load_node_egress(path, &node, &err), 0);
    j = nano_egress_to_json(node);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"allow\":[\"127.0.0.1:6379\"],\"deny\":[\"10.9.0.0/16\"]}");
    free(text);
    json_decref(j);
    nano_egress_unref(node);

    /* keep_code carries the new snapshot's egress */
    nano_config *kept = NULL;
    const char *names[] = {"api"};
    assert_int_equal(nano_config_keep_code(cfg, cfg, names, 1, &kept, &err), 0);
    assert_true(
        nano_egress_equal(nano_config_find(kept, "api", NULL)->spec.egress, api->spec.egress));
    nano_config_unref(kept);
    nano_config_unref(cfg);

    /* no top-level egress: NULL; a bad one: the loader's message */
    write_file(dir, "nano.json", "{\"apps\": []}");
    node = (nano_egress *)1;
    assert_int_equal(nano_config_load_node_egress(path, &node, &err), 0);
    assert_null(node);
    write_file(dir, "nano.json", "{\"egress\": {\"allow\": \"x\"}, \"apps\": []}");
    assert_int_equal(nano_config_load_node_egress(path, &node, &err), NANO_EINVAL);
    assert_non_null(strstr(err.message, "nano.json: egress.allow: must be an array of strings"));
    rm_tree(dir);
}

/* The files an app's code came from: main.js imports lib/a.js (which imports ../shared.js)
 * and a missing ./gone.js; an edit to an imported module changes the code's identity. */
static void json_imports_are_part_of_the_code_and_listed_to_watch(void **state)
{
    (void)state;
    char dir[64], sub[96], real[PATH_MAX];
    make_dir(dir, sizeof dir);
    assert_non_null(realpath(dir, real)); /* /tmp may be a symlink */
    snprintf(sub, sizeof sub, "%s/lib", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    write_file(dir, "lib/a.js", "import '../shared.js'; export const a = 1;");
    write_file(dir, "shared.js", "export const s = 1;");
    const char *json = "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\","
                       " \"path\": \"./m.js\"}, {\"name\": \"b\", \"hostname\": \"b.test\","
                       " \"path\": \"./main.js\"}]}";
    write_file(dir, "m.js",
               "import { a } from './lib/a.js';\nimport './gone.js';\n"
               "import 'bare';\nexport default { fetch() {} };");
    nano_config *cfg = load_ok(dir, json);
    const nano_app_config *a = nano_config_find(cfg, "a", NULL);
    assert_int_equal(strlen(a->imports_sha256), 64);
    char want[6][PATH_MAX + 32];
    snprintf(want[0], sizeof want[0], "%s/m.js", dir);      /* as named */
    snprintf(want[1], sizeof want[1], "%s/m.js", real);     /* resolved */
    snprintf(want[2], sizeof want[2], "%s/lib/a.js", real); /* an import, resolved */
    snprintf(want[3], sizeof want[3], "%s/gone.js", real);  /* missing: its creation counts */
    snprintf(want[4], sizeof want[4], "%s/lib/../shared.js", real); /* as joined ... */
    snprintf(want[5], sizeof want[5], "%s/shared.js", real);        /* ... and resolved */
    for (size_t w = 0; w < 6; w++) {
        bool found = false;
        for (size_t i = 0; i < a->n_code_files; i++)
            found = found || strcmp(a->code_files[i], want[w]) == 0;
        if (!found)
            fail_msg("%s is not in code_files", want[w]);
    }
    assert_true(a->n_code_files <= 6);
    /* main.js imports nothing: no imports hash, and its one file. */
    const nano_app_config *b = nano_config_find(cfg, "b", NULL);
    assert_string_equal(b->imports_sha256, "");
    assert_true(b->n_code_files >= 1 && b->n_code_files <= 2);

    /* The same files again: the same code. An imported module edited: not the same. */
    nano_config *again = load_ok(dir, json);
    assert_true(nano_app_config_same_code(a, nano_config_find(again, "a", NULL)));
    write_file(dir, "shared.js", "export const s = 2;");
    nano_config *edited = load_ok(dir, json);
    const nano_app_config *a2 = nano_config_find(edited, "a", NULL);
    assert_string_equal(a2->code_sha256, a->code_sha256); /* the main module is unchanged */
    assert_false(nano_app_config_same_code(a, a2));
    assert_true(nano_app_config_same_code(b, nano_config_find(edited, "b", NULL)));
    /* The missing module appears: not the same either. */
    write_file(dir, "gone.js", "");
    nano_config *created = load_ok(dir, json);
    assert_false(nano_app_config_same_code(a2, nano_config_find(created, "a", NULL)));
    nano_config_unref(created);
    /* Reading an imported module can run out of memory like any other file. */
    for (long n = 1;; n++) {
        nano_config *c2;
        nano_error err;
        nano_alloc_fail_after(n);
        int rc = load(dir, json, &c2, &err);
        long ran = nano_alloc_fail_after(0);
        if (rc == 0) {
            nano_config_unref(c2);
            assert_true(ran < n);
            break;
        }
        assert_int_equal(rc, NANO_ENOMEM);
        assert_true(n < 100);
    }
    nano_config_unref(edited);
    nano_config_unref(again);
    nano_config_unref(cfg);
    rm_tree(dir);
}

static void json_allocation_failures_do_not_leak(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    write_file(dir, "s", "secret\n");
    const char *json = APP(", \"secrets\": {\"S\": {\"fromFile\": \"s\"}}");
    for (long n = 1;; n++) {
        nano_config *cfg;
        nano_error err;
        nano_alloc_fail_after(n);
        int rc = load(dir, json, &cfg, &err);
        long ran = nano_alloc_fail_after(0);
        if (rc == 0) {
            nano_config_unref(cfg);
            assert_true(ran < n); /* else a failed allocation went unnoticed */
            break;                /* the nth never came: every failure point was tried */
        }
        assert_int_equal(rc, NANO_ENOMEM);
        assert_true(n < 100);
    }
    rm_tree(dir);
}

static const struct CMUnitTest json_tests[] = {
    cmocka_unit_test(json_full_example_loads),
    cmocka_unit_test(json_secret_file_strips_one_newline_only),
    cmocka_unit_test(json_relative_file_name_and_paths),
    cmocka_unit_test(json_syntax_errors_give_line_and_column),
    cmocka_unit_test(json_unknown_keys_are_errors),
    cmocka_unit_test(json_app_keys_checked),
    cmocka_unit_test(json_conflicts_between_apps),
    cmocka_unit_test(json_limits_overrides_and_bad_values),
    cmocka_unit_test(json_limits_bad_durations_and_sizes),
    cmocka_unit_test(json_limits_object_reader_and_writer),
    cmocka_unit_test(json_env_values_and_limits),
    cmocka_unit_test(json_env_files_layer_in_order_and_env_wins),
    cmocka_unit_test(json_secrets_sources_and_errors),
    cmocka_unit_test(json_secret_values_never_in_messages),
    cmocka_unit_test(json_required_env_lists_all_missing),
    cmocka_unit_test(json_egress_of_apps_and_node),
    cmocka_unit_test(json_imports_are_part_of_the_code_and_listed_to_watch),
    cmocka_unit_test(json_allocation_failures_do_not_leak),
};

const unit_group unit_config_json = UNIT_GROUP("json", json_tests);
