/*  publish.c — the smallest useful libbusd publisher.

    Publishes one `user.created` event and waits for the broker to accept
    it: busd_publish returns as soon as the PUB is on its way, so a program
    that must know its events arrived calls busd_flush before it exits.
    Usage: publish [endpoint]   (default $BUSD_ENDPOINT or tcp://127.0.0.1:7460)
    Build: cc publish.c $(pkg-config --cflags --libs libbusd)               */
#include <busd/client.h>
#include <stdio.h>
#include <string.h>

int
main (int argc, char *argv [])
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = argc > 1 ? argv [1] : NULL;
    opts.client_name = "example-publish";

    int rc;
    busd_client_t *client = busd_client_new (&opts, &rc);
    if (!client) {
        fprintf (stderr, "publish: cannot connect: %s\n", busd_strerror (rc));
        return 1;
    }
    const char *event = "{\"id\": 42, \"email\": \"ada@example.com\"}";
    /*  The msg_id makes a retry after a crash harmless: the broker drops a
        second copy it accepted within its dedup window.                    */
    busd_pub_options_t pub = { .msg_id = "user-42-created", .headers_json = NULL };
    rc = busd_publish (client, "user.created", event, strlen (event), &pub, 5000);
    if (rc == 0)
        rc = busd_flush (client, 5000);
    if (rc)
        fprintf (stderr, "publish: %s\n", busd_strerror (rc));
    else
        printf ("published user.created\n");
    busd_client_destroy (&client);
    return rc ? 1 : 0;
}
