/* store.c: all of nanocp's SQL. Statements are static strings, prepared on first use and kept
 * (SQLITE_PREPARE_PERSISTENT), keyed by the string's address; every use ends in a reset so no
 * statement holds a read transaction open between calls (it would pin the WAL). */
#include "store_int.h"

/* --- plumbing ------------------------------------------------------------------------------- */

const char *cp_store_errmsg(const cp_store *st)
{
    if (st->etcd != NULL)
        return st->etcd->errmsg;
    return st->errmsg;
}

/* Maps an SQLite result to our codes and keeps the message for the log. */
int cp_store__fail_sql(cp_store *st, int src)
{
    snprintf(st->errmsg, sizeof st->errmsg, "%s", sqlite3_errmsg(st->db));
    if ((src & 0xff) == SQLITE_CONSTRAINT)
        return NANO_ESTATE;
    return NANO_EIO;
}

void cp_time_now(char *out, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03ldZ", date, ts.tv_nsec / 1000000);
}

const char *cp_store_now(const cp_store *st)
{
    if (st->etcd != NULL)
        return st->etcd->now;
    return st->now;
}

/* The cached statement for sql, reset and with no bindings; NULL on a prepare error. */
sqlite3_stmt *cp_store__stmt(cp_store *st, const char *sql)
{
    for (size_t i = 0; i < st->n_stmts; i++)
        if (st->stmts[i].sql == sql)
            return st->stmts[i].q;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q, NULL);
    if (rc != SQLITE_OK) {
        cp_store__fail_sql(st, rc);
        return NULL;
    }
    if (st->n_stmts == MAX_STMTS) /* a programming error: raise MAX_STMTS */
        abort();
    st->stmts[st->n_stmts].sql = sql;
    st->stmts[st->n_stmts++].q = q;
    return q;
}

void cp_store__done(sqlite3_stmt *q)
{
    if (q != NULL) {
        sqlite3_reset(q);
        sqlite3_clear_bindings(q);
    }
}

/* Runs a statement that returns no rows, then resets it. */
int cp_store__exec_q(cp_store *st, sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    int out = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : cp_store__fail_sql(st, rc);
    cp_store__done(q);
    return out;
}

void cp_store__bind_text(sqlite3_stmt *q, int i, const char *s)
{
    if (s == NULL)
        sqlite3_bind_null(q, i);
    else
        sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
}

/* One row as a JSON object, by column name. Two suffixes pick the type: "x__json" is parsed
 * JSON text and "x__bool" an integer read as a boolean; both land under "x". */
json_t *cp_store__row_json(sqlite3_stmt *q)
{
    json_t *row = json_object();
    int n = sqlite3_column_count(q);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(q, i);
        size_t len = strlen(name);
        char key[64];
        json_t *v = NULL;
        bool is_json = len > 6 && strcmp(name + len - 6, "__json") == 0;
        bool is_bool = len > 6 && strcmp(name + len - 6, "__bool") == 0;
        snprintf(key, sizeof key, "%.*s", (int)(is_json || is_bool ? len - 6 : len), name);
        switch (sqlite3_column_type(q, i)) {
        case SQLITE_NULL: v = json_null(); break;
        case SQLITE_INTEGER:
            v = is_bool ? json_boolean(sqlite3_column_int64(q, i) != 0)
                        : json_integer(sqlite3_column_int64(q, i));
            break;
        case SQLITE_FLOAT: v = json_real(sqlite3_column_double(q, i)); break;
        case SQLITE_TEXT: {
            const char *text = (const char *)sqlite3_column_text(q, i);
            size_t tlen = (size_t)sqlite3_column_bytes(q, i);
            if (is_json)
                v = json_loadb(text, tlen, JSON_DECODE_ANY, NULL);
            else
                v = json_stringn(text, tlen);
            if (v == NULL) /* text we wrote ourselves; a hand-edited row shows as null */
                v = json_null();
            break;
        }
        default: continue; /* blobs are read by the functions that need them */
        }
        json_object_set_new(row, key, v);
    }
    return row;
}

/* All rows of q (bound by the caller) as an array. */
int cp_store__rows_json(cp_store *st, sqlite3_stmt *q, json_t **out)
{
    json_t *arr = json_array();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_array_append_new(arr, cp_store__row_json(q));
    int res = rc == SQLITE_DONE ? 0 : cp_store__fail_sql(st, rc);
    cp_store__done(q);
    if (res != 0) {
        json_decref(arr);
        return res;
    }
    *out = arr;
    return 0;
}

/* The first row of q as an object, NANO_ENOTFOUND when none. */
int cp_store__row_one(cp_store *st, sqlite3_stmt *q, json_t **out)
{
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW)
        *out = cp_store__row_json(q);
    else
        res = rc == SQLITE_DONE ? NANO_ENOTFOUND : cp_store__fail_sql(st, rc);
    cp_store__done(q);
    return res;
}

/* The first column of the first row as an integer (0 when no row or NULL). */
int cp_store__int_one(cp_store *st, sqlite3_stmt *q, int64_t *out)
{
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(q, 0);
    else if (rc == SQLITE_DONE)
        *out = 0;
    else
        res = cp_store__fail_sql(st, rc);
    cp_store__done(q);
    return res;
}

int cp_store__exec_sql(cp_store *st, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        snprintf(st->errmsg, sizeof st->errmsg, "%s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return (rc & 0xff) == SQLITE_CONSTRAINT ? NANO_ESTATE : NANO_EIO;
    }
    return 0;
}

/* --- transactions ------------------------------------------------------------------------- */

int cp_store_begin(cp_store *st)
{
    if (st->etcd != NULL)
        return cp_estore_begin(st->etcd);
    int rc = cp_store__exec_sql(st, "BEGIN IMMEDIATE");
    if (rc == 0) {
        st->in_tx = true;
        cp_time_now(st->now, sizeof st->now);
    }
    return rc;
}

int cp_store_begin_read(cp_store *st)
{
    if (st->etcd != NULL) /* every etcd transaction reads one snapshot */
        return cp_estore_begin(st->etcd);
    int rc = cp_store__exec_sql(st, "BEGIN DEFERRED");
    if (rc == 0) {
        st->in_tx = true;
        cp_time_now(st->now, sizeof st->now);
    }
    return rc;
}

int cp_store_commit(cp_store *st)
{
    if (st->etcd != NULL)
        return cp_estore_commit(st->etcd);
    int rc = cp_store__exec_sql(st, "COMMIT");
    if (rc == 0)
        st->in_tx = false;
    return rc;
}

void cp_store_rollback(cp_store *st)
{
    if (st != NULL && st->etcd != NULL)
        cp_estore_rollback(st->etcd);
    if (st == NULL || !st->in_tx)
        return;
    if (!sqlite3_get_autocommit(st->db))
        cp_store__exec_sql(st, "ROLLBACK");
    st->in_tx = false;
}

/* --- opening and migrations --------------------------------------------------------------- */

static const char SQL_MIGRATIONS_TABLE[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";
static const char SQL_MIGRATIONS_APPLIED[] =
    "SELECT version, name, applied_at FROM schema_migrations ORDER BY version";
static const char SQL_MIGRATION_RECORD[] =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)";

/* "0001_init.sql" -> 1 and "init". Returns false for a name not of that form. */
static bool migration_parse(const char *file, int64_t *version, char *name, size_t cap)
{
    char *end = NULL;
    long long v = strtoll(file, &end, 10);
    if (end == file || *end != '_' || v <= 0)
        return false;
    const char *stem = end + 1;
    const char *dot = strrchr(stem, '.');
    if (dot == NULL || strcmp(dot, ".sql") != 0 || dot == stem)
        return false;
    snprintf(name, cap, "%.*s", (int)(dot - stem), stem);
    *version = v;
    return true;
}

static bool has_table(cp_store *st, const char *table)
{
    static const char sql[] = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return false;
    cp_store__bind_text(q, 1, table);
    bool found = sqlite3_step(q) == SQLITE_ROW;
    cp_store__done(q);
    return found;
}

static int not_with_etcd(cp_store *st, const char *what)
{
    snprintf(st->etcd->errmsg, sizeof st->etcd->errmsg, "%s: not with the etcd store", what);
    return NANO_ESTATE;
}

int cp_store_migrations(cp_store *st, json_t **out)
{
    if (st->etcd != NULL) /* no .sql files: the meta key's schema version (schema_version) */
        return not_with_etcd(st, "the list of SQL migrations");
    json_t *applied = json_array();
    if (has_table(st, "schema_migrations")) {
        json_decref(applied);
        sqlite3_stmt *q = cp_store__stmt(st, SQL_MIGRATIONS_APPLIED);
        int rc = q != NULL ? cp_store__rows_json(st, q, &applied) : NANO_EIO;
        if (rc != 0)
            return rc;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < st->n_migs; i++) {
        int64_t v;
        char name[128];
        if (!migration_parse(st->migs[i].name, &v, name, sizeof name))
            continue;
        json_t *at = json_null();
        size_t k;
        json_t *row;
        json_array_foreach(applied, k, row) {
            if (json_integer_value(json_object_get(row, "version")) == v)
                at = json_incref(json_object_get(row, "applied_at"));
        }
        json_array_append_new(list, json_pack("{s:I, s:s, s:o, s:b}", "version", (json_int_t)v,
                                              "name", name, "applied_at", at, "known", 1));
    }
    size_t k;
    json_t *row;
    json_array_foreach(applied, k, row) {
        int64_t v = json_integer_value(json_object_get(row, "version"));
        bool known = false;
        size_t j;
        json_t *m;
        json_array_foreach(list, j, m) {
            known = known || json_integer_value(json_object_get(m, "version")) == v;
        }
        if (!known) {
            json_object_set_new(row, "known", json_false());
            json_array_append(list, row);
        }
    }
    json_decref(applied);
    *out = list;
    return 0;
}

int cp_store_schema_version(cp_store *st, int64_t *out)
{
    if (st->etcd != NULL)
        return cp_estore_schema_version(st->etcd, out);
    static const char sql[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    return q != NULL ? cp_store__int_one(st, q, out) : NANO_EIO;
}

static int64_t max_known_version(const cp_store *st)
{
    int64_t max = 0;
    for (size_t i = 0; i < st->n_migs; i++) {
        int64_t v;
        char name[128];
        if (migration_parse(st->migs[i].name, &v, name, sizeof name) && v > max)
            max = v;
    }
    return max;
}

static int migrate(cp_store *st, nano_error *err)
{
    int rc = cp_store__exec_sql(st, SQL_MIGRATIONS_TABLE);
    json_t *list = NULL;
    if (rc == 0)
        rc = cp_store_migrations(st, &list);
    if (rc != 0)
        return nano_error_set(err, rc, "store_migrate", "%s: cannot read schema_migrations: %s",
                              st->path, st->errmsg);
    /* Refuse before changing anything: a newer database, or one whose history differs. */
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        if (json_is_false(json_object_get(m, "known"))) {
            rc = nano_error_set(
                err, NANO_ESTATE, "store_too_new",
                "%s: the database has migration %04lld (%s), newer than this "
                "nanocp knows (up to %04lld): run a newer nanocp",
                st->path, (long long)json_integer_value(json_object_get(m, "version")),
                json_string_value(json_object_get(m, "name")), (long long)max_known_version(st));
            break;
        }
    }
    if (rc == 0) {
        sqlite3_stmt *q = cp_store__stmt(st, SQL_MIGRATIONS_APPLIED);
        while (q != NULL && sqlite3_step(q) == SQLITE_ROW && rc == 0) {
            int64_t v = sqlite3_column_int64(q, 0);
            const char *name = (const char *)sqlite3_column_text(q, 1);
            for (size_t k = 0; k < st->n_migs; k++) {
                int64_t mv;
                char mname[128];
                if (migration_parse(st->migs[k].name, &mv, mname, sizeof mname) && mv == v &&
                    strcmp(mname, name ? name : "") != 0)
                    rc = nano_error_set(err, NANO_ESTATE, "store_history_differs",
                                        "%s: migration %04lld is \"%s\" in the database but "
                                        "\"%s\" in this nanocp: not the same schema history",
                                        st->path, (long long)v, name ? name : "", mname);
            }
        }
        cp_store__done(q);
    }
    for (size_t k = 0; k < st->n_migs && rc == 0; k++) {
        int64_t v;
        char name[128];
        if (!migration_parse(st->migs[k].name, &v, name, sizeof name)) {
            rc = nano_error_set(err, NANO_EINVAL, "store_migration_name",
                                "embedded migration %s is not named NNNN_name.sql",
                                st->migs[k].name);
            break;
        }
        json_t *row = json_array_get(list, k);
        if (row != NULL && !json_is_null(json_object_get(row, "applied_at")))
            continue;
        rc = cp_store_begin(st);
        if (rc == 0)
            rc = cp_store__exec_sql(st, st->migs[k].data);
        if (rc == 0) {
            sqlite3_stmt *q = cp_store__stmt(st, SQL_MIGRATION_RECORD);
            rc = q != NULL ? 0 : NANO_EIO;
            if (rc == 0) {
                sqlite3_bind_int64(q, 1, v);
                cp_store__bind_text(q, 2, name);
                cp_store__bind_text(q, 3, st->now);
                rc = cp_store__exec_q(st, q);
            }
        }
        if (rc == 0)
            rc = cp_store_commit(st);
        if (rc != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s", st->errmsg);
            cp_store_rollback(st);
            rc = nano_error_set(err, rc, "store_migration_failed",
                                "%s: migration %s failed (nothing of it applied): %s", st->path,
                                st->migs[k].name, msg);
        }
    }
    json_decref(list);
    return rc;
}

int cp_store_open_with(const char *path, const nano_embedded *migs, size_t n_migs, bool migrate_now,
                       cp_store **out, nano_error *err)
{
    cp_store *st = nano_xcalloc(1, sizeof *st);
    st->path = nano_xstrdup(path);
    st->migs = migs;
    st->n_migs = n_migs;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                (migrate_now ? SQLITE_OPEN_CREATE : 0);
    /* The file is made 0600 before SQLite opens it: it holds env values and ciphertexts. */
    if (migrate_now) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd);
    }
    int rc = sqlite3_open_v2(path, &st->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = nano_error_set(err, NANO_EIO, "store_open", "%s: cannot open the database: %s", path,
                            st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        cp_store_free(st);
        return rc;
    }
    sqlite3_busy_timeout(st->db, 5000);
    sqlite3_extended_result_codes(st->db, 1);
    rc = cp_store__exec_sql(st, "PRAGMA foreign_keys = ON");
    if (rc == 0)
        rc = cp_store__exec_sql(st, "PRAGMA journal_mode = WAL");
    if (rc == 0)
        rc = cp_store__exec_sql(st, "PRAGMA synchronous = FULL");
    if (rc != 0) {
        rc = nano_error_set(err, rc, "store_open", "%s: cannot set up the database: %s", path,
                            st->errmsg);
        cp_store_free(st);
        return rc;
    }
    if (migrate_now && (rc = migrate(st, err)) != 0) {
        cp_store_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

bool cp_store_url_is_etcd(const char *path_or_url)
{
    return strncmp(path_or_url, "etcd://", 7) == 0 || strncmp(path_or_url, "etcds://", 8) == 0;
}

int cp_store_open_etcd(const char *url, const cp_etcd_tls *tls, bool migrate_now, cp_store **out,
                       nano_error *err)
{
    cp_estore *es = NULL;
    int rc = cp_estore_open(url, tls, migrate_now, &es, err);
    if (rc != 0)
        return rc;
    cp_store *st = nano_xcalloc(1, sizeof *st);
    st->etcd = es;
    st->path = nano_xstrdup(url);
    *out = st;
    return 0;
}

bool cp_store_is_etcd(const cp_store *st)
{
    return st->etcd != NULL;
}

int cp_store_blob_sweep(cp_store *st, int64_t min_age_ms, int64_t *n_out)
{
    if (st->etcd == NULL) { /* SQLite deletes unused code with the app that used it */
        *n_out = 0;
        return 0;
    }
    return cp_estore_blob_sweep(st->etcd, min_age_ms, n_out);
}

int cp_store_open(const char *path, bool migrate_now, cp_store **out, nano_error *err)
{
    if (cp_store_url_is_etcd(path))
        return cp_store_open_etcd(path, NULL, migrate_now, out, err);
    return cp_store_open_with(path, cp_migrations, cp_migrations_count, migrate_now, out, err);
}

int cp_store_checkpoint(cp_store *st)
{
    if (st->etcd != NULL)
        return not_with_etcd(st, "a WAL checkpoint");
    int rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    return rc == SQLITE_OK ? 0 : cp_store__fail_sql(st, rc);
}

void cp_store_free(cp_store *st)
{
    if (st == NULL)
        return;
    cp_store_rollback(st);
    cp_estore_free(st->etcd);
    for (size_t i = 0; i < st->n_stmts; i++)
        sqlite3_finalize(st->stmts[i].q);
    if (st->db != NULL) {
        sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(st->db);
    }
    nano_free(st->path);
    nano_free(st);
}

/* --- apps ----------------------------------------------------------------------------------- */

#define APP_COLUMNS                                                                                \
    "a.id, a.name, "                                                                               \
    "(SELECT json_group_array(hostname) FROM (SELECT hostname FROM hostnames h"                    \
    "  WHERE h.app_id = a.id ORDER BY position)) AS hostnames__json, "                             \
    "a.path_prefix, a.is_default AS default__bool, a.node_compat AS node_compat__bool, "           \
    "a.required_env AS required_env__json, a.limits AS limits__json, "                             \
    "a.egress AS egress__json, a.state, "                                                          \
    "COALESCE(d.version, 0) AS active_version, d.sha256 AS active_sha256, a.created_at, "          \
    "a.updated_at FROM apps a LEFT JOIN deployments d ON d.id = a.active_deployment_id "

static const char SQL_APP_BY_NAME[] = "SELECT " APP_COLUMNS "WHERE a.name = ?1";
static const char SQL_APP_LIST[] = "SELECT " APP_COLUMNS "ORDER BY a.name";

int cp_store_app_get(cp_store *st, const char *name, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_app_get(st->etcd, name, out);
    sqlite3_stmt *q = cp_store__stmt(st, SQL_APP_BY_NAME);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, name);
    return cp_store__row_one(st, q, out);
}

int cp_store_app_list(cp_store *st, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_app_list(st->etcd, out);
    sqlite3_stmt *q = cp_store__stmt(st, SQL_APP_LIST);
    return q != NULL ? cp_store__rows_json(st, q, out) : NANO_EIO;
}

static int hostnames_put(cp_store *st, int64_t id, const nano_app_spec *spec)
{
    static const char del[] = "DELETE FROM hostnames WHERE app_id = ?1";
    static const char ins[] = "INSERT INTO hostnames (app_id, position, hostname, path_prefix)"
                              " VALUES (?1, ?2, ?3, ?4)";
    sqlite3_stmt *q = cp_store__stmt(st, del);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, id);
    int rc = cp_store__exec_q(st, q);
    for (size_t i = 0; i < spec->n_hostnames && rc == 0; i++) {
        if ((q = cp_store__stmt(st, ins)) == NULL)
            return NANO_EIO;
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
        cp_store__bind_text(q, 3, spec->hostnames[i]);
        cp_store__bind_text(q, 4, spec->path_prefix ? spec->path_prefix : "");
        rc = cp_store__exec_q(st, q);
    }
    return rc;
}

/* Binds a JSON value of the spec's JSON form as compact text (NULL for JSON null). */
static void bind_json(sqlite3_stmt *q, int index, const json_t *v)
{
    char *text = json_is_null(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        sqlite3_bind_null(q, index);
    else
        sqlite3_bind_text(q, index, text, -1, free); /* jansson's allocator: malloc */
}

/* The spec's columns as ?2..?7 (path_prefix, is_default, node_compat, required_env, limits,
 * egress), from its JSON form. */
static void bind_spec(sqlite3_stmt *q, const nano_app_spec *spec)
{
    json_t *j = nano_app_spec_to_json(spec);
    cp_store__bind_text(q, 2, spec->path_prefix);
    sqlite3_bind_int(q, 3, spec->is_default);
    sqlite3_bind_int(q, 4, spec->node_compat);
    bind_json(q, 5, json_object_get(j, "required_env"));
    bind_json(q, 6, json_object_get(j, "limits"));
    bind_json(q, 7, json_object_get(j, "egress"));
    json_decref(j);
}

int cp_store_app_insert(cp_store *st, const char *name, const nano_app_spec *spec, int64_t *id_out)
{
    if (st->etcd != NULL)
        return cp_estore_app_insert(st->etcd, name, spec, id_out);
    static const char sql[] =
        "INSERT INTO apps (name, path_prefix, is_default, node_compat, required_env, limits,"
        " egress, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, name);
    bind_spec(q, spec);
    cp_store__bind_text(q, 8, st->now);
    int rc = cp_store__exec_q(st, q);
    int64_t id = sqlite3_last_insert_rowid(st->db);
    if (rc == 0)
        rc = hostnames_put(st, id, spec);
    if (rc == 0)
        *id_out = id;
    return rc;
}

int cp_store_app_update(cp_store *st, int64_t id, const nano_app_spec *spec)
{
    if (st->etcd != NULL)
        return cp_estore_app_update(st->etcd, id, spec);
    static const char sql[] =
        "UPDATE apps SET path_prefix = ?2, is_default = ?3, node_compat = ?4, required_env = ?5,"
        " limits = ?6, egress = ?7, updated_at = ?8 WHERE id = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, id);
    bind_spec(q, spec);
    cp_store__bind_text(q, 8, st->now);
    int rc = cp_store__exec_q(st, q);
    return rc == 0 ? hostnames_put(st, id, spec) : rc;
}

int cp_store_app_set_state(cp_store *st, int64_t id, const char *state)
{
    if (st->etcd != NULL)
        return cp_estore_app_set_state(st->etcd, id, state);
    static const char sql[] = "UPDATE apps SET state = ?2, updated_at = ?3 WHERE id = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, id);
    cp_store__bind_text(q, 2, state);
    cp_store__bind_text(q, 3, st->now);
    return cp_store__exec_q(st, q);
}

int cp_store_app_activate(cp_store *st, int64_t id, int64_t deployment_id)
{
    if (st->etcd != NULL)
        return cp_estore_app_activate(st->etcd, id, deployment_id);
    static const char sql[] =
        "UPDATE apps SET active_deployment_id = ?2, updated_at = ?3 WHERE id = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, deployment_id);
    cp_store__bind_text(q, 3, st->now);
    return cp_store__exec_q(st, q);
}

int cp_store_app_delete(cp_store *st, int64_t id)
{
    if (st->etcd != NULL)
        return cp_estore_app_delete(st->etcd, id);
    static const char unlink_active[] = "UPDATE apps SET active_deployment_id = NULL WHERE id = ?1";
    static const char del[] = "DELETE FROM apps WHERE id = ?1";
    static const char gc[] = "DELETE FROM blobs WHERE sha256 NOT IN"
                             " (SELECT sha256 FROM deployment_modules)";
    sqlite3_stmt *q = cp_store__stmt(st, unlink_active);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, id);
    int rc = cp_store__exec_q(st, q);
    if (rc == 0 && (q = cp_store__stmt(st, del)) != NULL) {
        sqlite3_bind_int64(q, 1, id);
        rc = cp_store__exec_q(st, q);
    }
    if (rc == 0 && (q = cp_store__stmt(st, gc)) != NULL)
        rc = cp_store__exec_q(st, q);
    return q == NULL ? NANO_EIO : rc;
}

static int name_one(cp_store *st, sqlite3_stmt *q, char *name_out)
{
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW)
        snprintf(name_out, 64, "%s", (const char *)sqlite3_column_text(q, 0));
    else
        res = rc == SQLITE_DONE ? NANO_ENOTFOUND : cp_store__fail_sql(st, rc);
    cp_store__done(q);
    return res;
}

int cp_store_hostname_owner(cp_store *st, const char *host, const char *prefix, int64_t except_id,
                            char *name_out)
{
    if (st->etcd != NULL)
        return cp_estore_hostname_owner(st->etcd, host, prefix, except_id, name_out);
    static const char sql[] = "SELECT a.name FROM hostnames h JOIN apps a ON a.id = h.app_id"
                              " WHERE h.hostname = ?1 AND h.path_prefix = ?2 AND h.app_id != ?3";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, host);
    cp_store__bind_text(q, 2, prefix ? prefix : "");
    sqlite3_bind_int64(q, 3, except_id);
    return name_one(st, q, name_out);
}

int cp_store_default_owner(cp_store *st, int64_t except_id, char *name_out)
{
    if (st->etcd != NULL)
        return cp_estore_default_owner(st->etcd, except_id, name_out);
    static const char sql[] = "SELECT name FROM apps WHERE is_default = 1 AND id != ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, except_id);
    return name_one(st, q, name_out);
}

/* --- deployments ---------------------------------------------------------------------------- */

int cp_store_deployment_insert(cp_store *st, int64_t app_id, const char *sha256, const char *main,
                               const cp_module *mods, size_t n_mods, const char *created_by,
                               int64_t *id_out, int64_t *version_out)
{
    if (st->etcd != NULL)
        return cp_estore_deployment_insert(st->etcd, app_id, sha256, main, mods, n_mods, created_by,
                                           id_out, version_out);
    static const char blob[] =
        "INSERT OR IGNORE INTO blobs (sha256, size, data) VALUES (?1, ?2, ?3)";
    static const char ins[] =
        "INSERT INTO deployments (app_id, version, sha256, main, size, created_at, created_by)"
        " VALUES (?1, (SELECT COALESCE(MAX(version), 0) + 1 FROM deployments WHERE app_id = ?1),"
        " ?2, ?3, ?4, ?5, ?6) RETURNING id, version";
    static const char mod[] = "INSERT INTO deployment_modules (deployment_id, position, name,"
                              " sha256, size) VALUES (?1, ?2, ?3, ?4, ?5)";
    int rc = 0;
    size_t total = 0;
    for (size_t i = 0; i < n_mods && rc == 0; i++) {
        sqlite3_stmt *q = cp_store__stmt(st, blob);
        if (q == NULL)
            return NANO_EIO;
        cp_store__bind_text(q, 1, mods[i].sha256);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)mods[i].len);
        sqlite3_bind_blob64(q, 3, mods[i].len ? mods[i].data : "", mods[i].len, SQLITE_STATIC);
        rc = cp_store__exec_q(st, q);
        total += mods[i].len;
    }
    sqlite3_stmt *q = rc == 0 ? cp_store__stmt(st, ins) : NULL;
    if (rc != 0 || q == NULL)
        return rc != 0 ? rc : NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    cp_store__bind_text(q, 2, sha256);
    cp_store__bind_text(q, 3, main);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)total);
    cp_store__bind_text(q, 5, st->now);
    cp_store__bind_text(q, 6, created_by);
    int step = sqlite3_step(q);
    int64_t id = 0, version = 0;
    if (step == SQLITE_ROW) {
        id = sqlite3_column_int64(q, 0);
        version = sqlite3_column_int64(q, 1);
    } else {
        rc = cp_store__fail_sql(st, step);
    }
    cp_store__done(q);
    for (size_t i = 0; i < n_mods && rc == 0; i++) {
        if ((q = cp_store__stmt(st, mod)) == NULL)
            return NANO_EIO;
        sqlite3_bind_int64(q, 1, id);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)i);
        cp_store__bind_text(q, 3, mods[i].name);
        cp_store__bind_text(q, 4, mods[i].sha256);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)mods[i].len);
        rc = cp_store__exec_q(st, q);
    }
    if (rc == 0) {
        *id_out = id;
        *version_out = version;
    }
    return rc;
}

#define DEPLOYMENT_COLUMNS                                                                         \
    "d.id, d.version, d.sha256, d.main, d.size, "                                                  \
    "(SELECT json_group_array(json_object('name', name, 'size', size, 'sha256', sha256))"          \
    "  FROM (SELECT name, size, sha256 FROM deployment_modules m WHERE m.deployment_id = d.id"     \
    "  ORDER BY position)) AS modules__json, "                                                     \
    "d.created_at, d.created_by, (a.active_deployment_id IS d.id) AS active__bool "                \
    "FROM deployments d JOIN apps a ON a.id = d.app_id "

int cp_store_deployment_get(cp_store *st, int64_t app_id, int64_t version, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_deployment_get(st->etcd, app_id, version, out);
    static const char sql[] = "SELECT " DEPLOYMENT_COLUMNS "WHERE d.app_id = ?1 AND d.version = ?2";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    sqlite3_bind_int64(q, 2, version);
    return cp_store__row_one(st, q, out);
}

int cp_store_deployment_list(cp_store *st, int64_t app_id, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_deployment_list(st->etcd, app_id, out);
    static const char sql[] = "SELECT " DEPLOYMENT_COLUMNS
                              "WHERE d.app_id = ?1 ORDER BY d.version DESC";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    return cp_store__rows_json(st, q, out);
}

int cp_store_blob_get(cp_store *st, const char *sha256, char **data_out, size_t *len_out)
{
    if (st->etcd != NULL)
        return cp_estore_blob_get(st->etcd, sha256, data_out, len_out);
    static const char sql[] = "SELECT data FROM blobs WHERE sha256 = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    cp_store__bind_text(q, 1, sha256);
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(q, 0);
        char *data = nano_xmalloc(len + 1);
        if (len > 0)
            memcpy(data, sqlite3_column_blob(q, 0), len);
        data[len] = '\0';
        *data_out = data;
        *len_out = len;
    } else {
        res = rc == SQLITE_DONE ? NANO_ENOTFOUND : cp_store__fail_sql(st, rc);
    }
    cp_store__done(q);
    return res;
}

/* --- env and secrets ------------------------------------------------------------------------ */

int cp_store_env_vars(cp_store *st, int64_t app_id, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_env_vars(st->etcd, app_id, out);
    static const char sql[] = "SELECT name, value FROM env_vars WHERE app_id = ?1 ORDER BY name";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    json_t *obj = json_object();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(q, 1);
        json_t *v = json_loadb(text, (size_t)sqlite3_column_bytes(q, 1), JSON_DECODE_ANY, NULL);
        json_object_set_new(obj, (const char *)sqlite3_column_text(q, 0), v ? v : json_null());
    }
    int res = rc == SQLITE_DONE ? 0 : cp_store__fail_sql(st, rc);
    cp_store__done(q);
    if (res != 0) {
        json_decref(obj);
        return res;
    }
    *out = obj;
    return 0;
}

int cp_store_env_kinds(cp_store *st, int64_t app_id, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_env_kinds(st->etcd, app_id, out);
    static const char sql[] = "SELECT name, 'var' FROM env_vars WHERE app_id = ?1 UNION ALL"
                              " SELECT name, 'secret' FROM secrets WHERE app_id = ?1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    json_t *obj = json_object();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_object_set_new(obj, (const char *)sqlite3_column_text(q, 0),
                            json_string((const char *)sqlite3_column_text(q, 1)));
    int res = rc == SQLITE_DONE ? 0 : cp_store__fail_sql(st, rc);
    cp_store__done(q);
    if (res != 0) {
        json_decref(obj);
        return res;
    }
    *out = obj;
    return 0;
}

int cp_store_env_put(cp_store *st, int64_t app_id, const char *name, const char *value_json)
{
    if (st->etcd != NULL)
        return cp_estore_env_put(st->etcd, app_id, name, value_json);
    static const char sql[] =
        "INSERT INTO env_vars (app_id, name, value, updated_at) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (app_id, name) DO UPDATE SET value = excluded.value,"
        " updated_at = excluded.updated_at";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    cp_store__bind_text(q, 2, name);
    cp_store__bind_text(q, 3, value_json);
    cp_store__bind_text(q, 4, st->now);
    return cp_store__exec_q(st, q);
}

static int delete_named(cp_store *st, const char *sql, int64_t app_id, const char *name)
{
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    cp_store__bind_text(q, 2, name);
    int rc = cp_store__exec_q(st, q);
    if (rc == 0 && sqlite3_changes(st->db) == 0)
        rc = NANO_ENOTFOUND;
    return rc;
}

int cp_store_env_del(cp_store *st, int64_t app_id, const char *name)
{
    if (st->etcd != NULL)
        return cp_estore_env_del(st->etcd, app_id, name);
    static const char sql[] = "DELETE FROM env_vars WHERE app_id = ?1 AND name = ?2";
    return delete_named(st, sql, app_id, name);
}

int cp_store_secret_list(cp_store *st, int64_t app_id, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_secret_list(st->etcd, app_id, out);
    static const char sql[] =
        "SELECT name, updated_at FROM secrets WHERE app_id = ?1 ORDER BY name";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    return cp_store__rows_json(st, q, out);
}

int cp_store_secret_put(cp_store *st, int64_t app_id, const char *name, const cp_sealed *s)
{
    if (st->etcd != NULL)
        return cp_estore_secret_put(st->etcd, app_id, name, s);
    static const char sql[] =
        "INSERT INTO secrets (app_id, name, ciphertext, nonce, tag, key_id, updated_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (app_id, name) DO UPDATE SET"
        " ciphertext = excluded.ciphertext, nonce = excluded.nonce, tag = excluded.tag,"
        " key_id = excluded.key_id, updated_at = excluded.updated_at";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    cp_store__bind_text(q, 2, name);
    sqlite3_bind_blob64(q, 3, s->len ? (const void *)s->ciphertext : "", s->len, SQLITE_STATIC);
    sqlite3_bind_blob(q, 4, s->nonce, CP_NONCE_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(q, 5, s->tag, CP_TAG_BYTES, SQLITE_STATIC);
    cp_store__bind_text(q, 6, s->key_id);
    cp_store__bind_text(q, 7, st->now);
    return cp_store__exec_q(st, q);
}

int cp_store_secret_get(cp_store *st, int64_t app_id, const char *name, cp_sealed *out)
{
    if (st->etcd != NULL)
        return cp_estore_secret_get(st->etcd, app_id, name, out);
    static const char sql[] = "SELECT ciphertext, nonce, tag, key_id FROM secrets"
                              " WHERE app_id = ?1 AND name = ?2";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    sqlite3_bind_int64(q, 1, app_id);
    cp_store__bind_text(q, 2, name);
    int rc = sqlite3_step(q);
    int res = 0;
    if (rc == SQLITE_ROW) {
        cp_sealed s = {0};
        s.len = (size_t)sqlite3_column_bytes(q, 0);
        s.ciphertext = nano_xmalloc(s.len + 1);
        if (s.len > 0)
            memcpy(s.ciphertext, sqlite3_column_blob(q, 0), s.len);
        /* The table's CHECKs fix the sizes; a row edited by hand fails to open instead. */
        if (sqlite3_column_bytes(q, 1) == CP_NONCE_BYTES)
            memcpy(s.nonce, sqlite3_column_blob(q, 1), CP_NONCE_BYTES);
        if (sqlite3_column_bytes(q, 2) == CP_TAG_BYTES)
            memcpy(s.tag, sqlite3_column_blob(q, 2), CP_TAG_BYTES);
        snprintf(s.key_id, sizeof s.key_id, "%s", (const char *)sqlite3_column_text(q, 3));
        *out = s;
    } else {
        res = rc == SQLITE_DONE ? NANO_ENOTFOUND : cp_store__fail_sql(st, rc);
    }
    cp_store__done(q);
    return res;
}

int cp_store_secret_del(cp_store *st, int64_t app_id, const char *name)
{
    if (st->etcd != NULL)
        return cp_estore_secret_del(st->etcd, app_id, name);
    static const char sql[] = "DELETE FROM secrets WHERE app_id = ?1 AND name = ?2";
    return delete_named(st, sql, app_id, name);
}

int cp_store_lead(cp_store *st, const char *who, int64_t ttl_ms, bool *is_leader)
{
    if (st->etcd != NULL)
        return cp_estore_lead(st->etcd, who, ttl_ms, is_leader);
    *is_leader = true;
    return 0;
}

int cp_store_watch_start(cp_store *st, cp_store_changed_cb changed, void *arg, cp_store_watch **out,
                         nano_error *err)
{
    if (st->etcd != NULL)
        return cp_estore_watch_start(st->etcd, changed, arg, out, err);
    *out = NULL;
    return 0;
}
