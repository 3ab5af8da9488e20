/*  endpoint.c — endpoint, address and pattern sanity checks (see
    endpoint.h).  Deliberately stricter than ZeroMQ: it accepts what busd's
    documentation promises and names everything else.                      */
#include "endpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <arpa/inet.h>

/*  A decimal port 1..65535 (0 too when zero_ok).                           */
static int
s_port (const char *text, bool zero_ok, char *why, size_t size)
{
    if (!*text) {
        snprintf (why, size, "the port is missing (e.g. tcp://127.0.0.1:7460)");
        return -EINVAL;
    }
    long port = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') {
            snprintf (why, size, "port '%s' is not a number", text);
            return -EINVAL;
        }
        if (port <= 65535)
            port = port * 10 + (*p - '0');
    }
    if (port > 65535 || (port == 0 && !zero_ok)) {
        snprintf (why, size, "port %s is out of range 1..65535", text);
        return -EINVAL;
    }
    return 0;
}

static int
s_tcp (const char *rest, bool bind, char *why, size_t size)
{
    const char *colon = strrchr (rest, ':');
    if (!colon) {
        snprintf (why, size, "the port is missing (e.g. tcp://127.0.0.1:7460)");
        return -EINVAL;
    }
    size_t host_len = (size_t) (colon - rest);
    if (host_len == 0) {
        snprintf (why, size, "the host is missing (e.g. tcp://127.0.0.1:7460)");
        return -EINVAL;
    }
    if (rest [0] == '[' ? rest [host_len - 1] != ']' : memchr (rest, ':', host_len) != NULL) {
        snprintf (why, size, "an IPv6 host must be in brackets (tcp://[::1]:7460)");
        return -EINVAL;
    }
    for (size_t i = 0; i < host_len; i++)
        if ((unsigned char) rest [i] <= ' ' || rest [i] == '/') {
            snprintf (why, size, "the host '%.*s' contains '%c'", (int) host_len, rest,
                      rest [i] == '/' ? '/' : ' ');
            return -EINVAL;
        }
    const char *port = colon + 1;
    if (bind && strcmp (port, "*") == 0)
        return 0;
    return s_port (port, bind, why, size);
}

int
busp_endpoint_check (const char *endpoint, bool bind, char *why, size_t size)
{
    if (!endpoint || !*endpoint) {
        snprintf (why, size, "the endpoint is empty");
        return -EINVAL;
    }
    if (strncmp (endpoint, "tcp://", 6) == 0)
        return s_tcp (endpoint + 6, bind, why, size);
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        size_t len = strlen (endpoint + 6);
        if (len == 0) {
            snprintf (why, size, "the socket path is missing (e.g. ipc:///run/busd/busd.sock)");
            return -EINVAL;
        }
        if (len >= sizeof ((struct sockaddr_un *) 0)->sun_path) {
            snprintf (why, size, "the socket path is %zu bytes, a Unix socket allows %zu",
                      len, sizeof ((struct sockaddr_un *) 0)->sun_path - 1);
            return -EINVAL;
        }
        return 0;
    }
    if (strncmp (endpoint, "inproc://", 9) == 0) {
        if (!endpoint [9]) {
            snprintf (why, size, "the name is missing (e.g. inproc://busd)");
            return -EINVAL;
        }
        return 0;
    }
    const char *scheme_end = strstr (endpoint, "://");
    if (scheme_end)
        snprintf (why, size, "unknown transport '%.*s' (use tcp://, ipc:// or inproc://)",
                  (int) (scheme_end - endpoint), endpoint);
    else
    if (strchr (endpoint, ':'))
        snprintf (why, size, "no transport: did you mean tcp://%s?", endpoint);
    else
        snprintf (why, size, "not an endpoint like tcp://127.0.0.1:7460");
    return -EINVAL;
}

int
busp_endpoint_normalize (const char *given, char *out, size_t out_size,
                         char *why, size_t why_size)
{
    if (!given || !*given) {
        snprintf (why, why_size, "the endpoint is empty");
        return -EINVAL;
    }
    int n;
    if (!strstr (given, "://") && strchr (given, ':'))
        n = snprintf (out, out_size, "tcp://%s", given);
    else
        n = snprintf (out, out_size, "%s", given);
    if (n < 0 || (size_t) n >= out_size) {
        snprintf (why, why_size, "the endpoint is too long");
        return -EINVAL;
    }
    return busp_endpoint_check (out, false, why, why_size);
}

int
busp_hostport_check (const char *address, char *why, size_t size)
{
    if (!address || !*address) {
        snprintf (why, size, "the address is empty (e.g. 127.0.0.1:9460)");
        return -EINVAL;
    }
    if (strstr (address, "://")) {
        snprintf (why, size, "an address is HOST:PORT without a scheme (e.g. 127.0.0.1:9460)");
        return -EINVAL;
    }
    const char *colon = strrchr (address, ':');
    const char *port = colon ? colon + 1 : address;
    if (colon && colon != address) {
        char host [64];
        size_t len = (size_t) (colon - address);
        struct in_addr in;
        if (len >= sizeof host || (memcpy (host, address, len), host [len] = 0,
                                   inet_pton (AF_INET, host, &in) != 1)) {
            snprintf (why, size, "'%.*s' is not an IPv4 address (e.g. 127.0.0.1:9460)",
                      (int) len, address);
            return -EINVAL;
        }
    }
    return s_port (port, false, why, size);
}

bool
busp_pattern_foreign_wildcard (const char *pattern, char *hint, size_t size)
{
    if (!pattern)
        return false;
    char *fixed = strdup (pattern);
    if (!fixed)
        return false;
    bool found = false;
    size_t len = strlen (fixed), start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && fixed [i] != '.')
            continue;
        if (i - start == 1 && (fixed [start] == '+' || fixed [start] == '>')) {
            //  '>' (NATS) means "one or more tokens": '#' is the nearest.
            fixed [start] = fixed [start] == '+' ? '*' : '#';
            found = true;
        }
        start = i + 1;
    }
    if (found)
        snprintf (hint, size, "'+' and '>' are literal tokens in busd patterns, not wildcards: "
                  "did you mean '%s'? ('*' matches one token, a final '#' any number)", fixed);
    free (fixed);
    return found;
}
