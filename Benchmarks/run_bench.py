#!/usr/bin/env python3
"""Relay vs nginx benchmark, run by `make bench`.

Runs the same scenarios against our relay (A) and against nginx configured as the closest
hand-rolled alternative (B), taking turns A B A B ..., all on 127.0.0.1:

  1. ack path       wrk --latency POSTs (1 KB real push body, 64 KB gzip body) with 1 and
                    32 connections; relay (upstream = the sink) vs nginx `return 200`.
  2. delivered      to a counting sink (nginx `return 200` + stub_status request counter):
                    closed-loop saturation (32 conns) and a paced ramp (wrk `delay()`);
                    relay vs nginx `proxy_pass` to the same sink.
  3. memory         RssAnon/RssFile from /proc/PID/status, sampled every 50 ms: idle,
                    during load, after load, peak.
  4. start-up       exec until the port accepts a connection (Benchmarks/startup.c), median of N.
  5. CPU/request    utime+stime from /proc/PID/stat around a fixed number of paced requests
                    (relay: until the sink has them all).
  6. logging        LogBench lines/s (JSON line it prints) and GET /metrics scrape time.
  7. log flood      log bytes per refused upload while wrk floods the relay and its remote
                    answers 503 (nginx `return 503`), at the default log level.
  8. cost           with --layer-binary: what the shipped binary costs the function (init,
                    idle memory, CPU of a life, CPU per upload, uploads/s, sizes), in turns
                    with --peer (BENCH_PEER: the Go extension, say); Benchmarks/extension_cost.py.

Writes Benchmarks/results/<ts>.json (raw), <ts>.md (table) and <ts>-latency.png; prints the
table. Environment: BENCH_QUICK=1 (one round, short runs), BENCH_ROUNDS, BENCH_DURATION.
The relay inherits the environment, except the settings RelayTarget.env sets: so
`PYROSCOPE_SELF_PROFILING=true make bench` measures the relay with self-profiling on
(compare with a run without), and `PYROSCOPE_NUM_WORKERS=32 make bench` with more
senders. Benchmarks/cost.py (CPU and context switches per upload, two binaries taking
turns) and Benchmarks/memory_after_burst.py take the same variables.
"""

import argparse
import gzip
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extension_cost  # noqa: E402
from harness import (  # noqa: E402
    CLK_TCK, FIXTURE, RESULTS, MemSampler, Nginx, Refuser, Sink, cpu_ns, cpu_ticks, free_port, http_get, loadavg,
    machine, med, pacing, spread, stub_requests, wait_port, write_results, wrk)

QUEUE_MAX_BYTES = 256 * 1024 * 1024


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- targets: A and B


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


def session(target, sink, cfg, bodies):
    """One turn: start `target`, run every load scenario, stop it. Returns raw results."""
    res = {"target": target.name}
    pid = target.start()
    try:
        return _session(target, pid, sink, cfg, bodies, res)
    finally:
        if target.proc.poll() is None:  # an exception left it running
            target.proc.kill()
            target.proc.wait()


def _session(target, pid, sink, cfg, bodies, res):
    sampler = MemSampler(pid)
    sampler.start()
    time.sleep(cfg["idle_s"])
    sampler.phase = "load"
    D, W = cfg["duration"], cfg["warmup"]

    # 1. ack path
    res["ack"] = {}
    for bname, body in bodies.items():
        for c in (1, 32):
            target.drain()
            wrk(target.ack_port, body, c, W)  # warm-up, discarded
            target.drain()
            r = wrk(target.ack_port, body, c, D)
            res["ack"][f"{bname}_c{c}"] = r
            log(f"  {target.name} ack {bname} c{c}: {r['rps']:.0f} req/s ({r['ok_rps']:.0f} with 200), "
                f"non2xx {r['non2xx']}, p99 {r['p99_us']} us")
    target.drain()

    # 2. delivered throughput, closed loop (saturation)
    res["delivered"] = {}
    for bname, body in bodies.items():
        target.drain()
        a0, s0, t0 = target.accepted(), sink.count(), sink_ticks(sink)
        r = wrk(target.proxy_port, body, 32, D)
        s1, t1 = sink.count(), sink_ticks(sink)
        drain_s = target.drain()
        a1, s2 = target.accepted(), sink.count()
        dur = r["duration_us"] / 1e6
        r.update(
            accepted=a1 - a0, sink_during=s1 - s0, sink_total=s2 - s0, delivered_rps=(s1 - s0) / dur,
            loss=(a1 - a0) - (s2 - s0), drain_s=drain_s,
            sink_cpu_util=(t1 - t0) / CLK_TCK / dur,
        )
        res["delivered"][bname] = r
        log(f"  {target.name} delivered {bname}: {r['delivered_rps']:.0f}/s to sink, offered {r['rps']:.0f}/s, "
            f"non2xx {r['non2xx']}, loss {r['loss']}, sink cpu {r['sink_cpu_util']:.0%}")

    # 2b. paced ramp (1 KB body): the highest offered rate with no refusals and no loss.
    # Geometric steps (x1.3; quick x1.6) from half of max(closed-loop delivered rate, the
    # refusal-free 1-connection ack rate) until a step fails or
    # the generator cannot reach the rate, then one bisection step. wrk's delay() paces
    # each connection; the connection count is corrected by what the last step achieved.
    hint = res["ack"]["1k_c1"]
    res["ramp_base"] = base = max(500.0, res["delivered"]["1k"]["delivered_rps"],
                                  hint["ok_rps"] if hint["non2xx"] == 0 else 0.0)
    res["ramp"] = []
    k = 1.0  # achieved / nominal rate of the pacing, learned per step

    def step(rate):
        nonlocal k
        c, d = pacing(rate / k)
        target.drain()
        a0, s0 = target.accepted(), sink.count()
        r = wrk(target.proxy_port, bodies["1k"], c, cfg["ramp_s"], delay_ms=d)
        backlog_end = target.backlog()
        s1 = sink.count()
        drain_s = target.drain()
        a1, s2 = target.accepted(), sink.count()
        dur = r["duration_us"] / 1e6
        st = {
            "target_rate": rate, "conns": c, "delay_ms": d, "offered_rps": r["rps"],
            "ok": r["ok"], "non2xx": r["non2xx"], "socket_errors": r["socket_errors"], "accepted": a1 - a0,
            "sink_during": s1 - s0, "sink_total": s2 - s0, "loss": (a1 - a0) - (s2 - s0),
            "delivered_rps": (s1 - s0) / dur, "backlog_at_end": backlog_end, "drain_s": drain_s,
            "p50_us": r["p50_us"], "p99_us": r["p99_us"], "p999_us": r["p999_us"],
        }
        # sustained: every upload acknowledged with 200, none lost, and delivery kept up
        # (what was still queued at the end drained within 10% of the step).
        st["sustained"] = bool(
            st["non2xx"] == 0 and st["socket_errors"] == 0 and st["loss"] == 0 and (drain_s or 0) <= 0.1 * dur
        )
        nominal = c * 1000 / d
        k = max(0.2, min(1.0, r["rps"] / nominal))
        res["ramp"].append(st)
        log(f"  {target.name} ramp {rate:.0f}/s: offered {r['rps']:.0f}/s ({c} conns, {d} ms), delivered "
            f"{st['delivered_rps']:.0f}/s, non2xx {st['non2xx']}, loss {st['loss']}, sustained {st['sustained']}")
        return st

    rate, good, bad = 0.5 * base, None, None
    for _ in range(cfg["ramp_steps"]):
        st = step(rate)
        if not st["sustained"]:
            bad = st
            break
        if good and st["offered_rps"] < 1.05 * good["offered_rps"]:
            good = st if st["offered_rps"] > good["offered_rps"] else good
            break  # no progress: the generator (or nginx's closed-loop backpressure) tops out
        good = st
        rate = max(rate, st["offered_rps"]) * cfg["ramp_growth"]
    if good and bad and cfg["ramp_bisect"]:
        st = step((good["offered_rps"] + bad["offered_rps"]) / 2)
        if st["sustained"] and st["offered_rps"] > good["offered_rps"]:
            good = st
    res["max_sustained_rps"] = good["offered_rps"] if good else 0.0
    res["ramp_limited_by"] = "refusal/loss" if bad else "generator/backpressure (no failure found)"

    # 5. CPU per relayed request: a fixed number of paced requests (1 KB body)
    target.drain()
    # wrk's threads stop after N responses, but wrk itself waits out -d, so -d is the
    # expected time plus slack; the idle tail costs both servers ~nothing.
    c, d = cfg["cpu_pacing"]
    nominal = c * 1000 / d
    dur = int(cfg["cpu_n"] / (0.8 * nominal)) + 2
    s0, k0 = sink.count(), cpu_ticks(pid)
    r = wrk(target.proxy_port, bodies["1k"], c, dur, threads=1, delay_ms=d, max_n=cfg["cpu_n"])
    target.drain()
    s1, k1 = sink.count(), cpu_ticks(pid)
    res["cpu"] = {
        "requests": r["requests"], "ok": r["ok"], "non2xx": r["non2xx"], "delivered": s1 - s0,
        "nominal_rate": nominal, "wrk_duration_s": dur, "ticks": k1 - k0, "clk_tck": CLK_TCK,
        "us_per_request": (k1 - k0) / CLK_TCK * 1e6 / max(1, s1 - s0),
    }
    log(f"  {target.name} cpu: {res['cpu']['us_per_request']:.1f} us per delivered request "
        f"({k1 - k0} ticks, {s1 - s0} delivered, {r['non2xx']} non-2xx)")

    # 6. scrape time (relay: GET /metrics; nginx: its stub_status, the nearest thing)
    sampler.phase = "after"
    times = []
    for _ in range(20):
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{time_total} %{size_download}", target.scrape_cmd()],
                           capture_output=True, text=True)
        t, size = p.stdout.split()
        times.append(float(t) * 1e6)
    res["scrape"] = {"median_us": statistics.median(times), "min_us": min(times), "max_us": max(times), "bytes": int(size)}
    if target.name == "relay":
        res["relay_metrics"] = target.metrics()
    time.sleep(cfg["after_s"])
    sampler.stop_ev.set()
    sampler.join()
    res["memory"] = sampler.summary()
    rc, err = target.stop()
    res["exit_code"], res["stderr_tail"] = rc, err
    log(f"  {target.name} memory: idle {res['memory']['idle']}, peak {res['memory']['peak']}; exit {rc}")
    return res


def self_profiling_overhead(binary, sink, cfg, body):
    """The relay's CPU with PYROSCOPE_SELF_PROFILING off and on under the same paced load
    (off on off on …, so drift hits both). The profiler samples at 100 Hz of each thread's CPU."""
    conns, delay = pacing(cfg["selfprof_rate"])
    runs = {"off": [], "on": []}
    for _ in range(cfg["rounds"]):
        for mode in ("off", "on"):
            target = RelayTarget(binary, sink, {"PYROSCOPE_SELF_PROFILING": "true" if mode == "on" else "false"})
            pid = target.start()
            try:
                wrk(target.port, body, conns, cfg["warmup"], delay_ms=delay)
                target.drain()
                c0 = cpu_ns(pid)
                r = wrk(target.port, body, conns, cfg["selfprof_s"], delay_ms=delay)
                target.drain()
                c1 = cpu_ns(pid)
            finally:
                target.stop()
            dur = r["duration_us"] / 1e6
            run = {"cpu_util": (c1 - c0) / 1e9 / dur, "ok_rps": r["ok_rps"], "non2xx": r["non2xx"],
                   "cpu_us_per_request": (c1 - c0) / 1e3 / max(1, r["ok"])}
            runs[mode].append(run)
            log(f"  self-profiling {mode}: {run['ok_rps']:.0f} req/s, relay CPU {100 * run['cpu_util']:.1f}% of a core, "
                f"{run['cpu_us_per_request']:.1f} µs/request")
    off = med([x["cpu_util"] for x in runs["off"]])
    on = med([x["cpu_util"] for x in runs["on"]])
    return {"runs": runs, "rate": cfg["selfprof_rate"], "cpu_off": off, "cpu_on": on,
            "added_cpu_points": 100 * (on - off), "relative_pct": 100 * (on / off - 1) if off else None}


def log_flood(binary, cfg, body):
    """Log bytes per refused upload (issue 18): wrk floods the relay for `flood_s` while its
    remote answers 503, at the default log level, with a small queue and no spool, so almost
    every upload is refused with 503. Before the fix this wrote ~160 bytes per refusal
    (129,153 lines in 20 s); the README promises at most 5 lines per reason every 10 s."""
    remote = Refuser()
    remote.start()
    target = RelayTarget(binary, remote, {
        "PYROSCOPE_LOG_LEVEL": "info", "PYROSCOPE_QUEUE_MAX_BYTES": "65536", "PYROSCOPE_SPOOL_MAX_BYTES": "0",
        "PYROSCOPE_RETRY_INITIAL_BACKOFF": "10ms", "PYROSCOPE_RETRY_MAX_BACKOFF": "100ms",
    })
    try:
        target.start()
        time.sleep(0.3)
        target.stderr.seek(0, os.SEEK_END)
        start_bytes = target.stderr.tell()
        r = wrk(target.port, body, 32, cfg["flood_s"])
        target.stderr.seek(0, os.SEEK_END)
        flood_bytes = target.stderr.tell() - start_bytes
        m = target.metrics()
        refused = int(m.get('pyroscope_relay_uploads_dropped_total{reason="queue_full"}', 0))
        dropped_after_accept = int(sum(v for k, v in m.items() if k.startswith("pyroscope_relay_uploads_dropped_total")
                                       and 'reason="queue_full"' not in k))
    finally:
        rc, _ = target.stop()
        remote.stop()
    target.stderr.seek(start_bytes)
    text = target.stderr.read(flood_bytes).decode(errors="replace")
    messages = {}
    for line in text.splitlines():
        mm = re.search(r'msg="([^"]*)"', line) or re.search(r"msg=(\S+)", line)
        key = mm.group(1) if mm else line[:60]
        messages[key] = messages.get(key, 0) + 1
    res = {"seconds": cfg["flood_s"], "requests": r["requests"], "non2xx": r["non2xx"], "refused": refused,
           "dropped_after_accept": dropped_after_accept, "log_bytes": flood_bytes, "log_lines": len(text.splitlines()),
           "log_bytes_per_refused": flood_bytes / max(1, refused), "lines_by_message": messages, "exit_code": rc}
    log(f"  log flood: {refused:,} refused in {cfg['flood_s']} s, {flood_bytes:,} log bytes in {res['log_lines']} lines: "
        f"{res['log_bytes_per_refused']:.3f} bytes per refused upload; {messages}")
    return res


def sink_ticks(sink):
    return cpu_ticks(sink.proc.pid)


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


def summarize(data):
    rounds = data["rounds"]
    rel = [r["relay"] for r in rounds]
    ngx = [r["nginx"] for r in rounds]
    rows = []  # (section, metric, relay values, nginx values, fmt, target text, higher_is_better)

    def fi(x):
        return f"{x:,.0f}"

    def f1(x):
        return f"{x:,.1f}"

    def f2(x):
        return f"{x:,.2f}"

    def mb(x):
        return f"{x / 1024:.1f}"

    def add(metric, get, fmt, target="", nginx=True, ratio=True):
        rv = [get(x) for x in rel]
        nv = [get(x) for x in ngx] if nginx else []
        rows.append((metric, rv, nv, fmt, target, ratio))

    for key, label in (("1k_c1", "1 KB, 1 conn"), ("1k_c32", "1 KB, 32 conns"), ("64k_c1", "64 KB, 1 conn"),
                       ("64k_c32", "64 KB, 32 conns")):
        add(f"ack {label}: req/s answered 200", lambda x, k=key: x["ack"][k]["ok_rps"], fi, "≥ 60% of nginx return 200")
        add(f"ack {label}: req/s answered (any status)", lambda x, k=key: x["ack"][k]["rps"], fi)
        add(f"ack {label}: non-2xx (503) %", lambda x, k=key: 100 * x["ack"][k]["non2xx"] / max(1, x["ack"][k]["requests"]), f1,
            ratio=False)
        add(f"ack {label}: p50 µs", lambda x, k=key: x["ack"][k]["p50_us"], fi)
        add(f"ack {label}: p99 µs", lambda x, k=key: x["ack"][k]["p99_us"], fi)
        add(f"ack {label}: p99.9 µs", lambda x, k=key: x["ack"][k]["p999_us"], fi)
    for b, label in (("1k", "1 KB"), ("64k", "64 KB")):
        add(f"delivered {label}, 32 conns closed loop: to sink/s", lambda x, b=b: x["delivered"][b]["delivered_rps"], fi,
            "≥ nginx proxy_pass")
        add(f"delivered {label}: offered req/s", lambda x, b=b: x["delivered"][b]["rps"], fi)
        add(f"delivered {label}: refused (503) %", lambda x, b=b: 100 * x["delivered"][b]["non2xx"] / max(1, x["delivered"][b]["requests"]), f1,
            ratio=False)
        add(f"delivered {label}: lost (accepted, never at sink)", lambda x, b=b: x["delivered"][b]["loss"], fi, "0", ratio=False)
        add(f"delivered {label}: sink CPU % of a core", lambda x, b=b: 100 * x["delivered"][b]["sink_cpu_util"], fi, ratio=False)
    add("paced 1 KB: max rate with 0 refused, 0 lost, req/s", lambda x: x["max_sustained_rps"], fi, "≥ nginx proxy_pass")
    add("paced 1 KB: lost uploads, all steps", lambda x: sum(max(0, s["loss"]) for s in x["ramp"]), fi, "0", ratio=False)
    add("memory idle: anon MB", lambda x: x["memory"]["idle"]["anon_kb"], mb)
    add("memory idle: file MB", lambda x: x["memory"]["idle"]["file_kb"], mb)
    add("memory idle: total RSS MB", lambda x: x["memory"]["idle"]["total_kb"], mb, "< 8 MB")
    add("memory during load: total RSS MB (median)", lambda x: x["memory"]["during_median"]["total_kb"], mb)
    add("memory after load: anon MB", lambda x: x["memory"]["after"]["anon_kb"], mb)
    add("memory after load: file MB", lambda x: x["memory"]["after"]["file_kb"], mb)
    add("memory peak: anon MB", lambda x: x["memory"]["peak"]["anon_kb"], mb)
    add("memory peak: file MB", lambda x: x["memory"]["peak"]["file_kb"], mb)
    add("memory peak: total RSS MB (VmHWM)", lambda x: x["memory"]["vm_hwm_kb"], mb)
    add("threads", lambda x: x["memory"]["threads"], fi)
    add("start-up: exec → port accepts, ms (median of N)", lambda x: statistics.median(x["startup_us"]) / 1000, f2, "< 3 ms")
    add("CPU per relayed request, µs (utime+stime, ≤2k req/s paced)", lambda x: x["cpu"]["us_per_request"], f1)
    add("scrape time µs: relay /metrics vs nginx stub_status", lambda x: x["scrape"]["median_us"], fi)

    lines = [
        "| metric | relay (A) median (min–max) | nginx (B) median (min–max) | A/B | target |",
        "|---|---|---|---|---|",
    ]
    summary = {}
    for metric, rv, nv, fmt, target, want_ratio in rows:
        ratio = ""
        if want_ratio and nv and med(nv):
            ratio = f"{med(rv) / med(nv):.2f}"
        summary[metric] = {"relay": rv, "nginx": nv, "relay_median": med(rv), "nginx_median": med(nv) if nv else None,
                           "ratio": float(ratio) if ratio else None}
        lines.append(f"| {metric} | {spread(rv, fmt)} | {spread(nv, fmt) if nv else '—'} | {ratio} | {target} |")
    sp = data.get("self_profiling")
    if sp:
        lines.append(f"| self-profiling at 100 Hz, {sp['rate']:,} req/s paced: relay CPU % of a core off → on | "
                     f"{100 * sp['cpu_off']:.1f} → {100 * sp['cpu_on']:.1f} (+{sp['added_cpu_points']:.2f} points, "
                     f"{sp['relative_pct']:+.1f}%) | — | | < 2% CPU |")
    lf = data.get("log_flood")
    if lf:
        lines.append(f"| log flood, remote 503 for {lf['seconds']} s: log bytes per refused upload ({lf['refused']:,} refused, "
                     f"{lf['log_lines']} lines, {lf['log_bytes']:,} bytes) | {lf['log_bytes_per_refused']:.3f} | — | | ≤ 5 lines per reason per 10 s |")
    lb = data.get("logbench") or {}
    if lb:
        lines.append(f"| LogBench text lines/s (relay only) | {lb.get('log_text_lines_per_second', 0):,} | — | | |")
        lines.append(f"| LogBench json lines/s (relay only) | {lb.get('log_json_lines_per_second', 0):,} | — | | |")
    for pb in data.get("pipelinebench") or []:
        if pb:
            lines.append(f"| pipeline CPU per upload, {pb['body_bytes']:,} B: memory only → with the journal (µs) | "
                         f"{pb['pipeline_us_per_upload']:.2f} → {pb['pipeline_journal_us_per_upload']:.2f} | — | | journal < 10% of the CPU per upload |")
    sk = data.get("sink_check")
    fl = data.get("startup_floor_us")
    m = data["machine"]
    notes = [
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), kernel {m['kernel']}, load {' '.join(m['loadavg'])} at start, "
        f"{' '.join(data.get('loadavg_end', []))} at end; {m['nginx']}; {m['wrk'].split(' Copyright')[0]}; git {m['git']}{' (dirty)' if m['git_dirty'] else ''}.",
        f"Rounds: {len(rounds)} (A B A B …), {data['config']['duration']} s per wrk run. Read figures as A/B ratios.",
    ]
    if sk:
        notes.append(f"Sink alone (wrk → sink, 1 KB, 32 conns): {sk['rps']:,.0f} req/s; the highest delivered rate above is "
                     f"{100 * max(med([r['relay']['delivered']['1k']['delivered_rps'] for r in rounds]), med([r['nginx']['delivered']['1k']['delivered_rps'] for r in rounds])) / sk['rps']:.0f}% of it.")
    if fl:
        notes.append(f"Start-up harness floor (fork+exec of a trivial C listener until it accepts): median {statistics.median(fl) / 1000:.2f} ms.")
    if data.get("extension_cost"):
        notes += ["", "Cost to the function (Benchmarks/extension_cost.py):", "", extension_cost.table(data["extension_cost"])]
    return "\n".join(lines + notes), summary


def refused(r):
    return f" ({100 * r['non2xx'] / max(1, r['requests']):.0f}% 503)" if r["non2xx"] else ""


def plot(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter

    keys = [("1k_c1", "1 KB body, 1 connection"), ("1k_c32", "1 KB body, 32 connections"),
            ("64k_c1", "64 KB body, 1 connection"), ("64k_c32", "64 KB body, 32 connections")]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), constrained_layout=True)
    colors = {"relay": "tab:blue", "nginx": "tab:orange"}
    labels = {"relay": "relay (ack, 503 counted as error)", "nginx": "nginx return 200"}
    ticks = [50, 90, 99, 99.9, 99.99]
    for ax, (k, title) in zip(axes.flat, keys):
        for tname in ("relay", "nginx"):
            for i, rnd in enumerate(data["rounds"]):
                r = rnd[tname]["ack"][k]
                pts = [(p, v) for p, v in r["latency_us"]["pct"] if p >= 1]
                xs = [1 / (1 - p / 100) for p, _ in pts]
                ys = [max(v, 1) for _, v in pts]
                ax.plot(xs, ys, color=colors[tname], alpha=0.9 if i == 0 else 0.55, lw=1.6,
                        ls="-" if i % 2 == 0 else "--",
                        label=f"{labels[tname]}, round {i + 1}: {r['rps']:,.0f} req/s{refused(r)}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1 / (1 - t / 100) for t in ticks]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"p{100 * (1 - 1 / x):g}"))
        ax.xaxis.set_minor_locator(FixedLocator([]))
        ax.set_xlim(1.0, 1 / (1 - 99.99 / 100) * 1.05)
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (µs, log)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    m = data["machine"]
    fig.suptitle(f"Ack-path latency, wrk --latency (no coordinated-omission correction) — {m['nproc']} CPUs, "
                 f"kernel {m['kernel']}, {data['timestamp']}", fontsize=11)
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay", required=True)
    ap.add_argument("--logbench")
    ap.add_argument("--pipelinebench")
    ap.add_argument("--startup-bin", required=True)
    ap.add_argument("--layer-binary", help="the layer's binary: its cost to the function (Benchmarks/extension_cost.py)")
    ap.add_argument("--layer-zip", help="the layer zip holding it")
    ap.add_argument("--peer", help="another extension binary measured in turns with the layer's (BENCH_PEER)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    cfg = {
        "quick": quick,
        "rounds": int(os.environ.get("BENCH_ROUNDS") or (1 if quick else 3)),
        "duration": int(os.environ.get("BENCH_DURATION") or (2 if quick else 5)),
        "warmup": 1,  # wrk takes whole seconds
        "ramp_steps": 4 if quick else 7,
        "ramp_bisect": not quick,
        "ramp_growth": 1.6 if quick else 1.3,
        "ramp_s": 2 if quick else 3,
        "cpu_n": 3000 if quick else 10000,
        "cpu_pacing": (2, 1),  # 2 connections, 1 ms apart: <= 2,000 req/s, under both sustained rates
        "startups": 10 if quick else 20,
        "idle_s": 1.0,
        "after_s": 1.5 if quick else 3.0,
        "queue_max_bytes": QUEUE_MAX_BYTES,
        "selfprof_rate": 1000,
        "selfprof_s": 5 if quick else 10,
        "flood_s": 5 if quick else 20,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ts = time.strftime("%Y%m%dT%H%M%S")
    t_start = time.monotonic()
    data = {"timestamp": ts, "config": cfg, "machine": machine(), "rounds": []}
    log(f"machine: {data['machine']}")
    log(f"config: {cfg}")

    # Bodies: the real 735-byte push and a 64 KB gzip body (random payload: incompressible).
    tmp = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
    b64 = tmp / "body64k.bin"
    rnd = random.Random(42)
    b64.write_bytes(gzip.compress(bytes(rnd.getrandbits(8) for _ in range(65536 - 40)), mtime=0))
    bodies = {"1k": FIXTURE, "64k": b64}
    data["bodies"] = {k: v.stat().st_size for k, v in bodies.items()}

    if args.logbench:
        p = subprocess.run([args.logbench], capture_output=True, text=True, timeout=300)
        line = next((l for l in p.stdout.splitlines() if l.startswith("{")), "{}")
        data["logbench"] = json.loads(line)
        log(f"LogBench: {data['logbench']}")
    if args.pipelinebench:
        # What journaling adds to each acknowledged upload, for the real push size and 64 KB.
        data["pipelinebench"] = []
        for size in (735, 65536):
            p = subprocess.run([args.pipelinebench, "20000", str(size)], capture_output=True, text=True, timeout=600)
            line = next((l for l in p.stdout.splitlines() if l.startswith("{")), "{}")
            data["pipelinebench"].append(json.loads(line))
        log(f"PipelineBench: {data['pipelinebench']}")

    sink = Sink()
    sink.start()
    try:
        # Is the sink fast enough? wrk straight at it with the delivered scenario's shape.
        r = wrk(sink.port, FIXTURE, 32, cfg["duration"])
        data["sink_check"] = {"rps": r["rps"], "p99_us": r["p99_us"], "non2xx": r["non2xx"]}
        log(f"sink alone: {r['rps']:.0f} req/s")

        data["startup_floor_us"] = startup_floor(args.startup_bin, cfg["startups"])
        if args.layer_binary:
            log(f"cost to the function: {args.layer_binary}" + (f" in turns with {args.peer}" if args.peer else ""))
            data["extension_cost"] = extension_cost.measure(args.layer_binary, args.layer_zip, args.peer, args.startup_bin,
                                                            quick=quick, sink=sink)
        relay, ngx = RelayTarget(args.relay, sink), NginxTarget(sink)
        for i in range(cfg["rounds"]):
            rnd_res = {}
            for target in (relay, ngx):
                log(f"round {i + 1}/{cfg['rounds']}: {target.name}")
                res = session(target, sink, cfg, bodies)
                res["startup_us"] = startups(target, args.startup_bin, cfg["startups"])
                log(f"  {target.name} start-up median {statistics.median(res['startup_us']) / 1000:.2f} ms")
                rnd_res[target.name] = res
            data["rounds"].append(rnd_res)
        log("self-profiling overhead (relay only, off/on)")
        data["self_profiling"] = self_profiling_overhead(args.relay, sink, cfg, FIXTURE)
        log("log flood against a remote answering 503 (relay only)")
        data["log_flood"] = log_flood(args.relay, cfg, FIXTURE)
    finally:
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    data["loadavg_end"] = loadavg()
    data["elapsed_s"] = time.monotonic() - t_start
    table, summary = summarize(data)
    data["summary"] = summary
    data["table_markdown"] = table
    jpath, mpath = write_results(out, ts, data, table)
    ppath = out / f"{ts}-latency.png"
    try:
        plot(data, ppath)
    except Exception as e:  # the figures matter more than the chart
        log(f"chart failed: {e!r}")
    print()
    print(table)
    print()
    print(f"raw: {jpath}\ntable: {mpath}\nchart: {ppath}\nelapsed: {data['elapsed_s']:.0f} s")


if __name__ == "__main__":
    main()
