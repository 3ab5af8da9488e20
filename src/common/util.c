/*  util.c — reading a file whole, appending to an error buffer, catching
    the stop and reload signals (see util.h).                               */
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
busp_read_file (const char *path, char **text_p, size_t *size_p)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return -errno;
    char *text = NULL;
    size_t size = 0;
    char chunk [4096];
    while (true) {
        errno = 0;              //  so a failed fread's cause is not stale
        size_t n = fread (chunk, 1, sizeof chunk, file);
        if (n == 0)
            break;
        char *grown = realloc (text, size + n + 1);
        if (!grown) {
            free (text);
            fclose (file);
            return -ENOMEM;
        }
        text = grown;
        memcpy (text + size, chunk, n);
        size += n;
    }
    int rc = ferror (file) ? (errno ? -errno : -EIO) : 0;
    fclose (file);
    if (!rc && !text && !(text = malloc (1)))
        rc = -ENOMEM;
    if (rc) {
        free (text);
        return rc;
    }
    text [size] = 0;
    *text_p = text;
    *size_p = size;
    return 0;
}

void
busp_appendf (char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen (buf);
    if (len + 1 >= size)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (buf + len, size - len, fmt, args);
    va_end (args);
}

int
busp_catch_signals (void (*handler) (int))
{
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGTERM, &sa, NULL) || sigaction (SIGINT, &sa, NULL)
    ||  sigaction (SIGHUP, &sa, NULL))
        return -errno;
    return 0;
}

unsigned char *
busp_base64_decode (const char *text, size_t *size_p)
{
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen (text);
    unsigned char *out = malloc (len / 4 * 3 + 3);
    if (!out)
        return NULL;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len && text [i] != '='; i++) {
        const char *at = strchr (alphabet, text [i]);
        if (!at) {
            free (out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t) (at - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out [n++] = (unsigned char) (acc >> bits);
        }
    }
    *size_p = n;
    return out;
}
