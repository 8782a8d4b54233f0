/* curl_lib.c: libcurl loaded on first use (curl_lib.h says why). */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

#include <uv.h>

/* The real names, not curl_lib.h's macros: this file only takes their addresses. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "curl_lib.h"
#include "log.h"

dp_curl_api dp_curl;

/* The soname of Debian's runtime package (libcurl4) for the curl.h of libcurl4-*-dev. */
#define DP_CURL_SONAME "libcurl.so.4"

static uv_once_t g_once = UV_ONCE_INIT;
static nano_error g_err; /* set once by load_once; read-only afterwards */

static void load_once(void)
{
    /* RTLD_LOCAL: curl's symbols stay out of the global scope (nothing else binds to them). */
    void *lib = dlopen(DP_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        nano_error_set(&g_err, NANO_ENOTFOUND, "curl_missing",
                       "outbound fetch needs libcurl (" DP_CURL_SONAME "): %s", dlerror());
        return;
    }
    static const struct {
        const char *name;
        size_t offset;
    } fns[] = {
        {"curl_global_init", offsetof(dp_curl_api, global_init)},
        {"curl_easy_init", offsetof(dp_curl_api, easy_init)},
        {"curl_easy_cleanup", offsetof(dp_curl_api, easy_cleanup)},
        {"curl_easy_reset", offsetof(dp_curl_api, easy_reset)},
        {"curl_easy_setopt", offsetof(dp_curl_api, easy_setopt)},
        {"curl_easy_getinfo", offsetof(dp_curl_api, easy_getinfo)},
        {"curl_easy_pause", offsetof(dp_curl_api, easy_pause)},
        {"curl_easy_strerror", offsetof(dp_curl_api, easy_strerror)},
        {"curl_multi_init", offsetof(dp_curl_api, multi_init)},
        {"curl_multi_cleanup", offsetof(dp_curl_api, multi_cleanup)},
        {"curl_multi_setopt", offsetof(dp_curl_api, multi_setopt)},
        {"curl_multi_add_handle", offsetof(dp_curl_api, multi_add_handle)},
        {"curl_multi_remove_handle", offsetof(dp_curl_api, multi_remove_handle)},
        {"curl_multi_socket_action", offsetof(dp_curl_api, multi_socket_action)},
        {"curl_multi_info_read", offsetof(dp_curl_api, multi_info_read)},
        {"curl_slist_append", offsetof(dp_curl_api, slist_append)},
        {"curl_slist_free_all", offsetof(dp_curl_api, slist_free_all)},
    };
    dp_curl_api api;
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        void *fn = dlsym(lib, fns[i].name);
        if (fn == NULL) {
            nano_error_set(&g_err, NANO_ENOTFOUND, "curl_missing", "%s has no %s", DP_CURL_SONAME,
                           fns[i].name);
            dlclose(lib);
            return;
        }
        memcpy((char *)&api + fns[i].offset, &fn, sizeof fn);
    }
    /* Every version of the 7.x/8.x ABI (soname 4) has these; curl_version_info says which. */
    curl_version_info_data *(*version_info)(CURLversion) =
        (curl_version_info_data * (*)(CURLversion)) dlsym(lib, "curl_version_info");
    if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        nano_error_set(&g_err, NANO_EINVAL, "curl_init", "curl_global_init failed");
        return; /* keep the library: its state is half made */
    }
    dp_curl = api;
    curl_version_info_data *v = version_info != NULL ? version_info(CURLVERSION_NOW) : NULL;
    NANO_DEBUG("client.curl_loaded", "version=%s ssl=%s", v != NULL ? v->version : "?",
               v != NULL && v->ssl_version != NULL ? v->ssl_version : "none");
}

int dp_curl_load(nano_error *err)
{
    uv_once(&g_once, load_once);
    if (g_err.code != 0) {
        if (err != NULL)
            *err = g_err;
        return g_err.code;
    }
    return 0;
}
