#include "api.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "parse.h"

int cp_api_parse_addr(const char *addr, struct sockaddr_storage *out, nano_error *err)
{
    char host[64];
    const char *colon;
    if (!addr || addr[0] == '\0')
        return nano_error_set(err, NANO_EINVAL, "invalid_address", "empty listen address");
    if (addr[0] == '[') {
        const char *end = strchr(addr, ']');
        if (!end || end[1] != ':' || (size_t)(end - addr - 1) >= sizeof host)
            return nano_error_set(err, NANO_EINVAL, "invalid_address", "%s: expected [IPv6]:PORT",
                                  addr);
        memcpy(host, addr + 1, (size_t)(end - addr - 1));
        host[end - addr - 1] = '\0';
        colon = end + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host || colon == addr)
            return nano_error_set(err, NANO_EINVAL, "invalid_address",
                                  "%s: expected HOST:PORT, e.g. 127.0.0.1:7070", addr);
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
    }
    int port;
    if (nano_parse_port(colon + 1, &port) != 0)
        return nano_error_set(err, NANO_EINVAL, "invalid_address", "%s: bad port '%s'", addr,
                              colon + 1);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return nano_error_set(err, NANO_EINVAL, "invalid_address", "%s: '%s' is not an IP address",
                              addr, host);
    *out = ss;
    return 0;
}
