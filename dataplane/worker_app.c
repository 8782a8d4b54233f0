/* worker_app.c: a worker's apps and their versions (worker_int.h): the isolate of each version
 * (made on the first request, from the pool of its memory class), the shutdown event, the
 * reaper that frees isolates from a clean stack, and the config changes that add, update and
 * drain apps (docs/architecture.md: drains and shutdown). */
#define _GNU_SOURCE
#include "worker_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* --- isolates ----------------------------------------------------------------------------------
 */

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
    dp_worker__reap_schedule(
        v); /* the version or its app may be done: checked from a clean stack */
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
    NANO_INFO("app.shutdown_event",
              "app=%s worker=%d sha256=%.12s why=%s in_flight=%zu "
              "timeout_ms=%llu",
              v->app->name, w->index, v->cfg->code_sha256, why, v->in_flight,
              (unsigned long long)timeout_ms);
    rt_isolate_shutdown(v->iso, wall_clock_ms() + timeout_ms, on_shutdown_settled, v);
}

/* From the tick: waits past their deadline are over (logged); their versions are checked. */
void dp_worker__shutdowns_check_deadlines(dp_worker *w, dp_app *app)
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
            dp_worker__reap_schedule(v);
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
        used[pool_class(nano_config_app(w->cfg, i)->spec.limits.memory_mb)] = true;
    for (size_t k = 0; k < DP_POOL_CLASSES; k++) {
        if (used[k] && w->pools[k] == NULL) {
            w->pools[k] = rt_pool_new(&w->loop, w->opts.pool_size, (size_t)DP_POOL_BASE_MB << k);
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
        .name = c->spec.name,
        .main_path = c->main_path,
        .main_source = c->code,
        .main_source_len = c->code_len,
        .imports = c->imports,
        .n_imports = c->n_imports,
        .env = &c->env,
        .node_compat = c->spec.node_compat,
        .heap_limit_mb = (size_t)c->spec.limits.memory_mb,
        .pool = w->pools[pool_class(c->spec.limits.memory_mb)],
        .watch = is_preload ? NULL : &w->watch,
        .cpu_limit_ms = c->spec.limits.cpu_ms,
        .wall_limit_ms = c->spec.limits.wall_ms,
        .http_client = w->http_client,
        .subrequests = c->spec.limits.subrequests,
        .egress_node = w->opts.egress,
        .egress_app = c->spec.egress,
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
            NANO_ERROR("app.load_failed", "app=%s worker=%d error_id=%s error=%s", c->spec.name,
                       w->index, err.id, err.message);
            if (w->opts.load_errors != NULL) {
                /* For /status and nanocp: one line, no secret (it may be what was thrown). */
                nano_error shown = err;
                nano_check_one_line(err.message, c->main_path, shown.message, sizeof shown.message);
                nano_check_mask_secrets(&c->env, shown.message, sizeof shown.message);
                dp_load_errors_set(w->opts.load_errors, c, &shown);
            }
        }
        if (err_out != NULL)
            *err_out = err;
        return -1;
    }
    uint64_t us = (uv_hrtime() - t0) / 1000;
    rt_hooks hooks = {dp_worker__on_request_done, dp_worker__on_cpu_exceeded, dp_worker__on_broken,
                      v};
    rt_isolate_set_hooks(v->iso, &hooks);
    rt_isolate_set_watch(v->iso, &w->watch, c->spec.limits.cpu_ms);
    dp_stat_add(&v->app->stats->isolates, 1);
    dp_stat_add(&v->app->stats->isolate_creates, 1);
    dp_stat_add(&v->app->stats->isolate_create_us, (int64_t)us);
    if (is_preload)
        NANO_INFO("dp.app_loaded", "app=%s worker=%d path=%s env_entries=%zu load_us=%llu",
                  c->spec.name, w->index, c->main_path, c->env.n_entries, (unsigned long long)us);
    else
        NANO_DEBUG("app.isolate_created", "app=%s worker=%d sha256=%.12s create_us=%llu",
                   c->spec.name, w->index, c->code_sha256, (unsigned long long)us);
    return 0;
}

int dp_worker__version_isolate(dp_version *v)
{
    return version_isolate_ex(v, false, NULL);
}

/* Loads every app of the worker's config into an isolate (opts.preload). Returns 0, or -1
 * with err when one does not load (the others are still loaded). */
int dp_worker__preload_apps(dp_worker *w, nano_error *err)
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

void dp_worker__version_free_isolate(dp_version *v)
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
    dp_worker__version_free_isolate(v);
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
            dp_worker__version_free_isolate(v);
            v->is_broken = false;
        }
        /* A redeploy's old version goes once idle; a draining app's versions go in
         * dp_worker__app_finish, after its shutdown event. */
        if (v->is_retiring && v->in_flight == 0 && app->state == DP_APP_ACTIVE &&
            version_shutdown_over(v)) {
            for (dp_version **pp = &app->retired; *pp != NULL; pp = &(*pp)->next) {
                if (*pp == v) {
                    *pp = v->next;
                    break;
                }
            }
            NANO_DEBUG("app.version_retired", "app=%s worker=%d sha256=%.12s", app->name, w->index,
                       v->cfg->code_sha256);
            version_free(v);
        }
        dp_worker__app_maybe_finish_drain(app);
    }
    uv_idle_stop(&w->reaper);
}

void dp_worker__reap_schedule(dp_version *v)
{
    if (v->is_reap_queued)
        return;
    dp_worker *w = v->app->w;
    v->is_reap_queued = true;
    v->reap_next = w->reap_head;
    w->reap_head = v;
    uv_idle_start(&w->reaper, on_reap);
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

void dp_worker__version_retire(dp_version *v)
{
    dp_app *app = v->app;
    v->is_retiring = true;
    v->next = app->retired;
    app->retired = v;
    version_shutdown(v, v->cfg->spec.limits.drain_timeout_ms, "redeploy");
    if (v->in_flight == 0)
        dp_worker__reap_schedule(v);
}

static void on_drain_timer_closed(uv_handle_t *h)
{
    app_free(h->data);
}

void dp_worker__app_finish(dp_app *app)
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
        dp_worker__close_all(w);
    if (app->has_drain_timer) {
        uv_timer_stop(&app->drain_timer);
        uv_close((uv_handle_t *)&app->drain_timer, on_drain_timer_closed);
    } else {
        app_free(app);
    }
}

/* Draining: the shutdown events went out as the drain began; once no request is in flight
 * (state shutting_down) and their waits are over, the end. */
void dp_worker__app_maybe_finish_drain(dp_app *app)
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
    dp_worker__app_finish(app);
}

static void on_drain_timeout(uv_timer_t *t)
{
    dp_app *app = t->data;
    NANO_WARN("app.drain_timeout", "app=%s worker=%d in_flight=%zu state=%s", app->name,
              app->w->index, app->in_flight, dp_app_state_name(app->state));
    dp_stat_add(&app->stats->drain_timeouts, 1); /* read by the control-plane client's ack */
    app->state = DP_APP_SHUTDOWN;
    dp_worker__app_finish(app); /* fails whatever is left */
}

/* with_timer: bounded by the app's drain timeout (an app removed from the config); a process
 * shutdown is bounded by the control thread's --drain-timeout instead, which closes what is
 * left. */
void dp_worker__app_begin_drain(dp_app *app, nano_config *old_cfg, size_t old_index,
                                bool with_timer)
{
    dp_worker *w = app->w;
    uint64_t timeout = app->current->cfg->spec.limits.drain_timeout_ms;
    app->state = DP_APP_DRAINING;
    atomic_store(&app->stats->state, DP_APP_DRAINING);
    app->route_cfg = nano_config_ref(old_cfg);
    app->route_index = old_index;
    dp_version *v = app->current;
    app->current = NULL;
    v->is_retiring = true;
    v->next = app->retired;
    app->retired = v;
    dp_worker__queue_reject(app);
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
    dp_worker__reap_schedule(v); /* checks the drain from a clean stack */
}

void dp_worker__apply_config(dp_worker *w, nano_config *cfg)
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
        if (old != NULL && nano_config_find(old, c->spec.name, &oi) != NULL &&
            w->apps[oi] != NULL) {
            app = w->apps[oi];
            kept[oi] = true;
        }
        if (app == NULL) {
            app = app_new(w, c->spec.name);
            app->current = version_new(app, cfg, i);
        } else {
            dp_version *v = app->current;
            const nano_app_config *prev = v->cfg;
            bool same = nano_app_config_same_code(prev, c) &&
                        prev->spec.node_compat == c->spec.node_compat &&
                        prev->spec.limits.memory_mb == c->spec.limits.memory_mb;
            if (same) {
                /* Same deployment: keep the isolate and its module state. */
                bool env_changed = !nano_env_equal(&prev->env, &c->env);
                nano_config *prev_ref = v->cfg_ref;
                v->cfg_ref = nano_config_ref(cfg);
                v->cfg = c;
                if (v->iso != NULL) {
                    if (env_changed)
                        rt_isolate_set_env(v->iso, &c->env);
                    rt_isolate_set_watch(v->iso, &w->watch, c->spec.limits.cpu_ms);
                    rt_isolate_set_outbound(v->iso, c->spec.egress, c->spec.limits.subrequests);
                }
                nano_config_unref(prev_ref);
            } else {
                /* A redeploy: new requests go to the new code now; the old version finishes
                 * what it has, then goes. */
                app->current = version_new(app, cfg, i);
                dp_worker__version_retire(v);
                NANO_DEBUG("app.redeploy", "app=%s worker=%d from=%.12s to=%.12s", c->spec.name,
                           w->index, prev->code_sha256, c->code_sha256);
            }
        }
        apps[i] = app;
    }
    for (size_t oi = 0; oi < n_old; oi++) {
        if (!kept[oi] && w->apps[oi] != NULL)
            dp_worker__app_begin_drain(w->apps[oi], old, oi, true);
    }
    nano_free(kept);
    nano_free(w->apps);
    w->apps = apps;
    w->cfg = nano_config_ref(cfg);
    nano_config_unref(old);
    sync_pools(w);
    for (size_t i = 0; i < n_new; i++)
        if (apps[i]->q_len > 0)
            dp_worker__run_queued(apps[i]); /* a raised max_concurrent lets some in */
}
