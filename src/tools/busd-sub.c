/*  busd-sub.c — subscribe from the command line and print what arrives.

    Owns the output formats (text, verbose, JSON lines, raw bytes, a user
    format), the count and idle limits, and a clean end on SIGINT/SIGTERM:
    the receive loop uses short timeouts and checks a flag, so a signal
    always ends in UNSUB and BYE rather than a session the broker has to
    expire.  With --ack explicit an event is acknowledged only after it was
    written and flushed: output that failed is redelivered, not lost.

    The JSON output is written by hand instead of through cJSON because
    payloads are bytes: they may hold NUL or invalid UTF-8, which a C-string
    JSON library cannot carry; those go out in base64.                     */
#include "tool.h"
#include "topic.h"
#include "endpoint.h"
#include "seen.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum {
    OUT_TEXT = 0,                   /*  "topic payload"                       */
    OUT_JSON,                       /*  one JSON object per line              */
    OUT_RAW,                        /*  payload bytes only                    */
    OUT_FORMAT                      /*  -F FORMAT                             */
} outmode_t;

typedef struct {
    tool_conn_t conn;
    const char **patterns;
    size_t npatterns;
    uint64_t count;                 /*  -C; 0 = no limit                      */
    int idle_ms;                    /*  -W; -1 = no limit                     */
    cJSON *sub_opts;                /*  SUB options given on the command line */
    bool credit_given;
    bool from_given;
    bool exact_credit;              /*  credit = COUNT, no automatic top-up  */
    bool ack_explicit;
    bool verbose;
    outmode_t mode;
    int modes_given;
    const char *format;
    bool no_newline;
} sub_args_t;

typedef struct {
    uint32_t id;
    const char *pattern;
    bool live;
} sub_entry_t;

typedef struct {
    busd_client_t *client;
    const sub_args_t *args;
    sub_entry_t *subs;
    size_t nsubs;
    seen_t *seen;                   /*  several patterns: one line per event  */
    size_t live;
    uint64_t events;
    uint64_t gaps;
    uint64_t dropped;
    uint64_t ended;
} sub_t;

//  A growable byte buffer: one event is formatted completely, then written
//  with one fwrite, so a write error never leaves half an event behind
//  unnoticed.
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
} buf_t;

enum {
    OPT_CREDIT = 0x2000,
    OPT_ACK,
    OPT_GROUP,
    OPT_DURABLE,
    OPT_FROM,
    OPT_OVERFLOW,
    OPT_QUEUE_LIMIT,
    OPT_ACK_WAIT,
    OPT_MAX_DELIVER,
    OPT_JSON,
    OPT_RAW,
    OPT_NO_BATCH
};

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: busd-sub [OPTION]... PATTERN...\n"
        "       busd-sub [OPTION]... -t PATTERN [-t PATTERN]...\n"
        "Subscribe to events on a busd broker and print them.\n"
        "\n"
        "Limits:\n"
        "  -t, --topic PATTERN      subscribe to PATTERN (repeatable; '*' matches one\n"
        "                           token, a final '#' any number; an event several\n"
        "                           patterns match is printed once)\n"
        "  -C, --count COUNT        exit 0 after COUNT events\n"
        "  -W, --idle SECONDS       exit 5 after SECONDS without an event\n"
        "\n"
        "Subscription (sent to the broker):\n"
        "      --credit N           initial credit (default 1000, or COUNT when lower)\n"
        "      --ack MODE           none (default) or explicit: acknowledge each event\n"
        "                           after it was printed\n"
        "      --group NAME         join queue group NAME (each event to one member)\n"
        "      --durable NAME       a named cursor over the durable stream covering\n"
        "                           the pattern: resumes where NAME left off, across\n"
        "                           restarts (implies --ack explicit)\n"
        "      --from WHEN          where a new --durable cursor starts: new (default),\n"
        "                           first, last, a stream sequence number, or an\n"
        "                           RFC 3339 time (2026-12-01T04:00:00Z)\n"
        "      --overflow POLICY    block, drop-oldest, drop-new, latest or disconnect\n"
        "      --queue-limit N      events the broker queues for this subscription\n"
        "      --ack-wait MS        with --ack explicit: redeliver when not acknowledged\n"
        "                           within MS\n"
        "      --max-deliver N      with --ack explicit: dead-letter after N attempts\n"
        "      --no-batch           one DELIVER frame per event and one ACK per\n"
        "                           acknowledgement (default: DELIVERB and ACKB\n"
        "                           when the broker offers the batch feature)\n"
        "\n"
        "Output (default: TOPIC PAYLOAD per line):\n"
        "  -v, --verbose            add delivery metadata; print totals at exit\n"
        "      --json               one JSON object per event and line: topic,\n"
        "                           payload (UTF-8 text, or base64 when not UTF-8),\n"
        "                           payload_encoding (utf-8 or base64), msg_id, ts\n"
        "                           (seconds), ts_us, attempt, delivery_id,\n"
        "                           stream_seq, sub_id, headers\n"
        "      --raw                payload bytes only, nothing added\n"
        "  -F, --format FORMAT      print FORMAT per event: %%t topic, %%p payload,\n"
        "                           %%i msg_id, %%T ts_us, %%a attempt, %%d delivery_id,\n"
        "                           %%s sub_id, %%S stream_seq, %%l payload size,\n"
        "                           %%h headers JSON, %%j the --json object, %%%% a '%%';\n"
        "                           \\n newline, \\t tab, \\\\ backslash\n"
        "  -N, --no-newline         no newline after each event (text, -v and -F)\n"
        "\n"
        "GAP and SUBEND notices go to stderr.  SIGINT or SIGTERM unsubscribes and\n"
        "exits 0.\n"
        "\n"
        TOOL_CONNECT_HELP
        "\n"
        TOOL_EXIT_HELP);
}

static void
s_opt_number (sub_args_t *args, const char *key, const char *option,
              const char *arg, uint64_t min, uint64_t max)
{
    uint64_t value = tool_parse_uint (option, arg, min, max);
    cJSON_DeleteItemFromObjectCaseSensitive (args->sub_opts, key);
    if (!cJSON_AddNumberToObject (args->sub_opts, key, (double) value))
        tool_oom ();
}

static void
s_opt_string (sub_args_t *args, const char *key, const char *arg)
{
    cJSON_DeleteItemFromObjectCaseSensitive (args->sub_opts, key);
    if (!cJSON_AddStringToObject (args->sub_opts, key, arg))
        tool_oom ();
}

static void
s_add_pattern (sub_args_t *args, const char *pattern)
{
    const char *why = NULL;
    if (busp_pattern_check (pattern, strlen (pattern), &why) != 0)
        tool_usage_error ("invalid pattern '%s': %s", pattern, why ? why : "bad pattern");
    char hint [400];
    if (busp_pattern_foreign_wildcard (pattern, hint, sizeof hint))
        tool_usage_error ("pattern '%s': %s", pattern, hint);
    tool_list_add (&args->patterns, &args->npatterns, pattern);
}

static void
s_set_mode (sub_args_t *args, outmode_t mode)
{
    if (args->mode != mode)
        args->modes_given++;
    args->mode = mode;
}

//  Reject a bad format before connecting, so a typo never costs events.
static void
s_check_format (const char *format)
{
    for (const char *p = format; *p; p++) {
        if (*p == '%') {
            p++;
            if (!*p)
                tool_usage_error ("-F: the format ends with a lone '%%'");
            if (!strchr ("tpiTajsdSlh%", *p))
                tool_usage_error ("-F: unknown conversion '%%%c' (see --help)", *p);
        }
        else
        if (*p == '\\') {
            p++;
            if (!*p)
                tool_usage_error ("-F: the format ends with a lone '\\'");
            if (!strchr ("nt\\", *p))
                tool_usage_error ("-F: unknown escape '\\%c' (use \\n, \\t or \\\\)", *p);
        }
    }
}

static void
s_parse_args (sub_args_t *args, int argc, char **argv)
{
    static const struct option longopts [] = {
        TOOL_COMMON_LONGOPTS,
        { "topic",       required_argument, NULL, 't' },
        { "count",       required_argument, NULL, 'C' },
        { "idle",        required_argument, NULL, 'W' },
        { "verbose",     no_argument,       NULL, 'v' },
        { "format",      required_argument, NULL, 'F' },
        { "no-newline",  no_argument,       NULL, 'N' },
        { "credit",      required_argument, NULL, OPT_CREDIT },
        { "ack",         required_argument, NULL, OPT_ACK },
        { "group",       required_argument, NULL, OPT_GROUP },
        { "durable",     required_argument, NULL, OPT_DURABLE },
        { "from",        required_argument, NULL, OPT_FROM },
        { "overflow",    required_argument, NULL, OPT_OVERFLOW },
        { "queue-limit", required_argument, NULL, OPT_QUEUE_LIMIT },
        { "ack-wait",    required_argument, NULL, OPT_ACK_WAIT },
        { "max-deliver", required_argument, NULL, OPT_MAX_DELIVER },
        { "json",        no_argument,       NULL, OPT_JSON },
        { "raw",         no_argument,       NULL, OPT_RAW },
        { "no-batch",    no_argument,       NULL, OPT_NO_BATCH },
        { NULL, 0, NULL, 0 }
    };
    args->idle_ms = -1;
    args->sub_opts = cJSON_CreateObject ();
    if (!args->sub_opts)
        tool_oom ();

    int opt;
    while ((opt = getopt_long (argc, argv, "e:t:C:W:vF:NhV", longopts, NULL)) != -1) {
        if (tool_common_option (&args->conn, opt, optarg, s_usage))
            continue;
        switch (opt) {
            case 't': s_add_pattern (args, optarg); break;
            case 'C': args->count = tool_parse_uint ("-C", optarg, 1, UINT64_MAX); break;
            case 'W':
                args->idle_ms = tool_parse_seconds_ms ("-W", optarg);
                if (args->idle_ms == 0)
                    tool_usage_error ("-W: the idle timeout must be greater than 0");
                break;
            case 'v': args->verbose = true; break;
            case 'F':
                s_check_format (optarg);
                s_set_mode (args, OUT_FORMAT);
                args->format = optarg;
                break;
            case 'N': args->no_newline = true; break;
            case OPT_JSON: s_set_mode (args, OUT_JSON); break;
            case OPT_RAW: s_set_mode (args, OUT_RAW); break;
            case OPT_NO_BATCH: args->conn.no_batch = true; break;
            case OPT_CREDIT:
                s_opt_number (args, "credit", "--credit", optarg, 0, UINT32_MAX);
                args->credit_given = true;
                break;
            case OPT_ACK:
                if (strcmp (optarg, "none") != 0 && strcmp (optarg, "explicit") != 0)
                    tool_usage_error ("--ack: '%s' is not 'none' or 'explicit'", optarg);
                args->ack_explicit = strcmp (optarg, "explicit") == 0;
                s_opt_string (args, "ack", optarg);
                break;
            case OPT_GROUP:
                if (!*optarg || strlen (optarg) > 255)
                    tool_usage_error ("--group: a group name is 1..255 bytes");
                s_opt_string (args, "group", optarg);
                break;
            case OPT_DURABLE:
                if (!*optarg || strlen (optarg) > 255)
                    tool_usage_error ("--durable: a durable name is 1..255 bytes");
                s_opt_string (args, "durable", optarg);
                break;
            case OPT_FROM: {
                cJSON *from = NULL;
                if (!strcmp (optarg, "new") || !strcmp (optarg, "first") || !strcmp (optarg, "last"))
                    from = cJSON_CreateString (optarg);
                else
                if (*optarg && optarg [strspn (optarg, "0123456789")] == 0) {
                    from = cJSON_CreateObject ();
                    if (from)
                        cJSON_AddNumberToObject (from, "seq", strtod (optarg, NULL));
                }
                else
                if (strlen (optarg) >= 19 && optarg [4] == '-' && optarg [10] == 'T') {
                    from = cJSON_CreateObject ();
                    if (from)
                        cJSON_AddStringToObject (from, "time", optarg);
                }
                else
                    tool_usage_error ("--from: '%s' is not new, first, last, a sequence number "
                                      "or an RFC 3339 time like 2026-12-01T04:00:00Z", optarg);
                if (!from)
                    tool_oom ();
                cJSON_DeleteItemFromObjectCaseSensitive (args->sub_opts, "from");
                cJSON_AddItemToObject (args->sub_opts, "from", from);
                args->from_given = true;
                break;
            }
            case OPT_OVERFLOW: {
                static const char *policies [] = {
                    "block", "drop-oldest", "drop-new", "latest", "disconnect", NULL
                };
                size_t i = 0;
                while (policies [i] && strcmp (policies [i], optarg) != 0)
                    i++;
                if (!policies [i])
                    tool_usage_error ("--overflow: '%s' is not one of block, drop-oldest, "
                                      "drop-new, latest, disconnect", optarg);
                s_opt_string (args, "overflow", optarg);
                break;
            }
            case OPT_QUEUE_LIMIT:
                s_opt_number (args, "queue_limit", "--queue-limit", optarg, 1, UINT32_MAX);
                break;
            case OPT_ACK_WAIT:
                s_opt_number (args, "ack_wait_ms", "--ack-wait", optarg, 1, UINT32_MAX);
                break;
            case OPT_MAX_DELIVER:
                s_opt_number (args, "max_deliver", "--max-deliver", optarg, 1, UINT32_MAX);
                break;
            default:
                tool_try_help ();
        }
    }
    for (int i = optind; i < argc; i++)
        s_add_pattern (args, argv [i]);
    if (args->npatterns == 0)
        tool_usage_error ("no pattern: give one or more patterns or -t PATTERN");
    if (args->modes_given > 1)
        tool_usage_error ("give only one of --json, --raw and -F");
    bool durable = cJSON_GetObjectItemCaseSensitive (args->sub_opts, "durable") != NULL;
    if (args->from_given && !durable)
        tool_usage_error ("--from needs --durable NAME");
    if (durable && args->npatterns > 1)
        tool_usage_error ("--durable names one cursor: give one pattern");
    if (durable) {
        //  The cursor moves on acknowledgements.
        const cJSON *ack = cJSON_GetObjectItemCaseSensitive (args->sub_opts, "ack");
        if (cJSON_IsString (ack) && strcmp (ack->valuestring, "none") == 0)
            tool_usage_error ("--durable acknowledges each event: --ack none does not apply");
        args->ack_explicit = true;
        if (!ack)
            s_opt_string (args, "ack", "explicit");
    }
    //  Without explicit acks nothing is ever redelivered, so these would
    //  be accepted and do nothing.
    if (!args->ack_explicit && (cJSON_GetObjectItemCaseSensitive (args->sub_opts, "max_deliver")
                                || cJSON_GetObjectItemCaseSensitive (args->sub_opts, "ack_wait_ms")))
        tool_usage_error ("--max-deliver and --ack-wait need --ack explicit (without acks "
                          "nothing is redelivered)");
    //  Credit beyond COUNT would pull events this process will never print;
    //  in a queue group those would be taken from the other members.  With
    //  exactly COUNT and no top-up, the broker sends no more than we need.
    if (args->count > 0 && !args->credit_given && args->count < 1000) {
        args->exact_credit = true;
        cJSON_DeleteItemFromObjectCaseSensitive (args->sub_opts, "credit");
        if (!cJSON_AddNumberToObject (args->sub_opts, "credit", (double) args->count))
            tool_oom ();
    }
}

//  ---------------------------------------------------------------------
//  Output buffer and JSON

static void
buf_add (buf_t *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *bigger = realloc (b->data, cap);
        if (!bigger) {
            b->oom = true;
            return;
        }
        b->data = bigger;
        b->cap = cap;
    }
    memcpy (b->data + b->len, data, n);
    b->len += n;
    b->data [b->len] = '\0';
}

static void
buf_addc (buf_t *b, char c)
{
    buf_add (b, &c, 1);
}

static void
buf_adds (buf_t *b, const char *s)
{
    buf_add (b, s, strlen (s));
}

static void buf_printf (buf_t *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
buf_printf (buf_t *b, const char *fmt, ...)
{
    char small [128];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (small, sizeof small, fmt, ap);
    va_end (ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t) n < sizeof small) {
        buf_add (b, small, (size_t) n);
        return;
    }
    char *big = malloc ((size_t) n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start (ap, fmt);
    vsnprintf (big, (size_t) n + 1, fmt, ap);
    va_end (ap);
    buf_add (b, big, (size_t) n);
    free (big);
}

//  Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
//  U+10FFFF.  Only text that passes goes out as a JSON string.
static bool
s_utf8_valid (const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s [i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s [i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s [i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)
        ||  (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return false;
        i += len;
    }
    return true;
}

//  A JSON string of bytes known to be valid UTF-8, or (when they are not)
//  of each byte as the code point of the same value, so the output is
//  always valid JSON.
static void
buf_json_string (buf_t *b, const void *data, size_t n)
{
    const uint8_t *s = (const uint8_t *) data;
    bool utf8 = s_utf8_valid (s, n);
    buf_addc (b, '"');
    size_t run = 0;             //  start of bytes copied verbatim
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s [i];
        const char *esc = NULL;
        char hex [8];
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20 || c == 0x7F || (!utf8 && c >= 0x80)) {
            snprintf (hex, sizeof hex, "\\u%04x", c);
            esc = hex;
        }
        if (esc) {
            buf_add (b, s + run, i - run);
            buf_adds (b, esc);
            run = i + 1;
        }
    }
    buf_add (b, s + run, n - run);
    buf_addc (b, '"');
}

static void
buf_base64 (buf_t *b, const uint8_t *s, size_t n)
{
    static const char tab [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) s [i] << 16;
        if (i + 1 < n) v |= (uint32_t) s [i + 1] << 8;
        if (i + 2 < n) v |= s [i + 2];
        char out [4] = {
            tab [(v >> 18) & 63], tab [(v >> 12) & 63],
            i + 1 < n ? tab [(v >> 6) & 63] : '=',
            i + 2 < n ? tab [v & 63] : '='
        };
        buf_add (b, out, 4);
    }
}

//  The headers frame re-serialised on one line, "{}" when there is none.
//  A frame that is not a JSON object (the broker should never forward one)
//  is shown as an empty object rather than breaking the output's JSON.
static void
buf_headers (buf_t *b, const busd_msg_t *m)
{
    const char *text = busd_msg_headers (m);
    if (!text || !*text) {
        buf_adds (b, "{}");
        return;
    }
    cJSON *json = cJSON_Parse (text);
    char *flat = json && cJSON_IsObject (json) ? cJSON_PrintUnformatted (json) : NULL;
    buf_adds (b, flat ? flat : "{}");
    if (json && cJSON_IsObject (json) && !flat)
        b->oom = true;
    free (flat);
    cJSON_Delete (json);
}

static void
buf_event_json (buf_t *b, const busd_msg_t *m)
{
    const char *topic = busd_msg_topic (m);
    const char *msg_id = busd_msg_msg_id (m);
    const uint8_t *payload = (const uint8_t *) busd_msg_payload (m);
    size_t size = busd_msg_size (m);
    bool text = s_utf8_valid (payload, size);

    buf_adds (b, "{\"topic\":");
    buf_json_string (b, topic, strlen (topic));
    //  Issue 5 names the keys payload ("UTF-8 text or base64 when binary")
    //  and ts: payload always holds the payload, payload_encoding says
    //  which form, and payload_base64 stays for readers written before.
    if (text) {
        buf_adds (b, ",\"payload\":");
        buf_json_string (b, payload, size);
        buf_adds (b, ",\"payload_encoding\":\"utf-8\"");
    }
    else {
        buf_adds (b, ",\"payload\":\"");
        buf_base64 (b, payload, size);
        buf_adds (b, "\",\"payload_encoding\":\"base64\",\"payload_base64\":\"");
        buf_base64 (b, payload, size);
        buf_addc (b, '"');
    }
    buf_adds (b, ",\"msg_id\":");
    buf_json_string (b, msg_id ? msg_id : "", msg_id ? strlen (msg_id) : 0);
    int64_t ts_us = busd_msg_ts_us (m);
    long long ts_s = (long long) (ts_us / 1000000);
    long ts_frac = (long) (ts_us % 1000000);
    if (ts_frac < 0) {
        ts_frac += 1000000;
        ts_s--;
    }
    buf_printf (b, ",\"ts\":%lld.%06ld", ts_s, ts_frac);
    buf_printf (b, ",\"ts_us\":%lld,\"attempt\":%u,\"delivery_id\":%llu,"
                   "\"stream_seq\":%llu,\"sub_id\":%u,\"headers\":",
                (long long) ts_us, (unsigned) busd_msg_attempt (m),
                (unsigned long long) busd_msg_delivery_id (m),
                (unsigned long long) busd_msg_stream_seq (m),
                (unsigned) busd_msg_sub_id (m));
    buf_headers (b, m);
    buf_addc (b, '}');
}

static void
buf_event_format (buf_t *b, const char *format, const busd_msg_t *m)
{
    const char *msg_id = busd_msg_msg_id (m);
    for (const char *p = format; *p; p++) {
        if (*p == '\\') {
            p++;
            buf_addc (b, *p == 'n' ? '\n' : *p == 't' ? '\t' : '\\');
            continue;
        }
        if (*p != '%') {
            buf_addc (b, *p);
            continue;
        }
        p++;
        switch (*p) {
            case 't': buf_adds (b, busd_msg_topic (m)); break;
            case 'p': buf_add (b, busd_msg_payload (m), busd_msg_size (m)); break;
            case 'i': buf_adds (b, msg_id ? msg_id : ""); break;
            case 'T': buf_printf (b, "%lld", (long long) busd_msg_ts_us (m)); break;
            case 'a': buf_printf (b, "%u", (unsigned) busd_msg_attempt (m)); break;
            case 'd': buf_printf (b, "%llu", (unsigned long long) busd_msg_delivery_id (m)); break;
            case 's': buf_printf (b, "%u", (unsigned) busd_msg_sub_id (m)); break;
            case 'S': buf_printf (b, "%llu", (unsigned long long) busd_msg_stream_seq (m)); break;
            case 'l': buf_printf (b, "%zu", busd_msg_size (m)); break;
            case 'h': buf_headers (b, m); break;
            case 'j': buf_event_json (b, m); break;
            default:  buf_addc (b, '%'); break;
        }
    }
}

static void
buf_event (buf_t *b, const sub_args_t *args, const busd_msg_t *m)
{
    switch (args->mode) {
        case OUT_JSON:
            buf_event_json (b, m);
            buf_addc (b, '\n');
            return;
        case OUT_RAW:
            buf_add (b, busd_msg_payload (m), busd_msg_size (m));
            return;
        case OUT_FORMAT:
            buf_event_format (b, args->format, m);
            break;
        case OUT_TEXT:
            if (args->verbose) {
                const char *msg_id = busd_msg_msg_id (m);
                const char *headers = busd_msg_headers (m);
                buf_printf (b, "[sub_id=%u delivery_id=%llu attempt=%u stream_seq=%llu ts=",
                            (unsigned) busd_msg_sub_id (m),
                            (unsigned long long) busd_msg_delivery_id (m),
                            (unsigned) busd_msg_attempt (m),
                            (unsigned long long) busd_msg_stream_seq (m));
                char ts [64];
                tool_format_ts (busd_msg_ts_us (m), ts, sizeof ts);
                buf_adds (b, ts);
                if (msg_id && *msg_id)
                    buf_printf (b, " msg_id=%s", msg_id);
                if (headers && *headers) {
                    buf_adds (b, " headers=");
                    buf_headers (b, m);
                }
                buf_adds (b, "] ");
            }
            buf_adds (b, busd_msg_topic (m));
            buf_addc (b, ' ');
            buf_add (b, busd_msg_payload (m), busd_msg_size (m));
            break;
    }
    if (!args->no_newline)
        buf_addc (b, '\n');
}

//  ---------------------------------------------------------------------
//  Subscribing and receiving

/*  Write one event to stdout.  Returns 0, or -errno when stdout failed.     */
static int
s_write_event (sub_t *self, buf_t *b, const busd_msg_t *m)
{
    b->len = 0;
    b->oom = false;
    buf_event (b, self->args, m);
    if (b->oom)
        return -ENOMEM;
    errno = 0;
    if (b->len > 0 && fwrite (b->data, 1, b->len, stdout) != b->len)
        return -(errno ? errno : EIO);
    //  Per event, so a consumer reading line by line (a pipe, a script)
    //  sees each event when it arrives, not when a buffer fills.
    if (fflush (stdout) != 0)
        return -(errno ? errno : EIO);
    return 0;
}

static sub_entry_t *
s_find_sub (sub_t *self, uint32_t id)
{
    for (size_t i = 0; i < self->nsubs; i++)
        if (self->subs [i].id == id)
            return &self->subs [i];
    return NULL;
}

static int
s_subscribe_all (sub_t *self)
{
    char *options = cJSON_PrintUnformatted (self->args->sub_opts);
    if (!options) {
        tool_error ("out of memory");
        return TOOL_EXIT_RUNTIME;
    }
    int rc = TOOL_EXIT_OK;
    for (size_t i = 0; i < self->args->npatterns && rc == TOOL_EXIT_OK; i++) {
        const char *pattern = self->args->patterns [i];
        int64_t id = busd_subscribe (self->client, pattern,
                                     strcmp (options, "{}") == 0 ? NULL : options, 10000);
        if (id > 0) {
            sub_entry_t *entry = &self->subs [self->nsubs++];
            entry->id = (uint32_t) id;
            entry->pattern = pattern;
            entry->live = true;
            self->live++;
            if (self->args->exact_credit) {
                int r = busd_subscription_set_auto_credit (self->client, entry->id, false);
                if (r != 0) {
                    tool_error ("cannot turn off credit top-up: %s", busd_strerror (r));
                    rc = TOOL_EXIT_RUNTIME;
                }
            }
            continue;
        }
        if (tool_interrupted)
            break;          //  SIGINT while waiting for SUBOK: a clean stop
        const char *reason = NULL;
        uint16_t code = busd_client_last_error (self->client, &reason);
        if (id == BUSD_ESUBEND) {
            tool_error ("subscription to '%s' refused: %u %s", pattern,
                        (unsigned) code, reason ? reason : "");
            rc = TOOL_EXIT_REJECTED;
        }
        else
        if (id == -ETIMEDOUT) {
            tool_error ("subscription to '%s': no answer from the broker", pattern);
            rc = TOOL_EXIT_RUNTIME;
        }
        else
        if (id == BUSD_EPROTOCOL && code) {
            tool_error ("subscription to '%s' failed: %u %s", pattern,
                        (unsigned) code, reason ? reason : "");
            rc = TOOL_EXIT_REJECTED;
        }
        else {
            tool_error ("subscription to '%s' failed: %s", pattern, busd_strerror ((int) id));
            rc = TOOL_EXIT_RUNTIME;
        }
    }
    free (options);
    return rc;
}

static void
s_unsubscribe_all (sub_t *self)
{
    //  One budget for all: with the broker gone, each UNSUB would wait its
    //  full timeout, and BYE ends the subscriptions anyway.
    int64_t deadline = tool_now_ms () + 2000;
    for (size_t i = 0; i < self->nsubs; i++) {
        sub_entry_t *entry = &self->subs [i];
        if (!entry->live)
            continue;
        entry->live = false;
        self->live--;
        int64_t left = deadline - tool_now_ms ();
        if (left <= 0)
            continue;
        int rc = busd_unsubscribe (self->client, entry->id, (int) left);
        //  Best effort: BYE follows and ends the subscription anyway.
        if (rc != 0 && self->args->verbose)
            tool_error ("unsubscribe from '%s' failed: %s", entry->pattern,
                        busd_strerror (rc));
    }
}

static int
s_receive_loop (sub_t *self)
{
    buf_t out = { NULL, 0, 0, false };
    int64_t last_event = tool_now_ms ();
    int rc = TOOL_EXIT_OK;
    bool done = false;

    while (!done && !tool_interrupted) {
        int wait = 200;
        if (self->args->idle_ms >= 0) {
            int64_t left = last_event + self->args->idle_ms - tool_now_ms ();
            if (left <= 0) {
                tool_error ("no event for %.1f s", self->args->idle_ms / 1000.0);
                rc = TOOL_EXIT_TIMEOUT;
                break;
            }
            if (left < wait)
                wait = (int) left;
        }
        busd_msg_t *m = NULL;
        int r = busd_receive (self->client, &m, wait);
        if (r == -ETIMEDOUT || r == -EINTR || r == -EAGAIN)
            continue;
        if (r != 0) {
            tool_error ("receive failed: %s", busd_strerror (r));
            rc = TOOL_EXIT_RUNTIME;
            break;
        }
        switch (busd_msg_kind (m)) {
            case BUSD_MSG_DELIVER: {
                //  seen.h: the copy another pattern's subscription got is
                //  acknowledged but neither printed nor counted.
                if (self->seen && busd_msg_attempt (m) == 1) {
                    sub_entry_t *entry = s_find_sub (self, busd_msg_sub_id (m));
                    uint64_t print = seen_fingerprint (busd_msg_topic (m), busd_msg_msg_id (m),
                                                       busd_msg_headers (m), busd_msg_payload (m),
                                                       busd_msg_size (m), busd_msg_ts_us (m));
                    if (entry && seen_duplicate (self->seen, print,
                                                 (unsigned) (entry - self->subs))) {
                        if (self->args->ack_explicit)
                            busd_ack (self->client, m);
                        break;
                    }
                }
                int w = s_write_event (self, &out, m);
                if (w != 0) {
                    //  A reader that went away (busd-sub | head) is a
                    //  normal end, and so is SIGINT/SIGTERM interrupting a
                    //  write to a reader that stopped reading (the event is
                    //  not acknowledged); anything else is an error.
                    if (w != -EPIPE && !(w == -EINTR && tool_interrupted)) {
                        tool_error ("cannot write output: %s", strerror (-w));
                        rc = TOOL_EXIT_RUNTIME;
                    }
                    done = true;
                    break;
                }
                if (self->args->ack_explicit) {
                    int a = busd_ack (self->client, m);
                    if (a != 0)
                        tool_error ("ack of delivery %llu failed: %s",
                                    (unsigned long long) busd_msg_delivery_id (m),
                                    busd_strerror (a));
                }
                self->events++;
                last_event = tool_now_ms ();
                if (self->args->count && self->events >= self->args->count)
                    done = true;
                break;
            }
            case BUSD_MSG_GAP:
                self->gaps++;
                self->dropped += busd_msg_dropped (m);
                tool_error ("gap: %llu events dropped on sub %u",
                            (unsigned long long) busd_msg_dropped (m),
                            (unsigned) busd_msg_sub_id (m));
                break;
            case BUSD_MSG_SUBEND: {
                self->ended++;
                const char *reason = busd_msg_reason (m);
                tool_error ("subscription %u ended: %u %s", (unsigned) busd_msg_sub_id (m),
                            (unsigned) busd_msg_code (m), reason ? reason : "");
                sub_entry_t *entry = s_find_sub (self, busd_msg_sub_id (m));
                if (entry && entry->live) {
                    entry->live = false;
                    self->live--;
                }
                //  Nothing more can arrive: leave rather than idle forever.
                if (self->live == 0) {
                    rc = TOOL_EXIT_REJECTED;
                    done = true;
                }
                break;
            }
            default:
                break;
        }
        busd_msg_destroy (&m);
    }
    free (out.data);
    return rc;
}

int
main (int argc, char **argv)
{
    sub_args_t args;
    memset (&args, 0, sizeof args);
    tool_init (&args.conn, argv [0]);
    s_parse_args (&args, argc, argv);

    sub_t self;
    memset (&self, 0, sizeof self);
    self.args = &args;
    int rc = TOOL_EXIT_OK;

    if (tool_install_signals () != 0) {
        tool_error ("cannot install signal handlers: %s", strerror (errno));
        rc = TOOL_EXIT_RUNTIME;
        goto done;
    }
    self.subs = calloc (args.npatterns, sizeof *self.subs);
    if (!self.subs) {
        tool_error ("out of memory");
        rc = TOOL_EXIT_RUNTIME;
        goto done;
    }
    rc = tool_connect (&args.conn, &self.client);
    if (rc != TOOL_EXIT_OK) {
        if (tool_interrupted)
            rc = TOOL_EXIT_OK;
        goto done;
    }
    if (args.npatterns > 1 && !(self.seen = seen_new (4096))) {
        tool_error ("out of memory");
        rc = TOOL_EXIT_RUNTIME;
        goto done;
    }
    rc = s_subscribe_all (&self);
    if (rc == TOOL_EXIT_OK)
        rc = s_receive_loop (&self);
    s_unsubscribe_all (&self);

    if (args.verbose)
        fprintf (stderr, "%s: %llu events, %llu gaps (%llu events dropped), "
                 "%llu subscriptions ended\n", tool_progname (),
                 (unsigned long long) self.events, (unsigned long long) self.gaps,
                 (unsigned long long) self.dropped, (unsigned long long) self.ended);
done:
    if (self.client)
        busd_client_destroy (&self.client);
    free (self.subs);
    seen_destroy (&self.seen);
    free (args.patterns);
    cJSON_Delete (args.sub_opts);
    return rc;
}
