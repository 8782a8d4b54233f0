// allocator.cc: an isolate's ArrayBuffer memory, counted with the heap against the app's memory
// limit (docs/nano-dp.md#limits, memory_mb).
//
// How the heap and ArrayBuffers share the one limit (memory_mb):
// - The V8 heap alone is capped at the limit by V8 (rt__isolate_create; near it,
//   on_near_heap_limit discards the isolate).
// - A backing store is refused when the backing stores (with the request body chunks held)
//   would pass the limit less the heap: the heap live after the last full GC, or, for a large
//   allocation or one near the limit, the heap in use now (room, below). V8 then collects
//   garbage (twice, then everything it can) and asks again; only if that fails too does JS
//   get its RangeError ("Array buffer allocation failed"), which the app may catch. A refusal
//   never touches the memory asked for, however large.
// - After every full GC the isolate's live memory is checked: heap plus backing stores plus
//   request body chunks it holds (see take_body in runtime.cc). Over the limit, it is stopped
//   and discarded exactly as at the heap limit (503, a fresh isolate for the next request):
//   this catches what the allocator could not refuse (a heap grown beside kept buffers, kept
//   request bodies).
// An isolate with V8's default heap limit (heap_limit_mb 0 and not from the pool: `nano-dp
// test`, `nano-dp run`) has no heap figure in that sum; its ArrayBuffers alone are capped at
// the default memory limit.
#include "runtime_int.h"

#include <cstdlib>
#include <cstring>

extern "C" {
#include "log.h"
}

// A backing store of len bytes fits if allocated + adopted + len <= limit - heap. Reserved
// before the memory is asked of malloc, so that no two allocations can pass the limit
// together; backing stores are freed on whichever thread drops them last (a GC thread too),
// hence atomics.
//
// The heap figure is the one left by the last full GC, unless the allocation is large (64 KiB
// or more: a malloc of its own, so one more look at the heap costs little beside it) or would
// leave less than a quarter of the limit: then it is the heap in use now, garbage included,
// read on the isolate's thread. A heap grown since that GC is thus seen before it can hide
// buffers past the limit; if its garbage is what leaves no room, V8's collection before the
// RangeError brings the figure down and the next attempt fits.
size_t rt_allocator::room(size_t len) const
{
    size_t limit = limit_.load(std::memory_order_relaxed);
    size_t heap = heap_live_.load(std::memory_order_relaxed);
    size_t others = adopted_.load(std::memory_order_relaxed) +
                    allocated_.load(std::memory_order_relaxed);
    bool is_near = len >= kLargeAllocation || heap + others + len > limit - limit / 4;
    v8::Isolate *isolate = isolate_.load(std::memory_order_relaxed);
    if (is_near && isolate != nullptr && v8::Isolate::GetCurrent() == isolate) {
        v8::HeapStatistics stats;
        isolate->GetHeapStatistics(&stats);
        heap = stats.used_heap_size();
    }
    size_t taken = heap + adopted_.load(std::memory_order_relaxed);
    return taken < limit ? limit - taken : 0;
}

bool rt_allocator::fits(size_t len) const
{
    size_t room = this->room(len);
    size_t cur = allocated_.load(std::memory_order_relaxed);
    return len <= room && cur <= room - len;
}

bool rt_allocator::reserve(size_t len)
{
    young_.fetch_add(len, std::memory_order_relaxed);
    if (is_granting_.load(std::memory_order_relaxed)) {
        allocated_.fetch_add(len, std::memory_order_relaxed);
        return true;
    }
    size_t room = this->room(len);
    size_t cur = allocated_.load(std::memory_order_relaxed);
    do {
        if (len > room || cur > room - len)
            return false;
    } while (!allocated_.compare_exchange_weak(cur, cur + len, std::memory_order_relaxed));
    return true;
}

void rt_allocator::unreserve(size_t len)
{
    allocated_.fetch_sub(len, std::memory_order_relaxed);
}

void *rt_allocator::Allocate(size_t len)
{
    if (!reserve(len))
        return nullptr;
    // calloc: large blocks come as fresh zero pages from mmap, not written here.
    void *p = calloc(len > 0 ? len : 1, 1);
    if (p == nullptr)
        unreserve(len);
    return p;
}

void *rt_allocator::AllocateUninitialized(size_t len)
{
    if (!reserve(len))
        return nullptr;
    void *p = malloc(len > 0 ? len : 1);
    if (p == nullptr)
        unreserve(len);
    return p;
}

// V8 zero-fills what a reallocation adds (as its default allocator does).
void *rt_allocator::Reallocate(void *data, size_t old_len, size_t new_len)
{
    if (new_len > old_len && !reserve(new_len - old_len))
        return nullptr;
    void *p = realloc(data, new_len > 0 ? new_len : 1);
    if (p == nullptr) { // data is untouched
        if (new_len > old_len)
            unreserve(new_len - old_len);
        return nullptr;
    }
    if (new_len > old_len)
        memset(static_cast<char *>(p) + old_len, 0, new_len - old_len);
    else
        unreserve(old_len - new_len);
    return p;
}

void rt_allocator::Free(void *data, size_t len)
{
    free(data);
    unreserve(len);
}

void rt_allocator::adopt(size_t len)
{
    young_.fetch_add(len, std::memory_order_relaxed);
    adopted_.fetch_add(len, std::memory_order_relaxed);
}

void rt_allocator::release_adopted(size_t len)
{
    adopted_.fetch_sub(len, std::memory_order_relaxed);
}

size_t rt_allocator::external_bytes() const
{
    return allocated_.load(std::memory_order_relaxed) + adopted_.load(std::memory_order_relaxed);
}

// After a full GC (V8 calls this on the isolate's thread, inside the GC's pause): the heap that
// survived becomes the allocator's view of it, and live memory over the limit stops the
// isolate. Backing stores found dead by this GC are already freed by now: array buffers are
// swept inside the pause (rt_memory_platform_flags).
static void on_full_gc(v8::Isolate *isolate, v8::GCType type, v8::GCCallbackFlags flags, void *data)
{
    (void)type;
    (void)flags;
    auto *iso = static_cast<rt_isolate *>(data);
    rt_allocator *a = iso->allocator.get();
    size_t heap = 0;
    if (iso->has_heap_limit) {
        v8::HeapStatistics stats;
        isolate->GetHeapStatistics(&stats);
        heap = stats.used_heap_size();
        a->set_heap_live(heap);
    }
    size_t external = a->external_bytes();
    size_t limit = a->limit();
    if (heap + external <= limit || iso->is_broken)
        return;
    // As on_near_heap_limit (runtime.cc): no more JS here; the worker answers the isolate's
    // requests 503 and discards it once the running entry has unwound.
    iso->is_broken = true;
    NANO_WARN("app.memory_limit", "%s heap_used_bytes=%zu external_bytes=%zu limit_bytes=%zu",
              iso->console_prefix.c_str(), heap, external, limit);
    isolate->TerminateExecution();
}

// Any GC sweeps the young backing stores: the count of those made since starts again.
static void on_gc_start(v8::Isolate *isolate, v8::GCType type, v8::GCCallbackFlags flags,
                        void *data)
{
    (void)isolate;
    (void)type;
    (void)flags;
    static_cast<rt_isolate *>(data)->allocator->reset_young_bytes();
}

// Young-generation GCs at the runtime's request.
//
// Why: V8 10.2 frees the backing stores of dead young ArrayBuffers only at a scavenge, and
// starts one for their sake only once 32 MiB of them are waiting (twice its largest
// semi-space: a compile-time constant), while the heap objects of a byte stream (a few
// hundred bytes per 64 KiB chunk) fill the young generation far more slowly. So an app that
// streams chunks leaves up to 32 MiB of dead buffers behind between scavenges, and malloc's
// arenas grow to about twice that: memory touched for the first time (a page fault per 4 KiB,
// ~20 us on a virtual machine: 18,000 in the first 128 MiB a fresh process streamed, 60% of
// its time), counted against the app's memory limit until the scavenge, and cold in the
// CPU's caches. A scavenge after every kYoungBytesPerGc of backing stores keeps that garbage
// small and its memory reused while still warm (bench/streams.py: the first 64 MiB of a
// fresh process went from ~300 to ~900 MB/s, peak RSS from 122 to 65 MiB).
//
// How: the one API that asks for a scavenge, Isolate::RequestGarbageCollectionForTesting,
// refuses unless V8's flag --expose-gc is set, and that flag also gives every context made
// while it is set a global gc() that tenant code must not see. So the flag (a variable that
// libnode exports) is set for just that call, under a lock that the one place making contexts
// holds too (rt_memory_context_lock): no context is ever made while it is set. The flag hash
// that V8 stamps on code caches was computed at start (rt_platform_init), so it does not see
// the flag flip. A scavenge that would wait for the lock is skipped: the next entry asks again.
namespace v8::internal {
extern bool
    FLAG_expose_gc; // libnode108 exports V8's flags (nm -D: _ZN2v88internal14FLAG_expose_gcE)
}

static std::mutex g_expose_gc_mu;
static constexpr size_t kYoungBytesPerGc = 4u << 20;

std::unique_lock<std::mutex> rt_memory_context_lock()
{
    return std::unique_lock<std::mutex>(g_expose_gc_mu);
}

void rt_memory_after_entry(rt_isolate *iso)
{
    if (iso->allocator->young_bytes() < kYoungBytesPerGc || iso->is_broken ||
        iso->isolate->IsExecutionTerminating())
        return;
    std::unique_lock<std::mutex> lock(g_expose_gc_mu, std::try_to_lock);
    if (!lock.owns_lock())
        return;
    v8::internal::FLAG_expose_gc = true;
    iso->isolate->RequestGarbageCollectionForTesting(v8::Isolate::kMinorGarbageCollection);
    v8::internal::FLAG_expose_gc = false;
}

void rt_memory_platform_flags(void)
{
    // V8 frees dead array buffers on a background thread after a GC by default; the check
    // after each full GC needs them gone by then, or the garbage of an app streaming bytes
    // through would count as memory it holds.
    static const char flags[] = "--no-concurrent-array-buffer-sweeping";
    v8::V8::SetFlagsFromString(flags, sizeof flags - 1);
}

void rt_memory_attach(rt_isolate *iso, size_t heap_limit_mb)
{
    iso->has_heap_limit = heap_limit_mb > 0;
    if (iso->has_heap_limit)
        iso->allocator->watch_heap(iso->isolate);
    iso->isolate->AddGCEpilogueCallback(on_full_gc, iso, v8::kGCTypeMarkSweepCompact);
    iso->isolate->AddGCPrologueCallback(on_gc_start, iso, v8::kGCTypeAll);
}

void rt_memory_set_limit(rt_isolate *iso, size_t memory_mb)
{
    if (memory_mb == 0)
        memory_mb = RT_DEFAULT_MEMORY_MB;
    if (iso->has_heap_limit) {
        v8::HeapStatistics stats;
        iso->isolate->GetHeapStatistics(&stats);
        iso->allocator->set_heap_live(stats.used_heap_size());
    }
    iso->allocator->set_limit(memory_mb << 20);
}

std::unique_ptr<v8::BackingStore> rt_backing_store_try_new(v8::Isolate *isolate, size_t len)
{
    rt_allocator *a = rt_isolate_of(isolate)->allocator.get();
    if (a == nullptr) // the snapshot generator's isolate: V8's allocator, no limit
        return v8::ArrayBuffer::NewBackingStore(isolate, len);
    // What V8 does before its own RangeError: collect what can be, then ask again.
    if (!a->fits(len)) {
        isolate->LowMemoryNotification();
        if (!a->fits(len))
            return nullptr;
    }
    // From the allocator through V8, not adopted with a deleter: V8 reallocates only the
    // backing stores its allocator made (BackingStore::Reallocate, compression.cc).
    a->set_granting(true);
    std::unique_ptr<v8::BackingStore> store = v8::ArrayBuffer::NewBackingStore(isolate, len);
    a->set_granting(false);
    return store;
}

std::unique_ptr<v8::BackingStore> rt_backing_store_new(v8::Isolate *isolate, size_t len)
{
    std::unique_ptr<v8::BackingStore> store = rt_backing_store_try_new(isolate, len);
    if (!store) // V8's own words for a refused ArrayBuffer
        isolate->ThrowException(v8::Exception::RangeError(
            v8::String::NewFromUtf8Literal(isolate, "Array buffer allocation failed")));
    return store;
}

size_t rt_isolate_external_bytes(const rt_isolate *iso)
{
    return iso->allocator->external_bytes();
}
