/* sha256.h: SHA-256 (OpenSSL EVP), raw or as 64 lowercase hex digits: how NANO names code (a
 * module, a deployment bundle) and keeps tokens (token.h). Pure; any thread. */
#ifndef NANO_SHA256_H
#define NANO_SHA256_H

#include <stddef.h>

/* nano_sha256: sha256 of data[0..len) into out (32 bytes). */
void nano_sha256(const void *data, size_t len, unsigned char out[32]);

/* nano_sha256_hex: sha256 of data[0..len) into out as 64 hex digits and a NUL. */
void nano_sha256_hex(const void *data, size_t len, char out[65]);

#endif
