#!/usr/bin/env python3
"""Decodes OTLP profiles exports (ExportProfilesServiceRequest, v1development) with
OpenTelemetry's own classes (PyPI opentelemetry-proto) on Google's protobuf runtime: the
independent check of the relay's resource-attribute rewrite (OTLPBodies in
Tests/RelayTestSupport runs it in the test venv).

Usage: decode_otlp.py < FRAMES

Each frame: a 4-byte big-endian length, then a body (protobuf or OTLP/JSON, gzipped or
not: a JSON body starts with '{' once inflated). Prints one JSON list, per
frame either
{"resources": [[[key, kind, text], ...], ...], "rest": hex}
(the attributes of each ResourceProfiles' resource: kind string_value, int_value, bool_value
..., text the value as text (booleans as true/false), and the whole
request with those attributes taken out, serialized deterministically: what must not change)
or {"error": "..."} when the body is not a valid export.
"""

import gzip
import json
import sys

import capture  # this folder


def text(value):
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    held = getattr(value, kind)
    if kind == "bool_value":
        return "true" if held else "false"
    return str(held) if kind in ("string_value", "int_value", "double_value") else held.__class__.__name__


def decode(body):
    from google.protobuf import json_format
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import ExportProfilesServiceRequest

    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    request = ExportProfilesServiceRequest()
    if body[:1] == b"{":  # a protobuf export starts with a field key, never 0x7B (field 15, a group)
        json_format.Parse(body.decode("utf-8"), request)
    else:
        request.ParseFromString(body)
    resources = []
    for resource_profiles in request.resource_profiles:
        resource = resource_profiles.resource
        resources.append([[a.key, a.value.WhichOneof("value") or "", text(a.value)] for a in resource.attributes])
        del resource.attributes[:]
        # A resource the relay made holds only its attributes: without them it is absent.
        if resource.ByteSize() == 0:
            resource_profiles.ClearField("resource")
    return {"resources": resources, "rest": request.SerializeToString(deterministic=True).hex()}


def main():
    try:
        import opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2  # noqa: F401
    except ImportError:
        print("decode_otlp.py: opentelemetry-proto is not installed (make venv)", file=sys.stderr)
        return 2
    out = capture.decode_frames(sys.stdin.buffer.read(), decode)
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
