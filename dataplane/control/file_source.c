#include "file_source.h"

#include <libgen.h>
#include <string.h>

#include "alloc.h"
#include "log.h"

struct dp_file_source {
    uv_fs_event_t event;
    uv_timer_t debounce;
    char *dir;
    char *base;
    dp_file_changed_fn changed;
    void *ud;
    int n_open;
};

static void on_debounced(uv_timer_t *t)
{
    dp_file_source *fs = t->data;
    fs->changed(fs->ud);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    dp_file_source *fs = h->data;
    (void)events;
    if (status < 0) {
        NANO_WARN("dp.config_watch_failed", "dir=%s error=%s", fs->dir, uv_strerror(status));
        return;
    }
    /* No name: the kernel could not say which file; reload to be safe. */
    if (filename != NULL && strcmp(filename, fs->base) != 0)
        return;
    uv_timer_start(&fs->debounce, on_debounced, DP_FILE_DEBOUNCE_MS, 0);
}

dp_file_source *dp_file_source_start(uv_loop_t *loop, const char *path, dp_file_changed_fn changed,
                                     void *ud, nano_error *err)
{
    dp_file_source *fs = nano_xcalloc(1, sizeof *fs);
    char *a = nano_xstrdup(path), *b = nano_xstrdup(path);
    fs->dir = nano_xstrdup(dirname(a));
    fs->base = nano_xstrdup(basename(b));
    nano_free(a);
    nano_free(b);
    fs->changed = changed;
    fs->ud = ud;
    uv_fs_event_init(loop, &fs->event);
    uv_timer_init(loop, &fs->debounce);
    fs->event.data = fs->debounce.data = fs;
    fs->n_open = 2;
    int rc = uv_fs_event_start(&fs->event, on_event, fs->dir, 0);
    if (rc != 0) {
        nano_error_set(err, rc, "config_watch_failed", "cannot watch %s for changes: %s", fs->dir,
                       uv_strerror(rc));
        dp_file_source_stop(fs);
        return NULL;
    }
    return fs;
}

static void on_closed(uv_handle_t *h)
{
    dp_file_source *fs = h->data;
    if (--fs->n_open > 0)
        return;
    nano_free(fs->dir);
    nano_free(fs->base);
    nano_free(fs);
}

void dp_file_source_stop(dp_file_source *fs)
{
    if (fs == NULL)
        return;
    uv_close((uv_handle_t *)&fs->event, on_closed);
    uv_close((uv_handle_t *)&fs->debounce, on_closed);
}
