/*  endpoint.h — what a well-formed endpoint and address look like.

    ZeroMQ takes "tcp://127.0.0.1:99999" and listens on port 34463 (the
    number wraps), and fails on "127.0.0.1:7460" with a bare "Invalid
    argument".  busd, its configuration check and every tool read endpoints
    through these functions first, so a mistake is refused where it was
    made, with a message naming the value and what is wrong with it.  The
    pattern helper lives here too: it is the other thing users bring along
    from MQTT or NATS and that the protocol itself cannot refuse.           */
#ifndef BUSP_ENDPOINT_H_INCLUDED
#define BUSP_ENDPOINT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

/*  0 when endpoint is tcp://HOST:PORT (PORT 1..65535; for a bind also '*'
    or 0, "any free port"), ipc://PATH (a path that fits a Unix socket
    address) or inproc://NAME; else -EINVAL and why (without the value,
    which the caller names).                                                 */
int busp_endpoint_check (const char *endpoint, bool bind, char *why, size_t size);

/*  The endpoint a user meant: "HOST:PORT" (no scheme) is tcp://HOST:PORT.
    Writes it into out and returns 0, or -EINVAL with why set as above.     */
int busp_endpoint_normalize (const char *given, char *out, size_t out_size,
                             char *why, size_t why_size);

/*  "HOST:PORT", ":PORT" or "PORT" with an IPv4 HOST (default 127.0.0.1)
    and PORT 1..65535, as metrics_bind takes it.  0, or -EINVAL with why.   */
int busp_hostport_check (const char *address, char *why, size_t size);

/*  A pattern token MQTT ('+') or NATS ('>') users write for "one token" or
    "the rest".  In BUSP they are ordinary literal tokens that match only
    themselves, so clients refuse them: returns the hint ("did you mean
    'user.*'?") in hint and true when pattern holds one.                     */
bool busp_pattern_foreign_wildcard (const char *pattern, char *hint, size_t size);

#endif
