// pool.cc: ready isolates for new apps. Creating an isolate from the snapshot costs a few
// milliseconds (Isolate::New plus the context's deserialization); giving one that already
// exists an app costs its module compile and little else. So each loop keeps a few ready,
// made between requests: a uv_idle callback makes one per loop iteration until the pool is
// back at its target. Loop thread only.
#include "runtime_int.h"

extern "C" {
#include "log.h"
}

struct rt_pool {
    uv_loop_t *loop = nullptr;
    size_t target = 0;
    std::vector<rt_isolate *> ready;
    uv_idle_t refill;
    bool is_failed = false; // sticky: a creation failed once (logged); no more refills
};

static void on_refill(uv_idle_t *h)
{
    rt_pool *pool = static_cast<rt_pool *>(h->data);
    if (pool->ready.size() < pool->target) {
        rt_isolate *iso = nullptr;
        nano_error err = {};
        if (rt__isolate_create(pool->loop, RT_POOL_HEAP_LIMIT_MB, &iso, &err) == 0) {
            pool->ready.push_back(iso);
        } else {
            // Not worth retrying every iteration: the same snapshot fails the same way.
            // rt_isolate_new still creates isolates itself (and reports the error there).
            NANO_WARN("rt.pool_refill_failed", "error_id=%s", err.id);
            pool->is_failed = true;
        }
    }
    if (pool->ready.size() >= pool->target || pool->is_failed)
        uv_idle_stop(h);
}

rt_pool *rt_pool_new(uv_loop_t *loop, size_t target)
{
    auto *pool = new rt_pool();
    pool->loop = loop;
    pool->target = target;
    uv_idle_init(loop, &pool->refill);
    pool->refill.data = pool;
    // Refilling is opportunistic: it must not keep a loop that is otherwise done alive.
    uv_unref((uv_handle_t *)&pool->refill);
    if (target > 0)
        uv_idle_start(&pool->refill, on_refill);
    return pool;
}

size_t rt_pool_n_ready(const rt_pool *pool)
{
    return pool->ready.size();
}

rt_isolate *rt__pool_take(rt_pool *pool, uv_loop_t *loop)
{
    if (pool == nullptr || pool->loop != loop || pool->ready.empty())
        return nullptr;
    // The newest: its pages are the likeliest to still be in the CPU caches.
    rt_isolate *iso = pool->ready.back();
    pool->ready.pop_back();
    if (!pool->is_failed)
        uv_idle_start(&pool->refill, on_refill);
    return iso;
}

void rt_pool_free(rt_pool *pool)
{
    if (pool == nullptr)
        return;
    for (rt_isolate *iso : pool->ready)
        rt_isolate_free(iso);
    pool->ready.clear();
    uv_idle_stop(&pool->refill);
    uv_close((uv_handle_t *)&pool->refill,
             [](uv_handle_t *h) { delete static_cast<rt_pool *>(h->data); });
}
