/* distrib.h: nanocp's distribution layer (docs/distribution.md; protocol in shared/msg.h): the PUB
 * socket that carries every committed config-log entry to the data planes as deltas plus a
 * heartbeat each second, and the REP socket that answers their hello, snapshot, code.get,
 * secrets.get, status and drain.ack requests. It also runs the drains' clock: nodes that have
 * not acked when a drain's timeout (+ a grace) has passed count as timed out, and a drain with
 * no node left pending ends with the app deleted and app.remove published.
 *
 * Threads: NNG runs its aio callbacks on its own threads; they only queue each received request
 * and wake the loop (uv_async_send; shared/nng_rep.h). Decoding, the token check, the service and store calls and
 * the replies' encoding run on the loop thread, the service thread and the only one that
 * touches SQLite. Every function here must be called on that thread. */
#ifndef CP_DISTRIB_H
#define CP_DISTRIB_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "api.h"
#include "buf.h"
#include "error.h"
#include "service.h"

#define CP_DISTRIB_CONTEXTS 16         /* requests received concurrently; more wait in NNG */
#define CP_DISTRIB_HEARTBEAT_MS 1000   /* docs/distribution.md#what-flows */
#define CP_DISTRIB_DRAIN_GRACE_MS 2000 /* beyond a drain's timeout before nodes time out */
/* Replicas on one store: the fleet's duties move to another replica this long after the one
 * running them stops renewing its lease (store.h cp_store_lead); code no deployment uses is
 * swept this often, once older than that. */
#define CP_DISTRIB_LEAD_TTL_MS 5000
#define CP_DISTRIB_SWEEP_MS (3600u * 1000u)

typedef struct cp_distrib cp_distrib;

typedef struct cp_distrib_options {
    const char *pub_url;         /* --dataplane ("tcp://127.0.0.1:7072"; port 0 picks one); NULL
                              with rpc_url NULL: no sockets (tests call cp_distrib_handle) */
    const char *rpc_url;         /* --dataplane-rpc ("tcp://127.0.0.1:7073") */
    const char *node_token_file; /* --node-token-file; NULL: DATA_DIR/node.token, made on
                                    first start (0600, 32 random bytes as 64 hex digits) */
    const char *tls_cert;        /* PEM server certificate (chain), for tls+tcp:// URLs */
    const char *tls_key;         /* PEM private key of tls_cert (unencrypted) */
    const char *tls_ca;          /* PEM CA bundle: when set, data planes must present a client
                              certificate it signed */
    uint64_t heartbeat_ms;       /* 0: CP_DISTRIB_HEARTBEAT_MS */
    uint64_t drain_grace_ms;     /* 0: CP_DISTRIB_DRAIN_GRACE_MS */
} cp_distrib_options;

/* cp_distrib_start: loads (or makes) the node token, listens on both URLs (tls+tcp:// needs
 * tls_cert and tls_key: without them this fails with a one-line err) and starts the heartbeat
 * timer. svc is borrowed and must outlive d. Everything logged before now is taken as already
 * published: a data plane learns it from its snapshot. Returns 0 and *out (owned; release with
 * cp_distrib_close), or a negative code with err filled. No callback runs before it returns. */
int cp_distrib_start(uv_loop_t *loop, cp_service *svc, const cp_distrib_options *opt,
                     cp_distrib **out, nano_error *err);

/* cp_distrib_publish: publishes the config-log entries after the last published one as one
 * delta (msg.h: first..seq, one OP each). Call it after every committed admin change; cheap
 * when nothing is new. A delta that cannot be built is logged and skipped: data planes see the
 * gap (or the next heartbeat) and take a snapshot. */
void cp_distrib_publish(cp_distrib *d);

/* cp_distrib_handle: one request from a data plane (data[0..len), borrowed) -> the reply's
 * bytes appended to reply. Never fails: a malformed, oversized or unauthorized request gets an
 * error reply (bad_request, unauthorized) and one log line. The socket side calls it; tests
 * call it directly. */
void cp_distrib_handle(cp_distrib *d, const void *data, size_t len, nano_buf *reply);

/* cp_distrib_flush: writes the status reports received since the last heartbeat (normally the
 * heartbeat timer does, once a second) and, on the replica that runs the fleet's duties (always
 * with SQLite; with etcd the one holding the lease, renewed by the heartbeat only), runs the
 * drains' clock; publishes what that logged (app.remove). */
void cp_distrib_flush(cp_distrib *d);

/* cp_distrib_published: the last seq published (what heartbeats carry). */
int64_t cp_distrib_published(const cp_distrib *d);

/* cp_distrib_close: stops publishing, closes both sockets (requests not answered yet get no
 * reply; their data planes retry), writes the pending status reports and stops the timer.
 * Asynchronous like uv_close: done (may be NULL) runs with arg from the loop once d is freed;
 * never from inside this call. NULL-safe. */
void cp_distrib_close(cp_distrib *d, cp_api_closed_cb done, void *arg);

/* --- pure parts (tests) --------------------------------------------------------------------- */

/* cp_distrib_op_from_log: one config-log entry {seq, at, op, app, payload} (store.h) -> the OP
 * of msg.h (returned owned): the payload's fields the op carries on the wire, plus seq and op.
 * secret.put loses its sealed value: the wire carries {app, name} and data planes fetch values
 * with secrets.get. The OP is checked with nano_msg_check_op. Returns 0, or NANO_EINVAL with
 * err filled (an entry this nanocp cannot express). */
int cp_distrib_op_from_log(const json_t *entry, json_t **out, nano_error *err);

/* cp_distrib_snapshot: the whole config as a snapshot reply's fields {seq, apps: [SNAPAPP]}
 * (returned owned): cp_snapshot_build (snapshot.h), where an app that cannot be sent is
 * withheld and the others still go. Returns 0 or a negative code with err filled. */
int cp_distrib_snapshot(cp_service *svc, json_t **out, nano_error *err);

#endif
