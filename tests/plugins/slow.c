/*  slow.c — test plugin: sleeps "sleep_ms" (default 200) per event, then
    OK.  Records "slow topic" after each.                                   */
#include "testplugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    tp_state_t *tp = state;
    long ms = (long) tp->host->config_int (tp->self, "sleep_ms", 200);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) && errno == EINTR)
        ;
    tp_record (tp, "slow %s", event->topic);
    return BUSD_PLUGIN_OK;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "slow", .version = "1.0.0", .description = "test: takes its time",
    .init = tp_init, .on_event = s_on_event, .fini = tp_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
