/* service.c: every admin operation once (contract in service.h). An op checks its args, and a
 * change runs in one transaction that the dispatcher opens before and commits after it: the
 * change, its config-log deltas and its audit entry commit together or not at all. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include "service.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "buf.h"
#include "check.h"
#include "config.h"
#include "dotenv.h"
#include "env.h"
#include "file.h"
#include "log.h"
#include "mpjson.h"
#include "msg.h"
#include "secrets.h"
#include "snapshot.h"
#include "sha256.h"
#include "store.h"
#include "token.h"

#ifndef NANO_VERSION
#define NANO_VERSION "0.0.0"
#endif

#define MAX_HOSTNAMES 100
#define MAX_MODULES 256
#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_MAX_LIMIT 1000

typedef struct cp_token {
    char name[64];
    unsigned char hash[NANO_TOKEN_DIGEST_BYTES];
} cp_token;

struct cp_service {
    char *data_dir;
    char *checker;   /* nano-dp, for the load check of each deployment; NULL: none */
    char *db_path;
    char *token_path;
    char key_source[4096];
    cp_store *st;
    cp_master_key key;
    cp_token *tokens;
    size_t n_tokens;
};

/* --- errors --------------------------------------------------------------------------------- */

int cp_error_set(cp_error *err, int status, const char *code, const char *field,
                 const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        snprintf(err->code, sizeof err->code, "%s", code);
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        err->status = status;
    }
    switch (status) {
    case 400: return NANO_EINVAL;
    case 401: return -EACCES;
    case 404: return NANO_ENOTFOUND;
    case 409: return NANO_ESTATE;
    case 413: return NANO_ETOOBIG;
    default: return NANO_EIO;
    }
}

/* A store failure: logged with SQLite's message (which holds no values: they are bound),
 * answered as internal. */
static int store_fail(cp_service *svc, int rc, const char *what, cp_error *err)
{
    NANO_ERROR("cp.store_failed", "what=%s rc=%d error=%s", what, rc, cp_store_errmsg(svc->st));
    return cp_error_set(err, 500, "internal", NULL, "database error while %s", what);
}

/* Names from input go into one-line messages: control characters out, length bounded. */
static const char *shown(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s != NULL && s[n] != '\0' && n + 1 < cap && n < 64; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[n] = '\0';
    return buf;
}

/* --- args ----------------------------------------------------------------------------------- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Every key of args is one the op takes. */
static int check_fields(json_t *args, const char *const *allowed, cp_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL && !known; i++)
            known = strcmp(allowed[i], key) == 0;
        if (!known) {
            char b[72];
            return cp_error_set(err, 400, "bad_request", shown(key, b, sizeof b),
                                "unknown field \"%s\"", b);
        }
    }
    return 0;
}

static int get_str(json_t *args, const char *key, bool required, const char **out, cp_error *err)
{
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (v == NULL || (json_is_null(v) && !required))
        return required ? cp_error_set(err, 400, "invalid_field", key, "%s is required", key) : 0;
    if (!json_is_string(v))
        return cp_error_set(err, 400, "invalid_field", key, "%s must be a string, not %s", key,
                            type_name(v));
    *out = json_string_value(v);
    return 0;
}

static int get_bool(json_t *args, const char *key, bool *out, cp_error *err)
{
    json_t *v = json_object_get(args, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return cp_error_set(err, 400, "invalid_field", key, "%s must be true or false, not %s",
                            key, type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* args.name: a valid app name. */
static int get_app_name(json_t *args, const char **out, cp_error *err)
{
    int rc = get_str(args, "name", true, out, err);
    if (rc == 0 && !nano_app_name_valid(*out)) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "name",
                          "\"%s\" is not a valid app name: use 1 to 63 characters of a-z, 0-9 "
                          "and '-', starting with a letter or digit",
                          shown(*out, b, sizeof b));
    }
    return rc;
}

/* The app named in args: its row in *app (owned) and its id. */
static int load_app(cp_service *svc, const char *name, json_t **app, int64_t *id, cp_error *err)
{
    int rc = cp_store_app_get(svc->st, name, app);
    if (rc == NANO_ENOTFOUND)
        return cp_error_set(err, 404, "app_not_found", "name", "app %s does not exist", name);
    if (rc != 0)
        return store_fail(svc, rc, "reading an app", err);
    *id = json_integer_value(json_object_get(*app, "id"));
    return 0;
}

static int refuse_draining(json_t *app, const char *name, cp_error *err)
{
    if (strcmp(json_string_value(json_object_get(app, "state")), "active") == 0)
        return 0;
    return cp_error_set(err, 409, "app_draining", "name",
                        "app %s is being removed: it takes no more changes", name);
}

/* --- result shapes -------------------------------------------------------------------------- */

/* The API's APP from a store row (a new object). */
static json_t *app_view(json_t *row)
{
    json_t *app = json_deep_copy(row);
    json_object_del(app, "id");
    json_object_del(app, "active_sha256");
    return app;
}

static json_t *deployment_view(json_t *row)
{
    json_t *d = json_deep_copy(row);
    json_object_del(d, "id");
    return d;
}

/* --- logs ----------------------------------------------------------------------------------- */

static int log_delta(cp_service *svc, const char *op, const char *app, json_t *payload,
                     cp_error *err)
{
    int rc = cp_store_log_append(svc->st, op, app, payload, NULL);
    json_decref(payload);
    return rc == 0 ? 0 : store_fail(svc, rc, "appending to the config log", err);
}

/* app.put: what a data plane needs to route and limit the app, and which code it runs. */
static int log_app_put(cp_service *svc, const char *name, cp_error *err)
{
    json_t *row = NULL;
    int rc = cp_store_app_get(svc->st, name, &row);
    if (rc != 0)
        return store_fail(svc, rc, "reading an app", err);
    json_t *p = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "app", name,
                          "hostnames", json_object_get(row, "hostnames"), "path_prefix",
                          json_object_get(row, "path_prefix"), "default",
                          json_object_get(row, "default"), "node_compat",
                          json_object_get(row, "node_compat"), "required_env",
                          json_object_get(row, "required_env"), "limits",
                          json_object_get(row, "limits"), "state", json_object_get(row, "state"),
                          "version", json_object_get(row, "active_version"), "sha256",
                          json_object_get(row, "active_sha256"), "egress",
                          json_object_get(row, "egress"));
    json_decref(row);
    return log_delta(svc, "app.put", name, p, err);
}

static int audit(cp_service *svc, const cp_actor *actor, const char *op, const char *app,
                 json_t *detail, cp_error *err)
{
    int rc = cp_store_audit_append(svc->st, actor && actor->who ? actor->who : "unknown",
                                   actor && actor->via ? actor->via : "internal", op, app, detail);
    json_decref(detail);
    return rc == 0 ? 0 : store_fail(svc, rc, "appending to the audit log", err);
}

/* --- required env --------------------------------------------------------------------------- */

/* Every name of required (a JSON array) that kinds ({NAME: kind}) lacks. */
static int check_required(json_t *required, json_t *kinds, const char *app, cp_error *err)
{
    nano_buf missing = NANO_BUF_INIT;
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(required, i, v) {
        if (json_object_get(kinds, json_string_value(v)) == NULL)
            nano_buf_appendf(&missing, "%s%s", n++ ? ", " : "", json_string_value(v));
    }
    int rc = 0;
    if (n > 0)
        rc = cp_error_set(err, 409, "required_env_missing", "required_env",
                          "app %s: required env missing: %s", app, nano_buf_cstr(&missing));
    nano_buf_fini(&missing);
    return rc;
}

static int check_required_now(cp_service *svc, json_t *app, int64_t id, const char *name,
                              cp_error *err)
{
    json_t *kinds = NULL;
    int rc = cp_store_env_kinds(svc->st, id, &kinds);
    if (rc != 0)
        return store_fail(svc, rc, "reading env names", err);
    rc = check_required(json_object_get(app, "required_env"), kinds, name, err);
    json_decref(kinds);
    return rc;
}

static bool is_deployed(json_t *app)
{
    return json_integer_value(json_object_get(app, "active_version")) > 0;
}

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
                            "hostnames must be an array of hostnames, not %s", type_name(hs));
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
                              field, type_name(v));
            break;
        }
        if (!nano_hostname_valid(json_string_value(v))) {
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "\"%s\" is not a valid hostname: use labels of letters, digits and "
                              "'-' separated by '.', optionally after \"*.\" for a wildcard",
                              shown(json_string_value(v), b, sizeof b));
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
                            "required_env must be an array of env names, not %s", type_name(r));
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
                              "path_prefix must be a string or null, not %s", type_name(p));
        else if (!nano_path_prefix_valid(json_string_value(p)))
            rc = cp_error_set(err, 400, "invalid_field", "path_prefix",
                              "\"%s\" is not a valid path prefix: use \"/seg\" or \"/seg/seg\" "
                              "(printable ASCII, no trailing '/', no empty segment, no '?' or "
                              "'#')",
                              shown(json_string_value(p), b, sizeof b));
        else
            f->path_prefix = json_string_value(p);
    } else if (rc == 0 && p != NULL) {
        f->path_prefix = NULL;
    }
    if (rc == 0)
        rc = get_bool(args, "default", &f->is_default, err);
    if (rc == 0)
        rc = get_bool(args, "node_compat", &f->node_compat, err);
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
            return store_fail(svc, rc, "checking hostnames", err);
    }
    if (f->is_default) {
        int rc = cp_store_default_owner(svc->st, self, owner);
        if (rc == 0)
            return cp_error_set(err, 409, "default_taken", "default",
                                "app %s is already the default app", owner);
        if (rc != NANO_ENOTFOUND)
            return store_fail(svc, rc, "checking the default app", err);
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
    int rc = *id == 0 ? cp_store_app_insert(svc->st, &w, id) : cp_store_app_update(svc->st, *id, &w);
    free(limits);
    free(required);
    free(egress);
    if (rc == NANO_ESTATE) /* a UNIQUE the checks above should have caught first */
        return cp_error_set(err, 409, "hostname_taken", "hostnames",
                            "a hostname or the default role of app %s is already claimed", name);
    return rc == 0 ? 0 : store_fail(svc, rc, "writing an app", err);
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
        return store_fail(svc, rc, "reading an app", err);
    *result = app_view(row);
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

static int op_apps_create(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                          cp_error *err)
{
    const char *name;
    app_fields f = {.required_env = json_array(), .limits = nano_limits_defaults()};
    int rc = check_fields(args, app_field_names, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = read_app_fields(args, &f, err);
    json_t *existing = NULL;
    if (rc == 0) {
        int found = cp_store_app_get(svc->st, name, &existing);
        if (found == 0)
            rc = cp_error_set(err, 409, "app_exists", "name", "app %s already exists", name);
        else if (found != NANO_ENOTFOUND)
            rc = store_fail(svc, found, "reading an app", err);
    }
    json_decref(existing);
    int64_t id = 0;
    if (rc == 0)
        rc = check_claims(svc, &f, 0, err);
    if (rc == 0)
        rc = write_app(svc, name, &f, &id, err);
    if (rc == 0)
        rc = log_app_put(svc, name, err);
    if (rc == 0) {
        json_t *hosts = json_array();
        for (size_t i = 0; i < f.n_hostnames; i++)
            json_array_append_new(hosts, json_string(f.hostnames[i]));
        rc = audit(svc, actor, "apps.create", name, json_pack("{s:o}", "hostnames", hosts), err);
    }
    if (rc == 0)
        rc = app_result(svc, name, result, err);
    app_fields_fini(&f);
    return rc;
}

static int op_apps_update(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                          cp_error *err)
{
    const char *name;
    json_t *app = NULL;
    int64_t id = 0;
    app_fields f = {0};
    int rc = check_fields(args, app_field_names, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
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
    if (rc == 0 && is_deployed(app)) {
        json_t *kinds = NULL;
        rc = cp_store_env_kinds(svc->st, id, &kinds);
        rc = rc == 0 ? check_required(f.required_env, kinds, name, err)
                     : store_fail(svc, rc, "reading env names", err);
        json_decref(kinds);
    }
    if (rc == 0)
        rc = write_app(svc, name, &f, &id, err);
    if (rc == 0)
        rc = log_app_put(svc, name, err);
    if (rc == 0)
        rc = audit(svc, actor, "apps.update", name, json_pack("{s:o}", "fields", changed_fields(args)),
                   err);
    if (rc == 0)
        rc = app_result(svc, name, result, err);
    app_fields_fini(&f);
    json_decref(app);
    return rc;
}

/* --- reads ---------------------------------------------------------------------------------- */

static const char *const name_only[] = {"name", NULL};
static const char *const no_fields[] = {NULL};

static int op_apps_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                        cp_error *err)
{
    (void)actor;
    json_t *rows = NULL;
    int rc = check_fields(args, no_fields, err);
    if (rc == 0 && (rc = cp_store_app_list(svc->st, &rows)) != 0)
        return store_fail(svc, rc, "listing apps", err);
    if (rc != 0)
        return rc;
    json_t *apps = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_array_append_new(apps, app_view(row));
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

static int op_apps_get(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                       cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *dep = NULL, *nodes = NULL;
    int64_t id = 0;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0 && is_deployed(app)) {
        rc = cp_store_deployment_get(svc->st, id,
                                     json_integer_value(json_object_get(app, "active_version")),
                                     &dep);
        if (rc != 0)
            rc = store_fail(svc, rc, "reading a deployment", err);
    }
    if (rc == 0 && (rc = cp_store_node_list(svc->st, &nodes)) != 0)
        rc = store_fail(svc, rc, "listing nodes", err);
    json_t *drain = NULL;
    if (rc == 0 && strcmp(json_string_value(json_object_get(app, "state")), "draining") == 0) {
        int found = cp_store_drain_get(svc->st, name, &drain);
        if (found != 0 && found != NANO_ENOTFOUND)
            rc = store_fail(svc, found, "reading a drain", err);
    }
    if (rc == 0) {
        *result = app_view(app);
        json_object_set_new(*result, "deployment", dep ? deployment_view(dep) : json_null());
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

static int op_apps_remove(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                          cp_error *err)
{
    const char *name;
    json_t *app = NULL;
    int64_t id = 0, n_nodes = 0;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0 && strcmp(json_string_value(json_object_get(app, "state")), "draining") == 0) {
        *result = json_pack("{s:s, s:s}", "name", name, "state", "draining"); /* already */
        json_decref(app);
        return 0;
    }
    if (rc == 0 && (rc = cp_store_node_count(svc->st, &n_nodes)) != 0)
        rc = store_fail(svc, rc, "counting nodes", err);
    nano_limits lim = nano_limits_defaults();
    if (rc == 0) {
        nano_error e;
        nano_limits_from_json(json_object_get(app, "limits"), &lim, NULL, NULL, &e);
        rc = log_delta(svc, "app.drain", name,
                       json_pack("{s:s, s:I}", "app", name, "timeout_ms",
                                 (json_int_t)lim.drain_timeout_ms),
                       err);
    }
    const char *state = n_nodes == 0 ? "removed" : "draining";
    if (rc == 0 && n_nodes == 0) {
        /* No node to wait for: the drain is over as soon as it starts. */
        rc = cp_store_app_delete(svc->st, id);
        if (rc != 0)
            rc = store_fail(svc, rc, "deleting an app", err);
        if (rc == 0)
            rc = log_delta(svc, "app.remove", name, json_pack("{s:s}", "app", name), err);
    } else if (rc == 0) {
        /* The drain ends in finish_drains (below), run by the distribution layer when the
         * last node acks (drain.ack, or a status that no longer lists the app) or when the
         * timeout passes: then the app is deleted and app.remove appended. */
        int64_t drain_id;
        rc = cp_store_app_set_state(svc->st, id, "draining");
        if (rc == 0)
            rc = cp_store_drain_start(svc->st, id, name, lim.drain_timeout_ms, &drain_id);
        if (rc != 0)
            rc = store_fail(svc, rc, "starting a drain", err);
        if (rc == 0)
            rc = log_app_put(svc, name, err);
    }
    if (rc == 0)
        rc = audit(svc, actor, "apps.remove", name,
                   json_pack("{s:s, s:I}", "state", state, "nodes", (json_int_t)n_nodes), err);
    if (rc == 0)
        *result = json_pack("{s:s, s:s}", "name", name, "state", state);
    json_decref(app);
    return rc;
}

static int op_apps_drain(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                         cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *drain = NULL;
    int64_t id = 0;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc != 0)
        return rc;
    const char *state = json_string_value(json_object_get(app, "state"));
    int found = strcmp(state, "draining") == 0 ? cp_store_drain_get(svc->st, name, &drain)
                                                : NANO_ENOTFOUND;
    if (found != 0 && found != NANO_ENOTFOUND)
        rc = store_fail(svc, found, "reading a drain", err);
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

/* --- deployments ---------------------------------------------------------------------------- */


static int cmp_module(const void *a, const void *b)
{
    return strcmp(((const cp_module *)a)->name, ((const cp_module *)b)->name);
}

/* Reads args.modules into mods (sorted by name; borrowed from args). */
static int read_modules(json_t *args, const char *main, cp_module **out, size_t *n_out,
                        cp_error *err)
{
    json_t *mods = json_object_get(args, "modules");
    if (mods == NULL)
        return cp_error_set(err, 400, "invalid_field", "modules", "modules is required");
    if (!json_is_object(mods) || json_object_size(mods) == 0)
        return cp_error_set(err, 400, "invalid_field", "modules",
                            "modules must be an object of {\"file.js\": \"source\"}, with at "
                            "least one module");
    if (json_object_size(mods) > MAX_MODULES)
        return cp_error_set(err, 413, "too_large", "modules",
                            "a deployment has at most %d modules", MAX_MODULES);
    cp_module *list = nano_xcalloc(json_object_size(mods), sizeof *list);
    size_t n = 0, total = 0;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(mods, key, v) {
        char field[300], b[72];
        snprintf(field, sizeof field, "modules[\"%s\"]", shown(key, b, sizeof b));
        if (!nano_msg_module_name_valid(key)) {
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "\"%s\" is not a valid module name: use a relative path of "
                              "letters, digits, '.', '_' and '-' (no \".\" or \"..\" segments)",
                              b);
            break;
        }
        if (!json_is_string(v)) {
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "a module's source must be a string, not %s", type_name(v));
            break;
        }
        total += json_string_length(v);
        if (total > NANO_CODE_MAX_BYTES) {
            rc = cp_error_set(err, 413, "too_large", "modules",
                              "the modules are larger than the %u MiB limit",
                              NANO_CODE_MAX_BYTES / (1024 * 1024));
            break;
        }
        list[n].name = key;
        list[n].data = json_string_value(v);
        list[n].len = json_string_length(v);
        nano_sha256_hex(list[n].data, list[n].len, list[n].sha256);
        n++;
    }
    if (rc == 0 && json_object_get(mods, main) == NULL) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "main",
                          "main \"%s\" is not one of the modules", shown(main, b, sizeof b));
    }
    if (rc != 0) {
        nano_free(list);
        return rc;
    }
    qsort(list, n, sizeof *list, cmp_module);
    *out = list;
    *n_out = n;
    return 0;
}

/* The bundle's hash (shared/msg.h's rule); mods are in name order (read_modules sorts). */
static void bundle_sha256(const cp_module *mods, size_t n, char out[65])
{
    const char **names = nano_xcalloc(n, sizeof *names), **shas = nano_xcalloc(n, sizeof *shas);
    for (size_t i = 0; i < n; i++) {
        names[i] = mods[i].name;
        shas[i] = mods[i].sha256;
    }
    nano_msg_bundle_sha256(names, shas, n, out);
    nano_free(names);
    nano_free(shas);
}

/* --- the load check of a deployment (shared/check.h) ----------------------------------------- */

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Writes mods under dir (module names are relative paths: read_modules checked them). */
static int write_modules(const char *dir, const cp_module *mods, size_t n, nano_error *err)
{
    nano_buf path = NANO_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        nano_buf_reset(&path);
        nano_buf_appendf(&path, "%s/%s", dir, mods[i].name);
        char *p = (char *)nano_buf_cstr(&path);
        for (char *slash = strchr(p + strlen(dir) + 1, '/'); slash != NULL;
             slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                rc = nano_error_set(err, -errno, "check_failed", "mkdir %s: %s", p,
                                    strerror(errno));
            *slash = '/';
        }
        int fd = rc == 0 ? open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
        if (rc == 0 && fd < 0)
            rc = nano_error_set(err, -errno, "check_failed", "create %s: %s", p, strerror(errno));
        for (size_t off = 0; rc == 0 && off < mods[i].len;) {
            ssize_t w = write(fd, mods[i].data + off, mods[i].len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = nano_error_set(err, NANO_EIO, "check_failed", "write %s: %s", p,
                                    strerror(errno));
            else
                off += (size_t)w;
        }
        if (fd >= 0)
            close(fd);
    }
    nano_buf_fini(&path);
    return rc;
}

/* The app's env as its nodes get it (vars, and secret values decrypted), for a top level
 * that reads process.env. An entry that cannot be read is left out (its nodes would not
 * have it either). */
static void app_env(cp_service *svc, json_t *app, nano_env *env)
{
    json_t *jid = json_object_get(app, "id");
    const char *name = json_string_value(json_object_get(app, "name"));
    if (!json_is_integer(jid) || name == NULL)
        return;
    int64_t id = json_integer_value(jid);
    json_t *vars = NULL, *secrets = NULL;
    nano_error e = {0};
    const char *k;
    json_t *v;
    if (cp_store_env_vars(svc->st, id, &vars) == 0) {
        json_object_foreach(vars, k, v) {
            if (json_is_string(v)) {
                nano_env_set(env, k, json_string_value(v), json_string_length(v), false, &e);
            } else {
                char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                if (text != NULL)
                    nano_env_set_json(env, k, text, strlen(text), &e);
                free(text);
            }
        }
    }
    if (cp_service_secret_values(svc, id, name, &secrets) == 0) {
        json_object_foreach(secrets, k, v) {
            nano_env_set(env, k, json_string_value(v), json_string_length(v), true, &e);
        }
    }
    json_decref(vars);
    json_decref(secrets);
}

/* check_bundle: the bundle's main module loads as app would load it (its limits,
 * node_compat and env; NULL: the defaults), checked by `nano-dp check` in a child process. 0 when it
 * loads or when no checker is configured; NANO_EINVAL with err (the checker's id and one
 * line, module paths relative to the bundle) when it does not; another code when the check
 * could not be made. Blocks the service thread for the check (about 0.1 s; at most the load
 * CPU budget plus NANO_CHECK_SLACK_MS). */
static int check_bundle(cp_service *svc, json_t *app, const char *main, const cp_module *mods,
                        size_t n, nano_error *err)
{
    if (svc->checker == NULL)
        return 0;
    nano_limits lim = nano_limits_defaults();
    json_t *jl = json_object_get(app, "limits");
    if (json_is_object(jl) && nano_limits_from_json(jl, &lim, "limits.", NULL, err) != 0)
        lim = nano_limits_defaults(); /* stored by this service: valid; defaults otherwise */
    nano_buf dir = NANO_BUF_INIT;
    nano_buf_appendf(&dir, "%s/check.XXXXXX", svc->data_dir);
    if (mkdtemp((char *)nano_buf_cstr(&dir)) == NULL) {
        int rc = nano_error_set(err, -errno, "check_failed", "cannot make %s: %s",
                                nano_buf_cstr(&dir), strerror(errno));
        nano_buf_fini(&dir);
        return rc;
    }
    const char *d = nano_buf_cstr(&dir);
    int rc = write_modules(d, mods, n, err);
    if (rc == 0) {
        nano_env env;
        nano_env_init(&env);
        app_env(svc, app, &env);
        nano_buf path = NANO_BUF_INIT;
        nano_buf_appendf(&path, "%s/%s", d, main);
        nano_check_options co = {.checker = svc->checker,
                                 .path = nano_buf_cstr(&path),
                                 .name = app != NULL ? json_string_value(json_object_get(app, "name"))
                                                     : NULL,
                                 .cpu_ms = nano_check_cpu_ms(lim.cpu_ms),
                                 .memory_mb = lim.memory_mb,
                                 .node_compat = json_is_true(json_object_get(app, "node_compat")),
                                 .env = &env};
        rc = nano_check_module(&co, err);
        nano_buf_fini(&path);
        nano_env_fini(&env);
    }
    if (rc != 0) {
        /* The bundle's own names: "index.js:3:5: ...", not this scratch directory's. */
        char *msg = err->message;
        size_t dl = strlen(d);
        for (char *at = strstr(msg, d); at != NULL; at = strstr(at, d)) {
            size_t cut = dl + (at[dl] == '/' ? 1 : 0);
            memmove(at, at + cut, strlen(at + cut) + 1);
        }
    }
    nftw(d, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    nano_buf_fini(&dir);
    return rc;
}

/* code.put then app.put for the deployment that just became active. *//* code.put then app.put for the deployment that just became active. */
static int log_activation(cp_service *svc, const char *name, json_t *dep, cp_error *err)
{
    json_t *p = json_pack("{s:s, s:O, s:O, s:O, s:O}", "app", name, "version",
                          json_object_get(dep, "version"), "sha256", json_object_get(dep, "sha256"),
                          "main", json_object_get(dep, "main"), "modules",
                          json_object_get(dep, "modules"));
    int rc = log_delta(svc, "code.put", name, p, err);
    return rc == 0 ? log_app_put(svc, name, err) : rc;
}

static int op_apps_deploy(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                          cp_error *err)
{
    static const char *const fields[] = {"name", "main", "modules", NULL};
    const char *name, *main = NULL;
    json_t *app = NULL, *dep = NULL;
    int64_t id = 0, dep_id = 0, version = 0;
    cp_module *mods = NULL;
    size_t n_mods = 0;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = get_str(args, "main", true, &main, err);
    if (rc == 0 && !nano_msg_module_name_valid(main)) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "main", "\"%s\" is not a valid module name",
                          shown(main, b, sizeof b));
    }
    if (rc == 0)
        rc = read_modules(args, main, &mods, &n_mods, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
    if (rc == 0)
        rc = check_required_now(svc, app, id, name, err);
    if (rc == 0) {
        /* A version that does not load never becomes active (its nodes would answer 500). */
        nano_error ce = {0};
        uint64_t t0 = mono_ms();
        int crc = check_bundle(svc, app, main, mods, n_mods, &ce);
        if (crc == NANO_EINVAL) {
            NANO_WARN("cp.deploy_refused", "app=%s error_id=%s check_ms=%llu error=%s", name,
                      ce.id, (unsigned long long)(mono_ms() - t0), ce.message);
            rc = cp_error_set(err, 400, "module_invalid", "modules", "%s (%s)", ce.message, ce.id);
        } else if (crc != 0) {
            NANO_ERROR("cp.deploy_check_failed", "app=%s error=%s", name, ce.message);
            rc = cp_error_set(err, 500, "internal", "", "cannot check the module: %s",
                              ce.message);
        }
    }
    char sha[65];
    if (rc == 0) {
        bundle_sha256(mods, n_mods, sha);
        rc = cp_store_deployment_insert(svc->st, id, sha, main, mods, n_mods,
                                        actor && actor->who ? actor->who : "unknown", &dep_id,
                                        &version);
        if (rc == 0)
            rc = cp_store_app_activate(svc->st, id, dep_id);
        if (rc == 0)
            rc = cp_store_deployment_get(svc->st, id, version, &dep);
        if (rc != 0)
            rc = store_fail(svc, rc, "storing a deployment", err);
    }
    if (rc == 0)
        rc = log_activation(svc, name, dep, err);
    if (rc == 0)
        rc = audit(svc, actor, "apps.deploy", name,
                   json_pack("{s:I, s:s, s:I, s:O}", "version", (json_int_t)version, "sha256", sha,
                             "modules", (json_int_t)n_mods, "size", json_object_get(dep, "size")),
                   err);
    if (rc == 0)
        *result = deployment_view(dep);
    nano_free(mods);
    json_decref(app);
    json_decref(dep);
    return rc;
}

static int op_deployments_list(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *rows = NULL;
    int64_t id = 0;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0 && (rc = cp_store_deployment_list(svc->st, id, &rows)) != 0)
        rc = store_fail(svc, rc, "listing deployments", err);
    if (rc == 0) {
        json_t *list = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            json_array_append_new(list, deployment_view(row));
        }
        *result = json_pack("{s:o}", "deployments", list);
    }
    json_decref(app);
    json_decref(rows);
    return rc;
}

static int op_apps_rollback(cp_service *svc, const cp_actor *actor, json_t *args,
                            json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "version", NULL};
    const char *name;
    json_t *app = NULL, *dep = NULL;
    int64_t id = 0;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    json_t *jv = json_object_get(args, "version");
    if (rc == 0 && (!json_is_integer(jv) || json_integer_value(jv) < 1))
        rc = cp_error_set(err, 400, "invalid_field", "version",
                          "version must be a whole number of 1 or more");
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
    int64_t version = rc == 0 ? json_integer_value(jv) : 0;
    if (rc == 0) {
        int found = cp_store_deployment_get(svc->st, id, version, &dep);
        if (found == NANO_ENOTFOUND)
            rc = cp_error_set(err, 404, "version_not_found", "version",
                              "app %s has no version %lld", name, (long long)version);
        else if (found != 0)
            rc = store_fail(svc, found, "reading a deployment", err);
    }
    if (rc == 0 && json_is_true(json_object_get(dep, "active"))) { /* nothing to change */
        *result = deployment_view(dep);
        json_decref(dep);
        json_decref(app);
        return 0;
    }
    if (rc == 0)
        rc = check_required_now(svc, app, id, name, err);
    if (rc == 0) {
        json_int_t from = json_integer_value(json_object_get(app, "active_version"));
        rc = cp_store_app_activate(svc->st, id, json_integer_value(json_object_get(dep, "id")));
        json_decref(dep);
        dep = NULL;
        if (rc == 0)
            rc = cp_store_deployment_get(svc->st, id, version, &dep);
        if (rc != 0)
            rc = store_fail(svc, rc, "activating a deployment", err);
        if (rc == 0)
            rc = log_activation(svc, name, dep, err);
        if (rc == 0)
            rc = audit(svc, actor, "apps.rollback", name,
                       json_pack("{s:I, s:I}", "from", from, "to", (json_int_t)version), err);
    }
    if (rc == 0)
        *result = deployment_view(dep);
    json_decref(app);
    json_decref(dep);
    return rc;
}

/* --- env ------------------------------------------------------------------------------------ */

static int env_result(cp_service *svc, int64_t id, json_t **result, cp_error *err)
{
    json_t *vars = NULL, *secrets = NULL;
    int rc = cp_store_env_vars(svc->st, id, &vars);
    if (rc == 0)
        rc = cp_store_secret_list(svc->st, id, &secrets);
    if (rc != 0) {
        json_decref(vars);
        return store_fail(svc, rc, "reading env", err);
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

static int op_env_get(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                      cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL;
    int64_t id = 0;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
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
        rc = store_fail(svc, rc, "writing a var", err);
    free(text);
    if (rc == 0)
        rc = log_delta(svc, "env.put", name,
                       json_pack("{s:s, s:s, s:O}", "app", name, "name", key, "value", v), err);
    return rc;
}

/* del_var: removes var key of app name (row id), with its env.del delta. */
static int del_var(cp_service *svc, const char *name, int64_t id, const char *key, cp_error *err)
{
    int rc = cp_store_env_del(svc->st, id, key);
    if (rc != 0)
        return store_fail(svc, rc, "deleting a var", err);
    return log_delta(svc, "env.del", name, json_pack("{s:s, s:s}", "app", name, "name", key), err);
}

static int op_env_patch(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                        cp_error *err)
{
    static const char *const fields[] = {"name", "vars", NULL};
    const char *name;
    json_t *app = NULL, *kinds = NULL;
    int64_t id = 0;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    json_t *vars = json_object_get(args, "vars");
    if (rc == 0 && !json_is_object(vars))
        rc = cp_error_set(err, 400, "invalid_field", "vars",
                          "vars must be an object of {\"NAME\": value or null}");
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
    if (rc == 0 && (rc = cp_store_env_kinds(svc->st, id, &kinds)) != 0)
        rc = store_fail(svc, rc, "reading env names", err);
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
        snprintf(field, sizeof field, "vars.%s", shown(first_new, b, sizeof b));
        rc = cp_error_set(err, 413, "too_large", field,
                          "%s: app %s would have %zu vars and secrets; the limit is %d", field,
                          name, final, NANO_ENV_MAX_ENTRIES);
    }
    json_t *set = json_array(), *deleted = json_array();
    json_object_foreach(vars, key, v) {
        if (rc != 0)
            break;
        char field[128], b[72];
        snprintf(field, sizeof field, "vars.%s", shown(key, b, sizeof b));
        if ((rc = env_name_check(key, field, err)) != 0)
            break;
        const char *kind = json_string_value(json_object_get(kinds, key));
        if (kind != NULL && strcmp(kind, "secret") == 0) {
            rc = cp_error_set(err, 409, "name_conflict", field,
                              "%s is a secret of app %s; a name is either a var or a secret",
                              key, name);
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
    if (rc == 0 && is_deployed(app) && json_array_size(deleted) > 0)
        rc = check_required(json_object_get(app, "required_env"), kinds, name, err);
    if (rc == 0 && json_array_size(set) + json_array_size(deleted) > 0)
        rc = audit(svc, actor, "env.patch", name,
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
static int op_env_replace(cp_service *svc, const cp_actor *actor, json_t *args,
                          json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "vars", "secrets", NULL};
    const char *name, *key;
    json_t *app = NULL, *kinds = NULL, *stored = NULL, *v;
    int64_t id = 0;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
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
        snprintf(field, sizeof field, "vars.%s", shown(key, b, sizeof b));
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
        snprintf(field, sizeof field, "secrets.%s", shown(key, b, sizeof b));
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
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
    if (rc == 0 && ((rc = cp_store_env_kinds(svc->st, id, &kinds)) != 0 ||
                    (rc = cp_store_env_vars(svc->st, id, &stored)) != 0))
        rc = store_fail(svc, rc, "reading env", err);
    size_t n_secrets = 0;
    json_object_foreach(kinds, key, v) {
        if (strcmp(json_string_value(v), "secret") != 0)
            continue;
        n_secrets++;
        if (rc == 0 && secrets == NULL && json_object_get(vars, key) != NULL) {
            snprintf(field, sizeof field, "vars.%s", shown(key, b, sizeof b));
            rc = cp_error_set(err, 409, "name_conflict", field,
                              "%s is a secret of app %s; a name is either a var or a secret "
                              "(give secrets too to replace both)",
                              key, name);
        }
    }
    size_t final = json_object_size(vars) + (secrets != NULL ? json_object_size(secrets) : n_secrets);
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
        snprintf(field, sizeof field, "vars.%s", shown(key, b, sizeof b));
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
    if (rc == 0 && is_deployed(app))
        rc = check_required(json_object_get(app, "required_env"), kinds, name, err);
    if (rc == 0)
        rc = audit(svc, actor, "env.replace", name,
                   json_pack("{s:O, s:O, s:O, s:O}", "set", set, "deleted", deleted,
                             "secrets_set", secrets_set, "secrets_deleted", secrets_deleted),
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
    int rc = get_str(args, "key", true, key, err);
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
        rc = store_fail(svc, rc, "writing a secret", err);
    if (rc == 0) {
        /* The config log carries the value sealed exactly as stored: never the plaintext. */
        char *ct = nano_xmalloc(4 * ((sealed.len + 2) / 3) + 1);
        char nonce[4 * ((CP_NONCE_BYTES + 2) / 3) + 1], tag[4 * ((CP_TAG_BYTES + 2) / 3) + 1];
        cp_base64(sealed.ciphertext, sealed.len, ct);
        cp_base64(sealed.nonce, CP_NONCE_BYTES, nonce);
        cp_base64(sealed.tag, CP_TAG_BYTES, tag);
        rc = log_delta(svc, "secret.put", name,
                       json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "app", name, "name", key,
                                 "ciphertext", ct, "nonce", nonce, "tag", tag, "key_id",
                                 sealed.key_id),
                       err);
        nano_free(ct);
    }
    cp_sealed_fini(&sealed);
    return rc;
}

/* del_secret: removes secret key of app name (row id; NANO_ENOTFOUND when it has none),
 * with its secret.del delta. */
static int del_secret(cp_service *svc, const char *name, int64_t id, const char *key,
                      cp_error *err)
{
    int rc = cp_store_secret_del(svc->st, id, key);
    if (rc == NANO_ENOTFOUND)
        return cp_error_set(err, 404, "secret_not_found", "key", "app %s has no secret %s", name,
                            key);
    if (rc != 0)
        return store_fail(svc, rc, "deleting a secret", err);
    return log_delta(svc, "secret.del", name, json_pack("{s:s, s:s}", "app", name, "name", key),
                     err);
}

static int op_secrets_list(cp_service *svc, const cp_actor *actor, json_t *args,
                           json_t **result, cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *list = NULL;
    int64_t id = 0;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0 && (rc = cp_store_secret_list(svc->st, id, &list)) != 0)
        rc = store_fail(svc, rc, "listing secrets", err);
    if (rc == 0)
        *result = json_pack("{s:o}", "secrets", list);
    json_decref(app);
    return rc;
}

static int op_secrets_put(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                          cp_error *err)
{
    static const char *const fields[] = {"name", "key", "value", NULL};
    const char *name, *key = NULL, *value = NULL;
    json_t *app = NULL, *kinds = NULL;
    int64_t id = 0;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = get_secret_key(args, &key, err);
    if (rc == 0)
        rc = get_str(args, "value", true, &value, err);
    size_t len = value ? json_string_length(json_object_get(args, "value")) : 0;
    if (rc == 0 && len == 0)
        rc = cp_error_set(err, 400, "invalid_field", "value",
                          "secret %s is empty; a secret needs a value (delete it instead)", key);
    if (rc == 0 && len > NANO_ENV_MAX_VALUE)
        rc = cp_error_set(err, 413, "too_large", "value",
                          "secret %s is %zu bytes; the limit is %d", key, len, NANO_ENV_MAX_VALUE);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
    if (rc == 0 && (rc = cp_store_env_kinds(svc->st, id, &kinds)) != 0)
        rc = store_fail(svc, rc, "reading env names", err);
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
        rc = audit(svc, actor, "secrets.put", name,
                   json_pack("{s:s, s:b}", "key", key, "created", kind == NULL), err);
    if (rc == 0)
        *result = json_pack("{s:s, s:s}", "name", key, "updated_at", cp_store_now(svc->st));
    json_decref(kinds);
    json_decref(app);
    return rc;
}

static int op_secrets_delete(cp_service *svc, const cp_actor *actor, json_t *args,
                             json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "key", NULL};
    const char *name, *key = NULL;
    json_t *app = NULL;
    int64_t id = 0;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_app_name(args, &name, err);
    if (rc == 0)
        rc = get_secret_key(args, &key, err);
    if (rc == 0)
        rc = load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = refuse_draining(app, name, err);
    if (rc == 0)
        rc = del_secret(svc, name, id, key, err);
    if (rc == 0 && is_deployed(app))
        rc = check_required_now(svc, app, id, name, err);
    if (rc == 0)
        rc = audit(svc, actor, "secrets.delete", name, json_pack("{s:s}", "key", key), err);
    if (rc == 0)
        *result = json_object();
    json_decref(app);
    return rc;
}

/* --- nodes, audit, version ------------------------------------------------------------------ */

static int finish_drains(cp_service *svc, bool *changed, cp_error *err);

/* nodes.remove: forgets a node that is gone for good (a decommissioned edge), so that drains
 * stop waiting for it: its rows in running drains go with it, and a drain left with no node
 * pending ends now (the app removed, app.remove logged). A node that still runs registers
 * again with its next hello or status report. */
static int op_nodes_remove(cp_service *svc, const cp_actor *actor, json_t *args,
                           json_t **result, cp_error *err)
{
    const char *name;
    int rc = check_fields(args, name_only, err);
    if (rc == 0)
        rc = get_str(args, "name", true, &name, err);
    if (rc == 0 && !nano_msg_node_valid(name)) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "name",
                          "\"%s\" is not a valid node name: use 1 to 63 characters of A-Z, a-z, "
                          "0-9, '.', '_' and '-'",
                          shown(name, b, sizeof b));
    }
    if (rc != 0)
        return rc;
    rc = cp_store_node_delete(svc->st, name);
    if (rc == NANO_ENOTFOUND)
        return cp_error_set(err, 404, "node_not_found", "name", "node %s is not registered",
                            name);
    if (rc != 0)
        return store_fail(svc, rc, "removing a node", err);
    bool changed = false;
    rc = audit(svc, actor, "nodes.remove", NULL, json_pack("{s:s}", "node", name), err);
    if (rc == 0)
        rc = finish_drains(svc, &changed, err);
    if (rc == 0)
        *result = json_pack("{s:s, s:b}", "name", name, "drains_ended", changed);
    return rc;
}

static int op_nodes_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                         cp_error *err)
{
    (void)actor;
    json_t *nodes = NULL;
    int64_t seq = 0;
    int rc = check_fields(args, no_fields, err);
    if (rc == 0 && ((rc = cp_store_node_list(svc->st, &nodes)) != 0 ||
                    (rc = cp_store_log_seq(svc->st, &seq)) != 0))
        rc = store_fail(svc, rc, "listing nodes", err);
    if (rc != 0) {
        json_decref(nodes);
        return rc;
    }
    /* current: the node has applied everything nanocp has logged (it serves the latest
     * config), as of its last status report. */
    size_t i;
    json_t *n;
    json_array_foreach(nodes, i, n) {
        json_object_set_new(n, "current",
                            json_boolean(json_integer_value(json_object_get(n, "applied_seq")) ==
                                         seq));
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

static int op_audit_list(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                         cp_error *err)
{
    (void)actor;
    static const char *const fields[] = {"limit", "before_id", NULL};
    int64_t limit = AUDIT_DEFAULT_LIMIT, before = 0;
    json_t *entries = NULL;
    int rc = check_fields(args, fields, err);
    if (rc == 0)
        rc = get_count(args, "limit", 1, AUDIT_MAX_LIMIT, &limit, err);
    if (rc == 0)
        rc = get_count(args, "before_id", 1, INT64_MAX, &before, err);
    if (rc == 0 && (rc = cp_store_audit_list(svc->st, limit, before, &entries)) != 0)
        rc = store_fail(svc, rc, "reading the audit log", err);
    if (rc == 0)
        *result = json_pack("{s:o}", "entries", entries);
    return rc;
}

static int op_version(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                      cp_error *err)
{
    (void)actor;
    int64_t schema = 0, seq = 0;
    int rc = check_fields(args, no_fields, err);
    if (rc == 0 && ((rc = cp_store_schema_version(svc->st, &schema)) != 0 ||
                    (rc = cp_store_log_seq(svc->st, &seq)) != 0))
        rc = store_fail(svc, rc, "reading versions", err);
    if (rc == 0)
        *result = json_pack("{s:s, s:I, s:I}", "version", NANO_VERSION, "schema_version",
                            (json_int_t)schema, "config_seq", (json_int_t)seq);
    return rc;
}

/* --- dispatch ------------------------------------------------------------------------------- */

typedef int (*op_fn)(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                     cp_error *err);

static const struct {
    const char *name;
    op_fn fn;
    bool is_change; /* runs in a write transaction */
} ops[] = {
    {"apps.list", op_apps_list, false},
    {"apps.create", op_apps_create, true},
    {"apps.update", op_apps_update, true},
    {"apps.get", op_apps_get, false},
    {"apps.remove", op_apps_remove, true},
    {"apps.drain", op_apps_drain, false},
    {"apps.deploy", op_apps_deploy, true},
    {"deployments.list", op_deployments_list, false},
    {"apps.rollback", op_apps_rollback, true},
    {"env.get", op_env_get, false},
    {"env.patch", op_env_patch, true},
    {"env.replace", op_env_replace, true},
    {"secrets.list", op_secrets_list, false},
    {"secrets.put", op_secrets_put, true},
    {"secrets.delete", op_secrets_delete, true},
    {"nodes.list", op_nodes_list, false},
    {"nodes.remove", op_nodes_remove, true},
    {"audit.list", op_audit_list, false},
    {"version", op_version, false},
};

/* One rule for every string an op is given, whatever the front (HTTP, the binary admin API,
 * nanoctl): no NUL and well-formed UTF-8, in object keys and values at any depth. What is
 * stored can then always be encoded for the data planes (shared/msg.c refuses a NUL, which
 * made every later snapshot fail), and no C string cuts one short ("a.test\0.evil" stored as
 * "a.test"). field is the path so far ("vars.K", "hostnames[1]"). */
static int check_strings(const json_t *v, char *field, size_t len, size_t cap, int depth,
                         cp_error *err)
{
    if (depth > 64)
        return 0; /* deeper values are refused by the ops' own depth limits */
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        const char *what = memchr(s, '\0', n) != NULL ? "holds a NUL byte"
                           : !nano_utf8_valid(s, n)   ? "is not valid UTF-8"
                                                      : NULL;
        if (what == NULL)
            return 0;
        return cp_error_set(err, 400, "invalid_field", len ? field : NULL, "%s %s",
                            len ? field : "a value", what);
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            int k = snprintf(field + len, cap - len, "[%zu]", i);
            size_t l = len + (k > 0 && (size_t)k < cap - len ? (size_t)k : 0);
            int rc = check_strings(m, field, l, cap, depth + 1, err);
            field[len] = '\0';
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    const char *key;
    size_t key_len;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, key_len, m) {
        char shown_key[72];
        bool bad_key = memchr(key, '\0', key_len) != NULL || !nano_utf8_valid(key, key_len);
        snprintf(shown_key, sizeof shown_key, "%.*s", bad_key ? 0 : (int)(key_len > 64 ? 64 : key_len),
                 key);
        int k = snprintf(field + len, cap - len, "%s%s", len ? "." : "",
                         bad_key ? "(key)" : shown_key);
        size_t l = len + (k > 0 && (size_t)k < cap - len ? (size_t)k : 0);
        int rc = bad_key ? cp_error_set(err, 400, "invalid_field", field,
                                        "%s: a name that holds a NUL byte or is not UTF-8", field)
                         : check_strings(m, field, l, cap, depth + 1, err);
        field[len] = '\0';
        if (rc != 0)
            return rc;
    }
    return 0;
}

int cp_service_call(cp_service *svc, const cp_actor *actor, const char *op, json_t *args,
                    json_t **result, cp_error *err)
{
    size_t i = 0;
    while (i < sizeof ops / sizeof ops[0] && (op == NULL || strcmp(ops[i].name, op) != 0))
        i++;
    if (i == sizeof ops / sizeof ops[0]) {
        char b[72];
        return cp_error_set(err, 400, "bad_request", "op", "unknown op \"%s\"",
                            shown(op ? op : "", b, sizeof b));
    }
    json_t *empty = NULL;
    if (args == NULL)
        args = empty = json_object();
    if (!json_is_object(args)) {
        return cp_error_set(err, 400, "bad_request", NULL, "the arguments of %s must be an object",
                            ops[i].name);
    }
    /* Module sources are not names or values: they travel as code blobs (their own checks,
     * UTF-8 at the HTTP front), and a NUL inside JS source is legal. */
    json_t *modules = strcmp(ops[i].name, "apps.deploy") == 0 ? json_object_get(args, "modules")
                                                              : NULL;
    if (modules != NULL)
        json_incref(modules), json_object_del(args, "modules");
    char field[256] = "";
    int checked = check_strings(args, field, 0, sizeof field, 0, err);
    if (modules != NULL)
        json_object_set_new(args, "modules", modules);
    if (checked != 0) {
        json_decref(empty);
        return checked;
    }
    json_t *out = NULL;
    int rc;
    if (ops[i].is_change && (rc = cp_store_begin(svc->st)) != 0) {
        json_decref(empty);
        return store_fail(svc, rc, "starting a transaction", err);
    }
    rc = ops[i].fn(svc, actor, args, &out, err);
    if (ops[i].is_change) {
        if (rc == 0 && (rc = cp_store_commit(svc->st)) != 0)
            rc = store_fail(svc, rc, "committing", err);
        if (rc != 0)
            cp_store_rollback(svc->st);
    }
    json_decref(empty);
    if (rc != 0) {
        json_decref(out);
        return rc;
    }
    if (ops[i].is_change)
        NANO_INFO("cp.change", "op=%s who=%s via=%s", ops[i].name,
                  actor && actor->who ? actor->who : "unknown",
                  actor && actor->via ? actor->via : "internal");
    *result = out;
    return 0;
}

/* --- tokens ------------------------------------------------------------------------------- */

bool cp_service_check_token(cp_service *svc, const char *token, const char **who_out)
{
    if (token == NULL)
        return false;
    unsigned char d[NANO_TOKEN_DIGEST_BYTES];
    nano_token_digest(token, d);
    /* Every stored digest is compared, whatever matched before: the time taken says nothing
     * about which token, or how much of one, was right. */
    size_t match = svc->n_tokens;
    for (size_t i = 0; i < svc->n_tokens; i++)
        if (nano_token_digest_equal(d, svc->tokens[i].hash))
            match = i;
    if (match == svc->n_tokens)
        return false;
    if (who_out != NULL)
        *who_out = svc->tokens[match].name;
    return true;
}

/* A new token file: 32 random bytes as 64 hex digits and a newline, 0600, created
 * exclusively; hash_hex gets the token's sha256. */
static int make_token_file(const char *path, char hash_hex[65], cp_error *err)
{
    char buf[66];
    unsigned char raw[32];
    if (cp_random_bytes(raw, sizeof raw) != 0)
        return cp_error_set(err, 500, "startup", NULL, "cannot get random bytes for a token");
    cp_hex(raw, sizeof raw, buf);
    OPENSSL_cleanse(raw, sizeof raw);
    size_t len = 64;
    buf[len] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        OPENSSL_cleanse(buf, sizeof buf);
        return cp_error_set(err, 500, "startup", NULL, "cannot create token file %s: %s", path,
                            strerror(e));
    }
    close(fd);
    nano_sha256_hex(buf, len, hash_hex);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

/* A token file (admin or node): read (a token of 32 to 512 printable characters, one trailing
 * newline allowed), or made when there is none. */
int cp_service_token_file(const char *path, char hash_hex[65], bool *created, cp_error *err)
{
    char *text = NULL;
    size_t size = 0;
    nano_error e = {0};
    *created = false;
    int rc = nano_read_file(path, 520, &text, &size, &e); /* 512 and line ends: see below */
    if (rc == -ENOENT) {
        rc = make_token_file(path, hash_hex, err);
        *created = rc == 0;
        return rc;
    }
    if (rc != 0 && rc != NANO_ETOOBIG)
        return cp_error_set(err, 500, "startup", NULL, "cannot open token file %s", e.message);
    struct stat stbuf;
    if (rc == 0 && stat(path, &stbuf) == 0 && (stbuf.st_mode & 077) != 0)
        NANO_WARN("cp.token_file_mode", "path=%s mode=%04o detail=%s", path,
                  (unsigned)(stbuf.st_mode & 07777), "readable by group or others");
    size_t len = size;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    bool ok = rc == 0 && len >= 32 && len <= 512;
    for (size_t i = 0; i < len && ok; i++)
        ok = text[i] > 0x20 && text[i] < 0x7f;
    if (ok)
        nano_sha256_hex(text, len, hash_hex);
    if (text != NULL)
        OPENSSL_cleanse(text, size);
    nano_free(text);
    if (!ok)
        return cp_error_set(err, 400, "startup", NULL,
                            "token file %s must hold one token of 32 to 512 printable "
                            "characters without spaces",
                            path);
    return 0;
}

static int load_tokens(cp_service *svc, cp_error *err)
{
    json_t *list = NULL;
    int rc = cp_store_token_list(svc->st, &list);
    if (rc != 0)
        return store_fail(svc, rc, "reading tokens", err);
    svc->tokens = nano_xcalloc(json_array_size(list) + 1, sizeof *svc->tokens);
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t) {
        cp_token *tok = &svc->tokens[svc->n_tokens];
        snprintf(tok->name, sizeof tok->name, "%s", json_string_value(json_object_get(t, "name")));
        if (nano_token_digest_from_hex(json_string_value(json_object_get(t, "hash")),
                                       tok->hash) == 0)
            svc->n_tokens++;
    }
    json_decref(list);
    return 0;
}

/* --- open / free ---------------------------------------------------------------------------- */

/* Creates the missing parents of dir (like mkdir -p; 0755 as umask allows): the default
 * ./var/nanocp must work from a fresh checkout. Errors surface from the final mkdir. */
static void make_parents(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return;
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        (void)mkdir(path, 0755); /* EEXIST is the common case */
        *p = '/';
    }
}

static int make_data_dir(const char *dir, cp_error *err)
{
    make_parents(dir);
    if (mkdir(dir, 0700) == 0) {
        NANO_INFO("cp.data_dir_created", "path=%s", dir);
        return 0;
    }
    struct stat stbuf;
    if (errno == EEXIST && stat(dir, &stbuf) == 0 && S_ISDIR(stbuf.st_mode))
        return 0;
    return cp_error_set(err, 500, "startup", NULL, "cannot create data dir %s: %s", dir,
                        errno == EEXIST ? "exists and is not a directory" : strerror(errno));
}

/* Deployments are checked only with a checker that works here: one that cannot load a module
 * that loads everywhere (a nano-dp that cannot start on this host: libnode missing) is
 * dropped with a warning, and data planes remain the check of last resort. */
static void checker_start(cp_service *svc, const char *checker)
{
    static const char probe[] = "export default { fetch() { return new Response('ok'); } };\n";
    cp_module m = {.name = "probe.js", .data = probe, .len = sizeof probe - 1};
    svc->checker = nano_xstrdup(checker);
    nano_error e = {0};
    uint64_t t0 = mono_ms();
    int rc = check_bundle(svc, NULL, "probe.js", &m, 1, &e);
    if (rc != 0) {
        NANO_WARN("cp.checker_unavailable", "checker=%s error=%s (deployments are not checked "
                  "before they are accepted)", checker, e.message);
        nano_free(svc->checker);
        svc->checker = NULL;
        return;
    }
    NANO_INFO("cp.checker_ready", "checker=%s check_ms=%llu", checker,
              (unsigned long long)(mono_ms() - t0));
}

int cp_service_open(const cp_service_options *opt, cp_service **out, cp_error *err)
{
    const char *dir = opt->data_dir ? opt->data_dir : "./var/nanocp";
    int rc = make_data_dir(dir, err);
    if (rc != 0)
        return rc;
    cp_service *svc = nano_xcalloc(1, sizeof *svc);
    svc->data_dir = nano_xstrdup(dir);
    nano_buf b = NANO_BUF_INIT;
    nano_buf_appendf(&b, "%s/nanocp.db", dir);
    svc->db_path = nano_xstrdup(nano_buf_cstr(&b));
    nano_buf_reset(&b);
    if (opt->token_file != NULL)
        nano_buf_append_str(&b, opt->token_file);
    else
        nano_buf_appendf(&b, "%s/admin.token", dir);
    svc->token_path = nano_xstrdup(nano_buf_cstr(&b));
    nano_buf_fini(&b);

    nano_error e = {0};
    cp_key_source source;
    rc = cp_master_key_load(opt->master_key_file, dir, &svc->key, &source, svc->key_source,
                            sizeof svc->key_source, &e);
    if (rc != 0) {
        cp_error_set(err, 500, "startup", NULL, "%s", e.message);
        cp_service_free(svc);
        return rc;
    }
    if (source == CP_KEY_GENERATED)
        NANO_INFO("cp.master_key_created", "path=%s key_id=%s", svc->key_source, svc->key.id);
    rc = cp_store_open(svc->db_path, true, &svc->st, &e);
    if (rc != 0) {
        cp_error_set(err, 500, "startup", NULL, "%s", e.message);
        cp_service_free(svc);
        return rc;
    }
    char hash[65];
    bool created = false;
    rc = cp_service_token_file(svc->token_path, hash, &created, err);
    if (rc == 0 && (rc = cp_store_token_put(svc->st, "admin", hash)) != 0)
        rc = store_fail(svc, rc, "storing the admin token", err);
    if (rc == 0)
        rc = load_tokens(svc, err);
    if (rc != 0) {
        cp_service_free(svc);
        return rc;
    }
    if (created)
        NANO_INFO("cp.admin_token_created", "path=%s", svc->token_path);
    if (opt->checker != NULL)
        checker_start(svc, opt->checker);
    int64_t schema = 0, seq = 0;
    cp_store_schema_version(svc->st, &schema);
    cp_store_log_seq(svc->st, &seq);
    NANO_INFO("cp.store_open", "path=%s schema_version=%lld config_seq=%lld key_id=%s", svc->db_path,
              (long long)schema, (long long)seq, svc->key.id);
    *out = svc;
    return 0;
}

void cp_service_free(cp_service *svc)
{
    if (svc == NULL)
        return;
    cp_store_free(svc->st); /* checkpoints the WAL */
    OPENSSL_cleanse(&svc->key, sizeof svc->key);
    nano_free(svc->tokens);
    nano_free(svc->data_dir);
    nano_free(svc->checker);
    nano_free(svc->db_path);
    nano_free(svc->token_path);
    nano_free(svc);
}

const char *cp_service_data_dir(const cp_service *svc)
{
    return svc->data_dir;
}

const char *cp_service_db_path(const cp_service *svc)
{
    return svc->db_path;
}

const char *cp_service_token_path(const cp_service *svc)
{
    return svc->token_path;
}

const char *cp_service_key_source(const cp_service *svc)
{
    return svc->key_source;
}

struct cp_store *cp_service_store(cp_service *svc)
{
    return svc->st;
}

/* --- for the distribution layer ---------------------------------------------------------- */

int cp_service_secret_values(cp_service *svc, int64_t app_id, const char *app, json_t **out)
{
    json_t *list = NULL;
    int rc = cp_store_secret_list(svc->st, app_id, &list);
    if (rc != 0)
        return rc;
    json_t *values = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        cp_sealed sealed = {0};
        char *plain = NULL;
        size_t len = 0;
        rc = cp_store_secret_get(svc->st, app_id, name, &sealed);
        if (rc == 0 && cp_secret_open(&svc->key, app, name, &sealed, &plain, &len) != 0) {
            /* Another master key, or a tampered row: the app goes without this secret (its
             * required_env check on the data plane names it) and an operator is told. */
            NANO_ERROR("cp.secret_unreadable", "app=%s name=%s key_id=%s", app, name,
                       sealed.key_id);
            cp_sealed_fini(&sealed);
            continue;
        }
        cp_sealed_fini(&sealed);
        if (rc != 0)
            break;
        json_t *v = json_stringn(plain, len);
        explicit_bzero(plain, len);
        nano_free(plain);
        if (v == NULL) { /* not UTF-8: secrets come in as JSON strings, so never */
            NANO_ERROR("cp.secret_unreadable", "app=%s name=%s detail=%s", app, name,
                       "not UTF-8");
            continue;
        }
        json_object_set_new(values, name, v);
    }
    json_decref(list);
    if (rc != 0) {
        json_decref(values);
        return rc;
    }
    *out = values;
    return 0;
}

static const cp_actor DRAIN_ACTOR = {"nanocp", "drain"};

/* Every running drain with no pending node left ends: the app is deleted, app.remove logged.
 * Runs inside the caller's transaction. */
static int finish_drains(cp_service *svc, bool *changed, cp_error *err)
{
    json_t *list = NULL;
    int rc = cp_store_drains_finished(svc->st, &list);
    if (rc != 0)
        return store_fail(svc, rc, "reading drains", err);
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        const char *app = json_string_value(json_object_get(d, "app"));
        json_t *app_id = json_object_get(d, "app_id");
        json_int_t n_nodes = json_integer_value(json_object_get(d, "n_nodes"));
        json_int_t n_timed_out = json_integer_value(json_object_get(d, "n_timed_out"));
        if (json_is_integer(app_id)) {
            rc = cp_store_app_delete(svc->st, json_integer_value(app_id));
            if (rc != 0) {
                rc = store_fail(svc, rc, "deleting an app", err);
                break;
            }
            rc = log_delta(svc, "app.remove", app, json_pack("{s:s}", "app", app), err);
            if (rc == 0)
                rc = audit(svc, &DRAIN_ACTOR, "apps.remove", app,
                           json_pack("{s:s, s:I, s:I}", "state", "removed", "nodes", n_nodes,
                                     "timed_out", n_timed_out),
                           err);
            if (rc != 0)
                break;
            *changed = true;
        }
        rc = cp_store_drain_finish(svc->st, json_integer_value(json_object_get(d, "id")),
                                   n_timed_out > 0 ? "timed_out" : "done");
        if (rc != 0) {
            rc = store_fail(svc, rc, "ending a drain", err);
            break;
        }
        NANO_INFO("cp.drain_done", "app=%s nodes=%lld timed_out=%lld", app, (long long)n_nodes,
                  (long long)n_timed_out);
    }
    json_decref(list);
    return rc;
}

/* Ends the transaction begin() opened: commits when rc is 0, else rolls back. */
static int end_tx(cp_service *svc, int rc, cp_error *err)
{
    if (rc == 0 && (rc = cp_store_commit(svc->st)) != 0)
        rc = store_fail(svc, rc, "committing", err);
    if (rc != 0)
        cp_store_rollback(svc->st);
    return rc;
}

static int begin(cp_service *svc, cp_error *err)
{
    int rc = cp_store_begin(svc->st);
    return rc == 0 ? 0 : store_fail(svc, rc, "starting a transaction", err);
}

int cp_service_node_hello(cp_service *svc, const char *node, const char *version,
                          const char *addr, cp_error *err)
{
    int rc = begin(svc, err);
    if (rc != 0)
        return rc;
    rc = cp_store_node_hello(svc->st, node, version, addr);
    if (rc != 0)
        rc = store_fail(svc, rc, "recording a node", err);
    return end_tx(svc, rc, err);
}

int cp_service_nodes_report(cp_service *svc, json_t *reports, bool *changed, cp_error *err)
{
    *changed = false;
    if (json_object_size(reports) == 0)
        return 0;
    int rc = begin(svc, err);
    if (rc != 0)
        return rc;
    const char *node;
    json_t *r;
    int64_t acked = 0;
    json_object_foreach(reports, node, r) {
        char *apps = json_dumps(json_object_get(r, "apps"), JSON_COMPACT);
        rc = cp_store_node_report(svc->st, node,
                                  json_integer_value(json_object_get(r, "applied_seq")),
                                  apps ? apps : "{}",
                                  json_string_value(json_object_get(r, "seen_at")));
        free(apps);
        int64_t n = 0;
        if (rc == 0)
            rc = cp_store_drain_ack_from_status(svc->st, node, &n);
        if (rc != 0) {
            rc = store_fail(svc, rc, "recording a node's status", err);
            break;
        }
        if (n > 0)
            NANO_INFO("cp.drain_acked", "node=%s rows=%lld via=status", node, (long long)n);
        acked += n;
    }
    if (rc == 0 && acked > 0)
        rc = finish_drains(svc, changed, err);
    return end_tx(svc, rc, err);
}

int cp_service_drain_ack(cp_service *svc, const char *node, const char *app, const char *result,
                         bool *changed, cp_error *err)
{
    *changed = false;
    int rc = begin(svc, err);
    if (rc != 0)
        return rc;
    bool found = false;
    rc = cp_store_drain_ack(svc->st, app, node,
                            strcmp(result, "timed_out") == 0 ? "timed_out" : "acked", &found);
    if (rc != 0)
        rc = store_fail(svc, rc, "recording a drain ack", err);
    if (rc == 0 && found) {
        NANO_INFO("cp.drain_acked", "node=%s app=%s result=%s via=drain.ack", node, app, result);
        rc = finish_drains(svc, changed, err);
    }
    return end_tx(svc, rc, err);
}

int cp_service_drains_tick(cp_service *svc, uint64_t grace_ms, bool *changed, cp_error *err)
{
    *changed = false;
    int rc = begin(svc, err);
    if (rc != 0)
        return rc;
    int64_t n = 0;
    rc = cp_store_drain_expire(svc->st, grace_ms, &n);
    if (rc != 0)
        rc = store_fail(svc, rc, "expiring drains", err);
    if (rc == 0 && n > 0)
        NANO_WARN("cp.drain_timed_out", "rows=%lld detail=%s", (long long)n,
                  "nodes that did not ack within the drain timeout count as timed out");
    /* Also finishes drains that need no wait at all (every node gone from the table). */
    if (rc == 0)
        rc = finish_drains(svc, changed, err);
    return end_tx(svc, rc, err);
}
