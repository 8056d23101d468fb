// Acknowledging at once, for the connections where meshgate waits for a peer's answer with nothing
// of its own to send (see CMeshSupport.h).
#include "CMeshSupport.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

void mesh_acknowledge_now(int fd) {
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &on, sizeof on);
}
