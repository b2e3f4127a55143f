"""Local AWS Lambda emulator: runs Lambda extensions and a Python function (awslambdaric)
with Lambda's lifecycle - Extensions API, Runtime API, Telemetry API, freezes between
invocations, init/invoke/shutdown deadlines - in one of Lambda's execution models
(on-demand, provisioned-concurrency, snap-start, lambda-managed-instances), and writes a
JSON report of what happened.

Entry point: tools/local-lambda/local_lambda.py (or `python -m local_lambda` from tools/local-lambda/).
"""

from .cli import main

__all__ = ["main"]
