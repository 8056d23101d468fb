// sync_file_range is a GNU extension: the Swift Glibc module does not declare it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include "CMeshSupport.h"

int mesh_start_writeback(int fd, int64_t offset, int64_t len) {
#if defined(__linux__)
    return sync_file_range(fd, (off_t)offset, (off_t)len, SYNC_FILE_RANGE_WRITE) == 0 ? 0 : errno;
#else
    (void)fd; (void)offset; (void)len;
    return 0;
#endif
}
