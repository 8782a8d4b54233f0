/* Unit tests for controlplane/etcd (the client of etcd's v3 JSON gateway), against a real etcd:
 * the fixture starts /usr/bin/etcd (or etcd from PATH) once per process on 127.0.0.1 with free
 * ports and a temporary data directory, and kills it at exit (and, through PR_SET_PDEATHSIG,
 * when this process dies). Without the binary ($NANO_ETCD names another) every test that needs
 * it is skipped, saying so.
 * Each test keeps to keys under its own prefix ("/t/<test>/"), so tests share one etcd
 * (etcd_fixture.c starts it).
 * Groups: url (no etcd), kv, txn, lease, failover, watch. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"
#include "etcd_fixture.h"
#include "log.h"

/* --- the etcd fixture (etcd_fixture.c) --------------------------------------------------- */

#define now_ms etcd_fx_now_ms
#define loopback_socket etcd_fx_loopback_socket
#define free_port etcd_fx_free_port
#define etcd_url etcd_fx_url

static cp_etcd *open_url(const char *url)
{
    cp_etcd *e = NULL;
    nano_error why = {0};
    if (cp_etcd_open(url, NULL, &e, &why) != 0)
        fail_msg("cp_etcd_open(%s): %s", url, why.message);
    return e;
}

static cp_etcd *connect_etcd(void)
{
    return open_url(etcd_url());
}

#define OK(call)                                                                                   \
    do {                                                                                           \
        nano_error err_ = {0};                                                                     \
        nano_error *err = &err_;                                                                   \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: %d %s: %s", #call, rc_, err_.id, err_.message);                          \
    } while (0)

static void put_s(cp_etcd *e, const char *key, const char *value, int64_t *rev)
{
    OK(cp_etcd_put(e, key, strlen(key), value, strlen(value), 0, rev, err));
}

/* key's value as a string ("" if absent: then *exists false). */
static char *get_s(cp_etcd *e, const char *key, bool *exists)
{
    cp_etcd_result *r = NULL;
    OK(cp_etcd_get(e, key, strlen(key), &r, err));
    if (exists != NULL)
        *exists = r->n_kvs == 1;
    char *v = strdup(r->n_kvs == 1 ? r->kvs[0].value : "");
    cp_etcd_result_free(r);
    return v;
}

static void assert_kv(const cp_etcd_kv *kv, const char *key, const char *value)
{
    assert_int_equal(kv->key_len, strlen(key));
    assert_memory_equal(kv->key, key, kv->key_len);
    assert_int_equal(kv->value_len, strlen(value));
    assert_memory_equal(kv->value, value, kv->value_len);
}

/* Two writes to key, then the history compacted up to the second: *r1 is gone. */
static void put_twice_and_compact(cp_etcd *e, const char *key, int64_t *r1, int64_t *r2)
{
    put_s(e, key, "1", r1);
    put_s(e, key, "2", r2);
    OK(cp_etcd_compact(e, *r2, err));
}

/* A loopback port where nothing listens: connecting is refused. */
static int dead_port(void)
{
    return free_port();
}

/* A handle on two endpoints: a dead port first, then the fixture's etcd. */
static cp_etcd *open_dead_then_live(void)
{
    const char *url = etcd_url();
    char two[160];
    snprintf(two, sizeof two, "etcd://127.0.0.1:%d,%s", dead_port(), url + strlen("etcd://"));
    return open_url(two);
}

/* --- url ------------------------------------------------------------------------------------ */

static void url_endpoints_prefix_and_defaults(void **state)
{
    (void)state;
    cp_etcd *e = open_url("etcd://127.0.0.1:2379,[::1]:2380,etcd-2/nano");
    assert_string_equal(cp_etcd_endpoint(e), "http://127.0.0.1:2379");
    assert_string_equal(cp_etcd_prefix(e), "/nano/");
    cp_etcd_free(e);
    e = open_url("etcds://etcd-1.example:2379/a/b/");
    assert_string_equal(cp_etcd_endpoint(e), "https://etcd-1.example:2379");
    assert_string_equal(cp_etcd_prefix(e), "/a/b/");
    cp_etcd_free(e);
    e = open_url("etcd://localhost");
    assert_string_equal(cp_etcd_endpoint(e), "http://localhost:2379");
    assert_string_equal(cp_etcd_prefix(e), "");
    cp_etcd_free(e);
    cp_etcd_free(NULL);
}

static void url_bad_ones_say_what_and_why(void **state)
{
    (void)state;
    static const struct {
        const char *url, *why;
    } cases[] = {
        {"http://127.0.0.1:2379", "must start with etcd:// or etcds://"},
        {"etcd://", "an empty host"},
        {"etcd://a:2379,,b:2379", "an empty host"},
        {"etcd://a:99999", "is not HOST[:PORT]"},
        {"etcd://a:0", "no valid port"},
        {"etcd://a:x", "is not HOST[:PORT]"},
        {"etcd://user@a:2379", "is not HOST[:PORT]"},
        {"etcd://a:2379/pre fix", "the key prefix may hold only"},
        {"etcd://a:2379/p?x=1", "the key prefix may hold only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cp_etcd *e = NULL;
        nano_error why = {0};
        assert_int_equal(cp_etcd_open(cases[i].url, NULL, &e, &why), NANO_EINVAL);
        assert_null(e);
        assert_string_equal(why.id, "etcd_url_invalid");
        if (strstr(why.message, cases[i].why) == NULL || strstr(why.message, cases[i].url) == NULL)
            fail_msg("%s: '%s' lacks the URL or '%s'", cases[i].url, why.message, cases[i].why);
        assert_null(strchr(why.message, '\n'));
    }
    cp_etcd *e = NULL;
    nano_error why = {0};
    cp_etcd_tls half = {.cert = "c.pem"};
    assert_int_equal(cp_etcd_open("etcds://a", &half, &e, &why), NANO_EINVAL);
    assert_string_equal(why.id, "etcd_tls_invalid");
    cp_etcd_tls ca = {.cacert = "ca.pem"};
    assert_int_equal(cp_etcd_open("etcd://a", &ca, &e, &why), NANO_EINVAL);
    assert_non_null(strstr(why.message, "use etcds://"));
}

static void url_prefix_end_increments_last_byte(void **state)
{
    (void)state;
    unsigned char out[8];
    assert_int_equal(cp_etcd_prefix_end("/a/", 3, out), 3);
    assert_memory_equal(out, "/a0", 3);
    assert_int_equal(cp_etcd_prefix_end("a\xff\xff", 3, out), 1);
    assert_memory_equal(out, "b", 1);
    assert_int_equal(cp_etcd_prefix_end("\xff", 1, out), 1);
    assert_int_equal(out[0], 0);
    assert_int_equal(cp_etcd_prefix_end("", 0, out), 1);
    assert_int_equal(out[0], 0);
}

/* --- kv ------------------------------------------------------------------------------------- */

static void kv_put_get_range_prefix(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t r1 = 0, r2 = 0;
    put_s(e, "/t/kv/a", "1", &r1);
    put_s(e, "/t/kv/b", "2", NULL);
    put_s(e, "/t/kv/c", "3", NULL);
    put_s(e, "/t/kvx", "outside", NULL);
    put_s(e, "/t/kv/a", "one", &r2);
    assert_true(r2 > r1);

    bool exists = false;
    char *v = get_s(e, "/t/kv/a", &exists);
    assert_true(exists);
    assert_string_equal(v, "one");
    free(v);
    v = get_s(e, "/t/kv/missing", &exists);
    assert_false(exists);
    free(v);

    unsigned char end[16];
    size_t end_len = cp_etcd_prefix_end("/t/kv/", 6, end);
    cp_etcd_range_req req = {
        .key = "/t/kv/", .key_len = 6, .range_end = end, .range_end_len = end_len};
    cp_etcd_result *r = NULL;
    OK(cp_etcd_range(e, &req, &r, err));
    assert_int_equal(r->n_kvs, 3);
    assert_int_equal(r->count, 3);
    assert_false(r->more);
    assert_true(r->revision >= r2);
    assert_kv(&r->kvs[0], "/t/kv/a", "one");
    assert_kv(&r->kvs[1], "/t/kv/b", "2");
    assert_kv(&r->kvs[2], "/t/kv/c", "3");
    assert_int_equal(r->kvs[0].create_revision, r1);
    assert_int_equal(r->kvs[0].mod_revision, r2);
    assert_int_equal(r->kvs[0].version, 2);
    cp_etcd_result_free(r);

    req.limit = 2; /* cut short: more, and count says how many there are */
    OK(cp_etcd_range(e, &req, &r, err));
    assert_int_equal(r->n_kvs, 2);
    assert_int_equal(r->count, 3);
    assert_true(r->more);
    cp_etcd_result_free(r);

    req.limit = 0;
    req.keys_only = true;
    OK(cp_etcd_range(e, &req, &r, err));
    assert_int_equal(r->n_kvs, 3);
    assert_int_equal(r->kvs[1].value_len, 0);
    assert_string_equal(r->kvs[1].key, "/t/kv/b");
    cp_etcd_result_free(r);

    req.keys_only = false;
    req.count_only = true;
    OK(cp_etcd_range(e, &req, &r, err));
    assert_int_equal(r->n_kvs, 0);
    assert_int_equal(r->count, 3);
    cp_etcd_result_free(r);

    /* The store as of an older revision. */
    cp_etcd_range_req old = {.key = "/t/kv/a", .key_len = 7, .revision = r1};
    OK(cp_etcd_range(e, &old, &r, err));
    assert_int_equal(r->n_kvs, 1);
    assert_kv(&r->kvs[0], "/t/kv/a", "1");
    cp_etcd_result_free(r);
    cp_etcd_free(e);
}

static void kv_binary_keys_and_large_values(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    static const char key[] = "/t/bin/\0k\xff\x01";
    size_t key_len = sizeof key - 1;
    size_t n = 1000 * 1000;
    char *value = malloc(n);
    for (size_t i = 0; i < n; i++)
        value[i] = (char)(i * 7 % 256); /* NULs and every byte value */
    int64_t rev = 0;
    OK(cp_etcd_put(e, key, key_len, value, n, 0, &rev, err));
    cp_etcd_result *r = NULL;
    OK(cp_etcd_get(e, key, key_len, &r, err));
    assert_int_equal(r->n_kvs, 1);
    assert_int_equal(r->kvs[0].key_len, key_len);
    assert_memory_equal(r->kvs[0].key, key, key_len);
    assert_int_equal(r->kvs[0].value_len, n);
    assert_memory_equal(r->kvs[0].value, value, n);
    assert_int_equal(r->kvs[0].mod_revision, rev);
    cp_etcd_result_free(r);
    /* The key without its tail is another key. */
    OK(cp_etcd_get(e, key, 8, &r, err));
    assert_int_equal(r->n_kvs, 0);
    cp_etcd_result_free(r);
    /* An empty value is a value. */
    OK(cp_etcd_put(e, "/t/bin/empty", 12, "", 0, 0, NULL, err));
    OK(cp_etcd_get(e, "/t/bin/empty", 12, &r, err));
    assert_int_equal(r->n_kvs, 1);
    assert_int_equal(r->kvs[0].value_len, 0);
    cp_etcd_result_free(r);
    free(value);
    cp_etcd_free(e);
}

static void kv_delete_one_and_range(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    put_s(e, "/t/del/a", "1", NULL);
    put_s(e, "/t/del/b", "2", NULL);
    put_s(e, "/t/del/c", "3", NULL);
    int64_t deleted = -1, rev = 0;
    OK(cp_etcd_delete(e, "/t/del/a", 8, NULL, 0, &deleted, &rev, err));
    assert_int_equal(deleted, 1);
    assert_true(rev > 0);
    OK(cp_etcd_delete(e, "/t/del/a", 8, NULL, 0, &deleted, NULL, err));
    assert_int_equal(deleted, 0);
    unsigned char end[16];
    size_t end_len = cp_etcd_prefix_end("/t/del/", 7, end);
    OK(cp_etcd_delete(e, "/t/del/", 7, end, end_len, &deleted, NULL, err));
    assert_int_equal(deleted, 2);
    bool exists = true;
    free(get_s(e, "/t/del/c", &exists));
    assert_false(exists);
    cp_etcd_free(e);
}

static void kv_compacted_and_future_revisions_are_errors(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t r1 = 0, r2 = 0;
    put_twice_and_compact(e, "/t/compact/k", &r1, &r2);
    cp_etcd_range_req req = {.key = "/t/compact/k", .key_len = 12, .revision = r1};
    cp_etcd_result *r = NULL;
    nano_error why = {0};
    assert_int_equal(cp_etcd_range(e, &req, &r, &why), NANO_ERANGE);
    assert_string_equal(why.id, "etcd_compacted");
    assert_non_null(strstr(why.message, "compacted"));
    req.revision = r2 + 1000000;
    assert_int_equal(cp_etcd_range(e, &req, &r, &why), NANO_ERANGE);
    assert_string_equal(why.id, "etcd_future_revision");
    assert_null(r);
    cp_etcd_free(e);
}

static void kv_request_over_etcds_limit_is_refused(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    /* Over --max-request-bytes (1.5 MiB): etcd refuses it; over that + 512 KiB: gRPC does. */
    static const size_t sizes[] = {1600 * 1000, 2u << 20};
    for (size_t i = 0; i < 2; i++) {
        char *value = calloc(1, sizes[i]);
        nano_error why = {0};
        assert_int_equal(cp_etcd_put(e, "/t/big/k", 8, value, sizes[i], 0, NULL, &why),
                         NANO_ETOOBIG);
        assert_string_equal(why.id, "etcd_request_too_large");
        free(value);
    }
    bool exists = true;
    free(get_s(e, "/t/big/k", &exists));
    assert_false(exists);
    cp_etcd_free(e);
}

static void kv_response_over_the_cap_is_refused(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    char value[4096];
    memset(value, 'v', sizeof value);
    OK(cp_etcd_put(e, "/t/cap/k", 8, value, sizeof value, 0, NULL, err));
    cp_etcd_set_limits(e, &(cp_etcd_limits){.max_response = 2048});
    cp_etcd_result *r = NULL;
    nano_error why = {0};
    assert_int_equal(cp_etcd_get(e, "/t/cap/k", 8, &r, &why), NANO_ETOOBIG);
    assert_string_equal(why.id, "etcd_response_too_large");
    assert_non_null(strstr(why.message, "over 2048 bytes"));
    assert_null(r);
    cp_etcd_set_limits(e, NULL); /* back to the defaults: the same read passes */
    OK(cp_etcd_get(e, "/t/cap/k", 8, &r, err));
    assert_int_equal(r->kvs[0].value_len, sizeof value);
    cp_etcd_result_free(r);
    cp_etcd_free(e);
}

/* --- txn ------------------------------------------------------------------------------------ */

static void txn_cas_on_mod_revision_takes_each_branch(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t rev = 0;
    put_s(e, "/t/txn/k", "v1", &rev);
    cp_etcd_cmp cmp = {.key = "/t/txn/k",
                       .key_len = 8,
                       .target = CP_ETCD_CMP_MOD,
                       .op = CP_ETCD_EQUAL,
                       .number = rev};
    cp_etcd_op success[] = {
        {.type = CP_ETCD_OP_PUT, .key = "/t/txn/k", .key_len = 8, .value = "v2", .value_len = 2},
        {.type = CP_ETCD_OP_PUT,
         .key = "/t/txn/other",
         .key_len = 12,
         .value = "o",
         .value_len = 1},
        {.type = CP_ETCD_OP_RANGE, .key = "/t/txn/k", .key_len = 8},
    };
    cp_etcd_op failure[] = {
        {.type = CP_ETCD_OP_RANGE, .key = "/t/txn/k", .key_len = 8},
        {.type = CP_ETCD_OP_DELETE, .key = "/t/txn/other", .key_len = 12},
    };
    cp_etcd_txn_req txn = {.cmps = &cmp,
                           .n_cmps = 1,
                           .success = success,
                           .n_success = 3,
                           .failure = failure,
                           .n_failure = 2};
    cp_etcd_txn_result *r = NULL;
    OK(cp_etcd_txn(e, &txn, &r, err));
    assert_true(r->succeeded);
    assert_int_equal(r->revision, rev + 1); /* one transaction, one revision */
    assert_int_equal(r->n_responses, 3);
    assert_int_equal(r->responses[0].type, CP_ETCD_OP_PUT);
    assert_int_equal(r->responses[2].type, CP_ETCD_OP_RANGE);
    assert_int_equal(r->responses[2].n_kvs, 1);
    assert_kv(&r->responses[2].kvs[0], "/t/txn/k", "v2");
    assert_int_equal(r->responses[2].kvs[0].mod_revision, rev + 1);
    cp_etcd_txn_result_free(r);

    /* The same compare again: the revision it read is stale now. */
    OK(cp_etcd_txn(e, &txn, &r, err));
    assert_false(r->succeeded);
    assert_int_equal(r->n_responses, 2);
    assert_int_equal(r->responses[0].type, CP_ETCD_OP_RANGE);
    assert_kv(&r->responses[0].kvs[0], "/t/txn/k", "v2");
    assert_int_equal(r->responses[1].type, CP_ETCD_OP_DELETE);
    assert_int_equal(r->responses[1].deleted, 1);
    cp_etcd_txn_result_free(r);
    bool exists = true;
    free(get_s(e, "/t/txn/other", &exists));
    assert_false(exists);
    cp_etcd_free(e);
}

/* Whether the compare holds, asked through a transaction with an empty branch each way. */
static bool holds(cp_etcd *e, cp_etcd_cmp cmp)
{
    cp_etcd_txn_req txn = {.cmps = &cmp, .n_cmps = 1};
    cp_etcd_txn_result *r = NULL;
    OK(cp_etcd_txn(e, &txn, &r, err));
    bool ok = r->succeeded;
    assert_int_equal(r->n_responses, 0);
    cp_etcd_txn_result_free(r);
    return ok;
}

static void txn_compares_value_version_create_and_lease(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t rev = 0;
    put_s(e, "/t/cmp/k", "m", &rev);
    put_s(e, "/t/cmp/k", "m", NULL);
    const char *k = "/t/cmp/k";
#define CMP(target_, op_, ...)                                                                     \
    ((cp_etcd_cmp){.key = k, .key_len = 8, .target = (target_), .op = (op_), __VA_ARGS__})
    assert_true(holds(e, CMP(CP_ETCD_CMP_VALUE, CP_ETCD_EQUAL, .value = "m", .value_len = 1)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_VALUE, CP_ETCD_NOT_EQUAL, .value = "n", .value_len = 1)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_VALUE, CP_ETCD_LESS, .value = "n", .value_len = 1)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_VALUE, CP_ETCD_GREATER, .value = "l", .value_len = 1)));
    assert_false(holds(e, CMP(CP_ETCD_CMP_VALUE, CP_ETCD_EQUAL, .value = "m\0", .value_len = 2)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_VERSION, CP_ETCD_EQUAL, .number = 2)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_VERSION, CP_ETCD_GREATER, .number = 1)));
    assert_false(holds(e, CMP(CP_ETCD_CMP_VERSION, CP_ETCD_LESS, .number = 2)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_CREATE, CP_ETCD_EQUAL, .number = rev)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_MOD, CP_ETCD_GREATER, .number = rev)));
    assert_true(holds(e, CMP(CP_ETCD_CMP_LEASE, CP_ETCD_EQUAL, .number = 0)));
    /* Create-if-absent: version 0 is a key that does not exist. */
    k = "/t/cmp/absent";
    assert_true(holds(e, (cp_etcd_cmp){.key = k,
                                       .key_len = strlen(k),
                                       .target = CP_ETCD_CMP_VERSION,
                                       .op = CP_ETCD_EQUAL}));
#undef CMP
    cp_etcd_free(e);
}

/* --- lease ---------------------------------------------------------------------------------- */

static void lease_grant_put_keepalive_revoke(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t id = 0, ttl = 0;
    OK(cp_etcd_lease_grant(e, 30, &id, &ttl, err));
    assert_true(id != 0);
    assert_int_equal(ttl, 30);
    OK(cp_etcd_put(e, "/t/lease/k", 10, "v", 1, id, NULL, err));
    cp_etcd_result *r = NULL;
    OK(cp_etcd_get(e, "/t/lease/k", 10, &r, err));
    assert_int_equal(r->kvs[0].lease, id);
    cp_etcd_result_free(r);
    ttl = 0;
    OK(cp_etcd_lease_keepalive(e, id, &ttl, err));
    assert_true(ttl > 0 && ttl <= 30);
    OK(cp_etcd_lease_revoke(e, id, err));
    bool exists = true;
    free(get_s(e, "/t/lease/k", &exists));
    assert_false(exists); /* revoking deletes what it carried */
    nano_error why = {0};
    assert_int_equal(cp_etcd_lease_keepalive(e, id, &ttl, &why), NANO_ENOTFOUND);
    assert_string_equal(why.id, "etcd_lease_not_found");
    assert_int_equal(cp_etcd_lease_revoke(e, id, &why), NANO_ENOTFOUND);
    assert_string_equal(why.id, "etcd_lease_not_found");
    /* A put on a lease that does not exist is refused. */
    assert_int_equal(cp_etcd_put(e, "/t/lease/k", 10, "v", 1, id, NULL, &why), NANO_ENOTFOUND);
    cp_etcd_free(e);
}

/* --- failover ------------------------------------------------------------------------------- */

static void failover_skips_a_dead_endpoint(void **state)
{
    (void)state;
    cp_etcd *e = open_dead_then_live();
    int64_t rev = 0;
    put_s(e, "/t/failover/k", "v", &rev); /* refused before sending: safe on the next one */
    assert_true(rev > 0);
    char live[64];
    snprintf(live, sizeof live, "http://%s", etcd_url() + strlen("etcd://"));
    assert_string_equal(cp_etcd_endpoint(e), live); /* and it stays there */
    char *v = get_s(e, "/t/failover/k", NULL);
    assert_string_equal(v, "v");
    free(v);
    cp_etcd_free(e);
}

static void failover_all_dead_is_unavailable(void **state)
{
    (void)state;
    char url[96];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d", dead_port(), dead_port());
    cp_etcd *e = open_url(url);
    nano_error why = {0};
    cp_etcd_result *r = NULL;
    assert_int_equal(cp_etcd_get(e, "k", 1, &r, &why), NANO_EIO);
    assert_string_equal(why.id, "etcd_unavailable");
    assert_non_null(strstr(why.message, "no etcd endpoint answered"));
    /* A write that never left is not "unknown": it was certainly not applied. */
    assert_int_equal(cp_etcd_put(e, "k", 1, "v", 1, 0, NULL, &why), NANO_EIO);
    assert_string_equal(why.id, "etcd_unavailable");
    cp_etcd_free(e);
}

/* A server on loopback that reads each request and closes without answering: the request
 * arrived, the answer is lost. Serves until stop is set (bounded polls). */
typedef struct mute_server {
    int fd;
    int port;
    atomic_bool stop;
    atomic_int n_requests;
    pthread_t thread;
} mute_server;

static void *mute_main(void *arg)
{
    mute_server *m = arg;
    while (!atomic_load(&m->stop)) {
        struct pollfd p = {.fd = m->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(m->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096];
        size_t got = 0;
        struct pollfd pc = {.fd = c, .events = POLLIN};
        /* Read until the head and a body have come (or 2 s pass). */
        for (int i = 0; i < 40 && poll(&pc, 1, 50) >= 0; i++) {
            ssize_t n = pc.revents != 0 ? read(c, buf, sizeof buf) : 0;
            if (n > 0)
                got += (size_t)n;
            if (n == 0 && pc.revents != 0)
                break;
            if (got > 0 && n == 0)
                break;
        }
        if (got > 0)
            atomic_fetch_add(&m->n_requests, 1);
        close(c);
    }
    return NULL;
}

static void mute_start(mute_server *m)
{
    m->fd = loopback_socket(true, &m->port);
    atomic_init(&m->stop, false);
    atomic_init(&m->n_requests, 0);
    assert_int_equal(pthread_create(&m->thread, NULL, mute_main, m), 0);
}

static void mute_stop(mute_server *m)
{
    atomic_store(&m->stop, true);
    pthread_join(m->thread, NULL);
    close(m->fd);
}

static void failover_lost_answer_to_a_write_is_unknown(void **state)
{
    (void)state;
    const char *url = etcd_url();
    mute_server m;
    mute_start(&m);
    char two[160];
    snprintf(two, sizeof two, "etcd://127.0.0.1:%d,%s", m.port, url + strlen("etcd://"));
    cp_etcd *e = open_url(two);
    nano_error why = {0};
    /* A write: not re-sent to the live endpoint, whatever happened to it. */
    assert_int_equal(cp_etcd_put(e, "/t/mute/k", 9, "v", 1, 0, NULL, &why), NANO_EUNKNOWN);
    assert_string_equal(why.id, "etcd_outcome_unknown");
    assert_non_null(strstr(why.message, "may or may not have been applied"));
    assert_int_equal(atomic_load(&m.n_requests), 1);
    bool exists = true;
    cp_etcd *direct = connect_etcd();
    free(get_s(direct, "/t/mute/k", &exists));
    assert_false(exists);
    cp_etcd_free(direct);

    cp_etcd_txn_result *tr = NULL;
    cp_etcd_op put = {
        .type = CP_ETCD_OP_PUT, .key = "/t/mute/k", .key_len = 9, .value = "v", .value_len = 1};
    cp_etcd_txn_req txn = {.success = &put, .n_success = 1};
    assert_int_equal(cp_etcd_txn(e, &txn, &tr, &why), NANO_EUNKNOWN);
    assert_int_equal(cp_etcd_delete(e, "/t/mute/k", 9, NULL, 0, NULL, NULL, &why), NANO_EUNKNOWN);
    assert_int_equal(atomic_load(&m.n_requests), 3);

    /* A read is safe to ask again: it moves on to the live endpoint. */
    char *v = get_s(e, "/t/mute/k", &exists);
    assert_false(exists);
    free(v);
    assert_int_equal(atomic_load(&m.n_requests), 4);
    cp_etcd_txn_req read_only = {
        .failure = &(cp_etcd_op){.type = CP_ETCD_OP_RANGE, .key = "/t/mute/k", .key_len = 9},
        .n_failure = 1};
    OK(cp_etcd_txn(e, &read_only, &tr, err)); /* sticks to the live endpoint now */
    cp_etcd_txn_result_free(tr);
    cp_etcd_free(e);
    mute_stop(&m);
}

static void failover_request_timeout_is_bounded(void **state)
{
    (void)state;
    /* A socket that listens but never accepts: the kernel completes the handshake and takes
     * the request, and no answer ever comes. */
    int port = 0;
    int fd = loopback_socket(true, &port);
    char url[64];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d", port);
    cp_etcd *e = open_url(url);
    cp_etcd_set_limits(e, &(cp_etcd_limits){.timeout_ms = 300});
    uint64_t t0 = now_ms();
    nano_error why = {0};
    cp_etcd_result *r = NULL;
    assert_int_equal(cp_etcd_get(e, "k", 1, &r, &why), NANO_EIO);
    assert_string_equal(why.id, "etcd_unavailable");
    assert_non_null(strstr(why.message, "imeout"));
    assert_int_equal(cp_etcd_put(e, "k", 1, "v", 1, 0, NULL, &why), NANO_EUNKNOWN);
    uint64_t took = now_ms() - t0;
    assert_true(took >= 500 && took < 3000);
    cp_etcd_free(e);
    close(fd);
}

/* --- watch ---------------------------------------------------------------------------------- */

typedef struct seen_event {
    cp_etcd_event_type type;
    char key[32];
    char value[32];
    int64_t mod_revision;
    bool has_prev;
    char prev_value[32];
} seen_event;

typedef struct watch_log {
    pthread_mutex_t mu;
    seen_event events[64];
    size_t n_events;
    size_t n_progress;
    int64_t compact_revision;
    size_t n_compacted;
    char error_id[48];
} watch_log;

static void on_watch(const cp_etcd_watch_msg *m, void *arg)
{
    watch_log *log = arg;
    pthread_mutex_lock(&log->mu);
    switch (m->kind) {
    case CP_ETCD_WATCH_EVENTS:
        for (size_t i = 0; i < m->n_events && log->n_events < 64; i++) {
            const cp_etcd_event *ev = &m->events[i];
            seen_event *s = &log->events[log->n_events++];
            s->type = ev->type;
            snprintf(s->key, sizeof s->key, "%s", ev->kv.key);
            snprintf(s->value, sizeof s->value, "%s", ev->kv.value);
            s->mod_revision = ev->kv.mod_revision;
            s->has_prev = ev->has_prev;
            if (ev->has_prev)
                snprintf(s->prev_value, sizeof s->prev_value, "%s", ev->prev_kv.value);
        }
        break;
    case CP_ETCD_WATCH_PROGRESS: log->n_progress++; break;
    case CP_ETCD_WATCH_COMPACTED:
        log->n_compacted++;
        log->compact_revision = m->compact_revision;
        snprintf(log->error_id, sizeof log->error_id, "%s", m->error->id);
        break;
    case CP_ETCD_WATCH_FAILED:
        snprintf(log->error_id, sizeof log->error_id, "%s", m->error->id);
        break;
    }
    pthread_mutex_unlock(&log->mu);
}

/* Waits (at most 10 s) until *counter, one of log's counts, reaches n; returns it. */
static size_t wait_for(watch_log *log, const size_t *counter, size_t n)
{
    uint64_t deadline = now_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&log->mu);
        size_t have = *counter;
        pthread_mutex_unlock(&log->mu);
        if (have >= n || now_ms() > deadline)
            return have;
        usleep(10 * 1000);
    }
}

static size_t wait_events(watch_log *log, size_t n)
{
    return wait_for(log, &log->n_events, n);
}

static void assert_event(const seen_event *s, cp_etcd_event_type type, const char *key,
                         const char *value, int64_t rev)
{
    assert_int_equal(s->type, type);
    assert_string_equal(s->key, key);
    assert_string_equal(s->value, value);
    assert_int_equal(s->mod_revision, rev);
}

static void watch_sees_puts_and_deletes_in_order(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t r1 = 0, r2 = 0, r3 = 0, r4 = 0;
    put_s(e, "/t/watch/a", "1", &r1); /* before the watch: seen from the start revision */
    watch_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    unsigned char end[16];
    size_t end_len = cp_etcd_prefix_end("/t/watch/", 9, end);
    cp_etcd_watch_req req = {.key = "/t/watch/",
                             .key_len = 9,
                             .range_end = end,
                             .range_end_len = end_len,
                             .start_revision = r1,
                             .prev_kv = true};
    cp_etcd_watch *w = NULL;
    OK(cp_etcd_watch_start(e, &req, on_watch, &log, &w, err));
    put_s(e, "/t/watch/b", "2", &r2);
    put_s(e, "/t/other", "not watched", NULL);
    put_s(e, "/t/watch/a", "3", &r3);
    OK(cp_etcd_delete(e, "/t/watch/a", 10, NULL, 0, NULL, &r4, err));
    assert_int_equal(wait_events(&log, 4), 4);
    cp_etcd_watch_stop(w);
    assert_int_equal(log.n_events, 4);
    assert_event(&log.events[0], CP_ETCD_EVENT_PUT, "/t/watch/a", "1", r1);
    assert_false(log.events[0].has_prev);
    assert_event(&log.events[1], CP_ETCD_EVENT_PUT, "/t/watch/b", "2", r2);
    assert_event(&log.events[2], CP_ETCD_EVENT_PUT, "/t/watch/a", "3", r3);
    assert_true(log.events[2].has_prev);
    assert_string_equal(log.events[2].prev_value, "1");
    assert_event(&log.events[3], CP_ETCD_EVENT_DELETE, "/t/watch/a", "", r4);
    assert_string_equal(log.events[3].prev_value, "3");
    cp_etcd_free(e);
}

static void watch_reports_progress(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd(); /* the fixture's etcd sends progress every 300 ms */
    int64_t rev = 0;
    put_s(e, "/t/progress/k", "v", &rev);
    watch_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cp_etcd_watch_req req = {.key = "/t/progress/k", .key_len = 13, .progress_notify = true};
    cp_etcd_watch *w = NULL;
    OK(cp_etcd_watch_start(e, &req, on_watch, &log, &w, err));
    assert_true(wait_for(&log, &log.n_progress, 1) > 0);
    assert_true(cp_etcd_watch_revision(w) >= rev);
    cp_etcd_watch_stop(w);
    cp_etcd_free(e);
}

static void watch_reports_compaction(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    int64_t r1 = 0, r2 = 0;
    put_twice_and_compact(e, "/t/wcompact/k", &r1, &r2);
    watch_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cp_etcd_watch_req req = {.key = "/t/wcompact/k", .key_len = 13, .start_revision = r1};
    cp_etcd_watch *w = NULL;
    OK(cp_etcd_watch_start(e, &req, on_watch, &log, &w, err));
    wait_for(&log, &log.n_compacted, 1);
    usleep(200 * 1000); /* no reconnect after a compaction: one notice, no events */
    cp_etcd_watch_stop(w);
    assert_int_equal(log.n_compacted, 1);
    assert_int_equal(log.compact_revision, r2);
    assert_string_equal(log.error_id, "etcd_compacted");
    assert_int_equal(log.n_events, 0);
    cp_etcd_free(e);
}

static void watch_fails_over_and_resumes_without_duplicates(void **state)
{
    (void)state;
    cp_etcd *e = open_dead_then_live();
    cp_etcd *direct = connect_etcd();
    int64_t r0 = 0;
    put_s(direct, "/t/wfail/k", "0", &r0);
    watch_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    /* idle_timeout_ms: with no progress asked for, each stream breaks after 150 ms quiet and
     * the watch reconnects (the dead endpoint first, then the live one) from where it was. */
    cp_etcd_watch_req req = {
        .key = "/t/wfail/k", .key_len = 10, .start_revision = r0, .idle_timeout_ms = 150};
    cp_etcd_watch *w = NULL;
    OK(cp_etcd_watch_start(e, &req, on_watch, &log, &w, err));
    cp_etcd_free(e); /* the watch keeps its own copy */
    char v[8];
    for (int i = 1; i <= 5; i++) {
        usleep(200 * 1000);
        snprintf(v, sizeof v, "%d", i);
        put_s(direct, "/t/wfail/k", v, NULL);
    }
    assert_int_equal(wait_events(&log, 6), 6);
    usleep(400 * 1000); /* a reconnect that resent old events would show up here */
    cp_etcd_watch_stop(w);
    assert_int_equal(log.n_events, 6);
    for (size_t i = 0; i < 6; i++) {
        snprintf(v, sizeof v, "%zu", i);
        assert_string_equal(log.events[i].value, v);
        assert_int_equal(log.events[i].mod_revision, r0 + (int64_t)i);
    }
    cp_etcd_free(direct);
}

static void watch_stops_promptly(void **state)
{
    (void)state;
    cp_etcd *e = connect_etcd();
    watch_log log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cp_etcd_watch_req req = {.key = "/t/wstop/k", .key_len = 10};
    cp_etcd_watch *w = NULL;
    OK(cp_etcd_watch_start(e, &req, on_watch, &log, &w, err));
    usleep(300 * 1000); /* connected, idle in poll */
    uint64_t t0 = now_ms();
    cp_etcd_watch_stop(w);
    assert_true(now_ms() - t0 < 200);
    /* Also while every endpoint is failing (backing off between attempts). */
    char url[64];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d", dead_port());
    cp_etcd *dead = open_url(url);
    OK(cp_etcd_watch_start(dead, &req, on_watch, &log, &w, err));
    usleep(500 * 1000);
    t0 = now_ms();
    cp_etcd_watch_stop(w);
    assert_true(now_ms() - t0 < 200);
    cp_etcd_watch_stop(NULL);
    cp_etcd_free(dead);
    cp_etcd_free(e);
}

int main(int argc, char **argv)
{
    nano_log_min_level = NANO_LOG_ERROR; /* the failover tests warn by design */
    const struct CMUnitTest url[] = {
        cmocka_unit_test(url_endpoints_prefix_and_defaults),
        cmocka_unit_test(url_bad_ones_say_what_and_why),
        cmocka_unit_test(url_prefix_end_increments_last_byte),
    };
    const struct CMUnitTest kv[] = {
        cmocka_unit_test(kv_put_get_range_prefix),
        cmocka_unit_test(kv_binary_keys_and_large_values),
        cmocka_unit_test(kv_delete_one_and_range),
        cmocka_unit_test(kv_compacted_and_future_revisions_are_errors),
        cmocka_unit_test(kv_request_over_etcds_limit_is_refused),
        cmocka_unit_test(kv_response_over_the_cap_is_refused),
    };
    const struct CMUnitTest txn[] = {
        cmocka_unit_test(txn_cas_on_mod_revision_takes_each_branch),
        cmocka_unit_test(txn_compares_value_version_create_and_lease),
    };
    const struct CMUnitTest lease[] = {
        cmocka_unit_test(lease_grant_put_keepalive_revoke),
    };
    const struct CMUnitTest failover[] = {
        cmocka_unit_test(failover_skips_a_dead_endpoint),
        cmocka_unit_test(failover_all_dead_is_unavailable),
        cmocka_unit_test(failover_lost_answer_to_a_write_is_unknown),
        cmocka_unit_test(failover_request_timeout_is_bounded),
    };
    const struct CMUnitTest watch[] = {
        cmocka_unit_test(watch_sees_puts_and_deletes_in_order),
        cmocka_unit_test(watch_reports_progress),
        cmocka_unit_test(watch_reports_compaction),
        cmocka_unit_test(watch_fails_over_and_resumes_without_duplicates),
        cmocka_unit_test(watch_stops_promptly),
    };
    const unit_group groups[] = {
        UNIT_GROUP("url", url),           UNIT_GROUP("kv", kv),
        UNIT_GROUP("txn", txn),           UNIT_GROUP("lease", lease),
        UNIT_GROUP("failover", failover), UNIT_GROUP("watch", watch),
    };
    int rc = unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
    if (rc == 0 && etcd_fx_missing() != NULL) { /* ctest shows it as skipped (SKIP_RETURN_CODE) */
        fprintf(stderr, "unit_etcd: skipped: %s\n", etcd_fx_missing());
        return 77;
    }
    return rc;
}
