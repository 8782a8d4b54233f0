/* Unit tests for shared/egress: parsing entries (addresses, CIDRs, hostnames, ports) and every
 * parse error, matching (CIDR edges, IPv4-mapped addresses, wildcards, ports), the order in
 * which node and app rules decide, the built-in defaults and endpoints, and JSON round trips. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include <jansson.h>

#include "egress.h"
#include "error.h"

/* --- helpers -------------------------------------------------------------------------------- */

/* "10.0.0.1", "::1" or "::ffff:127.0.0.1" with a port, as a sockaddr in *ss. */
static const struct sockaddr *sa(struct sockaddr_storage *ss, const char *addr, int port)
{
    assert_int_equal(nano_egress_sockaddr(addr, (unsigned)port, ss), 0);
    return (const struct sockaddr *)ss;
}

static nano_egress *policy(const char *json_text)
{
    json_error_t jerr;
    json_t *j = json_loads(json_text, 0, &jerr);
    assert_non_null(j);
    nano_egress *e = NULL;
    nano_error err = {0};
    int rc = nano_egress_parse_json(j, "egress", &e, &err);
    if (rc != 0)
        fail_msg("%s: %s", json_text, err.message);
    json_decref(j);
    return e;
}

/* The error message parsing json_text gives (asserts that it fails). */
static const char *parse_error(const char *json_text, nano_error *err)
{
    json_error_t jerr;
    json_t *j = json_loads(json_text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    assert_non_null(j);
    nano_egress *e = NULL;
    memset(err, 0, sizeof *err);
    assert_int_equal(nano_egress_parse_json(j, "apps[1].egress", &e, err), NANO_EINVAL);
    assert_null(e);
    json_decref(j);
    return err->message;
}

static bool allows(const nano_egress *node, const nano_egress *app, const char *host,
                   const char *addr, int port, char *why, size_t why_len)
{
    struct sockaddr_storage ss;
    return nano_egress_check(node, app, host, sa(&ss, addr, port), why, why_len);
}

#define ALLOWED(node, app, host, addr, port)                                                       \
    assert_true(allows(node, app, host, addr, port, NULL, 0))
#define DENIED(node, app, host, addr, port)                                                        \
    assert_false(allows(node, app, host, addr, port, NULL, 0))

static nano_egress *node_with_defaults(void)
{
    nano_egress *n = nano_egress_new();
    nano_egress_enable_defaults(n);
    return n;
}

/* --- parse ----------------------------------------------------------------------------------- */

static void parse_every_entry_form(void **state)
{
    (void)state;
    nano_egress *e = policy("{\"deny\": [\"10.0.0.0/8\", \"fd00::/8\", \"::1\", \"192.0.2.7\","
                            " \"10.0.0.5:8080\", \"[::1]:8080\", \"[fd00::/16]:443\","
                            " \"db.internal:5432\", \"api.example.com\", \"*.example.com\","
                            " \"API.Example.COM.\"]}");
    assert_non_null(e);
    nano_egress_unref(e);
    e = policy("{}");
    ALLOWED(NULL, e, "x", "10.0.0.1", 80);
    nano_egress_unref(e);
    e = policy("{\"allow\": []}");
    nano_egress_unref(e);
}

static void parse_errors_name_the_entry(void **state)
{
    (void)state;
    nano_error err;
    assert_string_equal(parse_error("{\"allow\": [\"1.2.3.4\", \"x.y\", \"10.0.0.0/33\"]}", &err),
                        "apps[1].egress.allow[2]: \"10.0.0.0/33\" is not an address, CIDR or "
                        "hostname (optionally with :PORT)");
    assert_string_equal(err.id, "egress_entry_invalid");
    static const char *const bad[] = {
        "::1/129",
        "10.0.0.0/",
        "10.0.0.0/-1",
        "10.0.0.0/08",
        "10.0.0.0/8/8",
        "10.0.0.256",
        "10.0.0",
        "1.2.3.4:0",
        "1.2.3.4:65536",
        "1.2.3.4:",
        "1.2.3.4:http",
        "[::1]:",
        "[::1]x",
        "[::1",
        "[1.2.3.4]:80",
        "",
        " 1.2.3.4",
        "-bad-.com",
        "*.",
        "*",
        "a..b",
        "*.*.example.com",
        "fe80::1%eth0",
        "http://x.com",
        "x.com/path",
        "1.2.3.4:80:90",
        "host_name.com",
        "::1:80:x",
        "10.0.0.0/8:0",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"deny\": [\"%s\"]}", bad[i]);
        char want[200];
        snprintf(want, sizeof want,
                 "apps[1].egress.deny[0]: \"%s\" is not an address, CIDR "
                 "or hostname (optionally with :PORT)",
                 bad[i]);
        if (strcmp(parse_error(text, &err), want) != 0)
            fail_msg("%s: got %s", bad[i], err.message);
    }
}

static void parse_errors_of_shape(void **state)
{
    (void)state;
    nano_error err;
    assert_string_equal(parse_error("[]", &err), "apps[1].egress: must be an object: "
                                                 "{\"allow\": [...], \"deny\": [...]}");
    assert_string_equal(parse_error("{\"allows\": []}", &err),
                        "apps[1].egress: unknown key \"allows\"; expected allow or deny");
    assert_string_equal(parse_error("{\"deny\": \"10.0.0.0/8\"}", &err),
                        "apps[1].egress.deny: must be an array of strings");
    assert_string_equal(parse_error("{\"allow\": [\"a.com\", 5]}", &err),
                        "apps[1].egress.allow[1]: must be a string");
    /* an embedded NUL does not cut an entry short */
    assert_string_equal(parse_error("{\"deny\": [\"1.2.3.4\\u0000x\"]}", &err),
                        "apps[1].egress.deny[0]: \"1.2.3.4?x\" is not an address, CIDR or hostname "
                        "(optionally with :PORT)");
    /* quotes and control characters are not echoed as they are */
    assert_string_equal(parse_error("{\"deny\": [\"a\\\"b\\n\"]}", &err),
                        "apps[1].egress.deny[0]: \"a?b?\" is not an address, CIDR or hostname "
                        "(optionally with :PORT)");
}

static void parse_limit_of_256_entries(void **state)
{
    (void)state;
    json_t *arr = json_array();
    for (int i = 0; i < NANO_EGRESS_MAX_ENTRIES; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.0.%d.%d", i / 256, i % 256);
        json_array_append_new(arr, json_string(ip));
    }
    json_t *obj = json_pack("{s:O}", "deny", arr);
    nano_egress *e = NULL;
    nano_error err;
    assert_int_equal(nano_egress_parse_json(obj, "egress", &e, &err), 0);
    /* lists built from flags have the same bound */
    assert_int_equal(nano_egress_parse_list(e, false, "1.1.1.1", &err), NANO_EINVAL);
    assert_string_equal(err.message, "--egress-deny: too many entries; the limit is 256 per list");
    assert_int_equal(nano_egress_parse_list(e, true, "1.1.1.1", &err), 0);
    nano_egress_unref(e);
    json_array_append_new(arr, json_string("10.9.9.9"));
    assert_int_equal(nano_egress_parse_json(obj, "egress", &e, &err), NANO_EINVAL);
    assert_string_equal(err.message, "egress.deny: 257 entries; the limit is 256");
    json_decref(obj);
    json_decref(arr);
}

static void parse_list_appends_or_changes_nothing(void **state)
{
    (void)state;
    nano_egress *e = nano_egress_new();
    nano_error err;
    assert_int_equal(nano_egress_parse_list(e, false, " 10.0.0.0/8 , [::1]:8080,db.internal", &err),
                     0);
    assert_int_equal(nano_egress_parse_list(e, false, "192.0.2.1", &err), 0);
    assert_int_equal(nano_egress_parse_list(e, true, "api.example.com,bad/x", &err), NANO_EINVAL);
    assert_string_equal(err.message, "--egress-allow: \"bad/x\" is not an address, CIDR or "
                                     "hostname (optionally with :PORT)");
    assert_int_equal(nano_egress_parse_list(e, true, "a.com,,b.com", &err), NANO_EINVAL);
    assert_string_equal(err.message, "--egress-allow: empty entry in \"a.com,,b.com\"");
    assert_int_equal(nano_egress_parse_list(e, true, "", &err), NANO_EINVAL);
    json_t *j = nano_egress_to_json(e);
    char *text = json_dumps(j, JSON_COMPACT);
    /* the failed lists added nothing: no "allow" key at all */
    assert_string_equal(text, "{\"deny\":[\"10.0.0.0/8\",\"[::1]:8080\",\"db.internal\","
                              "\"192.0.2.1\"]}");
    free(text);
    json_decref(j);
    nano_egress_unref(e);
}

/* --- check: matching ------------------------------------------------------------------------- */

static void check_cidr_edges(void **state)
{
    (void)state;
    nano_egress *app = policy("{\"deny\": [\"0.0.0.0/0\"]}");
    DENIED(NULL, app, NULL, "1.2.3.4", 80);
    DENIED(NULL, app, NULL, "255.255.255.255", 80);
    ALLOWED(NULL, app, NULL, "2001:db8::1", 80); /* /0 of one family only */
    nano_egress_unref(app);

    app = policy("{\"deny\": [\"::/0\"]}");
    DENIED(NULL, app, NULL, "2001:db8::1", 80);
    ALLOWED(NULL, app, NULL, "1.2.3.4", 80);
    nano_egress_unref(app);

    app = policy("{\"deny\": [\"10.1.2.3/32\", \"2001:db8::7/128\"]}");
    DENIED(NULL, app, NULL, "10.1.2.3", 80);
    ALLOWED(NULL, app, NULL, "10.1.2.2", 80);
    ALLOWED(NULL, app, NULL, "10.1.2.4", 80);
    DENIED(NULL, app, NULL, "2001:db8::7", 80);
    ALLOWED(NULL, app, NULL, "2001:db8::6", 80);
    nano_egress_unref(app);

    /* prefixes not on a byte boundary, first and last address in and just outside */
    app = policy("{\"deny\": [\"192.168.4.0/22\", \"fe80::/10\"]}");
    ALLOWED(NULL, app, NULL, "192.168.3.255", 80);
    DENIED(NULL, app, NULL, "192.168.4.0", 80);
    DENIED(NULL, app, NULL, "192.168.7.255", 80);
    ALLOWED(NULL, app, NULL, "192.168.8.0", 80);
    DENIED(NULL, app, NULL, "febf:ffff::1", 80);
    ALLOWED(NULL, app, NULL, "fec0::1", 80);
    nano_egress_unref(app);

    /* host bits below the prefix are ignored: 10.1.2.3/8 is 10.0.0.0/8 */
    app = policy("{\"deny\": [\"10.1.2.3/8\", \"fd12:3456::1/8\"]}");
    DENIED(NULL, app, NULL, "10.200.0.1", 80);
    ALLOWED(NULL, app, NULL, "11.0.0.0", 80);
    DENIED(NULL, app, NULL, "fd00::9", 80);
    nano_egress_unref(app);
}

static void check_v4_mapped_matches_as_v4(void **state)
{
    (void)state;
    nano_egress *node = node_with_defaults();
    char why[200];
    assert_false(allows(node, NULL, NULL, "::ffff:127.0.0.1", 9000, why, sizeof why));
    assert_string_equal(why, "127.0.0.1:9000 is denied by default (loopback)");
    DENIED(node, NULL, NULL, "::ffff:169.254.169.254", 80);
    DENIED(node, NULL, NULL, "::ffff:0.0.0.0", 80);
    ALLOWED(node, NULL, NULL, "::ffff:93.184.216.34", 443);
    /* an IPv4 rule covers the mapped form, and a mapped rule the IPv4 form */
    nano_egress *app = policy("{\"deny\": [\"10.0.0.0/8\", \"::ffff:192.168.0.0/112\"]}");
    DENIED(NULL, app, NULL, "::ffff:10.9.9.9", 80);
    DENIED(NULL, app, NULL, "192.168.1.1", 80);
    DENIED(NULL, app, NULL, "::ffff:192.168.1.1", 80);
    ALLOWED(NULL, app, NULL, "::ffff:11.0.0.1", 80);
    nano_egress_unref(app);
    /* an allow of the IPv4 range lifts the default for the mapped address too */
    app = policy("{\"allow\": [\"127.0.0.1:9000\"]}");
    ALLOWED(node, app, NULL, "::ffff:127.0.0.1", 9000);
    DENIED(node, app, NULL, "::ffff:127.0.0.1", 9001);
    nano_egress_unref(app);
    nano_egress_unref(node);
}

static void check_wildcard_is_not_the_apex(void **state)
{
    (void)state;
    nano_egress *app = policy("{\"deny\": [\"*.example.com\", \"exact.test\"]}");
    char why[200];
    assert_false(allows(NULL, app, "api.example.com", "93.184.216.34", 443, why, sizeof why));
    assert_string_equal(why, "api.example.com is denied by the app's egress policy "
                             "(*.example.com)");
    DENIED(NULL, app, "a.b.example.com", "93.184.216.34", 443);
    ALLOWED(NULL, app, "example.com", "93.184.216.34", 443);
    ALLOWED(NULL, app, "badexample.com", "93.184.216.34", 443);
    ALLOWED(NULL, app, ".example.com.evil", "93.184.216.34", 443);
    DENIED(NULL, app, "exact.test", "192.0.2.1", 80);
    DENIED(NULL, app, "EXACT.test.", "192.0.2.1", 80); /* case and the root dot tolerated */
    ALLOWED(NULL, app, "sub.exact.test", "192.0.2.1", 80);
    ALLOWED(NULL, app, "xexact.test", "192.0.2.1", 80);
    ALLOWED(NULL, app, NULL, "192.0.2.1", 80); /* no host: hostname rules match nothing */
    /* an IP literal host is not matched by hostname rules, only by address rules */
    ALLOWED(NULL, app, "192.0.2.1", "192.0.2.1", 80);
    nano_egress_unref(app);
}

static void check_ports(void **state)
{
    (void)state;
    nano_egress *app = policy("{\"deny\": [\"10.0.0.5:8080\", \"[::1]:8080\", "
                              "\"db.internal:5432\", \"10.1.0.0/16:22\"]}");
    char why[200];
    assert_false(allows(NULL, app, NULL, "10.0.0.5", 8080, why, sizeof why));
    assert_string_equal(why, "10.0.0.5:8080 is denied by the app's egress policy "
                             "(10.0.0.5:8080)");
    ALLOWED(NULL, app, NULL, "10.0.0.5", 8081);
    assert_false(allows(NULL, app, NULL, "::1", 8080, why, sizeof why));
    assert_string_equal(why, "[::1]:8080 is denied by the app's egress policy ([::1]:8080)");
    ALLOWED(NULL, app, NULL, "::1", 80);
    assert_false(allows(NULL, app, "db.internal", "10.2.0.1", 5432, why, sizeof why));
    assert_string_equal(why, "db.internal:5432 is denied by the app's egress policy "
                             "(db.internal:5432)");
    ALLOWED(NULL, app, "db.internal", "10.2.0.1", 5433);
    DENIED(NULL, app, NULL, "10.1.200.3", 22);
    ALLOWED(NULL, app, NULL, "10.1.200.3", 23);
    nano_egress_unref(app);
}

/* --- check: who decides ---------------------------------------------------------------------- */

static void check_precedence_order(void **state)
{
    (void)state;
    char why[200];
    /* 1. node deny beats an app allow */
    nano_egress *node = node_with_defaults();
    nano_error err;
    assert_int_equal(nano_egress_parse_list(node, false, "10.9.0.0/16", &err), 0);
    assert_int_equal(nano_egress_parse_list(node, true, "10.0.0.0/8,127.0.0.1:6379", &err), 0);
    nano_egress *app = policy("{\"allow\": [\"10.9.1.1\", \"169.254.169.254\"],"
                              " \"deny\": [\"10.1.0.0/16\", \"127.0.0.1\"]}");
    assert_false(allows(node, app, NULL, "10.9.1.1", 80, why, sizeof why));
    assert_string_equal(why, "10.9.1.1 is denied by the node's egress policy (10.9.0.0/16)");
    /* 2. app deny beats the node's allow */
    assert_false(allows(node, app, NULL, "10.1.2.3", 80, why, sizeof why));
    assert_string_equal(why, "10.1.2.3 is denied by the app's egress policy (10.1.0.0/16)");
    assert_false(allows(node, app, NULL, "127.0.0.1", 6379, why, sizeof why));
    assert_string_equal(why, "127.0.0.1 is denied by the app's egress policy (127.0.0.1)");
    /* 3. app allow beats the defaults */
    ALLOWED(node, app, NULL, "169.254.169.254", 80);
    /* 4. node allow beats the defaults, for an app without its own rule */
    ALLOWED(node, NULL, NULL, "127.0.0.1", 6379);
    ALLOWED(node, app, NULL, "10.2.0.1", 80);
    /* 5. the defaults deny; 6. otherwise allow */
    assert_false(allows(node, NULL, NULL, "127.0.0.1", 6380, why, sizeof why));
    assert_string_equal(why, "127.0.0.1:6380 is denied by default (loopback)");
    ALLOWED(node, app, NULL, "93.184.216.34", 443);
    nano_egress_unref(app);
    nano_egress_unref(node);
}

static void check_without_policies(void **state)
{
    (void)state;
    /* a single APP.js: no node policy, no defaults */
    ALLOWED(NULL, NULL, NULL, "127.0.0.1", 9901);
    ALLOWED(NULL, NULL, "metadata", "169.254.169.254", 80);
    /* a node policy from flags alone has no defaults either */
    nano_egress *node = nano_egress_new();
    nano_error err;
    assert_int_equal(nano_egress_parse_list(node, false, "192.0.2.0/24", &err), 0);
    ALLOWED(node, NULL, NULL, "127.0.0.1", 80);
    DENIED(node, NULL, NULL, "192.0.2.9", 80);
    /* the app alone, without a node */
    nano_egress *app = policy("{\"deny\": [\"192.0.2.0/24\"], \"allow\": [\"127.0.0.1\"]}");
    DENIED(NULL, app, NULL, "192.0.2.1", 80);
    ALLOWED(NULL, app, NULL, "127.0.0.1", 80);
    nano_egress_unref(app);
    nano_egress_unref(node);
    /* an address family other than IPv4/IPv6 is refused */
    struct sockaddr un = {.sa_family = AF_UNIX};
    char why[100];
    assert_false(nano_egress_check(NULL, NULL, NULL, &un, why, sizeof why));
    assert_string_equal(why, "unsupported address family");
}

static void check_defaults(void **state)
{
    (void)state;
    nano_egress *node = node_with_defaults();
    char why[200];
    static const char *const denied[] = {
        "127.0.0.1", "127.255.255.254", "::1",         "0.0.0.0", "0.1.2.3",
        "::",        "169.254.169.254", "169.254.0.1", "fe80::1", "febf::1",
    };
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++)
        if (allows(node, NULL, NULL, denied[i], 80, NULL, 0))
            fail_msg("%s allowed", denied[i]);
    static const char *const allowed[] = {
        "128.0.0.1", "1.0.0.0",  "169.253.255.255", "169.255.0.0", "::2",
        "fec0::1",   "10.0.0.1", "192.168.1.1",     "2001:db8::1", "::ffff:8.8.8.8",
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (!allows(node, NULL, NULL, allowed[i], 80, NULL, 0))
            fail_msg("%s denied", allowed[i]);
    assert_false(allows(node, NULL, NULL, "169.254.169.254", 80, why, sizeof why));
    assert_string_equal(why, "169.254.169.254:80 is denied by default (link-local)");
    assert_false(allows(node, NULL, NULL, "::", 80, why, sizeof why));
    assert_string_equal(why, "[::]:80 is denied by default (unspecified address)");
    /* the reason is cut to the buffer, NUL-terminated */
    assert_false(allows(node, NULL, NULL, "127.0.0.1", 80, why, 10));
    assert_string_equal(why, "127.0.0.1");
    nano_egress_unref(node);
}

static void check_endpoints(void **state)
{
    (void)state;
    nano_egress *node = node_with_defaults();
    struct sockaddr_storage ss;
    assert_int_equal(nano_egress_deny_endpoint(node, sa(&ss, "10.0.0.7", 7072)), 0);
    assert_int_equal(nano_egress_deny_endpoint(node, sa(&ss, "0.0.0.0", 9901)), 0);
    assert_int_equal(nano_egress_deny_endpoint(node, sa(&ss, "2001:db8::5", 7073)), 0);
    assert_int_equal(nano_egress_deny_endpoint(node, sa(&ss, "10.0.0.7", 0)), NANO_EINVAL);
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(nano_egress_deny_endpoint(node, &un), NANO_EINVAL);
    char why[200];
    assert_false(allows(node, NULL, "cp.internal", "10.0.0.7", 7072, why, sizeof why));
    assert_string_equal(why, "10.0.0.7:7072 is denied by default (this node's own endpoint)");
    ALLOWED(node, NULL, NULL, "10.0.0.7", 443);
    DENIED(node, NULL, NULL, "::ffff:10.0.0.7", 7072);
    DENIED(node, NULL, NULL, "2001:db8::5", 7073);
    /* 0.0.0.0:9901 = any address of this host: loopback and unspecified, either family */
    nano_egress *app = policy("{\"allow\": [\"127.0.0.0/8\", \"::1\"]}");
    ALLOWED(node, app, NULL, "127.0.0.1", 8080);
    ALLOWED(node, app, NULL, "127.0.0.1", 9901); /* an allow lifts endpoints with the defaults */
    nano_egress_unref(app);
    app = policy("{\"deny\": [\"192.0.2.1\"]}");
    assert_false(allows(node, app, NULL, "127.0.0.2", 9901, why, sizeof why));
    assert_string_equal(why, "127.0.0.2:9901 is denied by default (this node's own endpoint)");
    DENIED(node, app, NULL, "::1", 9901);
    nano_egress_unref(app);
    /* without the defaults, endpoints are not enforced */
    nano_egress *plain = nano_egress_new();
    assert_int_equal(nano_egress_deny_endpoint(plain, sa(&ss, "10.0.0.7", 7072)), 0);
    ALLOWED(plain, NULL, NULL, "10.0.0.7", 7072);
    nano_egress_unref(plain);
    nano_egress_unref(node);
}

/* --- json ------------------------------------------------------------------------------------ */

static void json_round_trip_keeps_entries_as_given(void **state)
{
    (void)state;
    const char *text = "{\"allow\":[\"API.example.com\",\"[::1]:8080\",\"10.1.2.3/8\"],"
                       "\"deny\":[\"*.internal:5432\",\"fd00::/8\"]}";
    nano_egress *e = policy(text);
    json_t *j = nano_egress_to_json(e);
    char *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(out, text);
    nano_error err;
    nano_egress *back = NULL;
    assert_int_equal(nano_egress_parse_json(j, "egress", &back, &err), 0);
    assert_true(nano_egress_equal(e, back));
    free(out);
    json_decref(j);
    nano_egress_unref(back);

    nano_egress *other = policy("{\"allow\":[\"api.example.com\",\"[::1]:8080\","
                                "\"10.0.0.0/8\"],\"deny\":[\"*.internal:5432\",\"fd00::/8\"]}");
    assert_true(nano_egress_equal(e, other)); /* same rules, written differently */
    nano_egress_unref(other);
    other = policy("{\"allow\":[\"api.example.com\"]}");
    assert_false(nano_egress_equal(e, other));
    assert_false(nano_egress_equal(e, NULL));
    assert_true(nano_egress_equal(NULL, NULL));
    nano_egress_unref(other);

    nano_egress *empty = nano_egress_new();
    j = nano_egress_to_json(empty);
    out = json_dumps(j, JSON_COMPACT);
    assert_string_equal(out, "{}");
    free(out);
    json_decref(j);
    assert_null(nano_egress_to_json(NULL));
    nano_egress_unref(empty);
    nano_egress_unref(e);
}

static void json_refcount_and_null_safety(void **state)
{
    (void)state;
    nano_egress *e = policy("{\"deny\":[\"10.0.0.0/8\"]}");
    assert_ptr_equal(nano_egress_ref(e), e);
    nano_egress_unref(e);
    DENIED(NULL, e, NULL, "10.0.0.1", 80); /* still alive: one reference left */
    nano_egress_unref(e);
    assert_null(nano_egress_ref(NULL));
    nano_egress_unref(NULL);
}

/* nano_egress_sockaddr: the text of an address and a port, as curl reports a connection's. */
static void sockaddr_from_text(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    assert_int_equal(nano_egress_sockaddr("10.1.2.3", 8080, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
    assert_int_equal(nano_egress_sockaddr("::1", 443, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 443);
    assert_int_equal(nano_egress_sockaddr("localhost", 80, &ss), NANO_EINVAL);
    assert_int_equal(nano_egress_sockaddr("[::1]", 80, &ss), NANO_EINVAL);
    assert_int_equal(nano_egress_sockaddr("10.0.0.1", 65536, &ss), NANO_EINVAL);
    assert_int_equal(nano_egress_sockaddr("", 80, &ss), NANO_EINVAL);
}

int main(int argc, char **argv)
{
    static const struct CMUnitTest parse_tests[] = {
        cmocka_unit_test(parse_every_entry_form),
        cmocka_unit_test(parse_errors_name_the_entry),
        cmocka_unit_test(parse_errors_of_shape),
        cmocka_unit_test(parse_limit_of_256_entries),
        cmocka_unit_test(parse_list_appends_or_changes_nothing),
    };
    static const struct CMUnitTest check_tests[] = {
        cmocka_unit_test(check_cidr_edges),
        cmocka_unit_test(check_v4_mapped_matches_as_v4),
        cmocka_unit_test(check_wildcard_is_not_the_apex),
        cmocka_unit_test(check_ports),
        cmocka_unit_test(check_precedence_order),
        cmocka_unit_test(check_without_policies),
        cmocka_unit_test(sockaddr_from_text),
        cmocka_unit_test(check_defaults),
        cmocka_unit_test(check_endpoints),
    };
    static const struct CMUnitTest json_tests[] = {
        cmocka_unit_test(json_round_trip_keeps_entries_as_given),
        cmocka_unit_test(json_refcount_and_null_safety),
    };
    const unit_group groups[] = {
        UNIT_GROUP("parse", parse_tests),
        UNIT_GROUP("check", check_tests),
        UNIT_GROUP("json", json_tests),
    };
    return unit_main(argc, argv, groups, sizeof groups / sizeof groups[0]);
}
