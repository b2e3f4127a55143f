"""Shared helpers of the layer tests: the built zip, the relay as a child process, and a
recording stand-in for the Pyroscope server. Everything binds 127.0.0.1 port 0."""

import http.server
import os
import pathlib
import re
import subprocess
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARCH = os.environ.get("LAYER_ARCH", "x86_64")
PRODUCT = "pyroscope-lambda-extension"
ZIP = ROOT / "dist" / f"{PRODUCT}-{ARCH}.zip"


@pytest.fixture(scope="session")
def layer_zip() -> pathlib.Path:
    if not ZIP.is_file():
        pytest.fail(f"{ZIP} is missing: run make layer first (make test-layer does)")
    return ZIP


class Relay:
    """The extension started by `command`; its output is collected line by line."""

    def __init__(self, command: list[str], environment: dict[str, str]):
        self.lines: list[str] = []
        self.process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for_line(self, needle: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if needle in line:
                    return line
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {needle!r} (exit {self.process.poll()}): " + "\n".join(self.lines[-20:]))

    def port(self) -> int:
        line = self.wait_for_line("Relay listening")
        return int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (dev mode drains and exits 0); SIGKILL past `timeout`."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code


def dev_mode_environment(remote: str) -> dict[str, str]:
    """What the relay needs outside Lambda; nothing inherited from this process."""
    return {"PATH": "/usr/bin:/bin", "PYROSCOPE_DEV_MODE": "true", "PYROSCOPE_LISTEN_ADDRESS": "127.0.0.1:0",
            "PYROSCOPE_REMOTE_ADDRESS": remote, "PYROSCOPE_SPOOL_MAX_BYTES": "0"}


def http_get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def http_post(url: str, body: bytes, timeout: float = 5) -> int:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "binary/octet-stream"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


class Sink:
    """A stand-in Pyroscope server on 127.0.0.1:0 recording (path, body) of each POST."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                received.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *arguments):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    server = Sink()
    yield server
    server.close()


def relay_and_check(relay: Relay, sink: Sink, tag: str) -> None:
    """Health, one legacy upload relayed to the sink, and a clean drain on SIGTERM."""
    port = relay.port()
    assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    body = f"{tag};main;work 7\n".encode()
    assert http_post(f"http://127.0.0.1:{port}/ingest?name={tag}&format=folded", body) == 200
    received = sink.wait_for(1)
    assert len(received) == 1, relay.lines[-20:]
    path, delivered = received[0]
    assert path.startswith(f"/ingest?name={tag}") and "format=folded" in path
    assert delivered == body
    assert relay.stop() == 0, relay.lines[-20:]
