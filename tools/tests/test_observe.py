"""`make observe`, a short run: the pictures exist, are what they say (SVG, PNG), the flame
graph names the workload's hot function, and the PNG's data is what Prometheus answers."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import PROMETHEUS, REPOSITORY, frame_names

import relay_chart


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    out = tmp_path_factory.mktemp("observe")
    env = dict(os.environ, OBSERVE_SECONDS="6", OBSERVE_DIR=str(out), PYROSCOPE_LISTEN_ADDRESS="127.0.0.1:0",
               PYROSCOPE_SELF_PROFILING="true")
    run = subprocess.run([os.environ.get("MAKE", "make"), "--no-print-directory", "observe"], cwd=REPOSITORY, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return out, run.stdout


def test_the_flame_graph_of_the_workload_names_its_hot_function(observed):
    out, stdout = observed
    names = frame_names(out / "flamegraph-pyroscope.lambda.demo.svg")
    assert {"work_fib", "work_hash", "burn"} <= names
    assert str(out) in stdout  # the folder is printed


def test_with_self_profiling_the_relay_has_a_flame_graph_of_its_own(observed):
    out, _ = observed
    names = frame_names(out / "flamegraph-pyroscope.lambda.extension.svg")
    assert any("NIO" in name for name in names), sorted(names)[:20]  # the relay's event loops, symbolized


def test_the_metrics_picture_is_a_png(observed):
    out, _ = observed
    data = (out / "relay-metrics.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image  # matplotlib's own dependency

    with Image.open(out / "relay-metrics.png") as image:
        image.verify()
        assert image.size[0] >= 800 and image.size[1] >= 800


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_pictures_data_is_what_prometheus_answers_to_the_dashboards_queries(observed, tmp_path):
    out, _ = observed
    figures = json.loads((out / "relay-metrics.json").read_text())
    # The dashboard's own queries, read here independently of the script.
    dashboard = json.loads(open(os.path.join(REPOSITORY, "dashboards", "grafana-relay.json")).read())
    variables = figures["variables"]  # $__rate_interval as Grafana sets it: max(step + scrape, 4 x scrape)
    assert variables == {"instance": ".*", "job": ".*", "__rate_interval": "4s"}
    panels = {p["title"]: [re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], t["expr"]) for t in p["targets"]] for p in dashboard["panels"]}
    assert [p["title"] for p in figures["panels"]] == relay_chart.PANELS
    for panel in figures["panels"]:
        assert [q["expr"] for q in panel["queries"]] == panels[panel["title"]]
    # A Prometheus of this test's own, on a copy of the run's storage, answers the same.
    shutil.copytree(out / "prometheus-data", tmp_path / "data")
    (tmp_path / "prometheus.yml").write_text("global: { scrape_interval: 1m }\n")
    port = free_port()
    prometheus = subprocess.Popen([PROMETHEUS, "--config.file=%s" % (tmp_path / "prometheus.yml"), "--storage.tsdb.path=%s" % (tmp_path / "data"),
                                   "--web.listen-address=127.0.0.1:%d" % port, "--log.level=error"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/-/ready", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline and prometheus.poll() is None, "Prometheus did not start"
                time.sleep(0.2)
        for panel in figures["panels"]:
            for query in panel["queries"]:
                again = relay_chart.query_range(url, query["expr"], figures["start"], figures["end"], figures["step"])
                assert again == query["result"], query["expr"]
    finally:
        prometheus.send_signal(signal.SIGTERM)
        prometheus.wait(30)
    # And it is the run: uploads were received and delivered.
    first = figures["panels"][0]["queries"]
    for legend in ("received", "delivered"):
        [query] = [q for q in first if q["legendFormat"] == legend]
        assert max(float(v) for series in query["result"] for _, v in series["values"]) > 0, legend
