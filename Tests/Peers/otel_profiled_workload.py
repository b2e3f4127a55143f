#!/usr/bin/env python3
"""A Python process profiled by OpenTelemetry's own profiler (PyPI
opentelemetry-sdk-extension-profiling), exporting OTLP profiles where it is told: the real
client of the relay's OTLP shape.

Usage: otel_profiled_workload.py --endpoint URL [--protocol http/protobuf|grpc]
       [--seconds N] [--resource-attributes k=v,...] [--gzip]

The profiler is configured as a user would, through OpenTelemetry's variables
(OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT, _PROTOCOL, OTEL_RESOURCE_ATTRIBUTES,
OTEL_PROFILING_EXPORT_INTERVAL), then stopped with a flush. Exits 0 when every export the
exporter made succeeded, 1 when one failed (the exporter's own log says why on stderr).
"""

import argparse
import logging
import os
import sys
import time


def busy(seconds):
    end = time.monotonic() + seconds
    total = 0
    while time.monotonic() < end:
        total += sum(i * i for i in range(2000))
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--protocol", default="http/protobuf")
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--resource-attributes", default="service.name=otel.test.app")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()

    os.environ["OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT"] = args.endpoint
    os.environ["OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL"] = args.protocol
    os.environ["OTEL_EXPORTER_OTLP_PROFILES_INSECURE"] = "true"
    os.environ["OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT"] = "5"
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = args.resource_attributes
    os.environ["OTEL_PROFILING_EXPORT_INTERVAL"] = "1.0"
    if args.gzip:
        os.environ["OTEL_EXPORTER_OTLP_COMPRESSION"] = "gzip"
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from opentelemetry.sdk.extension.profiling.export.result import ProfileExportResult
    from opentelemetry.sdk.extension.profiling.runtime import Profiler

    profiler = Profiler()
    results = []
    exporter = profiler._exporter  # counted, so a failed export fails the run
    export = exporter.export

    def counted(request):
        result = export(request)
        results.append(result)
        return result

    exporter.export = counted
    profiler.start()
    busy(args.seconds)
    profiler.stop(flush=True)
    failed = [r for r in results if r != ProfileExportResult.SUCCESS]
    print(f"exports: {len(results)}, failed: {len(failed)}", file=sys.stderr)
    return 1 if failed or not results else 0


if __name__ == "__main__":
    sys.exit(main())
