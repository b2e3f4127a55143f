#!/usr/bin/env python3
"""The profiles a stand-in Pyroscope server received, as stacks of function names.

Usage: profiles.py CAPTURE.jsonl [--top N]
  (CAPTURE.jsonl written by capture_server.py --out ... --bodies DIR, DIR being
  CAPTURE.jsonl's folder or --bodies DIR here)

Prints, per application, how many profiles arrived and the top functions by self time.

What it decodes, and with what:
* push.v1 PushRequest (pyroscope-io 1.x, Grafana's current SDKs) and its Connect JSON
  form, read by Tests/Peers/capture.py (the one reader of captures and push bodies, with
  Google's protobuf runtime). Each RawSample's raw_profile is pprof.
* /ingest?format=pprof (legacy clients, the relay's self-profile): the body, or the
  `profile` part of a multipart/form-data body (capture.py, stdlib email parser).
* /ingest?format=jfr (pyroscope-java): the `jfr` part, read by the JDK's own `jfr`
  tool (`jfr print --json --events jdk.ExecutionSample`); needs a JDK on PATH.
* /ingest?format=folded (or lines, or no format): "a;b;c 12" lines.
pprof itself is decoded by Tests/Peers/decode_pprof.py (Google's protobuf runtime).
Stacks are root first; values are samples (nanosecond CPU values divided by the
profile's period), so all formats add up in one unit.
"""

import argparse
import collections
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile

# The tests' peers (Tests/Peers): capture, the one reader of captures and push bodies, and
# decode_pprof (Google's protobuf runtime), both shared with the Swift tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Peers"))
import capture  # noqa: E402
import decode_pprof  # noqa: E402


@dataclasses.dataclass
class Profile:
    """One profile that arrived: its application, format and stacks (root first) -> samples."""

    app: str
    format: str
    stacks: collections.Counter
    error: str = ""


def stacks_from_pprof(data):
    """pprof bytes (gzip or plain) -> Counter of root-first stacks, in samples."""
    decoded = decode_pprof.decode(capture.gunzip(data))
    types = decoded["sample_type"]
    if not types:
        return collections.Counter()
    # The value that matches the period's type (cpu), else pprof's default: the last one.
    period_type = decoded["period_type"]
    index = next((i for i, t in enumerate(types) if t == period_type), len(types) - 1)
    per_sample = decoded["period"] if types[index][1] == "nanoseconds" and decoded["period"] > 0 else 1
    stacks = collections.Counter()
    for sample in decoded["samples"]:
        value = sample["value"][index] / per_sample
        if sample["functions"] and value > 0:
            stacks[tuple(reversed(sample["functions"]))] += value
    return stacks


def stacks_from_folded(text):
    stacks = collections.Counter()
    for line in text.splitlines():
        stack, _, count = line.strip().rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def stacks_from_jfr(data):
    """A JFR recording -> its jdk.ExecutionSample stacks, read by the JDK's `jfr` tool."""
    jfr = shutil.which("jfr")
    if not jfr:
        raise ValueError("JFR needs the JDK's jfr tool on PATH (Debian: openjdk-17-jdk-headless)")
    with tempfile.NamedTemporaryFile(suffix=".jfr") as file:
        file.write(capture.gunzip(data))
        file.flush()
        printed = subprocess.run([jfr, "print", "--json", "--stack-depth", "64", "--events", "jdk.ExecutionSample", file.name],
                                 capture_output=True, check=True, timeout=120).stdout
    stacks = collections.Counter()
    for event in json.loads(printed)["recording"]["events"]:
        frames = ((event.get("values") or {}).get("stackTrace") or {}).get("frames") or []
        names = ["%s.%s" % (f["method"]["type"]["name"], f["method"]["name"]) for f in frames]
        if names:
            stacks[tuple(reversed(names))] += 1
    return stacks


def decode_push(record, body):
    series = capture.push_series(body, capture.header(record.get("headers"), "content-type"))
    return [Profile(dict(s.labels).get("service_name", "(no service_name)"), "pprof", stacks_from_pprof(x.raw_profile))
            for s in series for x in s.samples]


def decode_ingest(record, body):
    app, fmt, data = capture.ingest_profile(record, body)
    if fmt == "pprof":
        return [Profile(app, fmt, stacks_from_pprof(data))]
    if fmt == "jfr":
        return [Profile(app, fmt, stacks_from_jfr(data))]
    if fmt in ("folded", "lines"):
        return [Profile(app, fmt, stacks_from_folded(capture.gunzip(data).decode("utf-8", "replace")))]
    return [Profile(app, fmt, collections.Counter(), "format %r is not decoded here" % fmt)]


def decode_record(record, body):
    """The profiles in one recorded request; a request that fails to decode gives one
    Profile with `error` set, so a caller can say what did not decode."""
    kind = record.get("kind")
    try:
        if kind == "push":
            return decode_push(record, body)
        if kind == "ingest":
            return decode_ingest(record, body)
        return []
    except Exception as error:  # noqa: BLE001 - any failure is reported per upload
        return [Profile("(undecoded)", kind or "?", collections.Counter(), "%s: %s" % (type(error).__name__, error))]


def load_capture(path, bodies_dir=None):
    """Every profile recorded in a capture_server.py JSONL file, in arrival order."""
    return [profile for record, body in capture.records_with_bodies(path, bodies_dir) for profile in decode_record(record, body)]


def by_app(profiles):
    """app -> (number of profiles, merged stacks), in order of first arrival."""
    apps = {}
    for profile in profiles:
        if profile.error:
            continue
        count, stacks = apps.get(profile.app, (0, collections.Counter()))
        stacks.update(profile.stacks)
        apps[profile.app] = (count + 1, stacks)
    return apps


def top_self(stacks, n=10):
    """[(function, self samples, share of all)], heaviest first: self time is the
    samples in which the function is the leaf."""
    total = sum(stacks.values())
    leaves = collections.Counter()
    for stack, value in stacks.items():
        leaves[stack[-1]] += value
    return [(name, value, value / total if total else 0.0) for name, value in leaves.most_common(n)]


def folded_lines(stacks):
    """Brendan Gregg's folded format, the input of every flame graph renderer."""
    return ["%s %d" % (";".join(frame.replace(";", ":") for frame in stack), round(value))
            for stack, value in sorted(stacks.items()) if round(value) > 0]


def format_top(app, count, stacks, n=10):
    lines = ["%s: %d profile(s), %d samples; top functions by self time:" % (app, count, round(sum(stacks.values())))]
    for name, value, share in top_self(stacks, n):
        lines.append("  %6.1f%%  %8d  %s" % (share * 100, round(value), name))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--bodies")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)
    profiles = load_capture(args.capture, args.bodies)
    for profile in profiles:
        if profile.error:
            print("not decoded (%s): %s" % (profile.format, profile.error))
    for app, (count, stacks) in by_app(profiles).items():
        print(format_top(app, count, stacks, args.top))
    return 0 if profiles else 1


if __name__ == "__main__":
    sys.exit(main())
