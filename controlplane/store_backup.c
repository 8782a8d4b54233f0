/* store_backup.c: whole-database copies for `nanocp backup` and `nanocp restore` (store.h), and
 * what a copy holds. SQLite's online backup API does the copying: one step in one read
 * transaction of the source, so the copy is one consistent state of the database even while a
 * running nanocp writes to it (in WAL mode a reader does not block the writer). */
#include "store_int.h"

/* Removes path and its -wal/-shm companions (a copy that failed half-way). */
static void remove_db_files(const char *path)
{
    char side[4200];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static int copy_fail(sqlite3 *db, const char *what, const char *path, int sqlite_rc,
                     nano_error *err)
{
    return nano_error_set(err, NANO_EIO, "store_copy", "%s %s: %s", what, path,
                          db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(sqlite_rc));
}

int cp_store_copy(const char *src, const char *dst, nano_error *err)
{
    if (cp_store_url_is_etcd(src) || cp_store_url_is_etcd(dst))
        return nano_error_set(err, NANO_ESTATE, "store_copy",
                              "%s: not with the etcd store (etcdctl snapshot save backs up etcd)",
                              cp_store_url_is_etcd(src) ? src : dst);
    struct stat sb;
    if (stat(src, &sb) != 0)
        return nano_error_set(err, NANO_ENOENT, "store_copy", "%s: %s", src, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return nano_error_set(err, NANO_EINVAL, "store_copy", "%s: not a regular file", src);
    /* dst is created here, exclusively and 0600 (it holds env values and ciphertexts): an
     * existing file is never overwritten. SQLite takes an empty file as an empty database. */
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return nano_error_set(
            err, errno == EEXIST ? NANO_ESTATE : NANO_EIO, "store_copy", "%s: %s", dst,
            errno == EEXIST ? "already exists (a copy never overwrites)" : strerror(errno));
    close(fd);
    sqlite3 *from = NULL, *to = NULL;
    int rc = 0;
    int src_rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (src_rc != SQLITE_OK) {
        rc = copy_fail(from, "cannot open", src, src_rc, err);
        goto done;
    }
    sqlite3_busy_timeout(from, 5000);
    int dst_rc = sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (dst_rc != SQLITE_OK) {
        rc = copy_fail(to, "cannot open", dst, dst_rc, err);
        goto done;
    }
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (b == NULL) {
        rc = copy_fail(to, "cannot start copying into", dst, 0, err);
        goto done;
    }
    int step = sqlite3_backup_step(b, -1); /* all pages, one read transaction */
    sqlite3_backup_finish(b);
    if (step != SQLITE_DONE) {
        rc = nano_error_set(err, NANO_EIO, "store_copy", "copying %s: %s", src,
                            sqlite3_errstr(step));
        goto done;
    }
    /* The copy must read back whole before anyone relies on it. */
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(to, "PRAGMA quick_check", -1, &q, NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(q, 0), "ok") != 0)
        rc = nano_error_set(err, NANO_EIO, "store_copy", "%s: the copy does not check out: %s", dst,
                            q != NULL && sqlite3_column_text(q, 0) != NULL
                                ? (const char *)sqlite3_column_text(q, 0)
                                : sqlite3_errmsg(to));
    sqlite3_finalize(q);
done:
    sqlite3_close(from);
    if (to != NULL && sqlite3_close(to) != SQLITE_OK && rc == 0)
        rc = copy_fail(to, "cannot close", dst, 0, err);
    if (rc == 0) { /* on disk before the caller says it is */
        fd = open(dst, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = nano_error_set(err, NANO_EIO, "store_copy", "%s: cannot sync: %s", dst,
                                strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc != 0)
        remove_db_files(dst);
    return rc;
}

int cp_store_secret_keys(cp_store *st, json_t **out)
{
    if (st->etcd != NULL)
        return cp_estore_secret_keys(st->etcd, out);
    static const char sql[] = "SELECT key_id, COUNT(*) FROM secrets GROUP BY key_id ORDER BY 1";
    sqlite3_stmt *q = cp_store__stmt(st, sql);
    if (q == NULL)
        return NANO_EIO;
    json_t *keys = json_object();
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        json_object_set_new(keys, (const char *)sqlite3_column_text(q, 0),
                            json_integer(sqlite3_column_int64(q, 1)));
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) {
        json_decref(keys);
        return cp_store__fail_sql(st, rc);
    }
    *out = keys;
    return 0;
}
