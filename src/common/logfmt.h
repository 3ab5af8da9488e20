/*  logfmt.h — how every busd program stamps and shapes a log line.

    Retry and backoff timing is invisible with whole seconds, and logs are
    read across hosts and time zones: a line starts with an ISO 8601 time
    with milliseconds and the zone offset.  One event is one line, so a
    message that arrives with embedded newlines (a list of configuration
    errors) is joined with "; " rather than split over lines that grep and
    journald would tear apart.                                              */
#ifndef BUSP_LOGFMT_H_INCLUDED
#define BUSP_LOGFMT_H_INCLUDED

#include <stddef.h>

/*  The local time now as "2026-12-01T04:11:21.123+01:00".                  */
void busp_log_stamp (char *out, size_t size);

/*  Make text one line in place: trailing newlines go, inner ones (and the
    blanks after them) become "; " when there is room, else one space.    */
void busp_log_one_line (char *text, size_t size);

#endif
