/* sha256.h: SHA-256 as 64 lowercase hex digits (OpenSSL EVP): how NANO names code (a module,
 * a deployment bundle) and tokens. Pure; any thread. */
#ifndef NANO_SHA256_H
#define NANO_SHA256_H

#include <stddef.h>

/* nano_sha256_hex: sha256 of data[0..len) into out as 64 hex digits and a NUL. */
void nano_sha256_hex(const void *data, size_t len, char out[65]);

#endif
