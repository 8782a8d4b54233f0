// fetch.cc: the native half of outbound fetch() (61_fetch_client.js): one dp_xfer per hop,
// named to JS by a number. JS asks for the response head, reads body chunks and feeds an
// upload; each returns at once when it can, else a promise that the transfer's hooks settle.
//
// A fetch belongs to the request whose JS started it (iso->current_slot): it counts against
// that request's subrequest limit and is stopped when the request lets go (rt_fetch_release_slot),
// so nothing an app starts outlives the request it served. Fetches started by JS that runs
// for no request (module code, unowned timers, the shutdown event) are bounded in number.
// Isolate thread only.
#include "runtime_int.h"

#include <arpa/inet.h>
#include <cstring>
#include <strings.h>
#include <string>
#include <unordered_map>

extern "C" {
#include "alloc.h"
#include "client/client.h"
#include "egress.h"
#include "log.h"
#include "request.h"
}

using v8::Array;
using v8::ArrayBuffer;
using v8::Context;
using v8::FunctionCallbackInfo;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Object;
using v8::Promise;
using v8::String;
using v8::Value;

// Fetches in flight that belong to no request, per isolate.
constexpr size_t kMaxUnownedFetches = 64;
// Fetches alive per isolate (each may hold a connection, a socket of the worker's process):
// one app cannot take the descriptors and connections the other apps of its thread need.
constexpr size_t kMaxFetches = 256;
// Connect timeout of every hop; the request's wall limit bounds the whole of it.
constexpr uint64_t kConnectTimeoutMs = 10000;

struct rt_fetch {
    rt_isolate *iso = nullptr;
    uint32_t id = 0;
    uint32_t slot = kNoSlot; // the request it belongs to, or kNoSlot
    uint32_t slot_gen = 0;
    bool is_counted = false; // in its owner's count (fetch_set_owner)
    dp_xfer *xfer = nullptr;
    std::string url;    // for errors and logs
    std::string detail; // why it failed, in curl's or the egress check's words
    v8::Global<Promise::Resolver> head_waiter;
    v8::Global<Promise::Resolver> read_waiter;
    v8::Global<Promise::Resolver> send_waiter;
    // Piped: the body goes from the transfer to this request's response without JS.
    dp_request *pipe_req = nullptr; // a reference while piping
    uint32_t pipe_slot = kNoSlot;
    // Uploading an incoming request's body as it arrives, without JS.
    dp_request *upload_req = nullptr; // a reference while uploading
    uint32_t upload_slot = kNoSlot;
};

struct rt_fetches {
    dp_client *client = nullptr; // the worker's (borrowed) or our own
    bool owns_client = false;
    std::unordered_map<uint32_t, rt_fetch *> live;
    uint32_t next_id = 1;
    size_t n_unowned = 0;
};

static rt_fetches *fetches_of(rt_isolate *iso)
{
    if (iso->fetches == nullptr)
        iso->fetches = new rt_fetches();
    return iso->fetches;
}

// Stops a pipe: the response ends (ok) or its connection closes (the body cannot be
// completed); the slot's hold is let go. The caller releases the slot if it can.
static void pipe_stop(rt_fetch *f, bool ok)
{
    dp_request *req = f->pipe_req;
    if (req == nullptr)
        return;
    f->pipe_req = nullptr;
    if (ok)
        dp_response_end(req);
    else
        dp_response_error(req, 502); // started already: closes the connection
    rt_isolate *iso = f->iso;
    if (f->pipe_slot < iso->slots.size()) {
        rt_slot &s = iso->slots[f->pipe_slot];
        if (s.req == req) {
            s.pipe_fetch = 0;
            s.wait_until--;
        }
    }
    dp_request_unref(req);
}

static void upload_stop(rt_fetch *f)
{
    dp_request *req = f->upload_req;
    if (req == nullptr)
        return;
    f->upload_req = nullptr;
    rt_isolate *iso = f->iso;
    if (f->upload_slot < iso->slots.size() && iso->slots[f->upload_slot].req == req)
        iso->slots[f->upload_slot].upload_fetch = 0;
    dp_request_unref(req);
}

// Hands the transfer the body bytes the server has received while fewer than kUploadQueued
// wait to be sent: beyond that the server holds the client back (request.h), so the upload
// goes at the pace of the slower side and holds a bounded amount here.
constexpr size_t kUploadQueued = 256 * 1024;

static void upload_feed(rt_fetch *f)
{
    dp_request *req = f->upload_req;
    if (req == nullptr || dp_xfer_is_done(f->xfer) || dp_xfer_send_queued(f->xfer) >= kUploadQueued)
        return;
    size_t len = 0;
    void *p = dp_request_take_body(req, &len);
    if (p != nullptr) {
        dp_xfer_send(f->xfer, p, len, nano_free, p);
        return;
    }
    if (dp_request_body_complete(req)) {
        dp_xfer_send_end(f->xfer, !dp_request_body_failed(req));
        upload_stop(f);
    }
}

void rt_fetch_upload_event(rt_isolate *iso, uint32_t index)
{
    rt_fetches *fs = iso->fetches;
    if (fs == nullptr)
        return;
    auto it = fs->live.find(iso->slots[index].upload_fetch);
    if (it != fs->live.end())
        upload_feed(it->second);
}

// A fetch belongs to a request (its slot; counted in rt_slot::n_fetches, so a request that
// made none costs nothing to release) or to none (counted in n_unowned).
static void fetch_unset_owner(rt_fetch *f)
{
    rt_isolate *iso = f->iso;
    if (!f->is_counted)
        return;
    f->is_counted = false;
    if (f->slot == kNoSlot)
        iso->fetches->n_unowned--;
    else if (f->slot < iso->slots.size() && iso->slots[f->slot].gen == f->slot_gen &&
             iso->slots[f->slot].n_fetches > 0)
        iso->slots[f->slot].n_fetches--;
}

static void fetch_set_owner(rt_fetch *f, uint32_t slot, uint32_t gen)
{
    rt_isolate *iso = f->iso;
    fetch_unset_owner(f);
    f->slot = slot;
    f->slot_gen = gen;
    f->is_counted = true;
    if (slot == kNoSlot)
        iso->fetches->n_unowned++;
    else
        iso->slots[slot].n_fetches++;
}

static void fetch_free(rt_fetch *f)
{
    rt_fetches *fs = f->iso->fetches;
    pipe_stop(f, false);
    upload_stop(f);
    fs->live.erase(f->id);
    fetch_unset_owner(f);
    dp_xfer_free(f->xfer);
    delete f;
}

static rt_fetch *fetch_arg(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = rt_isolate_of(args.GetIsolate());
    if (iso->fetches == nullptr || args.Length() < 1 || !args[0]->IsNumber())
        return nullptr;
    auto it = iso->fetches->live.find((uint32_t)args[0].As<v8::Number>()->Value());
    return it == iso->fetches->live.end() ? nullptr : it->second;
}

// The slot to charge JS that a fetch's hook runs: its request's, while that request lives.
static uint32_t entry_slot(rt_fetch *f)
{
    if (f->slot == kNoSlot || f->slot >= f->iso->slots.size())
        return kNoSlot;
    const rt_slot &s = f->iso->slots[f->slot];
    return s.req != nullptr && s.gen == f->slot_gen ? f->slot : kNoSlot;
}

static Local<Value> fetch_error(rt_isolate *iso, rt_fetch *f)
{
    dp_xfer_error e = dp_xfer_result(f->xfer);
    std::string msg = "fetch " + f->url + " failed: ";
    switch (e) {
    case DP_XFER_DNS: msg += "DNS lookup failed"; break;
    case DP_XFER_REFUSED: msg += "could not connect"; break;
    case DP_XFER_DENIED: msg += "refused by the egress policy"; break;
    case DP_XFER_TLS: msg += "TLS error"; break;
    case DP_XFER_TIMEOUT:
        msg += f->slot == kNoSlot ? "timed out (a fetch no request owns is bounded by wall_time)"
                                  : "timed out";
        break;
    case DP_XFER_RESET: msg += "the connection was reset or closed early"; break;
    case DP_XFER_PROTOCOL: msg += "the response is not valid HTTP"; break;
    case DP_XFER_TOO_LARGE: msg += "the response head is too large"; break;
    case DP_XFER_BODY: msg += "the request body could not be read"; break;
    default: msg += "network error"; break;
    }
    if (!f->detail.empty())
        msg += " (" + f->detail + ")";
    return v8::Exception::TypeError(
        String::NewFromUtf8(iso->isolate, msg.c_str()).ToLocalChecked());
}

// An ArrayBuffer for the bytes taken from the transfer (no copy; counted like request body
// chunks: runtime.cc rt_adopt_bytes).
static Local<Value> take_chunk(rt_isolate *iso, rt_fetch *f)
{
    size_t len = 0;
    void *p = dp_xfer_take(f->xfer, &len);
    if (p == nullptr)
        return v8::Null(iso->isolate);
    return rt_adopt_bytes(iso, p, len);
}

// The head as JS wants it: [status, reason, [name, value, ...], httpVersion]. Lines whose
// name is not a token or whose value holds NUL, CR or LF are dropped (they cannot be Headers).
static bool is_token_char(unsigned char ch)
{
    static const char *const extra = "!#$%&'*+-.^_`|~";
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != 0 && strchr(extra, ch) != nullptr);
}

static Local<Value> head_value(rt_isolate *iso, rt_fetch *f)
{
    Isolate *isolate = iso->isolate;
    size_t len = 0;
    const char *lines = dp_xfer_head_lines(f->xfer, &len);
    // The flat list is made in one call: an element set through the API costs a generic
    // store each (more than the strings themselves).
    std::vector<Local<Value>> items;
    items.reserve(32);
    for (size_t at = 0; at < len;) {
        const char *line = lines + at;
        size_t line_len = strlen(line);
        at += line_len + 1;
        const char *colon = static_cast<const char *>(memchr(line, ':', line_len));
        if (colon == nullptr || colon == line)
            continue;
        bool ok = true;
        for (const char *p = line; p < colon && ok; p++)
            ok = is_token_char((unsigned char)*p);
        const char *v = colon + 1;
        const char *end = line + line_len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        for (const char *p = v; p < end && ok; p++)
            ok = *p != '\0' && *p != '\r' && *p != '\n';
        if (!ok)
            continue;
        // Header bytes are a ByteString: each byte one code unit. Names are lowercased, as
        // Headers keeps them.
        char lower[256];
        size_t name_len = (size_t)(colon - line);
        const uint8_t *name_bytes = (const uint8_t *)line;
        if (name_len <= sizeof(lower)) {
            for (size_t i = 0; i < name_len; i++)
                lower[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] + 32 : line[i]);
            name_bytes = (const uint8_t *)lower;
        } else {
            continue; // no real header name is this long
        }
        Local<String> name = String::NewFromOneByte(isolate, name_bytes, v8::NewStringType::kNormal,
                                                    (int)name_len)
                                 .ToLocalChecked();
        Local<String> value = String::NewFromOneByte(isolate, (const uint8_t *)v,
                                                     v8::NewStringType::kNormal, (int)(end - v))
                                  .ToLocalChecked();
        items.push_back(name);
        items.push_back(value);
    }
    Local<Array> list = Array::New(isolate, items.data(), items.size());
    const char *reason = dp_xfer_reason(f->xfer);
    Local<Value> parts[] = {
        Integer::New(isolate, dp_xfer_status(f->xfer)),
        String::NewFromOneByte(isolate, (const uint8_t *)reason).ToLocalChecked(),
        list,
        Integer::New(isolate, dp_xfer_http_version(f->xfer)),
    };
    return Array::New(isolate, parts, 4);
}

// --- piping a response body straight to the client ----------------------------------

// Moves what the transfer has to the client's socket until one side must wait: the socket
// (rt_fetch_pipe_writable resumes) or the transfer (on_data / on_done resume).
static void pipe_pump(rt_fetch *f)
{
    rt_isolate *iso = f->iso;
    dp_request *req = f->pipe_req;
    uint32_t index = f->pipe_slot;
    for (;;) {
        if (!dp_request_connected(req)) {
            fetch_free(f); // the client went away: stop the transfer
            rt_slot_maybe_release(iso, index);
            return;
        }
        if (!dp_response_writable(req))
            return;
        size_t len = 0;
        void *p = dp_xfer_take(f->xfer, &len);
        if (p != nullptr) {
            int rc = dp_response_write(req, p, len);
            nano_free(p);
            if (rc == 0)
                dp_response_flush(req);
            continue;
        }
        if (!dp_xfer_is_done(f->xfer))
            return;
        pipe_stop(f, dp_xfer_result(f->xfer) == DP_XFER_OK);
        fetch_free(f);
        rt_slot_maybe_release(iso, index);
        return;
    }
}

bool rt_fetch_pipe_start(rt_isolate *iso, uint32_t index)
{
    rt_slot &s = iso->slots[index];
    rt_fetches *fs = iso->fetches;
    if (fs == nullptr)
        return false;
    auto it = fs->live.find(s.pipe_fetch);
    if (it == fs->live.end())
        return false;
    rt_fetch *f = it->second;
    // The responding request owns the transfer from now on (it may not be the one that
    // started it): it ends with this response.
    fetch_set_owner(f, index, s.gen);
    s.wait_until++; // the slot stays until the pipe ends (pipe_stop)
    f->pipe_req = s.req;
    f->pipe_slot = index;
    dp_request_ref(s.req);
    if (!dp_response_body_wanted(s.req)) {
        pipe_stop(f, true);
        fetch_free(f);
        return true;
    }
    pipe_pump(f);
    return true;
}

void rt_fetch_pipe_writable(rt_isolate *iso, uint32_t index)
{
    rt_fetches *fs = iso->fetches;
    if (fs == nullptr)
        return;
    auto it = fs->live.find(iso->slots[index].pipe_fetch);
    if (it != fs->live.end() && it->second->pipe_req != nullptr)
        pipe_pump(it->second);
}

// --- hooks (from the client's dispatch, outside curl) ---------------------------------

static void settle(rt_fetch *f, v8::Global<Promise::Resolver> *waiter, Local<Context> ctx,
                   Local<Value> value, bool ok)
{
    Local<Promise::Resolver> r = waiter->Get(f->iso->isolate);
    waiter->Reset();
    if (ok)
        rt_ignore(r->Resolve(ctx, value));
    else
        rt_ignore(r->Reject(ctx, value));
}

static void on_head(void *ud)
{
    auto *f = static_cast<rt_fetch *>(ud);
    rt_isolate *iso = f->iso;
    if (f->head_waiter.IsEmpty() || iso->is_broken)
        return;
    JsEntry js(iso, entry_slot(f));
    settle(f, &f->head_waiter, js.context(), head_value(iso, f), true);
}

static void on_data(void *ud)
{
    auto *f = static_cast<rt_fetch *>(ud);
    rt_isolate *iso = f->iso;
    if (f->pipe_req != nullptr) {
        pipe_pump(f);
        return;
    }
    if (f->read_waiter.IsEmpty() || iso->is_broken)
        return;
    if (dp_xfer_buffered(f->xfer) == 0 && !dp_xfer_is_done(f->xfer))
        return;
    JsEntry js(iso, entry_slot(f));
    if (dp_xfer_buffered(f->xfer) == 0 && dp_xfer_result(f->xfer) != DP_XFER_OK)
        settle(f, &f->read_waiter, js.context(), fetch_error(iso, f), false);
    else
        settle(f, &f->read_waiter, js.context(), take_chunk(iso, f), true);
}

static void on_send_ready(void *ud)
{
    auto *f = static_cast<rt_fetch *>(ud);
    rt_isolate *iso = f->iso;
    if (f->upload_req != nullptr) {
        upload_feed(f);
        return;
    }
    if (f->send_waiter.IsEmpty() || iso->is_broken)
        return;
    JsEntry js(iso, entry_slot(f));
    settle(f, &f->send_waiter, js.context(), v8::True(iso->isolate), true);
}

static void on_done(void *ud, dp_xfer_error error, const char *detail)
{
    auto *f = static_cast<rt_fetch *>(ud);
    rt_isolate *iso = f->iso;
    if (error != DP_XFER_OK) {
        f->detail = detail;
        // One line per failed hop, with the app (console prefix) and curl's own words.
        uint32_t slot = entry_slot(f);
        unsigned long long rid =
            slot == kNoSlot ? 0 : (unsigned long long)dp_request_id(iso->slots[slot].req);
        NANO_INFO("fetch.failed", "app=%s request_id=%llx error=%s url=\"%s\" detail=\"%s\"",
                  iso->name.c_str(), rid, dp_xfer_error_name(error), f->url.c_str(), detail);
    }
    if (f->pipe_req != nullptr) {
        pipe_pump(f);
        return;
    }
    if (iso->is_broken)
        return;
    if (f->head_waiter.IsEmpty() && f->read_waiter.IsEmpty() && f->send_waiter.IsEmpty())
        return;
    JsEntry js(iso, entry_slot(f));
    Local<Context> ctx = js.context();
    if (!f->head_waiter.IsEmpty()) {
        if (dp_xfer_has_head(f->xfer)) {
            settle(f, &f->head_waiter, ctx, head_value(iso, f), true);
        } else {
            settle(f, &f->head_waiter, ctx, fetch_error(iso, f), false);
        }
    }
    if (!f->send_waiter.IsEmpty())
        settle(f, &f->send_waiter, ctx, v8::False(iso->isolate), true); // nothing more to send
    if (!f->read_waiter.IsEmpty()) {
        if (dp_xfer_buffered(f->xfer) > 0)
            settle(f, &f->read_waiter, ctx, take_chunk(iso, f), true);
        else if (error == DP_XFER_OK)
            settle(f, &f->read_waiter, ctx, v8::Null(iso->isolate), true);
        else
            settle(f, &f->read_waiter, ctx, fetch_error(iso, f), false);
    }
}

// --- loops: RFC 8586 CDN-Loop ------------------------------------------------------------
//
// Every fetch says it went through NANO ("CDN-Loop: <what the incoming request said>, nano"),
// whatever the app set: an app that fetches its own node (or a ring of apps and nodes that
// fetch each other) sees the count grow, and past kMaxLoopHops its fetch is refused rather
// than multiplying requests until every thread is busy.
constexpr int kMaxLoopHops = 16;

static std::string incoming_loop(rt_isolate *iso, uint32_t slot)
{
    std::string out;
    if (slot == kNoSlot)
        return out;
    dp_request *req = iso->slots[slot].req;
    for (size_t i = 0, n = dp_request_n_headers(req); i < n; i++) {
        const dp_header *h = dp_request_header(req, i);
        if (h->name.len == 8 && strncasecmp(h->name.ptr, "cdn-loop", 8) == 0 && h->value.len > 0) {
            if (!out.empty())
                out += ", ";
            out.append(h->value.ptr, h->value.len);
        }
    }
    return out;
}

static int nano_hops(const std::string &loop)
{
    int n = 0;
    size_t at = 0;
    while (at < loop.size()) {
        size_t end = loop.find(',', at);
        if (end == std::string::npos)
            end = loop.size();
        size_t b = at;
        while (b < end && (loop[b] == ' ' || loop[b] == '\t'))
            b++;
        size_t e = b;
        while (e < end && loop[e] != ';' && loop[e] != ' ' && loop[e] != '\t')
            e++;
        if (e - b == 4 && strncasecmp(loop.data() + b, "nano", 4) == 0)
            n++;
        at = end + 1;
    }
    return n;
}

// --- the egress check (inside curl: no JS, no allocation) --------------------------------

static bool check_address(void *ud, const char *host, const struct sockaddr *addr, char *why,
                          size_t why_len)
{
    auto *f = static_cast<rt_fetch *>(ud);
    rt_isolate *iso = f->iso;
    if (iso->egress_node == nullptr && iso->egress_app == nullptr)
        return true;
    return nano_egress_check(iso->egress_node, iso->egress_app, host, addr, why, why_len);
}

// --- natives ---------------------------------------------------------------------------

static Local<Promise> waiter(const FunctionCallbackInfo<Value> &args,
                             v8::Global<Promise::Resolver> *slot)
{
    Isolate *isolate = args.GetIsolate();
    Local<Promise::Resolver> r =
        Promise::Resolver::New(isolate->GetCurrentContext()).ToLocalChecked();
    slot->Reset(isolate, r);
    return r->GetPromise();
}

struct held_store {
    std::shared_ptr<v8::BackingStore> store;
};

static void release_store(void *ud)
{
    delete static_cast<held_store *>(ud);
}

// fetchStart(method, url, host, headerLines, bodyKind, bodyLen, body?) -> id.
// bodyKind 0: none, 1: sized (body, a Uint8Array, may follow now or through fetchSend), 2: stream.
// body may instead be the id of an incoming request whose untouched body is sent as it
// arrives (fetch(request) of the request being served).
static void FetchStart(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    rt_isolate *iso = rt_isolate_of(isolate);
    Local<Context> ctx = isolate->GetCurrentContext();
    if (args.Length() < 6 || !args[0]->IsString() || !args[1]->IsString() || !args[2]->IsString() ||
        !args[3]->IsArray() || !args[4]->IsInt32() || !args[5]->IsNumber()) {
        rt_throw_type_error(isolate, "fetchStart: bad arguments");
        return;
    }
    rt_fetches *fs = fetches_of(iso);
    if (fs->live.size() >= kMaxFetches) {
        rt_throw_type_error(isolate, "fetch: this app has 256 fetches in flight, the most one "
                                     "isolate may have; wait for some to finish");
        return;
    }
    uint32_t slot = iso->current_slot;
    uint32_t gen = 0;
    if (slot != kNoSlot && slot < iso->slots.size() && iso->slots[slot].req != nullptr) {
        rt_slot &s = iso->slots[slot];
        gen = s.gen;
        if (iso->subrequest_limit > 0 && s.n_subrequests >= iso->subrequest_limit) {
            std::string msg = "fetch: this request has made " + std::to_string(s.n_subrequests) +
                              " subrequests, its limit (limits.subrequests)";
            rt_throw_type_error(isolate, msg.c_str());
            return;
        }
    } else {
        slot = kNoSlot;
        if (fs->n_unowned >= kMaxUnownedFetches) {
            rt_throw_type_error(isolate, "fetch: too many fetches in flight outside any request "
                                         "(64); start them from a request's handler");
            return;
        }
    }
    if (fs->client == nullptr) {
        if (iso->http_client != nullptr) {
            fs->client = iso->http_client;
        } else if (dp_client_new(iso->loop, &fs->client) == 0) {
            fs->owns_client = true;
        } else {
            rt_throw_type_error(isolate, "fetch: the HTTP client could not be set up");
            return;
        }
    }
    String::Utf8Value method(isolate, args[0]);
    String::Utf8Value url(isolate, args[1]);
    String::Utf8Value host(isolate, args[2]);
    Local<Array> lines = args[3].As<Array>();
    std::vector<std::string> header_store;
    std::vector<const char *> headers;
    header_store.reserve(lines->Length());
    for (uint32_t i = 0; i < lines->Length(); i++) {
        Local<Value> v;
        if (!lines->Get(ctx, i).ToLocal(&v) || !v->IsString())
            return;
        // Header names and values are ByteStrings (validated by Headers): latin1, one byte each.
        Local<String> s = v.As<String>();
        std::string line((size_t)s->Length(), '\0');
        s->WriteOneByte(isolate, (uint8_t *)line.data(), 0, s->Length(),
                        String::NO_NULL_TERMINATION);
        header_store.push_back(std::move(line));
    }
    std::string loop = incoming_loop(iso, slot);
    if (nano_hops(loop) >= kMaxLoopHops) {
        std::string msg = "fetch: refused, the request has already passed through NANO " +
                          std::to_string(kMaxLoopHops) + " times (CDN-Loop): a loop";
        rt_throw_type_error(isolate, msg.c_str());
        return;
    }
    header_store.push_back("CDN-Loop: " + (loop.empty() ? std::string("nano") : loop + ", nano"));
    for (const std::string &h : header_store)
        headers.push_back(h.c_str());
    dp_xfer_spec spec = {};
    spec.method = *method;
    spec.url = *url;
    spec.host = *host;
    spec.headers = headers.data();
    spec.n_headers = headers.size();
    spec.body = (dp_xfer_body)args[4].As<v8::Int32>()->Value();
    spec.body_len = (uint64_t)args[5].As<v8::Number>()->Value();
    spec.connect_timeout_ms = kConnectTimeoutMs;
    // A request's fetches end with its context; one that no request owns would otherwise
    // wait on a silent upstream for as long as the isolate lives.
    if (slot == kNoSlot)
        spec.total_timeout_ms = iso->wall_limit_ms;
    auto *f = new rt_fetch();
    f->iso = iso;
    f->id = fs->next_id++;
    if (fs->next_id == 0)
        fs->next_id = 1;
    f->slot = slot;
    f->slot_gen = gen;
    f->url = *url;
    dp_xfer_hooks hooks = {};
    hooks.on_head = on_head;
    hooks.on_data = on_data;
    hooks.on_send_ready = on_send_ready;
    hooks.on_done = on_done;
    hooks.check_address = check_address;
    hooks.ud = f;
    char why[256] = "";
    if (dp_xfer_start(fs->client, &spec, &hooks, &f->xfer, why, sizeof(why)) != 0) {
        std::string msg = "fetch " + f->url + ": " + (why[0] ? why : "could not start");
        delete f;
        rt_throw_type_error(isolate, msg.c_str());
        return;
    }
    fs->live[f->id] = f;
    fetch_set_owner(f, slot, gen);
    if (slot != kNoSlot)
        iso->slots[slot].n_subrequests++; // a hop that started (refused ones above do not count)
    if (args.Length() > 6 && args[6]->IsNumber()) {
        rt_slot *body_slot = rt_slot_get(iso, args[6].As<v8::Number>()->Value());
        if (body_slot == nullptr || body_slot->upload_fetch != 0) {
            dp_xfer_send_end(f->xfer, false);
        } else {
            f->upload_req = body_slot->req;
            f->upload_slot = (uint32_t)(body_slot - iso->slots.data());
            dp_request_ref(f->upload_req);
            body_slot->upload_fetch = f->id;
            upload_feed(f);
        }
    } else if (args.Length() > 6 && args[6]->IsArrayBufferView()) {
        Local<v8::ArrayBufferView> view = args[6].As<v8::ArrayBufferView>();
        auto *held = new held_store{view->Buffer()->GetBackingStore()};
        const char *p = static_cast<const char *>(held->store->Data()) + view->ByteOffset();
        dp_xfer_send(f->xfer, p, view->ByteLength(), release_store, held);
        dp_xfer_send_end(f->xfer, true);
    }
    args.GetReturnValue().Set((double)f->id);
}

// fetchHead(id) -> [status, reason, [name, value, ...], version] or a promise of it.
static void FetchHead(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = rt_isolate_of(args.GetIsolate());
    rt_fetch *f = fetch_arg(args);
    if (f == nullptr) {
        rt_throw_type_error(args.GetIsolate(), "fetch: this fetch has ended");
        return;
    }
    if (dp_xfer_has_head(f->xfer)) {
        args.GetReturnValue().Set(head_value(iso, f));
        return;
    }
    if (dp_xfer_is_done(f->xfer)) {
        args.GetIsolate()->ThrowException(fetch_error(iso, f));
        return;
    }
    args.GetReturnValue().Set(waiter(args, &f->head_waiter));
}

// fetchRead(id) -> ArrayBuffer (bytes received), null (the end) or a promise of either.
static void FetchRead(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = rt_isolate_of(args.GetIsolate());
    rt_fetch *f = fetch_arg(args);
    if (f == nullptr) {
        rt_throw_type_error(args.GetIsolate(), "fetch: the response body was canceled");
        return;
    }
    if (dp_xfer_buffered(f->xfer) > 0) {
        args.GetReturnValue().Set(take_chunk(iso, f));
        return;
    }
    if (dp_xfer_is_done(f->xfer)) {
        if (dp_xfer_result(f->xfer) == DP_XFER_OK)
            args.GetReturnValue().SetNull();
        else
            args.GetIsolate()->ThrowException(fetch_error(iso, f));
        return;
    }
    args.GetReturnValue().Set(waiter(args, &f->read_waiter));
}

// fetchSend(id, Uint8Array) -> a promise: true once curl wants more, false if the transfer
// ended (stop sending).
static void FetchSend(const FunctionCallbackInfo<Value> &args)
{
    Isolate *isolate = args.GetIsolate();
    rt_fetch *f = fetch_arg(args);
    if (f == nullptr || args.Length() < 2 || !args[1]->IsArrayBufferView()) {
        rt_throw_type_error(isolate, "fetch: this fetch has ended");
        return;
    }
    if (dp_xfer_is_done(f->xfer)) {
        Local<Promise::Resolver> r =
            Promise::Resolver::New(isolate->GetCurrentContext()).ToLocalChecked();
        rt_ignore(r->Resolve(isolate->GetCurrentContext(), v8::False(isolate)));
        args.GetReturnValue().Set(r->GetPromise());
        return;
    }
    Local<v8::ArrayBufferView> view = args[1].As<v8::ArrayBufferView>();
    auto *held = new held_store{view->Buffer()->GetBackingStore()};
    const char *p = static_cast<const char *>(held->store->Data()) + view->ByteOffset();
    Local<Promise> promise = waiter(args, &f->send_waiter);
    dp_xfer_send(f->xfer, p, view->ByteLength(), release_store, held);
    args.GetReturnValue().Set(promise);
}

// fetchSendEnd(id, ok): the upload is complete, or its source failed.
static void FetchSendEnd(const FunctionCallbackInfo<Value> &args)
{
    rt_fetch *f = fetch_arg(args);
    if (f == nullptr)
        return;
    dp_xfer_send_end(f->xfer, args.Length() > 1 && args[1]->BooleanValue(args.GetIsolate()));
}

// fetchAbort(id): stops the transfer and forgets it; its pending promises never settle (JS
// settles its own with the abort reason).
static void FetchAbort(const FunctionCallbackInfo<Value> &args)
{
    rt_fetch *f = fetch_arg(args);
    if (f == nullptr)
        return;
    // An upload waiting for room learns that the transfer is over (its source is canceled).
    if (!f->send_waiter.IsEmpty())
        settle(f, &f->send_waiter, args.GetIsolate()->GetCurrentContext(),
               v8::False(args.GetIsolate()), true);
    uint32_t piped = f->pipe_req != nullptr ? f->pipe_slot : kNoSlot;
    rt_isolate *iso = f->iso;
    fetch_free(f);
    if (piped != kNoSlot)
        rt_slot_maybe_release(iso, piped);
}

// fetchPipe(fetchId, requestId): the next respondPipe for the request sends this fetch's
// response body (untouched, still encoded as it came) instead of the request's own body.
static void FetchPipe(const FunctionCallbackInfo<Value> &args)
{
    rt_isolate *iso = rt_isolate_of(args.GetIsolate());
    rt_fetch *f = fetch_arg(args);
    rt_slot *s = args.Length() > 1 && args[1]->IsNumber()
                     ? rt_slot_get(iso, args[1].As<v8::Number>()->Value())
                     : nullptr;
    if (f == nullptr || s == nullptr) {
        rt_throw_type_error(args.GetIsolate(), "fetchPipe: the fetch or the request has ended");
        return;
    }
    s->pipe_fetch = f->id;
}

static const rt_native kNatives[] = {
    {"fetchStart", FetchStart}, {"fetchHead", FetchHead},       {"fetchRead", FetchRead},
    {"fetchSend", FetchSend},   {"fetchSendEnd", FetchSendEnd}, {"fetchAbort", FetchAbort},
    {"fetchPipe", FetchPipe},
};

const rt_native *rt_fetch_natives(size_t *n)
{
    *n = sizeof(kNatives) / sizeof(kNatives[0]);
    return kNatives;
}

void rt_fetch_client_gone(rt_isolate *iso, uint32_t index, Local<Context> ctx)
{
    rt_fetches *fs = iso->fetches;
    if (fs == nullptr || index >= iso->slots.size() || iso->slots[index].n_fetches == 0)
        return;
    std::vector<rt_fetch *> owned;
    for (auto &kv : fs->live)
        if (kv.second->slot == index && kv.second->pipe_req == nullptr)
            owned.push_back(kv.second);
    for (rt_fetch *f : owned) {
        Local<Value> err = v8::Exception::TypeError(
            String::NewFromUtf8(iso->isolate, ("fetch " + f->url +
                                               " stopped: the client of the request that started "
                                               "it went away")
                                                  .c_str())
                .ToLocalChecked());
        if (!f->head_waiter.IsEmpty())
            settle(f, &f->head_waiter, ctx, err, false);
        if (!f->read_waiter.IsEmpty())
            settle(f, &f->read_waiter, ctx, err, false);
        if (!f->send_waiter.IsEmpty())
            settle(f, &f->send_waiter, ctx, v8::False(iso->isolate), true);
        fetch_free(f);
    }
}

void rt_fetch_release_slot(rt_isolate *iso, uint32_t index)
{
    rt_fetches *fs = iso->fetches;
    if (fs == nullptr || index >= iso->slots.size() || iso->slots[index].n_fetches == 0)
        return;
    std::vector<rt_fetch *> owned;
    for (auto &kv : fs->live)
        if (kv.second->slot == index)
            owned.push_back(kv.second);
    for (rt_fetch *f : owned)
        fetch_free(f);
}

void rt_fetch_close_all(rt_isolate *iso)
{
    rt_fetches *fs = iso->fetches;
    if (fs == nullptr)
        return;
    std::vector<rt_fetch *> all;
    for (auto &kv : fs->live)
        all.push_back(kv.second);
    for (rt_fetch *f : all)
        fetch_free(f);
    if (fs->owns_client)
        dp_client_close(fs->client);
    delete fs;
    iso->fetches = nullptr;
}
