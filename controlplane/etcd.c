/* etcd.c: the handle, URL parsing, one request with failover, and the unary calls (range, put,
 * deleterange, txn, compaction, leases) of etcd 3.4's JSON gateway (api/etcdserverpb/rpc.proto
 * mapped by grpc-gateway: POST /v3/<service>/<method>, bytes as base64, int64 as strings,
 * proto3 zero values left out). */
#include "etcd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "alloc.h"
#include "buf.h"
#include "etcd_int.h"
#include "log.h"
#include "parse.h"

/* --- configuration ----------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void cp_etcd__curl_init(void)
{
    pthread_once(&curl_once, curl_init_once);
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? nano_xstrdup(s) : NULL;
}

void cp_etcd__conf_copy(cp_etcd__conf *dst, const cp_etcd__conf *src)
{
    *dst = *src;
    for (size_t i = 0; i < src->n_endpoints; i++)
        dst->endpoints[i] = nano_xstrdup(src->endpoints[i]);
    dst->prefix = nano_xstrdup(src->prefix);
    dst->cacert = dup_or_null(src->cacert);
    dst->cert = dup_or_null(src->cert);
    dst->key = dup_or_null(src->key);
}

void cp_etcd__conf_fini(cp_etcd__conf *c)
{
    for (size_t i = 0; i < c->n_endpoints; i++)
        free(c->endpoints[i]);
    free(c->prefix);
    free(c->cacert);
    free(c->cert);
    free(c->key);
    memset(c, 0, sizeof *c);
}

static void limits_fill(cp_etcd_limits *dst, const cp_etcd_limits *src)
{
    *dst = src != NULL ? *src : (cp_etcd_limits){0};
    if (dst->connect_timeout_ms == 0)
        dst->connect_timeout_ms = CP_ETCD_CONNECT_TIMEOUT_MS;
    if (dst->timeout_ms == 0)
        dst->timeout_ms = CP_ETCD_TIMEOUT_MS;
    if (dst->max_response == 0)
        dst->max_response = CP_ETCD_MAX_RESPONSE;
}

void cp_etcd__curl_setup(CURL *c, const cp_etcd__conf *conf)
{
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)conf->lim.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 10L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 5L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (conf->cacert != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, conf->cacert);
    if (conf->cert != NULL) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, conf->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, conf->key);
    }
}

/* One "host[:port]" of the URL's list -> "SCHEME://host:port" in *out. */
static int parse_endpoint(const char *url, const char *s, size_t len, bool tls, char **out,
                          nano_error *err)
{
    if (len == 0)
        return nano_error_set(err, NANO_EINVAL, "etcd_url_invalid",
                              "bad etcd URL '%s': an empty host in the list", url);
    if (!nano_http_host_valid(s, len))
        return nano_error_set(err, NANO_EINVAL, "etcd_url_invalid",
                              "bad etcd URL '%s': '%.*s' is not HOST[:PORT]", url, (int)len, s);
    const char *host_end = s;
    if (s[0] == '[')
        host_end = memchr(s, ']', len) + 1;
    const char *colon = memchr(host_end, ':', len - (size_t)(host_end - s));
    if (colon != NULL) {
        char port_s[8] = {0};
        int port = 0;
        size_t port_len = len - (size_t)(colon + 1 - s);
        if (port_len >= sizeof port_s)
            port_len = sizeof port_s - 1;
        memcpy(port_s, colon + 1, port_len);
        if (nano_parse_port(port_s, &port) != 0 || port == 0)
            return nano_error_set(err, NANO_EINVAL, "etcd_url_invalid",
                                  "bad etcd URL '%s': '%.*s' has no valid port (1-65535)", url,
                                  (int)len, s);
    }
    nano_buf b = NANO_BUF_INIT;
    nano_buf_appendf(&b, "%s://%.*s%s", tls ? "https" : "http", (int)len, s,
                     colon == NULL ? ":2379" : "");
    *out = nano_xstrdup(nano_buf_cstr(&b));
    nano_buf_fini(&b);
    return 0;
}

/* "etcd[s]://h1:p1,h2:p2[/prefix]" -> c's endpoints and prefix. */
static int parse_url(const char *url, cp_etcd__conf *c, nano_error *err)
{
    bool tls;
    const char *p;
    if (strncmp(url, "etcd://", 7) == 0) {
        tls = false;
        p = url + 7;
    } else if (strncmp(url, "etcds://", 8) == 0) {
        tls = true;
        p = url + 8;
    } else {
        return nano_error_set(err, NANO_EINVAL, "etcd_url_invalid",
                              "bad etcd URL '%s': it must start with etcd:// or etcds://", url);
    }
    const char *path = strchr(p, '/');
    const char *hosts_end = path != NULL ? path : p + strlen(p);
    while (p <= hosts_end) {
        const char *comma = memchr(p, ',', (size_t)(hosts_end - p));
        const char *end = comma != NULL ? comma : hosts_end;
        if (c->n_endpoints == CP_ETCD_MAX_ENDPOINTS)
            return nano_error_set(err, NANO_EINVAL, "etcd_url_invalid",
                                  "bad etcd URL '%s': more than %d endpoints", url,
                                  CP_ETCD_MAX_ENDPOINTS);
        int rc = parse_endpoint(url, p, (size_t)(end - p), tls, &c->endpoints[c->n_endpoints], err);
        if (rc != 0)
            return rc;
        c->n_endpoints++;
        p = end + 1;
    }
    /* The prefix: a path of unreserved characters and '/', so that it needs no decoding and
     * reads the same in the URL, in etcdctl and in the keys. */
    if (path == NULL || strcmp(path, "/") == 0) {
        c->prefix = nano_xstrdup("");
        return 0;
    }
    size_t n = strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/");
    if (path[n] != '\0')
        return nano_error_set(err, NANO_EINVAL, "etcd_url_invalid",
                              "bad etcd URL '%s': the key prefix may hold only letters, digits, "
                              "'-', '.', '_', '~' and '/' (found '%c')",
                              url, path[n]);
    nano_buf b = NANO_BUF_INIT;
    nano_buf_append_str(&b, path);
    if (path[strlen(path) - 1] != '/')
        nano_buf_append_str(&b, "/");
    c->prefix = nano_xstrdup(nano_buf_cstr(&b));
    nano_buf_fini(&b);
    return 0;
}

int cp_etcd_open(const char *url, const cp_etcd_tls *tls, cp_etcd **out, nano_error *err)
{
    cp_etcd *e = nano_xcalloc(1, sizeof *e);
    int rc = parse_url(url, &e->conf, err);
    if (rc != 0)
        goto done;
    if (tls != NULL && (tls->cert == NULL) != (tls->key == NULL)) {
        rc = nano_error_set(err, NANO_EINVAL, "etcd_tls_invalid",
                            "etcd TLS: a client certificate needs both a cert and a key file");
        goto done;
    }
    if (tls != NULL && strncmp(url, "etcds://", 8) != 0) {
        rc = nano_error_set(err, NANO_EINVAL, "etcd_tls_invalid",
                            "etcd TLS files given for '%s', a plain etcd:// URL (use etcds://)",
                            url);
        goto done;
    }
    if (tls != NULL) {
        e->conf.cacert = dup_or_null(tls->cacert);
        e->conf.cert = dup_or_null(tls->cert);
        e->conf.key = dup_or_null(tls->key);
    }
    limits_fill(&e->conf.lim, NULL);
    cp_etcd__curl_init();
    e->curl = curl_easy_init();
    if (e->curl == NULL) {
        rc = nano_error_set(err, NANO_ENOMEM, "etcd_curl", "etcd: curl_easy_init failed");
        goto done;
    }
    *out = e;
    e = NULL;
done:
    cp_etcd_free(e);
    return rc;
}

void cp_etcd_set_limits(cp_etcd *e, const cp_etcd_limits *lim)
{
    limits_fill(&e->conf.lim, lim);
}

void cp_etcd_free(cp_etcd *e)
{
    if (e == NULL)
        return;
    if (e->curl != NULL)
        curl_easy_cleanup(e->curl);
    cp_etcd__conf_fini(&e->conf);
    free(e);
}

const char *cp_etcd_prefix(const cp_etcd *e)
{
    return e->conf.prefix;
}

const char *cp_etcd_endpoint(const cp_etcd *e)
{
    return e->conf.endpoints[e->cur];
}

size_t cp_etcd_prefix_end(const void *prefix, size_t len, unsigned char *out)
{
    const unsigned char *p = prefix;
    while (len > 0 && p[len - 1] == 0xff)
        len--;
    if (len == 0) {
        out[0] = 0;
        return 1;
    }
    memcpy(out, p, len);
    out[len - 1]++;
    return len;
}

/* --- JSON codecs ----------------------------------------------------------------------------- */

void cp_etcd__set_bytes(json_t *o, const char *name, const void *p, size_t len)
{
    char *b64 = nano_xmalloc(4 * ((len + 2) / 3) + 1);
    int n = len > 0 ? EVP_EncodeBlock((unsigned char *)b64, p, (int)len) : 0;
    json_object_set_new(o, name, json_stringn(b64, (size_t)n));
    free(b64);
}

/* base64 text -> owned NUL-terminated bytes. EVP_DecodeBlock counts '=' padding as zero
 * bytes, so the padding is subtracted here. */
static int decode_bytes(const json_t *s, char **out, size_t *out_len)
{
    if (s == NULL) { /* proto3 leaves out an empty value */
        *out = nano_xstrdup("");
        *out_len = 0;
        return 0;
    }
    if (!json_is_string(s))
        return NANO_ESYNTAX;
    const char *in = json_string_value(s);
    size_t len = json_string_length(s);
    if (len % 4 != 0 || len > (size_t)INT32_MAX)
        return NANO_ESYNTAX;
    char *buf = nano_malloc(len / 4 * 3 + 1);
    if (buf == NULL)
        return NANO_ENOMEM;
    int n = len > 0 ? EVP_DecodeBlock((unsigned char *)buf, (const unsigned char *)in, (int)len)
                    : 0;
    if (n < 0) {
        free(buf);
        return NANO_ESYNTAX;
    }
    for (size_t i = len; i > 0 && in[i - 1] == '=' && n > 0; i--)
        n--;
    buf[n] = '\0';
    *out = buf;
    *out_len = (size_t)n;
    return 0;
}

int cp_etcd__int64(const json_t *o, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(o, name);
    if (v == NULL) {
        *out = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return NANO_ESYNTAX;
    const char *s = json_string_value(v);
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return NANO_ESYNTAX;
    *out = n;
    return 0;
}

void cp_etcd__kv_fini(cp_etcd_kv *kv)
{
    if (kv == NULL)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

int cp_etcd__kv_parse(const json_t *o, cp_etcd_kv *kv)
{
    cp_etcd_kv k = {0};
    if (!json_is_object(o))
        return NANO_ESYNTAX;
    int rc = decode_bytes(json_object_get(o, "key"), &k.key, &k.key_len);
    if (rc == 0)
        rc = decode_bytes(json_object_get(o, "value"), &k.value, &k.value_len);
    if (rc == 0)
        rc = cp_etcd__int64(o, "create_revision", &k.create_revision);
    if (rc == 0)
        rc = cp_etcd__int64(o, "mod_revision", &k.mod_revision);
    if (rc == 0)
        rc = cp_etcd__int64(o, "version", &k.version);
    if (rc == 0)
        rc = cp_etcd__int64(o, "lease", &k.lease);
    if (rc != 0) {
        cp_etcd__kv_fini(&k);
        return rc;
    }
    *kv = k;
    return 0;
}

static void result_fini(cp_etcd_result *r)
{
    for (size_t i = 0; i < r->n_kvs; i++)
        cp_etcd__kv_fini(&r->kvs[i]);
    free(r->kvs);
}

void cp_etcd_result_free(cp_etcd_result *r)
{
    if (r == NULL)
        return;
    result_fini(r);
    free(r);
}

void cp_etcd_txn_result_free(cp_etcd_txn_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_responses; i++)
        result_fini(&r->responses[i]);
    free(r->responses);
    free(r);
}

static int header_revision(const json_t *resp, int64_t *out)
{
    return cp_etcd__int64(json_object_get(resp, "header"), "revision", out);
}

/* A RangeResponse, PutResponse or DeleteRangeResponse (o) into r. */
static int result_parse(const json_t *o, cp_etcd_op_type type, cp_etcd_result *r)
{
    memset(r, 0, sizeof *r);
    r->type = type;
    if (!json_is_object(o))
        return NANO_ESYNTAX;
    int rc = header_revision(o, &r->revision);
    if (rc == 0)
        rc = cp_etcd__int64(o, "count", &r->count);
    if (rc == 0)
        rc = cp_etcd__int64(o, "deleted", &r->deleted);
    if (rc != 0)
        return rc;
    r->more = json_is_true(json_object_get(o, "more"));
    const json_t *kvs = json_object_get(o, "kvs");
    if (kvs == NULL)
        return 0;
    if (!json_is_array(kvs))
        return NANO_ESYNTAX;
    r->kvs = nano_xcalloc(json_array_size(kvs) + 1, sizeof *r->kvs);
    for (size_t i = 0; i < json_array_size(kvs); i++) {
        rc = cp_etcd__kv_parse(json_array_get(kvs, i), &r->kvs[i]);
        if (rc != 0)
            return rc; /* the caller frees the kvs parsed so far */
        r->n_kvs++;
    }
    return 0;
}

/* --- one request, with failover ------------------------------------------------------------- */

typedef struct call {
    const cp_etcd__conf *conf;
    nano_buf body;
    bool too_big;
    int n_sent; /* request heads curl sent: 2 when it re-sent on a fresh connection */
} call;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    call *c = arg;
    if (c->body.len + n > c->conf->lim.max_response) {
        c->too_big = true;
        return 0; /* curl aborts the transfer: CURLE_WRITE_ERROR */
    }
    nano_buf_append(&c->body, p, size * n);
    return size * n;
}

/* curl's own retry: a request sent on a reused connection that died before any answer is sent
 * again on a fresh one, which for a write means it may have been applied twice. Counting the
 * request heads curl sends (its debug callback, called only in verbose mode) tells. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *arg)
{
    (void)h, (void)data, (void)size;
    if (type == CURLINFO_HEADER_OUT)
        ((call *)arg)->n_sent++;
    return 0;
}

/* etcd errors raised before a write is proposed to Raft: the write was not applied, so another
 * endpoint may take it (etcd's clientv3 retries the same set; rpctypes/error.go). Other
 * ResourceExhausted answers (HTTP 429: a message over gRPC's limit, no space left) were not
 * applied either, but every member would say the same: they are returned as they are. */
static bool is_not_applied(const char *msg)
{
    return strcmp(msg, "etcdserver: no leader") == 0 ||
           strcmp(msg, "etcdserver: too many requests") == 0 ||
           strcmp(msg, "etcdserver: not capable") == 0;
}

/* An error answer ({"error": "...", "code": N}, code a gRPC status) as a nano_error. */
static int etcd_error(const json_t *j, long status, const char *endpoint, nano_error *err)
{
    const char *msg = json_string_value(json_object_get(j, "error"));
    json_int_t code = json_integer_value(json_object_get(j, "code"));
    if (msg == NULL)
        return nano_error_set(err, NANO_EIO, "etcd_error", "etcd %s: HTTP %ld", endpoint, status);
    if (strstr(msg, "required revision has been compacted") != NULL)
        return nano_error_set(err, NANO_ERANGE, "etcd_compacted", "etcd: %s", msg);
    if (strstr(msg, "required revision is a future revision") != NULL)
        return nano_error_set(err, NANO_ERANGE, "etcd_future_revision", "etcd: %s", msg);
    if (strstr(msg, "request is too large") != NULL ||
        strstr(msg, "received message larger than max") != NULL) /* gRPC's own limit */
        return nano_error_set(err, NANO_ETOOBIG, "etcd_request_too_large", "etcd: %s", msg);
    if (strstr(msg, "requested lease not found") != NULL)
        return nano_error_set(err, NANO_ENOTFOUND, "etcd_lease_not_found", "etcd: %s", msg);
    return nano_error_set(err, NANO_EIO, "etcd_error", "etcd %s: %s (gRPC code %lld)", endpoint,
                          msg, (long long)code);
}

/* POST body (taken) to path on each endpoint in turn until one answers; *out the answer's
 * JSON. is_write: a request that may change the store, never re-sent once it may have
 * arrived. */
static int request(cp_etcd *e, const char *path, json_t *body, bool is_write, json_t **out,
                   nano_error *err)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    nano_error last = {0};
    int rc = NANO_EIO;
    call c = {.conf = &e->conf};
    if (text == NULL)
        return nano_error_set(err, NANO_ENOMEM, "etcd_request", "etcd: cannot encode a request");
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t tried = 0; tried < e->conf.n_endpoints; tried++) {
        size_t i = (e->cur + tried) % e->conf.n_endpoints;
        const char *ep = e->conf.endpoints[i];
        char url[512];
        snprintf(url, sizeof url, "%s%s", ep, path);
        CURL *h = e->curl;
        curl_easy_reset(h);
        cp_etcd__curl_setup(h, &e->conf);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->conf.lim.timeout_ms);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(text));
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(h, CURLOPT_DEBUGDATA, &c);
        nano_buf_reset(&c.body);
        c.too_big = false;
        c.n_sent = 0;
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (c.too_big) {
            rc = nano_error_set(err, NANO_ETOOBIG, "etcd_response_too_large",
                                "etcd %s: the answer to %s is over %zu bytes", ep, path,
                                e->conf.lim.max_response);
            goto done;
        }
        bool was_sent = c.n_sent > 0;
        if (cc != CURLE_OK || (is_write && c.n_sent > 1)) {
            const char *why = cc != CURLE_OK ? curl_easy_strerror(cc)
                                             : "connection lost, the request was sent again";
            if (is_write && was_sent) {
                rc = nano_error_set(err, NANO_EUNKNOWN, "etcd_outcome_unknown",
                                    "etcd %s: %s after %s was sent: it may or may not have been "
                                    "applied",
                                    ep, why, path);
                goto done;
            }
            nano_error_set(&last, NANO_EIO, "etcd_unavailable", "%s: %s", ep, why);
            NANO_WARN("etcd.endpoint_failed", "endpoint=%s path=%s error=\"%s\"", ep, path, why);
            continue;
        }
        json_error_t jerr;
        json_t *j = json_loadb(c.body.data != NULL ? c.body.data : "", c.body.len, 0, &jerr);
        if (status >= 200 && status < 300) {
            const json_t *result = json_object_get(j, "result"); /* a stream's first message */
            if (json_is_object(result)) {
                json_incref((json_t *)result);
                json_decref(j);
                j = (json_t *)result;
            }
            if (!json_is_object(j)) {
                json_decref(j);
                rc = nano_error_set(err, is_write ? NANO_EUNKNOWN : NANO_EIO,
                                    is_write ? "etcd_outcome_unknown" : "etcd_bad_response",
                                    "etcd %s: the answer to %s is not a JSON object (%s)", ep, path,
                                    jerr.text);
                goto done;
            }
            e->cur = i;
            *out = j;
            rc = 0;
            goto done;
        }
        const char *msg = json_string_value(json_object_get(j, "error"));
        if (status >= 500 || (status == 429 && msg != NULL && is_not_applied(msg))) {
            /* Unavailable (no leader, timeouts), overload: another member may do better. A
             * write that timed out inside etcd may still be committed, though. */
            if (is_write && (msg == NULL || !is_not_applied(msg))) {
                rc = nano_error_set(err, NANO_EUNKNOWN, "etcd_outcome_unknown",
                                    "etcd %s: %s (HTTP %ld) for %s: it may or may not have been "
                                    "applied",
                                    ep, msg != NULL ? msg : "no answer", status, path);
                json_decref(j);
                goto done;
            }
            nano_error_set(&last, NANO_EIO, "etcd_unavailable", "%s: %s (HTTP %ld)", ep,
                           msg != NULL ? msg : "error", status);
            NANO_WARN("etcd.endpoint_failed", "endpoint=%s path=%s status=%ld", ep, path, status);
            json_decref(j);
            continue;
        }
        e->cur = i; /* it answered: a refusal of the request itself */
        rc = etcd_error(j, status, ep, err);
        json_decref(j);
        goto done;
    }
    rc = nano_error_set(err, NANO_EIO, "etcd_unavailable", "no etcd endpoint answered (last: %s)",
                        last.message[0] != '\0' ? last.message : "none tried");
done:
    curl_slist_free_all(headers);
    /* The easy handle keeps pointers to c and headers: clear them before they go. */
    curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e->curl, CURLOPT_DEBUGFUNCTION, NULL);
    curl_easy_setopt(e->curl, CURLOPT_VERBOSE, 0L);
    nano_buf_fini(&c.body);
    free(text);
    return rc;
}

static int bad_response(const char *what, nano_error *err)
{
    return nano_error_set(err, NANO_EIO, "etcd_bad_response", "etcd: malformed answer to %s", what);
}

/* --- key-value ------------------------------------------------------------------------------ */

static void set_range_end(json_t *o, const void *range_end, size_t len)
{
    if (range_end != NULL)
        cp_etcd__set_bytes(o, "range_end", range_end, len);
}

static json_t *range_json(const cp_etcd_range_req *req)
{
    json_t *o = json_object();
    cp_etcd__set_bytes(o, "key", req->key, req->key_len);
    set_range_end(o, req->range_end, req->range_end_len);
    if (req->limit > 0)
        json_object_set_new(o, "limit", json_integer(req->limit));
    if (req->revision > 0)
        json_object_set_new(o, "revision", json_integer(req->revision));
    if (req->keys_only)
        json_object_set_new(o, "keys_only", json_true());
    if (req->count_only)
        json_object_set_new(o, "count_only", json_true());
    return o;
}

static json_t *put_json(const void *key, size_t key_len, const void *value, size_t value_len,
                        int64_t lease)
{
    json_t *o = json_object();
    cp_etcd__set_bytes(o, "key", key, key_len);
    cp_etcd__set_bytes(o, "value", value, value_len);
    if (lease != 0)
        json_object_set_new(o, "lease", json_integer(lease));
    return o;
}

static json_t *delete_json(const void *key, size_t key_len, const void *range_end,
                           size_t range_end_len)
{
    json_t *o = json_object();
    cp_etcd__set_bytes(o, "key", key, key_len);
    set_range_end(o, range_end, range_end_len);
    return o;
}

/* A unary call whose answer is one result of type; *out returned owned. */
static int call_result(cp_etcd *e, const char *path, json_t *body, cp_etcd_op_type type,
                       cp_etcd_result **out, nano_error *err)
{
    json_t *j = NULL;
    int rc = request(e, path, body, type != CP_ETCD_OP_RANGE, &j, err);
    if (rc != 0)
        return rc;
    cp_etcd_result *r = nano_xcalloc(1, sizeof *r);
    rc = result_parse(j, type, r);
    json_decref(j);
    if (rc != 0) {
        cp_etcd_result_free(r);
        return bad_response(path, err);
    }
    *out = r;
    return 0;
}

int cp_etcd_range(cp_etcd *e, const cp_etcd_range_req *req, cp_etcd_result **out, nano_error *err)
{
    return call_result(e, "/v3/kv/range", range_json(req), CP_ETCD_OP_RANGE, out, err);
}

int cp_etcd_get(cp_etcd *e, const void *key, size_t key_len, cp_etcd_result **out, nano_error *err)
{
    cp_etcd_range_req req = {.key = key, .key_len = key_len};
    return cp_etcd_range(e, &req, out, err);
}

int cp_etcd_put(cp_etcd *e, const void *key, size_t key_len, const void *value, size_t value_len,
                int64_t lease, int64_t *revision_out, nano_error *err)
{
    cp_etcd_result *r = NULL;
    int rc = call_result(e, "/v3/kv/put", put_json(key, key_len, value, value_len, lease),
                         CP_ETCD_OP_PUT, &r, err);
    if (rc == 0 && revision_out != NULL)
        *revision_out = r->revision;
    cp_etcd_result_free(r);
    return rc;
}

int cp_etcd_delete(cp_etcd *e, const void *key, size_t key_len, const void *range_end,
                   size_t range_end_len, int64_t *deleted_out, int64_t *revision_out,
                   nano_error *err)
{
    cp_etcd_result *r = NULL;
    int rc = call_result(e, "/v3/kv/deleterange",
                         delete_json(key, key_len, range_end, range_end_len), CP_ETCD_OP_DELETE, &r,
                         err);
    if (rc == 0 && deleted_out != NULL)
        *deleted_out = r->deleted;
    if (rc == 0 && revision_out != NULL)
        *revision_out = r->revision;
    cp_etcd_result_free(r);
    return rc;
}

int cp_etcd_compact(cp_etcd *e, int64_t revision, nano_error *err)
{
    json_t *body = json_pack("{s:I, s:b}", "revision", (json_int_t)revision, "physical", 1);
    json_t *j = NULL;
    int rc = request(e, "/v3/kv/compaction", body, true, &j, err);
    json_decref(j);
    return rc;
}

/* --- transactions --------------------------------------------------------------------------- */

static json_t *cmp_json(const cp_etcd_cmp *c)
{
    static const char *const targets[] = {"VALUE", "VERSION", "CREATE", "MOD", "LEASE"};
    static const char *const fields[] = {"value", "version", "create_revision", "mod_revision",
                                         "lease"};
    static const char *const ops[] = {"EQUAL", "NOT_EQUAL", "LESS", "GREATER"};
    json_t *o = json_object();
    cp_etcd__set_bytes(o, "key", c->key, c->key_len);
    json_object_set_new(o, "target", json_string(targets[c->target]));
    json_object_set_new(o, "result", json_string(ops[c->op]));
    if (c->target == CP_ETCD_CMP_VALUE)
        cp_etcd__set_bytes(o, "value", c->value, c->value_len);
    else
        json_object_set_new(o, fields[c->target], json_integer(c->number));
    return o;
}

static json_t *op_json(const cp_etcd_op *op)
{
    json_t *o = json_object();
    switch (op->type) {
    case CP_ETCD_OP_RANGE: {
        cp_etcd_range_req req = {.key = op->key,
                                 .key_len = op->key_len,
                                 .range_end = op->range_end,
                                 .range_end_len = op->range_end_len,
                                 .limit = op->limit};
        json_object_set_new(o, "request_range", range_json(&req));
        break;
    }
    case CP_ETCD_OP_PUT:
        json_object_set_new(o, "request_put",
                            put_json(op->key, op->key_len, op->value, op->value_len, op->lease));
        break;
    case CP_ETCD_OP_DELETE:
        json_object_set_new(o, "request_delete_range",
                            delete_json(op->key, op->key_len, op->range_end, op->range_end_len));
        break;
    }
    return o;
}

static json_t *ops_json(const cp_etcd_op *ops, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, op_json(&ops[i]));
    return a;
}

/* One ResponseOp: {"response_range": {...}} or response_put or response_delete_range. */
static int response_op_parse(const json_t *o, cp_etcd_result *r)
{
    static const struct {
        const char *name;
        cp_etcd_op_type type;
    } kinds[] = {{"response_range", CP_ETCD_OP_RANGE},
                 {"response_put", CP_ETCD_OP_PUT},
                 {"response_delete_range", CP_ETCD_OP_DELETE}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const json_t *v = json_object_get(o, kinds[i].name);
        if (v != NULL)
            return result_parse(v, kinds[i].type, r);
    }
    memset(r, 0, sizeof *r);
    return NANO_ESYNTAX;
}

int cp_etcd_txn(cp_etcd *e, const cp_etcd_txn_req *txn, cp_etcd_txn_result **out, nano_error *err)
{
    json_t *cmps = json_array();
    for (size_t i = 0; i < txn->n_cmps; i++)
        json_array_append_new(cmps, cmp_json(&txn->cmps[i]));
    json_t *body = json_pack("{s:o, s:o, s:o}", "compare", cmps, "success",
                             ops_json(txn->success, txn->n_success), "failure",
                             ops_json(txn->failure, txn->n_failure));
    json_t *j = NULL;
    bool is_write = false;
    for (size_t i = 0; i < txn->n_success; i++)
        is_write |= txn->success[i].type != CP_ETCD_OP_RANGE;
    for (size_t i = 0; i < txn->n_failure; i++)
        is_write |= txn->failure[i].type != CP_ETCD_OP_RANGE;
    int rc = request(e, "/v3/kv/txn", body, is_write, &j, err);
    if (rc != 0)
        return rc;
    cp_etcd_txn_result *r = nano_xcalloc(1, sizeof *r);
    r->succeeded = json_is_true(json_object_get(j, "succeeded"));
    rc = header_revision(j, &r->revision);
    const json_t *resps = json_object_get(j, "responses");
    if (rc == 0 && resps != NULL && !json_is_array(resps))
        rc = NANO_ESYNTAX;
    size_t n = json_array_size(resps);
    r->responses = nano_xcalloc(n + 1, sizeof *r->responses);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = response_op_parse(json_array_get(resps, i), &r->responses[i]);
        r->n_responses++; /* counted even when partly parsed: freed whole below */
    }
    json_decref(j);
    if (rc != 0) {
        cp_etcd_txn_result_free(r);
        return bad_response("/v3/kv/txn", err);
    }
    *out = r;
    return 0;
}

/* --- leases ------------------------------------------------------------------------------- */

int cp_etcd_lease_grant(cp_etcd *e, int64_t ttl_s, int64_t *id_out, int64_t *ttl_out,
                        nano_error *err)
{
    json_t *body = json_pack("{s:I}", "TTL", (json_int_t)ttl_s);
    json_t *j = NULL;
    int rc = request(e, "/v3/lease/grant", body, true, &j, err);
    if (rc != 0)
        return rc;
    int64_t id = 0, ttl = 0;
    const char *lease_err = json_string_value(json_object_get(j, "error"));
    if (lease_err != NULL && lease_err[0] != '\0')
        rc = nano_error_set(err, NANO_EIO, "etcd_error", "etcd: lease grant: %s", lease_err);
    else if (cp_etcd__int64(j, "ID", &id) != 0 || cp_etcd__int64(j, "TTL", &ttl) != 0 || id == 0)
        rc = bad_response("/v3/lease/grant", err);
    json_decref(j);
    if (rc != 0)
        return rc;
    *id_out = id;
    if (ttl_out != NULL)
        *ttl_out = ttl;
    return 0;
}

int cp_etcd_lease_keepalive(cp_etcd *e, int64_t id, int64_t *ttl_out, nano_error *err)
{
    json_t *body = json_pack("{s:I}", "ID", (json_int_t)id);
    json_t *j = NULL;
    int rc = request(e, "/v3/lease/keepalive", body, false, &j, err);
    if (rc != 0)
        return rc;
    int64_t ttl = 0;
    if (cp_etcd__int64(j, "TTL", &ttl) != 0)
        rc = bad_response("/v3/lease/keepalive", err);
    else if (ttl <= 0) /* etcd answers an expired or unknown lease with TTL 0 (left out) */
        rc = nano_error_set(err, NANO_ENOTFOUND, "etcd_lease_not_found",
                            "etcd: lease %lld has expired or does not exist", (long long)id);
    json_decref(j);
    if (rc == 0 && ttl_out != NULL)
        *ttl_out = ttl;
    return rc;
}

int cp_etcd_lease_revoke(cp_etcd *e, int64_t id, nano_error *err)
{
    json_t *body = json_pack("{s:I}", "ID", (json_int_t)id);
    json_t *j = NULL;
    int rc = request(e, "/v3/lease/revoke", body, true, &j, err);
    json_decref(j);
    return rc;
}
