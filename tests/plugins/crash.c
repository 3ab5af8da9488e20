/*  crash.c — test plugin: abort()s on an event's first attempt (a crashing
    plugin, for busd-plugin-host's supervision), handles later attempts and
    records "ok topic attempt payload".                                     */
#include "testplugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    tp_state_t *tp = state;
    if (event->attempt == 1) {
        tp_record (tp, "crash %s %u", event->topic, event->attempt);
        abort ();
    }
    tp_record (tp, "ok %s %u %.*s", event->topic, event->attempt, (int) event->size,
               (const char *) event->payload);
    return BUSD_PLUGIN_OK;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "crash", .version = "1.0.0", .description = "test: crashes on first attempts",
    .init = tp_init, .on_event = s_on_event, .fini = tp_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
