#include "sha256.h"

#include <stdlib.h>

#include <openssl/evp.h>

#ifdef NANO_SHA256_DLOPEN
/* nanoctl's build (cli/CMakeLists.txt): libcrypto is loaded on the first hash, not at process
 * start, because mapping and relocating it costs ~4 ms on every command, and only `apps
 * deploy` and `apply` hash anything. The same OpenSSL function, found with dlsym. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

typedef int (*digest_fn)(const void *, size_t, unsigned char *, unsigned int *, const EVP_MD *,
                         ENGINE *);
typedef const EVP_MD *(*sha256_md_fn)(void);
static digest_fn lazy_digest;
static sha256_md_fn lazy_sha256;
static pthread_once_t lazy_once = PTHREAD_ONCE_INIT;

static void lazy_load(void)
{
    void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (lib != NULL) {
        lazy_digest = (digest_fn)dlsym(lib, "EVP_Digest");
        lazy_sha256 = (sha256_md_fn)dlsym(lib, "EVP_sha256");
    }
    if (lazy_digest == NULL || lazy_sha256 == NULL) {
        fprintf(stderr, "nano: cannot load libcrypto.so.3 for SHA-256: %s\n", dlerror());
        abort();
    }
}

#define EVP_Digest(d, n, md, len, type, e) lazy_digest(d, n, md, len, type, e)
#define EVP_sha256() (pthread_once(&lazy_once, lazy_load), lazy_sha256())
#endif

void nano_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    /* EVP_Digest of SHA-256 fails only without memory or with a broken OpenSSL: nothing to
     * recover, and a wrong hash would name code wrongly (or let a wrong token in). */
    const EVP_MD *sha256 = EVP_sha256();
    if (EVP_Digest(data, len, md, &md_len, sha256, NULL) != 1 || md_len != 32)
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
