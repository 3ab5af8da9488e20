/*  fuzz_acl.c — libFuzzer target for the ACL file parser and its checks.

    Any text: the parser accepts it or names file:line for what is wrong.
    An accepted ACL is queried with names and topics taken from the input
    itself, so the checks run over the rules the fuzzer wrote.              */
#include "acl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = malloc (size ? size : 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    acl_t *acl = NULL;
    char errors [2048];
    int rc = acl_parse (text, size, "fuzz.acl", &acl, errors, sizeof errors);
    if (rc != 0 && (acl || errors [0] == 0))
        abort ();
    if (rc == 0) {
        //  Query with every word of the input as identity and as topic.
        char why [512];
        const char *p = text, *end = text + size;
        char word [300];
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
                p++;
            size_t n = 0;
            while (p < end && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') {
                if (n < sizeof word - 1)
                    word [n++] = *p;
                p++;
            }
            word [n] = 0;
            if (n == 0)
                continue;
            (void) acl_may_publish (acl, word, word, n, why, sizeof why);
            (void) acl_may_subscribe (acl, word, word, n, why, sizeof why);
            (void) acl_may_join (acl, word, word, why, sizeof why);
            (void) acl_may_ctl (acl, word, word, why, sizeof why);
            (void) acl_may_ctl (acl, ACL_ANONYMOUS, "stats", NULL, 0);
        }
        acl_destroy (&acl);
    }
    free (text);
    return 0;
}
