/*  acl.h — who may publish, subscribe, join groups and run CTL commands.

    The ACL file maps identities (a CURVE client's certificate name, a PLAIN
    user, or "anonymous" for connections without credentials) to what they
    may do.  Once an ACL is configured, everything it does not allow is
    denied.  Each answer names the rule that decided it (file:line), so an
    operator reading a 403 knows which line to change.  Plain C on purpose
    (no sockets, no czmq): the parser is fuzzed on its own.                  */
#ifndef BUSD_ACL_H_INCLUDED
#define BUSD_ACL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct acl acl_t;

/*  The identity of a connection that presented no credentials.             */
#define ACL_ANONYMOUS "anonymous"

/*  Parse ACL text (name is used in messages, e.g. the file's path).  Every
    problem is appended to errors as "name:line: what" (one per line);
    returns 0 and *acl_p, or -EINVAL (nothing in *acl_p), or -ENOMEM.        */
int acl_parse (const char *text, size_t size, const char *name, acl_t **acl_p,
               char *errors, size_t errors_size);

/*  acl_parse on the contents of the file at path.                           */
int acl_load_file (const char *path, acl_t **acl_p, char *errors, size_t errors_size);

void acl_destroy (acl_t **self_p);

/*  Each check returns true when allowed.  why (if not NULL) receives a
    sentence naming the rule that allowed it, or why it is denied: the rule
    line of the identity, or that the identity has no entry.                 */
bool acl_may_publish (const acl_t *self, const char *identity,
                      const char *topic, size_t len, char *why, size_t why_size);
/*  The requested pattern must be covered by one subscribe rule: every topic
    it can match is matched by the rule.  A rule starting with '*' or '#'
    never covers '$' topics: `$dlq.#` and `$sys.#` must be granted by name.  */
bool acl_may_subscribe (const acl_t *self, const char *identity,
                        const char *pattern, size_t len, char *why, size_t why_size);
bool acl_may_join (const acl_t *self, const char *identity,
                   const char *group, char *why, size_t why_size);
/*  CTL commands: "read" grants the read-only ones (acl_ctl_is_read_only),
    "admin" all of them; a rule may also list single commands.              */
bool acl_may_ctl (const acl_t *self, const char *identity,
                  const char *cmd, char *why, size_t why_size);

/*  True for the CTL commands that change nothing and reveal no payloads.   */
bool acl_ctl_is_read_only (const char *cmd);

/*  True when the pattern a covers the pattern r (both valid patterns).      */
bool acl_pattern_covers (const char *a, size_t alen, const char *r, size_t rlen);

/*  Number of identities (for logs).                                        */
size_t acl_size (const acl_t *self);

#endif
