// crypto_rsa.cc: the native half of RSASSA-PKCS1-v1_5, RSA-PSS and RSA-OAEP (26_webcrypto_rsa.js)
// on OpenSSL 3's EVP interfaces: key generation (on the libuv thread pool), keys from and to
// JWK numbers, the checks an imported key must pass, signatures and OAEP.
//
// Keys are the asymmetric handles of crypto_int.h (an EVP_PKEY of type RSA; OpenSSL clears the
// private numbers when it frees them). spki and pkcs8 go through crypto.cc's generic natives.
// Key generation runs on the libuv thread pool; so do signatures and OAEP of long inputs or
// with keys past 4096 bits. The rest runs on the isolate's loop thread: a private-key operation
// with a 2048-bit key takes about 0.6 ms here, a 4096-bit one a few.
#include "crypto_int.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::String;
using v8::Value;

using namespace crypto;

// What we accept in an RSA key. OpenSSL refuses operations on a modulus longer than
// OPENSSL_RSA_MAX_MODULUS_BITS (16384); a modulus shorter than 512 bits cannot hold a
// PKCS #1 signature with SHA-512 and is not an RSA key anyone should still use.
static constexpr int kMinModulusBits = 512;
static constexpr int kMaxModulusBits = 16384;

static bool get_bn(const EVP_PKEY *pkey, const char *name, bn_ptr &out)
{
    return EVP_PKEY_get_bn_param(pkey, name, &out.p) == 1 && out.p != nullptr;
}

// Whether pkey is an RSA key we can use: two primes only (no multi-prime key), a modulus of
// kMinModulusBits to kMaxModulusBits, an odd public exponent in 3..n-1, and for a private key
// numbers that agree with each other (RFC 8017 §3.2: n = p q, e d = 1 mod p-1 and q-1, dP, dQ
// and qInv as defined). The checks are a few multiplications and reductions; OpenSSL's own
// EVP_PKEY_pairwise_check would also test p and q for primality, which takes tens of
// milliseconds for a 4096-bit key.
static bool rsa_key_ok(const EVP_PKEY *pkey, bool is_private)
{
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA)
        return false;
    bn_ptr n, e, extra;
    if (!get_bn(pkey, OSSL_PKEY_PARAM_RSA_N, n) || !get_bn(pkey, OSSL_PKEY_PARAM_RSA_E, e))
        return false;
    if (get_bn(pkey, OSSL_PKEY_PARAM_RSA_FACTOR3, extra))
        return false;
    int bits = BN_num_bits(n.p);
    if (bits < kMinModulusBits || bits > kMaxModulusBits || !BN_is_odd(n.p) || !BN_is_odd(e.p) ||
        BN_is_one(e.p) || BN_cmp(e.p, n.p) >= 0)
        return false;
    if (!is_private)
        return true;
    bn_ptr d, p, q, dp, dq, qi;
    if (!get_bn(pkey, OSSL_PKEY_PARAM_RSA_D, d) || !get_bn(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
        !get_bn(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
        !get_bn(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
        !get_bn(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
        !get_bn(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi))
        return false;
    bn_ctx bc;
    bn_ptr t, p1, q1, r;
    t.p = BN_new();
    p1.p = BN_new();
    q1.p = BN_new();
    r.p = BN_new();
    if (bc.ctx == nullptr || t.p == nullptr || p1.p == nullptr || q1.p == nullptr || r.p == nullptr)
        return false;
    if (BN_is_zero(d.p) || BN_cmp(d.p, n.p) >= 0 || BN_cmp(p.p, BN_value_one()) <= 0 ||
        BN_cmp(q.p, BN_value_one()) <= 0)
        return false;
    bool ok = BN_mul(t.p, p.p, q.p, bc.ctx) == 1 && BN_cmp(t.p, n.p) == 0 &&
              BN_sub(p1.p, p.p, BN_value_one()) == 1 && BN_sub(q1.p, q.p, BN_value_one()) == 1 &&
              // e d = 1 mod (p-1) and mod (q-1)
              BN_mod_mul(r.p, e.p, d.p, p1.p, bc.ctx) == 1 && BN_is_one(r.p) &&
              BN_mod_mul(r.p, e.p, d.p, q1.p, bc.ctx) == 1 && BN_is_one(r.p) &&
              // dP = d mod (p-1), dQ = d mod (q-1)
              BN_mod(r.p, d.p, p1.p, bc.ctx) == 1 && BN_cmp(r.p, dp.p) == 0 &&
              BN_mod(r.p, d.p, q1.p, bc.ctx) == 1 && BN_cmp(r.p, dq.p) == 0 &&
              // qInv q = 1 mod p, qInv < p
              BN_cmp(qi.p, p.p) < 0 && BN_mod_mul(r.p, qi.p, q.p, p.p, bc.ctx) == 1 &&
              BN_is_one(r.p);
    return ok;
}

// --- key generation ------------------------------------------------------------------------

// cryptoRsaGenerate(modulusBits, publicExponent) -> a promise of a handle on a new RSA private
// key (RFC 8017 §3.2, two primes), or of null when OpenSSL fails. JS has checked the bits
// and the exponent (a uint32). Runs on the thread pool: a 4096-bit key takes seconds.
static void RsaGenerate(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsUint32() || !args[1]->IsUint32())
        return rt_throw_type_error(isolate, "cryptoRsaGenerate: bad arguments");
    uint32_t bits = args[0].As<v8::Uint32>()->Value();
    uint32_t exponent = args[1].As<v8::Uint32>()->Value();
    if (bits < (uint32_t)kMinModulusBits || bits > (uint32_t)kMaxModulusBits || exponent < 3 ||
        exponent % 2 == 0)
        return rt_throw_type_error(isolate, "cryptoRsaGenerate: bad arguments");
    // The key, owned here until settle() hands it to a handle: freed (and cleared) with the
    // state when the isolate went before the work completed.
    struct state {
        EVP_PKEY *pkey = nullptr;
        ~state() { EVP_PKEY_free(pkey); }
    };
    auto st = std::make_shared<state>();
    job_spec spec;
    spec.held_bytes = (size_t)bits + 1024; // what pkey_new will count for the key
    spec.is_long = true; // one prime search: seconds, and it cannot be cut into slices
    spec.run = [st, bits, exponent] {
        pkey_ctx pc(EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr));
        bn_ptr e;
        e.p = BN_new();
        bool ok = pc.ctx != nullptr && e.p != nullptr && BN_set_word(e.p, exponent) == 1 &&
                  EVP_PKEY_keygen_init(pc.ctx) == 1 &&
                  EVP_PKEY_CTX_set_rsa_keygen_bits(pc.ctx, (int)bits) == 1 &&
                  EVP_PKEY_CTX_set1_rsa_keygen_pubexp(pc.ctx, e.p) == 1 &&
                  EVP_PKEY_generate(pc.ctx, &st->pkey) == 1 && st->pkey != nullptr;
        return ok ? step::done : step::failed;
    };
    spec.settle = [st](Isolate *i) -> Local<Value> {
        EVP_PKEY *pkey = st->pkey;
        st->pkey = nullptr;
        return pkey_new(i, pkey); // owns it now, also when it fails
    };
    return_value(args, job_start(isolate, std::move(spec)));
}

// --- keys from and to their numbers ------------------------------------------------------------

// cryptoRsaInfo(handle, isPrivate) -> [modulus length in bits, the public exponent as an
// ArrayBuffer (big-endian, no leading zeros)], or null when the key is not one rsa_key_ok
// accepts (an imported spki or pkcs8 key, before it becomes a CryptoKey).
static void RsaInfo(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoRsaInfo: expected a key handle");
    clear_errors clear;
    if (!rsa_key_ok(pkey, args[1]->BooleanValue(isolate)))
        return args.GetReturnValue().SetNull();
    bn_ptr n, e;
    if (!get_bn(pkey, OSSL_PKEY_PARAM_RSA_N, n) || !get_bn(pkey, OSSL_PKEY_PARAM_RSA_E, e))
        return args.GetReturnValue().SetNull();
    uint8_t exp[kMaxModulusBits / 8];
    int exp_len = BN_bn2bin(e.p, exp);
    Local<Value> exp_buf = new_bytes(isolate, exp, (size_t)exp_len);
    if (exp_buf.IsEmpty())
        return;
    Local<Value> items[2] = {v8::Integer::New(isolate, BN_num_bits(n.p)), exp_buf};
    args.GetReturnValue().Set(v8::Array::New(isolate, items, 2));
}

// JWK member order of the numbers (RFC 7518 §6.3): n, e, then d, p, q, dp, dq, qi.
static const char *const kJwkParams[8] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};

// cryptoRsaFromJwk(n, e[, d, p, q, dp, dq, qi]) -> a handle on the public key (two numbers)
// or the private key (eight) whose big-endian numbers these ArrayBuffers hold (the decoded
// JWK members), or null when they are not an RSA key rsa_key_ok accepts (RFC 7518 §6.3.1,
// §6.3.2).
static void RsaFromJwk(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    int count = args.Length() == 8 ? 8 : 2;
    const uint8_t *p[8];
    size_t len[8];
    for (int i = 0; i < count; i++)
        if (!bytes_arg(args, i, &p[i], &len[i]))
            return rt_throw_type_error(isolate, "cryptoRsaFromJwk: bad arguments");
    clear_errors clear;
    for (int i = 0; i < count; i++)
        if (len[i] == 0 || len[i] > kMaxModulusBits / 8 + 1)
            return args.GetReturnValue().SetNull();
    bn_ptr bn[8];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    bool ok = bld != nullptr;
    for (int i = 0; ok && i < count; i++) {
        // The private numbers in "secure" BIGNUMs: OSSL_PARAM_BLD keeps their copies in a
        // block that OSSL_PARAM_free clears (OpenSSL 3.0 has no OSSL_PARAM_clear_free).
        bn[i].p = i < 2 ? BN_new() : BN_secure_new();
        ok = bn[i].p != nullptr && BN_bin2bn(p[i], (int)len[i], bn[i].p) != nullptr &&
             OSSL_PARAM_BLD_push_BN(bld, kJwkParams[i], bn[i].p) == 1;
    }
    OSSL_PARAM *params = ok ? OSSL_PARAM_BLD_to_param(bld) : nullptr;
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY *pkey = nullptr;
    if (params != nullptr) {
        pkey_ctx pc(EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, nullptr));
        if (pc.ctx == nullptr || EVP_PKEY_fromdata_init(pc.ctx) != 1 ||
            EVP_PKEY_fromdata(pc.ctx, &pkey, count == 8 ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                              params) != 1)
            pkey = nullptr;
        OSSL_PARAM_free(params);
    }
    if (pkey == nullptr || !rsa_key_ok(pkey, count == 8)) {
        EVP_PKEY_free(pkey);
        return args.GetReturnValue().SetNull();
    }
    return_value(args, pkey_new(isolate, pkey));
}

// cryptoRsaExportJwk(handle, isPrivate) -> the key's numbers as base64url strings, in
// kJwkParams order: [n, e] or, isPrivate, all eight. null when OpenSSL cannot give them.
static void RsaExportJwk(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoRsaExportJwk: expected a key handle");
    clear_errors clear;
    int count = args[1]->BooleanValue(isolate) ? 8 : 2;
    Local<Value> items[8];
    out_bytes buf;
    buf.v.resize(kMaxModulusBits / 8 + 8);
    for (int i = 0; i < count; i++) {
        bn_ptr bn;
        if (!get_bn(pkey, kJwkParams[i], bn) || BN_num_bytes(bn.p) > (int)buf.v.size())
            return args.GetReturnValue().SetNull();
        int n = BN_bn2bin(bn.p, buf.v.data());
        std::string text = base64url(buf.v.data(), (size_t)n);
        Local<String> s;
        bool ok = String::NewFromOneByte(isolate, reinterpret_cast<const uint8_t *>(text.data()),
                                         v8::NewStringType::kNormal, (int)text.size())
                      .ToLocal(&s);
        OPENSSL_cleanse(&text[0], text.size());
        if (!ok)
            return;
        items[i] = s;
    }
    args.GetReturnValue().Set(v8::Array::New(isolate, items, (size_t)count));
}

// --- signatures (RFC 8017 §8) and OAEP (RFC 8017 §7.1) ---------------------------------------
//
// These run on the loop thread, except for inputs of kPoolBytes or more (the digest of the data
// dominates) and keys longer than kPoolModulusBits (a private-key operation with a 16384-bit key
// takes about a second here): those run as a job on the thread pool, on copies of the inputs
// and a reference of their own to the key (EVP_PKEY_up_ref: the CryptoKey may be collected
// meanwhile; OpenSSL 3 keys may be used by several threads at once), and the native returns a
// promise of the same result.

static constexpr int kPoolModulusBits = 4096;

using span = input;
// The operation with the key (a boolean result is r.v[0]); false: the spec's error.
using pkey_fn = std::function<bool(EVP_PKEY *pkey, const span *in, out_bytes &r, size_t *n)>;

static void run_pkey_op(const FunctionCallbackInfo<Value> &args, EVP_PKEY *pkey,
                        std::initializer_list<span> inputs, bool is_boolean, pkey_fn fn)
{
    op_options o;
    o.out_len = (size_t)EVP_PKEY_get_size(pkey) + 64;
    o.kind = is_boolean ? result_kind::boolean : result_kind::bytes;
    o.key = pkey; // a job holds its own reference
    o.force_pool = EVP_PKEY_get_bits(pkey) > kPoolModulusBits;
    run_op(args, inputs, o,
           [pkey, fn](const input *in, out_bytes &r, size_t *n) { return fn(pkey, in, r, n); });
}

// The context of a signature with md: RSASSA-PKCS1-v1_5, or (salt_len >= 0) RSASSA-PSS with
// MGF1 of the same hash and that salt length.
static bool sign_init(EVP_MD_CTX *mctx, bool sign, EVP_PKEY *pkey, const EVP_MD *md,
                      int64_t salt_len)
{
    EVP_PKEY_CTX *pctx = nullptr; // owned by mctx
    int rc = sign ? EVP_DigestSignInit(mctx, &pctx, md, nullptr, pkey)
                  : EVP_DigestVerifyInit(mctx, &pctx, md, nullptr, pkey);
    if (rc != 1)
        return false;
    if (salt_len < 0)
        return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)salt_len) == 1;
}

// The salt length argument: -1 for PKCS #1 v1.5, else a PSS salt length.
static bool salt_arg(const FunctionCallbackInfo<Value> &args, int i, int64_t *out)
{
    if (args[i]->IsUndefined()) {
        *out = -1;
        return true;
    }
    if (!args[i]->IsUint32())
        return false;
    *out = args[i].As<v8::Uint32>()->Value();
    return true;
}

// cryptoRsaSign(handle, hashId, saltLength | undefined, data) -> ArrayBuffer of the
// RSASSA-PKCS1-v1_5 (saltLength undefined) or RSASSA-PSS signature of data (or a promise of
// it); null when the signature cannot be made (a salt too long for the key: RFC 8017 §9.1.1
// step 3; a key too short for the hash: §9.2 step 3).
static void RsaSign(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    const EVP_MD *md = hash_arg(args, 1);
    int64_t salt_len;
    span data;
    if (pkey == nullptr || md == nullptr || !salt_arg(args, 2, &salt_len) ||
        !bytes_arg(args, 3, &data.p, &data.len))
        return rt_throw_type_error(isolate, "cryptoRsaSign: bad arguments");
    if (salt_len > INT32_MAX) // more than OpenSSL's int can say, and than any key can hold
        return args.GetReturnValue().SetNull();
    run_pkey_op(args, pkey, {data}, false,
                [md, salt_len](EVP_PKEY *key, const span *in, out_bytes &r, size_t *n) {
                    md_ctx mc;
                    *n = (size_t)EVP_PKEY_get_size(key);
                    r.v.resize(*n + 1);
                    return mc.ctx != nullptr && sign_init(mc.ctx, true, key, md, salt_len) &&
                           EVP_DigestSign(mc.ctx, r.v.data(), n, in[0].p, in[0].len) == 1;
                });
}

// cryptoRsaVerify(handle, hashId, saltLength | undefined, signature, data) -> whether signature
// is a valid signature of data (as cryptoRsaSign makes it; PSS with exactly that salt length),
// or a promise of that. Anything malformed (a signature of another length, a value past the
// modulus, a salt no key can hold) is false.
static void RsaVerify(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    const EVP_MD *md = hash_arg(args, 1);
    int64_t salt_len;
    span sig, data;
    if (pkey == nullptr || md == nullptr || !salt_arg(args, 2, &salt_len) ||
        !bytes_arg(args, 3, &sig.p, &sig.len) || !bytes_arg(args, 4, &data.p, &data.len))
        return rt_throw_type_error(isolate, "cryptoRsaVerify: bad arguments");
    if (salt_len > INT32_MAX || sig.len != (size_t)EVP_PKEY_get_size(pkey))
        return args.GetReturnValue().Set(false);
    run_pkey_op(args, pkey, {sig, data}, true,
                [md, salt_len](EVP_PKEY *key, const span *in, out_bytes &r, size_t *n) {
                    md_ctx mc;
                    bool ok = mc.ctx != nullptr && sign_init(mc.ctx, false, key, md, salt_len) &&
                              EVP_DigestVerify(mc.ctx, in[0].p, in[0].len, in[1].p, in[1].len) == 1;
                    r.v.assign(1, ok);
                    *n = 1;
                    return true;
                });
}

// cryptoRsaOaep(encrypt, handle, hashId, label | undefined, data) -> ArrayBuffer of RSAES-OAEP
// with MGF1 of the same hash (RFC 8017 §7.1): the ciphertext, or the plaintext (or a promise of
// it); null when the message is too long for the key (§7.1.1 step 1b) or the ciphertext does
// not decrypt.
static void RsaOaep(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    static const uint8_t kEmpty[1] = {0};
    EVP_PKEY *pkey = pkey_arg(args, 1);
    const EVP_MD *md = hash_arg(args, 2);
    span label = {kEmpty, 0}, data;
    if (pkey == nullptr || md == nullptr ||
        (!args[3]->IsUndefined() && !bytes_arg(args, 3, &label.p, &label.len)) ||
        !bytes_arg(args, 4, &data.p, &data.len))
        return rt_throw_type_error(isolate, "cryptoRsaOaep: bad arguments");
    bool enc = args[0]->BooleanValue(isolate);
    size_t k = (size_t)EVP_PKEY_get_size(pkey);
    if (label.len > INT32_MAX || (enc ? data.len > k : data.len != k))
        return args.GetReturnValue().SetNull();
    run_pkey_op(
        args, pkey, {label, data}, false,
        [md, enc, k](EVP_PKEY *key, const span *in, out_bytes &r, size_t *n) {
            pkey_ctx pc(EVP_PKEY_CTX_new(key, nullptr));
            bool ok = pc.ctx != nullptr &&
                      (enc ? EVP_PKEY_encrypt_init(pc.ctx) : EVP_PKEY_decrypt_init(pc.ctx)) == 1 &&
                      EVP_PKEY_CTX_set_rsa_padding(pc.ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
                      EVP_PKEY_CTX_set_rsa_oaep_md(pc.ctx, md) == 1 &&
                      EVP_PKEY_CTX_set_rsa_mgf1_md(pc.ctx, md) == 1;
            if (ok && in[0].len > 0) {
                // set0 takes the copy when it succeeds (freed with the context)
                void *copy = OPENSSL_memdup(in[0].p, in[0].len);
                ok = copy != nullptr &&
                     EVP_PKEY_CTX_set0_rsa_oaep_label(pc.ctx, copy, (int)in[0].len) == 1;
                if (!ok)
                    OPENSSL_free(copy);
            }
            *n = k;
            r.v.resize(k + 1);
            return ok && (enc ? EVP_PKEY_encrypt(pc.ctx, r.v.data(), n, in[1].p, in[1].len)
                              : EVP_PKEY_decrypt(pc.ctx, r.v.data(), n, in[1].p, in[1].len)) == 1;
        });
}

static const rt_native kNatives[] = {
    {"cryptoRsaGenerate", RsaGenerate}, {"cryptoRsaInfo", RsaInfo},
    {"cryptoRsaFromJwk", RsaFromJwk},   {"cryptoRsaExportJwk", RsaExportJwk},
    {"cryptoRsaSign", RsaSign},         {"cryptoRsaVerify", RsaVerify},
    {"cryptoRsaOaep", RsaOaep},
};

const rt_native *rt_crypto_rsa_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
