/* code_cache.h: the data plane's content-addressed store of deployed code (docs/nano-dp.md):
 * DIR/<bundle sha256>/<module name>, one directory per deployment bundle. A bundle is written
 * into a temporary directory beside it and renamed into place only once every module was
 * fetched and its sha256 (and the bundle's) checked, so a directory named by a sha256 is
 * always complete. Module bytes come from a fetch callback (code.get over the control plane's
 * REQ/REP; a table in unit tests); a module already held by another bundle is linked, not
 * fetched again. One owner thread (the control-plane client's). */
#ifndef DP_CODE_CACHE_H
#define DP_CODE_CACHE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* dp_code_fetch_fn: the bytes of the module whose sha256 is sha (64 hex digits) into *data
 * (returned owned, nano_malloc'd, NUL-terminated, not counted in *len). Returns 0 or an error
 * with err filled. */
typedef int (*dp_code_fetch_fn)(void *ud, const char *sha, char **data, size_t *len,
                                nano_error *err);

typedef struct dp_code_cache {
    char *dir;       /* absolute, canonical */
    json_t *sources; /* bundle sha -> its main module's source (memo for config builds) */
    json_t *modules; /* module sha -> a path holding its bytes */
    unsigned long n_fetched, n_linked; /* modules fetched / reused (for logs and tests) */
} dp_code_cache;

/* dp_code_cache_init: uses the existing directory dir. Returns 0, or an error naming dir. */
int dp_code_cache_init(dp_code_cache *cc, const char *dir, nano_error *err);
void dp_code_cache_fini(dp_code_cache *cc);

/* dp_code_cache_bundle_sha256: the bundle hash nanocp gives a deployment (controlplane
 * service.h): the module's own sha256 for a single module, else sha256 over
 * "NAME\0SHA256HEX\n" for each module in name (strcmp) order. modules is an array of
 * {name, size, sha256}. Returns 0, or NANO_EINVAL when modules is malformed. */
int dp_code_cache_bundle_sha256(const json_t *modules, char out[65], nano_error *err);

/* dp_code_cache_ensure: makes DIR/sha hold the bundle (modules: [{name, size, sha256}], main
 * one of their names), fetching what is missing through fetch; then returns the main
 * module's absolute path (*main_path, owned) and source (*source, owned, NUL-terminated,
 * *source_len bytes). Every fetched module's size and sha256 are checked, and the bundle's
 * sha256 against sha; a mismatch is an error (id "code_mismatch") and nothing is left
 * behind. Outputs are written only on success. */
int dp_code_cache_ensure(dp_code_cache *cc, const char *sha, const char *main,
                         const json_t *modules, dp_code_fetch_fn fetch, void *fetch_ud,
                         char **main_path, char **source, size_t *source_len, nano_error *err);

/* dp_code_cache_forget: drops the in-memory memo of bundles not in keep (a JSON object whose
 * keys are the bundle shas still in use); the directories stay (a rollback reuses them). */
void dp_code_cache_forget(dp_code_cache *cc, const json_t *keep);

/* dp_remove_tree: removes path and everything under it (the private code dir at exit).
 * Returns 0 or a negative errno. */
int dp_remove_tree(const char *path);

#endif
