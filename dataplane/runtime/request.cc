// request.cc: a request inside an isolate: its slot (the id JS names it by), its body chunks
// handed to JS, the events the server sends it (rt_request_listener), rt_call_fetch, and
// failing requests from outside JS.
#include "runtime_int.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <jansson.h>

extern "C" {
#include "alloc.h"
#include "egress.h"
#include "log.h"
}

using v8::Context;
using v8::Function;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

rt_slot *rt_slot_get(rt_isolate *iso, double id)
{
    if (!(id >= 0) || id > 9007199254740991.0)
        return nullptr;
    uint64_t v = (uint64_t)id;
    uint32_t index = (uint32_t)(v & (kMaxSlots - 1));
    uint32_t gen = (uint32_t)(v >> kSlotBits);
    if (index >= iso->slots.size())
        return nullptr;
    rt_slot *s = &iso->slots[index];
    return s->req != nullptr && s->gen == gen ? s : nullptr;
}

static uint32_t slot_acquire(rt_isolate *iso, dp_request *req)
{
    uint32_t index;
    if (!iso->free_slots.empty()) {
        index = iso->free_slots.back();
        iso->free_slots.pop_back();
    } else {
        index = (uint32_t)iso->slots.size();
        iso->slots.emplace_back();
    }
    rt_slot *s = &iso->slots[index];
    s->req = req;
    s->wait_until = 0;
    s->is_responded = false;
    s->js_ns = 0;
    s->n_subrequests = 0;
    s->n_fetches = 0;
    s->pipe_fetch = 0;
    s->upload_fetch = 0;
    dp_request_ref(req);
    dp_request_set_rt_slot(req, index);
    iso->n_pending++;
    return index;
}

void rt__slot_release(rt_isolate *iso, uint32_t index)
{
    rt_slot *s = &iso->slots[index];
    dp_request *req = s->req;
    rt_fetch_release_slot(iso, index); // before gen++: fetches name the slot by index
    s->req = nullptr;
    s->gen++;
    s->body_waiter.Reset();
    s->writable_waiter.Reset();
    s->is_body_whole = false;
    iso->free_slots.push_back(index);
    iso->n_pending--;
    dp_request_set_rt_slot(req, UINT32_MAX);
    // The connection may still report body bytes or an abort for req: to no isolate now,
    // since this one may be freed before the connection lets go of req.
    if (dp_request_listener_ud(req) == iso)
        dp_request_set_listener(req, nullptr, nullptr);
    if (iso->hooks.request_done != nullptr)
        iso->hooks.request_done(iso->hooks.ud, req);
    dp_request_unref(req);
}

void rt_slot_maybe_release(rt_isolate *iso, uint32_t index)
{
    rt_slot *s = &iso->slots[index];
    if (s->req != nullptr && s->is_responded && s->wait_until == 0)
        rt__slot_release(iso, index);
}

static void free_body_chunk(void *data, size_t len, void *iso_ptr)
{
    nano_free(data);
    auto *iso = static_cast<rt_isolate *>(iso_ptr);
    iso->body_bytes_freed.fetch_add((int64_t)len);
    iso->allocator->release_adopted(len);
}

// An ArrayBuffer adopting the body bytes the server received so far (no copy).
//
// V8 starts a GC when external memory grows 64 MiB past its last mark, and a streamed body
// makes little else that would: without help, up to 64 MiB of read chunks wait as garbage.
// Reporting each chunk once more (and taking that back when it is freed) halves that.
//
// The chunk counts against the app's memory limit for as long as JS holds it (allocator.cc):
// an app that keeps request bodies holds that memory as surely as one keeping its own arrays,
// and a whole-body read is one chunk of up to max_body. It is never refused here: the bytes
// are in memory already, and what one read hands over is bounded by max_body (streamed reads
// by the body's high-water mark); refusing would fail reads of bodies whose earlier chunks are
// merely garbage not yet collected. While held it leaves that much less room to new
// ArrayBuffers, and an app found holding more than its limit after a full GC is discarded.
Local<v8::ArrayBuffer> rt_adopt_bytes(rt_isolate *iso, void *data, size_t len)
{
    std::shared_ptr<v8::BackingStore> store;
    if (data != nullptr) {
        store = v8::ArrayBuffer::NewBackingStore(data, len, free_body_chunk, iso);
        iso->allocator->adopt(len);
        int64_t freed = iso->body_bytes_freed.exchange(0);
        iso->isolate->AdjustAmountOfExternalAllocatedMemory((int64_t)len - freed);
    } else {
        store = v8::ArrayBuffer::NewBackingStore(iso->isolate, 0);
    }
    return v8::ArrayBuffer::New(iso->isolate, std::move(store));
}

static Local<v8::ArrayBuffer> take_body(rt_isolate *iso, rt_slot *slot)
{
    size_t len = 0;
    void *data = dp_request_take_body(slot->req, &len);
    return rt_adopt_bytes(iso, data, len);
}

Local<Value> rt_body_failed_error(rt_isolate *iso)
{
    return v8::Exception::TypeError(String::NewFromUtf8Literal(
        iso->isolate, "The request body could not be read: the client went away, sent a "
                      "malformed or too large body, or the body was canceled or left unread "
                      "when the response ended"));
}

// Settles the pending body read of slot, if it can be: a whole-body read once the body is
// complete; a read of the next bytes as soon as some arrived (null at the end).
void rt_settle_body(rt_isolate *iso, rt_slot *slot, Local<Context> ctx)
{
    Isolate *isolate = iso->isolate;
    if (slot->body_waiter.IsEmpty())
        return;
    dp_request *req = slot->req;
    bool complete = dp_request_body_complete(req);
    bool has_bytes = dp_request_body(req)->len > 0;
    if (!complete && (slot->is_body_whole || !has_bytes))
        return;
    Local<v8::Promise::Resolver> resolver = slot->body_waiter.Get(isolate);
    slot->body_waiter.Reset();
    if (complete && dp_request_body_failed(req)) {
        rt_ignore(resolver->Reject(ctx, rt_body_failed_error(iso)));
        return;
    }
    if (!slot->is_body_whole && !has_bytes) {
        rt_ignore(resolver->Resolve(ctx, v8::Null(isolate))); // the end of the body
        return;
    }
    rt_ignore(resolver->Resolve(ctx, take_body(iso, slot)));
}

Local<v8::ArrayBuffer> rt_take_body(rt_isolate *iso, rt_slot *slot)
{
    return take_body(iso, slot);
}

static rt_slot *slot_of(rt_isolate *iso, dp_request *req, uint32_t *index_out)
{
    uint32_t index = dp_request_rt_slot(req);
    if (iso == nullptr || index >= iso->slots.size() || iso->slots[index].req != req)
        return nullptr;
    *index_out = index;
    return &iso->slots[index];
}

static void request_body_event(void *ud, dp_request *req)
{
    rt_isolate *iso = static_cast<rt_isolate *>(ud);
    uint32_t index;
    rt_slot *s = slot_of(iso, req, &index);
    if (s != nullptr && s->upload_fetch != 0) {
        rt_fetch_upload_event(iso, index);
        return;
    }
    if (s == nullptr || s->body_waiter.IsEmpty() || iso->is_broken)
        return;
    JsEntry js(iso, index);
    rt_settle_body(iso, s, js.context());
}

static void request_writable(void *ud, dp_request *req)
{
    rt_isolate *iso = static_cast<rt_isolate *>(ud);
    uint32_t index;
    rt_slot *s = slot_of(iso, req, &index);
    if (s != nullptr && s->pipe_fetch != 0) {
        rt_fetch_pipe_writable(iso, index);
        return;
    }
    if (s == nullptr || s->writable_waiter.IsEmpty() || iso->is_broken)
        return;
    JsEntry js(iso, index);
    Local<v8::Promise::Resolver> resolver = s->writable_waiter.Get(iso->isolate);
    s->writable_waiter.Reset();
    rt_ignore(resolver->Resolve(js.context(), v8::True(iso->isolate)));
}

static void request_aborted(void *ud, dp_request *req)
{
    rt_isolate *iso = static_cast<rt_isolate *>(ud);
    uint32_t index;
    rt_slot *s = slot_of(iso, req, &index);
    if (s != nullptr && s->pipe_fetch != 0) {
        rt_fetch_pipe_writable(iso, index); // sees the client gone: stops the transfer
        return;
    }
    if (s == nullptr || s->is_responded || iso->is_broken)
        return;
    JsEntry js(iso, index);
    Isolate *isolate = iso->isolate;
    Local<Context> ctx = js.context();
    if (!s->writable_waiter.IsEmpty()) {
        // The writer stops waiting; it learns of the abort from requestAborted below.
        Local<v8::Promise::Resolver> resolver = s->writable_waiter.Get(isolate);
        s->writable_waiter.Reset();
        rt_ignore(resolver->Resolve(ctx, v8::False(isolate)));
    }
    rt_fetch_client_gone(iso, index, ctx);
    double id = (double)(((uint64_t)s->gen << kSlotBits) | index);
    Local<Value> args[] = {v8::Number::New(isolate, id)};
    TryCatch tc(isolate);
    if (iso->request_aborted.Get(isolate)->Call(ctx, v8::Undefined(isolate), 1, args).IsEmpty())
        rt_log_js_error(iso, "app.abort_failed", rt_describe_exception(iso, ctx, tc));
}

extern "C" const dp_request_listener rt_request_listener = {request_body_event, request_writable,
                                                            request_aborted};

void rt_isolate_set_outbound(rt_isolate *iso, nano_egress *egress_app, uint32_t subrequests)
{
    nano_egress *old = iso->egress_app;
    iso->egress_app = nano_egress_ref(egress_app);
    nano_egress_unref(old);
    iso->subrequest_limit = subrequests;
}

size_t rt_isolate_pending_requests(const rt_isolate *iso)
{
    return iso->n_pending;
}

static Local<String> one_byte(Isolate *isolate, nano_str s)
{
    return String::NewFromOneByte(isolate, (const uint8_t *)s.ptr, v8::NewStringType::kNormal,
                                  (int)s.len)
        .ToLocalChecked();
}

static const char *const kMethodNames[7] = {"GET",    "POST",    "HEAD", "PUT",
                                            "DELETE", "OPTIONS", "PATCH"};

// The request method as a JS string: one made per isolate for the common ones.
static Local<String> method_string(rt_isolate *iso, nano_str m)
{
    Isolate *isolate = iso->isolate;
    for (size_t i = 0; i < sizeof kMethodNames / sizeof kMethodNames[0]; i++) {
        if (m.len != strlen(kMethodNames[i]) || memcmp(m.ptr, kMethodNames[i], m.len) != 0)
            continue;
        if (iso->method_names[i].IsEmpty())
            iso->method_names[i].Set(isolate, one_byte(isolate, m));
        return iso->method_names[i].Get(isolate);
    }
    return one_byte(isolate, m);
}

int rt_call_fetch(rt_isolate *iso, dp_request *req)
{
    if (iso->is_broken)
        return NANO_ESTATE;
    uint32_t index = slot_acquire(iso, req);
    JsEntry js(iso, index);
    Isolate *isolate = iso->isolate;
    Local<Context> ctx = js.context();
    double id = (double)(((uint64_t)iso->slots[index].gen << kSlotBits) | index);
    Local<Value> args[] = {
        v8::Number::New(isolate, id),
        method_string(iso, dp_request_method(req)),
        one_byte(isolate, dp_request_url(req)),
        v8::Boolean::New(isolate, dp_request_has_body(req)),
    };
    TryCatch tc(isolate);
    if (iso->dispatch.Get(isolate)->Call(ctx, v8::Undefined(isolate), 4, args).IsEmpty()) {
        // A limit stopped the app (the watchdog's CPU limit, or the heap limit): not a runtime
        // failure. As the outermost entry unwinds, after_outermost_entry answers this request
        // 500 and logs app.cpu_limit with its id; a broken isolate's requests all get 503
        // when the worker discards it.
        bool stopped = tc.HasTerminated() && (iso->is_broken || iso->is_terminating.load());
        if (stopped && (iso->is_broken || iso->terminated_slot.load() == index))
            return 0;
        // dispatch catches the app's errors itself; reaching here means the runtime failed.
        if (!stopped)
            rt_log_js_error(iso, "app.dispatch_failed", rt_describe_exception(iso, ctx, tc));
        rt_slot *s = &iso->slots[index];
        if (s->req == req && !s->is_responded) {
            s->is_responded = true;
            rt_slot_maybe_release(iso, index);
        }
        return NANO_EJS;
    }
    return 0;
}

void rt_request_fail(rt_isolate *iso, dp_request *req, int status)
{
    uint32_t index;
    rt_slot *s = slot_of(iso, req, &index);
    if (s == nullptr)
        return;
    s->is_responded = true;
    s->wait_until = 0;
    s->body_waiter.Reset();
    s->writable_waiter.Reset();
    dp_response_error(req, status); // or closes the connection if the response had started
    rt__slot_release(iso, index);
}

void rt_isolate_fail_all(rt_isolate *iso, int status)
{
    for (uint32_t i = 0; i < iso->slots.size(); i++) {
        dp_request *req = iso->slots[i].req;
        if (req != nullptr)
            rt_request_fail(iso, req, status);
    }
}
