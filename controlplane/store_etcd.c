/* store_etcd.c: the etcd store backend (store.h; docs/nanocp.md#the-etcd-store): opening,
 * transactions, apps, deployments and code, env and secrets. Nodes, drains, the logs and
 * tokens are in store_etcd_fleet.c. Every cp_store_* function forwards here when the store is
 * etcd; each answers exactly what the SQLite one does (shapes, order, NANO_ENOTFOUND and
 * NANO_ESTATE in the same cases). Outside cp_store_begin..commit a call runs in a transaction
 * of its own. Keys are "<prefix><kind>/...", values compact JSON (kvtx.h has the commit). */
#include "store_int.h"

#include <openssl/evp.h>

#include "sha256.h"

/* --- plumbing --------------------------------------------------------------------------------- */

const char *cp_estore__key(cp_estore *es, char *buf, const char *fmt, ...)
{
    int n = snprintf(buf, CP_EKEY_MAX, "%s", es->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, CP_EKEY_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

int cp_estore__fail(cp_estore *es, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(es->errmsg, sizeof es->errmsg, fmt, ap);
    va_end(ap);
    return rc == NANO_ERANGE ? NANO_EIO : rc; /* a compacted snapshot: the store failed */
}

static int fail_etcd(cp_estore *es, int rc, const nano_error *e)
{
    return cp_estore__fail(es, rc, "%s", e->message);
}

int cp_estore__get_json(cp_estore *es, const char *key, json_t **out)
{
    char *v = NULL;
    size_t len = 0;
    nano_error e = {0};
    int rc = cp_kvtx_get(&es->tx, key, &v, &len, &e);
    if (rc == NANO_ENOTFOUND)
        return rc;
    if (rc != 0)
        return fail_etcd(es, rc, &e);
    json_t *j = json_loadb(v, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    nano_free(v);
    if (j == NULL)
        return cp_estore__fail(es, NANO_EIO, "%s: not JSON", key);
    *out = j;
    return 0;
}

int cp_estore__get_text(cp_estore *es, const char *key, char **out, size_t *len)
{
    nano_error e = {0};
    int rc = cp_kvtx_get(&es->tx, key, out, len, &e);
    return rc == 0 || rc == NANO_ENOTFOUND ? rc : fail_etcd(es, rc, &e);
}

bool cp_estore__exists(cp_estore *es, const char *key, int *rc)
{
    char *v = NULL;
    size_t len = 0;
    *rc = cp_estore__get_text(es, key, &v, &len);
    nano_free(v);
    if (*rc == NANO_ENOTFOUND)
        *rc = 0;
    return v != NULL;
}

void cp_estore__put_json(cp_estore *es, const char *key, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    cp_kvtx_put(&es->tx, key, text, strlen(text));
    free(text);
}

int cp_estore__range_json(cp_estore *es, const char *start, const char *end, int64_t limit,
                          json_t **out)
{
    cp_kvtx_list l = {0};
    nano_error e = {0};
    int rc = cp_kvtx_range(&es->tx, start, end, limit, &l, &e);
    if (rc != 0)
        return fail_etcd(es, rc, &e);
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        json_t *j = json_loadb(l.items[i].value, l.items[i].value_len,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (j == NULL)
            rc = cp_estore__fail(es, NANO_EIO, "%s: not JSON", l.items[i].key);
        else
            json_array_append_new(arr, j);
    }
    cp_kvtx_list_fini(&l);
    if (rc != 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

int64_t cp_estore__next_id(cp_estore *es, const char *counter)
{
    json_t *next = json_object_get(es->tx.meta, "next");
    if (!json_is_object(next)) {
        next = json_object();
        json_object_set_new(es->tx.meta, "next", next);
    }
    int64_t id = json_integer_value(json_object_get(next, counter)) + 1;
    json_object_set_new(next, counter, json_integer(id));
    es->tx.meta_dirty = true;
    return id;
}

int cp_estore__enter(cp_estore *es, bool *implicit)
{
    *implicit = !es->tx.active;
    return *implicit ? cp_estore_begin(es) : 0;
}

int cp_estore__leave(cp_estore *es, bool implicit, int rc)
{
    if (!implicit)
        return rc;
    if (rc == 0)
        return cp_estore_commit(es);
    cp_estore_rollback(es);
    return rc;
}

int64_t cp_estore__time_ms(const char *rfc3339)
{
    struct tm tm = {0};
    int ms = 0;
    if (rfc3339 == NULL || sscanf(rfc3339, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
                                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* --- transactions ----------------------------------------------------------------------------- */

int cp_estore_begin(cp_estore *es)
{
    if (es->tx.active)
        return cp_estore__fail(es, NANO_EIO, "cannot start a transaction within a transaction");
    nano_error e = {0};
    int rc = cp_kvtx_begin(&es->tx, es->e, es->meta_key, &e);
    if (rc != 0)
        return fail_etcd(es, rc, &e);
    cp_time_now(es->now, sizeof es->now);
    json_decref(es->log_batch);
    es->log_batch = NULL;
    return 0;
}

int cp_estore_commit(cp_estore *es)
{
    if (!es->tx.active)
        return cp_estore__fail(es, NANO_EIO, "cannot commit - no transaction is active");
    nano_error e = {0};
    int rc = cp_kvtx_commit(&es->tx, &e);
    json_decref(es->log_batch);
    es->log_batch = NULL;
    return rc == 0 ? 0 : fail_etcd(es, rc, &e);
}

void cp_estore_rollback(cp_estore *es)
{
    cp_kvtx_fini(&es->tx);
    json_decref(es->log_batch);
    es->log_batch = NULL;
}

/* --- opening ---------------------------------------------------------------------------------- */

static int64_t known_schema(void)
{
    int64_t max = 0;
    for (size_t i = 0; i < cp_migrations_count; i++) {
        long long v = strtoll(cp_migrations[i].name, NULL, 10);
        if (v > max)
            max = v;
    }
    return max;
}

/* With migrate: creates the meta key of a new store, or records this binary's schema version
 * in it (the etcd layout has no other migration yet); refuses a store a newer nanocp wrote. */
static int open_meta(cp_estore *es, const char *url, bool migrate_now, nano_error *err)
{
    int rc = cp_estore_begin(es);
    if (rc != 0)
        return nano_error_set(err, rc, "store_open", "%s: cannot read %s: %s", url, es->meta_key,
                              es->errmsg);
    int64_t known = known_schema();
    int64_t schema = json_integer_value(json_object_get(es->tx.meta, "schema"));
    bool is_new = es->tx.meta_mod == 0;
    if (is_new && !migrate_now)
        rc = nano_error_set(err, NANO_ENOENT, "store_open", "%s: no nanocp store under %s", url,
                            es->prefix);
    else if (schema > known)
        rc = nano_error_set(err, NANO_ESTATE, "store_too_new",
                            "%s: the store has schema version %lld, newer than this nanocp knows "
                            "(up to %lld): run a newer nanocp",
                            url, (long long)schema, (long long)known);
    else if (json_object_get(es->tx.meta, "loading") != NULL)
        rc = nano_error_set(err, NANO_ESTATE, "store_incomplete",
                            "%s: a `nanocp migrate` into %s did not finish (started %s): delete "
                            "the prefix (etcdctl del --prefix %s) and migrate again",
                            url, es->prefix,
                            json_string_value(json_object_get(es->tx.meta, "loading")) ?: "?",
                            es->prefix);
    else if (migrate_now && schema < known) {
        json_object_set_new(es->tx.meta, "schema", json_integer(known));
        if (is_new) {
            json_object_set_new(es->tx.meta, "seq", json_integer(0));
            json_object_set_new(es->tx.meta, "created_at", json_string(es->now));
        }
        es->tx.meta_dirty = true;
        rc = cp_estore_commit(es);
        if (rc == NANO_ECONFLICT) /* another replica did it first: check what it wrote */
            return open_meta(es, url, migrate_now, err);
        if (rc != 0)
            return nano_error_set(err, rc, "store_open", "%s: cannot write %s: %s", url,
                                  es->meta_key, es->errmsg);
    }
    cp_estore_rollback(es);
    return rc;
}

int cp_estore_open(const char *url, const cp_etcd_tls *tls, bool migrate_now, cp_estore **out,
                   nano_error *err)
{
    cp_etcd *e = NULL;
    int rc = cp_etcd_open(url, tls, &e, err);
    if (rc != 0)
        return rc;
    cp_estore *es = nano_xcalloc(1, sizeof *es);
    es->e = e;
    const char *p = cp_etcd_prefix(e);
    es->prefix = nano_xstrdup(p[0] != '\0' ? p : "/nano/");
    nano_buf b = NANO_BUF_INIT;
    nano_buf_appendf(&b, "%smeta/state", es->prefix);
    es->meta_key = nano_xstrdup(nano_buf_cstr(&b));
    nano_buf_fini(&b);
    rc = open_meta(es, url, migrate_now, err);
    if (rc != 0) {
        cp_estore_free(es);
        return rc;
    }
    *out = es;
    return 0;
}

void cp_estore_free(cp_estore *es)
{
    if (es == NULL)
        return;
    cp_estore_rollback(es);
    if (es->lease != 0) { /* hand the fleet's duties over now, not when the lease runs out */
        nano_error err = {0};
        cp_etcd_lease_revoke(es->e, es->lease, &err);
    }
    cp_etcd_free(es->e);
    nano_free(es->prefix);
    nano_free(es->meta_key);
    nano_free(es);
}

int cp_estore_schema_version(cp_estore *es, int64_t *out)
{
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        *out = json_integer_value(json_object_get(es->tx.meta, "schema"));
    return cp_estore__leave(es, imp, rc);
}

/* --- apps ------------------------------------------------------------------------------------- */

/* An app's record holds the API's fields plus active_deployment_id and last_version. */
static json_t *app_view(json_t *rec)
{
    json_t *v = json_deep_copy(rec);
    json_object_del(v, "active_deployment_id");
    json_object_del(v, "last_version");
    return v;
}

/* The name of app id: NANO_ENOTFOUND when there is none. */
int cp_estore__app_name(cp_estore *es, int64_t id, char *name_out)
{
    char k[CP_EKEY_MAX];
    char *v = NULL;
    size_t len = 0;
    int rc = cp_estore__get_text(es, cp_estore__key(es, k, "app_ids/%020lld", (long long)id), &v,
                                 &len);
    if (rc == 0)
        snprintf(name_out, 64, "%s", v);
    nano_free(v);
    return rc;
}

/* The record of app id (returned owned) and its name. */
static int app_by_id(cp_estore *es, int64_t id, json_t **rec, char *name_out)
{
    char k[CP_EKEY_MAX];
    int rc = cp_estore__app_name(es, id, name_out);
    if (rc == 0)
        rc = cp_estore__get_json(es, cp_estore__key(es, k, "apps/%s", name_out), rec);
    return rc;
}

int cp_estore_app_get(cp_estore *es, const char *name, json_t **out)
{
    char k[CP_EKEY_MAX];
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    json_t *rec = NULL;
    if (rc == 0 &&
        (rc = cp_estore__get_json(es, cp_estore__key(es, k, "apps/%s", name), &rec)) == 0) {
        *out = app_view(rec);
        json_decref(rec);
    }
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_app_list(cp_estore *es, json_t **out)
{
    char k[CP_EKEY_MAX];
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    json_t *recs = NULL;
    if (rc == 0 &&
        (rc = cp_estore__range_json(es, cp_estore__key(es, k, "apps/"), NULL, 0, &recs)) == 0) {
        json_t *list = json_array();
        size_t i;
        json_t *r;
        json_array_foreach(recs, i, r) {
            json_array_append_new(list, app_view(r));
        }
        json_decref(recs);
        *out = list;
    }
    return cp_estore__leave(es, imp, rc);
}

/* Claims the spec's hostnames (with its prefix) and the default role for app id, refusing
 * what another app holds (NANO_ESTATE, as SQLite's UNIQUE constraints do). */
static int claims_put(cp_estore *es, int64_t id, const nano_app_spec *spec)
{
    char k[CP_EKEY_MAX];
    int rc = 0;
    for (size_t i = 0; i < spec->n_hostnames && rc == 0; i++) {
        for (size_t j = 0; j < i; j++)
            if (strcmp(spec->hostnames[i], spec->hostnames[j]) == 0)
                return cp_estore__fail(es, NANO_ESTATE, "UNIQUE constraint failed: hostnames");
        cp_estore__key(es, k, "hosts/%s/%s", spec->hostnames[i],
                       spec->path_prefix ? spec->path_prefix : "");
        char *v = NULL;
        size_t len = 0;
        rc = cp_estore__get_text(es, k, &v, &len);
        if (rc == 0 && strtoll(v, NULL, 10) != id)
            rc = cp_estore__fail(es, NANO_ESTATE,
                                 "UNIQUE constraint failed: hostnames.hostname, path_prefix");
        nano_free(v);
        if (rc == NANO_ENOTFOUND)
            rc = 0;
        if (rc == 0) {
            char idtext[24];
            snprintf(idtext, sizeof idtext, "%lld", (long long)id);
            cp_kvtx_put(&es->tx, k, idtext, strlen(idtext));
        }
    }
    char *v = NULL;
    size_t len = 0;
    cp_estore__key(es, k, "default");
    int found = rc == 0 ? cp_estore__get_text(es, k, &v, &len) : rc;
    int64_t owner = found == 0 ? strtoll(v, NULL, 10) : 0;
    nano_free(v);
    if (found != 0 && found != NANO_ENOTFOUND)
        return found;
    if (spec->is_default && found == 0 && owner != id)
        return cp_estore__fail(es, NANO_ESTATE, "UNIQUE constraint failed: apps.is_default");
    char idtext[24];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    if (spec->is_default)
        cp_kvtx_put(&es->tx, k, idtext, strlen(idtext));
    else if (found == 0 && owner == id)
        cp_kvtx_del(&es->tx, k);
    return 0;
}

/* Drops the hostname claims rec (an app record) holds. */
static void claims_drop(cp_estore *es, json_t *rec)
{
    char k[CP_EKEY_MAX];
    json_t *prefix = json_object_get(rec, "path_prefix");
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(rec, "hostnames"), i, h) {
        cp_kvtx_del(&es->tx,
                    cp_estore__key(es, k, "hosts/%s/%s", json_string_value(h),
                                   json_is_string(prefix) ? json_string_value(prefix) : ""));
    }
}

/* rec's spec fields from spec (its JSON form), with updated_at now. */
static void app_set_spec(cp_estore *es, json_t *rec, const nano_app_spec *spec)
{
    json_t *j = nano_app_spec_to_json(spec);
    json_object_update(rec, j);
    json_decref(j);
    json_object_set_new(rec, "updated_at", json_string(es->now));
}

int cp_estore_app_insert(cp_estore *es, const char *name, const nano_app_spec *spec,
                         int64_t *id_out)
{
    char k[CP_EKEY_MAX];
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && cp_estore__exists(es, cp_estore__key(es, k, "apps/%s", name), &rc))
        rc = cp_estore__fail(es, NANO_ESTATE, "UNIQUE constraint failed: apps.name");
    int64_t id = 0;
    if (rc == 0) {
        id = cp_estore__next_id(es, "app");
        rc = claims_put(es, id, spec);
    }
    if (rc == 0) {
        json_t *rec = json_pack("{s:I, s:s}", "id", (json_int_t)id, "name", name);
        app_set_spec(es, rec, spec);
        json_object_set_new(rec, "state", json_string("active"));
        json_object_set_new(rec, "active_version", json_integer(0));
        json_object_set_new(rec, "active_sha256", json_null());
        json_object_set_new(rec, "created_at", json_string(es->now));
        json_object_set_new(rec, "active_deployment_id", json_null());
        json_object_set_new(rec, "last_version", json_integer(0));
        cp_estore__put_json(es, k, rec);
        json_decref(rec);
        cp_kvtx_put(&es->tx, cp_estore__key(es, k, "app_ids/%020lld", (long long)id), name,
                    strlen(name));
        *id_out = id;
    }
    return cp_estore__leave(es, imp, rc);
}

/* Loads app id's record for a change: NANO_ENOTFOUND becomes what SQLite's UPDATE of no row
 * gives (0, nothing done: *rec NULL). */
static int app_for_update(cp_estore *es, int64_t id, json_t **rec, char *name)
{
    *rec = NULL;
    int rc = app_by_id(es, id, rec, name);
    return rc == NANO_ENOTFOUND ? 0 : rc;
}

static void app_store(cp_estore *es, const char *name, json_t *rec)
{
    char k[CP_EKEY_MAX];
    cp_estore__put_json(es, cp_estore__key(es, k, "apps/%s", name), rec);
}

int cp_estore_app_update(cp_estore *es, int64_t id, const nano_app_spec *spec)
{
    char name[64];
    json_t *rec = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = app_for_update(es, id, &rec, name);
    if (rc == 0 && rec == NULL) /* SQLite: the hostnames' foreign key fails */
        rc = cp_estore__fail(es, NANO_ESTATE, "FOREIGN KEY constraint failed");
    if (rc == 0) {
        claims_drop(es, rec);
        rc = claims_put(es, id, spec);
    }
    if (rc == 0) {
        app_set_spec(es, rec, spec);
        app_store(es, name, rec);
    }
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_app_set_state(cp_estore *es, int64_t id, const char *state)
{
    char name[64];
    json_t *rec = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 &&
        (state == NULL || (strcmp(state, "active") != 0 && strcmp(state, "draining") != 0)))
        rc = cp_estore__fail(es, NANO_ESTATE, "CHECK constraint failed: state");
    if (rc == 0)
        rc = app_for_update(es, id, &rec, name);
    if (rc == 0 && rec != NULL) {
        json_object_set_new(rec, "state", json_string(state));
        json_object_set_new(rec, "updated_at", json_string(es->now));
        app_store(es, name, rec);
    }
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

static int deployments_of(cp_estore *es, int64_t app_id, json_t **out)
{
    char k[CP_EKEY_MAX];
    return cp_estore__range_json(
        es, cp_estore__key(es, k, "deployments/%020lld/", (long long)app_id), NULL, 0, out);
}

int cp_estore_app_activate(cp_estore *es, int64_t id, int64_t deployment_id)
{
    char name[64];
    json_t *rec = NULL, *deps = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = app_for_update(es, id, &rec, name);
    if (rc == 0 && rec != NULL)
        rc = deployments_of(es, id, &deps);
    json_t *dep = NULL;
    size_t i;
    json_t *d;
    json_array_foreach(deps, i, d) {
        if (json_integer_value(json_object_get(d, "id")) == deployment_id)
            dep = d;
    }
    if (rc == 0 && rec != NULL && dep == NULL)
        rc = cp_estore__fail(es, NANO_ESTATE, "FOREIGN KEY constraint failed");
    if (rc == 0 && rec != NULL) {
        json_object_set_new(rec, "active_deployment_id", json_integer(deployment_id));
        json_object_set(rec, "active_version", json_object_get(dep, "version"));
        json_object_set(rec, "active_sha256", json_object_get(dep, "sha256"));
        json_object_set_new(rec, "updated_at", json_string(es->now));
        app_store(es, name, rec);
    }
    json_decref(deps);
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

/* The sha256 of every module every deployment (of every app but except_app) uses, as the
 * keys of an object. */
static int blob_refs(cp_estore *es, int64_t except_app, json_t **out)
{
    char k[CP_EKEY_MAX];
    json_t *deps = NULL;
    int rc = cp_estore__range_json(es, cp_estore__key(es, k, "deployments/"), NULL, 0, &deps);
    if (rc != 0)
        return rc;
    json_t *refs = json_object();
    size_t i, j;
    json_t *d, *m;
    json_array_foreach(deps, i, d) {
        if (json_integer_value(json_object_get(d, "app_id")) == except_app)
            continue;
        json_array_foreach(json_object_get(d, "modules"), j, m) {
            json_object_set_new(refs, json_string_value(json_object_get(m, "sha256")), json_true());
        }
    }
    json_decref(deps);
    *out = refs;
    return 0;
}

int cp_estore_app_delete(cp_estore *es, int64_t id)
{
    char k[CP_EKEY_MAX], name[64];
    json_t *rec = NULL, *deps = NULL, *refs = NULL, *drains = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = app_for_update(es, id, &rec, name);
    if (rc != 0 || rec == NULL)
        goto done;
    if ((rc = deployments_of(es, id, &deps)) != 0 || (rc = blob_refs(es, id, &refs)) != 0 ||
        (rc = cp_estore__range_json(es, cp_estore__key(es, k, "drains/"), NULL, 0, &drains)) != 0)
        goto done;
    claims_drop(es, rec);
    char *v = NULL;
    size_t len = 0;
    if ((rc = cp_estore__get_text(es, cp_estore__key(es, k, "default"), &v, &len)) == 0 &&
        strtoll(v, NULL, 10) == id)
        cp_kvtx_del(&es->tx, k);
    nano_free(v);
    if (rc != 0 && rc != NANO_ENOTFOUND)
        goto done;
    rc = 0;
    cp_kvtx_del(&es->tx, cp_estore__key(es, k, "apps/%s", name));
    cp_kvtx_del(&es->tx, cp_estore__key(es, k, "app_ids/%020lld", (long long)id));
    cp_kvtx_del_prefix(&es->tx, cp_estore__key(es, k, "deployments/%020lld/", (long long)id));
    cp_kvtx_del(&es->tx, cp_estore__key(es, k, "env/%020lld", (long long)id));
    cp_kvtx_del(&es->tx, cp_estore__key(es, k, "secrets/%020lld", (long long)id));
    /* drains.app_id ON DELETE SET NULL */
    size_t i, j;
    json_t *d, *m;
    json_array_foreach(drains, i, d) {
        if (json_integer_value(json_object_get(d, "app_id")) == id) {
            json_object_set_new(d, "app_id", json_null());
            cp_estore__put_json(
                es,
                cp_estore__key(es, k, "drains/%020lld",
                               (long long)json_integer_value(json_object_get(d, "id"))),
                d);
        }
    }
    /* Code no deployment uses any more, while that is cheap: a few range deletes in this same
     * transaction (a deploy that raced us and reused a blob fails its commit and uploads it
     * again). The rest waits for cp_store_blob_sweep. */
    size_t n_gone = 0;
    json_array_foreach(deps, i, d) {
        json_array_foreach(json_object_get(d, "modules"), j, m) {
            const char *sha = json_string_value(json_object_get(m, "sha256"));
            if (sha == NULL || json_object_get(refs, sha) != NULL || n_gone >= CP_ESTORE_GC_MAX)
                continue;
            json_object_set_new(refs, sha, json_true()); /* once */
            cp_kvtx_del_prefix(&es->tx, cp_estore__key(es, k, "blobs/%s/", sha));
            n_gone++;
        }
    }
done:
    json_decref(rec);
    json_decref(deps);
    json_decref(refs);
    json_decref(drains);
    return cp_estore__leave(es, imp, rc);
}

/* The app owning key (an app id as text), other than except_id: its name; NANO_ENOTFOUND. */
static int owner_of(cp_estore *es, const char *key, int64_t except_id, char *name_out)
{
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    char *v = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = cp_estore__get_text(es, key, &v, &len);
    int64_t id = rc == 0 ? strtoll(v, NULL, 10) : 0;
    nano_free(v);
    if (rc == 0 && id == except_id)
        rc = NANO_ENOTFOUND;
    if (rc == 0)
        rc = cp_estore__app_name(es, id, name_out);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_hostname_owner(cp_estore *es, const char *host, const char *prefix, int64_t except_id,
                             char *name_out)
{
    char k[CP_EKEY_MAX];
    return owner_of(es, cp_estore__key(es, k, "hosts/%s/%s", host, prefix ? prefix : ""), except_id,
                    name_out);
}

int cp_estore_default_owner(cp_estore *es, int64_t except_id, char *name_out)
{
    char k[CP_EKEY_MAX];
    return owner_of(es, cp_estore__key(es, k, "default"), except_id, name_out);
}

/* --- code: blobs ------------------------------------------------------------------------------ */

/* Blobs are written before, and outside, the transaction that references them: each chunk is
 * one put (below etcd's request limit), then the meta key, which says the blob is whole. They
 * are content-addressed, so writing one again is harmless; a lost answer is simply retried. */
static int put_retry(cp_estore *es, const char *key, const void *v, size_t len)
{
    nano_error e = {0};
    int rc = NANO_EUNKNOWN;
    for (int attempt = 0; attempt < 3 && (rc == NANO_EUNKNOWN || rc == NANO_EIO); attempt++)
        rc = cp_etcd_put(es->e, key, strlen(key), v, len, 0, NULL, &e);
    return rc == 0 ? 0 : fail_etcd(es, rc, &e);
}

static int blob_put(cp_estore *es, const cp_module *m)
{
    char k[CP_EKEY_MAX];
    cp_etcd_result *r = NULL;
    nano_error e = {0};
    cp_estore__key(es, k, "blobs/%s/meta", m->sha256);
    int rc = cp_etcd_get(es->e, k, strlen(k), &r, &e);
    if (rc != 0)
        return fail_etcd(es, rc, &e);
    json_t *meta = r->n_kvs == 1 ? json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL) : NULL;
    cp_etcd_result_free(r);
    bool whole = json_integer_value(json_object_get(meta, "size")) == (json_int_t)m->len;
    json_decref(meta);
    size_t n_chunks = (m->len + CP_ESTORE_CHUNK - 1) / CP_ESTORE_CHUNK;
    for (size_t i = 0; i < n_chunks && rc == 0 && !whole; i++) {
        size_t off = i * CP_ESTORE_CHUNK;
        size_t len = m->len - off < CP_ESTORE_CHUNK ? m->len - off : CP_ESTORE_CHUNK;
        rc = put_retry(es, cp_estore__key(es, k, "blobs/%s/c/%06zu", m->sha256, i), m->data + off,
                       len);
    }
    /* The meta key is written again even when the blob was whole: its time keeps the sweep
     * away from a blob a deploy is about to reference. */
    if (rc == 0) {
        char now[32];
        cp_time_now(now, sizeof now);
        json_t *j = json_pack("{s:I, s:I, s:s}", "size", (json_int_t)m->len, "chunks",
                              (json_int_t)n_chunks, "at", now);
        char *text = json_dumps(j, JSON_COMPACT);
        rc = put_retry(es, cp_estore__key(es, k, "blobs/%s/meta", m->sha256), text, strlen(text));
        free(text);
        json_decref(j);
    }
    return rc;
}

int cp_estore_blob_get(cp_estore *es, const char *sha256, char **data_out, size_t *len_out)
{
    /* Read at the latest revision, outside any snapshot: blobs never change, and one may have
     * been written after the reading transaction began. */
    char k[CP_EKEY_MAX];
    cp_estore__key(es, k, "blobs/%s/", sha256);
    size_t plen = strlen(k);
    unsigned char end[CP_EKEY_MAX];
    size_t end_len = cp_etcd_prefix_end(k, plen, end);
    cp_etcd_range_req req = {.key = k, .key_len = plen, .range_end = end, .range_end_len = end_len};
    cp_etcd_result *r = NULL;
    nano_error e = {0};
    int rc = cp_etcd_range(es->e, &req, &r, &e);
    if (rc != 0)
        return fail_etcd(es, rc, &e);
    json_t *meta = NULL;
    nano_buf b = NANO_BUF_INIT;
    for (size_t i = 0; i < r->n_kvs; i++) { /* .../c/000000, .../c/000001, ..., .../meta */
        const char *rest = r->kvs[i].key + plen;
        if (strcmp(rest, "meta") == 0)
            meta = json_loadb(r->kvs[i].value, r->kvs[i].value_len, 0, NULL);
        else
            nano_buf_append(&b, r->kvs[i].value, r->kvs[i].value_len);
    }
    cp_etcd_result_free(r);
    char sha[65];
    nano_sha256_hex(b.data, b.len, sha);
    if (meta == NULL)
        rc = NANO_ENOTFOUND;
    else if (json_integer_value(json_object_get(meta, "size")) != (json_int_t)b.len ||
             strcmp(sha, sha256) != 0)
        rc = cp_estore__fail(es, NANO_EIO, "blob %s: its chunks do not add up to it", sha256);
    json_decref(meta);
    if (rc == 0) {
        char *data = nano_xmalloc(b.len + 1);
        if (b.len > 0)
            memcpy(data, b.data, b.len);
        data[b.len] = '\0';
        *data_out = data;
        *len_out = b.len;
    }
    nano_buf_fini(&b);
    return rc;
}

int cp_estore_blob_sweep(cp_estore *es, int64_t min_age_ms, int64_t *n_out)
{
    char k[CP_EKEY_MAX];
    json_t *refs = NULL;
    cp_kvtx_list metas = {0};
    int rc = cp_estore_begin(es);
    if (rc == 0)
        rc = blob_refs(es, 0, &refs);
    nano_error e = {0};
    if (rc == 0 &&
        (rc = cp_kvtx_range(&es->tx, cp_estore__key(es, k, "blobs/"), NULL, 0, &metas, &e)) != 0)
        rc = fail_etcd(es, rc, &e);
    /* The range reads at the transaction's revision: a blob written since is not seen, and not
     * deleted. */
    char now[32];
    cp_time_now(now, sizeof now);
    int64_t n = 0;
    size_t plen = strlen(es->prefix) + strlen("blobs/");
    for (size_t i = 0; i < metas.n && rc == 0 && n < CP_ESTORE_GC_MAX; i++) {
        const char *key = metas.items[i].key;
        const char *slash = strchr(key + plen, '/');
        if (slash == NULL || strcmp(slash, "/meta") != 0)
            continue;
        char sha[65];
        snprintf(sha, sizeof sha, "%.*s", (int)(slash - (key + plen)), key + plen);
        json_t *meta = json_loadb(metas.items[i].value, metas.items[i].value_len, 0, NULL);
        int64_t at = cp_estore__time_ms(json_string_value(json_object_get(meta, "at")));
        json_decref(meta);
        if (json_object_get(refs, sha) != NULL || cp_estore__time_ms(now) - at < min_age_ms)
            continue;
        cp_kvtx_del_prefix(&es->tx, cp_estore__key(es, k, "blobs/%s/", sha));
        n++;
    }
    cp_kvtx_list_fini(&metas);
    json_decref(refs);
    if (rc == 0)
        rc = cp_estore_commit(es);
    else
        cp_estore_rollback(es);
    if (rc == 0)
        *n_out = n;
    return rc;
}

/* --- deployments ------------------------------------------------------------------------------ */

int cp_estore_deployment_insert(cp_estore *es, int64_t app_id, const char *sha256, const char *main,
                                const cp_module *mods, size_t n_mods, const char *created_by,
                                int64_t *id_out, int64_t *version_out)
{
    char k[CP_EKEY_MAX], name[64];
    json_t *rec = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (rc = app_by_id(es, app_id, &rec, name)) == NANO_ENOTFOUND)
        rc = cp_estore__fail(es, NANO_ESTATE, "FOREIGN KEY constraint failed");
    for (size_t i = 0; i < n_mods && rc == 0; i++)
        for (size_t j = 0; j < i && rc == 0; j++)
            if (strcmp(mods[i].name, mods[j].name) == 0)
                rc = cp_estore__fail(es, NANO_ESTATE,
                                     "UNIQUE constraint failed: deployment_modules");
    for (size_t i = 0; i < n_mods && rc == 0; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(mods[i].sha256, mods[j].sha256) == 0;
        if (!seen)
            rc = blob_put(es, &mods[i]);
    }
    if (rc == 0) {
        int64_t version = json_integer_value(json_object_get(rec, "last_version")) + 1;
        int64_t id = cp_estore__next_id(es, "deployment");
        size_t total = 0;
        json_t *list = json_array();
        for (size_t i = 0; i < n_mods; i++) {
            json_array_append_new(list,
                                  json_pack("{s:s, s:I, s:s}", "name", mods[i].name, "size",
                                            (json_int_t)mods[i].len, "sha256", mods[i].sha256));
            total += mods[i].len;
        }
        json_t *dep = json_pack("{s:I, s:I, s:I, s:s, s:s, s:I, s:o, s:s, s:s}", "id",
                                (json_int_t)id, "app_id", (json_int_t)app_id, "version",
                                (json_int_t)version, "sha256", sha256, "main", main, "size",
                                (json_int_t)total, "modules", list, "created_at", es->now,
                                "created_by", created_by ? created_by : "");
        cp_estore__put_json(es,
                            cp_estore__key(es, k, "deployments/%020lld/%020lld", (long long)app_id,
                                           (long long)version),
                            dep);
        json_decref(dep);
        json_object_set_new(rec, "last_version", json_integer(version));
        app_store(es, name, rec);
        *id_out = id;
        *version_out = version;
    }
    json_decref(rec);
    return cp_estore__leave(es, imp, rc);
}

/* A deployment as the API shows it: the record without app_id, with active. */
static json_t *deployment_view(json_t *dep, json_t *app)
{
    json_t *v = json_deep_copy(dep);
    json_object_del(v, "app_id");
    json_t *active = json_object_get(app, "active_deployment_id");
    json_object_set_new(
        v, "active",
        json_boolean(json_is_integer(active) &&
                     json_integer_value(active) == json_integer_value(json_object_get(dep, "id"))));
    return v;
}

int cp_estore_deployment_get(cp_estore *es, int64_t app_id, int64_t version, json_t **out)
{
    char k[CP_EKEY_MAX], name[64];
    json_t *app = NULL, *dep = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = app_by_id(es, app_id, &app, name);
    if (rc == 0)
        rc = cp_estore__get_json(es,
                                 cp_estore__key(es, k, "deployments/%020lld/%020lld",
                                                (long long)app_id, (long long)version),
                                 &dep);
    if (rc == 0)
        *out = deployment_view(dep, app);
    json_decref(app);
    json_decref(dep);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_deployment_list(cp_estore *es, int64_t app_id, json_t **out)
{
    char name[64];
    json_t *app = NULL, *deps = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0 && (rc = app_by_id(es, app_id, &app, name)) == NANO_ENOTFOUND) {
        *out = json_array(); /* SQLite's join: no rows */
        rc = 0;
        return cp_estore__leave(es, imp, rc);
    }
    if (rc == 0)
        rc = deployments_of(es, app_id, &deps);
    if (rc == 0) {
        json_t *list = json_array();
        for (size_t i = json_array_size(deps); i > 0; i--) /* newest first */
            json_array_append_new(list, deployment_view(json_array_get(deps, i - 1), app));
        *out = list;
    }
    json_decref(app);
    json_decref(deps);
    return cp_estore__leave(es, imp, rc);
}

/* --- env and secrets -------------------------------------------------------------------------- */

/* app_id exists (the tables' foreign key): NANO_ESTATE otherwise. */
static int app_must_exist(cp_estore *es, int64_t app_id)
{
    char name[64];
    int rc = cp_estore__app_name(es, app_id, name);
    return rc == NANO_ENOTFOUND ? cp_estore__fail(es, NANO_ESTATE, "FOREIGN KEY constraint failed")
                                : rc;
}

/* An app's env vars, and its secrets, are one key each ({NAME: value}): an env.replace of
 * every name is then one put, whatever etcd's operations per transaction. */
static int named_obj(cp_estore *es, const char *kind, int64_t app_id, json_t **out)
{
    char k[CP_EKEY_MAX];
    int rc = cp_estore__get_json(es, cp_estore__key(es, k, "%s/%020lld", kind, (long long)app_id),
                                 out);
    if (rc == NANO_ENOTFOUND) {
        *out = json_object();
        return 0;
    }
    if (rc == 0 && !json_is_object(*out)) {
        json_decref(*out);
        return cp_estore__fail(es, NANO_EIO, "%s: not a JSON object", k);
    }
    return rc;
}

static void named_store(cp_estore *es, const char *kind, int64_t app_id, json_t *obj)
{
    char k[CP_EKEY_MAX];
    cp_estore__key(es, k, "%s/%020lld", kind, (long long)app_id);
    if (json_object_size(obj) == 0)
        cp_kvtx_del(&es->tx, k);
    else
        cp_estore__put_json(es, k, obj);
}

/* obj's keys in byte order (SQLite's ORDER BY name); borrowed from obj, array owned. */
static const char **sorted_names(json_t *obj, size_t *n)
{
    const char **names = nano_xcalloc(json_object_size(obj) + 1, sizeof *names);
    const char *key;
    json_t *v;
    *n = 0;
    json_object_foreach(obj, key, v) {
        names[(*n)++] = key;
    }
    qsort(names, *n, sizeof *names, cp_estore__strcmp_p);
    return names;
}

int cp_estore_env_vars(cp_estore *es, int64_t app_id, json_t **out)
{
    json_t *vars = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = named_obj(es, "env", app_id, &vars);
    if (rc == 0) {
        json_t *obj = json_object();
        size_t n = 0;
        const char **names = sorted_names(vars, &n);
        for (size_t i = 0; i < n; i++) {
            /* the value is the JSON text as given, parsed as SQLite's row is */
            const char *text = json_string_value(json_object_get(vars, names[i]));
            json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
            json_object_set_new(obj, names[i], v ? v : json_null());
        }
        nano_free(names);
        *out = obj;
    }
    json_decref(vars);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_env_kinds(cp_estore *es, int64_t app_id, json_t **out)
{
    json_t *vars = NULL, *secrets = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = named_obj(es, "env", app_id, &vars);
    if (rc == 0)
        rc = named_obj(es, "secrets", app_id, &secrets);
    if (rc == 0) {
        json_t *obj = json_object();
        const char *name;
        json_t *v;
        json_object_foreach(vars, name, v) {
            json_object_set_new(obj, name, json_string("var"));
        }
        json_object_foreach(secrets, name, v) {
            json_object_set_new(obj, name, json_string("secret"));
        }
        *out = obj;
    }
    json_decref(vars);
    json_decref(secrets);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_env_put(cp_estore *es, int64_t app_id, const char *name, const char *value_json)
{
    json_t *vars = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = app_must_exist(es, app_id);
    if (rc == 0 && (name == NULL || value_json == NULL))
        rc = cp_estore__fail(es, NANO_ESTATE, "NOT NULL constraint failed: env_vars");
    if (rc == 0)
        rc = named_obj(es, "env", app_id, &vars);
    if (rc == 0) {
        json_object_set_new(vars, name, json_string(value_json));
        named_store(es, "env", app_id, vars);
    }
    json_decref(vars);
    return cp_estore__leave(es, imp, rc);
}

static int delete_named(cp_estore *es, const char *kind, int64_t app_id, const char *name)
{
    json_t *obj = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = named_obj(es, kind, app_id, &obj);
    if (rc == 0 && json_object_del(obj, name) != 0)
        rc = NANO_ENOTFOUND;
    if (rc == 0)
        named_store(es, kind, app_id, obj);
    json_decref(obj);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_env_del(cp_estore *es, int64_t app_id, const char *name)
{
    return delete_named(es, "env", app_id, name);
}

int cp_estore_secret_list(cp_estore *es, int64_t app_id, json_t **out)
{
    json_t *secrets = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = named_obj(es, "secrets", app_id, &secrets);
    if (rc == 0) {
        json_t *list = json_array();
        size_t n = 0;
        const char **names = sorted_names(secrets, &n);
        for (size_t i = 0; i < n; i++) {
            json_t *at = json_object_get(json_object_get(secrets, names[i]), "updated_at");
            json_array_append_new(list, json_pack("{s:s, s:O}", "name", names[i], "updated_at",
                                                  at ? at : json_null()));
        }
        nano_free(names);
        *out = list;
    }
    json_decref(secrets);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_secret_put(cp_estore *es, int64_t app_id, const char *name, const cp_sealed *s)
{
    json_t *secrets = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = app_must_exist(es, app_id);
    if (rc == 0)
        rc = named_obj(es, "secrets", app_id, &secrets);
    if (rc == 0) {
        char *ct = nano_xmalloc(4 * ((s->len + 2) / 3) + 1);
        char nonce[2 * CP_NONCE_BYTES + 1], tag[2 * CP_TAG_BYTES + 1];
        cp_base64(s->ciphertext, s->len, ct);
        cp_hex(s->nonce, CP_NONCE_BYTES, nonce);
        cp_hex(s->tag, CP_TAG_BYTES, tag);
        json_object_set_new(secrets, name,
                            json_pack("{s:s, s:s, s:s, s:s, s:s}", "ciphertext", ct, "nonce", nonce,
                                      "tag", tag, "key_id", s->key_id, "updated_at", es->now));
        named_store(es, "secrets", app_id, secrets);
        nano_free(ct);
    }
    json_decref(secrets);
    return cp_estore__leave(es, imp, rc);
}

/* Hex text into out (exactly cap bytes expected); false when it is not that. */
static bool unhex(const char *hex, unsigned char *out, size_t cap)
{
    if (hex == NULL || strlen(hex) != 2 * cap)
        return false;
    for (size_t i = 0; i < cap; i++) {
        unsigned int b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1)
            return false;
        out[i] = (unsigned char)b;
    }
    return true;
}

int cp_estore_secret_get(cp_estore *es, int64_t app_id, const char *name, cp_sealed *out)
{
    json_t *secrets = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = named_obj(es, "secrets", app_id, &secrets);
    json_t *j = json_object_get(secrets, name);
    if (rc == 0 && j == NULL)
        rc = NANO_ENOTFOUND;
    if (rc == 0) {
        cp_sealed s = {0};
        const char *ct = json_string_value(json_object_get(j, "ciphertext"));
        size_t ct_len = ct ? strlen(ct) : 0;
        s.ciphertext = nano_xmalloc(ct_len + 1);
        /* EVP_DecodeBlock counts the padding's bytes: take them off again. A value edited by
         * hand fails to open instead (as SQLite's row would). */
        int n = ct_len > 0 ? EVP_DecodeBlock(s.ciphertext, (const unsigned char *)ct, (int)ct_len)
                           : 0;
        s.len = n < 0 ? 0
                      : (size_t)n - (ct_len >= 1 && ct[ct_len - 1] == '=') -
                            (ct_len >= 2 && ct[ct_len - 2] == '=');
        unhex(json_string_value(json_object_get(j, "nonce")), s.nonce, CP_NONCE_BYTES);
        unhex(json_string_value(json_object_get(j, "tag")), s.tag, CP_TAG_BYTES);
        const char *key_id = json_string_value(json_object_get(j, "key_id"));
        snprintf(s.key_id, sizeof s.key_id, "%s", key_id ? key_id : "");
        *out = s;
    }
    json_decref(secrets);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore_secret_del(cp_estore *es, int64_t app_id, const char *name)
{
    return delete_named(es, "secrets", app_id, name);
}

int cp_estore_secret_keys(cp_estore *es, json_t **out)
{
    char k[CP_EKEY_MAX];
    json_t *all = NULL;
    bool imp;
    int rc = cp_estore__enter(es, &imp);
    if (rc == 0)
        rc = cp_estore__range_json(es, cp_estore__key(es, k, "secrets/"), NULL, 0, &all);
    if (rc == 0) {
        json_t *keys = json_object();
        size_t i;
        json_t *app;
        json_array_foreach(all, i, app) {
            const char *name;
            json_t *s;
            json_object_foreach(app, name, s) {
                const char *id = json_string_value(json_object_get(s, "key_id"));
                if (id != NULL)
                    json_object_set_new(
                        keys, id, json_integer(json_integer_value(json_object_get(keys, id)) + 1));
            }
        }
        *out = keys;
    }
    json_decref(all);
    return cp_estore__leave(es, imp, rc);
}

int cp_estore__strcmp_p(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}
