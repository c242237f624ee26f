"""The operator CLI against the emulator, through the real service SDK (azure-iot-hub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from energy_edge.hub.store import query_upstream
from tests.support import ENERGY_EDGE, REPO, HubProcess, ModuleProcess, next_loopback, registry_manager, site_manifest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """The deployment manifest (devices unreachable: configuration and methods still work) and two modules."""
    root = tmp_path_factory.mktemp("operator")
    manifest = root / "deployment.json"
    manifest.write_text(json.dumps(site_manifest("127.0.0.1", drop=("simulator",), probe_inputs=False)))
    hub = HubProcess(manifest, root / "hub", next_loopback()).start()
    modules = [ModuleProcess(hub, m, [f"modules/{m}-module/main.py"], {"STATE_DIR": str(root / "state")}).start()
               for m in ("solar", "battery")]
    manager = registry_manager(hub)
    deadline = time.monotonic() + 30
    while not all(manager.get_module_twin(hub.hub_json["device_id"], m).properties.reported.get("config")
                  for m in ("solar", "battery")):
        assert time.monotonic() < deadline, "modules did not report their configuration"
        time.sleep(0.2)
    yield hub
    for module in modules:
        module.stop()
    hub.stop()


def cli(hub: HubProcess | None, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--hub-json", str(hub.data_dir / "hub.json")] if hub else []
    return subprocess.run([*ENERGY_EDGE, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def desired_version(hub: HubProcess, module: str) -> int:
    twin = registry_manager(hub).get_module_twin(hub.hub_json["device_id"], module)
    version: int = twin.properties.desired["$version"]
    return version


def test_twin_set_valid_value_is_applied_and_reported(hub: HubProcess) -> None:
    result = cli(hub, "twin", "set", "battery", "poll_interval_s=2.5", "watchdog_s=90")
    assert result.returncode == 0, result.stderr
    assert 'patch for battery: {"poll_interval_s": 2.5, "watchdog_s": 90}' in result.stdout
    assert "battery applied" in result.stdout
    shown = json.loads(cli(hub, "twin", "show", "battery", "--json").stdout)
    assert shown["reported"]["config"]["applied"]["poll_interval_s"] == 2.5
    assert shown["desired"]["watchdog_s"] == 90


@pytest.mark.parametrize(
    ("assignments", "field"),
    [(["poll_interval_s=0"], "poll_interval_s"), (["watchdog_s=soon"], "watchdog_s"),
     (["no_such_setting=1"], "no_such_setting"), (['devices=[{"asset_id": "x"}]'], "devices.0.host")],
)
def test_twin_set_invalid_value_is_stopped_before_sending(hub: HubProcess, assignments: list[str], field: str) -> None:
    before = desired_version(hub, "battery")
    result = cli(hub, "twin", "set", "battery", *assignments)
    assert result.returncode == 1
    assert "nothing was sent" in result.stderr
    assert field in result.stderr
    assert desired_version(hub, "battery") == before


def test_a_change_the_module_refuses_is_shown_as_rejected(hub: HubProcess) -> None:
    # valid for the model, refused by the module itself: two devices with one asset id
    device = {"asset_id": "pv-x", "host": "127.0.0.1", "port": 1502}
    result = cli(hub, "twin", "set", "solar", f"devices={json.dumps([device, device])}")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "solar rejected" in result.stdout
    assert "devices: duplicate asset_id pv-x" in result.stdout
    cli(hub, "twin", "set", "solar", "devices=[]")


def test_twin_edit_sends_what_the_editor_changed(hub: HubProcess, tmp_path: Path) -> None:
    editor = tmp_path / "editor.py"
    editor.write_text("import json, sys\np = sys.argv[1]\ndoc = json.load(open(p))\ndoc['poll_interval_s'] = 3\n"
                      "doc.pop('watchdog_s', None)\njson.dump(doc, open(p, 'w'))\n")
    result = cli(hub, "twin", "edit", "battery", env={"EDITOR": f"{sys.executable} {editor}"})
    assert result.returncode == 0, result.stderr
    assert '"poll_interval_s": 3' in result.stdout and '"watchdog_s": null' in result.stdout
    applied = json.loads(cli(hub, "twin", "show", "battery", "--json").stdout)["reported"]["config"]["applied"]
    assert applied["poll_interval_s"] == 3
    assert applied["watchdog_s"] == 60  # back to the default once the key is gone


@pytest.mark.parametrize(
    ("module", "method", "payload", "code", "status"),
    [
        ("battery", "no_such_method", "{}", 2, 404),
        ("battery", "set_power", '{"power_kw": "x"}', 2, 400),
        ("solar", "set_output", '{"percent": 10, "asset_id": "nope"}', 2, 404),
    ],
)
def test_method_call_returns_the_module_answer(hub: HubProcess, module: str, method: str, payload: str, code: int,
                                               status: int) -> None:
    result = cli(hub, "method", "call", module, method, "--payload", payload, "--timeout", "10", "--json")
    assert result.returncode == code, result.stderr
    assert json.loads(result.stdout)["status"] == status


def test_method_call_to_a_module_that_is_not_connected(hub: HubProcess) -> None:
    result = cli(hub, "method", "call", "boiler", "stop", "--timeout", "5")
    assert result.returncode == 1
    assert "boiler is not connected" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--connection-string", "HostName=h;DeviceId=d;SharedAccessKey=k"], "service policy"),
        (["--connection-string", "garbage"], "is not Key=Value"),
    ],
)
def test_bad_connection_strings_are_explained(args: list[str], message: str) -> None:
    result = cli(None, "twin", "show", "battery", "--device", "d", *args)
    assert result.returncode == 1
    assert message in result.stderr


def test_unknown_module_is_named(hub: HubProcess) -> None:
    result = cli(hub, "twin", "set", "kettle", "x=1")
    assert result.returncode == 1
    assert "unknown module 'kettle'" in result.stderr and "battery" in result.stderr


def test_deploy_changes_routes(hub: HubProcess, tmp_path: Path) -> None:
    manifest = site_manifest("127.0.0.1", drop=("simulator",), probe_inputs=False)
    routes = manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    routes["solarUpstream"] = "FROM /messages/modules/solar/outputs/telemetry INTO $upstream"
    path = tmp_path / "with-solar-upstream.json"
    path.write_text(json.dumps(manifest))
    db = hub.data_dir / "hub.db"
    assert not query_upstream(db, module_id="solar", message_type="telemetry")
    registry = {"CONTAINER_REGISTRY_ADDRESS": "example.azurecr.io", "CONTAINER_REGISTRY_USERNAME": "u",
                "CONTAINER_REGISTRY_PASSWORD": "p"}  # as the pipeline's variables would give them
    refused = cli(hub, "deploy", str(path))
    assert refused.returncode == 1 and "CONTAINER_REGISTRY_ADDRESS" in refused.stderr
    result = cli(hub, "deploy", str(path), env=registry)
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 20
    while not query_upstream(db, module_id="solar", message_type="telemetry"):
        assert time.monotonic() < deadline, "the new route never carried a message"
        time.sleep(0.2)
