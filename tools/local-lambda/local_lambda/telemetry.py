"""Telemetry API: subscription validation, event records, buffered HTTP delivery.

Schema follows the AWS "Lambda Telemetry API Event schema reference"
(https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html):
every event is {"time": ISO 8601, "type": "platform.xxx" | "function" | "extension", "record": ...}
and Lambda POSTs JSON arrays of such events to the subscriber's HTTP listener.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
import uuid
from typing import Callable

from .util import FUNCTION_NAME, FUNCTION_VERSION, REGION


def runtime_fields(instance_id, memory_mb):
    """What platform.initStart and platform.restoreStart say about the runtime and the function."""
    return {
        "runtimeVersion": "python:3.11.local",
        "runtimeVersionArn": f"arn:aws:lambda:{REGION}::runtime:local",
        "functionName": FUNCTION_NAME,
        "functionVersion": FUNCTION_VERSION,
        "instanceId": instance_id,
        "instanceMaxMemory": memory_mb,
    }

from .util import iso_at, now

# Schema versions of the subscription request body documented by AWS
# (telemetry-api-reference.html): 2022-07-01, 2022-12-13, and 2025-01-29, the only one
# Lambda Managed Instances accepts (see modes.py).
VALID_SCHEMA_VERSIONS = ("2022-07-01", "2022-12-13", "2025-01-29")
VALID_TYPES = ("platform", "function", "extension")

# (min, max, default) per AWS "Subscribing to the Telemetry API" (buffering configuration).
BUFFERING_LIMITS = {
    "maxItems": (1000, 10000, 1000),
    "maxBytes": (262144, 1048576, 262144),
    "timeoutMs": (25, 30000, 1000),
}

RESERVED_PORT = 9001  # documented as reserved; Lambda rejects destinations on it

# platform.runtimeDone is emitted when the runtime calls /invocation/next after posting its
# response (that is what RAPID does: the event is sent after AwaitRuntimeReady, see
# aws-lambda-runtime-interface-emulator lambda/rapid/handlers.go), and AWS documents that it
# reaches subscribers "after the runtime's /next", ~25 ms or more later (25 ms is also the
# smallest buffering.timeoutMs). We model that latency with this fixed delay instead of the
# subscriber's timeoutMs, so extensions that wait for runtimeDone see a realistic, stable gap.
RUNTIME_DONE_DELAY_S = 0.025

# Retries when the subscriber's listener refuses/resets the connection. AWS does not document
# its retry policy for the HTTP destination; a couple of quick retries is our guess.
DELIVERY_ATTEMPTS = 3
DELIVERY_RETRY_S = 0.05

SANDBOX_HOST = "sandbox.localdomain"


class SubscriptionError(ValueError):
    pass


def _int_in_range(buffering: dict, key: str) -> int:
    lo, hi, default = BUFFERING_LIMITS[key]
    if key not in buffering:
        return default
    value = buffering[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise SubscriptionError(f"buffering.{key} must be an integer")
    if not lo <= value <= hi:
        raise SubscriptionError(f"buffering.{key}={value} outside allowed range [{lo}, {hi}]")
    return value


def validate_subscription(body, schema_versions=VALID_SCHEMA_VERSIONS) -> dict:
    """Validate a PUT /2022-07-01/telemetry body; returns the normalized config or raises.

    schema_versions: what the execution model accepts (Lambda Managed Instances: only
    2025-01-29, RIE-LMI telemetry-subscription-schema.json)."""
    if not isinstance(body, dict):
        raise SubscriptionError("body must be a JSON object")
    schema = body.get("schemaVersion")
    if schema not in schema_versions:
        raise SubscriptionError(f"schemaVersion {schema!r} not one of {list(schema_versions)}")
    types = body.get("types")
    if not isinstance(types, list) or not types or any(t not in VALID_TYPES for t in types):
        raise SubscriptionError(f"types must be a non-empty subset of {list(VALID_TYPES)}, got {types!r}")
    buffering = body.get("buffering", {}) or {}
    if not isinstance(buffering, dict):
        raise SubscriptionError("buffering must be an object")
    buf = {k: _int_in_range(buffering, k) for k in BUFFERING_LIMITS}
    dest = body.get("destination")
    if not isinstance(dest, dict):
        raise SubscriptionError("destination is required")
    protocol = dest.get("protocol")
    if protocol == "TCP":
        # AWS supports TCP destinations (newline-delimited JSON); this emulator does not.
        raise SubscriptionError("destination.protocol TCP is not supported by the local emulator")
    if protocol != "HTTP":
        raise SubscriptionError(f"destination.protocol must be HTTP or TCP, got {protocol!r}")
    uri = dest.get("URI")
    if not isinstance(uri, str):
        raise SubscriptionError("destination.URI is required")
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme != "http" or not parts.hostname:
        raise SubscriptionError(f"destination.URI must be http://{SANDBOX_HOST}:PORT/..., got {uri!r}")
    try:
        port = parts.port
    except ValueError:
        raise SubscriptionError(f"invalid port in {uri!r}") from None
    if port is None:
        raise SubscriptionError(f"destination.URI needs an explicit port: {uri!r}")
    if port == RESERVED_PORT:
        raise SubscriptionError(f"port {RESERVED_PORT} is reserved")
    host = parts.hostname
    # In Lambda the listener is reached as sandbox.localdomain; locally that is 127.0.0.1.
    connect_host = "127.0.0.1" if host in (SANDBOX_HOST, "localhost") else host
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return {
        "schemaVersion": schema,
        "types": list(types),
        "buffering": buf,
        "uri": uri,
        "host": host,
        "connect_host": connect_host,
        "port": port,
        "path": path,
        "warning": None if host == SANDBOX_HOST else f"destination host {host!r} is not {SANDBOX_HOST}",
    }


def make_event(event_type: str, record, t: float | None = None) -> dict:
    return {"time": iso_at(t), "type": event_type, "record": record}


def category_of(event: dict) -> str:
    t = event["type"]
    return "platform" if t.startswith("platform.") else t


def new_span_id() -> str:
    return uuid.uuid4().hex[:16]


class Subscription:
    """One extension's Telemetry API subscription: buffer + sender thread."""

    def __init__(
        self,
        ext_name: str,
        config: dict,
        thawed: threading.Event,
        post_timeout: float,
        on_delivered: Callable[[list, float], None],
    ):
        self.ext_name = ext_name
        self.config = config
        self.types = set(config["types"])
        self.max_items = config["buffering"]["maxItems"]
        self.max_bytes = config["buffering"]["maxBytes"]
        self.timeout_s = config["buffering"]["timeoutMs"] / 1000.0
        self.deliveries: list[dict] = []
        self._thawed = thawed
        self._post_timeout = post_timeout
        self._on_delivered = on_delivered
        self._cv = threading.Condition()
        self._buffer: list[tuple[dict, bytes]] = []
        self._bytes = 0
        self._flush_at: float | None = None
        self._posting = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"telemetry-{ext_name}", daemon=True)
        self._thread.start()

    def offer(self, event: dict, flush_within: float | None = None) -> bool:
        if category_of(event) not in self.types:
            return False
        data = json.dumps(event).encode()
        with self._cv:
            if self._stopped:
                return False
            self._buffer.append((event, data))
            self._bytes += len(data)
            delay = self.timeout_s if flush_within is None else min(self.timeout_s, flush_within)
            due = time.monotonic() + delay
            self._flush_at = due if self._flush_at is None else min(self._flush_at, due)
            self._cv.notify_all()
        return True

    def flush(self, timeout: float) -> bool:
        """Send what is buffered now and wait (at most timeout) until it was delivered."""
        deadline = time.monotonic() + timeout
        with self._cv:
            if self._buffer:
                self._flush_at = time.monotonic()
                self._cv.notify_all()
            while (self._buffer or self._posting) and not self._stopped:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _take_batch(self):
        with self._cv:
            while True:
                if self._stopped:
                    return None
                if self._buffer:
                    full = len(self._buffer) >= self.max_items or self._bytes >= self.max_bytes
                    wait = self._flush_at - time.monotonic()
                    if full or wait <= 0:
                        batch, size = [], 0
                        while self._buffer and len(batch) < self.max_items:
                            ev, data = self._buffer[0]
                            if batch and size + len(data) > self.max_bytes:
                                break
                            self._buffer.pop(0)
                            batch.append(ev)
                            size += len(data)
                        self._bytes -= size
                        self._flush_at = (time.monotonic() + self.timeout_s) if self._buffer else None
                        self._posting = True
                        return batch
                    self._cv.wait(wait)
                else:
                    self._cv.wait()

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            # The environment is frozen between invocations: nothing is delivered then.
            self._thawed.wait()
            try:
                self._post(batch)
            finally:
                with self._cv:
                    self._posting = False
                    self._cv.notify_all()

    def _post(self, batch: list) -> None:
        body = json.dumps(batch).encode()
        types: dict[str, int] = {}
        for ev in batch:
            types[ev["type"]] = types.get(ev["type"], 0) + 1
        record = {
            "time": now(),
            "count": len(batch),
            "bytes": len(body),
            "types": types,
            "request_ids": sorted(
                {ev["record"].get("requestId") for ev in batch if isinstance(ev.get("record"), dict) and ev["record"].get("requestId")}
            ),
            "status": None,
            "error": None,
            "attempts": 0,
        }
        self.deliveries.append(record)
        notified = False
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            record["attempts"] = attempt
            t_start = now()
            conn = http.client.HTTPConnection(self.config["connect_host"], self.config["port"], timeout=self._post_timeout)
            try:
                conn.request("POST", self.config["path"], body=body, headers={"Content-Type": "application/json"})
                if not notified:
                    notified = True
                    self._on_delivered(batch, t_start)
                resp = conn.getresponse()
                resp.read()
                record["status"] = resp.status
                record["error"] = None
                record["done"] = now()
                return
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as e:
                record["error"] = f"{type(e).__name__}: {e}"
                time.sleep(DELIVERY_RETRY_S)
            except OSError as e:  # timeouts etc.: do not resend, the listener may have it already
                record["error"] = f"{type(e).__name__}: {e}"
                record["done"] = now()
                return
            finally:
                conn.close()
        record["done"] = now()
