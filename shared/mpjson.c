#include "mpjson.h"

#include "alloc.h"

#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

/* Decoding does not use msgpack_unpack_next(): msgpack-c allocates an array's or map's element
 * table from the count in the header before reading any element (a 5-byte "array32 of 2^32"
 * asks for ~100 GB), and its parse stack is fixed at MSGPACK_EMBED_STACK_SIZE (32) levels.
 * Reading the wire format directly lets every count be checked against the bytes left first,
 * and builds the jansson tree in one pass. Encoding goes through msgpack-c's packer. */

static nano_mpjson_limits effective(const nano_mpjson_limits *lim)
{
    nano_mpjson_limits l = {NANO_MPJSON_MAX_BYTES, NANO_MPJSON_MAX_DEPTH};
    if (lim && lim->max_bytes > 0)
        l.max_bytes = lim->max_bytes;
    if (lim && lim->max_depth > 0)
        l.max_depth = lim->max_depth;
    return l;
}

/* RFC 3629 §4: the well-formed byte sequences. */
bool nano_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

/* --- decoding ----------------------------------------------------------------------------- */

typedef struct reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
    int max_depth;
    nano_error *err;
} reader;

static int truncated(reader *r, size_t need)
{
    return nano_error_set(r->err, NANO_ESYNTAX, "msgpack_truncated",
                          "msgpack: truncated at byte %zu (%zu more bytes needed, %zu left)",
                          r->pos, need, r->len - r->pos);
}

static int invalid(reader *r, size_t at, const char *what)
{
    return nano_error_set(r->err, NANO_ESYNTAX, "msgpack_invalid", "msgpack: byte %zu: %s", at,
                          what);
}

static int need(reader *r, size_t n)
{
    return r->len - r->pos < n ? truncated(r, n) : 0;
}

/* Big-endian unsigned of width n (1, 2, 4 or 8) at the read position; the caller checked. */
static uint64_t take_be(reader *r, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | r->p[r->pos + i];
    r->pos += n;
    return v;
}

static int take_len(reader *r, size_t width, size_t *out)
{
    int rc = need(r, width);
    if (rc == 0)
        *out = (size_t)take_be(r, width);
    return rc;
}

/* The raw bytes of a str or bin whose header starts at byte tag (already consumed). Returns 1
 * when tag is not a str/bin header (nothing consumed beyond tag). */
static int take_raw(reader *r, unsigned char tag, const char **ptr, size_t *len)
{
    size_t n;
    int rc;
    if (tag >= 0xa0 && tag <= 0xbf) {
        n = tag & 0x1f;
        rc = 0;
    } else if (tag == 0xd9 || tag == 0xc4) {
        rc = take_len(r, 1, &n);
    } else if (tag == 0xda || tag == 0xc5) {
        rc = take_len(r, 2, &n);
    } else if (tag == 0xdb || tag == 0xc6) {
        rc = take_len(r, 4, &n);
    } else {
        return 1;
    }
    if (rc == 0)
        rc = need(r, n);
    if (rc != 0)
        return rc;
    *ptr = (const char *)r->p + r->pos;
    *len = n;
    r->pos += n;
    return 0;
}

static int nomem(reader *r)
{
    return nano_error_set(r->err, NANO_ENOMEM, "msgpack_nomem", "msgpack: out of memory");
}

static int read_value(reader *r, int depth, json_t **out);

static int too_deep(reader *r, size_t at)
{
    return nano_error_set(r->err, NANO_ETOOBIG, "msgpack_too_deep",
                          "msgpack: byte %zu: nesting deeper than %d levels", at, r->max_depth);
}

/* read_array, read_map: a container's n elements; depth counts the container itself. */
static int read_array(reader *r, size_t n, int depth, json_t **out)
{
    if (depth > r->max_depth)
        return too_deep(r, r->pos);
    /* Every element takes at least one byte: a count beyond what is left is a lie. */
    if (n > r->len - r->pos)
        return truncated(r, n);
    json_t *arr = json_array();
    if (!arr)
        return nomem(r);
    for (size_t i = 0; i < n; i++) {
        json_t *v = NULL;
        int rc = read_value(r, depth, &v);
        if (rc == 0 && json_array_append_new(arr, v) != 0)
            rc = nomem(r);
        if (rc != 0) {
            json_decref(arr);
            return rc;
        }
    }
    *out = arr;
    return 0;
}

static int read_map(reader *r, size_t n, int depth, json_t **out)
{
    if (depth > r->max_depth)
        return too_deep(r, r->pos);
    if (n > (r->len - r->pos) / 2)
        return truncated(r, 2 * n); /* a key and a value per entry */
    json_t *obj = json_object();
    if (!obj)
        return nomem(r);
    char small[256];
    for (size_t i = 0; i < n; i++) {
        size_t at = r->pos;
        int rc = need(r, 1);
        const char *kp = NULL;
        size_t klen = 0;
        if (rc == 0) {
            unsigned char tag = r->p[r->pos++];
            rc = take_raw(r, tag, &kp, &klen);
            if (rc == 1)
                rc = invalid(r, at, "map key is not a string");
        }
        if (rc == 0 && (!nano_utf8_valid(kp, klen) || memchr(kp, '\0', klen) != NULL))
            rc = invalid(r, at, "map key is not valid UTF-8 text without NUL");
        char *key = NULL;
        if (rc == 0) {
            key = klen < sizeof small ? small : nano_malloc(klen + 1);
            if (!key) {
                rc = nomem(r);
            } else {
                memcpy(key, kp, klen);
                key[klen] = '\0';
                if (json_object_get(obj, key) != NULL)
                    rc = invalid(r, at, "duplicate map key");
            }
        }
        json_t *v = NULL;
        if (rc == 0)
            rc = read_value(r, depth, &v);
        if (rc == 0 && json_object_set_new_nocheck(obj, key, v) != 0)
            rc = nomem(r);
        if (key != small)
            nano_free(key);
        if (rc != 0) {
            json_decref(obj);
            return rc;
        }
    }
    *out = obj;
    return 0;
}

static int make_string(reader *r, size_t at, const char *p, size_t len, json_t **out)
{
    if (!nano_utf8_valid(p, len))
        return invalid(r, at, "string is not valid UTF-8");
    json_t *s = json_stringn_nocheck(p, len);
    if (!s)
        return nomem(r);
    *out = s;
    return 0;
}

static int make_int(reader *r, int64_t v, json_t **out)
{
    json_t *j = json_integer((json_int_t)v);
    if (!j)
        return nomem(r);
    *out = j;
    return 0;
}

static int make_real(reader *r, size_t at, double d, json_t **out)
{
    if (!isfinite(d))
        return invalid(r, at, "float is not finite (JSON has no NaN or Infinity)");
    json_t *j = json_real(d);
    if (!j)
        return nomem(r);
    *out = j;
    return 0;
}

/* read_value: one value; depth counts the maps and arrays around it. */
static int read_value(reader *r, int depth, json_t **out)
{
    int rc = need(r, 1);
    if (rc != 0)
        return rc;
    size_t at = r->pos;
    unsigned char tag = r->p[r->pos++];
    const char *raw;
    size_t n;

    if (tag <= 0x7f)
        return make_int(r, tag, out);
    if (tag >= 0xe0)
        return make_int(r, (int64_t)(int8_t)tag, out);
    if (tag >= 0x80 && tag <= 0x8f)
        return read_map(r, tag & 0x0f, depth + 1, out);
    if (tag >= 0x90 && tag <= 0x9f)
        return read_array(r, tag & 0x0f, depth + 1, out);
    rc = take_raw(r, tag, &raw, &n);
    if (rc == 0)
        return make_string(r, at, raw, n, out);
    if (rc != 1)
        return rc;

    switch (tag) {
    case 0xc0: *out = json_null(); return 0;
    case 0xc2: *out = json_false(); return 0;
    case 0xc3: *out = json_true(); return 0;
    case 0xca: {
        if ((rc = need(r, 4)) != 0)
            return rc;
        uint32_t bits = (uint32_t)take_be(r, 4);
        float f;
        memcpy(&f, &bits, sizeof f);
        return make_real(r, at, (double)f, out);
    }
    case 0xcb: {
        if ((rc = need(r, 8)) != 0)
            return rc;
        uint64_t bits = take_be(r, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        return make_real(r, at, d, out);
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        size_t w = (size_t)1 << (tag - 0xcc);
        if ((rc = need(r, w)) != 0)
            return rc;
        uint64_t u = take_be(r, w);
        if (u > INT64_MAX)
            return invalid(r, at, "unsigned integer beyond the int64 range");
        return make_int(r, (int64_t)u, out);
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t w = (size_t)1 << (tag - 0xd0);
        if ((rc = need(r, w)) != 0)
            return rc;
        uint64_t u = take_be(r, w);
        int64_t v;
        if (w == 1)
            v = (int8_t)u;
        else if (w == 2)
            v = (int16_t)u;
        else if (w == 4)
            v = (int32_t)u;
        else
            memcpy(&v, &u, sizeof v);
        return make_int(r, v, out);
    }
    case 0xdc:
    case 0xdd:
        if ((rc = take_len(r, tag == 0xdc ? 2 : 4, &n)) != 0)
            return rc;
        return read_array(r, n, depth + 1, out);
    case 0xde:
    case 0xdf:
        if ((rc = take_len(r, tag == 0xde ? 2 : 4, &n)) != 0)
            return rc;
        return read_map(r, n, depth + 1, out);
    case 0xc1: return invalid(r, at, "reserved type byte 0xc1");
    default: /* 0xc7..0xc9, 0xd4..0xd8: ext */ return invalid(r, at, "ext types are not supported");
    }
}

int nano_mpjson_decode(const void *data, size_t len, const nano_mpjson_limits *lim, json_t **out,
                       nano_error *err)
{
    nano_mpjson_limits l = effective(lim);
    if (len > l.max_bytes)
        return nano_error_set(err, NANO_ETOOBIG, "msgpack_too_large",
                              "msgpack: message is %zu bytes; the limit is %zu", len, l.max_bytes);
    reader r = {data, len, 0, l.max_depth, err};
    json_t *v = NULL;
    int rc = read_value(&r, 0, &v);
    if (rc == 0 && r.pos != len) {
        rc = nano_error_set(err, NANO_ESYNTAX, "msgpack_invalid",
                            "msgpack: %zu unexpected bytes after the value at byte %zu",
                            len - r.pos, r.pos);
        json_decref(v);
    }
    if (rc == 0)
        *out = v;
    return rc;
}

/* --- encoding ----------------------------------------------------------------------------- */

typedef struct writer {
    nano_buf *out;
    size_t start;
    size_t max_bytes;
    bool is_over;
} writer;

static int on_write(void *data, const char *buf, size_t len)
{
    writer *w = data;
    if (w->out->len - w->start + len > w->max_bytes) {
        w->is_over = true;
        return -1;
    }
    nano_buf_append(w->out, buf, len);
    return 0;
}

static int write_value(msgpack_packer *pk, const json_t *v, int depth, int max_depth,
                       nano_error *err)
{
    int rc = 0;
    if ((json_is_object(v) || json_is_array(v)) && depth + 1 > max_depth)
        return nano_error_set(err, NANO_ETOOBIG, "msgpack_too_deep",
                              "msgpack: value nested deeper than %d levels", max_depth);
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        if (msgpack_pack_map(pk, json_object_size(v)) != 0)
            return -1;
        json_object_foreach((json_t *)v, key, item) {
            size_t klen = strlen(key);
            if (msgpack_pack_str_with_body(pk, key, klen) != 0)
                return -1;
            if ((rc = write_value(pk, item, depth + 1, max_depth, err)) != 0)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        if (msgpack_pack_array(pk, json_array_size(v)) != 0)
            return -1;
        json_array_foreach(v, i, item) {
            if ((rc = write_value(pk, item, depth + 1, max_depth, err)) != 0)
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v));
    case JSON_INTEGER: return msgpack_pack_int64(pk, (int64_t)json_integer_value(v));
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(v));
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_NULL: return msgpack_pack_nil(pk);
    }
    return nano_error_set(err, NANO_EINVAL, "msgpack_invalid", "msgpack: unknown JSON type");
}

int nano_mpjson_encode(const json_t *value, const nano_mpjson_limits *lim, nano_buf *out,
                       nano_error *err)
{
    nano_mpjson_limits l = effective(lim);
    writer w = {out, out->len, l.max_bytes, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, on_write);
    if (!value)
        return nano_error_set(err, NANO_EINVAL, "msgpack_invalid", "msgpack: no value");
    int rc = write_value(&pk, value, 0, l.max_depth, err);
    if (rc == -1) /* the packer's write failed: only on_write refuses */
        rc = nano_error_set(err, NANO_ETOOBIG, "msgpack_too_large",
                            "msgpack: encoded value exceeds %zu bytes", l.max_bytes);
    if (rc != 0)
        out->len = w.start;
    return rc;
}

const char *nano_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}
