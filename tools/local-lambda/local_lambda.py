#!/usr/bin/env python3
"""Run a Lambda extension and a Python function locally with Lambda's lifecycle.

    python3 tools/local-lambda/local_lambda.py --extension .build/debug/pyroscope-lambda-extension \
        --function-dir tools/local-lambda/lambda_function --handler app.handler \
        --python .venv/bin/python --invocations 3 --report /tmp/report.json \
        [--mode on-demand|provisioned-concurrency|snap-start|lambda-managed-instances]

Exit status: 0 when the function and every extension worked, 1 when not, 2 for bad options.

See tools/local-lambda/README.md and local_lambda/ for the implementation (standard library only).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from local_lambda.cli import main  # noqa: E402  (the package directory next to this file)

if __name__ == "__main__":
    sys.exit(main())
