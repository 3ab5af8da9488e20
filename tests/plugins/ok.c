/*  ok.c — test plugin: handles every event.  Records "topic attempt
    payload" per event, counts them in the custom metric "events", and when
    config "forward_to" is set publishes each payload there as well (to test
    host->publish).                                                          */
#include "testplugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    tp_state_t *tp = state;
    tp_record (tp, "%s %u %.*s", event->topic, event->attempt, (int) event->size,
               (const char *) event->payload);
    tp->host->metric_add (tp->self, "events", 1);
    const char *forward = tp->host->config_string (tp->self, "forward_to", NULL);
    if (forward && tp->host->publish (tp->self, forward, event->payload, event->size, NULL,
                                      NULL, 1000))
        return BUSD_PLUGIN_RETRY;
    return BUSD_PLUGIN_OK;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "ok", .version = "1.0.0", .description = "test: handles every event",
    .init = tp_init, .on_event = s_on_event, .fini = tp_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
