#include "sha256.h"

#include <stdlib.h>

#include <openssl/evp.h>

void nano_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    /* EVP_Digest of SHA-256 fails only without memory or with a broken OpenSSL: nothing to
     * recover, and a wrong hash would name code wrongly (or let a wrong token in). */
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        abort();
    for (unsigned i = 0; i < 32; i++)
        out[i] = md[i];
}

void nano_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    nano_sha256(data, len, md);
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}
