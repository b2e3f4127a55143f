"""The sandbox: state, environment, process callbacks, Telemetry fan-out and request routing.

The behaviour lives in mixins, one concern each: extensions_api.py (Extensions and Telemetry
APIs), runtime_api.py (Runtime API), lifecycle.py (init, invoke, freeze), shutdown.py,
execution_models.py (provisioned concurrency, SnapStart, Lambda Managed Instances).

Sources for the behaviour, in order of preference: the AWS Lambda developer guide
(Extensions API, Runtime API, Telemetry API, execution environment lifecycle),
/work/shared/reference/lambda-lifecycle.md and lambda-platform.md, and the open-source RAPID
in aws/aws-lambda-runtime-interface-emulator where the docs are silent. Places where we had
to guess are marked "GUESS".
"""

from __future__ import annotations

import os
import threading
import traceback
import uuid
from collections import deque

from . import modes, report, telemetry
from .api import Response, SandboxServer, error
from .execution_models import ExecutionModels
from .extensions_api import EXT_PREFIX, Extension, ExtensionsAPI
from .lifecycle import Lifecycle
from .processes import ManagedProcess
from .runtime_api import RUNTIME_PREFIX, RuntimeAPI
from .shutdown import Shutdown
from .cpu_share import CpuShare
from .util import FUNCTION_NAME, FUNCTION_VERSION, MEMORY_MB, REGION, decode_body, echo, headers_dict, now

TELEMETRY_PATHS = ("/2022-07-01/telemetry", "/2022-07-01/telemetry/")
LOGS_PATHS = ("/2020-08-15/logs", "/2020-08-15/logs/")

# What only the runtime sees; extensions get the rest of the function's environment
# (lambda-platform.md section 4; RIE-STD rapidcore/env/constants.go). LMI's worker count is
# runtime-only too (RIE-LMI rapidcore/env/environment.go getRuntimeOnlyEnvVars).
RUNTIME_ONLY = ("AWS_EXECUTION_ENV", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_MAX_CONCURRENCY")


class Emulator(ExtensionsAPI, RuntimeAPI, Lifecycle, ExecutionModels, Shutdown):
    def __init__(self, opts):
        self.opts = opts
        self.model = modes.MODELS[opts.mode]
        self.cond = threading.Condition()
        self.extensions = [Extension(p) for p in opts.extensions]
        self.runtime: ManagedProcess | None = None
        self.function: dict = {
            "handler": opts.handler,
            "function_dir": opts.function_dir,
            "pid": None,
            "init_started": None,
            "first_next": None,
            "restore_next": None,
            "init_error": None,
            "restore_error": None,
            "exit_code": None,
            "exit_time": None,
            "requests": [],
            "output": [],
        }
        self.invocations: list[dict] = []
        self.by_request_id: dict[str, dict] = {}
        self.pending_runtime: deque = deque()  # invocations no runtime worker has taken yet
        self.runtime_waiters = 0  # runtime workers blocked on /invocation/next
        self.workers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.registrations: list[dict] = []
        self.telemetry_subscriptions: list[dict] = []
        self.timeline: dict = dict.fromkeys((
            "init_start", "init_end", "pc_idle_start", "pc_idle_end", "snapshot_start", "snapshot_end",
            "restore_start", "restore_runtime_done", "restore_end", "workers_ready", "first_invoke_start",
            "shutdown_start"))
        self.restore: dict | None = None
        self.restore_released = False
        self.init_done = False
        self.init_timeout = False
        self.init_failed: dict | None = None
        self.shutdown: dict | None = None
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.log: list[list] = []
        self.unattributed_requests: list[dict] = []
        self.closing = False
        self.thawed = threading.Event()
        self.thawed.set()
        self.server = SandboxServer(self)
        self.port = self.server.port
        self._server_thread = threading.Thread(target=self.server.serve_forever, name="sandbox-api", daemon=True)
        self.instance_id = uuid.uuid4().hex
        self.init_metrics: dict = {}
        # --memory: the function's memory size, and Lambda's CPU quota and memory limit for it,
        # as a cgroup every process of the environment joins before its exec.
        self.memory_mb = opts.memory or MEMORY_MB
        self.cpu_share = None
        self.throttled_ms = None  # how long the quota held the environment back, read at the end
        if opts.memory:
            self.cpu_share, why = CpuShare.make(opts.memory, limit_memory=True)
            if self.cpu_share is None:
                self.warnings.append(f"--memory {opts.memory}: no CPU quota or memory limit, {why}")
            elif opts.run_as:
                self.cpu_share.delegate(*opts.run_as)
        self.cpu_share_join = self.cpu_share.join if self.cpu_share else None

    # ------------------------------------------------------------------ utils
    def say(self, msg: str) -> None:
        t = now()
        self.log.append([t, msg])
        if not self.opts.quiet:
            echo("[lambda]", msg)

    def error(self, msg: str) -> None:
        self.errors.append(msg)
        self.say("ERROR: " + msg)

    def _ext_prefix(self, ext: Extension) -> str:
        return "[extension]" if len(self.extensions) == 1 else f"[extension:{ext.name}]"

    def _procs(self) -> list[ManagedProcess]:
        procs = [e.proc for e in self.extensions if e.proc]
        if self.runtime:
            procs.append(self.runtime)
        return procs

    def base_env(self) -> dict:
        env: dict[str, str] = {}
        # Host variables a locally built binary may need to start at all (not set by Lambda).
        for key in ("LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "HOME", "LANG"):
            if key in os.environ:
                env[key] = os.environ[key]
        for item in self.opts.env:
            key, _, value = item.partition("=")
            env[key] = value
        reserved = {
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{self.port}",
            "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
            "AWS_LAMBDA_FUNCTION_VERSION": FUNCTION_VERSION,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_INITIALIZATION_TYPE": self.model.name,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION_NAME}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local/[$LATEST]" + self.instance_id,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
            "_HANDLER": self.opts.handler,
            "LAMBDA_TASK_ROOT": os.path.abspath(self.opts.function_dir),
            "TZ": ":UTC",
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        }
        if self.model.concurrent:
            # awslambdaric forks this many worker processes (lambda_multi_concurrent_utils.py).
            reserved["AWS_LAMBDA_MAX_CONCURRENCY"] = str(self.opts.workers)
        for key in reserved:
            if key in env and env[key] != reserved[key]:
                # Lambda does not let users override reserved variables.
                self.warnings.append(f"--env {key} ignored: reserved variable set by Lambda")
        env.update(reserved)
        if self.model.name == modes.SNAP_START:
            # SnapStart functions get no log group/stream names (AWS docs snapstart-monitoring.html).
            for key in ("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME"):
                env.pop(key, None)
        return env

    def runtime_env(self) -> dict:
        return self.base_env()

    def extension_env(self) -> dict:
        return {k: v for k, v in self.base_env().items() if k not in RUNTIME_ONLY}

    # ------------------------------------------------------------ process cb
    def _on_line(self, proc: ManagedProcess, stream: str, line: str, t: float) -> None:
        if proc is self.runtime:
            prefix, category = "[function]", "function"
        else:
            ext = next((e for e in self.extensions if e.proc is proc), None)
            prefix, category = (self._ext_prefix(ext) if ext else "[extension]"), "extension"
        if not self.opts.quiet:
            echo(prefix, line)
        self._emit(telemetry.make_event(category, line, t))

    def _on_exit(self, proc: ManagedProcess) -> None:
        with self.cond:
            who = "runtime" if proc is self.runtime else proc.label
            phase = "during shutdown" if self.shutdown else "unexpectedly"
            if not self.shutdown and not self.closing:
                self.say(f"{who} (pid {proc.pid}) exited {phase} with code {proc.exit_code}")
            self.cond.notify_all()

    # --------------------------------------------------------------- telemetry
    def _subscriptions(self) -> list[telemetry.Subscription]:
        return [e.subscription for e in self.extensions if e.subscription is not None and e.alive]

    def _emit(self, event: dict, flush_within: float | None = None) -> int:
        n = 0
        for sub in self._subscriptions():
            if sub.offer(event, flush_within):
                n += 1
        return n

    def _on_telemetry_delivered(self, batch: list, t: float) -> None:
        with self.cond:
            for ev in batch:
                if ev["type"] == "platform.runtimeDone":
                    inv = self.by_request_id.get(ev["record"].get("requestId"))
                    if inv is not None and inv["runtime_done_sent"] is None:
                        inv["runtime_done_sent"] = t

    # ------------------------------------------------------------------- HTTP
    def handle(self, method: str, path: str, headers, body: bytes, client) -> Response:
        try:
            return self._route(method, path, headers, body, client)
        except Exception as e:  # keep the server alive, but make it visible
            self.error(f"internal error handling {method} {path}: {e!r}\n{traceback.format_exc()}")
            return error(500, "Emulator.InternalError", repr(e))

    def _record(self, target: list, method: str, path: str, headers, body: bytes, t: float) -> dict:
        rec = {"time": t, "method": method, "path": path, "headers": headers_dict(headers), "body": decode_body(body)}
        target.append(rec)
        return rec

    def _route(self, method: str, path: str, headers, body: bytes, client) -> Response:
        t = now()
        if path.startswith(EXT_PREFIX + "/"):
            return self._extensions_api(method, path[len(EXT_PREFIX):], headers, body, t)
        if path in TELEMETRY_PATHS:
            return self._telemetry_api(method, path, headers, body, t)
        if path.startswith(RUNTIME_PREFIX + "/"):
            rec = self._record(self.function["requests"], method, path, headers, body, t)
            resp = self._runtime_api(method, path, headers, body, t, client)
            rec["status"] = resp.status
            return resp
        rec = self._record(self.unattributed_requests, method, path, headers, body, t)
        if path in LOGS_PATHS:
            rec["status"] = 404
            self.warnings.append(f"Logs API called ({method} {path}); it is superseded by the Telemetry API and not emulated")
            return error(404, "NotImplemented", "Logs API is not emulated; use the Telemetry API (2022-07-01)")
        rec["status"] = 404
        return error(404, "NotFound", f"no route for {method} {path}")

    # ----------------------------------------------------------------- report
    def report(self) -> dict:
        return report.build(self)
