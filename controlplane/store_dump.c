/* store_dump.c: a whole store as one canonical JSON value and back (store.h cp_store_dump,
 * cp_store_load; `nanocp migrate --from SRC --to DST`, docs/nanocp.md#moving-between-stores).
 *
 * The canonical form follows the tables of migrations (NNNN_name.sql): {"format": "nanocp-dump",
 * "schema": N, "tables": {TABLE: [row, ...]}}, each row an object of the table's columns,
 * rows in primary-key order. JSON text columns are parsed (so both backends give equal
 * values), blobs are base64 (code, a secret's ciphertext) or hex (a secret's nonce and tag).
 * The etcd side maps its keys to the same rows (store_etcd.c's layout). Not in it: what
 * either backend derives (etcd's hostname claims, app_ids, drain_seq; SQLite's
 * schema_migrations) and an env var's updated_at, which the etcd store does not keep. */
#include "store_int.h"

#include <openssl/evp.h>

#include "log.h"

/* A column: its name and kind: 'i' integer (or null), 't' text (or null), 'j' JSON text,
 * 'b' blob as base64, 'h' blob as hex. */
typedef struct col {
    const char *name;
    char kind;
} col;

typedef struct tdef {
    const char *name;
    const char *order;  /* the primary key */
    const char *values; /* NULL: VALUES (?, ...) */
    col cols[13];
} tdef;

/* In the order a load inserts them (foreign keys deferred anyway). */
static const tdef TABLES[] = {
    {"apps",
     "id",
     NULL,
     {{"id", 'i'},
      {"name", 't'},
      {"path_prefix", 't'},
      {"is_default", 'i'},
      {"node_compat", 'i'},
      {"required_env", 'j'},
      {"limits", 'j'},
      {"egress", 'j'},
      {"state", 't'},
      {"active_deployment_id", 'i'},
      {"created_at", 't'},
      {"updated_at", 't'}}},
    {"hostnames",
     "app_id, position",
     NULL,
     {{"app_id", 'i'}, {"position", 'i'}, {"hostname", 't'}, {"path_prefix", 't'}}},
    {"blobs", "sha256", NULL, {{"sha256", 't'}, {"size", 'i'}, {"data", 'b'}}},
    {"deployments",
     "id",
     NULL,
     {{"id", 'i'},
      {"app_id", 'i'},
      {"version", 'i'},
      {"sha256", 't'},
      {"main", 't'},
      {"size", 'i'},
      {"created_at", 't'},
      {"created_by", 't'}}},
    {"deployment_modules",
     "deployment_id, position",
     NULL,
     {{"deployment_id", 'i'}, {"position", 'i'}, {"name", 't'}, {"sha256", 't'}, {"size", 'i'}}},
    /* updated_at: the app's (the etcd store keeps no time per var) */
    {"env_vars",
     "app_id, name",
     "(app_id, name, value, updated_at) SELECT ?1, ?2, ?3, a.updated_at FROM apps a "
     "WHERE a.id = ?1",
     {{"app_id", 'i'}, {"name", 't'}, {"value", 't'}}},
    {"secrets",
     "app_id, name",
     NULL,
     {{"app_id", 'i'},
      {"name", 't'},
      {"ciphertext", 'b'},
      {"nonce", 'h'},
      {"tag", 'h'},
      {"key_id", 't'},
      {"updated_at", 't'}}},
    {"nodes",
     "id",
     NULL,
     {{"id", 'i'},
      {"name", 't'},
      {"version", 't'},
      {"addr", 't'},
      {"applied_seq", 'i'},
      {"apps", 'j'},
      {"first_seen", 't'},
      {"last_seen", 't'}}},
    {"drains",
     "id",
     NULL,
     {{"id", 'i'},
      {"app_id", 'i'},
      {"app", 't'},
      {"started_at", 't'},
      {"timeout_ms", 'i'},
      {"state", 't'},
      {"finished_at", 't'}}},
    {"drain_nodes",
     "drain_id, node_id",
     NULL,
     {{"drain_id", 'i'}, {"node_id", 'i'}, {"state", 't'}, {"acked_at", 't'}}},
    {"config_log",
     "seq",
     NULL,
     {{"seq", 'i'}, {"at", 't'}, {"op", 't'}, {"app", 't'}, {"payload", 'j'}}},
    {"audit_log",
     "id",
     NULL,
     {{"id", 'i'},
      {"at", 't'},
      {"actor", 't'},
      {"via", 't'},
      {"op", 't'},
      {"app", 't'},
      {"detail", 'j'}}},
    {"api_tokens", "id", NULL, {{"id", 'i'}, {"name", 't'}, {"hash", 't'}, {"created_at", 't'}}},
};
#define N_TABLES (sizeof TABLES / sizeof TABLES[0])

static char *b64(const void *data, size_t len)
{
    char *out = nano_xmalloc(4 * ((len + 2) / 3) + 1);
    int n = len > 0 ? EVP_EncodeBlock((unsigned char *)out, data, (int)len) : 0;
    out[n] = '\0';
    return out;
}

/* base64 text into bytes (returned owned); -1 when it is not base64. */
static int unb64(const char *text, unsigned char **out, size_t *len)
{
    size_t tlen = text ? strlen(text) : 0;
    unsigned char *p = nano_xmalloc(tlen + 1);
    int n = tlen > 0 ? EVP_DecodeBlock(p, (const unsigned char *)text, (int)tlen) : 0;
    if (n < 0 || tlen % 4 != 0) {
        nano_free(p);
        return -1;
    }
    *len = (size_t)n - (tlen >= 1 && text[tlen - 1] == '=') - (tlen >= 2 && text[tlen - 2] == '=');
    *out = p;
    return 0;
}

static int unhex(const char *hex, unsigned char **out, size_t *len)
{
    size_t n = hex ? strlen(hex) : 0;
    if (n % 2 != 0)
        return -1;
    unsigned char *p = nano_xmalloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
            nano_free(p);
            return -1;
        }
        p[i] = (unsigned char)b;
    }
    *out = p;
    *len = n / 2;
    return 0;
}

static json_t *tables_new(void)
{
    json_t *t = json_object();
    for (size_t i = 0; i < N_TABLES; i++)
        json_object_set_new(t, TABLES[i].name, json_array());
    return t;
}

static json_t *dump_new(int64_t schema, json_t *tables)
{
    return json_pack("{s:s, s:I, s:o}", "format", "nanocp-dump", "schema", (json_int_t)schema,
                     "tables", tables);
}

/* --- SQLite ------------------------------------------------------------------------------------ */

static json_t *sql_value(sqlite3_stmt *q, int i, char kind)
{
    int type = sqlite3_column_type(q, i);
    if (type == SQLITE_NULL)
        return json_null();
    if (kind == 'i')
        return json_integer(sqlite3_column_int64(q, i));
    const void *p = kind == 'b' || kind == 'h' ? sqlite3_column_blob(q, i)
                                               : (const void *)sqlite3_column_text(q, i);
    size_t len = (size_t)sqlite3_column_bytes(q, i);
    if (kind == 'j') {
        json_t *v = json_loadb(p, len, JSON_DECODE_ANY, NULL);
        return v ? v : json_stringn(p, len); /* not JSON: kept as it is */
    }
    if (kind == 'b') {
        char *s = b64(p, len);
        json_t *v = json_string(s);
        nano_free(s);
        return v;
    }
    if (kind == 'h') {
        char *s = nano_xmalloc(2 * len + 1);
        cp_hex(p, len, s);
        json_t *v = json_string(s);
        nano_free(s);
        return v;
    }
    return json_stringn(p, len);
}

static int sql_dump(cp_store *st, json_t **out)
{
    int64_t schema = 0;
    int rc = cp_store_begin_read(st);
    if (rc == 0)
        rc = cp_store_schema_version(st, &schema);
    json_t *tables = tables_new();
    for (size_t t = 0; t < N_TABLES && rc == 0; t++) {
        nano_buf sql = NANO_BUF_INIT;
        nano_buf_appendf(&sql, "SELECT ");
        for (size_t c = 0; TABLES[t].cols[c].name; c++)
            nano_buf_appendf(&sql, "%s%s", c ? ", " : "", TABLES[t].cols[c].name);
        nano_buf_appendf(&sql, " FROM %s ORDER BY %s", TABLES[t].name, TABLES[t].order);
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, nano_buf_cstr(&sql), -1, &q, NULL) != SQLITE_OK)
            rc = cp_store__fail_sql(st, sqlite3_errcode(st->db));
        json_t *rows = json_object_get(tables, TABLES[t].name);
        int step;
        while (rc == 0 && (step = sqlite3_step(q)) == SQLITE_ROW) {
            json_t *row = json_object();
            for (size_t c = 0; TABLES[t].cols[c].name; c++)
                json_object_set_new(row, TABLES[t].cols[c].name,
                                    sql_value(q, (int)c, TABLES[t].cols[c].kind));
            json_array_append_new(rows, row);
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = cp_store__fail_sql(st, step);
        sqlite3_finalize(q);
        nano_buf_fini(&sql);
    }
    cp_store_rollback(st);
    if (rc != 0) {
        json_decref(tables);
        return rc;
    }
    *out = dump_new(schema, tables);
    return 0;
}

static int sql_bind(sqlite3_stmt *q, int i, char kind, json_t *v)
{
    if (v == NULL || json_is_null(v))
        return sqlite3_bind_null(q, i) == SQLITE_OK ? 0 : -1;
    if (kind == 'i')
        return json_is_integer(v) ? sqlite3_bind_int64(q, i, json_integer_value(v)) : -1;
    if (kind == 'j') {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        return sqlite3_bind_text(q, i, text, -1, free) == SQLITE_OK ? 0 : -1;
    }
    if (!json_is_string(v))
        return -1;
    if (kind == 't')
        return sqlite3_bind_text(q, i, json_string_value(v), -1, SQLITE_TRANSIENT);
    unsigned char *p = NULL;
    size_t len = 0;
    if ((kind == 'b' ? unb64(json_string_value(v), &p, &len)
                     : unhex(json_string_value(v), &p, &len)) != 0)
        return -1;
    return sqlite3_bind_blob64(q, i, len ? p : (void *)"", len, nano_free) == SQLITE_OK ? 0 : -1;
}

static int sql_load(cp_store *st, json_t *tables, nano_error *err)
{
    int rc = cp_store_begin(st);
    if (rc == 0)
        rc = cp_store__exec_sql(st, "PRAGMA defer_foreign_keys = ON");
    for (size_t t = 0; t < N_TABLES && rc == 0; t++) {
        nano_buf sql = NANO_BUF_INIT;
        size_t n = 0;
        nano_buf_appendf(&sql, "INSERT INTO %s ", TABLES[t].name);
        for (; TABLES[t].cols[n].name; n++)
            ;
        if (TABLES[t].values != NULL)
            nano_buf_appendf(&sql, "%s", TABLES[t].values);
        else {
            for (size_t c = 0; c < n; c++)
                nano_buf_appendf(&sql, "%s%s", c ? ", " : "(", TABLES[t].cols[c].name);
            nano_buf_appendf(&sql, ") VALUES (");
            for (size_t c = 0; c < n; c++)
                nano_buf_appendf(&sql, "%s?", c ? ", " : "");
            nano_buf_appendf(&sql, ")");
        }
        sqlite3_stmt *q = NULL;
        if (sqlite3_prepare_v2(st->db, nano_buf_cstr(&sql), -1, &q, NULL) != SQLITE_OK)
            rc = cp_store__fail_sql(st, sqlite3_errcode(st->db));
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(tables, TABLES[t].name), i, row) {
            if (rc != 0)
                break;
            sqlite3_reset(q);
            sqlite3_clear_bindings(q);
            for (size_t c = 0; c < n && rc == 0; c++)
                if (sql_bind(q, (int)c + 1, TABLES[t].cols[c].kind,
                             json_object_get(row, TABLES[t].cols[c].name)) != 0)
                    rc = nano_error_set(err, NANO_EINVAL, "dump_invalid",
                                        "the dump's %s row %zu: %s is not what the table holds",
                                        TABLES[t].name, i, TABLES[t].cols[c].name);
            int step = rc == 0 ? sqlite3_step(q) : SQLITE_DONE;
            if (step != SQLITE_DONE)
                rc = cp_store__fail_sql(st, step);
        }
        sqlite3_finalize(q);
        nano_buf_fini(&sql);
    }
    if (rc == 0)
        rc = cp_store_commit(st);
    if (rc != 0) {
        cp_store_rollback(st);
        if (err->message[0] == '\0')
            nano_error_set(err, rc, "store_load", "cannot write the rows: %s", st->errmsg);
    }
    return rc;
}

/* What the destination already holds, as "N rows in TABLE" (empty: nothing). */
static int sql_used(cp_store *st, char *what, size_t cap)
{
    what[0] = '\0';
    for (size_t t = 0; t < N_TABLES && what[0] == '\0'; t++) {
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", TABLES[t].name);
        sqlite3_stmt *q = NULL;
        int64_t n = 0;
        if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK)
            return cp_store__fail_sql(st, sqlite3_errcode(st->db));
        int rc = cp_store__int_one(st, q, &n);
        sqlite3_finalize(q);
        if (rc != 0)
            return rc;
        if (n > 0)
            snprintf(what, cap, "%lld rows in %s", (long long)n, TABLES[t].name);
    }
    return 0;
}

/* --- etcd -------------------------------------------------------------------------------------- */

/* The key's part after the prefix and first segment ("apps/x" -> "x"), or NULL. */
static const char *under(cp_estore *es, const char *key, const char *seg)
{
    size_t pl = strlen(es->prefix), sl = strlen(seg);
    if (strncmp(key, es->prefix, pl) != 0 || strncmp(key + pl, seg, sl) != 0)
        return NULL;
    return key + pl + sl;
}

static json_t *get_or_null(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return v ? json_incref(v) : json_null();
}

/* The rows of one app record (apps, hostnames). */
static void app_rows(json_t *rec, json_t *tables)
{
    json_t *prefix = json_object_get(rec, "path_prefix");
    int64_t id = json_integer_value(json_object_get(rec, "id"));
    json_array_append_new(
        json_object_get(tables, "apps"),
        json_pack("{s:O, s:O, s:o, s:i, s:i, s:o, s:o, s:o, s:O, s:o, s:O, s:O}", "id",
                  json_object_get(rec, "id"), "name", json_object_get(rec, "name"), "path_prefix",
                  get_or_null(rec, "path_prefix"), "is_default",
                  json_is_true(json_object_get(rec, "default")), "node_compat",
                  json_is_true(json_object_get(rec, "node_compat")), "required_env",
                  get_or_null(rec, "required_env"), "limits", get_or_null(rec, "limits"), "egress",
                  get_or_null(rec, "egress"), "state", json_object_get(rec, "state"),
                  "active_deployment_id", get_or_null(rec, "active_deployment_id"), "created_at",
                  json_object_get(rec, "created_at"), "updated_at",
                  json_object_get(rec, "updated_at")));
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(rec, "hostnames"), i, h) {
        json_array_append_new(json_object_get(tables, "hostnames"),
                              json_pack("{s:I, s:I, s:O, s:s}", "app_id", (json_int_t)id,
                                        "position", (json_int_t)i, "hostname", h, "path_prefix",
                                        json_is_string(prefix) ? json_string_value(prefix) : ""));
    }
}

static int cmp_json(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) < json_integer_value(b)
                   ? -1
                   : json_integer_value(a) > json_integer_value(b);
    const char *x = json_string_value(a), *y = json_string_value(b);
    return strcmp(x ? x : "", y ? y : "");
}

static const tdef *cmp_table;

static int cmp_rows(const void *pa, const void *pb)
{
    json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
    char keys[64];
    snprintf(keys, sizeof keys, "%s", cmp_table->order);
    for (char *save = NULL, *k = strtok_r(keys, ", ", &save); k; k = strtok_r(NULL, ", ", &save)) {
        int c = cmp_json(json_object_get(a, k), json_object_get(b, k));
        if (c != 0)
            return c;
    }
    return 0;
}

/* Every table's rows in primary-key order (SQLite's ORDER BY). */
static void sort_tables(json_t *tables)
{
    for (size_t t = 0; t < N_TABLES; t++) {
        json_t *rows = json_object_get(tables, TABLES[t].name);
        size_t n = json_array_size(rows);
        json_t **v = nano_xcalloc(n + 1, sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = json_incref(json_array_get(rows, i));
        cmp_table = &TABLES[t];
        qsort(v, n, sizeof *v, cmp_rows);
        json_array_clear(rows);
        for (size_t i = 0; i < n; i++)
            json_array_append_new(rows, v[i]);
        nano_free(v);
    }
}

/* One key-value pair into rows; *blob collects a blob's chunks (keys come in order). */
static int etcd_row(cp_estore *es, const cp_kvtx_item *it, json_t *tables, nano_buf *blob,
                    json_t *node_ids)
{
    const char *rest;
    if ((rest = under(es, it->key, "blobs/")) != NULL) {
        const char *slash = strchr(rest, '/');
        if (slash != NULL && strncmp(slash, "/c/", 3) == 0) {
            nano_buf_append(blob, it->value, it->value_len);
            return 0;
        }
        json_t *meta = json_loadb(it->value, it->value_len, 0, NULL);
        int ok = meta != NULL && slash != NULL &&
                 json_integer_value(json_object_get(meta, "size")) == (json_int_t)blob->len;
        if (ok) {
            char *data = b64(blob->data, blob->len);
            json_array_append_new(json_object_get(tables, "blobs"),
                                  json_pack("{s:s%, s:I, s:s}", "sha256", rest, (int)(slash - rest),
                                            "size", (json_int_t)blob->len, "data", data));
            nano_free(data);
        }
        json_decref(meta);
        blob->len = 0;
        return ok ? 0 : cp_estore__fail(es, NANO_EIO, "%s: the code is not whole", it->key);
    }
    if (under(es, it->key, "app_ids/") || under(es, it->key, "hosts/") ||
        under(es, it->key, "default") || under(es, it->key, "drain_seq/") ||
        under(es, it->key, "meta/") || under(es, it->key, "leader"))
        return 0; /* derived, or not a row */
    json_t *v = json_loadb(it->value, it->value_len, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        return cp_estore__fail(es, NANO_EIO, "%s: not JSON", it->key);
    int rc = 0;
    const char *key;
    json_t *x;
    size_t i;
    if (under(es, it->key, "apps/")) {
        app_rows(v, tables);
    } else if (under(es, it->key, "deployments/")) {
        json_t *mods = json_object_get(v, "modules");
        json_array_foreach(mods, i, x) {
            json_array_append_new(
                json_object_get(tables, "deployment_modules"),
                json_pack("{s:O, s:I, s:O, s:O, s:O}", "deployment_id", json_object_get(v, "id"),
                          "position", (json_int_t)i, "name", json_object_get(x, "name"), "sha256",
                          json_object_get(x, "sha256"), "size", json_object_get(x, "size")));
        }
        json_object_del(v, "modules");
        json_array_append(json_object_get(tables, "deployments"), v);
    } else if ((rest = under(es, it->key, "env/")) != NULL) {
        json_object_foreach(v, key, x) {
            json_array_append_new(json_object_get(tables, "env_vars"),
                                  json_pack("{s:I, s:s, s:O}", "app_id",
                                            (json_int_t)strtoll(rest, NULL, 10), "name", key,
                                            "value", x));
        }
    } else if ((rest = under(es, it->key, "secrets/")) != NULL) {
        json_object_foreach(v, key, x) {
            json_t *row = json_deep_copy(x);
            json_object_set_new(row, "app_id", json_integer(strtoll(rest, NULL, 10)));
            json_object_set_new(row, "name", json_string(key));
            json_array_append_new(json_object_get(tables, "secrets"), row);
        }
    } else if (under(es, it->key, "nodes/")) {
        json_array_append(json_object_get(tables, "nodes"), v);
        json_object_set(node_ids, json_string_value(json_object_get(v, "name")),
                        json_object_get(v, "id"));
    } else if (under(es, it->key, "drains/")) {
        json_object_foreach(json_object_get(v, "nodes"), key, x) {
            json_array_append_new(
                json_object_get(tables, "drain_nodes"),
                json_pack("{s:O, s:O, s:O, s:o}", "drain_id", json_object_get(v, "id"), "node_id",
                          json_object_get(x, "node_id"), "state", json_object_get(x, "state"),
                          "acked_at", get_or_null(x, "acked_at")));
        }
        json_object_del(v, "nodes");
        json_array_append(json_object_get(tables, "drains"), v);
    } else if (under(es, it->key, "log/")) {
        json_array_foreach(v, i, x) {
            json_array_append(json_object_get(tables, "config_log"), x);
        }
    } else if (under(es, it->key, "audit/")) {
        if (json_object_get(v, "app") == NULL)
            json_object_set_new(v, "app", json_null());
        json_array_append(json_object_get(tables, "audit_log"), v);
    } else if (under(es, it->key, "tokens/")) {
        json_array_append(json_object_get(tables, "api_tokens"), v);
    } else {
        rc = cp_estore__fail(es, NANO_EIO, "%s: a key this nanocp does not know", it->key);
    }
    json_decref(v);
    return rc;
}

/* Keys read per range request: 64 code chunks of 512 KiB stay below the client's 64 MiB
 * answer limit once base64. */
#define DUMP_PAGE 64

static int etcd_dump(cp_estore *es, json_t **out)
{
    nano_error e = {0};
    int rc = cp_estore_begin(es); /* one revision: every read below is made at it */
    if (rc == 0 && json_object_get(es->tx.meta, "loading") != NULL)
        rc = cp_estore__fail(es, NANO_ESTATE, "an unfinished `nanocp migrate` is loading it");
    json_t *tables = tables_new(), *node_ids = json_object();
    nano_buf blob = NANO_BUF_INIT;
    char end[CP_EKEY_MAX], start[CP_EKEY_MAX];
    end[cp_etcd_prefix_end(es->prefix, strlen(es->prefix), (unsigned char *)end)] = '\0';
    snprintf(start, sizeof start, "%s", es->prefix);
    bool more = rc == 0;
    int64_t n_keys = 0;
    while (more) { /* pages of keys in order; each page starts at the last key of the one before */
        cp_kvtx_list l = {0};
        if ((rc = cp_kvtx_range(&es->tx, start, end, DUMP_PAGE + 1, &l, &e)) != 0)
            rc = cp_estore__fail(es, rc, "%s", e.message);
        size_t first = n_keys > 0 && l.n > 0 && strcmp(l.items[0].key, start) == 0;
        for (size_t i = first; i < l.n && rc == 0; i++)
            rc = etcd_row(es, &l.items[i], tables, &blob, node_ids);
        n_keys += (int64_t)(l.n - first);
        more = rc == 0 && l.n == DUMP_PAGE + 1;
        if (more)
            snprintf(start, sizeof start, "%s", l.items[l.n - 1].key);
        cp_kvtx_list_fini(&l);
    }
    int64_t schema = json_integer_value(json_object_get(es->tx.meta, "schema"));
    cp_estore_rollback(es);
    nano_buf_fini(&blob);
    json_decref(node_ids);
    if (rc != 0) {
        json_decref(tables);
        return rc;
    }
    sort_tables(tables);
    *out = dump_new(schema, tables);
    return 0;
}

/* Writes into the etcd store in transactions of at most BATCH_OPS keys and BATCH_BYTES bytes
 * (etcd: 128 operations, 1.5 MiB per request; base64 adds a third), each one also rewriting
 * the meta key (which carries "loading" until the last). */
#define BATCH_OPS 100
#define BATCH_BYTES ((size_t)700 << 10)

typedef struct loader {
    cp_estore *es;
    size_t ops, bytes;
    int64_t n_txns, n_keys;
    int rc;
} loader;

static void ld_flush(loader *ld)
{
    if (ld->rc == 0 && ld->es->tx.active) {
        ld->rc = cp_estore_commit(ld->es);
        ld->n_txns++;
        if (ld->n_txns % 50 == 0)
            NANO_INFO("cp.migrate_progress", "txns=%lld keys=%lld", (long long)ld->n_txns,
                      (long long)ld->n_keys);
    }
    ld->ops = ld->bytes = 0;
}

static void ld_put(loader *ld, const char *key, const void *value, size_t len)
{
    if (ld->rc != 0)
        return;
    if (ld->ops + 1 > BATCH_OPS || (ld->ops > 0 && ld->bytes + len > BATCH_BYTES))
        ld_flush(ld);
    if (ld->rc == 0 && !ld->es->tx.active)
        ld->rc = cp_estore_begin(ld->es);
    if (ld->rc != 0)
        return;
    cp_kvtx_put(&ld->es->tx, key, value, len);
    ld->es->tx.meta_dirty = true;
    ld->ops++;
    ld->n_keys++;
    ld->bytes += len + strlen(key);
}

static void ld_put_json(loader *ld, const char *key, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    ld_put(ld, key, text, strlen(text));
    free(text);
}

/* rows of table whose field equals id (tables are small enough for a scan per parent). */
static json_t *rows_of(json_t *tables, const char *table, const char *field, json_t *id)
{
    json_t *out = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(tables, table), i, r) {
        if (json_equal(json_object_get(r, field), id))
            json_array_append(out, r);
    }
    return out;
}

static json_t *row_by(json_t *tables, const char *table, const char *field, json_t *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(tables, table), i, r) {
        if (json_equal(json_object_get(r, field), id))
            return r;
    }
    return NULL;
}

static int64_t max_of(json_t *tables, const char *table, const char *field)
{
    int64_t m = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(tables, table), i, r) {
        int64_t v = json_integer_value(json_object_get(r, field));
        m = v > m ? v : m;
    }
    return m;
}

static void etcd_load_blobs(loader *ld, json_t *tables)
{
    char k[CP_EKEY_MAX], now[32];
    cp_time_now(now, sizeof now);
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(tables, "blobs"), i, r) {
        const char *sha = json_string_value(json_object_get(r, "sha256"));
        unsigned char *data = NULL;
        size_t len = 0;
        if (sha == NULL || unb64(json_string_value(json_object_get(r, "data")), &data, &len) != 0) {
            ld->rc = cp_estore__fail(ld->es, NANO_EINVAL, "the dump's blob %zu is not base64", i);
            return;
        }
        size_t n = 0;
        for (size_t off = 0; off < len || (off == 0 && n == 0); off += CP_ESTORE_CHUNK, n++) {
            size_t part = len - off < CP_ESTORE_CHUNK ? len - off : CP_ESTORE_CHUNK;
            ld_put(ld, cp_estore__key(ld->es, k, "blobs/%s/c/%06zu", sha, n), data + off, part);
            if (len == 0)
                break;
        }
        nano_free(data);
        json_t *meta = json_pack("{s:I, s:I, s:s}", "size", (json_int_t)len, "chunks",
                                 (json_int_t)n, "at", now);
        ld_put_json(ld, cp_estore__key(ld->es, k, "blobs/%s/meta", sha), meta);
        json_decref(meta);
    }
}

static void etcd_load_apps(loader *ld, json_t *tables)
{
    cp_estore *es = ld->es;
    char k[CP_EKEY_MAX];
    size_t i, j;
    json_t *a, *r;
    json_array_foreach(json_object_get(tables, "apps"), i, a) {
        json_t *id = json_object_get(a, "id");
        const char *name = json_string_value(json_object_get(a, "name"));
        json_t *prefix = json_object_get(a, "path_prefix");
        json_t *hosts = json_array(), *hrows = rows_of(tables, "hostnames", "app_id", id);
        char idtext[24];
        snprintf(idtext, sizeof idtext, "%lld", (long long)json_integer_value(id));
        json_array_foreach(hrows, j, r) {
            const char *h = json_string_value(json_object_get(r, "hostname"));
            json_array_append(hosts, json_object_get(r, "hostname"));
            ld_put(ld,
                   cp_estore__key(es, k, "hosts/%s/%s", h,
                                  json_is_string(prefix) ? json_string_value(prefix) : ""),
                   idtext, strlen(idtext));
        }
        json_decref(hrows);
        json_t *deps = rows_of(tables, "deployments", "app_id", id);
        json_int_t last = 0;
        json_array_foreach(deps, j, r) {
            json_int_t v = json_integer_value(json_object_get(r, "version"));
            last = v > last ? v : last;
        }
        json_decref(deps);
        json_t *active = row_by(tables, "deployments", "id",
                                json_object_get(a, "active_deployment_id"));
        json_t *rec = json_pack(
            "{s:O, s:O, s:o, s:O, s:b, s:b, s:O, s:O, s:O, s:O, s:o, s:o, s:O, s:O, s:O, s:I}",
            "id", id, "name", json_object_get(a, "name"), "hostnames", hosts, "path_prefix",
            prefix ? prefix : json_null(), "default",
            json_integer_value(json_object_get(a, "is_default")) != 0, "node_compat",
            json_integer_value(json_object_get(a, "node_compat")) != 0, "required_env",
            json_object_get(a, "required_env"), "limits", json_object_get(a, "limits"), "egress",
            json_object_get(a, "egress") ? json_object_get(a, "egress") : json_null(), "state",
            json_object_get(a, "state"), "active_version",
            active ? json_incref(json_object_get(active, "version")) : json_integer(0),
            "active_sha256", active ? json_incref(json_object_get(active, "sha256")) : json_null(),
            "created_at", json_object_get(a, "created_at"), "updated_at",
            json_object_get(a, "updated_at"), "active_deployment_id",
            active ? json_object_get(active, "id") : json_null(), "last_version", last);
        if (rec == NULL || name == NULL) {
            json_decref(rec);
            ld->rc = cp_estore__fail(es, NANO_EINVAL, "the dump's app %zu is incomplete", i);
            return;
        }
        if (json_integer_value(json_object_get(a, "is_default")) != 0)
            ld_put(ld, cp_estore__key(es, k, "default"), idtext, strlen(idtext));
        ld_put_json(ld, cp_estore__key(es, k, "apps/%s", name), rec);
        ld_put(ld, cp_estore__key(es, k, "app_ids/%020lld", (long long)json_integer_value(id)),
               name, strlen(name));
        json_decref(rec);

        json_t *env = json_object(), *sec = json_object();
        json_t *rows = rows_of(tables, "env_vars", "app_id", id);
        json_array_foreach(rows, j, r) {
            json_object_set(env, json_string_value(json_object_get(r, "name")),
                            json_object_get(r, "value"));
        }
        json_decref(rows);
        rows = rows_of(tables, "secrets", "app_id", id);
        json_array_foreach(rows, j, r) {
            json_t *s = json_deep_copy(r);
            json_object_del(s, "app_id");
            json_object_del(s, "name");
            json_object_set_new(sec, json_string_value(json_object_get(r, "name")), s);
        }
        json_decref(rows);
        if (json_object_size(env) > 0)
            ld_put_json(ld, cp_estore__key(es, k, "env/%020lld", (long long)json_integer_value(id)),
                        env);
        if (json_object_size(sec) > 0)
            ld_put_json(ld,
                        cp_estore__key(es, k, "secrets/%020lld", (long long)json_integer_value(id)),
                        sec);
        json_decref(env);
        json_decref(sec);
    }
    json_array_foreach(json_object_get(tables, "deployments"), i, r) {
        json_t *dep = json_deep_copy(r), *mods = json_array();
        json_t *mrows = rows_of(tables, "deployment_modules", "deployment_id",
                                json_object_get(r, "id"));
        json_array_foreach(mrows, j, a) {
            json_array_append_new(mods,
                                  json_pack("{s:O, s:O, s:O}", "name", json_object_get(a, "name"),
                                            "size", json_object_get(a, "size"), "sha256",
                                            json_object_get(a, "sha256")));
        }
        json_decref(mrows);
        json_object_set_new(dep, "modules", mods);
        ld_put_json(ld,
                    cp_estore__key(es, k, "deployments/%020lld/%020lld",
                                   (long long)json_integer_value(json_object_get(r, "app_id")),
                                   (long long)json_integer_value(json_object_get(r, "version"))),
                    dep);
        json_decref(dep);
    }
}

static void etcd_load_fleet(loader *ld, json_t *tables)
{
    cp_estore *es = ld->es;
    char k[CP_EKEY_MAX];
    size_t i, j;
    json_t *r, *x;
    json_array_foreach(json_object_get(tables, "nodes"), i, r) {
        ld_put_json(
            ld, cp_estore__key(es, k, "nodes/%s", json_string_value(json_object_get(r, "name"))),
            r);
    }
    json_array_foreach(json_object_get(tables, "drains"), i, r) {
        json_t *d = json_deep_copy(r), *nodes = json_object();
        json_t *rows = rows_of(tables, "drain_nodes", "drain_id", json_object_get(r, "id"));
        json_array_foreach(rows, j, x) {
            json_t *node = row_by(tables, "nodes", "id", json_object_get(x, "node_id"));
            if (node != NULL)
                json_object_set_new(nodes, json_string_value(json_object_get(node, "name")),
                                    json_pack("{s:O, s:O, s:O}", "node_id",
                                              json_object_get(x, "node_id"), "state",
                                              json_object_get(x, "state"), "acked_at",
                                              json_object_get(x, "acked_at")));
        }
        json_decref(rows);
        json_object_set_new(d, "nodes", nodes);
        ld_put_json(ld,
                    cp_estore__key(es, k, "drains/%020lld",
                                   (long long)json_integer_value(json_object_get(r, "id"))),
                    d);
        json_decref(d);
    }
    /* The config log: up to 64 entries (and 256 KiB) per key, named by its last seq, as the
     * store reads it; each app's last app.drain seq. */
    json_t *batch = json_array(), *drain_seq = json_object();
    size_t bytes = 0;
    json_t *log = json_object_get(tables, "config_log");
    json_array_foreach(log, i, r) {
        char *text = json_dumps(r, JSON_COMPACT);
        bytes += strlen(text);
        free(text);
        json_array_append(batch, r);
        if (strcmp(json_string_value(json_object_get(r, "op")), "app.drain") == 0)
            json_object_set(drain_seq, json_string_value(json_object_get(r, "app")),
                            json_object_get(r, "seq"));
        if (json_array_size(batch) == 64 || bytes > ((size_t)256 << 10) ||
            i + 1 == json_array_size(log)) {
            ld_put_json(ld,
                        cp_estore__key(es, k, "log/%020lld",
                                       (long long)json_integer_value(json_object_get(r, "seq"))),
                        batch);
            json_array_clear(batch);
            bytes = 0;
        }
    }
    json_decref(batch);
    const char *app;
    json_object_foreach(drain_seq, app, x) {
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(x));
        ld_put(ld, cp_estore__key(es, k, "drain_seq/%s", app), text, strlen(text));
    }
    json_decref(drain_seq);
    json_array_foreach(json_object_get(tables, "audit_log"), i, r) {
        ld_put_json(ld,
                    cp_estore__key(es, k, "audit/%020lld",
                                   (long long)json_integer_value(json_object_get(r, "id"))),
                    r);
    }
    json_array_foreach(json_object_get(tables, "api_tokens"), i, r) {
        ld_put_json(
            ld, cp_estore__key(es, k, "tokens/%s", json_string_value(json_object_get(r, "name"))),
            r);
    }
}

/* What the destination prefix already holds besides its meta key: one key's name. */
static int etcd_used(cp_estore *es, char *what, size_t cap)
{
    cp_kvtx_list l = {0};
    nano_error e = {0};
    what[0] = '\0';
    int rc = cp_estore_begin(es);
    if (rc == 0 && (rc = cp_kvtx_range(&es->tx, es->prefix, NULL, 3, &l, &e)) != 0)
        rc = cp_estore__fail(es, rc, "%s", e.message);
    for (size_t i = 0; i < l.n && rc == 0 && what[0] == '\0'; i++)
        if (strcmp(l.items[i].key, es->meta_key) != 0 && !under(es, l.items[i].key, "leader"))
            snprintf(what, cap, "the key %s", l.items[i].key);
    if (rc == 0 && what[0] == '\0' && json_integer_value(json_object_get(es->tx.meta, "seq")) > 0)
        snprintf(what, cap, "config seq %lld",
                 (long long)json_integer_value(json_object_get(es->tx.meta, "seq")));
    cp_kvtx_list_fini(&l);
    cp_estore_rollback(es);
    return rc;
}

static int etcd_load(cp_estore *es, json_t *tables, nano_error *err)
{
    /* 1. "loading" in the meta key: a store an interrupted load leaves is refused on open */
    int rc = cp_estore_begin(es);
    if (rc == 0) {
        json_object_set_new(es->tx.meta, "loading", json_string(es->now));
        es->tx.meta_dirty = true;
        rc = cp_estore_commit(es);
    }
    loader ld = {.es = es, .rc = rc};
    /* 2. code first, then the records, 3. the meta key last: counters, seq, no "loading" */
    etcd_load_blobs(&ld, tables);
    ld_flush(&ld);
    NANO_INFO("cp.migrate_progress", "step=code txns=%lld keys=%lld", (long long)ld.n_txns,
              (long long)ld.n_keys);
    etcd_load_apps(&ld, tables);
    etcd_load_fleet(&ld, tables);
    ld_flush(&ld);
    NANO_INFO("cp.migrate_progress", "step=records txns=%lld keys=%lld", (long long)ld.n_txns,
              (long long)ld.n_keys);
    if (ld.rc == 0 && (ld.rc = cp_estore_begin(es)) == 0) {
        json_t *next = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "app",
                                 (json_int_t)max_of(tables, "apps", "id"), "deployment",
                                 (json_int_t)max_of(tables, "deployments", "id"), "drain",
                                 (json_int_t)max_of(tables, "drains", "id"), "audit",
                                 (json_int_t)max_of(tables, "audit_log", "id"), "node",
                                 (json_int_t)max_of(tables, "nodes", "id"), "token",
                                 (json_int_t)max_of(tables, "api_tokens", "id"));
        json_object_set_new(es->tx.meta, "next", next);
        json_object_set_new(es->tx.meta, "seq", json_integer(max_of(tables, "config_log", "seq")));
        json_object_del(es->tx.meta, "loading");
        es->tx.meta_dirty = true;
        ld.rc = cp_estore_commit(es);
    }
    if (ld.rc != 0 && es->tx.active)
        cp_estore_rollback(es);
    if (ld.rc != 0)
        nano_error_set(err, ld.rc, "store_load",
                       "loading into %s stopped: %s (the store is marked incomplete: delete the "
                       "prefix, e.g. etcdctl del --prefix %s, and migrate again)",
                       es->prefix, es->errmsg, es->prefix);
    return ld.rc;
}

/* --- the API ----------------------------------------------------------------------------------- */

int cp_store_dump(cp_store *st, json_t **out)
{
    return st->etcd != NULL ? etcd_dump(st->etcd, out) : sql_dump(st, out);
}

int cp_store_load(cp_store *st, json_t *dump, nano_error *err)
{
    json_t *tables = json_object_get(dump, "tables");
    int64_t schema = 0, dschema = json_integer_value(json_object_get(dump, "schema"));
    char what[CP_EKEY_MAX + 32];
    if (!json_is_object(tables) ||
        strcmp(json_string_value(json_object_get(dump, "format")) ?: "", "nanocp-dump") != 0)
        return nano_error_set(err, NANO_EINVAL, "dump_invalid", "not a nanocp dump");
    int rc = cp_store_schema_version(st, &schema);
    if (rc == 0 && schema != dschema)
        return nano_error_set(err, NANO_ESTATE, "schema_mismatch",
                              "the source has schema version %lld, the destination %lld: run "
                              "`nanocp migrate` on the older one first",
                              (long long)dschema, (long long)schema);
    if (rc == 0)
        rc = st->etcd != NULL ? etcd_used(st->etcd, what, sizeof what)
                              : sql_used(st, what, sizeof what);
    if (rc != 0)
        return nano_error_set(err, rc, "store_load", "cannot read the destination: %s",
                              cp_store_errmsg(st));
    if (what[0] != '\0')
        return nano_error_set(err, NANO_ESTATE, "store_not_empty",
                              "the destination is not empty (%s): migrate into an empty store",
                              what);
    return st->etcd != NULL ? etcd_load(st->etcd, tables, err) : sql_load(st, tables, err);
}

void cp_store_dump_counts(const json_t *dump, char *out, size_t cap)
{
    json_t *t = json_object_get(dump, "tables");
    int64_t bytes = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(t, "blobs"), i, r) {
        bytes += json_integer_value(json_object_get(r, "size"));
    }
#define N(name) json_array_size(json_object_get(t, name))
    snprintf(out, cap,
             "%zu apps, %zu deployments, %zu blobs (%lld bytes), %zu env vars, %zu secrets, "
             "%zu nodes, %zu drains, %zu log entries, %zu audit entries, %zu tokens",
             N("apps"), N("deployments"), N("blobs"), (long long)bytes, N("env_vars"), N("secrets"),
             N("nodes"), N("drains"), N("config_log"), N("audit_log"), N("api_tokens"));
#undef N
}
