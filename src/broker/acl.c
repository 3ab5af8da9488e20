/*  acl.c — the ACL file parser and the checks (see acl.h).

    The file is line-oriented so that every error and every decision can
    name one line:

        # full-line comments only: '#' is also a pattern token
        identity alice
            publish   user.# orders.created
            subscribe user.# $dlq.user.#
            group     mailers
            ctl       read

    An identity line opens a block; the directives below it add to it.  Rules
    only ever allow: what no rule allows is denied.                          */
#include "acl.h"
#include "topic.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACL_NAME_MAX 255

typedef enum { R_PUBLISH, R_SUBSCRIBE, R_GROUP, R_CTL, R_KINDS } rkind_t;

static const char *s_kind_names [R_KINDS] = { "publish", "subscribe", "group", "ctl" };

typedef struct {
    char *text;                 /*  pattern, group name or ctl word          */
    size_t len;
    int line;
} rule_t;

typedef struct {
    char *name;
    int line;
    rule_t *rules [R_KINDS];
    size_t count [R_KINDS];
    size_t cap [R_KINDS];
} ident_t;

struct acl {
    char *source;               /*  file name for messages                  */
    ident_t *idents;
    size_t count, cap;
};

static const char *s_read_only [] = {
    "stats", "clients", "subscriptions", "streams", "plugins", NULL
};

bool
acl_ctl_is_read_only (const char *cmd)
{
    for (const char **p = s_read_only; *p; p++)
        if (strcmp (*p, cmd) == 0)
            return true;
    return false;
}

void
acl_destroy (acl_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    acl_t *self = *self_p;
    for (size_t i = 0; i < self->count; i++) {
        ident_t *id = &self->idents [i];
        for (int k = 0; k < R_KINDS; k++) {
            for (size_t r = 0; r < id->count [k]; r++)
                free (id->rules [k][r].text);
            free (id->rules [k]);
        }
        free (id->name);
    }
    free (self->idents);
    free (self->source);
    free (self);
    *self_p = NULL;
}

size_t
acl_size (const acl_t *self)
{
    return self ? self->count : 0;
}

static ident_t *
s_find (const acl_t *self, const char *name)
{
    for (size_t i = 0; i < self->count; i++)
        if (strcmp (self->idents [i].name, name) == 0)
            return &self->idents [i];
    return NULL;
}

static int
s_add_rule (ident_t *id, rkind_t kind, const char *text, size_t len, int line)
{
    if (id->count [kind] == id->cap [kind]) {
        size_t cap = id->cap [kind] ? id->cap [kind] * 2 : 4;
        rule_t *rules = realloc (id->rules [kind], cap * sizeof *rules);
        if (!rules)
            return -ENOMEM;
        id->rules [kind] = rules;
        id->cap [kind] = cap;
    }
    char *copy = strndup (text, len);
    if (!copy)
        return -ENOMEM;
    id->rules [kind][id->count [kind]++] = (rule_t) { copy, len, line };
    return 0;
}

/*  Printable ASCII without spaces: names that logs and replies show as
    they are, and that a whitespace-separated file can hold.                */
static bool
s_name_ok (const char *s, size_t len)
{
    if (len == 0 || len > ACL_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) s [i] < 0x21 || (unsigned char) s [i] > 0x7E)
            return false;
    return true;
}

static bool
s_ctl_word_ok (const char *s, size_t len)
{
    if (len == 0 || len > 64 || s [0] < 'a' || s [0] > 'z')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s [i] >= 'a' && s [i] <= 'z') || (s [i] >= '0' && s [i] <= '9') || s [i] == '-'))
            return false;
    return true;
}

/*  One whitespace-separated word from *p (not past end); NULL at the end.  */
static const char *
s_word (const char **p, const char *end, size_t *len)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
        s++;
    if (s == end) {
        *p = s;
        return NULL;
    }
    const char *w = s;
    while (s < end && *s != ' ' && *s != '\t' && *s != '\r')
        s++;
    *len = (size_t) (s - w);
    *p = s;
    return w;
}

static int
s_parse_line (acl_t *self, ident_t **cur, const char *p, const char *end, int line,
              char *errors, size_t errors_size)
{
    const char *src = self->source;
    size_t len;
    const char *word = s_word (&p, end, &len);
    if (!word || word [0] == '#')
        return 0;               //  blank line or comment
    if (len == 8 && memcmp (word, "identity", 8) == 0) {
        size_t nlen;
        const char *name = s_word (&p, end, &nlen);
        size_t extra_len;
        if (!name) {
            busp_appendf (errors, errors_size, "%s:%d: 'identity' needs a name\n", src, line);
            *cur = NULL;
            return -EINVAL;
        }
        if (s_word (&p, end, &extra_len)) {
            busp_appendf (errors, errors_size,
                          "%s:%d: 'identity' takes one name (a certificate name, a PLAIN user or 'anonymous')\n",
                          src, line);
            *cur = NULL;
            return -EINVAL;
        }
        if (!s_name_ok (name, nlen)) {
            busp_appendf (errors, errors_size,
                          "%s:%d: identity name must be 1..255 printable ASCII characters\n",
                          src, line);
            *cur = NULL;
            return -EINVAL;
        }
        char *copy = strndup (name, nlen);
        if (!copy)
            return -ENOMEM;
        const ident_t *dup = s_find (self, copy);
        if (dup) {
            busp_appendf (errors, errors_size, "%s:%d: identity '%s' already defined at line %d\n",
                          src, line, copy, dup->line);
            free (copy);
            *cur = NULL;
            return -EINVAL;
        }
        if (self->count == self->cap) {
            size_t cap = self->cap ? self->cap * 2 : 8;
            ident_t *ids = realloc (self->idents, cap * sizeof *ids);
            if (!ids) {
                free (copy);
                return -ENOMEM;
            }
            self->idents = ids;
            self->cap = cap;
        }
        ident_t *id = &self->idents [self->count++];
        memset (id, 0, sizeof *id);
        id->name = copy;
        id->line = line;
        *cur = id;
        return 0;
    }
    rkind_t kind = R_KINDS;
    for (int k = 0; k < R_KINDS; k++)
        if (strlen (s_kind_names [k]) == len && memcmp (word, s_kind_names [k], len) == 0)
            kind = (rkind_t) k;
    if (kind == R_KINDS) {
        busp_appendf (errors, errors_size,
                      "%s:%d: unknown directive '%.*s' (expected identity, publish, subscribe, group or ctl)\n",
                      src, line, (int) (len > 40 ? 40 : len), word);
        return -EINVAL;
    }
    if (!*cur) {
        busp_appendf (errors, errors_size, "%s:%d: '%s' outside an identity block (start one with 'identity NAME')\n",
                      src, line, s_kind_names [kind]);
        return -EINVAL;
    }
    int rc = 0;
    int words = 0;
    const char *arg;
    size_t alen;
    while ((arg = s_word (&p, end, &alen))) {
        words++;
        const char *why = NULL;
        if (kind == R_PUBLISH || kind == R_SUBSCRIBE) {
            if (busp_pattern_check (arg, alen, &why)) {
                busp_appendf (errors, errors_size, "%s:%d: %s pattern '%.*s': %s\n", src, line,
                              s_kind_names [kind], (int) (alen > 60 ? 60 : alen), arg, why);
                rc = -EINVAL;
                continue;
            }
        }
        else
        if (kind == R_GROUP) {
            if (!s_name_ok (arg, alen)) {
                busp_appendf (errors, errors_size,
                              "%s:%d: group name must be 1..255 printable ASCII characters, or '*'\n",
                              src, line);
                rc = -EINVAL;
                continue;
            }
        }
        else
        if (!s_ctl_word_ok (arg, alen)) {
            busp_appendf (errors, errors_size,
                          "%s:%d: ctl takes none, read, admin or command names (like 'stats'), not '%.*s'\n",
                          src, line, (int) (alen > 40 ? 40 : alen), arg);
            rc = -EINVAL;
            continue;
        }
        if (kind == R_CTL && alen == 4 && memcmp (arg, "none", 4) == 0)
            continue;
        int add = s_add_rule (*cur, kind, arg, alen, line);
        if (add)
            return add;
    }
    if (words == 0) {
        busp_appendf (errors, errors_size, "%s:%d: '%s' needs at least one %s\n", src, line,
                      s_kind_names [kind],
                      kind == R_GROUP ? "group name" : kind == R_CTL ? "word" : "pattern");
        rc = -EINVAL;
    }
    return rc;
}

int
acl_parse (const char *text, size_t size, const char *name, acl_t **acl_p,
           char *errors, size_t errors_size)
{
    if (errors_size)
        errors [0] = 0;
    acl_t *self = calloc (1, sizeof *self);
    if (!self)
        return -ENOMEM;
    self->source = strdup (name ? name : "acl");
    if (!self->source) {
        free (self);
        return -ENOMEM;
    }
    int rc = 0;
    ident_t *cur = NULL;
    const char *p = text, *end = text + size;
    int line = 1;
    while (p < end) {
        const char *eol = memchr (p, '\n', (size_t) (end - p));
        if (!eol)
            eol = end;
        if (memchr (p, 0, (size_t) (eol - p))) {
            busp_appendf (errors, errors_size, "%s:%d: NUL byte in the file\n", self->source, line);
            rc = rc ? rc : -EINVAL;
        }
        else {
            //  idents may move only when a block is added, and then cur
            //  is set to the new block: it never dangles.
            int r = s_parse_line (self, &cur, p, eol, line, errors, errors_size);
            if (r == -ENOMEM) {
                acl_destroy (&self);
                return r;
            }
            if (r)
                rc = r;
        }
        p = eol < end ? eol + 1 : end;
        line++;
    }
    if (rc) {
        acl_destroy (&self);
        return -EINVAL;
    }
    if (self->count == 0)
        //  An empty ACL would deny everything to everyone, almost always a
        //  mistake (a wrong path, an unsaved file): say so instead.
        busp_appendf (errors, errors_size,
                      "%s: no identity blocks: every client would be denied everything\n",
                      self->source);
    if (self->count == 0) {
        acl_destroy (&self);
        return -EINVAL;
    }
    *acl_p = self;
    return 0;
}

int
acl_load_file (const char *path, acl_t **acl_p, char *errors, size_t errors_size)
{
    if (errors_size)
        errors [0] = 0;
    char *text = NULL;
    size_t size = 0;
    int rc = busp_read_file (path, &text, &size);
    if (rc == -ENOMEM)
        return rc;
    if (rc) {
        busp_appendf (errors, errors_size, "%s: cannot open: %s\n", path, strerror (-rc));
        return -EINVAL;
    }
    rc = acl_parse (text, size, path, acl_p, errors, errors_size);
    free (text);
    return rc;
}

/*  Split the next token of a pattern: [*p, return) up to '.' or the end.  */
static const char *
s_token (const char *p, const char *end)
{
    const char *dot = memchr (p, '.', (size_t) (end - p));
    return dot ? dot : end;
}

bool
acl_pattern_covers (const char *a, size_t alen, const char *r, size_t rlen)
{
    const char *ap = a, *aend = a + alen, *rp = r, *rend = r + rlen;
    bool r_system = rlen > 0 && r [0] == '$';
    bool first = true;
    while (true) {
        if (ap >= aend)
            return rp >= rend;
        const char *ae = s_token (ap, aend);
        size_t at = (size_t) (ae - ap);
        if (at == 1 && ap [0] == '#')
            //  '#' covers whatever is left, even nothing; as the first
            //  token it never matches a '$' topic.
            return !(first && r_system);
        if (rp >= rend)
            return false;
        const char *re = s_token (rp, rend);
        size_t rt = (size_t) (re - rp);
        if (rt == 1 && rp [0] == '#')
            return false;       //  r reaches any depth, a does not
        if (at == 1 && ap [0] == '*') {
            if (first && r_system)
                return false;
        }
        else
        if (at != rt || memcmp (ap, rp, at) != 0)
            return false;       //  a literal covers only itself (not '*')
        ap = ae < aend ? ae + 1 : aend;
        rp = re < rend ? re + 1 : rend;
        //  A trailing '.' cannot occur in valid patterns; the end test
        //  above relies on that.
        first = false;
    }
}

static const ident_t *
s_ident (const acl_t *self, const char *identity, char *why, size_t why_size)
{
    const ident_t *id = self ? s_find (self, identity) : NULL;
    if (!id && why && why_size)
        snprintf (why, why_size, "denied by ACL %s: identity '%s' has no entry (deny by default)",
                  self ? self->source : "", identity);
    return id;
}

static void
s_denied (const acl_t *self, const ident_t *id, rkind_t kind, const char *what, size_t len,
          char *why, size_t why_size)
{
    if (!why || !why_size)
        return;
    if (id->count [kind] == 0)
        snprintf (why, why_size, "denied by ACL %s:%d: identity '%s' has no %s rule",
                  self->source, id->line, id->name, s_kind_names [kind]);
    else
        snprintf (why, why_size, "denied by ACL %s:%d: no %s rule of identity '%s' allows '%.*s'",
                  self->source, id->line, s_kind_names [kind], id->name,
                  (int) (len > 120 ? 120 : len), what);
}

static void
s_allowed (const acl_t *self, const ident_t *id, rkind_t kind, const rule_t *rule,
           char *why, size_t why_size)
{
    if (why && why_size)
        snprintf (why, why_size, "allowed by ACL %s:%d (identity '%s', %s %s)",
                  self->source, rule->line, id->name, s_kind_names [kind], rule->text);
}

bool
acl_may_publish (const acl_t *self, const char *identity, const char *topic, size_t len,
                 char *why, size_t why_size)
{
    const ident_t *id = s_ident (self, identity, why, why_size);
    if (!id)
        return false;
    for (size_t i = 0; i < id->count [R_PUBLISH]; i++) {
        const rule_t *rule = &id->rules [R_PUBLISH][i];
        if (busp_pattern_match (rule->text, rule->len, topic, len)) {
            s_allowed (self, id, R_PUBLISH, rule, why, why_size);
            return true;
        }
    }
    s_denied (self, id, R_PUBLISH, topic, len, why, why_size);
    return false;
}

bool
acl_may_subscribe (const acl_t *self, const char *identity, const char *pattern, size_t len,
                   char *why, size_t why_size)
{
    const ident_t *id = s_ident (self, identity, why, why_size);
    if (!id)
        return false;
    for (size_t i = 0; i < id->count [R_SUBSCRIBE]; i++) {
        const rule_t *rule = &id->rules [R_SUBSCRIBE][i];
        if (acl_pattern_covers (rule->text, rule->len, pattern, len)) {
            s_allowed (self, id, R_SUBSCRIBE, rule, why, why_size);
            return true;
        }
    }
    s_denied (self, id, R_SUBSCRIBE, pattern, len, why, why_size);
    return false;
}

bool
acl_may_join (const acl_t *self, const char *identity, const char *group,
              char *why, size_t why_size)
{
    const ident_t *id = s_ident (self, identity, why, why_size);
    if (!id)
        return false;
    for (size_t i = 0; i < id->count [R_GROUP]; i++) {
        const rule_t *rule = &id->rules [R_GROUP][i];
        if (strcmp (rule->text, "*") == 0 || strcmp (rule->text, group) == 0) {
            s_allowed (self, id, R_GROUP, rule, why, why_size);
            return true;
        }
    }
    s_denied (self, id, R_GROUP, group, strlen (group), why, why_size);
    return false;
}

bool
acl_may_ctl (const acl_t *self, const char *identity, const char *cmd,
             char *why, size_t why_size)
{
    const ident_t *id = s_ident (self, identity, why, why_size);
    if (!id)
        return false;
    for (size_t i = 0; i < id->count [R_CTL]; i++) {
        const rule_t *rule = &id->rules [R_CTL][i];
        if (strcmp (rule->text, "admin") == 0
        || (strcmp (rule->text, "read") == 0 && acl_ctl_is_read_only (cmd))
        ||  strcmp (rule->text, cmd) == 0) {
            s_allowed (self, id, R_CTL, rule, why, why_size);
            return true;
        }
    }
    s_denied (self, id, R_CTL, cmd, strlen (cmd), why, why_size);
    return false;
}
