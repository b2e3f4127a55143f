"""Command line: parse options, run the sandbox, write the report, print a summary.

Exit status: 0 when the function and every extension worked, 1 when not (the report's
"failures" say what), 2 for bad options."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import modes, report

USAGE_ERROR = 2
# The function or an extension failed (report "failures" says what).
RUN_FAILED = 1


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse already exits 2; keep it explicit
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def user_and_group(text: str) -> tuple[int, int]:
    """--run-as UID:GID."""
    uid, sep, gid = text.partition(":")
    if not (sep and uid.isdigit() and gid.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected UID:GID, e.g. 993:990")
    return int(uid), int(gid)


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
    p.add_argument("--mode", choices=modes.MODES, default=modes.ON_DEMAND,
                   help="execution model, also AWS_LAMBDA_INITIALIZATION_TYPE (default on-demand)")
    p.add_argument("--runtime-start", choices=["next", "registered"], default="next",
                   help="when the function's init starts: once every extension called /event/next (the documented "
                        "order, default) or once every extension registered (what RAPID, Lambda's open-source core, does)")
    p.add_argument("--pc-idle-seconds", type=float, default=3.0, metavar="S",
                   help="provisioned-concurrency: frozen between init and the first invoke (default 3)")
    p.add_argument("--snapshot-seconds", type=float, default=3.0, metavar="S",
                   help="snap-start: the whole environment frozen as the snapshot, before the restore (default 3)")
    p.add_argument("--workers", type=int, default=3, metavar="N",
                   help="lambda-managed-instances: runtime worker processes, AWS_LAMBDA_MAX_CONCURRENCY (default 3)")
    p.add_argument("--invoke-interval", type=float, default=0.0, metavar="S",
                   help="lambda-managed-instances: at least this long between invocation starts (default 0)")
    p.add_argument("--refuse-invoke-registration", action="store_true",
                   help="fault: answer registrations with INVOKE 403 Extension.InvalidEventType, as LMI does")
    p.add_argument("--refuse-telemetry", nargs="?", const="400", choices=["400", "403", "202"], default=None,
                   help="fault: answer every Telemetry API subscription 400 ValidationError (the default), "
                        "403 AccessDeniedException, or 202 Telemetry.NotSupported as Lambda's runtime interface emulator does")
    p.add_argument("--run-as", type=user_and_group, metavar="UID:GID",
                   help="run the extensions as this user and group, with no supplementary groups, as Lambda runs "
                        "them (its sbx_user1051 is 993:990); needs root. Default: as the emulator runs")
    p.add_argument("--env", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="environment for the extension(s) and the function (repeatable)")
    p.add_argument("--memory", type=int, default=None, metavar="MB",
                   help="the function's memory size: AWS_LAMBDA_FUNCTION_MEMORY_SIZE, and Lambda's CPU quota for it (1,769 MB "
                        "is one vCPU, 128 MB about 7 %%, over 20 ms periods) and memory limit as a cgroup holding the "
                        "extensions and the runtime. Default: 128 in the environment, no quota or limit")
    p.add_argument("--freeze-network-port", type=int, action="append", default=[], metavar="PORT",
                   help="a freeze also stops the environment's network, as a paused microVM's: TCP packets to "
                        "and from PORT are dropped while frozen (iptables, in the sandbox's network namespace; "
                        "repeatable)")
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
    if opts.run_as and os.geteuid() != 0:
        p.error("--run-as needs root (to switch to that user); run without it to keep this user")
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
    if opts.pc_idle_seconds < 0 or opts.snapshot_seconds < 0 or opts.invoke_interval < 0:
        p.error("--pc-idle-seconds, --snapshot-seconds and --invoke-interval must be >= 0")
    if opts.memory is not None and not 128 <= opts.memory <= 10240:
        p.error("--memory must be from 128 to 10240 MB, as in Lambda")
    if opts.workers < 1:
        p.error("--workers must be >= 1")
    return opts


def main(argv=None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    from .emulator import Emulator

    emu = Emulator(opts)
    emu.run()
    rep = emu.report()
    if opts.report:
        with open(opts.report, "w") as f:
            json.dump(rep, f, indent=2, default=str)
    print(report.summary(rep), flush=True)
    if opts.report:
        print(f"report written to {opts.report}", flush=True)
    return 0 if rep["ok"] else RUN_FAILED
