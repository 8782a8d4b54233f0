/* options.h: nano-dp's command line, parsed into dp_options (no side effects, so unit tests
 * drive it directly). Main thread only. */
#ifndef DP_OPTIONS_H
#define DP_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egress.h"
#include "error.h"
#include "log.h"

#define DP_MAX_DRAIN_TIMEOUT_MS (300 * 1000)
/* The CPU limit per request of a single APP.js (which owns its node); apps of a --config
 * file or a control plane default to nano_limits_defaults()'s 50 ms. */
#define DP_SINGLE_APP_CPU_MS 30000

typedef enum dp_mode {
    DP_MODE_SERVE = 0, /* nano-dp APP.js: serve HTTP */
    DP_MODE_TEST,      /* nano-dp test FILE...: run test modules */
    DP_MODE_RUN,       /* nano-dp run SCRIPT...: evaluate classic scripts, run the loop */
    DP_MODE_CHECK,     /* nano-dp check APP.js...: does each module load (shared/check.h) */
} dp_mode;

typedef struct dp_options {
    dp_mode mode;
    const char **files; /* test/run: the files, in order (strings borrowed) */
    size_t n_files;
    const char *filter;   /* test: only tests whose name contains this */
    const char *location; /* test/run: --location URL (NULL: none) */
    uint64_t timeout_ms;  /* test: per test (default 5s); run: whole run (0: none) */
    const char *app_path; /* APP.js (borrowed from argv) */
    const char *app_name; /* --name, or derived from app_path (owned) */
    char *host;           /* --host / --listen (owned) */
    int port;
    const char **vars; /* --var K=V, in order (array owned, strings borrowed) */
    size_t n_vars;
    const char **env_files; /* --env-file, in order */
    size_t n_env_files;
    uint64_t drain_timeout_ms;
    uint64_t max_head_size;
    uint64_t max_body_size;
    uint64_t head_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t body_timeout_ms; /* --body-timeout: grace before --body-min-rate applies */
    uint64_t body_min_rate;   /* --body-min-rate: bytes/s (0: no rate rule) */
    uint64_t write_timeout_ms;
    nano_log_level log_level;
    const char *config_path;   /* --config FILE (borrowed) */
    int threads;               /* --threads (0: the number of cores) */
    const char *status_listen; /* --status-listen HOST:PORT (NULL: default, or off) */
    bool status_off;
    bool log_json;      /* --log-format json */
    bool no_access_log; /* --access-log off */
    uint64_t isolate_memory_budget;
    const char *env_name;  /* --env NAME: .env.NAME */
    uint64_t cpu_limit_ms; /* APP.js limits (0: defaults) */
    uint64_t memory_limit_mb;
    size_t pool_size; /* --isolate-pool: ready isolates kept per thread */
    /* --control-plane mode (strings borrowed from argv) */
    const char *cp_url;          /* --control-plane URL */
    const char *cp_rpc_url;      /* --control-plane-rpc URL (NULL: same host, port + 1) */
    const char *node;            /* --node NAME (NULL: the host name) */
    const char *node_token_file; /* --node-token-file F (else NANO_NODE_TOKEN) */
    const char *code_dir;        /* --code-dir DIR (NULL: a private temporary one) */
    const char *cp_ca_file;      /* --control-plane-ca F */
    const char *cp_cert_file;    /* --control-plane-cert F */
    const char *cp_key_file;     /* --control-plane-key F */
    /* The node's egress policy (shared/egress.h; owned, unref'd by dp_options_fini): parsing
     * puts the --egress-allow / --egress-deny entries here (NULL when none was given);
     * dp_egress_node_build (egress_node.h) completes it for multi-tenant modes. NULL: no
     * policy (a single APP.js without the flags may reach anything). Immutable once workers
     * start: they share it. */
    nano_egress *egress;
    bool check_json;  /* check: --json, one verdict object per file on stdout */
    bool node_compat; /* check: --node-compat, load as an app with process.env */
    bool env_stdin;   /* check: --env-stdin, the app's env as JSON on stdin */
    bool show_help;
    bool show_version;
} dp_options;

/* dp_options_parse: fills opts from argv. Returns 0, or NANO_EINVAL with err holding a
 * one-line reason (bad usage: the caller prints it and exits 2). Free with dp_options_fini
 * in both cases. */
int dp_options_parse(dp_options *opts, int argc, char **argv, nano_error *err);
void dp_options_fini(dp_options *opts);

/* dp_options_usage: the --help text of a mode. */
const char *dp_options_usage(dp_mode mode);

#endif
