"""Tune the controller's energy shifting on the tuning runs only (data.TUNING_RUNS), as its planner was.

    .venv/bin/python benchmarks/shifting_tuning.py --tariffs monthly-15 us-tou --variants off on \
        shifting_reserve_factor=1.0 shifting_reserve_factor=2.0          # ~25 s a run and variant

A variant is `off` (shifting off), `on` (shifting on, defaults) or comma-separated `field=value` settings of the
controller's configuration with shifting on. Prints, per tariff and variant, each tuning run's bill ratio / demand
ratio and their means, and violations. The baseline's and the optimums' bills do not depend on the controller:
they are computed once per run and tariff and kept in --cache.

    .venv/bin/python benchmarks/shifting_tuning.py --held-out --variants on --cache /tmp/tariff-bills \
        --out-dir /tmp/shifting-held-out --tariffs us-tou                 # a chosen variant, held out

measures a variant chosen on the tuning runs on the held-out runs (the controller alone, ~30 s a run; the reference
bills from a tariff_bills.py run's JSON); benchmarks/tariff_tables.py puts it beside that run's peers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from controller_module.core.config import ControllerConfig
from controller_module.core.tariff import Bill
from energy_edge.bench import replay, tariffs
from energy_edge.bench.data import SCENARIOS, TUNING_RUNS, benchmark_runs, build_scenario
from energy_edge.bench.plant import BatterySpec
from energy_edge.bench.report import replay_schedule


def variant_config(base: ControllerConfig, variant: str) -> ControllerConfig:
    if variant == "off":
        return base.model_copy(update={"energy_shifting_enabled": False})
    update: dict[str, Any] = {"energy_shifting_enabled": True}
    if variant != "on":
        for item in variant.split(","):
            key, value = item.split("=", 1)
            update[key] = json.loads(value)
    return ControllerConfig.model_validate({**base.model_dump(), **update})


def reference_bills(name: str, seed: int, tariff_name: str, cache: Path) -> dict[str, Any]:
    """The baseline's bill and the bill and demand optimums' (from --cache when there, or from a run of
    tariff_bills.py written there: its per-run JSON holds them)."""
    path = cache / f"{tariff_name}-{name}-{seed}.json"
    if path.exists():
        doc = json.loads(path.read_text())
        if "bills" in doc:
            bills = doc["bills"]
            return {"baseline": [bills["baseline"]["total"], bills["baseline"]["demand"]],
                    "bill optimum": bills["bill optimum"]["total"], "demand optimum": bills["demand optimum"]["demand"]}
        return dict(doc)
    tariff = tariffs.load_tariff(tariff_name)
    series = build_scenario(name, seed)
    battery = BatterySpec.of(SCENARIOS[name].battery)
    steps = tariffs.TariffSteps.of(tariff, series)
    best = replay_schedule(tariffs.solve_bill(series, steps, battery).battery_kw, series.net_kw, battery)
    demand_only = tariff.model_copy(update={"energy_price_per_kwh": 0.0, "energy_prices": (),
                                            "export_price_per_kwh": 0.0})
    demand_steps = tariffs.TariffSteps(demand_only, steps.counts, steps.period, steps.period_labels,
                                       np.zeros_like(steps.price_per_kwh), steps.steps_per_interval)
    demand_best = tariffs.solve_bill(series, demand_steps, battery)
    base = tariffs.bill_of(steps, series, series.net_kw)
    doc = {"baseline": [base.total, base.demand],
           "bill optimum": tariffs.bill_of(steps, series, series.net_kw - best.battery_kw).total,
           "demand optimum": tariffs.bill_of(steps, series, series.net_kw - demand_best.battery_kw).demand}
    path.write_text(json.dumps(doc) + "\n")
    return doc


def ratios(ref: dict[str, Any], bill: Bill) -> tuple[float, float]:
    """(bill ratio, demand ratio) of `bill` against a run's reference bills (`reference_bills`)."""
    base_total, base_demand = ref["baseline"]
    return ((base_total - bill.total) / (base_total - ref["bill optimum"]),
            (base_demand - bill.demand) / (base_demand - ref["demand optimum"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tariffs", nargs="*", default=["monthly-15", "us-tou"])
    parser.add_argument("--variants", nargs="*", default=["off", "on"])
    parser.add_argument("--runs", nargs="*", default=None, help="name:seed (default: the tuning runs)")
    parser.add_argument("--held-out", action="store_true", help="the held-out runs instead of the tuning runs")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/shifting-tuning"),
                        help="the reference bills (a tariff_bills.py --out-dir serves too)")
    parser.add_argument("--out-dir", type=Path, default=None, help="a JSON per tariff, run and variant")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    runs = ([(r.split(":")[0], int(r.split(":")[1])) for r in args.runs] if args.runs else sorted(TUNING_RUNS))
    if args.held_out:
        runs = [r for r in benchmark_runs() if r not in TUNING_RUNS]
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    for tariff_name in args.tariffs:
        tariff = tariffs.load_tariff(tariff_name)
        print(f"\n**{tariff_name}**, bill ratio / demand ratio\n")
        print("| variant | " + " | ".join(f"{n} {s}" for n, s in runs) + " | mean | violations |")
        print("| --- | " + " | ".join("---" for _ in runs) + " | --- | --- |", flush=True)
        prepared = []
        for name, seed in runs:
            series = build_scenario(name, seed)
            battery = BatterySpec.of(SCENARIOS[name].battery)
            steps = tariffs.TariffSteps.of(tariff, series)
            prepared.append((series, battery, steps, reference_bills(name, seed, tariff_name, args.cache)))
        for variant in args.variants:
            cells, bills, demands, violations = [], [], [], 0
            for (name, seed), (series, battery, steps, ref) in zip(runs, prepared, strict=True):
                config = variant_config(replay.controller_config(battery, tariff), variant)
                cpu_started = time.process_time()
                run = replay.run(series, battery, config)
                cpu_s = time.process_time() - cpu_started
                b = tariffs.bill_of(steps, series, series.net_kw - run.battery_kw)
                bill_ratio, demand_ratio = ratios(ref, b)
                bills.append(bill_ratio)
                demands.append(demand_ratio)
                violations += run.violations.total
                cells.append(f"{bill_ratio:.3f} / {demand_ratio:.3f}")
                if args.out_dir:
                    doc = {"tariff": tariff_name, "scenario": name, "seed": seed, "variant": variant,
                           "bill_ratio": round(bill_ratio, 4), "demand_ratio": round(demand_ratio, 4),
                           "saving": round(ref["baseline"][0] - b.total, 2), "violations": run.violations.total,
                           "controller_cpu_s": round(cpu_s, 2)}
                    (args.out_dir / f"{tariff_name}-{name}-{seed}-{variant}.json").write_text(json.dumps(doc) + "\n")
            print(f"| {variant} | " + " | ".join(cells)
                  + f" | {np.mean(bills):.3f} / {np.mean(demands):.3f} | {violations} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
