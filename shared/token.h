/* token.h: bearer tokens as nanocp keeps them (admin tokens, the node token): only the
 * SHA-256 of a token is stored, and a presented token is checked by hashing it and comparing
 * the digests in constant time, so that neither the store nor the time a check takes tells
 * anything about a valid token. Pure; any thread. */
#ifndef NANO_TOKEN_H
#define NANO_TOKEN_H

#include <stdbool.h>

#define NANO_TOKEN_DIGEST_BYTES 32

/* nano_token_digest: the SHA-256 of token (a NUL-terminated string, borrowed) into out. */
void nano_token_digest(const char *token, unsigned char out[NANO_TOKEN_DIGEST_BYTES]);

/* nano_token_digest_from_hex: a stored digest, 64 hex digits (either case) and nothing else,
 * into out. Returns 0, or NANO_EINVAL (out untouched) when hex is NULL or not that. */
int nano_token_digest_from_hex(const char *hex, unsigned char out[NANO_TOKEN_DIGEST_BYTES]);

/* nano_token_digest_equal: whether a and b hold the same digest, in a time that does not
 * depend on where they differ (CRYPTO_memcmp). */
bool nano_token_digest_equal(const unsigned char a[NANO_TOKEN_DIGEST_BYTES],
                             const unsigned char b[NANO_TOKEN_DIGEST_BYTES]);

/* nano_token_check: whether token (NULL: none, false) hashes to digest; constant time as
 * above. To check one token against several digests, hash it once with nano_token_digest and
 * compare it with every one (cp_service_check_token does). */
bool nano_token_check(const char *token, const unsigned char digest[NANO_TOKEN_DIGEST_BYTES]);

#endif
