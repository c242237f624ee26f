"""How the controller loses each month's peak against the optimum: the table "How the month's peak is lost"
in benchmarks/README.md.

For each month where the controller's peak is above the optimum's, the moment that peak was first reached
(the first quarter within 0.5 kW of it) is classed by the battery's state of charge:

- drained: at that moment the battery was at its floor (within 1 % of the SOC window): it had been spent
  before a load the plan did not foresee;
- over-committed: it never came within 10 % of the floor for the rest of that day: the plan's limit was
  higher than the day needed;
- tight day: in between.

    .venv/bin/python benchmarks/peak_losses.py                                   # the four weakest runs
    .venv/bin/python benchmarks/peak_losses.py --runs farm-l0:1 commercial:2
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from multiprocessing import Pool

import numpy as np

from energy_edge.bench.cli import run_peak_shaving
from energy_edge.bench.data import QUARTERS_PER_DAY, SCENARIOS, build_scenario
from energy_edge.bench.plant import BatterySpec

CLASSES = ("drained", "over-committed", "tight day")


def classify(run: str) -> tuple[str, dict[str, tuple[int, float]]]:
    """{class: (months, Σ kW over the optimum)} for one `scenario:seed`."""
    name, seed = run.split(":")
    result = run_peak_shaving(build_scenario(name, int(seed)), BatterySpec.of(SCENARIOS[name].battery))
    battery, controller = result.battery, result.schedules["controller"]
    _, month_of_step = result.series.month_index()
    grid = result.grid_import_kw("controller")
    window_kwh = (battery.soc_max_pct - battery.soc_min_pct) / 100 * battery.capacity_kwh
    above_floor_kwh = controller.soc_kwh - battery.soc_min_pct / 100 * battery.capacity_kwh
    losses: dict[str, list[float]] = defaultdict(list)
    for month, row in enumerate(result.months):
        over_kw = row.controller_peak_kw - row.optimum_peak_kw
        if over_kw <= 0.05:
            continue
        steps = np.flatnonzero(month_of_step == month)
        first = steps[np.argmax(grid[steps] >= row.controller_peak_kw - 0.5)]
        day_end = (first // QUARTERS_PER_DAY + 1) * QUARTERS_PER_DAY
        # SOC is at the end of a step: the step before `first` is what the battery had going into it
        if above_floor_kwh[max(first - 1, 0)] <= 0.01 * window_kwh or above_floor_kwh[first] <= 0.01 * window_kwh:
            kind = "drained"
        elif above_floor_kwh[first:day_end].min() > 0.10 * window_kwh:
            kind = "over-committed"
        else:
            kind = "tight day"
        losses[kind].append(float(over_kw))
    return run, {kind: (len(losses[kind]), sum(losses[kind])) for kind in CLASSES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", default=["commercial:3", "commercial:6", "commercial-us:1", "office-g1:1"],
                        help="scenario:seed (default: the four weakest runs)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with Pool(args.workers) as pool:
        results = pool.map(classify, args.runs)
    print("| run | " + " | ".join(f"{kind} (months, kW over optimum)" for kind in CLASSES) + " |")
    print("| --- | " + " | ".join("---" for _ in CLASSES) + " |")
    for run, classes in results:
        print(f"| {run} | " + " | ".join(f"{n}, {kw:.1f}" for n, kw in (classes[k] for k in CLASSES)) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
