/* mpjson.h: msgpack <-> JSON (jansson) conversion for the binary admin API (nanocp's
 * api_rpc.c and nanoctl), so that both admin front ends hand the service the same json_t.
 *
 * msgpack -> JSON: map (string keys only, no duplicates) -> object, array, str (valid UTF-8),
 * bin (-> string, only when valid UTF-8), int/uint (within int64), float -> real (finite),
 * bool, nil. ext types are refused. Input is untrusted: every length is checked against the
 * bytes left, nesting against a depth limit, and the whole input against a size limit, so
 * garbage or a truncated buffer is an error and never a crash or a large allocation.
 * JSON -> msgpack: the inverse, packed with msgpack-c (strings as str, integers in the
 * smallest form, reals as float64). Pure functions; any thread. */
#ifndef NANO_MPJSON_H
#define NANO_MPJSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "error.h"

#define NANO_MPJSON_MAX_DEPTH 64
#define NANO_MPJSON_MAX_BYTES (64u * 1024 * 1024)

typedef struct nano_mpjson_limits {
    size_t max_bytes; /* input (decode) or output (encode) size; 0: NANO_MPJSON_MAX_BYTES */
    int max_depth;    /* nested maps/arrays; 0: NANO_MPJSON_MAX_DEPTH */
} nano_mpjson_limits;

/* nano_mpjson_decode: converts exactly one msgpack value in data[0..len) (trailing bytes are
 * an error) into *out (returned owned). lim may be NULL (defaults). Returns 0; NANO_ETOOBIG
 * (id "msgpack_too_large": input above max_bytes; "msgpack_too_deep": nesting above
 * max_depth); NANO_ESYNTAX (id "msgpack_truncated", "msgpack_invalid": a reserved byte, a
 * non-string key, a duplicate key, invalid UTF-8, an integer beyond int64, a non-finite
 * float, an ext type; the message names the byte offset); NANO_ENOMEM. *out is written only
 * on success. */
int nano_mpjson_decode(const void *data, size_t len, const nano_mpjson_limits *lim, json_t **out,
                       nano_error *err);

/* nano_mpjson_encode: appends the msgpack form of value (borrowed) to out. Returns 0, or
 * NANO_ETOOBIG (nesting above max_depth, or out would grow by more than max_bytes), or
 * NANO_EINVAL (a value jansson cannot hold, e.g. a cycle); on error out keeps its old
 * length. */
int nano_mpjson_encode(const json_t *value, const nano_mpjson_limits *lim, nano_buf *out,
                       nano_error *err);

/* nano_utf8_valid: whether s[0..len) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF). NUL bytes are allowed. */
bool nano_utf8_valid(const char *s, size_t len);

/* nano_json_type_name: v's JSON type for messages ("an object", "an array", "a string",
 * "a number", "a boolean", "null"): never its value, which may be a secret. */
const char *nano_json_type_name(const json_t *v);

#endif
