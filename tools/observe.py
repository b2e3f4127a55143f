#!/usr/bin/env python3
"""make observe: watch the relay work, then look at pictures of it.

Usage: observe.py --relay BIN --prometheus BIN [--seconds N] [--out DIR]

Starts, all on this machine:
  * the stand-in Pyroscope server (capture_server.py), keeping every body;
  * the relay in dev mode (PYROSCOPE_LISTEN_ADDRESS, default localhost:4040), relaying
    to the stand-in; other PYROSCOPE_* settings in the environment pass through
    (PYROSCOPE_SELF_PROFILING=true adds a flame graph of the relay itself);
  * Prometheus on 127.0.0.1 (a free port), with the scrape config from
    dashboards/README.md pointed at the relay, scraping every --scrape-interval;
  * the profiled Python workload (pyroscope-io), sending to the relay;
  * --rate (OBSERVE_RATE, default 10) more uploads per second: a recorded real
    pyroscope-io 1.4.0 upload (Tests/Fixtures/clients, application `probe.app`)
    replayed on one keep-alive connection, so the relay's figures have something to
    show and its self-profile has CPU to sample; 0 sends only the workload's.
It prints the Prometheus URL, runs for --seconds (OBSERVE_SECONDS; 0 = until Ctrl-C;
Ctrl-C also ends a timed run early), stops everything in order, and leaves in --out:
  flamegraph-APP.svg   one per application that arrived (the workload's, and the
                       relay's own `pyroscope.lambda.extension` with self-profiling)
  relay-metrics.png    received/delivered/dropped per second, answer and upload
                       latency p50/p99, queue depth: the Grafana dashboard's queries
  relay-metrics.json   what Prometheus answered to those queries (the PNG's data)
  prometheus-data/     Prometheus's own storage of the run, to query again
  capture/, relay.log, prometheus.log, prometheus.yml
Exits 1, saying what to check, when a picture could not be made.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(TOOLS)
PEERS = os.path.join(REPOSITORY, "Tests", "Peers")  # the stand-in Pyroscope server and the workload
sys.path.insert(0, TOOLS)
import flamegraph  # noqa: E402
import profiles  # noqa: E402
import relay_chart  # noqa: E402

APP = "pyroscope.lambda.demo"
REPLAYED = os.path.join(REPOSITORY, "Tests", "Fixtures", "clients", "pyroscope-io-1.4.0-push-periodic")


def say(message):
    print("observe: %s" % message, flush=True)


class Failure(Exception):
    """Something that stops the run, with what to check."""


def wait_until(predicate, seconds, what, process=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise Failure("%s: the process exited with status %s" % (what, process.returncode))
        time.sleep(0.1)
    raise Failure("%s: not ready after %gs" % (what, seconds))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.read()
    except OSError:
        return None


def scrape_config(relay_target, interval):
    """The YAML block under "## Grafana (Prometheus)" in dashboards/README.md, with its
    target set to the relay's address and its interval to `interval`."""
    with open(os.path.join(REPOSITORY, "dashboards", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    found = re.search(r"## Grafana \(Prometheus\).*?```yaml\n(.*?)```", readme, re.S)
    if not found:
        raise Failure("dashboards/README.md has no yaml block under '## Grafana (Prometheus)'")
    config, targets = re.subn(r'targets: \["[^"]*"\]', 'targets: ["%s"]' % relay_target, found.group(1))
    config, intervals = re.subn(r"scrape_interval: \S+", "scrape_interval: %s" % interval, config)
    if targets != 1 or intervals != 1:
        raise Failure("the scrape config in dashboards/README.md changed shape: one target and one scrape_interval expected")
    return config


class Run:
    """The processes of one run; each is stopped on every path."""

    def __init__(self, out):
        self.out = out
        self.children = []
        self.logs = []

    def start(self, name, argv, env=None, log=None):
        # A session of its own: the terminal's Ctrl-C reaches only this script, which
        # then stops each child in order.
        output = open(os.path.join(self.out, log), "w") if log else None
        if output:
            self.logs.append(output)
        process = subprocess.Popen(argv, env=env, stdout=output or None, stderr=output or None, start_new_session=True)
        self.children.append((name, process))
        return process

    def stop(self, process, sig=signal.SIGTERM, timeout=30):
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self):
        for _, process in reversed(self.children):
            self.stop(process, timeout=10)
        for log in self.logs:
            log.close()


def start_relay(run, relay, listen):
    capture_dir = os.path.join(run.out, "capture")
    port_file = os.path.join(run.out, "capture.port")
    run.start("stand-in", [sys.executable, os.path.join(PEERS, "capture_server.py"), "--port", "0", "--port-file", port_file,
                           "--out", os.path.join(capture_dir, "received.jsonl"), "--bodies", capture_dir, "--quiet",
                           "--max-seconds", str(7 * 24 * 3600)], log="capture.log")
    remote = "http://127.0.0.1:%s" % wait_until(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10,
                                                "the stand-in Pyroscope server")
    env = dict(os.environ, PYROSCOPE_DEV_MODE="true", PYROSCOPE_REMOTE_ADDRESS=remote, PYROSCOPE_LISTEN_ADDRESS=listen,
               PYROSCOPE_SPOOL_DIR=os.path.join(run.out, "spool"))
    process = run.start("relay", [relay], env=env, log="relay.log")

    def bound():
        with open(os.path.join(run.out, "relay.log"), encoding="utf-8", errors="replace") as f:
            line = next((line for line in f if "Relay listening" in line), None)
        found = line and re.search(r"(127\.0\.0\.1|\d+\.\d+\.\d+\.\d+):(\d+)", line)
        return found and "%s:%s" % found.groups()

    try:
        address = wait_until(bound, 20, "the relay", process)
    except Failure as failure:
        raise Failure("%s; see %s (is something else listening on %s? set PYROSCOPE_LISTEN_ADDRESS)"
                      % (failure, os.path.join(run.out, "relay.log"), listen))
    return process, address, remote


def start_prometheus(run, prometheus, relay_address, interval):
    with open(os.path.join(run.out, "prometheus.yml"), "w") as f:
        f.write(scrape_config(relay_address, interval))
    for _ in range(3):  # a free port can be taken between the probe and Prometheus's bind
        port = free_port()
        process = run.start("prometheus", [
            prometheus, "--config.file=%s" % os.path.join(run.out, "prometheus.yml"),
            "--storage.tsdb.path=%s" % os.path.join(run.out, "prometheus-data"),
            "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"], log="prometheus.log")
        url = "http://127.0.0.1:%d" % port
        try:
            wait_until(lambda: http_get(url + "/-/ready"), 60, "Prometheus", process)
            return process, url
        except Failure:
            run.stop(process)
    raise Failure("Prometheus did not start; see %s" % os.path.join(run.out, "prometheus.log"))


def instant(url, expr):
    body = http_get("%s/api/v1/query?%s" % (url, urllib.parse.urlencode({"query": expr})))
    try:
        return sum(float(r["value"][1]) for r in json.loads(body)["data"]["result"])
    except (TypeError, ValueError, KeyError):
        return 0.0


def progress(url, elapsed):
    totals = {name: int(instant(url, "sum(pyroscope_relay_uploads_%s_total)" % name)) for name in ("received", "delivered", "dropped")}
    say("%3ds: relay received %d, delivered %d, dropped %d (from Prometheus)" % (elapsed, totals["received"], totals["delivered"], totals["dropped"]))


def run_workload(run, python, relay_address, seconds, prometheus_url, interrupted, rate):
    burn = seconds if seconds > 0 else 10 ** 9
    replay = Replay(relay_address, rate) if rate > 0 else None
    if replay:
        replay.start()
        say("replaying a recorded pyroscope-io upload %g times a second (application probe.app)" % rate)
    try:
        wait_for_workload(run, python, relay_address, seconds, burn, prometheus_url, interrupted)
    finally:
        if replay:
            say("replayed uploads, by the relay's answer: %s" % replay.stop())


def wait_for_workload(run, python, relay_address, seconds, burn, prometheus_url, interrupted):
    workload = run.start("workload", [python, os.path.join(PEERS, "profiled_workload.py"), "--server", "http://%s" % relay_address,
                                      "--app-name", APP, "--seconds", str(burn), "--tag", "env=observe"])
    started = time.monotonic()
    next_report = 10
    asked_to_stop = False
    while workload.poll() is None:
        if interrupted["yes"] and not asked_to_stop:
            say("Ctrl-C: stopping the workload (it sends its last profile), then drawing")
            workload.send_signal(signal.SIGINT)
            asked_to_stop = True
        elapsed = time.monotonic() - started
        if elapsed >= next_report:
            progress(prometheus_url, elapsed)
            next_report += 10
        if seconds > 0 and elapsed > seconds + 60:
            raise Failure("the workload did not end %gs after its time" % 60)
        time.sleep(0.2)
    if workload.returncode != 0:
        raise Failure("the workload exited with status %d (its lines are above)" % workload.returncode)


class Replay(threading.Thread):
    """Sends a recorded upload `rate` times a second to the relay until stopped."""

    def __init__(self, relay_address, rate):
        super().__init__(name="replay", daemon=True)
        with open(REPLAYED + ".json", encoding="utf-8") as f:
            recorded = json.load(f)
        with open(REPLAYED + ".bin", "rb") as f:
            self.body = f.read()
        skip = {"host", "content-length"}
        self.headers = {k: v for k, v in recorded["headers"] if k.lower() not in skip}
        self.path = recorded["raw_path"]
        self.host, self.port = relay_address.rsplit(":", 1)
        self.rate = rate
        self.stopping = threading.Event()
        self.answers = {}

    def run(self):
        connection = None
        next_send = time.monotonic()
        while not self.stopping.is_set():
            try:
                connection = connection or http.client.HTTPConnection(self.host, int(self.port), timeout=10)
                connection.request("POST", self.path, body=self.body, headers=self.headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException) as error:
                connection, status = None, type(error).__name__
            self.answers[status] = self.answers.get(status, 0) + 1
            next_send += 1.0 / self.rate
            self.stopping.wait(max(0.0, next_send - time.monotonic()))

    def stop(self):
        self.stopping.set()
        self.join(15)
        return self.answers


def draw_flame_graphs(out):
    found = profiles.by_app(profiles.load_capture(os.path.join(out, "capture", "received.jsonl")))
    written = flamegraph.write_all(found, out)
    for app, (count, stacks) in found.items():
        print(profiles.format_top(app, count, stacks, 5))
    return found, written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relay", required=True, help="the relay binary")
    ap.add_argument("--prometheus", required=True, help="the prometheus binary")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("OBSERVE_SECONDS") or 60),
                    help="how long the workload runs (OBSERVE_SECONDS, default 60; 0: until Ctrl-C)")
    ap.add_argument("--out", default=os.environ.get("OBSERVE_DIR") or os.path.join(
        REPOSITORY, "observe-results", time.strftime("%Y%m%d-%H%M%S")), help="the folder for the pictures (OBSERVE_DIR)")
    ap.add_argument("--rate", type=float, default=float(os.environ.get("OBSERVE_RATE") or 10),
                    help="replayed uploads per second besides the workload's (OBSERVE_RATE, default 10)")
    ap.add_argument("--scrape-interval", default=os.environ.get("OBSERVE_SCRAPE_INTERVAL") or "1s")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(os.path.join(out, "capture"), exist_ok=True)
    interval = float(args.scrape_interval.rstrip("s"))
    interrupted = {"yes": False}

    def on_interrupt(signum, frame):
        if interrupted["yes"]:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, no pictures
        interrupted["yes"] = True

    signal.signal(signal.SIGINT, on_interrupt)
    run = Run(out)
    try:
        relay, relay_address, remote = start_relay(run, args.relay, os.environ.get("PYROSCOPE_LISTEN_ADDRESS") or "localhost:4040")
        say("relay (dev mode) on %s -> stand-in Pyroscope %s" % (relay_address, remote))
        prometheus, prometheus_url = start_prometheus(run, args.prometheus, relay_address, args.scrape_interval)
        say("Prometheus: %s  (scraping the relay every %s; try %s/graph?g0.expr=%s)" % (
            prometheus_url, args.scrape_interval, prometheus_url,
            urllib.parse.quote("rate(pyroscope_relay_uploads_delivered_total[1m])")))
        # Prometheus applies new targets every 5 s: start the clock at its first scrape.
        try:
            wait_until(lambda: instant(prometheus_url, 'up{job="pyroscope-relay"}') == 1, 30, "Prometheus's first scrape of the relay")
        except Failure as failure:
            raise Failure("%s; see %s/targets and %s" % (failure, prometheus_url, os.path.join(out, "prometheus.log")))
        say("running %s; Ctrl-C ends it early and still draws" % ("for %gs" % args.seconds if args.seconds > 0 else "until Ctrl-C"))
        start = time.time()
        run_workload(run, sys.executable, relay_address, args.seconds, prometheus_url, interrupted, args.rate)
        time.sleep(2 * interval + 0.5)  # two more scrapes: the last upload's counts reach Prometheus
        end = time.time()
        progress(prometheus_url, end - start)
        say("stopping the relay (SIGTERM drains its queue)")
        status = run.stop(relay)
        if status != 0:
            raise Failure("the relay exited with status %s; see %s" % (status, os.path.join(out, "relay.log")))
        step = max(interval, round((end - start) / 1000))
        try:
            json_path, png_path = relay_chart.write(prometheus_url, start, end, step, interval, out)
        except (OSError, RuntimeError) as error:
            raise Failure("querying Prometheus for the chart: %s; see %s" % (error, os.path.join(out, "prometheus.log")))
        run.stop(prometheus)  # its storage stays in prometheus-data/
        found, written = draw_flame_graphs(out)
    except Failure as failure:
        say("FAIL: %s" % failure)
        return 1
    finally:
        run.stop_all()
    if not any(app == APP for app, _ in written):
        say("FAIL: no flame graph of %s: no profile from it arrived at the stand-in (see %s and the capture/ folder)"
            % (APP, os.path.join(out, "relay.log")))
        return 1
    say("pictures in %s:" % out)
    for path in [p for _, p in written] + [png_path, json_path]:
        print("  " + os.path.relpath(path, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
