/* Unit tests for shared/'s NNG plumbing (nano_shared_nng, nano_shared_nng_uv): the REP server
 * answered on a libuv loop (nng_rep.h) and the REQ side (nng_link.h), over loopback TCP. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <uv.h>

#include "alloc.h"
#include "buf.h"
#include "nng_link.h"
#include "nng_rep.h"

typedef struct rep_fx {
    uv_loop_t loop;
    uv_thread_t loop_thread;
    uv_async_t client_done;
    nano_nng_rep *rep;
    char url[64];
    int n_handled;
    bool is_handled_on_loop;
    bool is_closed;
    /* the client thread's results */
    int rc;
    nano_error err;
    char reply[64];
} rep_fx;

/* The handler: "re:" + the request, on the loop's thread. */
static void on_echo(void *ud, const void *data, size_t len, nano_buf *reply)
{
    rep_fx *f = ud;
    uv_thread_t self = uv_thread_self();
    f->is_handled_on_loop = uv_thread_equal(&self, &f->loop_thread);
    f->n_handled++;
    nano_buf_append(reply, "re:", 3);
    nano_buf_append(reply, data, len);
}

static void on_rep_closed(void *arg)
{
    rep_fx *f = arg;
    f->is_closed = true;
}

static void on_client_done(uv_async_t *a)
{
    rep_fx *f = a->data;
    nano_nng_rep_close(f->rep, on_rep_closed, f);
    nano_nng_rep_close(f->rep, on_rep_closed, f); /* a second close does nothing */
    assert_false(f->is_closed);                   /* never from inside the call */
    uv_close((uv_handle_t *)a, NULL);
}

/* One exchange from another thread, as nanoctl or a data plane would. */
static void client_main(void *arg)
{
    rep_fx *f = arg;
    nng_socket s;
    nng_msg *m = NULL;
    f->rc = nano_nng_req_open(&s, 5000, 1024, &f->err);
    if (f->rc == 0) {
        f->rc = nano_nng_dial(s, f->url, NULL, &f->err);
        if (f->rc == 0)
            f->rc = nano_nng_req_call(s, f->url, "ping", 4, &m, &f->err);
        if (f->rc == 0) {
            snprintf(f->reply, sizeof f->reply, "%.*s", (int)nng_msg_len(m),
                     (const char *)nng_msg_body(m));
            nng_msg_free(m);
        }
        nng_close(s);
    }
    uv_async_send(&f->client_done);
}

static void rep_answers_on_the_loop_thread(void **state)
{
    (void)state;
    rep_fx f;
    memset(&f, 0, sizeof f);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    f.loop_thread = uv_thread_self();
    nano_nng_rep_options o = {.url = "tcp://127.0.0.1:0",
                              .n_contexts = 2,
                              .max_request_bytes = 1024,
                              .handle = on_echo,
                              .ud = &f};
    nano_error err = {0};
    assert_int_equal(nano_nng_rep_start(&f.loop, &o, &f.rep, &err), 0);
    int port = nano_nng_rep_port(f.rep);
    assert_true(port > 0);
    snprintf(f.url, sizeof f.url, "tcp://127.0.0.1:%d", port);
    assert_int_equal(f.n_handled, 0); /* no handler before start returns */
    uv_async_init(&f.loop, &f.client_done, on_client_done);
    f.client_done.data = &f;
    uv_thread_t client;
    assert_int_equal(uv_thread_create(&client, client_main, &f), 0);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_thread_join(&client);
    assert_int_equal(f.rc, 0);
    assert_string_equal(f.reply, "re:ping");
    assert_int_equal(f.n_handled, 1);
    assert_true(f.is_handled_on_loop);
    assert_true(f.is_closed);
    assert_int_equal(uv_loop_close(&f.loop), 0);
}

static void rep_start_failure_is_one_line_and_leaves_no_handle(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    nano_nng_rep *rep = NULL;
    nano_error err = {0};
    nano_nng_rep_options o = {
        .url = "bogus://x", .n_contexts = 1, .max_request_bytes = 16, .handle = on_echo};
    assert_int_equal(nano_nng_rep_start(&loop, &o, &rep, &err), NANO_EIO);
    assert_null(rep);
    assert_string_equal(err.id, "listen_failed");
    assert_memory_equal(err.message, "bogus://x: ", 11);
    assert_null(strchr(err.message, '\n'));
    uv_run(&loop, UV_RUN_DEFAULT); /* the async handle closes */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void req_call_times_out_with_the_url(void **state)
{
    (void)state;
    nng_socket mute; /* receives requests and never answers */
    assert_int_equal(nng_rep0_open(&mute), 0);
    int port = 0;
    nano_error err = {0};
    assert_int_equal(nano_nng_listen(mute, "tcp://127.0.0.1:0", NULL, &port, &err), 0);
    assert_true(port > 0);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    nng_socket s;
    assert_int_equal(nano_nng_req_open(&s, 100, 1024, &err), 0);
    assert_int_equal(nano_nng_dial(s, url, NULL, &err), 0);
    nng_msg *m = NULL;
    assert_int_equal(nano_nng_req_call(s, url, "x", 1, &m, &err), -ETIMEDOUT);
    assert_null(m);
    char want[128];
    snprintf(want, sizeof want, "no reply from %s within 100 ms", url);
    assert_string_equal(err.message, want);
    nng_close(s);
    nng_close(mute);
}

static void dial_refused_fails_at_once(void **state)
{
    (void)state;
    nng_socket probe; /* a port that was free a moment ago */
    assert_int_equal(nng_rep0_open(&probe), 0);
    int port = 0;
    nano_error err = {0};
    assert_int_equal(nano_nng_listen(probe, "tcp://127.0.0.1:0", NULL, &port, &err), 0);
    nng_close(probe);
    char url[64];
    snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
    nng_socket s;
    assert_int_equal(nano_nng_req_open(&s, 1000, 1024, &err), 0);
    assert_int_equal(nano_nng_dial(s, url, NULL, &err), NANO_EIO);
    assert_string_equal(err.id, "connect_failed");
    char want[128];
    snprintf(want, sizeof want, "cannot connect to %s: Connection refused", url);
    assert_string_equal(err.message, want);
    /* in the background: no error now, NNG keeps trying */
    nano_nng_dial_options bg = {
        .is_background = true, .reconnect_min_ms = 10, .reconnect_max_ms = 20};
    assert_int_equal(nano_nng_dial(s, url, &bg, &err), 0);
    nng_close(s);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest nng[] = {
        cmocka_unit_test(rep_answers_on_the_loop_thread),
        cmocka_unit_test(rep_start_failure_is_one_line_and_leaves_no_handle),
        cmocka_unit_test(req_call_times_out_with_the_url),
        cmocka_unit_test(dial_refused_fails_at_once),
    };
    const unit_group groups[] = {
        UNIT_GROUP("nng", nng),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
