/* egress.h: the egress policy model (docs/config.md "egress"): which addresses and hosts an
 * app's outbound fetch() may connect to. A policy is lists of allow and deny rules (addresses, CIDRs and
 * hostnames, each with an optional port); a node policy may also carry the built-in defaults
 * (no loopback, link-local or unspecified addresses, not the node's own endpoints).
 *
 * Building (new, parse_*, enable_defaults, deny_endpoint) is single-threaded; once built a
 * policy is immutable and refcounted (atomic), so ref/unref, check and to_json are safe from any
 * thread. Enforcement is the outbound fetch's: it calls nano_egress_check before each connect. */
#ifndef NANO_EGRESS_H
#define NANO_EGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct sockaddr;
struct json_t; /* jansson's */

typedef struct nano_egress nano_egress;

/* At most this many entries per list (allow, deny), however they were added. */
#define NANO_EGRESS_MAX_ENTRIES 256

/* nano_egress_parse_json: a policy from {"allow": [...], "deny": [...]} (either key optional;
 * no other keys). Entries are strings: an IPv4/IPv6 address or CIDR ("10.0.0.0/8", "fd00::/8",
 * "::1"; host bits below the prefix are ignored), or a hostname ("api.example.com";
 * "*.example.com" matches subdomains only, not the apex), each optionally with a port
 * ("10.0.0.5:8080", "[::1]:8080", "db.internal:5432"). what names the object in messages
 * ("egress", "apps[1].egress"). Returns 0 and a new policy (one reference, the caller's) in
 * *out, or NANO_EINVAL with err holding one line naming the entry, e.g.
 *   egress.allow[2]: "10.0.0.0/33" is not an address, CIDR or hostname
 * obj is borrowed. Any thread. */
int nano_egress_parse_json(const struct json_t *obj, const char *what, nano_egress **out,
                           nano_error *err);

/* nano_egress_parse_list: appends the entries of a comma-separated list (spaces around an entry
 * are ignored; an empty entry is an error) to e's allow or deny list, for the --egress-allow
 * and --egress-deny flags of nano-dp and nanoctl. On error returns NANO_EINVAL with err
 * naming the flag and the entry (--egress-deny: "10.0.0.0/33" is not an address, CIDR or
 * hostname) and leaves e as it was. e must not be shared yet. */
int nano_egress_parse_list(nano_egress *e, bool is_allow, const char *comma_list, nano_error *err);

/* nano_egress_new: an empty policy (allows everything), one reference, the caller's. */
nano_egress *nano_egress_new(void);

/* nano_egress_enable_defaults: marks node as a node policy with the built-in defaults on: deny
 * loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::) and link-local (169.254.0.0/16,
 * fe80::/10) addresses, IPv4-mapped forms included, plus the endpoints added with
 * nano_egress_deny_endpoint. Allow rules (the app's, then the node's) override the defaults.
 * node must not be shared yet. */
void nano_egress_enable_defaults(nano_egress *node);

/* nano_egress_deny_endpoint: adds an endpoint of the node itself (the status port, nanocp) to
 * the built-in defaults: addr (sockaddr_in or sockaddr_in6, borrowed) with its port, which is
 * required. An unspecified address (0.0.0.0 or ::) stands for every address of this host: it
 * matches unspecified and loopback addresses of either family with that port; the caller adds
 * the host's interface addresses as endpoints of their own. Takes effect only with the
 * defaults enabled. Returns 0, or NANO_EINVAL (not IPv4/IPv6, or port 0). node must not be
 * shared yet. */
int nano_egress_deny_endpoint(nano_egress *node, const struct sockaddr *addr);

/* References: ref returns e; unref frees at zero on whichever thread drops the last one.
 * Both NULL-safe. */
nano_egress *nano_egress_ref(nano_egress *e);
void nano_egress_unref(nano_egress *e);

/* nano_egress_check: may an app connect to addr (resolved, port included; sockaddr_in or
 * sockaddr_in6) for the URL host `host` (lowercased, no trailing dot; may be an IP literal;
 * NULL: no hostname rule matches)? node or app may be NULL (no policy). The first match
 * decides, in this order: node deny, app deny, app allow, node allow, the node's built-in
 * defaults (deny); otherwise allow. Hostname rules match host, address rules the resolved
 * address, both with the rule's port if it has one. IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d) are matched as IPv4. Returns true to allow; on deny writes a one-line
 * reason to why (truncated to why_len; why may be NULL), e.g.
 *   127.0.0.1:9000 is denied by default (loopback)
 *   10.1.2.3 is denied by the app's egress policy (10.0.0.0/8)
 * An address of another family is denied (unsupported address family). No allocation; any
 * thread. */
bool nano_egress_check(const nano_egress *node, const nano_egress *app, const char *host,
                       const struct sockaddr *addr, char *why, size_t why_len);

/* nano_egress_sockaddr: the address whose text is ip (IPv4 dotted or IPv6, no brackets) with
 * port, as nano_egress_check takes it. Returns 0, or NANO_EINVAL for text that is neither. */
struct sockaddr_storage;
int nano_egress_sockaddr(const char *ip, unsigned port, struct sockaddr_storage *out);

/* nano_egress_to_json: the policy as given, {"allow": [...], "deny": [...]} (a key only when
 * its list is not empty; entries as written), which nano_egress_parse_json reads back to the
 * same rules. Defaults and endpoints are not part of it. Returns a new reference; NULL for a
 * NULL e. Any thread. */
struct json_t *nano_egress_to_json(const nano_egress *e);

/* nano_egress_equal: the same allow and deny entries in the same order (defaults and endpoints
 * included). NULL equals only NULL. For comparing an app across snapshots. */
bool nano_egress_equal(const nano_egress *a, const nano_egress *b);

#endif
