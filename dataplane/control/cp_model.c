#include "cp_model.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

void dp_cp_changes_fini(dp_cp_changes *ch)
{
    if (ch == NULL)
        return;
    nano_free(ch->drains);
    nano_free(ch->removed);
    memset(ch, 0, sizeof *ch);
}

void dp_cp_model_init(dp_cp_model *m)
{
    m->seq = 0;
    m->apps = json_object();
    m->bundles = json_object();
}

void dp_cp_model_fini(dp_cp_model *m)
{
    if (m == NULL)
        return;
    json_decref(m->apps);
    json_decref(m->bundles);
    memset(m, 0, sizeof *m);
}

void dp_cp_model_swap(dp_cp_model *to, dp_cp_model *from)
{
    dp_cp_model_fini(to);
    *to = *from;
    memset(from, 0, sizeof *from);
}

dp_cp_verdict dp_cp_delta_verdict(uint64_t applied, uint64_t first, uint64_t seq)
{
    if (seq <= applied)
        return DP_CP_DUPLICATE;
    if (first > applied + 1)
        return DP_CP_GAP;
    return DP_CP_APPLY;
}

static void add_drain(dp_cp_changes *ch, const char *app, uint64_t timeout_ms, bool was_running)
{
    ch->drains = nano_xrealloc(ch->drains, (ch->n_drains + 1) * sizeof *ch->drains);
    dp_cp_drain *d = &ch->drains[ch->n_drains++];
    memset(d, 0, sizeof *d);
    snprintf(d->app, sizeof d->app, "%s", app);
    d->timeout_ms = timeout_ms;
    d->was_running = was_running;
}

static bool is_running(const nano_config *running, const char *app)
{
    return running != NULL && nano_config_find(running, app, NULL) != NULL;
}

static uint64_t get_u64(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
}

static const char *get_str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The JSON form of a spec with every field at its default (app_spec.h): what an app.put or a
 * SNAPAPP means by a spec key it does not carry (one from an older nanocp). A new reference. */
static json_t *spec_defaults(void)
{
    nano_app_spec spec;
    nano_app_spec_init(&spec);
    json_t *j = nano_app_spec_to_json(&spec);
    nano_app_spec_fini(&spec);
    return j;
}

/* A fresh app object holding what a SNAPAPP holds, before any deployment. */
static json_t *app_empty(void)
{
    json_t *a = spec_defaults();
    json_t *rest = json_pack("{s:s, s:i, s:n, s:n, s:[], s:{}, s:{}}", "state", "active", "version",
                             0, "sha256", "main", "modules", "vars", "secrets");
    json_object_update(a, rest);
    json_decref(rest);
    return a;
}

int dp_cp_model_from_snapshot(const json_t *body, const dp_cp_model *cur,
                              const nano_config *running, dp_cp_model *out, dp_cp_changes *ch,
                              nano_error *err)
{
    json_t *list = json_object_get(body, "apps");
    json_t *seq = json_object_get(body, "seq");
    if (!json_is_array(list) || !json_is_integer(seq) || json_integer_value(seq) < 0)
        return nano_error_set(err, NANO_EINVAL, "snapshot_invalid", "snapshot without seq/apps");
    json_t *apps = json_object();
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) {
        const char *name = get_str(a, "app");
        if (name == NULL || !nano_app_name_valid(name)) {
            json_decref(apps);
            return nano_error_set(err, NANO_EINVAL, "snapshot_invalid",
                                  "snapshot apps[%zu]: no valid name", i);
        }
        if (json_object_get(apps, name) != NULL) {
            json_decref(apps);
            return nano_error_set(err, NANO_EINVAL, "snapshot_invalid",
                                  "snapshot: app %s is listed twice", name);
        }
        const char *withheld = get_str(a, "withheld");
        if (withheld != NULL) {
            /* nanocp could not send this app: keep what we have of it, marked, so that an op
             * on it waits for a snapshot that carries it (dp_cp_model_apply). */
            json_t *had = cur != NULL && cur->apps != NULL ? json_object_get(cur->apps, name)
                                                           : NULL;
            NANO_WARN("cpclient.app_withheld", "app=%s kept=%s reason=%s", name,
                      had != NULL ? "yes" : "no", withheld);
            if (had != NULL) {
                json_t *copy = json_deep_copy(had);
                json_object_set_new(copy, "withheld", json_string(withheld));
                json_object_set_new(apps, name, copy);
            }
            continue;
        }
        json_t *copy = app_empty();
        json_object_update(copy, a); /* every field the snapshot gives wins */
        json_object_del(copy, "app");
        json_object_set_new(apps, name, copy);
    }
    /* Only now: outputs are written on success alone. */
    memset(ch, 0, sizeof *ch);
    const char *name;
    json_object_foreach(apps, name, a) {
        const char *state = get_str(a, "state");
        if (state != NULL && strcmp(state, "draining") == 0)
            add_drain(ch, name, get_u64(a, "drain_timeout_ms"), is_running(running, name));
    }
    out->seq = (uint64_t)json_integer_value(seq);
    out->apps = apps;
    out->bundles = json_object();
    return 0;
}

/* The app named name in out, made private to out (copied on first change). */
static json_t *app_for_write(dp_cp_model *out, json_t *touched, const char *name)
{
    json_t *a = json_object_get(out->apps, name);
    if (a == NULL)
        return NULL;
    if (json_object_get(touched, name) == NULL) {
        a = json_deep_copy(a);
        json_object_set_new(out->apps, name, a);
        json_object_set_new(touched, name, json_true());
    }
    return a;
}

/* Points app's main/modules at the bundle of its deployment, if one is known. */
static void resolve_code(dp_cp_model *out, json_t *app)
{
    const char *sha = get_str(app, "sha256");
    json_t *b = sha != NULL ? json_object_get(out->bundles, sha) : NULL;
    if (b != NULL) {
        json_object_set(app, "main", json_object_get(b, "main"));
        json_object_set(app, "modules", json_object_get(b, "modules"));
    }
}

static int apply_op(dp_cp_model *out, json_t *touched, json_t *pending, const json_t *op,
                    const nano_config *running, dp_cp_changes *ch, nano_error *err)
{
    const char *kind = get_str(op, "op");
    const char *name = get_str(op, "app");
    uint64_t seq = get_u64(op, "seq");
    if (kind == NULL || name == NULL)
        return nano_error_set(err, NANO_EINVAL, "op_invalid", "op %" PRIu64 ": no op/app", seq);
    /* What we keep of a withheld app may predate ops that never reached us: this op's base is
     * unknown, so a snapshot decides (one that carries the app, or withholds it again). */
    const char *withheld = get_str(json_object_get(out->apps, name), "withheld");
    if (withheld != NULL)
        return nano_error_set(err, NANO_ESTATE, "app_withheld",
                              "op %" PRIu64 " %s on app %s, which the last snapshot withheld "
                              "(%s): resyncing",
                              seq, kind, name, withheld);
    if (strcmp(kind, "app.put") == 0) {
        json_t *a = app_for_write(out, touched, name);
        if (a == NULL) {
            a = app_empty();
            json_object_set_new(out->apps, name, a);
            json_object_set_new(touched, name, json_true());
        }
        static const char *const fields[] = {"state", "version", "sha256", NULL};
        for (size_t i = 0; fields[i] != NULL; i++) {
            json_t *v = json_object_get(op, fields[i]);
            if (v == NULL)
                return nano_error_set(err, NANO_EINVAL, "op_invalid",
                                      "op %" PRIu64 " app.put %s: no %s", seq, name, fields[i]);
        }
        const char *old_sha = get_str(a, "sha256");
        char *had = old_sha != NULL ? nano_xstrdup(old_sha) : NULL;
        for (size_t i = 0; fields[i] != NULL; i++)
            json_object_set(a, fields[i], json_object_get(op, fields[i]));
        /* The spec whole: a key the op does not carry (one an older nanocp does not know) is
         * the spec's default, so an app.put without egress also clears a policy the app had. */
        json_t *defaults = spec_defaults();
        for (size_t i = 0; nano_app_spec_keys[i] != NULL; i++) {
            const char *key = nano_app_spec_keys[i];
            json_t *v = json_object_get(op, key);
            json_object_set(a, key, v != NULL ? v : json_object_get(defaults, key));
        }
        json_decref(defaults);
        const char *sha = get_str(a, "sha256");
        bool same = sha != NULL && had != NULL && strcmp(sha, had) == 0;
        nano_free(had);
        if (!same) {
            json_object_set_new(a, "main", json_null());
            json_object_set_new(a, "modules", json_array());
            resolve_code(out, a);
            /* A deployment whose modules were never announced cannot be served: let the
             * caller resync rather than run an app without code. */
            if (sha != NULL && get_u64(a, "version") > 0 &&
                !json_is_string(json_object_get(a, "main")))
                return nano_error_set(err, NANO_EINVAL, "op_invalid",
                                      "op %" PRIu64 " app.put %s: deployment %.12s was never "
                                      "announced by code.put",
                                      seq, name, sha);
        }
        if (strcmp(get_str(a, "state") ? get_str(a, "state") : "", "draining") != 0)
            json_object_del(a, "drain_timeout_ms");
        return 0;
    }
    if (strcmp(kind, "code.put") == 0) {
        const char *sha = get_str(op, "sha256");
        json_t *main = json_object_get(op, "main"), *mods = json_object_get(op, "modules");
        if (sha == NULL || !json_is_string(main) || !json_is_array(mods))
            return nano_error_set(err, NANO_EINVAL, "op_invalid",
                                  "op %" PRIu64 " code.put %s: no sha256/main/modules", seq, name);
        if (json_object_get(out->bundles, sha) == NULL) {
            if (json_object_get(touched, " bundles") == NULL) {
                json_t *b = json_copy(out->bundles); /* values are never changed in place */
                json_decref(out->bundles);
                out->bundles = b;
                json_object_set_new(touched, " bundles", json_true());
            }
            json_object_set_new(out->bundles, sha,
                                json_pack("{s:O, s:O}", "main", main, "modules", mods));
        }
        return 0;
    }
    if (strcmp(kind, "app.remove") == 0) {
        json_object_del(out->apps, name);
        json_object_del(touched, name);
        json_object_del(pending, name);
        ch->removed = nano_xrealloc(ch->removed, (ch->n_removed + 1) * sizeof *ch->removed);
        snprintf(ch->removed[ch->n_removed++], 64, "%s", name);
        return 0;
    }
    if (strcmp(kind, "app.drain") == 0) {
        json_t *a = app_for_write(out, touched, name);
        uint64_t timeout = get_u64(op, "timeout_ms");
        if (a != NULL) {
            json_object_set_new(a, "state", json_string("draining"));
            json_object_set_new(a, "drain_timeout_ms", json_integer((json_int_t)timeout));
        }
        add_drain(ch, name, timeout, is_running(running, name));
        return 0;
    }
    /* The rest change one app's env: the app must exist. */
    json_t *a = app_for_write(out, touched, name);
    const char *key = get_str(op, "name");
    if (a == NULL)
        return nano_error_set(err, NANO_EINVAL, "op_invalid", "op %" PRIu64 " %s: no app %s", seq,
                              kind, name);
    if (key == NULL)
        return nano_error_set(err, NANO_EINVAL, "op_invalid", "op %" PRIu64 " %s: no name", seq,
                              kind);
    json_t *vars = json_object_get(a, "vars"), *secrets = json_object_get(a, "secrets");
    if (strcmp(kind, "env.put") == 0) {
        json_t *v = json_object_get(op, "value");
        if (v == NULL)
            return nano_error_set(err, NANO_EINVAL, "op_invalid",
                                  "op %" PRIu64 " env.put: no value", seq);
        json_object_set(vars, key, v);
        json_object_del(secrets, key); /* one name, one kind */
    } else if (strcmp(kind, "env.del") == 0) {
        json_object_del(vars, key);
    } else if (strcmp(kind, "secret.put") == 0) {
        json_t *names = json_object_get(pending, name);
        if (names == NULL) {
            names = json_object();
            json_object_set_new(pending, name, names);
        }
        json_object_set_new(names, key, json_true());
        json_object_del(vars, key);
    } else if (strcmp(kind, "secret.del") == 0) {
        json_object_del(secrets, key);
        json_object_del(json_object_get(pending, name), key);
    } else {
        return nano_error_set(err, NANO_EINVAL, "op_invalid", "op %" PRIu64 ": unknown op %s", seq,
                              kind);
    }
    return 0;
}

int dp_cp_model_apply(const dp_cp_model *cur, const json_t *ops, const dp_cp_fetcher *f,
                      const nano_config *running, dp_cp_model *out, dp_cp_changes *ch,
                      nano_error *err)
{
    dp_cp_model next = {
        .seq = cur->seq, .apps = json_copy(cur->apps), .bundles = json_incref(cur->bundles)};
    dp_cp_changes got = {0};
    json_t *touched = json_object(), *pending = json_object();
    int rc = 0;
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        uint64_t seq = get_u64(op, "seq");
        if (seq <= cur->seq)
            continue; /* an overlapping delta: this entry is applied already */
        if (seq != next.seq + 1) {
            rc = nano_error_set(err, NANO_EINVAL, "op_invalid",
                                "op seq %" PRIu64 " after %" PRIu64 ": not consecutive", seq,
                                next.seq);
            break;
        }
        if ((rc = apply_op(&next, touched, pending, op, running, &got, err)) != 0)
            break;
        next.seq = seq;
        got.n_ops++;
    }
    /* secret.put carries no value (PUB never does): ask for the app's values now. A name gone
     * since (a secret.del committed after) stays out; its delta follows. */
    const char *app;
    json_t *names;
    json_object_foreach(pending, app, names) {
        if (rc != 0)
            break;
        json_t *values = NULL;
        if (f == NULL || f->secrets_get == NULL) {
            rc = nano_error_set(err, NANO_EINVAL, "secrets_unavailable",
                                "no way to fetch secrets of %s", app);
            break;
        }
        if ((rc = f->secrets_get(f->ud, app, &values, err)) != 0)
            break;
        json_t *secrets = json_object_get(json_object_get(next.apps, app), "secrets");
        const char *key;
        json_t *t;
        json_object_foreach(names, key, t) {
            json_t *v = json_object_get(values, key);
            if (json_is_string(v))
                json_object_set(secrets, key, v);
            else
                json_object_del(secrets, key);
            got.n_secrets_fetched++;
        }
        json_decref(values);
    }
    json_decref(touched);
    json_decref(pending);
    if (rc != 0) {
        dp_cp_model_fini(&next);
        dp_cp_changes_fini(&got);
        return rc;
    }
    *out = next;
    *ch = got;
    return 0;
}

/* --- building the nano_config ---------------------------------------------------------------- */

static int build_app(const char *name, const json_t *a, dp_code_cache *cache,
                     const dp_cp_fetcher *f, nano_app_config *c, nano_error *err)
{
    c->spec.name = nano_xstrdup(name);
    /* The decoder read the spec already (msg.c); this builds the one the workers share. */
    char where[96];
    snprintf(where, sizeof where, "app %s: ", name);
    int spec_rc = nano_app_spec_read_json((json_t *)a, 0, &c->spec, where, NULL, 0, err);
    if (spec_rc != 0)
        return spec_rc;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(a, "vars"), key, v) {
        int rc;
        if (json_is_string(v)) {
            rc = nano_env_set(&c->env, key, json_string_value(v), json_string_length(v), false,
                              err);
        } else {
            char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            rc = text == NULL
                     ? nano_error_set(err, NANO_ENOMEM, "app_invalid", "app %s: var %s", name, key)
                     : nano_env_set_json(&c->env, key, text, strlen(text), err);
            free(text);
        }
        if (rc != 0)
            return rc;
    }
    json_object_foreach(json_object_get(a, "secrets"), key, v) {
        if (!json_is_string(v))
            return nano_error_set(err, NANO_EINVAL, "app_invalid", "app %s: secret %s has no value",
                                  name, key);
        int rc = nano_env_set(&c->env, key, json_string_value(v), json_string_length(v), true, err);
        if (rc != 0)
            return rc;
    }
    const char *sha = get_str(a, "sha256"), *main = get_str(a, "main");
    if (sha == NULL || main == NULL)
        return nano_error_set(err, NANO_EINVAL, "app_invalid",
                              "app %s: the deployment's modules are unknown", name);
    char *path = NULL, *src = NULL;
    size_t len = 0;
    int rc = dp_code_cache_ensure(cache, sha, main, json_object_get(a, "modules"),
                                  f != NULL ? f->code_get : NULL, f != NULL ? f->ud : NULL, &path,
                                  &src, &len, err);
    if (rc != 0) {
        char msg[sizeof err->message];
        snprintf(msg, sizeof msg, "%s", err->message);
        snprintf(err->message, sizeof err->message, "app %.63s: %.400s", name, msg);
        return rc;
    }
    c->main_path = path;
    c->code = src;
    c->code_len = len;
    memcpy(c->code_sha256, sha, 64);
    c->code_sha256[64] = '\0';
    return 0;
}

int dp_cp_model_build(const dp_cp_model *m, dp_code_cache *cache, const dp_cp_fetcher *f,
                      nano_config **out, nano_error *err)
{
    nano_config *cfg = nano_config_new(m->seq);
    json_t *used = json_object();
    const char *name;
    json_t *a;
    int rc = 0;
    json_object_foreach(m->apps, name, a) {
        const char *state = get_str(a, "state");
        if (get_u64(a, "version") == 0 || get_str(a, "sha256") == NULL || state == NULL ||
            strcmp(state, "active") != 0)
            continue;
        nano_app_config c;
        nano_app_config_init(&c);
        rc = build_app(name, a, cache, f, &c, err);
        if (rc == 0)
            rc = nano_config_add_app(cfg, &c, err);
        nano_app_config_fini(&c);
        if (rc != 0)
            break;
        json_object_set_new(used, get_str(a, "sha256"), json_true());
    }
    if (rc == 0)
        rc = nano_config_seal(cfg, err);
    if (rc == 0)
        dp_code_cache_forget(cache, used);
    json_decref(used);
    if (rc != 0) {
        nano_config_unref(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}
