/* migrate.c: `nanocp migrate --from SRC --to DST` (migrate.h). */
#include "migrate.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

/* A store named on the command line: its kind and, for SQLite, the path. */
typedef struct side {
    const char *what; /* "--from" or "--to" */
    const char *arg;
    const char *path; /* sqlite: the file; NULL: etcd */
} side;

static int parse_side(side *s, const char *what, const char *arg)
{
    s->what = what;
    s->arg = arg;
    s->path = NULL;
    if (strncmp(arg, "sqlite:", 7) == 0 && arg[7] != '\0') {
        s->path = arg + 7;
        return 0;
    }
    if (cp_store_url_is_etcd(arg))
        return 0;
    fprintf(stderr,
            "nanocp: %s '%s': not a store: give sqlite:PATH (a nanocp.db file) or "
            "etcd://HOST:PORT[,...][/PREFIX] (etcds:// with TLS)\n",
            what, arg);
    return -1;
}

/* The hosts and prefix of an etcd URL, "h1:2379,h2:2379" and "/nano/" (the default). */
static void etcd_parts(const char *url, char *hosts, size_t hcap, char *prefix, size_t pcap)
{
    const char *p = strstr(url, "://") + 3;
    const char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    snprintf(hosts, hcap, "%.*s", (int)n, p);
    const char *pre = slash && slash[1] ? slash : "/nano";
    size_t pl = strlen(pre);
    while (pl > 1 && pre[pl - 1] == '/')
        pl--;
    snprintf(prefix, pcap, "%.*s/", (int)pl, pre);
}

/* Whether from and to name one store: one file, or a shared endpoint with one prefix. */
static bool same_store(const side *from, const side *to)
{
    if ((from->path == NULL) != (to->path == NULL))
        return false;
    if (from->path != NULL) {
        char a[PATH_MAX], b[PATH_MAX];
        if (realpath(from->path, a) == NULL || realpath(to->path, b) == NULL)
            return strcmp(from->path, to->path) == 0;
        return strcmp(a, b) == 0;
    }
    char ha[1024], hb[1024], pa[512], pb[512];
    etcd_parts(from->arg, ha, sizeof ha, pa, sizeof pa);
    etcd_parts(to->arg, hb, sizeof hb, pb, sizeof pb);
    if (strcmp(pa, pb) != 0)
        return false;
    for (char *save = NULL, *h = strtok_r(ha, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", hb);
        for (char *s2 = NULL, *g = strtok_r(copy, ",", &s2); g; g = strtok_r(NULL, ",", &s2))
            if (strcmp(h, g) == 0)
                return true;
    }
    return false;
}

/* Opens a side: the source as it is (no migration, refused when newer than this binary or
 * not at its schema), the destination created when missing. */
static int open_side(const side *s, bool is_dest, const cp_etcd_tls *tls, cp_store **out)
{
    nano_error err = {0};
    cp_store *st = NULL;
    int rc;
    if (s->path != NULL) {
        if (!is_dest && access(s->path, F_OK) != 0) {
            fprintf(stderr, "nanocp: %s %s: %s\n", s->what, s->arg, strerror(errno));
            return -1;
        }
        rc = cp_store_open(s->path, is_dest, &st, &err);
    } else {
        rc = cp_store_open_etcd(s->arg, strncmp(s->arg, "etcds://", 8) == 0 ? tls : NULL, is_dest,
                                &st, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "nanocp: %s: %s\n", s->what, err.message);
        return -1;
    }
    if (!is_dest && s->path != NULL) { /* a migration this binary does not know, or pending */
        json_t *migs = NULL;
        size_t i;
        json_t *m;
        rc = cp_store_migrations(st, &migs);
        json_array_foreach(migs, i, m) {
            if (rc != 0)
                break;
            const char *name = json_string_value(json_object_get(m, "name"));
            if (!json_is_true(json_object_get(m, "known"))) {
                fprintf(stderr,
                        "nanocp: --from %s: the database has migration %s, newer than this nanocp "
                        "knows: run a newer nanocp\n",
                        s->arg, name ? name : "?");
                rc = -1;
            } else if (json_is_null(json_object_get(m, "applied_at"))) {
                fprintf(stderr,
                        "nanocp: --from %s: migration %s is not applied: run `nanocp migrate` on "
                        "it first\n",
                        s->arg, name ? name : "?");
                rc = -1;
            }
        }
        json_decref(migs);
        if (rc != 0) {
            cp_store_free(st);
            return -1;
        }
    }
    *out = st;
    return 0;
}

/* The counts of a dump as log fields. */
static void log_counts(const char *event, const char *which, const char *store, const json_t *dump)
{
    json_t *t = json_object_get(dump, "tables");
    long long bytes = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(t, "blobs"), i, r) {
        bytes += json_integer_value(json_object_get(r, "size"));
    }
#define N(name) json_array_size(json_object_get(t, name))
    NANO_INFO(event,
              "%s=%s apps=%zu deployments=%zu blobs=%zu blob_bytes=%lld env_vars=%zu secrets=%zu "
              "nodes=%zu drains=%zu log_entries=%zu audit_entries=%zu tokens=%zu",
              which, store, N("apps"), N("deployments"), N("blobs"), bytes, N("env_vars"),
              N("secrets"), N("nodes"), N("drains"), N("config_log"), N("audit_log"),
              N("api_tokens"));
#undef N
}

/* The first table whose rows differ between two dumps, or NULL. */
static const char *first_difference(json_t *a, json_t *b)
{
    json_t *ta = json_object_get(a, "tables"), *tb = json_object_get(b, "tables");
    const char *name;
    json_t *rows;
    json_object_foreach(ta, name, rows) {
        if (!json_equal(rows, json_object_get(tb, name)))
            return name;
    }
    return json_equal(a, b) ? NULL : "schema";
}

int cp_migrate_run(const char *from, const char *to, const cp_etcd_tls *tls)
{
    side src, dst;
    if (parse_side(&src, "--from", from) != 0 || parse_side(&dst, "--to", to) != 0)
        return 2;
    if (same_store(&src, &dst)) {
        fprintf(stderr, "nanocp: --from %s and --to %s are the same store\n", from, to);
        return 2;
    }
    cp_store *in = NULL, *out = NULL;
    json_t *dump = NULL, *check = NULL;
    nano_error err = {0};
    char counts[512];
    int code = 1;
    if (open_side(&src, false, tls, &in) != 0)
        goto done;
    NANO_INFO("cp.migrate_reading", "from=%s", from);
    int rc = cp_store_dump(in, &dump);
    if (rc != 0) {
        fprintf(stderr, "nanocp: --from %s: cannot read it: %s\n", from, cp_store_errmsg(in));
        goto done;
    }
    cp_store_dump_counts(dump, counts, sizeof counts);
    log_counts("cp.migrate_read", "from", from, dump);
    if (open_side(&dst, true, tls, &out) != 0)
        goto done;
    NANO_INFO("cp.migrate_writing", "to=%s", to);
    if (cp_store_load(out, dump, &err) != 0) {
        fprintf(stderr, "nanocp: --to %s: %s\n", to, err.message);
        goto done;
    }
    if (cp_store_dump(out, &check) != 0) {
        fprintf(stderr, "nanocp: --to %s: cannot read it back: %s\n", to, cp_store_errmsg(out));
        goto done;
    }
    const char *diff = first_difference(dump, check);
    if (diff != NULL) {
        fprintf(stderr, "nanocp: --to %s: verification failed: %s differs from the source\n", to,
                diff);
        goto done;
    }
    int64_t seq = 0;
    cp_store_log_seq(out, &seq);
    NANO_INFO("cp.migrate_verified", "to=%s config_seq=%lld", to, (long long)seq);
    log_counts("cp.migrate_done", "to", to, check);
    printf("nanocp: migrated %s to %s: %s; config seq %lld; verified (a dump of the destination "
           "equals the source's)\n",
           from, to, counts, (long long)seq);
    code = 0;
done:
    json_decref(dump);
    json_decref(check);
    cp_store_free(in);
    cp_store_free(out);
    return code;
}
