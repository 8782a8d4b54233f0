// bindings.cc: the native functions behind the built-in JS (the `binding` object). Each one
// unpacks its arguments, calls into the server's C API or the isolate's state, and packs the
// result. App code never sees `binding`: only the built-ins' closures hold it.
#include "runtime_int.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>
#include <cstring>

#include <openssl/rand.h>
#include <unistd.h>

extern "C" {
#include "log.h"
}

using v8::Context;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::String;
using v8::Value;

void rt__timer_arm(rt_isolate *iso, double ms);
void rt__timer_stop(rt_isolate *iso);

static rt_isolate *iso_of(const FunctionCallbackInfo<Value> &args)
{
    return rt_isolate_of(args.GetIsolate());
}

void rt_throw_type_error(Isolate *isolate, const char *msg)
{
    isolate->ThrowException(
        v8::Exception::TypeError(String::NewFromUtf8(isolate, msg).ToLocalChecked()));
}

// The slot named by args[0], or a TypeError thrown (the request context has ended).
static rt_slot *slot_arg(const FunctionCallbackInfo<Value> &args, rt_isolate *iso)
{
    rt_slot *s = args[0]->IsNumber() ? rt_slot_get(iso, args[0].As<v8::Number>()->Value())
                                     : nullptr;
    if (s == nullptr)
        rt_throw_type_error(args.GetIsolate(),
                            "This request's context has ended: its response was sent and its "
                            "waitUntil work is done");
    return s;
}

static uint32_t slot_index(const FunctionCallbackInfo<Value> &args)
{
    return (uint32_t)((uint64_t)args[0].As<v8::Number>()->Value() & (kMaxSlots - 1));
}

// write_all: the whole text to fd (stdout/stderr), plus a newline if asked.
static void write_all(int fd, const char *p, size_t len, bool newline)
{
    std::string line(p, len);
    if (newline)
        line += '\n';
    const char *q = line.data();
    size_t left = line.size();
    while (left > 0) {
        ssize_t n = write(fd, q, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; // a closed stdout is not the app's problem
        q += n;
        left -= (size_t)n;
    }
}

// print(fd, text): raw output for the test runner and `nano-dp run` (fd 1 or 2).
static void Print(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    int fd = args[0]->Int32Value(isolate->GetCurrentContext()).FromMaybe(1) == 2 ? 2 : 1;
    String::Utf8Value text(isolate, args[1]);
    write_all(fd, *text ? *text : "", *text ? text.length() : 0, false);
}

// log(level, method, text): app console output, tagged with the app.
static void Log(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    int level = args[0]->Int32Value(isolate->GetCurrentContext()).FromMaybe(1);
    // console.debug is shown like console.log: a developer who calls it wants to see it.
    nano_log_level lv = level >= 3 ? NANO_LOG_ERROR : level == 2 ? NANO_LOG_WARN : NANO_LOG_INFO;
    String::Utf8Value utf8(isolate, args[2]);
    std::string text = *utf8 ? std::string(*utf8, (size_t)utf8.length()) : std::string();
    if (!iso->secrets.empty())
        text = rt_redact(iso, std::move(text));
    if (iso->console_mode == RT_CONSOLE_STDIO) {
        write_all(lv >= NANO_LOG_WARN ? 2 : 1, text.data(), text.size(), true);
        return;
    }
    if (lv < nano_log_min_level)
        return;
    String::Utf8Value method(isolate, args[1]);
    std::string prefix = iso->console_prefix + " console=" + (*method ? *method : "log");
    nano_log_text(lv, "app.console", prefix.c_str(), text.data(), text.size());
}

static void ReportError(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    String::Utf8Value text(args.GetIsolate(), args[0]);
    rt_log_js_error(iso, "app.uncaught", *text ? *text : "Uncaught exception");
}

static void ShutdownDone(const FunctionCallbackInfo<Value> &args)
{
    rt__shutdown_settled(iso_of(args));
}

static void Now(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    args.GetReturnValue().Set((double)(uv_hrtime() - iso->time_origin_ns) / 1e6);
}

static void TimerArm(const FunctionCallbackInfo<Value> &args)
{
    double ms = args[0]->NumberValue(args.GetIsolate()->GetCurrentContext()).FromMaybe(0);
    rt__timer_arm(iso_of(args), ms);
}

static void TimerStop(const FunctionCallbackInfo<Value> &args)
{
    rt__timer_stop(iso_of(args));
}

// currentRequest(): the id of the request the running JS is charged to, or -1 (none). A timer
// made now belongs to it.
static void CurrentRequest(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    uint32_t slot = iso->current_slot;
    bool live = slot < iso->slots.size() && iso->slots[slot].req != nullptr &&
                iso->slots[slot].gen == iso->segment_gen;
    args.GetReturnValue().Set(live ? rt_slot_id(iso, slot) : -1.0);
}

// timerEnter(id): the timer about to run belongs to request id (-1: to none); its JS is
// charged to that request from now on. Returns true (run it), false (that request has ended
// or used up its CPU budget: drop it), or for a timer of no request whose background budget
// is spent, the milliseconds it must wait (runtime.cc background_refill).
static void TimerEnter(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    double id = args[0]->IsNumber() ? args[0].As<v8::Number>()->Value() : -1;
    if (!(id >= 0)) {
        rt_segment_switch(iso, kNoSlot, 0);
        double wait = rt_background_wait_ms(iso);
        if (wait > 0)
            args.GetReturnValue().Set(wait);
        else
            args.GetReturnValue().Set(true);
        return;
    }
    uint64_t v = (uint64_t)id;
    args.GetReturnValue().Set(
        rt_segment_switch(iso, (uint32_t)(v & (kMaxSlots - 1)), (uint32_t)(v >> kSlotBits)));
}

// runMicrotasks(): the checkpoint after one task (a timer callback) inside a batch of them.
static void RunMicrotasks(const FunctionCallbackInfo<Value> &args)
{
    rt_microtask_checkpoint(iso_of(args), args.GetIsolate()->GetCurrentContext());
}

static void EncodeUtf8(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    Local<String> s = args[0]->IsString()
                          ? args[0].As<String>()
                          : args[0]->ToString(isolate->GetCurrentContext()).ToLocalChecked();
    size_t len = (size_t)s->Utf8Length(isolate);
    std::unique_ptr<v8::BackingStore> store = rt_backing_store_new(isolate, len);
    if (!store)
        return; // past the app's memory limit: a RangeError
    s->WriteUtf8(isolate, static_cast<char *>(store->Data()), (int)len, nullptr,
                 String::NO_NULL_TERMINATION | String::REPLACE_INVALID_UTF8);
    Local<v8::ArrayBuffer> buf = v8::ArrayBuffer::New(isolate, std::move(store));
    args.GetReturnValue().Set(v8::Uint8Array::New(buf, 0, len));
}

// encodeUtf8Into(string, dest): writes the string's UTF-8 (lone surrogates as U+FFFD) into
// the Uint8Array dest, which the caller made large enough (3 bytes per code unit), and
// returns the byte count. TextEncoder.encode uses it with a scratch buffer: a JS
// Uint8Array and a copy cost less than an ArrayBuffer made here.
static void EncodeUtf8Into(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsString() || !args[1]->IsUint8Array()) {
        rt_throw_type_error(isolate, "encodeUtf8Into: expected a string and a Uint8Array");
        return;
    }
    Local<String> s = args[0].As<String>();
    Local<v8::Uint8Array> dest = args[1].As<v8::Uint8Array>();
    if (dest->ByteLength() / 3 < (size_t)s->Length()) {
        rt_throw_type_error(isolate, "encodeUtf8Into: the destination is too small");
        return;
    }
    char *p = static_cast<char *>(dest->Buffer()->Data()) + dest->ByteOffset();
    int written = s->WriteUtf8(isolate, p, (int)dest->ByteLength(), nullptr,
                               String::NO_NULL_TERMINATION | String::REPLACE_INVALID_UTF8);
    args.GetReturnValue().Set(written);
}

// decodeUtf8(bytes): WHATWG "UTF-8 decode": a leading BOM is dropped, bad sequences become
// U+FFFD (V8's decoder replaces maximal subparts, as the Encoding standard asks).
static void DecodeUtf8(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsArrayBufferView()) {
        rt_throw_type_error(isolate, "decodeUtf8: expected bytes");
        return;
    }
    Local<v8::ArrayBufferView> view = args[0].As<v8::ArrayBufferView>();
    size_t len = view->ByteLength();
    const char *p = static_cast<const char *>(view->Buffer()->Data()) + view->ByteOffset();
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3;
        len -= 3;
    }
    Local<String> s;
    if (!String::NewFromUtf8(isolate, p, v8::NewStringType::kNormal, (int)len).ToLocal(&s)) {
        isolate->ThrowException(v8::Exception::RangeError(
            String::NewFromUtf8Literal(isolate, "decodeUtf8: the text is too long for a string")));
        return;
    }
    args.GetReturnValue().Set(s);
}

// requestHeaders(id): [name, value, ...] with lowercased names, as the Headers list keeps them.
static void RequestHeaders(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr)
        return;
    size_t n = dp_request_n_headers(s->req);
    std::vector<Local<Value>> items;
    items.reserve(n * 2);
    std::string lower;
    for (size_t i = 0; i < n; i++) {
        const dp_header *h = dp_request_header(s->req, i);
        lower.assign(h->name.ptr, h->name.len);
        for (char &c : lower)
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
        items.push_back(String::NewFromOneByte(isolate, (const uint8_t *)lower.data(),
                                               v8::NewStringType::kNormal, (int)lower.size())
                            .ToLocalChecked());
        items.push_back(String::NewFromOneByte(isolate, (const uint8_t *)h->value.ptr,
                                               v8::NewStringType::kNormal, (int)h->value.len)
                            .ToLocalChecked());
    }
    args.GetReturnValue().Set(v8::Array::New(isolate, items.data(), items.size()));
}

// readBody(id): a promise of the whole request body as an ArrayBuffer (text(), json(), ...:
// the server collects it without holding the client back).
static void ReadBody(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    Local<Context> ctx = isolate->GetCurrentContext();
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr)
        return;
    if (!s->body_waiter.IsEmpty()) {
        rt_throw_type_error(isolate, "The request body is already being read");
        return;
    }
    Local<v8::Promise::Resolver> resolver = v8::Promise::Resolver::New(ctx).ToLocalChecked();
    s->body_waiter.Reset(isolate, resolver);
    s->is_body_whole = true;
    dp_request_body_collect(s->req);
    rt_settle_body(iso, s, ctx);
    args.GetReturnValue().Set(resolver->GetPromise());
}

// readBodyChunk(id): the body bytes received so far as an ArrayBuffer, null at the end of the
// body, or (none yet) a promise of either. Taking bytes lets the server read more.
static void ReadBodyChunk(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr)
        return;
    if (!s->body_waiter.IsEmpty()) {
        rt_throw_type_error(isolate, "The request body is already being read");
        return;
    }
    dp_request *req = s->req;
    if (dp_request_body(req)->len > 0) {
        args.GetReturnValue().Set(rt_take_body(iso, s));
        return;
    }
    if (dp_request_body_complete(req)) {
        if (dp_request_body_failed(req))
            isolate->ThrowException(rt_body_failed_error(iso));
        else
            args.GetReturnValue().SetNull();
        return;
    }
    Local<v8::Promise::Resolver> resolver =
        v8::Promise::Resolver::New(isolate->GetCurrentContext()).ToLocalChecked();
    s->body_waiter.Reset(isolate, resolver);
    s->is_body_whole = false;
    args.GetReturnValue().Set(resolver->GetPromise());
}

// cancelBody(id): the app canceled the body stream: the rest of the body is dropped.
static void CancelBody(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    rt_slot *s = slot_arg(args, iso);
    if (s != nullptr)
        dp_request_body_discard(s->req);
}

// Response header arguments: name, value, name, value... from args[kFirstHeaderArg] on, each
// a string. Passed as arguments because reading them there costs nothing, where the elements
// of a JS array each take a property lookup.
constexpr int kFirstHeaderArg = 4;

// Whether every character of str fits a byte. V8 keeps some such strings two bytes wide
// (strings its JSON parser internalized, and app literals equal to them), so the
// representation alone does not tell.
static bool is_latin1(Local<String> str)
{
    return str->IsOneByte() || str->ContainsOnlyOneByte();
}

// The bytes of the header lines "name: value\r\n" the arguments make, or -1 when one is not
// a one-byte string (header names and values are byte strings: a wider character did not
// come from Headers, and WriteOneByte would cut it down to a byte).
static int64_t header_block_length(const FunctionCallbackInfo<Value> &args)
{
    int n = args.Length();
    if ((n - kFirstHeaderArg) % 2 != 0)
        return -1;
    int64_t len = 0;
    for (int i = kFirstHeaderArg; i < n; i++) {
        if (!args[i]->IsString() || !is_latin1(args[i].As<String>()))
            return -1;
        len += args[i].As<String>()->Length();
    }
    return len + (n - kFirstHeaderArg) * 2; // ": " and "\r\n" per pair
}

static void fill_header_block(void *ud, char *dst)
{
    auto *args = static_cast<const FunctionCallbackInfo<Value> *>(ud);
    Isolate *isolate = args->GetIsolate();
    for (int i = kFirstHeaderArg; i < args->Length(); i++) {
        Local<String> str = (*args)[i].As<String>();
        int n = str->Length();
        str->WriteOneByte(isolate, (uint8_t *)dst, 0, n, String::NO_NULL_TERMINATION);
        dst += n;
        bool is_name = (i - kFirstHeaderArg) % 2 == 0;
        memcpy(dst, is_name ? ": " : "\r\n", 2);
        dst += 2;
    }
}

// Starts the response of slot s from JS arguments (id, status, statusText, _, name, value,
// ...): returns dp_response_start_block's result. A header or status text with CR, LF or NUL
// is logged and answered with 500 instead (NANO_EINVAL).
static int start_response(const FunctionCallbackInfo<Value> &args, rt_isolate *iso, rt_slot *s,
                          int64_t length)
{
    Isolate *isolate = args.GetIsolate();
    int status = args[1]->IsInt32() ? args[1].As<v8::Int32>()->Value() : 500;
    int64_t block_len = header_block_length(args);
    int rc = NANO_EINVAL;
    Local<String> text = args[2]->IsString() ? args[2].As<String>() : String::Empty(isolate);
    if (block_len >= 0 && (text->Length() == 0 || is_latin1(text))) {
        char text_bytes[128];
        std::string long_text;
        char *text_ptr = text_bytes;
        size_t text_len = (size_t)text->Length();
        if (text_len > sizeof text_bytes) {
            long_text.resize(text_len);
            text_ptr = long_text.data();
        }
        text->WriteOneByte(isolate, (uint8_t *)text_ptr, 0, (int)text_len,
                           String::NO_NULL_TERMINATION);
        rc = dp_response_start_block(s->req, status, {text_ptr, text_len}, (size_t)block_len,
                                     fill_header_block, (void *)&args, length);
    }
    if (rc == NANO_EINVAL) {
        rt_log_js_error(iso, "app.bad_response",
                        "the response has a header or status text "
                        "with CR, LF or NUL; answered 500 instead");
        dp_response_error(s->req, 500);
    }
    return rc;
}

// The slot named by args[0] when its response has not started; otherwise null, with a
// TypeError thrown.
static rt_slot *unanswered_slot(const FunctionCallbackInfo<Value> &args, rt_isolate *iso)
{
    rt_slot *s = slot_arg(args, iso);
    if (s != nullptr && (s->is_responded || dp_response_started(s->req))) {
        rt_throw_type_error(args.GetIsolate(), "A response was already sent for this request");
        return nullptr;
    }
    return s;
}

// A body length argument: a non-negative number, else -1 (unknown).
static int64_t length_arg(Local<Value> v)
{
    double length = v->IsNumber() ? v.As<v8::Number>()->Value() : -1;
    // A length the cast cannot hold (Infinity, 2^63 and up, NaN) is no length at all: the
    // conversion would be undefined behaviour. JS never sends one above 2^53.
    return length >= 0 && length < 9223372036854775808.0 ? (int64_t)length : -1;
}

// A string body's bytes as UTF-8 in iso->scratch: the length, or -1 when the string is too
// long for one response.
static int64_t body_utf8(Isolate *isolate, rt_isolate *iso, Local<String> str)
{
    nano_buf *scratch = &iso->scratch;
    nano_buf_reset(scratch);
    size_t n = (size_t)str->Length();
    // Latin-1 text (V8 often keeps it in a two-byte string: JSON.stringify's results, say)
    // copied a byte per character: ASCII, the usual case, is its own UTF-8.
    if (is_latin1(str)) {
        uint8_t *dst = (uint8_t *)nano_buf_reserve(scratch, n);
        str->WriteOneByte(isolate, dst, 0, (int)n, String::NO_NULL_TERMINATION);
        if (nano_ascii_prefix(dst, n) == n)
            return (int64_t)n;
    }
    size_t len = (size_t)str->Utf8Length(isolate);
    if (len > INT32_MAX)
        return -1;
    char *dst = nano_buf_reserve(scratch, len);
    str->WriteUtf8(isolate, dst, (int)len, nullptr,
                   String::NO_NULL_TERMINATION | String::REPLACE_INVALID_UTF8);
    return (int64_t)len;
}

// respond(id, status, statusText, body, name, value, ...): the whole response at once; body
// is null, a string or a Uint8Array.
static void Respond(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    rt_slot *s = unanswered_slot(args, iso);
    if (s == nullptr)
        return;
    uint32_t index = slot_index(args);
    dp_request *req = s->req;
    Local<Value> body = args[3];
    int64_t length = 0;
    const char *bytes = nullptr;
    if (body->IsString()) {
        length = body_utf8(isolate, iso, body.As<String>());
        if (length < 0) {
            rt_throw_type_error(isolate, "The response body string is too long");
            return;
        }
        bytes = iso->scratch.data;
    } else if (body->IsUint8Array()) {
        Local<v8::Uint8Array> u8 = body.As<v8::Uint8Array>();
        bytes = static_cast<const char *>(u8->Buffer()->Data()) + u8->ByteOffset();
        length = (int64_t)u8->ByteLength();
    }

    s->is_responded = true;
    int rc = start_response(args, iso, s, length);
    if (rc == 0) {
        if (bytes != nullptr && length > 0)
            dp_response_write(req, bytes, (size_t)length);
        dp_response_end(req);
    }
    // rc == NANO_ESTATE: the client went away; the response has nowhere to go.
    rt_slot_maybe_release(iso, index);
}

// responseStart(id, status, statusText, length, name, value, ...): the head of a streamed response
// (length -1: unknown, so chunked). True when body bytes should follow; false when they are
// not wanted (HEAD, 204, 304) or cannot go anywhere: then call responseEnd.
static void ResponseStart(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    rt_slot *s = unanswered_slot(args, iso);
    if (s == nullptr)
        return;
    int rc = start_response(args, iso, s, length_arg(args[3]));
    if (rc == 0)
        dp_response_flush(s->req); // the head goes out now: the body may take a while
    args.GetReturnValue().Set(rc == 0 && dp_response_body_wanted(s->req));
}

// responseWrite(id, bytes): sends a chunk of a streamed response. Returns undefined when more
// may be written at once, false when the client is gone, or a promise that settles when the
// socket has room again (true) or the client went away (false).
static void ResponseWrite(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr)
        return;
    if (!args[1]->IsUint8Array()) {
        rt_throw_type_error(isolate, "responseWrite: expected a Uint8Array");
        return;
    }
    Local<v8::Uint8Array> u8 = args[1].As<v8::Uint8Array>();
    size_t len = u8->ByteLength();
    // A failed write closes the connection, which tells JS (rt_request_listener's aborted) at once: that
    // may end the request's slot, so hold the request while we use it.
    dp_request *req = s->req;
    dp_request_ref(req);
    int rc = 0;
    if (len > 0) {
        const char *p = static_cast<const char *>(u8->Buffer()->Data()) + u8->ByteOffset();
        rc = dp_response_write(req, p, len);
        if (rc == 0)
            dp_response_flush(req);
    }
    bool gone = rc != 0 || !dp_request_connected(req) || s->req != req;
    bool writable = gone || dp_response_writable(req);
    dp_request_unref(req);
    if (gone) {
        args.GetReturnValue().Set(false);
        return;
    }
    if (writable)
        return;
    Local<v8::Promise::Resolver> resolver =
        v8::Promise::Resolver::New(isolate->GetCurrentContext()).ToLocalChecked();
    s->writable_waiter.Reset(isolate, resolver);
    args.GetReturnValue().Set(resolver->GetPromise());
}

// respondPipe(id, status, statusText, length, name, value, ...): the response's body is this
// request's own, untouched body stream: the server moves it (dp_response_pipe_body) and JS
// is done with the request.
static void RespondPipe(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    rt_slot *s = unanswered_slot(args, iso);
    if (s == nullptr)
        return;
    s->is_responded = true;
    dp_request *req = s->req;
    if (start_response(args, iso, s, length_arg(args[3])) == 0) {
        if (s->pipe_fetch != 0) {
            dp_request_body_discard(req);
            if (!rt_fetch_pipe_start(iso, slot_index(args)))
                dp_response_error(req, 502);
        } else if (dp_response_body_wanted(req)) {
            dp_response_pipe_body(req);
        } else {
            dp_request_body_discard(req);
            dp_response_end(req);
        }
    }
    rt_slot_maybe_release(iso, slot_index(args));
}

// responseEnd(id): the streamed response is complete (or abandoned: the client went away).
static void ResponseEnd(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr || s->is_responded)
        return;
    s->is_responded = true;
    if (dp_response_started(s->req))
        dp_response_end(s->req);
    rt_slot_maybe_release(iso, slot_index(args));
}

// fail(id, text): the handler threw or returned something that is not a Response.
static void Fail(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr || s->is_responded)
        return;
    String::Utf8Value text(args.GetIsolate(), args[1]);
    // The request id in hex, as in its access line and app.cpu_limit: one id, one format.
    char id[40];
    snprintf(id, sizeof id, "request_id=%llx", (unsigned long long)dp_request_id(s->req));
    std::string line = std::string("failed: ") + (*text ? *text : "unknown error");
    rt_log_js_error(iso, "app.error", line, id);
    s->is_responded = true;
    dp_response_error(s->req, 500);
    rt_slot_maybe_release(iso, slot_index(args));
}

static void WaitUntilStart(const FunctionCallbackInfo<Value> &args)
{
    rt_slot *s = slot_arg(args, iso_of(args));
    if (s != nullptr)
        s->wait_until++;
}

static void WaitUntilEnd(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    rt_slot *s = slot_arg(args, iso);
    if (s == nullptr || s->wait_until == 0)
        return;
    s->wait_until--;
    rt_slot_maybe_release(iso, slot_index(args));
}

// HTML's structured clone, on V8's serializer. Errors are DOMExceptions named
// DataCloneError, as the spec asks.
class CloneDelegate : public v8::ValueSerializer::Delegate {
  public:
    explicit CloneDelegate(rt_isolate *iso) : iso_(iso) {}
    void ThrowDataCloneError(Local<String> message) override
    {
        Isolate *isolate = iso_->isolate;
        Local<Context> ctx = isolate->GetCurrentContext();
        Local<Value> ctor;
        Local<Value> argv[] = {message, String::NewFromUtf8Literal(isolate, "DataCloneError")};
        Local<Object> ex;
        if (iso_->internal.Get(isolate)
                ->Get(ctx, String::NewFromUtf8Literal(isolate, "DOMException"))
                .ToLocal(&ctor) &&
            ctor->IsFunction() && ctor.As<v8::Function>()->NewInstance(ctx, 2, argv).ToLocal(&ex)) {
            isolate->ThrowException(ex);
            return;
        }
        isolate->ThrowException(v8::Exception::Error(message));
    }

  private:
    rt_isolate *iso_;
};

static void throw_data_clone_error(rt_isolate *iso, const char *msg)
{
    CloneDelegate d(iso);
    d.ThrowDataCloneError(String::NewFromUtf8(iso->isolate, msg).ToLocalChecked());
}

// structuredClone(value, transferList): serializes and deserializes in one go; transferred
// ArrayBuffers are detached and their memory moves to the clone.
static void StructuredClone(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = iso_of(args);
    Isolate *isolate = args.GetIsolate();
    Local<Context> ctx = isolate->GetCurrentContext();
    std::vector<Local<v8::ArrayBuffer>> transfers;
    if (args[1]->IsArray()) {
        Local<v8::Array> list = args[1].As<v8::Array>();
        for (uint32_t i = 0; i < list->Length(); i++) {
            Local<Value> item;
            if (!list->Get(ctx, i).ToLocal(&item))
                return;
            if (!item->IsArrayBuffer()) {
                throw_data_clone_error(iso, "Only ArrayBuffers can be transferred here");
                return;
            }
            Local<v8::ArrayBuffer> ab = item.As<v8::ArrayBuffer>();
            for (auto &seen : transfers)
                if (seen == ab) {
                    throw_data_clone_error(iso,
                                           "An ArrayBuffer is listed twice in the transfer list");
                    return;
                }
            if (ab->WasDetached() || !ab->IsDetachable()) {
                throw_data_clone_error(
                    iso, "An ArrayBuffer in the transfer list is detached or cannot be detached");
                return;
            }
            transfers.push_back(ab);
        }
    }
    CloneDelegate delegate(iso);
    v8::ValueSerializer ser(isolate, &delegate);
    ser.WriteHeader();
    for (size_t i = 0; i < transfers.size(); i++)
        ser.TransferArrayBuffer((uint32_t)i, transfers[i]);
    if (!ser.WriteValue(ctx, args[0]).FromMaybe(false))
        return; // the delegate threw
    std::pair<uint8_t *, size_t> data = ser.Release();
    std::vector<std::shared_ptr<v8::BackingStore>> stores;
    for (auto &ab : transfers) {
        stores.push_back(ab->GetBackingStore());
        ab->Detach();
    }
    v8::ValueDeserializer des(isolate, data.first, data.second);
    for (size_t i = 0; i < stores.size(); i++)
        des.TransferArrayBuffer((uint32_t)i, v8::ArrayBuffer::New(isolate, stores[i]));
    Local<Value> result;
    if (des.ReadHeader(ctx).FromMaybe(false) && des.ReadValue(ctx).ToLocal(&result))
        args.GetReturnValue().Set(result);
    free(data.first); // allocated by the serializer's default (realloc-based) delegate
}

// transferArrayBuffer(buffer): the Streams standard's TransferArrayBuffer: a new ArrayBuffer
// owning the same memory, the given one detached. A detached buffer, or one that cannot be
// detached (WebAssembly.Memory's), is a TypeError.
static void TransferArrayBuffer(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsArrayBuffer()) {
        rt_throw_type_error(isolate, "Expected an ArrayBuffer");
        return;
    }
    Local<v8::ArrayBuffer> ab = args[0].As<v8::ArrayBuffer>();
    if (ab->WasDetached()) {
        rt_throw_type_error(isolate, "The ArrayBuffer is detached");
        return;
    }
    if (!ab->IsDetachable()) {
        rt_throw_type_error(isolate,
                            "The ArrayBuffer cannot be transferred (it is not detachable)");
        return;
    }
    std::shared_ptr<v8::BackingStore> store = ab->GetBackingStore();
    ab->Detach();
    args.GetReturnValue().Set(v8::ArrayBuffer::New(isolate, store));
}

// isDetached(buffer): true for a detached ArrayBuffer.
static void IsDetached(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set(args[0]->IsArrayBuffer() &&
                              args[0].As<v8::ArrayBuffer>()->WasDetached());
}

// isPromise(value): whether value is a promise (instanceof would ask the app's
// Promise[Symbol.hasInstance]).
static void IsPromise(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set(args[0]->IsPromise());
}

// isProxy(value): whether value is a Proxy, whose traps make every step of a WebIDL
// conversion observable (JS itself cannot tell).
static void IsProxy(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set(args[0]->IsProxy());
}

// isSharedArrayBuffer(value): WebIDL's [AllowShared] distinction, which JS cannot spoof.
static void IsSharedArrayBuffer(const FunctionCallbackInfo<Value> &args)
{
    args.GetReturnValue().Set(args[0]->IsSharedArrayBuffer());
}

// randomFill(view): fills an integer typed array from OpenSSL's CSPRNG.
static void RandomFill(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    if (!args[0]->IsArrayBufferView()) {
        rt_throw_type_error(isolate, "randomFill: expected a typed array");
        return;
    }
    Local<v8::ArrayBufferView> view = args[0].As<v8::ArrayBufferView>();
    size_t len = view->ByteLength();
    if (len == 0)
        return;
    auto *p = static_cast<unsigned char *>(view->Buffer()->Data()) + view->ByteOffset();
    if (RAND_bytes(p, (int)len) != 1)
        isolate->ThrowException(v8::Exception::Error(
            String::NewFromUtf8Literal(isolate, "the random number generator failed")));
}

// The natives on `binding`. Their addresses also go into the snapshot's external reference
// table (snapshot.cc): a function in the startup snapshot refers to its C++ callback by its
// index there, so this list is the one place a native is added.
static const rt_native kNatives[] = {
    {"log", Log},
    {"print", Print},
    {"reportError", ReportError},
    {"now", Now},
    {"timerArm", TimerArm},
    {"timerStop", TimerStop},
    {"timerEnter", TimerEnter},
    {"currentRequest", CurrentRequest},
    {"structuredClone", StructuredClone},
    {"randomFill", RandomFill},
    {"transferArrayBuffer", TransferArrayBuffer},
    {"isDetached", IsDetached},
    {"isPromise", IsPromise},
    {"isSharedArrayBuffer", IsSharedArrayBuffer},
    {"isProxy", IsProxy},
    {"runMicrotasks", RunMicrotasks},
    {"encodeUtf8", EncodeUtf8},
    {"encodeUtf8Into", EncodeUtf8Into},
    {"decodeUtf8", DecodeUtf8},
    {"requestHeaders", RequestHeaders},
    {"readBody", ReadBody},
    {"readBodyChunk", ReadBodyChunk},
    {"cancelBody", CancelBody},
    {"respond", Respond},
    {"responseStart", ResponseStart},
    {"responseWrite", ResponseWrite},
    {"responseEnd", ResponseEnd},
    {"respondPipe", RespondPipe},
    {"fail", Fail},
    {"waitUntilStart", WaitUntilStart},
    {"waitUntilEnd", WaitUntilEnd},
    {"shutdownDone", ShutdownDone},
};

const rt_native *rt_binding_natives(size_t *n)
{
    *n = sizeof kNatives / sizeof kNatives[0];
    return kNatives;
}

// Every table of natives, for rt_make_binding and the snapshot's external references.
extern const rt_natives_fn rt_native_lists[] = {
    rt_binding_natives,     rt_encoding_natives,   rt_idna_natives,
    rt_compression_natives, rt_fetch_natives,      rt_crypto_natives,
    rt_crypto_ec_natives,   rt_crypto_rsa_natives, nullptr};

Local<Object> rt_make_binding(Isolate *isolate, Local<Context> ctx)
{
    Local<Object> binding = Object::New(isolate);
    size_t n = 0;
    for (const rt_natives_fn *list = rt_native_lists; *list != nullptr; list++) {
        const rt_native *natives = (*list)(&n);
        for (size_t i = 0; i < n; i++) {
            // No function data: a snapshot cannot hold a pointer to this process's objects,
            // so each native finds its rt_isolate through the v8::Isolate (rt_isolate_of).
            Local<v8::Function> fn = v8::Function::New(ctx, natives[i].fn, Local<Value>(), 0,
                                                       v8::ConstructorBehavior::kThrow)
                                         .ToLocalChecked();
            rt_ignore(binding->Set(
                ctx, String::NewFromUtf8(isolate, natives[i].name).ToLocalChecked(), fn));
        }
    }
    rt_ignore(binding->Set(ctx, String::NewFromUtf8Literal(isolate, "version"),
                           String::NewFromUtf8Literal(isolate, NANO_VERSION)));
    return binding;
}
