#include "parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
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

/* Host (RFC 9112 §3.2, RFC 3986 §3.2.2): host [":" port]. The host is a bracketed IPv6
 * literal, or a name of letters, digits, '-', '_', '~' and '.' (an IPv4 address is one): a
 * strict subset of RFC 3986's reg-name, without percent-encoding and sub-delims, so that
 * every Host accepted makes a request.url the WHATWG URL parser takes, and nothing in it
 * can steer routing ("a.test:80/admin?" was routed by its path). The port, when present, is
 * 1 to 5 digits up to 65535. */
int nano_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int nano_parse_hex(const char *s, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n)
        return NANO_ESYNTAX;
    for (size_t i = 0; i < len; i++) /* all checked before out is written */
        if (nano_hex_digit(s[i]) < 0)
            return NANO_ESYNTAX;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(nano_hex_digit(s[2 * i]) << 4 | nano_hex_digit(s[2 * i + 1]));
    return 0;
}

bool nano_http_host_valid(const char *s, size_t len)
{
    nano_str v = {s, len};
    size_t i = 0, n = v.len;
    if (n == 0 || n > 255 + 8)
        return false;
    if (v.ptr[0] == '[') {
        bool has_colon = false;
        for (i = 1; i < n && v.ptr[i] != ']'; i++) {
            char c = v.ptr[i];
            if (c == ':')
                has_colon = true;
            else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                       c == '.'))
                return false;
        }
        if (i >= n || i < 3 || !has_colon)
            return false;
        i++; /* past ']' */
    } else {
        size_t label = 0;
        for (; i < n && v.ptr[i] != ':'; i++) {
            char c = v.ptr[i];
            if (c == '.') {
                if (label == 0)
                    return false; /* an empty label: ".a", "a..b" */
                label = 0;
            } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '_' || c == '~') {
                if (++label > 63)
                    return false;
            } else {
                return false;
            }
        }
        if (i == 0 || i > 253 + 1)
            return false;
    }
    if (i == n)
        return true;
    if (v.ptr[i] != ':' || n - i - 1 == 0 || n - i - 1 > 5)
        return false;
    unsigned port = 0;
    for (i++; i < n; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
        port = port * 10 + (unsigned)(v.ptr[i] - '0');
    }
    return port <= 65535;
}
