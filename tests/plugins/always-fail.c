/*  always-fail.c — test plugin: FAIL with reason "always fails" (a dead
    letter on the first attempt).  Records "fail topic attempt".           */
#include "testplugin.h"

static busd_plugin_result_t
s_on_event (void *state, const busd_plugin_event_t *event)
{
    tp_state_t *tp = state;
    tp_record (tp, "fail %s %u", event->topic, event->attempt);
    tp->host->set_reason (tp->self, "always fails");
    return BUSD_PLUGIN_FAIL;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "always-fail", .version = "1.0.0", .description = "test: dead-letters everything",
    .init = tp_init, .on_event = s_on_event, .fini = tp_fini
};
BUSD_PLUGIN_DECLARE (s_plugin)
