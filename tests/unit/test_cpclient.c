/* Unit tests for nano-dp's control-plane client logic without sockets: the delta verdicts,
 * the app model (snapshot, ops applied to a copy, bad ops refused with nothing changed), the
 * nano_config built from it, and the content-addressed code cache. Module bytes and secret
 * values come from in-memory tables standing in for code.get and secrets.get. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "alloc.h"
#include "control/code_cache.h"
#include "control/cp_client.h"
#include "control/cp_model.h"
#include "msg.h"
#include "options.h"

/* --- fixtures: a fake nanocp's code and secrets ----------------------------------------------- */

typedef struct fake_cp {
    json_t *code;    /* sha -> bytes */
    json_t *secrets; /* app -> {NAME: value} */
    int code_calls, secrets_calls;
    bool fail_secrets;
    bool corrupt_code; /* answer code.get with other bytes */
} fake_cp;

static void sha_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int fake_code_get(void *ud, const char *sha, char **data, size_t *len, nano_error *err)
{
    fake_cp *f = ud;
    f->code_calls++;
    const char *text = json_string_value(json_object_get(f->code, sha));
    if (text == NULL)
        return nano_error_set(err, NANO_ENOTFOUND, "code_not_found", "no module %.12s", sha);
    if (f->corrupt_code)
        text = "export default {}; // not what was announced";
    *len = strlen(text);
    *data = nano_xstrdup(text);
    return 0;
}

static int fake_secrets_get(void *ud, const char *app, json_t **out, nano_error *err)
{
    fake_cp *f = ud;
    f->secrets_calls++;
    if (f->fail_secrets)
        return nano_error_set(err, NANO_EIO, "cp_unreachable", "secrets.get: timed out");
    json_t *s = json_object_get(f->secrets, app);
    *out = s != NULL ? json_incref(s) : json_object();
    return 0;
}

typedef struct fx {
    fake_cp cp;
    dp_cp_fetcher fetch;
    dp_code_cache cache;
    char dir[256];
} fx;

/* Registers a module with the fake nanocp; returns its {name, size, sha256}. */
static json_t *module(fx *x, const char *name, const char *text)
{
    char sha[65];
    sha_hex(text, strlen(text), sha);
    json_object_set_new(x->cp.code, sha, json_string(text));
    return json_pack("{s:s, s:I, s:s}", "name", name, "size", (json_int_t)strlen(text), "sha256",
                     sha);
}

static int setup(void **state)
{
    fx *x = nano_xcalloc(1, sizeof *x);
    x->cp.code = json_object();
    x->cp.secrets = json_object();
    x->fetch = (dp_cp_fetcher){fake_code_get, fake_secrets_get, &x->cp};
    const char *tmp = getenv("TMPDIR");
    snprintf(x->dir, sizeof x->dir, "%s/test_cpclient.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(x->dir));
    nano_error err = {0};
    assert_int_equal(dp_code_cache_init(&x->cache, x->dir, &err), 0);
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    fx *x = *state;
    dp_code_cache_fini(&x->cache);
    dp_remove_tree(x->dir);
    json_decref(x->cp.code);
    json_decref(x->cp.secrets);
    nano_free(x);
    return 0;
}

/* A SNAPAPP with one deployment of the given modules (main first). */
static json_t *snapapp(const char *name, const char *host, json_t *modules)
{
    json_t *a = json_pack("{s:s, s:[s], s:n, s:b, s:b, s:[], s:{}, s:s, s:i, s:n, s:n, s:[], "
                          "s:{}, s:{}}",
                          "app", name, "hostnames", host, "path_prefix", "default", 0,
                          "node_compat", 0, "required_env", "limits", "state", "active", "version",
                          0, "sha256", "main", "modules", "vars", "secrets");
    if (modules != NULL) {
        char sha[65];
        nano_error err = {0};
        assert_int_equal(dp_code_cache_bundle_sha256(modules, sha, &err), 0);
        json_object_set_new(a, "version", json_integer(1));
        json_object_set_new(a, "sha256", json_string(sha));
        json_object_set(a, "main", json_object_get(json_array_get(modules, 0), "name"));
        json_object_set_new(a, "modules", modules);
    }
    return a;
}

static json_t *snapshot(uint64_t seq, json_t *apps)
{
    return json_pack("{s:i, s:b, s:I, s:o}", "v", 1, "ok", 1, "seq", (json_int_t)seq, "apps", apps);
}

/* Loads a snapshot body into m (checked to succeed). */
static void load(fx *x, dp_cp_model *m, json_t *body)
{
    (void)x;
    dp_cp_changes ch = {0};
    nano_error err = {0};
    int rc = dp_cp_model_from_snapshot(body, NULL, NULL, m, &ch, &err);
    if (rc != 0)
        fail_msg("snapshot: %s", err.message);
    dp_cp_changes_fini(&ch);
    json_decref(body);
}

static nano_config *build(fx *x, const dp_cp_model *m)
{
    nano_config *cfg = NULL;
    nano_error err = {0};
    int rc = dp_cp_model_build(m, &x->cache, &x->fetch, &cfg, &err);
    if (rc != 0)
        fail_msg("build: %s", err.message);
    return cfg;
}

static const nano_env_entry *env_of(const nano_config *cfg, const char *app, const char *name)
{
    const nano_app_config *a = nano_config_find(cfg, app, NULL);
    assert_non_null(a);
    return nano_env_find(&a->env, name);
}

/* --- verdicts ---------------------------------------------------------------------------------- */

static void test_verdict_next_applies(void **state)
{
    (void)state;
    assert_int_equal(dp_cp_delta_verdict(4, 5, 5), DP_CP_APPLY);
    assert_int_equal(dp_cp_delta_verdict(4, 5, 9), DP_CP_APPLY);
    assert_int_equal(dp_cp_delta_verdict(0, 1, 1), DP_CP_APPLY);
}

static void test_verdict_old_is_duplicate(void **state)
{
    (void)state;
    assert_int_equal(dp_cp_delta_verdict(4, 4, 4), DP_CP_DUPLICATE);
    assert_int_equal(dp_cp_delta_verdict(9, 2, 5), DP_CP_DUPLICATE);
}

static void test_verdict_skipped_entry_is_gap(void **state)
{
    (void)state;
    assert_int_equal(dp_cp_delta_verdict(4, 6, 6), DP_CP_GAP);
    assert_int_equal(dp_cp_delta_verdict(0, 2, 3), DP_CP_GAP);
}

static void test_verdict_overlap_applies_the_rest(void **state)
{
    (void)state;
    assert_int_equal(dp_cp_delta_verdict(5, 4, 7), DP_CP_APPLY);
}

/* --- model ------------------------------------------------------------------------------------- */

static void test_model_snapshot_builds_served_apps_only(void **state)
{
    fx *x = *state;
    json_t *b_mods = json_pack("[o]", module(x, "index.js", "export default {fetch(){}}"));
    json_t *c_mods = json_pack("[o]", module(x, "index.js", "export default {fetch(){return 1}}"));
    json_t *apps = json_pack("[o, o, o, o]", snapapp("a", "a.test", NULL),
                             snapapp("b", "b.test", b_mods), snapapp("c", "c.test", c_mods),
                             snapapp("d", "d.test", json_pack("[o]", module(x, "m.js", "1"))));
    json_t *c = json_array_get(apps, 2);
    json_object_set_new(c, "state", json_string("draining"));
    json_object_set_new(c, "drain_timeout_ms", json_integer(3000));
    dp_cp_model m = {0};
    load(x, &m, snapshot(12, apps));
    assert_int_equal(m.seq, 12);
    nano_config *cfg = build(x, &m);
    assert_int_equal(nano_config_version(cfg), 12);
    /* a: no deployment; c: draining. b and d serve. */
    assert_int_equal(nano_config_n_apps(cfg), 2);
    assert_null(nano_config_find(cfg, "a", NULL));
    assert_null(nano_config_find(cfg, "c", NULL));
    const nano_app_config *b = nano_config_find(cfg, "b", NULL);
    assert_non_null(b);
    assert_string_equal(b->code, "export default {fetch(){}}");
    char want[512];
    snprintf(want, sizeof want, "%s/%s/index.js", x->cache.dir, b->code_sha256);
    assert_string_equal(b->main_path, want);
    struct stat st;
    assert_int_equal(stat(want, &st), 0);
    assert_true(nano_config_route(cfg, "b.test", 6, "/", 1) >= 0);
    nano_config_unref(cfg);
    dp_cp_model_fini(&m);
}

static void test_model_snapshot_draining_app_is_a_drain(void **state)
{
    (void)state;
    json_t *apps = json_pack("[o]", snapapp("c", "c.test", NULL));
    json_object_set_new(json_array_get(apps, 0), "state", json_string("draining"));
    json_object_set_new(json_array_get(apps, 0), "drain_timeout_ms", json_integer(3000));
    json_t *body = snapshot(3, apps);
    dp_cp_model m = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_equal(dp_cp_model_from_snapshot(body, NULL, NULL, &m, &ch, &err), 0);
    assert_int_equal(ch.n_drains, 1);
    assert_string_equal(ch.drains[0].app, "c");
    assert_int_equal(ch.drains[0].timeout_ms, 3000);
    assert_false(ch.drains[0].was_running); /* nothing runs: ack at once */
    dp_cp_changes_fini(&ch);
    dp_cp_model_fini(&m);
    json_decref(body);
}

static void test_model_env_put_changes_copy_not_current(void **state)
{
    fx *x = *state;
    json_t *mods = json_pack("[o]", module(x, "index.js", "export default {}"));
    dp_cp_model m = {0};
    load(x, &m, snapshot(7, json_pack("[o]", snapapp("api", "api.test", mods))));
    nano_config *before = build(x, &m);
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s, s:{s:b}}]", "seq", 8,
                            "op", "env.put", "app", "api", "name", "GREETING", "value", "hola",
                            "seq", 9, "op", "env.put", "app", "api", "name", "FLAGS", "value",
                            "beta", 1);
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_equal(dp_cp_model_apply(&m, ops, &x->fetch, before, &next, &ch, &err), 0);
    assert_int_equal(next.seq, 9);
    assert_int_equal(ch.n_ops, 2);
    /* The current model did not move. */
    assert_int_equal(m.seq, 7);
    assert_int_equal(json_object_size(json_object_get(json_object_get(m.apps, "api"), "vars")), 0);
    nano_config *after = build(x, &next);
    const nano_env_entry *g = env_of(after, "api", "GREETING");
    assert_non_null(g);
    assert_string_equal(g->value, "hola");
    assert_false(g->is_json);
    const nano_env_entry *f = env_of(after, "api", "FLAGS");
    assert_non_null(f);
    assert_true(f->is_json);
    assert_string_equal(f->value, "{\"beta\":true}");
    /* Same code: the workers keep the isolate (same sha and main path). */
    assert_true(nano_app_config_same_code(nano_config_find(before, "api", NULL),
                                          nano_config_find(after, "api", NULL)));
    assert_int_equal(x->cp.code_calls, 1); /* fetched once, for the snapshot */
    nano_config_unref(before);
    nano_config_unref(after);
    json_decref(ops);
    dp_cp_changes_fini(&ch);
    dp_cp_model_fini(&next);
    dp_cp_model_fini(&m);
}

/* An app nanocp withholds from a snapshot: a node that runs it keeps serving it, a node that
 * does not gets none of it, and an op on it is refused (the caller resyncs) until a snapshot
 * carries it again. */
static void test_model_withheld_app_is_kept_and_its_ops_wait(void **state)
{
    fx *x = *state;
    json_t *mods = json_pack("[o]", module(x, "index.js", "export default {}"));
    dp_cp_model m = {0};
    load(x, &m,
         snapshot(7, json_pack("[o, o]", snapapp("api", "api.test", mods),
                               snapapp("b", "b.test", NULL))));
    json_t *withheld = json_pack("{s:s, s:s}", "app", "api", "withheld", "vars.X: bad");
    nano_error err = {0};
    assert_int_equal(nano_msg_check_snapapp(withheld, &err), 0);
    json_t *body = snapshot(9, json_pack("[O, o]", withheld, snapapp("b", "b.test", NULL)));
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    assert_int_equal(dp_cp_model_from_snapshot(body, &m, NULL, &next, &ch, &err), 0);
    dp_cp_changes_fini(&ch);
    assert_int_equal(next.seq, 9);
    nano_config *cfg = build(x, &next);
    assert_non_null(nano_config_find(cfg, "api", NULL)); /* still served */
    nano_config_unref(cfg);
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s, s:s}]", "seq", 10, "op", "env.put", "app", "api",
                            "name", "G", "value", "x");
    dp_cp_model after = {0};
    assert_int_not_equal(dp_cp_model_apply(&next, ops, &x->fetch, NULL, &after, &ch, &err), 0);
    assert_string_equal(err.id, "app_withheld");
    assert_int_equal(next.seq, 9);
    json_decref(ops);
    dp_cp_changes_fini(&ch);
    /* a node that never ran it: nothing of it */
    dp_cp_model fresh = {0};
    assert_int_equal(dp_cp_model_from_snapshot(body, NULL, NULL, &fresh, &ch, &err), 0);
    assert_null(json_object_get(fresh.apps, "api"));
    assert_non_null(json_object_get(fresh.apps, "b"));
    dp_cp_changes_fini(&ch);
    /* the withheld form takes nothing else */
    json_object_set_new(withheld, "hostnames", json_array());
    assert_int_not_equal(nano_msg_check_snapapp(withheld, &err), 0);
    json_decref(withheld);
    json_decref(body);
    dp_cp_model_fini(&fresh);
    dp_cp_model_fini(&next);
    dp_cp_model_fini(&m);
}

/* One module's bundle sha256 is that module's own, whatever its name: two apps deploying the
 * same bytes as index.js and main.js share a cache directory, and each must find its file. */
static void test_model_same_bytes_under_two_names_both_serve(void **state)
{
    fx *x = *state;
    const char *src = "export default {fetch(){return new Response('same')}}";
    json_t *apps = json_pack("[o, o]",
                             snapapp("a", "a.test", json_pack("[o]", module(x, "index.js", src))),
                             snapapp("b", "b.test", json_pack("[o]", module(x, "main.js", src))));
    dp_cp_model m = {0};
    load(x, &m, snapshot(3, apps));
    nano_config *cfg = build(x, &m);
    const nano_app_config *a = nano_config_find(cfg, "a", NULL);
    const nano_app_config *b = nano_config_find(cfg, "b", NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a->code_sha256, b->code_sha256);
    struct stat st;
    assert_int_equal(stat(a->main_path, &st), 0);
    assert_int_equal(stat(b->main_path, &st), 0);
    assert_string_equal(b->code, src);
    nano_config_unref(cfg);
    dp_cp_model_fini(&m);
}

static void test_model_op_for_unknown_app_rejected_without_change(void **state)
{
    fx *x = *state;
    dp_cp_model m = {0};
    load(x, &m, snapshot(7, json_pack("[o]", snapapp("api", "api.test", NULL))));
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s, s:s}]", "seq", 8,
                            "op", "env.put", "app", "api", "name", "A", "value", "1", "seq", 9,
                            "op", "env.put", "app", "ghost", "name", "B", "value", "2");
    dp_cp_model next = {.seq = 12345};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_not_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    assert_string_equal(err.id, "op_invalid");
    assert_non_null(strstr(err.message, "ghost"));
    assert_int_equal(next.seq, 12345); /* untouched */
    assert_int_equal(m.seq, 7);
    /* The first op of the refused delta did not leak into the current model. */
    assert_null(json_object_get(json_object_get(json_object_get(m.apps, "api"), "vars"), "A"));
    json_decref(ops);
    dp_cp_model_fini(&m);
}

static void test_model_nonconsecutive_ops_rejected(void **state)
{
    fx *x = *state;
    dp_cp_model m = {0};
    load(x, &m, snapshot(7, json_pack("[o]", snapapp("api", "api.test", NULL))));
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s}]", "seq", 9, "op", "env.del", "app", "api",
                            "name", "A");
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_not_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    assert_non_null(strstr(err.message, "not consecutive"));
    json_decref(ops);
    dp_cp_model_fini(&m);
}

static void test_model_overlap_applies_only_new_ops(void **state)
{
    fx *x = *state;
    dp_cp_model m = {0};
    load(x, &m, snapshot(8, json_pack("[o]", snapapp("api", "api.test", NULL))));
    /* seq 8 is already in the snapshot: its env.put (which would fail: no app "old") is skipped. */
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s, s:s}, {s:i, s:s, s:s, s:s, s:s}]", "seq", 8,
                            "op", "env.put", "app", "old", "name", "A", "value", "1", "seq", 9,
                            "op", "env.put", "app", "api", "name", "B", "value", "2");
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    assert_int_equal(ch.n_ops, 1);
    assert_int_equal(next.seq, 9);
    json_decref(ops);
    dp_cp_changes_fini(&ch);
    dp_cp_model_fini(&next);
    dp_cp_model_fini(&m);
}

static void test_model_secret_put_fetches_value(void **state)
{
    fx *x = *state;
    json_t *mods = json_pack("[o]", module(x, "index.js", "export default {}"));
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", snapapp("api", "api.test", mods))));
    json_object_set_new(x->cp.secrets, "api",
                        json_pack("{s:s, s:s}", "KEY", "s3cret", "OTHER", "not-announced"));
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s}]", "seq", 2, "op", "secret.put", "app", "api",
                            "name", "KEY");
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    assert_int_equal(x->cp.secrets_calls, 1);
    nano_config *cfg = build(x, &next);
    const nano_env_entry *e = env_of(cfg, "api", "KEY");
    assert_non_null(e);
    assert_true(e->is_secret);
    assert_string_equal(e->value, "s3cret");
    assert_null(env_of(cfg, "api", "OTHER")); /* only the names the delta put */
    nano_config_unref(cfg);
    json_decref(ops);
    dp_cp_changes_fini(&ch);
    dp_cp_model_fini(&next);
    dp_cp_model_fini(&m);
}

static void test_model_secret_fetch_failure_changes_nothing(void **state)
{
    fx *x = *state;
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", snapapp("api", "api.test", NULL))));
    x->cp.fail_secrets = true;
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:s}]", "seq", 2, "op", "secret.put", "app", "api",
                            "name", "KEY");
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_not_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    assert_string_equal(err.id, "cp_unreachable");
    assert_int_equal(m.seq, 1);
    assert_null(next.apps);
    json_decref(ops);
    dp_cp_model_fini(&m);
}

static void test_model_deploy_then_drain_and_remove(void **state)
{
    fx *x = *state;
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_array()));
    json_t *mods = json_pack("[o, o]",
                             module(x, "index.js", "import './lib/u.js'; export default {}"),
                             module(x, "lib/u.js", "export const u = 1;"));
    char sha[65];
    nano_error err = {0};
    assert_int_equal(dp_code_cache_bundle_sha256(mods, sha, &err), 0);
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:[s], s:n, s:b, s:b, s:[], s:{}, s:s, s:i, s:n},"
                            " {s:i, s:s, s:s, s:i, s:s, s:s, s:O},"
                            " {s:i, s:s, s:s, s:[s], s:n, s:b, s:b, s:[], s:{}, s:s, s:i, s:s}]",
                            "seq", 2, "op", "app.put", "app", "web", "hostnames", "web.test",
                            "path_prefix", "default", 0, "node_compat", 0, "required_env", "limits",
                            "state", "active", "version", 0, "sha256", /* created */
                            "seq", 3, "op", "code.put", "app", "web", "version", 1, "sha256", sha,
                            "main", "index.js", "modules", mods, /* deployed */
                            "seq", 4, "op", "app.put", "app", "web", "hostnames", "web.test",
                            "path_prefix", "default", 0, "node_compat", 0, "required_env", "limits",
                            "state", "active", "version", 1, "sha256", sha);
    json_decref(mods); /* ops holds it ("O") */
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    assert_int_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    dp_cp_model_swap(&m, &next);
    dp_cp_changes_fini(&ch);
    nano_config *cfg = build(x, &m);
    assert_int_equal(nano_config_n_apps(cfg), 1);
    char lib[512];
    snprintf(lib, sizeof lib, "%s/%s/lib/u.js", x->cache.dir, sha);
    struct stat st;
    assert_int_equal(stat(lib, &st), 0); /* relative imports find their module beside main */
    assert_int_equal(x->cp.code_calls, 2);

    /* app.drain: out of the config, and a drain to run (it ran here). */
    json_t *drain = json_pack("[{s:i, s:s, s:s, s:i}]", "seq", 5, "op", "app.drain", "app", "web",
                              "timeout_ms", 2000);
    assert_int_equal(dp_cp_model_apply(&m, drain, &x->fetch, cfg, &next, &ch, &err), 0);
    assert_int_equal(ch.n_drains, 1);
    assert_true(ch.drains[0].was_running);
    assert_int_equal(ch.drains[0].timeout_ms, 2000);
    dp_cp_model_swap(&m, &next);
    dp_cp_changes_fini(&ch);
    nano_config *drained = build(x, &m);
    assert_int_equal(nano_config_n_apps(drained), 0);

    /* app.drain of an app this node never ran: ack at once. */
    json_t *other = json_pack("[{s:i, s:s, s:s, s:i}]", "seq", 6, "op", "app.drain", "app", "never",
                              "timeout_ms", 2000);
    assert_int_equal(dp_cp_model_apply(&m, other, &x->fetch, drained, &next, &ch, &err), 0);
    assert_false(ch.drains[0].was_running);
    dp_cp_model_swap(&m, &next);
    dp_cp_changes_fini(&ch);

    json_t *rm = json_pack("[{s:i, s:s, s:s}]", "seq", 7, "op", "app.remove", "app", "web");
    assert_int_equal(dp_cp_model_apply(&m, rm, &x->fetch, drained, &next, &ch, &err), 0);
    assert_int_equal(ch.n_removed, 1);
    assert_null(json_object_get(next.apps, "web"));
    dp_cp_changes_fini(&ch);
    dp_cp_model_fini(&next);
    nano_config_unref(cfg);
    nano_config_unref(drained);
    json_decref(ops);
    json_decref(drain);
    json_decref(other);
    json_decref(rm);
    dp_cp_model_fini(&m);
}

static void test_model_app_put_with_unannounced_code_rejected(void **state)
{
    fx *x = *state;
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", snapapp("api", "api.test", NULL))));
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:[s], s:n, s:b, s:b, s:[], s:{}, s:s, s:i, s:s}]",
                            "seq", 2, "op", "app.put", "app", "api", "hostnames", "api.test",
                            "path_prefix", "default", 0, "node_compat", 0, "required_env", "limits",
                            "state", "active", "version", 3, "sha256",
                            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_not_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    assert_non_null(strstr(err.message, "never announced"));
    json_decref(ops);
    dp_cp_model_fini(&m);
}

static void test_model_bad_limits_fail_build(void **state)
{
    fx *x = *state;
    json_t *mods = json_pack("[o]", module(x, "index.js", "export default {}"));
    json_t *app = snapapp("api", "api.test", mods);
    json_object_set_new(app, "limits", json_pack("{s:i}", "cpu_ms", 999999999));
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", app)));
    nano_config *cfg = NULL;
    nano_error err = {0};
    assert_int_not_equal(dp_cp_model_build(&m, &x->cache, &x->fetch, &cfg, &err), 0);
    assert_null(cfg);
    assert_non_null(strstr(err.message, "cpu_ms"));
    dp_cp_model_fini(&m);
}

static void test_model_egress_from_snapshot_and_app_put(void **state)
{
    fx *x = *state;
    json_t *mods = json_pack("[o]", module(x, "index.js", "export default {}"));
    json_t *app = snapapp("api", "api.test", mods);
    json_object_set_new(app, "egress", json_pack("{s:[s]}", "allow", "169.254.169.254"));
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", app)));
    nano_config *cfg = build(x, &m);
    const nano_app_config *a = nano_config_find(cfg, "api", NULL);
    json_t *got = nano_egress_to_json(a->spec.egress);
    json_t *want = json_pack("{s:[s]}", "allow", "169.254.169.254");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    nano_config_unref(cfg);

    /* an app.put without egress (as from a nanocp that predates it) clears the policy */
    json_t *ops = json_pack("[{s:i, s:s, s:s, s:[s], s:n, s:b, s:b, s:[], s:{}, s:s, s:i, s:O}]",
                            "seq", 2, "op", "app.put", "app", "api", "hostnames", "api.test",
                            "path_prefix", "default", 0, "node_compat", 0, "required_env", "limits",
                            "state", "active", "version", 1, "sha256",
                            json_object_get(json_object_get(m.apps, "api"), "sha256"));
    dp_cp_model next = {0};
    dp_cp_changes ch = {0};
    nano_error err = {0};
    assert_int_equal(dp_cp_model_apply(&m, ops, &x->fetch, NULL, &next, &ch, &err), 0);
    dp_cp_model_swap(&m, &next);
    dp_cp_changes_fini(&ch);
    cfg = build(x, &m);
    assert_null(nano_config_find(cfg, "api", NULL)->spec.egress);
    nano_config_unref(cfg);
    json_decref(ops);
    dp_cp_model_fini(&m);
}

/* --- code cache -------------------------------------------------------------------------------- */

static void test_cache_wrong_bytes_refused_and_nothing_left(void **state)
{
    fx *x = *state;
    json_t *mods = json_pack("[o]", module(x, "index.js", "export default {fetch(){}}"));
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", snapapp("api", "api.test", mods))));
    x->cp.corrupt_code = true;
    nano_config *cfg = NULL;
    nano_error err = {0};
    assert_int_not_equal(dp_cp_model_build(&m, &x->cache, &x->fetch, &cfg, &err), 0);
    assert_string_equal(err.id, "code_mismatch");
    /* No directory named by a sha256 (complete or not) was left behind. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s)\"", x->cache.dir);
    assert_int_equal(system(cmd), 0);
    dp_cp_model_fini(&m);
}

static void test_cache_module_shared_by_bundles_fetched_once(void **state)
{
    fx *x = *state;
    json_t *one = json_pack("[o, o]", module(x, "index.js", "import './u.js'"),
                            module(x, "u.js", "export const u = 1;"));
    json_t *two = json_pack("[o, o]", module(x, "index.js", "import './u.js'; // v2"),
                            module(x, "u.js", "export const u = 1;"));
    dp_cp_model m = {0};
    load(x, &m, snapshot(1, json_pack("[o]", snapapp("api", "api.test", one))));
    nano_config *c1 = build(x, &m);
    dp_cp_model_fini(&m);
    load(x, &m, snapshot(2, json_pack("[o]", snapapp("api", "api.test", two))));
    nano_config *c2 = build(x, &m);
    assert_int_equal(x->cp.code_calls, 3);
    assert_int_equal(x->cache.n_linked, 1);
    assert_false(nano_app_config_same_code(nano_config_find(c1, "api", NULL),
                                           nano_config_find(c2, "api", NULL)));
    nano_config_unref(c1);
    nano_config_unref(c2);
    dp_cp_model_fini(&m);
}

static void test_cache_bundle_hash_matches_nanocp_rule(void **state)
{
    (void)state;
    json_t *mods = json_pack(
        "[{s:s, s:i, s:s}, {s:s, s:i, s:s}]", "name", "b.js", "size", 1, "sha256",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "name", "a.js", "size",
        1, "sha256", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    char got[65], want[65];
    nano_error err = {0};
    assert_int_equal(dp_code_cache_bundle_sha256(mods, got, &err), 0);
    const char text[] = "a.js\0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
                        "b.js\0bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
    sha_hex(text, sizeof text - 1, want);
    assert_string_equal(got, want);
    json_decref(mods);
}

/* --- command-line helpers ---------------------------------------------------------------------- */

static void test_url_rpc_defaults_to_next_port(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(dp_cp_default_rpc_url("tcp://10.0.0.5:7072", out, sizeof out), 0);
    assert_string_equal(out, "tcp://10.0.0.5:7073");
    assert_int_equal(dp_cp_default_rpc_url("tls+tcp://[::1]:9000", out, sizeof out), 0);
    assert_string_equal(out, "tls+tcp://[::1]:9001");
    assert_int_not_equal(dp_cp_default_rpc_url("tcp://host", out, sizeof out), 0);
    assert_int_not_equal(dp_cp_default_rpc_url("tcp://host:65535", out, sizeof out), 0);
}

static void test_url_loopback_hosts(void **state)
{
    (void)state;
    char host[64];
    assert_int_equal(dp_cp_url_host("tcp://127.0.0.1:7072", host, sizeof host), 0);
    assert_true(dp_cp_host_is_loopback(host));
    assert_int_equal(dp_cp_url_host("tcp://[::1]:7072", host, sizeof host), 0);
    assert_true(dp_cp_host_is_loopback(host));
    assert_int_equal(dp_cp_url_host("tcp://cp.example.com:7072", host, sizeof host), 0);
    assert_false(dp_cp_host_is_loopback(host));
    assert_false(dp_cp_host_is_loopback("10.1.2.3"));
}

static int parse(int argc, const char **argv, dp_options *o, nano_error *err)
{
    return dp_options_parse(o, argc, (char **)argv, err);
}

static void test_url_control_plane_flags_parsed(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *argv[] = {"nano-dp",
                          "--control-plane",
                          "tcp://10.0.0.1:7072",
                          "--node",
                          "edge-1",
                          "--node-token-file",
                          "/etc/nano/node.token",
                          "--code-dir",
                          "/var/x",
                          "--control-plane-rpc=tcp://10.0.0.1:9000"};
    assert_int_equal(parse(10, argv, &o, &err), 0);
    assert_string_equal(o.cp_url, "tcp://10.0.0.1:7072");
    assert_string_equal(o.cp_rpc_url, "tcp://10.0.0.1:9000");
    assert_string_equal(o.node, "edge-1");
    assert_string_equal(o.node_token_file, "/etc/nano/node.token");
    assert_string_equal(o.code_dir, "/var/x");
    dp_options_fini(&o);
}

static void test_url_control_plane_excludes_app_and_config(void **state)
{
    (void)state;
    dp_options o;
    nano_error err = {0};
    const char *a[] = {"nano-dp", "app.js", "--control-plane", "tcp://h:1"};
    assert_int_not_equal(parse(4, a, &o, &err), 0);
    assert_non_null(strstr(err.message, "one of APP.js"));
    dp_options_fini(&o);
    const char *b[] = {"nano-dp", "--control-plane", "tcp://h:1", "--var", "A=1"};
    assert_int_not_equal(parse(5, b, &o, &err), 0);
    dp_options_fini(&o);
    const char *c[] = {"nano-dp", "app.js", "--node", "n1"};
    assert_int_not_equal(parse(4, c, &o, &err), 0);
    assert_non_null(strstr(err.message, "need --control-plane"));
    dp_options_fini(&o);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
    static const struct CMUnitTest verdict[] = {
        cmocka_unit_test(test_verdict_next_applies),
        cmocka_unit_test(test_verdict_old_is_duplicate),
        cmocka_unit_test(test_verdict_skipped_entry_is_gap),
        cmocka_unit_test(test_verdict_overlap_applies_the_rest),
    };
    static const struct CMUnitTest model[] = {
        T(test_model_snapshot_builds_served_apps_only),
        T(test_model_snapshot_draining_app_is_a_drain),
        T(test_model_env_put_changes_copy_not_current),
        T(test_model_withheld_app_is_kept_and_its_ops_wait),
        T(test_model_same_bytes_under_two_names_both_serve),
        T(test_model_op_for_unknown_app_rejected_without_change),
        T(test_model_nonconsecutive_ops_rejected),
        T(test_model_overlap_applies_only_new_ops),
        T(test_model_secret_put_fetches_value),
        T(test_model_secret_fetch_failure_changes_nothing),
        T(test_model_deploy_then_drain_and_remove),
        T(test_model_app_put_with_unannounced_code_rejected),
        T(test_model_bad_limits_fail_build),
        T(test_model_egress_from_snapshot_and_app_put),
    };
    static const struct CMUnitTest cache[] = {
        T(test_cache_wrong_bytes_refused_and_nothing_left),
        T(test_cache_module_shared_by_bundles_fetched_once),
        cmocka_unit_test(test_cache_bundle_hash_matches_nanocp_rule),
    };
    static const struct CMUnitTest url[] = {
        cmocka_unit_test(test_url_rpc_defaults_to_next_port),
        cmocka_unit_test(test_url_loopback_hosts),
        cmocka_unit_test(test_url_control_plane_flags_parsed),
        cmocka_unit_test(test_url_control_plane_excludes_app_and_config),
    };
    static const unit_group groups[] = {
        UNIT_GROUP("verdict", verdict),
        UNIT_GROUP("model", model),
        UNIT_GROUP("cache", cache),
        UNIT_GROUP("url", url),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
