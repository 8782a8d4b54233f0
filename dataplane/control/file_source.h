/* file_source.h: watches the config file (nano.json) and the module files of its apps for
 * changes (docs/nano-dp.md: hot reload on change or SIGHUP). Control thread only.
 *
 * It watches directories, not files: editors and deploy tools replace a file by renaming a
 * new one over it, which a watch on the old inode would miss. One watch per directory, however
 * many of the watched files it holds; events for its other names (an editor's swap file) are
 * ignored. Events are debounced: a burst of writes, or a deploy that replaces several files,
 * becomes one reload. */
#ifndef DP_FILE_SOURCE_H
#define DP_FILE_SOURCE_H

#include <uv.h>

#include "config.h"
#include "error.h"

typedef struct dp_file_source dp_file_source;

/* trigger: "file" when the config file changed (perhaps with modules), "module" when only
 * module files did (a static string). */
typedef void (*dp_file_changed_fn)(void *ud, const char *trigger);

#define DP_FILE_DEBOUNCE_MS 100

/* dp_file_source_start: calls changed(ud, trigger) after the file at path or a watched module
 * file changes (never from inside this call). Returns NULL with err filled if the config
 * file's directory cannot be watched. */
dp_file_source *dp_file_source_start(uv_loop_t *loop, const char *path, dp_file_changed_fn changed,
                                     void *ud, nano_error *err);

/* dp_file_source_watch: from now on also watches the module files of every app of
 * cfgs[0..n) (nano_app_config.code_files; NULL configs are skipped), instead of those watched
 * before. Call it at start and after each reload, applied or not, with the applied config and
 * a candidate refused for a module that does not load (so that fixing that module is seen).
 * A directory already watched keeps its watch unless it was replaced (another inode). One
 * that is missing is waited for from its nearest existing parent. One that cannot be watched
 * (the inotify watch limit, fs.inotify.max_user_watches) is logged once, as
 * dp.module_watch_failed, and skipped: SIGHUP still reloads. NULL fs: nothing. */
void dp_file_source_watch(dp_file_source *fs, const nano_config *const *cfgs, size_t n);

/* dp_file_source_stop: stops watching; frees fs once its handles have closed. NULL-safe. */
void dp_file_source_stop(dp_file_source *fs);

#endif
