"""The optimum (LP) and the rule on cases small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from energy_edge.bench import optimum, rule
from energy_edge.bench.plant import BatterySpec, monthly_peaks_kw

# 96 quarters: a 90 kW base with a 2-hour peak of 150 kW from 10:00
SINGLE_PEAK = np.array([90.0] * 40 + [150.0] * 8 + [90.0] * 48)
# the same peak first thing: nothing can be charged before it
PEAK_AT_START = np.array([150.0] * 8 + [90.0] * 88)


def battery(kwh: float, kw: float, rte: float = 1.0, initial_pct: float | None = None) -> BatterySpec:
    return BatterySpec(kwh, kw, soc_min_pct=0.0, soc_max_pct=100.0, round_trip_efficiency=rte,
                       initial_soc_pct=initial_pct)


CASES = [
    # (name, net load, battery, expected peak kW for both the optimum and the tuned rule)
    ("full 50 kWh battery: (150 − T) · 2 h = 50 kWh", SINGLE_PEAK, battery(50, 100), 125.0),
    ("power too small: 20 kW shaves 20 kW", SINGLE_PEAK, battery(500, 20), 130.0),
    ("energy too small: (150 − T) · 2 h = 10 kWh", SINGLE_PEAK, battery(10, 100), 145.0),
    ("81 % round trip: (150 − T) · 2 h / 0.9 = 50 kWh", SINGLE_PEAK, battery(50, 100, rte=0.81), 127.5),
    ("empty battery, peak first: nothing to shave", PEAK_AT_START, battery(50, 100, initial_pct=0.0), 150.0),
    ("empty battery, 10 h to charge below T first", SINGLE_PEAK, battery(50, 100, initial_pct=0.0), 125.0),
    ("no battery", SINGLE_PEAK, battery(0, 0), 150.0),
]


@pytest.mark.parametrize(("name", "net", "spec", "expected"), CASES, ids=[c[0] for c in CASES])
def test_single_month(name: str, net: np.ndarray, spec: BatterySpec, expected: float) -> None:
    months = np.zeros(net.size, dtype=np.int64)
    best = optimum.solve(net, months, 1, spec)
    assert best.peaks_kw[0] == pytest.approx(expected, abs=0.01)
    assert monthly_peaks_kw(net - best.battery_kw, months, 1)[0] == pytest.approx(expected, abs=0.01)
    assert np.all(best.soc_kwh >= spec.min_kwh - 1e-6) and np.all(best.soc_kwh <= spec.max_kwh + 1e-6)
    assert np.all(np.abs(best.battery_kw) <= spec.power_kw + 1e-6)
    assert np.all(best.battery_kw <= np.maximum(net, 0.0) + 1e-6)  # never into export

    tuned = rule.tune(net, months, 1, spec)
    assert monthly_peaks_kw(net - tuned.battery_kw, months, 1)[0] == pytest.approx(expected, abs=0.11)


def test_optimum_sums_monthly_peaks_and_carries_the_soc_across_months() -> None:
    # two "months" of one day each, 2 h at 140 kW then 22 h at 139 kW; a full 50 kWh battery that can never
    # recharge (charging would raise a peak). The first kW off each month costs 2 kWh; below 139 kW a kW costs
    # 24 kWh, so the 46 kWh left go into one month: 2·(140 − T) + 22·(139 − T) = 48 → T = 137.083.
    day = np.array([140.0] * 8 + [139.0] * 88)
    net = np.concatenate([day, day])
    months = np.repeat(np.arange(2), 96)
    best = optimum.solve(net, months, 2, battery(50, 100))
    assert best.peaks_kw.sum() == pytest.approx(139.0 + 137.0833, abs=0.01)
    assert sorted(best.peaks_kw) == pytest.approx([137.0833, 139.0], abs=0.01)
    assert best.soc_kwh[-1] == pytest.approx(0.0, abs=0.01)  # all of it spent, across the month boundary


def test_rule_charges_below_and_discharges_above_the_threshold() -> None:
    net = np.array([50.0, 50.0, 120.0, 120.0, 80.0])
    spec = battery(100, 30, initial_pct=50.0)
    run = rule.run(net, 100.0, spec)
    # below 100: charge by 100 − net, at most 30 kW (until full); above: discharge the excess
    assert run.battery_kw == pytest.approx([-30.0, -30.0, 20.0, 20.0, -20.0])


def test_rule_with_a_threshold_per_step() -> None:
    # the same net load, the threshold 100 kW for the first three steps and 110 kW after: the 120 kW step under
    # 110 discharges 10 kW, the last step recharges up to 110
    net = np.array([50.0, 50.0, 120.0, 120.0, 80.0])
    spec = battery(100, 30, initial_pct=50.0)
    thresholds = np.array([[100.0], [100.0], [100.0], [110.0], [110.0]])
    schedule = rule.simulate(net, thresholds, thresholds, spec)[:, 0]
    assert schedule == pytest.approx([-30.0, -30.0, 20.0, 10.0, -30.0])
