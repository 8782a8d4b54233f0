// platform.cc: the v8::Platform nano-dp gives V8. Worker-thread work, jobs, time and tracing go
// to V8's default platform; an isolate's foreground tasks (async WebAssembly compilation
// results, FinalizationRegistry cleanup, ...) are queued here and run on the isolate's libuv
// loop, woken by uv_async from whichever thread posts them. Without this, those tasks would
// sit in the default platform's queue forever: nothing pumps it.
//
// Background work is counted (worker tasks and jobs in flight) so that a loop with nothing
// else to do can wait for it instead of exiting while a compile is still running.
#include "runtime_int.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

// Background work a loop may wait for (rt_platform_wait_for_work): worker tasks not yet run,
// and jobs that still have work (GetMaxConcurrency > 0) or are running. A job's object can
// outlive its work (V8 keeps some handles), so jobs are asked, not counted.
class CountedJob;
static std::mutex g_work_mu;
static std::condition_variable g_work_cv;
static int g_tasks_in_flight = 0;               // guarded by g_work_mu
static std::unordered_set<CountedJob *> g_jobs; // guarded by g_work_mu

static void notify_work()
{
    std::lock_guard<std::mutex> lock(g_work_mu);
    g_work_cv.notify_all();
}

// A worker task that reports when it has run (or was dropped unrun).
class CountedTask : public v8::Task {
  public:
    explicit CountedTask(std::unique_ptr<v8::Task> task) : task_(std::move(task))
    {
        std::lock_guard<std::mutex> lock(g_work_mu);
        g_tasks_in_flight++;
    }
    ~CountedTask() override
    {
        std::lock_guard<std::mutex> lock(g_work_mu);
        g_tasks_in_flight--;
        g_work_cv.notify_all();
    }
    void Run() override { task_->Run(); }

  private:
    std::unique_ptr<v8::Task> task_;
};

class CountedJob : public v8::JobTask {
  public:
    explicit CountedJob(std::unique_ptr<v8::JobTask> job) : job_(std::move(job))
    {
        std::lock_guard<std::mutex> lock(g_work_mu);
        g_jobs.insert(this);
    }
    ~CountedJob() override
    {
        std::lock_guard<std::mutex> lock(g_work_mu);
        g_jobs.erase(this);
        g_work_cv.notify_all();
    }
    void Run(v8::JobDelegate *delegate) override
    {
        running_++;
        job_->Run(delegate);
        running_--;
        notify_work();
    }
    size_t GetMaxConcurrency(size_t worker_count) const override
    {
        return job_->GetMaxConcurrency(worker_count);
    }
    bool has_work() const { return running_ > 0 || job_->GetMaxConcurrency(0) > 0; }

  private:
    std::unique_ptr<v8::JobTask> job_;
    std::atomic<int> running_{0};
};

// Caller holds g_work_mu.
static bool background_busy()
{
    if (g_tasks_in_flight > 0)
        return true;
    for (CountedJob *job : g_jobs)
        if (job->has_work())
            return true;
    return false;
}

// Foreground tasks of one isolate. Posted from any thread; run on the loop thread.
class LoopTaskRunner : public v8::TaskRunner {
  public:
    explicit LoopTaskRunner(uv_async_t *wakeup) : wakeup_(wakeup) {}

    void PostTask(std::unique_ptr<v8::Task> task) override { post(std::move(task), 0); }
    void PostNonNestableTask(std::unique_ptr<v8::Task> task) override { post(std::move(task), 0); }
    void PostDelayedTask(std::unique_ptr<v8::Task> task, double delay_s) override
    {
        post(std::move(task), delay_s);
    }
    void PostNonNestableDelayedTask(std::unique_ptr<v8::Task> task, double delay_s) override
    {
        post(std::move(task), delay_s);
    }
    void PostIdleTask(std::unique_ptr<v8::IdleTask>) override {} // IdleTasksEnabled is false
    bool IdleTasksEnabled() override { return false; }
    bool NonNestableTasksEnabled() const override { return true; }
    bool NonNestableDelayedTasksEnabled() const override { return true; }

    // Loop thread: the tasks due at now_ms; *next_ms gets the next deadline (or -1).
    std::vector<std::unique_ptr<v8::Task>> take_due(uint64_t now_ms, int64_t *next_ms)
    {
        std::vector<std::unique_ptr<v8::Task>> due;
        std::lock_guard<std::mutex> lock(mu_);
        *next_ms = -1;
        for (auto it = tasks_.begin(); it != tasks_.end();) {
            if (it->deadline_ms <= now_ms) {
                due.push_back(std::move(it->task));
                it = tasks_.erase(it);
            } else {
                if (*next_ms < 0 || (int64_t)it->deadline_ms < *next_ms)
                    *next_ms = (int64_t)it->deadline_ms;
                ++it;
            }
        }
        return due;
    }

    bool has_tasks()
    {
        std::lock_guard<std::mutex> lock(mu_);
        return !tasks_.empty();
    }

    // The isolate is going: later posts are dropped, queued tasks freed.
    void close()
    {
        std::lock_guard<std::mutex> lock(mu_);
        wakeup_ = nullptr;
        tasks_.clear();
    }

  private:
    struct Entry {
        uint64_t deadline_ms;
        std::unique_ptr<v8::Task> task;
    };

    void post(std::unique_ptr<v8::Task> task, double delay_s)
    {
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (wakeup_ == nullptr)
                return;
            uint64_t now_ms = uv_hrtime() / 1000000;
            tasks_.push_back({now_ms + (uint64_t)(delay_s * 1000), std::move(task)});
            uv_async_send(wakeup_);
        }
        notify_work();
    }

    std::mutex mu_;
    uv_async_t *wakeup_;
    std::deque<Entry> tasks_;
};

class NanoPlatform : public v8::Platform {
  public:
    explicit NanoPlatform(std::unique_ptr<v8::Platform> base) : base_(std::move(base)) {}

    int NumberOfWorkerThreads() override { return base_->NumberOfWorkerThreads(); }
    std::shared_ptr<v8::TaskRunner> GetForegroundTaskRunner(v8::Isolate *isolate) override
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = runners_.find(isolate);
        if (it != runners_.end())
            return it->second;
        return base_->GetForegroundTaskRunner(isolate);
    }
    void CallOnWorkerThread(std::unique_ptr<v8::Task> task) override
    {
        base_->CallOnWorkerThread(std::make_unique<CountedTask>(std::move(task)));
    }
    void CallDelayedOnWorkerThread(std::unique_ptr<v8::Task> task, double delay_s) override
    {
        base_->CallDelayedOnWorkerThread(std::make_unique<CountedTask>(std::move(task)), delay_s);
    }
    bool IdleTasksEnabled(v8::Isolate *) override { return false; }
    std::unique_ptr<v8::JobHandle> PostJob(v8::TaskPriority priority,
                                           std::unique_ptr<v8::JobTask> job) override
    {
        return base_->PostJob(priority, std::make_unique<CountedJob>(std::move(job)));
    }
    double MonotonicallyIncreasingTime() override { return base_->MonotonicallyIncreasingTime(); }
    double CurrentClockTimeMillis() override { return base_->CurrentClockTimeMillis(); }
    v8::TracingController *GetTracingController() override { return base_->GetTracingController(); }
    v8::PageAllocator *GetPageAllocator() override { return base_->GetPageAllocator(); }
    StackTracePrinter GetStackTracePrinter() override { return base_->GetStackTracePrinter(); }

    std::shared_ptr<LoopTaskRunner> add(v8::Isolate *isolate, uv_async_t *wakeup)
    {
        auto runner = std::make_shared<LoopTaskRunner>(wakeup);
        std::lock_guard<std::mutex> lock(mu_);
        runners_[isolate] = runner;
        return runner;
    }
    void remove(v8::Isolate *isolate)
    {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = runners_.find(isolate);
        if (it == runners_.end())
            return;
        it->second->close();
        runners_.erase(it);
    }

  private:
    std::unique_ptr<v8::Platform> base_;
    std::mutex mu_;
    std::unordered_map<v8::Isolate *, std::shared_ptr<LoopTaskRunner>> runners_;
};

static std::unique_ptr<NanoPlatform> g_nano_platform;

v8::Platform *rt_platform_create(void)
{
    g_nano_platform = std::make_unique<NanoPlatform>(v8::platform::NewDefaultPlatform());
    return g_nano_platform.get();
}

void rt_platform_destroy(void)
{
    g_nano_platform.reset();
}

// Runs the foreground tasks that are due; re-arms the timer for delayed ones.
static void run_due_tasks(rt_isolate *iso)
{
    if (iso->task_runner == nullptr)
        return;
    int64_t next_ms = -1;
    auto due = iso->task_runner->take_due(uv_hrtime() / 1000000, &next_ms);
    if (!due.empty()) {
        JsEntry js(iso);
        for (auto &task : due)
            task->Run();
    }
    if (next_ms >= 0) {
        uint64_t now_ms = uv_hrtime() / 1000000;
        uv_timer_start(
            &iso->task_timer,
            [](uv_timer_t *t) { run_due_tasks(static_cast<rt_isolate *>(t->data)); },
            next_ms > (int64_t)now_ms ? (uint64_t)next_ms - now_ms : 0, 0);
    }
}

void rt_platform_attach(rt_isolate *iso)
{
    uv_async_init(iso->loop, &iso->task_async,
                  [](uv_async_t *a) { run_due_tasks(static_cast<rt_isolate *>(a->data)); });
    iso->task_async.data = iso;
    // Queued tasks alone do not keep a process alive; rt_platform_wait_for_work covers
    // background work a caller is waiting for.
    uv_unref((uv_handle_t *)&iso->task_async);
    uv_timer_init(iso->loop, &iso->task_timer);
    iso->task_timer.data = iso;
    uv_unref((uv_handle_t *)&iso->task_timer);
    iso->task_runner = g_nano_platform->add(iso->isolate, &iso->task_async);
}

void rt_platform_detach(rt_isolate *iso, uv_close_cb on_closed)
{
    g_nano_platform->remove(iso->isolate);
    iso->task_runner.reset();
    uv_close((uv_handle_t *)&iso->task_async, on_closed);
    uv_close((uv_handle_t *)&iso->task_timer, on_closed);
}

bool rt_platform_wait_for_work(rt_isolate *iso, int timeout_ms)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::unique_lock<std::mutex> lock(g_work_mu);
    for (;;) {
        if (iso->task_runner->has_tasks())
            return true;
        if (!background_busy() || std::chrono::steady_clock::now() >= deadline)
            return false;
        // Jobs do not announce running out of work: look again every few milliseconds.
        g_work_cv.wait_for(lock, std::chrono::milliseconds(5));
    }
}

void rt_platform_run_tasks(rt_isolate *iso)
{
    run_due_tasks(iso);
}
