/* api.h: what nanocp's two admin front ends (api_http.c, api_rpc.c) share: the token-check
 * callback they are given, the listen-address parser, and the result of a finished close.
 *
 * Both front ends reach the service only through a cp_call_cb (service.h) and a
 * cp_token_check_cb plus their user data, so they build and are tested without the real
 * service. In nanocp both callbacks wrap cp_service_call / cp_service_check_token. */
#ifndef CP_API_H
#define CP_API_H

#include <stdbool.h>

#include "error.h"
#include "service.h"

/* cp_token_check_cb: whether token (a NUL-terminated string, borrowed; "" when the request
 * carried none) is a valid admin token. On true, *who is the token's name for the audit log
 * (static or owned by ud; it must stay valid until the next call). Runs on the loop thread. */
typedef bool (*cp_token_check_cb)(void *ud, const char *token, const char **who);

/* cp_api_closed_cb: a front end finished closing: every handle is closed, its memory freed. */
typedef void (*cp_api_closed_cb)(void *arg);

/* cp_api_parse_addr: "127.0.0.1:7070", "[::1]:7070" or "localhost:7070" (port 0: any free
 * port) -> a socket address for uv_tcp_bind. Returns 0, or NANO_EINVAL with err saying what
 * is wrong. Pure; any thread. */
struct sockaddr_storage;
int cp_api_parse_addr(const char *addr, struct sockaddr_storage *out, nano_error *err);

#endif
