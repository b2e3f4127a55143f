"""The layer binary inside an older userland: Debian bullseye (glibc 2.31), made with
debootstrap from Debian's archive and cached in .build-compat/, entered with chroot (root
only). Loopback is shared with the chroot, so the stand-in Pyroscope server runs here."""

import os
import re
import shutil
import subprocess
import time
import zipfile

import pytest

from conftest import PRODUCT, ROOT, Relay, dev_mode_environment, relay_and_check

SUITE = "bullseye"
GLIBC = "2.31"
CACHE = ROOT / ".build-compat" / SUITE
MIRROR = os.environ.get("LAYER_DEBIAN_MIRROR", "http://deb.debian.org/debian")


@pytest.fixture(scope="module")
def rootfs():
    if os.geteuid() != 0:
        pytest.fail("chroot and debootstrap need root (CI runs as root)")
    for tool in ("debootstrap", "chroot", "unshare", "mount"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} not found: make test-compat installs debootstrap (util-linux has the others)")
    if not (CACHE / "etc" / "debian_version").is_file():
        partial = CACHE.with_name(SUITE + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(partial), MIRROR], check=True,
                       stdout=subprocess.DEVNULL, timeout=1200)
        partial.rename(CACHE)
        print(f"debootstrap {SUITE}: {time.monotonic() - started:.0f} s")
    return CACHE


def in_chroot(root, *command: str) -> list[str]:
    """`command` in the chroot with /proc mounted in a private mount namespace (the mount
    goes away with the process)."""
    inner = f'"{shutil.which("mount")}" -t proc proc "{root}/proc" && exec "{shutil.which("chroot")}" "{root}" "$@"'
    return [shutil.which("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c", inner, "sh", *command]


def test_the_root_has_the_old_glibc(rootfs):
    banner = subprocess.run(in_chroot(rootfs, "/lib/x86_64-linux-gnu/libc.so.6"), capture_output=True,
                            text=True, check=True).stdout
    assert re.search(rf"release version {re.escape(GLIBC)}\b", banner), banner


def test_a_binary_linked_normally_here_does_not_start_there(rootfs, tmp_path):
    # The control: what the layer build avoids. A C program linked against this machine's
    # glibc needs GLIBC_2.34.
    source = tmp_path / "hello.c"
    source.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    target = rootfs / "tmp" / "hello-host"
    subprocess.run(["cc", "-o", str(target), str(source)], check=True)
    result = subprocess.run(in_chroot(rootfs, "/tmp/hello-host"), capture_output=True, text=True)
    target.unlink()
    assert result.returncode != 0
    assert "GLIBC_2.34' not found" in result.stderr, result.stderr


def test_layer_binary_starts_and_relays_in_bullseye(rootfs, layer_zip, sink):
    extensions = rootfs / "opt" / "extensions"
    shutil.rmtree(extensions, ignore_errors=True)
    with zipfile.ZipFile(layer_zip) as archive:
        archive.extract(f"extensions/{PRODUCT}", rootfs / "opt")
    (extensions / PRODUCT).chmod(0o755)
    relay = Relay(in_chroot(rootfs, f"/opt/extensions/{PRODUCT}"), dev_mode_environment(sink.url))
    try:
        relay_and_check(relay, sink, "compat.bullseye")
    finally:
        relay.stop()
