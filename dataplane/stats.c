#include "stats.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

const uint64_t dp_latency_bounds_us[DP_LATENCY_BUCKETS] = {
    500,    1000,   2500,   5000,    10000,   25000,   50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *dp_app_state_name(dp_app_state s)
{
    switch (s) {
    case DP_APP_ACTIVE: return "active";
    case DP_APP_DRAINING: return "draining";
    case DP_APP_SHUTDOWN: return "shutting_down";
    case DP_APP_REMOVED: return "removed";
    }
    return "?";
}

void dp_stats_init(dp_stats *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

void dp_stats_fini(dp_stats *s)
{
    for (size_t i = 0; i < s->n_apps; i++)
        nano_free(s->apps[i]);
    nano_free(s->apps);
    pthread_mutex_destroy(&s->mu);
}

dp_app_stats *dp_stats_app(dp_stats *s, const char *name)
{
    /* Only this table's worker adds entries, so reading without the lock is safe here. */
    for (size_t i = 0; i < s->n_apps; i++) {
        if (strcmp(s->apps[i]->name, name) == 0) {
            atomic_store(&s->apps[i]->state, DP_APP_ACTIVE);
            return s->apps[i];
        }
    }
    dp_app_stats *a = nano_xcalloc(1, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    pthread_mutex_lock(&s->mu);
    if (s->n_apps == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->apps = nano_xrealloc(s->apps, s->cap * sizeof *s->apps);
    }
    s->apps[s->n_apps++] = a;
    pthread_mutex_unlock(&s->mu);
    return a;
}

void dp_stats_observe_latency(dp_app_stats *a, uint64_t duration_us)
{
    size_t i = 0;
    while (i < DP_LATENCY_BUCKETS && duration_us > dp_latency_bounds_us[i])
        i++;
    dp_stat_add(&a->latency_buckets[i], 1);
    dp_stat_add(&a->latency_count, 1);
    dp_stat_add(&a->latency_sum_us, (int64_t)duration_us);
}

bool dp_stats_peek(dp_stats *s, const char *name, dp_app_state *state, uint64_t *in_flight,
                   uint64_t *drain_timeouts)
{
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_apps && !found; i++) {
        dp_app_stats *a = s->apps[i];
        if (strcmp(a->name, name) == 0) {
            *state = (dp_app_state)atomic_load(&a->state);
            *in_flight = atomic_load(&a->in_flight);
            *drain_timeouts = atomic_load(&a->drain_timeouts);
            found = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}
