#!/usr/bin/env python3
"""Decodes Pyroscope push API bodies (push.v1.PushRequest) with Google's protobuf
runtime: the independent check of the relay's wire-level label rewrite.

Usage: decode_push.py < FRAMES

Reads frames from stdin, each a 4-byte big-endian length and a body (gzipped or plain
protobuf). Prints one JSON list, per frame either
{"series": [{"labels": [[name, value], ...], "samples": [{"raw_profile": hex, "id": str}]}]}
or {"error": "..."} when the body is not a valid PushRequest.

The schema is grafana/pyroscope api/push/v1/push.proto (and types/v1 LabelPair), built
here as a descriptor so no protoc or generated _pb2 module is needed.
"""

import gzip
import json
import struct
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto

SCHEMA = {
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


def push_request_class():
    file = descriptor_pb2.FileDescriptorProto(name="push_labels_check.proto", package="push.v1", syntax="proto3")
    for message, fields in SCHEMA.items():
        proto = file.message_type.add(name=message)
        for name, number, kind, label, type_name in fields:
            field = proto.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = ".push.v1." + type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("push.v1.PushRequest"))


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
    cls = push_request_class()
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
