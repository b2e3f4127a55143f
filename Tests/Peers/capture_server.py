#!/usr/bin/env python3
"""Stand-in Pyroscope server: accepts any request, answers 200, records it.

Usage:
  python3 Tests/Peers/capture_server.py [--host 127.0.0.1] [--port 4100]
      [--port-file PATH] [--out PATH.jsonl] [--bodies DIR] [--max-seconds N] [--follow-pid PID] [--quiet]

* HTTP/1.1 with keep-alive, any method and path, Content-Length or chunked
  request bodies; every request gets `200` with an empty body
  (Content-Length: 0). A request with broken framing gets 400 and the
  connection is closed.
* `--port 0` binds an ephemeral port. The bound port ("NNNN\\n") is written to
  --port-file atomically (temp file + rename) once the socket is listening,
  so a caller can poll for the file. A stale port file is removed at start.
* One JSON line per request is appended to --out (flushed per line):
  method, path, query, headers ([name, value] in received order, names as
  received), body_len, body_sha256, kind (push|ingest|other), summary (capture.py's
  summarize: gzip, push series and labels, ingest name), plus
  ts, http_version, client and conn_seq (1-based index of the request on its
  TCP connection, so keep-alive reuse is visible). NOTE: header values are
  recorded verbatim, credentials included; only stdout is masked.
* --bodies DIR also keeps each request body as DIR/NNNNNN.bin (as received,
  gzip included); the record names it in body_file (relative to DIR), so
  tools/profiles.py can decode the profiles afterwards.
* Stdlib only (capture.py reads push bodies with protobuf's runtime when it is
  installed, by the wire format otherwise). Stops with exit 0 on SIGTERM/SIGINT, and by itself after
  --max-seconds (default 600) or, with --follow-pid, when that process is gone
  (make run: the capture server lives exactly as long as the relay's script).
"""

import argparse
import datetime
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from capture import header_values, kind_of, summarize  # this folder: the one reader of captures and push bodies


class FramingError(Exception):
    """The request body framing (Content-Length / chunked) is invalid."""


def mask_auth(values):
    out = []
    for v in values:
        scheme = v.strip().split(" ", 1)[0] if v.strip() else "(empty)"
        out.append("%s ***" % scheme)
    return ",".join(out)


# --------------------------------------------------------------------------
# HTTP handling
# --------------------------------------------------------------------------

class CaptureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "capture-server/1"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are dropped after this

    def setup(self):
        super().setup()
        self.conn_seq = 0
        if self.server.abort_unacked_ms:
            # A load balancer's patience: a client that stops acknowledging what was sent to it
            # (an environment frozen, network included) loses the connection after this long.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self.server.abort_unacked_ms)

    def log_message(self, fmt, *args):  # silence default access log
        pass

    def __getattr__(self, name):
        # Any method (GET, POST, PUT, PATCH, DELETE, OPTIONS, PROPFIND, ...).
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _read_exact(self, n):
        chunks = []
        remaining = n
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                raise FramingError("connection closed after %d of %d body bytes"
                                   % (n - remaining, n))
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_chunked(self):
        parts = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise FramingError("connection closed inside chunked body")
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise FramingError("bad chunk size line %r" % line[:40])
            if size < 0:
                raise FramingError("negative chunk size")
            if size == 0:
                # trailer section, ends with an empty line
                while True:
                    t = self.rfile.readline(65537)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                return b"".join(parts)
            parts.append(self._read_exact(size))
            crlf = self.rfile.readline(3)
            if crlf not in (b"\r\n", b"\n"):
                raise FramingError("missing CRLF after chunk data")

    def _read_body(self):
        te = ",".join(header_values(self.headers.items(), "transfer-encoding")).lower()
        if "chunked" in te:
            return self._read_chunked()
        cls = header_values(self.headers.items(), "content-length")
        if not cls:
            return b""
        vals = {v.strip() for v in cls}
        if len(vals) != 1:
            raise FramingError("conflicting Content-Length headers %r" % cls)
        try:
            n = int(vals.pop())
        except ValueError:
            raise FramingError("bad Content-Length %r" % cls)
        if n < 0:
            raise FramingError("negative Content-Length")
        return self._read_exact(n)

    def _handle(self):
        self.conn_seq += 1
        raw_path = self.path
        parsed = urllib.parse.urlsplit(raw_path)
        path, query = parsed.path, parsed.query
        if not raw_path.startswith("/"):  # absolute-form request target
            path = parsed.path or "/"
        headers = [[k, v] for k, v in self.headers.items()]
        kind = kind_of(path)
        status = 200
        framing_error = None
        try:
            body = self._read_body()
        except FramingError as e:
            body = b""
            framing_error = str(e)
            status = 400
            self.close_connection = True
        except (OSError, ValueError) as e:
            body = b""
            framing_error = "read error: %s" % e
            status = 400
            self.close_connection = True

        if framing_error:
            summary = {"error": "framing: %s" % framing_error}
        else:
            summary = summarize(kind, query, headers, body)

        record = {
            "ts": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "method": self.command,
            "path": path,
            "query": query,
            "http_version": self.request_version,
            "headers": headers,
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "kind": kind,
            "summary": summary,
            "client": "%s:%s" % self.client_address[:2],
            "conn_seq": self.conn_seq,
            "status": status,
        }
        body_file = self.server.keep_body(body)
        if body_file:
            record["body_file"] = body_file
        # Stored as it is read, before the answer: what a server does.
        self.server.record(record)
        if self.server.answer_delay_ms:
            time.sleep(self.server.answer_delay_ms / 1000.0)

        try:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
        except OSError:
            self.close_connection = True

        if not self.server.quiet:
            self.server.print_line(self._human_line(record))

    def _human_line(self, rec):
        parts = ["%s %s" % (rec["method"], rec["path"]), "%d bytes" % rec["body_len"]]
        s = rec["summary"]
        if s.get("service_names"):
            parts.append("service_name=%s" % ",".join(s["service_names"]))
        if "name" in s:
            parts.append("name=%s" % s["name"])
        auth = header_values(rec["headers"], "authorization")
        if auth:
            parts.append("auth=%s" % mask_auth(auth))
        tenant = header_values(rec["headers"], "x-scope-orgid")
        if tenant:
            parts.append("tenant=%s" % ",".join(tenant))
        if rec["status"] != 200:
            parts.append("-> %d" % rec["status"])
        if "error" in s:
            parts.append("error=%s" % s["error"])
        return " ".join(parts)


class CaptureServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, out_path, quiet, bodies_dir=None, answer_delay_ms=0, abort_unacked_ms=0):
        super().__init__(addr, CaptureHandler)
        self.quiet = quiet
        self.answer_delay_ms = answer_delay_ms
        self.abort_unacked_ms = abort_unacked_ms
        self._lock = threading.Lock()
        for folder in (bodies_dir, out_path and os.path.dirname(out_path)):
            if folder:
                os.makedirs(folder, exist_ok=True)
        self._out = open(out_path, "a", encoding="utf-8") if out_path else None
        self._bodies_dir = bodies_dir
        self._bodies_kept = 0

    def keep_body(self, body):
        """Writes the body to the --bodies folder; returns its file name, or None."""
        if not self._bodies_dir:
            return None
        with self._lock:
            self._bodies_kept += 1
            name = "%06d.bin" % self._bodies_kept
        with open(os.path.join(self._bodies_dir, name), "wb") as f:
            f.write(body)
        return name

    def record(self, rec):
        if self._out is None:
            return
        line = json.dumps(rec, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def print_line(self, line):
        with self._lock:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (OSError, ValueError):
                pass

    def handle_error(self, request, client_address):
        # Peers resetting or dropping keep-alive connections is normal; keep
        # anything else to one line instead of a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        print("capture_server: error on connection from %s:%s: %r"
              % (client_address[0], client_address[1], exc), file=sys.stderr, flush=True)

    def server_close(self):
        super().server_close()
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stand-in Pyroscope server that records requests.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4100, help="0 = ephemeral port")
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--out", help="append one JSON line per request to this file")
    ap.add_argument("--bodies", metavar="DIR",
                    help="keep each request body in this folder (named in the record's body_file)")
    ap.add_argument("--max-seconds", type=float, default=600.0,
                    help="exit by itself after this many seconds (default 600)")
    ap.add_argument("--follow-pid", type=int,
                    help="stop when this process exits, instead of after --max-seconds")
    ap.add_argument("--quiet", action="store_true", help="no per-request stdout line")
    ap.add_argument("--answer-delay-ms", type=int, default=0,
                    help="answer this long after reading (and recording) a request: a slow remote")
    ap.add_argument("--abort-unacked-ms", type=int, default=0,
                    help="drop a connection whose client leaves sent data unacknowledged this long "
                         "(TCP_USER_TIMEOUT), as a load balancer gives up on a frozen client")
    args = ap.parse_args(argv)

    if args.port_file:
        try:
            os.unlink(args.port_file)
        except FileNotFoundError:
            pass

    stop = threading.Event()
    reason = {"why": "max-seconds"}

    def on_signal(signum, _frame):
        reason["why"] = signal.Signals(signum).name
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = CaptureServer((args.host, args.port), args.out, args.quiet, args.bodies,
                           args.answer_delay_ms, args.abort_unacked_ms)  # binds + listens
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    print("capture_server: listening on http://%s:%d (%s)%s"
          % (args.host, port, ("while process %d runs" % args.follow_pid) if args.follow_pid else ("max %gs" % args.max_seconds),
             (", recording to %s" % args.out) if args.out else ""),
          file=sys.stderr, flush=True)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                         name="serve", daemon=True)
    t.start()
    deadline = None if args.follow_pid else time.monotonic() + args.max_seconds
    while not stop.is_set():
        if deadline is None:
            if not process_alive(args.follow_pid):
                reason["why"] = "process %d exited" % args.follow_pid
                break
            stop.wait(0.5)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        stop.wait(min(remaining, 0.5))
    server.shutdown()
    server.server_close()
    print("capture_server: stopping (%s)" % reason["why"], file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
