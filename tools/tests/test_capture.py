"""capture.py, the one reader of captures and push bodies: its wire-format fallback (for a
python3 without protobuf) reads the recorded client uploads as Google's protobuf runtime does,
and the summary capture_server.py records names what summarize_capture.py reports."""

import gzip
import json
import os

import pytest
from conftest import FIXTURES

import capture
import summarize_capture

PUSHES = ["pyroscope-io-1.4.0-push-periodic", "pyroscope-io-1.4.0-push-exit-flush", "pyroscope-io-1.4.0-push-all-auth"]


def body(name):
    with open(os.path.join(FIXTURES, name + ".bin"), "rb") as f:
        return f.read()


@pytest.mark.parametrize("name", PUSHES)
def test_the_wire_reader_reads_a_push_body_as_protobufs_runtime_does(name):
    assert capture.protobuf_push_request() is not None, "the test venv has protobuf"
    data = capture.gunzip(body(name))
    by_runtime = capture.push_series(data)
    assert by_runtime and by_runtime[0].samples
    assert capture._read_push_request(memoryview(data)) == by_runtime


def test_a_body_that_is_no_push_request_is_an_error_both_ways():
    with pytest.raises(Exception):
        capture.push_series(b"\x0a\x05\x0a\x03")  # series -> labels overrunning its series
    with pytest.raises(ValueError):
        capture._read_push_request(memoryview(b"\x0a\x05\x0a\x03"))


def test_the_recorded_summary_carries_what_summarize_capture_reads(tmp_path):
    push = capture.summarize("push", "", [["Content-Type", "application/x-protobuf"]], body(PUSHES[0]))
    assert push["gzip"] and push["gzip_valid"] and "error" not in push
    assert push["service_names"] == ["probe.app"]
    ingest = capture.summarize("ingest", "name=app.cpu%7Bfaas_name%3Dfn%7D&format=pprof", [], gzip.compress(b"x"))
    assert ingest["app_name"] == "app.cpu" and ingest["format"] == "pprof"
    records = [{"kind": "push", "summary": push}, {"kind": "ingest", "summary": ingest}]
    path = tmp_path / "received.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "not json\n")
    read, bad = capture.read_records(str(path))
    assert read == records and bad == 1
    seen, missing = summarize_capture.lambda_labels(read)
    assert seen == {"faas_name=fn": 1} and missing == 1


def otlp_bodies():
    """The exports Tests/Peers/otlp_bodies.py builds with OpenTelemetry's own classes."""
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(FIXTURES), "..", "Peers", "otlp_bodies.py")
    made = subprocess.run([sys.executable, script], capture_output=True, check=True)
    return [(b["content_type"], bytes.fromhex(b["hex"])) for b in json.loads(made.stdout)]


def test_the_wire_reader_reads_otlp_resources_as_opentelemetrys_classes_do():
    from google.protobuf import json_format
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import ExportProfilesServiceRequest

    for content_type, data in otlp_bodies():
        request = ExportProfilesServiceRequest()
        plain = capture.gunzip(data)
        if "json" in content_type:
            json_format.Parse(plain.decode(), request)
        else:
            request.ParseFromString(plain)
        expected = [[(a.key, str(getattr(a.value, a.value.WhichOneof("value")))) for a in rp.resource.attributes]
                    for rp in request.resource_profiles]
        assert capture.otlp_resources(data, content_type) == expected, content_type
    summary = capture.summarize("otlp", "", [["Content-Type", "application/x-protobuf"]], otlp_bodies()[0][1])
    assert summary["service_names"] == ["orders"] and "error" not in summary
    labels = capture.upload_labels({"kind": "otlp", "summary": summary})
    assert ("faas_name", "client-name") in labels and ("service_name", "orders") in labels
    assert "error" in capture.summarize("otlp", "", [["Content-Type", "application/x-protobuf"]], b"\x0a\x05\x0a\x03")
