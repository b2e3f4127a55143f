"""The peers of make bench-cost's CPU-share mode (Benchmarks/cpu_share.py), outside the cgroup:
the user's Pyroscope server over HTTPS with a real-sized trust bundle, and Lambda's Extensions API.
Standard library only (and the openssl command for the certificates)."""

import json
import os
import queue
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def now_ms():
    return time.monotonic_ns() / 1e6


def cpu_ms(pid):
    """CPU the process has had so far, every thread (schedstat, ns): where in its life it spends."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError):
        pass
    return total / 1e6


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HTTPSRemote:
    """The user's Pyroscope server: HTTPS on 127.0.0.1, answers 200, records when each upload
    was read whole. Its certificate is signed by a CA made here; `bundle` is the system's trust
    bundle with that CA appended, so the client parses as many certificates as in Lambda."""

    def __init__(self, directory):
        d = Path(directory)
        ca, leaf = d / "ca.pem", d / "server.pem"
        (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        for args in (
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign,cRLSign", "-keyout", str(d / "ca.key"), "-out", str(ca)],
            ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(d / "server.key"), "-out", str(d / "server.csr")],
            ["x509", "-req", "-in", str(d / "server.csr"), "-CA", str(ca), "-CAkey", str(d / "ca.key"), "-CAcreateserial",
             "-days", "2", "-extfile", str(d / "ext"), "-out", str(leaf)],
        ):
            subprocess.run(["openssl", *args], check=True, capture_output=True)
        system = Path(SYSTEM_BUNDLE).read_text() if Path(SYSTEM_BUNDLE).exists() else ""
        self.bundle = d / "bundle.pem"
        self.bundle.write_text(system + ca.read_text())
        self.certificates = self.bundle.read_text().count("BEGIN CERTIFICATE")
        self.arrivals, self.lock = [], threading.Lock()
        remote = self

        class Handler(Quiet):
            def do_POST(self):
                self.body()
                with remote.lock:
                    remote.arrivals.append(now_ms())
                self.reply(200)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(leaf), str(d / "server.key"))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first_after(self, t0, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.lock:
                later = [t for t in self.arrivals if t >= t0]
            if later:
                return later[0]
            time.sleep(0.002)
        return None

    def stop(self):
        self.server.shutdown()


class ExtensionsAPI:
    """The fake Extensions API of one turn at a time: register, /event/next answered from a queue
    of events, init/exit errors recorded, Telemetry subscriptions accepted."""

    def __init__(self):
        self.reset(None)
        api = self

        class Handler(Quiet):
            def do_POST(self):
                arrived = now_ms()
                self.body()
                if self.path.endswith("/extension/register"):
                    api.registered_at = arrived
                    api.cpu_at_register = api.cpu()
                    if api.on_register:
                        api.on_register()
                    self.reply(200, b'{"functionName":"bench","functionVersion":"$LATEST","handler":"index.handler"}',
                               [("Lambda-Extension-Identifier", "bench-extension-id")])
                elif self.path.endswith("/init/error") or self.path.endswith("/exit/error"):
                    api.errors.append(self.path)
                    self.reply(202, b"{}")
                else:
                    self.reply(404, b"{}")

            def do_PUT(self):
                self.body()
                self.reply(200, b'"OK"')

            def do_GET(self):
                if not self.path.endswith("/extension/event/next"):
                    return self.reply(404, b"{}")
                arrived = now_ms()
                api.cpu_at_nexts.append(api.cpu())
                api.nexts.append(arrived)
                try:
                    event = api.events.get(timeout=60)
                except queue.Empty:
                    return self.reply(500, b"{}")
                self.reply(200, json.dumps(event).encode(), [("Lambda-Extension-Event-Identifier", "bench-event")])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, on_register, pid=None):
        self.on_register, self.registered_at, self.nexts, self.errors = on_register, None, [], []
        self.pid, self.cpu_at_register, self.cpu_at_nexts = pid, None, []
        self.events = queue.Queue()

    def cpu(self):
        return cpu_ms(self.pid) if self.pid else None

    def wait_nexts(self, count, timeout_s):
        end = time.monotonic() + timeout_s
        while len(self.nexts) < count and time.monotonic() < end:
            time.sleep(0.001)
        return self.nexts[count - 1] if len(self.nexts) >= count else None

    def stop(self):
        self.server.shutdown()


def event(kind):
    deadline = int(time.time() * 1000) + (2000 if kind == "SHUTDOWN" else 30000)
    if kind == "SHUTDOWN":
        return {"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": deadline}
    return {"eventType": "INVOKE", "deadlineMs": deadline, "requestId": f"bench-{time.monotonic_ns()}",
            "invokedFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
            "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-00000000-000000000000000000000000"}}
