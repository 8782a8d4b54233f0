#include "file_source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "log.h"

/* A name in a watched directory whose events count. */
typedef struct watch_name {
    char *name;
    bool is_config; /* the config file (else a module, or a directory on the way to one) */
} watch_name;

typedef struct dir_watch {
    uv_fs_event_t event; /* data: the dir_watch */
    dp_file_source *fs;
    char *path;
    watch_name *names;
    size_t n_names, cap_names;
    dev_t dev; /* the directory the watch is on: one replaced under its path is watched anew */
    ino_t ino;
    int failed; /* the error of the last failed start, already logged; 0 when none */
    bool is_started;
    bool is_wanted; /* named by the current watch set */
} dir_watch;

struct dp_file_source {
    uv_timer_t debounce;
    char *config_path;
    dir_watch **dirs; /* each allocated on its own: its handle must not move */
    size_t n_dirs, cap_dirs;
    dp_file_changed_fn changed;
    void *ud;
    bool is_config_changed; /* an event since the last call named the config file */
    size_t n_open;          /* handles not closed yet: the timer and every directory's */
};

static void maybe_free(dp_file_source *fs)
{
    if (--fs->n_open > 0)
        return;
    nano_free(fs->dirs);
    nano_free(fs->config_path);
    nano_free(fs);
}

static void on_dir_closed(uv_handle_t *h)
{
    dir_watch *d = h->data;
    dp_file_source *fs = d->fs;
    for (size_t i = 0; i < d->n_names; i++)
        nano_free(d->names[i].name);
    nano_free(d->names);
    nano_free(d->path);
    nano_free(d);
    maybe_free(fs);
}

static void on_timer_closed(uv_handle_t *h)
{
    maybe_free(h->data);
}

static void on_debounced(uv_timer_t *t)
{
    dp_file_source *fs = t->data;
    const char *trigger = fs->is_config_changed ? "file" : "module";
    fs->is_config_changed = false;
    fs->changed(fs->ud, trigger);
}

static void on_event(uv_fs_event_t *h, const char *filename, int events, int status)
{
    dir_watch *d = h->data;
    dp_file_source *fs = d->fs;
    (void)events;
    if (status < 0) {
        NANO_WARN("dp.config_watch_failed", "dir=%s error=%s", d->path, uv_strerror(status));
        return;
    }
    /* No name: the kernel could not say which file; reload to be safe. */
    bool is_ours = filename == NULL, is_config = false;
    for (size_t i = 0; i < d->n_names; i++) {
        if (filename == NULL) {
            is_config = is_config || d->names[i].is_config;
        } else if (strcmp(filename, d->names[i].name) == 0) {
            is_ours = true;
            is_config = d->names[i].is_config;
            break;
        }
    }
    if (!is_ours)
        return;
    fs->is_config_changed = fs->is_config_changed || is_config;
    uv_timer_start(&fs->debounce, on_debounced, DP_FILE_DEBOUNCE_MS, 0);
}

/* --- the watch set ----------------------------------------------------------------------- */

/* The directory part of a path, as dirname(3) makes it, without changing path. */
static char *dir_part(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    while (len > 0 && path[len - 1] != '/')
        len--;
    if (len == 0)
        return nano_xstrdup(".");
    while (len > 1 && path[len - 1] == '/')
        len--;
    return nano_xstrndup(path, len);
}

/* The last component of a path ("" for "/"). */
static char *base_part(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    return nano_xstrndup(path + start, len - start);
}

static dir_watch *dir_find(dp_file_source *fs, const char *path)
{
    for (size_t i = 0; i < fs->n_dirs; i++)
        if (strcmp(fs->dirs[i]->path, path) == 0)
            return fs->dirs[i];
    return NULL;
}

/* The entry for directory path (made, not started, when new), marked wanted. */
static dir_watch *dir_want(dp_file_source *fs, uv_loop_t *loop, const char *path)
{
    dir_watch *d = dir_find(fs, path);
    if (d == NULL) {
        d = nano_xcalloc(1, sizeof *d);
        d->fs = fs;
        d->path = nano_xstrdup(path);
        uv_fs_event_init(loop, &d->event);
        d->event.data = d;
        fs->n_open++;
        if (fs->n_dirs == fs->cap_dirs) {
            fs->cap_dirs = fs->cap_dirs ? fs->cap_dirs * 2 : 8;
            fs->dirs = nano_xrealloc(fs->dirs, fs->cap_dirs * sizeof *fs->dirs);
        }
        fs->dirs[fs->n_dirs++] = d;
    }
    d->is_wanted = true;
    return d;
}

static void dir_add_name(dir_watch *d, const char *name, bool is_config)
{
    if (name[0] == '\0')
        return;
    for (size_t i = 0; i < d->n_names; i++) {
        if (strcmp(d->names[i].name, name) == 0) {
            d->names[i].is_config = d->names[i].is_config || is_config;
            return;
        }
    }
    if (d->n_names == d->cap_names) {
        d->cap_names = d->cap_names ? d->cap_names * 2 : 4;
        d->names = nano_xrealloc(d->names, d->cap_names * sizeof *d->names);
    }
    d->names[d->n_names++] = (watch_name){nano_xstrdup(name), is_config};
}

/* Watch the directory of path for events about path's name. */
static void want_file(dp_file_source *fs, uv_loop_t *loop, const char *path, bool is_config)
{
    char *dir = dir_part(path), *base = base_part(path);
    dir_add_name(dir_want(fs, loop, dir), base, is_config);
    nano_free(dir);
    nano_free(base);
}

/* Watch path's directory for its name and, for each symlink on the way to it (a deploy's
 * `current -> releases/42`), the link's directory for the link's name: switching the link
 * changes what path names. */
static void want_path(dp_file_source *fs, uv_loop_t *loop, const char *path, bool is_config)
{
    want_file(fs, loop, path, is_config);
    char *prefix = nano_xstrdup(path);
    for (char *slash = strchr(prefix + 1, '/'); slash != NULL; slash = strchr(slash + 1, '/')) {
        struct stat st;
        *slash = '\0';
        if (lstat(prefix, &st) == 0 && S_ISLNK(st.st_mode))
            want_file(fs, loop, prefix, is_config);
        *slash = '/';
    }
    nano_free(prefix);
}

/* Builds the set of directories and names, closes what left it and (re)starts the rest.
 * Returns how many directories newly failed to start; the first one's path and error in
 * *first_dir (borrowed from fs) and *first_rc. */
static size_t set_watches(dp_file_source *fs, const nano_config *const *cfgs, size_t n,
                          const char **first_dir, int *first_rc)
{
    uv_loop_t *loop = fs->debounce.loop;
    for (size_t i = 0; i < fs->n_dirs; i++) {
        dir_watch *d = fs->dirs[i];
        d->is_wanted = false;
        for (size_t k = 0; k < d->n_names; k++)
            nano_free(d->names[k].name);
        d->n_names = 0;
    }
    want_path(fs, loop, fs->config_path, true);
    char *real = realpath(fs->config_path, NULL); /* a symlink's target changes too */
    if (real != NULL && strcmp(real, fs->config_path) != 0)
        want_file(fs, loop, real, true);
    free(real);
    /* code_files has each file as named and as resolved (config.h). */
    for (size_t c = 0; c < n; c++) {
        for (size_t i = 0; cfgs[c] != NULL && i < nano_config_n_apps(cfgs[c]); i++) {
            const nano_app_config *app = nano_config_app(cfgs[c], i);
            for (size_t f = 0; f < app->n_code_files; f++)
                want_path(fs, loop, app->code_files[f], false);
        }
    }
    /* A missing directory is waited for from its parent (and so on up): its creation is an
     * event there. Entries appended here are visited by this loop too. */
    for (size_t i = 0; i < fs->n_dirs; i++) {
        struct stat st;
        dir_watch *d = fs->dirs[i];
        if (d->is_wanted && stat(d->path, &st) != 0 && strcmp(d->path, "/") != 0 &&
            strcmp(d->path, ".") != 0)
            want_file(fs, loop, d->path, false);
    }
    /* A watched directory inside another watched one: its removal or replacement is an
     * event of the outer one; its own removal, an event of its own with its name. */
    for (size_t i = 0; i < fs->n_dirs; i++) {
        dir_watch *d = fs->dirs[i];
        if (!d->is_wanted)
            continue;
        char *parent = dir_part(d->path), *base = base_part(d->path);
        dir_watch *p = dir_find(fs, parent);
        if (p != NULL && p != d && p->is_wanted)
            dir_add_name(p, base, false);
        dir_add_name(d, base, false);
        nano_free(parent);
        nano_free(base);
    }
    size_t kept = 0, n_failed = 0;
    for (size_t i = 0; i < fs->n_dirs; i++) {
        dir_watch *d = fs->dirs[i];
        if (!d->is_wanted) {
            uv_close((uv_handle_t *)&d->event, on_dir_closed);
            continue;
        }
        fs->dirs[kept++] = d;
        struct stat st;
        if (stat(d->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (d->is_started)
                uv_fs_event_stop(&d->event);
            d->is_started = false; /* its parent's watch waits for it */
            continue;
        }
        if (d->is_started && d->dev == st.st_dev && d->ino == st.st_ino)
            continue;
        if (d->is_started)
            uv_fs_event_stop(&d->event);
        int rc = uv_fs_event_start(&d->event, on_event, d->path, 0);
        d->is_started = rc == 0;
        if (rc == 0) {
            d->dev = st.st_dev;
            d->ino = st.st_ino;
        } else if (rc != d->failed && n_failed++ == 0) {
            *first_dir = d->path;
            *first_rc = rc;
        }
        d->failed = rc;
    }
    fs->n_dirs = kept;
    return n_failed;
}

void dp_file_source_watch(dp_file_source *fs, const nano_config *const *cfgs, size_t n)
{
    if (fs == NULL)
        return;
    /* Called after a reload, which read every file: the events seen before it are covered
     * (a file written, then SIGHUP, is one reload). Those that arrived meanwhile, while the
     * reload held the loop, are still queued and start the debounce again. */
    uv_timer_stop(&fs->debounce);
    fs->is_config_changed = false;
    const char *dir = NULL;
    int rc = 0;
    size_t n_failed = set_watches(fs, cfgs, n, &dir, &rc);
    if (n_failed > 0)
        NANO_WARN("dp.module_watch_failed", "dirs=%zu dir=%s error=%s (%s; SIGHUP still reloads)",
                  n_failed, dir, uv_strerror(rc),
                  rc == UV_ENOSPC ? "the inotify watch limit: raise fs.inotify.max_user_watches"
                                  : "edits there are not seen");
}

dp_file_source *dp_file_source_start(uv_loop_t *loop, const char *path, dp_file_changed_fn changed,
                                     void *ud, nano_error *err)
{
    dp_file_source *fs = nano_xcalloc(1, sizeof *fs);
    fs->config_path = nano_xstrdup(path);
    fs->changed = changed;
    fs->ud = ud;
    uv_timer_init(loop, &fs->debounce);
    fs->debounce.data = fs;
    fs->n_open = 1;
    const char *dir = NULL;
    int rc = 0;
    set_watches(fs, NULL, 0, &dir, &rc);
    char *config_dir = dir_part(path);
    dir_watch *d = dir_find(fs, config_dir);
    nano_free(config_dir);
    if (d == NULL || !d->is_started) {
        nano_error_set(err, rc != 0 ? rc : NANO_ENOENT, "config_watch_failed",
                       "cannot watch %s for changes: %s", d != NULL ? d->path : path,
                       uv_strerror(d != NULL && d->failed != 0 ? d->failed : UV_ENOENT));
        dp_file_source_stop(fs);
        return NULL;
    }
    return fs;
}

void dp_file_source_stop(dp_file_source *fs)
{
    if (fs == NULL)
        return;
    for (size_t i = 0; i < fs->n_dirs; i++)
        uv_close((uv_handle_t *)&fs->dirs[i]->event, on_dir_closed);
    fs->n_dirs = 0;
    uv_close((uv_handle_t *)&fs->debounce, on_timer_closed);
}
