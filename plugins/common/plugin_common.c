/*  plugin_common.c — the pure helpers of plugin_common.h.

    Everything here is a function of its arguments (pc_mono_ms aside), so the
    unit tests can pin every edge: UTF-8 boundaries, JSON escapes, base64
    padding, the tail ring's wrap-around, Retry-After's two forms and the
    config checks' messages.                                                */
#include "plugin_common.h"

#include <cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
pc_buf_init (pc_buf_t *self)
{
    self->data = NULL;
    self->len = 0;
    self->cap = 0;
}

void
pc_buf_free (pc_buf_t *self)
{
    free (self->data);
    pc_buf_init (self);
}

void
pc_buf_reset (pc_buf_t *self)
{
    self->len = 0;
    if (self->data)
        self->data [0] = 0;
}

//  Make room for extra more bytes plus the terminating NUL.
static int
s_buf_reserve (pc_buf_t *self, size_t extra)
{
    if (extra > SIZE_MAX - self->len - 1)
        return -ENOMEM;
    size_t need = self->len + extra + 1;
    if (need <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *data = realloc (self->data, cap);
    if (!data)
        return -ENOMEM;
    self->data = data;
    self->cap = cap;
    return 0;
}

int
pc_buf_append (pc_buf_t *self, const void *data, size_t len)
{
    if (s_buf_reserve (self, len))
        return -ENOMEM;
    if (len)
        memcpy (self->data + self->len, data, len);
    self->len += len;
    self->data [self->len] = 0;
    return 0;
}

int
pc_buf_append_str (pc_buf_t *self, const char *text)
{
    return pc_buf_append (self, text, strlen (text));
}

int
pc_buf_appendf (pc_buf_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int n = vsnprintf (NULL, 0, format, args);
    va_end (args);
    if (n < 0)
        return -EINVAL;
    if (s_buf_reserve (self, (size_t) n))
        return -ENOMEM;
    va_start (args, format);
    vsnprintf (self->data + self->len, (size_t) n + 1, format, args);
    va_end (args);
    self->len += (size_t) n;
    return 0;
}

//  Length of the well-formed UTF-8 sequence at p (at most avail bytes), or
//  0 when the bytes there are not one.  Ranges from RFC 3629 §4.
static size_t
s_utf8_seq (const unsigned char *p, size_t avail)
{
    unsigned char c = p [0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else
    if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;          //  no overlong forms
        else
        if (c == 0xED)
            hi = 0x9F;          //  no surrogates
    }
    else
    if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else
        if (c == 0xF4)
            hi = 0x8F;          //  nothing above U+10FFFF
    }
    else
        return 0;
    if (avail < n)
        return 0;
    if (p [1] < lo || p [1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p [i] < 0x80 || p [i] > 0xBF)
            return 0;
    return n;
}

bool
pc_utf8_valid (const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i = 0;
    while (i < len) {
        if (p [i] < 0x80) {     //  the common case, without the call
            i++;
            continue;
        }
        size_t n = s_utf8_seq (p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

int
pc_json_append_string (pc_buf_t *self, const void *text, size_t len)
{
    static const char hex [] = "0123456789abcdef";
    const unsigned char *p = text;
    //  Worst case is 6 bytes per input byte; reserve once, then write.
    if (len > (SIZE_MAX - 3) / 6 || s_buf_reserve (self, len * 6 + 2))
        return -ENOMEM;
    char *out = self->data + self->len;
    *out++ = '"';
    size_t i = 0;
    while (i < len) {
        unsigned char c = p [i];
        if (c >= 0x80) {
            size_t n = s_utf8_seq (p + i, len - i);
            if (n == 0) {
                memcpy (out, "\\ufffd", 6);
                out += 6;
                i++;
            }
            else {
                memcpy (out, p + i, n);
                out += n;
                i += n;
            }
            continue;
        }
        i++;
        switch (c) {
            case '"':  *out++ = '\\'; *out++ = '"'; break;
            case '\\': *out++ = '\\'; *out++ = '\\'; break;
            case '\b': *out++ = '\\'; *out++ = 'b'; break;
            case '\f': *out++ = '\\'; *out++ = 'f'; break;
            case '\n': *out++ = '\\'; *out++ = 'n'; break;
            case '\r': *out++ = '\\'; *out++ = 'r'; break;
            case '\t': *out++ = '\\'; *out++ = 't'; break;
            default:
                if (c < 0x20) {
                    memcpy (out, "\\u00", 4);
                    out [4] = hex [c >> 4];
                    out [5] = hex [c & 15];
                    out += 6;
                }
                else
                    *out++ = (char) c;
        }
    }
    *out++ = '"';
    self->len = (size_t) (out - self->data);
    self->data [self->len] = 0;
    return 0;
}

int
pc_base64_append (pc_buf_t *self, const void *data, size_t len)
{
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    if (len / 3 >= (SIZE_MAX - 8) / 4)
        return -ENOMEM;
    size_t out_len = (len + 2) / 3 * 4;
    if (s_buf_reserve (self, out_len))
        return -ENOMEM;
    char *out = self->data + self->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t) p [i] << 16 | (uint32_t) p [i + 1] << 8 | p [i + 2];
        *out++ = alphabet [v >> 18 & 63];
        *out++ = alphabet [v >> 12 & 63];
        *out++ = alphabet [v >> 6 & 63];
        *out++ = alphabet [v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t) p [i] << 16;
        *out++ = alphabet [v >> 18 & 63];
        *out++ = alphabet [v >> 12 & 63];
        *out++ = '=';
        *out++ = '=';
    }
    else
    if (len - i == 2) {
        uint32_t v = (uint32_t) p [i] << 16 | (uint32_t) p [i + 1] << 8;
        *out++ = alphabet [v >> 18 & 63];
        *out++ = alphabet [v >> 12 & 63];
        *out++ = alphabet [v >> 6 & 63];
        *out++ = '=';
    }
    self->len += out_len;
    self->data [self->len] = 0;
    return 0;
}

size_t
pc_text_sanitize (char *dst, size_t dst_size, const void *src, size_t len)
{
    const unsigned char *p = src;
    size_t out = 0;
    bool space = true;          //  true: drop leading white space
    size_t i = 0;
    while (i < len && out + 1 < dst_size) {
        unsigned char c = p [i];
        if (c < 0x20 || c == 0x7F || c == ' ') {
            if (!space) {
                dst [out++] = ' ';
                space = true;
            }
            i++;
            continue;
        }
        size_t n = c < 0x80 ? 1 : s_utf8_seq (p + i, len - i);
        if (n == 0) {
            dst [out++] = '?';
            i++;
        }
        else {
            if (out + n + 1 > dst_size)
                break;          //  never cut a character in half
            memcpy (dst + out, p + i, n);
            out += n;
            i += n;
        }
        space = false;
    }
    while (out > 0 && dst [out - 1] == ' ')
        out--;
    if (dst_size > 0)
        dst [out] = 0;
    return out;
}

void
pc_tail_reset (pc_tail_t *self)
{
    self->start = 0;
    self->used = 0;
    self->total = 0;
}

void
pc_tail_write (pc_tail_t *self, const void *data, size_t len)
{
    const char *p = data;
    self->total += len;
    //  Only the last PC_TAIL_SIZE bytes of this write can survive.
    if (len > PC_TAIL_SIZE) {
        p += len - PC_TAIL_SIZE;
        len = PC_TAIL_SIZE;
    }
    for (size_t i = 0; i < len; i++) {
        if (self->used < PC_TAIL_SIZE) {
            self->data [(self->start + self->used) % PC_TAIL_SIZE] = p [i];
            self->used++;
        }
        else {
            self->data [self->start] = p [i];
            self->start = (self->start + 1) % PC_TAIL_SIZE;
        }
    }
}

size_t
pc_tail_text (const pc_tail_t *self, char *dst, size_t dst_size)
{
    char linear [PC_TAIL_SIZE];
    for (size_t i = 0; i < self->used; i++)
        linear [i] = self->data [(self->start + i) % PC_TAIL_SIZE];
    const char *from = linear;
    size_t len = self->used;
    size_t out = 0;
    if (self->total > self->used) {
        //  Skip continuation bytes left over from a character we cut.
        while (len > 0 && ((unsigned char) *from & 0xC0) == 0x80) {
            from++;
            len--;
        }
        if (dst_size > 4) {
            memcpy (dst, "...", 3);
            out = 3;
        }
    }
    if (dst_size == 0)
        return 0;
    size_t n = pc_text_sanitize (dst + out, dst_size - out, from, len);
    if (n == 0 && out > 0)
        out = 0;                //  nothing followed the dots: say nothing
    dst [out + n] = 0;
    return out + n;
}

static const char *s_months [] = {
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

//  IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT", parsed by hand: the
//  host may have set a locale, and strptime's %b follows it.
static int
s_parse_imf_fixdate (const char *value, int64_t *epoch_s)
{
    char day [4], month [4], zone [4];
    int mday, year, hour, min, sec, end = 0;
    if (sscanf (value, "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d %3[A-Z]%n",
                day, &mday, month, &year, &hour, &min, &sec, zone, &end) != 8)
        return -EINVAL;
    if (value [end] != 0 || strcmp (zone, "GMT") != 0)
        return -EINVAL;
    int mon = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp (month, s_months [i]) == 0)
            mon = i;
    if (mon < 0 || mday < 1 || mday > 31 || year < 1970 || hour > 23 || min > 59 || sec > 60)
        return -EINVAL;
    struct tm tm = {
        .tm_year = year - 1900, .tm_mon = mon, .tm_mday = mday,
        .tm_hour = hour, .tm_min = min, .tm_sec = sec
    };
    time_t t = timegm (&tm);
    if (t == (time_t) -1)
        return -EINVAL;
    *epoch_s = (int64_t) t;
    return 0;
}

int
pc_retry_after_parse (const char *value, int64_t now_s, uint32_t max_ms,
                      uint32_t *delay_ms)
{
    if (!value)
        return -EINVAL;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t len = strlen (value);
    while (len > 0 && (value [len - 1] == ' ' || value [len - 1] == '\t'
                    || value [len - 1] == '\r' || value [len - 1] == '\n'))
        len--;
    if (len == 0 || len > 64)
        return -EINVAL;
    char text [65];
    memcpy (text, value, len);
    text [len] = 0;

    uint64_t seconds = 0;
    if (isdigit ((unsigned char) text [0])) {
        for (size_t i = 0; i < len; i++) {
            if (!isdigit ((unsigned char) text [i]))
                return -EINVAL;
            if (seconds < UINT32_MAX)   //  saturate: the cap applies anyway
                seconds = seconds * 10 + (uint64_t) (text [i] - '0');
        }
    }
    else {
        int64_t when;
        if (s_parse_imf_fixdate (text, &when))
            return -EINVAL;
        seconds = when > now_s ? (uint64_t) (when - now_s) : 0;
    }
    uint64_t ms = seconds > UINT32_MAX / 1000 ? UINT64_MAX : seconds * 1000;
    *delay_ms = ms > max_ms ? max_ms : (uint32_t) ms;
    return 0;
}

int
pc_config_parse (const char *config_json, const char *const *known,
                 struct cJSON **config_p, char *err, size_t err_size)
{
    *config_p = NULL;
    cJSON *config = cJSON_Parse (config_json ? config_json : "{}");
    if (!cJSON_IsObject (config)) {
        snprintf (err, err_size, "config is not a JSON object");
        cJSON_Delete (config);
        return -EINVAL;
    }
    const cJSON *item;
    cJSON_ArrayForEach (item, config) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp (item->string, *k) == 0;
        if (ok)
            continue;
        int len = snprintf (err, err_size, "config: unknown key \"%s\" (known:", item->string);
        for (const char *const *k = known; *k && len >= 0 && (size_t) len < err_size; k++) {
            int more = snprintf (err + len, err_size - (size_t) len, "%s %s",
                                 k == known ? "" : ",", *k);
            len = more < 0 ? more : len + more;
        }
        if (len >= 0 && (size_t) len < err_size)
            snprintf (err + len, err_size - (size_t) len, ")");
        cJSON_Delete (config);
        return -EINVAL;
    }
    *config_p = config;
    return 0;
}

int
pc_config_strip_unknown (const char *config_json, const char *const *known,
                         void (*report) (void *arg, const char *problem), void *arg,
                         char **cleaned_p)
{
    *cleaned_p = NULL;
    cJSON *config = cJSON_Parse (config_json ? config_json : "{}");
    if (!cJSON_IsObject (config)) {
        cJSON_Delete (config);
        report (arg, "config is not a JSON object");
        return -EINVAL;
    }
    int unknown = 0;
    cJSON *item = config->child;
    while (item) {
        cJSON *next = item->next;
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp (item->string, *k) == 0;
        if (!ok) {
            //  The same words as pc_config_parse, one line per key.
            char line [512];
            int len = snprintf (line, sizeof line, "config: unknown key \"%s\" (known:",
                                item->string);
            for (const char *const *k = known; *k && len >= 0 && (size_t) len < sizeof line; k++) {
                int more = snprintf (line + len, sizeof line - (size_t) len, "%s %s",
                                     k == known ? "" : ",", *k);
                len = more < 0 ? more : len + more;
            }
            if (len >= 0 && (size_t) len < sizeof line)
                snprintf (line + len, sizeof line - (size_t) len, ")");
            report (arg, line);
            cJSON_Delete (cJSON_DetachItemViaPointer (config, item));
            unknown++;
        }
        item = next;
    }
    *cleaned_p = cJSON_PrintUnformatted (config);
    cJSON_Delete (config);
    return *cleaned_p ? unknown : -ENOMEM;
}

int
pc_config_int (const struct cJSON *config, const char *key, int64_t dflt,
               int64_t min, int64_t max, int64_t *value, char *err, size_t err_size)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (config, key);
    if (!item) {
        *value = dflt;
        return 0;
    }
    if (!cJSON_IsNumber (item) || item->valuedouble != (double) (int64_t) item->valuedouble
    ||  item->valuedouble < (double) min || item->valuedouble > (double) max) {
        snprintf (err, err_size, "config: \"%s\" must be an integer from %" PRId64 " to %" PRId64,
                  key, min, max);
        return -EINVAL;
    }
    *value = (int64_t) item->valuedouble;
    return 0;
}

int64_t
pc_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    busd_plugin_instance_t *self;
    const busd_plugin_host_t *host;
} check_t;

static void
s_report_unknown (void *arg, const char *problem)
{
    check_t *check = arg;
    check->host->set_reason (check->self, "%s", problem);
}

int
pc_check_unknown_keys (busd_plugin_instance_t *self, const busd_plugin_host_t *host,
                       const char *const *known, char **cleaned_p)
{
    check_t check = { self, host };
    return pc_config_strip_unknown (host->config_json (self), known, s_report_unknown, &check,
                                    cleaned_p);
}
