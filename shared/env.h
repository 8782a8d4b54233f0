/* env.h: an app's environment: an ordered list of NAME -> value (bytes), with the limits of
 * docs/config.md#env (128 entries, 5 KB per value, names [A-Za-z_][A-Za-z0-9_]*). A value is a
 * string, a secret (a string, masked in output) or a JSON var (any other JSON value, kept as
 * its compact JSON text, which the runtime JSON.parses).
 *
 * Values are owned copies. Setting an existing name replaces its value in place. The data
 * plane freezes this into the app's `env` object. One owner at a time; not thread-safe. */
#ifndef NANO_ENV_H
#define NANO_ENV_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define NANO_ENV_MAX_ENTRIES 128
#define NANO_ENV_MAX_VALUE 5120

typedef struct nano_env_entry {
    char *name;
    char *value;
    size_t value_len;
    bool is_secret;
    bool is_json; /* value is compact JSON text (a nano.json var that is not a string) */
} nano_env_entry;

typedef struct nano_env {
    nano_env_entry *entries;
    size_t n_entries;
    size_t cap;
} nano_env;

void nano_env_init(nano_env *env);
void nano_env_fini(nano_env *env);

/* nano_env_set: copies name and value in, replacing an entry of the same name.
 * Validates against the limits; on violation returns NANO_EINVAL or NANO_ETOOBIG with err
 * naming the entry (never its value) and leaves env unchanged. */
int nano_env_set(nano_env *env, const char *name, const char *value, size_t value_len,
                 bool is_secret, nano_error *err);

/* nano_env_set_json: like nano_env_set for a var given as JSON text (nano.json uses it for
 * values that are not strings): json is json_len bytes, counted against the 5 KB limit, and
 * must parse as one JSON value; the entry gets is_json and never is_secret. Returns
 * NANO_EINVAL naming the entry (never its value) when the text is not JSON. */
int nano_env_set_json(nano_env *env, const char *name, const char *json, size_t json_len,
                      nano_error *err);

/* nano_env_find: the entry named name, or NULL. */
const nano_env_entry *nano_env_find(const nano_env *env, const char *name);

/* nano_env_set_assignment: parses "NAME=VALUE" (as given to --var) and sets it. */
int nano_env_set_assignment(nano_env *env, const char *assignment, nano_error *err);

/* nano_env_load_dotenv: reads a .env file and sets each assignment. Errors name the file,
 * and for syntax errors the line. */
int nano_env_load_dotenv(nano_env *env, const char *path, nano_error *err);

#endif
