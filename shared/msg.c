/* msg.c: the control plane <-> data plane protocol (msg.h). Every message goes through one
 * schema check per type, table-driven, so that both ends and every message agree on what is
 * valid: the decoders run it on what arrives, the encoders on what they are about to send. */
#include "msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "dotenv.h"
#include "egress.h"
#include "env.h"
#include "mpjson.h"
#include "sha256.h"

/* Depth: env values are any JSON; nanocp refuses vars nested deeper than 32 levels, which
 * leaves room for the message around them. */
static const nano_mpjson_limits limits = {NANO_MSG_MAX_BYTES, NANO_MPJSON_MAX_DEPTH};

/* --- names ---------------------------------------------------------------------------------- */

/* clang-format off */
static const struct {
    nano_msg_type type;
    const char *name;
} type_names[] = {
    {NANO_MSG_DELTA, "delta"},         {NANO_MSG_HEARTBEAT, "heartbeat"},
    {NANO_MSG_HELLO, "hello"},         {NANO_MSG_SNAPSHOT, "snapshot"},
    {NANO_MSG_CODE_GET, "code.get"},   {NANO_MSG_CODE_BATCH, "code.batch"},
    {NANO_MSG_SECRETS_GET, "secrets.get"},
    {NANO_MSG_STATUS, "status"},       {NANO_MSG_DRAIN_ACK, "drain.ack"},
};
/* clang-format on */

const char *nano_msg_type_name(nano_msg_type t)
{
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
        if (type_names[i].type == t)
            return type_names[i].name;
    return "?";
}

nano_msg_type nano_msg_type_from_name(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(type_names[i].name, name) == 0)
            return type_names[i].type;
    return NANO_MSG_NONE;
}

bool nano_msg_node_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > NANO_MSG_NODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void nano_msg_bundle_sha256(const char *const *names, const char *const *shas, size_t n,
                            char out[65])
{
    if (n == 1) {
        snprintf(out, 65, "%s", shas[0]);
        return;
    }
    nano_buf b = NANO_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        nano_buf_append_str(&b, names[i]);
        nano_buf_append(&b, "", 1);
        nano_buf_append_str(&b, shas[i]);
        nano_buf_append(&b, "\n", 1);
    }
    nano_sha256_hex(b.data, b.len, out);
    nano_buf_fini(&b);
}

bool nano_msg_sha256_valid(const char *s)
{
    if (s == NULL || strlen(s) != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool nano_msg_module_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > NANO_MSG_MODULE_NAME_MAX)
        return false;
    const char *seg = name;
    for (const char *p = name;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - seg);
            if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return false;
            if (*p == '\0')
                return true;
            seg = p + 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
}

/* --- the schema checker ----------------------------------------------------------------------- */

typedef enum kind {
    K_UINT, /* integer >= 0 */
    K_BOOL,
    K_STR,      /* any string (no NUL) */
    K_STR_NULL, /* string or nil */
    K_APP,      /* an app name */
    K_ENVNAME,  /* an env name */
    K_NODE,     /* a node name */
    K_TOKEN,    /* a string of at most NANO_MSG_TOKEN_MAX bytes */
    K_SHA,      /* 64 lowercase hex */
    K_SHA_NULL,
    K_STRS,      /* array of strings (at most 1024) */
    K_SPEC,      /* not a field: the map also holds an app's spec, its keys those of
                    nano_app_spec_keys (each optional: absent is the spec's default), read
                    whole by nano_app_spec_read_json (app_spec.h) */
    K_ANY,       /* any value whose compact JSON is at most NANO_ENV_MAX_VALUE bytes */
    K_MODULES,   /* [{name, size, sha256}] */
    K_VARS,      /* {ENVNAME: any} */
    K_SECRETS,   /* {ENVNAME: str} */
    K_APPSTATES, /* {APP: APPSTATE} */
    K_OPS,       /* [OP] */
    K_APPS,      /* [SNAPAPP] */
    K_APP_STATE, /* "active" | "draining" */
    K_RUN_STATE, /* "active" | "draining" | "drained" | "timed_out" */
    K_ACK,       /* "drained" | "timed_out" */
    K_ERROR,     /* {code, message} */
    K_SHAS,      /* [sha256] (1 to NANO_MSG_BATCH_MAX) */
    K_BLOBS,     /* {sha256: str} (at most NANO_MSG_BATCH_MAX) */
} kind;

typedef struct field {
    const char *name;
    kind k;
    bool optional;
} field;

/* clang-format off */
#define END {NULL, K_UINT, false}
/* clang-format on */

/* ck: the checker's state: where we are, for the message ("apps[3].modules[0].sha256"). */
typedef struct ck {
    nano_error *err;
    char where[256];
} ck;

/* fail: "WHERE: what"; failq: "WHERE: what \"NAME\"" (name cut at 64 bytes). */
static int fail(ck *c, const char *id, const char *what)
{
    return nano_error_set(c->err, NANO_ESYNTAX, id, "%s%s%s", c->where, c->where[0] ? ": " : "",
                          what);
}

static int failq(ck *c, const char *id, const char *what, const char *name)
{
    return nano_error_set(c->err, NANO_ESYNTAX, id, "%s%s%s \"%.64s\"", c->where,
                          c->where[0] ? ": " : "", what, name);
}

/* Extends c->where by ".name" or "[i]" for the duration of one check. */
static size_t push(ck *c, const char *name, long index)
{
    size_t len = strlen(c->where);
    if (name != NULL)
        snprintf(c->where + len, sizeof c->where - len, "%s%.64s", len ? "." : "", name);
    else
        snprintf(c->where + len, sizeof c->where - len, "[%ld]", index);
    return len;
}

static void pop(ck *c, size_t len)
{
    c->where[len] = '\0';
}

static int check_fields(ck *c, const json_t *obj, const field *fields);
static int check_op_in(ck *c, const json_t *op);
static int check_snapapp_in(ck *c, const json_t *app);

static bool is_spec_key(const char *key)
{
    for (size_t i = 0; nano_app_spec_keys[i] != NULL; i++)
        if (strcmp(nano_app_spec_keys[i], key) == 0)
            return true;
    return false;
}

static bool str_ok(const json_t *v)
{
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static int check_enum(ck *c, const json_t *v, const char *const *allowed)
{
    if (str_ok(v))
        for (size_t i = 0; allowed[i] != NULL; i++)
            if (strcmp(json_string_value(v), allowed[i]) == 0)
                return 0;
    return fail(c, "msg_field", "is not one of the allowed words");
}

static int check_value(ck *c, const json_t *v, kind k)
{
    static const char *const app_states[] = {"active", "draining", NULL};
    static const char *const run_states[] = {"active", "draining", "drained", "timed_out", NULL};
    static const char *const acks[] = {"drained", "timed_out", NULL};
    static const field module_fields[] = {
        {"name", K_STR, false}, {"size", K_UINT, false}, {"sha256", K_SHA, false}, END};
    static const field appstate_fields[] = {{"state", K_RUN_STATE, false},
                                            {"in_flight", K_UINT, false},
                                            {"version", K_UINT, false},
                                            {"load_error", K_ERROR, true},
                                            END};
    static const field error_fields[] = {{"code", K_STR, false}, {"message", K_STR, false}, END};
    size_t i, mark;
    const char *key;
    json_t *item;
    int rc = 0;
    switch (k) {
    case K_UINT:
        return json_is_integer(v) && json_integer_value(v) >= 0
                   ? 0
                   : fail(c, "msg_field", "is not an integer >= 0");
    case K_BOOL: return json_is_boolean(v) ? 0 : fail(c, "msg_field", "is not a boolean");
    case K_STR: return str_ok(v) ? 0 : fail(c, "msg_field", "is not a string");
    case K_STR_NULL:
        return json_is_null(v) || str_ok(v) ? 0 : fail(c, "msg_field", "is not a string or nil");
    case K_APP:
        return str_ok(v) && nano_app_name_valid(json_string_value(v))
                   ? 0
                   : fail(c, "msg_field", "is not a valid app name");
    case K_ENVNAME:
        return str_ok(v) && nano_env_name_valid(json_string_value(v), json_string_length(v))
                   ? 0
                   : fail(c, "msg_field", "is not a valid env name");
    case K_NODE:
        return str_ok(v) && nano_msg_node_valid(json_string_value(v))
                   ? 0
                   : fail(c, "msg_field", "is not a valid node name");
    case K_TOKEN:
        return str_ok(v) && json_string_length(v) <= NANO_MSG_TOKEN_MAX
                   ? 0
                   : fail(c, "msg_field", "is not a string of at most 1024 bytes");
    case K_SHA:
        return str_ok(v) && nano_msg_sha256_valid(json_string_value(v))
                   ? 0
                   : fail(c, "msg_field", "is not a sha256 (64 lowercase hex digits)");
    case K_SHA_NULL: return json_is_null(v) ? 0 : check_value(c, v, K_SHA);
    case K_STRS:
        if (!json_is_array(v))
            return fail(c, "msg_field", "is not an array");
        if (json_array_size(v) > 1024u)
            return fail(c, "msg_too_large", "has too many entries");
        json_array_foreach(v, i, item) {
            mark = push(c, NULL, (long)i);
            rc = check_value(c, item, K_STR);
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    case K_SPEC: {
        /* Read whole here, as the data plane will, so that it never takes a spec it cannot
         * build (a policy, a limit, a hostname it would refuse later). */
        char where[300];
        snprintf(where, sizeof where, "%s%s", c->where, c->where[0] ? "." : "");
        nano_app_spec spec;
        nano_app_spec_init(&spec);
        nano_error inner;
        rc = nano_app_spec_read_json((json_t *)v, 0, &spec, where, NULL, 0, &inner);
        nano_app_spec_fini(&spec);
        return rc == 0 ? 0 : nano_error_set(c->err, NANO_ESYNTAX, "msg_field", "%s", inner.message);
    }
    case K_ANY: {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        size_t len = text ? strlen(text) : SIZE_MAX;
        free(text);
        return len <= NANO_ENV_MAX_VALUE
                   ? 0
                   : fail(c, "msg_too_large", "is longer than 5120 bytes as JSON");
    }
    case K_MODULES:
        if (!json_is_array(v))
            return fail(c, "msg_field", "is not an array");
        if (json_array_size(v) > NANO_MSG_MAX_MODULES)
            return fail(c, "msg_too_large", "has more than 256 modules");
        json_array_foreach(v, i, item) {
            mark = push(c, NULL, (long)i);
            rc = check_fields(c, item, module_fields);
            if (rc == 0 &&
                !nano_msg_module_name_valid(json_string_value(json_object_get(item, "name"))))
                rc = fail(c, "msg_field", "name is not a valid module name");
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    case K_VARS:
    case K_SECRETS:
        if (!json_is_object(v))
            return fail(c, "msg_field", "is not a map");
        if (json_object_size(v) > NANO_ENV_MAX_ENTRIES)
            return fail(c, "msg_too_large", "has more than 128 entries");
        json_object_foreach((json_t *)v, key, item) {
            mark = push(c, key, 0);
            if (!nano_env_name_valid(key, strlen(key)))
                rc = fail(c, "msg_field", "is not a valid env name");
            else if (k == K_SECRETS)
                rc = str_ok(item) && json_string_length(item) <= NANO_ENV_MAX_VALUE
                         ? 0
                         : fail(c, "msg_field", "is not a string of at most 5120 bytes");
            else
                rc = check_value(c, item, K_ANY);
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    case K_APPSTATES:
        if (!json_is_object(v))
            return fail(c, "msg_field", "is not a map");
        if (json_object_size(v) > NANO_MSG_MAX_APPS)
            return fail(c, "msg_too_large", "has too many apps");
        json_object_foreach((json_t *)v, key, item) {
            mark = push(c, key, 0);
            rc = nano_app_name_valid(key) ? check_fields(c, item, appstate_fields)
                                          : fail(c, "msg_field", "is not a valid app name");
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    case K_OPS:
    case K_APPS:
        if (!json_is_array(v))
            return fail(c, "msg_field", "is not an array");
        if (json_array_size(v) > (k == K_OPS ? NANO_MSG_MAX_OPS : NANO_MSG_MAX_APPS))
            return fail(c, "msg_too_large", "has too many entries");
        json_array_foreach(v, i, item) {
            mark = push(c, NULL, (long)i);
            rc = k == K_OPS ? check_op_in(c, item) : check_snapapp_in(c, item);
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    case K_APP_STATE: return check_enum(c, v, app_states);
    case K_RUN_STATE: return check_enum(c, v, run_states);
    case K_ACK: return check_enum(c, v, acks);
    case K_ERROR: return check_fields(c, v, error_fields);
    case K_SHAS:
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(c, "msg_field", "is not a non-empty array");
        if (json_array_size(v) > NANO_MSG_BATCH_MAX)
            return fail(c, "msg_too_large", "has more than 256 entries");
        json_array_foreach(v, i, item) {
            mark = push(c, NULL, (long)i);
            rc = check_value(c, item, K_SHA);
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    case K_BLOBS:
        if (!json_is_object(v))
            return fail(c, "msg_field", "is not a map");
        if (json_object_size(v) > NANO_MSG_BATCH_MAX)
            return fail(c, "msg_too_large", "has more than 256 entries");
        json_object_foreach((json_t *)v, key, item) {
            mark = push(c, key, 0);
            rc = nano_msg_sha256_valid(key) ? check_value(c, item, K_STR)
                                            : fail(c, "msg_field", "is not a sha256");
            pop(c, mark);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    return fail(c, "msg_field", "has an unknown kind"); /* not reached */
}

/* check_fields: obj is a map holding every required field of fields with its kind, the
 * optional ones only with their kind, and nothing else. */
static int check_fields(ck *c, const json_t *obj, const field *fields)
{
    if (!json_is_object(obj))
        return fail(c, "msg_field", "is not a map");
    const char *key;
    json_t *v;
    bool has_spec = false;
    for (const field *f = fields; f->name != NULL; f++)
        has_spec = has_spec || f->k == K_SPEC;
    json_object_foreach((json_t *)obj, key, v) {
        const field *f = fields;
        while (f->name != NULL && strcmp(f->name, key) != 0)
            f++;
        if (f->name == NULL && !(has_spec && is_spec_key(key)))
            return failq(c, "msg_field", "unknown field", key);
    }
    for (const field *f = fields; f->name != NULL; f++) {
        if (f->k == K_SPEC) {
            int rc = check_value(c, obj, K_SPEC);
            if (rc != 0)
                return rc;
            continue;
        }
        json_t *val = json_object_get(obj, f->name);
        if (val == NULL) {
            if (f->optional)
                continue;
            return failq(c, "msg_field", "missing field", f->name);
        }
        size_t mark = push(c, f->name, 0);
        int rc = check_value(c, val, f->k);
        pop(c, mark);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* --- ops and snapshot apps ---------------------------------------------------------------------- */

/* clang-format off */
#define OP_HEAD {"seq", K_UINT, false}, {"op", K_STR, false}, {"app", K_APP, false}
/* An app's spec travels as its JSON form (app_spec.h) among the op's own fields. */
#define APP_FIELDS                                                                            \
    {"state", K_APP_STATE, false}, {"version", K_UINT, false}, {"sha256", K_SHA_NULL, false}, \
        {"", K_SPEC, true}

static const struct {
    const char *name;
    field fields[16];
} op_schemas[] = {
    {"app.put", {OP_HEAD, APP_FIELDS, END}},
    {"code.put",
     {OP_HEAD, {"version", K_UINT, false}, {"sha256", K_SHA, false}, {"main", K_STR, false},
      {"modules", K_MODULES, false}, END}},
    {"env.put", {OP_HEAD, {"name", K_ENVNAME, false}, {"value", K_ANY, false}, END}},
    {"env.del", {OP_HEAD, {"name", K_ENVNAME, false}, END}},
    {"secret.put", {OP_HEAD, {"name", K_ENVNAME, false}, END}},
    {"secret.del", {OP_HEAD, {"name", K_ENVNAME, false}, END}},
    {"app.drain", {OP_HEAD, {"timeout_ms", K_UINT, false}, END}},
    {"app.remove", {OP_HEAD, END}},
};

static const field snapapp_fields[] = {
    {"app", K_APP, false},         APP_FIELDS,
    {"main", K_STR_NULL, false},   {"modules", K_MODULES, false},
    {"vars", K_VARS, false},       {"secrets", K_SECRETS, false},
    {"drain_timeout_ms", K_UINT, true}, END};
/* clang-format on */

static int check_op_in(ck *c, const json_t *op)
{
    json_t *name = json_is_object(op) ? json_object_get(op, "op") : NULL;
    if (!str_ok(name))
        return fail(c, "msg_field", "is not an op (a map with a string \"op\")");
    for (size_t i = 0; i < sizeof op_schemas / sizeof op_schemas[0]; i++)
        if (strcmp(op_schemas[i].name, json_string_value(name)) == 0) {
            int rc = check_fields(c, op, op_schemas[i].fields);
            if (rc == 0 && strcmp(op_schemas[i].name, "code.put") == 0) {
                /* The main module is one of the modules. */
                const char *main = json_string_value(json_object_get(op, "main"));
                json_t *mods = json_object_get(op, "modules"), *m;
                size_t k;
                bool found = false;
                json_array_foreach(mods, k, m)
                    found = found ||
                            strcmp(json_string_value(json_object_get(m, "name")), main) == 0;
                if (!found)
                    rc = fail(c, "msg_field", "main is not one of the modules");
            }
            return rc;
        }
    return failq(c, "msg_field", "unknown op", json_string_value(name));
}

/* A SNAPAPP nanocp could not build or encode (a store read failed, a stored value the wire
 * refuses): only its name and why. A data plane keeps what it runs of it. */
static const field withheld_fields[] = {{"app", K_APP, false}, {"withheld", K_STR, false}, END};

static int check_snapapp_in(ck *c, const json_t *app)
{
    if (json_is_object(app) && json_object_get(app, "withheld") != NULL)
        return check_fields(c, app, withheld_fields);
    int rc = check_fields(c, app, snapapp_fields);
    if (rc != 0)
        return rc;
    /* A deployment is all of version, sha256, main and modules, or none of them. */
    bool deployed = json_integer_value(json_object_get(app, "version")) > 0;
    json_t *main = json_object_get(app, "main");
    json_t *mods = json_object_get(app, "modules");
    if (deployed != (json_is_string(json_object_get(app, "sha256")) && json_is_string(main) &&
                     json_array_size(mods) > 0))
        return fail(c, "msg_field", "version, sha256, main and modules must be given together");
    if (deployed) {
        json_t *m;
        size_t k;
        bool found = false;
        json_array_foreach(mods, k, m)
            found = found || strcmp(json_string_value(json_object_get(m, "name")),
                                    json_string_value(main)) == 0;
        if (!found)
            return fail(c, "msg_field", "main is not one of the modules");
    }
    /* A name is a var or a secret, not both. */
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(app, "vars"), key, v) {
        if (json_object_get(json_object_get(app, "secrets"), key) != NULL)
            return failq(c, "msg_field", "a var and a secret share the name", key);
    }
    if (json_object_size(json_object_get(app, "vars")) +
            json_object_size(json_object_get(app, "secrets")) >
        NANO_ENV_MAX_ENTRIES)
        return fail(c, "msg_too_large", "has more than 128 vars and secrets");
    return 0;
}

int nano_msg_check_op(const json_t *op, nano_error *err)
{
    ck c = {.err = err};
    return check_op_in(&c, op);
}

int nano_msg_check_snapapp(const json_t *app, nano_error *err)
{
    ck c = {.err = err};
    return check_snapapp_in(&c, app);
}

/* --- messages --------------------------------------------------------------------------------- */

/* clang-format off */
#define ENVELOPE {"v", K_UINT, false}, {"type", K_STR, false}
#define REQUEST_HEAD ENVELOPE, {"node", K_NODE, false}, {"token", K_TOKEN, false}
#define REPLY_HEAD {"v", K_UINT, false}, {"ok", K_BOOL, false}

static const field delta_fields[] = {
    ENVELOPE, {"first", K_UINT, false}, {"seq", K_UINT, false}, {"ops", K_OPS, false}, END};
static const field heartbeat_fields[] = {
    ENVELOPE, {"seq", K_UINT, false}, {"at_ms", K_UINT, false}, END};

/* Request and reply schemas by type. */
static const struct {
    nano_msg_type type;
    field request[8];
    field reply[6];
} rpc_schemas[] = {
    {NANO_MSG_HELLO,
     {REQUEST_HEAD, {"version", K_STR, false}, {"addr", K_STR, false},
      {"capabilities", K_STRS, false}, END},
     {REPLY_HEAD, {"seq", K_UINT, false}, {"heartbeat_ms", K_UINT, false}, END}},
    {NANO_MSG_SNAPSHOT,
     {REQUEST_HEAD, END},
     {REPLY_HEAD, {"seq", K_UINT, false}, {"apps", K_APPS, false}, END}},
    {NANO_MSG_CODE_GET,
     {REQUEST_HEAD, {"sha256", K_SHA, false}, END},
     {REPLY_HEAD, {"sha256", K_SHA, false}, {"data", K_STR, false}, END}},
    {NANO_MSG_CODE_BATCH,
     {REQUEST_HEAD, {"sha256s", K_SHAS, false}, END},
     {REPLY_HEAD, {"modules", K_BLOBS, false}, END}},
    {NANO_MSG_SECRETS_GET,
     {REQUEST_HEAD, {"app", K_APP, false}, END},
     {REPLY_HEAD, {"app", K_APP, false}, {"secrets", K_SECRETS, false}, END}},
    {NANO_MSG_STATUS,
     {REQUEST_HEAD, {"applied_seq", K_UINT, false}, {"apps", K_APPSTATES, false}, END},
     {REPLY_HEAD, {"seq", K_UINT, false}, END}},
    {NANO_MSG_DRAIN_ACK,
     {REQUEST_HEAD, {"app", K_APP, false}, {"result", K_ACK, false},
      {"in_flight", K_UINT, false}, END},
     {REPLY_HEAD, END}},
};
/* clang-format on */

static const field error_reply_fields[] = {REPLY_HEAD, {"error", K_ERROR, false}, END};

static size_t rpc_index(nano_msg_type t)
{
    for (size_t i = 0; i < sizeof rpc_schemas / sizeof rpc_schemas[0]; i++)
        if (rpc_schemas[i].type == t)
            return i;
    return SIZE_MAX;
}

static uint64_t u64(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : 0;
}

/* The delta's seq bookkeeping: ops are F..S, one each, consecutive. */
static int check_delta_seqs(ck *c, const json_t *body)
{
    uint64_t first = u64(body, "first"), seq = u64(body, "seq");
    json_t *ops = json_object_get(body, "ops");
    if (first == 0 || seq < first || seq - first + 1 != json_array_size(ops))
        return fail(c, "msg_field", "first..seq does not match the number of ops");
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        if (u64(op, "seq") != first + i)
            return fail(c, "msg_field", "ops' seqs are not first, first+1, ...");
    }
    return 0;
}

/* decode_map: msgpack -> a map with v == NANO_MSG_V. */
static int decode_map(const void *data, size_t len, json_t **out, nano_error *err)
{
    json_t *body = NULL;
    int rc = nano_mpjson_decode(data, len, &limits, &body, err);
    if (rc != 0) {
        if (err != NULL) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            nano_error_set(err, rc, rc == NANO_ETOOBIG ? "msg_too_large" : "msg_malformed",
                           "malformed message: %s", why);
        }
        return rc;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        return nano_error_set(err, NANO_ESYNTAX, "msg_malformed", "message is not a map");
    }
    json_t *v = json_object_get(body, "v");
    if (!json_is_integer(v) || json_integer_value(v) != NANO_MSG_V) {
        json_decref(body);
        return nano_error_set(err, NANO_ESYNTAX, "msg_version",
                              "message has no \"v\" or a version other than %d", NANO_MSG_V);
    }
    *out = body;
    return 0;
}

static void fill(nano_msg *out, nano_msg_type type, json_t *body)
{
    memset(out, 0, sizeof *out);
    out->type = type;
    out->body = body;
    out->seq = u64(body, "seq");
    out->first = u64(body, "first");
    out->node = json_string_value(json_object_get(body, "node"));
    out->token = json_string_value(json_object_get(body, "token"));
    out->ok = json_is_true(json_object_get(body, "ok"));
    json_t *e = json_object_get(body, "error");
    out->error_code = json_string_value(json_object_get(e, "code"));
    out->error_message = json_string_value(json_object_get(e, "message"));
}

static nano_msg_type body_type(const json_t *body)
{
    return nano_msg_type_from_name(json_string_value(json_object_get(body, "type")));
}

int nano_msg_decode_pub(const void *data, size_t len, nano_msg *out, nano_error *err)
{
    json_t *body;
    int rc = decode_map(data, len, &body, err);
    if (rc != 0)
        return rc;
    ck c = {.err = err};
    nano_msg_type t = body_type(body);
    if (t == NANO_MSG_DELTA) {
        rc = check_fields(&c, body, delta_fields);
        if (rc == 0)
            rc = check_delta_seqs(&c, body);
    } else if (t == NANO_MSG_HEARTBEAT) {
        rc = check_fields(&c, body, heartbeat_fields);
    } else {
        rc = nano_error_set(err, NANO_ESYNTAX, "msg_type",
                            "message type is not delta or heartbeat");
    }
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    fill(out, t, body);
    return 0;
}

int nano_msg_decode_request(const void *data, size_t len, nano_msg *out, nano_error *err)
{
    json_t *body;
    int rc = decode_map(data, len, &body, err);
    if (rc != 0)
        return rc;
    nano_msg_type t = body_type(body);
    size_t i = rpc_index(t);
    ck c = {.err = err};
    rc = i == SIZE_MAX
             ? nano_error_set(err, NANO_ESYNTAX, "msg_type", "request type is missing or unknown")
             : check_fields(&c, body, rpc_schemas[i].request);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    fill(out, t, body);
    return 0;
}

int nano_msg_decode_reply(nano_msg_type req, const void *data, size_t len, nano_msg *out,
                          nano_error *err)
{
    size_t i = rpc_index(req);
    if (i == SIZE_MAX)
        return nano_error_set(err, NANO_EINVAL, "msg_type", "no reply for this message type");
    json_t *body;
    int rc = decode_map(data, len, &body, err);
    if (rc != 0)
        return rc;
    ck c = {.err = err};
    json_t *ok = json_object_get(body, "ok");
    if (!json_is_boolean(ok))
        rc = nano_error_set(err, NANO_ESYNTAX, "msg_field", "reply has no boolean \"ok\"");
    else
        rc = check_fields(&c, body, json_is_true(ok) ? rpc_schemas[i].reply : error_reply_fields);
    if (rc != 0) {
        json_decref(body);
        return rc;
    }
    fill(out, req, body);
    return 0;
}

void nano_msg_fini(nano_msg *m)
{
    if (m == NULL)
        return;
    json_decref(m->body);
    memset(m, 0, sizeof *m);
}

/* --- encoding --------------------------------------------------------------------------------- */

/* Validates body with the decoder's check, then packs it. */
static int pack_checked(json_t *body, int (*check)(ck *, const json_t *, const void *),
                        const void *arg, nano_buf *out, nano_error *err)
{
    ck c = {.err = err};
    int rc = check(&c, body, arg);
    if (rc == 0)
        rc = nano_mpjson_encode(body, &limits, out, err);
    json_decref(body);
    if (rc != 0 && err != NULL && strcmp(err->id, "msgpack_too_large") == 0)
        snprintf(err->id, sizeof err->id, "msg_too_large");
    return rc;
}

static int check_with_fields(ck *c, const json_t *body, const void *fields)
{
    return check_fields(c, body, fields);
}

static int check_delta(ck *c, const json_t *body, const void *unused)
{
    (void)unused;
    int rc = check_fields(c, body, delta_fields);
    return rc == 0 ? check_delta_seqs(c, body) : rc;
}

static json_t *envelope(nano_msg_type t)
{
    json_t *body = json_object();
    json_object_set_new(body, "v", json_integer(NANO_MSG_V));
    json_object_set_new(body, "type", json_string(nano_msg_type_name(t)));
    return body;
}

/* Adds fields' members to body (fields may be NULL). */
static void merge(json_t *body, const json_t *fields)
{
    if (json_is_object(fields))
        json_object_update(body, (json_t *)fields);
}

int nano_msg_encode_delta(const json_t *ops, nano_buf *out, nano_error *err)
{
    json_t *body = envelope(NANO_MSG_DELTA);
    size_t n = json_is_array(ops) ? json_array_size(ops) : 0;
    uint64_t first = n > 0 ? u64(json_array_get(ops, 0), "seq") : 0;
    json_object_set_new(body, "first", json_integer((json_int_t)first));
    json_object_set_new(body, "seq", json_integer((json_int_t)(n > 0 ? first + n - 1 : 0)));
    json_object_set(body, "ops", json_is_array(ops) ? (json_t *)ops : json_null());
    return pack_checked(body, check_delta, NULL, out, err);
}

int nano_msg_encode_heartbeat(uint64_t seq, uint64_t at_ms, nano_buf *out, nano_error *err)
{
    json_t *body = envelope(NANO_MSG_HEARTBEAT);
    json_object_set_new(body, "seq", json_integer((json_int_t)seq));
    json_object_set_new(body, "at_ms", json_integer((json_int_t)at_ms));
    return pack_checked(body, check_with_fields, heartbeat_fields, out, err);
}

int nano_msg_encode_request(nano_msg_type type, const char *node, const char *token,
                            const json_t *fields, nano_buf *out, nano_error *err)
{
    size_t i = rpc_index(type);
    if (i == SIZE_MAX)
        return nano_error_set(err, NANO_EINVAL, "msg_type", "not a request type");
    json_t *body = envelope(type);
    merge(body, fields);
    /* A node or token that is not UTF-8 becomes nil, which the check then refuses. */
    json_t *n = json_string(node ? node : ""), *t = json_string(token ? token : "");
    json_object_set_new(body, "node", n ? n : json_null());
    json_object_set_new(body, "token", t ? t : json_null());
    return pack_checked(body, check_with_fields, rpc_schemas[i].request, out, err);
}

int nano_msg_encode_reply(nano_msg_type type, const json_t *fields, nano_buf *out, nano_error *err)
{
    size_t i = rpc_index(type);
    if (i == SIZE_MAX)
        return nano_error_set(err, NANO_EINVAL, "msg_type", "not a request type");
    json_t *body = json_object();
    merge(body, fields);
    json_object_set_new(body, "v", json_integer(NANO_MSG_V));
    json_object_set_new(body, "ok", json_true());
    return pack_checked(body, check_with_fields, rpc_schemas[i].reply, out, err);
}

/* A JSON string of s with each byte that breaks UTF-8 replaced by '?', at most 1024 bytes. */
static json_t *text(const char *s)
{
    char copy[1025];
    snprintf(copy, sizeof copy, "%s", s ? s : "");
    size_t len = strlen(copy);
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)copy[i];
        size_t n = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
        if (i + n <= len && nano_utf8_valid(copy + i, n))
            i += n;
        else
            copy[i++] = '?';
    }
    return json_string(copy);
}

void nano_msg_encode_error(const char *code, const char *message, nano_buf *out)
{
    json_t *body = json_object();
    json_object_set_new(body, "v", json_integer(NANO_MSG_V));
    json_object_set_new(body, "ok", json_false());
    json_object_set_new(body, "error",
                        json_pack("{s:o, s:o}", "code", text(code), "message", text(message)));
    nano_error err;
    (void)nano_mpjson_encode(body, &limits, out, &err); /* two bounded strings: always fits */
    json_decref(body);
}
