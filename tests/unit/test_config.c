/* Unit tests for shared/config: routing, refcounts, validation when adding and sealing apps,
 * the nano.json loader (from files in a temp dir), and the comparisons across snapshots. */
#define _GNU_SOURCE
#include "unit.h"

#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "env.h"
#include "error.h"

/* --- helpers -------------------------------------------------------------------------------- */

static char **split(const char *list, size_t *n)
{
    *n = 0;
    char **out = nano_xcalloc(16, sizeof *out);
    if (list == NULL)
        return out;
    const char *p = list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        out[(*n)++] = nano_xstrndup(p, len);
        p += len + (comma != NULL);
    }
    return out;
}

/* An app with comma-separated hostnames (or NULL), a prefix (or NULL), no code. */
static void mk_app(nano_app_config *app, const char *name, const char *hosts, const char *prefix,
                   bool is_default)
{
    nano_app_config_init(app);
    app->spec.name = nano_xstrdup(name);
    app->spec.hostnames = split(hosts, &app->spec.n_hostnames);
    app->spec.path_prefix = prefix ? nano_xstrdup(prefix) : NULL;
    app->spec.is_default = is_default;
}

static void add_ok(nano_config *cfg, const char *name, const char *hosts, const char *prefix,
                   bool is_default)
{
    nano_app_config app;
    nano_error err = {0};
    mk_app(&app, name, hosts, prefix, is_default);
    int rc = nano_config_add_app(cfg, &app, &err);
    if (rc != 0)
        fail_msg("add %s: %s", name, err.message);
    assert_null(app.spec.name); /* taken: zeroed */
}

/* Adding must fail with a message containing needle; the app stays the caller's. */
static void add_fails(nano_config *cfg, nano_app_config *app, int code, const char *needle)
{
    nano_error err = {0};
    int rc = nano_config_add_app(cfg, app, &err);
    if (rc == 0)
        fail_msg("adding %s succeeded; expected: %s", app->spec.name ? app->spec.name : "?",
                 needle);
    assert_int_equal(rc, code);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n'));
    nano_app_config_fini(app);
}

static void add_bad(nano_config *cfg, const char *name, const char *hosts, const char *prefix,
                    bool is_default, const char *needle)
{
    nano_app_config app;
    mk_app(&app, name, hosts, prefix, is_default);
    add_fails(cfg, &app, NANO_EINVAL, needle);
}

static void seal_ok(nano_config *cfg)
{
    nano_error err = {0};
    if (nano_config_seal(cfg, &err) != 0)
        fail_msg("seal: %s", err.message);
}

static long route(const nano_config *cfg, const char *host, const char *path)
{
    return nano_config_route(cfg, host, host ? strlen(host) : 0, path, path ? strlen(path) : 0);
}

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

/* --- routing -------------------------------------------------------------------------------- */

enum { R_API, R_API_V2, R_WILD, R_DEEP, R_FALLBACK, R_BLOG, R_DOCS };

static nano_config *routing_fixture(bool with_default)
{
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "api", "api.example.com", NULL, false);
    add_ok(cfg, "api-v2", "api.example.com", "/v2", false);
    add_ok(cfg, "wild", "*.example.com", NULL, false);
    add_ok(cfg, "deep", "*.b.example.com", NULL, false);
    if (with_default)
        add_ok(cfg, "fallback", NULL, NULL, true);
    else
        add_ok(cfg, "fallback", "fallback.test", NULL, false);
    add_ok(cfg, "blog", "example.com", "/blog", false);
    add_ok(cfg, "docs", "docs.example.com", "/a/b", false);
    seal_ok(cfg);
    return cfg;
}

static void route_exact_host_and_longest_prefix(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(true);
    assert_int_equal(route(cfg, "api.example.com", "/"), R_API);
    assert_int_equal(route(cfg, "api.example.com", "/v2"), R_API_V2);
    assert_int_equal(route(cfg, "api.example.com", "/v2/users"), R_API_V2);
    assert_int_equal(route(cfg, "api.example.com", "/v2?x=1"), R_API_V2);
    assert_int_equal(route(cfg, "api.example.com", "/v2x"), R_API); /* whole segments only */
    assert_int_equal(route(cfg, "api.example.com", "/V2"), R_API);  /* paths are exact */
    assert_int_equal(route(cfg, "example.com", "/blog/post"), R_BLOG);
    assert_int_equal(route(cfg, "docs.example.com", "/a/b/c"), R_DOCS);
    nano_config_unref(cfg);
}

static void route_exact_beats_wildcard_longest_wildcard_wins(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(true);
    assert_int_equal(route(cfg, "x.example.com", "/"), R_WILD);
    assert_int_equal(route(cfg, "x.y.example.com", "/"), R_WILD); /* one or more labels */
    assert_int_equal(route(cfg, "a.b.example.com", "/"), R_DEEP);
    assert_int_equal(route(cfg, "z.a.b.example.com", "/"), R_DEEP);
    assert_int_equal(route(cfg, "b.example.com", "/"), R_WILD); /* *.b needs a label before */
    assert_int_equal(route(cfg, "api.example.com", "/"), R_API);
    nano_config_unref(cfg);
}

static void route_falls_through_to_wildcard_then_default(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(true);
    /* docs.example.com only claims /a/b: other paths go to the next candidate. */
    assert_int_equal(route(cfg, "docs.example.com", "/a"), R_WILD);
    assert_int_equal(route(cfg, "example.com", "/"), R_FALLBACK); /* *.example.com needs a label */
    assert_int_equal(route(cfg, "unknown.org", "/x"), R_FALLBACK);
    assert_int_equal(route(cfg, "", "/"), R_FALLBACK);
    assert_int_equal(route(cfg, NULL, NULL), R_FALLBACK);
    nano_config_unref(cfg);
}

static void route_ignores_case_port_and_trailing_dot(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(false);
    assert_int_equal(route(cfg, "API.Example.COM", "/v2"), R_API_V2);
    assert_int_equal(route(cfg, "api.example.com:8080", "/v2"), R_API_V2);
    assert_int_equal(route(cfg, "api.example.com.", "/"), R_API);
    assert_int_equal(route(cfg, "Api.Example.Com.:443", "/"), R_API);
    assert_int_equal(route(cfg, "X.A.B.EXAMPLE.COM:1", "/"), R_DEEP);
    /* The host is only the given bytes: a longer buffer does not leak into the lookup. */
    assert_int_equal(nano_config_route(cfg, "api.example.comXYZ", 15, "/v2/q", 3), R_API_V2);
    nano_config_unref(cfg);
}

static void route_unknown_host_without_default_is_minus_one(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(false);
    assert_int_equal(route(cfg, "unknown.org", "/"), -1);
    assert_int_equal(route(cfg, "example.com", "/"), -1);
    assert_int_equal(route(cfg, "example.com", "/blogs"), -1);
    assert_int_equal(route(cfg, "[::1]:8080", "/"), -1);
    assert_int_equal(route(cfg, "", "/"), -1);
    assert_int_equal(route(cfg, "fallback.test", "/"), R_FALLBACK);
    assert_int_equal(route(NULL, "fallback.test", "/"), -1);
    nano_config_unref(cfg);
}

static void route_before_seal_is_minus_one(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "a", "a.test", NULL, true);
    assert_int_equal(route(cfg, "a.test", "/"), -1);
    seal_ok(cfg);
    assert_int_equal(route(cfg, "a.test", "/"), 0);
    nano_config_unref(cfg);
}

static void route_default_app_keeps_its_prefix(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "site", "site.test", NULL, false);
    add_ok(cfg, "fb", NULL, "/x", true);
    seal_ok(cfg);
    assert_int_equal(route(cfg, "other.test", "/x/1"), 1);
    assert_int_equal(route(cfg, "other.test", "/y"), -1);
    nano_config_unref(cfg);
}

static void route_many_hosts_each_found(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    char name[32], host[64];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "app-%d", i);
        snprintf(host, sizeof host, "h%d.example.org,*.w%d.example.net", i, i);
        add_ok(cfg, name, host, NULL, false);
    }
    seal_ok(cfg);
    for (int i = 0; i < 300; i++) {
        snprintf(host, sizeof host, "H%d.example.org", i);
        assert_int_equal(route(cfg, host, "/"), i);
        snprintf(host, sizeof host, "x.w%d.example.net", i);
        assert_int_equal(route(cfg, host, "/"), i);
    }
    assert_int_equal(route(cfg, "h300.example.org", "/"), -1);
    size_t index = 0;
    assert_non_null(nano_config_find(cfg, "app-123", &index));
    assert_int_equal(index, 123);
    assert_null(nano_config_find(cfg, "app-300", NULL));
    nano_config_unref(cfg);
}

/* --- refcount and accessors ------------------------------------------------------------------ */

static void *ref_churn(void *arg)
{
    nano_config *cfg = arg;
    for (int i = 0; i < 10000; i++) {
        nano_config *mine = nano_config_ref(cfg);
        assert_ptr_equal(mine, cfg);
        if (nano_config_version(mine) != 42)
            return (void *)1;
        nano_config_unref(mine);
    }
    nano_config_unref(cfg); /* the reference the main thread gave this thread */
    return NULL;
}

static void refcount_threads_drop_last_reference_anywhere(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(42);
    add_ok(cfg, "a", "a.test", NULL, false);
    seal_ok(cfg);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, ref_churn, nano_config_ref(cfg)), 0);
    nano_config_unref(cfg); /* the creator's: a worker thread frees it (valgrind checks) */
    for (int i = 0; i < 4; i++) {
        void *res;
        assert_int_equal(pthread_join(t[i], &res), 0);
        assert_null(res);
    }
}

static void refcount_null_and_accessors(void **state)
{
    (void)state;
    assert_null(nano_config_ref(NULL));
    nano_config_unref(NULL);
    nano_config *cfg = nano_config_new(9);
    add_ok(cfg, "b", "b.test", NULL, false);
    add_ok(cfg, "a", "a.test", NULL, false);
    assert_int_equal(nano_config_version(cfg), 9);
    assert_int_equal(nano_config_n_apps(cfg), 2);
    assert_string_equal(nano_config_app(cfg, 0)->spec.name, "b");
    assert_null(nano_config_app(cfg, 2));
    size_t index = 99;
    assert_non_null(nano_config_find(cfg, "a", &index)); /* before seal: a scan */
    assert_int_equal(index, 1);
    seal_ok(cfg);
    assert_non_null(nano_config_find(cfg, "a", &index)); /* after: the sorted index */
    assert_int_equal(index, 1);
    assert_non_null(nano_config_find(cfg, "b", NULL));
    assert_null(nano_config_find(cfg, "c", &index));
    assert_ptr_equal(nano_config_ref(cfg), cfg);
    nano_config_unref(cfg);
    nano_config_unref(cfg);
}

/* --- validation ----------------------------------------------------------------------------- */

static void validate_app_names(void **state)
{
    (void)state;
    assert_true(nano_app_name_valid("a"));
    assert_true(nano_app_name_valid("0-api-2"));
    char name[80];
    memset(name, 'a', 63);
    name[63] = '\0';
    assert_true(nano_app_name_valid(name));
    name[63] = 'a';
    name[64] = '\0';
    assert_false(nano_app_name_valid(name));
    assert_false(nano_app_name_valid(""));
    assert_false(nano_app_name_valid(NULL));
    assert_false(nano_app_name_valid("-api"));
    assert_false(nano_app_name_valid("Api"));
    assert_false(nano_app_name_valid("a_b"));
    assert_false(nano_app_name_valid("a.b"));

    nano_config *cfg = nano_config_new(1);
    add_bad(cfg, "Bad_Name", "x.test", NULL, false, "app name \"Bad_Name\" is invalid");
    add_ok(cfg, "api", "api.test", NULL, false);
    add_bad(cfg, "api", "other.test", NULL, false, "app api: another app already has this name");
    nano_config_unref(cfg);
}

static void validate_hostnames(void **state)
{
    (void)state;
    const char *good[] = {"example.com", "a.b-c.d", "localhost", "*.example.com", "*.com",
                          "EXAMPLE.com", "example.com.", "127.0.0.1", "xn--bcher-kva.de"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!nano_hostname_valid(good[i]))
            fail_msg("%s should be valid", good[i]);
    char long_label[80];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".com");
    const char *bad[] = {"", "*", "*.", "a..b", ".a", "-a.com", "a-.com", "a_b.com", "a b",
                         "a.*.com", "**.com", "*example.com", "a.com..", "a:80", long_label,
                         "api.example.com/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (nano_hostname_valid(bad[i]))
            fail_msg("%s should be invalid", bad[i]);
    nano_config *cfg = nano_config_new(1);
    add_bad(cfg, "a", "ok.test,bad_host.test", NULL, false,
            "app a: invalid hostname \"bad_host.test\"");
    nano_config_unref(cfg);
}

static void validate_path_prefixes(void **state)
{
    (void)state;
    assert_true(nano_path_prefix_valid("/api"));
    assert_true(nano_path_prefix_valid("/api/v1"));
    assert_true(nano_path_prefix_valid("/%7Euser"));
    const char *bad[] = {"", "/", "api", "/api/", "//api", "/a//b", "/a?b", "/a#b", "/a b",
                         "/caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (nano_path_prefix_valid(bad[i]))
            fail_msg("%s should be invalid", bad[i]);
    assert_false(nano_path_prefix_valid(NULL));
    nano_config *cfg = nano_config_new(1);
    add_bad(cfg, "a", "a.test", "/api/", false, "app a: invalid path_prefix \"/api/\"");
    nano_config_unref(cfg);
}

static void validate_hostname_and_prefix_claimed_once(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "web", "example.com,*.example.com", NULL, false);
    add_ok(cfg, "api", "example.com", "/api", false); /* same host, another prefix */
    add_bad(cfg, "dup", "Example.COM.", NULL, false,
            "app dup: hostname example.com (no path_prefix) is already claimed by app web");
    add_bad(cfg, "dup", "x.test,EXAMPLE.com", "/api", false,
            "app dup: hostname example.com with path_prefix /api is already claimed by app api");
    add_bad(cfg, "dup", "*.example.com", NULL, false, "already claimed by app web");
    add_bad(cfg, "twice", "a.test,A.test", NULL, false, "app twice: hostname a.test");
    add_ok(cfg, "twice", "a.test,b.test", NULL, false); /* the failures claimed nothing */
    nano_config_unref(cfg);
}

static void validate_one_default_app(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "first", NULL, NULL, true);
    add_bad(cfg, "second", "s.test", NULL, true,
            "app second: app first is already the default app");
    add_ok(cfg, "second", "s.test", NULL, false);
    nano_config_unref(cfg);
}

static void validate_limits(void **state)
{
    (void)state;
    nano_limits l = nano_limits_defaults();
    nano_error err = {0};
    assert_int_equal(nano_limits_check(&l, &err), 0);
    l.memory_mb = 8;
    assert_int_equal(nano_limits_check(&l, &err), NANO_ERANGE);
    assert_string_equal(err.message, "memory_mb: 8 is out of range (16 .. 8192)");
    l = nano_limits_defaults();
    l.drain_timeout_ms = 301 * 1000;
    assert_int_equal(nano_limits_check(&l, &err), NANO_ERANGE);
    assert_string_equal(err.message, "drain_timeout: 301 s is out of range (1 ms .. 300 s)");
    l = nano_limits_defaults();
    l.max_concurrent = 0;
    assert_int_equal(nano_limits_check(&l, &err), NANO_ERANGE);

    nano_config *cfg = nano_config_new(1);
    nano_app_config app;
    mk_app(&app, "lim", "l.test", NULL, false);
    app.spec.limits.cpu_ms = 60001;
    nano_error e2 = {0};
    assert_int_equal(nano_config_add_app(cfg, &app, &e2), NANO_ERANGE);
    assert_string_equal(e2.message, "app lim: limits.cpu_ms: 60001 is out of range (1 .. 60000)");
    assert_non_null(app.spec.name); /* not taken on failure */
    nano_app_config_fini(&app);
    nano_config_unref(cfg);
}

static void validate_required_env_lists_every_missing_name(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    nano_app_config app;
    nano_error err = {0};
    mk_app(&app, "api", "api.test", NULL, false);
    app.spec.required_env = split("DB_URL,PRESENT,TOKEN", &app.spec.n_required_env);
    assert_int_equal(nano_env_set(&app.env, "PRESENT", "", 0, false, &err), 0);
    assert_int_equal(nano_app_config_check_required_env(&app, &err), NANO_EINVAL);
    assert_string_equal(err.message, "app api: required env missing: DB_URL, TOKEN");
    assert_int_equal(nano_config_add_app(cfg, &app, &err), 0); /* checked at seal */
    assert_int_equal(nano_config_seal(cfg, &err), NANO_EINVAL);
    assert_string_equal(err.message, "app api: required env missing: DB_URL, TOKEN");
    assert_string_equal(err.id, "required_env_missing");
    nano_config_unref(cfg);

    cfg = nano_config_new(1);
    mk_app(&app, "api", "api.test", NULL, false);
    app.spec.required_env = split("NOT-A-NAME", &app.spec.n_required_env);
    add_fails(cfg, &app, NANO_EINVAL, "required_env name \"NOT-A-NAME\" is invalid");
    nano_config_unref(cfg);
}

static void validate_sealed_snapshot_refuses_changes(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "a", "a.test", NULL, false);
    seal_ok(cfg);
    nano_app_config app;
    mk_app(&app, "b", "b.test", NULL, false);
    add_fails(cfg, &app, NANO_ESTATE, "sealed");
    nano_error err = {0};
    assert_int_equal(nano_config_seal(cfg, &err), NANO_ESTATE);
    nano_config_unref(cfg);
}

static void validate_add_normalizes_hostnames(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "a", "API.Example.com.,*.WILD.test", NULL, false);
    const nano_app_config *a = nano_config_app(cfg, 0);
    assert_string_equal(a->spec.hostnames[0], "api.example.com");
    assert_string_equal(a->spec.hostnames[1], "*.wild.test");
    nano_config_unref(cfg);
}

/* --- nano.json ------------------------------------------------------------------------------ */

#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

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
    assert_string_equal(api->code_sha256, SHA256_ABC);
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

    assert_int_equal(route(cfg, "api.example.com", "/v1/x"), 0);
    assert_int_equal(route(cfg, "api.example.com", "/"), 2); /* falls to *.example.com */
    assert_int_equal(route(cfg, "www.example.com", "/"), 2);
    assert_int_equal(route(cfg, "nope.test", "/"), 1);
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
    write_file(dir, "nano.json",
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
    assert_string_equal(nano_config_app(cfg, 0)->code_sha256, SHA256_ABC);
    nano_config_unref(cfg);

    /* Paths in messages read as written: no "././" from joining "." and "./x". */
    write_file(dir, "bad.json",
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
             "%s: apps[0].path: cannot read module %s/nope.js: No such file or directory",
             abs_json, dir);
    assert_string_equal(err.message, want_msg);

    assert_int_equal(chdir(dir), 0);
    rc = nano_config_load_json("missing.json", 1, &cfg, &err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, NANO_ENOENT);
    assert_string_equal(err.message, "missing.json: cannot read: No such file or directory");
    rm_tree(dir);
}

#define APP(extra) "{\"apps\": [{\"name\": \"api\", \"hostname\": \"api.test\", \"path\": \"main.js\"" extra "}]}"

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
    load_fails(APP(", \"default\": \"yes\""), ": apps[0].default: must be true or false, not a string");
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
    load_fails("{\"apps\": [" "{\"name\": \"a\", \"hostname\": \"x.test\", \"path\": \"main.js\"},"
               "{\"name\": \"a\", \"hostname\": \"y.test\", \"path\": \"main.js\"}]}",
               ": apps[1]: app a: another app already has this name");
    load_fails("{\"apps\": [" "{\"name\": \"a\", \"hostname\": \"x.test\", \"path\": \"main.js\"},"
               "{\"name\": \"b\", \"hostname\": \"X.test\", \"path\": \"main.js\"}]}",
               ": apps[1]: app b: hostname x.test (no path_prefix) is already claimed by app a");
    load_fails("{\"apps\": [" "{\"name\": \"a\", \"default\": true, \"path\": \"main.js\"},"
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

    obj = json_pack("{s:i, s:s, s:f, s:s}", "cpu_ms", 10, "drain_timeout", "1500ms",
                    "wall_time", 2.5, "max_head", "2KiB");
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
    load_fails(APP(", \"secrets\": {\"K\": {}}"),
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
    secret_not_in_message(APP(", \"secrets\": {\"K\": \"s3cr\\qet\"}"), "");    /* bad escape */
    secret_not_in_message(APP(", \"secrets\": {\"K\": \"s3cr\tet\"}"), "");     /* control char */
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
    write_file(dir, "m.js", "import { a } from './lib/a.js';\nimport './gone.js';\n"
                            "import 'bare';\nexport default { fetch() {} };");
    nano_config *cfg = load_ok(dir, json);
    const nano_app_config *a = nano_config_find(cfg, "a", NULL);
    assert_int_equal(strlen(a->imports_sha256), 64);
    char want[6][PATH_MAX + 32];
    snprintf(want[0], sizeof want[0], "%s/m.js", dir);           /* as named */
    snprintf(want[1], sizeof want[1], "%s/m.js", real);          /* resolved */
    snprintf(want[2], sizeof want[2], "%s/lib/a.js", real);      /* an import, resolved */
    snprintf(want[3], sizeof want[3], "%s/gone.js", real);       /* missing: its creation counts */
    snprintf(want[4], sizeof want[4], "%s/lib/../shared.js", real); /* as joined ... */
    snprintf(want[5], sizeof want[5], "%s/shared.js", real);     /* ... and resolved */
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

/* --- comparisons ----------------------------------------------------------------------------- */

static void compare_same_code(void **state)
{
    (void)state;
    nano_app_config a, b;
    nano_app_config_init(&a);
    nano_app_config_init(&b);
    assert_true(nano_app_config_same_code(&a, &b)); /* neither has code */
    strcpy(a.code_sha256, SHA256_ABC);
    strcpy(b.code_sha256, SHA256_ABC);
    a.main_path = nano_xstrdup("/srv/a/main.js");
    assert_false(nano_app_config_same_code(&a, &b));
    b.main_path = nano_xstrdup("/srv/a/main.js");
    assert_true(nano_app_config_same_code(&a, &b));
    b.code_sha256[0] = '0';
    assert_false(nano_app_config_same_code(&a, &b));
    b.code_sha256[0] = 'b';
    strcpy(b.imports_sha256, SHA256_ABC); /* same main module, other imported modules */
    assert_false(nano_app_config_same_code(&a, &b));
    strcpy(a.imports_sha256, SHA256_ABC);
    assert_true(nano_app_config_same_code(&a, &b));
    nano_free(b.main_path);
    b.main_path = nano_xstrdup("/srv/b/main.js"); /* same bytes elsewhere: imports differ */
    assert_false(nano_app_config_same_code(&a, &b));
    nano_app_config_fini(&a);
    nano_app_config_fini(&b);
}

static void compare_env_equal_ignores_order_not_flags(void **state)
{
    (void)state;
    nano_env a, b;
    nano_env_init(&a);
    nano_env_init(&b);
    nano_error err;
    assert_true(nano_env_equal(&a, &b));
    assert_int_equal(nano_env_set(&a, "X", "1", 1, false, &err), 0);
    assert_int_equal(nano_env_set(&a, "Y", "2", 1, true, &err), 0);
    assert_int_equal(nano_env_set_json(&a, "Z", "[1]", 3, &err), 0);
    assert_false(nano_env_equal(&a, &b));
    assert_int_equal(nano_env_set_json(&b, "Z", "[1]", 3, &err), 0);
    assert_int_equal(nano_env_set(&b, "Y", "2", 1, true, &err), 0);
    assert_int_equal(nano_env_set(&b, "X", "1", 1, false, &err), 0);
    assert_true(nano_env_equal(&a, &b));
    assert_true(nano_env_equal(&b, &a));
    assert_int_equal(nano_env_set(&b, "Y", "2", 1, false, &err), 0); /* no longer secret */
    assert_false(nano_env_equal(&a, &b));
    assert_int_equal(nano_env_set(&b, "Y", "2", 1, true, &err), 0);
    assert_int_equal(nano_env_set(&b, "Z", "[1]", 3, false, &err), 0); /* a string now */
    assert_false(nano_env_equal(&a, &b));
    assert_int_equal(nano_env_set_json(&b, "Z", "[1]", 3, &err), 0);
    assert_int_equal(nano_env_set(&b, "X", "12", 1, false, &err), 0); /* same len, prefix */
    assert_true(nano_env_equal(&a, &b));
    assert_int_equal(nano_env_set(&b, "X", "2", 1, false, &err), 0);
    assert_false(nano_env_equal(&a, &b));
    assert_int_equal(nano_env_set(&b, "X", "1", 1, false, &err), 0);
    assert_int_equal(nano_env_set(&b, "W", "1", 1, false, &err), 0);
    assert_false(nano_env_equal(&a, &b));
    nano_env_fini(&a);
    nano_env_fini(&b);
}

static void compare_limits_and_defaults(void **state)
{
    (void)state;
    nano_limits d = nano_limits_defaults();
    assert_int_equal(d.cpu_ms, 50);
    assert_int_equal(d.memory_mb, 128);
    assert_int_equal(d.wall_ms, 30000);
    assert_int_equal(d.drain_timeout_ms, 30000);
    assert_int_equal(d.max_concurrent, 64);
    assert_int_equal(d.max_queued, 256);
    assert_int_equal(d.max_head, 64 * 1024);
    assert_int_equal(d.max_body, 100 * 1024 * 1024);
    assert_int_equal(d.subrequests, 50);
    nano_limits e = d;
    assert_true(nano_limits_equal(&d, &e));
    e.subrequests = 51;
    assert_false(nano_limits_equal(&d, &e));
    e = d;
    e.max_body++;
    assert_false(nano_limits_equal(&d, &e));
}

/* An app with code (source text, its sha256 made up from tag), env GREETING=greeting. */
static void add_coded(nano_config *cfg, const char *name, const char *host, const char *source,
                      char tag, const char *greeting)
{
    nano_app_config app;
    nano_error err = {0};
    mk_app(&app, name, host, NULL, false);
    app.main_path = nano_xstrdup("/srv/main.js");
    app.code = nano_xstrdup(source);
    app.code_len = strlen(source);
    memset(app.code_sha256, tag, 64);
    app.code_sha256[64] = '\0';
    memset(app.imports_sha256, tag, 64);
    app.imports_sha256[64] = '\0';
    app.code_files = nano_xcalloc(1, sizeof *app.code_files);
    app.code_files[0] = nano_xstrdup(source);
    app.n_code_files = 1;
    app.spec.limits.cpu_ms = tag == 'b' ? 70 : 50;
    if (greeting != NULL)
        assert_int_equal(nano_env_set(&app.env, "GREETING", greeting, strlen(greeting), false,
                                      &err), 0);
    if (nano_config_add_app(cfg, &app, &err) != 0)
        fail_msg("add %s: %s", name, err.message);
}

static void compare_keep_code_takes_old_code_and_new_everything_else(void **state)
{
    (void)state;
    nano_error err = {0};
    nano_config *old = nano_config_new(1);
    add_coded(old, "api", "api.test", "v1", 'a', NULL);
    add_coded(old, "web", "web.test", "w1", 'c', NULL);
    assert_int_equal(nano_config_seal(old, &err), 0);
    nano_config *cfg = nano_config_new(2);
    add_coded(cfg, "api", "api.test,api2.test", "broken", 'b', "hi");
    add_coded(cfg, "web", "web.test", "w2", 'd', NULL);
    add_coded(cfg, "new", "new.test", "n1", 'e', NULL);
    assert_int_equal(nano_config_seal(cfg, &err), 0);

    const char *keep[] = {"api", "new"}; /* "new" has no old code: it keeps its own */
    nano_config *kept = NULL;
    assert_int_equal(nano_config_keep_code(cfg, old, keep, 2, &kept, &err), 0);
    assert_int_equal(nano_config_version(kept), 2);
    assert_int_equal(nano_config_n_apps(kept), 3);
    const nano_app_config *api = nano_config_find(kept, "api", NULL);
    assert_non_null(api);
    assert_string_equal(api->code, "v1"); /* the old code */
    assert_int_equal(api->code_len, 2);
    assert_true(nano_app_config_same_code(api, nano_config_find(old, "api", NULL)));
    assert_int_equal(api->imports_sha256[0], 'a');
    assert_int_equal(api->n_code_files, 1); /* the files to watch are the old code's */
    assert_string_equal(api->code_files[0], "v1");
    assert_int_equal(api->spec.n_hostnames, 2); /* the new routing, env and limits */
    assert_string_equal(nano_env_find(&api->env, "GREETING")->value, "hi");
    assert_int_equal(api->spec.limits.cpu_ms, 70);
    assert_string_equal(nano_config_find(kept, "web", NULL)->code, "w2"); /* not named */
    assert_string_equal(nano_config_find(kept, "new", NULL)->code, "n1");
    assert_int_equal(nano_config_route(kept, "api2.test", 9, "/", 1), 0);
    nano_config_unref(kept);
    nano_config_unref(cfg);
    nano_config_unref(old);
}

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
    int rc = nano_app_spec_read_json(bad, flags, &s, "where: ", got_field, sizeof got_field,
                                     &err);
    if (rc != code || strcmp(got_field, field) != 0 || strstr(err.message, needle) == NULL)
        fail_msg("%s: got %d field '%s' message '%s'; expected %d field '%s' with '%s'",
                 spec_text, rc, got_field, err.message, code, field, needle);
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
    assert_int_equal(nano_app_spec_read_json(alias, NANO_APP_SPEC_HOSTNAME_ALIAS, &s, "", NULL,
                                             0, &err),
                     0);
    assert_string_equal(s.hostnames[0], "a.test");
    json_decref(first);
    json_decref(second);
    json_decref(alias);
    nano_app_spec_fini(&s);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest route_tests[] = {
        cmocka_unit_test(route_exact_host_and_longest_prefix),
        cmocka_unit_test(route_exact_beats_wildcard_longest_wildcard_wins),
        cmocka_unit_test(route_falls_through_to_wildcard_then_default),
        cmocka_unit_test(route_ignores_case_port_and_trailing_dot),
        cmocka_unit_test(route_unknown_host_without_default_is_minus_one),
        cmocka_unit_test(route_before_seal_is_minus_one),
        cmocka_unit_test(route_default_app_keeps_its_prefix),
        cmocka_unit_test(route_many_hosts_each_found),
    };
    static const struct CMUnitTest refcount_tests[] = {
        cmocka_unit_test(refcount_threads_drop_last_reference_anywhere),
        cmocka_unit_test(refcount_null_and_accessors),
    };
    static const struct CMUnitTest validate_tests[] = {
        cmocka_unit_test(validate_app_names),
        cmocka_unit_test(validate_hostnames),
        cmocka_unit_test(validate_path_prefixes),
        cmocka_unit_test(validate_hostname_and_prefix_claimed_once),
        cmocka_unit_test(validate_one_default_app),
        cmocka_unit_test(validate_limits),
        cmocka_unit_test(validate_required_env_lists_every_missing_name),
        cmocka_unit_test(validate_sealed_snapshot_refuses_changes),
        cmocka_unit_test(validate_add_normalizes_hostnames),
    };
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
    static const struct CMUnitTest compare_tests[] = {
        cmocka_unit_test(compare_same_code),
        cmocka_unit_test(compare_env_equal_ignores_order_not_flags),
        cmocka_unit_test(compare_limits_and_defaults),
        cmocka_unit_test(compare_keep_code_takes_old_code_and_new_everything_else),
    };
    static const struct CMUnitTest spec_tests[] = {
        cmocka_unit_test(spec_keys_follow_the_table),
        cmocka_unit_test(spec_round_trips_through_json),
        cmocka_unit_test(spec_errors_name_the_field_and_change_nothing),
        cmocka_unit_test(spec_null_clears_and_absent_keeps),
    };
    const unit_group groups[] = {
        UNIT_GROUP("route", route_tests),       UNIT_GROUP("refcount", refcount_tests),
        UNIT_GROUP("validate", validate_tests), UNIT_GROUP("json", json_tests),
        UNIT_GROUP("compare", compare_tests),   UNIT_GROUP("spec", spec_tests),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
