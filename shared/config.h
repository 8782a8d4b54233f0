/* config.h: the data plane's config model (DESIGN.md §4, §7, §9, §10): a set of apps with their
 * hostnames, code, env and limits, as one immutable, refcounted snapshot.
 *
 * Sources build a snapshot and publish it: the nano.json file source (config_json.c) now, the
 * control-plane source (NNG deltas) later. Worker threads hold a reference for as long as they
 * route with it, so a snapshot never changes after nano_config_seal() and is freed by whichever
 * thread drops the last reference. Building (nano_config_new .. nano_config_seal) is
 * single-threaded; ref/unref and every const accessor are safe from any thread. */
#ifndef NANO_CONFIG_H
#define NANO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "error.h"

/* Per-app limits. Defaults (DESIGN.md §9) come from nano_limits_defaults(); nano.json's
 * "limits" object overrides any of them. */
typedef struct nano_limits {
    uint64_t cpu_ms;           /* CPU time per request ("cpu_ms"; default 50) */
    uint64_t memory_mb;        /* isolate heap ("memory_mb"; default 128) */
    uint64_t wall_ms;          /* wall time per request before the response starts ("wall_time"; 30 s) */
    uint64_t drain_timeout_ms; /* ("drain_timeout"; default 30 s, max 300 s) */
    uint32_t max_concurrent;   /* requests running at once per app and thread ("max_concurrent"; 64) */
    uint32_t max_queued;       /* waiting beyond that, then 503 ("max_queued"; 256) */
    uint64_t max_head;         /* request head bytes ("max_head"; 64 KiB) */
    uint64_t max_body;         /* request body bytes ("max_body"; 100 MiB) */
    uint32_t subrequests;      /* per request ("subrequests"; 50) */
} nano_limits;

nano_limits nano_limits_defaults(void);

typedef struct nano_app_config {
    char *name;               /* [a-z0-9][a-z0-9-]{0,62}, unique in a snapshot */
    char **hostnames;         /* lowercase; exact "api.example.com" or wildcard "*.example.com" */
    size_t n_hostnames;
    char *path_prefix;        /* NULL, or "/api" (starts with '/', no trailing '/') */
    bool is_default;          /* receives requests for hosts no app claims */
    char *main_path;          /* absolute path of the main module (imports resolve beside it) */
    char *code;               /* the main module's source, read when the snapshot was built */
    size_t code_len;
    char code_sha256[65];     /* hex: identifies a deployment (changed code = a redeploy) */
    nano_env env;             /* vars (is_json for non-string JSON values) and secrets */
    bool node_compat;         /* also expose env as process.env ("node_compat": true) */
    char **required_env;      /* names that must be present in env ("required_env") */
    size_t n_required_env;
    nano_limits limits;
} nano_app_config;

typedef struct nano_config nano_config;

/* Building. nano_config_new: an empty snapshot with this version (sources count up).
 * nano_config_add_app: takes ownership of *app's contents (app is zeroed), or returns an
 * error naming the conflict (duplicate name, hostname+prefix claimed twice, second default)
 * and leaves app for the caller to free with nano_app_config_fini.
 * nano_config_seal: validates (required env present in each app) and builds the routing
 * table; after it the snapshot is immutable. On error the snapshot must be unref'd. */
nano_config *nano_config_new(uint64_t version);
int nano_config_add_app(nano_config *cfg, nano_app_config *app, nano_error *err);
int nano_config_seal(nano_config *cfg, nano_error *err);
void nano_app_config_fini(nano_app_config *app);

/* nano_app_config_load_code: sets app->main_path (made absolute) and reads the module's
 * source into app->code with its sha256. Errors name the file and why (missing, unreadable,
 * larger than 32 MiB). */
int nano_app_config_load_code(nano_app_config *app, const char *path, nano_error *err);

/* References: the creator holds one. unref frees at zero. NULL is a no-op for both. */
nano_config *nano_config_ref(nano_config *cfg);
void nano_config_unref(nano_config *cfg);

uint64_t nano_config_version(const nano_config *cfg);
size_t nano_config_n_apps(const nano_config *cfg);
const nano_app_config *nano_config_app(const nano_config *cfg, size_t index);
/* nano_config_find: the app with this name, its index in *index_out (may be NULL); or NULL. */
const nano_app_config *nano_config_find(const nano_config *cfg, const char *name,
                                        size_t *index_out);

/* nano_config_route: the app for a request, by its Host header value (case-insensitive; a
 * ":port" suffix and a trailing '.' are ignored) and its path: exact hostname first, then the
 * longest matching "*.suffix" wildcard (which matches one or more labels), then the default
 * app. Among apps sharing a hostname, the longest path_prefix that matches whole segments wins
 * ("/api" matches "/api" and "/api/x", not "/apix"); an app without a prefix matches any path.
 * Returns the app's index, or -1 (the runtime answers 404). No allocation; any thread. */
long nano_config_route(const nano_config *cfg, const char *host, size_t host_len,
                       const char *path, size_t path_len);

/* Comparing an app across two snapshots (to keep isolates that need not change). */
bool nano_app_config_same_code(const nano_app_config *a, const nano_app_config *b);
bool nano_env_equal(const nano_env *a, const nano_env *b);
bool nano_limits_equal(const nano_limits *a, const nano_limits *b);

/* nano_config_load_json: reads nano.json at path (format in docs/config.md), resolving
 * relative module and secret-file paths against the file's directory, reading each module's
 * source and each secret ({"fromEnv": NAME} from this process's environment, {"fromFile":
 * PATH}), and validating everything (unknown keys, names, hostnames, limits, env limits,
 * required env). Returns 0 and a sealed snapshot with the given version, or an error whose
 * message is one line naming the file and the JSON location, e.g.
 *   nano.json: apps[1].env.TOKEN: value is 6000 bytes; the limit is 5120
 * Secret values never appear in messages. */
int nano_config_load_json(const char *path, uint64_t version, nano_config **out,
                          nano_error *err);

#endif
