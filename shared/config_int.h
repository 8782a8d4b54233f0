/* config_int.h: what config.c shares with config_json.c (one module, two files): the table of
 * per-app limits, so that the nano.json keys, their units and their bounds are written once.
 * Pure data and pure functions; any thread. */
#ifndef NANO_CONFIG_INT_H
#define NANO_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef enum nano_limit_kind {
    NANO_LIMIT_COUNT,    /* a whole number in the field's own unit (cpu_ms, memory_mb, counts) */
    NANO_LIMIT_DURATION, /* milliseconds; nano.json takes seconds or "30s"/"1500ms"/"5m" */
    NANO_LIMIT_SIZE,     /* bytes; nano.json takes bytes or "64KiB"/"100m" */
} nano_limit_kind;

typedef struct nano_limit_desc {
    const char *key; /* the nano.json key, also used in messages */
    nano_limit_kind kind;
    size_t offset; /* of the field in nano_limits */
    bool is_u32;   /* the field is a uint32_t (else uint64_t) */
    uint64_t min, max;
} nano_limit_desc;

extern const nano_limit_desc nano_config__limits[];
extern const size_t nano_config__n_limits;

uint64_t nano_config__limit_get(const nano_limits *l, const nano_limit_desc *d);
void nano_config__limit_put(nano_limits *l, const nano_limit_desc *d, uint64_t v);

/* nano_config__limit_range_error: fills err with "KEY: VALUE is out of range (MIN .. MAX)",
 * each number written in the limit's unit, prefixed by where ("" or "FILE: apps[0].limits.").
 * Returns NANO_ERANGE. */
int nano_config__limit_range_error(const nano_limit_desc *d, uint64_t v, const char *where,
                                   nano_error *err);

/* nano_config__printable: copies s into out (cap bytes), at most max_chars characters, with
 * control characters replaced by '?', so that a name from input cannot break the one-line
 * message it is quoted in. Returns out. */
char *nano_config__printable(const char *s, char *out, size_t cap, size_t max_chars);

#endif
