#!/usr/bin/env bash
# make lambda-local: the extension inside a local Lambda (scripts/local_lambda.py) with a
# Python function profiled by pyroscope-io, relaying to a local stand-in Pyroscope server
# (or PYROSCOPE_REMOTE_ADDRESS when set). LAMBDA_INVOCATIONS, LAMBDA_FREEZE_SECONDS and
# PYROSCOPE_FLUSH_STRATEGY tune the run.
set -euo pipefail
relay="$1"; python="$2"
cd "$(dirname "$0")/.."
work=$(mktemp -d)
capture=""
cleanup() { [[ -n "$capture" ]] && kill "$capture" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
remote="${PYROSCOPE_REMOTE_ADDRESS:-}"
if [[ -z "$remote" ]]; then
  python3 scripts/capture_server.py --port 0 --port-file "$work/port" --out "$work/received.jsonl" --quiet &
  capture=$!
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  remote="http://127.0.0.1:$(cat "$work/port")"
fi
"$python" scripts/local_lambda.py --extension "$relay" --function-dir scripts/lambda_function --handler app.handler \
  --python "$python" --invocations "${LAMBDA_INVOCATIONS:-3}" --freeze-seconds "${LAMBDA_FREEZE_SECONDS:-4}" \
  --event '{"work_ms": 400}' --report "$work/report.json" \
  --env PYROSCOPE_REMOTE_ADDRESS="$remote" --env PYROSCOPE_FLUSH_STRATEGY="${PYROSCOPE_FLUSH_STRATEGY:-end}" \
  --env PYROSCOPE_LOG_LEVEL="${PYROSCOPE_LOG_LEVEL:-info}"
echo "== report: $work/report.json"
if [[ -n "$capture" ]]; then
  echo "== what the stand-in Pyroscope server received"
  python3 scripts/summarize_capture.py "$work/received.jsonl" || true
fi
