// encoding.cc: the native half of TextEncoder/TextDecoder (21_encoding.js): a streaming
// WHATWG UTF-8 decoder, encodeInto, and ICU converters for the legacy encodings; and the
// base64 of btoa/atob (23_globals.js).
#include "runtime_int.h"

#include <cstring>
#include <string>
#include <vector>

#include <openssl/evp.h>
#include <unicode/ucnv.h>
#include <unicode/ucnv_err.h>

using v8::Context;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::String;
using v8::Value;

static rt_isolate *iso_of(const FunctionCallbackInfo<Value> &args)
{
    return rt_isolate_of(args.GetIsolate());
}

static bool bytes_arg(const FunctionCallbackInfo<Value> &args, int i, const uint8_t **p,
                      size_t *len)
{
    if (!args[i]->IsArrayBufferView())
        return false;
    Local<v8::ArrayBufferView> view = args[i].As<v8::ArrayBufferView>();
    *len = view->ByteLength();
    *p = *len ? static_cast<const uint8_t *>(view->Buffer()->Data()) + view->ByteOffset()
              : reinterpret_cast<const uint8_t *>("");
    return true;
}

static Local<String> utf16_string(Isolate *isolate, const std::u16string &s)
{
    return String::NewFromTwoByte(isolate, reinterpret_cast<const uint16_t *>(s.data()),
                                  v8::NewStringType::kNormal, (int)s.size())
        .ToLocalChecked();
}

// utf8Decode(bytes, fatal, stream) -> [text, consumed], or null on an error when fatal.
// Encoding §8.1.1 UTF-8 decoder: each maximal invalid subpart becomes one U+FFFD; with
// stream, an incomplete sequence at the end is left unconsumed for the next call.
static void Utf8Decode(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    const uint8_t *p;
    size_t len;
    if (!bytes_arg(args, 0, &p, &len)) {
        return rt_throw_type_error(isolate, "utf8Decode: expected bytes");
    }
    bool fatal = args[1]->BooleanValue(isolate);
    bool stream = args[2]->BooleanValue(isolate);
    size_t i = nano_ascii_prefix(p, len);
    std::u16string out;
    if (i == len) { // all ASCII: no decoding needed
        Local<Value> pair[] = {
            String::NewFromOneByte(isolate, p, v8::NewStringType::kNormal, (int)len)
                .ToLocalChecked(),
            v8::Number::New(isolate, (double)len)};
        args.GetReturnValue().Set(v8::Array::New(isolate, pair, 2));
        return;
    }
    out.reserve(len);
    for (size_t k = 0; k < i; k++)
        out.push_back(p[k]);
    size_t consumed = len;
    while (i < len) {
        uint8_t b = p[i];
        if (b < 0x80) {
            out.push_back(b);
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        uint8_t lower = 0x80, upper = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            if (b == 0xE0)
                lower = 0xA0;
            if (b == 0xED)
                upper = 0x9F;
            need = 2;
            cp = b & 0xF;
        } else if (b >= 0xF0 && b <= 0xF4) {
            if (b == 0xF0)
                lower = 0x90;
            if (b == 0xF4)
                upper = 0x8F;
            need = 3;
            cp = b & 0x7;
        } else {
            if (fatal)
                return args.GetReturnValue().SetNull();
            out.push_back(0xFFFD);
            i++;
            continue;
        }
        size_t j = 1;
        bool bad = false;
        for (; j <= need; j++) {
            if (i + j >= len)
                break;
            uint8_t c = p[i + j];
            if (c < lower || c > upper) {
                bad = true;
                break;
            }
            lower = 0x80;
            upper = 0xBF;
            cp = (cp << 6) | (c & 0x3F);
        }
        if (!bad && j <= need) { // ran out of input mid-sequence
            if (stream) {
                consumed = i;
                break;
            }
            if (fatal)
                return args.GetReturnValue().SetNull();
            out.push_back(0xFFFD);
            break;
        }
        if (bad) {
            if (fatal)
                return args.GetReturnValue().SetNull();
            out.push_back(0xFFFD);
            i += j; // the maximal subpart; the offending byte is looked at again
            continue;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            out.push_back((char16_t)(0xD800 + (cp >> 10)));
            out.push_back((char16_t)(0xDC00 + (cp & 0x3FF)));
        } else {
            out.push_back((char16_t)cp);
        }
        i += need + 1;
    }
    Local<Value> pair[] = {utf16_string(isolate, out), v8::Number::New(isolate, (double)consumed)};
    args.GetReturnValue().Set(v8::Array::New(isolate, pair, 2));
}

// encodeInto(string, Uint8Array) -> [read (UTF-16 code units), written (bytes)].
static void EncodeInto(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<String> s = args[0].As<String>();
    Local<v8::Uint8Array> dest = args[1].As<v8::Uint8Array>();
    char *p = static_cast<char *>(dest->Buffer()->Data()) + dest->ByteOffset();
    int capacity = (int)dest->ByteLength();
    int read = 0;
    int written = s->WriteUtf8(isolate, p, capacity, &read,
                               String::NO_NULL_TERMINATION | String::REPLACE_INVALID_UTF8);
    Local<Value> pair[] = {v8::Integer::New(isolate, read), v8::Integer::New(isolate, written)};
    args.GetReturnValue().Set(v8::Array::New(isolate, pair, 2));
}

// icuTable(name) -> Uint16Array(128): what bytes 0x80..0xFF decode to in ICU's converter
// for name, 0xFFFF where a byte is unmapped; undefined when ICU has no such converter.
static void IcuTable(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    String::Utf8Value name(isolate, args[0]);
    std::shared_ptr<v8::BackingStore> store = rt_backing_store_new(isolate, 256);
    if (!store)
        return; // past the app's memory limit: a RangeError
    UErrorCode e = U_ZERO_ERROR;
    UConverter *c = ucnv_open(*name, &e);
    if (U_FAILURE(e))
        return;
    ucnv_setToUCallBack(c, UCNV_TO_U_CALLBACK_STOP, nullptr, nullptr, nullptr, &e);
    Local<v8::ArrayBuffer> ab = v8::ArrayBuffer::New(isolate, store);
    auto *table = static_cast<uint16_t *>(ab->Data());
    for (int b = 0x80; b < 0x100; b++) {
        char in = (char)b;
        const char *src = &in;
        UChar out[4];
        UChar *dst = out;
        e = U_ZERO_ERROR;
        ucnv_reset(c);
        ucnv_toUnicode(c, &dst, out + 4, &src, &in + 1, nullptr, true, &e);
        table[b - 0x80] = U_SUCCESS(e) && dst - out == 1 ? out[0] : 0xFFFF;
    }
    ucnv_close(c);
    args.GetReturnValue().Set(v8::Uint16Array::New(ab, 0, 128));
}

// icuOpen(name) -> id of a streaming converter, or -1 when ICU has none of that name.
static void IcuOpen(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    String::Utf8Value name(args.GetIsolate(), args[0]);
    UErrorCode e = U_ZERO_ERROR;
    UConverter *c = ucnv_open(*name, &e);
    if (U_FAILURE(e))
        return args.GetReturnValue().Set(-1);
    size_t id = 0;
    while (id < iso->converters.size() && iso->converters[id] != nullptr)
        id++;
    if (id == iso->converters.size())
        iso->converters.push_back(nullptr);
    iso->converters[id] = c;
    args.GetReturnValue().Set((int)id);
}

static UConverter *converter_arg(rt_isolate *iso, const FunctionCallbackInfo<Value> &args)
{
    int id = args[0]->Int32Value(args.GetIsolate()->GetCurrentContext()).FromMaybe(-1);
    if (id < 0 || (size_t)id >= iso->converters.size())
        return nullptr;
    return static_cast<UConverter *>(iso->converters[(size_t)id]);
}

// icuClose(id): the converter's decoder was collected.
static void IcuClose(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    UConverter *c = converter_arg(iso, args);
    if (c == nullptr)
        return;
    ucnv_close(c);
    iso->converters[(size_t)args[0].As<v8::Int32>()->Value()] = nullptr;
}

// icuDecode(id, bytes, flush, fatal) -> text, or null on an error when fatal (the converter
// is then reset). Without flush, ICU keeps an incomplete sequence for the next call.
static void IcuDecode(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    UConverter *c = converter_arg(iso, args);
    const uint8_t *p;
    size_t len;
    if (c == nullptr || !bytes_arg(args, 1, &p, &len)) {
        return rt_throw_type_error(isolate, "icuDecode: bad arguments");
    }
    bool flush = args[2]->BooleanValue(isolate);
    bool fatal = args[3]->BooleanValue(isolate);
    UErrorCode e = U_ZERO_ERROR;
    ucnv_setToUCallBack(c, fatal ? UCNV_TO_U_CALLBACK_STOP : UCNV_TO_U_CALLBACK_SUBSTITUTE, nullptr,
                        nullptr, nullptr, &e);
    std::u16string out;
    out.resize(len * 2 + 16);
    const char *src = reinterpret_cast<const char *>(p);
    const char *end = src + len;
    size_t used = 0;
    for (;;) {
        UChar *dst = reinterpret_cast<UChar *>(&out[used]);
        UChar *dst_end = reinterpret_cast<UChar *>(&out[0]) + out.size();
        e = U_ZERO_ERROR;
        ucnv_toUnicode(c, &dst, dst_end, &src, end, nullptr, flush, &e);
        used = (size_t)(dst - reinterpret_cast<UChar *>(&out[0]));
        if (e == U_BUFFER_OVERFLOW_ERROR) {
            out.resize(out.size() * 2);
            continue;
        }
        break;
    }
    if (U_FAILURE(e)) {
        ucnv_reset(c);
        if (fatal)
            return args.GetReturnValue().SetNull();
    }
    out.resize(used);
    args.GetReturnValue().Set(utf16_string(isolate, out));
}

void rt_encoding_close_all(rt_isolate *iso)
{
    for (void *c : iso->converters)
        if (c != nullptr)
            ucnv_close(static_cast<UConverter *>(c));
    iso->converters.clear();
}

// A string's Latin-1 bytes, in a buffer that is on the stack for short strings.
class Latin1Bytes {
  public:
    // ok() is false when the string has a character above U+00FF.
    Latin1Bytes(Isolate *isolate, Local<String> s) : len_(s->Length())
    {
        if (!s->IsOneByte() && !s->ContainsOnlyOneByte())
            return;
        if (len_ > sizeof small_) {
            big_.resize(len_);
            data_ = big_.data();
        }
        s->WriteOneByte(isolate, data_, 0, (int)len_, String::NO_NULL_TERMINATION);
        ok_ = true;
    }
    bool ok() const { return ok_; }
    uint8_t *data() { return data_; }
    size_t size() const { return len_; }

  private:
    uint8_t small_[1024];
    std::vector<uint8_t> big_;
    uint8_t *data_ = small_;
    size_t len_;
    bool ok_ = false;
};

// The bytes as a one-byte string; a RangeError when longer than V8's strings may be.
static void return_latin1(const FunctionCallbackInfo<Value> &args, const uint8_t *p, size_t n)
{
    Isolate *isolate = args.GetIsolate();
    Local<String> out;
    if (n > (size_t)String::kMaxLength ||
        !String::NewFromOneByte(isolate, p, v8::NewStringType::kNormal, (int)n).ToLocal(&out)) {
        isolate->ThrowException(v8::Exception::RangeError(
            String::NewFromUtf8Literal(isolate, "the result is longer than a string can be")));
        return;
    }
    args.GetReturnValue().Set(out);
}

// base64Encode(string) -> btoa's result, or undefined when a character is above U+00FF
// (btoa then throws InvalidCharacterError).
static void Base64Encode(const FunctionCallbackInfo<Value> &args)
{
    if (!args[0]->IsString())
        return rt_throw_type_error(args.GetIsolate(), "base64Encode: expected a string");
    Latin1Bytes in(args.GetIsolate(), args[0].As<String>());
    if (!in.ok())
        return;
    size_t n = 4 * ((in.size() + 2) / 3);
    if (n > (size_t)String::kMaxLength) // before allocating for it
        return return_latin1(args, nullptr, n);
    std::vector<uint8_t> out(n + 1, 0); // EVP_EncodeBlock writes a NUL after the text
    if (in.size() > 0)
        EVP_EncodeBlock(out.data(), in.data(), (int)in.size());
    return_latin1(args, out.data(), n);
}

// base64Decode(string) -> HTML's forgiving-base64 decode of it as a Latin-1 string (atob's
// result), or undefined on failure (atob then throws InvalidCharacterError).
static void Base64Decode(const FunctionCallbackInfo<Value> &args)
{
    if (!args[0]->IsString())
        return rt_throw_type_error(args.GetIsolate(), "base64Decode: expected a string");
    Latin1Bytes in(args.GetIsolate(), args[0].As<String>());
    if (!in.ok())
        return; // a character above U+00FF is neither base64 nor ASCII whitespace
    uint8_t *p = in.data();
    size_t m = 0;
    for (size_t i = 0; i < in.size(); i++) { // 1. remove ASCII whitespace
        uint8_t c = p[i];
        if (c != '\t' && c != '\n' && c != '\f' && c != '\r' && c != ' ')
            p[m++] = c;
    }
    if (m % 4 == 0 && m > 0 && p[m - 1] == '=') { // 2. at most two '=' at the end
        m--;
        if (p[m - 1] == '=')
            m--;
    }
    if (m % 4 == 1) // 3.
        return;
    size_t n = 0;
    uint32_t buffer = 0;
    int bits = 0;
    for (size_t i = 0; i < m; i++) { // 4. and 5.: decode, in place (output is shorter)
        uint8_t c = p[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (v < 0)
            return;
        buffer = (buffer << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            p[n++] = (uint8_t)(buffer >> bits);
        }
    }
    return_latin1(args, p, n); // left-over bits (4 or 2) are dropped, as the standard says
}

static const rt_native kNatives[] = {
    {"utf8Decode", Utf8Decode},     {"encodeInto", EncodeInto},     {"icuTable", IcuTable},
    {"icuOpen", IcuOpen},           {"icuClose", IcuClose},         {"icuDecode", IcuDecode},
    {"base64Encode", Base64Encode}, {"base64Decode", Base64Decode},
};

const rt_native *rt_encoding_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}
