#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"

int nano_read_file(const char *path, size_t max, char **out, size_t *len, nano_error *err)
{
    /* O_NONBLOCK: opening a FIFO would wait for a writer (the loader, and with it reloads and
     * signals, stuck); it is then refused below as not a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        return nano_error_set(err, -e, "read_failed", "%s: %s", path, strerror(e));
    }
    char *data = NULL;
    size_t n_read = 0;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        rc = nano_error_set(err, -e, "read_failed", "%s: %s", path, strerror(e));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = nano_error_set(err, -EISDIR, "read_failed", "%s: %s", path, strerror(EISDIR));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = nano_error_set(err, NANO_EINVAL, "read_failed", "%s: not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        rc = nano_error_set(err, NANO_ETOOBIG, "read_failed", "%s: %lld bytes; the limit is %zu",
                            path, (long long)st.st_size, max);
        goto done;
    }
    /* st_size is a hint: the file can change between fstat and read (and /proc files say 0),
     * and the limit must hold for what is read. One spare byte sees growth; one more holds
     * the NUL. */
    size_t size = (size_t)st.st_size + 2;
    data = nano_malloc(size);
    for (;;) {
        if (data != NULL && n_read + 1 == size) {
            size_t bigger = size * 2 < max + 2 ? size * 2 : max + 2;
            char *p = nano_realloc(data, bigger);
            if (p == NULL)
                nano_free(data);
            data = p;
            size = bigger;
        }
        if (data == NULL) {
            rc = nano_error_set(err, NANO_ENOMEM, "read_failed", "%s: out of memory", path);
            goto done;
        }
        ssize_t n = read(fd, data + n_read, size - 1 - n_read);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            rc = nano_error_set(err, -e, "read_failed", "%s: %s", path, strerror(e));
            goto done;
        }
        if (n == 0)
            break;
        n_read += (size_t)n;
        if (n_read > max) {
            rc = nano_error_set(err, NANO_ETOOBIG, "read_failed",
                                "%s: larger than the limit of %zu bytes", path, max);
            goto done;
        }
    }
    data[n_read] = '\0';
    *out = data;
    *len = n_read;
    data = NULL;
done:
    nano_free(data);
    close(fd);
    return rc;
}
