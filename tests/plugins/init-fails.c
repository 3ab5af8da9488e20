/*  init-fails.c — test plugin: init refuses with "missing api_key", the
    way a plugin whose configuration lacks a required key should.           */
#include "busd/plugin.h"
#include <errno.h>

static int
s_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state)
{
    if (!host->config_string (self, "api_key", NULL)) {
        host->set_reason (self, "missing api_key");
        return -EINVAL;         /*  a configuration error: no restart helps  */
    }
    *state = NULL;
    return 0;
}

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
    BUSD_PLUGIN_HEADER,
    .name = "init-fails", .version = "1.0.0", .description = "test: init fails",
    .init = s_init, .on_event = s_on_event, .fini = s_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
