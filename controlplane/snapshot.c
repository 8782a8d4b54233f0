/* snapshot.c: SNAPAPPs from the store (contract in snapshot.h). */
#include "snapshot.h"

#include <string.h>

#include "config.h"
#include "log.h"
#include "msg.h"
#include "store.h"

/* An error message that quotes the very value the wire refused (bytes that are not UTF-8, say)
 * must not be refused in turn where it is shown or sent: printable ASCII only, in place. */
static void make_printable(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static int snapshot_app(cp_service *svc, const json_t *row, json_t **out, nano_error *err)
{
    cp_store *st = cp_service_store(svc);
    const char *name = json_string_value(json_object_get(row, "name"));
    const char *state = json_string_value(json_object_get(row, "state"));
    int64_t id = json_integer_value(json_object_get(row, "id"));
    json_int_t version = json_integer_value(json_object_get(row, "active_version"));
    if (name == NULL || state == NULL)
        return nano_error_set(err, NANO_EINVAL, "store", "an app row without name or state");
    json_t *a = json_pack("{s:s, s:O, s:I, s:O}", "app", name, "state",
                          json_object_get(row, "state"), "version", version, "sha256",
                          json_object_get(row, "active_sha256"));
    if (a != NULL)
        nano_app_spec_json_copy(a, row); /* the spec (app_spec.h), by its keys */
    if (a == NULL)                       /* a field the row lacks (json_pack refuses NULL for O) */
        return nano_error_set(err, NANO_EINVAL, "store", "app %s: its row lacks a field", name);
    json_t *dep = NULL, *vars = NULL, *secrets = NULL, *drain = NULL;
    int rc = 0;
    const char *what = "reading a deployment";
    if (version > 0)
        rc = cp_store_deployment_get(st, id, version, &dep);
    if (rc == 0) {
        what = "reading env";
        rc = cp_store_env_vars(st, id, &vars);
    }
    if (rc == 0) {
        what = "reading secrets";
        rc = cp_service_secret_values(svc, id, name, &secrets);
    }
    if (rc == 0 && strcmp(state, "draining") == 0) {
        what = "reading a drain";
        rc = cp_store_drain_get(st, name, &drain);
    }
    if (rc != 0) {
        json_decref(a);
        json_decref(dep);
        json_decref(vars);
        json_decref(secrets);
        return nano_error_set(err, rc, "store", "%s of app %s: %s", what, name,
                              cp_store_errmsg(st));
    }
    json_object_set(a, "main", dep ? json_object_get(dep, "main") : json_null());
    json_object_set_new(a, "modules",
                        dep ? json_incref(json_object_get(dep, "modules")) : json_array());
    json_object_set_new(a, "vars", vars);
    json_object_set_new(a, "secrets", secrets);
    if (drain != NULL)
        json_object_set(a, "drain_timeout_ms", json_object_get(drain, "timeout_ms"));
    json_decref(dep);
    json_decref(drain);
    /* The decoder's own check, so that what goes out is what a data plane takes. */
    rc = nano_msg_check_snapapp(a, err);
    if (rc != 0) {
        json_decref(a);
        return rc;
    }
    *out = a;
    return 0;
}

int cp_snapshot_app(cp_service *svc, const json_t *row, json_t **out, nano_error *err)
{
    int rc = snapshot_app(svc, row, out, err);
    if (rc != 0)
        make_printable(err->message);
    return rc;
}

int cp_snapshot_build(cp_service *svc, json_t **out, size_t *n_withheld, nano_error *err)
{
    cp_store *st = cp_service_store(svc);
    int rc = cp_store_begin_read(st);
    if (rc != 0)
        return nano_error_set(err, rc, "store", "starting a read: %s", cp_store_errmsg(st));
    int64_t seq = 0;
    json_t *rows = NULL;
    rc = cp_store_log_seq(st, &seq);
    if (rc == 0)
        rc = cp_store_app_list(st, &rows);
    if (rc != 0) {
        nano_error_set(err, rc, "store", "reading apps: %s", cp_store_errmsg(st));
        cp_store_rollback(st);
        return rc;
    }
    json_t *apps = json_array();
    size_t withheld = 0, i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        json_t *a = NULL;
        nano_error aerr = {0};
        if (cp_snapshot_app(svc, row, &a, &aerr) != 0) {
            const char *name = json_string_value(json_object_get(row, "name"));
            NANO_ERROR("cp.snapshot_app_withheld", "app=%s error_id=%s error=%s", name ? name : "?",
                       aerr.id, aerr.message);
            withheld++;
            /* A row without a valid name cannot even be named on the wire: left out. */
            if (name == NULL || !nano_app_name_valid(name))
                continue;
            a = json_pack("{s:s, s:s}", "app", name, "withheld", aerr.message);
        }
        json_array_append_new(apps, a);
    }
    /* A read: nothing to commit; ending it lets the WAL be checkpointed past it. */
    cp_store_rollback(st);
    json_decref(rows);
    if (n_withheld != NULL)
        *n_withheld = withheld;
    *out = json_pack("{s:I, s:o}", "seq", (json_int_t)seq, "apps", apps);
    return 0;
}
