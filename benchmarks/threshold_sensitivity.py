"""How exactly must a controller know each month's threshold to reach a ratio of 0.90? (benchmark only)

The optimum holds every month's import at one level, its monthly peak P*. A controller that knew P* of each
month in advance would only need the rule: discharge above it, recharge below it. This script gives that
rule each month's P* off by a fixed share e and measures the ratio (same definition as the benchmark).
It also runs the rule with last month's P* (all a controller could know of it from hindsight at the
month's start; January gets its own P*) and with that times the single factor best for the run in hindsight.

    .venv/bin/python benchmarks/threshold_sensitivity.py                 # all 13 runs of the table, ~2 min
    .venv/bin/python benchmarks/threshold_sensitivity.py --only farm-l0

Prints, per run: the shaving depth (Σ(baseline − P*) / Σ P*: the share of the peak the battery takes off),
the ratio for each offset e, and the month-to-month spread of P*.
"""

from __future__ import annotations

import argparse
import json
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

from energy_edge.bench import rule
from energy_edge.bench.data import SCENARIOS, TUNING_RUNS, benchmark_runs, build_scenario
from energy_edge.bench.plant import BatterySpec
from energy_edge.bench.report import baseline_and_optimum_peaks

OFFSETS = (-0.03, -0.02, -0.01, -0.005, 0.0, 0.005, 0.01, 0.02, 0.03, 0.05)
LAST_MONTH_FACTORS = np.round(np.arange(0.85, 1.1501, 0.01), 2)


def ratios(net: np.ndarray, month_of_step: np.ndarray, months: int, battery: BatterySpec,
           thresholds_by_month: np.ndarray, baseline: np.ndarray, optimum_peaks: np.ndarray) -> np.ndarray:
    """The rule's ratio for each column of `thresholds_by_month` (shape (months, candidates))."""
    per_step = thresholds_by_month[month_of_step]
    schedules = rule.simulate(net, per_step, per_step, battery)
    peaks_sum = rule.sum_of_monthly_peaks(net, schedules, month_of_step, months)
    gained: np.ndarray = (baseline.sum() - peaks_sum) / (baseline - optimum_peaks).sum()
    return gained


def run(job: tuple[str, int]) -> dict[str, Any]:
    name, seed = job
    series, battery = build_scenario(name, seed), BatterySpec.of(SCENARIOS[name].battery)
    labels, month_of_step = series.month_index()
    months, net = len(labels), series.net_kw
    baseline, optimum_peaks = baseline_and_optimum_peaks(series, battery)
    offsets = np.array(OFFSETS)
    oracle = ratios(net, month_of_step, months, battery, optimum_peaks[:, None] * (1.0 + offsets[None, :]),
                    baseline, optimum_peaks)
    last_month = np.concatenate([optimum_peaks[:1], optimum_peaks[:-1]])
    by_last = ratios(net, month_of_step, months, battery, last_month[:, None] * LAST_MONTH_FACTORS[None, :],
                     baseline, optimum_peaks)
    change = optimum_peaks[1:] / optimum_peaks[:-1] - 1.0
    return {
        "scenario": name, "seed": seed, "tuned_on": (name, seed) in TUNING_RUNS,
        "depth": float((baseline - optimum_peaks).sum() / optimum_peaks.sum()),
        "oracle": {f"{e:+.3f}": round(float(r), 3) for e, r in zip(OFFSETS, oracle, strict=True)},
        "last_month": round(float(by_last[np.flatnonzero(LAST_MONTH_FACTORS == 1.0)[0]]), 3),
        "last_month_best": round(float(by_last.max()), 3),
        "last_month_best_factor": float(LAST_MONTH_FACTORS[int(np.argmax(by_last))]),
        "month_change_abs_mean": float(np.abs(change).mean()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS), help="scenarios (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    with Pool(args.workers) as pool:
        rows = pool.map(run, benchmark_runs(args.only), chunksize=1)
    keys = [f"{e:+.3f}" for e in OFFSETS]
    print("| scenario | seed | depth | " + " | ".join(f"P* {float(k) * 100:+.1f} %" for k in keys)
          + " | last month's P* | × best factor | P* month to month |")
    print("| --- | --- | ---: | " + " | ".join("---:" for _ in keys) + " | ---: | ---: | ---: |")
    for row in rows:
        cells = " | ".join(f"{row['oracle'][k]:.3f}" for k in keys)
        print(f"| {row['scenario']} | {row['seed']} | {row['depth'] * 100:.1f} % | {cells} | {row['last_month']:.3f}"
              f" | {row['last_month_best']:.3f} (×{row['last_month_best_factor']:.2f})"
              f" | ±{row['month_change_abs_mean'] * 100:.1f} % |")
    held_out = [r for r in rows if not r["tuned_on"]] or rows
    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in held_out]))

    means = " | ".join(f"{np.mean([r['oracle'][k] for r in held_out]):.3f}" for k in keys)
    print(f"| **mean of {len(held_out)} held out** | | {mean('depth') * 100:.1f} % | {means} | {mean('last_month'):.3f}"
          f" | {mean('last_month_best'):.3f} | ±{mean('month_change_abs_mean') * 100:.1f} % |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
