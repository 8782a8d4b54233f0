/* etcd_fixture.h: a real etcd for unit runners (unit_etcd, unit_cp_etcd): /usr/bin/etcd (or
 * $NANO_ETCD, or etcd from PATH) started once per process on 127.0.0.1 with free ports and a
 * temporary data directory, killed at exit (and, through PR_SET_PDEATHSIG, when the process
 * dies). Tests share it: each keeps to keys under a prefix of its own. */
#ifndef NANO_ETCD_FIXTURE_H
#define NANO_ETCD_FIXTURE_H

#include "unit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* etcd_fx_url: "etcd://127.0.0.1:PORT", starting etcd on first use (failing the test when it
 * does not answer within 15 s); skips the test, saying why, when there is no etcd binary. */
const char *etcd_fx_url(void);
/* etcd_fx_missing: NULL when etcd runs (starting it if need be), else why it does not: the
 * runner's skip message (exit 77 when nothing else failed). */
const char *etcd_fx_missing(void);

uint64_t etcd_fx_now_ms(void); /* CLOCK_MONOTONIC */
/* etcd_fx_fresh_url: "etcd://127.0.0.1:PORT/TAG/<16 random hex>", a prefix no test used
 * (etcd_fx_url: skips the test without etcd). */
void etcd_fx_fresh_url(char *out, size_t cap, const char *tag);
/* A socket bound to a free loopback port (*port), listening when listen_too. */
int etcd_fx_loopback_socket(bool listen_too, int *port);
/* A loopback port nothing listens on right now. */
int etcd_fx_free_port(void);

#endif
