/* service_apps.c: the apps ops (service.h): create, update, get, list, remove and drain. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include "service_int.h"

/* --- apps.create / apps.update -------------------------------------------------------------- */

typedef struct app_fields {
    char **hostnames;
    size_t n_hostnames;
    const char *path_prefix;
    bool is_default;
    bool node_compat;
    json_t *required_env; /* owned array */
    nano_limits limits;
    json_t *egress;       /* owned: the policy as nano_egress_to_json writes it; NULL: none */
} app_fields;

static void app_fields_fini(app_fields *f)
{
    for (size_t i = 0; i < f->n_hostnames; i++)
        nano_free(f->hostnames[i]);
    nano_free(f->hostnames);
    json_decref(f->required_env);
    json_decref(f->egress);
    memset(f, 0, sizeof *f);
}

/* Lowercase, without a trailing '.': the form routing compares (as nano_config_add_app). */
static char *normalize_host(const char *host)
{
    char *h = nano_xstrdup(host);
    size_t len = strlen(h);
    if (len > 0 && h[len - 1] == '.')
        h[--len] = '\0';
    for (char *p = h; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return h;
}

static int read_hostnames(json_t *args, app_fields *f, cp_error *err)
{
    json_t *hs = json_object_get(args, "hostnames");
    if (hs == NULL)
        return 0;
    if (!json_is_array(hs))
        return cp_error_set(err, 400, "invalid_field", "hostnames",
                            "hostnames must be an array of hostnames, not %s",
                            cp_service__type_name(hs));
    if (json_array_size(hs) > MAX_HOSTNAMES)
        return cp_error_set(err, 413, "too_large", "hostnames",
                            "an app has at most %d hostnames", MAX_HOSTNAMES);
    char **list = nano_xcalloc(json_array_size(hs) + 1, sizeof *list);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < json_array_size(hs) && rc == 0; i++) {
        json_t *v = json_array_get(hs, i);
        char field[48], b[72];
        snprintf(field, sizeof field, "hostnames[%zu]", i);
        if (!json_is_string(v)) {
            rc = cp_error_set(err, 400, "invalid_field", field, "%s must be a string, not %s",
                              field, cp_service__type_name(v));
            break;
        }
        if (!nano_hostname_valid(json_string_value(v))) {
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "\"%s\" is not a valid hostname: use labels of letters, digits and "
                              "'-' separated by '.', optionally after \"*.\" for a wildcard",
                              cp_service__shown(json_string_value(v), b, sizeof b));
            break;
        }
        char *h = normalize_host(json_string_value(v));
        for (size_t k = 0; k < n && rc == 0; k++)
            if (strcmp(list[k], h) == 0)
                rc = cp_error_set(err, 400, "invalid_field", field, "hostname %s is listed twice",
                                  h);
        if (rc != 0) {
            nano_free(h);
            break;
        }
        list[n++] = h;
    }
    if (rc != 0) {
        for (size_t k = 0; k < n; k++)
            nano_free(list[k]);
        nano_free(list);
        return rc;
    }
    for (size_t i = 0; i < f->n_hostnames; i++)
        nano_free(f->hostnames[i]);
    nano_free(f->hostnames);
    f->hostnames = list;
    f->n_hostnames = n;
    return 0;
}

static int read_required_env(json_t *args, app_fields *f, cp_error *err)
{
    json_t *r = json_object_get(args, "required_env");
    if (r == NULL)
        return 0;
    if (!json_is_array(r))
        return cp_error_set(err, 400, "invalid_field", "required_env",
                            "required_env must be an array of env names, not %s",
                            cp_service__type_name(r));
    if (json_array_size(r) > NANO_ENV_MAX_ENTRIES)
        return cp_error_set(err, 413, "too_large", "required_env",
                            "required_env lists more than %d names", NANO_ENV_MAX_ENTRIES);
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(r); i++) {
        json_t *v = json_array_get(r, i);
        char field[48];
        snprintf(field, sizeof field, "required_env[%zu]", i);
        int rc = 0;
        if (!json_is_string(v) || !nano_env_name_valid(json_string_value(v), json_string_length(v)))
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "%s must be an env name: letters, digits and '_', not starting "
                              "with a digit",
                              field);
        size_t k;
        json_t *seen;
        json_array_foreach(out, k, seen) {
            if (rc == 0 && json_equal(seen, v))
                rc = cp_error_set(err, 400, "invalid_field", field, "%s is listed twice",
                                  json_string_value(v));
        }
        if (rc != 0) {
            json_decref(out);
            return rc;
        }
        json_array_append(out, v);
    }
    json_decref(f->required_env);
    f->required_env = out;
    return 0;
}

static int read_limits(json_t *args, app_fields *f, cp_error *err)
{
    json_t *l = json_object_get(args, "limits");
    if (l == NULL)
        return 0;
    nano_error e = {0};
    const char *key = NULL;
    if (nano_limits_from_json(l, &f->limits, "limits.", &key, &e) == 0)
        return 0;
    char field[96];
    snprintf(field, sizeof field, "limits%s%s", key ? "." : "", key ? key : "");
    return cp_error_set(err, 400, "invalid_field", field, "%s", e.message);
}

/* "egress": an object nano_egress_parse_json accepts (stored as it writes it back), or null to
 * remove the app's policy. The message names the entry: egress.allow[2]: "10.0.0.0/33" is ... */
static int read_egress(json_t *args, app_fields *f, cp_error *err)
{
    json_t *v = json_object_get(args, "egress");
    if (v == NULL)
        return 0;
    nano_egress *e = NULL;
    if (!json_is_null(v)) {
        nano_error e_err = {0};
        if (nano_egress_parse_json(v, "egress", &e, &e_err) != 0)
            return cp_error_set(err, 400, "invalid_field", "egress", "%s", e_err.message);
    }
    json_decref(f->egress);
    f->egress = nano_egress_to_json(e); /* NULL for null */
    nano_egress_unref(e);
    return 0;
}

/* Reads the fields args gives onto f (which holds the defaults, or the app's current values). */
static int read_app_fields(json_t *args, app_fields *f, cp_error *err)
{
    int rc = read_hostnames(args, f, err);
    json_t *p = json_object_get(args, "path_prefix");
    if (rc == 0 && p != NULL && !json_is_null(p)) {
        char b[72];
        if (!json_is_string(p))
            rc = cp_error_set(err, 400, "invalid_field", "path_prefix",
                              "path_prefix must be a string or null, not %s",
                              cp_service__type_name(p));
        else if (!nano_path_prefix_valid(json_string_value(p)))
            rc = cp_error_set(err, 400, "invalid_field", "path_prefix",
                              "\"%s\" is not a valid path prefix: use \"/seg\" or \"/seg/seg\" "
                              "(printable ASCII, no trailing '/', no empty segment, no '?' or "
                              "'#')",
                              cp_service__shown(json_string_value(p), b, sizeof b));
        else
            f->path_prefix = json_string_value(p);
    } else if (rc == 0 && p != NULL) {
        f->path_prefix = NULL;
    }
    if (rc == 0)
        rc = cp_service__get_bool(args, "default", &f->is_default, err);
    if (rc == 0)
        rc = cp_service__get_bool(args, "node_compat", &f->node_compat, err);
    if (rc == 0)
        rc = read_required_env(args, f, err);
    if (rc == 0)
        rc = read_limits(args, f, err);
    if (rc == 0)
        rc = read_egress(args, f, err);
    if (rc == 0 && f->n_hostnames == 0 && !f->is_default)
        rc = cp_error_set(err, 400, "invalid_field", "hostnames",
                          "an app needs at least one hostname, or \"default\": true");
    return rc;
}

/* Claims: each hostname + prefix and the default role belong to one app. */
static int check_claims(cp_service *svc, const app_fields *f, int64_t self, cp_error *err)
{
    char owner[64];
    for (size_t i = 0; i < f->n_hostnames; i++) {
        int rc = cp_store_hostname_owner(svc->st, f->hostnames[i], f->path_prefix, self, owner);
        if (rc == 0) {
            char field[48];
            snprintf(field, sizeof field, "hostnames[%zu]", i);
            return cp_error_set(err, 409, "hostname_taken", field,
                                "hostname %s%s%s is already claimed by app %s", f->hostnames[i],
                                f->path_prefix ? " with path_prefix " : "",
                                f->path_prefix ? f->path_prefix : "", owner);
        }
        if (rc != NANO_ENOTFOUND)
            return cp_service__store_fail(svc, rc, "checking hostnames", err);
    }
    if (f->is_default) {
        int rc = cp_store_default_owner(svc->st, self, owner);
        if (rc == 0)
            return cp_error_set(err, 409, "default_taken", "default",
                                "app %s is already the default app", owner);
        if (rc != NANO_ENOTFOUND)
            return cp_service__store_fail(svc, rc, "checking the default app", err);
    }
    return 0;
}

/* Writes f for app name (insert when *id is 0, else update). */
static int write_app(cp_service *svc, const char *name, const app_fields *f, int64_t *id,
                     cp_error *err)
{
    json_t *lim = nano_limits_to_json(&f->limits);
    char *limits = json_dumps(lim, JSON_COMPACT);
    char *required = json_dumps(f->required_env, JSON_COMPACT);
    char *egress = f->egress != NULL ? json_dumps(f->egress, JSON_COMPACT) : NULL;
    json_decref(lim);
    cp_app_write w = {.name = name, .hostnames = (const char *const *)f->hostnames,
                      .n_hostnames = f->n_hostnames, .path_prefix = f->path_prefix,
                      .is_default = f->is_default, .node_compat = f->node_compat,
                      .required_env = required, .limits = limits, .egress = egress};
    int rc =
        *id == 0 ? cp_store_app_insert(svc->st, &w, id) : cp_store_app_update(svc->st, *id, &w);
    free(limits);
    free(required);
    free(egress);
    if (rc == NANO_ESTATE) /* a UNIQUE the checks above should have caught first */
        return cp_error_set(err, 409, "hostname_taken", "hostnames",
                            "a hostname or the default role of app %s is already claimed", name);
    return rc == 0 ? 0 : cp_service__store_fail(svc, rc, "writing an app", err);
}

static const char *const app_field_names[] = {"name",         "hostnames", "path_prefix",
                                              "default",      "node_compat", "required_env",
                                              "limits",       "egress",      NULL};

/* The result of both: the app as stored now. */
static int app_result(cp_service *svc, const char *name, json_t **result, cp_error *err)
{
    json_t *row = NULL;
    int rc = cp_store_app_get(svc->st, name, &row);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "reading an app", err);
    *result = cp_service__app_view(row);
    json_decref(row);
    return 0;
}

static json_t *changed_fields(json_t *args)
{
    json_t *list = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        if (strcmp(key, "name") != 0)
            json_array_append_new(list, json_string(key));
    }
    return list;
}

int cp_service__op_apps_create(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    const char *name;
    app_fields f = {.required_env = json_array(), .limits = nano_limits_defaults()};
    int rc = cp_service__check_fields(args, app_field_names, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = read_app_fields(args, &f, err);
    json_t *existing = NULL;
    if (rc == 0) {
        int found = cp_store_app_get(svc->st, name, &existing);
        if (found == 0)
            rc = cp_error_set(err, 409, "app_exists", "name", "app %s already exists", name);
        else if (found != NANO_ENOTFOUND)
            rc = cp_service__store_fail(svc, found, "reading an app", err);
    }
    json_decref(existing);
    int64_t id = 0;
    if (rc == 0)
        rc = check_claims(svc, &f, 0, err);
    if (rc == 0)
        rc = write_app(svc, name, &f, &id, err);
    if (rc == 0)
        rc = cp_service__log_app_put(svc, name, err);
    if (rc == 0) {
        json_t *hosts = json_array();
        for (size_t i = 0; i < f.n_hostnames; i++)
            json_array_append_new(hosts, json_string(f.hostnames[i]));
        rc = cp_service__audit(svc, actor, "apps.create", name,
                               json_pack("{s:o}", "hostnames", hosts), err);
    }
    if (rc == 0)
        rc = app_result(svc, name, result, err);
    app_fields_fini(&f);
    return rc;
}

int cp_service__op_apps_update(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    const char *name;
    json_t *app = NULL;
    int64_t id = 0;
    app_fields f = {0};
    int rc = cp_service__check_fields(args, app_field_names, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0) { /* start from what the app has */
        json_t *hs = json_object_get(app, "hostnames");
        f.hostnames = nano_xcalloc(json_array_size(hs) + 1, sizeof *f.hostnames);
        size_t i;
        json_t *h;
        json_array_foreach(hs, i, h) {
            f.hostnames[f.n_hostnames++] = nano_xstrdup(json_string_value(h));
        }
        f.path_prefix = json_string_value(json_object_get(app, "path_prefix"));
        f.is_default = json_is_true(json_object_get(app, "default"));
        f.node_compat = json_is_true(json_object_get(app, "node_compat"));
        f.required_env = json_incref(json_object_get(app, "required_env"));
        json_t *egress = json_object_get(app, "egress");
        f.egress = json_is_object(egress) ? json_incref(egress) : NULL;
        f.limits = nano_limits_defaults();
        nano_error e;
        if (nano_limits_from_json(json_object_get(app, "limits"), &f.limits, NULL, NULL, &e) != 0)
            NANO_WARN("cp.stored_limits_invalid", "app=%s error=%s", name, e.message);
        rc = read_app_fields(args, &f, err);
    }
    if (rc == 0)
        rc = check_claims(svc, &f, id, err);
    if (rc == 0 && cp_service__is_deployed(app)) {
        json_t *kinds = NULL;
        rc = cp_store_env_kinds(svc->st, id, &kinds);
        rc = rc == 0 ? cp_service__check_required(f.required_env, kinds, name, err)
                     : cp_service__store_fail(svc, rc, "reading env names", err);
        json_decref(kinds);
    }
    if (rc == 0)
        rc = write_app(svc, name, &f, &id, err);
    if (rc == 0)
        rc = cp_service__log_app_put(svc, name, err);
    if (rc == 0)
        rc = cp_service__audit(svc, actor, "apps.update", name,
                               json_pack("{s:o}", "fields", changed_fields(args)), err);
    if (rc == 0)
        rc = app_result(svc, name, result, err);
    app_fields_fini(&f);
    json_decref(app);
    return rc;
}

/* --- reads ---------------------------------------------------------------------------------- */

const char *const cp_service__name_only[] = {"name", NULL};
const char *const cp_service__no_fields[] = {NULL};

int cp_service__op_apps_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                             cp_error *err)
{
    (void)actor;
    json_t *rows = NULL;
    int rc = cp_service__check_fields(args, cp_service__no_fields, err);
    if (rc == 0 && (rc = cp_store_app_list(svc->st, &rows)) != 0)
        return cp_service__store_fail(svc, rc, "listing apps", err);
    if (rc != 0)
        return rc;
    json_t *apps = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_array_append_new(apps, cp_service__app_view(row));
    }
    json_decref(rows);
    *result = json_pack("{s:o}", "apps", apps);
    return 0;
}

/* Each node's report about this app: [{node, ...its per-app state}]. */
static json_t *node_states(json_t *nodes, const char *app)
{
    json_t *out = json_array();
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        json_t *st = json_object_get(json_object_get(n, "apps"), app);
        /* node first: nanoctl's tables take their columns from the first object's keys */
        json_t *one = json_pack("{s:O}", "node", json_object_get(n, "name"));
        if (json_is_object(st))
            json_object_update(one, st);
        else
            json_object_set_new(one, "state", json_string("absent"));
        json_object_set(one, "last_seen", json_object_get(n, "last_seen"));
        json_array_append_new(out, one);
    }
    return out;
}

/* Whether data planes get this app: {"state": "ok"}, or {"state": "withheld", "error"} when the
 * snapshot cannot carry it (snapshot.h: the same SNAPAPP a node would get is built here). */
static json_t *distribution(cp_service *svc, const json_t *row)
{
    json_t *snap = NULL;
    nano_error err = {0};
    if (cp_snapshot_app(svc, row, &snap, &err) == 0) {
        json_decref(snap);
        return json_pack("{s:s}", "state", "ok");
    }
    return json_pack("{s:s, s:s, s:s}", "state", "withheld", "error_id", err.id, "error",
                     err.message);
}

int cp_service__op_apps_get(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                            cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *dep = NULL, *nodes = NULL;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, cp_service__name_only, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0 && cp_service__is_deployed(app)) {
        rc = cp_store_deployment_get(svc->st, id,
                                     json_integer_value(json_object_get(app, "active_version")),
                                     &dep);
        if (rc != 0)
            rc = cp_service__store_fail(svc, rc, "reading a deployment", err);
    }
    if (rc == 0 && (rc = cp_store_node_list(svc->st, &nodes)) != 0)
        rc = cp_service__store_fail(svc, rc, "listing nodes", err);
    json_t *drain = NULL;
    if (rc == 0 && strcmp(json_string_value(json_object_get(app, "state")), "draining") == 0) {
        int found = cp_store_drain_get(svc->st, name, &drain);
        if (found != 0 && found != NANO_ENOTFOUND)
            rc = cp_service__store_fail(svc, found, "reading a drain", err);
    }
    if (rc == 0) {
        *result = cp_service__app_view(app);
        json_object_set_new(*result, "deployment",
                            dep ? cp_service__deployment_view(dep) : json_null());
        json_object_set_new(*result, "nodes", node_states(nodes, name));
        json_object_set_new(*result, "distribution", distribution(svc, app));
        if (drain != NULL) {
            json_object_del(drain, "id");
            json_object_set(*result, "drain", drain);
        }
    }
    json_decref(app);
    json_decref(dep);
    json_decref(nodes);
    json_decref(drain);
    return rc;
}

/* --- removal -------------------------------------------------------------------------------- */

int cp_service__op_apps_remove(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    const char *name;
    json_t *app = NULL;
    int64_t id = 0, n_nodes = 0;
    int rc = cp_service__check_fields(args, cp_service__name_only, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0 && strcmp(json_string_value(json_object_get(app, "state")), "draining") == 0) {
        *result = json_pack("{s:s, s:s}", "name", name, "state", "draining"); /* already */
        json_decref(app);
        return 0;
    }
    if (rc == 0 && (rc = cp_store_node_count(svc->st, &n_nodes)) != 0)
        rc = cp_service__store_fail(svc, rc, "counting nodes", err);
    nano_limits lim = nano_limits_defaults();
    if (rc == 0) {
        nano_error e;
        nano_limits_from_json(json_object_get(app, "limits"), &lim, NULL, NULL, &e);
        rc = cp_service__log_delta(svc, "app.drain", name,
                       json_pack("{s:s, s:I}", "app", name, "timeout_ms",
                                 (json_int_t)lim.drain_timeout_ms),
                       err);
    }
    const char *state = n_nodes == 0 ? "removed" : "draining";
    if (rc == 0 && n_nodes == 0) {
        /* No node to wait for: the drain is over as soon as it starts. */
        rc = cp_store_app_delete(svc->st, id);
        if (rc != 0)
            rc = cp_service__store_fail(svc, rc, "deleting an app", err);
        if (rc == 0)
            rc = cp_service__log_delta(svc, "app.remove", name, json_pack("{s:s}", "app", name),
                                       err);
    } else if (rc == 0) {
        /* The drain ends in finish_drains (below), run by the distribution layer when the
         * last node acks (drain.ack, or a status that no longer lists the app) or when the
         * timeout passes: then the app is deleted and app.remove appended. */
        int64_t drain_id;
        rc = cp_store_app_set_state(svc->st, id, "draining");
        if (rc == 0)
            rc = cp_store_drain_start(svc->st, id, name, lim.drain_timeout_ms, &drain_id);
        if (rc != 0)
            rc = cp_service__store_fail(svc, rc, "starting a drain", err);
        if (rc == 0)
            rc = cp_service__log_app_put(svc, name, err);
    }
    if (rc == 0)
        rc = cp_service__audit(svc, actor, "apps.remove", name,
                   json_pack("{s:s, s:I}", "state", state, "nodes", (json_int_t)n_nodes), err);
    if (rc == 0)
        *result = json_pack("{s:s, s:s}", "name", name, "state", state);
    json_decref(app);
    return rc;
}

int cp_service__op_apps_drain(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                              cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *drain = NULL;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, cp_service__name_only, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc != 0)
        return rc;
    const char *state = json_string_value(json_object_get(app, "state"));
    int found = strcmp(state, "draining") == 0 ? cp_store_drain_get(svc->st, name, &drain)
                                                : NANO_ENOTFOUND;
    if (found != 0 && found != NANO_ENOTFOUND)
        rc = cp_service__store_fail(svc, found, "reading a drain", err);
    if (rc == 0) {
        *result = json_pack("{s:s, s:s}", "name", name, "state", state);
        if (drain != NULL) {
            json_object_set(*result, "nodes", json_object_get(drain, "nodes"));
            json_object_set(*result, "started_at", json_object_get(drain, "started_at"));
            json_object_set(*result, "timeout_ms", json_object_get(drain, "timeout_ms"));
        } else {
            json_object_set_new(*result, "nodes", json_array());
        }
    }
    json_decref(app);
    json_decref(drain);
    return rc;
}
