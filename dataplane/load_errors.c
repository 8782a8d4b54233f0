#include "load_errors.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"

typedef struct entry {
    char app[64];
    dp_load_error e;
} entry;

struct dp_load_errors {
    pthread_mutex_t mu;
    entry *entries;
    size_t n, cap;
};

dp_load_errors *dp_load_errors_new(void)
{
    dp_load_errors *t = nano_xcalloc(1, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void dp_load_errors_free(dp_load_errors *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    nano_free(t->entries);
    nano_free(t);
}

/* Under the lock. */
static entry *find(dp_load_errors *t, const char *app)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->entries[i].app, app) == 0)
            return &t->entries[i];
    return NULL;
}

void dp_load_errors_set(dp_load_errors *t, const nano_app_config *c, const nano_error *err)
{
    const char *app = c->spec.name;
    pthread_mutex_lock(&t->mu);
    entry *x = find(t, app);
    if (x == NULL) {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 4;
            t->entries = nano_xrealloc(t->entries, t->cap * sizeof *t->entries);
        }
        x = &t->entries[t->n++];
        memset(x, 0, sizeof *x);
        snprintf(x->app, sizeof x->app, "%s", app);
    }
    snprintf(x->e.sha256, sizeof x->e.sha256, "%s", c->code_sha256);
    snprintf(x->e.imports_sha256, sizeof x->e.imports_sha256, "%s", c->imports_sha256);
    x->e.memory_mb = c->spec.limits.memory_mb;
    x->e.cpu_ms = c->spec.limits.cpu_ms;
    x->e.node_compat = c->spec.node_compat;
    x->e.err = *err;
    pthread_mutex_unlock(&t->mu);
}

bool dp_load_errors_known(dp_load_errors *t, const nano_app_config *c, dp_load_error *out)
{
    dp_load_error e;
    return dp_load_errors_get(t, c->spec.name, &e) && strcmp(e.sha256, c->code_sha256) == 0 &&
           strcmp(e.imports_sha256, c->imports_sha256) == 0 &&
           e.memory_mb == c->spec.limits.memory_mb && e.cpu_ms == c->spec.limits.cpu_ms &&
           e.node_compat == c->spec.node_compat && (*out = e, true);
}

void dp_load_errors_clear(dp_load_errors *t, const char *app, const nano_app_config *running)
{
    pthread_mutex_lock(&t->mu);
    entry *x = find(t, app);
    if (x != NULL && (running == NULL || strcmp(x->e.sha256, running->code_sha256) != 0 ||
                      strcmp(x->e.imports_sha256, running->imports_sha256) != 0))
        *x = t->entries[--t->n];
    pthread_mutex_unlock(&t->mu);
}

bool dp_load_errors_get(dp_load_errors *t, const char *app, dp_load_error *out)
{
    if (t == NULL)
        return false;
    pthread_mutex_lock(&t->mu);
    entry *x = find(t, app);
    if (x != NULL)
        *out = x->e;
    pthread_mutex_unlock(&t->mu);
    return x != NULL;
}

void dp_load_errors_retain(dp_load_errors *t, const nano_config *cfg)
{
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->n;) {
        if (nano_config_find(cfg, t->entries[i].app, NULL) == NULL)
            t->entries[i] = t->entries[--t->n];
        else
            i++;
    }
    pthread_mutex_unlock(&t->mu);
}
