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
#include "worker_int.h"

#include <stdlib.h>
#include <string.h>

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

/* --- runtime hooks -------------------------------------------------------------------------- */

void dp_worker__on_request_done(void *ud, dp_request *req)
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
        dp_worker__run_queued(app); /* may start requests: runs JS, which the runtime allows here */
    if (v->in_flight == 0 && (v->is_retiring || app->state != DP_APP_ACTIVE))
        dp_worker__reap_schedule(v);
}

void dp_worker__on_cpu_exceeded(void *ud, dp_request *req)
{
    dp_version *v = ud;
    (void)req;
    dp_stat_add(&v->app->stats->cpu_kills, 1);
}

void dp_worker__on_broken(void *ud)
{
    dp_version *v = ud;
    dp_stat_add(&v->app->stats->memory_kills, 1);
    NANO_WARN("app.isolate_discarded", "app=%s worker=%d reason=memory_limit in_flight=%zu",
              v->app->name, v->app->w->index, v->in_flight);
    v->is_broken = true;
    dp_worker__reap_schedule(v);
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
    int loaded = dp_worker__version_isolate(v);
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
    f->deadline_ms = now_ms(w) + v->cfg->spec.limits.wall_ms;
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

void dp_worker__run_queued(dp_app *app)
{
    uint32_t max = app->current != NULL ? app->current->cfg->spec.limits.max_concurrent : 0;
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
void dp_worker__queue_reject(dp_app *app)
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
            for (size_t k = 0; k < h->value.len && h->value.ptr[k] >= '0' && h->value.ptr[k] <= '9';
                 k++)
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
    const nano_limits *lim = &app->current->cfg->spec.limits;
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
        dp_worker__access_line(w, f, req, status, us, failed);
    if (f != NULL) {
        f->is_ended = true;
        f->ended_ms = now_ms(w);
        flight_maybe_free(f, req);
    }
}

/* --- the tick: wall-time limits, heap sampling, idle isolate eviction ------------------------- */

typedef struct iso_use {
    dp_version *v;
    size_t memory; /* heap and ArrayBuffer bytes: what freeing it gives back */
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
    atomic_fetch_add_explicit(&w->ticks, 1, memory_order_relaxed);
    dp_worker__flush_access_log(w);
    if (w->n_shutdowns_pending > 0) {
        for (size_t i = 0; w->cfg != NULL && i < nano_config_n_apps(w->cfg); i++)
            if (w->apps[i] != NULL)
                dp_worker__shutdowns_check_deadlines(w, w->apps[i]);
        for (dp_app *a = w->draining; a != NULL; a = a->next)
            dp_worker__shutdowns_check_deadlines(w, a);
    }
    /* Wall time: a request whose response has not started by its deadline gets 500; once
     * its response has ended, its waitUntil work gets wall_time more, then it is cancelled
     * (its timers dropped, its slot released), as Workers bound waitUntil. */
    for (dp_flight *f = w->flights, *next; f != NULL; f = next) {
        next = f->next;
        if (f->version->iso == NULL)
            continue;
        uint64_t wall = f->version->cfg->spec.limits.wall_ms;
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
            dp_worker__version_free_isolate(v);
            total -= uses[i].memory;
            evicted++;
        }
        if (evicted > 0)
            NANO_INFO("dp.isolates_evicted", "worker=%d evicted=%zu memory_bytes=%zu budget=%llu",
                      w->index, evicted, total, (unsigned long long)w->opts.isolate_memory_budget);
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
    atomic_store(&w->is_finished, true);
    w->done(w->done_ud);
}

static void on_server_drained(dp_server *srv, void *ud)
{
    dp_worker *w = ud;
    (void)srv;
    /* Connections are gone; apps may still run shutdown events (their own timers bound them). */
    w->server_drained = true;
    if (w->draining == NULL)
        dp_worker__close_all(w);
}

static void begin_drain(dp_worker *w)
{
    w->order = ORDER_DRAIN;
    NANO_DEBUG("dp.worker_draining", "worker=%d", w->index);
    size_t n = w->cfg != NULL ? nano_config_n_apps(w->cfg) : 0;
    for (size_t i = 0; i < n; i++) {
        if (w->apps[i] != NULL)
            dp_worker__app_begin_drain(w->apps[i], w->cfg, i, false);
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
void dp_worker__close_all(dp_worker *w)
{
    if (w->is_closing)
        return;
    w->is_closing = true;
    if (w->server != NULL) {
        dp_server_close(w->server, NULL, NULL);
        w->server = NULL;
    }
    size_t n = w->cfg != NULL ? nano_config_n_apps(w->cfg) : 0;
    for (size_t i = 0; i < n; i++) {
        dp_app *app = w->apps[i];
        if (app == NULL)
            continue;
        dp_worker__queue_reject(app);
        if (app->current != NULL) {
            dp_worker__version_retire(app->current);
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
        dp_worker__app_finish(w->draining); /* fails what is left, frees isolates */
    w->reap_head = NULL;
    for (size_t k = 0; k < DP_POOL_CLASSES; k++) {
        rt_pool_free(w->pools[k]);
        w->pools[k] = NULL;
    }
    dp_client_close(w->http_client); /* after the isolates: none holds a transfer now */
    w->http_client = NULL;
    dp_worker__flush_access_log(w);
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
        w->is_wake_deferred = true; /* dp_worker__version_isolate wakes us again */
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
            dp_worker__apply_config(w, cfg);
        nano_config_unref(cfg);
    }
    if (order == ORDER_ABORT) {
        w->order = ORDER_ABORT;
        if (w->server != NULL)
            dp_server_abort_all(w->server);
        dp_worker__close_all(w);
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
    if (w->start_rc == 0 && is_first && dp_worker__preload_apps(w, &w->start_err) != 0)
        w->start_rc = DP_WORKER_LOAD_FAILED;
    if (w->start_rc != 0) {
        dp_server_close(w->server, NULL, NULL);
        w->server = NULL;
    }
    uv_sem_post(&w->started);
    if (w->start_rc == 0 && w->opts.preload == DP_PRELOAD_AFTER_START) {
        nano_error ignored = {0}; /* logged (app.load_failed); the first request retries */
        (void)dp_worker__preload_apps(w, &ignored);
    }
    for (size_t k = 0; w->opts.preload != DP_PRELOAD_NONE && k < DP_POOL_CLASSES; k++)
        if (w->pools[k] != NULL)
            rt_pool_defer(w->pools[k]); /* the first requests before the pool's refills */
    if (w->start_rc != 0) {
        dp_worker__close_all(w);
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
    uv_check_start(&w->log_flush, dp_worker__on_log_flush);
    dp_worker__apply_config(w, cfg);
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

void dp_worker_liveness(dp_worker *w, uint64_t *ticks, bool *is_finished)
{
    *ticks = atomic_load_explicit(&w->ticks, memory_order_relaxed);
    *is_finished = atomic_load(&w->is_finished);
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
