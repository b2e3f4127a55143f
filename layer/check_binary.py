#!/usr/bin/env python3
"""Fail when a Linux binary would not start beside every Lambda runtime, or has grown back
what the cold start cannot afford.

Reads the ELF with readelf (binutils, which reads the headers of every architecture): the
binary must be for --arch (x86_64 or arm64) when given, a static executable with
--require-static (the layer's: no program interpreter, no dynamic section), accept Lambda's
oldest kernel (its C library's ABI note, at most --max-kernel, 4.14); and where it is dynamic,
every glibc symbol version it requires must be at most --max-glibc (2.26, Amazon Linux 2) and
every shared library it needs must be part of glibc itself.

Cost (issue 22): no code of a module in FORBIDDEN_MODULES may be linked (async-http-client and
what only it brought), and the Swift protocol conformance records may not exceed
--max-conformances: the Swift runtime scans all of them at each first conformance lookup,
which was 18 of 26 million start-up instructions with async-http-client linked (6,392 records).
Prints what it found; exits 1 with the offending symbols or figures otherwise.
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


# Modules the relay must not link again: async-http-client and the packages only it brought
# (HTTP/2, HPACK, SOCKS, decompression, swift-configuration, tracing, swift-algorithms),
# Foundation (JSON is RelayJSON's), and the Swift regex library that the standard library's
# `firstRange(of:)` and String `contains(_:)` link (GoCompatibility has their replacements).
# Found by their mangled module names in the code symbols the layer keeps (self-profiling).
FORBIDDEN_MODULES = ["AsyncHTTPClient", "NIOHTTP2", "NIOHPACK", "NIOSOCKS", "NIOHTTPCompression", "Configuration",
                     "Tracing", "Algorithms", "FoundationEssentials", "_FoundationCollections", "_StringProcessing",
                     "_RegexParser"]

# Each record of the swift5_protocol_conformances section is a 32-bit relative pointer.
CONFORMANCE_SECTION = "swift5_protocol_conformances"
CONFORMANCE_RECORD_BYTES = 4

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


def static_facts(binary: str) -> tuple[bool, str]:
    """Whether the binary is a static executable (no program interpreter, no dynamic
    section), and the oldest Linux kernel its C library accepts (the ABI note), or ''."""
    interpreter = "Requesting program interpreter" in readelf(binary, "--program-headers")
    dynamic = "There is no dynamic section" not in readelf(binary, "--dynamic")
    match = re.search(r"OS: Linux, ABI: ([0-9.]+)", readelf(binary, "--notes"))
    return not interpreter and not dynamic, match.group(1) if match else ""


def conformance_records(binary: str) -> int:
    """How many protocol conformance records the Swift runtime will scan."""
    for line in readelf(binary, "--section-headers").splitlines():
        fields = line.replace("[ ", "[").split()
        if CONFORMANCE_SECTION in fields:
            index = fields.index(CONFORMANCE_SECTION)
            # Name Type Address Off Size ...
            return int(fields[index + 4], 16) // CONFORMANCE_RECORD_BYTES
    return 0


def linked_modules(binary: str, modules: list[str]) -> dict[str, list[str]]:
    """For each module, some of its symbols in the binary's symbol table (Swift mangles a
    module name as its length and its name: `15AsyncHTTPClient`)."""
    found: dict[str, list[str]] = {}
    symbols = readelf(binary, "--syms").splitlines()
    for module in modules:
        pattern = re.compile(rf"\$s{len(module)}{re.escape(module)}[0-9A-Z_]")
        hits = [line.split()[-1] for line in symbols if pattern.search(line)]
        if hits:
            found[module] = hits[:3]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("binary")
    parser.add_argument("--max-glibc", default="2.26")
    parser.add_argument("--arch", choices=sorted(MACHINES), help="the architecture the binary must be for")
    parser.add_argument("--max-conformances", type=int, default=0,
                        help="fail above this many Swift protocol conformance records (0: not checked)")
    parser.add_argument("--forbid-modules", action="store_true",
                        help="fail when code of a module in FORBIDDEN_MODULES is linked")
    parser.add_argument("--require-static", action="store_true",
                        help="fail unless the binary is a static executable")
    parser.add_argument("--max-kernel", default="4.14",
                        help="the oldest kernel the binary must accept (Lambda's oldest: Amazon Linux 2's 4.14)")
    arguments = parser.parse_args()

    found = machine(arguments.binary)
    needed, versions = inspect(arguments.binary)
    newest = max(versions, key=version_key) if versions else "none"
    print(f"  ELF machine: {found}")
    print(f"  shared libraries: {' '.join(needed) or 'none (static)'}")
    print(f"  newest glibc symbol version required: {newest} (limit {arguments.max_glibc})")

    problems = []
    static, kernel = static_facts(arguments.binary)
    print(f"  static executable: {'yes' if static else 'no'}; oldest kernel accepted: {kernel or 'not said'}")
    if arguments.require_static and not static:
        problems.append("is not a static executable (it has a program interpreter or a dynamic section)")
    if kernel and version_key(kernel) > version_key(arguments.max_kernel):
        problems.append(f"needs Linux {kernel} or newer; Lambda's oldest kernel is {arguments.max_kernel}")
    if arguments.max_conformances:
        records = conformance_records(arguments.binary)
        print(f"  Swift protocol conformance records: {records} (limit {arguments.max_conformances})")
        if records > arguments.max_conformances:
            problems.append(f"has {records} Swift protocol conformance records, over the {arguments.max_conformances} allowed: "
                            "each first conformance lookup at start-up scans them all; see what was linked anew")
    if arguments.forbid_modules:
        linked = linked_modules(arguments.binary, FORBIDDEN_MODULES)
        print(f"  forbidden modules linked: {', '.join(linked) or 'none'}")
        for module, symbols in linked.items():
            problems.append(f"links {module} (e.g. {symbols[0]}), which the relay dropped for its start-up cost")
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
        print(f"error: {arguments.binary} fails the layer's checks for {arguments.arch or 'its'} Lambda (glibc "
              f"{arguments.max_glibc}, Amazon Linux 2; start-up cost):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
