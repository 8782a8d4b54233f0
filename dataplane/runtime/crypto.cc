// crypto.cc: the native half of crypto.subtle (25_webcrypto.js) on OpenSSL 3: digests, HMAC,
// and the key material of secret CryptoKeys. The WebIDL surface, algorithm normalization and
// every spec check live in JS; these natives only compute.
//
// Key material lives in an ArrayBuffer whose memory is not the allocator's: it is made here
// (OpenSSL's allocator), counted against the app's memory limit as adopted bytes, and its
// deleter wipes it (OPENSSL_cleanse) before freeing it, whenever V8 frees the buffer: when
// the CryptoKey holding it is collected, or with the isolate. Only the built-ins ever hold
// that buffer (in a CryptoKey's private field) and they never make a view of it: app code
// cannot reach the bytes except through exportKey.
//
// PBKDF2, whose cost the app chooses, runs on the libuv thread pool (below). Everything else
// runs synchronously on the isolate's loop thread: SHA-*, HMAC, AES and HKDF of request-sized
// inputs take microseconds to milliseconds. TODO(#19): large digests and ciphers, and RSA key
// generation, go to the thread pool too.
#include "runtime_int.h"

#include <cstring>
#include <string>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

using v8::ArrayBuffer;
using v8::BackingStore;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::String;
using v8::Value;

// The hash ids JS passes (25_webcrypto.js kHashIds): SHA-1, SHA-256, SHA-384, SHA-512.
static const EVP_MD *hash_arg(const FunctionCallbackInfo<Value> &args, int i)
{
    if (!args[i]->IsInt32())
        return nullptr;
    switch (args[i].As<v8::Int32>()->Value()) {
    case 1:
        return EVP_sha1();
    case 256:
        return EVP_sha256();
    case 384:
        return EVP_sha384();
    case 512:
        return EVP_sha512();
    default:
        return nullptr;
    }
}

// The bytes of an ArrayBuffer or a view (a detached one has none). The caller has checked in
// JS that it is not shared memory.
static bool bytes_arg(const FunctionCallbackInfo<Value> &args, int i, const uint8_t **p,
                      size_t *len)
{
    static const uint8_t kEmpty[1] = {0};
    if (args[i]->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = args[i].As<v8::ArrayBufferView>();
        *len = view->ByteLength();
        *p = *len ? static_cast<const uint8_t *>(view->Buffer()->Data()) + view->ByteOffset()
                  : kEmpty;
        return true;
    }
    if (args[i]->IsArrayBuffer()) {
        Local<ArrayBuffer> ab = args[i].As<ArrayBuffer>();
        *len = ab->ByteLength();
        *p = *len ? static_cast<const uint8_t *>(ab->Data()) : kEmpty;
        return true;
    }
    return false;
}

// --- key material -----------------------------------------------------------------------------

// What a key buffer's deleter needs: the allocator that counts its bytes (shared with V8,
// which may free the buffer on another thread, after the isolate is gone).
struct key_store {
    std::shared_ptr<rt_allocator> allocator;
};

static void key_store_free(void *data, size_t len, void *deleter_data)
{
    auto *ks = static_cast<key_store *>(deleter_data);
    OPENSSL_clear_free(data, len > 0 ? len : 1); // wipes, then frees
    if (ks->allocator)
        ks->allocator->release_adopted(len);
    delete ks;
}

// A key buffer of len bytes, filled by fill(p) (false: failed, nothing is returned). Refused
// (a RangeError thrown, empty result) when the app's memory limit has no room for it.
template <class F> static Local<Value> key_new(Isolate *isolate, size_t len, F fill)
{
    rt_isolate *iso = rt_isolate_of(isolate);
    std::shared_ptr<rt_allocator> a = iso != nullptr ? iso->allocator : nullptr;
    if (a && !a->fits(len)) {
        isolate->LowMemoryNotification(); // what V8 does before its own RangeError
        if (!a->fits(len)) {
            isolate->ThrowException(v8::Exception::RangeError(
                String::NewFromUtf8Literal(isolate, "Array buffer allocation failed")));
            return Local<Value>();
        }
    }
    auto *p = static_cast<uint8_t *>(OPENSSL_zalloc(len > 0 ? len : 1));
    if (p == nullptr) {
        isolate->ThrowException(v8::Exception::RangeError(
            String::NewFromUtf8Literal(isolate, "Array buffer allocation failed")));
        return Local<Value>();
    }
    if (!fill(p)) {
        OPENSSL_clear_free(p, len > 0 ? len : 1);
        return Local<Value>();
    }
    auto *ks = new key_store{a};
    if (a)
        a->adopt(len);
    std::unique_ptr<BackingStore> store =
        ArrayBuffer::NewBackingStore(p, len, key_store_free, ks);
    return ArrayBuffer::New(isolate, std::move(store));
}

// The key bytes of a key buffer made by key_new.
static bool key_arg(const FunctionCallbackInfo<Value> &args, int i, const uint8_t **p,
                    size_t *len)
{
    if (!args[i]->IsArrayBuffer())
        return false;
    Local<ArrayBuffer> ab = args[i].As<ArrayBuffer>();
    *len = ab->ByteLength();
    *p = static_cast<const uint8_t *>(ab->Data());
    return *p != nullptr || *len == 0;
}

// An ArrayBuffer holding a copy of n bytes (a RangeError thrown when refused).
static void return_bytes(const FunctionCallbackInfo<Value> &args, const uint8_t *p, size_t n)
{
    Isolate *isolate = args.GetIsolate();
    std::unique_ptr<BackingStore> store = rt_backing_store_new(isolate, n);
    if (!store)
        return;
    if (n > 0)
        memcpy(store->Data(), p, n);
    args.GetReturnValue().Set(ArrayBuffer::New(isolate, std::move(store)));
}

// cryptoKeyFromBytes(bufferSource) -> key buffer holding a copy of its bytes.
static void KeyFromBytes(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const uint8_t *src;
    size_t len;
    if (!bytes_arg(args, 0, &src, &len))
        return rt_throw_type_error(isolate, "cryptoKeyFromBytes: expected a BufferSource");
    Local<Value> key = key_new(isolate, len, [&](uint8_t *p) {
        if (len > 0)
            memcpy(p, src, len);
        return true;
    });
    if (!key.IsEmpty())
        args.GetReturnValue().Set(key);
}

// cryptoKeyGenerate(bits) -> key buffer of ceil(bits / 8) random bytes (RAND_bytes), the bits
// past `bits` in its last byte cleared. Throws an Error when the generator fails.
static void KeyGenerate(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsUint32() || args[0].As<v8::Uint32>()->Value() == 0)
        return rt_throw_type_error(isolate, "cryptoKeyGenerate: expected a length in bits");
    uint32_t bits = args[0].As<v8::Uint32>()->Value();
    size_t len = ((size_t)bits + 7) / 8;
    bool is_rand_ok = true;
    Local<Value> key = key_new(isolate, len, [&](uint8_t *p) {
        if (RAND_bytes(p, (int)len) != 1)
            return is_rand_ok = false;
        if (bits % 8 != 0)
            p[len - 1] &= (uint8_t)(0xFF << (8 - bits % 8));
        return true;
    });
    if (!is_rand_ok)
        isolate->ThrowException(v8::Exception::Error(
            String::NewFromUtf8Literal(isolate, "the random number generator failed")));
    else if (!key.IsEmpty())
        args.GetReturnValue().Set(key);
}

static int base64url_value(uint8_t c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '-'             ? 62
           : c == '_'             ? 63
                                  : -1;
}

// cryptoKeyFromBase64url(string) -> key buffer of the bytes a JWK member encodes (RFC 7515
// §2 base64url: the URL-safe alphabet, no padding, no whitespace), or null when the text is
// not that.
static void KeyFromBase64url(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsString())
        return rt_throw_type_error(isolate, "cryptoKeyFromBase64url: expected a string");
    Local<String> s = args[0].As<String>();
    size_t n = (size_t)s->Length();
    if (n % 4 == 1 || !(s->IsOneByte() || s->ContainsOnlyOneByte()))
        return args.GetReturnValue().SetNull();
    std::string text(n, '\0');
    s->WriteOneByte(isolate, reinterpret_cast<uint8_t *>(&text[0]), 0, (int)n,
                    String::NO_NULL_TERMINATION);
    for (size_t i = 0; i < n; i++) {
        if (base64url_value((uint8_t)text[i]) < 0) {
            OPENSSL_cleanse(&text[0], n);
            return args.GetReturnValue().SetNull();
        }
    }
    size_t len = n / 4 * 3 + (n % 4 == 0 ? 0 : n % 4 - 1);
    Local<Value> key = key_new(isolate, len, [&](uint8_t *p) {
        uint32_t acc = 0;
        int bits = 0;
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            acc = (acc << 6) | (uint32_t)base64url_value((uint8_t)text[i]);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                p[o++] = (uint8_t)(acc >> bits);
            }
        }
        return true;
    });
    OPENSSL_cleanse(&text[0], n);
    if (!key.IsEmpty())
        args.GetReturnValue().Set(key);
}

// cryptoKeyToBase64url(key) -> the key bytes in base64url without padding (a JWK's "k").
static void KeyToBase64url(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const uint8_t *p;
    size_t len;
    if (!key_arg(args, 0, &p, &len))
        return rt_throw_type_error(isolate, "cryptoKeyToBase64url: expected a key");
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
    }
    Local<String> result;
    bool ok = out.size() <= (size_t)String::kMaxLength &&
              String::NewFromOneByte(isolate, reinterpret_cast<const uint8_t *>(out.data()),
                                     v8::NewStringType::kNormal, (int)out.size())
                  .ToLocal(&result);
    OPENSSL_cleanse(&out[0], out.size());
    if (!ok)
        return rt_throw_type_error(isolate, "cryptoKeyToBase64url: the key is too long");
    args.GetReturnValue().Set(result);
}

// cryptoKeyExportRaw(key) -> a new ArrayBuffer with a copy of the key bytes.
static void KeyExportRaw(const FunctionCallbackInfo<Value> &args)
{
    const uint8_t *p;
    size_t len;
    if (!key_arg(args, 0, &p, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoKeyExportRaw: expected a key");
    return_bytes(args, p, len);
}

// cryptoKeyLength(key) -> its length in bytes.
static void KeyLength(const FunctionCallbackInfo<Value> &args)
{
    const uint8_t *p;
    size_t len;
    if (!key_arg(args, 0, &p, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoKeyLength: expected a key");
    args.GetReturnValue().Set((double)len);
}

// --- digest and HMAC ----------------------------------------------------------------------

// cryptoDigest(hashId, bufferSource) -> ArrayBuffer of the digest (FIPS 180-4 via EVP_Digest).
static void Digest(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const EVP_MD *md = hash_arg(args, 0);
    const uint8_t *p;
    size_t len;
    if (md == nullptr || !bytes_arg(args, 1, &p, &len))
        return rt_throw_type_error(isolate, "cryptoDigest: bad arguments");
    uint8_t out[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(p, len, out, &n, md, nullptr) != 1)
        return rt_throw_type_error(isolate, "cryptoDigest: the digest failed");
    return_bytes(args, out, n);
}

// HMAC (RFC 2104) of data with key; false when OpenSSL fails.
static bool hmac(const EVP_MD *md, const uint8_t *key, size_t key_len, const uint8_t *data,
                 size_t len, uint8_t *out, unsigned int *out_len)
{
    static const uint8_t kEmpty[1] = {0};
    if (key_len > INT32_MAX)
        return false;
    return HMAC(md, key_len ? key : kEmpty, (int)key_len, data, len, out, out_len) != nullptr;
}

// cryptoHmacSign(hashId, key, bufferSource) -> ArrayBuffer of the MAC.
static void HmacSign(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const EVP_MD *md = hash_arg(args, 0);
    const uint8_t *key, *data;
    size_t key_len, len;
    if (md == nullptr || !key_arg(args, 1, &key, &key_len) || !bytes_arg(args, 2, &data, &len))
        return rt_throw_type_error(isolate, "cryptoHmacSign: bad arguments");
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!hmac(md, key, key_len, data, len, mac, &n))
        return rt_throw_type_error(isolate, "cryptoHmacSign: HMAC failed");
    return_bytes(args, mac, n);
}

// cryptoHmacVerify(hashId, key, signature, data) -> whether signature is the MAC of data,
// compared in constant time (CRYPTO_memcmp); a signature of another length is false.
static void HmacVerify(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const EVP_MD *md = hash_arg(args, 0);
    const uint8_t *key, *sig, *data;
    size_t key_len, sig_len, len;
    if (md == nullptr || !key_arg(args, 1, &key, &key_len) || !bytes_arg(args, 2, &sig, &sig_len) ||
        !bytes_arg(args, 3, &data, &len))
        return rt_throw_type_error(isolate, "cryptoHmacVerify: bad arguments");
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!hmac(md, key, key_len, data, len, mac, &n))
        return rt_throw_type_error(isolate, "cryptoHmacVerify: HMAC failed");
    bool ok = sig_len == n && CRYPTO_memcmp(mac, sig, n) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    args.GetReturnValue().Set(ok);
}

// --- AES (FIPS 197) and key derivation ------------------------------------------------------
//
// Each returns an ArrayBuffer, or null when the operation fails in a way the spec calls an
// OperationError (bad padding, a bad tag, a bad length): JS turns null into that error.

// The bytes-in, bytes-out result of a cipher; wiped when it goes (it may hold plaintext).
struct out_bytes {
    std::vector<uint8_t> v;
    ~out_bytes()
    {
        if (!v.empty())
            OPENSSL_cleanse(v.data(), v.size());
    }
};

static const EVP_CIPHER *aes_cipher(size_t key_len, const EVP_CIPHER *k128, const EVP_CIPHER *k192,
                                    const EVP_CIPHER *k256)
{
    return key_len == 16 ? k128 : key_len == 24 ? k192 : key_len == 32 ? k256 : nullptr;
}

struct cipher_ctx {
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    ~cipher_ctx() { EVP_CIPHER_CTX_free(ctx); }
};

// EVP_CipherUpdate over len bytes in pieces an int can count; appends to out at *o.
static bool cipher_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len, uint8_t *out,
                          size_t *o)
{
    const size_t kStep = (size_t)1 << 30;
    for (size_t i = 0; i < len; i += kStep) {
        int n = (int)(len - i < kStep ? len - i : kStep), got = 0;
        if (EVP_CipherUpdate(ctx, out + *o, &got, in + i, n) != 1)
            return false;
        *o += (size_t)got;
    }
    return true;
}

static void return_result(const FunctionCallbackInfo<Value> &args, bool ok, const out_bytes &r,
                          size_t n)
{
    if (!ok)
        return args.GetReturnValue().SetNull();
    return_bytes(args, r.v.data(), n);
}

// cryptoAesCbc(encrypt, key, iv, data) -> AES-CBC with PKCS#7 padding (SP 800-38A §6.2); null on a
// bad iv length or, decrypting, on bad padding or a length not a block multiple.
static void AesCbc(const FunctionCallbackInfo<Value> &args)
{
    const uint8_t *key, *iv, *data;
    size_t key_len, iv_len, len;
    if (!key_arg(args, 1, &key, &key_len) || !bytes_arg(args, 2, &iv, &iv_len) ||
        !bytes_arg(args, 3, &data, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesCbc: bad arguments");
    bool enc = args[0]->BooleanValue(args.GetIsolate());
    const EVP_CIPHER *c =
        aes_cipher(key_len, EVP_aes_128_cbc(), EVP_aes_192_cbc(), EVP_aes_256_cbc());
    if (c == nullptr || iv_len != 16 || (!enc && (len == 0 || len % 16 != 0)))
        return args.GetReturnValue().SetNull();
    cipher_ctx cc;
    out_bytes r;
    r.v.resize(len + 16);
    size_t o = 0;
    int got = 0;
    bool ok = cc.ctx != nullptr && EVP_CipherInit_ex(cc.ctx, c, nullptr, key, iv, enc) == 1 &&
              cipher_update(cc.ctx, data, len, r.v.data(), &o) &&
              EVP_CipherFinal_ex(cc.ctx, r.v.data() + o, &got) == 1;
    return_result(args, ok, r, o + (size_t)got);
}

// cryptoAesCtr(key, counter, lengthBits, data) -> AES-CTR (SP 800-38A §6.5) whose counter is the
// rightmost lengthBits of the 16-byte counter block, incremented modulo 2^lengthBits (the bits to
// its left never change: WebCrypto's AES-CTR "length"). null when the counter block is not 16
// bytes, the length not 1..128, or data so long that a counter value would repeat.
static void AesCtr(const FunctionCallbackInfo<Value> &args)
{
    const uint8_t *key, *counter, *data;
    size_t key_len, counter_len, len;
    if (!key_arg(args, 0, &key, &key_len) || !bytes_arg(args, 1, &counter, &counter_len) ||
        !args[2]->IsUint32() || !bytes_arg(args, 3, &data, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesCtr: bad arguments");
    uint32_t bits = args[2].As<v8::Uint32>()->Value();
    const EVP_CIPHER *c =
        aes_cipher(key_len, EVP_aes_128_ctr(), EVP_aes_192_ctr(), EVP_aes_256_ctr());
    if (c == nullptr || counter_len != 16 || bits == 0 || bits > 128)
        return args.GetReturnValue().SetNull();
    typedef unsigned __int128 u128;
    u128 block = 0;
    for (int i = 0; i < 16; i++)
        block = block << 8 | counter[i];
    u128 blocks = ((u128)len + 15) / 16;
    // The blocks before the counter's bits wrap to zero (OpenSSL increments all 128 bits, so the
    // data is cut there and the rest runs from the block with those bits cleared).
    u128 first = blocks;
    u128 mask = ~(u128)0;
    if (bits < 128) {
        mask = ((u128)1 << bits) - 1;
        if (blocks > mask + 1)
            return args.GetReturnValue().SetNull(); // a counter value would repeat
        u128 before_wrap = mask - (block & mask) + 1;
        if (before_wrap < first)
            first = before_wrap;
    }
    size_t first_len = first * 16 < (u128)len ? (size_t)(first * 16) : len;
    out_bytes r;
    r.v.resize(len + 16);
    bool ok = true;
    size_t o = 0;
    for (int part = 0; part < 2 && ok; part++) {
        const uint8_t *in = part == 0 ? data : data + first_len;
        size_t n = part == 0 ? first_len : len - first_len;
        if (part == 1 && n == 0)
            break;
        uint8_t iv[16];
        u128 b = part == 0 ? block : block & ~mask;
        for (int i = 15; i >= 0; i--, b >>= 8)
            iv[i] = (uint8_t)b;
        cipher_ctx cc;
        int got = 0;
        ok = cc.ctx != nullptr && EVP_CipherInit_ex(cc.ctx, c, nullptr, key, iv, 1) == 1 &&
             cipher_update(cc.ctx, in, n, r.v.data(), &o) &&
             EVP_CipherFinal_ex(cc.ctx, r.v.data() + o, &got) == 1;
        o += (size_t)got;
    }
    return_result(args, ok, r, o);
}

// cryptoAesGcm(encrypt, key, iv, additionalData | undefined, tagBytes, data) -> AES-GCM (SP
// 800-38D): encrypting, the ciphertext with the tag appended; decrypting (data ends with the tag),
// the plaintext. null on an empty iv, a tag length outside 4..16, data shorter than the tag, or a
// tag that does not authenticate.
static void AesGcm(const FunctionCallbackInfo<Value> &args)
{
    static const uint8_t kEmpty[1] = {0};
    const uint8_t *key, *iv, *aad = kEmpty, *data;
    size_t key_len, iv_len, aad_len = 0, len;
    if (!key_arg(args, 1, &key, &key_len) || !bytes_arg(args, 2, &iv, &iv_len) ||
        (!args[3]->IsUndefined() && !bytes_arg(args, 3, &aad, &aad_len)) || !args[4]->IsUint32() ||
        !bytes_arg(args, 5, &data, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesGcm: bad arguments");
    bool enc = args[0]->BooleanValue(args.GetIsolate());
    uint32_t tag_len = args[4].As<v8::Uint32>()->Value();
    const EVP_CIPHER *c =
        aes_cipher(key_len, EVP_aes_128_gcm(), EVP_aes_192_gcm(), EVP_aes_256_gcm());
    if (c == nullptr || iv_len == 0 || iv_len > INT32_MAX || tag_len < 4 || tag_len > 16 ||
        (!enc && len < tag_len))
        return args.GetReturnValue().SetNull();
    size_t text_len = enc ? len : len - tag_len;
    out_bytes r;
    r.v.resize(text_len + 16 + 16);
    cipher_ctx cc;
    size_t o = 0;
    int got = 0;
    bool ok = cc.ctx != nullptr &&
              EVP_CipherInit_ex(cc.ctx, c, nullptr, nullptr, nullptr, enc) == 1 &&
              EVP_CIPHER_CTX_ctrl(cc.ctx, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len, nullptr) == 1 &&
              EVP_CipherInit_ex(cc.ctx, nullptr, nullptr, key, iv, enc) == 1;
    const size_t kStep = (size_t)1 << 30;
    for (size_t i = 0; ok && i < aad_len; i += kStep) {
        int n = (int)(aad_len - i < kStep ? aad_len - i : kStep), g = 0;
        ok = EVP_CipherUpdate(cc.ctx, nullptr, &g, aad + i, n) == 1;
    }
    ok = ok && cipher_update(cc.ctx, data, text_len, r.v.data(), &o);
    if (ok && !enc) {
        uint8_t tag[16];
        memcpy(tag, data + text_len, tag_len);
        ok = EVP_CIPHER_CTX_ctrl(cc.ctx, EVP_CTRL_GCM_SET_TAG, (int)tag_len, tag) == 1;
    }
    ok = ok && EVP_CipherFinal_ex(cc.ctx, r.v.data() + o, &got) == 1;
    o += (size_t)got;
    if (ok && enc) {
        ok = EVP_CIPHER_CTX_ctrl(cc.ctx, EVP_CTRL_GCM_GET_TAG, (int)tag_len, r.v.data() + o) == 1;
        o += tag_len;
    }
    return_result(args, ok, r, o);
}

// cryptoAesKw(wrap, key, data) -> AES Key Wrap (RFC 3394 with its default IV): wrapping, data of 16
// bytes or more, a multiple of 8; unwrapping, the plaintext. null otherwise, or when the integrity
// check of an unwrap fails.
static void AesKw(const FunctionCallbackInfo<Value> &args)
{
    const uint8_t *key, *data;
    size_t key_len, len;
    if (!key_arg(args, 1, &key, &key_len) || !bytes_arg(args, 2, &data, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesKw: bad arguments");
    bool wrap = args[0]->BooleanValue(args.GetIsolate());
    const EVP_CIPHER *c =
        aes_cipher(key_len, EVP_aes_128_wrap(), EVP_aes_192_wrap(), EVP_aes_256_wrap());
    if (c == nullptr || len % 8 != 0 || len < (wrap ? 16u : 24u) || len > INT32_MAX - 16)
        return args.GetReturnValue().SetNull();
    cipher_ctx cc;
    out_bytes r;
    r.v.resize(len + 16);
    int got = 0, fin = 0;
    bool ok = cc.ctx != nullptr;
    if (ok)
        EVP_CIPHER_CTX_set_flags(cc.ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    ok = ok && EVP_CipherInit_ex(cc.ctx, c, nullptr, key, nullptr, wrap) == 1 &&
         EVP_CipherUpdate(cc.ctx, r.v.data(), &got, data, (int)len) == 1 && got > 0 &&
         EVP_CipherFinal_ex(cc.ctx, r.v.data() + got, &fin) == 1;
    return_result(args, ok, r, (size_t)got + (size_t)fin);
}

// --- PBKDF2 on the libuv thread pool ---------------------------------------------------------
//
// PBKDF2's cost is the app's choice (iterations), so it runs on the thread pool: the loop thread
// keeps serving other requests meanwhile. A job owns copies of what the work reads (the password,
// wiped when the job goes; the salt) and its output, so nothing of V8's is touched off the loop
// thread. The isolate lists its jobs; rt_crypto_close_all (before the isolate is disposed of) drops
// their promises and unlinks them, and a job whose isolate went meanwhile is only freed when its
// work completes. The pool's threads serve every app of the process, so an isolate has at most
// kJobsRunning jobs there at once; the rest wait in its list, oldest first, until one of its
// running jobs completes.
static constexpr int kJobsRunning = 2;
// Jobs an isolate may have waiting or running at once: beyond, a call fails (OperationError), so
// a loop of deriveBits calls cannot pile up native memory without bound. The bytes a job holds
// (password, salt, output) also count against the app's memory limit while it lives.
static constexpr int kJobsMax = 256;

struct rt_crypto_job {
    uv_work_t work;
    rt_isolate *iso; // nullptr once the isolate has gone
    rt_crypto_job *prev = nullptr, *next = nullptr;
    v8::Global<v8::Promise::Resolver> resolver;
    uint32_t slot, gen; // the request the promise is for, when there is one
    const EVP_MD *md;
    uint8_t *password = nullptr;
    size_t password_len = 0;
    std::vector<uint8_t> salt;
    uint32_t iterations = 0;
    out_bytes out;
    bool is_ok = false;
    bool is_running = false; // queued on the pool (else waiting in the isolate's list)
    std::shared_ptr<rt_allocator> allocator; // counts held_bytes while the job lives
    size_t held_bytes = 0;

    ~rt_crypto_job()
    {
        if (password != nullptr)
            OPENSSL_clear_free(password, password_len > 0 ? password_len : 1);
        if (allocator)
            allocator->release_adopted(held_bytes);
    }
};

static void job_unlink(rt_crypto_job *job)
{
    if (job->iso != nullptr)
        job->iso->n_crypto_jobs--;
    if (job->prev != nullptr)
        job->prev->next = job->next;
    else if (job->iso != nullptr)
        job->iso->crypto_jobs = job->next;
    if (job->next != nullptr)
        job->next->prev = job->prev;
    job->prev = job->next = nullptr;
}

static void on_pbkdf2_work(uv_work_t *w);
static void on_pbkdf2_done(uv_work_t *w, int status);

// Queues the oldest waiting jobs of iso while it has fewer than kJobsRunning on the pool. A job the
// pool refuses settles with null (an OperationError in JS). Called inside a context.
static void jobs_start(rt_isolate *iso)
{
    rt_crypto_job *oldest = nullptr;
    for (rt_crypto_job *j = iso->crypto_jobs; j != nullptr; j = j->next)
        if (!j->is_running)
            oldest = j; // the list is newest first
    while (oldest != nullptr && iso->n_crypto_running < kJobsRunning) {
        rt_crypto_job *job = oldest;
        oldest = job->prev;
        while (oldest != nullptr && oldest->is_running)
            oldest = oldest->prev;
        job->work.data = job;
        job->is_running = true;
        iso->n_crypto_running++;
        if (uv_queue_work(iso->loop, &job->work, on_pbkdf2_work, on_pbkdf2_done) != 0) {
            iso->n_crypto_running--;
            job_unlink(job);
            Isolate *isolate = iso->isolate;
            rt_ignore(job->resolver.Get(isolate)->Resolve(isolate->GetCurrentContext(),
                                                          v8::Null(isolate)));
            job->resolver.Reset();
            delete job;
        }
    }
}

static void on_pbkdf2_work(uv_work_t *w)
{
    auto *job = static_cast<rt_crypto_job *>(w->data);
    static const uint8_t kEmpty[1] = {0};
    size_t n = job->out.v.size() - 1; // one spare byte keeps data() valid for n == 0
    job->is_ok =
        n == 0 ||
        PKCS5_PBKDF2_HMAC(
            reinterpret_cast<const char *>(job->password_len ? job->password : kEmpty),
            (int)job->password_len, job->salt.empty() ? kEmpty : job->salt.data(),
            (int)job->salt.size(), (int)job->iterations, job->md, (int)n, job->out.v.data()) == 1;
}

static void on_pbkdf2_done(uv_work_t *w, int status)
{
    std::unique_ptr<rt_crypto_job> job(static_cast<rt_crypto_job *>(w->data));
    rt_isolate *iso = job->iso;
    if (iso == nullptr) // the isolate went: nothing to resolve
        return;
    job_unlink(job.get());
    iso->n_crypto_running--;
    if (iso->is_broken || iso->isolate == nullptr) {
        job->resolver.Reset();
        return;
    }
    Isolate *isolate = iso->isolate;
    bool is_live = job->slot < iso->slots.size() && iso->slots[job->slot].req != nullptr &&
                   iso->slots[job->slot].gen == job->gen;
    JsEntry js(iso, is_live ? job->slot : kNoSlot);
    Local<v8::Context> ctx = js.context();
    jobs_start(iso); // the next waiting job of this isolate takes the freed place
    Local<v8::Promise::Resolver> resolver = job->resolver.Get(isolate);
    job->resolver.Reset();
    if (status != 0 || !job->is_ok) {
        rt_ignore(resolver->Resolve(ctx, v8::Null(isolate))); // JS makes it an OperationError
        return;
    }
    v8::TryCatch tc(isolate);
    size_t n = job->out.v.size() - 1; // one spare byte keeps data() valid for n == 0
    std::unique_ptr<BackingStore> store = rt_backing_store_new(isolate, n);
    if (!store) {
        if (tc.HasCaught() && tc.CanContinue())
            rt_ignore(resolver->Reject(ctx, tc.Exception()));
        return;
    }
    if (n > 0)
        memcpy(store->Data(), job->out.v.data(), n);
    rt_ignore(resolver->Resolve(ctx, ArrayBuffer::New(isolate, std::move(store))));
}

// cryptoPbkdf2(hashId, key, salt, iterations, bytes) -> a promise of the PBKDF2 output with HMAC
// (RFC 8018 §5.2) as an ArrayBuffer, or of null when OpenSSL fails. The work runs on the libuv
// thread pool; the promise settles on the loop thread, charged to the request that asked while it
// is still there.
static void Pbkdf2(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    rt_isolate *iso = rt_isolate_of(isolate);
    const EVP_MD *md = hash_arg(args, 0);
    const uint8_t *key, *salt;
    size_t key_len, salt_len;
    if (iso == nullptr || iso->loop == nullptr || md == nullptr ||
        !key_arg(args, 1, &key, &key_len) || !bytes_arg(args, 2, &salt, &salt_len) ||
        !args[3]->IsUint32() || !args[4]->IsUint32())
        return rt_throw_type_error(isolate, "cryptoPbkdf2: bad arguments");
    uint32_t iterations = args[3].As<v8::Uint32>()->Value();
    uint32_t n = args[4].As<v8::Uint32>()->Value();
    Local<v8::Context> ctx = isolate->GetCurrentContext();
    Local<v8::Promise::Resolver> resolver;
    if (!v8::Promise::Resolver::New(ctx).ToLocal(&resolver))
        return;
    if (iterations == 0 || iterations > INT32_MAX || key_len > INT32_MAX || salt_len > INT32_MAX ||
        n > INT32_MAX || iso->n_crypto_jobs >= kJobsMax) {
        rt_ignore(resolver->Resolve(ctx, v8::Null(isolate)));
        return args.GetReturnValue().Set(resolver->GetPromise());
    }
    size_t held = key_len + salt_len + (size_t)n;
    std::shared_ptr<rt_allocator> a = iso->allocator;
    if (a && !a->fits(held)) {
        isolate->LowMemoryNotification(); // as key_new does
        if (!a->fits(held)) {
            isolate->ThrowException(v8::Exception::RangeError(
                String::NewFromUtf8Literal(isolate, "Array buffer allocation failed")));
            return;
        }
    }
    auto job = std::make_unique<rt_crypto_job>();
    if (a) {
        a->adopt(held);
        job->allocator = a;
        job->held_bytes = held;
    }
    job->iso = iso;
    job->slot = iso->current_slot;
    job->gen = iso->segment_gen;
    job->md = md;
    job->iterations = iterations;
    job->password_len = key_len;
    job->password = static_cast<uint8_t *>(OPENSSL_malloc(key_len > 0 ? key_len : 1));
    if (job->password == nullptr) {
        job->password_len = 0;
        return rt_throw_type_error(isolate, "cryptoPbkdf2: out of memory");
    }
    if (key_len > 0)
        memcpy(job->password, key, key_len);
    job->salt.assign(salt, salt + salt_len);
    job->out.v.resize((size_t)n + 1);
    job->resolver.Reset(isolate, resolver);
    rt_crypto_job *j = job.release(); // the list holds it; on_pbkdf2_done frees it
    iso->n_crypto_jobs++;
    j->next = iso->crypto_jobs;
    if (j->next != nullptr)
        j->next->prev = j;
    iso->crypto_jobs = j;
    args.GetReturnValue().Set(resolver->GetPromise());
    jobs_start(iso);
}

void rt_crypto_close_all(rt_isolate *iso)
{
    while (iso->crypto_jobs != nullptr) {
        rt_crypto_job *job = iso->crypto_jobs;
        job_unlink(job);
        job->resolver.Reset();
        job->iso = nullptr;
        if (!job->is_running)
            delete job; // never queued: no callback will come
        else
            uv_cancel(reinterpret_cast<uv_req_t *>(&job->work)); // only if not started yet
    }
    iso->n_crypto_running = 0;
}

// cryptoHkdf(hashId, key, salt, info, bytes) -> HKDF (RFC 5869 §2.2 extract, §2.3 expand) with
// HMAC; null when bytes exceeds 255 times the hash length.
static void Hkdf(const FunctionCallbackInfo<Value> &args)
{
    const EVP_MD *md = hash_arg(args, 0);
    const uint8_t *key, *salt, *info;
    size_t key_len, salt_len, info_len;
    if (md == nullptr || !key_arg(args, 1, &key, &key_len) ||
        !bytes_arg(args, 2, &salt, &salt_len) || !bytes_arg(args, 3, &info, &info_len) ||
        !args[4]->IsUint32())
        return rt_throw_type_error(args.GetIsolate(), "cryptoHkdf: bad arguments");
    uint32_t n = args[4].As<v8::Uint32>()->Value();
    size_t hash_len = (size_t)EVP_MD_get_size(md);
    if (n > 255 * hash_len)
        return args.GetReturnValue().SetNull();
    uint8_t prk[EVP_MAX_MD_SIZE];
    unsigned int prk_len = 0;
    // Extract: PRK = HMAC-Hash(salt, IKM); an absent salt is HashLen zeros, which HMAC pads to the
    // same key as an empty one.
    bool ok = hmac(md, salt, salt_len, key, key_len, prk, &prk_len);
    out_bytes r, block;
    r.v.resize(n + hash_len);
    block.v.resize(hash_len + info_len + 1);
    size_t o = 0, t_len = 0;
    for (unsigned i = 1; ok && o < n; i++) {
        // T(i) = HMAC-Hash(PRK, T(i-1) | info | i)
        memcpy(block.v.data() + t_len, info, info_len);
        block.v[t_len + info_len] = (uint8_t)i;
        unsigned int got = 0;
        ok = hmac(md, prk, prk_len, block.v.data(), t_len + info_len + 1, r.v.data() + o, &got);
        memcpy(block.v.data(), r.v.data() + o, got);
        t_len = got;
        o += got;
    }
    OPENSSL_cleanse(prk, sizeof prk);
    return_result(args, ok, r, n);
}

static const rt_native kNatives[] = {
    {"cryptoDigest", Digest},
    {"cryptoHmacSign", HmacSign},
    {"cryptoHmacVerify", HmacVerify},
    {"cryptoKeyFromBytes", KeyFromBytes},
    {"cryptoKeyGenerate", KeyGenerate},
    {"cryptoKeyFromBase64url", KeyFromBase64url},
    {"cryptoKeyToBase64url", KeyToBase64url},
    {"cryptoKeyExportRaw", KeyExportRaw},
    {"cryptoKeyLength", KeyLength},
    {"cryptoAesCbc", AesCbc},
    {"cryptoAesCtr", AesCtr},
    {"cryptoAesGcm", AesGcm},
    {"cryptoAesKw", AesKw},
    {"cryptoPbkdf2", Pbkdf2},
    {"cryptoHkdf", Hkdf},
};

const rt_native *rt_crypto_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
