"""The layer zip as Lambda sees it: layout, permissions, and a binary that starts from
where it is unzipped (dev mode) and relays."""

import json
import os
import stat
import subprocess
import sys
import zipfile

from conftest import PRODUCT, ROOT, Relay, dev_mode_environment, http_post, relay_and_check


def test_layout_is_one_executable_in_extensions(layer_zip):
    with zipfile.ZipFile(layer_zip) as archive:
        names = sorted(info.filename for info in archive.infolist())
        assert names == ["extensions/", f"extensions/{PRODUCT}"]
        mode = archive.getinfo(f"extensions/{PRODUCT}").external_attr >> 16
        assert stat.S_ISREG(mode) and mode & 0o755 == 0o755, oct(mode)


def test_unzipped_binary_starts_and_answers_healthz(layer_zip, tmp_path, sink):
    subprocess.run(["unzip", "-q", str(layer_zip), "-d", str(tmp_path)], check=True)
    binary = tmp_path / "extensions" / PRODUCT
    assert os.access(binary, os.X_OK)
    relay = Relay([str(binary)], dev_mode_environment(sink.url))
    try:
        relay_and_check(relay, sink, "layer.zip")
    finally:
        relay.stop()


def test_binary_needs_nothing_newer_than_glibc_2_26(layer_zip, tmp_path):
    subprocess.run(["unzip", "-q", str(layer_zip), "-d", str(tmp_path)], check=True)
    binary = tmp_path / "extensions" / PRODUCT
    result = subprocess.run([sys.executable, str(ROOT / "layer" / "check_binary.py"), str(binary)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
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


def test_layer_binary_profiles_itself_with_the_unwinder_it_was_linked_with(layer_zip, tmp_path, sink):
    # The layer links zig's libunwind instead of libgcc's: self-profiling must still cross
    # the signal frame and give deep, symbolized stacks, from the stripped-but-.symtab binary.
    subprocess.run(["unzip", "-q", str(layer_zip), "-d", str(tmp_path)], check=True)
    environment = dev_mode_environment(sink.url) | {"PYROSCOPE_SELF_PROFILING": "true"}
    relay = Relay([str(tmp_path / "extensions" / PRODUCT)], environment)
    try:
        port = relay.port()
        relay.wait_for_line("msg=Self-profiling")
        for _ in range(1500):
            assert http_post(f"http://127.0.0.1:{port}/ingest?name=load&format=folded", b"main;work 1\n") == 200
    finally:
        assert relay.stop() == 0, relay.lines[-20:]
    profiles = [body for path, body in sink.wait_for(1501) if path.startswith("/ingest?name=pyroscope.lambda.extension")]
    assert profiles, relay.lines[-20:]
    python = os.environ.get("PYROSCOPE_TEST_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    decoded = subprocess.run([python, str(ROOT / "scripts" / "decode_pprof.py"), "-"], input=profiles[-1],
                             capture_output=True, check=True).stdout
    samples = json.loads(decoded)["samples"]
    assert samples
    names = {name for sample in samples for name in sample["functions"]}
    assert any(name.startswith("NIOPosix.") for name in names), sorted(names)[:20]
    # Past the handler: stacks reach the thread entry, not just the interrupted leaf.
    assert max(len(sample["functions"]) for sample in samples) >= 5
