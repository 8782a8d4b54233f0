/* app_spec.h: an app's spec, the typed form of what an operator says about an app apart from
 * its code and its env: its name, hostnames, path prefix, default role, node_compat, the env it
 * requires, its limits and its egress policy.
 *
 * One struct and one JSON codec serve every place an app's spec travels (docs/architecture.md,
 * "An app's spec"): nano.json's apps[i] (config_json.c), nanocp's admin arguments and store
 * rows (controlplane/service_apps.c, store.c), the protocol's app.put op and snapshot apps
 * (msg.c checks them with nano_app_spec_read_json; their msgpack form is this JSON form through
 * mpjson, so the same codec is the msgpack one), the data plane's model of them
 * (dataplane/control/cp_model.c), nano-dp's config (nano_app_config embeds the spec) and
 * nanoctl apply's comparison. Adding a field to apps: the struct, the field table in
 * app_spec.c, the store's column and migration, and the docs.
 *
 * Pure functions over caller-owned memory; any thread. */
#ifndef NANO_APP_SPEC_H
#define NANO_APP_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "egress.h"
#include "env.h"
#include "error.h"

struct json_t; /* jansson's */

/* Per-app limits. Defaults (docs/config.md#limits) come from nano_limits_defaults(); a
 * "limits" object overrides any of them. */
typedef struct nano_limits {
    uint64_t cpu_ms;    /* CPU time per request ("cpu_ms"; default 50) */
    uint64_t memory_mb; /* isolate heap ("memory_mb"; default 128) */
    uint64_t wall_ms;   /* wall time per request before the response starts ("wall_time"; 30 s) */
    uint64_t drain_timeout_ms; /* ("drain_timeout"; default 30 s, max 300 s) */
    uint32_t
        max_concurrent;   /* requests running at once per app and thread ("max_concurrent"; 64) */
    uint32_t max_queued;  /* waiting beyond that, then 503 ("max_queued"; 256) */
    uint64_t max_head;    /* request head bytes ("max_head"; 64 KiB) */
    uint64_t max_body;    /* request body bytes ("max_body"; 100 MiB) */
    uint32_t subrequests; /* per request ("subrequests"; 50) */
} nano_limits;

typedef struct nano_app_spec {
    char *name;       /* [a-z0-9][a-z0-9-]{0,62}; set by the carrier (each names it its own
                             way: "name", "app", a URL), not by the codec */
    char **hostnames; /* exact "api.example.com" or wildcard "*.example.com", normalized:
                             lowercase, no trailing '.' */
    size_t n_hostnames;
    char *path_prefix;   /* NULL, or "/api" (starts with '/', no trailing '/') */
    bool is_default;     /* receives requests for hosts no app claims ("default") */
    bool node_compat;    /* also expose env as process.env */
    char **required_env; /* env names that must be set before the app may run (at most
                             NANO_ENV_MAX_ENTRIES: more could never all be set) */
    size_t n_required_env;
    nano_limits limits;
    nano_egress *egress; /* the app's egress policy; NULL: none set. One reference, owned */
} nano_app_spec;

#define NANO_APP_SPEC_MAX_HOSTNAMES 100

/* The JSON keys of a spec, in the order nano_app_spec_to_json writes them (the name is not one:
 * see above). Carriers copy a spec from one JSON form to another by these keys, so that a new
 * field needs no change there. NULL-terminated. */
extern const char *const nano_app_spec_keys[];

/* nano_app_spec_init: an empty spec with the default limits. nano_app_spec_fini frees what it
 * holds and empties it (NULL-safe). nano_app_spec_copy: dst (uninitialized) becomes a deep
 * copy of src. */
void nano_app_spec_init(nano_app_spec *s);
void nano_app_spec_fini(nano_app_spec *s);
void nano_app_spec_copy(nano_app_spec *dst, const nano_app_spec *src);

/* nano_app_spec_read_json flags. */
#define NANO_APP_SPEC_HOSTNAME_ALIAS 1u /* also "hostname": "one" (nano.json's shorthand) */

/* nano_app_spec_read_json: reads the spec keys present in obj (the JSON form: hostnames an
 * array of strings, path_prefix a string or null, default and node_compat booleans,
 * required_env an array of env names, limits an object nano_limits_from_json reads, egress an
 * object nano_egress_parse_json reads or null) onto s, which keeps the fields obj does not
 * give: start from nano_app_spec_init for a new app, from the stored spec for an update.
 * Then checks the spec as a whole: an app needs a hostname or the default role.
 * Other keys of obj are not looked at (each carrier has its own: check them there). All or
 * nothing: on error s is unchanged, err holds one line "WHERE FIELD: what is wrong" (where is
 * the caller's prefix, e.g. "nano.json: apps[1]." or ""), and field (field_cap bytes; may be
 * NULL) names the field at fault as in the message ("hostnames[2]", "limits.cpu_ms"). Returns
 * NANO_EINVAL, NANO_ERANGE (a limit out of range) or NANO_ETOOBIG (more hostnames or names
 * than allowed). Error ids: config_type, hostname_invalid, hostname_duplicate,
 * path_prefix_invalid, env_name_invalid, config_value_invalid, app_unreachable, too_many, and
 * those of the limits and egress parsers. */
int nano_app_spec_read_json(struct json_t *obj, unsigned flags, nano_app_spec *s, const char *where,
                            char *field, size_t field_cap, nano_error *err);

/* nano_app_spec_to_json: the spec's JSON form, every key of nano_app_spec_keys (limits in full,
 * as nano_limits_to_json writes them; path_prefix and egress null when unset), which
 * nano_app_spec_read_json reads back to an equal spec. A new reference. */
struct json_t *nano_app_spec_to_json(const nano_app_spec *s);

/* nano_app_spec_json_copy: sets on to each spec key that from holds (a store row, an op, a
 * spec's JSON form), as is; keys from lacks are left alone. How carriers pass a spec along
 * without naming its fields. */
void nano_app_spec_json_copy(struct json_t *to, const struct json_t *from);

/* nano_app_spec_equal: every field but the name equal (hostnames and required_env in order;
 * egress policies by their JSON form). */
bool nano_app_spec_equal(const nano_app_spec *a, const nano_app_spec *b);

/* --- the fields' own rules ------------------------------------------------------------------ */

/* Syntax checks (pure):
 * nano_app_name_valid: [a-z0-9][a-z0-9-]{0,62}.
 * nano_hostname_valid: dot-separated labels of a-z, A-Z, 0-9 and '-' (1..63 characters, no
 *   '-' at either end; 253 characters at most; one trailing '.' allowed), optionally preceded
 *   by "*." for a wildcard.
 * nano_path_prefix_valid: "/seg" or "/seg/seg..." with no empty segment, no trailing '/', and
 *   no '?', '#', spaces or control characters; at most 1024 bytes. */
bool nano_app_name_valid(const char *name);
bool nano_hostname_valid(const char *host);
bool nano_path_prefix_valid(const char *prefix);

/* nano_hostname_normalize: host (valid) in the form routing compares: lowercase, no trailing
 * '.'. Returns a new string (nano_free). */
char *nano_hostname_normalize(const char *host);

/* nano_limits_defaults: the default values in nano_limits' comments. */
nano_limits nano_limits_defaults(void);

/* nano_limits_check: every limit is above 0 and within its bound (docs/config.md lists them:
 * cpu_ms <= 60000, memory_mb 16..8192, drain_timeout <= 300 s, ...). Returns 0, or
 * NANO_ERANGE with err naming the first limit out of range. */
int nano_limits_check(const nano_limits *l, nano_error *err);

/* nano_limits_equal: every field equal. */
bool nano_limits_equal(const nano_limits *a, const nano_limits *b);

/* nano_limits_from_json: reads a "limits" JSON object (docs/config.md: the keys of nano_limits'
 * comments; durations as seconds or "30s"/"1500ms"/"5m", sizes as bytes or "64KiB"/"100MiB")
 * onto *l, which keeps the values of keys not given. Every key is checked: an unknown key, a
 * value of the wrong form or out of its range is an error. On error returns NANO_EINVAL
 * (NANO_ERANGE out of range), leaves *l untouched, fills err with one line "WHERE KEY: what is
 * wrong" (where is the caller's prefix, e.g. "nano.json: apps[0].limits." or "limits."; NULL
 * for none) and, if key_out is not NULL, sets *key_out to the key at fault (borrowed from obj
 * or static; NULL when obj is not an object). obj is borrowed. */
int nano_limits_from_json(struct json_t *obj, nano_limits *l, const char *where,
                          const char **key_out, nano_error *err);

/* nano_limits_to_json: every limit as a JSON object that nano_limits_from_json reads back to
 * the same values: counts and sizes as integers (bytes for sizes), durations as strings
 * ("30s", or "1500ms" when not whole seconds). Returns a new reference. */
struct json_t *nano_limits_to_json(const nano_limits *l);

#endif
