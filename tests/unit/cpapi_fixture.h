/* cpapi_fixture.h: what the files of the unit_cpapi runner share (cpapi_fixture.c): a
 * recording service with canned answers, a loop thread running one admin front end against
 * it, and a blocking HTTP/1.1 client. Groups: addr (test_cpapi.c, with main), http
 * (test_cpapi_http.c), rpc and ctl (test_cpapi_rpc.c). */
#ifndef NANO_CPAPI_FIXTURE_H
#define NANO_CPAPI_FIXTURE_H

#include "unit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include <jansson.h>

#include "api.h"
#include "api_http.h"
#include "api_rpc.h"
#include "buf.h"

#define CPAPI_TOKEN "t0ken-for-tests"

/* --- the recording service ----------------------------------------------------------------- */

typedef struct cpapi_fake {
    pthread_mutex_t mu;
    int n_calls;
    char op[64];
    json_t *args; /* deep copy of the last call's args */
    char who[64];
    char via[16];
    /* canned answer for the next calls: an error when err.code is set, else result (or an
     * echo {"op", "args"} when result is NULL) */
    json_t *result;
    cp_error err;
} cpapi_fake;

/* The service behind every front end; lock mu to read or set it. */
extern cpapi_fake cpapi_svc;

/* Forgets the calls seen and the canned answer. */
void cpapi_fake_reset(void);
/* The cp_call_cb: records the call, then answers as cpapi_svc says. Any thread. */
int cpapi_fake_call(void *ud, const cp_actor *actor, const char *op, json_t *args, json_t **result,
                    cp_error *err);
/* The cp_token_check_cb: CPAPI_TOKEN only, as "admin". */
bool cpapi_fake_check(void *ud, const char *token, const char **who);

/* What the service saw last, copied under the lock: assertions run outside it, so that a
 * failing one (a longjmp) never leaves the lock held for the next test. */
typedef struct cpapi_seen {
    char op[64];
    char who[64];
    char via[16];
    json_t *args;
} cpapi_seen;

cpapi_seen cpapi_last_call(void);
/* The last op the service saw, and its args. */
void cpapi_assert_call(const char *op, const char *args_json);
int cpapi_n_calls(void);

/* --- a loop thread running one front end --------------------------------------------------- */

typedef struct cpapi_server {
    uv_loop_t loop;
    uv_async_t stop;
    pthread_t thread;
    cp_http *http;
    cp_rpc *rpc;
    int port;
    int n_closed;
} cpapi_server;

/* The server lives on the heap: after a failed assertion its thread keeps running, and must
 * not be left pointing into a returned stack frame. */
cpapi_server *cpapi_server_start_with(bool is_rpc, const cp_http_limits *limits);
/* max_body 0: the default. */
cpapi_server *cpapi_server_start(bool is_rpc, size_t max_body);
/* Closing must release every handle: uv_loop_close() fails on a leaked one. */
void cpapi_server_stop(cpapi_server *s);

/* --- a blocking HTTP client ---------------------------------------------------------------- */

typedef struct cpapi_response {
    int status;
    char headers[4096];
    char *body; /* NUL-terminated */
    size_t body_len;
    json_t *json; /* body parsed, when it is JSON */
} cpapi_response;

/* Reads from fd into a per-connection buffer until one whole response is there. */
typedef struct cpapi_reader {
    int fd;
    nano_buf in;
} cpapi_reader;

int cpapi_http_connect(int port);
void cpapi_send_all(int fd, const void *data, size_t len);
void cpapi_response_free(cpapi_response *r);
bool cpapi_read_more(cpapi_reader *rd);
bool cpapi_read_response(cpapi_reader *rd, cpapi_response *r);
/* One request on a fresh connection. */
cpapi_response cpapi_http(int port, const char *method, const char *path, const char *token,
                          const char *content_type, const char *body, size_t body_len);
cpapi_response cpapi_get(int port, const char *path);
cpapi_response cpapi_send_json(int port, const char *method, const char *path, const char *body);
const char *cpapi_err_code(const cpapi_response *r);
const char *cpapi_err_message(const cpapi_response *r);
const char *cpapi_err_field(const cpapi_response *r);

/* --- the groups, for main (test_cpapi.c) --------------------------------------------------- */

extern const unit_group unit_cpapi_http, unit_cpapi_rpc, unit_cpapi_ctl;

#endif
