#include "opt.h"

#include <string.h>

bool nano_opt_is_option(const char *arg)
{
    return arg[0] == '-' && arg[1] != '\0';
}

/* Whether arg is name, or name=VALUE (then *eq: the value). */
static bool names(const char *arg, const char *name, const char **eq)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
        return false;
    *eq = arg[n] == '=' ? arg + n + 1 : NULL;
    return true;
}

int nano_opt_next(nano_opt_parser *p, int *which, const char **value, nano_error *err)
{
    const char *arg = p->argv[p->i];
    if (!nano_opt_is_option(arg)) {
        p->i++;
        *which = NANO_OPT_ARG;
        *value = arg;
        return 0;
    }
    const char *eq = NULL;
    int k = 0;
    while (p->table[k].name != NULL && !names(arg, p->table[k].name, &eq))
        k++;
    const nano_opt *o = &p->table[k];
    if (o->name == NULL) {
        int n = (int)strcspn(arg, "=");
        if (p->prog != NULL)
            return nano_error_set(err, NANO_EINVAL, "usage",
                                  "unknown option '%.*s' (see %s --help)", n, arg, p->prog);
        return nano_error_set(err, NANO_EINVAL, "usage", "unknown option '%.*s'", n, arg);
    }
    if (!o->has_value && eq != NULL)
        return nano_error_set(err, NANO_EINVAL, "usage", "%s takes no value", o->name);
    int next = p->i + 1;
    if (o->has_value && eq == NULL) {
        if (next >= p->argc)
            return nano_error_set(err, NANO_EINVAL, "usage", "%s needs a value", o->name);
        eq = p->argv[next++];
    }
    p->i = next;
    *which = k;
    *value = eq;
    return 0;
}

int nano_opt_value(const char *name, int argc, char **argv, int *i, const char **value,
                   nano_error *err)
{
    const char *eq;
    if (!names(argv[*i], name, &eq))
        return 0;
    const nano_opt table[] = {{name, true, 0}, {NULL, false, 0}};
    nano_opt_parser p = {table, NULL, argc, argv, *i};
    int which;
    int rc = nano_opt_next(&p, &which, value, err);
    if (rc != 0)
        return rc;
    *i = p.i - 1; /* the caller's loop steps past the last argument read */
    return 1;
}
