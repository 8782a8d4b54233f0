/* Unit tests for shared/msg.c, the nanocp <-> nano-dp protocol: every message type round-trips;
 * each schema rule refuses what breaks it; garbage, truncated and mutated buffers are errors,
 * never crashes or half-decoded messages (run under ASan/UBSan too). */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

#include "buf.h"
#include "error.h"
#include "mpjson.h"
#include "msg.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (v == NULL)
        fail_msg("bad test JSON at %d: %s", e.position, e.text);
    return v;
}

static json_t *app_put_op(uint64_t seq, const char *app)
{
    json_t *op = parse("{\"op\": \"app.put\", \"hostnames\": [\"api.example.com\"],"
                       " \"path_prefix\": null, \"default\": false, \"node_compat\": false,"
                       " \"required_env\": [\"KEY\"], \"limits\": {\"cpu_ms\": 50},"
                       " \"state\": \"active\", \"version\": 1, \"sha256\": \"" SHA_A "\","
                       " \"egress\": {\"allow\": [\"10.0.0.0/8\"],"
                       " \"deny\": [\"*.internal:5432\"]}}");
    json_object_set_new(op, "seq", json_integer((json_int_t)seq));
    json_object_set_new(op, "app", json_string(app));
    return op;
}

/* Every op kind, seqs first..first+7. */
static json_t *all_ops(uint64_t first)
{
    json_t *ops = json_array();
    json_array_append_new(ops, app_put_op(first, "api"));
    const char *rest[] = {
        "{\"op\": \"code.put\", \"app\": \"api\", \"version\": 2, \"sha256\": \"" SHA_A "\","
        " \"main\": \"index.js\", \"modules\": [{\"name\": \"index.js\", \"size\": 10,"
        " \"sha256\": \"" SHA_B "\"}, {\"name\": \"lib/u.js\", \"size\": 3, \"sha256\": \"" SHA_A
        "\"}]}",
        "{\"op\": \"env.put\", \"app\": \"api\", \"name\": \"FLAGS\", \"value\": {\"beta\": [1, 2]}}",
        "{\"op\": \"env.del\", \"app\": \"api\", \"name\": \"FLAGS\"}",
        "{\"op\": \"secret.put\", \"app\": \"api\", \"name\": \"TOKEN\"}",
        "{\"op\": \"secret.del\", \"app\": \"api\", \"name\": \"TOKEN\"}",
        "{\"op\": \"app.drain\", \"app\": \"api\", \"timeout_ms\": 30000}",
        "{\"op\": \"app.remove\", \"app\": \"api\"}",
    };
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        json_t *op = parse(rest[i]);
        json_object_set_new(op, "seq", json_integer((json_int_t)(first + 1 + i)));
        json_array_append_new(ops, op);
    }
    return ops;
}

static json_t *snapapp(void)
{
    return parse(
        "{\"app\": \"api\", \"hostnames\": [\"api.example.com\", \"*.api.test\"],"
        " \"path_prefix\": \"/v1\", \"default\": false, \"node_compat\": true,"
        " \"required_env\": [], \"limits\": {}, \"state\": \"active\", \"version\": 3,"
        " \"egress\": {\"deny\": [\"169.254.169.254\"]},"
        " \"sha256\": \"" SHA_A "\", \"main\": \"index.js\","
        " \"modules\": [{\"name\": \"index.js\", \"size\": 1, \"sha256\": \"" SHA_B "\"}],"
        " \"vars\": {\"GREETING\": \"hola\", \"N\": 3}, \"secrets\": {\"TOKEN\": \"s3cret\"}}");
}

static void encode_delta_ok(const json_t *ops, nano_buf *b)
{
    nano_error err = {0};
    if (nano_msg_encode_delta(ops, b, &err) != 0)
        fail_msg("encode_delta: %s", err.message);
}

/* decode_pub_fails: the buffer is refused with an error id, and out is left untouched. */
static void decode_pub_fails(const void *data, size_t len, const char *id)
{
    nano_msg m;
    memset(&m, 0x5a, sizeof m);
    nano_error err = {0};
    assert_int_not_equal(nano_msg_decode_pub(data, len, &m, &err), 0);
    assert_true(err.message[0] != '\0');
    if (id != NULL && strcmp(err.id, id) != 0)
        fail_msg("expected error id %s, got %s (%s)", id, err.id, err.message);
    unsigned char *p = (unsigned char *)&m;
    for (size_t i = 0; i < sizeof m; i++)
        assert_int_equal(p[i], 0x5a);
}

/* A body encoded as msgpack without the encoder's checks (to feed the decoder bad shapes). */
static void raw(const json_t *body, nano_buf *b)
{
    nano_error err;
    nano_buf_reset(b);
    assert_int_equal(nano_mpjson_encode(body, NULL, b, &err), 0);
}

/* --- tests ---------------------------------------------------------------------------------- */

static void delta_roundtrip(void **state)
{
    (void)state;
    json_t *ops = all_ops(41);
    nano_buf b = NANO_BUF_INIT;
    encode_delta_ok(ops, &b);
    nano_msg m;
    nano_error err = {0};
    assert_int_equal(nano_msg_decode_pub(b.data, b.len, &m, &err), 0);
    assert_int_equal(m.type, NANO_MSG_DELTA);
    assert_int_equal(m.first, 41);
    assert_int_equal(m.seq, 48);
    assert_true(json_equal(json_object_get(m.body, "ops"), ops));
    nano_msg_fini(&m);
    assert_null(m.body);
    nano_msg_fini(NULL);

    nano_buf_reset(&b);
    assert_int_equal(nano_msg_encode_heartbeat(48, 1700000000000ull, &b, &err), 0);
    assert_int_equal(nano_msg_decode_pub(b.data, b.len, &m, &err), 0);
    assert_int_equal(m.type, NANO_MSG_HEARTBEAT);
    assert_int_equal(m.seq, 48);
    nano_msg_fini(&m);
    nano_buf_fini(&b);
    json_decref(ops);
}

static void delta_seqs_checked(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    /* A hole in the ops' seqs: the encoder refuses to send it, the decoder to read it. */
    json_t *ops = all_ops(1);
    json_object_set_new(json_array_get(ops, 3), "seq", json_integer(99));
    assert_int_not_equal(nano_msg_encode_delta(ops, &b, &err), 0);
    assert_int_equal(b.len, 0);
    json_t *body = json_pack("{s:i, s:s, s:i, s:i, s:O}", "v", 1, "type", "delta", "first", 1,
                             "seq", 8, "ops", ops);
    raw(body, &b);
    decode_pub_fails(b.data, b.len, "msg_field");
    /* first..seq not matching the count. */
    json_object_set_new(json_array_get(ops, 3), "seq", json_integer(4));
    json_object_set_new(body, "seq", json_integer(9));
    json_object_set(body, "ops", ops);
    raw(body, &b);
    decode_pub_fails(b.data, b.len, "msg_field");
    /* Empty delta, seq 0. */
    json_t *none = json_array();
    nano_buf_reset(&b);
    assert_int_not_equal(nano_msg_encode_delta(none, &b, &err), 0);
    json_decref(none);
    json_decref(body);
    json_decref(ops);
    nano_buf_fini(&b);
}

static void ops_checked(void **state)
{
    (void)state;
    nano_error err;
    json_t *ops = all_ops(1);
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op) {
        if (nano_msg_check_op(op, &err) != 0)
            fail_msg("op %zu refused: %s", i, err.message);
    }
    static const struct {
        size_t index;
        const char *key;
        const char *json; /* NULL: remove the key */
    } bad[] = {
        {0, "app", "\"Bad Name\""},
        {0, "hostnames", "\"api.example.com\""},
        {0, "state", "\"gone\""},
        {0, "sha256", "\"ABC\""},
        {0, "required_env", "[\"1BAD\"]"},
        {0, "limits", "{\"cpu_ms\": 0}"},
        {0, "limits", "[]"},
        {0, "hostnames", "[\"bad_host\"]"},
        {0, "path_prefix", "\"/trailing/\""},
        {0, "egress", "[\"10.0.0.0/8\"]"},
        {0, "egress", "{\"allow\": [\"10.0.0.0/33\"]}"},
        {0, "egress", "{\"allow\": [], \"other\": []}"},
        {0, "extra", "1"},
        {1, "main", "\"other.js\""},
        {1, "modules", "[{\"name\": \"../etc/passwd\", \"size\": 1, \"sha256\": \"" SHA_A "\"}]"},
        {1, "modules", "[{\"name\": \"index.js\", \"size\": -1, \"sha256\": \"" SHA_A "\"}]"},
        {2, "name", "\"has space\""},
        {2, "value", NULL},
        {4, "value", "\"secrets never travel in a delta\""},
        {6, "timeout_ms", "\"30s\""},
        {7, "op", "\"app.explode\""},
        {7, "seq", "-1"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        json_t *copy = json_deep_copy(json_array_get(ops, bad[k].index));
        if (bad[k].json == NULL)
            json_object_del(copy, bad[k].key);
        else
            json_object_set_new(copy, bad[k].key, json_loads(bad[k].json, JSON_DECODE_ANY, NULL));
        memset(&err, 0, sizeof err);
        if (nano_msg_check_op(copy, &err) == 0)
            fail_msg("case %zu (%s) accepted", k, bad[k].key);
        assert_true(err.message[0] != '\0');
        json_decref(copy);
    }
    /* The spec's keys are optional on the wire: an absent one is the spec's default (an
     * older nanocp sends no field added since), so an app.put without limits is taken. */
    json_t *no_limits = json_deep_copy(json_array_get(ops, 0));
    json_object_del(no_limits, "limits");
    assert_int_equal(nano_msg_check_op(no_limits, &err), 0);
    json_decref(no_limits);
    /* egress: optional, null allowed; a bad entry is named in the message */
    json_t *app = json_deep_copy(json_array_get(ops, 0));
    json_object_set_new(app, "egress", json_null());
    assert_int_equal(nano_msg_check_op(app, &err), 0);
    json_object_del(app, "egress");
    assert_int_equal(nano_msg_check_op(app, &err), 0);
    json_object_set_new(app, "egress", json_pack("{s:[s,s]}", "deny", "1.2.3.4", "::1/200"));
    assert_int_not_equal(nano_msg_check_op(app, &err), 0);
    assert_string_equal(err.id, "msg_field");
    assert_non_null(strstr(err.message, "egress.deny[1]: \"::1/200\" is not an address"));
    json_decref(app);
    /* A var value over 5120 bytes as JSON. */
    json_t *big = json_deep_copy(json_array_get(ops, 2));
    char *s = calloc(1, 5200);
    memset(s, 'x', 5199);
    json_object_set_new(big, "value", json_string(s));
    assert_int_not_equal(nano_msg_check_op(big, &err), 0);
    assert_string_equal(err.id, "msg_too_large");
    free(s);
    json_decref(big);
    json_decref(ops);
}

static void requests_roundtrip(void **state)
{
    (void)state;
    static const struct {
        nano_msg_type type;
        const char *request;
        const char *reply;
    } cases[] = {
        {NANO_MSG_HELLO,
         "{\"version\": \"0.1.0\", \"addr\": \"0.0.0.0:8080\", \"capabilities\": [\"code.get\"]}",
         "{\"seq\": 12, \"heartbeat_ms\": 1000}"},
        {NANO_MSG_SNAPSHOT, "{}", NULL /* below */},
        {NANO_MSG_CODE_GET, "{\"sha256\": \"" SHA_B "\"}",
         "{\"sha256\": \"" SHA_B "\", \"data\": \"export default {}\"}"},
        {NANO_MSG_CODE_BATCH, "{\"sha256s\": [\"" SHA_A "\", \"" SHA_B "\"]}",
         "{\"modules\": {\"" SHA_B "\": \"export default {}\"}}"},
        {NANO_MSG_SECRETS_GET, "{\"app\": \"api\"}",
         "{\"app\": \"api\", \"secrets\": {\"TOKEN\": \"s3cret\"}}"},
        {NANO_MSG_STATUS,
         "{\"applied_seq\": 12, \"apps\": {\"api\": {\"state\": \"draining\", \"in_flight\": 3,"
         " \"version\": 2}}}",
         "{\"seq\": 14}"},
        /* A node that refuses the active version because it does not load there. */
        {NANO_MSG_STATUS,
         "{\"applied_seq\": 12, \"apps\": {\"api\": {\"state\": \"active\", \"in_flight\": 0,"
         " \"version\": 3, \"load_error\": {\"code\": \"module_syntax\", \"message\":"
         " \"index.js:3:2: SyntaxError: Unexpected token '}'\"}}}}",
         "{\"seq\": 14}"},
        {NANO_MSG_DRAIN_ACK, "{\"app\": \"api\", \"result\": \"drained\", \"in_flight\": 0}", "{}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nano_buf b = NANO_BUF_INIT;
        nano_error err = {0};
        json_t *fields = parse(cases[i].request);
        if (nano_msg_encode_request(cases[i].type, "edge-1", "tok", fields, &b, &err) != 0)
            fail_msg("encode %s: %s", nano_msg_type_name(cases[i].type), err.message);
        nano_msg m;
        assert_int_equal(nano_msg_decode_request(b.data, b.len, &m, &err), 0);
        assert_int_equal(m.type, cases[i].type);
        assert_string_equal(m.node, "edge-1");
        assert_string_equal(m.token, "tok");
        nano_msg_fini(&m);
        json_decref(fields);

        json_t *reply;
        if (cases[i].reply != NULL) {
            reply = parse(cases[i].reply);
        } else {
            reply = json_pack("{s:i, s:[o]}", "seq", 12, "apps", snapapp());
        }
        nano_buf_reset(&b);
        if (nano_msg_encode_reply(cases[i].type, reply, &b, &err) != 0)
            fail_msg("encode reply %s: %s", nano_msg_type_name(cases[i].type), err.message);
        assert_int_equal(nano_msg_decode_reply(cases[i].type, b.data, b.len, &m, &err), 0);
        assert_true(m.ok);
        assert_null(m.error_code);
        /* The reply to another request type does not pass (except the empty drain.ack's
         * shape, which nothing else has). */
        nano_msg other;
        nano_msg_type wrong = cases[i].type == NANO_MSG_STATUS ? NANO_MSG_CODE_GET
                                                               : NANO_MSG_STATUS;
        assert_int_not_equal(nano_msg_decode_reply(wrong, b.data, b.len, &other, &err), 0);
        nano_msg_fini(&m);
        json_decref(reply);
        nano_buf_fini(&b);
    }
}

static void requests_checked(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    json_t *f = parse("{\"app\": \"api\"}");
    /* Bad node names and tokens are refused when encoding. */
    assert_int_not_equal(
        nano_msg_encode_request(NANO_MSG_SECRETS_GET, "bad node", "t", f, &b, &err), 0);
    assert_int_not_equal(nano_msg_encode_request(NANO_MSG_SECRETS_GET, "", "t", f, &b, &err), 0);
    assert_int_not_equal(nano_msg_encode_request(NANO_MSG_SECRETS_GET, "n", "\xff", f, &b, &err),
                         0);
    assert_int_not_equal(nano_msg_encode_request(NANO_MSG_DELTA, "n", "t", f, &b, &err), 0);
    assert_int_equal(b.len, 0);
    /* Missing token, unknown type, a reply where a request is expected. */
    json_t *body = json_pack("{s:i, s:s, s:s, s:s}", "v", 1, "type", "secrets.get", "node", "n",
                             "app", "api");
    raw(body, &b);
    nano_msg m;
    assert_int_not_equal(nano_msg_decode_request(b.data, b.len, &m, &err), 0);
    assert_string_equal(err.id, "msg_field");
    json_object_set_new(body, "token", json_string("t"));
    json_object_set_new(body, "type", json_string("secrets.dump"));
    raw(body, &b);
    assert_int_not_equal(nano_msg_decode_request(b.data, b.len, &m, &err), 0);
    assert_string_equal(err.id, "msg_type");
    json_object_set_new(body, "type", json_string("secrets.get"));
    json_object_set_new(body, "v", json_integer(2));
    raw(body, &b);
    assert_int_not_equal(nano_msg_decode_request(b.data, b.len, &m, &err), 0);
    assert_string_equal(err.id, "msg_version");
    json_object_set_new(body, "v", json_integer(1));
    raw(body, &b);
    assert_int_equal(nano_msg_decode_request(b.data, b.len, &m, &err), 0);
    nano_msg_fini(&m);
    /* A status whose load_error is not {code, message}. */
    static const char *const bad_statuses[] = {
        "{\"applied_seq\": 1, \"apps\": {\"api\": {\"state\": \"active\", \"in_flight\": 0,"
        " \"version\": 3, \"load_error\": \"module_syntax\"}}}",
        "{\"applied_seq\": 1, \"apps\": {\"api\": {\"state\": \"active\", \"in_flight\": 0,"
        " \"version\": 3, \"load_error\": {\"code\": \"module_syntax\"}}}}",
        "{\"applied_seq\": 1, \"apps\": {\"api\": {\"state\": \"active\", \"in_flight\": 0,"
        " \"version\": 3, \"load_error\": {\"code\": \"x\", \"message\": \"y\", \"z\": 1}}}}"};
    for (size_t i = 0; i < sizeof bad_statuses / sizeof bad_statuses[0]; i++) {
        json_t *sf = parse(bad_statuses[i]);
        nano_buf_reset(&b);
        assert_int_not_equal(nano_msg_encode_request(NANO_MSG_STATUS, "n", "t", sf, &b, &err), 0);
        json_decref(sf);
    }
    /* code.batch: an empty list, a bad sha256, more than 256; a reply keyed by non-sha. */
    static const char *const bad_batches[] = {"{\"sha256s\": []}", "{\"sha256s\": [\"abc\"]}",
                                              "{\"sha256s\": \"" SHA_A "\"}"};
    for (size_t i = 0; i < sizeof bad_batches / sizeof bad_batches[0]; i++) {
        json_t *bf = parse(bad_batches[i]);
        nano_buf_reset(&b);
        assert_int_not_equal(nano_msg_encode_request(NANO_MSG_CODE_BATCH, "n", "t", bf, &b, &err),
                             0);
        json_decref(bf);
    }
    json_t *many = json_object(), *list = json_array();
    for (int i = 0; i < NANO_MSG_BATCH_MAX + 1; i++)
        json_array_append_new(list, json_string(SHA_A));
    json_object_set_new(many, "sha256s", list);
    nano_buf_reset(&b);
    assert_int_not_equal(nano_msg_encode_request(NANO_MSG_CODE_BATCH, "n", "t", many, &b, &err), 0);
    assert_string_equal(err.id, "msg_too_large");
    json_array_remove(list, 0);
    assert_int_equal(nano_msg_encode_request(NANO_MSG_CODE_BATCH, "n", "t", many, &b, &err), 0);
    json_decref(many);
    json_t *blobs = parse("{\"modules\": {\"index.js\": \"x\"}}");
    nano_buf_reset(&b);
    assert_int_not_equal(nano_msg_encode_reply(NANO_MSG_CODE_BATCH, blobs, &b, &err), 0);
    json_decref(blobs);
    /* A snapshot app whose env name is both a var and a secret, or main outside modules. */
    json_t *a = snapapp();
    json_object_set_new(json_object_get(a, "vars"), "TOKEN", json_string("x"));
    assert_int_not_equal(nano_msg_check_snapapp(a, &err), 0);
    json_decref(a);
    a = snapapp();
    json_object_set_new(a, "main", json_string("nope.js"));
    assert_int_not_equal(nano_msg_check_snapapp(a, &err), 0);
    json_decref(a);
    a = snapapp();
    json_object_set_new(a, "version", json_integer(0)); /* undeployed, yet modules */
    assert_int_not_equal(nano_msg_check_snapapp(a, &err), 0);
    json_object_set_new(a, "sha256", json_null());
    json_object_set_new(a, "main", json_null());
    json_object_set_new(a, "modules", json_array());
    assert_int_equal(nano_msg_check_snapapp(a, &err), 0);
    json_decref(a);
    json_decref(body);
    json_decref(f);
    nano_buf_fini(&b);
}

static void error_replies(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    nano_msg_encode_error("unauthorized", "node token \xff refused", &b);
    nano_msg m;
    nano_error err;
    assert_int_equal(nano_msg_decode_reply(NANO_MSG_SNAPSHOT, b.data, b.len, &m, &err), 0);
    assert_false(m.ok);
    assert_string_equal(m.error_code, "unauthorized");
    assert_string_equal(m.error_message, "node token ? refused");
    nano_msg_fini(&m);
    nano_buf_fini(&b);
}

/* Every prefix of a valid message, and every single-byte mutation of it, is either refused or
 * decodes into a message that passes the same checks (no crash, no leak: ASan runs this). */
static void garbage_and_truncation(void **state)
{
    (void)state;
    json_t *ops = all_ops(7);
    nano_buf b = NANO_BUF_INIT;
    encode_delta_ok(ops, &b);
    for (size_t len = 0; len < b.len; len++) {
        nano_msg m;
        nano_error err;
        if (nano_msg_decode_pub(b.data, len, &m, &err) == 0)
            fail_msg("a %zu-byte prefix of a %zu-byte delta decoded", len, b.len);
    }
    unsigned char *copy = malloc(b.len);
    unsigned accepted = 0;
    for (size_t i = 0; i < b.len; i++) {
        for (unsigned v = 0; v < 256; v += 37) {
            memcpy(copy, b.data, b.len);
            copy[i] = (unsigned char)(copy[i] ^ (v | 1));
            nano_msg m;
            nano_error err;
            if (nano_msg_decode_pub(copy, b.len, &m, &err) == 0) {
                accepted++;
                /* Whatever passed is a whole, valid delta or heartbeat. */
                assert_true(m.type == NANO_MSG_DELTA || m.type == NANO_MSG_HEARTBEAT);
                if (m.type == NANO_MSG_DELTA) {
                    json_t *o;
                    size_t k;
                    json_array_foreach(json_object_get(m.body, "ops"), k, o)
                        assert_int_equal(nano_msg_check_op(o, &err), 0);
                }
                nano_msg_fini(&m);
            } else {
                nano_msg m2;
                assert_int_not_equal(nano_msg_decode_request(copy, b.len, &m2, &err), 0);
            }
        }
    }
    (void)accepted; /* flipped bytes inside strings may still be valid */
    /* Pseudo-random garbage. */
    unsigned seed = 12345;
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(rand_r(&seed) % 64);
        for (size_t i = 0; i < len; i++)
            copy[i % b.len] = (unsigned char)rand_r(&seed);
        nano_msg m;
        nano_error err;
        if (nano_msg_decode_pub(copy, len, &m, &err) == 0)
            nano_msg_fini(&m);
        if (nano_msg_decode_request(copy, len, &m, &err) == 0)
            nano_msg_fini(&m);
        if (nano_msg_decode_reply(NANO_MSG_SNAPSHOT, copy, len, &m, &err) == 0)
            nano_msg_fini(&m);
    }
    free(copy);
    /* Oversized input is refused before it is read. */
    char dummy = 0;
    decode_pub_fails(&dummy, (size_t)NANO_MSG_MAX_BYTES + 1, "msg_too_large");
    nano_buf_fini(&b);
    json_decref(ops);
}

static void names(void **state)
{
    (void)state;
    assert_true(nano_msg_node_valid("edge-1.fra_2"));
    assert_false(nano_msg_node_valid("edge 1"));
    assert_false(nano_msg_node_valid(""));
    assert_true(nano_msg_sha256_valid(SHA_B));
    assert_false(nano_msg_sha256_valid("0123"));
    assert_true(nano_msg_module_name_valid("lib/util.mjs"));
    assert_false(nano_msg_module_name_valid("/abs.js"));
    assert_false(nano_msg_module_name_valid("a/../b.js"));
    assert_false(nano_msg_module_name_valid("a//b.js"));
    assert_int_equal(nano_msg_type_from_name("code.get"), NANO_MSG_CODE_GET);
    assert_int_equal(nano_msg_type_from_name("code.batch"), NANO_MSG_CODE_BATCH);
    assert_int_equal(nano_msg_type_from_name("nope"), NANO_MSG_NONE);
    assert_string_equal(nano_msg_type_name(NANO_MSG_DRAIN_ACK), "drain.ack");
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest codec[] = {
        cmocka_unit_test(delta_roundtrip),
        cmocka_unit_test(delta_seqs_checked),
        cmocka_unit_test(ops_checked),
        cmocka_unit_test(requests_roundtrip),
        cmocka_unit_test(requests_checked),
        cmocka_unit_test(error_replies),
        cmocka_unit_test(names),
    };
    static const struct CMUnitTest garbage[] = {cmocka_unit_test(garbage_and_truncation)};
    static const unit_group groups[] = {UNIT_GROUP("codec", codec), UNIT_GROUP("garbage", garbage)};
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
