/* store_int.h: what the store's files share (store.c: plumbing, transactions, opening and
 * migrations, apps, deployments, env and secrets; store_fleet.c: nodes, drains, the config and
 * audit logs, tokens): the handle and the statement plumbing; and the etcd backend
 * (store_etcd.c, store_etcd_fleet.c: cp_estore, one function per cp_store_* function, which
 * forwards to it when the store is etcd). Not an API: store.h is. */
#ifndef CP_STORE_INT_H
#define CP_STORE_INT_H

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>

#include <sqlite3.h>

#include "alloc.h"
#include "buf.h"
#include "kvtx.h"

#define MAX_STMTS 96

typedef struct cp_estore cp_estore;

struct cp_store {
    cp_estore *etcd; /* the etcd backend; NULL: SQLite (everything below) */
    sqlite3 *db;
    char *path;
    const nano_embedded *migs;
    size_t n_migs;
    struct {
        const char *sql;
        sqlite3_stmt *q;
    } stmts[MAX_STMTS];
    size_t n_stmts;
    bool in_tx;
    char now[32];
    char errmsg[256];
};

/* Plumbing (store.c): statements prepared once per SQL string and kept; rows as JSON. */
int cp_store__fail_sql(cp_store *st, int src);
sqlite3_stmt *cp_store__stmt(cp_store *st, const char *sql);
void cp_store__done(sqlite3_stmt *q);
int cp_store__exec_q(cp_store *st, sqlite3_stmt *q);
void cp_store__bind_text(sqlite3_stmt *q, int i, const char *s);
json_t *cp_store__row_json(sqlite3_stmt *q);
int cp_store__rows_json(cp_store *st, sqlite3_stmt *q, json_t **out);
int cp_store__row_one(cp_store *st, sqlite3_stmt *q, json_t **out);
int cp_store__int_one(cp_store *st, sqlite3_stmt *q, int64_t *out);
int cp_store__exec_sql(cp_store *st, const char *sql);

/* --- the etcd backend ------------------------------------------------------------------------- */

#define CP_EKEY_MAX 1024
/* Code is stored in chunks of this size: one put each, well below etcd's 1.5 MiB request
 * limit once base64 and JSON are added. */
#define CP_ESTORE_CHUNK ((size_t)512 << 10)
/* Blobs deleted in one transaction (app_delete, blob_sweep): each is one range delete. */
#define CP_ESTORE_GC_MAX 64

struct cp_estore {
    cp_etcd *e;
    char *prefix;   /* "/nano/": every key starts with it */
    char *meta_key; /* prefix + "meta/state" */
    cp_kvtx tx;     /* tx.active: in a transaction */
    /* The config-log entries this transaction appended: one key, named by the last seq
     * (an env.patch of many names is many entries, and etcd's operations are bounded) */
    json_t *log_batch;
    char log_batch_key[CP_EKEY_MAX];
    char now[32];
    char errmsg[256];
    int64_t lease; /* cp_estore_lead: the lease P/leader is put with (0: none yet) */
};

int cp_estore_open(const char *url, const cp_etcd_tls *tls, bool migrate, cp_estore **out,
                   nano_error *err);
void cp_estore_free(cp_estore *es);
int cp_estore_begin(cp_estore *es);
int cp_estore_commit(cp_estore *es);
void cp_estore_rollback(cp_estore *es);
int cp_estore_schema_version(cp_estore *es, int64_t *out);
int cp_estore_secret_keys(cp_estore *es, json_t **out);
int cp_estore_app_get(cp_estore *es, const char *name, json_t **out);
int cp_estore_app_list(cp_estore *es, json_t **out);
int cp_estore_app_insert(cp_estore *es, const char *name, const nano_app_spec *spec,
                         int64_t *id_out);
int cp_estore_app_update(cp_estore *es, int64_t id, const nano_app_spec *spec);
int cp_estore_app_set_state(cp_estore *es, int64_t id, const char *state);
int cp_estore_app_activate(cp_estore *es, int64_t id, int64_t deployment_id);
int cp_estore_app_delete(cp_estore *es, int64_t id);
int cp_estore_hostname_owner(cp_estore *es, const char *host, const char *prefix, int64_t except_id,
                             char *name_out);
int cp_estore_default_owner(cp_estore *es, int64_t except_id, char *name_out);
int cp_estore_deployment_insert(cp_estore *es, int64_t app_id, const char *sha256, const char *main,
                                const cp_module *mods, size_t n_mods, const char *created_by,
                                int64_t *id_out, int64_t *version_out);
int cp_estore_deployment_get(cp_estore *es, int64_t app_id, int64_t version, json_t **out);
int cp_estore_deployment_list(cp_estore *es, int64_t app_id, json_t **out);
int cp_estore_blob_get(cp_estore *es, const char *sha256, char **data_out, size_t *len_out);
int cp_estore_blob_sweep(cp_estore *es, int64_t min_age_ms, int64_t *n_out);
int cp_estore_env_vars(cp_estore *es, int64_t app_id, json_t **out);
int cp_estore_env_kinds(cp_estore *es, int64_t app_id, json_t **out);
int cp_estore_env_put(cp_estore *es, int64_t app_id, const char *name, const char *value_json);
int cp_estore_env_del(cp_estore *es, int64_t app_id, const char *name);
int cp_estore_secret_list(cp_estore *es, int64_t app_id, json_t **out);
int cp_estore_secret_put(cp_estore *es, int64_t app_id, const char *name, const cp_sealed *s);
int cp_estore_secret_get(cp_estore *es, int64_t app_id, const char *name, cp_sealed *out);
int cp_estore_secret_del(cp_estore *es, int64_t app_id, const char *name);
int cp_estore_node_list(cp_estore *es, json_t **out);
int cp_estore_node_count(cp_estore *es, int64_t *out);
int cp_estore_node_delete(cp_estore *es, const char *name);
int cp_estore_drain_start(cp_estore *es, int64_t app_id, const char *app, uint64_t timeout_ms,
                          int64_t *id_out);
int cp_estore_drain_get(cp_estore *es, const char *app, json_t **out);
int cp_estore_node_hello(cp_estore *es, const char *name, const char *version, const char *addr);
int cp_estore_node_report(cp_estore *es, const char *name, int64_t applied_seq,
                          const char *apps_json, const char *seen_at);
int cp_estore_drain_ack(cp_estore *es, const char *app, const char *node, const char *state,
                        bool *changed);
int cp_estore_drain_ack_from_status(cp_estore *es, const char *node, int64_t *n_out);
int cp_estore_drain_expire(cp_estore *es, uint64_t grace_ms, int64_t *n_out);
int cp_estore_drains_finished(cp_estore *es, json_t **out);
int cp_estore_drain_finish(cp_estore *es, int64_t id, const char *state);
int cp_estore_log_append(cp_estore *es, const char *op, const char *app, json_t *payload,
                         int64_t *seq_out);
int cp_estore_log_seq(cp_estore *es, int64_t *out);
int cp_estore_log_list(cp_estore *es, int64_t after, int64_t limit, json_t **out);
int cp_estore_audit_append(cp_estore *es, const char *actor, const char *via, const char *op,
                           const char *app, json_t *detail);
int cp_estore_audit_list(cp_estore *es, int64_t limit, int64_t before_id, json_t **out);
int cp_estore_token_put(cp_estore *es, const char *name, const char *hash_hex);
int cp_estore_token_list(cp_estore *es, json_t **out);
int cp_estore_lead(cp_estore *es, const char *who, int64_t ttl_ms, bool *is_leader);
int cp_estore_watch_start(cp_estore *es, cp_store_changed_cb changed, void *arg,
                          cp_store_watch **out, nano_error *err);

/* Plumbing of the etcd backend (store_etcd.c). Every function of the backend runs in the open
 * transaction, or in one of its own (__enter says which; __leave commits or rolls it back). */
const char *cp_estore__key(cp_estore *es, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cp_estore__fail(cp_estore *es, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cp_estore__get_json(cp_estore *es, const char *key, json_t **out);
int cp_estore__get_text(cp_estore *es, const char *key, char **out, size_t *len);
bool cp_estore__exists(cp_estore *es, const char *key, int *rc);
void cp_estore__put_json(cp_estore *es, const char *key, const json_t *v);
int cp_estore__range_json(cp_estore *es, const char *start, const char *end, int64_t limit,
                          json_t **out);
int64_t cp_estore__next_id(cp_estore *es, const char *counter);
int cp_estore__enter(cp_estore *es, bool *implicit);
int cp_estore__leave(cp_estore *es, bool implicit, int rc);
int cp_estore__app_name(cp_estore *es, int64_t id, char *name_out);
int64_t cp_estore__time_ms(const char *rfc3339);
int cp_estore__strcmp_p(const void *a, const void *b);

#endif
