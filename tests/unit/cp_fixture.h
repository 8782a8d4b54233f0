/* cp_fixture.h: what the files of the unit_cp runner share (cp_fixture.c): the fixture `fx`, a
 * service on a fresh data dir under a mkdtemp directory, set up and torn down around each test
 * (FX_TEST), and helpers that call the service or reach under it. Groups: migrations, secrets
 * and tokens (test_cp.c, with main), apps, validation and deploy (test_cp_apps.c), env and
 * logs (test_cp_env.c), estore (test_cp_estore.c: the etcd store itself), migrate (test_cp_migrate.c: a
 * whole store from SQLite to etcd and back).
 * With NANO_TEST_STORE=etcd (ctest's unit_cp_etcd.GROUP) the service runs on the etcd store, in
 * a real etcd the runner starts (etcd_fixture.h), each test under a fresh key prefix. */
#ifndef NANO_CP_FIXTURE_H
#define NANO_CP_FIXTURE_H

#include "unit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "secrets.h"
#include "service.h"

typedef struct fx {
    char root[64];
    char data[128];
    char db[160];
    char store_url[160]; /* "" with SQLite; the etcd store's URL (a fresh prefix per test) */
    cp_service *svc;
} fx;

/* fx_is_etcd: whether the runner tests the etcd store (NANO_TEST_STORE=etcd: unit_cp_etcd). */
bool fx_is_etcd(void);
/* fx_sqlite_only: skips the test on the etcd store, saying why (a test of SQLite itself). */
void fx_sqlite_only(const char *why);

/* The actor of every call the helpers make. */
extern const cp_actor FX_ADMIN;

/* A test run with fx_setup and fx_teardown; its state is the fx. */
#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int fx_setup(void **state);
int fx_teardown(void **state);
/* Opens f->svc on f->data (fx_setup does; a test that closed it may open it again). */
void fx_open_svc(fx *f);

/* Runs op with args given as JSON text; must succeed. Returns the result (owned). */
json_t *fx_call(fx *f, const char *op, const char *args_json);
/* Runs op; must fail with this status, code and field, and a message containing needle. */
void fx_call_fails(fx *f, const char *op, const char *args_json, int status, const char *code,
                   const char *field, const char *needle);
/* The config_seq the version op reports. */
int64_t fx_config_seq(fx *f);
/* How many entries audit.list returns (at most 1000). */
size_t fx_audit_count(fx *f);
/* A second connection to the database, as an operator with sqlite3 would have (SQLite only:
 * callers skip with fx_sqlite_only on etcd). */
void fx_sql(fx *f, const char *text);
/* Creates app name with the one hostname host; must succeed. */
void fx_create_app(fx *f, const char *name, const char *host);

/* The whole file, NUL-terminated (returned owned: nano_free), or NULL with *len 0. */
char *fx_read_all(const char *path, size_t *len);
/* Parses the master key hex into k; must succeed. */
void fx_key_of(const char *hex, cp_master_key *k);

/* The groups defined outside test_cp.c, for its main. */
extern const unit_group unit_cp_apps, unit_cp_validation, unit_cp_deploy, unit_cp_env, unit_cp_logs,
    unit_cp_estore, unit_cp_migrate;

#endif
