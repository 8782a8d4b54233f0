/* fuzz.h: the shape of NANO's fuzz targets (tests/fuzz/). Each target file defines
 * LLVMFuzzerTestOneInput, as libFuzzer expects, and fuzz_seeds, which hands the driver a few
 * valid inputs to start from (made with our own encoders, so they follow the code).
 *
 * Two builds: every target links with driver.c into fuzz_NAME_replay, which ctest runs (the
 * seeds, then a fixed number of deterministic mutations of them: no clang needed, bounded
 * time); with -DNANO_FUZZ=ON and clang, fuzz_NAME is a libFuzzer binary for long runs
 * (docs/testing.md). A target must never crash, leak or trip a sanitizer on any input, and
 * may abort() on purpose when it finds an inconsistency (a decoded value that does not
 * round-trip, say). */
#ifndef NANO_FUZZ_H
#define NANO_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef void (*fuzz_add_fn)(const void *data, size_t size);
void fuzz_seeds(fuzz_add_fn add);

/* FUZZ_CHECK: an invariant of the code under test; on failure the input is a bug. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
