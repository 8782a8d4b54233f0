#include "options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "opt.h"
#include "parse.h"

static const char usage[] =
    "Usage: nano-dp APP.js [options]\n"
    "       nano-dp --config nano.json [options]                 many apps, routed by Host\n"
    "       nano-dp --control-plane tcp://HOST:7072 [options]    managed by nanocp\n"
    "       nano-dp test [--filter TEXT] [--timeout D] FILE.js...   (nano-dp test --help)\n"
    "       nano-dp run [--timeout D] SCRIPT.js...                 (nano-dp run --help)\n"
    "       nano-dp check [--cpu-limit MS] APP.js...               (nano-dp check --help)\n"
    "\n"
    "Runs a Workers-style ES module (export default { fetch(request, env, ctx) }) as an\n"
    "HTTP/1.1 server on V8; with --config, every app of a nano.json file (docs/config.md),\n"
    "each in its own isolates, reloaded live when the file changes or on SIGHUP.\n"
    "\n"
    "Options:\n"
    "  --config FILE         serve the apps of FILE (nano.json) instead of one APP.js\n"
    "  --control-plane URL   take apps, code, env and secrets from nanocp: its PUB URL\n"
    "                        (tcp://HOST:PORT or tls+tcp://HOST:PORT; docs/nano-dp.md);\n"
    "                        URL,URL,...: nanocp replicas, tried in turn (up to 8)\n"
    "  --control-plane-rpc URL  nanocp's REQ/REP URL, one per --control-plane URL\n"
    "                        (default: each one's host, port + 1)\n"
    "  --node NAME           this node's name at nanocp (default: the host name)\n"
    "  --node-token-file F   the node token nanocp expects (default: $NANO_NODE_TOKEN)\n"
    "  --code-dir DIR        keep compiled code in DIR/v8/ across restarts; with\n"
    "                        --control-plane also the deployed code, DIR/<sha256>/<module>\n"
    "                        (default: compiled code in memory only; deployed code in a\n"
    "                        private temporary directory, removed at exit)\n"
    "  --control-plane-ca F  tls+tcp://: CA certificate(s) that signed nanocp's cert\n"
    "  --control-plane-cert F, --control-plane-key F  tls+tcp://: a client certificate\n"
    "  --threads N           worker threads, each with its own listener and isolates\n"
    "                        (default: the CPUs it may run on)\n"
    "  --status-listen H:P   status port: /healthz /readyz /status /metrics\n"
    "                        (default 127.0.0.1:9901; 'off' disables it)\n"
    "  --log-format F        text or json (default text)\n"
    "  --access-log on|off   one log line per request (default on)\n"
    "  --isolate-memory-budget N  memory (V8 heap and ArrayBuffers) all isolates may keep;\n"
    "                        idle ones beyond it are evicted, least recently used\n"
    "                        first (default 0: no limit)\n"
    "  --isolate-pool N      ready isolates each thread keeps for apps' first requests\n"
    "                        (default 2; APP.js: 1; 0: none)\n"
    "  --env NAME            APP.js: also read .env.NAME beside the app (after .env)\n"
    "  --cpu-limit MS        APP.js: CPU time per request in ms (default 30000: a single\n"
    "                        app owns its node; apps of --config default to 50)\n"
    "  --memory-limit MB     APP.js: isolate heap in MiB (default 128)\n"
    "  --port N              port to listen on (default 8787; 0 picks a free one)\n"
    "  --host ADDR           address to listen on (default 127.0.0.1)\n"
    "  --listen HOST:PORT    both at once, e.g. 0.0.0.0:8080 or [::1]:8080\n"
    "  --var NAME=VALUE      an env value for the app (repeatable; wins over --env-file)\n"
    "  --env-file FILE       env values from a dotenv file (repeatable; later files win)\n"
    "  --name NAME           the app's name in logs (default: the module file's name)\n"
    "  --drain-timeout D     how long shutdown waits for in-flight work (default 30s,\n"
    "                        at most 300s); D is 30, 30s, 1500ms or 5m\n"
    "  --max-head-size N     largest request head in bytes (default 64KiB; 431 beyond)\n"
    "  --max-body-size N     largest request body in bytes (default 100MiB; 413 beyond)\n"
    "  --head-timeout D      time allowed to send a request head (default 30s; 408 beyond)\n"
    "  --idle-timeout D      keep-alive connections idle this long are closed, and a\n"
    "                        request body that stops arriving this long is a 408\n"
    "                        (default 60s)\n"
    "  --body-timeout D      grace for a request body before --body-min-rate applies\n"
    "                        (default 20s)\n"
    "  --body-min-rate N     a request body must arrive at N bytes/s on average after\n"
    "                        the grace: the deadline grows 1s per N bytes received\n"
    "                        (default 500; 0: no rate rule). 408 beyond\n"
    "  --write-timeout D     a client that takes none of its response bytes for this long\n"
    "                        is disconnected, its request aborted (default 30s)\n"
    "  --egress-allow LIST   outbound fetch() may connect to these (comma-separated\n"
    "                        addresses, CIDRs or hostnames, each with an optional\n"
    "                        :PORT; repeatable), even where the defaults deny\n"
    "  --egress-deny LIST    outbound fetch() may not connect to these (repeatable;\n"
    "                        wins over every allow). With --config or --control-plane\n"
    "                        apps cannot reach loopback, link-local (169.254.0.0/16,\n"
    "                        cloud metadata), unspecified addresses, the status port\n"
    "                        or nanocp unless allowed; a single APP.js reaches\n"
    "                        anything these flags do not deny (docs/config.md#egress)\n"
    "  --log-level LEVEL     debug, info, warn or error (default info)\n"
    "  -h, --help            show this help\n"
    "  --version             show the version\n"
    "\n"
    "Signals: SIGTERM or SIGINT drains and exits 0 (1 if the drain timed out); a second\n"
    "SIGINT exits at once with status 130.\n"
    "Exit status: 0 ok, 1 runtime failure, 2 bad usage or an app that fails to load.\n";

static const char test_usage[] =
    "Usage: nano-dp test [options] FILE.js...\n"
    "\n"
    "Runs test modules inside the runtime, each file in a fresh isolate. A test module\n"
    "registers tests with test(name, fn) from \"nano:test\" or exports functions named\n"
    "test*; see docs/testing.md. Prints each test as ok/FAIL and ends with\n"
    "`N passed, N failed`.\n"
    "\n"
    "Options:\n"
    "  --filter TEXT         run only tests whose name contains TEXT\n"
    "  --timeout D           time each test may take (default 5s)\n"
    "  --location URL        the global `location` and base URL for relative URLs in\n"
    "                        Request and Response.redirect (as in Deno)\n"
    "  --var NAME=VALUE      an env value, read as `env` from \"nano:test\" (repeatable)\n"
    "  --env-file FILE       env values from a dotenv file (repeatable)\n"
    "  --log-level LEVEL     debug, info, warn or error (default info)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 all passed, 1 a test failed or a file did not load, 2 bad usage.\n";

static const char run_usage[] =
    "Usage: nano-dp run [options] SCRIPT.js...\n"
    "\n"
    "Evaluates classic scripts in order in one global scope (as a worker's importScripts\n"
    "would), then runs timers and promises until nothing is left. console.log goes to\n"
    "stdout, console.warn/error to stderr.\n"
    "\n"
    "Options:\n"
    "  --timeout D           give up after D (exit 1); default: no limit\n"
    "  --location URL        the global `location` and base URL for relative URLs\n"
    "  --log-level LEVEL     debug, info, warn or error (default info)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Exit status: 0 ok, 1 a script threw or the run timed out, 2 bad usage.\n";

static const char check_usage[] =
    "Usage: nano-dp check [options] APP.js...\n"
    "\n"
    "Loads each app module as a worker would before serving it: compiles it and its\n"
    "imports, runs its top level (and top-level await) in a fresh isolate, and looks for\n"
    "`export default { fetch }`. Prints `FILE: ok` or one line saying what is wrong, as\n"
    "FILE:LINE:COLUMN where V8 knows the place. nanocp runs it before it accepts a\n"
    "deployment and nano-dp before a new version of an app becomes active (docs/nano-dp.md).\n"
    "\n"
    "Options:\n"
    "  --cpu-limit MS        CPU time loading may take (default 1000); past it the check\n"
    "                        fails with module_timeout\n"
    "  --memory-limit MB     the isolate's heap limit (default 128)\n"
    "  --node-compat         load as an app with node_compat (process.env)\n"
    "  --env-stdin           the app's env (what the top level sees in process.env), as\n"
    "                        the JSON array shared/check.h describes, on stdin\n"
    "  --name NAME           the app's name in messages (default: the file's name)\n"
    "  --json                print one JSON object per file: {\"file\", \"ok\": true} or\n"
    "                        {\"file\", \"ok\": false, \"error\": {\"code\", \"message\"}}\n"
    "  --log-level LEVEL     debug, info, warn or error (default info; log lines and the\n"
    "                        app's console output go to stderr)\n"
    "  -h, --help            show this help\n"
    "\n"
    "Without --env-stdin the top level sees an empty env. Secret values are masked in\n"
    "the messages.\n"
    "Exit status: 0 every file loads, 1 one does not, 2 bad usage.\n";

const char *dp_options_usage(dp_mode mode)
{
    return mode == DP_MODE_TEST    ? test_usage
           : mode == DP_MODE_RUN   ? run_usage
           : mode == DP_MODE_CHECK ? check_usage
                                   : usage;
}

#define bad(err, ...) nano_error_set((err), NANO_EINVAL, "usage", __VA_ARGS__)

static const char **push(const char **list, size_t *n, const char *item)
{
    list = nano_xrealloc(list, (*n + 1) * sizeof *list);
    list[(*n)++] = item;
    return list;
}

static int parse_listen(dp_options *o, const char *v, nano_error *err)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v)
        return bad(err, "--listen %s: expected HOST:PORT", v);
    const char *h = v;
    size_t hlen = (size_t)(colon - v);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') { /* [::1]:8080 */
        h++;
        hlen -= 2;
    }
    if (nano_parse_port(colon + 1, &o->port) != 0)
        return bad(err, "--listen %s: '%s' is not a port (0-65535)", v, colon + 1);
    nano_free(o->host);
    o->host = nano_xstrndup(h, hlen);
    return 0;
}

static int parse_duration(const char *flag, const char *v, uint64_t *out, nano_error *err)
{
    if (nano_parse_duration_ms(v, out) != 0)
        return bad(err, "%s %s: not a duration (use 30, 30s, 1500ms or 5m)", flag, v);
    return 0;
}

static int parse_size(const char *flag, const char *v, uint64_t *out, nano_error *err)
{
    if (nano_parse_size(v, out) != 0 || *out == 0)
        return bad(err, "%s %s: not a size (use 65536, 64KiB or 100MiB)", flag, v);
    return 0;
}

static char *default_name(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base)
        len = (size_t)(dot - base);
    return nano_xstrndup(base, len);
}

/* Each mode's options. Help and version are everywhere; the rest is listed in help order. */
/* clang-format off */
#define COMMON_FLAGS {"-h", false, 0}, {"--help", false, 0}, {"--version", false, 0}
static const nano_opt serve_flags[] = {
    COMMON_FLAGS,
    {"--port", true, 0}, {"--host", true, 0}, {"--listen", true, 0}, {"--var", true, 0},
    {"--env-file", true, 0}, {"--name", true, 0}, {"--drain-timeout", true, 0},
    {"--max-head-size", true, 0}, {"--max-body-size", true, 0}, {"--head-timeout", true, 0},
    {"--idle-timeout", true, 0}, {"--body-timeout", true, 0}, {"--body-min-rate", true, 0},
    {"--write-timeout", true, 0}, {"--log-level", true, 0}, {"--config", true, 0},
    {"--threads", true, 0}, {"--status-listen", true, 0}, {"--log-format", true, 0},
    {"--access-log", true, 0}, {"--isolate-memory-budget", true, 0}, {"--env", true, 0},
    {"--cpu-limit", true, 0}, {"--memory-limit", true, 0}, {"--isolate-pool", true, 0},
    {"--control-plane", true, 0}, {"--control-plane-rpc", true, 0}, {"--node", true, 0},
    {"--node-token-file", true, 0}, {"--code-dir", true, 0}, {"--control-plane-ca", true, 0},
    {"--control-plane-cert", true, 0}, {"--control-plane-key", true, 0},
    {"--egress-allow", true, 0}, {"--egress-deny", true, 0},
    {NULL, false, 0},
};
static const nano_opt test_flags[] = {
    COMMON_FLAGS,
    {"--filter", true, 0}, {"--timeout", true, 0}, {"--location", true, 0}, {"--var", true, 0},
    {"--env-file", true, 0}, {"--log-level", true, 0},
    {NULL, false, 0},
};
static const nano_opt run_flags[] = {
    COMMON_FLAGS,
    {"--timeout", true, 0}, {"--location", true, 0}, {"--log-level", true, 0},
    {NULL, false, 0},
};
static const nano_opt check_flags[] = {
    COMMON_FLAGS,
    {"--cpu-limit", true, 0}, {"--memory-limit", true, 0}, {"--name", true, 0},
    {"--log-level", true, 0}, {"--json", false, 0}, {"--node-compat", false, 0},
    {"--env-stdin", false, 0},
    {NULL, false, 0},
};
/* clang-format on */

int dp_options_parse(dp_options *o, int argc, char **argv, nano_error *err)
{
    memset(o, 0, sizeof *o);
    o->host = nano_xstrdup("127.0.0.1");
    o->port = 8787;
    o->drain_timeout_ms = 30 * 1000;
    o->max_head_size = 64 * 1024;
    o->max_body_size = 100 * 1024 * 1024;
    o->head_timeout_ms = 30 * 1000;
    o->idle_timeout_ms = 60 * 1000;
    o->body_timeout_ms = 20 * 1000;
    o->body_min_rate = 500;
    o->write_timeout_ms = 30 * 1000;
    o->log_level = NANO_LOG_INFO;
    o->pool_size = 2;
    bool is_pool_set = false;
    const char *name = NULL;
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "test") == 0) {
        o->mode = DP_MODE_TEST;
        o->timeout_ms = 5000;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "run") == 0) {
        o->mode = DP_MODE_RUN;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "check") == 0) {
        o->mode = DP_MODE_CHECK;
        first = 2;
    }
    const char *mode_name = o->mode == DP_MODE_TEST    ? "nano-dp test"
                            : o->mode == DP_MODE_RUN   ? "nano-dp run"
                            : o->mode == DP_MODE_CHECK ? "nano-dp check"
                                                       : "nano-dp";

    const nano_opt *table = o->mode == DP_MODE_TEST    ? test_flags
                            : o->mode == DP_MODE_RUN   ? run_flags
                            : o->mode == DP_MODE_CHECK ? check_flags
                                                       : serve_flags;
    nano_opt_parser p = {table, mode_name, argc, argv, first};
    while (p.i < argc) {
        int k;
        const char *value;
        if (nano_opt_next(&p, &k, &value, err) != 0)
            return NANO_EINVAL;
        if (k == NANO_OPT_ARG && o->mode != DP_MODE_SERVE) {
            o->files = push(o->files, &o->n_files, value);
            continue;
        }
        if (k == NANO_OPT_ARG) {
            if (o->app_path != NULL)
                return bad(err, "unexpected argument '%s' (the app is already %s)", value,
                           o->app_path);
            o->app_path = value;
            continue;
        }
        const char *flag = table[k].name;
        if (strcmp(flag, "-h") == 0 || strcmp(flag, "--help") == 0) {
            o->show_help = true;
            return 0;
        }
        if (strcmp(flag, "--version") == 0) {
            o->show_version = true;
            return 0;
        }
        if (strcmp(flag, "--json") == 0 || strcmp(flag, "--node-compat") == 0 ||
            strcmp(flag, "--env-stdin") == 0) {
            if (flag[2] == 'j')
                o->check_json = true;
            else if (flag[2] == 'n')
                o->node_compat = true;
            else
                o->env_stdin = true;
            continue;
        }
        int rc = 0;
        if (strcmp(flag, "--port") == 0) {
            if (nano_parse_port(value, &o->port) != 0)
                rc = bad(err, "--port %s: not a port (0-65535)", value);
        } else if (strcmp(flag, "--host") == 0) {
            nano_free(o->host);
            o->host = nano_xstrdup(value);
        } else if (strcmp(flag, "--listen") == 0) {
            rc = parse_listen(o, value, err);
        } else if (strcmp(flag, "--var") == 0) {
            o->vars = push(o->vars, &o->n_vars, value);
        } else if (strcmp(flag, "--env-file") == 0) {
            o->env_files = push(o->env_files, &o->n_env_files, value);
        } else if (strcmp(flag, "--name") == 0) {
            name = value;
        } else if (strcmp(flag, "--drain-timeout") == 0) {
            rc = parse_duration(flag, value, &o->drain_timeout_ms, err);
            if (rc == 0 && o->drain_timeout_ms > DP_MAX_DRAIN_TIMEOUT_MS)
                rc = bad(err, "--drain-timeout %s: at most 300s is allowed", value);
        } else if (strcmp(flag, "--max-head-size") == 0) {
            rc = parse_size(flag, value, &o->max_head_size, err);
        } else if (strcmp(flag, "--max-body-size") == 0) {
            rc = parse_size(flag, value, &o->max_body_size, err);
        } else if (strcmp(flag, "--head-timeout") == 0) {
            rc = parse_duration(flag, value, &o->head_timeout_ms, err);
        } else if (strcmp(flag, "--idle-timeout") == 0) {
            rc = parse_duration(flag, value, &o->idle_timeout_ms, err);
        } else if (strcmp(flag, "--body-timeout") == 0) {
            rc = parse_duration(flag, value, &o->body_timeout_ms, err);
            if (rc == 0 && o->body_timeout_ms == 0)
                rc = bad(err,
                         "--body-timeout %s: must be above 0 (--body-min-rate 0 turns the "
                         "rate rule off)",
                         value);
        } else if (strcmp(flag, "--body-min-rate") == 0) {
            if (nano_parse_size(value, &o->body_min_rate) != 0)
                rc = bad(err,
                         "--body-min-rate %s: not a number of bytes per second (use 500, "
                         "1KiB or 0 for none)",
                         value);
        } else if (strcmp(flag, "--write-timeout") == 0) {
            rc = parse_duration(flag, value, &o->write_timeout_ms, err);
            if (rc == 0 && o->write_timeout_ms == 0)
                rc = bad(err, "--write-timeout %s: must be above 0", value);
        } else if (strcmp(flag, "--filter") == 0) {
            o->filter = value;
        } else if (strcmp(flag, "--location") == 0) {
            o->location = value;
        } else if (strcmp(flag, "--timeout") == 0) {
            rc = parse_duration(flag, value, &o->timeout_ms, err);
        } else if (strcmp(flag, "--config") == 0) {
            o->config_path = value;
        } else if (strcmp(flag, "--threads") == 0) {
            char *end = NULL;
            long n = strtol(value, &end, 10);
            if (end == value || *end != '\0' || n < 1 || n > 256)
                rc = bad(err, "--threads %s: expected a number from 1 to 256", value);
            o->threads = (int)n;
        } else if (strcmp(flag, "--status-listen") == 0) {
            o->status_listen = strcmp(value, "off") == 0 ? NULL : value;
            o->status_off = o->status_listen == NULL;
        } else if (strcmp(flag, "--log-format") == 0) {
            if (strcmp(value, "text") == 0 || strcmp(value, "json") == 0)
                o->log_json = strcmp(value, "json") == 0;
            else
                rc = bad(err, "--log-format %s: use text or json", value);
        } else if (strcmp(flag, "--access-log") == 0) {
            if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0)
                o->no_access_log = strcmp(value, "off") == 0;
            else
                rc = bad(err, "--access-log %s: use on or off", value);
        } else if (strcmp(flag, "--isolate-memory-budget") == 0) {
            rc = parse_size(flag, value, &o->isolate_memory_budget, err);
        } else if (strcmp(flag, "--isolate-pool") == 0) {
            char *end = NULL;
            long n = strtol(value, &end, 10);
            if (end == value || *end != '\0' || n < 0 || n > 64)
                rc = bad(err, "--isolate-pool %s: expected a number from 0 to 64", value);
            o->pool_size = (size_t)n;
            is_pool_set = true;
        } else if (strcmp(flag, "--env") == 0) {
            o->env_name = value;
        } else if (strcmp(flag, "--cpu-limit") == 0 || strcmp(flag, "--memory-limit") == 0) {
            char *end = NULL;
            unsigned long long n = strtoull(value, &end, 10);
            if (end == value || *end != '\0' || n == 0)
                rc = bad(err, "%s %s: expected a positive number", flag, value);
            else if (flag[2] == 'c')
                o->cpu_limit_ms = n;
            else
                o->memory_limit_mb = n;
        } else if (strcmp(flag, "--control-plane") == 0) {
            o->cp_url = value;
        } else if (strcmp(flag, "--control-plane-rpc") == 0) {
            o->cp_rpc_url = value;
        } else if (strcmp(flag, "--node") == 0) {
            o->node = value;
        } else if (strcmp(flag, "--node-token-file") == 0) {
            o->node_token_file = value;
        } else if (strcmp(flag, "--code-dir") == 0) {
            o->code_dir = value;
        } else if (strcmp(flag, "--control-plane-ca") == 0) {
            o->cp_ca_file = value;
        } else if (strcmp(flag, "--control-plane-cert") == 0) {
            o->cp_cert_file = value;
        } else if (strcmp(flag, "--control-plane-key") == 0) {
            o->cp_key_file = value;
        } else if (strcmp(flag, "--egress-allow") == 0 || strcmp(flag, "--egress-deny") == 0) {
            if (o->egress == NULL)
                o->egress = nano_egress_new();
            /* NANO_EINVAL, with a message naming the flag and the entry */
            rc = nano_egress_parse_list(o->egress, flag[9] == 'a', value, err);
        } else if (strcmp(flag, "--log-level") == 0) {
            if (nano_log_level_parse(value, &o->log_level) != 0)
                rc = bad(err, "--log-level %s: use debug, info, warn or error", value);
        }
        if (rc != 0)
            return rc;
    }
    if (o->mode != DP_MODE_SERVE) {
        if (o->n_files == 0)
            return bad(err, "%s: no files given (see %s --help)", mode_name, mode_name);
        o->app_name = name != NULL ? nano_xstrdup(name) : default_name(o->files[0]);
        return 0;
    }
    bool cp_only = o->cp_rpc_url != NULL || o->node != NULL || o->node_token_file != NULL ||
                   o->cp_ca_file != NULL || o->cp_cert_file != NULL || o->cp_key_file != NULL;
    if (o->cp_url != NULL) {
        if (o->app_path != NULL || o->config_path != NULL)
            return bad(err, "give one of APP.js, --config FILE or --control-plane URL");
        if (o->n_vars > 0 || o->n_env_files > 0 || o->env_name != NULL || name != NULL)
            return bad(err, "--var, --env-file, --env and --name are for APP.js; with "
                            "--control-plane, nanocp holds each app's env");
        o->app_name = nano_xstrdup("control-plane");
        return 0;
    }
    if (cp_only)
        return bad(err, "--control-plane-rpc, --node, --node-token-file and "
                        "--control-plane-ca/-cert/-key need --control-plane URL");
    if (o->config_path != NULL) {
        if (o->app_path != NULL)
            return bad(err, "give either APP.js or --config FILE, not both");
        if (o->n_vars > 0 || o->n_env_files > 0 || o->env_name != NULL || name != NULL)
            return bad(err, "--var, --env-file, --env and --name are for APP.js; with --config, "
                            "each app's env is in the file");
        o->app_name = nano_xstrdup("config");
        return 0;
    }
    if (o->app_path == NULL)
        return bad(err, "missing APP.js: the module to run, --config FILE or --control-plane URL "
                        "(see --help)");
    /* One app per thread, loaded at start: one ready isolate replaces it at once if it is
     * discarded (memory limit); a second would only idle (3.3 MiB each). Many apps keep two
     * for bursts of first requests. */
    if (!is_pool_set)
        o->pool_size = 1;
    o->app_name = name != NULL ? nano_xstrdup(name) : default_name(o->app_path);
    return 0;
}

void dp_options_fini(dp_options *o)
{
    nano_free(o->host);
    nano_free((void *)o->app_name);
    nano_free(o->vars);
    nano_free(o->env_files);
    nano_free(o->files);
    nano_egress_unref(o->egress);
    memset(o, 0, sizeof *o);
}
