// crypto_pool.cc: crypto.subtle's work on the libuv thread pool (crypto_int.h): jobs, their
// per-isolate queues and the process-wide share of long ones, and run_op, which runs an
// operation here or as a job depending on its input's size.
#include "crypto_int.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Value;

using namespace crypto;

// --- jobs on the libuv thread pool (crypto_int.h) -----------------------------------------
//
// A job owns what its work reads and writes (job_spec's closures hold copies, never V8
// objects). The isolate lists its jobs; rt_crypto_close_all (before the isolate is disposed
// of) drops their promises and unlinks them, and a job whose isolate went meanwhile is only
// freed when its work completes.
static constexpr int kJobsRunning = 2;
static constexpr int kJobsMax = 256;

// Long jobs that cannot be sliced (job_spec::is_long: RSA key generation) hold a pool thread
// for up to seconds. At most half the pool's threads run them at once, process-wide, so the
// other half keeps serving short and sliced jobs of every app; a long job over that share
// waits in its isolate's list, which retries every few milliseconds (other isolates' long
// jobs ending do not reach this loop).
static std::atomic<int> g_long_running{0};
static constexpr uint64_t kLongRetryMs = 10;

static int long_jobs_max()
{
    static const int max = [] {
        const char *env = getenv("UV_THREADPOOL_SIZE"); // what libuv sizes its pool by
        long n = env != nullptr ? strtol(env, nullptr, 10) : 0;
        if (n <= 0)
            n = 4; // libuv's default
        return n >= 4 ? (int)(n / 2) : 1;
    }();
    return max;
}

static bool long_job_acquire()
{
    int n = g_long_running.load(std::memory_order_relaxed);
    while (n < long_jobs_max())
        if (g_long_running.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel))
            return true;
    return false;
}

// The timer that retries an isolate's waiting long jobs. Closed with the isolate (it may
// outlive it until its close callback).
struct rt_crypto_retry {
    uv_timer_t timer;
    rt_isolate *iso;
};

struct rt_crypto_job {
    uv_work_t work;
    rt_isolate *iso; // nullptr once the isolate has gone
    rt_crypto_job *prev = nullptr, *next = nullptr;
    v8::Global<v8::Promise::Resolver> resolver;
    uint32_t slot, gen; // the request the promise is for, when there is one
    crypto::job_spec spec;
    crypto::step result = crypto::step::failed;
    bool is_running = false; // queued on the pool (else waiting in the isolate's list)
    std::shared_ptr<rt_allocator> allocator; // counts held_bytes while the job lives

    ~rt_crypto_job()
    {
        if (allocator)
            allocator->release_adopted(spec.held_bytes);
    }
};

static void job_unlink(rt_crypto_job *job)
{
    if (job->iso != nullptr)
        job->iso->n_crypto_jobs--;
    if (job->prev != nullptr)
        job->prev->next = job->next;
    else if (job->iso != nullptr)
        job->iso->crypto_jobs = job->next;
    if (job->next != nullptr)
        job->next->prev = job->prev;
    job->prev = job->next = nullptr;
}

static void on_job_work(uv_work_t *w);
static void on_job_done(uv_work_t *w, int status);

static void jobs_start(rt_isolate *iso);

static void on_long_retry(uv_timer_t *t)
{
    auto *r = static_cast<rt_crypto_retry *>(t->data);
    rt_isolate *iso = r->iso;
    if (iso == nullptr || iso->is_broken || iso->isolate == nullptr)
        return;
    jobs_start(iso);
}

static void long_retry_arm(rt_isolate *iso)
{
    if (iso->crypto_retry == nullptr) {
        auto *r = new rt_crypto_retry;
        r->iso = iso;
        r->timer.data = r;
        uv_timer_init(iso->loop, &r->timer);
        iso->crypto_retry = r;
    }
    if (!uv_is_active(reinterpret_cast<uv_handle_t *>(&iso->crypto_retry->timer)))
        uv_timer_start(&iso->crypto_retry->timer, on_long_retry, kLongRetryMs, 0);
}

// Queues the oldest waiting jobs of iso while it has fewer than kJobsRunning on the pool (long
// ones only within the process's share). A job the pool refuses settles with null. Runs no JS
// otherwise, so it needs no context: a slice's end costs its request no CPU time.
static void jobs_start(rt_isolate *iso)
{
    rt_crypto_job *oldest = nullptr;
    for (rt_crypto_job *j = iso->crypto_jobs; j != nullptr; j = j->next)
        if (!j->is_running)
            oldest = j; // the list is newest first
    while (oldest != nullptr && iso->n_crypto_running < kJobsRunning) {
        rt_crypto_job *job = oldest;
        oldest = job->prev;
        while (oldest != nullptr && oldest->is_running)
            oldest = oldest->prev;
        if (job->spec.is_long && !long_job_acquire()) {
            long_retry_arm(iso); // over the process's share of long jobs: later
            continue;
        }
        job->work.data = job;
        job->is_running = true;
        iso->n_crypto_running++;
        if (uv_queue_work(iso->loop, &job->work, on_job_work, on_job_done) != 0) {
            iso->n_crypto_running--;
            if (job->spec.is_long)
                g_long_running--;
            job_unlink(job);
            JsEntry js(iso); // (never in practice: libuv refuses only a null callback)
            Isolate *isolate = iso->isolate;
            rt_ignore(job->resolver.Get(isolate)->Resolve(js.context(), v8::Null(isolate)));
            job->resolver.Reset();
            delete job;
        }
    }
}

static void on_job_work(uv_work_t *w)
{
    auto *job = static_cast<rt_crypto_job *>(w->data);
    crypto::clear_errors clear;
    job->result = job->spec.run();
}

// Whether the request a job is for is still there (a job made outside a request always is).
static bool job_is_wanted(rt_isolate *iso, const rt_crypto_job *job)
{
    return job->slot == kNoSlot ||
           (job->slot < iso->slots.size() && iso->slots[job->slot].req != nullptr &&
            iso->slots[job->slot].gen == job->gen);
}

static void job_push_newest(rt_isolate *iso, rt_crypto_job *job)
{
    iso->n_crypto_jobs++;
    job->prev = nullptr;
    job->next = iso->crypto_jobs;
    if (job->next != nullptr)
        job->next->prev = job;
    iso->crypto_jobs = job;
}

static void on_job_done(uv_work_t *w, int status)
{
    std::unique_ptr<rt_crypto_job> job(static_cast<rt_crypto_job *>(w->data));
    if (job->spec.is_long)
        g_long_running--;
    rt_isolate *iso = job->iso;
    if (iso == nullptr) // the isolate went: nothing to resolve
        return;
    job_unlink(job.get());
    iso->n_crypto_running--;
    if (iso->is_broken || iso->isolate == nullptr) {
        job->resolver.Reset();
        return;
    }
    if (status == 0 && job->result == crypto::step::again) {
        // No JS here: the request is charged nothing for its job's slices.
        if (!job_is_wanted(iso, job.get())) {
            job->resolver.Reset(); // its request ended: the rest of the work is for nobody
            jobs_start(iso);
            return;
        }
        // Another slice: behind this isolate's other waiting jobs, and (queued anew) behind
        // every job already on the pool's queue.
        job->is_running = false;
        job_push_newest(iso, job.release());
        jobs_start(iso);
        return;
    }
    Isolate *isolate = iso->isolate;
    bool is_live = job_is_wanted(iso, job.get()) && job->slot != kNoSlot;
    JsEntry js(iso, is_live ? job->slot : kNoSlot);
    Local<v8::Context> ctx = js.context();
    jobs_start(iso); // the next waiting job of this isolate takes the freed place
    Local<v8::Promise::Resolver> resolver = job->resolver.Get(isolate);
    job->resolver.Reset();
    if (status != 0 || job->result != crypto::step::done) {
        rt_ignore(resolver->Resolve(ctx, v8::Null(isolate))); // JS makes it the spec's error
        return;
    }
    v8::TryCatch tc(isolate);
    Local<Value> v = job->spec.settle(isolate);
    if (!v.IsEmpty())
        rt_ignore(resolver->Resolve(ctx, v));
    else if (tc.HasCaught() && tc.CanContinue())
        rt_ignore(resolver->Reject(ctx, tc.Exception()));
}

namespace crypto {

Local<Value> job_start(Isolate *isolate, job_spec spec)
{
    rt_isolate *iso = rt_isolate_of(isolate);
    Local<v8::Context> ctx = isolate->GetCurrentContext();
    Local<v8::Promise::Resolver> resolver;
    if (iso == nullptr || iso->loop == nullptr) {
        rt_throw_type_error(isolate, "crypto: no event loop for a thread-pool job");
        return Local<Value>();
    }
    if (!v8::Promise::Resolver::New(ctx).ToLocal(&resolver))
        return Local<Value>();
    if (iso->n_crypto_jobs >= kJobsMax) {
        rt_ignore(resolver->Resolve(ctx, v8::Null(isolate)));
        return resolver->GetPromise();
    }
    if (!memory_fits(isolate, spec.held_bytes))
        return Local<Value>();
    auto *job = new rt_crypto_job;
    job->spec = std::move(spec);
    job->allocator = iso->allocator;
    if (job->allocator)
        job->allocator->adopt(job->spec.held_bytes);
    job->iso = iso;
    job->slot = iso->current_slot;
    job->gen = iso->segment_gen;
    job->resolver.Reset(isolate, resolver);
    job_push_newest(iso, job); // the list holds it; on_job_done frees it
    jobs_start(iso);
    return resolver->GetPromise();
}

} // namespace crypto

void rt_crypto_close_all(rt_isolate *iso)
{
    while (iso->crypto_jobs != nullptr) {
        rt_crypto_job *job = iso->crypto_jobs;
        job_unlink(job);
        job->resolver.Reset();
        job->iso = nullptr;
        if (!job->is_running)
            delete job; // never queued: no callback will come
        else
            uv_cancel(reinterpret_cast<uv_req_t *>(&job->work)); // only if not started yet
    }
    iso->n_crypto_running = 0;
    if (iso->crypto_retry != nullptr) {
        iso->crypto_retry->iso = nullptr;
        uv_close(reinterpret_cast<uv_handle_t *>(&iso->crypto_retry->timer),
                 [](uv_handle_t *h) { delete static_cast<rt_crypto_retry *>(h->data); });
        iso->crypto_retry = nullptr;
    }
    crypto::pkey_close_all(iso);
}

// --- operations that run here or on the thread pool (crypto_int.h) -------------------------

static Local<Value> op_result(Isolate *isolate, bool ok, out_bytes &r, size_t n, result_kind kind)
{
    if (!ok)
        return v8::Null(isolate);
    if (kind == result_kind::boolean)
        return v8::Boolean::New(isolate, n > 0 && r.v[0] != 0);
    return take_bytes(isolate, r, n);
}

namespace crypto {

void run_op(const FunctionCallbackInfo<Value> &args, std::initializer_list<input> inputs,
            const op_options &options, op_fn op)
{
    Isolate *isolate = args.GetIsolate();
    result_kind kind = options.kind;
    size_t total = 0;
    for (const input &in : inputs)
        total += in.len;
    if (op_runs_here(total, options)) {
        clear_errors clear;
        out_bytes r;
        size_t n = 0;
        bool ok = op(inputs.begin(), r, &n);
        return_value(args, op_result(isolate, ok, r, n, kind));
        return;
    }
    struct state {
        EVP_PKEY *key = nullptr; // the job's own reference
        std::vector<std::unique_ptr<out_bytes>> copies;
        std::vector<input> views;
        out_bytes r;
        size_t n = 0;
        ~state() { EVP_PKEY_free(key); }
    };
    auto st = std::make_shared<state>();
    if (options.key != nullptr) {
        if (EVP_PKEY_up_ref(options.key) != 1)
            return args.GetReturnValue().SetNull();
        st->key = options.key;
    }
    for (const input &in : inputs) {
        st->copies.push_back(std::make_unique<out_bytes>());
        out_bytes &c = *st->copies.back();
        c.v.is_secret = in.is_secret;
        c.v.reserve(in.len + 1); // one copy, no reallocation
        c.v.assign(in.p, in.p + in.len);
        st->views.push_back({c.v.data(), in.len, in.is_secret});
    }
    job_spec spec;
    spec.held_bytes = total + options.out_len;
    spec.run = [st, op] { return op(st->views.data(), st->r, &st->n) ? step::done : step::failed; };
    spec.settle = [st, kind](Isolate *i) { return op_result(i, true, st->r, st->n, kind); };
    return_value(args, job_start(isolate, std::move(spec)));
}

std::string base64url(const uint8_t *p, size_t len)
{
    static const char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    out.reserve((len + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
    }
    return out;
}

} // namespace crypto
