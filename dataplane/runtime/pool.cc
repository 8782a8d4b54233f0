// pool.cc: ready isolates for new apps. Creating an isolate from the snapshot costs a few
// milliseconds (Isolate::New plus the context's deserialization); giving one that already
// exists an app costs its module compile and little else. So each loop keeps a few ready,
// made between requests: a timer makes one per loop iteration until the pool is back at its
// target. Making one blocks the loop for milliseconds, so after a take the refill waits for
// RT_POOL_REFILL_DELAY_MS without takes: a burst of new apps (a deploy, a cold node) is not
// slowed by refills between its requests. Loop thread only.
#include "runtime_int.h"

extern "C" {
#include "log.h"
}

struct rt_pool {
    uv_loop_t *loop = nullptr;
    size_t target = 0;
    size_t heap_limit_mb = RT_POOL_HEAP_LIMIT_MB; // what its isolates are made with
    std::vector<rt_isolate *> ready;
    uv_timer_t refill;
    uint64_t last_take_ms = 0;
    bool is_failed = false; // sticky: a creation failed once (logged); no more refills
};

static void on_refill(uv_timer_t *h)
{
    rt_pool *pool = static_cast<rt_pool *>(h->data);
    uint64_t since_take = uv_now(pool->loop) - pool->last_take_ms;
    if (pool->last_take_ms != 0 && since_take < RT_POOL_REFILL_DELAY_MS) {
        uv_timer_start(h, on_refill, RT_POOL_REFILL_DELAY_MS - since_take, 0);
        return;
    }
    if (pool->ready.size() < pool->target) {
        rt_isolate *iso = nullptr;
        nano_error err = {};
        if (rt__isolate_create(pool->loop, pool->heap_limit_mb, &iso, &err) == 0) {
            pool->ready.push_back(iso);
        } else {
            // Not worth retrying every iteration: the same snapshot fails the same way.
            // rt_isolate_new still creates isolates itself (and reports the error there).
            NANO_WARN("rt.pool_refill_failed", "error_id=%s", err.id);
            pool->is_failed = true;
        }
    }
    if (pool->ready.size() < pool->target && !pool->is_failed)
        // The next one at a later loop turn. Not a zero timeout: libuv 1.44 runs a zero timer
        // re-armed in its own callback again in the same turn, so the whole pool would be made
        // before the loop polled again.
        uv_timer_start(h, on_refill, 1, 0);
}

rt_pool *rt_pool_new(uv_loop_t *loop, size_t target, size_t heap_limit_mb)
{
    auto *pool = new rt_pool();
    pool->loop = loop;
    pool->target = target;
    if (heap_limit_mb != 0)
        pool->heap_limit_mb = heap_limit_mb;
    uv_timer_init(loop, &pool->refill);
    pool->refill.data = pool;
    // Refilling is opportunistic: it must not keep a loop that is otherwise done alive.
    uv_unref((uv_handle_t *)&pool->refill);
    rt_pool_defer(pool);
    return pool;
}

void rt_pool_defer(rt_pool *pool)
{
    if (pool->target == 0 || pool->is_failed)
        return;
    // As after a take: the refill waits until nothing was taken for the delay.
    uv_update_time(pool->loop);
    pool->last_take_ms = uv_now(pool->loop);
    uv_timer_start(&pool->refill, on_refill, RT_POOL_REFILL_DELAY_MS, 0);
}

size_t rt_pool_n_ready(const rt_pool *pool)
{
    return pool->ready.size();
}

size_t rt_pool_heap_limit_mb(const rt_pool *pool)
{
    return pool->heap_limit_mb;
}

rt_isolate *rt__pool_take(rt_pool *pool, uv_loop_t *loop, size_t heap_limit_mb)
{
    if (pool == nullptr || pool->loop != loop || pool->ready.empty() ||
        heap_limit_mb > pool->heap_limit_mb)
        return nullptr;
    // The newest: its pages are the likeliest to still be in the CPU caches.
    rt_isolate *iso = pool->ready.back();
    pool->ready.pop_back();
    pool->last_take_ms = uv_now(loop);
    if (!pool->is_failed && !uv_is_active((uv_handle_t *)&pool->refill))
        uv_timer_start(&pool->refill, on_refill, RT_POOL_REFILL_DELAY_MS, 0);
    return iso;
}

void rt_pool_free(rt_pool *pool)
{
    if (pool == nullptr)
        return;
    for (rt_isolate *iso : pool->ready)
        rt_isolate_free(iso);
    pool->ready.clear();
    uv_timer_stop(&pool->refill);
    uv_close((uv_handle_t *)&pool->refill,
             [](uv_handle_t *h) { delete static_cast<rt_pool *>(h->data); });
}
