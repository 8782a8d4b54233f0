/* store_int.h: what the store's files share (store.c: plumbing, transactions, opening and
 * migrations, apps, deployments, env and secrets; store_fleet.c: nodes, drains, the config and
 * audit logs, tokens): the handle and the statement plumbing. Not an API: store.h is. */
#ifndef CP_STORE_INT_H
#define CP_STORE_INT_H

#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "alloc.h"
#include "buf.h"

#define MAX_STMTS 96

struct cp_store {
    sqlite3 *db;
    char *path;
    const nano_embedded *migs;
    size_t n_migs;
    struct {
        const char *sql;
        sqlite3_stmt *q;
    } stmts[MAX_STMTS];
    size_t n_stmts;
    bool in_tx;
    char now[32];
    char errmsg[256];
};

/* Plumbing (store.c): statements prepared once per SQL string and kept; rows as JSON. */
int cp_store__fail_sql(cp_store *st, int src);
sqlite3_stmt *cp_store__stmt(cp_store *st, const char *sql);
void cp_store__done(sqlite3_stmt *q);
int cp_store__exec_q(cp_store *st, sqlite3_stmt *q);
void cp_store__bind_text(sqlite3_stmt *q, int i, const char *s);
json_t *cp_store__row_json(sqlite3_stmt *q);
int cp_store__rows_json(cp_store *st, sqlite3_stmt *q, json_t **out);
int cp_store__row_one(cp_store *st, sqlite3_stmt *q, json_t **out);
int cp_store__int_one(cp_store *st, sqlite3_stmt *q, int64_t *out);
int cp_store__exec_sql(cp_store *st, const char *sql);

#endif
