#!/usr/bin/env python3
"""CPU time and context switches per upload, binaries A and B taking turns (A B A B).

Valgrind cannot run the relay here (3.19 crashes at its first thread) and this VM has no
hardware counters (`perf stat -e instructions` is unsupported), so the repeatable figures
are the process's own: utime+stime and context switches (all threads, from /proc) over a
fixed number of uploads. Context switches per upload count the thread hops.

  Benchmarks/cost.py A_BINARY [B_BINARY] [--mode paced|flood|full] [-n 10000] [--turns 3]

  paced  1 KB pushes, 2 connections 1 ms apart (<= 2,000/s): each upload wakes a sender
  flood  1 KB pushes, 32 connections closed loop (acks, 503s once the queue is full)
  full   every sender stuck on a remote that never answers, queue of 1: the 503 path
  ack    1 KB pushes, 1 connection closed loop (the bench's "ack 1 KB, 1 conn"); req/s
         is the ack rate, CPU includes relaying them
  delivered  as flood, but per upload the sink received during the run (the bench's
         "delivered, 32 conns closed loop"): CPU per delivered upload and the rate

PYROSCOPE_NUM_WORKERS and other settings pass through from the environment.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CLK_TCK, FIXTURE, Sink, cpu_ticks, free_port, wait_port, wrk  # noqa: E402


def ctx_switches(pid):
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def turn(binary, sink, mode, n):
    port = free_port()
    env = dict(os.environ, PYROSCOPE_DEV_MODE="true", PYROSCOPE_REMOTE_ADDRESS=f"http://127.0.0.1:{sink.port}",
               PYROSCOPE_LISTEN_ADDRESS=f"127.0.0.1:{port}", PYROSCOPE_LOG_LEVEL="error", PYROSCOPE_SPOOL_MAX_BYTES="0",
               PYROSCOPE_QUEUE_MAX_BYTES=str(256 << 20))
    dead = None
    if mode == "full":
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead.listen(64)
        env.update(PYROSCOPE_REMOTE_ADDRESS=f"http://127.0.0.1:{dead.getsockname()[1]}", PYROSCOPE_QUEUE_MAX_BYTES="1",
                   PYROSCOPE_NUM_WORKERS="1", PYROSCOPE_TIMEOUT="10m")
    proc = subprocess.Popen([binary], env=env, stdin=subprocess.DEVNULL)
    try:
        wait_port(port)
        wrk(port, FIXTURE, 2, 1, delay_ms=1)  # warm-up: connections, caches
        time.sleep(0.5)
        s0, t0, c0 = sink.count(), cpu_ticks(proc.pid), ctx_switches(proc.pid)
        if mode == "paced":
            r = wrk(port, FIXTURE, 2, int(n / 500) + 2, threads=1, delay_ms=1, max_n=n)
        elif mode == "ack":
            r = wrk(port, FIXTURE, 1, max(2, int(n / 5000)))
        else:
            r = wrk(port, FIXTURE, 32, max(2, int(n / 20000)), threads=2)
        s_run, t_run, c_run = sink.count(), cpu_ticks(proc.pid), ctx_switches(proc.pid)
        end = time.monotonic() + 60
        expect = r["ok"] if mode in ("paced", "flood", "ack") else 0
        while sink.count() - s0 < expect and time.monotonic() < end:
            time.sleep(0.05)
        s1, t1, c1 = sink.count(), cpu_ticks(proc.pid), ctx_switches(proc.pid)
        if mode == "delivered":
            s1, t1, c1 = s_run, t_run, c_run
        count = r["requests"] if mode in ("flood", "full", "ack") else max(1, s1 - s0)
        rate = r["rps"] if mode != "delivered" else (s1 - s0) / (r["duration_us"] / 1e6)
        return {"requests": r["requests"], "ok": r["ok"], "non2xx": r["non2xx"], "delivered": s1 - s0,
                "rps": rate, "us": (t1 - t0) / CLK_TCK * 1e6 / count, "ctx": (c1 - c0) / count}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if dead:
            dead.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--mode", choices=("paced", "flood", "full", "delivered", "ack"), default="paced")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--turns", type=int, default=3)
    args = ap.parse_args()
    sink = Sink()
    sink.start()
    results = {b: [] for b in args.binaries}
    try:
        for i in range(args.turns):
            for b in args.binaries:
                r = turn(b, sink, args.mode, args.n)
                results[b].append(r)
                print(f"turn {i + 1} {b}: {r['us']:.1f} us/upload, {r['ctx']:.2f} ctx switches/upload, "
                      f"{r['rps']:.0f} req/s, {r['ok']} ok, {r['non2xx']} non-2xx, {r['delivered']} delivered", flush=True)
    finally:
        sink.stop()
    for b, rs in results.items():
        print(f"{args.mode} {b}: median {statistics.median(r['us'] for r in rs):.1f} us/upload, "
              f"{statistics.median(r['ctx'] for r in rs):.2f} ctx switches/upload, "
              f"{statistics.median(r['rps'] for r in rs):.0f} req/s")


if __name__ == "__main__":
    main()
