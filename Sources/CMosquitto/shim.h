// libmosquitto (Debian: libmosquitto-dev). Only MeshMQTT imports this module.
#include <mosquitto.h>
#include <mqtt_protocol.h>
