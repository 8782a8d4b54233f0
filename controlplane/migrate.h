/* migrate.h: `nanocp migrate --from SRC --to DST` (docs/nanocp.md#moving-between-stores): a
 * whole store from SQLite to etcd or back, through cp_store_dump / cp_store_load (store.h).
 *
 * SRC and DST are "sqlite:PATH" (a nanocp.db file) or an etcd URL (etcd://HOST:PORT[,...][/PREFIX]
 * or etcds://... with tls). The source is read in one snapshot and may be in use; it must have
 * this binary's schema. The destination must hold nothing (a SQLite file is created when
 * missing, an etcd prefix may be new). After the load, the destination is dumped again and
 * compared with the source's dump. Progress and counts go to the log, a summary to stdout,
 * a one-line error to stderr. Returns the exit code: 0, 1 (failure) or 2 (bad SRC/DST). */
#ifndef CP_MIGRATE_H
#define CP_MIGRATE_H

#include "etcd.h"

int cp_migrate_run(const char *from, const char *to, const cp_etcd_tls *tls);

#endif
