#!/usr/bin/python3
"""An independent MQTT client (paho-mqtt, Debian python3-paho-mqtt) for meshgate's MQTT tests.

  publish   --port P --count N [--prefix dev] [--rate R] [--client-id ID] [--start K]
            Publishes payload "m-<i>" on "<prefix>/<i % 10>" at QoS 1 with a persistent session,
            reconnecting (and resending what was not acknowledged) across broker restarts; exits
            once every message is acknowledged. Prints "acked N".
  subscribe --port P --topic FILTER --count N [--client-id ID] [--timeout S]
            Persistent QoS 1 subscription; prints each payload on its own line; exits after N
            distinct payloads or S seconds without a new message.
"""
import argparse, sys, threading, time
import paho.mqtt.client as mqtt

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["publish", "subscribe"])
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--count", type=int, required=True)
ap.add_argument("--prefix", default="dev")
ap.add_argument("--topic", default="#")
ap.add_argument("--rate", type=float, default=0)
ap.add_argument("--start", type=int, default=0)
ap.add_argument("--client-id", default="meshgate-test-client")
ap.add_argument("--timeout", type=float, default=60)
a = ap.parse_args()

c = mqtt.Client(client_id=a.client_id, clean_session=False)
c.reconnect_delay_set(min_delay=1, max_delay=1)
c.max_inflight_messages_set(100)
c.max_queued_messages_set(0)

if a.mode == "publish":
    connected = threading.Event()
    acked = set()  # message ids PUBACKed; is_published() raises for messages queued while disconnected
    c.on_connect = lambda cl, u, f, rc: connected.set() if rc == 0 else None
    c.on_publish = lambda cl, u, mid: acked.add(mid)
    c.connect("127.0.0.1", a.port, keepalive=10)
    c.loop_start()
    connected.wait(10)
    infos = []
    started = time.monotonic()
    for i in range(a.start, a.start + a.count):
        infos.append(c.publish(f"{a.prefix}/{i % 10}", f"m-{i}", qos=1))
        if a.rate > 0:
            ahead = (i - a.start + 1) / a.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    deadline = time.monotonic() + a.timeout
    mids = [i.mid for i in infos]
    while sum(1 for m in mids if m in acked) < a.count and time.monotonic() < deadline:
        time.sleep(0.05)
    done = sum(1 for m in mids if m in acked)
    print(f"acked {done}", flush=True)
    c.disconnect()
    c.loop_stop()
    sys.exit(0 if done == a.count else 1)
else:
    seen = set()
    last = [time.monotonic()]
    def on_connect(cl, u, f, rc):
        if rc == 0:
            cl.subscribe(a.topic, qos=1)
    def on_message(cl, u, m):
        sys.stdout.write(m.payload.decode("utf-8", "replace") + "\n")
        sys.stdout.flush()
        seen.add(m.payload)
        last[0] = time.monotonic()
    def on_subscribe(cl, u, mid, granted):
        print("#subscribed", flush=True)
    c.on_connect = on_connect
    c.on_message = on_message
    c.on_subscribe = on_subscribe
    c.connect("127.0.0.1", a.port, keepalive=10)
    c.loop_start()
    while len(seen) < a.count and time.monotonic() - last[0] < a.timeout:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
