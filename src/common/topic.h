/*  topic.h — topic and pattern grammar of BUSP/1 (PROTOCOL §2).

    Kept apart from the routing trie because clients validate topics before
    sending (busd-pub fails fast with a clear message) and the broker must
    apply exactly the same rules.                                            */
#ifndef BUSP_TOPIC_H_INCLUDED
#define BUSP_TOPIC_H_INCLUDED

#include <stddef.h>
#include <stdbool.h>

#define BUSP_TOPIC_MAX 255

/*  0 when (topic, len) is a valid topic: 1..255 bytes of tokens joined by
    '.', a token being one or more bytes 0x21..0x7E other than '.', '*', '#'.
    Otherwise -EINVAL and *why (if not NULL) says what is wrong.             */
int busp_topic_check (const char *topic, size_t len, const char **why);

/*  Like busp_topic_check, but a token may also be exactly "*", and the last
    token exactly "#".                                                       */
int busp_pattern_check (const char *pattern, size_t len, const char **why);

/*  True when the first token of a topic (or pattern) starts with '$'.       */
bool busp_topic_is_system (const char *topic, size_t len);

/*  True when a valid pattern matches a valid topic.  A pattern whose first
    token is '*' or '#' never matches a system ('$') topic.                  */
bool busp_pattern_match (const char *pattern, size_t plen,
                         const char *topic, size_t tlen);

#endif
