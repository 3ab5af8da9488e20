/*  busd-plugin-host.c — run one busd plugin out of process, supervised.

    The same plugin that busd loads in-process can run here against any
    busd endpoint (tcp://, ipc://), for crash isolation: a parent process
    forks a child that loads the plugin and runs its instances (the same
    src/pluginhost code busd uses), and restarts the child with a growing
    backoff when it dies abnormally.  Nothing is lost by a crash: the
    plugin subscribes with explicit acks in the queue group
    "plugin.<name>", so the event in flight is redelivered (attempt + 1) to
    the restarted child once the broker's ack_wait passes or it sees the
    old session gone.

    A second child, the keeper, holds a membership of that group with no
    credit for as long as the host runs, so the group never empties while
    the plugin restarts: what the crashed child had in flight goes back to
    the group's queue, events routed meanwhile wait there, and the
    restarted child gets them all (PROTOCOL §4, issue 10).  The keeper is
    supervised too: when it dies it is restarted with the same backoff
    (while it is gone the plugin child alone holds the group).  It is also
    the host's voice: it reports both restart counts to the broker (CTL
    "plugin-host"), so `busd-ctl plugins` shows them.

    The parent never touches ZeroMQ or the plugin (fork after threads is
    undefined territory); it only forks, waits and forwards signals.        */
#include "busd/client.h"
#include "busd/plugin.h"
#include "entry.h"
#include "instance.h"
#include "loader.h"
#include "clock.h"
#include "util.h"
#include "logfmt.h"
#include "endpoint.h"
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE      2
#define EXIT_CONFIG     78      /*  sysexits EX_CONFIG: restarting won't help */
#define EXIT_DISABLED   3       /*  every instance returned FATAL          */
#define STOP_DRAIN_MS   5000
#define BACKOFF_MIN_MS  250
#define BACKOFF_MAX_MS  10000
#define STABLE_MS       10000   /*  a child that ran this long resets backoff */
#define KEEPER_STOP_MS  1000    /*  the keeper's time to say BYE           */
#define MAX_PATTERNS    PLUGIN_PATTERNS_MAX

static const char *s_prog = "busd-plugin-host";
static volatile sig_atomic_t s_term = 0;
static volatile sig_atomic_t s_hup = 0;

static void
s_usage (FILE *out)
{
    fprintf (out,
"Usage: busd-plugin-host PLUGIN.so [--config FILE] [-e ENDPOINT] [--name NAME]\n"
"                        [--patterns PATTERN...] [OPTIONS]\n"
"Run a busd plugin out of process, as a subscriber of a busd broker, and\n"
"restart it when it crashes; a keeper process holds the plugin's group while it\n"
"restarts, and is restarted too if it dies.\n\n"
"  -c, --config FILE       the plugin's entry as JSON, as in busd.json's \"plugins\"\n"
"                          array: {\"name\", \"patterns\", \"config\", \"instances\",\n"
"                          \"max_inflight\", \"ack_wait_ms\", \"max_deliver\", \"endpoint\"}\n"
"  -e, --endpoint ENDPOINT the broker (default: the file's \"endpoint\", then\n"
"                          $BUSD_ENDPOINT, then " BUSD_DEFAULT_ENDPOINT ")\n"
"  -n, --name NAME         the plugin's name (queue group plugin.NAME;\n"
"                          default: the file's, else PLUGIN's base name)\n"
"  -p, --patterns PATTERN... the patterns to subscribe (replace the file's)\n"
"      --instances N       instance threads (default: the file's, else 1)\n"
"      --max-restarts N    give up after N restarts (default: unlimited)\n"
"      --no-supervise      run the plugin in this process, no restarts\n"
"  -l, --log-level LEVEL   debug, info, notice, warning or error (default info)\n"
"      --curve-server-key K, --curve-cert FILE, --plain-user U, --plain-password P\n"
"                          credentials for the broker, as for busd-pub (default:\n"
"                          $BUSD_CURVE_SERVER_KEY, $BUSD_CURVE_CERT,\n"
"                          $BUSD_PLAIN_USER, $BUSD_PLAIN_PASSWORD)\n"
"  -h, --help              this help\n"
"  -V, --version           version and plugin ABI\n\n"
"Exit status: 0 stopped by SIGTERM/SIGINT (or the plugin ended cleanly),\n"
"1 gave up after --max-restarts, 2 usage, 78 configuration error (the entry,\n"
"the plugin's own check, init returning -EINVAL) or the plugin cannot be\n"
"loaded: never restarted.  SIGHUP calls the plugin's reload.\n");
}

/*  ------------------------------------------------------------------
    Logging                                                                 */

static void
s_sink (int level, const char *line)
{
    char stamp [32];
    const char *letter = plugin_log_stamp (level, stamp, sizeof stamp);
    fprintf (stderr, "%s[%d]: %s %s %s\n", s_prog, (int) getpid (), letter, stamp, line);
    fflush (stderr);
}

static int s_level = BUSD_LOG_INFO;

static void
s_filtered_sink (int level, const char *line)
{
    if (level >= s_level)
        s_sink (level, line);
}

static int
s_level_of (const char *name)
{
    static const char *names [] = { "debug", "info", "notice", "warning", "error" };
    for (int i = 0; i < 5; i++)
        if (strcmp (name, names [i]) == 0)
            return i;
    return -1;
}

/*  ------------------------------------------------------------------
    Configuration                                                           */

typedef struct {
    const char *plugin;         /*  positional PLUGIN.so                    */
    const char *config;
    const char *endpoint;
    const char *name;
    const char *patterns [MAX_PATTERNS];
    int pattern_count;
    long instances;             /*  0: not given                            */
    long max_restarts;          /*  -1: unlimited                           */
    bool supervise;
} args_t;

static char *
s_read_file (const char *path, char *err, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    int rc = busp_read_file (path, &text, &len);
    if (rc == 0 && len > 0)
        return text;
    if (rc == -ENOMEM)
        snprintf (err, size, "%s: out of memory", path);
    else
    if (rc)
        snprintf (err, size, "%s: cannot open: %s", path, strerror (-rc));
    else
        snprintf (err, size, "%s: the file is empty (expected a JSON object)", path);
    free (text);
    return NULL;
}

/*  The entry from the file and the flags (flags win).                       */
static plugin_entry_t *
s_build_entry (const args_t *args, char **endpoint_p, char *errors, size_t size)
{
    cJSON *json = NULL;
    if (args->config) {
        char *text = s_read_file (args->config, errors, size);
        if (!text)
            return NULL;
        cJSON_Minify (text);        /*  drops comments, as busd allows them */
        json = cJSON_Parse (text);
        if (!cJSON_IsObject (json)) {
            const char *near = cJSON_GetErrorPtr ();
            snprintf (errors, size, "%s: %s%.20s%s", args->config,
                      json ? "the top level must be a JSON object (one plugin entry)"
                           : "JSON syntax error near '", json ? "" : near ? near : "",
                      json ? "" : "'");
            cJSON_Delete (json);
            free (text);
            return NULL;
        }
        free (text);
    }
    else
        json = cJSON_CreateObject ();
    if (!json)
        return NULL;
    if (args->plugin) {
        //  PLUGIN.so on the command line is relative to where we run, not
        //  to the config file; a bare name not found here is an installed
        //  plugin.
        char cwd [PATH_MAX];
        char *path = NULL;
        if (args->plugin [0] == '/'
        ||  (!strchr (args->plugin, '/') && access (args->plugin, F_OK) != 0))
            path = strdup (args->plugin);
        else
        if (getcwd (cwd, sizeof cwd) && asprintf (&path, "%s/%s", cwd, args->plugin) < 0)
            path = NULL;
        cJSON_DeleteItemFromObjectCaseSensitive (json, "path");
        cJSON_AddStringToObject (json, "path", path ? path : args->plugin);
        free (path);
    }
    if (args->name) {
        cJSON_DeleteItemFromObjectCaseSensitive (json, "name");
        cJSON_AddStringToObject (json, "name", args->name);
    }
    if (!cJSON_GetObjectItemCaseSensitive (json, "name") && args->plugin) {
        //  Default name: the file's base name without ".so".
        const char *base = strrchr (args->plugin, '/');
        char name [PLUGIN_NAME_MAX + 1];
        snprintf (name, sizeof name, "%s", base ? base + 1 : args->plugin);
        size_t len = strlen (name);
        if (len > 3 && strcmp (name + len - 3, ".so") == 0)
            name [len - 3] = 0;
        cJSON_AddStringToObject (json, "name", name);
    }
    if (args->pattern_count) {
        cJSON_DeleteItemFromObjectCaseSensitive (json, "patterns");
        cJSON *patterns = cJSON_AddArrayToObject (json, "patterns");
        for (int i = 0; patterns && i < args->pattern_count; i++)
            cJSON_AddItemToArray (patterns, cJSON_CreateString (args->patterns [i]));
    }
    if (args->instances) {
        cJSON_DeleteItemFromObjectCaseSensitive (json, "instances");
        cJSON_AddNumberToObject (json, "instances", (double) args->instances);
    }
    char *base_dir = args->config ? plugin_entry_base_dir (args->config) : NULL;
    plugin_entry_t *entry = NULL;
    plugin_entry_parse (json, args->config ? args->config : "command line", base_dir,
                        BUSD_PLUGINDIR, PLUGIN_ENTRY_CHECK_FILE | PLUGIN_ENTRY_HOST_KEYS,
                        &entry, errors, size);
    free (base_dir);
    const cJSON *endpoint = cJSON_GetObjectItemCaseSensitive (json, "endpoint");
    const char *chosen = args->endpoint ? args->endpoint
                       : cJSON_IsString (endpoint) ? endpoint->valuestring
                       : getenv ("BUSD_ENDPOINT") ? getenv ("BUSD_ENDPOINT")
                       : BUSD_DEFAULT_ENDPOINT;
    //  endpoint.c: host:port means tcp://, a bad port is named here.
    char normal [1024], why [200];
    if (busp_endpoint_normalize (chosen, normal, sizeof normal, why, sizeof why)) {
        busp_appendf (errors, size, "endpoint '%s': %s\n", chosen, why);
        plugin_entry_destroy (&entry);
    }
    else
        *endpoint_p = strdup (normal);
    cJSON_Delete (json);
    if (entry && !*endpoint_p)
        plugin_entry_destroy (&entry);
    return entry;
}

/*  ------------------------------------------------------------------
    The child: the plugin itself                                            */

static int
s_run_plugin (const plugin_entry_t *entry, const char *endpoint)
{
    //  Signals are taken synchronously here; instance threads block them.
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    sigaddset (&set, SIGHUP);
    pthread_sigmask (SIG_BLOCK, &set, NULL);

    char err [1024];
    plugin_module_t *module = plugin_module_load (entry->name, entry->path, "busd-plugin-host",
                                                  false, err, sizeof err);
    if (!module) {
        plugin_log (BUSD_LOG_ERROR, "%s", err);
        return EXIT_CONFIG;
    }
    plugin_log (BUSD_LOG_NOTICE, "plugin '%s': %s %s (plugin ABI %u.%u) from %s, %d instance%s "
                "on %s", entry->name, module->desc.name, module->desc.version,
                module->desc.abi_major, module->desc.abi_minor, entry->path, entry->instances,
                entry->instances == 1 ? "" : "s", endpoint);
    //  The plugin's own check (ABI 1.1) first: a configuration mistake is
    //  reported once, as such, instead of failing init in every restart.
    char problems [4096] = "";
    char where [PLUGIN_NAME_MAX + 16];
    snprintf (where, sizeof where, "plugin '%s'", entry->name);
    if (plugin_instance_check_config (module, entry, where, problems, sizeof problems)) {
        busp_log_one_line (problems, sizeof problems);
        plugin_log (BUSD_LOG_ERROR, "%s", problems);
        plugin_module_destroy (&module);
        return EXIT_CONFIG;
    }
    plugin_instance_t *instances [PLUGIN_INSTANCES_MAX] = { NULL };
    int count = 0;
    for (int i = 0; i < entry->instances; i++) {
        instances [count] = plugin_instance_new (module, entry, endpoint, NULL, i + 1);
        if (!instances [count]) {
            plugin_log (BUSD_LOG_ERROR, "plugin '%s': out of memory", entry->name);
            break;
        }
        plugin_instance_start (instances [count++]);
    }
    int code = 0;
    while (count) {
        struct timespec slice = { 0, 100 * 1000000L };
        int sig = sigtimedwait (&set, NULL, &slice);
        if (sig == SIGHUP) {
            plugin_log (BUSD_LOG_NOTICE, "SIGHUP: reloading plugin '%s'", entry->name);
            for (int i = 0; i < count; i++)
                plugin_instance_reload (instances [i]);
            continue;
        }
        if (sig == SIGTERM || sig == SIGINT) {
            plugin_log (BUSD_LOG_NOTICE, "%s: stopping plugin '%s'", strsignal (sig), entry->name);
            for (int i = 0; i < count; i++)
                plugin_instance_stop (instances [i], PLUGIN_STOP_SHUTDOWN,
                                      busp_mono_ms () + STOP_DRAIN_MS);
            break;
        }
        bool alive = false;
        for (int i = 0; i < count; i++)
            alive = alive || plugin_instance_alive (instances [i]);
        if (!alive) {
            //  Every instance ended by itself: say why with the exit code.
            //  init's -EINVAL is a configuration error: restarting won't help.
            for (int i = 0; i < count; i++) {
                plugin_state_t state = plugin_instance_state (instances [i], NULL, 0);
                if (state == PLUGIN_STATE_FAILED && plugin_instance_config_error (instances [i]))
                    code = EXIT_CONFIG;
                else
                if (state == PLUGIN_STATE_FAILED && code != EXIT_CONFIG)
                    code = 1;
                else
                if (state == PLUGIN_STATE_DISABLED && code == 0)
                    code = EXIT_DISABLED;
            }
            break;
        }
    }
    bool stuck = false;
    plugin_counters_t sum = { 0 };
    for (int i = 0; i < count; i++) {
        if (plugin_instance_join (instances [i], STOP_DRAIN_MS + 2000)) {
            plugin_instance_stop (instances [i], PLUGIN_STOP_NOW, 0);
            if (plugin_instance_join (instances [i], 2000)) {
                plugin_log (BUSD_LOG_ERROR, "plugin '%s': an instance is stuck in on_event",
                            entry->name);
                stuck = true;
                continue;
            }
        }
        plugin_instance_counters (instances [i], &sum);
        char error [600];
        plugin_state_t state = plugin_instance_state (instances [i], error, sizeof error);
        if (error [0])
            plugin_log (BUSD_LOG_NOTICE, "plugin '%s' instance %d: %s: %s", entry->name, i + 1,
                        plugin_state_name (state), error);
        plugin_instance_destroy (&instances [i]);
    }
    plugin_log (BUSD_LOG_NOTICE, "plugin '%s': delivered %llu, ok %llu, retried %llu, "
                "dead-lettered %llu, fatal %llu", entry->name,
                (unsigned long long) sum.delivered, (unsigned long long) sum.ok,
                (unsigned long long) sum.retried, (unsigned long long) sum.failed,
                (unsigned long long) sum.fatal);
    if (stuck)
        _exit (1);              /*  its code still runs: no dlclose, no atexit */
    plugin_module_destroy (&module);
    return code;
}

/*  ------------------------------------------------------------------
    The keeper child: holds the group while the plugin child restarts, and
    tells the broker the host's restart counts (CTL "plugin-host", shown by
    CTL "plugins").  The parent writes each new count as one line
    "restarts keeper_restarts plugin_pid last_exit" into a pipe.            */

typedef struct {
    long restarts;
    long keeper_restarts;
    long pid;
    char last_exit [160];
} host_status_t;

/*  Read what the parent wrote; true when the newest complete line differs
    from *status.                                                            */
static bool
s_read_status (int fd, char *buf, size_t size, size_t *len, host_status_t *status)
{
    bool changed = false;
    while (true) {
        ssize_t n = read (fd, buf + *len, size - 1 - *len);
        if (n <= 0)
            return changed;
        *len += (size_t) n;
        buf [*len] = 0;
        char *nl;
        while ((nl = strchr (buf, '\n'))) {
            *nl = 0;
            host_status_t next = { 0 };
            int used = 0;
            if (sscanf (buf, "%ld %ld %ld %n", &next.restarts, &next.keeper_restarts,
                        &next.pid, &used) >= 3) {
                snprintf (next.last_exit, sizeof next.last_exit, "%s", buf + used);
                if (memcmp (&next, status, sizeof next) != 0)
                    changed = true;
                *status = next;
            }
            size_t rest = *len - (size_t) (nl + 1 - buf);
            memmove (buf, nl + 1, rest + 1);
            *len = rest;
        }
        if (*len == size - 1)
            *len = 0;           /*  a line that long is not ours: drop it    */
    }
}

static void
s_report (busd_client_t *client, const plugin_entry_t *entry, const host_status_t *status,
          bool *warned)
{
    cJSON *req = cJSON_CreateObject ();
    cJSON_AddStringToObject (req, "cmd", "plugin-host");
    cJSON_AddStringToObject (req, "name", entry->name);
    cJSON_AddNumberToObject (req, "pid", (double) status->pid);
    cJSON_AddNumberToObject (req, "host_pid", (double) getppid ());
    cJSON_AddNumberToObject (req, "restarts", (double) status->restarts);
    cJSON_AddNumberToObject (req, "keeper_restarts", (double) status->keeper_restarts);
    cJSON_AddStringToObject (req, "last_exit", status->last_exit);
    char *text = cJSON_PrintUnformatted (req);
    cJSON_Delete (req);
    char *reply = NULL;
    int code = text ? busd_ctl (client, text, &reply, 5000) : -ENOMEM;
    free (text);
    //  A broker without the command, or an ACL without it, only costs the
    //  report: say so once.
    if (code != 200 && !*warned) {
        plugin_log (BUSD_LOG_NOTICE, "plugin '%s': the broker did not take the restart "
                    "report (%d%s%s); busd-ctl plugins will not show this host", entry->name,
                    code, reply ? ": " : "", reply ? reply : "");
        *warned = true;
    }
    free (reply);
}

static int
s_run_keeper (const plugin_entry_t *entry, const char *endpoint, int status_fd)
{
    sigset_t set;
    sigemptyset (&set);
    sigaddset (&set, SIGTERM);
    sigaddset (&set, SIGINT);
    pthread_sigmask (SIG_BLOCK, &set, NULL);
    char name [PLUGIN_NAME_MAX + 32];
    snprintf (name, sizeof name, "plugin.%s/keeper", entry->name);
    busd_client_options_t opts;
    busd_client_options_init (&opts);
    opts.endpoint = endpoint;
    opts.client_name = name;
    busd_client_t *client = NULL;
    //  Wait for the broker as long as the host runs: the plugin child
    //  waits for it too.
    while (!client) {
        int err = 0;
        client = busd_client_new (&opts, &err);
        struct timespec slice = { 0, 0 };
        if (!client && sigtimedwait (&set, NULL, &slice) > 0)
            return 0;
    }
    //  Same group and queue options as the instances (instance.c), no credit:
    //  it never receives, it only keeps the group's queue alive.
    char options [PLUGIN_NAME_MAX + 160];
    snprintf (options, sizeof options, "{\"ack\": \"explicit\", \"credit\": 0, "
              "\"group\": \"plugin.%s\", \"on_end\": \"dead-letter\"}", entry->name);
    for (size_t i = 0; i < entry->pattern_count; i++) {
        int64_t id = busd_subscribe (client, entry->patterns [i], options, 10000);
        if (id < 0) {
            plugin_log (BUSD_LOG_WARNING, "plugin '%s': the keeper cannot hold '%s': %s",
                        entry->name, entry->patterns [i], busd_strerror ((int) id));
        }
    }
    host_status_t status = { .pid = -1 };
    char buf [512];
    size_t len = 0;
    bool warned = false;
    while (true) {
        struct timespec slice = { 0, 0 };
        if (sigtimedwait (&set, NULL, &slice) > 0)
            break;
        if (status_fd >= 0 && s_read_status (status_fd, buf, sizeof buf, &len, &status))
            s_report (client, entry, &status, &warned);
        busd_client_poll (client, 200);
    }
    busd_client_destroy (&client);
    return 0;
}

/*  Start the keeper with a fresh status pipe (*status_fd: the write end,
    non-blocking, -1 when there is none).                                    */
/*  In a child: SIGTERM when the supervising parent dies (even by SIGKILL),
    so neither the plugin nor the keeper outlives its host unsupervised.    */
static void
s_die_with_parent (pid_t parent)
{
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        raise (SIGTERM);
}

static pid_t
s_start_keeper (const plugin_entry_t *entry, const char *endpoint, int *status_fd)
{
    int fds [2] = { -1, -1 };
    if (pipe (fds) == 0) {
        fcntl (fds [0], F_SETFL, O_NONBLOCK);
        fcntl (fds [1], F_SETFL, O_NONBLOCK);
        fcntl (fds [1], F_SETFD, FD_CLOEXEC);
    }
    fflush (NULL);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        signal (SIGPIPE, SIG_IGN);
        signal (SIGHUP, SIG_IGN);
        signal (SIGTERM, SIG_DFL);
        signal (SIGINT, SIG_DFL);
        s_die_with_parent (parent);
        if (fds [1] >= 0)
            close (fds [1]);
        int code = s_run_keeper (entry, endpoint, fds [0]);
        fflush (NULL);
        exit (code);
    }
    if (fds [0] >= 0)
        close (fds [0]);
    if (pid < 0) {
        plugin_log (BUSD_LOG_WARNING, "cannot fork the keeper: %s (a crash may lose the group)",
                    strerror (errno));
        if (fds [1] >= 0)
            close (fds [1]);
        fds [1] = -1;
    }
    else
        plugin_log (BUSD_LOG_INFO, "started the keeper of plugin '%s' in process %d",
                    entry->name, (int) pid);
    *status_fd = fds [1];
    return pid;
}

static void
s_stop_keeper (pid_t pid)
{
    if (pid <= 0)
        return;
    //  It says BYE when it can; one still waiting for a broker is killed.
    kill (pid, SIGTERM);
    int64_t deadline = busp_mono_ms () + KEEPER_STOP_MS;
    while (waitpid (pid, NULL, WNOHANG) == 0) {
        if (busp_mono_ms () >= deadline) {
            kill (pid, SIGKILL);
            while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
                ;
            return;
        }
        struct timespec ts = { 0, 10 * 1000000L };
        nanosleep (&ts, NULL);
    }
}

/*  ------------------------------------------------------------------
    The parent: supervision of both children                                */

static void
s_on_signal (int sig)
{
    if (sig == SIGHUP)
        s_hup = 1;
    else
        s_term = sig;
}

static void
s_describe (int status, char *buf, size_t size)
{
    if (WIFSIGNALED (status))
        snprintf (buf, size, "was killed by signal %d (%s)%s", WTERMSIG (status),
                  strsignal (WTERMSIG (status)), WCOREDUMP (status) ? ", core dumped" : "");
    else
        snprintf (buf, size, "exited with status %d", WEXITSTATUS (status));
}

/*  One child the parent keeps running: its process, when it started, and
    when (after a failure) it may start again.                              */
typedef struct {
    pid_t pid;                  /*  0: not running                           */
    int64_t started_ms;
    int64_t due_ms;             /*  start again at (when pid is 0)           */
    int backoff_ms;
    long restarts;
} child_t;

static int
s_backoff (child_t *child)
{
    if (busp_mono_ms () - child->started_ms >= STABLE_MS)
        child->backoff_ms = BACKOFF_MIN_MS;
    int wait = child->backoff_ms;
    child->backoff_ms = wait * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : wait * 2;
    child->due_ms = busp_mono_ms () + wait;
    return wait;
}

static pid_t
s_start_plugin (const plugin_entry_t *entry, const char *endpoint, int status_fd)
{
    fflush (NULL);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        signal (SIGPIPE, SIG_IGN);
        signal (SIGTERM, SIG_DFL);
        signal (SIGINT, SIG_DFL);
        signal (SIGHUP, SIG_DFL);
        s_die_with_parent (parent);
        if (status_fd >= 0)
            close (status_fd);
        int code = s_run_plugin (entry, endpoint);
        fflush (NULL);
        exit (code);
    }
    if (pid > 0)
        plugin_log (BUSD_LOG_INFO, "started plugin '%s' in process %d", entry->name, (int) pid);
    return pid;
}

/*  The counts to the keeper, which tells the broker.                        */
static void
s_tell_keeper (int fd, const child_t *plugin, const child_t *keeper, const char *last_exit)
{
    if (fd < 0)
        return;
    char line [256];
    int n = snprintf (line, sizeof line, "%ld %ld %ld %s\n", plugin->restarts,
                      keeper->restarts, (long) plugin->pid, last_exit);
    if (n > 0 && (size_t) n < sizeof line && write (fd, line, (size_t) n) < 0
    &&  errno != EAGAIN && errno != EPIPE)
        plugin_log (BUSD_LOG_DEBUG, "status to the keeper: %s", strerror (errno));
}

/*  Both children run until SIGTERM/SIGINT: the plugin child is restarted
    after a crash (unless it exits cleanly, cannot be loaded, or
    --max-restarts is reached); the keeper is restarted whenever it dies,
    since without it a plugin crash would leave the group empty.  Both
    back off the same way.                                                  */
static int
s_supervise (const plugin_entry_t *entry, const char *endpoint, long max_restarts)
{
    //  No SA_RESTART: the sleeps return so the signal is forwarded.
    busp_catch_signals (s_on_signal);
    signal (SIGPIPE, SIG_IGN);
    child_t plugin = { .backoff_ms = BACKOFF_MIN_MS };
    child_t keeper = { .backoff_ms = BACKOFF_MIN_MS };
    int status_fd = -1;
    char last_exit [160] = "";
    keeper.started_ms = busp_mono_ms ();
    keeper.pid = s_start_keeper (entry, endpoint, &status_fd);
    if (keeper.pid < 0) {
        keeper.pid = 0;
        s_backoff (&keeper);
    }
    int code = -1;              /*  -1: keep going                           */
    bool forwarded = false;
    while (code < 0 || plugin.pid > 0) {
        int64_t now = busp_mono_ms ();
        if (s_term && !forwarded) {
            if (plugin.pid > 0)
                kill (plugin.pid, s_term);
            forwarded = true;
        }
        if (s_hup) {
            s_hup = 0;
            if (plugin.pid > 0)
                kill (plugin.pid, SIGHUP);
        }
        if (s_term && plugin.pid <= 0) {
            if (code < 0)
                code = 0;
            break;
        }
        if (code < 0 && !s_term && keeper.pid == 0 && now >= keeper.due_ms) {
            keeper.started_ms = now;
            keeper.pid = s_start_keeper (entry, endpoint, &status_fd);
            if (keeper.pid < 0) {
                keeper.pid = 0;
                s_backoff (&keeper);
            }
            else
                s_tell_keeper (status_fd, &plugin, &keeper, last_exit);
        }
        if (code < 0 && !s_term && plugin.pid == 0 && now >= plugin.due_ms) {
            plugin.started_ms = now;
            plugin.pid = s_start_plugin (entry, endpoint, status_fd);
            if (plugin.pid < 0) {
                plugin_log (BUSD_LOG_ERROR, "cannot fork: %s", strerror (errno));
                plugin.pid = 0;
                code = 1;
                break;
            }
            s_tell_keeper (status_fd, &plugin, &keeper, last_exit);
        }
        int status = 0;
        pid_t done = waitpid (-1, &status, WNOHANG);
        if (done < 0 && errno != EINTR && errno != ECHILD) {
            plugin_log (BUSD_LOG_ERROR, "waitpid: %s", strerror (errno));
            code = 1;
            break;
        }
        if (done <= 0) {
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep (&ts, NULL);
            continue;
        }
        char how [128];
        s_describe (status, how, sizeof how);
        if (done == keeper.pid) {
            keeper.pid = 0;
            if (status_fd >= 0)
                close (status_fd);
            status_fd = -1;
            if (s_term || code >= 0)
                continue;
            keeper.restarts++;
            int wait = s_backoff (&keeper);
            plugin_log (BUSD_LOG_WARNING, "the keeper of plugin '%s' (process %d, it holds group "
                        "plugin.%s while the plugin restarts) %s; restarting it in %d ms "
                        "(keeper restart %ld)", entry->name, (int) done, entry->name, how, wait,
                        keeper.restarts);
            snprintf (last_exit, sizeof last_exit, "keeper %s", how);
            continue;
        }
        if (done != plugin.pid)
            continue;
        plugin.pid = 0;
        if (s_term) {
            plugin_log (BUSD_LOG_NOTICE, "plugin process %d %s; stopped", (int) done, how);
            code = WIFEXITED (status) ? WEXITSTATUS (status) : 0;
            break;
        }
        if (WIFEXITED (status) && WEXITSTATUS (status) == 0) {
            plugin_log (BUSD_LOG_NOTICE, "plugin process %d ended cleanly", (int) done);
            code = 0;
            break;
        }
        if (WIFEXITED (status) && WEXITSTATUS (status) == EXIT_CONFIG) {
            plugin_log (BUSD_LOG_ERROR, "plugin '%s' cannot be loaded or is misconfigured; "
                        "not restarting", entry->name);
            code = EXIT_CONFIG;
            break;
        }
        if (max_restarts >= 0 && plugin.restarts >= max_restarts) {
            plugin_log (BUSD_LOG_ERROR, "plugin process %d %s; giving up after %ld restart%s",
                        (int) done, how, plugin.restarts, plugin.restarts == 1 ? "" : "s");
            code = 1;
            break;
        }
        plugin.restarts++;
        int wait = s_backoff (&plugin);
        plugin_log (BUSD_LOG_WARNING, "plugin process %d %s; restarting in %d ms (restart %ld)",
                    (int) done, how, wait, plugin.restarts);
        snprintf (last_exit, sizeof last_exit, "plugin %s", how);
        s_tell_keeper (status_fd, &plugin, &keeper, last_exit);
    }
    if (status_fd >= 0)
        close (status_fd);
    s_stop_keeper (keeper.pid);
    return code < 0 ? 0 : code;
}

/*  ------------------------------------------------------------------
    Command line                                                            */

static bool
s_is (const char *arg, const char *short_name, const char *long_name)
{
    return (short_name && strcmp (arg, short_name) == 0) || strcmp (arg, long_name) == 0;
}

static bool
s_number (const char *text, long min, long *value)
{
    char *end;
    errno = 0;
    long v = strtol (text, &end, 10);
    if (errno || end == text || *end || v < min)
        return false;
    *value = v;
    return true;
}

int
main (int argc, char **argv)
{
    args_t args = { .max_restarts = -1, .supervise = true };
    //  Parsed by hand: --patterns takes every following argument up to the
    //  next option, which getopt cannot express.
    for (int i = 1; i < argc; i++) {
        char *arg = argv [i];
        char *value = NULL;
        char *eq = strncmp (arg, "--", 2) == 0 ? strchr (arg, '=') : NULL;
        if (eq) {
            *eq = 0;
            value = eq + 1;
        }
#define IS(short_, long_) s_is (arg, short_, long_)
#define VALUE() (value ? value : (i + 1 < argc ? argv [++i] : NULL))
        if (IS ("-h", "--help")) {
            s_usage (stdout);
            return 0;
        }
        else
        if (IS ("-V", "--version")) {
            printf ("busd-plugin-host %s (plugin ABI %d.%d, BUSP/1)\n", PACKAGE_VERSION,
                    BUSD_PLUGIN_ABI_MAJOR, BUSD_PLUGIN_ABI_MINOR);
            return 0;
        }
        else
        if (IS ("-c", "--config") || IS ("-e", "--endpoint") || IS ("-n", "--name")
        ||  IS (NULL, "--instances") || IS (NULL, "--max-restarts") || IS ("-l", "--log-level")) {
            const char *v = VALUE ();
            if (!v) {
                fprintf (stderr, "%s: %s needs a value (see --help)\n", s_prog, arg);
                return EXIT_USAGE;
            }
            if (IS ("-c", "--config"))
                args.config = v;
            else
            if (IS ("-e", "--endpoint"))
                args.endpoint = v;
            else
            if (IS ("-n", "--name"))
                args.name = v;
            else
            if (IS (NULL, "--instances")) {
                if (!s_number (v, 1, &args.instances) || args.instances > PLUGIN_INSTANCES_MAX) {
                    fprintf (stderr, "%s: --instances wants 1..%d, got '%s'\n", s_prog,
                             PLUGIN_INSTANCES_MAX, v);
                    return EXIT_USAGE;
                }
            }
            else
            if (IS (NULL, "--max-restarts")) {
                if (!s_number (v, 0, &args.max_restarts)) {
                    fprintf (stderr, "%s: --max-restarts wants a number >= 0, got '%s'\n",
                             s_prog, v);
                    return EXIT_USAGE;
                }
            }
            else {
                s_level = s_level_of (v);
                if (s_level < 0) {
                    fprintf (stderr, "%s: --log-level: '%s' is not one of debug, info, notice, "
                             "warning, error\n", s_prog, v);
                    return EXIT_USAGE;
                }
            }
        }
        else
        if (IS (NULL, "--curve-server-key") || IS (NULL, "--curve-cert")
        ||  IS (NULL, "--plain-user") || IS (NULL, "--plain-password")) {
            //  Passed on through the environment, which the instances (and
            //  the supervised child) read like every tool does.
            const char *v = VALUE ();
            if (!v) {
                fprintf (stderr, "%s: %s needs a value (see --help)\n", s_prog, arg);
                return EXIT_USAGE;
            }
            const char *var = IS (NULL, "--curve-server-key") ? "BUSD_CURVE_SERVER_KEY"
                            : IS (NULL, "--curve-cert") ? "BUSD_CURVE_CERT"
                            : IS (NULL, "--plain-user") ? "BUSD_PLAIN_USER" : "BUSD_PLAIN_PASSWORD";
            if (setenv (var, v, 1)) {
                fprintf (stderr, "%s: out of memory\n", s_prog);
                return 1;
            }
        }
        else
        if (IS ("-p", "--patterns") || IS (NULL, "--pattern")) {
            //  --patterns takes every following argument that is not an
            //  option; --pattern exactly one.
            bool many = IS ("-p", "--patterns");
            int before = args.pattern_count;
            const char *first = VALUE ();
            if (first && args.pattern_count < MAX_PATTERNS)
                args.patterns [args.pattern_count++] = first;
            while (many && i + 1 < argc && argv [i + 1][0] != '-'
               &&  args.pattern_count < MAX_PATTERNS)
                args.patterns [args.pattern_count++] = argv [++i];
            if (args.pattern_count == before) {
                fprintf (stderr, "%s: %s needs at least one pattern (see --help)\n", s_prog, arg);
                return EXIT_USAGE;
            }
        }
        else
        if (IS (NULL, "--no-supervise"))
            args.supervise = false;
        else
        if (arg [0] == '-' && arg [1]) {
            fprintf (stderr, "%s: unknown option '%s' (see --help)\n", s_prog, arg);
            return EXIT_USAGE;
        }
        else
        if (!args.plugin)
            args.plugin = arg;
        else {
            fprintf (stderr, "%s: unexpected argument '%s' (one plugin per host; see --help)\n",
                     s_prog, arg);
            return EXIT_USAGE;
        }
#undef IS
#undef VALUE
    }
    if (!args.plugin && !args.config) {
        fprintf (stderr, "%s: which plugin? give PLUGIN.so, or --config FILE with a \"path\" "
                 "(see --help)\n", s_prog);
        return EXIT_USAGE;
    }
    plugin_log_set_sink (s_filtered_sink);
    char errors [8192] = "";
    char *endpoint = NULL;
    plugin_entry_t *entry = s_build_entry (&args, &endpoint, errors, sizeof errors);
    if (!entry) {
        fprintf (stderr, "%s", errors);
        if (errors [0] && errors [strlen (errors) - 1] != '\n')
            fputc ('\n', stderr);
        fprintf (stderr, "%s: configuration invalid; nothing started\n", s_prog);
        free (endpoint);
        return EXIT_CONFIG;
    }
    //  One rule for relative paths, as in busd: relative to the
    //  configuration file's directory (the plugin's own "config" paths too).
    if (args.config) {
        char dir [PATH_MAX];
        snprintf (dir, sizeof dir, "%s", args.config);
        char *slash = strrchr (dir, '/');
        if (slash && chdir (slash == dir ? "/" : (*slash = 0, dir))) {
            fprintf (stderr, "%s: cannot enter %s (the configuration's directory): %s\n",
                     s_prog, dir, strerror (errno));
            plugin_entry_destroy (&entry);
            free (endpoint);
            return EXIT_CONFIG;
        }
    }
    int code = 0;
    if (!entry->enabled)
        plugin_log (BUSD_LOG_NOTICE, "plugin '%s' is disabled in its configuration; nothing to do",
                    entry->name);
    else
    if (args.supervise)
        code = s_supervise (entry, endpoint, args.max_restarts);
    else {
        signal (SIGPIPE, SIG_IGN);
        code = s_run_plugin (entry, endpoint);
    }
    plugin_entry_destroy (&entry);
    free (endpoint);
    return code;
}
