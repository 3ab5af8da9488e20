/*  log.h — levelled logging to stderr or syslog.

    The macros check the level first, so a debug line costs one compare
    when debug is off.  Lines on stderr carry an ISO 8601 time with
    milliseconds and zone (src/common/logfmt.h); syslog and the journal
    stamp lines themselves.  Every event is one line.                        */
#ifndef BUSD_LOG_H_INCLUDED
#define BUSD_LOG_H_INCLUDED

#include <czmq.h>

enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_NOTICE, LOG_LVL_WARNING, LOG_LVL_ERROR };
extern int busd_log_level;

/*  0, or -EINVAL for an unknown level name.                                 */
int log_set_level (const char *name);
void log_use_syslog (bool on);
/*  Write one line at level (LOG_LVL_*), whatever the threshold.            */
void log_write (int level, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

#define log_debug(...)   do { if (busd_log_level <= LOG_LVL_DEBUG) log_write (LOG_LVL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)    do { if (busd_log_level <= LOG_LVL_INFO) log_write (LOG_LVL_INFO, __VA_ARGS__); } while (0)
#define log_notice(...)  do { if (busd_log_level <= LOG_LVL_NOTICE) log_write (LOG_LVL_NOTICE, __VA_ARGS__); } while (0)
#define log_warning(...) do { if (busd_log_level <= LOG_LVL_WARNING) log_write (LOG_LVL_WARNING, __VA_ARGS__); } while (0)
#define log_error(...)   do { log_write (LOG_LVL_ERROR, __VA_ARGS__); } while (0)

#endif
