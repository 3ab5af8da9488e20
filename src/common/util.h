/*  util.h — small chores more than one busd program does the same way.

    Reading a configuration file whole, collecting error messages in a
    fixed buffer, and catching the stop and reload signals: busd (broker
    config and main), the plugin runtime and busd-plugin-host each had a
    copy.  One copy here keeps their behaviour, and their messages, alike. */
#ifndef BUSP_UTIL_H_INCLUDED
#define BUSP_UTIL_H_INCLUDED

#include <stddef.h>

/*  Read the whole file at path into a malloc'd buffer, NUL-terminated so it
    can be parsed in place, its length (0 for an empty file) in *size_p.
    0; -ENOMEM; or -errno when the file cannot be opened or read, with
    *text_p and *size_p untouched.                                           */
int busp_read_file (const char *path, char **text_p, size_t *size_p);

/*  printf onto the end of the NUL-terminated text in buf (size bytes in
    all), truncating what does not fit; a full buffer is left as it is.     */
void busp_appendf (char *buf, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

/*  Send SIGTERM, SIGINT and SIGHUP to handler, without SA_RESTART: a call
    blocked in zmq_poll or waitpid returns EINTR, so the caller's loop sees
    the flag the handler set at once.  0, or -errno.                         */
int busp_catch_signals (void (*handler) (int));

/*  Standard base64 (RFC 4648 §4, padding optional) to bytes: a malloc'd
    buffer and its length in *size_p, or NULL when text is not base64 or
    memory is short.  busd-ctl (dlq show) and busd-plugin-driver
    (payload_base64) read what busd and busd-sub write.                     */
unsigned char *busp_base64_decode (const char *text, size_t *size_p);

#endif
