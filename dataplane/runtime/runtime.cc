// runtime.cc: V8 platform and isolate lifecycle, JS entry/exit and CPU segments, timers, errors,
// module evaluation, the multi-tenant hooks. A request inside an isolate is request.cc's; the
// app's env, env.cc's.
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

int rt_platform_init(const char *argv0)
{
    v8::V8::InitializeICUDefaultLocation(argv0);
    rt_memory_platform_flags();
    // The startup snapshot is part of this binary's read-only data, so V8's checksum of it at
    // every Isolate::New (an adler32 over 2 MB: ~5% of making an isolate) guards nothing the
    // loader does not.
    static const char no_checksum[] = "--no-verify-snapshot-checksum";
    v8::V8::SetFlagsFromString(no_checksum, sizeof no_checksum - 1);
    // NANO_V8_FLAGS: V8 flags for diagnosis (e.g. "--trace-opt"); not a supported setting.
    if (const char *flags = getenv("NANO_V8_FLAGS"))
        v8::V8::SetFlagsFromString(flags);
    v8::V8::InitializePlatform(rt_platform_create());
    v8::V8::Initialize();
    // Computes (and caches) the hash of V8's flags now, before rt_memory_after_entry first
    // flips one (allocator.cc).
    (void)v8::ScriptCompiler::CachedDataVersionTag();
    return 0;
}

void rt_platform_fini(void)
{
    v8::V8::Dispose();
    v8::V8::DisposePlatform();
    rt_platform_destroy();
}

int rt_isolate_settle_background(rt_isolate *iso)
{
    // Background work (say, an async WebAssembly compile) may still post a task that
    // settles a promise: wait for it rather than let the loop end.
    if (!rt_platform_wait_for_work(iso, 60000))
        return 0;
    rt_platform_run_tasks(iso);
    return 1;
}

static MaybeLocal<Value> call_internal(rt_isolate *iso, Local<Context> ctx, const char *name,
                                       int argc, Local<Value> *argv);

// HTML §8.1.4.8 unhandled promise rejections: an `unhandledrejection` event at the global
// for each (a listener may cancel it), else the log line; then `rejectionhandled` for
// promises reported before that have gained a handler since.
static void report_rejections(rt_isolate *iso, Local<Context> ctx)
{
    // Take the lists: the events run JS, which may reject more promises.
    std::vector<rt_isolate::rejection> list;
    list.swap(iso->rejections);
    std::vector<rt_isolate::rejection> handled;
    handled.swap(iso->late_handled);
    Isolate *isolate = iso->isolate;
    for (auto &r : list) {
        Local<Value> reason = r.reason.Get(isolate);
        Local<Value> argv[] = {r.promise.Get(isolate), reason};
        Local<Value> not_canceled;
        if (call_internal(iso, ctx, "reportUnhandledRejection", 2, argv).ToLocal(&not_canceled) &&
            !not_canceled->BooleanValue(isolate))
            continue;
        std::string text = "Uncaught (in promise) ";
        TryCatch tc(isolate);
        Local<Value> args[] = {reason};
        Local<Value> out;
        if (iso->format_uncaught.Get(isolate)->Call(ctx, ctx->Global(), 1, args).ToLocal(&out)) {
            String::Utf8Value s(isolate, out);
            text += *s ? *s : "?";
        } else {
            text += "(the rejection reason could not be formatted)";
        }
        rt_log_js_error(iso, "app.unhandled_rejection", text);
    }
    for (auto &r : handled) {
        Local<Value> argv[] = {r.promise.Get(isolate), r.reason.Get(isolate)};
        (void)call_internal(iso, ctx, "reportRejectionHandled", 2, argv).IsEmpty();
    }
}

// --- CPU budgets: JS time per request, in segments (rt_watch in runtime.h) -----------------
//
// A segment is timed with the monotonic clock (uv_hrtime, a vDSO call): the thread's CPU
// clock costs a system call (over a microsecond here), too much twice per request. While a
// segment runs, the watchdog measures it with the thread's CPU clock instead, so a long loop
// on a busy machine is charged its CPU time, as before.

static bool slot_is(rt_isolate *iso, uint32_t index, uint32_t gen)
{
    return index < iso->slots.size() && iso->slots[index].req != nullptr &&
           iso->slots[index].gen == gen;
}

static bool over_budget(const rt_isolate *iso, const rt_slot *s)
{
    return iso->cpu_limit_ms > 0 && s->js_ns >= iso->cpu_limit_ms * 1000000u;
}

static void segment_begin(rt_isolate *iso, uint32_t slot)
{
    bool is_request = slot < iso->slots.size() && iso->slots[slot].req != nullptr;
    iso->current_slot = is_request ? slot : kNoSlot;
    iso->segment_gen = is_request ? iso->slots[slot].gen : 0;
    iso->segment_start_ns = uv_hrtime();
    rt_watch *w = iso->watch;
    if (w == nullptr)
        return;
    pthread_mutex_lock(&w->mu);
    w->seq++;
    w->active = 1;
    w->iso = iso;
    w->cpu_limit_ms = iso->cpu_limit_ms;
    w->used_ns = is_request ? iso->slots[slot].js_ns : 0;
    w->start_ns = iso->segment_start_ns;
    w->slot = iso->current_slot;
    pthread_mutex_unlock(&w->mu);
}

// Ends the running segment and charges it; returns the slot it ran for if that request is
// now over its budget (else kNoSlot).
// Timer JS that runs for no request (module code's timers, what they cause) is paid for by no
// request's budget: without a bound of its own, an app's module could keep its thread busy
// with no traffic at all. It may use cpu_limit_ms per second, in bursts of as much; beyond
// that, such timers wait (internal.runTimers defers them).
static void background_refill(rt_isolate *iso, uint64_t now)
{
    int64_t cap = (int64_t)iso->cpu_limit_ms * 1000000;
    if (iso->background_refilled_ns == 0) {
        iso->background_tokens_ns = cap;
    } else {
        double add = (double)(now - iso->background_refilled_ns) * (double)iso->cpu_limit_ms /
                     1000.0;
        iso->background_tokens_ns =
            (int64_t)std::min<double>((double)cap, (double)iso->background_tokens_ns + add);
    }
    iso->background_refilled_ns = now;
}

double rt_background_wait_ms(rt_isolate *iso)
{
    if (iso->cpu_limit_ms == 0)
        return 0;
    background_refill(iso, uv_hrtime());
    if (iso->background_tokens_ns >= 0)
        return 0;
    // Refills at cpu_limit_ms per 1000 ms: -tokens ns take -tokens / cpu_limit_ms us.
    return (double)-iso->background_tokens_ns / (double)iso->cpu_limit_ms / 1000.0 + 1;
}

static uint32_t segment_end(rt_isolate *iso)
{
    rt_watch *w = iso->watch;
    if (w != nullptr) {
        pthread_mutex_lock(&w->mu);
        w->active = 0;
        w->iso = nullptr;
        pthread_mutex_unlock(&w->mu);
    }
    uint32_t slot = iso->current_slot;
    iso->current_slot = kNoSlot;
    if (slot == kNoSlot) {
        if (iso->in_timer_callback && !iso->is_loading && iso->cpu_limit_ms > 0) {
            uint64_t now = uv_hrtime();
            background_refill(iso, now);
            iso->background_tokens_ns -= (int64_t)(now - iso->segment_start_ns);
        }
        return kNoSlot;
    }
    if (!slot_is(iso, slot, iso->segment_gen))
        return kNoSlot;
    rt_slot *s = &iso->slots[slot];
    s->js_ns += uv_hrtime() - iso->segment_start_ns;
    return over_budget(iso, s) ? slot : kNoSlot;
}

// A request went past its CPU budget: stopped by the watchdog (terminated) or found over it
// when a segment ended. It is answered 500 (its connection closed if the response had
// started) and logged with the access log's request id; slot kNoSlot: JS that ran for no
// request was stopped.
static void cpu_limit_hit(rt_isolate *iso, uint32_t slot)
{
    dp_request *req = nullptr;
    if (slot < iso->slots.size() && iso->slots[slot].req != nullptr) {
        req = iso->slots[slot].req;
        dp_request_ref(req);
        rt_request_fail(iso, req, 500);
    }
    char id[24] = "-";
    if (req != nullptr)
        snprintf(id, sizeof id, "%llx", (unsigned long long)dp_request_id(req));
    NANO_WARN("app.cpu_limit", "%s request_id=%s cpu_limit_ms=%llu", iso->console_prefix.c_str(),
              id, (unsigned long long)iso->cpu_limit_ms);
    if (iso->hooks.cpu_exceeded != nullptr)
        iso->hooks.cpu_exceeded(iso->hooks.ud, req);
    if (req != nullptr)
        dp_request_unref(req);
}

bool rt_segment_switch(rt_isolate *iso, uint32_t slot, uint32_t gen)
{
    uint32_t over = segment_end(iso);
    if (over != kNoSlot)
        cpu_limit_hit(iso, over);
    bool ok = slot == kNoSlot || (slot_is(iso, slot, gen) && !over_budget(iso, &iso->slots[slot]));
    segment_begin(iso, ok ? slot : kNoSlot);
    return ok;
}

double rt_slot_id(rt_isolate *iso, uint32_t index)
{
    return (double)(((uint64_t)iso->slots[index].gen << kSlotBits) | index);
}

static void on_timer(uv_timer_t *t);

// After the outermost entry: a termination by the watchdog is over once JS has unwound, so
// the isolate can run again; the request it stopped gets 500, as does one whose budget the
// segment used up. A broken isolate (heap limit) stays terminated: the worker discards it.
static void after_outermost_entry(rt_isolate *iso)
{
    uint32_t over = segment_end(iso);
    if (iso->is_broken) {
        if (iso->hooks.broken != nullptr) {
            auto broken = iso->hooks.broken;
            iso->hooks.broken = nullptr; // once
            broken(iso->hooks.ud);
        }
        return;
    }
    if (iso->is_terminating.exchange(false)) {
        iso->isolate->CancelTerminateExecution();
        over = iso->terminated_slot.exchange(kNoSlot);
        // The unwinding may have cut a timer pass or a timer change short: let the timers
        // put the libuv timer right on the next loop turn (runTimers re-arms it).
        if (iso->is_timer_open)
            uv_timer_start(&iso->timer, on_timer, 1, 0);
    } else if (over == kNoSlot) {
        return;
    }
    cpu_limit_hit(iso, over);
}

static thread_local Isolate *t_parked = nullptr;

ParkIsolate::ParkIsolate(Isolate *isolate)
{
    if (t_parked == isolate)
        return;
    // Only the isolate on top of this thread's entry stack can be left: with another one
    // entered above the parked one (an Isolate::Scope), this entry is an ordinary one.
    if (t_parked != nullptr) {
        if (Isolate::GetCurrent() != t_parked)
            return;
        t_parked->Exit();
        t_parked = nullptr;
    }
    isolate->Enter();
    t_parked = isolate;
}

void rt_unpark(Isolate *isolate)
{
    if (t_parked != isolate)
        return;
    if (Isolate::GetCurrent() != isolate) {
        // Parking only happens on top of the stack, and Scopes above it are gone by now.
        NANO_ERROR("rt.unpark", "the isolate to free is not the current one; aborting");
        abort();
    }
    isolate->Exit();
    t_parked = nullptr;
}

JsEntry::JsEntry(rt_isolate *iso, uint32_t slot)
    : iso_(iso), outer_slot_(iso->current_slot), outer_gen_(iso->segment_gen), park_(iso->isolate),
      isolate_scope_(iso->isolate), handles_(iso->isolate), ctx_(iso->context.Get(iso->isolate)),
      context_scope_(ctx_)
{
    if (iso_->depth++ == 0) {
        segment_begin(iso_, slot);
    } else if (slot != kNoSlot && slot != iso_->current_slot) {
        // JS for another request from inside a runtime callback (a queued request started
        // when one ended): its time is its own.
        is_switched_ = true;
        rt_segment_switch(iso_, slot, iso_->slots[slot].gen);
    }
}

// HTML "perform a microtask checkpoint" with its last step, "notify about rejected
// promises": run after every task (a timer callback, a request, a script).
void rt_microtask_checkpoint(rt_isolate *iso, Local<Context> ctx)
{
    iso->isolate->PerformMicrotaskCheckpoint();
    while (!iso->rejections.empty() || !iso->late_handled.empty()) {
        report_rejections(iso, ctx);
        iso->isolate->PerformMicrotaskCheckpoint();
    }
}

JsEntry::~JsEntry()
{
    if (--iso_->depth > 0) {
        if (is_switched_ && !iso_->isolate->IsExecutionTerminating())
            rt_segment_switch(iso_, outer_slot_, outer_gen_);
        return;
    }
    if (!iso_->is_broken) {
        rt_microtask_checkpoint(iso_, ctx_);
        rt_memory_after_entry(iso_);
    }
    after_outermost_entry(iso_);
}

static void on_promise_reject(v8::PromiseRejectMessage msg)
{
    Local<v8::Promise> promise = msg.GetPromise();
    Isolate *isolate = promise->GetIsolate();
    auto *iso = static_cast<rt_isolate *>(isolate->GetData(0));
    switch (msg.GetEvent()) {
    case v8::kPromiseRejectWithNoHandler:
        iso->rejections.push_back({v8::Global<v8::Promise>(isolate, promise),
                                   v8::Global<Value>(isolate, msg.GetValue())});
        break;
    case v8::kPromiseHandlerAddedAfterReject: {
        bool was_pending = false;
        for (size_t i = 0; i < iso->rejections.size(); i++) {
            if (iso->rejections[i].promise.Get(isolate) == promise) {
                iso->rejections.erase(iso->rejections.begin() + (long)i);
                was_pending = true;
                break;
            }
        }
        // Already reported as unhandled: JS decides (it knows which it reported).
        if (!was_pending)
            iso->late_handled.push_back({v8::Global<v8::Promise>(isolate, promise),
                                         v8::Global<Value>(isolate, promise->Result())});
        break;
    }
    default: break;
    }
}

std::string rt_redact(const rt_isolate *iso, std::string text)
{
    static const char mask[] = "[REDACTED]";
    for (const std::string &secret : iso->secrets) {
        for (size_t at = text.find(secret); at != std::string::npos;
             at = text.find(secret, at + sizeof mask - 1))
            text.replace(at, secret.size(), mask);
    }
    return text;
}

void rt_log_js_error(rt_isolate *iso, const char *event, const std::string &raw, const char *fields)
{
    std::string text = rt_redact(iso, raw);
    if (iso->console_mode == RT_CONSOLE_STDIO) { // nano-dp run/test: plain, like a shell tool
        std::string line = text + "\n";
        fputs(line.c_str(), stderr);
        return;
    }
    std::string prefix = iso->console_prefix;
    if (fields != nullptr)
        prefix = prefix + " " + fields;
    nano_log_text(NANO_LOG_ERROR, event, prefix.c_str(), text.c_str(), text.size());
}

std::string rt_describe_exception(rt_isolate *iso, Local<Context> ctx, const TryCatch &tc)
{
    Isolate *isolate = iso->isolate;
    if (tc.HasTerminated())
        return "execution terminated";
    Local<Value> ex = tc.Exception();
    std::string out;
    Local<v8::Message> msg = tc.Message();
    bool has_stack = false;
    if (ex->IsObject()) {
        Local<Value> stack;
        if (ex.As<Object>()
                ->Get(ctx, String::NewFromUtf8Literal(isolate, "stack"))
                .ToLocal(&stack) &&
            stack->IsString()) {
            String::Utf8Value s(isolate, stack);
            out = *s ? *s : "";
            has_stack = !out.empty();
        }
    }
    if (!has_stack) {
        String::Utf8Value s(isolate, ex);
        out = *s ? *s : "(exception that cannot be printed)";
    }
    // Syntax errors have no useful stack: say where, as FILE:LINE:COL.
    if (!msg.IsEmpty() && (!has_stack || ex->IsNativeError()) &&
        out.find("    at ") == std::string::npos) {
        String::Utf8Value file(isolate, msg->GetScriptResourceName());
        int line = msg->GetLineNumber(ctx).FromMaybe(0);
        int col = msg->GetStartColumn(ctx).FromMaybe(0) + 1;
        std::string where = std::string(*file ? *file : "?") + ":" + std::to_string(line) + ":" +
                            std::to_string(col) + ": ";
        out = where + out;
        Local<String> src;
        if (msg->GetSourceLine(ctx).ToLocal(&src)) {
            String::Utf8Value code(isolate, src);
            if (*code && code.length() < 200)
                out += std::string("\n    ") + *code + "\n    " +
                       std::string((size_t)col - 1, ' ') + "^";
        }
    }
    return out;
}

// The timers that are due run in one pass (internal.runTimers), each charged to the request
// that created it (binding.timerEnter switches the segment).
static void on_timer(uv_timer_t *t)
{
    auto *iso = static_cast<rt_isolate *>(t->data);
    if (iso->is_broken)
        return;
    iso->in_timer_callback = true;
    {
        JsEntry js(iso);
        Local<Context> ctx = js.context();
        TryCatch tc(iso->isolate);
        if (iso->run_timers.Get(iso->isolate)
                ->Call(ctx, v8::Undefined(iso->isolate), 0, nullptr)
                .IsEmpty() &&
            !tc.HasTerminated())
            rt_log_js_error(iso, "app.timer_failed", rt_describe_exception(iso, ctx, tc));
    }
    iso->in_timer_callback = false;
}

void rt__timer_arm(rt_isolate *iso, double ms)
{
    uint64_t delay = ms <= 0 ? 0 : (uint64_t)(ms + 0.999); // never fire early
    // Re-armed from inside the pass: libuv (1.44) runs a timer started with 0 in the same
    // pass, so a due timer would run again and again without the loop ever polling for I/O.
    // One millisecond puts the next pass after the poll.
    if (delay == 0 && iso->in_timer_callback)
        delay = 1;
    uv_timer_start(&iso->timer, on_timer, delay, 0);
}

void rt__timer_stop(rt_isolate *iso)
{
    uv_timer_stop(&iso->timer);
}

// Keeps what the runtime calls directly: the built-ins' `internal` object (found in the
// snapshot) and the functions on it that C calls for every request or timer.
static int bind_builtins(rt_isolate *iso, Local<Context> ctx, Local<Object> internal,
                         nano_error *err)
{
    Isolate *isolate = iso->isolate;
    iso->internal.Reset(isolate, internal);
    auto get_fn = [&](const char *name, v8::Global<Function> *out) {
        Local<Value> v;
        if (!internal->Get(ctx, String::NewFromUtf8(isolate, name).ToLocalChecked()).ToLocal(&v) ||
            !v->IsFunction())
            return false;
        out->Reset(isolate, v.As<Function>());
        return true;
    };
    if (!get_fn("dispatch", &iso->dispatch) || !get_fn("runTimers", &iso->run_timers) ||
        !get_fn("formatUncaught", &iso->format_uncaught) ||
        !get_fn("requestAborted", &iso->request_aborted))
        return nano_error_set(err, NANO_EJS, "builtin_failed", "built-ins are incomplete");
    return 0;
}

// The machine's CPU count for navigator.hardwareConcurrency: asked once per process (libuv
// reads /proc for it, too slow to repeat per isolate).
static unsigned int hardware_concurrency()
{
    static const unsigned int n = [] {
        uv_cpu_info_t *info = nullptr;
        int n_cpus = 0;
        if (uv_cpu_info(&info, &n_cpus) != 0)
            return 1u;
        uv_free_cpu_info(info, n_cpus);
        return n_cpus > 0 ? (unsigned int)n_cpus : 1u;
    }();
    return n;
}

// The per-context half of the built-ins (01_context_init.js): what the snapshot cannot hold
// because it depends on the machine, the moment or the app. Starts the context's clock.
static int init_context(rt_isolate *iso, Local<Context> ctx, nano_error *err)
{
    Isolate *isolate = iso->isolate;
    iso->time_origin_ns = uv_hrtime();
    Local<Object> options = Object::New(isolate);
    rt_ignore(options->Set(
        ctx, String::NewFromUtf8Literal(isolate, "location"),
        iso->location.empty()
            ? v8::Undefined(isolate).As<Value>()
            : String::NewFromUtf8(isolate, iso->location.c_str()).ToLocalChecked().As<Value>()));
    rt_ignore(options->Set(ctx, String::NewFromUtf8Literal(isolate, "hardwareConcurrency"),
                           v8::Integer::NewFromUnsigned(isolate, hardware_concurrency())));
    Local<Value> init;
    Local<Value> args[] = {options};
    TryCatch tc(isolate);
    if (!iso->internal.Get(isolate)
             ->Get(ctx, String::NewFromUtf8Literal(isolate, "initContext"))
             .ToLocal(&init) ||
        !init->IsFunction() ||
        init.As<Function>()->Call(ctx, v8::Undefined(isolate), 1, args).IsEmpty()) {
        std::string text = tc.HasCaught() ? rt_describe_exception(iso, ctx, tc) : "no initContext";
        return nano_error_set(err, NANO_EJS, "builtin_failed", "context init failed: %s",
                              text.c_str());
    }
    return 0;
}

// Module code without a watchdog (the thread has no rt_watch: nano-dp checking an app at
// start, a deploy check): a thread of its own stops it once the loading thread's CPU clock
// passed the limit. Ends (joined) when the load does.
class StartupGuard {
  public:
    StartupGuard(rt_isolate *iso, uint64_t limit_ms)
    {
        clockid_t clock;
        if (limit_ms == 0 || pthread_getcpuclockid(pthread_self(), &clock) != 0)
            return;
        thread_ = std::thread([this, iso, limit_ms, clock] {
            uint64_t start = thread_cpu_ns(clock);
            std::unique_lock<std::mutex> lock(mu_);
            while (!is_done_) {
                cv_.wait_for(lock, std::chrono::milliseconds(5));
                if (!is_done_ && thread_cpu_ns(clock) - start >= limit_ms * 1000000u) {
                    iso->is_terminating.store(true);
                    iso->isolate->TerminateExecution();
                    return;
                }
            }
        });
    }
    ~StartupGuard()
    {
        {
            std::lock_guard<std::mutex> lock(mu_);
            is_done_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable())
            thread_.join();
    }

  private:
    static uint64_t thread_cpu_ns(clockid_t clock)
    {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool is_done_ = false;
};

static void on_await_deadline(uv_timer_t *t)
{
    *static_cast<bool *>(t->data) = true;
}

// Runs the loop until promise settles (top-level await, a test run): the caller is inside
// one JS entry, which the loop's callbacks must not count as theirs, or their microtasks
// would never run. Returns 0 once settled, NANO_EJS when nothing is left that could settle
// it, or NANO_ETOOBIG when wall_ms (0: no bound) passed first. While loading an app
// (iso->is_loading) the loading segment is begun again after each turn: the loop's
// callbacks ran segments of their own on this thread's watch.
static int await_settled(rt_isolate *iso, Local<v8::Promise> promise, uint64_t wall_ms = 0)
{
    Isolate *isolate = iso->isolate;
    bool is_late = false;
    uv_timer_t *deadline = nullptr; // made only if the loop must turn (most modules never do)
    int rc = 0;
    for (;;) {
        rt_microtask_checkpoint(iso, isolate->GetCurrentContext());
        if (promise->State() != v8::Promise::kPending)
            break;
        if (is_late) {
            rc = NANO_ETOOBIG;
            break;
        }
        if (wall_ms > 0 && deadline == nullptr) {
            deadline = new uv_timer_t;
            uv_timer_init(iso->loop, deadline);
            deadline->data = &is_late;
            uv_timer_start(deadline, on_await_deadline, wall_ms, 0);
            uv_unref((uv_handle_t *)deadline); // "nothing left to wait for" stays detectable
        }
        int saved_depth = iso->depth;
        iso->depth = 0;
        int alive = uv_run(iso->loop, UV_RUN_ONCE);
        iso->depth = saved_depth;
        if (iso->is_loading)
            segment_begin(iso, kNoSlot);
        if (alive == 0) {
            isolate->PerformMicrotaskCheckpoint();
            if (promise->State() != v8::Promise::kPending)
                break;
            int saved = iso->depth;
            iso->depth = 0;
            int ran = rt_isolate_settle_background(iso);
            iso->depth = saved;
            if (!ran) {
                rc = NANO_EJS;
                break;
            }
        }
    }
    if (deadline != nullptr)
        uv_close((uv_handle_t *)deadline, [](uv_handle_t *h) { delete (uv_timer_t *)h; });
    return rc;
}

// The text of a rejection reason: its stack when it has one.
static std::string describe_value(rt_isolate *iso, Local<Context> ctx, Local<Value> reason)
{
    Isolate *isolate = iso->isolate;
    String::Utf8Value s(isolate, reason);
    std::string text = *s ? *s : "?";
    if (reason->IsObject()) {
        Local<Value> stack;
        if (reason.As<Object>()
                ->Get(ctx, String::NewFromUtf8Literal(isolate, "stack"))
                .ToLocal(&stack) &&
            stack->IsString()) {
            String::Utf8Value st(isolate, stack);
            text = *st ? *st : text;
        }
    }
    return text;
}

// Evaluates a module; top-level await may need the loop (timers) to settle.
// wall_ms bounds a top-level await (0: none).
static int evaluate_module(rt_isolate *iso, Local<Context> ctx, Local<v8::Module> module,
                           const char *path, nano_error *err, uint64_t wall_ms = 0)
{
    Isolate *isolate = iso->isolate;
    TryCatch tc(isolate);
    Local<Value> result;
    if (!module->Evaluate(ctx).ToLocal(&result)) {
        if (tc.HasTerminated() && iso->is_loading && iso->is_terminating.load())
            return nano_error_set(err, NANO_ETOOBIG, "module_cpu_limit",
                                  "%s: the module's top-level code ran past its CPU limit "
                                  "(%llu ms)",
                                  path, (unsigned long long)iso->cpu_limit_ms);
        std::string text = rt_describe_exception(iso, ctx, tc);
        return nano_error_set(err, NANO_EJS, "module_threw", "%s: evaluation threw: %s", path,
                              text.c_str());
    }
    if (!result->IsPromise())
        return 0;
    Local<v8::Promise> promise = result.As<v8::Promise>();
    int settled = await_settled(iso, promise, wall_ms);
    if (settled == NANO_ETOOBIG)
        return nano_error_set(err, NANO_ETOOBIG, "module_tla_timeout",
                              "%s: top-level await did not settle within %llu ms", path,
                              (unsigned long long)wall_ms);
    if (isolate->IsExecutionTerminating() || (iso->is_loading && iso->is_terminating.load()))
        return nano_error_set(err, NANO_ETOOBIG, "module_cpu_limit",
                              "%s: the module's top-level code ran past its CPU limit (%llu ms)",
                              path, (unsigned long long)iso->cpu_limit_ms);
    if (settled != 0)
        return nano_error_set(err, NANO_EJS, "module_tla_stuck",
                              "%s: top-level await never settles (nothing left to wait for)", path);
    if (promise->State() == v8::Promise::kRejected) {
        std::string text = describe_value(iso, ctx, promise->Result());
        promise->MarkAsHandled();
        return nano_error_set(err, NANO_EJS, "module_threw", "%s: evaluation threw: %s", path,
                              text.c_str());
    }
    return 0;
}

static int find_handler(rt_isolate *iso, Local<Context> ctx, Local<v8::Module> module,
                        const char *path, nano_error *err)
{
    Isolate *isolate = iso->isolate;
    Local<Object> ns = module->GetModuleNamespace().As<Object>();
    Local<Value> def;
    if (!ns->Get(ctx, String::NewFromUtf8Literal(isolate, "default")).ToLocal(&def) ||
        def->IsUndefined())
        return nano_error_set(err, NANO_EINVAL, "module_no_default",
                              "%s has no default export: write `export default { async "
                              "fetch(request, env, ctx) { ... } }`",
                              path);
    Local<Value> fetch;
    if (!def->IsObject() ||
        !def.As<Object>()->Get(ctx, String::NewFromUtf8Literal(isolate, "fetch")).ToLocal(&fetch) ||
        !fetch->IsFunction())
        return nano_error_set(err, NANO_EINVAL, "module_no_fetch",
                              "%s: the default export has no fetch(request, env, ctx) method",
                              path);
    Local<Object> internal = iso->internal.Get(isolate);
    Local<Value> set_handler;
    Local<Value> args[] = {def};
    TryCatch tc(isolate);
    if (!internal->Get(ctx, String::NewFromUtf8Literal(isolate, "setHandler"))
             .ToLocal(&set_handler) ||
        !set_handler->IsFunction() ||
        set_handler.As<Function>()->Call(ctx, v8::Undefined(isolate), 1, args).IsEmpty())
        return nano_error_set(err, NANO_EJS, "builtin_failed", "cannot install the fetch handler");
    return 0;
}

// The heap is nearly full: stop the JS (it would fail with a fatal OOM, taking the process
// down) and mark the isolate broken; the worker answers its requests 503 and discards it.
// The returned limit is headroom for the unwinding.
static size_t on_near_heap_limit(void *data, size_t current, size_t initial)
{
    auto *iso = static_cast<rt_isolate *>(data);
    (void)initial;
    if (!iso->is_broken) {
        iso->is_broken = true;
        NANO_WARN("app.memory_limit", "%s heap_limit_bytes=%zu", iso->console_prefix.c_str(),
                  current);
        iso->isolate->TerminateExecution();
    }
    return current + (64u << 20);
}

static void on_handle_closed(uv_handle_t *h)
{
    auto *iso = static_cast<rt_isolate *>(h->data);
    if (--iso->n_handles_open == 0)
        delete iso;
}

// Compiles a small module and throws it away. An isolate's first compile pays for setting up
// its parser and compiler (measured: ~120-200 us of a ~250 us compile of a hello-world
// module); done here, a pooled isolate pays it before an app is waiting. Nothing of it is
// reachable from JS.
static void warm_compiler(Isolate *isolate)
{
    v8::ScriptOrigin origin(isolate, String::NewFromUtf8Literal(isolate, "nano:internal/warm"), 0,
                            0, false, -1, Local<Value>(), false, false, true);
    v8::ScriptCompiler::Source source(
        String::NewFromUtf8Literal(isolate, "export default { async fetch(request, env, ctx) "
                                            "{ return new Response(`${request.url}`); } };"),
        origin);
    TryCatch tc(isolate);
    rt_ignore(v8::ScriptCompiler::CompileModule(isolate, &source));
}

int rt__isolate_create(uv_loop_t *loop, size_t heap_limit_mb, rt_isolate **out, nano_error *err)
{
    v8::StartupData *blob = rt_snapshot_blob();
    if (blob == nullptr)
        return nano_error_set(err, NANO_EINVAL, "snapshot_missing",
                              "this binary has no startup snapshot");
    auto *iso = new rt_isolate();
    iso->loop = loop;
    iso->allocator = std::make_shared<rt_allocator>();
    Isolate::CreateParams params;
    params.array_buffer_allocator_shared = iso->allocator;
    params.snapshot_blob = blob;
    params.external_references = rt_external_references();
    if (heap_limit_mb > 0)
        params.constraints.ConfigureDefaultsFromHeapSize(0, heap_limit_mb * 1024 * 1024);
    iso->isolate = Isolate::New(params);
    if (heap_limit_mb > 0)
        iso->isolate->AddNearHeapLimitCallback(on_near_heap_limit, iso);
    rt_memory_attach(iso, heap_limit_mb);
    iso->isolate->SetData(0, iso);
    iso->isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    iso->isolate->SetPromiseRejectCallback(on_promise_reject);
    rt_modules_install_callbacks(iso->isolate);
    rt_compression_init(iso);
    uv_timer_init(loop, &iso->timer);
    iso->timer.data = iso;
    iso->is_timer_open = true;
    rt_platform_attach(iso);
    iso->n_handles_open = 3; // timer, task_async, task_timer

    int rc;
    {
        Isolate::Scope isolate_scope(iso->isolate);
        HandleScope handles(iso->isolate);
        // The snapshot's default context: every built-in loaded (snapshot_gen.cc).
        std::unique_lock<std::mutex> no_gc_flag = rt_memory_context_lock();
        Local<Context> ctx = Context::New(iso->isolate);
        no_gc_flag.unlock();
        iso->context.Reset(iso->isolate, ctx);
        Context::Scope context_scope(ctx);
        Local<Object> internal;
        if (!ctx->GetDataFromSnapshotOnce<Object>(kSnapshotInternal).ToLocal(&internal))
            rc = nano_error_set(err, NANO_EINVAL, "snapshot_bad",
                                "the startup snapshot has no built-ins");
        else
            rc = bind_builtins(iso, ctx, internal, err);
        if (rc == 0)
            warm_compiler(iso->isolate);
    }
    if (rc != 0) {
        rt_isolate_free(iso);
        return rc;
    }
    *out = iso;
    return 0;
}

// Lowers the heap limit of a pooled isolate (made with its pool's, pool_limit_mb) to an
// app's smaller one. V8 sizes the young generation when the isolate is made, so it stays the
// pool's (3 MiB at 128 MiB); the old generation gets the rest of the app's limit. V8 lowers
// its limit when the callback that was given one is removed with a new limit, and never
// below what the heap already holds (a pooled isolate holds the built-ins only).
static void lower_heap_limit(rt_isolate *iso, size_t pool_limit_mb, size_t heap_limit_mb)
{
    v8::ResourceConstraints pool;
    pool.ConfigureDefaultsFromHeapSize(0, pool_limit_mb << 20);
    size_t young = pool.max_young_generation_size_in_bytes();
    size_t limit = heap_limit_mb << 20;
    size_t old_limit = limit > 2 * young ? limit - young : limit / 2;
    iso->isolate->RemoveNearHeapLimitCallback(on_near_heap_limit, old_limit);
    iso->isolate->AddNearHeapLimitCallback(on_near_heap_limit, iso);
}

int rt_isolate_new(uv_loop_t *loop, const rt_app_options *opts, rt_isolate **out, nano_error *err)
{
    uint64_t t0 = uv_hrtime();
    // A pooled isolate has its pool's heap limit: an app with a smaller one gets it lowered,
    // one with a larger one gets a fresh isolate (runtime.h, heap_limit_mb). An app asking
    // for none (0) takes one with the pool's default limit, which it then has.
    size_t limit_mb = opts->heap_limit_mb != 0 ? opts->heap_limit_mb : RT_POOL_HEAP_LIMIT_MB;
    rt_isolate *iso = rt__pool_take(opts->pool, loop, limit_mb);
    bool is_pooled = iso != nullptr;
    if (is_pooled && limit_mb < rt_pool_heap_limit_mb(opts->pool))
        lower_heap_limit(iso, rt_pool_heap_limit_mb(opts->pool), limit_mb);
    if (!is_pooled) {
        int rc = rt__isolate_create(loop, opts->heap_limit_mb, &iso, err);
        if (rc != 0)
            return rc;
    }
    uint64_t t1 = uv_hrtime();
    rt_memory_set_limit(iso, opts->heap_limit_mb);
    iso->name = opts->name;
    iso->console_prefix = std::string("app=") + opts->name;
    iso->console_mode = opts->console_mode;
    if (opts->location != nullptr)
        iso->location = opts->location;
    iso->node_compat = opts->node_compat;
    iso->http_client = opts->http_client;
    iso->subrequest_limit = opts->subrequests;
    iso->wall_limit_ms = opts->wall_limit_ms;
    iso->egress_node = nano_egress_ref(opts->egress_node);
    iso->egress_app = nano_egress_ref(opts->egress_app);
    iso->imports = opts->imports;
    iso->n_imports = opts->n_imports;
    if (opts->main_source != nullptr && opts->main_path != nullptr) {
        char real[PATH_MAX];
        if (realpath(opts->main_path, real) != nullptr) {
            iso->main_real = real;
            iso->main_source.assign(opts->main_source, opts->main_source_len);
        }
    }

    // Module code is JS run for no request, under its own limits (runtime.h): the thread's
    // watchdog enforces them, or a guard thread when the thread has none.
    bool is_limited = opts->cpu_limit_ms > 0;
    iso->watch = opts->watch;
    iso->cpu_limit_ms = is_limited ? std::max<uint64_t>(opts->cpu_limit_ms, RT_STARTUP_CPU_MS) : 0;
    iso->is_loading = true;
    int rc;
    {
        StartupGuard guard(iso, opts->watch == nullptr ? iso->cpu_limit_ms : 0);
        Isolate::Scope isolate_scope(iso->isolate);
        HandleScope handles(iso->isolate);
        Local<Context> ctx = iso->context.Get(iso->isolate);
        Context::Scope context_scope(ctx);
        segment_begin(iso, kNoSlot);
        iso->depth++; // loading counts as one JS entry; microtasks run explicitly below
        rc = init_context(iso, ctx, err);
        if (rc == 0) {
            Local<Object> internal = iso->internal.Get(iso->isolate);
            rt_ignore(internal->Set(ctx, String::NewFromUtf8Literal(iso->isolate, "env"),
                                    rt__make_env(iso, ctx, opts->env)));
            rt__remember_secrets(iso, opts->env);
            if (opts->node_compat) {
                Local<Value> none[] = {v8::Undefined(iso->isolate)};
                (void)call_internal(iso, ctx, "enableNodeCompat", 0, none).IsEmpty();
            }
            Local<v8::Module> module;
            if (opts->main_path == nullptr)
                ; // built-ins only: `nano-dp run` and `nano-dp test` load their own code
            else if (!rt_load_module_graph(iso, ctx, opts->main_path, err).ToLocal(&module))
                rc = err != nullptr && err->code != 0 ? err->code : NANO_EJS;
            else if ((rc = evaluate_module(iso, ctx, module, opts->main_path, err,
                                           opts->wall_limit_ms)) == 0 &&
                     (rc = find_handler(iso, ctx, module, opts->main_path, err)) == 0)
                rt_modules_store_compiled(iso);
        }
        iso->depth--;
        if (rc == 0) {
            iso->isolate->PerformMicrotaskCheckpoint();
            if (!iso->rejections.empty() || !iso->late_handled.empty())
                report_rejections(iso, ctx);
        }
        segment_end(iso);
        iso->is_loading = false;
    }
    if (iso->is_terminating.exchange(false)) {
        // Stopped at the limit (the guard joined when its scope ended): the isolate goes.
        iso->isolate->CancelTerminateExecution();
        if (rc == 0)
            rc = nano_error_set(err, NANO_ETOOBIG, "module_cpu_limit",
                                "%s: the module's top-level code ran past its CPU limit (%llu ms)",
                                opts->main_path ? opts->main_path : opts->name,
                                (unsigned long long)iso->cpu_limit_ms);
    }
    iso->cpu_limit_ms = opts->cpu_limit_ms;
    if (rc != 0) {
        rt_isolate_free(iso);
        return rc;
    }
    uint64_t t2 = uv_hrtime();
    NANO_DEBUG("rt.isolate_new", "app=%s pooled=%d isolate_us=%llu app_us=%llu", opts->name,
               is_pooled ? 1 : 0, (unsigned long long)((t1 - t0) / 1000),
               (unsigned long long)((t2 - t1) / 1000));
    *out = iso;
    return 0;
}

void rt_isolate_free(rt_isolate *iso)
{
    if (iso == nullptr)
        return;
    for (uint32_t i = 0; i < iso->slots.size(); i++) {
        if (iso->slots[i].req != nullptr)
            rt__slot_release(iso, i);
    }
    iso->rejections.clear();
    iso->late_handled.clear();
    iso->modules.clear();
    iso->dispatch.Reset();
    iso->run_timers.Reset();
    iso->format_uncaught.Reset();
    iso->request_aborted.Reset();
    iso->internal.Reset();
    iso->context.Reset();
    iso->slots.clear();
    rt_encoding_close_all(iso);
    rt_compression_close_all(iso);
    rt_crypto_close_all(iso);
    rt_fetch_close_all(iso);
    nano_egress_unref(iso->egress_node);
    nano_egress_unref(iso->egress_app);
    iso->egress_node = iso->egress_app = nullptr;
    rt_platform_detach(iso, on_handle_closed); // before Dispose: later posts go nowhere
    rt_unpark(iso->isolate);
    iso->isolate->Dispose();
    iso->allocator.reset(); // V8 keeps it if a backing store outlives the isolate
    nano_buf_fini(&iso->scratch);
    iso->isolate = nullptr;
    // The rt_isolate itself goes when its three handles have closed.
    uv_close((uv_handle_t *)&iso->timer, on_handle_closed);
}

// Calls internal[name](args...) and returns its result, or empty with the exception logged.
static MaybeLocal<Value> call_internal(rt_isolate *iso, Local<Context> ctx, const char *name,
                                       int argc, Local<Value> *argv)
{
    Isolate *isolate = iso->isolate;
    Local<Value> fn;
    TryCatch tc(isolate);
    if (!iso->internal.Get(isolate)
             ->Get(ctx, String::NewFromUtf8(isolate, name).ToLocalChecked())
             .ToLocal(&fn) ||
        !fn->IsFunction())
        return {};
    Local<Value> result;
    if (!fn.As<Function>()->Call(ctx, v8::Undefined(isolate), argc, argv).ToLocal(&result)) {
        rt_log_js_error(iso, "app.internal_failed", rt_describe_exception(iso, ctx, tc));
        return {};
    }
    return result;
}

int rt_run_script(rt_isolate *iso, const char *path, nano_error *err)
{
    std::string text;
    nano_error why = {};
    if (!rt_read_file(path, &text, &why))
        return nano_error_set(err, NANO_ENOENT, "script_unreadable", "cannot read script %s",
                              why.message);
    JsEntry js(iso);
    Isolate *isolate = iso->isolate;
    Local<Context> ctx = js.context();
    Local<String> source_text;
    if (!String::NewFromUtf8(isolate, text.data(), v8::NewStringType::kNormal, (int)text.size())
             .ToLocal(&source_text))
        return nano_error_set(err, NANO_ETOOBIG, "script_too_large", "script %s is too large",
                              path);
    v8::ScriptOrigin origin(isolate, String::NewFromUtf8(isolate, path).ToLocalChecked());
    TryCatch tc(isolate);
    Local<v8::Script> script;
    if (v8::Script::Compile(ctx, source_text, &origin).ToLocal(&script) &&
        !script->Run(ctx).IsEmpty())
        return 0;
    if (tc.HasTerminated())
        return nano_error_set(err, NANO_EJS, "script_terminated", "%s: execution terminated", path);
    // Like any uncaught error: the error event on globalThis first, then the log.
    Local<Value> ex = tc.Exception();
    tc.Reset();
    Local<Value> argv[] = {ex};
    if (call_internal(iso, ctx, "reportUncaught", 1, argv).IsEmpty())
        rt_log_js_error(iso, "app.uncaught", describe_value(iso, ctx, ex));
    return nano_error_set(err, NANO_EJS, "script_threw", "%s threw an uncaught exception", path);
}

int rt_run_tests(rt_isolate *iso, const char *path, const char *filter, uint64_t timeout_ms,
                 rt_test_counts *out, nano_error *err)
{
    *out = {};
    JsEntry js(iso);
    Isolate *isolate = iso->isolate;
    Local<Context> ctx = js.context();
    Local<v8::Module> module;
    if (!rt_load_module_graph(iso, ctx, path, err).ToLocal(&module))
        return err != nullptr && err->code != 0 ? err->code : NANO_EJS;
    int rc = evaluate_module(iso, ctx, module, path, err);
    if (rc != 0)
        return rc;
    Local<Value> argv[] = {
        module->GetModuleNamespace(),
        String::NewFromUtf8(isolate, path).ToLocalChecked(),
        filter != nullptr ? String::NewFromUtf8(isolate, filter).ToLocalChecked().As<Value>()
                          : v8::Undefined(isolate).As<Value>(),
        v8::Number::New(isolate, (double)timeout_ms),
    };
    Local<Value> result;
    if (!call_internal(iso, ctx, "runTests", 4, argv).ToLocal(&result) || !result->IsPromise())
        return nano_error_set(err, NANO_EJS, "test_runner_failed", "%s: the test runner failed",
                              path);
    Local<v8::Promise> promise = result.As<v8::Promise>();
    if (await_settled(iso, promise) != 0 || promise->State() != v8::Promise::kFulfilled)
        return nano_error_set(err, NANO_EJS, "test_runner_failed",
                              "%s: the test run did not finish", path);
    Local<Object> counts = promise->Result().As<Object>();
    auto get = [&](const char *key) {
        Local<Value> v;
        if (!counts->Get(ctx, String::NewFromUtf8(isolate, key).ToLocalChecked()).ToLocal(&v))
            return 0;
        return v->Int32Value(ctx).FromMaybe(0);
    };
    out->passed = get("passed");
    out->failed = get("failed");
    out->skipped = get("skipped");
    return 0;
}

// --- Multi-tenant serving: hooks, limits, env changes, shutdown (runtime.h) ----------------

void rt_isolate_set_hooks(rt_isolate *iso, const rt_hooks *hooks)
{
    iso->hooks = *hooks;
}

void rt_isolate_set_watch(rt_isolate *iso, rt_watch *watch, uint64_t cpu_limit_ms)
{
    iso->watch = watch;
    iso->cpu_limit_ms = cpu_limit_ms;
}

void rt_isolate_terminate(rt_isolate *iso)
{
    // The caller holds the watch's lock: the slot is the running segment's.
    iso->terminated_slot.store(iso->watch != nullptr ? iso->watch->slot : kNoSlot);
    iso->is_terminating.store(true);
    iso->isolate->TerminateExecution();
}

void rt_isolate_shutdown(rt_isolate *iso, uint64_t deadline_ms, void (*done)(void *ud), void *ud)
{
    iso->shutdown_done = done;
    iso->shutdown_ud = ud;
    if (iso->is_broken) {
        rt__shutdown_settled(iso);
        return;
    }
    JsEntry js(iso);
    Local<Value> args[] = {v8::Number::New(iso->isolate, (double)deadline_ms)};
    if (call_internal(iso, js.context(), "dispatchShutdown", 1, args).IsEmpty())
        rt__shutdown_settled(iso); // the event could not even fire: nothing to wait for
}

void rt__shutdown_settled(rt_isolate *iso)
{
    auto done = iso->shutdown_done;
    iso->shutdown_done = nullptr;
    if (done != nullptr)
        done(iso->shutdown_ud);
}

size_t rt_isolate_heap_used(rt_isolate *iso)
{
    v8::HeapStatistics stats;
    iso->isolate->GetHeapStatistics(&stats);
    return stats.used_heap_size();
}
