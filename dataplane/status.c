#include "status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "control/cp_client.h"
#include "buf.h"
#include "log.h"
#include "parse.h"
#include "request.h"
#include "runtime/runtime.h"

/* One app's counters summed over the workers. */
typedef struct app_sum {
    char name[64];
    dp_app_state state;
    uint64_t requests, errors, rejected, cpu_kills, memory_kills, wall_kills;
    uint64_t in_flight, queued, isolates, heap_used, external_used, creates, create_us;
    uint64_t lat_count, lat_sum_us, lat_buckets[DP_LATENCY_BUCKETS + 1];
    bool is_seen_live;
} app_sum;

static uint64_t ld(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* A draining state on any worker wins; an app removed everywhere is left out. */
static void add_app(app_sum *s, dp_app_stats *a)
{
    dp_app_state st = (dp_app_state)atomic_load(&a->state);
    if (st != DP_APP_REMOVED) {
        if (!s->is_seen_live || st > s->state)
            s->state = st;
        s->is_seen_live = true;
    }
    s->requests += ld(&a->requests);
    s->errors += ld(&a->errors);
    s->rejected += ld(&a->rejected);
    s->cpu_kills += ld(&a->cpu_kills);
    s->memory_kills += ld(&a->memory_kills);
    s->wall_kills += ld(&a->wall_kills);
    s->in_flight += ld(&a->in_flight);
    s->queued += ld(&a->queued);
    s->isolates += ld(&a->isolates);
    s->heap_used += ld(&a->heap_used);
    s->external_used += ld(&a->external_used);
    s->creates += ld(&a->isolate_creates);
    s->create_us += ld(&a->isolate_create_us);
    s->lat_count += ld(&a->latency_count);
    s->lat_sum_us += ld(&a->latency_sum_us);
    for (size_t i = 0; i <= DP_LATENCY_BUCKETS; i++)
        s->lat_buckets[i] += ld(&a->latency_buckets[i]);
}

static app_sum *collect(dp_status_source *src, size_t *n_out)
{
    app_sum *sums = NULL;
    size_t n = 0, cap = 0;
    for (size_t w = 0; w < src->n_workers; w++) {
        dp_stats *st = dp_worker_stats(src->workers[w]);
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < st->n_apps; i++) {
            dp_app_stats *a = st->apps[i];
            size_t k = 0;
            while (k < n && strcmp(sums[k].name, a->name) != 0)
                k++;
            if (k == n) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    sums = nano_xrealloc(sums, cap * sizeof *sums);
                }
                memset(&sums[n], 0, sizeof sums[n]);
                snprintf(sums[n].name, sizeof sums[n].name, "%s", a->name);
                n++;
            }
            add_app(&sums[k], a);
        }
        pthread_mutex_unlock(&st->mu);
    }
    *n_out = n;
    return sums;
}

static void reply(dp_request *req, int status, const char *type, const nano_buf *body)
{
    dp_header h[2] = {{NANO_STR("content-type"), nano_str_c(type)},
                      {NANO_STR("cache-control"), NANO_STR("no-store")}};
    if (dp_response_start(req, status, (nano_str){NULL, 0}, h, 2, (int64_t)body->len) != 0)
        return;
    dp_response_write(req, body->data, body->len);
    dp_response_end(req);
}

/* ,"load_error":{"code","message","sha256"}: the app's newest version did not load here and
 * an older one (or none) serves. The message is the checker's text: escaped by jansson. */
static void append_load_error(dp_load_errors *t, const char *app, nano_buf *b)
{
    dp_load_error e;
    if (!dp_load_errors_get(t, app, &e))
        return;
    json_t *v = json_pack("{s:s, s:s, s:s}", "code", e.err.id, "message", e.err.message, "sha256",
                          e.sha256);
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT) : NULL;
    if (text != NULL)
        nano_buf_appendf(b, ",\"load_error\":%s", text);
    free(text);
    json_decref(v);
}

static void status_json(dp_status_source *src, nano_buf *b)
{
    size_t n;
    app_sum *sums = collect(src, &n);
    nano_buf_appendf(b,
                     "{\"version\":\"%s\",\"config_version\":%" PRIu64 ",\"ready\":%s,"
                     "\"draining\":%s,\"threads\":%zu,\"config_reloads\":%" PRIu64
                     ",\"config_rejects\":%" PRIu64 ",\"apps\":[",
                     NANO_VERSION, src->config_version, src->is_ready ? "true" : "false",
                     src->is_draining ? "true" : "false", src->n_workers, src->config_reloads,
                     src->config_rejects);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        app_sum *s = &sums[i];
        if (!s->is_seen_live)
            continue;
        nano_buf_appendf(b,
                         "%s{\"name\":\"%s\",\"state\":\"%s\",\"in_flight\":%" PRIu64
                         ",\"queued\":%" PRIu64 ",\"isolates\":%" PRIu64 ",\"heap_used\":%" PRIu64
                         ",\"external_used\":%" PRIu64 ",\"requests\":%" PRIu64
                         ",\"errors\":%" PRIu64 ",\"rejected\":%" PRIu64
                         ",\"cpu_limit_kills\":%" PRIu64 ",\"memory_limit_kills\":%" PRIu64
                         ",\"wall_limit_kills\":%" PRIu64 ",\"isolates_created\":%" PRIu64
                         ",\"isolate_create_us_avg\":%" PRIu64,
                         first ? "" : ",", s->name, dp_app_state_name(s->state), s->in_flight,
                         s->queued, s->isolates, s->heap_used, s->external_used, s->requests,
                         s->errors, s->rejected, s->cpu_kills, s->memory_kills, s->wall_kills,
                         s->creates, s->creates ? s->create_us / s->creates : 0);
        append_load_error(src->load_errors, s->name, b);
        nano_buf_append_str(b, "}");
        first = false;
    }
    nano_buf_append_str(b, "]");
    rt_compile_cache_stats cc;
    rt_compile_cache_get_stats(&cc);
    nano_buf_appendf(b,
                     ",\"compile_cache\":{\"entries\":%zu,\"bytes\":%zu,\"hits\":%" PRIu64
                     ",\"misses\":%" PRIu64 ",\"disk_reads\":%" PRIu64 ",\"stores\":%" PRIu64
                     ",\"rejects\":%" PRIu64 ",\"evictions\":%" PRIu64 "}",
                     cc.entries, cc.bytes, cc.hits, cc.misses, cc.disk_reads, cc.stores, cc.rejects,
                     cc.evictions);
    if (src->cp != NULL) {
        dp_cp_link l;
        dp_cp_client_link(src->cp, &l);
        /* URLs and the node name passed nano_msg's and the URL checks: no JSON escaping
         * needed beyond what they allow; quotes cannot appear in them. */
        nano_buf_appendf(
            b,
            ",\"control_plane\":{\"node\":\"%s\",\"url\":\"%s\",\"rpc_url\":\"%s\","
            "\"connected\":%s,\"has_config\":%s,\"applied_seq\":%" PRIu64
            ",\"heartbeat_seq\":%" PRIu64 ",\"last_heartbeat_ms\":%" PRIu64 ",\"resyncs\":%" PRIu64
            ",\"deltas_applied\":%" PRIu64 ",\"deltas_rejected\":%" PRIu64
            ",\"messages_dropped\":%" PRIu64 ",\"reconnects\":%" PRIu64 "}",
            l.node, l.url, l.rpc_url, l.is_connected ? "true" : "false",
            l.has_config ? "true" : "false", l.applied_seq, l.heartbeat_seq, l.last_heartbeat_ms,
            l.resyncs, l.deltas_applied, l.deltas_rejected, l.messages_dropped, l.reconnects);
    }
    nano_buf_append_str(b, "}\n");
    nano_free(sums);
}

static void metric_header(nano_buf *b, const char *name, const char *type, const char *help)
{
    nano_buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void status_metrics(dp_status_source *src, nano_buf *b)
{
    size_t n;
    app_sum *sums = collect(src, &n);
    metric_header(b, "nano_config_version", "gauge", "Version of the applied config.");
    nano_buf_appendf(b, "nano_config_version %" PRIu64 "\n", src->config_version);
    metric_header(b, "nano_ready", "gauge", "1 when the node is ready to serve.");
    nano_buf_appendf(b, "nano_ready %d\n", src->is_ready && !src->is_draining);
    metric_header(b, "nano_config_reloads_total", "counter", "Config changes applied.");
    nano_buf_appendf(b, "nano_config_reloads_total %" PRIu64 "\n", src->config_reloads);
    metric_header(b, "nano_config_rejects_total", "counter", "Config changes rejected.");
    nano_buf_appendf(b, "nano_config_rejects_total %" PRIu64 "\n", src->config_rejects);
    uint64_t refused[DP_REFUSED_COUNT];
    dp_server_refusals(refused);
    metric_header(b, "nano_http_refused_total", "counter",
                  "Requests refused before they reached an app (malformed, oversized, slow or "
                  "not HTTP/1.x), by reason; the app port and this status port together.");
    for (size_t i = 0; i < DP_REFUSED_COUNT; i++)
        nano_buf_appendf(b, "nano_http_refused_total{reason=\"%s\"} %" PRIu64 "\n",
                         dp_refusal_name((dp_refusal)i), refused[i]);
    rt_compile_cache_stats cc;
    rt_compile_cache_get_stats(&cc);
    metric_header(b, "nano_compile_cache_hits_total", "counter",
                  "Module compiles that used the compile cache (memory or --code-dir).");
    nano_buf_appendf(b, "nano_compile_cache_hits_total %" PRIu64 "\n", cc.hits);
    metric_header(b, "nano_compile_cache_misses_total", "counter",
                  "Module compiles with no compile cache entry.");
    nano_buf_appendf(b, "nano_compile_cache_misses_total %" PRIu64 "\n", cc.misses);
    metric_header(b, "nano_compile_cache_bytes", "gauge",
                  "Bytes of compile cache entries in memory.");
    nano_buf_appendf(b, "nano_compile_cache_bytes %zu\n", cc.bytes);
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } fields[] = {
        {"nano_app_requests_total", "counter", "Requests routed to the app.",
         offsetof(app_sum, requests)},
        {"nano_app_errors_total", "counter", "Requests answered with 5xx.",
         offsetof(app_sum, errors)},
        {"nano_app_rejected_total", "counter", "Requests refused with 503 (queue full, draining).",
         offsetof(app_sum, rejected)},
        {"nano_app_cpu_limit_kills_total", "counter", "Requests stopped at the CPU limit.",
         offsetof(app_sum, cpu_kills)},
        {"nano_app_memory_limit_kills_total", "counter", "Isolates discarded at the heap limit.",
         offsetof(app_sum, memory_kills)},
        {"nano_app_wall_limit_kills_total", "counter", "Requests stopped at the wall-time limit.",
         offsetof(app_sum, wall_kills)},
        {"nano_app_in_flight", "gauge", "Requests running in the app's isolates.",
         offsetof(app_sum, in_flight)},
        {"nano_app_queued", "gauge", "Requests waiting for a concurrency slot.",
         offsetof(app_sum, queued)},
        {"nano_app_isolates", "gauge", "Live isolates of the app.", offsetof(app_sum, isolates)},
        {"nano_app_heap_used_bytes", "gauge", "V8 heap used by the app's isolates.",
         offsetof(app_sum, heap_used)},
        {"nano_app_external_used_bytes", "gauge",
         "ArrayBuffer memory held by the app's isolates (backing stores and request body chunks).",
         offsetof(app_sum, external_used)},
        {"nano_app_isolates_created_total", "counter", "Isolates created for the app.",
         offsetof(app_sum, creates)},
    };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        metric_header(b, fields[f].name, fields[f].type, fields[f].help);
        for (size_t i = 0; i < n; i++) {
            uint64_t v = *(const uint64_t *)((const char *)&sums[i] + fields[f].offset);
            nano_buf_appendf(b, "%s{app=\"%s\"} %" PRIu64 "\n", fields[f].name, sums[i].name, v);
        }
    }
    metric_header(b, "nano_app_request_duration_seconds", "histogram",
                  "Time from request head to the end of the response.");
    for (size_t i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (size_t k = 0; k < DP_LATENCY_BUCKETS; k++) {
            cum += sums[i].lat_buckets[k];
            nano_buf_appendf(
                b, "nano_app_request_duration_seconds_bucket{app=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                sums[i].name, (double)dp_latency_bounds_us[k] / 1e6, cum);
        }
        cum += sums[i].lat_buckets[DP_LATENCY_BUCKETS];
        nano_buf_appendf(
            b, "nano_app_request_duration_seconds_bucket{app=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
            sums[i].name, cum);
        nano_buf_appendf(b, "nano_app_request_duration_seconds_sum{app=\"%s\"} %.6f\n",
                         sums[i].name, (double)sums[i].lat_sum_us / 1e6);
        nano_buf_appendf(b, "nano_app_request_duration_seconds_count{app=\"%s\"} %" PRIu64 "\n",
                         sums[i].name, sums[i].lat_count);
    }
    nano_free(sums);
}

static void status_dispatch(void *ud, dp_request *req)
{
    dp_status_source *src = ud;
    nano_str path = dp_request_path(req);
    nano_str method = dp_request_method(req);
    nano_buf b = NANO_BUF_INIT;
    if (!nano_str_eq(method, NANO_STR("GET")) && !nano_str_eq(method, NANO_STR("HEAD"))) {
        nano_buf_append_str(&b, "only GET is served here\n");
        reply(req, 405, "text/plain; charset=utf-8", &b);
    } else if (nano_str_eq(path, NANO_STR("/healthz"))) {
        nano_buf_append_str(&b, "ok\n");
        reply(req, 200, "text/plain; charset=utf-8", &b);
    } else if (nano_str_eq(path, NANO_STR("/readyz"))) {
        bool ready = src->is_ready && !src->is_draining;
        nano_buf_append_str(&b, ready              ? "ready\n"
                                : src->is_draining ? "draining\n"
                                                   : "no config yet\n");
        reply(req, ready ? 200 : 503, "text/plain; charset=utf-8", &b);
    } else if (nano_str_eq(path, NANO_STR("/status"))) {
        status_json(src, &b);
        reply(req, 200, "application/json", &b);
    } else if (nano_str_eq(path, NANO_STR("/metrics"))) {
        status_metrics(src, &b);
        reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    } else {
        nano_buf_append_str(&b, "not found: try /healthz, /readyz, /status or /metrics\n");
        reply(req, 404, "text/plain; charset=utf-8", &b);
    }
    nano_buf_fini(&b);
}

dp_server *dp_status_start(uv_loop_t *loop, const char *listen, dp_status_source *src,
                           nano_error *err)
{
    const char *colon = strrchr(listen, ':');
    int port;
    if (colon == NULL || colon == listen || nano_parse_port(colon + 1, &port) != 0) {
        nano_error_set(err, NANO_EINVAL, "usage", "--status-listen %s: expected HOST:PORT", listen);
        return NULL;
    }
    static char host[128]; /* the server keeps a pointer to it; one status port per process */
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)hlen, h);
    dp_server_options so = {
        .host = host,
        .port = port,
        .limits = {.max_head = 16 * 1024, .max_body = 1024},
        .head_timeout_ms = 10000,
        .idle_timeout_ms = 30000,
        .body_timeout_ms = 10000,
        .body_min_rate = 500,
        .worker_index = 0xffff,
        .quiet = true,
        .dispatch = status_dispatch,
        .ud = src,
    };
    dp_server *srv = dp_server_new(loop, &so);
    if (dp_server_listen(srv, err) != 0) {
        dp_server_close(srv, NULL, NULL);
        return NULL;
    }
    NANO_INFO("dp.status_listening", "addr=%s:%d", host, dp_server_bound_port(srv));
    return srv;
}
