/*  abi-mismatch.c — test plugin: claims plugin ABI 99.0, which busd must
    refuse (naming the file and both versions) without calling anything.    */
#include "busd/plugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    return BUSD_PLUGIN_OK;
}

static void
s_fini (void *state)
{
}

static const busd_plugin_t s_plugin = {
    .size = sizeof (busd_plugin_t), .abi_major = 99, .abi_minor = 0,
    .name = "abi-mismatch", .version = "1.0.0", .description = "test: from the future",
    .on_event = s_on_event, .fini = s_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
