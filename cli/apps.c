/* apps.c: nanoctl apps list|create|update|deploy|rm|status|drain, deployments, rollback. */
#include "ctl.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "file.h"
#include "mpjson.h"
#include "parse.h"

const char ctl_help_apps[] =
    "usage: nanoctl apps list\n"
    "       nanoctl apps create NAME --host H... [--path /PREFIX] [--default] [LIMITS]\n"
    "                               [EGRESS]\n"
    "       nanoctl apps update NAME [--host H...] [--path /PREFIX] [--default|--no-default]\n"
    "                               [LIMITS] [EGRESS|--no-egress]\n"
    "       nanoctl apps deploy NAME FILE...\n"
    "       nanoctl apps rm NAME\n"
    "       nanoctl apps status NAME\n"
    "       nanoctl apps drain NAME\n"
    "\n"
    "  create NAME     a new app (no code yet: deploy next). --host may repeat; a wildcard is\n"
    "                  *.example.com. --default: also serve hosts no app claims.\n"
    "                  --node-compat: expose env as process.env too.\n"
    "                  --require VAR (repeatable): env names a deployment must have.\n"
    "  update NAME     change what is given; --host replaces the hostname list.\n"
    "  deploy NAME FILE...  upload code as a new deployment and make it active. The first\n"
    "                  FILE is the main module; the others are modules it imports, named by\n"
    "                  their path relative to the main module's directory.\n"
    "  rm NAME         drain the app on every node, then remove it.\n"
    "  status NAME     the app, its active deployment and its state on each node.\n"
    "  drain NAME      per-node progress of a removal.\n"
    "\n"
    "LIMITS: --cpu-ms N --memory-mb N --wall-time D --drain-timeout D --max-concurrent N\n"
    "        --max-queued N --max-head SIZE --max-body SIZE --subrequests N\n"
    "        (D: 30, 30s, 1500ms, 5m; SIZE: 65536, 64KiB, 100MiB)\n"
    "EGRESS: --egress-allow LIST --egress-deny LIST (repeatable; LIST: comma-separated\n"
    "        addresses, CIDRs or hostnames, each with an optional :PORT). What the app's\n"
    "        outbound fetch() may reach beyond the node's policy (docs/config.md#egress).\n"
    "        On update, they replace the app's whole egress policy; --no-egress removes it.\n";

/* --- create / update ----------------------------------------------------------------------- */

typedef enum { LIM_COUNT, LIM_DURATION, LIM_SIZE } lim_kind;

static const struct {
    const char *flag;
    const char *key;
    lim_kind kind;
} limit_flags[] = {
    {"--cpu-ms", "cpu_ms", LIM_COUNT},
    {"--memory-mb", "memory_mb", LIM_COUNT},
    {"--wall-time", "wall_time", LIM_DURATION},
    {"--drain-timeout", "drain_timeout", LIM_DURATION},
    {"--max-concurrent", "max_concurrent", LIM_COUNT},
    {"--max-queued", "max_queued", LIM_COUNT},
    {"--max-head", "max_head", LIM_SIZE},
    {"--max-body", "max_body", LIM_SIZE},
    {"--subrequests", "subrequests", LIM_COUNT},
};

/* Options of create and update into args; returns 0 or an exit code. */
static int app_fields(ctl_ctx *ctx, int argc, char **argv, bool is_create, json_t *args)
{
    json_t *hosts = NULL, *required = NULL, *limits = json_object();
    nano_egress *egress = NULL; /* checked here for early errors, sent as given */
    bool no_egress = false;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *v = NULL;
        int m;
        const char *a = argv[i];
        if (!nano_opt_is_option(a)) {
            if (json_object_get(args, "name"))
                rc = ctl_usage(ctx, "unexpected argument '%s'", a);
            else
                json_object_set_new(args, "name", json_string(a));
            continue;
        }
        if ((m = ctl_opt(ctx, argc, argv, &i, "--host", &v)) != 0 ||
            (m = ctl_opt(ctx, argc, argv, &i, "--hostname", &v)) != 0) {
            if (m < 0)
                rc = CTL_EXIT_USAGE;
            else {
                if (!hosts)
                    hosts = json_array();
                json_array_append_new(hosts, json_string(v));
            }
            continue;
        }
        if ((m = ctl_opt(ctx, argc, argv, &i, "--path", &v)) != 0) {
            if (m < 0)
                rc = CTL_EXIT_USAGE;
            else
                json_object_set_new(args, "path_prefix", v[0] ? json_string(v) : json_null());
            continue;
        }
        if ((m = ctl_opt(ctx, argc, argv, &i, "--require", &v)) != 0) {
            if (m < 0)
                rc = CTL_EXIT_USAGE;
            else {
                if (!required)
                    required = json_array();
                json_array_append_new(required, json_string(v));
            }
            continue;
        }
        if ((m = ctl_opt(ctx, argc, argv, &i, "--egress-allow", &v)) != 0 ||
            (m = ctl_opt(ctx, argc, argv, &i, "--egress-deny", &v)) != 0) {
            nano_error e = {0};
            if (m < 0)
                rc = CTL_EXIT_USAGE;
            else if (egress == NULL)
                egress = nano_egress_new();
            bool is_allow = strncmp(a, "--egress-allow", 14) == 0;
            if (rc == 0 && nano_egress_parse_list(egress, is_allow, v, &e) != 0)
                rc = ctl_usage(ctx, "%s", e.message);
            continue;
        }
        if (strcmp(a, "--no-egress") == 0 && !is_create) {
            no_egress = true;
            continue;
        }
        if (strcmp(a, "--default") == 0 || strcmp(a, "--no-default") == 0) {
            json_object_set_new(args, "default", json_boolean(strcmp(a, "--default") == 0));
            continue;
        }
        if (strcmp(a, "--node-compat") == 0 || strcmp(a, "--no-node-compat") == 0) {
            json_object_set_new(args, "node_compat", json_boolean(strcmp(a, "--node-compat") == 0));
            continue;
        }
        if (strcmp(a, "--json") == 0) {
            ctx->is_json = true;
            continue;
        }
        bool matched = false;
        for (size_t k = 0; k < sizeof limit_flags / sizeof limit_flags[0] && !matched; k++) {
            m = ctl_opt(ctx, argc, argv, &i, limit_flags[k].flag, &v);
            if (m == 0)
                continue;
            matched = true;
            if (m < 0) {
                rc = CTL_EXIT_USAGE;
                break;
            }
            uint64_t n;
            if (limit_flags[k].kind == LIM_COUNT) {
                if ((rc = ctl_parse_u64(ctx, limit_flags[k].flag, v, &n)) == 0)
                    json_object_set_new(limits, limit_flags[k].key, json_integer((json_int_t)n));
            } else {
                /* Sent as given: a string is read the same way by every NANO parser, where a
                 * bare number would mean seconds or bytes. Checked here for early errors. */
                int p = limit_flags[k].kind == LIM_DURATION ? nano_parse_duration_ms(v, &n)
                                                            : nano_parse_size(v, &n);
                if (p != 0)
                    rc = ctl_usage(ctx, "%s: '%s' is not a %s", limit_flags[k].flag, v,
                                   limit_flags[k].kind == LIM_DURATION
                                       ? "duration (30, 30s, 1500ms, 5m)"
                                       : "size (65536, 64KiB, 100MiB)");
                else
                    json_object_set_new(limits, limit_flags[k].key, json_string(v));
            }
        }
        if (!matched && rc == 0)
            rc = ctl_usage(ctx, "unknown option %s (see nanoctl apps --help)", a);
    }
    if (rc == 0 && !json_object_get(args, "name"))
        rc = ctl_usage(ctx, "missing app NAME");
    if (rc == 0) {
        if (hosts)
            json_object_set(args, "hostnames", hosts);
        else if (is_create)
            json_object_set_new(args, "hostnames", json_array());
        if (required)
            json_object_set(args, "required_env", required);
        if (json_object_size(limits) > 0)
            json_object_set(args, "limits", limits);
        if (egress != NULL && no_egress)
            rc = ctl_usage(ctx, "--no-egress and --egress-allow/--egress-deny exclude each other");
        else if (egress != NULL)
            json_object_set_new(args, "egress", nano_egress_to_json(egress));
        else if (no_egress)
            json_object_set_new(args, "egress", json_null());
        if (rc == 0 && !is_create && json_object_size(args) == 1)
            rc = ctl_usage(ctx, "nothing to change (see nanoctl apps --help)");
    }
    json_decref(hosts);
    json_decref(required);
    json_decref(limits);
    nano_egress_unref(egress);
    return rc;
}

static const char *str_of(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void join_strings(const json_t *arr, char *buf, size_t cap)
{
    size_t n = 0;
    size_t i;
    json_t *v;
    buf[0] = '\0';
    json_array_foreach(arr, i, v) {
        int k = snprintf(buf + n, cap - n, "%s%s", i ? "," : "", json_string_value(v) ?: "?");
        if (k < 0 || (size_t)k >= cap - n)
            break;
        n += (size_t)k;
    }
    if (n == 0)
        snprintf(buf, cap, "-");
}

static void print_app(ctl_ctx *ctx, const json_t *app)
{
    FILE *o = ctx->io->out;
    char buf[2048];
    fprintf(o, "name:           %s\n", str_of(app, "name"));
    fprintf(o, "state:          %s\n", str_of(app, "state"));
    join_strings(json_object_get(app, "hostnames"), buf, sizeof buf);
    fprintf(o, "hostnames:      %s\n", buf);
    fprintf(o, "path_prefix:    %s\n",
            ctl_scalar(json_object_get(app, "path_prefix"), buf, sizeof buf));
    fprintf(o, "default:        %s\n",
            json_is_true(json_object_get(app, "default")) ? "yes" : "no");
    fprintf(o, "node_compat:    %s\n",
            json_is_true(json_object_get(app, "node_compat")) ? "yes" : "no");
    join_strings(json_object_get(app, "required_env"), buf, sizeof buf);
    fprintf(o, "required_env:   %s\n", buf);
    json_t *egress = json_object_get(app, "egress");
    if (json_is_object(egress)) {
        join_strings(json_object_get(egress, "allow"), buf, sizeof buf);
        fprintf(o, "egress:         allow=%s", buf);
        join_strings(json_object_get(egress, "deny"), buf, sizeof buf);
        fprintf(o, " deny=%s\n", buf);
    } else {
        fprintf(o, "egress:         -\n");
    }
    fprintf(o, "active_version: %s\n",
            ctl_scalar(json_object_get(app, "active_version"), buf, sizeof buf));
    json_t *lim = json_object_get(app, "limits");
    if (json_is_object(lim)) {
        fprintf(o, "limits:        ");
        const char *k;
        json_t *v;
        json_object_foreach(lim, k, v)
            fprintf(o, " %s=%s", k, ctl_scalar(v, buf, sizeof buf));
        fputc('\n', o);
    }
    fprintf(o, "created_at:     %s\n", str_of(app, "created_at"));
    fprintf(o, "updated_at:     %s\n", str_of(app, "updated_at"));
}

static int cmd_create_update(ctl_ctx *ctx, int argc, char **argv, bool is_create)
{
    json_t *args = json_object();
    int rc = app_fields(ctx, argc, argv, is_create, args);
    if (rc != 0) {
        json_decref(args);
        return rc;
    }
    json_t *res;
    if ((rc = ctl_call(ctx, is_create ? "apps.create" : "apps.update", args, &res)) != 0)
        return rc;
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "app %s %s\n", str_of(res, "name")[0] ? str_of(res, "name") : "?",
                is_create ? "created" : "updated");
    json_decref(res);
    return CTL_EXIT_OK;
}

/* --- list / status / rm / drain ------------------------------------------------------------ */

/* Positional words after the subcommand, with --json accepted anywhere; want of them. */
static int positionals(ctl_ctx *ctx, int argc, char **argv, int first, const char **out, int want,
                       const char *names)
{
    int n = 0;
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            ctx->is_json = true;
            continue;
        }
        if (nano_opt_is_option(argv[i]))
            return ctl_usage(ctx, "unknown option %s", argv[i]);
        if (n == want)
            return ctl_usage(ctx, "unexpected argument '%s' (expected %s)", argv[i], names);
        out[n++] = argv[i];
    }
    if (n < want)
        return ctl_usage(ctx, "missing %s", names);
    return 0;
}

static int cmd_list(ctl_ctx *ctx, int argc, char **argv)
{
    int rc = positionals(ctx, argc, argv, 2, NULL, 0, "nothing");
    json_t *res;
    if (rc != 0 || (rc = ctl_call(ctx, "apps.list", NULL, &res)) != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
        json_decref(res);
        return 0;
    }
    static const char *const head[] = {"NAME", "HOSTNAMES", "PATH", "VERSION", "STATE"};
    ctl_table *t = ctl_table_new(5, head);
    size_t i;
    json_t *app;
    json_array_foreach(json_object_get(res, "apps"), i, app) {
        char hosts[1024], path[256], ver[32];
        join_strings(json_object_get(app, "hostnames"), hosts, sizeof hosts);
        if (json_is_true(json_object_get(app, "default")))
            snprintf(hosts + strlen(hosts), sizeof hosts - strlen(hosts), " (default)");
        const char *row[] = {str_of(app, "name"), hosts,
                             ctl_scalar(json_object_get(app, "path_prefix"), path, sizeof path),
                             ctl_scalar(json_object_get(app, "active_version"), ver, sizeof ver),
                             str_of(app, "state")};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, ctx->io->out);
    json_decref(res);
    return 0;
}

static int cmd_status(ctl_ctx *ctx, int argc, char **argv)
{
    const char *name;
    int rc = positionals(ctx, argc, argv, 2, &name, 1, "app NAME");
    json_t *res;
    if (rc != 0 || (rc = ctl_call(ctx, "apps.get", json_pack("{s:s}", "name", name), &res)) != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
        json_decref(res);
        return 0;
    }
    print_app(ctx, res);
    FILE *o = ctx->io->out;
    json_t *dep = json_object_get(res, "deployment");
    char buf[128];
    if (json_is_object(dep)) {
        fprintf(o, "deployment:     version %s, sha256 %.12s, main %s, %zu module(s), %s\n",
                ctl_scalar(json_object_get(dep, "version"), buf, sizeof buf), str_of(dep, "sha256"),
                str_of(dep, "main"), json_array_size(json_object_get(dep, "modules")),
                str_of(dep, "created_at"));
    } else {
        fprintf(o, "deployment:     none (nanoctl apps deploy %s FILE...)\n", name);
    }
    /* An app nanocp cannot put in a snapshot: nodes keep what they run of it, new nodes get
     * none of it. Said before the node table, which would otherwise look merely stale. */
    json_t *dist = json_object_get(res, "distribution");
    if (json_is_object(dist) && strcmp(str_of(dist, "state"), "ok") != 0)
        fprintf(o,
                "distribution:   WITHHELD from data planes: %s (nodes keep what they run of "
                "this app; new nodes get none of it)\n",
                str_of(dist, "error"));
    json_t *drain = json_object_get(res, "drain");
    if (json_is_object(drain)) {
        fprintf(o, "drain:          started %s, timeout %sms (nanoctl apps drain %s)\n",
                str_of(drain, "started_at"),
                ctl_scalar(json_object_get(drain, "timeout_ms"), buf, sizeof buf), name);
        ctl_print_objects(ctx, json_object_get(drain, "nodes"));
    }
    /* A node that refused the active version (it does not load there) says why; the table
     * keeps to scalar columns and the reasons follow it, one line per node. */
    json_t *nodes = json_deep_copy(json_object_get(res, "nodes"));
    json_t *refusals = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        json_t *le = json_object_get(n, "load_error");
        if (json_is_object(le))
            json_array_append_new(refusals,
                                  json_pack("{s:O, s:O, s:O}", "node", json_object_get(n, "node"),
                                            "version", json_object_get(n, "version"), "error", le));
        json_object_del(n, "load_error");
    }
    fprintf(o, "nodes:\n");
    ctl_print_objects(ctx, nodes);
    if (json_array_size(refusals) > 0)
        fprintf(o, "load errors (each of these nodes keeps serving the version it had):\n");
    json_array_foreach(refusals, i, n) {
        json_t *le = json_object_get(n, "error");
        fprintf(o, "  %s: version %s did not load: %s (%s)\n", str_of(n, "node"),
                ctl_scalar(json_object_get(n, "version"), buf, sizeof buf), str_of(le, "message"),
                str_of(le, "code"));
    }
    json_decref(refusals);
    json_decref(nodes);
    json_decref(res);
    return 0;
}

static int cmd_rm_drain(ctl_ctx *ctx, int argc, char **argv, bool is_rm)
{
    const char *name;
    int rc = positionals(ctx, argc, argv, 2, &name, 1, "app NAME");
    json_t *res;
    if (rc != 0 || (rc = ctl_call(ctx, is_rm ? "apps.remove" : "apps.drain",
                                  json_pack("{s:s}", "name", name), &res)) != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
    } else {
        fprintf(ctx->io->out, "app %s: %s\n", name, str_of(res, "state"));
        json_t *nodes = json_object_get(res, "nodes");
        if (json_array_size(nodes) > 0)
            ctl_print_objects(ctx, nodes);
    }
    json_decref(res);
    return 0;
}

/* --- deploy -------------------------------------------------------------------------------- */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* module_name: FILE's path relative to the main module's directory, or an error when it is
 * not inside it. */
static int module_name(ctl_ctx *ctx, const char *main_dir, const char *file, char *out, size_t cap)
{
    char real[PATH_MAX];
    if (!realpath(file, real))
        return ctl_usage(ctx, "%s: %s", file, strerror(errno));
    size_t n = strlen(main_dir);
    if (strncmp(real, main_dir, n) != 0 || real[n] != '/')
        return ctl_usage(ctx, "%s: not in the main module's directory (%s) or below it", file,
                         main_dir);
    snprintf(out, cap, "%s", real + n + 1);
    return 0;
}

static int cmd_deploy(ctl_ctx *ctx, int argc, char **argv)
{
    const char *name = NULL;
    const char *files[256];
    int n_files = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            ctx->is_json = true;
        } else if (nano_opt_is_option(argv[i])) {
            return ctl_usage(ctx, "unknown option %s", argv[i]);
        } else if (!name) {
            name = argv[i];
        } else if (n_files < 256) {
            files[n_files++] = argv[i];
        } else {
            return ctl_usage(ctx, "at most 256 files");
        }
    }
    if (!name || n_files == 0)
        return ctl_usage(ctx, "usage: nanoctl apps deploy NAME MAIN_FILE [MODULE_FILE...]");
    char main_dir[PATH_MAX];
    if (!realpath(files[0], main_dir))
        return ctl_usage(ctx, "%s: %s", files[0], strerror(errno));
    char *slash = strrchr(main_dir, '/');
    *slash = '\0';
    json_t *modules = json_object();
    int rc = 0;
    for (int f = 0; f < n_files && rc == 0; f++) {
        char mod[PATH_MAX];
        if (f == 0)
            snprintf(mod, sizeof mod, "%s", base_name(files[0]));
        else if ((rc = module_name(ctx, main_dir, files[f], mod, sizeof mod)) != 0)
            break;
        if (json_object_get(modules, mod)) {
            rc = ctl_usage(ctx, "%s: module %s given twice", files[f], mod);
            break;
        }
        char *src;
        size_t len;
        nano_error err = {0};
        if (nano_read_file(files[f], NANO_CODE_MAX_BYTES, &src, &len, &err) != 0) {
            rc = ctl_usage(ctx, "%s", err.message);
            break;
        }
        if (!nano_utf8_valid(src, len))
            rc = ctl_usage(ctx, "%s: not UTF-8 text", files[f]);
        else
            json_object_set_new(modules, mod, json_stringn(src, len));
        nano_free(src);
    }
    if (rc != 0) {
        json_decref(modules);
        return rc;
    }
    json_t *args = json_pack("{s:s, s:s, s:o}", "name", name, "main", base_name(files[0]),
                             "modules", modules);
    json_t *res;
    if ((rc = ctl_call(ctx, "apps.deploy", args, &res)) != 0)
        return rc;
    char ver[32];
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "app %s: deployed version %s (sha256 %.12s, %zu module(s))\n", name,
                ctl_scalar(json_object_get(res, "version"), ver, sizeof ver), str_of(res, "sha256"),
                json_array_size(json_object_get(res, "modules")));
    json_decref(res);
    return 0;
}

int ctl_cmd_apps(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 3);
    if (argc < 2)
        return ctl_usage(ctx, "missing subcommand: list, create, update, deploy, rm, status, "
                              "drain (see nanoctl apps --help)");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0)
        return cmd_list(ctx, argc, argv);
    if (strcmp(sub, "create") == 0)
        return cmd_create_update(ctx, argc, argv, true);
    if (strcmp(sub, "update") == 0)
        return cmd_create_update(ctx, argc, argv, false);
    if (strcmp(sub, "deploy") == 0)
        return cmd_deploy(ctx, argc, argv);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return cmd_rm_drain(ctx, argc, argv, true);
    if (strcmp(sub, "drain") == 0)
        return cmd_rm_drain(ctx, argc, argv, false);
    if (strcmp(sub, "status") == 0 || strcmp(sub, "get") == 0)
        return cmd_status(ctx, argc, argv);
    return ctl_usage(ctx, "unknown subcommand (see nanoctl apps --help)");
}

/* --- deployments / rollback ---------------------------------------------------------------- */

int ctl_cmd_deployments(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 2);
    const char *name;
    int rc = positionals(ctx, argc, argv, 1, &name, 1, "APP");
    json_t *res;
    if (rc != 0 ||
        (rc = ctl_call(ctx, "deployments.list", json_pack("{s:s}", "name", name), &res)) != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
        json_decref(res);
        return 0;
    }
    static const char *const head[] = {"VERSION", "ACTIVE", "SHA256", "MAIN", "MODULES", "CREATED"};
    ctl_table *t = ctl_table_new(6, head);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(res, "deployments"), i, d) {
        char ver[32], sha[16], nmod[16];
        snprintf(sha, sizeof sha, "%.12s", str_of(d, "sha256"));
        snprintf(nmod, sizeof nmod, "%zu", json_array_size(json_object_get(d, "modules")));
        const char *row[] = {ctl_scalar(json_object_get(d, "version"), ver, sizeof ver),
                             json_is_true(json_object_get(d, "active")) ? "*" : "",
                             sha,
                             str_of(d, "main"),
                             nmod,
                             str_of(d, "created_at")};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, ctx->io->out);
    json_decref(res);
    return 0;
}

int ctl_cmd_rollback(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 3);
    const char *pos[2];
    int rc = positionals(ctx, argc, argv, 1, pos, 2, "APP VERSION");
    uint64_t version;
    if (rc != 0 || (rc = ctl_parse_u64(ctx, "VERSION", pos[1], &version)) != 0)
        return rc;
    json_t *res;
    rc = ctl_call(ctx, "apps.rollback",
                  json_pack("{s:s, s:I}", "name", pos[0], "version", (json_int_t)version), &res);
    if (rc != 0)
        return rc;
    char ver[32];
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "app %s: version %s is active (sha256 %.12s)\n", pos[0],
                ctl_scalar(json_object_get(res, "version"), ver, sizeof ver),
                str_of(res, "sha256"));
    json_decref(res);
    return 0;
}
