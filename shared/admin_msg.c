#include "admin_msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "mpjson.h"

static const nano_mpjson_limits limits = {NANO_ADMIN_MAX_BYTES, NANO_MPJSON_MAX_DEPTH};

static int bad(nano_error *err, const char *id, const char *msg)
{
    return nano_error_set(err, NANO_ESYNTAX, id, "%s", msg);
}

/* check_v: the envelope's v is present, an integer, and 1. */
static int check_v(json_t *env, const char *bad_id, nano_error *err)
{
    json_t *v = json_object_get(env, "v");
    if (!v)
        return bad(err, bad_id, "envelope has no \"v\" (version)");
    if (!json_is_integer(v))
        return bad(err, bad_id, "envelope \"v\" is not an integer");
    if (json_integer_value(v) != NANO_ADMIN_V)
        return nano_error_set(err, NANO_ESYNTAX, "unsupported_version",
                              "envelope version %" JSON_INTEGER_FORMAT
                              " is not supported (this side speaks %d)",
                              json_integer_value(v), NANO_ADMIN_V);
    return 0;
}

int nano_admin_request_encode(const char *op, const char *token, const json_t *args, nano_buf *out,
                              nano_error *err)
{
    if (!op || op[0] == '\0' || strlen(op) > NANO_ADMIN_OP_MAX)
        return nano_error_set(err, NANO_EINVAL, "bad_request", "op name is empty or too long");
    if (args && !json_is_object(args))
        return nano_error_set(err, NANO_EINVAL, "bad_request", "args are not an object");
    if (token && strlen(token) > NANO_ADMIN_TOKEN_MAX)
        return nano_error_set(err, NANO_EINVAL, "bad_request", "token is longer than %d bytes",
                              NANO_ADMIN_TOKEN_MAX);
    json_t *env = json_object();
    json_object_set_new(env, "v", json_integer(NANO_ADMIN_V));
    json_object_set_new(env, "op", json_string(op));
    if (token) {
        json_t *t = json_string(token);
        if (!t) {
            json_decref(env);
            return nano_error_set(err, NANO_EINVAL, "bad_request", "token is not UTF-8 text");
        }
        json_object_set_new(env, "token", t);
    }
    json_object_set_new(env, "args", args ? json_incref((json_t *)args) : json_object());
    int rc = nano_mpjson_encode(env, &limits, out, err);
    json_decref(env);
    return rc;
}

int nano_admin_request_decode(const void *data, size_t len, nano_admin_request *out,
                              nano_error *err)
{
    json_t *env = NULL;
    char *token = NULL;
    int rc = nano_mpjson_decode(data, len, &limits, &env, err);
    if (rc != 0) {
        /* Keep the decoder's message; answer with the envelope's codes. */
        if (err)
            snprintf(err->id, sizeof err->id, "%s",
                     strcmp(err->id, "msgpack_too_large") == 0 ? "too_large" : "bad_request");
        return rc;
    }
    if (!json_is_object(env)) {
        rc = bad(err, "bad_request", "request is not a map");
        goto done;
    }
    if ((rc = check_v(env, "bad_request", err)) != 0)
        goto done;
    const char *key;
    json_t *val;
    json_object_foreach(env, key, val) {
        if (strcmp(key, "v") != 0 && strcmp(key, "op") != 0 && strcmp(key, "token") != 0 &&
            strcmp(key, "args") != 0) {
            rc = nano_error_set(err, NANO_ESYNTAX, "bad_request",
                                "request has an unknown key \"%.64s\"", key);
            goto done;
        }
    }
    json_t *op = json_object_get(env, "op");
    if (!json_is_string(op) || json_string_length(op) == 0 ||
        json_string_length(op) > NANO_ADMIN_OP_MAX ||
        strlen(json_string_value(op)) != json_string_length(op)) {
        rc = bad(err, "bad_request", "request \"op\" is missing or not a short string");
        goto done;
    }
    json_t *tok = json_object_get(env, "token");
    if (tok && !json_is_null(tok)) {
        if (!json_is_string(tok) || json_string_length(tok) > NANO_ADMIN_TOKEN_MAX ||
            strlen(json_string_value(tok)) != json_string_length(tok)) {
            rc = bad(err, "bad_request", "request \"token\" is not a string of at most 1024 bytes");
            goto done;
        }
        token = nano_xstrdup(json_string_value(tok));
    }
    json_t *args = json_object_get(env, "args");
    if (args && !json_is_null(args) && !json_is_object(args)) {
        rc = bad(err, "bad_request", "request \"args\" is not a map");
        goto done;
    }
    memset(out, 0, sizeof *out);
    snprintf(out->op, sizeof out->op, "%s", json_string_value(op));
    out->token = token;
    token = NULL;
    out->args = args && json_is_object(args) ? json_incref(args) : json_object();
done:
    nano_free(token);
    json_decref(env);
    return rc;
}

void nano_admin_request_fini(nano_admin_request *req)
{
    if (!req)
        return;
    nano_free(req->token);
    json_decref(req->args);
    memset(req, 0, sizeof *req);
}

int nano_admin_reply_encode_ok(const json_t *result, nano_buf *out, nano_error *err)
{
    json_t *env = json_object();
    json_object_set_new(env, "v", json_integer(NANO_ADMIN_V));
    json_object_set_new(env, "ok", json_true());
    json_object_set_new(env, "result", result ? json_incref((json_t *)result) : json_object());
    int rc = nano_mpjson_encode(env, &limits, out, err);
    json_decref(env);
    return rc;
}

/* A JSON string of s with every byte that breaks UTF-8 replaced by '?'. */
static json_t *text(const char *s)
{
    if (!s)
        s = "";
    size_t len = strlen(s);
    if (nano_utf8_valid(s, len))
        return json_stringn(s, len);
    char *copy = nano_xstrdup(s);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)copy[i];
        size_t n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2; /* as the lead byte says */
        if (i + n <= len && nano_utf8_valid(copy + i, n))
            i += n;
        else
            copy[i++] = '?';
    }
    json_t *j = json_string(copy);
    nano_free(copy);
    return j;
}

void nano_admin_reply_encode_error(const char *code, const char *message, const char *field,
                                   nano_buf *out)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", text(code));
    json_object_set_new(e, "message", text(message));
    json_object_set_new(e, "field", text(field));
    json_t *env = json_object();
    json_object_set_new(env, "v", json_integer(NANO_ADMIN_V));
    json_object_set_new(env, "ok", json_false());
    json_object_set_new(env, "error", e);
    nano_error err;
    int rc = nano_mpjson_encode(env, &limits, out, &err);
    (void)rc; /* three bounded strings: never above the limits */
    json_decref(env);
}

static void copy_str(char *dst, size_t cap, json_t *v)
{
    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
}

int nano_admin_reply_decode(const void *data, size_t len, nano_admin_reply *out, nano_error *err)
{
    json_t *env = NULL;
    int rc = nano_mpjson_decode(data, len, &limits, &env, err);
    if (rc != 0) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err ? err->message : "");
        return nano_error_set(err, rc, "bad_reply", "malformed reply: %s", why);
    }
    if (!json_is_object(env)) {
        rc = bad(err, "bad_reply", "malformed reply: not a map");
        goto done;
    }
    if ((rc = check_v(env, "bad_reply", err)) != 0)
        goto done;
    json_t *ok = json_object_get(env, "ok");
    if (!json_is_boolean(ok)) {
        rc = bad(err, "bad_reply", "malformed reply: \"ok\" is not a boolean");
        goto done;
    }
    nano_admin_reply r = {0};
    r.ok = json_is_true(ok);
    if (r.ok) {
        json_t *res = json_object_get(env, "result");
        r.result = res ? json_incref(res) : json_object();
    } else {
        json_t *e = json_object_get(env, "error");
        if (!json_is_object(e) || !json_is_string(json_object_get(e, "code"))) {
            rc = bad(err, "bad_reply", "malformed reply: error without a code");
            goto done;
        }
        copy_str(r.code, sizeof r.code, json_object_get(e, "code"));
        copy_str(r.message, sizeof r.message, json_object_get(e, "message"));
        copy_str(r.field, sizeof r.field, json_object_get(e, "field"));
    }
    *out = r;
done:
    json_decref(env);
    return rc;
}

void nano_admin_reply_fini(nano_admin_reply *rep)
{
    if (!rep)
        return;
    json_decref(rep->result);
    rep->result = NULL;
}
