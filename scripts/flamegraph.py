#!/usr/bin/env python3
"""Flame graphs (SVG) of the profiles a stand-in Pyroscope server received, one per application.

Usage: flamegraph.py CAPTURE.jsonl --out DIR [--bodies DIR]

Writes DIR/flamegraph-APP.svg for each application found in the capture (see
profiles.py for the formats decoded) and prints their paths.

Drawing is pyinferno's: Python bindings to inferno, the Rust port of Brendan Gregg's
flamegraph.pl, fed the folded stacks. Its SVG is the usual interactive one (hover for
sample counts, click to zoom, Ctrl-F to search), and each frame's name is in its <title>.
"""

import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profiles  # noqa: E402


def render(stacks, title):
    """Folded stacks -> SVG text."""
    from pyinferno.pyinferno import flamegraph_from_lines  # the venv's (make venv)

    lines = profiles.folded_lines(stacks)
    if not lines:
        raise ValueError("no samples to draw")
    return flamegraph_from_lines(lines, title)


def file_name(app):
    return "flamegraph-%s.svg" % re.sub(r"[^A-Za-z0-9._-]", "_", app)


def write_all(found, out_dir):
    """found: profiles.by_app(...). Returns [(app, path)] of the SVGs written."""
    written = []
    for app, (count, stacks) in found.items():
        if not stacks:
            continue
        path = os.path.join(out_dir, file_name(app))
        title = "%s: %d profile(s), %d samples" % (app, count, round(sum(stacks.values())))
        with open(path, "w", encoding="utf-8") as f:
            f.write(render(stacks, title))
        written.append((app, path))
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bodies")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = write_all(profiles.by_app(profiles.load_capture(args.capture, args.bodies)), args.out)
    for _, path in written:
        print(path)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
