#ifndef CMESHSUPPORT_H
#define CMESHSUPPORT_H

#include <spawn.h>
#include <stddef.h>
#include <stdint.h>

/// CRC32C (Castagnoli) of `len` bytes, continuing from `crc` (pass 0 to start).
/// Uses the SSE4.2 / ARMv8 CRC instructions when the CPU has them, a table otherwise.
uint32_t mesh_crc32c(uint32_t crc, const void *data, size_t len);

/// 1 when the hardware path is in use, 0 for the table fallback.
int mesh_crc32c_hardware(void);

/// Starts writeback of `len` bytes of `fd` from `offset` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux; nothing elsewhere). Returns 0 or an errno.
int mesh_start_writeback(int fd, int64_t offset, int64_t len);

/// Asks the CPU to start loading the cache line at `address` (for reading) without waiting for
/// it: a batch of lookups that land anywhere in a large table issues these first, so their cache
/// misses overlap instead of following one another.
static inline void mesh_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

/// Adds "close every descriptor from `lowest` up" to a child's spawn actions, so that it inherits
/// nothing it was not given (glibc 2.34+). 0 on success, an errno value otherwise.
int mesh_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

/// Acknowledges what `fd` (a TCP socket) has received now, not with the kernel's delayed-ACK timer
/// (40 ms). A peer that leaves Nagle on holds its next small packet until what it sent before is
/// acknowledged: a broker's last PUBACK of a batch, the body a web server writes after the headers.
/// When we have nothing to send that would carry the acknowledgement, each such answer waited for
/// the timer. The kernel leaves quick-ack mode by itself, so call it after every read.
void mesh_acknowledge_now(int fd);

/// Names the calling thread for the kernel (`top -H`, /proc/.../comm): the first 15 bytes.
void mesh_name_thread(const char *name);

/// A function a library is opened for: its name and where its address goes.
typedef struct {
    const char *name;
    void **slot;
} mesh_symbol;

/// Opens the shared library `soname` (dlopen, local binding) and fills every slot with its
/// symbol. Returns 1 when all resolved; otherwise 0, with the reason in `error` (`size` bytes).
int mesh_open_library(const char *soname, const mesh_symbol *symbols, size_t count, char *error, size_t size);

/// Forwarding stubs of a library opened on first use (curl_loader.c, mosquitto_loader.c). The
/// including file lists the library's functions as `STUB(ret, name, (params), (args))` and
/// `STUB_VOID(void, name, (params), (args))` entries, expands the list with these, and defines
/// `static void ensure_loaded(const char *function)`, which opens the library or ends the process.
#define MESH_STUB_POINTER(ret, name, params, args) static ret(*p_##name) params;
#define MESH_STUB_POINTER_VOID(ret, name, params, args) static void(*p_##name) params;
#define MESH_STUB_FORWARD(ret, name, params, args) \
    ret name params { \
        if (p_##name == NULL) ensure_loaded(#name); \
        return p_##name args; \
    }
#define MESH_STUB_FORWARD_VOID(ret, name, params, args) \
    void name params { \
        if (p_##name == NULL) ensure_loaded(#name); \
        p_##name args; \
    }
#define MESH_STUB_SYMBOL(ret, name, params, args) {#name, (void **)&p_##name},

/// Ends the process with a message naming `function` and why its library could not be opened:
/// called by a forwarding stub whose library is missing, which the connectors rule out by opening
/// it first and refusing the connector with that reason.
void mesh_library_not_loaded(const char *function, const char *reason) __attribute__((noreturn));

#endif
