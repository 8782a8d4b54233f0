/* client.h: outbound HTTP transfers (fetch's network half; docs/api.md "Outbound fetch") on
 * libcurl's multi interface, driven by one libuv loop: curl's sockets are uv_poll handles and its timeout one
 * uv_timer, so no thread blocks and none is added on the request path (DNS runs in curl's
 * asynchronous resolver). One dp_client per worker loop: its connection pool (keep-alive,
 * HTTP/2 multiplexing, TLS sessions) and DNS cache serve every isolate of that thread.
 *
 * A dp_xfer is one request/response exchange with no redirect followed (fetch follows them
 * itself, so that each hop gets the Fetch Standard's rules and the egress check). Its
 * response body arrives into a bounded buffer that the owner takes; while the buffer is full
 * the transfer is paused (curl stops reading the socket, so TCP pushes back on the server).
 * A request body is fed piece by piece; while no piece is queued the upload is paused.
 *
 * Everything runs on the loop's thread. Hooks run from loop callbacks, or from inside
 * dp_xfer_take / dp_xfer_send when those resume a paused transfer; a hook must not free the
 * transfer (schedule that). After dp_xfer_free no hook runs. */
#ifndef DP_CLIENT_H
#define DP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_client dp_client;
typedef struct dp_xfer dp_xfer;

/* Response heads above this many bytes (status line and header lines) fail the transfer. */
#define DP_XFER_MAX_HEAD (256u * 1024u)
/* The response body buffer: a transfer pauses once this much waits to be taken. */
#define DP_XFER_RECV_HIGH (64u * 1024u)

/* dp_client_new: a client on loop. Returns 0 and *out, or NANO_ENOMEM (curl failed to set up). */
int dp_client_new(uv_loop_t *loop, dp_client **out);

/* dp_client_close: fails nothing (hooks are not called): frees every transfer still running
 * (their owners must have let go first, see dp_xfer_free), closes the uv handles (run the
 * loop afterwards) and frees the client. NULL is a no-op. */
void dp_client_close(dp_client *c);

/* dp_client_n_xfers: transfers running now (for /status and tests). */
size_t dp_client_n_xfers(const dp_client *c);

/* Why a transfer ended. */
typedef enum dp_xfer_error {
    DP_XFER_OK = 0,
    DP_XFER_DNS,       /* the host name did not resolve */
    DP_XFER_REFUSED,   /* no connection could be made (refused, unreachable) */
    DP_XFER_DENIED,    /* the egress check refused every address */
    DP_XFER_TLS,       /* handshake or certificate verification failed */
    DP_XFER_TIMEOUT,   /* connect or transfer timed out */
    DP_XFER_RESET,     /* the connection broke or closed before the response ended */
    DP_XFER_PROTOCOL,  /* the response was not valid HTTP */
    DP_XFER_TOO_LARGE, /* the response head passed DP_XFER_MAX_HEAD */
    DP_XFER_BODY,      /* the request body could not be sent (its source failed) */
    DP_XFER_OTHER,
} dp_xfer_error;

/* dp_xfer_error_name: "dns", "refused", ... for logs. */
const char *dp_xfer_error_name(dp_xfer_error e);

typedef struct dp_xfer_hooks {
    /* The final response head arrived (1xx heads are skipped): read it with dp_xfer_status,
     * dp_xfer_reason and dp_xfer_head_lines. */
    void (*on_head)(void *ud);
    /* Body bytes are ready to take (or the body ended: dp_xfer_is_done). */
    void (*on_data)(void *ud);
    /* The upload has sent every queued piece and wants another (dp_xfer_send). */
    void (*on_send_ready)(void *ud);
    /* The transfer ended: error DP_XFER_OK when the whole response arrived (body bytes may
     * still wait in the buffer), else why, with a one-line detail (curl's message). */
    void (*on_done)(void *ud, dp_xfer_error error, const char *detail);
    /* May the transfer connect to addr (resolved, with port) for its URL's host? Called for
     * every connection attempt and again before a request goes out on a reused connection.
     * Returns true to allow; false with a one-line reason in why. NULL: everything allowed. */
    bool (*check_address)(void *ud, const char *host, const struct sockaddr *addr, char *why,
                          size_t why_len);
    void *ud;
} dp_xfer_hooks;

typedef enum dp_xfer_body {
    DP_XFER_NO_BODY = 0,
    DP_XFER_BODY_SIZED,  /* body_len bytes: Content-Length */
    DP_XFER_BODY_STREAM, /* length unknown: chunked (HTTP/1.1) */
} dp_xfer_body;

typedef struct dp_xfer_spec {
    const char *method;         /* token, already validated */
    const char *url;            /* absolute http: or https: URL, serialized */
    const char *host;           /* the URL's host as the egress check sees it (lowercase) */
    const char *const *headers; /* n_headers "Name: value" lines, values already valid */
    size_t n_headers;
    dp_xfer_body body;
    uint64_t body_len;           /* DP_XFER_BODY_SIZED */
    uint64_t connect_timeout_ms; /* 0: curl's default (300 s) */
    uint64_t total_timeout_ms;   /* the whole transfer (0: none) */
} dp_xfer_spec;

/* dp_xfer_start: starts a transfer. Returns 0 and the transfer (owned by the caller until
 * dp_xfer_free), or NANO_EINVAL with a reason in why (a URL curl refuses), NANO_ENOMEM. */
int dp_xfer_start(dp_client *c, const dp_xfer_spec *spec, const dp_xfer_hooks *hooks, dp_xfer **out,
                  char *why, size_t why_len);

/* dp_xfer_free: stops the transfer if it runs (the connection is closed, not reused, when a
 * response was cut short) and frees it with the body bytes it holds. NULL is a no-op. */
void dp_xfer_free(dp_xfer *x);

/* The response head (valid once on_head ran): status code, reason phrase (may be empty), and
 * the header lines, each "Name: value" without CRLF, NUL-separated in one block of len bytes
 * (obs-fold continuation lines are joined to the previous line with a space). */
int dp_xfer_status(const dp_xfer *x);
const char *dp_xfer_reason(const dp_xfer *x);
const char *dp_xfer_head_lines(const dp_xfer *x, size_t *len);
/* dp_xfer_has_head: the final response head arrived. */
bool dp_xfer_has_head(const dp_xfer *x);
/* The HTTP version of the response: 10, 11, 20, 30. */
int dp_xfer_http_version(const dp_xfer *x);

/* dp_xfer_take: the body bytes received so far (a malloc'd block the caller frees with
 * free(); *len 0 and NULL when none waits). Resumes a transfer paused on a full buffer. */
void *dp_xfer_take(dp_xfer *x, size_t *len);
/* dp_xfer_buffered: body bytes waiting to be taken. */
size_t dp_xfer_buffered(const dp_xfer *x);
/* dp_xfer_is_done: the transfer ended (on_done ran); with dp_xfer_buffered 0 the body is over. */
bool dp_xfer_is_done(const dp_xfer *x);
dp_xfer_error dp_xfer_result(const dp_xfer *x);

/* dp_xfer_send: queues len bytes of the request body at p, which stay valid until
 * release(release_ud) (called once curl has sent them, or from dp_xfer_free). A SIZED body
 * given in one piece is kept until the transfer ends, so that curl can resend it on a fresh
 * connection; pieces of a body given in parts go as soon as they are sent. Returns 0, or NANO_EINVAL after dp_xfer_send_end. */
int dp_xfer_send(dp_xfer *x, const void *p, size_t len, void (*release)(void *), void *release_ud);
/* dp_xfer_send_end: the request body is complete (ok) or its source failed (!ok: the
 * transfer fails with DP_XFER_BODY). */
void dp_xfer_send_end(dp_xfer *x, bool ok);
/* dp_xfer_send_queued: request body bytes queued and not yet sent. */
size_t dp_xfer_send_queued(const dp_xfer *x);

#ifdef __cplusplus
}
#endif
#endif
