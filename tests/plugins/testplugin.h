/*  testplugin.h — what the test plugins share: an instance state and one
    way to record what happened (a line appended to the file named by the
    "file" config key), so the integration tests can read it back.  Each
    line is written with one write(2) on an O_APPEND file: instances in
    different threads or processes never interleave.                       */
#ifndef BUSD_TESTPLUGIN_H_INCLUDED
#define BUSD_TESTPLUGIN_H_INCLUDED

#include "busd/plugin.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;
    const char *file;           /*  NULL: record nothing                    */
} tp_state_t;

static inline int
tp_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state)
{
    tp_state_t *tp = calloc (1, sizeof (tp_state_t));
    if (!tp) {
        host->set_reason (self, "out of memory");
        return -ENOMEM;
    }
    tp->self = self;
    tp->host = host;
    tp->file = host->config_string (self, "file", NULL);
    *state = tp;
    return 0;
}

static inline void
tp_fini (void *state)
{
    free (state);
}

static inline long long
tp_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void __attribute__ ((format (printf, 2, 3)))
tp_record (tp_state_t *tp, const char *format, ...)
{
    if (!tp->file)
        return;
    char line [1024];
    va_list args;
    va_start (args, format);
    int len = vsnprintf (line, sizeof line - 1, format, args);
    va_end (args);
    if (len < 0)
        return;
    if ((size_t) len > sizeof line - 2)
        len = (int) sizeof line - 2;
    line [len++] = '\n';
    int fd = open (tp->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        tp->host->log (tp->self, BUSD_LOG_ERROR, "cannot open %s: %s", tp->file, strerror (errno));
        return;
    }
    if (write (fd, line, (size_t) len) != len)
        tp->host->log (tp->self, BUSD_LOG_ERROR, "cannot write %s: %s", tp->file, strerror (errno));
    close (fd);
}

#endif
