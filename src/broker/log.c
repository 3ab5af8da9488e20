/*  log.c — log level and destination (see log.h).                          */
#include "log.h"
#include <errno.h>

int busd_log_level = LOG_LVL_INFO;

int
log_set_level (const char *name)
{
    static const char *names [] = { "debug", "info", "notice", "warning", "error" };
    for (int i = 0; i < 5; i++)
        if (streq (name, names [i])) {
            busd_log_level = i;
            return 0;
        }
    return -EINVAL;
}

void
log_use_syslog (bool on)
{
    zsys_set_logident ("busd");
    zsys_set_logsystem (on);
    zsys_set_logstream (on ? NULL : stderr);
}
