"""The four asset modules against the simulator over real Modbus TCP, through the emulator and the SDKs.

One site for the file: simulator, emulator (the real deployment manifest without the controller,
plus a `probe` module that receives all telemetry), and the four module processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from energy_edge_base.contract import parse_message
from tests.support import Site, registry_manager

pytestmark = pytest.mark.integration

ASSETS = {"pv-1": "solar", "bess-1": "battery", "boiler-1": "boiler", "mgc-1": "microgrid_controller"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    site = Site(tmp_path_factory.mktemp("asset-site"), ("solar", "battery", "boiler", "microgrid-controller"),
                drop=("simulator", "controller")).start()
    try:
        assert site.probe is not None
        site.probe.wait_for(lambda p: all(p.latest.get(a, {}).get("online") for a in ASSETS), 60,
                            "every asset online")
        yield site
    finally:
        site.stop()


def sim_device(site: Site, asset_id: str) -> dict[str, Any]:
    device: dict[str, Any] = site.sim.state()["devices"][asset_id]
    return device


def wait_sim(site: Site, predicate: Any, what: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = site.sim.state()
        if predicate(state):
            return state
        time.sleep(0.1)
    raise AssertionError(f"simulator never showed {what}: {state}")


@pytest.mark.parametrize("asset_id", list(ASSETS))
def test_telemetry_follows_the_contract(site: Site, asset_id: str) -> None:
    assert site.probe is not None
    body = site.probe.latest[asset_id]
    message = parse_message(body)  # raises on anything the contract refuses
    assert message.asset_type == ASSETS[asset_id]  # type: ignore[union-attr]
    assert message.online is True  # type: ignore[union-attr]
    props = next(p for _, b, p in reversed(site.probe.messages) if b.get("asset_id") == asset_id)
    assert props["messageType"] == "telemetry"
    assert props["assetType"] == ASSETS[asset_id]


def test_battery_discharge_lowers_grid_import(site: Site) -> None:
    status, _ = site.call("battery", "set_power", {"power_kw": 0})
    assert status == 200
    before = wait_sim(site, lambda s: abs(s["devices"]["bess-1"]["power_kw"]) < 0.5, "battery idle")
    status, payload = site.call("battery", "set_power", {"power_kw": 40})
    assert status == 200, payload
    assert payload["applied"] == {"power_kw": 40}
    assert payload["read_back"]["setpoint_kw"] == pytest.approx(40, abs=0.5)
    after = wait_sim(site, lambda s: s["devices"]["bess-1"]["power_kw"] > 39, "battery discharging 40 kW")
    # the meter sees the discharge: import falls by about 40 kW (load and PV move a little meanwhile)
    load_change = after["site"]["load_kw"] - before["site"]["load_kw"]
    pv_change = after["site"]["pv_kw"] - before["site"]["pv_kw"]
    drop = before["site"]["grid_import_kw"] - after["site"]["grid_import_kw"] + load_change - pv_change
    assert drop == pytest.approx(40, abs=2)
    site.call("battery", "stop", {})


@pytest.mark.parametrize(
    ("method", "payload", "status", "expected"),
    [
        ("start_charging", {"power_kw": 30}, 200, {"storctl_mod": 1, "command_kw": -30}),
        ("start_discharging", {"power_kw": 25, "asset_id": "bess-1"}, 200, {"storctl_mod": 2, "command_kw": 25}),
        ("set_power", {"power_kw": 500}, 200, {"command_kw": 100}),  # clamped to the rating
        ("set_power", {"power_kw": -500}, 200, {"command_kw": -100}),
        ("stop", {}, 200, {"storctl_mod": 0, "command_kw": 0}),
        ("reset", {}, 200, {"storctl_mod": 0, "command_kw": 0}),
        ("set_power", {"power_kw": "lots"}, 400, None),
        ("start_charging", {"power_kw": -5}, 400, None),
        ("set_power", {"power_kw": 5, "asset_id": "bess-9"}, 404, None),
        ("explode", {}, 404, None),
    ],
)
def test_battery_methods(site: Site, method: str, payload: dict[str, Any], status: int,
                         expected: dict[str, Any] | None) -> None:
    got_status, got = site.call("battery", method, payload)
    assert got_status == status, got
    if expected is None:
        if status == 400:
            assert got["errors"][0]["field"] in payload
        return
    assert got["asset_id"] == "bess-1"
    device = sim_device(site, "bess-1")
    for key, value in expected.items():
        assert device[key] == pytest.approx(value, abs=0.6), device
    if method == "set_power" and abs(payload["power_kw"]) > 100:
        assert got["clamped"] is True
        assert got["requested"] == {"power_kw": payload["power_kw"]}


def test_battery_batch_method(site: Site) -> None:
    """set_powers over the real SDK, emulator and Modbus: one call, one result per command."""
    status, got = site.call("battery", "set_powers", {"commands": [
        {"asset_id": "bess-1", "power_kw": 35}, {"asset_id": "bess-9", "power_kw": 5}]})
    assert status == 200, got
    first, unknown = got["results"]
    assert first["status"] == 200 and first["payload"]["applied"] == {"power_kw": 35}
    assert unknown["status"] == 404 and unknown["payload"]["known_assets"] == ["bess-1"]
    assert sim_device(site, "bess-1")["command_kw"] == pytest.approx(35, abs=0.6)
    status, got = site.call("battery", "set_powers", {"commands": [{"asset_id": "bess-1", "power_kw": "lots"}]})
    assert status == 400 and got["errors"][0]["field"] == "commands.0.power_kw"
    site.call("battery", "stop", {})


def test_battery_watchdog_returns_to_idle(site: Site) -> None:
    manager = registry_manager(site.hub)
    from azure.iot.hub.models import Twin, TwinProperties

    device_id = site.hub.hub_json["device_id"]
    manager.update_module_twin(device_id, "battery", Twin(properties=TwinProperties(desired={"watchdog_s": 2})))
    try:
        assert site.probe is not None
        deadline = time.monotonic() + 15
        while manager.get_module_twin(device_id, "battery").properties.reported["config"]["applied"][
                "watchdog_s"] != 2:
            assert time.monotonic() < deadline, "watchdog setting not applied"
            time.sleep(0.1)
        assert site.call("battery", "set_power", {"power_kw": -20})[0] == 200
        wait_sim(site, lambda s: s["devices"]["bess-1"]["command_kw"] < -19, "charging")
        # no further command: within watchdog_s + a poll the module puts the battery back to idle
        wait_sim(site, lambda s: s["devices"]["bess-1"]["command_kw"] == 0, "watchdog idle", timeout_s=10)
    finally:
        manager.update_module_twin(device_id, "battery", Twin(properties=TwinProperties(desired={"watchdog_s": 0})))


@pytest.mark.parametrize(
    ("method", "payload", "expected"),
    [
        ("set_output", {"percent": 50}, {"wmaxlim_ena": True, "wmaxlim_pct": 50}),
        ("set_output", {"power_kw": 90}, {"wmaxlim_ena": True, "wmaxlim_pct": 50}),  # 90 of 180 kW
        ("set_output", {"percent": 100}, {"wmaxlim_ena": False}),  # lifts the limit
        ("stop", {}, {"conn": False}),
        ("start", {}, {"conn": True}),
        ("reset", {}, {"conn": True, "wmaxlim_ena": False}),
    ],
)
def test_solar_methods(site: Site, method: str, payload: dict[str, Any], expected: dict[str, Any]) -> None:
    status, got = site.call("solar", method, payload)
    assert status == 200, got
    device = sim_device(site, "pv-1")
    for key, value in expected.items():
        assert device[key] == pytest.approx(value), device


@pytest.mark.parametrize(
    ("payload", "error_field"),
    [({"percent": 50, "power_kw": 10}, "(payload)"), ({}, "(payload)"), ({"percent": 150}, "percent")],
)
def test_solar_set_output_refuses_bad_payloads(site: Site, payload: dict[str, Any], error_field: str) -> None:
    status, got = site.call("solar", "set_output", payload)
    assert status == 400
    assert got["errors"][0]["field"] == error_field


@pytest.mark.parametrize(
    ("method", "payload", "expected", "clamped"),
    [
        ("set_temperature", {"setpoint_c": 70}, {"setpoint_c": 70}, False),
        ("set_temperature", {"setpoint_c": 120}, {"setpoint_c": 80}, True),  # the scenario tank: 55..80 °C
        ("start", {"power_kw": 10}, {"enable": True, "power_limit_kw": 10}, False),
        ("start", {"power_kw": 99}, {"enable": True, "power_limit_kw": 30}, True),
        ("stop", {}, {"enable": False}, False),
        ("reset", {}, {}, False),
        ("start", {}, {"enable": True, "power_limit_kw": 30}, False),
    ],
)
def test_boiler_methods(site: Site, method: str, payload: dict[str, Any], expected: dict[str, Any],
                        clamped: bool) -> None:
    status, got = site.call("boiler", method, payload)
    assert status == 200, got
    assert got["clamped"] is clamped
    device = sim_device(site, "boiler-1")
    for key, value in expected.items():
        assert device[key] == pytest.approx(value), device


def test_boiler_heater_limit_changes_the_physics(site: Site) -> None:
    assert site.call("boiler", "set_temperature", {"setpoint_c": 85})[0] == 200
    assert site.call("boiler", "start", {"power_kw": 12})[0] == 200
    state = wait_sim(site, lambda s: 11 < s["devices"]["boiler-1"]["heater_kw"] <= 12.01, "heating at 12 kW")
    assert state["site"]["heater_kw"] == pytest.approx(12, abs=0.1)
    site.call("boiler", "set_temperature", {"setpoint_c": 60})


@pytest.mark.parametrize(
    ("method", "payload", "expected"),
    [
        ("set_import_limit", {"import_limit_kw": 120}, {"import_limit_kw": 120}),
        ("set_peak_shaving", {"enabled": False}, {"peak_shaving_enable": False}),
        ("set_peak_shaving", {"enabled": True}, {"peak_shaving_enable": True}),
        ("set_der", {"enabled": False}, {"der_enable": False, "der_active": False}),
        ("set_der", {"enabled": True}, {"der_enable": True}),
        ("set_import_limit", {"import_limit_kw": 150}, {"import_limit_kw": 150}),
    ],
)
def test_microgrid_controller_methods(site: Site, method: str, payload: dict[str, Any],
                                      expected: dict[str, Any]) -> None:
    status, got = site.call("microgrid-controller", method, payload)
    assert status == 200, got
    meter = wait_sim(site, lambda s: all(s["site"].get(k) == v for k, v in expected.items()), str(expected))["site"]
    assert meter["import_limit_kw"] > 0


def test_meter_status_booleans_reach_telemetry(site: Site) -> None:
    assert site.call("microgrid-controller", "set_der", {"enabled": False})[0] == 200
    assert site.probe is not None
    site.probe.wait_for(lambda p: p.latest["mgc-1"].get("der_active") is False, 10, "DER off in telemetry")
    assert site.call("microgrid-controller", "set_der", {"enabled": True})[0] == 200
    expected = site.sim.state()["site"]["der_active"]
    site.probe.wait_for(lambda p: p.latest["mgc-1"].get("der_active") is expected, 10, "DER state in telemetry")


@pytest.mark.parametrize(("module", "asset_id"), [("battery", "bess-1"), ("boiler", "boiler-1")])
def test_offline_device_is_reported_and_recovers(site: Site, module: str, asset_id: str) -> None:
    assert site.probe is not None
    site.sim.post("/faults", {"asset_id": asset_id, "fault": "offline"})
    try:
        body = site.probe.wait_for(lambda p: p.latest[asset_id].get("online") is False and p.latest[asset_id], 30,
                                   f"{asset_id} offline")
        assert body["fault"].startswith("unreachable")
        assert body["fault_code"] == 1
        status, got = site.call(module, "stop", {})
        assert status == 503, got  # a command to an unreachable device says so
    finally:
        site.sim.post("/faults", {"asset_id": asset_id, "fault": "none"})
    site.probe.wait_for(lambda p: p.latest[asset_id].get("online") is True, 90, f"{asset_id} back online")


def test_exception_replies_are_counted_not_fatal(site: Site) -> None:
    assert site.probe is not None
    site.sim.post("/faults", {"asset_id": "pv-1", "fault": "exception", "code": 4})
    try:
        site.probe.wait_for(lambda p: (p.latest["pv-1"].get("fault") or "").startswith("modbus exception"), 15,
                            "exception reported")
        # the device answered but gave no values: never the last good ones under a fresh timestamp
        reported = site.probe.latest["pv-1"]
        assert (reported["online"], reported["ac_power_kw"], reported["fault_code"]) == (False, 0.0, 1)
    finally:
        site.sim.post("/faults", {"asset_id": "pv-1", "fault": "none"})
    site.probe.wait_for(lambda p: p.latest["pv-1"].get("fault") is None, 15, "fault cleared")
    assert site.modules["solar"].proc is not None and site.modules["solar"].proc.poll() is None


def test_bad_twin_patch_is_rejected_and_devices_keep_running(site: Site) -> None:
    from azure.iot.hub.models import Twin, TwinProperties

    manager = registry_manager(site.hub)
    device_id = site.hub.hub_json["device_id"]
    twin = manager.update_module_twin(device_id, "solar", Twin(properties=TwinProperties(
        desired={"poll_interval_s": 0})))
    version = twin.properties.desired["$version"]
    deadline = time.monotonic() + 15
    while True:
        config = manager.get_module_twin(device_id, "solar").properties.reported["config"]
        if config["desired_version"] == version:
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert config["status"] == "rejected"
    assert config["errors"][0]["field"] == "poll_interval_s"
    assert config["applied"]["poll_interval_s"] == 1.0
    manager.update_module_twin(device_id, "solar", Twin(properties=TwinProperties(desired={"poll_interval_s": 1.0})))


def test_modules_write_no_raw_telemetry_upstream(site: Site) -> None:
    """Cloud traffic: asset telemetry stays on the edge (no route sends it to $upstream)."""
    from energy_edge.hub.store import query_upstream

    records = query_upstream(Path(site.hub.data_dir) / "hub.db")
    assert [r for r in records if r.message_type == "telemetry"] == []
