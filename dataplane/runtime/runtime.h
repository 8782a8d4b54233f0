/* runtime.h: the V8 runtime behind a plain C interface (the only C++ in NANO lives behind it).
 *
 * An rt_isolate is one V8 isolate with one context running one app: its ES module, its frozen
 * `env`, the built-in Web APIs, timers on the owning libuv loop. No C++ type, exception or V8
 * handle crosses this header. Every function runs on the isolate's loop thread, except
 * rt_terminate. */
#ifndef RT_RUNTIME_H
#define RT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "env.h"
#include "error.h"

#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct rt_isolate rt_isolate;
typedef struct rt_pool rt_pool;
struct dp_request;

/* rt_platform_init: V8 and ICU, once per process before any isolate; argv0 helps find ICU
 * data. Returns 0. rt_platform_fini: after every isolate is freed. */
int rt_platform_init(const char *argv0);
void rt_platform_fini(void);

/* Where console output goes: the runtime log (lines tagged with the app name; serving), or
 * plainly to stdout (log/info/debug) and stderr (warn/error), as `nano-dp test` and
 * `nano-dp run` show it. */
typedef enum rt_console_mode { RT_CONSOLE_LOG = 0, RT_CONSOLE_STDIO } rt_console_mode;

typedef struct rt_app_options {
    const char *name;      /* app name: tags console output and errors */
    const char *main_path; /* the app's ES module file; NULL: built-ins only, no handler */
    const nano_env *env;   /* copied into the frozen `env` object */
    rt_console_mode console_mode;
    const char *location;    /* the global `location` and base URL (NULL: none, as on Workers) */
    const char *main_source; /* the main module's source (NULL: read main_path) */
    size_t main_source_len;
    /* Sources of the modules it imports, by resolved path (borrowed: they must outlive the
     * isolate; NULL: read each from its file). An import not among them is read from its
     * file (a dynamic import of a computed specifier). */
    const struct nano_module_source *imports;
    size_t n_imports;
    bool node_compat;     /* also expose env as process.env */
    rt_pool *pool;        /* borrowed, may be NULL: take a ready isolate from it (same loop) */
    size_t heap_limit_mb; /* the app's memory limit, MiB: V8's heap and, with it, ArrayBuffer
                            * memory (rt_isolate_external_bytes). An allocation past it throws
                            * a RangeError; memory held past it breaks the isolate. 0: 128 MiB
                            * from the pool, else V8's default heap limit and ArrayBuffers
                            * alone capped at 128 MiB. Pooled isolates are made with a heap
                            * limit of 128 MiB, lowered for an app that asks less; an app
                            * asking more gets a fresh isolate instead */
    /* Limits of module code (the app's top level, evaluated here). cpu_limit_ms is the app's
     * per-request limit (0: none, as `nano-dp run` and `test` want): module code then gets
     * max(cpu_limit_ms, RT_STARTUP_CPU_MS) of CPU, and its top-level await wall_limit_ms to
     * settle (0: no bound; the app's wall_time, as its first request waits for it). watch
     * (borrowed, may be NULL) is the thread's watch, which its watchdog enforces; without
     * one the runtime runs a guard thread of its own for the load. */
    struct rt_watch *watch;
    uint64_t cpu_limit_ms;
    uint64_t wall_limit_ms;
    /* Outbound fetch: the worker's HTTP client (borrowed, shared by its isolates; NULL: the
     * isolate makes its own on first use) and the fetch() hops one request may start
     * (limits.subrequests; 0: no limit, as `nano-dp run` and `test` want). */
    struct dp_client *http_client;
    uint32_t subrequests;
    /* Egress policies (shared/egress.h; the isolate takes references): the node's and the
     * app's. Both NULL: fetch may connect anywhere (a single APP.js). */
    struct nano_egress *egress_node;
    struct nano_egress *egress_app;
} rt_app_options;

/* rt_isolate_set_outbound: the app's egress policy (may be NULL) and subrequest limit for
 * fetches started from now on (a config change that kept the deployment). */
void rt_isolate_set_outbound(rt_isolate *iso, struct nano_egress *egress_app, uint32_t subrequests);

#define RT_STARTUP_CPU_MS 1000

/* Hooks a worker gives an isolate (all on the loop thread, from inside runtime calls, so
 * they must not free the isolate; schedule that):
 *   request_done  the runtime let go of a request it ran (response ended and waitUntil work
 *                 settled, or failed): the app's in-flight count drops
 *   cpu_exceeded  the watchdog terminated JS that ran past the CPU limit; the request it ran
 *                 for (may be NULL: a timer) was answered 500; the isolate stays usable
 *   broken        the isolate hit its heap limit: discard it (rt_isolate_fail_all, then free) */
typedef struct rt_hooks {
    void (*request_done)(void *ud, struct dp_request *req);
    void (*cpu_exceeded)(void *ud, struct dp_request *req);
    void (*broken)(void *ud);
    void *ud;
} rt_hooks;
void rt_isolate_set_hooks(rt_isolate *iso, const rt_hooks *hooks);

/* The watchdog's view of a worker thread. JS runs in segments: a segment is JS run for one
 * request (or for none: module code, an unowned timer, a shutdown event), from an entry into
 * JS or a switch between the timers of different requests until the next switch or the
 * exit. `seq` counts segments, `active` is set while one runs; `used_ns` is the JS time the
 * segment's request had used before it began and `start_ns` (uv_hrtime) when it began; all
 * under `mu`. A request's CPU budget is the sum over its segments (runtime.cc), so JS that a
 * request keeps running through timers, awaits and stream pulls is charged to it like one
 * loop. The watchdog (another thread) stops a segment whose request goes past the limit by
 * calling rt_isolate_terminate while holding `mu`, so a termination never lands in a later
 * segment. Owned by the worker; one per thread, shared by that thread's isolates. */
typedef struct rt_watch {
    pthread_mutex_t mu;
    unsigned long long seq;
    int active;
    rt_isolate *iso;       /* the isolate running JS while active */
    uint64_t cpu_limit_ms; /* of that isolate's app */
    uint64_t used_ns;      /* the segment's request's JS time before the segment */
    uint64_t start_ns;     /* when the segment began (uv_hrtime) */
    uint32_t slot;         /* the request the segment is charged to (runtime-private) */
} rt_watch;
void rt_isolate_set_watch(rt_isolate *iso, rt_watch *watch, uint64_t cpu_limit_ms);

/* rt_isolate_terminate: stops the JS running in iso now (V8 TerminateExecution). Any thread;
 * the watchdog calls it holding the watch's `mu`. The segment that was running unwinds, the
 * request it ran for gets 500 (or its connection closed if its response had started), and
 * the isolate serves the next request normally. */
void rt_isolate_terminate(rt_isolate *iso);

/* rt_isolate_set_env: the env (and process.env) requests see from their next start on;
 * requests in flight keep the object they started with. Module state is untouched. Secret
 * values (the new and the previous ones) are masked as [REDACTED] in console output and in
 * logged errors. */
void rt_isolate_set_env(rt_isolate *iso, const nano_env *env);

/* rt_request_fail: the runtime gives up on req (wall-time limit, the isolate is being
 * discarded): answered with status if its response has not started, else its connection is
 * closed; the request's slot is released (request_done runs). */
void rt_request_fail(rt_isolate *iso, struct dp_request *req, int status);

/* rt_isolate_fail_all: rt_request_fail for every request the isolate holds. */
void rt_isolate_fail_all(rt_isolate *iso, int status);

/* rt_isolate_shutdown: fires the `shutdown` event at the app's global (event.deadline is
 * deadline_ms, ms since the epoch; listeners may call event.waitUntil(promise)) and calls
 * done(ud) once every such promise settled, from a later loop callback (or at once when the
 * isolate is broken). Requests keep running meanwhile. The caller bounds the wait with its
 * own timer (done may then come late or never: free the isolate and forget it). */
void rt_isolate_shutdown(rt_isolate *iso, uint64_t deadline_ms, void (*done)(void *ud), void *ud);

/* rt_isolate_heap_used: bytes of V8 heap in use (cheap; for /status). */
size_t rt_isolate_heap_used(rt_isolate *iso);

/* rt_isolate_external_bytes: bytes of ArrayBuffer memory iso holds now: the backing stores
 * its allocator made and the request body chunks handed to its JS, not yet freed (garbage
 * counts until a GC frees it). They count with the heap against the app's memory limit
 * (heap_limit_mb; rules in allocator.cc). Atomic loads only: cheap, and any thread may call
 * it while iso lives. */
size_t rt_isolate_external_bytes(const rt_isolate *iso);

/* rt_isolate_new: takes a ready isolate from opts->pool (when it has one on this loop and the
 * app asks for no heap limit or at most the pool's, 128 MiB) or creates one from the startup
 * snapshot (every built-in already loaded), then gives it the app: name, location, env, a fresh time origin, and the
 * app's module graph, evaluated (top-level await runs the loop until settled), with its
 * default export's fetch found. Returns 0 and an owned isolate, or an error (err says what
 * and where: file:line for syntax errors, the specifier that failed to resolve, ...). */
int rt_isolate_new(uv_loop_t *loop, const rt_app_options *opts, rt_isolate **out, nano_error *err);

/* rt_run_script: evaluates a classic script file in the global scope (as a worker's
 * importScripts would). An uncaught exception is reported like any uncaught error (error
 * event on globalThis, then the log) and returns NANO_EJS. Other errors: unreadable file. */
int rt_run_script(rt_isolate *iso, const char *path, nano_error *err);

/* rt_run_tests: loads the ES module at path and runs its tests (the `nano:test` registry and
 * exported `test*` functions; format in docs/testing.md), printing one line per test to
 * stdout. filter (may be NULL) selects tests whose name contains it; each test may take
 * timeout_ms. Fills the counts; returns 0, or an error when the module cannot be loaded. */
typedef struct rt_test_counts {
    int passed, failed, skipped;
} rt_test_counts;
int rt_run_tests(rt_isolate *iso, const char *path, const char *filter, uint64_t timeout_ms,
                 rt_test_counts *out, nano_error *err);

/* rt_call_fetch: runs the app's fetch handler for req (borrowed; the runtime takes its own
 * reference while JS can use it). The response arrives through dp_response_* calls, possibly
 * before this returns. Returns 0, or an error when the handler could not even be called
 * (the caller answers 500). */
int rt_call_fetch(rt_isolate *iso, struct dp_request *req);

/* rt_request_listener: how the server tells the isolate running a request of its events
 * (server/request.h): the caller of rt_call_fetch installs it first, with the isolate as ud:
 * dp_request_set_listener(req, &rt_request_listener, iso). Its entries:
 * - body_event: bytes of the body arrived, or it completed or failed; settles a pending body
 *   read;
 * - writable: the response, held back by dp_response_writable, may be written again;
 * - aborted: the connection let go of the request before its response ended (the client went
 *   away, or the request was malformed midway): a streamed response body is canceled and the
 *   request's signal aborts.
 * Each is safe to call from inside a runtime callback (microtasks run only at the outermost
 * level). The runtime clears the listener when the request leaves the isolate. */
extern const struct dp_request_listener rt_request_listener;

/* rt_isolate_settle_background: the loop has nothing left to do; if V8 still has background
 * work (an async WebAssembly compile) that may post tasks, waits for them (up to a minute)
 * and runs them. Returns 1 if tasks ran (run the loop again), 0 when nothing is pending. */
int rt_isolate_settle_background(rt_isolate *iso);

/* rt_isolate_pending_requests: requests the runtime still holds (handler running or
 * waitUntil work pending). */
size_t rt_isolate_pending_requests(const rt_isolate *iso);

/* rt_pool_new: a pool of ready isolates (isolate + context from the snapshot, no app yet) on
 * loop, which rt_isolate_new takes from so that a new app skips Isolate::New. Its isolates
 * are made with a heap limit of heap_limit_mb (0: 128 MiB); an app whose memory limit is at
 * most that takes one and has the limit lowered to its own. The pool fills itself up to
 * target off the request path: one isolate per loop iteration (a timer, unreferenced: it
 * never keeps the loop alive) once no isolate was taken from it for RT_POOL_REFILL_DELAY_MS
 * (100 ms), counted from its creation and from each take: making one blocks the loop for
 * milliseconds, so a process's first requests and a burst of new apps are not slowed by
 * refills between them. Returns an owned pool. Loop thread only (or before the loop runs).
 * rt_pool_defer: counts as a take (a worker that just spent a while loading apps at start
 * lets the first requests in before the pool fills). */
rt_pool *rt_pool_new(uv_loop_t *loop, size_t target, size_t heap_limit_mb);
void rt_pool_defer(rt_pool *pool);
size_t rt_pool_heap_limit_mb(const rt_pool *pool);

/* rt_pool_n_ready: isolates ready to be taken. */
size_t rt_pool_n_ready(const rt_pool *pool);

/* rt_pool_free: disposes the ready isolates and stops refilling; isolates already taken are
 * unaffected. Run the loop afterwards to let its handles close. NULL is a no-op. */
void rt_pool_free(rt_pool *pool);

/* The compile cache (compile_cache.cc): the code V8 made for each module source, made by the
 * first isolate that loads it and consumed by every later one, so that a module is compiled
 * once per process (and, with a directory, once per node). Any thread.
 * rt_compile_cache_set_dir: also keep entries as files in dir (made 0700 if missing; entries
 * there from an earlier run of this binary are used; NULL: memory only again). Returns 0, or
 * an error naming dir.
 * rt_compile_cache_set_budget: bytes of entries kept in memory (least recently used go
 * first; default RT_COMPILE_CACHE_BUDGET). */
#define RT_COMPILE_CACHE_BUDGET (64u << 20)
#define RT_COMPILE_CACHE_MAX_ENTRY (32u << 20) /* larger entries are not kept */
int rt_compile_cache_set_dir(const char *dir, nano_error *err);
void rt_compile_cache_set_budget(size_t bytes);
typedef struct rt_compile_cache_stats {
    size_t entries, bytes; /* in memory now */
    uint64_t hits, misses; /* lookups (a hit from a file counts in disk_reads too) */
    uint64_t disk_reads, stores, rejects, evictions;
} rt_compile_cache_stats;
void rt_compile_cache_get_stats(rt_compile_cache_stats *out);

/* rt_isolate_free: releases every request still held, closes the isolate's libuv handles
 * (run the loop afterwards to let them close) and disposes the isolate. NULL is a no-op. */
void rt_isolate_free(rt_isolate *iso);

#ifdef __cplusplus
}
#endif
#endif
