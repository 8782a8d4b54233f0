/* fuzz_mpjson: shared/mpjson.c (msgpack <-> JSON, the admin RPC's and the data-plane
 * protocol's base) and shared/admin_msg.c (the admin envelope). Invariants: a decoded value
 * re-encodes and decodes to an equal value; a decoded admin request re-encodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_msg.h"
#include "fuzz.h"
#include "mpjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *v = NULL;
    nano_error err;
    nano_buf b = NANO_BUF_INIT;
    if (nano_mpjson_decode(data, size, NULL, &v, &err) == 0) {
        FUZZ_CHECK(nano_mpjson_encode(v, NULL, &b, &err) == 0);
        json_t *again = NULL;
        FUZZ_CHECK(nano_mpjson_decode(b.data, b.len, NULL, &again, &err) == 0);
        FUZZ_CHECK(json_equal(v, again));
        json_decref(again);
        json_decref(v);
    }
    nano_admin_request req;
    nano_buf_reset(&b);
    if (nano_admin_request_decode(data, size, &req, &err) == 0) {
        FUZZ_CHECK(nano_admin_request_encode(req.op, req.token, req.args, &b, &err) == 0);
        nano_admin_request_fini(&req);
    }
    nano_admin_reply rep;
    if (nano_admin_reply_decode(data, size, &rep, &err) == 0)
        nano_admin_reply_fini(&rep);
    nano_buf_fini(&b);
    return 0;
}

void fuzz_seeds(fuzz_add_fn add)
{
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    json_t *args = json_loads("{\"name\": \"api\", \"vars\": {\"K\": [1, -2, 3.5, true, null,"
                              " {\"deep\": \"\\u00e9\\u4e2d\"}]}}",
                              0, NULL);
    if (args == NULL || nano_admin_request_encode("env.patch", "tok", args, &b, &err) != 0)
        abort();
    add(b.data, b.len);
    nano_buf_reset(&b);
    if (nano_admin_reply_encode_ok(args, &b, &err) != 0)
        abort();
    add(b.data, b.len);
    nano_buf_reset(&b);
    nano_admin_reply_encode_error("app_not_found", "app api does not exist", "name", &b);
    add(b.data, b.len);
    nano_buf_reset(&b);
    json_t *big = json_pack("[I, I, f, s]", (json_int_t)9007199254740993LL,
                            (json_int_t)-2147483649LL, 1e300, "");
    if (nano_mpjson_encode(big, NULL, &b, &err) != 0)
        abort();
    add(b.data, b.len);
    json_decref(big);
    json_decref(args);
    nano_buf_fini(&b);
}
