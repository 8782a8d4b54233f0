/* egress_node.h: nano-dp's node-wide egress policy (docs/config.md#egress): the
 * --egress-allow/--egress-deny flags, nano.json's top-level "egress", and in multi-tenant modes
 * (--config, --control-plane) the built-in defaults plus this node's own endpoints (the status
 * port, nanocp's URLs). Main thread only, at startup, before the workers start: it reads a
 * file, resolves names and lists interfaces (blocking calls). */
#ifndef DP_EGRESS_NODE_H
#define DP_EGRESS_NODE_H

#include "error.h"
#include "options.h"

/* dp_egress_node_build: completes o->egress, the policy every worker shares:
 *  - a single APP.js: the flags' rules only (o->egress stays NULL without flags: no policy);
 *  - --config FILE: the file's top-level "egress" rules, then the flags';
 *  - --config or --control-plane: the built-in defaults on, and endpoints denied for the
 *    status listener (each interface address with its port when it listens on 0.0.0.0 or ::;
 *    skipped, with a log line, for port 0) and for nanocp's PUB and RPC URLs (resolved now; a
 *    name that does not resolve is logged as egress.endpoint_unresolved and skipped).
 * Returns 0, or NANO_EINVAL with err holding one line (a bad "egress" in the file, or more
 * than NANO_EGRESS_MAX_ENTRIES entries in a list once the file's and the flags' are joined);
 * o->egress is unchanged on error. */
int dp_egress_node_build(dp_options *o, nano_error *err);

#endif
