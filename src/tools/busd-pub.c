/*  busd-pub.c — publish events from the command line.

    Owns the input modes (argument, file, stdin as one event, stdin line by
    line), pacing, idempotency keys and the end-of-run flush.  Every run ends
    with a flush, confirmed or not: the PUBs sit in a ZeroMQ queue until the
    broker has them, and a tool that exits before the PUBACK would silently
    lose the tail of its input.  --confirm only decides whether the outcome
    of that flush becomes the exit status.                                   */
#include "tool.h"
#include "topic.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum {
    SRC_NONE = 0,
    SRC_MESSAGE,                    /*  -m TEXT                               */
    SRC_FILE,                       /*  -f FILE                               */
    SRC_STDIN,                      /*  -s                                    */
    SRC_LINES,                      /*  -l                                    */
    SRC_NULL                        /*  -n                                    */
} source_t;

typedef struct {
    tool_conn_t conn;
    const char *topic;
    source_t source;
    int sources_given;              /*  more than one is a usage error        */
    const char **messages;          /*  -m TEXT, repeatable: one event each   */
    size_t nmessages;
    const char *file;
    bool topic_from_line;
    const char *msg_id;
    bool id_auto;
    cJSON *headers;                 /*  -H pairs, or NULL                     */
    uint64_t count;
    bool count_given;
    double rate;                    /*  events per second, 0 = unpaced        */
    bool confirm;
    int timeout_ms;
    bool quiet;
} pub_args_t;

typedef struct {
    busd_client_t *client;
    const pub_args_t *args;
    char *headers_json;             /*  serialised args->headers              */
    int urandom_fd;                 /*  for --id-auto, else -1                */
    uint64_t sent;
    uint64_t rejected;
    int64_t start_ms;
    bool bad_input;                 /*  some -l line was skipped              */
    int64_t waited_ms;              /*  --confirm: time spent waiting on the
                                        broker (credit, acks): --timeout bounds
                                        it over the whole run                 */
} pub_t;

enum {
    OPT_TOPIC_FROM_LINE = 0x2000,
    OPT_ID,
    OPT_ID_AUTO,
    OPT_COUNT,
    OPT_RATE,
    OPT_CONFIRM,
    OPT_TIMEOUT,
    OPT_NO_BATCH
};

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: busd-pub [OPTION]... -t TOPIC (-m TEXT | -f FILE | -s | -l | -n)\n"
        "       busd-pub [OPTION]... -l --topic-from-line\n"
        "Publish events to a busd broker.\n"
        "\n"
        "Message (exactly one):\n"
        "  -m, --message TEXT       publish TEXT (repeatable: one event each, in order)\n"
        "  -f, --file FILE          publish the whole FILE as one event ('-' = stdin)\n"
        "  -s, --stdin              publish all of stdin as one event\n"
        "  -l, --lines              publish one event per stdin line (newline removed)\n"
        "  -n, --null               publish an empty payload\n"
        "\n"
        "Event:\n"
        "  -t, --topic TOPIC        topic to publish to (required unless --topic-from-line)\n"
        "      --topic-from-line    with -l: each line is TOPIC<TAB>PAYLOAD\n"
        "                           (-l: a line that cannot be published, a bad topic\n"
        "                           or one over max_payload, is reported on stderr and\n"
        "                           skipped; the exit status is then 4)\n"
        "      --id MSG_ID          idempotency key (the broker drops repeats)\n"
        "      --id-auto            a fresh UUID v4 idempotency key per event\n"
        "  -H, --header KEY=VALUE   add a header (repeatable)\n"
        "      --count N            publish the message N times (not with -l)\n"
        "      --rate PER_SEC       publish at most PER_SEC events per second\n"
        "\n"
        "Delivery:\n"
        "      --confirm            make acknowledgement part of the exit status:\n"
        "                           4 if any event is rejected, 5 if not all are\n"
        "                           sent and acknowledged within --timeout, which\n"
        "                           then bounds all waiting on the broker in the run\n"
        "                           (connect, throttling, acknowledgements)\n"
        "      --timeout SEC        how long to wait for acknowledgements at the\n"
        "                           end (default 10)\n"
        "  -q, --quiet              do not report rejections and warnings\n"
        "      --no-batch           one PUB frame per event (default: events published\n"
        "                           faster than they can be sent share a PUBB frame\n"
        "                           when the broker offers the batch feature)\n"
        "\n"
        "Without --confirm, busd-pub still waits up to --timeout for the broker to\n"
        "acknowledge what it sent, reports rejections and unacknowledged events on\n"
        "stderr, and exits 0.\n"
        "\n"
        TOOL_CONNECT_HELP
        "\n"
        TOOL_EXIT_HELP);
}

static void
s_add_header (pub_args_t *args, const char *arg)
{
    const char *eq = strchr (arg, '=');
    if (!eq || eq == arg)
        tool_usage_error ("-H: '%s' is not KEY=VALUE", arg);
    size_t klen = (size_t) (eq - arg);
    char *key = strndup (arg, klen);
    if (!key)
        tool_oom ();
    if (!args->headers && !(args->headers = cJSON_CreateObject ()))
        tool_oom ();
    cJSON *value = cJSON_CreateString (eq + 1);
    if (!value)
        tool_oom ();
    //  The last -H for a key wins, as with repeated HTTP-style overrides;
    //  a JSON object with duplicate keys would be ambiguous to receivers.
    if (cJSON_GetObjectItemCaseSensitive (args->headers, key))
        cJSON_ReplaceItemInObjectCaseSensitive (args->headers, key, value);
    else
        cJSON_AddItemToObject (args->headers, key, value);
    free (key);
}

static void
s_set_source (pub_args_t *args, source_t source)
{
    if (args->source != source)
        args->sources_given++;
    args->source = source;
}

static void
s_parse_args (pub_args_t *args, int argc, char **argv)
{
    static const struct option longopts [] = {
        TOOL_COMMON_LONGOPTS,
        { "topic",           required_argument, NULL, 't' },
        { "message",         required_argument, NULL, 'm' },
        { "file",            required_argument, NULL, 'f' },
        { "stdin",           no_argument,       NULL, 's' },
        { "lines",           no_argument,       NULL, 'l' },
        { "null",            no_argument,       NULL, 'n' },
        { "header",          required_argument, NULL, 'H' },
        { "quiet",           no_argument,       NULL, 'q' },
        { "topic-from-line", no_argument,       NULL, OPT_TOPIC_FROM_LINE },
        { "id",              required_argument, NULL, OPT_ID },
        { "id-auto",         no_argument,       NULL, OPT_ID_AUTO },
        { "count",           required_argument, NULL, OPT_COUNT },
        { "rate",            required_argument, NULL, OPT_RATE },
        { "confirm",         no_argument,       NULL, OPT_CONFIRM },
        { "timeout",         required_argument, NULL, OPT_TIMEOUT },
        { "no-batch",        no_argument,       NULL, OPT_NO_BATCH },
        { NULL, 0, NULL, 0 }
    };
    args->count = 1;
    args->timeout_ms = 10000;

    int opt;
    while ((opt = getopt_long (argc, argv, "e:t:m:f:slnH:qhV", longopts, NULL)) != -1) {
        if (tool_common_option (&args->conn, opt, optarg, s_usage))
            continue;
        switch (opt) {
            case 't': args->topic = optarg; break;
            case 'm':
                s_set_source (args, SRC_MESSAGE);
                tool_list_add (&args->messages, &args->nmessages, optarg);
                break;
            case 'f': s_set_source (args, SRC_FILE); args->file = optarg; break;
            case 's': s_set_source (args, SRC_STDIN); break;
            case 'l': s_set_source (args, SRC_LINES); break;
            case 'n': s_set_source (args, SRC_NULL); break;
            case 'H': s_add_header (args, optarg); break;
            case 'q': args->quiet = true; break;
            case OPT_TOPIC_FROM_LINE: args->topic_from_line = true; break;
            case OPT_ID:
                if (strlen (optarg) > 255)
                    tool_usage_error ("--id: a msg_id is at most 255 bytes");
                args->msg_id = optarg;
                break;
            case OPT_ID_AUTO: args->id_auto = true; break;
            case OPT_COUNT:
                args->count = tool_parse_uint ("--count", optarg, 1, UINT64_MAX);
                args->count_given = true;
                break;
            case OPT_RATE: args->rate = tool_parse_positive ("--rate", optarg); break;
            case OPT_CONFIRM: args->confirm = true; break;
            case OPT_NO_BATCH: args->conn.no_batch = true; break;
            case OPT_TIMEOUT:
                args->timeout_ms = tool_parse_seconds_ms ("--timeout", optarg);
                break;
            default:
                tool_try_help ();
        }
    }
    if (optind < argc)
        tool_usage_error ("unexpected argument '%s'", argv [optind]);
    if (args->sources_given == 0)
        tool_usage_error ("no message: give one of -m TEXT, -f FILE, -s, -l or -n");
    if (args->sources_given > 1)
        tool_usage_error ("give only one of -m, -f, -s, -l and -n");
    if (args->topic_from_line) {
        if (args->source != SRC_LINES)
            tool_usage_error ("--topic-from-line needs -l");
        if (args->topic)
            tool_usage_error ("-t and --topic-from-line exclude each other");
    }
    else {
        if (!args->topic)
            tool_usage_error ("no topic: give -t TOPIC");
        const char *why = NULL;
        if (busp_topic_check (args->topic, strlen (args->topic), &why) != 0)
            tool_usage_error ("invalid topic '%s': %s", args->topic, why ? why : "bad topic");
    }
    if (args->msg_id && args->id_auto)
        tool_usage_error ("--id and --id-auto exclude each other");
    if (args->count_given && args->source == SRC_LINES)
        tool_usage_error ("--count cannot be used with -l");
}

static void
s_on_reject (void *arg, uint64_t pub_seq, const char *topic, uint16_t code,
             const char *reason)
{
    pub_t *self = (pub_t *) arg;
    self->rejected++;
    if (!self->args->quiet)
        tool_error ("rejected: topic '%s' (pub_seq %llu): %u %s",
                    topic ? topic : "?", (unsigned long long) pub_seq,
                    (unsigned) code, reason ? reason : "");
}

//  RFC 4122 version 4: random except the version nibble and variant bits.
static int
s_uuid4 (pub_t *self, char out [37])
{
    uint8_t b [16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = read (self->urandom_fd, b + got, sizeof b - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        got += (size_t) n;
    }
    b [6] = (uint8_t) ((b [6] & 0x0F) | 0x40);
    b [8] = (uint8_t) ((b [8] & 0x3F) | 0x80);
    snprintf (out, 37,
              "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
              b [0], b [1], b [2], b [3], b [4], b [5], b [6], b [7],
              b [8], b [9], b [10], b [11], b [12], b [13], b [14], b [15]);
    return 0;
}

//  Wait until the next event is due under --rate, keeping the session
//  alive (PUBACKs, PINGs) while we wait.
static void
s_pace (pub_t *self)
{
    if (self->args->rate <= 0)
        return;
    double due = (double) self->start_ms + (double) self->sent * 1000.0 / self->args->rate;
    while (!tool_interrupted) {
        int64_t now = tool_now_ms ();
        if ((double) now >= due)
            return;
        int wait = (int) (due - (double) now) + 1;
        if (wait > 200)
            wait = 200;
        int rc = busd_client_poll (self->client, wait);
        if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR && rc != -EAGAIN) {
            //  Nothing to do about it here; the next publish reports a
            //  persistent failure.  Sleep so we do not spin.
            usleep ((useconds_t) wait * 1000);
        }
    }
}

/*  Publish one event.  Returns TOOL_EXIT_OK, -1 when interrupted before it
    was sent, or an exit code.                                               */
static int
s_publish (pub_t *self, const char *topic, const void *payload, size_t size)
{
    s_pace (self);
    if (tool_interrupted)
        return -1;

    char uuid [37];
    busd_pub_options_t opts = { .msg_id = self->args->msg_id,
                                .headers_json = self->headers_json };
    if (self->args->id_auto) {
        int rc = s_uuid4 (self, uuid);
        if (rc != 0) {
            tool_error ("cannot read /dev/urandom: %s", strerror (-rc));
            return TOOL_EXIT_RUNTIME;
        }
        opts.msg_id = uuid;
    }
    int64_t wait_start = tool_now_ms ();
    while (true) {
        //  Short waits for credit so that Ctrl-C is noticed while a full
        //  `block` queue throttles us; otherwise wait as long as it takes:
        //  that is what backpressure asks of a publisher.
        int rc = busd_publish (self->client, topic, payload, size, &opts, 200);
        if (rc == 0) {
            self->sent++;
            self->waited_ms += tool_now_ms () - wait_start;
            return TOOL_EXIT_OK;
        }
        if (rc == BUSD_ENOCREDIT || rc == -EINTR || rc == -EAGAIN || rc == -ETIMEDOUT) {
            if (tool_interrupted)
                return -1;
            //  --confirm promises an answer within --timeout, throttled or not.
            if (self->args->confirm
            &&  self->waited_ms + tool_now_ms () - wait_start >= self->args->timeout_ms) {
                self->waited_ms = self->args->timeout_ms;
                tool_error ("throttled: no publisher credit within --timeout %.1f s "
                            "(%llu events sent)", self->args->timeout_ms / 1000.0,
                            (unsigned long long) self->sent);
                return TOOL_EXIT_TIMEOUT;
            }
            continue;
        }
        if (rc == -EMSGSIZE) {
            tool_error ("event of %zu bytes on '%s' exceeds the broker's max_payload (%u bytes)",
                        size, topic, (unsigned) busd_client_max_payload (self->client));
            return TOOL_EXIT_RUNTIME;
        }
        if (rc == -EINVAL) {
            tool_error ("cannot publish to '%s': %s", topic, busd_strerror (rc));
            return TOOL_EXIT_USAGE;
        }
        tool_error ("cannot publish to '%s': %s", topic, busd_strerror (rc));
        return TOOL_EXIT_RUNTIME;
    }
}

static int
s_publish_lines (pub_t *self)
{
    char *line = NULL;
    size_t cap = 0;
    uint64_t lineno = 0;
    int rc = TOOL_EXIT_OK;
    while (rc == TOOL_EXIT_OK && !tool_interrupted) {
        errno = 0;
        ssize_t len = getline (&line, &cap, stdin);
        if (len < 0) {
            if (ferror (stdin)) {
                if (errno == EINTR && !tool_interrupted) {
                    clearerr (stdin);
                    continue;
                }
                if (!tool_interrupted) {
                    tool_error ("cannot read stdin: %s", strerror (errno ? errno : EIO));
                    rc = TOOL_EXIT_RUNTIME;
                }
            }
            break;
        }
        lineno++;
        size_t n = (size_t) len;
        if (n > 0 && line [n - 1] == '\n')
            n--;
        line [n] = '\0';

        const char *topic = self->args->topic;
        const char *payload = line;
        size_t size = n;
        if (self->args->topic_from_line) {
            char *tab = memchr (line, '\t', n);
            if (!tab) {
                tool_error ("line %llu: no TAB between topic and payload; line skipped",
                            (unsigned long long) lineno);
                self->bad_input = true;
                continue;
            }
            *tab = '\0';
            const char *why = NULL;
            if (busp_topic_check (line, (size_t) (tab - line), &why) != 0) {
                tool_error ("line %llu: invalid topic '%s': %s; line skipped",
                            (unsigned long long) lineno, line, why ? why : "bad topic");
                self->bad_input = true;
                continue;
            }
            topic = line;
            payload = tab + 1;
            size = n - (size_t) (tab + 1 - line);
        }
        //  One rule for every line that cannot be published: reported,
        //  skipped, exit status 4 at the end (like a REJECT would be).
        if (size > busd_client_max_payload (self->client)) {
            tool_error ("line %llu: %zu bytes exceed the broker's max_payload (%u bytes); "
                        "line skipped", (unsigned long long) lineno, size,
                        (unsigned) busd_client_max_payload (self->client));
            self->bad_input = true;
            continue;
        }
        rc = s_publish (self, topic, payload, size);
        if (rc == -1)
            rc = TOOL_EXIT_OK;      //  interrupted: a normal end of input
    }
    free (line);
    return rc;
}

//  Wait for the broker to acknowledge everything sent.  Returns 0 when all
//  were answered, -ETIMEDOUT, or another negative code.
static int
s_flush (pub_t *self)
{
    int64_t budget = self->args->timeout_ms;
    if (self->args->confirm)
        budget = budget > self->waited_ms ? budget - self->waited_ms : 0;
    int64_t deadline = tool_now_ms () + budget;
    while (true) {
        int64_t left = deadline - tool_now_ms ();
        if (left < 0)
            left = 0;
        //  Slices, so that a broker error surfaces and the clock is ours.
        int slice = left > 250 ? 250 : (int) left;
        int rc = busd_flush (self->client, slice);
        if (rc == 0 || rc == BUSD_EREJECTED)
            return 0;
        if (rc != -ETIMEDOUT && rc != -EINTR && rc != -EAGAIN)
            return rc;
        if (left == 0)
            return busd_client_unacked (self->client) == 0 ? 0 : -ETIMEDOUT;
    }
}

static int
s_read_input (const pub_args_t *args, char **data_p, size_t *size_p)
{
    if (args->source == SRC_MESSAGE) {
        //  The messages stay in argv; main publishes each in turn.
        *size_p = 0;
        *data_p = strdup ("");
    }
    else
    if (args->source == SRC_NULL) {
        *size_p = 0;
        *data_p = strdup ("");
    }
    else {
        bool use_stdin = args->source == SRC_STDIN || strcmp (args->file, "-") == 0;
        FILE *in = use_stdin ? stdin : fopen (args->file, "rb");
        if (!in) {
            tool_error ("cannot open '%s': %s", args->file, strerror (errno));
            return TOOL_EXIT_RUNTIME;
        }
        int rc = tool_read_all (in, data_p, size_p);
        if (!use_stdin && fclose (in) != 0 && rc == 0) {
            free (*data_p);
            rc = -errno;
        }
        if (rc != 0) {
            if (rc == -EINTR && tool_interrupted)
                return -1;
            tool_error ("cannot read %s%s%s: %s", use_stdin ? "stdin" : "'",
                        use_stdin ? "" : args->file, use_stdin ? "" : "'",
                        strerror (-rc));
            return TOOL_EXIT_RUNTIME;
        }
        return TOOL_EXIT_OK;
    }
    if (!*data_p) {
        tool_error ("out of memory");
        return TOOL_EXIT_RUNTIME;
    }
    return TOOL_EXIT_OK;
}

int
main (int argc, char **argv)
{
    pub_args_t args;
    memset (&args, 0, sizeof args);
    tool_init (&args.conn, argv [0]);
    s_parse_args (&args, argc, argv);

    pub_t self;
    memset (&self, 0, sizeof self);
    self.args = &args;
    self.urandom_fd = -1;
    int rc = TOOL_EXIT_OK;
    char *data = NULL;
    size_t size = 0;

    if (tool_install_signals () != 0) {
        tool_error ("cannot install signal handlers: %s", strerror (errno));
        return TOOL_EXIT_RUNTIME;
    }
    if (args.headers) {
        self.headers_json = cJSON_PrintUnformatted (args.headers);
        if (!self.headers_json) {
            tool_error ("out of memory");
            return TOOL_EXIT_RUNTIME;
        }
    }
    if (args.id_auto) {
        self.urandom_fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (self.urandom_fd < 0) {
            tool_error ("cannot open /dev/urandom: %s", strerror (errno));
            rc = TOOL_EXIT_RUNTIME;
            goto done;
        }
    }
    //  Read a file or stdin before connecting: a missing file is the
    //  user's mistake and should not cost a session.
    if (args.source != SRC_LINES) {
        rc = s_read_input (&args, &data, &size);
        if (rc == -1) {
            rc = TOOL_EXIT_OK;      //  interrupted while reading: nothing sent
            goto done;
        }
        if (rc != TOOL_EXIT_OK)
            goto done;
    }
    //  --confirm: --timeout is the budget for waiting on the broker over the
    //  whole run (connecting, throttling, acknowledgements), not only for
    //  the final wait; waiting for our own input does not count.
    if (args.confirm && args.conn.connect_timeout_ms > args.timeout_ms)
        args.conn.connect_timeout_ms = args.timeout_ms > 0 ? args.timeout_ms : 1;
    int64_t connect_start = tool_now_ms ();
    rc = tool_connect (&args.conn, &self.client);
    self.waited_ms = tool_now_ms () - connect_start;
    if (rc != TOOL_EXIT_OK) {
        if (tool_interrupted)
            rc = TOOL_EXIT_OK;      //  stopped before anything was sent
        goto done;
    }
    busd_client_set_reject_handler (self.client, s_on_reject, &self);

    self.start_ms = tool_now_ms ();
    if (args.source == SRC_LINES)
        rc = s_publish_lines (&self);
    else {
        for (uint64_t i = 0; i < args.count && rc == TOOL_EXIT_OK; i++) {
            if (args.source == SRC_MESSAGE)
                for (size_t m = 0; m < args.nmessages && rc == TOOL_EXIT_OK; m++)
                    rc = s_publish (&self, args.topic, args.messages [m],
                                    strlen (args.messages [m]));
            else
                rc = s_publish (&self, args.topic, data, size);
        }
        if (rc == -1)
            rc = TOOL_EXIT_OK;      //  interrupted: flush what was sent
    }

    //  Always flush, even after an error: what was sent deserves its
    //  answer, and the rejections it brings are reported.
    if (self.sent > 0) {
        int frc = s_flush (&self);
        if (frc == -ETIMEDOUT) {
            unsigned long long unacked = (unsigned long long) busd_client_unacked (self.client);
            if (args.confirm) {
                tool_error ("%llu of %llu events not acknowledged within %.1f s",
                            unacked, (unsigned long long) self.sent, args.timeout_ms / 1000.0);
                if (rc == TOOL_EXIT_OK)
                    rc = TOOL_EXIT_TIMEOUT;
            }
            else
            if (!args.quiet)
                tool_error ("warning: %llu of %llu events not acknowledged within %.1f s; "
                            "they may be lost", unacked, (unsigned long long) self.sent,
                            args.timeout_ms / 1000.0);
        }
        else
        if (frc != 0) {
            tool_error ("waiting for acknowledgements failed: %s", busd_strerror (frc));
            if (rc == TOOL_EXIT_OK)
                rc = TOOL_EXIT_RUNTIME;
        }
        //  Rejections are counted by our handler; the library's counter is
        //  the backstop in case a REJECT was consumed without a callback.
        uint64_t rejected = self.rejected;
        if (busd_client_rejected (self.client) > rejected)
            rejected = busd_client_rejected (self.client);
        if (args.confirm && rejected > 0) {
            if (!args.quiet)
                tool_error ("%llu of %llu events rejected",
                            (unsigned long long) rejected, (unsigned long long) self.sent);
            //  A definite rejection says more than a timeout does.
            if (rc == TOOL_EXIT_OK || rc == TOOL_EXIT_TIMEOUT)
                rc = TOOL_EXIT_REJECTED;
        }
    }
    if (rc == TOOL_EXIT_OK && self.bad_input)
        rc = TOOL_EXIT_REJECTED;

done:
    if (self.client)
        busd_client_destroy (&self.client);
    if (self.urandom_fd >= 0)
        close (self.urandom_fd);
    free (data);
    free (args.messages);
    free (self.headers_json);
    cJSON_Delete (args.headers);
    if (fflush (stdout) != 0 && rc == TOOL_EXIT_OK)
        rc = TOOL_EXIT_RUNTIME;
    return rc;
}
