#!/usr/bin/env python3
"""The profiles a stand-in Pyroscope server received, as stacks of function names.

Usage: profiles.py CAPTURE.jsonl [--top N]
  (CAPTURE.jsonl written by capture_server.py --out ... --bodies DIR, DIR being
  CAPTURE.jsonl's folder or --bodies DIR here)

Prints, per application, how many profiles arrived and the top functions by self time.

What it decodes, and with what:
* push.v1 PushRequest (pyroscope-io 1.x, Grafana's current SDKs): protobuf, parsed
  with Google's protobuf runtime from a descriptor built here (no protoc), like
  decode_pprof.py; the Connect JSON form too. Each RawSample's raw_profile is pprof.
* /ingest?format=pprof (legacy clients, the relay's self-profile): the body, or the
  `profile` part of a multipart/form-data body (stdlib email parser).
* /ingest?format=jfr (pyroscope-java): the `jfr` part, read by the JDK's own `jfr`
  tool (`jfr print --json --events jdk.ExecutionSample`); needs a JDK on PATH.
* /ingest?format=folded (or lines, or no format): "a;b;c 12" lines.
pprof itself is decoded by decode_pprof.py (Google's protobuf runtime).
Stacks are root first; values are samples (nanosecond CPU values divided by the
profile's period), so all formats add up in one unit.
"""

import argparse
import base64
import collections
import dataclasses
import email.parser
import email.policy
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

from google.protobuf import descriptor_pb2

# decode_pprof is a test peer (Tests/Peers), shared with the Swift tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "Peers"))
import decode_pprof  # noqa: E402

F = descriptor_pb2.FieldDescriptorProto

# github.com/grafana/pyroscope api/push/v1/push.proto (the fields a client sends).
PUSH_SCHEMA = {
    "PushRequest": [("series", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, "RawProfileSeries")],
    "RawProfileSeries": [
        ("labels", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, "LabelPair"),
        ("samples", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, "RawSample"),
    ],
    "LabelPair": [
        ("name", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ("value", 2, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
    ],
    "RawSample": [
        ("raw_profile", 1, F.TYPE_BYTES, F.LABEL_OPTIONAL, None),
        ("ID", 2, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
    ],
}


PushRequest = decode_pprof.message_class(PUSH_SCHEMA, "push.v1", "PushRequest", "push.proto")


@dataclasses.dataclass
class Profile:
    """One profile that arrived: its application, format and stacks (root first) -> samples."""

    app: str
    format: str
    stacks: collections.Counter
    error: str = ""


def _gunzip(data):
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _header(headers, name):
    return ",".join(v for k, v in headers if k.lower() == name)


def stacks_from_pprof(data):
    """pprof bytes (gzip or plain) -> Counter of root-first stacks, in samples."""
    decoded = decode_pprof.decode(_gunzip(data))
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
        file.write(_gunzip(data))
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


def multipart_parts(content_type, body):
    """name -> bytes of a multipart/form-data body (stdlib email parser)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise ValueError("not a multipart body")
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


def decode_push(record, body):
    data = _gunzip(body)
    if "json" in _header(record.get("headers") or [], "content-type").lower():
        series = [([(l.get("name", ""), l.get("value", "")) for l in s.get("labels") or []],
                   [base64.b64decode(x.get("rawProfile", "")) for x in s.get("samples") or []])
                  for s in json.loads(data).get("series") or []]
    else:
        request = PushRequest()
        request.ParseFromString(data)
        series = [([(l.name, l.value) for l in s.labels], [x.raw_profile for x in s.samples]) for s in request.series]
    profiles = []
    for labels, raw_profiles in series:
        app = dict(labels).get("service_name", "(no service_name)")
        for raw in raw_profiles:
            profiles.append(Profile(app, "pprof", stacks_from_pprof(raw)))
    return profiles


def decode_ingest(record, body):
    query = urllib.parse.parse_qs(record.get("query") or "", keep_blank_values=True)
    app = (query.get("name") or ["(no name)"])[0].split("{", 1)[0]
    fmt = (query.get("format") or ["folded"])[0]
    content_type = _header(record.get("headers") or [], "content-type")
    parts = multipart_parts(content_type, body) if content_type.lower().startswith("multipart/") else None
    if fmt == "pprof":
        return [Profile(app, fmt, stacks_from_pprof(parts["profile"] if parts else body))]
    if fmt == "jfr":
        return [Profile(app, fmt, stacks_from_jfr(parts["jfr"] if parts else body))]
    if fmt in ("folded", "lines"):
        return [Profile(app, fmt, stacks_from_folded(_gunzip(body).decode("utf-8", "replace")))]
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
    bodies_dir = bodies_dir or os.path.dirname(os.path.abspath(path))
    profiles = []
    if not os.path.exists(path):
        return profiles
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if not record.get("body_file"):
                continue
            with open(os.path.join(bodies_dir, record["body_file"]), "rb") as body:
                profiles.extend(decode_record(record, body.read()))
    return profiles


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
