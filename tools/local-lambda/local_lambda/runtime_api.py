"""Runtime API: invocation next/response/error, init/error, and SnapStart's restore/next and
restore/error; which runtime worker process made each call.

A mixin of Emulator. Several worker processes may wait on /invocation/next at once (Lambda
Managed Instances: awslambdaric forks AWS_LAMBDA_MAX_CONCURRENCY workers); each takes the
oldest pending invocation. A worker is told apart by the pid holding the client end of its
connection (processes.pid_of_tcp_client).
"""

from __future__ import annotations

import re

from . import modes, telemetry
from .api import Response, error
from .processes import pid_of_tcp_client
from .util import FUNCTION_ARN, decode_body, iso_at, ms_between, now

RUNTIME_PREFIX = "/2018-06-01/runtime"

# Limits on the Runtime API response payload (synchronous invocations: 6 MB).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024

_INVOCATION_PATH = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")


def responded(inv: dict) -> bool:
    return inv["runtime_response"] is not None or inv["runtime_error"] is not None


class RuntimeAPI:
    def _runtime_api(self, method: str, path: str, headers, body: bytes, t: float, client) -> Response:
        if path == RUNTIME_PREFIX + "/invocation/next" and method == "GET":
            return self._runtime_next(t, client)
        if path == RUNTIME_PREFIX + "/init/error" and method == "POST":
            return self._runtime_init_error(headers, body, t)
        if path == RUNTIME_PREFIX + "/restore/next" and method == "GET":
            return self._restore_next(t)
        if path == RUNTIME_PREFIX + "/restore/error" and method == "POST":
            return self._restore_error(headers, body, t)
        m = _INVOCATION_PATH.match(path)
        if m and method == "POST":
            return self._invocation_result(m.group(1), m.group(2), headers, body, t)
        return error(404, "NotFound", f"no route for {method} {path}")

    def _runtime_init_error(self, headers, body: bytes, t: float) -> Response:
        error_type = headers.get("Lambda-Runtime-Function-Error-Type")
        with self.cond:
            if self.function["init_error"] is not None:
                # One init error per environment; awslambdaric's LMI workers expect the
                # others to be refused with 403 (LambdaMultiConcurrentRuntimeClient.handle_init_error).
                return error(403, "InvalidStateTransition", "init error already reported")
            self.function["init_error"] = {"time": t, "error_type": error_type, "body": decode_body(body)}
            if not self.init_done:
                self.init_failed = self.init_failed or {"time": t, "by": "runtime", "error_type": error_type}
            self.say(f"runtime posted init/error {error_type}")
            self.cond.notify_all()
        return Response(202, {"status": "OK"})

    # -- which worker ----------------------------------------------------------
    def _worker_pid(self, client) -> int | None:
        if not client or self.runtime is None:
            return None
        known = [w["pid"] for w in self.workers if w["pid"] is not None]
        pid = pid_of_tcp_client(client[1], self.port, known)
        return pid if pid is not None else pid_of_tcp_client(client[1], self.port, self.runtime.group_pids())

    def _worker(self, pid: int | None, t: float) -> dict:
        """The worker record for pid (called with self.cond held)."""
        if pid is None:
            # The caller is gone already (a worker killed at shutdown right after its call),
            # or /proc did not tell: a record that is not reported.
            if not self.shutdown and not self.closing:
                self.warnings.append("a Runtime API call from a process that could not be identified")
            return {"worker_id": None, "pid": None, "first_next": t, "invocations": [], "_last_inv": None}
        for w in self.workers:
            if w["pid"] == pid:
                return w
        w = {"worker_id": len(self.workers), "pid": pid, "first_next": t, "invocations": [], "_last_inv": None}
        self.workers.append(w)
        if len(self.workers) > 1 or self.model.concurrent:
            self.say(f"runtime worker {w['worker_id']} (pid {pid}) called /invocation/next")
        return w

    # -- invocations -------------------------------------------------------------
    def _runtime_next(self, t: float, client) -> Response:
        pid = self._worker_pid(client)
        with self.cond:
            worker = self._worker(pid, t)
            restore = self.restore
            if restore is not None and restore["runtime_released"] is not None and restore["runtime_ready"] is None:
                restore["runtime_ready"] = t  # the runtime's after-restore hooks are done
                self.say("runtime called /invocation/next (restore done)")
            if self.function["first_next"] is None:
                self.function["first_next"] = t
                if restore is None:
                    self.say("runtime called /invocation/next (function init done)")
            prev = worker["_last_inv"]
            if prev is None and pid is None:
                prev = next((i for i in self.invocations if i["runtime_received"] is not None
                             and i["runtime_next"] is None and responded(i) and not i["closed"]), None)
            if prev is not None and prev["runtime_next"] is None and responded(prev) and not prev["closed"]:
                prev["runtime_next"] = t
                if self.model.runtime_done:
                    self._emit_runtime_done(prev, "success" if prev["runtime_error"] is None else "error")
            worker["_last_inv"] = None
            self.runtime_waiters += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.pending_runtime or self.closing)
            self.runtime_waiters -= 1
            if not self.pending_runtime:
                return error(500, "Emulator.Closing", "emulator is shutting down")
            inv = self.pending_runtime.popleft()
            inv["runtime_received"] = now()
            inv["worker_id"], inv["worker_pid"] = worker["worker_id"], pid
            worker["_last_inv"] = inv
            worker["invocations"].append(inv["index"])
        headers = {
            "Lambda-Runtime-Aws-Request-Id": inv["request_id"],
            "Lambda-Runtime-Deadline-Ms": str(inv["deadline_ms"]),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": inv["trace_id"],
        }
        return Response(200, inv["_event_bytes"], headers=headers, content_type="application/json")

    def _invocation_result(self, rid: str, kind: str, headers, body: bytes, t: float) -> Response:
        with self.cond:
            inv = self.by_request_id.get(rid)
            if inv is None or inv["runtime_received"] is None or inv["closed"]:
                return error(400, "InvalidRequestID", "Invalid request ID")
            if responded(inv):
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

    def _emit_runtime_done(self, inv: dict, status: str, error_type: str | None = None) -> None:
        """platform.runtimeDone (called with self.cond held)."""
        if inv["runtime_done_emitted"] is not None:
            return
        t = now()
        inv["runtime_done_emitted"] = t
        inv["runtime_done_status"] = status
        released = inv["start"]
        responded_at = inv["runtime_response"] or (inv["runtime_error"] or {}).get("time") or t
        record = {
            "requestId": inv["request_id"],
            "status": status,
            "metrics": {
                "durationMs": ms_between(released, t),
                "producedBytes": inv.get("response_bytes") or 0,
            },
            "tracing": inv["_tracing"],
            "spans": [
                {"name": "responseLatency", "start": iso_at(released), "durationMs": ms_between(released, responded_at)},
                {"name": "responseDuration", "start": iso_at(responded_at), "durationMs": 0.0},
                {"name": "runtimeOverhead", "start": iso_at(responded_at), "durationMs": ms_between(responded_at, t)},
            ],
        }
        if status != "success":
            record["errorType"] = error_type or (inv["runtime_error"] or {}).get("error_type") or "Runtime.Unknown"
        inv["runtime_done_subscribers"] = self._emit(
            telemetry.make_event("platform.runtimeDone", record, t), flush_within=telemetry.RUNTIME_DONE_DELAY_S)

    # -- SnapStart restore -----------------------------------------------------------
    def _restore_next(self, t: float) -> Response:
        """GET /runtime/restore/next: the runtime is done with init (and its before-snapshot
        hooks); the call blocks until the restore, then answers 200 with no body
        (RIE-STD rapi/handler/restorenext.go, rendering.go RestoreRenderer)."""
        with self.cond:
            if self.model.name != modes.SNAP_START or self.function["restore_next"] is not None:
                return error(403, "InvalidStateTransition", "restore/next is only valid once, during a SnapStart init")
            self.function["restore_next"] = t
            self.say("runtime called /restore/next (function init done, ready for the snapshot)")
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.restore_released or self.closing)
            if not self.restore_released:
                return error(500, "Emulator.Closing", "emulator is shutting down")
        return Response(200, b"")

    def _restore_error(self, headers, body: bytes, t: float) -> Response:
        error_type = headers.get("Lambda-Runtime-Function-Error-Type") or "Runtime.AfterRestoreError"
        with self.cond:
            self.function["restore_error"] = {"time": t, "error_type": error_type, "body": decode_body(body)}
            self.say(f"runtime posted restore/error {error_type}")
            self.cond.notify_all()
        return Response(202, {"status": "OK"})
