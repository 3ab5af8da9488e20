/*  busd-ctl.c — inspect and steer a running broker over CTL.

    Owns the subcommands and how their replies look to a person: aligned
    tables whose column widths come from the data, numbers right-aligned.
    --json bypasses all of it and prints the broker's reply as received, so
    scripts see exactly what the broker said and never a reformatting of it.
    A column whose key a broker does not send shows '-' instead of failing:
    an older or newer broker should still be inspectable.                   */
#include "tool.h"
#include "topic.h"
#include "util.h"

#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tool_conn_t conn;
    bool json;
    int timeout_ms;
    const char *topic;              /*  dlq list / replay --topic             */
    bool limit_given;
    uint64_t limit;
    const char **ids;               /*  dlq replay --id                       */
    size_t nids;
    char **words;                   /*  subcommand and its arguments          */
    int nwords;
} ctl_args_t;

typedef enum {
    CELL_PLAIN,
    CELL_TIME                       /*  µs since the epoch, shown as a date   */
} cell_kind_t;

typedef struct {
    const char *header;
    const char *key;
    bool right;                     /*  numbers read better right-aligned     */
    cell_kind_t kind;
} column_t;

enum {
    OPT_JSON = 0x2000,
    OPT_TIMEOUT,
    OPT_TOPIC,
    OPT_LIMIT,
    OPT_ID
};

static void
s_usage (FILE *out)
{
    fprintf (out,
        "Usage: busd-ctl [OPTION]... COMMAND [ARGUMENT]...\n"
        "Inspect and control a running busd broker.\n"
        "\n"
        "Commands:\n"
        "  stats                    broker counters, one 'key value' per line\n"
        "  clients                  connected clients\n"
        "  subscriptions            live subscriptions\n"
        "  dlq list [--topic PATTERN] [--limit N]\n"
        "                           retained dead letters\n"
        "  dlq replay (--id ID... | --topic PATTERN)\n"
        "                           republish dead letters to their original topics\n"
        "                           (an ID that does not exist is named; exit 1)\n"
        "  dlq show ID              one dead letter: its fields, headers and payload\n"
        "  dlq purge (--id ID... | --topic PATTERN)\n"
        "                           forget dead letters\n"
        "  plugins                  plugins: state, outcomes, handling time; restarts\n"
        "                           of those under busd-plugin-host\n"
        "  streams                  durable streams and their cursors (lag, pending)\n"
        "  stream info NAME         one stream and its cursors\n"
        "  stream purge NAME        remove every event of a stream (cursors stay)\n"
        "  stream delete NAME       remove a stream, its events and its cursors\n"
        "  reload                   reload configuration and plugins (as SIGHUP)\n"
        "  raw JSON                 send any CTL request, print the reply\n"
        "\n"
        "Options:\n"
        "      --json               print the broker's reply JSON as received\n"
        "      --timeout SEC        wait SEC for the reply (default 5)\n"
        "      --topic PATTERN      dead letters whose topic matches PATTERN\n"
        "      --limit N            list at most N dead letters\n"
        "      --id ID              a dead letter to replay (repeatable; more IDs\n"
        "                           may follow 'replay' as arguments)\n"
        "\n"
        "A reply other than 200 is printed to stderr with its code and error,\n"
        "and busd-ctl exits 1.\n"
        "\n"
        TOOL_CONNECT_HELP
        "\n"
        TOOL_EXIT_HELP);
}

static void
s_add_id (ctl_args_t *args, const char *id)
{
    if (!*id)
        tool_usage_error ("--id needs a non-empty dead-letter id");
    tool_list_add (&args->ids, &args->nids, id);
}

static void
s_parse_args (ctl_args_t *args, int argc, char **argv)
{
    static const struct option longopts [] = {
        TOOL_COMMON_LONGOPTS,
        { "json",    no_argument,       NULL, OPT_JSON },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "topic",   required_argument, NULL, OPT_TOPIC },
        { "limit",   required_argument, NULL, OPT_LIMIT },
        { "id",      required_argument, NULL, OPT_ID },
        { NULL, 0, NULL, 0 }
    };
    args->timeout_ms = 5000;
    int opt;
    while ((opt = getopt_long (argc, argv, "e:hV", longopts, NULL)) != -1) {
        if (tool_common_option (&args->conn, opt, optarg, s_usage))
            continue;
        switch (opt) {
            case OPT_JSON: args->json = true; break;
            case OPT_TIMEOUT:
                args->timeout_ms = tool_parse_seconds_ms ("--timeout", optarg);
                if (args->timeout_ms == 0)
                    tool_usage_error ("--timeout must be greater than 0");
                break;
            case OPT_TOPIC: {
                const char *why = NULL;
                if (busp_pattern_check (optarg, strlen (optarg), &why) != 0)
                    tool_usage_error ("--topic: invalid pattern '%s': %s", optarg,
                                      why ? why : "bad pattern");
                args->topic = optarg;
                break;
            }
            case OPT_LIMIT:
                args->limit = tool_parse_uint ("--limit", optarg, 1, UINT32_MAX);
                args->limit_given = true;
                break;
            case OPT_ID: s_add_id (args, optarg); break;
            default:
                tool_try_help ();
        }
    }
    args->words = argv + optind;
    args->nwords = argc - optind;
    if (args->nwords == 0)
        tool_usage_error ("no command: give stats, clients, subscriptions, plugins, streams, stream, dlq, reload or raw");
}

//  ---------------------------------------------------------------------
//  Building the request

static char *
s_request (ctl_args_t *args)
{
    const char *cmd = args->words [0];
    int extra = args->nwords - 1;
    bool dlq = strcmp (cmd, "dlq") == 0;
    const char *dlq_cmd = dlq && extra >= 1 ? args->words [1] : NULL;
    bool dlq_list = dlq_cmd && strcmp (dlq_cmd, "list") == 0;
    bool dlq_replay = dlq_cmd && strcmp (dlq_cmd, "replay") == 0;
    bool dlq_purge = dlq_cmd && strcmp (dlq_cmd, "purge") == 0;
    bool dlq_show = dlq_cmd && strcmp (dlq_cmd, "show") == 0;

    if (args->topic && !dlq_list && !dlq_replay && !dlq_purge)
        tool_usage_error ("--topic is only for 'dlq list', 'dlq replay' and 'dlq purge'");
    if (args->limit_given && !dlq_list)
        tool_usage_error ("--limit is only for 'dlq list'");
    if (args->nids > 0 && !dlq_replay && !dlq_purge)
        tool_usage_error ("--id is only for 'dlq replay' and 'dlq purge'");

    if (strcmp (cmd, "raw") == 0) {
        if (extra != 1)
            tool_usage_error ("raw needs exactly one JSON request, e.g. '{\"cmd\":\"stats\"}'");
        //  The whole argument must be one object: cJSON_Parse alone would
        //  accept '{...} garbage' and send half of what the user typed.
        cJSON *json = cJSON_ParseWithOpts (args->words [1], NULL, true);
        if (!json || !cJSON_IsObject (json)) {
            cJSON_Delete (json);
            tool_usage_error ("raw: the request is not a JSON object");
        }
        //  Re-serialised compactly: the broker gets one line whatever the
        //  user's formatting.
        char *text = cJSON_PrintUnformatted (json);
        cJSON_Delete (json);
        if (!text)
            tool_oom ();
        return text;
    }

    cJSON *req = cJSON_CreateObject ();
    if (!req)
        tool_oom ();
    const char *name = NULL;
    if (strcmp (cmd, "stats") == 0 || strcmp (cmd, "clients") == 0
    ||  strcmp (cmd, "subscriptions") == 0 || strcmp (cmd, "reload") == 0
    ||  strcmp (cmd, "plugins") == 0) {
        if (extra != 0)
            tool_usage_error ("%s takes no arguments", cmd);
        name = cmd;
    }
    else
    if (dlq_list) {
        if (extra != 1)
            tool_usage_error ("dlq list takes no arguments besides --topic and --limit");
        name = "dlq-list";
        if (args->topic && !cJSON_AddStringToObject (req, "topic", args->topic))
            tool_oom ();
        if (args->limit_given && !cJSON_AddNumberToObject (req, "limit", (double) args->limit))
            tool_oom ();
    }
    else
    if (dlq_show) {
        if (extra != 2 || args->words [2][strspn (args->words [2], "0123456789")] != '\0'
        ||  !args->words [2][0])
            tool_usage_error ("dlq show needs one dead letter ID (a number from dlq list)");
        name = "dlq-show";
        if (!cJSON_AddNumberToObject (req, "id", strtod (args->words [2], NULL)))
            tool_oom ();
    }
    else
    if (dlq_replay || dlq_purge) {
        for (int i = 2; i < args->nwords; i++)
            s_add_id (args, args->words [i]);
        if ((args->nids > 0) == (args->topic != NULL))
            tool_usage_error ("dlq %s needs either --id ID... or --topic PATTERN", dlq_cmd);
        name = dlq_purge ? "dlq-purge" : "dlq-replay";
        if (args->topic && !cJSON_AddStringToObject (req, "topic", args->topic))
            tool_oom ();
        if (args->nids > 0) {
            cJSON *ids = cJSON_AddArrayToObject (req, "ids");
            if (!ids)
                tool_oom ();
            for (size_t i = 0; i < args->nids; i++) {
                //  Ids are numbers in dlq-list; send digits as numbers so
                //  the broker compares like with like.
                const char *id = args->ids [i];
                bool digits = id [strspn (id, "0123456789")] == '\0';
                cJSON *item = digits ? cJSON_CreateNumber (strtod (id, NULL))
                                     : cJSON_CreateString (id);
                if (!item || !cJSON_AddItemToArray (ids, item))
                    tool_oom ();
            }
        }
    }
    else
    if (dlq)
        tool_usage_error ("dlq needs 'list', 'show', 'replay' or 'purge'");
    else
    if (strcmp (cmd, "streams") == 0) {
        if (extra != 0)
            tool_usage_error ("streams takes no arguments (see 'stream info NAME')");
        name = "streams";
    }
    else
    if (strcmp (cmd, "stream") == 0) {
        //  stream info|purge|delete NAME -> {"cmd": "stream-info", "name": NAME}
        const char *action = extra >= 1 ? args->words [1] : "";
        if (strcmp (action, "info") && strcmp (action, "purge") && strcmp (action, "delete"))
            tool_usage_error ("stream needs 'info', 'purge' or 'delete' and a stream name");
        if (extra != 2)
            tool_usage_error ("stream %s needs exactly one stream name", action);
        name = strcmp (action, "info") == 0 ? "stream-info"
             : strcmp (action, "purge") == 0 ? "stream-purge" : "stream-delete";
        if (!cJSON_AddStringToObject (req, "name", args->words [2]))
            tool_oom ();
    }
    else
        tool_usage_error ("unknown command '%s'", cmd);

    if (!cJSON_AddStringToObject (req, "cmd", name))
        tool_oom ();
    char *text = cJSON_PrintUnformatted (req);
    cJSON_Delete (req);
    if (!text)
        tool_oom ();
    return text;
}

//  ---------------------------------------------------------------------
//  Printing replies

//  The text of one value as a person wants to read it; malloc'd.
static char *
s_cell (const cJSON *item, cell_kind_t kind)
{
    char small [64];
    if (!item || cJSON_IsNull (item))
        return strdup ("-");
    if (cJSON_IsString (item))
        return strdup (*item->valuestring ? item->valuestring : "-");
    if (cJSON_IsBool (item))
        return strdup (cJSON_IsTrue (item) ? "yes" : "no");
    if (cJSON_IsNumber (item)) {
        double v = item->valuedouble;
        if (kind == CELL_TIME && v > 0)
            tool_format_ts ((int64_t) v, small, sizeof small);
        else
        if (v > -9.2e18 && v < 9.2e18 && v == (double) (long long) v)
            snprintf (small, sizeof small, "%lld", (long long) v);
        else
            snprintf (small, sizeof small, "%g", v);
        return strdup (small);
    }
    if (cJSON_IsArray (item)) {
        //  Lists of names (throttled publishers): comma-separated.
        char *text = NULL;
        size_t len = 0;
        const cJSON *el;
        cJSON_ArrayForEach (el, item) {
            char *part = s_cell (el, CELL_PLAIN);
            size_t plen = part ? strlen (part) : 0;
            char *bigger = part ? realloc (text, len + plen + 2) : NULL;
            if (!bigger) {
                free (part);
                free (text);
                return NULL;
            }
            text = bigger;
            if (len > 0)
                text [len++] = ',';
            memcpy (text + len, part, plen + 1);
            len += plen;
            free (part);
        }
        return text ? text : strdup ("-");
    }
    if (cJSON_IsObject (item)) {
        //  A plugin's own counters: name=value, comma-separated.
        char *text = NULL;
        size_t size = 0;
        FILE *out = open_memstream (&text, &size);
        const cJSON *el;
        bool first = true;
        cJSON_ArrayForEach (el, item) {
            char *part = s_cell (el, CELL_PLAIN);
            if (out && part)
                fprintf (out, "%s%s=%s", first ? "" : ",", el->string, part);
            free (part);
            first = false;
        }
        if (!out || fclose (out) != 0) {
            free (text);
            return NULL;
        }
        if (first) {
            free (text);
            return strdup ("-");
        }
        return text;
    }
    return cJSON_PrintUnformatted (item);
}

static int
s_print_table (const cJSON *rows, const column_t *cols, size_t ncols)
{
    size_t nrows = (size_t) cJSON_GetArraySize (rows);
    char **cells = calloc ((nrows + 1) * ncols, sizeof *cells);
    size_t *width = calloc (ncols, sizeof *width);
    int rc = TOOL_EXIT_OK;
    if (!cells || !width)
        tool_oom ();
    for (size_t c = 0; c < ncols; c++) {
        cells [c] = strdup (cols [c].header);
        if (!cells [c])
            tool_oom ();
    }
    size_t r = 1;
    const cJSON *row;
    cJSON_ArrayForEach (row, rows) {
        for (size_t c = 0; c < ncols; c++) {
            const cJSON *item = cJSON_IsObject (row)
                              ? cJSON_GetObjectItemCaseSensitive (row, cols [c].key) : NULL;
            cells [r * ncols + c] = s_cell (item, cols [c].kind);
            if (!cells [r * ncols + c])
                tool_oom ();
        }
        r++;
    }
    for (size_t i = 0; i < r; i++)
        for (size_t c = 0; c < ncols; c++) {
            size_t len = strlen (cells [i * ncols + c]);
            if (len > width [c])
                width [c] = len;
        }
    for (size_t i = 0; i < r; i++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *text = cells [i * ncols + c];
            bool last = c + 1 == ncols;
            int w = (int) width [c];
            if (cols [c].right)
                printf ("%*s", w, text);
            else
            if (last)
                fputs (text, stdout);
            else
                printf ("%-*s", w, text);
            if (!last)
                fputs ("  ", stdout);
        }
        putchar ('\n');
    }
    for (size_t i = 0; i < r * ncols; i++)
        free (cells [i]);
    free (cells);
    free (width);
    return rc;
}

static int
s_print_stats (const cJSON *reply)
{
    //  In the broker's order: it groups related counters together.
    const cJSON *item;
    cJSON_ArrayForEach (item, reply) {
        char *text = s_cell (item, CELL_PLAIN);
        if (!text)
            tool_oom ();
        printf ("%s %s\n", item->string ? item->string : "?", text);
        free (text);
    }
    return TOOL_EXIT_OK;
}

static const cJSON *
s_reply_array (const cJSON *reply, const char *key)
{
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive (reply, key);
    if (!cJSON_IsArray (rows)) {
        tool_error ("unexpected reply from the broker: no \"%s\" array", key);
        return NULL;
    }
    return rows;
}

/*  streams (or one stream's info): a table of streams, then a table of
    their durable cursors.                                                   */
static int
s_print_streams (const cJSON *reply, bool many)
{
    static const column_t stream_cols [] = {
        { "STREAM",  "name",      false, CELL_PLAIN },
        { "EVENTS",  "events",    true,  CELL_PLAIN },
        { "BYTES",   "bytes",     true,  CELL_PLAIN },
        { "FIRST",   "first_seq", true,  CELL_PLAIN },
        { "LAST",    "last_seq",  true,  CELL_PLAIN },
        { "SYNC",    "sync",      false, CELL_PLAIN },
        { "EXPIRED", "expired",   true,  CELL_PLAIN }
    };
    static const column_t cursor_cols [] = {
        { "STREAM",  "stream",            false, CELL_PLAIN },
        { "CURSOR",  "name",              false, CELL_PLAIN },
        { "GROUP",   "group",             false, CELL_PLAIN },
        { "FLOOR",   "floor",             true,  CELL_PLAIN },
        { "LAG",     "lag",               true,  CELL_PLAIN },
        { "PENDING", "pending",           true,  CELL_PLAIN },
        { "MEMBERS", "members",           true,  CELL_PLAIN }
    };
    cJSON *streams = NULL;
    if (many) {
        const cJSON *rows = s_reply_array (reply, "streams");
        if (!rows)
            return TOOL_EXIT_RUNTIME;
        streams = cJSON_Duplicate (rows, true);
    }
    else {
        streams = cJSON_CreateArray ();
        if (streams)
            cJSON_AddItemToArray (streams, cJSON_Duplicate (reply, true));
    }
    cJSON *cursors = cJSON_CreateArray ();
    if (!streams || !cursors)
        tool_oom ();
    const cJSON *stream;
    cJSON_ArrayForEach (stream, streams) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive (stream, "name");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive (stream, "cursors");
        const cJSON *cursor;
        cJSON_ArrayForEach (cursor, list) {
            cJSON *row = cJSON_Duplicate (cursor, true);
            if (!row)
                tool_oom ();
            cJSON_AddStringToObject (row, "stream", cJSON_IsString (name) ? name->valuestring : "");
            cJSON_AddItemToArray (cursors, row);
        }
    }
    int rc = s_print_table (streams, stream_cols, sizeof stream_cols / sizeof stream_cols [0]);
    if (rc == TOOL_EXIT_OK && cJSON_GetArraySize (cursors) > 0) {
        putchar ('\n');
        rc = s_print_table (cursors, cursor_cols, sizeof cursor_cols / sizeof cursor_cols [0]);
    }
    cJSON_Delete (streams);
    cJSON_Delete (cursors);
    return rc;
}

/*  dlq show: "key: value" lines, the headers as JSON, then the payload as
    text when it is printable UTF-8-ish, else as base64 (what was sent).    */
static int
s_print_dead_letter (const cJSON *reply)
{
    static const struct { const char *label, *key; cell_kind_t kind; } fields [] = {
        { "id", "id", CELL_PLAIN }, { "topic", "topic", CELL_PLAIN },
        { "reason", "reason", CELL_PLAIN }, { "attempts", "attempts", CELL_PLAIN },
        { "subscription", "subscription", CELL_PLAIN }, { "time", "ts_us", CELL_TIME },
        { "msg_id", "msg_id", CELL_PLAIN }, { "size", "size", CELL_PLAIN }
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields [0]; i++) {
        char *text = s_cell (cJSON_GetObjectItemCaseSensitive (reply, fields [i].key),
                             fields [i].kind);
        if (!text)
            tool_oom ();
        printf ("%s: %s\n", fields [i].label, text);
        free (text);
    }
    char *headers = cJSON_PrintUnformatted (cJSON_GetObjectItemCaseSensitive (reply, "headers"));
    printf ("headers: %s\n", headers ? headers : "{}");
    free (headers);
    const cJSON *payload = cJSON_GetObjectItemCaseSensitive (reply, "payload");
    const char *b64 = cJSON_IsString (payload) ? payload->valuestring : "";
    size_t len = 0;
    unsigned char *raw = busp_base64_decode (b64, &len);
    bool text = raw != NULL;
    for (size_t i = 0; text && i < len; i++)
        text = raw [i] >= 0x20 || raw [i] == '\n' || raw [i] == '\t';
    if (text)
        printf ("payload: %.*s\n", (int) len, (const char *) raw);
    else
        printf ("payload (base64): %s\n", b64);
    free (raw);
    return TOOL_EXIT_OK;
}

static int
s_print_reply (const ctl_args_t *args, const cJSON *reply)
{
    const char *cmd = args->words [0];
    if (strcmp (cmd, "stats") == 0)
        return s_print_stats (reply);
    if (strcmp (cmd, "clients") == 0) {
        static const column_t cols [] = {
            { "ID",        "id",            false, CELL_PLAIN },
            { "NAME",      "name",          false, CELL_PLAIN },
            { "IDENTITY",  "identity",      false, CELL_PLAIN },
            { "PEER",      "peer",          false, CELL_PLAIN },
            { "CONNECTED", "connected_us",  false, CELL_TIME },
            { "AGE_S",     "age_s",         true,  CELL_PLAIN },
            { "IDLE_MS",   "idle_ms",       true,  CELL_PLAIN },
            { "PUB_SEQ",   "pub_seq",       true,  CELL_PLAIN },
            { "CREDIT",    "pub_credit",    true,  CELL_PLAIN },
            { "THROTTLED", "throttled",     false, CELL_PLAIN },
            { "SUBS",      "subscriptions", true,  CELL_PLAIN },
            { "ACCEPTED",  "accepted",      true,  CELL_PLAIN },
            { "REJECTED",  "rejected",      true,  CELL_PLAIN }
        };
        const cJSON *rows = s_reply_array (reply, "clients");
        return rows ? s_print_table (rows, cols, sizeof cols / sizeof cols [0])
                    : TOOL_EXIT_RUNTIME;
    }
    if (strcmp (cmd, "subscriptions") == 0) {
        static const column_t cols [] = {
            { "CLIENT_ID",  "client_id",            false, CELL_PLAIN },
            { "CLIENT",     "client",               false, CELL_PLAIN },
            { "SUB",        "sub_id",               true,  CELL_PLAIN },
            { "PATTERN",    "pattern",              false, CELL_PLAIN },
            { "GROUP",      "group",                false, CELL_PLAIN },
            { "POLICY",     "policy",               false, CELL_PLAIN },
            { "ACK",        "ack",                  false, CELL_PLAIN },
            { "LIMIT",      "queue_limit",          true,  CELL_PLAIN },
            { "CREDIT",     "credit",               true,  CELL_PLAIN },
            { "QUEUED",     "queued",               true,  CELL_PLAIN },
            { "BYTES",      "queued_bytes",         true,  CELL_PLAIN },
            { "INFLIGHT",   "inflight",             true,  CELL_PLAIN },
            { "DELIVERED",  "delivered",            true,  CELL_PLAIN },
            { "DROPPED",    "dropped",              true,  CELL_PLAIN },
            { "THROTTLING", "throttled_publishers", false, CELL_PLAIN }
        };
        const cJSON *rows = s_reply_array (reply, "subscriptions");
        return rows ? s_print_table (rows, cols, sizeof cols / sizeof cols [0])
                    : TOOL_EXIT_RUNTIME;
    }
    if (strcmp (cmd, "plugins") == 0) {
        static const column_t cols [] = {
            { "NAME",      "name",          false, CELL_PLAIN },
            { "STATE",     "state",         false, CELL_PLAIN },
            { "VERSION",   "version",       false, CELL_PLAIN },
            { "INST",      "instances",     true,  CELL_PLAIN },
            { "DELIVERED", "delivered",     true,  CELL_PLAIN },
            { "OK",        "ok",            true,  CELL_PLAIN },
            { "RETRIED",   "retried",       true,  CELL_PLAIN },
            { "FAILED",    "failed",        true,  CELL_PLAIN },
            { "DEAD",      "dead_lettered", true,  CELL_PLAIN },
            { "INFLIGHT",  "inflight",      true,  CELL_PLAIN },
            { "AVG_US",    "avg_handle_us", true,  CELL_PLAIN },
            { "RESTARTS",  "restarts",      true,  CELL_PLAIN },
            { "KEEPER_RESTARTS", "keeper_restarts", true, CELL_PLAIN },
            { "PATTERNS",  "patterns",      false, CELL_PLAIN },
            { "ERROR",     "error",         false, CELL_PLAIN },
            { "METRICS",   "metrics",       false, CELL_PLAIN }
        };
        const cJSON *rows = s_reply_array (reply, "plugins");
        return rows ? s_print_table (rows, cols, sizeof cols / sizeof cols [0])
                    : TOOL_EXIT_RUNTIME;
    }
    if (strcmp (cmd, "dlq") == 0 && strcmp (args->words [1], "list") == 0) {
        static const column_t cols [] = {
            { "ID",           "id",           true,  CELL_PLAIN },
            { "TOPIC",        "topic",        false, CELL_PLAIN },
            { "ATTEMPTS",     "attempts",     true,  CELL_PLAIN },
            { "SUBSCRIPTION", "subscription", false, CELL_PLAIN },
            { "SIZE",         "size",         true,  CELL_PLAIN },
            { "TIME",         "ts_us",        false, CELL_TIME },
            { "MSG_ID",       "msg_id",       false, CELL_PLAIN },
            { "REASON",       "reason",       false, CELL_PLAIN },
            { "PREVIEW",      "preview",      false, CELL_PLAIN }
        };
        const cJSON *rows = s_reply_array (reply, "dead_letters");
        return rows ? s_print_table (rows, cols, sizeof cols / sizeof cols [0])
                    : TOOL_EXIT_RUNTIME;
    }
    if (strcmp (cmd, "dlq") == 0 && strcmp (args->words [1], "show") == 0)
        return s_print_dead_letter (reply);
    if (strcmp (cmd, "dlq") == 0) {
        bool purge = strcmp (args->words [1], "purge") == 0;
        const cJSON *n = cJSON_GetObjectItemCaseSensitive (reply, purge ? "purged" : "replayed");
        char *text = s_cell (n, CELL_PLAIN);
        if (!text)
            tool_oom ();
        printf ("%s %s\n", purge ? "purged" : "replayed", text);
        free (text);
        //  An id that is not there is the user's mistake: say which, exit 1.
        const cJSON *missing = cJSON_GetObjectItemCaseSensitive (reply, "missing");
        const cJSON *id;
        cJSON_ArrayForEach (id, missing)
            tool_error ("no dead letter with id %.0f (see busd-ctl dlq list)",
                        cJSON_IsNumber (id) ? id->valuedouble : 0.0);
        return cJSON_GetArraySize (missing) > 0 ? TOOL_EXIT_RUNTIME : TOOL_EXIT_OK;
    }
    if (strcmp (cmd, "streams") == 0 || (strcmp (cmd, "stream") == 0
                                          && strcmp (args->words [1], "info") == 0))
        return s_print_streams (reply, strcmp (cmd, "streams") == 0);
    if (strcmp (cmd, "stream") == 0) {
        bool purge = strcmp (args->words [1], "purge") == 0;
        const cJSON *n = cJSON_GetObjectItemCaseSensitive (reply, purge ? "purged" : "deleted");
        char *text = s_cell (n, CELL_PLAIN);
        if (!text)
            tool_oom ();
        printf ("stream %s %s: %s events removed%s\n", args->words [2],
                purge ? "purged" : "deleted", text,
                cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (reply, "recreated"))
                ? " (still configured: recreated empty)" : "");
        free (text);
        return TOOL_EXIT_OK;
    }
    if (strcmp (cmd, "reload") == 0) {
        puts ("reloaded");
        return TOOL_EXIT_OK;
    }
    //  raw: the reply, indented for reading.
    char *text = cJSON_Print (reply);
    if (!text)
        tool_oom ();
    puts (text);
    free (text);
    return TOOL_EXIT_OK;
}

int
main (int argc, char **argv)
{
    ctl_args_t args;
    memset (&args, 0, sizeof args);
    tool_init (&args.conn, argv [0]);
    s_parse_args (&args, argc, argv);
    char *request = s_request (&args);
    char *reply = NULL;
    cJSON *json = NULL;
    busd_client_t *client = NULL;

    int rc = tool_connect (&args.conn, &client);
    if (rc != TOOL_EXIT_OK)
        goto done;

    int code = busd_ctl (client, request, &reply, args.timeout_ms);
    if (code < 0) {
        if (code == -ETIMEDOUT) {
            tool_error ("no reply from the broker within %.1f s", args.timeout_ms / 1000.0);
            rc = TOOL_EXIT_TIMEOUT;
        }
        else {
            tool_error ("request failed: %s", busd_strerror (code));
            rc = TOOL_EXIT_RUNTIME;
        }
        goto done;
    }
    json = reply ? cJSON_Parse (reply) : NULL;
    if (code != 200) {
        const cJSON *error = json ? cJSON_GetObjectItemCaseSensitive (json, "error") : NULL;
        tool_error ("%d %s", code, cJSON_IsString (error) ? error->valuestring
                                   : reply && *reply ? reply : "(no error text)");
        rc = TOOL_EXIT_RUNTIME;
        goto done;
    }
    if (args.json) {
        //  As received: a script gets the broker's own bytes.
        const char *text = reply ? reply : "{}";
        size_t len = strlen (text);
        printf ("%s%s", text, len > 0 && text [len - 1] == '\n' ? "" : "\n");
    }
    else
    if (!json || !cJSON_IsObject (json)) {
        tool_error ("the broker's reply is not a JSON object: %s", reply ? reply : "(empty)");
        rc = TOOL_EXIT_RUNTIME;
    }
    else
        rc = s_print_reply (&args, json);

done:
    if (fflush (stdout) != 0 && rc == TOOL_EXIT_OK) {
        tool_error ("cannot write output: %s", strerror (errno));
        rc = TOOL_EXIT_RUNTIME;
    }
    cJSON_Delete (json);
    free (reply);
    free (request);
    free (args.ids);
    if (client)
        busd_client_destroy (&client);
    return rc;
}
