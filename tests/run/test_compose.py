"""deployment/docker-compose.yml: the same site as containers, checked offline (no Docker engine here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from energy_edge.hub.manifest import load_manifest
from tests.support import REPO

COMPOSE = REPO / "deployment" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_compose_file_follows_the_compose_spec() -> None:
    checker = shutil.which("check-jsonschema", path=str(Path(REPO / ".venv" / "bin")))
    assert checker, "check-jsonschema is installed by make install"
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_module_of_the_manifest_is_a_service(compose: dict[str, Any]) -> None:
    manifest = load_manifest(REPO / "deployment" / "deployment.template.json")
    assert set(compose["services"]) == set(manifest.modules) | {"emulator"}


def test_every_build_uses_a_dockerfile_that_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"


@pytest.mark.parametrize("name", ["solar", "battery", "boiler", "microgrid-controller", "controller", "telemetry"])
def test_modules_launch_with_their_own_identity(compose: dict[str, Any], name: str) -> None:
    entrypoint = compose["services"][name]["entrypoint"]
    assert entrypoint[entrypoint.index("--module") + 1] == name
    assert compose["services"][name]["depends_on"] == ["emulator", "simulator"]


def test_the_emulator_advertises_its_service_name(compose: dict[str, Any]) -> None:
    command = compose["services"]["emulator"]["command"]
    assert command[command.index("--advertise-host") + 1] == "emulator"
    assert compose["services"]["emulator"]["environment"]["SIMULATOR_HOST"] == "simulator"
