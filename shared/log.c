#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

nano_log_level nano_log_min_level = NANO_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static size_t format_prefix(char *out, size_t cap, nano_log_level level, const char *event)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000L, level_names[level], event);
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            return; /* nothing sensible to do when stderr is gone */
        p += w;
        n -= (size_t)w;
    }
}

void nano_log_write(nano_log_level level, const char *event, const char *fmt, ...)
{
    char line[2048];
    size_t n = format_prefix(line, sizeof line, level, event);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m < sizeof line - n - 1 ? (size_t)m : sizeof line - n - 2;
    line[n++] = '\n';
    write_all(line, n);
}

void nano_log_text(nano_log_level level, const char *event, const char *prefix, const char *text,
                   size_t len)
{
    if (level < nano_log_min_level)
        return;
    char head[256];
    size_t n = format_prefix(head, sizeof head, level, event);
    nano_buf b = NANO_BUF_INIT;
    nano_buf_append(&b, head, n);
    if (prefix != NULL && *prefix) {
        nano_buf_append_str(&b, prefix);
        nano_buf_append(&b, " ", 1);
    }
    nano_buf_append(&b, text, len);
    if (b.len == 0 || b.data[b.len - 1] != '\n')
        nano_buf_append(&b, "\n", 1);
    write_all(b.data, b.len);
    nano_buf_fini(&b);
}

int nano_log_level_parse(const char *s, nano_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (nano_log_level)i;
            return 0;
        }
    }
    return NANO_EINVAL;
}
