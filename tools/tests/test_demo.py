"""`make demo` ends with the top functions of what arrived and a verdict line: OK with the
hottest function, or FAIL with a non-zero exit when no profile arrives (the remote stopped)."""

import os
import re
import subprocess

from conftest import REPOSITORY


def demo(**settings):
    env = dict(os.environ, DEMO_LISTEN_ADDRESS="127.0.0.1:0", **settings)
    run = subprocess.run([os.environ.get("MAKE", "make"), "--no-print-directory", "demo"], cwd=REPOSITORY, env=env,
                         capture_output=True, text=True, timeout=600)
    return run.returncode, run.stdout.rstrip().splitlines(), run.stdout + run.stderr


def test_make_demo_ends_with_ok_and_the_hottest_function():
    status, lines, output = demo(DEMO_SECONDS="4")
    assert status == 0, output[-5000:]
    assert re.fullmatch(r"OK: (1 profile|2 profiles) from pyroscope\.lambda\.demo arrived, hottest function (work_fib|work_hash)", lines[-1]), output[-3000:]
    assert "== top functions by self time, of what arrived" in lines


def test_make_demo_fails_when_no_profile_arrives_because_the_remote_stopped():
    # The stand-in Pyroscope stops as soon as it has bound; the relay keeps retrying.
    status, lines, output = demo(DEMO_SECONDS="3", DEMO_REMOTE_SECONDS="0", PYROSCOPE_TIMEOUT="1s")
    assert status != 0, output[-5000:]
    assert lines[-1].startswith("FAIL: no profile from pyroscope.lambda.demo arrived at the stand-in Pyroscope server"), output[-3000:]
    assert re.search(r"the relay received [1-9][0-9]* upload\(s\) and delivered none", lines[-1]), lines[-1]
