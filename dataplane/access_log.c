/* access_log.c: a worker's access lines (worker_int.h): one line per request the connection is
 * done with, written without printf into a batch that is flushed when 32 KiB have gathered or
 * by the tick (docs/nano-dp.md: logs). */
#include "worker_int.h"

#include <string.h>

/* Access-line writers: bytes straight into space reserved once. */
static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return put(p, tmp + i, sizeof tmp - i);
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* One access line into the batch: key=value text made without printf, in one reservation
 * (it costs a few percent of a small request otherwise). */
void dp_worker__access_line(dp_worker *w, const dp_flight *f, dp_request *req, int status,
                            uint64_t us, bool failed)
{
    nano_str m = dp_request_method(req), p = dp_request_path(req);
    const char *app = f != NULL ? f->app_name : "-";
    size_t app_len = strlen(app), path_len = p.len > 512 ? 512 : p.len;
    /* The fixed text (about 90 bytes) and numbers of at most 20 digits each. Text lines are
     * written in place in the batch; JSON lines convert the text made in access_kv. */
    size_t room = 200 + app_len + m.len + path_len;
    char *start = nano_log_json
                      ? nano_buf_reserve(&w->access_kv, room)
                      : nano_log_line_begin(&w->access_log, NANO_LOG_INFO, "access", room);
    char *o = start;
    o = PUT_LIT(o, "app=");
    o = put(o, app, app_len);
    o = PUT_LIT(o, " method=");
    o = put(o, m.ptr, m.len);
    o = PUT_LIT(o, " path=");
    o = put(o, p.ptr, path_len);
    o = PUT_LIT(o, " status=");
    o = put_u64(o, (uint64_t)(status < 0 ? 0 : status));
    o = PUT_LIT(o, " bytes=");
    o = put_u64(o, dp_request_bytes_out(req));
    o = PUT_LIT(o, " duration_ms=");
    o = put_u64(o, us / 1000);
    *o++ = '.';
    *o++ = (char)('0' + us % 1000 / 100);
    *o++ = (char)('0' + us % 100 / 10);
    *o++ = (char)('0' + us % 10);
    o = PUT_LIT(o, " request_id=");
    static const char hex[] = "0123456789abcdef";
    char id[16];
    size_t i = sizeof id;
    uint64_t v = dp_request_id(req);
    do {
        id[--i] = hex[v & 15];
        v >>= 4;
    } while (v != 0);
    o = put(o, id + i, sizeof id - i);
    if (failed)
        o = PUT_LIT(o, " aborted=1");
    if (nano_log_json)
        nano_log_format_kv(&w->access_log, NANO_LOG_INFO, "access", start, (size_t)(o - start));
    else
        nano_log_line_end(&w->access_log, o);
}

/* Access lines are written in batches: when 32 KiB have gathered (checked after each loop
 * turn) and from the tick, so a line is at most 250 ms late. A write per loop turn cost ~20%
 * of hello req/s. */
#define DP_ACCESS_LOG_BATCH (32 * 1024)

void dp_worker__flush_access_log(dp_worker *w)
{
    if (w->access_log.len == 0)
        return;
    nano_log_raw(w->access_log.data, w->access_log.len);
    w->access_log.len = 0;
}

void dp_worker__on_log_flush(uv_check_t *h)
{
    dp_worker *w = h->data;
    if (w->access_log.len >= DP_ACCESS_LOG_BATCH)
        dp_worker__flush_access_log(w);
}
