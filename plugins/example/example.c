/*  example.c — the smallest complete busd plugin, walked through in
    doc/plugins.md.

    It counts the events it sees, logs each one at debug level, and every
    "report_every" events (its one setting) logs the count at info level.
    Everything a real plugin needs is here and nothing else: per-instance
    state behind the state pointer (instances run in parallel threads, so no
    globals), a descriptor filled with BUSD_PLUGIN_HEADER, and the one
    exported symbol from BUSD_PLUGIN_DECLARE.  Build it on its own with

        cc -std=gnu11 -shared -fPIC -fvisibility=hidden \
           $(pkg-config --cflags libbusd) -o example.so example.c           */
#include <busd/plugin.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    busd_plugin_instance_t *self;       //  the host's handle, for host calls
    const busd_plugin_host_t *host;
    int64_t report_every;
    uint64_t count;
} example_t;

static int
s_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state_)
{
    int64_t report_every = host->config_int (self, "report_every", 1000);
    if (report_every < 1) {
        //  The reason is what the operator reads in the log: say which key
        //  is wrong and what would be right.
        host->set_reason (self, "config: \"report_every\" is %" PRId64 "; use 1 or more",
                          report_every);
        return -EINVAL;
    }
    example_t *state = calloc (1, sizeof *state);
    if (!state) {
        host->set_reason (self, "out of memory");
        return -ENOMEM;
    }
    state->self = self;
    state->host = host;
    state->report_every = report_every;
    *state_ = state;
    return 0;
}

static busd_plugin_result_t
s_on_event (void *state_, const busd_plugin_event_t *event)
{
    example_t *state = state_;
    state->count++;
    //  Event fields are only valid until we return: log them, don't keep them.
    state->host->log (state->self, BUSD_LOG_DEBUG, "event %" PRIu64 ": %s (%zu bytes, attempt %u)",
                      state->count, event->topic, event->size, (unsigned) event->attempt);
    if (state->count % (uint64_t) state->report_every == 0)
        state->host->log (state->self, BUSD_LOG_INFO, "%" PRIu64 " events so far", state->count);
    state->host->metric_add (state->self, "events", 1);
    return BUSD_PLUGIN_OK;          //  ACK: the broker forgets the event
}

static void
s_fini (void *state_)
{
    example_t *state = state_;
    state->host->log (state->self, BUSD_LOG_INFO, "stopping after %" PRIu64 " events", state->count);
    free (state);
}

//  Optional (plugin ABI 1.1): say what is wrong with the configuration
//  before anything starts.  busd --check-config calls it, so a mistake
//  fails `systemctl reload` instead of the instance after the reload.  One
//  set_reason per problem, every problem in one run.
static int
s_check_config (busd_plugin_instance_t *self, const busd_plugin_host_t *host)
{
    //  config_int answers the default for a missing key and for a value of
    //  another type: two different defaults tell the cases apart.
    int64_t a = host->config_int (self, "report_every", 1);
    int64_t b = host->config_int (self, "report_every", 2);
    if (a != b && strstr (host->config_json (self), "\"report_every\"")) {
        host->set_reason (self, "\"report_every\" must be a whole number");
        return -EINVAL;
    }
    if (a < 1) {
        host->set_reason (self, "\"report_every\" is %" PRId64 "; use 1 or more", a);
        return -EINVAL;
    }
    return 0;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "example",
    .version = "1.0",
    .description = "count events and log them",
    .init = s_init,
    .on_event = s_on_event,
    .fini = s_fini,
    .check_config = s_check_config
};

BUSD_PLUGIN_DECLARE (s_plugin)
