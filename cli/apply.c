/* apply.c: nanoctl apply nano.json [--prune] [--dry-run]: converge nanocp to a nano.json.
 *
 * The file is read and validated with the data plane's own loader (nano_config_load_json), so
 * a file nano-dp accepts is a file apply accepts, with the same messages. Then, per app:
 * create it if missing, update the fields that differ, write its secrets and vars, and deploy
 * when the main module's sha256 differs from the active deployment's; with --prune, remove
 * apps the file does not name. Order matters when an app has required_env: additions (secrets,
 * vars) come before the update that may add a requirement, removals after it, and the deploy
 * last. Secret values cannot be read back, so every secret in the file is written each run. */
#include "ctl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config.h"
#include "mpjson.h"
#include "parse.h"

const char ctl_help_apply[] =
    "usage: nanoctl apply FILE [--prune] [--dry-run] [--json]\n"
    "\n"
    "Makes nanocp match FILE, a nano.json (the format nano-dp --config reads; see\n"
    "docs/config.md): creates missing apps, updates changed hostnames, path prefix,\n"
    "default, node_compat, required_env, limits and egress, sets and removes vars, writes\n"
    "every secret (values cannot be compared, so they are written each time) and removes\n"
    "the ones not in the file, and deploys the main module when its sha256 differs from\n"
    "the active deployment. Prints each change and a summary. A top-level \"egress\" (the\n"
    "node policy of nano-dp --config) is not sent: nodes managed by nanocp take theirs from\n"
    "nano-dp's --egress-allow/--egress-deny.\n"
    "\n"
    "  --prune     also remove (drain) apps that FILE does not name\n"
    "  --dry-run   print what would change; change nothing\n"
    "  --json      print {\"changes\": [...], \"summary\": {...}} instead\n"
    "\n"
    "Only the main module of each app is uploaded: an app that imports other files must be\n"
    "deployed with nanoctl apps deploy NAME MAIN FILE... for now.\n";

typedef struct apply_state {
    ctl_ctx *ctx;
    bool is_dry_run;
    json_t *changes; /* [{app, action, detail}] */
    unsigned n_created, n_updated, n_deployed, n_removed, n_unchanged, n_secrets_written;
} apply_state;

static void note(apply_state *st, const char *app, const char *action, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void note(apply_state *st, const char *app, const char *action, const char *fmt, ...)
{
    char detail[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    json_array_append_new(
        st->changes, json_pack("{s:s, s:s, s:s}", "app", app, "action", action, "detail", detail));
    if (!st->ctx->is_json)
        fprintf(st->ctx->io->out, "%sapp %s: %s%s%s\n", st->is_dry_run ? "(dry run) " : "", app,
                action, detail[0] ? " " : "", detail);
}

/* act: a change, unless this is a dry run (then *res is NULL). */
static int act(apply_state *st, const char *op, json_t *args, json_t **res)
{
    if (res)
        *res = NULL;
    if (st->is_dry_run) {
        json_decref(args);
        return 0;
    }
    return ctl_call(st->ctx, op, args, res);
}

/* --- desired state from the file ----------------------------------------------------------- */

/* The app's args for apps.create / apps.update: its name and its spec's JSON form. */
static json_t *app_fields(const nano_app_config *app)
{
    json_t *args = json_pack("{s:s}", "name", app->spec.name);
    json_t *spec = nano_app_spec_to_json(&app->spec);
    json_object_update(args, spec);
    json_decref(spec);
    return args;
}

/* --- comparing with what nanocp has --------------------------------------------------------- */

/* The spec fields that differ, comma-separated into diff; false when none. What nanocp reports
 * is read with the same codec (so "30s" and 30000 ms compare equal); a spec nanocp holds that
 * does not read counts as different in every field, so that apply rewrites it. */
static bool app_diff(const nano_app_config *app, const json_t *have, char *diff, size_t cap)
{
    nano_app_spec got;
    nano_app_spec_init(&got);
    nano_error err;
    bool readable = nano_app_spec_read_json((json_t *)have, 0, &got, "", NULL, 0, &err) == 0;
    json_t *want_j = nano_app_spec_to_json(&app->spec), *have_j = nano_app_spec_to_json(&got);
    nano_app_spec_fini(&got);
    size_t n = 0;
    diff[0] = '\0';
    for (size_t i = 0; nano_app_spec_keys[i] != NULL; i++) {
        const char *key = nano_app_spec_keys[i];
        if (readable && json_equal(json_object_get(want_j, key), json_object_get(have_j, key)))
            continue;
        int k = snprintf(diff + n, cap - n, "%s%s", n ? ", " : "", key);
        if (k > 0 && (size_t)k < cap - n)
            n += (size_t)k;
    }
    json_decref(want_j);
    json_decref(have_j);
    return n > 0;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Whether the active deployment is exactly this one main module. */
static bool same_code(const nano_app_config *app, const json_t *dep)
{
    if (!json_is_object(dep))
        return false;
    const char *main_name = base_name(app->main_path);
    const char *have_main = json_string_value(json_object_get(dep, "main"));
    json_t *mods = json_object_get(dep, "modules");
    if (!have_main || strcmp(have_main, main_name) != 0 || json_array_size(mods) != 1)
        return false;
    json_t *m = json_array_get(mods, 0);
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *sha = json_string_value(json_object_get(m, "sha256"));
    return name && sha && strcmp(name, main_name) == 0 && strcasecmp(sha, app->code_sha256) == 0;
}

/* --- one app ------------------------------------------------------------------------------ */

static int apply_app(apply_state *st, const nano_app_config *app, const json_t *have)
{
    ctl_ctx *ctx = st->ctx;
    int rc;
    bool is_changed = false;
    json_t *env_have = NULL, *got = NULL;

    if (!have) {
        json_t *fields = app_fields(app);
        /* Requirements are added once the env they require is there. */
        json_object_set_new(fields, "required_env", json_array());
        note(st, app->spec.name, "created", NULL);
        if ((rc = act(st, "apps.create", fields, NULL)) != 0)
            return rc;
        st->n_created++;
        is_changed = true;
        env_have = json_pack("{s:{}, s:[]}", "vars", "secrets");
    } else {
        if ((rc = ctl_call(ctx, "env.get", json_pack("{s:s}", "name", app->spec.name),
                           &env_have)) != 0 ||
            (rc = ctl_call(ctx, "apps.get", json_pack("{s:s}", "name", app->spec.name), &got)) !=
                0) {
            json_decref(env_have);
            return rc;
        }
    }
    json_t *have_vars = json_object_get(env_have, "vars");
    json_t *have_secrets = json_object_get(env_have, "secrets");

    /* 1. additions: every secret, then new or changed vars */
    json_t *add = json_object(), *del = json_object();
    size_t n_secrets = 0;
    for (size_t i = 0; i < app->env.n_entries; i++) {
        const nano_env_entry *e = &app->env.entries[i];
        if (e->is_secret) {
            n_secrets++;
            rc = act(st, "secrets.put",
                     json_pack("{s:s, s:s, s:s%}", "name", app->spec.name, "key", e->name, "value",
                               e->value, e->value_len),
                     NULL);
            if (rc != 0)
                goto done;
            continue;
        }
        json_error_t jerr;
        json_t *v = e->is_json ? json_loadb(e->value, e->value_len, JSON_DECODE_ANY, &jerr)
                               : json_stringn(e->value, e->value_len);
        if (!v) {
            rc = ctl_usage(ctx, "app %s: env %s: value is not %s", app->spec.name, e->name,
                           e->is_json ? "JSON" : "UTF-8 text");
            goto done;
        }
        if (!json_equal(v, json_object_get(have_vars, e->name)))
            json_object_set_new(add, e->name, v);
        else
            json_decref(v);
    }
    if (n_secrets > 0) {
        note(st, app->spec.name, "secrets written", "%zu", n_secrets);
        st->n_secrets_written += (unsigned)n_secrets;
    }
    if (json_object_size(add) > 0) {
        note(st, app->spec.name, "vars set", "%zu", json_object_size(add));
        is_changed = true;
        rc = act(st, "env.patch", json_pack("{s:s, s:O}", "name", app->spec.name, "vars", add),
                 NULL);
        if (rc != 0)
            goto done;
    }

    /* 2. fields (and, for a new app, its requirements) */
    char diff[256];
    if (!have && app->spec.n_required_env > 0) {
        json_t *spec = nano_app_spec_to_json(&app->spec);
        rc = act(st, "apps.update",
                 json_pack("{s:s, s:O}", "name", app->spec.name, "required_env",
                           json_object_get(spec, "required_env")),
                 NULL);
        json_decref(spec);
        if (rc != 0)
            goto done;
    } else if (have && app_diff(app, have, diff, sizeof diff)) {
        note(st, app->spec.name, "updated", "(%s)", diff);
        st->n_updated++;
        is_changed = true;
        if ((rc = act(st, "apps.update", app_fields(app), NULL)) != 0)
            goto done;
    }

    /* 3. removals: vars and secrets the file no longer has */
    const char *k;
    json_t *v;
    json_object_foreach(have_vars, k, v) {
        const nano_env_entry *e = nano_env_find(&app->env, k);
        if (!e || e->is_secret)
            json_object_set_new(del, k, json_null());
    }
    if (json_object_size(del) > 0) {
        note(st, app->spec.name, "vars removed", "%zu", json_object_size(del));
        is_changed = true;
        rc = act(st, "env.patch", json_pack("{s:s, s:O}", "name", app->spec.name, "vars", del),
                 NULL);
        if (rc != 0)
            goto done;
    }
    size_t i;
    json_array_foreach(have_secrets, i, v) {
        const char *name = json_is_string(v) ? json_string_value(v)
                                             : json_string_value(json_object_get(v, "name"));
        const nano_env_entry *e = name ? nano_env_find(&app->env, name) : NULL;
        if (!name || (e && e->is_secret))
            continue;
        note(st, app->spec.name, "secret removed", "%s", name);
        is_changed = true;
        rc = act(st, "secrets.delete", json_pack("{s:s, s:s}", "name", app->spec.name, "key", name),
                 NULL);
        if (rc != 0)
            goto done;
    }

    /* 4. code */
    if (!same_code(app, json_object_get(got, "deployment"))) {
        const char *main_name = base_name(app->main_path);
        if (!nano_utf8_valid(app->code, app->code_len)) {
            rc = ctl_usage(ctx, "app %s: %s is not UTF-8 text", app->spec.name, app->main_path);
            goto done;
        }
        json_t *res = NULL;
        rc = act(st, "apps.deploy",
                 json_pack("{s:s, s:s, s:{s:s%}}", "name", app->spec.name, "main", main_name,
                           "modules", main_name, app->code, app->code_len),
                 &res);
        if (rc != 0)
            goto done;
        char ver[32];
        if (res)
            note(st, app->spec.name, "deployed", "version %s (sha256 %.12s)",
                 ctl_scalar(json_object_get(res, "version"), ver, sizeof ver), app->code_sha256);
        else
            note(st, app->spec.name, "deployed", "(sha256 %.12s)", app->code_sha256);
        json_decref(res);
        st->n_deployed++;
        is_changed = true;
    }
    if (!is_changed) {
        st->n_unchanged++;
        if (!ctx->is_json && n_secrets == 0)
            fprintf(ctx->io->out, "app %s: unchanged\n", app->spec.name);
    }
done:
    json_decref(add);
    json_decref(del);
    json_decref(env_have);
    json_decref(got);
    return rc;
}

int ctl_cmd_apply(ctl_ctx *ctx, int argc, char **argv)
{
    ctl_set_what(ctx, argc, argv, 1);
    const char *file = NULL;
    bool is_prune = false;
    apply_state st = {.ctx = ctx};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--prune") == 0)
            is_prune = true;
        else if (strcmp(argv[i], "--dry-run") == 0)
            st.is_dry_run = true;
        else if (strcmp(argv[i], "--json") == 0)
            ctx->is_json = true;
        else if (nano_opt_is_option(argv[i]) || file)
            return ctl_usage(ctx, "unexpected argument '%s' (see nanoctl apply --help)", argv[i]);
        else
            file = argv[i];
    }
    if (!file)
        return ctl_usage(ctx, "usage: nanoctl apply FILE [--prune] [--dry-run]");

    nano_config *cfg = NULL;
    nano_error err = {0};
    if (nano_config_load_json(file, 1, &cfg, &err) != 0)
        return ctl_usage(ctx, "%s", err.message);
    json_t *list = NULL;
    int rc = ctl_call(ctx, "apps.list", NULL, &list);
    if (rc != 0) {
        nano_config_unref(cfg);
        return rc;
    }
    st.changes = json_array();
    json_t *have_apps = json_object_get(list, "apps");
    for (size_t a = 0; a < nano_config_n_apps(cfg) && rc == 0; a++) {
        const nano_app_config *app = nano_config_app(cfg, a);
        const json_t *have = NULL;
        size_t i;
        json_t *h;
        json_array_foreach(have_apps, i, h) {
            const char *n = json_string_value(json_object_get(h, "name"));
            if (n && strcmp(n, app->spec.name) == 0)
                have = h;
        }
        rc = apply_app(&st, app, have);
    }
    if (rc == 0) {
        size_t i;
        json_t *h;
        json_array_foreach(have_apps, i, h) {
            const char *n = json_string_value(json_object_get(h, "name"));
            if (!n || nano_config_find(cfg, n, NULL))
                continue;
            if (!is_prune) {
                if (!ctx->is_json)
                    fprintf(ctx->io->out, "app %s: not in %s (kept; --prune removes it)\n", n,
                            file);
                continue;
            }
            json_t *res = NULL;
            if ((rc = act(&st, "apps.remove", json_pack("{s:s}", "name", n), &res)) != 0)
                break;
            const char *state = json_string_value(json_object_get(res, "state"));
            note(&st, n, "removed", "%s", state ? state : "");
            json_decref(res);
            st.n_removed++;
        }
    }
    if (rc == 0) {
        json_t *summary = json_pack("{s:b, s:i, s:i, s:i, s:i, s:i, s:i}", "dry_run", st.is_dry_run,
                                    "created", st.n_created, "updated", st.n_updated, "deployed",
                                    st.n_deployed, "removed", st.n_removed, "unchanged",
                                    st.n_unchanged, "secrets_written", st.n_secrets_written);
        if (ctx->is_json) {
            json_t *out = json_pack("{s:O, s:o}", "changes", st.changes, "summary", summary);
            ctl_print_json(ctx, out);
            json_decref(out);
        } else {
            fprintf(ctx->io->out,
                    "%s%s: %u created, %u updated, %u deployed, %u removed, %u unchanged; "
                    "%u secret(s) written\n",
                    st.is_dry_run ? "(dry run) " : "", file, st.n_created, st.n_updated,
                    st.n_deployed, st.n_removed, st.n_unchanged, st.n_secrets_written);
            json_decref(summary);
        }
    }
    json_decref(st.changes);
    json_decref(list);
    nano_config_unref(cfg);
    return rc;
}
