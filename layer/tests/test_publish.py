"""make publish-layer: the dry run prints the commands; against moto (an AWS API emulator
from PyPI, in server mode on 127.0.0.1) the real AWS CLI publishes every architecture under
test with one command, in two regions, one layer per architecture named for it, and the
public permission exists afterwards."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ARCHS, ROOT

REGIONS = ["us-east-1", "eu-west-1"]
BIN = pathlib.Path(sys.executable).parent  # the layer venv: aws, moto


def make_publish(extra: dict[str, str], *variables: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "MAKE"))}
    environment.update(extra)
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "publish-layer", *variables],
                          env=environment, capture_output=True, text=True, timeout=300)


def test_dry_run_prints_each_command_and_calls_nothing(layer_zip, arch):
    # No credentials and an endpoint nobody answers: a real call would fail.
    result = make_publish({"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "DRY_RUN=1", "PUBLIC=1",
                          f"REGIONS={' '.join(REGIONS)}", "LAYER_NAME=dry-run-layer", f"ARCH={arch}")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ aws ")]
    assert len(commands) == 4, result.stdout
    for region, publish, permission in zip(REGIONS, commands[0::2], commands[1::2]):
        assert publish.startswith("+ aws lambda publish-layer-version ")
        assert f"--region {region}" in publish and f"--layer-name dry-run-layer-{arch}" in publish
        assert f"--zip-file fileb://dist/{layer_zip.name}" in publish
        assert f"--compatible-architectures {arch}" in publish
        assert permission.startswith("+ aws lambda add-layer-version-permission ")
        assert f"--region {region}" in permission and "--principal '*'" in permission
        assert "--action lambda:GetLayerVersion" in permission


def test_zip_of_another_architecture_is_refused():
    result = subprocess.run([str(ROOT / "layer" / "publish.sh"), "dist/pyroscope-lambda-extension-x86_64.zip"],
                            env={**os.environ, "ARCH": "arm64", "DRY_RUN": "1"}, capture_output=True, text=True)
    assert result.returncode == 2
    assert "does not name ARCH=arm64" in result.stderr


@pytest.fixture
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def aws(endpoint: str, *arguments: str) -> dict:
    environment = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing"}
    result = subprocess.run([str(BIN / "aws"), *arguments, "--output", "json"], env=environment,
                            capture_output=True, text=True, check=True, timeout=60)
    return json.loads(result.stdout)


def test_publish_every_architecture_with_one_command_to_the_emulator_in_two_regions(layer_zips, moto_endpoint):
    credentials = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing"}
    result = make_publish(credentials, "PUBLIC=1", f"REGIONS={' '.join(REGIONS)}", "LAYER_NAME=emulated-layer",
                          f"ARCH={' '.join(ARCHS)}")
    assert result.returncode == 0, result.stdout + result.stderr
    for arch, layer_zip in layer_zips.items():
        name = f"emulated-layer-{arch}"
        for region in REGIONS:
            assert f"{region}: arn:aws:lambda:{region}:" in result.stdout and f":layer:{name}:" in result.stdout, result.stdout
            versions = aws(moto_endpoint, "lambda", "list-layer-versions", "--layer-name", name,
                           "--region", region)["LayerVersions"]
            assert len(versions) == 1
            assert versions[0]["CompatibleArchitectures"] == [arch]
            version = aws(moto_endpoint, "lambda", "get-layer-version", "--layer-name", name,
                          "--version-number", str(versions[0]["Version"]), "--region", region)
            assert version["Content"]["CodeSize"] == layer_zip.stat().st_size
            policy = json.loads(aws(moto_endpoint, "lambda", "get-layer-version-policy", "--layer-name", name,
                                    "--version-number", str(versions[0]["Version"]), "--region", region)["Policy"])
            statement = policy["Statement"][0]
            assert statement["Principal"] == "*" and statement["Action"] == "lambda:GetLayerVersion"
