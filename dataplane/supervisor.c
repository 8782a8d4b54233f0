/* supervisor.c: nano-dp's systemd notifications and watchdog (contract in supervisor.h). */
#include "supervisor.h"

#include <inttypes.h>
#include <stdbool.h>

#include "alloc.h"
#include "log.h"
#include "sd.h"

#define MIN_STUCK_MS 750 /* three ticks: a worker between two ticks is not stuck */

struct dp_supervisor {
    uv_timer_t timer;
    dp_worker **workers;
    size_t n;
    uint64_t *ticks;    /* per worker: the tick count last seen */
    uint64_t *moved_ms; /* per worker: loop time it was last seen to move */
    bool *is_stuck;     /* per worker: reported stuck (logged once per episode) */
    uint64_t stuck_ms;  /* a worker not moving this long is stuck */
    bool is_ready;
    bool is_reloading; /* RELOADING=1 sent: the next ready says READY=1 again */
};

static void on_watchdog(uv_timer_t *t)
{
    dp_supervisor *s = t->data;
    uint64_t now = uv_now(t->loop);
    bool all_alive = true;
    for (size_t i = 0; i < s->n; i++) {
        uint64_t ticks;
        bool is_finished;
        dp_worker_liveness(s->workers[i], &ticks, &is_finished);
        if (is_finished || ticks != s->ticks[i]) {
            if (s->is_stuck[i])
                NANO_WARN("dp.worker_alive_again", "worker=%zu stuck_ms=%" PRIu64, i,
                          now - s->moved_ms[i]);
            s->ticks[i] = ticks;
            s->moved_ms[i] = now;
            s->is_stuck[i] = false;
            continue;
        }
        if (now - s->moved_ms[i] < s->stuck_ms)
            continue;
        all_alive = false;
        if (!s->is_stuck[i]) {
            s->is_stuck[i] = true;
            NANO_ERROR("dp.worker_stuck",
                       "worker=%zu for_ms=%" PRIu64 " (its loop does not "
                       "turn: watchdog pings stop, systemd restarts nano-dp)",
                       i, now - s->moved_ms[i]);
        }
    }
    if (all_alive)
        nano_sd_notify("WATCHDOG=1");
}

dp_supervisor *dp_supervisor_start(uv_loop_t *loop, dp_worker **workers, size_t n)
{
    dp_supervisor *s = nano_xcalloc(1, sizeof *s);
    s->workers = workers;
    s->n = n;
    s->ticks = nano_xcalloc(n + 1, sizeof *s->ticks);
    s->moved_ms = nano_xcalloc(n + 1, sizeof *s->moved_ms);
    s->is_stuck = nano_xcalloc(n + 1, sizeof *s->is_stuck);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uint64_t usec = nano_sd_watchdog_usec();
    if (usec > 0) {
        /* Pings three times per interval; a worker is stuck after half of it. */
        uint64_t period_ms = usec / 3000 > 10 ? usec / 3000 : 10;
        s->stuck_ms = usec / 2000 > MIN_STUCK_MS ? usec / 2000 : MIN_STUCK_MS;
        for (size_t i = 0; i < n; i++)
            s->moved_ms[i] = uv_now(loop);
        uv_timer_start(&s->timer, on_watchdog, period_ms, period_ms);
        NANO_INFO("dp.watchdog_pings",
                  "interval_ms=%" PRIu64 " period_ms=%" PRIu64 " stuck_after_ms=%" PRIu64,
                  usec / 1000, period_ms, s->stuck_ms);
    }
    return s;
}

void dp_supervisor_ready(dp_supervisor *s, size_t n_apps, uint64_t version)
{
    if (s == NULL)
        return;
    nano_sd_notifyf("%sSTATUS=serving %zu app%s (config version %" PRIu64 ")",
                    s->is_ready && !s->is_reloading ? "" : "READY=1\n", n_apps,
                    n_apps == 1 ? "" : "s", version);
    s->is_ready = true;
    s->is_reloading = false;
}

void dp_supervisor_reloading(dp_supervisor *s)
{
    if (s == NULL)
        return;
    s->is_reloading = true;
    nano_sd_notify("RELOADING=1\nSTATUS=reloading the config");
}

void dp_supervisor_stopping(dp_supervisor *s, size_t requests, size_t conns)
{
    (void)s;
    nano_sd_notifyf("STOPPING=1\nSTATUS=draining: %zu requests in flight, %zu connections",
                    requests, conns);
}

void dp_supervisor_draining(dp_supervisor *s, size_t requests, size_t conns, uint64_t elapsed_ms)
{
    (void)s;
    nano_sd_notifyf("STATUS=draining for %" PRIu64 " s: %zu requests in flight, %zu "
                    "connections",
                    elapsed_ms / 1000, requests, conns);
}

static void on_closed(uv_handle_t *h)
{
    dp_supervisor *s = h->data;
    nano_free(s->ticks);
    nano_free(s->moved_ms);
    nano_free(s->is_stuck);
    nano_free(s);
}

void dp_supervisor_close(dp_supervisor *s)
{
    if (s != NULL)
        uv_close((uv_handle_t *)&s->timer, on_closed);
}
