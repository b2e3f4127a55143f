"""make bench-cost's CPU-share mode: what the extension adds to a cold start where functions really
run, at a fraction of one CPU shared with the function's runtime.

For each MEMORY size, a cgroup with Lambda's CPU quota for it (tools/local-lambda/local_lambda/
cpu_share.py) holds the extension and a stand-in runtime (Benchmarks/standin_runtime.c), in turns:
the runtime alone, then with our layer binary, then with the peer (BENCH_PEER, the Go extension).
A fake Extensions API, and an HTTPS stand-in remote whose trust bundle is the system's plus its own
CA (a real-sized store, named by SSL_CERT_FILE for both extensions), run outside the cgroup.

  register       exec until the extension's POST /register arrives (Lambda then starts the runtime)
  first next     exec until its first GET /event/next
  init           exec until both the runtime's init is done (it burns INIT_MS of CPU, started at
                 /register, at exec when alone) and the extension waits in /event/next
  added init     init minus the runtime alone's
  first upload   exec until the HTTPS remote has read the upload the runtime posted in its first
                 invocation
  cold request   init plus the first invocation: INVOKE to the extension and the runtime, which
                 burns INVOKE_MS and posts the upload to localhost:4040; the invocation ends when
                 the runtime is done and the extension waits in /event/next again
  life CPU       the extension's CPU from exec to its exit after SHUTDOWN (wait4 rusage)

Work moved out of init into the first invocation is not saved: the cold request's total shows it.
"""

import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# One definition of Lambda's quota, shared with the local Lambda (make lambda-local MEMORY=...).
sys.path.insert(0, str(BENCH_DIR.parent / "tools/local-lambda"))
sys.path.insert(0, str(BENCH_DIR))
from local_lambda.cpu_share import CpuShare  # noqa: E402
from share_peers import ExtensionsAPI, HTTPSRemote, cpu_ms, event, now_ms  # noqa: E402

UPLOAD_PORT = 4040


def log(*a):
    print("[cpu-share]", *a, file=sys.stderr, flush=True)


class Runtime:
    """The stand-in runtime's process: ready once its init burn is done, then one invocation."""

    def __init__(self, binary, share, init_ms, invoke_ms, upload_port, body):
        self.proc = subprocess.Popen([str(binary), str(init_ms), str(invoke_ms), str(upload_port), str(body)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=share.join)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put((now_ms(), line.strip()))

    def next_line(self, timeout_s=60):
        return self.lines.get(timeout=timeout_s)

    def invoke(self):
        self.proc.stdin.write("invoke\n")
        self.proc.stdin.flush()

    def stop(self):
        try:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def reap(pid, timeout_s):
    """(exit status, CPU ms of the whole process) once `pid` exits; killed after timeout_s."""
    end = time.monotonic() + timeout_s
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status), (usage.ru_utime + usage.ru_stime) * 1e3
        if time.monotonic() > end:
            os.kill(pid, 9)
            _, status, usage = os.wait4(pid, 0)
            return "killed", (usage.ru_utime + usage.ru_stime) * 1e3
        time.sleep(0.002)


def turn(share, api, remote, runtime_bin, body, extension, init_ms, invoke_ms, extra_env=None):
    """One cold start and first invocation; `extension` None: the runtime alone. Times in ms from exec."""
    started = {}
    spool = tempfile.mkdtemp(prefix="bench-share-spool-")

    def start_runtime():
        started["runtime"] = Runtime(runtime_bin, share, init_ms, invoke_ms, UPLOAD_PORT if extension else 0, body)

    api.reset(start_runtime)
    t0 = now_ms()
    proc = None
    if extension is None:
        start_runtime()
    else:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYROSCOPE_", "SSL_CERT_", "AWS_"))}
        env.update(AWS_LAMBDA_RUNTIME_API=api.address, PYROSCOPE_REMOTE_ADDRESS=f"https://127.0.0.1:{remote.port}",
                   SSL_CERT_FILE=str(remote.bundle), PYROSCOPE_SPOOL_DIR=spool, AWS_REGION="us-east-1",
                   AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(share.memory_mb), AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
                   # Both extensions' default (uploads go out as they come), named: the first
                   # upload is compared as sent the same way (make bench-freeze measures the
                   # strategies).
                   PYROSCOPE_FLUSH_STRATEGY="background")
        env.update(extra_env or {})
        proc = subprocess.Popen([str(extension)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=share.join)
        api.pid = proc.pid
    row = {}
    try:
        if proc:
            first_next = api.wait_nexts(1, 30)
            if first_next is None:
                raise RuntimeError(f"{extension}: no /event/next within 30 s (errors: {api.errors})")
            row.update(register=api.registered_at - t0, first_next=first_next - t0, cpu_register=api.cpu_at_register,
                       cpu_first_next=api.cpu_at_nexts[0])
        runtime = started["runtime"]
        ready, _ = runtime.next_line()
        init_end = max(ready, first_next) if proc else ready
        row["init"] = init_end - t0
        if proc:
            row["cpu_init"] = cpu_ms(proc.pid)
        invoked = now_ms()
        if proc:
            api.events.put(event("INVOKE"))
        runtime.invoke()
        done, line = runtime.next_line()
        if proc and line != "done 200":
            raise RuntimeError(f"{extension}: the runtime's upload was not acknowledged: {line!r}")
        invocation_end = max(done, api.wait_nexts(2, 30) or float("inf")) if proc else done
        row["invocation"] = invocation_end - invoked
        if proc:
            row["cpu_invocation"] = cpu_ms(proc.pid) - row["cpu_init"]
        row["cold_request"] = row["init"] + row["invocation"]
        if proc:
            delivered = remote.first_after(t0, 15)
            row["first_upload"] = delivered - t0 if delivered else None
            api.events.put(event("SHUTDOWN"))
            row["exit_status"], row["life_cpu"] = reap(proc.pid, 15)
            proc.returncode = row["exit_status"]
        runtime.stop()
    finally:
        if proc and proc.returncode is None:
            proc.kill()
            proc.wait()
        if "runtime" in started and started["runtime"].proc.poll() is None:
            started["runtime"].proc.kill()
        subprocess.run(["rm", "-rf", spool])
    return row


FIGURES = [
    # (key, what, goal ratio ours/peer from the issue, on the added figure where "added")
    ("register", "exec -> POST /register, ms", None),
    ("first_next", "exec -> first GET /event/next, ms", None),
    ("init", "init (runtime done and extension waiting), ms", None),
    ("added_init", "added init (minus the runtime alone), ms", 1.0),
    ("first_upload", "exec -> first upload read by the HTTPS remote, ms", 1.0),
    ("cold_request", "cold request: init + first invocation, ms", None),
    ("added_cold_request", "cold request added (minus the runtime alone), ms", 1.0),
    ("cpu_register", "its CPU until /register, ms", None),
    ("cpu_first_next", "its CPU until the first /event/next, ms", None),
    ("cpu_init", "its CPU until init ends, ms", None),
    ("cpu_invocation", "its CPU in the first invocation, ms", None),
    ("life_cpu", "CPU of the life (to exit after SHUTDOWN), ms", None),
]


def measure(layer_binary, peer, runtime_bin, body, memory_sizes, turns, init_ms=30, invoke_ms=10):
    """Every figure per memory size, in turns (alone, ours, peer). Returns (data, None) or
    (None, why the mode was skipped)."""
    subjects = [("alone", None), ("ours", Path(layer_binary).resolve())] + ([("peer", Path(peer).resolve())] if peer else [])
    shares = {}
    for mb in memory_sizes:
        share, why = CpuShare.make(mb, name=f"bench-cpu-share-{os.getpid()}-{mb}")
        if share is None:
            for made in shares.values():
                made.remove()
            return None, why
        shares[mb] = share
    work = Path(tempfile.mkdtemp(prefix="bench-cpu-share-"))
    remote, api = HTTPSRemote(work), ExtensionsAPI()
    data = {"init_ms": init_ms, "invoke_ms": invoke_ms, "turns": turns, "trust_bundle_certificates": remote.certificates,
            "sizes": {}}
    try:
        for mb, share in shares.items():
            rows = {label: [] for label, _ in subjects}
            for label, binary in subjects:  # a first turn each, not counted: page cache, the remote's first session
                turn(share, api, remote, runtime_bin, body, binary, init_ms, invoke_ms)
            for i in range(turns):
                for label, binary in subjects:
                    rows[label].append(turn(share, api, remote, runtime_bin, body, binary, init_ms, invoke_ms))
            data["sizes"][str(mb)] = {"quota_share": share.share, "throttled_ms": share.throttled_ms(), "rows": rows}
            log(f"{mb} MB: init " + ", ".join(f"{label} {median(rows[label], 'init'):.0f} ms" for label, _ in subjects))
    finally:
        api.stop()
        remote.stop()
        for share in shares.values():
            share.remove()
        subprocess.run(["rm", "-rf", str(work)])
    return data, None


def median(rows, key):
    values = sorted(r[key] for r in rows if r.get(key) is not None)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summary(size):
    """Medians per subject, with the added figures (minus the runtime alone's medians)."""
    rows = size["rows"]
    alone = {key: median(rows["alone"], key) for key in ("init", "cold_request")}
    out = {}
    for label in rows:
        if label == "alone":
            continue
        figures = {key: median(rows[label], key) for key, _, _ in FIGURES if not key.startswith("added_")}
        figures["added_init"] = figures["init"] - alone["init"]
        figures["added_cold_request"] = figures["cold_request"] - alone["cold_request"]
        out[label] = figures
    return alone, out


def paired(size, key):
    """Ours minus the peer in each turn (the two ran back to back, so the machine's drift
    between turns cancels): the median difference and how many turns ours was not slower."""
    pairs = [(o[key], p[key]) for o, p in zip(size["rows"]["ours"], size["rows"]["peer"])
             if o.get(key) is not None and p.get(key) is not None]
    if not pairs:
        return None
    differences = [o - p for o, p in pairs]
    return statistics.median(differences), sum(d <= 0 for d in differences), len(pairs)


def table(data):
    lines = []
    for mb, size in data["sizes"].items():
        alone, subjects = summary(size)
        peer = "peer" in subjects
        lines += [f"**{mb} MB** (CPU quota {size['quota_share'] * 100:.1f} % of one CPU; runtime alone: init "
                  f"{alone['init']:.0f} ms, cold request {alone['cold_request']:.0f} ms)", "",
                  "| figure | " + ("peer | ours | ours / peer | bar | ours − peer per turn (median) | turns ours ≤ peer |"
                                   if peer else "ours |"),
                  "|---|" + ("---|---|---|---|---|---|" if peer else "---|")]
        for key, what, bar in FIGURES:
            ours = subjects["ours"][key]
            if not peer:
                lines.append(f"| {what} | {ours:.1f} |")
                continue
            theirs = subjects["peer"][key]
            ratio = f"{ours / theirs:.2f}" if ours is not None and theirs else ""
            # An added figure differs from its total by the runtime alone's median only.
            pair = paired(size, key.removeprefix("added_"))
            turns = f"{pair[0]:+.1f} | {pair[1]} of {pair[2]}" if pair else " | "
            lines.append(f"| {what} | {theirs:.1f} | {ours:.1f} | {ratio} | {f'≤ {bar}' if bar else ''} | {turns} |")
        lines.append("")
    lines.append(f"Stand-in runtime: {data['init_ms']} ms of CPU at init, {data['invoke_ms']} ms and one upload per "
                 f"invocation; HTTPS remote trusted through a bundle of {data['trust_bundle_certificates']} certificates; "
                 f"{data['turns']} turns per size, medians.")
    return "\n".join(lines)
