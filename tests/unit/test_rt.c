/* Unit tests for the runtime's isolate lifecycle: isolates made from the startup snapshot
 * (each its own world, with the app's values applied per context, nothing of the build
 * machine or an earlier app) and the pool of ready isolates. JS-side checks are scripts that
 * throw when something is wrong, so rt_run_script's result is the verdict. */
#include "unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "runtime.h"
#include "sha256.h"

static uv_loop_t g_loop;

/* script: a classic script in a temporary file; returns its path (a buffer of the thread's:
 * one test runs scripts on two threads). */
static const char *script(const char *text)
{
    static _Thread_local char path[80];
    snprintf(path, sizeof path, "/tmp/nano-unit-rt-%d-%lx.js", (int)getpid(),
             (unsigned long)pthread_self());
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
    rt_app_options app = {.name = "unit",
                          .console_mode = RT_CONSOLE_STDIO,
                          .location = location,
                          .pool = pool,
                          .heap_limit_mb = heap_limit_mb};
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

static int g_broken;

static void on_broken(void *ud)
{
    (void)ud;
    g_broken++;
}

static void pool_refills_to_target_after_a_take(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 2, 0);
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
    rt_pool *pool = rt_pool_new(&g_loop, 2, 0);
    fill(pool, 2);
    usleep(300 * 1000); /* the time origin is the app's start, not the isolate's */
    rt_isolate *a = new_isolate(pool, "https://pooled.example/", 0);
    assert_int_equal(run(a, "if (!(performance.now() < 250)) throw 1;"
                            "if (location.origin !== 'https://pooled.example') throw 2;"
                            "globalThis.leak = 1;"),
                     0);
    rt_isolate *b = new_isolate(pool, NULL, 0);
    assert_int_equal(
        run(b, "if (typeof location !== 'undefined' || 'leak' in globalThis) throw 1;"), 0);
    free_isolate(a);
    free_isolate(b);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

static void pool_is_bypassed_for_a_larger_heap_limit_or_another_loop(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 1, 0);
    fill(pool, 1);
    rt_isolate *limited = new_isolate(pool, NULL, 256);
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

/* An app with a smaller memory limit takes a pooled isolate and has the heap limit lowered to
 * its own: a heap grown without end is stopped near 32 MiB, not at the pool's 128. */
static void pool_isolates_take_a_smaller_heap_limit(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 1, 0);
    fill(pool, 1);
    rt_isolate *iso = new_isolate(pool, NULL, 32);
    assert_int_equal(rt_pool_n_ready(pool), 0);
    rt_hooks hooks = {.broken = on_broken};
    rt_isolate_set_hooks(iso, &hooks);
    g_broken = 0;
    assert_int_equal(run(iso, "const keep = [];"
                              "for (;;) keep.push({n: keep.length, s: 'x' + keep.length});"),
                     NANO_EJS);
    assert_int_equal(g_broken, 1);
    size_t used = rt_isolate_heap_used(iso);
    assert_true(used > 16u << 20);
    assert_true(used < 40u << 20);
    free_isolate(iso);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

/* A pool of a larger memory class serves apps up to its limit. */
static void pool_of_a_larger_class_serves_large_limits(void **state)
{
    (void)state;
    rt_pool *pool = rt_pool_new(&g_loop, 1, 512);
    assert_int_equal(rt_pool_heap_limit_mb(pool), 512);
    fill(pool, 1);
    rt_isolate *iso = new_isolate(pool, NULL, 300);
    assert_int_equal(rt_pool_n_ready(pool), 0);
    /* 200 MiB of buffers fit under 300 MiB, 320 do not. */
    assert_int_equal(run(iso, "globalThis.a = new Uint8Array(200 * 2 ** 20);"), 0);
    assert_int_equal(run(iso, "globalThis.b = new Uint8Array(120 * 2 ** 20);"), NANO_EJS);
    free_isolate(iso);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
}

static void pool_free_closes_everything(void **state)
{
    (void)state;
    rt_pool_free(NULL);
    rt_pool *pool = rt_pool_new(&g_loop, 3, 0);
    fill(pool, 3);
    rt_pool_free(pool);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    /* An empty pool (never filled: the loop never ran) closes as well. */
    rt_pool_free(rt_pool_new(&g_loop, 3, 0));
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
    rt_pool *pool = rt_pool_new(&g_loop, 1, 0);
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

/* Dead buffers are freed as they pile up, not only after V8's own 32 MiB trigger: after every
 * entry that left 5 MiB of garbage behind, under 5 MiB is still counted (allocator.cc,
 * rt_memory_after_entry). */
static void memory_garbage_buffers_are_collected_after_each_entry(void **state)
{
    (void)state;
    rt_isolate *iso = new_isolate(NULL, NULL, 0);
    size_t before = rt_isolate_external_bytes(iso);
    for (int i = 0; i < 6; i++) { /* 30 MiB: below V8's own trigger */
        assert_int_equal(run(iso, "for (let i = 0; i < 80; i++) new Uint8Array(65536)[0] = i;"), 0);
        size_t now = rt_isolate_external_bytes(iso);
        assert_true(now < before + 5 * MIB);
    }
    free_isolate(iso);
}

/* The flag that lets the runtime ask for those collections would give a context made while it
 * is set a global gc(): contexts made on another thread all the while never have one. */
typedef struct {
    int n_made;
    int n_with_gc;
    volatile int stop;
} context_maker;

static void make_contexts(void *arg)
{
    context_maker *m = arg;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    rt_app_options app = {.name = "unit", .console_mode = RT_CONSOLE_STDIO};
    while (!m->stop && m->n_made < 400) {
        rt_isolate *iso = NULL;
        nano_error err = {0};
        if (rt_isolate_new(&loop, &app, &iso, &err) != 0)
            break;
        m->n_made++;
        if (run(iso, "if ('gc' in globalThis) throw new Error('gc');") != 0)
            m->n_with_gc++;
        rt_isolate_free(iso);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
}

static void memory_collections_never_expose_gc_to_new_contexts(void **state)
{
    (void)state;
    context_maker maker = {0};
    uv_thread_t thread;
    rt_isolate *iso = new_isolate(NULL, NULL, 0);
    assert_int_equal(uv_thread_create(&thread, make_contexts, &maker), 0);
    for (int i = 0; i < 400 && maker.n_made < 40; i++)
        assert_int_equal(run(iso, "for (let i = 0; i < 80; i++) new Uint8Array(65536)[0] = i;"), 0);
    maker.stop = 1;
    uv_thread_join(&thread);
    free_isolate(iso);
    assert_true(maker.n_made > 0);
    assert_int_equal(maker.n_with_gc, 0);
}
/* --- compile cache: one compile per module source (compile_cache.cc) -------------------- */

/* Writes an app module whose source no other test has (the cache lives as long as the
 * process) into dir; returns its path (static buffer). */
static const char *unique_module(const char *dir)
{
    static char path[256];
    static int n;
    snprintf(path, sizeof path, "%s/app.js", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "const tag = 'unit %d %d';\n"
            "function helper(x) { return tag + ' ' + x; }\n"
            "globalThis.loaded = helper(1);\n"
            "export default { fetch() { return new Response(helper(2)); } };\n",
            (int)getpid(), ++n);
    fclose(f);
    return path;
}

static rt_isolate *load_module(const char *path)
{
    rt_app_options app = {.name = "unit", .console_mode = RT_CONSOLE_STDIO, .main_path = path};
    rt_isolate *iso = NULL;
    nano_error err = {0};
    int rc = rt_isolate_new(&g_loop, &app, &iso, &err);
    if (rc != 0)
        fprintf(stderr, "rt_isolate_new: %s\n", err.message);
    assert_int_equal(rc, 0);
    return iso;
}

static rt_compile_cache_stats cache_stats(void)
{
    rt_compile_cache_stats st;
    rt_compile_cache_get_stats(&st);
    return st;
}

/* The single file the cache keeps in dir (there is one module per test), or "". */
static void cache_file(const char *dir, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s/*.v8cache 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (fgets(out, (int)cap, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    pclose(p);
}

static void compile_cache_second_isolate_consumes_the_first_ones_code(void **state)
{
    (void)state;
    char dir[] = "/tmp/nano-unit-cc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *path = unique_module(dir);
    rt_compile_cache_stats before = cache_stats();
    rt_isolate *a = load_module(path);
    rt_compile_cache_stats mid = cache_stats();
    assert_int_equal(mid.misses, before.misses + 1);
    assert_int_equal(mid.stores, before.stores + 1);
    rt_isolate *b = load_module(path);
    rt_compile_cache_stats after = cache_stats();
    assert_int_equal(after.hits, mid.hits + 1);
    assert_int_equal(after.stores, mid.stores);
    assert_int_equal(after.rejects, before.rejects);
    /* The consumed code runs as the compiled one does. */
    assert_int_equal(run(b, "if (globalThis.loaded !== helperCheck()) throw 1;"
                            "function helperCheck() { return globalThis.loaded; }"),
                     0);
    free_isolate(a);
    free_isolate(b);
    unlink(path);
    rmdir(dir);
}

/* With a directory, entries outlive the memory budget (and the process); a damaged file, one
 * for another binary and a non-file are each ignored, and the module still loads. */
static void compile_cache_directory_survives_eviction_and_rejects_bad_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/nano-unit-cc-XXXXXX", cdir[300], file[400];
    assert_non_null(mkdtemp(dir));
    snprintf(cdir, sizeof cdir, "%s/v8", dir);
    nano_error err = {0};
    assert_int_equal(rt_compile_cache_set_dir(cdir, &err), 0);
    const char *path = unique_module(dir);
    free_isolate(load_module(path));
    cache_file(cdir, file, sizeof file);
    assert_true(file[0] != '\0');
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_true(st.st_size > 150);

    /* Evicted from memory: read back from the file. */
    rt_compile_cache_set_budget(0);
    rt_compile_cache_set_budget(RT_COMPILE_CACHE_BUDGET);
    rt_compile_cache_stats before = cache_stats();
    free_isolate(load_module(path));
    rt_compile_cache_stats after = cache_stats();
    assert_int_equal(after.disk_reads, before.disk_reads + 1);

    /* One byte of the payload flipped: the checksum refuses it; a fresh compile replaces it. */
    FILE *f = fopen(file, "r+b");
    assert_non_null(f);
    fseek(f, -10, SEEK_END);
    fputc('!', f);
    fclose(f);
    rt_compile_cache_set_budget(0);
    rt_compile_cache_set_budget(RT_COMPILE_CACHE_BUDGET);
    before = cache_stats();
    free_isolate(load_module(path));
    after = cache_stats();
    assert_int_equal(after.disk_reads, before.disk_reads);
    assert_int_equal(after.stores, before.stores + 1);

    /* A file with a valid header and checksum but a payload V8 cannot use: V8 rejects it,
     * the module is compiled from its source and the entry replaced. */
    assert_int_equal(stat(file, &st), 0);
    f = fopen(file, "r+b");
    assert_non_null(f);
    unsigned char header[152];
    assert_int_equal(fread(header, 1, sizeof header, f), sizeof header);
    size_t len = (size_t)st.st_size - sizeof header;
    char *junk = malloc(len);
    memset(junk, 'j', len);
    char sha[65];
    nano_sha256_hex(junk, len, sha);
    memcpy(header + 88, sha, 64); /* FileHeader.payload_sha (compile_cache.cc) */
    rewind(f);
    fwrite(header, 1, sizeof header, f);
    fwrite(junk, 1, len, f);
    fclose(f);
    free(junk);
    rt_compile_cache_set_budget(0);
    rt_compile_cache_set_budget(RT_COMPILE_CACHE_BUDGET);
    before = cache_stats();
    rt_isolate *iso = load_module(path);
    after = cache_stats();
    assert_int_equal(after.rejects, before.rejects + 1);
    assert_int_equal(after.stores, before.stores + 1);
    assert_int_equal(run(iso, "if (!globalThis.loaded.startsWith('unit ')) throw 1;"), 0);
    free_isolate(iso);

    /* A FIFO where the file should be: not opened for reading (no hang), not replaced by
     * following it. */
    unlink(file);
    assert_int_equal(mkfifo(file, 0600), 0);
    rt_compile_cache_set_budget(0);
    rt_compile_cache_set_budget(RT_COMPILE_CACHE_BUDGET);
    free_isolate(load_module(path));
    assert_int_equal(stat(file, &st), 0);
    assert_true(S_ISREG(st.st_mode)); /* renamed over it */

    assert_int_equal(rt_compile_cache_set_dir(NULL, &err), 0);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
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
        cmocka_unit_test(pool_is_bypassed_for_a_larger_heap_limit_or_another_loop),
        cmocka_unit_test(pool_isolates_take_a_smaller_heap_limit),
        cmocka_unit_test(pool_of_a_larger_class_serves_large_limits),
        cmocka_unit_test(pool_free_closes_everything),
    };
    static const struct CMUnitTest memory[] = {
        cmocka_unit_test(memory_refused_arraybuffers_throw_and_kept_ones_are_counted),
        cmocka_unit_test(memory_garbage_is_collected_before_a_refusal),
        cmocka_unit_test(memory_pooled_isolates_count_their_heap),
        cmocka_unit_test(memory_freed_buffers_are_uncounted),
        cmocka_unit_test(memory_held_past_the_limit_breaks_the_isolate),
        cmocka_unit_test(memory_garbage_buffers_are_collected_after_each_entry),
        cmocka_unit_test(memory_collections_never_expose_gc_to_new_contexts),
    };
    static const struct CMUnitTest compile_cache[] = {
        cmocka_unit_test(compile_cache_second_isolate_consumes_the_first_ones_code),
        cmocka_unit_test(compile_cache_directory_survives_eviction_and_rejects_bad_files),
    };
    const unit_group groups[] = {
        UNIT_GROUP("snapshot", snapshot),
        UNIT_GROUP("compile_cache", compile_cache),
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
