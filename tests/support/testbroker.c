/*  testbroker.c — start, stop, kill and restart a real busd (see testbroker.h).

    Readiness is a completed HELLO/WELCOME rather than a log line or a
    connect(): that is the first moment a test's own client is sure to get
    a session.  The child asks the kernel to SIGKILL it when the test
    process dies, so a crashed or timed-out test (Check forks each test)
    never leaves a broker holding a port.                                   */
#include "testbroker.h"
#include "busd/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS        64
#define READY_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS  20000

struct testbroker {
    pid_t pid;
    int port;
    char endpoint [64];
    int argc;
    char *argv [MAX_ARGS + 8];
};

static long
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
s_sleep_ms (long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*  Let the kernel pick a port nobody uses right now.  Another process
    could take it before busd binds; the readiness check would then fail
    loudly rather than talk to the wrong daemon (it checks our child).     */
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = 0 };
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof (addr);
    int port = -1;
    if (bind (fd, (struct sockaddr *) &addr, sizeof (addr)) == 0
    &&  getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        port = ntohs (addr.sin_port);
    close (fd);
    return port;
}

static const char *
s_busd_bin (void)
{
    const char *bin = getenv ("BUSD_BIN");
    return bin && *bin ? bin : "src/broker/busd";
}

/*  Status of a reaped child as a shell would report it.                   */
static int
s_exit_code (int status)
{
    if (WIFEXITED (status))
        return WEXITSTATUS (status);
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return -1;
}

/*  Wait up to timeout_ms for the child to exit; returns its code or -2.   */
static int
s_reap (testbroker_t *self, long timeout_ms)
{
    long deadline = s_now_ms () + timeout_ms;
    while (true) {
        int status;
        pid_t rc = waitpid (self->pid, &status, WNOHANG);
        if (rc == self->pid) {
            self->pid = 0;
            return s_exit_code (status);
        }
        if (rc < 0 && errno != EINTR) {
            self->pid = 0;
            return -1;
        }
        if (s_now_ms () >= deadline)
            return -2;
        s_sleep_ms (10);
    }
}

static int
s_spawn (testbroker_t *self)
{
    fflush (stdout);
    fflush (stderr);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0) {
        fprintf (stderr, "testbroker: fork: %s\n", strerror (errno));
        return -1;
    }
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        execv (self->argv [0], self->argv);
        fprintf (stderr, "testbroker: cannot run %s: %s\n", self->argv [0], strerror (errno));
        _exit (127);
    }
    self->pid = pid;

    /*  Ready when a client gets a WELCOME; short connect timeouts so a
        broker that died during start-up is noticed quickly.               */
    long deadline = s_now_ms () + READY_TIMEOUT_MS;
    while (s_now_ms () < deadline) {
        int status;
        if (waitpid (pid, &status, WNOHANG) == pid) {
            self->pid = 0;
            fprintf (stderr, "testbroker: %s exited during start-up (status %d)\n",
                     self->argv [0], s_exit_code (status));
            return -1;
        }
        busd_client_options_t opts;
        busd_client_options_init (&opts);
        opts.endpoint = self->endpoint;
        opts.client_name = "testbroker-probe";
        opts.connect_timeout_ms = 250;
        opts.reconnect = false;
        busd_client_t *probe = busd_client_new (&opts, NULL);
        if (probe) {
            busd_client_destroy (&probe);
            return 0;
        }
    }
    fprintf (stderr, "testbroker: %s did not answer on %s\n", self->argv [0], self->endpoint);
    kill (pid, SIGKILL);
    s_reap (self, STOP_TIMEOUT_MS);
    return -1;
}

testbroker_t *
testbroker_start_argv (const char *const *args)
{
    testbroker_t *self = calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    self->port = s_free_port ();
    if (self->port < 0) {
        fprintf (stderr, "testbroker: no free port: %s\n", strerror (errno));
        free (self);
        return NULL;
    }
    snprintf (self->endpoint, sizeof (self->endpoint), "tcp://127.0.0.1:%d", self->port);
    /*  Quiet by default; a later --log-level in args wins.                 */
    const char *log_level = getenv ("BUSD_TEST_LOG_LEVEL");
    const char *fixed [] = { s_busd_bin (), "--bind", self->endpoint,
                             "--log-level", log_level && *log_level ? log_level : "warning" };
    for (size_t i = 0; i < sizeof (fixed) / sizeof (fixed [0]); i++)
        self->argv [self->argc++] = strdup (fixed [i]);
    for (int i = 0; args && args [i]; i++) {
        if (i >= MAX_ARGS) {
            fprintf (stderr, "testbroker: too many arguments\n");
            testbroker_destroy (&self);
            return NULL;
        }
        self->argv [self->argc++] = strdup (args [i]);
    }
    self->argv [self->argc] = NULL;
    for (int i = 0; i < self->argc; i++)
        if (!self->argv [i]) {
            testbroker_destroy (&self);
            return NULL;
        }
    if (s_spawn (self)) {
        testbroker_destroy (&self);
        return NULL;
    }
    return self;
}

testbroker_t *
testbroker_start (const char *arg, ...)
{
    const char *args [MAX_ARGS + 1];
    int n = 0;
    va_list ap;
    va_start (ap, arg);
    for (const char *a = arg; a && n < MAX_ARGS; a = va_arg (ap, const char *))
        args [n++] = a;
    va_end (ap);
    args [n] = NULL;
    return testbroker_start_argv (args);
}

const char *
testbroker_endpoint (testbroker_t *self)
{
    return self->endpoint;
}

int
testbroker_port (testbroker_t *self)
{
    return self->port;
}

pid_t
testbroker_pid (testbroker_t *self)
{
    return self->pid;
}

int
testbroker_stop (testbroker_t *self)
{
    if (!self || !self->pid)
        return -1;
    kill (self->pid, SIGTERM);
    int code = s_reap (self, STOP_TIMEOUT_MS);
    if (code == -2) {
        fprintf (stderr, "testbroker: busd ignored SIGTERM for %d ms; killing it\n",
                 STOP_TIMEOUT_MS);
        kill (self->pid, SIGKILL);
        s_reap (self, STOP_TIMEOUT_MS);
        return -1;
    }
    return code;
}

int
testbroker_kill (testbroker_t *self)
{
    if (!self || !self->pid)
        return -1;
    kill (self->pid, SIGKILL);
    return s_reap (self, STOP_TIMEOUT_MS) == 128 + SIGKILL ? 0 : -1;
}

int
testbroker_restart (testbroker_t *self)
{
    if (!self || self->pid)
        return -1;
    return s_spawn (self);
}

void
testbroker_destroy (testbroker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    testbroker_t *self = *self_p;
    if (self->pid)
        testbroker_stop (self);
    for (int i = 0; i < self->argc; i++)
        free (self->argv [i]);
    free (self);
    *self_p = NULL;
}
