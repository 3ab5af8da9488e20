/*  plugin_common.h — small pure helpers the shipped plugins share.

    Kept apart from the plugins so they can be unit tested without a host
    (tests/unit/check_plugin_common.c), and kept free of any busd or czmq
    type so linking them into a plugin adds nothing to the ABI; the config
    helpers name cJSON only as an opaque struct, for the plugins that parse
    their configuration with it.  The library is a static convenience
    archive built with -fvisibility=hidden: each plugin carries its own
    private copy and exports none of it.                                    */
#ifndef BUSD_PLUGIN_COMMON_H_INCLUDED
#define BUSD_PLUGIN_COMMON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <busd/plugin.h>

/*  A growable byte buffer, always NUL-terminated after a successful append
    so the text can be handed to printf-like functions.  After a failed
    append the buffer keeps what it had.                                    */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} pc_buf_t;

void pc_buf_init (pc_buf_t *self);
void pc_buf_free (pc_buf_t *self);
void pc_buf_reset (pc_buf_t *self);
/*  0, or -ENOMEM.                                                           */
int pc_buf_append (pc_buf_t *self, const void *data, size_t len);
int pc_buf_append_str (pc_buf_t *self, const char *text);
int pc_buf_appendf (pc_buf_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

/*  True when data[0..len) is well-formed UTF-8 (RFC 3629: no overlong
    forms, no surrogates, nothing above U+10FFFF).  NUL bytes are valid.     */
bool pc_utf8_valid (const void *data, size_t len);

/*  Append text as a quoted JSON string.  Control characters, '"' and '\\'
    are escaped; bytes that are not well-formed UTF-8 become U+FFFD, so the
    output is always valid JSON.  0 or -ENOMEM.                              */
int pc_json_append_string (pc_buf_t *self, const void *text, size_t len);

/*  Append data encoded as standard base64 with padding (RFC 4648 §4).       */
int pc_base64_append (pc_buf_t *self, const void *data, size_t len);

/*  Copy up to len bytes of src into dst (dst_size > 0) as one line of
    printable, valid UTF-8: control characters and runs of white space
    become one space, malformed bytes become '?', both ends are trimmed.
    For error reasons built from what a child or a server sent.
    Returns the length written (dst is always NUL-terminated).              */
size_t pc_text_sanitize (char *dst, size_t dst_size, const void *src, size_t len);

/*  The last PC_TAIL_SIZE bytes written to a stream (a child's stderr):
    enough to say why it failed, bounded however much it writes.            */
#define PC_TAIL_SIZE 200
typedef struct {
    char data [PC_TAIL_SIZE];
    size_t start;               /*  index of the oldest byte                */
    size_t used;                /*  bytes held, <= PC_TAIL_SIZE             */
    uint64_t total;             /*  bytes ever written                      */
} pc_tail_t;

void pc_tail_reset (pc_tail_t *self);
void pc_tail_write (pc_tail_t *self, const void *data, size_t len);
/*  The held bytes, oldest first, sanitized as by pc_text_sanitize; starts
    with "..." when earlier output was dropped.  Returns the length.         */
size_t pc_tail_text (const pc_tail_t *self, char *dst, size_t dst_size);

/*  Parse an HTTP Retry-After value (RFC 9110 §10.2.3): delta-seconds or an
    IMF-fixdate, relative to now_s (seconds since the epoch).  A date in the
    past gives 0.  The delay is capped at max_ms.  0, or -EINVAL when the
    value is neither form.                                                   */
int pc_retry_after_parse (const char *value, int64_t now_s, uint32_t max_ms,
                          uint32_t *delay_ms);

/*  A plugin's configuration (the "config" of its entry, as JSON text from
    host->config_json).  Parse config_json (NULL reads as "{}") into
    *config_p, which must be an object whose keys are all in the
    NULL-terminated list known, so a misspelt key is an error instead of a
    silent default.  0, or -EINVAL with *config_p NULL and the reason in err
    ("config is not a JSON object", "config: unknown key \"x\" (known: a,
    b)").  The caller frees *config_p with cJSON_Delete.                     */
struct cJSON;
int pc_config_parse (const char *config_json, const char *const *known,
                     struct cJSON **config_p, char *err, size_t err_size);

/*  For check_config: report (one call per line) every key of config_json
    that is not in known, and set *cleaned_p to the config without them
    (malloc'd JSON text, free it) so the checks that follow can still find
    the next problem.  Returns how many keys were unknown, -EINVAL (after a
    report) when config_json is not an object, or -ENOMEM.                   */
int pc_config_strip_unknown (const char *config_json, const char *const *known,
                             void (*report) (void *arg, const char *problem), void *arg,
                             char **cleaned_p);

/*  check_config's first step for a plugin instance: every key of its
    config not in known is reported through host->set_reason (a line
    each), and *cleaned_p gets the config without them, as above.           */
int pc_check_unknown_keys (busd_plugin_instance_t *self, const busd_plugin_host_t *host,
                           const char *const *known, char **cleaned_p);

/*  The integer setting key of config, within [min, max], or dflt when the
    key is absent.  0, or -EINVAL with the reason in err.                    */
int pc_config_int (const struct cJSON *config, const char *key, int64_t dflt,
                   int64_t min, int64_t max, int64_t *value, char *err, size_t err_size);

/*  Monotonic milliseconds, for timeouts and fsync intervals.                */
int64_t pc_mono_ms (void);

#endif
