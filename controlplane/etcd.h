/* etcd.h: a client of etcd 3.4's v3 JSON gateway (HTTP/1.1 + JSON over libcurl), the building
 * block of nanocp's etcd store backend (docs/nanocp.md#etcd-client): key-value reads and
 * writes, transactions, leases and watches, failing over between the endpoints of one URL.
 *
 * A cp_etcd owns one libcurl connection; one thread at a time may use it (callers serialise).
 * A watch (cp_etcd_watch_start) has its own thread and connection and does not touch the handle
 * it was started from, which may be freed while the watch runs. Keys and values are bytes
 * (pointer + length, NUL bytes allowed); revisions, versions, lease ids and TTLs are int64. */
#ifndef CP_ETCD_H
#define CP_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct cp_etcd cp_etcd;

/* PEM file paths for etcds:// URLs. cacert verifies the members' certificates (NULL: the
 * system's CAs); cert and key, both or neither, are the client certificate. */
typedef struct cp_etcd_tls {
    const char *cacert;
    const char *cert;
    const char *key;
} cp_etcd_tls;

/* Limits of one handle (and of the watches started from it). Zero fields take the default. */
typedef struct cp_etcd_limits {
    uint32_t connect_timeout_ms; /* per endpoint, TCP + TLS: default 2000 */
    uint32_t timeout_ms;         /* a whole request on one endpoint: default 10000 */
    size_t max_response;         /* body of one response or watch message: default 64 MiB */
} cp_etcd_limits;

#define CP_ETCD_CONNECT_TIMEOUT_MS 2000u
#define CP_ETCD_TIMEOUT_MS 10000u
#define CP_ETCD_MAX_RESPONSE ((size_t)64 << 20)

/* cp_etcd_open: a handle for url, "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" (plain HTTP) or
 * "etcds://..." (HTTPS, verified against tls->cacert, with tls's client certificate if any).
 * HOST is a name, an IPv4 address or a bracketed IPv6 one; PORT defaults to 2379. The path
 * is the key prefix the store keeps everything under (cp_etcd_prefix); it is carried, not
 * applied: keys passed to this API are whole etcd keys. Nothing is contacted yet. Returns 0
 * and *out (returned owned), NANO_EINVAL with err ("etcd_url_invalid" and what is wrong with
 * the URL) or NANO_ENOMEM. tls is borrowed (the paths are copied); NULL for none. */
int cp_etcd_open(const char *url, const cp_etcd_tls *tls, cp_etcd **out, nano_error *err);

/* cp_etcd_set_limits: replaces e's limits (zero fields: defaults) for later calls. */
void cp_etcd_set_limits(cp_etcd *e, const cp_etcd_limits *lim);

/* cp_etcd_free: closes the connection and frees e. NULL-safe. Running watches are unaffected. */
void cp_etcd_free(cp_etcd *e);

/* cp_etcd_prefix: the key prefix of the URL: its path with one trailing '/' ensured
 * ("etcd://h/nano" -> "/nano/"), or "" when the URL has no path. Borrowed from e. */
const char *cp_etcd_prefix(const cp_etcd *e);

/* cp_etcd_endpoint: the base URL ("http://127.0.0.1:2379") requests go to first: the last
 * endpoint that answered. Borrowed from e, valid until the next call on e. */
const char *cp_etcd_endpoint(const cp_etcd *e);

/* cp_etcd_prefix_end: the range_end that selects every key starting with prefix[0..len):
 * the prefix with trailing 0xff bytes dropped and its last byte incremented, or the single
 * byte "\0" (every key >= key) when it is empty or all 0xff. Writes at most max(len, 1)
 * bytes to out and returns how many. */
size_t cp_etcd_prefix_end(const void *prefix, size_t len, unsigned char *out);

/* One key-value pair as etcd keeps it. key and value are NUL-terminated for convenience (the
 * NUL is not counted); both may hold NUL bytes. */
typedef struct cp_etcd_kv {
    char *key;
    size_t key_len;
    char *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version; /* 0 in a DELETE event's kv */
    int64_t lease;   /* 0: no lease */
} cp_etcd_kv;

typedef enum cp_etcd_op_type {
    CP_ETCD_OP_RANGE,
    CP_ETCD_OP_PUT,
    CP_ETCD_OP_DELETE,
} cp_etcd_op_type;

/* The answer to one operation: a range (kvs, count, more), a put or a delete (deleted). */
typedef struct cp_etcd_result {
    cp_etcd_op_type type;
    int64_t revision; /* the store's revision when it ran (its response header) */
    cp_etcd_kv *kvs;
    size_t n_kvs;
    int64_t count; /* range: keys in the range (more than n_kvs under a limit or keys_only) */
    bool more;     /* range: the limit cut the answer short */
    int64_t deleted;
} cp_etcd_result;

/* cp_etcd_result_free: frees r and everything it holds. NULL-safe. */
void cp_etcd_result_free(cp_etcd_result *r);

/* A range request. range_end NULL: key alone; otherwise keys in [key, range_end), with the
 * single byte "\0" meaning every key >= key (cp_etcd_prefix_end). */
typedef struct cp_etcd_range_req {
    const void *key;
    size_t key_len;
    const void *range_end;
    size_t range_end_len;
    int64_t limit;    /* 0: no limit */
    int64_t revision; /* 0: the latest; otherwise the store as of that revision */
    bool keys_only;   /* kvs without values */
    bool count_only;  /* count alone, no kvs */
} cp_etcd_range_req;

/* Every call below: e borrowed, the calling thread only. Returns 0 with the out-parameters set,
 * or a negative code with err filled (err may be NULL):
 *   NANO_EIO       "etcd_unavailable" (no endpoint answered), "etcd_error" (etcd refused the
 *                  request: its message and gRPC code), "etcd_bad_response"
 *   NANO_ERANGE    "etcd_compacted" / "etcd_future_revision" (range at such a revision)
 *   NANO_ETOOBIG   "etcd_request_too_large", "etcd_response_too_large" (over max_response)
 *   NANO_ENOTFOUND "etcd_lease_not_found"
 *   NANO_EUNKNOWN  "etcd_outcome_unknown": a write (put, delete, txn, lease grant or revoke)
 *                  was sent but its answer was lost (connection closed or timed out, or an
 *                  etcd timeout): it may or may not have been applied. It is not retried;
 *                  read the keys back to decide.
 * Reads, and writes that were never sent (connection refused, no leader), move on to the next
 * endpoint, each tried once per call. */

/* cp_etcd_range: the keys req selects; *out returned owned (cp_etcd_result_free). */
int cp_etcd_range(cp_etcd *e, const cp_etcd_range_req *req, cp_etcd_result **out, nano_error *err);

/* cp_etcd_get: cp_etcd_range of key alone. *out has no kv when the key does not exist. */
int cp_etcd_get(cp_etcd *e, const void *key, size_t key_len, cp_etcd_result **out, nano_error *err);

/* cp_etcd_put: sets key to value, attached to lease (0: none). *revision_out (may be NULL):
 * the revision of the write. */
int cp_etcd_put(cp_etcd *e, const void *key, size_t key_len, const void *value, size_t value_len,
                int64_t lease, int64_t *revision_out, nano_error *err);

/* cp_etcd_delete: deletes key (range_end NULL) or [key, range_end). *deleted_out and
 * *revision_out may be NULL. */
int cp_etcd_delete(cp_etcd *e, const void *key, size_t key_len, const void *range_end,
                   size_t range_end_len, int64_t *deleted_out, int64_t *revision_out,
                   nano_error *err);

/* cp_etcd_compact: compacts the history up to revision (physical: waits until done). Later
 * reads and watches before it fail with "etcd_compacted". */
int cp_etcd_compact(cp_etcd *e, int64_t revision, nano_error *err);

/* A transaction's compare: key's value, version, create or mod revision, or lease, against
 * value (CP_ETCD_CMP_VALUE) or number (the others). */
typedef enum cp_etcd_cmp_target {
    CP_ETCD_CMP_VALUE,
    CP_ETCD_CMP_VERSION, /* 0: the key does not exist */
    CP_ETCD_CMP_CREATE,
    CP_ETCD_CMP_MOD,
    CP_ETCD_CMP_LEASE,
} cp_etcd_cmp_target;

typedef enum cp_etcd_cmp_op {
    CP_ETCD_EQUAL,
    CP_ETCD_NOT_EQUAL,
    CP_ETCD_LESS,
    CP_ETCD_GREATER,
} cp_etcd_cmp_op;

typedef struct cp_etcd_cmp {
    const void *key;
    size_t key_len;
    cp_etcd_cmp_target target;
    cp_etcd_cmp_op op;
    int64_t number;
    const void *value;
    size_t value_len;
} cp_etcd_cmp;

/* One operation of a transaction branch: range (key, range_end, limit), put (key, value,
 * lease) or delete (key, range_end). */
typedef struct cp_etcd_op {
    cp_etcd_op_type type;
    const void *key;
    size_t key_len;
    const void *range_end;
    size_t range_end_len;
    const void *value;
    size_t value_len;
    int64_t lease;
    int64_t limit;
} cp_etcd_op;

typedef struct cp_etcd_txn_req {
    const cp_etcd_cmp *cmps;
    size_t n_cmps;
    const cp_etcd_op *success; /* run when every compare holds */
    size_t n_success;
    const cp_etcd_op *failure; /* run otherwise */
    size_t n_failure;
} cp_etcd_txn_req;

typedef struct cp_etcd_txn_result {
    bool succeeded;            /* which branch ran */
    int64_t revision;          /* the store's revision after the transaction */
    cp_etcd_result *responses; /* one per op of the branch that ran, in order */
    size_t n_responses;
} cp_etcd_txn_result;

/* cp_etcd_txn: runs txn atomically. A failed compare is not an error: 0 with
 * (*out)->succeeded false. *out returned owned (cp_etcd_txn_result_free). */
int cp_etcd_txn(cp_etcd *e, const cp_etcd_txn_req *txn, cp_etcd_txn_result **out, nano_error *err);

/* cp_etcd_txn_result_free: NULL-safe. */
void cp_etcd_txn_result_free(cp_etcd_txn_result *r);

/* cp_etcd_lease_grant: a new lease of ttl_s seconds; *id_out its id, *ttl_out (may be NULL)
 * the TTL etcd granted. */
int cp_etcd_lease_grant(cp_etcd *e, int64_t ttl_s, int64_t *id_out, int64_t *ttl_out,
                        nano_error *err);

/* cp_etcd_lease_keepalive: renews lease id once; *ttl_out (may be NULL) its new TTL.
 * NANO_ENOTFOUND ("etcd_lease_not_found") when it expired or was revoked. */
int cp_etcd_lease_keepalive(cp_etcd *e, int64_t id, int64_t *ttl_out, nano_error *err);

/* cp_etcd_lease_revoke: revokes lease id, deleting the keys attached to it. NANO_ENOTFOUND
 * when there is no such lease. */
int cp_etcd_lease_revoke(cp_etcd *e, int64_t id, nano_error *err);

/* --- watch ---------------------------------------------------------------------------- */

typedef struct cp_etcd_watch cp_etcd_watch;

typedef enum cp_etcd_event_type {
    CP_ETCD_EVENT_PUT,
    CP_ETCD_EVENT_DELETE,
} cp_etcd_event_type;

typedef struct cp_etcd_event {
    cp_etcd_event_type type;
    cp_etcd_kv kv;      /* a DELETE's kv has the key and its mod_revision (the deletion's) */
    bool has_prev;      /* prev_kv was asked for and the key existed before */
    cp_etcd_kv prev_kv; /* the pair before this event */
} cp_etcd_event;

typedef enum cp_etcd_watch_kind {
    CP_ETCD_WATCH_EVENTS,    /* events, in revision order */
    CP_ETCD_WATCH_PROGRESS,  /* no events: every event up to revision has been delivered */
    CP_ETCD_WATCH_COMPACTED, /* the start revision was compacted away (compact_revision);
                              * the watch has ended: read a snapshot and watch again */
    CP_ETCD_WATCH_FAILED,    /* etcd cancelled the watch otherwise (error); it has ended */
} cp_etcd_watch_kind;

typedef struct cp_etcd_watch_msg {
    cp_etcd_watch_kind kind;
    int64_t revision; /* the response header's revision */
    const cp_etcd_event *events;
    size_t n_events;
    int64_t compact_revision;
    const nano_error *error;
} cp_etcd_watch_msg;

/* Called on the watch's thread; m and everything it points at are borrowed for the call. It
 * must not call cp_etcd_watch_stop on its own watch. */
typedef void (*cp_etcd_watch_cb)(const cp_etcd_watch_msg *m, void *arg);

typedef struct cp_etcd_watch_req {
    const void *key;
    size_t key_len;
    const void *range_end; /* as in cp_etcd_range_req */
    size_t range_end_len;
    int64_t start_revision; /* 0: from now on */
    bool prev_kv;           /* deliver each event's previous pair */
    bool progress_notify;   /* ask etcd for periodic CP_ETCD_WATCH_PROGRESS messages */
    /* With no byte from the stream for this long, reconnect (0: never). Only useful when
     * etcd sends progress messages more often than that (its default interval is 10 min). */
    uint32_t idle_timeout_ms;
} cp_etcd_watch_req;

/* cp_etcd_watch_start: starts watching req's range on a thread of its own, with its own
 * connection to e's endpoints (and a copy of e's URL, TLS paths and limits: e may be freed
 * afterwards). cb gets each message; when the stream breaks it reconnects, to the next
 * endpoint, from the last revision delivered + 1, after a short backoff when every endpoint
 * failed. After COMPACTED or FAILED the thread idles until stopped. Returns 0 and *out
 * (returned owned: cp_etcd_watch_stop), or NANO_ENOMEM / NANO_EIO ("etcd_watch_thread").
 * cb never runs before this returns. Any thread; req borrowed. */
int cp_etcd_watch_start(cp_etcd *e, const cp_etcd_watch_req *req, cp_etcd_watch_cb cb, void *arg,
                        cp_etcd_watch **out, nano_error *err);

/* cp_etcd_watch_stop: stops w promptly (it wakes the thread's poll), waits for the thread,
 * which runs no callback after this returns, and frees w. NULL-safe. Any thread but w's own. */
void cp_etcd_watch_stop(cp_etcd_watch *w);

/* cp_etcd_watch_revision: the revision up to which w has delivered every event (what it
 * resumes after). Any thread. */
int64_t cp_etcd_watch_revision(const cp_etcd_watch *w);

#endif
