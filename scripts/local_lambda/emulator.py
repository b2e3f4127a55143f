"""The sandbox: lifecycle (init, invoke, freeze, shutdown) and the API state machine.

Sources for the behaviour, in order of preference: the AWS Lambda developer guide
(Extensions API, Runtime API, Telemetry API, execution environment lifecycle),
/work/shared/reference/lambda-lifecycle.md, and the open-source RAPID in
aws/aws-lambda-runtime-interface-emulator (lambda/rapi, lambda/rapid) where the docs are
silent. Places where we had to guess are marked "GUESS".
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
import traceback
import uuid
from collections import deque

from . import telemetry
from .api import Response, SandboxServer, error
from .processes import ManagedProcess
from .util import decode_body, echo, headers_dict, ms_between, now, unix_ms

FUNCTION_NAME = "local-function"
FUNCTION_VERSION = "$LATEST"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
MEMORY_MB = 128
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"

EXT_PREFIX = "/2020-01-01/extension"
RUNTIME_PREFIX = "/2018-06-01/runtime"
TELEMETRY_PATHS = ("/2022-07-01/telemetry", "/2022-07-01/telemetry/")
LOGS_PATHS = ("/2020-08-15/logs", "/2020-08-15/logs/")

# Shutdown: with external extensions the whole phase gets 2,000 ms (AWS docs, "Shutdown
# phase"). The runtime is sent SIGTERM first and gets a share of it, then extensions get
# SHUTDOWN with a deadline at the end of the phase. lambda-lifecycle.md gives the runtime
# ~300 ms; RAPID (lambda/rapid/shutdown.go, runtimeDeadlineShare = 0.3) gives it 30 % of the
# phase (600 ms of 2,000). We use 300 ms, the figure quoted for the managed service.
RUNTIME_SHUTDOWN_GRACE_S = 0.300

# Limits on the Runtime API response payload (synchronous invocations: 6 MB).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024

# Freeze: how long after SIGSTOP we sample /proc to record that every thread is stopped.
FREEZE_SAMPLE_DELAY_S = 0.1

_INVOCATION_PATH = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")


class Extension:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(path)
        self.proc: ManagedProcess | None = None
        self.id: str | None = None
        self.events: list[str] = []
        self.register: dict | None = None
        self.next_calls: list[float] = []
        self.init_error: dict | None = None
        self.exit_error: dict | None = None
        self.telemetry_subscription: dict | None = None
        self.subscription: telemetry.Subscription | None = None
        self.requests: list[dict] = []
        self.pending: deque = deque()
        self.delivered_inv: dict | None = None  # INVOKE handed out, not yet acknowledged by /next
        self.shutdown_delivered: float | None = None
        self.killed_at_deadline = False
        self.killed_unsubscribed = False
        self.launch_error: str | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive

    def report(self, shutdown_sent: float | None) -> dict:
        p = self.proc
        return {
            "name": self.name,
            "path": self.path,
            "pid": p.pid if p else None,
            "identifier": self.id,
            "events": self.events,
            "register": self.register,
            "next_calls": self.next_calls,
            "init_error": self.init_error,
            "exit_error": self.exit_error,
            "telemetry_subscription": self.telemetry_subscription,
            "shutdown_delivered": self.shutdown_delivered,
            "exit_code": p.exit_code if p else None,
            "exit_time": p.exit_time if p else None,
            "time_to_exit_after_shutdown_ms": ms_between(shutdown_sent, p.exit_time) if p else None,
            "killed_at_deadline": self.killed_at_deadline,
            "killed_not_subscribed_to_shutdown": self.killed_unsubscribed,
            "launch_error": self.launch_error,
            "requests": self.requests,
            "output": p.output if p else [],
        }


class Emulator:
    def __init__(self, opts):
        self.opts = opts
        self.cond = threading.Condition()
        self.extensions = [Extension(p) for p in opts.extensions]
        self.runtime: ManagedProcess | None = None
        self.function: dict = {
            "handler": opts.handler,
            "function_dir": opts.function_dir,
            "pid": None,
            "init_started": None,
            "first_next": None,
            "init_error": None,
            "exit_code": None,
            "exit_time": None,
            "requests": [],
            "output": [],
        }
        self.invocations: list[dict] = []
        self.current: dict | None = None
        self.runtime_pending: dict | None = None
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
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
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
        for key in reserved:
            if key in env and env[key] != reserved[key]:
                # Lambda does not let users override reserved variables.
                self.warnings.append(f"--env {key} ignored: reserved variable set by Lambda")
        env.update(reserved)
        return env

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
                    rid = ev["record"].get("requestId")
                    for inv in self.invocations:
                        if inv["request_id"] == rid and inv["runtime_done_sent"] is None:
                            inv["runtime_done_sent"] = t

    # ------------------------------------------------------------------- HTTP
    def handle(self, method: str, path: str, headers, body: bytes, client) -> Response:
        try:
            return self._route(method, path, headers, body)
        except Exception as e:  # keep the server alive, but make it visible
            self.error(f"internal error handling {method} {path}: {e!r}\n{traceback.format_exc()}")
            return error(500, "Emulator.InternalError", repr(e))

    def _record(self, target: list, method: str, path: str, headers, body: bytes, t: float) -> dict:
        rec = {"time": t, "method": method, "path": path, "headers": headers_dict(headers), "body": decode_body(body)}
        target.append(rec)
        return rec

    def _route(self, method: str, path: str, headers, body: bytes) -> Response:
        t = now()
        if path.startswith(EXT_PREFIX + "/"):
            return self._extensions_api(method, path[len(EXT_PREFIX):], headers, body, t)
        if path in TELEMETRY_PATHS:
            return self._telemetry_api(method, path, headers, body, t)
        if path.startswith(RUNTIME_PREFIX + "/"):
            rec = self._record(self.function["requests"], method, path, headers, body, t)
            resp = self._runtime_api(method, path, headers, body, t)
            rec["status"] = resp.status
            return resp
        rec = self._record(self.unattributed_requests, method, path, headers, body, t)
        if path in LOGS_PATHS:
            rec["status"] = 404
            self.warnings.append(f"Logs API called ({method} {path}); it is superseded by the Telemetry API and not emulated")
            return error(404, "NotImplemented", "Logs API is not emulated; use the Telemetry API (2022-07-01)")
        rec["status"] = 404
        return error(404, "NotFound", f"no route for {method} {path}")

    # -- Extensions API --------------------------------------------------------
    def _ext_by_identifier(self, headers, body, method, path, t):
        ident = headers.get("Lambda-Extension-Identifier")
        if not ident:
            rec = self._record(self.unattributed_requests, method, path, headers, body, t)
            rec["status"] = 403
            return None, error(403, "Extension.MissingExtensionIdentifier", "Missing Lambda-Extension-Identifier header")
        try:
            uuid.UUID(ident)
        except ValueError:
            rec = self._record(self.unattributed_requests, method, path, headers, body, t)
            rec["status"] = 403
            return None, error(403, "Extension.InvalidExtensionIdentifier", "Invalid Lambda-Extension-Identifier")
        ext = next((e for e in self.extensions if e.id == ident), None)
        if ext is None:
            rec = self._record(self.unattributed_requests, method, path, headers, body, t)
            rec["status"] = 403
            return None, error(403, "Extension.UnknownExtensionIdentifier", "Unknown extension " + ident)
        return ext, None

    def _extensions_api(self, method: str, sub: str, headers, body: bytes, t: float) -> Response:
        if sub == "/register" and method == "POST":
            return self._register(headers, body, t)
        if sub not in ("/event/next", "/init/error", "/exit/error"):
            rec = self._record(self.unattributed_requests, method, EXT_PREFIX + sub, headers, body, t)
            rec["status"] = 404
            return error(404, "NotFound", f"no route for {method} {EXT_PREFIX + sub}")
        ext, err = self._ext_by_identifier(headers, body, method, EXT_PREFIX + sub, t)
        if err:
            return err
        rec = self._record(ext.requests, method, EXT_PREFIX + sub, headers, body, t)
        if sub == "/event/next" and method == "GET":
            resp = self._event_next(ext, t)
        elif sub in ("/init/error", "/exit/error") and method == "POST":
            resp = self._ext_error(ext, sub, headers, body, t)
        else:
            resp = error(405, "MethodNotAllowed", f"{method} not allowed on {sub}")
        rec["status"] = resp.status
        return resp

    def _register(self, headers, body: bytes, t: float) -> Response:
        name = headers.get("Lambda-Extension-Name")
        with self.cond:
            ext = next((e for e in self.extensions if e.name == name), None)
            rec = self._record(ext.requests if ext else self.unattributed_requests, "POST", EXT_PREFIX + "/register", headers, body, t)

            def fail(status, etype, msg):
                rec["status"] = status
                self.warnings.append(f"register rejected ({etype}): {msg}")
                return error(status, etype, msg)

            if not name:
                return fail(403, "Extension.InvalidExtensionName", "Empty extension name")
            if ext is None:
                known = ", ".join(e.name for e in self.extensions)
                return fail(403, "Extension.InvalidExtensionName",
                            f"Lambda-Extension-Name {name!r} does not match any extension executable file name ({known})")
            if self.init_done or self.function["init_started"] is not None:
                return fail(403, "Extension.RegistrationClosed", "Extension registration closed already")
            if ext.id is not None:
                return fail(403, "Extension.InvalidExtensionState", f"extension {name} already registered")
            try:
                parsed = decode_body(body) if body else {}
                if not isinstance(parsed, dict):
                    raise ValueError("body is not a JSON object")
                if parsed.get("configurationKeys"):
                    raise ValueError("configurationKeys are deprecated; use environment variables instead")
                events = parsed.get("events", [])
                if not isinstance(events, list):
                    raise ValueError("events must be a list")
            except ValueError as e:
                return fail(403, "InvalidRequestFormat", str(e))
            for ev in events:
                if ev not in ("INVOKE", "SHUTDOWN"):
                    return fail(403, "Extension.InvalidEventType", f"{ev}: unknown event type for an external extension")
            ext.id = str(uuid.uuid4())
            ext.events = list(events)
            ext.register = {"headers": headers_dict(headers), "body": decode_body(body), "time": t}
            answer = {"functionName": FUNCTION_NAME, "functionVersion": FUNCTION_VERSION, "handler": self.opts.handler}
            features = [f.strip() for f in (headers.get("Lambda-Extension-Accept-Feature") or "").split(",")]
            if "accountId" in features:
                answer["accountId"] = ACCOUNT_ID
            rec["status"] = 200
            self.say(f"extension {name} registered for {events} (id {ext.id})")
            self.cond.notify_all()
        return Response(200, answer, headers={"Lambda-Extension-Identifier": ext.id})

    def _event_next(self, ext: Extension, t: float) -> Response:
        with self.cond:
            first = not ext.next_calls
            ext.next_calls.append(t)
            if first:
                self.say(f"extension {ext.name} called /event/next (init done for it)")
            inv = ext.delivered_inv
            if inv is not None:
                # /next after an INVOKE = the extension is done with that invocation.
                inv["extensions_next"][ext.name] = t
                ext.delivered_inv = None
            self.cond.notify_all()
            self.cond.wait_for(lambda: ext.pending or self.closing)
            if not ext.pending:
                return error(500, "Emulator.Closing", "emulator is shutting down")
            event = ext.pending.popleft()
            if event["eventType"] == "INVOKE":
                inv = next(i for i in self.invocations if i["request_id"] == event["requestId"])
                inv["extensions_received"][ext.name] = now()
                ext.delivered_inv = inv
            elif event["eventType"] == "SHUTDOWN":
                ext.shutdown_delivered = now()
        return Response(200, event, headers={"Lambda-Extension-Event-Identifier": str(uuid.uuid4())})

    def _ext_error(self, ext: Extension, sub: str, headers, body: bytes, t: float) -> Response:
        error_type = headers.get("Lambda-Extension-Function-Error-Type")
        if not error_type:
            return error(400, "Extension.MissingHeader", "Missing Lambda-Extension-Function-Error-Type header")
        rec = {"time": t, "error_type": error_type, "body": decode_body(body), "headers": headers_dict(headers)}
        with self.cond:
            if sub == "/init/error":
                ext.init_error = rec
                if not self.init_done:
                    # AWS: an extension init error fails the function's init.
                    self.init_failed = self.init_failed or {"time": t, "by": f"extension {ext.name}", "error_type": error_type}
                self.say(f"extension {ext.name} posted init/error {error_type}")
            else:
                ext.exit_error = rec
                self.say(f"extension {ext.name} posted exit/error {error_type}")
            self.cond.notify_all()
        return Response(202, {"status": "OK"})

    # -- Telemetry API -------------------------------------------------------
    def _telemetry_api(self, method: str, path: str, headers, body: bytes, t: float) -> Response:
        ext, err = self._ext_by_identifier(headers, body, method, path, t)
        if err:
            return err
        rec = self._record(ext.requests, method, path, headers, body, t)
        if method != "PUT":
            rec["status"] = 405
            return error(405, "MethodNotAllowed", "use PUT")
        sub_rec = {"time": t, "headers": headers_dict(headers), "body": decode_body(body), "status": None,
                   "error": None, "destination": None, "deliveries": []}
        with self.cond:
            if self.init_done:
                # RAPID turns the subscription API off once init is done (handlers.go:
                # telemetrySubscriptionAPI.TurnOff()). GUESS: status/errorType of that answer.
                sub_rec["status"] = rec["status"] = 403
                sub_rec["error"] = "subscription closed after init"
                ext.telemetry_subscription = ext.telemetry_subscription or sub_rec
                return error(403, "Telemetry.SubscriptionClosed", "Telemetry API subscriptions are only accepted during init")
            try:
                parsed = decode_body(body)
                config = telemetry.validate_subscription(parsed)
            except telemetry.SubscriptionError as e:
                sub_rec["status"] = rec["status"] = 400
                sub_rec["error"] = str(e)
                ext.telemetry_subscription = sub_rec
                self.warnings.append(f"telemetry subscription of {ext.name} rejected: {e}")
                return error(400, "ValidationError", str(e))
            if config["warning"]:
                self.warnings.append(f"{ext.name}: {config['warning']}")
            if ext.subscription is not None:
                ext.subscription.stop()
            sub = telemetry.Subscription(
                ext.name, config, self.thawed, post_timeout=5.0 + self.opts.freeze_seconds,
                on_delivered=self._on_telemetry_delivered,
            )
            sub_rec["deliveries"] = sub.deliveries
            sub_rec["destination"] = f"http://{config['connect_host']}:{config['port']}{config['path']}"
            sub_rec["buffering"] = config["buffering"]
            sub_rec["types"] = config["types"]
            sub_rec["status"] = rec["status"] = 200
            ext.subscription = sub
            ext.telemetry_subscription = sub_rec
            self.say(f"extension {ext.name} subscribed to telemetry {config['types']} -> {sub_rec['destination']}")
        sub.offer(telemetry.make_event("platform.telemetrySubscription",
                                       {"name": ext.name, "state": "Subscribed", "types": config["types"]}))
        return Response(200, "OK")

    # -- Runtime API -----------------------------------------------------------
    def _runtime_api(self, method: str, path: str, headers, body: bytes, t: float) -> Response:
        if path == RUNTIME_PREFIX + "/invocation/next" and method == "GET":
            return self._runtime_next(t)
        if path == RUNTIME_PREFIX + "/init/error" and method == "POST":
            with self.cond:
                self.function["init_error"] = {
                    "time": t, "error_type": headers.get("Lambda-Runtime-Function-Error-Type"), "body": decode_body(body)}
                if not self.init_done:
                    self.init_failed = self.init_failed or {"time": t, "by": "runtime",
                                                            "error_type": headers.get("Lambda-Runtime-Function-Error-Type")}
                self.say(f"runtime posted init/error {headers.get('Lambda-Runtime-Function-Error-Type')}")
                self.cond.notify_all()
            return Response(202, {"status": "OK"})
        m = _INVOCATION_PATH.match(path)
        if m and method == "POST":
            rid, kind = m.group(1), m.group(2)
            with self.cond:
                inv = self.current
                if inv is None or inv["request_id"] != rid or inv["runtime_received"] is None:
                    return error(400, "InvalidRequestID", "Invalid request ID")
                if inv["runtime_response"] is not None or inv["runtime_error"] is not None:
                    return error(400, "InvalidStateTransition", "Invocation already has a response")
                if kind == "response":
                    if len(body) > MAX_RESPONSE_BYTES:
                        inv["runtime_error"] = {"time": t, "error_type": "Function.ResponseSizeTooLarge", "body": None}
                        self.cond.notify_all()
                        return error(413, "RequestEntityTooLarge", f"response of {len(body)} bytes exceeds {MAX_RESPONSE_BYTES}")
                    inv["runtime_response"] = t
                    inv["response_body"] = decode_body(body)
                    inv["response_bytes"] = len(body)
                else:
                    parsed = decode_body(body)
                    # awslambdaric 4.x (aws-lambda-cpp) sends no Lambda-Runtime-Function-Error-Type
                    # header on /error, only the JSON body {errorMessage, errorType, ...}.
                    error_type = headers.get("Lambda-Runtime-Function-Error-Type") or (
                        parsed.get("errorType") if isinstance(parsed, dict) else None)
                    inv["runtime_error"] = {"time": t, "error_type": error_type, "body": parsed}
                    inv["response_bytes"] = len(body)
                self.cond.notify_all()
            return Response(202, {"status": "OK"})
        return error(404, "NotFound", f"no route for {method} {path}")

    def _runtime_next(self, t: float) -> Response:
        with self.cond:
            if self.function["first_next"] is None:
                self.function["first_next"] = t
                self.say("runtime called /invocation/next (function init done)")
            inv = self.current
            if inv is not None and inv["runtime_next"] is None and (
                    inv["runtime_response"] is not None or inv["runtime_error"] is not None):
                inv["runtime_next"] = t
                self._emit_runtime_done(inv, "success" if inv["runtime_error"] is None else "error")
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.runtime_pending is not None or self.closing)
            if self.runtime_pending is None:
                return error(500, "Emulator.Closing", "emulator is shutting down")
            inv = self.runtime_pending
            self.runtime_pending = None
            inv["runtime_received"] = now()
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv["request_id"],
            "Lambda-Runtime-Deadline-Ms": str(inv["deadline_ms"]),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": inv["trace_id"],
        }
        return Response(200, inv["_event_bytes"], headers=headers, content_type="application/json")

    def _emit_runtime_done(self, inv: dict, status: str, error_type: str | None = None) -> None:
        """platform.runtimeDone (called with self.cond held)."""
        if inv["runtime_done_emitted"] is not None:
            return
        t = now()
        inv["runtime_done_emitted"] = t
        inv["runtime_done_status"] = status
        released = inv["start"]
        responded = inv["runtime_response"] or (inv["runtime_error"] or {}).get("time") or t
        record = {
            "requestId": inv["request_id"],
            "status": status,
            "metrics": {
                "durationMs": ms_between(released, t),
                "producedBytes": inv.get("response_bytes") or 0,
            },
            "tracing": inv["_tracing"],
            "spans": [
                {"name": "responseLatency", "start": _iso(released), "durationMs": ms_between(released, responded)},
                {"name": "responseDuration", "start": _iso(responded), "durationMs": 0.0},
                {"name": "runtimeOverhead", "start": _iso(responded), "durationMs": ms_between(responded, t)},
            ],
        }
        if status != "success":
            record["errorType"] = error_type or (inv["runtime_error"] or {}).get("error_type") or "Runtime.Unknown"
        inv["runtime_done_subscribers"] = self._emit(
            telemetry.make_event("platform.runtimeDone", record, t), flush_within=telemetry.RUNTIME_DONE_DELAY_S)

    # ------------------------------------------------------------- lifecycle
    def run(self) -> None:
        self._server_thread.start()
        self.say(f"sandbox API listening on 127.0.0.1:{self.port}")
        try:
            if self._init():
                reason = "spindown"
                for i in range(self.opts.invocations):
                    outcome = self._invoke(i)
                    if outcome != "ok":
                        reason = outcome  # "timeout" | "failure": AWS resets the environment
                        break
                    self._freeze(self.invocations[-1])
                self._shutdown(reason)
            elif not self.init_timeout:
                self._shutdown("failure")
        except KeyboardInterrupt:
            self.error("interrupted")
        finally:
            self._cleanup()

    def _all_exts_ready(self) -> bool:
        return all(e.next_calls for e in self.extensions)

    def _init_problem(self) -> str | None:
        if self.init_failed:
            return f"init failed: {self.init_failed['by']} ({self.init_failed['error_type']})"
        for e in self.extensions:
            if e.launch_error:
                return f"extension {e.name} failed to launch: {e.launch_error}"
            if e.proc and not e.proc.alive and not e.next_calls:
                return f"extension {e.name} exited during init (code {e.proc.exit_code}) - Extension.Crash"
        if self.runtime and not self.runtime.alive and self.function["first_next"] is None:
            return f"runtime exited during init (code {self.runtime.exit_code}) - Runtime.ExitError"
        return None

    def _init(self) -> bool:
        env = self.base_env()
        self.env = env
        init_start = time.monotonic()
        deadline = init_start + self.opts.init_timeout
        self.init_metrics["start"] = now()
        for ext in self.extensions:
            try:
                ext.proc = ManagedProcess(f"extension {ext.name}", [ext.path], env, None, self._on_line, self._on_exit)
                self.say(f"started extension {ext.name} (pid {ext.proc.pid})")
            except OSError as e:
                ext.launch_error = str(e)
                self.init_failed = {"time": now(), "by": f"extension {ext.name}", "error_type": "Extension.LaunchError"}
        # Extension init: every launched extension registers and calls /event/next.
        # The docs (and lambda-lifecycle.md) say the function's init starts once every
        # extension has called /next. (RAPID, the open-source core, actually starts the
        # runtime once all extensions have *registered* and only gates the first invoke on
        # their /next; the documented, stricter order is the one emulated here.)
        with self.cond:
            ok = self.cond.wait_for(lambda: self._init_problem() or self._all_exts_ready(),
                                    timeout=max(0.0, deadline - time.monotonic()))
            problem = self._init_problem()
        if problem:
            self.error(problem)
            return False
        if not ok:
            return self._init_timed_out("extensions did not all reach /event/next")

        # Runtime init.
        self.function["init_started"] = now()
        argv = [self.opts.python, "-m", "awslambdaric", self.opts.handler]
        self._emit(telemetry.make_event("platform.initStart", {
            "initializationType": "on-demand",
            "phase": "init",
            "runtimeVersion": "python:3.11.local",
            "runtimeVersionArn": f"arn:aws:lambda:{REGION}::runtime:local",
            "functionName": FUNCTION_NAME,
            "functionVersion": FUNCTION_VERSION,
            "instanceId": self.instance_id,
            "instanceMaxMemory": MEMORY_MB,
        }))
        try:
            self.runtime = ManagedProcess("runtime", argv, env, self.opts.function_dir, self._on_line, self._on_exit)
        except OSError as e:
            self.init_failed = {"time": now(), "by": "runtime", "error_type": "Runtime.InvalidEntrypoint"}
            self.error(f"could not start runtime {argv}: {e}")
            return False
        self.function["pid"] = self.runtime.pid
        self.say(f"started runtime: {' '.join(argv)} (pid {self.runtime.pid}, cwd {self.opts.function_dir})")
        with self.cond:
            ok = self.cond.wait_for(lambda: self._init_problem() or self.function["first_next"] is not None,
                                    timeout=max(0.0, deadline - time.monotonic()))
            problem = self._init_problem()
        if problem:
            self.error(problem)
            self._emit_init_done("error")
            return False
        if not ok:
            return self._init_timed_out("runtime did not reach /invocation/next")
        with self.cond:
            self.init_done = True  # closes registration and telemetry subscriptions
        self.init_metrics["done"] = now()
        self._emit_init_done("success")
        return True

    def _emit_init_done(self, status: str) -> None:
        t = now()
        base = {"initializationType": "on-demand", "phase": "init", "status": status}
        self._emit(telemetry.make_event("platform.initRuntimeDone", dict(base), t))
        rep = dict(base, metrics={"durationMs": ms_between(self.init_metrics.get("start"), t)})
        self._emit(telemetry.make_event("platform.initReport", rep, t))

    def _init_timed_out(self, what: str) -> bool:
        self.init_timeout = True
        self.error(f"init timeout after {self.opts.init_timeout}s: {what}; SIGKILL everything")
        for p in self._procs():
            p.signal_group(signal.SIGKILL)
        return False

    def _new_invocation(self, index: int) -> dict:
        rid = str(uuid.uuid4())
        trace_id = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0;Lineage=1:{uuid.uuid4().hex[:8]}:0"
        start = now()
        inv = {
            "index": index,
            "request_id": rid,
            "trace_id": trace_id,
            "start": start,
            "deadline_ms": unix_ms() + int(self.opts.invoke_timeout * 1000),
            "runtime_received": None,
            "runtime_response": None,
            "runtime_error": None,
            "runtime_next": None,
            "runtime_done_emitted": None,
            "runtime_done_sent": None,
            "runtime_done_status": None,
            "runtime_done_subscribers": 0,
            "extensions_received": {},
            "extensions_next": {},
            "extensions_post_runtime_ms": {},
            "complete": None,
            "duration_ms": None,
            "timeout": False,
            "failure": None,
            "freeze_start": None,
            "freeze_end": None,
            "freeze_states": None,
            "response_body": None,
            "response_bytes": None,
            "_event_bytes": self.opts.event.encode(),
            "_tracing": {"spanId": telemetry.new_span_id(), "type": "X-Amzn-Trace-Id", "value": trace_id},
        }
        return inv

    def _invoke(self, index: int) -> str:
        dead = [e.name for e in self.extensions if e.id is not None and not e.alive]
        if dead or not self.runtime.alive:
            # A process died between invocations: AWS resets the environment (Extension.Crash /
            # Runtime.ExitError) instead of invoking. We stop and shut down with reason failure.
            self.error(f"before invoke #{index + 1}: "
                       + (f"extension(s) {dead} exited" if dead else "runtime exited") + "; shutting down")
            return "failure"
        inv = self._new_invocation(index)
        invoke_event = {
            "eventType": "INVOKE",
            "deadlineMs": inv["deadline_ms"],
            "requestId": inv["request_id"],
            "invokedFunctionArn": FUNCTION_ARN,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": inv["trace_id"]},
        }
        deadline = time.monotonic() + self.opts.invoke_timeout
        self.say(f"invoke #{index + 1} request {inv['request_id']}")
        self._emit(telemetry.make_event("platform.start", {
            "requestId": inv["request_id"], "version": FUNCTION_VERSION, "tracing": inv["_tracing"]}))
        with self.cond:
            self.invocations.append(inv)
            self.current = inv
            # RAPID releases the extensions first, then the runtime (handlers.go doInvoke).
            waiting_for = [e for e in self.extensions if "INVOKE" in e.events and e.alive]
            for ext in waiting_for:
                ext.pending.append(dict(invoke_event))
            self.runtime_pending = inv
            self.cond.notify_all()

            def done() -> bool:
                runtime_done = inv["runtime_next"] is not None
                exts_done = all(e.name in inv["extensions_next"] for e in waiting_for if e.alive)
                return runtime_done and exts_done

            def failed() -> str | None:
                if not self.runtime.alive:
                    return "Runtime.ExitError"
                for e in waiting_for:
                    if not e.alive and e.name not in inv["extensions_next"]:
                        return f"Extension.Crash ({e.name})"
                return None

            self.cond.wait_for(lambda: done() or failed(), timeout=max(0.0, deadline - time.monotonic()))
            fail = failed() if not done() else None
            if done():
                inv["complete"] = now()
            elif fail:
                inv["failure"] = fail
            else:
                inv["timeout"] = True
            # Post-runtime time of each extension (billed as PostRuntimeExtensionsDuration).
            ref = inv["runtime_next"] or inv["runtime_response"]
            for name, t in inv["extensions_next"].items():
                inv["extensions_post_runtime_ms"][name] = max(0.0, ms_between(ref, t)) if ref is not None else None
            if inv["timeout"] or inv["failure"]:
                # AWS emits runtimeDone with status timeout/error/failure on reset (handlers.go handleReset).
                status = "timeout" if inv["timeout"] else "error"
                self._emit_runtime_done(inv, status, None if inv["timeout"] else fail.split(" ")[0])
            self.current = None if (inv["timeout"] or inv["failure"]) else inv
        end = inv["complete"] or now()
        inv["duration_ms"] = ms_between(inv["start"], end)
        status = "timeout" if inv["timeout"] else ("error" if (inv["failure"] or inv["runtime_error"]) else "success")
        metrics = {
            "durationMs": inv["duration_ms"],
            "billedDurationMs": int(math.ceil(inv["duration_ms"] or 0)),
            "memorySizeMB": MEMORY_MB,
            "maxMemoryUsedMB": self.runtime.max_rss_mb() or 0,
        }
        if index == 0 and self.init_metrics.get("done") is not None:
            metrics["initDurationMs"] = ms_between(self.init_metrics["start"], self.init_metrics["done"])
        report = {"requestId": inv["request_id"], "status": status, "metrics": metrics, "tracing": inv["_tracing"]}
        if inv["extensions_next"] and inv["runtime_next"] is not None:
            last = max(inv["extensions_next"].values())
            report["spans"] = [{"name": "extensionOverhead", "start": _iso(inv["runtime_next"]),
                                "durationMs": max(0.0, ms_between(inv["runtime_next"], last))}]
        self._emit(telemetry.make_event("platform.report", report))
        if inv["timeout"]:
            self.error(f"invoke #{index + 1} timed out after {self.opts.invoke_timeout}s "
                       f"(runtime_next={inv['runtime_next']}, extensions_next={inv['extensions_next']})")
            return "timeout"
        if inv["failure"]:
            self.error(f"invoke #{index + 1} failed: {inv['failure']}")
            return "failure"
        post = ", ".join(f"{k} +{v:.1f} ms" for k, v in inv["extensions_post_runtime_ms"].items() if v is not None)
        self.say(f"invoke #{index + 1} complete in {inv['duration_ms']:.1f} ms"
                 f" (response {ms_between(inv['start'], inv['runtime_response'] or inv['runtime_next'])} ms"
                 + (f"; post-runtime {post}" if post else "") + ")")
        return "ok"

    def _freeze(self, inv: dict) -> None:
        procs = [p for p in self._procs() if p.alive]
        self.thawed.clear()
        inv["freeze_start"] = now()
        for p in procs:
            p.signal_group(signal.SIGSTOP)
        sample = min(FREEZE_SAMPLE_DELAY_S, self.opts.freeze_seconds / 2)
        time.sleep(sample)
        inv["freeze_states"] = {p.label: p.group_states() for p in procs}
        not_stopped = [
            f"{label} pid {pid} state {st['state']} threads {st['threads']}"
            for label, group in inv["freeze_states"].items() for pid, st in group.items()
            if st["state"] != "T" or any(s != "T" for s in st["threads"])
        ]
        if not_stopped:
            self.warnings.append(f"freeze after invoke #{inv['index'] + 1}: not all threads stopped: {not_stopped}")
        time.sleep(max(0.0, self.opts.freeze_seconds - sample))
        for p in procs:
            p.signal_group(signal.SIGCONT)
        inv["freeze_end"] = now()
        self.thawed.set()
        self.say(f"froze {len(procs)} process group(s) for {inv['freeze_end'] - inv['freeze_start']:.3f}s")

    def _shutdown(self, reason: str) -> None:
        # Make sure nothing is left stopped (e.g. a failure during a freeze).
        for p in self._procs():
            if p.alive:
                p.signal_group(signal.SIGCONT)
        self.thawed.set()
        start_mono = time.monotonic()
        start_ms = unix_ms()
        sd = {"reason": reason, "start": now(), "runtime_sigterm": None, "runtime_sigkill": None,
              "runtime_exit": None, "sent": None, "deadline_ms": None, "deadline": None, "complete": None}
        self.shutdown = sd
        total_s = self.opts.shutdown_ms / 1000.0
        registered = [e for e in self.extensions if e.id is not None]
        rt = self.runtime
        if rt is not None and rt.alive:
            if not registered:
                # RAPID: "We do not spend any compute time on runtime graceful shutdown if
                # there are no agents" - the runtime is SIGKILLed straight away.
                rt.signal_group(signal.SIGKILL)
                sd["runtime_sigkill"] = now()
            else:
                rt.signal_group(signal.SIGTERM)
                sd["runtime_sigterm"] = now()
                self.say(f"shutdown ({reason}): SIGTERM runtime, grace {RUNTIME_SHUTDOWN_GRACE_S * 1000:.0f} ms")
                grace = min(RUNTIME_SHUTDOWN_GRACE_S, total_s)
                if not rt.wait(grace):
                    rt.signal_group(signal.SIGKILL)
                    sd["runtime_sigkill"] = now()
                    self.say("runtime still running after grace period: SIGKILL")
            rt.wait(1.0)
        if rt is not None:
            rt.signal_group(signal.SIGKILL)  # leftovers in the runtime's process group
            sd["runtime_exit"] = rt.exit_time

        # Extensions: SHUTDOWN with the deadline at the end of the whole shutdown phase
        # (= now + shutdown-ms - what the runtime used).
        deadline_mono = start_mono + total_s
        sd["deadline_ms"] = start_ms + self.opts.shutdown_ms
        sd["deadline"] = round(sd["start"] + total_s, 6)
        event = {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": sd["deadline_ms"]}
        with self.cond:
            waiting = []
            for ext in self.extensions:
                if not ext.alive:
                    continue
                if ext.id is not None and "SHUTDOWN" in ext.events:
                    ext.pending.append(dict(event))
                    waiting.append(ext)
                else:
                    # RAPID: extensions not subscribed to SHUTDOWN are SIGKILLed at once.
                    ext.proc.signal_group(signal.SIGKILL)
                    ext.killed_unsubscribed = True
            sd["sent"] = now()
            self.cond.notify_all()
            if waiting:
                self.say(f"SHUTDOWN ({reason}) sent to {', '.join(e.name for e in waiting)}, "
                         f"deadline in {(deadline_mono - time.monotonic()) * 1000:.0f} ms")
            self.cond.wait_for(lambda: not any(e.alive for e in waiting),
                               timeout=max(0.0, deadline_mono - time.monotonic()))
            late = [e for e in waiting if e.alive]
        for ext in late:
            ext.proc.signal_group(signal.SIGKILL)
            ext.killed_at_deadline = True
            self.error(f"extension {ext.name} still running at the shutdown deadline: SIGKILL")
        for ext in self.extensions:
            if ext.proc:
                ext.proc.wait(2.0)
                ext.proc.signal_group(signal.SIGKILL)  # leftovers in its group
        sd["complete"] = now()
        for ext in waiting:
            if not ext.killed_at_deadline:
                self.say(f"extension {ext.name} exited with code {ext.proc.exit_code} "
                         f"{ms_between(sd['sent'], ext.proc.exit_time)} ms after SHUTDOWN")

    def _cleanup(self) -> None:
        for p in self._procs():
            if p.alive:
                p.signal_group(signal.SIGCONT)
                p.signal_group(signal.SIGKILL)
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        for e in self.extensions:
            if e.subscription:
                e.subscription.stop()
        for p in self._procs():
            p.wait(2.0)
            p.join_output(1.0)
        self.server.shutdown()
        self.server.server_close()
        if self.runtime:
            self.function["exit_code"] = self.runtime.exit_code
            self.function["exit_time"] = self.runtime.exit_time
            self.function["output"] = self.runtime.output

    # ----------------------------------------------------------------- report
    def report(self) -> dict:
        sent = self.shutdown["sent"] if self.shutdown else None
        invs = [{k: v for k, v in inv.items() if not k.startswith("_")} for inv in self.invocations]
        return {
            "api_port": self.port,
            "options": {
                "extensions": [e.path for e in self.extensions],
                "function_dir": self.opts.function_dir,
                "handler": self.opts.handler,
                "python": self.opts.python,
                "invocations": self.opts.invocations,
                "event": self.opts.event,
                "freeze_seconds": self.opts.freeze_seconds,
                "invoke_timeout": self.opts.invoke_timeout,
                "init_timeout": self.opts.init_timeout,
                "shutdown_ms": self.opts.shutdown_ms,
                "env": self.opts.env,
            },
            "extensions": [e.report(sent) for e in self.extensions],
            "function": self.function,
            "invocations": invs,
            "shutdown": self.shutdown,
            "init_timeout": self.init_timeout,
            "init_failed": self.init_failed,
            "errors": self.errors,
            "warnings": self.warnings,
            "unattributed_requests": self.unattributed_requests,
            "log": self.log,
        }


def _iso(t: float | None) -> str | None:
    from .util import iso_at
    return None if t is None else iso_at(t)
