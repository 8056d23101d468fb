// libmosquitto, opened on first use: the gateway binary does not link it, so a gateway with no MQTT
// connector never maps it or the TLS libraries it depends on. Each function meshgate calls is
// defined here with the prototype of <mosquitto.h> and forwards to the library's own, found by
// dlsym when `mesh_mosquitto_load` (or the first call) runs. Add a function to MOSQUITTO_FUNCTIONS before calling it.
#include "CMosquittoLoader.h"

#include <CMeshSupport.h>
#include <mosquitto.h>
#include <pthread.h>

#define MOSQUITTO_FUNCTIONS(STUB, STUB_VOID) \
    STUB(const char *, mosquitto_connack_string, (int connack_code), (connack_code)) \
    STUB(int, mosquitto_connect_bind_v5, (struct mosquitto *mosq, const char *host, int port, int keepalive, const char *bind_address, const mosquitto_property *properties), (mosq, host, port, keepalive, bind_address, properties)) \
    STUB_VOID(void, mosquitto_connect_v5_callback_set, (struct mosquitto *mosq, void (*on_connect)(struct mosquitto *, void *, int, int, const mosquitto_property *props)), (mosq, on_connect)) \
    STUB_VOID(void, mosquitto_destroy, (struct mosquitto *mosq), (mosq)) \
    STUB(int, mosquitto_disconnect_v5, (struct mosquitto *mosq, int reason_code, const mosquitto_property *properties), (mosq, reason_code, properties)) \
    STUB_VOID(void, mosquitto_disconnect_v5_callback_set, (struct mosquitto *mosq, void (*on_disconnect)(struct mosquitto *, void *, int, const mosquitto_property *props)), (mosq, on_disconnect)) \
    STUB(int, mosquitto_int_option, (struct mosquitto *mosq, enum mosq_opt_t option, int value), (mosq, option, value)) \
    STUB(int, mosquitto_lib_init, (void), ()) \
    STUB_VOID(void, mosquitto_log_callback_set, (struct mosquitto *mosq, void (*on_log)(struct mosquitto *, void *, int, const char *)), (mosq, on_log)) \
    STUB(int, mosquitto_loop_misc, (struct mosquitto *mosq), (mosq)) \
    STUB(int, mosquitto_loop_read, (struct mosquitto *mosq, int max_packets), (mosq, max_packets)) \
    STUB(int, mosquitto_loop_write, (struct mosquitto *mosq, int max_packets), (mosq, max_packets)) \
    STUB(int, mosquitto_max_inflight_messages_set, (struct mosquitto *mosq, unsigned int max_inflight_messages), (mosq, max_inflight_messages)) \
    STUB_VOID(void, mosquitto_message_v5_callback_set, (struct mosquitto *mosq, void (*on_message)(struct mosquitto *, void *, const struct mosquitto_message *, const mosquitto_property *props)), (mosq, on_message)) \
    STUB(struct mosquitto *, mosquitto_new, (const char *id, bool clean_session, void *obj), (id, clean_session, obj)) \
    STUB(int, mosquitto_property_add_binary, (mosquitto_property **proplist, int identifier, const void *value, uint16_t len), (proplist, identifier, value, len)) \
    STUB(int, mosquitto_property_add_int32, (mosquitto_property **proplist, int identifier, uint32_t value), (proplist, identifier, value)) \
    STUB(int, mosquitto_property_add_string, (mosquitto_property **proplist, int identifier, const char *value), (proplist, identifier, value)) \
    STUB(int, mosquitto_property_add_string_pair, (mosquitto_property **proplist, int identifier, const char *name, const char *value), (proplist, identifier, name, value)) \
    STUB_VOID(void, mosquitto_property_free_all, (mosquitto_property **properties), (properties)) \
    STUB(int, mosquitto_property_identifier, (const mosquitto_property *property), (property)) \
    STUB(const mosquitto_property *, mosquitto_property_next, (const mosquitto_property *proplist), (proplist)) \
    STUB(const mosquitto_property *, mosquitto_property_read_binary, (const mosquitto_property *proplist, int identifier, void **value, uint16_t *len, bool skip_first), (proplist, identifier, value, len, skip_first)) \
    STUB(const mosquitto_property *, mosquitto_property_read_string, (const mosquitto_property *proplist, int identifier, char **value, bool skip_first), (proplist, identifier, value, skip_first)) \
    STUB(const mosquitto_property *, mosquitto_property_read_string_pair, (const mosquitto_property *proplist, int identifier, char **name, char **value, bool skip_first), (proplist, identifier, name, value, skip_first)) \
    STUB(int, mosquitto_publish_v5, (struct mosquitto *mosq, int *mid, const char *topic, int payloadlen, const void *payload, int qos, bool retain, const mosquitto_property *properties), (mosq, mid, topic, payloadlen, payload, qos, retain, properties)) \
    STUB_VOID(void, mosquitto_publish_v5_callback_set, (struct mosquitto *mosq, void (*on_publish)(struct mosquitto *, void *, int, int, const mosquitto_property *props)), (mosq, on_publish)) \
    STUB(const char *, mosquitto_reason_string, (int reason_code), (reason_code)) \
    STUB(int, mosquitto_socket, (struct mosquitto *mosq), (mosq)) \
    STUB(const char *, mosquitto_strerror, (int mosq_errno), (mosq_errno)) \
    STUB(int, mosquitto_subscribe_v5, (struct mosquitto *mosq, int *mid, const char *sub, int qos, int options, const mosquitto_property *properties), (mosq, mid, sub, qos, options, properties)) \
    STUB_VOID(void, mosquitto_subscribe_v5_callback_set, (struct mosquitto *mosq, void (*on_subscribe)(struct mosquitto *, void *, int, int, const int *, const mosquitto_property *props)), (mosq, on_subscribe)) \
    STUB(int, mosquitto_threaded_set, (struct mosquitto *mosq, bool threaded), (mosq, threaded)) \
    STUB(int, mosquitto_tls_insecure_set, (struct mosquitto *mosq, bool value), (mosq, value)) \
    STUB(int, mosquitto_tls_set, (struct mosquitto *mosq, const char *cafile, const char *capath, const char *certfile, const char *keyfile, int (*pw_callback)(char *buf, int size, int rwflag, void *userdata)), (mosq, cafile, capath, certfile, keyfile, pw_callback)) \
    STUB(int, mosquitto_topic_matches_sub, (const char *sub, const char *topic, bool *result), (sub, topic, result)) \
    STUB(int, mosquitto_unsubscribe_v5, (struct mosquitto *mosq, int *mid, const char *sub, const mosquitto_property *properties), (mosq, mid, sub, properties)) \
    STUB(int, mosquitto_username_pw_set, (struct mosquitto *mosq, const char *username, const char *password), (mosq, username, password)) \
    STUB(bool, mosquitto_want_write, (struct mosquitto *mosq), (mosq))


static void ensure_loaded(const char *function);

MOSQUITTO_FUNCTIONS(MESH_STUB_POINTER, MESH_STUB_POINTER_VOID)

MOSQUITTO_FUNCTIONS(MESH_STUB_FORWARD, MESH_STUB_FORWARD_VOID)

static const mesh_symbol symbols[] = {MOSQUITTO_FUNCTIONS(MESH_STUB_SYMBOL, MESH_STUB_SYMBOL)};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char failure[512];

static void load(void) {
    loaded = mesh_open_library("libmosquitto.so.1", symbols, sizeof symbols / sizeof symbols[0], failure, sizeof failure);
}

/// A function called before anyone loaded the library (a topic match in a test, say) loads it
/// first; only a library that cannot be loaded ends the process.
static void ensure_loaded(const char *function) {
    pthread_once(&once, load);
    if (!loaded) mesh_library_not_loaded(function, failure);
}

const char *mesh_mosquitto_load(void) {
    pthread_once(&once, load);
    return loaded ? NULL : failure;
}
