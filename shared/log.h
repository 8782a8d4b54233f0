/* log.h: the runtime log: one line per event, `ts level event k=v ...`, on stderr; or, with
 * nano_log_json set (--log-format json), one JSON object per line with ts, level, event and
 * each k=v as a field (a value runs to the next ` key=`; numbers stay numbers).
 *
 * NANO_LOG checks the level before formatting anything. Event ids are stable dotted names
 * (`conn.accept_failed`, `dp.listening`) that operators and tests grep. Never log env values
 * or secrets: names and counts only. Any thread may log; each line is one write(2). */
#ifndef NANO_LOG_H
#define NANO_LOG_H

#include <stddef.h>

typedef enum nano_log_level {
    NANO_LOG_DEBUG = 0,
    NANO_LOG_INFO,
    NANO_LOG_WARN,
    NANO_LOG_ERROR,
} nano_log_level;

extern nano_log_level nano_log_min_level;
extern int nano_log_json; /* 0: text lines, 1: JSON lines. Set once at start. */

struct nano_buf;

#define NANO_LOG(level, event, ...)                                                                \
    do {                                                                                           \
        if ((level) >= nano_log_min_level)                                                         \
            nano_log_write((level), (event), __VA_ARGS__);                                         \
    } while (0)

#define NANO_DEBUG(event, ...) NANO_LOG(NANO_LOG_DEBUG, event, __VA_ARGS__)
#define NANO_INFO(event, ...) NANO_LOG(NANO_LOG_INFO, event, __VA_ARGS__)
#define NANO_WARN(event, ...) NANO_LOG(NANO_LOG_WARN, event, __VA_ARGS__)
#define NANO_ERROR(event, ...) NANO_LOG(NANO_LOG_ERROR, event, __VA_ARGS__)

/* nano_log_write: formats and writes one line; use NANO_LOG, which skips disabled levels. */
void nano_log_write(nano_log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* nano_log_text: writes a line whose tail is free text of len bytes (app console output,
 * stacks). Embedded newlines are kept so stacks stay readable; the line ends with one '\n'. */
void nano_log_text(nano_log_level level, const char *event, const char *prefix, const char *text,
                   size_t len);

/* nano_log_format: appends one formatted line to out instead of writing it (a worker batches
 * access log lines and writes them with nano_log_raw once per loop turn). */
void nano_log_format(struct nano_buf *out, nano_log_level level, const char *event, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
/* nano_log_format_kv: the same with the key=value text already made (kv_len bytes; no
 * printf: the access log formats its own numbers). */
void nano_log_format_kv(struct nano_buf *out, nano_log_level level, const char *event,
                        const char *kv, size_t kv_len);
/* nano_log_line_begin / nano_log_line_end: a text line made in place, for the access log's
 * one line per request. begin appends "ts level event " to b and reserves room more bytes
 * (and the newline), returning where the key=value text goes; end takes the pointer past
 * the text written (at most room bytes) and finishes the line. Text lines only: with
 * nano_log_json, use nano_log_format_kv. */
char *nano_log_line_begin(struct nano_buf *b, nano_log_level level, const char *event, size_t room);
void nano_log_line_end(struct nano_buf *b, char *end);
void nano_log_raw(const char *data, size_t len);

/* nano_log_level_parse: "debug"|"info"|"warn"|"error" -> level; returns 0 or NANO_EINVAL. */
int nano_log_level_parse(const char *s, nano_log_level *out);

#endif
