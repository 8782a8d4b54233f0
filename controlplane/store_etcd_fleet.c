/* store_etcd_fleet.c: the etcd store backend for nodes and drains, the config log, the audit
 * log and API tokens (store.h; plumbing in store_etcd.c). A drain is one key holding its
 * per-node rows, so that starting a drain on many nodes stays one put (etcd's operations per
 * transaction are bounded). */
#include "store_int.h"
#include "log.h"

/* --- nodes ------------------------------------------------------------------------------------ */

static json_t *node_view(json_t *rec)
{
    json_t *v = json_deep_copy(rec);
    json_object_del(v, "id");
    return v;
}

int cp_estore_node_list(cp_estore *es, json_t **out)
{
    char k[CP_EKEY_MAX];
    json_t *recs = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 &&
        (rc = cp_estore__range_json(es, cp_estore__key(es, k, "nodes/"), NULL, 0, &recs)) == 0) {
        json_t *list = json_array();
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r) {
            json_array_append_new(list, node_view(r));
        }
        *out = list;
    }
    json_decref(recs);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_node_count(cp_estore *es, int64_t *out)
{
    char k[CP_EKEY_MAX];
    cp_kvtx_list l = {0};
    nano_error e = {0};
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 &&
        (rc = cp_kvtx_range(&es->tx, cp_estore__key(es, k, "nodes/"), NULL, 0, &l, &e)) != 0)
        rc = cp_estore__fail(es, rc, "%s", e.message);
    if (rc == 0)
        *out = (int64_t)l.n;
    cp_kvtx_list_fini(&l);
    return cp_estore__leave(es, imp, rc);
}

/* Every drain, oldest first (returned owned). */
static int drains_all(cp_estore *es, json_t **out)
{
    char k[CP_EKEY_MAX];
    return cp_estore__range_json(es, cp_estore__key(es, k, "drains/"), NULL, 0, out);
}

static void drain_store(cp_estore *es, json_t *d)
{
    char k[CP_EKEY_MAX];
    cp_estore__put_json(es,
                        cp_estore__key(es, k, "drains/%020lld",
                                       (long long)json_integer_value(json_object_get(d, "id"))),
                        d);
}

static bool is_draining(json_t *d)
{
    const char *s = json_string_value(json_object_get(d, "state"));
    return s != NULL && strcmp(s, "draining") == 0;
}

int cp_estore_node_delete(cp_estore *es, const char *name)
{
    char k[CP_EKEY_MAX];
    json_t *drains = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    cp_estore__key(es, k, "nodes/%s", name);
    if (rc == 0 && !cp_estore__exists(es, k, &rc) && rc == 0)
        rc = NANO_ENOTFOUND;
    if (rc == 0)
        rc = drains_all(es, &drains);
    if (rc == 0) {
        cp_kvtx_del(&es->tx, k);
        /* drain_nodes ON DELETE CASCADE: the running drains stop waiting for it (a finished
         * drain's row is hidden by the join in drain_get, as the node is gone) */
        size_t i;
        json_t *d;
        json_array_foreach(drains, i, d) {
            json_t *nodes = json_object_get(d, "nodes");
            if (is_draining(d) && json_object_get(nodes, name) != NULL) {
                json_object_del(nodes, name);
                drain_store(es, d);
            }
        }
    }
    json_decref(drains);
    return cp_estore__leave(es, imp, rc);
}

/* Every node's record by name (returned owned). */
static int nodes_by_name(cp_estore *es, json_t **out)
{
    json_t *list = NULL;
    char k[CP_EKEY_MAX];
    int rc = cp_estore__range_json(es, cp_estore__key(es, k, "nodes/"), NULL, 0, &list);
    if (rc != 0)
        return rc;
    json_t *by = json_object();
    size_t i;
    json_t *n;
    json_array_foreach(list, i, n) {
        json_object_set(by, json_string_value(json_object_get(n, "name")), n);
    }
    json_decref(list);
    *out = by;
    return 0;
}

int cp_estore_drain_start(cp_estore *es, int64_t app_id, const char *app, uint64_t timeout_ms,
                          int64_t *id_out)
{
    json_t *nodes = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && app == NULL)
        rc = cp_estore__fail(es, NANO_ESTATE, "NOT NULL constraint failed: drains.app");
    if (rc == 0)
        rc = nodes_by_name(es, &nodes);
    if (rc == 0) {
        int64_t id = cp_estore__next_id(es, "drain");
        json_t *rows = json_object();
        const char *name;
        json_t *n;
        json_object_foreach(nodes, name, n) {
            json_object_set_new(rows, name,
                                json_pack("{s:O, s:s, s:n}", "node_id", json_object_get(n, "id"),
                                          "state", "pending", "acked_at"));
        }
        json_t *d = json_pack("{s:I, s:I, s:s, s:s, s:I, s:s, s:n, s:o}", "id", (json_int_t)id,
                              "app_id", (json_int_t)app_id, "app", app, "started_at", es->now,
                              "timeout_ms", (json_int_t)timeout_ms, "state", "draining",
                              "finished_at", "nodes", rows);
        drain_store(es, d);
        json_decref(d);
        *id_out = id;
    }
    json_decref(nodes);
    return cp_estore__leave(es, imp, rc);
}

/* A drain row's node, when it is still the node the row was made for (SQLite's join on
 * node_id: a node removed, even if registered again since, has no rows). */
static json_t *row_node(json_t *nodes, const char *name, json_t *row)
{
    json_t *n = json_object_get(nodes, name);
    if (n == NULL || json_integer_value(json_object_get(n, "id")) !=
                         json_integer_value(json_object_get(row, "node_id")))
        return NULL;
    return n;
}

int cp_estore_drain_get(cp_estore *es, const char *app, json_t **out)
{
    json_t *drains = NULL, *nodes = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = drains_all(es, &drains);
    if (rc == 0)
        rc = nodes_by_name(es, &nodes);
    json_t *latest = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(drains, i, d) {
        const char *a = json_string_value(json_object_get(d, "app"));
        if (a != NULL && strcmp(a, app) == 0)
            latest = d;
    }
    if (rc == 0 && latest == NULL)
        rc = NANO_ENOTFOUND;
    if (rc == 0) {
        static const char *const shown[][2] = {
            {"pending", "draining"}, {"acked", "drained"}, {"timed_out", "timed_out"}};
        json_t *list = json_array();
        const char *name;
        json_t *row;
        /* json objects keep their keys in insertion order, not sorted: sort by name */
        size_t n_rows = json_object_size(json_object_get(latest, "nodes"));
        const char **names = nano_xcalloc(n_rows + 1, sizeof *names);
        size_t k = 0;
        json_object_foreach(json_object_get(latest, "nodes"), name, row) {
            names[k++] = name;
        }
        qsort(names, k, sizeof *names, cp_estore__strcmp_p);
        for (size_t j = 0; j < k; j++) {
            row = json_object_get(json_object_get(latest, "nodes"), names[j]);
            json_t *n = row_node(nodes, names[j], row);
            if (n == NULL)
                continue;
            const char *state = json_string_value(json_object_get(row, "state"));
            const char *s = "timed_out";
            for (size_t m = 0; m < 3; m++)
                if (state != NULL && strcmp(state, shown[m][0]) == 0)
                    s = shown[m][1];
            json_t *in_flight = json_object_get(json_object_get(json_object_get(n, "apps"), app),
                                                "in_flight");
            json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:O, s:O}", "node", names[j],
                                                  "state", s, "in_flight",
                                                  in_flight && !json_is_null(in_flight)
                                                      ? json_incref(in_flight)
                                                      : json_integer(0),
                                                  "acked_at", json_object_get(row, "acked_at"),
                                                  "last_seen", json_object_get(n, "last_seen")));
        }
        nano_free(names);
        json_t *v = json_pack("{s:O, s:O, s:O, s:O, s:O, s:o}", "id", json_object_get(latest, "id"),
                              "state", json_object_get(latest, "state"), "started_at",
                              json_object_get(latest, "started_at"), "timeout_ms",
                              json_object_get(latest, "timeout_ms"), "finished_at",
                              json_object_get(latest, "finished_at"), "nodes", list);
        *out = v;
    }
    json_decref(drains);
    json_decref(nodes);
    return cp_estore__leave(es, imp, rc);
}

/* A node's record, or a new one (first seen at when). */
static int node_load(cp_estore *es, const char *name, const char *when, json_t **rec)
{
    char k[CP_EKEY_MAX];
    int rc = cp_estore__get_json(es, cp_estore__key(es, k, "nodes/%s", name), rec);
    if (rc != NANO_ENOTFOUND)
        return rc;
    *rec = json_pack("{s:I, s:s, s:s, s:s, s:I, s:{}, s:s, s:s}", "id",
                     (json_int_t)cp_estore__next_id(es, "node"), "name", name, "version", "",
                     "addr", "", "applied_seq", (json_int_t)0, "apps", "first_seen", when,
                     "last_seen", when);
    return 0;
}

static void node_store(cp_estore *es, const char *name, json_t *rec)
{
    char k[CP_EKEY_MAX];
    cp_estore__put_json(es, cp_estore__key(es, k, "nodes/%s", name), rec);
}

int cp_estore_node_hello(cp_estore *es, const char *name, const char *version, const char *addr)
{
    json_t *rec = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (name == NULL || version == NULL || addr == NULL))
        rc = cp_estore__fail(es, NANO_ESTATE, "NOT NULL constraint failed: nodes");
    if (rc == 0)
        rc = node_load(es, name, es->now, &rec);
    if (rc == 0) {
        json_object_set_new(rec, "version", json_string(version));
        json_object_set_new(rec, "addr", json_string(addr));
        json_object_set_new(rec, "last_seen", json_string(es->now));
        node_store(es, name, rec);
    }
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_node_report(cp_estore *es, const char *name, int64_t applied_seq,
                          const char *apps_json, const char *seen_at)
{
    json_t *rec = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (name == NULL || apps_json == NULL || seen_at == NULL))
        rc = cp_estore__fail(es, NANO_ESTATE, "NOT NULL constraint failed: nodes");
    if (rc == 0)
        rc = node_load(es, name, seen_at, &rec);
    if (rc == 0) {
        json_t *apps = json_loads(apps_json, JSON_DECODE_ANY, NULL);
        json_object_set_new(rec, "applied_seq", json_integer(applied_seq));
        json_object_set_new(rec, "apps", apps ? apps : json_null());
        json_object_set_new(rec, "last_seen", json_string(seen_at));
        node_store(es, name, rec);
    }
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

static bool row_state_valid(const char *s)
{
    return s != NULL &&
           (strcmp(s, "pending") == 0 || strcmp(s, "acked") == 0 || strcmp(s, "timed_out") == 0);
}

static void row_set(json_t *row, const char *state, const char *now)
{
    json_object_set_new(row, "state", json_string(state));
    json_object_set_new(row, "acked_at", json_string(now));
}

static bool row_pending(json_t *row)
{
    const char *s = json_string_value(json_object_get(row, "state"));
    return s != NULL && strcmp(s, "pending") == 0;
}

int cp_estore_drain_ack(cp_estore *es, const char *app, const char *node, const char *state,
                        bool *changed)
{
    json_t *drains = NULL, *nodes = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && !row_state_valid(state))
        rc = cp_estore__fail(es, NANO_ESTATE, "CHECK constraint failed: drain_nodes.state");
    if (rc == 0)
        rc = drains_all(es, &drains);
    if (rc == 0)
        rc = nodes_by_name(es, &nodes);
    bool any = false;
    size_t i;
    json_t *d;
    json_array_foreach(drains, i, d) {
        const char *a = json_string_value(json_object_get(d, "app"));
        json_t *row = json_object_get(json_object_get(d, "nodes"), node);
        if (rc != 0 || !is_draining(d) || a == NULL || strcmp(a, app) != 0 || row == NULL ||
            !row_pending(row) || row_node(nodes, node, row) == NULL)
            continue;
        row_set(row, state, es->now);
        drain_store(es, d);
        any = true;
    }
    if (rc == 0)
        *changed = any;
    json_decref(drains);
    json_decref(nodes);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_drain_ack_from_status(cp_estore *es, const char *node, int64_t *n_out)
{
    char k[CP_EKEY_MAX];
    json_t *drains = NULL, *rec = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (rc = cp_estore__get_json(es, cp_estore__key(es, k, "nodes/%s", node), &rec)) ==
                       NANO_ENOTFOUND) {
        *n_out = 0;
        return cp_estore__leave(es, imp, 0);
    }
    if (rc == 0)
        rc = drains_all(es, &drains);
    int64_t n = 0;
    int64_t applied = json_integer_value(json_object_get(rec, "applied_seq"));
    size_t i;
    json_t *d;
    json_array_foreach(drains, i, d) {
        const char *app = json_string_value(json_object_get(d, "app"));
        json_t *row = json_object_get(json_object_get(d, "nodes"), node);
        if (rc != 0 || !is_draining(d) || app == NULL || row == NULL || !row_pending(row) ||
            json_integer_value(json_object_get(row, "node_id")) !=
                json_integer_value(json_object_get(rec, "id")))
            continue;
        /* the app's last app.drain in the config log (cp_estore_log_append keeps it) */
        char *seq_text = NULL;
        size_t len = 0;
        rc = cp_estore__get_text(es, cp_estore__key(es, k, "drain_seq/%s", app), &seq_text, &len);
        int64_t drain_seq = rc == 0 ? strtoll(seq_text, NULL, 10) : 0;
        nano_free(seq_text);
        if (rc == NANO_ENOTFOUND)
            rc = 0;
        if (rc != 0 || applied < drain_seq)
            continue;
        const char *st = json_string_value(
            json_object_get(json_object_get(json_object_get(rec, "apps"), app), "state"));
        if (st != NULL && strcmp(st, "drained") != 0 && strcmp(st, "timed_out") != 0)
            continue;
        row_set(row, st != NULL && strcmp(st, "timed_out") == 0 ? "timed_out" : "acked", es->now);
        drain_store(es, d);
        n++;
    }
    if (rc == 0)
        *n_out = n;
    json_decref(drains);
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_drain_expire(cp_estore *es, uint64_t grace_ms, int64_t *n_out)
{
    json_t *drains = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = drains_all(es, &drains);
    int64_t n = 0, now = cp_estore__time_ms(es->now);
    size_t i;
    json_t *d;
    json_array_foreach(drains, i, d) {
        int64_t started = cp_estore__time_ms(json_string_value(json_object_get(d, "started_at")));
        int64_t timeout = json_integer_value(json_object_get(d, "timeout_ms"));
        if (rc != 0 || !is_draining(d) || now - started < timeout + (int64_t)grace_ms)
            continue;
        const char *name;
        json_t *row;
        bool touched = false;
        json_object_foreach(json_object_get(d, "nodes"), name, row) {
            if (row_pending(row)) {
                row_set(row, "timed_out", es->now);
                touched = true;
                n++;
            }
        }
        if (touched)
            drain_store(es, d);
    }
    if (rc == 0)
        *n_out = n;
    json_decref(drains);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_drains_finished(cp_estore *es, json_t **out)
{
    json_t *drains = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = drains_all(es, &drains);
    if (rc == 0) {
        json_t *list = json_array();
        size_t i;
        json_t *d;
        json_array_foreach(drains, i, d) {
            if (!is_draining(d))
                continue;
            int64_t n = 0, n_timed_out = 0;
            bool pending = false;
            const char *name;
            json_t *row;
            json_object_foreach(json_object_get(d, "nodes"), name, row) {
                const char *s = json_string_value(json_object_get(row, "state"));
                n++;
                n_timed_out += s != NULL && strcmp(s, "timed_out") == 0;
                pending = pending || row_pending(row);
            }
            if (!pending)
                json_array_append_new(
                    list,
                    json_pack("{s:O, s:O, s:O, s:I, s:I}", "id", json_object_get(d, "id"), "app_id",
                              json_object_get(d, "app_id"), "app", json_object_get(d, "app"),
                              "n_nodes", (json_int_t)n, "n_timed_out", (json_int_t)n_timed_out));
        }
        *out = list;
    }
    json_decref(drains);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_drain_finish(cp_estore *es, int64_t id, const char *state)
{
    char k[CP_EKEY_MAX];
    json_t *d = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 &&
        (state == NULL || (strcmp(state, "draining") != 0 && strcmp(state, "done") != 0 &&
                           strcmp(state, "timed_out") != 0)))
        rc = cp_estore__fail(es, NANO_ESTATE, "CHECK constraint failed: drains.state");
    if (rc == 0 &&
        (rc = cp_estore__get_json(es, cp_estore__key(es, k, "drains/%020lld", (long long)id),
                                  &d)) == NANO_ENOTFOUND)
        rc = 0; /* SQLite's UPDATE of no row */
    else if (rc == 0) {
        json_object_set_new(d, "state", json_string(state));
        json_object_set_new(d, "finished_at", json_string(es->now));
        drain_store(es, d);
    }
    json_decref(d);
    return cp_estore__leave(es, imp, rc);
}

/* --- the config log and the audit log ---------------------------------------------------------- */

static bool log_op_valid(const char *op)
{
    static const char *const ops[] = {"app.put",    "code.put",   "env.put",   "env.del",
                                      "secret.put", "secret.del", "app.drain", "app.remove"};
    for (size_t i = 0; op != NULL && i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i]) == 0)
            return true;
    return false;
}

int cp_estore_log_append(cp_estore *es, const char *op, const char *app, json_t *payload,
                         int64_t *seq_out)
{
    char k[CP_EKEY_MAX];
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (!log_op_valid(op) || app == NULL || payload == NULL))
        rc = cp_estore__fail(es, NANO_ESTATE, "CHECK constraint failed: config_log");
    if (rc == 0) {
        /* the seq is the store's own counter, contiguous 1, 2, 3 ... (not etcd's revision:
         * data planes find a gap by the seq) */
        int64_t seq = json_integer_value(json_object_get(es->tx.meta, "seq")) + 1;
        json_object_set_new(es->tx.meta, "seq", json_integer(seq));
        es->tx.meta_dirty = true;
        json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:O}", "seq", (json_int_t)seq, "at", es->now,
                              "op", op, "app", app, "payload", payload);
        if (es->log_batch == NULL)
            es->log_batch = json_array();
        else
            cp_kvtx_forget(&es->tx, es->log_batch_key);
        json_array_append_new(es->log_batch, e);
        cp_estore__key(es, es->log_batch_key, "log/%020lld", (long long)seq);
        cp_estore__put_json(es, es->log_batch_key, es->log_batch);
        if (strcmp(op, "app.drain") == 0) {
            char text[24];
            snprintf(text, sizeof text, "%lld", (long long)seq);
            cp_kvtx_put(&es->tx, cp_estore__key(es, k, "drain_seq/%s", app), text, strlen(text));
        }
        if (seq_out != NULL)
            *seq_out = seq;
    }
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_log_seq(cp_estore *es, int64_t *out)
{
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        *out = json_integer_value(json_object_get(es->tx.meta, "seq"));
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_log_list(cp_estore *es, int64_t after, int64_t limit, json_t **out)
{
    char k[CP_EKEY_MAX], end[CP_EKEY_MAX];
    json_t *batches = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    /* A key holds the entries one transaction appended and is named by the last one's seq:
     * the first key at or past after + 1 holds it. limit keys hold at least limit entries. */
    cp_estore__key(es, k, "log/%020lld", (long long)(after < 0 ? 1 : after + 1));
    cp_estore__key(es, end, "log0"); /* "log/" + 1 */
    if (rc == 0)
        rc = cp_estore__range_json(es, k, end, limit > 0 ? limit : 1, &batches);
    if (rc == 0) {
        json_t *list = json_array();
        size_t i, j;
        json_t *b, *e;
        json_array_foreach(batches, i, b) {
            json_array_foreach(b, j, e) {
                if (json_integer_value(json_object_get(e, "seq")) > after &&
                    (int64_t)json_array_size(list) < limit)
                    json_array_append(list, e);
            }
        }
        *out = list;
    }
    json_decref(batches);
    return cp_estore__leave(es, imp, rc);
}

/* Audit entries with ids in [lo, hi], oldest first. */
static int span(cp_estore *es, int64_t lo, int64_t hi, json_t **out)
{
    char a[CP_EKEY_MAX], b[CP_EKEY_MAX];
    if (hi < lo) {
        *out = json_array();
        return 0;
    }
    cp_estore__key(es, a, "audit/%020lld", (long long)lo);
    cp_estore__key(es, b, "audit/%020lld", (long long)hi + 1);
    return cp_estore__range_json(es, a, b, 0, out);
}

int cp_estore_audit_append(cp_estore *es, const char *actor, const char *via, const char *op,
                           const char *app, json_t *detail)
{
    char k[CP_EKEY_MAX];
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (actor == NULL || via == NULL || op == NULL))
        rc = cp_estore__fail(es, NANO_ESTATE, "NOT NULL constraint failed: audit_log");
    if (rc == 0) {
        int64_t id = cp_estore__next_id(es, "audit");
        json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s?, s:o}", "id", (json_int_t)id, "at",
                              es->now, "actor", actor, "via", via, "op", op, "app", app, "detail",
                              detail ? json_incref(detail) : json_object());
        cp_estore__put_json(es, cp_estore__key(es, k, "audit/%020lld", (long long)id), e);
        json_decref(e);
    }
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_audit_list(cp_estore *es, int64_t limit, int64_t before_id, json_t **out)
{
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    /* ids are contiguous (entries are never deleted): the newest are a key range */
    int64_t last =
        json_integer_value(json_object_get(json_object_get(es->tx.meta, "next"), "audit"));
    int64_t hi = before_id > 0 && before_id - 1 < last ? before_id - 1 : last;
    int64_t lo = limit > 0 ? hi - limit + 1 : hi + 1;
    json_t *asc = NULL;
    if (rc == 0)
        rc = span(es, lo < 1 ? 1 : lo, hi, &asc);
    if (rc == 0) {
        json_t *list = json_array();
        for (size_t i = json_array_size(asc); i > 0; i--)
            json_array_append(list, json_array_get(asc, i - 1));
        *out = list;
    }
    json_decref(asc);
    return cp_estore__leave(es, imp, rc);
}

/* --- tokens ----------------------------------------------------------------------------------- */

int cp_estore_token_put(cp_estore *es, const char *name, const char *hash_hex)
{
    char k[CP_EKEY_MAX];
    json_t *all = NULL, *mine = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (name == NULL || hash_hex == NULL || strlen(hash_hex) != 64))
        rc = cp_estore__fail(es, NANO_ESTATE, "CHECK constraint failed: api_tokens.hash");
    if (rc == 0)
        rc = cp_estore__range_json(es, cp_estore__key(es, k, "tokens/"), NULL, 0, &all);
    size_t i;
    json_t *t;
    json_array_foreach(all, i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        const char *h = json_string_value(json_object_get(t, "hash"));
        if (n != NULL && strcmp(n, name) == 0)
            mine = t;
        else if (rc == 0 && h != NULL && strcmp(h, hash_hex) == 0)
            rc = cp_estore__fail(es, NANO_ESTATE, "UNIQUE constraint failed: api_tokens.hash");
    }
    const char *old = json_string_value(json_object_get(mine, "hash"));
    if (rc == 0 && (old == NULL || strcmp(old, hash_hex) != 0)) {
        json_int_t id = mine != NULL ? json_integer_value(json_object_get(mine, "id"))
                                     : (json_int_t)cp_estore__next_id(es, "token");
        json_t *rec = json_pack("{s:I, s:s, s:s, s:s}", "id", id, "name", name, "hash", hash_hex,
                                "created_at", es->now);
        cp_estore__put_json(es, cp_estore__key(es, k, "tokens/%s", name), rec);
        json_decref(rec);
    }
    json_decref(all);
    return cp_estore__leave(es, imp, rc);
}

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return x < y ? -1 : x > y;
}

int cp_estore_token_list(cp_estore *es, json_t **out)
{
    char k[CP_EKEY_MAX];
    json_t *all = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = cp_estore__range_json(es, cp_estore__key(es, k, "tokens/"), NULL, 0, &all);
    if (rc == 0) {
        size_t n = json_array_size(all);
        json_t **v = nano_xcalloc(n + 1, sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(all, i);
        qsort(v, n, sizeof *v, by_id);
        json_t *list = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(list,
                                  json_pack("{s:O, s:O}", "name", json_object_get(v[i], "name"),
                                            "hash", json_object_get(v[i], "hash")));
        nano_free(v);
        *out = list;
    }
    json_decref(all);
    return cp_estore__leave(es, imp, rc);
}

/* --- leadership (fleet-wide duties) ------------------------------------------------------------ */

/* P/leader holds the name of the replica that runs the fleet's duties, put with a lease of that
 * replica: renewed by each call, it vanishes ttl_ms after its holder stops calling (crashed,
 * stopped, cut off), and the next replica to call takes it. */
int cp_estore_lead(cp_estore *es, const char *who, int64_t ttl_ms, bool *is_leader)
{
    nano_error err = {0};
    char key[CP_EKEY_MAX];
    snprintf(key, sizeof key, "%sleader", es->prefix);
    int rc = 0;
    if (es->lease != 0 && (rc = cp_etcd_lease_keepalive(es->e, es->lease, NULL, &err)) != 0) {
        if (rc != NANO_ENOTFOUND)
            goto fail;
        es->lease = 0; /* expired: this replica lost the lead, if it had it */
    }
    if (es->lease == 0) {
        int64_t ttl_s = ttl_ms < 2000 ? 2 : (ttl_ms + 999) / 1000;
        if ((rc = cp_etcd_lease_grant(es->e, ttl_s, &es->lease, NULL, &err)) != 0)
            goto fail;
    }
    size_t key_len = strlen(key), who_len = strlen(who);
    cp_etcd_cmp absent = {.key = key,
                          .key_len = key_len,
                          .target = CP_ETCD_CMP_CREATE,
                          .op = CP_ETCD_EQUAL,
                          .number = 0};
    cp_etcd_op take = {.type = CP_ETCD_OP_PUT,
                       .key = key,
                       .key_len = key_len,
                       .value = who,
                       .value_len = who_len,
                       .lease = es->lease};
    cp_etcd_op look = {.type = CP_ETCD_OP_RANGE, .key = key, .key_len = key_len};
    cp_etcd_txn_req req = {.cmps = &absent,
                           .n_cmps = 1,
                           .success = &take,
                           .n_success = 1,
                           .failure = &look,
                           .n_failure = 1};
    cp_etcd_txn_result *res = NULL;
    if ((rc = cp_etcd_txn(es->e, &req, &res, &err)) != 0)
        goto fail;
    bool lead = res->succeeded;
    if (!lead && res->n_responses == 1 && res->responses[0].n_kvs == 1) {
        const cp_etcd_kv *kv = &res->responses[0].kvs[0];
        lead = kv->lease == es->lease && kv->value_len == who_len &&
               memcmp(kv->value, who, who_len) == 0;
    }
    cp_etcd_txn_result_free(res);
    *is_leader = lead;
    return 0;
fail:
    snprintf(es->errmsg, sizeof es->errmsg, "%.200s", err.message);
    return rc;
}

/* --- the change watch ---------------------------------------------------------------------------- */

struct cp_store_watch {
    cp_etcd_watch *w;
    cp_store_changed_cb changed;
    void *arg;
};

static void on_meta(const cp_etcd_watch_msg *m, void *arg)
{
    cp_store_watch *sw = arg;
    if (m->kind == CP_ETCD_WATCH_EVENTS && m->n_events > 0)
        sw->changed(sw->arg);
    else if (m->kind == CP_ETCD_WATCH_COMPACTED || m->kind == CP_ETCD_WATCH_FAILED)
        NANO_WARN("cp.store_watch_ended", "detail=%s error=%s",
                  "changes of other replicas are published at the next heartbeat",
                  m->error != NULL ? m->error->message : "compacted");
}

int cp_estore_watch_start(cp_estore *es, cp_store_changed_cb changed, void *arg,
                          cp_store_watch **out, nano_error *err)
{
    cp_store_watch *sw = nano_xcalloc(1, sizeof *sw);
    sw->changed = changed;
    sw->arg = arg;
    cp_etcd_watch_req req = {.key = es->meta_key, .key_len = strlen(es->meta_key)};
    int rc = cp_etcd_watch_start(es->e, &req, on_meta, sw, &sw->w, err);
    if (rc != 0) {
        nano_free(sw);
        return rc;
    }
    *out = sw;
    return 0;
}

void cp_store_watch_stop(cp_store_watch *sw)
{
    if (sw == NULL)
        return;
    cp_etcd_watch_stop(sw->w);
    nano_free(sw);
}
