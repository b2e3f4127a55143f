"""Extensions API (register, event/next, init/error, exit/error) and Telemetry API subscriptions.

A mixin of Emulator: the state it reads (self.extensions, self.cond, self.model, ...) lives
there. What each execution model refuses is in modes.py.
"""

from __future__ import annotations

import os
import uuid
from collections import deque

from . import modes, telemetry
from .api import Response, error
from .processes import ManagedProcess
from .util import ACCOUNT_ID, FUNCTION_NAME, FUNCTION_VERSION, decode_body, headers_dict, ms_between, now

EXT_PREFIX = "/2020-01-01/extension"

# --refuse-telemetry: each answer, as (status, errorType, errorMessage). 202 is what the
# runtime interface emulator answers (rapi/handler/runtimelogs_stub.go): accepted, not supported.
TELEMETRY_REFUSALS = {
    "400": (400, "ValidationError", "subscription refused by the emulator (--refuse-telemetry)"),
    "403": (403, "AccessDeniedException", "subscription refused by the emulator (--refuse-telemetry 403)"),
    "202": (202, "Telemetry.NotSupported", "Telemetry API is not supported"),
}


class Extension:
    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(path)
        self.proc: ManagedProcess | None = None
        self.id: str | None = None
        self.events: list[str] = []
        self.register: dict | None = None
        self.registrations: list[dict] = []  # every attempt, refused ones included
        self.next_calls: list[float] = []
        self.init_error: dict | None = None
        self.exit_error: dict | None = None
        self.telemetry_subscription: dict | None = None
        self.telemetry_subscriptions: list[dict] = []  # every attempt
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
            "uid": p.uid if p else None,
            "gid": p.gid if p else None,
            "identifier": self.id,
            "events": self.events,
            "register": self.register,
            "registrations": self.registrations,
            "next_calls": self.next_calls,
            "init_error": self.init_error,
            "exit_error": self.exit_error,
            "telemetry_subscription": self.telemetry_subscription,
            "telemetry_subscriptions": self.telemetry_subscriptions,
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


class ExtensionsAPI:
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
            attempt = {"time": t, "extension": name, "events": None, "status": None, "error_type": None, "error_message": None}
            self.registrations.append(attempt)
            if ext:
                ext.registrations.append(attempt)

            def fail(status, etype, msg):
                rec["status"] = attempt["status"] = status
                attempt["error_type"], attempt["error_message"] = etype, msg
                self.warnings.append(f"register rejected ({etype}): {msg}")
                self.say(f"extension {name} register {attempt['events']} refused: {status} {etype}")
                return error(status, etype, msg)

            parsed = decode_body(body) if body else {}
            attempt["events"] = parsed.get("events", []) if isinstance(parsed, dict) else None
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
                if not isinstance(parsed, dict):
                    raise ValueError("body is not a JSON object")
                if parsed.get("configurationKeys"):
                    # RIE rejects them (RIE-LMI agentregister.go: 403 InvalidRequestFormat).
                    raise ValueError("configurationKeys are deprecated; use environment variables instead")
                events = parsed.get("events", [])
                if not isinstance(events, list):
                    raise ValueError("events must be a list")
            except ValueError as e:
                return fail(403, "InvalidRequestFormat", str(e))
            for ev in events:
                if ev not in ("INVOKE", "SHUTDOWN"):
                    return fail(403, modes.INVALID_EVENT_TYPE, f"{ev}: unknown event type for an external extension")
            if "INVOKE" in events and (not self.model.invoke_registration or self.opts.refuse_invoke_registration):
                # Lambda Managed Instances: external extensions may register only SHUTDOWN
                # (RIE-LMI core/externalagent.go ValidateExternalAgentEvent); the fault
                # injection --refuse-invoke-registration answers the same in any mode.
                return fail(403, modes.INVALID_EVENT_TYPE, modes.INVOKE_REFUSED_MESSAGE)
            ext.id = str(uuid.uuid4())
            ext.events = list(events)
            ext.register = {"headers": headers_dict(headers), "body": decode_body(body), "time": t}
            answer = {"functionName": FUNCTION_NAME, "functionVersion": FUNCTION_VERSION, "handler": self.opts.handler}
            features = [f.strip() for f in (headers.get("Lambda-Extension-Accept-Feature") or "").split(",")]
            if "accountId" in features:
                answer["accountId"] = ACCOUNT_ID
            rec["status"] = attempt["status"] = 200
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
                inv = self.by_request_id[event["requestId"]]
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
        parsed = decode_body(body)
        sub_rec = {"time": t, "headers": headers_dict(headers), "body": parsed, "status": None,
                   "error": None, "destination": None, "deliveries": []}
        attempt = {"time": t, "extension": ext.name,
                   "schema_version": parsed.get("schemaVersion") if isinstance(parsed, dict) else None,
                   "types": parsed.get("types") if isinstance(parsed, dict) else None,
                   "status": None, "error_type": None, "error": None}

        def refuse(status, error_type, message):
            sub_rec["status"] = rec["status"] = attempt["status"] = status
            sub_rec["error"] = attempt["error"] = message
            attempt["error_type"] = error_type
            self.say(f"extension {ext.name} telemetry subscription ({attempt['schema_version']}) refused: {status} {error_type}")
            return error(status, error_type, message)

        with self.cond:
            self.telemetry_subscriptions.append(attempt)
            ext.telemetry_subscriptions.append(attempt)
            if self.init_done:
                # RAPID turns the subscription API off once init is done (handlers.go:
                # telemetrySubscriptionAPI.TurnOff()). GUESS: status/errorType of that answer.
                ext.telemetry_subscription = ext.telemetry_subscription or sub_rec
                return refuse(403, "Telemetry.SubscriptionClosed", "Telemetry API subscriptions are only accepted during init")
            if self.opts.refuse_telemetry:
                ext.telemetry_subscription = sub_rec
                self.warnings.append(f"telemetry subscription of {ext.name} refused (--refuse-telemetry {self.opts.refuse_telemetry})")
                return refuse(*TELEMETRY_REFUSALS[self.opts.refuse_telemetry])
            try:
                config = telemetry.validate_subscription(parsed, self.model.schema_versions)
            except telemetry.SubscriptionError as e:
                ext.telemetry_subscription = sub_rec
                self.warnings.append(f"telemetry subscription of {ext.name} rejected: {e}")
                return refuse(400, "ValidationError", str(e))
            if config["warning"]:
                self.warnings.append(f"{ext.name}: {config['warning']}")
            if ext.subscription is not None:
                ext.subscription.stop()
            # A POST in flight when the environment freezes waits for the thaw: the longest
            # freeze of the run plus 5 s.
            longest_freeze = max(self.opts.freeze_seconds, self.opts.pc_idle_seconds, self.opts.snapshot_seconds)
            sub = telemetry.Subscription(
                ext.name, config, self.thawed, post_timeout=5.0 + longest_freeze,
                on_delivered=self._on_telemetry_delivered,
            )
            sub_rec["deliveries"] = sub.deliveries
            sub_rec["destination"] = f"http://{config['connect_host']}:{config['port']}{config['path']}"
            sub_rec["buffering"] = config["buffering"]
            sub_rec["types"] = config["types"]
            sub_rec["status"] = rec["status"] = attempt["status"] = 200
            ext.subscription = sub
            ext.telemetry_subscription = sub_rec
            self.say(f"extension {ext.name} subscribed to telemetry {config['types']} ({config['schemaVersion']}) "
                     f"-> {sub_rec['destination']}")
        sub.offer(telemetry.make_event("platform.telemetrySubscription",
                                       {"name": ext.name, "state": "Subscribed", "types": config["types"]}))
        return Response(200, "OK")
