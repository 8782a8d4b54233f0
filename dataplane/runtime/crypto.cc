// crypto.cc: the native half of crypto.subtle (25_webcrypto.js) on OpenSSL 3, and what the
// algorithm files share (crypto_int.h): digests, HMAC, AES, PBKDF2, HKDF, secret key buffers,
// result buffers, and asymmetric key handles with their spki / pkcs8 encodings. Jobs on the
// libuv thread pool are in crypto_pool.cc, RSA in crypto_rsa.cc, the elliptic curves in
// crypto_ec.cc.
//
// Secret key material lives in an ArrayBuffer whose memory is not the allocator's: it is made
// here (OpenSSL's allocator), counted against the app's memory limit as adopted bytes, and its
// deleter wipes it (OPENSSL_cleanse) before freeing it, whenever V8 frees the buffer: when
// the CryptoKey holding it is collected, or with the isolate. Only the built-ins ever hold
// that buffer (in a CryptoKey's private field) and they never make a view of it: app code
// cannot reach the bytes except through exportKey.
//
// Work whose cost the app chooses runs on the libuv thread pool (job_start): PBKDF2, and
// digests, HMAC and AES of inputs of a MiB or more. The rest runs synchronously on the
// isolate's loop thread: the same operations on request-sized inputs take microseconds.
#include "crypto_int.h"

#include <cstring>
#include <string>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

using v8::ArrayBuffer;
using v8::BackingStore;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::String;
using v8::Value;

using namespace crypto;

// --- shared by the algorithm files (crypto_int.h) ------------------------------------------

namespace crypto {

// The digests, fetched from the default provider once for the process: OpenSSL 3 looks up an
// implementation on every use of EVP_sha256() and friends, a cost per operation that shows in
// small signatures and MACs.
static const EVP_MD *fetched_md(const char *name, const EVP_MD *fallback)
{
    EVP_MD *md = EVP_MD_fetch(nullptr, name, nullptr);
    return md != nullptr ? md : fallback; // kept for the process's life
}

const EVP_MD *hash_arg(const FunctionCallbackInfo<Value> &args, int i)
{
    static const EVP_MD *sha1 = fetched_md("SHA1", EVP_sha1());
    static const EVP_MD *sha256 = fetched_md("SHA2-256", EVP_sha256());
    static const EVP_MD *sha384 = fetched_md("SHA2-384", EVP_sha384());
    static const EVP_MD *sha512 = fetched_md("SHA2-512", EVP_sha512());
    if (!args[i]->IsInt32())
        return nullptr;
    switch (args[i].As<v8::Int32>()->Value()) {
    case 1: return sha1;
    case 256: return sha256;
    case 384: return sha384;
    case 512: return sha512;
    default: return nullptr;
    }
}

bool bytes_arg(const FunctionCallbackInfo<Value> &args, int i, const uint8_t **p, size_t *len)
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

Local<Value> new_bytes(Isolate *isolate, const uint8_t *p, size_t n)
{
    std::unique_ptr<BackingStore> store = rt_backing_store_new(isolate, n);
    if (!store)
        return Local<Value>();
    if (n > 0)
        memcpy(store->Data(), p, n);
    return ArrayBuffer::New(isolate, std::move(store));
}

void return_result(const FunctionCallbackInfo<Value> &args, bool ok, out_bytes &r, size_t n)
{
    if (!ok)
        return args.GetReturnValue().SetNull();
    return_value(args, take_bytes(args.GetIsolate(), r, n));
}

void byte_buf::reserve(size_t cap)
{
    if (cap <= cap_)
        return;
    auto *p = static_cast<uint8_t *>(malloc(cap));
    if (p == nullptr)
        throw std::bad_alloc(); // as std::vector would
    if (n_ > 0)
        memcpy(p, p_, n_);
    free_memory(p_, cap_, is_secret);
    p_ = p;
    cap_ = cap;
}

void byte_buf::free_memory(uint8_t *p, size_t cap, bool is_secret)
{
    if (p == nullptr)
        return;
    if (is_secret)
        OPENSSL_cleanse(p, cap);
    free(p);
}

// What the deleter of a taken buffer needs: the allocator that counts its bytes (shared with
// V8, which may free the buffer on another thread, after the isolate is gone).
struct taken_store {
    std::shared_ptr<rt_allocator> allocator;
    size_t cap;
    bool is_secret;
};

static void taken_store_free(void *data, size_t, void *deleter_data)
{
    auto *t = static_cast<taken_store *>(deleter_data);
    byte_buf::free_memory(static_cast<uint8_t *>(data), t->cap, t->is_secret);
    if (t->allocator)
        t->allocator->release_adopted(t->cap);
    delete t;
}

Local<Value> take_bytes(Isolate *isolate, out_bytes &r, size_t n)
{
    if (n == 0 || r.v.size() < n)
        return new_bytes(isolate, r.v.data(), n < r.v.size() ? n : r.v.size());
    if (!memory_fits(isolate, n))
        return Local<Value>();
    rt_isolate *iso = rt_isolate_of(isolate);
    auto *t = new taken_store{iso != nullptr ? iso->allocator : nullptr, 0, r.v.is_secret};
    uint8_t *p = r.v.release(&t->cap);
    if (t->allocator)
        t->allocator->adopt(t->cap);
    std::unique_ptr<BackingStore> store = ArrayBuffer::NewBackingStore(p, n, taken_store_free, t);
    return ArrayBuffer::New(isolate, std::move(store));
}

bool memory_fits(Isolate *isolate, size_t len)
{
    rt_isolate *iso = rt_isolate_of(isolate);
    std::shared_ptr<rt_allocator> a = iso != nullptr ? iso->allocator : nullptr;
    if (!a || a->fits(len))
        return true;
    isolate->LowMemoryNotification(); // what V8 does before its own RangeError
    if (a->fits(len))
        return true;
    isolate->ThrowException(v8::Exception::RangeError(
        String::NewFromUtf8Literal(isolate, "Array buffer allocation failed")));
    return false;
}

clear_errors::~clear_errors()
{
    ERR_clear_error();
}

} // namespace crypto

// --- asymmetric key handles ------------------------------------------------------------------
//
// An object of a per-isolate template with two internal fields: a tag (so that no other object
// passes for a handle) and its box. The box is on the isolate's list until the object is
// collected (a weak callback frees it) or the isolate goes (pkey_close_all).

static const int kPkeyTag = 0; // its address marks a handle

struct rt_pkey_box {
    EVP_PKEY *pkey = nullptr;
    // pkey_verify_ctx's: made on the isolate's thread at the first verification and only ever
    // used there (jobs on the pool make their own), freed with the box.
    EVP_PKEY_CTX *verify_ctx = nullptr;
    size_t bytes = 0; // counted against the memory limit while the box lives
    std::shared_ptr<rt_allocator> allocator;
    v8::Global<v8::Object> handle;
    rt_isolate *iso = nullptr;
    rt_pkey_box *prev = nullptr, *next = nullptr;

    ~rt_pkey_box()
    {
        EVP_PKEY_CTX_free(verify_ctx); // its reference to the key first
        EVP_PKEY_free(pkey);
        if (allocator)
            allocator->release_adopted(bytes);
    }
};

static void pkey_unlink(rt_pkey_box *box)
{
    if (box->prev != nullptr)
        box->prev->next = box->next;
    else
        box->iso->pkeys = box->next;
    if (box->next != nullptr)
        box->next->prev = box->prev;
}

static void on_pkey_collected(const v8::WeakCallbackInfo<rt_pkey_box> &data)
{
    rt_pkey_box *box = data.GetParameter();
    box->handle.Reset();
    pkey_unlink(box);
    data.GetIsolate()->AdjustAmountOfExternalAllocatedMemory(-(int64_t)box->bytes);
    delete box;
}

namespace crypto {

Local<Value> pkey_new(Isolate *isolate, EVP_PKEY *pkey)
{
    rt_isolate *iso = rt_isolate_of(isolate);
    // What OpenSSL holds for a key, roughly: a few numbers of the key's size, plus fixed costs.
    size_t bytes = 8 * (size_t)(EVP_PKEY_get_size(pkey) > 0 ? EVP_PKEY_get_size(pkey) : 0) + 1024;
    if (iso == nullptr || !memory_fits(isolate, bytes)) {
        EVP_PKEY_free(pkey);
        return Local<Value>();
    }
    Local<v8::Context> ctx = isolate->GetCurrentContext();
    if (iso->pkey_template.IsEmpty()) {
        Local<v8::ObjectTemplate> t = v8::ObjectTemplate::New(isolate);
        t->SetInternalFieldCount(2);
        iso->pkey_template.Reset(isolate, t);
    }
    Local<v8::Object> obj;
    if (!iso->pkey_template.Get(isolate)->NewInstance(ctx).ToLocal(&obj)) {
        EVP_PKEY_free(pkey);
        return Local<Value>();
    }
    auto *box = new rt_pkey_box;
    box->pkey = pkey;
    box->bytes = bytes;
    box->allocator = iso->allocator;
    if (box->allocator)
        box->allocator->adopt(bytes);
    box->iso = iso;
    box->next = iso->pkeys;
    if (box->next != nullptr)
        box->next->prev = box;
    iso->pkeys = box;
    obj->SetAlignedPointerInInternalField(0, const_cast<int *>(&kPkeyTag));
    obj->SetAlignedPointerInInternalField(1, box);
    box->handle.Reset(isolate, obj);
    box->handle.SetWeak(box, on_pkey_collected, v8::WeakCallbackType::kParameter);
    // V8 learns of the native bytes too, so that a loop making keys brings on collections.
    isolate->AdjustAmountOfExternalAllocatedMemory((int64_t)bytes);
    return obj;
}

static rt_pkey_box *box_arg(const FunctionCallbackInfo<Value> &args, int i)
{
    if (!args[i]->IsObject())
        return nullptr;
    Local<v8::Object> obj = args[i].As<v8::Object>();
    if (obj->InternalFieldCount() != 2 ||
        obj->GetAlignedPointerFromInternalField(0) != static_cast<const void *>(&kPkeyTag))
        return nullptr;
    return static_cast<rt_pkey_box *>(obj->GetAlignedPointerFromInternalField(1));
}

EVP_PKEY *pkey_arg(const FunctionCallbackInfo<Value> &args, int i)
{
    rt_pkey_box *box = box_arg(args, i);
    return box != nullptr ? box->pkey : nullptr;
}

EVP_PKEY_CTX *pkey_verify_ctx(const FunctionCallbackInfo<Value> &args, int i)
{
    rt_pkey_box *box = box_arg(args, i);
    if (box == nullptr)
        return nullptr;
    if (box->verify_ctx == nullptr) {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(nullptr, box->pkey, nullptr);
        if (c == nullptr || EVP_PKEY_verify_init(c) != 1) {
            EVP_PKEY_CTX_free(c);
            return nullptr;
        }
        box->verify_ctx = c;
    }
    return box->verify_ctx;
}

void pkey_close_all(rt_isolate *iso)
{
    while (iso->pkeys != nullptr) {
        rt_pkey_box *box = iso->pkeys;
        pkey_unlink(box);
        box->handle.Reset();
        delete box;
    }
    iso->pkey_template.Reset();
}

} // namespace crypto

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
    std::unique_ptr<BackingStore> store = ArrayBuffer::NewBackingStore(p, len, key_store_free, ks);
    return ArrayBuffer::New(isolate, std::move(store));
}

// The key bytes of a key buffer made by key_new.
static bool key_arg(const FunctionCallbackInfo<Value> &args, int i, const uint8_t **p, size_t *len)
{
    if (!args[i]->IsArrayBuffer())
        return false;
    Local<ArrayBuffer> ab = args[i].As<ArrayBuffer>();
    *len = ab->ByteLength();
    *p = static_cast<const uint8_t *>(ab->Data());
    return *p != nullptr || *len == 0;
}

// cryptoCopyBytes(bufferSource) -> a new ArrayBuffer holding a copy of its bytes (WebIDL's "get a
// copy of the bytes held by the buffer source", without zero-filling the copy first).
static void CopyBytes(const FunctionCallbackInfo<Value> &args)
{
    input in;
    if (!bytes_arg(args, 0, &in.p, &in.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoCopyBytes: expected a BufferSource");
    out_bytes r;
    r.v.is_secret = false; // the app's own bytes, which stay in its buffer too
    r.v.resize_for_overwrite(in.len);
    if (in.len > 0)
        memcpy(r.v.data(), in.p, in.len);
    return_value(args, take_bytes(args.GetIsolate(), r, in.len));
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
    return_value(args, key);
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
    else
        return_value(args, key);
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
    return_value(args, key);
}

// cryptoKeyToBase64url(key) -> the key bytes in base64url without padding (a JWK's "k").
static void KeyToBase64url(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const uint8_t *p;
    size_t len;
    if (!key_arg(args, 0, &p, &len))
        return rt_throw_type_error(isolate, "cryptoKeyToBase64url: expected a key");
    std::string out = base64url(p, len);
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

// A secret copy of n bytes as the return value: wiped when V8 frees it.
static void return_secret(const FunctionCallbackInfo<Value> &args, const uint8_t *p, size_t n)
{
    out_bytes r;
    r.v.assign(p, p + n);
    return_result(args, true, r, n);
}

// cryptoKeyExportRaw(key) -> a new ArrayBuffer with a copy of the key bytes (wiped when freed).
static void KeyExportRaw(const FunctionCallbackInfo<Value> &args)
{
    const uint8_t *p;
    size_t len;
    if (!key_arg(args, 0, &p, &len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoKeyExportRaw: expected a key");
    return_secret(args, p, len);
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

// cryptoDigest(hashId, bufferSource) -> ArrayBuffer of the digest (FIPS 180-4 via EVP_Digest), or
// a promise of it for a large input.
static void Digest(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const EVP_MD *md = hash_arg(args, 0);
    input data;
    if (md == nullptr || !bytes_arg(args, 1, &data.p, &data.len))
        return rt_throw_type_error(isolate, "cryptoDigest: bad arguments");
    run_op(args, {data}, {EVP_MAX_MD_SIZE}, [md](const input *in, out_bytes &r, size_t *n) {
        r.v.is_secret = false; // a digest
        r.v.resize_for_overwrite(EVP_MAX_MD_SIZE);
        unsigned int got = 0;
        bool ok = EVP_Digest(in[0].p, in[0].len, r.v.data(), &got, md, nullptr) == 1;
        *n = got;
        return ok;
    });
}

// HMAC (RFC 2104) of data with key into r; false when OpenSSL fails.
static bool hmac(const EVP_MD *md, const input &key, const input &data, out_bytes &r, size_t *n)
{
    static const uint8_t kEmpty[1] = {0};
    if (key.len > INT32_MAX)
        return false;
    r.v.resize_for_overwrite(EVP_MAX_MD_SIZE); // HMAC writes the *n bytes handed out
    unsigned int got = 0;
    bool ok = HMAC(md, key.len ? key.p : kEmpty, (int)key.len, data.p, data.len, r.v.data(),
                   &got) != nullptr;
    *n = got;
    return ok;
}

// cryptoHmacSign(hashId, key, bufferSource) -> ArrayBuffer of the MAC (or a promise of it).
static void HmacSign(const FunctionCallbackInfo<Value> &args)
{
    const EVP_MD *md = hash_arg(args, 0);
    input key = {nullptr, 0, true}, data;
    if (md == nullptr || !key_arg(args, 1, &key.p, &key.len) ||
        !bytes_arg(args, 2, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoHmacSign: bad arguments");
    run_op(args, {key, data}, {EVP_MAX_MD_SIZE}, [md](const input *in, out_bytes &r, size_t *n) {
        r.v.is_secret = false; // a MAC
        return hmac(md, in[0], in[1], r, n);
    });
}

// cryptoHmacVerify(hashId, key, signature, data) -> whether signature is the MAC of data (or a
// promise of that), compared in constant time (CRYPTO_memcmp); a signature of another length is
// false.
static void HmacVerify(const FunctionCallbackInfo<Value> &args)
{
    const EVP_MD *md = hash_arg(args, 0);
    input key = {nullptr, 0, true}, sig, data;
    if (md == nullptr || !key_arg(args, 1, &key.p, &key.len) ||
        !bytes_arg(args, 2, &sig.p, &sig.len) || !bytes_arg(args, 3, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoHmacVerify: bad arguments");
    run_op(args, {key, sig, data}, {1, result_kind::boolean},
           [md](const input *in, out_bytes &r, size_t *n) {
               out_bytes mac;
               size_t mac_len = 0;
               if (!hmac(md, in[0], in[2], mac, &mac_len))
                   return false;
               r.v.assign(1, in[1].len == mac_len &&
                                 CRYPTO_memcmp(mac.v.data(), in[1].p, mac_len) == 0);
               *n = 1;
               return true;
           });
}

// --- AES (FIPS 197) -----------------------------------------------------------------------
//
// Each returns an ArrayBuffer (or a promise of it, for a large input), or null when the operation
// fails in a way the spec calls an OperationError (bad padding, a bad tag, a bad length): JS turns
// null into that error.

// The AES ciphers, fetched from the default provider once for the process, as the digests are
// (fetched_md): EVP_CipherInit_ex with EVP_aes_256_gcm() and friends looks the implementation up
// on every call.
enum class aes_mode { cbc, ctr, gcm, wrap };

static const EVP_CIPHER *fetched_cipher(const char *name, const EVP_CIPHER *fallback)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(nullptr, name, nullptr);
    return c != nullptr ? c : fallback; // kept for the process's life
}

// The cipher of an AES mode for a key of key_len bytes, or nullptr for another length.
static const EVP_CIPHER *aes_cipher(aes_mode mode, size_t key_len)
{
    static const EVP_CIPHER *const kCiphers[4][3] = {
        {fetched_cipher("AES-128-CBC", EVP_aes_128_cbc()),
         fetched_cipher("AES-192-CBC", EVP_aes_192_cbc()),
         fetched_cipher("AES-256-CBC", EVP_aes_256_cbc())},
        {fetched_cipher("AES-128-CTR", EVP_aes_128_ctr()),
         fetched_cipher("AES-192-CTR", EVP_aes_192_ctr()),
         fetched_cipher("AES-256-CTR", EVP_aes_256_ctr())},
        {fetched_cipher("AES-128-GCM", EVP_aes_128_gcm()),
         fetched_cipher("AES-192-GCM", EVP_aes_192_gcm()),
         fetched_cipher("AES-256-GCM", EVP_aes_256_gcm())},
        {fetched_cipher("AES-128-WRAP", EVP_aes_128_wrap()),
         fetched_cipher("AES-192-WRAP", EVP_aes_192_wrap()),
         fetched_cipher("AES-256-WRAP", EVP_aes_256_wrap())},
    };
    int k = key_len == 16 ? 0 : key_len == 24 ? 1 : key_len == 32 ? 2 : -1;
    return k < 0 ? nullptr : kCiphers[(int)mode][k];
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

// cryptoAesCbc(encrypt, key, iv, data) -> AES-CBC with PKCS#7 padding (SP 800-38A §6.2); null on a
// bad iv length or, decrypting, on bad padding or a length not a block multiple.
static void AesCbc(const FunctionCallbackInfo<Value> &args)
{
    input key = {nullptr, 0, true}, iv, data;
    if (!key_arg(args, 1, &key.p, &key.len) || !bytes_arg(args, 2, &iv.p, &iv.len) ||
        !bytes_arg(args, 3, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesCbc: bad arguments");
    bool enc = args[0]->BooleanValue(args.GetIsolate());
    const EVP_CIPHER *c = aes_cipher(aes_mode::cbc, key.len);
    if (c == nullptr || iv.len != 16 || (!enc && (data.len == 0 || data.len % 16 != 0)))
        return args.GetReturnValue().SetNull();
    run_op(args, {key, iv, data}, {data.len + 16},
           [c, enc](const input *in, out_bytes &r, size_t *n) {
               cipher_ctx cc;
               r.v.is_secret = !enc;                     // a ciphertext is not; a plaintext may be
               r.v.resize_for_overwrite(in[2].len + 16); // EVP writes the o bytes handed out
               size_t o = 0;
               int got = 0;
               bool ok = cc.ctx != nullptr &&
                         EVP_CipherInit_ex(cc.ctx, c, nullptr, in[0].p, in[1].p, enc) == 1 &&
                         cipher_update(cc.ctx, in[2].p, in[2].len, r.v.data(), &o) &&
                         EVP_CipherFinal_ex(cc.ctx, r.v.data() + o, &got) == 1;
               *n = o + (size_t)got;
               return ok;
           });
}

// cryptoAesCtr(key, counter, lengthBits, data) -> AES-CTR (SP 800-38A §6.5) whose counter is the
// rightmost lengthBits of the 16-byte counter block, incremented modulo 2^lengthBits (the bits to
// its left never change: WebCrypto's AES-CTR "length"). null when the counter block is not 16
// bytes, the length not 1..128, or data so long that a counter value would repeat.
static void AesCtr(const FunctionCallbackInfo<Value> &args)
{
    input key = {nullptr, 0, true}, counter, data;
    if (!key_arg(args, 0, &key.p, &key.len) || !bytes_arg(args, 1, &counter.p, &counter.len) ||
        !args[2]->IsUint32() || !bytes_arg(args, 3, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesCtr: bad arguments");
    uint32_t bits = args[2].As<v8::Uint32>()->Value();
    const EVP_CIPHER *c = aes_cipher(aes_mode::ctr, key.len);
    if (c == nullptr || counter.len != 16 || bits == 0 || bits > 128)
        return args.GetReturnValue().SetNull();
    typedef unsigned __int128 u128;
    u128 blocks = ((u128)data.len + 15) / 16;
    if (bits < 128 && blocks > ((u128)1 << bits))
        return args.GetReturnValue().SetNull(); // a counter value would repeat
    run_op(args, {key, counter, data}, {data.len + 16},
           [c, bits](const input *in, out_bytes &r, size_t *n) {
               u128 block = 0;
               for (int i = 0; i < 16; i++)
                   block = block << 8 | in[1].p[i];
               size_t len = in[2].len;
               u128 first = ((u128)len + 15) / 16;
               u128 mask = ~(u128)0;
               // The blocks before the counter's bits wrap to zero (OpenSSL increments all 128
               // bits, so the data is cut there and the rest runs from the block with those bits
               // cleared).
               if (bits < 128) {
                   mask = ((u128)1 << bits) - 1;
                   u128 before_wrap = mask - (block & mask) + 1;
                   if (before_wrap < first)
                       first = before_wrap;
               }
               size_t first_len = first * 16 < (u128)len ? (size_t)(first * 16) : len;
               r.v.resize_for_overwrite(len + 16); // EVP writes the o bytes handed out
               bool ok = true;
               size_t o = 0;
               for (int part = 0; part < 2 && ok; part++) {
                   const uint8_t *p = part == 0 ? in[2].p : in[2].p + first_len;
                   size_t m = part == 0 ? first_len : len - first_len;
                   if (part == 1 && m == 0)
                       break;
                   uint8_t iv[16];
                   u128 b = part == 0 ? block : block & ~mask;
                   for (int i = 15; i >= 0; i--, b >>= 8)
                       iv[i] = (uint8_t)b;
                   cipher_ctx cc;
                   int got = 0;
                   ok = cc.ctx != nullptr &&
                        EVP_CipherInit_ex(cc.ctx, c, nullptr, in[0].p, iv, 1) == 1 &&
                        cipher_update(cc.ctx, p, m, r.v.data(), &o) &&
                        EVP_CipherFinal_ex(cc.ctx, r.v.data() + o, &got) == 1;
                   o += (size_t)got;
               }
               *n = o;
               return ok;
           });
}

// cryptoAesGcm(encrypt, key, iv, additionalData | undefined, tagBytes, data) -> AES-GCM (SP
// 800-38D): encrypting, the ciphertext with the tag appended; decrypting (data ends with the tag),
// the plaintext. null on an empty iv, a tag length outside 4..16, data shorter than the tag, or a
// tag that does not authenticate.
static void AesGcm(const FunctionCallbackInfo<Value> &args)
{
    static const uint8_t kEmpty[1] = {0};
    input key = {nullptr, 0, true}, iv, aad = {kEmpty, 0}, data;
    if (!key_arg(args, 1, &key.p, &key.len) || !bytes_arg(args, 2, &iv.p, &iv.len) ||
        (!args[3]->IsUndefined() && !bytes_arg(args, 3, &aad.p, &aad.len)) ||
        !args[4]->IsUint32() || !bytes_arg(args, 5, &data.p, &data.len))
        return rt_throw_type_error(args.GetIsolate(), "cryptoAesGcm: bad arguments");
    bool enc = args[0]->BooleanValue(args.GetIsolate());
    uint32_t tag_len = args[4].As<v8::Uint32>()->Value();
    const EVP_CIPHER *c = aes_cipher(aes_mode::gcm, key.len);
    if (c == nullptr || iv.len == 0 || iv.len > INT32_MAX || tag_len < 4 || tag_len > 16 ||
        (!enc && data.len < tag_len))
        return args.GetReturnValue().SetNull();
    run_op(args, {key, iv, aad, data}, {data.len + 32},
           [c, enc, tag_len](const input *in, out_bytes &r, size_t *n) {
               size_t text_len = enc ? in[3].len : in[3].len - tag_len;
               r.v.is_secret = !enc; // a ciphertext is not; a plaintext may be
               r.v.resize_for_overwrite(text_len + 16 + 16); // EVP writes the o bytes handed out
               cipher_ctx cc;
               size_t o = 0;
               int got = 0;
               bool ok = cc.ctx != nullptr &&
                         EVP_CipherInit_ex(cc.ctx, c, nullptr, nullptr, nullptr, enc) == 1 &&
                         EVP_CIPHER_CTX_ctrl(cc.ctx, EVP_CTRL_GCM_SET_IVLEN, (int)in[1].len,
                                             nullptr) == 1 &&
                         EVP_CipherInit_ex(cc.ctx, nullptr, nullptr, in[0].p, in[1].p, enc) == 1;
               const size_t kStep = (size_t)1 << 30;
               for (size_t i = 0; ok && i < in[2].len; i += kStep) {
                   int m = (int)(in[2].len - i < kStep ? in[2].len - i : kStep), g = 0;
                   ok = EVP_CipherUpdate(cc.ctx, nullptr, &g, in[2].p + i, m) == 1;
               }
               ok = ok && cipher_update(cc.ctx, in[3].p, text_len, r.v.data(), &o);
               if (ok && !enc) {
                   uint8_t tag[16];
                   memcpy(tag, in[3].p + text_len, tag_len);
                   ok = EVP_CIPHER_CTX_ctrl(cc.ctx, EVP_CTRL_GCM_SET_TAG, (int)tag_len, tag) == 1;
               }
               ok = ok && EVP_CipherFinal_ex(cc.ctx, r.v.data() + o, &got) == 1;
               o += (size_t)got;
               if (ok && enc) {
                   ok = EVP_CIPHER_CTX_ctrl(cc.ctx, EVP_CTRL_GCM_GET_TAG, (int)tag_len,
                                            r.v.data() + o) == 1;
                   o += tag_len;
               }
               *n = o;
               return ok;
           });
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
    const EVP_CIPHER *c = aes_cipher(aes_mode::wrap, key_len);
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

// --- key derivation -----------------------------------------------------------------------

// PBKDF2 (RFC 8018 §5.2) with HMAC, resumable: each call of step() computes at most kSlice
// HMACs. The password keys one HMAC context; each HMAC after the first reuses that key
// (EVP_MAC_init without a key restarts from the keyed state).
struct pbkdf2_state {
    static constexpr uint32_t kSlice = 4096; // a millisecond or two of SHA-2 HMACs here
    const EVP_MD *md;
    uint32_t iterations;
    out_bytes password, salt, out; // each with one spare byte: data() valid when empty
    size_t out_len = 0;
    EVP_MAC_CTX *mac = nullptr;
    out_bytes u, t;       // U_j and T_i of the block in progress
    uint32_t block = 1;   // the block in progress (1-based)
    uint32_t done_in = 0; // iterations of it done

    ~pbkdf2_state() { EVP_MAC_CTX_free(mac); }

    bool hmac_into(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len, uint8_t *dst)
    {
        size_t got = 0;
        return EVP_MAC_init(mac, nullptr, 0, nullptr) == 1 && EVP_MAC_update(mac, a, a_len) == 1 &&
               (b_len == 0 || EVP_MAC_update(mac, b, b_len) == 1) &&
               EVP_MAC_final(mac, dst, &got, EVP_MAX_MD_SIZE) == 1;
    }

    step run()
    {
        size_t h = (size_t)EVP_MD_get_size(md);
        if (mac == nullptr) {
            EVP_MAC *hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
            mac = hmac != nullptr ? EVP_MAC_CTX_new(hmac) : nullptr;
            EVP_MAC_free(hmac);
            OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(
                                       "digest", const_cast<char *>(EVP_MD_get0_name(md)), 0),
                                   OSSL_PARAM_construct_end()};
            if (mac == nullptr ||
                EVP_MAC_init(mac, password.v.data(), password.v.size() - 1, params) != 1)
                return step::failed;
            u.v.resize(EVP_MAX_MD_SIZE);
            t.v.resize(EVP_MAX_MD_SIZE);
        }
        for (uint32_t budget = kSlice; budget > 0 && (size_t)(block - 1) * h < out_len; budget--) {
            if (done_in == 0) { // U_1 = PRF(P, S || INT(i))
                uint8_t be[4] = {(uint8_t)(block >> 24), (uint8_t)(block >> 16),
                                 (uint8_t)(block >> 8), (uint8_t)block};
                if (!hmac_into(salt.v.data(), salt.v.size() - 1, be, 4, u.v.data()))
                    return step::failed;
                memcpy(t.v.data(), u.v.data(), h);
            } else { // U_j = PRF(P, U_{j-1}); T_i ^= U_j
                if (!hmac_into(u.v.data(), h, nullptr, 0, u.v.data()))
                    return step::failed;
                for (size_t k = 0; k < h; k++)
                    t.v[k] ^= u.v[k];
            }
            if (++done_in == iterations) {
                size_t at = (size_t)(block - 1) * h;
                memcpy(out.v.data() + at, t.v.data(), out_len - at < h ? out_len - at : h);
                block++;
                done_in = 0;
            }
        }
        return (size_t)(block - 1) * h < out_len ? step::again : step::done;
    }
};

// cryptoPbkdf2(hashId, key, salt, iterations, bytes) -> a promise of the PBKDF2 output with HMAC
// (RFC 8018 §5.2) as an ArrayBuffer, or of null when OpenSSL fails. Its cost is the app's choice
// (iterations), so it always runs on the thread pool, in slices.
static void Pbkdf2(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const EVP_MD *md = hash_arg(args, 0);
    input key = {nullptr, 0, true}, salt;
    if (md == nullptr || !key_arg(args, 1, &key.p, &key.len) ||
        !bytes_arg(args, 2, &salt.p, &salt.len) || !args[3]->IsUint32() || !args[4]->IsUint32())
        return rt_throw_type_error(isolate, "cryptoPbkdf2: bad arguments");
    uint32_t iterations = args[3].As<v8::Uint32>()->Value();
    uint32_t n = args[4].As<v8::Uint32>()->Value();
    if (iterations == 0 || n > INT32_MAX) {
        Local<v8::Promise::Resolver> resolver;
        if (v8::Promise::Resolver::New(isolate->GetCurrentContext()).ToLocal(&resolver)) {
            rt_ignore(resolver->Resolve(isolate->GetCurrentContext(), v8::Null(isolate)));
            args.GetReturnValue().Set(resolver->GetPromise());
        }
        return;
    }
    auto st = std::make_shared<pbkdf2_state>();
    st->md = md;
    st->iterations = iterations;
    st->password.v.assign(key.p, key.p + key.len);
    st->password.v.push_back(0);
    st->salt.v.assign(salt.p, salt.p + salt.len);
    st->salt.v.push_back(0);
    st->out.v.resize((size_t)n + 1);
    st->out_len = n;
    job_spec spec;
    spec.held_bytes = key.len + salt.len + (size_t)n;
    spec.run = [st] { return st->run(); };
    spec.settle = [st, n](Isolate *i) { return take_bytes(i, st->out, n); }; // wiped when freed
    return_value(args, job_start(isolate, std::move(spec)));
}

// cryptoHkdf(hashId, key, salt, info, bytes) -> HKDF (RFC 5869 §2.2 extract, §2.3 expand) with
// HMAC (or a promise of it, when the inputs are large: the work is up to 255 HMACs of the info);
// null when bytes exceeds 255 times the hash length.
static void Hkdf(const FunctionCallbackInfo<Value> &args)
{
    const EVP_MD *md = hash_arg(args, 0);
    input key = {nullptr, 0, true}, salt, info;
    if (md == nullptr || !key_arg(args, 1, &key.p, &key.len) ||
        !bytes_arg(args, 2, &salt.p, &salt.len) || !bytes_arg(args, 3, &info.p, &info.len) ||
        !args[4]->IsUint32())
        return rt_throw_type_error(args.GetIsolate(), "cryptoHkdf: bad arguments");
    uint32_t n = args[4].As<v8::Uint32>()->Value();
    size_t hash_len = (size_t)EVP_MD_get_size(md);
    if (n > 255 * hash_len)
        return args.GetReturnValue().SetNull();
    run_op(args, {key, salt, info}, {(size_t)n + 2 * info.len},
           [md, n, hash_len](const input *in, out_bytes &r, size_t *r_len) {
               // Extract: PRK = HMAC-Hash(salt, IKM); an absent salt is HashLen zeros, which HMAC
               // pads to the same key as an empty one.
               out_bytes prk, block, t;
               size_t prk_len = 0;
               bool ok = hmac(md, in[1], in[0], prk, &prk_len);
               r.v.resize(n + hash_len);
               block.v.resize(hash_len + in[2].len + 1);
               size_t o = 0, t_len = 0;
               for (unsigned i = 1; ok && o < n; i++) {
                   // T(i) = HMAC-Hash(PRK, T(i-1) | info | i)
                   memcpy(block.v.data() + t_len, in[2].p, in[2].len);
                   block.v[t_len + in[2].len] = (uint8_t)i;
                   size_t got = 0;
                   ok = hmac(md, {prk.v.data(), prk_len}, {block.v.data(), t_len + in[2].len + 1},
                             t, &got);
                   if (ok) {
                       memcpy(r.v.data() + o, t.v.data(), got);
                       memcpy(block.v.data(), t.v.data(), got);
                   }
                   t_len = got;
                   o += got;
               }
               *r_len = n;
               return ok;
           });
}

// --- asymmetric keys: the encodings every algorithm shares -----------------------------------

// cryptoPkeyImportDer(isPrivate, bytes) -> a handle on the key of a DER SubjectPublicKeyInfo
// (RFC 5280 §4.1; isPrivate false) or PrivateKeyInfo (RFC 5208 §5; true), or null when the bytes
// are not exactly one that OpenSSL can read. The algorithm files check the key's type and
// parameters.
static void PkeyImportDer(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    input der;
    if (!bytes_arg(args, 1, &der.p, &der.len))
        return rt_throw_type_error(isolate, "cryptoPkeyImportDer: bad arguments");
    clear_errors clear;
    if (der.len > INT32_MAX)
        return args.GetReturnValue().SetNull();
    const unsigned char *q = der.p;
    EVP_PKEY *pkey = nullptr;
    if (args[0]->BooleanValue(isolate)) {
        PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(nullptr, &q, (long)der.len);
        if (p8 != nullptr && q == der.p + der.len)
            pkey = EVP_PKCS82PKEY(p8);
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else {
        pkey = d2i_PUBKEY(nullptr, &q, (long)der.len);
        if (pkey != nullptr && q != der.p + der.len) {
            EVP_PKEY_free(pkey);
            pkey = nullptr;
        }
    }
    if (pkey == nullptr)
        return args.GetReturnValue().SetNull();
    return_value(args, pkey_new(isolate, pkey));
}

// cryptoPkeyType(handle) -> the key's type: 'RSA', 'RSA-PSS' (an RSA key restricted to PSS, as
// id-RSASSA-PSS keys are), 'EC', 'Ed25519', 'X25519', 'Ed448', 'X448', or 'other'.
static void PkeyType(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoPkeyType: expected a key handle");
    const char *type;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA: type = "RSA"; break;
    case EVP_PKEY_RSA_PSS: type = "RSA-PSS"; break;
    case EVP_PKEY_EC: type = "EC"; break;
    case EVP_PKEY_ED25519: type = "Ed25519"; break;
    case EVP_PKEY_X25519: type = "X25519"; break;
    case EVP_PKEY_ED448: type = "Ed448"; break;
    case EVP_PKEY_X448: type = "X448"; break;
    default: type = "other";
    }
    args.GetReturnValue().Set(String::NewFromUtf8(isolate, type).ToLocalChecked());
}

// cryptoPkeyExportDer(isPrivate, handle) -> ArrayBuffer of the key's DER SubjectPublicKeyInfo or
// (isPrivate) PrivateKeyInfo; null when OpenSSL cannot encode it so.
static void PkeyExportDer(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 1);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoPkeyExportDer: expected a key handle");
    clear_errors clear;
    unsigned char *der = nullptr;
    int n = -1;
    if (args[0]->BooleanValue(isolate)) {
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
        if (p8 != nullptr)
            n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else {
        n = i2d_PUBKEY(pkey, &der);
    }
    if (n <= 0 || der == nullptr)
        return args.GetReturnValue().SetNull();
    return_secret(args, der, (size_t)n); // a PrivateKeyInfo holds the key
    OPENSSL_clear_free(der, (size_t)n);
}

// cryptoPkeyPublic(handle) -> a new handle holding only the public half of the key (the public
// CryptoKey of a generated pair must not keep the private numbers alive); null on failure.
static void PkeyPublic(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    EVP_PKEY *pkey = pkey_arg(args, 0);
    if (pkey == nullptr)
        return rt_throw_type_error(isolate, "cryptoPkeyPublic: expected a key handle");
    clear_errors clear;
    unsigned char *der = nullptr;
    int n = i2d_PUBKEY(pkey, &der);
    if (n <= 0 || der == nullptr)
        return args.GetReturnValue().SetNull();
    const unsigned char *q = der;
    EVP_PKEY *pub = d2i_PUBKEY(nullptr, &q, n);
    OPENSSL_free(der);
    if (pub == nullptr)
        return args.GetReturnValue().SetNull();
    return_value(args, pkey_new(isolate, pub));
}

static const rt_native kNatives[] = {
    {"cryptoCopyBytes", CopyBytes},
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
    {"cryptoPkeyImportDer", PkeyImportDer},
    {"cryptoPkeyType", PkeyType},
    {"cryptoPkeyExportDer", PkeyExportDer},
    {"cryptoPkeyPublic", PkeyPublic},
};

const rt_native *rt_crypto_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
