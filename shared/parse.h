/* parse.h: parsing of the small value grammars used by flags and config files.
 * Pure functions; any thread. */
#ifndef NANO_PARSE_H
#define NANO_PARSE_H

#include <stdint.h>

/* nano_parse_duration_ms: "30" (seconds), "30s", "1500ms", "5m", "1h" -> milliseconds.
 * Returns 0, NANO_ESYNTAX (not a duration) or NANO_ERANGE (overflow). */
int nano_parse_duration_ms(const char *s, uint64_t *out_ms);

/* nano_parse_size: "65536", "64KiB"/"64k", "100MiB"/"100m", "1GiB"/"1g" -> bytes
 * (binary multiples). Returns 0, NANO_ESYNTAX or NANO_ERANGE. */
int nano_parse_size(const char *s, uint64_t *out_bytes);

/* nano_parse_port: "0".."65535" -> port. Returns 0 or NANO_ESYNTAX / NANO_ERANGE. */
int nano_parse_port(const char *s, int *out_port);

#endif
