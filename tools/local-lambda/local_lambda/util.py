"""Clock, formatting and small helpers shared by the emulator modules."""

from __future__ import annotations

import datetime as _dt
import json
import threading
import time

# All report times are float seconds since the emulator started (monotonic clock).
T0_MONO = time.monotonic()
# Wall-clock time matching T0_MONO, used to turn report times into ISO 8601 stamps.
T0_WALL = time.time()

MAX_RECORDED_BODY = 64 * 1024  # bodies larger than this are truncated in the report

_print_lock = threading.Lock()


def now() -> float:
    """Seconds since the emulator started (monotonic), rounded to microseconds."""
    return round(time.monotonic() - T0_MONO, 6)


def unix_ms() -> int:
    return int(time.time() * 1000)


def iso_at(t: float | None = None) -> str:
    """ISO 8601 UTC timestamp with milliseconds, as the Telemetry API uses ("2022-10-12T00:00:15.064Z")."""
    wall = T0_WALL + (now() if t is None else t)
    stamp = _dt.datetime.fromtimestamp(wall, tz=_dt.timezone.utc)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ms_between(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a) * 1000.0, 3)


def decode_body(raw: bytes):
    """A request/response body for the report: parsed JSON when possible, else text."""
    if not raw:
        return None
    text = raw[:MAX_RECORDED_BODY].decode("utf-8", errors="replace")
    if len(raw) <= MAX_RECORDED_BODY:
        try:
            return json.loads(text)
        except ValueError:
            pass
    else:
        text += f"... [truncated, {len(raw)} bytes]"
    return text


def headers_dict(headers) -> dict:
    """http.client.HTTPMessage -> dict; repeated headers are joined with ', '."""
    out: dict[str, str] = {}
    for key, value in headers.items():
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def echo(prefix: str, line: str) -> None:
    with _print_lock:
        print(f"{prefix} {line}", flush=True)


# The emulated function, as Lambda names it to the extensions and the runtime.
FUNCTION_NAME = "local-function"
FUNCTION_VERSION = "$LATEST"
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
MEMORY_MB = 128
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
