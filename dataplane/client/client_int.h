/* client_int.h: what client.c (the transfers, their events and the curl transport) shares
 * with h1.c (the native HTTP/1.1 transport): one dp_xfer, whichever transport carries it, so
 * the owner's view (head, body buffer, upload queue, hooks run from dispatch) is the same. */
#ifndef DP_CLIENT_INT_H
#define DP_CLIENT_INT_H

#include "client.h"

#include "curl_lib.h"

typedef struct h1_xfer h1_xfer;
typedef struct h1_pool h1_pool;

typedef struct send_piece {
    struct send_piece *next;
    const char *p;
    size_t len;
    size_t off;
    void (*release)(void *);
    void *release_ud;
} send_piece;

struct dp_xfer {
    dp_client *c;
    dp_xfer *prev, *next; /* c->xfers */
    CURL *easy;           /* the curl transport's handle, or NULL */
    h1_xfer *h1;          /* the native transport's state (h1.c), or NULL */
    dp_xfer_hooks hooks;
    struct curl_slist *headers;
    char *host;
    bool is_running; /* in the multi handle */
    bool is_done;
    bool is_freed; /* dp_xfer_free ran during a dispatch: freed at its end */
    dp_xfer_error result;
    char detail[CURL_ERROR_SIZE + 64];
    char errbuf[CURL_ERROR_SIZE];
    char deny_reason[256]; /* the egress check refused an address */
    bool is_denied;
    bool is_head_too_large;
    /* events for dispatch, which takes the transfers with any from c's ready list */
    bool ev_head, ev_data, ev_send, ev_done;
    bool is_ready;
    unsigned ready_round; /* the dispatch round that takes it (see dp_client.round) */
    dp_xfer *ready_prev, *ready_next;
    /* response head */
    bool is_head_done;
    int status;
    int http_version;
    char *reason;
    char *lines; /* "Name: value\0..." */
    size_t lines_len, lines_cap;
    size_t head_bytes;
    /* response body */
    char *recv;
    size_t recv_len, recv_cap;
    bool is_recv_paused;
    /* request body */
    dp_xfer_body body_kind;
    uint64_t body_len;
    bool is_rewindable; /* the whole body is one piece, kept to the end for rewinds */
    send_piece *pieces, **pieces_tail; /* queued */
    send_piece *sent;                  /* sent, to release outside curl */
    size_t send_queued;
    bool is_send_ended, is_send_ok, is_send_paused;
};

typedef struct sock_ctx {
    uv_poll_t poll;
    dp_client *c;
    curl_socket_t fd;
    int want;                     /* UV_READABLE|UV_WRITABLE curl waits for; 0: none */
    int armed;                    /* what the poll is started with; 0: stopped */
    bool is_pooled;               /* opened by on_open_socket: closed by on_close_socket */
    struct sock_ctx *prev, *next; /* c->socks: every poll open */
} sock_ctx;

struct dp_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    /* Runs dispatch on the loop's next idle phase, for events recorded outside a loop
     * callback. An idle handle, not a zero timer: libuv 1.44 runs a zero timer re-armed in its
     * own callback again in the same turn, so an upload whose writes all succeed at once
     * never let the loop poll (no other request on the thread was served). */
    uv_idle_t kick;
    dp_xfer *xfers;
    size_t n_xfers;
    int depth;                        /* dispatch nesting: frees wait for the outermost */
    dp_xfer *zombies;                 /* freed during a dispatch */
    dp_xfer *ready_head, *ready_tail; /* transfers with events or sent pieces to hand over */
    /* Outermost dispatches so far. A transfer made ready while one runs (by a hook: an app
     * that sends the next piece of an upload when the last was written) waits for the next
     * round, after the loop has polled: otherwise an upload whose writes all succeed at once
     * kept the thread in one dispatch, serving nothing else, for as long as the peer read. */
    unsigned round;
    CURL *spare[32]; /* easy handles of ended transfers, reset, for the next ones */
    int n_spare;
    sock_ctx *socks;
    sock_ctx **by_fd; /* the poll of each socket, by fd (curl forgets its own map
                                * entry when it stops watching a socket) */
    int by_fd_cap;
    char *ca_file; /* $SSL_CERT_FILE / $SSL_CERT_DIR at start: the operator's CAs */
    char *ca_dir;
    bool uses_proxy_env; /* a proxy variable was set at start: curl reads them per transfer */
    int n_handles;       /* uv handles open (timer, polls) */
    bool is_closing;
    bool is_curl_only; /* $NANO_FETCH_CLIENT=curl: every transfer through curl */
    h1_pool *h1;       /* the native transport's connections and DNS cache (h1.c) */
};

/* client.c, for h1.c */
void dp_xfer__mark_ready(dp_xfer *x);
void dp_client__dispatch(dp_client *c);
/* Queues the client's dispatch for the next loop turn (events recorded inside a hook). */
void dp_client__kick(dp_client *c);
/* One uv handle of the client's closed: the client is freed after its last one. */
void dp_client__handle_closed(dp_client *c);
/* A response head line ("Name: value"), the body bytes received: 0 or -1 (out of memory). */
int dp_xfer__append_line(dp_xfer *x, const char *p, size_t n);
int dp_xfer__recv_append(dp_xfer *x, const char *p, size_t n);
/* The status line's parts, for a transport that parsed them itself. */
void dp_xfer__set_reason(dp_xfer *x, const char *p, size_t n);
/* The egress check on addr (false: denied, the reason kept for the transfer's detail). */
bool dp_xfer__check_address(dp_xfer *x, const struct sockaddr *addr);
/* The transfer ended: result and a one-line detail; its on_done hook runs from dispatch. */
void dp_xfer__finish(dp_xfer *x, dp_xfer_error result, const char *detail);
/* Sent pieces of the upload move to x->sent, released from dispatch. */
void dp_xfer__piece_sent(dp_xfer *x, send_piece *pc);

/* h1.c: the native transport (plain http:// over HTTP/1.1, no proxy) */
/* Starts x (created by dp_xfer_start, is_running) on h1: 0 (it may have ended already: its
 * hooks run from the next dispatch), 1 when h1 does not carry it (not a plain http: URL it
 * can parse, or a name to resolve past its share of lookups): curl does. */
int h1_start(dp_xfer *x, const dp_xfer_spec *spec, char *why, size_t why_len);
/* The owner let go of a running transfer: its connection closes unless it is reusable. */
void h1_stop(dp_xfer *x);
/* The owner took the body (reading may resume) or queued upload bytes (sending may). */
void h1_resume(dp_xfer *x);
/* Frees x->h1 (the transfer is no longer running). */
void h1_release(dp_xfer *x);
/* dp_client_close: every pooled connection closes. */
void h1_pool_close(dp_client *c);

#endif
