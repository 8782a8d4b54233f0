/* etcd_watch.c: a watch (POST /v3/watch) on a thread of its own. The gateway answers one
 * create_request with a stream of newline-delimited JSON messages, {"result": WatchResponse}
 * or {"error": {...}}; this thread reads it through curl multi (so that curl_multi_wakeup can
 * interrupt a poll from cp_etcd_watch_stop), hands each message to the callback, and
 * reconnects from the last delivered revision + 1 when the stream breaks. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "etcd_int.h"
#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

struct cp_etcd_watch {
    cp_etcd__conf conf;
    size_t cur;     /* the endpoint of the current or next stream */
    json_t *create; /* the create_request, start_revision set on each connect */
    int64_t start_revision;
    uint32_t idle_timeout_ms;
    cp_etcd_watch_cb cb;
    void *arg;
    CURLM *multi;
    pthread_t thread;
    atomic_bool stop;
    _Atomic int64_t revision; /* every event up to it delivered */
    /* The current stream (the watch thread only). */
    CURL *easy;
    nano_buf line;
    bool is_created; /* etcd acknowledged the current stream's watch */
    bool is_broken;  /* the stream carried an error or garbage: reconnect */
    bool has_ended;  /* compacted or cancelled: no reconnect */
    uint64_t last_data_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void deliver(cp_etcd_watch *w, const cp_etcd_watch_msg *m)
{
    if (!atomic_load(&w->stop))
        w->cb(m, w->arg);
}

static int events_parse(const json_t *a, cp_etcd_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *o = json_array_get(a, i);
        const char *type = json_string_value(json_object_get(o, "type"));
        if (type != NULL && strcmp(type, "DELETE") == 0)
            ev[i].type = CP_ETCD_EVENT_DELETE;
        else if (type == NULL || strcmp(type, "PUT") == 0)
            ev[i].type = CP_ETCD_EVENT_PUT; /* PUT is 0: proto3 leaves it out */
        else
            return NANO_ESYNTAX;
        if (cp_etcd__kv_parse(json_object_get(o, "kv"), &ev[i].kv) != 0)
            return NANO_ESYNTAX;
        const json_t *prev = json_object_get(o, "prev_kv");
        if (prev != NULL) {
            if (cp_etcd__kv_parse(prev, &ev[i].prev_kv) != 0)
                return NANO_ESYNTAX;
            ev[i].has_prev = true;
        }
    }
    return 0;
}

/* One WatchResponse. Returns false when the stream must end here. */
static bool on_response(cp_etcd_watch *w, const json_t *r)
{
    cp_etcd_watch_msg m = {0};
    if (cp_etcd__int64(json_object_get(r, "header"), "revision", &m.revision) != 0)
        return false;
    if (json_is_true(json_object_get(r, "canceled"))) {
        nano_error err = {0};
        if (cp_etcd__int64(r, "compact_revision", &m.compact_revision) != 0)
            return false;
        const char *reason = json_string_value(json_object_get(r, "cancel_reason"));
        if (m.compact_revision > 0) {
            m.kind = CP_ETCD_WATCH_COMPACTED;
            nano_error_set(&err, NANO_ERANGE, "etcd_compacted",
                           "etcd watch: revision %lld was compacted (oldest kept: %lld)",
                           (long long)(atomic_load(&w->revision) + 1),
                           (long long)m.compact_revision);
        } else {
            m.kind = CP_ETCD_WATCH_FAILED;
            nano_error_set(&err, NANO_EIO, "etcd_watch_cancelled", "etcd watch cancelled: %s",
                           reason != NULL && reason[0] != '\0' ? reason : "no reason given");
        }
        m.error = &err;
        w->has_ended = true;
        NANO_WARN("etcd.watch_ended", "error=\"%s\"", err.message);
        deliver(w, &m);
        return false;
    }
    if (json_is_true(json_object_get(r, "created"))) {
        w->is_created = true;
        return true;
    }
    const json_t *a = json_object_get(r, "events");
    size_t n = json_array_size(a);
    if (n == 0) { /* progress: everything up to the header's revision has been sent */
        m.kind = CP_ETCD_WATCH_PROGRESS;
        if (m.revision > atomic_load(&w->revision))
            atomic_store(&w->revision, m.revision);
        deliver(w, &m);
        return true;
    }
    cp_etcd_event *ev = nano_xcalloc(n, sizeof *ev);
    int rc = events_parse(a, ev, n);
    if (rc == 0) {
        m.kind = CP_ETCD_WATCH_EVENTS;
        m.events = ev;
        m.n_events = n;
        deliver(w, &m);
        if (ev[n - 1].kv.mod_revision > atomic_load(&w->revision))
            atomic_store(&w->revision, ev[n - 1].kv.mod_revision);
    }
    for (size_t i = 0; i < n; i++) {
        cp_etcd__kv_fini(&ev[i].kv);
        cp_etcd__kv_fini(&ev[i].prev_kv);
    }
    free(ev);
    return rc == 0;
}

/* One line of the stream. Returns false when the stream must end here. */
static bool on_line(cp_etcd_watch *w, const char *p, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(p, len, 0, &jerr);
    const json_t *r = json_object_get(j, "result");
    bool ok = json_is_object(r);
    if (ok) {
        ok = on_response(w, r);
        if (!ok && !w->has_ended)
            NANO_WARN("etcd.watch_bad_message", "endpoint=%s", w->conf.endpoints[w->cur]);
    } else {
        /* {"error": {"grpc_code": 14, "message": "..."}}: the gateway lost the member */
        const char *msg =
            json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        NANO_WARN("etcd.watch_stream_error", "endpoint=%s error=\"%s\"", w->conf.endpoints[w->cur],
                  msg != NULL ? msg : jerr.text);
    }
    if (!ok)
        w->is_broken = true;
    json_decref(j);
    return ok;
}

static size_t on_stream(char *p, size_t size, size_t n, void *arg)
{
    cp_etcd_watch *w = arg;
    long status = 0;
    w->last_data_ms = now_ms();
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) { /* e.g. 503 from a member that is shutting down */
        NANO_WARN("etcd.watch_refused", "endpoint=%s status=%ld", w->conf.endpoints[w->cur],
                  status);
        w->is_broken = true;
        return 0;
    }
    nano_buf_append(&w->line, p, size * n);
    size_t start = 0;
    for (size_t i = w->line.len - size * n; i < w->line.len; i++) {
        if (w->line.data[i] != '\n')
            continue;
        if (atomic_load(&w->stop) || !on_line(w, w->line.data + start, i - start))
            return 0; /* curl ends the transfer: CURLE_WRITE_ERROR */
        start = i + 1;
    }
    nano_buf_consume(&w->line, start);
    if (w->line.len > w->conf.lim.max_response) {
        NANO_WARN("etcd.watch_message_too_large", "endpoint=%s limit=%zu",
                  w->conf.endpoints[w->cur], w->conf.lim.max_response);
        w->is_broken = true;
        return 0;
    }
    return size * n;
}

/* One stream on the current endpoint, until it breaks, ends or the watch is stopped. */
static void run_stream(cp_etcd_watch *w)
{
    const char *ep = w->conf.endpoints[w->cur];
    char url[512];
    snprintf(url, sizeof url, "%s/v3/watch", ep);
    int64_t from = atomic_load(&w->revision) > 0 ? atomic_load(&w->revision) + 1
                                                 : w->start_revision;
    json_t *create = json_deep_copy(w->create);
    if (from > 0)
        json_object_set_new(create, "start_revision", json_integer(from));
    json_t *body = json_pack("{s:o}", "create_request", create);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    /* hasleader: etcd cancels the watch when its member loses the leader, rather than leave
     * it silent behind a partition (clientv3.WithRequireLeader; grpc-gateway passes
     * Grpc-Metadata-* headers on as gRPC metadata). */
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Grpc-Metadata-hasleader: true");

    w->easy = curl_easy_init();
    if (w->easy == NULL) { /* out of memory: counted as a failed stream, retried */
        w->is_broken = true;
        curl_slist_free_all(headers);
        free(text);
        return;
    }
    cp_etcd__curl_setup(w->easy, &w->conf);
    curl_easy_setopt(w->easy, CURLOPT_URL, url);
    curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(w->easy, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
    nano_buf_reset(&w->line);
    w->is_created = w->is_broken = false;
    w->last_data_ms = now_ms();
    curl_multi_add_handle(w->multi, w->easy);
    CURLcode result = CURLE_OK;
    for (;;) {
        int running = 0;
        curl_multi_perform(w->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(w->multi, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE)
                result = msg->data.result;
        if (running == 0 || atomic_load(&w->stop))
            break;
        if (w->idle_timeout_ms > 0 && now_ms() - w->last_data_ms > w->idle_timeout_ms) {
            NANO_WARN("etcd.watch_idle", "endpoint=%s idle_ms=%u", ep, w->idle_timeout_ms);
            w->is_broken = true;
            break;
        }
        curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
    }
    if (!atomic_load(&w->stop) && !w->has_ended && !w->is_broken)
        NANO_WARN("etcd.watch_stream_ended", "endpoint=%s error=\"%s\"", ep,
                  result != CURLE_OK ? curl_easy_strerror(result) : "closed by the server");
    curl_multi_remove_handle(w->multi, w->easy);
    curl_easy_cleanup(w->easy);
    w->easy = NULL;
    curl_slist_free_all(headers);
    free(text);
}

static void *watch_main(void *arg)
{
    cp_etcd_watch *w = arg;
    size_t failures = 0;
    uint32_t backoff = BACKOFF_MIN_MS;
    while (!atomic_load(&w->stop)) {
        if (w->has_ended) { /* nothing more to read: wait for cp_etcd_watch_stop */
            curl_multi_poll(w->multi, NULL, 0, 1000, NULL);
            continue;
        }
        run_stream(w);
        if (atomic_load(&w->stop) || w->has_ended)
            continue;
        if (w->is_created) {
            failures = 0;
            backoff = BACKOFF_MIN_MS;
        }
        w->cur = (w->cur + 1) % w->conf.n_endpoints;
        if (++failures % w->conf.n_endpoints == 0) { /* each endpoint failed once: wait */
            curl_multi_poll(w->multi, NULL, 0, (int)backoff, NULL);
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
    }
    return NULL;
}

int cp_etcd_watch_start(cp_etcd *e, const cp_etcd_watch_req *req, cp_etcd_watch_cb cb, void *arg,
                        cp_etcd_watch **out, nano_error *err)
{
    cp_etcd_watch *w = nano_xcalloc(1, sizeof *w);
    cp_etcd__conf_copy(&w->conf, &e->conf);
    w->cur = e->cur;
    w->start_revision = req->start_revision;
    w->idle_timeout_ms = req->idle_timeout_ms;
    w->cb = cb;
    w->arg = arg;
    atomic_init(&w->stop, false);
    atomic_init(&w->revision, 0);
    w->create = json_object();
    cp_etcd__set_bytes(w->create, "key", req->key, req->key_len);
    if (req->range_end != NULL)
        cp_etcd__set_bytes(w->create, "range_end", req->range_end, req->range_end_len);
    if (req->prev_kv)
        json_object_set_new(w->create, "prev_kv", json_true());
    if (req->progress_notify)
        json_object_set_new(w->create, "progress_notify", json_true());
    w->multi = curl_multi_init();
    int rc = w->multi != NULL ? pthread_create(&w->thread, NULL, watch_main, w) : ENOMEM;
    if (rc != 0) {
        if (w->multi != NULL)
            curl_multi_cleanup(w->multi);
        json_decref(w->create);
        cp_etcd__conf_fini(&w->conf);
        free(w);
        return nano_error_set(err, NANO_EIO, "etcd_watch_thread",
                              "etcd watch: cannot start its thread (%s)", strerror(rc));
    }
    *out = w;
    return 0;
}

void cp_etcd_watch_stop(cp_etcd_watch *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, true);
    curl_multi_wakeup(w->multi);
    pthread_join(w->thread, NULL);
    curl_multi_cleanup(w->multi);
    json_decref(w->create);
    nano_buf_fini(&w->line);
    cp_etcd__conf_fini(&w->conf);
    free(w);
}

int64_t cp_etcd_watch_revision(const cp_etcd_watch *w)
{
    return atomic_load(&((cp_etcd_watch *)w)->revision);
}
