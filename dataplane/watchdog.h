/* watchdog.h: the thread that enforces per-request CPU limits (docs/architecture.md#limits).
 *
 * Every few milliseconds it looks at each worker's rt_watch: the JS segment running there
 * (JS run for one request) has its request's earlier JS time, and from the first look on the
 * worker thread's CPU clock counts what the segment uses. Once the sum passes the app's
 * cpu_ms, the watchdog terminates it (rt_isolate_terminate, under the watch's lock so it
 * cannot hit a later segment). A tight loop, or the last of many timer callbacks of one
 * request, is thus stopped within cpu_ms + one tick; the runtime itself stops a request whose
 * budget a segment used up when that segment ends. */
#ifndef DP_WATCHDOG_H
#define DP_WATCHDOG_H

#include <stddef.h>

#include "worker.h"

#define DP_WATCHDOG_TICK_MS 5

typedef struct dp_watchdog dp_watchdog;

/* dp_watchdog_start: watches the workers (borrowed; they outlive the watchdog). */
dp_watchdog *dp_watchdog_start(dp_worker **workers, size_t n, nano_error *err);
void dp_watchdog_stop(dp_watchdog *wd);

#endif
