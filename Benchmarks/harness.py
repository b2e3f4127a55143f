"""The benchmarks' harness: what every scenario of Benchmarks/ shares, and no scenario.

  processes  free_port, port_free, wait_port, http_get; nginx peers (Nginx, Sink: `return 200`
             with a request counter, Refuser: `503` with Retry-After)
  load       wrk with post.lua (the recorded 735-byte pyroscope-io push, FIXTURE), pacing
  measuring  cpu_ticks, cpu_ns, proc_mem, MemSampler
  statistics med, spread
  results    machine (what the figures were taken on), loadavg, write_results into
             Benchmarks/results/ (git-ignored)

The scenarios import from here: run_bench.py (relay vs nginx, make bench), extension_cost.py
(the cost to the function, make bench-cost and the end of make bench), cost.py,
memory_after_burst.py and ladder.py (make bench-ladder). Standard library only: make
bench-ladder runs under the machine's python3.
"""

import json
import zipfile
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results"
FIXTURE = ROOT / "Tests/Fixtures/clients/pyroscope-io-1.4.0-push-periodic.bin"
LUA = BENCH_DIR / "post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.005)
    raise RuntimeError(f"port {port} did not open")


def http_get(port, path, timeout=5.0):
    """Minimal HTTP/1.0 GET; returns (status, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


def port_free(port, host="0.0.0.0"):
    """Whether `port` can be bound now (the Go extension insists on 4040)."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


NGINX_COMMON = """daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 8m;
  client_body_buffer_size 1m;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
{servers}
}}
"""


class Nginx:
    def __init__(self, name, servers_fn):
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-nginx-{name}-"))
        self.name = name
        self.servers_fn = servers_fn
        self.proc = None

    def config(self):
        return NGINX_COMMON.format(d=self.dir, servers=self.servers_fn())

    def argv(self):
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        return ["/usr/sbin/nginx", "-c", str(conf), "-p", str(self.dir), "-e", str(self.dir / "error.log")]

    def start(self, wait_ports):
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL)
        for p in wait_ports:
            wait_port(p)
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else None
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


class Sink(Nginx):
    """nginx `return 200` on `port`; stub_status on `status_port` counts the requests."""

    def __init__(self):
        self.port, self.status_port = free_port(), free_port()
        super().__init__(
            "sink",
            lambda: f"  server {{ listen 127.0.0.1:{self.port} backlog=4096; location / {{ return 200; }} }}\n"
            f"  server {{ listen 127.0.0.1:{self.status_port}; location / {{ stub_status; }} }}",
        )
        self.queries = 0

    def start(self):
        pid = super().start([self.port, self.status_port])  # wait_port connects only: no request
        self.queries = 0
        return pid

    def count(self):
        """Requests the sink answered on its data port (status queries subtracted)."""
        self.queries += 1
        return stub_requests(self.status_port) - self.queries


def stub_requests(port):
    """nginx stub_status `requests` (includes the status request itself)."""
    _, body = http_get(port, "/")
    m = re.search(rb"\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n", body)
    return int(m.group(3))


class Refuser(Nginx):
    """nginx answering every request `503` with `Retry-After`: a remote that is down."""

    def __init__(self):
        self.port = free_port()
        super().__init__(
            "refuser",
            lambda: f"  server {{ listen 127.0.0.1:{self.port} backlog=4096; "
            f"location / {{ add_header Retry-After 1 always; return 503; }} }}",
        )

    def start(self):
        return super().start([self.port])


# --------------------------------------------------------------------------- load


def wrk(port, body, conns, duration, threads=None, delay_ms=0, max_n=0, timeout_s=10):
    threads = threads or (1 if conns < 2 else min(2, conns))
    env = dict(os.environ, BENCH_BODY=str(body), BENCH_DELAY_MS=str(delay_ms), BENCH_MAX=str(max_n))
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", f"--timeout={timeout_s}s", "--latency", "-s", str(LUA),
            f"http://127.0.0.1:{port}/push.v1.PusherService/Push"]
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"^BENCHJSON (.*)$", p.stdout, re.M)
    if not m:
        raise RuntimeError(f"wrk failed: {p.stdout}\n{p.stderr}")
    r = json.loads(m.group(1))
    e = r["errors"]
    r["non2xx"] = e["status"]
    r["socket_errors"] = e["connect"] + e["read"] + e["write"] + e["timeout"]
    r["ok"] = r["requests"] - e["status"]  # wrk counts completed responses; status errors are >= 400
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["ok_rps"] = r["ok"] / (r["duration_us"] / 1e6)
    pct = dict((float(p_), v) for p_, v in r["latency_us"]["pct"])
    r["p50_us"], r["p99_us"], r["p999_us"] = pct[50.0], pct[99.0], pct[99.9]
    r["conns"], r["threads"], r["delay_ms"] = conns, threads, delay_ms
    return r


def pacing(rate):
    """(connections, delay_ms) so that connections * 1000 / delay_ms ~ rate."""
    best = None
    for d in (1, 2, 3, 4, 5, 8, 10, 20):
        c = max(1, min(256, round(rate * d / 1000)))
        err = abs(c * 1000 / d - rate) / rate + (0.002 * c / 64)
        if best is None or err < best[2]:
            best = (c, d, err)
    return best[0], best[1]


# --------------------------------------------------------------------------- measuring


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)


def proc_mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def cpu_ns(pid):
    """CPU time of every live thread of `pid` in nanoseconds (schedstat: exact, unlike ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that just ended
    return total


class MemSampler(threading.Thread):
    def __init__(self, pid, interval=0.05):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.phase = "idle"
        self.samples = []  # (t, phase, RssAnon kB, RssFile kB, RssShmem kB)
        self.stop_ev = threading.Event()
        self.last = None

    def run(self):
        while not self.stop_ev.is_set():
            try:
                m = proc_mem(self.pid)
            except OSError:
                break
            self.last = m
            self.samples.append((time.monotonic(), self.phase, m["RssAnon"], m["RssFile"], m.get("RssShmem", 0)))
            self.stop_ev.wait(self.interval)

    def summary(self):
        def pick(phase):
            return [s for s in self.samples if s[1] == phase]

        def stat(rows, fn):
            if not rows:
                return None
            anon, file_ = [r[2] for r in rows], [r[3] + r[4] for r in rows]
            tot = [a + f for a, f in zip(anon, file_)]
            return {"anon_kb": fn(anon), "file_kb": fn(file_), "total_kb": fn(tot)}

        idle, load, after = pick("idle"), pick("load"), pick("after")
        return {
            "idle": stat(idle[-5:], statistics.median),
            "during_median": stat(load, statistics.median),
            "during_max": stat(load, max),
            "after": stat(after[-5:], statistics.median),
            "peak": stat(self.samples, max),  # each column's own max
            "vm_hwm_kb": self.last.get("VmHWM") if self.last else None,
            "threads": self.last.get("Threads") if self.last else None,
            "samples": len(self.samples),
        }


# --------------------------------------------------------------------------- statistics


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs, fmt):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    m = statistics.median(xs)
    if len(xs) == 1:
        return fmt(m)
    return f"{fmt(m)} ({fmt(min(xs))}–{fmt(max(xs))})"


# --------------------------------------------------------------------------- results


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def machine():
    def sh(*a):
        try:
            return subprocess.run(a, capture_output=True, text=True).stdout.strip() or subprocess.run(
                a, capture_output=True, text=True).stderr.strip()
        except OSError:
            return None

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), None)
    mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), None)
    return {
        "nproc": os.cpu_count(), "loadavg": loadavg(), "kernel": platform.release(),
        "cpu": cpu, "mem_total": mem, "nginx": sh("nginx", "-v"), "wrk": sh("wrk", "-v").splitlines()[0],
        "git": sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "git_dirty": bool(sh("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no")),
    }


def write_results(out, stamp, data, table, suffix=""):
    """`out`/STAMP[SUFFIX].json (the raw data) and .md (the table); returns both paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jpath, mpath = out / f"{stamp}{suffix}.json", out / f"{stamp}{suffix}.md"
    jpath.write_text(json.dumps(data, indent=1))
    mpath.write_text(table + "\n")
    return jpath, mpath


def zip_extensions(directory, binary, name):
    """A layer zip of `directory`/extensions/ as make layer makes it (zip -X -r, then advzip); with zipfile,
    holding `binary` as extensions/`name`, where zip is missing. Returns its path."""
    zipped = Path(directory) / "layer.zip"
    if shutil.which("zip"):
        subprocess.run(["zip", "-q", "-X", "-r", str(zipped), "extensions"], cwd=directory, check=True)
    else:
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
            z.write(binary, f"extensions/{name}")
    # As layer/build.sh does to the layer: a peer's zip is compared recompressed the same way.
    if shutil.which("advzip"):
        subprocess.run(["advzip", "-z", "-3", "-q", str(zipped)], check=True)
    return zipped
