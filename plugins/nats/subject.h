/*  subject.h — how busd topics and patterns map to NATS subjects, and
    the small matching the nats plugin needs, kept free of libnats and of
    busd internals so tests/unit/check_nats_subject.c can test it alone.

    A topic maps to "<prefix>.<topic>": busd and NATS both split on '.', so
    tokens cross unchanged.  A pattern maps the same way with '*' kept and a
    final '#' becoming NATS's '>' plus the bare parent ("order.#" is
    "busd.order.>" and "busd.order"), because busd's '#' also matches the
    parent itself and NATS's '>' needs at least one more token.  What NATS
    would read differently is refused with the reason: a token ">" (NATS's
    full wildcard), bytes NATS does not allow in a subject.                 */
#ifndef BUSD_NATS_SUBJECT_H_INCLUDED
#define BUSD_NATS_SUBJECT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define NS_SUBJECT_MAX 512
#define NS_NAME_MAX 64

/*  0 when prefix is one or more literal NATS tokens ("busd", "dc1.busd");
    else -EINVAL and the reason in why.                                      */
int ns_prefix_check (const char *prefix, char *why, size_t why_size);

/*  The subject of a busd topic.  0, or -EINVAL with the reason (also for
    an invalid busd topic), -ENAMETOOLONG when it does not fit.              */
int ns_topic_subject (const char *prefix, const char *topic, char *out, size_t size,
                      char *why, size_t why_size);

/*  The one or two subjects of a busd pattern (see above): 0 with *count
    set, or -EINVAL with the reason.                                         */
int ns_pattern_subjects (const char *prefix, const char *pattern,
                         char out [2][NS_SUBJECT_MAX], int *count,
                         char *why, size_t why_size);

/*  The busd topic a subject under prefix carries: 0, or -EINVAL when the
    subject is not under prefix or what follows is not a busd topic.       */
int ns_subject_topic (const char *prefix, const char *subject, char *out, size_t size);

/*  True when the busd pattern matches the topic (busd's rules: '*' one
    token, a final '#' any number including none after the parent, and a
    leading wildcard never matches a '$' topic).                            */
bool ns_pattern_match (const char *pattern, const char *topic);

/*  True when name can name a NATS stream, durable consumer or queue group:
    1..NS_NAME_MAX-1 bytes of letters, digits, '-' and '_'.                  */
bool ns_name_valid (const char *name);

/*  Copy text into out as a valid name: other bytes become '_', cut to fit.  */
void ns_name_sanitize (const char *text, char *out, size_t size);

/*  True when key can be a NATS header name (printable ASCII, no ':') and
    value a header value (no CR or LF).                                      */
bool ns_header_valid (const char *key, const char *value);

#endif
