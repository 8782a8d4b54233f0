/* error.h: NANO's error codes and the structured error a person reads.
 *
 * Functions that can fail return int: 0 on success, a negative code on failure. Our codes
 * extend negative errno (as libuv's do): NANO_ENOMEM == -ENOMEM, and nano_strerror() names
 * both kinds. Any thread may call these. */
#ifndef NANO_ERROR_H
#define NANO_ERROR_H

#include <errno.h>
#include <stddef.h>

enum {
    NANO_ENOMEM = -ENOMEM,
    NANO_EINVAL = -EINVAL,
    NANO_ENOENT = -ENOENT,
    NANO_ERANGE = -ERANGE,
    NANO_EIO = -EIO,
    /* Our own codes live below every errno value. */
    NANO_ENOTFOUND = -10001, /* a looked-up thing does not exist */
    NANO_ESYNTAX = -10002,   /* input does not follow its grammar */
    NANO_ETOOBIG = -10003,   /* input exceeds a configured limit */
    NANO_ESTATE = -10004,    /* operation not valid in the object's current state */
    NANO_EJS = -10005,       /* JavaScript threw */
    NANO_EUNKNOWN = -10006,  /* a request was sent, its answer lost: it may have been applied */
    NANO_ECONFLICT = -10007, /* a concurrent change came first: nothing applied; run it again */
};

/* A person-readable error: a stable id such as "env_file_syntax" and a one-line message. */
typedef struct nano_error {
    int code;
    char id[48];
    char message[512];
} nano_error;

/* nano_strerror: a static description of rc (a NANO_E* code or a negative errno). */
const char *nano_strerror(int rc);

/* nano_error_set: fills err (if not NULL) and returns code, so callers can
 * `return nano_error_set(err, NANO_ESYNTAX, "id", "fmt", ...);`. */
int nano_error_set(nano_error *err, int code, const char *id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
