/* store_fleet.c: the store's SQL for nodes and drains, the config log, the audit log and API
 * tokens (store.h; plumbing in store_int.h). */
#include "store_int.h"

/* --- nodes and drains ----------------------------------------------------------------------- */

int cp_store_node_list(cp_store *st, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_node_list(st->etcd, out);
    static const char sql[] = "SELECT name, version, addr, applied_seq, apps AS apps__json,"
                              " first_seen, last_seen FROM nodes ORDER BY name";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    return q != NULL ? cp_store__rows_json(st, q, out) : NANO_EIO;
}

int cp_store_node_delete(cp_store *st, const char *name)
{
    if (st->etcd != NULL)
        return cp_estore_node_delete(st->etcd, name);
    static const char sql[] = "DELETE FROM nodes WHERE name = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, name);
    int rc = cp_store__exec_q(st, q);
    if (rc == 0 && sqlite3_changes(st->db) == 0)
        rc = NANO_ENOTFOUND;
    return rc;
}

int cp_store_node_count(cp_store *st, int64_t *out)
{
    if (st->etcd != NULL)
        return cp_estore_node_count(st->etcd, out);
    static const char sql[] = "SELECT COUNT(*) FROM nodes";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    return q != NULL ? cp_store__int_one(st, q, out) : NANO_EIO;
}

int cp_store_drain_start(cp_store *st, int64_t app_id, const char *app, uint64_t timeout_ms,
                         int64_t *id_out)
{
    if (st->etcd != NULL)
        return cp_estore_drain_start(st->etcd, app_id, app, timeout_ms, id_out);
    static const char ins[] = "INSERT INTO drains (app_id, app, started_at, timeout_ms)"
                              " VALUES (?1, ?2, ?3, ?4)";
    static const char per_node[] = "INSERT INTO drain_nodes (drain_id, node_id)"
                                   " SELECT ?1, id FROM nodes";
    sqlite3_stmt *q = cp_store__stmt(st, ins);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    cp_store__bind_text(q, 2, app);
    cp_store__bind_text(q, 3, st->now);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)timeout_ms);
    int rc = cp_store__exec_q(st, q);
    int64_t id = sqlite3_last_insert_rowid(st->db);
    if (rc == 0 && (q = cp_store__stmt(st, per_node)) != NULL) {
        sqlite3_bind_int64(q, 1, id);
        rc = cp_store__exec_q(st, q);
    }
    if (rc == 0 && q == NULL)
        rc = NANO_EIO;
    if (rc == 0)
        *id_out = id;
    return rc;
}

/* A node's state in a drain as the API shows it (docs/distribution.md#drains): pending ->
 * draining, acked -> drained; in_flight is what the node last reported for the app (its
 * status, nodes.apps). */
int cp_store_drain_get(cp_store *st, const char *app, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_drain_get(st->etcd, app, out);
    static const char sql[] =
        "SELECT d.id, d.state, d.started_at, d.timeout_ms, d.finished_at,"
        " (SELECT json_group_array(json_object('node', x.name, 'state',"
        "   CASE x.state WHEN 'pending' THEN 'draining' WHEN 'acked' THEN 'drained'"
        "   ELSE 'timed_out' END,"
        "   'in_flight', COALESCE(json_extract(x.apps, '$.\"' || d.app || '\".in_flight'), 0),"
        "   'acked_at', x.acked_at, 'last_seen', x.last_seen))"
        /* ordered in the subquery: json_group_array takes its rows in that order */
        "   FROM (SELECT n.name, n.apps, n.last_seen, dn.state, dn.acked_at FROM drain_nodes dn"
        "         JOIN nodes n ON n.id = dn.node_id WHERE dn.drain_id = d.id ORDER BY n.name) x)"
        "   AS nodes__json"
        " FROM drains d WHERE d.app = ?1 ORDER BY d.id DESC LIMIT 1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, app);
    return cp_store__row_one(st, q, out);
}

int cp_store_node_hello(cp_store *st, const char *name, const char *version, const char *addr)
{
    if (st->etcd != NULL)
        return cp_estore_node_hello(st->etcd, name, version, addr);
    static const char sql[] =
        "INSERT INTO nodes (name, version, addr, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)"
        " ON CONFLICT (name) DO UPDATE SET version = excluded.version, addr = excluded.addr,"
        " last_seen = excluded.last_seen";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, name);
    cp_store__bind_text(q, 2, version);
    cp_store__bind_text(q, 3, addr);
    cp_store__bind_text(q, 4, st->now);
    return cp_store__exec_q(st, q);
}

int cp_store_node_report(cp_store *st, const char *name, int64_t applied_seq, const char *apps_json,
                         const char *seen_at)
{
    if (st->etcd != NULL)
        return cp_estore_node_report(st->etcd, name, applied_seq, apps_json, seen_at);
    static const char sql[] = "INSERT INTO nodes (name, applied_seq, apps, first_seen, last_seen)"
                              " VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (name) DO UPDATE SET"
                              " applied_seq = excluded.applied_seq, apps = excluded.apps,"
                              " last_seen = excluded.last_seen";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, name);
    sqlite3_bind_int64(q, 2, applied_seq);
    cp_store__bind_text(q, 3, apps_json);
    cp_store__bind_text(q, 4, seen_at);
    return cp_store__exec_q(st, q);
}

int cp_store_drain_ack(cp_store *st, const char *app, const char *node, const char *state,
                       bool *changed)
{
    if (st->etcd != NULL)
        return cp_estore_drain_ack(st->etcd, app, node, state, changed);
    static const char sql[] =
        "UPDATE drain_nodes SET state = ?3, acked_at = ?4 WHERE state = 'pending'"
        " AND node_id = (SELECT id FROM nodes WHERE name = ?2)"
        " AND drain_id IN (SELECT id FROM drains WHERE app = ?1 AND state = 'draining')";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, app);
    cp_store__bind_text(q, 2, node);
    cp_store__bind_text(q, 3, state);
    cp_store__bind_text(q, 4, st->now);
    int rc = cp_store__exec_q(st, q);
    if (rc == 0)
        *changed = sqlite3_changes(st->db) > 0;
    return rc;
}

/* A node whose last status (applied_seq at or past the drain's app.drain) no longer lists the
 * app, or lists it drained or timed out, has finished with it even if its drain.ack was lost. */
int cp_store_drain_ack_from_status(cp_store *st, const char *node, int64_t *n_out)
{
    if (st->etcd != NULL)
        return cp_estore_drain_ack_from_status(st->etcd, node, n_out);
    static const char sql[] =
        "UPDATE drain_nodes SET acked_at = ?2, state ="
        " CASE (SELECT json_extract(n.apps, '$.\"' || d.app || '\".state') FROM nodes n, drains d"
        "       WHERE n.id = drain_nodes.node_id AND d.id = drain_nodes.drain_id)"
        " WHEN 'timed_out' THEN 'timed_out' ELSE 'acked' END"
        " WHERE state = 'pending' AND node_id = (SELECT id FROM nodes WHERE name = ?1)"
        " AND drain_id IN (SELECT d.id FROM drains d, nodes n WHERE n.name = ?1"
        "   AND d.state = 'draining'"
        "   AND n.applied_seq >= (SELECT COALESCE(MAX(seq), 0) FROM config_log c"
        "                         WHERE c.op = 'app.drain' AND c.app = d.app)"
        "   AND COALESCE(json_extract(n.apps, '$.\"' || d.app || '\".state'), 'absent')"
        "       IN ('absent', 'drained', 'timed_out'))";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, node);
    cp_store__bind_text(q, 2, st->now);
    int rc = cp_store__exec_q(st, q);
    if (rc == 0)
        *n_out = sqlite3_changes(st->db);
    return rc;
}

int cp_store_drain_expire(cp_store *st, uint64_t grace_ms, int64_t *n_out)
{
    if (st->etcd != NULL)
        return cp_estore_drain_expire(st->etcd, grace_ms, n_out);
    static const char sql[] =
        "UPDATE drain_nodes SET state = 'timed_out', acked_at = ?1 WHERE state = 'pending'"
        " AND drain_id IN (SELECT id FROM drains WHERE state = 'draining'"
        "   AND (julianday(?1) - julianday(started_at)) * 86400000.0 >= timeout_ms + ?2)";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, st->now);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)grace_ms);
    int rc = cp_store__exec_q(st, q);
    if (rc == 0)
        *n_out = sqlite3_changes(st->db);
    return rc;
}

int cp_store_drains_finished(cp_store *st, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_drains_finished(st->etcd, out);
    static const char sql[] =
        "SELECT d.id, d.app_id, d.app,"
        " (SELECT COUNT(*) FROM drain_nodes WHERE drain_id = d.id) AS n_nodes,"
        " (SELECT COUNT(*) FROM drain_nodes WHERE drain_id = d.id AND state = 'timed_out')"
        "   AS n_timed_out"
        " FROM drains d WHERE d.state = 'draining' AND NOT EXISTS"
        " (SELECT 1 FROM drain_nodes WHERE drain_id = d.id AND state = 'pending') ORDER BY d.id";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    return q != NULL ? cp_store__rows_json(st, q, out) : NANO_EIO;
}

int cp_store_drain_finish(cp_store *st, int64_t id, const char *state)
{
    if (st->etcd != NULL)
        return cp_estore_drain_finish(st->etcd, id, state);
    static const char sql[] = "UPDATE drains SET state = ?2, finished_at = ?3 WHERE id = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, id);
    cp_store__bind_text(q, 2, state);
    cp_store__bind_text(q, 3, st->now);
    return cp_store__exec_q(st, q);
}

/* --- logs and tokens ------------------------------------------------------------------------ */

int cp_store_log_append(cp_store *st, const char *op, const char *app, json_t *payload,
                        int64_t *seq_out)
{
    if (st->etcd != NULL)
        return cp_estore_log_append(st->etcd, op, app, payload, seq_out);
    static const char sql[] =
        "INSERT INTO config_log (at, op, app, payload) VALUES (?1, ?2, ?3, ?4)";
    char *text = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return NANO_ENOMEM;
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    int rc = NANO_EIO;
    if (q != NULL) {
        cp_store__bind_text(q, 1, st->now);
        cp_store__bind_text(q, 2, op);
        cp_store__bind_text(q, 3, app);
        cp_store__bind_text(q, 4, text);
        rc = cp_store__exec_q(st, q);
    }
    free(text);
    if (rc == 0 && seq_out != NULL)
        *seq_out = sqlite3_last_insert_rowid(st->db);
    return rc;
}

int cp_store_log_seq(cp_store *st, int64_t *out)
{
    if (st->etcd != NULL)
        return cp_estore_log_seq(st->etcd, out);
    static const char sql[] = "SELECT COALESCE(MAX(seq), 0) FROM config_log";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    return q != NULL ? cp_store__int_one(st, q, out) : NANO_EIO;
}

int cp_store_log_list(cp_store *st, int64_t after, int64_t limit, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_log_list(st->etcd, after, limit, out);
    static const char sql[] = "SELECT seq, at, op, app, payload AS payload__json FROM config_log"
                              " WHERE seq > ?1 ORDER BY seq LIMIT ?2";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, after);
    sqlite3_bind_int64(q, 2, limit);
    return cp_store__rows_json(st, q, out);
}

int cp_store_audit_append(cp_store *st, const char *actor, const char *via, const char *op,
                          const char *app, json_t *detail)
{
    if (st->etcd != NULL)
        return cp_estore_audit_append(st->etcd, actor, via, op, app, detail);
    static const char sql[] = "INSERT INTO audit_log (at, actor, via, op, app, detail)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    int rc = NANO_EIO;
    if (q != NULL) {
        cp_store__bind_text(q, 1, st->now);
        cp_store__bind_text(q, 2, actor);
        cp_store__bind_text(q, 3, via);
        cp_store__bind_text(q, 4, op);
        cp_store__bind_text(q, 5, app);
        cp_store__bind_text(q, 6, text ? text : "{}");
        rc = cp_store__exec_q(st, q);
    }
    free(text);
    return rc;
}

int cp_store_audit_list(cp_store *st, int64_t limit, int64_t before_id, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_audit_list(st->etcd, limit, before_id, out);
    static const char sql[] =
        "SELECT id, at, actor, via, op, app, detail AS detail__json FROM audit_log"
        " WHERE ?1 <= 0 OR id < ?1 ORDER BY id DESC LIMIT ?2";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, before_id);
    sqlite3_bind_int64(q, 2, limit);
    return cp_store__rows_json(st, q, out);
}

int cp_store_token_put(cp_store *st, const char *name, const char *hash_hex)
{
    if (st->etcd != NULL)
        return cp_estore_token_put(st->etcd, name, hash_hex);
    static const char sql[] =
        "INSERT INTO api_tokens (name, hash, created_at) VALUES (?1, ?2, ?3)"
        " ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at"
        " WHERE hash != excluded.hash";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    char now[32];
    cp_time_now(now, sizeof now);
    cp_store__bind_text(q, 1, name);
    cp_store__bind_text(q, 2, hash_hex);
    cp_store__bind_text(q, 3, st->in_tx ? st->now : now);
    return cp_store__exec_q(st, q);
}

int cp_store_token_list(cp_store *st, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_token_list(st->etcd, out);
    static const char sql[] = "SELECT name, hash FROM api_tokens ORDER BY id";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    return q != NULL ? cp_store__rows_json(st, q, out) : NANO_EIO;
}
