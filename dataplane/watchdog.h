/* watchdog.h: the thread that enforces per-request CPU limits (DESIGN.md §4, §9).
 *
 * Every few milliseconds it looks at each worker's rt_watch: a JS entry that is still the
 * same one (same seq) since the last look has been running all along, and once the worker
 * thread's CPU clock says it used more than the app's cpu_ms since first seen, the watchdog
 * terminates it (rt_isolate_terminate, under the watch's lock so it cannot hit a later
 * entry). A tight loop is thus stopped within cpu_ms + one tick of CPU time. */
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
