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
// Everything runs synchronously on the isolate's loop thread: SHA-* and HMAC of request-sized
// inputs take microseconds. TODO(#19): the slow operations of later algorithms (RSA key
// generation, PBKDF2, large digests) go to the libuv thread pool.
#include "runtime_int.h"

#include <cstring>
#include <string>

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
};

const rt_native *rt_crypto_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
