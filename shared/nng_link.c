#include "nng_link.h"

#include <string.h>

#include <nng/protocol/reqrep0/req.h>

int nano_nng_dial(nng_socket s, const char *url, const nano_nng_dial_options *o, nano_error *err)
{
    nng_dialer d;
    int rv = nng_dialer_create(&d, s, url);
    if (rv == 0 && o != NULL && o->tls != NULL && strncmp(url, "tls+tcp://", 10) == 0)
        rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, o->tls);
    if (rv == 0 && o != NULL && o->reconnect_min_ms > 0)
        rv = nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, o->reconnect_min_ms);
    if (rv == 0 && o != NULL && o->reconnect_max_ms > 0)
        rv = nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, o->reconnect_max_ms);
    if (rv == 0)
        rv = nng_dialer_start(d, o != NULL && o->is_background ? NNG_FLAG_NONBLOCK : 0);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "connect_failed", "cannot connect to %s: %s", url,
                              nng_strerror(rv));
    return 0;
}

int nano_nng_listen(nng_socket s, const char *url, nng_tls_config *tls, int *port, nano_error *err)
{
    nng_listener l;
    int rv = nng_listener_create(&l, s, url);
    if (rv == 0 && tls != NULL && strncmp(url, "tls+tcp://", 10) == 0)
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, tls);
    if (rv == 0)
        rv = nng_listener_start(l, 0);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "listen_failed", "%s: %s", url, nng_strerror(rv));
    int p = 0;
    if (port != NULL)
        *port = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &p) == 0 ? p : 0;
    return 0;
}

int nano_nng_req_open(nng_socket *out, int timeout_ms, size_t max_reply_bytes, nano_error *err)
{
    nng_socket s;
    int rv = nng_req0_open(&s);
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "connect_failed", "cannot open a socket: %s",
                              nng_strerror(rv));
    nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, max_reply_bytes);
    *out = s;
    return 0;
}

int nano_nng_req_call(nng_socket s, const char *url, const void *req, size_t len, nng_msg **reply,
                      nano_error *err)
{
    nng_msg *m = NULL;
    int rv = nng_msg_alloc(&m, 0);
    if (rv == 0)
        rv = nng_msg_append(m, req, len);
    if (rv == 0)
        rv = nng_sendmsg(s, m, 0); /* takes m when it succeeds */
    if (rv != 0)
        nng_msg_free(m);
    if (rv == 0)
        rv = nng_recvmsg(s, &m, 0);
    if (rv == NNG_ETIMEDOUT) {
        nng_duration ms = 0;
        nng_socket_get_ms(s, NNG_OPT_RECVTIMEO, &ms);
        return nano_error_set(err, -ETIMEDOUT, "unreachable", "no reply from %s within %d ms", url,
                              (int)ms);
    }
    if (rv != 0)
        return nano_error_set(err, NANO_EIO, "unreachable", "%s: %s", url, nng_strerror(rv));
    *reply = m;
    return 0;
}
