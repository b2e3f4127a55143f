"""Shared helpers of the layer tests: the built zips, the relay as a child process, and a
recording stand-in for the Pyroscope server. Everything binds 127.0.0.1 port 0.

LAYER_ARCH names the architectures under test ("x86_64", "arm64" or both, space-separated;
make test-layer sets it from ARCH): every test that takes `layer_zip` runs once for each. An
arm64 binary on an x86_64 machine runs under qemu-aarch64 with an arm64 glibc root, both
installed by layer/cross/setup.sh runner (make test-layer does it)."""

import http.server
import os
import pathlib
import platform
import re
import shlex
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARCHS = os.environ.get("LAYER_ARCH", "x86_64").split()
PRODUCT = "pyroscope-lambda-extension"
HOST_ARCH = {"aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())


def zip_path(arch: str) -> pathlib.Path:
    return ROOT / "dist" / f"{PRODUCT}-{arch}.zip"


@pytest.fixture(scope="session", params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def layer_zip(arch) -> pathlib.Path:
    path = zip_path(arch)
    if not path.is_file():
        pytest.fail(f"{path} is missing: run make layer ARCH={arch} first (make test-layer does)")
    return path


@pytest.fixture(scope="session")
def layer_zips() -> dict[str, pathlib.Path]:
    """Every architecture's zip at once (publishing them with one command)."""
    missing = [str(zip_path(arch)) for arch in ARCHS if not zip_path(arch).is_file()]
    if missing:
        pytest.fail(f"missing: {', '.join(missing)}: run make layer ARCH=\"{' '.join(ARCHS)}\" first")
    return {arch: zip_path(arch) for arch in ARCHS}


def cross_paths() -> dict[str, str]:
    """Where layer/cross/setup.sh puts the cross toolchain and the arm64 runners."""
    assignments = subprocess.run([str(ROOT / "layer" / "cross" / "setup.sh"), "env"], check=True,
                                 capture_output=True, text=True).stdout
    return {key: shlex.split(value)[0] for key, _, value in (line.partition("=") for line in assignments.splitlines())}


def runner_for(arch: str) -> list[str]:
    """The command prefix that runs a Linux binary of `arch` on this machine: nothing when
    native; for arm64 on x86_64, qemu-aarch64 with the arm64 glibc root (-L) of
    layer/cross/setup.sh, as on Lambda: glibc and libgcc_s, nothing else."""
    if arch == HOST_ARCH:
        return []
    if (HOST_ARCH, arch) != ("x86_64", "arm64"):
        pytest.fail(f"no way to run {arch} binaries on {HOST_ARCH}")
    paths = cross_paths()
    qemu, glibc_root = paths["CROSS_QEMU"], paths["CROSS_GLIBC_ROOT"]
    if not (os.access(qemu, os.X_OK) and os.path.isfile(os.path.join(glibc_root, ".done"))):
        pytest.fail(f"{qemu} or {glibc_root} is missing: run layer/cross/setup.sh runner "
                    "(make test-layer ARCH=arm64 does)")
    return [qemu, "-L", glibc_root]


@pytest.fixture(scope="session")
def runner(arch) -> list[str]:
    return runner_for(arch)


# Lambda runs extensions as an unprivileged user (sbx_user1051: uid 993, gid 990, no groups),
# with the layer's files read-only under /opt and only /tmp writable.
LAMBDA_USER = (993, 990)


def as_lambda_user() -> list[str]:
    """The command prefix that runs a program as Lambda's user (util-linux's setpriv execs it,
    so the process is the program itself); nothing when these tests are not root, as they
    are unprivileged already."""
    if os.geteuid() != 0:
        return []
    uid, gid = LAMBDA_USER
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def unpack_layer(layer_zip: pathlib.Path) -> pathlib.Path:
    """The layer unzipped as Lambda lays it out in /opt: readable by everyone, written by no
    one (pytest's own tmp_path is root's alone, unreadable to Lambda's user). Removed at exit
    of the test session's /tmp."""
    opt = pathlib.Path(tempfile.mkdtemp(prefix="layer-opt-"))
    with zipfile.ZipFile(layer_zip) as archive:
        archive.extractall(opt)
    for path in [opt, *opt.rglob("*")]:
        path.chmod(0o555)
    return opt


def writable_by_lambda_user(path: pathlib.Path) -> pathlib.Path:
    """A folder Lambda's user may write in (what the tests need of /tmp)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, *LAMBDA_USER)
    return path


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


def http_post_accepted(url: str, body: bytes, patience: float = 20) -> int:
    """POST until accepted: a 503 is the relay saying its queue is full (on a loaded machine
    the sink may fall behind a burst), so wait a little and send again, as a client would."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return http_post(url, body)
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
