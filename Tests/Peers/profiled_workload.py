#!/usr/bin/env python3
"""A real Python process profiled by pyroscope-io (1.4.0), for end-to-end tests.

Usage:
  python Tests/Peers/profiled_workload.py --server http://localhost:4040 \\
      --app-name pyroscope.lambda.demo --seconds 12 \\
      [--tag key=value ...] [--auth-token T] [--basic-auth USER:PASS] \\
      [--tenant-id ID] [--shutdown {exit,explicit}] [--enable-logging]

Needs `pip install pyroscope-io==1.4.0` (run it with /work/main/.venv/bin/python).

It calls pyroscope.configure(), burns CPU for --seconds in clearly named
functions (work_fib: recursive Fibonacci, work_hash: SHA-256 chains), then
exits normally. pyroscope-io uploads every 10 s counted from configure()
(POST <server>/push.v1.PusherService/Push) and sends a final partial upload
when the process exits normally; nothing is sent on SIGTERM/SIGKILL.
So --seconds 12 gives two uploads: one at ~10 s and one at exit (~12 s).
SIGINT (Ctrl-C) ends the burn early and exits normally, so the final upload is sent.

--auth-token T is sent as `Authorization: Bearer T` through http_headers
(pyroscope-io 1.x has no auth_token option; 0.8.x had one).

--shutdown exit (default) relies on the agent's own flush at interpreter
exit; --shutdown explicit calls pyroscope.shutdown(), which sends the final
partial upload synchronously before it returns. With 1.4.0 both delivered the
final upload in every trial (3 s, 12 s and 21 s runs), so shutdown() is not
needed; it is kept as an option.
"""

import argparse
import hashlib
import sys
import time


def log(msg):
    print("profiled_workload: %s" % msg, file=sys.stderr, flush=True)


def work_fib(n):
    if n < 2:
        return n
    return work_fib(n - 1) + work_fib(n - 2)


def work_hash(rounds):
    h = b"pyroscope"
    for _ in range(rounds):
        h = hashlib.sha256(h).digest()
    return h


def burn(seconds):
    """Alternate between the two workloads until `seconds` have elapsed."""
    deadline = time.monotonic() + seconds
    iterations = 0
    try:
        while time.monotonic() < deadline:
            work_fib(22)        # ~10-20 ms per call
            work_hash(20000)    # ~10-20 ms per call
            iterations += 1
    except KeyboardInterrupt:  # make observe's Ctrl-C: stop early; the final upload still goes at exit
        log("interrupted: stopping early")
    return iterations


def parse_tag(s):
    if "=" not in s:
        raise argparse.ArgumentTypeError("tag must be key=value, got %r" % s)
    k, v = s.split("=", 1)
    if not k:
        raise argparse.ArgumentTypeError("empty tag key in %r" % s)
    return k, v


def main(argv=None):
    ap = argparse.ArgumentParser(description="CPU-burning process profiled by pyroscope-io.")
    ap.add_argument("--server", default="http://localhost:4040",
                    help="Pyroscope server address (default http://localhost:4040)")
    ap.add_argument("--app-name", default="pyroscope.lambda.demo")
    ap.add_argument("--seconds", type=float, default=12.0, help="how long to burn CPU")
    ap.add_argument("--tag", action="append", type=parse_tag, default=[],
                    metavar="KEY=VALUE", help="static tag, repeatable")
    ap.add_argument("--auth-token", help="sent as 'Authorization: Bearer T'")
    ap.add_argument("--basic-auth", metavar="USER:PASS",
                    help="basic_auth_username/password (Authorization: Basic ...)")
    ap.add_argument("--tenant-id", help="sent as X-Scope-OrgID")
    ap.add_argument("--shutdown", choices=["exit", "explicit"], default="exit",
                    help="exit: rely on the flush at interpreter exit (default); "
                         "explicit: call pyroscope.shutdown() before exiting")
    ap.add_argument("--enable-logging", action="store_true",
                    help="turn on pyroscope-io agent logging")
    args = ap.parse_args(argv)

    try:
        import pyroscope
    except ImportError:
        log("pyroscope-io is not installed; run: pip install pyroscope-io==1.4.0")
        return 2

    if args.enable_logging:
        import logging
        logging.basicConfig(level=logging.DEBUG)

    kwargs = dict(
        application_name=args.app_name,
        server_address=args.server,
        tags=dict(args.tag),
        enable_logging=args.enable_logging,
    )
    headers = {}
    if args.auth_token:
        headers["Authorization"] = "Bearer %s" % args.auth_token
    if headers:
        kwargs["http_headers"] = headers
    if args.basic_auth:
        user, _, password = args.basic_auth.partition(":")
        kwargs["basic_auth_username"] = user
        kwargs["basic_auth_password"] = password
    if args.tenant_id:
        kwargs["tenant_id"] = args.tenant_id

    t0 = time.monotonic()
    pyroscope.configure(**kwargs)
    log("start: app=%s server=%s tags=%s seconds=%g shutdown=%s pid-time=%s"
        % (args.app_name, args.server, dict(args.tag), args.seconds, args.shutdown,
           time.strftime("%H:%M:%S")))

    iterations = burn(args.seconds)

    if args.shutdown == "explicit":
        t1 = time.monotonic()
        ok = pyroscope.shutdown()
        log("pyroscope.shutdown() returned %r after %.2fs" % (ok, time.monotonic() - t1))
    log("end: %d iterations in %.2fs since configure(); exiting normally (%s)"
        % (iterations, time.monotonic() - t0,
           "final upload was sent by shutdown()" if args.shutdown == "explicit"
           else "pyroscope-io sends the final upload at interpreter exit"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
