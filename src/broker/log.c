/*  log.c — log level, destination and line format (see log.h).

    busd used to log through zsys, whose stamp has whole seconds and no
    zone; the line is now built here.  czmq's own rare messages still go
    through zsys, which is pointed at the same destination.                 */
#include "log.h"
#include "logfmt.h"
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <syslog.h>

int busd_log_level = LOG_LVL_INFO;
static bool s_syslog = false;
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

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
    if (on && !s_syslog)
        openlog ("busd", LOG_PID, LOG_DAEMON);
    s_syslog = on;
}

void
log_write (int level, const char *format, ...)
{
    static const char letters [] = "DINWE";
    static const int priorities [] = { LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR };
    if (level < LOG_LVL_DEBUG || level > LOG_LVL_ERROR)
        level = LOG_LVL_ERROR;
    char text [4096];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    busp_log_one_line (text, sizeof text);
    if (s_syslog) {
        syslog (priorities [level], "%s", text);
        return;
    }
    char stamp [40];
    busp_log_stamp (stamp, sizeof stamp);
    //  Plugin threads log too: one line must not interleave with another.
    pthread_mutex_lock (&s_lock);
    fprintf (stderr, "%c: %s %s\n", letters [level], stamp, text);
    fflush (stderr);
    pthread_mutex_unlock (&s_lock);
}
