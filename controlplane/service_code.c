/* service_code.c: deployments (service.h): deploy, list, rollback, and the load check a
 * deployment passes before it is stored (shared/check.h). */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include "service_int.h"

/* --- deployments ---------------------------------------------------------------------------- */

static int cmp_module(const void *a, const void *b)
{
    return strcmp(((const cp_module *)a)->name, ((const cp_module *)b)->name);
}

/* Reads args.modules into mods (sorted by name; borrowed from args). */
static int read_modules(json_t *args, const char *main, cp_module **out, size_t *n_out,
                        cp_error *err)
{
    json_t *mods = json_object_get(args, "modules");
    if (mods == NULL)
        return cp_error_set(err, 400, "invalid_field", "modules", "modules is required");
    if (!json_is_object(mods) || json_object_size(mods) == 0)
        return cp_error_set(err, 400, "invalid_field", "modules",
                            "modules must be an object of {\"file.js\": \"source\"}, with at "
                            "least one module");
    if (json_object_size(mods) > MAX_MODULES)
        return cp_error_set(err, 413, "too_large", "modules", "a deployment has at most %d modules",
                            MAX_MODULES);
    cp_module *list = nano_xcalloc(json_object_size(mods), sizeof *list);
    size_t n = 0, total = 0;
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(mods, key, v) {
        char field[300], b[72];
        snprintf(field, sizeof field, "modules[\"%s\"]", cp_service__shown(key, b, sizeof b));
        if (!nano_msg_module_name_valid(key)) {
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "\"%s\" is not a valid module name: use a relative path of "
                              "letters, digits, '.', '_' and '-' (no \".\" or \"..\" segments)",
                              b);
            break;
        }
        if (!json_is_string(v)) {
            rc = cp_error_set(err, 400, "invalid_field", field,
                              "a module's source must be a string, not %s", nano_json_type_name(v));
            break;
        }
        total += json_string_length(v);
        if (total > NANO_CODE_MAX_BYTES) {
            rc = cp_error_set(err, 413, "too_large", "modules",
                              "the modules are larger than the %u MiB limit",
                              NANO_CODE_MAX_BYTES / (1024 * 1024));
            break;
        }
        list[n].name = key;
        list[n].data = json_string_value(v);
        list[n].len = json_string_length(v);
        nano_sha256_hex(list[n].data, list[n].len, list[n].sha256);
        n++;
    }
    if (rc == 0 && json_object_get(mods, main) == NULL) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "main",
                          "main \"%s\" is not one of the modules",
                          cp_service__shown(main, b, sizeof b));
    }
    if (rc != 0) {
        nano_free(list);
        return rc;
    }
    qsort(list, n, sizeof *list, cmp_module);
    *out = list;
    *n_out = n;
    return 0;
}

/* The bundle's hash (shared/msg.h's rule); mods are in name order (read_modules sorts). */
static void bundle_sha256(const cp_module *mods, size_t n, char out[65])
{
    const char **names = nano_xcalloc(n, sizeof *names), **shas = nano_xcalloc(n, sizeof *shas);
    for (size_t i = 0; i < n; i++) {
        names[i] = mods[i].name;
        shas[i] = mods[i].sha256;
    }
    nano_msg_bundle_sha256(names, shas, n, out);
    nano_free(names);
    nano_free(shas);
}

/* --- the load check of a deployment (shared/check.h) ----------------------------------------- */

uint64_t cp_service__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

/* Writes mods under dir (module names are relative paths: read_modules checked them). */
static int write_modules(const char *dir, const cp_module *mods, size_t n, nano_error *err)
{
    nano_buf path = NANO_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        nano_buf_reset(&path);
        nano_buf_appendf(&path, "%s/%s", dir, mods[i].name);
        char *p = (char *)nano_buf_cstr(&path);
        for (char *slash = strchr(p + strlen(dir) + 1, '/'); slash != NULL;
             slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                rc = nano_error_set(err, -errno, "check_failed", "mkdir %s: %s", p,
                                    strerror(errno));
            *slash = '/';
        }
        int fd = rc == 0 ? open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
        if (rc == 0 && fd < 0)
            rc = nano_error_set(err, -errno, "check_failed", "create %s: %s", p, strerror(errno));
        for (size_t off = 0; rc == 0 && off < mods[i].len;) {
            ssize_t w = write(fd, mods[i].data + off, mods[i].len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = nano_error_set(err, NANO_EIO, "check_failed", "write %s: %s", p,
                                    strerror(errno));
            else
                off += (size_t)w;
        }
        if (fd >= 0)
            close(fd);
    }
    nano_buf_fini(&path);
    return rc;
}

/* The app's env as its nodes get it (vars, and secret values decrypted), for a top level
 * that reads process.env. An entry that cannot be read is left out (its nodes would not
 * have it either). */
static void app_env(cp_service *svc, json_t *app, nano_env *env)
{
    json_t *jid = json_object_get(app, "id");
    const char *name = json_string_value(json_object_get(app, "name"));
    if (!json_is_integer(jid) || name == NULL)
        return;
    int64_t id = json_integer_value(jid);
    json_t *vars = NULL, *secrets = NULL;
    nano_error e = {0};
    const char *k;
    json_t *v;
    if (cp_store_env_vars(svc->st, id, &vars) == 0) {
        json_object_foreach(vars, k, v) {
            if (json_is_string(v)) {
                nano_env_set(env, k, json_string_value(v), json_string_length(v), false, &e);
            } else {
                char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                if (text != NULL)
                    nano_env_set_json(env, k, text, strlen(text), &e);
                free(text);
            }
        }
    }
    if (cp_service_secret_values(svc, id, name, &secrets) == 0) {
        json_object_foreach(secrets, k, v) {
            nano_env_set(env, k, json_string_value(v), json_string_length(v), true, &e);
        }
    }
    json_decref(vars);
    json_decref(secrets);
}

/* check_bundle: the bundle's main module loads as app would load it (its limits,
 * node_compat and env; NULL: the defaults), checked by `nano-dp check` in a child process. 0 when
 * it loads or when no checker is configured; NANO_EINVAL with err (the checker's id and one line,
 * module paths relative to the bundle) when it does not; another code when the check could not be
 * made. Blocks the service thread for the check (about 0.1 s; at most the load CPU budget plus
 * NANO_CHECK_SLACK_MS). */
int cp_service__check_bundle(cp_service *svc, json_t *app, const char *main, const cp_module *mods,
                             size_t n, nano_error *err)
{
    if (svc->checker == NULL)
        return 0;
    nano_limits lim = nano_limits_defaults();
    json_t *jl = json_object_get(app, "limits");
    if (json_is_object(jl) && nano_limits_from_json(jl, &lim, "limits.", NULL, err) != 0)
        lim = nano_limits_defaults(); /* stored by this service: valid; defaults otherwise */
    nano_buf dir = NANO_BUF_INIT;
    nano_buf_appendf(&dir, "%s/check.XXXXXX", svc->data_dir);
    if (mkdtemp((char *)nano_buf_cstr(&dir)) == NULL) {
        int rc = nano_error_set(err, -errno, "check_failed", "cannot make %s: %s",
                                nano_buf_cstr(&dir), strerror(errno));
        nano_buf_fini(&dir);
        return rc;
    }
    const char *d = nano_buf_cstr(&dir);
    int rc = write_modules(d, mods, n, err);
    if (rc == 0) {
        nano_env env;
        nano_env_init(&env);
        app_env(svc, app, &env);
        nano_buf path = NANO_BUF_INIT;
        nano_buf_appendf(&path, "%s/%s", d, main);
        nano_check_options co = {
            .checker = svc->checker,
            .path = nano_buf_cstr(&path),
            .name = app != NULL ? json_string_value(json_object_get(app, "name")) : NULL,
            .cpu_ms = nano_check_cpu_ms(lim.cpu_ms),
            .memory_mb = lim.memory_mb,
            .node_compat = json_is_true(json_object_get(app, "node_compat")),
            .env = &env};
        rc = nano_check_module(&co, err);
        nano_buf_fini(&path);
        nano_env_fini(&env);
    }
    if (rc != 0) {
        /* The bundle's own names: "index.js:3:5: ...", not this scratch directory's. */
        char *msg = err->message;
        size_t dl = strlen(d);
        for (char *at = strstr(msg, d); at != NULL; at = strstr(at, d)) {
            size_t cut = dl + (at[dl] == '/' ? 1 : 0);
            memmove(at, at + cut, strlen(at + cut) + 1);
        }
    }
    nftw(d, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    nano_buf_fini(&dir);
    return rc;
}

/* code.put then app.put for the deployment that just became active. */ /* code.put then app.put for
                                                                           the deployment that just
                                                                           became active. */
static int log_activation(cp_service *svc, const char *name, json_t *dep, cp_error *err)
{
    json_t *p = json_pack("{s:s, s:O, s:O, s:O, s:O}", "app", name, "version",
                          json_object_get(dep, "version"), "sha256", json_object_get(dep, "sha256"),
                          "main", json_object_get(dep, "main"), "modules",
                          json_object_get(dep, "modules"));
    int rc = cp_service__log_delta(svc, "code.put", name, p, err);
    return rc == 0 ? cp_service__log_app_put(svc, name, err) : rc;
}

int cp_service__op_apps_deploy(cp_service *svc, const cp_actor *actor, json_t *args,
                               json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "main", "modules", NULL};
    const char *name, *main = NULL;
    json_t *app = NULL, *dep = NULL;
    int64_t id = 0, dep_id = 0, version = 0;
    cp_module *mods = NULL;
    size_t n_mods = 0;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    if (rc == 0)
        rc = cp_service__get_str(args, "main", true, &main, err);
    if (rc == 0 && !nano_msg_module_name_valid(main)) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "main", "\"%s\" is not a valid module name",
                          cp_service__shown(main, b, sizeof b));
    }
    if (rc == 0)
        rc = read_modules(args, main, &mods, &n_mods, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    if (rc == 0)
        rc = cp_service__check_required_now(svc, app, id, name, err);
    if (rc == 0) {
        /* A version that does not load never becomes active (its nodes would answer 500). */
        nano_error ce = {0};
        uint64_t t0 = cp_service__mono_ms();
        int crc = cp_service__check_bundle(svc, app, main, mods, n_mods, &ce);
        if (crc == NANO_EINVAL) {
            NANO_WARN("cp.deploy_refused", "app=%s error_id=%s check_ms=%llu error=%s", name, ce.id,
                      (unsigned long long)(cp_service__mono_ms() - t0), ce.message);
            rc = cp_error_set(err, 400, "module_invalid", "modules", "%s (%s)", ce.message, ce.id);
        } else if (crc != 0) {
            NANO_ERROR("cp.deploy_check_failed", "app=%s error=%s", name, ce.message);
            rc = cp_error_set(err, 500, "internal", "", "cannot check the module: %s", ce.message);
        }
    }
    char sha[65];
    if (rc == 0) {
        bundle_sha256(mods, n_mods, sha);
        rc = cp_store_deployment_insert(svc->st, id, sha, main, mods, n_mods,
                                        actor && actor->who ? actor->who : "unknown", &dep_id,
                                        &version);
        if (rc == 0)
            rc = cp_store_app_activate(svc->st, id, dep_id);
        if (rc == 0)
            rc = cp_store_deployment_get(svc->st, id, version, &dep);
        if (rc != 0)
            rc = cp_service__store_fail(svc, rc, "storing a deployment", err);
    }
    if (rc == 0)
        rc = log_activation(svc, name, dep, err);
    if (rc == 0)
        rc = cp_service__audit(svc, actor, "apps.deploy", name,
                               json_pack("{s:I, s:s, s:I, s:O}", "version", (json_int_t)version,
                                         "sha256", sha, "modules", (json_int_t)n_mods, "size",
                                         json_object_get(dep, "size")),
                               err);
    if (rc == 0)
        *result = cp_service__deployment_view(dep);
    nano_free(mods);
    json_decref(app);
    json_decref(dep);
    return rc;
}

int cp_service__op_deployments_list(cp_service *svc, const cp_actor *actor, json_t *args,
                                    json_t **result, cp_error *err)
{
    (void)actor;
    const char *name;
    json_t *app = NULL, *rows = NULL;
    int64_t id = 0;
    int rc = cp_service__open_app(svc, args, cp_service__name_only, &name, &app, &id, err);
    if (rc == 0 && (rc = cp_store_deployment_list(svc->st, id, &rows)) != 0)
        rc = cp_service__store_fail(svc, rc, "listing deployments", err);
    if (rc == 0) {
        json_t *list = json_array();
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            json_array_append_new(list, cp_service__deployment_view(row));
        }
        *result = json_pack("{s:o}", "deployments", list);
    }
    json_decref(app);
    json_decref(rows);
    return rc;
}

int cp_service__op_apps_rollback(cp_service *svc, const cp_actor *actor, json_t *args,
                                 json_t **result, cp_error *err)
{
    static const char *const fields[] = {"name", "version", NULL};
    const char *name;
    json_t *app = NULL, *dep = NULL;
    int64_t id = 0;
    int rc = cp_service__check_fields(args, fields, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, &name, err);
    json_t *jv = json_object_get(args, "version");
    if (rc == 0 && (!json_is_integer(jv) || json_integer_value(jv) < 1))
        rc = cp_error_set(err, 400, "invalid_field", "version",
                          "version must be a whole number of 1 or more");
    if (rc == 0)
        rc = cp_service__load_app(svc, name, &app, &id, err);
    if (rc == 0)
        rc = cp_service__refuse_draining(app, name, err);
    int64_t version = rc == 0 ? json_integer_value(jv) : 0;
    if (rc == 0) {
        int found = cp_store_deployment_get(svc->st, id, version, &dep);
        if (found == NANO_ENOTFOUND)
            rc = cp_error_set(err, 404, "version_not_found", "version",
                              "app %s has no version %lld", name, (long long)version);
        else if (found != 0)
            rc = cp_service__store_fail(svc, found, "reading a deployment", err);
    }
    if (rc == 0 && json_is_true(json_object_get(dep, "active"))) { /* nothing to change */
        *result = cp_service__deployment_view(dep);
        json_decref(dep);
        json_decref(app);
        return 0;
    }
    if (rc == 0)
        rc = cp_service__check_required_now(svc, app, id, name, err);
    if (rc == 0) {
        json_int_t from = json_integer_value(json_object_get(app, "active_version"));
        rc = cp_store_app_activate(svc->st, id, json_integer_value(json_object_get(dep, "id")));
        json_decref(dep);
        dep = NULL;
        if (rc == 0)
            rc = cp_store_deployment_get(svc->st, id, version, &dep);
        if (rc != 0)
            rc = cp_service__store_fail(svc, rc, "activating a deployment", err);
        if (rc == 0)
            rc = log_activation(svc, name, dep, err);
        if (rc == 0)
            rc = cp_service__audit(svc, actor, "apps.rollback", name,
                                   json_pack("{s:I, s:I}", "from", from, "to", (json_int_t)version),
                                   err);
    }
    if (rc == 0)
        *result = cp_service__deployment_view(dep);
    json_decref(app);
    json_decref(dep);
    return rc;
}
