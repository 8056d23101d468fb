// posix_spawn_file_actions_addclosefrom_np (glibc 2.34) is declared only with _GNU_SOURCE, which
// Swift's Glibc module does not see.
#define _GNU_SOURCE
#include "CMeshSupport.h"

int mesh_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}
