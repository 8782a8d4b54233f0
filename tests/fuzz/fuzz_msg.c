/* fuzz_msg: shared/msg.c's decoders (docs/distribution.md#bad-input: a data plane never
 * trusts the wire, nor nanocp a data plane). Any input goes to the PUB decoder, the request
 * decoder and the reply decoder of every request type. Invariants: whatever a decoder
 * accepts, the matching encoder accepts too (the two share one schema) and it survives an
 * encode/decode round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mpjson.h"
#include "msg.h"

static const nano_msg_type requests[] = {
    NANO_MSG_HELLO,       NANO_MSG_SNAPSHOT, NANO_MSG_CODE_GET, NANO_MSG_CODE_BATCH,
    NANO_MSG_SECRETS_GET, NANO_MSG_STATUS,   NANO_MSG_DRAIN_ACK};

/* The body without the envelope keys, as the encoders take it. */
static json_t *fields_of(const json_t *body, const char *const *drop)
{
    json_t *f = json_deep_copy(body);
    for (size_t i = 0; drop[i] != NULL; i++)
        json_object_del(f, drop[i]);
    return f;
}

static void check_roundtrip(const json_t *body)
{
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    FUZZ_CHECK(nano_mpjson_encode(body, NULL, &b, &err) == 0);
    json_t *again = NULL;
    FUZZ_CHECK(nano_mpjson_decode(b.data, b.len, NULL, &again, &err) == 0);
    FUZZ_CHECK(json_equal(again, body));
    json_decref(again);
    nano_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nano_msg m;
    nano_error err;
    nano_buf b = NANO_BUF_INIT;
    if (nano_msg_decode_pub(data, size, &m, &err) == 0) {
        check_roundtrip(m.body);
        if (m.type == NANO_MSG_DELTA) {
            FUZZ_CHECK(nano_msg_encode_delta(json_object_get(m.body, "ops"), &b, &err) == 0);
        } else {
            FUZZ_CHECK(m.type == NANO_MSG_HEARTBEAT);
            json_t *at = json_object_get(m.body, "at_ms");
            FUZZ_CHECK(
                nano_msg_encode_heartbeat(m.seq, (uint64_t)json_integer_value(at), &b, &err) == 0);
        }
        nano_msg_fini(&m);
    }
    nano_buf_reset(&b);
    if (nano_msg_decode_request(data, size, &m, &err) == 0) {
        check_roundtrip(m.body);
        static const char *const envelope[] = {"v", "type", "node", "token", NULL};
        json_t *f = fields_of(m.body, envelope);
        FUZZ_CHECK(nano_msg_encode_request(m.type, m.node, m.token, f, &b, &err) == 0);
        json_decref(f);
        nano_msg_fini(&m);
    }
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        nano_buf_reset(&b);
        if (nano_msg_decode_reply(requests[i], data, size, &m, &err) != 0)
            continue;
        check_roundtrip(m.body);
        if (m.ok) {
            static const char *const envelope[] = {"v", "ok", NULL};
            json_t *f = fields_of(m.body, envelope);
            FUZZ_CHECK(nano_msg_encode_reply(requests[i], f, &b, &err) == 0);
            json_decref(f);
        } else {
            FUZZ_CHECK(m.error_code != NULL && m.error_message != NULL);
        }
        nano_msg_fini(&m);
    }
    nano_buf_fini(&b);
    return 0;
}

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void add_json(fuzz_add_fn add, nano_msg_type req, const char *kind, const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (v == NULL) {
        fprintf(stderr, "fuzz_msg: bad seed JSON: %s\n", je.text);
        abort();
    }
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    int rc = strcmp(kind, "delta") == 0 ? nano_msg_encode_delta(v, &b, &err)
             : strcmp(kind, "request") == 0
                 ? nano_msg_encode_request(req, "edge-1", "t0k", v, &b, &err)
                 : nano_msg_encode_reply(req, v, &b, &err);
    if (rc != 0) {
        fprintf(stderr, "fuzz_msg: seed refused: %s\n", err.message);
        abort();
    }
    add(b.data, b.len);
    nano_buf_fini(&b);
    json_decref(v);
}

void fuzz_seeds(fuzz_add_fn add)
{
    add_json(
        add, NANO_MSG_NONE, "delta",
        "[{\"seq\": 5, \"op\": \"app.put\", \"app\": \"api\", \"hostnames\": [\"a.test\"],"
        " \"path_prefix\": null, \"default\": false, \"node_compat\": true,"
        " \"required_env\": [\"K\"], \"limits\": {\"cpu_ms\": 50}, \"state\": \"active\","
        " \"version\": 1, \"sha256\": \"" SHA "\"},"
        " {\"seq\": 6, \"op\": \"code.put\", \"app\": \"api\", \"version\": 1, \"sha256\": \"" SHA
        "\","
        " \"main\": \"i.js\", \"modules\": [{\"name\": \"i.js\", \"size\": 3, \"sha256\": \"" SHA
        "\"}]},"
        " {\"seq\": 7, \"op\": \"env.put\", \"app\": \"api\", \"name\": \"K\", \"value\": {\"a\": [1, \"x\", null]}},"
        " {\"seq\": 8, \"op\": \"secret.put\", \"app\": \"api\", \"name\": \"S\"},"
        " {\"seq\": 9, \"op\": \"app.drain\", \"app\": \"api\", \"timeout_ms\": 30000},"
        " {\"seq\": 10, \"op\": \"app.remove\", \"app\": \"api\"}]");
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    if (nano_msg_encode_heartbeat(10, 1700000000000ull, &b, &err) != 0)
        abort();
    add(b.data, b.len);
    nano_buf_reset(&b);
    add_json(
        add, NANO_MSG_HELLO, "request",
        "{\"version\": \"0.1.0\", \"addr\": \"0.0.0.0:8080\", \"capabilities\": [\"code.get\"]}");
    add_json(add, NANO_MSG_CODE_GET, "request", "{\"sha256\": \"" SHA "\"}");
    add_json(
        add, NANO_MSG_STATUS, "request",
        "{\"applied_seq\": 9, \"apps\": {\"api\": {\"state\": \"draining\", \"in_flight\": 2, \"version\": 1}}}");
    add_json(add, NANO_MSG_DRAIN_ACK, "request",
             "{\"app\": \"api\", \"result\": \"timed_out\", \"in_flight\": 1}");
    add_json(add, NANO_MSG_SNAPSHOT, "reply",
             "{\"seq\": 9, \"apps\": [{\"app\": \"api\", \"hostnames\": [\"*.a.test\"],"
             " \"path_prefix\": \"/v1\", \"default\": true, \"node_compat\": false,"
             " \"required_env\": [], \"limits\": {}, \"state\": \"draining\", \"version\": 2,"
             " \"sha256\": \"" SHA "\", \"main\": \"i.js\","
             " \"modules\": [{\"name\": \"i.js\", \"size\": 1, \"sha256\": \"" SHA "\"}],"
             " \"vars\": {\"N\": 1.5}, \"secrets\": {\"S\": \"v\"}, \"drain_timeout_ms\": 5}]}");
    add_json(add, NANO_MSG_SECRETS_GET, "reply", "{\"app\": \"api\", \"secrets\": {\"S\": \"v\"}}");
    add_json(add, NANO_MSG_CODE_GET, "reply",
             "{\"sha256\": \"" SHA "\", \"data\": \"export default {}\"}");
    add_json(add, NANO_MSG_CODE_BATCH, "request", "{\"sha256s\": [\"" SHA "\"]}");
    add_json(add, NANO_MSG_CODE_BATCH, "reply", "{\"modules\": {\"" SHA "\": \"x\"}}");
    nano_msg_encode_error("unauthorized", "wrong node token", &b);
    add(b.data, b.len);
    nano_buf_fini(&b);
}
