/*  fuzz_config.c — libFuzzer target for the configuration file parser.

    config_load_file reads a path, so the input goes into a memfd and is
    read back through /proc/self/fd: the parser runs exactly as for a real
    file (comment blanking, line numbers, every key's checks).  A refusal
    must say why; an accepted file is then checked across fields.            */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path [64];
    if (fd < 0) {
        fd = memfd_create ("busd-fuzz-config", 0);
        if (fd < 0)
            abort ();
        snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate (fd, 0) != 0 || pwrite (fd, data, size, 0) != (ssize_t) size)
        abort ();
    config_t *config = config_new ();
    if (!config)
        return 0;
    char errors [4096];
    int rc = config_load_file (config, path, errors, sizeof errors);
    if (rc != 0 && errors [0] == 0)
        abort ();
    if (rc == 0)
        (void) config_validate (config, errors, sizeof errors);
    config_destroy (&config);
    if (config)
        abort ();
    return 0;
}
