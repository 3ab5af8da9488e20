/*  exec.c — the "exec" plugin: run a command for every event.

    The payload goes to the child's stdin and the event's fields to its
    environment (BUSD_TOPIC, BUSD_MSG_ID, ...); the exit status is the
    answer: 0 is OK, 75 (EX_TEMPFAIL, as sendmail and friends use it) is
    RETRY, anything else is FAIL with the tail of stderr as the reason.
    This is the Unix way to plug any script into the bus.

    Shape: one child at a time per instance.  The host already runs every
    instance in its own thread and a plugin entry may ask for several
    "instances", so concurrency comes from there and this file stays a
    plain loop: posix_spawn (vfork-like, safe in a threaded process, no
    malloc between fork and exec), then one poll over the stdin/stdout/
    stderr pipes and a pidfd until the child exits or the timeout kills its
    process group.  The child gets a new process group, an empty signal
    mask and default dispositions, and no descriptor of ours besides 0-2.
    The leader is only reaped after the last kill, so the group id cannot
    be reused by an unrelated process while we still signal it.              */
#include <busd/plugin.h>
#include "plugin_common.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define EXIT_TEMPFAIL 75        //  EX_TEMPFAIL from sysexits.h

typedef struct {
    char **argv;                //  NULL-terminated, owned
    char **env;                 //  environment without the per-event part
    size_t env_count;
    int64_t timeout_ms;
    int64_t kill_grace_ms;      //  between SIGTERM and SIGKILL
    const char *what;           //  the command, for logs (points into argv)
} settings_t;

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;
    settings_t settings;
} exec_t;

//  What happened to one child.
typedef struct {
    int spawn_error;            //  errno from posix_spawn, 0 when it ran
    int status;                 //  from waitpid
    bool status_lost;           //  ECHILD: someone else reaped it
    bool timed_out;
    pc_tail_t err;
    pc_tail_t out;
} run_t;

static void
s_strv_free (char **strv)
{
    if (!strv)
        return;
    for (char **p = strv; *p; p++)
        free (*p);
    free (strv);
}

static void
s_settings_clear (settings_t *settings)
{
    s_strv_free (settings->argv);
    s_strv_free (settings->env);
    memset (settings, 0, sizeof *settings);
}

//  True when an executable called name can be found the way execvp would.
static bool
s_command_exists (const char *name)
{
    if (strchr (name, '/'))
        return access (name, X_OK) == 0;
    const char *path = getenv ("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *end = strchrnul (path, ':');
        char candidate [4096];
        int n = snprintf (candidate, sizeof candidate, "%.*s/%s",
                          end == path ? 1 : (int) (end - path), end == path ? "." : path, name);
        struct stat st;
        if (n > 0 && (size_t) n < sizeof candidate && stat (candidate, &st) == 0
        &&  S_ISREG (st.st_mode) && access (candidate, X_OK) == 0)
            return true;
        path = *end ? end + 1 : end;
    }
    return false;
}

//  Names this plugin sets per event: an inherited value would be stale.
static const char *s_event_vars [] = {
    "BUSD_TOPIC", "BUSD_MSG_ID", "BUSD_ATTEMPT", "BUSD_DELIVERY_ID", "BUSD_HEADERS",
    "BUSD_TS_US", "BUSD_STREAM_SEQ", "BUSD_INSTANCE", NULL
};

static bool
s_name_is (const char *entry, const char *name)
{
    size_t len = strlen (name);
    return strncmp (entry, name, len) == 0 && entry [len] == '=';
}

static int
s_env_push (settings_t *settings, size_t *cap, char *entry)
{
    if (!entry)
        return -ENOMEM;
    if (settings->env_count + 2 > *cap) {
        size_t new_cap = *cap ? *cap * 2 : 64;
        char **env = realloc (settings->env, new_cap * sizeof *env);
        if (!env) {
            free (entry);
            return -ENOMEM;
        }
        settings->env = env;
        *cap = new_cap;
    }
    settings->env [settings->env_count++] = entry;
    settings->env [settings->env_count] = NULL;
    return 0;
}

//  The base environment: ours (a snapshot, so a later setenv elsewhere in
//  the process cannot race with a spawn), minus what the config or the
//  event overrides, plus the config's "env".
static int
s_env_build (settings_t *settings, const cJSON *env_cfg, char *err, size_t err_size)
{
    size_t cap = 0;
    for (char **e = environ; e && *e; e++) {
        bool skip = false;
        for (const char **v = s_event_vars; *v && !skip; v++)
            skip = s_name_is (*e, *v);
        const cJSON *item;
        cJSON_ArrayForEach (item, env_cfg)
            if (!skip)
                skip = s_name_is (*e, item->string);
        if (!skip && s_env_push (settings, &cap, strdup (*e)))
            goto nomem;
    }
    const cJSON *item;
    cJSON_ArrayForEach (item, env_cfg) {
        const char *name = item->string;
        if (!*name || strchr (name, '=')) {
            snprintf (err, err_size, "config: \"env\" has an invalid variable name \"%s\"", name);
            return -EINVAL;
        }
        char *entry = NULL;
        int n;
        if (cJSON_IsString (item))
            n = asprintf (&entry, "%s=%s", name, item->valuestring);
        else
        if (cJSON_IsBool (item))
            n = asprintf (&entry, "%s=%s", name, cJSON_IsTrue (item) ? "true" : "false");
        else
        if (cJSON_IsNumber (item) && item->valuedouble == (double) (int64_t) item->valuedouble)
            n = asprintf (&entry, "%s=%" PRId64, name, (int64_t) item->valuedouble);
        else
        if (cJSON_IsNumber (item))
            n = asprintf (&entry, "%s=%.17g", name, item->valuedouble);
        else {
            snprintf (err, err_size, "config: \"env.%s\" must be a string, number or boolean", name);
            return -EINVAL;
        }
        if (n < 0 || s_env_push (settings, &cap, entry))
            goto nomem;
    }
    if (!settings->env && s_env_push (settings, &cap, strdup ("PATH=/usr/bin:/bin")))
        goto nomem;
    return 0;
nomem:
    snprintf (err, err_size, "out of memory");
    return -ENOMEM;
}

static int
s_settings_read (const char *config_json, settings_t *settings, char *err, size_t err_size)
{
    static const char *known [] = {
        "command", "timeout_ms", "kill_grace_ms", "env", "max_concurrency", NULL
    };
    memset (settings, 0, sizeof *settings);
    cJSON *config;
    int rc = pc_config_parse (config_json, known, &config, err, err_size);
    if (rc)
        return rc;
    rc = -EINVAL;
    const cJSON *item;
    const cJSON *command = cJSON_GetObjectItemCaseSensitive (config, "command");
    if (cJSON_IsString (command) && *command->valuestring) {
        //  A string is a shell command line, like crontab's.
        settings->argv = calloc (4, sizeof (char *));
        if (!settings->argv
        || !(settings->argv [0] = strdup ("/bin/sh"))
        || !(settings->argv [1] = strdup ("-c"))
        || !(settings->argv [2] = strdup (command->valuestring)))
            goto nomem;
        settings->what = settings->argv [2];
    }
    else
    if (cJSON_IsArray (command) && cJSON_GetArraySize (command) > 0) {
        int count = cJSON_GetArraySize (command);
        settings->argv = calloc ((size_t) count + 1, sizeof (char *));
        if (!settings->argv)
            goto nomem;
        int i = 0;
        cJSON_ArrayForEach (item, command) {
            if (!cJSON_IsString (item) || (i == 0 && !*item->valuestring)) {
                snprintf (err, err_size, "config: \"command\"[%d] must be a%s string", i,
                          i == 0 ? " non-empty" : "");
                goto done;
            }
            if (!(settings->argv [i++] = strdup (item->valuestring)))
                goto nomem;
        }
        settings->what = settings->argv [0];
    }
    else {
        snprintf (err, err_size, "config: \"command\" is required: an argv array like "
                  "[\"/usr/bin/mailer\", \"--welcome\"] or a string run by /bin/sh -c");
        goto done;
    }
    if (!s_command_exists (settings->argv [0])) {
        snprintf (err, err_size, "config: command \"%s\" %s", settings->argv [0],
                  strchr (settings->argv [0], '/') ? "is not an executable file"
                                                  : "is not found in PATH");
        goto done;
    }
    int64_t concurrency;
    if (pc_config_int (config, "timeout_ms", 30000, 1, 86400000, &settings->timeout_ms, err, err_size)
    ||  pc_config_int (config, "kill_grace_ms", 2000, 0, 600000, &settings->kill_grace_ms, err, err_size)
    ||  pc_config_int (config, "max_concurrency", 1, 1, 1000000, &concurrency, err, err_size))
        goto done;
    if (concurrency != 1) {
        snprintf (err, err_size, "config: each instance runs one command at a time; for %" PRId64
                  " at once set \"instances\": %" PRId64 " in the plugin entry instead of "
                  "\"max_concurrency\"", concurrency, concurrency);
        goto done;
    }
    const cJSON *env = cJSON_GetObjectItemCaseSensitive (config, "env");
    if (env && !cJSON_IsObject (env)) {
        snprintf (err, err_size, "config: \"env\" must be an object of variables");
        goto done;
    }
    rc = s_env_build (settings, env, err, err_size);
    goto done;
nomem:
    snprintf (err, err_size, "out of memory");
    rc = -ENOMEM;
done:
    cJSON_Delete (config);
    if (rc)
        s_settings_clear (settings);
    return rc;
}

static void s_fini (void *state_);

static int
s_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state_)
{
    exec_t *state = calloc (1, sizeof *state);
    if (!state) {
        host->set_reason (self, "exec: out of memory");
        return -ENOMEM;
    }
    state->self = self;
    state->host = host;
    char err [512];
    int rc = s_settings_read (host->config_json (self), &state->settings, err, sizeof err);
    if (rc) {
        host->set_reason (self, "exec: %s", err);
        s_fini (state);
        return rc;
    }
    host->log (self, BUSD_LOG_INFO, "running \"%s\" per event (timeout %" PRId64 " ms)",
               state->settings.what, state->settings.timeout_ms);
    *state_ = state;
    return 0;
}

static int
s_set_nonblock (int fd)
{
    int flags = fcntl (fd, F_GETFL);
    return flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0 ? -errno : 0;
}

static void
s_close (int *fd)
{
    if (*fd >= 0) {
        close (*fd);            //  a pipe's close cannot lose data we care about
        *fd = -1;
    }
}

//  Read what is there into the tail; returns false at EOF or on error.
static bool
s_drain (int fd, pc_tail_t *tail)
{
    char buf [4096];
    while (true) {
        ssize_t n = read (fd, buf, sizeof buf);
        if (n > 0) {
            pc_tail_write (tail, buf, (size_t) n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

//  True once the child has exited; it stays a zombie (WNOWAIT) so its pid
//  and process group id stay ours until s_reap.
static bool
s_exited (pid_t pid)
{
    siginfo_t info;
    memset (&info, 0, sizeof info);
    if (waitid (P_PID, (id_t) pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
        return errno == ECHILD;
    return info.si_pid == pid;
}

static void
s_reap (pid_t pid, run_t *run)
{
    while (waitpid (pid, &run->status, 0) < 0) {
        if (errno != EINTR) {
            run->status_lost = true;
            return;
        }
    }
}

static int
s_pidfd_open (pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int) syscall (SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        fcntl (fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void) pid;
    return -1;
#endif
}

static int
s_spawn (const settings_t *settings, char **env, int pipes [3][2], pid_t *pid)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    int rc = posix_spawn_file_actions_init (&actions);
    if (rc)
        return rc;
    rc = posix_spawnattr_init (&attr);
    if (rc) {
        posix_spawn_file_actions_destroy (&actions);
        return rc;
    }
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    sigdelset (&all, SIGKILL);
    sigdelset (&all, SIGSTOP);
    //  dup2 clears close-on-exec on 0-2; everything else of ours is
    //  close-on-exec or closed by closefrom where glibc has it.
    if (!rc) rc = posix_spawn_file_actions_adddup2 (&actions, pipes [0][0], 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2 (&actions, pipes [1][1], 1);
    if (!rc) rc = posix_spawn_file_actions_adddup2 (&actions, pipes [2][1], 2);
#if defined (__GLIBC__) && defined (__GLIBC_PREREQ)
#if __GLIBC_PREREQ (2, 34)
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np (&actions, 3);
#endif
#endif
    if (!rc) rc = posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK
                                                  | POSIX_SPAWN_SETSIGDEF);
    if (!rc) rc = posix_spawnattr_setpgroup (&attr, 0);
    if (!rc) rc = posix_spawnattr_setsigmask (&attr, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault (&attr, &all);
    if (!rc) rc = posix_spawnp (pid, settings->argv [0], &actions, &attr, settings->argv, env);
    posix_spawnattr_destroy (&attr);
    posix_spawn_file_actions_destroy (&actions);
    return rc;
}

//  Run the command once: feed the payload, collect output, enforce the
//  timeout.  Returns 0, or an errno when the pipes could not be made.
static int
s_run (exec_t *state, char **env, const void *payload, size_t size, run_t *run)
{
    const settings_t *settings = &state->settings;
    int pipes [3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    for (int i = 0; i < 3; i++)
        if (pipe2 (pipes [i], O_CLOEXEC)) {
            int rc = errno;
            for (int j = 0; j < i; j++) {
                s_close (&pipes [j][0]);
                s_close (&pipes [j][1]);
            }
            return rc;
        }
    pid_t pid = 0;
    run->spawn_error = s_spawn (settings, env, pipes, &pid);
    s_close (&pipes [0][0]);
    s_close (&pipes [1][1]);
    s_close (&pipes [2][1]);
    int in = pipes [0][1], out = pipes [1][0], errfd = pipes [2][0];
    if (run->spawn_error) {
        s_close (&in);
        s_close (&out);
        s_close (&errfd);
        return 0;
    }
    state->host->metric_add (state->self, "children", 1);
    if (s_set_nonblock (in) || s_set_nonblock (out) || s_set_nonblock (errfd))
        s_close (&in);          //  cannot feed it safely; it sees EOF
    int pidfd = s_pidfd_open (pid);

    //  A child that closes stdin early must not kill us with SIGPIPE: block
    //  it for this thread and swallow the one our write raises.
    sigset_t pipe_set, old_mask, pending;
    sigemptyset (&pipe_set);
    sigaddset (&pipe_set, SIGPIPE);
    pthread_sigmask (SIG_BLOCK, &pipe_set, &old_mask);
    sigpending (&pending);
    bool pipe_was_pending = sigismember (&pending, SIGPIPE);
    bool got_epipe = false;

    const char *data = payload;
    size_t written = 0;
    if (size == 0)
        s_close (&in);
    int64_t deadline = pc_mono_ms () + settings->timeout_ms;
    int64_t kill_at = 0;        //  when SIGKILL follows SIGTERM
    bool exited = false;
    while (!exited) {
        struct pollfd fds [4];
        int nfds = 0, in_at = -1, out_at = -1, err_at = -1;
        if (in >= 0) {
            in_at = nfds;
            fds [nfds++] = (struct pollfd) { .fd = in, .events = POLLOUT };
        }
        if (out >= 0) {
            out_at = nfds;
            fds [nfds++] = (struct pollfd) { .fd = out, .events = POLLIN };
        }
        if (errfd >= 0) {
            err_at = nfds;
            fds [nfds++] = (struct pollfd) { .fd = errfd, .events = POLLIN };
        }
        if (pidfd >= 0)
            fds [nfds++] = (struct pollfd) { .fd = pidfd, .events = POLLIN };
        int64_t now = pc_mono_ms ();
        int64_t until = kill_at ? kill_at : deadline;
        int64_t wait_ms = until > now ? until - now : 0;
        //  Without a pidfd nothing wakes us when the child exits with its
        //  pipes still held open by a grandchild: look every 20 ms.
        if (pidfd < 0 && wait_ms > 20)
            wait_ms = 20;
        int n = poll (fds, (nfds_t) nfds, (int) wait_ms);
        if (n < 0 && errno != EINTR) {
            //  Only ENOMEM is possible here: back off, the clock still runs.
            struct timespec pause = { 0, 10 * 1000 * 1000 };
            nanosleep (&pause, NULL);
        }
        if (n > 0) {
            if (in_at >= 0 && fds [in_at].revents) {
                ssize_t w = write (in, data + written, size - written);
                if (w > 0)
                    written += (size_t) w;
                else
                if (w < 0 && errno == EPIPE)
                    got_epipe = true;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == size)
                    s_close (&in);  //  EOF tells the child the payload is complete
            }
            if (out_at >= 0 && fds [out_at].revents && !s_drain (out, &run->out))
                s_close (&out);
            if (err_at >= 0 && fds [err_at].revents && !s_drain (errfd, &run->err))
                s_close (&errfd);
        }
        exited = s_exited (pid);
        now = pc_mono_ms ();
        if (!exited && !kill_at && now >= deadline) {
            run->timed_out = true;
            kill (-pid, SIGTERM);
            kill_at = now + settings->kill_grace_ms;
            s_close (&in);
        }
        else
        if (!exited && kill_at && now >= kill_at) {
            kill (-pid, SIGKILL);
            kill_at = now + 1000;   //  until it is gone; SIGKILL again if need be
        }
    }
    if (run->timed_out)
        kill (-pid, SIGKILL);   //  whatever of the group is left; the zombie holds its id
    //  What the child wrote just before exiting is still in the pipes; what
    //  a background grandchild writes later is not waited for.
    if (out >= 0)
        s_drain (out, &run->out);
    if (errfd >= 0)
        s_drain (errfd, &run->err);
    s_reap (pid, run);
    s_close (&in);
    s_close (&out);
    s_close (&errfd);
    s_close (&pidfd);

    if (got_epipe && !pipe_was_pending) {
        struct timespec zero = { 0, 0 };
        while (sigtimedwait (&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask (SIG_SETMASK, &old_mask, NULL);
    return 0;
}

//  A formatted string on the heap, or NULL.
static char *
s_strf (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
static char *
s_strf (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    int n = vasprintf (&text, format, args);
    va_end (args);
    return n < 0 ? NULL : text;
}

static busd_plugin_result_t
s_on_event (void *state_, const busd_plugin_event_t *event)
{
    exec_t *state = state_;
    const busd_plugin_host_t *host = state->host;
    busd_plugin_instance_t *self = state->self;
    const settings_t *settings = &state->settings;

    //  The per-event variables follow the base environment.
    enum { EVENT_VARS = 8 };
    char *vars [EVENT_VARS] = {
        s_strf ("BUSD_TOPIC=%s", event->topic),
        s_strf ("BUSD_MSG_ID=%s", event->msg_id ? event->msg_id : ""),
        s_strf ("BUSD_ATTEMPT=%u", (unsigned) event->attempt),
        s_strf ("BUSD_DELIVERY_ID=%" PRIu64, event->delivery_id),
        s_strf ("BUSD_HEADERS=%s",
                event->headers_json && *event->headers_json ? event->headers_json : "{}"),
        s_strf ("BUSD_TS_US=%" PRId64, event->ts_us),
        s_strf ("BUSD_STREAM_SEQ=%" PRIu64, event->stream_seq),
        s_strf ("BUSD_INSTANCE=%s", host->instance_name (self))
    };
    bool complete = true;
    for (int i = 0; i < EVENT_VARS; i++)
        complete = complete && vars [i];
    char **env = complete ? calloc (settings->env_count + EVENT_VARS + 1, sizeof *env) : NULL;
    if (!env) {
        for (int i = 0; i < EVENT_VARS; i++)
            free (vars [i]);
        host->set_reason (self, "exec: out of memory building the environment");
        return BUSD_PLUGIN_RETRY;
    }
    memcpy (env, settings->env, settings->env_count * sizeof *env);
    memcpy (env + settings->env_count, vars, sizeof vars);

    run_t run;
    memset (&run, 0, sizeof run);
    pc_tail_reset (&run.err);
    pc_tail_reset (&run.out);
    int rc = s_run (state, env, event->payload, event->size, &run);
    free (env);
    for (int i = 0; i < EVENT_VARS; i++)
        free (vars [i]);

    if (rc) {
        host->set_reason (self, "exec: cannot create pipes for %s: %s", settings->argv [0],
                          strerror (rc));
        return BUSD_PLUGIN_RETRY;
    }
    if (run.spawn_error) {
        host->set_reason (self, "exec: cannot run %s: %s", settings->argv [0],
                          strerror (run.spawn_error));
        //  The program vanished or lost its x bit: no event will do better.
        if (run.spawn_error == ENOENT || run.spawn_error == EACCES
        ||  run.spawn_error == ENOEXEC || run.spawn_error == ENOTDIR)
            return BUSD_PLUGIN_FATAL;
        return BUSD_PLUGIN_RETRY;
    }
    char out_text [PC_TAIL_SIZE + 8], err_text [PC_TAIL_SIZE + 8];
    pc_tail_text (&run.out, out_text, sizeof out_text);
    pc_tail_text (&run.err, err_text, sizeof err_text);
    if (*out_text)
        host->log (self, BUSD_LOG_DEBUG, "%s stdout: %s", settings->argv [0], out_text);
    const char *sep = *err_text ? ": " : "";

    if (run.timed_out) {
        host->metric_add (self, "timeouts", 1);
        host->set_reason (self, "timed out after %" PRId64 " ms%s%s", settings->timeout_ms,
                          sep, err_text);
        return BUSD_PLUGIN_RETRY;
    }
    if (run.status_lost) {
        //  The host reaped our child (SIGCHLD ignored or a waitpid (-1)).
        host->set_reason (self, "exec: exit status of %s lost: the host reaps children%s%s",
                          settings->argv [0], sep, err_text);
        return BUSD_PLUGIN_RETRY;
    }
    if (WIFEXITED (run.status)) {
        int code = WEXITSTATUS (run.status);
        if (code == 0) {
            if (*err_text)
                host->log (self, BUSD_LOG_DEBUG, "%s stderr: %s", settings->argv [0], err_text);
            return BUSD_PLUGIN_OK;
        }
        host->set_reason (self, "exit %d%s%s", code, sep, err_text);
        return code == EXIT_TEMPFAIL ? BUSD_PLUGIN_RETRY : BUSD_PLUGIN_FAIL;
    }
    int sig = WIFSIGNALED (run.status) ? WTERMSIG (run.status) : 0;
    host->set_reason (self, "killed by signal %d (%s)%s%s", sig, strsignal (sig), sep, err_text);
    return BUSD_PLUGIN_FAIL;
}

static int
s_reload (void *state_)
{
    exec_t *state = state_;
    char err [512];
    settings_t settings;
    int rc = s_settings_read (state->host->config_json (state->self), &settings, err, sizeof err);
    if (rc) {
        state->host->log (state->self, BUSD_LOG_ERROR, "reload: %s; keeping the previous settings",
                          err);
        return rc;
    }
    s_settings_clear (&state->settings);
    state->settings = settings;
    return 0;
}

static void
s_fini (void *state_)
{
    exec_t *state = state_;
    if (!state)
        return;
    s_settings_clear (&state->settings);
    free (state);
}

//  --check-config: every unknown key, then the same reading init does
//  (its first problem), without starting anything.
static int
s_check_config (busd_plugin_instance_t *self, const busd_plugin_host_t *host)
{
    static const char *known [] = {
        "command", "timeout_ms", "kill_grace_ms", "env", "max_concurrency", NULL
    };
    char *cleaned = NULL;
    int unknown = pc_check_unknown_keys (self, host, known, &cleaned);
    if (unknown < 0)
        return unknown;
    settings_t settings;
    char err [512];
    int rc = s_settings_read (cleaned, &settings, err, sizeof err);
    free (cleaned);
    if (rc) {
        host->set_reason (self, "%s", err);
        return rc;
    }
    s_settings_clear (&settings);
    return unknown ? -EINVAL : 0;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "exec",
    .version = PACKAGE_VERSION,
    .description = "run a command per event: payload on stdin, exit status decides",
    .init = s_init,
    .on_event = s_on_event,
    .reload = s_reload,
    .fini = s_fini,
    .check_config = s_check_config
};

BUSD_PLUGIN_DECLARE (s_plugin)
