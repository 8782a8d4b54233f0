/* etcd_int.h: what etcd.c (requests) and etcd_watch.c (the watch thread) share: the parsed URL
 * with TLS paths and limits, curl setup, and the JSON codecs of keys, values and int64s.
 * Included only from controlplane/etcd*.c. */
#ifndef CP_ETCD_INT_H
#define CP_ETCD_INT_H

#include <curl/curl.h>
#include <jansson.h>

#include "etcd.h"

#define CP_ETCD_MAX_ENDPOINTS 32

/* Everything a connection needs, copied whole into each watch. */
typedef struct cp_etcd__conf {
    char *endpoints[CP_ETCD_MAX_ENDPOINTS]; /* "http://host:port" or "https://..." */
    size_t n_endpoints;
    char *prefix;
    char *cacert, *cert, *key; /* NULL when absent */
    cp_etcd_limits lim;        /* defaults filled in */
} cp_etcd__conf;

struct cp_etcd {
    cp_etcd__conf conf;
    size_t cur; /* the endpoint tried first: the last that answered */
    CURL *curl;
};

/* cp_etcd__conf_copy: a deep copy of src into dst. cp_etcd__conf_fini frees dst's strings. */
void cp_etcd__conf_copy(cp_etcd__conf *dst, const cp_etcd__conf *src);
void cp_etcd__conf_fini(cp_etcd__conf *c);

/* cp_etcd__curl_setup: the options every request and watch sets on c: timeouts, TLS files,
 * no signals (we run on threads), TCP keepalive. */
void cp_etcd__curl_setup(CURL *c, const cp_etcd__conf *conf);

/* cp_etcd__curl_init: curl_global_init, once per process (thread-safe). */
void cp_etcd__curl_init(void);

/* cp_etcd__set_bytes: o[name] = base64(p[0..len)). */
void cp_etcd__set_bytes(json_t *o, const char *name, const void *p, size_t len);

/* cp_etcd__int64: o[name] as int64: etcd's JSON gives int64 fields as strings, proto3 leaves
 * out zeros. Returns 0 (absent: *out = 0) or NANO_ESYNTAX. */
int cp_etcd__int64(const json_t *o, const char *name, int64_t *out);

/* cp_etcd__kv_parse: one mvccpb.KeyValue into kv (owned strings). Returns 0 or NANO_ESYNTAX
 * (kv untouched). cp_etcd__kv_fini frees kv's strings (NULL-safe, fields zeroed). */
int cp_etcd__kv_parse(const json_t *o, cp_etcd_kv *kv);
void cp_etcd__kv_fini(cp_etcd_kv *kv);

#endif
