/* file.h: reading a whole file into memory, for the files the three binaries take from the
 * command line and from nano.json (modules, env files, secrets, tokens, certificates, the
 * CLI's config). The reader refuses what would hang or flood it: a FIFO or a device (it never
 * blocks waiting for a writer), a directory, and anything larger than the caller's limit.
 * Any thread. */
#ifndef NANO_FILE_H
#define NANO_FILE_H

#include <stddef.h>

#include "error.h"

/* nano_read_file: reads the regular file at path, at most max bytes, into *out (returned
 * owned, nano_free; NUL-terminated, the NUL not counted in *len). Writes *out and *len only on
 * success. Returns 0, or a negative code with err (may be NULL) filled, id "read_failed" and a
 * one-line message that starts with the path:
 *   - a negative errno from open or read ("PATH: No such file or directory"), -EISDIR for a
 *     directory;
 *   - NANO_EINVAL when it is not a regular file ("PATH: not a regular file"): a FIFO is
 *     opened without waiting for a writer and refused;
 *   - NANO_ETOOBIG past max ("PATH: N bytes; the limit is MAX"), also when the file grows
 *     past max while it is read;
 *   - NANO_ENOMEM (a fallible allocation, nano_malloc). */
int nano_read_file(const char *path, size_t max, char **out, size_t *len, nano_error *err);

#endif
