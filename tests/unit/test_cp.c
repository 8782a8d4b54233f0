/* Unit tests for nanocp's core: migrations, the store, secrets at rest, every service op with
 * its errors, the config log and the audit log. Each test gets a fresh data dir under a
 * mkdtemp directory (cp_fixture.c); a second SQLite connection plays the operator (or a
 * fault) where a test needs to reach under the service.
 *
 * This file has the runner (main) and the migrations, secrets and tokens groups;
 * test_cp_apps.c has apps, validation and deploy, test_cp_env.c env and logs. */
#define _GNU_SOURCE /* memmem */
#include "cp_fixture.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "etcd_fixture.h"

#include "alloc.h"
#include "sha256.h"
#include "store.h"

/* --- migrations ----------------------------------------------------------------------------- */

static void migrations_first_open_applies_and_records(void **state)
{
    fx *f = *state;
    fx_sqlite_only("the SQL migrations and the database file");
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
    fx_open_svc(f);
    assert_int_equal(cp_store_migrations(cp_service_store(f->svc), &list), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "applied_at")),
                        at);
    json_decref(list);
    nano_free(at);
    json_t *v = fx_call(f, "version", NULL);
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
    fx_sqlite_only("edits schema_migrations (test_cp_estore.c has the etcd one)");
    fx *f = *state;
    cp_service_free(f->svc);
    f->svc = NULL;
    /* One past the newest this nanocp embeds (migrations/ numbers them 1, 2, ...). */
    size_t future = cp_migrations_count + 1;
    char text[160];
    snprintf(text, sizeof text,
             "INSERT INTO schema_migrations VALUES (%zu, 'future', '2030-01-01T00:00:00.000Z')",
             future);
    fx_sql(f, text);
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
    fx_sqlite_only("SQL migrations");
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
    fx_sqlite_only("the SQL schema");
    fx *f = *state;
    /* The database itself refuses what the service checks first (belt and braces). */
    fx_create_app(f, "a", "a.test");
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

static bool file_contains(const char *path, const char *needle)
{
    size_t len;
    char *data = fx_read_all(path, &len);
    bool found = data != NULL && memmem(data, len, needle, strlen(needle)) != NULL;
    nano_free(data);
    return found;
}

#define KEY_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY_B "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static void secrets_round_trip_and_failures(void **state)
{
    (void)state;
    cp_master_key a, b;
    fx_key_of(KEY_A, &a);
    fx_key_of(KEY_B, &b);
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
    fx_sqlite_only("reads the database file (test_cp_estore.c reads etcd's values)");
    fx *f = *state;
    static const char secret[] = "PLAINTEXT-SECRET-7f3a9c";
    static const char secret2[] = "PLAINTEXT-SECRET-second";
    static const char var[] = "PLAIN-VAR-VALUE-4411";
    fx_create_app(f, "api", "api.test");
    char args[256];
    snprintf(args, sizeof args, "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"%s\"}",
             secret);
    json_decref(fx_call(f, "secrets.put", args));
    snprintf(args, sizeof args, "{\"name\": \"api\", \"key\": \"TOKEN\", \"value\": \"%s\"}",
             secret2);
    json_decref(fx_call(f, "secrets.put", args));
    snprintf(args, sizeof args, "{\"name\": \"api\", \"vars\": {\"HOST\": \"%s\"}}", var);
    json_decref(fx_call(f, "env.patch", args));
    json_t *env = fx_call(f, "env.get", "{\"name\": \"api\"}");
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
    char *key = fx_read_all(keypath, &klen);
    key[64] = '\0';
    assert_false(file_contains(f->db, key));
    nano_free(key);
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
    char *token = fx_read_all(path, &len);
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
    fx_open_svc(f);
    assert_true(cp_service_check_token(f->svc, token, NULL));
    cp_service_free(f->svc);
    f->svc = NULL;
    if (!fx_is_etcd()) {
        assert_false(file_contains(f->db, token));
        char hash[65];
        nano_sha256_hex(token, 64, hash);
        assert_true(file_contains(f->db, hash));
    }

    /* --token-file: an operator's own token replaces the admin hash. */
    char own[200];
    snprintf(own, sizeof own, "%s/own.token", f->root);
    write_file(own, "operator-chosen-token-0123456789abcdef\n", 0600);
    cp_service_options o = {
        .data_dir = f->data, .token_file = own, .store_url = f->store_url[0] ? f->store_url : NULL};
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
    static const struct CMUnitTest migrations_tests[] = {
        FX_TEST(migrations_first_open_applies_and_records),
        FX_TEST(migrations_newer_database_is_refused),
        FX_TEST(migrations_failing_one_applies_nothing_of_itself),
        FX_TEST(migrations_schema_has_constraints),
    };
    static const struct CMUnitTest secrets_tests[] = {
        FX_TEST(secrets_round_trip_and_failures),
        FX_TEST(secrets_master_key_sources),
        FX_TEST(secrets_plaintext_never_in_database_file),
    };
    static const struct CMUnitTest tokens_tests[] = {
        FX_TEST(tokens_admin_token_file_and_check),
    };
    const unit_group groups[] = {
        UNIT_GROUP("migrations", migrations_tests),
        UNIT_GROUP("secrets", secrets_tests),
        unit_cp_apps,
        unit_cp_validation,
        unit_cp_deploy,
        unit_cp_env,
        unit_cp_logs,
        UNIT_GROUP("tokens", tokens_tests),
        unit_cp_estore,
        unit_cp_migrate,
    };
    /* unit_cp_etcd: without an etcd binary the whole runner is skipped (ctest: exit 77) */
    if (fx_is_etcd() && etcd_fx_missing() != NULL) {
        fprintf(stderr, "unit_cp (etcd store): skipped: %s\n", etcd_fx_missing());
        return 77;
    }
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
