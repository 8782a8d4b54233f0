/* service_env.c: env vars and secrets, nodes, the audit log and the version (service.h). */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include "service_int.h"

/* --- env ------------------------------------------------------------------------------------ */

static int env_result(cp_service *svc, int64_t id, json_t **result, cp_error *err)
{
    json_t *vars = NULL, *secrets = NULL;
    int rc = cp_store_env_vars(svc->st, id, &vars);
    if (rc == 0)
        rc = cp_store_secret_list(svc->st, id, &secrets);
    if (rc != 0) {
        json_decref(vars);
        return cp_service__store_fail(svc, rc, "reading env", err);
    }
    json_t *names = json_array();
    size_t i;
    json_t *s;
    json_array_foreach(secrets, i, s) {
        json_array_append(names, json_object_get(s, "name"));
    }
    json_decref(secrets);
    *result = json_pack("{s:o, s:o}", "vars", vars, "secrets", names);
    return 0;
}

int cp_service__op_env_get(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                           cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL;
    int64_t id = 0;
    int rc = cp_service__open_app(svc, args, cp_service__name_only, &name, &app, &id, err);
    if (rc == 0)
        rc = env_result(svc, id, result, err);
    json_decref(app);
    return rc;
}

/* The stored form of a var: JSON text; *size is what counts against the 5 KB limit (a
 * string's own bytes, else the compact JSON text), as in nano.json. */
/* json_depth: 0 for a scalar, 1 + the deepest member for an array or object. */
static int json_depth(const json_t *v)
{
    int deepest = 0;
    size_t i;
    const char *key;
    json_t *m;
    if (json_is_array(v)) {
        json_array_foreach(v, i, m) {
            int d = json_depth(m);
            deepest = d > deepest ? d : deepest;
        }
        return 1 + deepest;
    }
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, m) {
            int d = json_depth(m);
            deepest = d > deepest ? d : deepest;
        }
        return 1 + deepest;
    }
    return 0;
}

static char *var_text(json_t *v, size_t *size)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    *size = json_is_string(v) ? json_string_length(v) : strlen(text);
    return text;
}

static int env_name_check(const char *key, const char *field, cp_error *err)
{
    if (nano_env_name_valid(key, strlen(key)))
        return 0;
    return cp_error_set(err, 400, "invalid_field", field,
                        "%s: invalid env name: use letters, digits and '_', not starting with "
                        "a digit",
                        field);
}

/* put_var: validates v (not null) as the value of var key of app name (row id) and stores
 * it, with its env.put delta; field names it in errors. */
static int put_var(cp_service *svc, const char *name, int64_t id, const char *key, json_t *v,
                   const char *field, cp_error *err)
{
    size_t size;
    int rc = 0;
    char *text = var_text(v, &size);
    if (size > NANO_ENV_MAX_VALUE)
        rc = cp_error_set(err, 413, "too_large", field, "%s: value is %zu bytes; the limit is %d",
                          field, size, NANO_ENV_MAX_VALUE);
    else if (json_depth(v) > NANO_MSG_VAR_MAX_DEPTH)
        /* The data planes' decoder bounds nesting; a deeper var would make every snapshot
         * undecodable there. */
        rc = cp_error_set(err, 400, "invalid_field", field,
                          "%s: value is nested %d levels deep; the limit is %d", field,
                          json_depth(v), NANO_MSG_VAR_MAX_DEPTH);
    if (rc == 0 && (rc = cp_store_env_put(svc->st, id, key, text)) != 0)
        rc = cp_service__store_fail(svc, rc, "writing a var", err);
    free(text);
    if (rc == 0)
        rc = cp_service__log_delta(
            svc, "env.put", name,
            json_pack("{s:s, s:s, s:O}", "app", name, "name", key, "value", v), err);
    return rc;
}

/* del_var: removes var key of app name (row id), with its env.del delta. */
static int del_var(cp_service *svc, const char *name, int64_t id, const char *key, cp_error *err)
{
    int rc = cp_store_env_del(svc->st, id, key);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "deleting a var", err);
    return cp_service__log_delta(svc, "env.del", name,
                                 json_pack("{s:s, s:s}", "app", name, "name", key), err);
}

int cp_service__op_env_patch(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                             cp_error *err)
{
    static const char *const fields[] = {"name", "vars", NULL};
    const char *name;
    json_t *app = NULL, *kinds = NULL;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    json_t *vars = json_object_get(args, "vars");
    if (rc == 0 && !json_is_object(vars))
        rc = cp_error_set(err, 400, "invalid_field", "vars",
                          "vars must be an object of {\"NAME\": value or null}");
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0 && (rc = cp_store_env_kinds(svc->st, id, &kinds)) != 0)
        rc = cp_service__store_fail(svc, rc, "reading env names", err);
    /* The 128-entry limit applies to the result of the whole patch, whatever its order. */
    size_t final = json_object_size(kinds);
    const char *first_new = NULL, *key;
    json_t *v;
    json_object_foreach(vars, key, v) {
        if (rc != 0)
            break;
        bool present = json_object_get(kinds, key) != NULL;
        if (json_is_null(v) && present)
            final--;
        else if (!json_is_null(v) && !present) {
            final++;
            first_new = first_new != NULL ? first_new : key;
        }
    }
    if (rc == 0 && final > NANO_ENV_MAX_ENTRIES) {
        char field[128], b[72];
        snprintf(field, sizeof field, "vars.%s", cp_service__shown(first_new, b, sizeof b));
        rc = cp_error_set(err, 413, "too_large", field,
                          "%s: app %s would have %zu vars and secrets; the limit is %d", field,
                          name, final, NANO_ENV_MAX_ENTRIES);
    }
    json_t *set = json_array(), *deleted = json_array();
    json_object_foreach(vars, key, v) {
        if (rc != 0)
            break;
        char field[128], b[72];
        snprintf(field, sizeof field, "vars.%s", cp_service__shown(key, b, sizeof b));
        if ((rc = env_name_check(key, field, err)) != 0)
            break;
        const char *kind = json_string_value(json_object_get(kinds, key));
        if (kind != NULL && strcmp(kind, "secret") == 0) {
            rc = cp_error_set(err, 409, "name_conflict", field,
                              "%s is a secret of app %s; a name is either a var or a secret", key,
                              name);
            break;
        }
        if (json_is_null(v)) {
            if (kind == NULL)
                continue; /* absent already */
            if ((rc = del_var(svc, name, id, key, err)) != 0)
                break;
            json_object_del(kinds, key);
            json_array_append_new(deleted, json_string(key));
            continue;
        }
        if ((rc = put_var(svc, name, id, key, v, field, err)) != 0)
            break;
        json_object_set_new(kinds, key, json_string("var"));
        json_array_append_new(set, json_string(key));
    }
    if (rc == 0 && cp_service__is_deployed(app) && json_array_size(deleted) > 0)
        rc = cp_service__check_required(json_object_get(app, "required_env"), kinds, name, err);
    if (rc == 0 && json_array_size(set) + json_array_size(deleted) > 0)
        rc = cp_service__audit(svc, actor, "env.patch", name,
                               json_pack("{s:O, s:O}", "set", set, "deleted", deleted), err);
    if (rc == 0)
        rc = env_result(svc, id, result, err);
    json_decref(set);
    json_decref(deleted);
    json_decref(kinds);
    json_decref(app);
    return rc;
}

static int put_secret(cp_service *svc, const char *name, int64_t id, const char *key,
                      const char *value, size_t len, cp_error *err);
static int del_secret(cp_service *svc, const char *name, int64_t id, const char *key,
                      cp_error *err);

/* env.replace: the app's vars become exactly `vars` (a var not named there is removed) and,
 * when `secrets` is given, its secrets exactly those; otherwise secrets are untouched. One
 * transaction, so the data planes get it as one delta: no request sees half of it. A var
 * whose value is already the stored one is not written again. */
int cp_service__op_env_replace(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "vars", "secrets", NULL};
    const char *name, *key;
    json_t *app = NULL, *kinds = NULL, *stored = NULL, *v;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    json_t *vars = json_object_get(args, "vars");
    json_t *secrets = json_object_get(args, "secrets");
    if (rc == 0 && !json_is_object(vars))
        rc = cp_error_set(err, 400, "invalid_field", "vars",
                          "vars must be an object of {\"NAME\": value}");
    if (rc == 0 && secrets != NULL && !json_is_object(secrets))
        rc = cp_error_set(err, 400, "invalid_field", "secrets",
                          "secrets must be an object of {\"NAME\": \"value\"}");
    char field[128], b[72];
    json_object_foreach(vars, key, v) {
        if (rc != 0)
            break;
        snprintf(field, sizeof field, "vars.%s", cp_service__shown(key, b, sizeof b));
        if ((rc = env_name_check(key, field, err)) != 0)
            break;
        if (json_is_null(v))
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "%s: null; to remove a var, leave it out", field);
        else if (secrets != NULL && json_object_get(secrets, key) != NULL)
            rc = cp_error_set(err, 400, "name_conflict", field,
                              "%s is named both in vars and in secrets", key);
    }
    json_object_foreach(secrets, key, v) {
        if (rc != 0)
            break;
        snprintf(field, sizeof field, "secrets.%s", cp_service__shown(key, b, sizeof b));
        if ((rc = env_name_check(key, field, err)) != 0)
            break;
        if (!json_is_string(v) || json_string_length(v) == 0)
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "%s: a secret is a non-empty string", field);
        else if (json_string_length(v) > NANO_ENV_MAX_VALUE)
            rc = cp_error_set(err, 413, "too_large", field,
                              "%s: value is %zu bytes; the limit is %d", field,
                              json_string_length(v), NANO_ENV_MAX_VALUE);
    }
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0 && ((rc = cp_store_env_kinds(svc->st, id, &kinds)) != 0 ||
                    (rc = cp_store_env_vars(svc->st, id, &stored)) != 0))
        rc = cp_service__store_fail(svc, rc, "reading env", err);
    size_t n_secrets = 0;
    json_object_foreach(kinds, key, v) {
        if (strcmp(json_string_value(v), "secret") != 0)
            continue;
        n_secrets++;
        if (rc == 0 && secrets == NULL && json_object_get(vars, key) != NULL) {
            snprintf(field, sizeof field, "vars.%s", cp_service__shown(key, b, sizeof b));
            rc = cp_error_set(err, 409, "name_conflict", field,
                              "%s is a secret of app %s; a name is either a var or a secret "
                              "(give secrets too to replace both)",
                              key, name);
        }
    }
    size_t final = json_object_size(vars) +
                   (secrets != NULL ? json_object_size(secrets) : n_secrets);
    if (rc == 0 && final > NANO_ENV_MAX_ENTRIES)
        rc = cp_error_set(err, 413, "too_large", "vars",
                          "app %s would have %zu vars and secrets; the limit is %d", name, final,
                          NANO_ENV_MAX_ENTRIES);
    json_t *set = json_array(), *deleted = json_array();
    json_t *secrets_set = json_array(), *secrets_deleted = json_array();
    /* Removals first: a name that moves between vars and secrets is freed before it is put. */
    json_t *tmp;
    json_object_foreach_safe(kinds, tmp, key, v) {
        if (rc != 0)
            break;
        bool is_secret = strcmp(json_string_value(v), "secret") == 0;
        if (!is_secret && json_object_get(vars, key) == NULL) {
            rc = del_var(svc, name, id, key, err);
            json_array_append_new(deleted, json_string(key));
            json_object_del(kinds, key);
        } else if (is_secret && secrets != NULL && json_object_get(secrets, key) == NULL) {
            rc = del_secret(svc, name, id, key, err);
            json_array_append_new(secrets_deleted, json_string(key));
            json_object_del(kinds, key);
        }
    }
    json_object_foreach(vars, key, v) {
        if (rc != 0)
            break;
        json_t *old = json_object_get(stored, key);
        if (old != NULL && json_equal(old, v))
            continue;
        snprintf(field, sizeof field, "vars.%s", cp_service__shown(key, b, sizeof b));
        rc = put_var(svc, name, id, key, v, field, err);
        json_array_append_new(set, json_string(key));
        json_object_set_new(kinds, key, json_string("var"));
    }
    json_object_foreach(secrets, key, v) {
        if (rc != 0)
            break;
        rc = put_secret(svc, name, id, key, json_string_value(v), json_string_length(v), err);
        json_array_append_new(secrets_set, json_string(key));
        json_object_set_new(kinds, key, json_string("secret"));
    }
    if (rc == 0 && cp_service__is_deployed(app))
        rc = cp_service__check_required(json_object_get(app, "required_env"), kinds, name, err);
    if (rc == 0)
        rc = cp_service__audit(svc, actor, "env.replace", name,
                               json_pack("{s:O, s:O, s:O, s:O}", "set", set, "deleted", deleted,
                                         "secrets_set", secrets_set, "secrets_deleted",
                                         secrets_deleted),
                               err);
    if (rc == 0)
        rc = env_result(svc, id, result, err);
    json_decref(set);
    json_decref(deleted);
    json_decref(secrets_set);
    json_decref(secrets_deleted);
    json_decref(stored);
    json_decref(kinds);
    json_decref(app);
    return rc;
}

/* --- secrets -------------------------------------------------------------------------------- */

static int get_secret_key(json_t *args, const char **key, cp_error *err)
{
    int rc = cp_service__get_str(args, "key", true, key, err);
    return rc == 0 ? env_name_check(*key, "key", err) : rc;
}

/* put_secret: seals value (len bytes) as secret key of app name (row id) and stores it, with
 * its secret.put delta. */
static int put_secret(cp_service *svc, const char *name, int64_t id, const char *key,
                      const char *value, size_t len, cp_error *err)
{
    int rc = 0;
    cp_sealed sealed = {0};
    if (cp_secret_seal(&svc->key, name, key, value, len, &sealed) != 0)
        rc = cp_error_set(err, 500, "internal", NULL, "cannot encrypt the secret");
    if (rc == 0 && (rc = cp_store_secret_put(svc->st, id, key, &sealed)) != 0)
        rc = cp_service__store_fail(svc, rc, "writing a secret", err);
    if (rc == 0) {
        /* The config log carries the value sealed exactly as stored: never the plaintext. */
        char *ct = nano_xmalloc(4 * ((sealed.len + 2) / 3) + 1);
        char nonce[4 * ((CP_NONCE_BYTES + 2) / 3) + 1], tag[4 * ((CP_TAG_BYTES + 2) / 3) + 1];
        cp_base64(sealed.ciphertext, sealed.len, ct);
        cp_base64(sealed.nonce, CP_NONCE_BYTES, nonce);
        cp_base64(sealed.tag, CP_TAG_BYTES, tag);
        rc = cp_service__log_delta(svc, "secret.put", name,
                                   json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "app", name, "name",
                                             key, "ciphertext", ct, "nonce", nonce, "tag", tag,
                                             "key_id", sealed.key_id),
                                   err);
        nano_free(ct);
    }
    cp_sealed_fini(&sealed);
    return rc;
}

/* del_secret: removes secret key of app name (row id; NANO_ENOTFOUND when it has none),
 * with its secret.del delta. */
static int del_secret(cp_service *svc, const char *name, int64_t id, const char *key, cp_error *err)
{
    int rc = cp_store_secret_del(svc->st, id, key);
    if (rc == NANO_ENOTFOUND)
        return cp_error_set(err, 404, "secret_not_found", "key", "app %s has no secret %s", name,
                            key);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "deleting a secret", err);
    return cp_service__log_delta(svc, "secret.del", name,
                                 json_pack("{s:s, s:s}", "app", name, "name", key), err);
}

int cp_service__op_secrets_list(cp_service *svc, const cp_actor *actor, json_t *args,
                                json_t **result, cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *list = NULL;
    int64_t id = 0;
    int rc = cp_service__open_app(svc, args, cp_service__name_only, &name, &app, &id, err);
    if (rc == 0 && (rc = cp_store_secret_list(svc->st, id, &list)) != 0)
        rc = cp_service__store_fail(svc, rc, "listing secrets", err);
    if (rc == 0)
        *result = json_pack("{s:o}", "secrets", list);
    json_decref(app);
    return rc;
}

int cp_service__op_secrets_put(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "key", "value", NULL};
    const char *name, *key = NULL, *value = NULL;
    json_t *app = NULL, *kinds = NULL;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = get_secret_key(args, &key, err);
    if (rc == 0)
        rc = cp_service__get_str(args, "value", true, &value, err);
    size_t len = value ? json_string_length(json_object_get(args, "value")) : 0;
    if (rc == 0 && len == 0)
        rc = cp_error_set(err, 400, "invalid_field", "value",
                          "secret %s is empty; a secret needs a value (delete it instead)", key);
    if (rc == 0 && len > NANO_ENV_MAX_VALUE)
        rc = cp_error_set(err, 413, "too_large", "value", "secret %s is %zu bytes; the limit is %d",
                          key, len, NANO_ENV_MAX_VALUE);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0 && (rc = cp_store_env_kinds(svc->st, id, &kinds)) != 0)
        rc = cp_service__store_fail(svc, rc, "reading env names", err);
    const char *kind = rc == 0 ? json_string_value(json_object_get(kinds, key)) : NULL;
    if (rc == 0 && kind != NULL && strcmp(kind, "var") == 0)
        rc = cp_error_set(err, 409, "name_conflict", "key",
                          "%s is a var of app %s; a name is either a var or a secret", key, name);
    if (rc == 0 && kind == NULL && json_object_size(kinds) >= NANO_ENV_MAX_ENTRIES)
        rc = cp_error_set(err, 413, "too_large", "key",
                          "app %s would have more than %d vars and secrets", name,
                          NANO_ENV_MAX_ENTRIES);
    if (rc == 0)
        rc = put_secret(svc, name, id, key, value, len, err);
    if (rc == 0)
        rc = cp_service__audit(svc, actor, "secrets.put", name,
                               json_pack("{s:s, s:b}", "key", key, "created", kind == NULL), err);
    if (rc == 0)
        *result = json_pack("{s:s, s:s}", "name", key, "updated_at", cp_store_now(svc->st));
    json_decref(kinds);
    json_decref(app);
    return rc;
}

int cp_service__op_secrets_delete(cp_service *svc, const cp_actor *actor, json_t *args,
                                  json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "key", NULL};
    const char *name, *key = NULL;
    json_t *app = NULL;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = get_secret_key(args, &key, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0)
        rc = del_secret(svc, name, id, key, err);
    if (rc == 0 && cp_service__is_deployed(app))
        rc = cp_service__check_required_now(svc, app, id, name, err);
    if (rc == 0)
        rc = cp_service__audit(svc, actor, "secrets.delete", name, json_pack("{s:s}", "key", key),
                               err);
    if (rc == 0)
        *result = json_object();
    json_decref(app);
    return rc;
}

/* --- nodes, audit, version ------------------------------------------------------------------ */

/* nodes.remove: forgets a node that is gone for good (a decommissioned edge), so that drains
 * stop waiting for it: its rows in running drains go with it, and a drain left with no node
 * pending ends now (the app removed, app.remove logged). A node that still runs registers
 * again with its next hello or status report. */
int cp_service__op_nodes_remove(cp_service *svc, const cp_actor *actor, json_t *args,
                                json_t **result, cp_error *err)
{
    const char *name;
    int rc = cp_service__check_fields(args, cp_service__name_only, err);
    if (rc == 0)
        rc = cp_service__get_str(args, "name", true, &name, err);
    if (rc == 0 && !nano_msg_node_valid(name)) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "name",
                          "\"%s\" is not a valid node name: use 1 to 63 characters of A-Z, a-z, "
                          "0-9, '.', '_' and '-'",
                          cp_service__shown(name, b, sizeof b));
    }
    if (rc != 0)
        return rc;
    rc = cp_store_node_delete(svc->st, name);
    if (rc == NANO_ENOTFOUND)
        return cp_error_set(err, 404, "node_not_found", "name", "node %s is not registered", name);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "removing a node", err);
    bool changed = false;
    rc = cp_service__audit(svc, actor, "nodes.remove", NULL, json_pack("{s:s}", "node", name), err);
    if (rc == 0)
        rc = cp_service__finish_drains(svc, &changed, err);
    if (rc == 0)
        *result = json_pack("{s:s, s:b}", "name", name, "drains_ended", changed);
    return rc;
}

int cp_service__op_nodes_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                              cp_error *err)
{
    (void)actor;
    json_t *nodes = NULL;
    int64_t seq = 0;
    int rc = cp_service__check_fields(args, cp_service__no_fields, err);
    if (rc == 0 && ((rc = cp_store_node_list(svc->st, &nodes)) != 0 ||
                    (rc = cp_store_log_seq(svc->st, &seq)) != 0))
        rc = cp_service__store_fail(svc, rc, "listing nodes", err);
    if (rc != 0) {
        json_decref(nodes);
        return rc;
    }
    /* current: the node has applied everything nanocp has logged (it serves the latest
     * config), as of its last status report. */
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        json_object_set_new(
            n, "current",
            json_boolean(json_integer_value(json_object_get(n, "applied_seq")) == seq));
    }
    *result = json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "nodes", nodes);
    return rc;
}

static int get_count(json_t *args, const char *key, int64_t min, int64_t max, int64_t *out,
                     cp_error *err)
{
    json_t *v = json_object_get(args, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return cp_error_set(err, 400, "invalid_field", key,
                            "%s must be a whole number from %lld to %lld", key, (long long)min,
                            (long long)max);
    *out = json_integer_value(v);
    return 0;
}

int cp_service__op_audit_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                              cp_error *err)
{
    (void)actor;
    static const char *const fields[] = {"limit", "before_id", NULL};
    int64_t limit = AUDIT_DEFAULT_LIMIT, before = 0;
    json_t *entries = NULL;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = get_count(args, "limit", 1, AUDIT_MAX_LIMIT, &limit, err);
    if (rc == 0)
        rc = get_count(args, "before_id", 1, INT64_MAX, &before, err);
    if (rc == 0 && (rc = cp_store_audit_list(svc->st, limit, before, &entries)) != 0)
        rc = cp_service__store_fail(svc, rc, "reading the audit log", err);
    if (rc == 0)
        *result = json_pack("{s:o}", "entries", entries);
    return rc;
}

int cp_service__op_version(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                           cp_error *err)
{
    (void)actor;
    int64_t schema = 0, seq = 0;
    int rc = cp_service__check_fields(args, cp_service__no_fields, err);
    if (rc == 0 && ((rc = cp_store_schema_version(svc->st, &schema)) != 0 ||
                    (rc = cp_store_log_seq(svc->st, &seq)) != 0))
        rc = cp_service__store_fail(svc, rc, "reading versions", err);
    if (rc == 0)
        *result = json_pack("{s:s, s:I, s:I}", "version", NANO_VERSION, "schema_version",
                            (json_int_t)schema, "config_seq", (json_int_t)seq);
    return rc;
}
