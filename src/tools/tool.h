/*  tool.h — what busd-pub, busd-sub and busd-ctl have in common.

    The three tools must agree on the things a script relies on: where they
    connect (-e, then BUSD_ENDPOINT, then the default), what their exit codes
    mean, how errors look on stderr, how numbers and durations are parsed, and
    how SIGINT/SIGTERM end them.  Keeping that here means one definition and
    one set of words in --help and the man pages.                            */
#ifndef BUSD_TOOL_H_INCLUDED
#define BUSD_TOOL_H_INCLUDED

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "busd/client.h"

/*  Exit codes shared by every tool (documented in each man page).           */
#define TOOL_EXIT_OK        0   /*  success                                   */
#define TOOL_EXIT_RUNTIME   1   /*  runtime error (broker error, I/O ...)     */
#define TOOL_EXIT_USAGE     2   /*  bad command line or input                 */
#define TOOL_EXIT_CONNECT   3   /*  no WELCOME within the connect timeout     */
#define TOOL_EXIT_REJECTED  4   /*  event rejected / subscription refused     */
#define TOOL_EXIT_TIMEOUT   5   /*  a timeout the user asked for expired      */

/*  The exit-code paragraph of every --help text, so it is worded once.      */
#define TOOL_EXIT_HELP \
    "Exit status:\n" \
    "  0  success\n" \
    "  1  runtime error (broker error, I/O error)\n" \
    "  2  usage error (bad option, argument, topic, pattern or input line)\n" \
    "  3  cannot connect (no WELCOME within the connect timeout)\n" \
    "  4  an event was rejected (busd-pub --confirm) or a subscription was\n" \
    "     refused or ended by the broker (busd-sub)\n" \
    "  5  timeout (busd-sub -W, busd-pub --confirm, busd-ctl reply)\n"

/*  The connection paragraph of every --help text.                          */
#define TOOL_CONNECT_HELP \
    "Connection:\n" \
    "  -e, --endpoint EP        broker endpoint (default: $BUSD_ENDPOINT, then\n" \
    "                           " BUSD_DEFAULT_ENDPOINT "); HOST:PORT means tcp://\n" \
    "      --connect-timeout S  seconds to wait for the broker's WELCOME (default 5)\n" \
    "      --name NAME          client name shown by busd-ctl clients\n" \
    "      --curve-server-key K the broker's CURVE public key (Z85) or its public\n" \
    "                           certificate file ($BUSD_CURVE_SERVER_KEY)\n" \
    "      --curve-cert FILE    this client's certificate, from busd-keygen\n" \
    "                           ($BUSD_CURVE_CERT)\n" \
    "      --plain-user USER    PLAIN user name ($BUSD_PLAIN_USER)\n" \
    "      --plain-password PW  PLAIN password ($BUSD_PLAIN_PASSWORD; prefer the\n" \
    "                           variable: arguments are visible to other users)\n" \
    "  -h, --help               show this help and exit\n" \
    "  -V, --version            show the version and exit\n"

/*  Options every tool accepts; tool_common_option() handles them.           */
#define TOOL_OPT_CONNECT_TIMEOUT 0x1000
#define TOOL_OPT_NAME            0x1001
#define TOOL_OPT_CURVE_SERVER    0x1002
#define TOOL_OPT_CURVE_CERT      0x1003
#define TOOL_OPT_PLAIN_USER      0x1004
#define TOOL_OPT_PLAIN_PASSWORD  0x1005
#define TOOL_COMMON_LONGOPTS \
    { "endpoint",        required_argument, NULL, 'e' }, \
    { "connect-timeout", required_argument, NULL, TOOL_OPT_CONNECT_TIMEOUT }, \
    { "name",            required_argument, NULL, TOOL_OPT_NAME }, \
    { "curve-server-key", required_argument, NULL, TOOL_OPT_CURVE_SERVER }, \
    { "curve-cert",      required_argument, NULL, TOOL_OPT_CURVE_CERT }, \
    { "plain-user",      required_argument, NULL, TOOL_OPT_PLAIN_USER }, \
    { "plain-password",  required_argument, NULL, TOOL_OPT_PLAIN_PASSWORD }, \
    { "help",            no_argument,       NULL, 'h' }, \
    { "version",         no_argument,       NULL, 'V' }

typedef struct {
    const char *endpoint;           /*  from -e, or NULL                      */
    const char *name;               /*  from --name, or the program name      */
    int connect_timeout_ms;
    const char *curve_server_key;   /*  options, else the environment        */
    const char *curve_cert;
    const char *plain_user;
    const char *plain_password;
    bool no_batch;                  /*  --no-batch: one frame per event       */
} tool_conn_t;

/*  Copy the credentials (options, then $BUSD_CURVE_SERVER_KEY,
    $BUSD_CURVE_CERT, $BUSD_PLAIN_USER, $BUSD_PLAIN_PASSWORD) into opts.    */
void tool_security_options (const tool_conn_t *conn, busd_client_options_t *opts);

/*  Set the program name used in messages and the connection defaults.      */
void tool_init (tool_conn_t *conn, const char *progname);

/*  The program name given to tool_init.                                    */
const char *tool_progname (void);

/*  Handle -e, --connect-timeout, --name, -h and -V.  Returns true when opt
    was one of them (exits for -h/-V or a bad value).  usage prints the
    tool's help to the given stream.                                        */
bool tool_common_option (tool_conn_t *conn, int opt, const char *arg,
                         void (*usage) (FILE *out));

/*  The endpoint to use: -e, then $BUSD_ENDPOINT, then the default.          */
const char *tool_endpoint (const tool_conn_t *conn);

/*  Connect and wait for WELCOME.  Returns TOOL_EXIT_OK and *client_p, or
    prints why and returns TOOL_EXIT_CONNECT (silently when a signal set
    tool_interrupted: callers that promise exit 0 on SIGINT check it).     */
int tool_connect (const tool_conn_t *conn, busd_client_t **client_p);

/*  "prog: message\n" on stderr.                                             */
void tool_error (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/*  Print "prog: message" and a hint to --help, then exit TOOL_EXIT_USAGE.   */
void tool_usage_error (const char *fmt, ...)
    __attribute__ ((format (printf, 1, 2), noreturn));

/*  Only the hint to --help, then exit TOOL_EXIT_USAGE: for getopt_long's
    '?', after it has said itself what was wrong.                           */
void tool_try_help (void) __attribute__ ((noreturn));

/*  "prog: out of memory", then exit TOOL_EXIT_RUNTIME: while the command
    line is read nothing is half-done, so there is nothing to clean up.     */
void tool_oom (void) __attribute__ ((noreturn));

/*  Append item (not copied) to the growable array *list_p of *count_p
    strings, as repeated options collect their values; exits on OOM.        */
void tool_list_add (const char ***list_p, size_t *count_p, const char *item);

/*  Parse an unsigned integer in [min, max]; exits TOOL_EXIT_USAGE naming
    the option when arg is not one.                                          */
uint64_t tool_parse_uint (const char *option, const char *arg,
                          uint64_t min, uint64_t max);

/*  Parse a non-negative number of seconds (fractions allowed) into
    milliseconds; exits TOOL_EXIT_USAGE naming the option on error.         */
int tool_parse_seconds_ms (const char *option, const char *arg);

/*  Parse a positive decimal number (e.g. a rate); exits on error.          */
double tool_parse_positive (const char *option, const char *arg);

/*  A broker timestamp (µs since the epoch) as RFC 3339 UTC with
    microseconds, e.g. 2024-11-25T09:06:00.123456Z.                         */
void tool_format_ts (int64_t ts_us, char *out, size_t cap);

/*  Monotonic clock in milliseconds.                                         */
int64_t tool_now_ms (void);

/*  Set by SIGINT/SIGTERM.  The first signal only sets the flag so the tool
    can finish cleanly; a second one kills it with the default action.      */
extern volatile sig_atomic_t tool_interrupted;
int tool_install_signals (void);

/*  Read a whole stream into a malloc'd buffer (binary-safe).  Returns 0 and
    sets *data_p (NUL-terminated for convenience) and *size_p, or -errno.   */
int tool_read_all (FILE *in, char **data_p, size_t *size_p);

#endif
