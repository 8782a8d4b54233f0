/* info.c: nanoctl nodes, audit, version: read-only views of the control plane. */
#include "ctl.h"

#include <string.h>

#ifndef NANO_VERSION
#define NANO_VERSION "0.0.0"
#endif

/* Only --json and, for audit, its paging options. */
static int no_args(ctl_ctx *ctx, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctx->is_json = true;
        else
            return ctl_usage(ctx, "unexpected argument '%s'", argv[i]);
    }
    return 0;
}

/* nodes rm NAME: forgets a node gone for good (nodes.remove). */
static int nodes_rm(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 2);
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctx->is_json = true;
        else if (name == NULL && !nano_opt_is_option(argv[i]))
            name = argv[i];
        else
            return ctl_usage(ctx, "unexpected argument '%s'", argv[i]);
    }
    if (name == NULL)
        return ctl_usage(ctx, "usage: nanoctl nodes rm NAME");
    json_t *res;
    int rc = ctl_call(ctx, "nodes.remove", json_pack("{s:s}", "name", name), &res); /* takes args */
    if (rc != 0)
        return rc;
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "node %s removed%s\n", name,
                json_is_true(json_object_get(res, "drains_ended"))
                    ? "; drains that waited only for it have ended"
                    : "");
    json_decref(res);
    return 0;
}

int ctl_cmd_nodes(ctl_ctx *ctx, int argc, char **argv)
{
    /* nodes [list] | nodes rm NAME */
    if (argc > 1 && strcmp(argv[1], "rm") == 0)
        return nodes_rm(ctx, argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "list") == 0) {
        argc--;
        argv++;
    }
    ctl_set_what(ctx, argc, argv, 1);
    int rc = no_args(ctx, argc, argv);
    json_t *res;
    if (rc != 0 || (rc = ctl_call(ctx, "nodes.list", NULL, &res)) != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
        json_decref(res);
        return 0;
    }
    json_t *nodes = json_object_get(res, "nodes");
    if (json_array_size(nodes) == 0) {
        fprintf(ctx->io->out, "(no data plane has said hello)\n");
        json_decref(res);
        return 0;
    }
    /* CURRENT: the node's last status says it applied nanocp's latest config seq. */
    static const char *const head[] = {"NAME",    "ADDR",      "VERSION", "APPLIED",
                                       "CURRENT", "LAST_SEEN", "APPS"};
    ctl_table *t = ctl_table_new(7, head);
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        char c[4][160], apps[1024];
        size_t len = 0;
        const char *app;
        json_t *st;
        apps[0] = '\0';
        json_object_foreach(json_object_get(n, "apps"), app, st) {
            const char *state = json_string_value(json_object_get(st, "state"));
            int k = snprintf(apps + len, sizeof apps - len, "%s%s%s%s%s", len ? " " : "", app,
                             state && strcmp(state, "active") != 0 ? "(" : "",
                             state && strcmp(state, "active") != 0 ? state : "",
                             state && strcmp(state, "active") != 0 ? ")" : "");
            if (k < 0 || (size_t)k >= sizeof apps - len) {
                snprintf(apps + (sizeof apps > 4 ? sizeof apps - 4 : 0), 4, "...");
                break;
            }
            len += (size_t)k;
        }
        const char *row[] = {ctl_scalar(json_object_get(n, "name"), c[0], sizeof c[0]),
                             ctl_scalar(json_object_get(n, "addr"), c[1], sizeof c[1]),
                             ctl_scalar(json_object_get(n, "version"), c[2], sizeof c[2]),
                             ctl_scalar(json_object_get(n, "applied_seq"), c[3], sizeof c[3]),
                             json_is_true(json_object_get(n, "current")) ? "yes" : "no",
                             json_string_value(json_object_get(n, "last_seen")),
                             apps[0] ? apps : "-"};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, ctx->io->out);
    fprintf(ctx->io->out, "config seq %lld\n",
            (long long)json_integer_value(json_object_get(res, "seq")));
    json_decref(res);
    return 0;
}

int ctl_cmd_audit(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 1);
    json_t *args = json_object();
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *v;
        int m;
        uint64_t n;
        if (strcmp(argv[i], "--json") == 0) {
            ctx->is_json = true;
        } else if ((m = ctl_opt(ctx, argc, argv, &i, "--limit", &v)) != 0) {
            if (m < 0 || (rc = ctl_parse_u64(ctx, "--limit", v, &n)) != 0)
                rc = CTL_EXIT_USAGE;
            else
                json_object_set_new(args, "limit", json_integer((json_int_t)n));
        } else if ((m = ctl_opt(ctx, argc, argv, &i, "--before", &v)) != 0) {
            if (m < 0 || (rc = ctl_parse_u64(ctx, "--before", v, &n)) != 0)
                rc = CTL_EXIT_USAGE;
            else
                json_object_set_new(args, "before_id", json_integer((json_int_t)n));
        } else {
            rc = ctl_usage(ctx, "unexpected argument '%s'", argv[i]);
        }
    }
    if (rc != 0) {
        json_decref(args);
        return rc;
    }
    json_t *res;
    if ((rc = ctl_call(ctx, "audit.list", args, &res)) != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
        json_decref(res);
        return 0;
    }
    static const char *const head[] = {"ID", "AT", "ACTOR", "VIA", "OP", "APP", "DETAIL"};
    ctl_table *t = ctl_table_new(7, head);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(res, "entries"), i, e) {
        char c[7][256];
        static const char *const keys[] = {"id", "at", "actor", "via", "op", "app", "detail"};
        const char *row[7];
        for (int k = 0; k < 7; k++)
            row[k] = ctl_scalar(json_object_get(e, keys[k]), c[k], sizeof c[k]);
        ctl_table_add(t, row);
    }
    ctl_table_print(t, ctx->io->out);
    json_decref(res);
    return 0;
}

int ctl_cmd_version(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 1);
    int rc = no_args(ctx, argc, argv);
    if (rc != 0)
        return rc;
    if (!ctx->is_json)
        fprintf(ctx->io->out, "nanoctl %s\n", NANO_VERSION);
    json_t *res;
    if ((rc = ctl_call(ctx, "version", NULL, &res)) != 0)
        return rc;
    char v[64], schema[32], seq[32];
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "nanocp %s (schema %s, config seq %s)\n",
                ctl_scalar(json_object_get(res, "version"), v, sizeof v),
                ctl_scalar(json_object_get(res, "schema_version"), schema, sizeof schema),
                ctl_scalar(json_object_get(res, "config_seq"), seq, sizeof seq));
    json_decref(res);
    return 0;
}
