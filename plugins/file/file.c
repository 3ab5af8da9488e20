/*  file.c — the "file" plugin: append every event to a file as one JSON line.

    One line per event, written with a single write(2) on an O_APPEND
    descriptor, so several instances (or processes) may share a file without
    interleaving lines.  The file is reopened by reload (SIGHUP), which is
    what logrotate's "rename, then signal" needs; "copytruncate" works
    without it because of O_APPEND.  Durability is a policy ("fsync"):
    always (fdatasync per event), interval (at most fsync_interval_ms of
    events at risk) or never (the kernel decides).  A failed write or sync
    answers RETRY: the broker keeps the event and tries again later, so a
    full disk delays events instead of losing them.                         */
#include <busd/plugin.h>
#include "plugin_common.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { SYNC_ALWAYS, SYNC_INTERVAL, SYNC_NEVER } sync_mode_t;

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;
    char *path;
    int fd;
    sync_mode_t sync_mode;
    int64_t sync_interval_ms;
    bool dirty;                 //  written since the last fdatasync
    int64_t last_sync_ms;
    pc_buf_t line;              //  reused: no allocation per event
} file_t;

//  The settings that a reload may change, read and checked as a unit so a
//  bad reload leaves the running configuration alone.
typedef struct {
    char *path;
    sync_mode_t sync_mode;
    int64_t sync_interval_ms;
} settings_t;

static int
s_settings_read (busd_plugin_instance_t *self, const busd_plugin_host_t *host,
                 settings_t *settings, char *err, size_t err_size)
{
    const char *path = host->config_string (self, "path", NULL);
    if (!path || !*path) {
        snprintf (err, err_size, "config: \"path\" is required (the file to append events to)");
        return -EINVAL;
    }
    const char *mode = host->config_string (self, "fsync", "interval");
    if (strcmp (mode, "always") == 0)
        settings->sync_mode = SYNC_ALWAYS;
    else
    if (strcmp (mode, "interval") == 0)
        settings->sync_mode = SYNC_INTERVAL;
    else
    if (strcmp (mode, "never") == 0)
        settings->sync_mode = SYNC_NEVER;
    else {
        snprintf (err, err_size, "config: \"fsync\" is \"%s\"; use \"always\", \"interval\" or \"never\"",
                  mode);
        return -EINVAL;
    }
    settings->sync_interval_ms = host->config_int (self, "fsync_interval_ms", 1000);
    if (settings->sync_interval_ms < 1 || settings->sync_interval_ms > 86400000) {
        snprintf (err, err_size, "config: \"fsync_interval_ms\" is %" PRId64 "; use 1 to 86400000",
                  settings->sync_interval_ms);
        return -EINVAL;
    }
    settings->path = strdup (path);
    if (!settings->path) {
        snprintf (err, err_size, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

static int
s_open (const char *path, char *err, size_t err_size)
{
    int fd = open (path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0) {
        int rc = -errno;
        snprintf (err, err_size, "cannot open %s for appending: %s", path, strerror (errno));
        return rc;
    }
    struct stat st;
    if (fstat (fd, &st) == 0 && !S_ISREG (st.st_mode) && !S_ISFIFO (st.st_mode)
    &&  !S_ISCHR (st.st_mode)) {
        snprintf (err, err_size, "%s is not a regular file", path);
        close (fd);
        return -EINVAL;
    }
    return fd;
}

//  fdatasync when the policy asks for it now (force: on close).
static int
s_sync (file_t *state, bool force)
{
    if (!state->dirty || state->sync_mode == SYNC_NEVER)
        return 0;
    int64_t now = pc_mono_ms ();
    if (!force && state->sync_mode == SYNC_INTERVAL
    &&  now - state->last_sync_ms < state->sync_interval_ms)
        return 0;
    int rc = 0;
    //  EINVAL: the file is a pipe or device, which cannot be synced.
    if (fdatasync (state->fd) && errno != EINVAL)
        rc = -errno;
    state->last_sync_ms = now;
    if (rc == 0)
        state->dirty = false;
    return rc;
}

static void s_fini (void *state_);

static int
s_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state_)
{
    file_t *state = calloc (1, sizeof *state);
    if (!state) {
        host->set_reason (self, "file: out of memory");
        return -ENOMEM;
    }
    state->self = self;
    state->host = host;
    state->fd = -1;
    pc_buf_init (&state->line);

    char err [512];
    settings_t settings;
    int rc = s_settings_read (self, host, &settings, err, sizeof err);
    if (rc == 0) {
        rc = s_open (settings.path, err, sizeof err);
        if (rc < 0)
            free (settings.path);
    }
    if (rc < 0) {
        host->set_reason (self, "file: %s", err);
        s_fini (state);
        return rc;
    }
    state->fd = rc;
    state->path = settings.path;
    state->sync_mode = settings.sync_mode;
    state->sync_interval_ms = settings.sync_interval_ms;
    state->last_sync_ms = pc_mono_ms ();
    host->log (self, BUSD_LOG_INFO, "appending events to %s (fsync %s)", state->path,
               state->sync_mode == SYNC_ALWAYS ? "always"
             : state->sync_mode == SYNC_NEVER ? "never" : "interval");
    *state_ = state;
    return 0;
}

//  Build the JSON line for one event in state->line.
static int
s_format (file_t *state, const busd_plugin_event_t *event)
{
    pc_buf_t *line = &state->line;
    pc_buf_reset (line);
    int rc = pc_buf_append_str (line, "{\"topic\":");
    rc = rc ? rc : pc_json_append_string (line, event->topic, strlen (event->topic));
    rc = rc ? rc : pc_buf_append_str (line, ",\"msg_id\":");
    const char *msg_id = event->msg_id ? event->msg_id : "";
    rc = rc ? rc : pc_json_append_string (line, msg_id, strlen (msg_id));
    rc = rc ? rc : pc_buf_appendf (line, ",\"ts_us\":%" PRId64 ",\"attempt\":%u",
                                   event->ts_us, (unsigned) event->attempt);
    if (event->stream_seq)
        rc = rc ? rc : pc_buf_appendf (line, ",\"stream_seq\":%" PRIu64, event->stream_seq);
    rc = rc ? rc : pc_buf_append_str (line, ",\"headers\":");
    if (rc)
        return rc;

    //  Headers are re-printed rather than copied so the line stays one line
    //  whatever white space the publisher used.
    cJSON *headers = NULL;
    if (event->headers_json && *event->headers_json) {
        headers = cJSON_Parse (event->headers_json);
        if (!cJSON_IsObject (headers)) {
            state->host->log (state->self, BUSD_LOG_WARNING,
                              "event on %s has headers that are not a JSON object; writing {}",
                              event->topic);
            cJSON_Delete (headers);
            headers = NULL;
        }
    }
    if (headers) {
        char *text = cJSON_PrintUnformatted (headers);
        cJSON_Delete (headers);
        if (!text)
            return -ENOMEM;
        rc = pc_buf_append_str (line, text);
        cJSON_free (text);
    }
    else
        rc = pc_buf_append_str (line, "{}");

    if (pc_utf8_valid (event->payload, event->size)) {
        rc = rc ? rc : pc_buf_append_str (line, ",\"payload\":");
        rc = rc ? rc : pc_json_append_string (line, event->payload, event->size);
    }
    else {
        rc = rc ? rc : pc_buf_append_str (line, ",\"payload_base64\":\"");
        rc = rc ? rc : pc_base64_append (line, event->payload, event->size);
        rc = rc ? rc : pc_buf_append_str (line, "\"");
    }
    rc = rc ? rc : pc_buf_append_str (line, "}\n");
    return rc;
}

//  Write the whole line.  When only part of it made it, cut the file back
//  so no half line stays behind, unless someone appended after us.
static int
s_write_line (file_t *state)
{
    const char *data = state->line.data;
    size_t len = state->line.len;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write (state->fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = n < 0 ? -errno : -EIO;
            if (done > 0) {
                off_t end = lseek (state->fd, 0, SEEK_CUR);
                struct stat st;
                if (end >= (off_t) done && fstat (state->fd, &st) == 0 && st.st_size == end
                &&  S_ISREG (st.st_mode) && ftruncate (state->fd, end - (off_t) done) != 0)
                    state->host->log (state->self, BUSD_LOG_WARNING,
                                      "%s: could not remove a partly written line: %s",
                                      state->path, strerror (errno));
            }
            return rc;
        }
        done += (size_t) n;
    }
    return 0;
}

static busd_plugin_result_t
s_on_event (void *state_, const busd_plugin_event_t *event)
{
    file_t *state = state_;
    const busd_plugin_host_t *host = state->host;
    if (s_format (state, event)) {
        host->set_reason (state->self, "file: out of memory formatting a %zu-byte event",
                          event->size);
        return BUSD_PLUGIN_RETRY;
    }
    int rc = s_write_line (state);
    if (rc) {
        host->set_reason (state->self, "file: write to %s failed: %s", state->path,
                          strerror (-rc));
        return BUSD_PLUGIN_RETRY;
    }
    state->dirty = true;
    rc = s_sync (state, state->sync_mode == SYNC_ALWAYS);
    if (rc) {
        //  The line is in the file but may not survive a crash; a retry
        //  writes it again, which at-least-once delivery allows.
        host->set_reason (state->self, "file: fdatasync of %s failed: %s", state->path,
                          strerror (-rc));
        return BUSD_PLUGIN_RETRY;
    }
    host->metric_add (state->self, "bytes_written", (double) state->line.len);
    return BUSD_PLUGIN_OK;
}

static void
s_on_tick (void *state_)
{
    file_t *state = state_;
    int rc = s_sync (state, false);
    if (rc)
        state->host->log (state->self, BUSD_LOG_WARNING, "fdatasync of %s failed: %s",
                          state->path, strerror (-rc));
}

static int
s_reload (void *state_)
{
    file_t *state = state_;
    const busd_plugin_host_t *host = state->host;
    char err [512];
    settings_t settings;
    int rc = s_settings_read (state->self, host, &settings, err, sizeof err);
    if (rc == 0) {
        rc = s_open (settings.path, err, sizeof err);
        if (rc < 0)
            free (settings.path);
    }
    if (rc < 0) {
        host->log (state->self, BUSD_LOG_ERROR, "reload: %s; still appending to %s",
                   err, state->path);
        return rc;
    }
    //  Whatever went to the old file is synced before it is let go.
    int sync_rc = s_sync (state, true);
    if (sync_rc)
        host->log (state->self, BUSD_LOG_WARNING, "fdatasync of %s failed: %s",
                   state->path, strerror (-sync_rc));
    if (close (state->fd))
        host->log (state->self, BUSD_LOG_WARNING, "closing %s: %s", state->path,
                   strerror (errno));
    host->log (state->self, BUSD_LOG_INFO, "reopened %s", settings.path);
    free (state->path);
    state->fd = rc;
    state->path = settings.path;
    state->sync_mode = settings.sync_mode;
    state->sync_interval_ms = settings.sync_interval_ms;
    state->dirty = false;
    state->last_sync_ms = pc_mono_ms ();
    return 0;
}

static void
s_fini (void *state_)
{
    file_t *state = state_;
    if (!state)
        return;
    if (state->fd >= 0) {
        int rc = s_sync (state, true);
        if (rc)
            state->host->log (state->self, BUSD_LOG_WARNING, "fdatasync of %s failed: %s",
                              state->path, strerror (-rc));
        if (close (state->fd))
            state->host->log (state->self, BUSD_LOG_WARNING, "closing %s: %s", state->path,
                              strerror (errno));
    }
    free (state->path);
    pc_buf_free (&state->line);
    free (state);
}

//  --check-config: every problem with the settings, one line each, and
//  whether the file could be opened for appending (its directory exists
//  and is writable) without creating it.  A relative "path" is relative to
//  the configuration file's directory, where busd works.
static int
s_check_config (busd_plugin_instance_t *self, const busd_plugin_host_t *host)
{
    static const char *known [] = { "path", "fsync", "fsync_interval_ms", NULL };
    char err [512];
    char *cleaned = NULL;
    int unknown = pc_check_unknown_keys (self, host, known, &cleaned);
    free (cleaned);
    if (unknown < 0)
        return unknown;
    int rc = unknown ? -EINVAL : 0;
    settings_t settings;
    if (s_settings_read (self, host, &settings, err, sizeof err)) {
        host->set_reason (self, "%s", err);
        return -EINVAL;
    }
    struct stat st;
    if (stat (settings.path, &st) == 0) {
        if (S_ISDIR (st.st_mode)) {
            host->set_reason (self, "config: \"path\" %s is a directory", settings.path);
            rc = -EINVAL;
        }
        else
        if (access (settings.path, W_OK)) {
            host->set_reason (self, "config: \"path\" %s is not writable: %s", settings.path,
                              strerror (errno));
            rc = -EINVAL;
        }
    }
    else {
        char *dir = strdup (settings.path);
        char *slash = dir ? strrchr (dir, '/') : NULL;
        const char *parent = !slash ? "." : slash == dir ? "/" : (*slash = 0, dir);
        if (dir && access (parent, W_OK | X_OK)) {
            host->set_reason (self, "config: \"path\" %s cannot be created: directory %s: %s",
                              settings.path, parent, strerror (errno));
            rc = -EINVAL;
        }
        free (dir);
    }
    free (settings.path);
    return rc;
}

static const busd_plugin_t s_plugin = {
    BUSD_PLUGIN_HEADER,
    .name = "file",
    .version = PACKAGE_VERSION,
    .description = "append each event as one JSON line to a file",
    .init = s_init,
    .on_event = s_on_event,
    .on_tick = s_on_tick,
    .reload = s_reload,
    .fini = s_fini,
    .tick_ms = 100,
    .check_config = s_check_config
};

BUSD_PLUGIN_DECLARE (s_plugin)
