#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "error.h"

nano_log_level nano_log_min_level = NANO_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int nano_log_json = 0;

static size_t format_time(char *out, size_t cap)
{
    /* The date and time of day change once a second: format them then (per thread; access
     * logs call this for every request). */
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char cached[64];
    static _Thread_local size_t cached_len;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        int w = snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_len = w < 0 ? 0 : (size_t)w < sizeof cached ? (size_t)w : sizeof cached - 1;
        cached_sec = ts.tv_sec;
    }
    size_t n = cached_len;
    if (cap < n + 6)
        return 0;
    long ms = ts.tv_nsec / 1000000L;
    memcpy(out, cached, n);
    out[n] = '.';
    out[n + 1] = (char)('0' + ms / 100);
    out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
    return n + 5;
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

/* The length of the well-formed UTF-8 sequence at s (at most len bytes), or 0: no overlong
 * form, no surrogate, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (n == 0 || n > len)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

/* A JSON string of s: always valid UTF-8 JSON, whatever the bytes (a request target, a
 * header): control characters as \\uXXXX, and a byte that is not part of a well-formed
 * UTF-8 sequence as the four characters \\xNN (a backslash escaped, so the value reads
 * "\xff"), which keeps the bytes visible and the line parseable. */
static void json_string(nano_buf *b, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    nano_buf_append(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            nano_buf_append(b, esc, 2);
        } else if (c == '\n') {
            nano_buf_append(b, "\\n", 2);
        } else if (c < 0x20 || c == 0x7f) {
            nano_buf_appendf(b, "\\u%04x", c);
        } else if (c < 0x80) {
            nano_buf_append(b, (const char *)&c, 1);
        } else {
            size_t n = utf8_seq(p + i, len - i);
            if (n == 0) {
                nano_buf_appendf(b, "\\\\x%02x", c);
            } else {
                nano_buf_append(b, (const char *)p + i, n);
                i += n - 1;
            }
        }
    }
    nano_buf_append(b, "\"", 1);
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

/* A "k=" starting at p (p at a key's first char)? Returns the key length, or 0. */
static size_t key_at(const char *p, const char *end)
{
    size_t n = 0;
    while (p + n < end && is_key_char(p[n]))
        n++;
    return n > 0 && p + n < end && p[n] == '=' ? n : 0;
}

static bool is_number(const char *s, size_t len)
{
    if (len == 0 || len > 20)
        return false;
    size_t i = s[0] == '-' ? 1 : 0;
    bool digits = false, dot = false;
    for (; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits = true;
        else if (s[i] == '.' && !dot && digits)
            dot = true;
        else
            return false;
    }
    return digits && !(len > 1 && s[0] == '0' && s[1] != '.');
}

/* The k=v message as JSON fields; text that is not k=v goes into "msg". */
static void json_fields(nano_buf *b, const char *msg, size_t len)
{
    const char *p = msg, *end = msg + len;
    const char *free_text = NULL;
    size_t free_len = 0;
    while (p < end) {
        size_t klen = key_at(p, end);
        if (klen == 0) {
            free_text = p; /* the rest is prose */
            free_len = (size_t)(end - p);
            break;
        }
        const char *v = p + klen + 1, *vend = v;
        while (vend < end && !(vend[0] == ' ' && key_at(vend + 1, end) > 0))
            vend++;
        nano_buf_append(b, ",", 1);
        json_string(b, p, klen);
        nano_buf_append(b, ":", 1);
        /* Ids (request_id: hex) stay strings even when their digits happen to be decimal. */
        bool is_id = klen >= 3 && memcmp(p + klen - 3, "_id", 3) == 0;
        if (!is_id && is_number(v, (size_t)(vend - v)))
            nano_buf_append(b, v, (size_t)(vend - v));
        else
            json_string(b, v, (size_t)(vend - v));
        p = vend < end ? vend + 1 : end;
    }
    if (free_text != NULL) {
        nano_buf_append(b, ",\"msg\":", 7);
        json_string(b, free_text, free_len);
    }
}

/* Longest text of format_time: "YYYY-MM-DDTHH:MM:SS.mmmZ", with room for a wider year. */
#define LOG_TIME_MAX 40

/* A text line's head, "ts level event ", appended to b with room more bytes (and a newline)
 * reserved after it: returns where the rest of the line goes. b->len is left before the
 * head; nano_log_line_end (or the caller) sets it. */
char *nano_log_line_begin(nano_buf *b, nano_log_level level, const char *event, size_t room)
{
    size_t level_len = strlen(level_names[level]), event_len = strlen(event);
    char *p = nano_buf_reserve(b, LOG_TIME_MAX + level_len + event_len + 3 + room + 1);
    char *o = p + format_time(p, LOG_TIME_MAX);
    *o++ = ' ';
    memcpy(o, level_names[level], level_len);
    o += level_len;
    *o++ = ' ';
    memcpy(o, event, event_len);
    o += event_len;
    *o++ = ' ';
    return o;
}

void nano_log_line_end(nano_buf *b, char *end)
{
    *end++ = '\n';
    b->len = (size_t)(end - b->data);
}

/* One line: text "ts level event kv text\n", or a JSON object with kv's fields and text
 * (free text: app console output, a stack; may be NULL) as "msg". */
static void format_line(nano_buf *b, nano_log_level level, const char *event, const char *kv,
                        size_t kv_len, const char *text, size_t text_len)
{
    if (nano_log_json) {
        char ts[LOG_TIME_MAX];
        size_t tn = format_time(ts, sizeof ts);
        nano_buf_append_str(b, "{\"ts\":\"");
        nano_buf_append(b, ts, tn);
        nano_buf_appendf(b, "\",\"level\":\"%s\",\"event\":", level_names[level]);
        json_string(b, event, strlen(event));
        json_fields(b, kv, kv_len);
        if (text != NULL) {
            nano_buf_append(b, ",\"msg\":", 7);
            while (text_len > 0 && text[text_len - 1] == '\n')
                text_len--;
            json_string(b, text, text_len);
        }
        nano_buf_append(b, "}\n", 2);
        return;
    }
    /* Text: "ts level event kv", reserved once. */
    char *p = nano_log_line_begin(b, level, event, kv_len);
    memcpy(p, kv, kv_len);
    b->len = (size_t)(p + kv_len - b->data);
    if (text != NULL) {
        if (kv_len > 0)
            nano_buf_append(b, " ", 1);
        nano_buf_append(b, text, text_len);
    }
    if (b->len == 0 || b->data[b->len - 1] != '\n')
        nano_buf_append(b, "\n", 1);
}

void nano_log_write(nano_log_level level, const char *event, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    nano_buf b = NANO_BUF_INIT;
    format_line(&b, level, event, msg, len, NULL, 0);
    write_all(b.data, b.len);
    nano_buf_fini(&b);
}

void nano_log_format(nano_buf *out, nano_log_level level, const char *event, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? 0 : (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;
    format_line(out, level, event, msg, len, NULL, 0);
}

void nano_log_format_kv(nano_buf *out, nano_log_level level, const char *event, const char *kv,
                        size_t kv_len)
{
    format_line(out, level, event, kv, kv_len, NULL, 0);
}

void nano_log_raw(const char *data, size_t len)
{
    write_all(data, len);
}

void nano_log_text(nano_log_level level, const char *event, const char *prefix, const char *text,
                   size_t len)
{
    if (level < nano_log_min_level)
        return;
    nano_buf b = NANO_BUF_INIT;
    format_line(&b, level, event, prefix != NULL ? prefix : "", prefix != NULL ? strlen(prefix) : 0,
                text != NULL ? text : "", len);
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
