/* worker.h: a worker thread of nano-dp (docs/architecture.md#threads): its own libuv loop, its own
 * SO_REUSEPORT listener and its own isolates, one per (app, version) it has served. Nothing
 * is shared with other workers on the request path.
 *
 * The control thread (main.c) creates workers, hands them config snapshots (immutable,
 * refcounted: shared/config.h) and drain/stop orders through a mailbox + uv_async; workers
 * report counters through their dp_stats table and tell the control thread when they have
 * drained. Functions here are called from the control thread unless marked otherwise. */
#ifndef DP_WORKER_H
#define DP_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "error.h"
#include "load_errors.h"
#include "runtime/runtime.h"
#include "stats.h"

typedef struct dp_worker dp_worker;

/* What a worker loads before its first request (dp_worker_options.preload). */
typedef enum dp_preload {
    DP_PRELOAD_NONE = 0,    /* nothing: each app version loads on its first request */
    DP_PRELOAD_FIRST,       /* every app of the config, before dp_worker_start returns: the
                             * node's start-up check (its failure fails the start) */
    DP_PRELOAD_AFTER_START, /* every app of the config, once started (a failure is logged
                             * and the first request tries again) */
} dp_preload;

typedef struct dp_worker_options {
    const char *host;  /* for logs and URLs; the socket is listen_fd */
    uint64_t max_head; /* server-wide parser limits */
    uint64_t max_body;
    uint64_t head_timeout_ms;
    uint64_t idle_timeout_ms;
    uint64_t body_timeout_ms; /* server.h: the request body rate rule */
    uint64_t body_min_rate;
    uint64_t write_timeout_ms;
    uint64_t isolate_memory_budget; /* bytes of V8 heap and ArrayBuffers for this worker's idle
                                     * isolates (0: none) */
    bool access_log;
    size_t pool_size;            /* ready isolates kept by rt_pool (0: none) */
    dp_load_errors *load_errors; /* borrowed, may be NULL: an app version that fails to load
                                  * here is recorded in it (for /status and nanocp) */
    struct nano_egress *egress;  /* the node's egress policy (NULL: none); isolates take a
                                  * reference */
    dp_preload preload;
    uint64_t drain_timeout_ms; /* --drain-timeout: the shutdown event's deadline when the
                                  * process drains (an app's removal uses its own) */
} dp_worker_options;

/* Called on the worker's thread when it has drained (all apps removed, connections closed),
 * or its stop was forced; the control thread's uv_async is the usual target. */
typedef void (*dp_worker_done_fn)(void *ud);

/* dp_worker_start: starts thread `index` serving on listen_fd (taken over) with cfg (a
 * reference is taken). Returns 0; DP_WORKER_LOAD_FAILED when opts->preload is
 * DP_PRELOAD_FIRST and an app did not load (err says why; the worker is gone); or another
 * error. */
#define DP_WORKER_LOAD_FAILED 1000
int dp_worker_start(dp_worker **out, int index, int listen_fd, const dp_worker_options *opts,
                    nano_config *cfg, dp_worker_done_fn done, void *done_ud, nano_error *err);

/* dp_worker_apply: the worker switches to cfg at its next loop turn (a reference is taken;
 * a snapshot not yet picked up is replaced). */
void dp_worker_apply(dp_worker *w, nano_config *cfg);

/* dp_worker_drain: stop accepting, drain every app (503 for new requests, in-flight ones
 * finish, shutdown events), close connections; then `done`. dp_worker_abort: close
 * everything now; then `done`. */
void dp_worker_drain(dp_worker *w);
void dp_worker_abort(dp_worker *w);

/* dp_worker_join: waits for the thread to end (after done) and frees the worker. */
void dp_worker_join(dp_worker *w);

dp_stats *dp_worker_stats(dp_worker *w);
rt_watch *dp_worker_watch(dp_worker *w);
/* The worker thread's CPU clock (for the watchdog). */
int dp_worker_cpu_clock(dp_worker *w, clockid_t *out);
/* dp_worker_liveness: how many times the worker's loop has run its tick (every 250 ms while
 * the loop turns: a count that stops moving means the thread is stuck, e.g. in a long JS
 * segment or a livelock), and whether it has finished (drained or aborted). Any thread. */
void dp_worker_liveness(dp_worker *w, uint64_t *ticks, bool *is_finished);
/* dp_worker_counts: adds the worker's open connections, connections with a request in
 * flight, and live requests (approximate: read without a lock; for progress logs). */
void dp_worker_counts(dp_worker *w, size_t *conns, size_t *active_conns, size_t *requests);

#endif
