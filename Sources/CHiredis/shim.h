// The Redis C client (Debian: libhiredis-dev). Only the meshgate-bench executable imports this module.
#include <hiredis/hiredis.h>
