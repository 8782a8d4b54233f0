/* config_fixture.h: what the files of the unit_config runner share (config_fixture.c). Groups:
 * route, refcount, validate and compare (test_config.c, with main), json (test_config_json.c),
 * spec (test_config_spec.c). */
#ifndef NANO_CONFIG_FIXTURE_H
#define NANO_CONFIG_FIXTURE_H

#include "unit.h"

#include <jansson.h>

#include "config.h"

/* sha256("abc") */
#define CFG_SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* nano_config_route with NUL-terminated host and path (either may be NULL). */
long cfg_route(const nano_config *cfg, const char *host, const char *path);

/* The groups defined outside test_config.c, for its main. */
extern const unit_group unit_config_json, unit_config_spec;

#endif
