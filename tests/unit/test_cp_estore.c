/* The etcd store itself (group estore of unit_cp; ctest runs it as unit_cp_etcd.estore): what
 * the shared groups cannot show. Two stores on one prefix interleaving transactions, a commit
 * whose answer is lost (through a proxy that drops the request or the answer), code above
 * etcd's request limit and more modules than its operations per transaction, bytes and large
 * values, snapshot reads, the schema check and the blob sweep. Against a real etcd
 * (etcd_fixture.h: skipped, saying so, without one). */
#define _GNU_SOURCE
#include "cp_fixture.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "alloc.h"
#include "app_spec.h"
#include "buf.h"
#include "etcd_fixture.h"
#include "sha256.h"
#include "store.h"

static cp_store *open_store(const char *url)
{
    cp_store *st = NULL;
    nano_error e = {0};
    if (cp_store_open(url, true, &st, &e) != 0)
        fail_msg("cp_store_open(%s): %s", url, e.message);
    return st;
}

static int64_t insert_app(cp_store *st, const char *name, const char *host)
{
    nano_app_spec spec;
    nano_app_spec_init(&spec);
    char *hosts[] = {(char *)host};
    spec.hostnames = hosts;
    spec.n_hostnames = 1;
    int64_t id = 0;
    int rc = cp_store_app_insert(st, name, &spec, &id);
    spec.hostnames = NULL;
    spec.n_hostnames = 0;
    nano_app_spec_fini(&spec);
    assert_int_equal(rc, 0);
    return id;
}

static size_t n_apps(cp_store *st)
{
    json_t *list = NULL;
    assert_int_equal(cp_store_app_list(st, &list), 0);
    size_t n = json_array_size(list);
    json_decref(list);
    return n;
}

/* cp_store_log_append with an empty payload (the store borrows it). */
static int log_append(cp_store *st, const char *op, const char *app)
{
    json_t *payload = json_object();
    int rc = cp_store_log_append(st, op, app, payload, NULL);
    json_decref(payload);
    return rc;
}

/* --- two stores on one prefix ------------------------------------------------------------------ */

static void estore_interleaved_commits_second_conflicts(void **state)
{
    (void)state;
    char url[160];
    etcd_fx_fresh_url(url, sizeof url, "e");
    cp_store *a = open_store(url), *b = open_store(url);
    int64_t seq0 = 0;
    assert_int_equal(cp_store_log_seq(a, &seq0), 0);

    assert_int_equal(cp_store_begin(a), 0);
    assert_int_equal(cp_store_begin(b), 0);
    insert_app(a, "from-a", "a.test");
    insert_app(b, "from-b", "b.test");
    assert_int_equal(log_append(b, "app.put", "from-b"), 0);
    /* each sees its own write, not the other's */
    json_t *got = NULL;
    assert_int_equal(cp_store_app_get(b, "from-a", &got), NANO_ENOTFOUND);
    assert_int_equal(cp_store_app_get(b, "from-b", &got), 0);
    json_decref(got);
    assert_int_equal(cp_store_commit(a), 0);
    assert_int_equal(cp_store_commit(b), NANO_ECONFLICT);

    /* nothing of b's applied: not its app, its hostname or its log entry */
    assert_int_equal(cp_store_app_get(a, "from-b", &got), NANO_ENOTFOUND);
    char owner[64];
    assert_int_equal(cp_store_hostname_owner(a, "b.test", "", 0, owner), NANO_ENOTFOUND);
    int64_t seq = 0;
    assert_int_equal(cp_store_log_seq(b, &seq), 0);
    assert_int_equal(seq, seq0);
    assert_int_equal(n_apps(b), 1);

    /* run again, it commits */
    assert_int_equal(cp_store_begin(b), 0);
    insert_app(b, "from-b", "b.test");
    assert_int_equal(cp_store_commit(b), 0);
    assert_int_equal(n_apps(a), 2);
    cp_store_free(a);
    cp_store_free(b);
}

typedef struct hammer {
    cp_service *svc;
    const char *var;
    int n_ok, n;
    char last_error[640];
} hammer;

static void *hammer_main(void *arg)
{
    hammer *h = arg;
    for (int i = 0; i < h->n; i++) {
        char args[160];
        snprintf(args, sizeof args, "{\"name\": \"api\", \"vars\": {\"%s\": %d}}", h->var, i);
        json_t *a = json_loads(args, 0, NULL);
        json_t *out = NULL;
        cp_error err = {0};
        if (cp_service_call(h->svc, &FX_ADMIN, "env.patch", a, &out, &err) == 0)
            h->n_ok++;
        else
            snprintf(h->last_error, sizeof h->last_error, "%s: %s", err.code, err.message);
        json_decref(out);
        json_decref(a);
    }
    return NULL;
}

/* Two replicas (two services on one prefix) changing env at once: every change is retried
 * until it commits; each lands once in the config log. */
static void estore_service_retries_a_conflicting_change(void **state)
{
    fx *f = *state;
    if (!fx_is_etcd()) { /* ctest runs the group as unit_cp_etcd.estore only */
        print_message("[  SKIP    ] etcd only: run as NANO_TEST_STORE=etcd unit_cp estore\n");
        skip();
    }
    fx_create_app(f, "api", "api.test");
    cp_service *other = NULL;
    cp_service_options o = {.data_dir = f->data, .store_url = f->store_url};
    cp_error err = {0};
    assert_int_equal(cp_service_open(&o, &other, &err), 0);
    int64_t seq0 = fx_config_seq(f);
    hammer h1 = {.svc = f->svc, .var = "ONE", .n = 15}, h2 = {.svc = other, .var = "TWO", .n = 15};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, hammer_main, &h1);
    pthread_create(&t2, NULL, hammer_main, &h2);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    if (h1.n_ok != h1.n || h2.n_ok != h2.n)
        fail_msg("%d + %d of %d changes: %s %s", h1.n_ok, h2.n_ok, h1.n + h2.n, h1.last_error,
                 h2.last_error);
    assert_int_equal(fx_config_seq(f), seq0 + h1.n + h2.n);
    json_t *env = fx_call(f, "env.get", "{\"name\": \"api\"}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(env, "vars"), "ONE")), 14);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(env, "vars"), "TWO")), 14);
    json_decref(env);
    cp_service_free(other);
}

/* --- a commit whose answer is lost --------------------------------------------------------------- */

/* A proxy in front of etcd that forwards each request on a fresh upstream connection, and for
 * the next txn (once armed) either drops the request or forwards it and drops the answer:
 * either way the client sees its connection closed after sending. */
typedef enum { PASS, DROP_REQUEST, DROP_ANSWER } proxy_mode;

typedef struct proxy {
    int fd, port, upstream_port;
    atomic_int mode;
    atomic_int n_dropped;
    atomic_bool stop;
    pthread_t thread;
} proxy;

static bool read_request(int fd, nano_buf *req)
{
    char buf[65536];
    size_t head_end = 0, want = 0;
    for (;;) {
        if (head_end == 0) {
            const char *p = memmem(req->data ? req->data : "", req->len, "\r\n\r\n", 4);
            if (p != NULL) {
                head_end = (size_t)(p - req->data) + 4;
                const char *cl = strcasestr(req->data, "content-length:");
                want = head_end + (cl != NULL && cl < p ? strtoul(cl + 15, NULL, 10) : 0);
            }
        }
        if (head_end != 0 && req->len >= want)
            return true;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return false;
        nano_buf_append(req, buf, (size_t)n);
    }
}

static void serve_client(proxy *p, int c)
{
    for (;;) {
        nano_buf req = NANO_BUF_INIT;
        if (!read_request(c, &req)) {
            nano_buf_fini(&req);
            break;
        }
        bool is_txn = strncmp(req.data, "POST /v3/kv/txn ", 16) == 0;
        int mode = is_txn ? atomic_exchange(&p->mode, PASS) : PASS;
        if (mode == DROP_REQUEST) {
            atomic_fetch_add(&p->n_dropped, 1);
            nano_buf_fini(&req);
            break;
        }
        /* upstream: one connection per request, closed by etcd after the answer */
        nano_buf up = NANO_BUF_INIT;
        const char *end = memmem(req.data, req.len, "\r\n\r\n", 4);
        nano_buf_append(&up, req.data, (size_t)(end - req.data));
        nano_buf_append_str(&up, "\r\nConnection: close\r\n\r\n");
        nano_buf_append(&up, end + 4, req.len - (size_t)(end + 4 - req.data));
        nano_buf_fini(&req);
        int u = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)p->upstream_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        nano_buf answer = NANO_BUF_INIT;
        if (connect(u, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            write(u, up.data, up.len) == (ssize_t)up.len) {
            char buf[65536];
            ssize_t n;
            while ((n = read(u, buf, sizeof buf)) > 0)
                nano_buf_append(&answer, buf, (size_t)n);
        }
        close(u);
        nano_buf_fini(&up);
        bool ok = mode != DROP_ANSWER && answer.len > 0 &&
                  write(c, answer.data, answer.len) == (ssize_t)answer.len;
        if (mode == DROP_ANSWER)
            atomic_fetch_add(&p->n_dropped, 1);
        nano_buf_fini(&answer);
        if (!ok)
            break;
        break; /* etcd said Connection: close; so does the proxy */
    }
    close(c);
}

static void *proxy_main(void *arg)
{
    proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(p->fd, NULL, NULL);
        if (c >= 0)
            serve_client(p, c);
    }
    return NULL;
}

static void proxy_start(proxy *p)
{
    const char *url = etcd_fx_url();
    p->upstream_port = atoi(strrchr(url, ':') + 1);
    p->fd = etcd_fx_loopback_socket(true, &p->port);
    pthread_create(&p->thread, NULL, proxy_main, p);
}

static void proxy_stop(proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->fd);
}

static void estore_lost_answer_resolves_both_ways(void **state)
{
    (void)state;
    char url[160], via[200];
    etcd_fx_fresh_url(url, sizeof url, "e");
    proxy p = {0};
    proxy_start(&p);
    snprintf(via, sizeof via, "etcd://127.0.0.1:%d%s", p.port, strchr(url + 7, '/'));
    cp_store *st = open_store(via);
    cp_store *direct = open_store(url);

    /* the request never reached etcd: not applied, and the commit says so (conflict) */
    assert_int_equal(cp_store_begin(st), 0);
    insert_app(st, "lost", "lost.test");
    atomic_store(&p.mode, DROP_REQUEST);
    assert_int_equal(cp_store_commit(st), NANO_ECONFLICT);
    assert_int_equal(atomic_load(&p.n_dropped), 1);
    json_t *got = NULL;
    assert_int_equal(cp_store_app_get(direct, "lost", &got), NANO_ENOTFOUND);

    /* etcd applied it but the answer was lost: the commit succeeded, once */
    assert_int_equal(cp_store_begin(st), 0);
    insert_app(st, "kept", "kept.test");
    assert_int_equal(log_append(st, "app.put", "kept"), 0);
    atomic_store(&p.mode, DROP_ANSWER);
    assert_int_equal(cp_store_commit(st), 0);
    assert_int_equal(atomic_load(&p.n_dropped), 2);
    assert_int_equal(cp_store_app_get(direct, "kept", &got), 0);
    json_decref(got);
    int64_t seq = 0;
    assert_int_equal(cp_store_log_seq(direct, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(n_apps(direct), 1);

    /* lost answer, but another replica committed right after ours: still ours (recent ids) */
    assert_int_equal(cp_store_begin(st), 0);
    insert_app(st, "mine", "mine.test");
    atomic_store(&p.mode, DROP_ANSWER);
    assert_int_equal(cp_store_commit(st), 0);
    assert_int_equal(n_apps(direct), 2);
    cp_store_free(st);
    cp_store_free(direct);
    proxy_stop(&p);
}

/* --- code, bytes, snapshots ---------------------------------------------------------------------- */

static void estore_deploy_above_request_limit_with_many_modules(void **state)
{
    fx *f = *state;
    fx_create_app(f, "big", "big.test");
    json_t *mods = json_object();
    json_object_set_new(mods, "index.js",
                        json_string("export default { fetch() { return new Response('x'); } };"));
    /* 2.5 MiB of code in one module (etcd takes 1.5 MiB per request), 200 more modules
     * (etcd takes 128 operations per transaction) */
    size_t big_len = (size_t)5 << 19;
    char *big = nano_xmalloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 23);
    memcpy(big, "//", 2);
    big[big_len] = '\0';
    json_object_set_new(mods, "lib/big.js", json_string(big));
    for (int i = 0; i < 200; i++) {
        char name[32], src[48];
        snprintf(name, sizeof name, "lib/m%03d.js", i);
        snprintf(src, sizeof src, "export const n = %d;\n", i);
        json_object_set_new(mods, name, json_string(src));
    }
    json_t *args = json_pack("{s:s, s:s, s:o}", "name", "big", "main", "index.js", "modules", mods);
    json_t *out = NULL;
    cp_error err = {0};
    if (cp_service_call(f->svc, &FX_ADMIN, "apps.deploy", args, &out, &err) != 0)
        fail_msg("apps.deploy: %s: %s", err.code, err.message);
    json_decref(args);
    assert_int_equal(json_integer_value(json_object_get(out, "version")), 1);
    assert_int_equal(json_array_size(json_object_get(out, "modules")), 202);
    json_decref(out);
    char sha[65];
    nano_sha256_hex(big, big_len, sha);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(cp_store_blob_get(cp_service_store(f->svc), sha, &data, &len), 0);
    assert_int_equal(len, big_len);
    assert_memory_equal(data, big, big_len);
    nano_free(data);
    nano_free(big);
    json_t *list = fx_call(f, "deployments.list", "{\"name\": \"big\"}");
    json_t *d = json_array_get(json_object_get(list, "deployments"), 0);
    assert_true(json_is_true(json_object_get(d, "active")));
    json_decref(list);
}

static void estore_bytes_and_large_values(void **state)
{
    (void)state;
    char url[160];
    etcd_fx_fresh_url(url, sizeof url, "e");
    cp_store *st = open_store(url);
    assert_int_equal(cp_store_begin(st), 0);
    int64_t id = insert_app(st, "bytes", "bytes.test");
    /* a module of every byte value, NULs included */
    char raw[512];
    for (size_t i = 0; i < sizeof raw; i++)
        raw[i] = (char)(i % 256);
    cp_module m = {.name = "index.js", .data = raw, .len = sizeof raw};
    nano_sha256_hex(raw, sizeof raw, m.sha256);
    int64_t dep = 0, ver = 0;
    assert_int_equal(
        cp_store_deployment_insert(st, id, m.sha256, "index.js", &m, 1, "t", &dep, &ver), 0);
    /* a 200 KiB env value, and one with an escaped NUL (read back as SQLite does: null) */
    size_t n = 200 << 10;
    char *value = nano_xmalloc(n + 3);
    value[0] = '"';
    memset(value + 1, 'v', n);
    value[n + 1] = '"';
    value[n + 2] = '\0';
    assert_int_equal(cp_store_env_put(st, id, "LARGE", value), 0);
    assert_int_equal(cp_store_env_put(st, id, "NUL", "\"a\\u0000b\""), 0);
    /* a sealed secret whose ciphertext holds NUL bytes */
    unsigned char ct[4] = {0, 1, 0, 2};
    cp_sealed s = {.ciphertext = ct, .len = sizeof ct, .key_id = "0badc0de"};
    memset(s.nonce, 0, sizeof s.nonce);
    memset(s.tag, 0xff, sizeof s.tag);
    assert_int_equal(cp_store_secret_put(st, id, "S", &s), 0);
    assert_int_equal(cp_store_commit(st), 0);

    cp_store *again = open_store(url);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(cp_store_blob_get(again, m.sha256, &data, &len), 0);
    assert_int_equal(len, sizeof raw);
    assert_memory_equal(data, raw, sizeof raw);
    nano_free(data);
    json_t *vars = NULL;
    assert_int_equal(cp_store_env_vars(again, id, &vars), 0);
    assert_int_equal(strlen(json_string_value(json_object_get(vars, "LARGE"))), n);
    assert_true(json_is_null(json_object_get(vars, "NUL")));
    json_decref(vars);
    cp_sealed back = {0};
    assert_int_equal(cp_store_secret_get(again, id, "S", &back), 0);
    assert_int_equal(back.len, sizeof ct);
    assert_memory_equal(back.ciphertext, ct, sizeof ct);
    assert_memory_equal(back.tag, s.tag, sizeof s.tag);
    assert_string_equal(back.key_id, "0badc0de");
    cp_sealed_fini(&back);
    nano_free(value);
    cp_store_free(st);
    cp_store_free(again);
}

static void estore_snapshot_reads_one_revision(void **state)
{
    (void)state;
    char url[160];
    etcd_fx_fresh_url(url, sizeof url, "e");
    cp_store *reader = open_store(url), *writer = open_store(url);
    assert_int_equal(cp_store_begin(writer), 0);
    int64_t id = insert_app(writer, "one", "one.test");
    assert_int_equal(cp_store_env_put(writer, id, "V", "1"), 0);
    assert_int_equal(cp_store_commit(writer), 0);

    assert_int_equal(cp_store_begin_read(reader), 0);
    assert_int_equal(n_apps(reader), 1);
    assert_int_equal(cp_store_begin(writer), 0);
    insert_app(writer, "two", "two.test");
    assert_int_equal(cp_store_env_put(writer, id, "V", "2"), 0);
    assert_int_equal(log_append(writer, "env.put", "one"), 0);
    assert_int_equal(cp_store_commit(writer), 0);
    /* the reader still sees the store as of its begin */
    assert_int_equal(n_apps(reader), 1);
    json_t *vars = NULL;
    assert_int_equal(cp_store_env_vars(reader, id, &vars), 0);
    assert_int_equal(json_integer_value(json_object_get(vars, "V")), 1);
    json_decref(vars);
    int64_t seq = -1;
    assert_int_equal(cp_store_log_seq(reader, &seq), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(cp_store_commit(reader), 0); /* read only: nothing to conflict with */
    assert_int_equal(n_apps(reader), 2);
    cp_store_free(reader);
    cp_store_free(writer);
}

static void estore_newer_store_and_bad_url_are_refused(void **state)
{
    (void)state;
    char url[160];
    etcd_fx_fresh_url(url, sizeof url, "e");
    cp_store *st = NULL;
    nano_error e = {0};
    /* without migrate, an empty prefix is no store */
    assert_int_equal(cp_store_open(url, false, &st, &e), NANO_ENOENT);
    st = open_store(url);
    cp_store_free(st);
    cp_etcd *raw = NULL;
    assert_int_equal(cp_etcd_open(url, NULL, &raw, NULL), 0);
    char key[200];
    snprintf(key, sizeof key, "%smeta/state", cp_etcd_prefix(raw));
    const char *meta = "{\"schema\": 999}";
    assert_int_equal(cp_etcd_put(raw, key, strlen(key), meta, strlen(meta), 0, NULL, NULL), 0);
    cp_etcd_free(raw);
    assert_int_equal(cp_store_open(url, true, &st, &e), NANO_ESTATE);
    assert_string_equal(e.id, "store_too_new");
    assert_non_null(strstr(e.message, "999"));
    assert_int_equal(cp_store_open("etcd://no port:x/p", true, &st, &e), NANO_EINVAL);
    assert_null(strchr(e.message, '\n'));
}

static void estore_blob_sweep_spares_young_and_used_code(void **state)
{
    (void)state;
    char url[160];
    etcd_fx_fresh_url(url, sizeof url, "e");
    cp_store *st = open_store(url);
    assert_int_equal(cp_store_begin(st), 0);
    int64_t id = insert_app(st, "code", "code.test");
    cp_module used = {.name = "a.js", .data = "used", .len = 4};
    nano_sha256_hex(used.data, used.len, used.sha256);
    int64_t dep = 0, ver = 0;
    assert_int_equal(
        cp_store_deployment_insert(st, id, used.sha256, "a.js", &used, 1, "t", &dep, &ver), 0);
    assert_int_equal(cp_store_commit(st), 0);
    /* a deploy that never committed leaves its code behind */
    assert_int_equal(cp_store_begin(st), 0);
    cp_module orphan = {.name = "a.js", .data = "orphan", .len = 6};
    nano_sha256_hex(orphan.data, orphan.len, orphan.sha256);
    assert_int_equal(
        cp_store_deployment_insert(st, id, orphan.sha256, "a.js", &orphan, 1, "t", &dep, &ver), 0);
    cp_store_rollback(st);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(cp_store_blob_get(st, orphan.sha256, &data, &len), 0);
    nano_free(data);
    int64_t n = -1;
    assert_int_equal(cp_store_blob_sweep(st, 3600 * 1000, &n), 0); /* too young */
    assert_int_equal(n, 0);
    assert_int_equal(cp_store_blob_sweep(st, 0, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(cp_store_blob_get(st, orphan.sha256, &data, &len), NANO_ENOTFOUND);
    assert_int_equal(cp_store_blob_get(st, used.sha256, &data, &len), 0);
    nano_free(data);
    cp_store_free(st);
}

static const struct CMUnitTest estore_tests[] = {
    cmocka_unit_test(estore_interleaved_commits_second_conflicts),
    FX_TEST(estore_service_retries_a_conflicting_change),
    cmocka_unit_test(estore_lost_answer_resolves_both_ways),
    FX_TEST(estore_deploy_above_request_limit_with_many_modules),
    cmocka_unit_test(estore_bytes_and_large_values),
    cmocka_unit_test(estore_snapshot_reads_one_revision),
    cmocka_unit_test(estore_newer_store_and_bad_url_are_refused),
    cmocka_unit_test(estore_blob_sweep_spares_young_and_used_code),
};
const unit_group unit_cp_estore = UNIT_GROUP("estore", estore_tests);
