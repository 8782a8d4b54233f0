/* service.h: nanocp's service layer (docs/nanocp.md#operations): every admin operation, once.
 *
 * Both front ends are thin adapters over cp_service_call: api_http.c maps a method and path
 * (plus JSON body) to an op and its args, api_rpc.c maps a msgpack envelope {v, op, token,
 * args} to the same op and args. Args and results are jansson values, so both front ends give
 * the same answers by construction; the RPC adapter converts msgpack <-> JSON (a msgpack bin
 * becomes a JSON string only when it is valid UTF-8, else the call fails with bad_request).
 *
 * Threading: a cp_service and its SQLite connection belong to one thread (nanocp's service
 * thread, which runs the libuv loop). NNG callbacks hand requests to that thread.
 *
 * Ops (args -> result; every name, hostname, limit and env entry validated by the rules of
 * docs/config.md with nano_app_name_valid & co. from shared/config.h, so nanocp and nano-dp agree):
 *
 *   apps.list      {}                                  -> {"apps": [APP...]}
 *   apps.create    {name, hostnames: [..], path_prefix?, default?, node_compat?,
 *                   required_env?: [..], limits?: {cpu_ms, memory_mb, wall_time,
 *                   drain_timeout, max_concurrent, max_queued, max_head, max_body,
 *                   subrequests}, egress?: {allow?, deny?} | null}
 *                                                       -> APP            (HTTP 201)
 *   apps.update    {name, and any of the fields above}  -> APP
 *   apps.get       {name}                               -> APP + {"deployment": DEPLOYMENT|null,
 *                                                          "nodes": [per-node state],
 *                                                          "drain": DRAIN (draining only)}
 *   apps.remove    {name}                               -> {"name", "state": "draining"|"removed"}
 *                                                          (HTTP 202; with no node to wait
 *                                                          for, the app is removed at once)
 *   apps.drain     {name}                               -> {"name", "state", "nodes": [..]}
 *                                                          (+ started_at, timeout_ms while
 *                                                          draining); nodes as in DRAIN
 *   apps.deploy    {name, main: "index.js", modules: {"index.js": "source", ...}}
 *                                                       -> DEPLOYMENT     (HTTP 201)
 *                  refused with module_invalid (400) when the main module does not load:
 *                  a syntax error, no default export with a fetch method, a top-level
 *                  throw, or past its CPU/memory limit at load; the message is one line,
 *                  "index.js:3:5: SyntaxError: ... (module_syntax)"
 *   deployments.list {name}                             -> {"deployments": [DEPLOYMENT...]}
 *   apps.rollback  {name, version}                      -> DEPLOYMENT (the new active one)
 *   env.get        {name}                               -> {"vars": {K: value},
 *                                                          "secrets": ["K", ...]}
 *   env.patch      {name, vars: {K: value | null}}      -> same as env.get (null deletes)
 *   env.replace    {name, vars: {K: value},             -> same as env.get; vars become
 *                   secrets?: {K: "value"}}                exactly these (absent ones go),
 *                                                          secrets too when given (else kept);
 *                                                          one transaction, one delta
 *   secrets.list   {name}                               -> {"secrets": [{"name", "updated_at"}]}
 *   secrets.put    {name, key, value}                   -> {"name": key, "updated_at"}
 *   secrets.delete {name, key}                          -> {}
 *   nodes.list     {}                                   -> {"seq": the last config seq,
 *                                                          "nodes": [{name, version, addr,
 *                                                          applied_seq, apps, first_seen,
 *                                                          last_seen, current}]}
 *   nodes.remove   {name}                               -> {"name", "drains_ended": bool}
 *                                                          forgets a node gone for good: its
 *                                                          rows in running drains go, and a
 *                                                          drain left waiting for no node ends
 *                                                          (a running node registers again)
 *   audit.list     {limit?, before_id?}                 -> {"entries": [{id, at, actor, via,
 *                                                          op, app, detail}]}  newest first
 *   version        {}                                   -> {"version", "schema_version",
 *                                                          "config_seq"}
 *
 *   Args are checked strictly: a field an op does not take is bad_request naming it. Rules
 *   that need the database (docs/nanocp.md has the full list):
 *   - an app needs a hostname or "default": true; a hostname + path_prefix is claimed by one
 *     app (hostname_taken), and one app at most is the default (default_taken);
 *   - a draining app takes no change but its removal (app_draining, 409);
 *   - a name is a var or a secret, not both (name_conflict, 409);
 *   - required_env: apps.deploy and apps.rollback are refused while a required name is
 *     missing; once an app has an active deployment, an env.patch, env.replace,
 *     secrets.delete or apps.update that would leave a required name missing is refused too
 *     (required_env_missing, 409, the message lists every missing name);
 *   - env.patch with null for an absent var, and a rollback to the active version, change
 *     nothing and log nothing.
 *   Deployments: at most 256 modules, names of [A-Za-z0-9._-] segments separated by '/'
 *   (no "." or ".." segment), 32 MiB in all; the bundle's sha256 is the module's own for a
 *   single module, else sha256 over "NAME\0SHA256HEX\n" for each module in name order. A
 *   rollback re-activates the old version (no new version number).
 *
 *   APP        = {name, hostnames, path_prefix, default, node_compat, required_env, limits
 *                 (every field, defaults filled in), egress (as nano_egress_to_json writes
 *                 it, or null: none set), state: "active"|"draining",
 *                 active_version (0 before the first deploy), created_at, updated_at}
 *   DEPLOYMENT = {version (1, 2, ... per app), sha256 (of the bundle), main, size (bytes of
 *                 all modules), modules: [{name, size, sha256}], created_at, created_by (the
 *                 actor's who), active: bool}
 *   DRAIN      = {state: "draining", started_at, timeout_ms, finished_at, nodes: [{node,
 *                 state: "draining"|"drained"|"timed_out", in_flight (the node's last
 *                 status), acked_at, last_seen}]}
 *   Times are RFC 3339 UTC strings. No result ever holds a secret's value.
 *
 * Every change is one SQLite transaction that also appends its audit entry and its config-log
 * delta(s) (the numbered sequence the data planes follow; shared/msg.h ops: app.put,
 * code.put, env.put, env.del, secret.put, secret.del, app.drain, app.remove). A secret in the
 * config log is stored encrypted, exactly as in the secrets table. */
#ifndef CP_SERVICE_H
#define CP_SERVICE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* A structured error, as both front ends return it:
 *   {"error": {"code": "app_not_found", "message": "app api does not exist", "field": "name"}}
 * code: a stable snake_case id (bad_request, unauthorized, app_not_found, app_exists,
 * hostname_taken, default_taken, invalid_field, module_invalid, too_large, required_env_missing,
 * version_not_found, secret_not_found, node_not_found, name_conflict, app_draining, internal).
 * field: the argument at fault ("hostnames[1]", "limits.cpu_ms", "vars.TOKEN"), or "".
 * status: the HTTP status the HTTP adapter answers with (400, 401, 404, 409, 413, 500). */
typedef struct cp_error {
    char code[48];
    char message[512];
    char field[128];
    int status;
} cp_error;

/* cp_error_set: fills err (if not NULL) and returns a negative NANO_E* matching status. */
int cp_error_set(cp_error *err, int status, const char *code, const char *field, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));

/* Who asked, for the audit log: the token's name ("admin") and the front end ("http",
 * "rpc", "cli"). Borrowed. */
typedef struct cp_actor {
    const char *who;
    const char *via;
} cp_actor;

typedef struct cp_service cp_service;

typedef struct cp_service_options {
    const char *data_dir;     /* created 0700 if missing; holds nanocp.db (SQLite store) and,
                                    by default, the master key and admin token */
    const char *store_url;    /* NULL: SQLite, DATA_DIR/nanocp.db. "etcd://HOST:PORT,...
                                    /PREFIX" or "etcds://...": the etcd store (store.h). Every
                                    replica on one store needs the same master key */
    const char *store_cacert; /* etcds://: PEM files (etcd.h cp_etcd_tls; NULL: none) */
    const char *store_cert;
    const char *store_key;
    const char *master_key_file; /* NULL: NANO_MASTER_KEY, else DATA_DIR/master.key (made
                                    on first start, 0600, 32 random bytes, hex) */
    const char *token_file;      /* the admin token (--token-file); NULL: DATA_DIR/admin.token.
                                    Made on first start (0600, 32 random bytes as 64 hex
                                    digits); its sha256 is stored as the token "admin" */
    const char *checker;         /* nano-dp, run as `nano-dp check` on each deployment's main
                                    module before it is accepted (shared/check.h); NULL: no
                                    check. Probed at open: one that cannot load a trivial
                                    module is dropped with a warning (cp.checker_unavailable) */
} cp_service_options;

/* cp_service_open: opens (creating on first start) the data dir and database (WAL, foreign
 * keys, busy timeout), applies pending migrations, loads the master key and the admin token.
 * Logs the paths of what it creates (never a key or token). Errors are one line naming the
 * file and why (e.g. a database newer than this binary); err->code is "startup". */
int cp_service_open(const cp_service_options *opt, cp_service **out, cp_error *err);
void cp_service_free(cp_service *svc); /* NULL-safe; checkpoints the WAL */

/* cp_service_check_token: whether token (a bearer token as a client sent it, NUL-terminated)
 * is a known API token: compares sha256(token) with every stored hash in constant time. On a
 * match sets *who_out (if not NULL) to the token's name ("admin"), valid as long as svc.
 * Service thread. */
bool cp_service_check_token(cp_service *svc, const char *token, const char **who_out);

/* Paths, for logs and front ends (valid as long as svc): the data dir, the database, the
 * admin token file, and where the master key came from (a file, or "NANO_MASTER_KEY"). */
const char *cp_service_data_dir(const cp_service *svc);
const char *cp_service_db_path(const cp_service *svc);
const char *cp_service_token_path(const cp_service *svc);
const char *cp_service_key_source(const cp_service *svc);

/* cp_service_store: the service's store, for the distribution layer and tests (same thread;
 * a change made through it bypasses validation, the audit log and the config log). */
struct cp_store *cp_service_store(cp_service *svc);

/* cp_service_call: runs op with args (borrowed; NULL = {}). On success returns 0 and *result
 * (returned owned). On failure returns a negative NANO_E* with err filled; *result untouched.
 * An unknown op is bad_request (400). A change whose commit conflicts with another replica's
 * (etcd store: NANO_ECONFLICT) is run again from the start, a few times with a short jittered
 * backoff, then fails as store_conflict (503). The internal changes below do the same. */
int cp_service_call(cp_service *svc, const cp_actor *actor, const char *op, json_t *args,
                    json_t **result, cp_error *err);

/* --- for the distribution layer (distrib.c; service thread) -------------------------------- */

/* cp_service_token_file: reads the token file at path (one token of 32 to 512 printable
 * characters, one trailing newline allowed) or, when it does not exist, makes it (32 random
 * bytes as 64 hex digits, mode 0600, created exclusively; *created says so). Fills hash_hex
 * with the token's sha256; the token itself is wiped. Used for the admin and the node token. */
int cp_service_token_file(const char *path, char hash_hex[65], bool *created, cp_error *err);

/* cp_service_secret_values: the app's secrets decrypted, {NAME: value} (returned owned; for
 * the data-plane channel only). A value that does not open (another master key, a tampered
 * row) is left out and logged by name. Returns 0 or a store error. */
int cp_service_secret_values(cp_service *svc, int64_t app_id, const char *app, json_t **out);

/* cp_service_node_hello: records the node (name, version, addr; last_seen now). */
int cp_service_node_hello(cp_service *svc, const char *node, const char *version, const char *addr,
                          cp_error *err);

/* Node reports written per transaction (cp_service_nodes_report splits larger batches). */
#define CP_SERVICE_REPORTS_PER_TX 48

/* cp_service_nodes_report: records status reports, {NODE: {applied_seq, apps: {APP: APPSTATE},
 * seen_at}} (borrowed), in transactions of up to CP_SERVICE_REPORTS_PER_TX nodes. A report
 * whose applied_seq is at or past an app.drain and that no longer lists the app (or lists it
 * drained/timed_out) counts as that node's ack. Drains left with no pending node end: the app is deleted and app.remove logged;
 * *changed is then true (publish the log). */
int cp_service_nodes_report(cp_service *svc, json_t *reports, bool *changed, cp_error *err);

/* cp_service_drain_ack: node has finished draining app (result "drained" or "timed_out").
 * Ends the drain when it was the last pending node (*changed: app.remove was logged). An ack
 * for no running drain, or from a node the drain did not wait for, changes nothing. */
int cp_service_drain_ack(cp_service *svc, const char *node, const char *app, const char *result,
                         bool *changed, cp_error *err);

/* cp_service_drains_tick: nodes still pending in a drain older than its timeout_ms + grace_ms
 * become timed_out (a node that is down counts as timed out); finished drains end as above. */
int cp_service_drains_tick(cp_service *svc, uint64_t grace_ms, bool *changed, cp_error *err);

/* The shape of cp_service_call, so front ends can be built and tested on their own. */
typedef int (*cp_call_cb)(void *ud, const cp_actor *actor, const char *op, json_t *args,
                          json_t **result, cp_error *err);

#endif
