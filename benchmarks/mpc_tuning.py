"""Tune the MPC peer's settings on the tuning runs only (data.TUNING_RUNS), as the controller's were.

    .venv/bin/python benchmarks/mpc_tuning.py                         # the grid below, monthly-15, ~20 min
    .venv/bin/python benchmarks/mpc_tuning.py --forecasts mean-4-weeks --weights 0.5 1 2 --tariff us-tou

Prints, per setting, each tuning run's monthly-peak ratio and bill ratio, and their means.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from energy_edge.bench import peers, tariffs
from energy_edge.bench.data import SCENARIOS, TUNING_RUNS, build_scenario
from energy_edge.bench.plant import BatterySpec, monthly_peaks_kw
from energy_edge.bench.report import baseline_and_optimum_peaks, replay_schedule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--forecasts", nargs="*", default=list(peers.LOAD_FORECASTS))
    parser.add_argument("--weights", nargs="*", type=float, default=[0.5, 1.0, 2.0])
    parser.add_argument("--tariff", default="monthly-15")
    parser.add_argument("--perfect-pv", action="store_true")
    args = parser.parse_args()
    tariff = tariffs.load_tariff(args.tariff)
    runs = sorted(TUNING_RUNS)
    prepared = []
    for name, seed in runs:
        series = build_scenario(name, seed)
        battery = BatterySpec.of(SCENARIOS[name].battery)
        steps = tariffs.TariffSteps.of(tariff, series)
        base_peaks, best_peaks = baseline_and_optimum_peaks(series, battery)
        best = replay_schedule(tariffs.solve_bill(series, steps, battery).battery_kw, series.net_kw, battery)
        base_bill = tariffs.bill_of(steps, series, series.net_kw).total
        best_bill = tariffs.bill_of(steps, series, series.net_kw - best.battery_kw).total
        prepared.append((name, seed, series, battery, steps, base_peaks, best_peaks, base_bill, best_bill))
    print(f"tariff {tariff.name}, perfect PV {args.perfect_pv}; tuning runs {runs}")
    print("| forecast | terminal weight | " + " | ".join(f"{n} {s} peak / bill" for n, s in runs)
          + " | mean peak | mean bill |")
    print("| --- | --- | " + " | ".join("---" for _ in runs) + " | --- | --- |")
    for forecast, weight in itertools.product(args.forecasts, args.weights):
        settings = peers.MpcSettings(load_forecast=forecast, perfect_pv=args.perfect_pv, terminal_weight=weight)
        cells, peak_ratios, bill_ratios = [], [], []
        for _name, _seed, series, battery, steps, base_peaks, best_peaks, base_bill, best_bill in prepared:
            run = peers.mpc(series, steps, battery, settings)
            grid = series.net_kw - run.battery_kw
            labels, month_of_step = series.month_index()
            peaks = monthly_peaks_kw(grid, month_of_step, len(labels))
            peak_ratio = float((base_peaks - peaks).sum() / (base_peaks - best_peaks).sum())
            bill_ratio = (base_bill - tariffs.bill_of(steps, series, grid).total) / (base_bill - best_bill)
            peak_ratios.append(peak_ratio)
            bill_ratios.append(bill_ratio)
            cells.append(f"{peak_ratio:.3f} / {bill_ratio:.3f}" + (f" ({run.violations.total} viol.)"
                                                                  if run.violations.total else ""))
        print(f"| {forecast} | {weight:g} | " + " | ".join(cells)
              + f" | {np.mean(peak_ratios):.3f} | {np.mean(bill_ratios):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
