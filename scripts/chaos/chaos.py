#!/usr/bin/env python3
"""The fault-injection suite (`make chaos`): real `meshgate serve` processes under load while a
fault is injected, then every event read back and counted.

Each scenario counts the events the gateway acknowledged, the acknowledged ones found at the end
(in the log, at a subscriber, a webhook receiver, an MQTT subscriber or a remote site), how many of
those were lost and how many extra copies arrived. It fails when anything acknowledged is lost.
The results table is written into docs/reliability.md between its generated markers.

Usage: scripts/chaos/chaos.py [--binary PATH] [--only NAME[,NAME]] [--doc PATH] [--no-doc]
Needs root for the disk-full scenario (it mounts a tmpfs), mosquitto and python3-paho-mqtt.
"""
import argparse
import datetime
import http.client
import http.server
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from faultproxy import FaultProxy  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
# Every child process a scenario starts, so none outlives a scenario that failed half-way.
CHILDREN = []


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


class Gateway:
    """One `meshgate serve` child on free loopback ports, output in a file."""

    def __init__(self, binary, workdir, name, data, routes=None, extra=()):
        self.binary, self.workdir, self.name, self.data = binary, workdir, name, data
        self.routes = routes or os.path.join(workdir, name + "-no-routes")
        self.extra = list(extra)
        self.proc = None
        self.http = self.tcp = None
        self.starts = 0

    def start(self, timeout=60):
        self.starts += 1
        self.output = os.path.join(self.workdir, f"{self.name}-{self.starts}.log")
        args = [self.binary, "serve", "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--data", self.data,
                "--routes", self.routes, "--node", self.name] + self.extra
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        CHILDREN.append(self.proc)

        def ready():
            text = self.text()
            h = re.search(r"listening http=127\.0\.0\.1:(\d+)", text)
            t = re.search(r"listening tcp=127\.0\.0\.1:(\d+)", text)
            if h and t:
                self.http, self.tcp = int(h.group(1)), int(t.group(1))
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start ({self.proc.returncode}):\n{text[-3000:]}")
            return False

        if not wait_for(ready, timeout):
            self.kill()
            raise RuntimeError(f"{self.name} did not start:\n{self.text()[-3000:]}")
        return self

    def text(self):
        with open(self.output, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class HTTP:
    """A keep-alive HTTP/1.1 connection that reconnects after an error."""

    def __init__(self, port, timeout=30):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, body=None, headers=None):
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            self.conn.request(method, path, body=body, headers=headers or {})
            r = self.conn.getresponse()
            data = r.read()
            return r.status, r.getheader("content-type", ""), data
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None


def quote(topic):
    return urllib.parse.quote(topic, safe="/")


def publish(client, topic, event_id, key=None, data=None):
    """Publishes one binary-mode event; returns (status, content type, body)."""
    headers = {"ce-id": event_id, "ce-source": "chaos", "ce-type": "chaos.event", "content-type": "text/plain"}
    if key:
        headers["ce-partitionkey"] = key
    return client.request("POST", "/v1/publish/" + quote(topic), body=data if data is not None else event_id.encode(),
                          headers=headers)


def read_topic(port, topic):
    """Every event of a topic's partitions, as a list of ids (repeats kept)."""
    client = HTTP(port)
    try:
        status, _, body = client.request("GET", "/v1/topics")
        assert status == 200, body
        doc = json.loads(body)
        topics = doc["topics"] if isinstance(doc, dict) else doc
        entry = next((t for t in topics if t.get("topic", t.get("name")) == topic), None)
        if entry is None:
            return []
        ids = []
        for p in entry["partitions"]:
            partition = p["partition"] if isinstance(p, dict) else p
            offset = p.get("start", p.get("oldest", 0)) if isinstance(p, dict) else 0
            while True:
                status, _, body = client.request(
                    "GET", f"/v1/fetch/{quote(topic)}?partition={partition}&offset={offset}&max=1000")
                assert status == 200, (status, body[:300])
                page = json.loads(body)
                if not page["events"]:
                    break
                ids.extend(e["id"] for e in page["events"])
                offset = page["next_offset"]
        return ids
    finally:
        client.close()


class Load:
    """Publisher threads over HTTP: unique ids, acknowledged ids recorded, errors counted."""

    def __init__(self, port_of, topic, prefix, workers=4, keys=8, size=0, pace=0.0):
        self.port_of, self.topic, self.prefix = port_of, topic, prefix
        self.workers, self.keys, self.size, self.pace = workers, keys, size, pace
        self.acked, self.statuses = [], {}
        self.problem_types = set()
        self.problem_details = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []
        self.round = 0

    def start(self):
        self.stopping.clear()
        self.round += 1
        self.threads = [threading.Thread(target=self.run, args=(w, self.round), daemon=True) for w in range(self.workers)]
        for t in self.threads:
            t.start()

    def run(self, worker, rnd):
        client = HTTP(self.port_of(), timeout=10)
        n = 0
        while not self.stopping.is_set():
            event_id = f"{self.prefix}-{rnd}-{worker}-{n}"
            n += 1
            data = (event_id + " " + "x" * self.size).encode() if self.size else None
            try:
                status, ctype, body = publish(client, self.topic, event_id, key=f"k{n % self.keys}", data=data)
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.statuses["error"] = self.statuses.get("error", 0) + 1
                time.sleep(0.05)
                client = HTTP(self.port_of(), timeout=10)
                continue
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 200:
                    self.acked.append(event_id)
                elif "problem+json" in ctype:
                    try:
                        problem = json.loads(body)
                        self.problem_types.add((status, problem.get("type", "")))
                        self.problem_details.setdefault(problem.get("type", ""), problem.get("detail", ""))
                    except ValueError:
                        self.problem_types.add((status, "unparseable problem body"))
                else:
                    self.problem_types.add((status, "not problem+json: " + ctype))
            if status != 200:
                time.sleep(0.02)
            if self.pace:
                time.sleep(self.pace)
        client.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def acknowledged(self):
        with self.lock:
            return list(self.acked)


def save_status(gw, work):
    """Keeps the gateway's connectors and routes status beside its log, for a failed scenario."""
    client = HTTP(gw.http)
    try:
        for path in ("/v1/connectors", "/v1/routes"):
            status, _, body = client.request("GET", path)
            with open(os.path.join(work, f"{gw.name}{path.replace('/', '-')}.json"), "wb") as f:
                f.write(body)
    except (OSError, http.client.HTTPException):
        pass
    finally:
        client.close()


def tally(scenario, acked, found_ids, notes):
    """A result row: acked ids against the ids found (a list, repeats are duplicates)."""
    acked_set = set(acked)
    counts = {}
    for i in found_ids:
        counts[i] = counts.get(i, 0) + 1
    found = sum(1 for i in acked_set if i in counts)
    lost = len(acked_set) - found
    duplicated = sum(c - 1 for c in counts.values() if c > 1)
    row = {"scenario": scenario, "acknowledged": len(acked_set), "found": found, "lost": lost,
           "duplicated": duplicated, "notes": notes}
    if lost:
        missing = sorted(acked_set - set(counts))[:5]
        log(f"   {scenario}: lost {sorted(acked_set - set(counts))}")
        row["notes"] += f"; LOST e.g. {missing}"
    return row


# ---------------------------------------------------------------- scenarios


def scenario_kill9(binary, work):
    """kill -9 the gateway repeatedly while 4 HTTP publishers run (fsync always); read back."""
    gw = Gateway(binary, work, "kill", os.path.join(work, "data"), extra=["--fsync", "always"])
    load = Load(lambda: gw.http, "chaos/kill", "k", workers=4)
    cycles = 25
    for cycle in range(cycles):
        gw.start()
        load.start()
        time.sleep(random.uniform(0.4, 1.5))
        gw.kill()
        load.stop()
    gw.start()
    found = read_topic(gw.http, "chaos/kill")
    gw.stop()
    acked = load.acknowledged()
    assert len(acked) > 100, f"too little load: {len(acked)} acknowledged"
    unacked_stored = len(set(found) - set(acked))
    return tally("kill -9 loop", acked, found,
                 f"{cycles} SIGKILLs under 4 HTTP publishers, fsync always; {unacked_stored} events stored but "
                 f"never acknowledged (in flight at the kill)")


def scenario_disk_full(binary, work):
    """The data folder is a 64 MiB tmpfs that fills up; space returns when a filler file goes."""
    mount = os.path.join(work, "disk")
    os.makedirs(mount)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", mount], check=True)
    try:
        filler = os.path.join(mount, "filler")
        st = os.statvfs(mount)
        free = st.f_bavail * st.f_frsize
        with open(filler, "wb") as f:
            f.truncate(0)
            chunk = b"\0" * (1 << 20)
            for _ in range((free - (12 << 20)) // len(chunk)):
                f.write(chunk)
        gw = Gateway(binary, work, "disk", os.path.join(mount, "data"))
        gw.start()
        load = Load(lambda: gw.http, "chaos/disk", "d", workers=4, size=4000)
        load.start()
        full = wait_for(lambda: load.statuses.get(503, 0) >= 200, 120)
        load.stop()
        assert full, f"the disk never filled: {load.statuses}"
        statuses_full = dict(load.statuses)
        problems = sorted(load.problem_types)
        assert problems and all(s == 503 and t.endswith("/storage.unavailable") for s, t in problems), problems
        detail = next(iter(load.problem_details.values()), "")
        # Restart while full: recovery must cope with a full disk too.
        gw.kill()
        gw.start()
        os.remove(filler)
        load.statuses.clear()
        load.start()
        resumed = wait_for(lambda: load.statuses.get(200, 0) >= 500, 60)
        load.stop()
        assert resumed, f"publishing did not resume once space returned: {load.statuses}"
        found = read_topic(gw.http, "chaos/disk")
        gw.stop()
        acked = load.acknowledged()
        return tally("disk full", acked, found,
                     f"64 MiB tmpfs; {statuses_full.get(503, 0)} publishes answered 503 `storage.unavailable` "
                     f"(detail ending \"{detail.rsplit(': ', 1)[-1][:60]}\") while full; one kill -9 while full; publishing resumed once the "
                     f"filler file was deleted")
    finally:
        subprocess.run(["umount", "-l", mount], check=False)


class SSEReader(threading.Thread):
    """Reads `/v1/stream/{pattern}?from=earliest`, optionally slowly, recording each event's id."""

    def __init__(self, port, pattern, delay=0.0, rcvbuf=None):
        super().__init__(daemon=True)
        self.port, self.pattern, self.delay, self.rcvbuf = port, pattern, delay, rcvbuf
        self.ids = []
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            s = socket.socket()
            if self.rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.connect(("127.0.0.1", self.port))
            path = "/v1/stream/" + urllib.parse.quote(self.pattern, safe="/") + "?from=earliest"
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n".encode())
            f = s.makefile("rb", buffering=4096 if self.rcvbuf else 65536)
            status = f.readline()
            assert b" 200 " in status, status
            while not self.done.is_set():
                line = f.readline()
                if not line:
                    break
                if line.startswith(b"data: "):
                    self.ids.append(json.loads(line[6:])["id"])
                    if self.delay:
                        time.sleep(self.delay)
            s.close()
        except Exception as e:  # noqa: BLE001 - reported by the scenario
            self.error = repr(e)


def scenario_slow_consumer(binary, work):
    """One SSE subscriber reads slowly (tiny socket buffer, a pause per event) while a fast one and the
    publishers run: the fast one and the publishers are not held back, the slow one loses nothing."""
    gw = Gateway(binary, work, "slow", os.path.join(work, "data")).start()
    slow = SSEReader(gw.http, "chaos/slow/#", delay=0.01, rcvbuf=4096)
    fast = SSEReader(gw.http, "chaos/slow/#")
    slow.start()
    fast.start()
    load = Load(lambda: gw.http, "chaos/slow/a", "s", workers=4, size=1000)
    load.start()
    time.sleep(15)
    load.stop()
    acked = load.acknowledged()
    fast_behind = len(acked) - len(set(fast.ids))
    behind = len(acked) - len(set(slow.ids))
    fast_caught_up = wait_for(lambda: len(set(fast.ids)) >= len(acked), 30)
    slow.delay = 0.0  # let it drain
    wait_for(lambda: len(set(slow.ids)) >= len(acked), 120)
    slow.done.set()
    fast.done.set()
    gw.stop()
    assert fast.error is None and slow.error is None, (fast.error, slow.error)
    assert fast_caught_up, f"the fast subscriber was held back: {len(set(fast.ids))} of {len(acked)}"
    row = tally("slow consumer", acked, slow.ids,
                f"SSE reader with a 4 KiB socket buffer and 10 ms per event was {behind} events behind when "
                f"publishing stopped, the fast reader on the same topic {max(fast_behind, 0)}; then drained")
    fast_row = tally("slow consumer (fast reader)", acked, fast.ids, "the second subscriber on the same topic")
    return [row, fast_row]


class FlappingReceiver:
    """A webhook receiver on a fixed port that can be taken down and brought back."""

    def __init__(self, port):
        self.port, self.ids, self.lock, self.server, self.thread = port, [], threading.Lock(), None, None
        self.requests = 0

    def up(self):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("content-length", "0"))
                self.rfile.read(length)
                with outer.lock:
                    outer.requests += 1
                    outer.ids.append(self.headers.get("ce-id"))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            allow_reuse_address = True
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down(self):
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def received(self):
        with self.lock:
            return list(self.ids)


def scenario_flapping_webhook(binary, work):
    """A webhook receiver goes down and comes back while events are published to its route."""
    port = free_port()
    routes = os.path.join(work, "routes")
    os.makedirs(routes)
    with open(os.path.join(routes, "hook.yaml"), "w") as f:
        f.write(f"""version: 1
connectors:
  receiver: {{type: webhook, url: "http://127.0.0.1:{port}/hook", timeout: 2s, concurrency: 8}}
routes:
  - name: to-receiver
    from: "chaos/hook/#"
    to:
      - connector: receiver
        retry: {{backoff: 50ms, max_backoff: 500ms}}
""")
    receiver = FlappingReceiver(port)
    receiver.up()
    gw = Gateway(binary, work, "hook", os.path.join(work, "data"), routes=routes,
                 extra=["--allow-insecure-remote"]).start()
    load = Load(lambda: gw.http, "chaos/hook/a", "w", workers=2, pace=0.002)
    load.start()
    flaps = 6
    for _ in range(flaps):
        time.sleep(random.uniform(1.0, 2.0))
        receiver.down()
        time.sleep(random.uniform(0.5, 2.0))
        receiver.up()
    time.sleep(1)
    load.stop()
    acked = load.acknowledged()
    wait_for(lambda: set(acked) <= set(receiver.received()), 90, interval=0.5)
    save_status(gw, work)
    gw.stop()
    receiver.down()
    return tally("flapping webhook", acked, receiver.received(),
                 f"receiver down and up {flaps} times (0.5–2 s each); retry unlimited, backoff 50 ms to 500 ms")


class MQTTRecorder:
    def __init__(self, port, topic):
        import paho.mqtt.client as mqtt
        try:
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="chaos-recorder", clean_session=False)
        except AttributeError:
            self.client = mqtt.Client(client_id="chaos-recorder", clean_session=False)
        self.ids, self.lock, self.topic = [], threading.Lock(), topic
        self.client.on_connect = lambda c, u, f, rc, *rest: c.subscribe(topic, qos=1)
        self.client.on_message = self.on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def on_message(self, client, userdata, message):
        with self.lock:
            self.ids.append(message.payload.decode())

    def received(self):
        with self.lock:
            return list(self.ids)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


class Mosquitto:
    def __init__(self, work, port):
        self.port, self.work = port, work
        self.conf = os.path.join(work, "mosquitto.conf")
        os.makedirs(os.path.join(work, "mosquitto"), exist_ok=True)
        with open(self.conf, "w") as f:
            # `user root`: started as root, mosquitto would otherwise drop to the mosquitto user and could
            # not write its persistence database (or log) in this directory, losing queued messages.
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\n"
                    f"persistence_location {work}/mosquitto/\nmax_queued_messages 0\n"
                    f"log_dest file {work}/mosquitto.log\nlog_type error\nlog_type warning\nlog_type notice\n"
                    f"log_type information\nconnection_messages true\n")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        CHILDREN.append(self.proc)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        assert wait_for(listening, 10), "mosquitto did not start"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def scenario_mqtt_restart(binary, work):
    """An MQTT egress route while the broker (mosquitto, persistent) is restarted mid-stream."""
    port = free_port()
    broker = Mosquitto(work, port)
    broker.start()
    recorder = MQTTRecorder(port, "out/#")
    routes = os.path.join(work, "routes")
    os.makedirs(routes)
    with open(os.path.join(routes, "mqtt.yaml"), "w") as f:
        f.write(f"""version: 1
connectors:
  edge: {{type: mqtt, url: "mqtt://127.0.0.1:{port}", client_id: chaos-gateway, reconnect_backoff: 100ms, reconnect_max_backoff: 1s}}
routes:
  - name: to-edge
    from: "chaos/mqtt/#"
    to:
      - connector: edge
        topic: "out/{{topic}}"
""")
    gw = Gateway(binary, work, "mqtt", os.path.join(work, "data"), routes=routes).start()
    load = Load(lambda: gw.http, "chaos/mqtt/a", "m", workers=2, pace=0.002)
    load.start()
    restarts = 4
    for _ in range(restarts):
        time.sleep(random.uniform(1.5, 3.0))
        broker.stop()
        time.sleep(random.uniform(0.5, 1.5))
        broker.start()
    time.sleep(1)
    load.stop()
    acked = load.acknowledged()
    wait_for(lambda: set(acked) <= set(recorder.received()), 90, interval=0.5)
    save_status(gw, work)
    gw.stop()
    recorder.close()
    broker.stop()
    return tally("MQTT broker restart", acked, recorder.received(),
                 f"mosquitto (persistence on) restarted {restarts} times mid-stream; egress QoS 1; "
                 f"subscriber with a persistent session")


def scenario_cut_bridge(binary, work):
    """Two sites; the bridge's TCP connection runs through a proxy that is cut and restored."""
    site_b = Gateway(binary, work, "site-b", os.path.join(work, "data-b")).start()
    proxy = FaultProxy(("127.0.0.1", site_b.tcp))
    proxy.start()
    routes = os.path.join(work, "routes-a")
    os.makedirs(routes)
    with open(os.path.join(routes, "bridge.yaml"), "w") as f:
        f.write(f"""version: 1
connectors:
  site-b: {{type: meshgate, url: "tcp://127.0.0.1:{proxy.port}"}}
routes:
  - name: to-site-b
    from: "chaos/bridge/#"
    to:
      - connector: site-b
        retry: {{backoff: 50ms, max_backoff: 500ms}}
""")
    site_a = Gateway(binary, work, "site-a", os.path.join(work, "data-a"), routes=routes).start()
    load = Load(lambda: site_a.http, "chaos/bridge/a", "b", workers=4)
    load.start()
    cuts = 5
    for i in range(cuts):
        time.sleep(random.uniform(1.0, 2.0))
        # Alternate a clean cut (connections reset, listener closed) with a silent one (bytes dropped).
        proxy.cut(silent=bool(i % 2))
        time.sleep(random.uniform(0.5, 2.0))
        proxy.restore()
    time.sleep(1)
    load.stop()
    acked = load.acknowledged()
    found = []

    def delivered():
        nonlocal found
        found = read_topic(site_b.http, "chaos/bridge/a")
        return set(acked) <= set(found)

    wait_for(delivered, 90, interval=1)
    save_status(site_a, work)
    site_a.stop()
    site_b.stop()
    proxy.stop()
    return tally("cut bridge", acked, found,
                 f"site A → proxy → site B; {cuts} cuts of 0.5–2 s (resets and silent black holes alternately)")


SCENARIOS = {
    "kill9": scenario_kill9,
    "disk-full": scenario_disk_full,
    "slow-consumer": scenario_slow_consumer,
    "flapping-webhook": scenario_flapping_webhook,
    "mqtt-restart": scenario_mqtt_restart,
    "cut-bridge": scenario_cut_bridge,
}


def write_doc(path, rows, seconds, binary):
    lines = [BEGIN, "",
             f"Generated by `make chaos` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC "
             f"({os.cpu_count()} cores, {platform.system()} {platform.release()}, `{os.path.relpath(binary, ROOT)}`), "
             f"{seconds:.0f} s in all.", "",
             "| scenario | acknowledged | found | lost | duplicated | notes |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['acknowledged']} | {r['found']} | {r['lost']} | {r['duplicated']} | "
                     f"{r['notes'].replace('|', '/')} |")
    lines += ["", END]
    with open(path) as f:
        text = f.read()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    with open(path, "w") as f:
        f.write(text[:start] + "\n".join(lines) + text[end:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "meshgate"))
    parser.add_argument("--only", default="", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--doc", default=os.path.join(ROOT, "docs", "reliability.md"))
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}")
    rows, failures = [], []
    started = time.monotonic()
    for name in names:
        work = tempfile.mkdtemp(prefix=f"meshgate-chaos-{name}-")
        log(f"== {name} ({work})")
        t0 = time.monotonic()
        try:
            result = SCENARIOS[name](binary, work)
            for row in result if isinstance(result, list) else [result]:
                rows.append(row)
                log(f"   {row['scenario']}: acknowledged {row['acknowledged']}, found {row['found']}, "
                    f"lost {row['lost']}, duplicated {row['duplicated']} ({time.monotonic() - t0:.0f} s); {row['notes']}")
                if row["lost"]:
                    failures.append(f"{row['scenario']}: {row['lost']} acknowledged events lost")
            if any(r["lost"] for r in (result if isinstance(result, list) else [result])):
                log(f"   logs kept in {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
        except Exception as e:  # noqa: BLE001 - every scenario runs; the failure is reported
            traceback.print_exc()
            failures.append(f"{name}: {e!r} (logs kept in {work})")
            rows.append({"scenario": name, "acknowledged": "–", "found": "–", "lost": "–", "duplicated": "–",
                         "notes": f"FAILED: {str(e)[:200]}"})
        finally:
            for child in CHILDREN:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            CHILDREN.clear()
    elapsed = time.monotonic() - started
    if not args.no_doc and set(names) == set(SCENARIOS):
        write_doc(args.doc, rows, elapsed, binary)
        log(f"results written to {os.path.relpath(args.doc, ROOT)}")
    log(f"{len(rows) - len(failures)} passed, {len(failures)} failed ({elapsed:.0f} s)")
    for f in failures:
        log("FAILED", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
