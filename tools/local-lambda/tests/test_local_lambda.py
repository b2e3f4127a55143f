"""The local Lambda (tools/local-lambda/local_lambda.py) models each execution model as the reference
facts say (/work/shared/reference/lambda-platform.md), seen by a tiny extension written in
Python (fake_extension.py: registers, polls /event/next, records what it saw) next to the
real awslambdaric runtime running a function profiled by pyroscope-io.

These tests check the emulator, not our extension: they hold whatever the extension does.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest
LOCAL_LAMBDA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tools/local-lambda
REPOSITORY = os.path.dirname(os.path.dirname(LOCAL_LAMBDA))
PEERS = os.path.join(REPOSITORY, "Tests", "Peers")
FAKE_EXTENSION = os.path.join(LOCAL_LAMBDA, "tests", "fake_extension.py")
FUNCTION_DIR = os.path.join(LOCAL_LAMBDA, "lambda_function")
LMI = "lambda-managed-instances"
INVOKE_REFUSED = {"errorType": "Extension.InvalidEventType", "errorMessage": "INVOKE: ErrorInvalidEventType"}

# A function that also says, in its answer, which process ran it and what it was given.
PROBE = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {function_dir!r})
    import app  # the sample function, profiled by pyroscope-io from its import
    KEYS = ("AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_MAX_CONCURRENCY", "_HANDLER", "LAMBDA_TASK_ROOT")

    def handler(event, context):
        answer = app.handler(event, context)
        if event.get("fail"):
            raise RuntimeError("the probe was told to fail")
        return dict(answer, pid=os.getpid(), env={{k: os.environ.get(k) for k in KEYS}})
""")


@pytest.fixture(scope="module")
def python():
    probe = subprocess.run([sys.executable, "-c", "import awslambdaric, pyroscope"], capture_output=True)
    if probe.returncode != 0:
        pytest.fail("these tests need awslambdaric and pyroscope-io in the interpreter running pytest: run make test")
    return sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    def __init__(self, status, report, records, output):
        self.status, self.report, self.records, self.output = status, report, records, output

    def of(self, extension, kind):
        return [r for r in self.records if r["extension"] == extension and r["kind"] == kind]

    def telemetry(self, extension):
        return [(r["type"], r["record_"]) for r in self.of(extension, "telemetry")]

    def events(self, extension):
        return [r["event"]["eventType"] for r in self.of(extension, "event")]

    def env(self, extension):
        return self.of(extension, "start")[0]["env"]

    def extension(self, name):
        return next(e for e in self.report["extensions"] if e["name"] == name)


def local_lambda(tmp_path, *args, extensions=("fake-ext",), env=(), probe=True, timeout=180):
    """Runs the emulator with copies of fake_extension.py under the given names."""
    opt = tmp_path / "opt"
    opt.mkdir(exist_ok=True)
    paths = []
    for name in extensions:
        path = opt / name
        shutil.copy(FAKE_EXTENSION, path)
        path.chmod(0o755)
        paths.append(str(path))
    function_dir, handler = FUNCTION_DIR, "app.handler"
    if probe:
        function_dir, handler = str(tmp_path / "fn"), "probe.handler"
        os.makedirs(function_dir, exist_ok=True)
        (tmp_path / "fn" / "probe.py").write_text(PROBE.format(function_dir=FUNCTION_DIR))
    records, report = tmp_path / "records.jsonl", tmp_path / "report.json"
    command = [sys.executable, os.path.join(LOCAL_LAMBDA, "local_lambda.py"), "--function-dir", function_dir,
               "--handler", handler, "--python", sys.executable, "--report", str(report), "--quiet", *args]
    for path in paths:
        command += ["--extension", path]
    # Nothing listens on the profiler's address unless a test says so: its uploads just fail.
    command += ["--env", f"FAKE_EXT_RECORD={records}", f"PYROSCOPE_SERVER_ADDRESS=http://127.0.0.1:{free_port()}", *env]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    lines = [json.loads(line) for line in records.read_text().splitlines()] if records.exists() else []
    return Run(done.returncode, json.loads(report.read_text()), lines, done.stdout + done.stderr)


def test_lmi_refuses_invoke_registrations_accepts_shutdown_only_and_only_telemetry_2025_01_29(tmp_path, python):
    run = local_lambda(
        tmp_path, "--mode", LMI, "--invocations", "6", "--event", json.dumps({"work_ms": 50, "sleep_ms": 600}),
        extensions=("new-schema", "old-schema"),
        env=["FAKE_EXT_FALLBACK=1", "FAKE_EXT_NEW_SCHEMA_TELEMETRY=2025-01-29", "FAKE_EXT_OLD_SCHEMA_TELEMETRY=2022-12-13"])
    assert run.status == 0, run.output[-3000:]
    assert run.report["mode"] == LMI and run.report["ok"]
    for name in ("new-schema", "old-schema"):
        registrations = run.of(name, "register")
        assert [(r["events"], r["status"]) for r in registrations] == [(["INVOKE", "SHUTDOWN"], 403), (["SHUTDOWN"], 200)]
        assert registrations[0]["answer"] == INVOKE_REFUSED
        assert [(a["events"], a["status"]) for a in run.extension(name)["registrations"]] == \
            [(["INVOKE", "SHUTDOWN"], 403), (["SHUTDOWN"], 200)]
        assert run.events(name) == ["SHUTDOWN"], "an LMI extension never sees an invocation"
        assert run.env(name)["AWS_LAMBDA_INITIALIZATION_TYPE"] == LMI
        assert "AWS_LAMBDA_MAX_CONCURRENCY" not in run.env(name), "the worker count is for the runtime only"
    assert [(s["status"], s["answer"]) for s in run.of("new-schema", "telemetry_subscribe")] == [(200, "OK")]
    refused = run.of("old-schema", "telemetry_subscribe")
    assert [s["status"] for s in refused] == [400] and refused[0]["answer"]["errorType"] == "ValidationError"
    assert sorted((s["extension"], s["schema_version"], s["status"]) for s in run.report["telemetry_subscriptions"]) == \
        [("new-schema", "2025-01-29", 200), ("old-schema", "2022-12-13", 400)]

    platform = run.telemetry("new-schema")
    kinds = [kind for kind, _ in platform]
    assert kinds.count("platform.start") == 6 and kinds.count("platform.report") == 6, kinds
    assert "platform.runtimeDone" not in kinds
    for kind, record in platform:
        if kind == "platform.report":
            assert set(record["metrics"]) == {"durationMs"}, record
            assert [span["name"] for span in record["spans"]] == ["responseLatency", "responseDuration"]
        if kind == "platform.initStart":
            assert record["initializationType"] == LMI

    # Shutdown: runtime SIGTERM, then the telemetry flush, then SHUTDOWN with start + 2 s.
    shutdown = run.report["shutdown"]
    assert shutdown["runtime_sigterm"] <= shutdown["telemetry_flushed"] <= shutdown["sent"]
    received = run.of("new-schema", "event")[0]
    assert received["event"]["shutdownReason"] == "spindown"
    assert received["event"]["deadlineMs"] == shutdown["deadline_ms"]
    assert round(shutdown["deadline"] - shutdown["start"], 3) == 2.0, "deadline = shutdown start + 2 s"
    assert 0 < received["event"]["deadlineMs"] - received["wall"] * 1000 < 2000
    assert all(e["exit_code"] == 0 and not e["killed_at_deadline"] for e in run.report["extensions"])


def test_lmi_invokes_three_worker_processes_concurrently_each_profiled_never_frozen(tmp_path, python):
    capture = subprocess.Popen([sys.executable, os.path.join(PEERS, "capture_server.py"), "--port", "0",
                                "--port-file", str(tmp_path / "port"), "--out", str(tmp_path / "received.jsonl"),
                                "--quiet", "--max-seconds", "120"])
    try:
        for _ in range(200):
            if (tmp_path / "port").exists() and (tmp_path / "port").read_text().strip():
                break
            time.sleep(0.05)
        port = (tmp_path / "port").read_text().strip()
        run = local_lambda(
            tmp_path, "--mode", LMI, "--workers", "3", "--invocations", "9",
            "--event", json.dumps({"work_ms": 100, "sleep_ms": 700}),
            env=["FAKE_EXT_EVENTS=SHUTDOWN", f"PYROSCOPE_SERVER_ADDRESS=http://127.0.0.1:{port}", "PROFILE_UPLOAD_SECONDS=1"])
    finally:
        capture.terminate()
        capture.wait(10)
    assert run.status == 0, run.output[-3000:]
    invocations = run.report["invocations"]
    assert len(invocations) == 9 and all(i["failure"] is None and not i["timeout"] for i in invocations)
    # Each invocation names the worker process that ran it; the function says the same.
    for inv in invocations:
        assert inv["worker_pid"] == inv["response_body"]["pid"], inv
        assert inv["response_body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == LMI
        assert inv["response_body"]["env"]["AWS_LAMBDA_MAX_CONCURRENCY"] == "3"
    workers = {inv["worker_pid"] for inv in invocations}
    assert len(workers) == 3
    assert run.report["function"]["pid"] not in workers, "the workers are children of the runtime process"
    assert {w["pid"] for w in run.report["workers"]} == workers
    # Several in flight at once: the first three overlap, on three different workers.
    assert run.report["max_in_flight"] == 3
    first = invocations[:3]
    assert len({i["worker_pid"] for i in first}) == 3
    assert max(i["start"] for i in first) < min(i["complete"] for i in first), "the first three overlap"
    # Never frozen: no freeze recorded, and the extension's ticker never stopped.
    assert all(i["freeze_start"] is None for i in invocations)
    assert run.of("fake-ext", "gap") == []
    assert run.report["timeline"]["workers_ready"] is not None
    # Every worker's own pyroscope-io agent uploaded (tagged with its pid).
    uploaded_by = set()
    for line in (tmp_path / "received.jsonl").read_text().splitlines():
        record = json.loads(line)
        for series in (record.get("summary") or {}).get("series", []):
            uploaded_by |= {int(value) for key, value in series["labels"] if key == "pid"}
    assert workers <= uploaded_by, (workers, uploaded_by)


@pytest.mark.parametrize("settings, error_type", [
    (["FAKE_EXT_EVENTS=INVOKE,SHUTDOWN"], "Extension.InvalidEventType"),
    (["FAKE_EXT_EVENTS=SHUTDOWN", "FAKE_EXT_CONFIG_KEYS=1"], "InvalidRequestFormat"),
], ids=["insists-on-invoke", "configuration-keys"])
def test_lmi_refused_registration_fails_the_init_of_an_extension_that_gives_up(tmp_path, python, settings, error_type):
    run = local_lambda(tmp_path, "--mode", LMI, "--invocations", "1", env=settings)
    assert run.status == 1, run.output[-3000:]
    assert run.report["ok"] is False and any("init" in f or "fake-ext" in f for f in run.report["failures"])
    refused = run.of("fake-ext", "register")[0]
    assert refused["status"] == 403 and refused["answer"]["errorType"] == error_type
    if error_type == "Extension.InvalidEventType":
        assert refused["answer"] == INVOKE_REFUSED
    assert run.report["invocations"] == [] and run.report["function"]["init_started"] is None


def test_snap_start_snapshot_freezes_everything_then_restore_telemetry_and_no_event_for_extensions(tmp_path, python):
    run = local_lambda(tmp_path, "--mode", "snap-start", "--snapshot-seconds", "2", "--invocations", "2",
                       "--freeze-seconds", "0.2", "--event", json.dumps({"work_ms": 50}),
                       env=["FAKE_EXT_TELEMETRY=2022-12-13"])
    assert run.status == 0, run.output[-3000:]
    tl, restore, function = run.report["timeline"], run.report["restore"], run.report["function"]
    # awslambdaric ends its SnapStart init with /restore/next; the snapshot follows the init.
    assert function["restore_next"] is not None and function["restore_next"] <= tl["init_end"] <= tl["snapshot_start"]
    assert tl["snapshot_end"] - tl["snapshot_start"] >= 2.0
    assert tl["snapshot_end"] <= tl["restore_start"] <= tl["restore_runtime_done"] <= tl["restore_end"] <= tl["first_invoke_start"]
    assert restore["status"] == "success" and restore["runtime_restore_next"] == function["restore_next"]
    # The extension was frozen too (its own ticker saw the snapshot as a gap).
    assert any(gap["seconds"] >= 1.5 for gap in run.of("fake-ext", "gap"))
    # No restore event for extensions: the first event after registering is the INVOKE.
    assert run.events("fake-ext") == ["INVOKE", "INVOKE", "SHUTDOWN"]
    assert run.env("fake-ext")["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"
    assert "AWS_LAMBDA_LOG_GROUP_NAME" not in run.env("fake-ext")
    platform = run.telemetry("fake-ext")
    kinds = [kind for kind, _ in platform]
    for kind in ("platform.restoreStart", "platform.restoreRuntimeDone", "platform.restoreReport"):
        assert kinds.count(kind) == 1, kinds
    assert kinds.index("platform.initReport") < kinds.index("platform.restoreStart") < kinds.index("platform.start")
    records = dict(platform)
    assert records["platform.initStart"]["initializationType"] == "snap-start"
    assert records["platform.restoreRuntimeDone"]["status"] == "success"
    assert records["platform.restoreReport"]["status"] == "success"
    assert records["platform.restoreReport"]["metrics"]["durationMs"] == restore["duration_ms"] > 0
    assert records["platform.restoreStart"]["functionName"] == "local-function"
    first_report = next(record for kind, record in platform if kind == "platform.report")
    assert first_report["metrics"]["restoreDurationMs"] == restore["duration_ms"]
    assert "initDurationMs" not in first_report["metrics"]
    assert run.report["invocations"][0]["response_body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "snap-start"


def test_provisioned_concurrency_waits_frozen_between_init_and_the_first_invoke(tmp_path, python):
    # Two invocations: the first one's platform.report reaches the extension during the second
    # (the last one may still be buffered when SHUTDOWN comes and the extension exits).
    run = local_lambda(tmp_path, "--mode", "provisioned-concurrency", "--pc-idle-seconds", "2", "--invocations", "2",
                       "--freeze-seconds", "0.2", env=["FAKE_EXT_TELEMETRY=2022-12-13"])
    assert run.status == 0, run.output[-3000:]
    tl = run.report["timeline"]
    assert tl["init_end"] <= tl["pc_idle_start"] and tl["pc_idle_end"] <= tl["first_invoke_start"]
    assert tl["first_invoke_start"] - tl["init_end"] >= 2.0
    assert any(gap["seconds"] >= 1.5 for gap in run.of("fake-ext", "gap")), "the extension was frozen meanwhile"
    assert run.env("fake-ext")["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"
    records = run.telemetry("fake-ext")
    assert dict(records)["platform.initStart"]["initializationType"] == "provisioned-concurrency"
    report = next(record for kind, record in records if kind == "platform.report")
    assert "initDurationMs" not in report["metrics"], "provisioned init is not part of an invocation"
    assert run.report["invocations"][0]["response_body"]["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"


def test_refusal_flags_answer_like_lmi_in_any_mode_and_an_extension_that_copes_keeps_the_run_ok(tmp_path, python):
    run = local_lambda(tmp_path, "--refuse-invoke-registration", "--refuse-telemetry", "--invocations", "1",
                       "--freeze-seconds", "0.2", env=["FAKE_EXT_FALLBACK=1", "FAKE_EXT_TELEMETRY=2022-12-13"])
    assert run.status == 0, run.output[-3000:]
    assert run.report["mode"] == "on-demand"
    registrations = run.of("fake-ext", "register")
    assert [(r["status"], r["events"]) for r in registrations] == [(403, ["INVOKE", "SHUTDOWN"]), (200, ["SHUTDOWN"])]
    assert registrations[0]["answer"] == INVOKE_REFUSED
    subscription = run.of("fake-ext", "telemetry_subscribe")[0]
    assert subscription["status"] == 400 and subscription["answer"]["errorType"] == "ValidationError"
    assert [(s["schema_version"], s["status"], s["error_type"]) for s in run.report["telemetry_subscriptions"]] == \
        [("2022-12-13", 400, "ValidationError")]
    assert run.events("fake-ext") == ["SHUTDOWN"]
    # On demand: every process is told so; runtime-only variables stay with the runtime.
    assert run.env("fake-ext")["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert not {"_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_MAX_CONCURRENCY"} & set(run.env("fake-ext"))
    answer = run.report["invocations"][0]["response_body"]
    assert answer["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand" and answer["env"]["_HANDLER"] == "probe.handler"
    assert run.report["invocations"][0]["worker_pid"] == answer["pid"] == run.report["function"]["pid"]


def test_exit_status_is_1_when_an_invocation_fails_or_an_extension_crashes(tmp_path, python):
    run = local_lambda(tmp_path, "--invocations", "2", "--freeze-seconds", "0.2", "--event", json.dumps({"fail": True}),
                       env=["FAKE_EXT_CRASH_AFTER=2"])
    assert run.status == 1, run.output[-3000:]
    failures = run.report["failures"]
    assert any("the function returned an error" in f for f in failures), failures
    assert any("fake-ext" in f for f in failures), failures
    assert "verdict: FAILED" in run.output


def make_lambda_local(tmp_path, **settings):
    env = dict(os.environ, MODE="on-demand", LAMBDA_LISTEN_ADDRESS=f"127.0.0.1:{free_port()}", **settings)
    env.pop("PYROSCOPE_REMOTE_ADDRESS", None)
    done = subprocess.run([os.environ.get("MAKE", "make"), "--no-print-directory", "lambda-local"], cwd=REPOSITORY,
                          env=env, capture_output=True, text=True, timeout=900)
    return done.returncode, done.stdout.rstrip().splitlines(), done.stdout + done.stderr


def test_make_lambda_local_fails_when_the_function_cannot_start(tmp_path):
    status, lines, output = make_lambda_local(tmp_path, LAMBDA_HANDLER="app.no_such_handler", LAMBDA_INVOCATIONS="1")
    assert status != 0, output[-5000:]
    assert lines[-1].startswith("FAIL: the local Lambda (on-demand) says the function or the extension failed: init failed"), output[-3000:]


def test_make_lambda_local_default_run_shows_profiles_arriving(tmp_path):
    status, lines, output = make_lambda_local(tmp_path)
    assert status == 0, output[-5000:]
    assert lines[-1].startswith("OK: ") and "upload(s) reached the stand-in Pyroscope server" in lines[-1], output[-3000:]
    assert "/push.v1.PusherService/Push" in output, "pyroscope-io's profiles, not only other requests"
