/*  fuzz_subopts.c — libFuzzer target for SUB options (PROTOCOL §6).

    Any bytes as the SUB body: subopts_parse either fills the options or
    refuses with a message; values it accepts must be in their ranges.       */
#include "broker.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static config_t *s_config;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (!s_config)
        s_config = config_new ();
    char *body = malloc (size ? size : 1);
    if (!body)
        return 0;
    memcpy (body, data, size);
    subopts_t opts;
    char err [256] = "";
    int rc = subopts_parse (&opts, s_config, body, size, err, sizeof err);
    if (rc != 0 && err [0] == 0)
        abort ();               //  a refusal names what was wrong
    if (rc == 0 && (opts.queue_limit == 0 || opts.max_deliver == 0))
        abort ();
    free (body);
    return 0;
}
