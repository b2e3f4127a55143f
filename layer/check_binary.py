#!/usr/bin/env python3
"""Fail when a Linux binary would not start beside every Lambda runtime.

Reads the ELF with readelf (binutils, which reads the headers of every architecture): the
binary must be for --arch (x86_64 or arm64) when given, every glibc symbol version it
requires must be at most --max-glibc (2.26, Amazon Linux 2), and every shared library it
needs must be part of glibc itself. Prints what it found; exits 1 with the offending symbols
otherwise.
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


# readelf's name of each architecture's ELF machine.
MACHINES = {"x86_64": "Advanced Micro Devices X86-64", "arm64": "AArch64"}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def readelf(binary: str, *options: str) -> str:
    return subprocess.run(["readelf", "--wide", *options, binary], check=True, capture_output=True,
                          text=True).stdout


def machine(binary: str) -> str:
    match = re.search(r"^\s*Machine:\s*(.+?)\s*$", readelf(binary, "--file-header"), re.MULTILINE)
    return match.group(1) if match else "unknown"


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
    parser.add_argument("--arch", choices=sorted(MACHINES), help="the architecture the binary must be for")
    arguments = parser.parse_args()

    found = machine(arguments.binary)
    needed, versions = inspect(arguments.binary)
    newest = max(versions, key=version_key) if versions else "none"
    print(f"  ELF machine: {found}")
    print(f"  shared libraries: {' '.join(needed) or 'none (static)'}")
    print(f"  newest glibc symbol version required: {newest} (limit {arguments.max_glibc})")

    problems = []
    if arguments.arch and found != MACHINES[arguments.arch]:
        problems.append(f"is an ELF for {found}, not {arguments.arch} ({MACHINES[arguments.arch]})")
    for library in needed:
        if library not in GLIBC_LIBRARIES:
            problems.append(f"needs the shared library {library}, which is not part of glibc: link it statically")
    limit = version_key(arguments.max_glibc)
    for version in sorted(versions, key=version_key):
        if version_key(version) > limit:
            symbols = ", ".join(sorted(versions[version])[:12]) or "(version reference only)"
            problems.append(f"needs GLIBC_{version} (newer than {arguments.max_glibc}): {symbols}")
    if problems:
        print(f"error: {arguments.binary} would not start on {arguments.arch or 'its'} Lambda with glibc "
              f"{arguments.max_glibc} (Amazon Linux 2):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
