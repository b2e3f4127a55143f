#!/usr/bin/env python3
"""A tiny Lambda extension for the emulator's tests: registers, optionally subscribes to the
Telemetry API, polls /event/next until SHUTDOWN, and records everything it saw as JSON lines
(one per fact, flushed at once, so a SIGKILL loses nothing already seen).

Settings (environment, passed with the emulator's --env; FAKE_EXT_<NAME>_<SETTING>, NAME being the
file name upper-cased with - and . as _, overrides FAKE_EXT_<SETTING> for one extension):
  FAKE_EXT_RECORD      JSON-lines file to append to (required)
  FAKE_EXT_EVENTS      events to register for, comma-separated (default INVOKE,SHUTDOWN; "" = none)
  FAKE_EXT_FALLBACK    1: when a registration is refused with Extension.InvalidEventType,
                       register again with SHUTDOWN only (what Datadog/OTel/Honeycomb do on LMI)
  FAKE_EXT_CONFIG_KEYS 1: send configurationKeys in the registration body
  FAKE_EXT_TELEMETRY   schema version to subscribe with (unset: no subscription)
  FAKE_EXT_EXIT_CODE   exit with this code after SHUTDOWN (default 0)
  FAKE_EXT_CRASH_AFTER exit 3 after receiving this many INVOKE events (a crash)

Records: {"kind": "start"|"register"|"telemetry_subscribe"|"event"|"telemetry"|"gap"|"exit", "wall": unix s,
"extension": name, ...}; "start" has the Lambda variables the extension was given.
A "gap" is a stretch longer than 0.5 s during which a 50 ms ticker thread did not run: the
process was frozen (SIGSTOP), seen from inside.
Standard library only; the file name is the extension name.
"""

import http.client
import http.server
import json
import os
import sys
import threading
import time

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])
_lock = threading.Lock()
_PREFIX = "FAKE_EXT_" + NAME.upper().replace("-", "_").replace(".", "_") + "_"


def setting(key, default=None):
    return os.environ.get(_PREFIX + key, os.environ.get("FAKE_EXT_" + key, default))


def record(kind, **fields):
    line = json.dumps(dict(kind=kind, wall=time.time(), extension=NAME, **fields))
    with _lock, open(os.environ["FAKE_EXT_RECORD"], "a") as f:
        f.write(line + "\n")
        f.flush()


def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=None)  # /event/next is a long poll
    conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = data.decode(errors="replace")
    return resp.status, dict(resp.getheaders()), parsed


def register(events):
    body = {"events": events}
    if setting("CONFIG_KEYS") == "1":
        body["configurationKeys"] = ["SOME_KEY"]
    status, headers, answer = call("POST", "/2020-01-01/extension/register", body, {"Lambda-Extension-Name": NAME})
    record("register", events=events, status=status, answer=answer)
    return status, headers.get("Lambda-Extension-Identifier"), answer


class _TelemetryListener(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        batch = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"[]")
        for event in batch:
            record("telemetry", type=event.get("type"), record_=event.get("record"), time_=event.get("time"))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


def subscribe(identifier, schema):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TelemetryListener)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    body = {"schemaVersion": schema, "types": ["platform"],
            "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
            "destination": {"protocol": "HTTP", "URI": f"http://sandbox.localdomain:{server.server_address[1]}"}}
    status, _, answer = call("PUT", "/2022-07-01/telemetry", body, {"Lambda-Extension-Identifier": identifier})
    record("telemetry_subscribe", schema=schema, status=status, answer=answer)


def ticker():
    last = time.monotonic()
    while True:
        time.sleep(0.05)
        now = time.monotonic()
        if now - last > 0.5:
            record("gap", seconds=round(now - last, 3), until=time.time())
        last = now


def main():
    record("start", pid=os.getpid(), env={k: v for k, v in os.environ.items() if k.startswith(("AWS_", "LAMBDA_", "_HANDLER"))})
    threading.Thread(target=ticker, daemon=True).start()
    events = [e for e in setting("EVENTS", "INVOKE,SHUTDOWN").split(",") if e]
    status, identifier, answer = register(events)
    if status == 403 and isinstance(answer, dict) and answer.get("errorType") == "Extension.InvalidEventType" \
            and setting("FALLBACK") == "1":
        status, identifier, answer = register(["SHUTDOWN"])
    if status != 200:
        record("exit", code=1, why="registration failed")
        return 1
    if setting("TELEMETRY"):
        subscribe(identifier, setting("TELEMETRY"))
    crash_after = int(setting("CRASH_AFTER") or 0)
    invokes = 0
    while True:
        status, _, event = call("GET", "/2020-01-01/extension/event/next", headers={"Lambda-Extension-Identifier": identifier})
        record("event", status=status, event=event, pid=os.getpid())
        if status != 200:
            record("exit", code=2, why="event/next failed")
            return 2
        if event.get("eventType") == "INVOKE":
            invokes += 1
            if crash_after and invokes >= crash_after:
                record("exit", code=3, why="crash")
                return 3
        if event.get("eventType") == "SHUTDOWN":
            code = int(setting("EXIT_CODE") or 0)
            record("exit", code=code, why="shutdown")
            return code


if __name__ == "__main__":
    sys.exit(main())
