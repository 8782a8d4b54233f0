/* egress_node.c: the node-wide egress policy, built once at startup (egress_node.h). */
#define _GNU_SOURCE
#include "egress_node.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>

#include "config.h"
#include "control/cp_client.h"
#include "log.h"

/* Appends the entries of src (as given) to dst's lists. */
static int append_policy(nano_egress *dst, const nano_egress *src, nano_error *err)
{
    json_t *j = nano_egress_to_json(src);
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        json_t *list = json_object_get(j, k == 0 ? "allow" : "deny");
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            /* one entry per call: an entry never holds a comma, so none is split */
            rc = nano_egress_parse_list(dst, k == 0, json_string_value(v), err);
            if (rc != 0)
                break;
        }
    }
    json_decref(j);
    return rc;
}

static bool is_unspecified(const struct sockaddr *sa)
{
    static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, &any6, sizeof any6) == 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* A listener on 0.0.0.0 or :: answers on every address of this host: deny each of them. */
static size_t deny_interfaces(nano_egress *e, int port)
{
    struct ifaddrs *list = NULL;
    size_t n = 0;
    if (getifaddrs(&list) != 0) {
        NANO_WARN("egress.interfaces_unknown", "port=%d error=%s", port, strerror(errno));
        return 0;
    }
    for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL ||
            (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
            continue;
        struct sockaddr_storage ss = {0};
        memcpy(&ss, i->ifa_addr,
               i->ifa_addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                 : sizeof(struct sockaddr_in6));
        set_port(&ss, port);
        n += nano_egress_deny_endpoint(e, (struct sockaddr *)&ss) == 0;
    }
    freeifaddrs(list);
    return n;
}

/* Denies every address host resolves to, with port; what names the endpoint in logs. Returns
 * how many were added. */
static size_t deny_host_port(nano_egress *e, const char *what, const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        NANO_WARN("egress.endpoint_unresolved", "endpoint=%s host=%s error=%s", what, host,
                  gai_strerror(gai));
        return 0;
    }
    size_t n = 0;
    for (struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        if (is_unspecified(a->ai_addr))
            n += deny_interfaces(e, port);
        n += nano_egress_deny_endpoint(e, a->ai_addr) == 0;
    }
    freeaddrinfo(res);
    return n;
}

/* "HOST:PORT" or "[V6]:PORT" (the --status-listen form) split in place. */
static bool split_host_port(char *text, char **host, int *port)
{
    char *colon = strrchr(text, ':');
    if (colon == NULL)
        return false;
    *colon = '\0';
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
        return false;
    *port = (int)p;
    *host = text;
    size_t len = strlen(text);
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text[len - 1] = '\0';
        *host = text + 1;
    }
    return true;
}

static size_t deny_status(nano_egress *e, const dp_options *o)
{
    if (o->status_off)
        return 0;
    /* main.c's default when --status-listen is not given */
    char text[300];
    snprintf(text, sizeof text, "%s", o->status_listen ? o->status_listen : "127.0.0.1:9901");
    char *host;
    int port;
    if (!split_host_port(text, &host, &port))
        return 0; /* the status server reports the bad address itself */
    if (port == 0) {
        /* The bound port is known only once it listens, after the workers share the policy;
         * the loopback default still covers a status port on 127.0.0.1 or ::1. */
        NANO_INFO("egress.endpoint_skipped", "endpoint=status reason=%s", "port 0 (ephemeral)");
        return 0;
    }
    return deny_host_port(e, "status", host, port);
}

/* One nanocp URL (SCHEME://HOST:PORT, len bytes of text) denied as what. */
static size_t deny_cp_url(nano_egress *e, const char *what, const char *text, size_t len)
{
    char url[512], host[300];
    if (len >= sizeof url)
        return 0; /* cp_client refuses the URL itself, with a message */
    memcpy(url, text, len);
    url[len] = '\0';
    const char *colon = strrchr(url, ':');
    if (colon == NULL || dp_cp_url_host(url, host, sizeof host) != 0)
        return 0;
    int port = atoi(colon + 1);
    return port > 0 && port <= 65535 ? deny_host_port(e, what, host, port) : 0;
}

/* Every nanocp replica's PUB URL and RPC URL (--control-plane and --control-plane-rpc take
 * comma-separated lists; an RPC URL not given is the PUB port + 1, as cp_client.c dials). */
static size_t deny_control_plane(nano_egress *e, const dp_options *o)
{
    size_t n = 0;
    for (const char *p = o->cp_url; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        n += deny_cp_url(e, "nanocp", p, len);
        if (o->cp_rpc_url == NULL && len < 512) {
            char pub[512], rpc[512];
            memcpy(pub, p, len);
            pub[len] = '\0';
            if (dp_cp_default_rpc_url(pub, rpc, sizeof rpc) == 0)
                n += deny_cp_url(e, "nanocp-rpc", rpc, strlen(rpc));
        }
        p = comma != NULL ? comma + 1 : NULL;
    }
    for (const char *p = o->cp_rpc_url; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        n += deny_cp_url(e, "nanocp-rpc", p, len);
        p = comma != NULL ? comma + 1 : NULL;
    }
    return n;
}

int dp_egress_node_build(dp_options *o, nano_error *err)
{
    bool is_multi_tenant = o->config_path != NULL || o->cp_url != NULL;
    if (!is_multi_tenant)
        return 0; /* a single APP.js: the flags' rules as parsed, or no policy */
    nano_egress *node = NULL;
    int rc = 0;
    if (o->config_path != NULL)
        rc = nano_config_load_node_egress(o->config_path, &node, err);
    if (rc == 0 && node == NULL)
        node = nano_egress_new();
    if (rc == 0 && o->egress != NULL)
        rc = append_policy(node, o->egress, err);
    if (rc == 0) {
        nano_egress_enable_defaults(node);
        size_t n = deny_status(node, o);
        if (o->cp_url != NULL)
            n += deny_control_plane(node, o);
        NANO_INFO("egress.node_policy", "defaults=on endpoints=%zu", n);
        nano_egress_unref(o->egress);
        o->egress = node;
        node = NULL;
    }
    nano_egress_unref(node);
    return rc;
}
