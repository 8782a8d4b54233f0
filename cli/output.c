/* output.c: nanoctl's error lines, option helpers, tables and JSON printing. */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "opt.h"

static int vreport(ctl_ctx *ctx, int code, const char *fmt, va_list ap)
{
    char why[1024];
    vsnprintf(why, sizeof why, fmt, ap);
    /* One line, whatever the message holds. */
    for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (ctx->what[0])
        fprintf(ctx->io->err, "nanoctl: %s: %s\n", ctx->what, why);
    else
        fprintf(ctx->io->err, "nanoctl: %s\n", why);
    return code;
}

int ctl_usage(ctl_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(ctx, CTL_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return rc;
}

int ctl_fail(ctl_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(ctx, CTL_EXIT_FAIL, fmt, ap);
    va_end(ap);
    return rc;
}

/* what: the first n_words of argv that are not options ("apps status api"). */
void ctl_set_what(ctl_ctx *ctx, int argc, char **argv, int n_words)
{
    size_t n = 0;
    ctx->what[0] = '\0';
    for (int i = 0, w = 0; i < argc && w < n_words; i++) {
        if (nano_opt_is_option(argv[i]))
            continue;
        int k = snprintf(ctx->what + n, sizeof ctx->what - n, "%s%.40s", w ? " " : "", argv[i]);
        if (k < 0 || (size_t)k >= sizeof ctx->what - n)
            break;
        n += (size_t)k;
        w++;
    }
}

int ctl_opt(ctl_ctx *ctx, int argc, char **argv, int *i, const char *name, const char **value)
{
    nano_error err = {0};
    int m = nano_opt_value(name, argc, argv, i, value, &err);
    if (m < 0)
        return ctl_usage(ctx, "%s", err.message), -1;
    return m;
}

int ctl_parse_u64(ctl_ctx *ctx, const char *what, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return ctl_usage(ctx, "%s: '%s' is not a non-negative integer", what, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > INT64_MAX)
        return ctl_usage(ctx, "%s: '%s' is not a non-negative integer", what, s);
    *out = v;
    return 0;
}

/* The server's error codes that mean "your input was wrong" (exit 2, like a local usage
 * error); everything else the server refuses is a runtime failure (exit 1). */
static bool is_input_error(const char *code)
{
    return strcmp(code, "bad_request") == 0 || strcmp(code, "invalid_field") == 0 ||
           strcmp(code, "too_large") == 0;
}

int ctl_call(ctl_ctx *ctx, const char *op, json_t *args, json_t **result)
{
    json_t *res = NULL;
    ctl_remote_error rerr;
    memset(&rerr, 0, sizeof rerr);
    if (!args)
        args = json_object();
    int rc = ctx->io->call(ctx->io->call_ud, op, args, &res, &rerr);
    json_decref(args);
    if (rc == 0) {
        if (result)
            *result = res ? res : json_object();
        else
            json_decref(res);
        return CTL_EXIT_OK;
    }
    if (rc != CTL_EREMOTE)
        return ctl_fail(ctx, "%s", rerr.message[0] ? rerr.message : "the call failed");
    char detail[200];
    if (rerr.field[0])
        snprintf(detail, sizeof detail, "%s; field %s", rerr.code, rerr.field);
    else
        snprintf(detail, sizeof detail, "%s", rerr.code);
    if (strcmp(rerr.code, "unauthorized") == 0)
        return ctl_fail(ctx, "%s (%s)%s", rerr.message, detail,
                        ctx->has_token ? ""
                                       : ": no token configured: use --token, --token-file, "
                                         "NANO_TOKEN or ~/.config/nano/nanoctl.json");
    return (is_input_error(rerr.code) ? ctl_usage : ctl_fail)(ctx, "%s (%s)", rerr.message, detail);
}

void ctl_print_json(ctl_ctx *ctx, const json_t *v)
{
    json_dumpf(v, ctx->io->out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    fputc('\n', ctx->io->out);
}

const char *ctl_scalar(const json_t *v, char *buf, size_t cap)
{
    if (!v || json_is_null(v)) {
        snprintf(buf, cap, "-");
    } else if (json_is_string(v)) {
        snprintf(buf, cap, "%s", json_string_value(v));
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        snprintf(buf, cap, "%s", t ? t : "?");
        free(t);
    }
    /* one cell per line: control characters would break the table */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    return buf;
}

/* --- tables ------------------------------------------------------------------------------- */

struct ctl_table {
    size_t n_cols;
    size_t n_rows;
    char **cells; /* row-major, the header row first */
    size_t cap_rows;
};

ctl_table *ctl_table_new(size_t n_cols, const char *const *headers)
{
    ctl_table *t = nano_xcalloc(1, sizeof *t);
    t->n_cols = n_cols;
    ctl_table_add(t, headers);
    return t;
}

void ctl_table_add(ctl_table *t, const char *const *cells)
{
    if (t->n_rows == t->cap_rows) {
        t->cap_rows = t->cap_rows ? t->cap_rows * 2 : 8;
        t->cells = nano_xrealloc(t->cells, t->cap_rows * t->n_cols * sizeof *t->cells);
    }
    for (size_t c = 0; c < t->n_cols; c++)
        t->cells[t->n_rows * t->n_cols + c] = nano_xstrdup(cells[c] ? cells[c] : "");
    t->n_rows++;
}

void ctl_table_print(ctl_table *t, FILE *out)
{
    size_t *w = nano_xcalloc(t->n_cols, sizeof *w);
    for (size_t r = 0; r < t->n_rows; r++)
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t n = strlen(t->cells[r * t->n_cols + c]);
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            const char *cell = t->cells[r * t->n_cols + c];
            if (c + 1 == t->n_cols)
                fprintf(out, "%s\n", cell);
            else
                fprintf(out, "%-*s  ", (int)w[c], cell);
        }
    }
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        nano_free(t->cells[i]);
    nano_free(t->cells);
    nano_free(w);
    nano_free(t);
}

void ctl_print_objects(ctl_ctx *ctx, const json_t *array)
{
    if (!json_is_array(array) || json_array_size(array) == 0) {
        fprintf(ctx->io->out, "(none)\n");
        return;
    }
    json_t *first = json_array_get(array, 0);
    if (!json_is_object(first)) {
        ctl_print_json(ctx, array);
        return;
    }
    const char *keys[16];
    size_t n = 0;
    const char *key;
    json_t *val;
    json_object_foreach(first, key, val) {
        if (n < 16)
            keys[n++] = key;
    }
    char upper[16][48];
    const char *headers[16];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        for (; keys[i][k] && k + 1 < sizeof upper[i]; k++)
            upper[i][k] = (char)(keys[i][k] >= 'a' && keys[i][k] <= 'z' ? keys[i][k] - 32
                                                                        : keys[i][k]);
        upper[i][k] = '\0';
        headers[i] = upper[i];
    }
    ctl_table *t = ctl_table_new(n, headers);
    size_t idx;
    json_t *row;
    json_array_foreach(array, idx, row) {
        char cells[16][160];
        const char *cp[16];
        for (size_t i = 0; i < n; i++)
            cp[i] = ctl_scalar(json_object_get(row, keys[i]), cells[i], sizeof cells[i]);
        ctl_table_add(t, cp);
    }
    ctl_table_print(t, ctx->io->out);
}
