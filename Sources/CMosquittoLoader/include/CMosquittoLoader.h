#ifndef CMOSQUITTOLOADER_H
#define CMOSQUITTOLOADER_H

#include <stddef.h>

/// Loads libmosquitto (libmosquitto.so.1) once; every later call returns the first one's result.
/// Returns NULL when the library and all the functions meshgate calls are there, otherwise why
/// not (a string that stays valid). A libmosquitto function called first loads the library itself,
/// and ends the process if it cannot.
const char *mesh_mosquitto_load(void);

#endif
