#include "nng_rep.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include <nng/protocol/reqrep0/rep.h>

#include "alloc.h"
#include "container.h"
#include "log.h"
#include "nng_link.h"

/* One REP context: receives a request, waits on the loop's queue, sends the reply, repeats.
 * is_sending and msg are handed back and forth: the aio callback (NNG thread) writes them
 * before it queues the context, the loop thread after it has taken it from the queue and
 * before it starts the send; NNG orders the send's completion after its start. */
typedef struct rep_ctx {
    struct nano_nng_rep *r;
    nng_ctx ctx;
    nng_aio *aio;
    bool is_sending;
    nng_msg *msg;         /* a received request waiting for the loop */
    struct rep_ctx *next; /* in the ready queue */
} rep_ctx;

struct nano_nng_rep {
    uv_async_t async;
    nng_socket sock;
    bool is_sock_open;
    nano_nng_rep_handle_cb handle;
    void *ud;
    const char *reply_failed_event; /* borrowed: a string literal */
    rep_ctx ctxs[NANO_NNG_REP_MAX_CONTEXTS];
    size_t n_ctxs; /* contexts with an aio */
    pthread_mutex_t mu;
    rep_ctx *ready_head, *ready_tail; /* under mu */
    atomic_bool is_closing;
    nano_nng_rep_closed_cb closed_cb;
    void *closed_arg;
    int port;
};

/* NNG thread: keep it short. */
static void on_aio(void *arg)
{
    rep_ctx *x = arg;
    nano_nng_rep *r = x->r;
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

static void on_async(uv_async_t *a)
{
    nano_nng_rep *r = container_of(a, nano_nng_rep, async);
    pthread_mutex_lock(&r->mu);
    rep_ctx *x = r->ready_head;
    r->ready_head = r->ready_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    while (x) {
        rep_ctx *next = x->next;
        nng_msg *req = x->msg;
        x->msg = NULL;
        if (atomic_load(&r->is_closing)) {
            nng_msg_free(req);
            x = next;
            continue;
        }
        nano_buf reply = NANO_BUF_INIT;
        r->handle(r->ud, nng_msg_body(req), nng_msg_len(req), &reply);
        nng_msg_free(req);
        nng_msg *m = NULL;
        int rv = nng_msg_alloc(&m, 0);
        if (rv == 0)
            rv = nng_msg_append(m, reply.data, reply.len);
        nano_buf_fini(&reply);
        if (rv != 0) {
            NANO_WARN(r->reply_failed_event, "error=%s", nng_strerror(rv));
            nng_msg_free(m);
            nng_ctx_recv(x->ctx, x->aio); /* the client times out (and may retry) */
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
    nano_nng_rep *r = container_of(h, nano_nng_rep, async);
    nano_nng_rep_closed_cb cb = r->closed_cb;
    void *arg = r->closed_arg;
    pthread_mutex_destroy(&r->mu);
    nano_free(r);
    if (cb)
        cb(arg);
}

/* stop_nng: after it returns no NNG callback is running or will run. */
static void stop_nng(nano_nng_rep *r)
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
    for (rep_ctx *x = r->ready_head; x; x = x->next) {
        nng_msg_free(x->msg);
        x->msg = NULL;
    }
    r->ready_head = r->ready_tail = NULL;
    pthread_mutex_unlock(&r->mu);
}

int nano_nng_rep_start(uv_loop_t *loop, const nano_nng_rep_options *o, nano_nng_rep **out,
                       nano_error *err)
{
    if (o->n_contexts < 1 || o->n_contexts > NANO_NNG_REP_MAX_CONTEXTS)
        return nano_error_set(err, NANO_EINVAL, "listen_failed", "%s: %zu contexts", o->url,
                              o->n_contexts);
    nano_nng_rep *r = nano_xcalloc(1, sizeof *r);
    r->handle = o->handle;
    r->ud = o->ud;
    r->reply_failed_event = o->reply_failed_event != NULL ? o->reply_failed_event
                                                          : "nng.reply_failed";
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->is_closing, false);
    int rc = uv_async_init(loop, &r->async, on_async);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        nano_free(r);
        return nano_error_set(err, NANO_EIO, "listen_failed", "%s: %s", o->url, uv_strerror(rc));
    }
    const char *step = "socket";
    int rv = nng_rep0_open(&r->sock);
    if (rv == 0) {
        r->is_sock_open = true;
        step = "options";
        rv = nng_socket_set_size(r->sock, NNG_OPT_RECVMAXSZ, o->max_request_bytes);
    }
    for (size_t i = 0; rv == 0 && i < o->n_contexts; i++) {
        rep_ctx *x = &r->ctxs[i];
        x->r = r;
        step = "context";
        rv = nng_aio_alloc(&x->aio, on_aio, x);
        if (rv != 0)
            break;
        r->n_ctxs++;
        rv = nng_ctx_open(&x->ctx, r->sock);
    }
    if (rv != 0)
        rc = nano_error_set(err, NANO_EIO, "listen_failed", "%s: %s (%s)", o->url, nng_strerror(rv),
                            step);
    else
        rc = nano_nng_listen(r->sock, o->url, o->tls, &r->port, err);
    if (rc != 0) {
        stop_nng(r);
        uv_close((uv_handle_t *)&r->async, on_async_closed);
        return rc;
    }
    for (size_t i = 0; i < r->n_ctxs; i++)
        nng_ctx_recv(r->ctxs[i].ctx, r->ctxs[i].aio);
    *out = r;
    return 0;
}

int nano_nng_rep_port(const nano_nng_rep *r)
{
    return r->port;
}

void nano_nng_rep_close(nano_nng_rep *r, nano_nng_rep_closed_cb done, void *arg)
{
    if (!r || uv_is_closing((uv_handle_t *)&r->async))
        return;
    r->closed_cb = done;
    r->closed_arg = arg;
    stop_nng(r);
    uv_close((uv_handle_t *)&r->async, on_async_closed);
}
