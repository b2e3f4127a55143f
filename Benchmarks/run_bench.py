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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import extension_cost  # noqa: E402
from bench_report import plot, summarize  # noqa: E402
from bench_targets import QUEUE_MAX_BYTES, NginxTarget, RelayTarget, startup_floor, startups  # noqa: E402
from harness import (  # noqa: E402
    CLK_TCK, FIXTURE, RESULTS, MemSampler, Refuser, Sink, cpu_ns, cpu_ticks, loadavg, machine, med, pacing, write_results, wrk)

def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)




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
