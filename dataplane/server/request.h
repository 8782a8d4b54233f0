/* request.h: one HTTP request's context, shared by the server (which parses it and writes its
 * response) and the runtime (which runs the app's fetch handler on it).
 *
 * A dp_request is refcounted: the connection holds a reference until its response is written
 * or the connection closes, and the runtime holds one while JS can still use the request
 * (handler running, response not yet given, ctx.waitUntil work pending). When the last one
 * goes, the request is freed and the server's in-flight count drops. Loop thread only. */
#ifndef DP_REQUEST_H
#define DP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dp_request dp_request;

/* Head, valid for the request's whole life (copied out of the parser). */
nano_str dp_request_method(const dp_request *req);
nano_str dp_request_url(const dp_request *req); /* absolute: http://host/target */
size_t dp_request_n_headers(const dp_request *req);
const dp_header *dp_request_header(const dp_request *req, size_t i);
bool dp_request_has_body(const dp_request *req);
uint64_t dp_request_id(const dp_request *req);        /* process-unique, for logs */
bool dp_request_connected(const dp_request *req);     /* false once the connection let go */
nano_str dp_request_host(const dp_request *req);      /* Host header without port (may be empty) */
nano_str dp_request_path(const dp_request *req);      /* target path, without query */
uint64_t dp_request_start_ns(const dp_request *req);  /* uv_hrtime when the head arrived */
int dp_request_status(const dp_request *req);         /* response status, 0 before it starts */
uint64_t dp_request_bytes_out(const dp_request *req); /* response body bytes written */

/* What the server tells whoever runs the request (the runtime, through the listener the worker
 * installs before calling it): body bytes arrived or the body ended (body_event), a paused
 * streamed response may go on (writable), the client went away before the response ended
 * (aborted). Each may run JS; each is called on the loop thread with the listener's ud. The
 * server knows nothing else of what runs the request: it sits below the runtime. */
typedef struct dp_request_listener {
    void (*body_event)(void *ud, dp_request *req);
    void (*writable)(void *ud, dp_request *req);
    void (*aborted)(void *ud, dp_request *req);
} dp_request_listener;

/* Routing: the dispatcher tags the request with its app (opaque here) and, before the runtime
 * runs it, with a listener (l borrowed: static; NULL clears it) and its ud.
 * dp_request_listener_ud says whose it is now (NULL: none).
 * dp_request_set_max_body lowers the server's body limit for this request (the app's). */
void dp_request_set_app(dp_request *req, void *app_ud);
void *dp_request_app(const dp_request *req);
void dp_request_set_listener(dp_request *req, const dp_request_listener *l, void *ud);
void *dp_request_listener_ud(const dp_request *req);
void dp_request_set_max_body(dp_request *req, uint64_t max_body);

/* Body state: bytes received and not yet taken, and whether the body is complete or failed
 * (client gone, body over the limit, or dropped by dp_request_body_discard). */
const nano_buf *dp_request_body(const dp_request *req);
bool dp_request_body_complete(const dp_request *req);
bool dp_request_body_failed(const dp_request *req);

/* The body streams: received bytes wait in the request until the runtime takes them, and
 * while DP_BODY_HIGH_WATER_MARK bytes or more wait, the connection stops reading the socket
 * (the client is held back by TCP flow control); taking them resumes reading. */
#define DP_BODY_HIGH_WATER_MARK (64 * 1024)

/* dp_request_take_body: hands over the bytes received so far (returned owned: free with
 * nano_free; NULL when none), and resumes reading if it was held back. */
void *dp_request_take_body(dp_request *req, size_t *len);

/* dp_request_body_collect: the runtime wants the whole body at once (text(), arrayBuffer()):
 * no holding back; the body limit still applies. */
void dp_request_body_collect(dp_request *req);

/* dp_request_body_discard: the app does not want the rest of the body (its stream was
 * canceled, or the response ended without reading it): bytes waiting are freed, later ones
 * are read and dropped, and the body counts as failed for anyone still reading. */
void dp_request_body_discard(dp_request *req);

/* dp_request_refuse_body: the response about to start refuses the request from its head (no
 * token, no route, a declared body over the limit): it says Connection: close, a 100 Continue
 * not yet sent is not sent, and once it is written the connection closes without reading the
 * rest of the body (which counts as failed). Call before dp_response_start; no effect after. */
void dp_request_refuse_body(dp_request *req);

/* The runtime's slot for this request (opaque to the server). */
void dp_request_set_rt_slot(dp_request *req, uint32_t slot);
uint32_t dp_request_rt_slot(const dp_request *req);

void dp_request_ref(dp_request *req);
void dp_request_unref(dp_request *req); /* frees on the last reference */

/* Response, chunk-oriented: start once, write any number of chunks, end once.
 * dp_response_start: status 100..999 (the caller validated it), headers as name/value views
 * (borrowed for the call), content_length -1 when unknown (chunked on HTTP/1.1). Framing
 * headers from the app (Content-Length, Transfer-Encoding, Connection, Keep-Alive) are
 * replaced by the server's own. Returns 0, NANO_ESTATE (already started, or the client is
 * gone: the response is dropped) or NANO_EINVAL (a header carries CR, LF or NUL). */
int dp_response_start(dp_request *req, int status, nano_str status_text, const dp_header *headers,
                      size_t n_headers, int64_t content_length);
/* dp_response_start_block: dp_response_start with the app's header lines as one block of
 * block_len bytes, "name: value\r\n" each, that fill(ud, dst) writes straight into the
 * connection's output (the runtime copies them out of one JS string this way). The block is
 * checked as it lies there: NANO_EINVAL, with nothing sent, for a line without a name or
 * with NUL, CR or LF inside; framing headers in it are dropped. */
int dp_response_start_block(dp_request *req, int status, nano_str status_text, size_t block_len,
                            void (*fill)(void *ud, char *dst), void *ud, int64_t content_length);
int dp_response_write(dp_request *req, const void *data, size_t len);
int dp_response_end(dp_request *req);

/* Streaming a response: dp_response_flush hands what was written to the socket now (writes
 * are otherwise sent at the end). dp_response_writable says whether fewer than
 * DP_RESPONSE_HIGH_WATER_MARK bytes wait to be accepted by the kernel; when it says false,
 * the listener's writable is called once they drain below it. Bytes written beyond
 * a Content-Length given to dp_response_start are dropped, and ending short of it closes
 * the connection (the message cannot be completed). */
#define DP_RESPONSE_HIGH_WATER_MARK (64 * 1024)
/* A streamed response also pauses (dp_response_writable says false, then the listener's
 * writable follows at the next loop turn) after this many bytes written in one go, so one fast stream
 * cannot hold its thread. */
#define DP_RESPONSE_YIELD_BYTES (256 * 1024)
void dp_response_flush(dp_request *req);
bool dp_response_writable(dp_request *req);

/* dp_response_body_wanted: false for HEAD, 1xx, 204 and 304 responses, whose body bytes are
 * not sent (a streamed body need not be produced). */
bool dp_response_body_wanted(const dp_request *req);

/* dp_response_pipe_body: the rest of the response is the request's own body (an echo such
 * as `new Response(request.body)`), moved by the server without the runtime: each read goes
 * straight to the socket, reading pauses while the socket is backed up, and the response
 * ends with the body (or the connection closes if the body fails). The response must have
 * started. */
void dp_response_pipe_body(dp_request *req);

/* dp_response_error: a plain-text error response (e.g. 500 after the handler threw) if none
 * was started; otherwise the connection is closed, since the message cannot be completed. */
void dp_response_error(dp_request *req, int status);

/* dp_response_started: whether dp_response_start succeeded already. */
bool dp_response_started(const dp_request *req);

#ifdef __cplusplus
}
#endif
#endif
