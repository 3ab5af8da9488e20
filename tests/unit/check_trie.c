/*  check_trie.c — unit tests for the broker's routing trie (src/broker/trie.c).

    The trie must agree with busp_pattern_match, the plain reference
    matcher, on every pattern and topic; besides hand-picked cases, a seeded
    random cross-check compares the two over thousands of topics drawn from
    a small alphabet (so wildcards, '$' topics and shared prefixes collide
    often).  Values are small integers cast to pointers, so a visit can be
    recorded in a counter array and "exactly once" checked directly.       */
#include "trie.h"
#include "topic.h"

#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V(n) ((void *) (uintptr_t) (n))

/*  What a trie_match call visited.                                        */
typedef struct {
    size_t calls;
    size_t count [20000];           /*  visits per value, by value          */
    uintptr_t order [20000];        /*  values in visiting order            */
} visits_t;

/*  ck_assert reports progress to the runner on every call, which costs a
    pipe write in fork mode: hot loops assert through this instead.         */
#define REQUIRE(cond, ...) do { if (!(cond)) ck_abort_msg (__VA_ARGS__); } while (0)

static void
s_record (void *value, void *arg)
{
    visits_t *v = arg;
    uintptr_t n = (uintptr_t) value;
    REQUIRE (n < sizeof v->count / sizeof v->count [0], "value %zu out of range", (size_t) n);
    v->count [n]++;
    if (v->calls < sizeof v->order / sizeof v->order [0])
        v->order [v->calls] = n;
    v->calls++;
}

static visits_t *
s_visits_new (void)
{
    visits_t *v = calloc (1, sizeof (visits_t));
    ck_assert_ptr_nonnull (v);
    return v;
}

/*  Match topic, recording into v (which must come from s_visits_new).
    Only the counters the previous match set are cleared, so the random
    cross-check does not spend its time in memset.                          */
static size_t
s_match (trie_t *trie, const char *topic, visits_t *v)
{
    if (v->calls <= sizeof v->order / sizeof v->order [0])
        for (size_t k = 0; k < v->calls; k++)
            v->count [v->order [k]] = 0;
    else
        memset (v->count, 0, sizeof v->count);
    v->calls = 0;
    size_t n = trie_match (trie, topic, strlen (topic), s_record, v);
    REQUIRE (n == v->calls, "'%s': returned %zu after %zu calls", topic, n, v->calls);
    return n;
}

static int
s_insert (trie_t *trie, const char *pattern, uintptr_t value)
{
    ck_assert_int_eq (busp_pattern_check (pattern, strlen (pattern), NULL), 0);
    return trie_insert (trie, pattern, strlen (pattern), V (value));
}

static int
s_remove (trie_t *trie, const char *pattern, uintptr_t value)
{
    return trie_remove (trie, pattern, strlen (pattern), V (value));
}

/*  Exactly the values in want [0..n) were visited, each as many times as
    it is listed (a value stored under two matching patterns is listed twice). */
static void
s_assert_visited (trie_t *trie, const char *topic, const uintptr_t *want, size_t n)
{
    visits_t *v = s_visits_new ();
    size_t got = s_match (trie, topic, v);
    ck_assert_msg (got == n, "'%s': %zu matches, expected %zu", topic, got, n);
    for (size_t i = 0; i < n; i++) {
        size_t times = 0;
        for (size_t j = 0; j < n; j++)
            times += want [j] == want [i];
        ck_assert_msg (v->count [want [i]] == times,
                       "'%s': value %zu visited %zu times, expected %zu",
                       topic, (size_t) want [i], v->count [want [i]], times);
    }
    free (v);
}

#define VISITED(trie, topic, ...) do { \
    const uintptr_t want_ [] = { __VA_ARGS__ }; \
    s_assert_visited (trie, topic, want_, sizeof want_ / sizeof want_ [0]); \
} while (0)
#define NOTHING(trie, topic) \
    ck_assert_uint_eq (trie_match (trie, topic, strlen (topic), NULL, NULL), 0)

/*  ------------------------------------------------------------------------ */

START_TEST (test_new_destroy)
{
    trie_t *trie = trie_new ();
    ck_assert_ptr_nonnull (trie);
    ck_assert_uint_eq (trie_size (trie), 0);
    NOTHING (trie, "a");
    trie_destroy (&trie);
    ck_assert_ptr_null (trie);
    trie_destroy (&trie);           /*  a second destroy is harmless        */
}
END_TEST

START_TEST (test_literal)
{
    trie_t *trie = trie_new ();
    ck_assert_int_eq (s_insert (trie, "user.created", 1), 0);
    ck_assert_int_eq (s_insert (trie, "user.deleted", 2), 0);
    ck_assert_int_eq (s_insert (trie, "user", 3), 0);
    ck_assert_uint_eq (trie_size (trie), 3);
    VISITED (trie, "user.created", 1);
    VISITED (trie, "user.deleted", 2);
    VISITED (trie, "user", 3);
    NOTHING (trie, "user.created.v2");
    NOTHING (trie, "user.create");
    NOTHING (trie, "users");
    NOTHING (trie, "created");
    /*  Only the length counts, not a NUL.                                 */
    ck_assert_uint_eq (trie_match (trie, "user.created", 4, NULL, NULL), 1);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_eexist_enoent)
{
    trie_t *trie = trie_new ();
    ck_assert_int_eq (s_insert (trie, "a.b", 1), 0);
    ck_assert_int_eq (s_insert (trie, "a.b", 1), -EEXIST);
    ck_assert_int_eq (s_insert (trie, "a.b", 2), 0);     /*  another value   */
    ck_assert_int_eq (s_insert (trie, "a.*", 1), 0);     /*  another pattern */
    ck_assert_int_eq (s_insert (trie, "a.#", 1), 0);
    ck_assert_uint_eq (trie_size (trie), 4);
    /*  One value under three matching patterns: one visit per entry.     */
    visits_t *v = s_visits_new ();
    ck_assert_uint_eq (s_match (trie, "a.b", v), 4);
    ck_assert_uint_eq (v->count [1], 3);
    ck_assert_uint_eq (v->count [2], 1);
    VISITED (trie, "a.c", 1, 1);            /*  a.* and a.#                 */

    ck_assert_int_eq (s_remove (trie, "a.b", 3), -ENOENT);   /*  wrong value */
    ck_assert_int_eq (s_remove (trie, "a.c", 1), -ENOENT);   /*  no pattern  */
    ck_assert_int_eq (s_remove (trie, "a", 1), -ENOENT);     /*  inner node  */
    ck_assert_int_eq (s_remove (trie, "a.b.c", 1), -ENOENT); /*  too deep    */
    ck_assert_int_eq (s_remove (trie, "*.b", 1), -ENOENT);
    ck_assert_int_eq (s_remove (trie, "#", 1), -ENOENT);
    ck_assert_uint_eq (trie_size (trie), 4);

    ck_assert_int_eq (s_remove (trie, "a.b", 1), 0);
    ck_assert_int_eq (s_remove (trie, "a.b", 1), -ENOENT);
    ck_assert_uint_eq (trie_size (trie), 3);
    ck_assert_uint_eq (s_match (trie, "a.b", v), 3);
    ck_assert_uint_eq (v->count [1], 2);
    /*  Re-inserting after removal works.                                  */
    ck_assert_int_eq (s_insert (trie, "a.b", 1), 0);
    ck_assert_uint_eq (trie_size (trie), 4);
    free (v);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_star)
{
    trie_t *trie = trie_new ();
    ck_assert_int_eq (s_insert (trie, "user.*", 1), 0);
    ck_assert_int_eq (s_insert (trie, "*.created", 2), 0);
    ck_assert_int_eq (s_insert (trie, "*", 3), 0);
    ck_assert_int_eq (s_insert (trie, "*.*", 4), 0);
    ck_assert_int_eq (s_insert (trie, "a.*.c", 5), 0);
    VISITED (trie, "user.created", 1, 2, 4);
    VISITED (trie, "user", 3);
    VISITED (trie, "order.created", 2, 4);
    NOTHING (trie, "user.created.v2");
    VISITED (trie, "a.b.c", 5);
    VISITED (trie, "a.created", 2, 4);
    VISITED (trie, "a.c", 4);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_hash)
{
    trie_t *trie = trie_new ();
    ck_assert_int_eq (s_insert (trie, "user.#", 1), 0);
    ck_assert_int_eq (s_insert (trie, "#", 2), 0);
    ck_assert_int_eq (s_insert (trie, "*.#", 3), 0);
    ck_assert_int_eq (s_insert (trie, "user.*.#", 4), 0);
    ck_assert_int_eq (s_insert (trie, "user.created.#", 5), 0);
    /*  '#' matches zero tokens: user.# matches user.                      */
    VISITED (trie, "user", 1, 2, 3);
    VISITED (trie, "user.created", 1, 2, 3, 4, 5);
    VISITED (trie, "user.created.v2", 1, 2, 3, 4, 5);
    VISITED (trie, "user.deleted.v2.x", 1, 2, 3, 4);
    VISITED (trie, "users", 2, 3);
    VISITED (trie, "a.b.c.d.e.f.g", 2, 3);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_system_topics)
{
    trie_t *trie = trie_new ();
    ck_assert_int_eq (s_insert (trie, "#", 1), 0);
    ck_assert_int_eq (s_insert (trie, "*", 2), 0);
    ck_assert_int_eq (s_insert (trie, "*.stats", 3), 0);
    ck_assert_int_eq (s_insert (trie, "*.#", 4), 0);
    ck_assert_int_eq (s_insert (trie, "$sys.stats", 5), 0);
    ck_assert_int_eq (s_insert (trie, "$sys.*", 6), 0);
    ck_assert_int_eq (s_insert (trie, "$dlq.#", 7), 0);
    ck_assert_int_eq (s_insert (trie, "user.*", 8), 0);
    ck_assert_int_eq (s_insert (trie, "user.#", 9), 0);
    VISITED (trie, "$sys.stats", 5, 6);
    NOTHING (trie, "$sys");
    VISITED (trie, "$dlq", 7);
    VISITED (trie, "$dlq.user.created", 7);
    /*  The rule is about the first token only.                            */
    VISITED (trie, "user.$x", 1, 4, 8, 9);
    VISITED (trie, "x.stats", 1, 3, 4);
    VISITED (trie, "a$", 1, 2, 4);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_many_values_one_pattern)
{
    trie_t *trie = trie_new ();
    for (uintptr_t i = 0; i < 5000; i++)
        ck_assert_int_eq (s_insert (trie, "chat.#", i), 0);
    ck_assert_int_eq (s_insert (trie, "chat.#", 4999), -EEXIST);
    ck_assert_uint_eq (trie_size (trie), 5000);
    visits_t *v = s_visits_new ();
    ck_assert_uint_eq (s_match (trie, "chat.room42.typing", v), 5000);
    for (uintptr_t i = 0; i < 5000; i++) {
        ck_assert_uint_eq (v->count [i], 1);
        ck_assert_uint_eq (v->order [i], i);       /*  insertion order     */
    }
    /*  Remove every third; the rest keep their order.                     */
    for (uintptr_t i = 0; i < 5000; i += 3)
        ck_assert_int_eq (s_remove (trie, "chat.#", i), 0);
    size_t n = s_match (trie, "chat", v);
    ck_assert_uint_eq (n, trie_size (trie));
    uintptr_t prev = 0;
    for (size_t k = 0; k < n; k++) {
        ck_assert (v->order [k] % 3 != 0);
        ck_assert (k == 0 || v->order [k] > prev);
        prev = v->order [k];
    }
    for (uintptr_t i = 0; i < 5000; i++)
        if (i % 3)
            ck_assert_int_eq (s_remove (trie, "chat.#", i), 0);
    ck_assert_uint_eq (trie_size (trie), 0);
    NOTHING (trie, "chat");
    free (v);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_pruning)
{
    /*  Removing everything returns the heap to where it was: the nodes,
        child tables and value arrays left empty are freed at once, not at
        trie_destroy.  glibc counts chunks parked in its per-thread cache as
        in use, so "where it was" is within a few pages; a round of 4000
        entries that were not pruned would leave hundreds of kilobytes.
        (Under valgrind or ASan mallinfo2 reports nothing and this degrades
        to the functional checks.)                                         */
    trie_t *trie = trie_new ();
    struct mallinfo2 before = mallinfo2 ();
    char pattern [64];
    for (int round = 0; round < 4; round++) {
        for (uintptr_t i = 0; i < 2000; i++) {
            snprintf (pattern, sizeof pattern, "p%zu.%s.q%zu.r.s.t",
                      (size_t) i % 37, i % 2 ? "*" : "mid", (size_t) i);
            ck_assert_int_eq (s_insert (trie, pattern, i), 0);
            snprintf (pattern, sizeof pattern, "p%zu.#", (size_t) i);
            ck_assert_int_eq (s_insert (trie, pattern, i), 0);
        }
        ck_assert_uint_eq (trie_size (trie), 4000);
        /*  p5.*.q5.r.s.t and p5.# both hold value 5.                      */
        VISITED (trie, "p5.x.q5.r.s.t", 5, 5);
        for (uintptr_t i = 0; i < 2000; i++) {
            snprintf (pattern, sizeof pattern, "p%zu.%s.q%zu.r.s.t",
                      (size_t) i % 37, i % 2 ? "*" : "mid", (size_t) i);
            ck_assert_int_eq (s_remove (trie, pattern, i), 0);
            snprintf (pattern, sizeof pattern, "p%zu.#", (size_t) i);
            ck_assert_int_eq (s_remove (trie, pattern, i), 0);
        }
        ck_assert_uint_eq (trie_size (trie), 0);
        NOTHING (trie, "p5.x.q5.r.s.t");
        NOTHING (trie, "p5");
        struct mallinfo2 after = mallinfo2 ();
        ck_assert_uint_lt (after.uordblks, before.uordblks + 32768);
    }
    /*  A prefix of a removed pattern stays valid, and vice versa.         */
    ck_assert_int_eq (s_insert (trie, "a.b.c", 1), 0);
    ck_assert_int_eq (s_insert (trie, "a", 2), 0);
    ck_assert_int_eq (s_remove (trie, "a.b.c", 1), 0);
    VISITED (trie, "a", 2);
    NOTHING (trie, "a.b.c");
    ck_assert_int_eq (s_insert (trie, "a.b.c", 1), 0);
    ck_assert_int_eq (s_remove (trie, "a", 2), 0);
    VISITED (trie, "a.b.c", 1);
    NOTHING (trie, "a");
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_wide_node)
{
    /*  Thousands of literal children under one node, removed in an order
        unrelated to insertion, to exercise table growth and deletion.    */
    trie_t *trie = trie_new ();
    char pattern [32];
    for (uintptr_t i = 0; i < 3000; i++) {
        snprintf (pattern, sizeof pattern, "k%zu", (size_t) i);
        ck_assert_int_eq (s_insert (trie, pattern, i), 0);
    }
    for (uintptr_t i = 0; i < 3000; i++) {
        snprintf (pattern, sizeof pattern, "k%zu", (size_t) i);
        VISITED (trie, pattern, i);
    }
    static bool gone [3000];
    for (uintptr_t k = 0; k < 3000; k++) {
        uintptr_t i = (k * 7919) % 3000;
        snprintf (pattern, sizeof pattern, "k%zu", (size_t) i);
        ck_assert_int_eq (s_remove (trie, pattern, i), 0);
        gone [i] = true;
        NOTHING (trie, pattern);
        if (k % 97 == 0)
            for (uintptr_t j = 0; j < 3000; j++) {
                snprintf (pattern, sizeof pattern, "k%zu", (size_t) j);
                ck_assert_uint_eq (trie_match (trie, pattern, strlen (pattern), NULL, NULL),
                                   (gone [j] ? 0 : 1));
            }
    }
    ck_assert_uint_eq (trie_size (trie), 0);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_ten_thousand_patterns)
{
    trie_t *trie = trie_new ();
    char pattern [64];
    for (uintptr_t i = 0; i < 9990; i++) {
        snprintf (pattern, sizeof pattern, "user.%zu.created", (size_t) i);
        ck_assert_int_eq (s_insert (trie, pattern, i), 0);
    }
    static const char *const wild [] = {
        "user.*.created",   /*  9990: match                                 */
        "user.#",           /*  9991: match                                 */
        "#",                /*  9992: match                                 */
        "*.42.*",           /*  9993: match                                 */
        "user.42.#",        /*  9994: match                                 */
        "user.43.#",        /*  9995                                        */
        "order.#",          /*  9996                                        */
        "$sys.#",           /*  9997                                        */
        "*.*",              /*  9998                                        */
        "user.*.deleted"    /*  9999                                        */
    };
    for (uintptr_t i = 0; i < 10; i++)
        ck_assert_int_eq (s_insert (trie, wild [i], 9990 + i), 0);
    ck_assert_uint_eq (trie_size (trie), 10000);
    VISITED (trie, "user.42.created", 42, 9990, 9991, 9992, 9993, 9994);
    VISITED (trie, "user.9989.created", 9989, 9990, 9991, 9992);
    VISITED (trie, "user.9990.created", 9990, 9991, 9992);
    VISITED (trie, "user.7.deleted", 9991, 9992, 9999);
    VISITED (trie, "order.1", 9992, 9996, 9998);
    VISITED (trie, "$sys.stats", 9997);
    trie_destroy (&trie);
}
END_TEST

START_TEST (test_deepest)
{
    /*  128 tokens, the most a 255-byte topic has.                         */
    char topic [256], stars [256], hashes [256];
    for (size_t i = 0; i < 255; i++) {
        topic [i] = i % 2 ? '.' : 'a';
        stars [i] = i % 2 ? '.' : '*';
        hashes [i] = i % 2 ? '.' : 'a';
    }
    topic [255] = stars [255] = hashes [255] = '\0';
    hashes [254] = '#';
    trie_t *trie = trie_new ();
    ck_assert_int_eq (s_insert (trie, topic, 1), 0);
    ck_assert_int_eq (s_insert (trie, stars, 2), 0);
    ck_assert_int_eq (s_insert (trie, hashes, 3), 0);
    VISITED (trie, topic, 1, 2, 3);
    topic [253] = '\0';             /*  127 tokens: only the '#' pattern   */
    VISITED (trie, topic, 3);
    topic [251] = '\0';             /*  126 tokens: nothing                */
    NOTHING (trie, topic);
    ck_assert_int_eq (s_remove (trie, stars, 2), 0);
    ck_assert_int_eq (s_remove (trie, hashes, 3), 0);
    trie_destroy (&trie);
}
END_TEST

/*  ------------------------------------------------------------------------
    Randomised cross-check against busp_pattern_match.                      */

static uint64_t s_rng = 0x9E3779B97F4A7C15ULL;

static uint32_t
s_rand (uint32_t bound)
{
    /*  xorshift64*: fixed seed, same sequence on every machine.           */
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return (uint32_t) ((s_rng * 0x2545F4914F6CDD1DULL) >> 32) % bound;
}

/*  A random topic (wild == false) or pattern of 1..max_tokens tokens over
    a small alphabet, so that matches are frequent.                         */
static void
s_random_text (char *buf, size_t size, bool wild, int max_tokens)
{
    static const char *const literals [] = { "a", "b", "c", "ab", "$s", "a$" };
    int tokens = 1 + (int) s_rand ((uint32_t) max_tokens);
    size_t len = 0;
    for (int t = 0; t < tokens; t++) {
        const char *token;
        uint32_t pick = s_rand (wild ? 9 : 6);
        if (pick < 6)
            token = literals [pick];
        else
        if (pick < 8)
            token = "*";
        else
            token = t == tokens - 1 ? "#" : "*";
        /*  '$s' is most interesting first; elsewhere it is just a token.  */
        if (t > 0 && pick == 4 && s_rand (2))
            token = "c";
        int n = snprintf (buf + len, size - len, "%s%s", t ? "." : "", token);
        REQUIRE (n > 0, "snprintf");
        len += (size_t) n;
        REQUIRE (len < size, "text too long");
    }
}

#define NPATTERNS 600
#define NTOPICS   3000

START_TEST (test_random_cross_check)
{
    static char patterns [NPATTERNS][64];
    static bool live [NPATTERNS];
    trie_t *trie = trie_new ();
    for (uintptr_t i = 0; i < NPATTERNS; i++) {
        s_random_text (patterns [i], sizeof patterns [i], true, 5);
        ck_assert_int_eq (s_insert (trie, patterns [i], i), 0);
        live [i] = true;
    }
    visits_t *v = s_visits_new ();
    char topic [64];
    for (int phase = 0; phase < 3; phase++) {
        size_t total = 0;
        for (int k = 0; k < NTOPICS; k++) {
            s_random_text (topic, sizeof topic, false, 6);
            REQUIRE (busp_topic_check (topic, strlen (topic), NULL) == 0, "'%s'", topic);
            size_t n = s_match (trie, topic, v);
            size_t expect = 0;
            for (uintptr_t i = 0; i < NPATTERNS; i++) {
                bool want = live [i]
                         && busp_pattern_match (patterns [i], strlen (patterns [i]),
                                                topic, strlen (topic));
                REQUIRE (v->count [i] == (want ? 1u : 0u),
                         "pattern '%s' vs topic '%s': trie %zu, reference %d",
                         patterns [i], topic, v->count [i], want);
                expect += want;
            }
            REQUIRE (n == expect, "'%s': %zu matches, expected %zu", topic, n, expect);
            total += n;
        }
        /*  The alphabet is small enough that matches are common.         */
        ck_assert_uint_gt (total, NTOPICS);
        /*  Then remove a random half of what is left, and check again.   */
        for (uintptr_t i = 0; i < NPATTERNS; i++)
            if (live [i] && s_rand (2)) {
                ck_assert_int_eq (s_remove (trie, patterns [i], i), 0);
                live [i] = false;
            }
        size_t size = 0;
        for (uintptr_t i = 0; i < NPATTERNS; i++)
            size += live [i];
        ck_assert_uint_eq (trie_size (trie), size);
    }
    free (v);
    trie_destroy (&trie);
}
END_TEST

/*  route.c keeps a match result while trie_generation is unchanged: every
    change that can alter a match must move it, and nothing else may.      */
START_TEST (test_generation)
{
    trie_t *trie = trie_new ();
    int a, b;
    unsigned long long g0 = trie_generation (trie);
    ck_assert_int_eq (trie_insert (trie, "a.*", 3, &a), 0);
    unsigned long long g1 = trie_generation (trie);
    ck_assert (g1 != g0);
    ck_assert_int_eq (trie_insert (trie, "a.*", 3, &a), -EEXIST);
    ck_assert (trie_generation (trie) == g1);
    trie_match (trie, "a.b", 3, NULL, NULL);
    ck_assert (trie_generation (trie) == g1);
    ck_assert_int_eq (trie_remove (trie, "a.*", 3, &b), -ENOENT);
    ck_assert (trie_generation (trie) == g1);
    ck_assert_int_eq (trie_insert (trie, "a.*", 3, &b), 0);
    unsigned long long g2 = trie_generation (trie);
    ck_assert (g2 != g1);
    ck_assert_int_eq (trie_remove (trie, "a.*", 3, &a), 0);
    ck_assert (trie_generation (trie) != g2);
    trie_destroy (&trie);
}
END_TEST

static Suite *
s_suite (void)
{
    Suite *suite = suite_create ("trie");
    TCase *tc = tcase_create ("basics");
    tcase_add_test (tc, test_new_destroy);
    tcase_add_test (tc, test_literal);
    tcase_add_test (tc, test_eexist_enoent);
    tcase_add_test (tc, test_star);
    tcase_add_test (tc, test_hash);
    tcase_add_test (tc, test_system_topics);
    tcase_add_test (tc, test_deepest);
    suite_add_tcase (suite, tc);

    tc = tcase_create ("scale");
    tcase_add_test (tc, test_many_values_one_pattern);
    tcase_add_test (tc, test_pruning);
    tcase_add_test (tc, test_wide_node);
    tcase_add_test (tc, test_ten_thousand_patterns);
    tcase_add_test (tc, test_random_cross_check);
    tcase_add_test (tc, test_generation);
    suite_add_tcase (suite, tc);
    return suite;
}

int
main (void)
{
    SRunner *runner = srunner_create (s_suite ());
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
