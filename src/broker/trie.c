/*  trie.c — the routing index (see trie.h).

    One node per distinct pattern prefix.  A node has a '*' child, a '#'
    child and its literal children; the values stored at a node are the
    subscriptions whose pattern ends there.  Matching walks the topic's
    tokens once, following at each level the literal child for the token
    and the '*' child, and collecting every '#' child passed on the way
    ('#' is always last, so it matches whatever is left, even nothing).
    Because '#' is last and '*' takes exactly one token, each node is
    reached at most once per topic and each entry is visited at most once.

    Literal children sit in a per-node open-addressing table (linear
    probing, load <= 1/2, backward-shift deletion so removal leaves no
    tombstones), keyed by (bytes, length) with the hash cached in the child.
    The topic is split in place into (pointer, length, hash) triples on the
    stack, so a token's hash is computed once however many nodes look it up,
    and a match allocates nothing.  czmq's zhashx would need NUL-terminated
    keys, hence a copy of every token on every lookup; the table here is a
    few dozen lines.

    Recursion is bounded: a topic or pattern of at most 255 bytes has at
    most 128 tokens.                                                        */
#include "trie.h"
#include "topic.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS_MAX  ((BUSP_TOPIC_MAX + 1) / 2)

typedef struct node node_t;

struct node {
    node_t **kids;              /*  literal children, hash table or NULL    */
    uint32_t kids_cap;          /*  0 or a power of two                     */
    uint32_t nkids;
    node_t *star;               /*  child for a '*' token                   */
    node_t *hash;               /*  child for a '#' token                   */
    void **values;              /*  entries whose pattern ends here         */
    uint32_t nvalues;
    uint32_t values_cap;
    uint32_t hval;              /*  hash of token, for the parent's table   */
    uint8_t token_len;
    char token [];              /*  this node's token, not NUL-terminated   */
};

struct trie {
    node_t *root;
    size_t size;
    unsigned long long generation;
};

typedef struct {
    const char *data;
    uint32_t hval;
    uint8_t len;
} token_t;

/*  FNV-1a: tokens are short, and this is cheap and spreads them well.     */
static inline uint32_t
s_hash (const char *data, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t) data [i];
        h *= 16777619u;
    }
    return h;
}

/*  Split (s, len) at dots into tokens [].  Returns the token count, or 0
    when s is empty or too long to be a topic, which the caller's
    validation should already have ruled out.                               */
static size_t
s_tokenise (const char *s, size_t len, token_t *tokens)
{
    if (len == 0 || len > BUSP_TOPIC_MAX)
        return 0;
    size_t count = 0;
    const char *end = s + len;
    while (true) {
        const char *dot = memchr (s, '.', (size_t) (end - s));
        const char *stop = dot ? dot : end;
        assert (count < TOKENS_MAX);
        tokens [count].data = s;
        tokens [count].len = (uint8_t) (stop - s);
        tokens [count].hval = s_hash (s, (size_t) (stop - s));
        count++;
        if (!dot)
            break;
        s = dot + 1;
    }
    return count;
}

static inline bool
s_is_wild (const token_t *t, char wild)
{
    return t->len == 1 && t->data [0] == wild;
}

static node_t *
s_node_new (const token_t *t)
{
    size_t len = t ? t->len : 0;
    node_t *node = calloc (1, sizeof (node_t) + len);
    if (!node)
        return NULL;
    if (t) {
        memcpy (node->token, t->data, len);
        node->token_len = t->len;
        node->hval = t->hval;
    }
    return node;
}

static void
s_node_destroy (node_t *node)
{
    if (!node)
        return;
    for (uint32_t i = 0; i < node->kids_cap; i++)
        s_node_destroy (node->kids [i]);
    s_node_destroy (node->star);
    s_node_destroy (node->hash);
    free (node->kids);
    free (node->values);
    free (node);
}

static inline bool
s_node_is_empty (const node_t *node)
{
    return node->nvalues == 0 && node->nkids == 0 && !node->star && !node->hash;
}

/*  ------------------------------------------------------------------------
    Literal children table.                                                 */

static inline node_t *
s_kid_find (const node_t *node, const token_t *t)
{
    if (node->nkids == 0)
        return NULL;
    uint32_t mask = node->kids_cap - 1;
    for (uint32_t i = t->hval & mask; node->kids [i]; i = (i + 1) & mask) {
        const node_t *kid = node->kids [i];
        if (kid->hval == t->hval && kid->token_len == t->len
        &&  memcmp (kid->token, t->data, t->len) == 0)
            return node->kids [i];
    }
    return NULL;
}

static void
s_table_put (node_t **table, uint32_t cap, node_t *kid)
{
    uint32_t mask = cap - 1;
    uint32_t i = kid->hval & mask;
    while (table [i])
        i = (i + 1) & mask;
    table [i] = kid;
}

static int
s_kid_add (node_t *node, node_t *kid)
{
    if ((node->nkids + 1) * 2 > node->kids_cap) {
        uint32_t cap = node->kids_cap ? node->kids_cap * 2 : 4;
        node_t **table = calloc (cap, sizeof (node_t *));
        if (!table)
            return -ENOMEM;
        for (uint32_t i = 0; i < node->kids_cap; i++)
            if (node->kids [i])
                s_table_put (table, cap, node->kids [i]);
        free (node->kids);
        node->kids = table;
        node->kids_cap = cap;
    }
    s_table_put (node->kids, node->kids_cap, kid);
    node->nkids++;
    return 0;
}

static void
s_kid_remove (node_t *node, node_t *kid)
{
    assert (node->nkids > 0);
    uint32_t mask = node->kids_cap - 1;
    uint32_t hole = kid->hval & mask;
    while (node->kids [hole] != kid) {
        assert (node->kids [hole]);
        hole = (hole + 1) & mask;
    }
    /*  Backward-shift: pull later members of the probe run into the hole
        unless that would move one before its home slot.                   */
    for (uint32_t j = (hole + 1) & mask; node->kids [j]; j = (j + 1) & mask) {
        uint32_t home = node->kids [j]->hval & mask;
        bool stays = hole <= j ? (hole < home && home <= j)
                               : (hole < home || home <= j);
        if (stays)
            continue;
        node->kids [hole] = node->kids [j];
        hole = j;
    }
    node->kids [hole] = NULL;
    if (--node->nkids == 0) {
        free (node->kids);
        node->kids = NULL;
        node->kids_cap = 0;
    }
}

/*  Free the nodes at the end of path [0..depth] that hold nothing any more,
    deepest first; path [0] is the root and is never freed.                 */
static void
s_prune (node_t **path, size_t depth)
{
    for (size_t i = depth; i > 0; i--) {
        node_t *node = path [i];
        if (!s_node_is_empty (node))
            return;
        node_t *parent = path [i - 1];
        if (parent->star == node)
            parent->star = NULL;
        else
        if (parent->hash == node)
            parent->hash = NULL;
        else
            s_kid_remove (parent, node);
        s_node_destroy (node);
    }
}

/*  ------------------------------------------------------------------------
    Public API.                                                             */

trie_t *
trie_new (void)
{
    trie_t *self = calloc (1, sizeof (trie_t));
    if (!self)
        return NULL;
    self->root = s_node_new (NULL);
    if (!self->root) {
        free (self);
        return NULL;
    }
    return self;
}

void
trie_destroy (trie_t **self_p)
{
    assert (self_p);
    trie_t *self = *self_p;
    if (!self)
        return;
    s_node_destroy (self->root);
    free (self);
    *self_p = NULL;
}

int
trie_insert (trie_t *self, const char *pattern, size_t len, void *value)
{
    assert (self);
    assert (busp_pattern_check (pattern, len, NULL) == 0);
    token_t tokens [TOKENS_MAX];
    size_t count = s_tokenise (pattern, len, tokens);
    assert (count > 0);

    node_t *path [TOKENS_MAX + 1];
    path [0] = self->root;
    int rc = 0;
    size_t depth = 0;
    while (depth < count) {
        node_t *node = path [depth];
        const token_t *t = &tokens [depth];
        node_t **wild = s_is_wild (t, '*') ? &node->star
                      : s_is_wild (t, '#') ? &node->hash : NULL;
        node_t *kid = wild ? *wild : s_kid_find (node, t);
        if (!kid) {
            kid = s_node_new (t);
            if (!kid) {
                rc = -ENOMEM;
                break;
            }
            if (wild)
                *wild = kid;
            else
            if ((rc = s_kid_add (node, kid)) != 0) {
                s_node_destroy (kid);
                break;
            }
        }
        path [++depth] = kid;
    }
    if (rc == 0) {
        node_t *node = path [depth];
        for (uint32_t i = 0; i < node->nvalues; i++)
            if (node->values [i] == value)
                return -EEXIST;
        if (node->nvalues == node->values_cap) {
            uint32_t cap = node->values_cap ? node->values_cap * 2 : 2;
            void **values = realloc (node->values, cap * sizeof (void *));
            if (values) {
                node->values = values;
                node->values_cap = cap;
            }
            else
                rc = -ENOMEM;
        }
        if (rc == 0) {
            node->values [node->nvalues++] = value;
            self->size++;
            self->generation++;
            return 0;
        }
    }
    /*  Out of memory: undo the nodes this call created, so a failed insert
        leaves the trie as it found it.                                    */
    s_prune (path, depth);
    return rc;
}

int
trie_remove (trie_t *self, const char *pattern, size_t len, void *value)
{
    assert (self);
    token_t tokens [TOKENS_MAX];
    size_t count = s_tokenise (pattern, len, tokens);
    if (count == 0)
        return -ENOENT;

    node_t *path [TOKENS_MAX + 1];
    path [0] = self->root;
    for (size_t depth = 0; depth < count; depth++) {
        node_t *node = path [depth];
        const token_t *t = &tokens [depth];
        node_t *kid = s_is_wild (t, '*') ? node->star
                    : s_is_wild (t, '#') ? node->hash
                    : s_kid_find (node, t);
        if (!kid)
            return -ENOENT;
        path [depth + 1] = kid;
    }
    node_t *node = path [count];
    for (uint32_t i = 0; i < node->nvalues; i++)
        if (node->values [i] == value) {
            /*  Keep insertion order: the broker visits subscriptions to
                one pattern in the order they were made.                   */
            memmove (node->values + i, node->values + i + 1,
                     (node->nvalues - i - 1) * sizeof (void *));
            node->nvalues--;
            if (node->nvalues == 0) {
                free (node->values);
                node->values = NULL;
                node->values_cap = 0;
            }
            self->size--;
            self->generation++;
            s_prune (path, count);
            return 0;
        }
    return -ENOENT;
}

typedef struct {
    const token_t *tokens;
    size_t count;
    trie_visit_fn *fn;
    void *arg;
    size_t visited;
} match_t;

static inline void
s_emit (match_t *m, const node_t *node)
{
    if (m->fn)
        for (uint32_t i = 0; i < node->nvalues; i++)
            m->fn (node->values [i], m->arg);
    m->visited += node->nvalues;
}

/*  node has consumed the first depth tokens of the topic.                  */
static void
s_match (match_t *m, const node_t *node, size_t depth)
{
    while (true) {
        if (node->hash)
            s_emit (m, node->hash);
        if (depth == m->count) {
            s_emit (m, node);
            return;
        }
        const node_t *kid = s_kid_find (node, &m->tokens [depth]);
        depth++;
        if (node->star) {
            if (kid)
                s_match (m, kid, depth);
            node = node->star;
        }
        else
        if (kid)
            node = kid;
        else
            return;
    }
}

size_t
trie_match (trie_t *self, const char *topic, size_t len,
            trie_visit_fn *fn, void *arg)
{
    assert (self);
    token_t tokens [TOKENS_MAX];
    size_t count = s_tokenise (topic, len, tokens);
    if (count == 0)
        return 0;
    match_t m = { tokens, count, fn, arg, 0 };
    const node_t *root = self->root;

    /*  The first level is walked here because of the '$' rule: a pattern
        starting with '*' or '#' must not see the broker's own topics.     */
    bool system = busp_topic_is_system (topic, len);
    if (root->hash && !system)
        s_emit (&m, root->hash);
    const node_t *kid = s_kid_find (root, &tokens [0]);
    if (kid)
        s_match (&m, kid, 1);
    if (root->star && !system)
        s_match (&m, root->star, 1);
    return m.visited;
}

unsigned long long
trie_generation (const trie_t *self)
{
    assert (self);
    return self->generation;
}

size_t
trie_size (trie_t *self)
{
    assert (self);
    return self->size;
}
