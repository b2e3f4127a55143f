"""HTTP framing for the sandbox API (Runtime, Extensions and Telemetry APIs on one port).

The routing and all the state live in Emulator.handle(); this module only reads the
request (Content-Length or chunked), calls it, and writes the answer.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Response:
    def __init__(self, status: int, body=b"", headers: dict | None = None, content_type: str | None = None):
        self.status = status
        self.headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        self.body = body
        if content_type and "Content-Type" not in self.headers:
            self.headers["Content-Type"] = content_type


def error(status: int, error_type: str, message: str) -> Response:
    # Same shape as RAPID's rendering.RenderForbiddenWithTypeMsg: {"errorMessage","errorType"}.
    return Response(status, {"errorMessage": message, "errorType": error_type})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-lambda"
    sys_version = ""

    def log_message(self, fmt, *args):  # silence default stderr logging
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        trailer = self.rfile.readline(65537)
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                    break
                out += self.rfile.read(size)
                self.rfile.readline()
            return bytes(out)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        body = self._read_body()
        resp = self.server.emulator.handle(self.command, path, self.headers, body, self.client_address)
        try:
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(resp.body)))
            self.end_headers()
            if resp.body:
                self.wfile.write(resp.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = _dispatch
    do_POST = _dispatch
    do_PUT = _dispatch
    do_DELETE = _dispatch


class SandboxServer(ThreadingHTTPServer):
    daemon_threads = True  # long polls must not keep the emulator alive
    allow_reuse_address = True

    def __init__(self, emulator):
        self.emulator = emulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request, client_address):
        # A client killed mid-request (runtime workers at shutdown) is not an emulator error.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]
