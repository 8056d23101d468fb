// libcurl (and HMAC from the libcrypto it brings), opened on first use: the gateway binary links
// neither, so a gateway with no webhook connector never maps them or the TLS, LDAP, SSH and
// Kerberos libraries libcurl depends on. Each function meshgate calls is defined here with the
// prototype of <curl/curl.h> (or OpenSSL's) and forwards to the library's own, found by dlsym
// when `mesh_curl_load` (or the first call) runs. Add a function to the lists before calling it.
#define CURL_DISABLE_TYPECHECK 1
#include "CCurlShims.h"

#include <CMeshSupport.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdarg.h>

#define CURL_FUNCTIONS(STUB, STUB_VOID) \
    STUB_VOID(void, curl_easy_cleanup, (CURL *curl), (curl)) \
    STUB(CURL *, curl_easy_init, (void), ()) \
    STUB(const char *, curl_easy_strerror, (CURLcode a0), (a0)) \
    STUB(CURLcode, curl_global_init, (long flags), (flags)) \
    STUB(CURLMcode, curl_multi_add_handle, (CURLM *multi_handle, CURL *curl_handle), (multi_handle, curl_handle)) \
    STUB(CURLMcode, curl_multi_cleanup, (CURLM *multi_handle), (multi_handle)) \
    STUB(CURLMsg *, curl_multi_info_read, (CURLM *multi_handle, int *msgs_in_queue), (multi_handle, msgs_in_queue)) \
    STUB(CURLM *, curl_multi_init, (void), ()) \
    STUB(CURLMcode, curl_multi_remove_handle, (CURLM *multi_handle, CURL *curl_handle), (multi_handle, curl_handle)) \
    STUB(CURLMcode, curl_multi_socket_action, (CURLM *multi_handle, curl_socket_t s, int ev_bitmask, int *running_handles), (multi_handle, s, ev_bitmask, running_handles))


// curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo take one argument after the option:
// a long, a curl_off_t, a data or function pointer. On the LP64 targets meshgate builds for, each
// is one 64-bit word passed the same way, so the stubs pass it on as a pointer-sized word.
_Static_assert(sizeof(long) == sizeof(void *) && sizeof(curl_off_t) == sizeof(void *), "LP64 only");
#define VARIADIC_FUNCTIONS(STUB) \
    STUB(CURLcode, curl_easy_setopt, CURL *, CURLoption) \
    STUB(CURLMcode, curl_multi_setopt, CURLM *, CURLMoption) \
    STUB(CURLcode, curl_easy_getinfo, CURL *, CURLINFO)

#define CRYPTO_FUNCTIONS(STUB, STUB_VOID) \
    STUB(const EVP_MD *, EVP_sha256, (void), ()) \
    STUB(unsigned char *, HMAC, (const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *data, size_t data_len, unsigned char *md, unsigned int *md_len), (evp_md, key, key_len, data, data_len, md, md_len))

static void ensure_loaded(const char *function);

#define DECLARE_VARIADIC_POINTER(ret, name, handle, option) static ret(*p_##name)(handle, option, ...);
CURL_FUNCTIONS(MESH_STUB_POINTER, MESH_STUB_POINTER_VOID)
VARIADIC_FUNCTIONS(DECLARE_VARIADIC_POINTER)
CRYPTO_FUNCTIONS(MESH_STUB_POINTER, MESH_STUB_POINTER_VOID)

#define FORWARD_VARIADIC(ret, name, handle_type, option_type) \
    ret name(handle_type handle, option_type option, ...) { \
        if (p_##name == NULL) ensure_loaded(#name); \
        va_list arguments; \
        va_start(arguments, option); \
        void *argument = va_arg(arguments, void *); \
        va_end(arguments); \
        return p_##name(handle, option, argument); \
    }
CURL_FUNCTIONS(MESH_STUB_FORWARD, MESH_STUB_FORWARD_VOID)
VARIADIC_FUNCTIONS(FORWARD_VARIADIC)
CRYPTO_FUNCTIONS(MESH_STUB_FORWARD, MESH_STUB_FORWARD_VOID)

static const mesh_symbol curl_symbols[] = {CURL_FUNCTIONS(MESH_STUB_SYMBOL, MESH_STUB_SYMBOL) VARIADIC_FUNCTIONS(MESH_STUB_SYMBOL)};
static const mesh_symbol crypto_symbols[] = {CRYPTO_FUNCTIONS(MESH_STUB_SYMBOL, MESH_STUB_SYMBOL)};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[512];

static void load(void) {
    // libcurl first: the OpenSSL build of libcurl brings libcrypto, so the second open finds it mapped.
    loaded = mesh_open_library("libcurl.so.4", curl_symbols, sizeof curl_symbols / sizeof curl_symbols[0], failure, sizeof failure)
        && mesh_open_library("libcrypto.so.3", crypto_symbols, sizeof crypto_symbols / sizeof crypto_symbols[0], failure, sizeof failure);
}

/// A function called before anyone loaded the library loads it first; only a library that cannot
/// be loaded ends the process.
static void ensure_loaded(const char *function) {
    pthread_once(&once, load);
    if (!loaded) mesh_library_not_loaded(function, failure);
}

const char *mesh_curl_load(void) {
    pthread_once(&once, load);
    return loaded ? NULL : failure;
}
