/* opt.h: command-line options from a table, for nano-dp, nanocp and nanoctl. An option is a
 * name and whether it takes a value, given as "--name VALUE" or "--name=VALUE" (an empty value
 * is a value); a flag is "--name" alone. The helper says which option an argument is, takes its
 * value and words the usage errors, one line each; what an option means, positional arguments
 * and sub-commands stay with the caller. Pure; any thread. */
#ifndef NANO_OPT_H
#define NANO_OPT_H

#include <stdbool.h>

#include "error.h"

typedef struct nano_opt {
    const char *name; /* "--port", "-h"; a table ends with an entry whose name is NULL */
    bool has_value;   /* "--port 80" or "--port=80"; false: a flag */
    int id;           /* the caller's own (an enum value, an offsetof); not read here */
} nano_opt;

/* What nano_opt_next read: an argument that is not an option. */
#define NANO_OPT_ARG (-1)

typedef struct nano_opt_parser {
    const nano_opt *table; /* borrowed */
    const char *prog;      /* "nano-dp check": unknown options add "(see PROG --help)"; NULL:
                              no hint (the caller adds its own) */
    int argc;
    char **argv; /* borrowed; values point into it */
    int i;       /* the argument to read next: 1, or past a sub-command */
} nano_opt_parser;

/* nano_opt_is_option: whether arg is written as an option: it starts with '-' and is not "-"
 * (which names stdin, a positional argument). */
bool nano_opt_is_option(const char *arg);

/* nano_opt_next: reads argv[p->i] (p->i < p->argc), and the value after it when it is an
 * option that takes one, and moves p->i past them. Returns 0 with *which and *value:
 *   - the index in p->table of the option it names, and its value (after '=', or the next
 *     argument), or NULL for a flag;
 *   - NANO_OPT_ARG and the argument itself, when it is not an option (nano_opt_is_option).
 * Or returns NANO_EINVAL with err filled (id "usage") and nothing else written, when it is an
 * option the table does not have ("unknown option '--prot'", named without what follows '=',
 * which may be a secret), when an option's value is missing ("--port needs a value") or when
 * a flag has one ("--json takes no value"). Values are borrowed from argv. */
int nano_opt_next(nano_opt_parser *p, int *which, const char **value, nano_error *err);

/* nano_opt_value: for parsers that test options one at a time (nanoctl's commands): whether
 * argv[*i] is the option name, which takes a value, as "--name VALUE" or "--name=VALUE".
 * Returns 1 with *value (borrowed from argv) and *i moved onto a separate value; 0 when
 * argv[*i] is another argument (nothing written); or NANO_EINVAL with err filled when the value
 * is missing ("--name needs a value"). */
int nano_opt_value(const char *name, int argc, char **argv, int *i, const char **value,
                   nano_error *err);

#endif
