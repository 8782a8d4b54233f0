/* run.c: nanoctl's global options, help and command dispatch. */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "opt.h"
#include "parse.h"

const char ctl_help_main[] =
    "usage: nanoctl [--cp URL] [--token T | --token-file F] [--config F] [--timeout D] [--json]\n"
    "               [--cacert F [--cert F --key F]] COMMAND [ARGS]\n"
    "\n"
    "Administers a NANO control plane (nanocp) over its binary admin API.\n"
    "\n"
    "commands:\n"
    "  apps list | create NAME --host H... | update NAME ... | deploy NAME FILE... |\n"
    "       rm NAME | status NAME | drain NAME\n"
    "  env list APP | set APP K=V... [--json] | unset APP K... | import APP FILE\n"
    "  secret list APP | set APP K (value from stdin) | rm APP K\n"
    "  deployments APP          rollback APP VERSION\n"
    "  nodes [list] | rm NAME   audit [--limit N] [--before ID]\n"
    "  apply nano.json [--prune] [--dry-run]\n"
    "  version\n"
    "\n"
    "options (before the command):\n"
    "  --cp URL          nanocp's admin RPC address (NANO_CP; default " CTL_DEFAULT_URL ");\n"
    "                    URL,URL,...: nanocp replicas, tried in turn\n"
    "  --token T         admin token (NANO_TOKEN)\n"
    "  --token-file F    read the token from the first line of F (e.g. DATA_DIR/admin.token)\n"
    "  --cacert F        tls+tcp:// URL: the CA that signed nanocp's certificate, which must\n"
    "                    name the URL's host (NANO_CACERT)\n"
    "  --cert F, --key F tls+tcp://: a client certificate and its key, when nanocp asks\n"
    "                    for one (--admin-tls-ca)\n"
    "  --config F        config file with {\"cp\", \"token\" or \"token_file\", \"cacert\",\n"
    "                    \"cert\", \"key\"}\n"
    "                    (default ~/.config/nano/nanoctl.json, if it exists)\n"
    "  --timeout D       bound on connecting and on each call: 10s, 1500ms, 2m (default 10s)\n"
    "  --json            print results as JSON (also accepted after most commands)\n"
    "\n"
    "`nanoctl COMMAND --help` describes a command. Exit codes: 0 ok, 1 runtime failure,\n"
    "2 bad usage or input.\n";

const char ctl_help_other[] =
    "usage: nanoctl nodes [list]\n"
    "       nanoctl nodes rm NAME\n"
    "       nanoctl deployments APP\n"
    "       nanoctl rollback APP VERSION\n"
    "       nanoctl audit [--limit N] [--before ID]\n"
    "       nanoctl version\n"
    "\n"
    "  nodes         data-plane nodes: last seen, applied config, per-app state\n"
    "  nodes rm      forget a node gone for good: drains stop waiting for it (a node that\n"
    "                still runs registers again at its next status report)\n"
    "  deployments   an app's deployments, newest first; the active one is marked\n"
    "  rollback      make an earlier deployment of APP active again (its own version)\n"
    "  audit         the audit log, newest first (--limit N entries; --before ID pages)\n"
    "  version       nanoctl's version and nanocp's (schema version, config sequence)\n";

typedef struct command {
    const char *name;
    int (*run)(ctl_ctx *ctx, int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"apps", ctl_cmd_apps, ctl_help_apps},
    {"env", ctl_cmd_env, ctl_help_env},
    {"secret", ctl_cmd_secret, ctl_help_secret},
    {"secrets", ctl_cmd_secret, ctl_help_secret},
    {"deployments", ctl_cmd_deployments, ctl_help_other},
    {"rollback", ctl_cmd_rollback, ctl_help_other},
    {"nodes", ctl_cmd_nodes, ctl_help_other},
    {"audit", ctl_cmd_audit, ctl_help_other},
    {"version", ctl_cmd_version, ctl_help_other},
    {"apply", ctl_cmd_apply, ctl_help_apply},
};

static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

typedef struct client_state {
    ctl_ctx *ctx;
    ctl_conn conn; /* conn.url: one address, or a comma-separated list of replicas */
    char *urls[CTL_MAX_URLS];
    size_t n_urls, cur; /* the address in use (or to try next) */
    int timeout_ms;
    ctl_client *client;
} client_state;

/* Whether running op twice leaves what running it once does: reads, and changes that set a
 * state (not those that add a version, or fail when repeated). Only these are sent again to
 * another replica after one took the request and gave no answer. */
static bool is_idempotent(const char *op)
{
    static const char *const ops[] = {
        "apps.list",    "apps.get",    "apps.drain",  "deployments.list", "env.get",
        "secrets.list", "nodes.list",  "audit.list",  "version",          "status",
        "env.patch",    "env.replace", "secrets.put", "apps.update",
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(op, ops[i]) == 0)
            return true;
    return false;
}

/* Connects on the first call, so that usage errors never wait on the network. With several
 * addresses (--cp URL,URL,...: nanocp replicas on one store), one that cannot be reached is
 * skipped for the next; a request sent that got no answer (or a server error) goes to the next
 * only when op is idempotent, since the first may have made the change. */
static int lazy_call(void *ud, const char *op, json_t *args, json_t **result,
                     ctl_remote_error *rerr)
{
    client_state *s = ud;
    char tried[512] = "";
    int rc = NANO_EIO;
    for (size_t n = 0; n < s->n_urls; n++) {
        const char *url = s->urls[s->cur];
        memset(rerr, 0, sizeof *rerr);
        if (s->client == NULL) {
            ctl_conn one = s->conn;
            one.url = (char *)url;
            nano_error err = {0};
            if (ctl_client_open_conn(&one, s->timeout_ms, &s->client, &err) != 0) {
                snprintf(rerr->message, sizeof rerr->message, "%s", err.message);
                rc = NANO_EIO;
                goto next; /* nothing was sent */
            }
        }
        rc = ctl_client_call(s->client, op, args, result, rerr);
        bool is_server_fault = rc == CTL_EREMOTE && (strcmp(rerr->code, "internal") == 0 ||
                                                     strcmp(rerr->code, "unavailable") == 0 ||
                                                     strcmp(rerr->code, "store_conflict") == 0);
        if (rc == 0 || (rc == CTL_EREMOTE && !is_server_fault))
            return rc;
        if (!is_idempotent(op)) {
            if (rc != CTL_EREMOTE && s->n_urls > 1) {
                char msg[sizeof rerr->message];
                snprintf(msg, sizeof msg, "%s", rerr->message);
                snprintf(rerr->message, sizeof rerr->message,
                         "%.300s (not sent again to another nanocp: the change may or may not "
                         "have been made; look before running it again)",
                         msg);
            }
            return rc;
        }
        ctl_client_close(s->client);
        s->client = NULL;
    next:
        if (s->n_urls > 1) {
            size_t len = strlen(tried);
            snprintf(tried + len, sizeof tried - len, "%s%s: %.160s", len ? "; " : "", url,
                     rerr->message[0] ? rerr->message : rerr->code);
        }
        s->cur = (s->cur + 1) % s->n_urls;
    }
    if (s->n_urls > 1 && rc != CTL_EREMOTE) /* every address failed: say what each said */
        snprintf(rerr->message, sizeof rerr->message, "no nanocp answered (%.400s)", tried);
    return rc;
}

enum {
    OPT_HELP,
    OPT_JSON,
    OPT_CP,
    OPT_TOKEN,
    OPT_TOKEN_FILE,
    OPT_CONFIG,
    OPT_TIMEOUT,
    OPT_CACERT,
    OPT_CERT,
    OPT_KEY
};

/* The global options, before the command. */
static const nano_opt global_options[] = {
    {"-h", false, OPT_HELP},        {"--help", false, OPT_HELP},
    {"--json", false, OPT_JSON},    {"--cp", true, OPT_CP},
    {"--token", true, OPT_TOKEN},   {"--token-file", true, OPT_TOKEN_FILE},
    {"--config", true, OPT_CONFIG}, {"--timeout", true, OPT_TIMEOUT},
    {"--cacert", true, OPT_CACERT}, {"--cert", true, OPT_CERT},
    {"--key", true, OPT_KEY},       {NULL, false, 0},
};

int ctl_run(int argc, char **argv, ctl_io *io)
{
    ctl_ctx ctx = {.io = io};
    const char *flag_url = NULL, *flag_token = NULL, *flag_token_file = NULL;
    const char *flag_config = NULL, *flag_timeout = NULL;
    ctl_tls_flags tls = {0};
    nano_opt_parser p = {global_options, "nanoctl", argc, argv, 1};
    while (p.i < argc && nano_opt_is_option(argv[p.i])) {
        if (strcmp(argv[p.i], "--") == 0) {
            p.i++;
            break;
        }
        int k;
        const char *v;
        nano_error err = {0};
        if (nano_opt_next(&p, &k, &v, &err) != 0)
            return ctl_usage(&ctx, "%s", err.message);
        switch (global_options[k].id) {
        case OPT_HELP: fputs(ctl_help_main, io->out); return CTL_EXIT_OK;
        case OPT_JSON: ctx.is_json = true; break;
        case OPT_CP: flag_url = v; break;
        case OPT_TOKEN: flag_token = v; break;
        case OPT_TOKEN_FILE: flag_token_file = v; break;
        case OPT_CONFIG: flag_config = v; break;
        case OPT_TIMEOUT: flag_timeout = v; break;
        case OPT_CACERT: tls.cacert = v; break;
        case OPT_CERT: tls.cert = v; break;
        case OPT_KEY: tls.key = v; break;
        }
    }
    int i = p.i;
    if (i >= argc)
        return ctl_usage(&ctx, "no command given (see nanoctl --help)");
    if (strcmp(argv[i], "help") == 0) {
        fputs(ctl_help_main, io->out);
        return CTL_EXIT_OK;
    }
    const command *cmd = NULL;
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (strcmp(commands[k].name, argv[i]) == 0)
            cmd = &commands[k];
    if (!cmd) {
        snprintf(ctx.what, sizeof ctx.what, "%.60s", argv[i]);
        return ctl_usage(&ctx, "unknown command (see nanoctl --help)");
    }
    if (wants_help(argc - i, argv + i)) {
        fputs(cmd->help, io->out);
        return CTL_EXIT_OK;
    }

    uint64_t timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    if (flag_timeout && (nano_parse_duration_ms(flag_timeout, &timeout_ms) != 0 ||
                         timeout_ms == 0 || timeout_ms > 3600 * 1000))
        return ctl_usage(&ctx, "--timeout: '%s' is not a duration between 1ms and 1h",
                         flag_timeout);

    client_state st = {.ctx = &ctx, .timeout_ms = (int)timeout_ms};
    if (!io->call) {
        char def[512];
        const char *cfg = flag_config;
        if (!cfg) {
            cfg = ctl_config_default_path(def, sizeof def);
            if (cfg && access(cfg, F_OK) != 0)
                cfg = NULL; /* the default file is optional */
        }
        nano_error err = {0};
        int n = ctl_conn_resolve(flag_url, flag_token, flag_token_file, cfg, getenv("NANO_CP"),
                                 getenv("NANO_TOKEN"), &tls, getenv("NANO_CACERT"), &st.conn, &err);
        if (n == 0) /* each address of the list, with its TLS files (ctl_conn_check_tls) */
            n = ctl_conn_split_urls(&st.conn, st.urls, CTL_MAX_URLS, &err);
        if (n < 0) {
            ctl_conn_fini(&st.conn);
            return ctl_usage(&ctx, "%s", err.message);
        }
        st.n_urls = (size_t)n;
        ctx.has_token = st.conn.token != NULL;
        io->call = lazy_call;
        io->call_ud = &st;
    } else {
        ctx.has_token = true;
    }
    int rc = cmd->run(&ctx, argc - i, argv + i);
    if (io->call == lazy_call) {
        io->call = NULL;
        io->call_ud = NULL;
    }
    ctl_client_close(st.client);
    for (size_t k = 0; k < st.n_urls; k++)
        nano_free(st.urls[k]);
    ctl_conn_fini(&st.conn);
    fflush(io->out);
    return rc;
}
