/* main.c: nano-dp's process and its control thread: parse the command line, build the config
 * (one APP.js, a nano.json file watched for changes, or the control plane's), start V8, the
 * worker threads, the watchdog and the status port; reload the config on change or SIGHUP (a
 * bad file is rejected and the running config stays); drain gracefully on SIGTERM/SIGINT
 * (docs/nano-dp.md#shutdown).
 *
 * Shutdown phases, each logged with counts:
 *   dp.shutdown_begin   stop accepting, idle connections closed, in-flight requests finish
 *   dp.shutdown_waiting once a second while work remains
 *   dp.shutdown_done    all drained: exit 0
 *   dp.shutdown_forced  --drain-timeout passed: everything left is closed, exit 1
 *   dp.shutdown_stuck   a worker did not close within DP_ABORT_GRACE_MS of that (its thread
 *                       is inside JS or native code that does not return): exit 1 anyway
 * A second SIGINT exits at once with 130 (an operator at a terminal who means it). */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "alloc.h"
#include "buf.h"
#include "check.h"
#include "check_cmd.h"
#include "config.h"
#include "control/code_cache.h"
#include "control/cp_client.h"
#include "control/file_source.h"
#include "egress_node.h"
#include "env.h"
#include "file.h"
#include "load_errors.h"
#include "log.h"
#include "options.h"
#include "runtime/runtime.h"
#include "server/server.h"
#include "status.h"
#include "supervisor.h"
#include "watchdog.h"
#include "worker.h"

enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130, NANO_CP_NODE_MAX = 63 };

/* How long workers get to close everything after a forced shutdown before the process exits
 * without them. */
#define DP_ABORT_GRACE_MS 2000

typedef struct dp_main {
    uv_loop_t *loop;
    dp_options opts;
    rt_isolate *app;  /* nano-dp run */
    nano_config *cfg; /* the applied config */
    dp_worker **workers;
    size_t n_workers;
    atomic_size_t n_workers_done;
    uv_async_t workers_done; /* a worker finished (drained or aborted) */
    dp_watchdog *watchdog;
    dp_supervisor *supervisor; /* systemd: READY, STOPPING, STATUS, WATCHDOG (supervisor.h) */
    dp_server *status;
    dp_status_source status_src;
    dp_file_source *file_source;
    dp_cp_client *cp;            /* --control-plane */
    uv_async_t cp_config;        /* the client built a config */
    char *code_dir_tmp;          /* the private code dir we made (removed at exit) */
    dp_load_errors *load_errors; /* versions refused by the load check, per app */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain_timer;    /* fires at the drain deadline */
    uv_timer_t progress_timer; /* a progress line each second while draining */
    bool draining;
    bool is_forced;
    bool is_timed_out; /* run: --timeout passed */
    int exit_code;
    uint64_t drain_started_ms;
} dp_main;

static void log_counts(dp_main *m, nano_log_level level, const char *event)
{
    size_t conns = 0, active = 0, requests = 0;
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_counts(m->workers[i], &conns, &active, &requests);
    NANO_LOG(level, event,
             "conns=%zu active_conns=%zu requests=%zu workers_left=%zu elapsed_ms=%llu", conns,
             active, requests, m->n_workers - atomic_load(&m->n_workers_done),
             (unsigned long long)(uv_now(m->loop) - m->drain_started_ms));
}

static void close_if(uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* The control-plane client goes first when shutting down: nanocp stops seeing this node's
 * status, and no config change starts during the drain. */
static void stop_cp(dp_main *m)
{
    if (m->cp == NULL)
        return;
    m->status_src.cp = NULL;
    dp_cp_client_stop(m->cp);
    m->cp = NULL;
}

/* Every worker has finished: stop the control thread's handles; the loop then ends. */
static void stop_handles(dp_main *m)
{
    /* The watchdog reads each worker's watch: stop it before the workers are freed. */
    dp_watchdog_stop(m->watchdog);
    m->watchdog = NULL;
    dp_supervisor_close(m->supervisor); /* it reads the workers too */
    m->supervisor = NULL;
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_join(m->workers[i]);
    m->n_workers = 0;
    dp_file_source_stop(m->file_source);
    m->file_source = NULL;
    stop_cp(m);
    close_if((uv_handle_t *)&m->cp_config);
    if (m->status != NULL)
        dp_server_close(m->status, NULL, NULL);
    m->status = NULL;
    close_if((uv_handle_t *)&m->drain_timer);
    close_if((uv_handle_t *)&m->progress_timer);
    close_if((uv_handle_t *)&m->sigterm);
    close_if((uv_handle_t *)&m->sigint);
    close_if((uv_handle_t *)&m->sighup);
    close_if((uv_handle_t *)&m->workers_done);
}

static void on_worker_done(void *ud)
{
    dp_main *m = ud; /* on the worker's thread: only the atomic and the async */
    atomic_fetch_add(&m->n_workers_done, 1);
    uv_async_send(&m->workers_done);
}

static void on_workers_done(uv_async_t *h)
{
    dp_main *m = h->data;
    if (atomic_load(&m->n_workers_done) < m->n_workers)
        return;
    if (m->is_forced) {
        m->exit_code = 1;
    } else {
        log_counts(m, NANO_LOG_INFO, "dp.shutdown_done");
        m->exit_code = m->draining ? 0 : 1;
    }
    stop_handles(m);
}

/* Workers that do not answer the abort order cannot be joined or freed: exit from here, the
 * log lines written (each is one write(2)); the kernel closes their sockets. */
static void on_abort_grace(uv_timer_t *t)
{
    dp_main *m = t->data;
    log_counts(m, NANO_LOG_ERROR, "dp.shutdown_stuck");
    _exit(1);
}

static void on_drain_deadline(uv_timer_t *t)
{
    dp_main *m = t->data;
    log_counts(m, NANO_LOG_WARN, "dp.shutdown_forced");
    m->is_forced = true;
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_abort(m->workers[i]); /* a worker that has already finished ignores it */
    uv_timer_start(&m->drain_timer, on_abort_grace, DP_ABORT_GRACE_MS, 0);
}

static void on_progress(uv_timer_t *t)
{
    dp_main *m = t->data;
    log_counts(m, NANO_LOG_INFO, "dp.shutdown_waiting");
    size_t conns = 0, active = 0, requests = 0;
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_counts(m->workers[i], &conns, &active, &requests);
    dp_supervisor_draining(m->supervisor, requests, conns, uv_now(m->loop) - m->drain_started_ms);
}

static void begin_shutdown(dp_main *m, const char *why)
{
    m->draining = true;
    m->status_src.is_draining = true;
    m->drain_started_ms = uv_now(m->loop);
    size_t conns = 0, active = 0, requests = 0;
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_counts(m->workers[i], &conns, &active, &requests);
    NANO_INFO("dp.shutdown_begin",
              "signal=%s drain_timeout_ms=%llu conns=%zu active_conns=%zu requests=%zu", why,
              (unsigned long long)m->opts.drain_timeout_ms, conns, active, requests);
    dp_supervisor_stopping(m->supervisor, requests, conns);
    uv_timer_start(&m->drain_timer, on_drain_deadline, m->opts.drain_timeout_ms, 0);
    uv_timer_start(&m->progress_timer, on_progress, 1000, 1000);
    dp_file_source_stop(m->file_source);
    m->file_source = NULL;
    stop_cp(m);
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_drain(m->workers[i]);
}

/* --- config: the file source and reloads ------------------------------------------------ */

/* Counts what a new config changes, for the log line. */
static void diff_counts(const nano_config *old, const nano_config *cfg, size_t *added,
                        size_t *changed, size_t *env_changed, size_t *removed)
{
    *added = *changed = *env_changed = *removed = 0;
    for (size_t i = 0; i < nano_config_n_apps(cfg); i++) {
        const nano_app_config *a = nano_config_app(cfg, i);
        const nano_app_config *b = old != NULL ? nano_config_find(old, a->spec.name, NULL) : NULL;
        if (b == NULL)
            (*added)++;
        else if (!nano_app_config_same_code(a, b))
            (*changed)++;
        else if (!nano_env_equal(&a->env, &b->env))
            (*env_changed)++;
    }
    for (size_t i = 0; old != NULL && i < nano_config_n_apps(old); i++)
        if (nano_config_find(cfg, nano_config_app(old, i)->spec.name, NULL) == NULL)
            (*removed)++;
}

/* --- the load check of new versions -------------------------------------------------------

 * A version of an app that arrives while the node serves becomes active only once it loads:
 * `nano-dp check` (this very binary, in a child process, shared/check.h) compiles it, runs
 * its top level under the app's limits and finds its fetch handler. A nano.json reload with
 * a version that does not load is refused whole, as an invalid file is; from the control
 * plane, the config is applied with that app's previous code kept (other changes go in). The
 * refusal is reported in /status and to nanocp until a version that loads arrives. */

/* Whether c's code is not what the applied config runs for its app. */
static bool code_is_new(const nano_config *applied, const nano_app_config *c)
{
    const nano_app_config *prev = applied != NULL ? nano_config_find(applied, c->spec.name, NULL)
                                                  : NULL;
    return prev == NULL || !nano_app_config_same_code(prev, c) ||
           prev->spec.node_compat != c->spec.node_compat;
}

/* Checks running at once: a reload that changes many apps is checked in parallel. */
static size_t parallel_checks(void)
{
    unsigned n = uv_available_parallelism();
    return n < 2 ? 2 : n > 8 ? 8 : (size_t)n;
}

/* check_apps: the verdicts on apps[0..n) into rcs[] and errs[]: 0 when it loads (or could
 * not be checked: logged, the worker's own load still decides), NANO_EINVAL with its error
 * when it does not (remembered in load_errors). A refusal already known for the same code
 * and limits is not checked again (every later delta of the control plane would). */
static void check_apps(dp_main *m, const nano_app_config **apps, size_t n, int *rcs,
                       nano_error *errs)
{
    size_t width = parallel_checks();
    nano_check **running = nano_xcalloc(width, sizeof *running);
    for (size_t base = 0; base < n; base += width) {
        size_t k = n - base < width ? n - base : width;
        uint64_t t0 = uv_hrtime();
        for (size_t x = 0; x < k; x++) {
            const nano_app_config *c = apps[base + x];
            dp_load_error known;
            running[x] = NULL;
            if (dp_load_errors_known(m->load_errors, c, &known)) {
                rcs[base + x] = NANO_EINVAL;
                errs[base + x] = known.err;
                continue;
            }
            nano_check_options co = {.checker = "/proc/self/exe", /* this binary, even if
                                                                   * replaced on disk */
                                     .path = c->main_path,
                                     .name = c->spec.name,
                                     .cpu_ms = nano_check_cpu_ms(c->spec.limits.cpu_ms),
                                     .memory_mb = c->spec.limits.memory_mb,
                                     .node_compat = c->spec.node_compat,
                                     .env = &c->env};
            rcs[base + x] = nano_check_start(&co, &running[x], &errs[base + x]);
        }
        for (size_t x = 0; x < k; x++) {
            const nano_app_config *c = apps[base + x];
            nano_error *err = &errs[base + x];
            if (running[x] == NULL)
                continue;
            int rc = rcs[base + x] = nano_check_finish(running[x], err);
            if (rc == 0)
                NANO_INFO("dp.version_checked", "app=%s sha256=%.12s check_ms=%llu", c->spec.name,
                          c->code_sha256, (unsigned long long)((uv_hrtime() - t0) / 1000000));
            else if (rc == NANO_EINVAL)
                dp_load_errors_set(m->load_errors, c, err);
        }
        for (size_t x = 0; x < k; x++) {
            const nano_app_config *c = apps[base + x];
            if (rcs[base + x] != 0 && rcs[base + x] != NANO_EINVAL) {
                NANO_WARN("dp.version_unchecked", "app=%s sha256=%.12s error_id=%s error=%s",
                          c->spec.name, c->code_sha256, errs[base + x].id, errs[base + x].message);
                rcs[base + x] = 0;
            }
        }
    }
    nano_free(running);
}

/* vet_config: the load check for each app of cfg whose code the applied config does not run.
 * Returns how many were refused (each logged as dp.version_refused); their names (borrowed
 * from cfg) in *refused, an array the caller frees; the first one's error in *first. An app
 * whose new code loads loses its earlier refusal; one whose code is already applied keeps
 * only a refusal of that very code (its worker could not load it). The caller forgets the
 * refusals of apps gone from the config it applies (dp_load_errors_retain). */
static size_t vet_config(dp_main *m, const nano_config *cfg, const char *trigger,
                         const char ***refused, nano_error *first)
{
    size_t n_apps = nano_config_n_apps(cfg), n_new = 0, n = 0;
    const nano_app_config **to_check = nano_xcalloc(n_apps + 1, sizeof *to_check);
    for (size_t i = 0; i < n_apps; i++) {
        const nano_app_config *c = nano_config_app(cfg, i);
        if (code_is_new(m->cfg, c))
            to_check[n_new++] = c;
        else
            dp_load_errors_clear(m->load_errors, c->spec.name, c);
    }
    int *rcs = nano_xcalloc(n_new + 1, sizeof *rcs);
    nano_error *errs = nano_xcalloc(n_new + 1, sizeof *errs);
    check_apps(m, to_check, n_new, rcs, errs);
    *refused = nano_xcalloc(n_new + 1, sizeof **refused);
    for (size_t i = 0; i < n_new; i++) {
        const nano_app_config *c = to_check[i];
        if (rcs[i] == 0) {
            dp_load_errors_clear(m->load_errors, c->spec.name, NULL);
            continue;
        }
        const nano_app_config *prev = m->cfg != NULL ? nano_config_find(m->cfg, c->spec.name, NULL)
                                                     : NULL;
        NANO_ERROR("dp.version_refused",
                   "app=%s trigger=%s sha256=%.12s serving=%.12s error_id=%s error=%s",
                   c->spec.name, trigger, c->code_sha256, prev != NULL ? prev->code_sha256 : "none",
                   errs[i].id, errs[i].message);
        if (n == 0)
            *first = errs[i];
        (*refused)[n++] = c->spec.name;
    }
    nano_free(errs);
    nano_free(rcs);
    nano_free(to_check);
    return n;
}

/* apply_config: hands cfg (taken) to every worker, makes it the applied config with this
 * version, and logs what changed. Every source (the file, the control plane) ends here. */
static void apply_config(dp_main *m, nano_config *cfg, uint64_t version, const char *trigger)
{
    size_t added, changed, env_changed, removed;
    diff_counts(m->cfg, cfg, &added, &changed, &env_changed, &removed);
    for (size_t i = 0; i < m->n_workers; i++)
        dp_worker_apply(m->workers[i], cfg);
    nano_config_unref(m->cfg);
    m->cfg = cfg;
    m->status_src.config_version = version;
    m->status_src.n_apps = nano_config_n_apps(cfg);
    m->status_src.config_reloads++;
    NANO_INFO(
        "dp.config_applied",
        "trigger=%s version=%llu apps=%zu added=%zu redeployed=%zu env_changed=%zu removed=%zu",
        trigger, (unsigned long long)version, nano_config_n_apps(cfg), added, changed, env_changed,
        removed);
    dp_supervisor_ready(m->supervisor, m->status_src.n_apps, version);
}

/* The file source watches the module files of the applied config and, when a reload was
 * refused because a module does not load, those of the refused one: fixing it is a change. */
static void watch_modules(dp_main *m, const nano_config *refused)
{
    const nano_config *cfgs[] = {m->cfg, refused};
    dp_file_source_watch(m->file_source, cfgs, refused != NULL ? 2 : 1);
}

static void reload(dp_main *m, const char *why)
{
    if (m->draining)
        return;
    nano_error err = {0};
    nano_config *cfg = NULL;
    uint64_t version = nano_config_version(m->cfg) + 1;
    if (nano_config_load_json(m->opts.config_path, version, &cfg, &err) != 0) {
        m->status_src.config_rejects++;
        NANO_ERROR("dp.config_rejected", "trigger=%s version_kept=%llu error_id=%s error=%s", why,
                   (unsigned long long)nano_config_version(m->cfg), err.id, err.message);
        watch_modules(m, NULL); /* a directory replaced meanwhile is watched anew */
        return;
    }
    /* A version that does not load refuses the file whole, like any other error in it. */
    const char **refused = NULL;
    if (vet_config(m, cfg, why, &refused, &err) > 0) {
        m->status_src.config_rejects++;
        NANO_ERROR("dp.config_rejected", "trigger=%s version_kept=%llu app=%s error_id=%s error=%s",
                   why, (unsigned long long)nano_config_version(m->cfg), refused[0], err.id,
                   err.message);
        nano_free(refused);
        watch_modules(m, cfg);
        nano_config_unref(cfg);
        return;
    }
    nano_free(refused);
    dp_load_errors_retain(m->load_errors, cfg);
    apply_config(m, cfg, version, why);
    watch_modules(m, NULL);
}

/* A config built by the control-plane client: applied as a reload is, versioned by the
 * config log's seq. */
static void on_cp_config(uv_async_t *h)
{
    dp_main *m = h->data;
    uint64_t seq = 0;
    nano_config *cfg = m->cp != NULL ? dp_cp_client_take(m->cp, &seq) : NULL;
    if (cfg == NULL || m->draining) {
        nano_config_unref(cfg);
        return;
    }
    /* The node's first config is not checked here: nanocp checked each version when it was
     * deployed, there is no previous version to keep, and a worker that cannot load one
     * reports it the same way (app.load_failed, load_error). Later versions are. */
    const char **refused = NULL;
    nano_error err = {0};
    size_t n = m->status_src.is_ready ? vet_config(m, cfg, "control-plane", &refused, &err) : 0;
    if (n > 0) {
        nano_config *kept = NULL;
        if (nano_config_keep_code(cfg, m->cfg, refused, n, &kept, &err) == 0) {
            nano_config_unref(cfg);
            cfg = kept;
        } else {
            NANO_ERROR("dp.version_keep_failed", "error_id=%s error=%s", err.id, err.message);
        }
    }
    nano_free(refused);
    dp_load_errors_retain(m->load_errors, cfg);
    m->status_src.is_ready = true;
    apply_config(m, cfg, seq, "control-plane"); /* the first: READY=1 */
}

static void on_config_file_changed(void *ud, const char *trigger)
{
    reload(ud, trigger);
}

static void on_signal(uv_signal_t *s, int signum)
{
    dp_main *m = s->data;
    if (signum == SIGHUP) {
        if (m->opts.config_path != NULL) {
            dp_supervisor_reloading(m->supervisor);
            reload(m, "SIGHUP"); /* applied or refused, the node serves a config */
            dp_supervisor_ready(m->supervisor, m->status_src.n_apps, m->status_src.config_version);
        } else
            NANO_INFO("dp.sighup_ignored", "detail=%s", "no --config file to reload");
        return;
    }
    if (!m->draining) {
        begin_shutdown(m, signum == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    if (signum == SIGINT) {
        log_counts(m, NANO_LOG_WARN, "dp.shutdown_interrupted");
        _exit(EXIT_INTERRUPTED);
    }
    NANO_INFO("dp.shutdown_already", "signal=SIGTERM");
}

/* build_env: env files in order (later files win), then .env.NAME beside the app (--env NAME),
 * then --var (wins over files). */
static int build_env(const dp_options *o, nano_env *env, nano_error *err)
{
    for (size_t i = 0; i < o->n_env_files; i++)
        if (nano_env_load_dotenv(env, o->env_files[i], err) != 0)
            return -1;
    if (o->env_name != NULL && o->app_path != NULL) {
        const char *slash = strrchr(o->app_path, '/');
        char path[4096];
        snprintf(path, sizeof path, "%.*s.env.%s", slash ? (int)(slash - o->app_path + 1) : 0,
                 o->app_path, o->env_name);
        if (nano_env_load_dotenv(env, path, err) != 0)
            return -1;
    }
    for (size_t i = 0; i < o->n_vars; i++)
        if (nano_env_set_assignment(env, o->vars[i], err) != 0)
            return -1;
    return 0;
}

/* nano-dp test: each file in a fresh isolate on one loop; counts summed over files. */
static int run_tests(dp_main *m, const nano_env *env)
{
    rt_test_counts total = {0};
    int load_failures = 0;
    for (size_t i = 0; i < m->opts.n_files; i++) {
        const char *path = m->opts.files[i];
        nano_error err = {0};
        rt_app_options app = {.name = m->opts.app_name,
                              .env = env,
                              .console_mode = RT_CONSOLE_STDIO,
                              .location = m->opts.location};
        rt_isolate *iso = NULL;
        rt_test_counts counts = {0};
        int rc = rt_isolate_new(m->loop, &app, &iso, &err);
        if (rc == 0)
            rc = rt_run_tests(iso, path, m->opts.filter, m->opts.timeout_ms, &counts, &err);
        if (rc != 0) {
            printf("%s\n  FAIL (the file did not load) %s\n", path, err.message);
            load_failures++;
        }
        fflush(stdout);
        rt_isolate_free(iso);
        uv_run(m->loop, UV_RUN_DEFAULT); /* let its handles close; its leftover timers die */
        total.passed += counts.passed;
        total.failed += counts.failed;
        total.skipped += counts.skipped;
    }
    int failed = total.failed + load_failures;
    if (total.skipped > 0)
        printf("%d passed, %d failed, %d skipped\n", total.passed, failed, total.skipped);
    else
        printf("%d passed, %d failed\n", total.passed, failed);
    fflush(stdout);
    return failed > 0 ? 1 : 0;
}

static void on_run_timeout(uv_timer_t *t)
{
    dp_main *m = t->data;
    fprintf(stderr, "nano-dp run: timed out after %llu ms\n",
            (unsigned long long)m->opts.timeout_ms);
    m->exit_code = 1;
    m->is_timed_out = true;
    uv_stop(m->loop);
}

/* nano-dp run: classic scripts in one isolate, then the loop until idle (or --timeout). */
static int run_scripts(dp_main *m, const nano_env *env)
{
    nano_error err = {0};
    rt_app_options app = {.name = m->opts.app_name,
                          .env = env,
                          .console_mode = RT_CONSOLE_STDIO,
                          .location = m->opts.location};
    if (rt_isolate_new(m->loop, &app, &m->app, &err) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        return 1;
    }
    m->exit_code = 0;
    for (size_t i = 0; i < m->opts.n_files; i++) {
        /* Like a page's <script> elements: one that throws is reported, the next still runs. */
        if (rt_run_script(m->app, m->opts.files[i], &err) != 0) {
            if (err.code != NANO_EJS)
                fprintf(stderr, "nano-dp: error: %s\n", err.message);
            m->exit_code = 1;
        }
    }
    if (m->opts.timeout_ms > 0) {
        uv_timer_init(m->loop, &m->drain_timer);
        m->drain_timer.data = m;
        uv_timer_start(&m->drain_timer, on_run_timeout, m->opts.timeout_ms, 0);
        uv_unref((uv_handle_t *)&m->drain_timer); /* the deadline alone keeps nothing alive */
    }
    do {
        uv_run(m->loop, UV_RUN_DEFAULT);
    } while (!m->is_timed_out && rt_isolate_settle_background(m->app));
    if (m->opts.timeout_ms > 0)
        uv_close((uv_handle_t *)&m->drain_timer, NULL);
    rt_isolate_free(m->app);
    m->app = NULL;
    return m->exit_code;
}

/* The app's name for a single-app config: the config model's syntax ([a-z0-9-]), derived
 * from --name or the file name. */
static void single_app_name(const char *from, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *p = from; *p && n + 1 < cap && n < 63; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            c = '-';
        if (n == 0 && c == '-')
            continue;
        out[n++] = c;
    }
    if (n == 0)
        out[n++] = 'a', out[n++] = 'p', out[n++] = 'p';
    out[n] = '\0';
}

/* `nano-dp APP.js`: a config of one default app (every host), with the flags' env and limits. */
static int single_app_config(dp_main *m, nano_config **out, nano_error *err)
{
    const dp_options *o = &m->opts;
    nano_app_config app = {0};
    char name[64];
    single_app_name(o->app_name, name, sizeof name);
    app.spec.name = nano_xstrdup(name);
    app.spec.is_default = true;
    app.spec.limits = nano_limits_defaults();
    app.spec.limits.max_body = o->max_body_size;
    app.spec.limits.max_head = o->max_head_size;
    app.spec.limits.drain_timeout_ms = o->drain_timeout_ms;
    /* A single app owns its node: nothing else to protect from a long request, so the CPU
     * limit is Cloudflare's for paid Workers, not the multi-tenant 50 ms
     * (docs/config.md#limits). */
    app.spec.limits.cpu_ms = o->cpu_limit_ms > 0 ? o->cpu_limit_ms : DP_SINGLE_APP_CPU_MS;
    if (o->memory_limit_mb > 0)
        app.spec.limits.memory_mb = o->memory_limit_mb;
    nano_env_init(&app.env);
    int rc = nano_app_config_load_code(&app, o->app_path, err);
    if (rc == 0)
        rc = build_env(o, &app.env, err);
    nano_config *cfg = nano_config_new(1);
    if (rc == 0)
        rc = nano_config_add_app(cfg, &app, err);
    if (rc == 0)
        rc = nano_config_seal(cfg, err);
    nano_app_config_fini(&app);
    if (rc != 0) {
        nano_config_unref(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* One worker per CPU this process may run on (its affinity mask, so `taskset` or a cpuset
 * container gets as many workers as CPUs it was given, not as many as the machine has: extra
 * workers on one CPU only compete and warm their JIT separately). */
static size_t default_threads(void)
{
    unsigned n = uv_available_parallelism();
    return n < 1 ? 1 : n > 64 ? 64 : (size_t)n;
}

/* Binds one SO_REUSEPORT socket per worker, all on the same port. A plain bind first: with
 * SO_REUSEPORT alone, a second nano-dp would silently share a port another one serves. */
static int open_listeners(dp_main *m, int *fds, size_t n, int *port, nano_error *err)
{
    int bound = m->opts.port;
    int probe = dp_listen_socket_exclusive(m->opts.host, bound, &bound, err);
    if (probe < 0)
        return probe;
    close(probe);
    for (size_t i = 0; i < n; i++) {
        fds[i] = dp_listen_socket(m->opts.host, bound, &bound, err);
        if (fds[i] < 0) {
            for (size_t k = 0; k < i; k++)
                close(fds[k]);
            return fds[i];
        }
    }
    *port = bound;
    return 0;
}

/* --- control-plane mode ------------------------------------------------------------------ */

/* An empty config: the node serves 404 (and /readyz 503) until the first snapshot. */
static int empty_config(nano_config **out, nano_error *err)
{
    nano_config *cfg = nano_config_new(0);
    int rc = nano_config_seal(cfg, err);
    if (rc != 0) {
        nano_config_unref(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

/* The node's default name: the host name, cut to what node names allow. */
static void default_node_name(char *out, size_t cap)
{
    char host[256] = {0};
    if (gethostname(host, sizeof host - 1) != 0)
        host[0] = '\0';
    size_t n = 0;
    for (const char *p = host; *p && n + 1 < cap && n < NANO_CP_NODE_MAX; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        out[n++] = ok ? c : '-';
    }
    if (n == 0)
        snprintf(out, cap, "nano-dp");
    else
        out[n] = '\0';
}

static int read_token(const dp_options *o, char **out, nano_error *err)
{
    if (o->node_token_file == NULL) {
        const char *t = getenv("NANO_NODE_TOKEN");
        *out = nano_xstrdup(t != NULL ? t : "");
        return 0;
    }
    char *data = NULL;
    size_t len = 0;
    int rc = nano_read_file(o->node_token_file, 4096, &data, &len, NULL);
    if (rc != 0)
        return nano_error_set(err, NANO_EINVAL, "usage", "--node-token-file %s: cannot read (%s)",
                              o->node_token_file, nano_strerror(rc));
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
        data[--len] = '\0';
    *out = data;
    return 0;
}

static int start_cp(dp_main *m, int port, nano_error *err)
{
    const dp_options *o = &m->opts;
    char node[64], addr[300];
    if (o->node != NULL)
        snprintf(node, sizeof node, "%s", o->node);
    else
        default_node_name(node, sizeof node);
    bool is_v6 = strchr(o->host, ':') != NULL;
    snprintf(addr, sizeof addr, "%s%s%s:%d", is_v6 ? "[" : "", o->host, is_v6 ? "]" : "", port);
    const char *code_dir = o->code_dir;
    if (code_dir == NULL) {
        const char *tmp = getenv("TMPDIR");
        char tmpl[4096];
        snprintf(tmpl, sizeof tmpl, "%s/nano-dp-code.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(tmpl) == NULL)
            return nano_error_set(err, -errno, "code_dir", "cannot make a code dir %s: %s", tmpl,
                                  strerror(errno));
        m->code_dir_tmp = nano_xstrdup(tmpl);
        code_dir = m->code_dir_tmp;
    }
    unsigned drop = 0;
    const char *hook = getenv("NANO_TEST_DROP_DELTAS");
    if (hook != NULL && *hook != '\0')
        drop = (unsigned)strtoul(hook, NULL, 10);
    char *token = NULL;
    int rc = read_token(o, &token, err);
    if (rc != 0)
        return rc;
    uv_async_init(m->loop, &m->cp_config, on_cp_config);
    m->cp_config.data = m;
    dp_cp_client_options co = {
        .url = o->cp_url,
        .rpc_url = o->cp_rpc_url,
        .node = node,
        .token = token,
        .ca_file = o->cp_ca_file,
        .cert_file = o->cp_cert_file,
        .key_file = o->cp_key_file,
        .code_dir = code_dir,
        .http_addr = addr,
        .drop_every = drop,
        .workers = m->workers,
        .n_workers = m->n_workers,
        .config_ready = &m->cp_config,
        .load_errors = m->load_errors,
    };
    rc = dp_cp_client_start(&co, &m->cp, err);
    explicit_bzero(token, strlen(token));
    nano_free(token);
    if (rc == 0)
        m->status_src.cp = m->cp;
    return rc;
}

/* --code-dir DIR: compiled code goes to DIR/v8 too (the runtime's compile cache), so that a
 * restarted node compiles nothing it compiled before. */
static int compile_cache_dir(const dp_options *o, nano_error *err)
{
    if (o->code_dir == NULL)
        return 0;
    char real[PATH_MAX], dir[PATH_MAX + 8];
    struct stat st;
    if (realpath(o->code_dir, real) == NULL || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return nano_error_set(err, NANO_EINVAL, "code_dir", "--code-dir %s: not a directory (%s)",
                              o->code_dir, errno != 0 ? strerror(errno) : "a file");
    snprintf(dir, sizeof dir, "%s/v8", real);
    return rt_compile_cache_set_dir(dir, err);
}

static int serve(dp_main *m)
{
    nano_error err = {0};
    errno = 0;
    if (compile_cache_dir(&m->opts, &err) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        return EXIT_USAGE;
    }
    /* Before the workers start: they share the policy, which is immutable from then on. */
    if (dp_egress_node_build(&m->opts, &err) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        return EXIT_USAGE;
    }
    int rc = m->opts.cp_url != NULL ? empty_config(&m->cfg, &err)
             : m->opts.config_path != NULL
                 ? nano_config_load_json(m->opts.config_path, 1, &m->cfg, &err)
                 : single_app_config(m, &m->cfg, &err);
    /* A single app is loaded as the workers start (DP_PRELOAD_FIRST): the first worker's
     * load is the start-up check, so a broken app fails the start (exit 2) rather than its
     * first request, and the isolate it made serves that request. The apps a --config node
     * starts with are not load-checked: there is no version to keep, and a checker per app
     * would cost ~0.1 s each (a 1,000-app file: minutes). One that does not load fails on its
     * first request and shows as its load_error. */
    bool is_single_app = m->opts.config_path == NULL && m->opts.cp_url == NULL;
    m->load_errors = dp_load_errors_new();
    if (rc != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        nano_config_unref(m->cfg);
        m->cfg = NULL;
        dp_load_errors_free(m->load_errors);
        m->load_errors = NULL;
        return EXIT_USAGE;
    }
    size_t n = m->opts.threads > 0 ? (size_t)m->opts.threads : default_threads();
    int *fds = nano_xcalloc(n, sizeof *fds);
    int port = 0;
    if (open_listeners(m, fds, n, &port, &err) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        nano_free(fds);
        nano_config_unref(m->cfg);
        m->cfg = NULL;
        dp_load_errors_free(m->load_errors);
        m->load_errors = NULL;
        return 1;
    }

    uv_async_init(m->loop, &m->workers_done, on_workers_done);
    m->workers_done.data = m;
    dp_worker_options wo = {
        .host = m->opts.host,
        .max_head = m->opts.max_head_size,
        .max_body = m->opts.max_body_size,
        .head_timeout_ms = m->opts.head_timeout_ms,
        .idle_timeout_ms = m->opts.idle_timeout_ms,
        .body_timeout_ms = m->opts.body_timeout_ms,
        .body_min_rate = m->opts.body_min_rate,
        .write_timeout_ms = m->opts.write_timeout_ms,
        .isolate_memory_budget = m->opts.isolate_memory_budget / n,
        .access_log = !m->opts.no_access_log,
        .pool_size = m->opts.pool_size,
        .load_errors = m->load_errors,
        .egress = m->opts.egress,
        .drain_timeout_ms = m->opts.drain_timeout_ms,
    };
    /* The parser's limits are the largest any app allows (a config change may raise them up
     * to these flags' values only); each request then gets its app's own. */
    for (size_t i = 0; i < nano_config_n_apps(m->cfg); i++) {
        const nano_limits *l = &nano_config_app(m->cfg, i)->spec.limits;
        if (l->max_body > wo.max_body)
            wo.max_body = l->max_body;
        if (l->max_head > wo.max_head)
            wo.max_head = l->max_head;
    }
    m->workers = nano_xcalloc(n, sizeof *m->workers);
    for (size_t i = 0; i < n; i++) {
        wo.preload = !is_single_app ? DP_PRELOAD_NONE
                     : i == 0       ? DP_PRELOAD_FIRST
                                    : DP_PRELOAD_AFTER_START;
        int wrc = dp_worker_start(&m->workers[i], (int)i, fds[i], &wo, m->cfg, on_worker_done, m,
                                  &err);
        if (wrc != 0) {
            if (wrc == DP_WORKER_LOAD_FAILED)
                NANO_ERROR("dp.app_load_failed", "app=%s error_id=%s", m->opts.app_name, err.id);
            fprintf(stderr, "nano-dp: error: %s\n", err.message);
            for (size_t k = i + 1; k < n; k++)
                close(fds[k]);
            for (size_t k = 0; k < i; k++)
                dp_worker_abort(m->workers[k]);
            m->n_workers = i;
            m->is_forced = true;
            rc = wrc == DP_WORKER_LOAD_FAILED ? EXIT_USAGE : 1;
            break;
        }
        m->n_workers = i + 1;
    }
    nano_free(fds);
    if (rc == 0) {
        bool is_v6 = strchr(m->opts.host, ':') != NULL;
        NANO_INFO("dp.listening", "addr=%s%s%s:%d threads=%zu apps=%zu config_version=%llu",
                  is_v6 ? "[" : "", m->opts.host, is_v6 ? "]" : "", port, n,
                  nano_config_n_apps(m->cfg), (unsigned long long)nano_config_version(m->cfg));
    }
    m->status_src = (dp_status_source){.workers = m->workers,
                                       .n_workers = m->n_workers,
                                       .config_version = nano_config_version(m->cfg),
                                       .n_apps = nano_config_n_apps(m->cfg),
                                       .is_ready = m->opts.cp_url == NULL,
                                       .load_errors = m->load_errors};
    uv_signal_init(m->loop, &m->sigterm);
    uv_signal_init(m->loop, &m->sigint);
    uv_signal_init(m->loop, &m->sighup);
    uv_timer_init(m->loop, &m->drain_timer);
    uv_timer_init(m->loop, &m->progress_timer);
    m->sigterm.data = m->sigint.data = m->sighup.data = m->drain_timer.data =
        m->progress_timer.data = m;
    if (rc == 0 && m->opts.cp_url != NULL && (rc = start_cp(m, port, &err)) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        NANO_ERROR("dp.control_plane_failed", "error_id=%s error=%s", err.id, err.message);
        for (size_t k = 0; k < m->n_workers; k++)
            dp_worker_abort(m->workers[k]);
        m->is_forced = true;
        rc = err.code == NANO_EINVAL ? EXIT_USAGE : 1;
    }
    if (rc == 0) {
        m->supervisor = dp_supervisor_start(m->loop, m->workers, m->n_workers);
        /* With --control-plane, ready comes with the first config (on_cp_config). */
        if (m->opts.cp_url == NULL)
            dp_supervisor_ready(m->supervisor, nano_config_n_apps(m->cfg),
                                nano_config_version(m->cfg));
        m->watchdog = dp_watchdog_start(m->workers, m->n_workers, &err);
        if (m->watchdog == NULL)
            NANO_ERROR("dp.watchdog_failed", "error=%s", err.message);
        if (!m->opts.status_off) {
            m->status = dp_status_start(
                m->loop, m->opts.status_listen ? m->opts.status_listen : "127.0.0.1:9901",
                &m->status_src, &err);
            if (m->status == NULL)
                NANO_ERROR("dp.status_failed", "error=%s", err.message); /* serving goes on */
        }
        if (m->opts.config_path != NULL) {
            m->file_source = dp_file_source_start(m->loop, m->opts.config_path,
                                                  on_config_file_changed, m, &err);
            if (m->file_source == NULL)
                NANO_WARN("dp.config_watch_failed", "error=%s (SIGHUP still reloads)", err.message);
            watch_modules(m, NULL);
        }
        uv_signal_start(&m->sigterm, on_signal, SIGTERM);
        uv_signal_start(&m->sigint, on_signal, SIGINT);
        uv_signal_start(&m->sighup, on_signal, SIGHUP);
    }
    if (m->n_workers == 0)
        stop_handles(m);
    m->exit_code = 1; /* the loop only ends through a shutdown path that sets it */
    uv_run(m->loop, UV_RUN_DEFAULT);
    nano_free(m->workers);
    m->workers = NULL;
    nano_config_unref(m->cfg);
    m->cfg = NULL;
    dp_load_errors_free(m->load_errors);
    m->load_errors = NULL;
    if (m->code_dir_tmp != NULL) {
        dp_remove_tree(m->code_dir_tmp);
        nano_free(m->code_dir_tmp);
        m->code_dir_tmp = NULL;
    }
    return rc != 0 ? rc : m->exit_code;
}

static int run(dp_main *m, const char *argv0)
{
    /* A load check runs beside a node that serves (its parent, or nanocp's host): it yields
     * the CPU to it. Its own limits count its thread's CPU time, not the wall clock. */
    if (m->opts.mode == DP_MODE_CHECK)
        setpriority(PRIO_PROCESS, 0, 10);
    rt_platform_init(argv0);
    m->loop = nano_xmalloc(sizeof *m->loop);
    uv_loop_init(m->loop);
    int rc;
    if (m->opts.mode == DP_MODE_SERVE) {
        rc = serve(m);
    } else {
        nano_error err = {0};
        nano_env env;
        nano_env_init(&env);
        if (build_env(&m->opts, &env, &err) != 0) {
            fprintf(stderr, "nano-dp: error: %s\n", err.message);
            rc = EXIT_USAGE;
        } else {
            rc = m->opts.mode == DP_MODE_TEST    ? run_tests(m, &env)
                 : m->opts.mode == DP_MODE_CHECK ? dp_check_run(m->loop, &m->opts)
                                                 : run_scripts(m, &env);
        }
        nano_env_fini(&env);
    }
    /* Let closing handles finish, then close the loop; a busy loop here is a leak we log. */
    uv_run(m->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(m->loop) != 0)
        NANO_WARN("dp.loop_busy_at_exit", "detail=%s", "handles left open");
    nano_free(m->loop);
    rt_platform_fini();
    return rc;
}

int main(int argc, char **argv)
{
    dp_main m = {0};
    nano_error err = {0};
    signal(SIGPIPE, SIG_IGN); /* a peer that goes away is a write error, not a death */
    /* Body chunks (64-128 KiB) live until V8's GC frees their ArrayBuffers. glibc would mmap
     * each one and hand it back on free, so streaming a body page-faults on every byte
     * (measured: 1 GiB upload 6.5 s, 5 s of it in the kernel); from the heap, and kept there,
     * the same upload takes 0.7 s. */
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    if (dp_options_parse(&m.opts, argc, argv, &err) != 0) {
        fprintf(stderr, "nano-dp: %s\n(see nano-dp --help)\n", err.message);
        dp_options_fini(&m.opts);
        return EXIT_USAGE;
    }
    if (m.opts.show_help) {
        fputs(dp_options_usage(m.opts.mode), stdout);
        dp_options_fini(&m.opts);
        return 0;
    }
    if (m.opts.show_version) {
        printf("nano-dp %s\n", NANO_VERSION);
        dp_options_fini(&m.opts);
        return 0;
    }
    nano_log_min_level = m.opts.log_level;
    nano_log_json = m.opts.log_json;

    int rc = run(&m, argv[0]);
    dp_options_fini(&m.opts);
    return rc;
}
