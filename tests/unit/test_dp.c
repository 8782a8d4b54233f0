/* Unit tests for nano-dp's serving layer (nano_dp): command-line parsing, and the watcher of
 * nano.json and its module files. The HTTP server's are in test_http.c. */
#define _GNU_SOURCE /* memmem */
#include "unit.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "control/file_source.h"
#include "egress_node.h"
#include "http1.h"
#include "options.h"
#include "server_int.h"

/* --- options ------------------------------------------------------------------------------ */

static int parse(dp_options *o, nano_error *err, int argc, const char **argv)
{
    return dp_options_parse(o, argc, (char **)argv, err);
}

static void options_defaults(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {"nano-dp", "dir/worker.mjs"};
    assert_int_equal(parse(&o, &err, 2, argv), 0);
    assert_string_equal(o.app_path, "dir/worker.mjs");
    assert_string_equal(o.app_name, "worker");
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8787);
    assert_int_equal(o.drain_timeout_ms, 30000);
    assert_int_equal(o.max_head_size, 65536);
    assert_int_equal(o.write_timeout_ms, 30000);
    assert_int_equal(o.pool_size, 1); /* one app: one spare isolate per thread */
    dp_options_fini(&o);
    const char *many[] = {"nano-dp", "--config", "nano.json"};
    assert_int_equal(parse(&o, &err, 3, many), 0);
    assert_int_equal(o.pool_size, 2);
    dp_options_fini(&o);
    const char *set[] = {"nano-dp", "--isolate-pool", "3", "app.js"};
    assert_int_equal(parse(&o, &err, 4, set), 0);
    assert_int_equal(o.pool_size, 3);
    dp_options_fini(&o);
    const char *none[] = {"nano-dp", "app.js", "--isolate-pool", "0"};
    assert_int_equal(parse(&o, &err, 4, none), 0);
    assert_int_equal(o.pool_size, 0);
    dp_options_fini(&o);
}

static void options_all_flags(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {
        "nano-dp",    "--port",          "0",     "--var",       "A=1",   "--var=B=2",
        "app.js",     "--env-file",      "x.env", "--name",      "api",   "--drain-timeout",
        "1500ms",     "--max-body-size", "1MiB",  "--log-level", "debug", "--listen",
        "[::1]:9000", "--write-timeout", "5s"};
    assert_int_equal(parse(&o, &err, 21, argv), 0);
    assert_int_equal(o.write_timeout_ms, 5000);
    assert_int_equal(o.n_vars, 2);
    assert_string_equal(o.vars[1], "B=2");
    assert_int_equal(o.n_env_files, 1);
    assert_string_equal(o.app_name, "api");
    assert_int_equal(o.drain_timeout_ms, 1500);
    assert_int_equal(o.max_body_size, 1 << 20);
    assert_int_equal(o.log_level, NANO_LOG_DEBUG);
    assert_string_equal(o.host, "::1");
    assert_int_equal(o.port, 9000);
    dp_options_fini(&o);
}

static void expect_usage_error(int argc, const char **argv, const char *needle)
{
    dp_options o;
    nano_error err = {0};
    assert_int_equal(parse(&o, &err, argc, argv), NANO_EINVAL);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n')); /* one line */
    dp_options_fini(&o);
}

static void options_errors(void **state)
{
    (void)state;
    expect_usage_error(1, (const char *[]){"nano-dp"}, "missing APP.js");
    expect_usage_error(3, (const char *[]){"nano-dp", "a.js", "b.js"}, "unexpected argument");
    expect_usage_error(3, (const char *[]){"nano-dp", "a.js", "--bogus"}, "unknown option");
    expect_usage_error(3, (const char *[]){"nano-dp", "a.js", "--port"}, "needs a value");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--port", "99999"}, "not a port");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--drain-timeout", "301"},
                       "at most 300s");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--drain-timeout", "soon"},
                       "not a duration");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--max-head-size", "0"},
                       "not a size");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--listen", "nocolon"}, "HOST:PORT");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--log-level", "loud"},
                       "--log-level");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--write-timeout", "0"}, "above 0");
}

/* Would fetch() from an app without its own policy be allowed to addr:port? why: the reason. */
static bool node_allows(const dp_options *o, const char *addr, int port, char *why, size_t cap)
{
    struct sockaddr_storage ss;
    assert_int_equal(nano_egress_sockaddr(addr, (unsigned)port, &ss), 0);
    why[0] = '\0';
    return nano_egress_check(o->egress, NULL, NULL, (struct sockaddr *)&ss, why, cap);
}

static void options_egress_flags(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    char why[200];
    /* a single APP.js: no policy at all without the flags... */
    const char *plain[] = {"nano-dp", "app.js"};
    assert_int_equal(parse(&o, &err, 2, plain), 0);
    assert_int_equal(dp_egress_node_build(&o, &err), 0);
    assert_null(o.egress);
    dp_options_fini(&o);
    /* ...and only the flags' rules with them (no defaults) */
    const char *argv[] = {"nano-dp",
                          "app.js",
                          "--egress-deny",
                          "192.0.2.0/24,db.internal:5432",
                          "--egress-deny=10.0.0.0/8",
                          "--egress-allow",
                          "10.1.0.0/16"};
    assert_int_equal(parse(&o, &err, 7, argv), 0);
    assert_int_equal(dp_egress_node_build(&o, &err), 0);
    assert_non_null(o.egress);
    assert_false(node_allows(&o, "192.0.2.9", 80, why, sizeof why));
    assert_string_equal(why, "192.0.2.9 is denied by the node's egress policy (192.0.2.0/24)");
    assert_false(node_allows(&o, "10.1.0.1", 80, why, sizeof why)); /* deny wins */
    assert_true(node_allows(&o, "127.0.0.1", 9901, why, sizeof why));
    dp_options_fini(&o);
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--egress-allow", "10.0.0.0/33"},
                       "--egress-allow: \"10.0.0.0/33\" is not an address, CIDR or hostname");
    expect_usage_error(4, (const char *[]){"nano-dp", "a.js", "--egress-deny", "a.com,"},
                       "--egress-deny: empty entry");
    assert_non_null(strstr(dp_options_usage(DP_MODE_SERVE), "--egress-allow LIST"));
}

static void options_egress_multi_tenant_defaults(void **state)
{
    (void)state;
    char dir[] = "/tmp/nano-egress-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/nano.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"egress\": {\"allow\": [\"127.0.0.1:6379\"], \"deny\": [\"203.0.113.0/24\"]},"
          " \"apps\": []}",
          f);
    fclose(f);
    dp_options o;
    nano_error err = {0};
    char why[200];
    const char *argv[] = {"nano-dp",      "--config",      path,          "--status-listen",
                          "0.0.0.0:9911", "--egress-deny", "198.51.100.7"};
    assert_int_equal(parse(&o, &err, 7, argv), 0);
    assert_int_equal(dp_egress_node_build(&o, &err), 0);
    /* the file's rules, the flags' rules, the defaults */
    assert_true(node_allows(&o, "127.0.0.1", 6379, why, sizeof why));
    assert_false(node_allows(&o, "203.0.113.5", 443, why, sizeof why));
    assert_false(node_allows(&o, "198.51.100.7", 443, why, sizeof why));
    assert_false(node_allows(&o, "169.254.169.254", 80, why, sizeof why));
    assert_string_equal(why, "169.254.169.254:80 is denied by default (link-local)");
    assert_false(node_allows(&o, "::ffff:127.0.0.1", 8080, why, sizeof why));
    assert_true(node_allows(&o, "93.184.216.34", 443, why, sizeof why));
    /* the status port on 0.0.0.0: this host's addresses with that port */
    assert_false(node_allows(&o, "127.0.0.1", 9911, why, sizeof why));
    assert_string_equal(why, "127.0.0.1:9911 is denied by default (this node's own endpoint)");
    dp_options_fini(&o);

    /* --control-plane: nanocp's PUB and RPC ports (RPC defaulting to PUB + 1) */
    const char *cp[] = {"nano-dp", "--control-plane", "tcp://192.0.2.10:7072", "--status-listen",
                        "off"};
    assert_int_equal(parse(&o, &err, 5, cp), 0);
    assert_int_equal(dp_egress_node_build(&o, &err), 0);
    assert_false(node_allows(&o, "192.0.2.10", 7072, why, sizeof why));
    assert_string_equal(why, "192.0.2.10:7072 is denied by default (this node's own endpoint)");
    assert_false(node_allows(&o, "192.0.2.10", 7073, why, sizeof why));
    assert_true(node_allows(&o, "192.0.2.10", 443, why, sizeof why));
    assert_false(node_allows(&o, "127.0.0.1", 80, why, sizeof why));
    dp_options_fini(&o);

    /* a bad top-level egress is an error naming the file and the entry */
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"egress\": {\"deny\": [\"10.0.0.0/33\"]}, \"apps\": []}", f);
    fclose(f);
    const char *bad[] = {"nano-dp", "--config", path};
    assert_int_equal(parse(&o, &err, 3, bad), 0);
    assert_int_equal(dp_egress_node_build(&o, &err), NANO_EINVAL);
    assert_non_null(strstr(err.message, "nano.json: egress.deny[0]: \"10.0.0.0/33\""));
    assert_null(o.egress);
    dp_options_fini(&o);
    unlink(path);
    rmdir(dir);
}

static void options_help_and_version(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    assert_int_equal(parse(&o, &err, 2, (const char *[]){"nano-dp", "--help"}), 0);
    assert_true(o.show_help);
    dp_options_fini(&o);
    assert_int_equal(parse(&o, &err, 2, (const char *[]){"nano-dp", "--version"}), 0);
    assert_true(o.show_version);
    dp_options_fini(&o);
    /* Every flag the parser knows is documented in --help. */
    const char *flags[] = {
        "--port",         "--host",          "--listen",        "--var",           "--env-file",
        "--name",         "--drain-timeout", "--max-head-size", "--max-body-size", "--head-timeout",
        "--idle-timeout", "--write-timeout", "--log-level",     "--version"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        assert_non_null(strstr(dp_options_usage(DP_MODE_SERVE), flags[i]));
}

static void options_check_mode(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {
        "nano-dp",           "check",  "--json", "--cpu-limit", "1500", "--node-compat",
        "--memory-limit=64", "--name", "api",    "a.js",        "b.js"};
    assert_int_equal(parse(&o, &err, 11, argv), 0);
    assert_int_equal(o.mode, DP_MODE_CHECK);
    assert_true(o.check_json);
    assert_true(o.node_compat);
    assert_int_equal(o.cpu_limit_ms, 1500);
    assert_int_equal(o.memory_limit_mb, 64);
    assert_string_equal(o.app_name, "api");
    assert_int_equal(o.n_files, 2);
    assert_string_equal(o.files[1], "b.js");
    dp_options_fini(&o);
    assert_int_equal(parse(&o, &err, 3, (const char *[]){"nano-dp", "check", "x/app.js"}), 0);
    assert_false(o.check_json);
    assert_string_equal(o.app_name, "app");
    dp_options_fini(&o);
    expect_usage_error(2, (const char *[]){"nano-dp", "check"}, "no files given");
    expect_usage_error(4, (const char *[]){"nano-dp", "check", "--port", "1"}, "unknown option");
    expect_usage_error(3, (const char *[]){"nano-dp", "check", "--cpu-limit"}, "needs a value");
    assert_non_null(strstr(dp_options_usage(DP_MODE_CHECK), "--cpu-limit"));
    assert_non_null(strstr(dp_options_usage(DP_MODE_SERVE), "nano-dp check"));
}

/* --- file_source ------------------------------------------------------------------------- */

typedef struct fs_fixture {
    uv_loop_t loop;
    uv_timer_t timeout;
    char dir[64];
    char config[128];
    int n_calls;
    char trigger[16];
} fs_fixture;

static void on_fs_changed(void *ud, const char *trigger)
{
    fs_fixture *f = ud;
    f->n_calls++;
    snprintf(f->trigger, sizeof f->trigger, "%s", trigger);
    uv_stop(&f->loop);
}

static void on_fs_timeout(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop until the source calls back or ms pass; returns the calls so far. */
static int fs_run(fs_fixture *f, uint64_t ms)
{
    uv_timer_start(&f->timeout, on_fs_timeout, ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&f->timeout);
    return f->n_calls;
}

/* Replaces dir/name by renaming a new file over it, as editors do. */
static void fs_write(const fs_fixture *f, const char *name, const char *text)
{
    char path[256], tmp[264];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(rename(tmp, path), 0);
}

/* A sealed config of one app whose code came from dir/name. */
static nano_config *fs_config(const fs_fixture *f, const char *name)
{
    nano_config *cfg = nano_config_new(1);
    nano_app_config app;
    nano_error err = {0};
    nano_app_config_init(&app);
    app.spec.name = nano_xstrdup("a");
    app.spec.hostnames = nano_xcalloc(1, sizeof *app.spec.hostnames);
    app.spec.hostnames[0] = nano_xstrdup("a.test");
    app.spec.n_hostnames = 1;
    app.code_files = nano_xcalloc(1, sizeof *app.code_files);
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    app.code_files[0] = nano_xstrdup(path);
    app.n_code_files = 1;
    assert_int_equal(nano_config_add_app(cfg, &app, &err), 0);
    assert_int_equal(nano_config_seal(cfg, &err), 0);
    return cfg;
}

static void fs_setup(fs_fixture *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/nano-unit-fsXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->config, sizeof f->config, "%s/nano.json", f->dir);
    fs_write(f, "nano.json", "{}");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->timeout);
}

static void fs_teardown(fs_fixture *f, dp_file_source *fs)
{
    dp_file_source_stop(fs);
    uv_close((uv_handle_t *)&f->timeout, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed, memory freed */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

static void file_source_module_edits_are_one_debounced_reload(void **state)
{
    (void)state;
    fs_fixture f;
    fs_setup(&f);
    char sub[96];
    snprintf(sub, sizeof sub, "%s/sub", f.dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    fs_write(&f, "sub/m.js", "1");
    nano_error err = {0};
    dp_file_source *fs = dp_file_source_start(&f.loop, f.config, on_fs_changed, &f, &err);
    assert_non_null(fs);
    nano_config *cfg = fs_config(&f, "sub/m.js");
    const nano_config *cfgs[] = {cfg};
    dp_file_source_watch(fs, cfgs, 1);
    /* A burst of writes to a module: one call, "module". */
    fs_write(&f, "sub/m.js", "2");
    fs_write(&f, "sub/m.js", "3");
    fs_write(&f, "sub/m.js", "4");
    assert_int_equal(fs_run(&f, 5000), 1);
    assert_string_equal(f.trigger, "module");
    assert_int_equal(fs_run(&f, 300), 1);
    /* nano.json with it: "file". */
    fs_write(&f, "sub/m.js", "5");
    fs_write(&f, "nano.json", "{ }");
    assert_int_equal(fs_run(&f, 5000), 2);
    assert_string_equal(f.trigger, "file");
    /* Other names in a watched directory: nothing. */
    fs_write(&f, "sub/.m.js.swp", "x");
    fs_write(&f, "other.json", "x");
    assert_int_equal(fs_run(&f, 300), 2);
    /* A reload right after an event covers it: no second call. */
    fs_write(&f, "sub/m.js", "6");
    uv_run(&f.loop, UV_RUN_NOWAIT); /* the event is seen, the debounce runs */
    dp_file_source_watch(fs, cfgs, 1);
    assert_int_equal(fs_run(&f, 300), 2);
    /* The app gone from the config: its module is not watched. */
    dp_file_source_watch(fs, NULL, 0);
    fs_write(&f, "sub/m.js", "7");
    assert_int_equal(fs_run(&f, 300), 2);
    nano_config_unref(cfg);
    fs_teardown(&f, fs);
}

static void file_source_missing_directory_is_waited_for_from_its_parent(void **state)
{
    (void)state;
    fs_fixture f;
    fs_setup(&f);
    nano_error err = {0};
    dp_file_source *fs = dp_file_source_start(&f.loop, f.config, on_fs_changed, &f, &err);
    assert_non_null(fs);
    nano_config *cfg = fs_config(&f, "later/deeper/m.js");
    const nano_config *cfgs[] = {cfg};
    dp_file_source_watch(fs, cfgs, 1);
    char path[128];
    snprintf(path, sizeof path, "%s/later", f.dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(fs_run(&f, 5000), 1);
    dp_file_source_watch(fs, cfgs, 1); /* as after the reload (refused: still missing) */
    snprintf(path, sizeof path, "%s/later/deeper", f.dir);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(fs_run(&f, 5000), 2);
    dp_file_source_watch(fs, cfgs, 1);
    fs_write(&f, "later/deeper/m.js", "1");
    assert_int_equal(fs_run(&f, 5000), 3);
    assert_string_equal(f.trigger, "module");
    nano_config_unref(cfg);
    fs_teardown(&f, fs);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest options[] = {
        cmocka_unit_test(options_defaults),
        cmocka_unit_test(options_all_flags),
        cmocka_unit_test(options_errors),
        cmocka_unit_test(options_help_and_version),
        cmocka_unit_test(options_egress_flags),
        cmocka_unit_test(options_egress_multi_tenant_defaults),
        cmocka_unit_test(options_check_mode),
    };
    static const struct CMUnitTest file_source[] = {
        cmocka_unit_test(file_source_module_edits_are_one_debounced_reload),
        cmocka_unit_test(file_source_missing_directory_is_waited_for_from_its_parent),
    };
    const unit_group groups[] = {
        UNIT_GROUP("options", options),
        UNIT_GROUP("file_source", file_source),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
