#!/usr/bin/env python3
"""Flame graphs (SVG) of the profiles a stand-in Pyroscope server received, one per application.

Usage: flamegraph.py CAPTURE.jsonl --out DIR [--bodies DIR]

Writes DIR/flamegraph-APP.svg for each application found in the capture (see
profiles.py for the formats decoded) and prints their paths.

Drawing is pyinferno's: Python bindings to inferno, the Rust port of Brendan Gregg's
flamegraph.pl, fed the folded stacks. Its SVG is the usual interactive one (hover for
sample counts, click to zoom, Ctrl-F to search), and each frame's name is in its <title>.
pyinferno publishes wheels only for CPython <= 3.11 on x86_64 Linux (its source build
needs crates from the network), so `make venv` installs it only there; elsewhere
`plain_svg` draws the same graph without the script: one <rect> per frame, its name as
<text> where it fits and always in its <title>.
"""

import argparse
import html
import os
import re
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import profiles  # noqa: E402


def render(stacks, title):
    """Folded stacks -> SVG text: inferno's where pyinferno is installed, else plain_svg."""
    lines = profiles.folded_lines(stacks)
    if not lines:
        raise ValueError("no samples to draw")
    try:
        from pyinferno.pyinferno import flamegraph_from_lines
    except ImportError:
        return plain_svg(stacks, title)
    return flamegraph_from_lines(lines, title)


def plain_svg(stacks, title, width=1200, row=16):
    """A static flame graph: roots at the bottom, each frame as wide as its samples."""
    tree = {}  # name -> [samples, children]
    for stack, value in stacks.items():
        level = tree
        for name in stack:
            node = level.setdefault(name, [0, {}])
            node[0] += value
            level = node[1]
    total = sum(node[0] for node in tree.values())
    depth = max(len(stack) for stack in stacks)
    height = (depth + 3) * row
    shapes = []

    def draw(level, x, level_depth):
        for name, (value, children) in sorted(level.items()):
            w = value / total * (width - 20)
            y = height - (level_depth + 2) * row
            label = "%s (%d samples, %.2f%%)" % (name, round(value), 100 * value / total)
            hue = zlib.crc32(name.encode()) % 55  # flamegraph.pl's warm palette, stable per name
            shapes.append('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="rgb(%d,%d,%d)" rx="2"/>'
                          % (html.escape(label), 10 + x, y, max(w - 0.5, 0.1), row - 1, 205 + hue % 50, 80 + hue * 2, 55))
            chars = int(w / 7)
            if chars >= 3:
                text = name if len(name) <= chars else name[:chars - 2] + ".."
                shapes.append('<text x="%.1f" y="%d" font-size="12" font-family="Verdana">%s</text>' % (13 + x, y + row - 4, html.escape(text)))
            shapes.append("</g>")
            draw(children, x, level_depth + 1)
            x += w

    draw(tree, 0.0, 0)
    return ('<?xml version="1.0" standalone="no"?>\n<svg version="1.1" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">'
            '<rect width="100%%" height="100%%" fill="#f8f8f0"/><text x="%d" y="18" font-size="15" text-anchor="middle" '
            'font-family="Verdana">%s</text>%s</svg>\n' % (width, height, width // 2, html.escape(title), "".join(shapes)))


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
