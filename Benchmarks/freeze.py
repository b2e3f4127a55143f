#!/usr/bin/env python3
"""make bench-freeze: what a freeze does to uploads in flight, per extension and strategy.

Lambda freezes the whole execution environment, network included, as soon as the runtime and
every extension wait for the next event. An upload on the wire then is frozen between
"request sent" and "answer read"; a load balancer in front of the remote gives up on a client
that stopped acknowledging; at the thaw the extension finds a reset (or its own timeout) and
either sends the upload again (the remote may have stored it: a duplicate) or gives up (lost
if the remote had not stored it).

Each run is a local Lambda (tools/local-lambda, the real awslambdaric runtime, the extension
as uid 993) whose freezes also drop the environment's packets to and from the stand-in remote
(--freeze-network-port), in a network namespace of its own (lambda_sandbox.sh). The remote
(Tests/Peers/capture_server.py) stores each upload as it reads it, answers 300 ms later, and
drops a connection whose client leaves its answer unacknowledged for 4 s (TCP_USER_TIMEOUT: a
load balancer). Each invocation's handler posts one upload tagged with its request id and
returns after 20 ms of CPU. Two shapes: brief invocations with long gaps (3 invocations, 12 s
freezes: longer than PYROSCOPE_TIMEOUT and the balancer's patience) and back to back (10
invocations, 0.2 s freezes).

Reported per extension, strategy and shape: uploads the function made, stored once, stored
twice or more (duplicates), never stored (lost), the delay from the function's send to the
remote's read (median, max), and the post-runtime duration the extension added to each
invocation (billed; median, max).

Usage: freeze.py --binary OURS [--peer GO_EXTENSION] --python VENV_PYTHON [--out DIR] [--quick]
"""

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSWER_DELAY_MS = 300
BALANCER_PATIENCE_MS = 4000
SHAPES = {
    # name: (invocations, freeze seconds)
    "gaps": (3, 12.0),
    "back-to-back": (10, 0.2),
}


def log(*a):
    print("[freeze]", *a, file=sys.stderr, flush=True)


def run_once(extension, env, shape, python, work):
    invocations, freeze = SHAPES[shape]
    work.mkdir(parents=True, exist_ok=True)
    received, port_file = work / "received.jsonl", work / "port"
    remote = subprocess.Popen(
        [sys.executable, str(ROOT / "Tests/Peers/capture_server.py"), "--port", "0", "--port-file", str(port_file),
         "--out", str(received), "--quiet", "--answer-delay-ms", str(ANSWER_DELAY_MS),
         "--abort-unacked-ms", str(BALANCER_PATIENCE_MS), "--max-seconds", "600"],
        stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        port = int(port_file.read_text())
        spool = work / "spool"
        spool.mkdir()
        os.chmod(work, 0o755)
        shutil.chown(spool, 993, 990)
        report = work / "report.json"
        event = json.dumps({"uploads": 1, "work_ms": 20})
        run_env = [f"PYROSCOPE_REMOTE_ADDRESS=http://127.0.0.1:{port}", "PYROSCOPE_SERVER_ADDRESS=http://localhost:4040",
                   "PYROSCOPE_LISTEN_ADDRESS=localhost:4040", f"PYROSCOPE_SPOOL_DIR={spool}", "PROFILE_UPLOAD_SECONDS=600",
                   "PYROSCOPE_LOG_LEVEL=info"] + [f"{k}={v}" for k, v in env.items()]
        subprocess.run(
            [python, str(ROOT / "tools/local-lambda/local_lambda.py"), "--extension", str(extension),
             "--function-dir", str(ROOT / "tools/local-lambda/lambda_function"), "--handler", "app.handler", "--python", python,
             "--invocations", str(invocations), "--event", event, "--freeze-seconds", str(freeze),
             "--freeze-network-port", str(port), "--run-as", "993:990", "--report", str(report), "--quiet", "--env", *run_env],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
        time.sleep(0.5)  # the remote records what the drain sent
    finally:
        remote.terminate()
        remote.wait()
    rep = json.loads(report.read_text())
    stored = {}
    delays = []
    for line in received.read_text().splitlines() if received.exists() else []:
        record = json.loads(line)
        query = urllib.parse.parse_qs(record.get("query") or "")
        if "tag" not in query:
            continue
        tag = query["tag"][0]
        stored[tag] = stored.get(tag, 0) + 1
        if stored[tag] == 1 and "sent_ms" in query:
            read = datetime.datetime.fromisoformat(record["ts"]).timestamp()
            delays.append(read * 1000 - int(query["sent_ms"][0]))
    made = [inv["request_id"] for inv in rep["invocations"]]
    added = [ms for inv in rep["invocations"] for ms in (inv.get("extensions_post_runtime_ms") or {}).values() if ms is not None]
    output = [line for extension in rep.get("extensions") or [] for _, line in extension.get("output") or []]
    return {
        "made": len(made),
        "once": sum(1 for tag in made if stored.get(tag) == 1),
        "duplicated": sum(1 for tag in made if stored.get(tag, 0) > 1),
        "lost": sum(1 for tag in made if tag not in stored),
        "delay_ms": delays,
        "post_runtime_ms": added,
        # Ours says so for each upload whose answer a freeze took (sent whole, not resent).
        "unconfirmed": sum(1 for line in output if "its answer lost" in line),
        "ok": rep.get("ok"),
        "failures": rep.get("failures"),
    }


def median(values):
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"


def table(rows):
    out = ["| extension | strategy | shape | made | stored once | duplicated | lost | answer lost, not resent | delay median / max, ms | post-runtime added median / max, ms |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        r = row["result"]
        out.append(
            f"| {row['subject']} | {row['strategy']} | {row['shape']} | {r['made']} | {r['once']} | {r['duplicated']} | {r['lost']} | "
            f"{r['unconfirmed'] if row['subject'] == 'ours' else '-'} | "
            f"{fmt(median(r['delay_ms']))} / {fmt(max(r['delay_ms']) if r['delay_ms'] else None)} | "
            f"{fmt(median(r['post_runtime_ms']), 1)} / {fmt(max(r['post_runtime_ms']) if r['post_runtime_ms'] else None, 1)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--peer")
    ap.add_argument("--python", required=True)
    ap.add_argument("--out", default=str(ROOT / "Benchmarks/results"))
    ap.add_argument("--quick", action="store_true", help="the gaps shape only, default strategies only")
    args = ap.parse_args()
    if not shutil.which("iptables"):
        log("iptables is missing: make bench-freeze installs it")
        return 2
    subjects = [("ours", Path(args.binary).resolve(), [("background (default)", {}),
                                                       ("invoke", {"PYROSCOPE_FLUSH_STRATEGY": "invoke"}),
                                                       ("end", {"PYROSCOPE_FLUSH_STRATEGY": "end"})])]
    if args.peer:
        subjects.append(("Go v1.7.1", Path(args.peer).resolve(), [("background (default)", {}),
                                                                  ("flush on invoke", {"PYROSCOPE_FLUSH_ON_INVOKE": "true"})]))
    shapes = ["gaps"] if args.quick else list(SHAPES)
    rows = []
    base = Path(tempfile.mkdtemp(prefix="bench-freeze-"))
    os.chmod(base, 0o755)  # the extensions run as uid 993
    for shape in shapes:
        for subject, binary, strategies in subjects:
            for strategy, env in strategies[:1] if args.quick and subject != "ours" else strategies:
                if args.quick and subject == "ours" and strategy != "background (default)":
                    continue
                # The file name is the extension's name: one folder per run.
                folder = base / f"{len(rows)}"
                folder.mkdir()
                copy = folder / "pyroscope-lambda-extension"
                shutil.copy(binary, copy)
                os.chmod(folder, 0o755)
                log(f"{subject} {strategy} {shape}")
                result = run_once(copy, env, shape, args.python, folder / "run")
                log(f"  made {result['made']} once {result['once']} duplicated {result['duplicated']} lost {result['lost']}"
                    + ("" if result["ok"] else f" (run failures: {result['failures']})"))
                rows.append({"subject": subject, "strategy": strategy, "shape": shape, "result": result})
    text = (f"Remote: stores on read, answers in {ANSWER_DELAY_MS} ms, drops a client silent for {BALANCER_PATIENCE_MS} ms; "
            "freezes drop the environment's packets to and from it.\n\n" + table(rows) + "\n")
    print(text)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}-freeze.md").write_text(text)
    (out / f"{stamp}-freeze.json").write_text(json.dumps(rows, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
