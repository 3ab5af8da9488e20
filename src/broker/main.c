/*  main.c — busd's command line, process setup, signals and reload.

    Signals only set flags; the broker's loop notices them (zmq_poll returns
    EINTR, and a timer double-checks) and acts between batches, so a signal
    never lands in the middle of routing.  czmq's own handlers are disabled
    before the first socket: a daemon decides itself what SIGTERM means.   */
#include "broker.h"
#include "notify.h"
#include "plugins.h"
#include "auth.h"
#include "util.h"
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <limits.h>

static volatile sig_atomic_t s_stop = 0;
volatile sig_atomic_t busd_reload_requested = 0;

static void
s_on_signal (int sig)
{
    if (sig == SIGHUP)
        busd_reload_requested = 1;
    else
        s_stop = 1;
}

#define MAX_OVERRIDES 64
typedef struct {
    const char *key;
    const char *value;
} override_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
"Usage: busd [OPTIONS]\n"
"busd is an event bus broker speaking BUSP/1 over ZeroMQ.\n"
"With no options it runs in the foreground on " "tcp://127.0.0.1:7460.\n\n"
"  -c, --config FILE        read settings from a JSON file (comments allowed)\n"
"      --check-config       validate the configuration, print the result, exit\n"
"  -b, --bind ENDPOINT      listen on ENDPOINT (tcp://, ipc://, inproc://);\n"
"                           repeatable; replaces the configured endpoints\n"
"  -l, --log-level LEVEL    debug, info, notice, warning or error (default info)\n"
"      --syslog             log to syslog instead of stderr\n"
"      --session-timeout MS expire clients silent this long (default 15000)\n"
"      --heartbeat MS       PING clients silent this long (default 5000)\n"
"      --pub-credit N       publisher credit window (default 1000)\n"
"      --max-payload BYTES  largest accepted payload (default 1048576)\n"
"      --queue-limit N      default subscription queue_limit (default 10000)\n"
"      --metrics ADDR       serve Prometheus /metrics on ADDR (e.g. 127.0.0.1:9460)\n"
"      --stats-interval MS  publish $sys.stats every MS milliseconds (0: off)\n"
"  -s, --set KEY=VALUE      set any configuration key (see busd.json(5))\n"
"  -d, --daemon             detach from the terminal (after binding)\n"
"  -p, --pidfile FILE       write the process id to FILE\n"
"  -u, --user USER          drop privileges to USER after binding\n"
"  -h, --help               show this help\n"
"  -V, --version            show the version\n\n"
"Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the configuration.\n"
"Exit status: 0 clean stop, 1 runtime failure, 2 usage or configuration error.\n");
}

static int
s_on_watchdog (zloop_t *loop, int timer_id, void *arg)
{
    notify_send ("WATCHDOG=1");
    return 0;
}

/*  What a reload needs: the running configuration and where it came from. */
typedef struct {
    config_t **config;
    const char *file;
    override_t *overrides;
    int count;
    broker_t *broker;
    plugins_t *plugins;
} live_t;
static live_t s_live;

static int s_load (const char *file, override_t *overrides, int count, char *errors,
                   size_t size, config_t **config_p);

/*  Reload the configuration file (SIGHUP or CTL reload), on the broker
    thread between batches.  An invalid file changes nothing.  Returns 0, or
    -EINVAL with the errors in errors.                                       */
static int
s_reload (char *errors, size_t size)
{
    notify_send ("RELOADING=1");
    config_t *config = *s_live.config;
    config_t *fresh = NULL;
    int rc = s_load (s_live.file, s_live.overrides, s_live.count, errors, size, &fresh);
    if (rc == 0)
        rc = plugins_check_config (fresh, false, errors, size);
    if (rc) {
        config_destroy (&fresh);
        //  log.c joins the error lines: one event, one line.
        log_error ("reload failed; keeping the running configuration: %s", errors);
        notify_send ("READY=1");
        return -EINVAL;
    }
    char restart [512], names [1024];
    int changed = config_diff (config, fresh, restart, sizeof restart);
    config_changed_keys (config, fresh, names, sizeof names);
    if (restart [0])
        log_warning ("reload: %s cannot change without a restart (kept as running)", restart);
    //  Keys that cannot change keep their running values.
    for (int i = 0; i < fresh->bind_count; i++)
        free (fresh->binds [i]);
    fresh->bind_count = config->bind_count;
    for (int i = 0; i < config->bind_count; i++) {
        fresh->binds [i] = config->binds [i];
        config->binds [i] = NULL;
    }
    config->bind_count = 0;
    fresh->sndhwm = config->sndhwm;
    //  The store stays where it was opened.
    char *data_dir = fresh->data_dir;
    fresh->data_dir = config->data_dir;
    config->data_dir = data_dir;
    fresh->store_map_size = config->store_map_size;
    char *metrics = fresh->metrics_bind;
    fresh->metrics_bind = config->metrics_bind;
    config->metrics_bind = metrics;
    log_use_syslog (fresh->syslog);
    log_set_level (fresh->log_level);
    broker_apply_config (s_live.broker, fresh);
    plugins_reload (s_live.plugins, fresh);        /*  plugins.c */
    config_destroy (&config);
    *s_live.config = fresh;
    log_notice ("configuration reloaded (%d setting%s changed%s%s)", changed,
                changed == 1 ? "" : "s", changed ? ": " : "", names);
    snprintf (errors, size, "%s", restart);
    notify_send ("READY=1");
    return 0;
}

/*  Build a configuration: defaults, then the file, then the flags.  Every
    check runs whatever failed before it, so one --check-config shows every
    problem.  *config_p is set (NULL only when out of memory) even when
    there were errors; returns 0 or -EINVAL.  The plugin entries are left
    to the caller (plugins_check_config), which knows how deep to look.    */
static int
s_load (const char *file, override_t *overrides, int count, char *errors, size_t size,
        config_t **config_p)
{
    config_t *config = *config_p = config_new ();
    if (!config)
        return -ENOMEM;
    errors [0] = 0;
    int rc = 0;
    if (file)
        rc = config_load_file (config, file, errors, size);
    bool bind_override = false;
    for (int i = 0; i < count; i++) {
        char err [300];
        if (streq (overrides [i].key, "bind") && !bind_override) {
            //  Command-line endpoints replace the configured ones.
            for (int b = 0; b < config->bind_count; b++)
                free (config->binds [b]);
            config->bind_count = 0;
            bind_override = true;
        }
        if (config_set (config, overrides [i].key, overrides [i].value, err, sizeof err)) {
            size_t len = strlen (errors);
            snprintf (errors + len, size - len, "command line: %s\n", err);
            rc = -EINVAL;
        }
    }
    if (config->bind_count == 0) {
        config->binds [0] = strdup (BUSD_DEFAULT_ENDPOINT_BROKER);
        config->bind_count = 1;
    }
    //  A failed load does not claim the file, but the plugin checks that
    //  follow still name it and resolve paths against its directory.
    if (file && !config->file && !(config->file = strdup (file)))
        return -ENOMEM;
    if (config_validate (config, errors, size))
        rc = -EINVAL;
    //  auth.c: listeners, keys, passwords and the ACL file.
    if (auth_check_config (config, errors, size))
        rc = -EINVAL;
    return rc;
}

static int
s_write_pidfile (const char *path)
{
    FILE *file = fopen (path, "w");
    if (!file) {
        log_error ("cannot write pidfile %s: %s", path, strerror (errno));
        return -errno;
    }
    fprintf (file, "%d\n", (int) getpid ());
    fclose (file);
    return 0;
}

static int
s_drop_privileges (const char *user)
{
    struct passwd *pw = getpwnam (user);
    if (!pw) {
        log_error ("--user %s: no such user", user);
        return -EINVAL;
    }
    if (initgroups (pw->pw_name, pw->pw_gid) || setgid (pw->pw_gid) || setuid (pw->pw_uid)) {
        log_error ("--user %s: cannot switch user: %s", user, strerror (errno));
        return -EPERM;
    }
    //  setuid clears the dumpable flag; keep core dumps (and in-process
    //  tools that inspect the process, like LeakSanitizer) working.
    prctl (PR_SET_DUMPABLE, 1);
    log_info ("running as user %s", user);
    return 0;
}

/*  Fork before any ZeroMQ thread exists.  The parent waits on a pipe for
    the child to say it is bound (or failed) so `busd --daemon` exits with
    the truth.  Returns the write end in the child.                          */
static int
s_daemonize (void)
{
    int fds [2];
    if (pipe (fds))
        return -1;
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close (fds [1]);
        char status = 1;
        if (read (fds [0], &status, 1) != 1)
            status = 1;
        _exit (status);
    }
    close (fds [0]);
    setsid ();
    if (fork () > 0)
        _exit (0);
    umask (022);
    int null = open ("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2 (null, STDIN_FILENO);
        dup2 (null, STDOUT_FILENO);
        close (null);
    }
    return fds [1];
}

static void
s_report (int fd, char status)
{
    if (fd >= 0) {
        if (write (fd, &status, 1) != 1)
            log_warning ("cannot report start-up status to the parent");
        close (fd);
    }
}

int
main (int argc, char **argv)
{
    static const struct option options [] = {
        { "config",          required_argument, 0, 'c' },
        { "check-config",    no_argument,       0, 'C' },
        { "bind",            required_argument, 0, 'b' },
        { "log-level",       required_argument, 0, 'l' },
        { "syslog",          no_argument,       0, 'S' },
        { "session-timeout", required_argument, 0, 1 },
        { "heartbeat",       required_argument, 0, 2 },
        { "pub-credit",      required_argument, 0, 3 },
        { "max-payload",     required_argument, 0, 4 },
        { "queue-limit",     required_argument, 0, 5 },
        { "metrics",         required_argument, 0, 6 },
        { "stats-interval",  required_argument, 0, 7 },
        { "set",             required_argument, 0, 's' },
        { "daemon",          no_argument,       0, 'd' },
        { "pidfile",         required_argument, 0, 'p' },
        { "user",            required_argument, 0, 'u' },
        { "help",            no_argument,       0, 'h' },
        { "version",         no_argument,       0, 'V' },
        { 0, 0, 0, 0 }
    };
    static const char *keys [] = { NULL, "session_timeout_ms", "heartbeat_ms", "pub_credit",
                                   "max_payload", "queue_limit", "metrics_bind",
                                   "stats_interval_ms" };
    override_t overrides [MAX_OVERRIDES];
    int count = 0;
    const char *file = NULL, *pidfile = NULL, *user = NULL;
    bool check = false, daemon = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "c:b:l:s:dp:u:hV", options, NULL)) != -1) {
        if (count >= MAX_OVERRIDES) {
            fprintf (stderr, "busd: too many options\n");
            return 2;
        }
        switch (opt) {
            case 'c': file = optarg; break;
            case 'C': check = true; break;
            case 'b': overrides [count++] = (override_t) { "bind", optarg }; break;
            case 'l': overrides [count++] = (override_t) { "log_level", optarg }; break;
            case 'S': overrides [count++] = (override_t) { "syslog", "true" }; break;
            case 1: case 2: case 3: case 4: case 5: case 6: case 7:
                overrides [count++] = (override_t) { keys [opt], optarg };
                break;
            case 's': {
                char *eq = strchr (optarg, '=');
                if (!eq) {
                    fprintf (stderr, "busd: --set wants KEY=VALUE, got '%s'\n", optarg);
                    return 2;
                }
                *eq = 0;
                overrides [count++] = (override_t) { optarg, eq + 1 };
                break;
            }
            case 'd': daemon = true; break;
            case 'p': pidfile = optarg; break;
            case 'u': user = optarg; break;
            case 'h': s_usage (stdout); return 0;
            case 'V': printf ("busd %s (BUSP/1)\n", PACKAGE_VERSION); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "busd: unexpected argument '%s' (see busd --help)\n", argv [optind]);
        return 2;
    }
    //  One rule for relative paths: relative to the configuration file's
    //  directory (a plugin's "path", paths inside its "config", plugin_dir,
    //  ipc:// endpoints).  busd works in that directory; what the command
    //  line names is made absolute first, since the user meant it from here.
    const char *given_file = file;
    char abs_file [PATH_MAX], abs_pidfile [PATH_MAX];
    if (file && realpath (file, abs_file))
        file = abs_file;
    if (pidfile && pidfile [0] != '/') {
        char cwd [PATH_MAX];
        if (getcwd (cwd, sizeof cwd)
        &&  snprintf (abs_pidfile, sizeof abs_pidfile, "%s/%s", cwd, pidfile) < (int) sizeof abs_pidfile)
            pidfile = abs_pidfile;
    }
    if (file && file == abs_file) {
        char dir [PATH_MAX];
        snprintf (dir, sizeof dir, "%s", abs_file);
        char *slash = strrchr (dir, '/');
        if (slash)
            *(slash == dir ? slash + 1 : slash) = 0;
        if (chdir (dir)) {
            fprintf (stderr, "busd: cannot enter %s (the configuration's directory): %s\n",
                     dir, strerror (errno));
            return 2;
        }
    }
    char errors [8192];
    config_t *config = NULL;
    int rc = s_load (file, overrides, count, errors, sizeof errors, &config);
    if (!config) {
        fprintf (stderr, "busd: out of memory\n");
        return 1;
    }
    //  plugins.c: --check-config also loads every plugin and lets it check
    //  its own config; at start a missing file is only logged and busd runs
    //  the rest.
    if (plugins_check_config (config, check, errors, sizeof errors))
        rc = -EINVAL;
    //  Refused before binding: nothing would run as that user anyway.
    if (user && !getpwnam (user)) {
        busp_appendf (errors, sizeof errors, "--user %s: no such user\n", user);
        rc = -EINVAL;
    }
    if (check) {
        config_destroy (&config);
        if (rc == 0) {
            printf ("configuration OK%s%s\n", given_file ? ": " : "", given_file ? given_file : "");
            return 0;
        }
        fputs (errors, stderr);
        return 2;
    }
    if (rc) {
        config_destroy (&config);
        fputs (errors, stderr);
        fprintf (stderr, "busd: configuration invalid; nothing started\n");
        return 2;
    }
    int report_fd = -1;
    if (daemon) {
        report_fd = s_daemonize ();
        if (report_fd < 0) {
            fprintf (stderr, "busd: cannot daemonize: %s\n", strerror (errno));
            return 1;
        }
        if (!config->syslog)
            config->syslog = true;
    }
    //  Ours, not czmq's: SIGTERM must drain, SIGHUP must reload.
    zsys_handler_set (NULL);
    zsys_init ();
    log_use_syslog (config->syslog);
    log_set_level (config->log_level);
    busp_catch_signals (s_on_signal);
    signal (SIGPIPE, SIG_IGN);
    srandom ((unsigned) getpid () ^ (unsigned) time (NULL));

    broker_t *broker = broker_new (config);
    if (!broker || broker_bind (broker)) {
        broker_destroy (&broker);
        config_destroy (&config);
        s_report (report_fd, 1);
        zsys_shutdown ();
        return 1;
    }
    if (user && s_drop_privileges (user)) {
        broker_destroy (&broker);
        config_destroy (&config);
        s_report (report_fd, 1);
        zsys_shutdown ();
        return 1;
    }
    if (pidfile && s_write_pidfile (pidfile)) {
        broker_destroy (&broker);
        config_destroy (&config);
        s_report (report_fd, 1);
        zsys_shutdown ();
        return 1;
    }
    s_report (report_fd, 0);
    if (daemon) {
        int null = open ("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2 (null, STDERR_FILENO);
            close (null);
        }
    }
    notify_send ("READY=1\nSTATUS=accepting clients");
    //  notify.c: the ping rides the broker's own loop, so it proves the loop
    //  turns, not merely that the process exists.
    int64_t watchdog_ms = notify_watchdog_ms ();
    if (watchdog_ms > 0) {
        notify_send ("WATCHDOG=1");
        if (zloop_timer (broker->loop, (size_t) (watchdog_ms / 2 > 0 ? watchdog_ms / 2 : 1), 0,
                         s_on_watchdog, NULL) == -1)
            log_error ("cannot start the watchdog timer; systemd will think busd hangs");
        else
            log_info ("systemd watchdog: pinging every %lld ms", (long long) (watchdog_ms / 2));
    }

    //  plugins.c: instance threads connect over inproc:// while the loop
    //  starts; nothing here waits for them.
    plugins_t *plugins = plugins_new (broker);
    if (!plugins)
        log_error ("plugins: out of memory; no plugin started");
    s_live = (live_t) { .config = &config, .file = file, .overrides = overrides,
                        .count = count, .broker = broker, .plugins = plugins };
    broker->reload_fn = s_reload;
    while ((rc = broker_run (broker, &s_stop, &busd_reload_requested)) == 1) {
        busd_reload_requested = 0;
        char reload_errors [8192];
        s_reload (reload_errors, sizeof reload_errors);
    }
    notify_send ("STOPPING=1");
    //  plugins.c: after the drain (which let plugins finish), before the
    //  broker's sockets go.  A thread stuck in a plugin keeps ZeroMQ alive,
    //  so then we leave without tearing it down.
    if (plugins_destroy (&plugins) == -EBUSY) {
        log_error ("stopped with a plugin thread still running");
        _exit (1);
    }
    broker_destroy (&broker);
    config_destroy (&config);
    if (pidfile)
        unlink (pidfile);
    log_notice ("stopped");
    zsys_shutdown ();
    return rc < 0 ? 1 : 0;
}
