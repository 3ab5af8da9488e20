/*  itest_durable.c — the crash test of durable streams (issue 11).

    A confirming libbusd publisher streams events with a msg_id each while
    busd is killed with SIGKILL at random moments and restarted, at least
    20 times.  Meanwhile a durable subscriber and a durable group of three
    workers run as separate processes (this program re-executed in worker
    mode), and they are SIGKILLed and restarted at random too.  Afterwards:
      - every PUBACKed event is in the stream exactly once and in order
        (read back through a fresh durable cursor from "first");
      - the durable subscriber received every event at least once, and
        exactly once after dropping repeated msg_ids;
      - the group received every event at least once across its members.
    Workers write each msg_id to their file with one write(2) before they
    ACK, so a kill can only cause a redelivery, never a lost record.  All
    waits poll with generous deadlines; nothing asserts a speed.             */
#include "busd/client.h"
#include "testbroker.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KILLS        20
#define MAX_EVENTS   1000000
#define WAIT_S       120
#define PUB_RATE     10000      /*  events per second, at most              */

static char s_self [1024];          /*  this program, for worker mode       */
static char s_dir [256];

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  ---- worker mode: a durable subscriber that records and ACKs ---------- */

static int
s_worker (const char *endpoint, const char *durable, const char *group, const char *file)
{
    int fd = open (file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0)
        return 2;
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = endpoint;
    opts.client_name = durable;
    busd_client_t *client = NULL;
    while (!client) {
        client = busd_client_new (&opts, NULL);
        if (!client)
            usleep (100000);
    }
    char options [512];
    snprintf (options, sizeof options,
              "{\"durable\": \"%s\", \"from\": \"first\", \"ack_wait_ms\": 2000, "
              "\"credit\": 200%s%s%s}", durable, *group ? ", \"group\": \"" : "", group,
              *group ? "\"" : "");
    while (true) {
        //  The previous incarnation's session may still hold the name
        //  until the broker notices it is gone: try again.
        int64_t sub = busd_subscribe (client, "crash.#", options, 5000);
        if (sub > 0)
            break;
        usleep (200000);
    }
    while (true) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (client, &msg, 1000);
        if (rc) {
            if (rc != -ETIMEDOUT)
                usleep (50000);
            continue;
        }
        if (busd_msg_kind (msg) == BUSD_MSG_DELIVER) {
            char line [300];
            int len = snprintf (line, sizeof line, "%s\n", busd_msg_msg_id (msg));
            if (write (fd, line, (size_t) len) != len)
                return 3;
            busd_ack (client, msg);
        }
        else
        if (busd_msg_kind (msg) == BUSD_MSG_SUBEND) {
            busd_msg_destroy (&msg);
            while (busd_subscribe (client, "crash.#", options, 5000) <= 0)
                usleep (200000);
            continue;
        }
        busd_msg_destroy (&msg);
    }
    return 0;
}

static pid_t
s_spawn_worker (const char *endpoint, const char *durable, const char *group, const char *file)
{
    pid_t pid = fork ();
    ck_assert_int_ge (pid, 0);
    if (pid == 0) {
        execl (s_self, s_self, "worker", endpoint, durable, group, file, (char *) NULL);
        _exit (127);
    }
    return pid;
}

static void
s_kill_worker (pid_t *pid)
{
    if (*pid > 0) {
        kill (*pid, SIGKILL);
        waitpid (*pid, NULL, 0);
        *pid = 0;
    }
}

/*  ---- the publisher (a thread of the test process) ------------------ */

typedef struct {
    const char *endpoint;
    volatile bool stop;
    uint64_t published;
    uint64_t rejected;
    int flush_rc;
} publisher_t;

static void
s_on_reject (void *arg, uint64_t pub_seq, const char *topic, uint16_t code, const char *reason)
{
    publisher_t *p = arg;
    p->rejected++;
    fprintf (stderr, "itest_durable: REJECT %llu %s: %u %s\n", (unsigned long long) pub_seq,
             topic, code, reason);
}

static void *
s_publisher (void *arg)
{
    publisher_t *p = arg;
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = p->endpoint;
    opts.client_name = "crash-publisher";
    busd_client_t *client = busd_client_new (&opts, NULL);
    ck_assert_ptr_nonnull (client);
    busd_client_set_reject_handler (client, s_on_reject, p);
    int64_t started = s_now_ms ();
    while (!p->stop && p->published < MAX_EVENTS) {
        char msg_id [32], payload [64];
        snprintf (msg_id, sizeof msg_id, "e%07llu", (unsigned long long) p->published);
        int len = snprintf (payload, sizeof payload, "event %llu", (unsigned long long) p->published);
        busd_pub_options_t po = { .msg_id = msg_id, .headers_json = NULL };
        int rc = busd_publish (client, "crash.event", payload, (size_t) len, &po, 200);
        if (rc == 0)
            p->published++;
        else
        if (rc != BUSD_ENOCREDIT)
            usleep (10000);
        //  At most PUB_RATE events a second: every kill lands mid-stream,
        //  and the subscribers' catch-up stays short on a slow machine.
        while (!p->stop && (int64_t) p->published > (s_now_ms () - started) * PUB_RATE / 1000)
            usleep (2000);
    }
    int64_t deadline = s_now_ms () + WAIT_S * 1000;
    do
        p->flush_rc = busd_flush (client, 5000);
    while (p->flush_rc == -ETIMEDOUT && s_now_ms () < deadline);
    busd_client_destroy (&client);
    return NULL;
}

/*  ---- checks --------------------------------------------------------- */

/*  Count distinct e<N> ids in a worker file into seen [] (0..n-1); returns
    the number of distinct ids below n and sets *lines to all lines.        */
static uint64_t
s_read_ids (const char *file, uint8_t *seen, uint64_t n, uint64_t *lines)
{
    memset (seen, 0, n);
    *lines = 0;
    FILE *f = fopen (file, "r");
    if (!f)
        return 0;
    char line [300];
    uint64_t distinct = 0;
    while (fgets (line, sizeof line, f)) {
        (*lines)++;
        unsigned long long id;
        if (sscanf (line, "e%llu", &id) == 1 && id < n && !seen [id]) {
            seen [id] = 1;
            distinct++;
        }
    }
    fclose (f);
    return distinct;
}

static void
s_wait_all (const char *file, uint64_t n, const char *who)
{
    uint8_t *seen = malloc (n ? n : 1);
    ck_assert_ptr_nonnull (seen);
    int64_t deadline = s_now_ms () + WAIT_S * 1000;
    uint64_t distinct = 0, lines = 0;
    while (s_now_ms () < deadline) {
        distinct = s_read_ids (file, seen, n, &lines);
        if (distinct == n)
            break;
        usleep (200000);
    }
    uint64_t first_missing = 0;
    while (first_missing < n && seen [first_missing])
        first_missing++;
    free (seen);
    fprintf (stderr, "itest_durable: %s received %llu of %llu events (%llu deliveries, %llu "
             "repeated after kills)\n", who, (unsigned long long) distinct,
             (unsigned long long) n, (unsigned long long) lines,
             (unsigned long long) (lines - distinct));
    ck_assert_msg (distinct == n, "%s: %llu of %llu events received (first missing e%07llu)",
                   who, (unsigned long long) distinct, (unsigned long long) n,
                   (unsigned long long) first_missing);
}

/*  Read the whole stream through a fresh cursor: e0..e(n-1), in order,
    each exactly once.                                                       */
static void
s_check_stream (const char *endpoint, uint64_t n)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = endpoint;
    opts.client_name = "verify";
    busd_client_t *client = busd_client_new (&opts, NULL);
    ck_assert_ptr_nonnull (client);
    char *reply = NULL;
    int code = busd_ctl (client, "{\"cmd\": \"stream-info\", \"name\": \"crash\"}", &reply, 10000);
    ck_assert_int_eq (code, 200);
    fprintf (stderr, "itest_durable: stream %s\n", reply);
    char expect [64];
    snprintf (expect, sizeof expect, "\"events\":%llu,", (unsigned long long) n);
    ck_assert_msg (strstr (reply, expect), "stream holds another count than %llu PUBACKed: %s",
                   (unsigned long long) n, reply);
    free (reply);
    int64_t sub = busd_subscribe (client, "crash.#",
                                  "{\"durable\": \"verify\", \"from\": \"first\", \"credit\": 5000}",
                                  10000);
    ck_assert_int_gt (sub, 0);
    uint64_t next = 0, last_seq = 0;
    while (next < n) {
        busd_msg_t *msg = NULL;
        int rc = busd_receive (client, &msg, 10000);
        ck_assert_msg (rc == 0, "verify: receive after %llu: %s", (unsigned long long) next,
                       busd_strerror (rc));
        ck_assert_int_eq (busd_msg_kind (msg), BUSD_MSG_DELIVER);
        char expect_id [32];
        snprintf (expect_id, sizeof expect_id, "e%07llu", (unsigned long long) next);
        ck_assert_msg (strcmp (busd_msg_msg_id (msg), expect_id) == 0,
                       "stream position %llu holds %s, expected %s", (unsigned long long) next,
                       busd_msg_msg_id (msg), expect_id);
        ck_assert_uint_gt (busd_msg_stream_seq (msg), last_seq);
        last_seq = busd_msg_stream_seq (msg);
        busd_ack (client, msg);
        busd_msg_destroy (&msg);
        next++;
    }
    busd_msg_t *msg = NULL;
    ck_assert_int_eq (busd_receive (client, &msg, 500), -ETIMEDOUT);
    busd_client_destroy (&client);
}

START_TEST (test_crash_restart)
{
    const char *tmp = getenv ("TMPDIR");
    snprintf (s_dir, sizeof s_dir, "%s/itest_durable_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ck_assert_ptr_nonnull (mkdtemp (s_dir));
    char config [400], sub_file [400], group_file [400];
    snprintf (config, sizeof config, "%s/busd.json", s_dir);
    snprintf (sub_file, sizeof sub_file, "%s/durable.txt", s_dir);
    snprintf (group_file, sizeof group_file, "%s/group.txt", s_dir);
    FILE *f = fopen (config, "w");
    ck_assert_ptr_nonnull (f);
    fprintf (f, "{ \"data_dir\": \"%s/data\", \"heartbeat_ms\": 250, \"session_timeout_ms\": 2000,\n"
                "  \"log_level\": \"notice\",\n"
                "  \"streams\": [{ \"name\": \"crash\", \"patterns\": [\"crash.#\"], \"sync\": \"always\" }] }\n",
             s_dir);
    fclose (f);
    testbroker_t *broker = testbroker_start ("-c", config, NULL);
    ck_assert_ptr_nonnull (broker);
    const char *endpoint = testbroker_endpoint (broker);
    unsigned seed = (unsigned) time (NULL) ^ (unsigned) getpid ();
    fprintf (stderr, "itest_durable: seed %u\n", seed);
    srandom (seed);

    pid_t sub = s_spawn_worker (endpoint, "audit", "", sub_file);
    pid_t group [3];
    for (int i = 0; i < 3; i++)
        group [i] = s_spawn_worker (endpoint, "workers", "billing", group_file);

    publisher_t pub = { .endpoint = endpoint };
    pthread_t thread;
    ck_assert_int_eq (pthread_create (&thread, NULL, s_publisher, &pub), 0);
    int kills_while_publishing = 0;
    for (int kill_no = 0; kill_no < KILLS; kill_no++) {
        usleep ((useconds_t) (150000 + random () % 900000));
        //  Workers die at random too, not only with the broker.
        if (random () % 3 == 0) {
            s_kill_worker (&sub);
            sub = s_spawn_worker (endpoint, "audit", "", sub_file);
        }
        if (random () % 2 == 0) {
            int which = (int) (random () % 3);
            s_kill_worker (&group [which]);
            group [which] = s_spawn_worker (endpoint, "workers", "billing", group_file);
        }
        ck_assert_int_eq (testbroker_kill (broker), 0);
        if (pub.published < MAX_EVENTS)
            kills_while_publishing++;
        if (random () % 2)
            usleep ((useconds_t) (random () % 300000));
        ck_assert_int_eq (testbroker_restart (broker), 0);
    }
    usleep (500000);
    pub.stop = true;
    pthread_join (thread, NULL);
    fprintf (stderr, "itest_durable: %d broker kills, %llu events PUBACKed, %llu rejected\n",
             KILLS, (unsigned long long) pub.published, (unsigned long long) pub.rejected);
    //  The point is kills under load: the publisher must not have run out.
    ck_assert_int_eq (kills_while_publishing, KILLS);
    ck_assert_msg (pub.flush_rc == 0, "final flush: %s", busd_strerror (pub.flush_rc));
    ck_assert_uint_eq (pub.rejected, 0);
    ck_assert_uint_gt (pub.published, 0);

    s_check_stream (endpoint, pub.published);
    s_wait_all (sub_file, pub.published, "durable subscriber");
    s_wait_all (group_file, pub.published, "durable group");

    s_kill_worker (&sub);
    for (int i = 0; i < 3; i++)
        s_kill_worker (&group [i]);
    ck_assert_int_eq (testbroker_stop (broker), 0);
    testbroker_destroy (&broker);
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq (system (cmd), 0);
}
END_TEST

int
main (int argc, char **argv)
{
    if (argc == 6 && strcmp (argv [1], "worker") == 0)
        return s_worker (argv [2], argv [3], argv [4], argv [5]);
    if (!realpath (argv [0], s_self))
        snprintf (s_self, sizeof s_self, "%s", argv [0]);
    //  libtool wrapper scripts re-exec the real binary; /proc says which.
    ssize_t len = readlink ("/proc/self/exe", s_self, sizeof s_self - 1);
    if (len > 0)
        s_self [len] = 0;
    Suite *suite = suite_create ("durable");
    TCase *tc = tcase_create ("crash");
    tcase_set_timeout (tc, 600);
    tcase_add_test (tc, test_crash_restart);
    suite_add_tcase (suite, tc);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
