/* Unit tests for shared/: the dotenv parser, the env model with its limits, the value
 * grammars for durations, sizes and ports, the file reader, the option table and tokens. */
#include "unit.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "buf.h"
#include "check.h"
#include "log.h"
#include "dotenv.h"
#include "env.h"
#include "error.h"
#include "file.h"
#include "imports.h"
#include "opt.h"
#include "parse.h"
#include "sha256.h"
#include "token.h"

/* --- dotenv ------------------------------------------------------------------------------ */

typedef struct collected {
    char names[16][64];
    char values[16][256];
    size_t lens[16];
    int lines[16];
    int n;
} collected;

static int collect(void *ud, const char *name, const char *value, size_t len, int line)
{
    collected *c = ud;
    assert_true(c->n < 16);
    snprintf(c->names[c->n], sizeof c->names[0], "%s", name);
    assert_true(len < sizeof c->values[0]);
    memcpy(c->values[c->n], value, len);
    c->values[c->n][len] = '\0';
    c->lens[c->n] = len;
    c->lines[c->n] = line;
    c->n++;
    return 0;
}

static collected parse_ok(const char *text)
{
    collected c = {0};
    nano_error err = {0};
    int rc = nano_dotenv_parse(text, strlen(text), "t.env", collect, &c, &err);
    if (rc != 0)
        fail_msg("unexpected error: %s", err.message);
    return c;
}

static void dotenv_plain_values(void **state)
{
    (void)state;
    collected c = parse_ok("A=1\nB = two words  \n\n# comment\nC=\n");
    assert_int_equal(c.n, 3);
    assert_string_equal(c.names[0], "A");
    assert_string_equal(c.values[0], "1");
    assert_string_equal(c.values[1], "two words");
    assert_int_equal(c.lines[1], 2);
    assert_string_equal(c.names[2], "C");
    assert_int_equal(c.lens[2], 0);
}

static void dotenv_quotes_and_escapes(void **state)
{
    (void)state;
    collected c = parse_ok("S='lit\\n $X'\nD=\"a\\nb\\t\\\"q\\\"\\\\\"\nB=`x'y\"z`\n");
    assert_int_equal(c.n, 3);
    assert_string_equal(c.values[0], "lit\\n $X");
    assert_string_equal(c.values[1], "a\nb\t\"q\"\\");
    assert_string_equal(c.values[2], "x'y\"z");
}

static void dotenv_export_and_comments(void **state)
{
    (void)state;
    collected c =
        parse_ok("export KEY=v # trailing\nHASH=a#b\n  # indented comment\nQ=\"x\" # c\n");
    assert_int_equal(c.n, 3);
    assert_string_equal(c.names[0], "KEY");
    assert_string_equal(c.values[0], "v");
    assert_string_equal(c.values[1], "a#b"); /* '#' without a space before is data */
    assert_string_equal(c.values[2], "x");
}

static void dotenv_multiline_quoted(void **state)
{
    (void)state;
    collected c = parse_ok("PEM=\"line1\nline2\"\nNEXT=1\r\n");
    assert_int_equal(c.n, 2);
    assert_string_equal(c.values[0], "line1\nline2");
    assert_string_equal(c.values[1], "1");
    assert_int_equal(c.lines[1], 3);
}

static void expect_syntax_error(const char *text, const char *needle)
{
    collected c = {0};
    nano_error err = {0};
    int rc = nano_dotenv_parse(text, strlen(text), "bad.env", collect, &c, &err);
    assert_int_equal(rc, NANO_ESYNTAX);
    assert_string_equal(err.id, "env_file_syntax");
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
}

static void dotenv_errors_name_file_and_line(void **state)
{
    (void)state;
    expect_syntax_error("A=1\nnot an assignment\n", "bad.env:2:");
    expect_syntax_error("A=1\n\n1BAD=x\n", "bad.env:3:");
    expect_syntax_error("A=\"unterminated\n", "bad.env:1:");
    expect_syntax_error("A='x' junk\n", "bad.env:1:");
}

/* --- env ----------------------------------------------------------------------------------- */

static void env_set_replace_and_find(void **state)
{
    (void)state;
    nano_env env;
    nano_env_init(&env);
    nano_error err = {0};
    assert_int_equal(nano_env_set(&env, "A", "1", 1, false, &err), 0);
    assert_int_equal(nano_env_set(&env, "B", "2", 1, false, &err), 0);
    assert_int_equal(nano_env_set(&env, "A", "3", 1, false, &err), 0);
    assert_int_equal(env.n_entries, 2);
    const nano_env_entry *a = nano_env_find(&env, "A");
    assert_non_null(a);
    assert_string_equal(a->value, "3");
    assert_null(nano_env_find(&env, "C"));
    nano_env_fini(&env);
}

static void env_limits(void **state)
{
    (void)state;
    nano_env env;
    nano_env_init(&env);
    nano_error err = {0};
    assert_int_equal(nano_env_set(&env, "9X", "v", 1, false, &err), NANO_EINVAL);
    assert_non_null(strstr(err.message, "9X"));
    char *big = nano_xmalloc(NANO_ENV_MAX_VALUE + 1);
    memset(big, 's', NANO_ENV_MAX_VALUE + 1);
    assert_int_equal(nano_env_set(&env, "BIG", big, NANO_ENV_MAX_VALUE, false, &err), 0);
    assert_int_equal(nano_env_set(&env, "BIG2", big, NANO_ENV_MAX_VALUE + 1, true, &err),
                     NANO_ETOOBIG);
    assert_null(strstr(err.message, "sss")); /* never the value */
    nano_free(big);
    char name[16];
    for (int i = 1; i < NANO_ENV_MAX_ENTRIES; i++) {
        snprintf(name, sizeof name, "V%d", i);
        assert_int_equal(nano_env_set(&env, name, "x", 1, false, &err), 0);
    }
    assert_int_equal(env.n_entries, NANO_ENV_MAX_ENTRIES);
    assert_int_equal(nano_env_set(&env, "ONE_TOO_MANY", "x", 1, false, &err), NANO_ETOOBIG);
    assert_int_equal(nano_env_set(&env, "V1", "replaced", 8, false, &err), 0); /* not new */
    nano_env_fini(&env);
}

static void env_set_json_values(void **state)
{
    (void)state;
    nano_env env;
    nano_env_init(&env);
    nano_error err = {0};
    assert_int_equal(nano_env_set_json(&env, "FLAGS", "{\"beta\":true}", 13, &err), 0);
    const nano_env_entry *e = nano_env_find(&env, "FLAGS");
    assert_true(e->is_json);
    assert_false(e->is_secret);
    assert_string_equal(e->value, "{\"beta\":true}");
    assert_int_equal(nano_env_set_json(&env, "N", "42", 2, &err), 0); /* scalars are JSON too */
    assert_int_equal(nano_env_set_json(&env, "BAD", "{\"secretish\"", 12, &err), NANO_EINVAL);
    assert_non_null(strstr(err.message, "BAD"));
    assert_null(strstr(err.message, "secretish"));
    assert_null(nano_env_find(&env, "BAD"));
    assert_int_equal(nano_env_set_json(&env, "N", "4", 2, &err), NANO_EINVAL); /* "4\0" */
    assert_int_equal(nano_env_set(&env, "FLAGS", "plain", 5, false, &err), 0);
    assert_false(nano_env_find(&env, "FLAGS")->is_json); /* replacing resets the kind */
    char *big = nano_xmalloc(NANO_ENV_MAX_VALUE + 3);
    memset(big, 'x', NANO_ENV_MAX_VALUE + 1); /* a JSON string of exactly the limit ... */
    big[0] = big[NANO_ENV_MAX_VALUE - 1] = '"';
    assert_int_equal(nano_env_set_json(&env, "BIG", big, NANO_ENV_MAX_VALUE, &err), 0);
    big[NANO_ENV_MAX_VALUE - 1] = 'x'; /* ... and one byte longer */
    big[NANO_ENV_MAX_VALUE] = '"';
    assert_int_equal(nano_env_set_json(&env, "BIG", big, NANO_ENV_MAX_VALUE + 1, &err),
                     NANO_ETOOBIG);
    nano_free(big);
    nano_env_fini(&env);
}

static void env_assignment(void **state)
{
    (void)state;
    nano_env env;
    nano_env_init(&env);
    nano_error err = {0};
    assert_int_equal(nano_env_set_assignment(&env, "K=a=b", &err), 0);
    assert_string_equal(nano_env_find(&env, "K")->value, "a=b");
    assert_int_equal(nano_env_set_assignment(&env, "EMPTY=", &err), 0);
    assert_int_equal(nano_env_find(&env, "EMPTY")->value_len, 0);
    assert_int_not_equal(nano_env_set_assignment(&env, "NOEQUALS", &err), 0);
    assert_int_not_equal(nano_env_set_assignment(&env, "=v", &err), 0);
    nano_env_fini(&env);
}

static void env_load_dotenv_file(void **state)
{
    (void)state;
    char path[] = "/tmp/nano-unit-envXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs("export A=1\nB=\"two\"\nA=override\n", f);
    fclose(f);
    nano_env env;
    nano_env_init(&env);
    nano_error err = {0};
    assert_int_equal(nano_env_load_dotenv(&env, path, &err), 0);
    assert_string_equal(nano_env_find(&env, "A")->value, "override");
    assert_string_equal(nano_env_find(&env, "B")->value, "two");
    unlink(path);
    assert_int_not_equal(nano_env_load_dotenv(&env, path, &err), 0);
    assert_non_null(strstr(err.message, path)); /* a missing file is named */
    nano_env_fini(&env);
}

/* --- parse --------------------------------------------------------------------------------- */

static void parse_durations(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(nano_parse_duration_ms("30", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(nano_parse_duration_ms("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(nano_parse_duration_ms("1500ms", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(nano_parse_duration_ms("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(nano_parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(nano_parse_duration_ms("", &ms), NANO_ESYNTAX);
    assert_int_equal(nano_parse_duration_ms("s", &ms), NANO_ESYNTAX);
    assert_int_equal(nano_parse_duration_ms("-1", &ms), NANO_ESYNTAX);
    assert_int_equal(nano_parse_duration_ms("10x", &ms), NANO_ESYNTAX);
    assert_int_equal(nano_parse_duration_ms("99999999999999999999", &ms), NANO_ERANGE);
}

static void parse_sizes(void **state)
{
    (void)state;
    uint64_t b;
    assert_int_equal(nano_parse_size("65536", &b), 0);
    assert_int_equal(b, 65536);
    assert_int_equal(nano_parse_size("64KiB", &b), 0);
    assert_int_equal(b, 65536);
    assert_int_equal(nano_parse_size("64k", &b), 0);
    assert_int_equal(b, 65536);
    assert_int_equal(nano_parse_size("100MiB", &b), 0);
    assert_int_equal(b, 100ull << 20);
    assert_int_equal(nano_parse_size("1g", &b), 0);
    assert_int_equal(b, 1ull << 30);
    assert_int_equal(nano_parse_size("12 apples", &b), NANO_ESYNTAX);
    assert_int_equal(nano_parse_size("", &b), NANO_ESYNTAX);
}

static void parse_ports(void **state)
{
    (void)state;
    int p;
    assert_int_equal(nano_parse_port("0", &p), 0);
    assert_int_equal(p, 0);
    assert_int_equal(nano_parse_port("65535", &p), 0);
    assert_int_equal(p, 65535);
    assert_int_not_equal(nano_parse_port("65536", &p), 0);
    assert_int_not_equal(nano_parse_port("80a", &p), 0);
    assert_int_not_equal(nano_parse_port("", &p), 0);
}

static void buf_append_u64_decimal(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    nano_buf_append_u64(&b, 0);
    nano_buf_append(&b, " ", 1);
    nano_buf_append_u64(&b, 200);
    nano_buf_append(&b, " ", 1);
    nano_buf_append_u64(&b, 18446744073709551615ull);
    assert_string_equal(nano_buf_cstr(&b), "0 200 18446744073709551615");
    nano_buf_fini(&b);
}

/* Every position of a non-ASCII byte, at every alignment, in inputs long and short enough to
 * take both the eight-byte loop and the byte loop. */
static void ascii_prefix_finds_first_high_byte(void **state)
{
    (void)state;
    static const unsigned char high[] = {0x80, 0xc3, 0xff};
    char text[40];
    memset(text, 'a', sizeof text);
    for (size_t len = 0; len <= sizeof text; len++) {
        assert_int_equal(nano_ascii_prefix(text, len), len);
        for (size_t at = 0; at < len; at++) {
            for (size_t h = 0; h < sizeof high; h++) {
                text[at] = (char)high[h];
                assert_int_equal(nano_ascii_prefix(text, len), at);
                text[at] = 'a';
            }
        }
    }
    assert_int_equal(nano_ascii_prefix("\x7f\x01plain", 7), 7);
}

/* Lines made in place (the access log's): "TIMESTAMP LEVEL EVENT text\n", one after another
 * in the same buffer, each within the room it reserved. */
static void log_lines_made_in_place(void **state)
{
    (void)state;
    nano_buf b = NANO_BUF_INIT;
    char *p = nano_log_line_begin(&b, NANO_LOG_INFO, "access", 8);
    memcpy(p, "app=x", 5);
    nano_log_line_end(&b, p + 5);
    p = nano_log_line_begin(&b, NANO_LOG_WARN, "other", 300);
    memset(p, 'k', 300);
    nano_log_line_end(&b, p + 300);
    const char *text = nano_buf_cstr(&b);
    const char *nl = strchr(text, '\n');
    assert_non_null(nl);
    /* 2026-12-05T00:46:34.206Z: 24 characters, then the rest. */
    assert_int_equal(nl - text, 24 + strlen(" info access app=x"));
    assert_memory_equal(text + 24, " info access app=x", strlen(" info access app=x"));
    assert_int_equal(text[4], '-');
    assert_int_equal(text[23], 'Z');
    const char *second = nl + 1;
    assert_memory_equal(second + 24, " warn other ", 12);
    assert_int_equal(strlen(second), 24 + 12 + 300 + 1);
    assert_int_equal(second[strlen(second) - 1], '\n');
    nano_buf_fini(&b);
}

/* --- check: the load checker's messages and env (shared/check.h) ---------------------------- */

static void check_one_line_puts_the_first_frame_in_front(void **state)
{
    (void)state;
    char out[512];
    nano_check_one_line("/srv/a.js: evaluation threw: Error: no url\n    at boom (/srv/a.js:2:25)\n"
                        "    at /srv/a.js:3:1",
                        "/srv/a.js", out, sizeof out);
    assert_string_equal(out, "/srv/a.js:2:25: evaluation threw: Error: no url");
    nano_check_one_line("/srv/a.js: evaluation threw: Error: x\n    at /srv/lib.js:7:3",
                        "/srv/a.js", out, sizeof out);
    assert_string_equal(out, "/srv/lib.js:7:3: evaluation threw: Error: x");
    /* Already placed (a syntax error), or nothing to place it with: the first line. */
    nano_check_one_line("/srv/a.js:3:2: SyntaxError: Unexpected token '}'\nexport }\n ^",
                        "/srv/a.js", out, sizeof out);
    assert_string_equal(out, "/srv/a.js:3:2: SyntaxError: Unexpected token '}'");
    nano_check_one_line("/srv/a.js: evaluation threw: just a string", "/srv/a.js", out, sizeof out);
    assert_string_equal(out, "/srv/a.js: evaluation threw: just a string");
    nano_check_one_line("x\ny", NULL, out, 2);
    assert_string_equal(out, "x");
}

static void check_env_round_trips_and_masks_secrets(void **state)
{
    (void)state;
    nano_env env, back;
    nano_env_init(&env);
    nano_env_init(&back);
    nano_error err = {0};
    assert_int_equal(nano_env_set(&env, "URL", "https://x", 9, false, &err), 0);
    assert_int_equal(nano_env_set(&env, "TOKEN", "hunter2", 7, true, &err), 0);
    assert_int_equal(nano_env_set_json(&env, "FLAGS", "{\"a\":1}", 7, &err), 0);
    json_t *list = nano_check_env_to_json(&env);
    assert_int_equal(nano_check_env_from_json(list, &back, &err), 0);
    json_decref(list);
    assert_true(nano_env_find(&back, "TOKEN")->is_secret);
    assert_true(nano_env_find(&back, "FLAGS")->is_json);
    assert_string_equal(nano_env_find(&back, "URL")->value, "https://x");
    json_t *bad = json_pack("[{s:s}]", "name", "X");
    assert_int_equal(nano_check_env_from_json(bad, &back, &err), NANO_EINVAL);
    json_decref(bad);

    char text[64] = "Error: bad token hunter2 (hunter2)";
    nano_check_mask_secrets(&env, text, sizeof text);
    assert_string_equal(text, "Error: bad token [REDACTED] ([REDACTED])");
    char tight[24] = "token hunter2 and more";
    nano_check_mask_secrets(&env, tight, sizeof tight);
    assert_null(strstr(tight, "hunter2"));
    assert_true(strlen(tight) < sizeof tight);
    nano_env_fini(&env);
    nano_env_fini(&back);
}

static void check_run_delay_reads_schedstat(void **state)
{
    (void)state;
    /* This thread's own figure can be read (0 is a valid answer on an idle machine); a
     * process that does not exist reads as 0, never as an error. */
    uint64_t mine = nano_check_run_delay_ms(getpid(), getpid());
    assert_true(mine < 24ull * 3600 * 1000);
    assert_int_equal(nano_check_run_delay_ms(-1, -1), 0);
}

/* --- imports: the specifiers a module names ------------------------------------------------- */

/* The specifiers nano_imports_scan reports, joined by '|'. */
static bool collect_spec(void *ud, const char *spec, size_t len)
{
    nano_buf *b = ud;
    if (b->len > 0)
        nano_buf_append(b, "|", 1);
    nano_buf_append(b, spec, len);
    return true;
}

static void expect_imports(const char *src, const char *want)
{
    nano_buf b = NANO_BUF_INIT;
    nano_imports_scan(src, strlen(src), collect_spec, &b);
    const char *got = b.len > 0 ? nano_buf_cstr(&b) : "";
    if (strcmp(got, want) != 0)
        fail_msg("scan of <<%s>>: got \"%s\", want \"%s\"", src, got, want);
    nano_buf_fini(&b);
}

static void imports_static_dynamic_and_reexports_are_found(void **state)
{
    (void)state;
    expect_imports("import x from './a.js';\nimport {y as z} from \"../b.js\";\n"
                   "import * as ns from '/abs/c.js'; import './d.js'\n"
                   "export * from './e.js'; export { f } from 'file:///g.js';\n"
                   "const m = await import('./h.js');\n"
                   "import j from './j.json' with { type: 'json' };",
                   "./a.js|../b.js|/abs/c.js|./d.js|./e.js|file:///g.js|./h.js|./j.json");
    expect_imports("import\n  x\n  from\n  './multi-line.js'", "./multi-line.js");
    expect_imports("import(/* why */ './commented.js', { with: {} })", "./commented.js");
    expect_imports("import { from } from './named-from.js'", "./named-from.js");
    expect_imports("#!/usr/bin/env node\nimport 'bare-package';", "bare-package");
}

static void imports_in_comments_strings_templates_and_regexps_are_not(void **state)
{
    (void)state;
    expect_imports("// import x from './line-comment.js'\n"
                   "/* import './block.js' */\n"
                   "const s = \"import './in-a-string.js'\";\n"
                   "const t = `import './in-a-template.js' ${1}`;\n"
                   "const r = /from '(x)'/g; const q = a / b / c;\n"
                   "x.import('./a-method.js'); obj.from('./b.js'); ({from: './c.js'});\n"
                   "import(name); import('./d.js' + suffix);\n"
                   "const u = 'unterminated\nimport './after.js';",
                   "./after.js");
    /* A regexp with a quote inside does not start a string. */
    expect_imports("const re = /[\"']/; import './x.js';", "./x.js");
    expect_imports("return /'/.test(s); import './y.js';", "./y.js");
    /* Escapes and line breaks in a specifier: skipped, not guessed at. */
    expect_imports("import './a\\u002ejs'; import './ok.js';", "./ok.js");
    /* Truncated input of every kind ends the scan without reading past it. */
    static const char *const cut[] = {"import '", "import \"./a", "/* x", "`abc", "/[",
                                      "import(",  "'\\",          "`\\",  "/\\"};
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++)
        expect_imports(cut[i], "");
}

static void imports_relative_specifiers(void **state)
{
    (void)state;
    static const char *const yes[] = {"./a.js", "../a.js", "/a.js", "file:///a.js"};
    static const char *const no[] = {"a.js", "nano:test", "node:fs", ".a.js", "", "file:"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        assert_true(nano_import_is_relative(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        assert_false(nano_import_is_relative(no[i], strlen(no[i])));
}

/* --- file ---------------------------------------------------------------------------------- */

typedef struct file_fx {
    char dir[64];
    char path[PATH_MAX];
} file_fx;

static int file_setup(void **state)
{
    file_fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/nano-unit-fileXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int file_teardown(void **state)
{
    file_fx *f = *state;
    for (const char *const *n = (const char *const[]){"a", "empty", "big", "fifo", NULL}; *n; n++) {
        snprintf(f->path, sizeof f->path, "%s/%s", f->dir, *n);
        unlink(f->path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The path of name in the fixture's directory, with content written (NULL: not created). */
static const char *fx_file(file_fx *f, const char *name, const char *content, size_t len)
{
    snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name);
    if (content != NULL) {
        FILE *fp = fopen(f->path, "wb");
        assert_non_null(fp);
        assert_int_equal(fwrite(content, 1, len, fp), len);
        fclose(fp);
    }
    return f->path;
}

static void file_regular_file_is_read_whole_and_terminated(void **state)
{
    file_fx *f = *state;
    char *data = NULL;
    size_t len = 0;
    nano_error err = {0};
    assert_int_equal(nano_read_file(fx_file(f, "a", "one\0two\n", 8), 8, &data, &len, &err), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(data, "one\0two\n", 8);
    assert_int_equal(data[8], '\0');
    nano_free(data);
    assert_int_equal(nano_read_file(fx_file(f, "empty", "", 0), 0, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    nano_free(data);
    /* /proc files say size 0 and have bytes: read to the end all the same. */
    assert_int_equal(nano_read_file("/proc/self/status", 1 << 20, &data, &len, &err), 0);
    assert_true(len > 0 && strstr(data, "Pid:") != NULL);
    nano_free(data);
}

static void file_fifo_is_refused_without_blocking(void **state)
{
    file_fx *f = *state;
    const char *path = fx_file(f, "fifo", NULL, 0);
    assert_int_equal(mkfifo(path, 0600), 0);
    char *data = (char *)"untouched";
    size_t len = 7;
    nano_error err = {0};
    alarm(5); /* a reader waiting for a writer would hang here: the alarm ends the test */
    assert_int_equal(nano_read_file(path, 1024, &data, &len, &err), NANO_EINVAL);
    alarm(0);
    assert_string_equal(data, "untouched");
    assert_int_equal(len, 7);
    assert_string_equal(err.id, "read_failed");
    assert_non_null(strstr(err.message, "not a regular file"));
    assert_memory_equal(err.message, path, strlen(path));
    /* A directory is refused too. */
    assert_int_equal(nano_read_file(f->dir, 1024, &data, &len, &err), -EISDIR);
}

static void file_over_the_limit_is_refused(void **state)
{
    file_fx *f = *state;
    char big[100];
    memset(big, 'x', sizeof big);
    const char *path = fx_file(f, "big", big, sizeof big);
    char *data = NULL;
    size_t len = 0;
    nano_error err = {0};
    assert_int_equal(nano_read_file(path, 99, &data, &len, &err), NANO_ETOOBIG);
    assert_null(data);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s: 100 bytes; the limit is 99", path);
    assert_string_equal(err.message, want);
    assert_int_equal(nano_read_file(path, 100, &data, &len, &err), 0); /* exactly the limit */
    assert_int_equal(len, 100);
    nano_free(data);
    data = NULL;
    /* The limit holds for what is read, not only for what fstat said (a file that grows). */
    assert_int_equal(nano_read_file("/proc/self/status", 10, &data, &len, &err), NANO_ETOOBIG);
    assert_null(data);
    assert_non_null(strstr(err.message, "larger than the limit of 10 bytes"));
}

static void file_missing_names_the_path(void **state)
{
    file_fx *f = *state;
    const char *path = fx_file(f, "none", NULL, 0);
    char *data = NULL;
    size_t len = 0;
    nano_error err = {0};
    assert_int_equal(nano_read_file(path, 10, &data, &len, &err), -ENOENT);
    assert_null(data);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s: No such file or directory", path);
    assert_string_equal(err.message, want);
    assert_int_equal(nano_read_file(path, 10, &data, &len, NULL), -ENOENT); /* err optional */
}

static void file_out_of_memory_fails_cleanly(void **state)
{
    file_fx *f = *state;
    const char *path = fx_file(f, "a", "abc", 3);
    char *data = NULL;
    size_t len = 0;
    nano_error err = {0};
    nano_alloc_fail_after(1);
    assert_int_equal(nano_read_file(path, 10, &data, &len, &err), NANO_ENOMEM);
    nano_alloc_fail_after(0);
    assert_null(data);
    /* the growth path: /proc files start from a two-byte buffer */
    for (long nth = 1; nth <= 3; nth++) {
        nano_alloc_fail_after(nth);
        int rc = nano_read_file("/proc/self/status", 1 << 20, &data, &len, &err);
        nano_alloc_fail_after(0);
        assert_int_equal(rc, NANO_ENOMEM);
        assert_null(data);
    }
}

/* --- opt ----------------------------------------------------------------------------------- */

enum { T_PORT, T_JSON, T_TOKEN, T_TOKEN_FILE };

static const nano_opt test_table[] = {
    {"--port", true, T_PORT},   {"--json", false, T_JSON},
    {"--token", true, T_TOKEN}, {"--token-file", true, T_TOKEN_FILE},
    {NULL, false, 0},
};

/* Reads every argument of argv (NULL-terminated) into "id=value" words joined by spaces. */
static int read_all(const char *prog, char **argv, char *out, size_t cap, nano_error *err)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    nano_opt_parser p = {test_table, prog, argc, argv, 1};
    size_t n = 0;
    out[0] = '\0';
    while (p.i < argc) {
        int k;
        const char *v;
        int rc = nano_opt_next(&p, &k, &v, err);
        if (rc != 0)
            return rc;
        n += (size_t)snprintf(out + n, cap - n, "%s%d=%s", n ? " " : "",
                              k == NANO_OPT_ARG ? -1 : test_table[k].id, v ? v : "(null)");
    }
    return 0;
}

static void opt_both_forms_flags_and_arguments(void **state)
{
    (void)state;
    char got[256];
    nano_error err = {0};
    char *argv[] = {"prog", "--port",  "80",      "--port=81", "--json",         "app.js",
                    "-",    "--port=", "--token", "-x",        "--token-file=t", NULL};
    assert_int_equal(read_all("prog", argv, got, sizeof got, &err), 0);
    assert_string_equal(got, "0=80 0=81 1=(null) -1=app.js -1=- 0= 2=-x 3=t");
    assert_true(nano_opt_is_option("-h"));
    assert_true(nano_opt_is_option("--"));
    assert_false(nano_opt_is_option("-"));
    assert_false(nano_opt_is_option("app.js"));
}

static void opt_missing_value_is_one_line(void **state)
{
    (void)state;
    char got[256];
    nano_error err = {0};
    char *argv[] = {"prog", "--json", "--port", NULL};
    assert_int_equal(read_all("prog", argv, got, sizeof got, &err), NANO_EINVAL);
    assert_string_equal(err.id, "usage");
    assert_string_equal(err.message, "--port needs a value");
    char *flag_with_value[] = {"prog", "--json=yes", NULL};
    assert_int_equal(read_all("prog", flag_with_value, got, sizeof got, &err), NANO_EINVAL);
    assert_string_equal(err.message, "--json takes no value");
    /* one at a time (nanoctl's commands) */
    char *one[] = {"prog", "--port", NULL};
    int i = 1;
    const char *v = "untouched";
    assert_int_equal(nano_opt_value("--port", 2, one, &i, &v, &err), NANO_EINVAL);
    assert_string_equal(err.message, "--port needs a value");
    assert_int_equal(i, 1);
    assert_string_equal(v, "untouched");
}

static void opt_unknown_option_is_named_without_its_value(void **state)
{
    (void)state;
    char got[256];
    nano_error err = {0};
    char *argv[] = {"prog", "--port", "1", "--tokens=s3cret", NULL};
    assert_int_equal(read_all("nano-dp check", argv, got, sizeof got, &err), NANO_EINVAL);
    assert_string_equal(err.message, "unknown option '--tokens' (see nano-dp check --help)");
    assert_null(strstr(err.message, "s3cret"));
    char *prefix[] = {"prog", "--po", NULL};
    assert_int_equal(read_all(NULL, prefix, got, sizeof got, &err), NANO_EINVAL);
    assert_string_equal(err.message, "unknown option '--po'");
}

static void opt_value_matches_one_name_exactly(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--token-file", "f", "--token=t", "--tokenx", NULL};
    nano_error err = {0};
    const char *v = NULL;
    int i = 1;
    assert_int_equal(nano_opt_value("--token", 5, argv, &i, &v, &err), 0); /* not --token-file */
    assert_int_equal(nano_opt_value("--token-file", 5, argv, &i, &v, &err), 1);
    assert_string_equal(v, "f");
    assert_int_equal(i, 2); /* on the value: the caller's loop steps past it */
    i = 3;
    assert_int_equal(nano_opt_value("--token", 5, argv, &i, &v, &err), 1);
    assert_string_equal(v, "t");
    assert_int_equal(i, 3);
    i = 4;
    assert_int_equal(nano_opt_value("--token", 5, argv, &i, &v, &err), 0);
}

/* --- token --------------------------------------------------------------------------------- */

static void token_digest_round_trips_through_hex(void **state)
{
    (void)state;
    unsigned char d[NANO_TOKEN_DIGEST_BYTES], from_hex[NANO_TOKEN_DIGEST_BYTES];
    nano_token_digest("s3cret-token", d);
    char hex[65];
    nano_sha256_hex("s3cret-token", strlen("s3cret-token"), hex); /* how token files are kept */
    assert_int_equal(nano_token_digest_from_hex(hex, from_hex), 0);
    assert_memory_equal(d, from_hex, sizeof d);
    for (char *p = hex; *p; p++) /* either case */
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 'a' + 'A' : *p);
    memset(from_hex, 0, sizeof from_hex);
    assert_int_equal(nano_token_digest_from_hex(hex, from_hex), 0);
    assert_memory_equal(d, from_hex, sizeof d);
    /* "abc": FIPS 180-2's example */
    nano_token_digest("abc", d);
    assert_int_equal(nano_token_digest_from_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9c"
                                                "b410ff61f20015ad",
                                                from_hex),
                     0);
    assert_memory_equal(d, from_hex, sizeof d);
}

static void token_bad_hex_is_refused(void **state)
{
    (void)state;
    unsigned char d[NANO_TOKEN_DIGEST_BYTES];
    memset(d, 7, sizeof d);
    char hex[66];
    memset(hex, 'a', 64);
    hex[64] = '\0';
    assert_int_equal(nano_token_digest_from_hex(hex, d), 0);
    hex[63] = 'g';
    assert_int_equal(nano_token_digest_from_hex(hex, d), NANO_EINVAL);
    hex[63] = '\0'; /* 63 digits */
    assert_int_equal(nano_token_digest_from_hex(hex, d), NANO_EINVAL);
    hex[63] = 'a';
    hex[64] = 'a'; /* 65 digits */
    hex[65] = '\0';
    assert_int_equal(nano_token_digest_from_hex(hex, d), NANO_EINVAL);
    assert_int_equal(nano_token_digest_from_hex(NULL, d), NANO_EINVAL);
    for (size_t i = 0; i < sizeof d; i++) /* written only on success */
        assert_int_equal(d[i], 0xaa);
}

static void token_check_compares_whole_digests(void **state)
{
    (void)state;
    unsigned char stored[NANO_TOKEN_DIGEST_BYTES], other[NANO_TOKEN_DIGEST_BYTES];
    nano_token_digest("right", stored);
    assert_true(nano_token_check("right", stored));
    assert_false(nano_token_check("righ", stored));
    assert_false(nano_token_check("right ", stored));
    assert_false(nano_token_check("", stored));
    assert_false(nano_token_check(NULL, stored));
    memcpy(other, stored, sizeof other);
    assert_true(nano_token_digest_equal(stored, other));
    other[NANO_TOKEN_DIGEST_BYTES - 1] ^= 1; /* the last bit differs */
    assert_false(nano_token_digest_equal(stored, other));
    other[NANO_TOKEN_DIGEST_BYTES - 1] ^= 1;
    other[0] ^= 0x80; /* the first */
    assert_false(nano_token_digest_equal(stored, other));
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest dotenv[] = {
        cmocka_unit_test(dotenv_plain_values),
        cmocka_unit_test(dotenv_quotes_and_escapes),
        cmocka_unit_test(dotenv_export_and_comments),
        cmocka_unit_test(dotenv_multiline_quoted),
        cmocka_unit_test(dotenv_errors_name_file_and_line),
    };
    static const struct CMUnitTest env[] = {
        cmocka_unit_test(env_set_replace_and_find), cmocka_unit_test(env_limits),
        cmocka_unit_test(env_set_json_values),      cmocka_unit_test(env_assignment),
        cmocka_unit_test(env_load_dotenv_file),
    };
    static const struct CMUnitTest parse[] = {
        cmocka_unit_test(parse_durations),
        cmocka_unit_test(parse_sizes),
        cmocka_unit_test(parse_ports),
        cmocka_unit_test(buf_append_u64_decimal),
        cmocka_unit_test(ascii_prefix_finds_first_high_byte),
        cmocka_unit_test(log_lines_made_in_place),
    };
    static const struct CMUnitTest check[] = {
        cmocka_unit_test(check_one_line_puts_the_first_frame_in_front),
        cmocka_unit_test(check_env_round_trips_and_masks_secrets),
        cmocka_unit_test(check_run_delay_reads_schedstat),
    };
    static const struct CMUnitTest imports[] = {
        cmocka_unit_test(imports_static_dynamic_and_reexports_are_found),
        cmocka_unit_test(imports_in_comments_strings_templates_and_regexps_are_not),
        cmocka_unit_test(imports_relative_specifiers),
    };
    static const struct CMUnitTest file[] = {
        cmocka_unit_test_setup_teardown(file_regular_file_is_read_whole_and_terminated, file_setup,
                                        file_teardown),
        cmocka_unit_test_setup_teardown(file_fifo_is_refused_without_blocking, file_setup,
                                        file_teardown),
        cmocka_unit_test_setup_teardown(file_over_the_limit_is_refused, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(file_missing_names_the_path, file_setup, file_teardown),
        cmocka_unit_test_setup_teardown(file_out_of_memory_fails_cleanly, file_setup,
                                        file_teardown),
    };
    static const struct CMUnitTest opt[] = {
        cmocka_unit_test(opt_both_forms_flags_and_arguments),
        cmocka_unit_test(opt_missing_value_is_one_line),
        cmocka_unit_test(opt_unknown_option_is_named_without_its_value),
        cmocka_unit_test(opt_value_matches_one_name_exactly),
    };
    static const struct CMUnitTest token[] = {
        cmocka_unit_test(token_digest_round_trips_through_hex),
        cmocka_unit_test(token_bad_hex_is_refused),
        cmocka_unit_test(token_check_compares_whole_digests),
    };
    const unit_group groups[] = {
        UNIT_GROUP("dotenv", dotenv), UNIT_GROUP("env", env),         UNIT_GROUP("parse", parse),
        UNIT_GROUP("check", check),   UNIT_GROUP("imports", imports), UNIT_GROUP("file", file),
        UNIT_GROUP("opt", opt),       UNIT_GROUP("token", token),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
