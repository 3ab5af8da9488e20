/*  itest_backpressure.c — bounded memory and fairness under slow consumers,
    with real processes: a real busd (tests/support/testbroker) and libbusd
    clients in threads and child processes.

    What is asserted is what the protocol promises (PROTOCOL §5, §6): with
    `block`, a slow subscriber throttles only the publishers that feed it,
    every event still arrives exactly once and in order, and the broker's
    memory stays under limit + outstanding credit however many events pass.
    Memory is read from /proc/PID/status, so the claim is about the real
    process, not about internal counters.  Nothing is timed as a pass/fail
    criterion: the machines are shared and noisy.                          */
#include "busd/client.h"
#include "testclient.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000

static long
s_status_kb (pid_t pid, const char *field)
{
    char path [64];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    char line [256];
    long value = -1;
    size_t len = strlen (field);
    while (fgets (line, sizeof line, file))
        if (strncmp (line, field, len) == 0 && line [len] == ':') {
            value = strtol (line + len + 1, NULL, 10);
            break;
        }
    fclose (file);
    return value;
}

static long
s_stat (busd_client_t *client, const char *key)
{
    char *reply = NULL;
    int code = busd_ctl (client, "{\"cmd\":\"stats\"}", &reply, WAIT_MS);
    ck_assert_int_eq (code, 200);
    char pattern [80];
    snprintf (pattern, sizeof pattern, "\"%s\":", key);
    const char *at = strstr (reply, pattern);
    ck_assert_msg (at, "no %s in %s", key, reply);
    long value = strtol (at + strlen (pattern), NULL, 10);
    free (reply);
    return value;
}

/*  ------------------------------------------------------------------------
    A slow `block` subscriber: 2,000,000 events, all in order, memory bounded */

#define SLOW_EVENTS     2000000
#define SLOW_LIMIT      1000
#define SLOW_CREDIT     200
#define PAYLOAD_SIZE    100

typedef struct {
    testbroker_t *broker;
    long events;
    long received;
    long out_of_order;
    long gaps;
    volatile int done;
} slow_ctx_t;

static void *
s_slow_subscriber (void *arg)
{
    slow_ctx_t *ctx = arg;
    busd_client_t *client = testclient_new (ctx->broker, "slow-sub", WAIT_MS);
    char options [128];
    snprintf (options, sizeof options, "{\"credit\": %d, \"queue_limit\": %d}", SLOW_CREDIT, SLOW_LIMIT);
    int64_t sub = busd_subscribe (client, "slow.events", options, WAIT_MS);
    ck_assert_int_gt (sub, 0);
    ctx->done = 1;              /*  subscribed: the publisher may start     */
    long expect = 0;
    while (ctx->received < ctx->events) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (client, &msg, WAIT_MS);
        if (rc != 0)
            break;
        if (busd_msg_kind (msg) == BUSD_MSG_DELIVER) {
            long seq = 0;
            memcpy (&seq, busd_msg_payload (msg), sizeof seq);
            if (seq != expect)
                ctx->out_of_order++;
            expect = seq + 1;
            ctx->received++;
            //  Slow: stop reading for a while now and then, long enough for
            //  the queue to fill and the publisher to be throttled.
            if (ctx->received % 50000 == 0)
                usleep (30000);
        }
        else
            ctx->gaps++;
        busd_msg_destroy (&msg);
    }
    busd_client_destroy (&client);
    ctx->done = 2;
    return NULL;
}

START_TEST (slow_block_subscriber_bounded_memory)
{
    //  A small ASan quarantine keeps freed memory from looking like growth.
    setenv ("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=4:malloc_context_size=5", 1);
    testbroker_t *broker = testbroker_start (NULL);
    ck_assert_ptr_nonnull (broker);
    pid_t pid = testbroker_pid (broker);
    slow_ctx_t ctx = { .broker = broker, .events = SLOW_EVENTS };
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_slow_subscriber, &ctx), 0);
    while (ctx.done == 0)
        usleep (1000);
    busd_client_t *pub = testclient_new (broker, "fast-pub", WAIT_MS);
    long baseline = s_status_kb (pid, "VmRSS");
    ck_assert_int_gt (baseline, 0);
    //  Bound: what the broker may hold for this queue (its limit plus the
    //  publisher's credit window plus the subscriber's credit in transit),
    //  at a generous 1 KiB per 100-byte event, plus fixed slack for the
    //  allocator and ZeroMQ's buffers.  Unbounded queueing of 2M events
    //  would need hundreds of MB.
    long bound = baseline + (SLOW_LIMIT + 1000 + SLOW_CREDIT) * 1 + 48 * 1024;
    long peak = baseline;
    char payload [PAYLOAD_SIZE];
    memset (payload, 'x', sizeof payload);
    for (long i = 0; i < SLOW_EVENTS; i++) {
        memcpy (payload, &i, sizeof i);
        int rc = busd_publish (pub, "slow.events", payload, sizeof payload, NULL, WAIT_MS * 3);
        ck_assert_msg (rc == 0, "publish %ld: %s", i, busd_strerror (rc));
        if (i % 20000 == 0) {
            long rss = s_status_kb (pid, "VmRSS");
            if (rss > peak)
                peak = rss;
        }
    }
    ck_assert_int_eq (busd_flush (pub, WAIT_MS * 3), 0);
    long throttles = s_stat (pub, "throttle_events");
    pthread_join (thread, NULL);
    long rss = s_status_kb (pid, "VmRSS");
    if (rss > peak)
        peak = rss;
    fprintf (stderr, "slow block subscriber: %ld events, RSS baseline %ld kB, peak %ld kB, "
             "bound %ld kB, throttled %ld times\n", ctx.received, baseline, peak, bound, throttles);
    ck_assert_int_eq (ctx.received, SLOW_EVENTS);
    ck_assert_int_eq (ctx.out_of_order, 0);
    ck_assert_int_eq (ctx.gaps, 0);
    ck_assert_msg (throttles > 0, "the publisher was never throttled: the test proved nothing");
    ck_assert_msg (peak <= bound, "broker RSS peaked at %ld kB, above the bound %ld kB", peak, bound);
    busd_client_destroy (&pub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    A stuck subscriber throttles its publisher and nobody else              */

typedef struct {
    testbroker_t *broker;
    long events;
    long received;
    volatile int stop;
} fast_ctx_t;

static void *
s_fast_subscriber (void *arg)
{
    fast_ctx_t *ctx = arg;
    busd_client_t *client = testclient_new (ctx->broker, "fast-sub", WAIT_MS);
    ck_assert_int_gt (busd_subscribe (client, "fast.events", NULL, WAIT_MS), 0);
    ctx->received = -1;
    while (ctx->received < ctx->events && !ctx->stop) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (client, &msg, 200);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc != 0)
            break;
        if (busd_msg_kind (msg) == BUSD_MSG_DELIVER)
            ctx->received = ctx->received < 0 ? 1 : ctx->received + 1;
        busd_msg_destroy (&msg);
    }
    busd_client_destroy (&client);
    return NULL;
}

START_TEST (stuck_subscriber_throttles_only_its_publisher)
{
    testbroker_t *broker = testbroker_start ("--pub-credit", "100", NULL);
    ck_assert_ptr_nonnull (broker);
    //  A subscriber that never grants credit.
    busd_client_t *stuck = testclient_new (broker, "stuck-sub", WAIT_MS);
    ck_assert_int_gt (busd_subscribe (stuck, "slow.events",
                                      "{\"credit\": 0, \"queue_limit\": 50}", WAIT_MS), 0);
    fast_ctx_t fast = { .broker = broker, .events = 100000 };
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_fast_subscriber, &fast), 0);
    while (fast.received == 0)
        usleep (1000);

    //  The slow topic's publisher runs out of credit: queue_limit plus its
    //  window, then a non-blocking publish says "no credit".
    busd_client_t *slow_pub = testclient_new (broker, "slow-pub", WAIT_MS);
    long sent = 0;
    int rc = 0;
    while (sent < 10000) {
        rc = busd_publish (slow_pub, "slow.events", "x", 1, NULL, 500);
        if (rc != 0)
            break;
        sent++;
    }
    ck_assert_msg (rc == BUSD_ENOCREDIT, "slow publisher was never throttled (%ld sent, rc %d)", sent, rc);
    ck_assert_int_le (sent, 50 + 1 + 100 + 100);

    //  Meanwhile a second publisher on another topic runs at full speed.
    busd_client_t *fast_pub = testclient_new (broker, "fast-pub", WAIT_MS);
    for (long i = 0; i < fast.events; i++) {
        rc = busd_publish (fast_pub, "fast.events", "y", 1, NULL, WAIT_MS);
        ck_assert_msg (rc == 0, "fast publisher blocked at %ld: %s", i, busd_strerror (rc));
    }
    ck_assert_int_eq (busd_flush (fast_pub, WAIT_MS), 0);
    for (int tries = 0; tries < 600 && fast.received < fast.events; tries++)
        usleep (50000);
    fast.stop = 1;
    pthread_join (thread, NULL);
    ck_assert_int_eq (fast.received, fast.events);

    //  The operator can see who is slow and whom it holds back.
    char *reply = NULL;
    ck_assert_int_eq (busd_ctl (fast_pub, "{\"cmd\":\"subscriptions\"}", &reply, WAIT_MS), 200);
    ck_assert_msg (strstr (reply, "\"throttled_publishers\":[\"slow-pub\"]"), "%s", reply);
    free (reply);
    ck_assert_int_eq (s_stat (fast_pub, "throttled_publishers"), 1);

    //  The stuck subscriber leaves: the throttle lifts, the publisher's
    //  withheld credit returns.
    busd_client_destroy (&stuck);
    rc = busd_publish (slow_pub, "slow.events", "x", 1, NULL, WAIT_MS);
    ck_assert_msg (rc == 0, "throttle did not lift: %s", busd_strerror (rc));
    ck_assert_int_eq (busd_flush (slow_pub, WAIT_MS), 0);
    ck_assert_int_eq (s_stat (fast_pub, "throttled_publishers"), 0);
    busd_client_destroy (&slow_pub);
    busd_client_destroy (&fast_pub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

/*  ------------------------------------------------------------------------
    A queue group of three: each event once; a killed member's events move  */

#define GROUP_EVENTS 30000

typedef struct {
    testbroker_t *broker;
    unsigned char *seen;        /*  per event: deliveries acknowledged      */
    pthread_mutex_t *lock;
    long received;
    volatile int ready;
    volatile int stop;
} member_ctx_t;

static void *
s_member (void *arg)
{
    member_ctx_t *ctx = arg;
    busd_client_t *client = testclient_new (ctx->broker, "member", WAIT_MS);
    ck_assert_int_gt (busd_subscribe (client, "jobs.*",
        "{\"group\": \"workers\", \"ack\": \"explicit\", \"credit\": 100, \"ack_wait_ms\": 60000}",
        WAIT_MS), 0);
    ctx->ready = 1;
    while (!ctx->stop) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (client, &msg, 200);
        if (rc == -ETIMEDOUT)
            continue;
        ck_assert_int_eq (rc, 0);
        if (busd_msg_kind (msg) == BUSD_MSG_DELIVER) {
            long seq = 0;
            memcpy (&seq, busd_msg_payload (msg), sizeof seq);
            pthread_mutex_lock (ctx->lock);
            if (seq >= 0 && seq < GROUP_EVENTS)
                ctx->seen [seq]++;
            pthread_mutex_unlock (ctx->lock);
            ctx->received++;
            ck_assert_int_eq (busd_ack (client, msg), 0);
        }
        busd_msg_destroy (&msg);
    }
    busd_client_destroy (&client);
    return NULL;
}

START_TEST (group_member_killed_mid_stream)
{
    testbroker_t *broker = testbroker_start ("--session-timeout", "1500", "--heartbeat", "300", NULL);
    ck_assert_ptr_nonnull (broker);
    //  The victim: a separate process in the group that takes deliveries
    //  and never acknowledges them, then is killed with SIGKILL.
    int ready [2];
    ck_assert_int_eq (pipe (ready), 0);
    pid_t victim = fork ();
    ck_assert_int_ge (victim, 0);
    if (victim == 0) {
        close (ready [0]);
        busd_client_options_t opts;
        busd_client_options_init (&opts);
        opts.endpoint = testbroker_endpoint (broker);
        opts.client_name = "victim";
        busd_client_t *client = busd_client_new (&opts, NULL);
        if (!client || busd_subscribe (client, "jobs.*",
                "{\"group\": \"workers\", \"ack\": \"explicit\", \"credit\": 500, \"ack_wait_ms\": 60000}",
                WAIT_MS) <= 0)
            _exit (1);
        if (write (ready [1], "r", 1) != 1)
            _exit (1);
        //  Hold what arrives, acknowledge nothing, until killed.
        while (1) {
            busd_msg_t *msg = NULL;
            if (busd_receive (client, &msg, 1000) == 0)
                busd_msg_destroy (&msg);
        }
    }
    close (ready [1]);
    char byte;
    ck_assert_int_eq (read (ready [0], &byte, 1), 1);
    close (ready [0]);

    unsigned char *seen = calloc (GROUP_EVENTS, 1);
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    member_ctx_t members [2];
    pthread_t threads [2];
    for (int i = 0; i < 2; i++) {
        members [i] = (member_ctx_t) { .broker = broker, .seen = seen, .lock = &lock };
        ck_assert_int_eq (pthread_create (&threads [i], NULL, s_member, &members [i]), 0);
        while (!members [i].ready)
            usleep (1000);
    }
    busd_client_t *pub = testclient_new (broker, "jobs-pub", WAIT_MS);
    char payload [32] = { 0 };
    for (long i = 0; i < GROUP_EVENTS; i++) {
        memcpy (payload, &i, sizeof i);
        ck_assert_int_eq (busd_publish (pub, "jobs.email", payload, sizeof payload, NULL, WAIT_MS), 0);
        if (i == GROUP_EVENTS / 2)
            kill (victim, SIGKILL);
    }
    ck_assert_int_eq (busd_flush (pub, WAIT_MS), 0);
    int status;
    waitpid (victim, &status, 0);
    //  Wait until every event has been acknowledged by a surviving member
    //  (the victim's in-flight ones come back once its session is gone).
    long missing = GROUP_EVENTS;
    for (int tries = 0; tries < 300 && missing > 0; tries++) {
        usleep (100000);
        missing = 0;
        pthread_mutex_lock (&lock);
        for (long i = 0; i < GROUP_EVENTS; i++)
            if (seen [i] == 0)
                missing++;
        pthread_mutex_unlock (&lock);
    }
    for (int i = 0; i < 2; i++)
        members [i].stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join (threads [i], NULL);
    long twice = 0;
    for (long i = 0; i < GROUP_EVENTS; i++)
        if (seen [i] > 1)
            twice++;
    fprintf (stderr, "group: members got %ld and %ld, missing %ld, twice %ld\n",
             members [0].received, members [1].received, missing, twice);
    ck_assert_int_eq (missing, 0);
    ck_assert_int_eq (twice, 0);
    ck_assert_int_gt (members [0].received, 0);
    ck_assert_int_gt (members [1].received, 0);
    //  The victim really held some: the survivors got redeliveries.
    ck_assert_int_gt (s_stat (pub, "redelivered"), 0);
    free (seen);
    busd_client_destroy (&pub);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
}
END_TEST

int
main (void)
{
    Suite *suite = suite_create ("backpressure");
    TCase *tc = tcase_create ("backpressure");
    tcase_set_timeout (tc, 600);
    tcase_add_test (tc, stuck_subscriber_throttles_only_its_publisher);
    tcase_add_test (tc, group_member_killed_mid_stream);
    tcase_add_test (tc, slow_block_subscriber_bounded_memory);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? 1 : 0;
}
