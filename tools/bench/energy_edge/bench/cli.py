"""`energy-edge bench peak-shaving`: no battery, the rule, the controller and the optimum on the same data."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from controller_module.core.tariff import Tariff
from energy_edge.bench import optimum, peers, replay, rule, tariffs
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


# the MPC's settings, chosen on the tuning runs only (benchmarks/README.md, "Peers")
MPC_SETTINGS = peers.MpcSettings()


def run_peak_shaving(series: SiteSeries, battery: BatterySpec, tariff: Tariff | None = None,
                     mpc: bool = True, perfect_pv: bool = True, energy_shifting: bool = False) -> BenchResult:
    """No battery, the rule, the controller and the optimum on the same data; every schedule goes through the
    same plant. With a `tariff`: the controller plans against it, the peers run too (the MPC unless `mpc` is
    False; its perfect-PV variant unless `perfect_pv` is False), and every run's bill is reported beside the
    bill optimum's."""
    labels, month_of_step = series.month_index()
    net = series.net_kw
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    tuned = rule.tune(net, month_of_step, len(labels), battery)
    seconds["rule"] = time.perf_counter() - started

    started, cpu_started = time.perf_counter(), time.process_time()
    config = None if tariff is None else replay.controller_config(battery, tariff, energy_shifting)
    controller = replay.run(series, battery, config)
    seconds["controller"] = time.perf_counter() - started
    if tariff is not None:  # CPU time too: on a shared machine the wall time says more about the neighbours
        seconds["controller CPU"] = time.process_time() - cpu_started

    started = time.perf_counter()
    best = optimum.solve(net, month_of_step, len(labels), battery)
    seconds["optimum"] = time.perf_counter() - started

    schedules = {
        "rule": replay_schedule(tuned.battery_kw, net, battery),
        "controller": Schedule(controller.battery_kw, controller.soc_kwh, controller.violations),
        "optimum": replay_schedule(best.battery_kw, net, battery),
    }
    result = BenchResult(series, battery, schedules, tuned.threshold_kw, controller.limit_kw, seconds)
    if tariff is not None:
        _add_tariff_runs(result, tariff, mpc, perfect_pv)
    return result


def _add_tariff_runs(result: BenchResult, tariff: Tariff, mpc: bool, perfect_pv: bool = True) -> None:
    series, battery, seconds = result.series, result.battery, result.seconds
    steps = tariffs.TariffSteps.of(tariff, series)
    started = time.perf_counter()
    previous = peers.previous_month_rule(series, battery)
    seconds["rule, previous month"] = time.perf_counter() - started
    result.peers["rule, previous month"] = Schedule(previous.battery_kw, previous.soc_kwh, previous.violations)
    variants = [("MPC", MPC_SETTINGS)] if mpc else []
    if mpc and perfect_pv:
        variants.append(("MPC, perfect PV", replace(MPC_SETTINGS, perfect_pv=True)))
    for name, settings in variants:
        started = time.perf_counter()
        run = peers.mpc(series, steps, battery, settings)
        seconds[name] = time.perf_counter() - started
        result.peers[name] = Schedule(run.battery_kw, run.soc_kwh, run.violations)
    started = time.perf_counter()
    bill_best = replay_schedule(tariffs.solve_bill(series, steps, battery).battery_kw, series.net_kw, battery)
    seconds["bill optimum"] = time.perf_counter() - started
    result.tariff_name = tariff.name
    for name in ("baseline", "rule", "rule, previous month", "controller", *(name for name, _ in variants), "optimum"):
        result.bills[name] = tariffs.bill_of(steps, series, result.grid_import_kw(name))
    result.bills["bill optimum"] = tariffs.bill_of(steps, series, series.net_kw - bill_best.battery_kw)
    # the demand charges alone: the same LP with energy free, for the share of what peak shaving can save
    demand_only = tariff.model_copy(update={"energy_price_per_kwh": 0.0, "energy_prices": (),
                                            "export_price_per_kwh": 0.0})
    started = time.perf_counter()
    demand_steps = replace(steps, tariff=demand_only, price_per_kwh=np.zeros_like(steps.price_per_kwh))
    demand_best = tariffs.solve_bill(series, demand_steps, battery)
    seconds["demand optimum"] = time.perf_counter() - started
    result.bills["demand optimum"] = tariffs.bill_of(steps, series, series.net_kw - demand_best.battery_kw)


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
    if args.list_tariffs:
        for name, built_in in tariffs.BUILT_IN.items():
            print(f"{name:<14} {built_in.description}")
        return 0
    try:
        tariff = tariffs.load_tariff(args.tariff) if args.tariff else None  # before the data: fail fast
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
    result = run_peak_shaving(series, battery, tariff, mpc=not args.no_mpc, energy_shifting=args.energy_shifting)
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
    ps.add_argument("--tariff", metavar="FILE|NAME",
                    help="bill every run under this tariff (a built-in's name or a JSON file; see --list-tariffs), "
                         "the controller planning against it, beside the peers (rule tuned on the previous month, "
                         "rolling-horizon MPC) and the LP that minimises the bill")
    ps.add_argument("--list-tariffs", action="store_true", help="list the built-in tariffs and exit")
    ps.add_argument("--no-mpc", action="store_true", help="with --tariff: leave out the MPC peers (the slow part)")
    ps.add_argument("--energy-shifting", action="store_true",
                    help="with --tariff: the controller also shifts energy (energy_shifting_enabled)")
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
