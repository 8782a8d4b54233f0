#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long fail_at; /* 0: never fail */
static long n_calls;

static void oom(size_t n)
{
    fprintf(stderr, "nano: out of memory allocating %zu bytes\n", n);
    abort();
}

void *nano_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

void *nano_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        oom(count * size);
    return p;
}

void *nano_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

char *nano_xstrdup(const char *s)
{
    return nano_xstrndup(s, strlen(s));
}

char *nano_xstrndup(const char *s, size_t n)
{
    char *p = nano_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int should_fail(void)
{
    n_calls++;
    return fail_at != 0 && n_calls == fail_at;
}

void *nano_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *nano_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void nano_free(void *p)
{
    free(p);
}

long nano_alloc_fail_after(long nth)
{
    long ran = n_calls;
    n_calls = 0;
    fail_at = nth;
    return ran;
}
