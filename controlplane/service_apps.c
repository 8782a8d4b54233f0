/* service_apps.c: the apps ops (service.h): create, update, get, list, remove and drain. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include "service_int.h"

/* --- apps.create / apps.update -------------------------------------------------------------- */

/* Reads the spec fields args gives onto spec (which holds the defaults, or the app's current
 * spec): app_spec.c checks each, and the error names the field. */
static int read_spec(json_t *args, nano_app_spec *spec, cp_error *err)
{
    char field[96];
    nano_error e = {0};
    int rc = nano_app_spec_read_json(args, 0, spec, "", field, sizeof field, &e);
    if (rc == 0)
        return 0;
    if (rc == NANO_ETOOBIG)
        return cp_error_set(err, 413, "too_large", field, "%s", e.message);
    return cp_error_set(err, 400, "invalid_field", field, "%s", e.message);
}

/* Claims: each hostname + prefix and the default role belong to one app. */
static int check_claims(cp_service *svc, const nano_app_spec *f, int64_t self, cp_error *err)
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

/* Writes spec for app name (insert when *id is 0, else update). */
static int write_app(cp_service *svc, const char *name, const nano_app_spec *spec, int64_t *id,
                     cp_error *err)
{
    int rc = *id == 0 ? cp_store_app_insert(svc->st, name, spec, id)
                      : cp_store_app_update(svc->st, *id, spec);
    if (rc == NANO_ESTATE) /* a UNIQUE the checks above should have caught first */
        return cp_error_set(err, 409, "hostname_taken", "hostnames",
                            "a hostname or the default role of app %s is already claimed", name);
    return rc == 0 ? 0 : cp_service__store_fail(svc, rc, "writing an app", err);
}

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
    nano_app_spec f;
    nano_app_spec_init(&f);
    int rc = cp_service__check_fields2(args, cp_service__name_only, nano_app_spec_keys, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = read_spec(args, &f, err);
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
        json_t *spec = nano_app_spec_to_json(&f);
        rc = cp_service__audit(svc, actor, "apps.create", name,
                               json_pack("{s:O}", "hostnames", json_object_get(spec, "hostnames")),
                               err);
        json_decref(spec);
    }
    if (rc == 0)
        rc = app_result(svc, name, result, err);
    nano_app_spec_fini(&f);
    return rc;
}

int cp_service__op_apps_update(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    const char *name;
    json_t *app = NULL;
    int64_t id = 0;
    nano_app_spec f;
    nano_app_spec_init(&f);
    int rc = cp_service__check_fields2(args, cp_service__name_only, nano_app_spec_keys, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0) { /* start from what the app has: the row holds the spec's JSON form */
        nano_error e = {0};
        if (nano_app_spec_read_json(app, 0, &f, "", NULL, 0, &e) != 0)
            NANO_WARN("cp.stored_spec_invalid", "app=%s error=%s (updating from the defaults)",
                      name, e.message);
        rc = read_spec(args, &f, err);
    }
    if (rc == 0)
        rc = check_claims(svc, &f, id, err);
    if (rc == 0 && cp_service__is_deployed(app)) {
        json_t *kinds = NULL, *spec = nano_app_spec_to_json(&f);
        rc = cp_store_env_kinds(svc->st, id, &kinds);
        rc = rc == 0 ? cp_service__check_required(json_object_get(spec, "required_env"), kinds,
                                                  name, err)
                     : cp_service__store_fail(svc, rc, "reading env names", err);
        json_decref(kinds);
        json_decref(spec);
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
    nano_app_spec_fini(&f);
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
    int rc = cp_service__open_app(svc, args, cp_service__name_only, &name, &app, &id, err);
    if (rc == 0 && cp_service__is_deployed(app)) {
        rc = cp_store_deployment_get(
            svc->st, id, json_integer_value(json_object_get(app, "active_version")), &dep);
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
    int rc = cp_service__open_app(svc, args, cp_service__name_only, &name, &app, &id, err);
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
        rc = cp_service__log_delta(
            svc, "app.drain", name,
            json_pack("{s:s, s:I}", "app", name, "timeout_ms", (json_int_t)lim.drain_timeout_ms),
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
        rc = cp_service__audit(
            svc, actor, "apps.remove", name,
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
    int rc = cp_service__open_app(svc, args, cp_service__name_only, &name, &app, &id, err);
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
