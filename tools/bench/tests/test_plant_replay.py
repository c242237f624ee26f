"""The shared plant, the controller's replay (present and past only), schedules that replay to their SOC and peaks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from energy_edge.bench import replay
from energy_edge.bench.cli import run_peak_shaving
from energy_edge.bench.data import DataError, SiteSeries, read_power_csv, series_from_csv, write_power_csv
from energy_edge.bench.plant import BatterySpec, Plant, integrate_soc, monthly_peaks_kw
from energy_edge.bench.report import read_schedule, replay_schedule, write_schedule

CET = dt.timezone(dt.timedelta(hours=1))
SPEC = BatterySpec(100, 40, soc_min_pct=10, soc_max_pct=90, round_trip_efficiency=0.81, initial_soc_pct=50)

PLANT_CASES = [
    # (name, setpoint kW, net kW, delivered kW, SOC after (kWh; starts at 50), violations (soc, power, export))
    ("charge loses sqrt(RTE) on the way in", -20.0, 30.0, -20.0, 50 + 20 * 0.25 * 0.9, (0, 0, 0)),
    ("discharge loses sqrt(RTE) on the way out", 18.0, 30.0, 18.0, 50 - 18 * 0.25 / 0.9, (0, 0, 0)),
    ("beyond the rating: cut to it, counted", 60.0, 80.0, 40.0, 50 - 40 * 0.25 / 0.9, (0, 1, 0)),
    ("into export: cut to the net load, counted", 30.0, 12.0, 12.0, 50 - 12 * 0.25 / 0.9, (0, 0, 1)),
]


@pytest.mark.parametrize(("name", "setpoint", "net", "delivered", "soc", "counts"), PLANT_CASES,
                         ids=[c[0] for c in PLANT_CASES])
def test_plant_step(name: str, setpoint: float, net: float, delivered: float, soc: float,
                    counts: tuple[int, int, int]) -> None:
    plant = Plant(SPEC)
    assert plant.apply(setpoint, net) == pytest.approx(delivered)
    assert plant.soc_kwh == pytest.approx(soc)
    v = plant.violations
    assert (v.soc_steps, v.power_steps, v.export_steps) == counts


@pytest.mark.parametrize(("initial_pct", "setpoint", "soc_after"), [(11.0, 40.0, 10.0), (89.0, -40.0, 90.0)])
def test_plant_stops_at_the_soc_window_and_counts_it(initial_pct: float, setpoint: float, soc_after: float) -> None:
    plant = Plant(BatterySpec(100, 40, 10, 90, 0.81, initial_soc_pct=initial_pct))
    plant.apply(setpoint, 100.0)
    assert plant.soc_kwh == pytest.approx(soc_after)
    assert plant.violations.soc_steps == 1


def _series(days: int, seed: int = 3) -> SiteSeries:
    """A small office: 40 kW base, 100 kW working hours with noise, a midday PV hump; from a Monday."""
    rng = np.random.default_rng(seed)
    hours = (np.arange(days * 96) % 96) / 4
    weekday = (np.arange(days * 96) // 96) % 7 < 5
    load = 40 + 60 * ((hours >= 8) & (hours < 18) & weekday) + rng.normal(0, 5, days * 96)
    pv = np.clip(50 * np.sin((hours - 6) / 12 * np.pi), 0, None) * rng.uniform(0.3, 1.0, days * 96)
    return SiteSeries("office", dt.datetime(2025, 3, 3, tzinfo=CET), np.clip(load, 0, None), pv)


def test_controller_sees_only_the_present_and_the_past() -> None:
    series = _series(10)
    spec = BatterySpec(150, 60, 5, 95, 0.9)
    cut = 6 * 96 + 40
    changed = SiteSeries(series.name, series.start, series.load_kw.copy(), series.pv_kw.copy())
    changed.load_kw[cut + 1:] += 80.0  # a different future
    a, b = replay.run(series, spec), replay.run(changed, spec)
    assert np.array_equal(a.battery_kw[:cut + 1], b.battery_kw[:cut + 1])
    assert not np.array_equal(a.battery_kw, b.battery_kw)


def test_schedule_replays_to_its_soc_and_peaks(tmp_path: Path) -> None:
    series = _series(14)
    spec = BatterySpec(150, 60, 5, 95, 0.9)
    result = run_peak_shaving(series, spec)
    assert result.violations() == 0
    path = tmp_path / "schedule.csv"
    write_schedule(result, path)
    table = read_schedule(path)
    np.testing.assert_allclose(table["grid_import_kw"],
                               table["load_kw"] - table["pv_kw"] - table["battery_kw"], atol=1e-3)
    again = replay_schedule(table["battery_kw"], table["load_kw"] - table["pv_kw"], spec)
    assert again.violations.total == 0
    np.testing.assert_allclose(again.soc_kwh, table["soc_kwh"], atol=2e-3)
    np.testing.assert_allclose(integrate_soc(table["battery_kw"], spec), table["soc_kwh"], atol=2e-3)
    labels, month_of_step = series.month_index()
    peaks = monthly_peaks_kw(table["grid_import_kw"], month_of_step, len(labels))
    assert peaks == pytest.approx([m.controller_peak_kw for m in result.months], abs=1e-3)
    # the runs are ordered as they must be: nothing beats the optimum, the battery beats no battery
    for m in result.months:
        assert m.optimum_peak_kw <= min(m.rule_peak_kw, m.controller_peak_kw) + 1e-6
        assert m.controller_peak_kw < m.baseline_peak_kw


def test_csv_round_trip_and_overlap(tmp_path: Path) -> None:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    write_power_csv(tmp_path / "load.csv", start, np.arange(10.0))
    write_power_csv(tmp_path / "pv.csv", start + dt.timedelta(hours=1), np.ones(10))
    series = series_from_csv(tmp_path / "load.csv", tmp_path / "pv.csv")
    assert series.start == start + dt.timedelta(hours=1)
    assert series.load_kw.tolist() == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    assert series.pv_kw.tolist() == [1.0] * 6


def test_csv_needs_15_minute_steps(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,power_kw\n2025-01-01T00:00:00,1\n2025-01-01T00:30:00,2\n")
    with pytest.raises(DataError, match="15 minutes"):
        read_power_csv(path)
