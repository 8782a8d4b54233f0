#define _GNU_SOURCE
#include "code_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "log.h"
#include "msg.h"
#include "sha256.h"

int dp_code_cache_init(dp_code_cache *cc, const char *dir, nano_error *err)
{
    memset(cc, 0, sizeof *cc);
    char real[PATH_MAX];
    struct stat st;
    if (realpath(dir, real) == NULL || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return nano_error_set(err, NANO_EINVAL, "code_dir", "--code-dir %s: not a directory (%s)",
                              dir, strerror(errno));
    if (access(real, W_OK | X_OK) != 0)
        return nano_error_set(err, NANO_EINVAL, "code_dir", "--code-dir %s: not writable (%s)", dir,
                              strerror(errno));
    cc->dir = nano_xstrdup(real);
    cc->sources = json_object();
    cc->modules = json_object();
    return 0;
}

void dp_code_cache_fini(dp_code_cache *cc)
{
    nano_free(cc->dir);
    json_decref(cc->sources);
    json_decref(cc->modules);
    memset(cc, 0, sizeof *cc);
}

/* a + "/" + b into out; false when it does not fit. */
static bool join(char *out, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb + 1 > cap)
        return false;
    memcpy(out, a, la);
    out[la] = '/';
    memcpy(out + la + 1, b, lb + 1);
    return true;
}

typedef struct mod_ref {
    const char *name, *sha;
    json_int_t size;
} mod_ref;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const mod_ref *)a)->name, ((const mod_ref *)b)->name);
}

/* Reads modules into refs (borrowed strings), sorted by name. */
static int read_modules(const json_t *modules, mod_ref **out, size_t *n_out, nano_error *err)
{
    size_t n = json_array_size(modules);
    if (!json_is_array(modules) || n == 0)
        return nano_error_set(err, NANO_EINVAL, "code_invalid", "a bundle needs modules");
    mod_ref *refs = nano_xcalloc(n, sizeof *refs);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(modules, i);
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *sha = json_string_value(json_object_get(m, "sha256"));
        json_t *size = json_object_get(m, "size");
        if (name == NULL || sha == NULL || !json_is_integer(size) || json_integer_value(size) < 0 ||
            strlen(sha) != 64 || !nano_msg_module_name_valid(name)) {
            nano_free(refs);
            return nano_error_set(err, NANO_EINVAL, "code_invalid",
                                  "module %zu of a bundle is malformed", i);
        }
        refs[i] = (mod_ref){name, sha, json_integer_value(size)};
    }
    qsort(refs, n, sizeof *refs, by_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i - 1].name, refs[i].name) == 0) {
            nano_free(refs);
            return nano_error_set(err, NANO_EINVAL, "code_invalid", "module %s is listed twice",
                                  refs[i].name);
        }
    }
    *out = refs;
    *n_out = n;
    return 0;
}

int dp_code_cache_bundle_sha256(const json_t *modules, char out[65], nano_error *err)
{
    mod_ref *refs;
    size_t n;
    int rc = read_modules(modules, &refs, &n, err);
    if (rc != 0)
        return rc;
    /* refs are in name order (read_modules sorts them) */
    const char **names = nano_xcalloc(n, sizeof *names), **shas = nano_xcalloc(n, sizeof *shas);
    for (size_t i = 0; i < n; i++) {
        names[i] = refs[i].name;
        shas[i] = refs[i].sha;
    }
    nano_msg_bundle_sha256(names, shas, n, out);
    nano_free(names);
    nano_free(shas);
    nano_free(refs);
    return 0;
}

/* mkdir -p of the directories above file inside root (root exists). */
static int make_parents(const char *path)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = strchr(tmp + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    return 0;
}

static int write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = n < 0 ? -errno : -EIO;
            close(fd);
            return rc;
        }
        off += (size_t)n;
    }
    return close(fd) == 0 ? 0 : -errno;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

int dp_remove_tree(const char *path)
{
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return errno != 0 ? -errno : -EIO;
    return 0;
}

/* Fills tmp (a fresh directory) with every module: linked from another bundle when its bytes
 * are already here, else fetched and checked. */
static int fill_bundle(dp_code_cache *cc, const char *tmp, const mod_ref *refs, size_t n,
                       dp_code_fetch_fn fetch, void *fetch_ud, nano_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (!join(path, sizeof path, tmp, refs[i].name))
            return nano_error_set(err, NANO_EINVAL, "code_invalid", "module path too long");
        int rc = make_parents(path);
        if (rc != 0)
            return nano_error_set(err, rc, "code_cache_io", "cannot create %s: %s", path,
                                  strerror(-rc));
        const char *have = json_string_value(json_object_get(cc->modules, refs[i].sha));
        if (have != NULL && link(have, path) == 0) {
            cc->n_linked++;
            continue;
        }
        char *data = NULL;
        size_t len = 0;
        rc = fetch(fetch_ud, refs[i].sha, &data, &len, err);
        if (rc != 0)
            return rc;
        char got[65];
        nano_sha256_hex(data, len, got);
        if ((json_int_t)len != refs[i].size || strcmp(got, refs[i].sha) != 0) {
            nano_free(data);
            return nano_error_set(err, NANO_EINVAL, "code_mismatch",
                                  "module %s: got %zu bytes with sha256 %.12s, expected %lld "
                                  "bytes with %.12s",
                                  refs[i].name, len, got, (long long)refs[i].size, refs[i].sha);
        }
        rc = write_file(path, data, len);
        nano_free(data);
        if (rc != 0)
            return nano_error_set(err, rc, "code_cache_io", "cannot write %s: %s", path,
                                  strerror(-rc));
        cc->n_fetched++;
    }
    return 0;
}

/* A bundle's sha256 is its one module's own when it has one module, whatever that module's
 * name: two apps deploying the same bytes as a.js and b.js share the directory. Each adds the
 * names it lacks, fetched into a temporary directory and renamed in, so a reader of the
 * directory never sees a half-written file. */
static int add_missing(dp_code_cache *cc, const char *dir, const char *sha, const mod_ref *refs,
                       size_t n, dp_code_fetch_fn fetch, void *fetch_ud, nano_error *err)
{
    mod_ref *missing = nano_xcalloc(n, sizeof *missing);
    size_t n_missing = 0;
    for (size_t i = 0; i < n; i++) {
        char p[PATH_MAX];
        struct stat st;
        if (join(p, sizeof p, dir, refs[i].name) && stat(p, &st) != 0)
            missing[n_missing++] = refs[i];
    }
    int rc = 0;
    if (n_missing > 0) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%ld-add", cc->dir, sha, (long)getpid());
        dp_remove_tree(tmp);
        if (mkdir(tmp, 0755) != 0)
            rc = nano_error_set(err, -errno, "code_cache_io", "cannot create %s: %s", tmp,
                                strerror(errno));
        else
            rc = fill_bundle(cc, tmp, missing, n_missing, fetch, fetch_ud, err);
        for (size_t i = 0; rc == 0 && i < n_missing; i++) {
            char from[PATH_MAX], to[PATH_MAX];
            if (!join(from, sizeof from, tmp, missing[i].name) ||
                !join(to, sizeof to, dir, missing[i].name)) {
                rc = nano_error_set(err, NANO_EINVAL, "code_invalid", "module path too long");
                break;
            }
            int e = make_parents(to);
            if (e == 0 && rename(from, to) != 0)
                e = -errno;
            if (e != 0)
                rc = nano_error_set(err, e, "code_cache_io", "cannot add %s: %s", to, strerror(-e));
        }
        dp_remove_tree(tmp);
        if (rc == 0)
            NANO_INFO("cpclient.code_cached", "sha256=%.12s modules=%zu added=%zu dir=%s", sha, n,
                      n_missing, dir);
    }
    nano_free(missing);
    return rc;
}

int dp_code_cache_ensure(dp_code_cache *cc, const char *sha, const char *main,
                         const json_t *modules, dp_code_fetch_fn fetch, void *fetch_ud,
                         char **main_path, char **source, size_t *source_len, nano_error *err)
{
    mod_ref *refs = NULL;
    size_t n = 0;
    char want[65];
    int rc = dp_code_cache_bundle_sha256(modules, want, err);
    if (rc == 0 && strcmp(want, sha) != 0)
        rc = nano_error_set(err, NANO_EINVAL, "code_mismatch",
                            "the modules listed hash to %.12s, not the deployment's %.12s", want,
                            sha);
    if (rc == 0)
        rc = read_modules(modules, &refs, &n, err);
    bool has_main = false;
    for (size_t i = 0; rc == 0 && i < n; i++)
        has_main = has_main || strcmp(refs[i].name, main) == 0;
    if (rc == 0 && !has_main)
        rc = nano_error_set(err, NANO_EINVAL, "code_invalid", "main %s is not a module", main);
    if (rc != 0) {
        nano_free(refs);
        return rc;
    }
    char dir[PATH_MAX], path[PATH_MAX];
    if (!join(dir, sizeof dir, cc->dir, sha) || !join(path, sizeof path, dir, main)) {
        nano_free(refs);
        return nano_error_set(err, NANO_EINVAL, "code_invalid", "code path too long");
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        char tmp[PATH_MAX];
        snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%ld", cc->dir, sha, (long)getpid());
        dp_remove_tree(tmp); /* a leftover of a failed earlier try */
        if (mkdir(tmp, 0755) != 0) {
            rc = nano_error_set(err, -errno, "code_cache_io", "cannot create %s: %s", tmp,
                                strerror(errno));
        } else {
            rc = fill_bundle(cc, tmp, refs, n, fetch, fetch_ud, err);
            if (rc == 0 && rename(tmp, dir) != 0 && errno != ENOTEMPTY && errno != EEXIST)
                rc = nano_error_set(err, -errno, "code_cache_io", "cannot rename %s: %s", tmp,
                                    strerror(errno));
            dp_remove_tree(tmp); /* gone after a rename; a failed fill leaves nothing */
        }
        if (rc == 0)
            NANO_INFO("cpclient.code_cached", "sha256=%.12s modules=%zu dir=%s", sha, n, dir);
    } else {
        rc = add_missing(cc, dir, sha, refs, n, fetch, fetch_ud, err);
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            char mp[PATH_MAX];
            if (join(mp, sizeof mp, dir, refs[i].name))
                json_object_set_new(cc->modules, refs[i].sha, json_string(mp));
        }
    }
    nano_free(refs);
    if (rc != 0)
        return rc;
    json_t *memo = json_object_get(cc->sources, sha);
    char *text = NULL;
    size_t len = 0;
    if (memo != NULL && strcmp(json_string_value(json_object_get(memo, "main")), main) == 0) {
        json_t *s = json_object_get(memo, "source");
        len = json_string_length(s);
        text = nano_xmalloc(len + 1);
        memcpy(text, json_string_value(s), len + 1);
    } else {
        nano_error why = {0};
        if (nano_read_file(path, NANO_CODE_MAX_BYTES, &text, &len, &why) != 0)
            return nano_error_set(err, NANO_EIO, "code_cache_io", "cannot read %s", why.message);
        json_object_set_new(
            cc->sources, sha,
            json_pack("{s:s, s:o}", "main", main, "source", json_stringn_nocheck(text, len)));
    }
    *main_path = nano_xstrdup(path);
    *source = text;
    *source_len = len;
    return 0;
}

void dp_code_cache_forget(dp_code_cache *cc, const json_t *keep)
{
    const char *sha;
    json_t *v, *tmp;
    json_object_foreach_safe(cc->sources, tmp, sha, v) {
        if (json_object_get(keep, sha) == NULL)
            json_object_del(cc->sources, sha);
    }
}
