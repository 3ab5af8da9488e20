/*  abi10.c — test plugin: built as for plugin ABI 1.0, i.e. with a
    descriptor that ends before check_config (added in 1.1).  busd must
    load it and read the missing field as "no check".                      */
#include "busd/plugin.h"
#include <stddef.h>

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    (void) state; (void) event;
    return BUSD_PLUGIN_OK;
}

static void
s_fini (void *state)
{
    (void) state;
}

static const busd_plugin_t s_plugin = {
    .size = offsetof (busd_plugin_t, check_config), .abi_major = 1, .abi_minor = 0,
    .name = "abi10", .version = "1.0.0", .description = "test: an ABI 1.0 plugin",
    .on_event = s_on_event, .fini = s_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
