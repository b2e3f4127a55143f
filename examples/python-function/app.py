"""A Python Lambda function profiled with pyroscope-io, sending through the extension.

pyroscope.configure() runs at import, in the function's init phase. The agent uploads to
the extension's relay on localhost:4040 (PYROSCOPE_SERVER_ADDRESS overrides it), which
answers at once and forwards to your Pyroscope server with the credentials set on the
function (PYROSCOPE_REMOTE_ADDRESS, PYROSCOPE_BASIC_AUTH_*; see template.yaml): the
function itself holds no credentials and never waits on the network.
"""

import hashlib
import os

import pyroscope

pyroscope.configure(
    application_name=os.environ.get("PYROSCOPE_APPLICATION_NAME", "lambda.example"),
    server_address=os.environ.get("PYROSCOPE_SERVER_ADDRESS", "http://localhost:4040"),
    tags={"function": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")},
)


def digest_rounds(data: bytes, rounds: int) -> str:
    for _ in range(rounds):
        data = hashlib.sha256(data).digest()
    return data.hex()


def sort_numbers(count: int) -> int:
    numbers = [(index * 7919) % 100_003 for index in range(count)]
    return sorted(numbers)[count // 2]


def handler(event, context):
    size = int((event or {}).get("size", 200_000))
    with pyroscope.tag_wrapper({"step": "hash"}):
        checksum = digest_rounds(b"pyroscope", size)
    with pyroscope.tag_wrapper({"step": "sort"}):
        median = sort_numbers(size)
    return {"checksum": checksum[:16], "median": median}
