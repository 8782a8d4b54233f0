/* check_cmd.c: `nano-dp check FILE...` (dp_check_run, check_cmd.h): the load check in its own
 * process (shared/check.h), which nanocp and a reloading nano-dp run before they accept a
 * version. */
#define _GNU_SOURCE
#include "check_cmd.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "buf.h"
#include "check.h"
#include "config.h"
#include "log.h"
#include "runtime/runtime.h"

/* `nano-dp check`: loads the app in an isolate of its own and frees it (single-app mode
 * checks with the first worker's load instead: DP_PRELOAD_FIRST). */
static int check_app_loads(uv_loop_t *loop, const nano_app_config *c, nano_error *err)
{
    rt_app_options o = {.name = c->spec.name,
                        .main_path = c->main_path,
                        .main_source = c->code,
                        .main_source_len = c->code_len,
                        .env = &c->env,
                        .node_compat = c->spec.node_compat,
                        .heap_limit_mb = (size_t)c->spec.limits.memory_mb};
    /* No CPU limit here: run_check has a guard of its own, which also leaves out time spent
     * waiting for a CPU. */
    uint64_t t0 = uv_hrtime();
    rt_isolate *iso = NULL;
    int rc = rt_isolate_new(loop, &o, &iso, err);
    if (rc != 0)
        return rc;
    NANO_INFO("dp.app_loaded", "app=%s path=%s env_entries=%zu load_us=%llu", c->spec.name,
              c->main_path, c->env.n_entries, (unsigned long long)((uv_hrtime() - t0) / 1000));
    rt_isolate_free(iso);
    uv_run(loop, UV_RUN_NOWAIT); /* its handles close */
    return 0;
}

/* Watches the loading thread's CPU clock: past the limit the verdict is printed from here and
 * the process ends (the isolate cannot be stopped from outside rt_isolate_new, and need not
 * be: the process is the sandbox). */
typedef struct check_guard {
    pthread_mutex_t mu;
    clockid_t clock;
    uint64_t started_ns;    /* the thread's CPU time when this file's load began */
    uint64_t started_wall;  /* uv_hrtime() then: waiting (top-level await) is bounded too */
    uint64_t started_delay; /* the thread's run delay then (nano_check_run_delay_ms) */
    int tid;                /* the loading thread */
    uint64_t limit_ms;
    const char *file; /* the file loading now; NULL: between files */
    bool is_json;
    bool is_stopping; /* every file is done: the guard ends */
} check_guard;

static uint64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void print_verdict(bool is_json, const char *file, const nano_error *err, uint64_t load_ms)
{
    if (is_json) {
        json_t *v = err == NULL ? json_pack("{s:s, s:b, s:I}", "file", file, "ok", 1, "load_ms",
                                            (json_int_t)load_ms)
                                : json_pack("{s:s, s:b, s:{s:s, s:s}}", "file", file, "ok", 0,
                                            "error", "code", err->id, "message", err->message);
        char *text = json_dumps(v, JSON_COMPACT);
        printf("%s\n", text != NULL ? text : "{}");
        free(text);
        json_decref(v);
    } else if (err == NULL) {
        printf("%s: ok (loaded in %llu ms)\n", file, (unsigned long long)load_ms);
    } else {
        printf("%s: FAIL %s (%s)\n", file, err->message, err->id);
    }
    fflush(stdout);
}

static void *check_guard_main(void *arg)
{
    check_guard *g = arg;
    for (;;) {
        struct timespec nap = {0, 5 * 1000 * 1000};
        nanosleep(&nap, NULL);
        pthread_mutex_lock(&g->mu);
        if (g->is_stopping) {
            pthread_mutex_unlock(&g->mu);
            return NULL;
        }
        bool is_cpu = g->file != NULL && cpu_ns(g->clock) - g->started_ns > g->limit_ms * 1000000u;
        /* Wall time spent waiting for a CPU (a busy machine) does not count. */
        uint64_t wall_ms = g->file != NULL ? (uv_hrtime() - g->started_wall) / 1000000 : 0;
        uint64_t starved_ms =
            g->file != NULL ? nano_check_run_delay_ms(getpid(), g->tid) - g->started_delay : 0;
        bool is_wall = g->file != NULL &&
                       (wall_ms > g->limit_ms + NANO_CHECK_SLACK_MS + starved_ms ||
                        wall_ms > 4 * (g->limit_ms + NANO_CHECK_SLACK_MS));
        if (is_cpu || is_wall) {
            nano_error err = {0};
            nano_error_set(
                &err, NANO_EINVAL, "module_timeout",
                is_cpu ? "%s: loading ran past its CPU limit of %llu ms (a top level "
                         "that does not end?)"
                       : "%s: loading did not finish within %llu ms (a top-level "
                         "await that does not settle?)",
                g->file,
                (unsigned long long)(is_cpu ? g->limit_ms : g->limit_ms + NANO_CHECK_SLACK_MS));
            print_verdict(g->is_json, g->file, &err, 0);
            _exit(1);
        }
        pthread_mutex_unlock(&g->mu);
    }
}

/* --env-stdin: the env as nano_check_env_to_json wrote it (at most 8 MiB). */
static json_t *read_env_stdin(nano_error *err)
{
    nano_buf b = NANO_BUF_INIT;
    char chunk[16384];
    ssize_t n;
    while ((n = read(0, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0)
            nano_buf_append(&b, chunk, (size_t)n);
        if (b.len > 8u * 1024 * 1024)
            break;
    }
    json_t *list = b.len <= 8u * 1024 * 1024 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    explicit_bzero(b.data, b.len);
    nano_buf_fini(&b);
    if (list == NULL)
        nano_error_set(err, NANO_EINVAL, "usage", "--env-stdin: stdin is not a JSON env list");
    return list;
}

/* nano-dp check: each file loaded as an app (check_app_loads, the start-up check) in a fresh
 * isolate with the heap limit, under the CPU guard; one verdict per file. */
int dp_check_run(uv_loop_t *loop, const dp_options *o)
{
    nano_error env_err = {0};
    json_t *env_list = o->env_stdin ? read_env_stdin(&env_err) : NULL;
    if (o->env_stdin && env_list == NULL) {
        fprintf(stderr, "nano-dp: %s\n", env_err.message);
        return 2; /* usage */
    }
    check_guard g = {.limit_ms = o->cpu_limit_ms > 0 ? o->cpu_limit_ms : NANO_CHECK_MIN_CPU_MS,
                     .is_json = o->check_json};
    pthread_mutex_init(&g.mu, NULL);
    pthread_getcpuclockid(pthread_self(), &g.clock);
    g.tid = (int)syscall(SYS_gettid);
    pthread_t guard;
    if (pthread_create(&guard, NULL, check_guard_main, &g) != 0) {
        fprintf(stderr, "nano-dp: error: cannot start the CPU guard thread\n");
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < o->n_files; i++) {
        const char *file = o->files[i];
        nano_error err = {0};
        nano_app_config app;
        nano_app_config_init(&app);
        app.spec.name = nano_xstrdup(o->app_name);
        app.spec.node_compat = o->node_compat;
        if (o->memory_limit_mb > 0)
            app.spec.limits.memory_mb = o->memory_limit_mb;
        int rc = env_list != NULL ? nano_check_env_from_json(env_list, &app.env, &err) : 0;
        if (rc == 0)
            rc = nano_app_config_load_code(&app, file, &err);
        uint64_t t0 = uv_hrtime();
        if (rc == 0) {
            pthread_mutex_lock(&g.mu);
            g.file = app.main_path;
            g.started_ns = cpu_ns(g.clock);
            g.started_wall = uv_hrtime();
            g.started_delay = nano_check_run_delay_ms(getpid(), g.tid);
            pthread_mutex_unlock(&g.mu);
            rc = check_app_loads(loop, &app, &err);
            pthread_mutex_lock(&g.mu); /* held from here: the guard cannot print over us */
            g.file = NULL;
        } else {
            pthread_mutex_lock(&g.mu);
        }
        if (rc != 0) {
            char line[sizeof err.message];
            nano_check_one_line(err.message, app.main_path, line, sizeof line);
            /* The guard ends the process on CPU, so a terminated load hit the heap limit. */
            if (strstr(err.message, "execution terminated") != NULL)
                nano_error_set(&err, NANO_EINVAL, "module_memory",
                               "%s: loading reached the memory limit of %llu MiB",
                               app.main_path != NULL ? app.main_path : file,
                               (unsigned long long)app.spec.limits.memory_mb);
            else
                snprintf(err.message, sizeof err.message, "%s", line);
            nano_check_mask_secrets(&app.env, err.message, sizeof err.message);
            print_verdict(g.is_json, file, &err, 0);
            failed++;
        } else {
            print_verdict(g.is_json, file, NULL, (uv_hrtime() - t0) / 1000000);
        }
        pthread_mutex_unlock(&g.mu);
        nano_app_config_fini(&app);
    }
    pthread_mutex_lock(&g.mu);
    g.is_stopping = true; /* g lives on this stack: the guard must be gone before it goes */
    pthread_mutex_unlock(&g.mu);
    pthread_join(guard, NULL);
    pthread_mutex_destroy(&g.mu);
    json_decref(env_list);
    return failed > 0 ? 1 : 0;
}
