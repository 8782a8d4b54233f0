/* snapshot.h: the whole config as data planes receive it on a snapshot request (msg.h
 * SNAPAPP), built from the store.
 *
 * One app that cannot be put in a snapshot (a store read fails for it, or a value stored before
 * today's checks is one the wire refuses) must not stop the fleet: it is sent as
 * {app, withheld: "why"} and the others go as usual. A data plane keeps what it runs of a
 * withheld app. apps.get builds the same SNAPAPP to tell an operator whether, and why, an app
 * is withheld (service.c), so the two can never disagree. Loop thread, like the service. */
#ifndef CP_SNAPSHOT_H
#define CP_SNAPSHOT_H

#include <jansson.h>

#include "error.h"
#include "service.h"

/* cp_snapshot_app: the SNAPAPP of one app row (store.h's app shape, as cp_store_app_get or
 * cp_store_app_list give it; borrowed), secrets decrypted, checked with nano_msg_check_snapapp.
 * Call inside a read (or write) transaction. Returns 0 and *out (owned), or an error with err
 * filled: "store" (a read failed) or the check's id (a value the wire refuses), message naming
 * the field, in printable ASCII (a quoted bad byte becomes '?'). */
int cp_snapshot_app(cp_service *svc, const json_t *row, json_t **out, nano_error *err);

/* cp_snapshot_build: {seq, apps: [SNAPAPP]} (returned owned), in one read transaction so that
 * seq and content agree. An app cp_snapshot_app refuses is {app, withheld: message} and is
 * logged (cp.snapshot_app_withheld); *n_withheld (may be NULL) counts them. Fails only when
 * the read itself cannot start or the app list cannot be read: err filled. */
int cp_snapshot_build(cp_service *svc, json_t **out, size_t *n_withheld, nano_error *err);

#endif
