/* Unit tests for shared/: the dotenv parser, the env model with its limits, and the value
 * grammars for durations, sizes and ports. */
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "alloc.h"
#include "buf.h"
#include "check.h"
#include "log.h"
#include "dotenv.h"
#include "env.h"
#include "error.h"
#include "imports.h"
#include "parse.h"

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
    collected c = parse_ok("export KEY=v # trailing\nHASH=a#b\n  # indented comment\nQ=\"x\" # c\n");
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
    nano_check_one_line("/srv/a.js: evaluation threw: Error: x\n    at /srv/lib.js:7:3", "/srv/a.js",
                        out, sizeof out);
    assert_string_equal(out, "/srv/lib.js:7:3: evaluation threw: Error: x");
    /* Already placed (a syntax error), or nothing to place it with: the first line. */
    nano_check_one_line("/srv/a.js:3:2: SyntaxError: Unexpected token '}'\nexport }\n ^", "/srv/a.js",
                        out, sizeof out);
    assert_string_equal(out, "/srv/a.js:3:2: SyntaxError: Unexpected token '}'");
    nano_check_one_line("/srv/a.js: evaluation threw: just a string", "/srv/a.js", out,
                        sizeof out);
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
                                      "import(", "'\\", "`\\", "/\\"};
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
        cmocka_unit_test(env_set_replace_and_find),
        cmocka_unit_test(env_limits),
        cmocka_unit_test(env_set_json_values),
        cmocka_unit_test(env_assignment),
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
    const unit_group groups[] = {
        UNIT_GROUP("dotenv", dotenv),
        UNIT_GROUP("env", env),
        UNIT_GROUP("parse", parse),
        UNIT_GROUP("check", check),
        UNIT_GROUP("imports", imports),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
