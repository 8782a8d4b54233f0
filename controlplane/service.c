/* service.c: every admin operation once (contract in service.h). An op checks its args, and a
 * change runs in one transaction that the dispatcher opens before and commits after it: the
 * change, its config-log deltas and its audit entry commit together or not at all. */
#define _GNU_SOURCE /* nftw, mkdtemp */
#include "service_int.h"

/* --- errors --------------------------------------------------------------------------------- */

int cp_error_set(cp_error *err, int status, const char *code, const char *field, const char *fmt,
                 ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        snprintf(err->code, sizeof err->code, "%s", code);
        snprintf(err->field, sizeof err->field, "%s", field ? field : "");
        err->status = status;
    }
    switch (status) {
    case 400: return NANO_EINVAL;
    case 401: return -EACCES;
    case 404: return NANO_ENOTFOUND;
    case 409: return NANO_ESTATE;
    case 413: return NANO_ETOOBIG;
    default: return NANO_EIO;
    }
}

/* A store failure: logged with SQLite's message (which holds no values: they are bound),
 * answered as internal. */
int cp_service__store_fail(cp_service *svc, int rc, const char *what, cp_error *err)
{
    NANO_ERROR("cp.store_failed", "what=%s rc=%d error=%s", what, rc, cp_store_errmsg(svc->st));
    return cp_error_set(err, 500, "internal", NULL, "database error while %s", what);
}

/* Names from input go into one-line messages: control characters out, length bounded. */
const char *cp_service__shown(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; s != NULL && s[n] != '\0' && n + 1 < cap && n < 64; n++) {
        unsigned char c = (unsigned char)s[n];
        buf[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[n] = '\0';
    return buf;
}

/* --- args ----------------------------------------------------------------------------------- */

/* Every key of args is one the op takes. */
static bool listed(const char *const *list, const char *key)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (strcmp(list[i], key) == 0)
            return true;
    return false;
}

int cp_service__check_fields2(json_t *args, const char *const *allowed, const char *const *more,
                              cp_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(args, key, v) {
        if (!listed(allowed, key) && !listed(more, key)) {
            char b[72];
            return cp_error_set(err, 400, "bad_request", cp_service__shown(key, b, sizeof b),
                                "unknown field \"%s\"", b);
        }
    }
    return 0;
}

int cp_service__open_app(cp_service *svc, json_t *args, const char *const *allowed,
                         const char **name, json_t **app, int64_t *id, cp_error *err)
{
    int rc = cp_service__check_fields(args, allowed, err);
    if (rc == 0)
        rc = cp_service__get_app_name(args, name, err);
    if (rc == 0)
        rc = cp_service__load_app(svc, *name, app, id, err);
    return rc;
}

int cp_service__check_fields(json_t *args, const char *const *allowed, cp_error *err)
{
    return cp_service__check_fields2(args, allowed, NULL, err);
}

int cp_service__get_str(json_t *args, const char *key, bool required, const char **out,
                        cp_error *err)
{
    json_t *v = json_object_get(args, key);
    *out = NULL;
    if (v == NULL || (json_is_null(v) && !required))
        return required ? cp_error_set(err, 400, "invalid_field", key, "%s is required", key) : 0;
    if (!json_is_string(v))
        return cp_error_set(err, 400, "invalid_field", key, "%s must be a string, not %s", key,
                            nano_json_type_name(v));
    *out = json_string_value(v);
    return 0;
}

int cp_service__get_bool(json_t *args, const char *key, bool *out, cp_error *err)
{
    json_t *v = json_object_get(args, key);
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return cp_error_set(err, 400, "invalid_field", key, "%s must be true or false, not %s", key,
                            nano_json_type_name(v));
    *out = json_is_true(v);
    return 0;
}

/* args.name: a valid app name. */
int cp_service__get_app_name(json_t *args, const char **out, cp_error *err)
{
    int rc = cp_service__get_str(args, "name", true, out, err);
    if (rc == 0 && !nano_app_name_valid(*out)) {
        char b[72];
        rc = cp_error_set(err, 400, "invalid_field", "name",
                          "\"%s\" is not a valid app name: use 1 to 63 characters of a-z, 0-9 "
                          "and '-', starting with a letter or digit",
                          cp_service__shown(*out, b, sizeof b));
    }
    return rc;
}

/* The app named in args: its row in *app (owned) and its id. */
int cp_service__load_app(cp_service *svc, const char *name, json_t **app, int64_t *id,
                         cp_error *err)
{
    int rc = cp_store_app_get(svc->st, name, app);
    if (rc == NANO_ENOTFOUND)
        return cp_error_set(err, 404, "app_not_found", "name", "app %s does not exist", name);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "reading an app", err);
    *id = json_integer_value(json_object_get(*app, "id"));
    return 0;
}

int cp_service__refuse_draining(json_t *app, const char *name, cp_error *err)
{
    if (strcmp(json_string_value(json_object_get(app, "state")), "active") == 0)
        return 0;
    return cp_error_set(err, 409, "app_draining", "name",
                        "app %s is being removed: it takes no more changes", name);
}

/* --- result shapes -------------------------------------------------------------------------- */

/* The API's APP from a store row (a new object). */
json_t *cp_service__app_view(json_t *row)
{
    json_t *app = json_deep_copy(row);
    json_object_del(app, "id");
    json_object_del(app, "active_sha256");
    return app;
}

json_t *cp_service__deployment_view(json_t *row)
{
    json_t *d = json_deep_copy(row);
    json_object_del(d, "id");
    return d;
}

/* --- logs ----------------------------------------------------------------------------------- */

int cp_service__log_delta(cp_service *svc, const char *op, const char *app, json_t *payload,
                          cp_error *err)
{
    int rc = cp_store_log_append(svc->st, op, app, payload, NULL);
    json_decref(payload);
    return rc == 0 ? 0 : cp_service__store_fail(svc, rc, "appending to the config log", err);
}

/* app.put: what a data plane needs to route and limit the app, and which code it runs. */
int cp_service__log_app_put(cp_service *svc, const char *name, cp_error *err)
{
    json_t *row = NULL;
    int rc = cp_store_app_get(svc->st, name, &row);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "reading an app", err);
    json_t *p = json_pack(
        "{s:s, s:O, s:O, s:O}", "app", name, "state", json_object_get(row, "state"), "version",
        json_object_get(row, "active_version"), "sha256", json_object_get(row, "active_sha256"));
    nano_app_spec_json_copy(p, row);
    json_decref(row);
    return cp_service__log_delta(svc, "app.put", name, p, err);
}

int cp_service__audit(cp_service *svc, const cp_actor *actor, const char *op, const char *app,
                      json_t *detail, cp_error *err)
{
    int rc = cp_store_audit_append(svc->st, actor && actor->who ? actor->who : "unknown",
                                   actor && actor->via ? actor->via : "internal", op, app, detail);
    json_decref(detail);
    return rc == 0 ? 0 : cp_service__store_fail(svc, rc, "appending to the audit log", err);
}

/* --- required env --------------------------------------------------------------------------- */

/* Every name of required (a JSON array) that kinds ({NAME: kind}) lacks. */
int cp_service__check_required(json_t *required, json_t *kinds, const char *app, cp_error *err)
{
    nano_buf missing = NANO_BUF_INIT;
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(required, i, v) {
        if (json_object_get(kinds, json_string_value(v)) == NULL)
            nano_buf_appendf(&missing, "%s%s", n++ ? ", " : "", json_string_value(v));
    }
    int rc = 0;
    if (n > 0)
        rc = cp_error_set(err, 409, "required_env_missing", "required_env",
                          "app %s: required env missing: %s", app, nano_buf_cstr(&missing));
    nano_buf_fini(&missing);
    return rc;
}

int cp_service__check_required_now(cp_service *svc, json_t *app, int64_t id, const char *name,
                                   cp_error *err)
{
    json_t *kinds = NULL;
    int rc = cp_store_env_kinds(svc->st, id, &kinds);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "reading env names", err);
    rc = cp_service__check_required(json_object_get(app, "required_env"), kinds, name, err);
    json_decref(kinds);
    return rc;
}

bool cp_service__is_deployed(json_t *app)
{
    return json_integer_value(json_object_get(app, "active_version")) > 0;
}

/* --- dispatch ------------------------------------------------------------------------------- */

typedef int (*op_fn)(cp_service *svc, const cp_actor *actor, json_t *args, json_t **result,
                     cp_error *err);

static const struct {
    const char *name;
    op_fn fn;
    bool is_change; /* runs in a write transaction */
} ops[] = {
    {"apps.list", cp_service__op_apps_list, false},
    {"apps.create", cp_service__op_apps_create, true},
    {"apps.update", cp_service__op_apps_update, true},
    {"apps.get", cp_service__op_apps_get, false},
    {"apps.remove", cp_service__op_apps_remove, true},
    {"apps.drain", cp_service__op_apps_drain, false},
    {"apps.deploy", cp_service__op_apps_deploy, true},
    {"deployments.list", cp_service__op_deployments_list, false},
    {"apps.rollback", cp_service__op_apps_rollback, true},
    {"env.get", cp_service__op_env_get, false},
    {"env.patch", cp_service__op_env_patch, true},
    {"env.replace", cp_service__op_env_replace, true},
    {"secrets.list", cp_service__op_secrets_list, false},
    {"secrets.put", cp_service__op_secrets_put, true},
    {"secrets.delete", cp_service__op_secrets_delete, true},
    {"nodes.list", cp_service__op_nodes_list, false},
    {"nodes.remove", cp_service__op_nodes_remove, true},
    {"audit.list", cp_service__op_audit_list, false},
    {"version", cp_service__op_version, false},
};

/* One rule for every string an op is given, whatever the front (HTTP, the binary admin API,
 * nanoctl): no NUL and well-formed UTF-8, in object keys and values at any depth. What is
 * stored can then always be encoded for the data planes (shared/msg.c refuses a NUL, which
 * made every later snapshot fail), and no C string cuts one short ("a.test\0.evil" stored as
 * "a.test"). field is the path so far ("vars.K", "hostnames[1]"). */
static int check_strings(const json_t *v, char *field, size_t len, size_t cap, int depth,
                         cp_error *err)
{
    if (depth > 64)
        return 0; /* deeper values are refused by the ops' own depth limits */
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        const char *what = memchr(s, '\0', n) != NULL ? "holds a NUL byte"
                           : !nano_utf8_valid(s, n)   ? "is not valid UTF-8"
                                                      : NULL;
        if (what == NULL)
            return 0;
        return cp_error_set(err, 400, "invalid_field", len ? field : NULL, "%s %s",
                            len ? field : "a value", what);
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            int k = snprintf(field + len, cap - len, "[%zu]", i);
            size_t l = len + (k > 0 && (size_t)k < cap - len ? (size_t)k : 0);
            int rc = check_strings(m, field, l, cap, depth + 1, err);
            field[len] = '\0';
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(v))
        return 0;
    const char *key;
    size_t key_len;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, key_len, m) {
        char shown_key[72];
        bool bad_key = memchr(key, '\0', key_len) != NULL || !nano_utf8_valid(key, key_len);
        snprintf(shown_key, sizeof shown_key, "%.*s",
                 bad_key ? 0 : (int)(key_len > 64 ? 64 : key_len), key);
        int k = snprintf(field + len, cap - len, "%s%s", len ? "." : "",
                         bad_key ? "(key)" : shown_key);
        size_t l = len + (k > 0 && (size_t)k < cap - len ? (size_t)k : 0);
        int rc = bad_key ? cp_error_set(err, 400, "invalid_field", field,
                                        "%s: a name that holds a NUL byte or is not UTF-8", field)
                         : check_strings(m, field, l, cap, depth + 1, err);
        field[len] = '\0';
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A commit that lost to another replica's (etcd store): whether to run the transaction again
 * (after a jittered backoff: 2-12 ms, doubling up to 32 times that). After
 * CP_SERVICE_TX_ATTEMPTS, fills err as store_conflict (503) and says no. Two replicas taking
 * changes back to back lose about every other commit to each other: 6 attempts left one change
 * in ~60 without a commit (unit_cp_etcd.estore under ASan); 12 leave one in ~4000, and the
 * wider jitter makes each loss less likely. Sleeps on the service thread: at most ~2.5 s in
 * all, only while the store is contended. */
static bool retry_conflict(cp_service *svc, int rc, int attempt, const char *what, cp_error *err)
{
    (void)svc;
    if (rc != NANO_ECONFLICT)
        return false;
    if (attempt + 1 >= CP_SERVICE_TX_ATTEMPTS) {
        NANO_WARN("cp.store_conflict", "what=%s attempts=%d", what, attempt + 1);
        cp_error_set(err, 503, "store_conflict", NULL,
                     "another change to the store kept winning (%d attempts): try again",
                     attempt + 1);
        return false;
    }
    unsigned char r = 0;
    cp_random_bytes(&r, 1);
    long us = (2000L + (long)r * 40L) << (attempt < 5 ? attempt : 5);
    struct timespec ts = {us / 1000000L, (us % 1000000L) * 1000L};
    nanosleep(&ts, NULL);
    return true;
}

int cp_service_call(cp_service *svc, const cp_actor *actor, const char *op, json_t *args,
                    json_t **result, cp_error *err)
{
    size_t i = 0;
    while (i < sizeof ops / sizeof ops[0] && (op == NULL || strcmp(ops[i].name, op) != 0))
        i++;
    if (i == sizeof ops / sizeof ops[0]) {
        char b[72];
        return cp_error_set(err, 400, "bad_request", "op", "unknown op \"%s\"",
                            cp_service__shown(op ? op : "", b, sizeof b));
    }
    json_t *empty = NULL;
    if (args == NULL)
        args = empty = json_object();
    if (!json_is_object(args)) {
        return cp_error_set(err, 400, "bad_request", NULL, "the arguments of %s must be an object",
                            ops[i].name);
    }
    /* Module sources are not names or values: they travel as code blobs (their own checks,
     * UTF-8 at the HTTP front), and a NUL inside JS source is legal. */
    json_t *modules = strcmp(ops[i].name, "apps.deploy") == 0 ? json_object_get(args, "modules")
                                                              : NULL;
    if (modules != NULL)
        json_incref(modules), json_object_del(args, "modules");
    char field[256] = "";
    int checked = check_strings(args, field, 0, sizeof field, 0, err);
    if (modules != NULL)
        json_object_set_new(args, "modules", modules);
    if (checked != 0) {
        json_decref(empty);
        return checked;
    }
    json_t *out = NULL;
    int rc = 0;
    for (int attempt = 0;; attempt++) {
        if (ops[i].is_change && (rc = cp_store_begin(svc->st)) != 0) {
            json_decref(empty);
            return cp_service__store_fail(svc, rc, "starting a transaction", err);
        }
        rc = ops[i].fn(svc, actor, args, &out, err);
        if (!ops[i].is_change)
            break;
        int committed = rc == 0 ? cp_store_commit(svc->st) : 0;
        if (rc != 0 || committed != 0)
            cp_store_rollback(svc->st);
        if (committed == 0 || !retry_conflict(svc, committed, attempt, ops[i].name, err)) {
            if (committed != 0 && committed != NANO_ECONFLICT)
                rc = cp_service__store_fail(svc, committed, "committing", err);
            else if (committed != 0)
                rc = committed;
            break;
        }
        json_decref(out); /* run again: the op reads everything anew */
        out = NULL;
    }
    json_decref(empty);
    if (rc != 0) {
        json_decref(out);
        return rc;
    }
    if (ops[i].is_change)
        NANO_INFO("cp.change", "op=%s who=%s via=%s", ops[i].name,
                  actor && actor->who ? actor->who : "unknown",
                  actor && actor->via ? actor->via : "internal");
    *result = out;
    return 0;
}

/* --- tokens ------------------------------------------------------------------------------- */

bool cp_service_check_token(cp_service *svc, const char *token, const char **who_out)
{
    if (token == NULL)
        return false;
    unsigned char d[NANO_TOKEN_DIGEST_BYTES];
    nano_token_digest(token, d);
    /* Every stored digest is compared, whatever matched before: the time taken says nothing
     * about which token, or how much of one, was right. */
    size_t match = svc->n_tokens;
    for (size_t i = 0; i < svc->n_tokens; i++)
        if (nano_token_digest_equal(d, svc->tokens[i].hash))
            match = i;
    if (match == svc->n_tokens)
        return false;
    if (who_out != NULL)
        *who_out = svc->tokens[match].name;
    return true;
}

/* A new token file: 32 random bytes as 64 hex digits and a newline, 0600, created
 * exclusively; hash_hex gets the token's sha256. */
static int make_token_file(const char *path, char hash_hex[65], cp_error *err)
{
    char buf[66];
    unsigned char raw[32];
    if (cp_random_bytes(raw, sizeof raw) != 0)
        return cp_error_set(err, 500, "startup", NULL, "cannot get random bytes for a token");
    cp_hex(raw, sizeof raw, buf);
    OPENSSL_cleanse(raw, sizeof raw);
    size_t len = 64;
    buf[len] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, buf, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(path);
        }
        OPENSSL_cleanse(buf, sizeof buf);
        return cp_error_set(err, 500, "startup", NULL, "cannot create token file %s: %s", path,
                            strerror(e));
    }
    close(fd);
    nano_sha256_hex(buf, len, hash_hex);
    OPENSSL_cleanse(buf, sizeof buf);
    return 0;
}

/* A token file (admin or node): read (a token of 32 to 512 printable characters, one trailing
 * newline allowed), or made when there is none. */
int cp_service_token_file(const char *path, char hash_hex[65], bool *created, cp_error *err)
{
    char *text = NULL;
    size_t size = 0;
    nano_error e = {0};
    *created = false;
    int rc = nano_read_file(path, 520, &text, &size, &e); /* 512 and line ends: see below */
    if (rc == -ENOENT) {
        rc = make_token_file(path, hash_hex, err);
        *created = rc == 0;
        return rc;
    }
    if (rc != 0 && rc != NANO_ETOOBIG)
        return cp_error_set(err, 500, "startup", NULL, "cannot open token file %s", e.message);
    struct stat stbuf;
    if (rc == 0 && stat(path, &stbuf) == 0 && (stbuf.st_mode & 077) != 0)
        NANO_WARN("cp.token_file_mode", "path=%s mode=%04o detail=%s", path,
                  (unsigned)(stbuf.st_mode & 07777), "readable by group or others");
    size_t len = size;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    bool ok = rc == 0 && len >= 32 && len <= 512;
    for (size_t i = 0; i < len && ok; i++)
        ok = text[i] > 0x20 && text[i] < 0x7f;
    if (ok)
        nano_sha256_hex(text, len, hash_hex);
    if (text != NULL)
        OPENSSL_cleanse(text, size);
    nano_free(text);
    if (!ok)
        return cp_error_set(err, 400, "startup", NULL,
                            "token file %s must hold one token of 32 to 512 printable "
                            "characters without spaces",
                            path);
    return 0;
}

static int load_tokens(cp_service *svc, cp_error *err)
{
    json_t *list = NULL;
    int rc = cp_store_token_list(svc->st, &list);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "reading tokens", err);
    svc->tokens = nano_xcalloc(json_array_size(list) + 1, sizeof *svc->tokens);
    size_t i;
    json_t *t;
    json_array_foreach(list, i, t) {
        cp_token *tok = &svc->tokens[svc->n_tokens];
        snprintf(tok->name, sizeof tok->name, "%s", json_string_value(json_object_get(t, "name")));
        if (nano_token_digest_from_hex(json_string_value(json_object_get(t, "hash")), tok->hash) ==
            0)
            svc->n_tokens++;
    }
    json_decref(list);
    return 0;
}

/* --- open / free ---------------------------------------------------------------------------- */

/* Creates the missing parents of dir (like mkdir -p; 0755 as umask allows): the default
 * ./var/nanocp must work from a fresh checkout. Errors surface from the final mkdir. */
static void make_parents(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return;
    memcpy(path, dir, len + 1);
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        (void)mkdir(path, 0755); /* EEXIST is the common case */
        *p = '/';
    }
}

static int make_data_dir(const char *dir, cp_error *err)
{
    make_parents(dir);
    if (mkdir(dir, 0700) == 0) {
        NANO_INFO("cp.data_dir_created", "path=%s", dir);
        return 0;
    }
    struct stat stbuf;
    if (errno == EEXIST && stat(dir, &stbuf) == 0 && S_ISDIR(stbuf.st_mode))
        return 0;
    return cp_error_set(err, 500, "startup", NULL, "cannot create data dir %s: %s", dir,
                        errno == EEXIST ? "exists and is not a directory" : strerror(errno));
}

/* Deployments are checked only with a checker that works here: one that cannot load a module
 * that loads everywhere (a nano-dp that cannot start on this host: libnode missing) is
 * dropped with a warning, and data planes remain the check of last resort. */
static void checker_start(cp_service *svc, const char *checker)
{
    static const char probe[] = "export default { fetch() { return new Response('ok'); } };\n";
    cp_module m = {.name = "probe.js", .data = probe, .len = sizeof probe - 1};
    svc->checker = nano_xstrdup(checker);
    nano_error e = {0};
    uint64_t t0 = cp_service__mono_ms();
    int rc = cp_service__check_bundle(svc, NULL, "probe.js", &m, 1, &e);
    if (rc != 0) {
        NANO_WARN("cp.checker_unavailable",
                  "checker=%s error=%s (deployments are not checked "
                  "before they are accepted)",
                  checker, e.message);
        nano_free(svc->checker);
        svc->checker = NULL;
        return;
    }
    NANO_INFO("cp.checker_ready", "checker=%s check_ms=%llu", checker,
              (unsigned long long)(cp_service__mono_ms() - t0));
}

int cp_service_open(const cp_service_options *opt, cp_service **out, cp_error *err)
{
    const char *dir = opt->data_dir ? opt->data_dir : "./var/nanocp";
    int rc = make_data_dir(dir, err);
    if (rc != 0)
        return rc;
    cp_service *svc = nano_xcalloc(1, sizeof *svc);
    svc->data_dir = nano_xstrdup(dir);
    nano_buf b = NANO_BUF_INIT;
    nano_buf_appendf(&b, "%s/nanocp.db", dir);
    svc->db_path = nano_xstrdup(opt->store_url ? opt->store_url : nano_buf_cstr(&b));
    nano_buf_reset(&b);
    if (opt->token_file != NULL)
        nano_buf_append_str(&b, opt->token_file);
    else
        nano_buf_appendf(&b, "%s/admin.token", dir);
    svc->token_path = nano_xstrdup(nano_buf_cstr(&b));
    nano_buf_fini(&b);

    nano_error e = {0};
    cp_key_source source;
    rc = cp_master_key_load(opt->master_key_file, dir, &svc->key, &source, svc->key_source,
                            sizeof svc->key_source, &e);
    if (rc != 0) {
        cp_error_set(err, 500, "startup", NULL, "%s", e.message);
        cp_service_free(svc);
        return rc;
    }
    if (source == CP_KEY_GENERATED)
        NANO_INFO("cp.master_key_created", "path=%s key_id=%s", svc->key_source, svc->key.id);
    if (opt->store_url != NULL) {
        cp_etcd_tls tls = {opt->store_cacert, opt->store_cert, opt->store_key};
        rc = cp_store_url_is_etcd(opt->store_url)
                 ? cp_store_open_etcd(opt->store_url,
                                      tls.cacert || tls.cert || tls.key ? &tls : NULL, true,
                                      &svc->st, &e)
                 : nano_error_set(&e, NANO_EINVAL, "store_url",
                                  "store %s: not an etcd://HOST:PORT[,...]/PREFIX or etcds:// URL",
                                  opt->store_url);
    } else {
        rc = cp_store_open(svc->db_path, true, &svc->st, &e);
    }
    if (rc != 0) {
        cp_error_set(err, 500, "startup", NULL, "%s", e.message);
        cp_service_free(svc);
        return rc;
    }
    char hash[65];
    bool created = false;
    rc = cp_service_token_file(svc->token_path, hash, &created, err);
    /* another replica starting at the same time may commit first (etcd store): again */
    int put = NANO_ECONFLICT;
    for (int attempt = 0; rc == 0 && put == NANO_ECONFLICT && attempt < CP_SERVICE_TX_ATTEMPTS;
         attempt++)
        put = cp_store_token_put(svc->st, "admin", hash);
    if (rc == 0 && put != 0)
        rc = cp_service__store_fail(svc, put, "storing the admin token", err);
    if (rc == 0)
        rc = load_tokens(svc, err);
    if (rc != 0) {
        cp_service_free(svc);
        return rc;
    }
    if (created)
        NANO_INFO("cp.admin_token_created", "path=%s", svc->token_path);
    if (opt->checker != NULL)
        checker_start(svc, opt->checker);
    int64_t schema = 0, seq = 0;
    cp_store_schema_version(svc->st, &schema);
    cp_store_log_seq(svc->st, &seq);
    NANO_INFO("cp.store_open", "path=%s schema_version=%lld config_seq=%lld key_id=%s",
              svc->db_path, (long long)schema, (long long)seq, svc->key.id);
    *out = svc;
    return 0;
}

void cp_service_free(cp_service *svc)
{
    if (svc == NULL)
        return;
    cp_store_free(svc->st); /* checkpoints the WAL */
    OPENSSL_cleanse(&svc->key, sizeof svc->key);
    nano_free(svc->tokens);
    nano_free(svc->data_dir);
    nano_free(svc->checker);
    nano_free(svc->db_path);
    nano_free(svc->token_path);
    nano_free(svc);
}

const char *cp_service_data_dir(const cp_service *svc)
{
    return svc->data_dir;
}

const char *cp_service_db_path(const cp_service *svc)
{
    return svc->db_path;
}

const char *cp_service_token_path(const cp_service *svc)
{
    return svc->token_path;
}

const char *cp_service_key_source(const cp_service *svc)
{
    return svc->key_source;
}

struct cp_store *cp_service_store(cp_service *svc)
{
    return svc->st;
}

/* --- for the distribution layer ---------------------------------------------------------- */

int cp_service_secret_values(cp_service *svc, int64_t app_id, const char *app, json_t **out)
{
    json_t *list = NULL;
    int rc = cp_store_secret_list(svc->st, app_id, &list);
    if (rc != 0)
        return rc;
    json_t *values = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s) {
        const char *name = json_string_value(json_object_get(s, "name"));
        cp_sealed sealed = {0};
        char *plain = NULL;
        size_t len = 0;
        rc = cp_store_secret_get(svc->st, app_id, name, &sealed);
        if (rc == 0 && cp_secret_open(&svc->key, app, name, &sealed, &plain, &len) != 0) {
            /* Another master key, or a tampered row: the app goes without this secret (its
             * required_env check on the data plane names it) and an operator is told. */
            NANO_ERROR("cp.secret_unreadable", "app=%s name=%s key_id=%s", app, name,
                       sealed.key_id);
            cp_sealed_fini(&sealed);
            continue;
        }
        cp_sealed_fini(&sealed);
        if (rc != 0)
            break;
        json_t *v = json_stringn(plain, len);
        explicit_bzero(plain, len);
        nano_free(plain);
        if (v == NULL) { /* not UTF-8: secrets come in as JSON strings, so never */
            NANO_ERROR("cp.secret_unreadable", "app=%s name=%s detail=%s", app, name, "not UTF-8");
            continue;
        }
        json_object_set_new(values, name, v);
    }
    json_decref(list);
    if (rc != 0) {
        json_decref(values);
        return rc;
    }
    *out = values;
    return 0;
}

static const cp_actor DRAIN_ACTOR = {"nanocp", "drain"};

/* Every running drain with no pending node left ends: the app is deleted, app.remove logged.
 * Runs inside the caller's transaction. */
int cp_service__finish_drains(cp_service *svc, bool *changed, cp_error *err)
{
    json_t *list = NULL;
    int rc = cp_store_drains_finished(svc->st, &list);
    if (rc != 0)
        return cp_service__store_fail(svc, rc, "reading drains", err);
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d) {
        const char *app = json_string_value(json_object_get(d, "app"));
        json_t *app_id = json_object_get(d, "app_id");
        json_int_t n_nodes = json_integer_value(json_object_get(d, "n_nodes"));
        json_int_t n_timed_out = json_integer_value(json_object_get(d, "n_timed_out"));
        if (json_is_integer(app_id)) {
            rc = cp_store_app_delete(svc->st, json_integer_value(app_id));
            if (rc != 0) {
                rc = cp_service__store_fail(svc, rc, "deleting an app", err);
                break;
            }
            rc = cp_service__log_delta(svc, "app.remove", app, json_pack("{s:s}", "app", app), err);
            if (rc == 0)
                rc = cp_service__audit(svc, &DRAIN_ACTOR, "apps.remove", app,
                                       json_pack("{s:s, s:I, s:I}", "state", "removed", "nodes",
                                                 n_nodes, "timed_out", n_timed_out),
                                       err);
            if (rc != 0)
                break;
            *changed = true;
        }
        rc = cp_store_drain_finish(svc->st, json_integer_value(json_object_get(d, "id")),
                                   n_timed_out > 0 ? "timed_out" : "done");
        if (rc != 0) {
            rc = cp_service__store_fail(svc, rc, "ending a drain", err);
            break;
        }
        NANO_INFO("cp.drain_done", "app=%s nodes=%lld timed_out=%lld", app, (long long)n_nodes,
                  (long long)n_timed_out);
    }
    json_decref(list);
    return rc;
}

/* Runs fn in a transaction, again from the start when its commit conflicts (retry_conflict). */
typedef int (*tx_fn)(cp_service *svc, void *arg, cp_error *err);

static int run_tx(cp_service *svc, const char *what, tx_fn fn, void *arg, cp_error *err)
{
    for (int attempt = 0;; attempt++) {
        int rc = cp_store_begin(svc->st);
        if (rc != 0)
            return cp_service__store_fail(svc, rc, "starting a transaction", err);
        rc = fn(svc, arg, err);
        int committed = rc == 0 ? cp_store_commit(svc->st) : 0;
        if (rc != 0 || committed != 0)
            cp_store_rollback(svc->st);
        if (rc != 0 || committed == 0)
            return rc;
        if (!retry_conflict(svc, committed, attempt, what, err))
            return committed == NANO_ECONFLICT
                       ? committed
                       : cp_service__store_fail(svc, committed, "committing", err);
    }
}

typedef struct tx_args {
    const char *node, *version, *addr, *app, *result;
    json_t *reports;
    uint64_t grace_ms;
    bool *changed;
} tx_args;

static int hello_tx(cp_service *svc, void *arg, cp_error *err)
{
    tx_args *a = arg;
    int rc = cp_store_node_hello(svc->st, a->node, a->version, a->addr);
    return rc == 0 ? 0 : cp_service__store_fail(svc, rc, "recording a node", err);
}

int cp_service_node_hello(cp_service *svc, const char *node, const char *version, const char *addr,
                          cp_error *err)
{
    tx_args a = {.node = node, .version = version, .addr = addr};
    return run_tx(svc, "node.hello", hello_tx, &a, err);
}

static int report_tx(cp_service *svc, void *arg, cp_error *err)
{
    tx_args *a = arg;
    *a->changed = false;
    const char *node;
    json_t *r;
    int64_t acked = 0;
    int rc = 0;
    json_object_foreach(a->reports, node, r) {
        char *apps = json_dumps(json_object_get(r, "apps"), JSON_COMPACT);
        rc = cp_store_node_report(
            svc->st, node, json_integer_value(json_object_get(r, "applied_seq")),
            apps ? apps : "{}", json_string_value(json_object_get(r, "seen_at")));
        free(apps);
        int64_t n = 0;
        if (rc == 0)
            rc = cp_store_drain_ack_from_status(svc->st, node, &n);
        if (rc != 0) {
            rc = cp_service__store_fail(svc, rc, "recording a node's status", err);
            break;
        }
        if (n > 0)
            NANO_INFO("cp.drain_acked", "node=%s rows=%lld via=status", node, (long long)n);
        acked += n;
    }
    if (rc == 0 && acked > 0)
        rc = cp_service__finish_drains(svc, a->changed, err);
    return rc;
}

int cp_service_nodes_report(cp_service *svc, json_t *reports, bool *changed, cp_error *err)
{
    *changed = false;
    if (json_object_size(reports) <= CP_SERVICE_REPORTS_PER_TX) {
        if (json_object_size(reports) == 0)
            return 0;
        tx_args a = {.reports = reports, .changed = changed};
        return run_tx(svc, "node.status", report_tx, &a, err);
    }
    /* Each node is a key of its own in the etcd store, whose transactions take at most 128
     * operations: a large fleet's reports go in several transactions. */
    json_t *part = json_object();
    const char *node;
    json_t *r;
    int rc = 0;
    void *it = json_object_iter(reports);
    while (rc == 0 && it != NULL) {
        node = json_object_iter_key(it);
        r = json_object_iter_value(it);
        json_object_set(part, node, r);
        it = json_object_iter_next(reports, it);
        if (json_object_size(part) == CP_SERVICE_REPORTS_PER_TX || it == NULL) {
            bool part_changed = false;
            tx_args a = {.reports = part, .changed = &part_changed};
            rc = run_tx(svc, "node.status", report_tx, &a, err);
            *changed = *changed || part_changed;
            json_object_clear(part);
        }
    }
    json_decref(part);
    return rc;
}

static int ack_tx(cp_service *svc, void *arg, cp_error *err)
{
    tx_args *a = arg;
    *a->changed = false;
    bool found = false;
    int rc = cp_store_drain_ack(svc->st, a->app, a->node,
                                strcmp(a->result, "timed_out") == 0 ? "timed_out" : "acked",
                                &found);
    if (rc != 0)
        rc = cp_service__store_fail(svc, rc, "recording a drain ack", err);
    if (rc == 0 && found) {
        NANO_INFO("cp.drain_acked", "node=%s app=%s result=%s via=drain.ack", a->node, a->app,
                  a->result);
        rc = cp_service__finish_drains(svc, a->changed, err);
    }
    return rc;
}

int cp_service_drain_ack(cp_service *svc, const char *node, const char *app, const char *result,
                         bool *changed, cp_error *err)
{
    *changed = false;
    tx_args a = {.node = node, .app = app, .result = result, .changed = changed};
    return run_tx(svc, "drain.ack", ack_tx, &a, err);
}

static int tick_tx(cp_service *svc, void *arg, cp_error *err)
{
    tx_args *a = arg;
    *a->changed = false;
    int64_t n = 0;
    int rc = cp_store_drain_expire(svc->st, a->grace_ms, &n);
    if (rc != 0)
        rc = cp_service__store_fail(svc, rc, "expiring drains", err);
    if (rc == 0 && n > 0)
        NANO_WARN("cp.drain_timed_out", "rows=%lld detail=%s", (long long)n,
                  "nodes that did not ack within the drain timeout count as timed out");
    /* Also finishes drains that need no wait at all (every node gone from the table). */
    if (rc == 0)
        rc = cp_service__finish_drains(svc, a->changed, err);
    return rc;
}

int cp_service_drains_tick(cp_service *svc, uint64_t grace_ms, bool *changed, cp_error *err)
{
    *changed = false;
    tx_args a = {.grace_ms = grace_ms, .changed = changed};
    return run_tx(svc, "drains.tick", tick_tx, &a, err);
}
