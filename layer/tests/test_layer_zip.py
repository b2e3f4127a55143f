"""The layer zip as Lambda sees it: layout, permissions, and a binary that starts from
where it is unzipped (dev mode) and relays; each for every architecture under test (an arm64
binary on x86_64 runs under qemu-aarch64, see conftest)."""

import json
import os
import stat
import subprocess
import sys
import zipfile

from conftest import (LAMBDA_USER, PRODUCT, ROOT, Relay, as_lambda_user, dev_mode_environment, http_post_accepted,
                      relay_and_check, unpack_layer)


# readelf's names of the ELF machines.
MACHINES = {"x86_64": "Advanced Micro Devices X86-64", "arm64": "AArch64"}


def test_layout_is_one_executable_in_extensions(layer_zip):
    with zipfile.ZipFile(layer_zip) as archive:
        names = sorted(info.filename for info in archive.infolist())
        assert names == ["extensions/", f"extensions/{PRODUCT}"]
        mode = archive.getinfo(f"extensions/{PRODUCT}").external_attr >> 16
        assert stat.S_ISREG(mode) and mode & 0o755 == 0o755, oct(mode)


def test_unzipped_binary_starts_and_answers_healthz(layer_zip, runner, tmp_path, sink):
    subprocess.run(["unzip", "-q", str(layer_zip), "-d", str(tmp_path)], check=True)
    assert os.access(tmp_path / "extensions" / PRODUCT, os.X_OK)
    # As Lambda runs it: its user, the layer read-only.
    binary = unpack_layer(layer_zip) / "extensions" / PRODUCT
    relay = Relay([*as_lambda_user(), *runner, str(binary)], dev_mode_environment(sink.url))
    relay.port()  # listening: setpriv has switched user and exec'd
    if os.geteuid() == 0:
        with open(f"/proc/{relay.process.pid}/status") as status:
            ids = dict(line.split(":", 1) for line in status if ":" in line)
        assert (int(ids["Uid"].split()[0]), int(ids["Gid"].split()[0])) == LAMBDA_USER, ids["Uid"]
    try:
        relay_and_check(relay, sink, "layer.zip")
    finally:
        relay.stop()


def test_binary_is_a_static_executable_for_its_architecture_and_lambdas_oldest_kernel(layer_zip, arch, tmp_path):
    subprocess.run(["unzip", "-q", str(layer_zip), "-d", str(tmp_path)], check=True)
    binary = tmp_path / "extensions" / PRODUCT
    result = subprocess.run([sys.executable, str(ROOT / "layer" / "check_binary.py"), "--arch", arch,
                             "--require-static", str(binary)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"ELF machine: {MACHINES[arch]}" in result.stdout
    assert "shared libraries: none (static)" in result.stdout
    assert "static executable: yes" in result.stdout
    # The symbol table stays for self-profiling; the debug info does not.
    sections = subprocess.run(["readelf", "--wide", "--section-headers", str(binary)], check=True,
                              capture_output=True, text=True).stdout
    assert " .symtab " in sections
    assert ".debug_info" not in sections


def test_check_binary_rejects_a_binary_linked_against_this_machines_glibc(tmp_path):
    # A plain C program built here needs GLIBC_2.34 (__libc_start_main): the check must say so.
    source = tmp_path / "hello.c"
    source.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    subprocess.run(["cc", "-o", str(tmp_path / "hello"), str(source)], check=True)
    result = subprocess.run([sys.executable, str(ROOT / "layer" / "check_binary.py"), str(tmp_path / "hello")],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "GLIBC_2.34 (newer than 2.26): __libc_start_main" in result.stderr


def test_check_binary_rejects_a_dynamic_binary_where_static_is_required(tmp_path):
    source = tmp_path / "hello.c"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run(["cc", "-o", str(tmp_path / "hello"), str(source)], check=True)
    result = subprocess.run([sys.executable, str(ROOT / "layer" / "check_binary.py"), "--max-glibc", "9.0",
                             "--require-static", str(tmp_path / "hello")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "is not a static executable" in result.stderr, result.stderr


def test_check_binary_rejects_a_binary_of_another_architecture(tmp_path):
    # The same check for the architecture: this machine's cc builds for x86_64, so asking for
    # arm64 must fail on the ELF machine alone (a static binary needs no glibc at all).
    source = tmp_path / "hello.c"
    source.write_text("int main(void) { return 0; }\n")
    subprocess.run(["cc", "-static", "-o", str(tmp_path / "hello"), str(source)], check=True)
    result = subprocess.run([sys.executable, str(ROOT / "layer" / "check_binary.py"), "--arch", "arm64",
                             str(tmp_path / "hello")], capture_output=True, text=True)
    assert result.returncode == 1
    assert "is an ELF for Advanced Micro Devices X86-64, not arm64 (AArch64)" in result.stderr, result.stderr


def test_layer_binary_profiles_itself_with_the_unwinder_it_was_linked_with(layer_zip, runner, tmp_path, sink):
    # The layer links libgcc's unwinder (libgcc_eh) into a static executable, with the C
    # runtime of a dynamic one and --eh-frame-hdr (layer/toolchain/clang): self-profiling
    # must still cross the signal frame and give deep, symbolized stacks, from the
    # stripped-but-.symtab binary. For arm64 on x86_64 this runs under qemu-aarch64, whose
    # signal frame the unwinder crosses too.
    environment = dev_mode_environment(sink.url) | {"PYROSCOPE_SELF_PROFILING": "true"}
    relay = Relay([*as_lambda_user(), *runner, str(unpack_layer(layer_zip) / "extensions" / PRODUCT)], environment)
    try:
        port = relay.port()
        relay.wait_for_line("msg=Self-profiling")
        for _ in range(1500):
            assert http_post_accepted(f"http://127.0.0.1:{port}/ingest?name=load&format=folded", b"main;work 1\n") == 200
    finally:
        assert relay.stop() == 0, relay.lines[-20:]
    profiles = [body for path, body in sink.wait_for(1501) if path.startswith("/ingest?name=pyroscope.lambda.extension")]
    assert profiles, relay.lines[-20:]
    python = os.environ.get("PYROSCOPE_TEST_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    decoded = subprocess.run([python, str(ROOT / "Tests" / "Peers" / "decode_pprof.py"), "-"], input=profiles[-1],
                             capture_output=True, check=True).stdout
    samples = json.loads(decoded)["samples"]
    assert samples
    names = {name for sample in samples for name in sample["functions"]}
    assert any(name.startswith("NIOPosix.") for name in names), sorted(names)[:20]
    # Past the handler: stacks reach the event loop and the thread entry below it, not just
    # the interrupted leaf (a sample's functions run from the leaf to the root).
    assert max(len(sample["functions"]) for sample in samples) >= 10
    assert any("NIOPosix.SelectableEventLoop.run()" in name for name in names), sorted(names)[:20]
