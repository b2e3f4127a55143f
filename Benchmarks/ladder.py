#!/usr/bin/env python3
"""The floor ladder (`make bench-ladder`): what each layer of the extension's stack costs a cold
start, measured on the machine of the day. Each probe of Benchmarks/ladder/ does only what an
extension does first (read AWS_LAMBDA_RUNTIME_API, POST /register, GET /event/next with the
identifier until SHUTDOWN), one layer more each:

  sockets       C, static, plain sockets: the floor
  LadderGlibc   Swift over Glibc sockets: the Swift runtime (static stdlib)
  LadderNIO     SwiftNIO Posix + HTTP1 client, an HTTP/1.1 listener bound before /register
  LadderNIOSSL  + NIOSSL, a client context with the system trust roots made after /register
  LadderStack   + swift-log, swift-metrics with a Prometheus registry, a ServiceGroup

Each runs N lives (Benchmarks/lambda_life.c's `startup --lambda`, as Benchmarks/extension_cost.py) in turns
with the others and the peer (--peer: the Go extension), then N idle lives for the memory:

  register ms    exec until its POST /register arrives (Lambda starts the function's runtime
                 once every extension has registered)
  first next ms  exec until its first GET /event/next (the end of the init phase)
  idle RSS MB    smaps_rollup Rss --hold-ms after that request
  CPU ms         utime+stime of a whole life whose first event is SHUTDOWN
  stripped MB    the binary with no symbol table (llvm-objcopy --strip-all)
  zip MB         zip -X of extensions/<binary>, as a layer holds it

Medians. The Swift probes are built release with --static-swift-stdlib; with --layer-link
the link goes through layer/toolchain/clang as layer/build.sh does (a static executable, no
-export-dynamic).
Builds run under nice -n 15 with -j 1; the measurement does not. Only the standard library.

  Benchmarks/ladder.py --peer /path/to/go/extension [--binary dist/x86_64/extensions/pyroscope-lambda-extension]
"""

import argparse
import http.server
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, loadavg, port_free, write_results, zip_extensions  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LADDER = BENCH / "ladder"
PROBES = [
    ("sockets", "C, static, plain sockets (the floor)"),
    ("LadderGlibc", "Swift, Glibc sockets, static stdlib"),
    ("LadderNIO", "SwiftNIO Posix + HTTP1 client, listener bound before /register"),
    ("LadderNIOSSL", "+ NIOSSL, client context with the system trust roots after /register"),
    ("LadderStack", "+ swift-log, swift-metrics + Prometheus registry, ServiceGroup"),
]
COLUMNS = [  # (header, kind of life, key, scale, format)
    ("register ms", "lives", "register_us", 1e-3, "{:.1f}"),
    ("first next ms", "lives", "init_us", 1e-3, "{:.1f}"),
    ("idle RSS MB", "idle", "rss_kb", 1 / 1024, "{:.1f}"),
    ("CPU of a life ms", "lives", "life_cpu_us", 1e-3, "{:.1f}"),
]
GO_PORT = 4040  # the Go extension listens on 0.0.0.0:4040 whatever it is told; the rest on port 0


def log(*a):
    print("[ladder]", *a, file=sys.stderr, flush=True)


def descendants(root):
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [root]
    while stack:
        kids = children.get(stack.pop(), [])
        found += kids
        stack += kids
    return found


def nice(command, **kwargs):
    """`command` at nice 15, its descendants kept there too: SwiftPM's llbuild starts the
    compilers at nice 0 whatever its own niceness (seen with Swift 6.3.1)."""
    log("$", " ".join(str(c) for c in command))
    p = subprocess.Popen(["nice", "-n", "15", *map(str, command)], **kwargs)
    while p.poll() is None:
        for pid in descendants(p.pid):
            try:
                if os.getpriority(os.PRIO_PROCESS, pid) < 15:
                    os.setpriority(os.PRIO_PROCESS, pid, 15)
            except OSError:
                pass  # gone already
        time.sleep(0.2)
    if p.returncode:
        raise subprocess.CalledProcessError(p.returncode, command)


def llvm_tool(name):
    swift = shutil.which("swift")
    path = Path(os.path.realpath(swift)).parent / name if swift else None
    return str(path) if path and path.exists() else shutil.which(name.replace("llvm-", "")) or name


def strip(source, target):
    """`target`: `source` without symbol tables (llvm-objcopy; binutils' strip for what it cannot
    rewrite, such as a static glibc binary's .rela.plt)."""
    if subprocess.run([llvm_tool("llvm-objcopy"), "--strip-all", str(source), str(target)],
                      capture_output=True).returncode != 0:
        subprocess.run(["strip", "--strip-all", "-o", str(target), str(source)], check=True)


def build(out, layer_link, swift="swift"):
    """The probes, stripped, in `out`; returns {name: path}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"sockets": out / "sockets"}
    nice(["cc", "-O2", "-Wall", "-static", "-o", paths["sockets"], LADDER / "sockets.c"])
    scratch = LADDER / ".build"
    env = dict(os.environ)
    command = [swift, "build", "-c", "release", "--static-swift-stdlib", "-j", "1", "--package-path", LADDER,
               "--scratch-path", scratch]
    bin_path = Path(subprocess.run([*map(str, command), "--show-bin-path"], check=True, capture_output=True,
                                   text=True).stdout.strip())
    if layer_link:
        env.update(SWIFT_DRIVER_CLANG_EXEC=str(ROOT / "layer/toolchain/clang"),
                   LAYER_PRODUCT=" ".join(name for name, _ in PROBES[1:]))
    for name, _ in PROBES[1:]:
        (bin_path / name).unlink(missing_ok=True)  # linked anew: the link (plain or the layer's) may differ
    nice(command, env=env)
    for name, _ in PROBES[1:]:
        paths[name] = out / name
    for name, path in paths.items():
        built = bin_path / name if name != "sockets" else path
        strip(built, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)
    return paths


class Sink(http.server.ThreadingHTTPServer):
    """PYROSCOPE_REMOTE_ADDRESS for the extensions: 200 to anything, on 127.0.0.1 port 0."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_POST

        def log_message(self, *a):
            pass

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Sink.Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Subject:
    """A program run as extensions/<its name> in a folder of its own."""

    def __init__(self, key, label, binary):
        self.key, self.label, self.source = key, label, Path(binary).resolve()
        self.dir = Path(tempfile.mkdtemp(prefix=f"bench-ladder-{key}-"))
        (self.dir / "extensions").mkdir()
        self.binary = self.dir / "extensions" / self.source.name
        shutil.copy2(self.source, self.binary)
        self.lives, self.idle = [], []

    def sizes(self):
        stripped = self.dir / "stripped"
        strip(self.binary, stripped)
        zipped = zip_extensions(self.dir, self.binary, self.binary.name)
        return {"binary_bytes": self.binary.stat().st_size, "stripped_bytes": stripped.stat().st_size,
                "zip_bytes": zipped.stat().st_size}


def life(subject, startup_bin, hold_ms, sink, spool_root):
    """One life on the fake Extensions API; the harness's JSON line."""
    end = time.monotonic() + 10
    while subject.key == "peer" and not port_free(GO_PORT) and time.monotonic() < end:
        time.sleep(0.05)
    spool = tempfile.mkdtemp(dir=spool_root)
    env = dict(os.environ, PYROSCOPE_REMOTE_ADDRESS=f"http://127.0.0.1:{sink.server_port}", PYROSCOPE_SPOOL_DIR=spool,
               PYROSCOPE_LISTEN_ADDRESS="127.0.0.1:0")  # a port of its own: 4040 may be another test's
    for key in ("PYROSCOPE_DEV_MODE", "AWS_LAMBDA_RUNTIME_API", "SSL_CERT_FILE", "SSL_CERT_DIR", "NIX_SSL_CERT_FILE"):
        env.pop(key, None)  # as in Lambda, whose environment names no CA bundle
    p = subprocess.run([str(startup_bin), "--lambda", str(hold_ms), str(subject.binary)], env=env,
                       capture_output=True, text=True, timeout=60)
    shutil.rmtree(spool, ignore_errors=True)
    line = next((l for l in p.stdout.splitlines() if l.startswith("{")), None)
    result = json.loads(line) if line else None
    if not result or result["error"] or result["exit_status"] != 0 or not result["registered"]:
        raise RuntimeError(f"{subject.key}: the life did not end cleanly: {p.stdout} {p.stderr}")
    return result


def measure(subjects, startup_bin, lives, hold_ms):
    sink = Sink()
    spool_root = tempfile.mkdtemp(prefix="bench-ladder-spool-")
    try:
        for _ in range(lives):
            for s in subjects:
                s.lives.append(life(s, startup_bin, 0, sink, spool_root))
        for _ in range(lives):
            for s in subjects:
                s.idle.append(life(s, startup_bin, hold_ms, sink, spool_root))
    finally:
        sink.shutdown()
        shutil.rmtree(spool_root, ignore_errors=True)


def medians(subject):
    row = {key: statistics.median(r[key] for r in getattr(subject, kind)) * scale for _, kind, key, scale, _ in COLUMNS}
    row.update({k: v / 1e6 for k, v in subject.sizes().items()})
    return row


def table(rows, peer_key):
    head = "| program | " + " | ".join(c[0] for c in COLUMNS) + " | stripped MB | zip MB |"
    lines = [head, "|---" * (len(COLUMNS) + 3) + "|"]
    keys = [c[2] for c in COLUMNS] + ["stripped_bytes", "zip_bytes"]
    formats = [c[4] for c in COLUMNS] + ["{:.1f}", "{:.2f}"]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(f.format(r['medians'][k]) for k, f in zip(keys, formats)) + " |")
    peer = next((r for r in rows if r["key"] == peer_key), None)
    if peer:
        lines += ["", f"Ratio to the peer ({peer['label']}):", "", head, lines[1]]
        for r in rows:
            if r is not peer:
                lines.append(f"| {r['label']} | " + " | ".join(
                    f"{r['medians'][k] / peer['medians'][k]:.2f}" if peer["medians"][k] else "–" for k in keys) + " |")
    timed = [c for c in COLUMNS if c[1] == "lives"]
    lines += ["", "Fastest life of each (the least disturbed by the machine's other load):", "",
              "| program | " + " | ".join(c[0] for c in timed) + " |", "|---" * (len(timed) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['label']} | " + " | ".join(
            f.format(min(life[key] for life in r["lives"]) * scale) for _, _, key, scale, f in timed) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", help="the peer (the Go extension), in turns with the probes")
    ap.add_argument("--binary", help="this project's layer binary, added as the last row")
    ap.add_argument("--startup-bin", help="Benchmarks/lambda_life.c's harness (built into --out/.bin when not given)")
    ap.add_argument("--probes", help="a folder holding the built probes (sockets, Ladder*): no build")
    ap.add_argument("--layer-link", action="store_true", help="link as layer/build.sh does (a static executable)")
    ap.add_argument("--lives", type=int, default=int(os.environ.get("BENCH_LIVES") or 9))
    ap.add_argument("--hold-ms", type=int, default=1000, help="idle time before the memory is read")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    out = Path(args.out)
    startup_bin = Path(args.startup_bin) if args.startup_bin else out / ".bin" / "startup"
    if not args.startup_bin:
        startup_bin.parent.mkdir(parents=True, exist_ok=True)
        nice(["cc", "-O2", "-Wall", "-o", startup_bin, BENCH / "startup.c", BENCH / "lambda_life.c"])
    probes = Path(args.probes) if args.probes else None
    paths = {n: probes / n for n, _ in PROBES} if probes else build(out / ".bin" / "ladder", args.layer_link)
    subjects = [Subject(n, label, paths[n]) for n, label in PROBES]
    if args.peer:
        subjects.append(Subject("peer", "Go extension (peer)", args.peer))
    if args.binary:
        subjects.append(Subject("binary", "this project's layer binary", args.binary))
    load_start = loadavg()
    log(f"{args.lives} lives and {args.lives} idle lives ({args.hold_ms} ms) of each, in turns: "
        + ", ".join(s.key for s in subjects))
    try:
        measure(subjects, startup_bin, args.lives, args.hold_ms)
        rows = [{"key": s.key, "label": s.label, "binary": str(s.source), "medians": medians(s), "lives": s.lives,
                 "idle": s.idle} for s in subjects]
    finally:
        for s in subjects:
            shutil.rmtree(s.dir, ignore_errors=True)
    text = table(rows, "peer")
    stamp = time.strftime("%Y%m%dT%H%M%S")
    load_end = loadavg()
    text += (f"\n\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores {platform.machine()}, medians of {args.lives} lives "
             f"(idle RSS: {args.lives} lives, {args.hold_ms} ms after the first /event/next), in turns; load average "
             f"{' '.join(load_start)} at start, {' '.join(load_end)} at end; "
             f"link: {'layer/toolchain/clang (static executable)' if args.layer_link else 'swift build --static-swift-stdlib'}.")
    data = {"date": stamp, "machine": platform.machine(), "cores": os.cpu_count(), "lives": args.lives,
            "hold_ms": args.hold_ms, "layer_link": args.layer_link, "loadavg_start": load_start,
            "loadavg_end": load_end, "rows": rows}
    jpath, _ = write_results(out, stamp, data, text, suffix="-ladder")
    print(text)
    print(f"\nraw: {jpath}")


if __name__ == "__main__":
    main()
