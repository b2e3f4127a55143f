#!/usr/bin/env python3
"""Decodes a pprof profile with Google's protobuf runtime: an independent check of the
extension's own hand-written encoder.

Usage: decode_pprof.py PROFILE   (gzipped or plain pprof; "-" reads stdin)

Prints JSON: sample_type, period_type, period, time_nanos, duration_nanos, and the
samples as {"functions": [leaf, ..., root], "value": [..]}, heaviest first. Exits 1
when the bytes are not a valid pprof Profile (protobuf parse error, dangling ids,
string indexes out of range).

The schema is github.com/google/pprof/proto/profile.proto, built here as a descriptor
so no protoc is needed.
"""

import gzip
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto

# (message, [(field name, number, type, label, type_name)])
SCHEMA = {
    "Profile": [
        ("sample_type", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, "ValueType"),
        ("sample", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Sample"),
        ("mapping", 3, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Mapping"),
        ("location", 4, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Location"),
        ("function", 5, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Function"),
        ("string_table", 6, F.TYPE_STRING, F.LABEL_REPEATED, None),
        ("drop_frames", 7, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("keep_frames", 8, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("time_nanos", 9, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("duration_nanos", 10, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("period_type", 11, F.TYPE_MESSAGE, F.LABEL_OPTIONAL, "ValueType"),
        ("period", 12, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("comment", 13, F.TYPE_INT64, F.LABEL_REPEATED, None),
        ("default_sample_type", 14, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
    ],
    "ValueType": [
        ("type", 1, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("unit", 2, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
    ],
    "Sample": [
        ("location_id", 1, F.TYPE_UINT64, F.LABEL_REPEATED, None),
        ("value", 2, F.TYPE_INT64, F.LABEL_REPEATED, None),
        ("label", 3, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Label"),
    ],
    "Label": [
        ("key", 1, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("str", 2, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("num", 3, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("num_unit", 4, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
    ],
    "Mapping": [
        ("id", 1, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("memory_start", 2, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("memory_limit", 3, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("file_offset", 4, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("filename", 5, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("build_id", 6, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("has_functions", 7, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
        ("has_filenames", 8, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
        ("has_line_numbers", 9, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
        ("has_inline_frames", 10, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
    ],
    "Location": [
        ("id", 1, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("mapping_id", 2, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("address", 3, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("line", 4, F.TYPE_MESSAGE, F.LABEL_REPEATED, "Line"),
        ("is_folded", 5, F.TYPE_BOOL, F.LABEL_OPTIONAL, None),
    ],
    "Line": [
        ("function_id", 1, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("line", 2, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("column", 3, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
    ],
    "Function": [
        ("id", 1, F.TYPE_UINT64, F.LABEL_OPTIONAL, None),
        ("name", 2, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("system_name", 3, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("filename", 4, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ("start_line", 5, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
    ],
}


def message_class(schema: dict, package: str, root: str, file_name: str):
    """A protobuf message class built from `schema` (name -> fields) at run time: no protoc."""
    file = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for name, fields in schema.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{package}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{root}"))


def profile_class():
    return message_class(SCHEMA, "perftools.profiles", "Profile", "profile.proto")


class Invalid(Exception):
    pass


def decode(data: bytes) -> dict:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    profile = profile_class()()
    profile.ParseFromString(data)
    strings = list(profile.string_table)
    if not strings or strings[0] != "":
        raise Invalid("string_table[0] must be the empty string")

    def text(index):
        if not 0 <= index < len(strings):
            raise Invalid(f"string index {index} out of range")
        return strings[index]

    functions = {f.id: text(f.name) for f in profile.function}
    mappings = {m.id for m in profile.mapping}
    locations = {}
    for location in profile.location:
        if location.mapping_id and location.mapping_id not in mappings:
            raise Invalid(f"location {location.id} names unknown mapping {location.mapping_id}")
        names = []
        for line in location.line:
            if line.function_id not in functions:
                raise Invalid(f"location {location.id} names unknown function {line.function_id}")
            names.append(functions[line.function_id])
        locations[location.id] = names
    types = [(text(t.type), text(t.unit)) for t in profile.sample_type]
    samples = []
    for sample in profile.sample:
        if len(sample.value) != len(types):
            raise Invalid("sample value count differs from sample_type count")
        stack = []
        for location_id in sample.location_id:
            if location_id not in locations:
                raise Invalid(f"sample names unknown location {location_id}")
            stack.extend(locations[location_id])
        samples.append({"functions": stack, "value": list(sample.value)})
    samples.sort(key=lambda s: -s["value"][0] if s["value"] else 0)
    return {
        "sample_type": [list(t) for t in types],
        "period_type": [text(profile.period_type.type), text(profile.period_type.unit)],
        "period": profile.period,
        "time_nanos": profile.time_nanos,
        "duration_nanos": profile.duration_nanos,
        "mappings": [text(m.filename) for m in profile.mapping],
        "samples": samples,
    }


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    try:
        result = decode(data)
    except Exception as error:  # noqa: BLE001 - any failure means "not a valid pprof"
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
