"""What the controller believes: every routed message is checked before it can steer a battery, and the core
holds the batteries over consecutive cycles while the meter's data is bad, then resumes on its own."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from types import SimpleNamespace
from typing import Any

import pytest

from controller_module.core.config import ControllerConfig
from controller_module.core.controller import Controller, Mode
from controller_module.core.state import BatteryView, MeterView, SiteState
from controller_module.module import ControllerModule

ASSETS = {"microgrid_controller": ["mgc-1"], "battery": ["bess-1"], "solar": ["pv-1"], "boiler": ["boiler-1"]}


def _stamp(offset_s: float = 0.0) -> str:
    return dt.datetime.fromtimestamp(time.time() + offset_s, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def meter_body(**changes: Any) -> dict[str, Any]:
    body = {
        "schema_version": "1.0", "message_type": "telemetry", "asset_type": "microgrid_controller",
        "site_id": "site-1", "asset_id": "mgc-1", "timestamp": _stamp(), "power_kw": 120.0, "setpoint_kw": None,
        "online": True, "status": "grid_connected", "fault_code": None, "fault": None, "grid_import_kw": 120.0,
        "site_load_kw": 130.0, "frequency_hz": 50.0, "voltage_v": 400.0, "peak_shaving_active": False,
        "der_active": True, "import_limit_kw": 150.0,
    }
    for key, value in changes.items():
        if value is _MISSING:
            body.pop(key)
        else:
            body[key] = value
    return body


_MISSING = object()


def battery_body(asset_id: str = "bess-1") -> dict[str, Any]:
    return {
        "schema_version": "1.0", "message_type": "telemetry", "asset_type": "battery", "site_id": "site-1",
        "asset_id": asset_id, "timestamp": _stamp(), "power_kw": 0.0, "setpoint_kw": 0.0, "online": True,
        "status": "idle", "fault_code": None, "fault": None, "soc_pct": 60.0, "soh_pct": 100.0, "energy_kwh": 120.0,
        "capacity_kwh": 200.0, "max_charge_kw": 100.0, "max_discharge_kw": 100.0,
    }


def module(assets: dict[str, list[str]] | None = ASSETS) -> ControllerModule:
    m = ControllerModule()
    m.runtime = SimpleNamespace(config=SimpleNamespace(current=ControllerConfig(assets=assets)))  # type: ignore[assignment]
    return m


def routed(source: str | None) -> Any:
    return SimpleNamespace(custom_properties={} if source is None else {"$.cmid": source, "$.cdid": "edge-device"})


COLLECTED_S = time.time()
INPUTS: list[tuple[str, Any, str | None, str | None]] = [
    # (case, body, source module, refused as) — every row a way a message misled or stopped the controller
    ("a good meter reading", meter_body(), "microgrid-controller", None),
    ("NaN import", meter_body(grid_import_kw=math.nan), "microgrid-controller", "invalid"),
    ("infinite power", meter_body(power_kw=math.inf), "microgrid-controller", "invalid"),
    ("import as a string", meter_body(grid_import_kw="184"), "microgrid-controller", "invalid"),
    ("import missing", meter_body(grid_import_kw=_MISSING), "microgrid-controller", "invalid"),
    ("online as a string", meter_body(online="false"), "microgrid-controller", "invalid"),
    ("stamped an hour ago", meter_body(timestamp=_stamp(-3600)), "microgrid-controller", "stale"),
    ("stamped in the future", meter_body(timestamp=_stamp(600)), "microgrid-controller", "future"),
    ("no time zone", meter_body(timestamp=_stamp()[:-1]), "microgrid-controller", "invalid"),
    ("from another module", meter_body(), "solar", "wrong_source"),
    ("no source module", meter_body(), None, "wrong_source"),
    ("of another site", meter_body(site_id="site-2"), "microgrid-controller", "other_site"),
    ("an unknown meter", meter_body(asset_id="mgc-9"), "microgrid-controller", "unknown_asset"),
    ("an unknown battery", battery_body("bess-phantom"), "battery", "unknown_asset"),
    ("a known battery", battery_body(), "battery", None),
    ("not telemetry", {"message_type": "event", "severity": "info", "code": "x", "text": "", "timestamp": _stamp(),
                       "schema_version": "1.0", "site_id": None, "asset_id": None}, "battery", "not_telemetry"),
    ("not an object", [1, 2, 3], "battery", "invalid"),
    ("a string", "hello", "battery", "invalid"),
]


@pytest.mark.parametrize(("body", "source", "refused"), [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
async def test_only_valid_telemetry_of_the_sites_assets_is_believed(body: Any, source: str | None,
                                                                     refused: str | None) -> None:
    # the rows were stamped when the suite was collected, minutes ago in a whole `make test`: keep their age
    if isinstance(body, dict) and str(body.get("timestamp", "")).endswith("Z"):
        stamped = dt.datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
        body = {**body, "timestamp": (stamped + dt.timedelta(seconds=time.time() - COLLECTED_S)).isoformat()
                .replace("+00:00", "Z")}
    m = module()
    await m.on_telemetry(body, routed(source))
    counted = {s.labels["kind"]: s.value for metric in m.metrics.invalid_inputs.collect() for s in metric.samples
               if s.name.endswith("_total")}
    if refused is None:
        assert counted == {} and list(m.aggregator.latest) == [body["asset_id"]]
    else:
        assert counted == {refused: 1.0} and m.aggregator.latest == {}


async def test_without_an_asset_list_any_asset_from_its_module_is_believed() -> None:
    m = module(assets=None)
    await m.on_telemetry(battery_body("bess-7"), routed("battery"))
    assert list(m.aggregator.latest) == ["bess-7"]


async def test_a_refused_reading_leaves_the_month_peak_alone() -> None:
    """A forged 400 kW reading stamped in the future was persisted as the month's peak and survived restarts."""
    m = module()
    await m.on_telemetry(meter_body(grid_import_kw=400.0, power_kw=400.0, timestamp=_stamp(3600)),
                         routed("microgrid-controller"))
    assert m.aggregator.grid_average.average(time.time()) is None and m.aggregator.latest == {}


# ---------------------------------------------------------------- consecutive cycles (OpenEMS-style)

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


def _battery(fault: str | None = None, power_kw: float = 0.0) -> BatteryView:
    return BatteryView("bess-1", True, power_kw, 60.0, 200.0, 100.0, 100.0, 0.5, fault)


def _meter(grid_kw: float, online: bool = True, fault: str | None = None, age_s: float = 0.5) -> MeterView:
    return MeterView("mgc-1", online, grid_kw, False, True, None, age_s, fault)


CYCLES: list[tuple[str, MeterView | None, tuple[BatteryView, ...], Mode, float, str]] = [
    # (cycle, meter, batteries, expected mode, expected bess-1 setpoint kW, reason contains)
    ("load above the limit", _meter(180), (_battery(),), Mode.PEAK_SHAVING, 32.0, "discharging"),
    ("meter frozen", _meter(0, online=False, fault="frozen data: heartbeat 12 unchanged for 3.1 s"), (_battery(),),
     Mode.FAIL_SAFE, 0.0, "meter offline (frozen data)"),
    ("still frozen", _meter(0, online=False, fault="frozen data: heartbeat 12 unchanged for 4.1 s"), (_battery(),),
     Mode.FAIL_SAFE, 0.0, "meter offline (frozen data)"),
    ("meter answers exception 4", _meter(0, online=False, fault="modbus exception: 4 (SERVER_DEVICE_FAILURE)"),
     (_battery(),), Mode.FAIL_SAFE, 0.0, "meter offline (modbus exception)"),
    ("meter data old", _meter(180, age_s=30), (_battery(),), Mode.FAIL_SAFE, 0.0, "meter data stale"),
    ("data good again: control resumes", _meter(180), (_battery(),), Mode.PEAK_SHAVING, 32.0, "discharging"),
    ("battery refuses commands: held, no share", _meter(180),
     (_battery(fault="command refused: Modbus exception 4 (SERVER_DEVICE_FAILURE)"),), Mode.PEAK_SHAVING, 0.0, ""),
    ("battery takes commands again", _meter(180), (_battery(),), Mode.PEAK_SHAVING, 32.0, "discharging"),
]


def test_the_fail_safe_holds_over_consecutive_cycles_and_control_resumes() -> None:
    controller = Controller(ControllerConfig(import_limit_kw=150, limit_margin_kw=2, ramp_kw_per_s=1000))
    for index, (name, meter, batteries, mode, setpoint_kw, reason) in enumerate(CYCLES):
        decision = controller.step(SiteState(T0 + dt.timedelta(seconds=index), meter, batteries))
        assert decision.status.mode is mode, name
        assert decision.battery_kw["bess-1"] == pytest.approx(setpoint_kw, abs=0.5), name
        assert reason in decision.status.reason, (name, decision.status.reason)


def test_inputs_table_covers_the_issue_rows() -> None:
    """Every kind the module refuses appears in the table above (a kind added later gets a row)."""
    kinds = {c[3] for c in INPUTS if c[3]}
    assert kinds == {"invalid", "stale", "future", "wrong_source", "other_site", "unknown_asset", "not_telemetry"}
    assert json.dumps(meter_body())  # the reference reading is plain JSON
