/*  logfmt.c — log line stamps and shape (see logfmt.h).                   */
#include "logfmt.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

void
busp_log_stamp (char *out, size_t size)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    time_t secs = tv.tv_sec;
    struct tm tm;
    char date [32], zone [8];
    if (!localtime_r (&secs, &tm)
    ||  strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0
    ||  strftime (zone, sizeof zone, "%z", &tm) != 5) {
        snprintf (out, size, "-");
        return;
    }
    //  %z gives +0100; ISO 8601's extended format wants +01:00.
    snprintf (out, size, "%s.%03d%.3s:%.2s", date, (int) (tv.tv_usec / 1000), zone, zone + 3);
}

void
busp_log_one_line (char *text, size_t size)
{
    size_t len = strlen (text);
    while (len && (text [len - 1] == '\n' || text [len - 1] == '\r'))
        text [--len] = 0;
    for (size_t i = 0; i < len; i++) {
        if (text [i] != '\n' && text [i] != '\r')
            continue;
        size_t end = i + 1;
        while (end < len && strchr (" \t\r\n", text [end]))
            end++;
        //  "; " when it fits (the buffer is full of the message already),
        //  else a single space in place.
        if (len + 2 - (end - i) < size) {
            memmove (text + i + 2, text + end, len - end + 1);
            text [i] = ';';
            text [i + 1] = ' ';
            len = len + 2 - (end - i);
            i++;
        }
        else {
            memmove (text + i + 1, text + end, len - end + 1);
            text [i] = ' ';
            len = len + 1 - (end - i);
        }
    }
}
