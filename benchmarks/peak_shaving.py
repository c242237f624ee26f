"""Reproduce the peak-shaving numbers in benchmarks/README.md: every built-in scenario, a year each.

    .venv/bin/python benchmarks/peak_shaving.py                  # all scenarios, ~4 min on 2 vCPUs
    .venv/bin/python benchmarks/peak_shaving.py --only commercial --seeds 1 2 3

Writes a Markdown table to stdout, the per-run JSON to --out-dir, and the plots of the built-in scenario
(seed 1, one of the four commercial seeds the controller's forecast was tuned on) and of one held-out
scenario next to this file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from energy_edge.bench.cli import run_peak_shaving
from energy_edge.bench.data import SCENARIOS, TUNING_RUNS, benchmark_runs, build_scenario
from energy_edge.bench.plant import BatterySpec
from energy_edge.bench.report import plot

HERE = Path(__file__).parent
PLOTS = {("commercial", 1): "peak_shaving_commercial.png", ("households-h0", 1): "peak_shaving_households.png"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=list(SCENARIOS), help="scenarios (default: all)")
    parser.add_argument("--seeds", nargs="*", type=int, default=None,
                        help="seeds (default: 1-6 for commercial, 1 for the others)")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/peak-shaving"), help="JSON per run")
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    print("| scenario | seed | tuned on it? | ratio controller | ratio rule | violations | controller s | optimum s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    runs = ([(name, seed) for name in args.only for seed in args.seeds] if args.seeds
            else benchmark_runs(args.only))
    for name, seed in runs:
        result = run_peak_shaving(build_scenario(name, seed), BatterySpec.of(SCENARIOS[name].battery))
        doc = result.to_json()
        (args.out_dir / f"{name}-{seed}.json").write_text(json.dumps(doc, indent=2) + "\n")
        if (name, seed) in PLOTS:
            plot(result, HERE / PLOTS[(name, seed)])
        tuned = "**yes**" if (name, seed) in TUNING_RUNS else "no (held out)"
        print(f"| {name} | {seed} | {tuned} | {doc['ratio_controller']:.3f} | {doc['ratio_rule']:.3f} | "
              f"{doc['violations']} | {doc['seconds']['controller']:.1f} | {doc['seconds']['optimum']:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
