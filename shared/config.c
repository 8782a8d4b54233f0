/* config.c: config snapshots: building and validating them, the routing table built at seal,
 * refcounting, and the comparisons a source uses to keep isolates across snapshots. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config_int.h"
#include "dotenv.h"
#include "file.h"
#include "imports.h"
#include "sha256.h"

#define KIB ((uint64_t)1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/* --- limits --------------------------------------------------------------------------------- */

/* clang-format off */
#define LIMIT(key, kind, field, min, max)                                                      \
    {key, NANO_LIMIT_##kind, offsetof(nano_limits, field),                                   \
     sizeof(((nano_limits *)0)->field) == sizeof(uint32_t), min, max}
/* clang-format on */

/* The bounds are what a sane app could want, not what the machine could bear: they exist to
 * catch unit mistakes (a memory_mb of 128000, a drain_timeout in milliseconds) at load time. */
const nano_limit_desc nano_config__limits[] = {
    LIMIT("cpu_ms", COUNT, cpu_ms, 1, 60000),
    LIMIT("memory_mb", COUNT, memory_mb, 16, 8192),
    LIMIT("wall_time", DURATION, wall_ms, 1, 3600 * 1000),
    LIMIT("drain_timeout", DURATION, drain_timeout_ms, 1, 300 * 1000), /* --drain-timeout's cap */
    LIMIT("max_concurrent", COUNT, max_concurrent, 1, 10000),
    LIMIT("max_queued", COUNT, max_queued, 1, 100000),
    LIMIT("max_head", SIZE, max_head, KIB, MIB),
    LIMIT("max_body", SIZE, max_body, 1, 64 * GIB),
    LIMIT("subrequests", COUNT, subrequests, 1, 10000),
};
const size_t nano_config__n_limits = sizeof nano_config__limits / sizeof nano_config__limits[0];

nano_limits nano_limits_defaults(void)
{
    return (nano_limits){
        .cpu_ms = 50,
        .memory_mb = 128,
        .wall_ms = 30 * 1000,
        .drain_timeout_ms = 30 * 1000,
        .max_concurrent = 64,
        .max_queued = 256,
        .max_head = 64 * KIB,
        .max_body = 100 * MIB,
        .subrequests = 50,
    };
}

uint64_t nano_config__limit_get(const nano_limits *l, const nano_limit_desc *d)
{
    const char *field = (const char *)l + d->offset;
    if (d->is_u32) {
        uint32_t v;
        memcpy(&v, field, sizeof v);
        return v;
    }
    uint64_t v;
    memcpy(&v, field, sizeof v);
    return v;
}

void nano_config__limit_put(nano_limits *l, const nano_limit_desc *d, uint64_t v)
{
    char *field = (char *)l + d->offset;
    if (d->is_u32) {
        uint32_t v32 = (uint32_t)v; /* callers check against d->max, which fits */
        memcpy(field, &v32, sizeof v32);
    } else {
        memcpy(field, &v, sizeof v);
    }
}

/* Writes v in the unit an operator would write it in: "300 s", "1500 ms", "64 KiB". */
static void format_limit(const nano_limit_desc *d, uint64_t v, char *out, size_t cap)
{
    if (d->kind == NANO_LIMIT_DURATION && v != 0 && v % 1000 == 0)
        snprintf(out, cap, "%" PRIu64 " s", v / 1000);
    else if (d->kind == NANO_LIMIT_DURATION)
        snprintf(out, cap, "%" PRIu64 " ms", v);
    else if (d->kind == NANO_LIMIT_SIZE && v != 0 && v % GIB == 0)
        snprintf(out, cap, "%" PRIu64 " GiB", v / GIB);
    else if (d->kind == NANO_LIMIT_SIZE && v != 0 && v % MIB == 0)
        snprintf(out, cap, "%" PRIu64 " MiB", v / MIB);
    else if (d->kind == NANO_LIMIT_SIZE && v != 0 && v % KIB == 0)
        snprintf(out, cap, "%" PRIu64 " KiB", v / KIB);
    else if (d->kind == NANO_LIMIT_SIZE)
        snprintf(out, cap, "%" PRIu64 " bytes", v);
    else
        snprintf(out, cap, "%" PRIu64, v);
}

int nano_config__limit_range_error(const nano_limit_desc *d, uint64_t v, const char *where,
                                   nano_error *err)
{
    char val[32], lo[32], hi[32];
    format_limit(d, v, val, sizeof val);
    format_limit(d, d->min, lo, sizeof lo);
    format_limit(d, d->max, hi, sizeof hi);
    return nano_error_set(err, NANO_ERANGE, "limit_out_of_range",
                          "%s%s: %s is out of range (%s .. %s)", where, d->key, val, lo, hi);
}

static int check_limits(const nano_limits *l, const char *where, nano_error *err)
{
    for (size_t i = 0; i < nano_config__n_limits; i++) {
        const nano_limit_desc *d = &nano_config__limits[i];
        uint64_t v = nano_config__limit_get(l, d);
        if (v < d->min || v > d->max)
            return nano_config__limit_range_error(d, v, where, err);
    }
    return 0;
}

int nano_limits_check(const nano_limits *l, nano_error *err)
{
    return check_limits(l, "", err);
}

bool nano_limits_equal(const nano_limits *a, const nano_limits *b)
{
    /* Field by field: memcmp would also compare the padding after the uint32_t fields. */
    for (size_t i = 0; i < nano_config__n_limits; i++)
        if (nano_config__limit_get(a, &nano_config__limits[i]) !=
            nano_config__limit_get(b, &nano_config__limits[i]))
            return false;
    return true;
}

/* --- syntax --------------------------------------------------------------------------------- */

char *nano_config__printable(const char *s, char *out, size_t cap, size_t max_chars)
{
    size_t n = 0;
    for (; s != NULL && s[n] != '\0' && n < max_chars && n + 1 < cap; n++) {
        unsigned char c = (unsigned char)s[n];
        out[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[n] = '\0';
    return out;
}

/* Locale-independent on purpose: tolower() under a Turkish locale maps 'I' elsewhere. */
static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool nano_app_name_valid(const char *name)
{
    if (name == NULL || !is_lower_alnum(name[0]))
        return false;
    for (size_t n = 1; name[n] != '\0'; n++)
        if (n >= 63 || (!is_lower_alnum(name[n]) && name[n] != '-'))
            return false;
    return true;
}

bool nano_hostname_valid(const char *host)
{
    if (host == NULL)
        return false;
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '*' && host[1] == '.') {
        host += 2;
        len -= 2;
    }
    if (len > 0 && host[len - 1] == '.') /* the DNS root: "example.com." is example.com */
        len--;
    if (len == 0 || len > 253) /* RFC 1035 §2.3.4 */
        return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || host[i] == '.') {
            /* RFC 1123 §2.1: labels of 1..63 letters, digits and hyphens, no hyphen at an end */
            if (label == 0 || label > 63 || host[i - 1] == '-' || host[i - label] == '-')
                return false;
            label = 0;
        } else if (is_lower_alnum(ascii_lower(host[i])) || host[i] == '-') {
            label++;
        } else {
            return false;
        }
    }
    return true;
}

bool nano_path_prefix_valid(const char *prefix)
{
    if (prefix == NULL || prefix[0] != '/')
        return false;
    size_t len = strlen(prefix);
    if (len < 2 || len > 1024)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)prefix[i];
        /* Printable ASCII only: clients send paths percent-encoded, so a raw UTF-8 or space
         * byte in a prefix could never match; '?' and '#' would end the path. */
        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#')
            return false;
        if (c == '/' && (prefix[i + 1] == '/' || prefix[i + 1] == '\0'))
            return false;
    }
    return true;
}

/* The form hostnames are stored and compared in: lowercase, no trailing '.'. out holds at
 * least 258 bytes ("*." + 253 + "." + NUL, the longest valid input). */
static void normalize_host(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; in[n] != '\0' && n + 1 < cap; n++)
        out[n] = ascii_lower(in[n]);
    if (n > 0 && out[n - 1] == '.')
        n--;
    out[n] = '\0';
}

char *nano_hostname_normalize(const char *host)
{
    char *out = nano_xstrdup(host);
    normalize_host(host, out, strlen(host) + 1);
    return out;
}

/* --- the snapshot --------------------------------------------------------------------------- */

/* One (hostname, path_prefix) -> app entry of the routing table. */
typedef struct route {
    const char *prefix; /* points into the app; NULL when the app has no prefix */
    size_t prefix_len;
    size_t app;
} route;

/* A hostname with its routes: cfg->routes[first .. first + n), longest prefix first. */
typedef struct host_routes {
    const char *name; /* exact "api.example.com", or a wildcard's suffix ".example.com" */
    size_t len;
    size_t first, n;
} host_routes;

/* A claimed name or (hostname, prefix), while building: makes conflict checks O(1) per add,
 * so a control plane snapshot of thousands of apps does not cost a quadratic scan. */
typedef struct claim {
    char *key; /* "N" name, or "R" host "\x01" prefix; NULL for an empty slot */
    size_t app;
} claim;

typedef struct named {
    const char *name; /* the app's */
    size_t app;
} named;

struct nano_config {
    atomic_size_t refs;
    uint64_t version;
    bool is_sealed;
    nano_app_config *apps;
    size_t n_apps, cap_apps;
    long default_app; /* -1: none */
    claim *claims;    /* building only: freed at seal */
    size_t n_claims, cap_claims;
    /* Built at seal, read-only after: */
    route *routes;
    size_t n_routes;
    host_routes *exact, *wild; /* each sorted by name (bytewise), for binary search */
    size_t n_exact, n_wild;
    named *by_name; /* sorted by name, for nano_config_find */
};

nano_config *nano_config_new(uint64_t version)
{
    nano_config *cfg = nano_xcalloc(1, sizeof *cfg);
    atomic_init(&cfg->refs, 1);
    cfg->version = version;
    cfg->default_app = -1;
    return cfg;
}

void nano_app_config_init(nano_app_config *app)
{
    memset(app, 0, sizeof *app);
    nano_app_spec_init(&app->spec);
    nano_env_init(&app->env);
}

static void free_sources(nano_module_source *sources, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        nano_free(sources[i].path);
        nano_free(sources[i].code);
    }
    nano_free(sources);
}

void nano_app_config_fini(nano_app_config *app)
{
    if (app == NULL)
        return;
    nano_app_spec_fini(&app->spec);
    nano_free(app->main_path);
    nano_free(app->code);
    for (size_t i = 0; i < app->n_code_files; i++)
        nano_free(app->code_files[i]);
    nano_free(app->code_files);
    free_sources(app->imports, app->n_imports);
    nano_env_fini(&app->env);
    memset(app, 0, sizeof *app);
}

static void claims_free(nano_config *cfg)
{
    for (size_t i = 0; i < cfg->cap_claims; i++)
        nano_free(cfg->claims[i].key);
    nano_free(cfg->claims);
    cfg->claims = NULL;
    cfg->n_claims = cfg->cap_claims = 0;
}

static void config_free(nano_config *cfg)
{
    for (size_t i = 0; i < cfg->n_apps; i++)
        nano_app_config_fini(&cfg->apps[i]);
    nano_free(cfg->apps);
    claims_free(cfg);
    nano_free(cfg->routes);
    nano_free(cfg->exact);
    nano_free(cfg->wild);
    nano_free(cfg->by_name);
    nano_free(cfg);
}

nano_config *nano_config_ref(nano_config *cfg)
{
    /* Relaxed: taking a reference needs a reference already held, which orders it. */
    if (cfg != NULL)
        atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

void nano_config_unref(nano_config *cfg)
{
    if (cfg == NULL)
        return;
    /* Release on every drop and acquire before the free, so that the freeing thread sees all
     * that other threads did with the snapshot (the pattern of std::shared_ptr, Boost
     * atomic docs "reference counting"). */
    if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_release) == 1) {
        atomic_thread_fence(memory_order_acquire);
        config_free(cfg);
    }
}

uint64_t nano_config_version(const nano_config *cfg)
{
    return cfg->version;
}

size_t nano_config_n_apps(const nano_config *cfg)
{
    return cfg->n_apps;
}

const nano_app_config *nano_config_app(const nano_config *cfg, size_t index)
{
    return index < cfg->n_apps ? &cfg->apps[index] : NULL;
}

const nano_app_config *nano_config_find(const nano_config *cfg, const char *name, size_t *index_out)
{
    size_t found = SIZE_MAX;
    if (cfg->is_sealed) {
        size_t lo = 0, hi = cfg->n_apps;
        while (lo < hi && found == SIZE_MAX) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(cfg->by_name[mid].name, name);
            if (c == 0)
                found = cfg->by_name[mid].app;
            else if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    } else {
        for (size_t i = 0; i < cfg->n_apps && found == SIZE_MAX; i++)
            if (strcmp(cfg->apps[i].spec.name, name) == 0)
                found = i;
    }
    if (found == SIZE_MAX)
        return NULL;
    if (index_out != NULL)
        *index_out = found;
    return &cfg->apps[found];
}

/* --- claims (building only) ---------------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* The slot holding key, or the empty slot where it would go (open addressing, linear probe;
 * the table is at most half full, so a probe always ends). */
static claim *claims_slot(const nano_config *cfg, const char *key)
{
    size_t mask = cfg->cap_claims - 1;
    for (size_t i = (size_t)hash_str(key) & mask;; i = (i + 1) & mask)
        if (cfg->claims[i].key == NULL || strcmp(cfg->claims[i].key, key) == 0)
            return &cfg->claims[i];
}

static const claim *claims_get(const nano_config *cfg, const char *key)
{
    if (cfg->cap_claims == 0)
        return NULL;
    const claim *c = claims_slot(cfg, key);
    return c->key != NULL ? c : NULL;
}

/* Takes key. The caller has checked that it is not claimed yet. */
static void claims_put(nano_config *cfg, char *key, size_t app)
{
    if (2 * (cfg->n_claims + 1) > cfg->cap_claims) {
        claim *old = cfg->claims;
        size_t old_cap = cfg->cap_claims;
        cfg->cap_claims = old_cap ? old_cap * 2 : 64;
        cfg->claims = nano_xcalloc(cfg->cap_claims, sizeof *cfg->claims);
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].key != NULL)
                *claims_slot(cfg, old[i].key) = old[i];
        nano_free(old);
    }
    claim *c = claims_slot(cfg, key);
    c->key = key;
    c->app = app;
    cfg->n_claims++;
}

static char *name_key(const char *name)
{
    size_t n = strlen(name);
    char *key = nano_xmalloc(n + 2);
    key[0] = 'N';
    memcpy(key + 1, name, n + 1);
    return key;
}

/* '\x01' separates: it cannot occur in a valid hostname or path prefix. */
static char *route_key(const char *host, const char *prefix)
{
    char norm[260];
    normalize_host(host, norm, sizeof norm);
    nano_buf b = NANO_BUF_INIT;
    nano_buf_appendf(&b, "R%s\x01%s", norm, prefix ? prefix : "");
    nano_buf_cstr(&b);
    return b.data;
}

/* --- adding an app ------------------------------------------------------------------------- */

/* The app on its own: syntax of its names and its limits. */
static int check_app_alone(const nano_app_config *app, nano_error *err)
{
    char shown[80];
    if (!nano_app_name_valid(app->spec.name))
        return nano_error_set(err, NANO_EINVAL, "app_name_invalid",
                              "app name \"%s\" is invalid: use 1 to 63 characters of a-z, 0-9 "
                              "and '-', starting with a letter or digit",
                              nano_config__printable(app->spec.name, shown, sizeof shown, 64));
    for (size_t i = 0; i < app->spec.n_hostnames; i++)
        if (!nano_hostname_valid(app->spec.hostnames[i]))
            return nano_error_set(
                err, NANO_EINVAL, "hostname_invalid",
                "app %s: invalid hostname \"%s\": use labels of letters, digits and '-' "
                "separated by '.', optionally after \"*.\" for a wildcard",
                app->spec.name,
                nano_config__printable(app->spec.hostnames[i], shown, sizeof shown, 64));
    if (app->spec.path_prefix != NULL && !nano_path_prefix_valid(app->spec.path_prefix))
        return nano_error_set(
            err, NANO_EINVAL, "path_prefix_invalid",
            "app %s: invalid path_prefix \"%s\": use \"/seg\" or \"/seg/seg\" (printable "
            "ASCII, no trailing '/', no empty segment, no '?' or '#')",
            app->spec.name, nano_config__printable(app->spec.path_prefix, shown, sizeof shown, 64));
    for (size_t i = 0; i < app->spec.n_required_env; i++) {
        const char *n = app->spec.required_env[i];
        if (n == NULL || !nano_env_name_valid(n, strlen(n)))
            return nano_error_set(err, NANO_EINVAL, "env_name_invalid",
                                  "app %s: required_env name \"%s\" is invalid: use letters, "
                                  "digits and '_', not starting with a digit",
                                  app->spec.name,
                                  nano_config__printable(n, shown, sizeof shown, 64));
    }
    char where[96];
    snprintf(where, sizeof where, "app %s: limits.", app->spec.name);
    return check_limits(&app->spec.limits, where, err);
}

static int route_conflict(const nano_config *cfg, const nano_app_config *app, size_t h,
                          size_t other, nano_error *err)
{
    const char *owner = other == cfg->n_apps ? NULL : cfg->apps[other].spec.name;
    char norm[260];
    normalize_host(app->spec.hostnames[h], norm, sizeof norm);
    const char *pre = app->spec.path_prefix ? " with path_prefix " : " (no path_prefix)";
    const char *prefix = app->spec.path_prefix ? app->spec.path_prefix : "";
    if (owner == NULL)
        return nano_error_set(err, NANO_EINVAL, "route_conflict",
                              "app %s: hostname %s%s%s is listed twice", app->spec.name, norm, pre,
                              prefix);
    return nano_error_set(err, NANO_EINVAL, "route_conflict",
                          "app %s: hostname %s%s%s is already claimed by app %s", app->spec.name,
                          norm, pre, prefix, owner);
}

/* The app against those already added. On success *keys holds its claim keys (owned). */
static int check_app_conflicts(const nano_config *cfg, const nano_app_config *app, char ***keys,
                               nano_error *err)
{
    char *nk = name_key(app->spec.name);
    bool taken = claims_get(cfg, nk) != NULL;
    nano_free(nk);
    if (taken)
        return nano_error_set(err, NANO_EINVAL, "app_name_duplicate",
                              "app %s: another app already has this name", app->spec.name);
    if (app->spec.is_default && cfg->default_app >= 0)
        return nano_error_set(err, NANO_EINVAL, "default_app_duplicate",
                              "app %s: app %s is already the default app; only one may be",
                              app->spec.name, cfg->apps[cfg->default_app].spec.name);
    char **k = nano_xcalloc(app->spec.n_hostnames + 1, sizeof *k);
    int rc = 0;
    for (size_t h = 0; h < app->spec.n_hostnames && rc == 0; h++) {
        k[h] = route_key(app->spec.hostnames[h], app->spec.path_prefix);
        const claim *c = claims_get(cfg, k[h]);
        if (c != NULL)
            rc = route_conflict(cfg, app, h, c->app, err);
        for (size_t j = 0; j < h && rc == 0; j++) /* the app's own list: "A.com" and "a.com" */
            if (strcmp(k[j], k[h]) == 0)
                rc = route_conflict(cfg, app, h, cfg->n_apps, err);
    }
    if (rc != 0) {
        for (size_t h = 0; h < app->spec.n_hostnames; h++)
            nano_free(k[h]);
        nano_free(k);
        return rc;
    }
    *keys = k;
    return 0;
}

int nano_config_add_app(nano_config *cfg, nano_app_config *app, nano_error *err)
{
    if (cfg->is_sealed)
        return nano_error_set(err, NANO_ESTATE, "config_sealed",
                              "cannot add app %s: the snapshot is sealed",
                              app->spec.name ? app->spec.name : "?");
    char **keys = NULL;
    int rc = check_app_alone(app, err);
    if (rc == 0)
        rc = check_app_conflicts(cfg, app, &keys, err);
    if (rc != 0)
        return rc;

    size_t index = cfg->n_apps;
    claims_put(cfg, name_key(app->spec.name), index);
    for (size_t h = 0; h < app->spec.n_hostnames; h++) {
        claims_put(cfg, keys[h], index);
        /* In place: a normalized name is never longer than the original. */
        normalize_host(app->spec.hostnames[h], app->spec.hostnames[h],
                       strlen(app->spec.hostnames[h]) + 1);
    }
    nano_free(keys);
    if (app->spec.is_default)
        cfg->default_app = (long)index;
    if (cfg->n_apps == cfg->cap_apps) {
        cfg->cap_apps = cfg->cap_apps ? cfg->cap_apps * 2 : 8;
        cfg->apps = nano_xrealloc(cfg->apps, cfg->cap_apps * sizeof *cfg->apps);
    }
    cfg->apps[cfg->n_apps++] = *app;
    memset(app, 0, sizeof *app);
    return 0;
}

int nano_app_config_check_required_env(const nano_app_config *app, nano_error *err)
{
    nano_buf missing = NANO_BUF_INIT;
    size_t n = 0;
    for (size_t i = 0; i < app->spec.n_required_env; i++) {
        if (nano_env_find(&app->env, app->spec.required_env[i]) != NULL)
            continue;
        if (n++ > 0)
            nano_buf_append_str(&missing, ", ");
        nano_buf_append_str(&missing, app->spec.required_env[i]);
    }
    int rc = 0;
    if (n > 0)
        rc = nano_error_set(err, NANO_EINVAL, "required_env_missing",
                            "app %s: required env missing: %s",
                            app->spec.name ? app->spec.name : "?", nano_buf_cstr(&missing));
    nano_buf_fini(&missing);
    return rc;
}

/* --- sealing: the routing table ------------------------------------------------------------ */

typedef struct route_src {
    const char *host; /* search name: exact host, or the wildcard's ".suffix" */
    bool is_wild;
    route r;
} route_src;

static int cmp_route_src(const void *pa, const void *pb)
{
    const route_src *a = pa, *b = pb;
    if (a->is_wild != b->is_wild)
        return a->is_wild ? 1 : -1;
    int c = strcmp(a->host, b->host);
    if (c != 0)
        return c;
    /* Longest prefix first, so that routing takes the first match. Two routes of one host
     * never have equal prefixes (claims), so equal lengths order by app for determinism. */
    if (a->r.prefix_len != b->r.prefix_len)
        return a->r.prefix_len > b->r.prefix_len ? -1 : 1;
    return a->r.app < b->r.app ? -1 : (a->r.app > b->r.app);
}

static route_src *collect_routes(const nano_config *cfg, size_t *n_out)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_apps; i++)
        n += cfg->apps[i].spec.n_hostnames;
    route_src *src = nano_xcalloc(n + 1, sizeof *src);
    size_t k = 0;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        const nano_app_config *app = &cfg->apps[i];
        for (size_t h = 0; h < app->spec.n_hostnames; h++, k++) {
            const char *host = app->spec.hostnames[h];
            src[k].is_wild = host[0] == '*';
            src[k].host = src[k].is_wild ? host + 1 : host;
            src[k].r.prefix = app->spec.path_prefix;
            src[k].r.prefix_len = app->spec.path_prefix ? strlen(app->spec.path_prefix) : 0;
            src[k].r.app = i;
        }
    }
    qsort(src, n, sizeof *src, cmp_route_src);
    *n_out = n;
    return src;
}

/* Groups the sorted routes by hostname into cfg->exact and cfg->wild. */
static void build_routes(nano_config *cfg)
{
    size_t n;
    route_src *src = collect_routes(cfg, &n);
    cfg->routes = nano_xcalloc(n + 1, sizeof *cfg->routes);
    cfg->exact = nano_xcalloc(n + 1, sizeof *cfg->exact);
    cfg->wild = nano_xcalloc(n + 1, sizeof *cfg->wild);
    for (size_t i = 0; i < n; i++) {
        cfg->routes[i] = src[i].r;
        bool same = i > 0 && src[i].is_wild == src[i - 1].is_wild &&
                    strcmp(src[i].host, src[i - 1].host) == 0;
        host_routes *list = src[i].is_wild ? cfg->wild : cfg->exact;
        size_t *count = src[i].is_wild ? &cfg->n_wild : &cfg->n_exact;
        if (same) {
            list[*count - 1].n++;
        } else {
            list[*count] = (host_routes){src[i].host, strlen(src[i].host), i, 1};
            (*count)++;
        }
    }
    cfg->n_routes = n;
    nano_free(src);
}

static int cmp_by_name(const void *pa, const void *pb)
{
    return strcmp(((const named *)pa)->name, ((const named *)pb)->name);
}

int nano_config_seal(nano_config *cfg, nano_error *err)
{
    if (cfg->is_sealed)
        return nano_error_set(err, NANO_ESTATE, "config_sealed", "the snapshot is already sealed");
    for (size_t i = 0; i < cfg->n_apps; i++) {
        int rc = nano_app_config_check_required_env(&cfg->apps[i], err);
        if (rc != 0)
            return rc;
    }
    build_routes(cfg);
    cfg->by_name = nano_xcalloc(cfg->n_apps + 1, sizeof *cfg->by_name);
    for (size_t i = 0; i < cfg->n_apps; i++)
        cfg->by_name[i] = (named){cfg->apps[i].spec.name, i};
    qsort(cfg->by_name, cfg->n_apps, sizeof *cfg->by_name, cmp_by_name);
    claims_free(cfg); /* conflicts cannot arise any more */
    cfg->is_sealed = true;
    return 0;
}

/* --- keeping an app's previous code --------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s != NULL ? nano_xstrdup(s) : NULL;
}

static char **dup_strings(char *const *list, size_t n)
{
    char **out = nano_xcalloc(n ? n : 1, sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = nano_xstrdup(list[i]);
    return out;
}

/* A deep copy of src's spec (but node_compat, which goes with the code) and env; code from
 * code_of (src or the old app). */
static void app_copy(nano_app_config *dst, const nano_app_config *src,
                     const nano_app_config *code_of)
{
    nano_app_config_init(dst);
    nano_app_spec_fini(&dst->spec);
    nano_app_spec_copy(&dst->spec, &src->spec);
    dst->main_path = dup_or_null(code_of->main_path);
    if (code_of->code != NULL) {
        dst->code = nano_xmalloc(code_of->code_len + 1);
        memcpy(dst->code, code_of->code, code_of->code_len + 1);
    }
    dst->code_len = code_of->code_len;
    memcpy(dst->code_sha256, code_of->code_sha256, sizeof dst->code_sha256);
    memcpy(dst->imports_sha256, code_of->imports_sha256, sizeof dst->imports_sha256);
    dst->code_files =
        code_of->n_code_files ? dup_strings(code_of->code_files, code_of->n_code_files) : NULL;
    dst->n_code_files = code_of->n_code_files;
    if (code_of->n_imports > 0) {
        dst->imports = nano_xcalloc(code_of->n_imports, sizeof *dst->imports);
        for (size_t i = 0; i < code_of->n_imports; i++) {
            const nano_module_source *m = &code_of->imports[i];
            dst->imports[i].path = nano_xstrdup(m->path);
            dst->imports[i].code = nano_xmalloc(m->len + 1);
            memcpy(dst->imports[i].code, m->code, m->len + 1);
            dst->imports[i].len = m->len;
        }
    }
    dst->n_imports = code_of->n_imports;
    dst->spec.node_compat = code_of->spec.node_compat;
    if (src->env.n_entries > 0) {
        dst->env.entries = nano_xcalloc(src->env.n_entries, sizeof *dst->env.entries);
        dst->env.cap = dst->env.n_entries = src->env.n_entries;
    }
    for (size_t i = 0; i < src->env.n_entries; i++) {
        const nano_env_entry *e = &src->env.entries[i];
        nano_env_entry *d = &dst->env.entries[i];
        *d = *e;
        d->name = nano_xstrdup(e->name);
        d->value = nano_xmalloc(e->value_len + 1);
        memcpy(d->value, e->value, e->value_len);
        d->value[e->value_len] = '\0';
    }
}

int nano_config_keep_code(const nano_config *cfg, const nano_config *old, const char *const *names,
                          size_t n_names, nano_config **out, nano_error *err)
{
    nano_config *copy = nano_config_new(cfg->version);
    int rc = 0;
    for (size_t i = 0; i < cfg->n_apps && rc == 0; i++) {
        const nano_app_config *src = &cfg->apps[i];
        const nano_app_config *code_of = src;
        for (size_t k = 0; k < n_names; k++) {
            const nano_app_config *prev = old != NULL ? nano_config_find(old, names[k], NULL)
                                                      : NULL;
            if (prev != NULL && strcmp(names[k], src->spec.name) == 0)
                code_of = prev;
        }
        nano_app_config app;
        app_copy(&app, src, code_of);
        rc = nano_config_add_app(copy, &app, err);
        nano_app_config_fini(&app); /* a no-op once added */
    }
    if (rc == 0)
        rc = nano_config_seal(copy, err);
    if (rc != 0) {
        nano_config_unref(copy);
        return rc;
    }
    *out = copy;
    return 0;
}

/* --- routing (per request: no allocation) -------------------------------------------------- */

/* The part of a Host header value that names the host: without ":port" and one trailing
 * '.'. An IPv6 literal keeps its brackets; no config hostname can match it, so it goes to
 * the default app. */
static size_t host_key_len(const char *host, size_t len)
{
    if (len == 0)
        return 0;
    size_t n = len;
    if (host[0] == '[') {
        const char *close = memchr(host, ']', len);
        if (close != NULL)
            n = (size_t)(close - host) + 1;
    } else {
        const char *colon = memchr(host, ':', len); /* no hostname contains one */
        if (colon != NULL)
            n = (size_t)(colon - host);
    }
    if (n > 0 && host[n - 1] == '.')
        n--;
    return n;
}

/* Bytewise order of the stored (lowercase) name against the request's name as lowercased,
 * the same order strcmp gave the sort at seal. */
static int cmp_host(const char *stored, size_t slen, const char *req, size_t rlen)
{
    size_t n = slen < rlen ? slen : rlen;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)stored[i], b = (unsigned char)ascii_lower(req[i]);
        if (a != b)
            return a < b ? -1 : 1;
    }
    return slen < rlen ? -1 : (slen > rlen);
}

static const host_routes *find_host(const host_routes *list, size_t n, const char *name, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_host(list[mid].name, list[mid].len, name, len);
        if (c == 0)
            return &list[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Whole segments: "/api" matches "/api", "/api/..", "/api?..", not "/apix". */
static bool prefix_matches(const char *prefix, size_t plen, const char *path, size_t path_len)
{
    if (plen == 0)
        return true;
    if (path_len < plen || memcmp(path, prefix, plen) != 0)
        return false;
    return path_len == plen || path[plen] == '/' || path[plen] == '?' || path[plen] == '#';
}

static long match_routes(const nano_config *cfg, const host_routes *hr, const char *path,
                         size_t path_len)
{
    if (hr == NULL)
        return -1;
    for (size_t i = hr->first; i < hr->first + hr->n; i++) {
        const route *r = &cfg->routes[i];
        if (prefix_matches(r->prefix, r->prefix_len, path, path_len))
            return (long)r->app;
    }
    return -1;
}

long nano_config_route(const nano_config *cfg, const char *host, size_t host_len, const char *path,
                       size_t path_len)
{
    if (cfg == NULL || !cfg->is_sealed)
        return -1;
    if (path == NULL)
        path_len = 0;
    size_t len = host == NULL ? 0 : host_key_len(host, host_len);
    long app = -1;
    if (len > 0)
        app = match_routes(cfg, find_host(cfg->exact, cfg->n_exact, host, len), path, path_len);
    /* Wildcards, longest suffix first: for a.b.example.com try ".b.example.com", then
     * ".example.com", then ".com"; "*.example.com" so matches one or more labels. */
    for (size_t i = 1; i < len && app < 0; i++)
        if (host[i] == '.')
            app = match_routes(cfg, find_host(cfg->wild, cfg->n_wild, host + i, len - i), path,
                               path_len);
    if (app < 0 && cfg->default_app >= 0) {
        const char *p = cfg->apps[cfg->default_app].spec.path_prefix;
        if (prefix_matches(p, p ? strlen(p) : 0, path, path_len))
            app = cfg->default_app;
    }
    return app;
}

/* --- comparisons ---------------------------------------------------------------------------- */

bool nano_app_config_same_code(const nano_app_config *a, const nano_app_config *b)
{
    if (strcmp(a->code_sha256, b->code_sha256) != 0 ||
        strcmp(a->imports_sha256, b->imports_sha256) != 0)
        return false;
    if (a->main_path == NULL || b->main_path == NULL)
        return a->main_path == b->main_path;
    return strcmp(a->main_path, b->main_path) == 0;
}

bool nano_env_equal(const nano_env *a, const nano_env *b)
{
    if (a->n_entries != b->n_entries)
        return false;
    /* Names are unique within an env and the counts match, so finding each of a's entries
     * in b proves a bijection. At most 128 entries: the quadratic scan needs no allocation. */
    for (size_t i = 0; i < a->n_entries; i++) {
        const nano_env_entry *x = &a->entries[i];
        const nano_env_entry *y = nano_env_find(b, x->name);
        if (y == NULL || x->value_len != y->value_len || x->is_secret != y->is_secret ||
            x->is_json != y->is_json || memcmp(x->value, y->value, x->value_len) != 0)
            return false;
    }
    return true;
}

/* --- code ----------------------------------------------------------------------------------- */

int nano_app_config_load_code(nano_app_config *app, const char *path, nano_error *err)
{
    char *code = NULL;
    size_t len = 0;
    int rc = nano_read_file(path, NANO_CODE_MAX_BYTES, &code, &len, NULL);
    if (rc == NANO_ETOOBIG)
        return nano_error_set(err, rc, "code_too_large",
                              "module %s is larger than the 32 MiB limit", path);
    if (rc == NANO_EINVAL)
        return nano_error_set(err, rc, "code_unreadable", "module %s is not a regular file", path);
    if (rc != 0)
        return nano_error_set(err, rc, "code_unreadable", "cannot read module %s: %s", path,
                              nano_strerror(rc));
    char *abs = realpath(path, NULL); /* malloc'd by libc: copied so nano_free can own it */
    if (abs == NULL) {
        rc = -errno;
        nano_free(code);
        return nano_error_set(err, rc, "code_unreadable", "cannot read module %s: %s", path,
                              nano_strerror(rc));
    }
    char hex[65];
    nano_sha256_hex(code, len, hex);
    nano_free(app->main_path);
    nano_free(app->code);
    app->main_path = nano_xstrdup(abs);
    free(abs);
    app->code = code;
    app->code_len = len;
    memcpy(app->code_sha256, hex, sizeof hex);
    return 0;
}

/* --- the modules an app imports ---------------------------------------------------------- */

typedef struct str_list {
    char **items;
    size_t n, cap;
} str_list;

static bool list_has(const str_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i], s) == 0)
            return true;
    return false;
}

/* Adds a copy of s unless it is there already. */
static void list_add(str_list *l, const char *s)
{
    if (list_has(l, s))
        return;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->items = nano_xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->n++] = nano_xstrdup(s);
}

static void list_fini(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        nano_free(l->items[i]);
    nano_free(l->items);
    *l = (str_list){0};
}

typedef struct import_walk {
    str_list files;   /* becomes code_files */
    str_list modules; /* resolved paths, in the order found; [0] is the main module */
    const char *dir;  /* the directory of the module being scanned */
} import_walk;

/* Resolves a specifier as dataplane/runtime/modules.cc does: "file://" dropped, absolute as
 * is, otherwise joined to the importer's directory, then realpath. */
static bool on_import(void *ud, const char *spec, size_t len)
{
    import_walk *w = ud;
    if (!nano_import_is_relative(spec, len))
        return true;
    if (w->modules.n >= NANO_IMPORTS_MAX)
        return false;
    if (len >= 7 && memcmp(spec, "file://", 7) == 0) {
        spec += 7;
        len -= 7;
    }
    if (len == 0 || memchr(spec, '\0', len) != NULL || len > 4096)
        return true;
    nano_buf b = NANO_BUF_INIT;
    if (spec[0] != '/') {
        while (len > 2 && spec[0] == '.' && spec[1] == '/') { /* "dir/x.js", not "dir/./x.js" */
            spec += 2;
            len -= 2;
        }
        nano_buf_append_str(&b, w->dir);
        nano_buf_append(&b, "/", 1);
    }
    nano_buf_append(&b, spec, len);
    const char *joined = nano_buf_cstr(&b);
    char *real = realpath(joined, NULL); /* libc's malloc */
    list_add(&w->files, joined);
    if (real != NULL) {
        list_add(&w->files, real);
        list_add(&w->modules, real);
        free(real);
    }
    nano_buf_fini(&b);
    return true;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return nano_xstrdup(".");
    return slash == path ? nano_xstrdup("/") : nano_xstrndup(path, (size_t)(slash - path));
}

int nano_app_config_find_imports(nano_app_config *app, const char *named_main)
{
    import_walk w = {0};
    nano_module_source *sources = NULL;
    size_t n_sources = 0, cap_sources = 0;
    nano_buf hashed = NANO_BUF_INIT; /* "PATH\0SHA256\n" per imported module */
    int rc = 0;
    if (named_main != NULL && named_main[0] != '/') {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) != NULL) {
            nano_buf b = NANO_BUF_INIT;
            nano_buf_appendf(&b, "%s/%s", cwd, named_main);
            list_add(&w.files, nano_buf_cstr(&b));
            nano_buf_fini(&b);
        }
    } else if (named_main != NULL) {
        list_add(&w.files, named_main);
    }
    if (app->main_path != NULL) {
        list_add(&w.files, app->main_path);
        list_add(&w.modules, app->main_path);
    }
    /* Breadth first: modules[] grows while it is walked. */
    for (size_t i = 0; i < w.modules.n && rc == 0; i++) {
        char *code = NULL;
        size_t len = 0;
        if (i == 0) {
            code = app->code;
            len = app->code_len;
        } else {
            int r = nano_read_file(w.modules.items[i], NANO_CODE_MAX_BYTES, &code, &len, NULL);
            if (r == NANO_ENOMEM) {
                rc = r;
                break;
            }
            if (r != 0)
                continue; /* unreadable: the load check says why */
            char hex[65];
            nano_sha256_hex(code, len, hex);
            nano_buf_append_str(&hashed, w.modules.items[i]);
            nano_buf_append(&hashed, "", 1);
            nano_buf_append_str(&hashed, hex);
            nano_buf_append(&hashed, "\n", 1);
        }
        char *dir = dir_of(w.modules.items[i]);
        w.dir = dir;
        if (code != NULL)
            nano_imports_scan(code, len, on_import, &w);
        nano_free(dir);
        if (i > 0) { /* kept: the runtime compiles this very text */
            if (n_sources == cap_sources) {
                cap_sources = cap_sources ? cap_sources * 2 : 8;
                sources = nano_xrealloc(sources, cap_sources * sizeof *sources);
            }
            sources[n_sources++] = (nano_module_source){nano_xstrdup(w.modules.items[i]), code,
                                                        len};
        }
    }
    if (rc == 0) {
        if (hashed.len > 0)
            nano_sha256_hex(hashed.data, hashed.len, app->imports_sha256);
        else
            app->imports_sha256[0] = '\0';
        for (size_t i = 0; i < app->n_code_files; i++)
            nano_free(app->code_files[i]);
        nano_free(app->code_files);
        app->code_files = w.files.items;
        app->n_code_files = w.files.n;
        w.files = (str_list){0};
        free_sources(app->imports, app->n_imports);
        app->imports = sources;
        app->n_imports = n_sources;
        sources = NULL;
        n_sources = 0;
    }
    free_sources(sources, n_sources);
    nano_buf_fini(&hashed);
    list_fini(&w.files);
    list_fini(&w.modules);
    return rc;
}
