"""Shared paths for the tools' tests (run by `make test`: pytest -q tools/tests)."""

import os
import sys
import xml.etree.ElementTree as ElementTree

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPOSITORY, "tools")
PEERS = os.path.join(REPOSITORY, "Tests", "Peers")
FIXTURES = os.path.join(REPOSITORY, "Tests", "Fixtures", "clients")
PROMETHEUS = os.environ.get("PROMETHEUS") or os.path.join(REPOSITORY, ".build-tools", "prometheus", "usr", "bin", "prometheus")
sys.path[:0] = [TOOLS, PEERS]


def frame_names(path):
    """The frames of a flame graph SVG: the text of each <title>, without its sample count."""
    svg = "{http://www.w3.org/2000/svg}"
    root = ElementTree.parse(path).getroot()
    assert root.tag == svg + "svg"
    return {title.text.rsplit(" (", 1)[0] for title in root.iter(svg + "title") if " samples, " in title.text}
