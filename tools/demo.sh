#!/usr/bin/env bash
# make demo: a real Python process profiled by pyroscope-io sends to the relay on
# localhost:4040 (dev mode), which relays to a local stand-in Pyroscope server; then a
# summary of what that server received, its top functions by self time, and a verdict:
# `OK: N profiles from APP arrived, hottest function F`, or FAIL with what to check and
# a non-zero exit.
#   DEMO_SECONDS          how long the workload runs (default 12: two uploads)
#   DEMO_LISTEN_ADDRESS   where the relay listens (default localhost:4040)
#   DEMO_REMOTE_SECONDS   how long the stand-in Pyroscope runs (default: all along);
#                         a short value shows what a run whose remote stopped looks like
set -euo pipefail
relay="$1"; python="$2"
cd "$(dirname "$0")/.."
listen="${DEMO_LISTEN_ADDRESS:-localhost:4040}"
seconds="${DEMO_SECONDS:-12}"
app=pyroscope.lambda.demo
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

python3 Tests/Peers/capture_server.py --port 0 --port-file "$work/port" --out "$work/capture/received.jsonl" \
  --bodies "$work/capture" --max-seconds "${DEMO_REMOTE_SECONDS:-600}" --quiet 2> "$work/capture.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
[[ -s "$work/port" ]] || { cat "$work/capture.log" >&2; echo "FAIL: the stand-in Pyroscope server did not start (its lines are above)" >&2; exit 1; }
remote="http://127.0.0.1:$(cat "$work/port")"

echo "== relay: dev mode on $listen -> $remote"
PYROSCOPE_DEV_MODE=true PYROSCOPE_REMOTE_ADDRESS="$remote" PYROSCOPE_LISTEN_ADDRESS="$listen" PYROSCOPE_SPOOL_DIR="$work/spool" \
  PYROSCOPE_AUTH_TOKEN=demo-token "$relay" 2> >(tee "$work/relay.log" >&2) &
relay_pid=$!
pids+=($relay_pid)
for _ in $(seq 200); do grep -q "Relay listening" "$work/relay.log" 2>/dev/null && break; sleep 0.05; done
grep -q "Relay listening" "$work/relay.log" || { echo "FAIL: the relay did not start: check its lines above (is $listen taken? DEMO_LISTEN_ADDRESS picks another)" >&2; exit 1; }
# The address it bound (the first of `addresses=`): port 0 in DEMO_LISTEN_ADDRESS picks a free one.
listen=$(sed -n 's/.*msg="Relay listening" addresses="\([^",]*\).*/\1/p' "$work/relay.log" | head -1)

echo "== workload: Python + pyroscope-io profiling for ${seconds}s, sending to http://$listen"
"$python" Tests/Peers/profiled_workload.py --server "http://$listen" --app-name "$app" \
  --seconds "$seconds" --tag env=demo || echo "(the workload exited with status $?)"

# The relay's own counts, for the verdict to say where uploads stopped if none arrived.
"$python" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
  "http://$listen/metrics" > "$work/relay-metrics.txt" 2>/dev/null || true

echo "== stopping the relay (SIGTERM drains its queue)"
kill -TERM "$relay_pid"; wait "$relay_pid" || true

echo "== what the stand-in Pyroscope server received"
python3 tools/summarize_capture.py "$work/capture/received.jsonl" || true
echo
"$python" tools/demo_verdict.py "$work/capture/received.jsonl" --app "$app" --remote "$remote" --listen "$listen" \
  --metrics "$work/relay-metrics.txt"
