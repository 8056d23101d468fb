// Opening a C library on first use instead of at start-up (libmosquitto, libcurl and the TLS
// stacks they bring): a gateway with no MQTT or webhook connector never maps them.
#include "CMeshSupport.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int mesh_open_library(const char *soname, const mesh_symbol *symbols, size_t count, char *error, size_t size) {
    void *handle = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        snprintf(error, size, "cannot load %s: %s", soname, dlerror());
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        void *address = dlsym(handle, symbols[i].name);
        if (address == NULL) {
            snprintf(error, size, "%s has no %s: %s", soname, symbols[i].name, dlerror());
            return 0;
        }
        *symbols[i].slot = address;
    }
    return 1;
}

void mesh_library_not_loaded(const char *function, const char *reason) {
    fprintf(stderr, "meshgate: %s is unavailable: %s\n", function, reason);
    abort();
}
