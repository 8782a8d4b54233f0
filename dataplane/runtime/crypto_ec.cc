// crypto_ec.cc: the natives of the elliptic-curve algorithms of crypto.subtle (27_webcrypto_ec.js)
// on OpenSSL 3's EVP interfaces: ECDSA and ECDH on P-256, P-384 and P-521 (SEC 1), Ed25519 and
// Ed448 (RFC 8032, pure EdDSA), X25519 and X448 (RFC 7748). Keys are handles (crypto_int.h
// pkey_new); spki and pkcs8 go through crypto.cc's generic DER natives, the rest is here.
//
// Operations run synchronously on the isolate's thread: a signature, a verification or a key
// agreement takes tens to hundreds of microseconds, the round trip through the pool as long.
// Only the hashing of ECDSA and EdDSA grows with the input: signing or verifying a MiB or
// more runs on the thread pool (run_op).
//
// Results follow crypto_int.h: null for what JS turns into the spec's DataError or
// OperationError, a TypeError for arguments the built-ins never pass.
#include "crypto_int.h"

#include <cstring>
#include <string>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <sodium.h>

using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::String;
using v8::Value;

using namespace crypto;

namespace {

// The curves by WebCrypto name: OpenSSL's group name (SEC 2 / X9.62).
const char *group_of(const std::string &curve)
{
    if (curve == "P-256")
        return "prime256v1";
    if (curve == "P-384")
        return "secp384r1";
    if (curve == "P-521")
        return "secp521r1";
    return nullptr;
}

// The OpenSSL key type of an OKP algorithm name, or nullptr.
const char *okp_type(const std::string &name)
{
    if (name == "Ed25519")
        return "ED25519";
    if (name == "X25519")
        return "X25519";
    if (name == "Ed448")
        return "ED448";
    if (name == "X448")
        return "X448";
    return nullptr;
}

std::string string_arg(const FunctionCallbackInfo<Value> &args, int i)
{
    if (!args[i]->IsString())
        return std::string();
    String::Utf8Value s(args.GetIsolate(), args[i]);
    return std::string(*s, s.length());
}

void return_handle(const FunctionCallbackInfo<Value> &args, EVP_PKEY *pkey)
{
    if (pkey == nullptr)
        return args.GetReturnValue().SetNull();
    return_value(args, pkey_new(args.GetIsolate(), pkey));
}

// The length in bytes of a field element (and of the group order) of an EC key: 32, 48, 66.
size_t ec_field_bytes(EVP_PKEY *pkey)
{
    return ((size_t)EVP_PKEY_get_bits(pkey) + 7) / 8;
}

// Whether the key passes OpenSSL's checks: the public point on the curve and not the point at
// infinity (SEC 1 §3.2.2.1, the partial check); with the private half, also the private
// scalar in range and matching the public point.
bool pkey_valid(EVP_PKEY *pkey, bool is_private)
{
    pkey_ctx pc(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    if (pc.ctx == nullptr)
        return false;
    return (is_private ? EVP_PKEY_check(pc.ctx) : EVP_PKEY_public_check(pc.ctx)) == 1;
}

// An EC key from its group and encoded public point (SEC 1 §2.3.4: uncompressed or
// compressed), plus the private scalar when priv is given; nullptr when the bytes do not make
// a valid key. The key encodes its point uncompressed from then on (spki, pkcs8).
EVP_PKEY *ec_from_data(const char *group, const uint8_t *pub, size_t pub_len, const uint8_t *priv,
                       size_t priv_len)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = nullptr;
    bn_ptr d;
    EVP_PKEY *pkey = nullptr;
    bool ok = bld != nullptr &&
              OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
              OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                              "uncompressed", 0) == 1 &&
              OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len) == 1;
    if (ok && priv != nullptr) {
        d.p = BN_secure_new();
        ok = d.p != nullptr && BN_bin2bn(priv, (int)priv_len, d.p) != nullptr &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d.p) == 1;
    }
    if (ok)
        params = OSSL_PARAM_BLD_to_param(bld);
    pkey_ctx pc(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    ok = ok && params != nullptr && pc.ctx != nullptr && EVP_PKEY_fromdata_init(pc.ctx) == 1 &&
         EVP_PKEY_fromdata(pc.ctx, &pkey, priv != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                           params) == 1;
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    if (ok && !pkey_valid(pkey, priv != nullptr))
        ok = false;
    if (!ok) {
        EVP_PKEY_free(pkey);
        return nullptr;
    }
    return pkey;
}

// A BIGNUM parameter of the key as big-endian bytes, left-padded to len.
bool bn_param(EVP_PKEY *pkey, const char *name, uint8_t *out, size_t len)
{
    bn_ptr b;
    return EVP_PKEY_get_bn_param(pkey, name, &b.p) == 1 &&
           BN_bn2binpad(b.p, out, (int)len) == (int)len;
}

// Whether 32 bytes encode a point of small order (1, 2, 4 or 8) of edwards25519, canonically
// or not, with either sign bit: the encodings of y = 0, 1, p - 1, p, p + 1 and the two
// y-coordinates of the points of order 8 (the list libsodium's ge25519_has_small_order
// checks). The Secure Curves draft's Ed25519 verify returns false when the public key or R is
// one; OpenSSL 3.0's verification (cofactorless, RFC 8032 §5.1.7) accepts some such signatures.
bool ed25519_small_order(const uint8_t *s)
{
    static const uint8_t kSmall[7][32] = {
        {0x00},
        {0x01},
        {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
         0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
         0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
        {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
         0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
         0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
        {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
        {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
         0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    };
    for (const uint8_t *k : kSmall) {
        uint8_t diff = (uint8_t)((s[31] & 0x7f) ^ k[31]);
        for (int i = 0; i < 31; i++)
            diff |= (uint8_t)(s[i] ^ k[i]);
        if (diff == 0)
            return true;
    }
    return false;
}

} // namespace

// cryptoEcGenerate(name) -> a handle on a new private key: name is a curve ('P-256', 'P-384',
// 'P-521': an EC key) or an OKP algorithm ('Ed25519', 'X25519', 'Ed448', 'X448'); null when
// OpenSSL fails.
static void EcGenerate(const FunctionCallbackInfo<Value> &args)
{
    std::string name = string_arg(args, 0);
    const char *group = group_of(name), *okp = okp_type(name);
    if (group == nullptr && okp == nullptr)
        return rt_throw_type_error(args.GetIsolate(), "cryptoEcGenerate: bad arguments");
    clear_errors clear;
    EVP_PKEY *pkey = group != nullptr ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group)
                                      : EVP_PKEY_Q_keygen(nullptr, nullptr, okp);
    return_handle(args, pkey);
}

// cryptoEcCurve(handle) -> the WebCrypto name of an EC key's curve ('P-256', 'P-384',
// 'P-521'), 'other' for another named or an explicit curve, or null for a key that is not EC.
static void EcCurve(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoEcCurve: expected a key handle");
    clear_errors clear;
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return args.GetReturnValue().SetNull();
    char group[64], encoding[32];
    size_t len = 0;
    const char *curve = "other";
    // OpenSSL names the group of explicit parameters that match a known curve too, so the
    // encoding tells them apart: only a namedCurve (RFC 5480 §2.1.1) is one of ours.
    bool is_named = EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_ENCODING, encoding,
                                                   sizeof encoding, &len) == 1 &&
                    strcmp(encoding, OSSL_PKEY_EC_ENCODING_GROUP) == 0;
    if (is_named && EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                   sizeof group, &len) == 1) {
        int nid = OBJ_sn2nid(group);
        curve = nid == NID_X9_62_prime256v1 ? "P-256"
                : nid == NID_secp384r1      ? "P-384"
                : nid == NID_secp521r1      ? "P-521"
                                            : "other";
    }
    args.GetReturnValue().Set(String::NewFromUtf8(isolate, curve).ToLocalChecked());
}

// cryptoPkeyCheck(isPrivate, handle) -> whether the key imported from spki or pkcs8 is valid
// (pkey_valid). An EC key encodes its point uncompressed from then on, whatever form it came
// in.
static void PkeyCheck(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 1);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoPkeyCheck: expected a key handle");
    clear_errors clear;
    bool ok = pkey_valid(pkey, args[0]->BooleanValue(isolate));
    if (ok && EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC)
        ok = EVP_PKEY_set_utf8_string_param(pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT,
                                            "uncompressed") == 1;
    args.GetReturnValue().Set(ok);
}

// cryptoEcImport(curve, point, d | undefined) -> a handle on the EC key of that curve with the
// public point (SEC 1 §2.3.4 octets: uncompressed or compressed) and, when d is given, the
// private scalar (big-endian octets); null when they do not make a valid key (a point off the
// curve, d out of range or not matching the point).
static void EcImport(const FunctionCallbackInfo<Value> &args)
{
    const char *group = group_of(string_arg(args, 0));
    const uint8_t *pub, *priv = nullptr;
    size_t pub_len, priv_len = 0;
    if (group == nullptr || !bytes_arg(args, 1, &pub, &pub_len) ||
        (!args[2]->IsUndefined() && !bytes_arg(args, 2, &priv, &priv_len)))
        return rt_throw_type_error(args.GetIsolate(), "cryptoEcImport: bad arguments");
    clear_errors clear;
    if (pub_len == 0 || pub_len > 1024 || priv_len > 1024 || (priv != nullptr && priv_len == 0))
        return args.GetReturnValue().SetNull();
    return_handle(args, ec_from_data(group, pub, pub_len, priv, priv_len));
}

// cryptoEcExport(isPrivate, handle) -> an EC key's public point uncompressed (0x04 || x || y,
// SEC 1 §2.3.3) or (isPrivate) its private scalar, each coordinate or scalar padded to the
// field's length; null when the key has no such half.
static void EcExport(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 1);
    if (pkey == nullptr || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC)
        return rt_throw_type_error(isolate, "cryptoEcExport: expected an EC key handle");
    clear_errors clear;
    size_t n = ec_field_bytes(pkey);
    out_bytes r;
    bool ok;
    if (args[0]->BooleanValue(isolate)) {
        r.v.resize(n);
        ok = bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, r.v.data(), n);
    } else {
        r.v.resize(1 + 2 * n);
        r.v[0] = 0x04;
        ok = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, r.v.data() + 1, n) &&
             bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, r.v.data() + 1 + n, n);
    }
    return_result(args, ok, r, r.v.size());
}

// cryptoOkpImport(name, isPrivate, bytes) -> a handle on the Ed25519, X25519, Ed448 or X448 key
// whose raw public key (RFC 8032 §5.1.5 / RFC 7748 §5 encoding) or private key (the seed, or
// the scalar) the bytes are; null when their length is not the algorithm's.
static void OkpImport(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const char *type = okp_type(string_arg(args, 0));
    const uint8_t *p;
    size_t len;
    if (type == nullptr || !bytes_arg(args, 2, &p, &len))
        return rt_throw_type_error(isolate, "cryptoOkpImport: bad arguments");
    clear_errors clear;
    EVP_PKEY *pkey = args[1]->BooleanValue(isolate)
                         ? EVP_PKEY_new_raw_private_key_ex(nullptr, type, nullptr, p, len)
                         : EVP_PKEY_new_raw_public_key_ex(nullptr, type, nullptr, p, len);
    return_handle(args, pkey);
}

// cryptoOkpExport(isPrivate, handle) -> the raw public or (isPrivate) private key of an OKP
// key; null when the key has no such half.
static void OkpExport(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 1);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoOkpExport: expected a key handle");
    clear_errors clear;
    bool is_private = args[0]->BooleanValue(isolate);
    out_bytes r;
    size_t len = 0;
    bool ok = (is_private ? EVP_PKEY_get_raw_private_key(pkey, nullptr, &len)
                          : EVP_PKEY_get_raw_public_key(pkey, nullptr, &len)) == 1;
    if (ok) {
        r.v.resize(len);
        ok = (is_private ? EVP_PKEY_get_raw_private_key(pkey, r.v.data(), &len)
                         : EVP_PKEY_get_raw_public_key(pkey, r.v.data(), &len)) == 1;
    }
    return_result(args, ok, r, len);
}

// Signatures hash their input, so inputs of a MiB or more run on the thread pool (run_op); the
// natives below then return a promise of the same result.

// cryptoEcdsaSign(hashId, handle, data) -> the ECDSA signature (FIPS 186-4 §6.4) of the data's
// digest as r || s, each padded to the group order's length (IEEE P1363, what WebCrypto
// returns); null when OpenSSL fails.
static void EcdsaSign(const FunctionCallbackInfo<Value> &args)
{
    const EVP_MD *md = hash_arg(args, 0);
    EVP_PKEY *pkey = pkey_arg(args, 1);
    input data;
    if (md == nullptr || pkey == nullptr || !bytes_arg(args, 2, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoEcdsaSign: bad arguments");
    size_t n = ec_field_bytes(pkey);
    op_options o;
    o.out_len = 2 * n;
    o.key = pkey;
    run_op(args, {data}, o, [md, pkey, n](const input *in, out_bytes &r, size_t *r_len) {
        md_ctx mc;
        size_t der_len = 0;
        out_bytes der;
        bool ok = mc.ctx != nullptr &&
                  EVP_DigestSignInit(mc.ctx, nullptr, md, nullptr, pkey) == 1 &&
                  EVP_DigestSign(mc.ctx, nullptr, &der_len, in[0].p, in[0].len) == 1;
        if (ok) {
            der.v.resize(der_len);
            ok = EVP_DigestSign(mc.ctx, der.v.data(), &der_len, in[0].p, in[0].len) == 1;
        }
        ECDSA_SIG *sig = nullptr;
        if (ok) {
            const unsigned char *q = der.v.data();
            sig = d2i_ECDSA_SIG(nullptr, &q, (long)der_len);
            ok = sig != nullptr;
        }
        if (ok) {
            r.v.resize(2 * n);
            ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), r.v.data(), (int)n) == (int)n &&
                 BN_bn2binpad(ECDSA_SIG_get0_s(sig), r.v.data() + n, (int)n) == (int)n;
        }
        ECDSA_SIG_free(sig);
        *r_len = 2 * n;
        return ok;
    });
}

// The DER ECDSA-Sig-Value (SEC 1 §C.5: SEQUENCE { INTEGER r, INTEGER s }) of r || s, each n
// big-endian bytes, written to out (room for 2 * n + 12 bytes); its length. What BN_bin2bn,
// ECDSA_SIG_set0 and i2d_ECDSA_SIG make, without their allocations: each integer minimal (at
// least one byte), with a zero byte before a leading byte of 0x80 or more.
static size_t ecdsa_der(const uint8_t *rs, size_t n, uint8_t *out)
{
    uint8_t body[2 * (3 + 66 + 1)];
    size_t b = 0;
    for (int k = 0; k < 2; k++) {
        const uint8_t *p = rs + k * n;
        size_t len = n;
        while (len > 1 && *p == 0) {
            p++;
            len--;
        }
        bool pad = (*p & 0x80) != 0;
        body[b++] = 0x02;
        body[b++] = (uint8_t)(len + pad); // at most 67: the short form
        if (pad)
            body[b++] = 0;
        memcpy(body + b, p, len);
        b += len;
    }
    size_t o = 0;
    out[o++] = 0x30;
    if (b >= 0x80)
        out[o++] = 0x81; // at most 140 bytes (P-521)
    out[o++] = (uint8_t)b;
    memcpy(out + o, body, b);
    return o + b;
}

// cryptoEcdsaVerify(hashId, handle, signature, data) -> whether signature (r || s as
// cryptoEcdsaSign makes it) is a valid ECDSA signature of the data by the key. A signature of
// another length is not one: false, as for any other malformed signature. The data is hashed
// with the digest fetched once (hash_arg) and the digest verified (EVP_PKEY_verify) with the
// handle's ready context when the work runs here (pkey_verify_ctx), else with one of the job's
// own.
static void EcdsaVerify(const FunctionCallbackInfo<Value> &args)
{
    const EVP_MD *md = hash_arg(args, 0);
    EVP_PKEY *pkey = pkey_arg(args, 1);
    input sig, data;
    if (md == nullptr || pkey == nullptr || !bytes_arg(args, 2, &sig.p, &sig.len) ||
        !bytes_arg(args, 3, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoEcdsaVerify: bad arguments");
    size_t n = ec_field_bytes(pkey);
    if (sig.len != 2 * n || n > 66)
        return args.GetReturnValue().Set(false);
    op_options o;
    o.out_len = 1;
    o.kind = result_kind::boolean;
    o.key = pkey;
    EVP_PKEY_CTX *ready = op_runs_here(sig.len + data.len, o) ? pkey_verify_ctx(args, 1) : nullptr;
    run_op(args, {sig, data}, o,
           [md, pkey, n, ready](const input *in, out_bytes &res, size_t *res_len) {
               uint8_t der[2 * 66 + 12], digest[EVP_MAX_MD_SIZE];
               size_t der_len = ecdsa_der(in[0].p, n, der);
               unsigned int digest_len = 0;
               bool ok = EVP_Digest(in[1].p, in[1].len, digest, &digest_len, md, nullptr) == 1;
               if (ok && ready != nullptr) {
                   ok = EVP_PKEY_verify(ready, der, der_len, digest, digest_len) == 1;
               } else if (ok) {
                   pkey_ctx pc(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
                   ok = pc.ctx != nullptr && EVP_PKEY_verify_init(pc.ctx) == 1 &&
                        EVP_PKEY_verify(pc.ctx, der, der_len, digest, digest_len) == 1;
               }
               res.v.assign(1, ok);
               *res_len = 1;
               return true;
           });
}

// --- Ed25519 signatures through libsodium ---------------------------------------------------
//
// OpenSSL 3.0 signs with Ed25519 at about 30,000 signatures/s here, libsodium at about 54,000
// (the same RFC 8032 signatures: Ed25519 is deterministic). libsodium signs with its 64-byte
// secret key (seed || public key), made from the key's 32-byte seed once and kept with the
// EVP_PKEY (ex_data), wiped when the key is freed. It is made on the isolate's thread before
// any job that signs on the pool, which then only reads it (a handle belongs to one isolate).

static int sodium_sk_index()
{
    static const int index = [] {
        if (sodium_init() < 0)
            return -1;
        return CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_EVP_PKEY, 0, nullptr, nullptr, nullptr,
                                       [](void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
                                           if (ptr != nullptr)
                                               OPENSSL_clear_free(
                                                   ptr, crypto_sign_ed25519_SECRETKEYBYTES);
                                       });
    }();
    return index;
}

// The libsodium secret key of an Ed25519 private key, made on first use; nullptr when it
// cannot be (OpenSSL then signs).
static const uint8_t *sodium_sk(EVP_PKEY *pkey)
{
    int index = sodium_sk_index();
    if (index < 0 || EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519)
        return nullptr;
    auto *sk = static_cast<uint8_t *>(EVP_PKEY_get_ex_data(pkey, index));
    if (sk != nullptr)
        return sk;
    uint8_t seed[crypto_sign_ed25519_SEEDBYTES], pk[crypto_sign_ed25519_PUBLICKEYBYTES];
    size_t seed_len = sizeof seed;
    sk = static_cast<uint8_t *>(OPENSSL_malloc(crypto_sign_ed25519_SECRETKEYBYTES));
    bool ok = sk != nullptr && EVP_PKEY_get_raw_private_key(pkey, seed, &seed_len) == 1 &&
              seed_len == sizeof seed && crypto_sign_ed25519_seed_keypair(pk, sk, seed) == 0 &&
              EVP_PKEY_set_ex_data(pkey, index, sk) == 1;
    OPENSSL_cleanse(seed, sizeof seed);
    if (!ok) {
        OPENSSL_clear_free(sk, crypto_sign_ed25519_SECRETKEYBYTES);
        return nullptr;
    }
    return sk;
}

// cryptoEdSign(handle, data) -> the pure EdDSA signature (RFC 8032 §5.1.6 / §5.2.6, no context)
// of the data by an Ed25519 (libsodium) or Ed448 (OpenSSL) private key; null when it fails.
static void EdSign(const FunctionCallbackInfo<Value> &args)
{
    EVP_PKEY *pkey = pkey_arg(args, 0);
    input data;
    if (pkey == nullptr || !bytes_arg(args, 1, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoEdSign: bad arguments");
    op_options o;
    o.out_len = (size_t)EVP_PKEY_get_size(pkey);
    o.key = pkey;
    const uint8_t *sk = sodium_sk(pkey); // made here, on the isolate's thread
    run_op(args, {data}, o, [pkey, sk](const input *in, out_bytes &r, size_t *r_len) {
        r.v.is_secret = false; // a signature
        if (sk != nullptr) {
            r.v.resize_for_overwrite(crypto_sign_ed25519_BYTES);
            *r_len = crypto_sign_ed25519_BYTES;
            return crypto_sign_ed25519_detached(r.v.data(), nullptr, in[0].p, in[0].len, sk) == 0;
        }
        md_ctx mc;
        size_t sig_len = 0;
        bool ok = mc.ctx != nullptr &&
                  EVP_DigestSignInit_ex(mc.ctx, nullptr, nullptr, nullptr, nullptr, pkey,
                                        nullptr) == 1 &&
                  EVP_DigestSign(mc.ctx, nullptr, &sig_len, in[0].p, in[0].len) == 1;
        if (ok) {
            r.v.resize(sig_len);
            ok = EVP_DigestSign(mc.ctx, r.v.data(), &sig_len, in[0].p, in[0].len) == 1;
        }
        *r_len = sig_len;
        return ok;
    });
}

// cryptoEdVerify(handle, signature, data) -> whether signature is a valid pure EdDSA signature
// of the data by the key (RFC 8032 §5.1.7 / §5.2.7; a signature of the wrong length, or whose
// S is not below the group order, is not; nor, for Ed25519, one whose public key or R is a
// point of small order).
static void EdVerify(const FunctionCallbackInfo<Value> &args)
{
    EVP_PKEY *pkey = pkey_arg(args, 0);
    input sig, data;
    if (pkey == nullptr || !bytes_arg(args, 1, &sig.p, &sig.len) ||
        !bytes_arg(args, 2, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoEdVerify: bad arguments");
    clear_errors clear;
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519) {
        uint8_t pub[32];
        size_t pub_len = sizeof pub;
        if (sig.len != 64 || EVP_PKEY_get_raw_public_key(pkey, pub, &pub_len) != 1 ||
            pub_len != 32 || ed25519_small_order(pub) || ed25519_small_order(sig.p))
            return args.GetReturnValue().Set(false);
    }
    if ((size_t)EVP_PKEY_get_size(pkey) != sig.len)
        return args.GetReturnValue().Set(false);
    op_options o;
    o.out_len = 1;
    o.kind = result_kind::boolean;
    o.key = pkey;
    run_op(args, {sig, data}, o, [pkey](const input *in, out_bytes &r, size_t *r_len) {
        md_ctx mc;
        bool ok = mc.ctx != nullptr &&
                  EVP_DigestVerifyInit_ex(mc.ctx, nullptr, nullptr, nullptr, nullptr, pkey,
                                          nullptr) == 1 &&
                  EVP_DigestVerify(mc.ctx, in[0].p, in[0].len, in[1].p, in[1].len) == 1;
        r.v.assign(1, ok);
        *r_len = 1;
        return true;
    });
}

// cryptoEcDerive(privateHandle, publicHandle) -> the shared secret of ECDH (SEC 1 §3.3.1, the
// x-coordinate, padded to the field's length), X25519 or X448 (RFC 7748 §6); null when
// OpenSSL refuses, as it does for keys of different curves or an all-zero X25519/X448 result
// (RFC 7748 §6.1: a small-order public key).
static void EcDerive(const FunctionCallbackInfo<Value> &args)
{
    EVP_PKEY *priv = pkey_arg(args, 0), *pub = pkey_arg(args, 1);
    if (priv == nullptr || pub == nullptr)
        return rt_throw_type_error(args.GetIsolate(), "cryptoEcDerive: bad arguments");
    clear_errors clear;
    pkey_ctx pc(EVP_PKEY_CTX_new_from_pkey(nullptr, priv, nullptr));
    out_bytes r;
    size_t len = 0;
    bool ok = pc.ctx != nullptr && EVP_PKEY_derive_init(pc.ctx) == 1 &&
              EVP_PKEY_derive_set_peer_ex(pc.ctx, pub, 0) == 1 &&
              EVP_PKEY_derive(pc.ctx, nullptr, &len) == 1;
    if (ok) {
        r.v.resize(len);
        ok = EVP_PKEY_derive(pc.ctx, r.v.data(), &len) == 1;
    }
    // OpenSSL 3.0 checks the all-zero X25519/X448 result itself; check again rather than rely
    // on that.
    if (ok && EVP_PKEY_get_base_id(priv) != EVP_PKEY_EC) {
        uint8_t acc = 0;
        for (size_t i = 0; i < len; i++)
            acc |= r.v[i];
        ok = acc != 0;
    }
    return_result(args, ok, r, len);
}

static const rt_native kNatives[] = {
    {"cryptoEcGenerate", EcGenerate},   {"cryptoEcCurve", EcCurve},
    {"cryptoPkeyCheck", PkeyCheck},     {"cryptoEcImport", EcImport},
    {"cryptoEcExport", EcExport},       {"cryptoOkpImport", OkpImport},
    {"cryptoOkpExport", OkpExport},     {"cryptoEcdsaSign", EcdsaSign},
    {"cryptoEcdsaVerify", EcdsaVerify}, {"cryptoEdSign", EdSign},
    {"cryptoEdVerify", EdVerify},       {"cryptoEcDerive", EcDerive},
};

const rt_native *rt_crypto_ec_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
