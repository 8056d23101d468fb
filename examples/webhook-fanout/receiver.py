#!/usr/bin/env python3
"""A webhook receiver for meshgate's webhook connector, on Python's http.server.

Prints one JSON line per request (to stdout, or to --log): the path, the CloudEvent id and type
(binary, structured or batch mode), the Standard Webhooks id, the W3C trace context, and whether the signature verified
with each named secret (with the reference verifier, PyPI `standardwebhooks`).

  receiver.py --port 9000 --secret billing=whsec_... [--fail-every 5] [--tls-cert C --tls-key K [--client-ca CA]]

--port 0 picks a free port; the first line printed is `listening on http(s)://127.0.0.1:PORT`.
--fail-every N answers every Nth request with 503 (to watch meshgate retry).
"""
import argparse
import json
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:  # signatures are then reported as unverified
    Webhook = None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--secret", action="append", default=[], metavar="NAME=whsec_...",
                    help="verify signatures with this secret (repeatable)")
    ap.add_argument("--log", help="append the JSON lines to this file instead of stdout")
    ap.add_argument("--status", type=int, default=204, help="status of a successful answer")
    ap.add_argument("--fail-every", type=int, default=0, help="answer every Nth request with 503")
    ap.add_argument("--body", default="", help="body of a successful answer (written after the headers, as most handlers do)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = ap.parse_args()
    # A parent may have started us with SIGTERM blocked; stopping must work all the same.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])

    verifiers = {}
    for item in args.secret:
        name, _, secret = item.partition("=")
        if Webhook is None:
            sys.exit("receiver.py: --secret needs the standardwebhooks package (pip install standardwebhooks)")
        verifiers[name] = Webhook(secret)

    out = open(args.log, "a", buffering=1) if args.log else sys.stdout
    lock = threading.Lock()
    counter = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as meshgate's connection reuse expects

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                counter["n"] += 1
                n = counter["n"]
            headers = {k.lower(): v for k, v in self.headers.items()}
            record = {
                "path": self.path,
                "content_type": headers.get("content-type"),
                "webhook_id": headers.get("webhook-id"),
                "traceparent": headers.get("traceparent"),
                "tracestate": headers.get("tracestate"),
                "verified": {},
            }
            ctype = (headers.get("content-type") or "").split(";")[0].strip()
            if ctype == "application/cloudevents+json":
                doc = json.loads(body)
                record.update(mode="structured", ids=[doc.get("id")], type=doc.get("type"))
            elif ctype == "application/cloudevents-batch+json":
                docs = json.loads(body)
                record.update(mode="batch", ids=[d.get("id") for d in docs])
            else:
                record.update(mode="binary", ids=[headers.get("ce-id")], type=headers.get("ce-type"),
                              topic=headers.get("meshgate-topic"))
            for name, wh in verifiers.items():
                try:
                    wh.verify(body, headers, json_parse=False)
                    record["verified"][name] = True
                except Exception:
                    record["verified"][name] = False
            failing = args.fail_every and n % args.fail_every == 0
            record["status"] = 503 if failing else args.status
            with lock:
                out.write(json.dumps(record) + "\n")
                out.flush()
            self.send_response(record["status"])
            if failing:
                self.send_header("Retry-After", "1")
            body = b"" if failing else args.body.encode()
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, *a):
            pass

    class Server(ThreadingHTTPServer):
        # socketserver's default listen backlog is 5: a sender opening a few dozen connections at
        # once would overflow it and see connections that hang until TCP retransmits.
        request_queue_size = 1024

    server = Server((args.host, args.port), Handler)
    server.daemon_threads = True
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print(f"listening on {scheme}://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
