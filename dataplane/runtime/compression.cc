// compression.cc: the native half of CompressionStream and DecompressionStream
// (34_compression_streams.js): zlib for "deflate", "deflate-raw" and "gzip", libbrotli for
// "brotli". Each stream owns one codec state behind a handle object; the state is freed when
// the stream ends or fails, when the handle is collected, or with the isolate. Isolate thread
// only.
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

// Output is handed to JS in buffers of this size; a push that ends with a partly filled one
// copies it out when it holds less than kCopyBelow bytes (and keeps the buffer for the next
// push), else shrinks it in place.
constexpr size_t kChunk = 64 * 1024;
constexpr size_t kCopyBelow = 16 * 1024;
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
    z_stream zs;
    BrotliEncoderState *benc = nullptr;
    BrotliDecoderState *bdec = nullptr;
};

struct rt_compression {
    Isolate *isolate = nullptr;
    v8::Global<v8::FunctionTemplate> tmpl; // of handles: HasInstance tells ours from others
    rt_compressor *live = nullptr;         // every state not yet freed
    std::unique_ptr<BackingStore> spare;   // an empty kChunk output buffer, kept between pushes
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

// Frees the codec state (the handle stays, and later pushes throw). NULL-safe, idempotent.
static void codec_end(rt_compressor *c)
{
    if (c == nullptr || !c->is_open)
        return;
    switch (c->kind) {
    case CODEC_DEFLATE:
        deflateEnd(&c->zs);
        break;
    case CODEC_INFLATE:
        inflateEnd(&c->zs);
        break;
    case CODEC_BROTLI_ENC:
        BrotliEncoderDestroyInstance(c->benc);
        c->benc = nullptr;
        break;
    case CODEC_BROTLI_DEC:
        BrotliDecoderDestroyInstance(c->bdec);
        c->bdec = nullptr;
        break;
    }
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

// The output of one push: each filled kChunk buffer becomes a chunk as it is (no copy).
struct output {
    Isolate *isolate;
    rt_compression *cz;
    std::vector<Local<Value>> chunks;
    size_t used = 0; // bytes written into cz->spare
};

static void output_add(output *o, std::unique_ptr<BackingStore> store, size_t len)
{
    Local<ArrayBuffer> ab = ArrayBuffer::New(o->isolate, std::move(store));
    o->chunks.push_back(v8::Uint8Array::New(ab, 0, len));
}

// Room to write into: *next and *avail describe the free end of the current buffer. False
// when the app's memory limit refuses a new buffer (PUSH_NO_MEMORY).
static bool output_room(output *o, uint8_t **next, size_t *avail)
{
    if (o->cz->spare && o->used == kChunk) {
        output_add(o, std::move(o->cz->spare), kChunk);
        o->used = 0;
    }
    if (!o->cz->spare) {
        o->cz->spare = rt_backing_store_try_new(o->isolate, kChunk);
        if (!o->cz->spare)
            return false;
        o->used = 0;
    }
    *next = static_cast<uint8_t *>(o->cz->spare->Data()) + o->used;
    *avail = kChunk - o->used;
    return true;
}

// The last, partly filled buffer of a push becomes a chunk of its exact length.
static void output_finish(output *o)
{
    if (!o->cz->spare || o->used == 0)
        return;
    // A small copy, unless the memory limit refuses it: then the buffer shrinks in place.
    std::unique_ptr<BackingStore> store;
    if (o->used < kCopyBelow)
        store = rt_backing_store_try_new(o->isolate, o->used);
    if (store) {
        memcpy(store->Data(), o->cz->spare->Data(), o->used);
        output_add(o, std::move(store), o->used);
    } else {
        size_t len = o->used;
        output_add(o, BackingStore::Reallocate(o->isolate, std::move(o->cz->spare), len), len);
    }
    o->used = 0;
}

// --- one push through each codec -------------------------------------------------------------

enum push_result {
    PUSH_OK,
    PUSH_CORRUPT,   // the compressed data is invalid: the stream fails without its output
    PUSH_NO_MEMORY, // the codec could not allocate
    PUSH_TRAILING,  // bytes follow the end of the compressed data (output first, then fail)
    PUSH_TRUNCATED, // finish before the end of the compressed data (output first, then fail)
};

static push_result push_zlib(rt_compressor *c, output *o, const uint8_t *in, size_t len,
                             bool finish, const char **why)
{
    z_stream *zs = &c->zs;
    // zlib counts in uInt; feed a huge chunk in slices.
    size_t left = len;
    for (;;) {
        if (zs->avail_in == 0 && left > 0) {
            uInt n = left > (size_t)UINT_MAX ? UINT_MAX : (uInt)left;
            zs->next_in = const_cast<Bytef *>(in + (len - left));
            zs->avail_in = n;
            left -= n;
        }
        bool is_last_slice = left == 0;
        uint8_t *next;
        size_t avail;
        if (!output_room(o, &next, &avail))
            return PUSH_NO_MEMORY;
        zs->next_out = next;
        zs->avail_out = (uInt)avail;
        int rc;
        if (c->kind == CODEC_DEFLATE)
            rc = deflate(zs, finish && is_last_slice ? Z_FINISH : Z_NO_FLUSH);
        else
            rc = inflate(zs, Z_NO_FLUSH);
        o->used += avail - zs->avail_out;
        if (rc == Z_STREAM_END) {
            if (c->kind == CODEC_DEFLATE)
                return PUSH_OK;
            c->is_at_end = true;
            return zs->avail_in > 0 || left > 0 ? PUSH_TRAILING : PUSH_OK;
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
        // Z_OK or Z_BUF_ERROR (no progress possible): done once the input is used up and the
        // codec stopped short of filling the buffer, i.e. it has nothing more to write.
        if (zs->avail_out > 0 && zs->avail_in == 0 && left == 0 &&
            !(c->kind == CODEC_DEFLATE && finish))
            break;
    }
    return c->kind == CODEC_INFLATE && finish ? PUSH_TRUNCATED : PUSH_OK;
}

static push_result push_brotli(rt_compressor *c, output *o, const uint8_t *in, size_t len,
                               bool finish, const char **why)
{
    size_t avail_in = len;
    const uint8_t *next_in = in;
    for (;;) {
        uint8_t *next;
        size_t avail;
        if (!output_room(o, &next, &avail))
            return PUSH_NO_MEMORY;
        size_t room = avail;
        if (c->kind == CODEC_BROTLI_ENC) {
            BrotliEncoderOperation op = finish ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_PROCESS;
            BROTLI_BOOL ok = BrotliEncoderCompressStream(c->benc, op, &avail_in, &next_in, &avail,
                                                         &next, nullptr);
            o->used += room - avail;
            if (!ok)
                return PUSH_NO_MEMORY; // we never misuse the operations: only allocation fails
            if (finish ? BrotliEncoderIsFinished(c->benc)
                       : avail_in == 0 && !BrotliEncoderHasMoreOutput(c->benc))
                return PUSH_OK;
            continue;
        }
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(c->bdec, &avail_in, &next_in, &avail, &next, nullptr);
        o->used += room - avail;
        switch (r) {
        case BROTLI_DECODER_RESULT_SUCCESS:
            c->is_at_end = true;
            return avail_in > 0 ? PUSH_TRAILING : PUSH_OK;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT:
            return finish ? PUSH_TRUNCATED : PUSH_OK;
        case BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT:
            if (avail < room)
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

// The bytes of a BufferSource (ArrayBuffer or ArrayBufferView, not shared); false if it is not.
static bool buffer_source(Local<Value> v, const uint8_t **p, size_t *len)
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
    // The bytes stay put for the call: backing stores never move, and no JS runs until the
    // codec is done with them.
    *p = *len > 0 ? static_cast<const uint8_t *>(ab->Data()) + offset : nullptr;
    return true;
}

// compressorPush(handle, bytes, finish, out) -> undefined, or a message.
// Runs bytes (a BufferSource; undefined when finish) through the codec and appends the output
// to the array out as Uint8Arrays of at most 64 KiB. With finish, the stream ends: compression
// writes its trailer, decompression checks that the compressed data was complete.
// Throws a TypeError when bytes is not a BufferSource or the compressed data is corrupt (no
// output then), a RangeError when out of memory. Returns a message when the output stands but
// the stream must then fail (Compression §6 "decompress and enqueue a chunk" step 6 and "flush"
// step 3): data after the end of the compressed stream, or the stream cut short at finish.
// The state is freed at finish and on any error.
static void CompressorPush(const FunctionCallbackInfo<Value> &args)
{
    rt_compression *cz = cz_of(args);
    Isolate *isolate = args.GetIsolate();
    Local<Context> ctx = isolate->GetCurrentContext();
    rt_compressor *c = compressor_arg(args, cz);
    if (c == nullptr)
        return;
    bool finish = args[2]->BooleanValue(isolate);
    const uint8_t *p = nullptr;
    size_t len = 0;
    if (!(finish && args[1]->IsUndefined()) && !buffer_source(args[1], &p, &len)) {
        codec_end(c);
        return throw_error(isolate, false,
                           "The chunk is not a BufferSource (an ArrayBuffer or ArrayBufferView "
                           "not backed by a SharedArrayBuffer)");
    }
    if (!args[3]->IsArray())
        return throw_error(isolate, false, "compressorPush: out must be an array");

    output o{isolate, cz, {}, 0};
    const char *why = nullptr;
    push_result r;
    if (c->is_at_end)
        r = len > 0 ? PUSH_TRAILING : PUSH_OK;
    else if (c->kind == CODEC_BROTLI_ENC || c->kind == CODEC_BROTLI_DEC)
        r = push_brotli(c, &o, p, len, finish, &why);
    else
        r = push_zlib(c, &o, p, len, finish, &why);
    report_memory(c, isolate);
    if (r == PUSH_CORRUPT || r == PUSH_NO_MEMORY) {
        o.used = 0; // what the spare holds is dropped with the chunks
        codec_end(c);
        report_memory(c, isolate);
        if (r == PUSH_NO_MEMORY)
            return throw_error(isolate, true, "Out of memory in the compression stream");
        return throw_error(isolate, false, std::string("The compressed data is corrupt: ") + why);
    }
    output_finish(&o);
    Local<v8::Array> out = args[3].As<v8::Array>();
    uint32_t base = out->Length();
    for (size_t i = 0; i < o.chunks.size(); i++)
        rt_ignore(out->CreateDataProperty(ctx, base + (uint32_t)i, o.chunks[i]));
    if (finish || r != PUSH_OK) {
        codec_end(c);
        report_memory(c, isolate);
    }
    if (r == PUSH_TRAILING)
        args.GetReturnValue().Set(String::NewFromUtf8Literal(
            isolate, "The compressed data is followed by bytes that are not part of it"));
    else if (r == PUSH_TRUNCATED)
        args.GetReturnValue().Set(
            String::NewFromUtf8Literal(isolate, "The compressed data ends before its end"));
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
    cz->tmpl.Reset();
    delete cz;
    iso->compression = nullptr;
}
