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

/* nano_http_host_valid: whether s[0..len) is a Host value the HTTP fronts take: host
 * [":" port], the host a bracketed IPv6 literal or a name of letters, digits, '-', '_', '~'
 * and dots without an empty label, the port 1-5 digits up to 65535 (parse.c says why this
 * is stricter than RFC 3986's reg-name). */
#include <stdbool.h>
#include <stddef.h>
bool nano_http_host_valid(const char *s, size_t len);

#endif
