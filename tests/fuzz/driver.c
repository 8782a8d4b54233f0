/* driver.c: runs a fuzz target without libFuzzer (ctest, gcc builds):
 *
 *   fuzz_NAME_replay [--runs N] [--seed S] [--write-seeds DIR] [FILE...]
 *
 * With FILEs, runs each (reproducing a crash libFuzzer found). Otherwise runs the target's
 * seeds, then N (default 20000) inputs made from them by deterministic mutations: bit flips,
 * byte changes, truncations, insertions, deletions, splices of two seeds, and random bytes,
 * and prints the counts. --write-seeds writes the seeds as files into DIR (a corpus to start
 * libFuzzer from). Exit 0 when nothing crashed (a crash aborts the process). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

typedef struct seed {
    unsigned char *data;
    size_t size;
} seed;

static seed *g_seeds;
static size_t g_n_seeds;

static void add_seed(const void *data, size_t size)
{
    g_seeds = realloc(g_seeds, (g_n_seeds + 1) * sizeof *g_seeds);
    if (g_seeds == NULL)
        abort();
    g_seeds[g_n_seeds].data = malloc(size ? size : 1);
    if (g_seeds[g_n_seeds].data == NULL)
        abort();
    memcpy(g_seeds[g_n_seeds].data, data, size);
    g_seeds[g_n_seeds].size = size;
    g_n_seeds++;
}

/* xorshift64*: deterministic, so a failing run repeats with the same --seed. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

/* One mutated input into buf (cap bytes); returns its size. */
static size_t mutate(unsigned char *buf, size_t cap)
{
    const seed *s = &g_seeds[below(g_n_seeds)];
    size_t n = s->size < cap ? s->size : cap;
    memcpy(buf, s->data, n);
    int rounds = 1 + (int)below(4);
    for (int r = 0; r < rounds; r++) {
        switch (below(7)) {
        case 0: /* flip a bit */
            if (n > 0)
                buf[below(n)] ^= (unsigned char)(1u << below(8));
            break;
        case 1: /* set a byte to an interesting value */
            if (n > 0) {
                static const unsigned char vals[] = {0x00, 0xff, 0x7f, 0x80, 0xc0, 0xc1, 0xd9,
                                                     0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xc4, '\r',
                                                     '\n', ':',  ' ',  '0',  '9'};
                buf[below(n)] = vals[below(sizeof vals)];
            }
            break;
        case 2: /* truncate */ n = below(n + 1); break;
        case 3: /* insert random bytes */
            if (n < cap) {
                size_t at = below(n + 1), k = 1 + below(8);
                if (k > cap - n)
                    k = cap - n;
                memmove(buf + at + k, buf + at, n - at);
                for (size_t i = 0; i < k; i++)
                    buf[at + i] = (unsigned char)rnd();
                n += k;
            }
            break;
        case 4: /* delete a range */
            if (n > 0) {
                size_t at = below(n), k = 1 + below(n - at);
                memmove(buf + at, buf + at + k, n - at - k);
                n -= k;
            }
            break;
        case 5: { /* splice: the head of this input and the tail of another seed */
            const seed *o = &g_seeds[below(g_n_seeds)];
            size_t keep = below(n + 1), from = below(o->size + 1), k = o->size - from;
            if (keep + k > cap)
                k = cap - keep;
            memcpy(buf + keep, o->data + from, k);
            n = keep + k;
            break;
        }
        default: /* random bytes */
            n = below(cap < 64 ? cap : 64);
            for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char)rnd();
            break;
        }
    }
    return n;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz: cannot open %s: %s\n", path, strerror(errno));
        return 2;
    }
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            if (buf == NULL)
                abort();
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    printf("fuzz: %s: ok (%zu bytes)\n", path, n);
    return 0;
}

static int write_seeds(const char *dir)
{
    mkdir(dir, 0755);
    for (size_t i = 0; i < g_n_seeds; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%03zu", dir, i);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(g_seeds[i].data, 1, g_seeds[i].size, f) != g_seeds[i].size) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
            return 2;
        }
        fclose(f);
    }
    printf("fuzz: %zu seeds written to %s\n", g_n_seeds, dir);
    return 0;
}

int main(int argc, char **argv)
{
    long runs = 20000;
    const char *seeds_dir = NULL;
    int first_file = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            g_rng = strtoull(argv[++i], NULL, 0) | 1;
        } else if (strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc) {
            seeds_dir = argv[++i];
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [--runs N] [--seed S] [--write-seeds DIR] [FILE...]\n",
                    argv[0]);
            return 2;
        } else {
            first_file = i;
            break;
        }
    }
    fuzz_seeds(add_seed);
    if (seeds_dir != NULL)
        return write_seeds(seeds_dir);
    if (first_file < argc) {
        for (int i = first_file; i < argc; i++)
            if (run_file(argv[i]) != 0)
                return 2;
        return 0;
    }
    if (g_n_seeds == 0) {
        fprintf(stderr, "fuzz: the target has no seeds\n");
        return 2;
    }
    for (size_t i = 0; i < g_n_seeds; i++)
        LLVMFuzzerTestOneInput(g_seeds[i].data, g_seeds[i].size);
    static unsigned char buf[1 << 16];
    for (long r = 0; r < runs; r++) {
        size_t n = mutate(buf, sizeof buf);
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz: %zu seeds and %ld mutated inputs ran without a failure\n", g_n_seeds, runs);
    for (size_t i = 0; i < g_n_seeds; i++)
        free(g_seeds[i].data);
    free(g_seeds);
    return 0;
}
