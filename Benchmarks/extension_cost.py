#!/usr/bin/env python3
"""What the extension costs the function, the layer binary against a peer (the Go extension,
or another build of ours), taking turns A B A B (`make bench`, BENCH_PEER=path):

  register     exec until its POST /register arrives at the fake Extensions API (Lambda starts
               the function's runtime once every extension has registered), median of BENCH_LIVES
  init         exec until its first GET /event/next on a fake Extensions API (startup --lambda,
               Benchmarks/lambda_life.c), median of BENCH_LIVES (9; quick 9)
  idle memory  smaps_rollup Rss and Anonymous 1 s after that request
  life CPU     utime+stime (wait4 rusage, all threads) of a whole life whose first event is
               SHUTDOWN: start, register, first /event/next, drain, exit
  upload CPU   utime+stime per acknowledged upload: wrk, 1 connection, closed loop, the
               735-byte push body of pyroscope-io (Tests/Fixtures/clients), remote = an nginx
               `return 200` sink; the count includes relaying them (CPU is read once the
               sink has them all, or stops receiving)
  uploads/s    acknowledged (200) uploads per second in that run
  size         the binary, and a zip of extensions/<binary> as the layer has it

Both binaries get the same environment: PYROSCOPE_REMOTE_ADDRESS = the sink, the rest of the
settings at their defaults (spool and journal on, in a fresh folder per run; log level info,
output discarded); SSL_CERT_FILE and SSL_CERT_DIR unset, as in Lambda. The Go extension listens on 0.0.0.0:4040 whatever it is told, so uploads
go to port 4040 for both (PYROSCOPE_LISTEN_ADDRESS=127.0.0.1:4040), in dev mode (the relay
alone, no Lambda API). Port 4040 must be free.

  Benchmarks/extension_cost.py --binary dist/x86_64/extensions/pyroscope-lambda-extension \\
      --zip dist/pyroscope-lambda-extension-x86_64.zip --peer /path/to/go/extension \\
      --startup-bin Benchmarks/results/.bin/startup
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import CLK_TCK, FIXTURE, RESULTS, Sink, cpu_ticks, loadavg, port_free, wait_port, write_results, wrk, zip_extensions  # noqa: E402
import cpu_share  # noqa: E402

UPLOAD_PORT = 4040
LAYER_NAME = "pyroscope-lambda-extension"


def log(*a):
    print("[cost]", *a, file=sys.stderr, flush=True)


class Subject:
    """One extension binary under test, run as `extensions/pyroscope-lambda-extension` (Lambda
    requires the file name as the extension's name)."""

    def __init__(self, label, binary, zip_path=None):
        self.label, self.source = label, Path(binary).resolve()
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-cost-{label}-"))
        (self.dir / "extensions").mkdir()
        self.binary = self.dir / "extensions" / LAYER_NAME
        shutil.copy2(self.source, self.binary)
        self.zip_path = Path(zip_path) if zip_path else None

    def sizes(self):
        """The binary's size and its zip's: the layer zip when given, else one made as make layer
        makes it (zip -X -r of extensions/)."""
        zipped = self.zip_path or zip_extensions(self.dir, self.binary, LAYER_NAME)
        return {"binary_bytes": self.binary.stat().st_size, "zip_bytes": zipped.stat().st_size}

    def env(self, sink, **extra):
        spool = tempfile.mkdtemp(prefix="bench-cost-spool-")
        env = dict(os.environ, PYROSCOPE_REMOTE_ADDRESS=f"http://127.0.0.1:{sink.port}", PYROSCOPE_SPOOL_DIR=spool)
        # As in Lambda, whose environment names no CA bundle (this machine's does: ours checks a
        # named bundle at start, the Go extension at its first TLS connection).
        for key in ("PYROSCOPE_DEV_MODE", "PYROSCOPE_LISTEN_ADDRESS", "AWS_LAMBDA_RUNTIME_API", "SSL_CERT_FILE",
                    "SSL_CERT_DIR", "NIX_SSL_CERT_FILE"):
            env.pop(key, None)
        env.update(extra)
        return env, spool

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def require_upload_port():
    end = time.monotonic() + 10
    while not port_free(UPLOAD_PORT):
        if time.monotonic() > end:
            raise SystemExit(f"port {UPLOAD_PORT} stays taken: the Go extension can listen nowhere else")
        time.sleep(0.1)


def life(subject, sink, startup_bin, hold_ms):
    """One Lambda life on the fake API (Benchmarks/lambda_life.c): init, memory after hold_ms, CPU."""
    require_upload_port()
    env, spool = subject.env(sink)
    try:
        p = subprocess.run([str(startup_bin), "--lambda", str(hold_ms), str(subject.binary)], env=env,
                           capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    line = next((l for l in p.stdout.splitlines() if l.startswith("{")), None)
    if not line:
        raise RuntimeError(f"{subject.label}: lambda life failed: {p.stdout} {p.stderr}")
    result = json.loads(line)
    if result["error"] or result["exit_status"] != 0 or not result["registered"]:
        raise RuntimeError(f"{subject.label}: lambda life did not end cleanly: {result}")
    return result


def uploads(subject, sink, duration):
    """CPU per acknowledged upload and the acknowledged rate, 1 connection, dev mode."""
    require_upload_port()
    env, spool = subject.env(sink, PYROSCOPE_DEV_MODE="true", PYROSCOPE_LISTEN_ADDRESS=f"127.0.0.1:{UPLOAD_PORT}",
                             PYROSCOPE_LOG_LEVEL="error")
    proc = subprocess.Popen([str(subject.binary)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(UPLOAD_PORT)
        wrk(UPLOAD_PORT, FIXTURE, 1, 1)  # warm-up: connections, caches, the allocator's pools
        settle(sink)
        s0, t0 = sink.count(), cpu_ticks(proc.pid)
        r = wrk(UPLOAD_PORT, FIXTURE, 1, duration, threads=1)
        delivered = settle(sink, expect=s0 + r["ok"]) - s0
        t1 = cpu_ticks(proc.pid)
        seconds = r["duration_us"] / 1e6
        return {"ok": r["ok"], "non2xx": r["non2xx"], "socket_errors": r["socket_errors"], "delivered": delivered,
                "lost": r["ok"] - delivered, "acked_per_s": r["ok"] / seconds, "p50_us": r["p50_us"], "p99_us": r["p99_us"],
                "cpu_us_per_upload": (t1 - t0) / CLK_TCK * 1e6 / max(1, r["ok"])}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(spool, ignore_errors=True)


def settle(sink, expect=None, quiet_s=0.5, timeout_s=30):
    """The sink's count once it reaches `expect`, or once it has not moved for quiet_s."""
    end = time.monotonic() + timeout_s
    last, since = sink.count(), time.monotonic()
    while time.monotonic() < end:
        if expect is not None and last >= expect:
            return last
        time.sleep(0.05)
        now = sink.count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return last
    return last


def measure(binary, zip_path, peer, startup_bin, quick=False, sink=None):
    """Every row for `binary` (and `peer` when given), in turns. Returns the raw results."""
    lives = int(os.environ.get("BENCH_LIVES") or 9)
    idles = int(os.environ.get("BENCH_IDLES") or (3 if quick else 5))
    upload_turns = int(os.environ.get("BENCH_UPLOAD_TURNS") or (1 if quick else 3))
    duration = int(os.environ.get("BENCH_UPLOAD_SECONDS") or (2 if quick else 5))
    subjects = [Subject("ours", binary, zip_path)]
    if peer:
        subjects.append(Subject("peer", peer))
    own_sink = sink is None
    if own_sink:
        sink = Sink()
        sink.start()
    data = {"config": {"lives": lives, "idles": idles, "upload_turns": upload_turns, "upload_seconds": duration},
            "loadavg_start": loadavg(),
            "subjects": {s.label: {"binary": str(s.source), "lives": [], "idle": [], "uploads": []} for s in subjects}}
    try:
        for s in subjects:
            data["subjects"][s.label].update(s.sizes())
        for i in range(lives):
            for s in subjects:
                data["subjects"][s.label]["lives"].append(life(s, sink, startup_bin, 0))
        log("lives: " + ", ".join(f"{s.label} register {med(data, s.label, 'lives', 'register_us') / 1000:.1f} ms, "
                                  f"init {med(data, s.label, 'lives', 'init_us') / 1000:.1f} ms" for s in subjects))
        for i in range(idles):
            for s in subjects:
                data["subjects"][s.label]["idle"].append(life(s, sink, startup_bin, 1000))
        for i in range(upload_turns):
            for s in subjects:
                r = uploads(s, sink, duration)
                data["subjects"][s.label]["uploads"].append(r)
                log(f"uploads {s.label}: {r['acked_per_s']:.0f}/s acknowledged, {r['cpu_us_per_upload']:.1f} µs CPU each, "
                    f"{r['lost']} lost")
    finally:
        if own_sink:
            sink.stop()
        for s in subjects:
            s.cleanup()
    data["loadavg_end"] = loadavg()
    return data


def med(data, label, kind, key):
    return statistics.median(r[key] for r in data["subjects"][label][kind])


ROWS = [
    # (label, kind, key, scale, format, goal ratio for the issue: ours/peer at most)
    ("exec -> /register: exec until its `POST /register` arrives, ms", "lives", "register_us", 1e-3, "{:.1f}", None),
    ("init: exec until its first `GET /event/next`, ms", "lives", "init_us", 1e-3, "{:.1f}", 1.5),
    ("idle RSS 1 s after registration, MB", "idle", "rss_kb", 1 / 1024, "{:.1f}", 1.5),
    ("idle RSS: anonymous part, MB", "idle", "anon_kb", 1 / 1024, "{:.1f}", None),
    ("CPU of a whole life whose first event is SHUTDOWN, ms", "lives", "life_cpu_us", 1e-3, "{:.1f}", 2.0),
    ("CPU per acknowledged upload (1 connection), µs", "uploads", "cpu_us_per_upload", 1, "{:.0f}", 1.0),
    ("acknowledged uploads/s, 1 connection", "uploads", "acked_per_s", 1, "{:,.0f}", None),
    ("acknowledged but never delivered", "uploads", "lost", 1, "{:.0f}", None),
]


def table(data):
    subjects = data["subjects"]
    peer = "peer" in subjects
    lines = ["| figure | " + ("peer | " if peer else "") + "ours | " + ("ours / peer | goal |" if peer else ""),
             "|---|" + ("---|" if peer else "") + "---|" + ("---|---|" if peer else "")]

    def cell(label, kind, key, scale, fmt):
        values = [r[key] * scale for r in subjects[label][kind]]
        m = statistics.median(values)
        text = fmt.format(m)
        if len(values) > 1:
            text += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
        return m, text

    for name, kind, key, scale, fmt, goal in ROWS:
        ours, ours_text = cell("ours", kind, key, scale, fmt)
        if peer:
            theirs, theirs_text = cell("peer", kind, key, scale, fmt)
            ratio = f"{ours / theirs:.2f}" if theirs else ""
            goal_text = f"≤ {goal}" if goal else ("≥ 1" if "uploads/s" in name else "")
            lines.append(f"| {name} | {theirs_text} | {ours_text} | {ratio} | {goal_text} |")
        else:
            lines.append(f"| {name} | {ours_text} |")
    for key, name, goal in (("binary_bytes", "binary, MB", None), ("zip_bytes", "layer zip, MB", 2.0)):
        ours = subjects["ours"][key] / 1e6
        if peer:
            theirs = subjects["peer"][key] / 1e6
            lines.append(f"| {name} | {theirs:.1f} | {ours:.1f} | {ours / theirs:.2f} | {f'≤ {goal}' if goal else ''} |")
        else:
            lines.append(f"| {name} | {ours:.1f} |")
    c = data["config"]
    lines.append("")
    lines.append(f"In turns{' with the peer' if peer else ''}: {c['lives']} lives, {c['idles']} idle samples, "
                 f"{c['upload_turns']} upload runs of {c['upload_seconds']} s; median (min–max). Load average "
                 f"{' '.join(data['loadavg_start'])} at start, {' '.join(data['loadavg_end'])} at end. "
                 f"Ours: {subjects['ours']['binary']}" + (f"; peer: {subjects['peer']['binary']}." if peer else "."))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="the layer's binary")
    ap.add_argument("--zip", help="the layer zip holding it")
    ap.add_argument("--peer", help="another extension binary, measured in turns with it")
    ap.add_argument("--startup-bin", required=True)
    ap.add_argument("--runtime-bin", help="the stand-in runtime (Benchmarks/standin_runtime.c): with it, the CPU-share mode runs")
    ap.add_argument("--memory", default="128 512 1769", help="the CPU-share mode's memory sizes, MB (MEMORY)")
    ap.add_argument("--only-cpu-share", action="store_true", help="the CPU-share mode alone")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    data, text = {}, ""
    if not args.only_cpu_share:
        data = measure(args.binary, args.zip, args.peer, args.startup_bin, quick=quick)
        text = table(data)
    if args.runtime_bin:
        turns = int(os.environ.get("BENCH_SHARE_TURNS") or (5 if quick else 11))
        require_upload_port()
        share, why = cpu_share.measure(args.binary, args.peer, args.runtime_bin, FIXTURE,
                                       [int(mb) for mb in args.memory.split()], turns)
        data["cpu_share"] = share or {"skipped": why}
        text += "\n\n## At Lambda's CPU share\n\n" + (cpu_share.table(share) if share else f"Skipped: {why}.")
    jpath, _ = write_results(args.out, time.strftime("%Y%m%dT%H%M%S"), data, text, suffix="-cost")
    print(text)
    print(f"\nraw: {jpath}")


if __name__ == "__main__":
    main()
