/* store.h: nanocp's store (docs/nanocp.md#what-is-stored), with two backends behind one API:
 * SQLite (the default: opening the database, the migrations, and every SQL statement the service
 * layer runs, prepared once and cached per connection) and etcd (docs/nanocp.md#the-etcd-store:
 * store_etcd.c over kvtx.h, the same answers under one key prefix, one etcd transaction per
 * store transaction).
 *
 * Reads return jansson values shaped for the admin API (the service layer adds and renames
 * little); writes take plain C values. The store checks nothing a person would read about:
 * validation and its messages are the service's. A store and its connection belong to one
 * thread (nanocp's service thread). Functions return 0 or a negative NANO_E* code:
 * NANO_ENOTFOUND for a missing row, NANO_ESTATE for a constraint the database refused, NANO_EIO
 * for any other SQLite failure (cp_store_errmsg says which). */
#ifndef CP_STORE_H
#define CP_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "app_spec.h"
#include "embedded.h"
#include "error.h"
#include "etcd.h"
#include "secrets.h"

typedef struct cp_store cp_store;

/* The migrations compiled into this binary (migrations/NNNN_name.sql, in order). */
extern const nano_embedded cp_migrations[];
extern const size_t cp_migrations_count;

/* cp_store_open: opens the database at path with foreign keys on, WAL and a busy timeout.
 * With migrate, creates the file if missing (mode 0600), refuses a database that records a
 * migration this binary does not know (newer, or a different name for a known version), and
 * applies the pending migrations in order, each in its own transaction that also records it in
 * schema_migrations. Without migrate (for `nanocp migrate --status`), opens an existing file
 * and changes nothing. Errors are one line naming the file. Returns the store owned.
 * A path that is an etcd URL (cp_store_url_is_etcd) opens the etcd store instead, without
 * TLS files (cp_store_open_etcd). */
int cp_store_open(const char *path, bool migrate, cp_store **out, nano_error *err);

/* cp_store_url_is_etcd: whether path_or_url starts with etcd:// or etcds://. */
bool cp_store_url_is_etcd(const char *path_or_url);

/* cp_store_open_etcd: the etcd store at url, "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" or
 * "etcds://..." with tls (borrowed, may be NULL: etcd.h); PREFIX defaults to /nano/. With
 * migrate, creates the store's meta key (PREFIX/meta/state) when there is none and records this
 * binary's schema version in it; refuses a store a newer nanocp wrote ("store_too_new").
 * Without migrate, a prefix with no store is NANO_ENOENT. Reaches etcd (bounded by the
 * client's timeouts). A bad URL is one line ("etcd_url_invalid"). Returns the store owned. */
int cp_store_open_etcd(const char *url, const cp_etcd_tls *tls, bool migrate, cp_store **out,
                       nano_error *err);

/* cp_store_is_etcd: whether st is the etcd store. */
bool cp_store_is_etcd(const cp_store *st);

/* cp_store_lead: whether this nanocp runs the fleet-wide duties now (the drains' clock, the
 * blob sweep): with SQLite always (one nanocp per database); with etcd, the replica named who
 * that holds the key P/leader, put with a lease of ttl_ms that each call renews (taken when
 * absent; it lapses ttl_ms after its holder stops calling, and cp_store_free revokes it).
 * Outside a transaction. */
int cp_store_lead(cp_store *st, const char *who, int64_t ttl_ms, bool *is_leader);

/* cp_store_watch: calls changed(arg) on a thread of its own soon after each transaction any
 * replica commits to the store (etcd: a watch of P/meta/state, which every change rewrites), so
 * that a replica publishes the others' changes at once rather than at its next heartbeat. With
 * SQLite there is no one else: *out is NULL and nothing is called. A watch that etcd cancels
 * (compaction) logs it and calls no more; the heartbeat still publishes. */
typedef void (*cp_store_changed_cb)(void *arg);
typedef struct cp_store_watch cp_store_watch;
int cp_store_watch_start(cp_store *st, cp_store_changed_cb changed, void *arg, cp_store_watch **out,
                         nano_error *err);
/* cp_store_watch_stop: no callback runs after it returns. NULL-safe. Any thread. */
void cp_store_watch_stop(cp_store_watch *w);

/* cp_store_blob_sweep: etcd store only (SQLite deletes unused code with the app): deletes code
 * no deployment references whose upload is older than min_age_ms (a deploy uploads its code
 * before its transaction: a younger blob may be about to be referenced), at most 64 per call,
 * in one transaction (NANO_ECONFLICT: run it again). *n_out: how many. Not in a transaction. */
int cp_store_blob_sweep(cp_store *st, int64_t min_age_ms, int64_t *n_out);

/* cp_store_open_with: cp_store_open with another list of migrations (tests). migs is borrowed
 * for the store's life; each name must look like "0001_init.sql". */
int cp_store_open_with(const char *path, const nano_embedded *migs, size_t n_migs, bool migrate,
                       cp_store **out, nano_error *err);

/* cp_store_free: finalizes the statements, checkpoints the WAL into the database file
 * (TRUNCATE) and closes. NULL-safe. */
void cp_store_free(cp_store *st);

/* cp_store_checkpoint: writes the WAL back into the database file now (TRUNCATE). etcd store:
 * NANO_ESTATE ("not with the etcd store"), as cp_store_migrations (the schema version is in the
 * meta key: cp_store_schema_version) and cp_store_copy of an etcd URL. */
int cp_store_checkpoint(cp_store *st);

/* cp_store_copy: copies the database file src into dst (store_backup.c), for `nanocp backup`
 * and `nanocp restore`: src is opened read-only, so a running nanocp may keep writing to it;
 * the copy is one consistent state (one read transaction) and is checked (PRAGMA quick_check)
 * and synced. dst must not exist: it is created 0600, never overwritten, and removed again if
 * the copy fails. Errors are one line naming the file. Any thread (own connections). */
int cp_store_copy(const char *src, const char *dst, nano_error *err);

/* cp_store_secret_keys: {key_id: number of secrets sealed with it}. */
int cp_store_secret_keys(cp_store *st, json_t **out);

/* cp_store_errmsg: the last SQLite error, for the log (never shown with values: the store
 * binds values, so SQLite's messages hold none). */
const char *cp_store_errmsg(const cp_store *st);

/* cp_store_migrations: every migration this binary knows and every one the database records:
 * [{version, name, applied_at (null: pending), known (false: newer than this binary)}]. */
int cp_store_migrations(cp_store *st, json_t **out);
int cp_store_schema_version(cp_store *st, int64_t *out);

/* Transactions. begin is BEGIN IMMEDIATE (the write lock up front, so a change never fails
 * half-way for lack of it) and fixes the time every write of the transaction records
 * (cp_store_now: RFC 3339 UTC with milliseconds). rollback is NULL-safe and idempotent.
 * etcd store: optimistic (kvtx.h): begin reads the meta key, every read sees the store as of
 * then plus the transaction's own writes, writes are buffered, and commit sends them as one
 * etcd transaction, or returns NANO_ECONFLICT (nothing applied: another change was committed
 * since begin; run the whole transaction again) or NANO_ETOOBIG (more than etcd's 128
 * operations). Outside begin..commit each call is a transaction of its own. */
int cp_store_begin(cp_store *st);
int cp_store_commit(cp_store *st);
/* cp_store_begin_read: BEGIN DEFERRED: the reads until the commit (or rollback) see one
 * snapshot of the database (the distribution layer's snapshots). */
int cp_store_begin_read(cp_store *st);
void cp_store_rollback(cp_store *st);
const char *cp_store_now(const cp_store *st);
/* cp_time_now: the current time as cp_store_now formats it (out: at least 32 bytes). */
void cp_time_now(char *out, size_t cap);

/* --- apps --------------------------------------------------------------------------------- */

/* An app as {id, name, hostnames, path_prefix, default, node_compat, required_env, limits,
 * egress (object or null), state, active_version, active_sha256, created_at, updated_at}. */
int cp_store_app_get(cp_store *st, const char *name, json_t **out);
int cp_store_app_list(cp_store *st, json_t **out); /* array, by name */
/* cp_store_app_insert: a new app named name with spec (checked: app_spec.h; its name is not
 * read). cp_store_app_update: every field of spec (the name is not changed) and the
 * hostnames. The row's spec fields are the spec's JSON form (nano_app_spec_to_json). */
int cp_store_app_insert(cp_store *st, const char *name, const nano_app_spec *spec, int64_t *id_out);
int cp_store_app_update(cp_store *st, int64_t id, const nano_app_spec *spec);
int cp_store_app_set_state(cp_store *st, int64_t id, const char *state);
int cp_store_app_activate(cp_store *st, int64_t id, int64_t deployment_id);
/* cp_store_app_delete: the app and everything it owns; code no deployment uses any more. */
int cp_store_app_delete(cp_store *st, int64_t id);
/* The app (other than except_id) claiming host with prefix ("" for none), or the default app:
 * its name into name_out (64 bytes); NANO_ENOTFOUND when none. */
int cp_store_hostname_owner(cp_store *st, const char *host, const char *prefix, int64_t except_id,
                            char *name_out);
int cp_store_default_owner(cp_store *st, int64_t except_id, char *name_out);

/* --- deployments ------------------------------------------------------------------------- */

typedef struct cp_module {
    const char *name;
    const char *data; /* borrowed */
    size_t len;
    char sha256[65];
} cp_module;

/* cp_store_deployment_insert: the next version of the app (1 + the highest so far), its
 * modules' bytes stored once by sha256. */
int cp_store_deployment_insert(cp_store *st, int64_t app_id, const char *sha256, const char *main,
                               const cp_module *mods, size_t n_mods, const char *created_by,
                               int64_t *id_out, int64_t *version_out);
/* A deployment as {id, version, sha256, main, size, modules: [{name, size, sha256}],
 * created_at, created_by, active}. */
int cp_store_deployment_get(cp_store *st, int64_t app_id, int64_t version, json_t **out);
int cp_store_deployment_list(cp_store *st, int64_t app_id, json_t **out); /* newest first */
/* cp_store_blob_get: a module's bytes by sha256 (returned owned, nano_xmalloc). */
int cp_store_blob_get(cp_store *st, const char *sha256, char **data_out, size_t *len_out);

/* --- env and secrets --------------------------------------------------------------------- */

/* cp_store_env_vars: {NAME: value (parsed JSON)}, by name. */
int cp_store_env_vars(cp_store *st, int64_t app_id, json_t **out);
/* cp_store_env_kinds: {NAME: "var"|"secret"} over both tables. */
int cp_store_env_kinds(cp_store *st, int64_t app_id, json_t **out);
int cp_store_env_put(cp_store *st, int64_t app_id, const char *name, const char *value_json);
int cp_store_env_del(cp_store *st, int64_t app_id, const char *name); /* ENOTFOUND: none */
/* cp_store_secret_list: [{name, updated_at}], by name. Never the value. */
int cp_store_secret_list(cp_store *st, int64_t app_id, json_t **out);
int cp_store_secret_put(cp_store *st, int64_t app_id, const char *name, const cp_sealed *s);
int cp_store_secret_get(cp_store *st, int64_t app_id, const char *name, cp_sealed *out);
int cp_store_secret_del(cp_store *st, int64_t app_id, const char *name);

/* --- nodes and drains -------------------------------------------------------------------- */

/* [{name, version, addr, applied_seq, apps, first_seen, last_seen}], by name. */
int cp_store_node_list(cp_store *st, json_t **out);
int cp_store_node_count(cp_store *st, int64_t *out);
/* cp_store_node_delete: the node and its rows in drains (ON DELETE CASCADE); NANO_ENOTFOUND
 * when there is no such node. */
int cp_store_node_delete(cp_store *st, const char *name);
/* cp_store_drain_start: a drain of the app with one pending row per registered node. */
int cp_store_drain_start(cp_store *st, int64_t app_id, const char *app, uint64_t timeout_ms,
                         int64_t *id_out);
/* The app's latest drain: {id, state, started_at, timeout_ms, finished_at, nodes: [{node,
 * state: "draining"|"drained"|"timed_out", in_flight (from the node's last status), acked_at,
 * last_seen}] by node name}; NANO_ENOTFOUND when it has none. */
int cp_store_drain_get(cp_store *st, const char *app, json_t **out);

/* cp_store_node_hello: records a node's hello (inserted, or version/addr/last_seen updated);
 * the time is the transaction's. */
int cp_store_node_hello(cp_store *st, const char *name, const char *version, const char *addr);
/* cp_store_node_report: a node's status (applied_seq, apps as JSON text {app: APPSTATE}) seen
 * at seen_at (RFC 3339); inserts the node if it never said hello. */
int cp_store_node_report(cp_store *st, const char *name, int64_t applied_seq, const char *apps_json,
                         const char *seen_at);
/* cp_store_drain_ack: the node's pending row in the app's running drain becomes state ("acked"
 * or "timed_out"); *changed says whether there was such a row. */
int cp_store_drain_ack(cp_store *st, const char *app, const char *node, const char *state,
                       bool *changed);
/* cp_store_drain_ack_from_status: the node's pending rows whose app its last report no longer
 * lists (or lists as drained/timed_out) while its applied_seq is at or past the drain's
 * app.drain entry are acked (timed_out when it said so); *n_out rows changed. */
int cp_store_drain_ack_from_status(cp_store *st, const char *node, int64_t *n_out);
/* cp_store_drain_expire: pending rows of drains running for longer than their timeout_ms +
 * grace_ms become timed_out (a node that is down, or never answers); *n_out rows changed. */
int cp_store_drain_expire(cp_store *st, uint64_t grace_ms, int64_t *n_out);
/* cp_store_drains_finished: running drains with no pending row left: [{id, app_id (null once the
 * app is gone), app, n_nodes, n_timed_out}]. */
int cp_store_drains_finished(cp_store *st, json_t **out);
/* cp_store_drain_finish: ends drain id with state ("done" or "timed_out") at the transaction's
 * time. */
int cp_store_drain_finish(cp_store *st, int64_t id, const char *state);

/* --- the config log, the audit log, tokens ----------------------------------------------- */

/* cp_store_log_append: one delta (op as in shared/msg.h; payload borrowed, stored compact). */
int cp_store_log_append(cp_store *st, const char *op, const char *app, json_t *payload,
                        int64_t *seq_out);
int cp_store_log_seq(cp_store *st, int64_t *out); /* the last seq, 0 when empty */
/* cp_store_log_list: [{seq, at, op, app, payload}] with seq > after, oldest first. */
int cp_store_log_list(cp_store *st, int64_t after, int64_t limit, json_t **out);

int cp_store_audit_append(cp_store *st, const char *actor, const char *via, const char *op,
                          const char *app, json_t *detail);
/* cp_store_audit_list: [{id, at, actor, via, op, app, detail}], newest first, id < before_id
 * when before_id > 0. */
int cp_store_audit_list(cp_store *st, int64_t limit, int64_t before_id, json_t **out);

/* cp_store_token_put: sets the named token's sha256 (hex), adding the token if new. */
int cp_store_token_put(cp_store *st, const char *name, const char *hash_hex);
int cp_store_token_list(cp_store *st, json_t **out); /* [{name, hash}] */

/* --- a whole store (store_dump.c; `nanocp migrate --from --to`) ----------------------------- */

/* cp_store_dump: every row of the store as one canonical JSON value (returned owned), the same
 * for both backends: {"format": "nanocp-dump", "schema": N, "tables": {TABLE: [row...]}}, the
 * tables of migrations (NNNN_name.sql) in primary-key order, JSON columns parsed, blobs base64 (a
 * secret's nonce and tag hex). Read in one snapshot (SQLite: one read transaction; etcd: one
 * revision). Not in it: an env var's updated_at (the etcd store keeps none) and what a backend
 * derives (hostname claims, schema_migrations). Not in a transaction. */
int cp_store_dump(cp_store *st, json_t **out);
/* cp_store_load: writes dump (borrowed) into st, which must hold no row (apps, log, nodes,
 * tokens, ...: else NANO_ESTATE "store_not_empty", nothing written) and have the dump's schema
 * version. SQLite: one transaction. etcd: the meta key gets "loading" first (such a store is
 * refused on open), then code, records, and the meta key (id counters, seq) last, in
 * transactions within etcd's limits; an interrupted load leaves a store marked incomplete (delete
 * the prefix and load again). Errors are one line in err. Not in a transaction. */
int cp_store_load(cp_store *st, json_t *dump, nano_error *err);
/* cp_store_dump_counts: "N apps, N deployments, N blobs (B bytes), ..." of a dump. */
void cp_store_dump_counts(const json_t *dump, char *out, size_t cap);

#endif
