/* egress.c: egress policies (egress.h): parsing rules, matching a connection against them.
 *
 * A rule is an address range (family, 16 address bytes, prefix length) or a hostname (exact,
 * or a "*." wildcard for subdomains), with a port or 0 for any. Each keeps its text as given,
 * for messages and for to_json round trips. */
#include "egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <jansson.h>

#include "alloc.h"
#include "config.h"

typedef enum rule_kind { RULE_ADDR, RULE_HOST } rule_kind;

typedef struct egress_rule {
    rule_kind kind;
    int family;       /* RULE_ADDR: AF_INET or AF_INET6 */
    uint8_t addr[16]; /* RULE_ADDR: network bytes, masked to prefix (4 used for IPv4) */
    unsigned prefix;  /* RULE_ADDR: bits that must match */
    char *host;       /* RULE_HOST: lowercased, no trailing '.', no "*." */
    bool is_wildcard; /* RULE_HOST: "*.host": a subdomain of host, not host itself */
    uint16_t port;    /* 0: any port */
    char *text;       /* as given (trimmed) */
} egress_rule;

typedef struct rule_list {
    egress_rule *v;
    size_t n;
} rule_list;

struct nano_egress {
    atomic_int refs;
    rule_list allow, deny;
    bool has_defaults;
    rule_list endpoints; /* RULE_ADDR with a port; an unspecified address = any of this host */
};

/* The built-in defaults, in the order they are reported. IPv4-mapped IPv6 addresses need no
 * rules of their own: check() matches them as IPv4. */
typedef struct default_range {
    int family;
    uint8_t addr[16];
    unsigned prefix;
    const char *label;
} default_range;

static const default_range defaults[] = {
    {AF_INET, {127}, 8, "loopback"},          {AF_INET6, {[15] = 1}, 128, "loopback"},
    {AF_INET, {0}, 8, "unspecified address"}, {AF_INET6, {0}, 128, "unspecified address"},
    {AF_INET, {169, 254}, 16, "link-local"},  {AF_INET6, {0xfe, 0x80}, 10, "link-local"},
};

/* --- parsing ----------------------------------------------------------------------------- */

static void rule_fini(egress_rule *r)
{
    nano_free(r->host);
    nano_free(r->text);
}

static void list_fini(rule_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        rule_fini(&l->v[i]);
    nano_free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void list_push(rule_list *l, const egress_rule *r)
{
    l->v = nano_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = *r;
}

static void mask_bits(uint8_t *addr, size_t n_bytes, unsigned prefix)
{
    for (size_t i = 0; i < n_bytes; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * (unsigned)i : 0;
        addr[i] &= (uint8_t)(0xff00u >> keep);
    }
}

static bool is_v4_mapped(const uint8_t *a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, mapped, sizeof mapped) == 0;
}

/* "0".."65535" without sign or leading junk; 0 is refused (no one connects to port 0). */
static bool parse_port(const char *s, size_t len, uint16_t *out)
{
    if (len == 0 || len > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* An address or CIDR (text is NUL-terminated, without port or brackets) into r. */
static bool parse_addr(const char *text, egress_rule *r)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, text, len + 1);
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        const char *p = slash + 1;
        if (*p == '\0' || strlen(p) > 3 || (p[0] == '0' && p[1] != '\0'))
            return false;
        prefix = 0;
        for (; *p != '\0'; p++) {
            if (*p < '0' || *p > '9')
                return false;
            prefix = prefix * 10 + (*p - '0');
        }
        *slash = '\0';
    }
    memset(r->addr, 0, sizeof r->addr);
    if (inet_pton(AF_INET, buf, r->addr) == 1) {
        if (prefix > 32)
            return false;
        r->family = AF_INET;
        r->prefix = prefix < 0 ? 32 : (unsigned)prefix;
    } else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
        if (prefix > 128)
            return false;
        r->family = AF_INET6;
        r->prefix = prefix < 0 ? 128 : (unsigned)prefix;
        /* ::ffff:10.0.0.0/104 is 10.0.0.0/8: stored as IPv4 so that it matches what check()
         * turns mapped addresses into. A shorter prefix also covers non-mapped addresses and
         * stays IPv6. */
        if (is_v4_mapped(r->addr) && r->prefix >= 96) {
            memmove(r->addr, r->addr + 12, 4);
            memset(r->addr + 4, 0, 12);
            r->family = AF_INET;
            r->prefix -= 96;
        }
    } else {
        return false;
    }
    r->kind = RULE_ADDR;
    mask_bits(r->addr, sizeof r->addr, r->prefix); /* "10.1.2.3/8" is 10.0.0.0/8 */
    return true;
}

/* A hostname rule: nano_hostname_valid's syntax, but a name whose last label is all digits
 * would be a mistyped IPv4 address ("10.0.0.256"), as the URL Standard's IPv4 parser also
 * decides ("ends in a number"), so it is refused rather than taken as a name. */
static bool parse_host(const char *text, egress_rule *r)
{
    if (!nano_hostname_valid(text))
        return false;
    bool is_wildcard = text[0] == '*';
    const char *name = is_wildcard ? text + 2 : text;
    size_t len = strlen(name);
    if (name[len - 1] == '.')
        len--;
    size_t last = len;
    while (last > 0 && name[last - 1] != '.')
        last--;
    bool numeric = true;
    for (size_t i = last; i < len; i++)
        numeric = numeric && name[i] >= '0' && name[i] <= '9';
    if (numeric)
        return false;
    r->kind = RULE_HOST;
    r->is_wildcard = is_wildcard;
    r->host = nano_xstrndup(name, len);
    for (char *p = r->host; *p != '\0'; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return true;
}

/* One entry ("10.0.0.0/8", "[::1]:8080", "*.example.com:443") into r (owned strings). */
static bool parse_entry(const char *entry, size_t len, egress_rule *r)
{
    memset(r, 0, sizeof *r);
    char body[300];
    /* a JSON string may hold "\u0000": "1.2.3.4\u0000x" must not read as 1.2.3.4 */
    if (len == 0 || len >= sizeof body || memchr(entry, '\0', len) != NULL)
        return false;
    const char *colon = memchr(entry, ':', len);
    size_t n_colons = 0;
    for (size_t i = 0; i < len; i++)
        n_colons += entry[i] == ':';
    size_t body_len = len;
    const char *start = entry;
    if (entry[0] == '[') { /* [v6] or [v6]:port, as in URLs (RFC 3986 §3.2.2) */
        const char *close = memchr(entry, ']', len);
        if (close == NULL)
            return false;
        start = entry + 1;
        body_len = (size_t)(close - start);
        size_t rest = len - (size_t)(close + 1 - entry);
        if (rest > 0 && (close[1] != ':' || !parse_port(close + 2, rest - 1, &r->port)))
            return false;
        memcpy(body, start, body_len);
        body[body_len] = '\0';
        if (strchr(body, ':') == NULL) /* brackets are for IPv6 only */
            return false;
        return parse_addr(body, r);
    }
    /* One ':' separates a port; more are an IPv6 address without brackets (no port then, as
     * "::1:80" would be ambiguous). */
    if (n_colons == 1) {
        body_len = (size_t)(colon - entry);
        if (!parse_port(colon + 1, len - body_len - 1, &r->port))
            return false;
    }
    memcpy(body, start, body_len);
    body[body_len] = '\0';
    if (strchr(body, ':') != NULL || strchr(body, '/') != NULL) /* IPv6, or a CIDR */
        return parse_addr(body, r);
    return parse_addr(body, r) || parse_host(body, r);
}

/* Printable ASCII only, at most 64 characters: entries come from operators' input and end up
 * in one-line messages and logs. */
static const char *shown(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < cap; i++) {
        if (i == 64) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        out[o++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
    }
    out[o] = '\0';
    return out;
}

/* Parses and appends one entry; where names it ("egress.allow[2]"). */
static int add_entry(rule_list *l, const char *where, const char *entry, size_t len,
                     nano_error *err)
{
    char text[80];
    if (l->n >= NANO_EGRESS_MAX_ENTRIES)
        return nano_error_set(err, NANO_EINVAL, "egress_too_many",
                              "%s: too many entries; the limit is %d per list", where,
                              NANO_EGRESS_MAX_ENTRIES);
    egress_rule r;
    if (!parse_entry(entry, len, &r)) {
        rule_fini(&r);
        return nano_error_set(err, NANO_EINVAL, "egress_entry_invalid",
                              "%s: \"%s\" is not an address, CIDR or hostname (optionally "
                              "with :PORT)",
                              where, shown(entry, len, text, sizeof text));
    }
    r.text = nano_xstrndup(entry, len);
    list_push(l, &r);
    return 0;
}

nano_egress *nano_egress_new(void)
{
    nano_egress *e = nano_xcalloc(1, sizeof *e);
    atomic_init(&e->refs, 1);
    return e;
}

static int parse_array(const json_t *arr, const char *what, const char *key, rule_list *l,
                       nano_error *err)
{
    if (!json_is_array(arr))
        return nano_error_set(err, NANO_EINVAL, "egress_type", "%s.%s: must be an array of strings",
                              what, key);
    if (json_array_size(arr) > NANO_EGRESS_MAX_ENTRIES)
        return nano_error_set(err, NANO_EINVAL, "egress_too_many",
                              "%s.%s: %zu entries; the limit is %d", what, key,
                              json_array_size(arr), NANO_EGRESS_MAX_ENTRIES);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *v = json_array_get(arr, i);
        char where[200];
        snprintf(where, sizeof where, "%s.%s[%zu]", what, key, i);
        if (!json_is_string(v))
            return nano_error_set(err, NANO_EINVAL, "egress_type", "%s: must be a string", where);
        int rc = add_entry(l, where, json_string_value(v), json_string_length(v), err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int nano_egress_parse_json(const json_t *obj, const char *what, nano_egress **out, nano_error *err)
{
    if (what == NULL)
        what = "egress";
    if (!json_is_object(obj))
        return nano_error_set(err, NANO_EINVAL, "egress_type",
                              "%s: must be an object: {\"allow\": [...], \"deny\": [...]}", what);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        if (strcmp(key, "allow") != 0 && strcmp(key, "deny") != 0) {
            char text[80];
            return nano_error_set(err, NANO_EINVAL, "egress_unknown_key",
                                  "%s: unknown key \"%s\"; expected allow or deny", what,
                                  shown(key, strlen(key), text, sizeof text));
        }
    }
    nano_egress *e = nano_egress_new();
    int rc = 0;
    const json_t *allow = json_object_get(obj, "allow");
    const json_t *deny = json_object_get(obj, "deny");
    if (allow != NULL)
        rc = parse_array(allow, what, "allow", &e->allow, err);
    if (rc == 0 && deny != NULL)
        rc = parse_array(deny, what, "deny", &e->deny, err);
    if (rc == 0) {
        *out = e;
        e = NULL;
    }
    nano_egress_unref(e);
    return rc;
}

int nano_egress_parse_list(nano_egress *e, bool is_allow, const char *comma_list, nano_error *err)
{
    const char *flag = is_allow ? "--egress-allow" : "--egress-deny";
    rule_list *l = is_allow ? &e->allow : &e->deny;
    size_t n_before = l->n;
    int rc = 0;
    const char *p = comma_list != NULL ? comma_list : "";
    for (;;) {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (a == b) {
            rc = nano_error_set(err, NANO_EINVAL, "egress_entry_invalid",
                                "%s: empty entry in \"%s\"", flag, comma_list);
            break;
        }
        rc = add_entry(l, flag, a, (size_t)(b - a), err);
        if (rc != 0 || *end == '\0')
            break;
        p = end + 1;
    }
    if (rc != 0) { /* nothing half-applied */
        for (size_t i = n_before; i < l->n; i++)
            rule_fini(&l->v[i]);
        l->n = n_before;
    }
    return rc;
}

void nano_egress_enable_defaults(nano_egress *node)
{
    node->has_defaults = true;
}

int nano_egress_deny_endpoint(nano_egress *node, const struct sockaddr *addr)
{
    egress_rule r = {.kind = RULE_ADDR};
    if (addr == NULL)
        return NANO_EINVAL;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        r.family = AF_INET;
        r.prefix = 32;
        memcpy(r.addr, &in->sin_addr, 4);
        r.port = ntohs(in->sin_port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        r.family = AF_INET6;
        r.prefix = 128;
        memcpy(r.addr, &in6->sin6_addr, 16);
        r.port = ntohs(in6->sin6_port);
        if (is_v4_mapped(r.addr)) {
            memmove(r.addr, r.addr + 12, 4);
            memset(r.addr + 4, 0, 12);
            r.family = AF_INET;
            r.prefix = 32;
        }
    } else {
        return NANO_EINVAL;
    }
    if (r.port == 0)
        return NANO_EINVAL;
    list_push(&node->endpoints, &r);
    return 0;
}

nano_egress *nano_egress_ref(nano_egress *e)
{
    if (e != NULL)
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

void nano_egress_unref(nano_egress *e)
{
    if (e == NULL || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    list_fini(&e->allow);
    list_fini(&e->deny);
    list_fini(&e->endpoints);
    nano_free(e);
}

/* --- matching ------------------------------------------------------------------------------ */

/* A connection's target, normalized once: IPv4-mapped IPv6 becomes IPv4. */
typedef struct target {
    int family;
    uint8_t addr[16];
    uint16_t port;
    const char *host; /* NULL: no hostname rule matches */
    size_t host_len;
} target;

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
    size_t whole = prefix / 8;
    if (memcmp(a, b, whole) != 0)
        return false;
    unsigned rest = prefix % 8;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (a[whole] & mask) == (b[whole] & mask);
}

static bool host_match(const egress_rule *r, const target *t)
{
    if (t->host == NULL)
        return false;
    size_t n = strlen(r->host);
    if (!r->is_wildcard)
        return t->host_len == n && strncasecmp(t->host, r->host, n) == 0;
    /* "*.example.com": at least one label before ".example.com"; not the apex */
    return t->host_len > n + 1 && t->host[t->host_len - n - 1] == '.' &&
           strncasecmp(t->host + t->host_len - n, r->host, n) == 0;
}

static bool rule_match(const egress_rule *r, const target *t)
{
    if (r->port != 0 && r->port != t->port)
        return false;
    if (r->kind == RULE_HOST)
        return host_match(r, t);
    return r->family == t->family && prefix_match(r->addr, t->addr, r->prefix);
}

static const egress_rule *list_match(const rule_list *l, const target *t)
{
    for (size_t i = 0; i < l->n; i++)
        if (rule_match(&l->v[i], t))
            return &l->v[i];
    return NULL;
}

static bool is_any_of_this_host(const target *t)
{
    static const uint8_t zero[16];
    if (t->family == AF_INET)
        return t->addr[0] == 127 || t->addr[0] == 0;
    return memcmp(t->addr, zero, 15) == 0 && (t->addr[15] == 0 || t->addr[15] == 1);
}

static bool endpoint_match(const egress_rule *r, const target *t)
{
    static const uint8_t zero[16];
    if (r->port != t->port)
        return false;
    if (memcmp(r->addr, zero, sizeof zero) == 0) /* 0.0.0.0 or ::: any address of this host */
        return is_any_of_this_host(t);
    return r->family == t->family && memcmp(r->addr, t->addr, 16) == 0;
}

/* "10.1.2.3", "[::1]:9000", "api.example.com:443": what the reason names. */
static void describe(const target *t, bool by_host, bool with_port, char *out, size_t cap)
{
    char a[INET6_ADDRSTRLEN];
    if (by_host) {
        snprintf(out, cap, "%.*s", (int)t->host_len, t->host);
    } else {
        inet_ntop(t->family, t->addr, a, sizeof a);
        snprintf(out, cap, t->family == AF_INET6 && with_port ? "[%s]" : "%s", a);
    }
    if (with_port) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, ":%u", (unsigned)t->port);
    }
}

static bool deny_by_rule(const egress_rule *r, const target *t, const char *whose, char *why,
                         size_t why_len)
{
    if (why != NULL && why_len > 0) {
        char subject[300];
        describe(t, r->kind == RULE_HOST, r->port != 0, subject, sizeof subject);
        snprintf(why, why_len, "%s is denied by %s egress policy (%s)", subject, whose, r->text);
    }
    return false;
}

static bool deny_by_default(const target *t, const char *label, char *why, size_t why_len)
{
    if (why != NULL && why_len > 0) {
        char subject[300];
        describe(t, false, true, subject, sizeof subject);
        snprintf(why, why_len, "%s is denied by default (%s)", subject, label);
    }
    return false;
}

bool nano_egress_check(const nano_egress *node, const nano_egress *app, const char *host,
                       const struct sockaddr *addr, char *why, size_t why_len)
{
    target t = {.host = host, .host_len = host != NULL ? strlen(host) : 0};
    if (t.host_len > 0 && host[t.host_len - 1] == '.') /* tolerated, though callers strip it */
        t.host_len--;
    if (addr != NULL && addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        t.family = AF_INET;
        memcpy(t.addr, &in->sin_addr, 4);
        t.port = ntohs(in->sin_port);
    } else if (addr != NULL && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        t.family = AF_INET6;
        memcpy(t.addr, &in6->sin6_addr, 16);
        t.port = ntohs(in6->sin6_port);
        /* ::ffff:127.0.0.1 reaches 127.0.0.1 through a dual-stack socket: match it as such */
        if (is_v4_mapped(t.addr)) {
            memmove(t.addr, t.addr + 12, 4);
            memset(t.addr + 4, 0, 12);
            t.family = AF_INET;
        }
    } else {
        if (why != NULL && why_len > 0)
            snprintf(why, why_len, "unsupported address family");
        return false;
    }

    const egress_rule *r;
    if (node != NULL && (r = list_match(&node->deny, &t)) != NULL)
        return deny_by_rule(r, &t, "the node's", why, why_len);
    if (app != NULL && (r = list_match(&app->deny, &t)) != NULL)
        return deny_by_rule(r, &t, "the app's", why, why_len);
    if (app != NULL && list_match(&app->allow, &t) != NULL)
        return true;
    if (node != NULL && list_match(&node->allow, &t) != NULL)
        return true;
    if (node == NULL || !node->has_defaults)
        return true;
    for (size_t i = 0; i < node->endpoints.n; i++)
        if (endpoint_match(&node->endpoints.v[i], &t))
            return deny_by_default(&t, "this node's own endpoint", why, why_len);
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        const default_range *d = &defaults[i];
        if (d->family == t.family && prefix_match(d->addr, t.addr, d->prefix))
            return deny_by_default(&t, d->label, why, why_len);
    }
    return true;
}

/* --- output -------------------------------------------------------------------------------- */

static json_t *list_to_json(const rule_list *l)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < l->n; i++)
        json_array_append_new(arr, json_string(l->v[i].text));
    return arr;
}

json_t *nano_egress_to_json(const nano_egress *e)
{
    if (e == NULL)
        return NULL;
    json_t *obj = json_object();
    if (e->allow.n > 0)
        json_object_set_new(obj, "allow", list_to_json(&e->allow));
    if (e->deny.n > 0)
        json_object_set_new(obj, "deny", list_to_json(&e->deny));
    return obj;
}

static bool list_equal(const rule_list *a, const rule_list *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        const egress_rule *x = &a->v[i], *y = &b->v[i];
        if (x->kind != y->kind || x->port != y->port)
            return false;
        if (x->kind == RULE_HOST &&
            (x->is_wildcard != y->is_wildcard || strcmp(x->host, y->host) != 0))
            return false;
        if (x->kind == RULE_ADDR && (x->family != y->family || x->prefix != y->prefix ||
                                     memcmp(x->addr, y->addr, sizeof x->addr) != 0))
            return false;
    }
    return true;
}

bool nano_egress_equal(const nano_egress *a, const nano_egress *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return a->has_defaults == b->has_defaults && list_equal(&a->allow, &b->allow) &&
           list_equal(&a->deny, &b->deny) && list_equal(&a->endpoints, &b->endpoints);
}

int nano_egress_sockaddr(const char *ip, unsigned port, struct sockaddr_storage *out)
{
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;

    memset(out, 0, sizeof(*out));
    if (port > 65535)
        return NANO_EINVAL;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    memset(out, 0, sizeof(*out));
    return NANO_EINVAL;
}
