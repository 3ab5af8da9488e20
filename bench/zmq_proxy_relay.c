/*  zmq_proxy_relay.c — the baseline busd is measured against.

    A plain ZeroMQ pub/sub relay as people deploy it: an XSUB socket bound
    for publishers, an XPUB socket bound for subscribers, and zmq_proxy()
    moving messages (and subscriptions, the other way) between them.  No
    credit, no acknowledgements: at the high-water mark XPUB drops silently,
    which is exactly the behaviour busd's benchmarks compare against.  The
    high-water marks are a command-line option (0 = unbounded) so the
    comparison can show both the lossy and the unbounded-memory variant.

    Built only for bench/compare.sh (noinst); it is not part of busd.       */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: zmq_proxy_relay --xsub ENDPOINT --xpub ENDPOINT [--hwm N]\n"
        "A zmq_proxy XSUB/XPUB relay (busd's benchmark baseline).\n"
        "  --xsub EP    bind the publishers' side (XSUB) on EP\n"
        "  --xpub EP    bind the subscribers' side (XPUB) on EP\n"
        "  --hwm N      SNDHWM and RCVHWM of both sockets (default 1000, 0 = unbounded)\n"
        "Runs until SIGINT or SIGTERM.\n");
}

static void
s_on_signal (int sig)
{
    (void) sig;         //  zmq_proxy returns with EINTR; nothing else to do
}

static int
s_set_hwm (void *sock, int hwm)
{
    if (zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm)
    ||  zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm))
        return -1;
    return 0;
}

int
main (int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "xsub", required_argument, NULL, 's' },
        { "xpub", required_argument, NULL, 'p' },
        { "hwm",  required_argument, NULL, 'w' },
        { "help", no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    const char *xsub_ep = NULL, *xpub_ep = NULL;
    int hwm = 1000;
    int opt;
    while ((opt = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
            case 's': xsub_ep = optarg; break;
            case 'p': xpub_ep = optarg; break;
            case 'w': {
                char *end = NULL;
                long v = strtol (optarg, &end, 10);
                if (!end || *end || v < 0 || v > 100000000) {
                    fprintf (stderr, "zmq_proxy_relay: --hwm: '%s' is not 0..100000000\n",
                             optarg);
                    return 2;
                }
                hwm = (int) v;
                break;
            }
            case 'h':
                s_usage (stdout);
                return 0;
            default:
                s_usage (stderr);
                return 2;
        }
    }
    if (!xsub_ep || !xpub_ep || optind < argc) {
        s_usage (stderr);
        return 2;
    }
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    if (sigaction (SIGINT, &sa, NULL) || sigaction (SIGTERM, &sa, NULL)) {
        perror ("zmq_proxy_relay: sigaction");
        return 1;
    }

    int rc = 1;
    void *ctx = zmq_ctx_new ();
    if (!ctx) {
        perror ("zmq_proxy_relay: zmq_ctx_new");
        return 1;
    }
    void *xsub = zmq_socket (ctx, ZMQ_XSUB);
    void *xpub = zmq_socket (ctx, ZMQ_XPUB);
    int zero = 0;
    if (!xsub || !xpub
    ||  s_set_hwm (xsub, hwm) || s_set_hwm (xpub, hwm)
    ||  zmq_setsockopt (xsub, ZMQ_LINGER, &zero, sizeof zero)
    ||  zmq_setsockopt (xpub, ZMQ_LINGER, &zero, sizeof zero)) {
        fprintf (stderr, "zmq_proxy_relay: socket setup: %s\n", zmq_strerror (errno));
        goto done;
    }
    if (zmq_bind (xsub, xsub_ep)) {
        fprintf (stderr, "zmq_proxy_relay: bind %s: %s\n", xsub_ep, zmq_strerror (errno));
        goto done;
    }
    if (zmq_bind (xpub, xpub_ep)) {
        fprintf (stderr, "zmq_proxy_relay: bind %s: %s\n", xpub_ep, zmq_strerror (errno));
        goto done;
    }
    fprintf (stderr, "zmq_proxy_relay: XSUB %s -> XPUB %s, hwm %d\n", xsub_ep, xpub_ep, hwm);
    //  Returns only when interrupted (EINTR) or the context is terminated.
    zmq_proxy (xsub, xpub, NULL);
    if (errno != EINTR && errno != ETERM)
        fprintf (stderr, "zmq_proxy_relay: zmq_proxy: %s\n", zmq_strerror (errno));
    else
        rc = 0;

done:
    if (xsub)
        zmq_close (xsub);
    if (xpub)
        zmq_close (xpub);
    zmq_ctx_term (ctx);
    return rc;
}
