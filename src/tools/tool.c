/*  tool.c — shared plumbing of the command-line tools (see tool.h).

    Tools exit early on usage errors: a command line is either valid or the
    user gets one clear message and status 2, nothing half-done.  Runtime
    failures are returned as exit codes so each tool can clean up (flush,
    unsubscribe, say BYE) before it leaves.                                  */
#include "tool.h"
#include "endpoint.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *s_progname = "busd-tool";

volatile sig_atomic_t tool_interrupted = 0;

void
tool_init (tool_conn_t *conn, const char *progname)
{
    const char *slash = strrchr (progname, '/');
    s_progname = slash ? slash + 1 : progname;
    //  libtool's uninstalled wrappers run "lt-busd-pub"; users never
    //  typed that name, so messages should not show it.
    if (strncmp (s_progname, "lt-", 3) == 0)
        s_progname += 3;
    conn->endpoint = NULL;
    conn->name = s_progname;
    conn->connect_timeout_ms = 5000;
}

const char *
tool_progname (void)
{
    return s_progname;
}

static void
s_verror (const char *fmt, va_list ap)
{
    fprintf (stderr, "%s: ", s_progname);
    vfprintf (stderr, fmt, ap);
    fputc ('\n', stderr);
}

void
tool_error (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_verror (fmt, ap);
    va_end (ap);
}

void
tool_usage_error (const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    s_verror (fmt, ap);
    va_end (ap);
    tool_try_help ();
}

void
tool_try_help (void)
{
    fprintf (stderr, "Try '%s --help' for more information.\n", s_progname);
    exit (TOOL_EXIT_USAGE);
}

void
tool_oom (void)
{
    tool_error ("out of memory");
    exit (TOOL_EXIT_RUNTIME);
}

void
tool_list_add (const char ***list_p, size_t *count_p, const char *item)
{
    const char **bigger = realloc (*list_p, (*count_p + 1) * sizeof *bigger);
    if (!bigger)
        tool_oom ();
    *list_p = bigger;
    (*list_p) [(*count_p)++] = item;
}

static void
s_print_version (void)
{
#ifdef PACKAGE_VERSION
    printf ("%s (busd) %s\n", s_progname, PACKAGE_VERSION);
#else
    printf ("%s (busd)\n", s_progname);
#endif
    printf ("libbusd %s\n", busd_version ());
}

bool
tool_common_option (tool_conn_t *conn, int opt, const char *arg,
                    void (*usage) (FILE *out))
{
    switch (opt) {
        case 'e':
            if (!*arg)
                tool_usage_error ("--endpoint needs a non-empty endpoint");
            conn->endpoint = arg;
            return true;
        case TOOL_OPT_CONNECT_TIMEOUT:
            conn->connect_timeout_ms = tool_parse_seconds_ms ("--connect-timeout", arg);
            //  0 means "library default" to busd_client_new, which is not
            //  what a user asking for an immediate failure meant.
            if (conn->connect_timeout_ms == 0)
                conn->connect_timeout_ms = 1;
            return true;
        case TOOL_OPT_NAME:
            if (!*arg || strlen (arg) > 255)
                tool_usage_error ("--name must be 1..255 bytes");
            conn->name = arg;
            return true;
        case TOOL_OPT_CURVE_SERVER:
            conn->curve_server_key = arg;
            return true;
        case TOOL_OPT_CURVE_CERT:
            conn->curve_cert = arg;
            return true;
        case TOOL_OPT_PLAIN_USER:
            conn->plain_user = arg;
            return true;
        case TOOL_OPT_PLAIN_PASSWORD:
            conn->plain_password = arg;
            return true;
        case 'h':
            usage (stdout);
            exit (fflush (stdout) == 0 ? TOOL_EXIT_OK : TOOL_EXIT_RUNTIME);
        case 'V':
            s_print_version ();
            exit (fflush (stdout) == 0 ? TOOL_EXIT_OK : TOOL_EXIT_RUNTIME);
        default:
            return false;
    }
}

const char *
tool_endpoint (const tool_conn_t *conn)
{
    const char *env = getenv ("BUSD_ENDPOINT");
    const char *given = conn->endpoint ? conn->endpoint
                      : env && *env ? env : BUSD_DEFAULT_ENDPOINT;
    //  endpoint.c: "127.0.0.1:7460" means tcp://; anything ZeroMQ would
    //  misread (port 99999) is a usage error naming where it came from.
    //  One buffer per thread: busd-bench connects its publishers and
    //  subscribers from their own threads at once, and a shared buffer was
    //  rewritten under another thread's check ("no transport" for a good
    //  tcp:// endpoint, exit 2).
    static __thread char endpoint [1024];
    char why [200];
    if (busp_endpoint_normalize (given, endpoint, sizeof endpoint, why, sizeof why))
        tool_usage_error ("%s '%s': %s", conn->endpoint ? "--endpoint" : "$BUSD_ENDPOINT",
                          given, why);
    return endpoint;
}

static const char *
s_option_or_env (const char *option, const char *name)
{
    if (option)
        return option;
    const char *env = getenv (name);
    return env && *env ? env : NULL;
}

void
tool_security_options (const tool_conn_t *conn, busd_client_options_t *opts)
{
    opts->curve_server_key = s_option_or_env (conn->curve_server_key, "BUSD_CURVE_SERVER_KEY");
    opts->curve_cert = s_option_or_env (conn->curve_cert, "BUSD_CURVE_CERT");
    opts->plain_user = s_option_or_env (conn->plain_user, "BUSD_PLAIN_USER");
    opts->plain_password = s_option_or_env (conn->plain_password, "BUSD_PLAIN_PASSWORD");
}

int
tool_connect (const tool_conn_t *conn, busd_client_t **client_p)
{
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = tool_endpoint (conn);
    opts.client_name = conn->name;
    opts.connect_timeout_ms = conn->connect_timeout_ms;
    opts.no_batch = conn->no_batch;
    //  Tools recover from a broker restart like any other client: a
    //  long-running busd-sub should survive it.
    opts.reconnect = true;
    tool_security_options (conn, &opts);

    int err = 0;
    busd_client_t *client = busd_client_new (&opts, &err);
    if (!client) {
        //  Ctrl-C while waiting for WELCOME: the user knows why we stop.
        if (tool_interrupted)
            return TOOL_EXIT_CONNECT;
        if (err == -EINVAL && (opts.curve_server_key || opts.curve_cert || opts.plain_user
                               || opts.plain_password)) {
            tool_error ("credentials incomplete or invalid: CURVE needs --curve-server-key and "
                        "--curve-cert (40-character Z85 keys or certificate files), PLAIN needs "
                        "--plain-user and --plain-password, not both");
            return TOOL_EXIT_USAGE;
        }
        if (err == -ENOENT) {
            tool_error ("cannot read a key or certificate file (--curve-server-key, --curve-cert)");
            return TOOL_EXIT_USAGE;
        }
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

uint64_t
tool_parse_uint (const char *option, const char *arg, uint64_t min, uint64_t max)
{
    //  strtoull accepts "-1" and wraps it; a leading sign is never what a
    //  user of a count meant.
    const char *p = arg;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '-' || *p == '+' || *p == '\0')
        tool_usage_error ("%s: '%s' is not a non-negative integer", option, arg);
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull (p, &end, 10);
    if (errno || !end || *end != '\0')
        tool_usage_error ("%s: '%s' is not a non-negative integer", option, arg);
    if (value < min || value > max)
        tool_usage_error ("%s: %s is out of range (%llu..%llu)", option, arg,
                          (unsigned long long) min, (unsigned long long) max);
    return (uint64_t) value;
}

static double
s_parse_double (const char *option, const char *arg)
{
    errno = 0;
    char *end = NULL;
    double value = strtod (arg, &end);
    if (errno || !end || end == arg || *end != '\0' || !isfinite (value))
        tool_usage_error ("%s: '%s' is not a number", option, arg);
    return value;
}

int
tool_parse_seconds_ms (const char *option, const char *arg)
{
    double seconds = s_parse_double (option, arg);
    //  Cap at a day: poll timeouts are ints of milliseconds.
    if (seconds < 0 || seconds > 86400.0)
        tool_usage_error ("%s: %s seconds is out of range (0..86400)", option, arg);
    return (int) (seconds * 1000.0 + 0.5);
}

double
tool_parse_positive (const char *option, const char *arg)
{
    double value = s_parse_double (option, arg);
    if (value <= 0)
        tool_usage_error ("%s: %s must be greater than 0", option, arg);
    return value;
}

void
tool_format_ts (int64_t ts_us, char *out, size_t cap)
{
    time_t secs = (time_t) (ts_us / 1000000);
    long micros = (long) (ts_us % 1000000);
    if (micros < 0) {
        micros += 1000000;
        secs--;
    }
    struct tm tm;
    char text [48];
    if (!gmtime_r (&secs, &tm) || strftime (text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf (out, cap, "%lld", (long long) ts_us);
    else
        snprintf (out, cap, "%s.%06ldZ", text, micros);
}

int64_t
tool_now_ms (void)
{
    struct timespec ts;
    if (clock_gettime (CLOCK_MONOTONIC, &ts) != 0)
        return 0;   //  cannot happen with CLOCK_MONOTONIC on Linux
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_on_signal (int sig)
{
    (void) sig;
    tool_interrupted = 1;
}

int
tool_install_signals (void)
{
    struct sigaction sa;
    memset (&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    //  No SA_RESTART: a blocking read of stdin must return EINTR so the
    //  tool notices the flag.  SA_RESETHAND: a second Ctrl-C kills at once
    //  when the clean shutdown itself hangs.
    sa.sa_flags = SA_RESETHAND;
    if (sigaction (SIGINT, &sa, NULL) != 0 || sigaction (SIGTERM, &sa, NULL) != 0)
        return -errno;
    //  A closed stdout (busd-sub | head) must become a write error we can
    //  handle, not a silent death that skips UNSUB and BYE.
    struct sigaction ign;
    memset (&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset (&ign.sa_mask);
    if (sigaction (SIGPIPE, &ign, NULL) != 0)
        return -errno;
    return 0;
}

int
tool_read_all (FILE *in, char **data_p, size_t *size_p)
{
    size_t cap = 65536, size = 0;
    char *data = malloc (cap + 1);
    if (!data)
        return -ENOMEM;
    while (true) {
        if (size == cap) {
            if (cap > SIZE_MAX / 2 - 1) {
                free (data);
                return -EFBIG;
            }
            char *bigger = realloc (data, cap * 2 + 1);
            if (!bigger) {
                free (data);
                return -ENOMEM;
            }
            data = bigger;
            cap *= 2;
        }
        errno = 0;
        size_t got = fread (data + size, 1, cap - size, in);
        size += got;
        if (got == 0) {
            if (ferror (in)) {
                int err = errno ? errno : EIO;
                //  An interrupted read with the flag set ends the input
                //  the same way end of file would; the caller checks it.
                if (err == EINTR && !tool_interrupted) {
                    clearerr (in);
                    continue;
                }
                free (data);
                return -err;
            }
            break;      //  end of file
        }
    }
    data [size] = '\0';
    *data_p = data;
    *size_p = size;
    return 0;
}
