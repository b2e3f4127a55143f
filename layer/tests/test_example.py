"""examples/python-function: the SAM template validates with cfn-lint and sets only
settings the extension reads; the function runs with the layer's extension inside the
local Lambda (tools/local-lambda/local_lambda.py) and its profiles reach the stand-in Pyroscope."""

import gzip
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import tempfile

import pytest

from conftest import LAMBDA_USER, PRODUCT, ROOT, unpack_layer

EXAMPLE = ROOT / "examples" / "python-function"
CFN_LINT = pathlib.Path(sys.executable).parent / "cfn-lint"
FUNCTION_OWN = {"PYROSCOPE_APPLICATION_NAME", "PYROSCOPE_SERVER_ADDRESS"}  # read by app.py, not the extension


def cfn_lint(template: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(CFN_LINT), str(template)], capture_output=True, text=True, timeout=120)


def test_template_passes_cfn_lint():
    result = cfn_lint(EXAMPLE / "template.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path):
    # The check above means something: the same template with a misspelt property fails.
    broken = tmp_path / "template.yaml"
    broken.write_text((EXAMPLE / "template.yaml").read_text().replace("Handler: app.handler", "Handlr: app.handler"))
    result = cfn_lint(broken)
    assert result.returncode != 0
    assert "'Handlr' was unexpected" in result.stdout


def readme_settings() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)`", section, re.MULTILINE))


def test_template_sets_only_documented_settings():
    template = (EXAMPLE / "template.yaml").read_text()
    variables = set(re.findall(r"^\s+(PYROSCOPE_[A-Z_]+):", template, re.MULTILINE))
    assert "PYROSCOPE_REMOTE_ADDRESS" in variables and "PYROSCOPE_FLUSH_STRATEGY" in variables
    assert variables - FUNCTION_OWN <= readme_settings()


def test_example_function_profiled_through_the_layer_in_local_lambda(layer_zip, runner, tmp_path, sink):
    python = os.environ.get("PYROSCOPE_TEST_PYTHON")
    if not python:
        pytest.fail("PYROSCOPE_TEST_PYTHON (the .venv with pyroscope-io and awslambdaric) is not set: run make test-layer")
    # The layer read-only, as in /opt; the extension runs as Lambda's user (--run-as below).
    extension = unpack_layer(layer_zip) / "extensions" / PRODUCT
    if runner:
        # Another architecture (arm64 on x86_64): a script of the same name starts the
        # binary under qemu-aarch64 with exec, so the process the local Lambda registers,
        # freezes and signals is the extension itself.
        binary = extension
        extension = pathlib.Path(tempfile.mkdtemp(prefix="layer-qemu-")) / PRODUCT
        extension.parent.chmod(0o755)
        extension.write_text(f"#!/bin/sh\nexec {shlex.join([*runner, str(binary)])} \"$@\"\n")
        extension.chmod(0o755)
    run_as = ["--run-as", "%d:%d" % LAMBDA_USER] if os.geteuid() == 0 else []
    relay_port = free_port()
    report = tmp_path / "report.json"
    # pyroscope-io uploads every 10 s from configure(), at the first thaw after that: the third
    # invocation (after two 5.5 s freezes) sends one, and flush strategy end delivers it.
    subprocess.run(
        [python, str(ROOT / "tools" / "local-lambda" / "local_lambda.py"), "--extension", str(extension),
         "--function-dir", str(EXAMPLE), "--handler", "app.handler", "--python", python,
         "--invocations", "3", "--freeze-seconds", "5.5", "--invoke-timeout", "10", "--event", '{"size": 100000}',
         "--report", str(report), "--quiet", *run_as,
         "--env", f"PYROSCOPE_REMOTE_ADDRESS={sink.url}", f"PYROSCOPE_LISTEN_ADDRESS=127.0.0.1:{relay_port}",
         f"PYROSCOPE_SERVER_ADDRESS=http://127.0.0.1:{relay_port}", "PYROSCOPE_FLUSH_STRATEGY=end",
         "PYROSCOPE_APPLICATION_NAME=example.test"],
        check=True, timeout=120, cwd=ROOT)
    result = json.loads(report.read_text())
    assert [invocation["failure"] for invocation in result["invocations"]] == [None] * 3, result["invocations"]
    assert result["extensions"][0]["exit_code"] == 0
    if run_as:
        assert (result["extensions"][0]["uid"], result["extensions"][0]["gid"]) == LAMBDA_USER
    # pyroscope-io 1.4.0 pushes gzip'd protobuf (push.v1) carrying the service name.
    uploads = sink.wait_for(1, timeout=5)
    assert uploads, "no profile reached the stand-in Pyroscope server"
    for path, body in uploads:
        assert path == "/push.v1.PusherService/Push"
        assert b"example.test" in gzip.decompress(body)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
