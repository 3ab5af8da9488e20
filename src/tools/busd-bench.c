/*  busd-bench.c — measure a busd broker: throughput, fan-out, round trips.

    Owns the benchmark shapes `nats bench` made familiar: N publisher and M
    subscriber threads, each with its own busd_client_t (a client is not
    thread-safe), and two one-at-a-time latency modes: one way (--latency:
    publish -> deliver, one broker traversal) and the ping-pong round trip
    other brokers' benchmarks report (--rtt: A publishes, B receives and
    publishes a reply, A receives it; two traversals).  Every event
    carries its own evidence in the payload, so the subscribers can check
    the broker's promises instead of trusting them:

        u64 word    (publisher id << 48) | sequence (1..count)
        u64 sent    CLOCK_MONOTONIC nanoseconds at publish
        padding     up to --size bytes

    A subscriber keeps one bit per (publisher, sequence) and so counts loss,
    duplicates and reordering exactly.  Under `overflow: block` the broker
    promises none of the three, so any of them is exit status 1; under the
    dropping policies loss is expected (reported by GAP) and only
    duplicates or reordering fail the run.                                  */
#include "tool.h"
#include "topic.h"

#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define HDR_SIZE        16              /*  word + sent timestamp           */
#define MAX_PUBLISHERS  65535           /*  publisher id is 16 bits         */
#define SEQ_MASK        ((UINT64_C (1) << 48) - 1)
#define POLL_MS         100             /*  how often blocked threads look up */

typedef struct {
    tool_conn_t conn;
    uint32_t npub;
    uint32_t nsub;
    size_t size;
    uint64_t count;
    double rate;                    /*  per publisher, events/s; 0 = unpaced */
    const char *overflow;           /*  NULL = broker default               */
    int64_t queue_limit;            /*  -1 = broker default                 */
    int64_t credit;                 /*  -1 = library default                */
    const char *topic;
    bool latency;
    bool rtt;                       /*  --rtt: the ping-pong (with latency) */
    uint64_t warmup;
    int slow_ms;
    uint64_t slow_every;
    int idle_ms;
    bool json;
    bool own_context;               /*  a ZeroMQ context per client         */
} bench_args_t;

/*  What one subscriber thread learned.                                     */
typedef struct {
    uint32_t index;
    uint64_t received;              /*  every DELIVER                       */
    uint64_t unique;
    uint64_t duplicates;
    uint64_t out_of_order;
    uint64_t invalid;               /*  payload not from this run           */
    uint64_t gap_dropped;           /*  sum of GAP counts                   */
    uint64_t lost;                  /*  expected - unique at the end        */
    int64_t last_ns;                /*  time of the last DELIVER            */
    bool ended;                     /*  broker sent SUBEND                  */
    uint16_t end_code;
    char end_reason [128];
    int error;                      /*  a library error, or 0               */
} sub_result_t;

/*  What one publisher thread did.                                          */
typedef struct {
    uint32_t index;
    uint64_t sent;
    int64_t end_ns;                 /*  last PUB acknowledged               */
    uint64_t rejected;
    int error;
} pub_result_t;

typedef struct {
    const bench_args_t *args;
    char *sub_options;              /*  SUB options JSON or NULL            */
    pthread_barrier_t ready;        /*  everyone connected (and subscribed) */
    pthread_barrier_t go;           /*  start_ns is set                     */
    atomic_int connect_failed;
    atomic_int setup_failed;
    atomic_int stop;
    int64_t start_ns;
    pub_result_t *pubs;
    sub_result_t *subs;
} bench_t;

typedef struct {
    bench_t *bench;
    uint32_t index;
} thread_arg_t;

enum {
    OPT_PUB = 0x2000,
    OPT_SUB,
    OPT_SIZE,
    OPT_COUNT,
    OPT_RATE,
    OPT_OVERFLOW,
    OPT_QUEUE_LIMIT,
    OPT_CREDIT,
    OPT_TOPIC,
    OPT_LATENCY,
    OPT_WARMUP,
    OPT_SLOW_SUB_MS,
    OPT_SLOW_EVERY,
    OPT_IDLE_TIMEOUT,
    OPT_JSON,
    OPT_OWN_CONTEXT,
    OPT_RTT,
    OPT_NO_BATCH
};

/*  The ZeroMQ context every client shares (one I/O thread for the whole
    process, as a ZeroMQ application would have), or NULL.                 */
static void *s_zmq_ctx = NULL;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: busd-bench [OPTION]...                 throughput and fan-out\n"
        "       busd-bench --latency [OPTION]...       one-way latency\n"
        "       busd-bench --rtt [OPTION]...           round-trip (ping-pong) latency\n"
        "Benchmark a busd broker with its own publishers and subscribers.\n"
        "\n"
        "Throughput (default mode):\n"
        "      --pub N              publisher threads (default 1)\n"
        "      --sub M              subscriber threads (default 1; 0 = publish only)\n"
        "      --count C            events per publisher (default 100000)\n"
        "      --size BYTES         payload size, at least 16 (default 128)\n"
        "      --rate R             events per second per publisher (default: as\n"
        "                           fast as credit allows)\n"
        "      --topic T            topic to publish and subscribe (default bench.events)\n"
        "      --overflow POLICY    subscription overflow policy: block, drop-oldest,\n"
        "                           drop-new, latest, disconnect (default: broker's)\n"
        "      --queue-limit N      subscription queue_limit (default: broker's)\n"
        "      --credit N           subscription credit window (default: library's)\n"
        "      --slow-sub-ms X      subscriber 1 sleeps X ms every --slow-every events\n"
        "      --slow-every K       events between the slow subscriber's sleeps (default 1)\n"
        "      --idle-timeout S     give up after S seconds without progress (default 10)\n"
        "\n"
        "Latency (one event in flight at a time):\n"
        "      --latency            one way: client A publishes, client B receives;\n"
        "                           the time from A's publish to B's receive, one\n"
        "                           broker traversal\n"
        "      --rtt                round trip as a ping-pong: A publishes on the topic,\n"
        "                           B receives it and publishes it back on TOPIC.reply,\n"
        "                           A receives that; two broker traversals, the shape\n"
        "                           NATS, Redis and MQTT round-trip figures use\n"
        "      --count C            events measured (default 10000)\n"
        "      --warmup N           events before measuring (default 100)\n"
        "      --size, --rate, --topic, --credit as above\n"
        "\n"
        "Output and set-up:\n"
        "      --json               one JSON object on stdout\n"
        "      --own-context        give every client its own ZeroMQ context and I/O\n"
        "                           thread (default: one shared by all clients)\n"
        "      --no-batch           one frame per event and ack (default: PUBB,\n"
        "                           DELIVERB and ACKB when the broker offers them)\n"
        "\n"
        TOOL_CONNECT_HELP
        "\n"
        "Exit status:\n"
        "  0  success\n"
        "  1  events lost under overflow 'block', duplicated, reordered, or a\n"
        "     runtime error\n"
        "  2  usage error\n"
        "  3  cannot connect (no WELCOME within the connect timeout)\n");
}

/*  ------------------------------------------------------------------------
    Small helpers                                                           */

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
s_sleep_ns (int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = { .tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000 };
    while (nanosleep (&ts, &ts) != 0 && errno == EINTR && !tool_interrupted)
        ;
}

/*  Big-endian through a byte swap: the byte loops were a visible share of
    the bench's own per-event cost.                                         */
static void
s_put_u64 (unsigned char *p, uint64_t v)
{
    v = htobe64 (v);
    memcpy (p, &v, 8);
}

static uint64_t
s_get_u64 (const unsigned char *p)
{
    uint64_t v;
    memcpy (&v, p, 8);
    return be64toh (v);
}

/*  tool_connect with the shared ZeroMQ context.                            */
static int
s_connect (const tool_conn_t *conn, busd_client_t **client_p)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = tool_endpoint (conn);
    opts.client_name = conn->name;
    opts.connect_timeout_ms = conn->connect_timeout_ms;
    opts.reconnect = true;
    opts.zmq_context = s_zmq_ctx;
    tool_security_options (conn, &opts);
    opts.no_batch = conn->no_batch;
    int err = 0;
    busd_client_t *client = busd_client_new (&opts, &err);
    if (!client) {
        if (err == -ETIMEDOUT)
            tool_error ("cannot connect to %s: no answer from a broker within %.1f s",
                        opts.endpoint, conn->connect_timeout_ms / 1000.0);
        else
            tool_error ("cannot connect to %s: %s", opts.endpoint,
                        busd_strerror (err ? err : -EIO));
        return TOOL_EXIT_CONNECT;
    }
    *client_p = client;
    return TOOL_EXIT_OK;
}

/*  Pace a sender at rate events/s: sleep until event n (0-based) is due.   */
static void
s_pace (double rate, int64_t start_ns, uint64_t n)
{
    if (rate <= 0)
        return;
    int64_t due = start_ns + (int64_t) ((double) n * 1e9 / rate);
    s_sleep_ns (due - s_now_ns ());
}

static bool
s_should_stop (bench_t *bench)
{
    return tool_interrupted || atomic_load (&bench->stop);
}

/*  The SUB options JSON for the command line, or NULL for none.            */
static char *
s_sub_options (const bench_args_t *args)
{
    char text [256] = "";
    size_t len = 0;
    int n;
    if (args->overflow) {
        n = snprintf (text + len, sizeof text - len, "%s\"overflow\":\"%s\"",
                      len ? "," : "", args->overflow);
        len += (size_t) n;
    }
    if (args->queue_limit >= 0) {
        n = snprintf (text + len, sizeof text - len, "%s\"queue_limit\":%" PRId64,
                      len ? "," : "", args->queue_limit);
        len += (size_t) n;
    }
    if (args->credit >= 0) {
        n = snprintf (text + len, sizeof text - len, "%s\"credit\":%" PRId64,
                      len ? "," : "", args->credit);
        len += (size_t) n;
    }
    if (len == 0)
        return NULL;
    size_t size = len + 3;
    char *json = malloc (size);
    if (json)
        snprintf (json, size, "{%s}", text);
    return json;
}

/*  ------------------------------------------------------------------------
    Throughput: publishers                                                  */

static void *
s_publisher (void *arg)
{
    thread_arg_t *targ = (thread_arg_t *) arg;
    bench_t *bench = targ->bench;
    const bench_args_t *args = bench->args;
    pub_result_t *result = &bench->pubs [targ->index];
    result->index = targ->index;

    busd_client_t *client = NULL;
    char name [64];
    snprintf (name, sizeof name, "%s-pub-%u", args->conn.name, targ->index + 1);
    tool_conn_t conn = args->conn;
    conn.name = name;
    if (s_connect (&conn, &client) != TOOL_EXIT_OK)
        atomic_store (&bench->connect_failed, 1);
    unsigned char *payload = calloc (1, args->size);
    if (!payload) {
        tool_error ("publisher %u: out of memory", targ->index + 1);
        atomic_store (&bench->setup_failed, 1);
    }
    else
        memset (payload + HDR_SIZE, 0xA5, args->size - HDR_SIZE);

    pthread_barrier_wait (&bench->ready);
    pthread_barrier_wait (&bench->go);
    if (!client || !payload || atomic_load (&bench->connect_failed)
    ||  atomic_load (&bench->setup_failed))
        goto done;

    int64_t start_ns = bench->start_ns;
    uint64_t word_base = (uint64_t) targ->index << 48;
    int64_t progress_ns = s_now_ns ();
    for (uint64_t seq = 1; seq <= args->count && !s_should_stop (bench); seq++) {
        s_pace (args->rate, start_ns, seq - 1);
        s_put_u64 (payload, word_base | seq);
        int64_t sent_ns = s_now_ns ();
        s_put_u64 (payload + 8, (uint64_t) sent_ns);
        int rc;
        bool waited = false;
        while ((rc = busd_publish (client, args->topic, payload, args->size, NULL,
                                   POLL_MS)) == BUSD_ENOCREDIT) {
            //  Throttled: a blocking queue is full.  That is the point of
            //  the slow-subscriber shape, but not forever.
            waited = true;
            if (s_should_stop (bench))
                break;
            if (s_now_ns () - progress_ns > (int64_t) args->idle_ms * 1000000) {
                tool_error ("publisher %u: no credit for %.1f s, giving up",
                            targ->index + 1, args->idle_ms / 1000.0);
                atomic_store (&bench->stop, 1);
                break;
            }
        }
        if (rc == BUSD_ENOCREDIT)
            break;
        if (rc < 0) {
            tool_error ("publisher %u: publish: %s", targ->index + 1, busd_strerror (rc));
            result->error = rc;
            break;
        }
        //  A publish that did not wait took no time worth a clock read.
        progress_ns = waited ? s_now_ns () : sent_ns;
        result->sent++;
    }
    //  Sent is not delivered: the rate counts until the broker acknowledged
    //  the last PUB, so a publisher cannot look fast by filling a socket.
    uint64_t unacked = busd_client_unacked (client);
    progress_ns = s_now_ns ();
    while (!tool_interrupted) {
        int rc = busd_flush (client, POLL_MS);
        if (rc == 0 || rc == BUSD_EREJECTED)
            break;
        if (rc != -ETIMEDOUT) {
            tool_error ("publisher %u: flush: %s", targ->index + 1, busd_strerror (rc));
            result->error = rc;
            break;
        }
        uint64_t now_unacked = busd_client_unacked (client);
        if (now_unacked < unacked) {
            unacked = now_unacked;
            progress_ns = s_now_ns ();
        }
        else
        if (s_now_ns () - progress_ns > (int64_t) args->idle_ms * 1000000) {
            tool_error ("publisher %u: %" PRIu64 " events not acknowledged after %.1f s",
                        targ->index + 1, now_unacked, args->idle_ms / 1000.0);
            result->error = -ETIMEDOUT;
            break;
        }
    }
    result->end_ns = s_now_ns ();
    result->rejected = busd_client_rejected (client);

done:
    free (payload);
    busd_client_destroy (&client);
    return NULL;
}

/*  ------------------------------------------------------------------------
    Throughput: subscribers                                                 */

typedef struct {
    uint64_t *seen;                 /*  npub * count bits                   */
    uint64_t *max_seq;              /*  per publisher                       */
} tracker_t;

/*  Record one event; returns false when the payload is not one of ours.    */
static bool
s_track (const bench_args_t *args, tracker_t *tracker, sub_result_t *result,
         const unsigned char *data, size_t size)
{
    if (size < HDR_SIZE)
        return false;
    uint64_t word = s_get_u64 (data);
    uint64_t pub = word >> 48;
    uint64_t seq = word & SEQ_MASK;
    if (pub >= args->npub || seq == 0 || seq > args->count)
        return false;
    uint64_t bit = pub * args->count + (seq - 1);
    uint64_t mask = UINT64_C (1) << (bit % 64);
    if (tracker->seen [bit / 64] & mask) {
        result->duplicates++;
        return true;
    }
    tracker->seen [bit / 64] |= mask;
    result->unique++;
    if (seq < tracker->max_seq [pub])
        result->out_of_order++;
    else
        tracker->max_seq [pub] = seq;
    return true;
}

static void *
s_subscriber (void *arg)
{
    thread_arg_t *targ = (thread_arg_t *) arg;
    bench_t *bench = targ->bench;
    const bench_args_t *args = bench->args;
    sub_result_t *result = &bench->subs [targ->index];
    result->index = targ->index;
    bool slow = args->slow_ms > 0 && targ->index == 0;

    busd_client_t *client = NULL;
    char name [64];
    snprintf (name, sizeof name, "%s-sub-%u", args->conn.name, targ->index + 1);
    tool_conn_t conn = args->conn;
    conn.name = name;
    tracker_t tracker = { NULL, NULL };
    uint64_t expected = (uint64_t) args->npub * args->count;
    if (s_connect (&conn, &client) != TOOL_EXIT_OK)
        atomic_store (&bench->connect_failed, 1);
    else {
        int64_t sub_id = busd_subscribe (client, args->topic, bench->sub_options, 10000);
        if (sub_id < 0) {
            const char *reason = "";
            uint16_t code = busd_client_last_error (client, &reason);
            if (code)
                tool_error ("subscriber %u: subscribe: %s (%u %s)", targ->index + 1,
                            busd_strerror ((int) sub_id), code, reason);
            else
                tool_error ("subscriber %u: subscribe: %s", targ->index + 1,
                            busd_strerror ((int) sub_id));
            result->error = (int) sub_id;
            atomic_store (&bench->setup_failed, 1);
        }
        tracker.seen = calloc ((expected + 63) / 64 + 1, sizeof (uint64_t));
        tracker.max_seq = calloc (args->npub, sizeof (uint64_t));
        if (!tracker.seen || !tracker.max_seq) {
            tool_error ("subscriber %u: out of memory", targ->index + 1);
            atomic_store (&bench->setup_failed, 1);
        }
    }

    pthread_barrier_wait (&bench->ready);
    pthread_barrier_wait (&bench->go);
    if (!client || result->error || atomic_load (&bench->connect_failed)
    ||  atomic_load (&bench->setup_failed))
        goto done;

    int64_t progress_ns = s_now_ns ();
    while (result->unique < expected && !s_should_stop (bench)) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (client, &msg, POLL_MS);
        if (rc == -ETIMEDOUT) {
            if (s_now_ns () - progress_ns > (int64_t) args->idle_ms * 1000000)
                break;          //  nothing for a while: the rest is lost
            continue;
        }
        if (rc < 0) {
            tool_error ("subscriber %u: receive: %s", targ->index + 1, busd_strerror (rc));
            result->error = rc;
            break;
        }
        progress_ns = s_now_ns ();
        busd_msg_kind_t kind = busd_msg_kind (msg);
        if (kind == BUSD_MSG_DELIVER) {
            result->received++;
            result->last_ns = progress_ns;
            if (!s_track (args, &tracker, result, busd_msg_payload (msg), busd_msg_size (msg)))
                result->invalid++;
        }
        else
        if (kind == BUSD_MSG_GAP)
            result->gap_dropped += busd_msg_dropped (msg);
        else {
            result->ended = true;
            result->end_code = busd_msg_code (msg);
            snprintf (result->end_reason, sizeof result->end_reason, "%s",
                      busd_msg_reason (msg));
        }
        busd_msg_destroy (&msg);
        if (result->ended)
            break;
        if (slow && kind == BUSD_MSG_DELIVER && result->received % args->slow_every == 0)
            s_sleep_ns ((int64_t) args->slow_ms * 1000000);
    }
    result->lost = expected - result->unique;

done:
    free (tracker.seen);
    free (tracker.max_seq);
    busd_client_destroy (&client);
    return NULL;
}

/*  ------------------------------------------------------------------------
    Throughput: report                                                      */

static double
s_rate (uint64_t n, int64_t ns)
{
    return ns > 0 ? (double) n * 1e9 / (double) ns : 0.0;
}

static int
s_throughput_report (bench_t *bench)
{
    const bench_args_t *args = bench->args;
    double mb = (double) args->size / 1e6;
    uint64_t pub_total = 0, sub_total = 0;
    uint64_t lost = 0, dups = 0, ooo = 0, invalid = 0, gaps = 0, ended = 0;
    int errors = 0;
    int64_t pub_end = bench->start_ns, sub_end = bench->start_ns;
    for (uint32_t i = 0; i < args->npub; i++) {
        pub_result_t *p = &bench->pubs [i];
        pub_total += p->sent;
        if (p->end_ns > pub_end)
            pub_end = p->end_ns;
        if (p->error || p->sent < args->count)
            errors++;
    }
    for (uint32_t i = 0; i < args->nsub; i++) {
        sub_result_t *s = &bench->subs [i];
        sub_total += s->received;
        lost += s->lost;
        dups += s->duplicates;
        ooo += s->out_of_order;
        invalid += s->invalid;
        gaps += s->gap_dropped;
        ended += s->ended;
        if (s->last_ns > sub_end)
            sub_end = s->last_ns;
        if (s->error)
            errors++;
    }
    int64_t pub_ns = pub_end - bench->start_ns;
    int64_t sub_ns = sub_end - bench->start_ns;
    bool blocking = !args->overflow || strcmp (args->overflow, "block") == 0;
    bool ok = errors == 0 && dups == 0 && ooo == 0 && invalid == 0
           && (!blocking || (lost == 0 && ended == 0));

    if (args->json) {
        printf ("{\"mode\":\"throughput\",\"publishers\":%u,\"subscribers\":%u,"
                "\"count\":%" PRIu64 ",\"size\":%zu,\"topic\":\"%s\",\"overflow\":\"%s\","
                "\"rate\":%.0f,\"slow_sub_ms\":%d,\"slow_every\":%" PRIu64 ",",
                args->npub, args->nsub, args->count, args->size, args->topic,
                args->overflow ? args->overflow : "default", args->rate,
                args->slow_ms, args->slow_every);
        printf ("\"pub\":{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                "\"mb_per_s\":%.3f,\"per_publisher\":[",
                pub_total, pub_ns / 1e9, s_rate (pub_total, pub_ns),
                s_rate (pub_total, pub_ns) * mb);
        for (uint32_t i = 0; i < args->npub; i++) {
            pub_result_t *p = &bench->pubs [i];
            int64_t ns = p->end_ns - bench->start_ns;
            printf ("%s{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                    "\"rejected\":%" PRIu64 ",\"error\":%s}",
                    i ? "," : "", p->sent, ns / 1e9, s_rate (p->sent, ns), p->rejected,
                    p->error ? "true" : "false");
        }
        printf ("]},\"sub\":{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                "\"mb_per_s\":%.3f,\"per_subscriber\":[",
                sub_total, sub_ns / 1e9, s_rate (sub_total, sub_ns),
                s_rate (sub_total, sub_ns) * mb);
        for (uint32_t i = 0; i < args->nsub; i++) {
            sub_result_t *s = &bench->subs [i];
            int64_t ns = s->last_ns - bench->start_ns;
            printf ("%s{\"msgs\":%" PRIu64 ",\"seconds\":%.6f,\"msgs_per_s\":%.1f,"
                    "\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64
                    ",\"invalid\":%" PRIu64 ",\"gap_dropped\":%" PRIu64 ",\"ended\":%s,"
                    "\"slow\":%s}",
                    i ? "," : "", s->received, ns / 1e9, s_rate (s->received, ns),
                    s->lost, s->duplicates, s->out_of_order, s->invalid, s->gap_dropped,
                    s->ended ? "true" : "false",
                    args->slow_ms > 0 && i == 0 ? "true" : "false");
        }
        printf ("]},\"lost\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%"
                PRIu64 ",\"invalid\":%" PRIu64 ",\"gap_dropped\":%" PRIu64
                ",\"errors\":%d,\"interrupted\":%s,\"ok\":%s}\n",
                lost, dups, ooo, invalid, gaps, errors,
                tool_interrupted ? "true" : "false", ok ? "true" : "false");
    }
    else {
        printf ("busd-bench: %u publisher(s) x %" PRIu64 " events of %zu B -> %u subscriber(s)"
                " on %s (overflow %s)\n",
                args->npub, args->count, args->size, args->nsub, args->topic,
                args->overflow ? args->overflow : "default");
        printf ("Pub stats: %.0f msgs/s ~ %.2f MB/s (%" PRIu64 " msgs in %.3f s, acknowledged)\n",
                s_rate (pub_total, pub_ns), s_rate (pub_total, pub_ns) * mb,
                pub_total, pub_ns / 1e9);
        if (args->npub > 1)
            for (uint32_t i = 0; i < args->npub; i++) {
                pub_result_t *p = &bench->pubs [i];
                int64_t ns = p->end_ns - bench->start_ns;
                printf (" [%u] %.0f msgs/s ~ %.2f MB/s (%" PRIu64 " msgs)\n", i + 1,
                        s_rate (p->sent, ns), s_rate (p->sent, ns) * mb, p->sent);
            }
        if (args->nsub > 0) {
            printf ("Sub stats: %.0f msgs/s ~ %.2f MB/s aggregate (%" PRIu64 " msgs in %.3f s)\n",
                    s_rate (sub_total, sub_ns), s_rate (sub_total, sub_ns) * mb,
                    sub_total, sub_ns / 1e9);
            for (uint32_t i = 0; i < args->nsub; i++) {
                sub_result_t *s = &bench->subs [i];
                int64_t ns = s->last_ns - bench->start_ns;
                printf (" [%u] %.0f msgs/s ~ %.2f MB/s (%" PRIu64 " msgs, lost %" PRIu64
                        ", dup %" PRIu64 ", out-of-order %" PRIu64 ", GAP-reported %" PRIu64
                        ")%s%s%s\n",
                        i + 1, s_rate (s->received, ns), s_rate (s->received, ns) * mb,
                        s->received, s->lost, s->duplicates, s->out_of_order, s->gap_dropped,
                        args->slow_ms > 0 && i == 0 ? " slow" : "",
                        s->ended ? " ended: " : "", s->ended ? s->end_reason : "");
            }
        }
        printf ("Lost %" PRIu64 ", duplicates %" PRIu64 ", out-of-order %" PRIu64
                ", invalid %" PRIu64 ", GAP-reported %" PRIu64 "%s\n",
                lost, dups, ooo, invalid, gaps,
                tool_interrupted ? "  (interrupted: the rest was never published)"
                : ok ? "" : "  ** FAILED **");
    }
    if (fflush (stdout) != 0)
        return TOOL_EXIT_RUNTIME;
    return ok ? TOOL_EXIT_OK : TOOL_EXIT_RUNTIME;
}

static int
s_throughput (const bench_args_t *args)
{
    bench_t bench;
    memset (&bench, 0, sizeof bench);
    bench.args = args;
    bench.sub_options = s_sub_options (args);
    bench.pubs = calloc (args->npub, sizeof (pub_result_t));
    bench.subs = calloc (args->nsub ? args->nsub : 1, sizeof (sub_result_t));
    uint32_t nthreads = args->npub + args->nsub;
    pthread_t *threads = calloc (nthreads, sizeof (pthread_t));
    thread_arg_t *targs = calloc (nthreads, sizeof (thread_arg_t));
    if (!bench.pubs || !bench.subs || !threads || !targs) {
        tool_error ("out of memory");
        exit (TOOL_EXIT_RUNTIME);
    }
    if (pthread_barrier_init (&bench.ready, NULL, nthreads + 1)
    ||  pthread_barrier_init (&bench.go, NULL, nthreads + 1)) {
        tool_error ("cannot create barriers");
        exit (TOOL_EXIT_RUNTIME);
    }
    //  Subscribers first in the array; all threads meet at "ready", which
    //  subscribers reach only after SUBOK, so nothing is published before
    //  every subscription is routed.
    for (uint32_t i = 0; i < nthreads; i++) {
        targs [i].bench = &bench;
        targs [i].index = i < args->nsub ? i : i - args->nsub;
        int rc = pthread_create (&threads [i], NULL,
                                 i < args->nsub ? s_subscriber : s_publisher, &targs [i]);
        if (rc) {
            tool_error ("cannot start a thread: %s", strerror (rc));
            exit (TOOL_EXIT_RUNTIME);
        }
    }
    pthread_barrier_wait (&bench.ready);
    bench.start_ns = s_now_ns ();
    pthread_barrier_wait (&bench.go);
    for (uint32_t i = 0; i < nthreads; i++)
        pthread_join (threads [i], NULL);

    int rc;
    if (atomic_load (&bench.connect_failed))
        rc = TOOL_EXIT_CONNECT;
    else
    if (atomic_load (&bench.setup_failed))
        rc = TOOL_EXIT_RUNTIME;
    else
        rc = s_throughput_report (&bench);
    if (tool_interrupted && rc == TOOL_EXIT_OK)
        rc = TOOL_EXIT_RUNTIME;
    pthread_barrier_destroy (&bench.ready);
    pthread_barrier_destroy (&bench.go);
    free (threads);
    free (targs);
    free (bench.pubs);
    free (bench.subs);
    free (bench.sub_options);
    return rc;
}

/*  ------------------------------------------------------------------------
    Latency                                                                 */

static int
s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

/*  Nearest-rank percentile of sorted samples, in microseconds.             */
static double
s_pct_us (const int64_t *sorted, uint64_t n, double pct)
{
    if (n == 0)
        return 0;
    uint64_t rank = (uint64_t) ((pct / 100.0) * (double) n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted [rank - 1] / 1000.0;
}

/*  --rtt: B's side of the ping-pong, on its own thread and client: every
    event it receives goes back on the reply topic, payload unchanged.      */
typedef struct {
    const bench_args_t *args;
    busd_client_t *client;
    const char *reply_topic;
    atomic_int stop;
    int error;
} echo_t;

static void *
s_echo (void *arg)
{
    echo_t *echo = (echo_t *) arg;
    while (!atomic_load (&echo->stop) && !tool_interrupted) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (echo->client, &msg, POLL_MS);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc < 0) {
            tool_error ("echo: receive: %s", busd_strerror (rc));
            echo->error = rc;
            break;
        }
        if (busd_msg_kind (msg) == BUSD_MSG_DELIVER)
            rc = busd_publish (echo->client, echo->reply_topic, busd_msg_payload (msg),
                               busd_msg_size (msg), NULL, echo->args->idle_ms);
        busd_msg_destroy (&msg);
        if (rc < 0) {
            tool_error ("echo: publish: %s", busd_strerror (rc));
            echo->error = rc;
            break;
        }
    }
    return NULL;
}

/*  --latency and --rtt.  In both, pub (A) publishes event n + 1 only once
    event n came back; --latency waits for it at sub (B), --rtt at A after
    B echoed it.                                                            */
static int
s_latency (const bench_args_t *args)
{
    busd_client_t *pub = NULL, *sub = NULL;
    tool_conn_t conn = args->conn;
    char name [64];
    snprintf (name, sizeof name, "%s-sub", args->conn.name);
    conn.name = name;
    if (s_connect (&conn, &sub) != TOOL_EXIT_OK)
        return TOOL_EXIT_CONNECT;
    snprintf (name, sizeof name, "%s-pub", args->conn.name);
    if (s_connect (&conn, &pub) != TOOL_EXIT_OK) {
        busd_client_destroy (&sub);
        return TOOL_EXIT_CONNECT;
    }
    int exit_code = TOOL_EXIT_RUNTIME;
    char *options = s_sub_options (args);
    uint64_t total = args->warmup + args->count;
    char reply_topic [300];
    echo_t echo = { .args = args, .client = sub, .reply_topic = reply_topic };
    pthread_t echo_thread;
    bool echo_running = false;
    busd_client_t *waiter = args->rtt ? pub : sub;
    snprintf (reply_topic, sizeof reply_topic, "%s.reply", args->topic);
    int64_t *samples = calloc (args->count, sizeof (int64_t));
    unsigned char *payload = calloc (1, args->size);
    uint64_t n = 0, lost = 0;
    if (!samples || !payload) {
        tool_error ("out of memory");
        goto done;
    }
    memset (payload + HDR_SIZE, 0xA5, args->size - HDR_SIZE);
    int64_t sub_id = busd_subscribe (sub, args->topic, options, 10000);
    if (sub_id < 0) {
        tool_error ("subscribe: %s", busd_strerror ((int) sub_id));
        goto done;
    }
    if (args->rtt) {
        sub_id = busd_subscribe (pub, reply_topic, options, 10000);
        if (sub_id < 0) {
            tool_error ("subscribe to %s: %s", reply_topic, busd_strerror ((int) sub_id));
            goto done;
        }
        int err = pthread_create (&echo_thread, NULL, s_echo, &echo);
        if (err) {
            tool_error ("cannot start a thread: %s", strerror (err));
            goto done;
        }
        echo_running = true;
    }
    int64_t start_ns = s_now_ns ();
    for (uint64_t seq = 1; seq <= total && !tool_interrupted; seq++) {
        s_pace (args->rate, start_ns, seq - 1);
        s_put_u64 (payload, seq);
        s_put_u64 (payload + 8, (uint64_t) s_now_ns ());
        int rc = busd_publish (pub, args->topic, payload, args->size, NULL, args->idle_ms);
        if (rc < 0) {
            tool_error ("publish: %s", busd_strerror (rc));
            goto done;
        }
        //  Wait for this very event; an older one arriving late is skipped.
        int64_t deadline = s_now_ns () + (int64_t) args->idle_ms * 1000000;
        bool got = false;
        while (!got && !tool_interrupted) {
            int64_t left_ms = (deadline - s_now_ns ()) / 1000000;
            if (left_ms < 0)
                break;
            busd_msg_t *msg = NULL;
            rc = busd_receive (waiter, &msg, (int) (left_ms > POLL_MS ? POLL_MS : left_ms));
            if (rc == -ETIMEDOUT)
                continue;
            if (rc < 0) {
                tool_error ("receive: %s", busd_strerror (rc));
                goto done;
            }
            int64_t now = s_now_ns ();
            if (busd_msg_kind (msg) == BUSD_MSG_DELIVER && busd_msg_size (msg) >= HDR_SIZE) {
                const unsigned char *data = busd_msg_payload (msg);
                if (s_get_u64 (data) == seq) {
                    got = true;
                    if (seq > args->warmup)
                        samples [n++] = now - (int64_t) s_get_u64 (data + 8);
                }
            }
            busd_msg_destroy (&msg);
        }
        if (!got && !tool_interrupted) {
            tool_error ("event %" PRIu64 " not %s within %.1f s", seq,
                        args->rtt ? "answered" : "delivered", args->idle_ms / 1000.0);
            lost++;
            break;
        }
    }
    if (n == 0) {
        tool_error ("no round trip measured");
        goto done;
    }
    qsort (samples, n, sizeof (int64_t), s_cmp_i64);
    double sum = 0;
    for (uint64_t i = 0; i < n; i++)
        sum += (double) samples [i];
    double mean_us = sum / (double) n / 1000.0;
    if (args->json)
        printf ("{\"mode\":\"%s\",\"count\":%" PRIu64 ",\"size\":%zu,\"warmup\":%" PRIu64
                ",\"lost\":%" PRIu64 ",\"min_us\":%.1f,\"mean_us\":%.1f,\"p50_us\":%.1f,"
                "\"p90_us\":%.1f,\"p99_us\":%.1f,\"p99_9_us\":%.1f,\"max_us\":%.1f}\n",
                args->rtt ? "rtt" : "latency", n, args->size, args->warmup, lost,
                samples [0] / 1000.0, mean_us,
                s_pct_us (samples, n, 50), s_pct_us (samples, n, 90),
                s_pct_us (samples, n, 99), s_pct_us (samples, n, 99.9),
                samples [n - 1] / 1000.0);
    else {
        printf ("busd-bench: %s, %" PRIu64 " events of %zu B"
                " (after %" PRIu64 " warm-up), one at a time\n",
                args->rtt ? "round trip A -> busd -> B -> busd -> A (ping-pong)"
                          : "one way, publish -> deliver",
                n, args->size, args->warmup);
        printf ("min %.1f us, mean %.1f us\n", samples [0] / 1000.0, mean_us);
        printf ("p50 %.1f us\np90 %.1f us\np99 %.1f us\np99.9 %.1f us\nmax %.1f us\n",
                s_pct_us (samples, n, 50), s_pct_us (samples, n, 90),
                s_pct_us (samples, n, 99), s_pct_us (samples, n, 99.9),
                samples [n - 1] / 1000.0);
    }
    if (fflush (stdout) != 0)
        goto done;
    exit_code = lost || tool_interrupted || echo.error ? TOOL_EXIT_RUNTIME : TOOL_EXIT_OK;

done:
    if (echo_running) {
        atomic_store (&echo.stop, 1);
        pthread_join (echo_thread, NULL);
    }
    free (samples);
    free (payload);
    free (options);
    busd_client_destroy (&pub);
    busd_client_destroy (&sub);
    return exit_code;
}

/*  ------------------------------------------------------------------------
    Command line                                                            */

static void
s_parse (int argc, char *argv [], bench_args_t *args)
{
    static const struct option longopts [] = {
        TOOL_COMMON_LONGOPTS,
        { "pub",          required_argument, NULL, OPT_PUB },
        { "sub",          required_argument, NULL, OPT_SUB },
        { "size",         required_argument, NULL, OPT_SIZE },
        { "count",        required_argument, NULL, OPT_COUNT },
        { "rate",         required_argument, NULL, OPT_RATE },
        { "overflow",     required_argument, NULL, OPT_OVERFLOW },
        { "queue-limit",  required_argument, NULL, OPT_QUEUE_LIMIT },
        { "credit",       required_argument, NULL, OPT_CREDIT },
        { "topic",        required_argument, NULL, OPT_TOPIC },
        { "latency",      no_argument,       NULL, OPT_LATENCY },
        { "warmup",       required_argument, NULL, OPT_WARMUP },
        { "slow-sub-ms",  required_argument, NULL, OPT_SLOW_SUB_MS },
        { "slow-every",   required_argument, NULL, OPT_SLOW_EVERY },
        { "idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT },
        { "json",         no_argument,       NULL, OPT_JSON },
        { "own-context",  no_argument,       NULL, OPT_OWN_CONTEXT },
        { "rtt",          no_argument,       NULL, OPT_RTT },
        { "no-batch",     no_argument,       NULL, OPT_NO_BATCH },
        { NULL, 0, NULL, 0 }
    };
    bool count_given = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "e:hV", longopts, NULL)) != -1) {
        if (tool_common_option (&args->conn, opt, optarg, s_usage))
            continue;
        switch (opt) {
            case OPT_PUB:
                args->npub = (uint32_t) tool_parse_uint ("--pub", optarg, 1, MAX_PUBLISHERS);
                break;
            case OPT_SUB:
                args->nsub = (uint32_t) tool_parse_uint ("--sub", optarg, 0, 4096);
                break;
            case OPT_SIZE:
                args->size = (size_t) tool_parse_uint ("--size", optarg, HDR_SIZE, 64 << 20);
                break;
            case OPT_COUNT:
                args->count = tool_parse_uint ("--count", optarg, 1, SEQ_MASK);
                count_given = true;
                break;
            case OPT_RATE:
                args->rate = tool_parse_positive ("--rate", optarg);
                break;
            case OPT_OVERFLOW:
                if (strcmp (optarg, "block") && strcmp (optarg, "drop-oldest")
                &&  strcmp (optarg, "drop-new") && strcmp (optarg, "latest")
                &&  strcmp (optarg, "disconnect"))
                    tool_usage_error ("--overflow: '%s' is not block, drop-oldest, "
                                      "drop-new, latest or disconnect", optarg);
                args->overflow = optarg;
                break;
            case OPT_QUEUE_LIMIT:
                args->queue_limit = (int64_t) tool_parse_uint ("--queue-limit", optarg,
                                                               1, UINT32_MAX);
                break;
            case OPT_CREDIT:
                args->credit = (int64_t) tool_parse_uint ("--credit", optarg, 1, UINT32_MAX);
                break;
            case OPT_TOPIC:
                if (busp_topic_check (optarg, strlen (optarg), NULL))
                    tool_usage_error ("--topic: '%s' is not a valid topic", optarg);
                if (optarg [0] == '$')
                    tool_usage_error ("--topic: topics starting with '$' are the broker's");
                args->topic = optarg;
                break;
            case OPT_LATENCY:
                args->latency = true;
                break;
            case OPT_WARMUP:
                args->warmup = tool_parse_uint ("--warmup", optarg, 0, SEQ_MASK);
                break;
            case OPT_SLOW_SUB_MS:
                args->slow_ms = (int) tool_parse_uint ("--slow-sub-ms", optarg, 0, 60000);
                break;
            case OPT_SLOW_EVERY:
                args->slow_every = tool_parse_uint ("--slow-every", optarg, 1, SEQ_MASK);
                break;
            case OPT_IDLE_TIMEOUT:
                args->idle_ms = tool_parse_seconds_ms ("--idle-timeout", optarg);
                if (args->idle_ms < POLL_MS)
                    args->idle_ms = POLL_MS;
                break;
            case OPT_JSON:
                args->json = true;
                break;
            case OPT_OWN_CONTEXT:
                args->own_context = true;
                break;
            case OPT_RTT:
                args->latency = true;
                args->rtt = true;
                break;
            case OPT_NO_BATCH:
                args->conn.no_batch = true;
                break;
            default:
                tool_usage_error ("unknown option");
        }
    }
    if (optind < argc)
        tool_usage_error ("unexpected argument '%s'", argv [optind]);
    if (!count_given)
        args->count = args->latency ? 10000 : 100000;
    if (args->slow_ms > 0 && args->nsub == 0)
        tool_usage_error ("--slow-sub-ms needs at least one subscriber");
    if (args->latency && args->slow_ms > 0)
        tool_usage_error ("--slow-sub-ms is for throughput runs, not --latency or --rtt");
    if (args->rtt) {
        //  The reply topic must be valid too (length, grammar).
        char reply [300];
        int len = snprintf (reply, sizeof reply, "%s.reply", args->topic);
        if (len >= (int) sizeof reply || busp_topic_check (reply, (size_t) len, NULL))
            tool_usage_error ("--rtt: the reply topic '%s.reply' is not a valid topic",
                              args->topic);
    }
    //  The subscribers' bitmaps: one bit per expected event each.
    if (!args->latency && (double) args->npub * (double) args->count
                          * (double) (args->nsub ? args->nsub : 1) > 8e9)
        tool_usage_error ("--pub x --count x --sub is too large to track");
}

int
main (int argc, char *argv [])
{
    bench_args_t args;
    memset (&args, 0, sizeof args);
    tool_init (&args.conn, argv [0]);
    args.npub = 1;
    args.nsub = 1;
    args.size = 128;
    args.queue_limit = -1;
    args.credit = -1;
    args.topic = "bench.events";
    args.warmup = 100;
    args.slow_every = 1;
    args.idle_ms = 10000;
    s_parse (argc, argv, &args);
    if (tool_install_signals () != 0) {
        tool_error ("cannot install signal handlers");
        return TOOL_EXIT_RUNTIME;
    }
    if (!args.own_context) {
        s_zmq_ctx = zmq_ctx_new ();
        if (!s_zmq_ctx) {
            tool_error ("cannot create a ZeroMQ context: %s", zmq_strerror (errno));
            return TOOL_EXIT_RUNTIME;
        }
    }
    int rc = args.latency ? s_latency (&args) : s_throughput (&args);
    //  Every client is destroyed by now, so the context has no sockets.
    if (s_zmq_ctx)
        while (zmq_ctx_term (s_zmq_ctx) < 0 && errno == EINTR)
            ;
    return rc;
}
