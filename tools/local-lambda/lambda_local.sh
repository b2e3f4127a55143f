#!/usr/bin/env bash
# make lambda-local [MODE=...]: the extension inside a local Lambda (tools/local-lambda/local_lambda.py)
# with a Python function profiled by pyroscope-io, relaying to a local stand-in Pyroscope
# server (or PYROSCOPE_REMOTE_ADDRESS when set). Ends with a verdict line, OK or FAIL; FAIL
# (exit 1) when the function or the extension failed, or when no profile reached the stand-in.
#   MODE                   on-demand (default), provisioned-concurrency, snap-start or
#                          lambda-managed-instances
#   LAMBDA_INVOCATIONS     invocations (default 3; lambda-managed-instances 24)
#   LAMBDA_FREEZE_SECONDS  freeze after each invocation (default 5.5)
#   LAMBDA_HANDLER         the function's handler (default app.handler)
#   LAMBDA_FUNCTION_DIR    the function's folder (default tools/local-lambda/lambda_function)
#   LAMBDA_LISTEN_ADDRESS  where the extension listens and the function sends (default localhost:4040)
#   PYROSCOPE_FLUSH_STRATEGY, PYROSCOPE_LOG_LEVEL  passed to the extension
#   PYROSCOPE_LAMBDA_LABELS  passed to the extension (default true: the stand-in's uploads
#                          must then carry faas_name and the rest, shown in the verdict)
#   LAMBDA_RUN_AS          the extension's user:group when run as root (default 993:990, Lambda's
#                          sbx_user1051; "root" keeps root)
#   PROFILER               the function's profiler: pyroscope (default; pyroscope-io, push) or otel
#                          (OpenTelemetry's Python profiler, OTLP profiles over HTTP; the verdict then
#                          needs OTLP uploads, labelled)
#   MEMORY                 the function's memory size in MB: Lambda's CPU quota for it (128 MB: 7.2 %
#                          of one CPU over 20 ms periods) and memory limit, as a cgroup holding the
#                          extension and the function (unset: no quota, 128 MB in the environment)
# As Lambda runs it: the extension as an unprivileged user, and (with the local stand-in, which
# lives inside it too) the whole run in a network namespace of its own (tools/local-lambda/lambda_sandbox.sh).
# Why these defaults: pyroscope-io uploads every 10 s from its start in the function's init,
# and its clock stands still while the environment is frozen; the default run lasts past
# that (three invocations 5.5 s apart; on lambda-managed-instances, never frozen, 12 s of
# traffic), so the first profile goes out during the run, not into the shutdown.
set -euo pipefail
relay="$1"; python="$2"
cd "$(dirname "$0")/../.."
# A remote of the user's own is outside any private namespace: then the machine's network.
if [[ -z "${PYROSCOPE_REMOTE_ADDRESS:-}" && -z "${LAMBDA_SANDBOX_INSIDE:-}" ]]; then
  exec tools/local-lambda/lambda_sandbox.sh "$0" "$@"
fi
run_as=()
if [[ $(id -u) -eq 0 && "${LAMBDA_RUN_AS:-993:990}" != root ]]; then run_as=(--run-as "${LAMBDA_RUN_AS:-993:990}"); fi
# Absolute: the runtime starts in the function's folder, where a relative path names nothing.
python="$(cd "$(dirname "$python")" && pwd)/$(basename "$python")"
mode="${MODE:-on-demand}"
profiler="${PROFILER:-pyroscope}"
case "$profiler" in pyroscope|otel) ;; *) echo "FAIL: PROFILER=$profiler: not pyroscope or otel" >&2; exit 2 ;; esac
lambda_labels="${PYROSCOPE_LAMBDA_LABELS:-true}"
listen="${LAMBDA_LISTEN_ADDRESS:-localhost:4040}"
work=$(mktemp -d)
# A /tmp of its own (lambda_sandbox.sh): the extension's default spool, new as in Lambda. Else
# a spool folder of this run's, writable by the extension's user.
spool_env=()
if [[ -z "${LAMBDA_SANDBOX_PRIVATE_TMP:-}" ]]; then
  mkdir "$work/spool" && spool_env=(PYROSCOPE_SPOOL_DIR="$work/spool")
  if [[ ${#run_as[@]} -gt 0 ]]; then chmod 755 "$work" && chown "${run_as[1]}" "$work/spool"; fi
fi
capture=""
cleanup() { [[ -n "$capture" ]] && kill "$capture" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT
remote="${PYROSCOPE_REMOTE_ADDRESS:-}"
if [[ -z "$remote" ]]; then
  python3 Tests/Peers/capture_server.py --port 0 --port-file "$work/port" --out "$work/received.jsonl" --quiet &
  capture=$!
  for _ in $(seq 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
  [[ -s "$work/port" ]] || { echo "FAIL: the stand-in Pyroscope server did not start" >&2; exit 1; }
  remote="http://127.0.0.1:$(cat "$work/port")"
fi

case "$mode" in
  lambda-managed-instances)
    # Three worker processes, a new invocation every 0.5 s, each 0.3 s of CPU and 1 s of
    # waiting: about three in flight at once.
    mode_args=(--workers 3 --invoke-interval 0.5)
    invocations="${LAMBDA_INVOCATIONS:-24}"; event='{"work_ms": 300, "sleep_ms": 1000}' ;;
  on-demand|provisioned-concurrency|snap-start)
    mode_args=(--freeze-seconds "${LAMBDA_FREEZE_SECONDS:-5.5}")
    invocations="${LAMBDA_INVOCATIONS:-3}"; event='{"work_ms": 400}' ;;
  *) echo "FAIL: MODE=$mode: not one of on-demand, provisioned-concurrency, snap-start, lambda-managed-instances" >&2; exit 2 ;;
esac

echo "== local Lambda, $mode: extension $relay${run_as:+ as ${run_as[1]}}, $profiler-profiled function ${LAMBDA_FUNCTION_DIR:-tools/local-lambda/lambda_function} (${LAMBDA_HANDLER:-app.handler}) -> $remote"
status=0
"$python" tools/local-lambda/local_lambda.py --mode "$mode" "${mode_args[@]}" "${run_as[@]}" --extension "$relay" \
  --function-dir "${LAMBDA_FUNCTION_DIR:-tools/local-lambda/lambda_function}" --handler "${LAMBDA_HANDLER:-app.handler}" \
  --python "$python" --invocations "$invocations" --event "$event" --report "$work/report.json" \
  ${MEMORY:+--memory "$MEMORY"} \
  --env "${spool_env[@]}" \
  PYROSCOPE_REMOTE_ADDRESS="$remote" PYROSCOPE_FLUSH_STRATEGY="${PYROSCOPE_FLUSH_STRATEGY:-end}" \
  PYROSCOPE_LOG_LEVEL="${PYROSCOPE_LOG_LEVEL:-info}" PYROSCOPE_LISTEN_ADDRESS="$listen" PYROSCOPE_LAMBDA_LABELS="$lambda_labels" \
  PYROSCOPE_SERVER_ADDRESS="http://$listen" FUNCTION_PROFILER="$profiler" || status=$?
echo "== report: $work/report.json"
uploads=0
if [[ -n "$capture" ]]; then
  echo "== what the stand-in Pyroscope server received"
  python3 tools/summarize_capture.py "$work/received.jsonl" || true
  uploads=$(grep -c . "$work/received.jsonl" 2>/dev/null || true)
fi
echo
if [[ $status -ne 0 ]]; then
  reasons=$("$python" -c 'import json, sys; print("; ".join(json.load(open(sys.argv[1]))["failures"]))' "$work/report.json" 2>/dev/null || true)
  echo "FAIL: the local Lambda ($mode) says the function or the extension failed: ${reasons:-see above}"
  exit 1
fi
if [[ -n "$capture" && "${uploads:-0}" -eq 0 ]]; then
  echo "FAIL: no upload reached the stand-in Pyroscope server ($mode): check the extension's lines above"
  exit 1
fi
otlp=$(grep -c '"kind": *"otlp"' "$work/received.jsonl" 2>/dev/null || true)
if [[ -n "$capture" && "$profiler" == otel && "${otlp:-0}" -eq 0 ]]; then
  echo "FAIL: PROFILER=otel but no OTLP profiles export reached the stand-in Pyroscope server ($mode)"
  exit 1
fi
labelled=""
# Off as the extension reads it (Go's strconv.ParseBool false values): nothing to check.
if [[ -n "$capture" && ! "$lambda_labels" =~ ^(false|FALSE|False|f|F|0)$ ]]; then
  if ! labelled=$(python3 tools/summarize_capture.py --lambda-labels "$work/received.jsonl"); then
    echo "FAIL: PYROSCOPE_LAMBDA_LABELS=$lambda_labels but not every profile reaching the stand-in carries faas_name ($mode): seen ${labelled:-none}"
    exit 1
  fi
  labelled=", labelled $labelled"
fi
if [[ -n "$capture" ]]; then
  echo "OK: $uploads upload(s) reached the stand-in Pyroscope server through the extension ($mode)$labelled"
else
  echo "OK: the function and the extension ran ($mode); uploads went to $remote"
fi
