#define _GNU_SOURCE
#include "cp_client.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/tls/tls.h>

#include "alloc.h"
#include "buf.h"
#include "code_cache.h"
#include "cp_model.h"
#include "file.h"
#include "log.h"
#include "msg.h"
#include "nng_link.h"
#include "nng_tls.h"
#include "stats.h"

enum {
    SUB_POLL_MS = 100,     /* how often the loop looks at timers between messages */
    REQ_TIMEOUT_MS = 5000, /* one REQ/REP exchange (a code.get may carry 32 MiB) */
    STATUS_EVERY_MS = 1000,
    STATUS_GAP_MS = 100,     /* a change is reported at once, but at most 10 times a second */
    BEHIND_RESYNC_MS = 1500, /* heartbeat ahead of applied this long: resync */
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    DRAIN_GRACE_MS = 1000, /* past an app.drain's timeout before we ack timed_out */
    /* With other nanocp replicas to go to: a PUB channel silent this long (nanocp sends a
     * heartbeat every second) means this one is stopped or cut off: move on. */
    SILENT_MS = 5000,
    SECRET_WARN_EVERY_MS = 60000,
};

/* One drain this node runs (app.drain, or a draining app in a snapshot). */
typedef struct cp_drain {
    char app[64];
    uint64_t started_ms, timeout_ms, base_timeouts;
    uint64_t in_flight;
    const char *result; /* NULL while draining; "drained" | "timed_out" */
    bool is_acked;
} cp_drain;

/* One nanocp replica's pair of URLs (--control-plane takes a list: docs/nano-dp.md). */
typedef struct cp_endpoint {
    char *url, *rpc_url; /* owned */
    nng_tls_config *tls; /* tls+tcp://: verifies this endpoint's host */
    bool is_insecure;    /* secrets would cross a non-TLS link to a non-loopback host */
} cp_endpoint;

struct dp_cp_client {
    /* options (owned copies) */
    char *node, *token, *code_dir_opt, *http_addr;
    cp_endpoint endpoints[DP_CP_MAX_ENDPOINTS];
    size_t n_endpoints;
    unsigned drop_every;
    dp_worker **workers;
    size_t n_workers;
    uv_async_t *config_ready;
    dp_load_errors *load_errors;
    /* The endpoint in use (use_endpoint): endpoints[cur]'s, borrowed. */
    size_t cur;
    const char *url, *rpc_url;
    nng_tls_config *tls;
    bool is_insecure;

    uv_thread_t thread;
    atomic_bool stop;
    atomic_bool sub_lost;
    pthread_mutex_t mu; /* guards what follows up to the thread-owned part */
    nng_socket sub, req;
    bool is_open;
    nano_config *mailbox;
    uint64_t mailbox_seq;
    dp_cp_link link;

    /* thread-owned */
    dp_cp_model model;
    bool has_model;
    nano_config *running; /* the last config handed over */
    dp_cp_fetcher fetch;  /* code.get and secrets.get over the REQ socket */
    dp_code_cache cache;
    cp_drain *drains;
    size_t n_drains;
    bool is_link_broken;     /* a REQ failed at the transport: end the session */
    size_t last_reply_bytes; /* of the last REP answer (for the snapshot's log line) */
    json_t *prefetched;      /* {sha256: source} from code.batch, taken by fetch_code */
    bool no_batch;           /* nanocp refused code.batch (an older one): code.get only */
    bool needs_resync;
    uint64_t resync_at_ms; /* not before (after a failed build) */
    uint64_t behind_since_ms;
    uint64_t last_status_ms;
    uint64_t last_pub_ms;  /* a message on the PUB channel (heartbeats come every second) */
    uint64_t reported_seq; /* the applied seq the last status carried */
    uint64_t n_deltas_seen;
    uint64_t last_secret_warn_ms;
    unsigned build_failures;
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- URL helpers -------------------------------------------------------------------------- */

/* Splits scheme://host:port; host may be [v6]. */
static int split_url(const char *url, const char **host, size_t *host_len, const char **port)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return NANO_EINVAL;
    p += 3;
    const char *colon;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL || close[1] != ':')
            return NANO_EINVAL;
        *host = p + 1;
        *host_len = (size_t)(close - p - 1);
        colon = close + 1;
    } else {
        colon = strrchr(p, ':');
        if (colon == NULL)
            return NANO_EINVAL;
        *host = p;
        *host_len = (size_t)(colon - p);
    }
    *port = colon + 1;
    return 0;
}

int dp_cp_url_host(const char *url, char *out, size_t cap)
{
    const char *h, *port;
    size_t n;
    if (split_url(url, &h, &n, &port) != 0 || n >= cap)
        return NANO_EINVAL;
    memcpy(out, h, n);
    out[n] = '\0';
    return 0;
}

int dp_cp_default_rpc_url(const char *url, char *out, size_t cap)
{
    const char *h, *port;
    size_t n;
    if (split_url(url, &h, &n, &port) != 0)
        return NANO_EINVAL;
    char *end = NULL;
    long p = strtol(port, &end, 10);
    if (end == port || *end != '\0' || p < 1 || p >= 65535)
        return NANO_EINVAL;
    int len = snprintf(out, cap, "%.*s%ld", (int)(port - url), url, p + 1);
    return len < 0 || (size_t)len >= cap ? NANO_EINVAL : 0;
}

bool dp_cp_host_is_loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* --- the link state --------------------------------------------------------------------------- */

#define LINK_SET(c, stmt)                                                                          \
    do {                                                                                           \
        pthread_mutex_lock(&(c)->mu);                                                              \
        stmt;                                                                                      \
        pthread_mutex_unlock(&(c)->mu);                                                            \
    } while (0)

void dp_cp_client_link(dp_cp_client *c, dp_cp_link *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->link;
    pthread_mutex_unlock(&c->mu);
}

nano_config *dp_cp_client_take(dp_cp_client *c, uint64_t *seq)
{
    pthread_mutex_lock(&c->mu);
    nano_config *cfg = c->mailbox;
    *seq = c->mailbox_seq;
    c->mailbox = NULL;
    pthread_mutex_unlock(&c->mu);
    return cfg;
}

/* Hands cfg (taken) to the control thread; a config it has not picked up yet is replaced. */
static void publish(dp_cp_client *c, nano_config *cfg)
{
    nano_config_unref(c->running);
    c->running = nano_config_ref(cfg);
    pthread_mutex_lock(&c->mu);
    nano_config *stale = c->mailbox;
    c->mailbox = cfg;
    c->mailbox_seq = nano_config_version(cfg);
    c->link.applied_seq = nano_config_version(cfg);
    c->link.has_config = true;
    pthread_mutex_unlock(&c->mu);
    nano_config_unref(stale);
    uv_async_send(c->config_ready);
}

/* --- REQ/REP ----------------------------------------------------------------------------------- */

static void warn_secrets(dp_cp_client *c, const char *what)
{
    uint64_t now = mono_ms();
    if (!c->is_insecure ||
        (c->last_secret_warn_ms != 0 && now - c->last_secret_warn_ms < SECRET_WARN_EVERY_MS))
        return;
    c->last_secret_warn_ms = now;
    NANO_WARN("cpclient.insecure_secrets", "what=%s url=%s detail=%s", what, c->rpc_url,
              "secret values cross a link without TLS to a non-loopback host: use tls+tcp://");
}

/* One exchange. fields (taken) are the request's. A transport failure marks the link broken;
 * a reply that does not decode is dropped and is an error; an ok:false reply is an error
 * with its code. */
static int rpc(dp_cp_client *c, nano_msg_type type, json_t *fields, nano_msg *reply,
               nano_error *err)
{
    nano_buf b = NANO_BUF_INIT;
    int rc = nano_msg_encode_request(type, c->node, c->token, fields, &b, err);
    json_decref(fields);
    if (rc != 0) {
        nano_buf_fini(&b);
        return rc;
    }
    nng_msg *r = NULL;
    nano_error why = {0};
    rc = nano_nng_req_call(c->req, c->rpc_url, b.data, b.len, &r, &why);
    nano_buf_fini(&b);
    if (rc != 0) {
        c->is_link_broken = true;
        return nano_error_set(err, NANO_EIO, "cp_unreachable", "%s: %s", nano_msg_type_name(type),
                              why.message);
    }
    nano_msg m = {0};
    size_t n = nng_msg_len(r);
    c->last_reply_bytes = n;
    rc = nano_msg_decode_reply(type, nng_msg_body(r), n, &m, err);
    nng_msg_free(r);
    if (rc != 0) {
        LINK_SET(c, c->link.messages_dropped++);
        NANO_WARN("cpclient.message_dropped", "channel=rep type=%s bytes=%zu error_id=%s error=%s",
                  nano_msg_type_name(type), n, err->id, err->message);
        return rc;
    }
    if (!m.ok) {
        rc = nano_error_set(err, NANO_EINVAL, "cp_refused", "%s: nanocp answered %s: %s",
                            nano_msg_type_name(type), m.error_code ? m.error_code : "?",
                            m.error_message ? m.error_message : "");
        nano_msg_fini(&m);
        return rc;
    }
    *reply = m;
    return 0;
}

static int fetch_code(void *ud, const char *sha, char **data, size_t *len, nano_error *err)
{
    dp_cp_client *c = ud;
    json_t *got_early = c->prefetched != NULL ? json_object_get(c->prefetched, sha) : NULL;
    if (got_early != NULL) {
        size_t n = json_string_length(got_early);
        char *copy = nano_xmalloc(n + 1);
        memcpy(copy, json_string_value(got_early), n + 1);
        json_object_del(c->prefetched, sha);
        *data = copy;
        *len = n;
        return 0;
    }
    nano_msg m = {0};
    int rc = rpc(c, NANO_MSG_CODE_GET, json_pack("{s:s}", "sha256", sha), &m, err);
    if (rc != 0)
        return rc;
    json_t *d = json_object_get(m.body, "data");
    const char *got = json_string_value(json_object_get(m.body, "sha256"));
    if (!json_is_string(d) || got == NULL || strcmp(got, sha) != 0) {
        nano_msg_fini(&m);
        return nano_error_set(err, NANO_EINVAL, "code_mismatch",
                              "code.get %.12s: the reply names another module", sha);
    }
    size_t n = json_string_length(d);
    char *copy = nano_malloc(n + 1);
    if (copy == NULL) {
        nano_msg_fini(&m);
        return nano_error_set(err, NANO_ENOMEM, "oom", "code.get %.12s: out of memory", sha);
    }
    memcpy(copy, json_string_value(d), n + 1);
    nano_msg_fini(&m);
    *data = copy;
    *len = n;
    return 0;
}

static int fetch_secrets(void *ud, const char *app, json_t **out, nano_error *err)
{
    dp_cp_client *c = ud;
    nano_msg m = {0};
    int rc = rpc(c, NANO_MSG_SECRETS_GET, json_pack("{s:s}", "app", app), &m, err);
    if (rc != 0)
        return rc;
    warn_secrets(c, "secrets.get");
    *out = json_incref(json_object_get(m.body, "secrets"));
    nano_msg_fini(&m);
    return 0;
}

/* --- drains ------------------------------------------------------------------------------------ */

/* Sums an app's state over the workers: is it gone from every one, and what is in flight. */
static bool probe(dp_cp_client *c, const char *app, uint64_t *in_flight, uint64_t *timeouts)
{
    bool gone = true;
    *in_flight = *timeouts = 0;
    for (size_t i = 0; i < c->n_workers; i++) {
        dp_app_state st;
        uint64_t inf, to;
        if (!dp_stats_peek(dp_worker_stats(c->workers[i]), app, &st, &inf, &to))
            continue; /* this worker never ran it */
        *in_flight += inf;
        *timeouts += to;
        if (st != DP_APP_REMOVED)
            gone = false;
    }
    return gone;
}

static cp_drain *drain_find(dp_cp_client *c, const char *app)
{
    for (size_t i = 0; i < c->n_drains; i++)
        if (strcmp(c->drains[i].app, app) == 0)
            return &c->drains[i];
    return NULL;
}

static void drain_forget(dp_cp_client *c, const char *app)
{
    cp_drain *d = drain_find(c, app);
    if (d == NULL)
        return;
    *d = c->drains[--c->n_drains];
}

static void drains_add(dp_cp_client *c, const dp_cp_changes *ch)
{
    for (size_t i = 0; i < ch->n_removed; i++)
        drain_forget(c, ch->removed[i]);
    for (size_t i = 0; i < ch->n_drains; i++) {
        const dp_cp_drain *x = &ch->drains[i];
        if (drain_find(c, x->app) != NULL)
            continue; /* the same drain again (a resync): it keeps its start */
        c->drains = nano_xrealloc(c->drains, (c->n_drains + 1) * sizeof *c->drains);
        cp_drain *d = &c->drains[c->n_drains++];
        memset(d, 0, sizeof *d);
        snprintf(d->app, sizeof d->app, "%s", x->app);
        d->started_ms = mono_ms();
        d->timeout_ms = x->timeout_ms;
        uint64_t inf;
        probe(c, d->app, &inf, &d->base_timeouts);
        if (!x->was_running)
            d->result = "drained"; /* never ran here: nothing to wait for */
        NANO_INFO("cpclient.drain_started", "app=%s timeout_ms=%" PRIu64 " ran_here=%s", d->app,
                  d->timeout_ms, x->was_running ? "true" : "false");
    }
}

/* Settles drains whose app is gone from every worker (or whose timeout passed) and sends
 * each one's ack once. */
static int drains_check(dp_cp_client *c, nano_error *err)
{
    uint64_t now = mono_ms();
    for (size_t i = 0; i < c->n_drains; i++) {
        cp_drain *d = &c->drains[i];
        if (d->result == NULL) {
            uint64_t inf, timeouts;
            bool gone = probe(c, d->app, &inf, &timeouts);
            d->in_flight = inf;
            if (gone)
                d->result = timeouts > d->base_timeouts ? "timed_out" : "drained";
            else if (now - d->started_ms > d->timeout_ms + DRAIN_GRACE_MS)
                d->result = "timed_out";
            if (d->result != NULL)
                NANO_INFO("cpclient.drain_done",
                          "app=%s result=%s in_flight=%" PRIu64 " ms=%" PRIu64, d->app, d->result,
                          d->in_flight, now - d->started_ms);
        }
        if (d->result == NULL || d->is_acked)
            continue;
        nano_msg m = {0};
        int rc = rpc(c, NANO_MSG_DRAIN_ACK,
                     json_pack("{s:s, s:s, s:I}", "app", d->app, "result", d->result, "in_flight",
                               (json_int_t)d->in_flight),
                     &m, err);
        if (rc != 0 && c->is_link_broken)
            return rc; /* sent again after the reconnect */
        d->is_acked = true;
        if (rc == 0)
            NANO_INFO("cpclient.drain_acked", "app=%s result=%s in_flight=%" PRIu64, d->app,
                      d->result, d->in_flight);
        else
            NANO_WARN("cpclient.drain_ack_refused", "app=%s error=%s", d->app, err->message);
        nano_msg_fini(&m);
    }
    return 0;
}

/* --- status ------------------------------------------------------------------------------------ */

static int send_status(dp_cp_client *c, nano_error *err)
{
    json_t *apps = json_object();
    const char *name;
    json_t *a;
    json_object_foreach(c->model.apps, name, a) {
        uint64_t inf, to;
        probe(c, name, &inf, &to);
        const char *state = json_string_value(json_object_get(a, "state"));
        cp_drain *d = drain_find(c, name);
        if (d != NULL)
            state = d->result != NULL ? d->result : "draining";
        if (state == NULL || (strcmp(state, "active") != 0 && strcmp(state, "draining") != 0 &&
                              strcmp(state, "drained") != 0 && strcmp(state, "timed_out") != 0))
            state = "active";
        json_t *v = json_object_get(a, "version");
        json_t *st = json_pack("{s:s, s:I, s:I}", "state", state, "in_flight", (json_int_t)inf,
                               "version", json_is_integer(v) ? json_integer_value(v) : 0);
        /* The version nanocp made active did not load here: say why (the previous one, if
         * any, serves). Only then, so an older nanocp sees the status it knows. */
        dp_load_error e;
        const char *sha = json_string_value(json_object_get(a, "sha256"));
        if (dp_load_errors_get(c->load_errors, name, &e) && sha != NULL &&
            strcmp(sha, e.sha256) == 0)
            json_object_set_new(
                st, "load_error",
                json_pack("{s:s, s:s}", "code", e.err.id, "message", e.err.message));
        json_object_set_new(apps, name, st);
    }
    nano_msg m = {0};
    c->reported_seq = c->model.seq;
    int rc = rpc(c, NANO_MSG_STATUS,
                 json_pack("{s:I, s:o}", "applied_seq", (json_int_t)c->model.seq, "apps", apps), &m,
                 err);
    if (rc != 0)
        return c->is_link_broken ? rc : 0; /* a refused status is logged by nanocp's side */
    if (m.seq > c->model.seq && c->behind_since_ms == 0)
        c->behind_since_ms = mono_ms();
    nano_msg_fini(&m);
    return 0;
}

/* --- snapshots and deltas ------------------------------------------------------------------------ */

static const dp_cp_fetcher *fetcher(dp_cp_client *c)
{
    return &c->fetch;
}

static void schedule_resync(dp_cp_client *c)
{
    /* After repeated failures, wait longer before asking again (1 s .. 5 s). */
    uint64_t wait = c->build_failures == 0 ? 0 : c->build_failures * 1000u;
    c->needs_resync = true;
    c->resync_at_ms = mono_ms() + (wait > 5000 ? 5000 : wait);
}

/* Fetches, in code.batch round trips, every module the apps of model use that the code cache
 * does not hold (a bundle directory that exists is complete), for fetch_code to take: a
 * snapshot on a cold cache is then a few round trips, not one per module. What a batch leaves
 * out, code.get fetches. Returns an error only when the link broke. */
static int prefetch_code(dp_cp_client *c, const dp_cp_model *model, nano_error *err)
{
    if (c->no_batch)
        return 0;
    json_t *want = json_array(), *seen = json_object();
    const char *name;
    json_t *app;
    json_object_foreach(model->apps, name, app) {
        const char *bundle = json_string_value(json_object_get(app, "sha256"));
        char dir[PATH_MAX];
        struct stat st;
        if (bundle == NULL ||
            (snprintf(dir, sizeof dir, "%s/%s", c->cache.dir, bundle) < (int)sizeof dir &&
             stat(dir, &st) == 0))
            continue;
        size_t i;
        json_t *mod;
        json_array_foreach(json_object_get(app, "modules"), i, mod) {
            const char *sha = json_string_value(json_object_get(mod, "sha256"));
            if (sha == NULL || json_object_get(seen, sha) != NULL ||
                json_object_get(c->cache.modules, sha) != NULL)
                continue;
            json_object_set_new(seen, sha, json_true());
            json_array_append_new(want, json_string(sha));
        }
    }
    json_decref(seen);
    if (c->prefetched == NULL)
        c->prefetched = json_object();
    int rc = 0;
    size_t n = json_array_size(want), batches = 0;
    uint64_t t0 = mono_ms();
    for (size_t from = 0; from < n && rc == 0; from += NANO_MSG_BATCH_MAX) {
        json_t *part = json_array();
        for (size_t i = from; i < n && i < from + NANO_MSG_BATCH_MAX; i++)
            json_array_append(part, json_array_get(want, i));
        nano_msg m = {0};
        rc = rpc(c, NANO_MSG_CODE_BATCH, json_pack("{s:o}", "sha256s", part), &m, err);
        if (rc != 0) {
            if (!c->is_link_broken) { /* refused: an older nanocp; code.get will do */
                NANO_INFO("cpclient.code_batch_refused", "error=%s (fetching modules one by one)",
                          err->message);
                c->no_batch = true;
                rc = 0;
            }
            break;
        }
        json_object_update(c->prefetched, json_object_get(m.body, "modules"));
        nano_msg_fini(&m);
        batches++;
    }
    if (rc == 0 && n > 0)
        NANO_INFO("cpclient.code_prefetched", "modules=%zu received=%zu batches=%zu ms=%" PRIu64, n,
                  json_object_size(c->prefetched), batches, mono_ms() - t0);
    json_decref(want);
    return rc;
}

static int resync(dp_cp_client *c, const char *why, nano_error *err)
{
    uint64_t t0 = mono_ms();
    c->needs_resync = false;
    nano_msg m = {0};
    int rc = rpc(c, NANO_MSG_SNAPSHOT, NULL, &m, err);
    uint64_t t_fetched = mono_ms();
    size_t bytes = c->last_reply_bytes;
    if (rc != 0) {
        if (!c->is_link_broken) {
            c->build_failures++;
            schedule_resync(c);
            NANO_ERROR("cpclient.snapshot_failed", "why=%s error_id=%s error=%s", why, err->id,
                       err->message);
        }
        return c->is_link_broken ? rc : 0;
    }
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_config *cfg = NULL;
    rc = dp_cp_model_from_snapshot(m.body, c->has_model ? &c->model : NULL, c->running, &next, &ch,
                                   err);
    if (rc == 0 && json_object_size(next.apps) > 0) {
        const char *name;
        json_t *a;
        json_object_foreach(next.apps, name, a)
            if (json_object_size(json_object_get(a, "secrets")) > 0)
                warn_secrets(c, "snapshot");
    }
    if (rc == 0)
        rc = prefetch_code(c, &next, err);
    if (rc == 0)
        rc = dp_cp_model_build(&next, &c->cache, fetcher(c), &cfg, err);
    if (c->prefetched != NULL)
        json_object_clear(c->prefetched); /* what the build did not use goes */
    nano_msg_fini(&m);
    if (rc != 0) {
        dp_cp_model_fini(&next);
        dp_cp_changes_fini(&ch);
        if (c->is_link_broken)
            return rc;
        c->build_failures++;
        schedule_resync(c);
        NANO_ERROR("cpclient.snapshot_rejected", "why=%s seq_kept=%" PRIu64 " error_id=%s error=%s",
                   why, c->model.seq, err->id, err->message);
        return 0;
    }
    bool first = !c->has_model;
    uint64_t old = c->model.seq;
    dp_cp_model_swap(&c->model, &next);
    c->has_model = true;
    c->build_failures = 0;
    c->behind_since_ms = 0;
    /* Apps gone while we were away: their drains are over. */
    for (size_t i = 0; i < c->n_drains;) {
        if (json_object_get(c->model.apps, c->drains[i].app) == NULL)
            drain_forget(c, c->drains[i].app);
        else
            i++;
    }
    drains_add(c, &ch);
    size_t n_apps = nano_config_n_apps(cfg);
    publish(c, cfg);
    if (!first)
        LINK_SET(c, c->link.resyncs++);
    /* fetch_ms: request, nanocp building the snapshot, transfer and decoding; the rest is
     * the model, code fetches (a cold cache) and the new nano_config. */
    NANO_INFO("cpclient.snapshot_applied",
              "why=%s seq=%" PRIu64 " previous_seq=%" PRIu64 " apps=%zu serving=%zu bytes=%zu"
              " fetch_ms=%" PRIu64 " ms=%" PRIu64,
              why, c->model.seq, old, json_object_size(c->model.apps), n_apps, bytes,
              t_fetched - t0, mono_ms() - t0);
    dp_cp_changes_fini(&ch);
    return 0;
}

static int apply_delta(dp_cp_client *c, const nano_msg *d, nano_error *err)
{
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_config *cfg = NULL;
    int rc = dp_cp_model_apply(&c->model, json_object_get(d->body, "ops"), fetcher(c), c->running,
                               &next, &ch, err);
    if (rc == 0)
        rc = dp_cp_model_build(&next, &c->cache, fetcher(c), &cfg, err);
    if (rc != 0) {
        dp_cp_model_fini(&next);
        dp_cp_changes_fini(&ch);
        if (c->is_link_broken)
            return rc;
        LINK_SET(c, c->link.deltas_rejected++);
        NANO_ERROR("cpclient.delta_rejected",
                   "first=%" PRIu64 " seq=%" PRIu64 " seq_kept=%" PRIu64 " error_id=%s error=%s",
                   d->first, d->seq, c->model.seq, err->id, err->message);
        c->build_failures++;
        schedule_resync(c);
        return 0;
    }
    dp_cp_model_swap(&c->model, &next);
    if (c->behind_since_ms != 0 && c->model.seq >= c->link.heartbeat_seq)
        c->behind_since_ms = 0;
    drains_add(c, &ch);
    size_t n_apps = nano_config_n_apps(cfg);
    publish(c, cfg);
    LINK_SET(c, c->link.deltas_applied++);
    NANO_INFO("cpclient.delta_applied", "first=%" PRIu64 " seq=%" PRIu64 " ops=%zu serving=%zu",
              d->first, d->seq, ch.n_ops, n_apps);
    dp_cp_changes_fini(&ch);
    return 0;
}

static int on_pub(dp_cp_client *c, const void *data, size_t len, nano_error *err)
{
    c->last_pub_ms = mono_ms();
    nano_msg m = {0};
    nano_error derr = {0};
    if (nano_msg_decode_pub(data, len, &m, &derr) != 0) {
        LINK_SET(c, c->link.messages_dropped++);
        NANO_WARN("cpclient.message_dropped", "channel=sub bytes=%zu error_id=%s error=%s", len,
                  derr.id, derr.message);
        return 0;
    }
    int rc = 0;
    if (m.type == NANO_MSG_HEARTBEAT) {
        uint64_t now = wall_ms();
        LINK_SET(c, (c->link.heartbeat_seq = m.seq, c->link.last_heartbeat_ms = now));
        if (m.seq > c->model.seq) {
            if (c->behind_since_ms == 0)
                c->behind_since_ms = mono_ms();
        } else {
            c->behind_since_ms = 0;
        }
    } else if (m.type == NANO_MSG_DELTA) {
        c->n_deltas_seen++;
        if (c->drop_every > 0 && c->n_deltas_seen % c->drop_every == 0) {
            NANO_WARN("cpclient.delta_dropped_test", "first=%" PRIu64 " seq=%" PRIu64 " detail=%s",
                      m.first, m.seq, "NANO_TEST_DROP_DELTAS test hook");
        } else if (c->needs_resync) {
            /* A snapshot is due; it covers this delta or the ones after it apply on top. */
        } else {
            switch (dp_cp_delta_verdict(c->model.seq, m.first, m.seq)) {
            case DP_CP_DUPLICATE:
                NANO_DEBUG("cpclient.delta_duplicate", "seq=%" PRIu64 " applied=%" PRIu64, m.seq,
                           c->model.seq);
                break;
            case DP_CP_GAP:
                NANO_WARN("cpclient.gap", "applied=%" PRIu64 " first=%" PRIu64 " seq=%" PRIu64,
                          c->model.seq, m.first, m.seq);
                rc = resync(c, "gap", err);
                break;
            case DP_CP_APPLY: rc = apply_delta(c, &m, err); break;
            }
        }
    }
    nano_msg_fini(&m);
    return rc;
}

/* --- sockets and the session ----------------------------------------------------------------- */

static void on_sub_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    dp_cp_client *c = arg;
    (void)p;
    if (ev == NNG_PIPE_EV_REM_POST)
        atomic_store(&c->sub_lost, true);
}

static int dial(dp_cp_client *c, nng_socket s, const char *url, nano_error *err)
{
    nano_nng_dial_options o = {
        .tls = c->tls, .reconnect_min_ms = BACKOFF_MIN_MS, .reconnect_max_ms = BACKOFF_MAX_MS};
    nano_error why = {0};
    if (nano_nng_dial(s, url, &o, &why) != 0) /* blocking: a refused connection fails here */
        return nano_error_set(err, NANO_EIO, "cp_unreachable", "%s", why.message);
    return 0;
}

static void close_sockets(dp_cp_client *c)
{
    pthread_mutex_lock(&c->mu);
    if (c->is_open) {
        nng_close(c->sub);
        nng_close(c->req);
        c->is_open = false;
    }
    c->link.is_connected = false;
    pthread_mutex_unlock(&c->mu);
}

static int open_sockets(dp_cp_client *c, nano_error *err)
{
    nng_socket sub, req;
    int rv = nng_sub0_open(&sub);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "nng", "sub socket: %s", nng_strerror(rv));
    int rc = nano_nng_req_open(&req, REQ_TIMEOUT_MS, NANO_MSG_MAX_BYTES, err);
    if (rc != 0) {
        nng_close(sub);
        return rc;
    }
    nng_socket_set(sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
    nng_socket_set_ms(sub, NNG_OPT_RECVTIMEO, SUB_POLL_MS);
    nng_socket_set_size(sub, NNG_OPT_RECVMAXSZ, NANO_MSG_MAX_BYTES);
    nng_socket_set_int(sub, NNG_OPT_RECVBUF, 8192); /* deltas wait here during a snapshot */
    atomic_store(&c->sub_lost, false);
    nng_pipe_notify(sub, NNG_PIPE_EV_REM_POST, on_sub_pipe, c);
    pthread_mutex_lock(&c->mu);
    bool stopping = atomic_load(&c->stop);
    if (!stopping) {
        c->sub = sub;
        c->req = req;
        c->is_open = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (stopping) {
        nng_close(sub);
        nng_close(req);
        return nano_error_set(err, NANO_ESTATE, "stopping", "stopping");
    }
    rc = dial(c, req, c->rpc_url, err);
    if (rc == 0)
        rc = dial(c, sub, c->url, err);
    return rc;
}

/* One connection's life: hello, snapshot, then deltas until an error. Returns the error that
 * ended it; *got_config tells the caller to reset its backoff. */
static int session(dp_cp_client *c, bool *got_config, nano_error *err)
{
    c->is_link_broken = false;
    int rc = open_sockets(c, err);
    if (rc != 0)
        return rc;
    nano_msg m = {0};
    rc = rpc(c, NANO_MSG_HELLO,
             json_pack("{s:s, s:s, s:[s, s]}", "version", NANO_VERSION, "addr", c->http_addr,
                       "capabilities", "delta.v1", "drain.ack"),
             &m, err);
    if (rc != 0)
        return rc;
    NANO_INFO("cpclient.connected", "node=%s url=%s rpc=%s nanocp_seq=%" PRIu64 " applied=%" PRIu64,
              c->node, c->url, c->rpc_url, m.seq, c->model.seq);
    nano_msg_fini(&m);
    LINK_SET(c, c->link.is_connected = true);
    rc = resync(c, c->has_model ? "reconnect" : "start", err);
    if (rc != 0)
        return rc;
    *got_config = c->has_model;
    c->last_status_ms = 0;
    c->last_pub_ms = mono_ms();
    while (!atomic_load(&c->stop)) {
        if (atomic_load(&c->sub_lost))
            return nano_error_set(err, NANO_EIO, "cp_unreachable", "%s: connection lost", c->url);
        if (c->n_endpoints > 1 && mono_ms() - c->last_pub_ms > SILENT_MS)
            return nano_error_set(err, NANO_EIO, "cp_silent",
                                  "%s: no heartbeat for %d ms (nanocp stopped or cut off)", c->url,
                                  SILENT_MS);
        /* Once a second, and at once when a snapshot or delta was applied since the last
         * report: nanoctl nodes shows the new seq without waiting for the next second. (A
         * burst of deltas is reported at most every STATUS_GAP_MS: a fleet's statuses would
         * otherwise multiply by the deltas.) */
        uint64_t now = mono_ms();
        uint64_t since = now - c->last_status_ms;
        bool is_new = c->model.seq != c->reported_seq;
        if (since >= STATUS_EVERY_MS || (is_new && since >= STATUS_GAP_MS)) {
            c->last_status_ms = now;
            if ((rc = send_status(c, err)) != 0)
                return rc;
        }
        char *buf = NULL;
        size_t n = 0;
        int rv = nng_recv(c->sub, &buf, &n, NNG_FLAG_ALLOC);
        if (rv == 0) {
            rc = on_pub(c, buf, n, err);
            nng_free(buf, n);
        } else if (rv != NNG_ETIMEDOUT) {
            return nano_error_set(err, NANO_EIO, "cp_unreachable", "%s: %s", c->url,
                                  nng_strerror(rv));
        }
        now = mono_ms();
        if (rc == 0 && c->needs_resync && now >= c->resync_at_ms)
            rc = resync(c, "retry", err);
        if (rc == 0 && c->behind_since_ms != 0 && now - c->behind_since_ms > BEHIND_RESYNC_MS) {
            NANO_WARN("cpclient.behind",
                      "applied=%" PRIu64 " heartbeat_seq=%" PRIu64 " for_ms=%" PRIu64, c->model.seq,
                      c->link.heartbeat_seq, now - c->behind_since_ms);
            c->behind_since_ms = 0;
            rc = resync(c, "behind", err);
        }
        if (rc == 0)
            rc = drains_check(c, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Makes endpoint i the one the next session uses. */
static void use_endpoint(dp_cp_client *c, size_t i)
{
    cp_endpoint *e = &c->endpoints[i];
    c->cur = i;
    c->url = e->url;
    c->rpc_url = e->rpc_url;
    c->tls = e->tls;
    c->is_insecure = e->is_insecure;
    pthread_mutex_lock(&c->mu);
    snprintf(c->link.url, sizeof c->link.url, "%s", c->url);
    snprintf(c->link.rpc_url, sizeof c->link.rpc_url, "%s", c->rpc_url);
    pthread_mutex_unlock(&c->mu);
}

/* Sessions until stopped. A session that ends moves on to the next endpoint (replicas share
 * one store, so the seq this node applied means the same on each: it resyncs from there); the
 * pause before the next one grows only once every endpoint failed in a row. */
static void client_main(void *arg)
{
    dp_cp_client *c = arg;
    uint64_t backoff = BACKOFF_MIN_MS;
    size_t failed_in_a_row = 0;
    while (!atomic_load(&c->stop)) {
        nano_error err = {0};
        bool got_config = false;
        int rc = session(c, &got_config, &err);
        close_sockets(c);
        if (atomic_load(&c->stop))
            break;
        if (got_config) {
            backoff = BACKOFF_MIN_MS;
            failed_in_a_row = 0;
        }
        failed_in_a_row++;
        bool has_untried = failed_in_a_row < c->n_endpoints;
        uint64_t wait = has_untried ? BACKOFF_MIN_MS : backoff;
        LINK_SET(c, c->link.reconnects++);
        const char *from = c->url;
        if (c->n_endpoints > 1)
            use_endpoint(c, (c->cur + 1) % c->n_endpoints);
        NANO_WARN("cpclient.reconnecting",
                  "retry_in_ms=%" PRIu64 " serving_seq=%" PRIu64 " from=%s to=%s error_id=%s "
                  "error=%s",
                  wait, c->model.seq, from, c->url, rc != 0 ? err.id : "closed",
                  rc != 0 ? err.message : "session ended");
        for (uint64_t slept = 0; slept < wait && !atomic_load(&c->stop); slept += 50)
            uv_sleep(50);
        if (!has_untried)
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

/* --- start and stop ------------------------------------------------------------------------------ */

/* The TLS configuration of every tls+tcp:// endpoint (each verifies its own host). */
static int make_tls(dp_cp_client *c, const dp_cp_client_options *o, nano_error *err)
{
    bool wants_any = false;
    for (size_t i = 0; i < c->n_endpoints; i++) {
        cp_endpoint *e = &c->endpoints[i];
        if (strncmp(e->url, "tls+tcp://", 10) != 0 && strncmp(e->rpc_url, "tls+tcp://", 10) != 0)
            continue;
        wants_any = true;
        char host[256];
        if (dp_cp_url_host(e->url, host, sizeof host) != 0)
            return nano_error_set(err, NANO_EINVAL, "usage", "%s: expected tls+tcp://HOST:PORT",
                                  e->url);
        nano_tls_files f = {o->cert_file, "--control-plane-cert",
                            o->key_file,  "--control-plane-key",
                            o->ca_file,   "--control-plane-ca"};
        int rc = nano_tls_client_config(&f, host, &e->tls, err);
        if (rc != 0) {
            err->code = NANO_EINVAL; /* a usage error: exit 2 */
            return rc;
        }
    }
    if (!wants_any && (o->ca_file != NULL || o->cert_file != NULL))
        return nano_error_set(err, NANO_EINVAL, "usage",
                              "--control-plane-ca/-cert/-key need tls+tcp:// URLs");
    return 0;
}

/* A control-plane URL: printable, short enough for /status, SCHEME://HOST:PORT. */
static int check_url(const char *url, nano_error *err)
{
    char host[256];
    bool clean = strlen(url) < sizeof((dp_cp_link *)0)->url;
    for (const char *p = url; *p && clean; p++)
        clean = *p > ' ' && *p < 0x7f && *p != '"' && *p != '\\';
    if (!clean)
        return nano_error_set(err, NANO_EINVAL, "usage",
                              "control-plane URL: printable ASCII without quotes, < 256 bytes");
    if (strncmp(url, "tcp://", 6) != 0 && strncmp(url, "tls+tcp://", 10) != 0)
        return nano_error_set(err, NANO_EINVAL, "usage",
                              "%s: use tcp://HOST:PORT or tls+tcp://HOST:PORT", url);
    if (dp_cp_url_host(url, host, sizeof host) != 0)
        return nano_error_set(err, NANO_EINVAL, "usage", "%s: expected SCHEME://HOST:PORT", url);
    return 0;
}

/* Splits a comma-separated list into owned strings (at most DP_CP_MAX_ENDPOINTS, none
 * empty). */
static int split_urls(const char *list, const char *what, char **out, size_t *n, nano_error *err)
{
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || *n == DP_CP_MAX_ENDPOINTS)
            return nano_error_set(err, NANO_EINVAL, "usage",
                                  "%s: 1 to %d comma-separated URLs, none empty", what,
                                  DP_CP_MAX_ENDPOINTS);
        out[(*n)++] = nano_xstrndup(p, len);
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

/* The endpoints from the options: one per --control-plane URL, each with its RPC URL (the
 * same host, port + 1, unless --control-plane-rpc lists one per URL). */
static int make_endpoints(dp_cp_client *c, const dp_cp_client_options *o, nano_error *err)
{
    char *urls[DP_CP_MAX_ENDPOINTS] = {0}, *rpcs[DP_CP_MAX_ENDPOINTS] = {0};
    size_t n = 0, n_rpc = 0;
    int rc = split_urls(o->url, "--control-plane", urls, &n, err);
    if (rc == 0 && o->rpc_url != NULL) {
        rc = split_urls(o->rpc_url, "--control-plane-rpc", rpcs, &n_rpc, err);
        if (rc == 0 && n_rpc != n)
            rc = nano_error_set(err, NANO_EINVAL, "usage",
                                "--control-plane-rpc: one URL per --control-plane URL (%zu, not "
                                "%zu)",
                                n, n_rpc);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char rpc[512];
        if (rpcs[i] == NULL) {
            if (dp_cp_default_rpc_url(urls[i], rpc, sizeof rpc) != 0)
                rc = nano_error_set(err, NANO_EINVAL, "usage",
                                    "--control-plane %s: expected tcp://HOST:PORT", urls[i]);
            else
                rpcs[i] = nano_xstrdup(rpc);
        }
        c->endpoints[i] = (cp_endpoint){.url = urls[i], .rpc_url = rpcs[i]};
        urls[i] = rpcs[i] = NULL;
        c->n_endpoints = i + 1;
    }
    for (size_t i = 0; i < DP_CP_MAX_ENDPOINTS; i++) {
        nano_free(urls[i]);
        nano_free(rpcs[i]);
    }
    return rc;
}

static void client_free(dp_cp_client *c)
{
    for (size_t i = 0; i < c->n_endpoints; i++) {
        if (c->endpoints[i].tls != NULL)
            nng_tls_config_free(c->endpoints[i].tls);
        nano_free(c->endpoints[i].url);
        nano_free(c->endpoints[i].rpc_url);
    }
    if (c->token != NULL)
        explicit_bzero(c->token, strlen(c->token));
    nano_free(c->node);
    nano_free(c->token);
    nano_free(c->http_addr);
    nano_config_unref(c->mailbox);
    nano_config_unref(c->running);
    dp_cp_model_fini(&c->model);
    dp_code_cache_fini(&c->cache);
    json_decref(c->prefetched);
    nano_free(c->drains);
    pthread_mutex_destroy(&c->mu);
    nano_free(c);
}

int dp_cp_client_start(const dp_cp_client_options *o, dp_cp_client **out, nano_error *err)
{
    if (!nano_msg_node_valid(o->node))
        return nano_error_set(err, NANO_EINVAL, "usage",
                              "--node %s: use 1 to 63 of A-Z a-z 0-9 . _ -", o->node);
    if (strlen(o->token) > NANO_MSG_TOKEN_MAX)
        return nano_error_set(err, NANO_EINVAL, "usage", "the node token is over 1024 bytes");
    dp_cp_client *c = nano_xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->node = nano_xstrdup(o->node);
    c->token = nano_xstrdup(o->token);
    c->http_addr = nano_xstrdup(o->http_addr);
    c->drop_every = o->drop_every;
    c->workers = o->workers;
    c->load_errors = o->load_errors;
    c->n_workers = o->n_workers;
    c->config_ready = o->config_ready;
    dp_cp_model_init(&c->model);
    c->fetch = (dp_cp_fetcher){fetch_code, fetch_secrets, c};
    int rc = make_endpoints(c, o, err);
    for (size_t i = 0; i < c->n_endpoints && rc == 0; i++) {
        rc = check_url(c->endpoints[i].url, err);
        if (rc == 0)
            rc = check_url(c->endpoints[i].rpc_url, err);
    }
    if (rc == 0)
        rc = make_tls(c, o, err);
    if (rc == 0)
        rc = dp_code_cache_init(&c->cache, o->code_dir, err);
    if (rc != 0) {
        client_free(c);
        return rc;
    }
    for (size_t i = 0; i < c->n_endpoints; i++) {
        cp_endpoint *e = &c->endpoints[i];
        char host[256];
        dp_cp_url_host(e->rpc_url, host, sizeof host);
        e->is_insecure = strncmp(e->rpc_url, "tls+tcp://", 10) != 0 &&
                         !dp_cp_host_is_loopback(host);
        if (e->is_insecure)
            NANO_WARN("cpclient.insecure_link", "rpc=%s host=%s detail=%s", e->rpc_url, host,
                      "secrets will cross this link WITHOUT TLS: use tls+tcp:// beyond loopback");
    }
    use_endpoint(c, 0);
    if (c->drop_every > 0)
        NANO_WARN("cpclient.test_hook", "NANO_TEST_DROP_DELTAS=%u detail=%s", c->drop_every,
                  "every Nth delta is dropped on purpose (tests only)");
    snprintf(c->link.node, sizeof c->link.node, "%s", c->node);
    NANO_INFO("cpclient.starting",
              "node=%s url=%s rpc=%s endpoints=%zu tls=%s code_dir=%s token=%s", c->node, c->url,
              c->rpc_url, c->n_endpoints, c->tls != NULL ? "true" : "false", c->cache.dir,
              c->token[0] != '\0' ? "set" : "none");
    rc = uv_thread_create(&c->thread, client_main, c);
    if (rc != 0) {
        nano_error_set(err, rc, "thread_failed", "cannot start the control-plane thread: %s",
                       uv_strerror(rc));
        client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void dp_cp_client_stop(dp_cp_client *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->stop, true);
    close_sockets(c); /* unblocks a REQ waiting for its reply */
    uv_thread_join(&c->thread);
    client_free(c);
}
