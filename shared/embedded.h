/* embedded.h: files compiled into a binary by nano_embed() (built-in JS, SQL migrations).
 * Read-only data; any thread. */
#ifndef NANO_EMBEDDED_H
#define NANO_EMBEDDED_H

#include <stddef.h>

typedef struct nano_embedded {
    const char *name; /* file name without directories, e.g. "20_headers.js" */
    const char *data; /* NUL-terminated; the NUL is not counted in len */
    size_t len;
} nano_embedded;

#endif
