"""profiles.py decodes what real clients sent (the recorded fixtures of Tests/Fixtures/clients)
in each upload shape, and demo_verdict.py says OK or FAIL from it."""

import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import uuid

import pytest
from conftest import FIXTURES, frame_names

import demo_verdict
import flamegraph
import profiles


def fixture(name):
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        recorded = json.load(f)
    with open(os.path.join(FIXTURES, name + ".bin"), "rb") as f:
        body = f.read()
    record = {"kind": "push" if recorded["path"].endswith("/Push") else "ingest",
              "query": recorded["query_string"], "headers": recorded["headers"]}
    return record, body, recorded["decoded_summary"]


def expected_pprof(summary):
    """The fixture's own description of its pprof: (period, total value, heaviest stack root first, its value)."""
    pprof = summary["pprof"] if "pprof" in summary else summary["series"][0]["samples"][0]["pprof"]
    heaviest = pprof["top_samples"][0]
    return pprof["period"], pprof["total_values"][0], tuple(reversed(heaviest["stack_leaf_first"])), heaviest["values"][0]


def multipart(fields):
    boundary = uuid.uuid4().hex
    body = b"".join(b"--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    b"Content-Type: application/octet-stream\r\n\r\n%s\r\n" % (boundary.encode(), n.encode(), n.encode(), v)
                    for n, v in fields.items()) + b"--%s--\r\n" % boundary.encode()
    return "multipart/form-data; boundary=%s" % boundary, body


@pytest.mark.parametrize("name", [
    "pyroscope-io-1.4.0-push-periodic", "pyroscope-io-1.4.0-push-exit-flush", "pyroscope-io-1.4.0-push-all-auth",
    "pyroscope-io-0.8.16-ingest-legacy",
])
def test_a_recorded_client_upload_decodes_to_its_stacks_in_samples(name):
    record, body, summary = fixture(name)
    decoded = profiles.decode_record(record, body)
    assert len(decoded) == 1 and not decoded[0].error
    assert decoded[0].app == "probe.app"
    period, total, heaviest, heaviest_value = expected_pprof(summary)
    stacks = decoded[0].stacks
    assert sum(stacks.values()) == pytest.approx(total / period)
    assert stacks[heaviest] >= heaviest_value / period  # samples with other labels may share the stack


def test_a_multipart_pprof_ingest_decodes_like_the_plain_body():
    record, body, _ = fixture("pyroscope-io-0.8.16-ingest-legacy")
    content_type, form = multipart({"profile": gzip.decompress(body), "sample_type_config": b"{}"})
    record["headers"] = [["Content-Type", content_type]]
    [plain], [from_form] = profiles.decode_record(*fixture("pyroscope-io-0.8.16-ingest-legacy")[:2]), profiles.decode_record(record, form)
    assert from_form.stacks == plain.stacks and from_form.format == "pprof"


def test_folded_ingest_and_top_functions_by_self_time():
    record = {"kind": "ingest", "query": "name=app.cpu%7Bregion%3Deu%7D&format=folded", "headers": []}
    [profile] = profiles.decode_record(record, b"main;parse;scan 3\nmain;parse 1\nmain;render 4\n")
    assert profile.app == "app.cpu"
    assert profiles.top_self(profile.stacks, 2) == [("render", 4, 0.5), ("scan", 3, 0.375)]


def test_an_undecodable_upload_is_reported_not_raised():
    [profile] = profiles.decode_record({"kind": "push", "headers": []}, b"\x1f\x8bnot gzip")
    assert profile.error


def test_the_flame_graph_names_every_function_of_the_stacks(tmp_path):
    record, body, _ = fixture("pyroscope-io-1.4.0-push-periodic")
    written = flamegraph.write_all(profiles.by_app(profiles.decode_record(record, body)), str(tmp_path))
    [(app, path)] = written
    inferno = importlib.util.find_spec("pyinferno") is not None  # make venv installs it where its wheels exist
    assert app == "probe.app" and ("xmlns:fg" in open(path).read()) == inferno
    assert {"work_b", "fib", "<module>"} <= frame_names(path)


def test_without_pyinferno_the_plain_flame_graph_names_every_function_too(tmp_path):
    record, body, _ = fixture("pyroscope-io-1.4.0-push-periodic")
    [profile] = profiles.decode_record(record, body)
    (tmp_path / "plain.svg").write_text(flamegraph.plain_svg(profile.stacks, "probe.app"))
    names = frame_names(tmp_path / "plain.svg")
    assert {"work_b", "fib", "<module>"} <= names
    assert names == {frame for stack in profile.stacks for frame in stack}


@pytest.mark.skipif(not (shutil.which("java") and shutil.which("jfr")), reason="needs a JDK (java, jfr)")
def test_a_jfr_ingest_from_a_real_jvm_decodes_with_its_hot_method(tmp_path):
    source = tmp_path / "Hot.java"
    source.write_text("public class Hot { static long spin(long n) { long x = 0; for (long i = 0; i < n; i++) x += i * 31 ^ x; return x; }"
                      " public static void main(String[] a) { long end = System.nanoTime() + 2_000_000_000L, s = 0;"
                      " while (System.nanoTime() < end) s += spin(1_000_000); System.out.println(s); } }")
    recording = tmp_path / "hot.jfr"
    subprocess.run(["java", "-XX:StartFlightRecording=filename=%s,settings=profile" % recording, str(source)],
                   check=True, capture_output=True, timeout=120)
    content_type, form = multipart({"jfr": recording.read_bytes()})
    record = {"kind": "ingest", "query": "name=java.app&format=jfr&spyName=javaspy", "headers": [["Content-Type", content_type]]}
    [profile] = profiles.decode_record(record, form)
    assert not profile.error and profile.app == "java.app"
    assert profiles.top_self(profile.stacks, 1)[0][0] == "Hot.spin"


def relay_metrics(received, delivered, queued=0, dropped=None):
    lines = ["pyroscope_relay_uploads_received_total %d" % received, "pyroscope_relay_uploads_delivered_total %d" % delivered,
             "pyroscope_relay_queue_items %d" % queued, "pyroscope_relay_uploads_in_flight 0", "pyroscope_relay_spool_items 0"]
    lines += ['pyroscope_relay_uploads_dropped_total{reason="%s"} %d' % (r, n) for r, n in (dropped or {}).items()]
    return "\n".join(lines) + "\n"


def test_the_verdict_says_ok_with_the_hottest_function():
    record, body, summary = fixture("pyroscope-io-1.4.0-push-periodic")
    found = profiles.by_app(profiles.decode_record(record, body) * 2)
    status, line = demo_verdict.verdict(found, [], "probe.app", None, "localhost:4040", None)
    heaviest_leaf = expected_pprof(summary)[2][-1]  # work_b: most of the profile
    assert (status, line) == (0, "OK: 2 profiles from probe.app arrived, hottest function %s" % heaviest_leaf)


@pytest.mark.parametrize("metrics, says", [
    (None, "could not be read"),
    (relay_metrics(0, 0), "the relay received no upload"),
    (relay_metrics(2, 0, queued=1, dropped={"max_retries": 1, "too_old": 0}), "received 2 upload(s) and delivered none (dropped: max_retries 1; still queued or retrying: 1)"),
])
def test_the_verdict_says_where_uploads_stopped(metrics, says):
    status, line = demo_verdict.verdict({}, [], "probe.app", "http://127.0.0.1:1", "localhost:4040", metrics)
    assert status == 1 and line.startswith("FAIL: no profile from probe.app arrived") and says in line

