#include "buf.h"

#include <stdarg.h>
#include <stdio.h>

#include "alloc.h"

size_t nano_ascii_prefix(const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8); /* unaligned-safe; compiles to one load */
        if (w & 0x8080808080808080ULL)
            break;
    }
    while (i < n && s[i] < 0x80)
        i++;
    return i;
}

bool nano_str_ieq(nano_str a, nano_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++) {
        unsigned char x = (unsigned char)a.ptr[i], y = (unsigned char)b.ptr[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return false;
    }
    return true;
}

char *nano_buf_reserve(nano_buf *b, size_t n)
{
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n + 1)
            cap *= 2;
        b->data = nano_xrealloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void nano_buf_append(nano_buf *b, const void *p, size_t n)
{
    char *dst = nano_buf_reserve(b, n);
    if (n)
        memcpy(dst, p, n);
    b->len += n;
}

void nano_buf_append_str(nano_buf *b, const char *s)
{
    nano_buf_append(b, s, strlen(s));
}

void nano_buf_append_u64(nano_buf *b, uint64_t v)
{
    char tmp[20]; /* 18446744073709551615 */
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    nano_buf_append(b, tmp + i, sizeof tmp - i);
}

void nano_buf_appendf(nano_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        nano_buf_append(b, tmp, (size_t)n);
        return;
    }
    char *dst = nano_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(dst, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void nano_buf_consume(nano_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

const char *nano_buf_cstr(nano_buf *b)
{
    nano_buf_reserve(b, 0);
    b->data[b->len] = '\0';
    return b->data;
}

void nano_buf_reset(nano_buf *b)
{
    b->len = 0;
}

void nano_buf_fini(nano_buf *b)
{
    nano_free(b->data);
    *b = NANO_BUF_INIT;
}
