/* app_spec.c: an app's spec and its JSON codec (contract in app_spec.h). Each field is one row
 * of the table at the bottom (its key, how it is read, written and compared), so the codec
 * holds each field's rules once. */
#include "app_spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "mpjson.h"
#include "config_int.h"
#include "dotenv.h"

/* --- reading: a working copy and one-line errors --------------------------------------------- */

typedef struct reader {
    json_t *obj;
    unsigned flags;
    const char *where;
    char *field; /* the caller's, may be NULL */
    size_t field_cap;
    nano_error *err;
} reader;

static int fail(reader *r, int code, const char *id, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* "WHERE FIELD: what", and the field for the caller. Returns code. */
static int fail(reader *r, int code, const char *id, const char *field, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (r->field != NULL && r->field_cap > 0)
        snprintf(r->field, r->field_cap, "%s", field);
    return nano_error_set(r->err, code, id, "%s%s: %s", r->where, field, what);
}

/* An error from a parser that wrote its own "WHERE FIELD: what" line. */
static int fail_inner(reader *r, const char *field)
{
    if (r->field != NULL && r->field_cap > 0)
        snprintf(r->field, r->field_cap, "%s", field);
    return r->err->code;
}

static void free_strings(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nano_free(list[i]);
    nano_free(list);
}

static char **copy_strings(char *const *list, size_t n)
{
    char **out = nano_xcalloc(n + 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = nano_xstrdup(list[i]);
    return out;
}

static json_t *strings_to_json(char *const *list, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(list[i]));
    return a;
}

static bool strings_equal(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

/* --- hostnames ------------------------------------------------------------------------------- */

/* One hostname (v at field) appended to list, normalized; refused when invalid or repeated. */
static int add_hostname(reader *r, json_t *v, const char *field, char **list, size_t *n)
{
    if (!json_is_string(v))
        return fail(r, NANO_EINVAL, "config_type", field, "must be a string, not %s",
                    nano_json_type_name(v));
    const char *host = json_string_value(v);
    char shown[72];
    if (strlen(host) != json_string_length(v) || !nano_hostname_valid(host))
        return fail(r, NANO_EINVAL, "hostname_invalid", field,
                    "\"%s\" is not a valid hostname: use labels of letters, digits and '-' "
                    "separated by '.', optionally after \"*.\" for a wildcard",
                    nano_config__printable(host, shown, sizeof shown, 64));
    char *h = nano_hostname_normalize(host);
    for (size_t k = 0; k < *n; k++)
        if (strcmp(list[k], h) == 0) {
            int rc = fail(r, NANO_EINVAL, "hostname_duplicate", field,
                          "hostname %s is listed twice", h);
            nano_free(h);
            return rc;
        }
    list[(*n)++] = h;
    return 0;
}

static int read_hostnames(reader *r, nano_app_spec *s)
{
    json_t *many = json_object_get(r->obj, "hostnames");
    json_t *one = (r->flags & NANO_APP_SPEC_HOSTNAME_ALIAS) ? json_object_get(r->obj, "hostname")
                                                            : NULL;
    if (one != NULL && many != NULL)
        return fail(r, NANO_EINVAL, "config_value_invalid", "hostname",
                    "use \"hostname\" or \"hostnames\", not both");
    if (one == NULL && many == NULL)
        return 0;
    if (many != NULL && !json_is_array(many))
        return fail(r, NANO_EINVAL, "config_type", "hostnames",
                    "must be an array of hostnames, not %s", nano_json_type_name(many));
    size_t count = one != NULL ? 1 : json_array_size(many);
    if (count > NANO_APP_SPEC_MAX_HOSTNAMES)
        return fail(r, NANO_ETOOBIG, "too_many", "hostnames", "an app has at most %d hostnames",
                    NANO_APP_SPEC_MAX_HOSTNAMES);
    char **list = nano_xcalloc(count + 1, sizeof *list);
    size_t n = 0;
    int rc = 0;
    if (one != NULL)
        rc = add_hostname(r, one, "hostname", list, &n);
    for (size_t i = 0; many != NULL && i < count && rc == 0; i++) {
        char field[32];
        snprintf(field, sizeof field, "hostnames[%zu]", i);
        rc = add_hostname(r, json_array_get(many, i), field, list, &n);
    }
    if (rc != 0) {
        free_strings(list, n);
        return rc;
    }
    free_strings(s->hostnames, s->n_hostnames);
    s->hostnames = list;
    s->n_hostnames = n;
    return 0;
}

static json_t *write_hostnames(const nano_app_spec *s)
{
    return strings_to_json(s->hostnames, s->n_hostnames);
}

static bool equal_hostnames(const nano_app_spec *a, const nano_app_spec *b)
{
    return strings_equal(a->hostnames, a->n_hostnames, b->hostnames, b->n_hostnames);
}

/* --- path_prefix ----------------------------------------------------------------------------- */

static int read_path_prefix(reader *r, nano_app_spec *s)
{
    json_t *v = json_object_get(r->obj, "path_prefix");
    if (v == NULL)
        return 0;
    if (json_is_null(v)) {
        nano_free(s->path_prefix);
        s->path_prefix = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return fail(r, NANO_EINVAL, "config_type", "path_prefix",
                    "must be a string or null, not %s", nano_json_type_name(v));
    const char *p = json_string_value(v);
    char shown[72];
    if (strlen(p) != json_string_length(v) || !nano_path_prefix_valid(p))
        return fail(r, NANO_EINVAL, "path_prefix_invalid", "path_prefix",
                    "\"%s\" is not a valid path prefix: use \"/seg\" or \"/seg/seg\" (printable "
                    "ASCII, no trailing '/', no empty segment, no '?' or '#')",
                    nano_config__printable(p, shown, sizeof shown, 64));
    nano_free(s->path_prefix);
    s->path_prefix = nano_xstrdup(p);
    return 0;
}

static json_t *write_path_prefix(const nano_app_spec *s)
{
    return s->path_prefix != NULL ? json_string(s->path_prefix) : json_null();
}

static bool equal_path_prefix(const nano_app_spec *a, const nano_app_spec *b)
{
    if (a->path_prefix == NULL || b->path_prefix == NULL)
        return a->path_prefix == b->path_prefix;
    return strcmp(a->path_prefix, b->path_prefix) == 0;
}

/* --- default and node_compat ----------------------------------------------------------------- */

static int read_bool(reader *r, const char *key, bool *out)
{
    json_t *v = json_object_get(r->obj, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return fail(r, NANO_EINVAL, "config_type", key, "must be true or false, not %s",
                    nano_json_type_name(v));
    *out = json_is_true(v);
    return 0;
}

static int read_default(reader *r, nano_app_spec *s)
{
    return read_bool(r, "default", &s->is_default);
}

static json_t *write_default(const nano_app_spec *s)
{
    return json_boolean(s->is_default);
}

static bool equal_default(const nano_app_spec *a, const nano_app_spec *b)
{
    return a->is_default == b->is_default;
}

static int read_node_compat(reader *r, nano_app_spec *s)
{
    return read_bool(r, "node_compat", &s->node_compat);
}

static json_t *write_node_compat(const nano_app_spec *s)
{
    return json_boolean(s->node_compat);
}

static bool equal_node_compat(const nano_app_spec *a, const nano_app_spec *b)
{
    return a->node_compat == b->node_compat;
}

/* --- required_env ---------------------------------------------------------------------------- */

static int read_required_env(reader *r, nano_app_spec *s)
{
    json_t *v = json_object_get(r->obj, "required_env");
    if (v == NULL)
        return 0;
    if (!json_is_array(v))
        return fail(r, NANO_EINVAL, "config_type", "required_env",
                    "must be an array of env names, not %s", nano_json_type_name(v));
    size_t count = json_array_size(v);
    if (count > NANO_ENV_MAX_ENTRIES)
        return fail(r, NANO_ETOOBIG, "too_many", "required_env",
                    "lists more than %d names, more than an app's env can hold",
                    NANO_ENV_MAX_ENTRIES);
    char **list = nano_xcalloc(count + 1, sizeof *list);
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        json_t *e = json_array_get(v, i);
        char field[40];
        snprintf(field, sizeof field, "required_env[%zu]", i);
        if (!json_is_string(e)) {
            rc = fail(r, NANO_EINVAL, "config_type", field, "must be an env name, not %s",
                      nano_json_type_name(e));
            break;
        }
        if (!nano_env_name_valid(json_string_value(e), json_string_length(e))) {
            rc = fail(r, NANO_EINVAL, "env_name_invalid", field,
                      "invalid env name: use letters, digits and '_', not starting with a digit");
            break;
        }
        for (size_t k = 0; k < n && rc == 0; k++)
            if (strcmp(list[k], json_string_value(e)) == 0)
                rc = fail(r, NANO_EINVAL, "env_name_duplicate", field, "%s is listed twice",
                          list[k]);
        if (rc == 0)
            list[n++] = nano_xstrdup(json_string_value(e));
    }
    if (rc != 0) {
        free_strings(list, n);
        return rc;
    }
    free_strings(s->required_env, s->n_required_env);
    s->required_env = list;
    s->n_required_env = n;
    return 0;
}

static json_t *write_required_env(const nano_app_spec *s)
{
    return strings_to_json(s->required_env, s->n_required_env);
}

static bool equal_required_env(const nano_app_spec *a, const nano_app_spec *b)
{
    return strings_equal(a->required_env, a->n_required_env, b->required_env, b->n_required_env);
}

/* --- limits ---------------------------------------------------------------------------------- */

static int read_limits(reader *r, nano_app_spec *s)
{
    json_t *v = json_object_get(r->obj, "limits");
    if (v == NULL)
        return 0;
    char where[600];
    snprintf(where, sizeof where, "%slimits.", r->where);
    const char *key = NULL;
    int rc = nano_limits_from_json(v, &s->limits, where, &key, r->err);
    if (rc == 0)
        return 0;
    char field[96];
    snprintf(field, sizeof field, "limits%s%.80s", key != NULL ? "." : "", key ? key : "");
    return fail_inner(r, field);
}

static json_t *write_limits(const nano_app_spec *s)
{
    return nano_limits_to_json(&s->limits);
}

static bool equal_limits(const nano_app_spec *a, const nano_app_spec *b)
{
    return nano_limits_equal(&a->limits, &b->limits);
}

/* --- egress ---------------------------------------------------------------------------------- */

static int read_egress(reader *r, nano_app_spec *s)
{
    json_t *v = json_object_get(r->obj, "egress");
    if (v == NULL)
        return 0;
    nano_egress *e = NULL;
    if (!json_is_null(v)) {
        char what[600];
        snprintf(what, sizeof what, "%segress", r->where);
        if (nano_egress_parse_json(v, what, &e, r->err) != 0)
            return fail_inner(r, "egress");
    }
    nano_egress_unref(s->egress);
    s->egress = e;
    return 0;
}

static json_t *write_egress(const nano_app_spec *s)
{
    return s->egress != NULL ? nano_egress_to_json(s->egress) : json_null();
}

static bool equal_egress(const nano_app_spec *a, const nano_app_spec *b)
{
    return nano_egress_equal(a->egress, b->egress);
}

/* --- the table ------------------------------------------------------------------------------- */

typedef struct spec_field {
    const char *key;
    int (*read)(reader *r, nano_app_spec *s); /* obj's key (if present) onto s */
    json_t *(*write)(const nano_app_spec *s);
    bool (*equal)(const nano_app_spec *a, const nano_app_spec *b);
} spec_field;

static const spec_field fields[] = {
    {"hostnames", read_hostnames, write_hostnames, equal_hostnames},
    {"path_prefix", read_path_prefix, write_path_prefix, equal_path_prefix},
    {"default", read_default, write_default, equal_default},
    {"node_compat", read_node_compat, write_node_compat, equal_node_compat},
    {"required_env", read_required_env, write_required_env, equal_required_env},
    {"limits", read_limits, write_limits, equal_limits},
    {"egress", read_egress, write_egress, equal_egress},
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* The table's keys again, for carriers (app_spec.h); the check below and unit_config's
 * app_spec_keys_follow_the_table keep the two in step. */
const char *const nano_app_spec_keys[] = {
    "hostnames", "path_prefix", "default", "node_compat", "required_env", "limits", "egress", NULL,
};
_Static_assert(sizeof nano_app_spec_keys / sizeof nano_app_spec_keys[0] == N_FIELDS + 1,
               "nano_app_spec_keys lists every field of the table");

/* --- public ---------------------------------------------------------------------------------- */

void nano_app_spec_init(nano_app_spec *s)
{
    memset(s, 0, sizeof *s);
    s->limits = nano_limits_defaults();
}

void nano_app_spec_fini(nano_app_spec *s)
{
    if (s == NULL)
        return;
    nano_free(s->name);
    free_strings(s->hostnames, s->n_hostnames);
    nano_free(s->path_prefix);
    free_strings(s->required_env, s->n_required_env);
    nano_egress_unref(s->egress);
    memset(s, 0, sizeof *s);
}

void nano_app_spec_copy(nano_app_spec *dst, const nano_app_spec *src)
{
    *dst = *src;
    dst->name = src->name != NULL ? nano_xstrdup(src->name) : NULL;
    dst->hostnames = copy_strings(src->hostnames, src->n_hostnames);
    dst->path_prefix = src->path_prefix != NULL ? nano_xstrdup(src->path_prefix) : NULL;
    dst->required_env = copy_strings(src->required_env, src->n_required_env);
    dst->egress = nano_egress_ref(src->egress);
}

int nano_app_spec_read_json(json_t *obj, unsigned flags, nano_app_spec *s, const char *where,
                            char *field, size_t field_cap, nano_error *err)
{
    reader r = {obj, flags, where != NULL ? where : "", field, field_cap, err};
    if (field != NULL && field_cap > 0)
        field[0] = '\0';
    if (!json_is_object(obj))
        return nano_error_set(err, NANO_EINVAL, "config_type", "%s%s an object, not %s", r.where,
                              r.where[0] ? "must be" : "an app's spec must be",
                              nano_json_type_name(obj));
    /* Onto a copy, so that s is untouched unless every field reads. */
    nano_app_spec work;
    nano_app_spec_copy(&work, s);
    int rc = 0;
    for (size_t i = 0; i < N_FIELDS && rc == 0; i++)
        rc = fields[i].read(&r, &work);
    if (rc == 0 && work.n_hostnames == 0 && !work.is_default)
        rc = fail(&r, NANO_EINVAL, "app_unreachable", "hostnames",
                  "an app needs at least one hostname%s, or \"default\": true",
                  (flags & NANO_APP_SPEC_HOSTNAME_ALIAS) ? " (\"hostname\" or \"hostnames\")" : "");
    if (rc != 0) {
        nano_app_spec_fini(&work);
        return rc;
    }
    nano_app_spec_fini(s);
    *s = work;
    return 0;
}

json_t *nano_app_spec_to_json(const nano_app_spec *s)
{
    json_t *obj = json_object();
    for (size_t i = 0; i < N_FIELDS; i++)
        json_object_set_new(obj, fields[i].key, fields[i].write(s));
    return obj;
}

bool nano_app_spec_equal(const nano_app_spec *a, const nano_app_spec *b)
{
    for (size_t i = 0; i < N_FIELDS; i++)
        if (!fields[i].equal(a, b))
            return false;
    return true;
}

void nano_app_spec_json_copy(json_t *to, const json_t *from)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        json_t *v = json_object_get(from, fields[i].key);
        if (v != NULL)
            json_object_set(to, fields[i].key, v);
    }
}
