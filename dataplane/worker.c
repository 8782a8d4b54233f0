/* worker.c: one worker thread: routing, per-app state and limits, isolate lifecycle,
 * redeploys and drains (docs/architecture.md: the request path, drains, limits).
 *
 * Per app this thread keeps a dp_app; per deployment of it (code hash) a dp_version with at
 * most one isolate, made on the first request. A config change that keeps an app's code keeps
 * its isolate (env changes go in with rt_isolate_set_env); new code makes a new version that
 * serves new requests at once while the old one finishes its own and is then freed (zero
 * downtime). An app missing from the new config drains: 503 for new requests, in-flight ones
 * finish (bounded by its drain timeout), its `shutdown` event runs, then its isolates go.
 *
 * Every request routed to an app gets a dp_flight (the request's app tag) that lives until
 * both the runtime let go of the request (request_done) and the connection did (request_end),
 * so access logs and counters never touch a freed app. Isolates are never freed from inside
 * a runtime callback: the reaper (an idle handle) does it from a clean stack. */
#define _GNU_SOURCE
#include "worker.h"

#include <pthread.h>
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
    nano_config *cfg_ref;          /* the snapshot holding cfg */
    const nano_app_config *cfg;
    rt_isolate *iso;               /* NULL until the first request (or after a discard) */
    size_t in_flight;              /* requests the isolate holds */
    uint64_t last_used_ms;
    bool is_retiring;              /* superseded or draining: freed once in_flight is 0 */
    bool is_broken;                /* hit its heap limit: to be discarded by the reaper */
    bool is_reap_queued;
    bool is_loading;               /* rt_isolate_new runs (a top-level await turns the loop) */
    bool is_shutdown_sent;         /* its isolate got the shutdown event (at most once) */
    bool is_shutdown_pending;      /* ... and the event's waitUntil work has not settled */
    uint64_t shutdown_deadline_ms; /* now_ms() by which that wait is over, settled or not */
    uint64_t load_failed_ms;       /* when loading it last failed (0: never) */
    bool logged_load_error;
    size_t heap_used;              /* at the last sample */
    size_t external_used;          /* ArrayBuffer bytes, at the last sample */
    uint64_t heap_sampled_ms;
    dp_version *next;              /* in app->retired, or the worker's reap list */
    dp_version *reap_next;
};

struct dp_app {
    char *name;
    dp_worker *w;
    dp_version *current;           /* NULL once draining */
    dp_version *retired;           /* older versions finishing their requests */
    dp_app_stats *stats;
    dp_app_state state;
    nano_config *route_cfg;        /* draining: the snapshot that routed to it */
    size_t route_index;
    size_t in_flight;              /* all versions */
    dp_request **queue;            /* waiting for a concurrency slot (FIFO ring) */
    size_t q_head, q_len, q_cap;
    uv_timer_t drain_timer;
    bool has_drain_timer;
    dp_app *next;                  /* in w->draining */
};

typedef struct dp_flight {
    char app_name[64];
    dp_app_stats *stats;
    dp_version *version;           /* NULL when not (yet) running in an isolate */
    dp_request *req;               /* while running (the runtime holds a reference) */
    dp_app *app;                   /* NULL once done: the app may be gone */
    uint64_t deadline_ms;          /* wall-time limit, before the response starts */
    uint64_t ended_ms;             /* when the connection was done with it (is_ended) */
    bool is_running, is_done, is_ended;
    struct dp_flight *prev, *next; /* w->flights: requests running in an isolate */
} dp_flight;

enum { ORDER_NONE = 0, ORDER_DRAIN, ORDER_ABORT };

struct dp_worker {
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_mutex_t mu;            /* guards the mailbox below */
    nano_config *inbox_cfg;
    int inbox_order;
    bool is_mailbox_closed;        /* `wake` is closing: orders are ignored from then on */
    dp_worker_options opts;
    int listen_fd;
    dp_server *server;
    nano_config *cfg;
    dp_app **apps;                 /* by the config's app index */
    dp_app *draining;              /* apps being removed */
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
    dp_client *http_client;        /* outbound fetch: this thread's connections, every app */
    uint64_t last_heap_sample_ms;
    dp_stats stats;
    dp_worker_done_fn done;
    void *done_ud;
    int order;                     /* what the worker is doing: ORDER_* */
    int n_loading;                 /* versions being loaded (their module code runs) */
    size_t n_shutdowns_pending;    /* versions waiting for their shutdown event to settle */
    bool is_wake_deferred;         /* the mailbox waits for the loads to end */
    bool is_done_reported;
    bool server_drained;
    bool is_closing;
    nano_error start_err;
    int start_rc;
    uv_sem_t started;
};

static void reap_schedule(dp_version *v);
static void close_all(dp_worker *w);
static void app_maybe_finish_drain(dp_app *app);
static void run_queued(dp_app *app);

static uint64_t now_ms(dp_worker *w)
{
    return uv_now(&w->loop);
}

/* --- answers the runtime gives itself ------------------------------------------------------ */

static void respond_plain(dp_request *req, int status, const char *text, bool retry_after)
{
    if (dp_response_started(req) || !dp_request_connected(req))
        return;
    dp_header headers[2] = {
        {NANO_STR("content-type"), NANO_STR("text/plain; charset=utf-8")},
        {NANO_STR("retry-after"), NANO_STR("5")},
    };
    size_t len = strlen(text);
    if (dp_response_start(req, status, (nano_str){NULL, 0}, headers, retry_after ? 2 : 1,
                          (int64_t)len + 1) != 0)
        return;
    dp_response_write(req, text, len);
    dp_response_write(req, "\n", 1);
    dp_response_end(req);
}

/* --- flights --------------------------------------------------------------------------------- */

static dp_flight *flight_new(dp_app *app, dp_request *req)
{
    dp_flight *f = nano_xmalloc(sizeof *f); /* not calloc: see dp_request__new */
    memset(f, 0, sizeof *f);
    size_t name_len = strnlen(app->name, sizeof f->app_name - 1); /* no printf per request */
    memcpy(f->app_name, app->name, name_len);
    f->stats = app->stats;
    f->app = app;
    dp_request_set_app(req, f);
    dp_stat_add(&f->stats->requests, 1);
    return f;
}

/* Frees f once both sides are done with it (and untags its request). */
static void flight_maybe_free(dp_flight *f, dp_request *req)
{
    if (!f->is_ended || (f->is_running && !f->is_done))
        return;
    dp_request_set_app(req, NULL);
    nano_free(f);
}

static void flight_link(dp_worker *w, dp_flight *f)
{
    f->next = w->flights;
    if (w->flights)
        w->flights->prev = f;
    w->flights = f;
    w->n_flights++;
}

static void flight_unlink(dp_worker *w, dp_flight *f)
{
    if (f->prev)
        f->prev->next = f->next;
    else
        w->flights = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    w->n_flights--;
}

/* --- isolates ---------------------------------------------------------------------------------- */

static void on_request_done(void *ud, dp_request *req);
static void on_cpu_exceeded(void *ud, dp_request *req);
static void on_broken(void *ud);

/* --- the shutdown event ---------------------------------------------------------------------
 *
 * An isolate gets the `shutdown` event when its drain begins: the node shuts down, its app is
 * removed, or a new version replaced its own (docs/nano-dp.md, "The shutdown event"). Its
 * requests in flight go on meanwhile; the app uses the time to end long responses (SSE,
 * streamed downloads) and flush its work. The version is freed once its requests are done
 * and the event's waitUntil work settled, or its deadline passed (the drain timeout). */

static uint64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool version_shutdown_over(const dp_version *v)
{
    return !v->is_shutdown_pending || now_ms(v->app->w) >= v->shutdown_deadline_ms;
}

static void on_shutdown_settled(void *ud)
{
    dp_version *v = ud;
    if (!v->is_shutdown_pending)
        return;
    v->is_shutdown_pending = false;
    v->app->w->n_shutdowns_pending--;
    NANO_INFO("app.shutdown_settled", "app=%s worker=%d sha256=%.12s in_flight=%zu", v->app->name,
              v->app->w->index, v->cfg->code_sha256, v->in_flight);
    reap_schedule(v); /* the version or its app may be done: checked from a clean stack */
}

/* Fires the event in v's isolate, once, with timeout_ms until its deadline. */
static void version_shutdown(dp_version *v, uint64_t timeout_ms, const char *why)
{
    if (v->iso == NULL || v->is_broken || v->is_shutdown_sent)
        return;
    dp_worker *w = v->app->w;
    v->is_shutdown_sent = true;
    v->is_shutdown_pending = true;
    v->shutdown_deadline_ms = now_ms(w) + timeout_ms;
    w->n_shutdowns_pending++;
    NANO_INFO("app.shutdown_event", "app=%s worker=%d sha256=%.12s why=%s in_flight=%zu "
              "timeout_ms=%llu", v->app->name, w->index, v->cfg->code_sha256, why, v->in_flight,
              (unsigned long long)timeout_ms);
    rt_isolate_shutdown(v->iso, wall_clock_ms() + timeout_ms, on_shutdown_settled, v);
}

/* From the tick: waits past their deadline are over (logged); their versions are checked. */
static void shutdowns_check_deadlines(dp_worker *w, dp_app *app)
{
    dp_version *lists[] = {app->current, app->retired};
    for (size_t k = 0; k < 2; k++) {
        for (dp_version *v = lists[k]; v != NULL; v = k == 0 ? NULL : v->next) {
            if (!v->is_shutdown_pending || now_ms(w) < v->shutdown_deadline_ms)
                continue;
            v->is_shutdown_pending = false;
            w->n_shutdowns_pending--;
            NANO_WARN("app.shutdown_timeout", "app=%s worker=%d sha256=%.12s in_flight=%zu",
                      app->name, w->index, v->cfg->code_sha256, v->in_flight);
            reap_schedule(v);
        }
    }
}

/* The pool class of an app with memory_mb (0: the default): the smallest k with
 * memory_mb <= DP_POOL_BASE_MB << k. */
static size_t pool_class(uint64_t memory_mb)
{
    size_t k = 0;
    while (k + 1 < DP_POOL_CLASSES && memory_mb > ((uint64_t)DP_POOL_BASE_MB << k))
        k++;
    return k;
}

/* Makes the pools the apps of w->cfg need and frees the others (pools[0] stays). */
static void sync_pools(dp_worker *w)
{
    if (w->opts.pool_size == 0)
        return;
    bool used[DP_POOL_CLASSES] = {true};
    for (size_t i = 0; w->cfg != NULL && i < nano_config_n_apps(w->cfg); i++)
        used[pool_class(nano_config_app(w->cfg, i)->limits.memory_mb)] = true;
    for (size_t k = 0; k < DP_POOL_CLASSES; k++) {
        if (used[k] && w->pools[k] == NULL) {
            w->pools[k] = rt_pool_new(&w->loop, w->opts.pool_size,
                                      (size_t)DP_POOL_BASE_MB << k);
        } else if (!used[k] && w->pools[k] != NULL) {
            rt_pool_free(w->pools[k]);
            w->pools[k] = NULL;
        }
    }
}

/* Returns 0 with v->iso ready, -1 when the app failed to load (err, may be NULL, says why),
 * -2 when it is loading (a request that arrives while its module's top-level await turns the
 * loop must not load it again, nested ever deeper). is_preload: the worker is starting and
 * the watchdog may not run yet, so the runtime guards the module code's CPU itself. */
static int version_isolate_ex(dp_version *v, bool is_preload, nano_error *err_out)
{
    if (v->iso != NULL)
        return 0;
    if (v->is_loading)
        return -2;
    /* A module that fails to load fails again: each attempt may cost up to the startup CPU
     * limit of this thread's time, so a client hammering a broken app must not repeat it. */
    if (v->load_failed_ms != 0 && now_ms(v->app->w) - v->load_failed_ms < DP_LOAD_RETRY_MS)
        return -1;
    dp_worker *w = v->app->w;
    const nano_app_config *c = v->cfg;
    rt_app_options o = {
        .name = c->name,
        .main_path = c->main_path,
        .main_source = c->code,
        .main_source_len = c->code_len,
        .imports = c->imports,
        .n_imports = c->n_imports,
        .env = &c->env,
        .node_compat = c->node_compat,
        .heap_limit_mb = (size_t)c->limits.memory_mb,
        .pool = w->pools[pool_class(c->limits.memory_mb)],
        .watch = is_preload ? NULL : &w->watch,
        .cpu_limit_ms = c->limits.cpu_ms,
        .wall_limit_ms = c->limits.wall_ms,
        .http_client = w->http_client,
        .subrequests = c->limits.subrequests,
        .egress_node = w->opts.egress,
        .egress_app = c->egress,
    };
    nano_error err = {0};
    uint64_t t0 = uv_hrtime();
    /* A top-level await turns this loop from inside the load. Config changes and drain or
     * abort orders wait until the load has returned (on_wake): they could free the app and
     * version this call and its callers hold. */
    v->is_loading = true;
    w->n_loading++;
    int rc = rt_isolate_new(&w->loop, &o, &v->iso, &err);
    v->is_loading = false;
    if (--w->n_loading == 0 && w->is_wake_deferred) {
        w->is_wake_deferred = false;
        uv_async_send(&w->wake);
    }
    if (rc != 0) {
        v->iso = NULL;
        v->load_failed_ms = now_ms(w);
        if (!v->logged_load_error) {
            v->logged_load_error = true;
            NANO_ERROR("app.load_failed", "app=%s worker=%d error_id=%s error=%s", c->name,
                       w->index, err.id, err.message);
            if (w->opts.load_errors != NULL) {
                /* For /status and nanocp: one line, no secret (it may be what was thrown). */
                nano_error shown = err;
                nano_check_one_line(err.message, c->main_path, shown.message,
                                    sizeof shown.message);
                nano_check_mask_secrets(&c->env, shown.message, sizeof shown.message);
                dp_load_errors_set(w->opts.load_errors, c, &shown);
            }
        }
        if (err_out != NULL)
            *err_out = err;
        return -1;
    }
    uint64_t us = (uv_hrtime() - t0) / 1000;
    rt_hooks hooks = {on_request_done, on_cpu_exceeded, on_broken, v};
    rt_isolate_set_hooks(v->iso, &hooks);
    rt_isolate_set_watch(v->iso, &w->watch, c->limits.cpu_ms);
    dp_stat_add(&v->app->stats->isolates, 1);
    dp_stat_add(&v->app->stats->isolate_creates, 1);
    dp_stat_add(&v->app->stats->isolate_create_us, (int64_t)us);
    if (is_preload)
        NANO_INFO("dp.app_loaded", "app=%s worker=%d path=%s env_entries=%zu load_us=%llu",
                  c->name, w->index, c->main_path, c->env.n_entries, (unsigned long long)us);
    else
        NANO_DEBUG("app.isolate_created", "app=%s worker=%d sha256=%.12s create_us=%llu",
                   c->name, w->index, c->code_sha256, (unsigned long long)us);
    return 0;
}

static int version_isolate(dp_version *v)
{
    return version_isolate_ex(v, false, NULL);
}

/* Loads every app of the worker's config into an isolate (opts.preload). Returns 0, or -1
 * with err when one does not load (the others are still loaded). */
static int preload_apps(dp_worker *w, nano_error *err)
{
    int rc = 0;
    for (size_t i = 0; i < nano_config_n_apps(w->cfg); i++) {
        dp_app *app = w->apps[i];
        nano_error e = {0};
        if (app->current != NULL && version_isolate_ex(app->current, true, &e) == -1 && rc == 0) {
            *err = e;
            rc = -1;
        }
    }
    return rc;
}

static void version_free_isolate(dp_version *v)
{
    if (v->iso == NULL)
        return;
    rt_isolate_free(v->iso);
    v->iso = NULL;
    dp_stat_add(&v->app->stats->isolates, -1);
}

static dp_version *version_new(dp_app *app, nano_config *cfg, size_t index)
{
    dp_version *v = nano_xcalloc(1, sizeof *v);
    v->app = app;
    v->cfg_ref = nano_config_ref(cfg);
    v->cfg = nano_config_app(cfg, index);
    return v;
}

static void version_free(dp_version *v)
{
    if (v->is_shutdown_pending) /* its wait ends with it */
        v->app->w->n_shutdowns_pending--;
    version_free_isolate(v);
    nano_config_unref(v->cfg_ref);
    nano_free(v);
}

/* The reaper: discards broken isolates, frees retired versions whose requests are done. */
static void on_reap(uv_idle_t *h)
{
    dp_worker *w = h->data;
    /* One at a time from the head: finishing an app unlinks its other versions from here. */
    while (w->reap_head != NULL) {
        dp_version *v = w->reap_head;
        w->reap_head = v->reap_next;
        v->is_reap_queued = false;
        dp_app *app = v->app;
        if (v->is_broken && v->iso != NULL) {
            /* Its requests cannot finish: 503, and the next request builds a fresh isolate. */
            rt_isolate_fail_all(v->iso, 503);
            version_free_isolate(v);
            v->is_broken = false;
        }
        /* A redeploy's old version goes once idle; a draining app's versions go in app_finish,
         * after its shutdown event. */
        if (v->is_retiring && v->in_flight == 0 && app->state == DP_APP_ACTIVE &&
            version_shutdown_over(v)) {
            for (dp_version **pp = &app->retired; *pp != NULL; pp = &(*pp)->next) {
                if (*pp == v) {
                    *pp = v->next;
                    break;
                }
            }
            NANO_DEBUG("app.version_retired", "app=%s worker=%d sha256=%.12s", app->name,
                       w->index, v->cfg->code_sha256);
            version_free(v);
        }
        app_maybe_finish_drain(app);
    }
    uv_idle_stop(&w->reaper);
}

static void reap_schedule(dp_version *v)
{
    if (v->is_reap_queued)
        return;
    dp_worker *w = v->app->w;
    v->is_reap_queued = true;
    v->reap_next = w->reap_head;
    w->reap_head = v;
    uv_idle_start(&w->reaper, on_reap);
}

/* --- runtime hooks -------------------------------------------------------------------------- */

static void on_request_done(void *ud, dp_request *req)
{
    dp_version *v = ud;
    dp_app *app = v->app;
    dp_flight *f = dp_request_app(req);
    v->in_flight--;
    app->in_flight--;
    dp_stat_add(&app->stats->in_flight, -1);
    v->last_used_ms = now_ms(app->w);
    if (f != NULL) {
        f->is_done = true;
        f->app = NULL;
        flight_unlink(app->w, f);
        flight_maybe_free(f, req);
    }
    if (app->q_len > 0)
        run_queued(app); /* may start requests: runs JS, which the runtime allows here */
    if (v->in_flight == 0 && (v->is_retiring || app->state != DP_APP_ACTIVE))
        reap_schedule(v);
}

static void on_cpu_exceeded(void *ud, dp_request *req)
{
    dp_version *v = ud;
    (void)req;
    dp_stat_add(&v->app->stats->cpu_kills, 1);
}

static void on_broken(void *ud)
{
    dp_version *v = ud;
    dp_stat_add(&v->app->stats->memory_kills, 1);
    NANO_WARN("app.isolate_discarded", "app=%s worker=%d reason=memory_limit in_flight=%zu",
              v->app->name, v->app->w->index, v->in_flight);
    v->is_broken = true;
    reap_schedule(v);
}

/* --- running requests ------------------------------------------------------------------------- */

static void start_request(dp_app *app, dp_request *req)
{
    dp_worker *w = app->w;
    dp_flight *f = dp_request_app(req);
    dp_version *v = app->current;
    if (v->is_broken) {
        /* Its discard is queued; give the next request a fresh isolate right away. */
        respond_plain(req, 503, "Service Unavailable: the app is restarting", true);
        return;
    }
    int loaded = version_isolate(v);
    if (loaded == -2) {
        respond_plain(req, 503, "Service Unavailable: the app is starting", true);
        return;
    }
    if (loaded != 0) {
        respond_plain(req, 500, "Internal Server Error: the app failed to load", false);
        return;
    }
    f->version = v;
    f->req = req;
    f->is_running = true;
    f->deadline_ms = now_ms(w) + v->cfg->limits.wall_ms;
    flight_link(w, f);
    v->in_flight++;
    app->in_flight++;
    dp_stat_add(&app->stats->in_flight, 1);
    v->last_used_ms = now_ms(w);
    dp_request_set_listener(req, &rt_request_listener, v->iso);
    int rc = rt_call_fetch(v->iso, req);
    if (rc == NANO_ESTATE) {
        /* The isolate broke before this request got into it: nothing holds it. */
        f->is_running = false;
        flight_unlink(w, f);
        v->in_flight--;
        app->in_flight--;
        dp_stat_add(&app->stats->in_flight, -1);
        dp_request_set_listener(req, NULL, NULL);
        respond_plain(req, 503, "Service Unavailable: the app is restarting", true);
    } else if (rc != 0 && !dp_response_started(req)) {
        dp_response_error(req, 500);
    }
}

static void run_queued(dp_app *app)
{
    uint32_t max = app->current != NULL ? app->current->cfg->limits.max_concurrent : 0;
    while (app->q_len > 0 && app->current != NULL && app->in_flight < max) {
        dp_request *req = app->queue[app->q_head];
        app->q_head = (app->q_head + 1) % app->q_cap;
        app->q_len--;
        dp_stat_add(&app->stats->queued, -1);
        if (dp_request_connected(req))
            start_request(app, req);
        dp_request_unref(req);
    }
}

static void queue_push(dp_app *app, dp_request *req)
{
    if (app->q_len == app->q_cap) {
        size_t cap = app->q_cap ? app->q_cap * 2 : 16;
        dp_request **q = nano_xcalloc(cap, sizeof *q);
        for (size_t i = 0; i < app->q_len; i++)
            q[i] = app->queue[(app->q_head + i) % app->q_cap];
        nano_free(app->queue);
        app->queue = q;
        app->q_head = 0;
        app->q_cap = cap;
    }
    dp_request_ref(req);
    app->queue[(app->q_head + app->q_len) % app->q_cap] = req;
    app->q_len++;
    dp_stat_add(&app->stats->queued, 1);
}

/* Answers every queued request (the app is going away). */
static void queue_reject(dp_app *app)
{
    while (app->q_len > 0) {
        dp_request *req = app->queue[app->q_head];
        app->q_head = (app->q_head + 1) % app->q_cap;
        app->q_len--;
        dp_stat_add(&app->stats->queued, -1);
        dp_stat_add(&app->stats->rejected, 1);
        respond_plain(req, 503, "Service Unavailable: the app is being removed", true);
        dp_request_unref(req);
    }
}

static uint64_t content_length_of(dp_request *req, bool *has)
{
    *has = false;
    for (size_t i = 0; i < dp_request_n_headers(req); i++) {
        const dp_header *h = dp_request_header(req, i);
        if (nano_str_ieq(h->name, NANO_STR("content-length"))) {
            uint64_t n = 0;
            for (size_t k = 0; k < h->value.len && h->value.ptr[k] >= '0' && h->value.ptr[k] <= '9'; k++)
                n = n * 10 + (uint64_t)(h->value.ptr[k] - '0');
            *has = true;
            return n;
        }
    }
    return 0;
}

/* The request line and headers as they came (near enough: the parser's own limit counted the
 * exact bytes, against the largest max_head of any app). */
static uint64_t head_size(dp_request *req)
{
    uint64_t n = dp_request_method(req).len + dp_request_url(req).len + 12;
    for (size_t i = 0; i < dp_request_n_headers(req); i++) {
        const dp_header *h = dp_request_header(req, i);
        n += h->name.len + h->value.len + 4;
    }
    return n;
}

static dp_app *route_draining(dp_worker *w, nano_str host, nano_str path)
{
    for (dp_app *a = w->draining; a != NULL; a = a->next) {
        long i = nano_config_route(a->route_cfg, host.ptr, host.len, path.ptr, path.len);
        if (i >= 0 && (size_t)i == a->route_index)
            return a;
    }
    return NULL;
}

static void dispatch(void *ud, dp_request *req)
{
    dp_worker *w = ud;
    nano_str host = dp_request_host(req), path = dp_request_path(req);
    long index = w->cfg != NULL ? nano_config_route(w->cfg, host.ptr, host.len, path.ptr, path.len)
                                : -1;
    dp_app *app = index >= 0 ? w->apps[index] : NULL;
    if (app == NULL) {
        dp_app *gone = route_draining(w, host, path);
        if (gone != NULL) {
            flight_new(gone, req);
            dp_stat_add(&gone->stats->rejected, 1);
            respond_plain(req, 503, "Service Unavailable: the app is being removed", true);
            return;
        }
        respond_plain(req, 404, "Not Found: no app serves this host", false);
        return;
    }
    flight_new(app, req);
    const nano_limits *lim = &app->current->cfg->limits;
    bool has_length;
    uint64_t length = content_length_of(req, &has_length);
    if (has_length && length > lim->max_body) {
        respond_plain(req, 413, "Content Too Large", false);
        return;
    }
    if (head_size(req) > lim->max_head) {
        respond_plain(req, 431, "Request Header Fields Too Large", false);
        return;
    }
    dp_request_set_max_body(req, lim->max_body);
    if (app->in_flight >= lim->max_concurrent) {
        if (app->q_len >= lim->max_queued) {
            dp_stat_add(&app->stats->rejected, 1);
            respond_plain(req, 503, "Service Unavailable: too many requests for this app", true);
            return;
        }
        queue_push(app, req);
        return;
    }
    start_request(app, req);
}

/* Access-line writers: bytes straight into space reserved once. */
static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return put(p, tmp + i, sizeof tmp - i);
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* One access line into the batch: key=value text made without printf, in one reservation
 * (it costs a few percent of a small request otherwise). */
static void access_line(dp_worker *w, const dp_flight *f, dp_request *req, int status,
                        uint64_t us, bool failed)
{
    nano_str m = dp_request_method(req), p = dp_request_path(req);
    const char *app = f != NULL ? f->app_name : "-";
    size_t app_len = strlen(app), path_len = p.len > 512 ? 512 : p.len;
    /* The fixed text (about 90 bytes) and numbers of at most 20 digits each. Text lines are
     * written in place in the batch; JSON lines convert the text made in access_kv. */
    size_t room = 200 + app_len + m.len + path_len;
    char *start = nano_log_json ? nano_buf_reserve(&w->access_kv, room)
                                : nano_log_line_begin(&w->access_log, NANO_LOG_INFO, "access", room);
    char *o = start;
    o = PUT_LIT(o, "app=");
    o = put(o, app, app_len);
    o = PUT_LIT(o, " method=");
    o = put(o, m.ptr, m.len);
    o = PUT_LIT(o, " path=");
    o = put(o, p.ptr, path_len);
    o = PUT_LIT(o, " status=");
    o = put_u64(o, (uint64_t)(status < 0 ? 0 : status));
    o = PUT_LIT(o, " bytes=");
    o = put_u64(o, dp_request_bytes_out(req));
    o = PUT_LIT(o, " duration_ms=");
    o = put_u64(o, us / 1000);
    *o++ = '.';
    *o++ = (char)('0' + us % 1000 / 100);
    *o++ = (char)('0' + us % 100 / 10);
    *o++ = (char)('0' + us % 10);
    o = PUT_LIT(o, " request_id=");
    static const char hex[] = "0123456789abcdef";
    char id[16];
    size_t i = sizeof id;
    uint64_t v = dp_request_id(req);
    do {
        id[--i] = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    o = put(o, id + i, sizeof id - i);
    if (failed)
        o = PUT_LIT(o, " aborted=1");
    if (nano_log_json)
        nano_log_format_kv(&w->access_log, NANO_LOG_INFO, "access", start, (size_t)(o - start));
    else
        nano_log_line_end(&w->access_log, o);
}

/* Access log and counters, when the connection is done with a request. */
static void on_request_end(void *ud, dp_request *req, bool failed)
{
    dp_worker *w = ud;
    dp_flight *f = dp_request_app(req);
    int status = dp_request_status(req);
    uint64_t us = (uv_hrtime() - dp_request_start_ns(req)) / 1000;
    if (f != NULL) {
        if (status >= 500 || (failed && status == 0))
            dp_stat_add(&f->stats->errors, 1);
        dp_stats_observe_latency(f->stats, us);
    }
    if (w->opts.access_log && nano_log_min_level <= NANO_LOG_INFO)
        access_line(w, f, req, status, us, failed);
    if (f != NULL) {
        f->is_ended = true;
        f->ended_ms = now_ms(w);
        flight_maybe_free(f, req);
    }
}

/* Access lines are written in batches: when 32 KiB have gathered (checked after each loop
 * turn) and from the tick, so a line is at most 250 ms late. A write per loop turn cost ~20%
 * of hello req/s. */
#define DP_ACCESS_LOG_BATCH (32 * 1024)

static void flush_access_log(dp_worker *w)
{
    if (w->access_log.len == 0)
        return;
    nano_log_raw(w->access_log.data, w->access_log.len);
    w->access_log.len = 0;
}

static void on_log_flush(uv_check_t *h)
{
    dp_worker *w = h->data;
    if (w->access_log.len >= DP_ACCESS_LOG_BATCH)
        flush_access_log(w);
}

/* --- apps and config changes ---------------------------------------------------------------- */

static dp_app *app_new(dp_worker *w, const char *name)
{
    dp_app *app = nano_xcalloc(1, sizeof *app);
    app->name = nano_xstrdup(name);
    app->w = w;
    app->stats = dp_stats_app(&w->stats, name);
    app->state = DP_APP_ACTIVE;
    return app;
}

static void app_free(dp_app *app)
{
    nano_free(app->queue);
    nano_config_unref(app->route_cfg);
    nano_free(app->name);
    nano_free(app);
}

static void version_retire(dp_version *v)
{
    dp_app *app = v->app;
    v->is_retiring = true;
    v->next = app->retired;
    app->retired = v;
    version_shutdown(v, v->cfg->limits.drain_timeout_ms, "redeploy");
    if (v->in_flight == 0)
        reap_schedule(v);
}

static void on_drain_timer_closed(uv_handle_t *h)
{
    app_free(h->data);
}

static void app_finish(dp_app *app)
{
    dp_worker *w = app->w;
    for (dp_app **pp = &w->draining; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == app) {
            *pp = app->next;
            break;
        }
    }
    while (app->retired != NULL) {
        dp_version *v = app->retired;
        if (v->iso != NULL)
            rt_isolate_fail_all(v->iso, 503); /* may queue v for the reaper: unlinked below */
        app->retired = v->next;
        if (v->is_reap_queued) {
            for (dp_version **pp = &w->reap_head; *pp != NULL; pp = &(*pp)->reap_next) {
                if (*pp == v) {
                    *pp = v->reap_next;
                    break;
                }
            }
        }
        version_free(v);
    }
    atomic_store(&app->stats->state, DP_APP_REMOVED);
    NANO_INFO("app.drained", "app=%s worker=%d", app->name, w->index);
    if (w->order == ORDER_DRAIN && w->draining == NULL && w->server_drained && !w->is_closing)
        close_all(w);
    if (app->has_drain_timer) {
        uv_timer_stop(&app->drain_timer);
        uv_close((uv_handle_t *)&app->drain_timer, on_drain_timer_closed);
    } else {
        app_free(app);
    }
}

/* Draining: the shutdown events went out as the drain began; once no request is in flight
 * (state shutting_down) and their waits are over, the end. */
static void app_maybe_finish_drain(dp_app *app)
{
    if (app->state == DP_APP_ACTIVE)
        return;
    if (app->state == DP_APP_DRAINING) {
        if (app->in_flight > 0)
            return;
        app->state = DP_APP_SHUTDOWN;
        atomic_store(&app->stats->state, DP_APP_SHUTDOWN);
    }
    for (dp_version *v = app->retired; v != NULL; v = v->next)
        if (!version_shutdown_over(v))
            return;
    app_finish(app);
}

static void on_drain_timeout(uv_timer_t *t)
{
    dp_app *app = t->data;
    NANO_WARN("app.drain_timeout", "app=%s worker=%d in_flight=%zu state=%s", app->name,
              app->w->index, app->in_flight, dp_app_state_name(app->state));
    dp_stat_add(&app->stats->drain_timeouts, 1); /* read by the control-plane client's ack */
    app->state = DP_APP_SHUTDOWN;
    app_finish(app); /* fails whatever is left */
}

/* with_timer: bounded by the app's drain timeout (an app removed from the config); a process
 * shutdown is bounded by the control thread's --drain-timeout instead, which closes what is
 * left. */
static void app_begin_drain(dp_app *app, nano_config *old_cfg, size_t old_index, bool with_timer)
{
    dp_worker *w = app->w;
    uint64_t timeout = app->current->cfg->limits.drain_timeout_ms;
    app->state = DP_APP_DRAINING;
    atomic_store(&app->stats->state, DP_APP_DRAINING);
    app->route_cfg = nano_config_ref(old_cfg);
    app->route_index = old_index;
    dp_version *v = app->current;
    app->current = NULL;
    v->is_retiring = true;
    v->next = app->retired;
    app->retired = v;
    queue_reject(app);
    app->next = w->draining;
    w->draining = app;
    NANO_INFO("app.draining", "app=%s worker=%d in_flight=%zu drain_timeout_ms=%llu", app->name,
              w->index, app->in_flight, (unsigned long long)timeout);
    /* A process shutdown is bounded by --drain-timeout, an app's removal by its own. */
    uint64_t deadline = with_timer || w->opts.drain_timeout_ms == 0 ? timeout
                                                                    : w->opts.drain_timeout_ms;
    for (dp_version *r = app->retired; r != NULL; r = r->next)
        version_shutdown(r, deadline, with_timer ? "removal" : "process");
    if (with_timer) {
        uv_timer_init(&w->loop, &app->drain_timer);
        app->drain_timer.data = app;
        app->has_drain_timer = true;
        uv_timer_start(&app->drain_timer, on_drain_timeout, timeout, 0);
    }
    reap_schedule(v); /* checks the drain from a clean stack */
}

static void apply_config(dp_worker *w, nano_config *cfg)
{
    nano_config *old = w->cfg;
    size_t n_new = nano_config_n_apps(cfg);
    dp_app **apps = nano_xcalloc(n_new ? n_new : 1, sizeof *apps);
    size_t n_old = old != NULL ? nano_config_n_apps(old) : 0;
    bool *kept = nano_xcalloc(n_old ? n_old : 1, sizeof *kept);
    for (size_t i = 0; i < n_new; i++) {
        const nano_app_config *c = nano_config_app(cfg, i);
        size_t oi;
        dp_app *app = NULL;
        if (old != NULL && nano_config_find(old, c->name, &oi) != NULL && w->apps[oi] != NULL) {
            app = w->apps[oi];
            kept[oi] = true;
        }
        if (app == NULL) {
            app = app_new(w, c->name);
            app->current = version_new(app, cfg, i);
        } else {
            dp_version *v = app->current;
            const nano_app_config *prev = v->cfg;
            bool same = nano_app_config_same_code(prev, c) && prev->node_compat == c->node_compat &&
                        prev->limits.memory_mb == c->limits.memory_mb;
            if (same) {
                /* Same deployment: keep the isolate and its module state. */
                bool env_changed = !nano_env_equal(&prev->env, &c->env);
                nano_config *prev_ref = v->cfg_ref;
                v->cfg_ref = nano_config_ref(cfg);
                v->cfg = c;
                if (v->iso != NULL) {
                    if (env_changed)
                        rt_isolate_set_env(v->iso, &c->env);
                    rt_isolate_set_watch(v->iso, &w->watch, c->limits.cpu_ms);
                    rt_isolate_set_outbound(v->iso, c->egress, c->limits.subrequests);
                }
                nano_config_unref(prev_ref);
            } else {
                /* A redeploy: new requests go to the new code now; the old version finishes
                 * what it has, then goes. */
                app->current = version_new(app, cfg, i);
                version_retire(v);
                NANO_DEBUG("app.redeploy", "app=%s worker=%d from=%.12s to=%.12s", c->name,
                           w->index, prev->code_sha256, c->code_sha256);
            }
        }
        apps[i] = app;
    }
    for (size_t oi = 0; oi < n_old; oi++) {
        if (!kept[oi] && w->apps[oi] != NULL)
            app_begin_drain(w->apps[oi], old, oi, true);
    }
    nano_free(kept);
    nano_free(w->apps);
    w->apps = apps;
    w->cfg = nano_config_ref(cfg);
    nano_config_unref(old);
    sync_pools(w);
    for (size_t i = 0; i < n_new; i++)
        if (apps[i]->q_len > 0)
            run_queued(apps[i]); /* a raised max_concurrent lets some in */
}

/* --- the tick: wall-time limits, heap sampling, idle isolate eviction ------------------------- */

typedef struct iso_use {
    dp_version *v;
    size_t memory;                 /* heap and ArrayBuffer bytes: what freeing it gives back */
} iso_use;

/* An isolate's heap is read again only if it ran since the last sample (an idle heap does not
 * change; reading a thousand of them each tick would cost the loop milliseconds). Its
 * ArrayBuffer bytes are one atomic load, read every time: they also drop while it is idle
 * (a GC frees what it no longer holds). */
static void sample_heap(dp_worker *w, dp_version *v, uint64_t *per_app_total,
                        uint64_t *per_app_external, iso_use **uses, size_t *n_uses, size_t *cap)
{
    if (v->iso == NULL)
        return;
    if (v->heap_sampled_ms == 0 || v->last_used_ms >= w->last_heap_sample_ms) {
        v->heap_used = rt_isolate_heap_used(v->iso);
        v->heap_sampled_ms = now_ms(w);
    }
    v->external_used = rt_isolate_external_bytes(v->iso);
    size_t heap = v->heap_used;
    *per_app_total += heap;
    *per_app_external += v->external_used;
    if (*n_uses == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *uses = nano_xrealloc(*uses, *cap * sizeof **uses);
    }
    (*uses)[(*n_uses)++] = (iso_use){v, heap + v->external_used};
}

static int by_last_used(const void *a, const void *b)
{
    const iso_use *x = a, *y = b;
    return x->v->last_used_ms < y->v->last_used_ms ? -1 : x->v->last_used_ms > y->v->last_used_ms;
}

static void on_tick(uv_timer_t *t)
{
    dp_worker *w = t->data;
    uint64_t now = now_ms(w);
    flush_access_log(w);
    if (w->n_shutdowns_pending > 0) {
        for (size_t i = 0; w->cfg != NULL && i < nano_config_n_apps(w->cfg); i++)
            if (w->apps[i] != NULL)
                shutdowns_check_deadlines(w, w->apps[i]);
        for (dp_app *a = w->draining; a != NULL; a = a->next)
            shutdowns_check_deadlines(w, a);
    }
    /* Wall time: a request whose response has not started by its deadline gets 500; once
     * its response has ended, its waitUntil work gets wall_time more, then it is cancelled
     * (its timers dropped, its slot released), as Workers bound waitUntil. */
    for (dp_flight *f = w->flights, *next; f != NULL; f = next) {
        next = f->next;
        if (f->version->iso == NULL)
            continue;
        uint64_t wall = f->version->cfg->limits.wall_ms;
        const char *event;
        if (f->is_ended) {
            if (now - f->ended_ms < wall)
                continue;
            event = "app.wait_until_limit";
        } else if (f->deadline_ms <= now && !dp_response_started(f->req)) {
            event = "app.wall_limit";
        } else {
            continue;
        }
        dp_app_stats *stats = f->stats;
        NANO_WARN(event, "app=%s worker=%d request_id=%llx wall_ms=%llu", f->app_name, w->index,
                  (unsigned long long)dp_request_id(f->req), (unsigned long long)wall);
        dp_stat_add(&stats->wall_kills, 1);
        rt_request_fail(f->version->iso, f->req, 500); /* request_done unlinks f */
    }
    if (now - w->last_heap_sample_ms < 1000)
        return;
    size_t n_apps = w->cfg != NULL ? nano_config_n_apps(w->cfg) : 0;
    iso_use *uses = NULL;
    size_t n_uses = 0, cap = 0, total = 0;
    for (size_t i = 0; i < n_apps; i++) {
        dp_app *app = w->apps[i];
        uint64_t heap = 0, external = 0;
        sample_heap(w, app->current, &heap, &external, &uses, &n_uses, &cap);
        for (dp_version *v = app->retired; v != NULL; v = v->next)
            sample_heap(w, v, &heap, &external, &uses, &n_uses, &cap);
        atomic_store(&app->stats->heap_used, heap);
        atomic_store(&app->stats->external_used, external);
        total += heap + external;
    }
    /* Over the budget: free the least recently used idle isolates (their module state goes;
     * the next request builds a fresh one). */
    if (w->opts.isolate_memory_budget > 0 && total > w->opts.isolate_memory_budget) {
        qsort(uses, n_uses, sizeof *uses, by_last_used);
        size_t evicted = 0;
        for (size_t i = 0; i < n_uses && total > w->opts.isolate_memory_budget; i++) {
            dp_version *v = uses[i].v;
            if (v->in_flight > 0 || v->iso == NULL || now - v->last_used_ms < 1000)
                continue;
            version_free_isolate(v);
            total -= uses[i].memory;
            evicted++;
        }
        if (evicted > 0)
            NANO_INFO("dp.isolates_evicted", "worker=%d evicted=%zu memory_bytes=%zu budget=%llu",
                      w->index, evicted, total,
                      (unsigned long long)w->opts.isolate_memory_budget);
    }
    nano_free(uses);
    w->last_heap_sample_ms = now;
}

/* --- the thread, its mailbox and its end ----------------------------------------------------- */

static void report_done(dp_worker *w)
{
    if (w->is_done_reported)
        return;
    w->is_done_reported = true;
    w->done(w->done_ud);
}

static void on_server_drained(dp_server *srv, void *ud)
{
    dp_worker *w = ud;
    (void)srv;
    /* Connections are gone; apps may still run shutdown events (their own timers bound them). */
    w->server_drained = true;
    if (w->draining == NULL)
        close_all(w);
}

static void begin_drain(dp_worker *w)
{
    w->order = ORDER_DRAIN;
    NANO_DEBUG("dp.worker_draining", "worker=%d", w->index);
    size_t n = w->cfg != NULL ? nano_config_n_apps(w->cfg) : 0;
    for (size_t i = 0; i < n; i++) {
        if (w->apps[i] != NULL)
            app_begin_drain(w->apps[i], w->cfg, i, false);
        w->apps[i] = NULL;
    }
    nano_config_unref(w->cfg);
    w->cfg = NULL; /* new requests: 503 while their app drains, then 404 */
    if (w->server != NULL)
        dp_server_drain(w->server, on_server_drained, w);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

/* Everything goes: servers, apps, isolates, handles. The loop then ends. */
static void close_all(dp_worker *w)
{
    if (w->is_closing)
        return;
    w->is_closing = true;
    if (w->server != NULL) {
        dp_server_close(w->server);
        w->server = NULL;
    }
    size_t n = w->cfg != NULL ? nano_config_n_apps(w->cfg) : 0;
    for (size_t i = 0; i < n; i++) {
        dp_app *app = w->apps[i];
        if (app == NULL)
            continue;
        queue_reject(app);
        if (app->current != NULL) {
            version_retire(app->current);
            app->current = NULL;
        }
        app->next = w->draining;
        w->draining = app;
    }
    nano_free(w->apps);
    w->apps = NULL;
    nano_config_unref(w->cfg);
    w->cfg = NULL;
    while (w->draining != NULL)
        app_finish(w->draining); /* fails what is left, frees isolates */
    w->reap_head = NULL;
    for (size_t k = 0; k < DP_POOL_CLASSES; k++) {
        rt_pool_free(w->pools[k]);
        w->pools[k] = NULL;
    }
    dp_client_close(w->http_client); /* after the isolates: none holds a transfer now */
    w->http_client = NULL;
    flush_access_log(w);
    /* After this no thread may wake us: uv_async_send on a closed handle aborts the process
     * (a forced shutdown orders every worker to abort, drained ones included). */
    pthread_mutex_lock(&w->mu);
    w->is_mailbox_closed = true;
    pthread_mutex_unlock(&w->mu);
    uv_close((uv_handle_t *)&w->wake, on_handle_closed);
    uv_close((uv_handle_t *)&w->reaper, on_handle_closed);
    uv_close((uv_handle_t *)&w->tick, on_handle_closed);
    uv_close((uv_handle_t *)&w->log_flush, on_handle_closed);
    report_done(w);
}

static void on_wake(uv_async_t *h)
{
    dp_worker *w = h->data;
    if (w->n_loading > 0) {
        w->is_wake_deferred = true; /* version_isolate wakes us again */
        return;
    }
    pthread_mutex_lock(&w->mu);
    nano_config *cfg = w->inbox_cfg;
    int order = w->inbox_order;
    w->inbox_cfg = NULL;
    w->inbox_order = ORDER_NONE;
    pthread_mutex_unlock(&w->mu);
    if (w->is_closing) {
        nano_config_unref(cfg);
        return;
    }
    if (cfg != NULL) {
        if (w->order == ORDER_NONE)
            apply_config(w, cfg);
        nano_config_unref(cfg);
    }
    if (order == ORDER_ABORT) {
        w->order = ORDER_ABORT;
        if (w->server != NULL)
            dp_server_abort_all(w->server);
        close_all(w);
    } else if (order == ORDER_DRAIN && w->order == ORDER_NONE) {
        begin_drain(w);
    }
}

static void worker_main(void *arg)
{
    dp_worker *w = arg;
    /* Draining apps finish through the reaper; when the last one is gone after a drain order
     * and the server has drained too, close everything. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* Leftover handles (a server freeing itself) close on later turns. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        NANO_WARN("dp.loop_busy_at_exit", "worker=%d detail=%s", w->index, "handles left open");
    nano_buf_fini(&w->access_log);
    nano_buf_fini(&w->access_kv);
}

static void worker_thread(void *arg)
{
    dp_worker *w = arg;
    dp_server_options so = {
        .host = w->opts.host,
        .fd = w->listen_fd,
        .limits = {.max_head = w->opts.max_head, .max_body = w->opts.max_body},
        .head_timeout_ms = w->opts.head_timeout_ms,
        .idle_timeout_ms = w->opts.idle_timeout_ms,
        .body_timeout_ms = w->opts.body_timeout_ms,
        .body_min_rate = w->opts.body_min_rate,
        .write_timeout_ms = w->opts.write_timeout_ms,
        .worker_index = (uint32_t)w->index,
        .quiet = true,
        .dispatch = dispatch,
        .on_request_end = on_request_end,
        .ud = w,
    };
    if (dp_client_new(&w->loop, &w->http_client) != 0)
        NANO_WARN("dp.http_client", "worker=%d detail=%s", w->index,
                  "the HTTP client could not be set up; each isolate makes its own");
    w->server = dp_server_new(&w->loop, &so);
    w->start_rc = dp_server_listen(w->server, &w->start_err);
    /* The first worker's load is the node's start-up check (dp_worker_start); the others load
     * once started, each with the code the first one compiled (the compile cache). */
    bool is_first = w->opts.preload == DP_PRELOAD_FIRST;
    if (w->start_rc == 0 && is_first && preload_apps(w, &w->start_err) != 0)
        w->start_rc = DP_WORKER_LOAD_FAILED;
    if (w->start_rc != 0) {
        dp_server_close(w->server);
        w->server = NULL;
    }
    uv_sem_post(&w->started);
    if (w->start_rc == 0 && w->opts.preload == DP_PRELOAD_AFTER_START) {
        nano_error ignored = {0}; /* logged (app.load_failed); the first request retries */
        (void)preload_apps(w, &ignored);
    }
    for (size_t k = 0; w->opts.preload != DP_PRELOAD_NONE && k < DP_POOL_CLASSES; k++)
        if (w->pools[k] != NULL)
            rt_pool_defer(w->pools[k]); /* the first requests before the pool's refills */
    if (w->start_rc != 0) {
        close_all(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        return;
    }
    worker_main(w);
}

int dp_worker_start(dp_worker **out, int index, int listen_fd, const dp_worker_options *opts,
                    nano_config *cfg, dp_worker_done_fn done, void *done_ud, nano_error *err)
{
    dp_worker *w = nano_xcalloc(1, sizeof *w);
    w->index = index;
    w->listen_fd = listen_fd;
    w->opts = *opts;
    w->done = done;
    w->done_ud = done_ud;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->watch.mu, NULL);
    dp_stats_init(&w->stats);
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_idle_init(&w->loop, &w->reaper);
    w->reaper.data = w;
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 250, 250);
    uv_check_init(&w->loop, &w->log_flush);
    w->log_flush.data = w;
    uv_check_start(&w->log_flush, on_log_flush);
    apply_config(w, cfg);
    uv_sem_init(&w->started, 0);
    /* The loop and its handles were made here; from now on only the thread touches them. */
    uv_thread_options_t to = {.flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = 8u << 20};
    int rc = uv_thread_create_ex(&w->thread, &to, worker_thread, w);
    if (rc != 0) {
        nano_error_set(err, rc, "thread_failed", "cannot start worker thread %d: %s", index,
                       uv_strerror(rc));
        /* Not started: nothing else references w; leak-free teardown would need the loop. */
        return rc;
    }
    uv_sem_wait(&w->started);
    uv_sem_destroy(&w->started);
    if (w->start_rc != 0) {
        *err = w->start_err;
        uv_thread_join(&w->thread);
        dp_stats_fini(&w->stats);
        int rc_start = w->start_rc;
        nano_free(w);
        if (rc_start == DP_WORKER_LOAD_FAILED)
            return DP_WORKER_LOAD_FAILED;
        return err->code != 0 ? err->code : -1;
    }
    *out = w;
    return 0;
}

/* Sends while holding the lock, so that the worker cannot close `wake` in between. */
void dp_worker_apply(dp_worker *w, nano_config *cfg)
{
    nano_config *stale = nano_config_ref(cfg);
    pthread_mutex_lock(&w->mu);
    if (!w->is_mailbox_closed) {
        stale = w->inbox_cfg;
        w->inbox_cfg = cfg;
        uv_async_send(&w->wake);
    }
    pthread_mutex_unlock(&w->mu);
    nano_config_unref(stale);
}

static void send_order(dp_worker *w, int order)
{
    pthread_mutex_lock(&w->mu);
    if (!w->is_mailbox_closed) {
        if (order > w->inbox_order)
            w->inbox_order = order;
        uv_async_send(&w->wake);
    }
    pthread_mutex_unlock(&w->mu);
}

void dp_worker_drain(dp_worker *w)
{
    send_order(w, ORDER_DRAIN);
}

void dp_worker_abort(dp_worker *w)
{
    send_order(w, ORDER_ABORT);
}

void dp_worker_join(dp_worker *w)
{
    uv_thread_join(&w->thread);
    nano_config_unref(w->inbox_cfg);
    dp_stats_fini(&w->stats);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->watch.mu);
    nano_free(w);
}

dp_stats *dp_worker_stats(dp_worker *w)
{
    return &w->stats;
}

rt_watch *dp_worker_watch(dp_worker *w)
{
    return &w->watch;
}

int dp_worker_cpu_clock(dp_worker *w, clockid_t *out)
{
    return pthread_getcpuclockid(w->thread, out);
}

void dp_worker_counts(dp_worker *w, size_t *conns, size_t *active_conns, size_t *requests)
{
    /* Read from another thread without a lock: only for progress lines in the log. */
    dp_server *srv = w->server;
    if (srv != NULL && !w->is_closing) {
        *conns += dp_server_n_conns(srv);
        *active_conns += dp_server_n_active_conns(srv);
        *requests += dp_server_n_requests(srv);
    }
}
