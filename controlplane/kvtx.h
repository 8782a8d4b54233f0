/* kvtx.h: optimistic, serializable transactions over etcd (etcd.h) for the etcd store backend
 * (estore.c; docs/nanocp.md#the-etcd-store): one snapshot read at the revision the transaction
 * began, writes buffered (and seen by the transaction's own reads), and one etcd txn at commit
 * that applies them only if the store's meta key is still as it was read.
 *
 * A cp_kvtx lives in its owner's memory (init/fini); one thread. Keys are C strings (the store
 * builds them from validated names: no NUL byte), values bytes. Every change of the store goes
 * through a transaction that rewrites the meta key, so "the meta key did not change" means
 * "nothing under the prefix changed" (content-addressed blobs, written before and outside
 * transactions, are the one exception: estore.c). */
#ifndef CP_KVTX_H
#define CP_KVTX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "etcd.h"

/* etcd's default --max-txn-ops: a commit of more operations is refused before it is sent. */
#define CP_KVTX_MAX_OPS 128
/* Recent transaction ids kept in the meta key, so that a commit whose answer was lost finds
 * its own id even when a few other commits came right after it. */
#define CP_KVTX_RECENT 32

/* One key-value pair of a range answer, owned by its list. */
typedef struct cp_kvtx_item {
    char *key;
    char *value; /* NUL-terminated (not counted) */
    size_t value_len;
} cp_kvtx_item;

typedef struct cp_kvtx_list {
    cp_kvtx_item *items;
    size_t n;
} cp_kvtx_list;

void cp_kvtx_list_fini(cp_kvtx_list *l); /* NULL-safe; zeroes l */

typedef struct cp_kvtx_write {
    char *key;
    char *value; /* NULL: a delete */
    size_t value_len;
} cp_kvtx_write;

typedef struct cp_kvtx {
    cp_etcd *e;            /* borrowed */
    char *meta_key;        /* owned */
    json_t *meta;          /* the meta value as read (an empty object when absent); the
                             * transaction may change it: it is written back at commit */
    bool meta_dirty;       /* meta changed: commit writes it even with no other write */
    int64_t meta_mod;      /* mod_revision of the meta key as read; 0: absent */
    int64_t rev;           /* the revision every read of the transaction is made at */
    cp_kvtx_write *writes; /* buffered puts and deletes, one per key, in order of first write */
    size_t n_writes, cap_writes;
    char **del_prefixes; /* buffered range deletes of every key with that prefix */
    size_t n_del_prefixes;
    /* etcd's answers to the range reads made at rev, each asked once per transaction (the
     * store as of one revision does not change: kvtx.c, range_at_rev) */
    struct cp_kvtx_cached *reads;
    size_t n_reads, cap_reads;
    bool active;
} cp_kvtx;

/* cp_kvtx_begin: starts a transaction on e: reads meta_key (latest) and remembers its
 * mod_revision and the revision of the answer, at which every later read is made. tx must be
 * zeroed or finished. Returns 0, or the client's error (err filled). */
int cp_kvtx_begin(cp_kvtx *tx, cp_etcd *e, const char *meta_key, nano_error *err);

/* cp_kvtx_get: key's value as the transaction sees it (its own writes first), returned owned
 * (nano_xmalloc, NUL-terminated, NUL not counted). NANO_ENOTFOUND when absent. */
int cp_kvtx_get(cp_kvtx *tx, const char *key, char **value, size_t *len, nano_error *err);

/* cp_kvtx_range: the keys in [start, end) as the transaction sees them, in key order, at most
 * limit (0: all) into *out (owned: cp_kvtx_list_fini). end NULL: every key starting with
 * start. */
int cp_kvtx_range(cp_kvtx *tx, const char *start, const char *end, int64_t limit, cp_kvtx_list *out,
                  nano_error *err);

/* Buffered writes (value copied). A put or delete of a key replaces any earlier write of it;
 * cp_kvtx_del_prefix drops the buffered writes under prefix and deletes every key under it. */
void cp_kvtx_put(cp_kvtx *tx, const char *key, const void *value, size_t len);
void cp_kvtx_del(cp_kvtx *tx, const char *key);
void cp_kvtx_del_prefix(cp_kvtx *tx, const char *prefix);
/* cp_kvtx_forget: drops the buffered write of key, if any (the key is as it was read). */
void cp_kvtx_forget(cp_kvtx *tx, const char *key);

/* cp_kvtx_commit: with no write, ends the transaction (0). Otherwise sends one etcd txn:
 * compare mod_revision(meta_key) with the one read (version 0 when it was absent), success:
 * the range deletes, the puts and deletes, and the meta value with a fresh transaction id
 * among its "txns" (the last CP_KVTX_RECENT). Returns 0 (applied), NANO_ECONFLICT (the meta
 * key changed meanwhile: nothing applied), NANO_ETOOBIG (more than CP_KVTX_MAX_OPS
 * operations: nothing sent) or the client's error (nothing applied). When the answer is lost
 * (NANO_EUNKNOWN), reads the meta key back until an endpoint answers (bounded): its recent
 * ids hold ours -> 0; it changed otherwise -> NANO_ECONFLICT; it is unchanged -> a fence txn
 * (compare as above, rewrite meta) makes sure ours can never apply later, then
 * NANO_ECONFLICT. The transaction has ended in every case. */
int cp_kvtx_commit(cp_kvtx *tx, nano_error *err);

/* cp_kvtx_fini: ends the transaction, dropping its writes. NULL-safe, idempotent. */
void cp_kvtx_fini(cp_kvtx *tx);

#endif
