"""Command line: parse options, run the sandbox, write the report, print a summary."""

from __future__ import annotations

import argparse
import json
import os
import sys

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse already exits 2; keep it explicit
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="local_lambda.py",
        description="Run Lambda extensions and a Python function locally with Lambda's lifecycle "
                    "(Extensions, Runtime and Telemetry APIs, freezes between invocations, deadlines).",
    )
    p.add_argument("--extension", action="append", required=True, metavar="PATH",
                   help="extension executable (repeatable); its file name is the extension name")
    p.add_argument("--function-dir", required=True, help="directory holding the handler module (LAMBDA_TASK_ROOT, cwd)")
    p.add_argument("--handler", default="app.handler", help="module.function (default app.handler)")
    p.add_argument("--python", default=sys.executable, help="python with awslambdaric installed (default: this one)")
    p.add_argument("--invocations", type=int, default=1, metavar="N", help="number of invocations (default 1)")
    p.add_argument("--event", default="{}", metavar="JSON", help="event payload for every invocation (default {})")
    p.add_argument("--freeze-seconds", type=float, default=1.0, metavar="S", help="freeze after each invocation (default 1)")
    p.add_argument("--invoke-timeout", type=float, default=5.0, metavar="SECONDS", help="function timeout (default 5)")
    p.add_argument("--init-timeout", type=float, default=10.0, metavar="SECONDS", help="init phase limit (default 10)")
    p.add_argument("--shutdown-ms", type=int, default=2000, metavar="MS", help="shutdown phase limit (default 2000)")
    p.add_argument("--env", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="environment for the extension(s) and the function (repeatable)")
    p.add_argument("--report", metavar="PATH.json", help="write the JSON report here")
    p.add_argument("--quiet", action="store_true", help="do not echo process output / emulator log")
    return p


def parse_args(argv):
    p = build_parser()
    opts = p.parse_args(argv)
    opts.env = [item for group in opts.env for item in group]
    for item in opts.env:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            p.error(f"--env expects KEY=VALUE, got {item!r}")
    opts.extensions = opts.extension
    names = [os.path.basename(x) for x in opts.extensions]
    if len(set(names)) != len(names):
        p.error(f"extension file names must be unique (they are the extension names): {names}")
    for path in opts.extensions:
        if not os.path.isfile(path) or not os.access(path, os.X_OK):
            p.error(f"--extension {path}: not an executable file")
    if not os.path.isdir(opts.function_dir):
        p.error(f"--function-dir {opts.function_dir}: not a directory")
    opts.function_dir = os.path.abspath(opts.function_dir)
    if not (os.path.isfile(opts.python) and os.access(opts.python, os.X_OK)):
        p.error(f"--python {opts.python}: not an executable file")
    # The runtime starts in --function-dir: a relative interpreter path would name another
    # file there (Runtime.InvalidEntrypoint). abspath, not realpath: a venv's python is a
    # symlink whose location selects the venv.
    opts.python = os.path.abspath(opts.python)
    if "." not in opts.handler:
        p.error("--handler must look like module.function")
    try:
        json.loads(opts.event)
    except ValueError as e:
        p.error(f"--event is not valid JSON: {e}")
    if opts.invocations < 0:
        p.error("--invocations must be >= 0")
    if opts.freeze_seconds < 0 or opts.invoke_timeout <= 0 or opts.init_timeout <= 0 or opts.shutdown_ms <= 0:
        p.error("--freeze-seconds must be >= 0 and the timeouts > 0")
    return opts


def summary(rep: dict) -> str:
    lines = [f"== local lambda: api port {rep['api_port']}"]
    for e in rep["extensions"]:
        reg = e["register"]
        sub = e["telemetry_subscription"]
        first_next = e["next_calls"][0] if e["next_calls"] else None
        lines.append(
            f"extension {e['name']}: registered={'yes @%.3fs' % reg['time'] if reg else 'no'} events={e['events']} "
            f"first_next={'%.3fs' % first_next if first_next is not None else '-'} "
            f"telemetry={(sub or {}).get('status')} "
            f"deliveries={len((sub or {}).get('deliveries') or [])} "
            f"exit_code={e['exit_code']} killed_at_deadline={e['killed_at_deadline']}"
            + (f" init_error={e['init_error']['error_type']}" if e["init_error"] else "")
            + (f" exit_error={e['exit_error']['error_type']}" if e["exit_error"] else "")
        )
    f = rep["function"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}s"  # noqa: E731
    lines.append(f"function: init_started={fmt(f['init_started'])} first_next={fmt(f['first_next'])} exit_code={f['exit_code']}")
    for inv in rep["invocations"]:
        state = "TIMEOUT" if inv["timeout"] else (f"FAILED {inv['failure']}" if inv["failure"] else "ok")
        post = ", ".join(f"{k}+{v:.1f}ms" for k, v in inv["extensions_post_runtime_ms"].items() if v is not None)
        lines.append(
            f"invoke #{inv['index'] + 1} {inv['request_id']}: {state} duration={inv['duration_ms']}ms "
            f"runtimeDone sent={fmt(inv['runtime_done_sent'])} post-runtime[{post}] "
            f"frozen={'%.3fs' % (inv['freeze_end'] - inv['freeze_start']) if inv['freeze_end'] else '-'}"
        )
    sd = rep["shutdown"]
    if sd:
        lines.append(f"shutdown: reason={sd['reason']} sent={fmt(sd['sent'])} deadline_ms={sd['deadline_ms']} "
                     f"runtime_sigterm={fmt(sd['runtime_sigterm'])} runtime_sigkill={fmt(sd['runtime_sigkill'])}")
    lines.append(f"init_timeout={rep['init_timeout']} init_failed={rep['init_failed']} errors={len(rep['errors'])} "
                 f"warnings={len(rep['warnings'])}")
    for msg in rep["errors"]:
        lines.append(f"  error: {msg.splitlines()[0]}")
    for msg in rep["warnings"]:
        lines.append(f"  warning: {msg}")
    return "\n".join(lines)


def main(argv=None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    from .emulator import Emulator

    emu = Emulator(opts)
    emu.run()
    rep = emu.report()
    if opts.report:
        with open(opts.report, "w") as f:
            json.dump(rep, f, indent=2, default=str)
    print(summary(rep), flush=True)
    if opts.report:
        print(f"report written to {opts.report}", flush=True)
    return 0
