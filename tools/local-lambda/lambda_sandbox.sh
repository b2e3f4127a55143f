#!/usr/bin/env bash
# lambda_sandbox.sh COMMAND [ARG...]: runs COMMAND as a Lambda execution environment is laid
# out: a network namespace of its own with only loopback up (nothing it starts can reach or be
# reached from the machine's network, and its ports, 4040 and the Telemetry listener's, collide
# with nobody's), and a /tmp of its own, empty at the start (so the extension's default spool
# folder is new, as in each Lambda environment; LAMBDA_SANDBOX_PRIVATE_TMP=1 says so inside).
# Extensions inside still drop to Lambda's unprivileged user themselves (local_lambda.py
# --run-as, the layer tests' setpriv).
# Where the machine gives no namespace (not root, no unshare or ip, or unshare refused, as in
# some containers) it says so and runs COMMAND as it is. LAMBDA_SANDBOX_NETNS=0 turns it off.
set -euo pipefail
[[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
if [[ "${LAMBDA_SANDBOX_NETNS:-1}" != 0 && -z "${LAMBDA_SANDBOX_INSIDE:-}" ]]; then
  why=""
  if [[ $(id -u) -ne 0 ]]; then why="not root"
  elif ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then why="unshare or ip (util-linux, iproute2) missing"
  elif ! unshare --net --mount true 2>/dev/null; then why="unshare --net --mount refused here"
  fi
  if [[ -z "$why" ]]; then
    exec env LAMBDA_SANDBOX_INSIDE=1 LAMBDA_SANDBOX_PRIVATE_TMP=1 unshare --net --mount --propagation private -- \
      bash -c 'mount -t tmpfs -o mode=1777 lambda-tmp /tmp && ip link set lo up && exec "$@"' lambda-sandbox "$@"
  fi
  echo "note: no private network namespace ($why): running in this machine's network" >&2
fi
# Said inside too when no namespace was made: a script that re-executes itself here stops.
LAMBDA_SANDBOX_INSIDE=1 exec "$@"
