#include "parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "error.h"

/* Reads the leading decimal digits of s into *out; returns the number of digits read
 * (0 when none), or -1 on overflow. */
static int read_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (isdigit((unsigned char)s[n])) {
        unsigned d = (unsigned)(s[n] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

static int scaled(uint64_t v, uint64_t mul, uint64_t *out)
{
    if (mul != 0 && v > UINT64_MAX / mul)
        return NANO_ERANGE;
    *out = v * mul;
    return 0;
}

int nano_parse_duration_ms(const char *s, uint64_t *out_ms)
{
    uint64_t v;
    int n = read_uint(s, &v);
    if (n < 0)
        return NANO_ERANGE;
    if (n == 0)
        return NANO_ESYNTAX;
    const char *unit = s + n;
    uint64_t mul;
    if (*unit == '\0' || strcmp(unit, "s") == 0)
        mul = 1000;
    else if (strcmp(unit, "ms") == 0)
        mul = 1;
    else if (strcmp(unit, "m") == 0)
        mul = 60 * 1000;
    else if (strcmp(unit, "h") == 0)
        mul = 3600 * 1000;
    else
        return NANO_ESYNTAX;
    return scaled(v, mul, out_ms);
}

int nano_parse_size(const char *s, uint64_t *out_bytes)
{
    uint64_t v;
    int n = read_uint(s, &v);
    if (n < 0)
        return NANO_ERANGE;
    if (n == 0)
        return NANO_ESYNTAX;
    const char *unit = s + n;
    uint64_t mul;
    if (*unit == '\0' || strcasecmp(unit, "b") == 0)
        mul = 1;
    else if (strcasecmp(unit, "k") == 0 || strcasecmp(unit, "kib") == 0 ||
             strcasecmp(unit, "kb") == 0)
        mul = 1024;
    else if (strcasecmp(unit, "m") == 0 || strcasecmp(unit, "mib") == 0 ||
             strcasecmp(unit, "mb") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(unit, "g") == 0 || strcasecmp(unit, "gib") == 0 ||
             strcasecmp(unit, "gb") == 0)
        mul = 1024ull * 1024 * 1024;
    else
        return NANO_ESYNTAX;
    return scaled(v, mul, out_bytes);
}

int nano_parse_port(const char *s, int *out_port)
{
    uint64_t v;
    int n = read_uint(s, &v);
    if (n <= 0 || s[n] != '\0')
        return NANO_ESYNTAX;
    if (v > 65535)
        return NANO_ERANGE;
    *out_port = (int)v;
    return 0;
}
