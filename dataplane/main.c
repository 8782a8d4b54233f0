/* main.c: nano-dp's process: parse the command line, build the app's env, start V8, load the
 * app, serve HTTP, and shut down gracefully on SIGTERM/SIGINT (DESIGN.md §8).
 *
 * Shutdown phases, each logged with counts:
 *   dp.shutdown_begin   stop accepting, idle connections closed, in-flight requests finish
 *   dp.shutdown_waiting once a second while work remains
 *   dp.shutdown_done    all drained: exit 0
 *   dp.shutdown_forced  --drain-timeout passed: everything left is closed, exit 1
 * A second SIGINT exits at once with 130 (an operator at a terminal who means it). */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "alloc.h"
#include "env.h"
#include "log.h"
#include "options.h"
#include "runtime/runtime.h"
#include "server/server.h"

enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

typedef struct dp_main {
    uv_loop_t *loop;
    dp_options opts;
    rt_isolate *app;
    dp_server *server;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain_timer;     /* fires at the drain deadline */
    uv_timer_t progress_timer;  /* a progress line each second while draining */
    bool draining;
    bool is_timed_out; /* run: --timeout passed */
    int exit_code;
    uint64_t drain_started_ms;
} dp_main;

static void log_counts(dp_main *m, nano_log_level level, const char *event)
{
    NANO_LOG(level, event, "conns=%zu active_conns=%zu requests=%zu elapsed_ms=%llu",
             dp_server_n_conns(m->server), dp_server_n_active_conns(m->server),
             dp_server_n_requests(m->server),
             (unsigned long long)(uv_now(m->loop) - m->drain_started_ms));
}

static void stop_handles(dp_main *m)
{
    uv_timer_stop(&m->drain_timer);
    uv_timer_stop(&m->progress_timer);
    uv_signal_stop(&m->sigterm);
    uv_signal_stop(&m->sigint);
    uv_close((uv_handle_t *)&m->drain_timer, NULL);
    uv_close((uv_handle_t *)&m->progress_timer, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    dp_server_close(m->server);
    m->server = NULL;
    rt_isolate_free(m->app);
    m->app = NULL;
}

static void on_drained(dp_server *srv, void *ud)
{
    (void)srv;
    dp_main *m = ud;
    log_counts(m, NANO_LOG_INFO, "dp.shutdown_done");
    m->exit_code = 0;
    stop_handles(m);
}

static void on_drain_deadline(uv_timer_t *t)
{
    dp_main *m = t->data;
    log_counts(m, NANO_LOG_WARN, "dp.shutdown_forced");
    dp_server_abort_all(m->server);
    m->exit_code = 1;
    stop_handles(m);
}

static void on_progress(uv_timer_t *t)
{
    dp_main *m = t->data;
    log_counts(m, NANO_LOG_INFO, "dp.shutdown_waiting");
}

static void begin_shutdown(dp_main *m, const char *why)
{
    m->draining = true;
    m->drain_started_ms = uv_now(m->loop);
    NANO_INFO("dp.shutdown_begin",
              "signal=%s drain_timeout_ms=%llu conns=%zu active_conns=%zu requests=%zu", why,
              (unsigned long long)m->opts.drain_timeout_ms, dp_server_n_conns(m->server),
              dp_server_n_active_conns(m->server), dp_server_n_requests(m->server));
    uv_timer_start(&m->drain_timer, on_drain_deadline, m->opts.drain_timeout_ms, 0);
    uv_timer_start(&m->progress_timer, on_progress, 1000, 1000);
    dp_server_drain(m->server, on_drained, m);
}

static void on_signal(uv_signal_t *s, int signum)
{
    dp_main *m = s->data;
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

/* build_env: env files in order (later files win), then --var (wins over files). */
static int build_env(const dp_options *o, nano_env *env, nano_error *err)
{
    for (size_t i = 0; i < o->n_env_files; i++)
        if (nano_env_load_dotenv(env, o->env_files[i], err) != 0)
            return -1;
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
        rt_app_options app = {.name = m->opts.app_name, .env = env,
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
    rt_app_options app = {.name = m->opts.app_name, .env = env, .console_mode = RT_CONSOLE_STDIO,
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

static int run(dp_main *m, const char *argv0)
{
    nano_error err = {0};
    nano_env env;
    nano_env_init(&env);
    if (build_env(&m->opts, &env, &err) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        nano_env_fini(&env);
        return EXIT_USAGE;
    }

    rt_platform_init(argv0);
    m->loop = nano_xmalloc(sizeof *m->loop);
    uv_loop_init(m->loop);
    int rc;
    if (m->opts.mode != DP_MODE_SERVE) {
        rc = m->opts.mode == DP_MODE_TEST ? run_tests(m, &env) : run_scripts(m, &env);
        nano_env_fini(&env);
        goto out_loop;
    }

    rt_app_options app = {
        .name = m->opts.app_name, .main_path = m->opts.app_path, .env = &env};
    uint64_t t0 = uv_hrtime();
    rc = rt_isolate_new(m->loop, &app, &m->app, &err);
    size_t n_env = env.n_entries;
    nano_env_fini(&env);
    if (rc != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        NANO_ERROR("dp.app_load_failed", "app=%s error_id=%s", m->opts.app_name, err.id);
        rc = EXIT_USAGE;
        goto out_loop;
    }
    NANO_INFO("dp.app_loaded", "app=%s path=%s env_entries=%zu load_us=%llu", m->opts.app_name,
              m->opts.app_path, n_env,
              (unsigned long long)((uv_hrtime() - t0) / 1000));

    dp_server_options so = {
        .host = m->opts.host,
        .port = m->opts.port,
        .limits = {.max_head = m->opts.max_head_size, .max_body = m->opts.max_body_size},
        .head_timeout_ms = m->opts.head_timeout_ms,
        .idle_timeout_ms = m->opts.idle_timeout_ms,
    };
    m->server = dp_server_new(m->loop, &so, m->app);
    if (dp_server_listen(m->server, &err) != 0) {
        fprintf(stderr, "nano-dp: error: %s\n", err.message);
        dp_server_close(m->server);
        m->server = NULL;
        rt_isolate_free(m->app);
        m->app = NULL;
        rc = 1;
        goto out_loop;
    }

    uv_signal_init(m->loop, &m->sigterm);
    uv_signal_init(m->loop, &m->sigint);
    uv_timer_init(m->loop, &m->drain_timer);
    uv_timer_init(m->loop, &m->progress_timer);
    m->sigterm.data = m->sigint.data = m->drain_timer.data = m->progress_timer.data = m;
    uv_signal_start(&m->sigterm, on_signal, SIGTERM);
    uv_signal_start(&m->sigint, on_signal, SIGINT);

    m->exit_code = 1; /* the loop only ends through a shutdown path that sets it */
    uv_run(m->loop, UV_RUN_DEFAULT);
    rc = m->exit_code;

out_loop:
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

    int rc = run(&m, argv[0]);
    dp_options_fini(&m.opts);
    return rc;
}
