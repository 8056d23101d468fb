// The NATS C client (Debian: libnats-dev). Only the meshgate-bench executable imports this module.
#include <nats/nats.h>
