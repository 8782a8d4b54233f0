/* msg.h: the control plane <-> data plane protocol (docs/distribution.md), encode and decode
 * of every message in one place for both ends (nanocp's distrib.c, nano-dp's
 * control/cp_client.c and the test fleet client). Messages are msgpack maps (mpjson.h
 * converts them to and from jansson values); this module owns their shape: decoding
 * validates a whole message against its schema, so a caller never sees a half-valid one and
 * can apply it or drop it as a unit.
 *
 * Two channels:
 *
 *  PUB/SUB (nanocp --dataplane, default tcp://127.0.0.1:7072), nanocp -> every nano-dp:
 *    {v:1, type:"delta", first:F, seq:S, ops:[OP, ...]}   one committed admin change: the
 *        config-log entries F..S (one OP each, in order; ops[i].seq == F + i). A data plane
 *        that has applied A applies a delta only when F == A + 1; S <= A is a duplicate
 *        (ignored); F > A + 1 is a gap (resync with a snapshot); F <= A < S (after a
 *        snapshot taken mid-stream) applies only the ops with seq > A.
 *    {v:1, type:"heartbeat", seq:S, at_ms:T}              once a second: the last seq
 *        (a data plane behind it resyncs) and nanocp's wall clock in ms.
 *
 *  REQ/REP (nanocp --dataplane-rpc, default tcp://127.0.0.1:7073), nano-dp asks:
 *    request {v:1, type:T, node:NAME, token:TOKEN, ...fields of T}
 *    reply   {v:1, ok:true, ...fields of T's reply}  |  {v:1, ok:false, error:{code, message}}
 *    error codes nanocp answers with: bad_request (malformed or invalid request), unauthorized
 *    (wrong node token), too_large, not_found (code.get: no such blob), app_not_found
 *    (secrets.get), internal. The replies' seq is the last seq nanocp has published.
 *
 *    hello       {version, addr, capabilities:[str]}    -> {seq, heartbeat_ms}
 *                version: nano-dp's version; addr: where it serves HTTP ("0.0.0.0:8080").
 *    snapshot    {}                                     -> {seq, apps:[SNAPAPP]}
 *                the whole config as of seq (consistent: built in one read transaction).
 *    code.get    {sha256}                               -> {sha256, data: str}
 *                one module's bytes by its sha256 (modules are UTF-8 JavaScript).
 *    code.batch  {sha256s: [sha256, ...]}  (at most 256) -> {modules: {sha256: str}}
 *                many modules in one round trip (a snapshot's, on a cold code cache). nanocp
 *                answers as many as fit in NANO_MSG_BATCH_BYTES, in the order asked; a module
 *                left out (too much for one reply, or unknown) is fetched with code.get.
 *    secrets.get {app}                                  -> {app, secrets:{NAME: str}}
 *                the app's secret values now (plaintext: only on this channel, which carries
 *                the node token and is TLS beyond loopback). The values are as of now, not as
 *                of a delta's seq: a name missing from the reply has a secret.del on its way.
 *    status      {applied_seq, apps:{NAME: APPSTATE}}   -> {seq}
 *                sent every second; the reply's seq tells a node it is behind.
 *    drain.ack   {app, result:"drained"|"timed_out", in_flight} -> {}
 *                the node has finished draining app (docs/distribution.md#drains).
 *
 *  OP (in a delta; seq and op always, app always a valid app name):
 *    app.put    {seq, op, app, hostnames:[str], path_prefix:str|null, default:bool,
 *                node_compat:bool, required_env:[str], limits:{...nano.json limits},
 *                state:"active"|"draining", version:int>=0, sha256:str|null,
 *                egress?:{allow?:[str], deny?:[str]}|null}
 *               version/sha256: the active deployment (0/null before the first deploy); the
 *               data plane serves an app only once it has a deployment. sha256 is the
 *               bundle's: a single module's own sha256, else sha256 over "NAME\0SHA256HEX\n"
 *               for each module in name (strcmp) order, so a data plane can check the code it
 *               fetched. egress: the app's egress policy as nano_egress_to_json writes it
 *               (absent or null: none set); the decoder parses it whole (shared/egress.h).
 *    code.put   {seq, op, app, version, sha256, main:str, modules:[{name, size, sha256}]}
 *               announces a deployment's modules; bytes are fetched with code.get.
 *    env.put    {seq, op, app, name, value: any JSON}   a var (a string, or any JSON value)
 *    env.del    {seq, op, app, name}
 *    secret.put {seq, op, app, name}                     the value is NOT in the delta: fetch
 *                                                        it with secrets.get (PUB carries no
 *                                                        secret value, ever)
 *    secret.del {seq, op, app, name}
 *    app.drain  {seq, op, app, timeout_ms}               stop serving app, drain, then ack
 *    app.remove {seq, op, app}                           nanocp has deleted app
 *
 *  SNAPAPP = the app.put fields without seq/op, plus
 *    main:str|null, modules:[{name, size, sha256}] (the active deployment's; [] before one),
 *    vars:{NAME: any JSON}, secrets:{NAME: str}, drain_timeout_ms (state "draining" only);
 *    or, for an app nanocp could not put in the snapshot (a store read failed, or a stored
 *    value this protocol refuses), {app, withheld: "why"} alone: a data plane keeps what it
 *    runs of that app (nothing, if it runs none) and resyncs before applying an op to it.
 *  APPSTATE = {state:"active"|"draining"|"drained"|"timed_out", in_flight:int, version:int,
 *              load_error?:{code, message}}
 *             load_error: present only while the node refuses `version` because it does not
 *             load there (the check's error id, e.g. module_syntax, and its one-line message);
 *             the app's previous version, if any, keeps serving on that node.
 *
 * Checks made by the decoder (each failure: NANO_ESYNTAX or NANO_ETOOBIG, err->id as listed,
 * one-line message naming the field): msgpack well-formed and within the size limit
 * (msg_too_large), a map with v == 1 (msg_version), a known type (msg_type), every required
 * field present with its type, no unknown field (msg_field), names valid per shared/config.h
 * and env.h (app names, env names), sha256 as 64 lowercase hex digits, module names as
 * service.h describes, counts within bounds (256 modules, 128 env entries, 5120-byte values,
 * 100000 apps in a snapshot, ops in a delta == seq - first + 1 <= 100000, ops' seqs
 * consecutive). Values the data plane must still check semantically (limits ranges, hostname
 * syntax) are checked by the data plane when it builds its nano_config.
 *
 * Pure functions; any thread. */
#ifndef NANO_MSG_H
#define NANO_MSG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define NANO_MSG_V 1
/* Largest message either way: a code.get reply holds one module (at most 32 MiB). */
#define NANO_MSG_MAX_BYTES (40u * 1024 * 1024)
/* Bounds checked by the decoder. */
#define NANO_MSG_MAX_OPS 100000
#define NANO_MSG_MAX_APPS 100000
#define NANO_MSG_MAX_MODULES 256
#define NANO_MSG_BATCH_MAX 256                   /* sha256s in one code.batch */
#define NANO_MSG_BATCH_BYTES (32u * 1024 * 1024) /* module bytes in one code.batch reply */
#define NANO_MSG_NODE_MAX 63                     /* node names: [A-Za-z0-9._-]{1,63} */
#define NANO_MSG_TOKEN_MAX 1024
/* Nesting of one env var's JSON value that nanocp accepts (its admin API refuses deeper ones),
 * well inside the decoder's depth limit (NANO_MPJSON_MAX_DEPTH) around it. */
#define NANO_MSG_VAR_MAX_DEPTH 32

typedef enum nano_msg_type {
    NANO_MSG_NONE = 0,
    /* PUB */
    NANO_MSG_DELTA,
    NANO_MSG_HEARTBEAT,
    /* REQ (a reply is decoded with the request's type) */
    NANO_MSG_HELLO,
    NANO_MSG_SNAPSHOT,
    NANO_MSG_CODE_GET,
    NANO_MSG_CODE_BATCH,
    NANO_MSG_SECRETS_GET,
    NANO_MSG_STATUS,
    NANO_MSG_DRAIN_ACK,
} nano_msg_type;

/* The wire name of a type ("delta", "code.get", ...), or "?" */
const char *nano_msg_type_name(nano_msg_type t);
/* nano_msg_type_from_name: NANO_MSG_NONE when unknown. */
nano_msg_type nano_msg_type_from_name(const char *name);

/* A decoded, validated message. body is the whole map (owned), with v and type; the fields
 * below are shortcuts into it (borrowed from body) for what every receiver looks at. */
typedef struct nano_msg {
    nano_msg_type type;
    json_t *body;
    uint64_t seq;              /* delta: the last op's; heartbeat; hello/snapshot/status replies */
    uint64_t first;            /* delta: the first op's */
    const char *node;          /* requests */
    const char *token;         /* requests */
    bool ok;                   /* replies */
    const char *error_code;    /* replies with ok false */
    const char *error_message; /* replies with ok false */
} nano_msg;

void nano_msg_fini(nano_msg *m); /* NULL-safe; zeroes m */

/* Node names: [A-Za-z0-9._-]{1,63}. */
bool nano_msg_node_valid(const char *name);

/* --- encoding --------------------------------------------------------------------------------
 * Each encoder appends one message to out and returns 0, or an error (out unchanged) when the
 * value would not pass the decoder (so a sender never emits what its peer would drop) or would
 * exceed NANO_MSG_MAX_BYTES. Arguments are borrowed. */

/* nano_msg_encode_delta: ops is an array of OP objects (each with seq and op). */
int nano_msg_encode_delta(const json_t *ops, nano_buf *out, nano_error *err);
int nano_msg_encode_heartbeat(uint64_t seq, uint64_t at_ms, nano_buf *out, nano_error *err);

/* nano_msg_encode_request: {v, type, node, token} plus fields (an object holding the type's
 * request fields; NULL: none). */
int nano_msg_encode_request(nano_msg_type type, const char *node, const char *token,
                            const json_t *fields, nano_buf *out, nano_error *err);

/* nano_msg_encode_reply: {v, ok:true} plus fields (the reply fields of type; NULL: none). */
int nano_msg_encode_reply(nano_msg_type type, const json_t *fields, nano_buf *out, nano_error *err);
/* nano_msg_encode_error: {v, ok:false, error:{code, message}}. Cannot fail (bytes that are not
 * UTF-8 are replaced with '?'). */
void nano_msg_encode_error(const char *code, const char *message, nano_buf *out);

/* --- decoding --------------------------------------------------------------------------------
 * Each decoder reads exactly one message from data[0..len) and, when it is valid, fills *out
 * (release with nano_msg_fini) and returns 0; otherwise returns an error with err filled and
 * *out untouched. */

/* nano_msg_decode_pub: a delta or a heartbeat. */
int nano_msg_decode_pub(const void *data, size_t len, nano_msg *out, nano_error *err);
/* nano_msg_decode_request: any request type. */
int nano_msg_decode_request(const void *data, size_t len, nano_msg *out, nano_error *err);
/* nano_msg_decode_reply: the reply to a request of type req (an error reply is a valid reply:
 * ok false with error_code/error_message set). */
int nano_msg_decode_reply(nano_msg_type req, const void *data, size_t len, nano_msg *out,
                          nano_error *err);

/* nano_msg_check_op: validates one OP object as a delta's decoder does (sender side, and for
 * tests). */
int nano_msg_check_op(const json_t *op, nano_error *err);
/* nano_msg_check_snapapp: validates one SNAPAPP object. */
int nano_msg_check_snapapp(const json_t *app, nano_error *err);

/* nano_msg_bundle_sha256: a deployment bundle's hash (app.put's sha256): the module's own
 * sha256 for a single module, else sha256 over "NAME\0SHA256HEX\n" for each module, which the
 * caller gives in name (strcmp) order. nanocp names deployments with it; a data plane checks
 * the code it fetched against it. */
void nano_msg_bundle_sha256(const char *const *names, const char *const *shas, size_t n,
                            char out[65]);

/* nano_msg_sha256_valid: 64 lowercase hex digits. */
bool nano_msg_sha256_valid(const char *s);

/* nano_msg_module_name_valid: a module name as deployments use them: "index.js",
 * "lib/util.mjs" (segments of [A-Za-z0-9._-] separated by '/', no "." or ".." segment, at most
 * NANO_MSG_MODULE_NAME_MAX bytes), so that it is a safe relative path under a code dir. */
#define NANO_MSG_MODULE_NAME_MAX 255
bool nano_msg_module_name_valid(const char *name);

#endif
