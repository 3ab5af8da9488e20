/*  notify.c — see notify.h.                                                 */
#include "notify.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <stdint.h>
#ifdef HAVE_SYSTEMD
#   include <systemd/sd-daemon.h>
#endif

int
notify_send (const char *state)
{
#ifdef HAVE_SYSTEMD
    return sd_notify (0, state);
#else
    const char *path = getenv ("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    size_t len = strlen (path);
    if (len >= sizeof addr.sun_path)
        return -EINVAL;
    memcpy (addr.sun_path, path, len);
    if (addr.sun_path [0] == '@')
        addr.sun_path [0] = 0;      /*  abstract namespace                  */
    int fd = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t sent = sendto (fd, state, strlen (state), 0, (struct sockaddr *) &addr,
                           (socklen_t) (offsetof (struct sockaddr_un, sun_path) + len));
    int err = errno;
    close (fd);
    return sent < 0 ? -err : 1;
#endif
}

int64_t
notify_watchdog_ms (void)
{
    //  sd_watchdog_enabled's rules, by hand so both builds agree: the
    //  variable is for us when WATCHDOG_PID is unset or names this process.
    const char *usec = getenv ("WATCHDOG_USEC");
    const char *pid = getenv ("WATCHDOG_PID");
    if (!usec || !*usec)
        return 0;
    if (pid && *pid && strtol (pid, NULL, 10) != (long) getpid ())
        return 0;
    char *end;
    long long value = strtoll (usec, &end, 10);
    if (*end || value <= 0)
        return 0;
    return value / 1000 > 0 ? value / 1000 : 1;
}
