/* backup.c: `nanocp backup` and `nanocp restore` (contract in backup.h; docs/nanocp.md#backup). */
#include "backup.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "secrets.h"
#include "store.h"

/* What a database copy holds, for the summary line and the key check. */
typedef struct db_summary {
    int64_t schema;
    int64_t seq;
    size_t n_apps;
    json_t *keys; /* {key_id: n} */
    size_t n_secrets;
    bool is_newer; /* records a migration this nanocp does not know */
} db_summary;

static int summarize(cp_store *st, db_summary *s, nano_error *err)
{
    memset(s, 0, sizeof *s);
    json_t *apps = NULL, *migs = NULL;
    int rc = cp_store_schema_version(st, &s->schema);
    if (rc == 0)
        rc = cp_store_migrations(st, &migs);
    if (rc == 0)
        rc = cp_store_log_seq(st, &s->seq);
    if (rc == 0)
        rc = cp_store_app_list(st, &apps);
    if (rc == 0)
        rc = cp_store_secret_keys(st, &s->keys);
    if (rc != 0) {
        json_decref(apps);
        json_decref(migs);
        return nano_error_set(err, rc, "backup_read", "reading the copy: %s", cp_store_errmsg(st));
    }
    size_t i;
    json_t *m;
    json_array_foreach(migs, i, m) {
        s->is_newer = s->is_newer || json_is_false(json_object_get(m, "known"));
    }
    s->n_apps = json_array_size(apps);
    const char *id;
    json_t *n;
    json_object_foreach(s->keys, id, n) {
        s->n_secrets += (size_t)json_integer_value(n);
    }
    json_decref(apps);
    json_decref(migs);
    return 0;
}

/* "key 1a2b3c4d" or "keys 1a2b3c4d, 5e6f7a8b" */
static void key_list(const json_t *keys, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s", json_object_size(keys) > 1 ? "keys " : "key ");
    const char *id;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)keys, id, v) {
        if (n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%s", first ? "" : ", ", id);
        first = false;
    }
}

/* The master key a running nanocp would use, without making one: --master-key-file, else
 * NANO_MASTER_KEY, else DATA_DIR/master.key if it exists. NANO_ENOTFOUND when there is none. */
static int existing_key(const char *key_file, const char *data_dir, cp_master_key *key, char *where,
                        size_t cap, nano_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/master.key", data_dir);
    if (key_file == NULL && getenv("NANO_MASTER_KEY") == NULL && access(path, F_OK) != 0)
        return NANO_ENOTFOUND;
    cp_key_source source;
    return cp_master_key_load(key_file, data_dir, key, &source, where, cap, err);
}

static void print_summary(const char *verb, const char *file, const char *dest, const db_summary *s)
{
    char keys[200] = "";
    if (s->n_secrets > 0)
        key_list(s->keys, keys, sizeof keys);
    printf("nanocp: %s %s%s%s: schema %04lld, config seq %lld, %zu app%s, %zu secret%s%s%s\n", verb,
           file, dest ? " into " : "", dest ? dest : "", (long long)s->schema, (long long)s->seq,
           s->n_apps, s->n_apps == 1 ? "" : "s", s->n_secrets, s->n_secrets == 1 ? "" : "s",
           s->n_secrets > 0 ? " sealed with master " : "", keys);
}

int cp_backup_run(const char *data_dir, const char *key_file, const char *key_out, const char *file)
{
    char db[4096];
    snprintf(db, sizeof db, "%s/nanocp.db", data_dir);
    nano_error err = {0};
    if (access(db, F_OK) != 0) {
        fprintf(stderr, "nanocp: backup: %s: %s (is --data-dir right?)\n", db, strerror(errno));
        return 1;
    }
    if (cp_store_copy(db, file, &err) != 0) {
        fprintf(stderr, "nanocp: backup: %s\n", err.message);
        return 1;
    }
    /* The summary is read from the copy: it says what a restore will get. */
    cp_store *st = NULL;
    db_summary s = {0};
    int rc = cp_store_open(file, false, &st, &err);
    if (rc == 0)
        rc = summarize(st, &s, &err);
    cp_store_free(st);
    /* Opening the copy made its WAL companions; they are empty (checkpointed) and not part
     * of the backup. */
    char side[4200];
    snprintf(side, sizeof side, "%s-wal", file);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", file);
    unlink(side);
    if (rc != 0) {
        fprintf(stderr, "nanocp: backup: %s\n", err.message);
        unlink(file);
        return 1;
    }
    print_summary("backup", file, NULL, &s);
    int exit_code = 0;
    if (key_out != NULL) {
        cp_master_key key;
        char where[4096] = "";
        rc = existing_key(key_file, data_dir, &key, where, sizeof where, &err);
        if (rc == NANO_ENOTFOUND) {
            fprintf(stderr,
                    "nanocp: backup: --key-out: no master key to write: none given and "
                    "%s/master.key does not exist\n",
                    data_dir);
            exit_code = 1;
        } else if (rc != 0 || cp_master_key_write(key_out, &key, &err) != 0) {
            fprintf(stderr, "nanocp: backup: --key-out: %s\n", err.message);
            exit_code = 1;
        } else {
            printf("nanocp: master key %s (from %s) written to %s (mode 0600): store it apart "
                   "from the backup\n",
                   key.id, where, key_out);
        }
        OPENSSL_cleanse(&key, sizeof key);
    } else if (s.n_secrets > 0) {
        char keys[200];
        key_list(s.keys, keys, sizeof keys);
        fprintf(stderr,
                "nanocp: warning: the %zu secret%s in %s can only be decrypted with master %s: "
                "keep that key (%s/master.key, --master-key-file or NANO_MASTER_KEY) with the "
                "backup, or write it out with --key-out FILE\n",
                s.n_secrets, s.n_secrets == 1 ? "" : "s", file, keys, data_dir);
    }
    json_decref(s.keys);
    return exit_code;
}

/* The restored database's secrets open with the key nanocp will use, or the restore stops. */
static int check_key(const db_summary *s, const char *key_file, const char *data_dir,
                     const char *file, char *where, size_t cap, nano_error *err)
{
    if (s->n_secrets == 0)
        return 0;
    char keys[200];
    key_list(s->keys, keys, sizeof keys);
    cp_master_key key;
    int rc = existing_key(key_file, data_dir, &key, where, cap, err);
    if (rc == NANO_ENOTFOUND)
        return nano_error_set(err, NANO_EINVAL, "restore_no_key",
                              "%s holds %zu secret%s sealed with master %s, and no key is given: "
                              "pass --master-key-file (the file `nanocp backup --key-out` "
                              "wrote) or set NANO_MASTER_KEY, or they cannot be decrypted",
                              file, s->n_secrets, s->n_secrets == 1 ? "" : "s", keys);
    if (rc != 0)
        return rc;
    bool ok = json_object_size(s->keys) == 1 && json_object_get(s->keys, key.id) != NULL;
    char id[CP_KEY_ID_CHARS + 1];
    snprintf(id, sizeof id, "%s", key.id);
    OPENSSL_cleanse(&key, sizeof key);
    if (!ok)
        return nano_error_set(err, NANO_EINVAL, "restore_wrong_key",
                              "%s holds secrets sealed with master %s, but the key given (%s) is "
                              "%s: they could not be decrypted",
                              file, keys, where, id);
    return 0;
}

int cp_restore_run(const char *data_dir, const char *key_file, const char *file)
{
    char db[4096], tmp[4200], side[4300];
    snprintf(db, sizeof db, "%s/nanocp.db", data_dir);
    snprintf(tmp, sizeof tmp, "%s.restoring", db);
    struct stat sb;
    if (stat(db, &sb) == 0) {
        fprintf(stderr,
                "nanocp: restore: %s exists: restore only into a data dir without a "
                "database (stop nanocp and move it away first)\n",
                db);
        return 1;
    }
    bool made_dir = mkdir(data_dir, 0700) == 0;
    if (!made_dir && errno != EEXIST) {
        fprintf(stderr, "nanocp: restore: cannot create %s: %s\n", data_dir, strerror(errno));
        return 1;
    }
    nano_error err = {0};
    /* A leftover of a restore that was cut short is ours to replace. */
    unlink(tmp);
    if (cp_store_copy(file, tmp, &err) != 0) {
        fprintf(stderr, "nanocp: restore: %s\n", err.message);
        if (made_dir)
            rmdir(data_dir); /* nothing half-made is left behind */
        return 1;
    }
    cp_store *st = NULL;
    db_summary s = {0};
    char where[4096] = "";
    int rc = cp_store_open(tmp, false, &st, &err);
    if (rc == 0)
        rc = summarize(st, &s, &err);
    if (rc == 0 && s.schema == 0)
        rc = nano_error_set(&err, NANO_EINVAL, "restore_not_nanocp",
                            "%s is an SQLite database but not nanocp's (no migrations recorded)",
                            file);
    if (rc == 0 && s.is_newer)
        rc = nano_error_set(&err, NANO_EINVAL, "restore_newer",
                            "%s was made by a newer nanocp (it records migrations this one does "
                            "not know): restore it with that version",
                            file);
    if (rc == 0)
        rc = check_key(&s, key_file, data_dir, file, where, sizeof where, &err);
    cp_store_free(st); /* checkpoints the copy's WAL into it */
    snprintf(side, sizeof side, "%s-wal", tmp);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", tmp);
    unlink(side);
    if (rc == 0 && rename(tmp, db) != 0)
        rc = nano_error_set(&err, NANO_EIO, "restore_rename", "cannot move %s to %s: %s", tmp, db,
                            strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        if (made_dir)
            rmdir(data_dir);
        json_decref(s.keys);
        fprintf(stderr, "nanocp: restore: %s\n", err.message);
        return 1;
    }
    int dir = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) { /* the rename on disk too */
        fsync(dir);
        close(dir);
    }
    print_summary("restored", file, db, &s);
    if (s.n_secrets > 0)
        printf("nanocp: its secrets open with the master key from %s; start nanocp with that "
               "key\n",
               where);
    printf("nanocp: start nanocp with --data-dir %s; data planes take the restored config when "
           "they reconnect (a snapshot)\n",
           data_dir);
    json_decref(s.keys);
    return 0;
}
