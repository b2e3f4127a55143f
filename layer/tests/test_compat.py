"""The layer binary on an older glibc than this machine's: Debian bullseye (glibc 2.31).

x86_64: a bullseye root made with debootstrap from Debian's archive, cached in
.build-compat/, entered with chroot (root only). Loopback is shared with the chroot, so the
stand-in Pyroscope server runs here.
arm64 on x86_64: qemu-aarch64 with bullseye's arm64 glibc and libgcc_s as its root (-L),
unpacked by layer/cross/setup.sh runner; the control binary is linked in the sid root that
built the layer (glibc 2.43)."""

import os
import re
import shutil
import subprocess
import time
import zipfile

import pytest

from conftest import HOST_ARCH, PRODUCT, ROOT, Relay, cross_paths, dev_mode_environment, relay_and_check, runner_for

SUITE = "bullseye"
GLIBC = "2.31"
CACHE = ROOT / ".build-compat" / SUITE
MIRROR = os.environ.get("LAYER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'


class ChrootBullseye:
    """A debootstrap root of this machine's architecture, entered with chroot."""

    libc = "/lib/x86_64-linux-gnu/libc.so.6"

    def __init__(self):
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
        self.root = CACHE

    def command(self, *command: str) -> list[str]:
        """`command` (a path inside the root) in the chroot with /proc mounted in a private
        mount namespace (the mount goes away with the process)."""
        inner = (f'"{shutil.which("mount")}" -t proc proc "{self.root}/proc" && '
                 f'exec "{shutil.which("chroot")}" "{self.root}" "$@"')
        return [shutil.which("unshare"), "--mount", "--propagation", "private", "/bin/sh", "-c", inner, "sh", *command]

    def control_binary(self, tmp_path) -> str:
        """A C program linked normally on this machine (glibc 2.36), placed in the root."""
        source = tmp_path / "hello.c"
        source.write_text(HELLO)
        subprocess.run(["cc", "-o", str(self.root / "tmp" / "hello-host"), str(source)], check=True)
        return "/tmp/hello-host"


class QemuBullseye:
    """arm64 on x86_64: qemu-aarch64 with bullseye's arm64 glibc as its root."""

    libc = "/lib/aarch64-linux-gnu/libc.so.6"

    def __init__(self):
        self.qemu = runner_for("arm64")[0]
        paths = cross_paths()
        self.root, self.sid = paths["CROSS_GLIBC_ROOT_BULLSEYE"], paths["CROSS_SID"]
        if not os.path.isfile(os.path.join(self.root, ".done")):
            pytest.fail(f"{self.root} is missing: run layer/cross/setup.sh runner (make test-compat ARCH=arm64 does)")

    def command(self, *command: str) -> list[str]:
        # Absolute paths are the root's (qemu -L maps them), as in a chroot.
        first = command[0]
        if first.startswith("/") and os.path.exists(self.root + first):
            first = self.root + first
        return [self.qemu, "-L", self.root, first, *command[1:]]

    def control_binary(self, tmp_path) -> str:
        """A C program linked normally for arm64 in the sid root (glibc 2.43)."""
        if not os.path.isfile(os.path.join(self.sid, ".packages-done")):
            pytest.fail(f"the sid root {self.sid} is missing: make layer ARCH=arm64 makes it")
        work = ROOT / ".build" / "compat-arm64"
        work.mkdir(parents=True, exist_ok=True)
        (work / "hello.c").write_text(HELLO)
        subprocess.run([str(ROOT / "layer" / "cross" / "in-root.sh"), self.sid, "/usr/libexec/swift/bin/clang",
                        "--target=aarch64-linux-gnu", "-fuse-ld=lld", "-o", str(work / "hello-sid"),
                        str(work / "hello.c")], check=True)
        return str(work / "hello-sid")


@pytest.fixture(scope="module")
def bullseye(arch):
    if arch == HOST_ARCH == "x86_64":
        return ChrootBullseye()
    if (HOST_ARCH, arch) == ("x86_64", "arm64"):
        return QemuBullseye()
    pytest.fail(f"no bullseye test for {arch} on {HOST_ARCH}")


def test_the_root_has_the_old_glibc(bullseye):
    banner = subprocess.run(bullseye.command(bullseye.libc), capture_output=True, text=True, check=True).stdout
    assert re.search(rf"release version {re.escape(GLIBC)}\b", banner), banner


def test_a_binary_linked_normally_does_not_start_there(bullseye, tmp_path):
    # The control: what the layer build avoids. A C program linked against a newer glibc
    # needs GLIBC_2.34 (__libc_start_main).
    binary = bullseye.control_binary(tmp_path)
    result = subprocess.run(bullseye.command(binary), capture_output=True, text=True)
    assert result.returncode != 0
    assert "GLIBC_2.34' not found" in result.stderr, result.stderr


def test_layer_binary_starts_and_relays_in_bullseye(bullseye, layer_zip, sink):
    install_layer_binary(bullseye, layer_zip)
    relay = Relay(bullseye.command(f"/opt/extensions/{PRODUCT}"), dev_mode_environment(sink.url))
    try:
        relay_and_check(relay, sink, f"compat.{SUITE}")
    finally:
        relay.stop()


def test_layer_binary_finds_the_remote_by_name_whatever_nsswitch_conf_names(bullseye, layer_zip, sink, arch):
    # The layer binary is statically linked: an NSS module named in the runtime image's
    # nsswitch.conf would be a shared library of another glibc, loaded into it with dlopen.
    # It looks host names up with glibc's built-in files and dns resolvers instead, so a
    # root whose nsswitch.conf names only a module that is not built in ("nis", absent)
    # still finds the remote in /etc/hosts. Without that, the lookup fails and nothing arrives.
    if arch != HOST_ARCH:
        pytest.skip("the root's /etc is the chroot's (x86_64); qemu's -L root does not serve /etc")
    install_layer_binary(bullseye, layer_zip)
    etc = pathlib_join(bullseye.root, "etc")
    # A minbase root may have neither file: what was not there is removed again.
    saved = {name: (open(os.path.join(etc, name)).read() if os.path.exists(os.path.join(etc, name)) else None)
             for name in ("hosts", "nsswitch.conf")}
    try:
        with open(os.path.join(etc, "hosts"), "w") as hosts:
            hosts.write("127.0.0.1 localhost\n127.0.0.1 pyroscope.compat.test\n")
        with open(os.path.join(etc, "nsswitch.conf"), "w") as nsswitch:
            nsswitch.write("hosts: nis\n")
        remote = sink.url.replace("127.0.0.1", "pyroscope.compat.test")
        assert "pyroscope.compat.test" in remote
        relay = Relay(bullseye.command(f"/opt/extensions/{PRODUCT}"), dev_mode_environment(remote))
        try:
            relay_and_check(relay, sink, "compat.names")
        finally:
            relay.stop()
    finally:
        for name, text in saved.items():
            if text is None:
                os.remove(os.path.join(etc, name))
                continue
            with open(os.path.join(etc, name), "w") as handle:
                handle.write(text)


def install_layer_binary(bullseye, layer_zip) -> None:
    """The layer's executable in the root's /opt/extensions, as Lambda unpacks a layer."""
    extensions = pathlib_join(bullseye.root, "opt", "extensions")
    shutil.rmtree(extensions, ignore_errors=True)
    with zipfile.ZipFile(layer_zip) as archive:
        archive.extract(f"extensions/{PRODUCT}", pathlib_join(bullseye.root, "opt"))
    os.chmod(os.path.join(extensions, PRODUCT), 0o755)


def pathlib_join(*parts) -> str:
    return os.path.join(*(str(part) for part in parts))
