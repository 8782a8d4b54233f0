/* admin_msg.h: the envelope of the binary admin API (msgpack over NNG REQ/REP, docs/admin-api.md),
 * in one place for both ends (nanocp's api_rpc.c and nanoctl):
 *
 *   request  {"v": 1, "op": "apps.list", "token": "...", "args": {...}}
 *   reply    {"v": 1, "ok": true, "result": RESULT}
 *            {"v": 1, "ok": false, "error": {"code": "app_not_found", "message": "...",
 *                                             "field": "name"}}
 *
 * Bodies are the same jansson values the HTTP admin API carries as JSON (mpjson.h converts).
 * A request whose v is not 1 is refused with code "unsupported_version"; a reply is decoded
 * only when its v is 1. Pure functions; any thread. */
#ifndef NANO_ADMIN_MSG_H
#define NANO_ADMIN_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"

#define NANO_ADMIN_V 1
#define NANO_ADMIN_MAX_BYTES (64u * 1024 * 1024) /* a whole request or reply */
#define NANO_ADMIN_OP_MAX 63                     /* bytes in an op name */
#define NANO_ADMIN_TOKEN_MAX 1024                /* bytes in a token */

typedef struct nano_admin_request {
    char op[NANO_ADMIN_OP_MAX + 1];
    char *token;  /* owned; NULL when the request carries none */
    json_t *args; /* owned; an object ({} when absent or nil) */
} nano_admin_request;

/* nano_admin_request_encode: appends the msgpack request for op with token (NULL: none) and
 * args (borrowed; NULL: {}, else an object) to out. Returns 0, or NANO_EINVAL (bad op or args)
 * / NANO_ETOOBIG (above NANO_ADMIN_MAX_BYTES) with err filled; out is unchanged on error. */
int nano_admin_request_encode(const char *op, const char *token, const json_t *args, nano_buf *out,
                              nano_error *err);

/* nano_admin_request_decode: decodes and validates a request (at most NANO_ADMIN_MAX_BYTES;
 * keys v, op, token, args and no others). Returns 0 and fills *out (release it with
 * nano_admin_request_fini), or an error whose err->id is the code to answer with:
 * "too_large", "unsupported_version" (v is an integer other than 1) or "bad_request"
 * (anything else; the message says what). *out is written only on success. */
int nano_admin_request_decode(const void *data, size_t len, nano_admin_request *out,
                              nano_error *err);
void nano_admin_request_fini(nano_admin_request *req); /* NULL-safe; zeroes req */

typedef struct nano_admin_reply {
    bool ok;
    json_t *result; /* ok: the result (owned; any JSON value) */
    char code[48];  /* !ok: the error, as the server sent it (truncated to fit) */
    char message[512];
    char field[128];
} nano_admin_reply;

/* nano_admin_reply_encode_ok: appends {v, ok: true, result} (result borrowed; NULL: {}).
 * Returns 0, or NANO_ETOOBIG / NANO_EINVAL with err filled and out unchanged; the caller then
 * answers with an error reply instead. */
int nano_admin_reply_encode_ok(const json_t *result, nano_buf *out, nano_error *err);

/* nano_admin_reply_encode_error: appends {v, ok: false, error: {code, message, field}}.
 * Strings are borrowed (NULL: ""); bytes that are not UTF-8 are replaced by '?'. Cannot fail. */
void nano_admin_reply_encode_error(const char *code, const char *message, const char *field,
                                   nano_buf *out);

/* nano_admin_reply_decode: decodes a reply (at most NANO_ADMIN_MAX_BYTES). Returns 0 and fills
 * *out (release with nano_admin_reply_fini), or NANO_ESYNTAX / NANO_ETOOBIG with err filled
 * (id "bad_reply" or "unsupported_version") when it is not a well-formed v1 reply. */
int nano_admin_reply_decode(const void *data, size_t len, nano_admin_reply *out, nano_error *err);
void nano_admin_reply_fini(nano_admin_reply *rep); /* NULL-safe */

#endif
