"""Aggregation: telemetry to site state, and the meter/battery reading skew."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controller_module.aggregate import SiteAggregator
from energy_edge_base.contract import BatteryTelemetry, MicrogridControllerTelemetry, SolarTelemetry, Telemetry

NOW = dt.datetime(2026, 5, 4, 12, 0, tzinfo=dt.timezone.utc)
LATER_S = 1000.0  # a reading stamped after every meter reading of the table: never the one "at the meter's"


def _at(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc)


def meter(at_s: float, grid_kw: float) -> MicrogridControllerTelemetry:
    return MicrogridControllerTelemetry(
        site_id="site-1", asset_id="mgc-1", timestamp=_at(at_s), power_kw=grid_kw, setpoint_kw=None, online=True,
        status="grid_connected", grid_import_kw=grid_kw, site_load_kw=None, frequency_hz=None, voltage_v=None,
        peak_shaving_active=False, der_active=True, import_limit_kw=None)


def battery(power_kw: float, setpoint_kw: float | None, read_at: float = LATER_S) -> BatteryTelemetry:
    return BatteryTelemetry(
        site_id="site-1", asset_id="bess-1", timestamp=_at(read_at), power_kw=power_kw, setpoint_kw=setpoint_kw,
        online=True, status="idle", soc_pct=50.0, soh_pct=None, energy_kwh=None, capacity_kwh=200.0,
        max_charge_kw=100.0, max_discharge_kw=100.0)


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
    [{"asset_id": "x"}, {"asset_type": "battery"}, {"asset_id": "x", "asset_type": "kettle"}, "text",
     # a contract message that is not telemetry, and telemetry with a key left out
     {"schema_version": "1.0", "message_type": "event", "severity": "info", "code": "x", "text": "",
      "timestamp": "2026-05-04T12:00:00Z", "site_id": None, "asset_id": None},
     {k: v for k, v in battery(0.0, None).model_dump(mode="json").items() if k != "soc_pct"}],
)
def test_unreadable_telemetry_is_ignored(body: Any) -> None:
    aggregator = SiteAggregator()
    assert aggregator.add(body, 0.0, NOW) is False
    assert aggregator.latest == {}


def test_ages_come_from_the_caller_clock() -> None:
    aggregator = SiteAggregator()
    aggregator.add(meter(0, 10.0), 100.0, NOW)
    assert aggregator.site_state(112.5, NOW).meter.age_s == pytest.approx(12.5)  # type: ignore[union-attr]


def _solar(setpoint_kw: float, curtailed: bool) -> SolarTelemetry:
    return SolarTelemetry(
        site_id="site-1", asset_id="s", timestamp=NOW, power_kw=50.0, setpoint_kw=setpoint_kw, online=True,
        status="mppt", ac_power_kw=50.0, power_limit_pct=None, curtailed=curtailed, rated_kw=None)


def test_a_body_is_parsed_with_the_contract_models() -> None:
    aggregator = SiteAggregator()
    assert aggregator.add(battery(12.0, None).model_dump(mode="json"), 0.0, NOW)
    assert isinstance(aggregator.latest["bess-1"].telemetry, BatteryTelemetry)
    assert aggregator.site_state(1.0, NOW).batteries[0].power_kw == 12.0


@pytest.mark.parametrize(
    ("body", "expected_w"),
    [
        (battery(8.0, 10.0).model_copy(update={"asset_id": "b"}), 2000.0),
        (_solar(60.0, True), 10000.0),
        (_solar(180.0, False), None),
    ],
)
async def test_tracking_error_in_metrics(body: Telemetry, expected_w: float | None) -> None:
    from controller_module.module import ControllerModule

    module = ControllerModule()
    module.take(body)
    lines = [line for line in module.metrics.exposition().decode().splitlines()
             if line.startswith("energy_edge_controller_tracking_error_watts{")]
    if expected_w is None:
        assert lines == []  # a PV cap is not a target
    else:
        assert lines == [f'energy_edge_controller_tracking_error_watts{{asset_id="{body.asset_id}"}} {expected_w}']
