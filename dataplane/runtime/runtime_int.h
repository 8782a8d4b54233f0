// runtime_int.h: the rt_isolate structure and helpers shared by the runtime's C++ files.
// Only dataplane/runtime/*.cc include this.
#ifndef RT_RUNTIME_INT_H
#define RT_RUNTIME_INT_H

#include <libplatform/libplatform.h>
#include <v8.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include "buf.h"
#include "runtime.h"
#include "request.h"
}

class LoopTaskRunner;   // platform.cc
struct rt_compression;  // compression.cc
struct rt_crypto_job;   // crypto.cc
struct rt_pkey_box;     // crypto.cc
struct rt_crypto_retry; // crypto.cc
struct rt_fetches;      // fetch.cc

// The memory limit of an app that asks for none (docs/config.md#limits).
constexpr size_t RT_DEFAULT_MEMORY_MB = 128;

// allocator.cc: the ArrayBuffer allocator of one isolate. It counts the bytes of the backing
// stores it made and of the request body chunks the runtime adopted, and refuses a backing
// store that would take them past the app's memory limit less the heap (the rules are at the
// top of allocator.cc). Its methods may run on any thread: V8 frees a backing store wherever
// its last reference goes.
class rt_allocator final : public v8::ArrayBuffer::Allocator {
  public:
    void *Allocate(size_t len) override;
    void *AllocateUninitialized(size_t len) override;
    void *Reallocate(void *data, size_t old_len, size_t new_len) override;
    void Free(void *data, size_t len) override;

    // A body chunk of len bytes now held by an ArrayBuffer (never refused), and its release.
    void adopt(size_t len);
    void release_adopted(size_t len);
    // Bytes of live backing stores made here plus adopted ones.
    size_t external_bytes() const;
    size_t limit() const { return limit_.load(std::memory_order_relaxed); }
    void set_limit(size_t bytes) { limit_.store(bytes, std::memory_order_relaxed); }
    // The heap live after the last full GC: what the limit leaves to backing stores.
    void set_heap_live(size_t bytes) { heap_live_.store(bytes, std::memory_order_relaxed); }
    // Counts isolate's heap in use now, too, near the limit (allocator.cc, room).
    void watch_heap(v8::Isolate *isolate) { isolate_.store(isolate, std::memory_order_relaxed); }
    // Whether a backing store of len bytes would be given now.
    bool fits(size_t len) const;
    // While set, nothing is refused: for a native's allocation already known to fit, which
    // V8 would abort the process over if a GC in between made it not fit any more.
    void set_granting(bool on) { is_granting_.store(on, std::memory_order_relaxed); }
    // Bytes of backing stores made or adopted since the last GC began (rt_memory_after_entry).
    size_t young_bytes() const { return young_.load(std::memory_order_relaxed); }
    void reset_young_bytes() { young_.store(0, std::memory_order_relaxed); }

  private:
    bool reserve(size_t len);
    void unreserve(size_t len);
    size_t room(size_t len) const;
    static constexpr size_t kLargeAllocation = 64 * 1024;
    std::atomic<v8::Isolate *> isolate_{nullptr};
    std::atomic<bool> is_granting_{false};
    std::atomic<size_t> allocated_{0};
    std::atomic<size_t> adopted_{0};
    std::atomic<size_t> young_{0};
    std::atomic<size_t> heap_live_{0};
    std::atomic<size_t> limit_{RT_DEFAULT_MEMORY_MB << 20};
};

// rt_ignore: consumes a Maybe whose failure needs no handling here: V8 calls like Set/Resolve
// fail only with an exception already pending (or execution terminating), which the caller's
// TryCatch or the surrounding JsEntry reports.
template <class T> inline void rt_ignore(v8::Maybe<T>) {}
template <class T> inline void rt_ignore(v8::MaybeLocal<T>) {}

// One request the runtime holds: JS names it by id (slot index + generation), so a stale id
// from a finished request is detected, never dereferenced.
struct rt_slot {
    dp_request *req = nullptr;
    uint32_t gen = 0;
    int wait_until = 0;         // ctx.waitUntil promises not yet settled
    bool is_responded = false;  // the response ended (or failed): JS is done with it
    bool is_body_whole = false; // body_waiter wants the whole body, not the next bytes
    uint64_t js_ns = 0;         // JS time charged to this request (its CPU budget)
    uint32_t n_subrequests = 0; // fetch() hops started for this request (fetch.cc)
    uint32_t n_fetches = 0;     // fetches this request owns now (fetch.cc)
    uint32_t pipe_fetch = 0;    // the fetch whose body respondPipe sends (0: the request's own)
    uint32_t upload_fetch = 0;  // the fetch uploading this request's body as it arrives
    v8::Global<v8::Promise::Resolver> body_waiter;
    v8::Global<v8::Promise::Resolver> writable_waiter; // a streamed response waits for room
};

struct rt_module {
    std::string path;
    v8::Global<v8::Module> module;
    // The compile cache key of its source when this isolate compiled it without an entry
    // (it makes the entry once the app has loaded); empty otherwise.
    std::string cache_key;
};

struct rt_isolate {
    uv_loop_t *loop = nullptr;
    v8::Isolate *isolate = nullptr;
    // Shared with V8, which keeps it while any backing store it made is alive.
    std::shared_ptr<rt_allocator> allocator;
    bool has_heap_limit = false; // V8's heap is capped (rt__isolate_create got a limit)
    v8::Global<v8::Context> context;
    v8::Global<v8::Object> internal;
    v8::Global<v8::Function> dispatch;
    v8::Global<v8::Function> run_timers;
    v8::Global<v8::Function> format_uncaught;
    v8::Global<v8::Function> request_aborted;
    // The common request methods as JS strings, made once (rt_call_fetch).
    v8::Eternal<v8::String> method_names[7];
    std::string name;
    std::string console_prefix; // "app=NAME"
    rt_console_mode console_mode = RT_CONSOLE_LOG;
    std::string location; // --location, or empty
    std::vector<rt_module> modules;
    std::vector<rt_slot> slots;
    std::vector<uint32_t> free_slots;
    size_t n_pending = 0;
    uv_timer_t timer;
    bool is_timer_open = false;
    uv_async_t task_async; // wakes the loop for V8 foreground tasks (platform.cc)
    uv_timer_t task_timer; // for delayed foreground tasks
    std::shared_ptr<LoopTaskRunner> task_runner;
    int n_handles_open = 0;
    int depth = 0; // nesting of C -> JS entries; microtasks run at depth 0
    uint64_t time_origin_ns = 0;
    struct rejection {
        v8::Global<v8::Promise> promise;
        v8::Global<v8::Value> reason;
    };
    std::vector<rejection> rejections;   // rejected without a handler, not yet reported
    std::vector<rejection> late_handled; // gained a handler after being rejected
    nano_buf scratch = NANO_BUF_INIT;
    // Request body chunks handed to JS are reported to V8 a second time as external memory,
    // so that their garbage is collected sooner (runtime.cc take_body); the bytes of chunks
    // freed since (their deleter may run on a GC thread) are taken back on the loop thread.
    std::atomic<int64_t> body_bytes_freed{0};
    std::vector<void *> converters;          // ICU converters of TextDecoders (encoding.cc), by id
    rt_compression *compression = nullptr;   // codec states of (De)CompressionStreams
    rt_crypto_job *crypto_jobs = nullptr;    // crypto.subtle work on the thread pool, newest first
    int n_crypto_running = 0;                // of which queued on the pool
    int n_crypto_jobs = 0;                   // in crypto_jobs
    rt_fetches *fetches = nullptr;           // outbound fetches in flight (fetch.cc)
    struct dp_client *http_client = nullptr; // the worker's, borrowed (NULL: fetch.cc makes one)
    uint32_t subrequest_limit = 0;           // per request (limits.subrequests; 0: none)
    uint64_t wall_limit_ms = 0; // the app's wall_time (0: none): bounds fetches no request owns
    struct nano_egress *egress_node = nullptr; // references (fetch.cc checks each connection)
    struct nano_egress *egress_app = nullptr;
    rt_pkey_box *pkeys = nullptr;                 // asymmetric CryptoKey handles alive (crypto.cc)
    rt_crypto_retry *crypto_retry = nullptr;      // retries long jobs over the process's share
    v8::Global<v8::ObjectTemplate> pkey_template; // their objects' template, made on first use
    // Multi-tenant serving (worker.c): hooks, the watchdog's view, limits, env secrets.
    rt_hooks hooks = {};
    rt_watch *watch = nullptr;
    uint64_t cpu_limit_ms = 0;
    std::atomic<bool> is_terminating{false};           // rt_isolate_terminate ran (watchdog thread)
    std::atomic<uint32_t> terminated_slot{UINT32_MAX}; // the request it stopped
    bool is_broken = false;                            // hit the heap limit: no more JS here
    bool node_compat = false;
    uint32_t current_slot = UINT32_MAX; // the request the running JS segment is charged to
    uint32_t segment_gen = 0;           // that slot's generation when the segment began
    uint64_t segment_start_ns = 0;      // uv_hrtime() when the segment began
    bool in_timer_callback = false;     // on_timer is running (timer re-arms wait a turn)
    bool is_loading = false;            // rt_isolate_new is running the app's module code
    // Timer JS run for no request may use cpu_limit_ms per second, in bursts of as much
    // (rt_background_wait_ms): a token bucket, in ns, refilled when read.
    int64_t background_tokens_ns = 0;
    uint64_t background_refilled_ns = 0;
    std::vector<std::string> secrets; // values to mask: the current and the previous env's
    std::vector<std::string> current_secrets;
    // The main module's source when the config carries it (compiled instead of the file, so
    // a deployment runs exactly the code its hash names); main_real is its resolved path.
    std::string main_real;
    std::string main_source;
    const struct nano_module_source *imports = nullptr; // borrowed (rt_app_options.imports)
    size_t n_imports = 0;
    void (*shutdown_done)(void *) = nullptr;
    void *shutdown_ud = nullptr;
};

// rt_isolate_shutdown's wait is over (binding.shutdownDone, or nothing to wait for).
void rt__shutdown_settled(rt_isolate *iso);

// rt_redact: text with every secret value of the app replaced by [REDACTED].
std::string rt_redact(const rt_isolate *iso, std::string text);

// The rt_isolate of a V8 isolate (its data slot 0).
inline rt_isolate *rt_isolate_of(v8::Isolate *isolate)
{
    return static_cast<rt_isolate *>(isolate->GetData(0));
}

// A native function on `binding`. Each source file with natives lists them in one table; the
// tables are both what rt_make_binding installs and the snapshot's external references.
struct rt_native {
    const char *name;
    v8::FunctionCallback fn;
};
typedef const rt_native *(*rt_natives_fn)(size_t *n);
extern const rt_natives_fn rt_native_lists[]; // bindings.cc; ends with nullptr

// Request ids: slot index in the low 20 bits, generation above (fits a double exactly).
constexpr uint32_t kSlotBits = 20;
constexpr uint32_t kMaxSlots = 1u << kSlotBits;

// Enter/leave JS from a C callback: scopes, and at the outermost level the microtask
// checkpoint plus the report of unhandled rejections.
// Entering an isolate costs V8 a per-thread data lookup; entering the one already entered
// costs a counter. So a thread keeps the isolate it last ran entered ("parked") and leaves
// it only to run another one (or when it is freed): back-to-back requests for one app pay
// the full entry once.
struct ParkIsolate {
    explicit ParkIsolate(v8::Isolate *isolate);
};
void rt_unpark(v8::Isolate *isolate); // before disposing of it

// The slot of "no request" (module code, unowned timers, shutdown events, V8's tasks).
constexpr uint32_t kNoSlot = UINT32_MAX;

// slot: the request the JS of this entry runs for (kNoSlot: none). An outermost entry
// starts a segment for it (rt_watch in runtime.h); a nested entry for another request
// switches the segment to it and back when it ends.
class JsEntry {
  public:
    explicit JsEntry(rt_isolate *iso, uint32_t slot = kNoSlot);
    ~JsEntry();
    v8::Local<v8::Context> context() const { return ctx_; }

  private:
    rt_isolate *iso_;
    uint32_t outer_slot_;
    uint32_t outer_gen_;
    bool is_switched_ = false;
    ParkIsolate park_;
    v8::Isolate::Scope isolate_scope_;
    v8::HandleScope handles_;
    v8::Local<v8::Context> ctx_;
    v8::Context::Scope context_scope_;
};

// runtime.cc
void rt_microtask_checkpoint(rt_isolate *iso, v8::Local<v8::Context> ctx);
std::string rt_describe_exception(rt_isolate *iso, v8::Local<v8::Context> ctx,
                                  const v8::TryCatch &tc);
// rt_log_js_error: an error line tagged with the app (and fields, "k=v ...", when given);
// secret values in text are masked.
void rt_log_js_error(rt_isolate *iso, const char *event, const std::string &text,
                     const char *fields = nullptr);
rt_slot *rt_slot_get(rt_isolate *iso, double id);
// rt_segment_switch: charges the running segment to its request and starts one for slot
// (kNoSlot: none) or, when the slot's request is over its CPU budget or gone, for none and
// returns false. A request found over its budget is failed (500, app.cpu_limit).
bool rt_segment_switch(rt_isolate *iso, uint32_t slot, uint32_t gen);
// rt_background_wait_ms: 0 when timer JS that runs for no request may run now, else how
// long (ms) until its budget has refilled enough (runtime.cc).
double rt_background_wait_ms(rt_isolate *iso);
// The id JS uses for the request in slot index (its generation above kSlotBits).
double rt_slot_id(rt_isolate *iso, uint32_t index);
void rt_slot_maybe_release(rt_isolate *iso, uint32_t index);
void rt_settle_body(rt_isolate *iso, rt_slot *slot, v8::Local<v8::Context> ctx);
v8::Local<v8::ArrayBuffer> rt_take_body(rt_isolate *iso, rt_slot *slot);
// rt_adopt_bytes: an ArrayBuffer owning data (len bytes from nano_malloc/malloc; freed when
// collected), counted against the app's memory limit like request body chunks.
v8::Local<v8::ArrayBuffer> rt_adopt_bytes(rt_isolate *iso, void *data, size_t len);
v8::Local<v8::Value> rt_body_failed_error(rt_isolate *iso);
// Pooled isolates are made with the default app heap limit (docs/nano-dp.md, Limits) unless their pool
// says otherwise (rt_pool_new), so that apps with the default limit (most) can take them.
constexpr size_t RT_POOL_HEAP_LIMIT_MB = 128;
// A pool refills once no isolate was taken from it for this long (pool.cc).
constexpr uint64_t RT_POOL_REFILL_DELAY_MS = 100;

// rt__isolate_create: an isolate and context from the snapshot, with no app (no name, env,
// location or time origin yet: rt_isolate_new gives those). heap_limit_mb 0: V8's default.
int rt__isolate_create(uv_loop_t *loop, size_t heap_limit_mb, rt_isolate **out, nano_error *err);

// bindings.cc
v8::Local<v8::Object> rt_make_binding(v8::Isolate *isolate, v8::Local<v8::Context> ctx);
void rt_throw_type_error(v8::Isolate *isolate, const char *msg); // msg in UTF-8
const rt_native *rt_binding_natives(size_t *n);

// encoding.cc
const rt_native *rt_encoding_natives(size_t *n);
void rt_encoding_close_all(rt_isolate *iso);

// compression.cc
const rt_native *rt_compression_natives(size_t *n);
void rt_compression_init(rt_isolate *iso);      // per isolate, before JS can compress
void rt_compression_close_all(rt_isolate *iso); // frees every codec state; before Dispose

// fetch.cc
const rt_native *rt_fetch_natives(size_t *n);
void rt_fetch_release_slot(rt_isolate *iso, uint32_t index); // stops the request's fetches
void rt_fetch_close_all(rt_isolate *iso);                    // before Dispose
// rt_fetch_pipe_start: after respondPipe started the response of the request in slot index,
// whose pipe_fetch is set: the fetch's body goes to the client (false: no such fetch).
bool rt_fetch_pipe_start(rt_isolate *iso, uint32_t index);
void rt_fetch_pipe_writable(rt_isolate *iso, uint32_t index); // the socket has room again
void rt_fetch_upload_event(rt_isolate *iso, uint32_t index);  // body bytes arrived, or its end
// rt_fetch_client_gone: the client of the request in slot index left before its response
// ended: the fetches it started stop, their pending promises rejected (in JS, inside ctx).
void rt_fetch_client_gone(rt_isolate *iso, uint32_t index, v8::Local<v8::Context> ctx);

// crypto.cc
const rt_native *rt_crypto_natives(size_t *n);
const rt_native *rt_crypto_ec_natives(size_t *n);  // crypto_ec.cc
const rt_native *rt_crypto_rsa_natives(size_t *n); // crypto_rsa.cc
// rt_crypto_close_all: drops the promises of the isolate's thread-pool jobs (each is freed when
// its work completes) and frees the keys of asymmetric CryptoKeys still alive; before Dispose.
void rt_crypto_close_all(rt_isolate *iso);

// platform.cc
v8::Platform *rt_platform_create(void);
void rt_platform_destroy(void);
void rt_platform_attach(rt_isolate *iso);
void rt_platform_detach(rt_isolate *iso, uv_close_cb on_closed);
bool rt_platform_wait_for_work(rt_isolate *iso, int timeout_ms);
void rt_platform_run_tasks(rt_isolate *iso);

// allocator.cc
// rt_memory_platform_flags: V8 flags the memory check relies on; before V8::Initialize.
void rt_memory_platform_flags(void);
// rt_memory_attach: after Isolate::New, with the heap limit it was given (0: V8's default):
// installs the check after each full GC. The limit is RT_DEFAULT_MEMORY_MB until
// rt_memory_set_limit (a new allocator starts with it).
void rt_memory_attach(rt_isolate *iso, size_t heap_limit_mb);
// rt_memory_after_entry: after an outermost JS entry (its microtasks run): a young-generation
// GC when the entry left many backing stores behind (allocator.cc explains why).
void rt_memory_after_entry(rt_isolate *iso);
// rt_memory_context_lock: held while a context is made (rt_memory_after_entry explains why).
std::unique_lock<std::mutex> rt_memory_context_lock();
// rt_memory_set_limit: the app's memory limit (0: RT_DEFAULT_MEMORY_MB), set when an app
// takes the isolate (a pooled one was made before the app was known).
void rt_memory_set_limit(rt_isolate *iso, size_t memory_mb);
// rt_backing_store_new: a zeroed backing store of len bytes for a native to fill, or nullptr
// with a RangeError thrown when the app's memory limit refuses it even after a full GC. Use
// it instead of ArrayBuffer::NewBackingStore(isolate, len) and ArrayBuffer::New(isolate,
// len): on a refusal those abort the process (V8's FatalProcessOutOfMemory).
// rt_backing_store_try_new: the same without the exception, for a caller with its own error.
std::unique_ptr<v8::BackingStore> rt_backing_store_new(v8::Isolate *isolate, size_t len);
std::unique_ptr<v8::BackingStore> rt_backing_store_try_new(v8::Isolate *isolate, size_t len);

// idna.cc
const rt_native *rt_idna_natives(size_t *n);

// pool.cc
// rt__pool_take: a ready isolate from pool if it has one for loop and its isolates' heap
// limit is at least heap_limit_mb, else nullptr (pool may be nullptr). Starts the refill.
rt_isolate *rt__pool_take(rt_pool *pool, uv_loop_t *loop, size_t heap_limit_mb);

// snapshot.cc
constexpr size_t kSnapshotInternal = 0; // context data index of the built-ins' `internal`
const intptr_t *rt_external_references(void);
v8::StartupData *rt_snapshot_blob(void); // nullptr when this binary has none (the generator)
// rt_load_builtins: runs every built-in file in ctx (the generator does, into the snapshot).
// The files named in eager (a null-terminated list, or null) are compiled whole, every inner
// function included, instead of each function when it first runs.
int rt_load_builtins(rt_isolate *iso, v8::Local<v8::Context> ctx,
                     v8::Local<v8::Object> *internal_out, const char *const *eager,
                     nano_error *err);

// compile_cache.cc: key is the SHA-256 (hex) of a module's source text.
// rt_compile_cache_find: the entry (memory, then the directory), or nullptr.
// rt_compile_cache_store: keeps V8's serialized code for key. rt_compile_cache_drop: V8
// rejected the entry (another version or flags): forget it.
std::shared_ptr<const std::string> rt_compile_cache_find(const std::string &key);
void rt_compile_cache_store(const std::string &key, const uint8_t *data, size_t len);
void rt_compile_cache_drop(const std::string &key);

// modules.cc
v8::MaybeLocal<v8::Module> rt_load_module_graph(rt_isolate *iso, v8::Local<v8::Context> ctx,
                                                const std::string &path, nano_error *err);
void rt_modules_install_callbacks(v8::Isolate *isolate);
// rt_modules_store_compiled: puts the code of the modules this isolate compiled without a
// compile cache entry into the cache; once the app has loaded, so that the functions its top
// level ran are in it.
void rt_modules_store_compiled(rt_isolate *iso);
// rt_read_file: the file at path (a regular file of at most NANO_CODE_MAX_BYTES; shared/file.h)
// into *out; false with *why filled ("PATH: why").
bool rt_read_file(const std::string &path, std::string *out, nano_error *why);

// request.cc: rt__slot_release ends a request's time in the isolate: its slot is freed for
// the next, the server's listener cleared, the worker's request_done hook called.
void rt__slot_release(rt_isolate *iso, uint32_t index);

// env.cc: rt__make_env is the app's frozen `env` object for env; rt__remember_secrets keeps
// its secret values for rt_redact.
v8::Local<v8::Object> rt__make_env(rt_isolate *iso, v8::Local<v8::Context> ctx,
                                   const nano_env *env);
void rt__remember_secrets(rt_isolate *iso, const nano_env *env);

#endif
