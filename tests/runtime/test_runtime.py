"""The module runtime carried through its contract by the example module, on the real stack:
emulator process, module process, real SDK clients for the checks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

from energy_edge.hub.store import query_upstream
from tests.support import HubProcess, ModuleProcess, registry_manager

pytestmark = pytest.mark.integration

MANIFEST = Path(__file__).parent / "example.deployment.json"
EXAMPLE = ["shared/examples/example_module.py"]


def wait_until(predicate: Any, timeout_s: float = 20, what: str = "condition") -> Any:
    """Poll state that lives in another process (twin, upstream store) until it holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, ModuleProcess]]:
    hub = HubProcess(MANIFEST, tmp_path_factory.mktemp("runtime-hub")).start()
    module = ModuleProcess(hub, "example", EXAMPLE).start()
    try:
        wait_until(lambda: reported_config(hub).get("status"), what="the first config report")
        yield hub, module
    finally:
        module.stop()
        hub.stop()


def reported_config(hub: HubProcess) -> dict[str, Any]:
    twin = registry_manager(hub).get_module_twin(hub.hub_json["device_id"], "example")
    config: dict[str, Any] = twin.properties.reported.get("config", {})
    return config


def call(hub: HubProcess, method: str, payload: Any) -> tuple[int, Any]:
    result = registry_manager(hub).invoke_device_module_method(
        hub.hub_json["device_id"], "example",
        CloudToDeviceMethod(method_name=method, payload=payload, response_timeout_in_seconds=10),
    )
    return result.status, result.payload


def set_desired(hub: HubProcess, desired: dict[str, Any]) -> int:
    twin = registry_manager(hub).update_module_twin(
        hub.hub_json["device_id"], "example", Twin(properties=TwinProperties(desired=desired))
    )
    version: int = twin.properties.desired["$version"]
    return version


def test_start_applies_and_reports_the_manifest_configuration(site: tuple[HubProcess, ModuleProcess]) -> None:
    hub, _ = site
    config = reported_config(hub)
    assert config["status"] == "applied"
    assert config["applied"]["site_id"] == "site-7"
    assert config["applied"]["interval_s"] == 0.2
    assert config["errors"] == []


@pytest.mark.parametrize(
    ("method", "payload", "status", "check"),
    [
        ("set_setpoint", {"setpoint_kw": 10}, 200,
         lambda p: p == {"requested_kw": 10, "applied_kw": 10, "clamped": False}),
        ("set_setpoint", {"setpoint_kw": 100}, 200, lambda p: p["applied_kw"] == 40 and p["clamped"]),
        ("set_setpoint", {"setpoint_kw": "lots"}, 400, lambda p: p["errors"][0]["field"] == "setpoint_kw"),
        ("set_setpoint", {}, 400, lambda p: p["errors"][0]["field"] == "setpoint_kw"),
        ("set_setpoint", {"setpoint_kw": 1, "extra": 2}, 400, lambda p: p["errors"][0]["field"] == "extra"),
        ("no_such_method", None, 404, lambda p: "set_setpoint" in p["known_methods"]),
        ("fail", None, 500, lambda p: len(p["error_id"]) == 12),
        ("get_state", None, 200, lambda p: p["label"] == "from-manifest"),  # still running after the 500
    ],
)
def test_direct_methods(site: tuple[HubProcess, ModuleProcess], method: str, payload: Any, status: int,
                        check: Any) -> None:
    hub, module = site
    got_status, got_payload = call(hub, method, payload)
    assert got_status == status, got_payload
    assert check(got_payload), got_payload
    if status == 500:
        assert got_payload["error_id"] in module.output()  # the same id is in the module's log


@pytest.mark.parametrize(
    ("patch", "status", "error_field"),
    [
        ({"interval_s": -1}, "rejected", "interval_s"),
        ({"interval_s": "fast"}, "rejected", "interval_s"),
        ({"unknown_key": 1}, "rejected", "unknown_key"),
        ({"label": "forbidden"}, "rejected", "label"),  # refused by the module's own apply step
        ({"label": "patched", "interval_s": 0.25}, "applied", None),
    ],
)
def test_desired_patches_applied_or_rejected(site: tuple[HubProcess, ModuleProcess], patch: dict[str, Any],
                                             status: str, error_field: str | None) -> None:
    hub, _ = site
    before = reported_config(hub)["applied"]
    version = set_desired(hub, patch)
    config = wait_until(lambda: (c := reported_config(hub)).get("desired_version") == version and c,
                        what=f"report of desired v{version}")
    assert config["status"] == status
    if status == "rejected":
        assert config["applied"] == before  # the last good configuration stays in force
        assert error_field in [e["field"] for e in config["errors"]]
        set_desired(hub, {k: None for k in patch})  # take the bad keys back out of desired
    else:
        assert config["applied"]["label"] == "patched"
        assert config["applied_version"] == version
        _, state = call(hub, "get_state", None)
        assert state["label"] == "patched"


def test_telemetry_reaches_upstream_with_routing_properties(site: tuple[HubProcess, ModuleProcess]) -> None:
    hub, _ = site
    records = wait_until(lambda: query_upstream(hub.data_dir / "hub.db", module_id="example"), what="telemetry")
    record = records[-1]
    assert record.app_properties == {"messageType": "telemetry", "assetType": "example", "schemaVersion": "1.0"}
    assert record.system_properties["contentType"] == "application/json"
    assert record.body_json()["site_id"] == "site-7"


def test_messages_sent_while_the_hub_is_down_arrive_after_it_returns(tmp_path: Path) -> None:
    hub = HubProcess(MANIFEST, tmp_path).start()
    module = ModuleProcess(hub, "example", EXAMPLE).start()
    db = tmp_path / "hub.db"

    def seqs() -> list[int]:
        return [r.body_json()["seq"] for r in query_upstream(db, module_id="example")]

    try:
        wait_until(lambda: len(seqs()) >= 3, what="first telemetry")
        assert hub.stop() == 0
        last_before = max(seqs())
        time.sleep(2.0)  # the outage itself: the module keeps producing into its outbox (every 0.2 s)
        hub.start()
        # Ten messages were made during the outage; wait for those and a few made after it.
        wait_until(lambda: max(seqs()) >= last_before + 15, timeout_s=60, what="telemetry after the hub returned")
        received = sorted(set(seqs()))
        assert received == list(range(received[-1] + 1)), "a gap: messages from the outage were lost"
    finally:
        module.stop()
        hub.stop()


def test_sigterm_stops_within_seconds_with_exit_0(tmp_path: Path) -> None:
    hub = HubProcess(MANIFEST, tmp_path).start()
    module = ModuleProcess(hub, "example", EXAMPLE).start()
    try:
        wait_until(lambda: reported_config(hub).get("status") == "applied", what="start-up")
        started = time.monotonic()
        assert module.stop(timeout_s=10) == 0
        assert time.monotonic() - started < 10
        assert "safe state: setpoint 0 kW" in module.output()
    finally:
        module.stop()
        hub.stop()


def test_unit_registry_answers_without_a_hub() -> None:
    """The registry on its own: the same answers, for pure logic tests of modules."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("example_module", Path("shared/examples/example_module.py"))
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    module = example.ExampleModule()
    result = asyncio.run(module.methods.dispatch("set_setpoint", json.loads('{"setpoint_kw": "x"}')))
    assert result.status == 400
    assert result.payload["errors"][0]["field"] == "setpoint_kw"
