/* parse.h: parsing of the small value grammars used by flags and config files.
 * Pure functions; any thread. */
#ifndef NANO_PARSE_H
#define NANO_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* nano_parse_duration_ms: "30" (seconds), "30s", "1500ms", "5m", "1h" -> milliseconds.
 * Returns 0, NANO_ESYNTAX (not a duration) or NANO_ERANGE (overflow). */
int nano_parse_duration_ms(const char *s, uint64_t *out_ms);

/* nano_parse_size: "65536", "64KiB"/"64k", "100MiB"/"100m", "1GiB"/"1g" -> bytes
 * (binary multiples). Returns 0, NANO_ESYNTAX or NANO_ERANGE. */
int nano_parse_size(const char *s, uint64_t *out_bytes);

/* nano_parse_port: "0".."65535" -> port. Returns 0 or NANO_ESYNTAX / NANO_ERANGE. */
int nano_parse_port(const char *s, int *out_port);

/* nano_hex_digit: '0'-'9', 'a'-'f' or 'A'-'F' -> 0..15; anything else -> -1. */
int nano_hex_digit(char c);

/* nano_parse_hex: s[0..len), exactly 2 * n hex digits (either case), -> n bytes in out.
 * Returns 0, or NANO_ESYNTAX with out untouched (nothing of a secret is left behind). */
int nano_parse_hex(const char *s, size_t len, unsigned char *out, size_t n);

/* nano_http_host_valid: whether s[0..len) is a Host value the HTTP fronts take: host
 * [":" port], the host a bracketed IPv6 literal or a name of letters, digits, '-', '_', '~'
 * and dots without an empty label, the port 1-5 digits up to 65535 (parse.c says why this
 * is stricter than RFC 3986's reg-name). */
bool nano_http_host_valid(const char *s, size_t len);

#endif
