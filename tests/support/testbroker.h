/*  testbroker.h — a real busd for integration tests.

    Tests run the daemon they ship, not a mock: the broker is fork/exec'd
    from $BUSD_BIN on a free TCP port and is only handed to the test once a
    client has completed a HELLO with it, so a test never races the bind.
    The same port survives stop/kill and restart, which is what the
    broker-restart tests need: clients keep their endpoint and must find
    the new broker there.                                                   */
#ifndef TESTBROKER_H_INCLUDED
#define TESTBROKER_H_INCLUDED

#include <sys/types.h>

typedef struct testbroker testbroker_t;

/*  Start busd on 127.0.0.1:<free port> with extra arguments (a NULL-
    terminated list, e.g. "--pub-credit", "10", NULL) and wait until it
    answers HELLO.  Returns NULL (after printing why) on failure.            */
testbroker_t *testbroker_start (const char *arg, ...);
/*  Same with an argv-style NULL-terminated array (may be NULL).            */
testbroker_t *testbroker_start_argv (const char *const *args);

/*  "tcp://127.0.0.1:PORT" and its port.                                    */
const char *testbroker_endpoint (testbroker_t *self);
int testbroker_port (testbroker_t *self);
/*  Process id while running, else 0.                                       */
pid_t testbroker_pid (testbroker_t *self);

/*  SIGTERM and wait.  Returns the exit status (0..255), 128+signal when
    killed by a signal, or -1 when it was not running or did not stop in
    time (it is then killed with SIGKILL).                                   */
int testbroker_stop (testbroker_t *self);
/*  SIGKILL and wait (a crash).  Returns 0, or -1 when it was not running.  */
int testbroker_kill (testbroker_t *self);
/*  Start again on the same port with the same arguments and wait until it
    answers.  Returns 0 or -1.                                              */
int testbroker_restart (testbroker_t *self);

/*  Stop (SIGTERM) if running and free.                                     */
void testbroker_destroy (testbroker_t **self_p);

#endif
