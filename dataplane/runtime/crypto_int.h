// crypto_int.h: what the natives of crypto.subtle share (crypto.cc, crypto_pool.cc,
// crypto_rsa.cc, crypto_ec.cc): argument readers, results, the two kinds of key handle, and
// jobs on the libuv thread pool. The WebIDL surface, algorithm normalization and the spec's
// checks live in JS (25_webcrypto.js and the algorithm files after it); these natives only
// compute.
//
// Key handles are what a CryptoKey's private slot holds; app code never sees them.
// - A secret key (HMAC, AES-*, PBKDF2, HKDF) is an ArrayBuffer whose memory is OpenSSL's,
//   counted against the app's memory limit and wiped when V8 frees it (key_new).
// - An asymmetric key (RSA, EC, Ed25519, X25519) is an opaque object whose internal field
//   holds an EVP_PKEY (pkey_new). The EVP_PKEY is freed (OpenSSL clears private numbers as
//   it frees them) when the object is collected, or with the isolate; its estimated size
//   counts against the memory limit meanwhile.
//
// Results: a native returns an ArrayBuffer (or a handle), null for what the spec calls an
// OperationError or DataError (JS picks which, with the message), or throws a TypeError for
// arguments the built-ins never pass (a bug, not app input) or a RangeError when the memory
// limit refuses the bytes.
#ifndef NANO_CRYPTO_INT_H
#define NANO_CRYPTO_INT_H

#include "runtime_int.h"

#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace crypto {

// The hash ids JS passes (25_webcrypto.js kHashIds): 1, 256, 384, 512 for SHA-1 and SHA-2;
// nullptr for anything else.
const EVP_MD *hash_arg(const v8::FunctionCallbackInfo<v8::Value> &args, int i);

// The bytes of an ArrayBuffer or a view (a detached one has none; an empty one points at a
// static byte). False for anything else. JS has checked it is not shared memory.
bool bytes_arg(const v8::FunctionCallbackInfo<v8::Value> &args, int i, const uint8_t **p,
               size_t *len);

// Bytes of an operation: its inputs' copies and its result. The memory can become an
// ArrayBuffer's without a copy (take_bytes). Unless is_secret is cleared (ciphertexts,
// digests, signatures, public data), it is wiped when freed, here or by V8. resize() fills
// new bytes with zeros; resize_for_overwrite() leaves them for the caller to write (it must
// write every byte it then hands out).
class byte_buf {
  public:
    bool is_secret = true;

    byte_buf() = default;
    byte_buf(const byte_buf &) = delete;
    byte_buf &operator=(const byte_buf &) = delete;
    ~byte_buf() { free_memory(p_, cap_, is_secret); }

    uint8_t *data() { return p_ != nullptr ? p_ : empty_; }
    const uint8_t *data() const { return p_ != nullptr ? p_ : empty_; }
    size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }
    uint8_t &operator[](size_t i) { return p_[i]; }
    const uint8_t &operator[](size_t i) const { return p_[i]; }

    void reserve(size_t cap);
    void resize_for_overwrite(size_t n)
    {
        reserve(n);
        n_ = n;
    }
    void resize(size_t n)
    {
        size_t old = n_;
        resize_for_overwrite(n);
        if (n > old)
            memset(p_ + old, 0, n - old);
    }
    void assign(const uint8_t *a, const uint8_t *b)
    {
        resize_for_overwrite((size_t)(b - a));
        if (b != a)
            memcpy(p_, a, (size_t)(b - a));
    }
    void assign(size_t n, uint8_t value)
    {
        resize_for_overwrite(n);
        if (n > 0)
            memset(p_, value, n);
    }
    void push_back(uint8_t b)
    {
        reserve(n_ + 1 > cap_ ? (n_ + 1) * 2 : cap_);
        p_[n_++] = b;
    }
    // Hands the memory over (the buffer is empty after): its capacity through *cap.
    uint8_t *release(size_t *cap)
    {
        uint8_t *p = p_;
        *cap = cap_;
        p_ = nullptr;
        n_ = cap_ = 0;
        return p;
    }
    static void free_memory(uint8_t *p, size_t cap, bool is_secret);

  private:
    uint8_t *p_ = nullptr;
    size_t n_ = 0, cap_ = 0;
    uint8_t empty_[1] = {0};
};

struct out_bytes {
    byte_buf v;
    out_bytes() = default;
    out_bytes(const out_bytes &) = delete;
    out_bytes &operator=(const out_bytes &) = delete;
};

// A new ArrayBuffer of the first n bytes of r, taking r's memory (r is empty after); empty
// (a RangeError thrown) when the app's memory limit refuses it.
v8::Local<v8::Value> take_bytes(v8::Isolate *isolate, out_bytes &r, size_t n);

// Sets v as the native's return value unless it is empty (an exception was thrown).
inline void return_value(const v8::FunctionCallbackInfo<v8::Value> &args, v8::Local<v8::Value> v)
{
    if (!v.IsEmpty())
        args.GetReturnValue().Set(v);
}

// A new ArrayBuffer holding a copy of n bytes; empty (a RangeError thrown) when refused.
v8::Local<v8::Value> new_bytes(v8::Isolate *isolate, const uint8_t *p, size_t n);
// ok: return the first n bytes of r (taking its memory); else return null.
void return_result(const v8::FunctionCallbackInfo<v8::Value> &args, bool ok, out_bytes &r,
                   size_t n);

// Whether the app's memory limit has room for len more native bytes (after a full GC if
// needed); false with a RangeError thrown when it has not.
bool memory_fits(v8::Isolate *isolate, size_t len);

// Owners of OpenSSL objects, freed (numbers cleared) when they go.
struct bn_ptr {
    BIGNUM *p = nullptr;
    bn_ptr() = default;
    bn_ptr(const bn_ptr &) = delete;
    bn_ptr &operator=(const bn_ptr &) = delete;
    ~bn_ptr() { BN_clear_free(p); } // many hold private numbers
};
struct bn_ctx {
    BN_CTX *ctx = BN_CTX_new();
    ~bn_ctx() { BN_CTX_free(ctx); }
};
struct pkey_ctx {
    EVP_PKEY_CTX *ctx;
    explicit pkey_ctx(EVP_PKEY_CTX *c) : ctx(c) {}
    pkey_ctx(const pkey_ctx &) = delete;
    pkey_ctx &operator=(const pkey_ctx &) = delete;
    ~pkey_ctx() { EVP_PKEY_CTX_free(ctx); }
};
struct md_ctx {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    md_ctx() = default;
    md_ctx(const md_ctx &) = delete;
    md_ctx &operator=(const md_ctx &) = delete;
    ~md_ctx() { EVP_MD_CTX_free(ctx); }
};

// --- asymmetric key handles ------------------------------------------------------------------

// A handle owning pkey (freed here when the result is empty: refused by the memory limit).
v8::Local<v8::Value> pkey_new(v8::Isolate *isolate, EVP_PKEY *pkey);
// The EVP_PKEY of a handle made by pkey_new (still owned by the handle), or nullptr.
EVP_PKEY *pkey_arg(const v8::FunctionCallbackInfo<v8::Value> &args, int i);
// The handle's key in an EVP_PKEY_CTX initialized for EVP_PKEY_verify with no digest set
// (a digest of any length is verified as is), made at the first call and kept with the
// handle, which frees it: OpenSSL 3 fetches the key's provider methods on every
// EVP_PKEY_CTX_new / EVP_PKEY_verify_init, a few microseconds per verification. Only for
// work done now, on the isolate's thread (op_runs_here): a job on the pool may outlive the
// handle, and the context is not to be used by two threads at once. nullptr if OpenSSL
// failed or the argument is not a handle.
EVP_PKEY_CTX *pkey_verify_ctx(const v8::FunctionCallbackInfo<v8::Value> &args, int i);
// Frees the EVP_PKEYs of every handle still alive; with the isolate.
void pkey_close_all(rt_isolate *iso);

// OpenSSL's error queue is per thread; every native that may leave errors there clears it
// on return, so one failure's reasons never show up in the next.
struct clear_errors {
    ~clear_errors();
};

// --- jobs on the libuv thread pool --------------------------------------------------------
//
// Work whose cost the app chooses (PBKDF2 iterations, RSA key sizes, large inputs) runs on
// the thread pool so the loop thread keeps serving other requests. A job's run() executes on
// a pool thread and may touch only what it owns (copies made when the job was created, never
// V8 objects); settle() then runs on the loop thread inside a context, charged to the request
// that asked while it is still there, and returns the value the promise resolves with (null:
// the spec's error, decided in JS; empty: it threw, and the promise rejects with that). run()
// says whether the work failed (the promise resolves to null), is done, or wants another
// turn: long work (PBKDF2) is done in slices of a few milliseconds, each queued behind the
// jobs already waiting, so that one app's long derivations cannot keep the pool's threads
// from every other app. A sliced job whose request has ended stops at its next slice.
//
// The pool's threads serve every app of the process, so an isolate has at most two jobs
// there at once; the rest wait, oldest first. At most 256 may wait or run per isolate (more:
// the promise resolves to null at once), and held_bytes (what the job owns) counts against
// the app's memory limit while it lives.
//
// A long job that cannot be sliced (is_long: RSA key generation) runs only while fewer than
// half the pool's threads run such jobs, process-wide; it waits its turn otherwise.
enum class step { failed, done, again };
struct job_spec {
    size_t held_bytes = 0;
    bool is_long = false;
    std::function<step()> run;
    std::function<v8::Local<v8::Value>(v8::Isolate *)> settle;
};
// Queues a job and returns its promise; empty when it threw (the memory limit refused
// held_bytes).
v8::Local<v8::Value> job_start(v8::Isolate *isolate, job_spec spec);

// Inputs at least this long go to the thread pool (digests, HMAC, AES, signatures): a MiB
// takes about a millisecond here, past which the round trip through the pool is cheap beside
// the work.
constexpr size_t kPoolBytes = (size_t)1 << 20;

// --- operations that run here or on the thread pool -------------------------------------------
//
// An operation reads some byte inputs and writes its result into an out_bytes (n: its length;
// false: the spec's error, null in JS). run_op runs it now when the inputs add up to less than
// kPoolBytes (and force_pool is not set); otherwise it copies the inputs (the app may change its
// buffers once the call returns; the copies are wiped when they go), takes a reference of the
// job's own to key (the CryptoKey may be collected meanwhile; OpenSSL 3 keys may be used by
// several threads at once), runs the operation as a job, and returns a promise of the result.
struct input {
    const uint8_t *p;
    size_t len;
    bool is_secret = false; // key material: a job's copy of it is wiped
};
using op_fn = std::function<bool(const input *in, out_bytes &r, size_t *n)>;
enum class result_kind { bytes, boolean }; // boolean: r.v[0] says true or false
struct op_options {
    size_t out_len = 0; // about how long the result is (what a job holds besides its copies)
    result_kind kind = result_kind::bytes;
    EVP_PKEY *key = nullptr; // the key the operation uses, if any
    bool force_pool = false; // slow whatever the input (a private-key operation of a huge key)
};
void run_op(const v8::FunctionCallbackInfo<v8::Value> &args, std::initializer_list<input> inputs,
            const op_options &options, op_fn op);
// Whether run_op runs an operation on inputs of total bytes now, on the calling thread.
inline bool op_runs_here(size_t total, const op_options &options)
{
    return total < kPoolBytes && !options.force_pool;
}

// base64url without padding (RFC 7515 §2), as JWK members hold keys and numbers.
std::string base64url(const uint8_t *p, size_t len);

} // namespace crypto

#endif
