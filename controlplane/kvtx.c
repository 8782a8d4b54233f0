/* kvtx.c: optimistic transactions over etcd (kvtx.h). The whole store is guarded by one key,
 * the meta key: a commit compares its mod_revision with the one read at begin, so two
 * transactions that overlap in time never both commit, whatever keys they touched (simpler
 * than per-key compares, and a store transaction touches few keys). */
#include "kvtx.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "secrets.h"

void cp_kvtx_list_fini(cp_kvtx_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++) {
        nano_free(l->items[i].key);
        nano_free(l->items[i].value);
    }
    nano_free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* One range read at the transaction's revision and etcd's answer to it. */
typedef struct cp_kvtx_cached {
    char *key, *end; /* as asked (bytes; end NULL: none) */
    size_t key_len, end_len;
    int64_t limit;
    bool keys_only;
    cp_etcd_result *r;
} cp_kvtx_cached;

void cp_kvtx_fini(cp_kvtx *tx)
{
    if (tx == NULL)
        return;
    for (size_t i = 0; i < tx->n_reads; i++) {
        nano_free(tx->reads[i].key);
        nano_free(tx->reads[i].end);
        cp_etcd_result_free(tx->reads[i].r);
    }
    nano_free(tx->reads);
    for (size_t i = 0; i < tx->n_writes; i++) {
        nano_free(tx->writes[i].key);
        nano_free(tx->writes[i].value);
    }
    nano_free(tx->writes);
    for (size_t i = 0; i < tx->n_del_prefixes; i++)
        nano_free(tx->del_prefixes[i]);
    nano_free(tx->del_prefixes);
    nano_free(tx->meta_key);
    json_decref(tx->meta);
    memset(tx, 0, sizeof *tx);
}

/* Reads the meta key (latest): its value parsed (an empty object when absent), mod_revision
 * and the answer's revision. */
static int read_meta(cp_etcd *e, const char *key, json_t **meta, int64_t *mod, int64_t *rev,
                     nano_error *err)
{
    cp_etcd_result *r = NULL;
    int rc = cp_etcd_get(e, key, strlen(key), &r, err);
    if (rc != 0)
        return rc;
    json_t *m = NULL;
    if (r->n_kvs == 1) {
        m = json_loadb(r->kvs[0].value, r->kvs[0].value_len, 0, NULL);
        if (!json_is_object(m)) {
            json_decref(m);
            cp_etcd_result_free(r);
            return nano_error_set(err, NANO_EIO, "store_meta_invalid",
                                  "%s does not hold a JSON object: not a nanocp store?", key);
        }
        *mod = r->kvs[0].mod_revision;
    } else {
        m = json_object();
        *mod = 0;
    }
    *rev = r->revision;
    *meta = m;
    cp_etcd_result_free(r);
    return 0;
}

int cp_kvtx_begin(cp_kvtx *tx, cp_etcd *e, const char *meta_key, nano_error *err)
{
    cp_kvtx_fini(tx);
    int rc = read_meta(e, meta_key, &tx->meta, &tx->meta_mod, &tx->rev, err);
    if (rc != 0)
        return rc;
    tx->e = e;
    tx->meta_key = nano_xstrdup(meta_key);
    tx->active = true;
    return 0;
}

static bool has_prefix(const char *key, const char *prefix)
{
    return strncmp(key, prefix, strlen(prefix)) == 0;
}

static cp_kvtx_write *find_write(cp_kvtx *tx, const char *key)
{
    for (size_t i = 0; i < tx->n_writes; i++)
        if (strcmp(tx->writes[i].key, key) == 0)
            return &tx->writes[i];
    return NULL;
}

static bool under_deleted_prefix(const cp_kvtx *tx, const char *key)
{
    for (size_t i = 0; i < tx->n_del_prefixes; i++)
        if (has_prefix(key, tx->del_prefixes[i]))
            return true;
    return false;
}

static char *copy_bytes(const void *p, size_t len)
{
    char *c = nano_xmalloc(len + 1);
    if (len > 0)
        memcpy(c, p, len);
    c[len] = '\0';
    return c;
}

static bool same_bytes(const void *a, size_t a_len, const void *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

/* etcd's answer to req (made at tx->rev), borrowed: owned by the transaction until it ends.
 * Every read of a transaction is at one revision, whose contents never change, so the same
 * range is asked of etcd once per transaction (a status report of many nodes reads the drains
 * once per node: one round trip each without this). */
static int range_at_rev(cp_kvtx *tx, const cp_etcd_range_req *req, const cp_etcd_result **out,
                        nano_error *err)
{
    for (size_t i = 0; i < tx->n_reads; i++) {
        const cp_kvtx_cached *c = &tx->reads[i];
        if (c->limit == req->limit && c->keys_only == req->keys_only &&
            same_bytes(c->key, c->key_len, req->key, req->key_len) &&
            same_bytes(c->end, c->end_len, req->range_end, req->range_end_len)) {
            *out = c->r;
            return 0;
        }
    }
    cp_etcd_result *r = NULL;
    int rc = cp_etcd_range(tx->e, req, &r, err);
    if (rc != 0)
        return rc;
    if (tx->n_reads == tx->cap_reads) {
        tx->cap_reads = tx->cap_reads ? tx->cap_reads * 2 : 8;
        tx->reads = nano_xrealloc(tx->reads, tx->cap_reads * sizeof *tx->reads);
    }
    tx->reads[tx->n_reads++] = (cp_kvtx_cached){
        .key = copy_bytes(req->key, req->key_len),
        .key_len = req->key_len,
        .end = req->range_end != NULL ? copy_bytes(req->range_end, req->range_end_len) : NULL,
        .end_len = req->range_end != NULL ? req->range_end_len : 0,
        .limit = req->limit,
        .keys_only = req->keys_only,
        .r = r};
    *out = r;
    return 0;
}

int cp_kvtx_get(cp_kvtx *tx, const char *key, char **value, size_t *len, nano_error *err)
{
    cp_kvtx_write *w = find_write(tx, key);
    if (w != NULL || under_deleted_prefix(tx, key)) {
        if (w == NULL || w->value == NULL)
            return NANO_ENOTFOUND;
        *value = copy_bytes(w->value, w->value_len);
        *len = w->value_len;
        return 0;
    }
    const cp_etcd_result *r = NULL;
    cp_etcd_range_req req = {.key = key, .key_len = strlen(key), .revision = tx->rev};
    int rc = range_at_rev(tx, &req, &r, err);
    if (rc != 0)
        return rc;
    if (r->n_kvs == 0)
        return NANO_ENOTFOUND;
    *value = copy_bytes(r->kvs[0].value, r->kvs[0].value_len);
    *len = r->kvs[0].value_len;
    return 0;
}

static bool in_range(const char *key, const char *start, const char *end)
{
    if (strcmp(key, start) < 0)
        return false;
    return end == NULL ? has_prefix(key, start) : strcmp(key, end) < 0;
}

static int item_cmp(const void *a, const void *b)
{
    return strcmp(((const cp_kvtx_item *)a)->key, ((const cp_kvtx_item *)b)->key);
}

/* Whether a buffered write or range delete can change what [start, end) holds. */
static bool overlay_touches(const cp_kvtx *tx, const char *start, const char *end)
{
    for (size_t i = 0; i < tx->n_writes; i++)
        if (in_range(tx->writes[i].key, start, end))
            return true;
    for (size_t i = 0; i < tx->n_del_prefixes; i++) {
        const char *p = tx->del_prefixes[i];
        /* a deleted prefix overlaps the range when one starts with the other, or (a bounded
         * range) when the prefix sorts inside it */
        if (has_prefix(p, start) || has_prefix(start, p) ||
            (end != NULL && in_range(p, start, end)))
            return true;
    }
    return false;
}

int cp_kvtx_range(cp_kvtx *tx, const char *start, const char *end, int64_t limit, cp_kvtx_list *out,
                  nano_error *err)
{
    size_t start_len = strlen(start);
    unsigned char *pend = NULL;
    size_t end_len = 0;
    if (end == NULL) {
        pend = nano_xmalloc(start_len + 1);
        end_len = cp_etcd_prefix_end(start, start_len, pend);
    }
    bool touched = overlay_touches(tx, start, end);
    cp_etcd_range_req req = {
        .key = start,
        .key_len = start_len,
        .range_end = end != NULL ? (const void *)end : pend,
        .range_end_len = end != NULL ? strlen(end) : end_len,
        .limit = touched ? 0 : limit, /* the overlay may remove keys: take them all */
        .revision = tx->rev,
    };
    const cp_etcd_result *r = NULL;
    int rc = range_at_rev(tx, &req, &r, err);
    nano_free(pend);
    if (rc != 0)
        return rc;
    cp_kvtx_list l = {.items = nano_xcalloc(r->n_kvs + tx->n_writes + 1, sizeof(cp_kvtx_item))};
    for (size_t i = 0; i < r->n_kvs; i++) {
        const cp_etcd_kv *kv = &r->kvs[i];
        if (touched && (find_write(tx, kv->key) != NULL || under_deleted_prefix(tx, kv->key)))
            continue;
        l.items[l.n++] = (cp_kvtx_item){copy_bytes(kv->key, kv->key_len),
                                        copy_bytes(kv->value, kv->value_len), kv->value_len};
    }
    for (size_t i = 0; touched && i < tx->n_writes; i++) {
        const cp_kvtx_write *w = &tx->writes[i];
        if (w->value != NULL && in_range(w->key, start, end))
            l.items[l.n++] = (cp_kvtx_item){nano_xstrdup(w->key),
                                            copy_bytes(w->value, w->value_len), w->value_len};
    }
    if (touched) {
        qsort(l.items, l.n, sizeof *l.items, item_cmp);
        while (limit > 0 && l.n > (size_t)limit) {
            l.n--;
            nano_free(l.items[l.n].key);
            nano_free(l.items[l.n].value);
        }
    }
    *out = l;
    return 0;
}

static void write_set(cp_kvtx *tx, const char *key, const void *value, size_t len, bool is_del)
{
    cp_kvtx_write *w = find_write(tx, key);
    if (w == NULL) {
        if (tx->n_writes == tx->cap_writes) {
            tx->cap_writes = tx->cap_writes ? tx->cap_writes * 2 : 16;
            tx->writes = nano_xrealloc(tx->writes, tx->cap_writes * sizeof *tx->writes);
        }
        w = &tx->writes[tx->n_writes++];
        *w = (cp_kvtx_write){.key = nano_xstrdup(key)};
    }
    nano_free(w->value);
    w->value = is_del ? NULL : copy_bytes(value, len);
    w->value_len = is_del ? 0 : len;
}

void cp_kvtx_put(cp_kvtx *tx, const char *key, const void *value, size_t len)
{
    write_set(tx, key, value, len, false);
}

void cp_kvtx_del(cp_kvtx *tx, const char *key)
{
    write_set(tx, key, NULL, 0, true);
}

void cp_kvtx_forget(cp_kvtx *tx, const char *key)
{
    cp_kvtx_write *w = find_write(tx, key);
    if (w == NULL)
        return;
    nano_free(w->key);
    nano_free(w->value);
    *w = tx->writes[--tx->n_writes];
}

void cp_kvtx_del_prefix(cp_kvtx *tx, const char *prefix)
{
    size_t k = 0;
    for (size_t i = 0; i < tx->n_writes; i++) {
        if (has_prefix(tx->writes[i].key, prefix)) {
            nano_free(tx->writes[i].key);
            nano_free(tx->writes[i].value);
        } else {
            tx->writes[k++] = tx->writes[i];
        }
    }
    tx->n_writes = k;
    tx->del_prefixes = nano_xrealloc(tx->del_prefixes,
                                     (tx->n_del_prefixes + 1) * sizeof *tx->del_prefixes);
    tx->del_prefixes[tx->n_del_prefixes++] = nano_xstrdup(prefix);
}

/* --- commit ----------------------------------------------------------------------------------- */

/* The txn being built: ops point into tx and into keys (owned here). */
typedef struct txn_ops {
    cp_etcd_op *ops;
    size_t n, cap;
    char **owned; /* keys and range ends made for the txn */
    size_t n_owned;
} txn_ops;

static cp_etcd_op *add_op(txn_ops *t)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 32;
        t->ops = nano_xrealloc(t->ops, t->cap * sizeof *t->ops);
    }
    cp_etcd_op *op = &t->ops[t->n++];
    memset(op, 0, sizeof *op);
    return op;
}

static char *keep(txn_ops *t, char *p)
{
    t->owned = nano_xrealloc(t->owned, (t->n_owned + 1) * sizeof *t->owned);
    t->owned[t->n_owned++] = p;
    return p;
}

static void txn_ops_fini(txn_ops *t)
{
    for (size_t i = 0; i < t->n_owned; i++)
        nano_free(t->owned[i]);
    nano_free(t->owned);
    nano_free(t->ops);
}

/* A range delete of prefix, or, when the transaction also puts a key under it (etcd refuses a
 * txn whose put falls inside one of its delete ranges: "duplicate key given in txn request"),
 * one delete per key the snapshot holds there that is not written again. */
static int add_prefix_delete(cp_kvtx *tx, txn_ops *t, const char *prefix, nano_error *err)
{
    bool put_under = false;
    for (size_t i = 0; i < tx->n_writes && !put_under; i++)
        put_under = has_prefix(tx->writes[i].key, prefix);
    size_t len = strlen(prefix);
    unsigned char *end = (unsigned char *)keep(t, nano_xmalloc(len + 1));
    size_t end_len = cp_etcd_prefix_end(prefix, len, end);
    if (!put_under) {
        cp_etcd_op *op = add_op(t);
        *op = (cp_etcd_op){.type = CP_ETCD_OP_DELETE,
                           .key = prefix,
                           .key_len = len,
                           .range_end = end,
                           .range_end_len = end_len};
        return 0;
    }
    cp_etcd_range_req req = {.key = prefix,
                             .key_len = len,
                             .range_end = end,
                             .range_end_len = end_len,
                             .revision = tx->rev,
                             .keys_only = true};
    cp_etcd_result *r = NULL;
    int rc = cp_etcd_range(tx->e, &req, &r, err);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < r->n_kvs; i++) {
        if (find_write(tx, r->kvs[i].key) != NULL)
            continue;
        char *k = keep(t, nano_xstrdup(r->kvs[i].key));
        cp_etcd_op *op = add_op(t);
        *op = (cp_etcd_op){.type = CP_ETCD_OP_DELETE, .key = k, .key_len = strlen(k)};
    }
    cp_etcd_result_free(r);
    return 0;
}

/* meta with id as its transaction id, first of the recent ones; returned owned (text). */
static char *meta_with_txn(const json_t *meta_in, const char *id)
{
    json_t *meta = json_deep_copy(meta_in);
    json_t *recent = json_object_get(meta, "txns");
    json_t *next = json_array();
    json_array_append_new(next, json_string(id));
    for (size_t i = 0; i < json_array_size(recent) && i + 1 < CP_KVTX_RECENT; i++)
        json_array_append(next, json_array_get(recent, i));
    json_object_set_new(meta, "txns", next);
    char *text = json_dumps(meta, JSON_COMPACT);
    json_decref(meta);
    return text;
}

static bool meta_has_txn(json_t *meta, const char *id)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(meta, "txns"), i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), id) == 0)
            return true;
    }
    return false;
}

static void new_txn_id(char out[25])
{
    unsigned char raw[12];
    if (cp_random_bytes(raw, sizeof raw) != 0) { /* not fatal: the clock is unique enough */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(raw, &ts, sizeof raw < sizeof ts ? sizeof raw : sizeof ts);
    }
    cp_hex(raw, sizeof raw, out);
}

/* One compare-and-put of the meta key: the success branch is ops (+ the meta put). */
static int send_txn(cp_kvtx *tx, txn_ops *t, const char *meta_text, bool *succeeded,
                    nano_error *err)
{
    cp_etcd_op *op = add_op(t);
    *op = (cp_etcd_op){.type = CP_ETCD_OP_PUT,
                       .key = tx->meta_key,
                       .key_len = strlen(tx->meta_key),
                       .value = meta_text,
                       .value_len = strlen(meta_text)};
    cp_etcd_cmp cmp = {
        .key = tx->meta_key,
        .key_len = strlen(tx->meta_key),
        .target = tx->meta_mod > 0 ? CP_ETCD_CMP_MOD : CP_ETCD_CMP_VERSION,
        .op = CP_ETCD_EQUAL,
        .number = tx->meta_mod,
    };
    cp_etcd_txn_req req = {.cmps = &cmp, .n_cmps = 1, .success = t->ops, .n_success = t->n};
    cp_etcd_txn_result *res = NULL;
    int rc = cp_etcd_txn(tx->e, &req, &res, err);
    if (rc == 0)
        *succeeded = res->succeeded;
    cp_etcd_txn_result_free(res);
    t->n--; /* the meta put: the caller may send again with another value */
    return rc;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The answer to our commit was lost: decides whether it was applied (kvtx.h). */
static int resolve_unknown(cp_kvtx *tx, const char *id, nano_error *err)
{
    for (int attempt = 0; attempt < 8; attempt++) {
        json_t *meta = NULL;
        int64_t mod = 0, rev = 0;
        nano_error e = {0};
        if (read_meta(tx->e, tx->meta_key, &meta, &mod, &rev, &e) != 0) {
            sleep_ms(100L << (attempt < 4 ? attempt : 4));
            continue;
        }
        bool ours = meta_has_txn(meta, id);
        json_decref(meta);
        if (ours)
            return 0;
        if (mod != tx->meta_mod) /* another commit came first: ours compares false forever */
            return nano_error_set(err, NANO_ECONFLICT, "store_conflict",
                                  "the commit's answer was lost and another change came first");
        /* Unchanged: ours has not applied, and may still be on its way (an etcd-side timeout).
         * A fence that changes the meta key makes its compare fail if it ever arrives. */
        char fence_id[25];
        new_txn_id(fence_id);
        char *text = meta_with_txn(tx->meta, fence_id);
        txn_ops t = {0};
        bool ok = false;
        int rc = send_txn(tx, &t, text, &ok, &e);
        txn_ops_fini(&t);
        free(text);
        if (rc == 0 && ok)
            return nano_error_set(err, NANO_ECONFLICT, "store_conflict",
                                  "the commit's answer was lost; it was not applied");
    }
    return nano_error_set(err, NANO_EUNKNOWN, "etcd_outcome_unknown",
                          "the commit's answer was lost and etcd did not answer since");
}

int cp_kvtx_commit(cp_kvtx *tx, nano_error *err)
{
    if (!tx->active)
        return nano_error_set(err, NANO_ESTATE, "store_no_tx", "no transaction to commit");
    if (tx->n_writes == 0 && tx->n_del_prefixes == 0 && !tx->meta_dirty) {
        cp_kvtx_fini(tx);
        return 0;
    }
    txn_ops t = {0};
    int rc = 0;
    for (size_t i = 0; i < tx->n_del_prefixes && rc == 0; i++)
        rc = add_prefix_delete(tx, &t, tx->del_prefixes[i], err);
    for (size_t i = 0; i < tx->n_writes && rc == 0; i++) {
        const cp_kvtx_write *w = &tx->writes[i];
        cp_etcd_op *op = add_op(&t);
        *op = (cp_etcd_op){.type = w->value != NULL ? CP_ETCD_OP_PUT : CP_ETCD_OP_DELETE,
                           .key = w->key,
                           .key_len = strlen(w->key),
                           .value = w->value,
                           .value_len = w->value_len};
    }
    if (rc == 0 && t.n + 1 > CP_KVTX_MAX_OPS)
        rc = nano_error_set(err, NANO_ETOOBIG, "store_txn_too_large",
                            "one change of %zu keys is more than etcd takes in one transaction "
                            "(%d)",
                            t.n + 1, CP_KVTX_MAX_OPS);
    char id[25];
    new_txn_id(id);
    char *text = rc == 0 ? meta_with_txn(tx->meta, id) : NULL;
    bool ok = false;
    if (rc == 0)
        rc = send_txn(tx, &t, text, &ok, err);
    free(text);
    txn_ops_fini(&t);
    if (rc == 0 && !ok)
        rc = nano_error_set(err, NANO_ECONFLICT, "store_conflict",
                            "another change was committed since this one began");
    else if (rc == NANO_EUNKNOWN)
        rc = resolve_unknown(tx, id, err);
    cp_kvtx_fini(tx);
    return rc;
}
