/* env.c: nanoctl env list|set|unset|import (docs/nanoctl.md#env). */
#include "ctl.h"

#include <string.h>

#include "alloc.h"
#include "dotenv.h"
#include "env.h"
#include "file.h"

const char ctl_help_env[] =
    "usage: nanoctl env list APP\n"
    "       nanoctl env set APP NAME=VALUE... [--json]\n"
    "       nanoctl env unset APP NAME...\n"
    "       nanoctl env import APP FILE... [--replace]\n"
    "\n"
    "  list     the app's vars with their values, and its secrets' names (never values)\n"
    "  set      set vars; with --json each VALUE is parsed as JSON (N=42, F='{\"beta\":true}')\n"
    "           and the app sees that value, otherwise it is a string\n"
    "  unset    remove vars\n"
    "  import   set every assignment of .env files (NAME=VALUE lines; 'single',\n"
    "           \"double\" with escapes, or `backtick` quotes; # comments; export prefix);\n"
    "           with several files a later one wins (.env .env.production). --replace:\n"
    "           the app's vars become exactly these, in one change (vars not in the files\n"
    "           are removed; secrets are kept)\n"
    "\n"
    "Names are [A-Za-z_][A-Za-z0-9_]*, values at most 5120 bytes, 128 vars and secrets per\n"
    "app. A change reaches every node and applies to the next request, without a restart.\n"
    "Secrets: see nanoctl secret --help.\n";

static const char *str_of(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static int print_env(ctl_ctx *ctx, json_t *res)
{
    if (ctx->is_json) {
        ctl_print_json(ctx, res);
        return 0;
    }
    static const char *const head[] = {"NAME", "KIND", "VALUE"};
    ctl_table *t = ctl_table_new(3, head);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(res, "vars"), k, v) {
        char buf[512];
        const char *row[] = {k, json_is_string(v) ? "var" : "json", ctl_scalar(v, buf, sizeof buf)};
        ctl_table_add(t, row);
    }
    size_t i;
    json_array_foreach(json_object_get(res, "secrets"), i, v) {
        const char *name = json_is_string(v) ? json_string_value(v) : str_of(v, "name");
        const char *row[] = {name, "secret", "(hidden)"};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, ctx->io->out);
    return 0;
}

/* patch: env.patch with vars (taken); prints a one-line summary. */
static int patch(ctl_ctx *ctx, const char *app, json_t *vars)
{
    size_t n_set = 0, n_del = 0;
    const char *k;
    json_t *v;
    json_object_foreach(vars, k, v) {
        if (json_is_null(v))
            n_del++;
        else
            n_set++;
    }
    json_t *res;
    int rc = ctl_call(ctx, "env.patch", json_pack("{s:s, s:o}", "name", app, "vars", vars), &res);
    if (rc != 0)
        return rc;
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else if (n_del == 0)
        fprintf(ctx->io->out, "app %s: %zu var(s) set\n", app, n_set);
    else if (n_set == 0)
        fprintf(ctx->io->out, "app %s: %zu var(s) removed\n", app, n_del);
    else
        fprintf(ctx->io->out, "app %s: %zu var(s) set, %zu removed\n", app, n_set, n_del);
    json_decref(res);
    return 0;
}

static int check_name(ctl_ctx *ctx, const char *name, size_t len)
{
    if (!nano_env_name_valid(name, len))
        return ctl_usage(ctx, "'%.*s' is not a valid env name ([A-Za-z_][A-Za-z0-9_]*)",
                         (int)(len > 64 ? 64 : len), name);
    return 0;
}

static int cmd_set(ctl_ctx *ctx, int argc, char **argv)
{
    bool is_json_values = false;
    const char *app = NULL;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--json") == 0)
            is_json_values = true;
    json_t *vars = json_object();
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0)
            continue;
        if (nano_opt_is_option(a)) {
            rc = ctl_usage(ctx, "unknown option %s", a);
        } else if (!app) {
            app = a;
        } else {
            const char *eq = strchr(a, '=');
            if (!eq) {
                rc = ctl_usage(ctx, "'%s' is not NAME=VALUE", a);
                break;
            }
            size_t nlen = (size_t)(eq - a);
            if ((rc = check_name(ctx, a, nlen)) != 0)
                break;
            char *name = nano_xstrndup(a, nlen);
            json_t *value;
            if (is_json_values) {
                json_error_t jerr;
                value = json_loads(eq + 1, JSON_DECODE_ANY, &jerr);
                if (!value)
                    rc = ctl_usage(ctx, "%s: value is not JSON (column %d: %s)", name, jerr.column,
                                   jerr.text);
            } else {
                value = json_string(eq + 1);
                if (!value)
                    rc = ctl_usage(ctx, "%s: value is not UTF-8 text", name);
            }
            if (value)
                json_object_set_new(vars, name, value);
            nano_free(name);
        }
    }
    if (rc == 0 && (!app || json_object_size(vars) == 0))
        rc = ctl_usage(ctx, "usage: nanoctl env set APP NAME=VALUE... [--json]");
    if (rc != 0) {
        json_decref(vars);
        return rc;
    }
    return patch(ctx, app, vars);
}

static int cmd_unset(ctl_ctx *ctx, int argc, char **argv)
{
    const char *app = NULL;
    json_t *vars = json_object();
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctx->is_json = true;
        else if (nano_opt_is_option(argv[i]))
            rc = ctl_usage(ctx, "unknown option %s", argv[i]);
        else if (!app)
            app = argv[i];
        else if ((rc = check_name(ctx, argv[i], strlen(argv[i]))) == 0)
            json_object_set_new(vars, argv[i], json_null());
    }
    if (rc == 0 && (!app || json_object_size(vars) == 0))
        rc = ctl_usage(ctx, "usage: nanoctl env unset APP NAME...");
    if (rc != 0) {
        json_decref(vars);
        return rc;
    }
    return patch(ctx, app, vars);
}

static int on_assignment(void *ud, const char *name, const char *value, size_t value_len, int line)
{
    (void)line;
    json_t *s = json_stringn(value, value_len);
    if (!s)
        return NANO_EINVAL; /* not UTF-8 */
    json_object_set_new(ud, name, s);
    return 0;
}

/* replace: env.replace with vars (taken); prints a one-line summary. */
static int replace(ctl_ctx *ctx, const char *app, json_t *vars)
{
    size_t n = json_object_size(vars);
    json_t *res;
    int rc = ctl_call(ctx, "env.replace", json_pack("{s:s, s:o}", "name", app, "vars", vars), &res);
    if (rc != 0)
        return rc;
    if (ctx->is_json)
        ctl_print_json(ctx, res);
    else
        fprintf(ctx->io->out, "app %s: vars replaced, %zu var(s) now\n", app, n);
    json_decref(res);
    return 0;
}

#define CTL_IMPORT_MAX_FILES 16

static int cmd_import(ctl_ctx *ctx, int argc, char **argv)
{
    const char *app = NULL, *files[CTL_IMPORT_MAX_FILES];
    int n_files = 0;
    bool is_replace = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctx->is_json = true;
        else if (strcmp(argv[i], "--replace") == 0)
            is_replace = true;
        else if (nano_opt_is_option(argv[i]))
            return ctl_usage(ctx, "unknown option %s", argv[i]);
        else if (app == NULL)
            app = argv[i];
        else if (n_files < CTL_IMPORT_MAX_FILES)
            files[n_files++] = argv[i];
        else
            return ctl_usage(ctx, "at most %d files", CTL_IMPORT_MAX_FILES);
    }
    if (app == NULL || n_files == 0)
        return ctl_usage(ctx, "usage: nanoctl env import APP FILE... [--replace]");
    json_t *vars = json_object();
    nano_error err = {0};
    int rc = 0;
    for (int k = 0; k < n_files && rc == 0; k++) {
        char *text;
        size_t len;
        if ((rc = nano_read_file(files[k], 1024 * 1024, &text, &len, &err)) != 0)
            break;
        json_t *one = json_object();
        rc = nano_dotenv_parse(text, len, files[k], on_assignment, one, &err);
        nano_free(text);
        if (rc == NANO_EINVAL && err.message[0] == '\0')
            snprintf(err.message, sizeof err.message, "%s: a value is not UTF-8 text", files[k]);
        if (rc == 0 && json_object_size(one) == 0)
            rc = nano_error_set(&err, NANO_EINVAL, "empty", "%s: no assignments", files[k]);
        if (rc == 0)
            json_object_update(vars, one); /* a later file wins */
        json_decref(one);
    }
    if (rc != 0) {
        json_decref(vars);
        return ctl_usage(ctx, "%s", err.message);
    }
    return is_replace ? replace(ctx, app, vars) : patch(ctx, app, vars);
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
        return ctl_usage(ctx, "usage: nanoctl env list APP");
    json_t *res;
    int rc = ctl_call(ctx, "env.get", json_pack("{s:s}", "name", app), &res);
    if (rc != 0)
        return rc;
    print_env(ctx, res);
    json_decref(res);
    return 0;
}

int ctl_cmd_env(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 3);
    if (argc < 2)
        return ctl_usage(ctx, "missing subcommand: list, set, unset, import (see nanoctl env "
                              "--help)");
    const char *sub = argv[1];
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0 || strcmp(sub, "get") == 0)
        return cmd_list(ctx, argc, argv);
    if (strcmp(sub, "set") == 0)
        return cmd_set(ctx, argc, argv);
    if (strcmp(sub, "unset") == 0 || strcmp(sub, "rm") == 0)
        return cmd_unset(ctx, argc, argv);
    if (strcmp(sub, "import") == 0)
        return cmd_import(ctx, argc, argv);
    return ctl_usage(ctx, "unknown subcommand (see nanoctl env --help)");
}
