"""What `make bench` measures in turns: the relay (A) and nginx configured as the closest
hand-rolled alternative (B), each started, configured and stopped the same way; and the
start-up timings of both (exec until the port accepts, Benchmarks/startup.c)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Nginx, free_port, http_get, stub_requests, wait_port  # noqa: E402

# The relay's memory queue in the benchmark: large enough that the ack path never spools.
QUEUE_MAX_BYTES = 256 * 1024 * 1024


class RelayTarget:
    name = "relay"

    def __init__(self, binary, sink, extra_env=None):
        self.binary, self.sink = binary, sink
        self.extra_env = extra_env or {}
        self.proc = None

    def env(self, port):
        e = dict(os.environ)
        e.update(
            PYROSCOPE_DEV_MODE="true",
            PYROSCOPE_REMOTE_ADDRESS=f"http://127.0.0.1:{self.sink.port}",
            PYROSCOPE_LISTEN_ADDRESS=f"127.0.0.1:{port}",
            PYROSCOPE_LOG_LEVEL="error",
            PYROSCOPE_SPOOL_MAX_BYTES="0",
            PYROSCOPE_QUEUE_MAX_BYTES=str(QUEUE_MAX_BYTES),
        )
        e.update(self.extra_env)
        return e

    def start(self):
        self.port = free_port()
        self.ack_port = self.proxy_port = self.port
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([self.binary], env=self.env(self.port), stdin=subprocess.DEVNULL, stderr=self.stderr)
        wait_port(self.port)
        self.pid = self.proc.pid
        return self.pid

    def metrics(self):
        _, body = http_get(self.port, "/metrics")
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def accepted(self):
        """Uploads acknowledged with 200 (queued for relaying)."""
        return int(self.metrics().get("pyroscope_relay_uploads_accepted_total", 0))

    def backlog(self):
        m = self.metrics()
        return m.get("pyroscope_relay_queue_items", 0) + m.get("pyroscope_relay_uploads_in_flight", 0)

    def drain(self, timeout=30.0):
        """Wait until the relay's queue is empty and nothing is in flight."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.backlog() == 0:
                return time.monotonic() - t0
            time.sleep(0.01)
        return None

    def scrape_cmd(self):
        return f"http://127.0.0.1:{self.port}/metrics"

    def startup_argv(self, port):
        return [self.binary], self.env(port)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.stderr.seek(0)
        err = self.stderr.read().decode(errors="replace")
        return rc, err[-2000:]


class NginxTarget:
    """One single-process nginx: `return 200` (ack upper bound) and `proxy_pass` to the
    sink (the hand-rolled relay: buffers the body in memory, keep-alive upstream pool)."""

    name = "nginx"

    def __init__(self, sink):
        self.sink = sink

    def servers(self, ack_port, proxy_port, status_port):
        return f"""  upstream sink {{ server 127.0.0.1:{self.sink.port}; keepalive 64; }}
  server {{ listen 127.0.0.1:{ack_port} backlog=4096; location / {{ return 200; }} }}
  server {{
    listen 127.0.0.1:{proxy_port} backlog=4096;
    location / {{
      proxy_pass http://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering on;
      proxy_buffering on;
    }}
  }}
  server {{ listen 127.0.0.1:{status_port}; location / {{ stub_status; }} }}"""

    def start(self):
        self.ack_port, self.proxy_port, self.status_port = free_port(), free_port(), free_port()
        self.queries = 0
        ports = (self.ack_port, self.proxy_port, self.status_port)
        self.ng = Nginx("target", lambda: self.servers(*ports))
        self.pid = self.ng.start(list(ports))
        self.proc = self.ng.proc
        return self.pid

    def drain(self, timeout=0):
        return 0.0  # proxy_pass is synchronous: answered == delivered

    def backlog(self):
        return 0

    def accepted(self):
        """Requests nginx handled (its own status queries subtracted); in the delivered
        scenarios only the proxy_pass server gets traffic."""
        self.queries = getattr(self, "queries", 0) + 1
        return stub_requests(self.status_port) - self.queries

    def scrape_cmd(self):
        return f"http://127.0.0.1:{self.status_port}/"

    def startup_argv(self, port):
        st = Nginx("startup", lambda: f"  server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }}")
        return st.argv(), dict(os.environ), st

    def stop(self):
        return self.ng.stop(), ""


# --------------------------------------------------------------------------- scenarios


def startups(target, startup_bin, n):
    out = []
    for _ in range(n):
        port = free_port()
        spec = target.startup_argv(port)
        argv, env = spec[0], spec[1]
        p = subprocess.run([str(startup_bin), str(port)] + argv, env=env, capture_output=True, text=True, timeout=30)
        if len(spec) > 2:
            shutil.rmtree(spec[2].dir, ignore_errors=True)
        if p.returncode != 0:
            raise RuntimeError(f"startup failed: {p.stderr}")
        out.append(json.loads(p.stdout)["startup_us"])
    return out


def startup_floor(startup_bin, n):
    """The harness's own cost: fork+exec of a trivial C listener until it accepts."""
    out = []
    for _ in range(n):
        port = free_port()
        p = subprocess.run([str(startup_bin), str(port), str(startup_bin), "--listen", str(port)],
                           capture_output=True, text=True, timeout=30)
        out.append(json.loads(p.stdout)["startup_us"])
    return out


# --------------------------------------------------------------------------- report
