#include "watchdog.h"

#include <stdatomic.h>
#include <time.h>

#include "alloc.h"
#include "log.h"

typedef struct watched {
    rt_watch *watch;
    clockid_t clock;
    bool has_clock;
    unsigned long long seen_seq;
    uint64_t cpu_at_seen_ns;
    uint64_t used_at_seen_ns; /* the request's JS time when this segment was first seen */
    bool is_killed;           /* this segment was terminated already */
} watched;

struct dp_watchdog {
    uv_thread_t thread;
    atomic_bool stop;
    watched *w;
    size_t n;
};

static uint64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A segment's request is charged what it used before the segment, the segment's time until
 * the watchdog first saw it (monotonic: it began at most one tick earlier), and from then on
 * the thread's CPU time, so a long loop on a busy machine is charged CPU, not waiting. */
static void check(watched *x)
{
    rt_watch *w = x->watch;
    pthread_mutex_lock(&w->mu);
    if (w->active && w->iso != NULL && w->cpu_limit_ms > 0) {
        uint64_t limit_ns = w->cpu_limit_ms * 1000000u;
        uint64_t used;
        if (w->seq != x->seen_seq) {
            x->seen_seq = w->seq;
            x->cpu_at_seen_ns = cpu_ns(x->clock);
            uint64_t now = uv_hrtime();
            x->used_at_seen_ns = w->used_ns + (now > w->start_ns ? now - w->start_ns : 0);
            x->is_killed = false;
            used = x->used_at_seen_ns;
        } else {
            used = x->used_at_seen_ns + (cpu_ns(x->clock) - x->cpu_at_seen_ns);
        }
        if (!x->is_killed && used >= limit_ns) {
            x->is_killed = true;
            rt_isolate_terminate(w->iso);
        }
    }
    pthread_mutex_unlock(&w->mu);
}

static void run(void *arg)
{
    dp_watchdog *wd = arg;
    const struct timespec tick = {0, DP_WATCHDOG_TICK_MS * 1000000L};
    while (!atomic_load(&wd->stop)) {
        nanosleep(&tick, NULL);
        for (size_t i = 0; i < wd->n; i++)
            if (wd->w[i].has_clock)
                check(&wd->w[i]);
    }
}

dp_watchdog *dp_watchdog_start(dp_worker **workers, size_t n, nano_error *err)
{
    dp_watchdog *wd = nano_xcalloc(1, sizeof *wd);
    wd->w = nano_xcalloc(n, sizeof *wd->w);
    wd->n = n;
    for (size_t i = 0; i < n; i++) {
        wd->w[i].watch = dp_worker_watch(workers[i]);
        wd->w[i].has_clock = dp_worker_cpu_clock(workers[i], &wd->w[i].clock) == 0;
        if (!wd->w[i].has_clock)
            NANO_WARN("dp.watchdog_no_clock", "worker=%zu detail=%s", i,
                      "no CPU clock for the thread: its CPU limit is not enforced");
    }
    int rc = uv_thread_create(&wd->thread, run, wd);
    if (rc != 0) {
        nano_free(wd->w);
        nano_free(wd);
        nano_error_set(err, rc, "thread_failed", "cannot start the watchdog thread: %s",
                       uv_strerror(rc));
        return NULL;
    }
    return wd;
}

void dp_watchdog_stop(dp_watchdog *wd)
{
    if (wd == NULL)
        return;
    atomic_store(&wd->stop, true);
    uv_thread_join(&wd->thread);
    nano_free(wd->w);
    nano_free(wd);
}
