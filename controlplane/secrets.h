/* secrets.h: secrets at rest (docs/nanocp.md#secrets): the master key and AES-256-GCM sealing
 * of each secret value, bound to its app and name.
 *
 * Sealing uses a fresh 12-byte random nonce per value and "APP\0NAME" as additional
 * authenticated data, so a ciphertext copied to another app or name fails to open. The key id
 * (first 8 hex digits of sha256(key)) is stored with each value so that a later key rotation
 * can tell which key sealed it. Pure functions over caller memory; any thread. */
#ifndef CP_SECRETS_H
#define CP_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

#define CP_KEY_BYTES 32
#define CP_NONCE_BYTES 12
#define CP_TAG_BYTES 16
#define CP_KEY_ID_CHARS 8

typedef struct cp_master_key {
    unsigned char key[CP_KEY_BYTES];
    char id[CP_KEY_ID_CHARS + 1]; /* hex, first 8 of sha256(key) */
} cp_master_key;

/* Where the key came from, for the log (never the key itself). */
typedef enum cp_key_source {
    CP_KEY_FILE,      /* --master-key-file */
    CP_KEY_ENV,       /* NANO_MASTER_KEY */
    CP_KEY_DATA_DIR,  /* DATA_DIR/master.key, existing */
    CP_KEY_GENERATED, /* DATA_DIR/master.key, made now */
} cp_key_source;

/* cp_master_key_load: the master key, from key_file if not NULL, else the NANO_MASTER_KEY
 * environment variable, else data_dir/master.key, which is generated (32 random bytes written
 * as 64 hex digits and a newline, mode 0600, created exclusively) when it does not exist.
 * A key is 64 hex digits; one trailing newline in a file is allowed. A key file that group or
 * others may access (any of mode 077) is refused, as is a key of the wrong form; the one-line
 * message names the file (or the variable) and never shows key material. On success fills
 * *key, *source and path_out (cap bytes: the file used, or "NANO_MASTER_KEY"). */
int cp_master_key_load(const char *key_file, const char *data_dir, cp_master_key *key,
                       cp_key_source *source, char *path_out, size_t cap, nano_error *err);

/* cp_master_key_write: key as 64 hex digits and a newline into a new file at path (mode 0600,
 * created exclusively: an existing file is never overwritten), synced. */
int cp_master_key_write(const char *path, const cp_master_key *key, nano_error *err);

/* cp_master_key_from_hex: a key from 64 hex digits (exactly; no whitespace); fills id.
 * Returns 0 or NANO_EINVAL. */
int cp_master_key_from_hex(const char *hex, size_t len, cp_master_key *key);

/* One sealed value. ciphertext is as long as the plaintext (GCM is a stream mode). */
typedef struct cp_sealed {
    unsigned char nonce[CP_NONCE_BYTES];
    unsigned char tag[CP_TAG_BYTES];
    unsigned char *ciphertext; /* owned (nano_xmalloc); free with cp_sealed_fini */
    size_t len;
    char key_id[CP_KEY_ID_CHARS + 1];
} cp_sealed;

/* cp_secret_seal: encrypts plain[0..len) for (app, name) into *out (caller memory, owned
 * contents). Returns 0, or NANO_EIO when OpenSSL fails (out untouched). */
int cp_secret_seal(const cp_master_key *key, const char *app, const char *name, const void *plain,
                   size_t len, cp_sealed *out);

/* cp_secret_open: decrypts and authenticates in for (app, name). Returns 0 with *plain_out
 * (returned owned, NUL-terminated, not counted in *len_out; wipe with explicit_bzero before
 * freeing) or NANO_EINVAL when the value does not authenticate: another key, another app or
 * name, or tampered bytes. A key_id that differs from key->id fails the same way. */
int cp_secret_open(const cp_master_key *key, const char *app, const char *name, const cp_sealed *in,
                   char **plain_out, size_t *len_out);

void cp_sealed_fini(cp_sealed *s); /* NULL-safe; the struct is zeroed */

/* Helpers shared with the store and service: lowercase hex, and standard base64 (with '='
 * padding). out must hold 2 * len + 1 (hex) or 4 * ((len + 2) / 3) + 1 (base64) bytes. */
void cp_hex(const unsigned char *data, size_t len, char *out);
void cp_base64(const unsigned char *data, size_t len, char *out);

/* cp_random_bytes: n cryptographically strong random bytes (OpenSSL RAND_bytes). Returns 0 or
 * NANO_EIO. */
int cp_random_bytes(unsigned char *out, size_t n);

#endif
