// Thread names the kernel shows (top -H, /proc/PID/task/TID/comm). Foundation's Thread.name does
// not reach the kernel on Linux, and pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc
// module does not see.
#define _GNU_SOURCE
#include "CMeshSupport.h"

#include <pthread.h>
#include <string.h>

void mesh_name_thread(const char *name) {
    char buffer[16];
    strncpy(buffer, name, sizeof buffer - 1);
    buffer[sizeof buffer - 1] = 0;
    pthread_setname_np(pthread_self(), buffer);
}
