#!/usr/bin/env python3
"""Anonymous memory of the relay before, during and after a burst: 64 KB uploads from
32 connections for 3 s, then 1 KB for 2 s, then 3 s idle (queue bound 256 MB, as in
`make bench`). Binaries take turns; `BINARY:N` runs it with MALLOC_ARENA_MAX=N.

  Benchmarks/memory_after_burst.py A [B ...]
"""
import sys, os, subprocess, time, threading, gzip, random, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Sink, free_port, wait_port, wrk, FIXTURE, proc_mem
tmp = Path(tempfile.mkdtemp()); b64 = tmp / "b64"
rnd = random.Random(42); b64.write_bytes(gzip.compress(bytes(rnd.getrandbits(8) for _ in range(65536 - 40)), mtime=0))
sink = Sink(); sink.start()
try:
  for turn in range(2):
    for spec in sys.argv[1:]:
        b, _, arena = spec.partition(":")
        port = free_port()
        env = dict(os.environ, PYROSCOPE_DEV_MODE="true", PYROSCOPE_REMOTE_ADDRESS=f"http://127.0.0.1:{sink.port}",
                   PYROSCOPE_LISTEN_ADDRESS=f"127.0.0.1:{port}", PYROSCOPE_LOG_LEVEL="error", PYROSCOPE_SPOOL_MAX_BYTES="0",
                   PYROSCOPE_QUEUE_MAX_BYTES=str(256 << 20))
        if arena: env["MALLOC_ARENA_MAX"] = arena
        p = subprocess.Popen([b], env=env); wait_port(port); time.sleep(0.5)
        idle = proc_mem(p.pid)
        peak = [0]; stop = [False]
        def sample():
            while not stop[0]:
                peak[0] = max(peak[0], proc_mem(p.pid)["RssAnon"]); time.sleep(0.05)
        t = threading.Thread(target=sample); t.start()
        wrk(port, b64, 32, 3); wrk(port, FIXTURE, 32, 2)
        time.sleep(3); stop[0] = True; t.join()
        after = proc_mem(p.pid)
        print(f"{spec}: idle anon {idle['RssAnon']/1024:.1f} MB, peak anon {peak[0]/1024:.1f} MB, after anon {after['RssAnon']/1024:.1f} MB, threads {after['Threads']}", flush=True)
        p.kill(); p.wait()
finally:
    sink.stop()
    b64.unlink()
    tmp.rmdir()
