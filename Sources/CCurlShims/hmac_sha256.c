// HMAC-SHA256 for Standard Webhooks signatures, from OpenSSL's libcrypto: libcurl (the OpenSSL
// flavour) already loads it into the process, so signing adds no dependency and no second copy
// of SHA-256.

#include "CCurlShims.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

int mesh_hmac_sha256(const unsigned char *key, size_t key_length,
                     const unsigned char *message, size_t message_length,
                     unsigned char out[32]) {
    unsigned int length = 0;
    static const unsigned char empty = 0;
    if (key == NULL) key = &empty;
    if (message == NULL) message = &empty;
    if (HMAC(EVP_sha256(), key, (int)key_length, message, message_length, out, &length) == NULL) return 0;
    return length == 32;
}
