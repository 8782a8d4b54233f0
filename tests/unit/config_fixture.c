/* config_fixture.c: what the files of the unit_config runner share (config_fixture.h). */
#include "config_fixture.h"

#include <string.h>

long cfg_route(const nano_config *cfg, const char *host, const char *path)
{
    return nano_config_route(cfg, host, host ? strlen(host) : 0, path, path ? strlen(path) : 0);
}
