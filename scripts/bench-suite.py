#!/usr/bin/env python3
"""The benchmark suite behind `make bench` and `make bench-quick`.

Starts meshgate and its peers (NATS JetStream, Redis, mosquitto, a bare SwiftNIO server) on
loopback, each on a port chosen at run time, drives them with load generators of the same
harness (`meshgate bench publish` over meshgate's client, `meshgate-bench nats|redis` over libnats
and hiredis; wrk for both HTTP servers), stops everything it started, and writes every figure with
its peer's figure from the same run to a results file (docs/bench/results.json). scripts/bench-doc.py
turns that file into docs/benchmarks.md and the plots.

Usage: scripts/bench-suite.py [--quick] [--out FILE] [--only SCENARIO,...]
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MESHGATE = os.path.join(ROOT, ".build/release/meshgate")
PEERS = os.path.join(ROOT, ".build/release/meshgate-bench")

# The scenarios that drive a peer through meshgate-bench (libnats, hiredis, the raw TCP ceiling).
NEEDS_PEERS = {"publish", "latency", "fanout", "ceilings"}
# The latency scenario runs first: after the publish scenario has written gigabytes, this machine's
# host takes CPU time from the guest (steal) for a minute or two, and whichever system is measured
# then gets a tail of tens of milliseconds that belongs to the host (docs/bench/profile.md).
SCENARIOS = ["latency", "publish", "http", "connections", "mqtt", "memory", "startup", "fanout", "routing", "bridge", "metrics",
             "ceilings", "log", "webhook"]


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Processes:
    """Every server the suite starts; all of them are stopped at exit, whatever happens."""

    def __init__(self):
        self.running = []

    def start(self, name, argv, logfile, env=None):
        out = open(logfile, "w")
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        proc.bench_name = name
        proc.bench_log = logfile
        self.running.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM):
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self):
        for proc in list(self.running):
            self.stop(proc)


PROCS = Processes()
atexit.register(PROCS.stop_all)


def _on_signal(signum, _frame):
    PROCS.stop_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30.0):
    """Waits until 127.0.0.1:port accepts a connection; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited with {proc.returncode}; its log:\n" + open(proc.bench_log).read()[-2000:])
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return time.monotonic() - start
        time.sleep(0.005)
    raise RuntimeError(f"{proc.bench_name} did not listen on {port} within {timeout} s")


def disk_busy_ms():
    """Milliseconds the block devices have spent doing I/O (the io_ticks of /proc/diskstats)."""
    total = 0
    with open("/proc/diskstats") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 12 and not fields[2].startswith(("loop", "ram", "zram")):
                total += int(fields[12])
    return total


def steal_seconds():
    """CPU time the hypervisor has taken from this machine since boot, all cores (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def wait_disk_idle(quiet=1.0, limit=30.0):
    """Waits until no block device has done I/O for `quiet` seconds (at most `limit`); returns the wait."""
    started = time.monotonic()
    last, idle_since = disk_busy_ms(), time.monotonic()
    while time.monotonic() - started < limit:
        time.sleep(0.1)
        now = disk_busy_ms()
        if now != last:
            last, idle_since = now, time.monotonic()
        elif time.monotonic() - idle_since >= quiet:
            break
    return time.monotonic() - started


def rss_mib(pid, field="VmRSS"):
    """Resident memory in MiB: VmRSS (all), RssAnon (heap, stacks) or RssFile (mapped code and data)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(argv, timeout, what):
    """Runs a load generator to its end (it ends by itself; the timeout is a safety net)."""
    result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}")
    return result.stdout


def read_json(path):
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- systems

class Suite:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.duration = 1.0 if args.quick else 5.0
        self.work = tempfile.mkdtemp(prefix=".bench-suite-", dir=ROOT)  # same disk as a real data directory
        atexit.register(shutil.rmtree, self.work, True)
        self.raw = {}
        self.figures = []
        self.counter = 0

    def path(self, name):
        return os.path.join(self.work, name)

    def scratch(self, name):
        self.counter += 1
        return self.path(f"{self.counter:03d}-{name}")

    # Servers -------------------------------------------------------------

    def meshgate(self, fsync, name=None, data=None, routes=None, node="bench", tcp=None, extra=(), cpu=None):
        """routes: the text of a route file to load (none by default); tcp: a fixed port (a site that
        restarts where its peers expect it); cpu: the one CPU it may run on (all by default)."""
        name = name or f"meshgate-{fsync}"
        tcp, http = tcp or free_port(), free_port()
        data = data or self.scratch(f"{name}-data")
        if routes is None:
            directory = self.path("no-routes")
            os.makedirs(directory, exist_ok=True)
        else:
            directory = self.scratch(f"{name}-routes")
            os.makedirs(directory, exist_ok=True)
            with open(os.path.join(directory, "routes.yaml"), "w") as f:
                f.write(routes)
        proc = PROCS.start(name, [*pinned(cpu), MESHGATE, "serve", "--http", f"127.0.0.1:{http}", "--tcp", f"127.0.0.1:{tcp}",
                                  "--data", data, "--routes", directory, "--fsync", fsync, "--node", node,
                                  "--log-level", "warning", *extra], self.scratch(f"{name}.log"))
        proc.startup_s = wait_port(tcp, proc)
        wait_port(http, proc)
        proc.tcp, proc.http, proc.data = tcp, http, data
        return proc

    def nats(self):
        port = free_port()
        store = self.scratch("jetstream")
        proc = PROCS.start("nats-server", ["nats-server", "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)],
                           self.scratch("nats.log"))
        proc.startup_s = wait_port(port, proc)
        proc.port = port
        return proc

    def redis(self, appendfsync):
        port = free_port()
        directory = self.scratch(f"redis-{appendfsync}")
        os.makedirs(directory)
        proc = PROCS.start(f"redis-{appendfsync}", [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory, "--appendonly", "yes",
            "--appendfsync", appendfsync, "--save", "", "--daemonize", "no", "--logfile", ""],
            self.scratch(f"redis-{appendfsync}.log"))
        proc.startup_s = wait_port(port, proc)
        proc.port = port
        return proc

    # Load generators -----------------------------------------------------

    def mesh_publish(self, server, producers, size, topic, depth=256, extra=(), cpu=None):
        out = self.scratch("mesh.json")
        run([*pinned(cpu), MESHGATE, "bench", "publish", "--server", f"tcp://127.0.0.1:{server.tcp}", "--connections", str(producers),
             "--depth", str(depth), "--size", str(size), "--duration", str(self.duration), "--topic", topic,
             "--json", out, *extra], self.duration + 60, "meshgate bench publish")
        return read_json(out)

    def nats_publish(self, server, producers, size, subject, depth=256, extra=()):
        out = self.scratch("nats.json")
        stream = re.sub(r"[^A-Za-z0-9]", "_", subject).upper()
        run([PEERS, "nats", "--url", f"nats://127.0.0.1:{server.port}", "--producers", str(producers), "--depth", str(depth),
             "--size", str(size), "--duration", str(self.duration), "--subject", subject, "--stream", stream,
             "--json", out, *extra], self.duration + 60, "meshgate-bench nats")
        return read_json(out)

    def redis_publish(self, server, producers, size, key, depth=256):
        out = self.scratch("redis.json")
        run([PEERS, "redis", "--port", str(server.port), "--producers", str(producers), "--depth", str(depth),
             "--size", str(size), "--duration", str(self.duration), "--key", key, "--json", out],
            self.duration + 60, "meshgate-bench redis")
        return read_json(out)

    # Figures ---------------------------------------------------------------

    def figure(self, id, group, label, unit, value, better="higher", peer=None, peer_value=None, target=None):
        """target: ("ratio_min", 1.5) / ("ratio_max", 1.0) against the peer, or ("value_max", 30) / ("value_min", x)."""
        f = {"id": id, "group": group, "label": label, "unit": unit, "value": value, "better": better}
        if peer is not None and peer_value:
            f["peer"] = {"name": peer, "value": peer_value}
            f["ratio"] = value / peer_value
        if target:
            kind, bound = target
            f["target"] = {"kind": kind, "bound": bound}
            figure = f.get("ratio") if kind.startswith("ratio") else value
            if figure is not None:
                f["met"] = figure >= bound if kind.endswith("min") else figure <= bound
        self.figures.append(f)
        return f

    # ---------------------------------------------------------------- scenarios

    def scenario_publish(self):
        """Durable publish throughput: every system up at once, the runs interleaved so drift in the
        machine's load hits them alike."""
        sizes = [100, 1024] if self.quick else [100, 1024, 4096]
        systems = {
            "meshgate-none": self.meshgate("none"),
            "meshgate-interval": self.meshgate("interval"),
            "meshgate-always": self.meshgate("always"),
            "jetstream": self.nats(),
            "redis-everysec": self.redis("everysec"),
            "redis-always": self.redis("always"),
        }
        raw = self.raw.setdefault("publish", {})

        def publish(name, producers, size, topic):
            server = systems[name]
            if name.startswith("meshgate"):
                return self.mesh_publish(server, producers, size, topic)
            if name == "jetstream":
                return self.nats_publish(server, producers, size, topic.replace("/", "."))
            return self.redis_publish(server, producers, size, topic)

        for size in sizes:
            for producers in ([1, 16] if size <= 1024 else [16]):
                key, topic = f"{size}/{producers}", f"pub/s{size}/p{producers}"
                for name in systems:
                    log(f"publish {name} {size} B × {producers} producers")
                    raw.setdefault(name, {})[key] = publish(name, producers, size, topic)
                # The `always` pair waits on fsyncs, whose latency on this shared disk drifts from one
                # minute to the next: a second round in the reverse order, and each side's mean.
                for name in ("redis-always", "meshgate-always"):
                    log(f"publish {name} {size} B × {producers} producers, second round")
                    again = publish(name, producers, size, topic)
                    first = raw[name][key]
                    first["rounds"] = [first["per_second"], again["per_second"]]
                    first["per_second"] = (first["per_second"] + again["per_second"]) / 2
        # Harness check: Redis's own C benchmark on the same server, 100 B, the same connections and
        # pipeline depth, sized to run about as long as the harness did.
        check = self.raw.setdefault("harness_check", {})
        if shutil.which("redis-benchmark"):
            for producers in (1, 16):
                ours = raw["redis-always"][f"100/{producers}"]["per_second"]
                count = max(20000, int(ours * self.duration))
                log(f"harness check: redis-benchmark -c {producers} -P 256 -n {count}")
                out = run(["redis-benchmark", "-p", str(systems["redis-always"].port), "-c", str(producers), "-P", "256",
                           "-n", str(count), "-q", "XADD", "check", "*", "d", "x" * 100], 300, "redis-benchmark")
                rate = float(re.findall(r"([0-9.]+) requests per second", out)[-1])
                check[f"redis-always/100/{producers}"] = {"hiredis_harness_per_s": ours, "redis_benchmark_per_s": rate}
                self.figure(f"harness.redis-always.s100.p{producers}", "harness check",
                            f"`meshgate-bench redis` vs `redis-benchmark -P 256 -c {producers}`, XADD 100 B, `appendfsync always`",
                            "events/s", ours, peer="redis-benchmark", peer_value=rate)
        for server in systems.values():
            PROCS.stop(server)
        self.raw["publish_depth"] = 256
        for size in sizes:
            for producers in ([1, 16] if size <= 1024 else [16]):
                key = f"{size}/{producers}"
                v = {name: raw[name][key]["per_second"] for name in raw}
                where = f"{size} B, {producers} producer{'s' if producers > 1 else ''}"
                main = size <= 1024
                self.figure(f"publish.s{size}.p{producers}.none-vs-jetstream", "durable publish",
                            f"meshgate `fsync: none` vs JetStream file store (both acknowledge after the OS write), {where}",
                            "events/s", v["meshgate-none"], peer="JetStream", peer_value=v["jetstream"],
                            target=("ratio_min", 1.5) if main else None)
                self.figure(f"publish.s{size}.p{producers}.interval-vs-jetstream", "durable publish",
                            f"meshgate `fsync: interval` vs JetStream file store, {where}",
                            "events/s", v["meshgate-interval"], peer="JetStream", peer_value=v["jetstream"],
                            target=("ratio_min", 1.5) if main else None)
                self.figure(f"publish.s{size}.p{producers}.always-vs-jetstream", "durable publish",
                            f"meshgate `fsync: always` vs JetStream (which does not fsync before its ack), {where}",
                            "events/s", v["meshgate-always"], peer="JetStream", peer_value=v["jetstream"])
                self.figure(f"publish.s{size}.p{producers}.interval-vs-redis-everysec", "durable publish",
                            f"meshgate `fsync: interval` vs Redis XADD `appendfsync everysec`, {where}",
                            "events/s", v["meshgate-interval"], peer="Redis everysec", peer_value=v["redis-everysec"])
                self.figure(f"publish.s{size}.p{producers}.always-vs-redis-always", "durable publish",
                            f"meshgate `fsync: always` vs Redis XADD `appendfsync always`, {where} (means of two rounds)",
                            "events/s", v["meshgate-always"], peer="Redis always", peer_value=v["redis-always"],
                            target=("ratio_min", 1.0) if main else None)
                for name in ("jetstream", "redis-everysec", "redis-always"):
                    self.figure(f"publish.s{size}.p{producers}.{name}", "peers", f"{name}, {where}", "events/s", v[name])

    def scenario_latency(self):
        """Publish → subscriber latency at fixed offered loads (open loop, one publishing connection,
        100 B): meshgate `none` and `always` vs a JetStream push consumer."""
        loads = [20000] if self.quick else [5000, 20000, 50000]
        systems = {"meshgate-none": self.meshgate("none"), "meshgate-always": self.meshgate("always"), "jetstream": self.nats()}
        raw = self.raw.setdefault("latency", {})
        for load in loads:
            for name, server in systems.items():
                log(f"latency {name} at {load}/s")
                extra = ["--latency", "--rate", str(load)]
                if name == "jetstream":
                    r = self.nats_publish(server, 1, 100, f"lat.r{load}", extra=extra)
                else:
                    r = self.mesh_publish(server, 1, 100, f"lat/r{load}", extra=extra)
                raw.setdefault(name, {})[str(load)] = r
        for server in systems.values():
            PROCS.stop(server)
        for load in loads:
            js = raw["jetstream"][str(load)]
            for mode, target in (("none", ("ratio_max", 1.0)), ("always", None)):
                m = raw[f"meshgate-{mode}"][str(load)]
                for p in ("p50", "p99"):
                    self.figure(f"latency.{load}.{p}.{mode}-vs-jetstream", "publish → subscribe latency",
                                f"{p} publish → subscriber, meshgate `fsync: {mode}` vs JetStream push consumer, {load:,} events/s",
                                "µs", m[f"{p}_us"], better="lower", peer="JetStream", peer_value=js[f"{p}_us"],
                                target=target if p == "p99" else None)

    def scenario_http(self):
        """HTTP publish (256 B POSTs, `fsync: always`) vs the bare SwiftNIO server, both under wrk."""
        if not shutil.which("wrk"):
            raise RuntimeError("wrk is missing: run scripts/setup.sh")
        bare_port = free_port()
        bare = PROCS.start("bare-http", [MESHGATE, "bare-http", "--port", str(bare_port)], self.scratch("bare.log"))
        wait_port(bare_port, bare)
        mesh = self.meshgate("always", name="meshgate-http")
        mesh_none = self.meshgate("none", name="meshgate-http-none")
        script = self.path("post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = string.rep("x", 256)\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        seconds = max(1, int(self.duration))

        def wrk(port):
            out = run(["wrk", "-t2", "-c128", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{port}/v1/publish/bench/http"],
                      seconds + 60, "wrk")
            rate = float(re.search(r"Requests/sec:\s*([0-9.]+)", out).group(1))
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            return rate, int(errors.group(1)) if errors else 0

        log("http: warm-up, then bare SwiftNIO and meshgate, two rounds in opposite orders")
        wrk(bare_port), wrk(mesh.http), wrk(mesh_none.http)
        # Two rounds, the second in the opposite order, and each server's mean: the machine drifts
        # within a minute (bare SwiftNIO alone has moved by 10 % between runs here).
        ports = {"bare": bare_port, "always": mesh.http, "none": mesh_none.http}
        rounds = {name: [] for name in ports}
        errors = 0
        for order in (["bare", "always", "none"], ["none", "always", "bare"]):
            for name in order:
                rate, non_2xx = wrk(ports[name])
                rounds[name].append(rate)
                errors += non_2xx if name != "bare" else 0
        bare_rate, mesh_rate, none_rate = (sum(rounds[n]) / len(rounds[n]) for n in ("bare", "always", "none"))
        for p in (bare, mesh, mesh_none):
            PROCS.stop(p)
        self.raw["http"] = {"bare_per_s": bare_rate, "meshgate_per_s": mesh_rate, "meshgate_non_2xx": errors,
                            "meshgate_none_per_s": none_rate, "rounds": rounds, "seconds": seconds, "connections": 128,
                            "threads": 2, "size": 256}
        self.figure("http.publish-vs-bare", "HTTP publish",
                    "HTTP publish (`fsync: always`, 256 B, wrk -t2 -c128) vs bare SwiftNIO answering 200, means of two rounds",
                    "requests/s", mesh_rate, peer="bare SwiftNIO", peer_value=bare_rate, target=("ratio_min", 0.8))
        self.figure("http.publish-none-vs-bare", "HTTP publish",
                    "HTTP publish with `fsync: none` (no wait for the disk: the HTTP and hand-off cost alone) vs bare SwiftNIO",
                    "requests/s", none_rate, peer="bare SwiftNIO", peer_value=bare_rate)

    def scenario_connections(self):
        """Normal clients beside 10,000 idle connections and 1,000 slowloris clients (a request head sent
        a byte a second): HTTP publish p99 under wrk, against a second gateway with none of them.

        A p99 from one 5 s run on this shared machine swings by 10x from minute to minute (quiet
        baselines from 0.6 to 36 ms), so the two gateways run side by side and are measured in
        alternating rounds (quiet, crowded, crowded, quiet); the figures are the means of two rounds.
        The slowloris clients drip only while the crowded gateway is measured."""
        if not shutil.which("wrk"):
            raise RuntimeError("wrk is missing: run scripts/setup.sh")
        idle_count, slow_count = (2000, 200) if self.quick else (10000, 1000)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard < idle_count + slow_count + 1000:
            raise RuntimeError(f"the open-file limit ({hard}) is below the {idle_count + slow_count} connections this needs")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # for this process and the gateways it starts
        limit = str(idle_count + slow_count + 1000)
        flags = ("--max-connections", limit, "--max-connections-per-peer", limit, "--idle-timeout", "300s", "--request-timeout", "300s")
        quiet = self.meshgate("none", name="meshgate-quiet", extra=flags)
        crowded = self.meshgate("none", name="meshgate-connections", extra=flags)
        script = self.path("post-small.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = string.rep("x", 100)\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n')
        seconds = max(2, int(self.duration))

        def p99(mesh):
            out = run(["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", script,
                       f"http://127.0.0.1:{mesh.http}/v1/publish/bench/connections"], seconds + 60, "wrk")
            m = re.search(r"99%\s+([0-9.]+)(us|ms|s)\b", out)
            value = float(m.group(1)) * {"us": 1, "ms": 1000, "s": 1_000_000}[m.group(2)]
            rate = float(re.search(r"Requests/sec:\s*([0-9.]+)", out).group(1))
            errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            return value, rate, int(errors.group(1)) if errors else 0

        log("connections: warm-up of both gateways")
        p99(quiet)
        p99(crowded)
        log(f"connections: opening {idle_count:,} idle connections and {slow_count:,} slowloris clients on one of them")
        held, stop, dripping = [], threading.Event(), threading.Event()
        for _ in range(idle_count):
            held.append(socket.create_connection(("127.0.0.1", crowded.http)))
        slow = []
        for _ in range(slow_count):
            c = socket.create_connection(("127.0.0.1", crowded.http))
            c.sendall(b"POST /v1/publish/bench/slow HTTP/1.1\r\nhost: x\r\n")
            slow.append(c)

        def drip():
            while not stop.wait(1.0):
                if not dripping.is_set():
                    continue
                for c in slow:
                    try:
                        c.send(b"x")
                    except OSError:
                        pass
        dripper = threading.Thread(target=drip, daemon=True)
        dripper.start()
        time.sleep(1)
        rss_loaded = rss_mib(crowded.pid)
        rounds = {"quiet": [], "crowded": []}
        errors = 0
        for order in (("quiet", "crowded"), ("crowded", "quiet")):
            for which in order:
                log(f"connections: {which}")
                if which == "crowded":
                    dripping.set()
                    time.sleep(1)
                value, rate, failed = p99(crowded if which == "crowded" else quiet)
                dripping.clear()
                rounds[which].append((value, rate))
                if which == "crowded":
                    errors += failed

        def still_open(c):
            # The gateway closed the connection if a read would see end of file.
            try:
                return c.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
            except BlockingIOError:
                return True
            except OSError:
                return False
        open_after = sum(1 for c in held + slow if still_open(c))
        stop.set()
        dripper.join()
        for c in held + slow:
            c.close()
        PROCS.stop(crowded)
        PROCS.stop(quiet)
        mean = lambda pairs, i: sum(p[i] for p in pairs) / len(pairs)
        quiet_p99, quiet_rate = mean(rounds["quiet"], 0), mean(rounds["quiet"], 1)
        loaded_p99, loaded_rate = mean(rounds["crowded"], 0), mean(rounds["crowded"], 1)
        self.raw["connections"] = {"idle": idle_count, "slowloris": slow_count, "quiet_p99_us": quiet_p99,
                                   "loaded_p99_us": loaded_p99, "quiet_per_s": quiet_rate, "loaded_per_s": loaded_rate,
                                   "rounds": rounds, "loaded_non_2xx": errors, "rss_mib_loaded": rss_loaded,
                                   "still_open_after": open_after}
        self.figure("connections.p99-loaded-vs-quiet", "connections",
                    f"HTTP publish p99 (wrk -c16, `fsync: none`) beside {idle_count:,} idle and {slow_count:,} slowloris connections, means of two rounds",
                    "µs", loaded_p99, better="lower", peer="a second gateway with no other connections, alternated", peer_value=quiet_p99,
                    target=("ratio_max", 2.0))
        self.figure("connections.rate-loaded-vs-quiet", "connections",
                    f"HTTP publish rate beside {idle_count:,} idle and {slow_count:,} slowloris connections, means of two rounds", "requests/s",
                    loaded_rate, peer="a second gateway with no other connections, alternated", peer_value=quiet_rate)
        self.figure("connections.rss", "connections", f"meshgate RSS holding {idle_count + slow_count:,} connections", "MiB",
                    rss_loaded, better="lower")

    def two_rounds(self, name, what, timeout, tool, argv):
        """Runs a bench tool twice (`argv(scratch_dir, json_out)`) and returns its first round's JSON
        with every `…_per_s` figure the mean of the two rounds, and both rounds under "rounds"."""
        runs = []
        for round_ in (1, 2):
            out = self.scratch(f"{name}-{round_}.json")
            log(f"{name}: {what}, round {round_}")
            run(argv(self.scratch(f"{name}-{round_}"), out), timeout, tool)
            runs.append(read_json(out))
        r = dict(runs[0])
        for k, v in runs[0].items():
            if k.endswith("_per_s") and isinstance(v, (int, float)):
                r[k] = (v + runs[1][k]) / 2
        r["rounds"] = runs
        return r

    def scenario_mqtt(self):
        messages = 30000 if self.quick else 100000
        # Each run takes seconds, and single runs here have ranged from 0.77 to 1.10 of the peer: two
        # rounds, and the mean of each figure.
        r = self.two_rounds("mqtt", f"{messages} messages through mosquitto", 600, "meshgate bench mqtt",
                            lambda scratch, out: [MESHGATE, "bench", "mqtt", "--messages", str(messages), "--dir", scratch, "--json", out])
        self.raw["mqtt"] = r
        self.figure("mqtt.ingress-vs-mosquitto-sub", "MQTT",
                    "MQTT ingress, QoS 1 flood → log (`fsync: always` before each PUBACK) vs mosquitto_sub on the same flood, means of two rounds",
                    "msg/s", r["ingress_meshgate_per_s"], peer="mosquitto_sub", peer_value=r["ingress_mosquitto_sub_per_s"],
                    target=("ratio_min", 0.9))
        self.figure("mqtt.egress-vs-mosquitto-pub", "MQTT",
                    "MQTT egress, log → broker (each PUBACKed) vs mosquitto_pub -l, both counted at one mosquitto_sub, means of two rounds",
                    "msg/s", r["egress_meshgate_per_s"], peer="mosquitto_pub", peer_value=r["egress_mosquitto_pub_per_s"],
                    target=("ratio_min", 0.9))

    def scenario_memory(self):
        """RSS at idle (meshgate, nats-server -js, redis-server), then meshgate under load on 10,000 topics."""
        # `interval`: 10,000 topics are 10,000 partitions, each fsynced on its own in `always` mode.
        mesh = self.meshgate("interval", name="meshgate-idle")
        nats = self.nats()
        redis = self.redis("always")
        time.sleep(2)
        idle = {"meshgate": rss_mib(mesh.pid), "nats-server": rss_mib(nats.pid), "redis-server": rss_mib(redis.pid)}
        idle_parts = {"meshgate_anon": rss_mib(mesh.pid, "RssAnon"), "meshgate_file": rss_mib(mesh.pid, "RssFile"),
                      "nats-server_anon": rss_mib(nats.pid, "RssAnon")}
        for p in (nats, redis):
            PROCS.stop(p)
        topics = 2000 if self.quick else 10000  # creating 10,000 topics alone can take a minute on a busy disk
        log(f"memory: idle {idle}; load on {topics} topics")
        peak = [idle["meshgate"]]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak.append(rss_mib(mesh.pid))
                except OSError:
                    return
                stop.wait(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()

        def listed():
            import urllib.request
            with urllib.request.urlopen(f"http://127.0.0.1:{mesh.http}/v1/topics", timeout=30) as resp:
                body = json.load(resp)
            return len(body.get("topics", body) if isinstance(body, dict) else body)

        saved = self.duration
        try:
            # First every topic is created (its first event makes its directory and segment), then
            # the measured load runs over all of them.
            created_at = time.monotonic()
            self.duration = 5.0
            topic_count = 0
            while topic_count < topics and time.monotonic() - created_at < 120:
                self.mesh_publish(mesh, 4, 100, "many", extra=["--topics", str(topics)])
                topic_count = listed()
            create_s = time.monotonic() - created_at
            log(f"memory: {topic_count} topics after {create_s:.1f} s")
            seconds = self.duration = saved if self.quick else 10.0
            r = self.mesh_publish(mesh, 4, 100, "many", extra=["--topics", str(topics)])
        finally:
            self.duration = saved
            stop.set()
            sampler.join()
        after = rss_mib(mesh.pid)
        # Recovery: kill -9 the loaded gateway and time its restart on the same data.
        PROCS.stop(mesh, signal.SIGKILL)
        log_mib = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(mesh.data) for f in fs) / 2**20
        restarted = self.meshgate("interval", name="meshgate-restart", data=mesh.data)
        PROCS.stop(restarted)
        self.raw["memory"] = {"idle_mib": idle, "idle_parts_mib": idle_parts, "topics": topics, "topics_listed": topic_count, "load": r, "create_s": create_s,
                              "peak_mib": max(peak), "after_mib": after, "seconds": seconds}
        self.raw["recovery"] = {"topics": topics, "log_mib": log_mib, "restart_s": restarted.startup_s}
        self.figure("rss.idle", "memory", "meshgate RSS at idle (vs nats-server -js idle)", "MiB", idle["meshgate"],
                    better="lower", peer="nats-server", peer_value=idle["nats-server"], target=("value_max", 30))
        self.figure("rss.idle.anon", "memory", "meshgate idle RSS that is anonymous memory (heap, stacks), vs nats-server's",
                    "MiB", idle_parts["meshgate_anon"], better="lower", peer="nats-server", peer_value=idle_parts["nats-server_anon"])
        self.figure("rss.idle.file", "memory", "meshgate idle RSS that is mapped files (its binary, the Swift runtime, Foundation, libc and libstdc++)",
                    "MiB", idle_parts["meshgate_file"], better="lower")
        self.figure("rss.idle.redis", "peers", "redis-server RSS at idle", "MiB", idle["redis-server"], better="lower")
        self.figure("rss.topics.peak", "memory",
                    f"meshgate peak RSS publishing to {topics:,} topics (`fsync: interval`, 4 connections × 256 in flight, {seconds:.0f} s)",
                    "MiB", max(peak), better="lower", target=("value_max", 200) if topics >= 10000 else None)
        self.figure("rss.topics.rate", "memory", f"publish rate spread over {topics:,} existing topics", "events/s",
                    r["per_second"])
        self.figure("topics.create", "memory", f"time to create {topics:,} topics by publishing to them", "s", create_s, better="lower")
        self.figure("recovery.restart", "start-up", f"restart after kill -9 with {topics:,} topics ({log_mib:.0f} MiB of log), to accepting",
                    "s", restarted.startup_s, better="lower")

    def scenario_startup(self):
        """Start-up to accepting connections, empty data, best of three each."""
        times = {"meshgate": [], "nats-server": [], "redis-server": []}
        for _ in range(3):
            for name, start in (("meshgate", lambda: self.meshgate("always", name="meshgate-start")),
                                ("nats-server", self.nats), ("redis-server", lambda: self.redis("always"))):
                proc = start()
                times[name].append(proc.startup_s)
                PROCS.stop(proc)
        best = {k: min(v) for k, v in times.items()}
        self.raw["startup"] = {"runs_s": times, "best_s": best}
        self.figure("startup.empty", "start-up", "start to accepting connections, empty data directory (vs nats-server -js)",
                    "s", best["meshgate"], better="lower", peer="nats-server", peer_value=best["nats-server"])
        self.figure("startup.empty.redis", "peers", "redis-server start to accepting connections", "s", best["redis-server"], better="lower")

    def scenario_fanout(self):
        """One publisher, 16 subscribers on the topic: the latency each subscriber sees, meshgate vs
        JetStream (16 push consumers)."""
        load = 2000
        mesh = self.meshgate("none", name="meshgate-fanout")
        nats = self.nats()
        log("fan-out 1 → 16")
        extra = ["--latency", "--rate", str(load), "--subscribers", "16"]
        m = self.mesh_publish(mesh, 1, 100, "fan/out", extra=extra)
        j = self.nats_publish(nats, 1, 100, "fan.out", extra=extra)
        PROCS.stop(mesh)
        PROCS.stop(nats)
        self.raw["fanout"] = {"rate": load, "subscribers": 16, "meshgate": m, "jetstream": j}
        for p in ("p50", "p99"):
            self.figure(f"fanout.16.{p}", "fan-out", f"{p} publish → each of 16 subscribers at {load:,} events/s "
                        "(meshgate `fsync: none` vs JetStream)", "µs", m[f"{p}_us"], better="lower",
                        peer="JetStream", peer_value=j[f"{p}_us"])
        self.figure("fanout.16.deliveries", "fan-out", "deliveries/s over the 16 subscribers", "deliveries/s",
                    m["samples"] / m["seconds"], peer="JetStream", peer_value=j["samples"] / j["seconds"])

    def scenario_routing(self):
        """End-to-end log → log routing: TCP publishes into `in/...` while a route copies every event to
        `out/{topic}`, against the same publishes with no route, on one gateway each."""
        size, producers = 100, 4
        plain = self.meshgate("always", name="meshgate-plain")
        log("routing: TCP publish with no route")
        base = self.mesh_publish(plain, producers, size, "in/bench")
        PROCS.stop(plain)
        routed = self.meshgate("always", name="meshgate-routed", routes=ROUTE_COPY)
        wait_routes(routed)
        log("routing: TCP publish into a routed topic")
        started = time.monotonic()
        self.mesh_publish(routed, producers, size, "in/bench")
        published = topic_end(routed, "in/bench")
        caught_up = wait_topic(routed, "out/in/bench", published, timeout=300)
        rate = published / (caught_up - started)
        PROCS.stop(routed)
        self.raw["routing"] = {"plain": base, "published": published, "seconds_to_route_all": caught_up - started}
        self.figure("routing.log-to-log-vs-publish", "routing",
                    f"events published over TCP and routed log → log (`fsync: always`, {size} B, {producers} connections), "
                    "vs TCP publish alone", "events/s", rate, peer="TCP publish, no route", peer_value=base["per_second"],
                    target=("ratio_min", 0.7))

    def scenario_bridge(self):
        """Cross-site forwarding between two gateways: steady forwarding against local TCP publish, and
        catch-up after an outage of the receiving site against the rate that built the backlog."""
        size, producers = 100, 4
        b_port = free_port()
        b = self.meshgate("always", name="site-b", node="site-b", tcp=b_port)
        a = self.meshgate("always", name="site-a", node="site-a", routes=ROUTE_BRIDGE.format(port=b_port))
        wait_routes(a)
        log("bridge: local TCP publish on a topic that is not forwarded")
        local = self.mesh_publish(a, producers, size, "local/bench")
        log("bridge: steady forwarding")
        steady, published, steady_seconds = self.forwarded(a, b, producers, size, "orders/steady")
        # No target: with the publishers and both sites on the same CPUs, B's storing of every event
        # takes from A's publishers (docs/bridging.md, "Performance"); the per-CPU figure below has it.
        self.figure("bridge.steady-vs-publish", "cross-site", f"events forwarded A → B while published on A, every process "
                    f"on every CPU ({size} B, {producers} connections, `fsync: always` on both)", "events/s", steady,
                    peer="TCP publish on A alone", peer_value=local["per_second"])
        outage = 10 if self.quick else 60
        offered = 5000
        log(f"bridge: site B down for {outage} s while A takes {offered} events/s")
        PROCS.stop(b, signal.SIGKILL)
        out = self.scratch("backlog.json")
        run([MESHGATE, "bench", "publish", "--server", f"tcp://127.0.0.1:{a.tcp}", "--connections", "1", "--size", str(size),
             "--duration", str(outage), "--rate", str(offered), "--topic", "orders/backlog", "--json", out],
            outage + 60, "meshgate bench publish")
        backlog = topic_end(a, "orders/backlog")
        built_rate = backlog / outage
        b = self.meshgate("always", name="site-b-again", node="site-b", tcp=b_port, data=b.data)
        restarted = time.monotonic()
        curve = []
        done = wait_topic(b, "orders/backlog", backlog, timeout=600, samples=curve)
        catch_up = backlog / (done - restarted)
        self.raw["bridge"] = {"local": local, "steady_published": published, "steady_seconds": steady_seconds,
                              "outage_s": outage, "backlog": backlog, "catch_up_s": done - restarted,
                              "offered_per_s": offered, "catch_up_curve": curve}
        self.figure("bridge.catch-up-vs-backlog-rate", "cross-site",
                    f"catch-up after a {outage} s outage of site B ({backlog:,} events queued on A), from B's restart",
                    "events/s", catch_up, peer="rate that built the backlog", peer_value=built_rate, target=("ratio_min", 3.0))
        PROCS.stop(a)
        PROCS.stop(b)
        self.bridge_per_core(size, producers)

    def forwarded(self, a, b, producers, size, topic, cpu=None):
        """Publishes on site A into a forwarded topic; returns events/s from the start of publishing
        until B held every one, the events published and those seconds."""
        started = time.monotonic()
        self.mesh_publish(a, producers, size, topic, cpu=cpu)
        published = topic_end(a, topic)
        seconds = wait_topic(b, topic, published, timeout=300) - started
        return published / seconds, published, seconds

    def bridge_per_core(self, size, producers):
        """Steady forwarding with each site on a CPU of its own, as sites on machines of their own
        are: A and its publishers on the first CPU, B on the second, in both the local publishes
        and the forwarded ones. Alternated rounds (local, forwarded, forwarded, local, twice), means
        of four each."""
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            log("bridge: one CPU only; no per-site measurement")
            return
        a_cpu, b_cpu = cpus[0], cpus[1]
        # What the outage and catch-up above wrote is still being written back.
        os.sync()
        wait_disk_idle()
        b_port = free_port()
        b = self.meshgate("always", name="site-b-own-cpu", node="site-b", tcp=b_port, cpu=b_cpu)
        a = self.meshgate("always", name="site-a-own-cpu", node="site-a", routes=ROUTE_BRIDGE.format(port=b_port), cpu=a_cpu)
        wait_routes(a)
        local, forwarded = [], []
        for r, kind in enumerate(("local", "forwarded", "forwarded", "local") * 2):
            log(f"bridge, a CPU per site: round {r + 1}, {kind}")
            if kind == "local":
                local.append(self.mesh_publish(a, producers, size, f"local/own-cpu-{r}", cpu=a_cpu)["per_second"])
                continue
            forwarded.append(self.forwarded(a, b, producers, size, f"orders/own-cpu-{r}", cpu=a_cpu)[0])
        PROCS.stop(a)
        PROCS.stop(b)
        self.raw["bridge"]["per_cpu"] = {"cpus": [a_cpu, b_cpu], "local_per_s": local, "forwarded_per_s": forwarded}
        self.figure("bridge.steady-own-cpu-vs-publish", "cross-site",
                    f"events forwarded A → B while published on A, each site on a CPU of its own (A and its publishers on "
                    f"CPU {a_cpu}, B on CPU {b_cpu}; {size} B, {producers} connections, `fsync: always` on both), mean of four "
                    "alternated rounds", "events/s", sum(forwarded) / len(forwarded),
                    peer=f"TCP publish on A alone, A and its publishers on CPU {a_cpu}", peer_value=sum(local) / len(local),
                    target=("ratio_min", 0.8))

    def scenario_metrics(self):
        """What metrics cost on the publish path: TCP publish into a gateway with `--metrics on` and
        one with `--metrics off`, alternating rounds so drift in the machine's load hits both alike."""
        rounds = 2 if self.quick else 5
        rates = {"on": [], "off": []}
        for r in range(rounds):
            for mode in ("on", "off") if r % 2 == 0 else ("off", "on"):
                server = self.meshgate("none", name=f"meshgate-metrics-{mode}", extra=("--metrics", mode))
                log(f"metrics: round {r + 1}, metrics {mode}")
                rates[mode].append(self.mesh_publish(server, 4, 100, "metrics/bench")["per_second"])
                PROCS.stop(server)
        self.raw["metrics"] = rates
        on, off = sum(rates["on"]) / rounds, sum(rates["off"]) / rounds
        self.figure("metrics.on-vs-off", "metrics cost",
                    f"TCP publish (`fsync: none`, 100 B, 4 connections) with metrics on, mean of {rounds} alternating rounds",
                    "events/s", on, peer="metrics off", peer_value=off, target=("ratio_min", 0.95))

    def scenario_ceilings(self):
        out = self.scratch("tcp.json")
        log("ceilings: raw loopback TCP")
        run([PEERS, "tcp", "--duration", str(min(self.duration, 3.0)), "--json", out], 120, "meshgate-bench tcp")
        r = read_json(out)
        self.raw["ceilings"] = {"loopback_tcp": r}
        self.figure("ceiling.loopback-tcp", "ceilings", "raw loopback TCP, one stream, 1 MiB writes", "MB/s", r["mb_per_second"])

    def scenario_log(self):
        out = self.scratch("log.json")
        argv = [MESHGATE, "bench", "log", "--dir", self.scratch("log"), "--json", out]
        if self.quick:
            argv += ["--quick", "--recovery-mib", "0", "--seconds", "1"]
        log("log: meshgate bench log")
        run(argv, 1800, "meshgate bench log")
        r = read_json(out)
        self.raw["log"] = r
        raw_write = {int(k): v for k, v in r["raw_write_mb_per_s"].items()}
        for a in r["append"]:
            shape = (a["mode"], a["size"], a["producers"], a["inflight"], a["batch"])
            self.figure(f"log.{a['mode']}.s{a['size']}.{a['producers']}x{a['inflight']}x{a['batch']}", "log",
                        f"log append `fsync: {a['mode']}`, {a['size']} B, {a['producers']} × {a['inflight']} × {a['batch']}",
                        "MB/s", a["mb_per_s"], peer="raw write + fdatasync", peer_value=raw_write.get(a["size"]),
                        # The built-in log's own targets: 1 KiB `interval` appends at 70 % of the disk's ceiling.
                        target=("ratio_min", 0.7) if shape == ("interval", 1024, 1, 8, 256) else None)
            # ... and in records/s: 100 B `none` appends, batched, and `always` with 64 producers each
            # keeping 64 appends in flight (only group commit gets there).
            if shape == ("none", 100, 1, 8, 256):
                self.figure("log.none.s100.batched-records", "log", "log append `fsync: none`, 100 B, batched (1 × 8 × 256)",
                            "records/s", a["records_per_s"], target=("value_min", 2_000_000))
            if shape == ("always", 100, 64, 64, 1):
                self.figure("log.always.s100.64x64-records", "log", "log append `fsync: always`, 100 B, 64 producers × 64 in flight",
                            "records/s", a["records_per_s"], target=("value_min", 500_000))
        if r.get("recovery_s") is not None:
            self.figure("log.recovery", "start-up", f"log recovery of {r['recovery_mib']} MiB after kill -9", "s",
                        r["recovery_s"], better="lower", target=("value_max", 2))
        for size, mbps in raw_write.items():
            self.figure(f"ceiling.raw-write.s{size}", "ceilings", f"raw sequential write + fdatasync ({size} B run)", "MB/s", mbps)

    def scenario_webhook(self):
        # Single runs of the connector have ranged from 0.43 to 0.51 of wrk within minutes: two
        # rounds, and the mean of each throughput figure (the latency figures are the first round's).
        quick = ["--quick", "--route-events", "20000"] if self.quick else []
        r = self.two_rounds("webhook", "meshgate bench webhook", 900, "meshgate bench webhook",
                            lambda scratch, out: [MESHGATE, "bench", "webhook", "--dir", scratch, "--json", out] + quick)
        self.raw["webhook"] = r
        threads = int(r.get("curl_threads", 1))
        self.figure("webhook.connector-vs-wrk", "webhook egress", f"webhook connector, one event a request ({threads} libcurl threads), vs wrk on the same receiver, means of two rounds",
                    "events/s", r["connector_per_s"], peer="wrk", peer_value=r["wrk_per_s"], target=("ratio_min", 0.5))
        self.figure("webhook.route-vs-wrk", "webhook egress", "route log → engine → webhook vs wrk, means of two rounds", "events/s",
                    r["route_per_s"], peer="wrk", peer_value=r["wrk_per_s"])
        self.figure("webhook.batch-vs-wrk", "webhook egress", "webhook connector, batch mode (≤ 100 events a request), vs wrk, means of two rounds",
                    "events/s", r["batch_per_s"], peer="wrk", peer_value=r["wrk_per_s"])
        self.figure("webhook.added-p99", "webhook egress", f"p99 latency the connector adds at {int(r['latency_rate']):,} events/s",
                    "µs", r["added_p99_us"], better="lower", target=("value_max", 2000))


# ---------------------------------------------------------------- routing helpers

ROUTE_COPY = """version: 1
routes:
  - name: copy
    from: "in/#"
    to: [{topic: "out/{topic}"}]
"""

ROUTE_BRIDGE = """version: 1
connectors:
  site-b: {{type: meshgate, url: "tcp://127.0.0.1:{port}"}}
routes:
  - name: to-b
    from: "orders/#"
    to: [{{connector: site-b, buffer: 4096, retry: {{backoff: 100ms, max_backoff: 1s}}}}]
"""


def pinned(cpu):
    """The command prefix that keeps a process on one CPU; none when cpu is None."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def admin(server, path):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http}{path}", timeout=10) as r:
        return json.load(r)


def topic_end(server, name):
    """Events in a topic: the sum of its partitions' end offsets (0 while it does not exist)."""
    for t in admin(server, "/v1/topics")["topics"]:
        if t["name"] == name:
            return sum(p["end_offset"] for p in t["partitions"])
    return 0


def wait_topic(server, name, count, timeout, samples=None):
    """Polls until `name` holds `count` events; returns the monotonic time it first did. `samples`, a
    list, collects (seconds since the call, events) along the way."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        held = topic_end(server, name)
        if samples is not None and (not samples or samples[-1][1] != held or held >= count):
            samples.append((round(time.monotonic() - started, 3), held))
        if held >= count:
            return time.monotonic()
        time.sleep(0.02)
    raise RuntimeError(f"{name} held {topic_end(server, name)} of {count} events after {timeout} s")


def wait_routes(server, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routes = admin(server, "/v1/routes")
        if routes.get("routes"):
            return
        time.sleep(0.05)
    raise RuntimeError("the route file did not load")


# ---------------------------------------------------------------- machine

def sh(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
    df = sh(["df", "-T", ROOT]).splitlines()
    return {
        "cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / 2**20, 1), "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "filesystem": df[-1].split()[1] if len(df) > 1 else "",
        "load_average_start": list(os.getloadavg()),
    }


def versions():
    first = lambda text: text.splitlines()[0] if text else ""
    pkg = lambda name: sh(["dpkg-query", "-W", "-f=${Version}", name])
    return {
        "meshgate": sh([MESHGATE, "--version"]),
        "swift": first(sh(["swift", "--version"])),
        "nats-server": sh(["nats-server", "--version"]).replace("nats-server: ", ""),
        "libnats": pkg("libnats-dev"),
        "redis-server": (re.search(r"v=(\S+)", sh(["redis-server", "--version"])) or [None, ""])[1],
        "hiredis": pkg("libhiredis-dev"),
        "mosquitto": pkg("mosquitto"),
        "libmosquitto": pkg("libmosquitto-dev"),
        "wrk": pkg("wrk"),
        "gnuplot": pkg("gnuplot-nox"),
    }


def merged(old, new):
    """`old` with `new`'s figures and raw data in place of the ones they measure again; the machine,
    versions and time of the new run are kept beside the old run's (`merged_from`)."""
    ids = {f["id"] for f in new["figures"]}
    out = dict(new)
    out["figures"] = [f for f in old["figures"] if f["id"] not in ids] + new["figures"]
    out["raw"] = {**old.get("raw", {}), **new["raw"]}
    out["scenarios"] = old.get("scenarios", []) + [s for s in new["scenarios"] if s not in old.get("scenarios", [])]
    out["failures"] = {**{k: v for k, v in old.get("failures", {}).items() if k not in new["scenarios"]}, **new["failures"]}
    out["merged_from"] = old.get("merged_from", []) + [{"taken_at": old["taken_at"], "scenarios": old.get("scenarios", []),
                                                         "machine": old.get("machine")}]
    out["rerun"] = sorted(set(old.get("rerun", [])) | set(new["scenarios"]))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s runs and the main scenarios only (≤ 2 minutes)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs/bench/results.json"))
    parser.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    parser.add_argument("--merge", action="store_true",
                        help="update the chosen scenarios' figures in an existing --out file, keeping the rest")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else [s for s in SCENARIOS if not (args.quick and s in ("log", "webhook", "startup"))]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        sys.exit(f"bench-suite: unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    # meshgate-bench is needed only by the scenarios that drive a peer through it.
    for binary in (MESHGATE, PEERS) if NEEDS_PEERS & set(chosen) else (MESHGATE,):
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench-suite: {binary} is missing; build with `make release`")
    suite = Suite(args)
    started = time.monotonic()
    info = machine()
    failures = {}
    info["steal_seconds"] = {}
    for name in chosen:
        t0 = time.monotonic()
        steal0 = steal_seconds()
        try:
            getattr(suite, f"scenario_{name}")()
        except Exception as e:  # one failed scenario is reported, the rest still run
            failures[name] = str(e)[-3000:]
            log(f"{name} FAILED: {e}")
        finally:
            PROCS.stop_all()
            # Each scenario's data directories go as soon as it ends (gigabytes after the publish runs).
            for entry in os.listdir(suite.work):
                shutil.rmtree(os.path.join(suite.work, entry), ignore_errors=True)
            # ... and the disk settles before the next one: no scenario starts behind another's
            # writeback, or behind the file system freeing what was deleted.
            os.sync()
            waited = wait_disk_idle()
            if waited >= 2:  # a second of quiet is the least it waits
                log(f"{name}: the disk was busy for {waited:.1f} s after it")
        stolen = steal_seconds() - steal0
        info["steal_seconds"][name] = round(stolen, 2)
        log(f"{name}: {time.monotonic() - t0:.0f} s" + (f", {stolen:.1f} s of CPU time stolen by the host" if stolen >= 0.5 else ""))
    info["load_average_end"] = list(os.getloadavg())
    results = {
        "schema": 1,
        "taken_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": args.quick,
        "seconds_per_run": suite.duration,
        "suite_seconds": round(time.monotonic() - started, 1),
        "scenarios": chosen,
        "failures": failures,
        "machine": info,
        "versions": versions(),
        "figures": suite.figures,
        "raw": suite.raw,
    }
    if args.merge and os.path.exists(args.out):
        results = merged(read_json(args.out), results)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")
    log(f"wrote {args.out} ({len(suite.figures)} figures, {results['suite_seconds']} s)")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
