/* Unit tests for nanocp's core: migrations, the store, secrets at rest, every service op with
 * its errors, the config log and the audit log. Each test gets a fresh data dir under a
 * mkdtemp directory; a second SQLite connection plays the operator (or a fault) where a test
 * needs to reach under the service. */
#define _GNU_SOURCE
#include "unit.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "env.h"
#include "log.h"
#include "secrets.h"
#include "service.h"
#include "sha256.h"
#include "store.h"

/* --- fixture -------------------------------------------------------------------------------- */

typedef struct fx {
    char root[64];
    char data[128];
    char db[160];
    cp_service *svc;
} fx;

static const cp_actor ADMIN = {"admin", "test"};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void open_svc(fx *f)
{
    cp_service_options o = {.data_dir = f->data};
    cp_error err = {0};
    if (cp_service_open(&o, &f->svc, &err) != 0)
        fail_msg("cp_service_open: %s", err.message);
}

static int setup(void **state)
{
    fx *f = nano_xcalloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/nano-cp-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    snprintf(f->db, sizeof f->db, "%s/nanocp.db", f->data);
    unsetenv("NANO_MASTER_KEY");
    nano_log_min_level = NANO_LOG_WARN;
    open_svc(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    cp_service_free(f->svc);
    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    nano_free(f);
    return 0;
}

/* Runs op with args given as JSON text; must succeed. Returns the result (owned). */
static json_t *call(fx *f, const char *op, const char *args_json)
{
    json_error_t jerr;
    json_t *args = args_json ? json_loads(args_json, 0, &jerr) : NULL;
    if (args_json != NULL && args == NULL)
        fail_msg("bad test JSON: %s: %s", args_json, jerr.text);
    json_t *result = NULL;
    cp_error err = {0};
    int rc = cp_service_call(f->svc, &ADMIN, op, args, &result, &err);
    if (rc != 0)
        fail_msg("%s %s: %s (%s, field %s)", op, args_json ? args_json : "", err.message,
                 err.code, err.field);
    json_decref(args);
    assert_non_null(result);
    return result;
}

/* Runs op; must fail with this status, code and field, and a message containing needle. */
static void call_fails(fx *f, const char *op, const char *args_json, int status, const char *code,
                       const char *field, const char *needle)
{
    json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
    if (args_json != NULL && args == NULL)
        fail_msg("bad test JSON: %s", args_json);
    json_t *result = NULL;
    cp_error err = {0};
    int rc = cp_service_call(f->svc, &ADMIN, op, args, &result, &err);
    json_decref(args);
    if (rc == 0) {
        json_decref(result);
        fail_msg("%s %s succeeded; expected %s", op, args_json ? args_json : "", code);
    }
    assert_null(result);
    if (err.status != status || strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)
        fail_msg("%s: got %d %s field '%s' (%s); expected %d %s field '%s'", op, err.status,
                 err.code, err.field, err.message, status, code, field);
    if (needle != NULL && strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n'));
}

static int64_t config_seq(fx *f)
{
    json_t *v = call(f, "version", NULL);
    int64_t seq = json_integer_value(json_object_get(v, "config_seq"));
    json_decref(v);
    return seq;
}

static size_t audit_count(fx *f)
{
    json_t *a = call(f, "audit.list", "{\"limit\": 1000}");
    size_t n = json_array_size(json_object_get(a, "entries"));
    json_decref(a);
    return n;
}

/* A second connection to the database, as an operator with sqlite3 would have. */
static void sql(fx *f, const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    char *msg = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql %s: %s", text, msg);
    sqlite3_close(db);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        *len = 0;
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *data = nano_xmalloc((size_t)n + 1);
    *len = fread(data, 1, (size_t)n, fp);
    data[*len] = '\0';
    fclose(fp);
    return data;
}

static bool file_contains(const char *path, const char *needle)
{
    size_t len;
    char *data = read_all(path, &len);
    bool found = data != NULL && memmem(data, len, needle, strlen(needle)) != NULL;
    nano_free(data);
    return found;
}

static void create_app(fx *f, const char *name, const char *host)
{
    char args[256];
    snprintf(args, sizeof args, "{\"name\": \"%s\", \"hostnames\": [\"%s\"]}", name, host);
    json_decref(call(f, "apps.create", args));
}

/* --- migrations ----------------------------------------------------------------------------- */

static void migrations_first_open_applies_and_records(void **state)
{
    fx *f = *state;
    json_t *list = NULL;
    assert_int_equal(cp_store_migrations(cp_service_store(f->svc), &list), 0);
    /* Every migration nanocp embeds (migrations/, in order), each recorded once. */
    assert_int_equal(json_array_size(list), cp_migrations_count);
    for (size_t i = 0; i < cp_migrations_count; i++) {
        json_t *one = json_array_get(list, i);
        char name[64];
        snprintf(name, sizeof name, "%04lld_%s.sql",
                 (long long)json_integer_value(json_object_get(one, "version")),
                 json_string_value(json_object_get(one, "name")));
        assert_string_equal(name, cp_migrations[i].name);
    }
    json_t *m = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(m, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "init");
    assert_true(json_is_string(json_object_get(m, "applied_at")));
    char *at = nano_xstrdup(json_string_value(json_object_get(m, "applied_at")));
    json_decref(list);

    /* Reopening applies nothing again. */
    cp_service_free(f->svc);
    open_svc(f);
    assert_int_equal(cp_store_migrations(cp_service_store(f->svc), &list), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "applied_at")),
                        at);
    json_decref(list);
    nano_free(at);
    json_t *v = call(f, "version", NULL);
    assert_int_equal(json_integer_value(json_object_get(v, "schema_version")),
                     (json_int_t)cp_migrations_count);
    json_decref(v);

    struct stat sb;
    assert_int_equal(stat(f->data, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(stat(f->db, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
}

static void migrations_newer_database_is_refused(void **state)
{
    fx *f = *state;
    cp_service_free(f->svc);
    f->svc = NULL;
    /* One past the newest this nanocp embeds (migrations/ numbers them 1, 2, ...). */
    size_t future = cp_migrations_count + 1;
    char text[160];
    snprintf(text, sizeof text,
             "INSERT INTO schema_migrations VALUES (%zu, 'future', '2030-01-01T00:00:00.000Z')",
             future);
    sql(f, text);
    cp_service_options o = {.data_dir = f->data};
    cp_error err = {0};
    assert_int_not_equal(cp_service_open(&o, &f->svc, &err), 0);
    assert_null(f->svc);
    char want[160];
    snprintf(want, sizeof want,
             "nanocp.db: the database has migration %04zu (future), newer than this nanocp "
             "knows (up to %04zu)",
             future, cp_migrations_count);
    if (strstr(err.message, want) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, want);
    assert_null(strchr(err.message, '\n'));
    /* The store opened without migrating (migrate --status) still lists it. */
    cp_store *st = NULL;
    nano_error e = {0};
    assert_int_equal(cp_store_open(f->db, false, &st, &e), 0);
    json_t *list = NULL;
    assert_int_equal(cp_store_migrations(st, &list), 0);
    assert_int_equal(json_array_size(list), future);
    assert_true(json_is_false(json_object_get(json_array_get(list, future - 1), "known")));
    json_decref(list);
    cp_store_free(st);
}

static void migrations_failing_one_applies_nothing_of_itself(void **state)
{
    fx *f = *state;
    cp_service_free(f->svc);
    f->svc = NULL;
    char path[200];
    snprintf(path, sizeof path, "%s/other.db", f->root);
    static const char ok[] = "CREATE TABLE t1 (a INTEGER);";
    static const char bad[] = "CREATE TABLE t2 (a INTEGER); INSERT INTO no_such_table VALUES (1);";
    const nano_embedded migs[] = {{"0001_one.sql", ok, sizeof ok - 1},
                                  {"0002_two.sql", bad, sizeof bad - 1}};
    cp_store *st = NULL;
    nano_error e = {0};
    assert_int_not_equal(cp_store_open_with(path, migs, 2, true, &st, &e), 0);
    assert_non_null(strstr(e.message, "migration 0002_two.sql failed (nothing of it applied)"));
    assert_non_null(strstr(e.message, "no_such_table"));
    /* 0001 stays applied and recorded; 0002 left no table behind and shows as pending. */
    assert_int_equal(cp_store_open_with(path, migs, 2, false, &st, &e), 0);
    json_t *list = NULL;
    assert_int_equal(cp_store_migrations(st, &list), 0);
    assert_true(json_is_string(json_object_get(json_array_get(list, 0), "applied_at")));
    assert_true(json_is_null(json_object_get(json_array_get(list, 1), "applied_at")));
    json_decref(list);
    int64_t v = 0;
    assert_int_equal(cp_store_schema_version(st, &v), 0);
    assert_int_equal(v, 1);
    cp_store_free(st);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM t2", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "SELECT * FROM t1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* A database whose 0001 is another migration is not this schema's history. */
    const nano_embedded other[] = {{"0001_else.sql", ok, sizeof ok - 1}};
    assert_int_not_equal(cp_store_open_with(path, other, 1, true, &st, &e), 0);
    assert_non_null(strstr(e.message, "migration 0001 is \"one\" in the database but \"else\""));
}

static void migrations_schema_has_constraints(void **state)
{
    fx *f = *state;
    /* The database itself refuses what the service checks first (belt and braces). */
    create_app(f, "a", "a.test");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    assert_int_not_equal(sqlite3_exec(db,
                                      "INSERT INTO apps (name, limits, created_at, updated_at) "
                                      "VALUES ('a', '{}', 'x', 'x')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db,
                                      "INSERT INTO hostnames (app_id, position, hostname) "
                                      "VALUES (999, 0, 'b.test')",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db,
                                      "INSERT INTO hostnames (app_id, position, hostname) "
                                      "SELECT id, 1, 'a.test' FROM apps WHERE name = 'a'",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
    char *mode = NULL;
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
    if (sqlite3_step(q) == SQLITE_ROW)
        mode = nano_xstrdup((const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    assert_string_equal(mode, "wal");
    nano_free(mode);
}

/* --- secrets -------------------------------------------------------------------------------- */

static void key_of(const char *hex, cp_master_key *k)
{
    assert_int_equal(cp_master_key_from_hex(hex, strlen(hex), k), 0);
}

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void secrets_round_trip_and_failures(void **state)
{
    (void)state;
    cp_master_key a, b;
    key_of(KEY_A, &a);
    key_of(KEY_B, &b);
    assert_int_equal(strlen(a.id), 8);
    assert_string_not_equal(a.id, b.id);
    static const char plain[] = "hunter2-the-password";
    cp_sealed s = {0};
    assert_int_equal(cp_secret_seal(&a, "api", "DB_PASS", plain, strlen(plain), &s), 0);
    assert_int_equal(s.len, strlen(plain));
    assert_null(memmem(s.ciphertext, s.len, plain, strlen(plain)));
    assert_string_equal(s.key_id, a.id);

    char *out = NULL;
    size_t len = 0;
    assert_int_equal(cp_secret_open(&a, "api", "DB_PASS", &s, &out, &len), 0);
    assert_int_equal(len, strlen(plain));
    assert_memory_equal(out, plain, len);
    nano_free(out);

    /* Another key (even one claiming the right id), another app, another name: all fail. */
    assert_int_equal(cp_secret_open(&b, "api", "DB_PASS", &s, &out, &len), NANO_EINVAL);
    memcpy(b.id, a.id, sizeof b.id);
    assert_int_equal(cp_secret_open(&b, "api", "DB_PASS", &s, &out, &len), NANO_EINVAL);
    assert_int_equal(cp_secret_open(&a, "www", "DB_PASS", &s, &out, &len), NANO_EINVAL);
    assert_int_equal(cp_secret_open(&a, "api", "DB_PASSX", &s, &out, &len), NANO_EINVAL);
    assert_int_equal(cp_secret_open(&a, "apiD", "B_PASS", &s, &out, &len), NANO_EINVAL);

    /* Tampering with any part fails. */
    s.ciphertext[3] ^= 1;
    assert_int_equal(cp_secret_open(&a, "api", "DB_PASS", &s, &out, &len), NANO_EINVAL);
    s.ciphertext[3] ^= 1;
    s.tag[0] ^= 0x80;
    assert_int_equal(cp_secret_open(&a, "api", "DB_PASS", &s, &out, &len), NANO_EINVAL);
    s.tag[0] ^= 0x80;
    s.nonce[11] ^= 1;
    assert_int_equal(cp_secret_open(&a, "api", "DB_PASS", &s, &out, &len), NANO_EINVAL);
    s.nonce[11] ^= 1;
    assert_int_equal(cp_secret_open(&a, "api", "DB_PASS", &s, &out, &len), 0);
    nano_free(out);

    /* Two seals of one value differ (fresh nonce). An empty value works. */
    cp_sealed s2 = {0};
    assert_int_equal(cp_secret_seal(&a, "api", "DB_PASS", plain, strlen(plain), &s2), 0);
    assert_memory_not_equal(s.nonce, s2.nonce, CP_NONCE_BYTES);
    assert_memory_not_equal(s.ciphertext, s2.ciphertext, s.len);
    cp_sealed_fini(&s2);
    assert_int_equal(cp_secret_seal(&a, "api", "E", "", 0, &s2), 0);
    assert_int_equal(cp_secret_open(&a, "api", "E", &s2, &out, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(out, "");
    nano_free(out);
    cp_sealed_fini(&s2);
    cp_sealed_fini(&s);
    cp_sealed_fini(NULL);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    chmod(path, mode);
}

static void secrets_master_key_sources(void **state)
{
    fx *f = *state;
    cp_master_key k;
    cp_key_source src;
    char used[256];
    nano_error e = {0};

    /* The generated one: 64 hex + newline, 0600, and read back the same. */
    char gen[200];
    snprintf(gen, sizeof gen, "%s/master.key", f->data);
    struct stat sb;
    assert_int_equal(stat(gen, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 65);
    assert_int_equal(cp_master_key_load(NULL, f->data, &k, &src, used, sizeof used, &e), 0);
    assert_int_equal(src, CP_KEY_DATA_DIR);
    assert_string_equal(used, gen);

    char path[200];
    snprintf(path, sizeof path, "%s/key", f->root);
    write_file(path, KEY_A "\n", 0644);
    assert_int_equal(cp_master_key_load(path, f->data, &k, &src, used, sizeof used, &e),
                     NANO_EINVAL);
    assert_string_equal(e.id, "master_key_mode");
    assert_non_null(strstr(e.message, "accessible by group or others (mode 0644): run chmod 600"));
    write_file(path, KEY_A "\n", 0640);
    assert_int_equal(cp_master_key_load(path, f->data, &k, &src, used, sizeof used, &e),
                     NANO_EINVAL);
    write_file(path, KEY_A "\n", 0600);
    assert_int_equal(cp_master_key_load(path, f->data, &k, &src, used, sizeof used, &e), 0);
    assert_int_equal(src, CP_KEY_FILE);
    assert_int_equal(k.key[1], 1);
    write_file(path, "not a key\n", 0600);
    assert_int_equal(cp_master_key_load(path, f->data, &k, &src, used, sizeof used, &e),
                     NANO_EINVAL);
    assert_non_null(strstr(e.message, "does not hold a key: a master key is 64 hex digits"));
    assert_null(strstr(e.message, "not a key")); /* key material never quoted */

    setenv("NANO_MASTER_KEY", KEY_B, 1);
    assert_int_equal(cp_master_key_load(NULL, f->data, &k, &src, used, sizeof used, &e), 0);
    assert_int_equal(src, CP_KEY_ENV);
    assert_int_equal(k.key[0], 0xff);
    setenv("NANO_MASTER_KEY", "abc", 1);
    assert_int_equal(cp_master_key_load(NULL, f->data, &k, &src, used, sizeof used, &e),
                     NANO_EINVAL);
    assert_non_null(strstr(e.message, "NANO_MASTER_KEY does not hold a key"));
    unsetenv("NANO_MASTER_KEY");

    /* A service given a bad key file does not start. */
    cp_service *svc = NULL;
    cp_error err = {0};
    write_file(path, KEY_A, 0604);
    cp_service_options o = {.data_dir = f->data, .master_key_file = path};
    assert_int_not_equal(cp_service_open(&o, &svc, &err), 0);
    assert_non_null(strstr(err.message, "chmod 600"));
}

static void secrets_plaintext_never_in_database_file(void **state)
{
    fx *f = *state;
    static const char secret[] = "PLAINTEXT-SECRET-7f3a9c";
    static const char secret2[] = "PLAINTEXT-SECRET-second";
    static const char var[] = "PLAIN-VAR-VALUE-4411";
    create_app(f, "api", "api.test");
    char args[256];
    snprintf(args, sizeof args, "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"%s\"}", secret);
    json_decref(call(f, "secrets.put", args));
    snprintf(args, sizeof args, "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"%s\"}", secret2);
    json_decref(call(f, "secrets.put", args));
    snprintf(args, sizeof args, "{\"name\": \"api\", \"vars\": {\"HOST\": \"%s\"}}", var);
    json_decref(call(f, "env.patch", args));
    json_t *env = call(f, "env.get", "{\"name\": \"api\"}");
    char *dump = json_dumps(env, 0);
    assert_null(strstr(dump, secret2));
    assert_non_null(strstr(dump, "\"TOKEN\""));
    free(dump);
    json_decref(env);

    cp_service_free(f->svc); /* checkpoints: everything is in the main file now */
    f->svc = NULL;
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    struct stat sb;
    assert_true(stat(wal, &sb) != 0 || sb.st_size == 0);
    /* The search works (the var's value is there in clear, as designed) ... */
    assert_true(file_contains(f->db, var));
    /* ... and finds neither secret value, nor the key that would decrypt them. */
    assert_false(file_contains(f->db, secret));
    assert_false(file_contains(f->db, secret2));
    assert_false(file_contains(f->db, "PLAINTEXT-SECRET"));
    char keypath[200];
    snprintf(keypath, sizeof keypath, "%s/master.key", f->data);
    size_t klen;
    char *key = read_all(keypath, &klen);
    key[64] = '\0';
    assert_false(file_contains(f->db, key));
    nano_free(key);
}

/* --- apps ----------------------------------------------------------------------------------- */

static void apps_create_get_list(void **state)
{
    fx *f = *state;
    json_t *app = call(f, "apps.create",
                       "{\"name\": \"api\", \"hostnames\": [\"API.Example.com.\", \"*.api.test\"],"
                       " \"path_prefix\": \"/v1\", \"node_compat\": true,"
                       " \"required_env\": [\"DB_URL\"],"
                       " \"limits\": {\"cpu_ms\": 100, \"drain_timeout\": \"10s\"}}");
    assert_string_equal(json_string_value(json_object_get(app, "name")), "api");
    json_t *hosts = json_object_get(app, "hostnames");
    assert_int_equal(json_array_size(hosts), 2);
    assert_string_equal(json_string_value(json_array_get(hosts, 0)), "api.example.com");
    assert_string_equal(json_string_value(json_array_get(hosts, 1)), "*.api.test");
    assert_string_equal(json_string_value(json_object_get(app, "path_prefix")), "/v1");
    assert_true(json_is_false(json_object_get(app, "default")));
    assert_true(json_is_true(json_object_get(app, "node_compat")));
    assert_string_equal(json_string_value(json_object_get(app, "state")), "active");
    assert_int_equal(json_integer_value(json_object_get(app, "active_version")), 0);
    json_t *lim = json_object_get(app, "limits");
    assert_int_equal(json_integer_value(json_object_get(lim, "cpu_ms")), 100);
    assert_string_equal(json_string_value(json_object_get(lim, "drain_timeout")), "10s");
    assert_int_equal(json_integer_value(json_object_get(lim, "memory_mb")), 128); /* default */
    assert_int_equal(json_object_size(lim), 9);
    assert_string_equal(json_string_value(json_array_get(json_object_get(app, "required_env"), 0)),
                        "DB_URL");
    const char *at = json_string_value(json_object_get(app, "created_at"));
    assert_int_equal(strlen(at), 24); /* 2024-05-01T12:00:00.123Z */
    assert_int_equal(at[23], 'Z');
    assert_null(json_object_get(app, "id"));
    json_decref(app);

    json_t *got = call(f, "apps.get", "{\"name\": \"api\"}");
    assert_true(json_is_null(json_object_get(got, "deployment")));
    assert_int_equal(json_array_size(json_object_get(got, "nodes")), 0);
    json_decref(got);

    create_app(f, "www", "www.test");
    json_t *list = call(f, "apps.list", NULL);
    json_t *apps = json_object_get(list, "apps");
    assert_int_equal(json_array_size(apps), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 0), "name")), "api");
    assert_string_equal(json_string_value(json_object_get(json_array_get(apps, 1), "name")), "www");
    json_decref(list);

    json_decref(call(f, "apps.create", "{\"name\": \"fallback\", \"default\": true}"));
    call_fails(f, "apps.create", "{\"name\": \"fb2\", \"default\": true}", 409, "default_taken",
               "default", "app fallback is already the default app");
    call_fails(f, "apps.get", "{\"name\": \"nope\"}", 404, "app_not_found", "name",
               "app nope does not exist");
}

static void apps_egress_create_update_and_log(void **state)
{
    fx *f = *state;
    /* a bad entry: 400 naming it, and nothing stored or logged */
    call_fails(f, "apps.create",
               "{\"name\": \"api\", \"hostnames\": [\"api.test\"], \"egress\": "
               "{\"allow\": [\"10.0.0.0/8\", \"a.com\", \"10.0.0.0/33\"]}}",
               400, "invalid_field", "egress",
               "egress.allow[2]: \"10.0.0.0/33\" is not an address, CIDR or hostname");
    call_fails(f, "apps.create",
               "{\"name\": \"api\", \"hostnames\": [\"api.test\"], \"egress\": [1]}",
               400, "invalid_field", "egress", "egress: must be an object");
    assert_int_equal(config_seq(f), 0);

    json_t *app = call(f, "apps.create",
                       "{\"name\": \"api\", \"hostnames\": [\"api.test\"], \"egress\": "
                       "{\"deny\": [\"*.internal:5432\"], \"allow\": [\"169.254.169.254\"]}}");
    char *text = json_dumps(json_object_get(app, "egress"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"allow\":[\"169.254.169.254\"],\"deny\":[\"*.internal:5432\"]}");
    free(text);
    json_decref(app);
    create_app(f, "web", "web.test"); /* none set: null */
    app = call(f, "apps.get", "{\"name\": \"web\"}");
    assert_true(json_is_null(json_object_get(app, "egress")));
    json_decref(app);

    /* an update that fails leaves the policy as it was; one without egress keeps it */
    int64_t seq = config_seq(f);
    call_fails(f, "apps.update", "{\"name\": \"api\", \"egress\": {\"deny\": [\"::1/129\"]}}",
               400, "invalid_field", "egress", "egress.deny[0]");
    assert_int_equal(config_seq(f), seq);
    app = call(f, "apps.update", "{\"name\": \"api\", \"limits\": {\"cpu_ms\": 70}}");
    assert_non_null(json_object_get(json_object_get(app, "egress"), "allow"));
    json_decref(app);

    /* the app.put on the config log carries it, as the wire op checks it */
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq, 10, &log), 0);
    json_t *put = json_object_get(json_array_get(log, 0), "payload");
    assert_non_null(json_object_get(json_object_get(put, "egress"), "deny"));
    json_decref(log);

    /* null removes it */
    app = call(f, "apps.update", "{\"name\": \"api\", \"egress\": null}");
    assert_true(json_is_null(json_object_get(app, "egress")));
    json_decref(app);
}

static void apps_duplicate_and_hostname_taken(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    call_fails(f, "apps.create", "{\"name\": \"api\", \"hostnames\": [\"other.test\"]}", 409,
               "app_exists", "name", "app api already exists");
    call_fails(f, "apps.create", "{\"name\": \"b\", \"hostnames\": [\"x.test\", \"API.test.\"]}",
               409, "hostname_taken", "hostnames[1]",
               "hostname api.test is already claimed by app api");
    /* The same hostname under another path prefix is another route. */
    json_decref(call(f, "apps.create",
                     "{\"name\": \"b\", \"hostnames\": [\"api.test\"], \"path_prefix\": \"/b\"}"));
    call_fails(f, "apps.create",
               "{\"name\": \"c\", \"hostnames\": [\"api.test\"], \"path_prefix\": \"/b\"}", 409,
               "hostname_taken", "hostnames[0]", "with path_prefix /b is already claimed by app b");
    /* An update is checked the same way, but an app never conflicts with itself. */
    call_fails(f, "apps.update", "{\"name\": \"b\", \"path_prefix\": null}", 409,
               "hostname_taken", "hostnames[0]", "claimed by app api");
    json_t *app = call(f, "apps.update",
                       "{\"name\": \"b\", \"hostnames\": [\"api.test\", \"b.test\"],"
                       " \"limits\": {\"memory_mb\": 256}}");
    assert_int_equal(json_array_size(json_object_get(app, "hostnames")), 2);
    assert_string_equal(json_string_value(json_object_get(app, "path_prefix")), "/b");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(app, "limits"), "memory_mb")),
                     256);
    json_decref(app);
    call_fails(f, "apps.update", "{\"name\": \"zzz\", \"node_compat\": true}", 404,
               "app_not_found", "name", NULL);
}

static void apps_remove_without_nodes_is_immediate(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    json_decref(call(f, "apps.deploy",
                     "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"1\"}}"));
    json_decref(call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K\", \"value\": \"v\"}"));
    int64_t seq = config_seq(f);
    json_t *r = call(f, "apps.remove", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "removed");
    json_decref(r);
    call_fails(f, "apps.get", "{\"name\": \"api\"}", 404, "app_not_found", "name", NULL);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq, 10, &log), 0);
    assert_int_equal(json_array_size(log), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")), "app.drain");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(log, 0), "payload"), "timeout_ms")),
                     30000);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 1), "op")),
                        "app.remove");
    json_decref(log);
    /* Its code went with it; the name and hostname are free again. */
    char *data = NULL;
    size_t len = 0;
    char sha[65];
    nano_sha256_hex("1", 1, sha);
    assert_int_equal(cp_store_blob_get(cp_service_store(f->svc), sha, &data, &len), NANO_ENOTFOUND);
    create_app(f, "api", "api.test");
    json_t *env = call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_array_size(json_object_get(env, "secrets")), 0);
    json_decref(env);
}

static void apps_remove_with_nodes_drains(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    sql(f, "INSERT INTO nodes (name, first_seen, last_seen, apps) VALUES ('edge-1', 'x', 'y',"
           " '{\"api\": {\"state\": \"active\", \"version\": 0}}'), ('edge-2', 'x', 'y', '{}')");
    json_t *got = call(f, "apps.get", "{\"name\": \"api\"}");
    json_t *nodes = json_object_get(got, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "node")), "edge-1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 0), "state")), "active");
    json_decref(got);
    json_t *list = call(f, "nodes.list", NULL);
    assert_int_equal(json_array_size(json_object_get(list, "nodes")), 2);
    json_decref(list);

    json_t *d = call(f, "apps.drain", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "active");
    assert_int_equal(json_array_size(json_object_get(d, "nodes")), 0);
    json_decref(d);

    json_t *r = call(f, "apps.remove", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "draining");
    json_decref(r);
    d = call(f, "apps.drain", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "draining");
    nodes = json_object_get(d, "nodes");
    assert_int_equal(json_array_size(nodes), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(nodes, 1), "state")),
                        "draining");
    assert_int_equal(json_integer_value(json_object_get(d, "timeout_ms")), 30000);
    json_decref(d);
    /* A draining app takes no more changes; removing it again is the same answer. */
    call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"\"}}",
               409, "app_draining", "name", "app api is being removed");
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": 1}}", 409, "app_draining",
               "name", NULL);
    int64_t seq = config_seq(f);
    r = call(f, "apps.remove", "{\"name\": \"api\"}");
    assert_string_equal(json_string_value(json_object_get(r, "state")), "draining");
    json_decref(r);
    assert_int_equal(config_seq(f), seq);
}

/* --- validation ----------------------------------------------------------------------------- */

static void validation_fields_are_named(void **state)
{
    fx *f = *state;
    call_fails(f, "apps.create", "{\"name\": \"Bad_Name\", \"hostnames\": [\"a.test\"]}", 400,
               "invalid_field", "name", "\"Bad_Name\" is not a valid app name");
    call_fails(f, "apps.create", "{\"hostnames\": [\"a.test\"]}", 400, "invalid_field", "name",
               "name is required");
    call_fails(f, "apps.create", "{\"name\": 5}", 400, "invalid_field", "name",
               "name must be a string, not a number");
    call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": [\"ok.test\", \"bad host\"]}",
               400, "invalid_field", "hostnames[1]", "\"bad host\" is not a valid hostname");
    call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": [\"x.test\", \"X.test\"]}", 400,
               "invalid_field", "hostnames[1]", "listed twice");
    call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": \"a.test\"}", 400,
               "invalid_field", "hostnames", "must be an array");
    call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": []}", 400, "invalid_field",
               "hostnames", "at least one hostname");
    call_fails(f, "apps.create",
               "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": {\"cpu_ms\": 0}}", 400,
               "invalid_field", "limits.cpu_ms", "limits.cpu_ms: 0 is out of range (1 .. 60000)");
    call_fails(f, "apps.create",
               "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": {\"wall_time\": \"x\"}}",
               400, "invalid_field", "limits.wall_time", "is not a duration");
    call_fails(f, "apps.create",
               "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": {\"cpus\": 1}}", 400,
               "invalid_field", "limits.cpus", "unknown key");
    call_fails(f, "apps.create",
               "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"limits\": [1]}", 400,
               "invalid_field", "limits", "must be an object");
    call_fails(f, "apps.create",
               "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"path_prefix\": \"/a/\"}", 400,
               "invalid_field", "path_prefix", "not a valid path prefix");
    call_fails(f, "apps.create",
               "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"required_env\": [\"OK\", \"1X\"]}",
               400, "invalid_field", "required_env[1]", "invalid env name");
    call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"default\": 1}",
               400, "invalid_field", "default", "true or false");
    call_fails(f, "apps.create", "{\"name\": \"a\", \"hostnames\": [\"a.test\"], \"hostname\": 1}",
               400, "bad_request", "hostname", "unknown field \"hostname\"");
    call_fails(f, "apps.nope", "{}", 400, "bad_request", "op", "unknown op \"apps.nope\"");
    call_fails(f, "version", "{\"x\": 1}", 400, "bad_request", "x", NULL);
    call_fails(f, "audit.list", "{\"limit\": 0}", 400, "invalid_field", "limit", NULL);
    /* Args that are not an object. */
    json_t *result = NULL;
    cp_error err = {0};
    json_t *arr = json_array();
    assert_int_equal(cp_service_call(f->svc, &ADMIN, "apps.list", arr, &result, &err), NANO_EINVAL);
    assert_string_equal(err.code, "bad_request");
    json_decref(arr);
    assert_int_equal(cp_service_call(f->svc, NULL, NULL, NULL, &result, &err), NANO_EINVAL);
    assert_null(result);
    /* None of these created anything or logged anything. */
    assert_int_equal(config_seq(f), 0);
    assert_int_equal(audit_count(f), 0);
}

static void validation_env_limits(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    char *big = nano_xmalloc(NANO_ENV_MAX_VALUE + 100);
    memset(big, 'v', NANO_ENV_MAX_VALUE + 1);
    big[NANO_ENV_MAX_VALUE + 1] = '\0';
    char *args = nano_xmalloc(NANO_ENV_MAX_VALUE + 200);
    sprintf(args, "{\"name\": \"api\", \"vars\": {\"OK\": 1, \"BIG\": \"%s\"}}", big);
    call_fails(f, "env.patch", args, 413, "too_large", "vars.BIG",
               "vars.BIG: value is 5121 bytes; the limit is 5120");
    sprintf(args, "{\"name\": \"api\", \"key\": \"S\", \"value\": \"%s\"}", big);
    call_fails(f, "secrets.put", args, 413, "too_large", "value", "the limit is 5120");
    /* Nesting beyond NANO_MSG_VAR_MAX_DEPTH (32) is refused; 32 levels are fine. */
    char deep[256] = "{\"name\": \"api\", \"vars\": {\"DEEP\": ";
    size_t at = strlen(deep);
    for (int i = 0; i < 33; i++)
        deep[at++] = '[';
    for (int i = 0; i < 33; i++)
        deep[at++] = ']';
    strcpy(deep + at, "}}");
    call_fails(f, "env.patch", deep, 400, "invalid_field", "vars.DEEP",
               "nested 33 levels deep; the limit is 32");
    memmove(deep + at - 33, deep + at - 32, strlen(deep + at - 32) + 1); /* one ']' less */
    memmove(deep + at - 66, deep + at - 65, strlen(deep + at - 65) + 1); /* one '[' less */
    json_decref(call(f, "env.patch", deep));
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"DEEP\": null}}"));
    big[NANO_ENV_MAX_VALUE] = '\0'; /* exactly the limit is fine */
    sprintf(args, "{\"name\": \"api\", \"vars\": {\"BIG\": \"%s\"}}", big);
    json_decref(call(f, "env.patch", args));
    nano_free(big);
    nano_free(args);
    /* The failed patch above set nothing, not even its valid OK entry. */
    json_t *env = call(f, "env.get", "{\"name\": \"api\"}");
    assert_null(json_object_get(json_object_get(env, "vars"), "OK"));
    json_decref(env);

    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"1BAD\": 1}}", 400,
               "invalid_field", "vars.1BAD", "invalid env name");
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": [1]}", 400, "invalid_field", "vars",
               NULL);
    call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"a-b\", \"value\": \"x\"}", 400,
               "invalid_field", "key", "invalid env name");
    call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"A\", \"value\": 5}", 400,
               "invalid_field", "value", "must be a string");
    call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"BIG\", \"value\": \"x\"}", 409,
               "name_conflict", "key", "BIG is a var of app api");
    json_decref(call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"S1\", \"value\": \"x\"}"));
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"S1\": \"x\"}}", 409,
               "name_conflict", "vars.S1", "S1 is a secret of app api");
    call_fails(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"NOPE\"}", 404,
               "secret_not_found", "key", "app api has no secret NOPE");

    /* 128 entries (vars + secrets) fit; the 129th is refused, as a var or as a secret. */
    json_t *vars = json_object();
    for (int i = 0; i < NANO_ENV_MAX_ENTRIES - 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "V%03d", i);
        json_object_set_new(vars, name, json_integer(i));
    }
    json_t *a = json_pack("{s:s, s:o}", "name", "api", "vars", vars);
    char *text = json_dumps(a, 0);
    json_decref(call(f, "env.patch", text));
    free(text);
    json_decref(a);
    env = call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_object_size(json_object_get(env, "vars")) +
                         json_array_size(json_object_get(env, "secrets")),
                     NANO_ENV_MAX_ENTRIES);
    json_decref(env);
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"ONE_MORE\": 1}}", 413, "too_large",
               "vars.ONE_MORE", "would have 129 vars and secrets; the limit is 128");
    call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"ONE_MORE\", \"value\": \"x\"}", 413,
               "too_large", "key", "more than 128");
    /* Replacing one, or replacing and deleting in one patch, is fine at the limit. */
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"V000\": \"new\"}}"));
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"NEW\": 1, \"V001\": null}}"));
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"N2\": 1, \"N3\": 1, \"V002\": null}}",
               413, "too_large", "vars.N2", "would have 129");
    json_decref(call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"S1\", \"value\": \"y\"}"));
}

/* --- deployments ---------------------------------------------------------------------------- */

static void deploy_versions_hashes_and_rollback(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    static const char src[] = "export default { fetch() { return new Response('v1') } }";
    char args[512];
    snprintf(args, sizeof args, "{\"name\": \"api\", \"main\": \"index.js\", \"modules\": "
                                "{\"index.js\": \"%s\"}}", src);
    json_t *d1 = call(f, "apps.deploy", args);
    char sha[65];
    nano_sha256_hex(src, strlen(src), sha);
    assert_int_equal(json_integer_value(json_object_get(d1, "version")), 1);
    assert_string_equal(json_string_value(json_object_get(d1, "sha256")), sha);
    assert_string_equal(json_string_value(json_object_get(d1, "main")), "index.js");
    assert_true(json_is_true(json_object_get(d1, "active")));
    json_t *m = json_array_get(json_object_get(d1, "modules"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "index.js");
    assert_int_equal(json_integer_value(json_object_get(m, "size")), strlen(src));
    assert_string_equal(json_string_value(json_object_get(m, "sha256")), sha);
    json_decref(d1);
    /* The bytes are stored by hash. */
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(cp_store_blob_get(cp_service_store(f->svc), sha, &data, &len), 0);
    assert_int_equal(len, strlen(src));
    assert_memory_equal(data, src, len);
    nano_free(data);

    json_t *d2 = call(f, "apps.deploy",
                      "{\"name\": \"api\", \"main\": \"main.js\", \"modules\": {\"main.js\": "
                      "\"import x from './lib/x.js'\", \"lib/x.js\": \"export default 1\"}}");
    assert_int_equal(json_integer_value(json_object_get(d2, "version")), 2);
    /* Multi-module: sha256 over "NAME\0SHA\n" per module in name order. */
    char sa[65], sb[65], manifest[300], want[65];
    nano_sha256_hex("export default 1", 16, sa);
    nano_sha256_hex("import x from './lib/x.js'", 26, sb);
    int n = snprintf(manifest, sizeof manifest, "lib/x.js%c%s\nmain.js%c%s\n", 0, sa, 0, sb);
    nano_sha256_hex(manifest, (size_t)n, want);
    assert_string_equal(json_string_value(json_object_get(d2, "sha256")), want);
    assert_int_equal(json_array_size(json_object_get(d2, "modules")), 2);
    json_decref(d2);

    json_t *list = call(f, "deployments.list", "{\"name\": \"api\"}");
    json_t *deps = json_object_get(list, "deployments");
    assert_int_equal(json_array_size(deps), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(deps, 0), "version")), 2);
    assert_true(json_is_true(json_object_get(json_array_get(deps, 0), "active")));
    assert_true(json_is_false(json_object_get(json_array_get(deps, 1), "active")));
    json_decref(list);

    int64_t seq = config_seq(f);
    json_t *rb = call(f, "apps.rollback", "{\"name\": \"api\", \"version\": 1}");
    assert_int_equal(json_integer_value(json_object_get(rb, "version")), 1);
    assert_true(json_is_true(json_object_get(rb, "active")));
    json_decref(rb);
    assert_int_equal(config_seq(f), seq + 2); /* code.put + app.put */
    json_t *app = call(f, "apps.get", "{\"name\": \"api\"}");
    assert_int_equal(json_integer_value(json_object_get(app, "active_version")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(app, "deployment"), "version")),
                     1);
    json_decref(app);
    /* Rolling back to the active version changes nothing. */
    json_decref(call(f, "apps.rollback", "{\"name\": \"api\", \"version\": 1}"));
    assert_int_equal(config_seq(f), seq + 2);
    call_fails(f, "apps.rollback", "{\"name\": \"api\", \"version\": 7}", 404, "version_not_found",
               "version", "app api has no version 7");
    call_fails(f, "apps.rollback", "{\"name\": \"api\", \"version\": \"1\"}", 400, "invalid_field",
               "version", NULL);
    /* A new deploy after a rollback still counts up. */
    json_t *d3 = call(f, "apps.deploy",
                      "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"3\"}}");
    assert_int_equal(json_integer_value(json_object_get(d3, "version")), 3);
    json_decref(d3);
}

static void deploy_bad_bundles(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"b.js\": \"\"}}",
               400, "invalid_field", "main", "main \"a.js\" is not one of the modules");
    call_fails(f, "apps.deploy",
               "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"\", \"../x.js\": \"\"}}",
               400, "invalid_field", "modules[\"../x.js\"]", "not a valid module name");
    call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"/a.js\", \"modules\": {\"a.js\": \"\"}}",
               400, "invalid_field", "main", NULL);
    call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {}}", 400,
               "invalid_field", "modules", NULL);
    call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": 1}}",
               400, "invalid_field", "modules[\"a.js\"]", "must be a string");
    call_fails(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\"}", 400, "invalid_field",
               "modules", "modules is required");
    call_fails(f, "apps.deploy", "{\"name\": \"nope\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"\"}}",
               404, "app_not_found", "name", NULL);
    /* Larger than 32 MiB in all. */
    size_t big = NANO_CODE_MAX_BYTES / 2 + 1;
    char *src = nano_xmalloc(big + 1);
    memset(src, 'x', big);
    src[big] = '\0';
    json_t *a = json_pack("{s:s, s:s, s:{s:s, s:s}}", "name", "api", "main", "a.js", "modules",
                          "a.js", src, "b.js", src);
    nano_free(src);
    json_t *result = NULL;
    cp_error err = {0};
    assert_int_equal(cp_service_call(f->svc, &ADMIN, "apps.deploy", a, &result, &err), NANO_ETOOBIG);
    assert_string_equal(err.code, "too_large");
    assert_int_equal(err.status, 413);
    json_decref(a);
    assert_int_equal(config_seq(f), 1); /* only the create */
}

static void deploy_required_env_is_enforced(void **state)
{
    fx *f = *state;
    json_decref(call(f, "apps.create", "{\"name\": \"api\", \"hostnames\": [\"api.test\"],"
                                       " \"required_env\": [\"DB_URL\", \"TOKEN\"]}"));
    static const char deploy[] =
        "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"x\"}}";
    call_fails(f, "apps.deploy", deploy, 409, "required_env_missing", "required_env",
               "app api: required env missing: DB_URL, TOKEN");
    /* Before the first deploy, env changes are free (the deploy checks). */
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"DB_URL\": \"pg://\"}}"));
    call_fails(f, "apps.deploy", deploy, 409, "required_env_missing", "required_env",
               "required env missing: TOKEN");
    json_decref(call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"t\"}"));
    json_decref(call(f, "apps.deploy", deploy));
    /* Deployed: a change that would leave one missing is refused, and nothing of it stays. */
    int64_t seq = config_seq(f);
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"X\": 1, \"DB_URL\": null}}", 409,
               "required_env_missing", "required_env", "required env missing: DB_URL");
    call_fails(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"TOKEN\"}", 409,
               "required_env_missing", "required_env", "required env missing: TOKEN");
    call_fails(f, "apps.update", "{\"name\": \"api\", \"required_env\": [\"DB_URL\", \"MORE\"]}",
               409, "required_env_missing", "required_env", "required env missing: MORE");
    assert_int_equal(config_seq(f), seq);
    json_t *env = call(f, "env.get", "{\"name\": \"api\"}");
    assert_null(json_object_get(json_object_get(env, "vars"), "X"));
    assert_non_null(json_object_get(json_object_get(env, "vars"), "DB_URL"));
    json_decref(env);
    /* Dropping the requirement first makes the deletion fine. */
    json_decref(call(f, "apps.update", "{\"name\": \"api\", \"required_env\": [\"TOKEN\"]}"));
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"DB_URL\": null}}"));
}

/* --- env ------------------------------------------------------------------------------------ */

static void env_patch_get_and_secrets(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    json_t *env = call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"HOST\": \"h\","
                                       " \"FLAGS\": {\"beta\": true}, \"N\": 3}}");
    json_t *vars = json_object_get(env, "vars");
    assert_string_equal(json_string_value(json_object_get(vars, "HOST")), "h");
    assert_true(json_is_true(json_object_get(json_object_get(vars, "FLAGS"), "beta")));
    assert_int_equal(json_integer_value(json_object_get(vars, "N")), 3);
    assert_int_equal(json_array_size(json_object_get(env, "secrets")), 0);
    json_decref(env);
    json_t *s = call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"t\"}");
    assert_string_equal(json_string_value(json_object_get(s, "name")), "TOKEN");
    assert_true(json_is_string(json_object_get(s, "updated_at")));
    assert_int_equal(json_object_size(s), 2);
    json_decref(s);
    int64_t seq = config_seq(f);
    env = call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"N\": null, \"GONE\": null}}");
    assert_null(json_object_get(json_object_get(env, "vars"), "N"));
    assert_string_equal(json_string_value(json_array_get(json_object_get(env, "secrets"), 0)), "TOKEN");
    json_decref(env);
    assert_int_equal(config_seq(f), seq + 1); /* N deleted; GONE was absent: nothing */
    json_t *list = call(f, "secrets.list", "{\"name\": \"api\"}");
    json_t *one = json_array_get(json_object_get(list, "secrets"), 0);
    assert_string_equal(json_string_value(json_object_get(one, "name")), "TOKEN");
    assert_true(json_is_string(json_object_get(one, "updated_at")));
    assert_null(json_object_get(one, "value"));
    json_decref(list);
    json_t *del = call(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"TOKEN\"}");
    assert_int_equal(json_object_size(del), 0);
    json_decref(del);
    list = call(f, "secrets.list", "{\"name\": \"api\"}");
    assert_int_equal(json_array_size(json_object_get(list, "secrets")), 0);
    json_decref(list);
    call_fails(f, "env.get", "{\"name\": \"nope\"}", 404, "app_not_found", "name", NULL);
}

static void env_replace_makes_vars_exactly_the_given_ones(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"KEEP\": \"k\","
                                     " \"GONE\": 1, \"CHANGED\": \"old\"}}"));
    json_decref(call(f, "secrets.put", "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"t\"}"));
    int64_t seq = config_seq(f);
    json_t *env = call(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"KEEP\": \"k\","
                                         " \"CHANGED\": \"new\", \"ADDED\": [1]}}");
    json_t *vars = json_object_get(env, "vars");
    assert_int_equal(json_object_size(vars), 3);
    assert_null(json_object_get(vars, "GONE"));
    assert_string_equal(json_string_value(json_object_get(vars, "CHANGED")), "new");
    assert_string_equal(json_string_value(json_array_get(json_object_get(env, "secrets"), 0)), "TOKEN");
    json_decref(env);
    /* GONE deleted, CHANGED and ADDED put; KEEP unchanged: no entry. Secrets untouched. */
    assert_int_equal(config_seq(f), seq + 3);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), seq, 10, &log), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")), "env.del");
    json_decref(log);

    /* With secrets: they become exactly those too; a name moves from secret to var. */
    env = call(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"TOKEN\": \"plain\"},"
                                 " \"secrets\": {\"KEY\": \"s\"}}");
    assert_int_equal(json_object_size(json_object_get(env, "vars")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(env, "vars"), "TOKEN")),
                        "plain");
    assert_int_equal(json_array_size(json_object_get(env, "secrets")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(env, "secrets"), 0)), "KEY");
    json_decref(env);

    /* Refused whole, nothing changed: */
    seq = config_seq(f);
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"KEY\": 1}}", 409,
               "name_conflict", "vars.KEY", "is a secret"); /* a secret, secrets not given */
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"A\": null}}", 400,
               "invalid_field", "vars.A", "leave it out");
    call_fails(f, "env.replace",
               "{\"name\": \"api\", \"vars\": {\"A\": 1}, \"secrets\": {\"A\": \"x\"}}", 400,
               "name_conflict", "vars.A", NULL);
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"secrets\": {\"S\": 5}}",
               400, "invalid_field", "secrets.S", NULL);
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {\"1X\": 1}}", 400,
               "invalid_field", "vars.1X", NULL);
    call_fails(f, "env.replace", "{\"name\": \"api\"}", 400, "invalid_field", "vars", NULL);
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"extra\": 1}", 400,
               "bad_request", "extra", NULL);
    nano_buf big = NANO_BUF_INIT;
    nano_buf_append_str(&big, "{\"name\": \"api\", \"vars\": {");
    for (int i = 0; i < 129; i++)
        nano_buf_appendf(&big, "%s\"V%03d\": %d", i ? ", " : "", i, i);
    nano_buf_append_str(&big, "}}");
    call_fails(f, "env.replace", nano_buf_cstr(&big), 413, "too_large", "vars", "130"); /* + KEY */
    nano_buf_fini(&big);
    assert_int_equal(config_seq(f), seq);

    /* A deployed app's required names must stay. */
    json_decref(call(f, "apps.update", "{\"name\": \"api\", \"required_env\": [\"KEY\"]}"));
    json_decref(call(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", "
                                       "\"modules\": {\"a.js\": \"export default {}\"}}"));
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"secrets\": {}}", 409,
               "required_env_missing", "required_env", "KEY");
    json_decref(call(f, "env.replace", "{\"name\": \"api\", \"vars\": {}}")); /* KEY kept */
}

/* Runs op with args (taken); must fail 400 invalid_field naming field. */
static void call_fails_args(fx *f, const char *op, json_t *args, const char *field,
                            const char *needle)
{
    json_t *result = NULL;
    cp_error err = {0};
    int64_t seq = config_seq(f);
    int rc = cp_service_call(f->svc, &ADMIN, op, args, &result, &err);
    json_decref(args);
    if (rc == 0) {
        json_decref(result);
        fail_msg("%s succeeded; expected invalid_field %s", op, field);
    }
    if (err.status != 400 || strcmp(err.code, "invalid_field") != 0 || strcmp(err.field, field) != 0)
        fail_msg("%s: got %d %s field '%s' (%s); expected 400 invalid_field '%s'", op, err.status,
                 err.code, err.field, err.message, field);
    if (needle != NULL && strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_int_equal(config_seq(f), seq); /* nothing stored, nothing to distribute */
}

static void strings_with_a_nul_or_bad_utf8_are_refused_at_every_op(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    /* A secret value with a NUL: before, accepted, and every snapshot failed after it. */
    call_fails_args(f, "secrets.put",
                    json_pack("{s:s, s:s, s:s#}", "name", "api", "key", "K", "value", "abcd\0efgh",
                              (int)9),
                    "value", "NUL");
    /* A hostname cut at a NUL would have been stored as "a.test". */
    call_fails_args(f, "apps.create",
                    json_pack("{s:s, s:[s#]}", "name", "evil", "hostnames", "a.test\0.evil", (int)11),
                    "hostnames[0]", "NUL");
    /* Deep inside a JSON var, and as a key. */
    json_t *vars = json_object();
    json_object_set_new(vars, "FLAGS", json_pack("{s:[s#]}", "list", "x\0y", (int)3));
    call_fails_args(f, "env.patch", json_pack("{s:s, s:o}", "name", "api", "vars", vars),
                    "vars.FLAGS.list[0]", "NUL");
    vars = json_object();
    json_object_setn_new_nocheck(vars, "A\0B", 3, json_string("v"));
    call_fails_args(f, "env.replace", json_pack("{s:s, s:o}", "name", "api", "vars", vars),
                    "vars.(key)", NULL);
    /* Not UTF-8 (as the binary admin API could send it). */
    call_fails_args(f, "env.patch",
                    json_pack("{s:s, s:{s:o}}", "name", "api", "vars", "V",
                              json_stringn_nocheck("\xff\xfe", 2)),
                    "vars.V", "UTF-8");
    /* An empty secret, which nanoctl already refused. */
    call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K\", \"value\": \"\"}", 400,
               "invalid_field", "value", "empty");
    call_fails(f, "env.replace", "{\"name\": \"api\", \"vars\": {}, \"secrets\": {\"K\": \"\"}}",
               400, "invalid_field", "secrets.K", "non-empty");
    /* A NUL inside a module's source is legal JS and is not refused here. */
    json_t *deploy = json_pack("{s:s, s:s, s:{s:s#}}", "name", "api", "main", "a.js", "modules",
                               "a.js", "export default {}; // \0", (int)23);
    json_t *result = NULL;
    cp_error err = {0};
    int rc = cp_service_call(f->svc, &ADMIN, "apps.deploy", deploy, &result, &err);
    json_decref(deploy);
    if (rc != 0)
        assert_string_not_equal(err.field, "modules.a.js");
    json_decref(result);
}

/* --- the config log and the audit log ------------------------------------------------------- */

static void logs_seq_counts_changes_not_reads(void **state)
{
    fx *f = *state;
    assert_int_equal(config_seq(f), 0);
    create_app(f, "api", "api.test");
    assert_int_equal(config_seq(f), 1);
    json_decref(call(f, "apps.list", NULL));
    json_decref(call(f, "env.get", "{\"name\": \"api\"}"));
    assert_int_equal(config_seq(f), 1);
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": 1, \"B\": \"2\"}}"));
    assert_int_equal(config_seq(f), 3);
    json_decref(call(f, "apps.deploy", "{\"name\": \"api\", \"main\": \"a.js\", \"modules\": {\"a.js\": \"1\"}}"));
    assert_int_equal(config_seq(f), 5);
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), 0, 100, &log), 0);
    const char *ops[] = {"app.put", "env.put", "env.put", "code.put", "app.put"};
    for (size_t i = 0; i < 5; i++) {
        json_t *e = json_array_get(log, i);
        assert_int_equal(json_integer_value(json_object_get(e, "seq")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(e, "op")), ops[i]);
        assert_string_equal(json_string_value(json_object_get(e, "app")), "api");
    }
    json_t *put = json_object_get(json_array_get(log, 4), "payload");
    assert_int_equal(json_integer_value(json_object_get(put, "version")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(put, "hostnames"), 0)),
                        "api.test");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(put, "limits"), "cpu_ms")), 50);
    json_t *code = json_object_get(json_array_get(log, 3), "payload");
    assert_string_equal(json_string_value(json_object_get(code, "main")), "a.js");
    assert_null(json_object_get(code, "source")); /* bytes stay in blobs, fetched by hash */
    json_t *ev = json_object_get(json_array_get(log, 2), "payload");
    assert_string_equal(json_string_value(json_object_get(ev, "name")), "B");
    assert_string_equal(json_string_value(json_object_get(ev, "value")), "2");
    json_decref(log);
}

static void logs_failing_change_appends_nothing(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    size_t audits = audit_count(f);
    /* A fault after the change itself is written: the config-log append fails. */
    sql(f, "CREATE TRIGGER fail_log BEFORE INSERT ON config_log"
           " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    call_fails(f, "apps.create", "{\"name\": \"www\", \"hostnames\": [\"www.test\"]}", 500,
               "internal", "", "database error while appending to the config log");
    call_fails(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"A\": 1}}", 500, "internal", "",
               NULL);
    sql(f, "DROP TRIGGER fail_log");
    call_fails(f, "apps.get", "{\"name\": \"www\"}", 404, "app_not_found", "name", NULL);
    json_t *env = call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_object_size(json_object_get(env, "vars")), 0);
    json_decref(env);
    assert_int_equal(config_seq(f), 1);
    assert_int_equal(audit_count(f), audits);
    /* The audit append failing undoes the change and its delta too. */
    sql(f, "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log"
           " BEGIN SELECT RAISE(ABORT, 'injected'); END");
    call_fails(f, "secrets.put", "{\"name\": \"api\", \"key\": \"K\", \"value\": \"v\"}", 500,
               "internal", "", "audit log");
    sql(f, "DROP TRIGGER fail_audit");
    assert_int_equal(config_seq(f), 1);
    json_t *list = call(f, "secrets.list", "{\"name\": \"api\"}");
    assert_int_equal(json_array_size(json_object_get(list, "secrets")), 0);
    json_decref(list);
    /* And the service works on afterwards. */
    create_app(f, "www", "www.test");
    assert_int_equal(config_seq(f), 2);
}

static void logs_audit_names_never_values(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"HOST\": \"VAR-VALUE-81\"}}"));
    json_decref(call(f, "secrets.put",
                     "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"SECRET-VALUE-82\"}"));
    json_decref(call(f, "env.patch", "{\"name\": \"api\", \"vars\": {\"HOST\": null}}"));
    json_decref(call(f, "secrets.delete", "{\"name\": \"api\", \"key\": \"TOKEN\"}"));
    json_t *a = call(f, "audit.list", NULL);
    json_t *entries = json_object_get(a, "entries");
    assert_int_equal(json_array_size(entries), 5);
    json_t *newest = json_array_get(entries, 0);
    assert_string_equal(json_string_value(json_object_get(newest, "op")), "secrets.delete");
    assert_string_equal(json_string_value(json_object_get(newest, "actor")), "admin");
    assert_string_equal(json_string_value(json_object_get(newest, "via")), "test");
    assert_string_equal(json_string_value(json_object_get(newest, "app")), "api");
    json_t *put = json_array_get(entries, 3);
    assert_string_equal(json_string_value(json_object_get(put, "op")), "env.patch");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(put, "detail"), "set"), 0)),
                        "HOST");
    char *dump = json_dumps(a, 0);
    assert_non_null(strstr(dump, "TOKEN"));
    assert_null(strstr(dump, "VAR-VALUE-81"));
    assert_null(strstr(dump, "SECRET-VALUE-82"));
    free(dump);
    /* Paging: before_id and limit. */
    int64_t second = json_integer_value(json_object_get(json_array_get(entries, 1), "id"));
    json_decref(a);
    char args[64];
    snprintf(args, sizeof args, "{\"before_id\": %lld, \"limit\": 2}", (long long)second);
    a = call(f, "audit.list", args);
    entries = json_object_get(a, "entries");
    assert_int_equal(json_array_size(entries), 2);
    assert_true(json_integer_value(json_object_get(json_array_get(entries, 0), "id")) < second);
    json_decref(a);
}

static void logs_secret_delta_is_sealed(void **state)
{
    fx *f = *state;
    create_app(f, "api", "api.test");
    json_decref(call(f, "secrets.put",
                     "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"in-the-log-93\"}"));
    json_t *log = NULL;
    assert_int_equal(cp_store_log_list(cp_service_store(f->svc), 1, 10, &log), 0);
    json_t *p = json_object_get(json_array_get(log, 0), "payload");
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "op")), "secret.put");
    char *dump = json_dumps(p, 0);
    assert_null(strstr(dump, "in-the-log-93"));
    free(dump);
    /* It opens with the master key, bound to the app and name, like the stored one. */
    char keypath[200];
    snprintf(keypath, sizeof keypath, "%s/master.key", f->data);
    size_t klen;
    char *hex = read_all(keypath, &klen);
    hex[64] = '\0';
    cp_master_key k;
    key_of(hex, &k);
    nano_free(hex);
    cp_sealed s = {0};
    unsigned char buf[256];
    int n = EVP_DecodeBlock(buf, (const unsigned char *)json_string_value(json_object_get(p, "nonce")),
                            (int)json_string_length(json_object_get(p, "nonce")));
    assert_true(n >= CP_NONCE_BYTES);
    memcpy(s.nonce, buf, CP_NONCE_BYTES);
    n = EVP_DecodeBlock(buf, (const unsigned char *)json_string_value(json_object_get(p, "tag")),
                        (int)json_string_length(json_object_get(p, "tag")));
    memcpy(s.tag, buf, CP_TAG_BYTES);
    const char *ct = json_string_value(json_object_get(p, "ciphertext"));
    n = EVP_DecodeBlock(buf, (const unsigned char *)ct, (int)strlen(ct));
    s.len = strlen("in-the-log-93"); /* base64 decoding pads to whole blocks */
    s.ciphertext = buf;
    snprintf(s.key_id, sizeof s.key_id, "%s", json_string_value(json_object_get(p, "key_id")));
    assert_string_equal(s.key_id, k.id);
    char *plain = NULL;
    size_t len = 0;
    assert_int_equal(cp_secret_open(&k, "api", "TOKEN", &s, &plain, &len), 0);
    assert_string_equal(plain, "in-the-log-93");
    nano_free(plain);
    json_decref(log);
    /* The stored row is the same sealed value. */
    sqlite3 *db = NULL;
    sqlite3_open(f->db, &db);
    sqlite3_stmt *q = NULL;
    sqlite3_prepare_v2(db, "SELECT nonce FROM secrets", -1, &q, NULL);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_memory_equal(sqlite3_column_blob(q, 0), s.nonce, CP_NONCE_BYTES);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* --- tokens --------------------------------------------------------------------------------- */

static void tokens_admin_token_file_and_check(void **state)
{
    fx *f = *state;
    char path[200];
    snprintf(path, sizeof path, "%s/admin.token", f->data);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    size_t len;
    char *token = read_all(path, &len);
    assert_int_equal(len, 65);
    token[64] = '\0';
    const char *who = NULL;
    assert_true(cp_service_check_token(f->svc, token, &who));
    assert_string_equal(who, "admin");
    token[10] ^= 1;
    assert_false(cp_service_check_token(f->svc, token, NULL));
    token[10] ^= 1;
    assert_false(cp_service_check_token(f->svc, "", NULL));
    assert_false(cp_service_check_token(f->svc, NULL, NULL));
    char longer[80];
    snprintf(longer, sizeof longer, "%sx", token);
    assert_false(cp_service_check_token(f->svc, longer, NULL));

    /* Reopened, the same file still works; the token itself is nowhere in the database. */
    cp_service_free(f->svc);
    open_svc(f);
    assert_true(cp_service_check_token(f->svc, token, NULL));
    cp_service_free(f->svc);
    f->svc = NULL;
    assert_false(file_contains(f->db, token));
    char hash[65];
    nano_sha256_hex(token, 64, hash);
    assert_true(file_contains(f->db, hash));

    /* --token-file: an operator's own token replaces the admin hash. */
    char own[200];
    snprintf(own, sizeof own, "%s/own.token", f->root);
    write_file(own, "operator-chosen-token-0123456789abcdef\n", 0600);
    cp_service_options o = {.data_dir = f->data, .token_file = own};
    cp_error err = {0};
    assert_int_equal(cp_service_open(&o, &f->svc, &err), 0);
    assert_true(cp_service_check_token(f->svc, "operator-chosen-token-0123456789abcdef", &who));
    assert_false(cp_service_check_token(f->svc, token, NULL));
    cp_service_free(f->svc);
    f->svc = NULL;
    write_file(own, "short\n", 0600);
    assert_int_not_equal(cp_service_open(&o, &f->svc, &err), 0);
    assert_non_null(strstr(err.message, "must hold one token of 32 to 512 printable"));
    nano_free(token);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    static const struct CMUnitTest migrations_tests[] = {
        T(migrations_first_open_applies_and_records),
        T(migrations_newer_database_is_refused),
        T(migrations_failing_one_applies_nothing_of_itself),
        T(migrations_schema_has_constraints),
    };
    static const struct CMUnitTest secrets_tests[] = {
        T(secrets_round_trip_and_failures),
        T(secrets_master_key_sources),
        T(secrets_plaintext_never_in_database_file),
    };
    static const struct CMUnitTest apps_tests[] = {
        T(apps_create_get_list),
        T(apps_egress_create_update_and_log),
        T(apps_duplicate_and_hostname_taken),
        T(apps_remove_without_nodes_is_immediate),
        T(apps_remove_with_nodes_drains),
    };
    static const struct CMUnitTest validation_tests[] = {
        T(validation_fields_are_named),
        T(validation_env_limits),
    };
    static const struct CMUnitTest deploy_tests[] = {
        T(deploy_versions_hashes_and_rollback),
        T(deploy_bad_bundles),
        T(deploy_required_env_is_enforced),
    };
    static const struct CMUnitTest env_tests[] = {
        T(env_patch_get_and_secrets),
        T(env_replace_makes_vars_exactly_the_given_ones),
        T(strings_with_a_nul_or_bad_utf8_are_refused_at_every_op),
    };
    static const struct CMUnitTest logs_tests[] = {
        T(logs_seq_counts_changes_not_reads),
        T(logs_failing_change_appends_nothing),
        T(logs_audit_names_never_values),
        T(logs_secret_delta_is_sealed),
    };
    static const struct CMUnitTest tokens_tests[] = {
        T(tokens_admin_token_file_and_check),
    };
#undef T
    const unit_group groups[] = {
        UNIT_GROUP("migrations", migrations_tests), UNIT_GROUP("secrets", secrets_tests),
        UNIT_GROUP("apps", apps_tests),             UNIT_GROUP("validation", validation_tests),
        UNIT_GROUP("deploy", deploy_tests),         UNIT_GROUP("env", env_tests),
        UNIT_GROUP("logs", logs_tests),             UNIT_GROUP("tokens", tokens_tests),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
