/*  loader.h — loading a plugin shared object and checking its ABI.

    A module is one dlopen of one file.  It keeps a copy of the plugin's
    descriptor, zero-extended to the struct this host knows, so a plugin
    built for an older minor reads as "that callback is absent", never as
    garbage past the end of its struct.  The file's identity (device, inode,
    size, mtime) is remembered so a reload can tell "same entry, new build"
    and load the new code beside the old one (see plugin_module_load).       */
#ifndef BUSD_PLUGIN_LOADER_H_INCLUDED
#define BUSD_PLUGIN_LOADER_H_INCLUDED

#include "busd/plugin.h"
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    char *path;
    void *handle;
    busd_plugin_t desc;         /*  copy; name/version/description never NULL */
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
} plugin_module_t;

/*  dlopen (RTLD_NOW | RTLD_LOCAL) path, find busd_plugin_entry, check the
    descriptor.  name is the configured plugin name and host_name the
    program ("busd"), both for messages.  When fresh is true the file is
    opened through /proc/self/fd so the dynamic loader maps it again even if
    an older build of the same path is still loaded (its name would match
    and dlopen would return the old code).  Returns NULL with err set to a
    message naming the plugin, the file and what is wrong.                   */
plugin_module_t *plugin_module_load (const char *name, const char *path, const char *host_name,
                                     bool fresh, char *err, size_t err_size);

/*  dlclose and free.  Only once no thread runs the module's code.          */
void plugin_module_destroy (plugin_module_t **self_p);

/*  True when path still names the file this module was loaded from.        */
bool plugin_module_same_file (const plugin_module_t *self, const char *path);

#endif
