/* cp_client.h: nano-dp's link to nanocp (docs/distribution.md, shared/msg.h): a thread of its own
 * with a blocking NNG SUB socket (deltas, heartbeats) and a REQ socket (hello, snapshot,
 * code.get, secrets.get, status, drain.ack). It keeps the model of the apps (cp_model.h),
 * builds a sealed nano_config from it after each snapshot or delta, and hands that to the
 * control thread (a mailbox plus the caller's uv_async). It reports per-app state and
 * in-flight counts from the workers' dp_stats every second and acknowledges drains.
 *
 * Failure rules: a message that does not decode is logged and dropped; a delta that does not
 * apply or build leaves the served config as it was and a snapshot resyncs; a gap, a
 * reconnect or a heartbeat ahead of the applied seq for more than 1.5 s resyncs; while nanocp
 * is unreachable the last config keeps serving and the client redials with backoff
 * (100 ms doubling to 5 s).
 *
 * Start, take, link and stop are called from the control thread. */
#ifndef DP_CP_CLIENT_H
#define DP_CP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "error.h"
#include "worker.h"

typedef struct dp_cp_client dp_cp_client;

/* nanocp replicas a node may be given (--control-plane URL,URL,...). */
#define DP_CP_MAX_ENDPOINTS 8

typedef struct dp_cp_client_options {
    const char *url;       /* nanocp's PUB (--control-plane): one URL, or a comma-separated list
                              of replicas (tried in turn; a session that ends moves on) */
    const char *rpc_url;   /* nanocp's REP (--control-plane-rpc), one per url; NULL: each url's
                              host with its port + 1 */
    const char *node;      /* this node's name */
    const char *token;     /* node token ("" when none) */
    const char *ca_file;   /* tls+tcp://: CA to verify nanocp's certificate */
    const char *cert_file; /* tls+tcp://: client certificate (optional, with key_file) */
    const char *key_file;
    const char *code_dir;  /* an existing directory for the code cache */
    const char *http_addr; /* where this node serves HTTP, for hello */
    unsigned drop_every;   /* test hook NANO_TEST_DROP_DELTAS: drop every Nth delta (0: off) */
    dp_worker **workers;   /* read for status and drains (their stats tables) */
    size_t n_workers;
    uv_async_t *config_ready;    /* sent when dp_cp_client_take has a config */
    dp_load_errors *load_errors; /* borrowed, may be NULL: refused versions, reported in each
                                  * app's status as load_error {code, message} */
} dp_cp_client_options;

/* The link as /status shows it. */
typedef struct dp_cp_link {
    bool is_connected;
    bool has_config; /* a snapshot was applied */
    uint64_t applied_seq;
    uint64_t heartbeat_seq;     /* the last heartbeat's */
    uint64_t last_heartbeat_ms; /* wall clock (ms since the epoch); 0: none yet */
    uint64_t resyncs;           /* snapshots fetched after the first */
    uint64_t deltas_applied, deltas_rejected, messages_dropped, reconnects;
    char node[64];
    char url[256];
    char rpc_url[256];
} dp_cp_link;

/* dp_cp_client_start: checks the options (URLs, TLS files, code dir) and starts the thread.
 * Returns 0 and *out, or an error (bad usage: the caller exits 2). The options' strings are
 * copied; workers and config_ready are borrowed until dp_cp_client_stop. */
int dp_cp_client_start(const dp_cp_client_options *o, dp_cp_client **out, nano_error *err);

/* dp_cp_client_take: the newest config the client built (returned owned: one reference) and
 * its seq, or NULL when none is waiting. */
nano_config *dp_cp_client_take(dp_cp_client *c, uint64_t *seq);

/* dp_cp_client_link: a copy of the link's state. Any thread. */
void dp_cp_client_link(dp_cp_client *c, dp_cp_link *out);

/* dp_cp_client_stop: closes the sockets, joins the thread and frees c (NULL-safe). */
void dp_cp_client_stop(dp_cp_client *c);

/* Helpers for the command line (pure):
 * dp_cp_default_rpc_url: "tcp://H:P" -> "tcp://H:P+1" (any scheme). Returns 0 or NANO_EINVAL.
 * dp_cp_url_host: the host part of a URL into out ("" when none). Returns 0 or NANO_EINVAL.
 * dp_cp_host_is_loopback: 127.0.0.0/8, ::1, localhost. */
int dp_cp_default_rpc_url(const char *url, char *out, size_t cap);
int dp_cp_url_host(const char *url, char *out, size_t cap);
bool dp_cp_host_is_loopback(const char *host);

#endif
