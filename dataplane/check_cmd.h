/* check_cmd.h: `nano-dp check` (docs/nano-dp.md#check): each file loaded as an app in a fresh
 * isolate with the app's heap limit, under a CPU and wall-time guard, one verdict line per file
 * on stdout (JSON with --json). The process is the sandbox: a load past its limits ends it. */
#ifndef DP_CHECK_CMD_H
#define DP_CHECK_CMD_H

#include <uv.h>

#include "options.h"

/* dp_check_run: checks o->files on loop (the main thread's). Returns the exit code: 0 every
 * file loads, 1 one does not, 2 bad usage (--env-stdin without a JSON env list). */
int dp_check_run(uv_loop_t *loop, const dp_options *o);

#endif
