"""`energy-edge bench peak-shaving`: no battery, the rule, the controller and the optimum on the same data."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

from energy_edge.bench import optimum, replay, rule
from energy_edge.bench.data import SCENARIOS, BatteryDefaults, DataError, SiteSeries, build_scenario, series_from_csv
from energy_edge.bench.plant import BatterySpec
from energy_edge.bench.report import (
    BenchResult,
    Schedule,
    format_table,
    plot,
    replay_schedule,
    write_json,
    write_schedule,
)

DEFAULT_SCENARIO = "commercial"


def run_peak_shaving(series: SiteSeries, battery: BatterySpec) -> BenchResult:
    """The four runs on the same data; every schedule goes through the same plant."""
    labels, month_of_step = series.month_index()
    net = series.net_kw
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    tuned = rule.tune(net, month_of_step, len(labels), battery)
    seconds["rule"] = time.perf_counter() - started

    started = time.perf_counter()
    controller = replay.run(series, battery)
    seconds["controller"] = time.perf_counter() - started

    started = time.perf_counter()
    best = optimum.solve(net, month_of_step, len(labels), battery)
    seconds["optimum"] = time.perf_counter() - started

    schedules = {
        "rule": replay_schedule(tuned.battery_kw, net, battery),
        "controller": Schedule(controller.battery_kw, controller.soc_kwh, controller.violations),
        "optimum": replay_schedule(best.battery_kw, net, battery),
    }
    return BenchResult(series, battery, schedules, tuned.threshold_kw, controller.limit_kw, seconds)


def _battery(args: argparse.Namespace, defaults: BatteryDefaults) -> BatterySpec:
    def pick(value: float | None, default: float) -> float:
        return default if value is None else value

    return BatterySpec(
        capacity_kwh=pick(args.battery_kwh, defaults.capacity_kwh),
        power_kw=pick(args.battery_kw, defaults.power_kw),
        soc_min_pct=pick(args.soc_min_pct, defaults.soc_min_pct),
        soc_max_pct=pick(args.soc_max_pct, defaults.soc_max_pct),
        round_trip_efficiency=pick(args.round_trip_efficiency, defaults.round_trip_efficiency),
    )


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2025-03-01") from None


def _main(args: argparse.Namespace) -> int:
    if args.list_scenarios:
        for name, spec in SCENARIOS.items():
            print(f"{name:<16} {spec.description}")
        return 0
    try:
        if args.load:
            series = series_from_csv(Path(args.load), Path(args.pv) if args.pv else None)
            defaults = BatteryDefaults()
        else:
            name = args.scenario or DEFAULT_SCENARIO
            series = build_scenario(name, args.seed)
            defaults = SCENARIOS[name].battery
        if args.start is not None or args.days is not None:
            series = series.window(args.start, args.days)
        battery = _battery(args, defaults)
    except (DataError, ValueError) as exc:
        print(f"energy-edge bench peak-shaving: {exc}", file=sys.stderr)
        return 2
    result = run_peak_shaving(series, battery)
    print(format_table(result))
    if args.json:
        write_json(result, Path(args.json))
    if args.schedule_out:
        write_schedule(result, Path(args.schedule_out))
    if args.plot:
        plot(result, Path(args.plot))
    return 0


def add_bench_parser(subparsers: Any) -> None:
    """`bench peak-shaving` under the `energy-edge` command (`subparsers` from its add_subparsers())."""
    bench = subparsers.add_parser("bench", help="benchmarks of the site's control")
    kinds = bench.add_subparsers(dest="bench_command", required=True)
    ps = kinds.add_parser(
        "peak-shaving",
        help="monthly peaks: no battery, fixed-threshold rule, the controller's core, the LP optimum",
        description="Runs no battery, the fixed-threshold rule (tuned in hindsight), the controller's decision "
                    "core (15-minute steps, present and past only) and the perfect-foresight optimum (LP, HiGHS) "
                    "on the same data, and compares their monthly peaks of 15-minute grid import.",
    )
    source = ps.add_mutually_exclusive_group()
    source.add_argument("--load", metavar="CSV", help="site load: timestamp,power_kw in 15-minute steps")
    source.add_argument("--scenario", metavar="NAME", help=f"built-in scenario (default {DEFAULT_SCENARIO}); "
                                                           "see --list-scenarios")
    ps.add_argument("--pv", metavar="CSV", help="PV output: timestamp,power_kw (with --load; default none)")
    ps.add_argument("--list-scenarios", action="store_true", help="list the built-in scenarios and exit")
    ps.add_argument("--seed", type=int, default=1, help="seed of the scenario's load noise (default 1)")
    ps.add_argument("--start", type=_date, help="first day to run (default: the data's first)")
    ps.add_argument("--days", type=float, help="days to run from --start (default: to the end of the data)")
    ps.add_argument("--battery-kwh", type=float, help="capacity, kWh (default: the scenario's, else 200)")
    ps.add_argument("--battery-kw", type=float, help="charge and discharge rating, kW (default: scenario's, else 100)")
    ps.add_argument("--soc-min-pct", type=float, help="SOC floor, %% (default 5)")
    ps.add_argument("--soc-max-pct", type=float, help="SOC ceiling, %% (default 95)")
    ps.add_argument("--round-trip-efficiency", type=float, help="round trip, 0-1 (default 0.90)")
    ps.add_argument("--json", metavar="OUT", help="write the results as JSON")
    ps.add_argument("--schedule-out", metavar="CSV", help="write the controller's schedule step by step")
    ps.add_argument("--plot", metavar="PNG", help="plot the month of the largest peak and the monthly peaks")
    ps.set_defaults(func=_main)
