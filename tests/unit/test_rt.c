/* Unit tests for the runtime's isolate lifecycle: isolates made from the startup snapshot
 * (each its own world, with the app's values applied per context, nothing of the build
 * machine or an earlier app) and the pool of ready isolates. JS-side checks are scripts that
 * throw when something is wrong, so rt_run_script's result is the verdict. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <uv.h>

#include "runtime.h"

static uv_loop_t g_loop;

/* script: a classic script in a temporary file; returns its path (static buffer). */
static const char *script(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/nano-unit-rt-%d.js", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int run(rt_isolate *iso, const char *text)
{
    nano_error err = {0};
    int rc = rt_run_script(iso, script(text), &err);
    unlink(script(""));
    return rc;
}

static rt_isolate *new_isolate(rt_pool *pool, const char *location, size_t heap_limit_mb)
{
    rt_app_options app = {.name = "unit", .console_mode = RT_CONSOLE_STDIO, .location = location,
                          .pool = pool, .heap_limit_mb = heap_limit_mb};
    rt_isolate *iso = NULL;
    nano_error err = {0};
    int rc = rt_isolate_new(&g_loop, &app, &iso, &err);
    if (rc != 0)
        fprintf(stderr, "rt_isolate_new: %s\n", err.message);
    assert_int_equal(rc, 0);
    return iso;
}

/* Frees iso and lets its handles close. */
static void free_isolate(rt_isolate *iso)
{
    rt_isolate_free(iso);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

/* The text a script prints with console.log, captured from stdout. */
static void run_capturing(rt_isolate *iso, const char *text, char *out, size_t size)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(1);
    dup2(fileno(tmp), 1);
    int rc = run(iso, text);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    assert_int_equal(rc, 0);
    rewind(tmp);
    size_t n = fread(out, 1, size - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

/* Keeps the loop alive while a pool refills (a server's listener would). */
static void on_busy(uv_prepare_t *h)
{
    (void)h;
}

static void fill(rt_pool *pool, size_t n)
{
    uv_prepare_t busy;
    uv_prepare_init(&g_loop, &busy);
    uv_prepare_start(&busy, on_busy);
    /* Up to ~3 s: the refill timer waits RT_POOL_REFILL_DELAY_MS after a take. */
    for (int i = 0; i < 3000 && rt_pool_n_ready(pool) < n; i++) {
        uv_run(&g_loop, UV_RUN_NOWAIT);
        if (rt_pool_n_ready(pool) < n)
            usleep(1000);
    }
    uv_close((uv_handle_t *)&busy, NULL);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    assert_int_equal(rt_pool_n_ready(pool), n);
}

/* --- snapshot ---------------------------------------------------------------------------- */

static void snapshot_isolates_do_not_share_globals(void **state)
{
    (void)state;
    rt_isolate *a = new_isolate(NULL, NULL, 0);
    rt_isolate *b = new_isolate(NULL, NULL, 0);
    assert_int_equal(run(a, "globalThis.leak = 1; Array.prototype.leak = 2;"), 0);
    assert_int_equal(run(b, "if ('leak' in globalThis || [].leak !== undefined) throw 1;"), 0);
    /* The built-ins are there, working, in both. */
    assert_int_equal(run(b, "if (new URL('https://a.test/x?y').search !== '?y') throw 1;"
                            "if (typeof Response !== 'function') throw 2;"
                            "if (!(navigator.hardwareConcurrency >= 1)) throw 3;"),
                     0);
    free_isolate(a);
    free_isolate(b);
}

static void snapshot_random_differs_per_isolate(void **state)
{
    (void)state;
    char first[256], second[256];
    const char *text = "console.log(Math.random(), Math.random())";
    rt_isolate *a = new_isolate(NULL, NULL, 0);
    run_capturing(a, text, first, sizeof first);
    free_isolate(a);
    rt_isolate *b = new_isolate(NULL, NULL, 0);
    run_capturing(b, text, second, sizeof second);
    free_isolate(b);
    assert_true(strlen(first) > 10);
    assert_string_not_equal(first, second);
}

static void snapshot_time_origin_is_the_apps(void **state)
{
    (void)state;
    rt_isolate *iso = new_isolate(NULL, NULL, 0);
    assert_int_equal(run(iso, "if (!(performance.now() < 1000)) throw 1;"
                              "if (Math.abs(performance.timeOrigin - Date.now()) > 1000) throw 2;"),
                     0);
    free_isolate(iso);
}

static void snapshot_location_is_per_app(void **state)
{
    (void)state;
    rt_isolate *a = new_isolate(NULL, "https://a.example/base/", 0);
    assert_int_equal(run(a, "if (location.href !== 'https://a.example/base/') throw 1;"
                            "if (new Request('x').url !== 'https://a.example/base/x') throw 2;"),
                     0);
    free_isolate(a);
    rt_isolate *b = new_isolate(NULL, NULL, 0);
    assert_int_equal(run(b, "if (typeof location !== 'undefined') throw 1;"), 0);
    free_isolate(b);
}

static void snapshot_bad_location_fails_the_app(void **state)
{
    (void)state;
    rt_app_options app = {.name = "unit", .location = "not a url"};
    rt_isolate *iso = NULL;
    nano_error err = {0};
    assert_int_equal(rt_isolate_new(&g_loop, &app, &iso, &err), NANO_EJS);
    assert_null(iso);
    assert_non_null(strstr(err.message, "not a valid absolute URL"));
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

/* --- pool -------------------------------------------------------------------------------- */

static void pool_refills_to_target_after_a_take(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 2);
    fill(pool, 2);
    rt_isolate *iso = new_isolate(pool, NULL, 0);
    assert_int_equal(rt_pool_n_ready(pool), 1);
    fill(pool, 2);
    free_isolate(iso);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

static void pool_isolates_get_the_apps_values(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 2);
    fill(pool, 2);
    usleep(300 * 1000); /* the time origin is the app's start, not the isolate's */
    rt_isolate *a = new_isolate(pool, "https://pooled.example/", 0);
    assert_int_equal(run(a, "if (!(performance.now() < 250)) throw 1;"
                            "if (location.origin !== 'https://pooled.example') throw 2;"
                            "globalThis.leak = 1;"),
                     0);
    rt_isolate *b = new_isolate(pool, NULL, 0);
    assert_int_equal(run(b, "if (typeof location !== 'undefined' || 'leak' in globalThis) throw 1;"),
                     0);
    free_isolate(a);
    free_isolate(b);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

static void pool_is_bypassed_for_a_heap_limit_or_another_loop(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 1);
    fill(pool, 1);
    rt_isolate *limited = new_isolate(pool, NULL, 64);
    assert_int_equal(rt_pool_n_ready(pool), 1);
    free_isolate(limited);

    uv_loop_t other;
    uv_loop_init(&other);
    rt_app_options app = {.name = "unit", .pool = pool};
    rt_isolate *iso = NULL;
    nano_error err = {0};
    assert_int_equal(rt_isolate_new(&other, &app, &iso, &err), 0);
    assert_int_equal(rt_pool_n_ready(pool), 1);
    rt_isolate_free(iso);
    uv_run(&other, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&other), 0);

    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

static void pool_free_closes_everything(void **state)
{
    (void)state;
    rt_pool_free(NULL);
    rt_pool *pool = rt_pool_new(&g_loop, 3);
    fill(pool, 3);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    /* An empty pool (never filled: the loop never ran) closes as well. */
    rt_pool_free(rt_pool_new(&g_loop, 3));
    uv_run(&g_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_alive(&g_loop), 0);
}

/* --- memory: ArrayBuffers against the app's memory limit (allocator.cc) ------------------ */

#define MIB ((size_t)1 << 20)

static void memory_refused_arraybuffers_throw_and_kept_ones_are_counted(void **state)
{
    (void)state;
    rt_isolate *iso = new_isolate(NULL, NULL, 32);
    size_t before = rt_isolate_external_bytes(iso);
    assert_true(before < MIB);
    assert_int_equal(run(iso, "globalThis.kept = new Uint8Array(16 * 2 ** 20).fill(1);"
                              "let e1, e2;"
                              "try { new Uint8Array(16 * 2 ** 20); } catch (e) { e1 = e; }"
                              "try { new Uint8Array(2 ** 32); } catch (e) { e2 = e; }"
                              "if (!(e1 instanceof RangeError)) throw new Error('16 more: ' + e1);"
                              "if (!(e2 instanceof RangeError)) throw new Error('4 GiB: ' + e2);"),
                     0);
    size_t held = rt_isolate_external_bytes(iso);
    assert_true(held >= before + 16 * MIB && held < before + 16 * MIB + MIB);
    free_isolate(iso);
}

static void memory_garbage_is_collected_before_a_refusal(void **state)
{
    (void)state;
    rt_isolate *iso = new_isolate(NULL, NULL, 32);
    /* 800 MiB through a 32 MiB limit, 8 MiB at a time. */
    assert_int_equal(run(iso, "for (let i = 0; i < 100; i++) new Uint8Array(8 * 2 ** 20)[0] = i;"
                              "try { new Uint8Array(32 * 2 ** 20); throw new Error('fit'); }"
                              "catch (e) { if (!(e instanceof RangeError)) throw e; }"),
                     0);
    assert_true(rt_isolate_external_bytes(iso) <= 32 * MIB);
    free_isolate(iso);
}

/* The heap counts with ArrayBuffers only when V8's heap has the limit too: an isolate from
 * the pool (heap capped at 128 MiB) leaves ArrayBuffers 128 MiB less its heap; one made for
 * no limit (`nano-dp run`) gives them 128 MiB whatever its heap. */
static void memory_pooled_isolates_count_their_heap(void **state)
{
    (void)state;
    const char *text = "new Uint8Array(127 * 2 ** 20);";
    rt_pool *pool = rt_pool_new(&g_loop, 1);
    fill(pool, 1);
    rt_isolate *pooled = new_isolate(pool, NULL, 0);
    assert_int_equal(rt_pool_n_ready(pool), 0);
    assert_int_equal(run(pooled, text), NANO_EJS); /* RangeError */
    assert_int_equal(run(pooled, "new Uint8Array(120 * 2 ** 20);"), 0);
    free_isolate(pooled);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);

    rt_isolate *unlimited = new_isolate(NULL, NULL, 0);
    assert_int_equal(run(unlimited, text), 0);
    assert_int_equal(run(unlimited, "new Uint8Array(129 * 2 ** 20);"), NANO_EJS);
    free_isolate(unlimited);
}

/* Every path that gives memory back (Free, and Reallocate shrinking the last buffer of a
 * CompressionStream's output) returns what was counted: once all is garbage and collected,
 * the count is back where it started. */
static void memory_freed_buffers_are_uncounted(void **state)
{
    (void)state;
    rt_isolate *iso = new_isolate(NULL, NULL, 32);
    size_t before = rt_isolate_external_bytes(iso);
    assert_int_equal(run(iso, "globalThis.done = 0;"
                              "const data = new Uint8Array(100000);"
                              "for (let i = 0; i < data.length; i += 65536)"
                              "  crypto.getRandomValues(data.subarray(i, i + 65536));"
                              "for (let i = 0; i < 50; i++)"
                              "  new Response(new Blob([data]).stream()"
                              "      .pipeThrough(new CompressionStream('gzip'))).arrayBuffer()"
                              "    .then((b) => { if (b.byteLength > 100000) done++; });"),
                     0);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    /* A refused allocation makes V8 collect everything first. */
    assert_int_equal(run(iso, "if (done !== 50) throw new Error('done ' + done);"
                              "try { new Uint8Array(64 * 2 ** 20); } catch (e) {}"),
                     0);
    size_t after = rt_isolate_external_bytes(iso);
    assert_true(after <= before + 256 * 1024);
    free_isolate(iso);
}

static int g_broken;

static void on_broken(void *ud)
{
    (void)ud;
    g_broken++;
}

static void memory_held_past_the_limit_breaks_the_isolate(void **state)
{
    (void)state;
    rt_isolate *iso = new_isolate(NULL, NULL, 32);
    rt_hooks hooks = {.broken = on_broken};
    rt_isolate_set_hooks(iso, &hooks);
    g_broken = 0;
    /* 24 MiB of buffers, then a heap grown by 12 MiB beside them: each fits, not both. The
     * refused allocation (caught) makes V8 collect, and the check after it stops the JS (at
     * its next interrupt check: the loop). */
    assert_int_equal(run(iso, "globalThis.kept = new Uint8Array(24 * 2 ** 20).fill(1);"), 0);
    assert_int_equal(g_broken, 0);
    assert_int_equal(run(iso, "const objs = [];"
                              "for (let i = 0; i < 3; i++)"
                              "  objs.push(new Array(512 * 1024).fill(i));"
                              "globalThis.objs = objs;"
                              "try { new Uint8Array(2 ** 20); } catch (e) {}"
                              "for (let i = 0; i < 1e8; i++) globalThis.survived = i;"),
                     NANO_EJS);
    assert_int_equal(g_broken, 1);
    free_isolate(iso);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest snapshot[] = {
        cmocka_unit_test(snapshot_isolates_do_not_share_globals),
        cmocka_unit_test(snapshot_random_differs_per_isolate),
        cmocka_unit_test(snapshot_time_origin_is_the_apps),
        cmocka_unit_test(snapshot_location_is_per_app),
        cmocka_unit_test(snapshot_bad_location_fails_the_app),
    };
    static const struct CMUnitTest pool[] = {
        cmocka_unit_test(pool_refills_to_target_after_a_take),
        cmocka_unit_test(pool_isolates_get_the_apps_values),
        cmocka_unit_test(pool_is_bypassed_for_a_heap_limit_or_another_loop),
        cmocka_unit_test(pool_free_closes_everything),
    };
    static const struct CMUnitTest memory[] = {
        cmocka_unit_test(memory_refused_arraybuffers_throw_and_kept_ones_are_counted),
        cmocka_unit_test(memory_garbage_is_collected_before_a_refusal),
        cmocka_unit_test(memory_pooled_isolates_count_their_heap),
        cmocka_unit_test(memory_freed_buffers_are_uncounted),
        cmocka_unit_test(memory_held_past_the_limit_breaks_the_isolate),
    };
    const unit_group groups[] = {
        UNIT_GROUP("snapshot", snapshot),
        UNIT_GROUP("pool", pool),
        UNIT_GROUP("memory", memory),
    };
    rt_platform_init(argv[0]);
    uv_loop_init(&g_loop);
    int rc = unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&g_loop) != 0)
        rc = 1;
    rt_platform_fini();
    return rc;
}
