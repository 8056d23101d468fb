#ifndef CMOSQUITTOLOADER_H
#define CMOSQUITTOLOADER_H

#include <stddef.h>

/// Loads libmosquitto (libmosquitto.so.1) once; every later call returns the first one's result.
/// Returns 1 when the library and all the functions meshgate calls are there; otherwise 0 with the
/// reason in `error`. The library's functions, called through the declarations of <mosquitto.h>,
/// must not be called before this returned 1.
int mesh_mosquitto_load(char *error, size_t size);

#endif
