#!/usr/bin/env python3
"""Fail when a Linux binary would not start beside every Lambda runtime.

Reads the ELF with readelf (binutils): every glibc symbol version the binary requires must
be at most --max-glibc (2.26, Amazon Linux 2), and every shared library it needs must be
part of glibc itself. Prints what it found; exits 1 with the offending symbols otherwise.
"""

import argparse
import re
import subprocess
import sys

# glibc's own libraries: present on every Lambda runtime image.
GLIBC_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def readelf(binary: str, *options: str) -> str:
    return subprocess.run(["readelf", "--wide", *options, binary], check=True, capture_output=True,
                          text=True).stdout


def inspect(binary: str) -> tuple[list[str], dict[str, set[str]]]:
    """The NEEDED libraries, and for each GLIBC_x.y version the dynamic symbols bound to it."""
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf(binary, "--dynamic"))
    versions: dict[str, set[str]] = {}
    for line in readelf(binary, "--version-info").splitlines():
        match = re.search(r"Name: GLIBC_([0-9.]+)", line)
        if match:
            versions.setdefault(match.group(1), set())
    for match in re.finditer(r" UND ([^\s@]+)@GLIBC_([0-9.]+)", readelf(binary, "--dyn-syms")):
        versions.setdefault(match.group(2), set()).add(match.group(1))
    return needed, versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("binary")
    parser.add_argument("--max-glibc", default="2.26")
    arguments = parser.parse_args()

    needed, versions = inspect(arguments.binary)
    newest = max(versions, key=version_key) if versions else "none"
    print(f"  shared libraries: {' '.join(needed) or 'none (static)'}")
    print(f"  newest glibc symbol version required: {newest} (limit {arguments.max_glibc})")

    problems = []
    for library in needed:
        if library not in GLIBC_LIBRARIES:
            problems.append(f"needs the shared library {library}, which is not part of glibc: link it statically")
    limit = version_key(arguments.max_glibc)
    for version in sorted(versions, key=version_key):
        if version_key(version) > limit:
            symbols = ", ".join(sorted(versions[version])[:12]) or "(version reference only)"
            problems.append(f"needs GLIBC_{version} (newer than {arguments.max_glibc}): {symbols}")
    if problems:
        print(f"error: {arguments.binary} would not start on glibc {arguments.max_glibc} "
              "(Amazon Linux 2):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
