/* stats.h: per-app counters, written by worker threads and read by the status port (another
 * thread) for /status and /metrics.
 *
 * Each worker has its own dp_stats table, so the request path only does relaxed atomic loads
 * and stores (one writer) on its own cache lines; the table's mutex is taken only to add an app (first sight of a
 * name on that worker) and by readers walking it. Entries live as long as the table (app
 * names are few; a removed app's entry says so in `state`). */
#ifndef DP_STATS_H
#define DP_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Latency histogram bounds in microseconds (integers: compared once per request; /metrics
 * prints them in seconds as Prometheus `le`), plus an implicit +Inf. */
#define DP_LATENCY_BUCKETS 14
extern const uint64_t dp_latency_bounds_us[DP_LATENCY_BUCKETS];

typedef enum dp_app_state {
    DP_APP_ACTIVE = 0,
    DP_APP_DRAINING, /* removed: in-flight requests finishing, new ones get 503 */
    DP_APP_SHUTDOWN, /* its `shutdown` event runs */
    DP_APP_REMOVED,  /* gone from this worker */
} dp_app_state;

const char *dp_app_state_name(dp_app_state s);

typedef struct dp_app_stats {
    char name[64];
    _Atomic int state;               /* dp_app_state */
    _Atomic uint64_t requests;       /* routed to the app (every status) */
    _Atomic uint64_t errors;         /* answered 5xx */
    _Atomic uint64_t rejected;       /* 503: over the queue bound, or draining */
    _Atomic uint64_t cpu_kills;      /* CPU limit terminations */
    _Atomic uint64_t memory_kills;   /* heap limit: isolate discarded */
    _Atomic uint64_t wall_kills;     /* wall-time limit */
    _Atomic uint64_t drain_timeouts; /* drains ended by the app's drain timeout */
    _Atomic uint64_t in_flight;      /* in an isolate now (including waitUntil work) */
    _Atomic uint64_t queued;         /* waiting for a concurrency slot */
    _Atomic uint64_t isolates;       /* live isolates (current and retiring versions) */
    _Atomic uint64_t heap_used;      /* bytes, sampled once a second */
    _Atomic uint64_t external_used;  /* ArrayBuffer bytes (rt_isolate_external_bytes), likewise */
    _Atomic uint64_t isolate_creates;
    _Atomic uint64_t isolate_create_us; /* total, for the mean */
    _Atomic uint64_t latency_count;
    _Atomic uint64_t latency_sum_us;
    _Atomic uint64_t latency_buckets[DP_LATENCY_BUCKETS + 1];
} dp_app_stats;

typedef struct dp_stats {
    pthread_mutex_t mu;
    dp_app_stats **apps;
    size_t n_apps, cap;
} dp_stats;

void dp_stats_init(dp_stats *s);
void dp_stats_fini(dp_stats *s);

/* dp_stats_app: the entry for name, created on first use (state set to ACTIVE). Worker
 * thread of this table only. */
dp_app_stats *dp_stats_app(dp_stats *s, const char *name);

/* dp_stats_peek: under the table's lock, the state, in-flight count and drain timeouts of
 * name's entry. Returns false (outputs untouched) when this worker never had the app. Any
 * thread. */
bool dp_stats_peek(dp_stats *s, const char *name, dp_app_state *state, uint64_t *in_flight,
                   uint64_t *drain_timeouts);

/* dp_stats_observe_latency: one finished request's duration. */
void dp_stats_observe_latency(dp_app_stats *a, uint64_t duration_us);

/* Only the worker that owns a table writes its counters (other threads only read them), so
 * an add is a plain load and store, not a locked read-modify-write: a request makes
 * several. */
static inline void dp_stat_add(_Atomic uint64_t *c, int64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)d,
                          memory_order_relaxed);
}

#endif
