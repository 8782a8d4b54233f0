/* secrets.c: the master key (file, env or generated) and AES-256-GCM sealing (OpenSSL 3 EVP). */
#include "secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "alloc.h"
#include "parse.h"
#include "sha256.h"

/* --- small helpers -------------------------------------------------------------------------- */

void cp_hex(const unsigned char *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

void cp_base64(const unsigned char *data, size_t len, char *out)
{
    out[0] = '\0';
    if (len > 0)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len); /* NUL-terminates */
}

int cp_random_bytes(unsigned char *out, size_t n)
{
    return RAND_bytes(out, (int)n) == 1 ? 0 : NANO_EIO;
}

int cp_master_key_from_hex(const char *hex, size_t len, cp_master_key *key)
{
    if (nano_parse_hex(hex, len, key->key, CP_KEY_BYTES) != 0)
        return NANO_EINVAL;
    char id[65];
    nano_sha256_hex(key->key, CP_KEY_BYTES, id);
    memcpy(key->id, id, CP_KEY_ID_CHARS);
    key->id[CP_KEY_ID_CHARS] = '\0';
    return 0;
}

/* --- the master key ------------------------------------------------------------------------- */

static const char key_form[] = "a master key is 64 hex digits (32 bytes), e.g. from "
                               "`openssl rand -hex 32`";

static int read_key_file(const char *path, cp_master_key *key, nano_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return nano_error_set(err, -errno, "master_key_unreadable",
                              "cannot open master key file %s: %s", path, strerror(errno));
    struct stat stbuf;
    int rc = 0;
    if (fstat(fd, &stbuf) != 0)
        rc = nano_error_set(err, -errno, "master_key_unreadable", "cannot stat %s: %s", path,
                            strerror(errno));
    else if (!S_ISREG(stbuf.st_mode))
        rc = nano_error_set(err, NANO_EINVAL, "master_key_unreadable",
                            "master key file %s is not a regular file", path);
    else if ((stbuf.st_mode & 077) != 0)
        rc = nano_error_set(err, NANO_EINVAL, "master_key_mode",
                            "master key file %s is accessible by group or others (mode %04o): "
                            "run chmod 600 %s",
                            path, (unsigned)(stbuf.st_mode & 07777), path);
    char buf[2 * CP_KEY_BYTES + 4];
    ssize_t n = 0;
    if (rc == 0) {
        size_t got = 0;
        while (got < sizeof buf && (n = read(fd, buf + got, sizeof buf - got)) > 0)
            got += (size_t)n;
        if (n < 0)
            rc = nano_error_set(err, -errno, "master_key_unreadable", "cannot read %s: %s", path,
                                strerror(errno));
        n = (ssize_t)got;
    }
    close(fd);
    if (rc != 0)
        return rc;
    size_t len = (size_t)n;
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    rc = cp_master_key_from_hex(buf, len, key);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != 0)
        return nano_error_set(err, NANO_EINVAL, "master_key_invalid",
                              "master key file %s does not hold a key: %s", path, key_form);
    return 0;
}

int cp_master_key_write(const char *path, const cp_master_key *key, nano_error *err)
{
    char hex[2 * CP_KEY_BYTES + 2];
    cp_hex(key->key, CP_KEY_BYTES, hex);
    size_t len = 2 * CP_KEY_BYTES;
    hex[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    int rc = 0;
    if (fd < 0) {
        rc = nano_error_set(err, -errno, "master_key_unwritable",
                            "cannot create master key file %s: %s", path, strerror(errno));
    } else {
        if (write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0)
            rc = nano_error_set(err, NANO_EIO, "master_key_unwritable",
                                "cannot write master key file %s: %s", path, strerror(errno));
        close(fd);
        if (rc != 0)
            unlink(path);
    }
    OPENSSL_cleanse(hex, sizeof hex);
    return rc;
}

/* O_EXCL (cp_master_key_write): two nanocp starting on one data dir must not each write a
 * different key. */
static int generate_key_file(const char *path, cp_master_key *key, nano_error *err)
{
    unsigned char raw[CP_KEY_BYTES];
    if (cp_random_bytes(raw, sizeof raw) != 0)
        return nano_error_set(err, NANO_EIO, "master_key_random",
                              "cannot get random bytes for a master key");
    cp_master_key k;
    memcpy(k.key, raw, sizeof raw);
    OPENSSL_cleanse(raw, sizeof raw);
    char hex[2 * CP_KEY_BYTES + 1];
    cp_hex(k.key, CP_KEY_BYTES, hex);
    int rc = cp_master_key_from_hex(hex, 2 * CP_KEY_BYTES, &k); /* fills the id */
    OPENSSL_cleanse(hex, sizeof hex);
    if (rc == 0)
        rc = cp_master_key_write(path, &k, err);
    if (rc == 0)
        *key = k;
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

int cp_master_key_load(const char *key_file, const char *data_dir, cp_master_key *key,
                       cp_key_source *source, char *path_out, size_t cap, nano_error *err)
{
    cp_master_key k;
    int rc;
    if (key_file != NULL) {
        rc = read_key_file(key_file, &k, err);
        if (rc == 0) {
            *source = CP_KEY_FILE;
            snprintf(path_out, cap, "%s", key_file);
        }
    } else if (getenv("NANO_MASTER_KEY") != NULL) {
        const char *hex = getenv("NANO_MASTER_KEY");
        rc = cp_master_key_from_hex(hex, strlen(hex), &k);
        if (rc != 0)
            rc = nano_error_set(err, NANO_EINVAL, "master_key_invalid",
                                "NANO_MASTER_KEY does not hold a key: %s", key_form);
        if (rc == 0) {
            *source = CP_KEY_ENV;
            snprintf(path_out, cap, "NANO_MASTER_KEY");
        }
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/master.key", data_dir);
        struct stat stbuf;
        if (lstat(path, &stbuf) == 0) {
            rc = read_key_file(path, &k, err);
            *source = CP_KEY_DATA_DIR;
        } else if (errno == ENOENT) {
            rc = generate_key_file(path, &k, err);
            *source = CP_KEY_GENERATED;
        } else {
            rc = nano_error_set(err, -errno, "master_key_unreadable", "cannot stat %s: %s", path,
                                strerror(errno));
        }
        if (rc == 0)
            snprintf(path_out, cap, "%s", path);
    }
    if (rc == 0)
        *key = k;
    OPENSSL_cleanse(&k, sizeof k);
    return rc;
}

/* --- sealing -------------------------------------------------------------------------------- */

/* "APP\0NAME": the NUL keeps ("ab", "c") and ("a", "bc") apart. */
static unsigned char *make_aad(const char *app, const char *name, size_t *len)
{
    size_t a = strlen(app), n = strlen(name);
    unsigned char *aad = nano_xmalloc(a + 1 + n);
    memcpy(aad, app, a);
    aad[a] = 0;
    memcpy(aad + a + 1, name, n);
    *len = a + 1 + n;
    return aad;
}

int cp_secret_seal(const cp_master_key *key, const char *app, const char *name, const void *plain,
                   size_t len, cp_sealed *out)
{
    if (len > (size_t)INT32_MAX)
        return NANO_ETOOBIG;
    cp_sealed s = {0};
    if (cp_random_bytes(s.nonce, sizeof s.nonce) != 0)
        return NANO_EIO;
    size_t aad_len;
    unsigned char *aad = make_aad(app, name, &aad_len);
    s.ciphertext = nano_xmalloc(len > 0 ? len : 1);
    s.len = len;
    memcpy(s.key_id, key->id, sizeof s.key_id);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = ctx != NULL &&
              EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key->key, s.nonce, NULL) == 1 &&
              EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
              (len == 0 || EVP_EncryptUpdate(ctx, s.ciphertext, &n, plain, (int)len) == 1) &&
              EVP_EncryptFinal_ex(ctx, s.ciphertext + (len > 0 ? n : 0), &fin) == 1 &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CP_TAG_BYTES, s.tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    nano_free(aad);
    if (!ok) {
        cp_sealed_fini(&s);
        return NANO_EIO;
    }
    *out = s;
    return 0;
}

int cp_secret_open(const cp_master_key *key, const char *app, const char *name, const cp_sealed *in,
                   char **plain_out, size_t *len_out)
{
    if (in->len > (size_t)INT32_MAX || strcmp(in->key_id, key->id) != 0)
        return NANO_EINVAL;
    size_t aad_len;
    unsigned char *aad = make_aad(app, name, &aad_len);
    unsigned char *plain = nano_xmalloc(in->len + 1);
    unsigned char tag[CP_TAG_BYTES];
    memcpy(tag, in->tag, sizeof tag); /* the ctrl takes a non-const pointer */
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = ctx != NULL &&
              EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key->key, in->nonce, NULL) == 1 &&
              EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aad_len) == 1 &&
              (in->len == 0 ||
               EVP_DecryptUpdate(ctx, plain, &n, in->ciphertext, (int)in->len) == 1) &&
              EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CP_TAG_BYTES, tag) == 1 &&
              EVP_DecryptFinal_ex(ctx, plain + (in->len > 0 ? n : 0), &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    nano_free(aad);
    if (!ok) {
        OPENSSL_cleanse(plain, in->len + 1);
        nano_free(plain);
        return NANO_EINVAL;
    }
    plain[in->len] = '\0';
    *plain_out = (char *)plain;
    *len_out = in->len;
    return 0;
}

void cp_sealed_fini(cp_sealed *s)
{
    if (s == NULL)
        return;
    nano_free(s->ciphertext);
    memset(s, 0, sizeof *s);
}
