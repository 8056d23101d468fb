#!/usr/bin/env python3
"""A small fault-injecting TCP proxy for the chaos suite.

`cut()` resets every open connection (RST) and closes the listener, so new connections are
refused; `cut(silent=True)` instead stalls every connection (nothing is read or forwarded either
way, new connections are accepted and stalled too) like a black-holed network. `restore()` reopens
the listener on the same port or lets stalled bytes flow again.

Standalone: faultproxy.py LISTEN_PORT TARGET_HOST:TARGET_PORT [--record DIR] forwards until
interrupted; with --record each connection's bytes are written to DIR/<n>-<direction>.bin.
"""
import os
import socket
import struct
import sys
import threading
import time


class FaultProxy:
    def __init__(self, target, port=0, record=None):
        self.target, self.port, self.record = target, port, record
        self.lock = threading.Lock()
        self.connections = []
        self.listener = None
        self.running = threading.Event()  # cleared while stalled
        self.running.set()
        self.stopped = False
        self.count = 0

    def start(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(128)
        threading.Thread(target=self.accept, args=(self.listener,), daemon=True).start()

    def accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                self.reset(client)
                continue
            with self.lock:
                self.count += 1
                n = self.count
                self.connections += [client, upstream]
            for src, dst, direction in ((client, upstream, "up"), (upstream, client, "down")):
                threading.Thread(target=self.pump, args=(src, dst, n, direction), daemon=True).start()

    def pump(self, src, dst, n, direction):
        out = open(os.path.join(self.record, f"{n:03d}-{direction}.bin"), "wb") if self.record else None
        try:
            while True:
                self.running.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.running.wait()
                dst.sendall(data)
                if out:
                    out.write(data)
        except OSError:
            pass
        finally:
            if out:
                out.close()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @staticmethod
    def reset(sock):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def close_listener(self):
        # shutdown() wakes the thread blocked in accept() (close() alone would not, and the port
        # would stay bound until it returned).
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None

    def cut(self, silent=False):
        if silent:
            self.running.clear()
            return
        with self.lock:
            self.close_listener()
            for s in self.connections:
                self.reset(s)
            self.connections = []

    def restore(self):
        if not self.running.is_set():
            self.running.set()
            return
        if self.listener is None:
            for _ in range(50):
                try:
                    self.start()
                    return
                except OSError:
                    time.sleep(0.1)
            raise RuntimeError(f"cannot listen on port {self.port} again")

    def stop(self):
        self.running.set()
        with self.lock:
            self.close_listener()
            for s in self.connections:
                self.reset(s)
            self.connections = []


if __name__ == "__main__":
    port, target = int(sys.argv[1]), sys.argv[2].rsplit(":", 1)
    record = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--record" else None
    if record:
        os.makedirs(record, exist_ok=True)
    proxy = FaultProxy((target[0], int(target[1])), port=port, record=record)
    proxy.start()
    print(f"proxy 127.0.0.1:{proxy.port} -> {target[0]}:{target[1]}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()
