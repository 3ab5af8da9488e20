/*  hosted.c — out-of-process plugin hosts as they report themselves (see
    hosted.h).  Nothing here is on the hot path: a report comes when a host
    process starts or restarts, and the list is built per CTL request.      */
#include "hosted.h"
#include "broker.h"
#include "log.h"
#include "utf8.h"
#include <inttypes.h>

#define HOSTED_NAME_MAX  64
#define HOSTED_EXIT_MAX  160
#define HOSTED_LOG_MS    1000   /*  at most one report logged per session per second */

struct hostrep {
    char name [HOSTED_NAME_MAX + 1];
    char last_exit [HOSTED_EXIT_MAX];
    int64_t pid;                /*  the plugin child (0: none running)      */
    int64_t host_pid;           /*  the supervising busd-plugin-host        */
    int64_t restarts;           /*  plugin child restarts                   */
    int64_t keeper_restarts;    /*  keeper restarts                         */
    uint64_t serial;            /*  order of arrival: the newest wins       */
    int64_t reported_ms;
    int64_t logged_ms;          /*  when its last report was logged         */
    bool gone_logged;
};

static bool
s_count (const cJSON *req, const char *key, int64_t *value, char *err, size_t size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (req, key);
    if (!item) {
        *value = 0;
        return true;
    }
    if (!cJSON_IsNumber (item) || !(item->valuedouble >= 0 && item->valuedouble <= 4e9)
    ||  item->valuedouble != (double) (int64_t) item->valuedouble) {
        snprintf (err, size, "plugin-host: \"%s\" must be a whole number 0..4000000000", key);
        return false;
    }
    *value = (int64_t) item->valuedouble;
    return true;
}

int
hosted_report (broker_t *self, session_t *session, const cJSON *req, char *err, size_t err_size)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (req, "name");
    const cJSON *last = cJSON_GetObjectItemCaseSensitive (req, "last_exit");
    if (!cJSON_IsString (name) || !name->valuestring [0]
    ||  strlen (name->valuestring) > HOSTED_NAME_MAX) {
        snprintf (err, err_size, "plugin-host: \"name\" must be a string of 1..%d bytes",
                  HOSTED_NAME_MAX);
        return BUSP_E_MALFORMED;
    }
    if (last && !cJSON_IsString (last)) {
        snprintf (err, err_size, "plugin-host: \"last_exit\" must be a string");
        return BUSP_E_MALFORMED;
    }
    struct hostrep rep = { 0 };
    if (!s_count (req, "pid", &rep.pid, err, err_size)
    ||  !s_count (req, "host_pid", &rep.host_pid, err, err_size)
    ||  !s_count (req, "restarts", &rep.restarts, err, err_size)
    ||  !s_count (req, "keeper_restarts", &rep.keeper_restarts, err, err_size))
        return BUSP_E_MALFORMED;
    //  Client bytes go back out in CTL replies: valid UTF-8 only.
    busp_utf8_sanitize (name->valuestring, strlen (name->valuestring), rep.name,
                        sizeof rep.name, NULL);
    if (last)
        busp_utf8_sanitize (last->valuestring, strlen (last->valuestring), rep.last_exit,
                            sizeof rep.last_exit, NULL);
    static uint64_t serial;
    rep.serial = ++serial;
    rep.reported_ms = self->now_ms;
    struct hostrep *old = session->hostrep;
    if (!old && !(session->hostrep = malloc (sizeof rep))) {
        snprintf (err, err_size, "out of memory");
        return BUSP_E_INTERNAL;
    }
    //  A report is a client's message: a host reports when it restarts
    //  something (with backoff), and a session that reports faster than
    //  HOSTED_LOG_MS is stored but not logged, so it cannot flood the log.
    rep.logged_ms = old ? old->logged_ms : 0;
    bool changed = !old || old->restarts != rep.restarts
                || old->keeper_restarts != rep.keeper_restarts;
    if (changed && (!old || self->now_ms - old->logged_ms >= HOSTED_LOG_MS)) {
        rep.logged_ms = self->now_ms;
        log_info ("plugin host '%s' (process %" PRId64 ", session %s): %" PRId64
                  " plugin restart%s, %" PRId64 " keeper restart%s%s%s", rep.name, rep.host_pid,
                  session->id_hex, rep.restarts, rep.restarts == 1 ? "" : "s",
                  rep.keeper_restarts, rep.keeper_restarts == 1 ? "" : "s",
                  rep.last_exit [0] ? "; last: " : "", rep.last_exit);
    }
    *session->hostrep = rep;
    return BUSP_OK;
}

void
hosted_list (broker_t *self, cJSON *list)
{
    //  Several sessions may report one name (a dead keeper's session lives
    //  until it expires): the newest report is the truth.  Few hosts, so
    //  a quadratic pick beats a table.
    const struct hostrep *seen [256];
    size_t count = 0;
    session_t *session = zhashx_first (self->sessions);
    while (session) {
        const struct hostrep *rep = session->hostrep;
        if (rep) {
            size_t i = 0;
            while (i < count && strcmp (seen [i]->name, rep->name) != 0)
                i++;
            if (i < count) {
                if (rep->serial > seen [i]->serial)
                    seen [i] = rep;
            }
            else
            if (count < sizeof seen / sizeof seen [0])
                seen [count++] = rep;
        }
        session = zhashx_next (self->sessions);
    }
    for (size_t i = 0; i < count; i++) {
        const struct hostrep *rep = seen [i];
        cJSON *item = cJSON_CreateObject ();
        if (!item)
            return;
        cJSON_AddStringToObject (item, "name", rep->name);
        cJSON_AddStringToObject (item, "state", rep->pid ? "hosted" : "restarting");
        cJSON_AddBoolToObject (item, "hosted", true);
        cJSON_AddNumberToObject (item, "pid", (double) rep->pid);
        cJSON_AddNumberToObject (item, "host_pid", (double) rep->host_pid);
        cJSON_AddNumberToObject (item, "restarts", (double) rep->restarts);
        cJSON_AddNumberToObject (item, "keeper_restarts", (double) rep->keeper_restarts);
        cJSON_AddStringToObject (item, "error", rep->last_exit);
        cJSON_AddNumberToObject (item, "reported_s_ago",
                                 (double) ((self->now_ms - rep->reported_ms) / 1000));
        cJSON_AddItemToArray (list, item);
    }
}

void
hosted_disconnected (session_t *session)
{
    struct hostrep *rep = session->hostrep;
    if (!rep || rep->gone_logged)
        return;
    rep->gone_logged = true;
    log_warning ("plugin host '%s' (process %" PRId64 "): its keeper '%s' (%s) disconnected; "
                 "busd-plugin-host restarts it, meanwhile the plugin's own members hold "
                 "its group", rep->name, rep->host_pid, session->name, session->id_hex);
}

void
hosted_forget (session_t *session)
{
    struct hostrep *rep = session->hostrep;
    if (rep && !rep->gone_logged)
        log_notice ("plugin host '%s' (process %" PRId64 "): its keeper '%s' (%s) ended",
                    rep->name, rep->host_pid, session->name, session->id_hex);
    free (session->hostrep);
    session->hostrep = NULL;
}
