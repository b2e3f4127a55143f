#!/usr/bin/env bash
# make demo: a real Python process profiled by pyroscope-io sends to the relay on
# localhost:4040 (dev mode), which relays to a local stand-in Pyroscope server; then a
# summary of what that server received.
set -euo pipefail
relay="$1"; python="$2"
cd "$(dirname "$0")/.."
listen="${DEMO_LISTEN_ADDRESS:-localhost:4040}"
seconds="${DEMO_SECONDS:-12}"
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

python3 scripts/capture_server.py --port 0 --port-file "$work/port" --out "$work/received.jsonl" --quiet &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
remote="http://127.0.0.1:$(cat "$work/port")"

echo "== relay: dev mode on $listen -> $remote"
PYROSCOPE_DEV_MODE=true PYROSCOPE_REMOTE_ADDRESS="$remote" PYROSCOPE_LISTEN_ADDRESS="$listen" \
  PYROSCOPE_AUTH_TOKEN=demo-token "$relay" 2> >(tee "$work/relay.log" >&2) &
relay_pid=$!
pids+=($relay_pid)
for _ in $(seq 200); do grep -q "Relay listening" "$work/relay.log" 2>/dev/null && break; sleep 0.05; done
grep -q "Relay listening" "$work/relay.log" || { echo "relay did not start" >&2; exit 1; }

port="${listen##*:}"
echo "== workload: Python + pyroscope-io profiling for ${seconds}s, sending to http://localhost:$port"
"$python" scripts/profiled_workload.py --server "http://localhost:$port" --app-name pyroscope.lambda.demo \
  --seconds "$seconds" --tag env=demo

echo "== stopping the relay (SIGTERM drains its queue)"
kill -TERM "$relay_pid"; wait "$relay_pid" || true

echo "== what the stand-in Pyroscope server received"
python3 scripts/summarize_capture.py "$work/received.jsonl"
