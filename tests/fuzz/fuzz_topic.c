/*  fuzz_topic.c — libFuzzer target for topic and pattern validation,
    matching, and the ACL's pattern coverage.

    The input is split at the first two newlines into a pattern A, a pattern
    R and a topic T.  Besides not crashing, the pieces must agree: a valid
    topic is a valid pattern; a pattern matches its own topic; when A covers
    R and R matches T, A matches T (coverage is what lets an ACL grant a
    subscription, so an over-generous answer would leak events).             */
#include "topic.h"
#include "acl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static char *
s_dup (const uint8_t *data, size_t size)
{
    char *copy = malloc (size ? size : 1);
    if (copy)
        memcpy (copy, data, size);
    return copy;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    const uint8_t *nl1 = memchr (data, '\n', size);
    size_t alen = nl1 ? (size_t) (nl1 - data) : size;
    const uint8_t *rest = nl1 ? nl1 + 1 : data + size;
    size_t rest_len = (size_t) (data + size - rest);
    const uint8_t *nl2 = memchr (rest, '\n', rest_len);
    size_t rlen = nl2 ? (size_t) (nl2 - rest) : rest_len;
    const uint8_t *t = nl2 ? nl2 + 1 : rest + rest_len;
    size_t tlen = (size_t) (data + size - t);

    char *a = s_dup (data, alen), *r = s_dup (rest, rlen), *topic = s_dup (t, tlen);
    if (!a || !r || !topic)
        goto done;
    const char *why;
    bool a_ok = busp_pattern_check (a, alen, &why) == 0;
    bool r_ok = busp_pattern_check (r, rlen, &why) == 0;
    bool t_ok = busp_topic_check (topic, tlen, &why) == 0;
    if (busp_topic_check (a, alen, &why) == 0 && !a_ok)
        abort ();
    (void) busp_topic_is_system (a, alen);
    if (t_ok) {
        if (busp_pattern_check (topic, tlen, &why) != 0)
            abort ();
        if (!busp_pattern_match (topic, tlen, topic, tlen))
            abort ();
    }
    if (a_ok && r_ok) {
        bool covers = acl_pattern_covers (a, alen, r, rlen);
        if (acl_pattern_covers (r, rlen, r, rlen) == false)
            abort ();           //  a pattern covers itself
        if (t_ok && covers && busp_pattern_match (r, rlen, topic, tlen)
        &&  !busp_pattern_match (a, alen, topic, tlen))
            abort ();
    }
done:
    free (a);
    free (r);
    free (topic);
    return 0;
}
