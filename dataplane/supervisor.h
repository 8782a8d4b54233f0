/* supervisor.h: what nano-dp tells systemd (Type=notify units; shared/sd.h for the protocol):
 * READY=1 once it listens and has a config (with --control-plane: the first one built from
 * nanocp), RELOADING=1 ... READY=1 around a SIGHUP reload, STOPPING=1 when a drain starts,
 * STATUS= lines with the apps served or, while draining, the requests still in flight, and
 * WATCHDOG=1 pings while every worker thread is alive: each worker's loop runs a tick every
 * 250 ms (dp_worker_liveness), and a worker whose tick has not moved for half the watchdog
 * interval (at least 750 ms) is stuck — a livelock, or one JS segment running that long —
 * so the pings stop and systemd restarts the process once the interval passes. Workers that
 * have finished (drained) do not count. Control thread only. */
#ifndef DP_SUPERVISOR_H
#define DP_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "worker.h"

typedef struct dp_supervisor dp_supervisor;

/* dp_supervisor_start: the watchdog pings over these workers (borrowed; they outlive the
 * supervisor), when the supervisor asked for them ($WATCHDOG_USEC); NULL-free: returns an
 * object in any case (its notifications are no-ops without systemd). */
dp_supervisor *dp_supervisor_start(uv_loop_t *loop, dp_worker **workers, size_t n);

/* dp_supervisor_ready: READY=1 with STATUS=serving N apps (config version V). Repeats only
 * update the status (after dp_supervisor_reloading: READY=1 again, which ends the
 * reload for systemd). Like the others, NULL-safe (a no-op). */
void dp_supervisor_ready(dp_supervisor *s, size_t n_apps, uint64_t version);
/* dp_supervisor_reloading: RELOADING=1 (dp_supervisor_ready follows when the reload ends). */
void dp_supervisor_reloading(dp_supervisor *s);
/* dp_supervisor_stopping: STOPPING=1 with the drain's first status; dp_supervisor_draining:
 * the status during it (each second). */
void dp_supervisor_stopping(dp_supervisor *s, size_t requests, size_t conns);
void dp_supervisor_draining(dp_supervisor *s, size_t requests, size_t conns, uint64_t elapsed_ms);

/* dp_supervisor_close: stops the pings and frees s once its timer has closed. NULL-safe. */
void dp_supervisor_close(dp_supervisor *s);

#endif
