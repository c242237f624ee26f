"""The benchmark under a tariff: the bill optimum (LP), the peers, and `--tariff` end to end."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from controller_module.core.tariff import BUILT_IN, DemandCharge, Tariff, TimeWindow
from energy_edge.bench import peers, rule, tariffs
from energy_edge.bench.cli import add_bench_parser
from energy_edge.bench.data import QUARTERS_PER_DAY, SiteSeries
from energy_edge.bench.plant import BatterySpec
from energy_edge.bench.report import replay_schedule

MONDAY = dt.datetime(2025, 6, 2, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def series(net_kw: list[float] | np.ndarray, start: dt.datetime = MONDAY) -> SiteSeries:
    load = np.asarray(net_kw, dtype=float)
    return SiteSeries("test", start, load, np.zeros_like(load))


def battery(kwh: float, kw: float) -> BatterySpec:
    return BatterySpec(kwh, kw, soc_min_pct=0.0, soc_max_pct=100.0, round_trip_efficiency=1.0)


# a day: 90 kW base, 150 kW from 10:00 to 12:00 and 100 kW from 18:00 to 20:00
DAY = [90.0] * 40 + [150.0] * 8 + [90.0] * 24 + [100.0] * 8 + [90.0] * 16


@pytest.mark.parametrize(
    ("case", "tariff", "net", "bat", "demand_kw"),
    [
        ("monthly peak: (150 − T) · 2 h = 50 kWh", Tariff(demand_charges=(DemandCharge(price_per_kw=10),)), DAY,
         battery(50, 100), [125.0]),
        # a window on the evening only: the morning peak is free, the whole window 17-21 h is shaved flat,
        # (90 − T) · 2 h + (100 − T) · 2 h = 50 kWh
        ("evening window", Tariff(demand_charges=(DemandCharge(price_per_kw=10, windows=(
            TimeWindow(start_h=17, end_h=21),)),)), DAY, battery(50, 100), [82.5]),
        # 60-minute demand: the two-hour peak fills two whole hours, so still (150 − T) · 2 h = 50
        ("60-minute interval", Tariff(demand_interval_min=60, demand_charges=(DemandCharge(price_per_kw=10),)),
         DAY, battery(50, 100), [125.0]),
        ("minimum billed demand", Tariff(demand_charges=(DemandCharge(price_per_kw=10, minimum_kw=130),)), DAY,
         battery(50, 100), [130.0]),
    ],
)
def test_bill_optimum_on_a_day(case: str, tariff: Tariff, net: list[float], bat: BatterySpec,
                               demand_kw: list[float]) -> None:
    data = series(net)
    steps = tariffs.TariffSteps.of(tariff, data)
    best = tariffs.solve_bill(data, steps, bat)
    applied = replay_schedule(best.battery_kw, data.net_kw, bat)
    assert applied.violations.total == 0
    result = tariffs.bill_of(steps, data, data.net_kw - applied.battery_kw)
    assert result.billed_kw["1. demand"] == [pytest.approx(kw, abs=0.01) for kw in demand_kw], case
    assert result.total == pytest.approx(best.objective, abs=0.01)  # the LP bills as the tariff does


def test_bill_optimum_with_a_ratchet_carries_the_highest_month() -> None:
    """An hour at 150 kW on 30 June, shaved by 5 kW (all a 5 kWh battery can), sets July's billed demand at
    80 % of 145 kW, above all of July's 100 kW: the ratchet bills 116 kW, and the bill is what the LP says."""
    ratchet = Tariff(demand_charges=(DemandCharge(price_per_kw=10, ratchet_share=0.8, ratchet_months=11),))
    start = dt.datetime(2025, 6, 30, tzinfo=MONDAY.tzinfo)
    net = [100.0] * 40 + [150.0] * 4 + [100.0] * 52 + [100.0] * QUARTERS_PER_DAY  # 30 June, then 1 July
    data = series(net, start)
    steps = tariffs.TariffSteps.of(ratchet, data)
    best = tariffs.solve_bill(data, steps, battery(5, 5))
    result = tariffs.bill_of(steps, data, data.net_kw - best.battery_kw)
    assert result.billed_kw["1. demand"] == [pytest.approx(145.0, abs=0.01), pytest.approx(116.0, abs=0.01)]
    assert result.total == pytest.approx(best.objective, abs=0.01)


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("yesterday", 8 * QUARTERS_PER_DAY + 1 - QUARTERS_PER_DAY),
        ("last-week", 8 * QUARTERS_PER_DAY + 1 - 7 * QUARTERS_PER_DAY),
        # only one week back is within 8 days of history: the mean of one
        ("mean-4-weeks", 8 * QUARTERS_PER_DAY + 1 - 7 * QUARTERS_PER_DAY),
    ],
)
def test_load_forecast_from_history(method: str, expected: float) -> None:
    load = np.arange(40 * QUARTERS_PER_DAY, dtype=float)  # each step's load is its index
    k = 8 * QUARTERS_PER_DAY
    forecast = peers.load_forecast(load, k, 4, method)
    assert forecast[0] == expected  # the step after the present, from the lag
    later = peers.load_forecast(load, 30 * QUARTERS_PER_DAY, 2, "mean-4-weeks")
    week = 7 * QUARTERS_PER_DAY
    assert later[0] == pytest.approx(30 * QUARTERS_PER_DAY + 1 - 2.5 * week)  # mean of lags 1-4 weeks


def test_load_forecast_never_reads_the_future() -> None:
    load = np.arange(3 * QUARTERS_PER_DAY, dtype=float)
    k = QUARTERS_PER_DAY // 2  # half a day of history: yesterday is unknown for all of the horizon
    forecast = peers.load_forecast(load, k, QUARTERS_PER_DAY, "yesterday")
    assert np.all(forecast <= k)


def test_previous_month_rule_is_tuned_on_the_month_before() -> None:
    start = dt.datetime(2025, 5, 1, tzinfo=MONDAY.tzinfo)
    may, june = 31 * QUARTERS_PER_DAY, 30 * QUARTERS_PER_DAY
    net = np.array(DAY * 31 + [x + 20 for x in DAY] * 30)  # June's days 20 kW higher
    data = series(net, start)
    bat = battery(50, 100)
    run = peers.previous_month_rule(data, bat)
    assert run.thresholds_kw is not None
    assert run.violations.total == 0
    month_of_may = np.zeros(may, dtype=np.int64)
    tuned_on_may = rule.tune(net[:may], month_of_may, 1, bat).threshold_kw
    assert np.all(run.thresholds_kw[may:] == tuned_on_may) and run.thresholds_kw[may:].size == june
    assert tuned_on_may == pytest.approx(125.0, abs=0.1)  # and so June, 20 kW higher, is shaved to 145


def test_mpc_with_a_perfect_forecast_of_a_repeating_day_shaves_like_the_optimum() -> None:
    """Identical days from 24 June: in July (a new period, nothing billed yet) 'yesterday' is the truth, and the
    MPC holds the optimum's 125 kW; in June its first day, without history, set a higher peak it then keeps."""
    june_24 = dt.datetime(2025, 6, 24, tzinfo=MONDAY.tzinfo)
    data = series(DAY * 9, june_24)
    tariff = Tariff(demand_charges=(DemandCharge(price_per_kw=10),))
    steps = tariffs.TariffSteps.of(tariff, data)
    run = peers.mpc(data, steps, battery(50, 100), peers.MpcSettings(load_forecast="yesterday"))
    assert run.violations.total == 0
    grid = data.net_kw - run.battery_kw
    july = 7 * QUARTERS_PER_DAY
    assert grid[july:].max() == pytest.approx(125.0, abs=0.5)
    assert grid[:july].max() > 130.0


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="energy-edge")
    add_bench_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_every_built_in_tariff_end_to_end(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.json"
    assert run_cli(["bench", "peak-shaving", "--scenario", "commercial", "--start", "2025-06-25", "--days", "8",
                    "--tariff", name, "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert f"bill under tariff {name!r}" in table and "MPC, perfect PV" in table
    doc = json.loads(out.read_text())
    bills = doc["bills"]
    assert set(bills) == {"baseline", "rule", "rule, previous month", "controller", "MPC", "MPC, perfect PV",
                          "optimum", "bill optimum", "demand optimum"}
    best = bills["bill optimum"]["total"]
    for run, b in bills.items():
        assert b["total"] == pytest.approx(b["demand"] + b["energy"] - b["export"], abs=0.02)
        assert best <= b["total"] + 0.01, run  # nothing causal beats perfect foresight
    assert doc["violations"] == 0 and all(v["total"] == 0 for v in doc["peer_violations"].values())
    assert bills["bill optimum"]["bill_ratio"] == 1.0 and bills["demand optimum"]["demand_ratio"] == 1.0
    demand_best = bills["demand optimum"]["demand"]
    assert all(demand_best <= b["demand"] + 0.01 for b in bills.values())  # the least demand charges


def test_a_tariff_file_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "tariff.json"
    good.write_text(BUILT_IN["us-tou"].model_copy(update={"name": "mine"}).model_dump_json())
    assert run_cli(["bench", "peak-shaving", "--scenario", "commercial", "--start", "2025-06-25", "--days", "3",
                    "--tariff", str(good), "--no-mpc"]) == 0
    assert "bill under tariff 'mine'" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"demand_charges": [{"price_per_kw": 5, "period": "week"}]}))
    assert run_cli(["bench", "peak-shaving", "--tariff", str(bad)]) == 2
    assert "demand_charges.0.period" in capsys.readouterr().err
    assert run_cli(["bench", "peak-shaving", "--tariff", "nowhere"]) == 2
    assert "neither a built-in tariff" in capsys.readouterr().err
    assert run_cli(["bench", "peak-shaving", "--list-tariffs"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in BUILT_IN)
