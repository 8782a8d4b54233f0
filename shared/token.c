#include "token.h"

#include <string.h>

#include <openssl/crypto.h>

#include "error.h"
#include "parse.h"
#include "sha256.h"

void nano_token_digest(const char *token, unsigned char out[NANO_TOKEN_DIGEST_BYTES])
{
    nano_sha256(token, strlen(token), out);
}

int nano_token_digest_from_hex(const char *hex, unsigned char out[NANO_TOKEN_DIGEST_BYTES])
{
    if (hex == NULL || nano_parse_hex(hex, strlen(hex), out, NANO_TOKEN_DIGEST_BYTES) != 0)
        return NANO_EINVAL;
    return 0;
}

bool nano_token_digest_equal(const unsigned char a[NANO_TOKEN_DIGEST_BYTES],
                             const unsigned char b[NANO_TOKEN_DIGEST_BYTES])
{
    return CRYPTO_memcmp(a, b, NANO_TOKEN_DIGEST_BYTES) == 0;
}

bool nano_token_check(const char *token, const unsigned char digest[NANO_TOKEN_DIGEST_BYTES])
{
    if (token == NULL)
        return false;
    unsigned char d[NANO_TOKEN_DIGEST_BYTES];
    nano_token_digest(token, d);
    return nano_token_digest_equal(d, digest);
}
