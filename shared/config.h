/* config.h: the data plane's config model (docs/config.md; docs/architecture.md): a set of
 * apps with their hostnames, code, env and limits, as one immutable, refcounted snapshot.
 *
 * Sources build a snapshot and publish it: the nano.json loader (config_json.c), nano-dp's
 * single APP.js (dataplane/main.c) and the control-plane model (dataplane/control/cp_model.c).
 * Worker threads hold a reference for as long as they route with it, so a snapshot never
 * changes after nano_config_seal() and is freed by whichever thread drops the last reference.
 * Building (nano_config_new .. nano_config_seal) is single-threaded; ref/unref and every
 * const accessor are safe from any thread. */
#ifndef NANO_CONFIG_H
#define NANO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app_spec.h"
#include "egress.h"
#include "env.h"
#include "error.h"

/* A module an app imports, as read when its config was built. */
typedef struct nano_module_source {
    char *path; /* resolved (realpath), as the runtime resolves the import */
    char *code; /* NUL-terminated, not counted in len */
    size_t len;
} nano_module_source;

typedef struct nano_app_config {
    nano_app_spec spec; /* name (unique in a snapshot), hostnames, path prefix, default
                                 role, node_compat, required env, limits, egress (app_spec.h) */
    char *main_path;    /* absolute path of the main module (imports resolve beside it) */
    char *code;         /* the main module's source (NUL-terminated, not counted in
                                 code_len), read when the snapshot was built */
    size_t code_len;
    char code_sha256[65];    /* hex: identifies a deployment (changed code = a redeploy) */
    char imports_sha256[65]; /* hex, nano.json apps: of the modules the main module imports by
                                 relative specifiers, transitively (their paths and sources);
                                 "" when it imports none. Part of the code's identity */
    char **code_files;       /* nano.json apps: the files the code came from, to watch: the
                                 main module as named (absolute) and as resolved, then each
                                 module it imports relatively (also one not found, so that its
                                 creation is seen); none from other sources */
    size_t n_code_files;
    nano_module_source *imports; /* nano.json apps: the sources imports_sha256 was made of;
                                 the runtime compiles these, not the files, so a version runs
                                 exactly the imports its hash names (an edit that is refused
                                 cannot reach an isolate made later for the old version) */
    size_t n_imports;
    nano_env env; /* vars (is_json for non-string JSON values) and secrets */
} nano_app_config;

typedef struct nano_config nano_config;

/* nano_app_config_init: an empty app (caller-owned memory) with the default limits and an
 * empty env; nano_app_config_fini frees what it holds (NULL-safe, also after a failed add). */
void nano_app_config_init(nano_app_config *app);

/* nano_app_config_check_required_env: 0 when every name in app->required_env is in app->env,
 * else NANO_EINVAL with a message listing every missing name, in required_env order:
 *   app api: required env missing: DB_URL, TOKEN
 * nano_config_seal runs it for each app; the control plane runs it before accepting a
 * deployment or env change. Any thread (app is read only). */
int nano_app_config_check_required_env(const nano_app_config *app, nano_error *err);

/* Building. nano_config_new: an empty snapshot with this version (sources count up), holding
 * one reference for the caller.
 * nano_config_add_app: checks app on its own (name, hostname and path_prefix syntax, limits)
 * and against the apps already added (duplicate name, hostname+prefix claimed twice, second
 * default), then takes ownership of *app's contents (app is zeroed) and normalizes its
 * hostnames. On error it returns NANO_EINVAL (NANO_ERANGE for limits, NANO_ESTATE after
 * seal) with a message naming the app and the conflict, and leaves app untouched for the
 * caller to free with nano_app_config_fini.
 * nano_config_seal: validates (required env present in each app) and builds the routing
 * table; after it the snapshot is immutable. On error the snapshot must be unref'd. */
nano_config *nano_config_new(uint64_t version);
int nano_config_add_app(nano_config *cfg, nano_app_config *app, nano_error *err);
int nano_config_seal(nano_config *cfg, nano_error *err);
void nano_app_config_fini(nano_app_config *app);

/* nano_app_config_load_code: sets app->main_path (path made absolute with realpath) and reads
 * the module's source into app->code with its sha256, replacing what app held. Errors name
 * the file (as given) and why (missing, not a regular file, unreadable, larger than 32 MiB);
 * app is written only on success. */
#define NANO_CODE_MAX_BYTES (32u * 1024 * 1024)
int nano_app_config_load_code(nano_app_config *app, const char *path, nano_error *err);

/* nano_app_config_find_imports: follows the relative imports of app's main module (app->code,
 * at app->main_path), transitively, as nano-dp's module loader resolves them (imports.h finds
 * them; at most NANO_IMPORTS_MAX modules): sets app->imports_sha256 from the paths and sources
 * of the modules found, and app->code_files to named_main (made absolute), app->main_path, and
 * every module's path (as joined and as resolved, when they differ). A module that is missing or
 * unreadable is listed but not hashed: the load check reports it. Returns 0, or NANO_ENOMEM
 * (app unchanged). Any thread. */
#define NANO_IMPORTS_MAX 1024
int nano_app_config_find_imports(nano_app_config *app, const char *named_main);

/* nano_config_keep_code: a sealed copy of cfg (same version; one reference, the caller's) in
 * which each app named in names that old also has keeps old's code (main_path, code, sha256,
 * imports_sha256, code_files, node_compat) while its hostnames, env, limits and egress are
 * cfg's. A data plane uses it to keep serving an app's previous version when the new one does
 * not load. Errors are those of
 * nano_config_add_app/seal (cfg was valid, so only a conflict the old code cannot cause).
 * Any thread (cfg and old are read only). */
int nano_config_keep_code(const nano_config *cfg, const nano_config *old, const char *const *names,
                          size_t n_names, nano_config **out, nano_error *err);

/* References: the creator holds one. ref returns cfg. unref frees at zero, on whichever
 * thread drops the last reference. NULL is a no-op for both. */
nano_config *nano_config_ref(nano_config *cfg);
void nano_config_unref(nano_config *cfg);

uint64_t nano_config_version(const nano_config *cfg);
size_t nano_config_n_apps(const nano_config *cfg);
const nano_app_config *nano_config_app(const nano_config *cfg, size_t index);
/* nano_config_app: the app at index, in the order apps were added; NULL past the end.
 * nano_config_find: the app with this name, its index in *index_out (may be NULL); or NULL. */
const nano_app_config *nano_config_find(const nano_config *cfg, const char *name,
                                        size_t *index_out);

/* nano_config_route: the app for a request, by its Host header value (case-insensitive; a
 * ":port" suffix and a trailing '.' are ignored) and its path: exact hostname first, then the
 * longest matching "*.suffix" wildcard (which matches one or more labels), then the default
 * app. Among apps sharing a hostname, the longest path_prefix that matches whole segments wins
 * ("/api" matches "/api", "/api/x" and "/api?q", not "/apix"; paths compare byte for byte, as
 * sent); an app without a prefix matches any path. When no app under a hostname matches the
 * path, the search goes on to the next candidate (a shorter wildcard, then the default app,
 * whose own path_prefix, if any, still applies). Returns the app's index, or -1 (the runtime
 * answers 404; also before seal). No allocation; any thread. */
long nano_config_route(const nano_config *cfg, const char *host, size_t host_len, const char *path,
                       size_t path_len);

/* Comparing an app across two snapshots (to keep isolates that need not change).
 * same_code: equal code_sha256, imports_sha256 and main_path. env_equal: the same names with
 * the same values and flags (is_secret, is_json), in any order. limits_equal: every field equal. */
bool nano_app_config_same_code(const nano_app_config *a, const nano_app_config *b);
bool nano_env_equal(const nano_env *a, const nano_env *b);

/* nano_config_load_json: reads nano.json at path (format in docs/config.md), resolving
 * relative module and secret-file paths against the file's directory, reading each module's
 * source and each secret ({"fromEnv": NAME} from this process's environment, {"fromFile":
 * PATH}), and validating everything (unknown keys, names, hostnames, limits, env limits,
 * required env). Returns 0 and a sealed snapshot with the given version (one reference, the
 * caller's), or an error whose message is one line naming the file and the JSON location, e.g.
 *   nano.json: apps[1].env.TOKEN: value is 6000 bytes; the limit is 5120
 *   nano.json:3:14: invalid JSON: ...       (syntax errors give line and column)
 * Secret values never appear in messages. The file may be at most 64 MiB. Any thread, but
 * {"fromEnv"} reads the process environment, so not concurrently with setenv(). */
struct json_t; /* jansson's */

#define NANO_CONFIG_JSON_MAX_BYTES (64u * 1024 * 1024)
int nano_config_load_json(const char *path, uint64_t version, nano_config **out, nano_error *err);

/* nano_config_load_node_egress: the node-wide egress policy of nano.json at path (its top-level
 * "egress" object, docs/config.md), as given: no defaults, no endpoints (the data plane adds
 * those). Returns 0 with a new policy in *out (one reference, the caller's), or NULL there when
 * the file has no "egress"; or an error in nano_config_load_json's form, e.g.
 *   nano.json: egress.deny[0]: "10.0.0.0/33" is not an address, CIDR or hostname ...
 * nano_config_load_json checks the same object, so a reload with a bad one is refused. */
int nano_config_load_node_egress(const char *path, nano_egress **out, nano_error *err);

#endif
