#include "env.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "buf.h"
#include "dotenv.h"
#include "file.h"

void nano_env_init(nano_env *env)
{
    memset(env, 0, sizeof *env);
}

void nano_env_fini(nano_env *env)
{
    for (size_t i = 0; i < env->n_entries; i++) {
        nano_free(env->entries[i].name);
        nano_free(env->entries[i].value);
    }
    nano_free(env->entries);
    memset(env, 0, sizeof *env);
}

const nano_env_entry *nano_env_find(const nano_env *env, const char *name)
{
    for (size_t i = 0; i < env->n_entries; i++)
        if (strcmp(env->entries[i].name, name) == 0)
            return &env->entries[i];
    return NULL;
}

/* One setter for every kind of value, so the limits are checked in one place. */
static int set_entry(nano_env *env, const char *name, const char *value, size_t value_len,
                     bool is_secret, bool is_json, nano_error *err)
{
    if (!nano_env_name_valid(name, strlen(name)))
        return nano_error_set(err, NANO_EINVAL, "env_name_invalid",
                              "invalid env name '%.64s': use letters, digits and '_', not "
                              "starting with a digit",
                              name);
    if (value_len > NANO_ENV_MAX_VALUE)
        return nano_error_set(err, NANO_ETOOBIG, "env_value_too_large",
                              "env value of %s is %zu bytes; the limit is %d", name, value_len,
                              NANO_ENV_MAX_VALUE);
    nano_env_entry *e = (nano_env_entry *)nano_env_find(env, name);
    if (e == NULL) {
        if (env->n_entries >= NANO_ENV_MAX_ENTRIES)
            return nano_error_set(err, NANO_ETOOBIG, "env_too_many",
                                  "too many env entries: adding %s would exceed %d", name,
                                  NANO_ENV_MAX_ENTRIES);
        if (env->n_entries == env->cap) {
            env->cap = env->cap ? env->cap * 2 : 8;
            env->entries = nano_xrealloc(env->entries, env->cap * sizeof *env->entries);
        }
        e = &env->entries[env->n_entries++];
        e->name = nano_xstrdup(name);
    } else {
        nano_free(e->value);
    }
    e->value = nano_xstrndup(value, value_len);
    e->value_len = value_len;
    e->is_secret = is_secret;
    e->is_json = is_json;
    return 0;
}

int nano_env_set(nano_env *env, const char *name, const char *value, size_t value_len,
                 bool is_secret, nano_error *err)
{
    return set_entry(env, name, value, value_len, is_secret, false, err);
}

int nano_env_set_json(nano_env *env, const char *name, const char *json, size_t json_len,
                      nano_error *err)
{
    /* Checked here rather than left to JSON.parse in the isolate, where a bad value would
     * surface as an app failure long after the change that caused it was accepted. The size
     * check comes first so that we never parse more than the limit. */
    if (json_len <= NANO_ENV_MAX_VALUE) {
        json_error_t jerr;
        /* jansson stops at a NUL byte and accepts what came before; JSON.parse would not. */
        json_t *v = memchr(json, '\0', json_len) == NULL
                        ? json_loadb(json, json_len, JSON_DECODE_ANY, &jerr)
                        : NULL;
        if (v == NULL)
            return nano_error_set(err, NANO_EINVAL, "env_json_invalid",
                                  "env value of %.64s is not valid JSON", name);
        json_decref(v);
    }
    return set_entry(env, name, json, json_len, false, true, err);
}

int nano_env_set_assignment(nano_env *env, const char *assignment, nano_error *err)
{
    const char *eq = strchr(assignment, '=');
    if (eq == NULL || eq == assignment)
        return nano_error_set(err, NANO_ESYNTAX, "env_assignment_syntax",
                              "expected NAME=VALUE, got '%.64s'", assignment);
    char *name = nano_xstrndup(assignment, (size_t)(eq - assignment));
    int rc = nano_env_set(env, name, eq + 1, strlen(eq + 1), false, err);
    nano_free(name);
    return rc;
}

typedef struct load_ctx {
    nano_env *env;
    const char *path;
    nano_error *err;
} load_ctx;

static int on_assignment(void *ud, const char *name, const char *value, size_t value_len, int line)
{
    load_ctx *lc = ud;
    nano_error inner;
    int rc = nano_env_set(lc->env, name, value, value_len, false, &inner);
    if (rc != 0)
        nano_error_set(lc->err, rc, inner.id, "%s:%d: %s", lc->path, line, inner.message);
    return rc;
}

int nano_env_load_dotenv(nano_env *env, const char *path, nano_error *err)
{
    /* A .env file far beyond 128 entries of 5 KB is not an env file. */
    char *text = NULL;
    size_t len = 0;
    int rc = nano_read_file(path, (size_t)NANO_ENV_MAX_ENTRIES * (NANO_ENV_MAX_VALUE + 256), &text,
                            &len, NULL);
    if (rc == NANO_ETOOBIG)
        return nano_error_set(err, rc, "env_file_too_large", "env file %s is too large", path);
    if (rc == NANO_EINVAL)
        return nano_error_set(err, rc, "env_file_unreadable", "env file %s is not a regular file",
                              path);
    if (rc != 0)
        return nano_error_set(err, rc, "env_file_unreadable", "cannot read env file %s: %s", path,
                              nano_strerror(rc));
    load_ctx lc = {env, path, err};
    rc = nano_dotenv_parse(text, len, path, on_assignment, &lc, err);
    nano_free(text);
    return rc;
}
