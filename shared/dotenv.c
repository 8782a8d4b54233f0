#include "dotenv.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"

typedef struct scanner {
    const char *p, *end;
    int line;
    const char *origin;
    nano_error *err;
} scanner;

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

int nano_env_name_valid(const char *name, size_t len)
{
    if (len == 0 || !is_name_start(name[0]))
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!is_name_char(name[i]))
            return 0;
    return 1;
}

static void skip_blanks(scanner *s)
{
    while (s->p < s->end && is_blank(*s->p))
        s->p++;
}

static void skip_to_eol(scanner *s)
{
    while (s->p < s->end && *s->p != '\n')
        s->p++;
}

static int fail(scanner *s, int line, const char *what)
{
    return nano_error_set(s->err, NANO_ESYNTAX, "env_file_syntax", "%s:%d: %s", s->origin, line,
                          what);
}

/* After a value: only blanks and an optional comment may follow on the line. */
static int expect_eol(scanner *s)
{
    skip_blanks(s);
    if (s->p < s->end && *s->p == '#')
        skip_to_eol(s);
    if (s->p < s->end && *s->p != '\n')
        return fail(s, s->line, "unexpected text after the closing quote");
    return 0;
}

static int read_quoted(scanner *s, nano_buf *v)
{
    char q = *s->p++;
    int start_line = s->line;
    while (s->p < s->end && *s->p != q) {
        char c = *s->p++;
        if (c == '\n')
            s->line++;
        if (c == '\\' && q == '"' && s->p < s->end) {
            char e = *s->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case '\\':
            case '"':
            case '\'':
            case '$': c = e; break;
            default:
                /* Unknown escapes stay as written, as other dotenv readers keep them. */
                nano_buf_append(v, "\\", 1);
                c = e;
                if (e == '\n')
                    s->line++;
                break;
            }
        }
        nano_buf_append(v, &c, 1);
    }
    if (s->p >= s->end) {
        char msg[96];
        snprintf(msg, sizeof msg, "unterminated %c-quoted value (opened on this line)", q);
        return fail(s, start_line, msg);
    }
    s->p++; /* closing quote */
    return expect_eol(s);
}

static void read_unquoted(scanner *s, nano_buf *v)
{
    const char *start = s->p;
    const char *stop = s->p;
    while (s->p < s->end && *s->p != '\n') {
        /* A '#' starts a comment only after whitespace, so "a#b" keeps its '#'. */
        if (*s->p == '#' && (s->p == start || is_blank(s->p[-1])))
            break;
        s->p++;
        if (!is_blank(s->p[-1]))
            stop = s->p;
    }
    nano_buf_append(v, start, (size_t)(stop - start));
    skip_to_eol(s);
}

int nano_dotenv_parse(const char *text, size_t len, const char *origin, nano_dotenv_cb cb, void *ud,
                      nano_error *err)
{
    scanner s = {text, text + len, 1, origin ? origin : "<env>", err};
    nano_buf name = NANO_BUF_INIT, value = NANO_BUF_INIT;
    int rc = 0;

    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        s.p += 3; /* UTF-8 BOM from editors on Windows */
    while (s.p < s.end) {
        skip_blanks(&s);
        if (s.p >= s.end)
            break;
        if (*s.p == '\n' || *s.p == '#') {
            skip_to_eol(&s);
            if (s.p < s.end) {
                s.p++;
                s.line++;
            }
            continue;
        }
        int line = s.line;
        if ((size_t)(s.end - s.p) > 7 && memcmp(s.p, "export", 6) == 0 && is_blank(s.p[6])) {
            s.p += 7;
            skip_blanks(&s);
        }
        const char *n0 = s.p;
        while (s.p < s.end && is_name_char(*s.p))
            s.p++;
        size_t nlen = (size_t)(s.p - n0);
        skip_blanks(&s);
        if (nlen == 0 || s.p >= s.end || *s.p != '=') {
            rc = fail(&s, line, nlen == 0 ? "expected NAME=VALUE" : "expected '=' after the name");
            goto done;
        }
        if (!is_name_start(n0[0])) {
            rc = fail(&s, line, "a name must start with a letter or '_'");
            goto done;
        }
        s.p++; /* '=' */
        skip_blanks(&s);
        nano_buf_reset(&name);
        nano_buf_reset(&value);
        nano_buf_append(&name, n0, nlen);
        if (s.p < s.end && (*s.p == '"' || *s.p == '\'' || *s.p == '`')) {
            rc = read_quoted(&s, &value);
            if (rc != 0)
                goto done;
        } else {
            read_unquoted(&s, &value);
        }
        rc = cb(ud, nano_buf_cstr(&name), nano_buf_cstr(&value), value.len, line);
        if (rc != 0)
            goto done;
        if (s.p < s.end) { /* at '\n' */
            s.p++;
            s.line++;
        }
    }
done:
    nano_buf_fini(&name);
    nano_buf_fini(&value);
    return rc;
}
