#!/usr/bin/env python3
"""make demo's last word: the top functions of what arrived, and OK or FAIL.

Usage: demo_verdict.py CAPTURE.jsonl --app APP [--metrics RELAY_METRICS.txt]
           [--remote URL] [--listen ADDRESS] [--top N]

CAPTURE.jsonl is capture_server.py's record (written with --bodies, so the profiles
can be decoded; see profiles.py). Prints the top functions by self time of each
application that arrived, then one line:
  OK: N profiles from APP arrived, hottest function F        (exit 0)
  FAIL: what did not happen, and what to check               (exit 1)
--metrics is the relay's GET /metrics text, read before it stopped: it tells whether
uploads never reached the relay, or reached it and were not delivered, and why.
"""

import argparse
import collections
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profiles  # noqa: E402


def relay_figures(text):
    """The relay's upload counters from its Prometheus text, or None."""
    if not text:
        return None
    figures = collections.Counter()
    dropped = collections.Counter()
    for name, labels, value in re.findall(r"^pyroscope_relay_(\w+?)(?:_total)?(\{[^}]*\})? (\S+)$", text, re.M):
        if name == "uploads_dropped":
            dropped[re.search(r'reason="([^"]*)"', labels).group(1)] += float(value)
        else:
            figures[name] += float(value)
    figures["dropped"] = sum(dropped.values())
    return figures, {reason: n for reason, n in dropped.items() if n}


def nothing_arrived(app, remote, listen, metrics):
    where = "the stand-in Pyroscope server%s" % (" (%s)" % remote if remote else "")
    head = "no profile from %s arrived at %s" % (app, where)
    figures = relay_figures(metrics)
    if figures is None:
        return ("%s, and the relay's /metrics could not be read: check that the relay started and listens on %s "
                "(its log lines above)" % (head, listen))
    counts, dropped = figures
    received, delivered = int(counts["uploads_received"]), int(counts["uploads_delivered"])
    if received == 0:
        return ("%s: the relay received no upload. Check that the workload reached the relay at %s (its lines above; "
                "is something else listening there? DEMO_LISTEN_ADDRESS picks another address)" % (head, listen))
    if delivered == 0:
        waiting = int(counts["queue_items"] + counts["uploads_in_flight"] + counts["spool_items"])
        reasons = ", ".join("%s %d" % (reason, n) for reason, n in sorted(dropped.items())) or "none"
        return ("%s: the relay received %d upload(s) and delivered none (dropped: %s; still queued or retrying: %d). "
                "Check that the remote is up and answers 2xx (the relay's log lines above: warnings, errors, its relay stats line)"
                % (head, received, reasons, waiting))
    return ("%s, though the relay counted %d delivered: check that PYROSCOPE_REMOTE_ADDRESS is the stand-in's address"
            % (head, delivered))


def verdict(found, undecoded, app, remote, listen, metrics):
    """(exit status, the one line)."""
    if app in found:
        count, stacks = found[app]
        top = profiles.top_self(stacks, 1)
        if top:
            return 0, "OK: %d profile%s from %s arrived, hottest function %s" % (count, "s"[:count != 1], app, top[0][0])
        return 1, ("FAIL: %d profiles from %s arrived but hold no samples: check that the workload burned CPU "
                   "(profiled_workload.py's lines above)" % (count, app))
    if undecoded:
        return 1, ("FAIL: %d upload(s) arrived but could not be decoded (%s): check the client's format and "
                   "the capture folder" % (len(undecoded), undecoded[0].error))
    return 1, "FAIL: " + nothing_arrived(app, remote, listen, metrics)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--app", required=True)
    ap.add_argument("--metrics")
    ap.add_argument("--remote")
    ap.add_argument("--listen", default="localhost:4040")
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args(argv)
    received = profiles.load_capture(args.capture)
    found = profiles.by_app(received)
    undecoded = [p for p in received if p.error]
    if found:
        print("== top functions by self time, of what arrived")
        for app, (count, stacks) in found.items():
            print(profiles.format_top(app, count, stacks, args.top))
    metrics = None
    if args.metrics and os.path.exists(args.metrics):
        with open(args.metrics, encoding="utf-8", errors="replace") as f:
            metrics = f.read()
    status, line = verdict(found, undecoded, args.app, args.remote, args.listen, metrics)
    print(line)
    return status


if __name__ == "__main__":
    sys.exit(main())
