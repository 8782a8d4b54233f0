/* conn.c: one HTTP/1.1 connection: reading and parsing requests, handing each to the runtime,
 * writing responses in order, keep-alive, pipelining, errors and closing.
 *
 * A connection runs one request at a time. Bytes of a pipelined request that arrive while
 * one is in flight wait in `pending` (reading stops meanwhile) and are parsed once the
 * response is done, and only while fewer than DP_OUTPUT_HIGH_WATER_MARK response bytes wait
 * for the client: a client that pipelines without reading is held back by TCP instead of
 * making us buffer its answers. A client that takes none of the bytes waiting for it for
 * the write timeout is reset. Work that would otherwise start from inside JS (finishing a
 * response synchronously from a handler) is deferred to the server's idle callback, so we
 * never re-enter the runtime. */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "log.h"
#include "server_int.h"

#define LINGER_TIMEOUT_MS 2000
#define CONTINUE_LINE "HTTP/1.1 100 Continue\r\n\r\n"

static void process_input(dp_conn *c, const char *data, size_t len);

static void set_state(dp_conn *c, dp_conn_state next)
{
    /* The legal transitions; anything else is a bug in this file. */
    switch (c->state) {
    case DP_CONN_IDLE:
        assert(next == DP_CONN_HEAD || next == DP_CONN_ACTIVE || next == DP_CONN_LINGER ||
               next == DP_CONN_CLOSING);
        break;
    case DP_CONN_HEAD:
        assert(next == DP_CONN_ACTIVE || next == DP_CONN_LINGER || next == DP_CONN_CLOSING);
        break;
    case DP_CONN_ACTIVE:
        assert(next == DP_CONN_IDLE || next == DP_CONN_LINGER || next == DP_CONN_CLOSING);
        break;
    case DP_CONN_LINGER: assert(next == DP_CONN_CLOSING); break;
    case DP_CONN_CLOSING: assert(0 && "a closing connection changes state no more"); break;
    }
    c->state = next;
}

static void on_handle_closed(uv_handle_t *h)
{
    dp_conn *c = h->data;
    if (--c->n_handles_open > 0)
        return;
    dp_server *srv = c->srv;
    dp_server__conn_gone(srv, c);
    dp_http1_fini(&c->http);
    dp_tls_free(c->tls);
    nano_buf_fini(&c->pending);
    nano_buf_fini(&c->out);
    nano_free(c);
}

static void on_timer(uv_timer_t *t);

/* The connection's one timer serves two clocks: the phase's timeout (head, idle, linger:
 * timer_due) and the write timeout's checks (write_check_due). It fires at the earlier of
 * the two. Timeouts are lazy: every request would otherwise stop and restart the uv timer (a
 * heap update each). Arming only moves a due time; the uv timer is restarted only when it
 * would fire after the new due time, and on_timer re-arms itself for a due time that moved
 * later. disarm_timer just forgets the phase's due time. */
static void timer_update(dp_conn *c)
{
    uint64_t due = c->timer_due;
    if (c->write_check_due != 0 && (due == 0 || c->write_check_due < due))
        due = c->write_check_due;
    if (due == 0 || c->state == DP_CONN_CLOSING)
        return;
    if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_fires_at <= due)
        return;
    uint64_t now = uv_now(c->srv->loop);
    c->timer_fires_at = due;
    uv_timer_start(&c->timer, on_timer, due > now ? due - now : 0, 0);
}

static void arm_timer(dp_conn *c, uint64_t ms)
{
    c->timer_due = uv_now(c->srv->loop) + ms;
    timer_update(c);
}

static void disarm_timer(dp_conn *c)
{
    c->timer_due = 0;
}

/* The loop time by which the current body must be in at --body-min-rate (server.h's rule);
 * 0: no rate rule. */
static uint64_t body_deadline(const dp_conn *c)
{
    const dp_server_options *o = &c->srv->opts;
    if (o->body_timeout_ms == 0 || o->body_min_rate == 0)
        return 0;
    return c->body_since + o->body_timeout_ms + c->body_bytes * 1000 / o->body_min_rate +
           c->body_held_ms;
}

/* While a request body is awaited from a client we read from, its bytes must keep coming, and
 * at a minimum pace: one that sends part of a body and stops, or trickles a byte now and then,
 * would otherwise hold the connection (and the request's slot in the app) forever. No byte for
 * the idle timeout, or the body behind its rate deadline, is a 408. Not armed while reading is
 * held back (the app has not taken what came: that time is the app's, not the client's), nor
 * once the body is in. */
static void body_watch(dp_conn *c)
{
    if (c->state != DP_CONN_ACTIVE)
        return;
    uint64_t now = uv_now(c->srv->loop);
    bool waiting = !c->is_msg_complete && !c->is_shutting_down;
    if (waiting && c->is_reading) {
        if (c->body_held_since != 0) {
            c->body_held_ms += now - c->body_held_since;
            c->body_held_since = 0;
        }
        uint64_t due = now + c->srv->opts.idle_timeout_ms, deadline = body_deadline(c);
        if (deadline != 0 && deadline < due)
            due = deadline;
        c->timer_due = due;
        timer_update(c);
    } else {
        if (waiting && c->body_held_since == 0)
            c->body_held_since = now;
        disarm_timer(c);
    }
}

/* Lets go of the in-flight request: the runtime may keep it alive (waitUntil), but its
 * response no longer goes anywhere. */
static void release_request(dp_conn *c, bool failed)
{
    dp_request *req = c->req;
    if (req == NULL)
        return;
    c->req = NULL;
    c->srv->n_active--;
    /* Detach first: failing the body runs JS, whose reaction (say, a 500 from a handler whose
     * read rejected) must not reach a connection that is answering or closing itself. */
    dp_request_ref(req);
    dp_request__detach(req);
    if (!req->body_complete)
        dp_request__body_end(req, failed);
    if (!req->is_ended && req->listener != NULL)
        req->listener->aborted(req->listener_ud, req); /* a streamed response is canceled */
    if (c->srv->opts.on_request_end != NULL)
        c->srv->opts.on_request_end(c->srv->opts.ud, req, failed || !req->is_ended);
    dp_request_unref(req);
}

/* reset: with an RST (SO_LINGER 0) rather than a FIN, for a peer that takes nothing: the
 * kernel would otherwise keep the unsent bytes of the closed socket, probing a zero window. */
static void close_conn(dp_conn *c, bool reset)
{
    if (c->state == DP_CONN_CLOSING)
        return;
    set_state(c, DP_CONN_CLOSING);
    release_request(c, true);
    if (!reset || uv_tcp_close_reset(&c->tcp, on_handle_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void dp_conn__close(dp_conn *c)
{
    close_conn(c, false);
}

size_t dp_conn__unsent(const dp_conn *c)
{
    /* libuv's write queue size counts down as the kernel takes bytes of a write in flight. */
    return c->out.len + uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

/* Bytes the kernel has taken from our uv_write requests, ever: grows while any progress is
 * made, even inside one large write whose callback is far off. */
static uint64_t write_progress(const dp_conn *c)
{
    return c->write_done + c->write_bytes -
           uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

static uint64_t write_timeout_ms(const dp_conn *c)
{
    uint64_t ms = c->srv->opts.write_timeout_ms;
    return ms != 0 ? ms : DP_WRITE_TIMEOUT_MS;
}

/* Checked four times per timeout: a connection is closed between one and one and a quarter
 * timeouts after the kernel last took a byte (the first check that finds no progress since
 * the one before starts the count). */
static uint64_t write_check_interval(const dp_conn *c)
{
    uint64_t ms = write_timeout_ms(c) / 4;
    return ms > 0 ? ms : 1;
}

/* A uv_write is in flight: watch it (nothing to do if already watching). */
static void write_watch_start(dp_conn *c)
{
    if (c->write_check_due != 0)
        return;
    uint64_t now = uv_now(c->srv->loop);
    c->write_mark = write_progress(c);
    c->write_stall_since = now;
    c->write_check_due = now + write_check_interval(c);
    timer_update(c);
}

/* The timer's write check: true when the connection was closed. */
static bool write_check(dp_conn *c, uint64_t now)
{
    uint64_t progress = write_progress(c);
    if (progress != c->write_mark) {
        c->write_mark = progress;
        c->write_stall_since = now;
    } else if (now - c->write_stall_since >= write_timeout_ms(c)) {
        /* The client reads nothing: the request in flight, if any, is aborted as if the client
         * had gone (its response stream is canceled, its slot released). */
        NANO_DEBUG("conn.write_timeout", "unsent=%zu stalled_ms=%llu", dp_conn__unsent(c),
                   (unsigned long long)(now - c->write_stall_since));
        close_conn(c, true);
        return true;
    }
    c->write_check_due = now + write_check_interval(c);
    return false;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dp_conn *c = h->data;
    (void)suggested;
    /* libuv calls alloc then read back to back for one stream, so one buffer per loop does. */
    buf->base = c->srv->read_buf;
    buf->len = sizeof c->srv->read_buf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void start_reading(dp_conn *c)
{
    if (c->is_reading || c->state == DP_CONN_CLOSING)
        return;
    if ((c->is_shutting_down || c->is_output_paused) && c->state != DP_CONN_LINGER)
        return;
    c->is_reading = true;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void stop_reading(dp_conn *c)
{
    if (c->is_reading) {
        c->is_reading = false;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    dp_conn *c = r->data;
    if (c->state == DP_CONN_CLOSING)
        return;
    if (status != 0) {
        dp_conn__close(c);
        return;
    }
    /* Lingering close: the peer may still be sending (the rest of a body we refused).
     * Closing with unread bytes makes the kernel send RST, which can destroy the response
     * before the client reads it; so read and discard until EOF or a short timeout. */
    set_state(c, DP_CONN_LINGER);
    nano_buf_reset(&c->pending);
    arm_timer(c, LINGER_TIMEOUT_MS);
    start_reading(c);
}

static void flush(dp_conn *c);

static void maybe_shutdown(dp_conn *c)
{
    if (!c->want_shutdown || c->n_writes > 0 || c->out.len > 0 || c->state == DP_CONN_CLOSING ||
        c->state == DP_CONN_LINGER)
        return;
    if (c->tls != NULL && dp_tls_is_established(c->tls)) {
        dp_tls_close_notify(c->tls); /* once: the alert goes before the FIN */
        if (dp_tls_wants_write(c->tls)) {
            flush(c); /* comes back here once it is written */
            return;
        }
    }
    c->want_shutdown = false;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        dp_conn__close(c);
}

/* Closes after everything queued has been written. */
static void close_gracefully(dp_conn *c)
{
    if (c->is_shutting_down || c->state == DP_CONN_CLOSING)
        return;
    c->is_shutting_down = true;
    release_request(c, false);
    stop_reading(c);
    disarm_timer(c);
    if (c->write_check_due == 0)
        uv_timer_stop(&c->timer); /* a write in flight is still watched */
    c->want_shutdown = true;
    maybe_shutdown(c);
}

typedef struct write_req {
    uv_write_t req;
    dp_conn *conn;
    nano_buf data; /* the bytes from `sent` on are this request's */
    size_t sent;   /* taken by the kernel before the request was made */
    size_t len;    /* data.len - sent */
} write_req;

/* A streamed response waiting for room (dp_response_writable said false) may write again
 * once what waits for the kernel is below the high-water mark. */
static void notify_writable(dp_conn *c)
{
    dp_request *req = c->req;
    if (req == NULL || !req->wants_writable || c->state == DP_CONN_CLOSING ||
        c->out.len + c->write_bytes >= DP_RESPONSE_HIGH_WATER_MARK)
        return;
    req->wants_writable = false;
    req->is_yielding = false;
    req->bytes_since_yield = 0;
    dp_request_ref(req);
    if (req->listener != NULL)
        req->listener->writable(req->listener_ud, req);
    dp_request_unref(req);
}

/* Output went to the kernel: whatever waited for room may go on. */
static void output_drained(dp_conn *c)
{
    dp_request *req = c->req;
    if (req != NULL && req->is_body_piped && c->state != DP_CONN_CLOSING)
        dp_conn__body_taken(c); /* read more of the piped body */
    notify_writable(c);
    if (c->is_output_paused && c->state != DP_CONN_CLOSING &&
        dp_conn__unsent(c) < DP_OUTPUT_LOW_WATER_MARK) {
        /* Take pipelined requests again: those already read first, then the socket. */
        c->is_output_paused = false;
        if (c->state == DP_CONN_IDLE && !c->is_shutting_down) {
            if (c->pending.len > 0)
                dp_server__schedule(c->srv, c);
            else
                start_reading(c);
        }
    }
}

/* Called where a new request could start: true when the unsent output is at the high-water
 * mark, so that none may (the connection is paused until output_drained sees it below the
 * low-water mark). may_flush: hand waiting output to the kernel first (not from inside JS,
 * since a failed write closes the connection). */
static bool output_over_mark(dp_conn *c, bool may_flush)
{
    if (c->is_output_paused)
        return true;
    if (dp_conn__unsent(c) < DP_OUTPUT_HIGH_WATER_MARK)
        return false;
    if (may_flush && c->n_writes == 0) {
        flush(c); /* a client that reads keeps up: no pause */
        if (c->state == DP_CONN_CLOSING || dp_conn__unsent(c) < DP_OUTPUT_HIGH_WATER_MARK)
            return c->state == DP_CONN_CLOSING;
    }
    NANO_DEBUG("conn.output_paused", "unsent=%zu", dp_conn__unsent(c));
    c->is_output_paused = true;
    stop_reading(c);
    return true;
}

static void on_write(uv_write_t *w, int status)
{
    write_req *wr = container_of(w, write_req, req);
    dp_conn *c = wr->conn;
    c->write_bytes -= wr->len;
    c->write_done += wr->len;
    nano_buf_fini(&wr->data);
    nano_free(wr);
    c->n_writes--;
    if (c->state == DP_CONN_CLOSING)
        return;
    if (status != 0) {
        NANO_DEBUG("conn.write_failed", "error=%s", uv_strerror(status));
        dp_conn__close(c);
        return;
    }
    flush(c);
    if (c->n_writes == 0) {
        c->write_check_due = 0; /* nothing waits for the kernel: no write timeout to watch */
        if (c->state == DP_CONN_IDLE && c->out.len == 0)
            arm_timer(c, c->srv->opts.idle_timeout_ms); /* idle from now: the answers left */
    }
    if (c->state != DP_CONN_CLOSING)
        output_drained(c);
}

/* Responses up to this size are copied into out and written with one write(). */
#define DP_SMALL_WRITE (16 * 1024)

/* A uv_buf_t of len bytes (at most DP_WRITE_PIECE_MAX): uv_buf_init would cut the length to
 * an unsigned int. */
static uv_buf_t piece(const char *p, size_t len)
{
    assert(len <= DP_WRITE_PIECE_MAX);
    uv_buf_t b;
    b.base = (char *)p;
    b.len = len;
    return b;
}

/* What the kernel takes of p[0..n) now: bytes written, 0 when the socket is full, or a
 * negative libuv error. send() rather than libuv's write(): on a socket it skips the file
 * layer (position lock, permission hooks), a few percent of a small request. Only called
 * with no libuv write queued, so the byte order stays right. */
static ssize_t try_send(dp_conn *c, const char *p, size_t n)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return UV_EBADF;
    for (;;) {
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno; /* libuv's error codes are negated errno values on Linux */
    }
}

static void flush(dp_conn *c)
{
    /* HTTPS: what waits in out is plaintext; it leaves as records, after any the handshake
     * made. Only with no write in flight, so the records go in order. */
    if (c->tls != NULL && c->n_writes == 0 && c->state != DP_CONN_CLOSING &&
        (c->out.len > 0 || dp_tls_wants_write(c->tls)) && dp_tls_seal(c->tls, &c->out) != 0) {
        NANO_DEBUG("conn.tls_write_failed", "detail=%s", "cannot encrypt the response");
        dp_conn__close(c);
        return;
    }
    if (c->n_writes > 0 || c->out.len == 0 || c->state == DP_CONN_CLOSING)
        goto out;
    ssize_t n = try_send(c, c->out.data, c->out.len);
    if (n < 0) {
        NANO_DEBUG("conn.write_failed", "error=%s", uv_strerror((int)n));
        dp_conn__close(c);
        return;
    }
    if ((size_t)n == c->out.len) {
        c->out.len = 0;
    } else {
        /* The rest goes out asynchronously: hand the buffer to the write request as it is
         * (moving the rest to the front would copy up to the whole response), in pieces a
         * uv_buf_t carries whole (libuv copies the array). */
        write_req *wr = nano_xmalloc(sizeof *wr);
        wr->conn = c;
        wr->data = c->out;
        wr->sent = (size_t)n;
        wr->len = wr->data.len - wr->sent;
        c->out = NANO_BUF_INIT;
        size_t n_bufs = (wr->len + DP_WRITE_PIECE_MAX - 1) / DP_WRITE_PIECE_MAX;
        uv_buf_t few[8];
        uv_buf_t *bufs = n_bufs <= 8 ? few : nano_xmalloc(n_bufs * sizeof *bufs);
        for (size_t i = 0; i < n_bufs; i++) {
            size_t off = i * DP_WRITE_PIECE_MAX;
            size_t len = wr->len - off;
            bufs[i] = piece(wr->data.data + wr->sent + off,
                            len < DP_WRITE_PIECE_MAX ? len : DP_WRITE_PIECE_MAX);
        }
        int rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, bufs, (unsigned)n_bufs, on_write);
        if (bufs != few)
            nano_free(bufs);
        if (rc != 0) {
            nano_buf_fini(&wr->data);
            nano_free(wr);
            dp_conn__close(c);
            return;
        }
        c->n_writes++;
        c->write_bytes += wr->len;
        write_watch_start(c);
    }
out:
    maybe_shutdown(c);
}

void dp_conn__flush(dp_conn *c)
{
    flush(c);
}

void dp_conn__flush_now(dp_conn *c)
{
    flush(c);
    output_drained(c);
}

/* Queues bufs after what waits in out. With no write in flight it offers everything to the
 * kernel at once (one writev, no copy); only what the kernel does not take is copied into
 * out, to go with the next flush. */
void dp_conn__send(dp_conn *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->state == DP_CONN_CLOSING)
        return;
    size_t written = 0;
    size_t total = c->out.len;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (total <= DP_SMALL_WRITE || c->tls != NULL) {
        /* (HTTPS: every write is encrypted from out when it is flushed.) */
        /* Small: one copy into out and one write() at the end of the loop turn, cheaper in
         * the kernel than a writev of the head and the body (most responses are this small). */
        for (unsigned i = 0; i < n; i++)
            nano_buf_append(&c->out, bufs[i].base, bufs[i].len);
        if (c->n_writes == 0)
            dp_server__flush_soon(c->srv, c);
        return;
    }
    if (c->n_writes == 0 && n <= 4) {
        /* At most DP_WRITE_PIECE_MAX offered in all: the kernel takes far less at once, and
         * uv_try_write's int result then holds the count. */
        uv_buf_t iov[5];
        unsigned k = 0;
        size_t room = DP_WRITE_PIECE_MAX;
        if (c->out.len > 0) {
            size_t len = c->out.len < room ? c->out.len : room;
            iov[k++] = piece(c->out.data, len);
            room -= len;
        }
        for (unsigned i = 0; i < n && room > 0; i++) {
            size_t len = bufs[i].len < room ? bufs[i].len : room;
            iov[k++] = piece(bufs[i].base, len);
            room -= len;
        }
        int rc = uv_try_write((uv_stream_t *)&c->tcp, iov, k);
        if (rc == UV_EAGAIN || rc == UV_ENOSYS)
            rc = 0;
        if (rc < 0) {
            NANO_DEBUG("conn.write_failed", "error=%s", uv_strerror(rc));
            dp_conn__close(c);
            return;
        }
        written = (size_t)rc;
        size_t from_out = written < c->out.len ? written : c->out.len;
        nano_buf_consume(&c->out, from_out);
        written -= from_out;
    }
    for (unsigned i = 0; i < n; i++) {
        size_t skip = written < bufs[i].len ? written : bufs[i].len;
        written -= skip;
        if (bufs[i].len > skip)
            nano_buf_append(&c->out, bufs[i].base + skip, bufs[i].len - skip);
    }
    if (c->out.len > 0 && c->n_writes == 0)
        dp_server__flush_soon(c->srv, c); /* the rest goes even if nobody flushes */
}

/* The runtime took body bytes (or wants the whole body, or dropped it): read again if the
 * body had held reading back. */
void dp_conn__body_taken(dp_conn *c)
{
    dp_request *req = c->req;
    if (!c->is_body_paused)
        return;
    size_t held = req == NULL          ? 0
                  : req->is_body_piped ? c->out.len + c->write_bytes
                                       : req->body.len;
    if (req != NULL && !req->is_body_collected && !req->is_body_discarded &&
        held >= DP_BODY_HIGH_WATER_MARK)
        return;
    c->is_body_paused = false;
    if (c->state == DP_CONN_ACTIVE) {
        start_reading(c);
        body_watch(c);
    }
}

/* The answer of the server's on_refusal option in place of the plain-text one: true when
 * the option wrote it. */
static bool send_error_page(dp_conn *c, int status, dp_refusal kind, const char *reason,
                            const char *text)
{
    const dp_server_options *o = &c->srv->opts;
    nano_buf headers = NANO_BUF_INIT;
    nano_buf body = NANO_BUF_INIT;
    bool is_written = o->on_refusal(o->ud, status, kind, reason, &headers, &body);
    if (is_written) {
        nano_buf_appendf(&c->out, "HTTP/1.1 %d %s\r\n", status, text);
        nano_buf_append(&c->out, headers.data, headers.len);
        nano_buf_appendf(&c->out, "content-length: %zu\r\nconnection: close\r\ndate: %s\r\n\r\n",
                         body.len, dp_server__date(c->srv));
        nano_buf_append(&c->out, body.data, body.len);
    }
    nano_buf_fini(&headers);
    nano_buf_fini(&body);
    return is_written;
}

static void send_error(dp_conn *c, int status, dp_refusal kind, const char *reason)
{
    dp_server__count_refusal(kind);
    const char *text = dp_request__reason_phrase(status);
    NANO_DEBUG("conn.bad_request", "status=%d reason=\"%s\"", status, reason);
    bool can_answer = c->req == NULL || !dp_response_started(c->req);
    release_request(c, true);
    const dp_server_options *o = &c->srv->opts;
    bool is_answered = false;
    if (o->on_refusal != NULL && can_answer)
        is_answered = send_error_page(c, status, kind, reason, text);
    else if (o->on_refusal != NULL)
        o->on_refusal(o->ud, status, kind, reason, NULL, NULL);
    if (can_answer && !is_answered) {
        nano_buf_appendf(&c->out,
                         "HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                         "content-length: %zu\r\nconnection: close\r\ndate: %s\r\n\r\n%s: %s\n",
                         status, text, strlen(text) + strlen(reason) + 3, dp_server__date(c->srv),
                         text, reason);
    }
    nano_buf_reset(&c->pending);
    close_gracefully(c);
    flush(c);
}

static void on_timer(uv_timer_t *t)
{
    dp_conn *c = container_of(t, dp_conn, timer);
    uint64_t now = uv_now(c->srv->loop);
    if (c->state == DP_CONN_CLOSING)
        return;
    if (c->write_check_due != 0 && now >= c->write_check_due && write_check(c, now))
        return;
    if (c->timer_due != 0 && now >= c->timer_due) {
        c->timer_due = 0;
        switch (c->state) {
        case DP_CONN_HEAD:
            send_error(c, 408, DP_REFUSED_HEAD_TIMEOUT, "request head not received in time");
            break;
        case DP_CONN_IDLE:
            if (c->tls != NULL && c->is_tls_started && !dp_tls_is_established(c->tls)) {
                /* A TLS handshake not finished within the head timeout: no answer can go. */
                dp_server__count_refusal(DP_REFUSED_HEAD_TIMEOUT);
                NANO_DEBUG("conn.tls_timeout", "detail=%s", "handshake not finished in time");
                dp_conn__close(c);
                break;
            }
            /* Not idle while answers still leave: the write timeout watches those (a slow
             * reader of a large response keeps its connection); look again later. */
            if (dp_conn__unsent(c) > 0)
                arm_timer(c, c->srv->opts.idle_timeout_ms);
            else
                dp_conn__close(c);
            break;
        case DP_CONN_LINGER: dp_conn__close(c); break;
        case DP_CONN_ACTIVE: /* armed by body_watch: the body stopped coming, or crawls */
            if (!c->is_msg_complete && c->is_reading) {
                uint64_t deadline = body_deadline(c);
                if (deadline != 0 && now >= deadline)
                    send_error(c, 408, DP_REFUSED_BODY_SLOW,
                               "request body arrived slower than the minimum rate");
                else
                    send_error(c, 408, DP_REFUSED_BODY_IDLE, "request body not received in time");
            }
            break;
        default: break;
        }
    }
    if (c->state != DP_CONN_CLOSING)
        timer_update(c);
}

static int on_body(void *ud, const char *data, size_t len)
{
    dp_conn *c = ud;
    dp_request *req = c->req;
    if (req == NULL)
        return 0;
    dp_request__body_append(req, data, len);
    c->body_bytes += len;
    c->has_new_body = true;
    size_t held = req->is_body_piped ? c->out.len + c->write_bytes : req->body.len;
    if (!req->is_body_collected && !req->is_body_discarded && held >= DP_BODY_HIGH_WATER_MARK &&
        !c->is_body_paused) {
        /* Backpressure: the app has not taken what arrived (or, piped, the socket has not):
         * let TCP hold the client back. */
        c->is_body_paused = true;
        stop_reading(c);
        body_watch(c);
    }
    return 0;
}

static bool should_close_after(dp_conn *c, const dp_http1_head *head)
{
    return !head->keep_alive || head->is_upgrade || c->srv->is_draining;
}

static void start_request(dp_conn *c)
{
    const dp_http1_head *head = dp_http1_current(&c->http);
    disarm_timer(c);
    set_state(c, DP_CONN_ACTIVE);
    c->srv->n_active++;
    c->is_msg_complete = false;
    c->is_resp_done = false;
    c->body_since = uv_now(c->srv->loop);
    c->body_bytes = c->body_held_ms = c->body_held_since = 0;
    c->close_after = should_close_after(c, head);
    c->req = dp_request__new(c, head);
    /* Before this handler runs (it may run long): output queued 1 ms ago goes now. */
    dp_server__flush_if_due(c->srv, dp_request_start_ns(c->req));
    if (head->expect_continue && head->has_body) {
        nano_buf_append(&c->out, CONTINUE_LINE, sizeof CONTINUE_LINE - 1);
        c->is_continue_queued = true; /* until dispatch returns: see dp_conn__refuse_body */
    }
    dp_request *req = c->req;
    dp_request_ref(req); /* the call below may end the request */
    c->srv->opts.dispatch(c->srv->opts.ud, req);
    dp_request_unref(req);
    c->is_continue_queued = false;
    dp_server__flush_soon(c->srv, c);
}

void dp_conn__refuse_body(dp_conn *c)
{
    c->close_after = true;
    /* The 100 Continue start_request queued for this request is still the last thing in out
     * while its dispatch runs (nothing is flushed in between): take it back, so the client does
     * not start sending the body we refuse (RFC 9110 §10.1.1 lets a server answer without it). */
    size_t n = sizeof CONTINUE_LINE - 1;
    if (c->is_continue_queued && c->out.len >= n &&
        memcmp(c->out.data + c->out.len - n, CONTINUE_LINE, n) == 0)
        c->out.len -= n;
    c->is_continue_queued = false;
}

/* Both halves of the exchange are done: move on to the next request or close. */
static void finish_request(dp_conn *c)
{
    bool closing = c->close_after || c->srv->is_draining;
    release_request(c, false);
    if (closing) {
        close_gracefully(c);
        return;
    }
    set_state(c, DP_CONN_IDLE);
    arm_timer(c, c->srv->opts.idle_timeout_ms);
    /* Inside a feed, process_input checks the mark before the next request; here we may be
     * inside JS (the response ended from a handler): no flush, the end of the turn does it. */
    if (!c->is_in_feed && !output_over_mark(c, false)) {
        if (c->pending.len > 0)
            dp_server__schedule(c->srv, c); /* parse the next pipelined request */
        else
            start_reading(c);
    }
}

void dp_conn__response_done(dp_conn *c)
{
    c->is_resp_done = true;
    if (!c->is_msg_complete && c->req != NULL && !c->req->body_complete &&
        c->req->is_body_refused) {
        /* Refused from its head (dp_request_refuse_body): the rest of the body is not read;
         * the answer goes out, then the connection closes. */
        dp_request *req = c->req;
        req->is_body_discarded = true;
        nano_buf_fini(&req->body);
        dp_request_ref(req);
        dp_request__body_end(req, true); /* may run JS: pending reads fail */
        dp_request_unref(req);
        if (c->state == DP_CONN_CLOSING)
            return;
        dp_server__flush_soon(c->srv, c);
        close_gracefully(c);
        return;
    }
    if (!c->is_msg_complete && c->req != NULL && !c->req->body_complete) {
        /* Answered without reading the whole body: read the rest and drop it, so the
         * connection can carry the next request. */
        dp_request *req = c->req;
        dp_request_ref(req);
        dp_request_body_discard(req); /* may run JS: pending reads fail */
        dp_request_unref(req);
        if (c->state == DP_CONN_CLOSING)
            return;
    }
    dp_server__flush_soon(c->srv, c);
    if (c->state == DP_CONN_ACTIVE && !c->is_shutting_down && c->is_msg_complete)
        finish_request(c);
}

void dp_conn__response_failed(dp_conn *c)
{
    /* A response that cannot be completed (started, then the handler failed): the peer can
     * only learn of it by the connection closing. */
    dp_conn__close(c);
}

static void message_complete(dp_conn *c)
{
    c->is_msg_complete = true;
    body_watch(c);
    if (c->req != NULL && !c->req->body_complete) {
        dp_request *req = c->req;
        dp_request_ref(req);
        dp_request__body_end(req, false); /* may run JS */
        dp_request_unref(req);
    }
    if (c->state == DP_CONN_ACTIVE && !c->is_shutting_down && c->is_resp_done)
        finish_request(c);
}

static void process_input(dp_conn *c, const char *data, size_t len)
{
    c->is_in_feed = true;
    /* After a head, feed again even with no bytes left: a message without a body completes
     * only on that call (llhttp was paused in on_headers_complete). */
    bool after_head = false;
    while (len > 0 || after_head) {
        if (c->is_shutting_down || c->state == DP_CONN_CLOSING)
            break;
        if ((c->state == DP_CONN_ACTIVE && c->is_msg_complete) ||
            (c->state == DP_CONN_IDLE && output_over_mark(c, true))) {
            /* A pipelined request: keep it until the current response is done, or until the
             * answers before it have left, and stop reading so a client cannot make us
             * buffer without bound (its input here, or our output for it). */
            if (c->state == DP_CONN_CLOSING)
                break;
            nano_buf_append(&c->pending, data, len);
            stop_reading(c);
            break;
        }
        size_t used = 0;
        dp_http1_event ev = dp_http1_feed(&c->http, data, len, &used);
        data += used;
        len -= used;
        after_head = ev == DP_HTTP1_HEAD;
        if (c->has_new_body) {
            /* Body bytes arrived: a read waiting for them can go on (a completed message
             * tells the runtime in message_complete). */
            c->has_new_body = false;
            if (ev != DP_HTTP1_DONE && c->req != NULL) {
                dp_request *req = c->req;
                dp_request_ref(req);
                if (req->listener != NULL)
                    req->listener->body_event(req->listener_ud, req); /* may run JS */
                dp_request_unref(req);
            }
        }
        switch (ev) {
        case DP_HTTP1_NEED_MORE:
            if (c->state == DP_CONN_IDLE && dp_http1_in_message(&c->http)) {
                set_state(c, DP_CONN_HEAD);
                arm_timer(c, c->srv->opts.head_timeout_ms);
            }
            break;
        case DP_HTTP1_HEAD: start_request(c); break;
        case DP_HTTP1_DONE: message_complete(c); break;
        case DP_HTTP1_ERROR:
            /* Not when the body event above ended the connection (an answer refusing the
             * body): its last response is written, nothing may follow it. */
            if (!c->is_shutting_down && c->state != DP_CONN_CLOSING)
                send_error(c, dp_http1_error_status(&c->http), dp_http1_error_kind(&c->http),
                           dp_http1_error_reason(&c->http));
            len = 0;
            break;
        }
    }
    c->is_in_feed = false;
    if (c->state == DP_CONN_HEAD || (c->state == DP_CONN_IDLE && !output_over_mark(c, true)))
        start_reading(c);
    body_watch(c);
    if (c->state != DP_CONN_CLOSING)
        dp_server__flush_soon(c->srv, c);
}

/* The peer will send no more (FIN, or a TLS close_notify). */
static void on_eof(dp_conn *c)
{
    stop_reading(c);
    dp_http1_event ev = dp_http1_finish(&c->http);
    if (c->state == DP_CONN_ACTIVE && c->is_msg_complete) {
        c->close_after = true; /* half-closed: answer, then close */
    } else if (ev == DP_HTTP1_ERROR && c->state != DP_CONN_ACTIVE) {
        send_error(c, 400, dp_http1_error_kind(&c->http), dp_http1_error_reason(&c->http));
    } else if (c->state == DP_CONN_IDLE && dp_conn__unsent(c) > 0) {
        close_gracefully(c); /* half-closed: the answers still leaving go first */
    } else {
        dp_conn__close(c);
    }
}

static void deliver_plaintext(void *ud, const char *text, size_t n, bool *stop)
{
    dp_conn *c = ud;
    process_input(c, text, n);
    *stop = c->state == DP_CONN_CLOSING;
}

/* HTTPS: the read's ciphertext through the TLS layer; its plaintext is parsed as a plain
 * read would be. */
static void tls_input(dp_conn *c, size_t n)
{
    dp_server *srv = c->srv;
    if (srv->tls_buf == NULL)
        srv->tls_buf = nano_xmalloc(DP_TLS_BUF);
    if (!c->is_tls_started && !dp_tls_is_established(c->tls)) {
        /* The handshake is bounded as a request head is (on_timer). */
        c->is_tls_started = true;
        arm_timer(c, srv->opts.head_timeout_ms);
    }
    bool was_established = dp_tls_is_established(c->tls);
    char reason[160];
    dp_tls_status st = dp_tls_feed(c->tls, srv->read_buf, n, srv->tls_buf, DP_TLS_BUF,
                                   deliver_plaintext, c, reason, sizeof reason);
    if (c->state == DP_CONN_CLOSING)
        return;
    if (st == DP_TLS_ERROR) {
        /* A failed handshake (no common protocol, a client certificate refused) or a
         * corrupt record: nothing can be answered in HTTP. */
        dp_server__count_refusal(DP_REFUSED_MALFORMED);
        NANO_DEBUG("conn.tls_failed", "error=%s", reason);
        flush(c); /* the alert OpenSSL made, if any */
        if (c->state != DP_CONN_CLOSING)
            dp_conn__close(c);
        return;
    }
    if (!was_established && dp_tls_is_established(c->tls) && c->state == DP_CONN_IDLE)
        arm_timer(c, srv->opts.idle_timeout_ms); /* now waiting for a request */
    if (dp_tls_wants_write(c->tls))
        dp_server__flush_soon(srv, c); /* handshake records */
    if (st == DP_TLS_CLOSED)
        on_eof(c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    dp_conn *c = container_of((uv_tcp_t *)s, dp_conn, tcp);
    (void)buf;

    if (c->state == DP_CONN_LINGER) {
        if (n < 0)
            dp_conn__close(c);
        return; /* discard */
    }
    if (n == UV_EOF) {
        on_eof(c);
        return;
    }
    if (n < 0) {
        NANO_DEBUG("conn.read_failed", "error=%s", uv_strerror((int)n));
        dp_conn__close(c);
        return;
    }
    if (n > 0 && c->tls != NULL)
        tls_input(c, (size_t)n);
    else if (n > 0)
        process_input(c, c->srv->read_buf, (size_t)n);
}

void dp_conn__resume(dp_conn *c)
{
    dp_request *req = c->req;
    if (req != NULL && req->is_yielding && c->state != DP_CONN_CLOSING) {
        req->is_yielding = false;
        notify_writable(c);
        if (c->pending.len == 0 || c->state == DP_CONN_ACTIVE)
            return;
    }
    if (c->state == DP_CONN_CLOSING || c->is_shutting_down)
        return;
    nano_buf input = c->pending;
    c->pending = NANO_BUF_INIT;
    process_input(c, input.data, input.len);
    nano_buf_fini(&input);
}

void dp_conn__begin_drain(dp_conn *c)
{
    switch (c->state) {
    case DP_CONN_IDLE:
        /* Between requests nothing is owed to the peer: close now rather than linger, so an
         * idle keep-alive client cannot hold the drain open. */
        if (c->out.len == 0 && c->n_writes == 0)
            dp_conn__close(c);
        else
            close_gracefully(c);
        break;
    case DP_CONN_HEAD:
    case DP_CONN_ACTIVE:
        c->close_after = true; /* the response says Connection: close */
        break;
    default: break;
    }
}

void dp_conn__accept(dp_server *srv)
{
    dp_conn *c = nano_xcalloc(1, sizeof *c);
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->n_handles_open = 2;
    c->state = DP_CONN_IDLE;
    dp_http1_init(&c->http, &srv->opts.limits, on_body, c);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&c->tcp) != 0) {
        dp_conn__close(c);
        return;
    }
    if (srv->opts.max_conns != 0 && srv->n_conns > srv->opts.max_conns) {
        /* Accepted only to be closed: left in the backlog it would be served later, when the
         * client has likely given up, and the backlog would fill for everyone. */
        NANO_WARN("conn.too_many", "open=%zu max=%zu", srv->n_conns - 1, srv->opts.max_conns);
        dp_conn__close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (srv->opts.tls_ctx != NULL)
        c->tls = dp_tls_new(srv->opts.tls_ctx);
    arm_timer(c, srv->opts.idle_timeout_ms);
    start_reading(c);
}
