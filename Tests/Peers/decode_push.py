#!/usr/bin/env python3
"""Decodes Pyroscope push API bodies (push.v1.PushRequest) with Google's protobuf
runtime: the independent check of the relay's wire-level label rewrite (PushBodies in
Tests/RelayTestSupport runs it in the test venv).

Usage: decode_push.py < FRAMES

Reads frames from stdin, each a 4-byte big-endian length and a body (gzipped or plain
protobuf). Prints one JSON list, per frame either
{"series": [{"labels": [[name, value], ...], "samples": [{"raw_profile": hex, "id": str}]}]}
or {"error": "..."} when the body is not a valid PushRequest.

The reading is capture.py's push_series, the one reader of push bodies here.
"""

import json
import sys

import capture  # this folder


def main():
    if capture.protobuf_push_request() is None:  # the check is Google's runtime, not the fallback reader
        print("decode_push.py: Google's protobuf runtime is not installed (make venv)", file=sys.stderr)
        return 2

    def decode(body):
        return {"series": [{"labels": [[n, v] for n, v in s.labels],
                            "samples": [{"raw_profile": x.raw_profile.hex(), "id": x.id} for x in s.samples]}
                           for s in capture.push_series(body)]}

    out = capture.decode_frames(sys.stdin.buffer.read(), decode)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
