/*  retry-then-ok.c — test plugin: RETRY with set_retry_delay (config
    "delay_ms", default 100) on attempts before "ok_on" (default 3), then OK.
    Records "attempt N at MS topic" per call (MS: monotonic milliseconds).  */
#include "testplugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    tp_state_t *tp = state;
    tp_record (tp, "attempt %u at %lld %s", event->attempt, tp_now_ms (), event->topic);
    if (event->attempt < tp->host->config_int (tp->self, "ok_on", 3)) {
        tp->host->set_retry_delay (tp->self, (uint32_t) tp->host->config_int (tp->self, "delay_ms", 100));
        tp->host->set_reason (tp->self, "not yet (attempt %u)", event->attempt);
        return BUSD_PLUGIN_RETRY;
    }
    return BUSD_PLUGIN_OK;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "retry-then-ok", .version = "1.0.0", .description = "test: retries, then succeeds",
    .init = tp_init, .on_event = s_on_event, .fini = tp_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
