// The server-side request forgery guard. curl resolves the name, then calls this to open the
// socket for each address it tries, so the check sees the address actually connected to (no
// window between a check and a second resolution, as with resolve-then-connect).

#include "CCurlShims.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ipv4_denied(const unsigned char *a) {
    unsigned b0 = a[0], b1 = a[1], b2 = a[2];
    if (b0 == 0) return 1;                                  // 0.0.0.0/8 "this network"
    if (b0 == 10) return 1;                                 // 10/8 private
    if (b0 == 100 && (b1 & 0xC0) == 64) return 1;           // 100.64/10 carrier-grade NAT
    if (b0 == 127) return 1;                                // loopback
    if (b0 == 169 && b1 == 254) return 1;                   // link-local (cloud metadata lives here)
    if (b0 == 172 && (b1 & 0xF0) == 16) return 1;           // 172.16/12 private
    if (b0 == 192 && b1 == 0 && b2 == 0) return 1;          // 192.0.0/24 IETF protocol assignments
    if (b0 == 192 && b1 == 0 && b2 == 2) return 1;          // TEST-NET-1
    if (b0 == 192 && b1 == 88 && b2 == 99) return 1;        // 6to4 relay anycast
    if (b0 == 192 && b1 == 168) return 1;                   // 192.168/16 private
    if (b0 == 198 && (b1 & 0xFE) == 18) return 1;           // 198.18/15 benchmarking
    if (b0 == 198 && b1 == 51 && b2 == 100) return 1;       // TEST-NET-2
    if (b0 == 203 && b1 == 0 && b2 == 113) return 1;        // TEST-NET-3
    if (b0 >= 224) return 1;                                // multicast, reserved, broadcast
    return 0;
}

static int ipv6_denied(const unsigned char *a) {
    static const unsigned char zero[16] = {0};
    if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1)) return 1;   // :: and ::1
    // ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d (IPv4-compatible): judge the IPv4 address.
    if (memcmp(a, zero, 10) == 0 && a[10] == 0xFF && a[11] == 0xFF) return ipv4_denied(a + 12);
    if (memcmp(a, zero, 12) == 0) return ipv4_denied(a + 12);
    // 64:ff9b::/96 NAT64: the embedded IPv4 address.
    static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(a, nat64, 12) == 0) return ipv4_denied(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) return ipv4_denied(a + 2);                  // 2002::/16 6to4
    if ((a[0] & 0xFE) == 0xFC) return 1;                                          // fc00::/7 unique local
    if (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) return 1;                          // fe80::/10 link-local
    if (a[0] == 0xFE && (a[1] & 0xC0) == 0xC0) return 1;                          // fec0::/10 site-local
    if (a[0] == 0xFF) return 1;                                                   // multicast
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0D && a[3] == 0xB8) return 1;   // documentation
    if (a[0] == 0x01 && memcmp(a + 1, zero, 7) == 0) return 1;                    // 100::/64 discard
    return 0;
}

int mesh_address_is_denied(int family, const unsigned char *address) {
    if (family == AF_INET) return ipv4_denied(address);
    if (family == AF_INET6) return ipv6_denied(address);
    return 1;  // anything else (unix sockets...) is not a public internet address
}

static curl_socket_t open_public_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    (void)purpose;
    int *refused = (int *)clientp;
    const unsigned char *raw = NULL;
    if (address->family == AF_INET) {
        raw = (const unsigned char *)&((const struct sockaddr_in *)&address->addr)->sin_addr;
    } else if (address->family == AF_INET6) {
        raw = (const unsigned char *)&((const struct sockaddr_in6 *)&address->addr)->sin6_addr;
    }
    if (raw == NULL || mesh_address_is_denied(address->family, raw)) {
        if (refused) *refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

CURLcode mesh_curl_deny_private_addresses(CURL *handle, int *refused) {
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, open_public_socket);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(handle, CURLOPT_OPENSOCKETDATA, (void *)refused);
}
