/*  log.h — levelled logging on top of czmq's zsys (stderr or syslog).

    zsys has no level filter, so the macros check the level first: a debug
    line costs one compare when debug is off.                               */
#ifndef BUSD_LOG_H_INCLUDED
#define BUSD_LOG_H_INCLUDED

#include <czmq.h>

enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_NOTICE, LOG_LVL_WARNING, LOG_LVL_ERROR };
extern int busd_log_level;

/*  0, or -EINVAL for an unknown level name.                                 */
int log_set_level (const char *name);
void log_use_syslog (bool on);

#define log_debug(...)   do { if (busd_log_level <= LOG_LVL_DEBUG) zsys_debug (__VA_ARGS__); } while (0)
#define log_info(...)    do { if (busd_log_level <= LOG_LVL_INFO) zsys_info (__VA_ARGS__); } while (0)
#define log_notice(...)  do { if (busd_log_level <= LOG_LVL_NOTICE) zsys_notice (__VA_ARGS__); } while (0)
#define log_warning(...) do { if (busd_log_level <= LOG_LVL_WARNING) zsys_warning (__VA_ARGS__); } while (0)
#define log_error(...)   do { zsys_error (__VA_ARGS__); } while (0)

#endif
