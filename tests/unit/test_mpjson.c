/* Unit tests for shared/mpjson.c (msgpack <-> jansson) and shared/admin_msg.c (the admin RPC
 * envelope). Inputs are packed with msgpack-c itself, and our encoder's output is read back
 * with msgpack-c's unpacker, so each direction is checked against an independent
 * implementation. Garbage, truncated and mutated buffers must give errors, never crashes
 * (run under ASan/UBSan too). */
#include "unit.h"

#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin_msg.h"
#include "buf.h"
#include "error.h"
#include "mpjson.h"

/* --- helpers ------------------------------------------------------------------------------ */

typedef struct packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} packed;

static void pk_init(packed *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void pk_str(packed *p, const char *s)
{
    msgpack_pack_str_with_body(&p->pk, s, strlen(s));
}

static json_t *decode_ok(const void *data, size_t len)
{
    json_t *v = NULL;
    nano_error err = {0};
    int rc = nano_mpjson_decode(data, len, NULL, &v, &err);
    if (rc != 0)
        fail_msg("decode failed: %s (%s)", err.message, err.id);
    return v;
}

static int decode_err(const void *data, size_t len, nano_error *err)
{
    json_t *v = (json_t *)0x1; /* must stay untouched on error */
    memset(err, 0, sizeof *err);
    int rc = nano_mpjson_decode(data, len, NULL, &v, err);
    assert_int_not_equal(rc, 0);
    assert_ptr_equal(v, (json_t *)0x1);
    assert_true(err->message[0] != '\0');
    return rc;
}

static json_t *roundtrip(const json_t *in)
{
    nano_buf b = NANO_BUF_INIT;
    nano_error err = {0};
    assert_int_equal(nano_mpjson_encode(in, NULL, &b, &err), 0);
    json_t *out = decode_ok(b.data, b.len);
    nano_buf_fini(&b);
    return out;
}

/* xorshift64: reproducible pseudo-random bytes for the garbage tests. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* --- decode ------------------------------------------------------------------------------- */

static void mpjson_decode_scalars(void **state)
{
    (void)state;
    packed p;
    pk_init(&p);
    msgpack_pack_array(&p.pk, 14);
    msgpack_pack_int(&p.pk, 5);              /* positive fixint */
    msgpack_pack_int(&p.pk, -3);             /* negative fixint */
    msgpack_pack_uint8(&p.pk, 200);          /* uint8 */
    msgpack_pack_uint16(&p.pk, 60000);       /* uint16 */
    msgpack_pack_uint32(&p.pk, 4000000000u); /* uint32 */
    msgpack_pack_uint64(&p.pk, INT64_MAX);   /* uint64 at the int64 edge */
    msgpack_pack_int64(&p.pk, INT64_MIN);    /* int64 */
    msgpack_pack_fix_int16(&p.pk, -30000);   /* int16 */
    msgpack_pack_nil(&p.pk);
    msgpack_pack_true(&p.pk);
    msgpack_pack_false(&p.pk);
    msgpack_pack_float(&p.pk, 1.5f);
    msgpack_pack_double(&p.pk, -0.25);
    msgpack_pack_bin_with_body(&p.pk, "h\xc3\xa9", 3); /* valid UTF-8 bin -> string */
    json_t *v = decode_ok(p.sb.data, p.sb.size);
    assert_true(json_is_array(v));
    assert_int_equal(json_array_size(v), 14);
    assert_int_equal(json_integer_value(json_array_get(v, 0)), 5);
    assert_int_equal(json_integer_value(json_array_get(v, 1)), -3);
    assert_int_equal(json_integer_value(json_array_get(v, 2)), 200);
    assert_int_equal(json_integer_value(json_array_get(v, 3)), 60000);
    assert_int_equal(json_integer_value(json_array_get(v, 4)), 4000000000ll);
    assert_true(json_integer_value(json_array_get(v, 5)) == INT64_MAX);
    assert_true(json_integer_value(json_array_get(v, 6)) == INT64_MIN);
    assert_int_equal(json_integer_value(json_array_get(v, 7)), -30000);
    assert_true(json_is_null(json_array_get(v, 8)));
    assert_true(json_is_true(json_array_get(v, 9)));
    assert_true(json_is_false(json_array_get(v, 10)));
    assert_true(json_is_real(json_array_get(v, 11)));
    assert_true(json_real_value(json_array_get(v, 11)) == 1.5);
    assert_true(json_real_value(json_array_get(v, 12)) == -0.25);
    assert_string_equal(json_string_value(json_array_get(v, 13)), "h\xc3\xa9");
    json_decref(v);
    msgpack_sbuffer_destroy(&p.sb);
}

static void mpjson_decode_maps_and_strings(void **state)
{
    (void)state;
    packed p;
    pk_init(&p);
    msgpack_pack_map(&p.pk, 3);
    pk_str(&p, "name");
    pk_str(&p, "api");
    pk_str(&p, "nul");
    msgpack_pack_str_with_body(&p.pk, "a\0b", 3); /* NUL inside a value is kept */
    pk_str(&p, "nested");
    msgpack_pack_map(&p.pk, 1);
    pk_str(&p, "list");
    msgpack_pack_array(&p.pk, 0);
    json_t *v = decode_ok(p.sb.data, p.sb.size);
    assert_string_equal(json_string_value(json_object_get(v, "name")), "api");
    assert_int_equal(json_string_length(json_object_get(v, "nul")), 3);
    assert_memory_equal(json_string_value(json_object_get(v, "nul")), "a\0b", 3);
    json_t *list = json_object_get(json_object_get(v, "nested"), "list");
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 0);
    json_decref(v);
    msgpack_sbuffer_destroy(&p.sb);
}

static void mpjson_decode_rejects_what_json_cannot_hold(void **state)
{
    (void)state;
    nano_error err;
    /* uint64 above INT64_MAX */
    const unsigned char big[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_err(big, sizeof big, &err), NANO_ESYNTAX);
    assert_string_equal(err.id, "msgpack_invalid");
    assert_non_null(strstr(err.message, "int64"));
    /* NaN and infinity */
    packed p;
    pk_init(&p);
    msgpack_pack_double(&p.pk, NAN);
    decode_err(p.sb.data, p.sb.size, &err);
    assert_non_null(strstr(err.message, "finite"));
    msgpack_sbuffer_clear(&p.sb);
    msgpack_pack_float(&p.pk, INFINITY);
    decode_err(p.sb.data, p.sb.size, &err);
    msgpack_sbuffer_clear(&p.sb);
    /* bin that is not UTF-8; str that is not UTF-8 (overlong '/', lone surrogate) */
    msgpack_pack_bin_with_body(&p.pk, "\xff\x00\x01", 3);
    decode_err(p.sb.data, p.sb.size, &err);
    assert_non_null(strstr(err.message, "UTF-8"));
    msgpack_sbuffer_clear(&p.sb);
    msgpack_pack_str_with_body(&p.pk, "\xc0\xaf", 2);
    decode_err(p.sb.data, p.sb.size, &err);
    msgpack_sbuffer_clear(&p.sb);
    msgpack_pack_str_with_body(&p.pk, "\xed\xa0\x80", 3);
    decode_err(p.sb.data, p.sb.size, &err);
    msgpack_sbuffer_clear(&p.sb);
    /* map with an integer key; duplicate key; key holding NUL */
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_int(&p.pk, 1);
    msgpack_pack_nil(&p.pk);
    decode_err(p.sb.data, p.sb.size, &err);
    assert_non_null(strstr(err.message, "key"));
    msgpack_sbuffer_clear(&p.sb);
    msgpack_pack_map(&p.pk, 2);
    pk_str(&p, "a");
    msgpack_pack_int(&p.pk, 1);
    pk_str(&p, "a");
    msgpack_pack_int(&p.pk, 2);
    decode_err(p.sb.data, p.sb.size, &err);
    assert_non_null(strstr(err.message, "duplicate"));
    msgpack_sbuffer_clear(&p.sb);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_str_with_body(&p.pk, "a\0b", 3);
    msgpack_pack_int(&p.pk, 1);
    decode_err(p.sb.data, p.sb.size, &err);
    msgpack_sbuffer_clear(&p.sb);
    /* ext, and the reserved byte */
    msgpack_pack_ext_with_body(&p.pk, "abcd", 4, 7);
    decode_err(p.sb.data, p.sb.size, &err);
    assert_non_null(strstr(err.message, "ext"));
    msgpack_sbuffer_destroy(&p.sb);
    const unsigned char c1[] = {0xc1};
    decode_err(c1, 1, &err);
    assert_non_null(strstr(err.message, "0xc1"));
}

static void mpjson_decode_depth_limit(void **state)
{
    (void)state;
    unsigned char buf[80];
    /* 64 nested arrays around a nil: allowed */
    memset(buf, 0x91, 64);
    buf[64] = 0xc0;
    json_t *v = decode_ok(buf, 65);
    json_decref(v);
    /* 65: refused, as too deep */
    memset(buf, 0x91, 65);
    buf[65] = 0xc0;
    nano_error err;
    assert_int_equal(decode_err(buf, 66, &err), NANO_ETOOBIG);
    assert_string_equal(err.id, "msgpack_too_deep");
    /* a tighter limit from the caller */
    nano_mpjson_limits lim = {0, 3};
    const unsigned char three[] = {0x91, 0x91, 0x91, 0xc0};
    const unsigned char four[] = {0x91, 0x91, 0x91, 0x91, 0xc0};
    assert_int_equal(nano_mpjson_decode(three, sizeof three, &lim, &v, &err), 0);
    json_decref(v);
    assert_int_equal(nano_mpjson_decode(four, sizeof four, &lim, &v, &err), NANO_ETOOBIG);
}

static void mpjson_decode_size_limit_and_trailing_bytes(void **state)
{
    (void)state;
    nano_error err;
    json_t *v;
    nano_mpjson_limits lim = {8, 0};
    const unsigned char s[] = {0xa9, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'};
    assert_int_equal(nano_mpjson_decode(s, sizeof s, &lim, &v, &err), NANO_ETOOBIG);
    assert_string_equal(err.id, "msgpack_too_large");
    const unsigned char two[] = {0x01, 0x02};
    decode_err(two, sizeof two, &err);
    assert_non_null(strstr(err.message, "after the value"));
    decode_err("", 0, &err);
    assert_string_equal(err.id, "msgpack_truncated");
}

/* A header that claims 2^32-1 elements in a 5-byte input must fail at once, without
 * allocating for the claimed count (msgpack-c's unpacker would ask for ~100 GB). */
static void mpjson_decode_lying_counts_fail_fast(void **state)
{
    (void)state;
    nano_error err;
    const unsigned char arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const unsigned char map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k'};
    const unsigned char str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'x'};
    const unsigned char bin[] = {0xc6, 0x00, 0x01, 0x00, 0x00, 'x'};
    assert_int_equal(decode_err(arr, sizeof arr, &err), NANO_ESYNTAX);
    assert_string_equal(err.id, "msgpack_truncated");
    decode_err(map, sizeof map, &err);
    assert_string_equal(err.id, "msgpack_truncated");
    decode_err(str, sizeof str, &err);
    decode_err(bin, sizeof bin, &err);
}

static void build_sample(packed *p)
{
    pk_init(p);
    msgpack_pack_map(&p->pk, 5);
    pk_str(p, "v");
    msgpack_pack_int(&p->pk, 1);
    pk_str(p, "op");
    pk_str(p, "apps.create");
    pk_str(p, "args");
    msgpack_pack_map(&p->pk, 3);
    pk_str(p, "name");
    pk_str(p, "api");
    pk_str(p, "hostnames");
    msgpack_pack_array(&p->pk, 2);
    pk_str(p, "api.example.com");
    pk_str(p, "*.example.net");
    pk_str(p, "limits");
    msgpack_pack_map(&p->pk, 2);
    pk_str(p, "cpu_ms");
    msgpack_pack_uint32(&p->pk, 70000);
    pk_str(p, "ratio");
    msgpack_pack_double(&p->pk, 0.5);
    pk_str(p, "big");
    msgpack_pack_int64(&p->pk, -5000000000ll);
    pk_str(p, "blob");
    msgpack_pack_bin_with_body(&p->pk, "source text", 11);
}

static void mpjson_decode_every_truncation_fails(void **state)
{
    (void)state;
    packed p;
    build_sample(&p);
    json_t *whole = decode_ok(p.sb.data, p.sb.size);
    json_decref(whole);
    for (size_t n = 0; n < p.sb.size; n++) {
        nano_error err;
        decode_err(p.sb.data, n, &err);
    }
    msgpack_sbuffer_destroy(&p.sb);
}

/* Random bytes and random mutations of a valid message: either an error, or a value that
 * survives our own encode/decode round trip unchanged. */
static void mpjson_decode_garbage_never_crashes(void **state)
{
    (void)state;
    unsigned char buf[96];
    int n_ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rnd() % sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rnd();
        json_t *v = NULL;
        nano_error err;
        if (nano_mpjson_decode(buf, len, NULL, &v, &err) == 0) {
            n_ok++;
            json_t *again = roundtrip(v);
            assert_true(json_equal(v, again));
            json_decref(again);
            json_decref(v);
        } else {
            assert_true(err.message[0] != '\0');
        }
    }
    packed p;
    build_sample(&p);
    unsigned char *m = malloc(p.sb.size);
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, p.sb.data, p.sb.size);
        int flips = 1 + (int)(rnd() % 3);
        for (int f = 0; f < flips; f++)
            m[rnd() % p.sb.size] = (unsigned char)rnd();
        json_t *v = NULL;
        nano_error err;
        if (nano_mpjson_decode(m, p.sb.size, NULL, &v, &err) == 0) {
            n_ok++;
            json_decref(v);
        }
    }
    free(m);
    msgpack_sbuffer_destroy(&p.sb);
    assert_true(n_ok > 0); /* some mutations stay valid: the property above was exercised */
}

/* Out-of-memory inside jansson at every allocation of a decode: an error, no leak. */
static long jalloc_left;
static void *failing_malloc(size_t n)
{
    if (jalloc_left == 0)
        return NULL;
    if (jalloc_left > 0)
        jalloc_left--;
    return malloc(n);
}

static void mpjson_decode_out_of_memory_at_every_step(void **state)
{
    (void)state;
    packed p;
    build_sample(&p);
    json_set_alloc_funcs(failing_malloc, free);
    int rc = -1;
    long n;
    for (n = 0; n < 1000 && rc != 0; n++) {
        jalloc_left = n;
        json_t *v = NULL;
        nano_error err;
        rc = nano_mpjson_decode(p.sb.data, p.sb.size, NULL, &v, &err);
        if (rc == 0)
            json_decref(v);
        else
            assert_int_equal(rc, NANO_ENOMEM);
    }
    jalloc_left = -1;
    json_set_alloc_funcs(malloc, free);
    assert_int_equal(rc, 0);
    assert_true(n > 5); /* several allocations were failed in turn */
    msgpack_sbuffer_destroy(&p.sb);
}

/* --- encode ------------------------------------------------------------------------------- */

static void mpjson_encode_reads_back_with_msgpack_c(void **state)
{
    (void)state;
    json_error_t jerr;
    json_t *in = json_loads("{\"s\": \"h\\u00e9\", \"i\": -7, \"u\": 300, \"r\": 2.5, \"t\": true,"
                            " \"n\": null, \"a\": [1, \"x\"], \"o\": {}}",
                            JSON_PRESERVE_ORDER, &jerr);
    assert_non_null(in);
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    assert_int_equal(nano_mpjson_encode(in, NULL, &b, &err), 0);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, b.len);
    msgpack_object o = u.data;
    assert_int_equal(o.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(o.via.map.size, 8);
    msgpack_object_kv *kv = o.via.map.ptr;
    assert_int_equal(kv[0].key.type, MSGPACK_OBJECT_STR);
    assert_memory_equal(kv[0].key.via.str.ptr, "s", 1);
    assert_int_equal(kv[0].val.type, MSGPACK_OBJECT_STR);
    assert_int_equal(kv[0].val.via.str.size, 3);
    assert_int_equal(kv[1].val.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_int_equal(kv[1].val.via.i64, -7);
    assert_int_equal(kv[2].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_int_equal(kv[2].val.via.u64, 300);
    assert_int_equal(kv[3].val.type, MSGPACK_OBJECT_FLOAT64);
    assert_true(kv[3].val.via.f64 == 2.5);
    assert_int_equal(kv[4].val.type, MSGPACK_OBJECT_BOOLEAN);
    assert_true(kv[4].val.via.boolean);
    assert_int_equal(kv[5].val.type, MSGPACK_OBJECT_NIL);
    assert_int_equal(kv[6].val.type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(kv[6].val.via.array.size, 2);
    assert_int_equal(kv[7].val.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(kv[7].val.via.map.size, 0);
    msgpack_unpacked_destroy(&u);
    nano_buf_fini(&b);
    json_decref(in);
}

static void mpjson_encode_limits_leave_buffer_unchanged(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    nano_buf_append(&b, "xyz", 3);
    nano_error err;
    char text[200];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    json_t *s = json_string(text);
    nano_mpjson_limits small = {50, 0};
    assert_int_equal(nano_mpjson_encode(s, &small, &b, &err), NANO_ETOOBIG);
    assert_string_equal(err.id, "msgpack_too_large");
    assert_int_equal(b.len, 3);
    json_decref(s);

    json_t *deep = json_array();
    json_t *cur = deep;
    for (int i = 0; i < 64; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    assert_int_equal(nano_mpjson_encode(deep, NULL, &b, &err), NANO_ETOOBIG); /* 65 levels */
    assert_string_equal(err.id, "msgpack_too_deep");
    assert_int_equal(b.len, 3);
    json_t *inner = json_array_get(deep, 0); /* 64 levels: fine */
    assert_int_equal(nano_mpjson_encode(inner, NULL, &b, &err), 0);
    assert_int_equal(b.len, 3 + 64); /* 63 fixarray(1) headers and an empty one */
    json_decref(deep);
    nano_buf_fini(&b);
}

static void mpjson_roundtrip_preserves_values(void **state)
{
    (void)state;
    json_error_t jerr;
    const char *docs[] = {
        "{}",
        "[]",
        "\"\"",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1e300",
        "{\"apps\": [{\"name\": \"a\", \"hostnames\": [\"x.com\"], \"limits\": {\"cpu_ms\": 50}}]}",
        "{\"\\u00fcml\\u00e4ut\": \"\\ud83d\\ude00\", \"emptykey\": {\"\": null}}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        json_t *in = json_loads(docs[i], JSON_DECODE_ANY, &jerr);
        assert_non_null(in);
        json_t *out = roundtrip(in);
        if (!json_equal(in, out))
            fail_msg("round trip changed %s", docs[i]);
        json_decref(in);
        json_decref(out);
    }
    assert_true(nano_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
    assert_false(nano_utf8_valid("\xf4\x90\x80\x80", 4)); /* beyond */
    assert_false(nano_utf8_valid("\xe2\x82", 2));         /* cut short */
}

/* --- envelope ----------------------------------------------------------------------------- */

static void envelope_request_roundtrip(void **state)
{
    (void)state;
    json_t *args = json_pack("{s:s, s:[s]}", "name", "api", "hostnames", "api.example.com");
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    assert_int_equal(nano_admin_request_encode("apps.create", "t0k", args, &b, &err), 0);
    nano_admin_request req;
    assert_int_equal(nano_admin_request_decode(b.data, b.len, &req, &err), 0);
    assert_string_equal(req.op, "apps.create");
    assert_string_equal(req.token, "t0k");
    assert_true(json_equal(req.args, args));
    nano_admin_request_fini(&req);
    assert_null(req.args);

    nano_buf_reset(&b);
    assert_int_equal(nano_admin_request_encode("version", NULL, NULL, &b, &err), 0);
    assert_int_equal(nano_admin_request_decode(b.data, b.len, &req, &err), 0);
    assert_null(req.token);
    assert_true(json_is_object(req.args));
    assert_int_equal(json_object_size(req.args), 0);
    nano_admin_request_fini(&req);

    json_t *arr = json_array();
    assert_int_equal(nano_admin_request_encode("x", NULL, arr, &b, &err), NANO_EINVAL);
    assert_int_equal(nano_admin_request_encode("", NULL, NULL, &b, &err), NANO_EINVAL);
    json_decref(arr);
    json_decref(args);
    nano_buf_fini(&b);
}

/* Packs a map from a JSON text with our encoder, then decodes it as a request. */
static int request_from(const char *json, nano_admin_request *req, nano_error *err)
{
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    nano_buf b = NANO_BUF_INIT;
    assert_int_equal(nano_mpjson_encode(v, NULL, &b, err), 0);
    int rc = nano_admin_request_decode(b.data, b.len, req, err);
    nano_buf_fini(&b);
    json_decref(v);
    return rc;
}

static void envelope_request_errors_are_structured(void **state)
{
    (void)state;
    nano_admin_request req;
    nano_error err;
    assert_int_not_equal(request_from("{\"v\": 2, \"op\": \"version\"}", &req, &err), 0);
    assert_string_equal(err.id, "unsupported_version");
    assert_non_null(strstr(err.message, "2"));
    assert_int_not_equal(request_from("{\"op\": \"version\"}", &req, &err), 0);
    assert_string_equal(err.id, "bad_request");
    assert_int_not_equal(request_from("{\"v\": \"1\", \"op\": \"version\"}", &req, &err), 0);
    assert_string_equal(err.id, "bad_request");
    assert_int_not_equal(request_from("{\"v\": 1}", &req, &err), 0);
    assert_non_null(strstr(err.message, "op"));
    assert_int_not_equal(request_from("{\"v\": 1, \"op\": 5}", &req, &err), 0);
    assert_int_not_equal(request_from("{\"v\": 1, \"op\": \"a\", \"args\": []}", &req, &err), 0);
    assert_non_null(strstr(err.message, "args"));
    assert_int_not_equal(request_from("{\"v\": 1, \"op\": \"a\", \"token\": 7}", &req, &err), 0);
    assert_int_not_equal(request_from("{\"v\": 1, \"op\": \"a\", \"extra\": 1}", &req, &err), 0);
    assert_non_null(strstr(err.message, "extra"));
    assert_int_not_equal(request_from("[1, \"a\"]", &req, &err), 0);
    assert_string_equal(err.id, "bad_request");
    /* args: nil means none */
    assert_int_equal(request_from("{\"v\": 1, \"op\": \"a\", \"args\": null}", &req, &err), 0);
    assert_true(json_is_object(req.args));
    nano_admin_request_fini(&req);

    const unsigned char junk[] = {0xc1, 0x00};
    assert_int_not_equal(nano_admin_request_decode(junk, sizeof junk, &req, &err), 0);
    assert_string_equal(err.id, "bad_request");

    size_t huge = NANO_ADMIN_MAX_BYTES + 1;
    char *big = calloc(1, huge);
    assert_non_null(big);
    assert_int_equal(nano_admin_request_decode(big, huge, &req, &err), NANO_ETOOBIG);
    assert_string_equal(err.id, "too_large");
    free(big);
}

static void envelope_reply_roundtrip(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    nano_error err;
    json_t *res = json_pack("{s:[]}", "apps");
    assert_int_equal(nano_admin_reply_encode_ok(res, &b, &err), 0);
    nano_admin_reply rep;
    assert_int_equal(nano_admin_reply_decode(b.data, b.len, &rep, &err), 0);
    assert_true(rep.ok);
    assert_true(json_equal(rep.result, res));
    nano_admin_reply_fini(&rep);
    json_decref(res);

    nano_buf_reset(&b);
    nano_admin_reply_encode_error("app_not_found", "app \xff\xfe does not exist", "name", &b);
    assert_int_equal(nano_admin_reply_decode(b.data, b.len, &rep, &err), 0);
    assert_false(rep.ok);
    assert_null(rep.result);
    assert_string_equal(rep.code, "app_not_found");
    assert_string_equal(rep.message, "app ?? does not exist");
    assert_string_equal(rep.field, "name");
    nano_admin_reply_fini(&rep);

    nano_buf_reset(&b);
    nano_admin_reply_encode_error("internal", NULL, NULL, &b);
    assert_int_equal(nano_admin_reply_decode(b.data, b.len, &rep, &err), 0);
    assert_string_equal(rep.message, "");
    nano_buf_fini(&b);
}

static int reply_from(const char *json, nano_admin_reply *rep, nano_error *err)
{
    json_error_t jerr;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &jerr);
    assert_non_null(v);
    nano_buf b = NANO_BUF_INIT;
    assert_int_equal(nano_mpjson_encode(v, NULL, &b, err), 0);
    int rc = nano_admin_reply_decode(b.data, b.len, rep, err);
    nano_buf_fini(&b);
    json_decref(v);
    return rc;
}

static void envelope_reply_errors(void **state)
{
    (void)state;
    nano_admin_reply rep;
    nano_error err;
    assert_int_not_equal(reply_from("{\"v\": 3, \"ok\": true}", &rep, &err), 0);
    assert_string_equal(err.id, "unsupported_version");
    assert_int_not_equal(reply_from("{\"v\": 1}", &rep, &err), 0);
    assert_string_equal(err.id, "bad_reply");
    assert_int_not_equal(reply_from("{\"v\": 1, \"ok\": false}", &rep, &err), 0);
    assert_int_not_equal(reply_from("{\"v\": 1, \"ok\": false, \"error\": {}}", &rep, &err), 0);
    assert_int_not_equal(reply_from("\"text\"", &rep, &err), 0);
    const unsigned char trunc[] = {0x83, 0xa1, 'v'};
    assert_int_not_equal(nano_admin_reply_decode(trunc, sizeof trunc, &rep, &err), 0);
    assert_string_equal(err.id, "bad_reply");
    assert_non_null(strstr(err.message, "truncated"));
    /* ok without result: {} */
    assert_int_equal(reply_from("{\"v\": 1, \"ok\": true}", &rep, &err), 0);
    assert_true(json_is_object(rep.result));
    nano_admin_reply_fini(&rep);
}

static void envelope_garbage_gets_a_code(void **state)
{
    (void)state;
    unsigned char buf[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(rnd() % sizeof buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rnd();
        if (len > 0 && iter % 2 == 0)
            buf[0] = (unsigned char)(0x80 | (rnd() & 0x0f)); /* mostly maps */
        nano_admin_request req;
        nano_error err;
        if (nano_admin_request_decode(buf, len, &req, &err) == 0) {
            nano_admin_request_fini(&req);
            continue;
        }
        assert_true(strcmp(err.id, "bad_request") == 0 || strcmp(err.id, "too_large") == 0 ||
                    strcmp(err.id, "unsupported_version") == 0);
        nano_admin_reply rep;
        if (nano_admin_reply_decode(buf, len, &rep, &err) == 0)
            nano_admin_reply_fini(&rep);
    }
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest decode[] = {
        cmocka_unit_test(mpjson_decode_scalars),
        cmocka_unit_test(mpjson_decode_maps_and_strings),
        cmocka_unit_test(mpjson_decode_rejects_what_json_cannot_hold),
        cmocka_unit_test(mpjson_decode_depth_limit),
        cmocka_unit_test(mpjson_decode_size_limit_and_trailing_bytes),
        cmocka_unit_test(mpjson_decode_lying_counts_fail_fast),
        cmocka_unit_test(mpjson_decode_every_truncation_fails),
        cmocka_unit_test(mpjson_decode_garbage_never_crashes),
        cmocka_unit_test(mpjson_decode_out_of_memory_at_every_step),
    };
    static const struct CMUnitTest encode[] = {
        cmocka_unit_test(mpjson_encode_reads_back_with_msgpack_c),
        cmocka_unit_test(mpjson_encode_limits_leave_buffer_unchanged),
        cmocka_unit_test(mpjson_roundtrip_preserves_values),
    };
    static const struct CMUnitTest envelope[] = {
        cmocka_unit_test(envelope_request_roundtrip),
        cmocka_unit_test(envelope_request_errors_are_structured),
        cmocka_unit_test(envelope_reply_roundtrip),
        cmocka_unit_test(envelope_reply_errors),
        cmocka_unit_test(envelope_garbage_gets_a_code),
    };
    const unit_group groups[] = {
        UNIT_GROUP("decode", decode),
        UNIT_GROUP("encode", encode),
        UNIT_GROUP("envelope", envelope),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
