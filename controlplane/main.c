/* main.c: nanocp's process. Parses the command line, opens the service (data dir, database,
 * master key, admin token) and runs one libuv loop on this thread, the service thread and the
 * only one that touches SQLite. SIGTERM/SIGINT stop the loop; the store is checkpointed and
 * the process exits 0.
 *
 *   nanocp [--data-dir DIR] [--http ADDR] [--rpc URL] [--dataplane URL] [--dataplane-rpc URL]
 *          [--http-request-timeout D] [--http-body-min-rate N]
 *          [--master-key-file F] [--token-file F] [--node-token-file F]
 *          [--dataplane-tls-cert F --dataplane-tls-key F [--dataplane-tls-ca F]]
 *          [--checker PATH|off]
 *          [--log-format text|json] [--log-level L]
 *   nanocp migrate [--status] [--data-dir DIR]
 *   nanocp migrate --from SRC --to DST
 *   nanocp --help | --version
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage (one line on stderr). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "log.h"
#include "opt.h"
#include "parse.h"
#include "api_http.h"
#include "backup.h"
#include "migrate.h"
#include "sd.h"
#include "api_rpc.h"
#include "distrib.h"
#include "service.h"
#include "store.h"

#ifndef NANO_VERSION
#define NANO_VERSION "0.0.0"
#endif

enum { EXIT_USAGE = 2 };

typedef struct cp_options {
    const char *data_dir;
    const char *http;
    const char *rpc;
    const char *dataplane;
    const char *dataplane_rpc;
    const char *master_key_file;
    const char *token_file;
    const char *node_token_file;
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    const char *admin_tls_cert; /* --rpc tls+tcp:// (and, later, HTTPS) */
    const char *admin_tls_key;
    const char *admin_tls_ca;
    const char *checker; /* --checker PATH|off (NULL: nano-dp beside this binary) */
    const char *store;   /* --store etcd://...: the etcd store (NULL: SQLite in the data dir) */
    const char *store_cacert, *store_cert, *store_key; /* etcds:// */
    bool is_migrate;
    bool migrate_status;
    const char *from, *to; /* migrate --from SRC --to DST */
    bool is_backup;
    bool is_restore;
    const char *file;                 /* backup / restore: the backup file */
    const char *key_out;              /* backup --key-out */
    const char *http_request_timeout; /* as given; parsed into http_grace_ms */
    const char *http_body_min_rate;   /* as given; parsed into http_min_rate */
    uint64_t http_grace_ms;
    uint64_t http_min_rate;
    bool show_help;
    bool show_version;
} cp_options;

static const char usage[] =
    "usage: nanocp [options]             run the control plane\n"
    "       nanocp migrate [--status]    apply pending migrations (or list them) and exit\n"
    "       nanocp migrate --from SRC --to DST\n"
    "                                    move a whole store into an empty one; SRC and DST\n"
    "                                    are sqlite:PATH (a nanocp.db) or etcd:// URLs\n"
    "       nanocp backup [--key-out KEY] FILE\n"
    "                                    copy the database, consistent while nanocp runs\n"
    "       nanocp restore FILE          into a data dir without a database (then start)\n"
    "\n"
    "options:\n"
    "  --data-dir DIR          state: nanocp.db, master.key, admin.token (default ./var/nanocp)\n"
    "  --store URL             keep the state in etcd instead of DATA_DIR/nanocp.db:\n"
    "                          etcd://HOST:PORT[,HOST:PORT...][/PREFIX] or etcds://...; any\n"
    "                          number of nanocp on one store are replicas (docs/nanocp.md,\n"
    "                          \"Store backends\"; each needs the same master key and token)\n"
    "  --store-cacert F        etcds://: PEM CA that signed the etcd members' certificates\n"
    "  --store-cert F, --store-key F  etcds://: a client certificate for etcd and its key\n"
    "  --http ADDR             admin HTTP+JSON listen address (default 127.0.0.1:7070)\n"
    "  --http-request-timeout D  an admin HTTP request's head must be in within D of its\n"
    "                          first byte; its body within D of the head, plus 1s per\n"
    "                          --http-body-min-rate bytes of body (default 30s; 408\n"
    "                          beyond). D is 30, 30s, 1500ms or 5m\n"
    "  --http-body-min-rate N  bytes/s a request body must keep up on average (default\n"
    "                          500; 0: no rate, only the 60s idle timeout bounds a body)\n"
    "  --rpc URL               admin msgpack RPC (default tcp://127.0.0.1:7071)\n"
    "  --dataplane URL         config deltas to data planes (default tcp://127.0.0.1:7072)\n"
    "  --dataplane-rpc URL     snapshots and node status (default tcp://127.0.0.1:7073)\n"
    "  --master-key-file F     secrets master key: 64 hex digits, mode 0600 (default:\n"
    "                          NANO_MASTER_KEY, else DATA_DIR/master.key, made on first start)\n"
    "  --token-file F          admin bearer token (default DATA_DIR/admin.token, made on\n"
    "                          first start)\n"
    "  --node-token-file F     the token data planes present (default DATA_DIR/node.token,\n"
    "                          made on first start; give nano-dp the same file)\n"
    "  --admin-tls-cert F      PEM server certificate of the admin APIs: --http serves\n"
    "                          HTTPS only and --rpc must be tls+tcp:// (or ipc://);\n"
    "                          SIGHUP reloads it for HTTPS\n"
    "  --admin-tls-key F       PEM private key of that certificate\n"
    "  --admin-tls-ca F        PEM CA: admin clients must present a client certificate it\n"
    "                          signed (nanoctl --cert/--key)\n"
    "  --dataplane-tls-cert F  PEM server certificate for tls+tcp:// data-plane URLs\n"
    "  --dataplane-tls-key F   PEM private key of that certificate\n"
    "  --dataplane-tls-ca F    PEM CA: data planes must present a client certificate it signed\n"
    "  --checker PATH|off      nano-dp, run as `nano-dp check` to load each deployment before\n"
    "                          it is accepted (default: nano-dp beside nanocp; off: none)\n"
    "  --log-format text|json  log line format (default text)\n"
    "  --log-level LEVEL       debug, info, warn or error (default info)\n"
    "  --status                with migrate: list migrations, change nothing\n"
    "  --from SRC, --to DST    with migrate: copy every app, deployment, env var, sealed\n"
    "                          secret, node, drain, log and token from SRC into DST (empty),\n"
    "                          then verify; SRC may be in use (--store-cacert/-cert/-key for\n"
    "                          etcds://)\n"
    "  --key-out KEY           with backup: also write the master key to KEY (mode 0600);\n"
    "                          without it, a backup's secrets need the key kept elsewhere\n"
    "  -h, --help              this text\n"
    "  --version               print the version\n"
    "\n"
    "Data planes subscribe to --dataplane and ask --dataplane-rpc (docs/distribution.md).\n"
    "Beyond loopback use tls+tcp:// URLs with --dataplane-tls-cert and --dataplane-tls-key.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "nanocp: %s (see nanocp --help)\n", line);
    return EXIT_USAGE;
}

static bool is_url(const char *s)
{
    return strncmp(s, "tcp://", 6) == 0 || strncmp(s, "tls+tcp://", 10) == 0 ||
           strncmp(s, "ipc://", 6) == 0;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT". */
static bool is_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    int port;
    return colon != NULL && nano_parse_port(colon + 1, &port) == 0;
}

/* The options: those that act are numbered below 0; the others are stored as given in
 * cp_options, at the offset their id holds. */
enum { OPT_HELP = -1, OPT_VERSION = -2, OPT_STATUS = -3, OPT_LOG_FORMAT = -4, OPT_LOG_LEVEL = -5 };

static const nano_opt options[] = {
    {"-h", false, OPT_HELP},
    {"--help", false, OPT_HELP},
    {"--version", false, OPT_VERSION},
    {"--status", false, OPT_STATUS},
    {"--log-format", true, OPT_LOG_FORMAT},
    {"--log-level", true, OPT_LOG_LEVEL},
    {"--data-dir", true, (int)offsetof(cp_options, data_dir)},
    {"--http", true, (int)offsetof(cp_options, http)},
    {"--http-request-timeout", true, (int)offsetof(cp_options, http_request_timeout)},
    {"--http-body-min-rate", true, (int)offsetof(cp_options, http_body_min_rate)},
    {"--rpc", true, (int)offsetof(cp_options, rpc)},
    {"--dataplane", true, (int)offsetof(cp_options, dataplane)},
    {"--dataplane-rpc", true, (int)offsetof(cp_options, dataplane_rpc)},
    {"--master-key-file", true, (int)offsetof(cp_options, master_key_file)},
    {"--key-out", true, (int)offsetof(cp_options, key_out)},
    {"--token-file", true, (int)offsetof(cp_options, token_file)},
    {"--node-token-file", true, (int)offsetof(cp_options, node_token_file)},
    {"--checker", true, (int)offsetof(cp_options, checker)},
    {"--store", true, (int)offsetof(cp_options, store)},
    {"--from", true, (int)offsetof(cp_options, from)},
    {"--to", true, (int)offsetof(cp_options, to)},
    {"--store-cacert", true, (int)offsetof(cp_options, store_cacert)},
    {"--store-cert", true, (int)offsetof(cp_options, store_cert)},
    {"--store-key", true, (int)offsetof(cp_options, store_key)},
    {"--admin-tls-cert", true, (int)offsetof(cp_options, admin_tls_cert)},
    {"--admin-tls-key", true, (int)offsetof(cp_options, admin_tls_key)},
    {"--admin-tls-ca", true, (int)offsetof(cp_options, admin_tls_ca)},
    {"--dataplane-tls-cert", true, (int)offsetof(cp_options, tls_cert)},
    {"--dataplane-tls-key", true, (int)offsetof(cp_options, tls_key)},
    {"--dataplane-tls-ca", true, (int)offsetof(cp_options, tls_ca)},
    {NULL, false, 0},
};

static int parse_args(cp_options *o, int argc, char **argv)
{
    *o = (cp_options){.data_dir = "./var/nanocp",
                      .http = "127.0.0.1:7070",
                      .rpc = "tcp://127.0.0.1:7071",
                      .dataplane = "tcp://127.0.0.1:7072",
                      .dataplane_rpc = "tcp://127.0.0.1:7073"};
    nano_opt_parser p = {options, NULL, argc, argv, 1};
    while (p.i < argc) {
        int k;
        const char *value;
        nano_error err = {0};
        if (nano_opt_next(&p, &k, &value, &err) != 0)
            return usage_error("%s", err.message);
        if (k == NANO_OPT_ARG) {
            if (p.i == 2 && strcmp(value, "migrate") == 0)
                o->is_migrate = true;
            else if (p.i == 2 && strcmp(value, "backup") == 0)
                o->is_backup = true;
            else if (p.i == 2 && strcmp(value, "restore") == 0)
                o->is_restore = true;
            else if ((o->is_backup || o->is_restore) && o->file == NULL)
                o->file = value;
            else
                return usage_error("unknown argument '%s'", value);
            continue;
        }
        const nano_opt *opt = &options[k];
        if (opt->has_value && *value == '\0')
            return usage_error("%s needs a value", opt->name);
        switch (opt->id) {
        case OPT_HELP: o->show_help = true; break;
        case OPT_VERSION: o->show_version = true; break;
        case OPT_STATUS:
            if (!o->is_migrate)
                return usage_error("%s is an option of `nanocp migrate`", opt->name);
            o->migrate_status = true;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(value, "json") != 0 && strcmp(value, "text") != 0)
                return usage_error("--log-format must be text or json, not '%s'", value);
            nano_log_json = strcmp(value, "json") == 0;
            break;
        case OPT_LOG_LEVEL:
            if (nano_log_level_parse(value, &nano_log_min_level) != 0)
                return usage_error("--log-level must be debug, info, warn or error, not '%s'",
                                   value);
            break;
        default: *(const char **)((char *)o + opt->id) = value; break;
        }
    }
    if (o->store != NULL && !cp_store_url_is_etcd(o->store))
        return usage_error("--store must be an etcd://HOST:PORT[,...][/PREFIX] or etcds:// URL, "
                           "not '%s'",
                           o->store);
    if ((o->from || o->to) && !o->is_migrate)
        return usage_error("--from and --to are options of `nanocp migrate`");
    if ((o->from == NULL) != (o->to == NULL))
        return usage_error("nanocp migrate needs both --from SRC and --to DST");
    if (o->from != NULL && (o->migrate_status || o->store != NULL))
        return usage_error("nanocp migrate --from/--to takes neither --status nor --store");
    bool has_etcds = (o->store && strncmp(o->store, "etcds://", 8) == 0) ||
                     (o->from && strncmp(o->from, "etcds://", 8) == 0) ||
                     (o->to && strncmp(o->to, "etcds://", 8) == 0);
    if ((o->store_cacert || o->store_cert || o->store_key) && !has_etcds)
        return usage_error("--store-cacert, --store-cert and --store-key are for an etcds:// "
                           "--store (or migrate --from/--to)");
    if ((o->store_cert == NULL) != (o->store_key == NULL))
        return usage_error("--store-cert and --store-key go together");
    if (o->store != NULL && (o->is_backup || o->is_restore))
        return usage_error("nanocp %s copies the SQLite store; with --store etcd://, back up "
                           "etcd itself (etcdctl snapshot save)",
                           o->is_backup ? "backup" : "restore");
    if ((o->is_backup || o->is_restore) && o->file == NULL)
        return usage_error("nanocp %s needs the backup FILE", o->is_backup ? "backup" : "restore");
    if (o->key_out != NULL && !o->is_backup)
        return usage_error("--key-out is an option of `nanocp backup`");
    if (!is_addr(o->http))
        return usage_error("--http must be HOST:PORT, not '%s'", o->http);
    o->http_grace_ms = CP_HTTP_REQUEST_GRACE_MS;
    o->http_min_rate = CP_HTTP_BODY_MIN_RATE;
    if (o->http_request_timeout != NULL &&
        (nano_parse_duration_ms(o->http_request_timeout, &o->http_grace_ms) != 0 ||
         o->http_grace_ms == 0))
        return usage_error("--http-request-timeout must be a duration above 0 (30, 30s, "
                           "1500ms, 5m), not '%s'",
                           o->http_request_timeout);
    if (o->http_body_min_rate != NULL &&
        nano_parse_size(o->http_body_min_rate, &o->http_min_rate) != 0)
        return usage_error("--http-body-min-rate must be bytes per second (500, 1KiB, 0), "
                           "not '%s'",
                           o->http_body_min_rate);
    if (!is_url(o->rpc))
        return usage_error("--rpc must be a tcp://, tls+tcp:// or ipc:// URL, not '%s'", o->rpc);
    if (!is_url(o->dataplane))
        return usage_error("--dataplane must be a tcp://, tls+tcp:// or ipc:// URL, not '%s'",
                           o->dataplane);
    if (!is_url(o->dataplane_rpc))
        return usage_error("--dataplane-rpc must be a tcp://, tls+tcp:// or ipc:// URL, not '%s'",
                           o->dataplane_rpc);
    bool is_admin_tls = strncmp(o->rpc, "tls+tcp://", 10) == 0;
    if (is_admin_tls && (o->admin_tls_cert == NULL || o->admin_tls_key == NULL))
        return usage_error("a tls+tcp:// --rpc URL needs --admin-tls-cert and --admin-tls-key");
    if ((o->admin_tls_cert == NULL) != (o->admin_tls_key == NULL))
        return usage_error("--admin-tls-cert and --admin-tls-key go together");
    if (o->admin_tls_ca != NULL && o->admin_tls_cert == NULL)
        return usage_error("--admin-tls-ca needs --admin-tls-cert and --admin-tls-key");
    if (o->admin_tls_cert != NULL && strncmp(o->rpc, "tcp://", 6) == 0)
        return usage_error("with --admin-tls-cert the admin APIs take no plaintext: make --rpc "
                           "a tls+tcp:// (or ipc://) URL, not '%s'",
                           o->rpc);
    bool is_tls = strncmp(o->dataplane, "tls+tcp://", 10) == 0 ||
                  strncmp(o->dataplane_rpc, "tls+tcp://", 10) == 0;
    if (is_tls && (o->tls_cert == NULL || o->tls_key == NULL))
        return usage_error("a tls+tcp:// data-plane URL needs --dataplane-tls-cert and "
                           "--dataplane-tls-key");
    if ((o->tls_cert == NULL) != (o->tls_key == NULL))
        return usage_error("--dataplane-tls-cert and --dataplane-tls-key go together");
    if (o->tls_ca != NULL && o->tls_cert == NULL)
        return usage_error("--dataplane-tls-ca needs --dataplane-tls-cert and "
                           "--dataplane-tls-key");
    return 0;
}

/* nanocp migrate [--status] --store etcd://...: the etcd store's schema version (one key:
 * store_etcd.c), written when missing or older unless --status. */
static int run_migrate_etcd(const cp_options *o)
{
    cp_etcd_tls tls = {o->store_cacert, o->store_cert, o->store_key};
    bool has_tls = tls.cacert || tls.cert || tls.key;
    cp_store *st = NULL;
    nano_error err = {0};
    if (cp_store_open_etcd(o->store, has_tls ? &tls : NULL, !o->migrate_status, &st, &err) != 0) {
        fprintf(stderr, "nanocp: %s\n", err.message);
        return 1;
    }
    int64_t version = 0;
    int rc = cp_store_schema_version(st, &version);
    cp_store_free(st);
    if (rc != 0) {
        fprintf(stderr, "nanocp: %s: cannot read the schema version: %s\n", o->store,
                nano_strerror(rc));
        return 1;
    }
    printf("etcd store %s: schema version %lld%s\n", o->store, (long long)version,
           version == 0 ? " (empty: `nanocp migrate --store URL` or the first start writes it)"
                        : "");
    return 0;
}

/* nanocp migrate [--status]: the migrations this binary has and what the database records. */
static int run_migrate(const cp_options *o)
{
    if (o->store != NULL)
        return run_migrate_etcd(o);
    char path[4096];
    snprintf(path, sizeof path, "%s/nanocp.db", o->data_dir);
    struct stat stbuf;
    bool exists = stat(path, &stbuf) == 0;
    if (!o->migrate_status && !exists && mkdir(o->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "nanocp: cannot create data dir %s: %s\n", o->data_dir, strerror(errno));
        return 1;
    }
    cp_store *st = NULL;
    nano_error err = {0};
    json_t *list = NULL;
    if (exists || !o->migrate_status) {
        if (cp_store_open(path, !o->migrate_status, &st, &err) != 0) {
            fprintf(stderr, "nanocp: %s\n", err.message);
            return 1;
        }
        cp_store_migrations(st, &list);
    }
    if (!exists && o->migrate_status)
        printf("database %s does not exist yet: every migration is pending\n", path);
    printf("%-8s %-24s %s\n", "VERSION", "NAME", "APPLIED");
    bool is_newer = false;
    if (list == NULL) {
        list = json_array();
        for (size_t i = 0; i < cp_migrations_count; i++) {
            char name[128];
            long v = strtol(cp_migrations[i].name, NULL, 10);
            const char *stem = strchr(cp_migrations[i].name, '_');
            snprintf(name, sizeof name, "%s", stem ? stem + 1 : cp_migrations[i].name);
            char *dot = strrchr(name, '.');
            if (dot != NULL)
                *dot = '\0';
            json_array_append_new(
                list, json_pack("{s:i, s:s, s:n}", "version", (int)v, "name", name, "applied_at"));
        }
    }
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        json_t *at = json_object_get(m, "applied_at");
        bool unknown = json_is_false(json_object_get(m, "known"));
        is_newer = is_newer || unknown;
        printf("%04lld     %-24s %s%s\n",
               (long long)json_integer_value(json_object_get(m, "version")),
               json_string_value(json_object_get(m, "name")),
               json_is_string(at) ? json_string_value(at) : "pending",
               unknown ? "  (unknown to this nanocp: newer)" : "");
    }
    json_decref(list);
    cp_store_free(st);
    return is_newer ? 1 : 0;
}

/* --- the running control plane ---------------------------------------------------------- */

typedef struct cp_main {
    uv_loop_t loop;
    cp_service *svc;
    cp_http *http;
    cp_rpc *rpc;
    cp_distrib *distrib;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t watchdog;
    const cp_options *opts; /* systemd WATCHDOG=1 pings while the loop turns (shared/sd.h) */
} cp_main;

/* The front ends reach the service only through these two (api.h's callback types). The
 * nodes' status reports received so far are written first (else once a second), so that a
 * call sees them: `nanoctl nodes` right after a node applied a config shows it applied. A
 * call that committed a change has appended to the config log: the data planes get it at
 * once, as one delta (cp_distrib_publish is a no-op when nothing is new). */
static int svc_call(void *ud, const cp_actor *actor, const char *op, json_t *args, json_t **result,
                    cp_error *err)
{
    cp_main *m = ud;
    if (m->distrib != NULL)
        cp_distrib_flush(m->distrib);
    int rc = cp_service_call(m->svc, actor, op, args, result, err);
    if (rc == 0)
        cp_distrib_publish(m->distrib);
    return rc;
}

static bool svc_check(void *ud, const char *token, const char **who)
{
    cp_main *m = ud;
    return cp_service_check_token(m->svc, token, who);
}

static void on_signal(uv_signal_t *s, int signum)
{
    cp_main *m = s->data;
    NANO_INFO("nanocp.shutdown", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    nano_sd_notify("STOPPING=1\nSTATUS=stopping");
    /* Calls run to completion on this thread, so none is half done here; closing lets the
     * answers already queued go out (the HTTP side gives them up to 2 s). */
    cp_http_close(m->http, NULL, NULL);
    cp_rpc_close(m->rpc, NULL, NULL);
    /* Stops publishing and closes the data-plane sockets; the data planes keep serving what
     * they have and reconnect with backoff. The store is checkpointed once the loop ends. */
    cp_distrib_close(m->distrib, NULL, NULL);
    m->http = NULL;
    m->rpc = NULL;
    m->distrib = NULL;
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sighup, NULL);
    uv_close((uv_handle_t *)&m->watchdog, NULL);
}

/* SIGHUP: the HTTPS certificate and key read again (renewed certificates take effect without
 * a restart; connections open keep theirs). A file that does not load keeps the old one. The
 * RPC listener's certificate (NNG's) is fixed until nanocp restarts. */
static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    cp_main *m = s->data;
    const cp_options *o = m->opts;
    if (o->admin_tls_cert == NULL || m->http == NULL) {
        NANO_INFO("nanocp.sighup_ignored", "detail=%s", "no --admin-tls-cert to reload");
        return;
    }
    nano_sd_notify("RELOADING=1\nSTATUS=reloading the admin TLS certificate");
    nano_error err = {0};
    if (cp_http_use_tls(m->http, o->admin_tls_cert, o->admin_tls_key, o->admin_tls_ca, &err) != 0)
        NANO_ERROR("nanocp.tls_reload_failed", "error=%s (the previous certificate stays)",
                   err.message);
    else
        NANO_INFO("nanocp.tls_reloaded", "cert=%s", o->admin_tls_cert);
    nano_sd_notify("READY=1\nSTATUS=serving");
}

/* nanocp is one loop thread: a ping from a timer on it proves the loop turns (an op, which
 * runs on it, that never returned would stop them). */
static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    nano_sd_notify("WATCHDOG=1");
}

/* The load checker: --checker PATH, none with "off", else nano-dp beside this binary (the
 * two ship together) when there is one. */
static const char *default_checker(const char *opt, char *buf, size_t cap)
{
    if (opt != NULL)
        return strcmp(opt, "off") == 0 ? NULL : opt;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL || (size_t)(slash - buf) + sizeof "/nano-dp" > cap)
        return NULL;
    strcpy(slash, "/nano-dp");
    if (access(buf, X_OK) != 0) {
        NANO_WARN("cp.checker_missing",
                  "path=%s (deployments are not checked before they are "
                  "accepted; give --checker PATH)",
                  buf);
        return NULL;
    }
    return buf;
}

static int run(const cp_options *o)
{
    cp_main m = {0};
    cp_error err = {0};
    char checker[4096];
    cp_service_options so = {.data_dir = o->data_dir,
                             .store_url = o->store,
                             .store_cacert = o->store_cacert,
                             .store_cert = o->store_cert,
                             .store_key = o->store_key,
                             .master_key_file = o->master_key_file,
                             .token_file = o->token_file,
                             .checker = default_checker(o->checker, checker, sizeof checker)};
    if (cp_service_open(&so, &m.svc, &err) != 0) {
        NANO_ERROR("nanocp.start_failed", "error=%s", err.message);
        fprintf(stderr, "nanocp: %s\n", err.message);
        return 1;
    }
    uv_loop_init(&m.loop);
    uv_signal_init(&m.loop, &m.sigterm);
    uv_signal_init(&m.loop, &m.sigint);
    uv_signal_init(&m.loop, &m.sighup);
    m.sigterm.data = m.sigint.data = m.sighup.data = &m;
    m.opts = o;
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sighup, on_sighup, SIGHUP);
    uv_timer_init(&m.loop, &m.watchdog);

    /* --- admin front ends and the data-plane channels (the one place they start), on this
     * loop and thread ------------------------------------------------------------------------ */
    nano_error nerr = {0};
    cp_distrib_options dopt = {.pub_url = o->dataplane,
                               .rpc_url = o->dataplane_rpc,
                               .node_token_file = o->node_token_file,
                               .tls_cert = o->tls_cert,
                               .tls_key = o->tls_key,
                               .tls_ca = o->tls_ca};
    cp_http_limits limits = CP_HTTP_LIMITS_DEFAULT;
    limits.request_grace_ms = o->http_grace_ms;
    limits.body_min_rate = o->http_min_rate;
    int started = cp_distrib_start(&m.loop, m.svc, &dopt, &m.distrib, &nerr);
    if (started == 0)
        started = cp_http_start(&m.loop, o->http, svc_call, svc_check, &m, &limits, &m.http, &nerr);
    /* Before the loop runs: no plaintext connection is ever accepted. */
    if (started == 0 && o->admin_tls_cert != NULL)
        started = cp_http_use_tls(m.http, o->admin_tls_cert, o->admin_tls_key, o->admin_tls_ca,
                                  &nerr);
    nano_tls_files admin_tls = {o->admin_tls_cert, "--admin-tls-cert", o->admin_tls_key,
                                "--admin-tls-key", o->admin_tls_ca,    "--admin-tls-ca"};
    if (started == 0)
        started = cp_rpc_start(&m.loop, o->rpc, &admin_tls, svc_call, svc_check, &m, &m.rpc, &nerr);
    if (started != 0) {
        NANO_ERROR("nanocp.start_failed", "error=%s", nerr.message);
        fprintf(stderr, "nanocp: %s\n", nerr.message);
        cp_distrib_close(m.distrib, NULL, NULL);
        cp_http_close(m.http, NULL, NULL);
        uv_close((uv_handle_t *)&m.sigterm, NULL);
        uv_close((uv_handle_t *)&m.sigint, NULL);
        uv_close((uv_handle_t *)&m.sighup, NULL);
        uv_close((uv_handle_t *)&m.watchdog, NULL);
        uv_run(&m.loop, UV_RUN_DEFAULT);
        uv_loop_close(&m.loop);
        cp_service_free(m.svc);
        return 1;
    }

    NANO_INFO("nanocp.ready",
              "data_dir=%s db=%s token_file=%s master_key=%s http=%s rpc=%s "
              "dataplane=%s dataplane_rpc=%s",
              cp_service_data_dir(m.svc), cp_service_db_path(m.svc), cp_service_token_path(m.svc),
              cp_service_key_source(m.svc), o->http, o->rpc, o->dataplane, o->dataplane_rpc);
    /* The bound ports (a ":0" in a flag picked one). */
    nano_sd_notifyf("READY=1\nSTATUS=serving: http port %d%s, rpc port %d, data planes %s",
                    cp_http_port(m.http), o->admin_tls_cert != NULL ? " (https)" : "",
                    cp_rpc_port(m.rpc), o->dataplane);
    uint64_t usec = nano_sd_watchdog_usec();
    if (usec > 0) /* three pings per interval */
        uv_timer_start(&m.watchdog, on_watchdog, usec / 3000 > 10 ? usec / 3000 : 10,
                       usec / 3000 > 10 ? usec / 3000 : 10);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    cp_service_free(m.svc); /* checkpoints the WAL */
    int rc = uv_loop_close(&m.loop);
    NANO_INFO("nanocp.stopped", "loop_close=%d", rc);
    return 0;
}

int main(int argc, char **argv)
{
    cp_options o;
    int rc = parse_args(&o, argc, argv);
    if (rc != 0)
        return rc;
    if (o.show_help) {
        fputs(usage, stdout);
        return 0;
    }
    if (o.show_version) {
        printf("nanocp %s\n", NANO_VERSION);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (o.is_migrate && o.from != NULL) {
        cp_etcd_tls tls = {o.store_cacert, o.store_cert, o.store_key};
        return cp_migrate_run(o.from, o.to, &tls);
    }
    if (o.is_migrate)
        return run_migrate(&o);
    if (o.is_backup)
        return cp_backup_run(o.data_dir, o.master_key_file, o.key_out, o.file);
    if (o.is_restore)
        return cp_restore_run(o.data_dir, o.master_key_file, o.file);
    return run(&o);
}
