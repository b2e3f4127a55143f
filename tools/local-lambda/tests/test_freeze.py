"""A freeze that stops the network with an upload on the wire (Benchmarks/freeze.py: the local
Lambda's freezes drop the environment's packets to and from the remote, which sits behind a
load balancer's patience of 4 s; freezes last 12 s): the default strategy stores every upload
exactly once although the freezes catch uploads on the wire (their answers lost: the relay,
which resent them before, was storing them twice).

Needs root (a network namespace, iptables: `make test` installs it) and the relay binary
(RELAY_BINARY, set by `make test`)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

LOCAL_LAMBDA = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPOSITORY = os.path.dirname(os.path.dirname(LOCAL_LAMBDA))


def test_the_default_strategy_stores_each_upload_once_across_freezes_that_stop_the_network():
    relay = os.environ.get("RELAY_BINARY")
    assert relay and os.access(relay, os.X_OK), "RELAY_BINARY (make test sets it)"
    if os.geteuid() != 0:
        pytest.skip("needs root: a network namespace and iptables, as Lambda's freeze is emulated")
    assert shutil.which("iptables"), "iptables (make test installs it)"
    # Outside /tmp: the sandbox gives the run a /tmp of its own.
    out = tempfile.mkdtemp(prefix="freeze-test-", dir=os.path.join(REPOSITORY, ".build"))
    try:
        done = subprocess.run(
            [os.path.join(LOCAL_LAMBDA, "lambda_sandbox.sh"), sys.executable, os.path.join(REPOSITORY, "Benchmarks", "freeze.py"),
             "--binary", relay, "--python", sys.executable, "--quick", "--out", out],
            capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        [result] = [name for name in os.listdir(out) if name.endswith("-freeze.json")]
        with open(os.path.join(out, result)) as f:
            rows = {row["strategy"]: row["result"] for row in json.load(f)}
    finally:
        shutil.rmtree(out, ignore_errors=True)
    default = rows["background (default)"]
    assert default["ok"] and default["made"] == 3, default
    assert default["once"] == 3 and default["duplicated"] == 0 and default["lost"] == 0, default
    # The freezes did catch uploads on the wire: their answers were lost, and not resent.
    assert default["unconfirmed"] >= 1, default
