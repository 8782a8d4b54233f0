/* alloc.h: the two allocation families (docs/style.md#allocation).
 *
 * nano_x*: for bookkeeping we size ourselves; aborts on out-of-memory.
 * nano_malloc/nano_realloc: for sizes that come from input (already checked against limits);
 * returns NULL on failure. The test hook makes the Nth fallible allocation fail, so tests can
 * walk every failure path. Any thread may call these; the hook is for single-threaded tests. */
#ifndef NANO_ALLOC_H
#define NANO_ALLOC_H

#include <stddef.h>

void *nano_xmalloc(size_t n);
void *nano_xcalloc(size_t count, size_t size);
void *nano_xrealloc(void *p, size_t n);
char *nano_xstrdup(const char *s);
char *nano_xstrndup(const char *s, size_t n);

void *nano_malloc(size_t n);
void *nano_realloc(void *p, size_t n);
void nano_free(void *p);

/* nano_alloc_fail_after: the nth call (1-based) to a fallible allocator from now on fails;
 * 0 disables the hook. Returns how many fallible allocations ran since the last call. */
long nano_alloc_fail_after(long nth);

#endif
