/* curl_lib.h: libcurl, loaded when the first outbound transfer needs it (docs/nano-dp.md,
 * "Process start").
 *
 * Linked at build time, libcurl made the dynamic linker map 23 more shared objects (GnuTLS,
 * Kerberos, LDAP, ...) at every start of nano-dp, about 15% of its process start, for a
 * feature many apps never use, and every `nano-dp check` child paid it too. So nano-dp links
 * no libcurl: the client calls it through this table, which dp_curl_load fills with dlopen
 * of the runtime library (Debian's libcurl4, the soname curl.h was built for) and dlsym.
 *
 * client.c includes this instead of <curl/curl.h>; the curl_* names below are macros for the
 * table's entries, so the client reads as plain libcurl code. Call them only after
 * dp_curl_load returned 0. */
#ifndef DP_CURL_LIB_H
#define DP_CURL_LIB_H

/* The type-checking macros of curl.h would wrap curl_easy_setopt, which is a table entry
 * here; the options are checked by the compiler against the same header either way. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "error.h"

typedef struct dp_curl_api {
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *curl);
    void (*easy_reset)(CURL *curl);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    CURLcode (*easy_pause)(CURL *handle, int bitmask);
    const char *(*easy_strerror)(CURLcode code);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *multi);
    CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
    CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
    CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t s, int ev_bitmask,
                                     int *running_handles);
    CURLMsg *(*multi_info_read)(CURLM *multi, int *msgs_in_queue);
    struct curl_slist *(*slist_append)(struct curl_slist *list, const char *string);
    void (*slist_free_all)(struct curl_slist *list);
} dp_curl_api;

extern dp_curl_api dp_curl;

/* dp_curl_load: loads libcurl and runs curl_global_init, once per process (any thread; the
 * first caller does it, the others wait). Returns 0, or an error (the library is missing or
 * lacks a function) that every later call returns too. */
int dp_curl_load(nano_error *err);

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init dp_curl.global_init
#define curl_easy_init dp_curl.easy_init
#define curl_easy_cleanup dp_curl.easy_cleanup
#define curl_easy_reset dp_curl.easy_reset
#define curl_easy_setopt dp_curl.easy_setopt
#define curl_easy_getinfo dp_curl.easy_getinfo
#define curl_easy_pause dp_curl.easy_pause
#define curl_easy_strerror dp_curl.easy_strerror
#define curl_multi_init dp_curl.multi_init
#define curl_multi_cleanup dp_curl.multi_cleanup
#define curl_multi_setopt dp_curl.multi_setopt
#define curl_multi_add_handle dp_curl.multi_add_handle
#define curl_multi_remove_handle dp_curl.multi_remove_handle
#define curl_multi_socket_action dp_curl.multi_socket_action
#define curl_multi_info_read dp_curl.multi_info_read
#define curl_slist_append dp_curl.slist_append
#define curl_slist_free_all dp_curl.slist_free_all

#endif
