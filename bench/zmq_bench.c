/*  zmq_bench.c — busd-bench's shapes, through a plain zmq_proxy relay.

    The other half of bench/compare.sh: the same payload layout as
    busd-bench (u64 sequence, u64 CLOCK_MONOTONIC send time, padding), the
    same shapes (one publisher to M subscribers, one subscriber slowed down,
    one-way latency, the ping-pong round trip) and the same JSON keys, but over raw PUB/SUB
    sockets through bench/zmq_proxy_relay.  Each event is two frames, topic
    and payload, the usual ZeroMQ envelope and the nearest equivalent of a
    BUSP DELIVER's topic.

    PUB drops silently at its high-water mark, so here the subscribers'
    sequence numbers are the only way to see loss; they are counted exactly
    (one bit per event) like busd-bench counts them.  Subscriptions travel
    asynchronously through the relay (the "slow joiner"), so the publisher
    first sends sync events until every subscriber has seen one.             */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench_util.h"
#include <zmq.h>

#define HDR_SIZE        16
#define TOPIC_DATA      "bench.events"
#define TOPIC_SYNC      "bench.sync"
#define TOPIC_REPLY     "bench.reply"
#define SUB_PREFIX      "bench."
#define SYNC_TIMEOUT_MS 10000

typedef struct {
    const char *pub_ep;
    const char *sub_ep;
    int nsub;
    uint64_t count;
    size_t size;
    int hwm;
    int slow_ms;
    uint64_t slow_every;
    int idle_ms;
    bool latency;
    bool rtt;
    uint64_t warmup;
    bool json;
    bool direct;                    /*  latency without the relay          */
} args_t;

typedef struct {
    uint64_t received, unique, duplicates, out_of_order, lost;
    int64_t last_ns;
    int error;
} sub_result_t;

typedef struct {
    const args_t *args;
    void *ctx;
    pthread_barrier_t ready;        /*  subscribers connected              */
    atomic_int synced;              /*  subscribers that saw a sync event  */
    atomic_int pub_done;
    atomic_llong start_ns;          /*  first data event sent              */
    int64_t pub_end_ns;
    uint64_t pub_sent;
    uint64_t pub_eagain;            /*  sends refused (never with PUB)     */
    sub_result_t *subs;
} bench_t;

typedef struct {
    bench_t *bench;
    int index;
} targ_t;

static void *
s_socket_sub (void *ctx, int type, const char *endpoint, int hwm, bool bind,
              const char *prefix)
{
    void *sock = zmq_socket (ctx, type);
    //  A publisher's last events may still sit in its pipe when it closes
    //  the socket: linger so they are sent, not discarded (zmq_ctx_term
    //  waits for them).  Subscribers have nothing to send.
    int linger = type == ZMQ_PUB ? 30000 : 0;
    if (!sock)
        return NULL;
    if (zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm)
    ||  zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm)
    ||  zmq_setsockopt (sock, ZMQ_LINGER, &linger, sizeof linger)
    ||  (type == ZMQ_SUB
         && zmq_setsockopt (sock, ZMQ_SUBSCRIBE, prefix, strlen (prefix)))
    ||  (bind ? zmq_bind (sock, endpoint) : zmq_connect (sock, endpoint))) {
        fprintf (stderr, "zmq_bench: socket for %s: %s\n", endpoint, zmq_strerror (errno));
        zmq_close (sock);
        return NULL;
    }
    return sock;
}

static void *
s_socket (void *ctx, int type, const char *endpoint, int hwm, bool bind)
{
    return s_socket_sub (ctx, type, endpoint, hwm, bind, SUB_PREFIX);
}

/*  Send topic + payload; returns 0, or -1 with errno.                       */
static int
s_send (void *sock, const char *topic, const void *data, size_t size)
{
    if (zmq_send (sock, topic, strlen (topic), ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send (sock, data, size, 0) < 0 ? -1 : 0;
}

/*  Receive topic + payload into buf (cap bytes); returns the payload size,
    -2 for a sync event, -1 on timeout or error.                            */
static int
s_recv (void *sock, unsigned char *buf, size_t cap, int timeout_ms)
{
    //  A receive timeout rather than zmq_poll: no extra system call per
    //  event while events are queued, as in libbusd's receive path.
    if (zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof timeout_ms))
        return -1;
    char topic [64];
    int tlen = zmq_recv (sock, topic, sizeof topic, 0);
    if (tlen < 0)
        return -1;
    int more = 0;
    size_t more_size = sizeof more;
    zmq_getsockopt (sock, ZMQ_RCVMORE, &more, &more_size);
    if (!more)
        return -1;
    int size = zmq_recv (sock, buf, cap, 0);
    if (size < 0)
        return -1;
    bool sync = (size_t) tlen == strlen (TOPIC_SYNC)
             && memcmp (topic, TOPIC_SYNC, (size_t) tlen) == 0;
    return sync ? -2 : size;
}

/*  ------------------------------------------------------------------------
    Throughput                                                              */

static void *
s_subscriber (void *arg)
{
    targ_t *targ = (targ_t *) arg;
    bench_t *bench = targ->bench;
    const args_t *args = bench->args;
    sub_result_t *result = &bench->subs [targ->index];
    bool slow = args->slow_ms > 0 && targ->index == 0;
    void *sock = s_socket (bench->ctx, ZMQ_SUB, args->sub_ep, args->hwm, false);
    uint64_t *seen = calloc ((args->count + 63) / 64 + 1, sizeof (uint64_t));
    unsigned char *buf = malloc (args->size + 1);
    if (!sock || !seen || !buf)
        result->error = 1;
    pthread_barrier_wait (&bench->ready);
    if (result->error)
        goto done;

    //  Wait for the first sync event: the subscription reached the publisher.
    int64_t deadline = bc_now_ns () + (int64_t) SYNC_TIMEOUT_MS * 1000000;
    bool synced = false;
    while (!synced && bc_now_ns () < deadline) {
        int rc = s_recv (sock, buf, args->size + 1, 100);
        if (rc == -2)
            synced = true;
    }
    if (!synced) {
        fprintf (stderr, "zmq_bench: subscriber %d never saw a sync event\n", targ->index + 1);
        result->error = 1;
        goto done;
    }
    atomic_fetch_add (&bench->synced, 1);

    uint64_t max_seq = 0;
    int64_t progress_ns = bc_now_ns ();
    while (result->unique < args->count) {
        int rc = s_recv (sock, buf, args->size + 1, 100);
        int64_t now = bc_now_ns ();
        if (rc == -1) {
            //  PUB never tells: once the publisher is done and nothing has
            //  come for a while, the rest is lost.
            if (atomic_load (&bench->pub_done)
            &&  now - progress_ns > (int64_t) args->idle_ms * 1000000)
                break;
            continue;
        }
        if (rc == -2)
            continue;
        progress_ns = now;
        if (rc < HDR_SIZE)
            continue;
        result->received++;
        result->last_ns = now;
        uint64_t seq = bc_get_u64 (buf);
        if (seq == 0 || seq > args->count)
            continue;
        uint64_t bit = seq - 1, mask = UINT64_C (1) << (bit % 64);
        if (seen [bit / 64] & mask)
            result->duplicates++;
        else {
            seen [bit / 64] |= mask;
            result->unique++;
            if (seq < max_seq)
                result->out_of_order++;
            else
                max_seq = seq;
        }
        if (slow && result->received % args->slow_every == 0)
            bc_sleep_ms (args->slow_ms);
    }
    result->lost = args->count - result->unique;

done:
    free (seen);
    free (buf);
    if (sock)
        zmq_close (sock);
    return NULL;
}

static int
s_publisher (bench_t *bench)
{
    const args_t *args = bench->args;
    void *sock = s_socket (bench->ctx, ZMQ_PUB, args->pub_ep, args->hwm, false);
    unsigned char *payload = calloc (1, args->size);
    int rc = -1;
    if (!sock || !payload)
        goto done;
    memset (payload + HDR_SIZE, 0xA5, args->size - HDR_SIZE);
    pthread_barrier_wait (&bench->ready);

    int64_t deadline = bc_now_ns () + (int64_t) SYNC_TIMEOUT_MS * 1000000;
    while (atomic_load (&bench->synced) < args->nsub) {
        if (bc_now_ns () > deadline) {
            fprintf (stderr, "zmq_bench: subscribers did not sync within %d ms\n",
                     SYNC_TIMEOUT_MS);
            goto done;
        }
        if (s_send (sock, TOPIC_SYNC, payload, HDR_SIZE)) {
            fprintf (stderr, "zmq_bench: send: %s\n", zmq_strerror (errno));
            goto done;
        }
        bc_sleep_ms (5);
    }
    //  Let the sync events still in flight drain out of the pipes.
    bc_sleep_ms (50);

    atomic_store (&bench->start_ns, bc_now_ns ());
    for (uint64_t seq = 1; seq <= args->count; seq++) {
        bc_put_u64 (payload, seq);
        bc_put_u64 (payload + 8, (uint64_t) bc_now_ns ());
        if (s_send (sock, TOPIC_DATA, payload, args->size)) {
            if (errno == EAGAIN) {
                bench->pub_eagain++;
                continue;
            }
            fprintf (stderr, "zmq_bench: send: %s\n", zmq_strerror (errno));
            goto done;
        }
        bench->pub_sent++;
    }
    bench->pub_end_ns = bc_now_ns ();
    rc = 0;

done:
    atomic_store (&bench->pub_done, 1);
    free (payload);
    if (sock)
        zmq_close (sock);
    return rc;
}

static int
s_throughput (const args_t *args, void *ctx)
{
    bench_t bench;
    memset (&bench, 0, sizeof bench);
    bench.args = args;
    bench.ctx = ctx;
    bench.subs = calloc ((size_t) args->nsub, sizeof (sub_result_t));
    pthread_t *threads = calloc ((size_t) args->nsub, sizeof (pthread_t));
    targ_t *targs = calloc ((size_t) args->nsub, sizeof (targ_t));
    if (!bench.subs || !threads || !targs
    ||  pthread_barrier_init (&bench.ready, NULL, (unsigned) args->nsub + 1)) {
        fprintf (stderr, "zmq_bench: out of memory\n");
        return 1;
    }
    for (int i = 0; i < args->nsub; i++) {
        targs [i].bench = &bench;
        targs [i].index = i;
        if (pthread_create (&threads [i], NULL, s_subscriber, &targs [i])) {
            fprintf (stderr, "zmq_bench: cannot start a thread\n");
            return 1;
        }
    }
    int pub_rc = s_publisher (&bench);
    for (int i = 0; i < args->nsub; i++)
        pthread_join (threads [i], NULL);

    int64_t start = atomic_load (&bench.start_ns);
    int64_t pub_ns = bench.pub_end_ns - start, sub_end = start;
    uint64_t sub_total = 0, lost = 0, dups = 0, ooo = 0;
    int errors = pub_rc ? 1 : 0;
    for (int i = 0; i < args->nsub; i++) {
        sub_result_t *s = &bench.subs [i];
        sub_total += s->received;
        lost += s->lost;
        dups += s->duplicates;
        ooo += s->out_of_order;
        errors += s->error;
        if (s->last_ns > sub_end)
            sub_end = s->last_ns;
    }
    int64_t sub_ns = sub_end - start;
    double mb = (double) args->size / 1e6;
    if (args->json) {
        printf ("{\"mode\":\"throughput\",\"publishers\":1,\"subscribers\":%d,"
                "\"count\":%" PRIu64 ",\"size\":%zu,\"hwm\":%d,\"slow_sub_ms\":%d,"
                "\"slow_every\":%" PRIu64 ",",
                args->nsub, args->count, args->size, args->hwm, args->slow_ms,
                args->slow_every);
        printf ("\"pub\":{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                "\"mb_per_s\":%.3f,\"eagain\":%" PRIu64 "},",
                bench.pub_sent, pub_ns / 1e9, bc_rate (bench.pub_sent, pub_ns),
                bc_rate (bench.pub_sent, pub_ns) * mb, bench.pub_eagain);
        printf ("\"sub\":{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                "\"mb_per_s\":%.3f,\"per_subscriber\":[",
                sub_total, sub_ns / 1e9, bc_rate (sub_total, sub_ns),
                bc_rate (sub_total, sub_ns) * mb);
        for (int i = 0; i < args->nsub; i++) {
            sub_result_t *s = &bench.subs [i];
            int64_t ns = s->last_ns - start;
            printf ("%s{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                    "\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%"
                    PRIu64 ",\"slow\":%s}",
                    i ? "," : "", s->received, ns / 1e9, bc_rate (s->received, ns),
                    s->lost, s->duplicates, s->out_of_order,
                    args->slow_ms > 0 && i == 0 ? "true" : "false");
        }
        printf ("]},\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%"
                PRIu64 ",\"errors\":%d}\n", lost, dups, ooo, errors);
    }
    else {
        printf ("zmq_bench: 1 publisher x %" PRIu64 " events of %zu B -> %d subscriber(s)"
                " via zmq_proxy (hwm %d)\n", args->count, args->size, args->nsub, args->hwm);
        printf ("Pub stats: %.0f msgs/s ~ %.2f MB/s (%" PRIu64 " msgs in %.3f s, sent)\n",
                bc_rate (bench.pub_sent, pub_ns), bc_rate (bench.pub_sent, pub_ns) * mb,
                bench.pub_sent, pub_ns / 1e9);
        printf ("Sub stats: %.0f msgs/s ~ %.2f MB/s aggregate\n",
                bc_rate (sub_total, sub_ns), bc_rate (sub_total, sub_ns) * mb);
        for (int i = 0; i < args->nsub; i++) {
            sub_result_t *s = &bench.subs [i];
            int64_t ns = s->last_ns - start;
            printf (" [%d] %.0f msgs/s (%" PRIu64 " msgs, lost %" PRIu64 ", dup %" PRIu64
                    ", out-of-order %" PRIu64 ")%s\n", i + 1, bc_rate (s->received, ns),
                    s->received, s->lost, s->duplicates, s->out_of_order,
                    args->slow_ms > 0 && i == 0 ? " slow" : "");
        }
        printf ("Lost %" PRIu64 ", duplicates %" PRIu64 ", out-of-order %" PRIu64 "\n",
                lost, dups, ooo);
    }
    pthread_barrier_destroy (&bench.ready);
    free (bench.subs);
    free (threads);
    free (targs);
    return errors ? 1 : 0;
}

/*  ------------------------------------------------------------------------
    Latency                                                                 */

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static double
s_pct_us (const int64_t *sorted, uint64_t n, double pct)
{
    uint64_t rank = (uint64_t) ((pct / 100.0) * (double) n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted [rank - 1] / 1000.0;
}

/*  Sort the samples and print the percentiles (JSON keys as busd-bench).   */
static void
s_report_latency (const args_t *args, const char *mode, const char *label, int64_t *samples,
                  uint64_t n, uint64_t lost)
{
    qsort (samples, n, sizeof (int64_t), s_cmp_i64);
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += (double) samples [i];
    if (args->json)
        printf ("{\"mode\":\"%s\",\"count\":%" PRIu64 ",\"size\":%zu,\"warmup\":%" PRIu64
                ",\"lost\":%" PRIu64 ",\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,"
                "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p99_9_us\":%.1f,\"max_us\":%.1f}\n",
                mode, n, args->size, args->warmup, lost, samples [0] / 1000.0,
                sum / (double) n / 1000.0, s_pct_us (samples, n, 50),
                s_pct_us (samples, n, 90), s_pct_us (samples, n, 99),
                s_pct_us (samples, n, 99.9), samples [n - 1] / 1000.0);
    else
        printf ("zmq_bench: %s %s, %" PRIu64 " events of %zu B\n"
                "p50 %.1f us\np90 %.1f us\np99 %.1f us\np99.9 %.1f us\nmax %.1f us\n",
                strcmp (mode, "rtt") ? "one way" : "round trip (ping-pong)", label, n,
                args->size, s_pct_us (samples, n, 50), s_pct_us (samples, n, 90),
                s_pct_us (samples, n, 99), s_pct_us (samples, n, 99.9),
                samples [n - 1] / 1000.0);
}

static int
s_latency (const args_t *args, void *ctx)
{
    int rc = 1;
    //  --direct: the publisher binds and the subscriber connects to it,
    //  one hop and no relay, the floor any broker adds its hop to.
    void *pub = s_socket (ctx, ZMQ_PUB, args->pub_ep, args->hwm, args->direct);
    void *sub = s_socket (ctx, ZMQ_SUB, args->direct ? args->pub_ep : args->sub_ep,
                          args->hwm, false);
    unsigned char *payload = calloc (1, args->size + 1);
    unsigned char *buf = malloc (args->size + 1);
    int64_t *samples = calloc (args->count, sizeof (int64_t));
    uint64_t n = 0, lost = 0;
    if (!pub || !sub || !payload || !buf || !samples)
        goto done;
    int64_t deadline = bc_now_ns () + (int64_t) SYNC_TIMEOUT_MS * 1000000;
    bool synced = false;
    while (!synced && bc_now_ns () < deadline) {
        if (s_send (pub, TOPIC_SYNC, payload, HDR_SIZE))
            goto done;
        int r = s_recv (sub, buf, args->size + 1, 10);
        synced = r == -2;
    }
    if (!synced) {
        fprintf (stderr, "zmq_bench: no sync through the relay\n");
        goto done;
    }
    //  Drain sync events still in flight.
    while (s_recv (sub, buf, args->size + 1, 50) != -1)
        ;
    uint64_t total = args->warmup + args->count;
    for (uint64_t seq = 1; seq <= total; seq++) {
        bc_put_u64 (payload, seq);
        bc_put_u64 (payload + 8, (uint64_t) bc_now_ns ());
        if (s_send (pub, TOPIC_DATA, payload, args->size))
            goto done;
        bool got = false;
        int64_t until = bc_now_ns () + (int64_t) args->idle_ms * 1000000;
        while (!got && bc_now_ns () < until) {
            int r = s_recv (sub, buf, args->size + 1, 100);
            int64_t now = bc_now_ns ();
            if (r >= HDR_SIZE && bc_get_u64 (buf) == seq) {
                got = true;
                if (seq > args->warmup)
                    samples [n++] = now - (int64_t) bc_get_u64 (buf + 8);
            }
        }
        if (!got) {
            fprintf (stderr, "zmq_bench: event %" PRIu64 " not delivered\n", seq);
            lost++;
            break;
        }
    }
    if (n == 0)
        goto done;
    s_report_latency (args, "latency", args->direct ? "PUB -> SUB direct" : "via zmq_proxy",
                      samples, n, lost);
    rc = lost ? 1 : 0;

done:
    free (payload);
    free (buf);
    free (samples);
    if (pub)
        zmq_close (pub);
    if (sub)
        zmq_close (sub);
    return rc;
}

/*  ------------------------------------------------------------------------
    Round trip as a ping-pong through the relay: A publishes on
    TOPIC_DATA, B (a thread) receives it and publishes it back on
    TOPIC_REPLY, A receives that.  Two relay traversals.                    */

typedef struct {
    const args_t *args;
    void *sub;                      /*  TOPIC_DATA                          */
    void *pub;
    atomic_int stop;
    int error;
} echo_t;

static void *
s_echo (void *arg)
{
    echo_t *echo = (echo_t *) arg;
    unsigned char *buf = malloc (echo->args->size + 1);
    if (!buf) {
        echo->error = 1;
        return NULL;
    }
    while (!atomic_load (&echo->stop)) {
        int size = s_recv (echo->sub, buf, echo->args->size + 1, 100);
        if (size < HDR_SIZE)
            continue;
        if (s_send (echo->pub, TOPIC_REPLY, buf, (size_t) size)) {
            echo->error = 1;
            break;
        }
    }
    free (buf);
    return NULL;
}

static int
s_rtt (const args_t *args, void *ctx)
{
    int rc = 1;
    echo_t echo = { .args = args };
    bool running = false;
    pthread_t thread;
    void *pub = s_socket (ctx, ZMQ_PUB, args->pub_ep, args->hwm, false);
    void *sub = s_socket_sub (ctx, ZMQ_SUB, args->sub_ep, args->hwm, false, TOPIC_REPLY);
    echo.pub = s_socket (ctx, ZMQ_PUB, args->pub_ep, args->hwm, false);
    echo.sub = s_socket_sub (ctx, ZMQ_SUB, args->sub_ep, args->hwm, false, TOPIC_DATA);
    unsigned char *payload = calloc (1, args->size + 1);
    unsigned char *buf = malloc (args->size + 1);
    int64_t *samples = calloc (args->count, sizeof (int64_t));
    uint64_t n = 0, lost = 0;
    if (!pub || !sub || !echo.pub || !echo.sub || !payload || !buf || !samples)
        goto done;
    memset (payload + HDR_SIZE, 0xA5, args->size - HDR_SIZE);
    if (pthread_create (&thread, NULL, s_echo, &echo))
        goto done;
    running = true;
    //  Subscriptions travel asynchronously through the relay: ping with
    //  sequence 0 until one comes back, then let the rest drain.
    int64_t deadline = bc_now_ns () + (int64_t) SYNC_TIMEOUT_MS * 1000000;
    bool synced = false;
    while (!synced && bc_now_ns () < deadline) {
        if (s_send (pub, TOPIC_DATA, payload, args->size))
            goto done;
        int r = s_recv (sub, buf, args->size + 1, 10);
        synced = r >= HDR_SIZE && bc_get_u64 (buf) == 0;
    }
    if (!synced) {
        fprintf (stderr, "zmq_bench: no ping-pong through the relay\n");
        goto done;
    }
    while (s_recv (sub, buf, args->size + 1, 50) != -1)
        ;
    uint64_t total = args->warmup + args->count;
    for (uint64_t seq = 1; seq <= total; seq++) {
        bc_put_u64 (payload, seq);
        bc_put_u64 (payload + 8, (uint64_t) bc_now_ns ());
        if (s_send (pub, TOPIC_DATA, payload, args->size))
            goto done;
        bool got = false;
        int64_t until = bc_now_ns () + (int64_t) args->idle_ms * 1000000;
        while (!got && bc_now_ns () < until) {
            int r = s_recv (sub, buf, args->size + 1, 100);
            int64_t now = bc_now_ns ();
            if (r >= HDR_SIZE && bc_get_u64 (buf) == seq) {
                got = true;
                if (seq > args->warmup)
                    samples [n++] = now - (int64_t) bc_get_u64 (buf + 8);
            }
        }
        if (!got) {
            fprintf (stderr, "zmq_bench: round trip %" PRIu64 " not answered\n", seq);
            lost++;
            break;
        }
    }
    if (n == 0)
        goto done;
    s_report_latency (args, "rtt", "via zmq_proxy", samples, n, lost);
    rc = lost || echo.error ? 1 : 0;

done:
    if (running) {
        atomic_store (&echo.stop, 1);
        pthread_join (thread, NULL);
    }
    free (payload);
    free (buf);
    free (samples);
    void *socks [] = { pub, sub, echo.pub, echo.sub };
    for (int i = 0; i < 4; i++)
        if (socks [i])
            zmq_close (socks [i]);
    return rc;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: zmq_bench --pub-ep EP --sub-ep EP [OPTION]...\n"
        "busd-bench's shapes through bench/zmq_proxy_relay.\n"
        "  --pub-ep EP          the relay's XSUB endpoint (publishers connect)\n"
        "  --sub-ep EP          the relay's XPUB endpoint (subscribers connect)\n"
        "  --sub M              subscriber threads (default 1)\n"
        "  --count C            events (default 100000; latency: 10000)\n"
        "  --size BYTES         payload size, at least 16 (default 128)\n"
        "  --hwm N              SNDHWM/RCVHWM of the bench sockets (default 1000, 0 = none)\n"
        "  --slow-sub-ms X      subscriber 1 sleeps X ms every --slow-every events\n"
        "  --slow-every K       (default 1)\n"
        "  --idle-timeout S     seconds without events before the rest counts as lost\n"
        "                       (default 2)\n"
        "  --latency            one-at-a-time one-way latency instead: publish ->\n"
        "                       deliver, one relay traversal\n"
        "  --rtt                one-at-a-time round trips as a ping-pong: A publishes,\n"
        "                       B receives and publishes a reply, A receives it (two\n"
        "                       relay traversals)\n"
        "  --warmup N           round trips before measuring (default 100)\n"
        "  --direct             --latency without the relay: PUB binds --pub-ep, SUB\n"
        "                       connects to it (the one-hop floor)\n"
        "  --json               one JSON object on stdout\n");
}

static long long
s_number (const char *option, const char *arg, long long min, long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll (arg, &end, 10);
    if (errno || !end || *end || end == arg || v < min || v > max) {
        fprintf (stderr, "zmq_bench: %s: '%s' is not in %lld..%lld\n", option, arg, min, max);
        exit (2);
    }
    return v;
}

int
main (int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "pub-ep",       required_argument, NULL, 'P' },
        { "sub-ep",       required_argument, NULL, 'S' },
        { "sub",          required_argument, NULL, 'm' },
        { "count",        required_argument, NULL, 'c' },
        { "size",         required_argument, NULL, 's' },
        { "hwm",          required_argument, NULL, 'w' },
        { "slow-sub-ms",  required_argument, NULL, 'x' },
        { "slow-every",   required_argument, NULL, 'k' },
        { "idle-timeout", required_argument, NULL, 'i' },
        { "latency",      no_argument,       NULL, 'l' },
        { "rtt",          no_argument,       NULL, 'r' },
        { "warmup",       required_argument, NULL, 'W' },
        { "json",         no_argument,       NULL, 'j' },
        { "direct",       no_argument,       NULL, 'd' },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    args_t args = {
        .nsub = 1, .size = 128, .hwm = 1000, .slow_every = 1,
        .idle_ms = 2000, .warmup = 100
    };
    bool count_given = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
            case 'P': args.pub_ep = optarg; break;
            case 'S': args.sub_ep = optarg; break;
            case 'm': args.nsub = (int) s_number ("--sub", optarg, 1, 1024); break;
            case 'c':
                args.count = (uint64_t) s_number ("--count", optarg, 1, 1LL << 40);
                count_given = true;
                break;
            case 's': args.size = (size_t) s_number ("--size", optarg, HDR_SIZE, 64 << 20); break;
            case 'w': args.hwm = (int) s_number ("--hwm", optarg, 0, 100000000); break;
            case 'x': args.slow_ms = (int) s_number ("--slow-sub-ms", optarg, 0, 60000); break;
            case 'k': args.slow_every = (uint64_t) s_number ("--slow-every", optarg, 1, 1LL << 40); break;
            case 'i': args.idle_ms = (int) s_number ("--idle-timeout", optarg, 1, 3600) * 1000; break;
            case 'l': args.latency = true; break;
            case 'r': args.rtt = true; break;
            case 'W': args.warmup = (uint64_t) s_number ("--warmup", optarg, 0, 1LL << 40); break;
            case 'j': args.json = true; break;
            case 'd': args.direct = true; break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (!args.pub_ep || (!args.sub_ep && !args.direct) || optind < argc
    ||  (args.direct && !args.latency) || (args.rtt && (args.latency || !args.sub_ep))) {
        s_usage (stderr);
        return 2;
    }
    if (!count_given)
        args.count = args.latency || args.rtt ? 10000 : 100000;
    void *ctx = zmq_ctx_new ();
    if (!ctx) {
        fprintf (stderr, "zmq_bench: zmq_ctx_new: %s\n", zmq_strerror (errno));
        return 1;
    }
    int rc = args.rtt ? s_rtt (&args, ctx)
           : args.latency ? s_latency (&args, ctx) : s_throughput (&args, ctx);
    zmq_ctx_term (ctx);
    return rc;
}
