/* startup.c: nano-startup-bench APP.js [N]: what a new app's isolate costs (issue 6).
 *
 *   snapshot   an isolate + context from the startup snapshot, no app (one pool refill; its
 *              CPU time: the wall time includes the pool's 100 ms wait before refilling)
 *   fresh      rt_isolate_new of APP.js without a pool: snapshot isolate + the app
 *   pooled     rt_isolate_new of APP.js taking a ready isolate from an rt_pool
 *   rss        resident memory per idle isolate with APP.js loaded (N of them held at once)
 *
 * Times are the median, minimum and maximum of N runs (default 20), in microseconds, and
 * the median CPU time of the thread (what the figures mean on a busy machine). Used for the
 * figures in docs/nano-dp.md, "Startup snapshot". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "runtime.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* This thread's CPU time: on a shared machine, wall time also counts other processes. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t *g_cpu; /* CPU time of each run, beside the wall time */

static void report(const char *what, uint64_t *ns, int n)
{
    qsort(ns, (size_t)n, sizeof *ns, cmp_u64);
    qsort(g_cpu, (size_t)n, sizeof *g_cpu, cmp_u64);
    printf("%-9s median_us=%llu min_us=%llu max_us=%llu cpu_median_us=%llu n=%d\n", what,
           (unsigned long long)(ns[n / 2] / 1000), (unsigned long long)(ns[0] / 1000),
           (unsigned long long)(ns[n - 1] / 1000), (unsigned long long)(g_cpu[n / 2] / 1000), n);
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void on_busy(uv_prepare_t *h)
{
    (void)h;
}

static int new_app(uv_loop_t *loop, const char *path, rt_pool *pool, rt_isolate **out)
{
    nano_error err = {0};
    rt_app_options app = {.name = "bench", .main_path = path, .pool = pool};
    if (rt_isolate_new(loop, &app, out, &err) != 0) {
        fprintf(stderr, "nano-startup-bench: %s\n", err.message);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: nano-startup-bench APP.js [N]\n");
        return 2;
    }
    const char *path = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 20;
    if (n < 1 || n > 1000)
        n = 20;
    uint64_t *ns = calloc((size_t)n, sizeof *ns);
    g_cpu = calloc((size_t)n, sizeof *g_cpu);
    rt_isolate **held = calloc((size_t)n, sizeof *held);
    rt_platform_init(argv[0]);
    uv_loop_t loop;
    uv_loop_init(&loop);

    /* Warm up: the process's first isolate pays one-time costs (V8's lazy setup, page faults
     * in the blob) that no later app sees. */
    rt_isolate *iso = NULL;
    if (new_app(&loop, path, NULL, &iso) != 0)
        return 1;
    rt_isolate_free(iso);
    uv_run(&loop, UV_RUN_DEFAULT);

    /* A pool refills only while its loop has something else to do (a server's listener):
     * this no-op handle is that something here. */
    uv_prepare_t busy;
    uv_prepare_init(&loop, &busy);
    uv_prepare_start(&busy, on_busy);

    /* snapshot: a pool of one, refilled once per round; the refill is one isolate. The pool
     * waits 100 ms without a take before it refills, so the loop sleeps in poll until then
     * (UV_RUN_ONCE) and the figure is the thread's CPU time: the refill's work, not the wait
     * (the wall time printed includes the wait). */
    rt_pool *pool = rt_pool_new(&loop, 1, 0);
    while (rt_pool_n_ready(pool) == 0)
        uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < n; i++) {
        if (new_app(&loop, path, pool, &iso) != 0) /* empties the pool, starts its refill */
            return 1;
        rt_isolate_free(iso);
        uint64_t t0 = uv_hrtime(), c0 = cpu_ns();
        while (rt_pool_n_ready(pool) == 0)
            uv_run(&loop, UV_RUN_ONCE);
        ns[i] = uv_hrtime() - t0;
        g_cpu[i] = cpu_ns() - c0;
    }
    report("snapshot", ns, n);
    rt_pool_free(pool);
    uv_prepare_stop(&busy);
    uv_run(&loop, UV_RUN_DEFAULT);

    for (int i = 0; i < n; i++) {
        uint64_t t0 = uv_hrtime(), c0 = cpu_ns();
        if (new_app(&loop, path, NULL, &iso) != 0)
            return 1;
        ns[i] = uv_hrtime() - t0;
        g_cpu[i] = cpu_ns() - c0;
        rt_isolate_free(iso);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    report("fresh", ns, n);

    uv_prepare_start(&busy, on_busy);
    pool = rt_pool_new(&loop, 2, 0);
    for (int i = 0; i < n; i++) {
        while (rt_pool_n_ready(pool) < 2)
            uv_run(&loop, UV_RUN_NOWAIT);
        uint64_t t0 = uv_hrtime(), c0 = cpu_ns();
        if (new_app(&loop, path, pool, &iso) != 0)
            return 1;
        ns[i] = uv_hrtime() - t0;
        g_cpu[i] = cpu_ns() - c0;
        rt_isolate_free(iso);
    }
    report("pooled", ns, n);
    rt_pool_free(pool);
    uv_close((uv_handle_t *)&busy, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);

    long before = rss_kib();
    for (int i = 0; i < n; i++)
        if (new_app(&loop, path, NULL, &held[i]) != 0)
            return 1;
    long after = rss_kib();
    printf("rss       per_isolate_kib=%ld n=%d\n", (after - before) / n, n);
    for (int i = 0; i < n; i++)
        rt_isolate_free(held[i]);
    uv_run(&loop, UV_RUN_DEFAULT);

    int rc = uv_loop_close(&loop) == 0 ? 0 : 1;
    rt_platform_fini();
    free(held);
    free(ns);
    free(g_cpu);
    return rc;
}
