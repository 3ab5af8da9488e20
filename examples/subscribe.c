/*  subscribe.c — the smallest useful libbusd subscriber.

    Subscribes to `user.*` and prints each event.  The library grants the
    broker more credit as events are received, so the loop has nothing to
    do but receive; it stops after `count` events (0: never) or after ten
    seconds without one.
    Usage: subscribe [endpoint [count]]
    Build: cc subscribe.c $(pkg-config --cflags --libs libbusd)             */
#include <busd/client.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char *argv [])
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = argc > 1 ? argv [1] : NULL;
    opts.client_name = "example-subscribe";
    long count = argc > 2 ? strtol (argv [2], NULL, 10) : 0;

    int rc;
    busd_client_t *client = busd_client_new (&opts, &rc);
    if (!client) {
        fprintf (stderr, "subscribe: cannot connect: %s\n", busd_strerror (rc));
        return 1;
    }
    int64_t sub = busd_subscribe (client, "user.*", "{\"credit\": 100}", 5000);
    if (sub < 0) {
        const char *reason;
        busd_client_last_error (client, &reason);
        fprintf (stderr, "subscribe: %s (%s)\n", busd_strerror ((int) sub), reason);
        busd_client_destroy (&client);
        return 1;
    }
    for (long received = 0; count == 0 || received < count; ) {
        busd_msg_t *msg;
        rc = busd_receive (client, &msg, 10000);
        if (rc == -ETIMEDOUT) {
            rc = 0;
            break;
        }
        if (rc)
            break;
        if (busd_msg_kind (msg) == BUSD_MSG_DELIVER) {
            printf ("%s %.*s\n", busd_msg_topic (msg),
                    (int) busd_msg_size (msg), (const char *) busd_msg_payload (msg));
            received++;
        }
        else if (busd_msg_kind (msg) == BUSD_MSG_GAP)
            printf ("(%llu events dropped)\n", (unsigned long long) busd_msg_dropped (msg));
        else {
            printf ("subscription ended: %u %s\n", busd_msg_code (msg), busd_msg_reason (msg));
            busd_msg_destroy (&msg);
            break;
        }
        busd_msg_destroy (&msg);
    }
    if (rc)
        fprintf (stderr, "subscribe: %s\n", busd_strerror (rc));
    busd_client_destroy (&client);
    return rc ? 1 : 0;
}
