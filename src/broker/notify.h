/*  notify.h — tell a service manager (systemd Type=notify) our state.

    Uses libsystemd's sd_notify when busd was configured with it, else the
    same datagram on $NOTIFY_SOCKET by hand: the protocol is one line of
    KEY=VALUE pairs, and busd must work the same without libsystemd.        */
#ifndef BUSD_NOTIFY_H_INCLUDED
#define BUSD_NOTIFY_H_INCLUDED

/*  Send a state string ("READY=1", "RELOADING=1", "STOPPING=1"...).
    Returns 1 when sent, 0 when no manager listens, negative on error.      */
int notify_send (const char *state);

/*  The service manager's watchdog interval in milliseconds (WatchdogSec=,
    passed as $WATCHDOG_USEC), or 0 when none applies to this process.  The
    broker's loop then sends "WATCHDOG=1" twice per interval: a loop that
    hangs stops the pings and systemd restarts busd.                        */
#include <stdint.h>
int64_t notify_watchdog_ms (void);

#endif
