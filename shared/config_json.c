/* config_json.c: nano.json -> a sealed config snapshot (format: docs/config.md).
 *
 * Every key is checked (an unknown one is an error, to catch typos), and every error is one
 * line naming the file and the JSON location, so an operator can fix it without guessing.
 * Secret values are read here but never quoted back: messages name secrets, never show them. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "mpjson.h"
#include "buf.h"
#include "config_int.h"
#include "dotenv.h"
#include "file.h"
#include "parse.h"

typedef struct jctx {
    const char *file; /* as the caller named it: every message starts with it */
    char *dir;        /* the file's directory: relative paths resolve against it */
    nano_error *err;
    char path[512]; /* the JSON location being read, e.g. "apps[1].env.TOKEN" */
    size_t len;
} jctx;

/* --- locations and messages ----------------------------------------------------------------- */

static bool is_plain_key(const char *key)
{
    if (*key == '\0')
        return false;
    for (; *key != '\0'; key++)
        if (!((*key >= 'a' && *key <= 'z') || (*key >= 'A' && *key <= 'Z') ||
              (*key >= '0' && *key <= '9') || *key == '_' || *key == '-'))
            return false;
    return true;
}

/* Appends to the location; returns the length to go back to with leave(). */
static size_t enter_key(jctx *c, const char *key)
{
    size_t mark = c->len;
    char shown[72];
    nano_config__printable(key, shown, sizeof shown, 64);
    int n;
    if (is_plain_key(key))
        n = snprintf(c->path + c->len, sizeof c->path - c->len, "%s%s", c->len ? "." : "", shown);
    else /* keys with dots or spaces would make "a.b" ambiguous */
        n = snprintf(c->path + c->len, sizeof c->path - c->len, "[\"%s\"]", shown);
    if (n > 0)
        c->len += (size_t)n < sizeof c->path - c->len ? (size_t)n : sizeof c->path - 1 - c->len;
    return mark;
}

static size_t enter_index(jctx *c, size_t i)
{
    size_t mark = c->len;
    int n = snprintf(c->path + c->len, sizeof c->path - c->len, "[%zu]", i);
    if (n > 0)
        c->len += (size_t)n < sizeof c->path - c->len ? (size_t)n : sizeof c->path - 1 - c->len;
    return mark;
}

static void leave(jctx *c, size_t mark)
{
    c->len = mark;
    c->path[mark] = '\0';
}

/* "FILE: LOCATION: what and why". Returns code. */
static int fail(jctx *c, int code, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(jctx *c, int code, const char *id, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nano_error_set(c->err, code, id, "%s: %s: %s", c->file, c->len ? c->path : "top level",
                          what);
}

/* An error from a lower layer (env, add_app, load_code), placed at the current location. */
static int fail_inner(jctx *c, const nano_error *inner)
{
    return fail(c, inner->code, inner->id, "%s", inner->message);
}

/* Names the type only, never the value: the value may be a secret. */
static int fail_type(jctx *c, const json_t *v, const char *expected)
{
    return fail(c, NANO_EINVAL, "config_type", "must be %s, not %s", expected,
                nano_json_type_name(v));
}

static bool listed(const char *const *list, const char *key)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (strcmp(list[i], key) == 0)
            return true;
    return false;
}

/* Every key of obj must be in allowed or in more (NULL-terminated; more may be NULL). */
static int check_keys2(jctx *c, json_t *obj, const char *const *allowed, const char *const *more)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (listed(allowed, key) || listed(more, key))
            continue;
        nano_buf list = NANO_BUF_INIT;
        for (size_t i = 0; allowed[i] != NULL; i++)
            nano_buf_appendf(&list, "%s%s", i ? ", " : "", allowed[i]);
        for (size_t i = 0; more != NULL && more[i] != NULL; i++)
            nano_buf_appendf(&list, ", %s", more[i]);
        enter_key(c, key);
        int rc = fail(c, NANO_EINVAL, "config_unknown_key", "unknown key; expected one of: %s",
                      nano_buf_cstr(&list));
        nano_buf_fini(&list);
        return rc;
    }
    return 0;
}

static int check_keys(jctx *c, json_t *obj, const char *const *allowed)
{
    return check_keys2(c, obj, allowed, NULL);
}

/* --- paths ------------------------------------------------------------------------------------ */

static char *dir_of(const char *file)
{
    const char *slash = strrchr(file, '/');
    if (slash == NULL)
        return nano_xstrdup(".");
    if (slash == file)
        return nano_xstrdup("/");
    return nano_xstrndup(file, (size_t)(slash - file));
}

/* rel against the file's directory. Leading "./" and a "." directory are dropped, only so
 * that the paths in messages read as the operator wrote them. */
static char *resolve(const jctx *c, const char *rel)
{
    nano_buf b = NANO_BUF_INIT;
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    if (rel[0] == '/' || strcmp(c->dir, ".") == 0)
        nano_buf_append_str(&b, rel);
    else
        nano_buf_appendf(&b, "%s/%s", c->dir, rel);
    nano_buf_cstr(&b);
    return b.data;
}

/* --- scalar members ------------------------------------------------------------------------- */

/* obj[key] as a string: *out stays NULL when absent and not required. */
static int get_string(jctx *c, json_t *obj, const char *key, bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL && !required)
        return 0;
    if (v == NULL)
        return fail(c, NANO_EINVAL, "config_missing_key", "\"%s\" is required", key);
    size_t mark = enter_key(c, key);
    int rc = json_is_string(v) ? 0 : fail_type(c, v, "a string");
    if (rc == 0 && json_string_length(v) == 0)
        rc = fail(c, NANO_EINVAL, "config_value_invalid", "must not be empty");
    leave(c, mark);
    if (rc == 0)
        *out = json_string_value(v);
    return rc;
}

/* --- app parts ------------------------------------------------------------------------------ */

static int read_name(jctx *c, json_t *japp, nano_app_config *app)
{
    const char *name;
    int rc = get_string(c, japp, "name", true, &name);
    if (rc != 0)
        return rc;
    if (!nano_app_name_valid(name)) {
        char shown[72];
        size_t mark = enter_key(c, "name");
        rc = fail(c, NANO_EINVAL, "app_name_invalid",
                  "\"%s\" is not a valid app name: use 1 to 63 characters of a-z, 0-9 and '-', "
                  "starting with a letter or digit",
                  nano_config__printable(name, shown, sizeof shown, 64));
        leave(c, mark);
        return rc;
    }
    app->spec.name = nano_xstrdup(name);
    return 0;
}

/* The app's spec (app_spec.h: hostnames, path_prefix, default, node_compat, required_env,
 * limits, egress), with nano.json's "hostname" shorthand; messages "FILE: apps[1].FIELD: ...". */
static int read_spec(jctx *c, json_t *japp, nano_app_config *app)
{
    char where[600];
    snprintf(where, sizeof where, "%s: %s.", c->file, c->path);
    return nano_app_spec_read_json(japp, NANO_APP_SPEC_HOSTNAME_ALIAS, &app->spec, where, NULL, 0,
                                   c->err);
}

static int read_code(jctx *c, const char *rel, nano_app_config *app)
{
    char *file = resolve(c, rel);
    nano_error inner;
    int rc = nano_app_config_load_code(app, file, &inner);
    /* The modules it imports: part of its code's identity, and watched by nano-dp. */
    if (rc == 0 && (rc = nano_app_config_find_imports(app, file)) != 0)
        nano_error_set(&inner, rc, "oom", "out of memory");
    nano_free(file);
    if (rc != 0) {
        size_t mark = enter_key(c, "path");
        fail_inner(c, &inner);
        leave(c, mark);
    }
    return rc;
}

/* --- limits ------------------------------------------------------------------------------- */

/* Messages of the limits parser: WHERE + KEY + ": " + what (where is the caller's prefix). */
static int limit_fail(const char *where, const nano_limit_desc *d, nano_error *err, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static int limit_fail(const char *where, const nano_limit_desc *d, nano_error *err, const char *fmt,
                      ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return nano_error_set(err, NANO_EINVAL, "config_value_invalid", "%s%s: %s", where, d->key,
                          what);
}

static int limit_syntax(const char *where, const nano_limit_desc *d, const json_t *v,
                        nano_error *err)
{
    if (d->kind == NANO_LIMIT_COUNT)
        return limit_fail(where, d, err, "must be a whole number above 0");
    if (!json_is_string(v) && d->kind == NANO_LIMIT_DURATION)
        return limit_fail(where, d, err,
                          "must be a number of seconds above 0 or a string such as \"30s\"");
    if (!json_is_string(v))
        return limit_fail(where, d, err,
                          "must be a whole number of bytes above 0 or a string such as \"64KiB\"");
    char shown[72];
    nano_config__printable(json_string_value(v), shown, sizeof shown, 64);
    if (d->kind == NANO_LIMIT_DURATION)
        return limit_fail(where, d, err,
                          "\"%s\" is not a duration: use seconds (30) or a string such as \"30s\", "
                          "\"1500ms\" or \"5m\"",
                          shown);
    return limit_fail(where, d, err,
                      "\"%s\" is not a size: use bytes (65536) or a string such as \"64KiB\" or "
                      "\"100MiB\"",
                      shown);
}

/* The value of one limit in its field's unit. UINT64_MAX stands for "too large to say", which
 * the range check then reports. */
static int limit_value(const char *where, const nano_limit_desc *d, const json_t *v, uint64_t *out,
                       nano_error *err)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        uint64_t n = (uint64_t)json_integer_value(v);
        bool is_seconds = d->kind == NANO_LIMIT_DURATION;
        *out = !is_seconds ? n : n > UINT64_MAX / 1000 ? UINT64_MAX : n * 1000;
        return 0;
    }
    if (json_is_real(v) && d->kind == NANO_LIMIT_DURATION) {
        double s = json_real_value(v);
        if (!(s >= 0)) /* also NaN, which jansson never yields, but cheap to refuse */
            return limit_syntax(where, d, v, err);
        *out = s * 1000 < 1e18 ? (uint64_t)(s * 1000 + 0.5) : UINT64_MAX; /* to the nearest ms */
        return 0;
    }
    if (json_is_string(v) && d->kind != NANO_LIMIT_COUNT) {
        const char *s = json_string_value(v);
        int rc = d->kind == NANO_LIMIT_DURATION ? nano_parse_duration_ms(s, out)
                                                : nano_parse_size(s, out);
        if (rc == NANO_ERANGE)
            *out = UINT64_MAX;
        else if (rc != 0)
            return limit_syntax(where, d, v, err);
        return 0;
    }
    return limit_syntax(where, d, v, err);
}

int nano_limits_from_json(json_t *obj, nano_limits *l, const char *where, const char **key_out,
                          nano_error *err)
{
    if (where == NULL)
        where = "";
    if (!json_is_object(obj)) {
        if (key_out != NULL)
            *key_out = NULL;
        size_t n = strlen(where); /* "limits." names the object as "limits" */
        if (n > 0 && where[n - 1] == '.')
            n--;
        return nano_error_set(err, NANO_EINVAL, "config_type", "%.*s: must be an object, not %s",
                              (int)(n > 0 ? n : 6), n > 0 ? where : "limits",
                              nano_json_type_name(obj));
    }
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool known = false;
        for (size_t i = 0; i < nano_config__n_limits && !known; i++)
            known = strcmp(nano_config__limits[i].key, key) == 0;
        if (known)
            continue;
        nano_buf list = NANO_BUF_INIT;
        for (size_t i = 0; i < nano_config__n_limits; i++)
            nano_buf_appendf(&list, "%s%s", i ? ", " : "", nano_config__limits[i].key);
        char shown[72];
        int rc = nano_error_set(
            err, NANO_EINVAL, "config_unknown_key", "%s%s: unknown key; expected one of: %s", where,
            nano_config__printable(key, shown, sizeof shown, 64), nano_buf_cstr(&list));
        nano_buf_fini(&list);
        if (key_out != NULL)
            *key_out = key;
        return rc;
    }
    nano_limits out = *l; /* written back only when every key is good */
    for (size_t i = 0; i < nano_config__n_limits; i++) {
        const nano_limit_desc *d = &nano_config__limits[i];
        v = json_object_get(obj, d->key);
        if (v == NULL)
            continue;
        uint64_t n = 0;
        int rc = limit_value(where, d, v, &n, err);
        if (rc == 0 && (n < d->min || n > d->max))
            rc = nano_config__limit_range_error(d, n, where, err);
        if (rc != 0) {
            if (key_out != NULL)
                *key_out = d->key;
            return rc;
        }
        nano_config__limit_put(&out, d, n);
    }
    *l = out;
    return 0;
}

/* Durations as "30s" (or "1500ms" when not whole seconds), so that feeding the object back
 * reads the same values: a bare number would mean seconds. Sizes and counts are integers. */
json_t *nano_limits_to_json(const nano_limits *l)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < nano_config__n_limits; i++) {
        const nano_limit_desc *d = &nano_config__limits[i];
        uint64_t v = nano_config__limit_get(l, d);
        json_t *jv;
        if (d->kind == NANO_LIMIT_DURATION) {
            char text[32];
            if (v % 1000 == 0)
                snprintf(text, sizeof text, "%llus", (unsigned long long)(v / 1000));
            else
                snprintf(text, sizeof text, "%llums", (unsigned long long)v);
            jv = json_string(text);
        } else {
            jv = json_integer((json_int_t)v); /* every bound is far below INT64_MAX */
        }
        json_object_set_new(obj, d->key, jv);
    }
    return obj;
}

/* --- env and secrets --------------------------------------------------------------------- */

/* Checks done here rather than left to nano_env_set, for messages that say where. */
static int check_env_entry(jctx *c, const char *name, size_t value_len)
{
    if (!nano_env_name_valid(name, strlen(name)))
        return fail(c, NANO_EINVAL, "env_name_invalid",
                    "invalid env name: use letters, digits and '_', not starting with a digit");
    if (value_len > NANO_ENV_MAX_VALUE)
        return fail(c, NANO_ETOOBIG, "env_value_too_large", "value is %zu bytes; the limit is %d",
                    value_len, NANO_ENV_MAX_VALUE);
    return 0;
}

static int set_var(jctx *c, const char *name, json_t *v, nano_app_config *app)
{
    nano_error inner;
    int rc;
    if (json_is_string(v)) {
        size_t len = json_string_length(v);
        rc = check_env_entry(c, name, len);
        if (rc == 0 && nano_env_set(&app->env, name, json_string_value(v), len, false, &inner))
            rc = fail_inner(c, &inner);
        return rc;
    }
    /* Any other JSON value: kept as compact JSON text for the runtime to JSON.parse. */
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return fail(c, NANO_ENOMEM, "config_value_invalid", "cannot encode the value as JSON");
    size_t len = strlen(text);
    rc = check_env_entry(c, name, len);
    if (rc == 0 && nano_env_set_json(&app->env, name, text, len, &inner) != 0)
        rc = fail_inner(c, &inner);
    free(text); /* jansson's allocator: the default, malloc */
    return rc;
}

static int read_env(jctx *c, json_t *japp, nano_app_config *app)
{
    json_t *je = json_object_get(japp, "env");
    if (je == NULL)
        return 0;
    size_t mark = enter_key(c, "env");
    int rc = json_is_object(je) ? 0 : fail_type(c, je, "an object");
    const char *name;
    json_t *v;
    json_object_foreach(je, name, v) {
        if (rc != 0)
            break;
        size_t key_mark = enter_key(c, name);
        rc = set_var(c, name, v, app);
        leave(c, key_mark);
    }
    leave(c, mark);
    return rc;
}

/* {"fromFile": PATH}: the file's bytes, less ONE trailing newline ("\n" or "\r\n"), which
 * editors and `echo` add and which is never part of a token. */
static int secret_from_file(jctx *c, json_t *jpath, char **out, size_t *out_len)
{
    if (!json_is_string(jpath) || json_string_length(jpath) == 0)
        return fail(c, NANO_EINVAL, "config_type", "fromFile must be a non-empty path string");
    char *file = resolve(c, json_string_value(jpath));
    char *data = NULL;
    size_t len = 0;
    /* Room for the limit plus a "\r\n" that will be stripped. */
    int rc = nano_read_file(file, NANO_ENV_MAX_VALUE + 2, &data, &len, NULL);
    if (rc == NANO_ETOOBIG)
        rc = fail(c, rc, "env_value_too_large", "fromFile %s is larger than the %d-byte limit",
                  file, NANO_ENV_MAX_VALUE);
    else if (rc == NANO_EINVAL)
        rc = fail(c, rc, "secret_file_unreadable", "fromFile %s is not a regular file", file);
    else if (rc != 0)
        rc = fail(c, rc, "secret_file_unreadable", "cannot read fromFile %s: %s", file,
                  nano_strerror(rc));
    nano_free(file);
    if (rc != 0)
        return rc;
    if (len > 0 && data[len - 1] == '\n')
        len--;
    if (len > 0 && data[len] == '\n' && data[len - 1] == '\r')
        len--;
    *out = data;
    *out_len = len;
    return 0;
}

static int secret_from_env(jctx *c, json_t *jname, char **out, size_t *out_len)
{
    if (!json_is_string(jname) || json_string_length(jname) == 0)
        return fail(c, NANO_EINVAL, "config_type",
                    "fromEnv must be the name of an environment variable");
    char shown[72];
    nano_config__printable(json_string_value(jname), shown, sizeof shown, 64);
    const char *value = getenv(json_string_value(jname));
    if (value == NULL)
        return fail(c, NANO_EINVAL, "secret_env_unset",
                    "fromEnv: the environment variable %s is not set", shown);
    *out_len = strlen(value);
    *out = nano_xstrndup(value, *out_len);
    return 0;
}

/* The secret's value into *out (owned; the caller wipes it). */
static int secret_value(jctx *c, json_t *v, char **out, size_t *out_len)
{
    if (json_is_string(v)) {
        *out_len = json_string_length(v);
        *out = nano_xstrndup(json_string_value(v), *out_len);
        return 0;
    }
    static const char *const keys[] = {"fromEnv", "fromFile", NULL};
    json_t *env = json_is_object(v) ? json_object_get(v, "fromEnv") : NULL;
    json_t *file = json_is_object(v) ? json_object_get(v, "fromFile") : NULL;
    if (!json_is_object(v) || (env == NULL && file == NULL))
        return fail(c, NANO_EINVAL, "config_type",
                    "must be a string, {\"fromEnv\": NAME} or {\"fromFile\": PATH}");
    int rc = check_keys(c, v, keys);
    if (rc != 0)
        return rc;
    if (env != NULL && file != NULL)
        return fail(c, NANO_EINVAL, "config_value_invalid", "use fromEnv or fromFile, not both");
    return env != NULL ? secret_from_env(c, env, out, out_len)
                       : secret_from_file(c, file, out, out_len);
}

static int set_secret(jctx *c, const char *name, json_t *v, nano_app_config *app)
{
    if (!nano_env_name_valid(name, strlen(name)))
        return check_env_entry(c, name, 0);
    if (nano_env_find(&app->env, name) != NULL)
        return fail(c, NANO_EINVAL, "env_name_duplicate",
                    "also set in \"env\"; a name is either a var or a secret");
    char *value = NULL;
    size_t len = 0;
    int rc = secret_value(c, v, &value, &len);
    if (rc == 0)
        rc = check_env_entry(c, name, len);
    nano_error inner;
    if (rc == 0 && nano_env_set(&app->env, name, value, len, true, &inner) != 0)
        rc = fail_inner(c, &inner);
    if (value != NULL)
        explicit_bzero(value, len); /* the env holds its own copy; this one need not linger */
    nano_free(value);
    return rc;
}

static int read_secrets(jctx *c, json_t *japp, nano_app_config *app)
{
    json_t *js = json_object_get(japp, "secrets");
    if (js == NULL)
        return 0;
    size_t mark = enter_key(c, "secrets");
    int rc = json_is_object(js) ? 0 : fail_type(c, js, "an object");
    const char *name;
    json_t *v;
    json_object_foreach(js, name, v) {
        if (rc != 0)
            break;
        size_t key_mark = enter_key(c, name);
        rc = set_secret(c, name, v, app);
        leave(c, key_mark);
    }
    leave(c, mark);
    return rc;
}

/* --- egress ---------------------------------------------------------------------------------- */

/* key's egress object (apps[i].egress, or the top level's) parsed into *out (NULL if absent);
 * errors as "FILE: apps[1].egress.allow[2]: ..." from nano_egress_parse_json. */
static int read_egress(jctx *c, json_t *obj, nano_egress **out)
{
    json_t *je = json_object_get(obj, "egress");
    if (je == NULL)
        return 0;
    size_t mark = enter_key(c, "egress");
    nano_error inner;
    nano_egress *e = NULL;
    int rc = nano_egress_parse_json(je, c->path, &e, &inner);
    if (rc != 0)
        rc = nano_error_set(c->err, inner.code, inner.id, "%s: %s", c->file, inner.message);
    leave(c, mark);
    if (rc == 0) {
        nano_egress_unref(*out);
        *out = e;
    }
    return rc;
}

/* --- apps ----------------------------------------------------------------------------------- */

/* An app's own keys in nano.json; the spec's (nano_app_spec_keys) are allowed too. */
static const char *const app_keys[] = {
    "name", "hostname", "path", "env", "secrets", "env_files", NULL,
};

/* At most this many env_files per app. */
#define NANO_ENV_FILES_MAX 16

/* "env_files": [".env", ".env.production"]: dotenv files (paths relative to the config file)
 * read in order, a later one winning; "env" and "secrets" win over all of them. Their paths
 * go to *files (owned) for the watch. */
static int read_env_files(jctx *c, json_t *japp, nano_app_config *app, char ***files,
                          size_t *n_files)
{
    json_t *jf = json_object_get(japp, "env_files");
    if (jf == NULL)
        return 0;
    size_t mark = enter_key(c, "env_files");
    int rc = json_is_array(jf) ? 0 : fail_type(c, jf, "an array of paths");
    if (rc == 0 && json_array_size(jf) > NANO_ENV_FILES_MAX)
        rc = fail(c, NANO_EINVAL, "config_value_invalid", "at most %d env files",
                  NANO_ENV_FILES_MAX);
    size_t i;
    json_t *v;
    json_array_foreach(jf, i, v) {
        if (rc != 0)
            break;
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            rc = fail(c, NANO_EINVAL, "config_type", "env_files[%zu] must be a non-empty path", i);
            break;
        }
        char *file = resolve(c, json_string_value(v));
        nano_error inner;
        if (nano_env_load_dotenv(&app->env, file, &inner) != 0) {
            nano_free(file);
            rc = fail_inner(c, &inner);
            break;
        }
        *files = nano_xrealloc(*files, (*n_files + 1) * sizeof **files);
        (*files)[(*n_files)++] = file;
    }
    leave(c, mark);
    return rc;
}

/* One apps[i] into app, checked on its own; conflicts with other apps are add_app's. */
static int read_app(jctx *c, json_t *japp, nano_app_config *app)
{
    if (!json_is_object(japp))
        return fail_type(c, japp, "an object");
    const char *code_path = NULL;
    int rc = check_keys2(c, japp, app_keys, nano_app_spec_keys);
    if (rc == 0)
        rc = read_name(c, japp, app);
    if (rc == 0)
        rc = get_string(c, japp, "path", true, &code_path);
    if (rc == 0)
        rc = read_spec(c, japp, app);
    char **env_files = NULL;
    size_t n_env_files = 0;
    if (rc == 0)
        rc = read_env_files(c, japp, app, &env_files, &n_env_files);
    if (rc == 0)
        rc = read_env(c, japp, app);
    if (rc == 0)
        rc = read_secrets(c, japp, app);
    nano_error inner;
    if (rc == 0 && nano_app_config_check_required_env(app, &inner) != 0)
        rc = fail_inner(c, &inner);
    /* Code last: the largest read, wasted if anything else fails. */
    if (rc == 0)
        rc = read_code(c, code_path, app);
    /* The env files are watched with the code's files: an edit is a reload. */
    if (rc == 0 && n_env_files > 0) {
        app->code_files = nano_xrealloc(app->code_files,
                                        (app->n_code_files + n_env_files) * sizeof(char *));
        for (size_t i = 0; i < n_env_files; i++)
            app->code_files[app->n_code_files++] = env_files[i];
        n_env_files = 0;
    }
    for (size_t i = 0; i < n_env_files; i++)
        nano_free(env_files[i]);
    nano_free(env_files);
    return rc;
}

static int read_root(jctx *c, json_t *root, nano_config *cfg)
{
    static const char *const keys[] = {"apps", "egress", NULL};
    if (!json_is_object(root))
        return fail_type(c, root, "an object: {\"apps\": [...]}");
    int rc = check_keys(c, root, keys);
    /* The node's policy: checked here so that a reload with a bad one is refused; the data
     * plane reads it at startup with nano_config_load_node_egress. */
    nano_egress *node = NULL;
    if (rc == 0)
        rc = read_egress(c, root, &node);
    nano_egress_unref(node);
    json_t *apps = json_object_get(root, "apps");
    if (rc == 0 && apps == NULL)
        rc = fail(c, NANO_EINVAL, "config_missing_key", "\"apps\" is required");
    size_t mark = enter_key(c, "apps");
    if (rc == 0 && !json_is_array(apps))
        rc = fail_type(c, apps, "an array");
    for (size_t i = 0; rc == 0 && i < json_array_size(apps); i++) {
        size_t item = enter_index(c, i);
        nano_app_config app;
        nano_app_config_init(&app);
        nano_error inner;
        rc = read_app(c, json_array_get(apps, i), &app);
        if (rc == 0 && nano_config_add_app(cfg, &app, &inner) != 0)
            rc = fail_inner(c, &inner);
        nano_app_config_fini(&app); /* zeroed when added: then this frees nothing */
        leave(c, item);
    }
    leave(c, mark);
    return rc;
}

/* jansson's message ends in "near '<token>'", and the token can be part of a secret (an
 * invalid escape in a secret string quotes it). Line and column say where well enough. */
static void strip_near(char *text)
{
    char *near = strstr(text, " near '");
    if (near != NULL)
        *near = '\0';
}

static int parse_file(jctx *c, json_t **root)
{
    char *text = NULL;
    size_t len = 0;
    int rc = nano_read_file(c->file, NANO_CONFIG_JSON_MAX_BYTES, &text, &len, NULL);
    if (rc == NANO_ETOOBIG)
        return nano_error_set(c->err, rc, "config_too_large", "%s: larger than the 64 MiB limit",
                              c->file);
    if (rc == NANO_EINVAL)
        return nano_error_set(c->err, rc, "config_unreadable", "%s: not a regular file", c->file);
    if (rc != 0)
        return nano_error_set(c->err, rc, "config_unreadable", "%s: cannot read: %s", c->file,
                              nano_strerror(rc));
    json_error_t jerr;
    /* Duplicate keys are refused: with them, which value wins would be a guess. */
    *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    explicit_bzero(text, len); /* it may hold literal secrets */
    nano_free(text);
    if (*root != NULL)
        return 0;
    strip_near(jerr.text);
    if (jerr.line > 0)
        return nano_error_set(c->err, NANO_ESYNTAX, "config_json_syntax",
                              "%s:%d:%d: invalid JSON: %s", c->file, jerr.line, jerr.column,
                              jerr.text);
    return nano_error_set(c->err, NANO_ESYNTAX, "config_json_syntax", "%s: invalid JSON: %s",
                          c->file, jerr.text);
}

int nano_config_load_json(const char *path, uint64_t version, nano_config **out, nano_error *err)
{
    jctx c = {.file = path, .dir = dir_of(path), .err = err};
    json_t *root = NULL;
    nano_config *cfg = NULL;
    int rc = parse_file(&c, &root);
    if (rc == 0) {
        cfg = nano_config_new(version);
        rc = read_root(&c, root, cfg);
    }
    nano_error inner;
    if (rc == 0 && nano_config_seal(cfg, &inner) != 0)
        rc = nano_error_set(err, inner.code, inner.id, "%s: %s", path, inner.message);
    if (rc == 0) {
        *out = cfg;
        cfg = NULL;
    }
    nano_config_unref(cfg);
    json_decref(root);
    nano_free(c.dir);
    return rc;
}

int nano_config_load_node_egress(const char *path, nano_egress **out, nano_error *err)
{
    jctx c = {.file = path, .err = err};
    json_t *root = NULL;
    nano_egress *e = NULL;
    int rc = parse_file(&c, &root);
    if (rc == 0 && !json_is_object(root))
        rc = fail_type(&c, root, "an object: {\"apps\": [...]}");
    if (rc == 0)
        rc = read_egress(&c, root, &e);
    if (rc == 0) {
        *out = e;
        e = NULL;
    }
    nano_egress_unref(e);
    json_decref(root);
    return rc;
}
