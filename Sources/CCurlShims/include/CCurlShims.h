#ifndef MESHGATE_CCURL_SHIMS_H
#define MESHGATE_CCURL_SHIMS_H

// libcurl's curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are C variadic functions,
// which Swift cannot call. These wrappers give each argument type its own typed entry point.

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>

CURLcode mesh_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode mesh_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value);
CURLcode mesh_curl_setopt_ptr(CURL *handle, CURLoption option, void *value);
CURLcode mesh_curl_setopt_str(CURL *handle, CURLoption option, const char *value);
CURLcode mesh_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);

/// A header list for CURLOPT_HTTPHEADER in one allocation (nodes, then the text): `lines` holds
/// `count` NUL-terminated lines back to back, `length` bytes in all. libcurl only reads the list.
/// Free it with free(), not curl_slist_free_all. NULL when `count` is 0 or memory is short.
struct curl_slist *mesh_curl_slist_block(const char *lines, size_t length, size_t count);

typedef size_t (*mesh_curl_data_callback)(char *data, size_t size, size_t count, void *userdata);
CURLcode mesh_curl_setopt_write_callback(CURL *handle, mesh_curl_data_callback callback, void *userdata);
CURLcode mesh_curl_setopt_header_callback(CURL *handle, mesh_curl_data_callback callback, void *userdata);

/// Makes curl open its sockets through `mesh_curl_open_public_socket`, which refuses loopback,
/// private, link-local and other non-public addresses after DNS resolution. `refused` is set to
/// 1 when an address was refused, so the caller can tell a refusal from a connection error.
CURLcode mesh_curl_deny_private_addresses(CURL *handle, int *refused);

CURLMcode mesh_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

CURLcode mesh_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode mesh_curl_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value);

/// The result code of a CURLMSG_DONE message (a member of an anonymous union in C).
CURLcode mesh_curl_msg_result(const CURLMsg *message);

/// An epoll loop driving a multi handle through curl_multi_socket_action (curl_events.c). Owned
/// by the thread that drives the multi handle; only `mesh_curl_events_wake` may be called from
/// other threads.
typedef struct mesh_curl_events mesh_curl_events;

/// Installs the socket and timer callbacks on `multi`. NULL when epoll or eventfd fail.
mesh_curl_events *mesh_curl_events_create(CURLM *multi);
/// Makes curl close the sockets of `easy`'s connections through the loop, which forgets their
/// registration first (see curl_events.c). Call once per easy handle of the loop's multi handle.
CURLcode mesh_curl_events_attach(mesh_curl_events *events, CURL *easy);
/// Closes the epoll and eventfd descriptors. Clean up the multi handle first.
void mesh_curl_events_destroy(mesh_curl_events *events);
/// Interrupts a wait in `mesh_curl_events_run` (or makes the next one return at once). Any thread.
void mesh_curl_events_wake(mesh_curl_events *events);
/// Waits for socket activity, curl's next timeout or a wake-up, at most `max_wait_ms` (-1: no
/// limit but curl's timer), and hands what happened to curl. Returns 1 when woken.
int mesh_curl_events_run(mesh_curl_events *events, int max_wait_ms);

CURLcode mesh_curl_global_init(void);

/// Loads libcurl (libcurl.so.4) and the HMAC of its libcrypto once; every later call returns the
/// first one's result. Returns NULL when all the functions meshgate calls are there, otherwise why
/// not (a string that stays valid). A libcurl function called first loads the library itself
/// (curl_loader.c).
const char *mesh_curl_load(void);

/// 1 when the address (IPv4 or IPv6, as from inet_pton; `family` AF_INET or AF_INET6) is not a
/// public unicast address: loopback, private (RFC 1918, unique local), link-local, CGNAT,
/// unspecified, multicast, broadcast, documentation and other reserved ranges, and IPv4-mapped,
/// IPv4-compatible, NAT64 and 6to4 forms of those.
int mesh_address_is_denied(int family, const unsigned char *address);

/// HMAC-SHA256 of `message` under `key` into `out` (32 bytes). Returns 1 on success.
int mesh_hmac_sha256(const unsigned char *key, size_t key_length,
                     const unsigned char *message, size_t message_length,
                     unsigned char out[32]);

#endif
