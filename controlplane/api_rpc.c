#include "api_rpc.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "admin_msg.h"
#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "nng_rep.h"

struct cp_rpc {
    nano_nng_rep *rep;
    nng_tls_config *tls; /* tls+tcp://: freed once the socket is closed */
    cp_call_cb call;
    cp_token_check_cb check;
    void *ud;
    cp_api_closed_cb closed_cb;
    void *closed_arg;
};

/* handle: one request's reply, built on the loop thread. */
static void handle(void *ud, const void *data, size_t len, nano_buf *reply)
{
    cp_rpc *r = ud;
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
                                      req.token && req.token[0] ? "invalid token" : "missing token",
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

int cp_rpc_start(uv_loop_t *loop, const char *url, const nano_tls_files *tls, cp_call_cb call,
                 cp_token_check_cb check, void *ud, cp_rpc **out, nano_error *err)
{
    bool is_tls = strncmp(url, "tls+tcp://", 10) == 0;
    nng_tls_config *cfg = NULL;
    if (is_tls) {
        nano_tls_files none = {NULL, "--admin-tls-cert", NULL, "--admin-tls-key",
                               NULL, "--admin-tls-ca"};
        int trc = nano_tls_server_config(tls != NULL ? tls : &none, &cfg, err);
        if (trc != 0)
            return trc;
    }
    cp_rpc *r = nano_xcalloc(1, sizeof *r);
    r->tls = cfg;
    r->call = call;
    r->check = check;
    r->ud = ud;
    /* Bigger messages are dropped by NNG before they reach us (nanoctl checks first). */
    nano_nng_rep_options o = {.url = url,
                              .n_contexts = CP_RPC_CONTEXTS,
                              .max_request_bytes = NANO_ADMIN_MAX_BYTES,
                              .reply_failed_event = "cp.rpc_reply_failed",
                              .handle = handle,
                              .ud = r,
                              .tls = cfg};
    int rc = nano_nng_rep_start(loop, &o, &r->rep, err);
    if (rc != 0) {
        if (cfg != NULL)
            nng_tls_config_free(cfg); /* the socket that used it is closed */
        nano_free(r);
        return rc;
    }
    NANO_INFO("cp.rpc_listening", "url=%s port=%d tls=%s", url, nano_nng_rep_port(r->rep),
              !is_tls                          ? "off"
              : tls != NULL && tls->ca != NULL ? "client-certs"
                                               : "on");
    *out = r;
    return 0;
}

int cp_rpc_port(const cp_rpc *rpc)
{
    return nano_nng_rep_port(rpc->rep);
}

static void on_rep_closed(void *arg)
{
    cp_rpc *r = arg;
    cp_api_closed_cb cb = r->closed_cb;
    void *cb_arg = r->closed_arg;
    if (r->tls != NULL)
        nng_tls_config_free(r->tls);
    nano_free(r);
    if (cb)
        cb(cb_arg);
}

void cp_rpc_close(cp_rpc *r, cp_api_closed_cb done, void *arg)
{
    if (!r || r->rep == NULL)
        return;
    r->closed_cb = done;
    r->closed_arg = arg;
    nano_nng_rep_close(r->rep, on_rep_closed, r);
    r->rep = NULL;
}
