// compression.cc: the native half of CompressionStream and DecompressionStream
// (35_compression_streams.js): zlib for "deflate", "deflate-raw" and "gzip", libbrotli for
// "brotli". Each stream owns one codec state behind a handle object; the state is freed when
// the stream ends, fails or is cancelled, when the handle is collected, or with the isolate.
// A push does a bounded step (at most kInputPerCall bytes in, one output chunk of at most
// kChunk bytes out), so that JS runs between steps: the CPU limit can stop a decompression
// bomb and the readable side's backpressure bounds what it holds. Isolate thread only.
#include "runtime_int.h"

#include <climits>
#include <cstring>

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>

extern "C" {
#include "alloc.h"
}

using v8::ArrayBuffer;
using v8::BackingStore;
using v8::Context;
using v8::FunctionCallbackInfo;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::String;
using v8::Value;

// Output is handed to JS in chunks of this size, each push giving at most one: a full buffer
// as it is, and at the end of the input (or of the stream) what a partly filled one holds,
// copied out at its length. A push that stops on its input budget keeps its partial buffer
// for the next, so steps do not cut the output into small chunks.
constexpr size_t kChunk = 64 * 1024;
// ...and feeds the codec at most this much input: compressing 64 KiB takes a few ms at most
// (decompression is bounded by its output first).
constexpr size_t kInputPerCall = 64 * 1024;
// Brotli's quality 11 (its default) runs tens of times slower than 5 for a few percent of size;
// a stream compressed while a request waits wants the middle of the range. Window: the default.
constexpr uint32_t kBrotliQuality = 5;

enum codec_kind { CODEC_DEFLATE, CODEC_INFLATE, CODEC_BROTLI_ENC, CODEC_BROTLI_DEC };

struct rt_compressor {
    rt_compression *owner = nullptr;
    rt_compressor *prev = nullptr;
    rt_compressor *next = nullptr;
    v8::Global<Object> handle; // weak: the JS object that names this state
    codec_kind kind = CODEC_DEFLATE;
    bool is_open = false;   // the codec state exists (not yet ended, failed or collected)
    bool is_at_end = false; // decompression: the end of the compressed data was reached
    size_t n_bytes = 0;     // what the codec has allocated
    int64_t n_reported = 0; // of that, what V8 was told (AdjustAmountOfExternalAllocatedMemory)
    // The part of the current chunk the codec has not taken yet. Its backing store is held
    // (not copied) while JS runs between pushes, so the bytes stay valid even if the app
    // detaches the chunk's buffer meanwhile.
    std::shared_ptr<BackingStore> in_store;
    const uint8_t *in_next = nullptr;
    size_t in_left = 0;
    uint8_t *out = nullptr; // the kChunk output buffer being filled, while a chunk is worked on
    size_t out_used = 0;
    z_stream zs;
    BrotliEncoderState *benc = nullptr;
    BrotliDecoderState *bdec = nullptr;
};

struct rt_compression {
    Isolate *isolate = nullptr;
    ArrayBuffer::Allocator *allocator = nullptr; // the isolate's: output counts as its buffers
    v8::Global<v8::FunctionTemplate> tmpl;       // of handles: HasInstance tells ours from others
    rt_compressor *live = nullptr;               // every state not yet freed
    uint8_t *spare = nullptr; // an idle kChunk output buffer from allocator, for the next push
};

// --- codec memory: counted, so that V8 sees what a stream holds and collects accordingly ---

constexpr size_t kAllocHead = 16; // keeps the codec's blocks 16-byte aligned

static void *codec_alloc(void *opaque, size_t size)
{
    auto *c = static_cast<rt_compressor *>(opaque);
    if (size > SIZE_MAX - kAllocHead)
        return nullptr;
    auto *p = static_cast<unsigned char *>(nano_malloc(size + kAllocHead));
    if (p == nullptr)
        return nullptr;
    memcpy(p, &size, sizeof size);
    c->n_bytes += size;
    return p + kAllocHead;
}

static void codec_free(void *opaque, void *block)
{
    if (block == nullptr)
        return;
    auto *c = static_cast<rt_compressor *>(opaque);
    unsigned char *p = static_cast<unsigned char *>(block) - kAllocHead;
    size_t size;
    memcpy(&size, p, sizeof size);
    c->n_bytes -= size;
    nano_free(p);
}

static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size)
{
    if (size != 0 && items > SIZE_MAX / size)
        return Z_NULL;
    return codec_alloc(opaque, (size_t)items * size);
}

static void zlib_free(voidpf opaque, voidpf block)
{
    codec_free(opaque, block);
}

static void report_memory(rt_compressor *c, Isolate *isolate)
{
    int64_t now = (int64_t)c->n_bytes;
    if (now != c->n_reported)
        isolate->AdjustAmountOfExternalAllocatedMemory(now - c->n_reported);
    c->n_reported = now;
}

// --- the life of a state ----------------------------------------------------------------------

// codec_init: c->kind's state, with zlib window bits (15, 15+16 for gzip, -15 raw).
static int codec_init(rt_compressor *c, int bits)
{
    c->zs = z_stream{};
    c->zs.zalloc = zlib_alloc;
    c->zs.zfree = zlib_free;
    c->zs.opaque = c;
    int rc;
    switch (c->kind) {
    case CODEC_DEFLATE:
    case CODEC_INFLATE: {
        rc = c->kind == CODEC_DEFLATE ? deflateInit2(&c->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                                                     bits, 8, Z_DEFAULT_STRATEGY)
                                      : inflateInit2(&c->zs, bits);
        return rc == Z_OK ? 0 : NANO_ENOMEM;
    }
    case CODEC_BROTLI_ENC:
        c->benc = BrotliEncoderCreateInstance(codec_alloc, codec_free, c);
        if (c->benc == nullptr)
            return NANO_ENOMEM;
        BrotliEncoderSetParameter(c->benc, BROTLI_PARAM_QUALITY, kBrotliQuality);
        return 0;
    case CODEC_BROTLI_DEC:
        c->bdec = BrotliDecoderCreateInstance(codec_alloc, codec_free, c);
        return c->bdec == nullptr ? NANO_ENOMEM : 0;
    }
    return NANO_EINVAL;
}

static void buffer_put(rt_compression *cz, uint8_t *p);

// Frees the codec state (the handle stays, and later pushes throw). NULL-safe, idempotent.
static void codec_end(rt_compressor *c)
{
    if (c == nullptr || !c->is_open)
        return;
    switch (c->kind) {
    case CODEC_DEFLATE: deflateEnd(&c->zs); break;
    case CODEC_INFLATE: inflateEnd(&c->zs); break;
    case CODEC_BROTLI_ENC:
        BrotliEncoderDestroyInstance(c->benc);
        c->benc = nullptr;
        break;
    case CODEC_BROTLI_DEC:
        BrotliDecoderDestroyInstance(c->bdec);
        c->bdec = nullptr;
        break;
    }
    c->in_store.reset();
    c->in_next = nullptr;
    c->in_left = 0;
    buffer_put(c->owner, c->out); // what it held is dropped
    c->out = nullptr;
    c->out_used = 0;
    c->is_open = false;
}

// Unlinks and deletes c; the caller has reset c->handle or is about to drop it.
static void compressor_free(rt_compressor *c, Isolate *isolate)
{
    codec_end(c);
    if (c->n_reported != 0)
        isolate->AdjustAmountOfExternalAllocatedMemory(-c->n_reported);
    rt_compression *cz = c->owner;
    if (c->prev != nullptr)
        c->prev->next = c->next;
    else
        cz->live = c->next;
    if (c->next != nullptr)
        c->next->prev = c->prev;
    c->handle.Reset();
    delete c;
}

// The handle was collected (a stream dropped before it ended). First-pass callback: it only
// resets the handle, frees C memory and lowers the external-memory count, as V8 allows.
static void on_handle_collected(const v8::WeakCallbackInfo<rt_compressor> &info)
{
    rt_compressor *c = info.GetParameter();
    compressor_free(c, info.GetIsolate());
}

// --- output buffers ---------------------------------------------------------------------------

// Output buffers come from the isolate's ArrayBuffer allocator, so they count as the app's
// ArrayBuffers, and a refusal is a RangeError in JS (ArrayBuffer::New would abort the process).
static void free_output(void *data, size_t len, void *allocator)
{
    static_cast<ArrayBuffer::Allocator *>(allocator)->Free(data, len);
}

// A kChunk buffer: the isolate's idle one, or a new one (nullptr when refused).
static uint8_t *buffer_get(rt_compression *cz)
{
    uint8_t *p = cz->spare;
    if (p != nullptr) {
        cz->spare = nullptr;
        return p;
    }
    return static_cast<uint8_t *>(cz->allocator->AllocateUninitialized(kChunk));
}

// Gives a kChunk buffer back: kept as the isolate's idle one, or freed. NULL-safe.
static void buffer_put(rt_compression *cz, uint8_t *p)
{
    if (p == nullptr)
        return;
    if (cz->spare == nullptr)
        cz->spare = p;
    else
        cz->allocator->Free(p, kChunk);
}

// Room to write into: *next and *avail describe the free end of c's output buffer (*avail is
// 0 once it is full). False when no buffer can be allocated.
static bool output_room(rt_compressor *c, uint8_t **next, size_t *avail)
{
    if (c->out == nullptr) {
        c->out = buffer_get(c->owner);
        if (c->out == nullptr)
            return false;
        c->out_used = 0;
    }
    *next = c->out + c->out_used;
    *avail = kChunk - c->out_used;
    return true;
}

// The chunk a push gives JS, as a Uint8Array that owns its buffer: a full buffer, or with
// is_end what a partly filled one holds (*chunk stays empty when there is none). With is_end
// the buffer, then empty, goes back to the isolate. False when out of memory.
static bool output_take(rt_compressor *c, bool is_end, Local<Value> *chunk)
{
    rt_compression *cz = c->owner;
    size_t len = c->out_used;
    void *data = nullptr;
    if (len == kChunk) {
        data = c->out;
        c->out = nullptr;
    } else if (is_end && len > 0) {
        data = cz->allocator->AllocateUninitialized(len);
        if (data == nullptr)
            return false;
        memcpy(data, c->out, len);
    }
    if (data != nullptr) {
        c->out_used = 0;
        std::shared_ptr<BackingStore> store = ArrayBuffer::NewBackingStore(data, len, free_output,
                                                                           cz->allocator);
        Local<ArrayBuffer> ab = ArrayBuffer::New(cz->isolate, std::move(store));
        *chunk = v8::Uint8Array::New(ab, 0, len);
    }
    if (is_end && c->out != nullptr) {
        buffer_put(cz, c->out);
        c->out = nullptr;
    }
    return true;
}

// --- one step through each codec -------------------------------------------------------------

// The codec takes its input from c->in_next/c->in_left and advances them.
enum push_result {
    PUSH_DONE,      // the input is consumed and the codec has written all it has (with finish:
                    // the stream ended)
    PUSH_MORE,      // the chunk is full or the input budget spent: push again to go on
    PUSH_TRAILING,  // bytes follow the end of the compressed data (output first, then fail)
    PUSH_TRUNCATED, // finish before the end of the compressed data (output first, then fail)
    PUSH_CORRUPT,   // the compressed data is invalid: the stream fails without this output
    PUSH_NO_MEMORY, // the codec or an output buffer could not allocate
};

static void take_input(rt_compressor *c, size_t n)
{
    c->in_next += n;
    c->in_left -= n;
}

static push_result push_zlib(rt_compressor *c, bool finish, const char **why)
{
    z_stream *zs = &c->zs;
    size_t budget = kInputPerCall;
    for (;;) {
        uint8_t *next;
        size_t avail;
        if (!output_room(c, &next, &avail))
            return PUSH_NO_MEMORY;
        if (avail == 0)
            return PUSH_MORE;
        size_t feed = c->in_left < budget ? c->in_left : budget; // < UINT_MAX, as zlib counts
        bool is_last_input = feed == c->in_left;
        zs->next_in = const_cast<Bytef *>(c->in_next);
        zs->avail_in = (uInt)feed;
        zs->next_out = next;
        zs->avail_out = (uInt)avail;
        int rc;
        if (c->kind == CODEC_DEFLATE)
            rc = deflate(zs, finish && is_last_input ? Z_FINISH : Z_NO_FLUSH);
        else
            rc = inflate(zs, Z_NO_FLUSH);
        size_t taken = feed - zs->avail_in;
        size_t written = avail - zs->avail_out;
        take_input(c, taken);
        budget -= taken;
        c->out_used += written;
        zs->next_in = Z_NULL; // the chunk's bytes are not the codec's to keep
        zs->avail_in = 0;
        if (rc == Z_STREAM_END) {
            if (c->kind == CODEC_DEFLATE)
                return PUSH_DONE; // only after Z_FINISH
            c->is_at_end = true;
            return c->in_left > 0 ? PUSH_TRAILING : PUSH_DONE;
        }
        if (rc == Z_MEM_ERROR)
            return PUSH_NO_MEMORY;
        if (rc == Z_NEED_DICT) { // WPT: a preset dictionary is an error, there is none to give
            *why = "the data needs a preset dictionary";
            return PUSH_CORRUPT;
        }
        if (rc == Z_DATA_ERROR || rc == Z_STREAM_ERROR) {
            *why = zs->msg != nullptr ? zs->msg : "invalid data";
            return PUSH_CORRUPT;
        }
        // Z_OK or Z_BUF_ERROR (no progress possible).
        if (zs->avail_out == 0)
            return PUSH_MORE; // there may be more to write
        if (c->in_left == 0) {
            // The input is used up and the codec stopped short of filling the buffer: it has
            // written all it has. (Deflate with Z_FINISH and room left ends with Z_STREAM_END.)
            if (c->kind == CODEC_INFLATE)
                return finish ? PUSH_TRUNCATED : PUSH_DONE;
            if (!finish)
                return PUSH_DONE;
        }
        if (budget == 0)
            return PUSH_MORE;
        if (taken == 0 && written == 0) {
            *why = "the codec made no progress"; // never seen: a guard against spinning
            return PUSH_CORRUPT;
        }
    }
}

static push_result push_brotli(rt_compressor *c, bool finish, const char **why)
{
    size_t budget = kInputPerCall;
    for (;;) {
        uint8_t *next;
        size_t avail;
        if (!output_room(c, &next, &avail))
            return PUSH_NO_MEMORY;
        if (avail == 0)
            return PUSH_MORE;
        size_t feed = c->in_left < budget ? c->in_left : budget;
        size_t avail_in = feed;
        const uint8_t *next_in = c->in_next;
        size_t room = avail;
        if (c->kind == CODEC_BROTLI_ENC) {
            BrotliEncoderOperation op = finish && feed == c->in_left ? BROTLI_OPERATION_FINISH
                                                                     : BROTLI_OPERATION_PROCESS;
            BROTLI_BOOL ok = BrotliEncoderCompressStream(c->benc, op, &avail_in, &next_in, &avail,
                                                         &next, nullptr);
            size_t taken = feed - avail_in;
            take_input(c, taken);
            budget -= taken;
            c->out_used += room - avail;
            if (!ok)
                return PUSH_NO_MEMORY; // we never misuse the operations: only allocation fails
            if (op == BROTLI_OPERATION_FINISH && BrotliEncoderIsFinished(c->benc))
                return PUSH_DONE;
            if (avail == 0)
                return PUSH_MORE;
            if (op == BROTLI_OPERATION_PROCESS && c->in_left == 0 &&
                !BrotliEncoderHasMoreOutput(c->benc))
                return PUSH_DONE;
            if (budget == 0)
                return PUSH_MORE;
            if (taken == 0 && avail == room) {
                *why = "the encoder made no progress"; // never seen: a guard against spinning
                return PUSH_CORRUPT;
            }
            continue;
        }
        BrotliDecoderResult r = BrotliDecoderDecompressStream(c->bdec, &avail_in, &next_in, &avail,
                                                              &next, nullptr);
        size_t taken = feed - avail_in;
        take_input(c, taken);
        budget -= taken;
        c->out_used += room - avail;
        switch (r) {
        case BROTLI_DECODER_RESULT_SUCCESS:
            c->is_at_end = true;
            return c->in_left > 0 ? PUSH_TRAILING : PUSH_DONE;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT: // it took all it was given
            if (c->in_left == 0)
                return finish ? PUSH_TRUNCATED : PUSH_DONE;
            if (budget == 0)
                return PUSH_MORE;
            continue;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
            if (avail == 0)
                return PUSH_MORE;
            if (avail < room || taken > 0)
                continue;
            *why = "the decoder made no progress"; // never seen: it asks only when out is full
            return PUSH_CORRUPT;
        case BROTLI_DECODER_RESULT_ERROR:
        default: {
            BrotliDecoderErrorCode e = BrotliDecoderGetErrorCode(c->bdec);
            if (e <= BROTLI_DECODER_ERROR_ALLOC_CONTEXT_MODES &&
                e >= BROTLI_DECODER_ERROR_ALLOC_BLOCK_TYPE_TREES)
                return PUSH_NO_MEMORY;
            *why = BrotliDecoderErrorString(e);
            return PUSH_CORRUPT;
        }
        }
    }
}

// --- bindings ---------------------------------------------------------------------------------

static rt_compression *cz_of(const FunctionCallbackInfo<Value> &args)
{
    return rt_isolate_of(args.GetIsolate())->compression;
}

static void throw_error(Isolate *isolate, bool is_range, const std::string &msg)
{
    Local<String> s = String::NewFromUtf8(isolate, msg.c_str()).ToLocalChecked();
    isolate->ThrowException(is_range ? v8::Exception::RangeError(s) : v8::Exception::TypeError(s));
}

// The state named by args[0], or nullptr (and a TypeError thrown) when it is not a handle or
// its stream has ended.
static rt_compressor *compressor_arg(const FunctionCallbackInfo<Value> &args, rt_compression *cz)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsObject() || !cz->tmpl.Get(isolate)->HasInstance(args[0])) {
        throw_error(isolate, false, "not a compression stream handle");
        return nullptr;
    }
    Local<Object> h = args[0].As<Object>();
    auto *c = static_cast<rt_compressor *>(h->GetAlignedPointerFromInternalField(0));
    if (c == nullptr || !c->is_open) {
        throw_error(isolate, false, "The compression stream has ended");
        return nullptr;
    }
    return c;
}

// compressorNew(format, decompress) -> handle. format is one of the CompressionFormat values
// (the JS has checked); a RangeError when the codec cannot allocate its state.
static void CompressorNew(const FunctionCallbackInfo<Value> &args)
{
    rt_compression *cz = cz_of(args);
    Isolate *isolate = args.GetIsolate();
    Local<Context> ctx = isolate->GetCurrentContext();
    String::Utf8Value format(isolate, args[0]);
    bool decompress = args[1]->BooleanValue(isolate);
    const char *f = *format != nullptr ? *format : "";
    int bits;
    if (strcmp(f, "gzip") == 0)
        bits = 15 + 16;
    else if (strcmp(f, "deflate") == 0)
        bits = 15;
    else if (strcmp(f, "deflate-raw") == 0)
        bits = -15;
    else if (strcmp(f, "brotli") == 0)
        bits = 0;
    else
        return throw_error(isolate, false, std::string("Unsupported compression format: ") + f);

    Local<Object> h;
    if (!cz->tmpl.Get(isolate)->InstanceTemplate()->NewInstance(ctx).ToLocal(&h))
        return;
    auto *c = new rt_compressor;
    c->owner = cz;
    if (bits == 0)
        c->kind = decompress ? CODEC_BROTLI_DEC : CODEC_BROTLI_ENC;
    else
        c->kind = decompress ? CODEC_INFLATE : CODEC_DEFLATE;
    if (codec_init(c, bits) != 0) {
        // zlib frees what it allocated when its init fails; brotli returns NULL having freed.
        delete c;
        return throw_error(isolate, true, "Out of memory for the compression stream");
    }
    c->is_open = true;
    c->next = cz->live;
    if (cz->live != nullptr)
        cz->live->prev = c;
    cz->live = c;
    h->SetAlignedPointerInInternalField(0, c);
    c->handle.Reset(isolate, h);
    c->handle.SetWeak(c, on_handle_collected, v8::WeakCallbackType::kParameter);
    report_memory(c, isolate);
    args.GetReturnValue().Set(h);
}

// The bytes of a BufferSource (ArrayBuffer or ArrayBufferView, not shared) and its buffer;
// false if it is not one.
static bool buffer_source(Local<Value> v, const uint8_t **p, size_t *len, Local<ArrayBuffer> *buf)
{
    Local<ArrayBuffer> ab;
    size_t offset = 0;
    if (v->IsArrayBuffer()) { // false for a SharedArrayBuffer
        ab = v.As<ArrayBuffer>();
        *len = ab->ByteLength();
    } else if (v->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = v.As<v8::ArrayBufferView>();
        ab = view->Buffer(); // moves a small on-heap typed array's bytes off the heap
        if (ab->IsSharedArrayBuffer())
            return false;
        offset = view->ByteOffset();
        *len = view->ByteLength();
    } else {
        return false;
    }
    // The bytes stay put for the call (backing stores never move, and no JS runs until the
    // push returns); a push that leaves some of them holds the backing store.
    *p = *len > 0 ? static_cast<const uint8_t *>(ab->Data()) + offset : nullptr;
    *buf = ab;
    return true;
}

// What compressorPush does and returns (35_compression_streams.js has the same numbers).
enum push_mode { MODE_NEXT_CHUNK = 0, MODE_REST = 1, MODE_FINISH = 2 };
enum push_status { STATUS_DONE = 0, STATUS_MORE = 1, STATUS_TRAILING = 2, STATUS_TRUNCATED = 3 };

// compressorPush(handle, bytes, mode, out) -> status. One bounded step of the stream, by mode:
// MODE_NEXT_CHUNK starts on bytes, the next chunk written (it must be a BufferSource);
// MODE_REST goes on with the rest of the current chunk; MODE_FINISH ends the stream
// (compression writes its trailer, decompression checks that the compressed data was
// complete), a step per call like the others. bytes is ignored but for MODE_NEXT_CHUNK.
// Appends at most one Uint8Array of at most 64 KiB, owning its buffer, to the array out.
// Returns STATUS_DONE when the chunk is consumed and the codec has written all it has (with
// MODE_FINISH: the stream ended), STATUS_MORE when the caller must push again with MODE_REST
// (or MODE_FINISH) for the rest; STATUS_TRAILING or STATUS_TRUNCATED when the output stands
// but the stream must then fail (Compression §6 "decompress and enqueue a chunk" step 6 and
// "flush" step 3): data after the end of the compressed stream, or the stream cut short.
// Throws a TypeError when bytes is not a BufferSource, when a chunk comes before the previous
// one is consumed, or when the compressed data is corrupt (the output of this step is
// dropped), a RangeError when out of memory. The state is freed when the stream ends and on
// any error.
static void CompressorPush(const FunctionCallbackInfo<Value> &args)
{
    rt_compression *cz = cz_of(args);
    Isolate *isolate = args.GetIsolate();
    Local<Context> ctx = isolate->GetCurrentContext();
    rt_compressor *c = compressor_arg(args, cz);
    if (c == nullptr)
        return;
    int32_t mode = args[2]->IsInt32() ? args[2].As<v8::Int32>()->Value() : -1;
    if (mode != MODE_NEXT_CHUNK && mode != MODE_REST && mode != MODE_FINISH)
        return throw_error(isolate, false, "compressorPush: bad mode");
    if (!args[3]->IsArray())
        return throw_error(isolate, false, "compressorPush: out must be an array");
    bool finish = mode == MODE_FINISH;
    bool is_new_chunk = mode == MODE_NEXT_CHUNK;
    Local<ArrayBuffer> buf;
    if (is_new_chunk) {
        if (c->in_left > 0)
            return throw_error(isolate, false, "compressorPush: the previous chunk is not done");
        const uint8_t *p = nullptr;
        size_t len = 0;
        if (!buffer_source(args[1], &p, &len, &buf)) {
            codec_end(c);
            report_memory(c, isolate);
            return throw_error(isolate, false,
                               "The chunk is not a BufferSource (an ArrayBuffer or "
                               "ArrayBufferView not backed by a SharedArrayBuffer)");
        }
        c->in_next = p;
        c->in_left = len;
    }

    const char *why = nullptr;
    push_result r;
    if (c->is_at_end)
        r = c->in_left > 0 ? PUSH_TRAILING : PUSH_DONE;
    else if (c->kind == CODEC_BROTLI_ENC || c->kind == CODEC_BROTLI_DEC)
        r = push_brotli(c, finish, &why);
    else
        r = push_zlib(c, finish, &why);
    if (c->in_left == 0) {
        c->in_store.reset();
        c->in_next = nullptr;
    } else if (is_new_chunk) {
        c->in_store = buf->GetBackingStore(); // before any JS can run
    }
    Local<Value> chunk;
    if (r == PUSH_CORRUPT || r == PUSH_NO_MEMORY || !output_take(c, r != PUSH_MORE, &chunk)) {
        codec_end(c);
        report_memory(c, isolate);
        if (r == PUSH_CORRUPT)
            return throw_error(isolate, false,
                               std::string("The compressed data is corrupt: ") + why);
        return throw_error(isolate, true, "Out of memory in the compression stream");
    }
    if (!chunk.IsEmpty()) {
        Local<v8::Array> out = args[3].As<v8::Array>();
        rt_ignore(out->CreateDataProperty(ctx, out->Length(), chunk));
    }
    if ((finish && r == PUSH_DONE) || r == PUSH_TRAILING || r == PUSH_TRUNCATED)
        codec_end(c);
    report_memory(c, isolate);
    push_status status = r == PUSH_MORE        ? STATUS_MORE
                         : r == PUSH_TRAILING  ? STATUS_TRAILING
                         : r == PUSH_TRUNCATED ? STATUS_TRUNCATED
                                               : STATUS_DONE;
    args.GetReturnValue().Set((int32_t)status);
}

// compressorEnd(handle): frees the codec state now (the stream was cancelled or aborted).
static void CompressorEnd(const FunctionCallbackInfo<Value> &args)
{
    rt_compression *cz = cz_of(args);
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsObject() || !cz->tmpl.Get(isolate)->HasInstance(args[0]))
        return;
    auto *c =
        static_cast<rt_compressor *>(args[0].As<Object>()->GetAlignedPointerFromInternalField(0));
    codec_end(c);
    if (c != nullptr)
        report_memory(c, isolate);
}

static const rt_native kNatives[] = {
    {"compressorNew", CompressorNew},
    {"compressorPush", CompressorPush},
    {"compressorEnd", CompressorEnd},
};

const rt_native *rt_compression_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}

// The handle template is made per isolate, not kept in the snapshot: handles are only ever
// created by compressorNew in this isolate, so HasInstance needs nothing older.
void rt_compression_init(rt_isolate *iso)
{
    Isolate *isolate = iso->isolate;
    HandleScope handles(isolate);
    iso->compression = new rt_compression;
    iso->compression->isolate = isolate;
    iso->compression->allocator = isolate->GetArrayBufferAllocator();
    Local<v8::FunctionTemplate> tmpl = v8::FunctionTemplate::New(isolate);
    tmpl->SetClassName(String::NewFromUtf8Literal(isolate, "CompressionHandle"));
    tmpl->InstanceTemplate()->SetInternalFieldCount(1);
    iso->compression->tmpl.Reset(isolate, tmpl);
}

void rt_compression_close_all(rt_isolate *iso)
{
    rt_compression *cz = iso->compression;
    if (cz == nullptr)
        return;
    while (cz->live != nullptr)
        compressor_free(cz->live, cz->isolate);
    if (cz->spare != nullptr)
        cz->allocator->Free(cz->spare, kChunk);
    cz->tmpl.Reset();
    delete cz;
    iso->compression = nullptr;
}
