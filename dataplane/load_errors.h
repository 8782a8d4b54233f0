/* load_errors.h: the versions of apps this node refused to activate because they do not load
 * (the load check of shared/check.h failed), one entry per app: which code, and why. The
 * control thread writes it when it checks a new config; the status port (/status) and the
 * control-plane client (its status report to nanocp, another thread) read it. Every function
 * takes the table's lock; any thread. */
#ifndef DP_LOAD_ERRORS_H
#define DP_LOAD_ERRORS_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

typedef struct dp_load_errors dp_load_errors;

/* A refused version: the code's sha256 (and its imports', nano.json apps: config.h), the
 * limits it was loaded with, and the error (id and one-line message). */
typedef struct dp_load_error {
    char sha256[65];
    char imports_sha256[65];
    uint64_t memory_mb, cpu_ms;
    bool node_compat;
    nano_error err;
} dp_load_error;

/* dp_load_errors_new: an empty table (returned owned). dp_load_errors_free: NULL-safe. */
dp_load_errors *dp_load_errors_new(void);
void dp_load_errors_free(dp_load_errors *t);

/* dp_load_errors_set: c's code (with c's limits) does not load, because of err (copied);
 * replaces what the table held for the app. */
void dp_load_errors_set(dp_load_errors *t, const nano_app_config *c, const nano_error *err);

/* dp_load_errors_known: whether the table already holds a refusal of exactly c's code and
 * limits; if so copies it to *out. */
bool dp_load_errors_known(dp_load_errors *t, const nano_app_config *c, dp_load_error *out);

/* dp_load_errors_clear: app's current code loads (or the app is gone): forget its entry.
 * With running not NULL (the app's config that runs now), only an entry about other code: one
 * about the code app runs now (a worker could not load it) stays. */
void dp_load_errors_clear(dp_load_errors *t, const char *app, const nano_app_config *running);

/* dp_load_errors_get: copies app's entry into *out and returns true, or returns false when
 * the app has none. t may be NULL (false). */
bool dp_load_errors_get(dp_load_errors *t, const char *app, dp_load_error *out);

/* dp_load_errors_retain: forgets the entries of apps that cfg does not have. */
void dp_load_errors_retain(dp_load_errors *t, const nano_config *cfg);

#endif
