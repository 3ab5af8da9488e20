/*  webhook.c — the "webhook" plugin: HTTP POST every event with libcurl.

    The body is the payload byte for byte; the event's fields travel as
    X-Busd-* request headers.  The status decides: 2xx is OK; 408, 429, 5xx
    and transport errors (refused, reset, timed out) are RETRY, honouring
    Retry-After so a throttling server sets the pace; any other status is
    FAIL, because sending the same request again will get the same answer.

    Each instance keeps one easy handle for its whole life so the
    connection is reused between events (keep-alive), which matters far more
    than anything else for throughput.  curl_global_init is not thread-safe
    and instances start in parallel threads: it runs once, under
    pthread_once.  The module is linked -z nodelete, because libcurl and
    the TLS library it pulls in do not support being unloaded.             */
#include <busd/plugin.h>
#include "plugin_common.h"

#include <cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_KEEP 200           //  bytes of a response body kept for the reason

typedef struct {
    char *url;
    char *content_type;
    char **headers;             //  "Name: value", NULL-terminated
    int64_t timeout_ms;
    int64_t max_retry_after_ms;
    bool forward_headers;
} settings_t;

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;
    settings_t settings;
    CURL *curl;
    char errbuf [CURL_ERROR_SIZE];
    char body [BODY_KEEP];      //  the start of the current response body
    size_t body_len;
    char retry_after [64];      //  of the current response, "" when none
} webhook_t;

static pthread_once_t s_global_once = PTHREAD_ONCE_INIT;
static CURLcode s_global_rc;

static void
s_global_init (void)
{
    s_global_rc = curl_global_init (CURL_GLOBAL_DEFAULT);
}

static void
s_settings_clear (settings_t *settings)
{
    free (settings->url);
    free (settings->content_type);
    if (settings->headers)
        for (char **h = settings->headers; *h; h++)
            free (*h);
    free (settings->headers);
    memset (settings, 0, sizeof *settings);
}

//  An HTTP token (RFC 9110 §5.6.2), for header names.
static bool
s_is_token_char (unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && strchr ("!#$%&'*+-.^_`|~", c));
}

//  A header value must not carry CR or LF (that would inject headers) nor
//  other control characters; they become spaces.
static void
s_clean_value (char *value)
{
    for (unsigned char *p = (unsigned char *) value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
            *p = ' ';
}

static int
s_check_url (const char *url, char *err, size_t err_size)
{
    CURLU *handle = curl_url ();
    if (!handle) {
        snprintf (err, err_size, "out of memory");
        return -ENOMEM;
    }
    char *scheme = NULL;
    int rc = 0;
    CURLUcode urc = curl_url_set (handle, CURLUPART_URL, url, 0);
    if (urc != CURLUE_OK) {
        snprintf (err, err_size, "config: \"url\" \"%s\" does not parse (%s)", url,
                  curl_url_strerror (urc));
        rc = -EINVAL;
    }
    else
    if (curl_url_get (handle, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
    ||  (strcasecmp (scheme, "http") != 0 && strcasecmp (scheme, "https") != 0)) {
        snprintf (err, err_size, "config: \"url\" \"%s\" must start with http:// or https://", url);
        rc = -EINVAL;
    }
    curl_free (scheme);
    curl_url_cleanup (handle);
    return rc;
}

static int
s_settings_read (const char *config_json, settings_t *settings, char *err, size_t err_size)
{
    static const char *known [] = {
        "url", "headers", "timeout_ms", "content_type", "forward_headers",
        "max_retry_after_ms", NULL
    };
    memset (settings, 0, sizeof *settings);
    cJSON *config;
    int rc = pc_config_parse (config_json, known, &config, err, err_size);
    if (rc)
        return rc;
    rc = -EINVAL;
    const cJSON *item;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive (config, "url");
    if (!cJSON_IsString (url) || !*url->valuestring) {
        snprintf (err, err_size, "config: \"url\" is required (where to POST events, "
                  "e.g. \"http://127.0.0.1:8080/events\")");
        goto done;
    }
    if ((rc = s_check_url (url->valuestring, err, err_size)) != 0)
        goto done;
    rc = -EINVAL;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive (config, "content_type");
    if (type && (!cJSON_IsString (type) || !*type->valuestring)) {
        snprintf (err, err_size, "config: \"content_type\" must be a non-empty string");
        goto done;
    }
    const cJSON *forward = cJSON_GetObjectItemCaseSensitive (config, "forward_headers");
    if (forward && !cJSON_IsBool (forward)) {
        snprintf (err, err_size, "config: \"forward_headers\" must be true or false");
        goto done;
    }
    settings->forward_headers = !forward || cJSON_IsTrue (forward);
    if (pc_config_int (config, "timeout_ms", 10000, 1, 86400000, &settings->timeout_ms, err, err_size)
    ||  pc_config_int (config, "max_retry_after_ms", 3600000, 0, 86400000,
                       &settings->max_retry_after_ms, err, err_size))
        goto done;
    settings->url = strdup (url->valuestring);
    settings->content_type = strdup (type ? type->valuestring : "application/octet-stream");
    if (!settings->url || !settings->content_type)
        goto nomem;

    const cJSON *headers = cJSON_GetObjectItemCaseSensitive (config, "headers");
    if (headers && !cJSON_IsObject (headers)) {
        snprintf (err, err_size, "config: \"headers\" must be an object like "
                  "{\"Authorization\": \"Bearer ...\"}");
        goto done;
    }
    settings->headers = calloc ((size_t) cJSON_GetArraySize (headers) + 1, sizeof (char *));
    if (!settings->headers)
        goto nomem;
    int i = 0;
    cJSON_ArrayForEach (item, headers) {
        bool valid = *item->string != 0;
        for (const unsigned char *p = (const unsigned char *) item->string; *p; p++)
            valid = valid && s_is_token_char (*p);
        if (!valid || !cJSON_IsString (item)) {
            snprintf (err, err_size, "config: \"headers\": \"%s\" must be a valid header name "
                      "with a string value", item->string);
            goto done;
        }
        if (asprintf (&settings->headers [i], "%s: %s", item->string, item->valuestring) < 0) {
            settings->headers [i] = NULL;
            goto nomem;
        }
        s_clean_value (settings->headers [i++]);
    }
    rc = 0;
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

static size_t
s_on_body (char *data, size_t size, size_t nmemb, void *state_)
{
    webhook_t *state = state_;
    size_t len = size * nmemb;
    size_t keep = BODY_KEEP - state->body_len;
    if (keep > len)
        keep = len;
    memcpy (state->body + state->body_len, data, keep);
    state->body_len += keep;
    return len;                 //  the rest is read and dropped
}

static size_t
s_on_header (char *data, size_t size, size_t nmemb, void *state_)
{
    webhook_t *state = state_;
    size_t len = size * nmemb;
    //  A new status line starts a new response (after 100 Continue).
    if (len >= 5 && memcmp (data, "HTTP/", 5) == 0)
        state->retry_after [0] = 0;
    static const char name [] = "retry-after:";
    if (len > sizeof name - 1 && strncasecmp (data, name, sizeof name - 1) == 0) {
        size_t value_len = len - (sizeof name - 1);
        if (value_len >= sizeof state->retry_after)
            value_len = sizeof state->retry_after - 1;
        memcpy (state->retry_after, data + sizeof name - 1, value_len);
        state->retry_after [value_len] = 0;
    }
    return len;
}

//  Set everything that does not change per event on a fresh handle.
static int
s_setup_handle (webhook_t *state, char *err, size_t err_size)
{
    CURL *curl = curl_easy_init ();
    if (!curl) {
        snprintf (err, err_size, "curl_easy_init failed");
        return -ENOMEM;
    }
    const settings_t *settings = &state->settings;
    CURLcode rc = CURLE_OK;
    //  NOSIGNAL: libcurl must not use SIGALRM for timeouts in a threaded host.
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_URL, settings->url);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_POST, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_TIMEOUT_MS, (long) settings->timeout_ms);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_ERRORBUFFER, state->errbuf);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_WRITEFUNCTION, s_on_body);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_WRITEDATA, state);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_HEADERFUNCTION, s_on_header);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_HEADERDATA, state);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_USERAGENT, "busd-webhook/" PACKAGE_VERSION);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_TCP_KEEPALIVE, 1L);
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    if (!rc) rc = curl_easy_setopt (curl, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    if (rc) {
        snprintf (err, err_size, "libcurl setup failed: %s", curl_easy_strerror (rc));
        curl_easy_cleanup (curl);
        return -EINVAL;
    }
    if (state->curl)
        curl_easy_cleanup (state->curl);
    state->curl = curl;
    return 0;
}

static void s_fini (void *state_);

static int
s_init (busd_plugin_instance_t *self, const busd_plugin_host_t *host, void **state_)
{
    pthread_once (&s_global_once, s_global_init);
    if (s_global_rc != CURLE_OK) {
        host->set_reason (self, "webhook: curl_global_init failed: %s",
                          curl_easy_strerror (s_global_rc));
        return -EINVAL;
    }
    webhook_t *state = calloc (1, sizeof *state);
    if (!state) {
        host->set_reason (self, "webhook: out of memory");
        return -ENOMEM;
    }
    state->self = self;
    state->host = host;
    char err [512];
    int rc = s_settings_read (host->config_json (self), &state->settings, err, sizeof err);
    if (rc == 0)
        rc = s_setup_handle (state, err, sizeof err);
    if (rc) {
        host->set_reason (self, "webhook: %s", err);
        s_fini (state);
        return rc;
    }
    host->log (self, BUSD_LOG_INFO, "posting events to %s (timeout %" PRId64 " ms)",
               state->settings.url, state->settings.timeout_ms);
    *state_ = state;
    return 0;
}

//  Append "Name: value" to the list; false when out of memory.
static bool
s_add_header (struct curl_slist **list, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));
static bool
s_add_header (struct curl_slist **list, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *line = NULL;
    int n = vasprintf (&line, format, args);
    va_end (args);
    if (n < 0)
        return false;
    s_clean_value (line);
    struct curl_slist *appended = curl_slist_append (*list, line);
    free (line);
    if (!appended)
        return false;
    *list = appended;
    return true;
}

//  The event's own headers as X-Busd-Header-<name>; names are made tokens.
static bool
s_add_event_headers (struct curl_slist **list, const char *headers_json)
{
    cJSON *headers = cJSON_Parse (headers_json);
    bool ok = true;
    const cJSON *object = cJSON_IsObject (headers) ? headers : NULL;
    const cJSON *item;
    cJSON_ArrayForEach (item, object) {
        if (!cJSON_IsString (item) || !*item->string)
            continue;
        char name [128];
        size_t len = 0;
        for (const unsigned char *p = (const unsigned char *) item->string;
             *p && len + 1 < sizeof name; p++)
            name [len++] = s_is_token_char (*p) ? (char) *p : '-';
        name [len] = 0;
        ok = ok && s_add_header (list, "X-Busd-Header-%s: %s", name, item->valuestring);
    }
    cJSON_Delete (headers);
    return ok;
}

static busd_plugin_result_t
s_on_event (void *state_, const busd_plugin_event_t *event)
{
    webhook_t *state = state_;
    const busd_plugin_host_t *host = state->host;
    busd_plugin_instance_t *self = state->self;
    const settings_t *settings = &state->settings;

    struct curl_slist *list = NULL;
    //  "Expect:" turns off 100-continue, which costs a round trip (or a
    //  whole second against servers that ignore it) for bodies over 1 kB.
    bool ok = s_add_header (&list, "Expect:")
           && s_add_header (&list, "Content-Type: %s", settings->content_type)
           && s_add_header (&list, "X-Busd-Topic: %s", event->topic)
           && s_add_header (&list, "X-Busd-Attempt: %u", (unsigned) event->attempt);
    if (ok && event->msg_id && *event->msg_id)
        ok = s_add_header (&list, "X-Busd-Msg-Id: %s", event->msg_id);
    if (ok && settings->forward_headers && event->headers_json && *event->headers_json)
        ok = s_add_event_headers (&list, event->headers_json);
    for (char **h = settings->headers; ok && *h; h++) {
        struct curl_slist *appended = curl_slist_append (list, *h);
        ok = appended != NULL;
        if (ok)
            list = appended;
    }
    CURL *curl = state->curl;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (ok) {
        state->errbuf [0] = 0;
        state->body_len = 0;
        state->retry_after [0] = 0;
        rc = curl_easy_setopt (curl, CURLOPT_HTTPHEADER, list);
        //  Never NULL: with a NULL body libcurl would call a read callback.
        if (!rc) rc = curl_easy_setopt (curl, CURLOPT_POSTFIELDS, event->size ? event->payload : "");
        if (!rc) rc = curl_easy_setopt (curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) event->size);
        if (!rc) rc = curl_easy_perform (curl);
        //  The handle must not keep pointers into this event or the list.
        curl_easy_setopt (curl, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt (curl, CURLOPT_POSTFIELDS, NULL);
    }
    curl_slist_free_all (list);
    host->metric_add (self, "requests", 1);

    if (rc != CURLE_OK) {
        const char *why = state->errbuf [0] ? state->errbuf : curl_easy_strerror (rc);
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            host->set_reason (self, "POST %s timed out after %" PRId64 " ms", settings->url,
                              settings->timeout_ms);
            return BUSD_PLUGIN_RETRY;
        }
        host->set_reason (self, "POST %s: %s", settings->url, why);
        //  A URL libcurl cannot use will not work for any event.
        if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
            return BUSD_PLUGIN_FATAL;
        return BUSD_PLUGIN_RETRY;
    }
    long status = 0;
    curl_easy_getinfo (curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status <= 299)
        return BUSD_PLUGIN_OK;

    char body [BODY_KEEP + 8];
    pc_text_sanitize (body, sizeof body, state->body, state->body_len);
    const char *sep = *body ? ": " : "";
    host->metric_add (self, "http_errors", 1);
    if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        uint32_t delay_ms = 0;
        if (state->retry_after [0]
        &&  pc_retry_after_parse (state->retry_after, (int64_t) time (NULL),
                                  (uint32_t) settings->max_retry_after_ms, &delay_ms) == 0
        &&  delay_ms > 0)
            host->set_retry_delay (self, delay_ms);
        host->set_reason (self, "HTTP %ld%s%s", status, sep, body);
        return BUSD_PLUGIN_RETRY;
    }
    if (status >= 300 && status <= 399)
        host->set_reason (self, "HTTP %ld (redirects are not followed: set \"url\" to the "
                          "final address)%s%s", status, sep, body);
    else
        host->set_reason (self, "HTTP %ld%s%s", status, sep, body);
    return BUSD_PLUGIN_FAIL;
}

static int
s_reload (void *state_)
{
    webhook_t *state = state_;
    char err [512];
    settings_t settings;
    int rc = s_settings_read (state->host->config_json (state->self), &settings, err, sizeof err);
    if (rc) {
        state->host->log (state->self, BUSD_LOG_ERROR, "reload: %s; keeping the previous settings",
                          err);
        return rc;
    }
    settings_t previous = state->settings;
    state->settings = settings;
    rc = s_setup_handle (state, err, sizeof err);
    if (rc) {
        //  The old handle still points at the old settings: keep both.
        state->settings = previous;
        s_settings_clear (&settings);
        state->host->log (state->self, BUSD_LOG_ERROR, "reload: %s; keeping the previous settings",
                          err);
        return rc;
    }
    s_settings_clear (&previous);
    return 0;
}

static void
s_fini (void *state_)
{
    webhook_t *state = state_;
    if (!state)
        return;
    if (state->curl)
        curl_easy_cleanup (state->curl);
    s_settings_clear (&state->settings);
    free (state);
}

//  --check-config: every unknown key, then the same reading init does
//  (its first problem), without starting anything.
static int
s_check_config (busd_plugin_instance_t *self, const busd_plugin_host_t *host)
{
    static const char *known [] = {
        "url", "headers", "timeout_ms", "content_type", "forward_headers",
        "max_retry_after_ms", NULL
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
    .name = "webhook",
    .version = PACKAGE_VERSION,
    .description = "HTTP POST each event (libcurl); status code decides",
    .init = s_init,
    .on_event = s_on_event,
    .reload = s_reload,
    .fini = s_fini,
    .check_config = s_check_config
};

BUSD_PLUGIN_DECLARE (s_plugin)
