#include "api_rpc.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "admin_msg.h"
#include "alloc.h"
#include "buf.h"
#include "log.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* One REP context: receives a request, waits on the loop's queue, sends the reply, repeats.
 * is_sending and msg are handed back and forth: the aio callback (NNG thread) writes them
 * before it queues the context, the loop thread after it has taken it from the queue and
 * before it starts the send; NNG orders the send's completion after its start. */
typedef struct rpc_ctx {
    struct cp_rpc *rpc;
    nng_ctx ctx;
    nng_aio *aio;
    bool is_sending;
    nng_msg *msg;             /* a received request waiting for the loop */
    struct rpc_ctx *next;     /* in the ready queue */
} rpc_ctx;

struct cp_rpc {
    uv_loop_t *loop;
    uv_async_t async;
    nng_socket sock;
    bool is_sock_open;
    cp_call_cb call;
    cp_token_check_cb check;
    void *ud;
    rpc_ctx ctxs[CP_RPC_CONTEXTS];
    size_t n_ctxs; /* contexts with an aio */
    pthread_mutex_t mu;
    rpc_ctx *ready_head, *ready_tail; /* under mu */
    atomic_bool is_closing;
    cp_api_closed_cb closed_cb;
    void *closed_arg;
    int port;
};

/* NNG thread: keep it short. */
static void on_aio(void *arg)
{
    rpc_ctx *x = arg;
    cp_rpc *r = x->rpc;
    int rv = nng_aio_result(x->aio);
    if (x->is_sending) {
        x->is_sending = false;
        if (rv != 0) /* a failed send leaves the message with us */
            nng_msg_free(nng_aio_get_msg(x->aio));
        if (!atomic_load(&r->is_closing))
            nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    if (rv != 0) {
        if (rv != NNG_ECLOSED && rv != NNG_ECANCELED && !atomic_load(&r->is_closing))
            nng_ctx_recv(x->ctx, x->aio);
        return;
    }
    x->msg = nng_aio_get_msg(x->aio);
    nng_aio_set_msg(x->aio, NULL);
    pthread_mutex_lock(&r->mu);
    x->next = NULL;
    if (r->ready_tail)
        r->ready_tail->next = x;
    else
        r->ready_head = x;
    r->ready_tail = x;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->async);
}

/* handle: one request's reply, built on the loop thread. */
static void handle(cp_rpc *r, const void *data, size_t len, nano_buf *reply)
{
    nano_admin_request req;
    nano_error err = {0};
    if (nano_admin_request_decode(data, len, &req, &err) != 0) {
        NANO_DEBUG("cp.rpc_bad_request", "code=%s bytes=%zu", err.id, len);
        nano_admin_reply_encode_error(err.id, err.message, "", reply);
        return;
    }
    const char *who = NULL;
    if (!req.token || req.token[0] == '\0' || !r->check(r->ud, req.token, &who)) {
        nano_admin_reply_encode_error("unauthorized",
                                      req.token && req.token[0] ? "invalid token"
                                                                : "missing token",
                                      "token", reply);
        nano_admin_request_fini(&req);
        return;
    }
    cp_actor actor = {who ? who : "", "rpc"};
    json_t *result = NULL;
    cp_error cerr;
    memset(&cerr, 0, sizeof cerr);
    int rc = r->call(r->ud, &actor, req.op, req.args, &result, &cerr);
    NANO_DEBUG("cp.rpc_request", "op=%s ok=%d", req.op, rc == 0);
    if (rc != 0) {
        nano_admin_reply_encode_error(cerr.code[0] ? cerr.code : "internal",
                                      cerr.message[0] ? cerr.message : "the operation failed",
                                      cerr.field, reply);
    } else if (nano_admin_reply_encode_ok(result, reply, &err) != 0) {
        nano_admin_reply_encode_error(err.code == NANO_ETOOBIG ? "too_large" : "internal",
                                      err.message, "", reply);
    }
    json_decref(result);
    nano_admin_request_fini(&req);
}

static void on_async(uv_async_t *a)
{
    cp_rpc *r = container_of(a, cp_rpc, async);
    pthread_mutex_lock(&r->mu);
    rpc_ctx *x = r->ready_head;
    r->ready_head = r->ready_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    while (x) {
        rpc_ctx *next = x->next;
        nng_msg *req = x->msg;
        x->msg = NULL;
        if (atomic_load(&r->is_closing)) {
            nng_msg_free(req);
            x = next;
            continue;
        }
        nano_buf reply = NANO_BUF_INIT;
        handle(r, nng_msg_body(req), nng_msg_len(req), &reply);
        nng_msg_free(req);
        nng_msg *m = NULL;
        int rv = nng_msg_alloc(&m, 0);
        if (rv == 0)
            rv = nng_msg_append(m, reply.data, reply.len);
        nano_buf_fini(&reply);
        if (rv != 0) {
            NANO_WARN("cp.rpc_reply_failed", "error=%s", nng_strerror(rv));
            nng_msg_free(m);
            nng_ctx_recv(x->ctx, x->aio); /* the client times out */
        } else {
            x->is_sending = true;
            nng_aio_set_msg(x->aio, m);
            nng_ctx_send(x->ctx, x->aio);
        }
        x = next;
    }
}

static void on_async_closed(uv_handle_t *h)
{
    cp_rpc *r = container_of(h, cp_rpc, async);
    cp_api_closed_cb cb = r->closed_cb;
    void *arg = r->closed_arg;
    pthread_mutex_destroy(&r->mu);
    nano_free(r);
    if (cb)
        cb(arg);
}

/* stop_nng: after it returns no NNG callback is running or will run. */
static void stop_nng(cp_rpc *r)
{
    atomic_store(&r->is_closing, true);
    if (r->is_sock_open) {
        nng_close(r->sock); /* every pending aio completes with NNG_ECLOSED */
        r->is_sock_open = false;
    }
    for (size_t i = 0; i < r->n_ctxs; i++)
        nng_aio_free(r->ctxs[i].aio); /* waits for a running callback */
    r->n_ctxs = 0;
    pthread_mutex_lock(&r->mu);
    for (rpc_ctx *x = r->ready_head; x; x = x->next) {
        nng_msg_free(x->msg);
        x->msg = NULL;
    }
    r->ready_head = r->ready_tail = NULL;
    pthread_mutex_unlock(&r->mu);
}

int cp_rpc_start(uv_loop_t *loop, const char *url, cp_call_cb call, cp_token_check_cb check,
                 void *ud, cp_rpc **out, nano_error *err)
{
    cp_rpc *r = nano_xcalloc(1, sizeof *r);
    r->loop = loop;
    r->call = call;
    r->check = check;
    r->ud = ud;
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->is_closing, false);
    int rc = uv_async_init(loop, &r->async, on_async);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        nano_free(r);
        return nano_error_set(err, rc, "listen_failed", "%s: %s", url, uv_strerror(rc));
    }
    nng_listener l;
    const char *step = "socket";
    int rv = nng_rep0_open(&r->sock);
    if (rv == 0) {
        r->is_sock_open = true;
        step = "options";
        /* Bigger messages are dropped by NNG before they reach us (nanoctl checks first). */
        rv = nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, NANO_ADMIN_MAX_BYTES);
    }
    for (size_t i = 0; rv == 0 && i < CP_RPC_CONTEXTS; i++) {
        rpc_ctx *x = &r->ctxs[i];
        x->rpc = r;
        step = "context";
        rv = nng_aio_alloc(&x->aio, on_aio, x);
        if (rv != 0)
            break;
        r->n_ctxs++;
        rv = nng_ctx_open(&x->ctx, r->sock);
    }
    if (rv == 0) {
        step = "listen";
        rv = nng_listen(r->sock, url, &l, 0);
    }
    if (rv != 0) {
        nano_error_set(err, NANO_EIO, "listen_failed", "%s: %s (%s)", url, nng_strerror(rv),
                       step);
        stop_nng(r);
        uv_close((uv_handle_t *)&r->async, on_async_closed);
        return NANO_EIO;
    }
    if (strncmp(url, "tcp", 3) == 0) {
        int port = 0;
        if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port) == 0)
            r->port = port;
    }
    for (size_t i = 0; i < r->n_ctxs; i++)
        nng_ctx_recv(r->ctxs[i].ctx, r->ctxs[i].aio);
    NANO_INFO("cp.rpc_listening", "url=%s port=%d", url, r->port);
    *out = r;
    return 0;
}

int cp_rpc_port(const cp_rpc *rpc)
{
    return rpc->port;
}

void cp_rpc_close(cp_rpc *r, cp_api_closed_cb done, void *arg)
{
    if (!r || r->closed_cb || uv_is_closing((uv_handle_t *)&r->async))
        return;
    r->closed_cb = done;
    r->closed_arg = arg;
    stop_nng(r);
    uv_close((uv_handle_t *)&r->async, on_async_closed);
}
