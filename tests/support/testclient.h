/*  testclient.h — libbusd clients for integration tests.

    Connecting is the first step of nearly every test, and a failure there
    must fail the test with the reason rather than hand it a NULL: so the
    helper asserts (Check), which is why it lives with the test support
    code and not in libbusd.                                                */
#ifndef TESTCLIENT_H_INCLUDED
#define TESTCLIENT_H_INCLUDED

#include "busd/client.h"
#include "testbroker.h"

/*  A client named name, connected to broker (WELCOME received within
    connect_timeout_ms); fails the running test, with libbusd's reason,
    when it cannot connect.                                                 */
busd_client_t *testclient_new (testbroker_t *broker, const char *name, int connect_timeout_ms);

#endif
