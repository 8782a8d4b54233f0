/* Unit tests for shared/config: routing, refcounts, validation when adding and sealing apps,
 * and the comparisons across snapshots. This file has the runner (main) and the route,
 * refcount, validate and compare groups; test_config_json.c has json (the nano.json loader,
 * from files in a temp dir), test_config_spec.c spec (the app spec's codec). */
#include "config_fixture.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "env.h"

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
    assert_int_equal(cfg_route(cfg, "api.example.com", "/"), R_API);
    assert_int_equal(cfg_route(cfg, "api.example.com", "/v2"), R_API_V2);
    assert_int_equal(cfg_route(cfg, "api.example.com", "/v2/users"), R_API_V2);
    assert_int_equal(cfg_route(cfg, "api.example.com", "/v2?x=1"), R_API_V2);
    assert_int_equal(cfg_route(cfg, "api.example.com", "/v2x"), R_API); /* whole segments only */
    assert_int_equal(cfg_route(cfg, "api.example.com", "/V2"), R_API);  /* paths are exact */
    assert_int_equal(cfg_route(cfg, "example.com", "/blog/post"), R_BLOG);
    assert_int_equal(cfg_route(cfg, "docs.example.com", "/a/b/c"), R_DOCS);
    nano_config_unref(cfg);
}

static void route_exact_beats_wildcard_longest_wildcard_wins(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(true);
    assert_int_equal(cfg_route(cfg, "x.example.com", "/"), R_WILD);
    assert_int_equal(cfg_route(cfg, "x.y.example.com", "/"), R_WILD); /* one or more labels */
    assert_int_equal(cfg_route(cfg, "a.b.example.com", "/"), R_DEEP);
    assert_int_equal(cfg_route(cfg, "z.a.b.example.com", "/"), R_DEEP);
    assert_int_equal(cfg_route(cfg, "b.example.com", "/"), R_WILD); /* *.b needs a label before */
    assert_int_equal(cfg_route(cfg, "api.example.com", "/"), R_API);
    nano_config_unref(cfg);
}

static void route_falls_through_to_wildcard_then_default(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(true);
    /* docs.example.com only claims /a/b: other paths go to the next candidate. */
    assert_int_equal(cfg_route(cfg, "docs.example.com", "/a"), R_WILD);
    /* *.example.com needs a label */
    assert_int_equal(cfg_route(cfg, "example.com", "/"), R_FALLBACK);
    assert_int_equal(cfg_route(cfg, "unknown.org", "/x"), R_FALLBACK);
    assert_int_equal(cfg_route(cfg, "", "/"), R_FALLBACK);
    assert_int_equal(cfg_route(cfg, NULL, NULL), R_FALLBACK);
    nano_config_unref(cfg);
}

static void route_ignores_case_port_and_trailing_dot(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(false);
    assert_int_equal(cfg_route(cfg, "API.Example.COM", "/v2"), R_API_V2);
    assert_int_equal(cfg_route(cfg, "api.example.com:8080", "/v2"), R_API_V2);
    assert_int_equal(cfg_route(cfg, "api.example.com.", "/"), R_API);
    assert_int_equal(cfg_route(cfg, "Api.Example.Com.:443", "/"), R_API);
    assert_int_equal(cfg_route(cfg, "X.A.B.EXAMPLE.COM:1", "/"), R_DEEP);
    /* The host is only the given bytes: a longer buffer does not leak into the lookup. */
    assert_int_equal(nano_config_route(cfg, "api.example.comXYZ", 15, "/v2/q", 3), R_API_V2);
    nano_config_unref(cfg);
}

static void route_unknown_host_without_default_is_minus_one(void **state)
{
    (void)state;
    nano_config *cfg = routing_fixture(false);
    assert_int_equal(cfg_route(cfg, "unknown.org", "/"), -1);
    assert_int_equal(cfg_route(cfg, "example.com", "/"), -1);
    assert_int_equal(cfg_route(cfg, "example.com", "/blogs"), -1);
    assert_int_equal(cfg_route(cfg, "[::1]:8080", "/"), -1);
    assert_int_equal(cfg_route(cfg, "", "/"), -1);
    assert_int_equal(cfg_route(cfg, "fallback.test", "/"), R_FALLBACK);
    assert_int_equal(cfg_route(NULL, "fallback.test", "/"), -1);
    nano_config_unref(cfg);
}

static void route_before_seal_is_minus_one(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "a", "a.test", NULL, true);
    assert_int_equal(cfg_route(cfg, "a.test", "/"), -1);
    seal_ok(cfg);
    assert_int_equal(cfg_route(cfg, "a.test", "/"), 0);
    nano_config_unref(cfg);
}

static void route_default_app_keeps_its_prefix(void **state)
{
    (void)state;
    nano_config *cfg = nano_config_new(1);
    add_ok(cfg, "site", "site.test", NULL, false);
    add_ok(cfg, "fb", NULL, "/x", true);
    seal_ok(cfg);
    assert_int_equal(cfg_route(cfg, "other.test", "/x/1"), 1);
    assert_int_equal(cfg_route(cfg, "other.test", "/y"), -1);
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
        assert_int_equal(cfg_route(cfg, host, "/"), i);
        snprintf(host, sizeof host, "x.w%d.example.net", i);
        assert_int_equal(cfg_route(cfg, host, "/"), i);
    }
    assert_int_equal(cfg_route(cfg, "h300.example.org", "/"), -1);
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
    const char *good[] = {"example.com", "a.b-c.d",      "localhost", "*.example.com",   "*.com",
                          "EXAMPLE.com", "example.com.", "127.0.0.1", "xn--bcher-kva.de"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!nano_hostname_valid(good[i]))
            fail_msg("%s should be valid", good[i]);
    char long_label[80];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".com");
    const char *bad[] = {"",        "*",       "*.",       "a..b",
                         ".a",      "-a.com",  "a-.com",   "a_b.com",
                         "a b",     "a.*.com", "**.com",   "*example.com",
                         "a.com..", "a:80",    long_label, "api.example.com/x"};
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
    const char *bad[] = {"",      "/",    "api",  "/api/", "//api",
                         "/a//b", "/a?b", "/a#b", "/a b",  "/caf\xc3\xa9"};
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

/* --- comparisons ----------------------------------------------------------------------------- */

static void compare_same_code(void **state)
{
    (void)state;
    nano_app_config a, b;
    nano_app_config_init(&a);
    nano_app_config_init(&b);
    assert_true(nano_app_config_same_code(&a, &b)); /* neither has code */
    strcpy(a.code_sha256, CFG_SHA256_ABC);
    strcpy(b.code_sha256, CFG_SHA256_ABC);
    a.main_path = nano_xstrdup("/srv/a/main.js");
    assert_false(nano_app_config_same_code(&a, &b));
    b.main_path = nano_xstrdup("/srv/a/main.js");
    assert_true(nano_app_config_same_code(&a, &b));
    b.code_sha256[0] = '0';
    assert_false(nano_app_config_same_code(&a, &b));
    b.code_sha256[0] = 'b';
    strcpy(b.imports_sha256, CFG_SHA256_ABC); /* same main module, other imported modules */
    assert_false(nano_app_config_same_code(&a, &b));
    strcpy(a.imports_sha256, CFG_SHA256_ABC);
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
        assert_int_equal(
            nano_env_set(&app.env, "GREETING", greeting, strlen(greeting), false, &err), 0);
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
    static const struct CMUnitTest compare_tests[] = {
        cmocka_unit_test(compare_same_code),
        cmocka_unit_test(compare_env_equal_ignores_order_not_flags),
        cmocka_unit_test(compare_limits_and_defaults),
        cmocka_unit_test(compare_keep_code_takes_old_code_and_new_everything_else),
    };
    const unit_group groups[] = {
        UNIT_GROUP("route", route_tests),       UNIT_GROUP("refcount", refcount_tests),
        UNIT_GROUP("validate", validate_tests), unit_config_json,
        UNIT_GROUP("compare", compare_tests),   unit_config_spec,
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
