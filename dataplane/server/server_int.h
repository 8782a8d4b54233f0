/* server_int.h: structures shared by server.c, conn.c and request.c; nothing outside
 * dataplane/server and dataplane/request.c includes this. */
#ifndef DP_SERVER_INT_H
#define DP_SERVER_INT_H

#include <stdbool.h>

#include "container.h"
#include "request.h"
#include "server.h"

typedef struct dp_conn dp_conn;

/* Unsent output per connection (docs/nano-dp.md#http-behaviour): while this many response
 * bytes wait for the client, the connection parses no further pipelined request and stops
 * reading; it goes on once they are below the low-water mark. One response may exceed the
 * mark on its own (a body the app gave whole); what is bounded is the number waiting behind
 * it. */
#define DP_OUTPUT_HIGH_WATER_MARK (64 * 1024)
#define DP_OUTPUT_LOW_WATER_MARK (16 * 1024)
/* The most one uv_buf_t (and one uv_try_write) carries: uv_buf_init takes an unsigned int and
 * uv_try_write returns an int, so larger writes go as several pieces. */
#define DP_WRITE_PIECE_MAX ((size_t)1 << 30)

struct dp_server {
    uv_loop_t *loop;
    dp_server_options opts;
    uv_tcp_t listener;
    bool is_listening;
    int bound_port;
    bool is_draining;
    bool is_closing;
    dp_server_drained_cb drained_cb;
    void *drained_ud;
    dp_server_closed_cb closed_cb; /* dp_server_close's */
    void *closed_arg;
    uv_idle_t resume_idle; /* runs deferred work outside JS: see dp_conn__schedule */
    dp_conn *resume_head;  /* connections with deferred work */
    /* Small responses are written when the loop is about to wait or has just handled I/O
     * (dp_conn__flush_soon), so one loop turn's responses leave back to back. */
    uv_prepare_t flush_prepare;
    uv_check_t flush_check;
    dp_conn *flush_head;  /* connections with output to write at the end of the turn */
    uint64_t flush_since; /* uv_hrtime when the first of them was queued */
    dp_conn *conns;       /* all open connections, doubly linked */
    size_t n_conns;
    size_t n_active;   /* connections with a request in flight */
    size_t n_requests; /* dp_request objects alive */
    uint64_t next_request_id;
    int n_handles_open;       /* handles to close before the server is freed */
    char read_buf[64 * 1024]; /* one read buffer per loop: reads are handled synchronously */
    char *tls_buf;            /* TLS: the plaintext of a read (DP_TLS_BUF bytes; allocated
                                * with the first TLS connection) */
    char date[40];            /* "Tue, 25 Nov 2026 10:00:00 GMT" cached per second */
    uint64_t date_sec;
};

typedef enum dp_conn_state {
    DP_CONN_IDLE,    /* between requests; idle timer armed */
    DP_CONN_HEAD,    /* part of a request head arrived; head timer armed */
    DP_CONN_ACTIVE,  /* a request is in flight */
    DP_CONN_LINGER,  /* response done, write side shut: reading and discarding until EOF */
    DP_CONN_CLOSING, /* uv_close issued */
} dp_conn_state;

struct dp_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uint64_t timer_due; /* loop time the current timeout ends; 0: none (see arm_timer) */
    /* the current request body's pace (body_watch): when it started, bytes so far, time
     * reading was held back for the app, and since when it is held back (0: it is not) */
    uint64_t body_since;
    uint64_t body_bytes;
    uint64_t body_held_ms;
    uint64_t body_held_since;
    uint64_t timer_fires_at; /* when the uv timer, if active, fires */
    uv_shutdown_t shutdown_req;
    dp_server *srv;
    dp_conn *prev, *next;
    dp_conn *resume_next;
    dp_conn_state state;
    dp_http1 http;
    nano_buf pending;    /* unparsed input held while a pipelined request waits */
    nano_buf out;        /* response bytes not yet handed to libuv */
    dp_request *req;     /* in-flight request; the connection holds a reference */
    int n_writes;        /* uv_write requests in flight */
    size_t write_bytes;  /* bytes those requests hold */
    uint64_t write_done; /* bytes of uv_write requests completed, ever */
    /* The write timeout: while a uv_write is in flight the timer checks, every quarter of the
     * timeout, whether the kernel took any of its bytes (see write_progress in conn.c). */
    uint64_t write_check_due;   /* loop time of the next check; 0: no write in flight */
    uint64_t write_mark;        /* write_progress at the last check that saw progress */
    uint64_t write_stall_since; /* loop time of that check */
    int n_handles_open;
    bool is_reading;
    bool is_resume_queued;
    bool is_flush_queued;
    dp_conn *flush_next;
    bool is_in_feed;       /* inside process_input: finishing must not recurse */
    bool is_msg_complete;  /* the in-flight request's body has fully arrived */
    bool is_resp_done;     /* the in-flight request's response is fully queued */
    bool close_after;      /* close once the in-flight response is written */
    bool want_shutdown;    /* shut the write side once out and n_writes drain */
    bool is_shutting_down; /* close_gracefully ran: no more requests on this connection */
    bool is_body_paused;   /* reading held back: the request body's unread bytes are at the mark */
    bool is_output_paused; /* no further request parsed, no reading: unsent output is above
                            * DP_OUTPUT_HIGH_WATER_MARK (until it drains below the low mark) */
    bool has_new_body;     /* body bytes arrived during this feed: tell the runtime after it */
    bool is_continue_queued; /* the 100 Continue of the request being dispatched is in out */
    dp_tls *tls;             /* HTTPS (the server's tls_ctx): out holds plaintext until flush
                            * seals it; reads are decrypted before they are parsed */
    bool is_tls_started;     /* the handshake's first bytes came: it is bounded by the head
                            * timeout */
};

#define DP_TLS_BUF (16 * 1024) /* one TLS record's plaintext at most */

struct dp_request {
    int refs;
    uint64_t id;
    dp_server *srv;
    dp_conn *conn; /* NULL once the connection let go of it */
    nano_str method, url;
    nano_str host, path; /* Host without port (may be empty); target path without query */
    const dp_request_listener *listener; /* told of body/writable/abort events (or NULL) */
    void *listener_ud;
    void *app_ud;       /* the dispatcher's per-request tag (its app) */
    uint64_t start_ns;  /* uv_hrtime at the head */
    uint64_t bytes_out; /* response body bytes written */
    uint64_t max_body;  /* this request's body limit (the app's); 0: the server's */
    uint64_t body_received;
    dp_header *headers;
    size_t n_headers;
    bool has_body;
    bool is_head_method;
    bool body_complete, body_failed;
    bool is_body_collected; /* the runtime wants the whole body: never held back */
    bool is_body_discarded; /* later body bytes are dropped */
    bool is_body_piped;     /* body bytes go straight to the response (dp_response_pipe_body) */
    bool is_body_refused;   /* dp_request_refuse_body: the rest is unread, the connection closes */
    nano_buf body;          /* received, not yet taken */
    uint32_t rt_slot;
    int status;           /* 0 until the response starts */
    bool is_chunked;      /* the response body is chunk-encoded */
    bool is_body_skipped; /* HEAD, 204, 304: body bytes are not sent */
    bool is_ended;
    bool is_close_delimited; /* HTTP/1.0 with unknown length: closing ends the body */
    bool wants_writable;     /* the runtime waits for the listener's writable */
    bool is_yielding;        /* held back to let the loop turn (see dp_response_writable) */
    uint64_t bytes_since_yield;
    int64_t length_left; /* of a Content-Length response body; -1 when not length-framed */
};

/* conn.c */
void dp_conn__accept(dp_server *srv);
void dp_conn__close(dp_conn *c);
void dp_conn__begin_drain(dp_conn *c);
void dp_conn__resume(dp_conn *c);
void dp_conn__response_done(dp_conn *c);
void dp_conn__response_failed(dp_conn *c);
void dp_conn__send(dp_conn *c, const uv_buf_t *bufs, unsigned n);
void dp_conn__flush(dp_conn *c);
void dp_conn__body_taken(dp_conn *c);
/* dp_conn__refuse_body: the response being made for c's request closes the connection (and
 * takes back a 100 Continue still queued for it). */
void dp_conn__refuse_body(dp_conn *c);
/* dp_conn__unsent: response bytes queued on c that the kernel has not taken yet. */
size_t dp_conn__unsent(const dp_conn *c);

/* server.c */
void dp_server__schedule(dp_server *srv, dp_conn *c);
/* dp_server__count_refusal: one request refused before it reached an app (any thread). */
void dp_server__count_refusal(dp_refusal kind);

/* dp_server__flush_soon: c's output goes to the kernel at the end of this loop turn (before
 * the loop waits again). */
void dp_server__flush_soon(dp_server *srv, dp_conn *c);
void dp_conn__flush_now(dp_conn *c); /* conn.c: what the end of the turn runs */
/* dp_server__flush_if_due: writes the queued output now if the oldest has waited longer than
 * DP_FLUSH_MAX_WAIT_NS at now_ns (uv_hrtime), so a turn with much work (slow handlers, many
 * connections) does not hold finished responses back. Called before a request's handler
 * runs, never from inside JS. */
#define DP_FLUSH_MAX_WAIT_NS (1000 * 1000)
void dp_server__flush_if_due(dp_server *srv, uint64_t now_ns);
void dp_server__conn_gone(dp_server *srv, dp_conn *c);
void dp_server__check_drained(dp_server *srv);
/* The Date header's value for now (IMF-fixdate: always DP_DATE_LEN characters). */
#define DP_DATE_LEN 29
const char *dp_server__date(dp_server *srv);

/* request.c */
dp_request *dp_request__new(dp_conn *c, const dp_http1_head *head);
void dp_request__detach(dp_request *req);
void dp_request__body_append(dp_request *req, const char *data, size_t len);
void dp_request__body_end(dp_request *req, bool failed);
/* dp_request__reason_phrase: RFC 9110's phrase for status ("" when it has none). */
const char *dp_request__reason_phrase(int status);

#endif
