/* imports.c: finding import specifiers in ES module source (imports.h). One pass over the
 * bytes, remembering only what the last significant token was: enough to tell a string that
 * names a module from any other string, and a regular expression literal from a division
 * (ECMA-262 §12: the lexer's goal symbol depends on the previous token; the usual heuristic
 * below, as JS highlighters and minifiers' pre-scanners use, guesses it from that token). */
#include "imports.h"

#include <string.h>

/* What the last significant token was. */
typedef enum prev_kind {
    PREV_START,        /* nothing yet, or punctuation after which an expression starts */
    PREV_VALUE,        /* a name, number, string or closing bracket: '/' divides */
    PREV_FROM,         /* `from` */
    PREV_IMPORT,       /* `import` (not a property name) */
    PREV_IMPORT_PAREN, /* `import (` */
} prev_kind;

typedef struct scan {
    const char *p, *end;
    prev_kind prev;
    nano_import_found_fn found;
    void *ud;
    bool is_stopped;
} scan;

static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '$' || c >= 0x80; /* UTF-8 bytes of non-ASCII identifiers */
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool word_is(const char *w, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(w, lit, n) == 0;
}

/* Keywords after which an expression (so possibly a regular expression) starts. */
static bool starts_expression(const char *w, size_t n)
{
    static const char *const kw[] = {"return", "typeof", "instanceof", "in",    "of",
                                     "new",    "delete", "void",       "throw", "case",
                                     "do",     "else",   "yield",      "await"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (word_is(w, n, kw[i]))
            return true;
    return false;
}

/* Skips a quoted string whose opening quote is at s->p; reports it when it names a module. */
static void string_literal(scan *s)
{
    char quote = *s->p++;
    const char *start = s->p;
    bool is_plain = true; /* no escape, no line break: the bytes are the specifier */
    while (s->p < s->end && *s->p != quote) {
        if (*s->p == '\\' && s->p + 1 < s->end) {
            is_plain = false;
            s->p++;
        } else if (*s->p == '\n') {
            is_plain = false; /* unterminated: resynchronize at the line's end */
            break;
        }
        s->p++;
    }
    const char *stop = s->p < s->end ? s->p : s->end;
    if (s->p < s->end && *s->p == quote)
        s->p++;
    else
        is_plain = false; /* cut off: not a specifier */
    bool wanted = s->prev == PREV_FROM || s->prev == PREV_IMPORT;
    if (s->prev == PREV_IMPORT_PAREN) {
        /* import("./x.js") or import("./x.js", {with: ...}): the string is the argument. */
        const char *q = s->p;
        while (q < s->end && is_space((unsigned char)*q))
            q++;
        wanted = q < s->end && (*q == ')' || *q == ',');
    }
    s->prev = PREV_VALUE;
    if (wanted && is_plain && !s->found(s->ud, start, (size_t)(stop - start)))
        s->is_stopped = true;
}

/* A template literal: skipped whole. Substitutions (`${...}`) are not scanned; a template
 * nested inside one ends this one early, and the scan resynchronizes at the next backtick. */
static void template_literal(scan *s)
{
    s->p++;
    while (s->p < s->end && *s->p != '`')
        s->p += *s->p == '\\' && s->p + 1 < s->end ? 2 : 1;
    if (s->p < s->end)
        s->p++;
    s->prev = PREV_VALUE;
}

/* A regular expression literal from the '/' at s->p, flags included. One that does not end on
 * its line was a division after all: only the '/' is consumed. */
static void regex_literal(scan *s)
{
    const char *q = s->p + 1;
    bool in_class = false;
    while (q < s->end && *q != '\n') {
        if (*q == '\\' && q + 1 < s->end) {
            q += 2;
            continue;
        }
        if (*q == '[')
            in_class = true;
        else if (*q == ']')
            in_class = false;
        else if (*q == '/' && !in_class)
            break;
        q++;
    }
    if (q >= s->end || *q != '/') {
        s->p++;
        s->prev = PREV_START;
        return;
    }
    s->p = q + 1;
    while (s->p < s->end && is_word_byte((unsigned char)*s->p))
        s->p++;
    s->prev = PREV_VALUE;
}

static void word(scan *s, bool after_dot)
{
    const char *w = s->p;
    while (s->p < s->end && is_word_byte((unsigned char)*s->p))
        s->p++;
    size_t n = (size_t)(s->p - w);
    if (after_dot) /* a property name: x.import, x.from */
        s->prev = PREV_VALUE;
    else if (word_is(w, n, "from"))
        s->prev = PREV_FROM;
    else if (word_is(w, n, "import"))
        s->prev = PREV_IMPORT;
    else
        s->prev = starts_expression(w, n) ? PREV_START : PREV_VALUE;
}

void nano_imports_scan(const char *src, size_t len, nano_import_found_fn found, void *ud)
{
    scan s = {.p = src, .end = src + len, .prev = PREV_START, .found = found, .ud = ud};
    bool after_dot = false;
    if (len >= 2 && src[0] == '#' && src[1] == '!') /* a hashbang line */
        while (s.p < s.end && *s.p != '\n')
            s.p++;
    while (s.p < s.end && !s.is_stopped) {
        unsigned char c = (unsigned char)*s.p;
        if (is_space(c)) {
            s.p++;
            continue;
        }
        if (c == '/' && s.p + 1 < s.end && s.p[1] == '/') {
            while (s.p < s.end && *s.p != '\n')
                s.p++;
            continue;
        }
        if (c == '/' && s.p + 1 < s.end && s.p[1] == '*') {
            const char *close = NULL;
            for (const char *q = s.p + 2; q + 1 < s.end; q++)
                if (q[0] == '*' && q[1] == '/') {
                    close = q;
                    break;
                }
            s.p = close != NULL ? close + 2 : s.end;
            continue;
        }
        bool was_dot = after_dot;
        after_dot = false;
        if (c == '"' || c == '\'') {
            string_literal(&s);
        } else if (c == '`') {
            template_literal(&s);
        } else if (is_word_byte(c)) {
            word(&s, was_dot);
        } else if (c == '/') {
            if (s.prev == PREV_VALUE) {
                s.p++;
                s.prev = PREV_START;
            } else {
                regex_literal(&s);
            }
        } else if (c == '.') {
            if (s.p + 2 < s.end && s.p[1] == '.' && s.p[2] == '.') { /* `...x` spreads a value */
                s.p += 3;
                s.prev = PREV_START;
            } else {
                s.p++;
                after_dot = true; /* the name that follows is a property */
            }
        } else {
            s.p++;
            if (c == '(' && s.prev == PREV_IMPORT)
                s.prev = PREV_IMPORT_PAREN;
            else
                s.prev = c == ')' || c == ']' ? PREV_VALUE : PREV_START;
        }
    }
}

bool nano_import_is_relative(const char *spec, size_t len)
{
    return (len >= 2 && memcmp(spec, "./", 2) == 0) || (len >= 3 && memcmp(spec, "../", 3) == 0) ||
           (len >= 1 && spec[0] == '/') || (len >= 7 && memcmp(spec, "file://", 7) == 0);
}
