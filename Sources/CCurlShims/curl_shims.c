#include "CCurlShims.h"

#include <stdlib.h>
#include <string.h>

CURLcode mesh_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode mesh_curl_setopt_off(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode mesh_curl_setopt_ptr(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode mesh_curl_setopt_str(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode mesh_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode mesh_curl_setopt_write_callback(CURL *handle, mesh_curl_data_callback callback, void *userdata) {
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(handle, CURLOPT_WRITEDATA, userdata);
}

CURLcode mesh_curl_setopt_header_callback(CURL *handle, mesh_curl_data_callback callback, void *userdata) {
    CURLcode rc = curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
    if (rc != CURLE_OK) return rc;
    return curl_easy_setopt(handle, CURLOPT_HEADERDATA, userdata);
}

CURLMcode mesh_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

CURLcode mesh_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLcode mesh_curl_getinfo_off(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLcode mesh_curl_msg_result(const CURLMsg *message) {
    return message->data.result;
}

CURLcode mesh_curl_global_init(void) {
    return curl_global_init(CURL_GLOBAL_ALL);
}

struct curl_slist *mesh_curl_slist_block(const char *lines, size_t length, size_t count) {
    if (count == 0 || length == 0) return NULL;
    struct curl_slist *nodes = malloc(count * sizeof *nodes + length);
    if (!nodes) return NULL;
    char *text = (char *)(nodes + count);
    memcpy(text, lines, length);
    text[length - 1] = 0;  // the last line ends inside the block whatever the caller passed
    const char *end = text + length;
    size_t n = 0;
    while (n < count && text < end) {
        nodes[n].data = text;
        nodes[n].next = NULL;
        if (n > 0) nodes[n - 1].next = &nodes[n];
        n++;
        text += strnlen(text, (size_t)(end - text)) + 1;
    }
    return nodes;
}
