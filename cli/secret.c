/* secret.c: nanoctl secret list|set|rm (docs/nanoctl.md#secret). A value is read from stdin, never
 * from the command line, where other users could see it (ps, shell history). */
#include "ctl.h"

#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "dotenv.h"
#include "env.h"
#include "mpjson.h"

const char ctl_help_secret[] =
    "usage: nanoctl secret list APP\n"
    "       nanoctl secret set APP NAME      (the value is read from stdin)\n"
    "       nanoctl secret rm APP NAME\n"
    "\n"
    "  list   the app's secrets: names and when each was last set; never values\n"
    "  set    set a secret; the value is read from stdin (one trailing newline is\n"
    "         dropped), never taken from the command line:\n"
    "           printf %s \"$DB_PASS\" | nanoctl secret set api DB_PASS\n"
    "           nanoctl secret set api DB_PASS < ./secrets/db\n"
    "  rm     remove a secret\n"
    "\n"
    "Secrets are encrypted at rest on nanocp and appear to the app as strings in env.\n";

#define SECRET_READ_MAX (64 * 1024) /* the service's limit is 5 KB: it says so precisely */

static int two_args(ctl_ctx *ctx, int argc, char **argv, const char **app, const char **name,
                    const char *usage)
{
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            ctx->is_json = true;
        } else if (nano_opt_is_option(argv[i])) {
            return ctl_usage(ctx, "unknown option %s", argv[i]);
        } else if (n == 0) {
            *app = argv[i];
            n++;
        } else if (n == 1) {
            *name = argv[i];
            n++;
        } else {
            return ctl_usage(ctx, "unexpected argument: %s", usage);
        }
    }
    if (n < 2)
        return ctl_usage(ctx, "usage: %s", usage);
    return 0;
}

static int cmd_set(ctl_ctx *ctx, int argc, char **argv)
{
    const char *app = NULL, *name = NULL;
    int n_pos = 0;
    for (int i = 2; i < argc; i++)
        if (!nano_opt_is_option(argv[i]))
            n_pos++;
    if (n_pos > 2)
        return ctl_usage(ctx, "the value is read from stdin, never from the command line "
                              "(usage: nanoctl secret set APP NAME < FILE)");
    int rc = two_args(ctx, argc, argv, &app, &name, "nanoctl secret set APP NAME < FILE");
    if (rc != 0)
        return rc;
    if (!nano_env_name_valid(name, strlen(name)))
        return ctl_usage(ctx, "'%s' is not a valid secret name ([A-Za-z_][A-Za-z0-9_]*)", name);
    FILE *in = ctx->io->in;
    if (!in)
        return ctl_usage(ctx, "no stdin to read the value from");
    if (isatty(fileno(in)))
        fprintf(ctx->io->err, "value for %s (end with Ctrl-D): ", name);
    nano_buf value = NANO_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) {
        nano_buf_append(&value, chunk, n);
        if (value.len > SECRET_READ_MAX) {
            nano_buf_fini(&value);
            return ctl_usage(ctx, "value on stdin is larger than %d bytes", SECRET_READ_MAX);
        }
    }
    if (ferror(in)) {
        nano_buf_fini(&value);
        return ctl_fail(ctx, "cannot read the value from stdin");
    }
    /* `echo value |` and files end with a newline that is not part of the value. */
    if (value.len > 0 && value.data[value.len - 1] == '\n') {
        value.len--;
        if (value.len > 0 && value.data[value.len - 1] == '\r')
            value.len--;
    }
    if (value.len == 0) {
        nano_buf_fini(&value);
        return ctl_usage(ctx, "empty value on stdin");
    }
    if (!nano_utf8_valid(value.data, value.len)) {
        nano_buf_fini(&value);
        return ctl_usage(ctx, "the value is not UTF-8 text");
    }
    json_t *args = json_pack("{s:s, s:s, s:s%}", "name", app, "key", name, "value", value.data,
                             value.len);
    /* The copy in args is the only one left; the buffer is wiped before it is freed. */
    memset(value.data, 0, value.cap);
    nano_buf_fini(&value);
    json_t *res;
    if ((rc = ctl_call(ctx, "secrets.put", args, &res)) != 0)
        return rc;
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "app %s: secret %s set\n", app, name);
    json_decref(res);
    return 0;
}

static int cmd_rm(ctl_ctx *ctx, int argc, char **argv)
{
    const char *app = NULL, *name = NULL;
    int rc = two_args(ctx, argc, argv, &app, &name, "nanoctl secret rm APP NAME");
    json_t *res;
    if (rc != 0 || (rc = ctl_call(ctx, "secrets.delete",
                                  json_pack("{s:s, s:s}", "name", app, "key", name), &res)) != 0)
        return rc;
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "app %s: secret %s removed\n", app, name);
    json_decref(res);
    return 0;
}

static int cmd_list(ctl_ctx *ctx, int argc, char **argv)
{
    const char *app = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctx->is_json = true;
        else if (nano_opt_is_option(argv[i]) || app)
            return ctl_usage(ctx, "unexpected argument '%s'", argv[i]);
        else
            app = argv[i];
    }
    if (!app)
        return ctl_usage(ctx, "usage: nanoctl secret list APP");
    json_t *res;
    int rc = ctl_call(ctx, "secrets.list", json_pack("{s:s}", "name", app), &res);
    if (rc != 0)
        return rc;
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
    } else {
        static const char *const head[] = {"NAME", "UPDATED"};
        ctl_table *t = ctl_table_new(2, head);
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(res, "secrets"), i, s) {
            const char *nm = json_string_value(json_object_get(s, "name"));
            const char *at = json_string_value(json_object_get(s, "updated_at"));
            const char *row[] = {nm ? nm : "?", at ? at : "-"};
            ctl_table_add(t, row);
        }
        ctl_table_print(t, ctx->io->out);
    }
    json_decref(res);
    return 0;
}

int ctl_cmd_secret(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 4);
    if (argc < 2)
        return ctl_usage(ctx, "missing subcommand: list, set, rm (see nanoctl secret --help)");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0)
        return cmd_list(ctx, argc, argv);
    if (strcmp(sub, "set") == 0 || strcmp(sub, "put") == 0)
        return cmd_set(ctx, argc, argv);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0 || strcmp(sub, "unset") == 0)
        return cmd_rm(ctx, argc, argv);
    return ctl_usage(ctx, "unknown subcommand (see nanoctl secret --help)");
}
