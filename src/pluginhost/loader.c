/*  loader.c — dlopen and the ABI checks (see loader.h).                   */
#include "loader.h"
#include "instance.h"
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int64_t
s_mtime_ns (const struct stat *st)
{
    return (int64_t) st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec;
}

plugin_module_t *
plugin_module_load (const char *name, const char *path, const char *host_name, bool fresh,
                    char *err, size_t err_size)
{
    struct stat st;
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat (fd, &st)) {
        snprintf (err, err_size, "plugin '%s': cannot load %s: %s", name, path, strerror (errno));
        if (fd >= 0)
            close (fd);
        return NULL;
    }
    char proc_path [64];
    snprintf (proc_path, sizeof proc_path, "/proc/self/fd/%d", fd);
    dlerror ();
    void *handle = dlopen (fresh ? proc_path : path, RTLD_NOW | RTLD_LOCAL);
    close (fd);
    if (!handle) {
        const char *why = dlerror ();
        snprintf (err, err_size, "plugin '%s': cannot load %s: %s", name, path,
                  why ? why : "unknown dlopen error");
        return NULL;
    }
    //  Through a data pointer: ISO C has no function/object pointer cast,
    //  POSIX guarantees this one works.
    busd_plugin_entry_fn *entry = NULL;
    void *symbol = dlsym (handle, BUSD_PLUGIN_ENTRY_SYMBOL);
    memcpy (&entry, &symbol, sizeof entry);
    if (!entry) {
        snprintf (err, err_size, "plugin '%s': %s is not a busd plugin: it does not export %s "
                  "(declare it with BUSD_PLUGIN_DECLARE and build with -fvisibility=hidden)",
                  name, path, BUSD_PLUGIN_ENTRY_SYMBOL);
        dlclose (handle);
        return NULL;
    }
    const busd_plugin_t *desc = entry (plugin_host_table ());
    const char *problem = NULL;
    char why [256];
    if (!desc)
        problem = "its " BUSD_PLUGIN_ENTRY_SYMBOL " returned no descriptor";
    else
    if (desc->abi_major != BUSD_PLUGIN_ABI_MAJOR || desc->abi_minor > BUSD_PLUGIN_ABI_MINOR) {
        snprintf (why, sizeof why, "built for plugin ABI %u.%u, this %s speaks %u.%u",
                  desc->abi_major, desc->abi_minor, host_name,
                  BUSD_PLUGIN_ABI_MAJOR, BUSD_PLUGIN_ABI_MINOR);
        problem = why;
    }
    else
    if (desc->size < offsetof (busd_plugin_t, tick_ms) + sizeof desc->tick_ms) {
        //  Every field of ABI 1.0 must be there; later minors only append.
        snprintf (why, sizeof why, "its descriptor is %u bytes, ABI %u.0 needs at least %zu "
                  "(was it built with BUSD_PLUGIN_HEADER?)", desc->size, BUSD_PLUGIN_ABI_MAJOR,
                  offsetof (busd_plugin_t, tick_ms) + sizeof desc->tick_ms);
        problem = why;
    }
    else
    if (!desc->on_event || !desc->fini)
        problem = "its descriptor lacks on_event or fini (both are required)";
    if (problem) {
        snprintf (err, err_size, "plugin '%s': %s: %s", name, path, problem);
        dlclose (handle);
        return NULL;
    }
    plugin_module_t *self = calloc (1, sizeof (plugin_module_t));
    if (!self || !(self->path = strdup (path))) {
        free (self);
        snprintf (err, err_size, "plugin '%s': out of memory", name);
        dlclose (handle);
        return NULL;
    }
    self->handle = handle;
    memcpy (&self->desc, desc, desc->size < sizeof self->desc ? desc->size : sizeof self->desc);
    if (!self->desc.name)
        self->desc.name = "";
    if (!self->desc.version)
        self->desc.version = "";
    if (!self->desc.description)
        self->desc.description = "";
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->size = st.st_size;
    self->mtime_ns = s_mtime_ns (&st);
    return self;
}

void
plugin_module_destroy (plugin_module_t **self_p)
{
    plugin_module_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    *self_p = NULL;
    if (self->handle)
        dlclose (self->handle);
    free (self->path);
    free (self);
}

bool
plugin_module_same_file (const plugin_module_t *self, const char *path)
{
    struct stat st;
    if (!self || strcmp (self->path, path) != 0 || stat (path, &st))
        return false;
    return st.st_dev == self->dev && st.st_ino == self->ino && st.st_size == self->size
        && s_mtime_ns (&st) == self->mtime_ns;
}
