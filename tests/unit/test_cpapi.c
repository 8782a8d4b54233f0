/* Unit tests for nanocp's admin front ends (controlplane/api_http.c, api_rpc.c) and nanoctl's
 * argument handling (cli/).
 *
 * The front ends run on a real libuv loop in a second thread, bound to 127.0.0.1 on an
 * ephemeral port, and are driven over real sockets (raw HTTP/1.1 bytes; NNG REQ sockets).
 * Behind them is a recording cp_call_cb that returns canned results: these tests check the
 * adapters (routing, parsing, limits, tokens, envelopes), not the service. End-to-end tests
 * against the real nanocp live in tests/e2e/.
 *
 * This file has the runner (main) and the addr group; test_cpapi_http.c has http,
 * test_cpapi_rpc.c rpc and ctl, cpapi_fixture.c the service, server and client they share. */
#include "cpapi_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "log.h"

/* --- addr --------------------------------------------------------------------------------- */

static void addr_forms(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    nano_error err;
    assert_int_equal(cp_api_parse_addr("127.0.0.1:7070", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7070);
    assert_int_equal(cp_api_parse_addr("[::1]:0", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(cp_api_parse_addr("localhost:80", &ss, &err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(cp_api_parse_addr("127.0.0.1", &ss, &err), NANO_EINVAL);
    assert_non_null(strstr(err.message, "HOST:PORT"));
    assert_int_equal(cp_api_parse_addr("127.0.0.1:99999", &ss, &err), NANO_EINVAL);
    assert_int_equal(cp_api_parse_addr("example.com:80", &ss, &err), NANO_EINVAL);
    assert_int_equal(cp_api_parse_addr("[::1:80", &ss, &err), NANO_EINVAL);
    assert_int_equal(cp_api_parse_addr("", &ss, &err), NANO_EINVAL);
}

int main(int argc, char **argv)
{
    nano_log_min_level = NANO_LOG_WARN;
    static const struct CMUnitTest addr[] = {
        cmocka_unit_test(addr_forms),
    };
    const unit_group groups[] = {
        UNIT_GROUP("addr", addr),
        unit_cpapi_http,
        unit_cpapi_rpc,
        unit_cpapi_ctl,
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
