"""Shared paths for the scripts' tests (run by `make test`: pytest -q scripts/tests)."""

import os
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPOSITORY, "scripts")
FIXTURES = os.path.join(REPOSITORY, "Tests", "Fixtures", "clients")
PROMETHEUS = os.environ.get("PROMETHEUS") or os.path.join(REPOSITORY, ".build-tools", "prometheus", "usr", "bin", "prometheus")
sys.path.insert(0, SCRIPTS)
