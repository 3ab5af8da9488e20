/*  testclient.c — connect a libbusd client or fail the test (see
    testclient.h).                                                          */
#include "testclient.h"

#include <check.h>

busd_client_t *
testclient_new (testbroker_t *broker, const char *name, int connect_timeout_ms)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = testbroker_endpoint (broker);
    opts.client_name = name;
    opts.connect_timeout_ms = connect_timeout_ms;
    int err = 0;
    busd_client_t *client = busd_client_new (&opts, &err);
    ck_assert_msg (client, "%s cannot connect: %s", name, busd_strerror (err));
    return client;
}
