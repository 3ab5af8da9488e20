/*  fatal.c — test plugin: returns FATAL ("database schema is gone"), which
    disables the instance; the event is retried by the broker.  Records
    "fatal topic attempt".                                                   */
#include "testplugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    tp_state_t *tp = state;
    tp_record (tp, "fatal %s %u", event->topic, event->attempt);
    tp->host->set_reason (tp->self, "database schema is gone");
    return BUSD_PLUGIN_FATAL;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "fatal", .version = "1.0.0", .description = "test: gives up for good",
    .init = tp_init, .on_event = s_on_event, .fini = tp_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
