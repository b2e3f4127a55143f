#!/usr/bin/env python3
"""Decodes Pyroscope push API bodies (push.v1.PushRequest) with Google's protobuf
runtime: the independent check of the relay's wire-level label rewrite.

Usage: decode_push.py < FRAMES

Reads frames from stdin, each a 4-byte big-endian length and a body (gzipped or plain
protobuf). Prints one JSON list, per frame either
{"series": [{"labels": [[name, value], ...], "samples": [{"raw_profile": hex, "id": str}]}]}
or {"error": "..."} when the body is not a valid PushRequest.

The schema is grafana/pyroscope api/push/v1/push.proto (and types/v1 LabelPair), the one
tools/profiles.py builds as a descriptor, so no protoc or generated _pb2 module is needed.
"""

import gzip
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools"))
from profiles import PushRequest  # noqa: E402  (the one push.v1 schema of the scripts)


def decode(cls, body):
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    request = cls()
    request.ParseFromString(body)
    return {
        "series": [
            {
                "labels": [[label.name, label.value] for label in series.labels],
                "samples": [{"raw_profile": sample.raw_profile.hex(), "id": sample.ID} for sample in series.samples],
            }
            for series in request.series
        ]
    }


def main():
    cls = PushRequest
    data = sys.stdin.buffer.read()
    out, offset = [], 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        body = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
        try:
            out.append(decode(cls, body))
        except Exception as error:  # a parse failure is an answer, not a crash
            out.append({"error": "%s: %s" % (type(error).__name__, error)})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
