"""Layered deployments as IoT Edge does them: the merge rule as a table, then the project's own base + site +
diagnostics layers created with `energy-edge deploy` and selected by device tags, against a running emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.iot.hub import IoTHubConfigurationManager
from azure.iot.hub.models import Configuration, ConfigurationContent, Twin
from msrest.exceptions import HttpOperationError

from energy_edge.hub.cli import _admin_call
from energy_edge.hub.deployments import Configuration as HubConfiguration
from energy_edge.hub.deployments import device_desired_patch, effective_content, parse_configuration
from energy_edge.hub.errors import HubError, parse_error_body
from energy_edge.hub.store import query_upstream
from tests.support import ENERGY_EDGE, REPO, HubProcess, registry_manager
from tools.emulator.tests.conftest import FIXTURES
from tools.emulator.tests.test_emulator import connected, json_message
from tools.emulator.tests.test_fidelity import _call, _error_of
from tools.emulator.tests.test_service_api import _service_headers

DEPLOYMENT = REPO / "deployment"
REGISTRY_ENV = {"CONTAINER_REGISTRY_ADDRESS": "example.azurecr.io", "CONTAINER_REGISTRY_USERNAME": "u",
                "CONTAINER_REGISTRY_PASSWORD": "p"}


# ---------------------------------------------------------------- the merge rule (pure logic)


def _base(name: str, interval: int) -> dict[str, Any]:
    return {"modulesContent": {
        "$edgeAgent": {"properties.desired": {"modules": {"m": {"settings": {"image": name}}}}},
        "$edgeHub": {"properties.desired": {"routes": {"r": "FROM /messages/* INTO $upstream"}}},
        "m": {"properties.desired": {"interval": interval, "from": name}},
    }}


def _layer(value: Any, key: str = "properties.desired.interval") -> dict[str, Any]:
    return {"modulesContent": {"m": {key: value}}}


def _config(cid: str, content: dict[str, Any], target: str, priority: int, created: str) -> HubConfiguration:
    return HubConfiguration(cid, content, target, priority, {}, created, created)


DEVICE = {"deviceId": "d1", "tags": {"env": "prod", "site": "s1", "diag": True}}
CONFIGS = {
    "base-low": _config("base-low", _base("low", 1), "tags.env='prod'", 10, "2026-01-01"),
    "base-high": _config("base-high", _base("high", 2), "tags.env='prod' AND tags.site='s1'", 20, "2026-01-02"),
    "base-other": _config("base-other", _base("other", 3), "tags.env='dev'", 99, "2026-01-03"),
    "layer-30": _config("layer-30", _layer(30), "tags.site='s1'", 30, "2026-01-04"),
    "layer-25": _config("layer-25", _layer(25), "tags.diag=true", 25, "2026-01-05"),
    "layer-nested": _config("layer-nested", _layer({"a": 1}, "properties.desired.extra.deep"), "tags.diag=true",
                            5, "2026-01-06"),
    "layer-untargeted": _config("layer-untargeted", _layer(99), "tags.site='s2'", 90, "2026-01-07"),
    "layer-route": _config("layer-route", {"modulesContent": {"$edgeHub": {
        "properties.desired.routes.extra": "FROM /messages/modules/m/* INTO $upstream"}}}, "*", 1, "2026-01-08"),
}


@pytest.mark.parametrize(
    ("chosen", "applied", "interval", "image"),
    [
        (["base-low"], ["base-low"], 1, "low"),
        (["base-low", "base-high"], ["base-high"], 2, "high"),  # the base of highest priority that targets it
        (["base-low", "base-other"], ["base-low"], 1, "low"),  # base-other does not target the device
        (["base-low", "layer-30"], ["base-low", "layer-30"], 30, "low"),
        (["base-low", "layer-30", "layer-25"], ["base-low", "layer-25", "layer-30"], 30, "low"),  # 30 wins
        (["base-low", "layer-25", "layer-untargeted"], ["base-low", "layer-25"], 25, "low"),
        (["layer-30"], None, None, None),  # layers alone are no deployment
    ],
)
def test_effective_deployment(chosen: list[str], applied: list[str] | None, interval: int | None,
                              image: str | None) -> None:
    result = effective_content([CONFIGS[c] for c in chosen], DEVICE)
    if applied is None:
        assert result is None
        return
    assert result is not None
    assert result["appliedConfigurations"] == applied
    content = result["modulesContent"]
    assert content["m"]["properties.desired"]["interval"] == interval
    assert content["$edgeAgent"]["properties.desired"]["modules"]["m"]["settings"]["image"] == image


def test_layer_paths_create_nested_objects_and_routes() -> None:
    result = effective_content([CONFIGS["base-low"], CONFIGS["layer-nested"], CONFIGS["layer-route"]], DEVICE)
    assert result is not None
    content = result["modulesContent"]
    assert content["m"]["properties.desired"]["extra"] == {"deep": {"a": 1}}
    assert content["m"]["properties.desired"]["from"] == "low"  # the rest of the base's document stays
    assert set(content["$edgeHub"]["properties.desired"]["routes"]) == {"r", "extra"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"content": {"modulesContent": {}}, "targetCondition": "*"}, "InvalidConfigurationContent"),
        ({"content": {"modulesContent": {"m": {"desired.x": 1}}}, "targetCondition": "*"},
         "InvalidConfigurationContent"),
        ({"content": {"modulesContent": {"$edgeAgent": {"properties.desired": {}}}}, "targetCondition": "*"},
         "InvalidConfigurationContent"),  # a base needs $edgeHub too
        ({"content": {"deviceContent": {"x": 1}}, "targetCondition": "*"}, "InvalidConfigurationContent"),
        ({"content": {"deviceContent": {"properties.desired.x": 1}, **_layer(1)}}, "InvalidConfigurationContent"),
        ({"content": _layer(1), "targetCondition": "tags.site = "}, "InvalidConfigurationTargetCondition"),
        ({"content": _layer(1), "targetCondition": "tags.site IN ['a']"}, "NotImplementedInEmulator"),
        ({"content": _layer(1), "targetCondition": "*", "priority": -1}, "ArgumentInvalid"),
        ({"content": _layer(1), "targetCondition": "*", "id": "other"}, "ArgumentInvalid"),
    ],
)
def test_configuration_refusals(body: dict[str, Any], error: str) -> None:
    with pytest.raises(HubError) as refused:
        parse_configuration("c1", body, None)
    assert refused.value.error == error


def test_device_configurations_set_desired_paths_by_priority() -> None:
    configs = [
        parse_configuration("adm-low", {"content": {"deviceContent": {"properties.desired.fw.version": "1.0",
                                                                      "properties.desired.fw.channel": "stable"}},
                                        "targetCondition": "tags.env='prod'", "priority": 1}, None),
        parse_configuration("adm-high", {"content": {"deviceContent": {"properties.desired.fw.version": "2.0"}},
                                         "targetCondition": "tags.site='s1'", "priority": 5}, None),
        parse_configuration("adm-other", {"content": {"deviceContent": {"properties.desired.fw.version": "9"}},
                                          "targetCondition": "tags.site='s2'", "priority": 9}, None),
    ]
    assert device_desired_patch(configs, DEVICE) == {"fw": {"version": "2.0", "channel": "stable"}}
    assert effective_content(configs, DEVICE) is None  # no IoT Edge deployment among them


# ---------------------------------------------------------------- the project's layers, on a running emulator


@pytest.fixture(scope="module")
def fleet_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """An emulator that starts with the probe deployment; automatic deployments replace it once tags match."""
    hub = HubProcess(FIXTURES / "probe.deployment.json", tmp_path_factory.mktemp("fleet-hub")).start()
    yield hub
    assert hub.stop() == 0


def cli(hub: HubProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **REGISTRY_ENV}
    return subprocess.run([*ENERGY_EDGE, *args, "--hub-json", str(hub.data_dir / "hub.json")], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env=env)


def _applied(hub: HubProcess) -> list[str]:
    # what `energy-edge hub status` prints, called in-process: the poll below asks many times
    applied: list[str] = _admin_call(str(hub.data_dir), "GET", "/admin/status")["applied_configurations"]
    return applied


def _wait_applied(hub: HubProcess, expected: list[str], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while (applied := _applied(hub)) != expected:
        assert time.monotonic() < deadline, f"applied {applied}, expected {expected}"
        time.sleep(0.2)  # the hub applies deployments after it answered the change, as IoT Hub does


@pytest.mark.integration
def test_project_layers_follow_device_tags(fleet_hub: HubProcess) -> None:
    site_env = str(DEPLOYMENT / "sites" / "example.env.example")
    created = [
        cli(fleet_hub, "deploy", str(DEPLOYMENT / "deployment.production.template.json"),
            "--deployment-id", "prod-base", "--target-condition", "tags.environment='prod'", "--priority", "10"),
        cli(fleet_hub, "deploy", str(DEPLOYMENT / "layered" / "site.template.json"), "--env-file", site_env,
            "--deployment-id", "site-example-01", "--target-condition", "tags.site='site-example-01'",
            "--priority", "20"),
        cli(fleet_hub, "deploy", str(DEPLOYMENT / "layered" / "diagnostics.template.json"),
            "--deployment-id", "diagnostics", "--target-condition", "tags.diagnostics=true", "--priority", "30"),
    ]
    for result in created:
        assert result.returncode == 0, result.stderr
    assert "created layered deployment site-example-01" in created[1].stdout
    assert _applied(fleet_hub) == []  # no tags yet: the device keeps what it runs
    assert "probeA" in fleet_hub.hub_json["modules"]

    manager = registry_manager(fleet_hub)
    device_id = fleet_hub.hub_json["device_id"]
    tagged = cli(fleet_hub, "tag", "environment=prod", "site=site-example-01")
    assert tagged.returncode == 0, tagged.stderr
    _wait_applied(fleet_hub, ["prod-base", "site-example-01"])
    solar = manager.get_module_twin(device_id, "solar").properties.desired
    assert solar["site_id"] == "site-example-01"
    assert solar["devices"][0]["host"] == "10.20.0.11"  # from the site's env file, through the layer
    assert solar["poll_interval_s"] == 1.0  # the base's value for a path the layer does not set
    assert {"solar", "battery", "controller"} <= set(fleet_hub.hub_json["modules"])  # identities and sockets
    agent = manager.get_module_twin(device_id, "$edgeAgent").properties.desired
    assert "LOG_LEVEL" not in agent["modules"]["controller"].get("env", {})
    configs = IoTHubConfigurationManager.from_connection_string(fleet_hub.service_connection_string())
    metrics = {c: configs.get_configuration(c).system_metrics.results
               for c in ("prod-base", "site-example-01", "diagnostics")}
    assert metrics == {"prod-base": {"targetedCount": 1, "appliedCount": 1},
                       "site-example-01": {"targetedCount": 1, "appliedCount": 1},
                       "diagnostics": {"targetedCount": 0, "appliedCount": 0}}

    assert cli(fleet_hub, "tag", "diagnostics=true").returncode == 0
    _wait_applied(fleet_hub, ["prod-base", "site-example-01", "diagnostics"])
    agent = manager.get_module_twin(device_id, "$edgeAgent").properties.desired
    assert agent["modules"]["controller"]["env"]["LOG_LEVEL"]["value"] == "DEBUG"

    assert cli(fleet_hub, "tag", "site=null").returncode == 0  # off the site: its layer no longer applies
    _wait_applied(fleet_hub, ["prod-base", "diagnostics"])
    assert manager.get_module_twin(device_id, "solar").properties.desired["site_id"] == "unassigned"

    listed = cli(fleet_hub, "deploy", "--list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["id"], d["kind"], d["priority"], d["applied"]) for d in json.loads(listed.stdout)] == [
        ("prod-base", "base", 10, True), ("site-example-01", "layered", 20, False),
        ("diagnostics", "layered", 30, True)]
    assert cli(fleet_hub, "deploy", "--delete", "diagnostics").returncode == 0
    _wait_applied(fleet_hub, ["prod-base"])
    again = cli(fleet_hub, "deploy", str(DEPLOYMENT / "layered" / "diagnostics.template.json"),
                "--deployment-id", "prod-base", "--target-condition", "*", "--priority", "1")
    assert again.returncode == 1 and "409" in again.stderr  # the id exists: IoT Hub refuses the create


@pytest.mark.integration
async def test_layered_route_takes_effect_and_priority_decides(tmp_path: Any) -> None:
    hub = HubProcess(FIXTURES / "probe.deployment.json", tmp_path).start()
    try:
        configs = IoTHubConfigurationManager.from_connection_string(hub.service_connection_string())
        registry_manager(hub)  # trusts the emulator's CA for the SDK's requests
        base = json.loads((FIXTURES / "probe.deployment.json").read_text())
        base.pop("$schema-template")
        layer = {"modulesContent": {
            "$edgeHub": {"properties.desired.routes.sinkUp":
                         "FROM /messages/modules/sink/outputs/* INTO $upstream"},
            "probeB": {"properties.desired.threshold_kw": 42},
        }}
        low = {"modulesContent": {"probeB": {"properties.desired.threshold_kw": 7}}}
        for cid, content, target, priority in [("base", base, "tags.env='lab'", 10),
                                               ("routes", layer, "tags.env='lab'", 30),
                                               ("low", low, "tags.env='lab'", 20)]:
            await asyncio.to_thread(configs.create_configuration, Configuration(
                id=cid, content=ConfigurationContent(modules_content=content["modulesContent"]),
                target_condition=target, priority=priority))
        # An id that exists: a create is refused (409); so is the SDK's update_configuration, which sends the
        # etag unquoted, as IoT Hub does (Azure/azure-iot-hub-python#2). A quoted etag updates it, but never
        # its content (400049).
        existing = await asyncio.to_thread(configs.get_configuration, "low")
        with pytest.raises(HttpOperationError) as duplicate:
            await asyncio.to_thread(configs.create_configuration, existing)
        assert _error_of(duplicate.value) == (409, 409004)
        with pytest.raises(HttpOperationError) as unquoted:
            await asyncio.to_thread(configs.update_configuration, existing, existing.etag)
        assert _error_of(unquoted.value) == (409, 409004)
        path = "/configurations/low"
        view = {"id": "low", "content": low, "targetCondition": "tags.env='lab'", "priority": 21}
        headers = {**_service_headers(hub), "If-Match": f'"{existing.etag}"'}
        status, answer = await _call(hub, "PUT", path, headers, view)
        assert (status, answer["priority"]) == (200, 21), answer
        status, answer = await _call(hub, "PUT", path, headers, view)  # the etag changed with the update
        assert (status, parse_error_body(answer)["errorCode"]) == (412, 412001)
        changed = {**view, "content": {"modulesContent": {"probeB": {"properties.desired.threshold_kw": 8}}}}
        status, answer = await _call(hub, "PUT", path, {**headers, "If-Match": '"*"'}, changed)
        assert (status, parse_error_body(answer)["errorCode"]) == (400, 400049)
        listed = await asyncio.to_thread(configs.get_configurations)
        assert {c.id for c in listed} == {"base", "routes", "low"}

        manager = registry_manager(hub)
        device_id = hub.hub_json["device_id"]
        await asyncio.to_thread(manager.update_module_twin, device_id, "probeB", Twin(tags={"owner": "ops"}))
        await asyncio.to_thread(manager.update_twin, device_id, Twin(tags={"env": "lab"}))
        deadline = time.monotonic() + 20
        while _applied(hub) != ["base", "low", "routes"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        twin = await asyncio.to_thread(manager.get_module_twin, device_id, "probeB")
        assert twin.properties.desired["threshold_kw"] == 42  # priority 30 wins over 20
        assert twin.tags == {"owner": "ops"}  # a deployment replaces desired properties, never tags
        async with connected(hub, "sink") as sender:
            await sender.send_message_to_output(json_message({"via": "layer"}), "out")
        deadline = time.monotonic() + 20
        while not query_upstream(hub.data_dir / "hub.db", module_id="sink"):
            assert time.monotonic() < deadline, "the layer's route never carried the message"
            await asyncio.sleep(0.1)

        await asyncio.to_thread(configs.delete_configuration, "routes")
        deadline = time.monotonic() + 20
        while _applied(hub) != ["base", "low"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        twin = await asyncio.to_thread(manager.get_module_twin, device_id, "probeB")
        assert twin.properties.desired["threshold_kw"] == 7
    finally:
        assert hub.stop() == 0
