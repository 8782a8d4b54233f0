/* cp_fixture.c: the unit_cp runner's fixture (cp_fixture.h). */
#define _GNU_SOURCE /* nftw */
#include "cp_fixture.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "alloc.h"
#include "etcd_fixture.h"
#include "log.h"
#include "secrets.h"

/* --- fixture -------------------------------------------------------------------------------- */

const cp_actor FX_ADMIN = {"admin", "test"};

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

bool fx_is_etcd(void)
{
    const char *s = getenv("NANO_TEST_STORE");
    return s != NULL && strcmp(s, "etcd") == 0;
}

void fx_sqlite_only(const char *why)
{
    if (fx_is_etcd()) {
        print_message("[  SKIP    ] SQLite only: %s\n", why);
        skip();
    }
}

void fx_open_svc(fx *f)
{
    cp_service_options o = {.data_dir = f->data,
                            .store_url = f->store_url[0] ? f->store_url : NULL};
    cp_error err = {0};
    if (cp_service_open(&o, &f->svc, &err) != 0)
        fail_msg("cp_service_open: %s", err.message);
}

int fx_setup(void **state)
{
    fx *f = nano_xcalloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/nano-cp-XXXXXX");
    if (mkdtemp(f->root) == NULL)
        return -1;
    snprintf(f->data, sizeof f->data, "%s/data", f->root);
    snprintf(f->db, sizeof f->db, "%s/nanocp.db", f->data);
    if (fx_is_etcd()) {
        unsigned char r[8];
        char hex[17];
        cp_random_bytes(r, sizeof r);
        cp_hex(r, sizeof r, hex);
        snprintf(f->store_url, sizeof f->store_url, "%s/t/%s", etcd_fx_url(), hex);
    }
    unsetenv("NANO_MASTER_KEY");
    nano_log_min_level = NANO_LOG_WARN;
    fx_open_svc(f);
    *state = f;
    return 0;
}

int fx_teardown(void **state)
{
    fx *f = *state;
    cp_service_free(f->svc);
    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    nano_free(f);
    return 0;
}

json_t *fx_call(fx *f, const char *op, const char *args_json)
{
    json_error_t jerr;
    json_t *args = args_json ? json_loads(args_json, 0, &jerr) : NULL;
    if (args_json != NULL && args == NULL)
        fail_msg("bad test JSON: %s: %s", args_json, jerr.text);
    json_t *result = NULL;
    cp_error err = {0};
    int rc = cp_service_call(f->svc, &FX_ADMIN, op, args, &result, &err);
    if (rc != 0)
        fail_msg("%s %s: %s (%s, field %s)", op, args_json ? args_json : "", err.message, err.code,
                 err.field);
    json_decref(args);
    assert_non_null(result);
    return result;
}

void fx_call_fails(fx *f, const char *op, const char *args_json, int status, const char *code,
                   const char *field, const char *needle)
{
    json_t *args = args_json ? json_loads(args_json, 0, NULL) : NULL;
    if (args_json != NULL && args == NULL)
        fail_msg("bad test JSON: %s", args_json);
    json_t *result = NULL;
    cp_error err = {0};
    int rc = cp_service_call(f->svc, &FX_ADMIN, op, args, &result, &err);
    json_decref(args);
    if (rc == 0) {
        json_decref(result);
        fail_msg("%s %s succeeded; expected %s", op, args_json ? args_json : "", code);
    }
    assert_null(result);
    if (err.status != status || strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)
        fail_msg("%s: got %d %s field '%s' (%s); expected %d %s field '%s'", op, err.status,
                 err.code, err.field, err.message, status, code, field);
    if (needle != NULL && strstr(err.message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err.message, needle);
    assert_null(strchr(err.message, '\n'));
}

int64_t fx_config_seq(fx *f)
{
    json_t *v = fx_call(f, "version", NULL);
    int64_t seq = json_integer_value(json_object_get(v, "config_seq"));
    json_decref(v);
    return seq;
}

size_t fx_audit_count(fx *f)
{
    json_t *a = fx_call(f, "audit.list", "{\"limit\": 1000}");
    size_t n = json_array_size(json_object_get(a, "entries"));
    json_decref(a);
    return n;
}

void fx_sql(fx *f, const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    char *msg = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sql %s: %s", text, msg);
    sqlite3_close(db);
}

char *fx_read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        *len = 0;
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *data = nano_xmalloc((size_t)n + 1);
    *len = fread(data, 1, (size_t)n, fp);
    data[*len] = '\0';
    fclose(fp);
    return data;
}

void fx_create_app(fx *f, const char *name, const char *host)
{
    char args[256];
    snprintf(args, sizeof args, "{\"name\": \"%s\", \"hostnames\": [\"%s\"]}", name, host);
    json_decref(fx_call(f, "apps.create", args));
}

void fx_key_of(const char *hex, cp_master_key *k)
{
    assert_int_equal(cp_master_key_from_hex(hex, strlen(hex), k), 0);
}
