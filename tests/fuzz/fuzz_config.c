/* fuzz_config: the nano.json loader (shared/config_json.c), which nano-dp runs at start and
 * on every reload of an operator's file. Each input is written as nano.json into a
 * temp directory the target makes once, beside a few real files (modules that import each
 * other, env files, secret files, a directory, a file past the secret size limit), so that
 * relative paths resolve there and the loader's file reads run too. nano_config_load_json and
 * nano_config_load_node_egress both read it.
 *
 * Invariants, from config.h: on success the snapshot is sealed with the version asked for;
 * every app has a valid, unique name, valid lowercased hostnames without a trailing '.', no
 * hostname+prefix claimed twice, at most one default, a hostname unless it is the default,
 * limits within their bounds, its required env present, env entries within the env limits,
 * an absolute main_path and code that matches its sha256; routing sends each exact hostname
 * (in any case, with a port or a trailing '.') to its app and an unclaimed host to the
 * default app. If the config loads, its node egress loads too. On failure: a negative code,
 * an id, and a one-line message that starts with the file's path and never holds a secret
 * read from a file or the environment; *out untouched. No leak on any path (ASan build). */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "config.h"
#include "dotenv.h"
#include "fuzz.h"
#include "sha256.h"

#define SECRET_FILE_VALUE "s3cr3t-file-value-7f1"
#define SECRET_ENV_NAME "NANO_FUZZ_SECRET"
#define SECRET_ENV_VALUE "s3cr3t-env-value-a4e"

static char g_dir[256];  /* the temp directory, "" until made */
static char g_json[300]; /* g_dir/nano.json */
static uint64_t g_version;

/* The files the seeds name, relative to g_dir ("/" ends a directory). */
static const struct {
    const char *path;
    const char *text;
} g_files[] = {
    {"lib/", NULL},
    {"dir/", NULL},
    {"app.js", "import { x } from './lib/util.js';\nimport './missing.js';\n"
               "export default { fetch() { return new Response(x); } };\n"},
    {"lib/util.js", "export { y as x } from '../other.js';\nimport('./dyn.js');\n"},
    {"lib/dyn.js", "export const d = 1;\n"},
    {"other.js", "export const y = 'hi';\nexport default { fetch() {} };\n"},
    {".env", "A=1\nexport B='two'\n# a comment\nC=\"line\\nbreak\"\n"},
    {".env.prod", "B=3\nD=`four`\n"},
    {".env.bad", "this is not an assignment\n"},
    {"secret.txt", SECRET_FILE_VALUE "\n"},
    {"secret_crlf.txt", SECRET_FILE_VALUE "-crlf\r\n"},
    {"empty.txt", ""},
};

static void rm_dir(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/big.txt", g_dir);
    unlink(path);
    unlink(g_json);
    for (size_t i = sizeof g_files / sizeof g_files[0]; i-- > 0;) {
        snprintf(path, sizeof path, "%s/%s", g_dir, g_files[i].path);
        if (g_files[i].text != NULL)
            unlink(path);
        else
            rmdir(path);
    }
    rmdir(g_dir);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "fuzz_config: cannot write %s\n", path);
        abort();
    }
}

static void make_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nano-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) {
        perror("fuzz_config: mkdtemp");
        abort();
    }
    atexit(rm_dir);
    snprintf(g_json, sizeof g_json, "%s/nano.json", g_dir);
    char path[400];
    for (size_t i = 0; i < sizeof g_files / sizeof g_files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, g_files[i].path);
        if (g_files[i].text == NULL)
            mkdir(path, 0700);
        else
            write_file(path, g_files[i].text, strlen(g_files[i].text));
    }
    static char big[NANO_ENV_MAX_VALUE + 100];
    memset(big, 'x', sizeof big);
    snprintf(path, sizeof path, "%s/big.txt", g_dir);
    write_file(path, big, sizeof big);
    setenv(SECRET_ENV_NAME, SECRET_ENV_VALUE, 1);
}

static bool is_hex64(const char *s)
{
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[64] == '\0';
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void check_env(const nano_env *env)
{
    FUZZ_CHECK(env->n_entries <= NANO_ENV_MAX_ENTRIES);
    for (size_t i = 0; i < env->n_entries; i++) {
        const nano_env_entry *e = &env->entries[i];
        FUZZ_CHECK(nano_env_name_valid(e->name, strlen(e->name)));
        FUZZ_CHECK(e->value_len <= NANO_ENV_MAX_VALUE);
        FUZZ_CHECK(!(e->is_json && e->is_secret));
        FUZZ_CHECK(nano_env_find(env, e->name) == e); /* names are unique */
        if (e->is_json) {
            json_t *v = json_loadb(e->value, e->value_len, JSON_DECODE_ANY, NULL);
            FUZZ_CHECK(v != NULL);
            json_decref(v);
        }
    }
}

/* host lowercased into out with ":port" or "." appended (the router ignores both). */
static void variant(const char *host, const char *tail, bool upper, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s%s", host, tail);
    for (size_t i = 0; upper && i < n && i < cap; i++)
        if (out[i] >= 'a' && out[i] <= 'z')
            out[i] = (char)(out[i] - 'a' + 'A');
}

static void check_app(const nano_config *cfg, size_t index, const nano_app_config *app)
{
    FUZZ_CHECK(app->spec.name != NULL && nano_app_name_valid(app->spec.name));
    size_t found = (size_t)-1;
    FUZZ_CHECK(nano_config_find(cfg, app->spec.name, &found) == app && found == index);
    FUZZ_CHECK(app->spec.n_hostnames > 0 || app->spec.is_default);
    FUZZ_CHECK(app->spec.path_prefix == NULL || nano_path_prefix_valid(app->spec.path_prefix));
    for (size_t h = 0; h < app->spec.n_hostnames; h++) {
        const char *host = app->spec.hostnames[h];
        size_t len = strlen(host);
        FUZZ_CHECK(nano_hostname_valid(host) && len > 0 && host[len - 1] != '.');
        for (size_t k = 0; k < len; k++)
            FUZZ_CHECK(!(host[k] >= 'A' && host[k] <= 'Z'));
        /* hostname + prefix is claimed once in the whole snapshot */
        for (size_t j = 0; j < nano_config_n_apps(cfg); j++) {
            const nano_app_config *o = nano_config_app(cfg, j);
            for (size_t oh = 0; oh < o->spec.n_hostnames; oh++)
                if ((j != index || oh != h) && strcmp(o->spec.hostnames[oh], host) == 0)
                    FUZZ_CHECK(!same_str(o->spec.path_prefix, app->spec.path_prefix));
        }
        const char *path = app->spec.path_prefix ? app->spec.path_prefix : "/";
        long want = (long)index;
        if (host[0] == '*') {
            /* "x.SUFFIX": this app, unless an exact name or a longer wildcard takes it */
            char probe[300];
            snprintf(probe, sizeof probe, "x%s", host + 1);
            FUZZ_CHECK(nano_config_route(cfg, probe, strlen(probe), path, strlen(path)) >= 0);
            continue;
        }
        static const char *const tails[] = {"", ":8080", "."};
        for (size_t t = 0; t < 3; t++) {
            char probe[300];
            variant(host, tails[t], t != 0, probe, sizeof probe);
            FUZZ_CHECK(nano_config_route(cfg, probe, strlen(probe), path, strlen(path)) == want);
        }
    }
    FUZZ_CHECK(app->main_path != NULL && app->main_path[0] == '/');
    FUZZ_CHECK(app->code != NULL && app->code[app->code_len] == '\0');
    char hex[65];
    nano_sha256_hex(app->code, app->code_len, hex);
    FUZZ_CHECK(strcmp(hex, app->code_sha256) == 0);
    FUZZ_CHECK(app->imports_sha256[0] == '\0' || is_hex64(app->imports_sha256));
    FUZZ_CHECK(app->n_imports <= NANO_IMPORTS_MAX);
    for (size_t i = 0; i < app->n_imports; i++)
        FUZZ_CHECK(app->imports[i].path[0] == '/' &&
                   app->imports[i].code[app->imports[i].len] == '\0');
    FUZZ_CHECK(app->n_code_files >= 1);
    for (size_t i = 0; i < app->n_code_files; i++)
        FUZZ_CHECK(app->code_files[i][0] == '/');
    FUZZ_CHECK(nano_limits_check(&app->spec.limits, NULL) == 0);
    FUZZ_CHECK(nano_app_config_check_required_env(app, NULL) == 0);
    check_env(&app->env);
}

static void check_config(const nano_config *cfg)
{
    FUZZ_CHECK(nano_config_version(cfg) == g_version);
    size_t n = nano_config_n_apps(cfg);
    FUZZ_CHECK(nano_config_app(cfg, n) == NULL);
    long default_app = -1;
    bool is_probe_claimed = false;
    static const char probe[] = "fuzz-probe-host"; /* one label: no wildcard matches it */
    for (size_t i = 0; i < n; i++) {
        const nano_app_config *app = nano_config_app(cfg, i);
        FUZZ_CHECK(app != NULL);
        if (app->spec.is_default) {
            FUZZ_CHECK(default_app < 0); /* at most one */
            default_app = (long)i;
        }
        for (size_t h = 0; h < app->spec.n_hostnames; h++)
            is_probe_claimed |= strcmp(app->spec.hostnames[h], probe) == 0;
        check_app(cfg, i, app);
    }
    if (!is_probe_claimed) {
        long want = default_app >= 0 &&
                            nano_config_app(cfg, (size_t)default_app)->spec.path_prefix == NULL
                        ? default_app
                        : -1;
        FUZZ_CHECK(nano_config_route(cfg, probe, sizeof probe - 1, "/", 1) == want);
    }
}

/* What every failure must look like (config.h: one line naming the file; no secret). */
static void check_error(int rc, const nano_error *err, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(rc < 0 && err->code == rc);
    FUZZ_CHECK(err->id[0] != '\0');
    FUZZ_CHECK(strncmp(err->message, g_json, strlen(g_json)) == 0);
    FUZZ_CHECK(strlen(err->message) > strlen(g_json));
    FUZZ_CHECK(strpbrk(err->message, "\r\n") == NULL);
    /* Values read from a file or the environment: unless the input holds them itself. */
    static const char *const secrets[] = {SECRET_FILE_VALUE, SECRET_ENV_VALUE};
    for (size_t i = 0; i < 2; i++)
        if (memmem(data, size, secrets[i], strlen(secrets[i])) == NULL)
            FUZZ_CHECK(strstr(err->message, secrets[i]) == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (g_dir[0] == '\0')
        make_dir();
    write_file(g_json, data, size);
    g_version++;

    nano_config *sentinel = (nano_config *)&g_version, *cfg = sentinel;
    nano_error err;
    memset(&err, 0, sizeof err);
    int rc = nano_config_load_json(g_json, g_version, &cfg, &err);
    if (rc == 0) {
        FUZZ_CHECK(cfg != sentinel && cfg != NULL);
        check_config(cfg);
        nano_config_unref(cfg);
    } else {
        FUZZ_CHECK(cfg == sentinel);
        check_error(rc, &err, data, size);
    }

    nano_egress *node = (nano_egress *)&g_version;
    nano_error eerr;
    memset(&eerr, 0, sizeof eerr);
    int erc = nano_config_load_node_egress(g_json, &node, &eerr);
    if (erc == 0) {
        FUZZ_CHECK(node != (nano_egress *)&g_version);
        nano_egress_unref(node);
    } else {
        FUZZ_CHECK(rc != 0); /* load_json checks the same object: it cannot have passed */
        FUZZ_CHECK(node == (nano_egress *)&g_version);
        check_error(erc, &eerr, data, size);
    }
    return 0;
}

void fuzz_seeds(fuzz_add_fn add)
{
    static const char *const docs[] = {
        /* docs/config.md's example, with every app key */
        "{\"apps\": [\n"
        " {\"name\": \"api\", \"hostnames\": [\"API.Example.com.\", \"api.example.net\"],\n"
        "  \"path\": \"./app.js\", \"env_files\": [\".env\", \".env.prod\"],\n"
        "  \"env\": {\"API_HOST\": \"https://api.example.com\", \"FLAGS\": {\"beta\": true},\n"
        "           \"N\": 42, \"L\": [1, \"a\", null], \"Z\": null, \"U\": \"\\u00e9\"},\n"
        "  \"secrets\": {\"API_KEY\": {\"fromEnv\": \"" SECRET_ENV_NAME "\"},\n"
        "               \"DB_PASS\": {\"fromFile\": \"./secret.txt\"},\n"
        "               \"CRLF\": {\"fromFile\": \"secret_crlf.txt\"}, \"LIT\": \"literal\"},\n"
        "  \"required_env\": [\"API_KEY\", \"DB_PASS\", \"A\", \"B\"],\n"
        "  \"limits\": {\"cpu_ms\": 50, \"memory_mb\": 128, \"drain_timeout\": \"30s\",\n"
        "             \"wall_time\": 1.5, \"max_body\": \"1MiB\", \"max_head\": \"64KiB\",\n"
        "             \"max_concurrent\": 8, \"max_queued\": 16, \"subrequests\": 5},\n"
        "  \"node_compat\": true,\n"
        "  \"egress\": {\"allow\": [\"10.0.5.20:5432\", \"[::1]:8080\", \"db.internal\"],\n"
        "             \"deny\": [\"*.corp.example.com\", \"fd00::/8\"]}},\n"
        " {\"name\": \"api-v2\", \"hostname\": \"api.example.com\", \"path_prefix\": \"/v2\",\n"
        "  \"path\": \"lib/util.js\"},\n"
        " {\"name\": \"sites\", \"hostname\": \"*.example.com\", \"path\": \"app.js\"},\n"
        " {\"name\": \"not-found\", \"default\": true, \"hostnames\": [], \"path\": \"other.js\"}\n"
        "], \"egress\": {\"deny\": [\"10.0.0.0/8\", \"169.254.0.0/16:80\"]}}\n",
        "{\"apps\": []}",
        "{\"apps\": [{\"name\": \"a\", \"default\": true, \"path_prefix\": \"/x/y\", "
        "\"path\": \"app.js\"}, {\"name\": \"b\", \"hostname\": \"localhost\", "
        "\"path\": \"other.js\", \"limits\": {\"wall_time\": \"1500ms\", "
        "\"drain_timeout\": 300}}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\"}]}",
        /* hostnames shared under prefixes, and wildcards within wildcards */
        "{\"apps\": [{\"name\": \"w\", \"hostnames\": [\"*.b.test\", \"*.test\", \"b.test\"], "
        "\"path\": \"lib/util.js\", \"path_prefix\": \"/api/v1\"}, {\"name\": \"x\", "
        "\"hostname\": \"b.test\", \"path\": \"other.js\", \"path_prefix\": \"/api\"}, "
        "{\"name\": \"y\", \"hostnames\": [\"b.test\", \"c.b.test\"], \"path\": \"other.js\"}, "
        "{\"name\": \"z\", \"hostname\": \"*.b.test\", \"path_prefix\": \"/z\", "
        "\"path\": \"other.js\"}]}",
        "{\"apps\": [{\"name\": \"d\", \"default\": true, \"path\": \"other.js\", "
        "\"env\": {\"A\": \"x\", \"B\": [], \"C\": -1.5e3}, \"secrets\": {\"S\": "
        "{\"fromFile\": \"secret.txt\"}}, \"required_env\": [\"S\", \"A\"]}], \"egress\": {}}",
        "{\"apps\": [{\"name\": \"f\", \"hostname\": \"f.test\", \"path\": \"app.js\", "
        "\"env_files\": [\".env.prod\"], \"node_compat\": false, \"limits\": {\"max_body\": 1024, "
        "\"max_head\": \"1KiB\", \"cpu_ms\": 1, \"memory_mb\": 16, \"wall_time\": \"5m\"}}]}",
        "{\"apps\": [{\"name\": \"g\", \"hostname\": \"G.Test.\", \"path\": \"./lib/../app.js\", "
        "\"egress\": {\"allow\": [\"10.0.0.1\"], \"deny\": []}}], "
        "\"egress\": {\"allow\": [\"*.example.com:443\"], \"deny\": [\"::1\"]}}",
        /* conflicts add_app and seal refuse */
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"x.test\", \"path\": \"app.js\"},"
        " {\"name\": \"b\", \"hostname\": \"X.TEST.\", \"path\": \"app.js\"}]}",
        "{\"apps\": [{\"name\": \"a\", \"default\": true, \"path\": \"app.js\"},"
        " {\"name\": \"a\", \"default\": true, \"path\": \"app.js\"}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"required_env\": [\"MISSING\", \"ALSO\"], \"env\": {\"X\": 1}}]}",
        /* file errors: a directory, a missing module, a secret past the limit, an empty one */
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"dir\"}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"nope.js\"}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"secrets\": {\"S\": {\"fromFile\": \"big.txt\"}}}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"secrets\": {\"E\": {\"fromFile\": \"empty.txt\"}, \"D\": {\"fromFile\": \"dir\"}}}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"secrets\": {\"T\": {\"fromEnv\": \"NANO_FUZZ_UNSET\"}}}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"env_files\": [\".env\", \".env.bad\", \"missing.env\"]}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"secrets\": {\"S\": {\"fromEnv\": \"NANO_FUZZ_UNSET\", \"fromFile\": \"secret.txt\"}, "
        "\"T\": {\"fromEnv\": \"NANO_FUZZ_UNSET\"}}, \"env\": {\"S\": \"both\"}}]}",
        /* value errors: names, hostnames, prefixes, limits, keys, types, egress */
        "{\"apps\": [{\"name\": \"-Bad\", \"hostname\": \"a..b\", \"path\": \"\"}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostnames\": [\"*.ok.test\", \"a.*.test\", 7], "
        "\"path\": \"app.js\", \"path_prefix\": \"/a//b/\"}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"limits\": {\"cpu_ms\": 0, \"memory_mb\": \"lots\", \"max_body\": \"9EiB\", "
        "\"drain_timeout\": -1, \"cpu\": 5}}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"hostnmae\": \"x\", \"default\": \"yes\", \"node_compat\": 1}], \"extra\": {}}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"env\": {\"1BAD\": \"x\", \"OK\": \"x\", \"OK\": \"dup\"}}]}",
        "{\"apps\": [{\"name\": \"a\", \"hostname\": \"a.test\", \"path\": \"app.js\", "
        "\"egress\": {\"allow\": [\"10.0.0.0/33\"], \"deny\": [\"\"], \"other\": 1}}]}",
        "{\"apps\": [], \"egress\": {\"deny\": [\"[::1\", \"host:99999\", 5]}}",
        "{\"egress\": {\"allow\": [\"*.example.com:443\"]}}",
        "[1, 2, {\"apps\": \"no\"}]",
        "{\"apps\": [{\"name\": \"a\", \"path\": \"app.js\" \n\n  \"x\": tru}]}",
        "{\"apps\": [{\"name\": \"a\\u0000b\", \"hostname\": \"\\udc00\", \"path\": \"app.js\"}]}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        add(docs[i], strlen(docs[i]));
}
