#!/usr/bin/env bash
# make run: the relay in dev mode on localhost:4040. Without PYROSCOPE_REMOTE_ADDRESS, a
# local capture server stands in for Pyroscope and prints what arrives.
set -euo pipefail
relay="$1"
cd "$(dirname "$0")/.."
export PYROSCOPE_DEV_MODE=true
if [[ -z "${PYROSCOPE_REMOTE_ADDRESS:-}" ]]; then
  work=$(mktemp -d)
  # It follows this script's process, so it answers as long as the relay runs (the relay is
  # not exec'd: this shell waits for it) and stops by itself if the script is killed.
  python3 Tests/Peers/capture_server.py --port 0 --port-file "$work/port" --out "$work/received.jsonl" --follow-pid $$ &
  capture=$!
  trap 'kill $capture 2>/dev/null || true; wait $capture 2>/dev/null || true' EXIT
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  export PYROSCOPE_REMOTE_ADDRESS="http://127.0.0.1:$(cat "$work/port")"
  echo "No PYROSCOPE_REMOTE_ADDRESS: relaying to a local capture server at $PYROSCOPE_REMOTE_ADDRESS (Ctrl-C stops)" >&2
fi
"$relay"
