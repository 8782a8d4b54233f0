/* unit.h: glue for cmocka runners with named groups. Each runner binary takes one argument,
 * the group to run (ctest registers one entry per group); with none it runs them all. */
#ifndef NANO_UNIT_H
#define NANO_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

typedef struct unit_group {
    const char *name;
    const struct CMUnitTest *tests;
    size_t n_tests;
} unit_group;

/* clang-format off */
#define UNIT_GROUP(name, array) {name, array, sizeof(array) / sizeof((array)[0])}
/* clang-format on */

static inline int unit_main(int argc, char **argv, const unit_group *groups, size_t n_groups)
{
    int failed = 0, matched = 0;
    for (size_t i = 0; i < n_groups; i++) {
        if (argc > 1 && strcmp(argv[1], groups[i].name) != 0)
            continue;
        matched++;
        failed += _cmocka_run_group_tests(groups[i].name, groups[i].tests, groups[i].n_tests, NULL,
                                          NULL);
    }
    if (matched == 0) {
        print_error("unknown group '%s'\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    return failed != 0;
}

#endif
