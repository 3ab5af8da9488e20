/*  bench_common.h — what the comparison clients (nats_bench, redis_bench,
    mqtt_bench) share: busd-bench's shapes driven through a small table of
    per-broker operations.

    Each client is one .c file that fills a bc_ops_t (connect, send, receive,
    wait until the broker has everything) with its broker's own C library,
    and hands it to bc_main().  Everything that must be the same for every
    broker so the numbers compare lives here, once: the payload layout
    (u64 sequence, u64 CLOCK_MONOTONIC send time, padding, as in busd-bench
    and zmq_bench), the exact loss/duplicate/order count (one bit per event
    per subscriber), the shapes (1 -> M throughput, one slowed subscriber,
    the ping-pong round trip, the durable publish), the percentiles and the
    JSON keys bench/compare.sh reads.

    Header-only with static functions because each client is built alone
    by compare.sh with `cc` and pkg-config, outside the autotools build
    (their libraries are optional).                                         */
#ifndef BENCH_COMMON_H_INCLUDED
#define BENCH_COMMON_H_INCLUDED

#include "bench_util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BC_HDR_SIZE     16
#define BC_TOPIC        "bench.events"
#define BC_REPLY_TOPIC  "bench.reply"
#define BC_SETUP_MS     10000           /*  connect / subscribe / sync      */

typedef enum {
    BC_ROLE_PUB,                        /*  throughput publisher            */
    BC_ROLE_SUB,                        /*  throughput subscriber           */
    BC_ROLE_RTT                         /*  one side of the ping-pong       */
} bc_role_t;

typedef struct {
    const char *host;
    int port;
    int nsub;
    uint64_t count;
    size_t size;
    int slow_ms;
    uint64_t slow_every;
    int idle_ms;
    bool rtt;
    uint64_t warmup;
    bool durable;                       /*  persisted, acknowledged publish */
    uint64_t window;                    /*  unacknowledged publishes at most */
    bool json;
} bc_args_t;

/*  One broker's client library behind the shapes.  A connection handle is
    used by one thread only.                                                */
typedef struct {
    const char *name;                   /*  "nats", "redis", ...            */
    const char *durable_label;          /*  what --durable means, or NULL   */
    /*  Connect; subscribe to sub_topic (NULL: none) and return only once the
        broker confirmed the subscription.  NULL on failure (message printed). */
    void *(*open) (const bc_args_t *args, bc_role_t role, const char *sub_topic);
    /*  Publish one event; 0 or -1 (message printed).                        */
    int (*send) (void *conn, const char *topic, const void *data, size_t size);
    /*  Next event of the subscription: copies its first BC_HDR_SIZE bytes
        to hdr, sets *size; 1 got one, 0 timeout, -1 connection gone.        */
    int (*recv) (void *conn, unsigned char *hdr, size_t *size, int timeout_ms);
    /*  Publisher: wait until the broker has taken (or, durable, stored and
        acknowledged) everything sent; *acked gets the count acknowledged
        (sent events for brokers without acknowledgements).  0 or -1.      */
    int (*finish) (void *conn, uint64_t *acked);
    /*  Events the client library itself reports dropped (NATS slow
        consumer), or NULL.                                                  */
    uint64_t (*dropped) (void *conn);
    /*  Why a subscriber's connection ended, or NULL.                        */
    const char *(*gone_reason) (void *conn);
    void (*close) (void *conn);
} bc_ops_t;

typedef struct {
    uint64_t received, unique, duplicates, out_of_order, lost, dropped;
    int64_t last_ns;
    bool gone;                          /*  broker closed the connection    */
    char gone_reason [128];
    int error;
} bc_sub_result_t;

typedef struct {
    const bc_args_t *args;
    const bc_ops_t *ops;
    pthread_barrier_t ready;
    atomic_int failed;
    atomic_int pub_done;
    int64_t start_ns;
    bc_sub_result_t *subs;
} bc_bench_t;

typedef struct {
    bc_bench_t *bench;
    int index;
} bc_targ_t;

/*  ------------------------------------------------------------------------
    Throughput                                                              */

static void *
bc_subscriber (void *arg)
{
    bc_targ_t *targ = (bc_targ_t *) arg;
    bc_bench_t *bench = targ->bench;
    const bc_args_t *args = bench->args;
    const bc_ops_t *ops = bench->ops;
    bc_sub_result_t *result = &bench->subs [targ->index];
    bool slow = args->slow_ms > 0 && targ->index == 0;
    void *conn = ops->open (args, BC_ROLE_SUB, BC_TOPIC);
    uint64_t *seen = calloc ((args->count + 63) / 64 + 1, sizeof (uint64_t));
    if (!conn || !seen) {
        result->error = 1;
        atomic_store (&bench->failed, 1);
    }
    pthread_barrier_wait (&bench->ready);
    if (result->error || atomic_load (&bench->failed))
        goto done;

    uint64_t max_seq = 0;
    int64_t progress_ns = bc_now_ns ();
    unsigned char hdr [BC_HDR_SIZE];
    while (result->unique < args->count) {
        size_t size = 0;
        int rc = ops->recv (conn, hdr, &size, 100);
        int64_t now = bc_now_ns ();
        if (rc < 0) {
            //  The broker closed us (Redis's output buffer limit, a NATS
            //  slow consumer): whatever did not arrive is lost.
            result->gone = true;
            const char *why = ops->gone_reason ? ops->gone_reason (conn) : NULL;
            snprintf (result->gone_reason, sizeof result->gone_reason, "%s",
                      why ? why : "connection closed");
            break;
        }
        if (rc == 0) {
            //  Brokers without flow control never say what they dropped:
            //  once the publisher is done and nothing came for a while,
            //  the rest is lost.
            if (atomic_load (&bench->pub_done)
            &&  now - progress_ns > (int64_t) args->idle_ms * 1000000)
                break;
            continue;
        }
        progress_ns = now;
        if (size < BC_HDR_SIZE)
            continue;
        result->received++;
        result->last_ns = now;
        uint64_t seq = bc_get_u64 (hdr);
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
    if (ops->dropped)
        result->dropped = ops->dropped (conn);

done:
    free (seen);
    if (conn)
        ops->close (conn);
    return NULL;
}

static int
bc_throughput (const bc_args_t *args, const bc_ops_t *ops)
{
    bc_bench_t bench;
    memset (&bench, 0, sizeof bench);
    bench.args = args;
    bench.ops = ops;
    bench.subs = calloc ((size_t) args->nsub + 1, sizeof (bc_sub_result_t));
    pthread_t *threads = calloc ((size_t) args->nsub + 1, sizeof (pthread_t));
    bc_targ_t *targs = calloc ((size_t) args->nsub + 1, sizeof (bc_targ_t));
    unsigned char *payload = calloc (1, args->size);
    if (!bench.subs || !threads || !targs || !payload
    ||  pthread_barrier_init (&bench.ready, NULL, (unsigned) args->nsub + 1)) {
        fprintf (stderr, "%s_bench: out of memory\n", ops->name);
        return 1;
    }
    memset (payload + BC_HDR_SIZE, 0xA5, args->size - BC_HDR_SIZE);
    for (int i = 0; i < args->nsub; i++) {
        targs [i].bench = &bench;
        targs [i].index = i;
        if (pthread_create (&threads [i], NULL, bc_subscriber, &targs [i])) {
            fprintf (stderr, "%s_bench: cannot start a thread\n", ops->name);
            return 1;
        }
    }
    //  Every subscription is confirmed by the broker before the barrier, so
    //  the first event already has all its subscribers.
    void *pub = ops->open (args, BC_ROLE_PUB, NULL);
    if (!pub)
        atomic_store (&bench.failed, 1);
    pthread_barrier_wait (&bench.ready);

    uint64_t sent = 0, acked = 0;
    int64_t pub_end = 0;
    int errors = 0;
    if (!atomic_load (&bench.failed)) {
        bench.start_ns = bc_now_ns ();
        for (uint64_t seq = 1; seq <= args->count; seq++) {
            bc_put_u64 (payload, seq);
            bc_put_u64 (payload + 8, (uint64_t) bc_now_ns ());
            if (ops->send (pub, BC_TOPIC, payload, args->size)) {
                errors++;
                break;
            }
            sent++;
        }
        //  Sent is not taken: the publish rate counts until the broker has
        //  everything (a round trip after the last send, or its last ack).
        if (ops->finish (pub, &acked))
            errors++;
        pub_end = bc_now_ns ();
    }
    else
        errors++;
    atomic_store (&bench.pub_done, 1);
    for (int i = 0; i < args->nsub; i++)
        pthread_join (threads [i], NULL);
    if (pub)
        ops->close (pub);

    if (atomic_load (&bench.failed)) {
        //  Nothing was measured; the reason is on stderr already.
        pthread_barrier_destroy (&bench.ready);
        free (bench.subs);
        free (threads);
        free (targs);
        free (payload);
        return 1;
    }
    int64_t start = bench.start_ns;
    int64_t pub_ns = pub_end - start, sub_end = start;
    uint64_t sub_total = 0, lost = 0, dups = 0, ooo = 0, dropped = 0;
    for (int i = 0; i < args->nsub; i++) {
        bc_sub_result_t *s = &bench.subs [i];
        sub_total += s->received;
        lost += s->lost;
        dups += s->duplicates;
        ooo += s->out_of_order;
        dropped += s->dropped;
        errors += s->error;
        if (s->last_ns > sub_end)
            sub_end = s->last_ns;
    }
    int64_t sub_ns = sub_end - start;
    double mb = (double) args->size / 1e6;
    if (args->json) {
        printf ("{\"mode\":\"%s\",\"broker\":\"%s\",\"publishers\":1,\"subscribers\":%d,"
                "\"count\":%" PRIu64 ",\"size\":%zu,\"window\":%" PRIu64 ",\"slow_sub_ms\":%d,"
                "\"slow_every\":%" PRIu64 ",",
                args->durable ? "durable" : "throughput", ops->name, args->nsub, args->count,
                args->size, args->window, args->slow_ms, args->slow_every);
        printf ("\"pub\":{\"msgs\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"seconds\":%.6f,"
                "\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f},",
                sent, acked, pub_ns / 1e9, bc_rate (acked, pub_ns),
                bc_rate (acked, pub_ns) * mb);
        printf ("\"sub\":{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                "\"mb_per_s\":%.3f,\"per_subscriber\":[",
                sub_total, sub_ns / 1e9, bc_rate (sub_total, sub_ns),
                bc_rate (sub_total, sub_ns) * mb);
        for (int i = 0; i < args->nsub; i++) {
            bc_sub_result_t *s = &bench.subs [i];
            int64_t ns = s->last_ns - start;
            printf ("%s{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                    "\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%"
                    PRIu64 ",\"client_dropped\":%" PRIu64 ",\"disconnected\":%s,"
                    "\"slow\":%s}",
                    i ? "," : "", s->received, ns / 1e9, bc_rate (s->received, ns),
                    s->lost, s->duplicates, s->out_of_order, s->dropped,
                    s->gone ? "true" : "false",
                    args->slow_ms > 0 && i == 0 ? "true" : "false");
        }
        printf ("]},\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%"
                PRIu64 ",\"client_dropped\":%" PRIu64 ",\"errors\":%d}\n",
                lost, dups, ooo, dropped, errors);
    }
    else {
        printf ("%s_bench: 1 publisher x %" PRIu64 " events of %zu B -> %d subscriber(s)%s\n",
                ops->name, args->count, args->size, args->nsub,
                args->durable ? ", durable" : "");
        printf ("Pub stats: %.0f msgs/s ~ %.2f MB/s (%" PRIu64 " sent, %" PRIu64
                " taken by the broker in %.3f s)\n",
                bc_rate (acked, pub_ns), bc_rate (acked, pub_ns) * mb, sent, acked,
                pub_ns / 1e9);
        if (args->nsub > 0)
            printf ("Sub stats: %.0f msgs/s ~ %.2f MB/s aggregate\n",
                    bc_rate (sub_total, sub_ns), bc_rate (sub_total, sub_ns) * mb);
        for (int i = 0; i < args->nsub; i++) {
            bc_sub_result_t *s = &bench.subs [i];
            int64_t ns = s->last_ns - start;
            printf (" [%d] %.0f msgs/s (%" PRIu64 " msgs, lost %" PRIu64 ", dup %" PRIu64
                    ", out-of-order %" PRIu64 ")%s%s%s\n", i + 1,
                    bc_rate (s->received, ns), s->received, s->lost, s->duplicates,
                    s->out_of_order, args->slow_ms > 0 && i == 0 ? " slow" : "",
                    s->gone ? ", disconnected: " : "", s->gone ? s->gone_reason : "");
        }
        printf ("Lost %" PRIu64 ", duplicates %" PRIu64 ", out-of-order %" PRIu64 "\n",
                lost, dups, ooo);
    }
    pthread_barrier_destroy (&bench.ready);
    free (bench.subs);
    free (threads);
    free (targs);
    free (payload);
    return errors ? 1 : 0;
}

/*  ------------------------------------------------------------------------
    Round trip as a ping-pong: A publishes on BC_TOPIC, B receives it and
    publishes it back on BC_REPLY_TOPIC, A receives that.  Two traversals
    of the broker, one event in flight at a time.                          */

typedef struct {
    const bc_args_t *args;
    const bc_ops_t *ops;
    void *conn;
    atomic_int stop;
    uint64_t echoed;
    int error;
} bc_echo_t;

static void *
bc_echo (void *arg)
{
    bc_echo_t *echo = (bc_echo_t *) arg;
    unsigned char *buf = calloc (1, echo->args->size);
    if (!buf) {
        echo->error = 1;
        return NULL;
    }
    memset (buf + BC_HDR_SIZE, 0xA5, echo->args->size - BC_HDR_SIZE);
    while (!atomic_load (&echo->stop)) {
        size_t size = 0;
        int rc = echo->ops->recv (echo->conn, buf, &size, 100);
        if (rc < 0) {
            echo->error = 1;
            break;
        }
        if (rc == 0)
            continue;
        //  Echo the sequence and the send time; the padding is the same.
        if (echo->ops->send (echo->conn, BC_REPLY_TOPIC, buf, echo->args->size)) {
            echo->error = 1;
            break;
        }
        echo->echoed++;
    }
    free (buf);
    return NULL;
}

static int
bc_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

/*  Nearest-rank percentile of sorted samples, in microseconds.             */
static double
bc_pct_us (const int64_t *sorted, uint64_t n, double pct)
{
    uint64_t rank = (uint64_t) ((pct / 100.0) * (double) n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted [rank - 1] / 1000.0;
}

static int
bc_rtt (const bc_args_t *args, const bc_ops_t *ops)
{
    int rc = 1;
    bc_echo_t echo = { .args = args, .ops = ops };
    bool echo_running = false;
    pthread_t thread;
    void *a = ops->open (args, BC_ROLE_RTT, BC_REPLY_TOPIC);
    echo.conn = a ? ops->open (args, BC_ROLE_RTT, BC_TOPIC) : NULL;
    unsigned char *payload = calloc (1, args->size);
    int64_t *samples = calloc (args->count, sizeof (int64_t));
    uint64_t n = 0, lost = 0;
    if (!a || !echo.conn || !payload || !samples)
        goto done;
    memset (payload + BC_HDR_SIZE, 0xA5, args->size - BC_HDR_SIZE);
    if (pthread_create (&thread, NULL, bc_echo, &echo)) {
        fprintf (stderr, "%s_bench: cannot start a thread\n", ops->name);
        goto done;
    }
    echo_running = true;
    uint64_t total = args->warmup + args->count;
    unsigned char hdr [BC_HDR_SIZE];
    for (uint64_t seq = 1; seq <= total; seq++) {
        bc_put_u64 (payload, seq);
        bc_put_u64 (payload + 8, (uint64_t) bc_now_ns ());
        if (ops->send (a, BC_TOPIC, payload, args->size))
            goto done;
        bool got = false;
        int64_t until = bc_now_ns () + (int64_t) args->idle_ms * 1000000;
        while (!got && bc_now_ns () < until) {
            size_t size = 0;
            int r = ops->recv (a, hdr, &size, 100);
            int64_t now = bc_now_ns ();
            if (r < 0)
                goto done;
            if (r == 1 && size >= BC_HDR_SIZE && bc_get_u64 (hdr) == seq) {
                got = true;
                if (seq > args->warmup)
                    samples [n++] = now - (int64_t) bc_get_u64 (hdr + 8);
            }
        }
        if (!got) {
            fprintf (stderr, "%s_bench: round trip %" PRIu64 " not answered within %d ms\n",
                     ops->name, seq, args->idle_ms);
            lost++;
            break;
        }
    }
    if (n == 0)
        goto done;
    qsort (samples, n, sizeof (int64_t), bc_cmp_i64);
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += (double) samples [i];
    if (args->json)
        printf ("{\"mode\":\"rtt\",\"broker\":\"%s\",\"count\":%" PRIu64 ",\"size\":%zu,"
                "\"warmup\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"min_us\":%.1f,\"mean_us\":%.1f,"
                "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p99_9_us\":%.1f,"
                "\"max_us\":%.1f}\n",
                ops->name, n, args->size, args->warmup, lost, samples [0] / 1000.0,
                sum / (double) n / 1000.0, bc_pct_us (samples, n, 50),
                bc_pct_us (samples, n, 90), bc_pct_us (samples, n, 99),
                bc_pct_us (samples, n, 99.9), samples [n - 1] / 1000.0);
    else
        printf ("%s_bench: round trip A -> broker -> B -> broker -> A, %" PRIu64
                " events of %zu B (after %" PRIu64 " warm-up)\n"
                "min %.1f us, mean %.1f us\n"
                "p50 %.1f us\np90 %.1f us\np99 %.1f us\np99.9 %.1f us\nmax %.1f us\n",
                ops->name, n, args->size, args->warmup, samples [0] / 1000.0,
                sum / (double) n / 1000.0, bc_pct_us (samples, n, 50),
                bc_pct_us (samples, n, 90), bc_pct_us (samples, n, 99),
                bc_pct_us (samples, n, 99.9), samples [n - 1] / 1000.0);
    rc = lost ? 1 : 0;

done:
    if (echo_running) {
        atomic_store (&echo.stop, 1);
        pthread_join (thread, NULL);
    }
    if (echo.conn)
        ops->close (echo.conn);
    if (a)
        ops->close (a);
    free (payload);
    free (samples);
    return rc;
}

/*  ------------------------------------------------------------------------
    Command line                                                            */

static void
bc_usage (const bc_ops_t *ops, int default_port, FILE *out)
{
    fprintf (out,
        "Usage: %s_bench [--host H] [--port P] [OPTION]...\n"
        "busd-bench's shapes against %s, through its own C client library.\n"
        "  --host H             broker address (default 127.0.0.1)\n"
        "  --port P             broker port (default %d)\n"
        "  --sub M              subscriber threads (default 1; 0 = publish only)\n"
        "  --count C            events (default 100000; --rtt: 10000)\n"
        "  --size BYTES         payload size, at least 16 (default 128)\n"
        "  --slow-sub-ms X      subscriber 1 sleeps X ms every --slow-every events\n"
        "  --slow-every K       (default 1)\n"
        "  --idle-timeout S     seconds without events, once the publisher is done,\n"
        "                       before the rest counts as lost (default 2)\n"
        "  --rtt                round trips as a ping-pong: A publishes, B receives\n"
        "                       and publishes a reply, A receives it (two broker\n"
        "                       traversals, one event in flight)\n"
        "  --warmup N           round trips before measuring (default 100)\n",
        ops->name, ops->name, default_port);
    if (ops->durable_label)
        fprintf (out,
        "  --durable            %s\n", ops->durable_label);
    fprintf (out,
        "  --window N           publishes awaiting the broker's answer at most: pipelined\n"
        "                       commands, unacknowledged durable publishes (default 1000)\n"
        "  --json               one JSON object on stdout\n"
        "Exit status: 0 done (loss is reported, not an error), 1 a failure, 2 usage.\n");
}

static long long
bc_number (const bc_ops_t *ops, const char *option, const char *arg, long long min,
           long long max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll (arg, &end, 10);
    if (errno || !end || *end || end == arg || v < min || v > max) {
        fprintf (stderr, "%s_bench: %s: '%s' is not a number in %lld..%lld\n",
                 ops->name, option, arg, min, max);
        exit (2);
    }
    return v;
}

static int
bc_main (int argc, char *argv [], const bc_ops_t *ops, int default_port, bc_args_t *args)
{
    static const struct option longopts [] = {
        { "host",         required_argument, NULL, 'H' },
        { "port",         required_argument, NULL, 'p' },
        { "sub",          required_argument, NULL, 'm' },
        { "count",        required_argument, NULL, 'c' },
        { "size",         required_argument, NULL, 's' },
        { "slow-sub-ms",  required_argument, NULL, 'x' },
        { "slow-every",   required_argument, NULL, 'k' },
        { "idle-timeout", required_argument, NULL, 'i' },
        { "rtt",          no_argument,       NULL, 'r' },
        { "warmup",       required_argument, NULL, 'W' },
        { "durable",      no_argument,       NULL, 'D' },
        { "window",       required_argument, NULL, 'w' },
        { "json",         no_argument,       NULL, 'j' },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    memset (args, 0, sizeof *args);
    args->host = "127.0.0.1";
    args->port = default_port;
    args->nsub = 1;
    args->size = 128;
    args->slow_every = 1;
    args->idle_ms = 2000;
    args->warmup = 100;
    args->window = 1000;
    bool count_given = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
            case 'H': args->host = optarg; break;
            case 'p': args->port = (int) bc_number (ops, "--port", optarg, 1, 65535); break;
            case 'm': args->nsub = (int) bc_number (ops, "--sub", optarg, 0, 1024); break;
            case 'c':
                args->count = (uint64_t) bc_number (ops, "--count", optarg, 1, 1LL << 40);
                count_given = true;
                break;
            case 's':
                args->size = (size_t) bc_number (ops, "--size", optarg, BC_HDR_SIZE, 64 << 20);
                break;
            case 'x':
                args->slow_ms = (int) bc_number (ops, "--slow-sub-ms", optarg, 0, 60000);
                break;
            case 'k':
                args->slow_every = (uint64_t) bc_number (ops, "--slow-every", optarg, 1,
                                                         1LL << 40);
                break;
            case 'i':
                args->idle_ms = (int) bc_number (ops, "--idle-timeout", optarg, 1, 3600) * 1000;
                break;
            case 'r': args->rtt = true; break;
            case 'W':
                args->warmup = (uint64_t) bc_number (ops, "--warmup", optarg, 0, 1LL << 40);
                break;
            case 'D':
                if (!ops->durable_label) {
                    fprintf (stderr, "%s_bench: --durable: %s has no durable publish here\n",
                             ops->name, ops->name);
                    return 2;
                }
                args->durable = true;
                break;
            case 'w':
                args->window = (uint64_t) bc_number (ops, "--window", optarg, 1, 1000000);
                break;
            case 'j': args->json = true; break;
            case 'h': bc_usage (ops, default_port, stdout); exit (0);
            default: bc_usage (ops, default_port, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "%s_bench: unexpected argument '%s'\n", ops->name, argv [optind]);
        return 2;
    }
    if (args->rtt && (args->durable || args->slow_ms > 0)) {
        fprintf (stderr, "%s_bench: --rtt goes with neither --durable nor --slow-sub-ms\n",
                 ops->name);
        return 2;
    }
    if (args->slow_ms > 0 && args->nsub == 0) {
        fprintf (stderr, "%s_bench: --slow-sub-ms needs at least one subscriber\n", ops->name);
        return 2;
    }
    if (!count_given)
        args->count = args->rtt ? 10000 : 100000;
    return -1;
}

static int
bc_run (const bc_args_t *args, const bc_ops_t *ops)
{
    return args->rtt ? bc_rtt (args, ops) : bc_throughput (args, ops);
}

#endif
