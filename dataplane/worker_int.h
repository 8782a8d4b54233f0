/* worker_int.h: what the worker's files share (worker.c: the thread, routing and running
 * requests; worker_app.c: apps, versions, isolates, the shutdown event, config changes;
 * access_log.c: access lines). Not a public API: worker.h is. One worker thread only. */
#ifndef DP_WORKER_INT_H
#define DP_WORKER_INT_H

#include "worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "client/client.h"
#include "check.h"
#include "log.h"
#include "request.h"
#include "server/server.h"

typedef struct dp_app dp_app;
typedef struct dp_version dp_version;

/* Memory classes of the isolate pools: 128 MiB << k for k < DP_POOL_CLASSES covers every
 * memory_mb the config allows (16 to 8192). */
#define DP_POOL_CLASSES 7
#define DP_POOL_BASE_MB 128

/* How long an app version that failed to load answers 500 before it is tried again. */
#define DP_LOAD_RETRY_MS 10000

struct dp_version {
    dp_app *app;
    nano_config *cfg_ref; /* the snapshot holding cfg */
    const nano_app_config *cfg;
    rt_isolate *iso;  /* NULL until the first request (or after a discard) */
    size_t in_flight; /* requests the isolate holds */
    uint64_t last_used_ms;
    bool is_retiring; /* superseded or draining: freed once in_flight is 0 */
    bool is_broken;   /* hit its heap limit: to be discarded by the reaper */
    bool is_reap_queued;
    bool is_loading;               /* rt_isolate_new runs (a top-level await turns the loop) */
    bool is_shutdown_sent;         /* its isolate got the shutdown event (at most once) */
    bool is_shutdown_pending;      /* ... and the event's waitUntil work has not settled */
    uint64_t shutdown_deadline_ms; /* now_ms() by which that wait is over, settled or not */
    uint64_t load_failed_ms;       /* when loading it last failed (0: never) */
    bool logged_load_error;
    size_t heap_used;     /* at the last sample */
    size_t external_used; /* ArrayBuffer bytes, at the last sample */
    uint64_t heap_sampled_ms;
    dp_version *next; /* in app->retired, or the worker's reap list */
    dp_version *reap_next;
};

struct dp_app {
    char *name;
    dp_worker *w;
    dp_version *current; /* NULL once draining */
    dp_version *retired; /* older versions finishing their requests */
    dp_app_stats *stats;
    dp_app_state state;
    nano_config *route_cfg; /* draining: the snapshot that routed to it */
    size_t route_index;
    size_t in_flight;   /* all versions */
    dp_request **queue; /* waiting for a concurrency slot (FIFO ring) */
    size_t q_head, q_len, q_cap;
    uv_timer_t drain_timer;
    bool has_drain_timer;
    dp_app *next; /* in w->draining */
};

typedef struct dp_flight {
    char app_name[64];
    dp_app_stats *stats;
    dp_version *version;  /* NULL when not (yet) running in an isolate */
    dp_request *req;      /* while running (the runtime holds a reference) */
    dp_app *app;          /* NULL once done: the app may be gone */
    uint64_t deadline_ms; /* wall-time limit, before the response starts */
    uint64_t ended_ms;    /* when the connection was done with it (is_ended) */
    bool is_running, is_done, is_ended;
    struct dp_flight *prev, *next; /* w->flights: requests running in an isolate */
} dp_flight;

enum { ORDER_NONE = 0, ORDER_DRAIN, ORDER_ABORT };

struct dp_worker {
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_mutex_t mu; /* guards the mailbox below */
    nano_config *inbox_cfg;
    int inbox_order;
    bool is_mailbox_closed; /* `wake` is closing: orders are ignored from then on */
    dp_worker_options opts;
    int listen_fd;
    dp_server *server;
    nano_config *cfg;
    dp_app **apps;    /* by the config's app index */
    dp_app *draining; /* apps being removed */
    dp_flight *flights;
    size_t n_flights;
    dp_version *reap_head;
    uv_idle_t reaper;
    uv_timer_t tick;
    uv_check_t log_flush;
    nano_buf access_log;
    nano_buf access_kv; /* scratch for one access line's key=value text */
    rt_watch watch;
    /* Ready isolates for apps' first requests, by memory class: pools[k] makes isolates
     * with a heap limit of 128 MiB << k, for apps whose memory_mb is above the class below
     * (the runtime lowers it to the app's). pools[0] always (with --isolate-pool > 0), the
     * others while an app of the config is in their class. */
    rt_pool *pools[DP_POOL_CLASSES];
    dp_client *http_client; /* outbound fetch: this thread's connections, every app */
    uint64_t last_heap_sample_ms;
    dp_stats stats;
    dp_worker_done_fn done;
    void *done_ud;
    /* Liveness, read by the control thread (dp_worker_alive): ticks counts the tick timer's
     * runs (each 250 ms while the loop turns), is_finished says the worker has ended. */
    atomic_uint_fast64_t ticks;
    atomic_bool is_finished;
    int order;                  /* what the worker is doing: ORDER_* */
    int n_loading;              /* versions being loaded (their module code runs) */
    size_t n_shutdowns_pending; /* versions waiting for their shutdown event to settle */
    bool is_wake_deferred;      /* the mailbox waits for the loads to end */
    bool is_done_reported;
    bool server_drained;
    bool is_closing;
    nano_error start_err;
    int start_rc;
    uv_sem_t started;
};

static inline uint64_t now_ms(dp_worker *w)
{
    return uv_now(&w->loop);
}

/* Shared between the worker's files; each is documented where it is defined. */
/* worker.c */
void dp_worker__on_request_done(void *ud, dp_request *req);
void dp_worker__on_cpu_exceeded(void *ud, dp_request *req);
void dp_worker__on_broken(void *ud);
void dp_worker__close_all(dp_worker *w);
void dp_worker__queue_reject(dp_app *app);
void dp_worker__run_queued(dp_app *app);
/* worker_app.c */
int dp_worker__version_isolate(dp_version *v);
int dp_worker__preload_apps(dp_worker *w, nano_error *err);
void dp_worker__reap_schedule(dp_version *v);
void dp_worker__app_maybe_finish_drain(dp_app *app);
void dp_worker__shutdowns_check_deadlines(dp_worker *w, dp_app *app);
void dp_worker__version_free_isolate(dp_version *v);
void dp_worker__app_begin_drain(dp_app *app, nano_config *old_cfg, size_t old_index,
                                bool with_timer);
void dp_worker__version_retire(dp_version *v);
void dp_worker__app_finish(dp_app *app);
void dp_worker__apply_config(dp_worker *w, nano_config *cfg);
/* access_log.c */
void dp_worker__access_line(dp_worker *w, const dp_flight *f, dp_request *req, int status,
                            uint64_t us, bool failed);
void dp_worker__flush_access_log(dp_worker *w);
void dp_worker__on_log_flush(uv_check_t *h);

#endif
