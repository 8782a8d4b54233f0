/* backup.h: `nanocp backup FILE` and `nanocp restore FILE` (docs/nanocp.md#backup-and-restore).
 *
 * A backup is a consistent copy of DATA_DIR/nanocp.db made while nanocp may be serving (SQLite's
 * online backup API in one read transaction: every change acknowledged before it started is in
 * it). It holds env values and sealed secrets but not the master key that opens them: the key
 * is handled explicitly (--key-out writes it to a file of its own; without it, a warning says
 * which key the secrets need). A restore copies a backup into a data dir that has no
 * database, after checking that it is a nanocp database this version knows and that its
 * secrets' key is at hand (--master-key-file, NANO_MASTER_KEY or DATA_DIR/master.key); data
 * planes take the restored config from the snapshot they ask for when they reconnect.
 *
 * Both print what they did on stdout and one-line errors on stderr; they return the process
 * exit code (0, or 1 on failure). Run from main, outside the loop. */
#ifndef CP_BACKUP_H
#define CP_BACKUP_H

/* cp_backup_run: data_dir's database into file (which must not exist; made 0600); with key_out,
 * the master key (key_file, else NANO_MASTER_KEY, else data_dir/master.key) into key_out. */
int cp_backup_run(const char *data_dir, const char *key_file, const char *key_out,
                  const char *file);

/* cp_restore_run: file into data_dir/nanocp.db (created with data_dir if missing; refused if a
 * database is there). key_file as for cp_backup_run; needed only when the backup has secrets. */
int cp_restore_run(const char *data_dir, const char *key_file, const char *file);

#endif
