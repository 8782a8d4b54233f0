/* check.h: the load check of an app version, run in a child process: `nano-dp check` loads the
 * module the way a worker does (compile, link, evaluate the top level, find the default
 * export's fetch) in a fresh isolate with the app's limits, and says whether it loads. nanocp
 * runs it before it accepts a deployment; nano-dp runs it (its own binary) before a new
 * version becomes active. A child process, so that a module that loops at its top level,
 * allocates without end or crashes V8 takes down the checker and nothing else.
 * Blocking: the caller's thread waits for the child (bounded by timeout_ms). Any thread. */
#ifndef NANO_CHECK_H
#define NANO_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "env.h"
#include "error.h"

/* CPU time a module's loading may take at least (compile + top level + top-level await); an
 * app whose cpu_ms is higher gets that. */
#define NANO_CHECK_MIN_CPU_MS 1000
/* Wall time the child gets beyond its CPU budget: process and V8 start on a busy machine,
 * and top-level await waiting on timers. */
#define NANO_CHECK_SLACK_MS 10000

typedef struct nano_check_options {
    const char *checker; /* the nano-dp binary to run */
    const char *path;    /* the main module (imports resolve beside it) */
    const char *name;    /* the app's name (console lines, messages); may be NULL */
    uint64_t cpu_ms;     /* CPU budget for loading (see nano_check_cpu_ms) */
    uint64_t memory_mb;  /* isolate heap limit (0: the runtime's default) */
    bool node_compat;
    const nano_env *env; /* the app's env (vars and secrets), for a top level that reads
                           * process.env; may be NULL: none. Sent on the child's stdin, never
                           * on its command line; secret values are masked in its message */
    uint64_t timeout_ms; /* bound on the child's wall time not spent waiting for a CPU (0:
                           * cpu_ms + NANO_CHECK_SLACK_MS + 5 s), at most 4 times that in all */
} nano_check_options;

/* nano_check_cpu_ms: the load budget for an app whose requests get cpu_ms each. */
uint64_t nano_check_cpu_ms(uint64_t cpu_ms);

/* The env on the checker's stdin (`nano-dp check --env-stdin`): a JSON array of
 * {"name", "value", "secret": bool, "json": bool} (value: the text; JSON text when json).
 * nano_check_env_to_json: a new reference. nano_check_env_from_json: adds the entries to
 * env; NANO_EINVAL naming the first bad one (never its value). */
struct json_t;
struct json_t *nano_check_env_to_json(const nano_env *env);
int nano_check_env_from_json(const struct json_t *list, nano_env *env, nano_error *err);

/* nano_check_module: runs `CHECKER check --json ... PATH` and waits for its verdict. Returns
 *   0            the module loads;
 *   NANO_EINVAL  it does not: err->id is the checker's (module_syntax, module_threw,
 *                module_no_default, module_no_fetch, module_not_found, module_unreadable,
 *                module_timeout, module_memory, module_tla_stuck, module_crashed) and
 *                err->message one line, "FILE:LINE:COLUMN: what" where V8 knows the place;
 *   NANO_EIO     the check could not be made (the checker cannot be started, or answered
 *                something unreadable): err->id "check_failed".
 * The child's stderr is /dev/null (an app's console output at load goes nowhere); it is
 * killed (SIGKILL) past timeout_ms. */
int nano_check_module(const nano_check_options *o, nano_error *err);

/* Several checks at once (a reload that changes many apps): nano_check_start spawns the
 * checker and returns a running check (owned; 0, or an error as above when it cannot be
 * started); nano_check_finish waits for its verdict, returns what nano_check_module would
 * and frees it. Checks started together run in parallel; finish them in any order. */
typedef struct nano_check nano_check;
int nano_check_start(const nano_check_options *o, nano_check **out, nano_error *err);
int nano_check_finish(nano_check *c, nano_error *err);

/* nano_check_one_line: rewrites a load error as the checker reports it: the first line of
 * text, with the place of the first stack frame ("    at f (FILE:L:C)") put in front when the
 * first line names the module but no line and column ("FILE: evaluation threw: Error: x").
 * path is the module as the error names it. Writes at most cap bytes (NUL included). */
void nano_check_one_line(const char *text, const char *path, char *out, size_t cap);

/* nano_check_run_delay_ms: how long thread tid of process pid has waited for a CPU while
 * runnable (Linux schedstat), in ms; 0 when the kernel does not say. Time limits on a check
 * leave it out: a checker starved on a busy node is slow, not stuck. */
uint64_t nano_check_run_delay_ms(int pid, int tid);

/* nano_check_mask_secrets: replaces each secret value of env found in text (cap bytes, NUL
 * terminated) by "[REDACTED]", cutting the end if it no longer fits: a load error may carry
 * what the top level threw, and a secret value never leaves in a message. */
void nano_check_mask_secrets(const nano_env *env, char *text, size_t cap);

#endif
