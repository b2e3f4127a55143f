#!/usr/bin/env python3
"""OTLP profiles exports built with OpenTelemetry's own classes (PyPI opentelemetry-proto):
a realistic request (resource with service.name and a client-set faas.name, a scope, one
CPU profile with a dictionary, stacks, samples and timestamps), written as protobuf and as
OTLP/JSON, each plain and gzipped, for the relay's end-to-end label tests.

Usage: otlp_bodies.py > BODIES.json
Prints [{"content_type": ..., "gzip": bool, "hex": body}, ...].
"""

import gzip
import json
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import ExportProfilesServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as p
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


def request():
    strings = ["", "cpu", "nanoseconds", "samples", "count", "handler", "/var/task/app.py", "compute", "thread.name", "MainThread"]
    dictionary = p.ProfilesDictionary(
        string_table=strings,
        mapping_table=[p.Mapping()],
        function_table=[p.Function(), p.Function(name_strindex=5, filename_strindex=6, start_line=10),
                        p.Function(name_strindex=7, filename_strindex=6, start_line=20)],
        location_table=[p.Location(), p.Location(lines=[p.Line(function_index=1, line=12)]),
                        p.Location(lines=[p.Line(function_index=2, line=25)])],
        stack_table=[p.Stack(), p.Stack(location_indices=[2, 1])],
        attribute_table=[p.KeyValueAndUnit(), p.KeyValueAndUnit(key_strindex=8, value=AnyValue(string_value="MainThread"))],
    )
    profile = p.Profile(
        sample_type=p.ValueType(type_strindex=3, unit_strindex=4),
        period_type=p.ValueType(type_strindex=1, unit_strindex=2), period=10_000_000,
        time_unix_nano=1_765_000_000_000_000_000, duration_nano=1_000_000_000, profile_id=bytes(range(16)),
        samples=[p.Sample(stack_index=1, values=[3], attribute_indices=[1],
                          timestamps_unix_nano=[1_765_000_000_100_000_000, 1_765_000_000_200_000_000, 1_765_000_000_300_000_000])],
    )
    resource = Resource(attributes=[
        KeyValue(key="service.name", value=AnyValue(string_value="orders")),
        KeyValue(key="faas.name", value=AnyValue(string_value="client-name")),
        KeyValue(key="process.pid", value=AnyValue(int_value=4242)),
    ])
    return ExportProfilesServiceRequest(
        resource_profiles=[p.ResourceProfiles(
            resource=resource, schema_url="https://opentelemetry.io/schemas/1.37.0",
            scope_profiles=[p.ScopeProfiles(scope=InstrumentationScope(name="otel-python-profiler", version="0.63b4"),
                                            profiles=[profile])])],
        dictionary=dictionary)


def main():
    message = request()
    encodings = [("application/x-protobuf", message.SerializeToString()),
                 ("application/json", json_format.MessageToJson(message).encode())]
    out = []
    for content_type, body in encodings:
        for gzipped in (False, True):
            out.append({"content_type": content_type, "gzip": gzipped, "hex": (gzip.compress(body) if gzipped else body).hex()})
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
