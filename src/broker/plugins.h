/*  plugins.h — busd's plugin host: the configured plugins, their modules
    and instance threads, reload, shutdown, and their statistics in CTL and
    /metrics.

    Everything here runs on the broker's thread (main thread), which is
    also the only thread that reads or changes the configuration, so the
    registry needs no lock; the instances (src/pluginhost) keep their own
    threads and talk to the broker over inproc:// like any client.  The
    broker thread never waits for a plugin: starting, replacing and removing
    only ask, and a timer on the broker's loop reaps instances once their
    threads have finished.                                                   */
#ifndef BUSD_PLUGINS_H_INCLUDED
#define BUSD_PLUGINS_H_INCLUDED

#include "broker.h"

#define PLUGINS_ENDPOINT "inproc://busd-plugins"

typedef struct plugins plugins_t;

/*  Set the broker's plugin hooks and start the plugins of its current
    configuration.  Call after broker_bind (and after dropping privileges),
    before broker_run: the instances then connect while the loop starts.
    Problems with single plugins are logged and shown in stats; they never
    stop busd.  Returns NULL only when out of memory.                        */
plugins_t *plugins_new (broker_t *broker);

/*  Apply a new configuration (SIGHUP): add, replace and remove plugins, and
    call reload on the unchanged ones.  Logs what changed.                   */
void plugins_reload (plugins_t *self, const config_t *config);

/*  Stop and unload everything.  Returns 0, or -EBUSY when a plugin thread
    did not stop (stuck in on_event): its module is left loaded and the
    caller should exit without tearing down ZeroMQ.                          */
int plugins_destroy (plugins_t **self_p);

/*  Check the "plugins" key of a configuration: every field, unique names,
    and with check_files also that each enabled plugin's file exists (what
    `busd --check-config` adds; at start a missing file is only logged).
    Appends one line per problem to errors; 0 or -EINVAL.                    */
int plugins_check_config (const config_t *config, bool check_files, char *errors, size_t size);

#endif
