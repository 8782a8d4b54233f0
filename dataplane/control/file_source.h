/* file_source.h: watches the config file (nano.json) for changes (DESIGN.md §10: hot reload
 * on change or SIGHUP). Control thread only.
 *
 * It watches the file's directory, not the file: editors and deploy tools replace a file by
 * renaming a new one over it, which a watch on the old inode would miss. Events for the
 * file's name are debounced (a burst of writes becomes one reload). */
#ifndef DP_FILE_SOURCE_H
#define DP_FILE_SOURCE_H

#include <uv.h>

#include "error.h"

typedef struct dp_file_source dp_file_source;
typedef void (*dp_file_changed_fn)(void *ud);

#define DP_FILE_DEBOUNCE_MS 100

/* dp_file_source_start: calls changed(ud) after the file at path changes. Returns NULL with
 * err filled if the directory cannot be watched. */
dp_file_source *dp_file_source_start(uv_loop_t *loop, const char *path, dp_file_changed_fn changed,
                                     void *ud, nano_error *err);
void dp_file_source_stop(dp_file_source *fs); /* frees it once its handles closed */

#endif
