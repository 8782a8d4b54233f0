/* distrib.c: the data-plane channels of nanocp (contract in distrib.h, protocol in msg.h). */
#include "distrib.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/crypto.h>

#include "alloc.h"
#include "container.h"
#include "file.h"
#include "log.h"
#include "msg.h"
#include "nng_link.h"
#include "nng_rep.h"
#include "nng_tls.h"
#include "secrets.h"
#include "snapshot.h"
#include "store.h"
#include "token.h"

struct cp_distrib {
    uv_loop_t *loop;
    cp_service *svc;
    unsigned char token_digest[NANO_TOKEN_DIGEST_BYTES];
    uint64_t heartbeat_ms;
    uint64_t grace_ms;
    int64_t published;
    json_t *reports; /* {node: {applied_seq, apps, seen_at}} not written yet */
    /* The fleet's duties (the drains' clock, the blob sweep) run on one replica of a shared
     * store at a time: the one cp_store_lead names (always this one with SQLite). */
    char who[128];
    bool is_leader;
    uint64_t last_sweep_ms;
    /* Replicas on one store: a watch thread tells the loop (changed) when any replica
     * committed, so their changes go out at once, not at the next heartbeat. */
    cp_store_watch *watch;
    uv_async_t changed;

    nng_socket pub;
    bool is_pub_open;
    nano_nng_rep *rep; /* NULL without sockets */
    nng_tls_config *tls;
    int pub_port;

    uv_timer_t timer;
    int n_open_handles; /* the timer and the REP server, which close asynchronously */
    atomic_bool is_closing;
    cp_api_closed_cb closed_cb;
    void *closed_arg;
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- config-log entries -> OPs ------------------------------------------------------------- */

/* The fields each op carries on the wire besides seq and op (msg.h). */
static const struct {
    const char *op;
    const char *fields[11];
} op_fields[] = {
    {"app.put", {"app", "state", "version", "sha256", NULL}}, /* and the spec, below */
    {"code.put", {"app", "version", "sha256", "main", "modules", NULL}},
    {"env.put", {"app", "name", "value", NULL}},
    {"env.del", {"app", "name", NULL}},
    {"secret.put", {"app", "name", NULL}}, /* never the (sealed) value */
    {"secret.del", {"app", "name", NULL}},
    {"app.drain", {"app", "timeout_ms", NULL}},
    {"app.remove", {"app", NULL}},
};

int cp_distrib_op_from_log(const json_t *entry, json_t **out, nano_error *err)
{
    const char *op = json_string_value(json_object_get(entry, "op"));
    json_t *seq = json_object_get(entry, "seq");
    json_t *payload = json_object_get(entry, "payload");
    if (op == NULL || !json_is_integer(seq) || !json_is_object(payload))
        return nano_error_set(err, NANO_EINVAL, "log_entry", "config-log entry %lld is malformed",
                              (long long)json_integer_value(seq));
    size_t k = 0, n_ops = sizeof op_fields / sizeof op_fields[0];
    while (k < n_ops && strcmp(op_fields[k].op, op) != 0)
        k++;
    if (k == n_ops)
        return nano_error_set(err, NANO_EINVAL, "log_entry",
                              "config-log entry %lld has an unknown op",
                              (long long)json_integer_value(seq));
    json_t *o = json_pack("{s:O, s:s}", "seq", seq, "op", op);
    for (size_t i = 0; op_fields[k].fields[i] != NULL; i++) {
        const char *f = op_fields[k].fields[i];
        json_t *v = json_object_get(payload, f);
        if (v == NULL) {
            json_decref(o);
            return nano_error_set(err, NANO_EINVAL, "log_entry",
                                  "config-log entry %lld (%s) has no field %s",
                                  (long long)json_integer_value(seq), op, f);
        }
        json_object_set(o, f, v);
    }
    /* The spec's keys the entry has: one logged before a field existed (egress before
     * migration 0002) lacks it, which the data plane reads as the field's default. */
    if (strcmp(op, "app.put") == 0)
        nano_app_spec_json_copy(o, payload);
    int rc = nano_msg_check_op(o, err);
    if (rc != 0) {
        json_decref(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* The encoded delta of every entry after `after`; *last: the last seq in it. */
static int build_delta(cp_service *svc, int64_t after, int64_t *last, nano_buf *out,
                       nano_error *err)
{
    json_t *entries = NULL;
    int rc = cp_store_log_list(cp_service_store(svc), after, NANO_MSG_MAX_OPS, &entries);
    if (rc != 0)
        return nano_error_set(err, rc, "store", "reading the config log: %s",
                              cp_store_errmsg(cp_service_store(svc)));
    json_t *ops = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        json_t *op = NULL;
        rc = cp_distrib_op_from_log(e, &op, err);
        if (rc != 0)
            break;
        json_array_append_new(ops, op);
        *last = json_integer_value(json_object_get(e, "seq"));
    }
    if (rc == 0 && json_array_size(ops) > 0)
        rc = nano_msg_encode_delta(ops, out, err);
    json_decref(ops);
    json_decref(entries);
    return rc;
}

void cp_distrib_publish(cp_distrib *d)
{
    if (d == NULL || atomic_load(&d->is_closing))
        return;
    int64_t seq = 0;
    if (cp_store_log_seq(cp_service_store(d->svc), &seq) != 0 || seq <= d->published)
        return;
    nano_buf buf = NANO_BUF_INIT;
    nano_error err = {0};
    int64_t first = d->published + 1, last = d->published;
    int rc = build_delta(d->svc, d->published, &last, &buf, &err);
    if (rc != 0) {
        /* Data planes resync from the next heartbeat, which says seq. */
        NANO_ERROR("cp.delta_failed", "first=%lld seq=%lld error=%s", (long long)first,
                   (long long)seq, err.message);
        d->published = seq;
    } else {
        d->published = last;
        int rv = d->is_pub_open ? nng_send(d->pub, buf.data, buf.len, NNG_FLAG_NONBLOCK) : 0;
        if (rv != 0)
            NANO_WARN("cp.delta_send_failed", "first=%lld seq=%lld error=%s", (long long)first,
                      (long long)last, nng_strerror(rv));
        else
            NANO_DEBUG("cp.delta_published", "first=%lld seq=%lld bytes=%zu", (long long)first,
                       (long long)last, buf.len);
    }
    nano_buf_fini(&buf);
}

int64_t cp_distrib_published(const cp_distrib *d)
{
    return d->published;
}

/* --- snapshot ------------------------------------------------------------------------------ */

int cp_distrib_snapshot(cp_service *svc, json_t **out, nano_error *err)
{
    return cp_snapshot_build(svc, out, NULL, err);
}

/* --- requests ------------------------------------------------------------------------------ */

static void reply_error(nano_buf *reply, const char *code, const char *message)
{
    nano_msg_encode_error(code, message, reply);
}

static void reply_ok(nano_msg_type type, json_t *fields, nano_buf *reply)
{
    nano_error err = {0};
    if (nano_msg_encode_reply(type, fields, reply, &err) != 0) {
        NANO_ERROR("cp.dp_reply_failed", "type=%s error=%s", nano_msg_type_name(type), err.message);
        reply_error(reply, err.code == NANO_ETOOBIG ? "too_large" : "internal", err.message);
    }
    json_decref(fields);
}

static int64_t log_seq(cp_distrib *d)
{
    int64_t seq = 0;
    cp_store_log_seq(cp_service_store(d->svc), &seq);
    return seq;
}

static void on_hello(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    const char *version = json_string_value(json_object_get(m->body, "version"));
    const char *addr = json_string_value(json_object_get(m->body, "addr"));
    cp_error cerr;
    memset(&cerr, 0, sizeof cerr);
    if (cp_service_node_hello(d->svc, m->node, version ? version : "", addr ? addr : "", &cerr) !=
        0) {
        reply_error(reply, "internal", cerr.message);
        return;
    }
    NANO_INFO("cp.node_hello", "node=%s version=%s addr=%s", m->node, version ? version : "",
              addr ? addr : "");
    reply_ok(NANO_MSG_HELLO,
             json_pack("{s:I, s:I}", "seq", (json_int_t)d->published, "heartbeat_ms",
                       (json_int_t)d->heartbeat_ms),
             reply);
}

static void on_snapshot(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    json_t *snap = NULL;
    nano_error err = {0};
    size_t withheld = 0;
    if (cp_snapshot_build(d->svc, &snap, &withheld, &err) != 0) {
        NANO_ERROR("cp.snapshot_failed", "node=%s error=%s", m->node, err.message);
        reply_error(reply, "internal", "cannot read the configuration");
        return;
    }
    NANO_INFO("cp.snapshot", "node=%s seq=%lld apps=%zu withheld=%zu", m->node,
              (long long)json_integer_value(json_object_get(snap, "seq")),
              json_array_size(json_object_get(snap, "apps")), withheld);
    reply_ok(NANO_MSG_SNAPSHOT, snap, reply);
}

static void on_code_get(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    const char *sha = json_string_value(json_object_get(m->body, "sha256"));
    char *data = NULL;
    size_t len = 0;
    int rc = cp_store_blob_get(cp_service_store(d->svc), sha, &data, &len);
    if (rc == NANO_ENOTFOUND) {
        reply_error(reply, "not_found", "no module has this sha256");
        return;
    }
    if (rc != 0) {
        NANO_ERROR("cp.store_failed", "what=%s error=%s", "reading code",
                   cp_store_errmsg(cp_service_store(d->svc)));
        reply_error(reply, "internal", "cannot read the module");
        return;
    }
    json_t *s = json_stringn(data, len); /* modules are stored from JSON strings: UTF-8 */
    nano_free(data);
    if (s == NULL) {
        reply_error(reply, "internal", "the module is not UTF-8");
        return;
    }
    reply_ok(NANO_MSG_CODE_GET, json_pack("{s:s, s:o}", "sha256", sha, "data", s), reply);
}

/* code.batch: the modules asked for, in order, while they fit in NANO_MSG_BATCH_BYTES; one
 * left out (unknown, or beyond the budget) the node fetches with code.get. */
static void on_code_batch(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    json_t *shas = json_object_get(m->body, "sha256s"), *item;
    json_t *modules = json_object();
    size_t i, total = 0;
    json_array_foreach(shas, i, item) {
        const char *sha = json_string_value(item);
        if (json_object_get(modules, sha) != NULL)
            continue;
        char *data = NULL;
        size_t len = 0;
        int rc = cp_store_blob_get(cp_service_store(d->svc), sha, &data, &len);
        if (rc == NANO_ENOTFOUND)
            continue;
        if (rc != 0) {
            NANO_ERROR("cp.store_failed", "what=%s error=%s", "reading code",
                       cp_store_errmsg(cp_service_store(d->svc)));
            json_decref(modules);
            reply_error(reply, "internal", "cannot read the modules");
            return;
        }
        json_t *str = total + len <= NANO_MSG_BATCH_BYTES ? json_stringn(data, len) : NULL;
        nano_free(data);
        if (str == NULL)
            continue; /* over the budget (or not UTF-8: code.get says so) */
        total += len;
        json_object_set_new(modules, sha, str);
    }
    reply_ok(NANO_MSG_CODE_BATCH, json_pack("{s:o}", "modules", modules), reply);
}

static void on_secrets_get(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    const char *app = json_string_value(json_object_get(m->body, "app"));
    json_t *row = NULL, *values = NULL;
    cp_store *st = cp_service_store(d->svc);
    int rc = cp_store_app_get(st, app, &row);
    if (rc == NANO_ENOTFOUND) {
        reply_error(reply, "app_not_found", "no such app");
        return;
    }
    if (rc == 0)
        rc = cp_service_secret_values(d->svc, json_integer_value(json_object_get(row, "id")), app,
                                      &values);
    json_decref(row);
    if (rc != 0) {
        NANO_ERROR("cp.store_failed", "what=%s error=%s", "reading secrets", cp_store_errmsg(st));
        reply_error(reply, "internal", "cannot read the secrets");
        return;
    }
    NANO_DEBUG("cp.secrets_sent", "node=%s app=%s count=%zu", m->node, app,
               json_object_size(values));
    reply_ok(NANO_MSG_SECRETS_GET, json_pack("{s:s, s:o}", "app", app, "secrets", values), reply);
}

static void on_status(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    char now[32];
    cp_time_now(now, sizeof now);
    /* Written by the next heartbeat tick with every other node's: one transaction a second
     * however many nodes report (the database syncs each commit). */
    json_object_set_new(d->reports, m->node,
                        json_pack("{s:O, s:O, s:s}", "applied_seq",
                                  json_object_get(m->body, "applied_seq"), "apps",
                                  json_object_get(m->body, "apps"), "seen_at", now));
    reply_ok(NANO_MSG_STATUS, json_pack("{s:I}", "seq", (json_int_t)d->published), reply);
}

static void on_drain_ack(cp_distrib *d, const nano_msg *m, nano_buf *reply)
{
    const char *app = json_string_value(json_object_get(m->body, "app"));
    const char *result = json_string_value(json_object_get(m->body, "result"));
    cp_distrib_flush(d); /* the node's earlier status first */
    bool changed = false;
    cp_error cerr;
    memset(&cerr, 0, sizeof cerr);
    if (cp_service_drain_ack(d->svc, m->node, app, result, &changed, &cerr) != 0) {
        reply_error(reply, "internal", cerr.message);
        return;
    }
    if (changed)
        cp_distrib_publish(d);
    reply_ok(NANO_MSG_DRAIN_ACK, NULL, reply);
}

void cp_distrib_handle(cp_distrib *d, const void *data, size_t len, nano_buf *reply)
{
    nano_msg m;
    nano_error err = {0};
    if (nano_msg_decode_request(data, len, &m, &err) != 0) {
        NANO_WARN("cp.dp_bad_request", "bytes=%zu code=%s error=%s", len, err.id, err.message);
        reply_error(reply, "bad_request", err.message);
        return;
    }
    if (!nano_token_check(m.token, d->token_digest)) {
        /* The node's name is validated by the decoder; the token is never logged. */
        NANO_WARN("cp.dp_unauthorized", "node=%s type=%s", m.node, nano_msg_type_name(m.type));
        reply_error(reply, "unauthorized", "invalid node token");
        nano_msg_fini(&m);
        return;
    }
    NANO_DEBUG("cp.dp_request", "node=%s type=%s", m.node, nano_msg_type_name(m.type));
    switch (m.type) {
    case NANO_MSG_HELLO: on_hello(d, &m, reply); break;
    case NANO_MSG_SNAPSHOT: on_snapshot(d, &m, reply); break;
    case NANO_MSG_CODE_GET: on_code_get(d, &m, reply); break;
    case NANO_MSG_CODE_BATCH: on_code_batch(d, &m, reply); break;
    case NANO_MSG_SECRETS_GET: on_secrets_get(d, &m, reply); break;
    case NANO_MSG_STATUS: on_status(d, &m, reply); break;
    case NANO_MSG_DRAIN_ACK: on_drain_ack(d, &m, reply); break;
    default: reply_error(reply, "bad_request", "not a request type"); break;
    }
    nano_msg_fini(&m);
}

void cp_distrib_flush(cp_distrib *d)
{
    bool changed = false, drained = false;
    cp_error cerr;
    memset(&cerr, 0, sizeof cerr);
    if (json_object_size(d->reports) > 0) {
        if (cp_service_nodes_report(d->svc, d->reports, &changed, &cerr) != 0)
            NANO_ERROR("cp.node_status_failed", "nodes=%zu error=%s", json_object_size(d->reports),
                       cerr.message);
        json_object_clear(d->reports);
    }
    if (d->is_leader && cp_service_drains_tick(d->svc, d->grace_ms, &drained, &cerr) != 0)
        NANO_ERROR("cp.drain_tick_failed", "error=%s", cerr.message);
    if (changed || drained)
        cp_distrib_publish(d);
}

/* Once a heartbeat (not at every admin call: renewing the lease is an etcd write): whether this
 * replica runs the fleet's duties, and the hourly sweep of unused code when it does. */
static void fleet_duties(cp_distrib *d)
{
    cp_store *st = cp_service_store(d->svc);
    bool lead = false;
    if (cp_store_lead(st, d->who, CP_DISTRIB_LEAD_TTL_MS, &lead) != 0) {
        NANO_WARN("cp.lead_failed", "who=%s error=%s", d->who, cp_store_errmsg(st));
        lead = false; /* unknown: let the lease decide; the duties wait a heartbeat */
    }
    if (lead != d->is_leader)
        NANO_INFO("cp.fleet_duties", "who=%s leader=%s", d->who, lead ? "true" : "false");
    d->is_leader = lead;
    uint64_t now = wall_ms();
    if (lead && cp_store_is_etcd(st) && now - d->last_sweep_ms >= CP_DISTRIB_SWEEP_MS) {
        d->last_sweep_ms = now;
        int64_t n = 0;
        if (cp_store_blob_sweep(st, CP_DISTRIB_SWEEP_MS, &n) != 0)
            NANO_WARN("cp.blob_sweep_failed", "error=%s", cp_store_errmsg(st));
        else if (n > 0)
            NANO_INFO("cp.blob_sweep", "deleted=%lld", (long long)n);
    }
}

/* --- sockets -------------------------------------------------------------------------------- */

static void on_request(void *ud, const void *data, size_t len, nano_buf *reply)
{
    cp_distrib_handle(ud, data, len, reply);
}

static void on_timer(uv_timer_t *t)
{
    cp_distrib *d = container_of(t, cp_distrib, timer);
    /* Changes committed by other replicas first (when the store watch did not bring them),
     * then this replica's writes: its nodes' reports, and the drains' clock. */
    cp_distrib_publish(d);
    fleet_duties(d);
    cp_distrib_flush(d);
    if (!d->is_pub_open)
        return;
    nano_buf buf = NANO_BUF_INIT;
    nano_error err = {0};
    if (nano_msg_encode_heartbeat((uint64_t)d->published, wall_ms(), &buf, &err) == 0) {
        int rv = nng_send(d->pub, buf.data, buf.len, NNG_FLAG_NONBLOCK);
        if (rv != 0)
            NANO_DEBUG("cp.heartbeat_failed", "error=%s", nng_strerror(rv));
    }
    nano_buf_fini(&buf);
}

static void on_closed(void *arg)
{
    cp_distrib *d = arg;
    if (--d->n_open_handles > 0)
        return;
    cp_api_closed_cb cb = d->closed_cb;
    void *cb_arg = d->closed_arg;
    json_decref(d->reports);
    nano_free(d);
    if (cb)
        cb(cb_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

/* stop_nng: after it returns no request is handled and nothing published. */
static void stop_nng(cp_distrib *d)
{
    atomic_store(&d->is_closing, true);
    if (d->rep != NULL) {
        nano_nng_rep_close(d->rep, on_closed, d); /* the handler never runs again */
        d->rep = NULL;
    }
    if (d->is_pub_open) {
        nng_close(d->pub);
        d->is_pub_open = false;
    }
    if (d->tls != NULL) {
        nng_tls_config_free(d->tls);
        d->tls = NULL;
    }
}

static void on_store_changed(void *arg) /* the watch's thread */
{
    cp_distrib *d = arg;
    uv_async_send(&d->changed);
}

static void on_changed(uv_async_t *a)
{
    cp_distrib *d = a->data;
    if (!atomic_load(&d->is_closing))
        cp_distrib_publish(d);
}

static void close_handles(cp_distrib *d)
{
    cp_store_watch_stop(d->watch); /* no on_store_changed after this */
    d->watch = NULL;
    uv_close((uv_handle_t *)&d->changed, on_timer_closed);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

void cp_distrib_close(cp_distrib *d, cp_api_closed_cb done, void *arg)
{
    if (d == NULL || d->closed_cb || uv_is_closing((uv_handle_t *)&d->timer))
        return;
    d->closed_cb = done;
    d->closed_arg = arg;
    uv_timer_stop(&d->timer);
    stop_nng(d); /* stops publishing: no delta or heartbeat after this */
    /* The last reports are written (nodes' last_seen), but nothing more is published. */
    if (json_object_size(d->reports) > 0) {
        bool changed = false;
        cp_error cerr;
        memset(&cerr, 0, sizeof cerr);
        cp_service_nodes_report(d->svc, d->reports, &changed, &cerr);
        json_object_clear(d->reports);
    }
    NANO_INFO("cp.distrib_closed", "published=%lld", (long long)d->published);
    close_handles(d);
}

static bool is_tls_url(const char *url)
{
    return url != NULL && strncmp(url, "tls+tcp://", 10) == 0;
}

static int tls_setup(cp_distrib *d, const cp_distrib_options *o, nano_error *err)
{
    nano_tls_files f = {o->tls_cert, "--dataplane-tls-cert", o->tls_key, "--dataplane-tls-key",
                        o->tls_ca,   "--dataplane-tls-ca"};
    return nano_tls_server_config(&f, &d->tls, err);
}

static int open_sockets(cp_distrib *d, const cp_distrib_options *o, nano_error *err)
{
    int rc = 0;
    if (is_tls_url(o->pub_url) || is_tls_url(o->rpc_url))
        rc = tls_setup(d, o, err);
    else if (o->tls_cert != NULL || o->tls_key != NULL || o->tls_ca != NULL)
        NANO_WARN("cp.tls_unused", "detail=%s",
                  "--dataplane-tls-* given but no data-plane URL is tls+tcp://");
    if (rc != 0)
        return rc;
    int rv = nng_pub0_open(&d->pub);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "listen_failed", "%s: %s", o->pub_url,
                              nng_strerror(rv));
    d->is_pub_open = true;
    rc = nano_nng_listen(d->pub, o->pub_url, d->tls, &d->pub_port, err);
    if (rc != 0)
        return rc;
    /* Bigger requests are dropped by NNG before they reach us (none is legitimately). */
    nano_nng_rep_options ro = {.url = o->rpc_url,
                               .tls = d->tls,
                               .n_contexts = CP_DISTRIB_CONTEXTS,
                               .max_request_bytes = NANO_MSG_MAX_BYTES,
                               .reply_failed_event = "cp.dp_reply_failed",
                               .handle = on_request,
                               .ud = d};
    rc = nano_nng_rep_start(d->loop, &ro, &d->rep, err);
    if (rc == 0)
        d->n_open_handles++;
    return rc;
}

int cp_distrib_start(uv_loop_t *loop, cp_service *svc, const cp_distrib_options *opt,
                     cp_distrib **out, nano_error *err)
{
    /* The node token: its file is made like the admin token's, only its hash is kept. */
    char path[4096], hash[65];
    if (opt->node_token_file != NULL)
        snprintf(path, sizeof path, "%s", opt->node_token_file);
    else
        snprintf(path, sizeof path, "%s/node.token", cp_service_data_dir(svc));
    bool created = false;
    cp_error cerr;
    memset(&cerr, 0, sizeof cerr);
    int rc = cp_service_token_file(path, hash, &created, &cerr);
    if (rc != 0)
        return nano_error_set(err, rc, "node_token", "%s", cerr.message);
    if (created)
        NANO_INFO("cp.node_token_created", "path=%s", path);

    cp_distrib *d = nano_xcalloc(1, sizeof *d);
    d->loop = loop;
    d->svc = svc;
    d->heartbeat_ms = opt->heartbeat_ms ? opt->heartbeat_ms : CP_DISTRIB_HEARTBEAT_MS;
    d->grace_ms = opt->drain_grace_ms ? opt->drain_grace_ms : CP_DISTRIB_DRAIN_GRACE_MS;
    char host[64] = "nanocp";
    gethostname(host, sizeof host - 1);
    unsigned char r[4] = {0};
    cp_random_bytes(r, sizeof r);
    snprintf(d->who, sizeof d->who, "%.63s:%d:%02x%02x%02x%02x", host, (int)getpid(), r[0], r[1],
             r[2], r[3]);
    d->reports = json_object();
    /* SQLite: the only nanocp of its database; etcd: decided at each heartbeat. */
    d->is_leader = !cp_store_is_etcd(cp_service_store(svc));
    nano_token_digest_from_hex(hash, d->token_digest); /* 64 hex digits: nano_sha256_hex's */
    OPENSSL_cleanse(hash, sizeof hash);
    atomic_init(&d->is_closing, false);
    d->published = log_seq(d);
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_async_init(loop, &d->changed, on_changed);
    d->changed.data = d;
    d->n_open_handles = 2; /* + the REP server's close, when it opens */
    if (opt->pub_url != NULL || opt->rpc_url != NULL) {
        if (opt->pub_url == NULL || opt->rpc_url == NULL)
            rc = nano_error_set(err, NANO_EINVAL, "listen_failed",
                                "both data-plane URLs are needed");
        else
            rc = open_sockets(d, opt, err);
        if (rc != 0) {
            stop_nng(d);
            close_handles(d);
            return rc;
        }
        uv_timer_start(&d->timer, on_timer, d->heartbeat_ms, d->heartbeat_ms);
        nano_error werr = {0};
        if (cp_store_watch_start(cp_service_store(svc), on_store_changed, d, &d->watch, &werr) != 0)
            NANO_WARN("cp.store_watch_failed", "error=%s detail=%s", werr.message,
                      "changes of other replicas are published at the next heartbeat");
        NANO_INFO("cp.distrib_listening",
                  "pub=%s pub_port=%d rpc=%s rpc_port=%d tls=%s "
                  "client_certs=%s node_token_file=%s seq=%lld",
                  opt->pub_url, d->pub_port, opt->rpc_url, nano_nng_rep_port(d->rep),
                  d->tls ? "on" : "off", d->tls && opt->tls_ca ? "required" : "no", path,
                  (long long)d->published);
    }
    *out = d;
    return 0;
}
