/* fleetsim: N simulated data planes speaking the nanocp protocol (shared/msg.h), for tests and
 * benchmarks of nanocp's distribution layer. Each client is a thread with a SUB and a REQ
 * socket: it says hello, takes a snapshot, applies deltas in order (a gap, or a heartbeat ahead
 * of what it applied, makes it resync with a snapshot), fetches code by sha256 and checks it,
 * fetches secrets when a secret.put arrives, reports status every --status-ms and acks each
 * app.drain (unless named with --no-ack). It keeps a minimal model of the config (apps, their
 * state and vars) so that what it reports is what it applied.
 *
 *   fleetsim --pub URL --rpc URL --token-file F [--clients N] [--prefix NAME]
 *            [--target-seq S] [--timeout SECONDS] [--status-ms MS] [--no-ack NODE]...
 *            [--tls-ca F [--tls-cert F --tls-key F]] [--server-name NAME]
 *
 * With --target-seq: exits 0 once every client has applied S or more, 1 on timeout. Without:
 * reads commands from stdin, one per line, and answers each with one line:
 *   wait S [SECONDS]  -> "converged S" | "timeout S min=A max=B"
 *   stats             -> "stats clients=N min=A max=B snapshots=K gaps=G behind=H errors=E"
 *   quit (or EOF)     -> exits 0
 * Once every client has its first snapshot it prints "ready N". A refused token is fatal:
 * "refused NODE unauthorized" and exit 3. At exit each client prints one line:
 *   "client NAME applied=S snapshots=K gaps=G acks=A". */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/supplemental/tls/tls.h>
#include <openssl/evp.h>

#include "alloc.h"
#include "buf.h"
#include "file.h"
#include "msg.h"
#include "nng_link.h"

#define MAX_CLIENTS 1000
#define MAX_NO_ACK 64

typedef struct opts {
    const char *pub_url, *rpc_url, *token_file, *prefix;
    const char *tls_ca, *tls_cert, *tls_key, *server_name;
    int clients;
    int64_t target_seq;
    double timeout_s;
    int status_ms;
    const char *no_ack[MAX_NO_ACK];
    int n_no_ack;
} opts;

typedef struct client {
    int index;
    char name[64];
    nng_socket req, sub;
    json_t *apps; /* {app: {state, version, vars: {}, acked: bool}} */
    int64_t applied;
    bool need_snapshot;
    /* read by the main thread */
    atomic_int_fast64_t applied_pub;
    atomic_int snapshots, gaps, behind, acks, errors;
    atomic_bool has_snapshot;
} client;

static opts O;
static char *TOKEN;
static client *CLIENTS;
static atomic_bool STOP;
static nng_tls_config *TLS;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fatal(const char *what, const char *detail)
{
    fprintf(stderr, "fleetsim: %s: %s\n", what, detail);
    exit(2);
}

static bool is_no_ack(const char *name)
{
    for (int i = 0; i < O.n_no_ack; i++)
        if (strcmp(O.no_ack[i], name) == 0)
            return true;
    return false;
}

/* --- requests ------------------------------------------------------------------------------- */

/* One request/reply. 0 with *out (ok true) filled; -1 on transport or decode failure; 1 when
 * nanocp answered ok false (code in code_out). fields is taken. */
static int call(client *c, nano_msg_type type, json_t *fields, nano_msg *out, char *code_out,
                size_t cap)
{
    nano_buf req = NANO_BUF_INIT;
    nano_error err = {0};
    int rc = nano_msg_encode_request(type, c->name, TOKEN, fields, &req, &err);
    json_decref(fields);
    if (rc != 0) {
        fprintf(stderr, "fleetsim: %s: encode %s: %s\n", c->name, nano_msg_type_name(type),
                err.message);
        nano_buf_fini(&req);
        return -1;
    }
    nng_msg *reply = NULL;
    uint64_t t0 = now_ms();
    rc = nano_nng_req_call(c->req, O.rpc_url, req.data, req.len, &reply, &err);
    nano_buf_fini(&req);
    uint64_t took = now_ms() - t0;
    if (took >= 1000 && !atomic_load(&STOP)) /* a hint for whoever reads a slow test's output */
        fprintf(stderr, "fleetsim: %s: %s took %llu ms%s%s\n", c->name, nano_msg_type_name(type),
                (unsigned long long)took, rc != 0 ? ": " : "", rc != 0 ? err.message : "");
    if (rc != 0) {
        atomic_fetch_add(&c->errors, 1);
        return -1;
    }
    nano_msg m;
    rc = nano_msg_decode_reply(type, nng_msg_body(reply), nng_msg_len(reply), &m, &err);
    nng_msg_free(reply);
    if (rc != 0) {
        fprintf(stderr, "fleetsim: %s: bad %s reply: %s\n", c->name, nano_msg_type_name(type),
                err.message);
        atomic_fetch_add(&c->errors, 1);
        return -1;
    }
    if (!m.ok) {
        snprintf(code_out, cap, "%s", m.error_code ? m.error_code : "?");
        if (strcmp(code_out, "unauthorized") == 0) {
            printf("refused %s unauthorized\n", c->name);
            fflush(stdout);
            exit(3);
        }
        fprintf(stderr, "fleetsim: %s: %s refused: %s (%s)\n", c->name, nano_msg_type_name(type),
                m.error_code, m.error_message ? m.error_message : "");
        nano_msg_fini(&m);
        atomic_fetch_add(&c->errors, 1);
        return 1;
    }
    *out = m;
    return 0;
}

static int fetch_code(client *c, const char *sha)
{
    nano_msg r;
    char code[64];
    if (call(c, NANO_MSG_CODE_GET, json_pack("{s:s}", "sha256", sha), &r, code, sizeof code) != 0)
        return -1;
    json_t *data = json_object_get(r.body, "data");
    unsigned char h[32];
    unsigned int n = 0;
    char hex[65];
    EVP_Digest(json_string_value(data), json_string_length(data), h, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    int rc = strcmp(hex, sha) == 0 ? 0 : -1;
    if (rc != 0) {
        fprintf(stderr, "fleetsim: %s: code.get %s returned other bytes\n", c->name, sha);
        atomic_fetch_add(&c->errors, 1);
    }
    nano_msg_fini(&r);
    return rc;
}

static void fetch_modules(client *c, json_t *modules)
{
    size_t i;
    json_t *m;
    json_array_foreach(modules, i, m) {
        fetch_code(c, json_string_value(json_object_get(m, "sha256")));
    }
}

static void fetch_secret(client *c, const char *app, const char *name)
{
    nano_msg r;
    char code[64];
    if (call(c, NANO_MSG_SECRETS_GET, json_pack("{s:s}", "app", app), &r, code, sizeof code) != 0)
        return;
    if (!json_is_string(json_object_get(json_object_get(r.body, "secrets"), name))) {
        fprintf(stderr, "fleetsim: %s: secrets.get %s lacks %s\n", c->name, app, name);
        atomic_fetch_add(&c->errors, 1);
    }
    nano_msg_fini(&r);
}

/* --- the config model ------------------------------------------------------------------------ */

static json_t *app_of(client *c, const char *app)
{
    json_t *a = json_object_get(c->apps, app);
    if (a == NULL) {
        a = json_pack("{s:s, s:i, s:{}, s:b}", "state", "active", "version", 0, "vars", "acked", 0);
        json_object_set_new(c->apps, app, a);
    }
    return a;
}

static void apply_op(client *c, json_t *op)
{
    const char *kind = json_string_value(json_object_get(op, "op"));
    const char *app = json_string_value(json_object_get(op, "app"));
    if (strcmp(kind, "app.put") == 0) {
        json_t *a = app_of(c, app);
        const char *state = json_string_value(json_object_get(op, "state"));
        if (strcmp(state, "draining") != 0 ||
            strcmp(json_string_value(json_object_get(a, "state")), "drained") != 0)
            json_object_set(a, "state", json_object_get(op, "state"));
        json_object_set(a, "version", json_object_get(op, "version"));
    } else if (strcmp(kind, "code.put") == 0) {
        fetch_modules(c, json_object_get(op, "modules"));
    } else if (strcmp(kind, "env.put") == 0) {
        json_object_set(json_object_get(app_of(c, app), "vars"),
                        json_string_value(json_object_get(op, "name")),
                        json_object_get(op, "value"));
    } else if (strcmp(kind, "env.del") == 0) {
        json_object_del(json_object_get(app_of(c, app), "vars"),
                        json_string_value(json_object_get(op, "name")));
    } else if (strcmp(kind, "secret.put") == 0) {
        fetch_secret(c, app, json_string_value(json_object_get(op, "name")));
    } else if (strcmp(kind, "app.drain") == 0) {
        json_t *a = app_of(c, app);
        if (!json_is_true(json_object_get(a, "acked")))
            json_object_set_new(a, "state", json_string("draining"));
    } else if (strcmp(kind, "app.remove") == 0) {
        json_object_del(c->apps, app);
    }
}

/* Acks every draining app not acked yet: a simulated node has no request in flight. */
static void ack_drains(client *c)
{
    if (is_no_ack(c->name))
        return;
    const char *app;
    json_t *a;
    json_object_foreach(c->apps, app, a) {
        if (strcmp(json_string_value(json_object_get(a, "state")), "draining") != 0 ||
            json_is_true(json_object_get(a, "acked")))
            continue;
        nano_msg r;
        char code[64];
        if (call(c, NANO_MSG_DRAIN_ACK,
                 json_pack("{s:s, s:s, s:i}", "app", app, "result", "drained", "in_flight", 0), &r,
                 code, sizeof code) == 0) {
            nano_msg_fini(&r);
            json_object_set_new(a, "acked", json_true());
            json_object_set_new(a, "state", json_string("drained"));
            atomic_fetch_add(&c->acks, 1);
        }
    }
}

static int take_snapshot(client *c)
{
    nano_msg r;
    char code[64];
    json_t *hello = json_pack("{s:s, s:s, s:[s]}", "version", "fleetsim", "addr", "127.0.0.1:0",
                              "capabilities", "sim");
    if (call(c, NANO_MSG_HELLO, hello, &r, code, sizeof code) != 0)
        return -1;
    nano_msg_fini(&r);
    if (call(c, NANO_MSG_SNAPSHOT, NULL, &r, code, sizeof code) != 0)
        return -1;
    json_t *apps = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(r.body, "apps"), i, s) {
        const char *name = json_string_value(json_object_get(s, "app"));
        json_t *old = json_object_get(c->apps, name);
        bool acked = old && json_is_true(json_object_get(old, "acked"));
        const char *state = json_string_value(json_object_get(s, "state"));
        json_object_set_new(apps, name,
                            json_pack("{s:s, s:O, s:O, s:b}", "state",
                                      acked && strcmp(state, "draining") == 0 ? "drained" : state,
                                      "version", json_object_get(s, "version"), "vars",
                                      json_object_get(s, "vars"), "acked", acked));
        fetch_modules(c, json_object_get(s, "modules"));
    }
    json_decref(c->apps);
    c->apps = apps;
    c->applied = (int64_t)r.seq;
    c->need_snapshot = false;
    nano_msg_fini(&r);
    atomic_store(&c->applied_pub, c->applied);
    atomic_fetch_add(&c->snapshots, 1);
    atomic_store(&c->has_snapshot, true);
    return 0;
}

static void send_status(client *c)
{
    json_t *apps = json_object();
    const char *name;
    json_t *a;
    json_object_foreach(c->apps, name, a) {
        json_object_set_new(apps, name,
                            json_pack("{s:O, s:i, s:O}", "state", json_object_get(a, "state"),
                                      "in_flight", 0, "version", json_object_get(a, "version")));
    }
    nano_msg r;
    char code[64];
    if (call(c, NANO_MSG_STATUS,
             json_pack("{s:I, s:o}", "applied_seq", (json_int_t)c->applied, "apps", apps), &r, code,
             sizeof code) == 0)
        nano_msg_fini(&r);
}

static void on_pub(client *c, const void *data, size_t len)
{
    nano_msg m;
    nano_error err = {0};
    if (nano_msg_decode_pub(data, len, &m, &err) != 0) {
        fprintf(stderr, "fleetsim: %s: dropped a bad message: %s\n", c->name, err.message);
        atomic_fetch_add(&c->errors, 1);
        return;
    }
    if (m.type == NANO_MSG_HEARTBEAT) {
        if ((int64_t)m.seq > c->applied) {
            atomic_fetch_add(&c->behind, 1);
            c->need_snapshot = true;
        }
    } else if ((int64_t)m.seq <= c->applied) {
        /* a duplicate, or older than the snapshot */
    } else if ((int64_t)m.first > c->applied + 1) {
        atomic_fetch_add(&c->gaps, 1);
        c->need_snapshot = true;
    } else {
        size_t i;
        json_t *op;
        json_array_foreach(json_object_get(m.body, "ops"), i, op) {
            if (json_integer_value(json_object_get(op, "seq")) > c->applied)
                apply_op(c, op);
        }
        c->applied = (int64_t)m.seq;
        atomic_store(&c->applied_pub, c->applied);
    }
    nano_msg_fini(&m);
}

static void *client_main(void *arg)
{
    client *c = arg;
    c->apps = json_object();
    c->need_snapshot = true;
    nano_error err = {0};
    int rv = nng_sub0_open(&c->sub);
    if (rv == 0)
        rv = nng_socket_set(c->sub, NNG_OPT_SUB_SUBSCRIBE, "", 0);
    if (rv == 0)
        rv = nng_socket_set_ms(c->sub, NNG_OPT_RECVTIMEO, 50);
    if (rv == 0)
        rv = nng_socket_set_size(c->sub, NNG_OPT_RECVMAXSZ, NANO_MSG_MAX_BYTES);
    if (rv != 0)
        nano_error_set(&err, NANO_EIO, "nng", "%s", nng_strerror(rv));
    /* Dialing in the background: the clients start before (or without) nanocp. */
    nano_nng_dial_options dial = {.tls = TLS, .is_background = true};
    if (rv != 0 || nano_nng_req_open(&c->req, 5000, NANO_MSG_MAX_BYTES, &err) != 0 ||
        nano_nng_dial(c->sub, O.pub_url, &dial, &err) != 0 ||
        nano_nng_dial(c->req, O.rpc_url, &dial, &err) != 0) {
        fprintf(stderr, "fleetsim: %s: %s\n", c->name, err.message);
        exit(2);
    }
    uint64_t next_status = now_ms() + (uint64_t)(c->index * 997 % (O.status_ms + 1));
    while (!atomic_load(&STOP)) {
        if (c->need_snapshot && take_snapshot(c) != 0) {
            usleep(200 * 1000); /* nanocp away: retry */
            continue;
        }
        ack_drains(c);
        if (now_ms() >= next_status) {
            send_status(c);
            next_status = now_ms() + (uint64_t)O.status_ms;
        }
        char *data = NULL;
        size_t len = 0;
        rv = nng_recv(c->sub, &data, &len, NNG_FLAG_ALLOC);
        if (rv == 0) {
            on_pub(c, data, len);
            nng_free(data, len);
        }
    }
    nng_close(c->sub);
    nng_close(c->req);
    json_decref(c->apps);
    return NULL;
}

/* --- main ------------------------------------------------------------------------------------ */

static void range(int64_t *lo, int64_t *hi)
{
    *lo = INT64_MAX;
    *hi = 0;
    for (int i = 0; i < O.clients; i++) {
        int64_t a = atomic_load(&CLIENTS[i].applied_pub);
        *lo = a < *lo ? a : *lo;
        *hi = a > *hi ? a : *hi;
    }
}

static bool wait_for(int64_t seq, double seconds)
{
    uint64_t deadline = now_ms() + (uint64_t)(seconds * 1000);
    for (;;) {
        int64_t lo, hi;
        range(&lo, &hi);
        if (lo >= seq)
            return true;
        if (now_ms() >= deadline)
            return false;
        usleep(10 * 1000);
    }
}

static void print_clients(void)
{
    for (int i = 0; i < O.clients; i++) {
        client *c = &CLIENTS[i];
        printf("client %s applied=%" PRId64 " snapshots=%d gaps=%d acks=%d\n", c->name,
               (int64_t)atomic_load(&c->applied_pub), atomic_load(&c->snapshots),
               atomic_load(&c->gaps), atomic_load(&c->acks));
    }
    fflush(stdout);
}

/* A small file whole (certificates, keys, the token), or exit 2. */
static char *read_small_file(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    nano_error err = {0};
    if (nano_read_file(path, 65536, &data, &len, &err) != 0)
        fatal("read", err.message);
    return data;
}

static char *read_token(const char *path)
{
    char *token = read_small_file(path);
    size_t n = strlen(token);
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r'))
        token[--n] = '\0';
    return token;
}

static void setup_tls(void)
{
    if (O.tls_ca == NULL)
        return;
    int rv = nng_tls_config_alloc(&TLS, NNG_TLS_MODE_CLIENT);
    if (rv == 0)
        rv = nng_tls_config_ca_file(TLS, O.tls_ca);
    if (rv == 0)
        rv = nng_tls_config_server_name(TLS, O.server_name ? O.server_name : "localhost");
    if (rv == 0)
        rv = nng_tls_config_auth_mode(TLS, NNG_TLS_AUTH_MODE_REQUIRED);
    if (rv == 0 && O.tls_cert != NULL) {
        char *cert = read_small_file(O.tls_cert);
        char *key = read_small_file(O.tls_key ? O.tls_key : "");
        rv = nng_tls_config_own_cert(TLS, cert, key, NULL);
        nano_free(cert);
        nano_free(key);
    }
    if (rv != 0)
        fatal("TLS setup", nng_strerror(rv));
}

static const char usage[] =
    "usage: fleetsim --pub URL --rpc URL --token-file F [--clients N] [--prefix NAME]\n"
    "                [--target-seq S] [--timeout SECONDS] [--status-ms MS] [--no-ack NODE]...\n"
    "                [--tls-ca F [--tls-cert F --tls-key F]] [--server-name NAME]\n";

int main(int argc, char **argv)
{
    O = (opts){.clients = 1, .prefix = "sim", .target_seq = -1, .timeout_s = 30, .status_ms = 1000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fleetsim: %s needs a value\n%s", a, usage);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--pub") == 0)
            O.pub_url = v;
        else if (strcmp(a, "--rpc") == 0)
            O.rpc_url = v;
        else if (strcmp(a, "--token-file") == 0)
            O.token_file = v;
        else if (strcmp(a, "--prefix") == 0)
            O.prefix = v;
        else if (strcmp(a, "--clients") == 0)
            O.clients = atoi(v);
        else if (strcmp(a, "--target-seq") == 0)
            O.target_seq = strtoll(v, NULL, 10);
        else if (strcmp(a, "--timeout") == 0)
            O.timeout_s = atof(v);
        else if (strcmp(a, "--status-ms") == 0)
            O.status_ms = atoi(v);
        else if (strcmp(a, "--no-ack") == 0 && O.n_no_ack < MAX_NO_ACK)
            O.no_ack[O.n_no_ack++] = v;
        else if (strcmp(a, "--tls-ca") == 0)
            O.tls_ca = v;
        else if (strcmp(a, "--tls-cert") == 0)
            O.tls_cert = v;
        else if (strcmp(a, "--tls-key") == 0)
            O.tls_key = v;
        else if (strcmp(a, "--server-name") == 0)
            O.server_name = v;
        else {
            fprintf(stderr, "fleetsim: unknown option %s\n%s", a, usage);
            return 2;
        }
    }
    if (!O.pub_url || !O.rpc_url || !O.token_file || O.clients < 1 || O.clients > MAX_CLIENTS ||
        O.status_ms < 10) {
        fprintf(stderr,
                "fleetsim: --pub, --rpc and --token-file are required; 1 <= --clients "
                "<= %d\n%s",
                MAX_CLIENTS, usage);
        return 2;
    }
    TOKEN = read_token(O.token_file);
    setup_tls();
    CLIENTS = calloc((size_t)O.clients, sizeof *CLIENTS);
    pthread_t *threads = calloc((size_t)O.clients, sizeof *threads);
    for (int i = 0; i < O.clients; i++) {
        client *c = &CLIENTS[i];
        c->index = i;
        snprintf(c->name, sizeof c->name, "%s-%03d", O.prefix, i + 1);
        atomic_init(&c->applied_pub, -1);
        if (!nano_msg_node_valid(c->name))
            fatal(c->name, "not a valid node name");
        pthread_create(&threads[i], NULL, client_main, c);
    }
    /* ready: every client has its first snapshot */
    uint64_t deadline = now_ms() + (uint64_t)(O.timeout_s * 1000);
    int n_ready = 0;
    while (now_ms() < deadline) {
        n_ready = 0;
        for (int i = 0; i < O.clients; i++)
            n_ready += atomic_load(&CLIENTS[i].has_snapshot);
        if (n_ready == O.clients)
            break;
        usleep(10 * 1000);
    }
    int code = 0;
    if (n_ready < O.clients) {
        printf("timeout ready=%d of %d\n", n_ready, O.clients);
        code = 1;
    } else if (O.target_seq >= 0) {
        printf("ready %d\n", O.clients);
        bool ok = wait_for(O.target_seq, (double)(deadline - now_ms()) / 1000.0);
        int64_t lo, hi;
        range(&lo, &hi);
        printf(ok ? "converged %" PRId64 "\n"
                  : "timeout %" PRId64 " min=%" PRId64 " max=%" PRId64 "\n",
               O.target_seq, lo, hi);
        code = ok ? 0 : 1;
    } else {
        printf("ready %d\n", O.clients);
        fflush(stdout);
        char line[256];
        while (fgets(line, sizeof line, stdin) != NULL) {
            long long seq = 0;
            double secs = 10;
            if (sscanf(line, "wait %lld %lf", &seq, &secs) >= 1) {
                bool ok = wait_for(seq, secs);
                int64_t lo, hi;
                range(&lo, &hi);
                if (ok)
                    printf("converged %lld\n", seq);
                else
                    printf("timeout %lld min=%" PRId64 " max=%" PRId64 "\n", seq, lo, hi);
            } else if (strncmp(line, "stats", 5) == 0) {
                int64_t lo, hi;
                range(&lo, &hi);
                int snaps = 0, gaps = 0, behind = 0, errors = 0;
                for (int i = 0; i < O.clients; i++) {
                    snaps += atomic_load(&CLIENTS[i].snapshots);
                    gaps += atomic_load(&CLIENTS[i].gaps);
                    behind += atomic_load(&CLIENTS[i].behind);
                    errors += atomic_load(&CLIENTS[i].errors);
                }
                printf("stats clients=%d min=%" PRId64 " max=%" PRId64
                       " snapshots=%d gaps=%d behind=%d errors=%d\n",
                       O.clients, lo, hi, snaps, gaps, behind, errors);
            } else if (strncmp(line, "quit", 4) == 0) {
                break;
            } else {
                printf("error unknown command\n");
            }
            fflush(stdout);
        }
    }
    fflush(stdout);
    atomic_store(&STOP, true);
    /* A client sees STOP between two calls; one waiting for a reply (up to 5 s a call) is
     * woken by closing its sockets after a grace period, so that quitting is prompt. Its own
     * nng_close afterwards only returns NNG_ECLOSED. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2;
    for (int i = 0; i < O.clients; i++) {
        if (pthread_timedjoin_np(threads[i], NULL, &until) == 0)
            continue;
        fprintf(stderr, "fleetsim: %s still in a call at quit: closing its sockets\n",
                CLIENTS[i].name);
        nng_close(CLIENTS[i].req);
        nng_close(CLIENTS[i].sub);
        pthread_join(threads[i], NULL);
    }
    print_clients();
    free(threads);
    free(CLIENTS);
    nano_free(TOKEN);
    if (TLS != NULL)
        nng_tls_config_free(TLS);
    return code;
}
