/* status.h: nano-dp's status port (docs/nano-dp.md#status-port): /healthz, /readyz, /status (JSON),
 * /metrics (Prometheus text format), served natively by the control thread from the
 * workers' counters (stats.h). */
#ifndef DP_STATUS_H
#define DP_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "error.h"
#include "server/server.h"
#include "worker.h"

/* What the status port reports; owned and updated by the control thread. */
typedef struct dp_status_source {
    dp_worker **workers;
    size_t n_workers;
    uint64_t config_version;
    size_t n_apps;
    bool is_ready;    /* a config is applied */
    bool is_draining; /* process shutdown: /readyz says 503 */
    uint64_t config_reloads, config_rejects;
    struct dp_cp_client *cp;     /* --control-plane: the link /status reports (NULL: none) */
    dp_load_errors *load_errors; /* versions refused per app: each app's load_error */
} dp_status_source;

/* dp_status_start: listens on "HOST:PORT" ("[::1]:9901" too) on loop. Returns the server, or
 * NULL with err filled. Close with dp_server_close. */
dp_server *dp_status_start(uv_loop_t *loop, const char *listen, dp_status_source *src,
                           nano_error *err);

#endif
