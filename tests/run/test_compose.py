"""deployment/docker-compose.yml: the same site as containers, kept consistent with the deployment manifest, and
brought up with Debian's docker-compose against the images `make images` builds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from energy_edge.hub.manifest import load_manifest
from energy_edge.run.containers import image_for, parse_create_options, raw_module_settings
from tests.support import REPO, next_loopback

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


MANIFEST = REPO / "deployment" / "deployment.template.json"
EDGE = load_manifest(MANIFEST)
SETTINGS = raw_module_settings(MANIFEST)
COMPOSE_RESTART = {"always": "always", "on-failure": "on-failure", "on-unhealthy": "on-failure", "never": "no"}


def _default(text: str) -> str:
    """A compose value with its ${NAME:-default} variables at their defaults."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_every_build_uses_a_dockerfile_that_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        build = service["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"


@pytest.mark.parametrize("name", sorted(EDGE.modules))
def test_each_module_service_matches_the_manifest(compose: dict[str, Any], name: str) -> None:
    """Image, env, restart policy, startup order and createOptions (log config, binds, ports) as edgeAgent
    would apply them."""
    spec = EDGE.modules[name]
    service = compose["services"][name]
    image = image_for(spec.image, name)
    assert _default(service["image"]) == image.replace(os.environ.get("CONTAINER_REGISTRY_ADDRESS") or "localhost",
                                                       "localhost", 1)
    folder = image.split("/", 1)[1].split(":", 1)[0]
    assert service["build"]["dockerfile"] == f"modules/{folder}/Dockerfile.amd64"
    environment = {**service.get("environment", {})}
    for key, value in spec.env.items():
        assert str(environment.get(key)) == value, f"{name}: env {key}"
    assert service["restart"] == COMPOSE_RESTART[spec.restart_policy]
    for dependency in service.get("depends_on", []):
        if dependency in EDGE.modules:
            assert EDGE.modules[dependency].startup_order < spec.startup_order, f"{name} after {dependency}"
    options = parse_create_options(name, SETTINGS[name])
    host = options.get("HostConfig", {})
    if "LogConfig" in host:
        assert service["logging"] == {"driver": host["LogConfig"]["Type"], "options": host["LogConfig"]["Config"]}
    for bind in host.get("Binds", []):
        assert bind in service["volumes"], f"{name}: bind {bind}"
    published = {_default(p).rsplit(":", 2)[1] + "/tcp" for p in service.get("ports", [])}
    assert set(host.get("PortBindings", {})) <= published, name
    # hardened as the container run runs it: read-only root, writable state only on its volume
    assert service["read_only"] is True and service["cap_drop"] == ["ALL"] and service["init"] is True
    assert any(v.endswith(":/app/data") for v in service["volumes"]), name


@pytest.mark.parametrize("name", ["solar", "battery", "boiler", "microgrid-controller", "controller", "telemetry"])
def test_modules_launch_with_their_own_identity(compose: dict[str, Any], name: str) -> None:
    entrypoint = compose["services"][name]["entrypoint"]
    assert entrypoint[entrypoint.index("--module") + 1] == name
    assert {"emulator", "simulator"} <= set(compose["services"][name]["depends_on"])


def test_the_emulator_advertises_its_service_name(compose: dict[str, Any]) -> None:
    command = compose["services"]["emulator"]["command"]
    assert command[command.index("--advertise-host") + 1] == "emulator"
    assert compose["services"]["emulator"]["environment"]["SIMULATOR_HOST"] == "simulator"


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


@pytest.mark.integration
def test_the_compose_site_comes_up_and_down(module_images: list[dict[str, Any]], tmp_path: Path) -> None:
    """Every service up from the built images, the telemetry module's /healthz sees all four assets through
    the emulator's routes, and `down -v` leaves no container, network or volume of the project."""
    command = _compose_command()
    assert command, "docker-compose is installed by scripts/install-system-deps.sh"
    address = next_loopback()
    project = f"energy-edge-test-{os.getpid()}"
    env = {**os.environ, "ENERGY_EDGE_PUBLISH_ADDRESS": address, "COMPOSE_PROJECT_NAME": project}
    base = [*command, "-f", str(COMPOSE), "-p", project]
    up = subprocess.run([*base, "up", "-d", "--no-build"], env=env, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        deadline = time.monotonic() + 120
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{address}:9600/healthz", timeout=5) as response:
                    health = json.load(response)
                if health.get("status") == "ok" and health.get("assets") == 4:
                    break
            except OSError:
                pass
            time.sleep(1)
        logs = subprocess.run([*base, "logs", "--tail", "20"], env=env, capture_output=True, text=True).stdout
        assert health.get("status") == "ok" and health.get("assets") == 4, (health, logs[-4000:])
        states = subprocess.run([*base, "ps"], env=env, capture_output=True, text=True).stdout
        assert "Restarting" not in states and "Exit" not in states, states
        # the telemetry image's HEALTHCHECK (its /healthz) reports healthy to Docker (first probe after 30 s)
        telemetry = subprocess.run([*base, "ps", "-q", "telemetry"], env=env, capture_output=True,
                                   text=True).stdout.strip()
        deadline = time.monotonic() + 90
        health_status = ""
        while time.monotonic() < deadline and health_status != "healthy":
            time.sleep(2)
            health_status = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", telemetry],
                                           capture_output=True, text=True).stdout.strip()
        assert health_status == "healthy", health_status
    finally:
        down = subprocess.run([*base, "down", "-v", "--timeout", "10"], env=env, capture_output=True, text=True,
                              timeout=120)
    assert down.returncode == 0, down.stderr
    label = f"label=com.docker.compose.project={project}"
    for kind in ("container", "network", "volume"):
        listed = subprocess.run(["docker", kind, "ls", *(["-a"] if kind == "container" else []), "-q", "--filter",
                                 label], capture_output=True, text=True).stdout.split()
        assert listed == [], f"{kind}s left: {listed}"
