"""Aggregation: telemetry to site state, and the meter/battery reading skew."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controller_module.aggregate import SiteAggregator

NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.timezone.utc)


def meter(at_s: float, grid_kw: float) -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(at_s, dt.timezone.utc).isoformat()
    return {"asset_id": "mgc-1", "asset_type": "microgrid_controller", "online": True, "grid_import_kw": grid_kw,
            "timestamp": stamp, "peak_shaving_active": False, "der_active": True}


def battery(power_kw: float, setpoint_kw: float | None, read_at: float | None = None) -> dict[str, Any]:
    body = {"asset_id": "bess-1", "asset_type": "battery", "online": True, "power_kw": power_kw,
            "setpoint_kw": setpoint_kw, "soc_pct": 50.0, "capacity_kwh": 200.0, "max_charge_kw": 100.0,
            "max_discharge_kw": 100.0}
    if read_at is not None:
        body["timestamp"] = dt.datetime.fromtimestamp(read_at, dt.timezone.utc).isoformat()
    return body


@pytest.mark.parametrize(
    ("commands", "readings", "meter_at", "measured", "setpoint", "expected"),
    [
        # the meter was read before the new setpoint (60 kW) was written: the battery then gave 20 kW
        ([(100.0, 20.0), (105.0, 60.0)], [], 104.0, 60.0, 60.0, 20.0),
        # read after it: 60 kW
        ([(100.0, 20.0), (105.0, 60.0)], [], 106.0, 60.0, 60.0, 60.0),
        # the battery does not follow its setpoint (limited, faulted) and no reading precedes the meter's:
        # the measurement
        ([(100.0, 20.0), (105.0, 60.0)], [], 104.0, 35.0, 60.0, 35.0),
        # no command history yet: the measurement
        ([], [], 104.0, 12.0, None, 12.0),
        # a site's first seconds: the meter was read before the first setpoint, when the battery read 0 kW
        ([(105.0, 30.0)], [(103.5, 0.0), (105.5, 30.0)], 104.0, 30.0, 30.0, 0.0),
        # not tracking: the battery's reading just before the meter's, not the newest one
        ([(100.0, 60.0)], [(103.5, 28.0), (104.5, 35.0)], 104.0, 35.0, 60.0, 28.0),
        # the battery was read after the setpoint was written and before the meter: that reading
        ([(100.0, 60.0)], [(103.5, 57.0), (104.5, 60.0)], 104.0, 60.0, 60.0, 57.0),
        # a setpoint written between the last reading and the meter's, and the battery tracks: the setpoint
        ([(100.0, 20.0), (103.8, 60.0)], [(103.5, 20.0), (104.5, 60.0)], 104.0, 60.0, 60.0, 60.0),
        # ... and a battery that does not track it: the reading
        ([(100.0, 20.0), (103.8, 60.0)], [(103.5, 20.0), (104.5, 35.0)], 104.0, 35.0, 60.0, 20.0),
    ],
)
def test_battery_power_is_taken_at_the_meter_reading(
    commands: list[tuple[float, float]], readings: list[tuple[float, float]], meter_at: float, measured: float,
    setpoint: float | None, expected: float,
) -> None:
    aggregator = SiteAggregator()
    for written, kw in commands:
        aggregator.commanded("bess-1", written, kw)
    aggregator.add(meter(meter_at, 80.0), 0.0, NOW)
    for read_at, kw in readings:
        aggregator.add(battery(kw, setpoint, read_at), 0.0, NOW)
    aggregator.add(battery(measured, setpoint), 0.0, NOW)
    site = aggregator.site_state(1.0, NOW)
    assert site.batteries[0].power_kw == pytest.approx(expected)
    assert site.meter is not None and site.meter.grid_import_kw == 80.0


@pytest.mark.parametrize(
    "body",
    [{"asset_id": "x"}, {"asset_type": "battery"}, {"asset_id": "x", "asset_type": "kettle"}, "text"],
)
def test_unreadable_telemetry_is_ignored(body: Any) -> None:
    aggregator = SiteAggregator()
    assert aggregator.add(body, 0.0, NOW) is False
    assert aggregator.latest == {}


def test_ages_come_from_the_caller_clock() -> None:
    aggregator = SiteAggregator()
    aggregator.add(meter(0, 10.0), 100.0, NOW)
    assert aggregator.site_state(112.5, NOW).meter.age_s == pytest.approx(12.5)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "expected_w"),
    [
        ({"asset_id": "b", "asset_type": "battery", "power_kw": 8.0, "setpoint_kw": 10.0}, 2000.0),
        ({"asset_id": "s", "asset_type": "solar", "power_kw": 50.0, "setpoint_kw": 60.0, "curtailed": True}, 10000.0),
        ({"asset_id": "s", "asset_type": "solar", "power_kw": 50.0, "setpoint_kw": 180.0, "curtailed": False}, None),
    ],
)
async def test_tracking_error_in_metrics(body: dict[str, Any], expected_w: float | None) -> None:
    from controller_module.module import ControllerModule

    module = ControllerModule()
    module.take({"online": True, **body})
    lines = [line for line in module.metrics.exposition().decode().splitlines()
             if line.startswith("energy_edge_controller_tracking_error_watts{")]
    if expected_w is None:
        assert lines == []  # a PV cap is not a target
    else:
        assert lines == [f'energy_edge_controller_tracking_error_watts{{asset_id="{body["asset_id"]}"}} {expected_w}']
