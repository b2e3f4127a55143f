"""Sample Lambda function for the local emulator, profiled with pyroscope-io.

pyroscope.configure() runs at import, i.e. during the function's init phase, as in a real
Lambda. The pyroscope-io 1.4.0 agent (Rust, a thread inside this process) uploads to
server_address - the extension's relay on localhost:4040 - every 10 s counted from
configure(). Observed under the local emulator (tools/local-lambda/local_lambda.py): the agent thread is
stopped while the environment is frozen, and since its clock is monotonic an upload that
fell due during a freeze goes out immediately at the thaw, the next one ~10 s after that.
It sends a final partial upload only at normal interpreter exit, not on SIGTERM/SIGKILL,
which is how Lambda ends the runtime: the last (partial) window is lost at shutdown (a
SIGTERM handler cannot help: awslambdaric's main thread waits for the next invocation in
native code, so Python signal handlers never run before the SIGKILL).

On Lambda Managed Instances awslambdaric forks several worker processes that each import
this module: each has its own agent, told apart by the `pid` tag.
PROFILE_UPLOAD_SECONDS changes the upload interval (default 10, pyroscope-io's), so tests
see uploads sooner.

FUNCTION_PROFILER=otel profiles it with OpenTelemetry's own Python profiler instead (PyPI
opentelemetry-sdk-extension-profiling), exporting OTLP profiles over HTTP to the relay's
/v1development/profiles, configured through OpenTelemetry's variables as a user would (each
may be set beforehand): the relay speaks HTTP/1.1, so the protocol is http/protobuf.
"""

import http.client
import os
import time
import urllib.parse

# The extension's relay; tests move it off 4040 (PYROSCOPE_SERVER_ADDRESS) so parallel runs
# never collide on a fixed port.
RELAY_ADDRESS = os.environ.get("PYROSCOPE_SERVER_ADDRESS", "http://localhost:4040")
APPLICATION_NAME = os.environ.get("PYROSCOPE_APPLICATION_NAME", "local.lambda.function")
UPLOAD_SECONDS = os.environ.get("PROFILE_UPLOAD_SECONDS", "10")

if os.environ.get("FUNCTION_PROFILER", "pyroscope") == "otel":
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", RELAY_ADDRESS + "/v1development/profiles")
    os.environ.setdefault("OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL", "http/protobuf")
    os.environ.setdefault("OTEL_PROFILING_EXPORT_INTERVAL", UPLOAD_SECONDS)
    os.environ.setdefault("OTEL_RESOURCE_ATTRIBUTES", f"service.name={APPLICATION_NAME},process.pid={os.getpid()}")
    from opentelemetry.sdk.extension.profiling.runtime import Profiler

    PROFILER = Profiler()
    PROFILER.start()
else:
    import pyroscope

    pyroscope.configure(
        application_name=APPLICATION_NAME,
        server_address=RELAY_ADDRESS,
        tags={"fn": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local-function"), "pid": str(os.getpid())},
        upload_interval=int(UPLOAD_SECONDS),
    )


def _burn(seconds: float) -> int:
    """Spin the CPU for `seconds` of wall time doing integer work."""
    end = time.perf_counter() + seconds
    acc = 0
    while time.perf_counter() < end:
        for i in range(1000):
            acc = (acc * 31 + i) % 1_000_003
    return acc


def parse_request(ms: float) -> int:
    return _burn(ms / 1000.0)


def compute_checksums(ms: float) -> int:
    return _burn(ms / 1000.0)


def render_response(ms: float) -> int:
    return _burn(ms / 1000.0)


def wait_for_downstream(ms: float) -> None:
    """Off-CPU time, as a call to another service would spend."""
    time.sleep(ms / 1000.0)


def send_uploads(count: int, tag: str) -> None:
    """POST `count` small legacy-ingest uploads to the relay, as an agent flushing during
    the invocation would, so tests can follow uploads made at a known time."""
    relay = urllib.parse.urlsplit(RELAY_ADDRESS)
    connection = http.client.HTTPConnection(relay.hostname or "localhost", relay.port or 4040, timeout=5)
    for index in range(count):
        body = f"{tag}-{index};fn 1\n".encode()
        # sent_ms: when the function handed it over (wall clock), for delivery delays.
        connection.request("POST", f"/ingest?name=lambda.test&format=folded&tag={tag}&sent_ms={int(time.time() * 1000)}", body=body,
                           headers={"Content-Type": "binary/octet-stream"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            print(f"upload {tag}-{index} answered {response.status}")
    connection.close()


def handler(event, context):
    work_ms, sleep_ms = 200.0, 0.0
    if isinstance(event, dict):
        work_ms = float(event.get("work_ms", 200))
        sleep_ms = float(event.get("sleep_ms", 0))
        if event.get("uploads"):
            send_uploads(int(event["uploads"]), str(event.get("tag", context.aws_request_id)))
    # 20 % / 60 % / 20 % split so the flame graph shows three distinct frames.
    parse_request(work_ms * 0.2)
    compute_checksums(work_ms * 0.6)
    render_response(work_ms * 0.2)
    if sleep_ms:
        wait_for_downstream(sleep_ms)
    print(f"handled request {context.aws_request_id}: burned {work_ms:.0f} ms of CPU")
    return {"ok": True, "request_id": context.aws_request_id}


# INIT_UPLOADS="tag:count,...": uploads made while the module loads, i.e. during the
# function's init phase (tests of provisioned concurrency and SnapStart follow them).
for _spec in filter(None, os.environ.get("INIT_UPLOADS", "").split(",")):
    _tag, _, _count = _spec.partition(":")
    send_uploads(int(_count or 1), _tag)
