#!/usr/bin/env bash
# A fleet of simulated devices: each publishes a JSON reading at QoS 1 (MQTT 5, with user
# properties) every INTERVAL seconds; now and then one runs hot. Stop with Ctrl-C.
set -euo pipefail
DEVICES=${DEVICES:-5}
INTERVAL=${INTERVAL:-1}
PORT=${PORT:-1883}
n=0
while true; do
  for d in $(seq 1 "$DEVICES"); do
    c=$((20 + RANDOM % 40)); if (( RANDOM % 20 == 0 )); then c=$((70 + RANDOM % 20)); fi
    mosquitto_pub -p "$PORT" -V 5 -q 1 -t "devices/dev-$d/telemetry" \
      -D publish content-type application/json -D publish user-property model TX-9 \
      -m "{\"device\":\"dev-$d\",\"seq\":$n,\"celsius\":$c}"
  done
  n=$((n + 1))
  sleep "$INTERVAL"
done
