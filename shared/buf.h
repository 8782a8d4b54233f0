/* buf.h: byte views and growable byte buffers.
 *
 * nano_str is a borrowed {ptr, len} view: it never owns its bytes. nano_buf owns a growable
 * heap buffer (nano_xrealloc: bookkeeping we size ourselves; callers check input sizes
 * against limits before appending). Not thread-safe; one owner at a time. */
#ifndef NANO_BUF_H
#define NANO_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct nano_str {
    const char *ptr;
    size_t len;
} nano_str;

#define NANO_STR(lit) ((nano_str){(lit), sizeof(lit) - 1})

static inline nano_str nano_str_c(const char *s)
{
    return (nano_str){s, s ? strlen(s) : 0};
}

static inline bool nano_str_eq(nano_str a, nano_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* nano_str_ieq: ASCII case-insensitive comparison (header names, tokens). */
bool nano_str_ieq(nano_str a, nano_str b);

/* How many bytes at the start of p[0..n) are ASCII (below 0x80): n when all are. Eight at a
 * time, since bodies and decoded text are usually all ASCII. */
size_t nano_ascii_prefix(const void *p, size_t n);

typedef struct nano_buf {
    char *data;
    size_t len;
    size_t cap;
} nano_buf;

#define NANO_BUF_INIT ((nano_buf){NULL, 0, 0})

/* nano_buf_reserve: makes room for at least n more bytes; returns a pointer to them. */
char *nano_buf_reserve(nano_buf *b, size_t n);
void nano_buf_append(nano_buf *b, const void *p, size_t n);
void nano_buf_append_str(nano_buf *b, const char *s);
/* nano_buf_append_u64: v in decimal (the hot path's numbers: no printf). */
void nano_buf_append_u64(nano_buf *b, uint64_t v);
void nano_buf_appendf(nano_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* nano_buf_consume: drops the first n bytes, keeping the rest. */
void nano_buf_consume(nano_buf *b, size_t n);
/* nano_buf_cstr: NUL-terminates (not counted in len) and returns data. */
const char *nano_buf_cstr(nano_buf *b);
void nano_buf_reset(nano_buf *b);
void nano_buf_fini(nano_buf *b);

#endif
