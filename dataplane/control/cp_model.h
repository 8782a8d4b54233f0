/* cp_model.h: the data plane's model of the control plane's config (shared/msg.h): every app
 * as nanocp describes it (SNAPAPP fields: routing, limits, deployment, vars, secrets, state),
 * at one applied seq. A snapshot replaces the model; a delta is applied to a COPY, so a bad
 * op or a failed fetch leaves the model as it was (never half-applied). From a model the
 * client builds the sealed nano_config the workers run (shared/config.h).
 *
 * Pure logic apart from the fetch callbacks (code.get, secrets.get), so unit tests drive it
 * with tables. One owner thread (the control-plane client's). */
#ifndef DP_CP_MODEL_H
#define DP_CP_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "code_cache.h"
#include "config.h"
#include "error.h"

/* Where module bytes and secret values come from. */
typedef struct dp_cp_fetcher {
    dp_code_fetch_fn code_get;
    /* secrets_get: app's secret values now, as {NAME: "value"} (returned owned). */
    int (*secrets_get)(void *ud, const char *app, json_t **secrets, nano_error *err);
    void *ud;
} dp_cp_fetcher;

typedef struct dp_cp_model {
    uint64_t seq;    /* the last applied config-log entry */
    json_t *apps;    /* {NAME: SNAPAPP} (owned; apps are never shared between models that
                        change them: a copy duplicates only the apps it touches) */
    json_t *bundles; /* {bundle sha256: {main, modules}} learnt from code.put */
} dp_cp_model;

/* A drain the data plane must run and acknowledge. */
typedef struct dp_cp_drain {
    char app[64];
    uint64_t timeout_ms;
    bool was_running; /* false: this node never ran the app (ack "drained" at once) */
} dp_cp_drain;

/* What applying a delta or a snapshot asks of the caller besides the new config. */
typedef struct dp_cp_changes {
    dp_cp_drain *drains; /* app.drain ops (or draining apps of a snapshot) */
    size_t n_drains;
    char (*removed)[64]; /* app.remove ops */
    size_t n_removed;
    size_t n_ops; /* ops applied */
    size_t n_secrets_fetched;
} dp_cp_changes;

void dp_cp_changes_fini(dp_cp_changes *ch);

void dp_cp_model_init(dp_cp_model *m);
void dp_cp_model_fini(dp_cp_model *m);

/* What a delta {first, seq} means to a model at applied. */
typedef enum dp_cp_verdict {
    DP_CP_APPLY,     /* first == applied + 1 (or it overlaps: its ops past applied apply) */
    DP_CP_DUPLICATE, /* seq <= applied: already applied, ignored */
    DP_CP_GAP,       /* first > applied + 1: entries were missed; resync with a snapshot */
} dp_cp_verdict;

dp_cp_verdict dp_cp_delta_verdict(uint64_t applied, uint64_t first, uint64_t seq);

/* dp_cp_model_from_snapshot: a model from a decoded snapshot reply's body ({seq, apps:[...]})
 * into *out (initialized by the call; fini it). running (may be NULL) is the config now
 * served: draining apps it holds become drains to run, the others drains to ack at once.
 * An app the snapshot withholds ({app, withheld}: nanocp could not send it) keeps its entry
 * from cur (may be NULL: none), marked "withheld", so the node goes on serving what it had;
 * dp_cp_model_apply then refuses ops on it (error id app_withheld) so that the caller resyncs.
 * Returns 0, or NANO_EINVAL (a duplicate app, a missing field) with *out untouched. */
int dp_cp_model_from_snapshot(const json_t *body, const dp_cp_model *cur,
                              const nano_config *running, dp_cp_model *out, dp_cp_changes *ch,
                              nano_error *err);

/* dp_cp_model_apply: applies the ops of a delta past cur->seq (an array of OPs as msg.h
 * decodes them) to a copy of cur, written to *out (initialized by the call) with seq = the
 * last op's. secret.put values are fetched with f->secrets_get. running (may be NULL) is the
 * config now served (an app.drain for an app not in it is acked at once). Returns 0, or an
 * error (an op for an app that does not exist, a failed fetch) with *out untouched and cur
 * unchanged either way. */
int dp_cp_model_apply(const dp_cp_model *cur, const json_t *ops, const dp_cp_fetcher *f,
                      const nano_config *running, dp_cp_model *out, dp_cp_changes *ch,
                      nano_error *err);

/* dp_cp_model_build: the sealed nano_config (version = m->seq) of the apps that serve: a
 * deployment (version > 0) and state "active". Code comes from cache (fetched with f as
 * needed). Every value is checked as nano.json's are (hostnames, limits, env limits,
 * required env). Returns 0 and *out (one reference, the caller's), or an error naming the app
 * with nothing returned. */
int dp_cp_model_build(const dp_cp_model *m, dp_code_cache *cache, const dp_cp_fetcher *f,
                      nano_config **out, nano_error *err);

/* dp_cp_model_swap: moves *from into *to (whose old contents are freed); *from is left empty. */
void dp_cp_model_swap(dp_cp_model *to, dp_cp_model *from);

#endif
